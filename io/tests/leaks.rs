//! Cancellation safety: dropping thousands of in-flight operations frees
//! nothing early and leaks nothing.
//!
//! For accepts, opens, reads and multishot receives that are dropped while in
//! flight (or completed but never polled): the process's fd count and the
//! buffer ring's free count come back to where they started, and memory that
//! was reused after the drops is not written by late completions (canaries).
//! Its own process, and one test at a time, so the fd counts are exact.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use percore_io::{stats, time, BufRing, Dir, OpenOptions, Runtime, TcpListener, TcpStream};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `future` once (so its operation is submitted), then drops it.
async fn poll_once_then_drop<F: Future>(future: F) {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

/// Runs ticks until every operation has been reaped and queued closes ran.
async fn settle() {
    for _ in 0..5000 {
        time::sleep(Duration::from_millis(1)).await;
        if stats().ops_in_flight == 0 {
            time::sleep(Duration::from_millis(2)).await;
            return;
        }
    }
    panic!("operations still in flight: {:?}", stats());
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn dropped_accepts_close_the_fds_they_produce() {
    let _serial = serial();
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        let before = fd_count();
        // Clients connect from a plain thread; their connections wait in the
        // backlog until an accept (single or multishot) takes them.
        let clients = std::thread::spawn(move || {
            (0..1000).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect::<Vec<_>>()
        });
        for i in 0..3000 {
            if i % 2 == 0 {
                poll_once_then_drop(listener.accept()).await;
            } else {
                let mut incoming = listener.incoming();
                poll_once_then_drop(incoming.next()).await;
                if i % 3 == 0 {
                    // Let some completions arrive before the stream goes.
                    time::sleep(Duration::from_micros(50)).await;
                }
            }
        }
        let clients = clients.join().unwrap();
        settle().await;
        // Whatever the dropped accepts took from the backlog is closed: the
        // server side holds nothing but the listener.
        assert_eq!(fd_count(), before + clients.len(), "{:?}", stats());
        // Every connection was either closed by an orphan (the client sees
        // EOF) or is still waiting in the backlog; none is half-owned.
        let stats = stats();
        assert!(stats.cancels > 0, "{stats:?}");
        drop(clients);
        let mut incoming = listener.incoming();
        // Drain the backlog so the kernel frees the rest.
        while let Ok(Ok(stream)) = time::timeout(Duration::from_millis(100), incoming.next()).await {
            drop(stream);
        }
        drop(incoming);
        settle().await;
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn dropped_opens_close_the_fds_they_produce() {
    let _serial = serial();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let before = fd_count();
        let mut options = OpenOptions::new();
        options.write(true).create(true);
        for i in 0..3000 {
            let name = format!("f{}", i % 50);
            poll_once_then_drop(dir.open_file(name, &options)).await;
            if i % 7 == 0 {
                // Completed but never polled: the drop must close it too.
                let fut = dir.open_file("settled", &options);
                let mut fut = pin!(fut);
                std::future::poll_fn(|cx| {
                    let _ = fut.as_mut().poll(cx);
                    Poll::Ready(())
                })
                .await;
                time::sleep(Duration::from_micros(100)).await;
            }
        }
        settle().await;
        assert_eq!(fd_count(), before, "{:?}", stats());
    });
}

/// Thousands of socket receives dropped in flight are cancelled: the fd
/// count comes back, the sockets stay usable, and canaries allocated after
/// the drops are untouched. The canary part is weak here (a cancelled socket
/// receive never writes, so an early free would go unseen: tried);
/// `dropped_direct_reads_never_write_into_reused_memory` is the test that
/// catches an early free, with reads the kernel cannot cancel.
/// A directory read in pieces and dropped between two of them closes its
/// directory stream.
#[test]
fn dropped_directory_reads_close_their_streams() {
    let _serial = serial();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for i in 0..3000 {
        std::fs::write(tmp.path().join(format!("f{i}")), b"").unwrap();
    }
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let before = fd_count();
        for _ in 0..100 {
            poll_once_then_drop(dir.read_dir_yielding()).await;
        }
        assert_eq!(fd_count(), before, "every stream closed");
        assert_eq!(dir.read_dir_yielding().await.unwrap().len(), 3000);
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn dropped_socket_reads_are_cancelled_and_leak_nothing() {
    let _serial = serial();
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        let before = fd_count();
        let mut pairs = Vec::new();
        for _ in 0..300 {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            pairs.push((client, server));
        }
        // 3,000 receives in flight on idle sockets, each with its own 4 KiB
        // buffer, all dropped.
        for round in 0..10 {
            for (_, server) in &pairs {
                poll_once_then_drop(server.recv(vec![round as u8; 4096])).await;
            }
        }
        // Allocate canaries of the same size: the allocator will hand out
        // memory that dropped buffers would have used had they been freed.
        let canaries: Vec<Vec<u8>> = (0..3000).map(|_| vec![0xA5u8; 4096]).collect();
        // Now data arrives on every socket. A receive that was not really
        // cancelled, writing into freed memory, would scribble on a canary.
        for (client, _) in &pairs {
            let (r, _) = client.send_all(vec![0x11u8; 4096]).await;
            r.unwrap();
        }
        time::sleep(Duration::from_millis(20)).await;
        settle().await;
        assert!(canaries.iter().all(|c| c.iter().all(|&b| b == 0xA5)), "a dropped receive wrote into reused memory");
        // The data is still there for the next receive: cancelled receives
        // took nothing (or, if one completed first, its bytes are gone with
        // its orphan; the stream itself stays usable).
        for (_, server) in &pairs {
            let (r, _) = time::timeout(Duration::from_secs(5), server.recv(Vec::with_capacity(8192))).await.unwrap();
            assert!(r.unwrap() > 0);
        }
        drop(pairs);
        settle().await;
        assert_eq!(fd_count(), before);
    });
}

