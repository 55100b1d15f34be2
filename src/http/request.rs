//! Request heads: parsed with `httparse`, then checked where RFC 9112 asks a
//! server to be strict. Pure: no I/O.
//!
//! A request that cannot be framed safely (both Content-Length and
//! Transfer-Encoding, differing Content-Lengths, a bad length, a malformed
//! head) is rejected and its connection closed: guessing where the next
//! request starts is how request smuggling works.

use std::ops::Range;

/// The header `percore rebalance` carries what S3 keeps with an object in
/// (`s3::carried`).
pub(crate) const CARRIED_HEADER: &str = "X-Percore-S3";

/// Methods the service serves, and `Other` for the rest of RFC 9110's
/// (answered 405 with `Allow`). Methods it does not know at all are refused
/// with 501 while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Put,
    Delete,
    Other(String),
}

/// How the request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    None,
    Length(u64),
    Chunked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The path part of the target (origin-form), still percent-encoded.
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) body: Body,
    /// The client wants the connection kept open after the response.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// `If-Match` and `If-None-Match`, as sent.
    pub(crate) if_match: Option<String>,
    pub(crate) if_none_match: Option<String>,
    /// The token of `Authorization: Bearer <token>`.
    pub(crate) bearer: Option<String>,
    pub(crate) if_modified_since: Option<String>,
    pub(crate) if_unmodified_since: Option<String>,
    pub(crate) if_range: Option<String>,
    pub(crate) range: Option<String>,
    /// `Accept` names `text/html` (not with `q=0`): a browser, which gets
    /// HTML where there is a choice (listings).
    pub(crate) prefers_html: bool,
    /// `X-Percore-S3`: what S3 keeps with an object, carried by `percore
    /// rebalance` (`s3::carried`).
    pub(crate) s3_carried: Option<String>,
}

/// A request refused before it is served; the connection is then closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
}

const fn reject(status: u16, reason: &'static str) -> Reject {
    Reject { status, reason }
}

pub(crate) struct Limits {
    pub(crate) head_bytes_max: usize,
    pub(crate) target_bytes_max: usize,
}

#[allow(
    clippy::large_enum_variant,
    reason = "returned by value once per request and matched at once; boxing would cost an allocation per request"
)]
pub(crate) enum Parsed {
    /// A whole head: the request and the head's length in bytes.
    Complete(Request, usize),
    /// More bytes are needed.
    Partial,
}

const HEADERS_MAX: usize = 64;

/// Where one header field lies in the buffer parsed: its name and its
/// value (trimmed; an empty value is `0..0`).
pub(crate) type Field = (Range<usize>, Range<usize>);

/// Parses one request head from the start of `buf`.
pub(crate) fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, Reject> {
    parse_noting(buf, limits, None)
}

