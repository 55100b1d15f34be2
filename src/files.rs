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

/// Decodes and checks the part of a target after `/files/`.
pub(crate) fn object_path(encoded: &str) -> Result<Vec<u8>, PathError> {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    if decoded.is_empty() {
        return Err(PathError::Invalid("empty path"));
    }
    if decoded.contains(&0) {
        return Err(PathError::Invalid("NUL in path"));
    }
    if decoded.contains(&b'\\') {
        return Err(PathError::Invalid("backslash in path"));
    }
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" => return Err(PathError::Invalid("empty path segment")),
            b"." | b".." => return Err(PathError::Invalid("dot segment in path")),
            s if s.starts_with(TEMP_PREFIX) => return Err(PathError::Invalid("reserved name")),
            _ => {}
        }
    }
    Ok(decoded)
}

/// Opens a regular file beneath `root`. `Ok(None)`: there is no such file
/// (or it is not a regular file, or its path leaves the directory).
pub(crate) async fn open(root: &Dir, path: &[u8]) -> io::Result<Option<(File, Metadata)>> {
    let options = OpenOptions::new();
    let file = match root.open_file(OsStr::from_bytes(path), &options).await {
        Ok(file) => file,
        Err(err) => {
            return match err.raw_os_error() {
                // Missing, a file used as a directory, a path that leaves the
                // data directory (EXDEV), a refused magic link (ELOOP): all
                // look the same from outside.
                Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP | libc::ENAMETOOLONG) => Ok(None),
                _ => Err(err),
            };
        }
    };
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some((file, meta)))
}

/// A strong validator: changes whenever the file is replaced or modified.
pub(crate) fn etag(meta: &Metadata) -> String {
    format!("\"{:x}-{:x}-{:x}.{:x}\"", meta.ino, meta.size, meta.mtime.0, meta.mtime.1)
}

pub(crate) fn content_type(path: &[u8]) -> String {
    let name = std::str::from_utf8(path).unwrap_or("");
    mime_guess::from_path(name).first_or_octet_stream().essence_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_are_plain_relative_paths() {
        assert_eq!(object_path("a/b.txt").unwrap(), b"a/b.txt");
        assert_eq!(object_path("with%20space").unwrap(), b"with space");
        for bad in
            ["", "..", "a/../b", "%2e%2e", "%2E%2E/x", "a//b", "a/", "./a", "a%00b", "a%5cb", "a\\b", ".percore-tmp1"]
        {
            assert!(object_path(bad).is_err(), "{bad:?} was accepted");
        }
        // An encoded slash is a slash: `a%2f..` is refused like `a/..`.
        assert!(object_path("a%2f..").is_err());
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type(b"x.html"), "text/html");
        assert_eq!(content_type(b"x.unknownext"), "application/octet-stream");
    }
}
