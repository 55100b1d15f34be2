//! `percore serve` end to end: the real daemon on an ephemeral loopback port,
//! spoken to over real sockets.

use std::io::Write;
use std::time::Duration;

use crate::util::{closed, exchange, get, metric, read_response, write_file, Daemon};

#[test]
fn ping_and_health() {
    let daemon = Daemon::start(&["--cores", "2"]);
    let r = get(&daemon, "/ping");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"pong\n");
    let r = get(&daemon, "/health");
    assert_eq!((r.status, r.body.as_slice()), (200, b"ready\n".as_slice()));
    let r = exchange(&daemon, b"HEAD /ping HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("5")));
    let r = exchange(&daemon, b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
    assert_eq!(get(&daemon, "/nowhere").status, 404);
}

#[test]
fn a_kept_alive_ping_is_rendered_once_a_second_and_counted() {
    // A kept-alive `GET /ping` is sent from an answer rendered once a
    // second; one that closes its connection is built per request.
    let daemon = Daemon::start(&["--cores", "1"]);
    let headers = |r: &crate::util::Response| r.headers_except(&["date", "connection"]);
    let built = exchange(&daemon, b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!((built.status, built.body.as_slice()), (200, b"pong\n".as_slice()));
    let mut stream = daemon.connect();
    let mut ask = || {
        stream.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_response(&mut stream, false).expect("an answer on the kept-alive connection")
    };
    let first = ask();
    let second = ask();
    for r in [&first, &second] {
        assert_eq!((r.status, r.body.as_slice()), (200, b"pong\n".as_slice()));
        assert_eq!(headers(r), headers(&built));
    }
    std::thread::sleep(Duration::from_millis(1100));
    let later = ask();
    assert_eq!((later.status, later.body.as_slice()), (200, b"pong\n".as_slice()));
    assert_ne!(later.header("Date"), first.header("Date"), "the Date header moved on");
    let text = crate::util::metrics(&daemon);
    let pings = crate::util::metric(&text, "percore_requests_total", &["route=\"ping\"", "status=\"200\""]);
    assert_eq!(pings, 4.0, "every ping counted with its status");
}

#[test]
fn files_are_served_with_their_metadata() {
    let daemon = Daemon::start(&[]);
    write_file(daemon.dir(), "docs/readme.txt", b"hello world\n");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    write_file(daemon.dir(), "big.bin", &big);
    let r = get(&daemon, "/files/docs/readme.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    let etag = r.header("ETag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    assert!(r.header("Last-Modified").unwrap().ends_with("GMT"));
    // HEAD: the same head, no body.
    let h = exchange(&daemon, b"HEAD /files/docs/readme.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((h.status, h.header("Content-Length"), h.header("ETag")), (200, Some("12"), Some(etag.as_str())));
    // A large file goes out through splice, byte for byte.
    let r = get(&daemon, "/files/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert!(r.body == big, "large body differs");
    // Percent-encoded names.
    write_file(daemon.dir(), "with space.txt", b"s");
    assert_eq!(get(&daemon, "/files/with%20space.txt").body, b"s");
    assert_eq!(get(&daemon, "/files/missing").status, 404);
    // A directory is not a file: its name without the slash redirects to its
    // listing (issue 14; it was a 404).
    assert_eq!(get(&daemon, "/files/docs").status, 301, "a directory is not a file");
}

#[test]
fn paths_never_leave_the_data_directory() {
    let daemon = Daemon::start(&[]);
    let outside = daemon.dir().parent().unwrap().join(format!("outside-{}", std::process::id()));
    std::fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, daemon.path("abs-link")).unwrap();
    std::os::unix::fs::symlink("../x", daemon.path("rel-link")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", daemon.path("proc-link")).unwrap();
    for (target, status) in [
        ("/files/../x", 400),
        ("/files/a/../../x", 400),
        ("/files/%2e%2e/x", 400),
        ("/files/%2E%2E%2Fx", 400),
        ("/files/a%2f..%2f..%2fx", 400),
        ("/files/..%5cx", 400),
        ("/files/a%00b", 400),
        ("/files//etc/passwd", 400),
        ("/files/abs-link", 404),
        ("/files/rel-link", 404),
        ("/files/proc-link", 404),
        ("/files/.percore-upload", 400),
    ] {
        let r = exchange(&daemon, format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(r.status, status, "{target}");
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"), "{target} leaked");
    }
    std::fs::remove_file(outside).unwrap();
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let daemon = Daemon::start(&[]);
    write_file(daemon.dir(), "a", b"AAAA");
    write_file(daemon.dir(), "b", b"BB");
    let mut stream = daemon.connect();
    for _ in 0..3 {
        stream.write_all(b"GET /files/a HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut stream, false).unwrap().body, b"AAAA");
    }
    // Three requests in one write: three responses, in order.
    stream
        .write_all(b"GET /files/b HTTP/1.1\r\nHost: t\r\n\r\nHEAD /files/a HTTP/1.1\r\nHost: t\r\n\r\nGET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().body, b"BB");
    let head = read_response(&mut stream, true).unwrap();
    assert_eq!(head.header("Content-Length"), Some("4"));
    assert_eq!(read_response(&mut stream, false).unwrap().body, b"pong\n");
    // A body on a GET is skipped, keeping the framing.
    stream.write_all(b"GET /files/b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nxxxxxGET /files/a HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().body, b"BB");
    assert_eq!(read_response(&mut stream, false).unwrap().body, b"AAAA");
    // Connection: close is honoured.
    stream.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let r = read_response(&mut stream, false).unwrap();
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(closed(&mut stream));
}

#[test]
fn malformed_requests_get_their_status_and_a_closed_connection() {
    let daemon = Daemon::start(&["--header-bytes-max", "2048", "--target-bytes-max", "512"]);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 400),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(), 400),
        (b"GET /ping HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n".to_vec(), 400),
        (b"GET /ping HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(600)).into_bytes(), 414),
        (format!("GET /ping HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "b".repeat(3000)).into_bytes(), 431),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 400),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501),
    ];
    for (raw, status) in cases {
        let mut stream = daemon.connect();
        stream.write_all(&raw).unwrap();
        let r = read_response(&mut stream, false).expect("a response");
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&raw[..raw.len().min(80)]));
        assert!(closed(&mut stream), "closed after {status}");
    }
    // Other clients are unaffected.
    assert_eq!(get(&daemon, "/ping").status, 200);
}

#[test]
fn a_slow_head_times_out_with_408() {
    let daemon = Daemon::start(&["--header-timeout-ms", "300"]);
    let mut stream = daemon.connect();
    stream.write_all(b"GET /ping HTTP/1.1\r\nHo").unwrap();
    let r = read_response(&mut stream, false).expect("a 408");
    assert_eq!(r.status, 408);
    assert!(closed(&mut stream));
}

#[test]
fn sigterm_stops_cleanly_with_idle_connections_open() {
    let mut daemon = Daemon::start(&["--cores", "2"]);
    let mut idle = daemon.connect();
    idle.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut idle, false).unwrap().status, 200);
    let status = daemon.terminate(Duration::from_secs(5)).expect("stopped within 5 s");
    assert!(status.success(), "exit status {status:?}");
    assert!(closed(&mut idle));
}

#[test]
fn configuration_from_a_file_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("percore.toml");
    std::fs::write(&file, "cores = \"1\"\nidle-timeout-ms = 5000\n").unwrap();
    let daemon = Daemon::start(&["--config", file.to_str().unwrap()]);
    assert_eq!(get(&daemon, "/ping").status, 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--cores", "0,4096"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CPU 4096 is not in this process's affinity mask"), "{stderr}");
    // SO_REUSEPORT must not let a second daemon share the port silently.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--listen", &daemon.addr.to_string(), "--data-dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already listens there"), "{stderr}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_percore")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--listen", "--data-dir", "--cores", "--header-bytes-max", "--idle-timeout-ms", "--log-format"] {
        assert!(help.contains(flag), "--help documents {flag}");
    }
}

fn request(daemon: &Daemon, method: &str, path: &str, headers: &str) -> crate::util::Response {
    exchange(daemon, format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes())
}

#[test]
fn conditional_reads_answer_304_and_412() {
    let daemon = Daemon::start(&[]);
    write_file(daemon.dir(), "doc.txt", b"content");
    let first = get(&daemon, "/files/doc.txt");
    let (etag, modified) = (first.header("ETag").unwrap(), first.header("Last-Modified").unwrap());
    let r = request(&daemon, "GET", "/files/doc.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((r.status, r.header("ETag"), r.body.len()), (304, Some(etag), 0));
    assert!(r.header("Content-Length").is_none(), "no length on 304");
    assert_eq!(request(&daemon, "GET", "/files/doc.txt", "If-None-Match: \"other\"\r\n").status, 200);
    assert_eq!(request(&daemon, "HEAD", "/files/doc.txt", &format!("If-None-Match: W/{etag}\r\n")).status, 304);
    assert_eq!(request(&daemon, "GET", "/files/doc.txt", &format!("If-Modified-Since: {modified}\r\n")).status, 304);
    let old = "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    assert_eq!(request(&daemon, "GET", "/files/doc.txt", old).status, 200);
    assert_eq!(request(&daemon, "GET", "/files/doc.txt", "If-Match: \"other\"\r\n").status, 412);
    assert_eq!(request(&daemon, "GET", "/files/doc.txt", &format!("If-Match: {etag}\r\n")).status, 200);
    let unmodified_old = "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    assert_eq!(request(&daemon, "GET", "/files/doc.txt", unmodified_old).status, 412);
    let both = format!("If-Match: {etag}\r\n{unmodified_old}");
    assert_eq!(
        request(&daemon, "GET", "/files/doc.txt", &both).status,
        200,
        "If-Unmodified-Since ignored with If-Match"
    );
}

#[test]
fn ranges_single_multiple_and_unsatisfiable() {
    let daemon = Daemon::start(&[]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    write_file(daemon.dir(), "big.bin", &data);
    let r = request(&daemon, "GET", "/files/big.bin", "Range: bytes=10-19\r\n");
    assert_eq!((r.status, r.header("Content-Range")), (206, Some("bytes 10-19/3000000")));
    assert_eq!(r.body, &data[10..20]);
    let r = request(&daemon, "GET", "/files/big.bin", "Range: bytes=-5\r\n");
    assert_eq!(r.body, &data[data.len() - 5..]);
    // A large range goes through splice.
    let r = request(&daemon, "GET", "/files/big.bin", "Range: bytes=1000000-2999999\r\n");
    assert_eq!(r.status, 206);
    assert!(r.body == data[1_000_000..], "large range differs");
    // Several ranges: multipart/byteranges with exact framing.
    let r = request(&daemon, "GET", "/files/big.bin", "Range: bytes=0-3, 100-199, 5-6\r\n");
    assert_eq!(r.status, 206);
    let content_type = r.header("Content-Type").unwrap();
    let boundary = content_type.strip_prefix("multipart/byteranges; boundary=").unwrap();
    // Split the body on the delimiter, as bytes.
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let body = &r.body;
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(at) = body[i..].windows(delimiter.len()).position(|w| w == delimiter.as_slice()) {
        starts.push(i + at);
        i += at + delimiter.len();
    }
    let mut parts = Vec::new();
    for pair in starts.windows(2) {
        let section = &body[pair[0] + delimiter.len()..pair[1]];
        let split = section.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&section[..split]);
        let payload = &section[split + 4..];
        let range = head.lines().find_map(|l| l.strip_prefix("Content-Range: bytes ")).unwrap().to_string();
        let (first, _) = range.split_once('-').unwrap();
        let first: usize = first.parse().unwrap();
        assert_eq!(payload, &data[first..first + payload.len()], "part {range}");
        parts.push((range, payload.len()));
    }
    assert!(body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
    assert_eq!(
        parts,
        vec![("0-3/3000000".to_string(), 4), ("5-6/3000000".to_string(), 2), ("100-199/3000000".to_string(), 100)]
    );
    let r = request(&daemon, "GET", "/files/big.bin", "Range: bytes=5000000-\r\n");
    assert_eq!((r.status, r.header("Content-Range")), (416, Some("bytes */3000000")));
    // If-Range with another version: the whole file.
    let r = request(&daemon, "GET", "/files/big.bin", "Range: bytes=0-9\r\nIf-Range: \"old\"\r\n");
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    let etag = r.header("ETag").unwrap().to_string();
    let r = request(&daemon, "GET", "/files/big.bin", &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..10]));
    // Range is ignored on HEAD, and invalid Range headers are ignored.
    let r = request(&daemon, "HEAD", "/files/big.bin", "Range: bytes=0-9\r\n");
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("3000000")));
    assert_eq!(request(&daemon, "GET", "/files/big.bin", "Range: bytes=9-1\r\n").status, 200);
    assert_eq!(request(&daemon, "GET", "/files/big.bin", "Range: lines=1-2\r\n").status, 200);
}

