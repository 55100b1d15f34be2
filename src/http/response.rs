//! Response heads. Pure except for the cached `Date` value.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

thread_local! {
    /// The `Date` value, formatted at most once a second per shard.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    /// The status of the last head built on this shard, for the metrics of
    /// the request being answered (a connection answers one at a time, and
    /// the loop reads it right after the answer, before any other await).
    static LAST_STATUS: std::cell::Cell<u16> = const { std::cell::Cell::new(0) };
}

/// The status of the last response head built on this shard.
pub(crate) fn last_status() -> u16 {
    LAST_STATUS.with(std::cell::Cell::get)
}

fn date() -> String {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        d.1.clone()
    })
}

/// A response head with `Content-Length` (always sent, also for HEAD and
/// for statuses without a body, where it is 0).
pub(crate) struct Head {
    status: u16,
    text: String,
}

impl Head {
    pub(crate) fn new(status: u16) -> Head {
        LAST_STATUS.with(|s| s.set(status));
        let mut text = String::with_capacity(256);
        let _ = write!(text, "HTTP/1.1 {status} {}\r\nServer: percore\r\nDate: {}\r\n", reason(status), date());
        Head { status, text }
    }

    pub(crate) fn header(mut self, name: &str, value: impl std::fmt::Display) -> Head {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// Finishes the head: `Content-Length` (except on 204 and 304, where RFC
    /// 9110 §8.6 forbids a length that is not the 200's), and
    /// `Connection: close` when the connection will close after this response.
    pub(crate) fn finish(mut self, content_length: u64, close: bool) -> Vec<u8> {
        if self.status != 204 && self.status != 304 {
            let _ = write!(self.text, "Content-Length: {content_length}\r\n");
        }
        if close {
            self.text.push_str("Connection: close\r\n");
        }
        self.text.push_str("\r\n");
        self.text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_well_formed() {
        let head = String::from_utf8(Head::new(404).header("X-A", 1).finish(5, true)).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains("\r\nX-A: 1\r\n"));
        assert!(head.contains("\r\nContent-Length: 5\r\n"));
        assert!(head.contains("\r\nConnection: close\r\n"));
        assert!(head.contains("\r\nDate: "));
        assert!(head.ends_with("\r\n\r\n"));
        for status in [204, 304] {
            let head = String::from_utf8(Head::new(status).finish(0, false)).unwrap();
            assert!(!head.contains("Content-Length"), "{status}: {head}");
        }
    }
}
