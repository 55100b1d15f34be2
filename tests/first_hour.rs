//! What a new user meets in the first hour (issue 14): safe defaults, the
//! listen addresses they write, statuses with their registered reasons,
//! probes no cache keeps, and logs that keep client mistakes out of WARN.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{exchange, get, put, start_logged, Daemon};

/// The status line of a raw exchange with `addr`.
fn status_line(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(request).unwrap();
    let mut line = String::new();
    BufReader::new(&mut stream).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn several_listen_addresses_ipv6_and_host_names_all_answer() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--cores", "1", "--log-level", "warn", "--data-dir"])
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--listen", "localhost:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addrs: Vec<SocketAddr> =
        line.split_whitespace().filter_map(|w| w.strip_prefix("http://")).map(|a| a.parse().unwrap()).collect();
    let outcome = std::panic::catch_unwind(|| {
        // 127.0.0.1, ::1, and localhost's addresses (127.0.0.1 and ::1 here).
        assert!(addrs.len() >= 3, "{line}");
        assert!(addrs.iter().any(SocketAddr::is_ipv6), "{line}");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{line}");
        assert!(line.contains("anyone on this machine may write"), "the start-up line says who may write: {line}");
        for addr in &addrs {
            let status = status_line(*addr, b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            assert_eq!(status, "HTTP/1.1 200 OK", "{addr}");
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    outcome.unwrap();
}

#[test]
fn listening_beyond_loopback_needs_a_write_token_or_an_explicit_yes() {
    // Refused before anything is bound.
    for listen in ["0.0.0.0:0", ":0", "0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_percore"))
            .args(["serve", "--listen", listen, "--data-dir", "/nonexistent/never-created"])
            .env_remove("PERCORE_WRITE_TOKEN")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{listen}: {err}");
        assert!(err.contains("--write-token") && err.contains("--allow-anonymous-writes"), "{listen}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--listen", "localhost", "--data-dir", "/nonexistent/never-created"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no port"), "{out:?}");
}

#[test]
fn a_put_onto_a_directory_is_a_conflict_with_its_reason_and_no_warning() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("docs/inner")).unwrap();
    let (daemon, log) = start_logged(data, &["--cores", "1", "--log-level", "info"], &[]);
    let status = status_line(
        daemon.addr,
        b"PUT /files/docs/inner HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(status, "HTTP/1.1 409 Conflict");
    assert_eq!(put(&daemon, "/files/docs/x", b"ok", "").status, 201, "the daemon goes on");
    drop(daemon);
    let text = log.text();
    assert!(!text.contains("WARN"), "a client's mistake is not a warning: {text}");
}

#[test]
fn client_errors_are_logged_at_debug() {
    let (daemon, log) = start_logged(tempfile::tempdir().unwrap(), &["--cores", "1", "--log-level", "debug"], &[]);
    assert_eq!(get(&daemon, "/files/nothing-here").status, 404);
    drop(daemon);
    let text = log.text();
    let line = text.lines().find(|l| l.contains("client error")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("DEBUG") && line.contains("/files/nothing-here") && line.contains("404"), "{line}");
}

#[test]
fn probes_are_never_cached() {
    let daemon = Daemon::start(&["--cores", "1"]);
    for path in ["/ping", "/health", "/metrics"] {
        assert_eq!(get(&daemon, path).header("Cache-Control"), Some("no-store"), "{path}");
    }
    // The rendered kept-alive /ping too, and HEAD.
    let r = exchange(&daemon, b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
}

#[test]
fn a_browser_finds_a_front_page_and_directories_by_either_name() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("docs")).unwrap();
    std::fs::write(data.path().join("docs/a.txt"), b"a").unwrap();
    let daemon = Daemon::start_in(data, &["--cores", "1"]);
    let home = get(&daemon, "/");
    assert_eq!(home.status, 200);
    assert_eq!(home.header("Content-Type"), Some("text/html; charset=utf-8"));
    let text = String::from_utf8(home.body).unwrap();
    for link in ["href=\"/files/\"", "href=\"/health\"", "href=\"/metrics\"", "curl -T"] {
        assert!(text.contains(link), "{link} in {text}");
    }
    // A directory without its slash redirects to the slash form.
    let moved = get(&daemon, "/files/docs");
    assert_eq!((moved.status, moved.header("Location")), (301, Some("/files/docs/")));
    assert_eq!(get(&daemon, "/files/docs/").status, 200);
    assert_eq!(get(&daemon, "/files/docs/a.txt").body, b"a");
    assert_eq!(get(&daemon, "/files/nothing").status, 404, "a missing path is still 404");
}

#[test]
fn listings_answer_html_to_browsers_and_json_to_the_rest() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("d/sub")).unwrap();
    std::fs::write(data.path().join("d/<b>&\"x\".txt"), b"12345").unwrap();
    std::fs::write(data.path().join("d/ünï.txt"), b"1").unwrap();
    let daemon = Daemon::start_in(data, &["--cores", "1"]);
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = exchange(&daemon, format!("GET /files/d/ HTTP/1.1\r\nHost: t\r\nAccept: {browser}\r\n\r\n").as_bytes());
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("Vary"), Some("Accept"));
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("&lt;b&gt;&amp;&quot;x&quot;.txt") && !text.contains("<b>"), "{text}");
    assert!(text.contains("ünï.txt") && text.contains("href=\"sub/\""), "{text}");
    // curl's */* and an explicit format get JSON; format=html forces HTML.
    let r = exchange(&daemon, b"GET /files/d/ HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let r = exchange(
        &daemon,
        format!("GET /files/d/?format=json HTTP/1.1\r\nHost: t\r\nAccept: {browser}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let r = get(&daemon, "/files/d/?format=html&sort=size");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
}

#[test]
fn the_access_log_in_json_has_the_bytes() {
    let args = ["--cores", "1", "--access-log", "--log-format", "json", "--log-level", "info"];
    let (daemon, log) = start_logged(tempfile::tempdir().unwrap(), &args, &[]);
    assert_eq!(get(&daemon, "/ping").status, 200);
    drop(daemon);
    let text = log.text();
    let line = text.lines().find(|l| l.contains("percore::access")).unwrap_or_else(|| panic!("no access line: {text}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    let fields = &entry["fields"];
    assert_eq!(fields["method"], "GET", "{line}");
    assert_eq!(fields["path"], "/ping", "{line}");
    assert_eq!(fields["status"], 200, "{line}");
    assert!(fields["bytes"].as_u64().is_some_and(|b| b > 5), "the answer's bytes, head included: {line}");
}

#[test]
fn help_says_each_default_once() {
    for command in ["serve", "bench"] {
        let out = Command::new(env!("CARGO_BIN_EXE_percore")).args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{help}");
        for line in help.lines() {
            assert!(line.matches("[default:").count() <= 1, "`percore {command} --help`: {line}");
        }
    }
}
