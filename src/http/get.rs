//! GET and HEAD of a file: one path for both sources of a representation.
//!
//! A file's representation is its length, ETag, Last-Modified and type
//! ([`Meta`]); its bytes come from the cache or from the open file
//! ([`Source`]). What to answer — 412, 304, the whole, one range, several,
//! 416 — is decided once from the request and the meta alone ([`plan`]);
//! only the sending differs by source. A small file read from disk for a
//! GET is cached and its answer sent from the entry.

use std::rc::Rc;

use bytes::Bytes;
use percore_io::File;

use super::reply::Reply;
use super::request::{Method, Request};
use super::response::Head;
use super::wire::SEND_JOIN_BYTES_MAX;
use crate::cache;
use crate::files::{self, Decision, ReadConditions};
use crate::health::Kind;
use crate::ranges::{self, Ranges};

/// Files up to this size are read and sent with their head in one writev;
/// larger ones go out through splice.
const INLINE_BODY_BYTES_MAX: u64 = 64 * 1024;

/// A representation's metadata, whichever source holds its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta<'a> {
    pub(crate) size: u64,
    pub(crate) etag: &'a str,
    pub(crate) last_modified: &'a str,
    pub(crate) modified_secs: u64,
    pub(crate) content_type: &'a str,
    /// More header lines (`Name: value\r\n` each) for every 2xx head: an
    /// S3 object's stored headers. Empty for `/files/`.
    pub(crate) extra: &'a str,
}

/// Where the bytes are.
enum Source<'a> {
    Cached(&'a cache::Entry),
    File(&'a File),
}

/// What to answer, decided from the request and the meta alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    PreconditionFailed,
    NotModified,
    /// 200 (for HEAD, the head alone).
    Whole,
    /// 416.
    Unsatisfiable,
    /// 206, one range (first and last byte).
    Part(u64, u64),
    /// 206, multipart/byteranges.
    Parts(Vec<(u64, u64)>),
}

pub(crate) fn plan(request: &Request, meta: &Meta<'_>) -> Plan {
    let conditions = ReadConditions {
        if_match: request.if_match.as_deref(),
        if_none_match: request.if_none_match.as_deref(),
        if_modified_since: request.if_modified_since.as_deref(),
        if_unmodified_since: request.if_unmodified_since.as_deref(),
    };
    match files::evaluate(&conditions, meta.etag, meta.modified_secs) {
        Decision::PreconditionFailed => return Plan::PreconditionFailed,
        Decision::NotModified => return Plan::NotModified,
        Decision::Proceed => {}
    }
    // Range applies to GET only (RFC 9110, 14.2).
    if request.method != Method::Get {
        return Plan::Whole;
    }
    range_plan(request, meta)
}

/// What the request's Range asks of `meta`, if it sends one and If-Range
/// (when sent) holds; the whole otherwise.
pub(crate) fn range_plan(request: &Request, meta: &Meta<'_>) -> Plan {
    match request.range.as_deref() {
        Some(range) if files::if_range_holds(request.if_range.as_deref(), meta.etag, meta.modified_secs) => {
            match ranges::parse_ranges(range, meta.size) {
                Ranges::Full => Plan::Whole,
                Ranges::Unsatisfiable => Plan::Unsatisfiable,
                Ranges::Parts(parts) if parts.len() == 1 => Plan::Part(parts[0].0, parts[0].1),
                Ranges::Parts(parts) => Plan::Parts(parts),
            }
        }
        _ => Plan::Whole,
    }
}

fn entry_meta(entry: &cache::Entry) -> Meta<'_> {
    Meta {
        size: entry.body.len() as u64,
        etag: &entry.etag,
        last_modified: &entry.last_modified,
        modified_secs: entry.modified_secs,
        content_type: &entry.content_type,
        extra: "",
    }
}

