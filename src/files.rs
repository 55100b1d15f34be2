//! The file store's read side: `GET`/`HEAD /files/<path>`.
//!
//! Paths are percent-decoded, then refused if they could mean anything but a
//! plain relative path (empty, `.` or `..` segments, empty segments, NUL,
//! backslash, the reserved `.percore-` prefix of temporary files), and finally
//! opened with openat2 `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` relative to
//! the data directory, so a symlink that leaves it is never followed.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use percore_io::{Dir, File, Metadata, OpenOptions};

/// Temporary files (uploads in progress) start with this; they are never
/// served or listed.
pub(crate) const TEMP_PREFIX: &[u8] = b".percore-";

/// Why a path is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Malformed or unsafe: 400.
    Invalid(&'static str),
}

/// The longest name of one path component (Linux's NAME_MAX).
const NAME_BYTES_MAX: usize = 255;

/// Decodes and checks the part of a target after `/files/`.
///
/// Strict, so that one object has one spelling and no spelling leaves the
/// data directory: every `%` starts two hex digits; an encoded `/`, `\` or
/// NUL is refused (a name may not hide a separator); the decoded path is
/// UTF-8 without control bytes, `#` or `\`; no segment is empty, `.` or `..`,
/// longer than 255 bytes, or a reserved temporary name.
pub(crate) fn object_path(encoded: &str) -> Result<Vec<u8>, PathError> {
    let raw = encoded.as_bytes();
    let classes = classes(raw);
    // Most paths have no escapes: they are their own decoding (and, coming
    // from a `&str`, UTF-8 already).
    let (decoded, classes) = if classes & PERCENT != 0 {
        let decoded = percent_decode(raw)?;
        if std::str::from_utf8(&decoded).is_err() {
            return Err(PathError::Invalid("path is not UTF-8"));
        }
        // A `#` that was escaped is a plain byte of a name.
        let classes = self::classes(&decoded) & !HASH;
        (decoded, classes)
    } else if classes & HASH != 0 {
        return Err(PathError::Invalid("fragment in request target"));
    } else {
        (raw.to_vec(), classes)
    };
    checked(&decoded, classes)?;
    Ok(decoded)
}

/// The checks after decoding, shared by [`object_path`] and [`check_path`]:
/// `classes` are those of `decoded`'s bytes.
fn checked(decoded: &[u8], classes: u8) -> Result<(), PathError> {
    if decoded.is_empty() {
        return Err(PathError::Invalid("empty path"));
    }
    if classes & BACKSLASH != 0 {
        return Err(PathError::Invalid("backslash in path"));
    }
    if classes & CONTROL != 0 {
        return Err(PathError::Invalid("control character in path"));
    }
    match decoded.split(|&b| b == b'/').find_map(segment_problem) {
        Some(why) => Err(PathError::Invalid(why)),
        None => Ok(()),
    }
}

/// Checks a decoded path by [`object_path`]'s rules (UTF-8, no control
/// byte or backslash, no empty, `.`, `..`, reserved or overlong segment).
pub(crate) fn check_path(decoded: &[u8]) -> Result<(), PathError> {
    if std::str::from_utf8(decoded).is_err() {
        return Err(PathError::Invalid("path is not UTF-8"));
    }
    checked(decoded, classes(decoded))
}

const PERCENT: u8 = 1;
const HASH: u8 = 2;
const BACKSLASH: u8 = 4;
const CONTROL: u8 = 8;

/// The classes of byte (above) that occur in `bytes`: one pass without
/// branches.
fn classes(bytes: &[u8]) -> u8 {
    const TABLE: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = CONTROL;
            b += 1;
        }
        table[0x7f] = CONTROL;
        table[b'%' as usize] = PERCENT;
        table[b'#' as usize] = HASH;
        table[b'\\' as usize] = BACKSLASH;
        table
    };
    bytes.iter().fold(0, |found, &b| found | TABLE[b as usize])
}

/// Why one segment of a decoded path is refused, if it is.
fn segment_problem(segment: &[u8]) -> Option<&'static str> {
    match segment {
        b"" => Some("empty path segment"),
        b"." | b".." => Some("dot segment in path"),
        s if s.starts_with(TEMP_PREFIX) => Some("reserved name"),
        s if s.len() > NAME_BYTES_MAX => Some("path segment longer than 255 bytes"),
        _ => None,
    }
}

