//! One benchmark connection: sends requests (pipelined when asked), reads
//! and checks every response, records latency.
//!
//! Open loop (`--rate`): each request has an intended send time on a fixed
//! schedule, and its latency is measured from that time, not from when it
//! was actually sent, so a stalled server is charged for the requests it
//! delayed (no coordinated omission).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percore_io::time;
use rustls::ClientConfig;

use super::link::{Link, TlsPlan};
use super::workload::{self, ByteRange, Kind, Sizes};

/// What every connection does (the same on every client shard).
#[derive(Clone)]
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) kind: Kind,
    pub(crate) keys: u64,
    pub(crate) sizes: Sizes,
    pub(crate) pipeline: usize,
    /// Per-connection interval between intended sends (open loop).
    pub(crate) interval: Option<Duration>,
    pub(crate) measure_from: Instant,
    pub(crate) stop_at: Instant,
    pub(crate) token: Option<String>,
    /// GETs ask for this byte range (206 expected, checked byte for byte).
    pub(crate) range: Option<ByteRange>,
    /// GETs revalidate: `If-None-Match` with the ETag this connection last
    /// got for the key (304 expected while it is unchanged).
    pub(crate) conditional: bool,
    /// HTTPS: how to speak TLS.
    pub(crate) tls: Option<TlsPlan>,
    /// One request per connection (a handshake each, over TLS).
    pub(crate) new_connection: bool,
    /// S3: requests signed with this key, objects in the bucket `bench`.
    pub(crate) s3: Option<crate::s3::sign::Signer>,
}

/// The header lines that sign an S3 request with `body` as boto3 does over
/// plain HTTP: the payload's SHA-256 signed, its CRC32 sent.
pub(crate) fn s3_headers(
    signer: &crate::s3::sign::Signer,
    method: &str,
    path: &str,
    host: &str,
    body: &[u8],
) -> String {
    use base64::Engine;
    let hash = crate::s3::sign::payload_hash(body);
    let now = crate::clock::coarse_epoch_seconds();
    if method == "PUT" {
        let crc = base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(body).to_be_bytes());
        signer.headers(method, path, host, &[("x-amz-checksum-crc32", &crc)], &hash, now)
    } else {
        signer.headers(method, path, host, &[], &hash, now)
    }
}

/// A shard's results.
pub(crate) struct Stats {
    pub(crate) histogram: hdrhistogram::Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    /// Measured responses that were 304 Not Modified.
    pub(crate) not_modified: u64,
    /// Connections opened in the measured window, and how many of their
    /// TLS handshakes resumed a session.
    pub(crate) connections: u64,
    pub(crate) resumed: u64,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            histogram: hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            requests: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            not_modified: 0,
            connections: 0,
            resumed: 0,
        }
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

#[derive(Clone, Copy)]
enum Op {
    Ping,
    Get(u64),
    Put(u64),
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn choose(plan: &Plan, rng: &mut Rng) -> Op {
    let key = rng.next() % plan.keys.max(1);
    match plan.kind {
        Kind::Ping => Op::Ping,
        Kind::Get => Op::Get(key),
        Kind::Put => Op::Put(key),
        Kind::Mixed(read_percent) => {
            if rng.next() % 100 < u64::from(read_percent) {
                Op::Get(key)
            } else {
                Op::Put(key)
            }
        }
    }
}

/// Appends `op`'s request to `out`; `etag`: the key's ETag to revalidate.
fn request(plan: &Plan, op: Op, etag: Option<&str>, out: &mut Vec<u8>) {
    let mut auth = plan.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    if plan.new_connection {
        auth.push_str("Connection: close\r\n");
    }
    match op {
        Op::Ping => {
            out.extend_from_slice(format!("GET /ping HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", plan.host).as_bytes())
        }
        Op::Get(key) => {
            let range = match plan.range {
                Some(ByteRange { start, end: Some(end) }) => format!("Range: bytes={start}-{end}\r\n"),
                Some(ByteRange { start, end: None }) => format!("Range: bytes={start}-\r\n"),
                None => String::new(),
            };
            let condition = etag.map(|etag| format!("If-None-Match: {etag}\r\n")).unwrap_or_default();
            let path = match &plan.s3 {
                Some(signer) => {
                    let path = workload::s3_path(key);
                    auth.push_str(&s3_headers(signer, "GET", &path, &plan.host, b""));
                    path
                }
                None => workload::path(key),
            };
            out.extend_from_slice(
                format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}{range}{condition}\r\n", plan.host).as_bytes(),
            )
        }
        Op::Put(key) => {
            let size = plan.sizes.of(key);
            let body = workload::contents(key, size);
            let path = match &plan.s3 {
                Some(signer) => {
                    let path = workload::s3_path(key);
                    auth.push_str(&s3_headers(signer, "PUT", &path, &plan.host, &body));
                    path
                }
                None => workload::path(key),
            };
            out.extend_from_slice(
                format!("PUT {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: {size}\r\n\r\n", plan.host)
                    .as_bytes(),
            );
            out.extend_from_slice(&body);
        }
    }
}