/// Ranges of a small file served from the cache answer exactly as the file
/// path does (status, Content-Range, Content-Length, bytes; multipart bodies
/// equal up to their boundary). The cached daemon's file is removed after
/// the first GET, so its answers can only come from the cache.
#[test]
fn ranges_of_a_cached_file_answer_as_the_file_path_does() {
    // One shard: the cache is per shard.
    let cached = Daemon::start(&["--cores", "1"]);
    let uncached = Daemon::start(&["--cores", "1", "--cache-bytes-max", "0"]);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let cases = [
        "Range: bytes=10-19\r\n",
        "Range: bytes=-5\r\n",
        "Range: bytes=9990-\r\n",
        "Range: bytes=0-\r\n",
        "Range: bytes=9999-20000\r\n",
        "Range: bytes=0-3, 100-199, 5-6\r\n",
        "Range: bytes=0-3,2-8\r\n",
        "Range: bytes=10000-\r\n",
        "Range: bytes=9-1\r\n",
        "Range: lines=1-2\r\n",
        "Range: bytes=0-9\r\nIf-Range: \"old\"\r\n",
        "Range: bytes=0-9\r\nIf-Range: {etag}\r\n",
        "Range: bytes=0-9\r\nIf-None-Match: {etag}\r\n",
        "Range: bytes=0-9\r\nIf-Match: \"other\"\r\n",
    ];
    let answers = |daemon: &Daemon| {
        let etag = request(daemon, "HEAD", "/files/small.bin", "").header("ETag").unwrap().to_string();
        cases.map(|case| {
            let r = request(daemon, "GET", "/files/small.bin", &case.replace("{etag}", &etag));
            let mut body = r.body.clone();
            let header = |name: &str| r.header(name).map(str::to_string);
            let mut length = header("Content-Length");
            if let Some(boundary) =
                r.header("Content-Type").and_then(|t| t.strip_prefix("multipart/byteranges; boundary="))
            {
                // The boundary is a hash of the ETag, which differs between
                // the two files: compare with it replaced, and the length
                // against this answer's own body.
                assert_eq!(length, Some(body.len().to_string()), "{case:?}: multipart length");
                body = String::from_utf8_lossy(&body).replace(boundary, "BOUNDARY").into_bytes();
                length = Some("(multipart, checked)".into());
            }
            (r.status, header("Content-Range"), length, body)
        })
    };
    write_file(uncached.dir(), "small.bin", &data);
    let from_file = answers(&uncached);
    // Filled, then the file removed: only the cache can answer, for its TTL
    // (2 s; the answers below take milliseconds).
    write_file(cached.dir(), "small.bin", &data);
    assert_eq!(get(&cached, "/files/small.bin").body, data);
    std::fs::remove_file(cached.path("small.bin")).unwrap();
    let filled = std::time::Instant::now();
    let from_cache = answers(&cached);
    assert!(filled.elapsed() < cache_ttl(), "the answers took longer than the cache's TTL: rerun on a quieter machine");
    for ((case, cache), file) in cases.iter().zip(&from_cache).zip(&from_file) {
        assert_eq!(cache, file, "{case:?}");
    }
    let r = request(&cached, "GET", "/files/small.bin", "Range: bytes=100-4195\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[100..4196]), "served from the cache");
}

/// How long the daemon trusts a cache entry (`cache::TTL`).
fn cache_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(2)
}