/// Decodes every `%XX` of `raw`, refusing what [`object_path`] refuses while
/// decoding.
fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (raw.get(i + 1).and_then(|&b| hex(b)), raw.get(i + 2).and_then(|&b| hex(b)))
                else {
                    return Err(PathError::Invalid("a % not followed by two hex digits"));
                };
                let byte = (hi * 16 + lo) as u8;
                match byte {
                    b'/' => return Err(PathError::Invalid("encoded slash in path")),
                    b'\\' => return Err(PathError::Invalid("backslash in path")),
                    0 => return Err(PathError::Invalid("NUL in path")),
                    _ => decoded.push(byte),
                }
                i += 3;
            }
            b'#' => return Err(PathError::Invalid("fragment in request target")),
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    Ok(decoded)
}

/// What a path beneath the data directory names.
pub(crate) enum Found {
    File(File, Metadata),
    /// A directory (a listing lives at its slash form).
    Dir,
    /// Nothing servable: missing, not a regular file or directory, or a
    /// path that leaves the data directory.
    Nothing,
}

/// Opens a regular file beneath `root`.
pub(crate) async fn open(root: &Dir, path: &[u8]) -> io::Result<Found> {
    let options = OpenOptions::new();
    let file = match root.open_file(OsStr::from_bytes(path), &options).await {
        Ok(file) => file,
        Err(err) => {
            return match err.raw_os_error() {
                // Missing, a file used as a directory, a path that leaves the
                // data directory (EXDEV), a refused magic link (ELOOP): all
                // look the same from outside.
                Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP | libc::ENAMETOOLONG) => {
                    Ok(Found::Nothing)
                }
                _ => Err(err),
            };
        }
    };
    let meta = file.metadata().await?;
    if meta.is_dir() {
        return Ok(Found::Dir);
    }
    if !meta.is_file() {
        return Ok(Found::Nothing);
    }
    Ok(Found::File(file, meta))
}

/// The HTTP status of a file-system error met while storing a file.
pub(crate) fn io_status(err: &std::io::Error) -> u16 {
    match err.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => 507,
        Some(libc::EMFILE | libc::ENFILE) => 503,
        Some(libc::ENOTDIR | libc::EISDIR | libc::EEXIST) => 409,
        Some(libc::EXDEV | libc::ELOOP) => 400,
        Some(libc::EACCES | libc::EPERM) => 403,
        // The file system went read-only (an error made the kernel remount
        // it, or an operator did): nothing the client can fix.
        Some(libc::EROFS) => 503,
        _ => 500,
    }
}

/// A strong validator: changes whenever the file is replaced or modified.
pub(crate) fn etag(meta: &Metadata) -> String {
    etag_of(meta.ino, meta.size, meta.mtime)
}

/// The ETag of inode `ino` with `size` bytes, modified at `mtime` (seconds,
/// nanoseconds): the one format, whether the fields come from a statx or an
/// fstat.
///
/// Written out by hand: `format!` with its four hex fields took 2.2k
/// instructions a call (callgrind), about 4% of a plain PUT's instructions
/// in user space; this takes about 500. The text is the same as
/// `format!("\"{:x}-{:x}-{:x}.{:x}\"")` would make (tested): stored and
/// client-held ETags stay valid.
pub(crate) fn etag_of(ino: u64, size: u64, mtime: (i64, u32)) -> String {
    let mut out = String::with_capacity(ETAG_BYTES_MAX);
    out.push('"');
    push_hex(&mut out, ino);
    out.push('-');
    push_hex(&mut out, size);
    out.push('-');
    // A negative time is written as its two's complement, as `{:x}` does.
    push_hex(&mut out, mtime.0 as u64);
    out.push('.');
    push_hex(&mut out, u64::from(mtime.1));
    out.push('"');
    out
}

/// The longest [`etag_of`]: four 16-digit numbers, three separators, quotes.
const ETAG_BYTES_MAX: usize = 4 * 16 + 3 + 2;

/// Appends `n` in lower-case hex without leading zeros ("0" for zero).
fn push_hex(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(char::from(DIGITS[(n >> (4 * i)) as usize & 15]));
    }
}

/// The inode, size and modification time an [`etag_of`] validator was made
/// of; `None` for any other text.
pub(crate) fn etag_fields(etag: &str) -> Option<(u64, u64, (i64, u32))> {
    let inner = etag.strip_prefix('"')?.strip_suffix('"')?;
    let (ino, rest) = inner.split_once('-')?;
    let (size, mtime) = rest.split_once('-')?;
    let (secs, nanos) = mtime.split_once('.')?;
    let hex = |digits: &str| {
        // As etag_of writes them: lower-case digits, no leading zero.
        if digits.is_empty() || digits.len() > 16 || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        digits.bytes().try_fold(0u64, |n, b| {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            Some(n << 4 | u64::from(digit))
        })
    };
    // A negative time is written as its two's complement.
    Some((hex(ino)?, hex(size)?, (hex(secs)? as i64, u32::try_from(hex(nanos)?).ok()?)))
}

