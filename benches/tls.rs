//! HTTPS side by side: percore (rustls, aws-lc-rs) against nginx (OpenSSL)
//! with the same ECDSA P-256 certificate, the same suites
//! (`TLS_AES_128_GCM_SHA256`, `ECDHE-ECDSA-AES128-GCM-SHA256` for 1.2) and
//! X25519, each server pinned to CPU 0 and `percore bench` (`--insecure`:
//! signatures checked, no chain, the same client cost for both) to CPU 1;
//! fresh servers every round, cells interleaved (every server for one
//! cell, then the next), medians reported with the ratio percore / nginx.
//!
//! Cells: `/ping` and GET 4 KiB keep-alive (req/s), GET 1 MiB keep-alive
//! (server CPU per request), full TLS 1.3 handshakes per second (a new
//! connection per request), resumed TLS 1.3 and TLS 1.2 ones (tickets),
//! and plain-HTTP `/ping` and GET 4 KiB for percore's own baseline. Then
//! each server holds `--idle N` (default 2,000) idle HTTPS keep-alive
//! connections (each after one request) and its RSS growth per connection
//! is reported. Results go to `target/tls.json`.
//!
//! `cargo bench -p percore-benches --bench tls [-- ROUNDS SECONDS] [--idle N]`
//! (default 3 rounds of 3 s). Needs nginx (installed from Debian if
//! missing), openssl, taskset and python3 (the idle client).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percore_benches::{cpu_time, median, rss_kib};

const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";

struct Cell {
    name: &'static str,
    /// `percore bench` arguments.
    args: &'static [&'static str],
    /// Plain HTTP instead of HTTPS (percore only).
    plain: bool,
    connections: usize,
    /// Run (untimed) against each server before the cell.
    before: &'static [&'static str],
}

const CELLS: &[Cell] = &[
    Cell { name: "https ping", args: &["--workload", "ping"], plain: false, connections: 64, before: &[] },
    Cell {
        name: "https get 4KiB",
        args: &["--workload", "get", "--keys", "1000"],
        plain: false,
        connections: 64,
        before: &[],
    },
    Cell { name: "http ping", args: &["--workload", "ping"], plain: true, connections: 64, before: &[] },
    Cell {
        name: "http get 4KiB",
        args: &["--workload", "get", "--keys", "1000"],
        plain: true,
        connections: 64,
        before: &[],
    },
    // Keys 0-15 become 1 MiB here: the 4 KiB cells come first.
    Cell {
        name: "https get 1MiB",
        args: &["--workload", "get", "--keys", "16", "--size", "1MiB"],
        plain: false,
        connections: 8,
        before: &["--populate", "--workload", "get", "--keys", "16", "--size", "1MiB"],
    },
    Cell {
        name: "full handshakes tls1.3",
        args: &["--workload", "ping", "--new-connection", "--tls-version", "1.3"],
        plain: false,
        connections: 16,
        before: &[],
    },
    Cell {
        name: "resumed handshakes tls1.3",
        args: &["--workload", "ping", "--new-connection", "--resume", "--tls-version", "1.3"],
        plain: false,
        connections: 4,
        before: &[],
    },
    Cell {
        name: "full handshakes tls1.2",
        args: &["--workload", "ping", "--new-connection", "--tls-version", "1.2"],
        plain: false,
        connections: 16,
        before: &[],
    },
    Cell {
        name: "resumed handshakes tls1.2",
        args: &["--workload", "ping", "--new-connection", "--resume", "--tls-version", "1.2"],
        plain: false,
        connections: 4,
        before: &[],
    },
];