#[test]
fn directory_listings_are_sorted_paged_and_hide_temporary_files() {
    let daemon = Daemon::start(&[]);
    for name in ["b.txt", "a.txt", "c.log", "sub/inner"] {
        write_file(daemon.dir(), &format!("docs/{name}"), name.as_bytes());
    }
    write_file(daemon.dir(), "docs/.percore-123-0-1", b"upload in progress");
    // Symlinks are not listed (and a page of two skips them, losing no name).
    for link in ["a1.link", "a2.link"] {
        std::os::unix::fs::symlink("a.txt", daemon.dir().join("docs").join(link)).unwrap();
    }
    let r = get(&daemon, "/files/docs/");
    assert_eq!((r.status, r.header("Content-Type")), (200, Some("application/json")));
    let page: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> = page["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.txt", "b.txt", "c.log", "sub"]);
    assert_eq!(page["entries"][0]["size"], 5);
    assert_eq!(page["entries"][0]["is_dir"], false);
    assert_eq!(page["entries"][3]["is_dir"], true);
    assert!(page["next"].is_null());
    // The listing's ETag is the one GET serves.
    let etag = get(&daemon, "/files/docs/a.txt").header("ETag").unwrap().to_string();
    assert_eq!(page["entries"][0]["etag"], etag.as_str());
    let page: serde_json::Value = serde_json::from_slice(&get(&daemon, "/files/docs/?prefix=c").body).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    // Paging: two at a time, following `next`.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(a) => format!("?limit=2&after={a}"),
            None => "?limit=2".to_string(),
        };
        let page: serde_json::Value =
            serde_json::from_slice(&get(&daemon, &format!("/files/docs/{query}")).body).unwrap();
        for e in page["entries"].as_array().unwrap() {
            seen.push(e["name"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["a.txt", "b.txt", "c.log", "sub"]);
    let root: serde_json::Value = serde_json::from_slice(&get(&daemon, "/files/").body).unwrap();
    assert_eq!(root["entries"][0]["name"], "docs");
    assert_eq!(get(&daemon, "/files/nothing/").status, 404);
    assert_eq!(get(&daemon, "/files/docs/a.txt/").status, 404);
    assert_eq!(get(&daemon, "/files/docs/?limit=0").status, 400);
    assert_eq!(get(&daemon, "/files/../").status, 400);
}

/// The HTML listings read as programs that mirror directory pages read
/// nginx's: rclone's http backend copies a tree, names that need encoding
/// and a directory of more than one JSON page (1,200 files) included,
/// byte for byte. It follows no "Next page" link: an HTML page cut at
/// 1,000 entries left 200 files out of its copy, silently. It needs
/// `Accept: text/html` (without, percore lists in JSON).
#[test]
fn rclone_copies_a_tree_from_the_html_listings() {
    let daemon = Daemon::start(&[]);
    let names = [
        "a b/one two.txt",
        "a b/ü ñ/trés.txt",
        "hash#dir/it's \"quoted\".txt",
        "x/<tag>.html",
        "x/pct%41.txt",
        "x/plus+sign",
        "x/q?s=1&t=2",
        "x/semi;colon",
        "x/empty",
    ];
    for (i, name) in names.iter().enumerate() {
        write_file(daemon.dir(), name, &vec![b'a' + i as u8; i * 100]);
    }
    for i in 0..1200 {
        write_file(daemon.dir(), &format!("many/f{i:04}"), format!("file {i}\n").as_bytes());
    }
    let copy = tempfile::tempdir().unwrap();
    let url = format!("http://{}/files/", daemon.addr);
    let out = std::process::Command::new("rclone")
        .args(["copy", "--http-headers", "Accept,text/html", "--http-url", &url, ":http:"])
        .arg(copy.path())
        .output()
        .expect("rclone (.ci/run installs it)");
    assert!(out.status.success(), "rclone copy: {}", String::from_utf8_lossy(&out.stderr));
    crate::s3::same_trees(daemon.dir(), copy.path());
    // A page asked to be smaller still is, and says where the next begins.
    let r = exchange(&daemon, b"GET /files/many/?limit=1000 HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n");
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("?after=f0999&amp;sort=name\">Next page"), "{page}");
    let whole: serde_json::Value =
        serde_json::from_slice(&get(&daemon, "/files/many/?format=json&limit=100000").body).unwrap();
    assert_eq!(whole["entries"].as_array().unwrap().len(), 1200);
    assert_eq!(get(&daemon, "/files/many/?limit=100001").status, 400);
}