/// One response as read: status, where its body is in the buffer, its ETag.
struct Response {
    status: u16,
    body: std::ops::Range<usize>,
    etag: Option<String>,
}

/// Reads one response from `stream` into `buf` (receiving into it,
/// a buffer kept across calls); the ETag only if `want_etag` (it costs an
/// allocation). The caller drains `buf` up to the body's end.
async fn read_response(link: &mut Link, buf: &mut Vec<u8>, want_etag: bool) -> Result<Response, &'static str> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                let length = if status == 204 || status == 304 { 0 } else { length };
                let etag = want_etag
                    .then(|| response.headers.iter().find(|h| h.name.eq_ignore_ascii_case("etag")))
                    .flatten()
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_string);
                // One allocation for a large body, not a doubling series.
                buf.reserve((head_len + length).saturating_sub(buf.len()));
                while buf.len() < head_len + length {
                    fill(link, buf).await?;
                }
                return Ok(Response { status, body: head_len..head_len + length, etag });
            }
            Ok(httparse::Status::Partial) => fill(link, buf).await?,
            Err(_) => return Err("malformed response"),
        }
    }
}

/// Receives once, straight into the free capacity at the end of `buf` (a
/// large body arrives where it is checked, with no copy in user space, over
/// plain TCP).
async fn fill(link: &mut Link, buf: &mut Vec<u8>) -> Result<(), &'static str> {
    if buf.capacity() - buf.len() < RECV_FREE_MIN {
        buf.reserve(RECV_CHUNK);
    }
    link.fill(buf).await
}

/// Free space asked for per receive, at least.
const RECV_FREE_MIN: usize = 16 * 1024;
/// Bytes reserved when the free space is below that.
const RECV_CHUNK: usize = 256 * 1024;

/// Checks one response; `revalidated`: the GET carried an `If-None-Match`.
fn verify(plan: &Plan, op: Op, status: u16, body: &[u8], revalidated: bool) -> Result<(), String> {
    match op {
        Op::Ping if status == 200 && body == b"pong\n" => Ok(()),
        Op::Ping => Err(format!("ping: status {status}")),
        // Unchanged since this connection last read it: nothing to check
        // but that it was asked.
        Op::Get(_) if status == 304 && revalidated => Ok(()),
        Op::Get(key) => {
            let size = plan.sizes.of(key);
            let (want_status, part) = match plan.range.map(|r| r.within(size)) {
                None => (200, 0..size),
                Some(Some(part)) => (206, part),
                Some(None) => {
                    return if status == 416 { Ok(()) } else { Err(format!("get: status {status}, not 416")) }
                }
            };
            if status != want_status {
                Err(format!("get: status {status}"))
            } else if body.len() as u64 != part.end - part.start {
                Err("get: wrong length".into())
            } else if !workload::check_at(key, part.start, body) {
                Err("get: wrong bytes".into())
            } else {
                Ok(())
            }
        }
        // 204 is how some servers (nginx's WebDAV) acknowledge a replace.
        Op::Put(_) if matches!(status, 200 | 201 | 204) => Ok(()),
        Op::Put(_) => Err(format!("put: status {status}")),
    }
}

