//! Response heads. Pure except for the `Date` value, formatted once a
//! second per shard and kept in a thread-local.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

/// The reason phrase of `status`, from the `http` crate's table of
/// registered codes ("Unknown" for an unregistered one, which percore never
/// sends).
pub(crate) fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status).ok().and_then(|code| code.canonical_reason()).unwrap_or("Unknown")
}

thread_local! {
    /// The `Date` value, formatted at most once a second per shard.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Appends the current `Date` value (formatted once a second) to `out`.
fn push_date(out: &mut String) {
    let secs = crate::clock::coarse_epoch_seconds();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)));
        }
        out.push_str(&d.1);
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
        Head::with_room(status, 0)
    }

    /// A head with room for `body` more bytes after it (see
    /// [`Head::finish_with`]): no reallocation when the body is added.
    pub(crate) fn with_room(status: u16, body: usize) -> Head {
        // A head is ~250 bytes with its longest headers; `finish` adds ~50.
        let mut text = String::with_capacity(384 + body);
        let _ = write!(text, "HTTP/1.1 {status} {}\r\nServer: percore\r\nDate: ", reason(status));
        push_date(&mut text);
        text.push_str("\r\n");
        Head { status, text }
    }

    pub(crate) fn header(mut self, name: &str, value: impl std::fmt::Display) -> Head {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    /// Appends header lines already formatted (`Name: value\r\n` each).
    pub(crate) fn lines(mut self, lines: &str) -> Head {
        self.text.push_str(lines);
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

    /// Finishes the head with `body` after it, in one buffer: a small
    /// response then goes out as one send with no further allocation.
    pub(crate) fn finish_with(mut self, body: &[u8], close: bool) -> Vec<u8> {
        // Room for what `finish` adds and the body: one allocation in all.
        self.text.reserve(64 + body.len());
        let mut out = self.finish(body.len() as u64, close);
        out.extend_from_slice(body);
        out
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
        let whole = Head::new(200).finish_with(b"pong\n", false);
        assert!(whole.ends_with(b"Content-Length: 5\r\n\r\npong\n"), "{}", String::from_utf8_lossy(&whole));
        // Every status percore sends has its registered reason.
        for (status, reason) in [(409, "Conflict"), (507, "Insufficient Storage"), (416, "Range Not Satisfiable")] {
            let head = String::from_utf8(Head::new(status).finish(0, true)).unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} {reason}\r\n")), "{head}");
        }
        for status in [204, 304] {
            let head = String::from_utf8(Head::new(status).finish(0, false)).unwrap();
            assert!(!head.contains("Content-Length"), "{status}: {head}");
        }
    }
}
