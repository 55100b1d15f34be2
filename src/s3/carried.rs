//! What S3 keeps with an object, a folder or a bucket, carried to another
//! node by `percore rebalance` on its `/files/` PUT (header [`HEADER`]): an
//! object's S3 ETag (its MD5, or a multipart upload's) and kept headers, a
//! folder's mark, or a bucket's own settings (CORS rules, tags). The
//! receiving node stores them as S3 would have, stamped for the version it
//! writes, so the object reads back through S3 as it was. A writer on
//! `/files/` may set them; they are checked as S3's own requests are
//! (header names S3 keeps, no control characters, sizes).

use std::os::fd::AsFd;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::head::{fits_a_header, is_token};
use super::meta::{Folder, KEPT_HEADERS};

/// The header.
pub(crate) const HEADER: &str = crate::http::request::CARRIED_HEADER;

/// The most bytes of headers carried (twice S3's 2 KiB of user metadata,
/// for the kept headers and checksums beside it), tags apart.
const HEADERS_BYTES_MAX: usize = 4096;

/// What is carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Carried {
    Object { etag: String, headers: Vec<(String, String)> },
    Folder(Folder),
    Bucket(Bucket),
}

/// A bucket's own settings, as its directory's attributes hold them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cors: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<String>,
}

/// The most bytes one setting's attribute is read with (each module keeps
/// less: `cors`, `bucket_tagging`).
const SETTING_BYTES_MAX: usize = 4096;

impl Bucket {
    /// The settings of the bucket whose directory is `dir` (a setting that
    /// cannot be read as text is left out).
    pub(crate) fn read(dir: impl AsFd) -> Bucket {
        let setting = |name: &str| {
            let mut value = vec![0u8; SETTING_BYTES_MAX];
            let n = rustix::fs::fgetxattr(&dir, name, &mut value).ok()?;
            value.truncate(n);
            String::from_utf8(value).ok()
        };
        Bucket { cors: setting(super::cors::XATTR), tags: setting(super::bucket_tagging::XATTR) }
    }

    /// Each setting there is: its attribute's name and value.
    pub(crate) fn attributes(&self) -> Vec<(&'static str, Vec<u8>)> {
        [(super::cors::XATTR, &self.cors), (super::bucket_tagging::XATTR, &self.tags)]
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.clone()?.into_bytes())))
            .collect()
    }
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
            Carried::Bucket(bucket) => {
                if bucket.cors.as_deref().is_some_and(|v| !super::cors::stored_value_holds(v)) {
                    return Err("the bucket's CORS rules are not rules percore stores".into());
                }
                if bucket.tags.as_deref().is_some_and(|v| !super::bucket_tagging::stored_value_holds(v)) {
                    return Err("the bucket's tags are not tags percore stores".into());
                }
                return Ok(carried);
            }
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
        let cors = r#"[{"origins":["https://a.example"],"methods":["GET","PUT"],"headers":["*"],"max_age":60}]"#;
        let bucket = Carried::Bucket(Bucket { cors: Some(cors.into()), tags: Some("team=a%20b&x=".into()) });
        assert_eq!(Carried::decode(&bucket.encode()), Ok(bucket));
        let bare = Carried::Bucket(Bucket::default());
        assert_eq!(Carried::decode(&bare.encode()), Ok(bare));
        let bucket = |cors: Option<&str>, tags: Option<&str>| {
            Carried::Bucket(Bucket { cors: cors.map(str::to_string), tags: tags.map(str::to_string) }).encode()
        };
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
            (bucket(Some(r#"[{"origins":["*"],"methods":["PATCH"]}]"#), None), "CORS rules"),
            (bucket(Some(r#"[{"origins":[],"methods":["GET"]}]"#), None), "CORS rules"),
            (bucket(Some("[]"), None), "CORS rules"),
            (bucket(Some("<CORSConfiguration/>"), None), "CORS rules"),
            (bucket(None, Some("")), "tags"),
            (bucket(None, Some("aws:x=1")), "tags"),
            ("%%%".to_string(), "base64url"),
            (base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{\"other\":1}"), "does not parse"),
        ] {
            let err = Carried::decode(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
