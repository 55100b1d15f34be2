//! Soak: a bounded mixed load (90% GET, 10% PUT over 200 keys of 4 KiB and
//! 256 KiB) from `percore bench`, which checks every response byte for
//! byte: zero errors, and the daemon's RSS stops growing. Then a graceful
//! stop (SIGTERM) in the middle of concurrent writes loses no acknowledged
//! write. `PERCORE_SOAK_SECONDS` sets the load's length (default 30, the
//! CI run; RELIABILITY.md records a longer one).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::crash::{self, Op, State, PATHS, WRITERS};
use crate::util::{join_all, rss_kib, stray_temp_files, Daemon};

#[test]
fn a_mixed_soak_has_no_errors_and_flat_memory_then_sigterm_loses_nothing() {
    let _heavy = crate::util::heavy();
    let seconds: u64 = std::env::var("PERCORE_SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let daemon = Daemon::start(&["--cores", "2"]);
    let pid = daemon.pid();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                samples.push(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["bench", &format!("http://{}", daemon.addr), "--workload", "mixed", "--read-percent", "90"])
        .args(["--keys", "200", "--size", "4KiB:90,256KiB:10", "--populate", "--connections", "32"])
        .args(["--warmup", "1", "--duration", &seconds.to_string(), "--json"])
        .output()
        .unwrap();
    sampling.store(false, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].as_object().unwrap();
    assert!(errors.is_empty(), "errors under load: {errors:?}");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 1000 * seconds / 10, "{requests} requests in {seconds} s");
    // Flat memory: once the first third has filled the caches and pools,
    // the last third's peak is within 1 MiB (or 2%) of the middle third's.
    // (A leak of a waker per request, about 16 bytes, grew by 2-3 MiB per
    // 10 s here, and failed this.)
    let third = samples.len() / 3;
    let peak = |s: &[u64]| s.iter().copied().max().unwrap_or(0);
    let (middle_peak, last_peak) = (peak(&samples[third..2 * third]), peak(&samples[2 * third..]));
    assert!(
        last_peak <= middle_peak + (middle_peak / 50).max(1024),
        "RSS kept growing: middle third peak {middle_peak} KiB, last third {last_peak} KiB ({samples:?})"
    );
    println!(
        "soak: {seconds} s, {requests} requests checked, 0 errors, RSS peak {middle_peak} KiB then {last_peak} KiB"
    );

    // A graceful stop in the middle of concurrent writes.
    let mut daemon = daemon;
    let state: State = PATHS.iter().map(|p| (*p, None)).collect();
    let (stop, next_id) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(1)));
    let etags = Arc::new(Mutex::new(BTreeMap::new()));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addr, next_id, stop, etags) = (daemon.addr, next_id.clone(), stop.clone(), etags.clone());
            std::thread::spawn(move || {
                crash::writer(addr, w as u64 * 7919 + 3, &next_id, &stop, &etags, false, &crash::PATHS)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM while they write; they stop a moment later.
    daemon.signal_term();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let status = daemon.terminate(Duration::from_secs(10)).expect("stopped within its grace");
    assert!(status.success(), "{status:?}");
    let ops: Vec<Op> = join_all(writers).into_iter().flatten().collect();
    let data = daemon.kill9().expect("owned data directory");
    let daemon = Daemon::start_in(data, &["--cores", "2"]);
    assert!(stray_temp_files(&daemon).is_empty());
    let (_, checked) = crash::check(&daemon, &state, started, &ops);
    assert!(checked > 0);
    println!("sigterm under writes: {} writes, {checked} acknowledged and checked after the restart", ops.len());
}
