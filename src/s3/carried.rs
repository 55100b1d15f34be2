//! What S3 keeps with an object or a folder, carried to another node by
//! `percore rebalance` on its `/files/` PUT (header [`HEADER`]): an
//! object's S3 ETag (its MD5, or a multipart upload's) and kept headers, or
//! a folder's mark. The receiving node stores them as S3 would have, stamped
//! for the version it writes, so the object reads back through S3 as it
//! was. A writer on `/files/` may set them; they are checked as S3's own
//! requests are (header names S3 keeps, no control characters, sizes).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::head::{fits_a_header, is_token};
use super::meta::{Folder, KEPT_HEADERS};

/// The header.
pub(crate) const HEADER: &str = "X-Percore-S3";

/// The most bytes of headers carried (twice S3's 2 KiB of user metadata,
/// for the kept headers and checksums beside it), tags apart.
const HEADERS_BYTES_MAX: usize = 4096;

/// What is carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Carried {
    Object { etag: String, headers: Vec<(String, String)> },
    Folder(Folder),
}

impl Carried {
    /// The header's value: base64url of JSON.
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("plain data serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads and checks a header's value.
    pub(crate) fn decode(value: &str) -> Result<Carried, String> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .map_err(|_| "not base64url (made by `percore rebalance`)".to_string())?;
        let carried: Carried = serde_json::from_slice(&json).map_err(|e| format!("does not parse: {e}"))?;
        let headers = match &carried {
            Carried::Object { etag, headers } => {
                let inner = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or("");
                let plain = inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
                if inner.is_empty() || inner.len() > 64 || !plain {
                    return Err(format!("the ETag {etag} is not an S3 ETag (a quoted MD5, or one with -N)"));
                }
                headers
            }
            Carried::Folder(folder) => &folder.headers,
        };
        check_headers(headers)?;
        Ok(carried)
    }
}

/// Names S3 keeps, values that can be sent back as headers, within bounds.
fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    let mut bytes = 0;
    for (name, value) in headers {
        let kept = KEPT_HEADERS.contains(&name.as_str())
            || (name.len() > 11 && name.starts_with("x-amz-meta-"))
            || name.starts_with("x-amz-checksum-")
            || (name == super::parts::HEADER && super::parts::decode(value).is_some())
            || (name == super::tags::HEADER && super::tags::stored_value_holds(value));
        let token = is_token(name) && !name.bytes().any(|b| b.is_ascii_uppercase());
        if !kept || !token {
            return Err(format!("{name} is not a header S3 keeps with an object"));
        }
        if !fits_a_header(value) {
            return Err(format!("the value of {name} holds a control character"));
        }
        // (Tags have limits of their own, checked above.)
        if name != super::tags::HEADER {
            bytes += name.len() + value.len();
        }
    }
    if bytes > HEADERS_BYTES_MAX {
        return Err(format!("{bytes} bytes of headers (at most {HEADERS_BYTES_MAX})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_carried_comes_back_and_nothing_else_passes() {
        let object = Carried::Object {
            etag: "\"0123456789abcdef0123456789abcdef-3\"".into(),
            headers: vec![
                ("content-type".into(), "text/x-n".into()),
                ("x-amz-meta-n".into(), "7".into()),
                ("x-percore-parts".into(), "5242880*2,7".into()),
                ("x-percore-tags".into(), format!("a=b&{}=c", "t".repeat(128))),
                ("x-amz-meta-big".into(), "m".repeat(2000)),
            ],
        };
        assert_eq!(Carried::decode(&object.encode()), Ok(object));
        let folder = Carried::Folder(Folder { modified: 5, headers: vec![("x-amz-meta-a".into(), "b".into())] });
        assert_eq!(Carried::decode(&folder.encode()), Ok(folder));
        let object = |etag: &str, name: &str, value: &str| {
            Carried::Object { etag: etag.into(), headers: vec![(name.into(), value.into())] }.encode()
        };
        let md5 = "\"d41d8cd98f00b204e9800998ecf8427e\"";
        for (bad, why) in [
            (object("\"<script>\"", "content-type", "a"), "not an S3 ETag"),
            (object("d41d8cd98f00b204e9800998ecf8427e", "content-type", "a"), "not an S3 ETag"),
            (object(md5, "set-cookie", "a"), "not a header S3 keeps"),
            (object(md5, "x-amz-meta-", "a"), "not a header S3 keeps"),
            (object(md5, "x-amz-meta-a b", "a"), "not a header S3 keeps"),
            (object(md5, "x-amz-meta-a", "a\r\nInjected: 1"), "control character"),
            (object(md5, "x-amz-meta-a", &"v".repeat(5000)), "at most"),
            (object(md5, "x-percore-parts", "5*0"), "not a header S3 keeps"),
            (object(md5, "x-percore-other", "1"), "not a header S3 keeps"),
            (object(md5, "x-percore-tags", "aws:x=1"), "not a header S3 keeps"),
            (object(md5, "x-percore-tags", ""), "not a header S3 keeps"),
            ("%%%".to_string(), "base64url"),
            (base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{\"other\":1}"), "does not parse"),
        ] {
            let err = Carried::decode(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
