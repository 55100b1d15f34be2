//! What an S3 request says beyond what the HTTP layer parses: every header
//! (signatures cover any of them), the query's parameters, and the bucket
//! and key of the path. Pure: no I/O.

use std::borrow::Cow;
use std::ops::Range;

/// Where a header field lies in the head: its name and its value (trimmed;
/// an empty value is `0..0`). The HTTP layer's `request::Field`, noted
/// while it parses.
type Field = (Range<usize>, Range<usize>);

/// The head's headers as sent, in order: one copy of the head and the
/// place of each field in it (no allocation per header: this is on every
/// S3 request's path). Names are lowercased in the copy, so that looking
/// one up (by its lowercase name) is a plain comparison; values are
/// trimmed.
#[derive(Debug, Default)]
pub(crate) struct Headers {
    text: String,
    fields: Vec<Field>,
}

/// At most this many headers (the HTTP layer's own limit).
const HEADERS_MAX: usize = 64;

impl Headers {
    /// Reads the headers of a head the HTTP layer has already accepted.
    pub(crate) fn parse(head: &[u8]) -> Headers {
        let text = match std::str::from_utf8(head) {
            Ok(text) => text.to_string(),
            // Not UTF-8 (an obs-text value): read as what it would be.
            Err(_) => String::from_utf8_lossy(head).into_owned(),
        };
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut request = httparse::Request::new(&mut headers);
        if request.parse(text.as_bytes()).is_err() {
            return Headers::default();
        }
        let base = text.as_ptr() as usize;
        // Where a part httparse returned lies in `text` (an empty part may
        // point anywhere: it is 0..0).
        let at = |part: &[u8]| match (part.as_ptr() as usize).checked_sub(base) {
            Some(start) if !part.is_empty() && start + part.len() <= text.len() => start..start + part.len(),
            _ => 0..0,
        };
        let fields = request
            .headers
            .iter()
            .map(|h| {
                let value = h.value.trim_ascii();
                (at(h.name.as_bytes()), if value.is_empty() { 0..0 } else { at(value) })
            })
            .collect();
        let mut headers = Headers { text, fields };
        headers.lowercase_names();
        headers
    }

    /// Lowercases every name in the copy of the head.
    fn lowercase_names(&mut self) {
        for (name, _) in &self.fields {
            self.text[name.clone()].make_ascii_lowercase();
        }
    }

    /// Where the HTTP layer notes each field of the next head it parses
    /// (`request::parse_noting`): that head is then read with
    /// [`Headers::take_head`], not parsed again.
    pub(crate) fn fields_mut(&mut self) -> &mut Vec<Field> {
        &mut self.fields
    }

    /// Takes `head`, whose fields were just noted in [`Headers::fields_mut`]:
    /// copied into the space the last head used. A head that is not UTF-8
    /// (an obs-text value) is read as [`Headers::parse`] reads it.
    pub(crate) fn take_head(&mut self, head: &[u8]) {
        match std::str::from_utf8(head) {
            Ok(text) => {
                self.text.clear();
                self.text.push_str(text);
                self.lowercase_names();
            }
            Err(_) => *self = Headers::parse(head),
        }
    }

    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|(n, v)| (&self.text[n.clone()], &self.text[v.clone()]))
    }

    /// The values of `name` (lowercase: no other matches), in order.
    /// Names compare as bytes, length first; only a match is sliced as
    /// text.
    fn values<'a: 'n, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n {
        let text = self.text.as_bytes();
        self.fields
            .iter()
            .filter(move |(n, _)| n.len() == name.len() && text[n.clone()] == *name.as_bytes())
            .map(|(_, v)| &self.text[v.clone()])
    }

    /// The first value of `name` (lowercase).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name} is looked up lowercase");
        self.values(name).next()
    }

    /// Every value of `name` (lowercase: no other matches), joined with
    /// commas (as a signature sees them).
    pub(crate) fn joined(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self.values(name);
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut all = format!("{first},{second}");
                for v in values {
                    all.push(',');
                    all.push_str(v);
                }
                Some(Cow::Owned(all))
            }
        }
    }

    /// These headers and `extra` (names lowercase) after them.
    pub(crate) fn with(&self, extra: &[(String, &str)]) -> Headers {
        let (mut text, mut fields) = (self.text.clone(), self.fields.clone());
        for (name, value) in extra {
            let start = text.len();
            text.push_str(name);
            let name_at = start..text.len();
            text.push_str(": ");
            let value = value.trim();
            let start = text.len();
            text.push_str(value);
            fields.push((name_at, if value.is_empty() { 0..0 } else { start..text.len() }));
            text.push_str("\r\n");
        }
        Headers { text, fields }
    }

    /// Every header whose name starts with `prefix` (lowercase).
    pub(crate) fn starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (String, &'a str)> + 'a {
        self.pairs().filter(move |(n, _)| n.starts_with(prefix)).map(|(n, v)| (n.to_string(), v))
    }
}

