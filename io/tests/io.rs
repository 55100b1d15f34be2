//! percore-io against a real kernel: files, containment, sockets, multishot,
//! cross-thread wake-ups, fairness, CQ overflow, panics, setup errors (timers
//! and the loop's clock are in `time.rs`).
//!
//! Leak accounting (fd counts, buffer rings) lives in `leaks.rs`, its own
//! process, because other tests running in parallel would move the counts.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percore_io::{
    spawn, time, yield_now, AlignedBuf, BufRing, Dir, DoorbellKind, File, IoBuf, Notify, OpenOptions, RingConfig,
    Runtime, Shutdown, TcpListener, TcpStream,
};

fn tempdir() -> tempfile::TempDir {
    // Under target/, on a real file system (tmpfs has no O_DIRECT).
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn rw_create() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn file_round_trip_with_metadata_and_sync() {
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("data.bin", &rw_create()).await.unwrap();
        let data = pattern(1 << 20, 7);
        let (result, _) = file.write_all_at(data.clone(), 4096).await;
        result.unwrap();
        file.sync_data().await.unwrap();
        file.sync_all().await.unwrap();
        let meta = file.metadata().await.unwrap();
        assert_eq!(meta.size, 4096 + (1 << 20));
        assert!(meta.is_file());
        assert!(meta.modified() > std::time::SystemTime::UNIX_EPOCH);
        let (result, back) = file.read_exact_at(Vec::with_capacity(1 << 20), 4096).await;
        result.unwrap();
        assert_eq!(back, data);
        // The hole before the data reads as zeros; reading past the end gives 0.
        let (result, head) = file.read_at(Vec::with_capacity(4096), 0).await;
        assert_eq!(result.unwrap(), 4096);
        assert!(head.iter().all(|&b| b == 0));
        let (result, _) = file.read_at(Vec::with_capacity(10), 4096 + (1 << 20)).await;
        assert_eq!(result.unwrap(), 0);
        // read_exact_at past the end reports UnexpectedEof.
        let (result, _) =
            file.read_exact_at(vec![0u8; 0].into_iter().chain([0; 8]).collect::<Vec<u8>>(), meta.size - 4).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        file.close().await.unwrap();
    });
    assert_eq!(std::fs::metadata(tmp.path().join("data.bin")).unwrap().len(), 4096 + (1 << 20));
}

#[test]
fn buffers_of_every_kind_round_trip() {
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("kinds", &rw_create()).await.unwrap();
        let (r, _) = file.write_all_at(bytes::Bytes::from_static(b"bytes!"), 0).await;
        r.unwrap();
        let mut bm = bytes::BytesMut::with_capacity(8);
        bm.extend_from_slice(b"bytesmut");
        let (r, _) = file.write_all_at(bm, 6).await;
        r.unwrap();
        let (r, _) = file.write_all_at(b"static".as_slice(), 14).await;
        r.unwrap();
        let (r, got) = file.read_at(bytes::BytesMut::with_capacity(64), 0).await;
        assert_eq!(r.unwrap(), 20);
        assert_eq!(&got[..], b"bytes!bytesmutstatic");
        // A slice reads into the middle of a buffer.
        let buf = vec![b'.'; 10];
        let (r, slice) = file.read_at(buf.slice(2..8), 6).await;
        assert_eq!(r.unwrap(), 6);
        assert_eq!(slice.into_inner(), b"..bytesm..");
    });
}

#[test]
fn o_direct_round_trip_with_aligned_buffers() {
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let mut options = rw_create();
        options.direct(true);
        let file = match dir.open_file("direct", &options).await {
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                panic!("this file system refuses O_DIRECT; run the tests from a disk-backed target dir")
            }
            other => other.unwrap(),
        };
        let mut buf = AlignedBuf::new(64 * 1024, 4096);
        buf.as_mut_capacity().copy_from_slice(&pattern(64 * 1024, 3));
        buf.set_len(64 * 1024);
        let (r, _) = file.write_all_at(buf, 8192).await;
        r.unwrap();
        file.sync_data().await.unwrap();
        let (r, back) = file.read_exact_at(AlignedBuf::new(64 * 1024, 4096), 8192).await;
        r.unwrap();
        assert_eq!(back.as_slice(), pattern(64 * 1024, 3).as_slice());
        // A misaligned O_DIRECT write is refused by the kernel, not corrupted.
        let (r, _) = file.write_at(vec![1u8; 100], 3).await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    });
}

