//! The daemon comparison: percore against HTTP servers on monoio,
//! tokio-uring, tokio (current-thread and multi-thread) and nginx (sendfile,
//! open_file_cache, PUT through WebDAV). The client, `percore bench`, is
//! pinned to the top `--client-cores` CPUs (default: half, at least one);
//! each server gets 1, 2, … of the remaining CPUs from CPU 0 up, the same
//! CPUs for every server; rounds are interleaved (every server for one cell,
//! then the next cell, then the next round). Prints a table of req/s, p99,
//! server CPU per request and peak RSS with ratios to percore, and writes the
//! rows as JSON to `target/compare.json` and a plot (req/s against server
//! cores; latency percentiles) to `target/compare.svg`.
//!
//! Each cell's data directory is on a fresh ext4 file system (a loop image,
//! when run as root), so that file-system aging does not favour whichever
//! server runs first. Then each server, on one core, holds `--idle N` (default 10,000) idle
//! keep-alive connections and its RSS growth per connection is reported.
//!
//! `cargo bench -p percore-benches --bench compare [-- --quick | ROUNDS SECONDS] [--client-cores K] [--idle N] [--only NAME]`
//! (`--only put`: only the workloads whose name contains `put`, no idle run).
//! (`--quick`: one round of 2 s per cell). Installs nginx from Debian if
//! it is missing.
//!
//! On a host without a toolchain (a many-core machine), the bench's own
//! binary runs with prebuilt servers: `compare --percore BIN --http-peer BIN
//! --nginx BIN --server-cores 1,2,4,8 --client-cpus 8-15 --connections 256
//! --out DIR` (`benches/many-cores/` packs and runs it). Server CPUs are the
//! allowed CPUs outside the client's, from the lowest up. For percore each
//! cell also reports how its requests were shared by its shards (from
//! `/metrics`: the busiest shard's share over the mean), and every cell
//! whose client core was saturated while the server was not is flagged
//! client-bound. `--servers percore,monoio,nginx` runs a subset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore_benches::{cpu_time, median, peak_rss_kib, rss_kib};

mod plot;

const SERVERS: [&str; 6] = ["percore", "monoio", "tokio-uring", "tokio-ct", "tokio-mt", "nginx"];

struct Workload {
    name: &'static str,
    args: &'static [&'static str],
    populate: Option<&'static [&'static str]>,
}

const WORKLOADS: [Workload; 5] = [
    Workload { name: "ping", args: &["--workload", "ping"], populate: None },
    Workload {
        name: "get 4KiB",
        args: &["--workload", "get", "--keys", "1000", "--size", "4KiB"],
        populate: Some(&["--keys", "1000", "--size", "4KiB"]),
    },
    Workload {
        name: "get 1MiB",
        args: &["--workload", "get", "--keys", "64", "--size", "1MiB"],
        populate: Some(&["--keys", "64", "--size", "1MiB"]),
    },
    Workload { name: "put 4KiB", args: &["--workload", "put", "--keys", "1000", "--size", "4KiB"], populate: None },
    Workload {
        name: "mixed 90/10",
        args: &["--workload", "mixed", "--read-percent", "90", "--keys", "1000", "--size", "4KiB"],
        populate: Some(&["--keys", "1000", "--size", "4KiB"]),
    },
];

/// Where the binaries and outputs are, and what the client looks like:
/// set once from the command line.
struct Setup {
    percore: PathBuf,
    http_peer: PathBuf,
    nginx: PathBuf,
    /// Every server cell's CPUs are the first `n` of these.
    server_cpus: Vec<usize>,
    client_cpus: String,
    connections: usize,
    /// Where fresh file systems and data directories are made.
    tmp: PathBuf,
}

/// The daemon's binary as `cargo build --release` leaves it at the
/// workspace root (this bench builds it first unless `--percore` is given).
fn built_percore() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/percore")
}