/// The query's parameters, percent-decoded, in the order sent.
#[derive(Debug, Default)]
pub(crate) struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    /// Parses a query string; a parameter that does not decode to UTF-8 is
    /// an error.
    pub(crate) fn parse(query: Option<&str>) -> Result<Query, &'static str> {
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((decode(name)?, decode(value)?));
        }
        Ok(Query(params))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Whether `name` can be a header's name: an HTTP token (RFC 9110 §5.6.2).
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` can be sent back as a header's value: no control
/// character but tab (no line break can end the header early).
pub(crate) fn fits_a_header(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// Percent-decodes `text` (`+` stays `+`: SDKs encode spaces as `%20`).
pub(crate) fn decode(text: &str) -> Result<String, &'static str> {
    percent_encoding::percent_decode_str(text).decode_utf8().map(|s| s.into_owned()).map_err(|_| "not UTF-8")
}

/// Percent-encodes `bytes` as SigV4 and S3 listings do: unreserved bytes
/// (`A-Z a-z 0-9 - . _ ~`) as they are, `/` too when `keep_slash`, every
/// other byte as `%XX` in upper case.
pub(crate) fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    encode_into(&mut out, bytes, keep_slash);
    out
}

/// [`encode`], appending to `out`.
pub(crate) fn encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// What a request names: a path-style target (`/`, `/bucket`, `/bucket/`
/// or `/bucket/key`) or a virtual-host-style one (the bucket in the host,
/// the key the whole path).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub(crate) bucket: Option<Cow<'a, str>>,
    /// The key, decoded (empty for the bucket itself).
    pub(crate) key: Cow<'a, str>,
}

impl Target<'_> {
    /// Splits a still-encoded path (borrowing what needs no decoding).
    pub(crate) fn parse(path: &str) -> Result<Target<'_>, &'static str> {
        let rest = path.strip_prefix('/').ok_or("the path must start with /")?;
        if rest.is_empty() {
            return Ok(Target { bucket: None, key: Cow::Borrowed("") });
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let decode = |text| percent_encoding::percent_decode_str(text).decode_utf8().map_err(|_| "not UTF-8");
        Ok(Target { bucket: Some(decode(bucket)?), key: decode(key)? })
    }

    /// The target of a request to `host` (its `Host` header): under
    /// `domain` (`BUCKET.DOMAIN[:PORT]`, any case) the bucket is the host's
    /// first labels and the key the path; otherwise path-style.
    pub(crate) fn of<'a>(
        path: &'a str,
        host: Option<&'a str>,
        domain: Option<&str>,
    ) -> Result<Target<'a>, &'static str> {
        if let (Some(host), Some(domain)) = (host, domain) {
            if let Some(bucket) = virtual_bucket(host, domain) {
                let key = path.strip_prefix('/').ok_or("the path must start with /")?;
                let key = percent_encoding::percent_decode_str(key).decode_utf8().map_err(|_| "not UTF-8")?;
                return Ok(Target { bucket: Some(Cow::Borrowed(bucket)), key });
            }
        }
        Target::parse(path)
    }
}

/// The bucket a virtual-host-style `host` names under `domain`
/// (lowercase), if it is one.
fn virtual_bucket<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    // The port, if any (an IPv6 literal has no bucket in it anyway).
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let split = name.len().checked_sub(domain.len() + 1)?;
    let (bucket, rest) = name.split_at_checked(split)?;
    (rest.as_bytes()[0] == b'.' && rest[1..].eq_ignore_ascii_case(domain) && !bucket.is_empty()).then_some(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_queries_and_headers() {
        assert_eq!(Target::parse("/").unwrap(), Target { bucket: None, key: "".into() });
        assert_eq!(Target::parse("/b").unwrap(), Target { bucket: Some("b".into()), key: "".into() });
        assert_eq!(Target::parse("/b/").unwrap(), Target { bucket: Some("b".into()), key: "".into() });
        assert_eq!(Target::parse("/b/a%20b/c").unwrap(), Target { bucket: Some("b".into()), key: "a b/c".into() });
        assert!(Target::parse("/b/%ff").is_err());
        let d = Some("s3.example.com");
        let of = |path, host| Target::of(path, Some(host), d).unwrap();
        assert_eq!(of("/a%20b/c", "b.s3.example.com"), Target { bucket: Some("b".into()), key: "a b/c".into() });
        assert_eq!(of("/k", "B.S3.Example.com:9000"), Target { bucket: Some("B".into()), key: "k".into() });
        assert_eq!(of("/", "b.s3.example.com."), Target { bucket: Some("b".into()), key: "".into() });
        // The domain itself, another host, no domain set: path-style.
        assert_eq!(of("/b/k", "s3.example.com"), Target { bucket: Some("b".into()), key: "k".into() });
        assert_eq!(of("/b/k", "b.s3.example.org"), Target { bucket: Some("b".into()), key: "k".into() });
        assert_eq!(of("/b/k", "xs3.example.com"), Target { bucket: Some("b".into()), key: "k".into() });
        assert_eq!(Target::of("/k", Some("b.s3.example.com"), None).unwrap().bucket.as_deref(), Some("k"));
        let q = Query::parse(Some("list-type=2&prefix=a%2Fb&delimiter=%2F&uploads")).unwrap();
        assert_eq!(q.get("prefix"), Some("a/b"));
        assert_eq!(q.get("uploads"), Some(""));
        assert!(q.has("uploads") && !q.has("versioning"));
        assert_eq!(encode(b"a b/c~*", true), "a%20b/c~%2A");
        assert_eq!(encode(b"a/b", false), "a%2Fb");
        let h = Headers::parse(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nX-Amz-Meta-A:  1 \r\nx-amz-meta-a: 2\r\n\r\n");
        assert_eq!(h.get("host"), Some("x"));
        assert_eq!(h.joined("x-amz-meta-a").as_deref(), Some("1,2"));
        // Names are kept lowercase, values as sent.
        assert_eq!(h.pairs().map(|(n, _)| n).collect::<Vec<_>>(), ["host", "x-amz-meta-a", "x-amz-meta-a"]);
        assert_eq!(h.starting_with("x-amz-meta-").next(), Some(("x-amz-meta-a".to_string(), "1")));
        assert_eq!(h.starting_with("x-amz-meta-").count(), 2);
    }

    /// The headers noted by the HTTP layer's one parse read as a parse of
    /// their own would.
    #[test]
    fn noted_headers_are_the_parsed_ones() {
        let limits = crate::http::request::Limits { head_bytes_max: 8192, target_bytes_max: 4096 };
        for head in [
            &b"PUT /b/k HTTP/1.1\r\nHost: x\r\nX-Amz-Meta-A:  1 \r\nx-amz-meta-a: 2\r\nEmpty:\r\n\r\nbody"[..],
            b"GET /b HTTP/1.1\r\nHost: h\r\nAuthorization: AWS4-HMAC-SHA256 Credential=a/b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Odd: caf\xe9\r\n\r\n",
        ] {
            // Over the last head's (as a connection's next request does).
            let mut noted = Headers::parse(b"GET /other HTTP/1.1\r\nHost: y\r\nA: b\r\n\r\n");
            let len = match crate::http::request::parse_noting(head, &limits, Some(noted.fields_mut())) {
                Ok(crate::http::request::Parsed::Complete(_, len)) => len,
                _ => panic!("a complete head"),
            };
            noted.take_head(&head[..len]);
            let parsed = Headers::parse(&head[..len]);
            assert_eq!(noted.pairs().collect::<Vec<_>>(), parsed.pairs().collect::<Vec<_>>());
            assert!(noted.get("host").is_some());
        }
    }
}