#[test]
fn openat2_confines_paths_beneath_the_directory() {
    let tmp = tempdir();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
    std::fs::write(root.join("sub/inside"), b"inside").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("absolute")).unwrap();
    std::os::unix::fs::symlink("sub/inside", root.join("fine")).unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(&root).await.unwrap();
        let read = OpenOptions::new();
        for path in ["../secret", "sub/../../secret", "/etc/passwd", "escape", "absolute", "/proc/self/fd/0"] {
            let err = dir.open_file(path, &read).await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EXDEV), "{path}: {err}");
        }
        // Staying inside is fine, through `..` or a relative symlink.
        for path in ["sub/inside", "sub/../sub/inside", "fine"] {
            let file = dir.open_file(path, &read).await.unwrap();
            let (r, buf) = file.read_at(Vec::with_capacity(16), 0).await;
            assert_eq!(r.unwrap(), 6, "{path}");
            assert_eq!(buf, b"inside");
        }
        // no_symlinks refuses even the harmless one.
        let mut strict = OpenOptions::new();
        strict.no_symlinks(true);
        assert_eq!(dir.open_file("fine", &strict).await.unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // A subdirectory handle confines again.
        let sub = dir.open_dir("sub").await.unwrap();
        assert_eq!(sub.open_file("../sub/inside", &read).await.unwrap_err().raw_os_error(), Some(libc::EXDEV));
        // NUL bytes never reach the kernel.
        assert_eq!(dir.open_file("a\0b", &read).await.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn directory_operations_take_single_components() {
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        dir.mkdir("d", 0o755).await.unwrap();
        assert_eq!(dir.mkdir("d", 0o755).await.unwrap_err().raw_os_error(), Some(libc::EEXIST));
        let sub = dir.open_dir("d").await.unwrap();
        let f = sub.open_file("a.tmp", &rw_create()).await.unwrap();
        let (r, _) = f.write_all_at(b"v1".to_vec(), 0).await;
        r.unwrap();
        f.sync_data().await.unwrap();
        sub.rename("a.tmp", &sub, "a").await.unwrap();
        sub.sync_all().await.unwrap();
        assert!(dir.stat("d").await.unwrap().is_dir());
        assert_eq!(sub.stat("a").await.unwrap().size, 2);
        assert_eq!(sub.stat("a.tmp").await.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        // rename_noreplace refuses to clobber.
        let g = sub.open_file("b", &rw_create()).await.unwrap();
        drop(g);
        assert_eq!(sub.rename_noreplace("b", &sub, "a").await.unwrap_err().raw_os_error(), Some(libc::EEXIST));
        let mut names: Vec<_> = sub.read_dir().unwrap().into_iter().map(|e| e.name.into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        for bad in ["../x", "a/b", "..", ".", ""] {
            assert_eq!(sub.unlink(bad).await.unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert_eq!(sub.mkdir(bad, 0o755).await.unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert_eq!(sub.rename("a", &sub, bad).await.unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        sub.unlink("a").await.unwrap();
        sub.unlink("b").await.unwrap();
        assert_eq!(dir.rmdir("d").await.map_err(|e| e.raw_os_error()), Ok(()));
        assert_eq!(dir.stat("d").await.unwrap_err().raw_os_error(), Some(libc::ENOENT));
    });
}

async fn echo_server(listener: TcpListener) {
    let mut incoming = listener.incoming();
    loop {
        let stream = incoming.next().await.unwrap();
        spawn(async move {
            let mut buf = Vec::with_capacity(16 * 1024);
            loop {
                let (r, b) = stream.recv(buf).await;
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let (r, b) = stream.send_all(b).await;
                if r.is_err() {
                    return;
                }
                buf = b;
                buf.clear();
            }
        });
    }
}

#[test]
fn loopback_echo_with_many_concurrent_connections() {
    const CONNECTIONS: usize = 200;
    const ROUNDS: usize = 20;
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        spawn(echo_server(listener));
        let done = Rc::new(Cell::new(0));
        let mut handles = Vec::new();
        for c in 0..CONNECTIONS {
            let done = done.clone();
            handles.push(spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                for round in 0..ROUNDS {
                    let msg = pattern(100 + (c * 7 + round * 13) % 3000, (c + round) as u8);
                    let (r, _) = stream.send_all(msg.clone()).await;
                    r.unwrap();
                    let mut got = Vec::new();
                    while got.len() < msg.len() {
                        let (r, b) = stream.recv(Vec::with_capacity(4096)).await;
                        assert!(r.unwrap() > 0, "server closed early");
                        got.extend_from_slice(&b);
                    }
                    assert_eq!(got, msg, "connection {c} round {round}");
                }
                done.set(done.get() + 1);
            }));
        }
        for h in handles {
            h.await;
        }
        assert_eq!(done.get(), CONNECTIONS);
    });
}

#[test]
fn reuse_port_listeners_share_a_port() {
    Runtime::new().unwrap().block_on(async {
        let options = percore_io::ListenOptions { reuse_port: true, ..Default::default() };
        let first = TcpListener::bind_with(loopback(), &options).unwrap();
        let addr = first.local_addr();
        let second = TcpListener::bind_with(addr, &options).unwrap();
        assert_eq!(second.local_addr(), addr);
        // Without SO_REUSEPORT the port is taken.
        assert_eq!(TcpListener::bind(addr).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        let counts = Rc::new([Cell::new(0), Cell::new(0)]);
        for (i, listener) in [first, second].into_iter().enumerate() {
            let counts = counts.clone();
            spawn(async move {
                let mut incoming = listener.incoming();
                loop {
                    let stream = incoming.next().await.unwrap();
                    counts[i].set(counts[i].get() + 1);
                    drop(stream);
                }
            });
        }
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        while counts[0].get() + counts[1].get() < 64 {
            time::sleep(Duration::from_millis(1)).await;
        }
        // The kernel spreads connections over both (by a hash of the
        // 4-tuple; 64 connections all on one side has odds of 2^-63).
        assert!(counts[0].get() > 0 && counts[1].get() > 0, "{} / {}", counts[0].get(), counts[1].get());
    });
}

#[test]
fn ipv6_loopback_and_single_accept_report_peer_addresses() {
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind("[::1]:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr();
        let client = spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server_side, peer) = listener.accept().await.unwrap();
        let client = client.await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(server_side.peer_addr().unwrap(), client.local_addr().unwrap());
        assert!(peer.is_ipv6());
    });
}

#[test]
fn multishot_accept_and_recv_from_a_buffer_ring() {
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        let ring = BufRing::new(64, 4096).unwrap();
        let clients = spawn(async move {
            let mut streams = Vec::new();
            for i in 0..50u8 {
                let s = TcpStream::connect(addr).await.unwrap();
                streams.push((i, s));
            }
            streams
        });
        let mut incoming = listener.incoming();
        let mut accepted = Vec::new();
        for _ in 0..50 {
            accepted.push(incoming.next().await.unwrap());
        }
        let clients = clients.await;
        // Idle connections hold no receive buffer.
        let mut streams: Vec<_> = accepted.iter().map(|s| s.recv_multi(&ring)).collect();
        for s in &mut streams {
            let poll = std::future::poll_fn(|cx| std::task::Poll::Ready(s.poll_next(cx).is_pending())).await;
            assert!(poll, "no data yet");
        }
        time::sleep(Duration::from_millis(10)).await;
        assert_eq!(ring.available(), 64, "idle multishot receives hold no buffer");
        // 20 KB per connection: several buffers each, reassembled in order.
        for (i, c) in &clients {
            let (r, _) = c.send_all(pattern(20_000, *i)).await;
            r.unwrap();
        }
        let mut by_peer = std::collections::HashMap::new();
        for (stream, accepted) in streams.iter_mut().zip(&accepted) {
            let mut got = Vec::new();
            while got.len() < 20_000 {
                let buf = stream.next().await.unwrap().unwrap();
                assert!(buf.len() <= 4096);
                got.extend_from_slice(&buf);
            }
            by_peer.insert(accepted.peer_addr().unwrap(), got);
        }
        for (i, c) in &clients {
            assert_eq!(by_peer[&c.local_addr().unwrap()], pattern(20_000, *i));
        }
        // End of stream.
        drop(clients);
        for stream in &mut streams {
            assert!(stream.next().await.is_none());
        }
        drop(streams);
        assert_eq!(ring.available(), 64);
    });
}

