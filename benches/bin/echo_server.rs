//! A TCP echo server on one pinned core, on percore-io or a peer runtime.
//!
//! `echo-server <percore|percore-multishot|monoio|monoio-defer|tokio-uring> <port> <cpu>`.
//! Every runtime runs the same loop: accept, then per connection read into a
//! 4 KiB owned buffer and write it all back. `percore-multishot` shows what
//! percore-io's own features add: one multishot receive per connection from a
//! shared buffer ring, each buffer sent straight back with no copy.

use std::net::SocketAddr;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = args.get(1).expect("runtime").clone();
    let port: u16 = args.get(2).expect("port").parse().unwrap();
    let cpu: usize = args.get(3).expect("cpu").parse().unwrap();
    percore_benches::pin(cpu);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    match runtime.as_str() {
        "percore" => percore(addr),
        "percore-multishot" => percore_multishot(addr),
        "monoio" => monoio(addr, false),
        "monoio-defer" => monoio(addr, true),
        "tokio-uring" => tokio_uring(addr),
        other => panic!("unknown runtime {other}"),
    }
}

fn ready() {
    println!("ready");
}

fn percore(addr: SocketAddr) {
    use percore_io::{spawn, Runtime, TcpListener};
    let submit_batch = std::env::var("SUBMIT_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(u32::MAX);
    Runtime::builder().submit_batch(submit_batch).build().unwrap().block_on(async move {
        let listener = TcpListener::bind(addr).unwrap();
        ready();
        let mut incoming = listener.incoming();
        loop {
            let Ok(stream) = incoming.next().await else { continue };
            stream.set_nodelay(true).unwrap();
            spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let (r, b) = stream.recv(buf).await;
                    match r {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    let (r, mut b) = stream.send_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    b.clear();
                    buf = b;
                }
            });
        }
    });
}

fn percore_multishot(addr: SocketAddr) {
    use percore_io::{spawn, BufRing, Runtime, TcpListener};
    Runtime::new().unwrap().block_on(async move {
        let listener = TcpListener::bind(addr).unwrap();
        let ring = BufRing::new(1024, 4096).unwrap();
        ready();
        let mut incoming = listener.incoming();
        loop {
            let Ok(stream) = incoming.next().await else { continue };
            stream.set_nodelay(true).unwrap();
            let ring = ring.clone();
            spawn(async move {
                let mut received = stream.recv_multi(&ring);
                while let Some(Ok(buf)) = received.next().await {
                    if stream.send_all(buf).await.0.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn monoio(addr: SocketAddr, defer_taskrun: bool) {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut builder = io_uring_06::IoUring::builder();
    if defer_taskrun {
        builder.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .uring_builder(builder)
        .with_entries(512)
        .build()
        .expect("monoio runtime");
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind(addr).unwrap();
        ready();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            stream.set_nodelay(true).unwrap();
            monoio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let (r, b) = stream.read(buf).await;
                    match r {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    let (r, mut b) = stream.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    b.clear();
                    buf = b;
                }
            });
        }
    });
}

fn tokio_uring(addr: SocketAddr) {
    tokio_uring::builder().entries(512).start(async move {
        let listener = tokio_uring::net::TcpListener::bind(addr).unwrap();
        ready();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            stream.set_nodelay(true).unwrap();
            tokio_uring::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let (r, b) = stream.read(buf).await;
                    match r {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    let (r, mut b) = stream.write_all(b).await;
                    if r.is_err() {
                        return;
                    }
                    b.clear();
                    buf = b;
                }
            });
        }
    });
}
