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
//!
//! Stored compactly ([`Stored`], in `postcard`'s varint form): an object's
//! usual attribute (its MD5, the CRC32 current SDKs send, a short
//! Content-Type) fits in the 60 bytes that ext4 keeps inside a 256-byte
//! inode; a longer value takes a block of its own, written at every
//! upload's flush.
//! Values in the earlier JSON form are still read.

use serde::{Deserialize, Serialize};

use super::head::{fits_a_header, is_token};
use super::sigv4::{hex, push_hex};
use crate::files;

/// The extended attribute's name.
pub(crate) const XATTR: &str = "user.percore.s3";

/// The most bytes of user metadata (`x-amz-meta-*` names and values), as on S3.
pub(crate) const USER_META_BYTES_MAX: usize = 2048;

/// Representation headers stored and returned as given.
/// `expires` has no number of its own in [`Name`]: it is stored by its
/// name, which earlier versions read as well.
pub(crate) const KEPT_HEADERS: [&str; 6] =
    ["content-type", "content-disposition", "content-encoding", "content-language", "cache-control", "expires"];

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
    /// The metadata in `value` if it describes the version `stamp`.
    pub(crate) fn decode(value: &[u8], stamp: &str) -> Option<ObjectMeta> {
        let Some(compact) = value.strip_prefix(&[STORED_V1]) else {
            return serde_json::from_slice::<ObjectMeta>(value).ok().filter(|m| m.stamp == stamp);
        };
        let stored: Stored = postcard::from_bytes(compact).ok()?;
        let (_, size, mtime) = files::etag_fields(stamp)?;
        if (stored.size, (stored.secs, stored.nanos)) != (size, mtime) {
            return None;
        }
        let headers = stored.headers.iter().map(|(name, value)| (name.text().to_string(), value.to_string())).collect();
        Some(ObjectMeta { stamp: stamp.to_string(), etag: stored.etag.text(), headers })
    }
}

/// The extended attribute that marks a directory as a folder (a key that
/// ends in `/`: `folder`).
pub(crate) const FOLDER_XATTR: &str = "user.percore.s3.folder";

/// Every folder's ETag: the MD5 of no bytes.
pub(crate) const FOLDER_ETAG: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";

/// What a folder's attribute holds (JSON: folders are few, and read only
/// by their own GET and HEAD and by listings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Folder {
    /// When it was made, seconds since the epoch.
    pub(crate) modified: u64,
    /// Kept headers and `x-amz-meta-*`, as [`ObjectMeta`] holds them.
    pub(crate) headers: Vec<(String, String)>,
}

/// The folder `dir` is, if it is one.
pub(crate) fn read_folder(dir: &impl std::os::fd::AsFd) -> Option<Folder> {
    with_attribute(dir, FOLDER_XATTR, |value| serde_json::from_slice(value).ok()).flatten()
}

/// The bytes of an attribute read on the stack: an object's usual one is
/// under 200 bytes. Read into a zeroed 8 KiB buffer on the heap instead,
/// it cost about 2,300 of an uncached S3 GET's 31,700 user-space
/// instructions outside SHA-256, and 2,650 of a plain GET's 19,000
/// (callgrind, `benches/instructions.sh`; BENCHMARKS.md, session 21).
const ATTRIBUTE_BYTES_ON_STACK: usize = 512;