#[test]
fn multishot_recv_survives_an_exhausted_buffer_ring() {
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        let ring = BufRing::new(2, 1024).unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let data = pattern(64 * 1024, 9);
        let sender = spawn({
            let data = data.clone();
            async move {
                let (r, _) = client.send_all(data).await;
                r.unwrap();
                client
            }
        });
        let mut stream = server.recv_multi(&ring);
        let mut got = Vec::new();
        let mut held = Vec::new();
        while got.len() < data.len() {
            let buf = stream.next().await.unwrap().unwrap();
            got.extend_from_slice(&buf);
            // Hold buffers a while so the ring runs dry (ENOBUFS) and the
            // stream must re-arm when they come back.
            held.push(buf);
            if held.len() == 2 || ring.available() == 0 {
                time::sleep(Duration::from_millis(1)).await;
                held.clear();
            }
        }
        assert_eq!(got, data);
        drop(sender.await);
    });
}

/// A multishot receive halted while data streams in loses nothing: what
/// the kernel had put in the ring comes out of `next` before its `None`,
/// the rest stays in the socket for a plain receive (a connection handed
/// to another thread between requests relies on this). Round after round,
/// halted at a different point each time.
#[test]
fn a_halted_multishot_receive_loses_no_byte() {
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        let ring = BufRing::new(8, 1024).unwrap();
        for round in 0..20usize {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let data = pattern(256 * 1024, round as u8);
            let sender = spawn({
                let data = data.clone();
                async move {
                    // Small pieces with pauses: some arrive before the halt,
                    // some while it is under way, some after.
                    for piece in data.chunks(4096) {
                        let (r, _) = client.send_all(piece.to_vec()).await;
                        r.unwrap();
                        yield_now().await;
                    }
                    client.shutdown(Shutdown::Write).await.unwrap();
                    client
                }
            });
            let mut got = Vec::new();
            {
                let mut stream = server.recv_multi(&ring);
                while got.len() < 1024 * (1 + round) {
                    got.extend_from_slice(&stream.next().await.unwrap().unwrap());
                }
                stream.halt();
                while let Some(buf) = stream.next().await {
                    got.extend_from_slice(&buf.unwrap());
                }
            }
            loop {
                let (r, b) = server.recv(Vec::with_capacity(65536)).await;
                if r.unwrap() == 0 {
                    break;
                }
                got.extend_from_slice(&b);
            }
            assert_eq!(got.len(), data.len(), "round {round}");
            assert!(got == data, "round {round}: bytes out of order or changed");
            drop(sender.await);
        }
    });
}

