//! One connection: read request heads, answer them in order (pipelined
//! requests included), keep the connection while the client wants it.
//!
//! The loop owns the control flow; parsing (`request`), heads (`response`)
//! and path checks (`files`) are pure leaves.

use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use bytes::Bytes;
use percore_io::{time, File, Pipe, RecvStream, TcpStream};

use super::body::{self, BodyError, BodyReader};
use super::request::{self, Body, Limits, Method, Parsed, Reject};
use super::response::{self, Head};
use crate::cache;
use crate::files;
use crate::shard::{stopping_or, Counted, Shard};
use crate::store::{self, Conditions, Outcome};

/// Files up to this size are read and sent with their head in one writev;
/// larger ones go out through splice.
const INLINE_BODY_BYTES_MAX: u64 = 64 * 1024;
/// Responses up to this size are joined into one buffer and sent with
/// `IORING_OP_SEND` rather than `WRITEV` (which on a socket takes the generic
/// VFS write path).
const SEND_JOIN_BYTES_MAX: usize = 16 * 1024;

enum Next {
    KeepAlive,
    Close,
}

/// Serves one connection; `_opened` counts it among the shard's open
/// connections until it ends (taken when it was accepted or handed over, so
/// the count includes connections whose task has not run yet).
pub(crate) async fn serve(stream: TcpStream, shard: Rc<Shard>, _opened: Counted) {
    if shard.connections.get() > shard.config.connections_max_per_shard {
        let head = Head::new(503).header("Retry-After", 1).finish(0, true);
        let _ = send(&stream, &shard, vec![Bytes::from(head)]).await;
        return;
    }
    let limits =
        Limits { head_bytes_max: shard.config.header_bytes_max, target_bytes_max: shard.config.target_bytes_max };
    // Bytes received and not yet consumed. Empty and unallocated while the
    // connection is idle, so that an idle connection costs its task only.
    let mut buf: Vec<u8> = Vec::new();
    // The connection's one receive path: a multishot receive that takes a
    // buffer from the shard's ring only when data arrives (an idle
    // connection holds none) and stays armed between requests.
    let mut incoming = stream.recv_multi(&shard.ring);
    // When the head under way must be complete: set by its first byte, so a
    // client trickling a byte at a time cannot hold the connection open
    // beyond the header timeout (slowloris).
    let mut head_deadline: Option<std::time::Instant> = None;
    // The connection's one timer for waiting on its client: postponed at
    // each wait rather than registered anew per request.
    let mut waiting = time::sleep_until(time::loop_now() + shard.config.idle_timeout());
    loop {
        match request::parse(&buf, &limits) {
            Ok(Parsed::Complete(request, head_len)) => {
                head_deadline = None;
                buf.drain(..head_len);
                let started = time::loop_now();
                let labels = labels(&request);
                let mut close = !request.keep_alive || percore_cores::is_stopping();
                if request.method == Method::Put {
                    // PUT reads its own body.
                    // Boxed, like `respond` below: the connection's own
                    // future then stays small while it waits between requests
                    // (its size is that of its largest state).
                    let (next, status) =
                        OwnStatus::new(Box::pin(put(&stream, &mut incoming, &shard, &request, &mut buf, close))).await;
                    finished(&shard, &request, labels, started, status);
                    if let Next::Close = next {
                        // The answer may have come before the whole body
                        // (refused, failed): closing with unread bytes would
                        // reset the connection and could destroy the answer
                        // in the client's buffers.
                        linger(&stream, &mut incoming).await;
                        return;
                    }
                    continue;
                }
                match request.body {
                    Body::None => {}
                    // Bodies are not used by these routes yet: skip them to
                    // keep the framing, or close when they cannot be skipped.
                    Body::Length(n) => {
                        if !skip_body(&mut incoming, &shard, &mut buf, n).await {
                            return;
                        }
                    }
                    Body::Chunked => close = true,
                }
                let (next, status) = OwnStatus::new(Box::pin(respond(&stream, &shard, &request, close))).await;
                finished(&shard, &request, labels, started, status);
                if let Next::Close = next {
                    return;
                }
            }
            Ok(Parsed::Partial) => {
                // An idle connection waits for the idle timeout; one with a
                // head under way for the header timeout.
                let deadline = if buf.is_empty() {
                    crate::http::body::spare::give(std::mem::take(&mut buf));
                    time::loop_now() + shard.config.idle_timeout()
                } else {
                    *head_deadline.get_or_insert_with(|| time::loop_now() + shard.config.header_timeout())
                };
                waiting.postpone(deadline);
                let received =
                    time::timeout_by(&mut waiting, stopping_or(body::recv_into(&mut incoming, &mut buf))).await;
                match received {
                    Ok(Some(Ok(_))) => {}
                    Err(_) if !buf.is_empty() => {
                        let _ = reply_error(&stream, &shard, Reject { status: 408, reason: "request head timed out" })
                            .await;
                        return;
                    }
                    // Closed, failed, idle too long, or shutting down while idle.
                    _ => return,
                }
            }
            Err(reject) => {
                let _ = reply_error(&stream, &shard, reject).await;
                return;
            }
        }
    }
}

