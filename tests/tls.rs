//! HTTPS as users reach it: curl, `openssl s_client`, Python's `ssl`, and
//! a rustls client; TLS 1.3 and 1.2, certificates by SNI, resumption on any
//! shard, reloads on SIGHUP, and the hostile side (plain HTTP to the TLS
//! port, garbage, truncated and oversized records, stalled handshakes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::tls::{self, Key, Pki};
use crate::util::{metric, metrics, write_file, Daemon};

/// A daemon serving HTTPS (and plain HTTP, for /metrics) with `pki`'s
/// certificate for localhost.
fn https_daemon(pki: &Pki, extra: &[&str]) -> Daemon {
    let (crt, key) = pki.issue("localhost", &["localhost"], Key::Ecdsa);
    let mut args = vec!["--listen-tls", "127.0.0.1:0", "--tls-cert", crt.to_str().unwrap()];
    args.extend(["--tls-key", key.to_str().unwrap()]);
    args.extend(extra);
    Daemon::start(&args)
}

fn tls_addr(daemon: &Daemon) -> SocketAddr {
    daemon.tls_addr.expect("an https:// address in the start-up line")
}

/// Runs `openssl s_client` against `addr` with `args`, feeding it `input`
/// (then holding its input open briefly, so that it reads what arrives);
/// returns everything it printed.
fn s_client(addr: SocketAddr, args: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("curl is installed");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn resolve(addr: SocketAddr) -> String {
    format!("localhost:{}:127.0.0.1", addr.port())
}

#[test]
fn curl_openssl_python_and_rustls_speak_tls13_and_tls12() {
    let pki = Pki::new();
    let daemon = https_daemon(&pki, &["--cores", "2"]);
    let addr = tls_addr(&daemon);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    write_file(daemon.dir(), "f.txt", b"over tls");
    let url = format!("https://localhost:{}/files/f.txt", addr.port());
    let (ok, text) = curl(&["--cacert", ca, "--resolve", &resolve(addr), &url]);
    assert!(ok && text == "over tls", "curl GET: {text}");
    // An upload over HTTPS lands on disk.
    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), b"uploaded over tls").unwrap();
    let put_url = format!("https://localhost:{}/files/up.txt", addr.port());
    let (ok, text) =
        curl(&["--cacert", ca, "--resolve", &resolve(addr), "-T", body.path().to_str().unwrap(), "-f", &put_url]);
    assert!(ok, "curl PUT: {text}");
    assert_eq!(std::fs::read(daemon.path("up.txt")).unwrap(), b"uploaded over tls");
    // Both versions, verified, serving a request; nothing older.
    let get = "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for (flag, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let out = s_client(addr, &[flag, "-servername", "localhost", "-CAfile", ca], get);
        assert!(out.contains(&format!("Protocol  : {name}")) || out.contains(&format!("New, {name}")), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)") && out.contains("pong"), "{flag}: {out}");
    }
    let old = s_client(addr, &["-tls1_1", "-servername", "localhost"], "");
    assert!(!old.contains("pong") && (old.contains("Cipher is (NONE)") || old.contains("alert")), "TLS 1.1: {old}");
    // No suite without forward secrecy or with CBC.
    let weak = s_client(addr, &["-tls1_2", "-cipher", "AES128-SHA", "-servername", "localhost"], "");
    assert!(weak.contains("Cipher is (NONE)") || weak.contains("alert"), "a weak suite was accepted: {weak}");
    // Python's ssl module, the default context (verifying, modern).
    let script = format!(
        "import ssl, urllib.request\nctx = ssl.create_default_context(cafile='{ca}')\nprint(urllib.request.urlopen('{url}', context=ctx).read().decode(), end='')"
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls", "{}", String::from_utf8_lossy(&out.stderr));
    // rustls: keep-alive, a large file (read and sealed in pieces), a range.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    write_file(daemon.dir(), "big", &big);
    let client = tls::client(&pki.ca());
    let mut stream = tls::connect(addr, &client, "localhost");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN http/1.1");
    for _ in 0..3 {
        let whole = tls::exchange(&mut stream, b"GET /files/big HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(whole.status == 200 && whole.body == big, "a 3 MB file over TLS");
    }
    let part = tls::exchange(&mut stream, b"GET /files/big HTTP/1.1\r\nHost: t\r\nRange: bytes=100000-199999\r\n\r\n");
    assert_eq!((part.status, &part.body[..]), (206, &big[100_000..200_000]));
    let head = tls::exchange(&mut stream, b"HEAD /files/big HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.header("content-length"), Some("3000000"));
}

#[test]
fn certificates_by_sni_rsa_and_ecdsa_and_unknown_names() {
    let pki = Pki::new();
    let (a_crt, a_key) = pki.issue("a", &["a.test"], Key::Ecdsa);
    let (b_crt, b_key) = pki.issue("b", &["b.test", "*.b.test"], Key::Rsa);
    let files = |p: &Path| p.to_str().unwrap().to_string();
    let args = |unknown: &str| {
        vec![
            "--listen-tls".to_string(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            files(&a_crt),
            "--tls-key".into(),
            files(&a_key),
            "--tls-cert".into(),
            files(&b_crt),
            "--tls-key".into(),
            files(&b_key),
            "--tls-unknown-sni".into(),
            unknown.into(),
        ]
    };
    let leaf = |path: &Path| {
        let pem = std::fs::read(path).unwrap();
        let first = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem).next().unwrap();
        let der: rustls::pki_types::CertificateDer = first.unwrap();
        der.to_vec()
    };
    let client = tls::client(&pki.ca());
    let owned = args("default");
    let daemon = Daemon::start(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    let addr = tls_addr(&daemon);
    assert_eq!(tls::presented(&tls::connect(addr, &client, "a.test")), leaf(&a_crt), "ECDSA for a.test");
    let mut b = tls::connect(addr, &client, "b.test");
    assert_eq!(tls::presented(&b), leaf(&b_crt), "RSA for b.test");
    assert_eq!(tls::exchange(&mut b, b"GET /ping HTTP/1.1\r\nHost: b.test\r\n\r\n").status, 200);
    assert_eq!(tls::presented(&tls::connect(addr, &client, "x.b.test")), leaf(&b_crt), "the wildcard");
    // An unknown name gets the default certificate (which the client then
    // rejects for the name: that is the client's call).
    let out = s_client(addr, &["-servername", "unknown.test"], "");
    assert!(!out.contains("Cipher is (NONE)"), "a certificate was offered: {out}");
    // s_client prints the server's certificate: it must be the default (a's).
    let offered = rustls::pki_types::pem::PemObject::pem_slice_iter(out.as_bytes())
        .next()
        .unwrap_or_else(|| panic!("no certificate in {out}"));
    let offered: rustls::pki_types::CertificateDer = offered.unwrap();
    assert_eq!(offered.to_vec(), leaf(&a_crt), "an unknown name gets the default certificate, a's");
    drop(daemon);
    let owned = args("refuse");
    let daemon = Daemon::start(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    let addr = tls_addr(&daemon);
    let out = s_client(addr, &["-servername", "unknown.test"], "");
    assert!(out.contains("alert") || out.contains("Cipher is (NONE)"), "an unknown name is refused: {out}");
    assert_eq!(tls::presented(&tls::connect(addr, &client, "a.test")), leaf(&a_crt), "known names still work");
}

#[test]
fn tickets_resume_on_any_shard_tls13_and_tls12() {
    let pki = Pki::new();
    let daemon = https_daemon(&pki, &["--cores", "2"]);
    let addr = tls_addr(&daemon);
    let ca = pki.ca();
    let sessions = tempfile::tempdir().unwrap();
    let mut resumed = 0;
    for version in ["-tls1_3", "-tls1_2"] {
        let file = sessions.path().join(version);
        let file = file.to_str().unwrap();
        let common = [version, "-servername", "localhost", "-CAfile", ca.to_str().unwrap()];
        let first = s_client(addr, &[&common[..], &["-sess_out", file]].concat(), "");
        assert!(first.contains("New, TLSv1"), "{first}");
        // Several resumptions: with two shards and the kernel spreading
        // connections, they land on both (a per-shard cache would miss).
        for _ in 0..4 {
            let again = s_client(addr, &[&common[..], &["-sess_in", file]].concat(), "");
            assert!(again.contains("Reused, TLSv1"), "{version} resumption: {again}");
            resumed += 1;
        }
    }
    let text = metrics(&daemon);
    let counted: f64 = (0..2)
        .map(|s| metric(&text, "percore_tls_handshakes_total", &[&format!("shard=\"{s}\""), "result=\"resumed\""]))
        .sum();
    assert_eq!(counted, resumed as f64, "{text}");
}

#[test]
fn rotated_ticket_keys_reach_every_shard_and_old_tickets_expire() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("localhost", &["localhost"], Key::Ecdsa);
    let args = ["--cores", "2", "--listen-tls", "127.0.0.1:0", "--tls-cert", crt.to_str().unwrap(), "--tls-key"];
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let daemon = Daemon::start_with(
        data,
        &[&args[..], &[key.to_str().unwrap()]].concat(),
        &[("PERCORE_TEST_TICKET_ROTATE_MS", "3000")],
        None,
    );
    let addr = tls_addr(&daemon);
    let ca = pki.ca();
    let sessions = tempfile::tempdir().unwrap();
    let file = sessions.path().join("session");
    let common = ["-tls1_3", "-servername", "localhost", "-CAfile", ca.to_str().unwrap()];
    let with = |flag: &'static str| [&common[..], &[flag, file.to_str().unwrap()]].concat();
    // A ticket sealed under the first key (rotations come 3 s, 6 s… after
    // start: the first must be done before the first rotation).
    let first = s_client(addr, &with("-sess_out"), "");
    assert!(first.contains("New, TLSv1.3"), "{first}");
    assert!(started.elapsed() < Duration::from_millis(2700), "too slow to test the rotation: {:?}", started.elapsed());
    let at = |ms: u64| {
        if let Some(wait) = Duration::from_millis(ms).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    };
    // After one rotation, on both shards: the previous key still opens it.
    at(3400);
    for _ in 0..2 {
        let again = s_client(addr, &with("-sess_in"), "");
        assert!(again.contains("Reused, TLSv1.3"), "one rotation later: {again}");
    }
    assert!(started.elapsed() < Duration::from_millis(5700), "too slow: {:?}", started.elapsed());
    // After two, no shard opens it: a full handshake.
    at(6900);
    let late = s_client(addr, &with("-sess_in"), "");
    assert!(late.contains("New, TLSv1.3"), "two rotations later the ticket must be refused: {late}");
}

#[test]
fn sighup_reloads_certificates_keeps_connections_and_a_bad_file_keeps_the_old() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("live", &["localhost"], Key::Ecdsa);
    let data = tempfile::tempdir().unwrap();
    let args = ["--listen-tls", "127.0.0.1:0", "--tls-cert", crt.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let (daemon, log) = crate::util::start_logged(data, &args, &[("PERCORE_LOG_LEVEL", "info")]);
    let addr = tls_addr(&daemon);
    let client = tls::client(&pki.ca());
    let mut open = tls::connect(addr, &client, "localhost");
    let first = tls::presented(&open);
    // A new certificate in the same files, then SIGHUP.
    let (new_crt, new_key) = pki.issue("next", &["localhost"], Key::Rsa);
    std::fs::copy(&new_crt, &crt).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let hup = || assert!(Command::new("kill").args(["-HUP", &daemon.pid().to_string()]).status().unwrap().success());
    hup();
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log.text().contains(what) {
            assert!(Instant::now() < deadline, "no {what:?} in the log: {}", log.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("reloaded 1 TLS certificate");
    std::thread::sleep(Duration::from_millis(100));
    let second = tls::presented(&tls::connect(addr, &client, "localhost"));
    assert_ne!(second, first, "new handshakes get the new certificate");
    assert_eq!(
        tls::exchange(&mut open, b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200,
        "the open connection stays"
    );
    // A broken file: the certificate in use stays, and the log says why.
    std::fs::write(&crt, b"not a certificate").unwrap();
    hup();
    wait_for("the certificates in use stay");
    assert!(log.text().contains(crt.to_str().unwrap()), "the bad file is named: {}", log.text());
    assert_eq!(tls::presented(&tls::connect(addr, &client, "localhost")), second, "still the last good one");
}

#[test]
fn self_signed_development_mode_prints_its_fingerprint_and_file() {
    let daemon = Daemon::start(&["--tls-self-signed", "--listen-tls", "127.0.0.1:0"]);
    let note = daemon.notes.join("");
    let file = note.split("written to ").nth(1).and_then(|s| s.split(' ').next()).expect(&note).to_string();
    let fingerprint = note.split("fingerprint ").nth(1).and_then(|s| s.split(';').next()).expect(&note).to_string();
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{note}");
    let client = tls::client(Path::new(&file));
    let stream = tls::connect(tls_addr(&daemon), &client, "localhost");
    let der = tls::presented(&stream);
    let openssl =
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in", &file]).output().unwrap();
    let printed = String::from_utf8_lossy(&openssl.stdout);
    assert!(printed.trim().ends_with(&fingerprint), "{printed} vs {fingerprint}");
    let pem = std::fs::read(&file).unwrap();
    let written: rustls::pki_types::CertificateDer =
        rustls::pki_types::pem::PemObject::pem_slice_iter(&pem).next().unwrap().unwrap();
    assert_eq!(der, written.to_vec(), "the server presents the certificate it wrote");
    let _ = std::fs::remove_file(file);
}

/// Reads until the server closes; true if it did (within 5 s), with
/// whatever it sent appended to `got`.
fn closes(stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A TLS record header: content type, version, length.
fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 3, 1, (body.len() >> 8) as u8, body.len() as u8];
    r.extend_from_slice(body);
    r
}

#[test]
fn hostile_tls_input_is_closed_and_changes_nothing() {
    let pki = Pki::new();
    let daemon = https_daemon(&pki, &["--cores", "1"]);
    let addr = tls_addr(&daemon);
    // Plain HTTP to the TLS port: a plain-text 400 that says what to do.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"PUT /files/evil HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nevil").unwrap();
    let mut got = Vec::new();
    assert!(closes(&mut plain, &mut got));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400") && text.contains("HTTPS"), "{text}");
    let evil_get = b"GET /files/f HTTP/1.1\r\n\r\nPUT /files/evil HTTP/1.1\r\nContent-Length: 4\r\n\r\nevil";
    let mut hello_cut = record(22, &[1, 0, 1, 0, 3, 3]);
    hello_cut.truncate(9);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", (0..3000u32).map(|i| (i * 7 + 3) as u8).collect()),
        ("a handshake record of garbage", record(22, &[0xff; 300])),
        ("an application record before any handshake", record(23, evil_get)),
        ("a truncated ClientHello, then close", hello_cut),
        ("a record longer than TLS allows", {
            let mut r = vec![22, 3, 1, 0x48, 0x01];
            r.extend(std::iter::repeat_n(0u8, 0x4801));
            r
        }),
        ("an oversized ClientHello over many records", {
            // A handshake message claiming 16 MiB, fed in full records.
            let mut msg = vec![1, 0xff, 0xff, 0xff];
            msg.extend(std::iter::repeat_n(0u8, 16_000));
            let mut all = Vec::new();
            for chunk in msg.chunks(16_000) {
                all.extend(record(22, chunk));
            }
            for _ in 0..8 {
                all.extend(record(22, &[0u8; 16_000]));
            }
            all
        }),
        ("an alert before the handshake", record(21, &[2, 40])),
    ];
    for (what, bytes) in &hostile {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut got = Vec::new();
        assert!(closes(&mut s, &mut got), "{what}: the connection was left open");
        // At most an alert comes back (a record of type 21), never HTTP.
        assert!(got.is_empty() || got[0] == 21, "{what}: {got:?}");
    }
    // Renegotiation (TLS 1.2 `R` in s_client) is refused with the
    // no_renegotiation alert (RFC 5746's extension is offered, as it must
    // be, but no second handshake happens); the daemon goes on.
    let ca = pki.ca();
    let out = s_client(addr, &["-tls1_2", "-servername", "localhost", "-CAfile", ca.to_str().unwrap()], "R\n");
    assert!(out.contains("RENEGOTIATING") && out.contains("no renegotiation"), "{out}");
    // close_notify from the client, and an abrupt close after the handshake.
    let client = tls::client(&pki.ca());
    let mut polite = tls::connect(addr, &client, "localhost");
    polite.conn.send_close_notify();
    polite.flush().unwrap();
    let mut rest = Vec::new();
    let _ = polite.read_to_end(&mut rest);
    drop(tls::connect(addr, &client, "localhost"));
    // Nothing was served, nothing written, and every connection is gone.
    assert!(!daemon.path("evil").exists(), "no byte of data changed");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics(&daemon);
        let open = metric(&text, "percore_open_connections", &[]);
        if open == 1.0 {
            let served =
                text.lines().filter(|l| l.starts_with("percore_requests_total{") && !l.contains("route=\"metrics\""));
            assert_eq!(served.count(), 0, "a request was served: {text}");
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_thousand_stalled_handshakes_time_out_without_starving_a_client() {
    let _heavy = crate::util::heavy();
    let pki = Pki::new();
    let daemon = https_daemon(&pki, &["--cores", "1", "--tls-handshake-timeout-ms", "1500"]);
    let addr = tls_addr(&daemon);
    // Half of them send nothing, half the start of a ClientHello.
    let stalled: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 2 == 1 {
                s.write_all(&[22, 3, 1, 1, 0, 1, 0, 0]).unwrap();
            }
            s
        })
        .collect();
    let started = Instant::now();
    let client = tls::client(&pki.ca());
    let mut worst = Duration::ZERO;
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        let t = Instant::now();
        let mut s = tls::connect(addr, &client, "localhost");
        assert_eq!(tls::exchange(&mut s, b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
        worst = worst.max(t.elapsed());
        served += 1;
    }
    assert!(served >= 10, "{served} handshakes served beside 1,000 stalled ones");
    assert!(worst < Duration::from_millis(500), "a full handshake and request took {worst:?}");
    // Each stalled one is closed once its time is up.
    for mut s in stalled {
        let mut got = Vec::new();
        assert!(closes(&mut s, &mut got), "a stalled handshake was never closed");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "they were closed late: {:?}", started.elapsed());
    let text = metrics(&daemon);
    assert!(metric(&text, "percore_tls_handshakes_total", &["result=\"failed\""]) >= 1000.0, "{text}");
}