pub(crate) fn content_type(path: &[u8]) -> String {
    let name = std::str::from_utf8(path).unwrap_or("");
    mime_guess::from_path(name).first_or_octet_stream().essence_str().to_string()
}

/// What the preconditions of a GET or HEAD decide (RFC 9110 §13.2.2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Proceed,
    NotModified,
    PreconditionFailed,
}

/// The conditional headers of a read.
pub(crate) struct ReadConditions<'a> {
    pub(crate) if_match: Option<&'a str>,
    pub(crate) if_none_match: Option<&'a str>,
    pub(crate) if_modified_since: Option<&'a str>,
    pub(crate) if_unmodified_since: Option<&'a str>,
}

fn tags(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|t| !t.is_empty())
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// Seconds since the epoch of an HTTP date; `None` if it does not parse
/// (an invalid date makes its condition be ignored, RFC 9110 §13.1.3).
pub(crate) fn http_seconds(text: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Evaluates the preconditions in RFC 9110's order: If-Match (else
/// If-Unmodified-Since) can fail with 412; then If-None-Match (else
/// If-Modified-Since) can answer 304.
pub(crate) fn evaluate(conditions: &ReadConditions<'_>, etag: &str, modified_secs: u64) -> Decision {
    if let Some(list) = conditions.if_match {
        // Strong comparison: a weak tag never matches.
        let ok = list.trim() == "*" || tags(list).any(|t| !t.starts_with("W/") && t == etag);
        if !ok {
            return Decision::PreconditionFailed;
        }
    } else if let Some(since) = conditions.if_unmodified_since.and_then(http_seconds) {
        if modified_secs > since {
            return Decision::PreconditionFailed;
        }
    }
    if let Some(list) = conditions.if_none_match {
        // Weak comparison for If-None-Match.
        if list.trim() == "*" || tags(list).any(|t| opaque(t) == etag) {
            return Decision::NotModified;
        }
    } else if let Some(since) = conditions.if_modified_since.and_then(http_seconds) {
        if modified_secs <= since {
            return Decision::NotModified;
        }
    }
    Decision::Proceed
}

/// Whether If-Range lets the Range apply: an entity-tag must match strongly,
/// a date must equal the Last-Modified second.
pub(crate) fn if_range_holds(if_range: Option<&str>, etag: &str, modified_secs: u64) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) if v.starts_with("W/") => false,
        Some(v) => http_seconds(v) == Some(modified_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_reads_as_format_would_write_it() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut fields = vec![(0, 0, (0, 0)), (u64::MAX, u64::MAX, (i64::MIN, u32::MAX)), (15, 16, (-1, 255))];
        for _ in 0..2000 {
            // xorshift: numbers of every length.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let shift = (x % 64) as u32;
            fields.push((x >> shift, x.rotate_left(7) >> (63 - shift), ((x as i64) >> shift, (x >> 40) as u32)));
        }
        for (ino, size, mtime) in fields {
            let expected = format!("\"{:x}-{:x}-{:x}.{:x}\"", ino, size, mtime.0, mtime.1);
            assert_eq!(etag_of(ino, size, mtime), expected);
        }
    }

    #[test]
    fn an_etag_gives_back_the_fields_it_was_made_of() {
        for fields in [(1, 0, (0, 0)), (0x1234, 4096, (1_764_000_000, 999_999_999)), (u64::MAX, u64::MAX, (-1, 7))] {
            assert_eq!(etag_fields(&etag_of(fields.0, fields.1, fields.2)), Some(fields));
        }
        for other in
            ["", "\"\"", "\"1-2-3\"", "\"1-2-3.4", "\"+1-2-3.4\"", "\"01-2-3.4\"", "\"1-2-3.100000000\"", "\"A-2-3.4\""]
        {
            assert_eq!(etag_fields(other), None, "{other}");
        }
    }

    #[test]
    fn object_paths_are_plain_relative_paths() {
        assert_eq!(object_path("a/b.txt").unwrap(), b"a/b.txt");
        assert_eq!(object_path("with%20space").unwrap(), b"with space");
        for bad in
            ["", "..", "a/../b", "%2e%2e", "%2E%2E/x", "a//b", "a/", "./a", "a%00b", "a%5cb", "a\\b", ".percore-tmp1"]
        {
            assert!(object_path(bad).is_err(), "{bad:?} was accepted");
        }
        // An encoded slash is refused outright: a name never hides a separator.
        for bad in ["a%2f..", "a%2fb", "a%2Fb", "%zz", "a%2", "a%", "a#b", "%c0%ae", "a%0ab", "a%7f", &"n".repeat(256)]
        {
            assert!(object_path(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(object_path(&"n".repeat(255)).unwrap().len(), 255);
        assert_eq!(object_path("caf%C3%A9/%25").unwrap(), "café/%".as_bytes());
        assert_eq!(object_path("%252e%252e").unwrap(), b"%2e%2e", "decoded once, so a plain name");
    }

    /// The decoder as first written (decode every byte, then check), kept
    /// as the reference for the one with a fast path for unescaped paths.
    fn object_path_reference(encoded: &str) -> Result<Vec<u8>, PathError> {
        let decoded = percent_decode(encoded.as_bytes())?;
        if decoded.is_empty() {
            return Err(PathError::Invalid("empty path"));
        }
        if std::str::from_utf8(&decoded).is_err() {
            return Err(PathError::Invalid("path is not UTF-8"));
        }
        if decoded.contains(&b'\\') {
            return Err(PathError::Invalid("backslash in path"));
        }
        if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(PathError::Invalid("control character in path"));
        }
        for segment in decoded.split(|&b| b == b'/') {
            match segment {
                b"" => return Err(PathError::Invalid("empty path segment")),
                b"." | b".." => return Err(PathError::Invalid("dot segment in path")),
                s if s.starts_with(TEMP_PREFIX) => return Err(PathError::Invalid("reserved name")),
                s if s.len() > NAME_BYTES_MAX => return Err(PathError::Invalid("path segment longer than 255 bytes")),
                _ => {}
            }
        }
        Ok(decoded)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Same answer, same reason, as the reference: for path-like strings
        /// and for arbitrary ones.
        #[test]
        fn the_fast_path_decodes_as_the_reference(
            shaped in "([a-z.]{0,3}|%[0-9a-fA-F]{2}|%.{0,2}|[/#\\\\\\x00-\\x1f\\x7f]|\\.percore-|é){0,12}",
            any in ".{0,40}",
        ) {
            for path in [shaped.as_str(), any.as_str()] {
                proptest::prop_assert_eq!(object_path(path), object_path_reference(path), "{:?}", path);
            }
        }
    }

    #[test]
    fn preconditions_follow_rfc_9110_order() {
        let none =
            ReadConditions { if_match: None, if_none_match: None, if_modified_since: None, if_unmodified_since: None };
        let (etag, t) = ("\"v1\"", 1_700_000_000u64);
        let date = |secs: u64| httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(evaluate(&none, etag, t), Decision::Proceed);
        let c = ReadConditions { if_none_match: Some("\"v1\""), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::NotModified);
        let c = ReadConditions { if_none_match: Some("W/\"v1\""), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::NotModified, "weak comparison");
        let c = ReadConditions { if_match: Some("\"v0\""), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::PreconditionFailed);
        let later = date(t + 10);
        let c = ReadConditions { if_modified_since: Some(&later), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::NotModified);
        let earlier = date(t - 10);
        let c = ReadConditions { if_modified_since: Some(&earlier), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::Proceed);
        // If-None-Match wins over If-Modified-Since.
        let c = ReadConditions { if_none_match: Some("\"other\""), if_modified_since: Some(&later), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::Proceed);
        let c = ReadConditions { if_unmodified_since: Some(&earlier), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::PreconditionFailed);
        // If-Unmodified-Since is ignored when If-Match is present.
        let c = ReadConditions { if_match: Some("\"v1\""), if_unmodified_since: Some(&earlier), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::Proceed);
        let c = ReadConditions { if_modified_since: Some("not a date"), ..none };
        assert_eq!(evaluate(&c, etag, t), Decision::Proceed, "invalid dates are ignored");
    }

    #[test]
    fn if_range() {
        assert!(if_range_holds(None, "\"a\"", 5));
        assert!(if_range_holds(Some("\"a\""), "\"a\"", 5));
        assert!(!if_range_holds(Some("\"b\""), "\"a\"", 5));
        assert!(!if_range_holds(Some("W/\"a\""), "\"a\"", 5));
        let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(5));
        assert!(if_range_holds(Some(&date), "\"a\"", 5));
        assert!(!if_range_holds(Some(&date), "\"a\"", 6));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type(b"x.html"), "text/html");
        assert_eq!(content_type(b"x.unknownext"), "application/octet-stream");
    }
}