/// How long, and how many bytes, a closing connection's unread input is
/// read and dropped for (nginx's lingering close), after its write side is
/// shut down.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 8 << 20;

/// Half-closes the connection and discards what the client still sends,
/// briefly, so that the close that follows is a FIN rather than a reset.
async fn linger(stream: &TcpStream, incoming: &mut RecvStream<'_>) {
    if stream.shutdown(percore_io::Shutdown::Write).await.is_err() {
        return;
    }
    let deadline = time::loop_now() + LINGER_TIME;
    let mut dropped = 0;
    while dropped < LINGER_BYTES_MAX {
        match time::timeout_at(deadline, stopping_or(incoming.next())).await {
            Ok(Some(Some(Ok(data)))) => dropped += data.len(),
            // End of input, an error, out of time, or the daemon stopping.
            _ => return,
        }
    }
}

/// Runs one answer's future with a status slot of its own. The slot the
/// heads write ([`response::last_status`]) is the shard's, and while this
/// answer awaits its sends other connections build heads: so the answer's
/// value is put back before each poll and taken after it (a task-local, in
/// effect), and comes out with the answer's output.
struct OwnStatus<F> {
    future: F,
    status: u16,
}

impl<F> OwnStatus<F> {
    fn new(future: F) -> OwnStatus<F> {
        OwnStatus { future, status: 0 }
    }
}

impl<F: Future + Unpin> Future for OwnStatus<F> {
    type Output = (F::Output, u16);

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        response::set_last_status(self.status);
        let polled = std::pin::Pin::new(&mut self.future).poll(cx);
        self.status = response::last_status();
        polled.map(|output| (output, self.status))
    }
}

