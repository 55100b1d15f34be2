//! HTTPS under load and faults, the TLS variants of `slow`, `soak` and
//! `crash`: a TLS client that stops reading is dropped at the send timeout
//! while a slow one gets everything; a mixed HTTPS load from `percore
//! bench` (verifying the certificate) has no errors; SIGKILL under HTTPS
//! writes loses no acknowledged write. And what an idle keep-alive
//! connection costs, plain and HTTPS.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::tls::{self, Key, Pki};
use crate::util::{join_all, metric, metrics, stray_temp_files, write_file, Daemon};

fn https_args(pki: &Pki) -> Vec<String> {
    let (crt, key) = pki.issue("localhost", &["localhost"], Key::Ecdsa);
    let mut args: Vec<String> = ["--listen-tls", "127.0.0.1:0", "--tls-cert"].map(String::from).to_vec();
    args.extend([crt.display().to_string(), "--tls-key".into(), key.display().to_string()]);
    args
}

fn start(pki: &Pki, extra: &[&str]) -> Daemon {
    let mut args = https_args(pki);
    args.extend(extra.iter().map(|s| s.to_string()));
    Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_tls_client_that_stops_reading_is_dropped_and_a_slow_one_is_served() {
    let _heavy = crate::util::heavy();
    let pki = Pki::new();
    let daemon = start(&pki, &["--cores", "1", "--send-timeout-ms", "500"]);
    let addr = daemon.tls_addr.unwrap();
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 253) as u8).collect();
    write_file(daemon.dir(), "big", &big);
    let client = tls::client(&pki.ca());
    let mut stalled = tls::connect(addr, &client, "localhost");
    stalled.write_all(b"GET /files/big HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    stalled.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&metrics(&daemon), "percore_open_connections", &[]) > 1.0 {
        assert!(Instant::now() < deadline, "the stalled TLS connection was never dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    // 4 MiB read at 4 MiB/s by the clock, spanning several send timeouts.
    write_file(daemon.dir(), "four", &big[..4 << 20]);
    let mut reader = tls::connect(addr, &client, "localhost");
    reader.write_all(b"GET /files/four HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    reader.flush().unwrap();
    let started = Instant::now();
    // close_notify then a close is the end; an unexpected EOF is an error.
    let got = crate::util::read_paced(&mut reader, 4 << 20);
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got[body_at..] == big[..4 << 20], "the slow reader got {} body bytes", got.len() - body_at);
    assert!(started.elapsed() > Duration::from_millis(800), "{:?}", started.elapsed());
    drop(stalled);
}

/// A key's last acknowledged body, and the body in flight when stopped.
type Written = (Option<Vec<u8>>, Option<Vec<u8>>);

#[test]
fn a_mixed_https_load_has_no_errors_then_sigkill_loses_no_acknowledged_write() {
    let _heavy = crate::util::heavy();
    let pki = Pki::new();
    let daemon = start(&pki, &["--cores", "2"]);
    let addr = daemon.tls_addr.unwrap();
    let url = format!("https://localhost:{}", addr.port());
    let out = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["bench", &url, "--cacert", pki.ca().to_str().unwrap(), "--workload", "mixed", "--read-percent", "90"])
        .args(["--keys", "100", "--size", "4KiB:90,256KiB:10", "--populate", "--connections", "16"])
        .args(["--warmup", "0.5", "--duration", "4", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].as_object().unwrap();
    assert!(errors.is_empty(), "errors under HTTPS load: {errors:?}");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 1000, "{requests} requests in 4 s");
    // Handshakes per second, full then resumed (the bench's own client).
    for resume in [false, true] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_percore"));
        command.args(["bench", &url, "--cacert", pki.ca().to_str().unwrap(), "--new-connection", "--json"]);
        command.args(["--connections", "4", "--warmup", "0.2", "--duration", "1"]);
        if resume {
            command.arg("--resume");
        }
        let report: serde_json::Value = serde_json::from_slice(&command.output().unwrap().stdout).unwrap();
        assert!(report["errors"].as_object().unwrap().is_empty(), "{report}");
        let resumed = report["resumed_handshakes"].as_u64().unwrap();
        let total = report["requests"].as_u64().unwrap();
        assert!(total > 50, "{report}");
        assert!(if resume { resumed * 10 >= total * 9 } else { resumed == 0 }, "resume {resume}: {report}");
    }

    // Writers over HTTPS keep-alive connections, each key's writes in
    // order; SIGKILL in the middle.
    let client = tls::client(&pki.ca());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen: BTreeMap<String, Written> = BTreeMap::new();
                let mut stream = tls::connect(addr, &client, "localhost");
                for i in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("w{w}/k{}", i % 5);
                    let body = format!("writer {w} write {i} ").repeat(50 + (i as usize % 7) * 100).into_bytes();
                    seen.entry(key.clone()).or_default().1 = Some(body.clone());
                    let head =
                        format!("PUT /files/{key} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len());
                    if stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&body))
                        .and_then(|_| stream.flush())
                        .is_err()
                    {
                        break;
                    }
                    match crate::util::read_response(&mut stream, false) {
                        Some(r) if r.status == 200 || r.status == 201 => {
                            let entry = seen.get_mut(&key).unwrap();
                            entry.0 = entry.1.take();
                        }
                        _ => break,
                    }
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let data = daemon.kill9().expect("owned data directory");
    stop.store(true, Ordering::SeqCst);
    let seen: Vec<_> = join_all(writers).into_iter().flatten().collect();
    let daemon = Daemon::start_in(data, &["--cores", "2"]);
    assert!(stray_temp_files(&daemon).is_empty());
    let mut checked = 0;
    for (key, (acked, in_flight)) in &seen {
        let stored = std::fs::read(daemon.path(key)).ok();
        let fine = stored == *acked || (in_flight.is_some() && stored == *in_flight);
        assert!(
            fine,
            "{key}: stored {:?} bytes, acknowledged {:?}",
            stored.map(|s| s.len()),
            acked.as_ref().map(Vec::len)
        );
        checked += usize::from(acked.is_some());
    }
    assert!(checked >= 4, "only {checked} keys acknowledged before the kill");
}