#[test]
fn writev_sends_header_and_body_in_one_operation() {
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let header = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        let body = pattern(100_000, 1);
        let expected: Vec<u8> = header.iter().chain(&body).copied().collect();
        let reader = spawn(async move {
            let mut got = Vec::new();
            loop {
                let (r, b) = client.recv(Vec::with_capacity(65536)).await;
                if r.unwrap() == 0 {
                    return got;
                }
                got.extend_from_slice(&b);
            }
        });
        let (r, bufs) = server.writev_all(vec![header, body]).await;
        r.unwrap();
        assert_eq!(bufs.len(), 2, "buffers come back");
        server.shutdown(percore_io::Shutdown::Write).await.unwrap();
        assert_eq!(reader.await, expected);
    });
}

#[test]
fn send_file_splices_a_large_file_to_a_socket() {
    let tmp = tempdir();
    let data = pattern(3 * 1024 * 1024 + 123, 5);
    std::fs::write(tmp.path().join("big"), &data).unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("big", &OpenOptions::new()).await.unwrap();
        let listener = TcpListener::bind(loopback()).unwrap();
        let client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let reader = spawn(async move {
            let mut got = Vec::new();
            loop {
                let (r, b) = client.recv(Vec::with_capacity(256 * 1024)).await;
                if r.unwrap() == 0 {
                    return got;
                }
                got.extend_from_slice(&b);
            }
        });
        let pipe = percore_io::Pipe::new(256 * 1024).unwrap();
        let sent = percore_io::send_file(&server, &file, 1000, data.len() as u64, &pipe, true).await.unwrap();
        assert_eq!(sent, data.len() as u64 - 1000, "stops at end of file");
        // The pipe is empty and reusable.
        let sent = percore_io::send_file(&server, &file, 0, 1000, &pipe, false).await.unwrap();
        assert_eq!(sent, 1000);
        drop(server);
        let got = reader.await;
        assert_eq!(&got[..data.len() - 1000], &data[1000..]);
        assert_eq!(&got[data.len() - 1000..], &data[..1000]);
    });
}