/// Records an answered request (metrics, and the access log if enabled);
/// `status` is the one its answer sent ([`OwnStatus`]).
fn finished(
    shard: &Shard,
    request: &request::Request,
    labels: (&'static str, &'static str),
    started: std::time::Instant,
    status: u16,
) {
    // The loop's clock: the tick the head completed in to the tick the
    // answer's last send completed in.
    let elapsed = time::loop_now().saturating_duration_since(started);
    crate::metrics::record(labels.0, labels.1, status, elapsed);
    if shard.config.access_log {
        tracing::info!(
            target: "percore::access",
            method = labels.0,
            path = %request.path,
            status,
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
}

/// Method and route labels for the metrics.
fn labels(request: &request::Request) -> (&'static str, &'static str) {
    let method = match request.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Other(_) => "OTHER",
    };
    let route = match request.path.as_str() {
        "/ping" => "ping",
        "/health" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/files/") && p.ends_with('/') => "list",
        p if p.starts_with("/files/") => "files",
        _ => "other",
    };
    (method, route)
}

async fn skip_body(incoming: &mut RecvStream<'_>, shard: &Shard, buf: &mut Vec<u8>, len: u64) -> bool {
    let mut left = len;
    loop {
        let take = (buf.len() as u64).min(left) as usize;
        buf.drain(..take);
        left -= take as u64;
        if left == 0 {
            return true;
        }
        match super::within(shard.config.body_timeout(), body::recv_into(incoming, buf)).await {
            Ok(Ok(_)) => {}
            _ => return false,
        }
    }
}

async fn respond(stream: &TcpStream, shard: &Shard, request: &request::Request, close: bool) -> Next {
    let head_only = request.method == Method::Head;
    let path = request.path.as_str();
    let ok = match path {
        "/metrics" => match request.method {
            Method::Get | Method::Head if !authorized(shard, request, false) => {
                unauthorized(stream, shard, close).await
            }
            Method::Get | Method::Head => {
                let gathered = percore_cores::broadcast(|| crate::metrics::snapshot(crate::shard::connections())).await;
                match gathered {
                    Ok(shards) => {
                        let text = crate::metrics::render(&shards);
                        let head = Head::new(200)
                            .header("Content-Type", "text/plain; version=0.0.4")
                            .finish(text.len() as u64, close);
                        let mut parts = vec![Bytes::from(head)];
                        if !head_only {
                            parts.push(Bytes::from(text));
                        }
                        send(stream, shard, parts).await
                    }
                    Err(err) => simple(stream, shard, 503, &format!("{err}\n"), close).await,
                }
            }
            _ => method_not_allowed(stream, shard, "GET, HEAD", close).await,
        },
        "/ping" | "/health" => match request.method {
            Method::Get | Method::Head => {
                // A fenced daemon still serves reads: healthy, but says so.
                let (status, body): (u16, &'static [u8]) = match (path, crate::serve::draining()) {
                    ("/ping", _) => (200, b"pong\n"),
                    (_, false) if store::writes_fenced() => (200, b"read-only\n"),
                    (_, false) => (200, b"ready\n"),
                    (_, true) => (503, b"draining\n"),
                };
                let head = || Head::new(status).header("Content-Type", "text/plain");
                if path == "/ping" && !head_only && !close {
                    // The same bytes for every kept-alive `GET /ping` within
                    // a second: rendered once a second per shard.
                    thread_local! {
                        static PONG: response::Rendered = response::Rendered::default();
                    }
                    send_rendered_ok(stream, shard, PONG.with(|pong| pong.get(|| head().finish_with(body, false))))
                        .await
                } else {
                    let whole = if head_only {
                        head().finish(body.len() as u64, close)
                    } else {
                        head().finish_with(body, close)
                    };
                    send_one(stream, shard, whole).await
                }
            }
            _ => method_not_allowed(stream, shard, "GET, HEAD", close).await,
        },
        _ => match path.strip_prefix("/files/") {
            Some(_) if !authorized(shard, request, request.method == Method::Delete) => {
                unauthorized(stream, shard, close).await
            }
            Some(rest) if rest.is_empty() || rest.ends_with('/') => match request.method {
                Method::Get | Method::Head => list_dir(stream, shard, request, rest, close).await,
                _ => method_not_allowed(stream, shard, "GET, HEAD", close).await,
            },
            Some(rest) => match request.method {
                Method::Get | Method::Head => get_file(stream, shard, request, rest, close).await,
                Method::Delete => delete(stream, shard, request, rest, close).await,
                _ => method_not_allowed(stream, shard, "GET, HEAD, PUT, DELETE", close).await,
            },
            None => simple(stream, shard, 404, "no such route\n", close).await,
        },
    };
    if ok && !close {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

async fn get_file(stream: &TcpStream, shard: &Shard, request: &request::Request, encoded: &str, close: bool) -> bool {
    let head_only = request.method == Method::Head;
    let path = match files::object_path(encoded) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => {
            return simple(stream, shard, 400, &format!("invalid path: {why}\n"), close).await
        }
    };
    if let Some(entry) = cache::get(&path) {
        return cached(stream, shard, request, entry, close).await;
    }
    // Taken before the file is read: if the path is invalidated meanwhile,
    // what was read is not cached.
    let epoch = cache::epoch();
    let (file, meta) = match files::open(&shard.root, &path).await {
        Ok(Some(found)) => found,
        Ok(None) => return simple(stream, shard, 404, "no such file\n", close).await,
        Err(err) if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            let head = Head::new(503).header("Retry-After", 1).header("Content-Type", "text/plain");
            let body = "out of file descriptors, retry\n";
            return send(stream, shard, vec![Bytes::from(head.finish(body.len() as u64, close)), Bytes::from(body)])
                .await;
        }
        Err(err) if err.raw_os_error() == Some(libc::EACCES) => {
            return simple(stream, shard, 403, "permission denied\n", close).await
        }
        Err(err) => {
            tracing::warn!("reading {}: {err}", String::from_utf8_lossy(&path));
            return simple(stream, shard, 500, "cannot read the file\n", close).await;
        }
    };
    let etag = files::etag(&meta);
    let last_modified = httpdate::fmt_http_date(meta.modified());
    let modified_secs = meta.mtime.0.max(0) as u64;
    let conditions = files::ReadConditions {
        if_match: request.if_match.as_deref(),
        if_none_match: request.if_none_match.as_deref(),
        if_modified_since: request.if_modified_since.as_deref(),
        if_unmodified_since: request.if_unmodified_since.as_deref(),
    };
    match files::evaluate(&conditions, &etag, modified_secs) {
        files::Decision::Proceed => {}
        files::Decision::PreconditionFailed => return simple(stream, shard, 412, "precondition failed\n", close).await,
        files::Decision::NotModified => {
            let head = Head::new(304).header("ETag", &etag).header("Last-Modified", &last_modified);
            return send(stream, shard, vec![Bytes::from(head.finish(0, close))]).await;
        }
    }
    let content_type = files::content_type(&path);
    let size = meta.size;
    if !head_only && cache::enabled() && size <= cache::FILE_BYTES_MAX {
        // A small file is read whole and cached, and this GET (ranges
        // included, so that a range-only load keeps the cache warm) is
        // answered from the entry.
        let (result, body) = file.read_exact_at(Vec::with_capacity(size as usize), 0).await;
        if result.is_err() {
            return simple(stream, shard, 500, "the file changed while being read\n", true).await;
        }
        let entry = cache::insert(&path, epoch, Bytes::from(body), etag, last_modified, modified_secs, content_type);
        drop(file);
        return cached(stream, shard, request, entry, close).await;
    }
    // Range applies to GET only, and only if If-Range (when sent) holds.
    let ranges = match request.range.as_deref() {
        Some(range) if !head_only && files::if_range_holds(request.if_range.as_deref(), &etag, modified_secs) => {
            files::parse_ranges(range, size)
        }
        _ => files::Ranges::Full,
    };
    let base = |status: u16| {
        Head::new(status).header("ETag", &etag).header("Last-Modified", &last_modified).header("Accept-Ranges", "bytes")
    };
    match ranges {
        files::Ranges::Full => {
            let head = base(200).header("Content-Type", &content_type).finish(size, close);
            if head_only {
                return send(stream, shard, vec![Bytes::from(head)]).await;
            }
            send_body(stream, shard, &file, Some(head), 0, size).await
        }
        files::Ranges::Unsatisfiable => send(stream, shard, unsatisfiable(base(416), size, close)).await,
        files::Ranges::Parts(parts) if parts.len() == 1 => {
            let (a, b) = parts[0];
            let head = base(206)
                .header("Content-Type", &content_type)
                .header("Content-Range", format!("bytes {a}-{b}/{size}"))
                .finish(b - a + 1, close);
            send_body(stream, shard, &file, Some(head), a, b - a + 1).await
        }
        files::Ranges::Parts(parts) => {
            let layout = Multipart::new(&etag, &content_type, &parts, size);
            let head = base(206).header("Content-Type", layout.content_type()).finish(layout.total, close);
            if !send(stream, shard, vec![Bytes::from(head)]).await {
                return false;
            }
            for (part_head, (a, b)) in layout.part_heads.into_iter().zip(parts) {
                if !send_body(stream, shard, &file, Some(part_head), a, b - a + 1).await {
                    return false;
                }
            }
            send(stream, shard, vec![Bytes::from(layout.closing)]).await
        }
    }
}

/// A 416 answer to a range that selects nothing of `size` bytes.
fn unsatisfiable(head: Head, size: u64, close: bool) -> Vec<Bytes> {
    let body = "range not satisfiable\n";
    let head = head.header("Content-Range", format!("bytes */{size}")).header("Content-Type", "text/plain");
    vec![Bytes::from(head.finish(body.len() as u64, close)), Bytes::from(body)]
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

async fn list_dir(stream: &TcpStream, shard: &Shard, request: &request::Request, encoded: &str, close: bool) -> bool {
    let query = match crate::listing::parse_query(request.query.as_deref()) {
        Ok(query) => query,
        Err(why) => return simple(stream, shard, 400, &format!("{why}\n"), close).await,
    };
    let dir = match encoded.trim_end_matches('/') {
        "" => shard.root.open_dir(".").await,
        path => match files::object_path(path) {
            Ok(path) => shard.root.open_dir(std::ffi::OsStr::from_bytes(&path)).await,
            Err(files::PathError::Invalid(why)) => {
                return simple(stream, shard, 400, &format!("invalid path: {why}\n"), close).await
            }
        },
    };
    let dir = match dir {
        Ok(dir) => dir,
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP)) => {
            return simple(stream, shard, 404, "no such directory\n", close).await
        }
        Err(err) => return simple(stream, shard, io_status(&err), &format!("cannot list: {err}\n"), close).await,
    };
    match crate::listing::list(&dir, &query).await {
        Ok(json) => {
            let head = Head::new(200).header("Content-Type", "application/json").finish(json.len() as u64, close);
            let mut parts = vec![Bytes::from(head)];
            if request.method != Method::Head {
                parts.push(Bytes::from(json));
            }
            send(stream, shard, parts).await
        }
        Err(err) => simple(stream, shard, io_status(&err), &format!("cannot list: {err}\n"), close).await,
    }
}