/// Parses one request head from the start of `buf`; for a complete head,
/// also notes where every header field lies in `fields` (the S3 API reads
/// any header: noted here, the head is parsed once).
pub(crate) fn parse_noting(buf: &[u8], limits: &Limits, fields: Option<&mut Vec<Field>>) -> Result<Parsed, Reject> {
    if buf.is_empty() {
        // The connection's usual state between requests: nothing to look at.
        return Ok(Parsed::Partial);
    }
    // Uninitialised: initialising 64 empty headers (2 KiB) per request cost
    // more than parsing a short head.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.head_bytes_max {
                // The request line alone is over the limit: the target is.
                let line_end = buf.iter().position(|&b| b == b'\n');
                return Err(match line_end {
                    None => reject(414, "request target too long"),
                    Some(_) => reject(431, "request head too large"),
                });
            }
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header fields")),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(reject(400, "malformed request head")),
    };
    if head_len > limits.head_bytes_max {
        return Err(reject(431, "request head too large"));
    }
    let target = request.path.ok_or(reject(400, "no request target"))?;
    if target.len() > limits.target_bytes_max {
        return Err(reject(414, "request target too long"));
    }
    let version = request.version.ok_or(reject(400, "no HTTP version"))?;
    let method = match request.method.ok_or(reject(400, "no method"))? {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        // Methods are case-sensitive: `get` is not GET.
        known @ ("POST" | "PATCH" | "OPTIONS" | "CONNECT" | "TRACE") => Method::Other(known.to_string()),
        _ => return Err(reject(501, "method not implemented")),
    };
    if matches!(method, Method::Other(_)) && !target.starts_with('/') && !target.starts_with("http") {
        // CONNECT's authority-form, OPTIONS' asterisk-form: not served here.
        return Err(reject(501, "method not implemented"));
    }
    let (path, query) = split_target(target)?;
    let mut content_length: Option<u64> = None;
    // Every transfer coding listed, in order, over all Transfer-Encoding lines.
    let mut codings: Vec<String> = Vec::new();
    let mut transfer_encoding = false;
    let mut hosts = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    let mut if_match: Option<String> = None;
    let mut if_none_match: Option<String> = None;
    let mut bearer: Option<String> = None;
    let mut prefers_html = false;
    let mut s3_carried = None;
    let (mut if_modified_since, mut if_unmodified_since, mut if_range, mut range) = (None, None, None, None);
    if let Some(fields) = fields {
        // Where a part httparse returned lies in `buf` (parts are slices
        // of it; checked all the same: an empty part may point anywhere).
        let at = |part: &[u8]| match (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize) {
            Some(start) if start + part.len() <= buf.len() => start..start + part.len(),
            _ => 0..0,
        };
        fields.clear();
        fields.extend(request.headers.iter().map(|h| {
            let value = h.value.trim_ascii();
            (at(h.name.as_bytes()), if value.is_empty() { 0..0 } else { at(value) })
        }));
    }
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = parse_length(header.value).ok_or(reject(400, "invalid Content-Length"))?;
            if content_length.is_some_and(|v| v != value) {
                return Err(reject(400, "differing Content-Length values"));
            }
            content_length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            let value = std::str::from_utf8(header.value).map_err(|_| reject(400, "invalid Transfer-Encoding"))?;
            codings.extend(value.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()));
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") {
            if !header.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(reject(417, "only Expect: 100-continue is supported"));
            }
            expect_continue = true;
        } else if name.eq_ignore_ascii_case("if-match") {
            append_list(&mut if_match, header.value)?;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            append_list(&mut if_none_match, header.value)?;
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            if_modified_since = Some(String::from_utf8_lossy(header.value).into_owned());
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            if_unmodified_since = Some(String::from_utf8_lossy(header.value).into_owned());
        } else if name.eq_ignore_ascii_case("if-range") {
            if_range = Some(String::from_utf8_lossy(header.value).into_owned());
        } else if name.eq_ignore_ascii_case("range") {
            if range.is_some() {
                return Err(reject(400, "more than one Range header"));
            }
            range = Some(String::from_utf8_lossy(header.value).into_owned());
        } else if name.eq_ignore_ascii_case("accept") {
            prefers_html |= accepts_html(header.value);
        } else if name.eq_ignore_ascii_case("authorization") {
            // Only a bearer token is read here (an S3 signature, long, is
            // the S3 API's to read).
            let value = header.value.trim_ascii();
            if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
                bearer = Some(String::from_utf8_lossy(&value[7..]).trim().to_string());
            }
        } else if name.eq_ignore_ascii_case(CARRIED_HEADER) {
            s3_carried = Some(String::from_utf8_lossy(header.value).into_owned());
        } else if name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(header.value).split(',').map(str::trim) {
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    if transfer_encoding && content_length.is_some() {
        return Err(reject(400, "both Content-Length and Transfer-Encoding"));
    }
    // RFC 9112 §6.1 and §6.3: Transfer-Encoding in HTTP/1.0 is faulty
    // framing; chunked must be the final coding, and only once (else the
    // length cannot be known: 400); other codings are not implemented (501).
    if transfer_encoding && version == 0 {
        return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
    }
    let chunked = transfer_encoding;
    if transfer_encoding {
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(reject(400, "chunked is not the final transfer coding"));
        }
        if codings.iter().filter(|c| *c == "chunked").count() > 1 {
            return Err(reject(400, "chunked applied more than once"));
        }
        if codings.len() > 1 {
            return Err(reject(501, "unsupported transfer coding"));
        }
    }
    if version == 1 && hosts != 1 {
        return Err(reject(400, "HTTP/1.1 needs exactly one Host header"));
    }
    let body = match (chunked, content_length) {
        (true, _) => Body::Chunked,
        (false, Some(0) | None) => Body::None,
        (false, Some(n)) => Body::Length(n),
    };
    let keep_alive = if version == 1 { !connection_close } else { connection_keep_alive && !connection_close };
    let request = Request {
        method,
        path,
        query,
        body,
        keep_alive,
        expect_continue,
        if_match,
        if_none_match,
        bearer,
        if_modified_since,
        if_unmodified_since,
        if_range,
        range,
        prefers_html,
        s3_carried,
    };
    Ok(Parsed::Complete(request, head_len))
}

/// Whether an `Accept` value lists `text/html` with a weight above 0.
fn accepts_html(value: &[u8]) -> bool {
    let value = String::from_utf8_lossy(value);
    value.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let html = parts.next().is_some_and(|media| media.eq_ignore_ascii_case("text/html"));
        let zero = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
        html && !zero
    })
}