#[test]
fn a_task_woken_from_another_thread_runs_on_its_home_thread() {
    Runtime::new().unwrap().block_on(async {
        let home = std::thread::current().id();
        let notify = Arc::new(Notify::new());
        let hits = Arc::new(AtomicUsize::new(0));
        let waiter = spawn({
            let notify = notify.clone();
            let hits = hits.clone();
            async move {
                for _ in 0..100 {
                    notify.notified().await;
                    assert_eq!(std::thread::current().id(), home);
                    hits.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        // Notifications coalesce (one permit), so the sender waits for each to
        // be consumed before the next; a lost wake-up hangs here, a slow
        // scheduler does not.
        let sender = std::thread::spawn({
            let hits = hits.clone();
            move || {
                for n in 1..=100 {
                    notify.notify();
                    while hits.load(Ordering::SeqCst) < n {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    // Let the runtime park between notifications.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        waiter.await;
        sender.join().unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 100);
        let stats = percore_io::stats();
        assert!(stats.remote_wakes > 0, "{stats:?}");
        assert!(stats.doorbell_wakeups > 0, "a parked runtime was rung: {stats:?}");
    });
}

/// Many threads wake many tasks at once: no wake-up lost, none duplicated
/// into a double poll (each task counts exactly its own permits).
#[test]
fn concurrent_remote_wakes_lose_nothing() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 200;
    for doorbell in doorbells() {
        let rt = Runtime::builder().doorbell(doorbell).build().unwrap();
        rt.block_on(async {
            let notifies: Vec<Arc<Notify>> = (0..TASKS).map(|_| Arc::new(Notify::new())).collect();
            let acks: Vec<Arc<AtomicUsize>> = (0..TASKS).map(|_| Arc::new(AtomicUsize::new(0))).collect();
            let mut handles = Vec::new();
            for (n, ack) in notifies.iter().zip(&acks) {
                let (n, ack) = (n.clone(), ack.clone());
                handles.push(spawn(async move {
                    for _ in 0..PER_TASK {
                        n.notified().await;
                        ack.fetch_add(1, Ordering::SeqCst);
                    }
                }));
            }
            // Each sender thread waits for its ack before notifying again, so
            // every notification must be seen: a lost wake-up hangs the test.
            let senders: Vec<_> = (0..4)
                .map(|t| {
                    let pairs: Vec<_> = (t..TASKS).step_by(4).map(|i| (notifies[i].clone(), acks[i].clone())).collect();
                    std::thread::spawn(move || {
                        // Each sender has its own runtime, so MsgRing doorbells
                        // travel ring to ring.
                        let rt = Runtime::builder().doorbell(doorbell).build().unwrap();
                        rt.block_on(async {
                            for round in 1..=PER_TASK {
                                for (n, ack) in &pairs {
                                    n.notify();
                                    while ack.load(Ordering::SeqCst) < round {
                                        yield_now().await;
                                    }
                                }
                            }
                        });
                    })
                })
                .collect();
            let deadline = time::timeout(Duration::from_secs(20), async {
                for h in handles {
                    h.await;
                }
            });
            deadline.await.expect("a wake-up was lost");
            for s in senders {
                s.join().unwrap();
            }
            assert!(acks.iter().all(|a| a.load(Ordering::SeqCst) == PER_TASK));
        });
    }
}

/// A poller drains a channel that another thread fills, pushing then calling
/// `Remote::unpark`: nothing is missed when the runtime is about to park.
/// The producer sends one message at a time and waits for the runtime's
/// acknowledgement, so one lost wake-up stalls it (the runtime has no timer
/// or task that could wake it otherwise) and fails the test.
#[test]
fn pollers_see_work_pushed_before_an_unpark() {
    use std::sync::atomic::AtomicU64;
    const MESSAGES: u64 = 5_000;
    struct Drain {
        rx: crossbeam_channel::Receiver<u64>,
        acked: Arc<AtomicU64>,
        done: Arc<Notify>,
    }
    impl percore_io::Poller for Drain {
        fn poll(&mut self) -> usize {
            let mut n = 0;
            while let Ok(v) = self.rx.try_recv() {
                self.acked.store(v, Ordering::SeqCst);
                n += 1;
                if v == MESSAGES {
                    self.done.notify();
                }
            }
            n
        }
        fn has_work(&self) -> bool {
            !self.rx.is_empty()
        }
    }
    let rt = Runtime::new().unwrap();
    let remote = rt.remote();
    let (tx, rx) = crossbeam_channel::unbounded();
    let acked = Arc::new(AtomicU64::new(0));
    let seen = acked.clone();
    let producer = std::thread::spawn(move || {
        let mut rang = 0u64;
        for i in 1..=MESSAGES {
            tx.send(i).unwrap();
            rang += u64::from(remote.unpark());
            let start = Instant::now();
            while seen.load(Ordering::SeqCst) < i {
                if start.elapsed() > Duration::from_secs(5) {
                    return Err(format!("message {i} was never seen: a wake-up was lost"));
                }
                std::hint::spin_loop();
            }
        }
        Ok(rang)
    });
    let done = Arc::new(Notify::new());
    rt.block_on(async {
        percore_io::add_poller(Drain { rx, acked: acked.clone(), done: done.clone() });
        let _ = time::timeout(Duration::from_secs(60), done.notified()).await;
    });
    let rang = producer.join().unwrap().unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), MESSAGES);
    assert!(rang > 0, "the runtime parked and was rung at least once");
}

#[test]
fn block_on_is_woken_from_another_thread() {
    let rt = Runtime::new().unwrap();
    let notify = Arc::new(Notify::new());
    let n = notify.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        n.notify();
    });
    let start = Instant::now();
    rt.block_on(notify.notified());
    assert!(start.elapsed() >= Duration::from_millis(45));
    t.join().unwrap();
}

#[test]
fn a_busy_task_does_not_starve_io_or_timers() {
    Runtime::builder().task_budget(8).build().unwrap().block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u64));
        for _ in 0..4 {
            let (stop, spins) = (stop.clone(), spins.clone());
            spawn(async move {
                while !stop.get() {
                    spins.set(spins.get() + 1);
                    yield_now().await;
                }
            });
        }
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        spawn(echo_server(listener));
        let start = Instant::now();
        time::sleep(Duration::from_millis(20)).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        for _ in 0..100 {
            let (r, _) = stream.send_all(b"x".to_vec()).await;
            r.unwrap();
            let (r, _) = stream.recv(Vec::with_capacity(8)).await;
            assert_eq!(r.unwrap(), 1);
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        stop.set(true);
        assert!(spins.get() > 100, "the spinners ran too");
    });
}