/// Where temporary files go: `--tmp`, else cargo's target tmp directory
/// when it exists (this machine), else the system's.
fn default_tmp() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if target.is_dir() {
        target
    } else {
        std::env::temp_dir()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ensure_nginx(nginx: &Path) -> bool {
    if Command::new(nginx).arg("-v").output().is_ok() {
        return true;
    }
    if nginx != Path::new("nginx") {
        println!("{} does not run: nginx left out", nginx.display());
        return false;
    }
    println!("nginx not found: installing it from Debian");
    Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx"])
        .status()
        .is_ok_and(|s| s.success())
}

struct Server {
    child: Child,
    port: u16,
}

/// The CPUs of a server given `n` of them, as a list for taskset.
fn server_cpus(setup: &Setup, n: usize) -> String {
    cpu_text(&setup.server_cpus[..n])
}

/// CPUs as a list that `taskset -c` and percore's `--cores` both read as
/// CPUs (`3-3`, not `3`, which `--cores` reads as a count).
fn cpu_text(cpus: &[usize]) -> String {
    match cpus {
        [one] => format!("{one}-{one}"),
        _ => percore_cores::format_list(cpus),
    }
}

fn start(setup: &Setup, server: &str, data: &Path, cores: usize) -> Server {
    let port = free_port();
    let cpus = server_cpus(setup, cores);
    let child = match server {
        "percore" => Command::new("taskset")
            .args(["-c", &cpus])
            .arg(&setup.percore)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--cores", &cpus, "--log-level", "warn"])
            .args(["--connections-max-per-shard", "100000", "--data-dir"])
            .arg(data)
            .stdout(Stdio::null())
            .spawn(),
        "nginx" => {
            let conf = data.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    // One process when one core (its CPU and memory are then
                    // the process's own); a master and a worker per core otherwise.
                    "daemon off; master_process {master}; user root; worker_processes {cores}; worker_cpu_affinity auto;\n\
                     pid {d}/nginx.pid; error_log stderr error;\n\
                     events {{ worker_connections 20000; }}\n\
                     http {{ access_log off; {temps} sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 10000000;\n\
                       open_file_cache max=10000 inactive=60s; open_file_cache_valid 60s;\n\
                       client_body_temp_path {d}/.nginx-body; client_max_body_size 2g; client_body_buffer_size 64k;\n\
                       server {{ listen 127.0.0.1:{port}; default_type application/octet-stream;\n\
                         location = /ping {{ return 200 \"pong\\n\"; }}\n\
                         location /files/ {{ alias {d}/files/; dav_methods PUT DELETE; create_full_put_path on; }} }} }}\n",
                    d = data.display(),
                    master = if cores > 1 { "on" } else { "off" },
                    // Temporary paths inside the data directory, not the
                    // build's defaults (absent where nginx was only unpacked).
                    temps = ["proxy", "fastcgi", "uwsgi", "scgi"]
                        .map(|t| format!("{t}_temp_path {}/.nginx-{t};", data.display()))
                        .join(" "),
                ),
            )
            .unwrap();
            Command::new("taskset")
                .args(["-c", &cpus])
                .arg(&setup.nginx)
                .args(["-e", "stderr", "-p"])
                .arg(data)
                .arg("-c")
                .arg(&conf)
                .stderr(Stdio::null())
                .spawn()
        }
        peer => Command::new(&setup.http_peer)
            .args([peer, &port.to_string(), &cpus])
            .arg(data.join("files"))
            .stdout(Stdio::null())
            .spawn(),
    }
    .unwrap_or_else(|e| panic!("cannot start {server}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{server} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, port }
}

fn bench(setup: &Setup, port: u16, args: &[&str], seconds: f64) -> serde_json::Value {
    let client_cpus = setup.client_cpus.as_str();
    let out = Command::new("taskset")
        .args(["-c", client_cpus])
        .arg(&setup.percore)
        .args(["bench", &format!("http://127.0.0.1:{port}"), "--cores", client_cpus, "--json", "--warmup", "0.5"])
        .args(["--connections", &setup.connections.to_string()])
        .args(["--duration", &seconds.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[derive(Clone, Debug, serde::Serialize)]
struct Cell {
    server: String,
    workload: String,
    server_cores: usize,
    requests_per_second: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    server_us_per_request: f64,
    server_load: f64,
    client_load: f64,
    peak_rss_mib: f64,
    errors: u64,
    /// percore only: each shard's share of the cell's requests.
    shard_shares: Vec<f64>,
    /// percore only: each shard thread's CPU time over the cell's wall time.
    shard_busy: Vec<f64>,
}

/// The busiest shard's share of the requests over the mean share (1.0:
/// perfectly even); `None` for servers that do not say.
fn busiest_over_mean(shares: &[f64]) -> Option<f64> {
    let total: f64 = shares.iter().sum();
    (shares.len() > 1 && total > 0.0).then(|| shares.iter().copied().fold(0.0, f64::max) * shares.len() as f64 / total)
}

/// `GET path` on a new connection; the body, or empty on any failure.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut text).is_err() {
        return String::new();
    }
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// Per shard, from percore's `/metrics`: requests answered so far and the
/// shard thread's CPU seconds.
fn per_shard_counts(port: u16) -> (Vec<f64>, Vec<f64>) {
    let (mut requests, mut cpu): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for line in http_get(port, "/metrics").lines() {
        let into = if line.starts_with("percore_requests_total{") {
            &mut requests
        } else if line.starts_with("percore_shard_cpu_seconds_total{") {
            &mut cpu
        } else {
            continue;
        };
        let shard = line.split("shard=\"").nth(1).and_then(|r| r.split('"').next()).and_then(|s| s.parse().ok());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(shard), Some(value)) = (shard, value) {
            let shard: usize = shard;
            if into.len() <= shard {
                into.resize(shard + 1, 0.0);
            }
            into[shard] += value;
        }
    }
    (requests, cpu)
}

/// The process and its descendants (nginx's workers), from /proc.
fn process_tree(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")) {
            tree.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    tree
}

fn tree_cpu_time(pids: &[u32]) -> Duration {
    pids.iter().map(|&p| cpu_time(p)).sum()
}

/// A fresh ext4 file system in a sparse image, mounted for one cell, so that
/// no server inherits a file system aged by the cells before it (on an aged
/// ext4, inode allocation slows as freed inodes pile up: the same PUT run
/// fell from 5.4k to 1.6k req/s over three runs on one file system, and
/// stayed at 5.1k on fresh ones). Needs root and mkfs.ext4; without them
/// the cell runs in the target directory, with a warning.
struct FreshFs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl FreshFs {
    fn new(tmp: &Path) -> Option<FreshFs> {
        let dir = tempfile::tempdir_in(tmp).ok()?;
        let (image, mnt) = (dir.path().join("fs.img"), dir.path().join("mnt"));
        std::fs::create_dir(&mnt).ok()?;
        std::fs::File::create(&image).ok()?.set_len(4 << 30).ok()?;
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if !ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            || !ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mnt))
        {
            return None;
        }
        Some(FreshFs { mnt, _dir: dir })
    }
}

