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

fn percore_bin() -> PathBuf {
    // The daemon's binary, built by `cargo build --release` at the
    // workspace root (this bench builds it first).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/percore")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ensure_nginx() -> bool {
    if Command::new("nginx").arg("-v").output().is_ok() {
        return true;
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

/// `0-(n-1)`: the CPUs of a server given `n` of them.
fn server_cpus(n: usize) -> String {
    format!("0-{}", n - 1)
}

fn start(server: &str, data: &Path, cores: usize) -> Server {
    let port = free_port();
    let cpus = server_cpus(cores);
    let child = match server {
        "percore" => Command::new("taskset")
            .args(["-c", &cpus])
            .arg(percore_bin())
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
                     http {{ access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 10000000;\n\
                       open_file_cache max=10000 inactive=60s; open_file_cache_valid 60s;\n\
                       client_body_temp_path {d}/.nginx-body; client_max_body_size 2g; client_body_buffer_size 64k;\n\
                       server {{ listen 127.0.0.1:{port}; default_type application/octet-stream;\n\
                         location = /ping {{ return 200 \"pong\\n\"; }}\n\
                         location /files/ {{ alias {d}/files/; dav_methods PUT DELETE; create_full_put_path on; }} }} }}\n",
                    d = data.display(),
                    master = if cores > 1 { "on" } else { "off" },
                ),
            )
            .unwrap();
            Command::new("taskset").args(["-c", &cpus, "nginx", "-c"]).arg(&conf).stderr(Stdio::null()).spawn()
        }
        peer => Command::new(env!("CARGO_BIN_EXE_http-peer"))
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

fn bench(port: u16, client_cpus: &str, args: &[&str], seconds: f64) -> serde_json::Value {
    let out = Command::new("taskset")
        .args(["-c", client_cpus])
        .arg(percore_bin())
        .args(["bench", &format!("http://127.0.0.1:{port}"), "--cores", client_cpus, "--json", "--warmup", "0.5"])
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
    fn new() -> Option<FreshFs> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).ok()?;
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

fn measure(server: &str, workload: &Workload, cores: usize, client_cpus: &str, seconds: f64) -> Cell {
    let fresh = FreshFs::new();
    if fresh.is_none() {
        println!("  (no fresh file system: not root, or no mkfs.ext4; this cell runs in the target directory)");
    }
    let data = match &fresh {
        Some(fs) => tempfile::tempdir_in(&fs.mnt).unwrap(),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    };
    std::fs::create_dir_all(data.path().join("files")).unwrap();
    // percore serves its data directory at /files/; the others serve a
    // `files` directory inside it at /files/: the same URLs either way.
    let mut s = start(server, data.path(), cores);
    if let Some(populate) = workload.populate {
        let mut args = vec!["--workload", "ping", "--populate"];
        args.extend_from_slice(populate);
        bench(s.port, client_cpus, &args, 0.1);
    }
    let pids = process_tree(s.child.id());
    let (cpu0, wall0) = (tree_cpu_time(&pids), Instant::now());
    let result = bench(s.port, client_cpus, workload.args, seconds);
    let (cpu1, wall) = (tree_cpu_time(&pids), wall0.elapsed());
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
    }
}

/// Opens `count` keep-alive connections to the server, each served one
/// `/ping`, and holds them; returns the server's RSS growth per connection
/// in bytes (RSS with them open minus RSS after a warm-up, over the count).
fn idle_memory(server: &str, count: usize, client_cpu: usize) -> (f64, f64, f64) {
    use std::io::{Read, Write};
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(data.path().join("files")).unwrap();
    let mut s = start(server, data.path(), 1);
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

/// The number after `flag`, if given.
fn option(args: &[String], flag: &str) -> Option<usize> {
    let at = args.iter().position(|a| a == flag)?;
    Some(args.get(at + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} takes a number")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // Positional numbers are ROUNDS SECONDS; flags take the next argument.
    let numbers: Vec<f64> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !args[i - 1].starts_with("--") || args[i - 1] == "--quick")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let cpus = percore_cores::allowed_cpus();
    assert!(cpus.len() >= 2 && cpus.iter().enumerate().all(|(i, c)| i == *c), "needs CPUs 0..N, N >= 2: {cpus:?}");
    // `--only put`: just the workloads whose name contains it.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let selected = |w: &Workload| only.as_deref().is_none_or(|o| w.name.contains(o));
    let skip_idle = only.is_some();
    let client_cores = option(&args, "--client-cores").unwrap_or((cpus.len() / 2).max(1));
    assert!(client_cores < cpus.len(), "--client-cores leaves no CPU for the server");
    let client_cpus = format!("{}-{}", cpus.len() - client_cores, cpus.len() - 1);
    let core_counts: Vec<usize> = (1..=cpus.len() - client_cores).collect();
    let (rounds, seconds) = if quick {
        (1, 2.0)
    } else {
        (numbers.first().copied().unwrap_or(3.0) as usize, numbers.get(1).copied().unwrap_or(5.0))
    };
    let status = Command::new("cargo")
        .args(["build", "-q", "--release", "-p", "percore"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status();
    assert!(status.is_ok_and(|s| s.success()), "cannot build percore");
    let servers: Vec<&str> = SERVERS.iter().copied().filter(|s| *s != "nginx" || ensure_nginx()).collect();
    println!(
        "compare: servers on CPUs 0..n for n in {core_counts:?}, percore bench on CPUs {client_cpus} (64 connections), {rounds} round(s) x {seconds} s"
    );
    let mut cells: BTreeMap<(usize, usize, usize), Vec<Cell>> = BTreeMap::new();
    for round in 0..rounds {
        for &cores in &core_counts {
            for (w, workload) in WORKLOADS.iter().enumerate().filter(|(_, w)| selected(w)) {
                for (i, server) in servers.iter().enumerate() {
                    let cell = measure(server, workload, cores, &client_cpus, seconds);
                    println!(
                        "  round {round} cores {cores} {:<12} {:<12} {:>9.0} req/s p99 {:>6.0} us server {:>6.2} us/req load {:.2} client {:.2} rss {:>6.1} MiB errors {}",
                        cell.workload, cell.server, cell.requests_per_second, cell.p99_us, cell.server_us_per_request, cell.server_load, cell.client_load, cell.peak_rss_mib, cell.errors
                    );
                    cells.entry((cores, w, i)).or_default().push(cell);
                }
            }
        }
    }
    let med = |v: &[Cell], f: fn(&Cell) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    let mut rows = Vec::new();
    println!("\n| server cores | workload | server | req/s | p99 µs | server CPU µs/req | peak RSS MiB | percore ÷ server, req/s | server ÷ percore, CPU/req | note |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
                println!(
                    "| {cores} | {} | {server} | {rps:.0} | {:.0} | {cpu:.2} | {:.1} | {:.2}x | {:.2}x | {} |",
                    workload.name,
                    med(v, |c| c.p99_us),
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
    let idle_count: usize = if skip_idle { 0 } else { option(&args, "--idle").unwrap_or(10_000) };
    if idle_count > 0 {
        println!("\nidle keep-alive connections: {idle_count} held open, server on CPU 0\n");
        println!("| server | RSS before MiB | RSS with them MiB | bytes per connection |");
        println!("|---|---|---|---|");
    }
    let mut idle = Vec::new();
    for server in servers.iter().filter(|_| idle_count > 0) {
        let (before, after, per) = idle_memory(server, idle_count, cpus.len() - 1);
        println!("| {server} | {before:.1} | {after:.1} | {per:.0} |");
        idle.push(serde_json::json!({"server": server, "connections": idle_count, "rss_before_mib": before, "rss_after_mib": after, "bytes_per_connection": per}));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compare.json");
    let json = serde_json::json!({"cells": rows, "idle": idle});
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    println!("\nall rounds as JSON: {}", path.display());
    let svg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compare.svg");
    std::fs::write(&svg, plot::svg(&medians)).unwrap();
    println!("plot: {}", svg.display());
}