#[test]
fn completions_beyond_the_cq_are_not_lost() {
    // A tiny ring: 4 SQ and 8 CQ entries, 2,000 operations in flight at once.
    let config = RingConfig { sq_entries: 4, cq_entries: 8, defer_taskrun: true, file_workers: None };
    let tmp = tempdir();
    std::fs::write(tmp.path().join("f"), pattern(4096, 1)).unwrap();
    Runtime::builder().ring(config).cqe_budget(3).build().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = Rc::new(dir.open_file("f", &OpenOptions::new()).await.unwrap());
        let mut handles = Vec::new();
        for i in 0..2000u64 {
            let file = file.clone();
            handles.push(spawn(async move {
                let (r, buf) = file.read_at(Vec::with_capacity(16), i % 4000).await;
                assert_eq!(r.unwrap(), 16);
                assert_eq!(buf, pattern(4096, 1)[(i % 4000) as usize..][..16]);
            }));
        }
        for h in handles {
            h.await;
        }
        assert_eq!(percore_io::stats().ops_in_flight, 0);
    });
}

#[test]
fn rings_fall_back_without_defer_taskrun() {
    let config = RingConfig { defer_taskrun: false, ..RingConfig::default() };
    let rt = Runtime::builder().ring(config).build().unwrap();
    assert!(!rt.features().defer_taskrun);
    let tmp = tempdir();
    rt.block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let f = dir.open_file("x", &rw_create()).await.unwrap();
        let (r, _) = f.write_all_at(b"ok".to_vec(), 0).await;
        r.unwrap();
        time::sleep(Duration::from_millis(5)).await;
    });
}