#[test]
fn metrics_are_gathered_from_every_shard() {
    let daemon = Daemon::start(&["--cores", "2"]);
    write_file(daemon.dir(), "m.txt", b"metrics");
    for _ in 0..10 {
        assert_eq!(get(&daemon, "/ping").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&daemon, "/files/m.txt").status, 200);
        assert_eq!(get(&daemon, "/files/none").status, 404);
    }
    let r = get(&daemon, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    assert_eq!(metric(&text, "percore_requests_total", &["route=\"ping\"", "status=\"200\""]), 10.0, "{text}");
    assert_eq!(metric(&text, "percore_requests_total", &["route=\"files\"", "status=\"200\""]), 3.0);
    assert_eq!(metric(&text, "percore_requests_total", &["route=\"files\"", "status=\"404\""]), 3.0);
    assert!(metric(&text, "percore_request_duration_seconds_count", &[]) >= 16.0);
    assert!(metric(&text, "percore_sent_bytes_total", &[]) > 0.0);
    assert!(metric(&text, "percore_received_bytes_total", &[]) > 0.0);
    assert!(metric(&text, "percore_io_cqes_reaped_total", &["shard=\"0\""]) > 0.0);
    assert!(metric(&text, "percore_io_cqes_reaped_total", &["shard=\"1\""]) > 0.0, "every shard reports");
    // The earlier connections were closed by the server after their response,
    // which the client can read before the closing shard has counted the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = String::from_utf8(get(&daemon, "/metrics").body).unwrap();
        let open = metric(&text, "percore_open_connections", &[]);
        if open == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{open} open connections, not just the /metrics one's: {text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let guarded = Daemon::start(&["--read-token", "r"]);
    assert_eq!(get(&guarded, "/metrics").status, 401);
}

