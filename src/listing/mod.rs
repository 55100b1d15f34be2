//! Directory listings: `GET /files/<dir>/`, sorted by name, with
//! `?prefix=`, `?limit=` and a continuation token (`?after=`, the last name
//! of the previous page, as returned in `next`). JSON, or HTML for a
//! browser (`html.rs`; `?format=json` or `?format=html` forces either;
//! `?sort=size|modified` orders the HTML page's table). A JSON page holds
//! [`LIMIT_DEFAULT`] entries unless asked for another size; an HTML page
//! holds the whole directory, up to [`LIMIT_MAX`] entries: programs that
//! mirror directory pages (rclone's http backend, `wget -r`) read the links
//! of one page and follow no "Next page" link, so a page cut at 1,000
//! silently left the rest out of their copies.
//!
//! Temporary files and symlinks are not listed. Entries are read with
//! blocking `getdents` calls (io_uring has none), a piece at a time with
//! the shard's other work between pieces (`Dir::read_dir_yielding`), and
//! stat'ed through the ring, a batch at a time.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::time::SystemTime;

use percore_io::Dir;
use serde::{Deserialize, Serialize};

use crate::files::{self, TEMP_PREFIX};

/// Entries per JSON page unless `?limit=` says otherwise; the most a page
/// holds, and what an HTML page holds unless `?limit=` says less. (A
/// directory is read whole to sort its names anyway. Measured on the
/// 2-vCPU VM, 100,000 files, the directory read in pieces: the whole page
/// is 12.3 MB of HTML in 0.86-0.93 s, the shard's other requests waiting up
/// to 102-124 ms on its synchronous parts, sorting and rendering; a page of
/// 1,000 of them up to 20-24 ms.)
pub(crate) const LIMIT_DEFAULT: usize = 1000;
pub(crate) const LIMIT_MAX: usize = 100_000;

mod html;
pub(crate) mod kept;

use kept::{Kept, Sorted, Version};

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) prefix: Vec<u8>,
    /// `?limit=`, if given (`page_size`).
    pub(crate) limit: Option<usize>,
    pub(crate) after: Option<Vec<u8>>,
    /// `?format=`: `Some(true)` HTML, `Some(false)` JSON, `None` as the
    /// client's `Accept` prefers.
    pub(crate) html: Option<bool>,
    /// `?sort=` of the HTML table.
    pub(crate) sort: Sort,
    /// `?local=1`: this node's entries only (what a node asks its peers
    /// for when it gathers a listing).
    pub(crate) local: bool,
}

impl Query {
    /// The entries a page holds: as asked, or by default as many as a JSON
    /// or an HTML page holds (the module's doc: why they differ).
    pub(crate) fn page_size(&self, html: bool) -> usize {
        self.limit.unwrap_or(if html { LIMIT_MAX } else { LIMIT_DEFAULT })
    }
}

/// The order of an HTML listing's rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Sort {
    #[default]
    Name,
    Size,
    Modified,
}

/// Parses `prefix=…&limit=…&after=…` (percent-encoded values).
pub(crate) fn parse_query(query: Option<&str>) -> Result<Query, &'static str> {
    let mut parsed = Query { prefix: Vec::new(), limit: None, after: None, html: None, sort: Sort::Name, local: false };
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
                    return Err("limit must be between 1 and 100000");
                }
                parsed.limit = Some(limit);
            }
            "format" => {
                parsed.html = match value.as_slice() {
                    b"html" => Some(true),
                    b"json" => Some(false),
                    _ => return Err("format must be json or html"),
                }
            }
            "sort" => {
                parsed.sort = match value.as_slice() {
                    b"name" => Sort::Name,
                    b"size" => Sort::Size,
                    b"modified" => Sort::Modified,
                    _ => return Err("sort must be name, size or modified"),
                }
            }
            "local" => parsed.local = value == b"1",
            _ => return Err("unknown query parameter (prefix, limit, after, format, sort, local)"),
        }
    }
    Ok(parsed)
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    size: u64,
    etag: Option<String>,
    modified: String,
    is_dir: bool,
    /// For sorting by time (not serialised).
    #[serde(skip)]
    modified_secs: i64,
}

