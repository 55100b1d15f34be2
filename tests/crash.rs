//! Crash consistency: concurrent PUTs and DELETEs (random sizes, overlapping
//! paths, conditional writes) while the daemon is SIGKILLed at random
//! moments, many rounds, restarting it on the same data each time. After
//! every restart: each path holds exactly what some write that may
//! legitimately be last put there (byte for byte, never a partial object),
//! no acknowledged write is lost unless a later acknowledged write
//! superseded it, no temporary file survives start-up, and the listings
//! agree with GET.
//!
//! `PERCORE_CRASH_ROUNDS` sets the number of rounds (default 12, the CI
//! run; the long run in RELIABILITY.md uses 300).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{get, join_all, read_response, temp_files, Daemon};

pub(crate) const PATHS: [&str; 9] = ["a/k0", "a/k1", "a/k2", "b/k0", "b/k1", "b/k2", "c/d/k0", "c/d/k1", "top"];
pub(crate) const WRITERS: usize = 4;

/// The body of write `id`: its id first, then bytes derived from it.
pub(crate) fn body(id: u64, len: usize) -> Vec<u8> {
    let mut out = format!("write {id} len {len}\n").into_bytes();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// The write id a stored body claims, if its first line is well-formed.
fn claimed(stored: &[u8]) -> Option<(u64, usize)> {
    let line = stored.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("write"), Some(id), Some("len"), Some(len)) => Some((id.parse().ok()?, len.parse().ok()?)),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Put,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Ack {
    /// A 2xx: it happened, durably.
    Acked(Instant),
    /// 412 or 404: it did not change anything.
    Refused,
    /// No answer (the daemon died), or a 500 when the disk failed under it:
    /// it may or may not have happened.
    Unknown,
}

#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) id: u64,
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
    pub(crate) sent: Instant,
    pub(crate) result: Ack,
}

/// What a path held after the last check: `Some(id)` of the write whose
/// body it holds, or `None` if absent.
pub(crate) type State = BTreeMap<&'static str, Option<u64>>;

/// Sends one request on its own connection: the status and the ETag.
fn send(addr: std::net::SocketAddr, raw: &[u8]) -> Option<(u16, Option<String>)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(raw).ok()?;
    read_response(&mut stream, false).map(|r| (r.status, r.header("ETag").map(str::to_string)))
}

/// One writer: random operations on random paths until `stop`. With
/// `disk_may_fail`, a 500 (the write failed somewhere: it may or may not
/// have happened) and a 503 (refused once writes are fenced) are expected;
/// otherwise any status but 2xx, 404 and 412 fails the test.
#[allow(clippy::too_many_arguments, reason = "a test driver's knobs, each named at the call")]
pub(crate) fn writer(
    addr: std::net::SocketAddr,
    seed: u64,
    next_id: &AtomicU64,
    stop: &AtomicBool,
    etags: &Mutex<BTreeMap<&'static str, String>>,
    disk_may_fail: bool,
    paths: &'static [&'static str],
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while !stop.load(Ordering::SeqCst) {
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        let path = paths[(rand() % paths.len() as u64) as usize];
        let kind = if rand() % 10 < 7 { Kind::Put } else { Kind::Delete };
        let condition = match rand() % 10 {
            0 | 1 => "If-None-Match: *\r\n".to_string(),
            2 | 3 => match etags.lock().unwrap().get(path) {
                Some(etag) => format!("If-Match: {etag}\r\n"),
                None => String::new(),
            },
            _ => String::new(),
        };
        let raw = match kind {
            Kind::Put => {
                // Mostly small, sometimes large enough to take several writes.
                let len = if rand() % 8 == 0 { (rand() % (512 * 1024)) as usize } else { (rand() % 9000) as usize };
                let data = body(id, len);
                let mut raw = format!(
                    "PUT /files/{path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{condition}Connection: close\r\n\r\n",
                    data.len()
                )
                .into_bytes();
                raw.extend_from_slice(&data);
                raw
            }
            Kind::Delete => {
                format!("DELETE /files/{path} HTTP/1.1\r\nHost: t\r\n{condition}Connection: close\r\n\r\n").into_bytes()
            }
        };
        let sent = Instant::now();
        let result = match send(addr, &raw) {
            Some((200 | 201 | 204, etag)) => {
                // Later conditional writes aim at this version (or a stale one).
                if let Some(etag) = etag {
                    etags.lock().unwrap().insert(path, etag);
                }
                Ack::Acked(Instant::now())
            }
            Some((412 | 404, _)) => Ack::Refused,
            Some((500, _)) if disk_may_fail => Ack::Unknown,
            Some((503, _)) if disk_may_fail => Ack::Refused,
            Some((other, _)) => panic!("write {id} ({kind:?} {path}) got {other}"),
            None => Ack::Unknown,
        };
        ops.push(Op { id, path, kind, sent, result });
        if result == Ack::Unknown && stop.load(Ordering::SeqCst) {
            break;
        }
    }
    ops
}