/// `GET` or `HEAD /files/<encoded>`.
pub(crate) async fn get(reply: &mut Reply<'_>, request: &Request, encoded: &str) -> bool {
    let path = match files::object_path(encoded) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => return reply.simple(400, &format!("invalid path: {why}\n")).await,
    };
    if let Some(entry) = cache::get(&path) {
        return from_cache(reply, request, &entry).await;
    }
    // Taken before the file is read: if the path is invalidated meanwhile,
    // what was read is not cached.
    let epoch = cache::epoch();
    let (file, stat) = match files::open(reply.shard.store.root(), &path).await {
        Ok(files::Found::File(file, stat)) => (file, stat),
        Ok(files::Found::Nothing) => return reply.simple(404, "no such file\n").await,
        Ok(files::Found::Dir) => {
            // A directory without its slash: its listing is at the slash form.
            let location = format!("/files/{encoded}/");
            let head = Head::new(301).header("Location", &location).header("Content-Type", "text/plain");
            let whole = reply.finish_with(head, format!("moved to {location}\n").as_bytes());
            return reply.send_one(whole).await;
        }
        Err(err) if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            reply.fault(format!("opening a file: {err}"));
            let head = Head::new(503).header("Retry-After", 1).header("Content-Type", "text/plain");
            let whole = reply.finish_with(head, b"out of file descriptors, retry\n");
            return reply.send_one(whole).await;
        }
        Err(err) if err.raw_os_error() == Some(libc::EACCES) => {
            return reply.simple(403, "permission denied\n").await;
        }
        Err(err) => {
            let err = reply.shard.store.faults().saw(Kind::Open, err);
            reply.fault(format!("opening {}: {err}", String::from_utf8_lossy(&path)));
            return reply.simple(500, "cannot read the file\n").await;
        }
    };
    let etag = files::etag(&stat);
    let last_modified = httpdate::fmt_http_date(stat.modified());
    let content_type = files::content_type(&path);
    let meta = Meta {
        size: stat.size,
        etag: &etag,
        last_modified: &last_modified,
        modified_secs: stat.mtime.0.max(0) as u64,
        content_type: &content_type,
        extra: "",
    };
    let plan = plan(request, &meta);
    let sends_bytes = !matches!(plan, Plan::PreconditionFailed | Plan::NotModified);
    if sends_bytes && request.method == Method::Get && cache::enabled() && meta.size <= cache::FILE_BYTES_MAX {
        // A small file is read whole and cached, and this GET (ranges
        // included, so that a range-only load keeps the cache warm) is
        // answered from the entry.
        let (result, body) = file.read_exact_at(Vec::with_capacity(meta.size as usize), 0).await;
        if let Err(err) = result {
            let err = reply.shard.store.faults().saw(Kind::Read, err);
            reply.fault(format!("reading {}: {err}", String::from_utf8_lossy(&path)));
            reply.closing();
            return reply.simple(500, "the file changed while being read\n").await;
        }
        let modified_secs = meta.modified_secs;
        // What S3 stored with it, so that an S3 GET can answer from the
        // entry too (one getxattr per fill).
        let s3 = crate::s3::meta::read(&file, &etag);
        drop(file);
        let fill = cache::Fill { body: Bytes::from(body), etag, last_modified, modified_secs, content_type, s3 };
        let entry = cache::insert(&path, epoch, fill);
        return send(reply, request, &entry_meta(&entry), plan, Source::Cached(&entry)).await;
    }
    send(reply, request, &meta, plan, Source::File(&file)).await
}

/// Answers from a cached entry (no file system access).
async fn from_cache(reply: &mut Reply<'_>, request: &Request, entry: &Rc<cache::Entry>) -> bool {
    let unconditional = request.if_match.is_none()
        && request.if_none_match.is_none()
        && request.if_modified_since.is_none()
        && request.if_unmodified_since.is_none()
        && request.range.is_none();
    let meta = entry_meta(entry);
    if unconditional && request.method == Method::Get && !reply.close() && entry.body.len() <= cache::RENDERED_BYTES_MAX
    {
        // The common answer, the same bytes for every such request within a
        // second: rendered once a second per entry, sent without a copy.
        let whole = entry.whole_answer(|| ok_head(&meta, entry.body.len()).finish_with(&entry.body, false));
        reply.rendered(200);
        return reply.send_one(whole).await;
    }
    send(reply, request, &meta, plan(request, &meta), Source::Cached(entry)).await
}

/// The head every 2xx and 416 answer of `meta` starts with, with room for
/// `room` body bytes after it.
fn base(meta: &Meta<'_>, status: u16, room: usize) -> Head {
    Head::with_room(status, room)
        .header("ETag", meta.etag)
        .header("Last-Modified", meta.last_modified)
        .header("Accept-Ranges", "bytes")
        .lines(meta.extra)
}

/// The whole 200 answer (head and body, kept alive) of `entry` as `meta`
/// describes it: what a rendered answer holds.
pub(crate) fn whole_ok(meta: &Meta<'_>, entry: &cache::Entry) -> Vec<u8> {
    ok_head(meta, entry.body.len()).finish_with(&entry.body, false)
}

/// Answers a GET or HEAD from a cached entry, its representation described
/// by the caller (`meta`: an S3 object's own ETag and headers).
pub(crate) async fn send_entry(
    reply: &mut Reply<'_>,
    request: &Request,
    meta: &Meta<'_>,
    plan: Plan,
    entry: &cache::Entry,
) -> bool {
    send(reply, request, meta, plan, Source::Cached(entry)).await
}

