//! What an S3 request says beyond what the HTTP layer parses: every header
//! (signatures cover any of them), the query's parameters, and the bucket
//! and key of the path. Pure: no I/O.

/// The head's headers, names lowercased, values trimmed, in the order sent.
#[derive(Debug, Default)]
pub(crate) struct Headers(Vec<(String, String)>);

/// At most this many headers (the HTTP layer's own limit).
const HEADERS_MAX: usize = 64;

impl Headers {
    /// Reads the headers of a head the HTTP layer has already accepted.
    pub(crate) fn parse(head: &[u8]) -> Headers {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut request = httparse::Request::new(&mut headers);
        if request.parse(head).is_err() {
            return Headers::default();
        }
        Headers(
            request
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
                .collect(),
        )
    }

    /// The first value of `name` (lowercase).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, joined with commas (as a signature sees them).
    pub(crate) fn joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    /// Every header whose name starts with `prefix`.
    pub(crate) fn starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0.iter().filter(move |(n, _)| n.starts_with(prefix)).map(|(n, v)| (n.as_str(), v.as_str()))
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

/// Percent-decodes `text` (`+` stays `+`: SDKs encode spaces as `%20`).
pub(crate) fn decode(text: &str) -> Result<String, &'static str> {
    percent_encoding::percent_decode_str(text).decode_utf8().map(|s| s.into_owned()).map_err(|_| "not UTF-8")
}

/// Percent-encodes `bytes` as SigV4 and S3 listings do: unreserved bytes
/// (`A-Z a-z 0-9 - . _ ~`) as they are, `/` too when `keep_slash`, every
/// other byte as `%XX` in upper case.
pub(crate) fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path-style target: `/`, `/bucket`, `/bucket/` or `/bucket/key`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) bucket: Option<String>,
    /// The key, decoded (empty for the bucket itself).
    pub(crate) key: String,
}

impl Target {
    /// Splits a still-encoded path.
    pub(crate) fn parse(path: &str) -> Result<Target, &'static str> {
        let rest = path.strip_prefix('/').ok_or("the path must start with /")?;
        if rest.is_empty() {
            return Ok(Target { bucket: None, key: String::new() });
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(Target { bucket: Some(decode(bucket)?), key: decode(key)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_queries_and_headers() {
        assert_eq!(Target::parse("/").unwrap(), Target { bucket: None, key: String::new() });
        assert_eq!(Target::parse("/b").unwrap(), Target { bucket: Some("b".into()), key: String::new() });
        assert_eq!(Target::parse("/b/").unwrap(), Target { bucket: Some("b".into()), key: String::new() });
        assert_eq!(Target::parse("/b/a%20b/c").unwrap(), Target { bucket: Some("b".into()), key: "a b/c".into() });
        assert!(Target::parse("/b/%ff").is_err());
        let q = Query::parse(Some("list-type=2&prefix=a%2Fb&delimiter=%2F&uploads")).unwrap();
        assert_eq!(q.get("prefix"), Some("a/b"));
        assert_eq!(q.get("uploads"), Some(""));
        assert!(q.has("uploads") && !q.has("versioning"));
        assert_eq!(encode(b"a b/c~*", true), "a%20b/c~%2A");
        assert_eq!(encode(b"a/b", false), "a%2Fb");
        let h = Headers::parse(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nX-Amz-Meta-A:  1 \r\nx-amz-meta-a: 2\r\n\r\n");
        assert_eq!(h.get("host"), Some("x"));
        assert_eq!(h.joined("x-amz-meta-a").as_deref(), Some("1,2"));
        assert_eq!(h.starting_with("x-amz-meta-").count(), 2);
    }
}