/// Answers a GET or HEAD from a cached entry (no file system access).
async fn cached(
    stream: &TcpStream,
    shard: &Shard,
    request: &request::Request,
    entry: std::rc::Rc<cache::Entry>,
    close: bool,
) -> bool {
    let conditions = files::ReadConditions {
        if_match: request.if_match.as_deref(),
        if_none_match: request.if_none_match.as_deref(),
        if_modified_since: request.if_modified_since.as_deref(),
        if_unmodified_since: request.if_unmodified_since.as_deref(),
    };
    // A whole body that goes out in one send with its head is appended to
    // the head's buffer: room for it there (none for other answers).
    let room = if entry.body.len() <= SEND_JOIN_BYTES_MAX { entry.body.len() } else { 0 };
    let base = |status: u16| {
        Head::with_room(status, if status == 200 { room } else { 0 })
            .header("ETag", &entry.etag)
            .header("Last-Modified", &entry.last_modified)
            .header("Accept-Ranges", "bytes")
    };
    let ok = || base(200).header("Content-Type", &entry.content_type);
    let unconditional = request.if_match.is_none()
        && request.if_none_match.is_none()
        && request.if_modified_since.is_none()
        && request.if_unmodified_since.is_none()
        && request.range.is_none();
    if unconditional && request.method == Method::Get && !close && entry.body.len() <= cache::RENDERED_BYTES_MAX {
        // The common answer, the same bytes for every such request within a
        // second: rendered once a second per entry, sent without a copy.
        return send_rendered_ok(stream, shard, entry.whole_answer(|| ok().finish_with(&entry.body, false))).await;
    }
    let head = match files::evaluate(&conditions, &entry.etag, entry.modified_secs) {
        files::Decision::PreconditionFailed => return simple(stream, shard, 412, "precondition failed\n", close).await,
        files::Decision::NotModified => {
            Head::new(304).header("ETag", &entry.etag).header("Last-Modified", &entry.last_modified)
        }
        files::Decision::Proceed => ok(),
    };
    // Ranges of a cached file are slices of the cached body, as the file
    // path would have read them (GET only; only if If-Range holds).
    let size = entry.body.len() as u64;
    let ranges = match request.range.as_deref() {
        Some(range)
            if request.method == Method::Get
                && head.status() == 200
                && files::if_range_holds(request.if_range.as_deref(), &entry.etag, entry.modified_secs) =>
        {
            files::parse_ranges(range, size)
        }
        _ => files::Ranges::Full,
    };
    let slice = |(a, b): (u64, u64)| entry.body.slice(a as usize..=b as usize);
    match ranges {
        files::Ranges::Full => {}
        files::Ranges::Unsatisfiable => return send(stream, shard, unsatisfiable(base(416), size, close)).await,
        files::Ranges::Parts(parts) if parts.len() == 1 => {
            let (a, b) = parts[0];
            let head = base(206)
                .header("Content-Type", &entry.content_type)
                .header("Content-Range", format!("bytes {a}-{b}/{size}"))
                .finish(b - a + 1, close);
            return send(stream, shard, vec![Bytes::from(head), slice(parts[0])]).await;
        }
        files::Ranges::Parts(parts) => {
            let layout = Multipart::new(&entry.etag, &entry.content_type, &parts, size);
            let head = base(206).header("Content-Type", layout.content_type()).finish(layout.total, close);
            let mut out = vec![Bytes::from(head)];
            for (part_head, part) in layout.part_heads.into_iter().zip(parts) {
                out.push(Bytes::from(part_head));
                out.push(slice(part));
            }
            out.push(Bytes::from(layout.closing));
            return send(stream, shard, out).await;
        }
    }
    let not_modified = head.status() == 304;
    if request.method != Method::Get || not_modified {
        return send_one(stream, shard, head.finish(entry.body.len() as u64, close)).await;
    }
    if entry.body.len() <= SEND_JOIN_BYTES_MAX {
        return send_one(stream, shard, head.finish_with(&entry.body, close)).await;
    }
    send(stream, shard, vec![Bytes::from(head.finish(entry.body.len() as u64, close)), entry.body.clone()]).await
}