/// Runs one connection (or, with `new_connection`, one after another)
/// until the plan's stop time; `tls`: this shard's client config. A
/// connection that fails is counted as an error and replaced.
pub(crate) async fn run(plan: Rc<Plan>, stats: Rc<RefCell<Stats>>, index: u64, tls: Option<Arc<ClientConfig>>) {
    let mut rng = Rng(workload::mix(index + 1) | 1);
    let mut state = State {
        buf: Vec::with_capacity(64 * 1024),
        out: Vec::with_capacity(16 * 1024),
        ops: Vec::with_capacity(plan.pipeline),
        etags: std::collections::HashMap::new(),
        // Open loop: spread the connections' first sends over one interval.
        next_intended: plan.interval.map(|i| Instant::now() + i.mul_f64((workload::mix(index) % 1000) as f64 / 1000.0)),
    };
    let name = plan.tls.as_ref().map(|t| t.server_name.clone());
    while Instant::now() < plan.stop_at {
        let opened = Instant::now();
        let (mut link, resumed) = match Link::open(plan.addr, tls.as_ref().zip(name.as_ref())).await {
            Ok(open) => open,
            Err(kind) => {
                // Counted, then tried again shortly (a server restarting).
                stats.borrow_mut().error(kind);
                time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if opened >= plan.measure_from && opened < plan.stop_at {
            let mut stats = stats.borrow_mut();
            stats.connections += 1;
            stats.resumed += u64::from(resumed);
        }
        state.buf.clear();
        match requests(&plan, &stats, &mut link, &mut rng, &mut state).await {
            // Counted; the connection is replaced and the load goes on.
            Err(kind) => stats.borrow_mut().error(kind),
            Ok(()) if !plan.new_connection => return,
            Ok(()) => {}
        }
    }
}

/// The wait before connecting again after a connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// What a connection loop keeps from one connection to the next.
struct State {
    buf: Vec<u8>,
    out: Vec<u8>,
    ops: Vec<(Op, bool)>,
    /// The ETag this connection last got for each key (`--conditional`).
    etags: std::collections::HashMap<u64, String>,
    next_intended: Option<Instant>,
}

/// Sends requests on `link` until the stop time (or after one, with
/// `new_connection`), checking and timing every response.
async fn requests(
    plan: &Plan,
    stats: &RefCell<Stats>,
    link: &mut Link,
    rng: &mut Rng,
    state: &mut State,
) -> Result<(), &'static str> {
    loop {
        let now = Instant::now();
        if now >= plan.stop_at {
            return Ok(());
        }
        let intended = match (&mut state.next_intended, plan.interval) {
            (Some(next), Some(interval)) => {
                let at = *next;
                *next += interval;
                if at > now {
                    time::sleep_until(at).await;
                }
                at
            }
            _ => now,
        };
        state.out.clear();
        state.ops.clear();
        let depth = if plan.new_connection { 1 } else { plan.pipeline };
        for _ in 0..depth {
            let op = choose(plan, rng);
            let etag = match op {
                Op::Get(key) if plan.conditional => state.etags.get(&key).map(String::as_str),
                _ => None,
            };
            request(plan, op, etag, &mut state.out);
            state.ops.push((op, etag.is_some()));
        }
        let sent_at = if plan.interval.is_some() { intended } else { Instant::now() };
        let (result, back) = link.send_all(std::mem::take(&mut state.out)).await;
        state.out = back;
        result?;
        for &(op, revalidated) in &state.ops {
            let Response { status, body, etag } = read_response(link, &mut state.buf, plan.conditional).await?;
            let done = Instant::now();
            let verified = verify(plan, op, status, &state.buf[body.clone()], revalidated);
            state.buf.drain(..body.end);
            let mut stats = stats.borrow_mut();
            if let Err(kind) = verified {
                stats.error(kind);
                continue;
            }
            match (op, etag) {
                (Op::Get(key), Some(etag)) if plan.conditional => {
                    state.etags.insert(key, etag);
                }
                // A write made a new version: revalidate against it.
                (Op::Put(key), _) => {
                    state.etags.remove(&key);
                }
                _ => {}
            }
            if sent_at >= plan.measure_from && done <= plan.stop_at {
                stats.requests += 1;
                stats.not_modified += u64::from(status == 304);
                stats.bytes += body.len() as u64;
                let _ = stats.histogram.record(done.duration_since(sent_at).as_micros().max(1) as u64);
            }
        }
        if plan.new_connection {
            return Ok(());
        }
    }
}