/// The dangerous case: an O_DIRECT read that the kernel has started cannot
/// be cancelled, and its DMA lands in the buffer whenever the device
/// finishes. If the dropped future had freed its buffer, the canaries
/// allocated right after (same size and alignment, so the allocator hands out
/// the same addresses) would receive the file's bytes.
#[test]
fn dropped_direct_reads_never_write_into_reused_memory() {
    let _serial = serial();
    const BUF: usize = 64 * 1024;
    const READS: usize = 256;
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(tmp.path().join("big"), vec![0x11u8; BUF * READS]).unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let mut options = OpenOptions::new();
        options.direct(true);
        let file = dir.open_file("big", &options).await.unwrap();
        let before = fd_count();
        let mut corrupted = 0;
        for round in 0..8 {
            for i in 0..READS {
                let buf = percore_io::AlignedBuf::new(BUF, 4096);
                poll_once_then_drop(file.read_at(buf, (i * BUF) as u64)).await;
            }
            let mut canaries: Vec<percore_io::AlignedBuf> = (0..READS)
                .map(|_| {
                    let mut canary = percore_io::AlignedBuf::new(BUF, 4096);
                    canary.as_mut_capacity().fill(0xA5);
                    canary
                })
                .collect();
            settle().await;
            time::sleep(Duration::from_millis(5)).await;
            for canary in &mut canaries {
                if canary.as_mut_capacity().iter().any(|&b| b != 0xA5) {
                    corrupted += 1;
                }
            }
            assert_eq!(corrupted, 0, "round {round}: a dropped read wrote into reused memory");
        }
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn dropped_multishot_receives_give_their_buffers_back() {
    let _serial = serial();
    Runtime::new().unwrap().block_on(async {
        let ring = BufRing::new(256, 2048).unwrap();
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr();
        let before = fd_count();
        let mut pairs = Vec::new();
        for _ in 0..100 {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            pairs.push((client, server));
        }
        for round in 0..20 {
            // Data is in flight towards half the sockets when their streams go.
            for (i, (client, _)) in pairs.iter().enumerate() {
                if (i + round) % 2 == 0 {
                    let (r, _) = client.send_all(vec![7u8; 5000]).await;
                    r.unwrap();
                }
            }
            for (i, (_, server)) in pairs.iter().enumerate() {
                let mut stream = server.recv_multi(&ring);
                if i % 3 == 0 {
                    // Take one buffer and drop it, then drop the stream.
                    let _ = time::timeout(Duration::from_millis(1), stream.next()).await;
                } else {
                    poll_once_then_drop(stream.next()).await;
                }
                drop(stream);
            }
            // More data after the drops: late completions of cancelled
            // multishots must return their buffers too.
            for (client, _) in &pairs {
                let (r, _) = client.send_all(vec![9u8; 100]).await;
                r.unwrap();
            }
            settle().await;
        }
        // Every buffer is back: one stream can hold all 256 at once. (A
        // count kept by us would not see a buffer the kernel picked for an
        // orphan that never gave it back; this does.)
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut stream = server.recv_multi(&ring);
        let sender = percore_io::spawn(async move {
            let (r, _) = client.send_all(vec![3u8; 256 * 2048 + 4096]).await;
            r.unwrap();
            client
        });
        let mut held = Vec::new();
        while held.len() < 256 {
            match time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(buf))) => held.push(buf),
                other => panic!("could not hold all 256 buffers (got {}): {other:?}; buffers were lost", held.len()),
            }
        }
        assert_eq!(ring.available(), 0);
        drop(held);
        drop(stream);
        drop((sender.await, server));
        settle().await;
        assert_eq!(ring.available(), 256);
        drop(pairs);
        settle().await;
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn dropping_the_runtime_with_operations_in_flight_releases_everything() {
    let _serial = serial();
    let before = fd_count();
    {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind(loopback()).unwrap();
            let addr = listener.local_addr();
            let ring = BufRing::new(64, 1024).unwrap();
            let mut pairs = Vec::new();
            for _ in 0..50 {
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                pairs.push((client, server));
            }
            let pairs = std::rc::Rc::new(pairs);
            for i in 0..50 {
                let (server_pairs, ring) = (pairs.clone(), ring.clone());
                percore_io::spawn(async move {
                    let mut stream = server_pairs[i].1.recv_multi(&ring);
                    let _ = stream.next().await;
                });
                let client_pairs = pairs.clone();
                percore_io::spawn(async move {
                    let _ = client_pairs[i].0.recv(vec![0u8; 1024]).await;
                });
            }
            let listener = std::rc::Rc::new(listener);
            percore_io::spawn(async move {
                let _ = listener.incoming().next().await;
            });
            percore_io::spawn(time::sleep(Duration::from_secs(3600)));
            time::sleep(Duration::from_millis(10)).await;
            assert!(stats().ops_in_flight >= 101, "{:?}", stats());
        });
        // `rt` drops here: every task is dropped, every operation cancelled
        // and reaped, the ring closed.
    }
    assert_eq!(fd_count(), before);
}