/// Sends `head` (if any) and `len` bytes of `file` from `offset`: small spans
/// read and sent with the head in one writev, large ones spliced
/// (file → pipe → socket, no copy through user memory, bounded per step).
async fn send_body(
    stream: &TcpStream,
    shard: &Shard,
    file: &File,
    head: Option<Vec<u8>>,
    offset: u64,
    len: u64,
) -> bool {
    if len <= INLINE_BODY_BYTES_MAX {
        let (result, body) = file.read_exact_at(Vec::with_capacity(len as usize), offset).await;
        if result.is_err() {
            // The file shrank under us. If the head is still unsent we can
            // say so; otherwise the framing is broken and the connection ends.
            if head.is_some() {
                simple(stream, shard, 500, "the file changed while being read\n", true).await;
            }
            return false;
        }
        let mut parts: Vec<Bytes> = head.into_iter().map(Bytes::from).collect();
        parts.push(Bytes::from(body));
        return send(stream, shard, parts).await;
    }
    if let Some(head) = head {
        // Held back (`MSG_MORE`) to leave with the body's first bytes: a
        // head alone in a segment is one more wake-up for the client.
        let len = head.len() as u64;
        let sent = super::within(shard.config.send_timeout(), stream.send_all_more(head)).await;
        if !matches!(sent, Ok((Ok(()), _))) {
            return false;
        }
        crate::metrics::bytes_out(len);
    }
    let pipe = match shard.pipes.borrow_mut().pop() {
        Some(pipe) => pipe,
        None => match Pipe::new(1 << 20) {
            Ok(pipe) => pipe,
            Err(_) => return false,
        },
    };
    // In pieces, each under the send timeout: a slow reader of a large file
    // is fine as long as it keeps reading; one that stops is dropped.
    let mut done = 0;
    while done < len {
        let piece = (len - done).min(SEND_FILE_PIECE);
        let sent = super::within(
            shard.config.send_timeout(),
            percore_io::send_file(stream, file, offset + done, piece, &pipe, done + piece < len),
        )
        .await;
        match sent {
            Ok(Ok(n)) if n == piece => {
                crate::metrics::bytes_out(n);
                done += n;
            }
            // Short (the file shrank), failed or timed out: the framing is
            // broken, so the connection closes (and the pipe, which may hold
            // bytes, is dropped).
            _ => return false,
        }
    }
    // The whole span went out and the pipe is empty: reuse it.
    shard.pipes.borrow_mut().push(pipe);
    true
}