/// One page of a listing.
#[derive(Serialize, Deserialize)]
pub(crate) struct Page {
    entries: Vec<Entry>,
    /// The token for the next page (`?after=`), if there is one.
    next: Option<String>,
    /// Nodes whose part of the listing is missing (down, or not
    /// answering): the listing is then incomplete, and says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) unavailable: Vec<String>,
}

impl Page {
    /// A page as another node sent it (`?format=json&local=1`).
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Page, String> {
        let mut page: Page = serde_json::from_slice(bytes).map_err(|e| format!("not a listing: {e}"))?;
        for entry in &mut page.entries {
            entry.modified_secs = httpdate::parse_http_date(&entry.modified)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
        }
        Ok(page)
    }

    /// One page from the pages of every node (each the first `limit`
    /// entries after the same `after`): their union by name (a directory
    /// that exists on several nodes is one entry, its latest time kept),
    /// in name order, the first `limit`; more to come if any node had more
    /// or entries were cut.
    pub(crate) fn merge(pages: Vec<Page>, limit: usize, unavailable: Vec<String>) -> Page {
        let mut more = pages.iter().any(|p| p.next.is_some());
        let mut by_name: std::collections::BTreeMap<Vec<u8>, Entry> = std::collections::BTreeMap::new();
        for entry in pages.into_iter().flat_map(|p| p.entries) {
            match by_name.get_mut(entry.name.as_bytes()) {
                Some(seen) if seen.modified_secs >= entry.modified_secs => {}
                Some(seen) => *seen = entry,
                None => {
                    by_name.insert(entry.name.as_bytes().to_vec(), entry);
                }
            }
        }
        more |= by_name.len() > limit;
        let entries: Vec<Entry> = by_name.into_values().take(limit).collect();
        let next = if more { entries.last().map(|e| e.name.clone()) } else { None };
        Page { entries, next, unavailable }
    }

    pub(crate) fn json(&self) -> io::Result<Vec<u8>> {
        let mut json = serde_json::to_vec(self).map_err(io::Error::other)?;
        json.push(b'\n');
        Ok(json)
    }

    /// The page as HTML; `dir` is the listed directory's URL path
    /// (`/files/a/b/`, still percent-encoded).
    pub(crate) fn html(mut self, dir: &str, query: &Query) -> Vec<u8> {
        html::render(&mut self, dir, query).into_bytes()
    }
}

/// Names stat'ed at once.
const STAT_BATCH: usize = 64;

/// The names of `dir` (temporary files left out), sorted: kept ones if
/// the directory is unchanged since they were read (`kept`).
async fn sorted_names(dir: &Dir, kept: &Kept) -> io::Result<Rc<Sorted>> {
    let read_at = SystemTime::now();
    let version = Version::of(&dir.metadata().await?);
    if let Some(sorted) = kept.get(version, true) {
        return Ok(sorted);
    }
    let mut names: Vec<Vec<u8>> = dir
        .read_dir_yielding()
        .await?
        .into_iter()
        .map(|e| e.name.as_bytes().to_vec())
        .filter(|name| !name.starts_with(TEMP_PREFIX))
        .collect();
    names.sort_unstable();
    let sorted = Rc::new(Sorted::Names(names));
    kept.keep(version, &sorted, read_at);
    Ok(sorted)
}

