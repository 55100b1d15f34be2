//! The peers of the daemon comparison: the same HTTP/1.1 routes as
//! `percore serve` (`GET /ping`, `GET /files/<path>`, durable
//! `PUT /files/<path>`) on monoio, tokio-uring, and tokio (current-thread and
//! multi-thread, files through `tokio::fs`). Given CPUs `0-2`, the
//! thread-per-core ones run one pinned thread per CPU, each with its own
//! SO_REUSEPORT listener (as percore does); tokio-mt runs that many workers
//! in the CPUs' affinity mask.
//!
//! `http-peer <monoio|tokio-uring|tokio-ct|tokio-mt> <port> <cpus: 0 | 0-2 | 0,2> <data dir>`
//!
//! Durability is the same protocol as percore's: the body goes to a
//! temporary file, fdatasync, rename over the target, fsync of the directory,
//! then 201. (monoio renames with a blocking `std::fs::rename`: its own
//! `renameat` feature does not compile in 0.2.4.) Minimal on purpose (no ranges, no conditionals), so the
//! comparison measures runtimes and I/O paths, not features.

use std::net::SocketAddr;

/// Bytes asked for per socket read: what an idle connection of the io_uring
/// peers holds in its pending read (tokio, readiness-based, reads into the
/// connection's own buffer).
const READ_CHUNK: usize = 8 * 1024;
use std::path::{Path, PathBuf};

/// A parsed request head.
struct Head {
    method: String,
    path: String,
    content_length: usize,
    keep_alive: bool,
    len: usize,
}

/// Parses one request from `buf` if its head and its whole body are there
/// (so that each server needs one read loop).
fn parse(buf: &[u8]) -> Result<Option<Head>, ()> {
    Ok(parse_head(buf)?.filter(|head| buf.len() >= head.len + head.content_length))
}

/// Parses one request head from `buf`, if it is all there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let mut content_length = 0;
            let mut close = request.version == Some(0);
            for h in request.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    content_length = std::str::from_utf8(h.value).map_err(|_| ())?.trim().parse().map_err(|_| ())?;
                } else if h.name.eq_ignore_ascii_case("connection") {
                    close = h.value.eq_ignore_ascii_case(b"close");
                }
            }
            Ok(Some(Head {
                method: request.method.unwrap_or("").to_string(),
                path: request.path.unwrap_or("").to_string(),
                content_length,
                keep_alive: !close,
                len,
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(()),
    }
}

/// Maps `/files/<path>` into the data directory (no `..`).
fn file_path(root: &Path, target: &str) -> Option<PathBuf> {
    let rel = target.strip_prefix("/files/")?;
    if rel.is_empty() || rel.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return None;
    }
    Some(root.join(rel))
}

fn head(status: &str, length: usize, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "" } else { "Connection: close\r\n" };
    format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\n{connection}\r\n").into_bytes()
}

/// What a request asks for; each runtime does the I/O.
enum Route {
    Ping,
    Get(PathBuf),
    Put(PathBuf),
    NotFound,
    BadPath,
    NotAllowed,
}

fn route(head: &Head, root: &Path) -> Route {
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/ping") => Route::Ping,
        ("GET", target) => file_path(root, target).map_or(Route::NotFound, Route::Get),
        ("PUT", target) => file_path(root, target).map_or(Route::BadPath, Route::Put),
        _ => Route::NotAllowed,
    }
}

/// The response to a route whose I/O (if any) gave `read` or `wrote`.
fn answer(
    route: &Route,
    read: Option<std::io::Result<Vec<u8>>>,
    wrote: Option<std::io::Result<()>>,
    keep: bool,
) -> Vec<u8> {
    match (route, read, wrote) {
        (Route::Ping, _, _) => [head("200 OK", 5, keep), b"pong\n".to_vec()].concat(),
        (Route::Get(_), Some(Ok(data)), _) => [head("200 OK", data.len(), keep), data].concat(),
        (Route::Get(_) | Route::NotFound, _, _) => head("404 Not Found", 0, keep),
        (Route::Put(_), _, Some(Ok(()))) => head("201 Created", 0, keep),
        (Route::Put(_), _, _) => head("500 Internal Server Error", 0, keep),
        (Route::BadPath, _, _) => head("400 Bad Request", 0, keep),
        (Route::NotAllowed, _, _) => head("405 Method Not Allowed", 0, keep),
    }
}

fn temp_name(target: &Path, n: u64) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    target.with_file_name(name)
}

