//! Directory listings: `GET /files/<dir>/` as JSON, sorted by name, with
//! `?prefix=`, `?limit=` and a continuation token (`?after=`, the last name
//! of the previous page, as returned in `next`).
//!
//! Temporary files and symlinks are not listed. Entries are read with a
//! blocking `getdents` (io_uring has none; see `Dir::read_dir`) and stat'ed
//! through the ring.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use percore_io::Dir;
use serde::Serialize;

use crate::files::{self, TEMP_PREFIX};

/// Entries per page unless `?limit=` says otherwise, and the most it may say.
pub(crate) const LIMIT_DEFAULT: usize = 1000;
pub(crate) const LIMIT_MAX: usize = 10_000;

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) prefix: Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) after: Option<Vec<u8>>,
}

/// Parses `prefix=…&limit=…&after=…` (percent-encoded values).
pub(crate) fn parse_query(query: Option<&str>) -> Result<Query, &'static str> {
    let mut parsed = Query { prefix: Vec::new(), limit: LIMIT_DEFAULT, after: None };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value: Vec<u8> = percent_encoding::percent_decode_str(&value.replace('+', " ")).collect();
        match key {
            "prefix" => parsed.prefix = value,
            "after" => parsed.after = Some(value),
            "limit" => {
                let limit: usize =
                    std::str::from_utf8(&value).ok().and_then(|v| v.parse().ok()).ok_or("invalid limit")?;
                if limit == 0 || limit > LIMIT_MAX {
                    return Err("limit must be between 1 and 10000");
                }
                parsed.limit = limit;
            }
            _ => return Err("unknown query parameter (prefix, limit, after)"),
        }
    }
    Ok(parsed)
}

#[derive(Serialize)]
struct Entry {
    name: String,
    size: u64,
    etag: Option<String>,
    modified: String,
    is_dir: bool,
}

#[derive(Serialize)]
struct Page {
    entries: Vec<Entry>,
    /// The token for the next page (`?after=`), if there is one.
    next: Option<String>,
}

/// Lists `dir` as a JSON page.
pub(crate) async fn list(dir: &Dir, query: &Query) -> io::Result<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = dir
        .read_dir()?
        .into_iter()
        .map(|e| e.name.as_bytes().to_vec())
        .filter(|name| !name.starts_with(TEMP_PREFIX))
        .filter(|name| name.starts_with(&query.prefix))
        .filter(|name| query.after.as_ref().is_none_or(|after| name > after))
        .collect();
    names.sort_unstable();
    let mut entries = Vec::with_capacity(query.limit.min(names.len()));
    let mut last: Option<Vec<u8>> = None;
    let mut more = false;
    for name in names {
        if entries.len() == query.limit {
            more = true;
            break;
        }
        let meta = match dir.stat(OsStr::from_bytes(&name)).await {
            Ok(meta) => meta,
            // Removed since the directory was read.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(err) => return Err(err),
        };
        if !meta.is_file() && !meta.is_dir() {
            continue;
        }
        entries.push(Entry {
            name: String::from_utf8_lossy(&name).into_owned(),
            size: if meta.is_dir() { 0 } else { meta.size },
            etag: meta.is_file().then(|| files::etag(&meta)),
            modified: httpdate::fmt_http_date(meta.modified()),
            is_dir: meta.is_dir(),
        });
        last = Some(name);
    }
    let next = if more { last.map(|n| String::from_utf8_lossy(&n).into_owned()) } else { None };
    let mut json = serde_json::to_vec(&Page { entries, next }).map_err(io::Error::other)?;
    json.push(b'\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_query(None).unwrap(), Query { prefix: vec![], limit: LIMIT_DEFAULT, after: None });
        let q = parse_query(Some("prefix=a%20b&limit=5&after=x%2Fy")).unwrap();
        assert_eq!(q, Query { prefix: b"a b".to_vec(), limit: 5, after: Some(b"x/y".to_vec()) });
        assert!(parse_query(Some("limit=0")).is_err());
        assert!(parse_query(Some("limit=100001")).is_err());
        assert!(parse_query(Some("limit=x")).is_err());
        assert!(parse_query(Some("sort=size")).is_err());
    }
}