/// Bytes of a file spliced under one send timeout: the slowest reader kept
/// is one that takes a piece per timeout (1 MiB per 30 s by default).
const SEND_FILE_PIECE: u64 = 1 << 20;

/// Compares tokens in time independent of where they differ.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request may read (`write == false`) or write files.
fn authorized(shard: &Shard, request: &request::Request, write: bool) -> bool {
    let given = request.bearer.as_deref();
    let matches = |token: &Option<String>| match (token, given) {
        (Some(expected), Some(given)) => same_token(given, expected),
        _ => false,
    };
    let write_ok = shard.config.write_token.is_none() || matches(&shard.config.write_token);
    if write {
        return write_ok;
    }
    // A reader needs the read token, or the write token (writers read too).
    shard.config.read_token.is_none()
        || matches(&shard.config.read_token)
        || (shard.config.write_token.is_some() && matches(&shard.config.write_token))
}

async fn unauthorized(stream: &TcpStream, shard: &Shard, close: bool) -> bool {
    let body = "a valid bearer token is required\n";
    let head = Head::new(401).header("WWW-Authenticate", "Bearer").header("Content-Type", "text/plain");
    send(stream, shard, vec![Bytes::from(head.finish(body.len() as u64, close)), Bytes::from(body)]).await
}

fn conditions(request: &request::Request) -> Conditions {
    Conditions { if_match: request.if_match.clone(), if_none_match: request.if_none_match.clone() }
}