/// A listening socket with SO_REUSEPORT, so that one per thread can share
/// the port and the kernel spreads connections over them.
fn reuse_port_listener(addr: SocketAddr) -> std::net::TcpListener {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 only") };
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // sockaddr is a fully initialised local value whose size is passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            let p = (&one as *const libc::c_int).cast();
            assert_eq!(libc::setsockopt(fd, libc::SOL_SOCKET, opt, p, 4), 0);
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len), 0, "bind {addr}");
        assert_eq!(libc::listen(fd, 4096), 0);
        std::net::TcpListener::from_raw_fd(fd)
    }
}

/// `0`, `0-2` or `0,2,3`.
fn parse_cpus(spec: &str) -> Vec<usize> {
    spec.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = args.get(1).expect("runtime").clone();
    let port: u16 = args.get(2).expect("port").parse().unwrap();
    let cpus = parse_cpus(args.get(3).expect("cpus"));
    let root = PathBuf::from(args.get(4).expect("data dir"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if runtime == "tokio-mt" {
        // One pool over all the CPUs: its threads inherit this mask.
        let set = core_affinity_set(&cpus);
        // SAFETY: `set` is a valid cpu_set_t that outlives the call.
        assert_eq!(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }, 0);
        return tokio_server::run(reuse_port_listener(addr), root, cpus.len());
    }
    let threads: Vec<_> = cpus
        .into_iter()
        .map(|cpu| {
            let (runtime, root, listener) = (runtime.clone(), root.clone(), reuse_port_listener(addr));
            std::thread::spawn(move || {
                percore_benches::pin(cpu);
                match runtime.as_str() {
                    "monoio" => monoio_server::run(listener, root),
                    "tokio-uring" => tokio_uring_server::run(listener, root),
                    "tokio-ct" => tokio_server::run(listener, root, 0),
                    other => panic!("unknown runtime {other}"),
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// `PEER_FILE_WORKERS=N` (an experiment, off by default: peers run as their
/// users would run them): bounds this thread's io_uring kernel workers for
/// blocking file work at `N`, as `percore serve --file-workers` does. The
/// bound belongs to the thread's io-wq, which serves every ring the thread
/// submits to, so a throwaway ring carries it to the runtime's ring.
fn set_file_workers() {
    let Some(n) = std::env::var("PEER_FILE_WORKERS").ok().and_then(|v| v.parse::<u32>().ok()) else { return };
    let ring = io_uring_06::IoUring::new(2).expect("a ring for the worker bound");
    let mut max = [n, 0];
    ring.submitter().register_iowq_max_workers(&mut max).expect("IORING_REGISTER_IOWQ_MAX_WORKERS");
    eprintln!("file workers: {} -> {n}", max[0]);
}

fn core_affinity_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is empty.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes one bit of the set it is given.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

mod monoio_server {
    use super::*;
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    use std::cell::Cell;
    use std::rc::Rc;

    pub(super) fn run(listener: std::net::TcpListener, root: PathBuf) {
        let mut builder = io_uring_06::IoUring::builder();
        builder.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(builder)
            .with_entries(1024)
            .build()
            .expect("monoio runtime");
        rt.block_on(async move {
            super::set_file_workers();
            let listener = monoio::net::TcpListener::from_std(listener).unwrap();
            println!("ready");
            let (root, counter) = (Rc::new(root), Rc::new(Cell::new(0u64)));
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                monoio::spawn(connection(stream, root.clone(), counter.clone()));
            }
        });
    }

    async fn connection(mut stream: monoio::net::TcpStream, root: Rc<PathBuf>, counter: Rc<Cell<u64>>) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let head = loop {
                match parse(&buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(()) => return,
                }
                let (r, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
                match r {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            };
            buf.drain(..head.len);
            let body: Vec<u8> = buf.drain(..head.content_length).collect();
            let response = respond(&head, body, &root, &counter).await;
            if stream.write_all(response).await.0.is_err() || !head.keep_alive {
                return;
            }
        }
    }

    async fn respond(head: &Head, body: Vec<u8>, root: &Path, counter: &Cell<u64>) -> Vec<u8> {
        let route = route(head, root);
        let (read, wrote) = match &route {
            Route::Get(path) => (Some(read(path).await), None),
            Route::Put(path) => {
                counter.set(counter.get() + 1);
                (None, Some(write(path, body, counter.get()).await))
            }
            _ => (None, None),
        };
        answer(&route, read, wrote, head.keep_alive)
    }

    async fn read(path: &Path) -> std::io::Result<Vec<u8>> {
        let file = monoio::fs::File::open(path).await?;
        let size = file.metadata().await?.len() as usize;
        let (r, data) = file.read_exact_at(Vec::with_capacity(size), 0).await;
        r?;
        let _ = file.close().await;
        Ok(data)
    }

    async fn write(path: &Path, body: Vec<u8>, n: u64) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        // monoio's create_dir_all fails when a concurrent request creates the
        // same directory first (the bench's first PUTs race): that is success.
        if let Err(err) = monoio::fs::create_dir_all(dir).await {
            if !dir.is_dir() {
                return Err(err);
            }
        }
        let temp = temp_name(path, n);
        let file = monoio::fs::File::create(&temp).await?;
        let (r, _) = file.write_all_at(body, 0).await;
        r?;
        file.sync_data().await?;
        file.close().await?;
        // monoio 0.2.4's `renameat` feature does not compile (its
        // `fs::rename` lacks an import): a blocking rename on this thread.
        std::fs::rename(&temp, path)?;
        let dir = monoio::fs::File::open(dir).await?;
        dir.sync_all().await?;
        dir.close().await
    }
}

mod tokio_uring_server {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    pub(super) fn run(listener: std::net::TcpListener, root: PathBuf) {
        tokio_uring::builder().entries(1024).start(async move {
            super::set_file_workers();
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            println!("ready");
            let (root, counter) = (Rc::new(root), Rc::new(Cell::new(0u64)));
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                tokio_uring::spawn(connection(stream, root.clone(), counter.clone()));
            }
        });
    }

    async fn connection(stream: tokio_uring::net::TcpStream, root: Rc<PathBuf>, counter: Rc<Cell<u64>>) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let head = loop {
                match parse(&buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(()) => return,
                }
                let (r, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
                match r {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            };
            buf.drain(..head.len);
            let body: Vec<u8> = buf.drain(..head.content_length).collect();
            let response = respond(&head, body, &root, &counter).await;
            if stream.write_all(response).await.0.is_err() || !head.keep_alive {
                return;
            }
        }
    }

    async fn respond(head: &Head, body: Vec<u8>, root: &Path, counter: &Cell<u64>) -> Vec<u8> {
        let route = route(head, root);
        let (read, wrote) = match &route {
            Route::Get(path) => (Some(read(path).await), None),
            Route::Put(path) => {
                counter.set(counter.get() + 1);
                (None, Some(write(path, body, counter.get()).await))
            }
            _ => (None, None),
        };
        answer(&route, read, wrote, head.keep_alive)
    }

    async fn read(path: &Path) -> std::io::Result<Vec<u8>> {
        let file = tokio_uring::fs::File::open(path).await?;
        let size = file.statx().await?.stx_size as usize;
        let (r, data) = file.read_exact_at(Vec::with_capacity(size), 0).await;
        r?;
        let _ = file.close().await;
        Ok(data)
    }

    async fn write(path: &Path, body: Vec<u8>, n: u64) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        tokio_uring::fs::create_dir_all(dir).await?;
        let temp = temp_name(path, n);
        let file = tokio_uring::fs::File::create(&temp).await?;
        let (r, _) = file.write_all_at(body, 0).await;
        r?;
        file.sync_data().await?;
        file.close().await?;
        tokio_uring::fs::rename(&temp, path).await?;
        let dir = tokio_uring::fs::File::open(dir).await?;
        dir.sync_all().await?;
        dir.close().await
    }
}

mod tokio_server {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `workers` 0: a current-thread runtime, else a multi-thread one.
    pub(super) fn run(listener: std::net::TcpListener, root: PathBuf, workers: usize) {
        let runtime = if workers > 0 {
            tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        .expect("tokio runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            println!("ready");
            let (root, counter) = (Arc::new(root), Arc::new(AtomicU64::new(0)));
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, root.clone(), counter.clone()));
            }
        });
    }

    async fn connection(mut stream: tokio::net::TcpStream, root: Arc<PathBuf>, counter: Arc<AtomicU64>) {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        loop {
            let head = loop {
                match parse(&buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(()) => return,
                }
                buf.reserve(READ_CHUNK);
                match stream.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
            };
            buf.drain(..head.len);
            let body: Vec<u8> = buf.drain(..head.content_length).collect();
            let route = route(&head, &root);
            let (read, wrote) = match &route {
                Route::Get(path) => (Some(tokio::fs::read(path).await), None),
                Route::Put(path) => (None, Some(write(path, body, counter.fetch_add(1, Ordering::Relaxed)).await)),
                _ => (None, None),
            };
            let response = answer(&route, read, wrote, head.keep_alive);
            if stream.write_all(&response).await.is_err() || !head.keep_alive {
                return;
            }
        }
    }

    async fn write(path: &Path, body: Vec<u8>, n: u64) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        let temp = temp_name(path, n);
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(&body).await?;
        file.sync_data().await?;
        drop(file);
        tokio::fs::rename(&temp, path).await?;
        tokio::fs::File::open(&dir).await?.sync_all().await
    }
}