#[test]
fn eager_submission_runs_the_same_workloads() {
    let tmp = tempdir();
    Runtime::builder().submit_batch(1).build().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("eager", &rw_create()).await.unwrap();
        let (r, _) = file.write_all_at(pattern(100_000, 4), 0).await;
        r.unwrap();
        let (r, got) = file.read_exact_at(Vec::with_capacity(100_000), 0).await;
        r.unwrap();
        assert!(got == pattern(100_000, 4));
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        spawn(echo_server(listener));
        let stream = TcpStream::connect(addr).await.unwrap();
        for i in 0..50u8 {
            let (r, _) = stream.send_all(vec![i; 100]).await;
            r.unwrap();
            let (r, b) = stream.recv(Vec::with_capacity(100)).await;
            assert_eq!(r.unwrap(), 100);
            assert!(b.iter().all(|&x| x == i));
        }
        assert!(percore_io::stats().ring_enters >= 100, "every SQE entered the kernel at once");
    });
}

#[test]
fn bad_ring_sizes_are_refused_with_a_message() {
    let err = Runtime::builder().ring(RingConfig { sq_entries: 3, ..RingConfig::default() }).build().unwrap_err();
    assert!(err.to_string().contains("powers of two"), "{err}");
}

#[test]
fn nested_block_on_is_refused() {
    let rt = Runtime::new().unwrap();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(async { rt.block_on(async {}) })));
    let payload = result.unwrap_err();
    assert!(payload.downcast_ref::<&str>().is_some_and(|m| m.contains("inside block_on")));
    // The runtime is still usable afterwards.
    assert_eq!(rt.block_on(async { spawn(async { 5 }).await }), 5);
}

#[test]
fn received_ring_buffers_are_sent_without_a_copy() {
    Runtime::new().unwrap().block_on(async {
        let ring = BufRing::new(8, 1024).unwrap();
        let listener = TcpListener::bind(loopback()).unwrap();
        let client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, _) = client.send_all(b"bounce".to_vec()).await;
        r.unwrap();
        let mut stream = server.recv_multi(&ring);
        let buf = stream.next().await.unwrap().unwrap();
        assert_eq!(ring.available(), 7);
        let (r, buf) = server.send_all(buf).await;
        r.unwrap();
        drop(buf);
        assert_eq!(ring.available(), 8, "sent buffer returned to the ring");
        let (r, got) = client.recv(Vec::with_capacity(16)).await;
        assert_eq!(r.unwrap(), 6);
        assert_eq!(got, b"bounce");
    });
}

#[test]
fn one_runtime_per_thread() {
    let _rt = Runtime::new().unwrap();
    let err = Runtime::new().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
}

#[test]
fn a_panicking_task_propagates_out_of_block_on_and_the_runtime_drops_cleanly() {
    let rt = Runtime::new().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let listener = TcpListener::bind(loopback()).unwrap();
            let client = TcpStream::connect(listener.local_addr()).await.unwrap();
            // A pending recv is in flight when the panic unwinds.
            spawn(async move {
                let _ = client.recv(Vec::with_capacity(64)).await;
            });
            spawn(async { panic!("task failed on purpose") });
            time::sleep(Duration::from_secs(10)).await;
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"task failed on purpose"));
    drop(rt);
    // The thread can build a new runtime afterwards.
    Runtime::new().unwrap().block_on(async { spawn(async {}).await });
}

#[test]
fn io_uring_blocked_by_seccomp_is_explained() {
    // A thread-local seccomp filter that answers EPERM to io_uring_setup, as
    // a container's profile would.
    let result = std::thread::spawn(|| {
        const IO_URING_SETUP: u32 = 425;
        let filter = [
            // A = seccomp_data.nr
            libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 },
            // if A == io_uring_setup goto deny else allow
            libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: IO_URING_SETUP },
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x0005_0000 | libc::EPERM as u32 },
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 },
        ];
        let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
        // SAFETY: prctl with valid arguments; `program` outlives the call.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const _), 0);
        }
        Runtime::new().map(drop)
    })
    .join()
    .unwrap();
    let message = result.unwrap_err().to_string();
    assert!(message.contains("cannot create an io_uring instance"), "{message}");
    assert!(message.contains("seccomp"), "{message}");
    assert!(message.contains("io_uring_setup"), "{message}");
}

