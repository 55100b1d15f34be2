//! Headers that arrive in the query: a presigned URL's `x-amz-*`
//! parameters other than its own (`X-Amz-Algorithm`, `X-Amz-Signature`,
//! ...). SDKs move headers there so that a URL alone carries them: the AWS
//! SDK for JavaScript's presigner moves every `x-amz-` header it is given
//! (`x-amz-meta-*`, `x-amz-tagging`, `x-amz-acl`, a checksum, ...). S3
//! reads them as the headers they stand for, and so does percore: each is
//! then checked and kept (or refused) as that header would be. They are
//! covered by the signature (the query is part of the canonical request).
//!
//! A parameter that cannot be a header (a name that is no token, a value
//! with a control character) or that contradicts a header of the same
//! name is refused: kept, it could end up in an answer's head.

use super::head::{fits_a_header, is_token, Headers, Query};

/// A presigned URL's own parameters (compared without case).
const OWN: [&str; 7] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
];

/// `headers` with the query's `x-amz-*` parameters added as headers; none
/// if the query has none (the usual case: nothing is copied).
pub(crate) fn hoisted(headers: &Headers, query: &Query) -> Result<Option<Headers>, String> {
    let mut extra: Vec<(String, &str)> = Vec::new();
    for (name, value) in &query.0 {
        if !is_hoisted(name) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if !is_token(&name) {
            return Err(format!("the query parameter {name} cannot stand for a header: its name is no token"));
        }
        if !fits_a_header(value) {
            return Err(format!(
                "the query parameter {name} cannot stand for a header: its value holds a control character"
            ));
        }
        let sent = headers.get(&name);
        if sent.is_some_and(|sent| sent != value.trim()) || extra.iter().any(|(n, _)| *n == name) {
            return Err(format!("{name} is given twice (in the query and as a header, or twice in the query)"));
        }
        // (The same as a header sent with it: that header.)
        if sent.is_none() {
            extra.push((name, value));
        }
    }
    if extra.is_empty() {
        return Ok(None);
    }
    Ok(Some(headers.with(&extra)))
}

/// Whether the query parameter `name` stands for a header.
pub(crate) fn is_hoisted(name: &str) -> bool {
    name.len() > 6
        && name.is_char_boundary(6)
        && name[..6].eq_ignore_ascii_case("x-amz-")
        && !OWN.iter().any(|own| own.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        Query(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }

    #[test]
    fn x_amz_parameters_read_as_headers_and_nothing_else_does() {
        let headers = Headers::parse(b"PUT /b/k HTTP/1.1\r\nHost: h\r\nX-Amz-Acl: private\r\n\r\n");
        assert!(hoisted(&headers, &query(&[("X-Amz-Signature", "00"), ("prefix", "a")])).unwrap().is_none());
        let got = hoisted(
            &headers,
            &query(&[
                ("X-Amz-Date", "20261207T000000Z"),
                ("x-amz-meta-name", "a b"),
                ("X-Amz-Tagging", "k=v"),
                ("x-amz-acl", "private"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.get("x-amz-meta-name"), Some("a b"));
        assert_eq!(got.get("x-amz-tagging"), Some("k=v"));
        assert_eq!(got.get("host"), Some("h"), "the head's own headers stay");
        assert_eq!(got.get("x-amz-date"), None, "a presigned URL's own parameters are not headers");
        assert_eq!(got.starting_with("x-amz-meta-").count(), 1);
        assert_eq!(got.pairs().filter(|(n, _)| *n == "x-amz-acl").count(), 1, "a header given both ways is one");
        for bad in [
            &[("x-amz-meta-a", "x\r\nSet-Cookie: 1")][..],
            &[("x-amz-meta-a b", "x")],
            &[("x-amz-acl", "public-read")],
            &[("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")],
        ] {
            assert!(hoisted(&headers, &query(bad)).is_err(), "{bad:?}");
        }
        assert!(is_hoisted("x-amz-checksum-crc32") && !is_hoisted("X-Amz-Expires") && !is_hoisted("x-amz-"));
        assert!(!is_hoisted("x-amé") && !is_hoisted("tagging"));
    }
}
