//! `percore bench`, the load generator: every workload against the real
//! daemon, the open loop, and a wrong server scoring errors, not speed.

use std::io::{Read, Write};
use std::process::Command;

use crate::util::Daemon;

fn bench(url: &str, args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_percore"));
    command.args(["bench", url, "--json", "--warmup", "0.2", "--connections", "8"]);
    if !args.contains(&"--duration") {
        command.args(["--duration", "1"]);
    }
    let out = command.args(args).output().unwrap();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn every_workload_runs_clean_against_percore() {
    let _heavy = crate::util::heavy();
    let daemon = Daemon::start(&["--cores", "1"]);
    let url = format!("http://{}", daemon.addr);
    for args in [
        vec!["--workload", "ping"],
        vec!["--workload", "ping", "--pipeline", "4"],
        vec!["--workload", "get", "--populate", "--keys", "50", "--size", "4KiB:90,256KiB:10"],
        // Bodies that take many receives, each straight into the buffer
        // they are checked in.
        vec!["--workload", "get", "--populate", "--keys", "4", "--size", "1MiB"],
        vec!["--workload", "put", "--keys", "20", "--size", "1KiB"],
        // After the put run above rewrote keys at another size: populate again.
        vec![
            "--workload",
            "mixed",
            "--populate",
            "--keys",
            "50",
            "--size",
            "4KiB:90,256KiB:10",
            "--read-percent",
            "80",
        ],
    ] {
        let result = bench(&url, &args);
        assert!(result["requests"].as_u64().unwrap() > 10, "{args:?}: {result}");
        assert_eq!(result["errors"], serde_json::json!({}), "{args:?}: {result}");
        assert!(result["latency_us"]["p99"].as_u64().unwrap() >= result["latency_us"]["p50"].as_u64().unwrap());
        assert_eq!(result["client_core_load"].as_array().unwrap().len(), percore_cores_count());
    }
    let mixed =
        bench(&url, &["--workload", "mixed", "--keys", "50", "--size", "4KiB:90,256KiB:10", "--read-percent", "80"]);
    assert_eq!((mixed["workload"].as_str(), mixed["read_percent"].as_u64()), (Some("mixed"), Some(80)));
}

/// Range and conditional GETs: 206 with the right bytes, 416 past the end,
/// 304 on revalidation (and a fresh 200 after a PUT made a new version).
#[test]
fn range_and_conditional_gets_are_checked() {
    let _heavy = crate::util::heavy();
    let daemon = Daemon::start(&["--cores", "1"]);
    let url = format!("http://{}", daemon.addr);
    let ranged =
        bench(&url, &["--workload", "get", "--populate", "--keys", "20", "--size", "10KiB", "--range", "100-5000"]);
    assert_eq!(ranged["errors"], serde_json::json!({}), "{ranged}");
    assert!(ranged["requests"].as_u64().unwrap() > 10, "{ranged}");
    // 4,901 bytes per response, not 10 KiB.
    let per = ranged["megabytes_per_second"].as_f64().unwrap() * 1e6 / ranged["requests_per_second"].as_f64().unwrap();
    assert!((per - 4901.0).abs() < 1.0, "{per} bytes per ranged response");
    let past = bench(&url, &["--workload", "get", "--keys", "20", "--size", "10KiB", "--range", "20000-"]);
    assert_eq!(past["errors"], serde_json::json!({}), "416 expected and got: {past}");
    let conditional = bench(&url, &["--workload", "get", "--keys", "20", "--size", "10KiB", "--conditional"]);
    assert_eq!(conditional["errors"], serde_json::json!({}), "{conditional}");
    let (n, revalidated) = (conditional["requests"].as_u64().unwrap(), conditional["not_modified"].as_u64().unwrap());
    assert!(revalidated * 10 > n * 9, "20 keys: nearly every GET is a 304 ({revalidated} of {n})");
    let mixed = bench(
        &url,
        &[
            "--workload",
            "mixed",
            "--read-percent",
            "50",
            "--keys",
            "20",
            "--size",
            "10KiB",
            "--conditional",
            "--range",
            "0-99",
        ],
    );
    assert_eq!(mixed["errors"], serde_json::json!({}), "{mixed}");
}

fn percore_cores_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn the_open_loop_keeps_its_rate() {
    let _heavy = crate::util::heavy();
    let daemon = Daemon::start(&["--cores", "1"]);
    let result = bench(&format!("http://{}", daemon.addr), &["--rate", "2000", "--duration", "2"]);
    let rps = result["requests_per_second"].as_f64().unwrap();
    assert!((1400.0..2600.0).contains(&rps), "asked for 2000 req/s, got {rps}");
}

/// A server that answers every GET fast, with the right length and one
/// wrong byte.
#[test]
fn a_fast_but_wrong_server_scores_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let mut body = vec![7u8; 1024];
                        body[100] = 8;
                        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n";
                        if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body)).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let result = bench(&format!("http://{addr}"), &["--workload", "get", "--size", "1KiB", "--keys", "5"]);
    assert_eq!(result["requests"], 0, "no wrong answer counts as served: {result}");
    assert!(result["errors"]["get: wrong bytes"].as_u64().unwrap() > 10, "{result}");
    // Nor does a whole object for a range.
    let result =
        bench(&format!("http://{addr}"), &["--workload", "get", "--size", "1KiB", "--keys", "5", "--range", "0-99"]);
    assert_eq!(result["requests"], 0, "{result}");
    assert!(result["errors"]["get: status 200"].as_u64().unwrap() > 10, "{result}");
}
