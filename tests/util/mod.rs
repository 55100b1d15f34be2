//! Shared helpers: start the real daemon on an ephemeral loopback port with a
//! temporary data directory, and speak raw HTTP/1.1 to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) mod tls;

/// A running `percore serve`; stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    /// The first HTTPS address, when it listens for HTTPS.
    pub(crate) tls_addr: Option<SocketAddr>,
    /// The S3 API's first address, plain and HTTPS, when it listens.
    pub(crate) s3_addr: Option<SocketAddr>,
    pub(crate) s3_tls_addr: Option<SocketAddr>,
    /// Lines it printed before its start-up line (the self-signed note).
    pub(crate) notes: Vec<String>,
    /// The data directory it serves.
    dir: PathBuf,
    /// That directory, when the daemon owns it (removed on drop).
    data: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1:0 with a fresh data directory and
    /// `args`; waits until it prints its address.
    pub(crate) fn start(args: &[&str]) -> Daemon {
        let data = tempfile::tempdir().unwrap();
        Daemon::start_in(data, args)
    }

    pub(crate) fn start_in(data: tempfile::TempDir, args: &[&str]) -> Daemon {
        Daemon::start_with(data, args, &[], None)
    }

    /// Starts with extra environment variables, and stderr to `stderr` (a
    /// file) instead of the test's own.
    pub(crate) fn start_with(
        data: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Option<std::fs::File>,
    ) -> Daemon {
        let mut daemon = Daemon::start_at(data.path(), args, env, stderr);
        daemon.data = Some(data);
        daemon
    }

    /// Starts on a data directory the caller owns.
    pub(crate) fn start_at(dir: &Path, args: &[&str], env: &[(&str, &str)], stderr: Option<std::fs::File>) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_percore"));
        // On 127.0.0.1, unless the test names its own address.
        let listen: &[&str] = if args.contains(&"--listen") { &[] } else { &["--listen", "127.0.0.1:0"] };
        command
            .arg("serve")
            .args(listen)
            .arg("--data-dir")
            .arg(dir)
            // As the environment, so a test's own --log-level wins.
            .env("PERCORE_LOG_LEVEL", "warn")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr.map_or_else(Stdio::inherit, Stdio::from));
        let mut child = command.spawn().expect("start percore");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut notes = Vec::new();
        let line = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 || line.starts_with("percore listening on ") {
                break line;
            }
            notes.push(line);
        };
        // Each address, and whether `(S3)` follows it.
        let words: Vec<&str> = line.split_whitespace().collect();
        let addrs: Vec<(&str, bool)> =
            words.iter().enumerate().map(|(i, w)| (*w, words.get(i + 1) == Some(&"(S3)"))).collect();
        let found = |scheme: &str, s3: bool| {
            addrs.iter().filter(|(_, is_s3)| *is_s3 == s3).find_map(|(w, _)| w.strip_prefix(scheme)?.parse().ok())
        };
        let tls_addr = found("https://", false);
        let (s3_addr, s3_tls_addr) = (found("http://", true), found("https://", true));
        let addr = found("http://", false)
            .or(tls_addr)
            .or(s3_addr)
            .unwrap_or_else(|| panic!("no address in start-up line {line:?} (after {notes:?})"));
        Daemon { child: Some(child), addr, tls_addr, s3_addr, s3_tls_addr, notes, dir: dir.to_path_buf(), data: None }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub(crate) fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Sends SIGTERM without waiting.
    pub(crate) fn signal_term(&self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) with a child pid we own and a valid signal.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
    }

    /// Sends SIGTERM and waits for the exit status (at most `limit`).
    pub(crate) fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) with a child pid we own and a valid signal.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Daemon {
    /// Takes the data directory out of the daemon's keeping (it is then no
    /// longer removed when the daemon is dropped), for a restart.
    pub(crate) fn take_data(&mut self) -> Option<tempfile::TempDir> {
        self.data.take()
    }

    /// SIGKILLs the daemon (no chance to finish anything) and hands back its
    /// data directory, if it owned it, for a restart.
    pub(crate) fn kill9(mut self) -> Option<tempfile::TempDir> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.data.take()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

/// A parsed response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The headers but those named in `except`, sorted: for comparing two
    /// answers that may differ only there.
    pub(crate) fn headers_except(&self, except: &[&str]) -> Vec<(String, String)> {
        let mut kept: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(name, _)| !except.iter().any(|e| name.eq_ignore_ascii_case(e)))
            .cloned()
            .collect();
        kept.sort();
        kept
    }
}

/// Reads one response from `stream` (`head_only`: the request was HEAD).
pub(crate) fn read_response(stream: &mut impl Read, head_only: bool) -> Option<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { length }];
    stream.read_exact(&mut body).ok()?;
    Some(Response { status, headers, body })
}

/// Sends `raw` on a new connection and reads one response.
pub(crate) fn exchange(daemon: &Daemon, raw: &[u8]) -> Response {
    let mut stream = daemon.connect();
    stream.write_all(raw).unwrap();
    let head_only = raw.starts_with(b"HEAD ");
    read_response(&mut stream, head_only).expect("a response")
}