/// Answers a commit's outcome.
async fn outcome(stream: &TcpStream, shard: &Shard, outcome: Outcome, close: bool) -> bool {
    let (status, etag, body): (u16, Option<String>, String) = match outcome {
        Outcome::Created(etag) => (201, Some(etag), String::new()),
        Outcome::Replaced(etag) => (200, Some(etag), String::new()),
        Outcome::Deleted => (204, None, String::new()),
        Outcome::NotFound => (404, None, "no such file\n".into()),
        Outcome::PreconditionFailed => (412, None, "precondition failed\n".into()),
        Outcome::Fenced => (503, None, store::FENCED_MESSAGE.into()),
        Outcome::Failed(kind, message) => {
            tracing::warn!("commit failed: {message}");
            let status = match kind {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => 507,
                std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::AlreadyExists => 409,
                _ => 500,
            };
            (status, None, format!("{message}\n"))
        }
    };
    let mut head = Head::new(status);
    if let Some(etag) = etag {
        head = head.header("ETag", etag);
    }
    if !body.is_empty() {
        head = head.header("Content-Type", "text/plain");
    }
    let mut parts = vec![Bytes::from(head.finish(body.len() as u64, close))];
    if !body.is_empty() {
        parts.push(Bytes::from(body));
    }
    send(stream, shard, parts).await
}