/// Calls `f` with the value of the extended attribute `name` of `fd`,
/// whatever its size (a larger one is read into 4 KiB, else 64 KiB, on the
/// heap); none if it has none.
fn with_attribute<R>(fd: &impl std::os::fd::AsFd, name: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut small = [0u8; ATTRIBUTE_BYTES_ON_STACK];
    match rustix::fs::fgetxattr(fd, name, &mut small) {
        Ok(n) => return Some(f(&small[..n])),
        Err(rustix::io::Errno::RANGE) => {}
        Err(_) => return None,
    }
    // Larger: on the heap, up to the largest value Linux keeps (64 KiB).
    for size in [4 << 10, 64 << 10] {
        let mut value = vec![0u8; size];
        match rustix::fs::fgetxattr(fd, name, &mut value) {
            Ok(n) => return Some(f(&value[..n])),
            Err(rustix::io::Errno::RANGE) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// The S3 ETag of an MD5.
pub(crate) fn md5_etag(md5: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * md5.len());
    out.push('"');
    push_hex(&mut out, md5);
    out.push('"');
    out
}

/// The attribute's value for the version `stamp` (a validator of
/// `files::etag_of`'s), its S3 `etag` and kept `headers`.
pub(crate) fn encode(stamp: &str, etag: &str, headers: &[(String, String)]) -> Vec<u8> {
    let Some((_, size, (secs, nanos))) = files::etag_fields(stamp) else {
        // Not a validator of `etag_of`'s (only tests make others): the
        // JSON form holds any text.
        let meta = ObjectMeta { stamp: stamp.into(), etag: etag.into(), headers: headers.to_vec() };
        return serde_json::to_vec(&meta).expect("plain strings serialize");
    };
    let headers = headers.iter().map(|(name, value)| (Name::of(name), value.as_str())).collect();
    let stored = Stored { size, secs, nanos, etag: Etag::of(etag), headers };
    let mut value = Vec::with_capacity(64);
    value.push(STORED_V1);
    postcard::to_extend(&stored, value).expect("postcard writes any value to a vector")
}

/// The first byte of a compact value (a JSON one starts with `{`).
const STORED_V1: u8 = 1;

/// What the attribute holds, compactly. The version it describes is its
/// size and modification time without the inode: the attribute lives on
/// that inode, so its number tells no version of it from another (a spare
/// reused for a new version keeps it; the new version's time is made
/// later than the old's); a copy that keeps attributes and times would
/// match as well (not tested: no tool of ours copies objects that way).
///
/// This layout, and the order of [`Etag`]'s and [`Name`]'s variants
/// (stored as their index), is what stored objects hold: change it only
/// with a new first byte, and keep reading this one.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    size: u64,
    secs: i64,
    nanos: u32,
    #[serde(borrow)]
    etag: Etag<'a>,
    #[serde(borrow)]
    headers: Vec<(Name<'a>, &'a str)>,
}

/// An S3 ETag: an MD5 (16 bytes rather than 34 characters) or a multipart
/// upload's MD5 of its parts' MD5s and their count; any other text as is.
#[derive(Serialize, Deserialize)]
enum Etag<'a> {
    Md5([u8; 16]),
    Parts([u8; 16], u32),
    Text(&'a str),
}

impl<'a> Etag<'a> {
    fn of(etag: &'a str) -> Etag<'a> {
        // Only texts that [`Etag::text`] writes back exactly: lower-case
        // hex, a count without sign or leading zero.
        let digest = |hex: &str| {
            let lower = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            lower.then(|| u128::from_str_radix(hex, 16).ok()).flatten().map(u128::to_be_bytes)
        };
        let count = |digits: &str| {
            let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            (plain && (digits.len() == 1 || !digits.starts_with('0'))).then(|| digits.parse().ok()).flatten()
        };
        let Some(inner) = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')) else { return Etag::Text(etag) };
        let compact = match inner.split_once('-') {
            None => digest(inner).map(Etag::Md5),
            Some((hex, parts)) => digest(hex).zip(count(parts)).map(|(md5, parts)| Etag::Parts(md5, parts)),
        };
        compact.unwrap_or(Etag::Text(etag))
    }

    fn text(&self) -> String {
        match self {
            Etag::Md5(md5) => md5_etag(md5),
            Etag::Parts(md5, parts) => format!("\"{}-{parts}\"", hex(md5)),
            Etag::Text(text) => text.to_string(),
        }
    }
}

/// A stored header's name: one of [`KEPT_HEADERS`] or a checksum's (one
/// byte), or an `x-amz-meta-*` name.
#[derive(Serialize, Deserialize)]
enum Name<'a> {
    ContentType,
    ContentDisposition,
    ContentEncoding,
    ContentLanguage,
    CacheControl,
    ChecksumCrc32,
    ChecksumCrc32c,
    ChecksumSha1,
    ChecksumSha256,
    Other(&'a str),
    // Added later, after `Other`: a variant's number is what is stored, so
    // new ones go at the end.
    ChecksumCrc64Nvme,
    ChecksumSha512,
    ChecksumMd5,
    ChecksumType,
}

impl<'a> Name<'a> {
    fn of(name: &'a str) -> Name<'a> {
        match name {
            "content-type" => Name::ContentType,
            "content-disposition" => Name::ContentDisposition,
            "content-encoding" => Name::ContentEncoding,
            "content-language" => Name::ContentLanguage,
            "cache-control" => Name::CacheControl,
            "x-amz-checksum-crc32" => Name::ChecksumCrc32,
            "x-amz-checksum-crc32c" => Name::ChecksumCrc32c,
            "x-amz-checksum-sha1" => Name::ChecksumSha1,
            "x-amz-checksum-sha256" => Name::ChecksumSha256,
            "x-amz-checksum-crc64nvme" => Name::ChecksumCrc64Nvme,
            "x-amz-checksum-sha512" => Name::ChecksumSha512,
            "x-amz-checksum-md5" => Name::ChecksumMd5,
            "x-amz-checksum-type" => Name::ChecksumType,
            other => Name::Other(other),
        }
    }

    fn text(&self) -> &'a str {
        match self {
            Name::ContentType => "content-type",
            Name::ContentDisposition => "content-disposition",
            Name::ContentEncoding => "content-encoding",
            Name::ContentLanguage => "content-language",
            Name::CacheControl => "cache-control",
            Name::ChecksumCrc32 => "x-amz-checksum-crc32",
            Name::ChecksumCrc32c => "x-amz-checksum-crc32c",
            Name::ChecksumSha1 => "x-amz-checksum-sha1",
            Name::ChecksumSha256 => "x-amz-checksum-sha256",
            Name::ChecksumCrc64Nvme => "x-amz-checksum-crc64nvme",
            Name::ChecksumSha512 => "x-amz-checksum-sha512",
            Name::ChecksumMd5 => "x-amz-checksum-md5",
            Name::ChecksumType => "x-amz-checksum-type",
            Name::Other(name) => name,
        }
    }
}

/// Reads the metadata of `file` (open), if it has current metadata.
pub(crate) fn read(file: &impl std::os::fd::AsFd, stamp: &str) -> Option<ObjectMeta> {
    with_attribute(file, XATTR, |value| ObjectMeta::decode(value, stamp)).flatten()
}

/// The headers of a PUT (or a multipart upload's start) that are stored
/// with the object; an error if the user metadata is too large.
pub(crate) fn from_request(headers: &super::head::Headers) -> Result<Vec<(String, String)>, String> {
    kept(|name| headers.get(name), headers.starting_with("x-amz-meta-"))
}

/// The same from a browser form's fields (PostObject), names in any case.
/// Their values, unlike a head's, may hold any byte: one that could not be
/// sent back as a header (a control character, a name that is no token)
/// is refused.
pub(crate) fn from_fields(fields: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    const META: &str = "x-amz-meta-";
    let named = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let is_meta =
        |n: &str| n.len() > META.len() && n.is_char_boundary(META.len()) && n[..META.len()].eq_ignore_ascii_case(META);
    for (name, value) in fields {
        let kept_name = is_meta(name) || KEPT_HEADERS.iter().any(|k| k.eq_ignore_ascii_case(name));
        if kept_name && (!is_token(name) || !fits_a_header(value)) {
            return Err(format!("the form field {name} cannot be stored as a header: no control characters"));
        }
    }
    let user = fields.iter().filter(|(n, _)| is_meta(n)).map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()));
    kept(named, user)
}

