//! ListObjectsV2 and ListObjects (v1): a bucket's keys in the order of
//! their bytes, from a prefix, after a start key, rolled up at a delimiter;
//! and ListObjectVersions, the same keys each as its one version, `null`
//! (as in a bucket without versioning: scripts that empty a bucket, and
//! Terraform's `force_destroy`, list versions and delete them by id).
//!
//! The bucket is a directory tree, walked depth first with each
//! directory's entries sorted so that the walk yields keys in byte order:
//! a directory sorts as its name followed by `/` (every key under `a`
//! starts `a/`, which sorts after `a-c`). Directories that cannot hold a
//! key of the page (outside the prefix, wholly before the start key) are
//! not entered, and with the delimiter `/` a directory under the prefix is
//! one CommonPrefix without being walked (if it holds any object or folder:
//! empty directories left by deletes are no prefix). A directory marked as
//! a folder (`folder`) is the key `a/b/`, listed as it is entered.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use base64::Engine;
use percore_io::{Dir, OpenOptions};

use super::cluster::{self, Part};
use super::error::{from_io, internal, invalid_argument, S3Error};
use super::frame::frame;
use super::head::encode;
use super::meta;
use super::xml::{self, Writer};
use super::{bucket, Call};
use crate::files;
use crate::http::response::Head;
use crate::listing::kept::Kept;

/// The most keys one page holds (as on S3).
pub(crate) const KEYS_MAX: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
    /// ListObjectVersions.
    Versions,
}

/// One listed object.
struct Object {
    key: Vec<u8>,
    size: u64,
    modified: u64,
    etag: String,
}

enum Item {
    Object(Object),
    Prefix(Vec<u8>),
}

impl Item {
    fn name(&self) -> &[u8] {
        match self {
            Item::Object(o) => &o.key,
            Item::Prefix(p) => p,
        }
    }
}

/// What to list.
///
/// A page is the listing's entries in byte order, each a key or a
/// CommonPrefix standing at its own name, after the start key: a key after
/// the start key whose CommonPrefix sorts at or before it is not listed
/// (the page that ended on that prefix listed it, or, for a start key
/// inside it, it lies before the start).
struct Page<'a> {
    prefix: &'a [u8],
    delimiter: Option<&'a [u8]>,
    /// Entries up to and including this name are skipped.
    after: Option<Vec<u8>>,
    max: usize,
}

impl Page<'_> {
    /// The CommonPrefix of every key that starts with `start`, if the
    /// delimiter is already in `start` after the prefix.
    fn common_prefix<'k>(&self, start: &'k [u8]) -> Option<&'k [u8]> {
        let d = self.delimiter?;
        let rest = start.strip_prefix(self.prefix)?;
        let at = rest.windows(d.len()).position(|w| w == d)?;
        Some(&start[..self.prefix.len() + at + d.len()])
    }

    /// Whether every key that starts with `start` rolls up into a
    /// CommonPrefix at or before the start key: none is listed.
    fn rolls_up_before_start(&self, start: &[u8]) -> bool {
        matches!((self.after.as_deref(), self.common_prefix(start)), (Some(a), Some(common)) if common <= a)
    }

    /// Whether `key` is listed as itself: not if it is outside the page,
    /// nor if the delimiter rolls it into a CommonPrefix (added to `items`
    /// here, once, if it sorts after the start key).
    fn lists(&self, items: &mut Vec<Item>, key: &[u8]) -> bool {
        let after = self.after.as_deref();
        if !key.starts_with(self.prefix) || after.is_some_and(|a| key <= a) {
            return false;
        }
        if let Some(common) = self.common_prefix(key) {
            let repeated = matches!(items.last(), Some(Item::Prefix(p)) if p.as_slice() == common);
            if !repeated && after.is_none_or(|a| common > a) {
                items.push(Item::Prefix(common.to_vec()));
            }
            return false;
        }
        true
    }
}

/// Keys stat'ed and opened at once: a listing's ring round trips are per
/// batch, not per key (the stats run in io_uring's workers); bounded so
/// that a page holds no more than this many descriptors open.
const BATCH: usize = 64;