impl Drop for FreshFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn measure(setup: &Setup, server: &str, workload: &Workload, cores: usize, seconds: f64) -> Cell {
    let fresh = FreshFs::new(&setup.tmp);
    if fresh.is_none() {
        println!("  (no fresh file system: not root, or no mkfs.ext4; this cell runs in the target directory)");
    }
    let data = match &fresh {
        Some(fs) => tempfile::tempdir_in(&fs.mnt).unwrap(),
        None => tempfile::tempdir_in(&setup.tmp).unwrap(),
    };
    std::fs::create_dir_all(data.path().join("files")).unwrap();
    // percore serves its data directory at /files/; the others serve a
    // `files` directory inside it at /files/: the same URLs either way.
    let mut s = start(setup, server, data.path(), cores);
    if let Some(populate) = workload.populate {
        let mut args = vec!["--workload", "ping", "--populate"];
        args.extend_from_slice(populate);
        bench(setup, s.port, &args, 0.1);
    }
    let pids = process_tree(s.child.id());
    let (shards0, cpu0_by_shard) = if server == "percore" { per_shard_counts(s.port) } else { Default::default() };
    let (cpu0, wall0) = (tree_cpu_time(&pids), Instant::now());
    let result = bench(setup, s.port, workload.args, seconds);
    let (cpu1, wall) = (tree_cpu_time(&pids), wall0.elapsed());
    let (shard_shares, shard_busy): (Vec<f64>, Vec<f64>) = if server == "percore" {
        let (after, cpu1_by_shard) = per_shard_counts(s.port);
        let done: Vec<f64> =
            after.iter().enumerate().map(|(i, n)| n - shards0.get(i).copied().unwrap_or(0.0)).collect();
        let total: f64 = done.iter().sum::<f64>().max(1.0);
        let busy = cpu1_by_shard
            .iter()
            .enumerate()
            .map(|(i, c)| ((c - cpu0_by_shard.get(i).copied().unwrap_or(0.0)) / wall.as_secs_f64()).clamp(0.0, 1.0))
            .collect();
        (done.iter().map(|n| n / total).collect(), busy)
    } else {
        Default::default()
    };
    // Summed peaks: an upper bound when there are several processes.
    let rss = pids.iter().map(|&p| peak_rss_kib(p)).sum::<u64>() as f64 / 1024.0;
    let _ = s.child.kill();
    let _ = s.child.wait();
    let requests = result["requests"].as_f64().unwrap().max(1.0);
    let loads = result["client_core_load"].as_array().unwrap();
    Cell {
        server: server.to_string(),
        workload: workload.name.to_string(),
        server_cores: cores,
        requests_per_second: result["requests_per_second"].as_f64().unwrap(),
        p50_us: result["latency_us"]["p50"].as_f64().unwrap(),
        p90_us: result["latency_us"]["p90"].as_f64().unwrap(),
        p99_us: result["latency_us"]["p99"].as_f64().unwrap(),
        p999_us: result["latency_us"]["p999"].as_f64().unwrap(),
        // CPU over the whole bench run (warm-up included) per request counted.
        server_us_per_request: (cpu1 - cpu0).as_secs_f64() * 1e6 / (requests * (seconds + 0.5) / seconds),
        // Busy fraction of the server's CPUs.
        server_load: (cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64() / cores as f64,
        client_load: loads.iter().filter_map(|l| l.as_f64()).fold(0.0, f64::max),
        peak_rss_mib: rss,
        errors: result["errors"].as_object().unwrap().values().filter_map(|v| v.as_u64()).sum(),
        shard_shares,
        shard_busy,
    }
}

/// Opens `count` keep-alive connections to the server, each served one
/// `/ping`, and holds them; returns the server's RSS growth per connection
/// in bytes (RSS with them open minus RSS after a warm-up, over the count).
fn idle_memory(setup: &Setup, server: &str, count: usize, client_cpu: usize) -> (f64, f64, f64) {
    use std::io::{Read, Write};
    let data = tempfile::tempdir_in(&setup.tmp).unwrap();
    std::fs::create_dir_all(data.path().join("files")).unwrap();
    let mut s = start(setup, server, data.path(), 1);
    let pids = process_tree(s.child.id());
    let rss = || pids.iter().map(|&p| rss_kib(p)).sum::<u64>() as f64;
    let ping = |stream: &mut std::net::TcpStream| -> std::io::Result<()> {
        stream.write_all(b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        // Every server answers /ping with a short body: the response is whole
        // once the head has ended and the body's bytes have arrived.
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return Ok(());
                }
            }
        }
    };
    let port = s.port;
    // On a thread of its own, pinned to a client CPU.
    let (before, after) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                percore_benches::pin(client_cpu);
                let connect = || std::net::TcpStream::connect(("127.0.0.1", port));
                // Warm-up: the server's per-connection machinery touched once.
                for _ in 0..200 {
                    let mut c = connect().unwrap();
                    ping(&mut c).unwrap();
                }
                std::thread::sleep(Duration::from_millis(300));
                let before = rss();
                let mut held = Vec::with_capacity(count);
                for i in 0..count {
                    let mut c = connect().unwrap_or_else(|e| panic!("{server}: connection {i}: {e}"));
                    ping(&mut c).unwrap_or_else(|e| panic!("{server}: connection {i}: {e}"));
                    held.push(c);
                }
                std::thread::sleep(Duration::from_millis(500));
                let after = rss();
                // Still served: the last connection answers again.
                ping(held.last_mut().unwrap()).unwrap_or_else(|e| panic!("{server}: an idle connection was lost: {e}"));
                drop(held);
                (before, after)
            })
            .join()
            .unwrap()
    });
    let _ = s.child.kill();
    let _ = s.child.wait();
    (before / 1024.0, after / 1024.0, (after - before) * 1024.0 / count as f64)
}