#[test]
fn each_answer_is_counted_with_its_own_status_while_others_interleave() {
    // One shard: a large GET whose send waits for a reader that has not
    // started reading, while 404s are answered on other connections.
    let daemon = Daemon::start(&["--cores", "1"]);
    let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    write_file(daemon.dir(), "big.bin", &big);
    let mut slow = daemon.connect();
    slow.write_all(b"GET /files/big.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        assert_eq!(get(&daemon, "/files/none").status, 404);
    }
    let r = read_response(&mut slow, false).expect("the large answer");
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    // Counted when the last byte went out: the next scrape sees it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = crate::util::metrics(&daemon);
        let ok = metric(&text, "percore_requests_total", &["route=\"files\"", "status=\"200\""]);
        let missing = metric(&text, "percore_requests_total", &["route=\"files\"", "status=\"404\""]);
        if ok + missing == 6.0 {
            assert_eq!((ok, missing), (1.0, 5.0), "the large answer counted as a 200, not as the last head built");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn systemd_readiness_and_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &["--access-log", "--log-level", "info", "--log-format", "json"],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
        Some(log),
    );
    let mut message = [0u8; 64];
    let n = socket.recv(&mut message).unwrap();
    assert_eq!(&message[..n], b"READY=1");
    assert_eq!(get(&daemon, "/ping").status, 200);
    assert!(daemon.terminate(Duration::from_secs(5)).unwrap().success());
    let n = socket.recv(&mut message).unwrap();
    assert_eq!(&message[..n], b"STOPPING=1");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "percore::access")
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    assert_eq!(access[0]["fields"]["path"], "/ping");
    assert_eq!(access[0]["fields"]["status"], 200);
    assert!(access[0]["fields"]["node"].as_str().is_some_and(|n| !n.is_empty()), "the node is named: {log}");
}