/// Kinds of connection for [`idle_kib_per_connection`].
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Https,
}

/// A fresh daemon's RSS growth per idle keep-alive connection of `kind`
/// (each after one request), once 50 have warmed its pools.
fn idle_kib_per_connection(pki: &Pki, kind: Kind, count: usize) -> f64 {
    let daemon = start(pki, &["--cores", "1"]);
    let client = tls::client(&pki.ca());
    let ping = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";
    let open = || -> Box<dyn std::any::Any> {
        match kind {
            Kind::Plain => {
                let mut s = daemon.connect();
                s.write_all(ping).unwrap();
                crate::util::read_response(&mut s, false).unwrap();
                Box::new(s)
            }
            Kind::Https => {
                let mut s = tls::connect(daemon.tls_addr.unwrap(), &client, "localhost");
                tls::exchange(&mut s, ping);
                Box::new(s)
            }
        }
    };
    let _warm: Vec<_> = (0..50).map(|_| open()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = crate::util::rss_kib(daemon.pid());
    let _held: Vec<_> = (0..count).map(|_| open()).collect();
    std::thread::sleep(Duration::from_millis(300));
    crate::util::rss_kib(daemon.pid()).saturating_sub(before) as f64 / count as f64
}

#[test]
fn idle_keep_alive_connections_hold_little_memory_plain_and_https() {
    let _heavy = crate::util::heavy();
    let pki = Pki::new();
    let plain = idle_kib_per_connection(&pki, Kind::Plain, 1000);
    let https = idle_kib_per_connection(&pki, Kind::Https, 500);
    println!("idle keep-alive connections: plain {plain:.1} KiB, HTTPS {https:.1} KiB each");
    // Plain: 3.65 KiB before HTTPS; 11.5 KiB while the receive took its
    // buffer before waiting. HTTPS: issue 15's goal.
    assert!(plain <= 6.0, "an idle plain connection holds {plain:.1} KiB");
    assert!(https <= 16.0, "an idle HTTPS connection holds {https:.1} KiB");
}
