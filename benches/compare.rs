//! The daemon comparison: percore against HTTP servers on monoio,
//! tokio-uring, tokio (current-thread and multi-thread) and nginx (sendfile,
//! open_file_cache, PUT through WebDAV), each pinned to CPU 0, all driven by
//! `percore bench` pinned to CPU 1, interleaved rounds. Prints a table of
//! req/s, p99, server CPU per request and peak RSS with ratios to percore,
//! and writes the rows as JSON to `target/compare.json`.
//!
//! `cargo bench -p percore-benches --bench compare [-- --quick | ROUNDS SECONDS]`
//! (`--quick`: one round of 2 s per cell). Installs nginx from Debian if
//! it is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore_benches::{cpu_time, median, peak_rss_kib};

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

fn start(server: &str, data: &Path) -> Server {
    let port = free_port();
    let child = match server {
        "percore" => Command::new("taskset")
            .args(["-c", "0"])
            .arg(percore_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--cores", "0,", "--log-level", "warn", "--data-dir"])
            .arg(data)
            .stdout(Stdio::null())
            .spawn(),
        "nginx" => {
            let conf = data.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "daemon off; master_process off; user root; worker_processes 1; pid {d}/nginx.pid; error_log stderr error;\n\
                     events {{ worker_connections 20000; }}\n\
                     http {{ access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 10000000;\n\
                       open_file_cache max=10000 inactive=60s; open_file_cache_valid 60s;\n\
                       client_body_temp_path {d}/.nginx-body; client_max_body_size 2g; client_body_buffer_size 64k;\n\
                       server {{ listen 127.0.0.1:{port}; default_type application/octet-stream;\n\
                         location = /ping {{ return 200 \"pong\\n\"; }}\n\
                         location /files/ {{ alias {d}/files/; dav_methods PUT DELETE; create_full_put_path on; }} }} }}\n",
                    d = data.display()
                ),
            )
            .unwrap();
            Command::new("taskset").args(["-c", "0", "nginx", "-c"]).arg(&conf).stderr(Stdio::null()).spawn()
        }
        peer => Command::new(env!("CARGO_BIN_EXE_http-peer"))
            .args([peer, &port.to_string(), "0"])
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

fn bench(port: u16, args: &[&str], seconds: f64) -> serde_json::Value {
    let out = Command::new("taskset")
        .args(["-c", "1"])
        .arg(percore_bin())
        .args(["bench", &format!("http://127.0.0.1:{port}"), "--cores", "1,", "--json", "--warmup", "0.5"])
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
    requests_per_second: f64,
    p99_us: f64,
    server_us_per_request: f64,
    server_load: f64,
    client_load: f64,
    peak_rss_mib: f64,
    errors: u64,
}

fn measure(server: &str, workload: &Workload, seconds: f64) -> Cell {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(data.path().join("files")).unwrap();
    // percore serves its data directory at /files/; the others serve a
    // `files` directory inside it at /files/: the same URLs either way.
    let mut s = start(server, data.path());
    if let Some(populate) = workload.populate {
        let mut args = vec!["--workload", "ping", "--populate"];
        args.extend_from_slice(populate);
        bench(s.port, &args, 0.1);
    }
    let pid = s.child.id();
    let (cpu0, wall0) = (cpu_time(pid), Instant::now());
    let result = bench(s.port, workload.args, seconds);
    let (cpu1, wall) = (cpu_time(pid), wall0.elapsed());
    let rss = peak_rss_kib(pid) as f64 / 1024.0;
    let _ = s.child.kill();
    let _ = s.child.wait();
    let requests = result["requests"].as_f64().unwrap().max(1.0);
    let loads = result["client_core_load"].as_array().unwrap();
    Cell {
        server: server.to_string(),
        workload: workload.name.to_string(),
        requests_per_second: result["requests_per_second"].as_f64().unwrap(),
        p99_us: result["latency_us"]["p99"].as_f64().unwrap(),
        // CPU over the whole bench run (warm-up included) per request counted.
        server_us_per_request: (cpu1 - cpu0).as_secs_f64() * 1e6 / (requests * (seconds + 0.5) / seconds),
        server_load: (cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64(),
        client_load: loads.iter().filter_map(|l| l.as_f64()).fold(0.0, f64::max),
        peak_rss_mib: rss,
        errors: result["errors"].as_object().unwrap().values().filter_map(|v| v.as_u64()).sum(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let numbers: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).collect();
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
    println!("compare: server on CPU 0, percore bench on CPU 1 (64 connections), {rounds} round(s) x {seconds} s");
    let mut cells: BTreeMap<(usize, usize), Vec<Cell>> = BTreeMap::new();
    for round in 0..rounds {
        for (w, workload) in WORKLOADS.iter().enumerate() {
            for (i, server) in servers.iter().enumerate() {
                let cell = measure(server, workload, seconds);
                println!(
                    "  round {round} {:<12} {:<12} {:>9.0} req/s p99 {:>6.0} us server {:>6.2} us/req load {:.2} client {:.2} rss {:>6.1} MiB errors {}",
                    cell.workload, cell.server, cell.requests_per_second, cell.p99_us, cell.server_us_per_request, cell.server_load, cell.client_load, cell.peak_rss_mib, cell.errors
                );
                cells.entry((w, i)).or_default().push(cell);
            }
        }
    }
    let med = |v: &[Cell], f: fn(&Cell) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    let mut rows = Vec::new();
    println!("\n| workload | server | req/s | p99 µs | server CPU µs/req | peak RSS MiB | percore ÷ server, req/s | server ÷ percore, CPU/req | note |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (w, workload) in WORKLOADS.iter().enumerate() {
        let base = &cells[&(w, 0)];
        let (base_rps, base_cpu) = (med(base, |c| c.requests_per_second), med(base, |c| c.server_us_per_request));
        for (i, server) in servers.iter().enumerate() {
            let v = &cells[&(w, i)];
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
                "| {} | {server} | {rps:.0} | {:.0} | {cpu:.2} | {:.1} | {:.2}x | {:.2}x | {} |",
                workload.name,
                med(v, |c| c.p99_us),
                med(v, |c| c.peak_rss_mib),
                base_rps / rps,
                cpu / base_cpu,
                note.trim_end_matches("; ")
            );
            rows.extend(v.iter().cloned());
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compare.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&rows).unwrap()).unwrap();
    println!("\nall rounds as JSON: {}", path.display());
}
