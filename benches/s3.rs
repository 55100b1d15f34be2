//! The S3 API against percore's own `/files/` path: the same daemon (one
//! shard, pinned to CPU 0) serving both, `percore bench` on CPU 1 sending
//! the same objects either as plain requests or as S3 requests signed as
//! boto3 signs them over HTTP (SigV4 header, the payload's SHA-256 signed,
//! a CRC32 sent with each PUT). Cells: GET 4 KiB, PUT 4 KiB, GET 1 MiB,
//! PUT 1 MiB;
//! the figure is the server's CPU time per request (every thread of the
//! process, the kernel's file workers included), and S3 / plain.
//!
//! A fresh daemon and data directory every round; within a round every
//! cell runs both ways, the order alternating by round; medians reported.
//!
//! Each cell is measured twice, both ways: one request at a time on each
//! connection, and [`PIPELINED`] at a time. With one request at a time the
//! one-core client is the limit of the GET cells both ways (it signs every
//! S3 request, so the S3 run then offers the server fewer requests per
//! wake-up, and each costs the server more, whatever the S3 path costs);
//! pipelined, it keeps the server busy both ways, and the ratio is the S3
//! path's own. A side whose client ran its core at [`CLIENT_BOUND`] or more
//! is marked `client-bound`: that row measures the client.
//! (Both ways held to one lower rate was tried too: every request then
//! pays for a wake-up and a PUT for a flush of its own, costs both ways
//! share, so the ratio falls towards 1 for a reason that is not S3's.)
//!
//! The data directory goes under `PERCORE_BENCH_DIR` if set (an XFS or
//! journaled ext4 mount, where uploads are made durable as deployed),
//! else the system's temporary directory. Results go to `target/s3.json`.
//!
//! `cargo bench -p percore-benches --bench s3 [-- ROUNDS SECONDS [CELL...]]`
//! (default 3 rounds of 3 s, every cell; a CELL names one, e.g. `"put 4KiB"`).
//! `PERCORE_BIN=PATH` measures that binary instead of building this tree's
//! (to compare two versions, run it once for each, interleaved).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore_benches::{cpu_time, median};

/// Requests in flight per connection in the pipelined rows.
const PIPELINED: usize = 4;
/// A client core this busy was the limit of its run.
const CLIENT_BOUND: f64 = 0.9;

const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";
const KEY: &str = "AKIDBENCH:bench/secret";

struct Cell {
    name: &'static str,
    args: &'static [&'static str],
    connections: usize,
    /// Run (untimed, both ways) before the cell.
    before: &'static [&'static str],
}

const CELLS: &[Cell] = &[
    Cell {
        name: "get 4KiB",
        args: &["--workload", "get", "--keys", "1000"],
        connections: 64,
        before: &["--populate", "--workload", "get", "--keys", "1000"],
    },
    Cell { name: "put 4KiB", args: &["--workload", "put", "--keys", "1000"], connections: 64, before: &[] },
    // Keys 0-15 become 1 MiB here: the 4 KiB cells come first.
    Cell {
        name: "get 1MiB",
        args: &["--workload", "get", "--keys", "16", "--size", "1MiB"],
        connections: 8,
        before: &["--populate", "--workload", "get", "--keys", "16", "--size", "1MiB"],
    },
    // Where a large upload's hashing shows: MD5 and SHA-256 over every byte.
    Cell {
        name: "put 1MiB",
        args: &["--workload", "put", "--keys", "16", "--size", "1MiB"],
        connections: 8,
        before: &[],
    },
];