/// Answers a GET or HEAD of an open file whose representation the caller
/// described (`meta`) and planned (`plan`, from [`plan`]): the S3 side's
/// way into the same sending as `/files/`.
pub(crate) async fn send_file(
    reply: &mut Reply<'_>,
    request: &Request,
    meta: &Meta<'_>,
    plan: Plan,
    file: &File,
) -> bool {
    send(reply, request, meta, plan, Source::File(file)).await
}

/// Answers a GET or HEAD of a representation without bytes (an S3
/// folder): its head alone, or what its conditions decided.
pub(crate) async fn send_empty(reply: &mut Reply<'_>, meta: &Meta<'_>, plan: Plan) -> bool {
    match plan {
        Plan::Whole => {
            let whole = reply.finish(ok_head(meta, 0), 0);
            reply.send_one(whole).await
        }
        // Not one byte of nothing can be asked for.
        Plan::Part(..) | Plan::Parts(_) => send_bodiless(reply, meta, &Plan::Unsatisfiable).await,
        plan => send_bodiless(reply, meta, &plan).await,
    }
}

/// The answers that send none of the representation's bytes: 412, 304, 416.
async fn send_bodiless(reply: &mut Reply<'_>, meta: &Meta<'_>, plan: &Plan) -> bool {
    match plan {
        Plan::PreconditionFailed => reply.simple(412, "precondition failed\n").await,
        Plan::NotModified => {
            let head = Head::new(304).header("ETag", meta.etag).header("Last-Modified", meta.last_modified);
            let whole = reply.finish(head, 0);
            reply.send_one(whole).await
        }
        _ => {
            let head = base(meta, 416, 0)
                .header("Content-Range", format!("bytes */{}", meta.size))
                .header("Content-Type", "text/plain");
            let whole = reply.finish_with(head, b"range not satisfiable\n");
            reply.send_one(whole).await
        }
    }
}

/// The 200 head (room for a body that goes out in one send with it).
fn ok_head(meta: &Meta<'_>, body: usize) -> Head {
    let room = if body <= SEND_JOIN_BYTES_MAX { body } else { 0 };
    base(meta, 200, room).header("Content-Type", meta.content_type)
}

/// Sends what `plan` decided, from `source`.
async fn send(reply: &mut Reply<'_>, request: &Request, meta: &Meta<'_>, plan: Plan, source: Source<'_>) -> bool {
    let size = meta.size;
    match plan {
        Plan::PreconditionFailed | Plan::NotModified | Plan::Unsatisfiable => send_bodiless(reply, meta, &plan).await,
        Plan::Whole => {
            let head = ok_head(meta, size as usize);
            if request.method == Method::Head {
                let whole = reply.finish(head, size);
                return reply.send_one(whole).await;
            }
            match source {
                Source::Cached(entry) if entry.body.len() <= SEND_JOIN_BYTES_MAX => {
                    let whole = reply.finish_with(head, &entry.body);
                    reply.send_one(whole).await
                }
                Source::Cached(entry) => {
                    let head = reply.finish(head, size);
                    reply.send(vec![Bytes::from(head), entry.body.clone()]).await
                }
                Source::File(file) => {
                    let head = reply.finish(head, size);
                    send_span(reply, file, Some(head), 0, size).await
                }
            }
        }
        Plan::Part(a, b) => {
            let head = base(meta, 206, 0)
                .header("Content-Type", meta.content_type)
                .header("Content-Range", format!("bytes {a}-{b}/{size}"));
            let head = reply.finish(head, b - a + 1);
            if request.method == Method::Head {
                // (S3's HEAD with `partNumber`: the part's head alone.)
                return reply.send_one(head).await;
            }
            match source {
                Source::Cached(entry) => {
                    reply.send(vec![Bytes::from(head), entry.body.slice(a as usize..=b as usize)]).await
                }
                Source::File(file) => send_span(reply, file, Some(head), a, b - a + 1).await,
            }
        }
        Plan::Parts(parts) => {
            let layout = Multipart::new(meta.etag, meta.content_type, &parts, size);
            let head = base(meta, 206, 0).header("Content-Type", layout.content_type());
            let head = Bytes::from(reply.finish(head, layout.total));
            match source {
                Source::Cached(entry) => {
                    let mut out = vec![head];
                    for (part_head, (a, b)) in layout.part_heads.into_iter().zip(parts) {
                        out.push(Bytes::from(part_head));
                        out.push(entry.body.slice(a as usize..=b as usize));
                    }
                    out.push(Bytes::from(layout.closing));
                    reply.send(out).await
                }
                Source::File(file) => {
                    if !reply.send(vec![head]).await {
                        return false;
                    }
                    for (part_head, (a, b)) in layout.part_heads.into_iter().zip(parts) {
                        if !send_span(reply, file, Some(part_head), a, b - a + 1).await {
                            return false;
                        }
                    }
                    reply.send(vec![Bytes::from(layout.closing)]).await
                }
            }
        }
    }
}

