//! Hostile HTTP: a table of malformed, ambiguous and smuggling requests and
//! path tricks. Each gets its documented status; where the request cannot be
//! framed the connection closes; nothing is written anywhere (inside the
//! data directory or out of it); other clients are served throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::util::{get, read_response, Daemon};

/// What a case must get.
#[derive(Clone, Copy, Debug)]
enum Close {
    /// The connection must close after the answer (framing lost or refused).
    Must,
    /// The connection may stay open (the request was framed).
    May,
}

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    status: u16,
    close: Close,
}

fn case(name: &'static str, raw: impl Into<Vec<u8>>, status: u16, close: Close) -> Case {
    Case { name, raw: raw.into(), status, close }
}

fn get_target(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn put_target(target: &str) -> Vec<u8> {
    format!("PUT {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nevil").into_bytes()
}

fn head_with(header: &str) -> Vec<u8> {
    format!("GET /ping HTTP/1.1\r\nHost: t\r\n{header}\r\n\r\n").into_bytes()
}

fn put_with(headers: &str, body: &str) -> Vec<u8> {
    format!("PUT /files/up HTTP/1.1\r\nHost: t\r\n{headers}\r\n{body}").into_bytes()
}

fn corpus() -> Vec<Case> {
    use Close::{May, Must};
    vec![
        // Framing and smuggling (RFC 9112 §6).
        case(
            "CL and TE",
            put_with("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "4\r\nevil\r\n0\r\n\r\n"),
            400,
            Must,
        ),
        case(
            "TE and CL",
            put_with("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "4\r\nevil\r\n0\r\n\r\n"),
            400,
            Must,
        ),
        case("differing duplicate CL", put_with("Content-Length: 4\r\nContent-Length: 5\r\n", "evil!"), 400, Must),
        case("CL list that differs", put_with("Content-Length: 4, 5\r\n", "evil!"), 400, Must),
        case("negative CL", put_with("Content-Length: -4\r\n", "evil"), 400, Must),
        case("CL with a plus", put_with("Content-Length: +4\r\n", "evil"), 400, Must),
        case("hex CL", put_with("Content-Length: 0x4\r\n", "evil"), 400, Must),
        case("CL with inner space", put_with("Content-Length: 1 0\r\n", "evilevilev"), 400, Must),
        case("overflowing CL", put_with("Content-Length: 99999999999999999999999\r\n", "evil"), 400, Must),
        case("empty CL", put_with("Content-Length: \r\n", "evil"), 400, Must),
        case("CL above the body limit", put_with("Content-Length: 1099511627776\r\n", "evil"), 413, Must),
        case("bad chunk size", put_with("Transfer-Encoding: chunked\r\n", "zz\r\nevil\r\n0\r\n\r\n"), 400, Must),
        case("negative chunk size", put_with("Transfer-Encoding: chunked\r\n", "-4\r\nevil\r\n0\r\n\r\n"), 400, Must),
        case(
            "overflowing chunk size",
            put_with("Transfer-Encoding: chunked\r\n", "fffffffffffffffff1\r\nevil\r\n0\r\n\r\n"),
            400,
            Must,
        ),
        case("chunk size with space", put_with("Transfer-Encoding: chunked\r\n", " 4\r\nevil\r\n0\r\n\r\n"), 400, Must),
        case(
            "chunk longer than its size",
            put_with("Transfer-Encoding: chunked\r\n", "2\r\nevil\r\n0\r\n\r\n"),
            400,
            Must,
        ),
        case(
            "chunk size line with bare LF",
            put_with("Transfer-Encoding: chunked\r\n", "4\nevil\r\n0\r\n\r\n"),
            400,
            Must,
        ),
        case(
            "chunk extension with bare CR",
            put_with("Transfer-Encoding: chunked\r\n", "4;a\rb\r\nevil\r\n0\r\n\r\n"),
            400,
            Must,
        ),
        case(
            "oversized chunk extension",
            put_with("Transfer-Encoding: chunked\r\n", &format!("4;{}\r\nevil\r\n0\r\n\r\n", "x".repeat(5000))),
            400,
            Must,
        ),
        case(
            "endless trailers",
            put_with("Transfer-Encoding: chunked\r\n", &format!("0\r\n{}\r\n", "X-T: v\r\n".repeat(3000))),
            400,
            Must,
        ),
        case(
            "chunk extension on a GET",
            b"GET /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nevil\r\n0\r\n\r\n".to_vec(),
            200,
            Must,
        ),
        case("chunked not last", put_with("Transfer-Encoding: chunked, gzip\r\n", "4\r\nevil\r\n0\r\n\r\n"), 400, Must),
        case("chunked twice", put_with("Transfer-Encoding: chunked, chunked\r\n", "4\r\nevil\r\n0\r\n\r\n"), 400, Must),
        case("unknown coding", put_with("Transfer-Encoding: gzip, chunked\r\n", "4\r\nevil\r\n0\r\n\r\n"), 501, Must),
        case("identity coding", put_with("Transfer-Encoding: identity\r\n", "evil"), 400, Must),
        case(
            "TE in HTTP/1.0",
            b"PUT /files/up HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nevil\r\n0\r\n\r\n".to_vec(),
            400,
            Must,
        ),
        case("TE with obs-fold", put_with("Transfer-Encoding:\r\n chunked\r\n", "4\r\nevil\r\n0\r\n\r\n"), 400, Must),
        case("Expect that is not 100-continue", put_with("Content-Length: 4\r\nExpect: 200-ok\r\n", "evil"), 417, Must),
        // Header syntax.
        case("obs-fold", head_with("X-A: a\r\n b"), 400, Must),
        case("space before colon", head_with("X-A : a"), 400, Must),
        case("space in name", head_with("X A: a"), 400, Must),
        case("empty name", head_with(": a"), 400, Must),
        case("no colon", head_with("X-A a"), 400, Must),
        case("bare CR in value", head_with("X-A: a\rb"), 400, Must),
        case("NUL in value", head_with("X-A: a\0b"), 400, Must),
        case("control byte in value", head_with("X-A: a\x01b"), 400, Must),
        case("DEL in name", head_with("X\x7fA: a"), 400, Must),
        case("non-ASCII name", head_with("X-\u{e9}: a"), 400, Must),
        case("no Host in HTTP/1.1", b"GET /ping HTTP/1.1\r\n\r\n".to_vec(), 400, Must),
        case("two Hosts", head_with("Host: u"), 400, Must),
        case("oversize header", head_with(&format!("X-A: {}", "b".repeat(3000))), 431, Must),
        case(
            "too many headers",
            head_with(&(0..200).map(|i| format!("X-{i}: v")).collect::<Vec<_>>().join("\r\n")),
            431,
            Must,
        ),
        // Request line.
        case("invalid method token", b"G@T /ping HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        case("lower-case method", b"get /ping HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 501, Must),
        case("unknown method", b"BREW /ping HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 501, Must),
        case("PATCH on a file", b"PATCH /files/up HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".to_vec(), 405, May),
        case("POST to ping", b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".to_vec(), 405, May),
        case(
            "very long method",
            format!("{} /ping HTTP/1.1\r\nHost: t\r\n\r\n", "A".repeat(600)).into_bytes(),
            501,
            Must,
        ),
        case("HTTP/2.0", b"GET /ping HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505, Must),
        case("HTTP/1.2", b"GET /ping HTTP/1.2\r\nHost: t\r\n\r\n".to_vec(), 505, Must),
        case("garbage version", b"GET /ping HTTP/x\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        case("lower-case version", b"GET /ping http/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        case("HTTP/0.9 line", b"GET /ping\r\n\r\n".to_vec(), 400, Must),
        case("two spaces", b"GET  /ping HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        case("tab separator", b"GET\t/ping HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        case("bare LF request", b"GET /ping HTTP/1.1\nHost: t\n\n".to_vec(), 200, May),
        case("leading empty line", b"\r\nGET /ping HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 200, May),
        case("oversize target", get_target(&format!("/files/{}", "a".repeat(600))), 414, Must),
        case("NUL in the line", b"GET /fi\0les HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        case("space in target", b"GET /files/a b HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, Must),
        // Target forms (RFC 9112 §3.2).
        case("absolute-form", get_target("http://t/ping"), 200, May),
        case("absolute-form to a file", get_target("http://t/files/inside.txt"), 200, May),
        case("absolute-form with traversal", get_target("http://t/files/../x"), 400, May),
        case("authority-form", b"CONNECT t:80 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 501, Must),
        case("asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 501, Must),
        case("relative target", get_target("files/inside.txt"), 400, Must),
        case("fragment", get_target("/files/inside.txt#x"), 400, May),
        // Paths out of the data directory, or not plain.
        case("dot-dot", get_target("/files/../OUT/secret.txt"), 400, May),
        case("dot-dot inside", get_target("/files/a/../../OUT/secret.txt"), 400, May),
        case("encoded dot-dot", get_target("/files/%2e%2e/OUT/secret.txt"), 400, May),
        case("upper-case encoded dot-dot", get_target("/files/%2E%2E/OUT/secret.txt"), 400, May),
        case("mixed encoded dot-dot", get_target("/files/.%2e/OUT/secret.txt"), 400, May),
        case("encoded slash", get_target("/files/a%2fb"), 400, May),
        case("encoded slash and dots", get_target("/files/..%2foutside%2fsecret.txt"), 400, May),
        case("double-encoded dots", get_target("/files/%252e%252e/OUT/secret.txt"), 404, May),
        case("backslash", get_target("/files/..\\outside\\secret.txt"), 400, May),
        case("encoded backslash", get_target("/files/..%5coutside%5csecret.txt"), 400, May),
        case("dot segment", get_target("/files/./inside.txt"), 400, May),
        case("empty segment", get_target("/files//inside.txt"), 400, May),
        case("absolute path", get_target("/files//etc/passwd"), 400, May),
        case("encoded NUL", get_target("/files/inside.txt%00.jpg"), 400, May),
        case("bad percent", get_target("/files/%zz"), 400, May),
        case("truncated percent", get_target("/files/a%2"), 400, May),
        case("overlong UTF-8 dot", get_target("/files/%c0%ae%c0%ae/OUT/secret.txt"), 400, May),
        case("name too long", get_target(&format!("/files/{}", "n".repeat(300))), 400, May),
        case("symlink out (absolute)", get_target("/files/link-out"), 404, May),
        case("symlink out (relative)", get_target("/files/link-rel"), 404, May),
        case("symlink dir out", get_target("/files/linkdir/secret.txt"), 404, May),
        case("symlink to /proc", get_target("/files/link-proc"), 404, May),
        case("temp name", get_target("/files/.percore-1-0-1"), 400, May),
        // Writes that must land nowhere.
        // (A refused PUT's small body is read: the connection may go on.)
        case("PUT dot-dot", put_target("/files/../outside/evil"), 400, May),
        case("PUT encoded dot-dot", put_target("/files/%2e%2e/outside/evil"), 400, May),
        case("PUT through a symlinked dir", put_target("/files/linkdir/evil"), 400, May),
        case("PUT over a symlink out", put_target("/files/link-out"), 409, May),
        case("PUT a temp name", put_target("/files/.percore-evil"), 400, May),
        case("PUT the root", put_target("/files/"), 400, May),
        case("PUT a directory name", put_target("/files/dir/"), 400, May),
        case("PUT outside /files", put_target("/evil"), 404, May),
        case("DELETE dot-dot", b"DELETE /files/../OUT/secret.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400, May),
        case(
            "DELETE through a symlink",
            b"DELETE /files/linkdir/secret.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            404,
            May,
        ),
    ]
}

/// Sends `raw`, reads one answer; returns it and whether the server then
/// closed the connection.
fn run(daemon: &Daemon, raw: &[u8], close: Close) -> (Option<u16>, bool) {
    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before reading all of it.
    let _ = stream.write_all(raw);
    let status = read_response(&mut stream, false).map(|r| r.status);
    if matches!(close, Close::May) {
        return (status, false);
    }
    // Closed: end of stream (or a reset) within a second; no more data.
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    (status, closed)
}

/// Every file under `dir`, as sorted relative paths (symlinks not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_requests_get_their_status_and_change_nothing() {
    // The data directory and, beside it, a directory that must stay out of
    // reach (both temporary, both checked afterwards).
    let (data, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (d, o) = (data.path(), outside.path());
    std::fs::create_dir_all(d.join("dir")).unwrap();
    std::fs::write(o.join("secret.txt"), b"secret").unwrap();
    std::fs::write(d.join("inside.txt"), b"inside").unwrap();
    std::os::unix::fs::symlink(o.join("secret.txt"), d.join("link-out")).unwrap();
    let outside_name = o.file_name().unwrap().to_str().unwrap().to_string();
    std::os::unix::fs::symlink(format!("../{outside_name}/secret.txt"), d.join("link-rel")).unwrap();
    std::os::unix::fs::symlink(o, d.join("linkdir")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", d.join("link-proc")).unwrap();
    let before = (tree(d), tree(o));
    let daemon = Daemon::start_in(data, &["--header-bytes-max", "2048", "--target-bytes-max", "512"]);
    let cases = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        // Traversals aim at the real directory beside the data directory.
        let raw = String::from_utf8(c.raw.clone()).unwrap().replace("OUT", &outside_name);
        let (status, closed) = run(&daemon, raw.as_bytes(), c.close);
        let close_ok = closed || matches!(c.close, Close::May);
        if status != Some(c.status) || !close_ok {
            failures.push(format!("{}: got {status:?} closed={closed}, want {} {:?}", c.name, c.status, c.close));
        }
        // Other clients are unaffected, case by case.
        assert_eq!(get(&daemon, "/ping").status, 200, "after {}", c.name);
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!((tree(daemon.dir()), tree(outside.path())), before, "nothing was written, inside or out");
    assert_eq!(std::fs::read(outside.path().join("secret.txt")).unwrap(), b"secret");
}
