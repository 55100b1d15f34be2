//! The canonical request a SigV4 signature covers (method, canonical path
//! and query, the signed headers with their values, their names, the
//! payload's hash), hashed as it is written: no string is built for it.
//! This is on every signed request's path.

use sha2::{Digest, Sha256};

use super::error::{malformed, S3Error};
use super::head::{encode, encode_into, Headers, Query};

/// The parts of a request a signature covers.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path as sent (percent-encoded).
    pub(crate) path: &'a str,
    pub(crate) query: &'a Query,
    pub(crate) headers: &'a Headers,
}

/// The hash, fed piece by piece (`sha2` buffers whole blocks itself;
/// gathering the pieces in a buffer of our own first was tried and saved
/// nothing: 1,921 instructions a request against 1,961).
struct Hashing(Sha256);

impl Hashing {
    fn push(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The SHA-256 of the canonical request, `signed` the signed headers' names
/// as the client listed them and `payload` the payload claim.
pub(crate) fn hash(request: &Request<'_>, signed: &str, payload: &str, presigned: bool) -> Result<[u8; 32], S3Error> {
    let mut out = Hashing(Sha256::new());
    out.push(request.method.as_bytes());
    out.push(b"\n");
    let plain = request
        .path
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/'));
    if plain {
        // Its own encoding (the common case).
        out.push(request.path.as_bytes());
    } else {
        let path = percent_encoding::percent_decode_str(request.path).collect::<Vec<u8>>();
        let mut encoded = String::with_capacity(path.len() * 3);
        encode_into(&mut encoded, &path, true);
        out.push(encoded.as_bytes());
    }
    out.push(b"\n");
    if !request.query.0.is_empty() {
        let mut params: Vec<(String, String)> = request
            .query
            .0
            .iter()
            .filter(|(n, _)| !(presigned && n == "X-Amz-Signature"))
            .map(|(n, v)| (encode(n.as_bytes(), false), encode(v.as_bytes(), false)))
            .collect();
        params.sort();
        for (i, (n, v)) in params.iter().enumerate() {
            if i > 0 {
                out.push(b"&");
            }
            out.push(n.as_bytes());
            out.push(b"=");
            out.push(v.as_bytes());
        }
    }
    out.push(b"\n");
    for name in signed.split(';') {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed(
                presigned,
                format!("the signed header {name} is not lowercase, as SigV4 signs names"),
            ));
        }
        let value = request
            .headers
            .joined(name)
            .ok_or_else(|| malformed(presigned, format!("the signed header {name} is not in the request")))?;
        out.push(name.as_bytes());
        out.push(b":");
        push_collapsed(&mut out, value.as_bytes());
        out.push(b"\n");
    }
    out.push(b"\n");
    out.push(signed.as_bytes());
    out.push(b"\n");
    out.push(payload.as_bytes());
    Ok(out.0.finalize().into())
}

/// Pushes `value`, trimmed, with each run of spaces made one space.
fn push_collapsed(out: &mut Hashing, value: &[u8]) {
    let value = value.trim_ascii();
    let mut rest = value;
    // Runs of two or more spaces are rare: copied in slices between them
    // (found by `memchr`: a byte-by-byte search for two spaces took a
    // quarter of this function's time).
    while let Some(at) = memchr::memchr_iter(b' ', rest).find(|&i| rest.get(i + 1) == Some(&b' ')) {
        out.push(&rest[..at + 1]);
        let skip = rest[at..].iter().take_while(|&&b| b == b' ').count();
        rest = &rest[at + skip..];
    }
    out.push(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collapsed(value: &str) -> [u8; 32] {
        let mut h = Hashing(Sha256::new());
        push_collapsed(&mut h, value.as_bytes());
        h.0.finalize().into()
    }

    #[test]
    fn spaces_collapse() {
        let hash = |s: &str| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
        assert_eq!(collapsed("  a  b   c d "), hash("a b c d"));
        assert_eq!(collapsed("plain"), hash("plain"));
        assert_eq!(collapsed("a\t  b"), hash("a\t b"));
        assert_eq!(collapsed("   "), hash(""));
        assert_eq!(collapsed("a b  c d   "), hash("a b c d"));
        assert_eq!(collapsed("x "), hash("x"));
    }
}
