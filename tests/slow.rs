//! Slow and greedy clients: a thousand connections trickling a request
//! head do not stop normal clients and are closed at the header timeout
//! (which runs from a head's first byte, not per byte); a client that stops
//! reading is dropped at the send timeout while a slow one that keeps
//! reading gets everything; memory stays bounded meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{get, metric, metrics, rss_kib, write_file, Daemon};

fn open_connections(daemon: &Daemon) -> f64 {
    metric(&metrics(daemon), "percore_open_connections", &[])
}

#[test]
fn a_thousand_slow_heads_do_not_stop_normal_clients_and_end_at_the_header_timeout() {
    let _heavy = crate::util::heavy();
    const SLOW: usize = 1000;
    // One shard: the slow connections and the normal client share it.
    let daemon = Daemon::start(&["--cores", "1", "--header-timeout-ms", "2000"]);
    write_file(daemon.dir(), "f.txt", b"normal file");
    for _ in 0..100 {
        assert_eq!(get(&daemon, "/ping").status, 200);
    }
    let baseline = rss_kib(daemon.pid());
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = TcpStream::connect(daemon.addr).unwrap();
            s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    // A normal client throughout, on its own thread.
    let addr = daemon.addr;
    let normal = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut served = 0;
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            let t = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /files/f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).unwrap();
            assert!(answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"normal file"));
            worst = worst.max(t.elapsed());
            served += 1;
        }
        (served, worst)
    });
    // Trickle a byte on every slow connection every 400 ms, for twice the
    // header timeout, noting when each is answered.
    let mut peak = 0;
    let mut answered: Vec<Option<(Duration, Vec<u8>)>> = vec![None; SLOW];
    for s in &slow {
        s.set_nonblocking(true).unwrap();
    }
    while started.elapsed() < Duration::from_millis(4000) && answered.iter().any(Option::is_none) {
        for (s, answer) in slow.iter_mut().zip(&mut answered) {
            if answer.is_some() {
                continue;
            }
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(n) if n > 0 => *answer = Some((started.elapsed(), buf[..n].to_vec())),
                _ => {
                    let _ = s.write_all(b"a");
                }
            }
        }
        peak = peak.max(rss_kib(daemon.pid()));
        std::thread::sleep(Duration::from_millis(400));
    }
    let (served, worst) = normal.join().unwrap();
    assert!(served >= 50, "the normal client was served {served} times in 2.5 s");
    assert!(worst < Duration::from_millis(500), "a normal request took {worst:?}");
    // Bounded: the slow heads cost at most 16 KiB each, 64 MiB in all.
    let growth = peak.saturating_sub(baseline);
    assert!(growth * 1024 / SLOW as u64 <= 16 * 1024, "{growth} KiB for {SLOW} slow connections");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    // Each got 408 once its head was 2 s old, though it kept trickling.
    let mut latest = Duration::ZERO;
    for answer in &answered {
        let (at, answer) = answer.as_ref().expect("every trickling head is answered while it still trickles");
        assert!(answer.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(answer));
        latest = latest.max(*at);
    }
    assert!(latest < Duration::from_millis(3400), "the last 408 came after {latest:?}");
    // And each connection is closed with a FIN, not a reset (the daemon
    // half-closes and reads what still trickles in, nginx's lingering close).
    for s in &mut slow {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut rest = Vec::new();
        assert!(s.read_to_end(&mut rest).is_ok(), "closed with a FIN");
    }
    println!("slow heads: {SLOW} trickling, normal client {served} requests (worst {worst:?}), RSS +{growth} KiB");
    // The daemon lets go of them once its lingering time (2 s) is over,
    // though these clients still hold their ends open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_connections(&daemon) > 1.0 {
        assert!(Instant::now() < deadline, "{} connections still open", open_connections(&daemon));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_a_slow_reader_is_served() {
    let _heavy = crate::util::heavy();
    let daemon = Daemon::start(&["--cores", "1", "--send-timeout-ms", "500"]);
    let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 253) as u8).collect();
    write_file(daemon.dir(), "big", &big);
    // Asks for 32 MiB and never reads: the socket buffers fill, the send
    // stalls, the connection is dropped.
    let mut stalled = TcpStream::connect(daemon.addr).unwrap();
    stalled.write_all(b"GET /files/big HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_connections(&daemon) > 1.0 {
        assert!(Instant::now() < deadline, "the stalled connection was never dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A slow reader that keeps reading gets all of 8 MiB, though that takes
    // several send timeouts. It reads at 4 MiB/s by the clock, whatever
    // each read returns (the socket's buffers decide that): a 1 MiB piece
    // then drains in about 250 ms, half the send timeout.
    write_file(daemon.dir(), "eight", &big[..8 << 20]);
    let mut reader = TcpStream::connect(daemon.addr).unwrap();
    reader.write_all(b"GET /files/eight HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let started = Instant::now();
    let got = crate::util::read_paced(&mut reader, 4 << 20);
    let took = started.elapsed();
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got[body_at..] == big[..8 << 20], "the slow reader got {} body bytes", got.len() - body_at);
    assert!(took > Duration::from_millis(1000), "slow enough to span send timeouts: {took:?}");
    drop(stalled);
}

#[test]
fn connections_beyond_the_limit_get_503_and_the_others_go_on() {
    let daemon = Daemon::start(&["--cores", "1", "--connections-max-per-shard", "3"]);
    let mut held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(daemon.addr).unwrap()).collect();
    for s in &mut held {
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(crate::util::read_response(s, false).unwrap().status, 200);
    }
    let mut extra = TcpStream::connect(daemon.addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = crate::util::read_response(&mut extra, false).expect("an answer without a request");
    assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
    // The held ones are still served, and a slot frees when one leaves.
    held[0].write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(crate::util::read_response(&mut held[0], false).unwrap().status, 200);
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(daemon.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        if crate::util::read_response(&mut s, false).unwrap().status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}