/// The command line (`cargo bench` adds `--bench`, accepted and ignored).
#[derive(clap::Parser, Debug)]
struct Args {
    /// Interleaved rounds per cell.
    #[arg(default_value_t = 3)]
    rounds: usize,
    /// Seconds per cell.
    #[arg(default_value_t = 5.0)]
    seconds: f64,
    /// One round of 2 s per cell.
    #[arg(long)]
    quick: bool,
    /// Client CPUs: the top K of the allowed ones (default half).
    #[arg(long)]
    client_cores: Option<usize>,
    /// Client CPUs as a list (`8-15`); overrides --client-cores.
    #[arg(long)]
    client_cpus: Option<String>,
    /// Server core counts of the cells (`1,2,4,8`; default 1..=all left).
    #[arg(long, value_delimiter = ',')]
    server_cores: Vec<usize>,
    /// Only the workloads whose name contains this (no idle run then).
    #[arg(long)]
    only: Option<String>,
    /// Only these servers (percore always runs).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Idle keep-alive connections held for the memory cell.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Connections of the client.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// A prebuilt percore (else `cargo build --release` here).
    #[arg(long)]
    percore: Option<PathBuf>,
    /// A prebuilt http-peer.
    #[arg(long)]
    http_peer: Option<PathBuf>,
    /// The nginx binary (else `nginx` on PATH, installed from Debian if missing).
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// Where compare.json and compare.svg go (default target/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where fresh file systems and data directories are made.
    #[arg(long)]
    tmp: Option<PathBuf>,
    #[arg(long, hide = true)]
    bench: bool,
}

