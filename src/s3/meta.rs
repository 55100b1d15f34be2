//! What S3 keeps with an object besides its bytes: the ETag clients check
//! (the MD5 of the content, or `md5-of-part-md5s-N` for a multipart
//! upload), its Content-Type and the `x-amz-meta-*` headers, and a few
//! representation headers (Content-Disposition, ...). Stored in one
//! extended attribute of the object's file, set before the file is flushed
//! and committed, so it is as durable as the bytes and goes with them
//! through the rename.
//!
//! The attribute names the version it describes (`stamp`: percore's own
//! validator of inode, size and modification time). A file replaced through
//! `/files/`, or an old version reused as a spare, no longer matches: its
//! stale attribute is ignored, never served.

use serde::{Deserialize, Serialize};

/// The extended attribute's name.
pub(crate) const XATTR: &str = "user.percore.s3";

/// The most bytes of user metadata (`x-amz-meta-*` names and values), as on S3.
pub(crate) const USER_META_BYTES_MAX: usize = 2048;

/// Representation headers stored and returned as given.
pub(crate) const KEPT_HEADERS: [&str; 5] =
    ["content-type", "content-disposition", "content-encoding", "content-language", "cache-control"];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectMeta {
    /// The version this describes (`files::etag_of` of the file).
    pub(crate) stamp: String,
    /// The S3 ETag, quoted.
    pub(crate) etag: String,
    /// Kept headers (`KEPT_HEADERS`) and `x-amz-meta-*`, names lowercase.
    pub(crate) headers: Vec<(String, String)>,
}

impl ObjectMeta {
    /// The attribute's value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain strings serialize")
    }

    /// The metadata in `value` if it describes the version `stamp`.
    pub(crate) fn decode(value: &[u8], stamp: &str) -> Option<ObjectMeta> {
        serde_json::from_slice::<ObjectMeta>(value).ok().filter(|m| m.stamp == stamp)
    }
}

/// Reads the metadata of `file` (open), if it has current metadata.
pub(crate) fn read(file: &impl std::os::fd::AsFd, stamp: &str) -> Option<ObjectMeta> {
    let mut value = vec![0u8; 8192];
    let n = rustix::fs::fgetxattr(file, XATTR, &mut value).ok()?;
    ObjectMeta::decode(&value[..n], stamp)
}

/// The headers of a PUT (or a multipart upload's start) that are stored
/// with the object; an error if the user metadata is too large.
pub(crate) fn from_request(headers: &super::head::Headers) -> Result<Vec<(String, String)>, String> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for name in KEPT_HEADERS {
        let Some(value) = headers.get(name) else { continue };
        let value = if name == "content-encoding" {
            // `aws-chunked` is how this request's body travelled, not the
            // object's encoding (S3 drops it too).
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            value.to_string()
        };
        if !value.is_empty() {
            kept.push((name.to_string(), value));
        }
    }
    let mut user = 0;
    for (name, value) in headers.starting_with("x-amz-meta-") {
        user += name.len() - "x-amz-meta-".len() + value.len();
        kept.push((name, value.to_string()));
    }
    if user > USER_META_BYTES_MAX {
        return Err(format!(
            "your metadata headers exceed the maximum allowed metadata size ({USER_META_BYTES_MAX} bytes)"
        ));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_metadata_is_ignored() {
        let meta = ObjectMeta {
            stamp: "\"v1\"".into(),
            etag: "\"abc\"".into(),
            headers: vec![("content-type".into(), "a/b".into())],
        };
        let value = meta.encode();
        assert_eq!(ObjectMeta::decode(&value, "\"v1\""), Some(meta.clone()));
        assert_eq!(ObjectMeta::decode(&value, "\"v2\""), None);
        assert_eq!(ObjectMeta::decode(b"garbage", "\"v1\""), None);
    }
}
