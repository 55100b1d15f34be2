//! The echo load client, the same for every server: closed-loop ping-pong
//! over many connections on one pinned core (percore-io).
//!
//! `echo-client <port> <cpu> <connections> <message bytes> <warmup s> <seconds>`
//! prints one line: `requests=N total=N seconds=S rps=R p50_us=.. p99_us=..
//! p999_us=.. max_us=.. client_cpu=..`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use percore_io::{spawn, Runtime, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> f64 { args.get(i).expect("argument").parse().unwrap() };
    let (port, cpu, connections, size) = (arg(1) as u16, arg(2) as usize, arg(3) as usize, arg(4) as usize);
    let (warmup, seconds) = (Duration::from_secs_f64(arg(5)), Duration::from_secs_f64(arg(6)));
    percore_benches::pin(cpu);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let histogram = Rc::new(RefCell::new(hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let (measured, total) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + seconds;
    let cpu_before = percore_benches::cpu_time(std::process::id());
    Runtime::new().unwrap().block_on(async {
        let mut handles = Vec::new();
        for c in 0..connections {
            let (histogram, measured, total) = (histogram.clone(), measured.clone(), total.clone());
            handles.push(spawn(async move {
                let stream = TcpStream::connect(addr).await.expect("connect to the echo server");
                stream.set_nodelay(true).unwrap();
                let message: Vec<u8> = (0..size).map(|i| (i + c) as u8).collect();
                let mut out = message.clone();
                let mut back = Vec::with_capacity(size.max(4096));
                loop {
                    let sent_at = Instant::now();
                    if sent_at >= stop_at {
                        return;
                    }
                    let (r, o) = stream.send_all(out).await;
                    r.expect("send");
                    out = o;
                    let mut got = 0;
                    while got < size {
                        back.clear();
                        let (r, b) = stream.recv(back).await;
                        let n = r.expect("recv");
                        assert!(n > 0, "server closed the connection");
                        assert_eq!(&b[..], &message[got..got + n], "echo mismatch");
                        got += n;
                        back = b;
                    }
                    let done = Instant::now();
                    total.set(total.get() + 1);
                    if sent_at >= measure_from {
                        measured.set(measured.get() + 1);
                        let _ = histogram.borrow_mut().record(done.duration_since(sent_at).as_micros() as u64);
                    }
                }
            }));
        }
        for h in handles {
            h.await;
        }
    });
    let client_cpu = percore_benches::cpu_time(std::process::id()) - cpu_before;
    let wall = started.elapsed();
    let h = histogram.borrow();
    println!(
        "requests={} total={} seconds={:.3} rps={:.0} p50_us={} p99_us={} p999_us={} max_us={} client_cpu={:.3}",
        measured.get(),
        total.get(),
        seconds.as_secs_f64(),
        measured.get() as f64 / seconds.as_secs_f64(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        client_cpu.as_secs_f64() / wall.as_secs_f64(),
    );
}