#[test]
fn a_request_in_flight_at_sigterm_completes() {
    let mut daemon = Daemon::start(&["--cores", "2"]);
    let mut stream = daemon.connect();
    stream.write_all(b"PUT /files/late HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-").unwrap();
    // The upload is under way (its temporary file exists) when the stop comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(daemon.dir()).unwrap().next().is_none() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    daemon.signal_term();
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(b"done!").unwrap();
    let r = read_response(&mut stream, false).unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Connection"), Some("close"), "no keep-alive while stopping");
    assert!(daemon.terminate(Duration::from_secs(5)).unwrap().success());
    assert_eq!(std::fs::read(daemon.path("late")).unwrap(), b"half-done!");
}

/// Out of file descriptors is a 503 with Retry-After, and service resumes.
/// Needs the daemon built with io's fault seam (`--all-features`, as the
/// README's test command does).
#[cfg(feature = "fault-injection")]
#[test]
fn out_of_file_descriptors_is_a_503_with_retry_after() {
    // One shard: its first open is the data directory at start-up; the
    // second (the first GET's) fails with EMFILE.
    let daemon = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &["--cores", "1", "--cache-bytes-max", "0"],
        &[("PERCORE_FAULTS", "open=EMFILE:1@1")],
        None,
    );
    write_file(daemon.dir(), "f", b"data");
    let r = get(&daemon, "/files/f");
    assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
    assert_eq!(get(&daemon, "/files/f").body, b"data", "service resumes");
}

#[test]
fn health_reports_draining_before_the_stop() {
    let mut daemon = Daemon::start(&["--drain-ms", "600"]);
    assert_eq!(get(&daemon, "/health").body, b"ready\n");
    daemon.signal_term();
    std::thread::sleep(Duration::from_millis(100));
    let r = get(&daemon, "/health");
    assert_eq!((r.status, r.body.as_slice()), (503, b"draining\n".as_slice()));
    assert_eq!(get(&daemon, "/ping").status, 200, "still serving while draining");
    assert!(daemon.terminate(Duration::from_secs(5)).unwrap().success());
}