/// Lists one page of `dir`, of `limit` entries at most.
pub(crate) async fn list(dir: &Dir, query: &Query, limit: usize, kept: &Kept) -> io::Result<Page> {
    let sorted = sorted_names(dir, kept).await?;
    let Sorted::Names(all) = &*sorted else { unreachable!("sorted_names gives names") };
    // The page starts at the first name at or after the prefix and after
    // the start name (both hold for every name after it), and goes on
    // while names have the prefix (they follow each other).
    let after = query.after.as_deref();
    let start =
        all.partition_point(|n| n.as_slice() < query.prefix.as_slice() || after.is_some_and(|a| n.as_slice() <= a));
    let mut names = all[start..].iter().take_while(|n| n.starts_with(&query.prefix)).peekable();
    let mut entries = Vec::with_capacity(limit.min(all.len() - start));
    let mut last: Option<&Vec<u8>> = None;
    let mut more = false;
    // Stat'ed a batch at a time, the batch's stats in flight together (they
    // run in io_uring's workers: one round trip a batch, not one a name).
    'batches: while names.peek().is_some() {
        // No more than the page can still take (and one more, to know
        // whether there is more).
        let batch: Vec<&Vec<u8>> = names.by_ref().take(STAT_BATCH.min(limit - entries.len() + 1)).collect();
        let stats = futures_util::future::join_all(batch.iter().map(|name| dir.stat(OsStr::from_bytes(name)))).await;
        for (name, meta) in batch.into_iter().zip(stats) {
            if entries.len() == limit {
                more = true;
                break 'batches;
            }
            let meta = match meta {
                Ok(meta) => meta,
                // Removed since the directory was read.
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(err) => return Err(err),
            };
            if !meta.is_file() && !meta.is_dir() {
                continue;
            }
            entries.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                size: if meta.is_dir() { 0 } else { meta.size },
                etag: meta.is_file().then(|| files::etag(&meta)),
                modified: httpdate::fmt_http_date(meta.modified()),
                is_dir: meta.is_dir(),
                modified_secs: meta.mtime.0,
            });
            last = Some(name);
        }
    }
    let next = if more { last.map(|n| String::from_utf8_lossy(n).into_owned()) } else { None };
    Ok(Page { entries, next, unavailable: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let plain = Query { prefix: vec![], limit: None, after: None, html: None, sort: Sort::Name, local: false };
        assert_eq!(parse_query(None).unwrap(), plain);
        assert_eq!((plain.page_size(false), plain.page_size(true)), (LIMIT_DEFAULT, LIMIT_MAX));
        let q = parse_query(Some("prefix=a%20b&limit=5&after=x%2Fy")).unwrap();
        assert_eq!(q, Query { prefix: b"a b".to_vec(), limit: Some(5), after: Some(b"x/y".to_vec()), ..plain });
        assert_eq!((q.page_size(false), q.page_size(true)), (5, 5));
        assert!(parse_query(Some("limit=100000")).is_ok());
        let q = parse_query(Some("format=html&sort=size")).unwrap();
        assert_eq!((q.html, q.sort), (Some(true), Sort::Size));
        assert!(parse_query(Some("format=xml")).is_err());
        assert!(parse_query(Some("limit=0")).is_err());
        assert!(parse_query(Some("limit=100001")).is_err());
        assert!(parse_query(Some("limit=1000000")).is_err());
        assert!(parse_query(Some("limit=x")).is_err());
        assert!(parse_query(Some("sort=colour")).is_err());
        assert!(parse_query(Some("local=1")).unwrap().local);
    }

    fn page(names: &[(&str, bool)], next: bool) -> Page {
        let entries = names
            .iter()
            .map(|(n, dir)| Entry {
                name: n.to_string(),
                size: 1,
                etag: None,
                modified: String::new(),
                is_dir: *dir,
                modified_secs: 0,
            })
            .collect();
        Page { entries, next: next.then(|| names.last().unwrap().0.to_string()), unavailable: Vec::new() }
    }

    #[test]
    fn pages_of_several_nodes_merge_in_order_and_page_on() {
        let a = page(&[("a1", false), ("d", true), ("z", false)], false);
        let b = page(&[("b1", false), ("d", true)], false);
        let merged = Page::merge(vec![a, b], 3, vec!["c".into()]);
        let names: Vec<&str> = merged.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a1", "b1", "d"], "sorted, the directory once, cut at the limit");
        assert_eq!(merged.next.as_deref(), Some("d"), "more to come");
        assert_eq!(merged.unavailable, ["c"]);
        let json = String::from_utf8(merged.json().unwrap()).unwrap();
        assert!(json.contains("\"unavailable\":[\"c\"]"), "{json}");
        let whole = Page::merge(vec![page(&[("x", false)], false), page(&[("y", false)], false)], 10, vec![]);
        assert!(whole.next.is_none() && whole.entries.len() == 2);
        assert!(!String::from_utf8(whole.json().unwrap()).unwrap().contains("unavailable"));
        let again = Page::from_json(&whole.json().unwrap()).unwrap();
        assert_eq!(again.entries.len(), 2);
    }
}
