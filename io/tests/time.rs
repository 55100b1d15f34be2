//! percore-io's timers against a real runtime: sleeps and timeouts, the
//! loop's tick clock, postponed sleeps.

use std::rc::Rc;
use std::time::{Duration, Instant};

use percore_io::{spawn, time, yield_now, Runtime, TcpListener, TcpStream};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn sleep_and_timeout() {
    Runtime::new().unwrap().block_on(async {
        let start = Instant::now();
        time::sleep(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Many timers fire in deadline order.
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut handles = Vec::new();
        for i in (0..20u64).rev() {
            let order = order.clone();
            handles.push(spawn(async move {
                time::sleep(Duration::from_millis(2 * i)).await;
                order.borrow_mut().push(i);
            }));
        }
        for h in handles {
            h.await;
        }
        assert_eq!(*order.borrow(), (0..20).collect::<Vec<_>>());
        // A recv with no data times out; the socket still works after.
        let listener = TcpListener::bind(loopback()).unwrap();
        let client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let start = Instant::now();
        let r = time::timeout(Duration::from_millis(50), server.recv(Vec::with_capacity(64))).await;
        assert!(r.is_err(), "nothing was sent");
        assert!(start.elapsed() >= Duration::from_millis(50));
        let (r, _) = client.send_all(b"late".to_vec()).await;
        r.unwrap();
        let (r, buf) = time::timeout(Duration::from_secs(5), server.recv(Vec::with_capacity(64))).await.unwrap();
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"late");
        let stats = percore_io::stats();
        assert!(stats.cancels >= 1, "the timed-out recv was cancelled: {stats:?}");
        assert_eq!(stats.timers, 0, "dropped sleeps unregister");
    });
}

#[test]
fn the_loop_clock_is_read_once_a_tick_and_never_ahead() {
    let outside = time::loop_now();
    assert!(outside.elapsed() < Duration::from_secs(1), "outside a runtime it is the clock");
    Runtime::new().unwrap().block_on(async {
        let tick = time::loop_now();
        assert!(tick <= Instant::now(), "never ahead of the clock");
        // Work without an await stays in the tick: the same value.
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(5) {}
        assert_eq!(time::loop_now(), tick);
        // A sleep ends in a later tick, which read the clock after the
        // deadline; a deadline from the loop clock is met as well.
        time::sleep(Duration::from_millis(20)).await;
        let later = time::loop_now();
        assert!(later >= tick + Duration::from_millis(20), "{:?}", later - tick);
        let deadline = time::loop_now() + Duration::from_millis(10);
        assert!(time::timeout_at(deadline, std::future::pending::<()>()).await.is_err());
        assert!(Instant::now() >= deadline && time::loop_now() >= deadline);
        yield_now().await;
        assert!(time::loop_now() <= Instant::now());
    });
    // After the runtime the clock is read again, not the last tick's.
    let last = Instant::now();
    assert!(time::loop_now() >= last);
}

#[test]
fn a_postponed_sleep_ends_at_its_last_deadline_and_registers_once_per_firing() {
    Runtime::new().unwrap().block_on(async {
        let start = Instant::now();
        let mut sleep = time::sleep_until(start + Duration::from_millis(20));
        let registered = || percore_io::stats().timers_registered;
        // Registered by its first poll, then postponed many times while in
        // use: no registration until the first deadline fires.
        let before = registered();
        for i in 0..100u64 {
            sleep.postpone(start + Duration::from_millis(20 + i));
            let r = time::timeout_by(&mut sleep, time::sleep(Duration::from_micros(10))).await;
            assert!(r.is_ok(), "the 10 µs sleep ends first");
        }
        assert_eq!(registered() - before, 101, "one for the postponed sleep, one per 10 µs sleep");
        // It ends at its last deadline (119 ms), not at the first (20 ms):
        // the timer fired at 20 ms registers once more.
        let r = time::timeout_by(&mut sleep, std::future::pending::<()>()).await;
        assert!(r.is_err());
        assert!(start.elapsed() >= Duration::from_millis(119), "{:?}", start.elapsed());
        assert_eq!(registered() - before, 102);
        // Done, it can be used again; an earlier deadline is a reset.
        let again = Instant::now();
        sleep.postpone(again + Duration::from_secs(60));
        assert!(time::timeout_by(&mut sleep, time::sleep(Duration::from_millis(1))).await.is_ok());
        sleep.postpone(again + Duration::from_millis(5));
        assert!(time::timeout_by(&mut sleep, std::future::pending::<()>()).await.is_err());
        let took = again.elapsed();
        assert!(took >= Duration::from_millis(5) && took < Duration::from_secs(30), "{took:?}");
        drop(sleep);
        assert_eq!(percore_io::stats().timers, 0, "nothing left armed");
    });
}