/// Sends `head` (if any) and `len` bytes of `file` from `offset`: small
/// spans read and sent with the head in one writev, large ones spliced
/// after the head.
async fn send_span(reply: &mut Reply<'_>, file: &File, head: Option<Vec<u8>>, offset: u64, len: u64) -> bool {
    if len <= INLINE_BODY_BYTES_MAX {
        let (result, body) = file.read_exact_at(Vec::with_capacity(len as usize), offset).await;
        if let Err(err) = result {
            let err = reply.shard.store.faults().saw(Kind::Read, err);
            reply.fault(format!("reading a file: {err}"));
            // The file shrank under us. If the head is still unsent we can
            // say so; otherwise the framing is broken and the connection ends.
            reply.closing();
            if head.is_some() {
                reply.simple(500, "the file changed while being read\n").await;
            }
            return false;
        }
        let mut parts: Vec<Bytes> = head.into_iter().map(Bytes::from).collect();
        parts.push(Bytes::from(body));
        return reply.send(parts).await;
    }
    if let Some(head) = head {
        if !reply.send_more(head).await {
            return false;
        }
    }
    reply.splice(file, offset, len).await
}

/// A multipart/byteranges body laid out up front (each part with its own
/// head), so that Content-Length is exact before any of it is sent.
struct Multipart {
    boundary: String,
    part_heads: Vec<Vec<u8>>,
    closing: Vec<u8>,
    total: u64,
}

impl Multipart {
    fn new(etag: &str, content_type: &str, parts: &[(u64, u64)], size: u64) -> Multipart {
        // Differs per version; a body that happens to contain it is as
        // unlikely as for any random boundary.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(etag, &mut hasher);
        let boundary = format!("percore-{:016x}", std::hash::Hasher::finish(&hasher));
        let part_heads: Vec<Vec<u8>> = parts
            .iter()
            .map(|(a, b)| {
                format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n"
                )
                .into_bytes()
            })
            .collect();
        let closing = format!("\r\n--{boundary}--\r\n").into_bytes();
        let total = part_heads.iter().map(|h| h.len() as u64).sum::<u64>()
            + parts.iter().map(|(a, b)| b - a + 1).sum::<u64>()
            + closing.len() as u64;
        Multipart { boundary, part_heads, closing, total }
    }

    fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{parse, Limits, Parsed};

    fn request(head: &str) -> Request {
        let limits = Limits { head_bytes_max: 4096, target_bytes_max: 1024 };
        match parse(head.as_bytes(), &limits) {
            Ok(Parsed::Complete(request, _)) => request,
            _ => panic!("{head:?} does not parse"),
        }
    }

    #[test]
    fn one_plan_for_every_source() {
        let meta = Meta {
            size: 100,
            etag: "\"e\"",
            last_modified: "Thu, 01 Jan 1970 00:00:10 GMT",
            modified_secs: 10,
            content_type: "text/plain",
            extra: "",
        };
        let table = [
            ("GET /f HTTP/1.1\r\nHost: h\r\n\r\n", Plan::Whole),
            ("HEAD /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n", Plan::Whole),
            ("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\n", Plan::Part(0, 9)),
            ("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1,5-6\r\n\r\n", Plan::Parts(vec![(0, 1), (5, 6)])),
            ("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=200-\r\n\r\n", Plan::Unsatisfiable),
            ("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\nIf-Range: \"other\"\r\n\r\n", Plan::Whole),
            ("GET /f HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n", Plan::NotModified),
            ("HEAD /f HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n", Plan::NotModified),
            ("GET /f HTTP/1.1\r\nHost: h\r\nIf-Match: \"x\"\r\n\r\n", Plan::PreconditionFailed),
            ("GET /f HTTP/1.1\r\nHost: h\r\nIf-Match: \"e\"\r\nRange: bytes=1-2\r\n\r\n", Plan::Part(1, 2)),
        ];
        for (head, expected) in table {
            assert_eq!(plan(&request(head), &meta), expected, "{head:?}");
        }
    }
}