/// Walks `root` (the bucket) for up to `page.max + 1` items.
async fn walk(root: Dir, page: &Page<'_>, kept: &Kept) -> std::io::Result<Vec<Item>> {
    let mut items: Vec<Item> = Vec::new();
    let after = page.after.as_deref();
    let mut stack = vec![frame(root, Vec::new(), page.prefix, after, kept).await?];
    // Keys of the top directory listed and not yet described: (place in
    // `items`, name). Described before the walk leaves or enters a
    // directory, and before the page is found full (a key removed
    // meanwhile leaves room for another).
    let mut pending: Vec<(usize, Vec<u8>)> = Vec::new();
    while let Some(top) = stack.last_mut() {
        let next_is_dir = top.entries().get(top.next).is_none_or(|(_, is_dir, _)| *is_dir);
        if !pending.is_empty() && (items.len() > page.max || next_is_dir || pending.len() == BATCH) {
            describe(&top.dir, &mut items, std::mem::take(&mut pending)).await?;
            continue;
        }
        if items.len() > page.max {
            break;
        }
        let Some((sort, is_dir, name)) = top.entries().get(top.next).cloned() else {
            stack.pop();
            continue;
        };
        top.next += 1;
        let mut full = top.at.clone();
        full.extend_from_slice(&sort);
        if is_dir {
            // `full` is the directory's keys' common start, `a/b/`.
            let inside_prefix = full.starts_with(page.prefix);
            if !inside_prefix && !page.prefix.starts_with(&full) {
                continue;
            }
            if let Some(a) = after {
                if a > full.as_slice() && !a.starts_with(&full) {
                    continue;
                }
            }
            if page.rolls_up_before_start(&full) {
                continue;
            }
            let dir = match top.dir.open_dir(OsStr::from_bytes(&name)).await {
                Ok(dir) => dir,
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(err) => return Err(err),
            };
            // (A directory that is the prefix itself is walked: its keys
            // have the delimiter after the prefix only further down.)
            if inside_prefix && full.len() > page.prefix.len() && page.delimiter == Some(b"/".as_slice()) {
                // (Its keys' CommonPrefix is `full`, which sorts after the
                // start key: `rolls_up_before_start` skipped it otherwise.)
                if bucket::holds_object(&dir).await? {
                    items.push(Item::Prefix(full));
                }
                continue;
            }
            // A folder is a key itself, just before the keys under it.
            if let Some(marked) = meta::read_folder(&dir) {
                if page.lists(&mut items, &full) {
                    let (size, etag) = (0, meta::FOLDER_ETAG.to_string());
                    items.push(Item::Object(Object { key: full.clone(), size, modified: marked.modified, etag }));
                }
            }
            stack.push(frame(dir, full, page.prefix, after, kept).await?);
            continue;
        }
        if !page.lists(&mut items, &full) {
            continue;
        }
        // Its place, described with the others of its batch.
        items.push(Item::Object(Object { key: full, size: 0, modified: 0, etag: String::new() }));
        pending.push((items.len() - 1, name));
    }
    Ok(items)
}

/// Describes the `pending` keys of `dir` (their size, time and ETag, their
/// stats and opens in flight together); a key that is no longer a file
/// leaves the page.
async fn describe(dir: &Dir, items: &mut Vec<Item>, pending: Vec<(usize, Vec<u8>)>) -> std::io::Result<()> {
    let described = futures_util::future::join_all(pending.iter().map(|(_, name)| async move {
        let stat = match dir.stat(OsStr::from_bytes(name)).await {
            Ok(stat) if stat.is_file() => stat,
            Ok(_) => return Ok(None),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(err) => return Err(err),
        };
        let stamp = files::etag(&stat);
        let etag = match dir.open_file(OsStr::from_bytes(name), &OpenOptions::new()).await {
            Ok(file) => meta::read(&file, &stamp).map(|m| m.etag),
            Err(_) => None,
        }
        .unwrap_or(stamp);
        Ok(Some((stat.size, stat.mtime.0.max(0) as u64, etag)))
    }))
    .await;
    let mut gone = Vec::new();
    for ((at, _), described) in pending.iter().zip(described) {
        match (described?, &mut items[*at]) {
            (Some((size, modified, etag)), Item::Object(o)) => (o.size, o.modified, o.etag) = (size, modified, etag),
            _ => gone.push(*at),
        }
    }
    for at in gone.into_iter().rev() {
        items.remove(at);
    }
    Ok(())
}