/// A CPU list (`8-15`, `0,2-5`).
fn cpu_list(text: &str) -> Vec<usize> {
    match text.parse::<percore_cores::CoreSet>() {
        Ok(percore_cores::CoreSet::List(cpus)) => cpus,
        // A single number is one CPU here, not a count.
        Ok(percore_cores::CoreSet::Count(cpu)) => vec![cpu],
        _ => panic!("`{text}` is not a CPU list (e.g. 8-15 or 0,2-5)"),
    }
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let cpus = percore_cores::allowed_cpus();
    // `--only put`: just the workloads whose name contains it.
    let only = args.only.clone();
    let selected = |w: &Workload| only.as_deref().is_none_or(|o| w.name.contains(o));
    let skip_idle = only.is_some();
    // The client: `--client-cpus LIST`, else the top `--client-cores K`
    // (default half) of the allowed CPUs.
    let client: Vec<usize> = match &args.client_cpus {
        Some(list) => cpu_list(list),
        None => {
            let k = args.client_cores.unwrap_or((cpus.len() / 2).max(1));
            assert!(k < cpus.len(), "--client-cores leaves no CPU for the server");
            cpus[cpus.len() - k..].to_vec()
        }
    };
    assert!(client.iter().all(|c| cpus.contains(c)), "--client-cpus {client:?} outside the allowed CPUs {cpus:?}");
    let server_cpus: Vec<usize> = cpus.iter().copied().filter(|c| !client.contains(c)).collect();
    assert!(!server_cpus.is_empty(), "the client takes every CPU: none left for the servers");
    // `--server-cores 1,2,4,8`: the cells' core counts (default 1..=all).
    let core_counts: Vec<usize> =
        if args.server_cores.is_empty() { (1..=server_cpus.len()).collect() } else { args.server_cores.clone() };
    let most = core_counts.iter().copied().max().unwrap_or(1);
    assert!(
        most <= server_cpus.len(),
        "{most} server cores asked for, {} CPUs left beside the client",
        server_cpus.len()
    );
    let (rounds, seconds) = if args.quick { (1, 2.0) } else { (args.rounds, args.seconds) };
    let percore = match args.percore {
        Some(bin) => bin,
        None => {
            let status = Command::new("cargo")
                .args(["build", "-q", "--release", "-p", "percore"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status();
            assert!(status.is_ok_and(|s| s.success()), "cannot build percore");
            built_percore()
        }
    };
    let setup = Setup {
        percore,
        http_peer: args.http_peer.unwrap_or_else(|| env!("CARGO_BIN_EXE_http-peer").into()),
        nginx: args.nginx.unwrap_or_else(|| "nginx".into()),
        server_cpus,
        client_cpus: cpu_text(&client),
        connections: args.connections,
        tmp: args.tmp.unwrap_or_else(default_tmp),
    };
    let out_dir = args.out.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&out_dir).expect("cannot create --out");
    // `--servers percore,monoio,nginx`: a subset (percore always first).
    let wanted: Option<&Vec<String>> = (!args.servers.is_empty()).then_some(&args.servers);
    let servers: Vec<&str> = SERVERS
        .iter()
        .copied()
        .filter(|s| *s == "percore" || wanted.is_none_or(|w| w.iter().any(|x| x == s)))
        .filter(|s| *s != "nginx" || ensure_nginx(&setup.nginx))
        .collect();
    println!(
        "compare: servers on CPUs {} (the first n for n in {core_counts:?}), percore bench on CPUs {} ({} connections), {rounds} round(s) x {seconds} s",
        percore_cores::format_list(&setup.server_cpus),
        setup.client_cpus,
        setup.connections
    );
    let mut cells: BTreeMap<(usize, usize, usize), Vec<Cell>> = BTreeMap::new();
    for round in 0..rounds {
        for &cores in &core_counts {
            for (w, workload) in WORKLOADS.iter().enumerate().filter(|(_, w)| selected(w)) {
                for (i, server) in servers.iter().enumerate() {
                    let cell = measure(&setup, server, workload, cores, seconds);
                    let shares = match busiest_over_mean(&cell.shard_shares) {
                        Some(b) => format!(" busiest shard {b:.2}x mean"),
                        None => String::new(),
                    };
                    let busy = cell.shard_busy.iter().map(|b| format!("{b:.2}")).collect::<Vec<_>>().join(" ");
                    let shares = if busy.is_empty() { shares } else { format!("{shares} shards busy {busy}") };
                    println!(
                        "  round {round} cores {cores} {:<12} {:<12} {:>9.0} req/s p99 {:>6.0} us server {:>6.2} us/req load {:.2} client {:.2} rss {:>6.1} MiB errors {}{shares}",
                        cell.workload, cell.server, cell.requests_per_second, cell.p99_us, cell.server_us_per_request, cell.server_load, cell.client_load, cell.peak_rss_mib, cell.errors
                    );
                    cells.entry((cores, w, i)).or_default().push(cell);
                }
            }
        }
    }
    let med = |v: &[Cell], f: fn(&Cell) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    let mut rows = Vec::new();
    println!("\n| server cores | workload | server | req/s | p99 µs | server CPU µs/req | server load | client load | peak RSS MiB | percore ÷ server, req/s | server ÷ percore, CPU/req | busiest shard ÷ mean | note |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut medians = Vec::new();
    for &cores in &core_counts {
        for (w, workload) in WORKLOADS.iter().enumerate().filter(|(_, w)| selected(w)) {
            let base = &cells[&(cores, w, 0)];
            let (base_rps, base_cpu) = (med(base, |c| c.requests_per_second), med(base, |c| c.server_us_per_request));
            for (i, server) in servers.iter().enumerate() {
                let v = &cells[&(cores, w, i)];
                let (rps, cpu) = (med(v, |c| c.requests_per_second), med(v, |c| c.server_us_per_request));
                let mut note = String::new();
                if med(v, |c| c.client_load) > 0.95 && med(v, |c| c.server_load) < 0.95 {
                    note.push_str("client-bound; ");
                }
                if v.iter().any(|c| c.errors > 0) {
                    note.push_str("errors; ");
                }
                if *server == "nginx" && workload.name.starts_with("put") {
                    note.push_str("no fsync; ");
                }
                let balance = v.iter().filter_map(|c| busiest_over_mean(&c.shard_shares)).collect::<Vec<_>>();
                let balance =
                    if balance.is_empty() { String::new() } else { format!("{:.2}x", median(&mut balance.clone())) };
                println!(
                    "| {cores} | {} | {server} | {rps:.0} | {:.0} | {cpu:.2} | {:.2} | {:.2} | {:.1} | {:.2}x | {:.2}x | {balance} | {} |",
                    workload.name,
                    med(v, |c| c.p99_us),
                    med(v, |c| c.server_load),
                    med(v, |c| c.client_load),
                    med(v, |c| c.peak_rss_mib),
                    base_rps / rps,
                    cpu / base_cpu,
                    note.trim_end_matches("; ")
                );
                rows.extend(v.iter().cloned());
                medians.push(plot::Point {
                    server: server.to_string(),
                    workload: workload.name.to_string(),
                    cores,
                    requests_per_second: rps,
                    percentiles_us: [
                        med(v, |c| c.p50_us),
                        med(v, |c| c.p90_us),
                        med(v, |c| c.p99_us),
                        med(v, |c| c.p999_us),
                    ],
                });
            }
        }
    }
    let idle_count: usize = if skip_idle { 0 } else { args.idle };
    if idle_count > 0 {
        println!("\nidle keep-alive connections: {idle_count} held open, server on CPU {}\n", setup.server_cpus[0]);
        println!("| server | RSS before MiB | RSS with them MiB | bytes per connection |");
        println!("|---|---|---|---|");
    }
    let mut idle = Vec::new();
    for server in servers.iter().filter(|_| idle_count > 0) {
        let (before, after, per) = idle_memory(&setup, server, idle_count, client[client.len() - 1]);
        println!("| {server} | {before:.1} | {after:.1} | {per:.0} |");
        idle.push(serde_json::json!({"server": server, "connections": idle_count, "rss_before_mib": before, "rss_after_mib": after, "bytes_per_connection": per}));
    }
    let host = serde_json::json!({
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": percore_cores::format_list(&cpus),
        "server_cpus": percore_cores::format_list(&setup.server_cpus),
        "client_cpus": setup.client_cpus,
        "connections": setup.connections,
        "rounds": rounds,
        "seconds": seconds,
    });
    let path = out_dir.join("compare.json");
    let json = serde_json::json!({"host": host, "cells": rows, "idle": idle});
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    println!("\nall rounds as JSON: {}", path.display());
    let svg = out_dir.join("compare.svg");
    std::fs::write(&svg, plot::svg(&medians)).unwrap();
    println!("plot: {}", svg.display());
}