/// Maps an I/O error before the commit to a status.
fn io_status(err: &std::io::Error) -> u16 {
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

async fn put(
    stream: &TcpStream,
    incoming: &mut RecvStream<'_>,
    shard: &Shard,
    request: &request::Request,
    buf: &mut Vec<u8>,
    close: bool,
) -> Next {
    let Some(rest) = request.path.strip_prefix("/files/") else {
        // PUT elsewhere: the body is never read, so the connection closes.
        let allow = if request.path == "/ping" || request.path == "/health" { "GET, HEAD" } else { "" };
        if allow.is_empty() {
            simple(stream, shard, 404, "no such route\n", true).await;
        } else {
            method_not_allowed(stream, shard, allow, true).await;
        }
        return Next::Close;
    };
    if !authorized(shard, request, true) {
        // The body is never read: the connection closes.
        unauthorized(stream, shard, true).await;
        return Next::Close;
    }
    let path = match files::object_path(rest) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => {
            simple(stream, shard, 400, &format!("invalid path: {why}\n"), true).await;
            return Next::Close;
        }
    };
    if store::writes_fenced() {
        // Refused before the body is read: the connection closes.
        simple(stream, shard, 503, store::FENCED_MESSAGE, true).await;
        return Next::Close;
    }
    if let Body::Length(n) = request.body {
        if n > shard.config.body_bytes_max {
            // Refused before any of it is read.
            simple(stream, shard, 413, "body too large\n", true).await;
            return Next::Close;
        }
    }
    let (dir, _leaf) = match store::parent_dir(&shard.root, &path, true).await {
        Ok(found) => found,
        Err(err) => {
            simple(stream, shard, io_status(&err), &format!("cannot create the directory: {err}\n"), true).await;
            return Next::Close;
        }
    };
    // A spare (an old version known to be open nowhere else) is
    // overwritten rather than a file created, when the body's length is
    // known and covers the spare's old content.
    let spare = match request.body {
        Body::Length(n) => store::take_spare(store::dir_key(&path), n),
        _ => None,
    };
    let reused = spare.as_ref().map(|spare| spare.mtime);
    let (temp, file) = match spare {
        Some(spare) => (spare.name, spare.file),
        None => {
            let temp = store::temp_name();
            match dir.open_file(std::ffi::OsStr::from_bytes(&temp), &store::temp_options()).await {
                Ok(file) => (temp, file),
                Err(err) => {
                    simple(stream, shard, io_status(&err), &format!("cannot store the file: {err}\n"), true).await;
                    return Next::Close;
                }
            }
        }
    };
    if request.expect_continue && !send(stream, shard, vec![Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n")]).await
    {
        let _ = dir.unlink(std::ffi::OsStr::from_bytes(&temp)).await;
        return Next::Close;
    }
    let mut body =
        BodyReader::new(incoming, buf, request.body, shard.config.body_bytes_max, shard.config.body_timeout());
    let written: Result<String, (u16, String)> = async {
        loop {
            let piece = match body.next().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                // A client that stopped sending gets 408; one that is gone, nothing.
                Err(BodyError::Io(err)) if err.kind() == std::io::ErrorKind::TimedOut => {
                    return Err((408, "request body timed out\n".into()))
                }
                Err(BodyError::Io(err)) => return Err((0, err.to_string())),
                Err(BodyError::Framing(why)) => return Err((400, format!("{why}\n"))),
                Err(BodyError::TooLarge) => return Err((413, "body too large\n".into())),
            };
            let offset = body.total() - piece.len() as u64;
            let (result, _) = file.write_all_at(piece, offset).await;
            result.map_err(|e| (io_status(&e), format!("cannot store the file: {e}\n")))?;
        }
        store::flush_body(&file, shard.write_back_dev, reused)
            .await
            .map_err(|e| (io_status(&e), format!("cannot flush the file: {e}\n")))
    }
    .await;
    drop(file);
    let etag = match written {
        Ok(etag) => etag,
        Err((status, message)) => {
            // Nothing of a failed upload stays behind.
            let _ = dir.unlink(std::ffi::OsStr::from_bytes(&temp)).await;
            if status != 0 {
                simple(stream, shard, status, &message, true).await;
            }
            return Next::Close;
        }
    };
    let cond = conditions(request);
    let owner_path = path.clone();
    let owner_temp = temp.clone();
    let result = store::on_owner(&path, move || store::commit_put(owner_path, owner_temp, cond, etag)).await;
    if let Outcome::Failed(std::io::ErrorKind::Interrupted, _) = result {
        // The owner stopped before it could commit (shutdown past its grace):
        // the temporary file is ours to remove. (Had it been renamed, this
        // finds nothing.)
        let _ = dir.unlink(std::ffi::OsStr::from_bytes(&temp)).await;
    }
    drop(dir);
    // The upload may have outlasted the start of a stop: then this answer
    // is the connection's last.
    let close = close || percore_cores::is_stopping();
    if outcome(stream, shard, result, close).await && !close {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

async fn delete(stream: &TcpStream, shard: &Shard, request: &request::Request, rest: &str, close: bool) -> bool {
    let path = match files::object_path(rest) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => {
            return simple(stream, shard, 400, &format!("invalid path: {why}\n"), close).await
        }
    };
    let cond = conditions(request);
    let owner_path = path.clone();
    let result = store::on_owner(&path, move || store::commit_delete(owner_path, cond)).await;
    outcome(stream, shard, result, close).await
}

async fn method_not_allowed(stream: &TcpStream, shard: &Shard, allow: &str, close: bool) -> bool {
    let body = "method not allowed\n";
    let head = Head::new(405).header("Allow", allow).header("Content-Type", "text/plain");
    send(stream, shard, vec![Bytes::from(head.finish(body.len() as u64, close)), Bytes::from(body)]).await
}

async fn simple(stream: &TcpStream, shard: &Shard, status: u16, body: &str, close: bool) -> bool {
    let head = Head::new(status).header("Content-Type", "text/plain");
    send_one(stream, shard, head.finish_with(body.as_bytes(), close)).await
}

/// Sends one buffer (a head, or a head with a small body after it).
async fn send_one(stream: &TcpStream, shard: &Shard, whole: impl percore_io::IoBuf) -> bool {
    let len = whole.bytes_init() as u64;
    let sent = matches!(super::within(shard.config.send_timeout(), stream.send_all(whole)).await, Ok((Ok(()), _)));
    if sent {
        crate::metrics::bytes_out(len);
    }
    sent
}

/// Sends a whole 200 answer rendered beforehand ([`response::Rendered`]):
/// no head is built for it, so the status the metrics record is set here.
/// (A plain function returning `send_one`'s future: no state machine of its
/// own on the hottest path.)
fn send_rendered_ok<'a>(stream: &'a TcpStream, shard: &'a Shard, whole: Bytes) -> impl Future<Output = bool> + 'a {
    response::set_last_status(200);
    send_one(stream, shard, whole)
}

async fn reply_error(stream: &TcpStream, shard: &Shard, reject: Reject) -> bool {
    simple(stream, shard, reject.status, &format!("{}\n", reject.reason), true).await
}

/// Sends every part, within the send timeout. False if the connection is
/// unusable afterwards.
async fn send(stream: &TcpStream, shard: &Shard, parts: Vec<Bytes>) -> bool {
    let len: usize = parts.iter().map(Bytes::len).sum();
    if parts.len() > 1 && len <= SEND_JOIN_BYTES_MAX {
        return send_one(stream, shard, parts.concat()).await;
    }
    let sent = matches!(super::within(shard.config.send_timeout(), stream.writev_all(parts)).await, Ok((Ok(()), _)));
    if sent {
        crate::metrics::bytes_out(len as u64);
    }
    sent
}