/// The answer to a request line whose version httparse refused: 505 for a
/// well-formed `HTTP/x.y` other than 1.0 and 1.1, 400 for anything else (a
/// line that is not `method SP target SP version`).
fn version_error(buf: &[u8]) -> Reject {
    let line = buf.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [_, _, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            reject(505, "HTTP version not supported")
        }
        _ => reject(400, "malformed request line"),
    }
}

/// Joins repeated list headers with commas (RFC 9110 §5.3).
fn append_list(slot: &mut Option<String>, value: &[u8]) -> Result<(), Reject> {
    let value = std::str::from_utf8(value).map_err(|_| reject(400, "non-ASCII precondition"))?;
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(value);
        }
        None => *slot = Some(value.to_string()),
    }
    Ok(())
}

/// Content-Length is one or more digits, nothing else (no sign, no spaces).
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Splits an origin-form (or absolute-form) target into path and query.
fn split_target(target: &str) -> Result<(String, Option<String>), Reject> {
    let origin = if let Some(rest) = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) {
        // Absolute form: servers must accept it (RFC 9112 §3.2.2); the
        // authority is ignored, the path kept.
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else {
        target
    };
    if !origin.starts_with('/') {
        return Err(reject(400, "request target must be a path"));
    }
    Ok(match origin.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (origin.to_string(), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { head_bytes_max: 1024, target_bytes_max: 256 };

    fn complete(raw: &str) -> Request {
        match parse(raw.as_bytes(), &LIMITS) {
            Ok(Parsed::Complete(request, n)) => {
                assert_eq!(n, raw.len());
                request
            }
            other => panic!("{raw:?}: {:?}", other.map(|_| ()).err()),
        }
    }

    #[track_caller]
    fn rejected(raw: &str, status: u16) {
        match parse(raw.as_bytes(), &LIMITS) {
            Err(r) => assert_eq!(r.status, status, "{raw:?}: {}", r.reason),
            Ok(_) => panic!("{raw:?} was accepted"),
        }
    }

    #[test]
    fn plain_requests() {
        let r = complete("GET /files/a.txt?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/files/a.txt");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.body, Body::None);
        assert!(r.keep_alive);
        assert!(!complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert_eq!(complete("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n").body, Body::Length(5));
        assert_eq!(complete("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").body, Body::Chunked);
        assert_eq!(complete("GET http://example.com/files/x HTTP/1.1\r\nHost: h\r\n\r\n").path, "/files/x");
        assert_eq!(complete("PATCH /pot HTTP/1.1\r\nHost: h\r\n\r\n").method, Method::Other("PATCH".into()));
        // Identical duplicate lengths are allowed.
        let dup = "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(complete(dup).body, Body::Length(3));
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost:", &LIMITS), Ok(Parsed::Partial)));
    }

    #[test]
    fn unframeable_or_malformed_requests_are_rejected() {
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400);
        // RFC 9112 §6.3: chunked not final means no known length (400);
        // a coding we do not implement before it is 501.
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
        rejected("PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
        rejected("PUT /f HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
        rejected("BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
        rejected("get / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
        rejected("CONNECT h:1 HTTP/1.1\r\nHost: h\r\n\r\n", 501);
        rejected("GET / HTTP/x\r\nHost: h\r\n\r\n", 400);
        rejected("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
        rejected("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505);
        rejected("GET / HTTP/1.1\r\nBad Name: x\r\nHost: h\r\n\r\n", 400);
        rejected("GET / HTTP/1.1\r\nHost: h\r\nFolded: a\r\n b\r\n\r\n", 400);
        rejected("GET / HTTP/1.1\r\n\r\n", 400);
        rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
        rejected("GET files HTTP/1.1\r\nHost: h\r\n\r\n", 400);
        rejected("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
        rejected("GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    }

    #[test]
    fn limits_give_414_and_431() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(300));
        rejected(&long_target, 414);
        let huge_line = format!("GET /{}", "a".repeat(2000));
        rejected(&huge_line, 414);
        let big_head = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "b".repeat(2000));
        rejected(&big_head, 431);
        let many = format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", "A: b\r\n".repeat(70));
        rejected(&many, 431);
    }

    #[test]
    fn browsers_are_told_from_other_clients_by_accept() {
        assert!(accepts_html(b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(accepts_html(b"TEXT/HTML"));
        assert!(!accepts_html(b"*/*"), "curl");
        assert!(!accepts_html(b"application/json"));
        assert!(!accepts_html(b"text/html;q=0, */*"));
    }
}