impl From<Vec<Item>> for Part {
    fn from(items: Vec<Item>) -> Part {
        let mut part = Part::default();
        for item in items {
            match item {
                Item::Object(o) => part.objects.push((token_encode(&o.key), o.size, o.modified, o.etag)),
                Item::Prefix(p) => part.prefixes.push(token_encode(&p)),
            }
        }
        part
    }
}

/// A node's part as items.
fn items_of(part: Part) -> Result<Vec<Item>, S3Error> {
    let mut items = Vec::with_capacity(part.objects.len() + part.prefixes.len());
    for (key, size, modified, etag) in part.objects {
        items.push(Item::Object(Object { key: token_decode(&key)?, size, modified, etag }));
    }
    for prefix in part.prefixes {
        items.push(Item::Prefix(token_decode(&prefix)?));
    }
    Ok(items)
}

/// The page from every node: `mine` with each peer's part of the same page
/// (each up to `page.max + 1` items), merged in key order, each key and
/// CommonPrefix once. Every node must answer: a page without a node's keys
/// would read as their deletion.
async fn gather(call: &Call<'_, '_, '_>, bucket: &str, page: &Page<'_>, mine: Vec<Item>) -> Result<Vec<Item>, S3Error> {
    let prefix = String::from_utf8_lossy(page.prefix).into_owned();
    let delimiter = page.delimiter.map(|d| String::from_utf8_lossy(d).into_owned());
    let after = page.after.as_deref().map(token_encode);
    let max = (page.max).to_string();
    let mut query: Vec<(&str, &str)> = vec![("list-type", "2"), ("prefix", &prefix), ("max-keys", &max)];
    if let Some(d) = &delimiter {
        query.push(("delimiter", d));
    }
    if let Some(a) = &after {
        query.push((cluster::AFTER, a));
    }
    let mut items = mine;
    for (name, answer) in cluster::everywhere(call, "GET", &format!("/{bucket}"), &query, &[]).await {
        match answer {
            Ok(a) if a.status == 200 => {
                let part: Part = serde_json::from_slice(&a.body)
                    .map_err(|e| cluster::unreachable(&name, &format!("its listing does not parse: {e}")))?;
                items.extend(items_of(part)?);
            }
            // The bucket is not there: it holds none of its keys.
            Ok(a) if a.status == 404 => {}
            Ok(a) => return Err(cluster::refused(&name, &a)),
            Err(why) => return Err(cluster::unreachable(&name, &why)),
        }
    }
    items.sort_by(|a, b| a.name().cmp(b.name()));
    items.dedup_by(|a, b| a.name() == b.name());
    Ok(items)
}

fn token_decode(token: &str) -> Result<Vec<u8>, S3Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid_argument("the continuation token provided is incorrect"))
}