struct Setup {
    percore: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

struct Server {
    name: &'static str,
    child: Child,
    http: u16,
    https: u16,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(setup: &Setup, name: &'static str) -> Server {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let (http, https) = (free_port(), free_port());
    let child = match name {
        "percore" => Command::new("taskset")
            .args(["-c", SERVER_CPU])
            .arg(&setup.percore)
            .args(["serve", "--listen", &format!("127.0.0.1:{http}"), "--listen-tls", &format!("127.0.0.1:{https}")])
            .args(["--cores", "1", "--log-level", "warn", "--connections-max-per-shard", "100000"])
            .arg("--tls-cert")
            .arg(&setup.cert)
            .arg("--tls-key")
            .arg(&setup.key)
            .arg("--data-dir")
            .arg(d)
            .stdout(Stdio::null())
            .spawn(),
        _ => {
            let conf = d.join("nginx.conf");
            std::fs::create_dir_all(d.join("files")).unwrap();
            let temps = ["proxy", "fastcgi", "uwsgi", "scgi"].map(|t| format!("{t}_temp_path {}/.nginx-{t};", d.display()));
            std::fs::write(
                &conf,
                format!(
                    "daemon off; master_process off; user root; worker_processes 1;\n\
                     pid {d}/nginx.pid; error_log stderr error;\n\
                     events {{ worker_connections 20000; }}\n\
                     http {{ access_log off; {temps} sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 10000000;\n\
                       open_file_cache max=10000 inactive=60s; open_file_cache_valid 1s;\n\
                       client_body_temp_path {d}/.nginx-body; client_max_body_size 2g; client_body_buffer_size 64k;\n\
                       ssl_certificate {cert}; ssl_certificate_key {key};\n\
                       ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on;\n\
                       ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;\n\
                       ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;\n\
                       ssl_ecdh_curve X25519:prime256v1; ssl_session_tickets on; ssl_session_cache off;\n\
                       server {{ listen 127.0.0.1:{http}; listen 127.0.0.1:{https} ssl; default_type application/octet-stream;\n\
                         location = /ping {{ return 200 \"pong\\n\"; }}\n\
                         location /files/ {{ alias {d}/files/; dav_methods PUT DELETE; create_full_put_path on; }} }} }}\n",
                    d = d.display(),
                    temps = temps.join(" "),
                    cert = setup.cert.display(),
                    key = setup.key.display(),
                ),
            )
            .unwrap();
            Command::new("taskset")
                .args(["-c", SERVER_CPU, "nginx", "-e", "stderr", "-p"])
                .arg(d)
                .arg("-c")
                .arg(&conf)
                .spawn()
        }
    }
    .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = Server { name, child, http, https, _data: data };
    // The objects the GET cells read, written through the server itself.
    bench(setup, &server, false, &["--populate", "--workload", "get", "--keys", "1000"], 1, 0.2);
    server
}

fn bench(
    setup: &Setup,
    server: &Server,
    plain: bool,
    args: &[&str],
    connections: usize,
    seconds: f64,
) -> serde_json::Value {
    let url =
        if plain { format!("http://127.0.0.1:{}", server.http) } else { format!("https://localhost:{}", server.https) };
    let out = Command::new("taskset")
        .args(["-c", CLIENT_CPU])
        .arg(&setup.percore)
        .args(["bench", &url, "--cores", "1", "--json", "--warmup", "0.5", "--insecure"])
        .args(["--connections", &connections.to_string(), "--duration", &seconds.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Opens `count` HTTPS keep-alive connections, one request each, holds
/// them, and returns the server's RSS growth per connection in KiB.
fn idle_kib_per_connection(server: &Server, count: usize) -> f64 {
    let before = rss_kib(server.child.id());
    let script = format!(
        "import socket, ssl, sys, time\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         held = []\n\
         for _ in range({count}):\n\
         \x20   s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='localhost')\n\
         \x20   s.sendall(b'GET /ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
         \x20   got = b''\n\
         \x20   while not got.endswith(b'pong\\n'): got += s.recv(4096)\n\
         \x20   held.append(s)\n\
         print('held', flush=True)\n\
         sys.stdin.readline()\n",
        port = server.https
    );
    let mut client = Command::new("taskset")
        .args(["-c", CLIENT_CPU, "python3", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(client.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "held", "the idle client failed");
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(server.child.id());
    drop(client.stdin.take());
    let _ = client.wait();
    (after.saturating_sub(before)) as f64 / count as f64
}

/// One cell's round for one server: req/s, server µs per request, p99 µs.
type Measured = (f64, f64, f64);

fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let idle = args.iter().position(|a| a == "--idle").map_or(2000, |i| args[i + 1].parse().unwrap());
    let numbers: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).filter(|n| *n != idle as f64).collect();
    let rounds = numbers.first().map_or(3, |n| *n as usize);
    let seconds = numbers.get(1).copied().unwrap_or(3.0);
    if Command::new("nginx").arg("-v").output().is_err() {
        println!("nginx not found: installing it from Debian");
        let _ = Command::new("sh")
            .args(["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx)"])
            .status();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let status =
        Command::new("cargo").args(["build", "--release", "-p", "percore"]).current_dir(&root).status().unwrap();
    assert!(status.success());
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(certs.path());
    let setup = Setup { percore: root.join("target/release/percore"), cert, key };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("HTTPS: percore vs nginx, server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}, kernel {}, {rounds} rounds of {seconds} s", kernel.trim());
    let mut results: BTreeMap<(usize, &str), Vec<Measured>> = BTreeMap::new();
    for round in 0..rounds {
        // Fresh servers (and data) every round, kept for its cells.
        let servers = [start(&setup, "percore"), start(&setup, "nginx")];
        for (c, cell) in CELLS.iter().enumerate() {
            for server in &servers {
                let name = server.name;
                if cell.plain && name == "nginx" {
                    continue;
                }
                if !cell.before.is_empty() {
                    bench(&setup, server, false, cell.before, 1, 0.2);
                    // nginx's open_file_cache revalidates each second.
                    std::thread::sleep(Duration::from_millis(1500));
                }
                let cpu0 = cpu_time(server.child.id());
                let json = bench(&setup, server, cell.plain, cell.args, cell.connections, seconds);
                let cpu = (cpu_time(server.child.id()) - cpu0).as_secs_f64();
                let rps = json["requests_per_second"].as_f64().unwrap();
                let requests = json["requests"].as_f64().unwrap().max(1.0);
                let errors: u64 = json["errors"].as_object().map_or(0, |e| e.values().filter_map(|v| v.as_u64()).sum());
                assert_eq!(errors, 0, "{name} {}: errors {}", cell.name, json["errors"]);
                // The CPU read covers the warm-up too: scale by the
                // measured share of the requests (warm-up 0.5 s).
                let us = cpu * 1e6 / (requests * (seconds + 0.5) / seconds);
                let p99 = json["latency_us"]["p99"].as_f64().unwrap();
                println!("round {round} {:<26} {name:<8} {rps:>9.0} req/s {us:>7.1} µs/req p99 {p99} µs", cell.name);
                results.entry((c, name)).or_default().push((rps, us, p99));
            }
        }
    }
    let mut rows = Vec::new();
    println!(
        "\n{:<26} {:>12} {:>12} {:>7} {:>10} {:>10} {:>7}",
        "cell (median)", "percore/s", "nginx/s", "ratio", "percore µs", "nginx µs", "ratio"
    );
    for (c, cell) in CELLS.iter().enumerate() {
        let med = |name: &str, f: fn(&Measured) -> f64| {
            results.get(&(c, name)).map(|v| median(&mut v.iter().map(f).collect::<Vec<_>>()))
        };
        let (p, n) = (med("percore", |r| r.0).unwrap(), med("nginx", |r| r.0));
        let (pu, nu) = (med("percore", |r| r.1).unwrap(), med("nginx", |r| r.1));
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}", a / b));
        println!(
            "{:<26} {p:>12.0} {:>12} {:>7} {pu:>10.1} {:>10} {:>7}",
            cell.name,
            show(n),
            ratio(p, n),
            nu.map_or("-".into(), |v| format!("{v:.1}")),
            nu.map_or("-".to_string(), |nu| format!("{:.2}", pu / nu))
        );
        rows.push(
            serde_json::json!({"cell": cell.name, "percore_rps": p, "nginx_rps": n, "percore_us": pu, "nginx_us": nu}),
        );
    }
    let mut idle_rows = Vec::new();
    if idle > 0 {
        for name in ["percore", "nginx"] {
            let server = start(&setup, name);
            let kib = idle_kib_per_connection(&server, idle);
            println!("idle HTTPS keep-alive connections, {name}: {kib:.1} KiB each ({idle} held)");
            idle_rows.push(serde_json::json!({"server": server.name, "kib_per_connection": kib, "connections": idle}));
        }
    }
    let out = root.join("target/tls.json");
    let json = serde_json::json!({"kernel": kernel.trim(), "rounds": rounds, "seconds": seconds, "cells": rows, "idle": idle_rows});
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("written to {}", out.display());
}