#[test]
fn file_open_outside_a_dir_and_errors_carry_errno() {
    Runtime::new().unwrap().block_on(async {
        let err = File::open_with("/definitely/not/here", &OpenOptions::new()).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let err = TcpStream::connect("127.0.0.1:1".parse().unwrap()).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    });
}

fn doorbells() -> Vec<DoorbellKind> {
    match std::env::var("DOORBELL").as_deref() {
        Ok("eventfd") => vec![DoorbellKind::EventFd],
        Ok("msgring") => vec![DoorbellKind::MsgRing],
        _ => vec![DoorbellKind::EventFd, DoorbellKind::MsgRing],
    }
}

/// The ring's file worker bound is in force and is what limits how many
/// blocking file operations run at once. Each operation here opens a FIFO
/// with `O_CREAT` (which io_uring always hands to a worker), and that open
/// blocks in its worker until a writer comes; the workers are counted as
/// threads named `iou-wrk-<tid of the ring's thread>`.
#[test]
fn file_workers_bound_the_blocking_operations_in_flight() {
    use std::os::unix::fs::OpenOptionsExt;
    for bound in [3u32, 12] {
        let dir = tempdir();
        let fifos: Vec<std::path::PathBuf> = (0..16).map(|i| dir.path().join(format!("fifo-{i}"))).collect();
        for fifo in &fifos {
            let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "{}", io::Error::last_os_error());
        }
        let rt =
            Runtime::builder().ring(RingConfig { file_workers: Some(bound), ..Default::default() }).build().unwrap();
        assert_eq!(rt.features().file_workers, bound);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let helper = {
            let fifos = fifos.clone();
            std::thread::spawn(move || {
                let workers = || {
                    std::fs::read_dir("/proc/self/task")
                        .unwrap()
                        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                        .filter(|comm| comm.trim() == format!("iou-wrk-{tid}"))
                        .count()
                };
                // Up to the bound, and no further while nothing is released.
                let deadline = Instant::now() + Duration::from_secs(10);
                while workers() < bound as usize && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let mut most = 0;
                for _ in 0..40 {
                    most = most.max(workers());
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Release every open: a writer's open completes a reader's.
                let mut waiting: Vec<_> = fifos.iter().collect();
                let deadline = Instant::now() + Duration::from_secs(10);
                while !waiting.is_empty() && Instant::now() < deadline {
                    waiting.retain(|fifo| {
                        std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo).is_err()
                    });
                    std::thread::sleep(Duration::from_millis(1));
                }
                (most, waiting.len())
            })
        };
        let opened = rt.block_on(async {
            let root = Dir::open(dir.path()).await.unwrap();
            let root = Rc::new(root);
            let mut options = OpenOptions::new();
            options.read(true).create(true);
            let handles: Vec<_> = (0..fifos.len())
                .map(|i| {
                    let (root, options) = (root.clone(), options.clone());
                    spawn(async move { root.open_file(format!("fifo-{i}"), &options).await.map(drop) })
                })
                .collect();
            let mut opened = 0;
            for handle in handles {
                handle.await.unwrap();
                opened += 1;
            }
            opened
        });
        let (most, unreleased) = helper.join().unwrap();
        assert_eq!((opened, unreleased), (fifos.len(), 0));
        assert_eq!(most, bound as usize, "workers running blocking opens at once with a bound of {bound}");
    }
}

#[test]
fn a_file_open_elsewhere_is_known_to_be() {
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("lease.bin", &rw_create()).await.unwrap();
        assert!(file.only_open_here(), "no other descriptor: the lease is granted (and given up)");
        let other = std::fs::File::open(tmp.path().join("lease.bin")).unwrap();
        assert!(!file.only_open_here(), "another descriptor is open");
        drop(other);
        assert!(file.only_open_here(), "released again");
    });
}
