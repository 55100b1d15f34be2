//! The README, step by step, as a new user follows it: start the daemon on
//! a fresh data directory (on an ephemeral loopback port instead of 8080,
//! as tests must), then run the README's curl commands and its first load
//! test, and check every answer it shows.

use std::process::Command;

use crate::util::Daemon;

/// Runs `curl` with `args`; returns (HTTP status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (the README's client) is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl printed a status");
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn the_readme_quick_start_works_as_written() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED the README walk-through: curl is not installed ***\n");
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // The commands below are the README's, with its address replaced.
    for shown in [
        "cargo run --release -- serve",
        "curl http://127.0.0.1:8080/ping",
        "curl -T notes.txt http://127.0.0.1:8080/files/docs/notes.txt",
        "curl http://127.0.0.1:8080/files/docs/notes.txt",
        "cargo run --release -- bench http://127.0.0.1:8080 --cores 1 --duration 10",
    ] {
        assert!(readme.contains(shown), "the README no longer shows `{shown}`: update this walk-through");
    }
    let daemon = Daemon::start(&[]);
    let base = format!("http://{}", daemon.addr);
    assert_eq!(curl(&[&format!("{base}/ping")]), (200, "pong\n".to_string()));
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    let (status, _) = curl(&["-T", notes.to_str().unwrap(), &format!("{base}/files/docs/notes.txt")]);
    assert_eq!(status, 201, "the upload is created");
    assert_eq!(curl(&[&format!("{base}/files/docs/notes.txt")]), (200, "my notes\n".to_string()));
    // The listing and the front page a browser would open.
    let (status, listing) = curl(&[&format!("{base}/files/docs/")]);
    assert!(status == 200 && listing.contains("\"name\":\"notes.txt\""), "{status} {listing}");
    let (status, home) = curl(&["-H", "Accept: text/html", &format!("{base}/")]);
    assert!(status == 200 && home.contains("<h1>percore</h1>"), "{status}");
    // The first load test of the README, shortened.
    let out = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["bench", &base, "--cores", "1", "--duration", "1", "--warmup", "0", "--connections", "4"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("req/s"), "{report}");
}