fn token_encode(key: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

pub(crate) async fn list(call: &mut Call<'_, '_, '_>, bucket: &str, version: Version) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    let q = call.query;
    let max = match q.get("max-keys") {
        None => KEYS_MAX,
        Some(v) => v.parse::<usize>().map_err(|_| invalid_argument("max-keys must be a number"))?.min(KEYS_MAX),
    };
    let url = match q.get("encoding-type") {
        None => false,
        Some("url") => true,
        Some(other) => return Err(invalid_argument(format!("invalid encoding method specified: {other}"))),
    };
    let prefix = q.get("prefix").unwrap_or("").as_bytes().to_vec();
    let delimiter = q.get("delimiter").filter(|d| !d.is_empty()).map(|d| d.as_bytes().to_vec());
    let after = match version {
        _ if cluster::local(call) => q.get(cluster::AFTER).map(token_decode).transpose()?,
        Version::V2 => match q.get("continuation-token") {
            Some(token) => Some(token_decode(token)?),
            None => q.get("start-after").map(|s| s.as_bytes().to_vec()),
        },
        Version::V1 => q.get("marker").filter(|m| !m.is_empty()).map(|m| m.as_bytes().to_vec()),
        // One version a key: after the key marker's is after the key.
        Version::Versions => q.get("key-marker").filter(|m| !m.is_empty()).map(|m| m.as_bytes().to_vec()),
    };
    let page = Page { prefix: &prefix, delimiter: delimiter.as_deref(), after, max };
    let root = call.shard().store.root().open_dir(bucket).await.map_err(|e| from_io("cannot open the bucket", &e))?;
    let mut items = if max == 0 {
        Vec::new()
    } else {
        walk(root, &page, &call.shard().listings).await.map_err(|e| from_io("cannot list the bucket", &e))?
    };
    if cluster::local(call) {
        // A peer's question: this node's part, as it is.
        let json = serde_json::to_vec(&Part::from(items)).map_err(|e| internal(e.to_string()))?;
        let head = Head::new(200).header("Content-Type", "application/json");
        let whole = call.reply.finish_with(head, &json);
        return Ok(call.reply.send_one(whole).await);
    }
    if cluster::spans_nodes(call) && max > 0 {
        items = gather(call, bucket, &page, items).await?;
    }
    let truncated = items.len() > max;
    items.truncate(max);
    let text = |bytes: &[u8]| if url { encode(bytes, true) } else { String::from_utf8_lossy(bytes).into_owned() };
    let mut out = Writer::document();
    out.root(if version == Version::Versions { "ListVersionsResult" } else { "ListBucketResult" });
    out.leaf("Name", bucket);
    out.leaf("Prefix", text(&prefix));
    match version {
        Version::Versions => {
            out.leaf("KeyMarker", text(q.get("key-marker").unwrap_or("").as_bytes()));
            out.leaf("VersionIdMarker", q.get("version-id-marker").unwrap_or(""));
        }
        Version::V2 => {
            if let Some(token) = q.get("continuation-token") {
                out.leaf("ContinuationToken", token);
            }
            if let Some(start) = q.get("start-after") {
                out.leaf("StartAfter", text(start.as_bytes()));
            }
            out.leaf("KeyCount", items.len());
        }
        Version::V1 => out.leaf("Marker", text(q.get("marker").unwrap_or("").as_bytes())),
    }
    out.leaf("MaxKeys", max);
    if let Some(d) = &delimiter {
        out.leaf("Delimiter", text(d));
    }
    if url {
        out.leaf("EncodingType", "url");
    }
    out.leaf("IsTruncated", truncated);
    if truncated {
        let last = items.last().map(Item::name).unwrap_or_default();
        match version {
            Version::V2 => out.leaf("NextContinuationToken", token_encode(last)),
            Version::V1 if delimiter.is_some() => out.leaf("NextMarker", text(last)),
            Version::V1 => {}
            Version::Versions => {
                out.leaf("NextKeyMarker", text(last));
                out.leaf("NextVersionIdMarker", "null");
            }
        }
    }
    let owner = version != Version::V2 || q.get("fetch-owner") == Some("true");
    let element = if version == Version::Versions { "Version" } else { "Contents" };
    for item in &items {
        if let Item::Object(o) = item {
            out.open(element);
            out.leaf("Key", text(&o.key));
            if version == Version::Versions {
                out.leaf("VersionId", "null");
                out.leaf("IsLatest", true);
            }
            out.leaf("LastModified", xml::iso8601(o.modified));
            out.leaf("ETag", &o.etag);
            out.leaf("Size", o.size);
            out.leaf("StorageClass", "STANDARD");
            if owner {
                bucket::owner(&mut out);
            }
            out.close(element);
        }
    }
    for item in &items {
        if let Item::Prefix(p) = item {
            out.open("CommonPrefixes");
            out.leaf("Prefix", text(p));
            out.close("CommonPrefixes");
        }
    }
    out.close(if version == Version::Versions { "ListVersionsResult" } else { "ListBucketResult" });
    call.xml(out.finish()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_part_goes_over_the_wire_and_back_as_it_was() {
        let items = vec![
            Item::Object(Object { key: b"a/\xff k".to_vec(), size: 3, modified: 7, etag: "\"e\"".into() }),
            Item::Prefix(b"b/".to_vec()),
        ];
        let json = serde_json::to_vec(&Part::from(items)).unwrap();
        assert!(!cluster::holds_nothing(&json));
        let back = items_of(serde_json::from_slice::<Part>(&json).unwrap()).unwrap();
        assert_eq!(back.iter().map(Item::name).collect::<Vec<_>>(), [b"a/\xff k".as_slice(), b"b/"]);
        let Item::Object(o) = &back[0] else { panic!("an object") };
        assert_eq!((o.size, o.modified, o.etag.as_str()), (3, 7, "\"e\""));
        assert!(cluster::holds_nothing(&serde_json::to_vec(&Part::from(Vec::new())).unwrap()));
        assert!(!cluster::holds_nothing(b"not json"), "what does not parse is not taken for empty");
    }
}