#[test]
fn a_stalled_body_times_out_with_408_and_nothing_is_stored() {
    let daemon = Daemon::start(&["--body-timeout-ms", "300"]);
    let mut stream = daemon.connect();
    stream.write_all(b"PUT /files/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a bit").unwrap();
    let start = std::time::Instant::now();
    let r = read_response(&mut stream, false).expect("a 408");
    assert_eq!(r.status, 408);
    assert!(start.elapsed() < Duration::from_secs(3), "the body timeout (300 ms) applied, not another");
    assert!(closed(&mut stream));
    assert_eq!(get(&daemon, "/files/slow").status, 404);
}

#[test]
fn environment_variables_configure_the_daemon() {
    // PERCORE_HEADER_TIMEOUT_MS from the environment (no flag sets it).
    let daemon = Daemon::start_with(tempfile::tempdir().unwrap(), &[], &[("PERCORE_HEADER_TIMEOUT_MS", "200")], None);
    let mut stream = daemon.connect();
    stream.write_all(b"GET /ping HTTP/1.1\r\n").unwrap();
    let start = std::time::Instant::now();
    assert_eq!(read_response(&mut stream, false).unwrap().status, 408);
    assert!(start.elapsed() < Duration::from_secs(5), "the 200 ms from the environment applied");
}

/// An EMFILE that ends the multishot accept is retried after a back-off, and
/// service resumes (no crash, no busy loop); the repeated warning is logged
/// once, not once per retry (issue 14: 1,371 identical lines in 7 s).
#[cfg(feature = "fault-injection")]
#[test]
fn accept_failures_back_off_and_recover() {
    for errno in ["EMFILE", "ENFILE"] {
        let started = std::time::Instant::now();
        let faults = format!("accept={errno}:30");
        let (daemon, log) =
            crate::util::start_logged(tempfile::tempdir().unwrap(), &["--cores", "1"], &[("PERCORE_FAULTS", &faults)]);
        // Service resumes once the failures stop, and not before 30 retries
        // 10 ms apart have passed (a busy loop would be done in microseconds).
        assert_eq!(get(&daemon, "/ping").status, 200, "{errno}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{errno}: 30 retries within {waited:?}: a busy loop");
        let text = log.text();
        let lines = text.lines().filter(|l| l.contains("accept failed")).count();
        assert_eq!(lines, 1, "{errno}: one line for 30 identical failures: {text}");
    }
}

/// A cached file's plain GET on a kept-alive connection is answered from a
/// rendering shared within a second: the same answer, header for header, as
/// the file path gives, and a `Date` that moves on with the clock.
#[test]
fn a_cached_plain_get_answers_as_the_file_path_does() {
    let cached = Daemon::start(&["--cores", "1"]);
    let uncached = Daemon::start(&["--cores", "1", "--cache-bytes-max", "0"]);
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    for daemon in [&cached, &uncached] {
        write_file(daemon.dir(), "page.html", &data);
    }
    // Status, headers but Date and ETag (the inodes differ), body, Date, ETag.
    type Answer = (u16, Vec<(String, String)>, Vec<u8>, Option<String>, Option<String>);
    let answer = |daemon: &Daemon| -> Answer {
        let mut stream = daemon.connect();
        stream.write_all(b"GET /files/page.html HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut stream, false).unwrap();
        let headers = r.headers_except(&["date", "etag"]);
        let (date, etag) = (r.header("Date").map(str::to_string), r.header("ETag").map(str::to_string));
        (r.status, headers, r.body, date, etag)
    };
    let from_file = answer(&uncached);
    let etag = request(&cached, "HEAD", "/files/page.html", "").header("ETag").map(str::to_string);
    assert!(etag.is_some());
    for round in 0..2 {
        let a = answer(&cached);
        assert_eq!((a.0, &a.1), (from_file.0, &from_file.1), "round {round}");
        assert!(a.2 == data, "round {round}: the body");
        assert_eq!(a.4, etag, "round {round}: the cached file's ETag");
    }
    // A second later (within the cache's TTL), a new Date.
    let first = answer(&cached);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let later = answer(&cached);
    assert!(later.2 == data);
    assert_ne!(later.3, first.3, "the Date header moved on");
}