/// `GET path` with the usual headers.
pub(crate) fn get(daemon: &Daemon, path: &str) -> Response {
    exchange(daemon, format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
}

/// True when the server has closed `stream` (reads end of file).
pub(crate) fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0))
}

pub(crate) fn write_file(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

pub(crate) fn put(daemon: &Daemon, path: &str, body: &[u8], extra: &str) -> Response {
    exchange(daemon, &put_request(path, body, extra))
}

/// The bytes of `PUT path` with `body` and the `extra` header lines.
pub(crate) fn put_request(path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut raw =
        format!("PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{extra}\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    raw
}

pub(crate) fn delete(daemon: &Daemon, path: &str, extra: &str) -> Response {
    exchange(daemon, format!("DELETE {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes())
}

/// Every file under `dir` whose name marks it temporary.
pub(crate) fn temp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            found.extend(temp_files(&entry.path()));
        } else if entry.file_name().to_string_lossy().starts_with(".percore-") {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

/// The temporary files under the daemon's data directory that it does not
/// account for as spares (replaced small files it keeps for later uploads
/// to overwrite: `percore_spare_files`). Once every request has been
/// answered there should be none.
pub(crate) fn stray_temp_files(daemon: &Daemon) -> Vec<String> {
    let temps = temp_files(daemon.dir());
    let spares = metric(&metrics(daemon), "percore_spare_files", &[]) as usize;
    if temps.len() == spares {
        Vec::new()
    } else {
        temps
    }
}

/// Serialises the tests that load the machine (soak, crash rounds, load
/// generation) or measure time under load (slow clients, the open loop):
/// on a 2-core machine, two of them at once would measure each other.
pub(crate) fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Loop mounts against new mount namespaces. A container's start copies
/// every mount of the moment into its new namespace; a loop mount copied
/// there outlives its umount here for a while, and the next mount of the
/// same image then lands on the old, shut-down file system (seen once
/// while the container test ran: after a power-loss round's remount, the
/// existing data directory could not be read, `create_dir_all` said
/// "File exists").
/// Tests that loop-mount hold this shared for as long as their mount
/// lives; the container test holds it alone.
pub(crate) fn loop_mounts() -> std::sync::RwLockReadGuard<'static, ()> {
    MOUNTS.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// See [`loop_mounts`]: held while containers start.
pub(crate) fn no_loop_mounts() -> std::sync::RwLockWriteGuard<'static, ()> {
    MOUNTS.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static MOUNTS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Joins every thread, then raises the first one's panic if any did: a
/// failing worker must not leave the others, and the daemon they hold,
/// running past the test.
pub(crate) fn join_all<T>(threads: Vec<std::thread::JoinHandle<T>>) -> Vec<T> {
    let joined: Vec<_> = threads.into_iter().map(std::thread::JoinHandle::join).collect();
    joined.into_iter().map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
}

/// The daemon's `/metrics` text.
pub(crate) fn metrics(daemon: &Daemon) -> String {
    String::from_utf8(get(daemon, "/metrics").body).unwrap()
}

/// Sums a metric's samples over every label set that contains `labels`
/// (a metric without labels has one sample).
pub(crate) fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Resident set size of a process now (VmRSS), in KiB; 0 once it is gone.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map_or(0, |v| v.trim().trim_end_matches(" kB").parse().unwrap())
}

/// Reads `stream` to its end at `bytes_per_second` by the clock, whatever
/// each read returns (the socket's buffers decide that): a slow client that
/// keeps reading. Panics, saying how far it got, if the stream fails.
pub(crate) fn read_paced(stream: &mut impl Read, bytes_per_second: u32) -> Vec<u8> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => panic!("the slow reader's connection failed after {} bytes: {e}", got.len()),
        };
        if n == 0 {
            return got;
        }
        got.extend_from_slice(&chunk[..n]);
        let due = started + Duration::from_secs_f64(got.len() as f64 / f64::from(bytes_per_second));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// A daemon's log (its standard error), kept in a file.
pub(crate) struct Log(tempfile::NamedTempFile);

impl Log {
    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        std::fs::read_to_string(self.0.path()).unwrap()
    }
}

/// Starts a daemon on `data` whose log goes to a [`Log`].
pub(crate) fn start_logged(data: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> (Daemon, Log) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start_with(data, args, env, Some(log.reopen().unwrap()));
    (daemon, Log(log))
}

/// Installs Debian `packages` (space-separated) if this machine can (root,
/// apt; the package lists updated only if the first try fails). Whether it
/// worked is for the caller to check by looking for what it needs.
pub(crate) fn install_from_debian(packages: &str) {
    eprintln!("installing {packages} from Debian");
    let install = format!("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {packages}");
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("{install} >/dev/null 2>&1 || (apt-get update -qq && {install})")])
        .status();
}