/// Checks every path against the round's operations; returns the new
/// state and the number of acknowledged writes checked.
pub(crate) fn check(daemon: &Daemon, before: &State, started: Instant, ops: &[Op]) -> (State, usize) {
    let mut after = State::new();
    let mut checked = 0;
    for path in PATHS {
        let mine: Vec<&Op> = ops.iter().filter(|o| o.path == path).collect();
        checked += mine.iter().filter(|o| matches!(o.result, Ack::Acked(_))).count();
        let r = get(daemon, &format!("/files/{path}"));
        let observed = match r.status {
            200 => {
                let (id, len) = claimed(&r.body).unwrap_or_else(|| panic!("{path}: a body no write sent (partial?)"));
                assert_eq!(r.body, body(id, len), "{path}: write {id} is not whole");
                Some(id)
            }
            404 => None,
            other => panic!("{path}: GET answered {other}"),
        };
        // When did the candidate that produced `observed` finish (None: it
        // may still have been in flight when the daemon died)?
        let finished: Option<Instant> = match observed {
            Some(id) => match mine.iter().find(|o| o.id == id) {
                Some(op) => {
                    assert_eq!(op.kind, Kind::Put);
                    assert_ne!(op.result, Ack::Refused, "{path}: refused write {id} is visible");
                    match op.result {
                        Ack::Acked(at) => Some(at),
                        _ => None,
                    }
                }
                None => {
                    assert_eq!(before[path], Some(id), "{path}: holds write {id}, neither before nor this round");
                    Some(started)
                }
            },
            None => {
                // Absent: the last state before, or some delete of this round.
                let deletes = mine.iter().filter(|o| o.kind == Kind::Delete && o.result != Ack::Refused);
                let mut latest: Option<Option<Instant>> = (before[path].is_none()).then_some(Some(started));
                for d in deletes {
                    let at = match d.result {
                        Ack::Acked(at) => Some(at),
                        _ => None,
                    };
                    latest = Some(match (latest, at) {
                        (Some(None), _) | (_, None) => None,
                        (Some(Some(a)), Some(b)) => Some(a.max(b)),
                        (None, Some(b)) => Some(b),
                    });
                }
                latest.unwrap_or_else(|| panic!("{path}: absent, but nothing deleted it: {mine:?}"))
            }
        };
        // No acknowledged write that started after it finished may be lost.
        if let Some(finished) = finished {
            let lost =
                mine.iter().find(|o| matches!(o.result, Ack::Acked(_)) && o.sent > finished).map(|o| (o.id, o.kind));
            assert!(lost.is_none(), "{path}: acknowledged {lost:?} was lost; it holds {observed:?}");
        }
        after.insert(path, observed);
    }
    (after, checked)
}

/// Names in every listing against what GET found.
pub(crate) fn listings_agree(daemon: &Daemon, state: &State) {
    for dir in ["a", "b", "c/d"] {
        let r = get(daemon, &format!("/files/{dir}/"));
        let want: Vec<String> = state
            .iter()
            .filter(|(p, s)| s.is_some() && p.rsplit_once('/').map(|(d, _)| d) == Some(dir))
            .map(|(p, _)| p.rsplit_once('/').unwrap().1.to_string())
            .collect();
        if r.status == 404 {
            assert!(want.is_empty(), "{dir}/ is missing but holds {want:?}");
            continue;
        }
        let listing: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut names: Vec<String> = listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["is_dir"] == false)
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(names, want, "listing of {dir}/");
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let _heavy = crate::util::heavy();
    let rounds: usize = std::env::var("PERCORE_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let mut data = tempfile::tempdir().unwrap();
    let mut state: State = PATHS.iter().map(|p| (*p, None)).collect();
    let next_id = Arc::new(AtomicU64::new(1));
    let (mut writes, mut checked, mut unknown) = (0usize, 0usize, 0usize);
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..rounds {
        let daemon = Daemon::start_in(data, &["--cores", "2"]);
        assert!(temp_files(daemon.dir()).is_empty(), "round {round}: temporary files survived start-up");
        let started = Instant::now();
        let (after, _) = check(&daemon, &state, started, &[]);
        assert_eq!(after, state, "round {round}: the state changed across the restart");
        listings_agree(&daemon, &state);
        let stop = Arc::new(AtomicBool::new(false));
        let etags = Arc::new(Mutex::new(BTreeMap::new()));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (addr, next_id, stop, etags) = (daemon.addr, next_id.clone(), stop.clone(), etags.clone());
                let seed = (round * WRITERS + w) as u64 * 0x9E37_79B9 + 7;
                std::thread::spawn(move || writer(addr, seed, &next_id, &stop, &etags, false, &PATHS))
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(50 + rng % 400));
        stop.store(true, Ordering::SeqCst);
        data = daemon.kill9().expect("owned data directory");
        let ops: Vec<Op> = join_all(handles).into_iter().flatten().collect();
        writes += ops.len();
        unknown += ops.iter().filter(|o| o.result == Ack::Unknown).count();
        let daemon = Daemon::start_in(data, &["--cores", "2"]);
        assert!(temp_files(daemon.dir()).is_empty(), "round {round}: temporary files survived start-up");
        let (after, n) = check(&daemon, &state, started, &ops);
        checked += n;
        listings_agree(&daemon, &after);
        state = after;
        data = daemon.kill9().expect("owned data directory");
    }
    println!(
        "crash: {rounds} rounds, {writes} writes sent, {checked} acknowledged writes checked, {unknown} cut by the kill"
    );
    assert!(checked > rounds, "the rounds did write something");
}