/// The kept headers (`get`) and the user metadata (`user`, names
/// lowercase) of an object.
fn kept<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    user: impl Iterator<Item = (String, &'a str)>,
) -> Result<Vec<(String, String)>, String> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for name in KEPT_HEADERS {
        let Some(value) = get(name) else { continue };
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
    let mut bytes = 0;
    for (name, value) in user {
        bytes += name.len() - "x-amz-meta-".len() + value.len();
        kept.push((name, value.to_string()));
    }
    if bytes > USER_META_BYTES_MAX {
        return Err(format!(
            "your metadata headers exceed the maximum allowed metadata size ({USER_META_BYTES_MAX} bytes)"
        ));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A validator as the store makes them.
    fn stamp(ino: u64, size: u64, secs: i64, nanos: u32) -> String {
        files::etag_of(ino, size, (secs, nanos))
    }

    #[test]
    fn metadata_comes_back_as_stored_and_only_for_its_version() {
        let single = "\"9e107d9d372bb6826bd81d3542a419d6\"";
        let multipart = "\"0123456789abcdef0123456789abcdef-17\"";
        let odd = ["\"9E107D9D372BB6826BD81D3542A419D6\"", "\"0123456789abcdef0123456789abcdef-017\"", "unquoted", ""];
        let headers = vec![
            ("content-type".to_string(), "application/octet-stream".to_string()),
            ("x-amz-meta-mtime".to_string(), "1764000000.5".to_string()),
            ("cache-control".to_string(), String::new()),
        ];
        let now = stamp(0x51ab3, 4096, 1_764_950_400, 987_654_321);
        for etag in [single, multipart].into_iter().chain(odd) {
            let meta = ObjectMeta { stamp: now.clone(), etag: etag.into(), headers: headers.clone() };
            let value = encode(&meta.stamp, &meta.etag, &meta.headers);
            assert_eq!(value[0], STORED_V1);
            assert_eq!(ObjectMeta::decode(&value, &now), Some(meta.clone()), "{etag}");
            // Another size or time is another version (a reused spare gets a
            // later time); the inode alone does not tell (see `Stored`).
            for other in
                [stamp(0x51ab3, 4097, 1_764_950_400, 987_654_321), stamp(0x51ab3, 4096, 1_764_950_400, 987_654_322)]
            {
                assert_eq!(ObjectMeta::decode(&value, &other), None);
            }
            let copied = stamp(0x77, 4096, 1_764_950_400, 987_654_321);
            assert_eq!(ObjectMeta::decode(&value, &copied).map(|m| m.etag), Some(etag.to_string()));
        }
        // A value cut short (or any other damage postcard notices) is no metadata.
        let value = encode(&now, single, &headers);
        for cut in 0..value.len() {
            assert_eq!(ObjectMeta::decode(&value[..cut], &now), None, "{cut}");
        }
    }

    #[test]
    fn an_objects_usual_metadata_fits_in_an_ext4_inode() {
        // ext4 with 256-byte inodes keeps up to 60 bytes of one attribute
        // of this name in the inode (measured: 60 stay, 64 take a block).
        // The largest single PUT, a time in this century, the CRC32 that
        // current SDKs send (boto3, aws-cli) and a Content-Type or none.
        // aws-cli v2 sends a CRC64NVME instead.
        let crc32 = ("x-amz-checksum-crc32".to_string(), "fRgE8w==".to_string());
        let crc64 = ("x-amz-checksum-crc64nvme".to_string(), "rosUhgp5mIg=".to_string());
        for (content_type, crc) in [None, Some("text/plain"), Some("image/jpeg")]
            .into_iter()
            .flat_map(|t| [(t, crc32.clone()), (t, crc64.clone())])
        {
            let headers = content_type.map(|t| ("content-type".to_string(), t.to_string())).into_iter().chain([crc]);
            let meta = ObjectMeta {
                stamp: stamp(u32::MAX as u64, 5 << 30, 4_000_000_000, 999_999_999),
                etag: "\"9e107d9d372bb6826bd81d3542a419d6\"".into(),
                headers: headers.collect(),
            };
            let value = encode(&meta.stamp, &meta.etag, &meta.headers);
            assert!(value.len() <= 60, "{} bytes: {value:?}", value.len());
        }
    }

    #[test]
    fn attributes_of_any_size_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        assert_eq!(with_attribute(&file, XATTR, <[u8]>::to_vec), None, "no attribute: none");
        for size in [
            0,
            1,
            ATTRIBUTE_BYTES_ON_STACK - 1,
            ATTRIBUTE_BYTES_ON_STACK,
            ATTRIBUTE_BYTES_ON_STACK + 1,
            3000,
            4096,
            9000,
        ] {
            let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            if let Err(err) = rustix::fs::fsetxattr(&file, XATTR, &value, rustix::fs::XattrFlags::empty()) {
                eprintln!("skipped: this file system keeps no user attributes ({err})");
                return;
            }
            assert_eq!(with_attribute(&file, XATTR, <[u8]>::to_vec), Some(value), "{size} bytes");
        }
    }

    #[test]
    fn stored_names_keep_their_numbers() {
        // A name is stored as its variant's number: values written by
        // earlier versions must read the same.
        let names = [
            "content-type",
            "content-disposition",
            "content-encoding",
            "content-language",
            "cache-control",
            "x-amz-checksum-crc32",
            "x-amz-checksum-crc32c",
            "x-amz-checksum-sha1",
            "x-amz-checksum-sha256",
            "x-amz-meta-a",
            "x-amz-checksum-crc64nvme",
            "x-amz-checksum-sha512",
            "x-amz-checksum-md5",
            "x-amz-checksum-type",
        ];
        for (number, name) in names.into_iter().enumerate() {
            let stored = postcard::to_allocvec(&Name::of(name)).unwrap();
            assert_eq!(stored[0] as usize, number, "{name}");
            assert_eq!(postcard::from_bytes::<Name>(&stored).unwrap().text(), name);
        }
    }

    #[test]
    fn json_values_of_earlier_versions_are_read() {
        let now = stamp(0x51ab3, 4096, 1_764_950_400, 987_654_321);
        let meta = ObjectMeta {
            stamp: now.clone(),
            etag: "\"9e107d9d372bb6826bd81d3542a419d6\"".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
        };
        let json = serde_json::to_vec(&meta).unwrap();
        assert_eq!(ObjectMeta::decode(&json, &now), Some(meta));
        assert_eq!(ObjectMeta::decode(&json, &stamp(0x51ab3, 4096, 1_764_950_401, 0)), None);
    }

    #[test]
    fn stale_metadata_is_ignored() {
        let meta = ObjectMeta {
            stamp: "\"v1\"".into(),
            etag: "\"abc\"".into(),
            headers: vec![("content-type".into(), "a/b".into())],
        };
        let value = encode(&meta.stamp, &meta.etag, &meta.headers);
        assert_eq!(ObjectMeta::decode(&value, "\"v1\""), Some(meta.clone()));
        assert_eq!(ObjectMeta::decode(&value, "\"v2\""), None);
        assert_eq!(ObjectMeta::decode(b"garbage", "\"v1\""), None);
    }
}
