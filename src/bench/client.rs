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
use std::time::{Duration, Instant};

use percore_io::{time, TcpStream};

use super::workload::{self, Kind, Sizes};

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
}

/// A shard's results.
pub(crate) struct Stats {
    pub(crate) histogram: hdrhistogram::Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            histogram: hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            requests: 0,
            bytes: 0,
            errors: BTreeMap::new(),
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

fn request(plan: &Plan, op: Op, out: &mut Vec<u8>) {
    let auth = plan.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    match op {
        Op::Ping => out.extend_from_slice(format!("GET /ping HTTP/1.1\r\nHost: {}\r\n\r\n", plan.host).as_bytes()),
        Op::Get(key) => out.extend_from_slice(
            format!("GET {} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", workload::path(key), plan.host).as_bytes(),
        ),
        Op::Put(key) => {
            let size = plan.sizes.of(key);
            out.extend_from_slice(
                format!(
                    "PUT {} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: {size}\r\n\r\n",
                    workload::path(key),
                    plan.host
                )
                .as_bytes(),
            );
            out.extend_from_slice(&workload::contents(key, size));
        }
    }
}

/// Reads one response from `stream` into `buf` (receiving through `chunk`,
/// a buffer kept across calls); returns its status and where its body is in
/// `buf`. The caller drains `buf` up to the body's end.
async fn read_response(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut Vec<u8>,
) -> Result<(u16, std::ops::Range<usize>), &'static str> {
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
                // One allocation for a large body, not a doubling series.
                buf.reserve((head_len + length).saturating_sub(buf.len()));
                while buf.len() < head_len + length {
                    fill(stream, buf, chunk).await?;
                }
                return Ok((status, head_len..head_len + length));
            }
            Ok(httparse::Status::Partial) => fill(stream, buf, chunk).await?,
            Err(_) => return Err("malformed response"),
        }
    }
}

/// Receives once into `chunk` (given to the kernel and taken back) and
/// appends it to `buf`.
async fn fill(stream: &TcpStream, buf: &mut Vec<u8>, chunk: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut owned = std::mem::take(chunk);
    owned.clear();
    if owned.capacity() == 0 {
        owned.reserve(RECV_CHUNK);
    }
    let result = match time::timeout(Duration::from_secs(30), stream.recv(owned)).await {
        Ok((Ok(n), back)) if n > 0 => {
            buf.extend_from_slice(&back);
            owned = back;
            Ok(())
        }
        Ok((Ok(_), back)) => {
            owned = back;
            Err("connection closed")
        }
        Ok((Err(_), back)) => {
            owned = back;
            Err("receive failed")
        }
        // The timed-out receive was cancelled with its buffer.
        Err(_) => return Err("response timed out"),
    };
    *chunk = owned;
    result
}

/// Bytes asked for per receive.
const RECV_CHUNK: usize = 256 * 1024;

fn verify(plan: &Plan, op: Op, status: u16, body: &[u8]) -> Result<(), String> {
    match op {
        Op::Ping if status == 200 && body == b"pong\n" => Ok(()),
        Op::Ping => Err(format!("ping: status {status}")),
        Op::Get(_) if status != 200 => Err(format!("get: status {status}")),
        Op::Get(key) => {
            let size = plan.sizes.of(key);
            if body.len() as u64 != size {
                Err("get: wrong length".into())
            } else if !workload::check(key, size, body) {
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

/// Runs one connection until the plan's stop time.
pub(crate) async fn run(plan: Rc<Plan>, stats: Rc<RefCell<Stats>>, index: u64) {
    let stream = match TcpStream::connect(plan.addr).await {
        Ok(stream) => stream,
        Err(_) => return stats.borrow_mut().error("connect failed"),
    };
    let _ = stream.set_nodelay(true);
    let mut rng = Rng(workload::mix(index + 1) | 1);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = Vec::new();
    let mut out = Vec::with_capacity(16 * 1024);
    let mut ops = Vec::with_capacity(plan.pipeline);
    // Open loop: spread the connections' first sends over one interval.
    let mut next_intended =
        plan.interval.map(|i| Instant::now() + i.mul_f64((workload::mix(index) % 1000) as f64 / 1000.0));
    loop {
        let now = Instant::now();
        if now >= plan.stop_at {
            return;
        }
        let intended = match (&mut next_intended, plan.interval) {
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
        out.clear();
        ops.clear();
        for _ in 0..plan.pipeline {
            let op = choose(&plan, &mut rng);
            request(&plan, op, &mut out);
            ops.push(op);
        }
        let sent_at = if plan.interval.is_some() { intended } else { Instant::now() };
        let (result, back) = stream.send_all(std::mem::take(&mut out)).await;
        out = back;
        if result.is_err() {
            return stats.borrow_mut().error("send failed");
        }
        for &op in &ops {
            match read_response(&stream, &mut buf, &mut chunk).await {
                Ok((status, body)) => {
                    let done = Instant::now();
                    let verified = verify(&plan, op, status, &buf[body.clone()]);
                    buf.drain(..body.end);
                    let mut stats = stats.borrow_mut();
                    if let Err(kind) = verified {
                        stats.error(kind);
                        continue;
                    }
                    if sent_at >= plan.measure_from && done <= plan.stop_at {
                        stats.requests += 1;
                        stats.bytes += body.len() as u64;
                        let _ = stats.histogram.record(done.duration_since(sent_at).as_micros().max(1) as u64);
                    }
                }
                Err(kind) => return stats.borrow_mut().error(kind),
            }
        }
    }
}