struct Daemon {
    child: Child,
    plain: u16,
    s3: u16,
    _data: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(percore: &Path) -> Daemon {
    let data = match std::env::var_os("PERCORE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    // The bucket `percore bench --s3` uses (its --populate makes it too;
    // a PUT cell run alone needs it).
    std::fs::create_dir_all(data.path().join("d/bench")).unwrap();
    let credentials = data.path().join("credentials");
    std::fs::write(&credentials, KEY.replace(':', " ")).unwrap();
    let (plain, s3) = (free_port(), free_port());
    let child = Command::new("taskset")
        .args(["-c", SERVER_CPU])
        .arg(percore)
        .args(["serve", "--listen", &format!("127.0.0.1:{plain}"), "--s3-listen", &format!("127.0.0.1:{s3}")])
        .arg("--s3-credentials")
        .arg(&credentials)
        .args(["--cores", "1", "--log-level", "warn", "--connections-max-per-shard", "100000"])
        .arg("--data-dir")
        .arg(data.path().join("d"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start percore");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", s3)).is_err() {
        assert!(Instant::now() < deadline, "percore did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon { child, plain, s3, _data: data }
}

fn bench(
    percore: &Path,
    daemon: &Daemon,
    s3: bool,
    args: &[&str],
    connections: usize,
    seconds: f64,
    pipeline: usize,
) -> serde_json::Value {
    let port = if s3 { daemon.s3 } else { daemon.plain };
    let mut command = Command::new("taskset");
    command
        .args(["-c", CLIENT_CPU])
        .arg(percore)
        .args(["bench", &format!("http://127.0.0.1:{port}"), "--cores", "1", "--json", "--warmup", "0.5"])
        .args(["--connections", &connections.to_string(), "--duration", &seconds.to_string()])
        .args(args);
    if s3 {
        command.args(["--s3", KEY]);
    }
    command.args(["--pipeline", &pipeline.to_string()]);
    let out = command.output().unwrap();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// req/s, server µs per request, and the client's core load.
type Measured = (f64, f64, f64);

/// Runs one side of a cell and measures the daemon's CPU time per request.
fn measure(percore: &Path, daemon: &Daemon, s3: bool, cell: &Cell, seconds: f64, pipeline: usize) -> Measured {
    let pid = daemon.child.id();
    let before = cpu_time(pid);
    let json = bench(percore, daemon, s3, cell.args, cell.connections, seconds, pipeline);
    let used = cpu_time(pid) - before;
    let requests = json["requests"].as_f64().unwrap();
    let errors = json["errors"].as_object().map_or(0, |e| e.len());
    assert_eq!(errors, 0, "{} ({}): errors {}", cell.name, if s3 { "s3" } else { "plain" }, json["errors"]);
    // The CPU time covers the warm-up too: scaled to the measured part.
    let measured = seconds / (seconds + 0.5);
    let micros = used.as_secs_f64() * measured * 1e6 / requests.max(1.0);
    let load = json["client_core_load"].as_array().and_then(|l| l.first()).and_then(|l| l.as_f64()).unwrap_or(0.0);
    (json["requests_per_second"].as_f64().unwrap(), micros, load)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let numbers: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rounds = numbers.first().map_or(3, |n| *n as usize);
    let seconds = numbers.get(1).copied().unwrap_or(3.0);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let only: Vec<&String> = args.iter().filter(|a| a.parse::<f64>().is_err()).collect();
    let cells: Vec<usize> =
        (0..CELLS.len()).filter(|&c| only.is_empty() || only.iter().any(|o| *o == CELLS[c].name)).collect();
    assert!(!cells.is_empty(), "no cell named {only:?}; cells: {:?}", CELLS.iter().map(|c| c.name).collect::<Vec<_>>());
    let percore: PathBuf = match std::env::var_os("PERCORE_BIN") {
        Some(bin) => bin.into(),
        None => {
            let status = Command::new("cargo")
                .args(["build", "--release", "-p", "percore"])
                .current_dir(&root)
                .status()
                .unwrap();
            assert!(status.success());
            root.join("target/release/percore")
        }
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let place = std::env::var("PERCORE_BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    println!(
        "S3 vs /files/: one shard on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}, kernel {}, data under {place}, \
         {rounds} rounds of {seconds} s",
        kernel.trim()
    );
    // (cell, S3?, requests in flight per connection) -> one measurement per round.
    let mut results: BTreeMap<(usize, bool, usize), Vec<Measured>> = BTreeMap::new();
    for round in 0..rounds {
        let daemon = start(&percore);
        for &c in &cells {
            let cell = &CELLS[c];
            if !cell.before.is_empty() {
                // The objects the cell reads, both ways, written through the daemon.
                for s3 in [false, true] {
                    bench(&percore, &daemon, s3, cell.before, 1, 0.2, 1);
                }
            }
            let order = if round % 2 == 0 { [false, true] } else { [true, false] };
            for in_flight in [1, PIPELINED] {
                for s3 in order {
                    let m = measure(&percore, &daemon, s3, cell, seconds, in_flight);
                    results.entry((c, s3, in_flight)).or_default().push(m);
                }
            }
        }
    }
    println!(
        "{:<10} {:<11} {:>11} {:>12} {:>11} {:>12} {:>8}  client-bound",
        "cell", "in flight", "plain req/s", "plain us/req", "S3 req/s", "S3 us/req", "S3/plain"
    );
    let mut json = serde_json::Map::new();
    for &c in &cells {
        let cell = &CELLS[c];
        let mut rows = serde_json::Map::new();
        for in_flight in [1, PIPELINED] {
            let med = |s3: bool, field: fn(&Measured) -> f64| {
                let mut values: Vec<f64> = results[&(c, s3, in_flight)].iter().map(field).collect();
                median(&mut values)
            };
            let (plain_rps, plain_us, s3_rps, s3_us) =
                (med(false, |m| m.0), med(false, |m| m.1), med(true, |m| m.0), med(true, |m| m.1));
            let bound: Vec<&str> = [(false, "plain"), (true, "S3")]
                .into_iter()
                .filter(|&(s3, _)| med(s3, |m| m.2) >= CLIENT_BOUND)
                .map(|(_, name)| name)
                .collect();
            println!(
                "{:<10} {:<11} {:>11.0} {:>12.2} {:>11.0} {:>12.2} {:>8.2}  {}",
                cell.name,
                format!("{in_flight} per conn"),
                plain_rps,
                plain_us,
                s3_rps,
                s3_us,
                s3_us / plain_us,
                if bound.is_empty() { "-".to_string() } else { bound.join(", ") }
            );
            rows.insert(
                if in_flight == 1 { "one_at_a_time" } else { "pipelined" }.to_string(),
                serde_json::json!({"in_flight_per_connection": in_flight,
                                   "plain": {"rps": plain_rps, "us_per_request": plain_us,
                                             "client_core_load": med(false, |m| m.2)},
                                   "s3": {"rps": s3_rps, "us_per_request": s3_us,
                                          "client_core_load": med(true, |m| m.2)},
                                   "ratio": s3_us / plain_us}),
            );
        }
        json.insert(cell.name.to_string(), serde_json::Value::Object(rows));
    }
    let out = root.join("target/s3.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("written to {}", out.display());
}
