//! Cross-core benchmark: request/reply round trips between two shards pinned
//! to CPUs 0 and 1, with the target busy and with the target parked, and
//! request/reply throughput, for both doorbells (eventfd and MSG_RING);
//! with, in the same run, the floors: a cache line bounced between the same
//! two CPUs by two spinning threads, and a parked thread woken by the other
//! (a futex, no ring).
//!
//! Rounds report medians of each round's p50/p99; the floor is the fastest
//! round's.
//!
//! `cargo bench -p percore-benches --bench cores [-- ROUNDS]`; with
//! `CORES_BENCH_ONLY=mean` only the means (crossbeam alone, the runtime
//! alone, the mesh), `=payload` what a message's size costs (crossbeam
//! alone and the runtime alone with 8- to 56-byte messages, beside the
//! mesh, whose messages are 56 bytes), `=busy`, `=meshmean` and
//! `=launched` one figure repeated, for profiling.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percore_benches::median;
use percore_cores::{launch, submit_to, Config, CoreSet};
use percore_io::{time, yield_now, DoorbellKind};

/// A cache line of its own.
#[repr(align(128))]
struct Line(AtomicU64);

/// Nanoseconds per round trip of a value bounced between CPU 0 and CPU 1.
fn ping_pong_floor() -> f64 {
    const ROUNDS: u64 = 2_000_000;
    let line = Arc::new(Line(AtomicU64::new(0)));
    let other = line.clone();
    let partner = std::thread::spawn(move || {
        percore_benches::pin(1);
        for i in 0..ROUNDS {
            while other.0.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.0.store(2 * i + 2, Ordering::Release);
        }
    });
    // Its own thread too: pinning the main thread would narrow the affinity
    // mask that `launch` reads afterwards.
    let elapsed = std::thread::spawn(move || {
        percore_benches::pin(0);
        let start = Instant::now();
        for i in 0..ROUNDS {
            line.0.store(2 * i + 1, Ordering::Release);
            while line.0.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
        start.elapsed()
    })
    .join()
    .unwrap();
    partner.join().unwrap();
    elapsed.as_nanos() as f64 / ROUNDS as f64
}

/// The operating system's own floor for a parked target, in ns (p50,
/// p99): a thread on CPU 0 wakes a thread parked on CPU 1
/// (`std::thread::unpark`, a futex) and spins until it answers through an
/// atomic; 100 us between requests, as the mesh's parked round trip waits.
/// No ring and no doorbell: what waking a sleeping core costs on this host.
fn parked_floor() -> (f64, f64) {
    const SAMPLES: u64 = 5_000;
    let asked = Arc::new(Line(AtomicU64::new(0)));
    let answered = Arc::new(Line(AtomicU64::new(0)));
    let (b_asked, b_answered) = (asked.clone(), answered.clone());
    let partner = std::thread::spawn(move || {
        percore_benches::pin(1);
        let mut last = 0;
        while last < SAMPLES {
            let now = b_asked.0.load(Ordering::Acquire);
            if now == last {
                std::thread::park();
                continue;
            }
            last = now;
            b_answered.0.store(now, Ordering::Release);
        }
    });
    let target = partner.thread().clone();
    let mut samples = std::thread::spawn(move || {
        percore_benches::pin(0);
        let mut samples = Vec::with_capacity(SAMPLES as usize);
        for i in 1..=SAMPLES {
            let until = Instant::now() + Duration::from_micros(100);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let start = Instant::now();
            asked.0.store(i, Ordering::Release);
            target.unpark();
            while answered.0.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            samples.push(start.elapsed().as_nanos() as f64);
        }
        samples
    })
    .join()
    .unwrap();
    partner.join().unwrap();
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

/// Waits for a message by spinning on `try_recv` (no parking, as a busy shard).
fn spin_recv<T>(rx: &crossbeam_channel::Receiver<T>) -> T {
    loop {
        match rx.try_recv() {
            Ok(value) => return value,
            Err(_) => std::hint::spin_loop(),
        }
    }
}

/// Nanoseconds per round trip through two unbounded crossbeam channels (the
/// kind the mesh uses) between two threads pinned to CPUs 0 and 1 that spin
/// on `try_recv`: no executor, no waker, no boxing. When `boxed`, each message
/// is a boxed closure like a mesh request. What the channel itself costs.
fn crossbeam_floor(boxed: bool) -> f64 {
    type Job = Box<dyn FnOnce() -> u64 + Send>;
    const ROUNDS: u64 = 500_000;
    let (to_b, from_a) = crossbeam_channel::unbounded::<Job>();
    let (to_a, from_b) = crossbeam_channel::unbounded::<Job>();
    let partner = std::thread::spawn(move || {
        percore_benches::pin(1);
        for _ in 0..ROUNDS {
            let v = spin_recv(&from_a)();
            let reply: Job = if boxed { Box::new(move || v + 1) } else { Box::new(|| 0) };
            to_a.send(reply).unwrap();
        }
    });
    let elapsed = std::thread::spawn(move || {
        percore_benches::pin(0);
        let start = Instant::now();
        for i in 0..ROUNDS {
            // A non-capturing closure is a zero-sized box: no allocation.
            let job: Job = if boxed { Box::new(move || i) } else { Box::new(|| 0) };
            to_b.send(job).unwrap();
            std::hint::black_box(spin_recv(&from_b)());
        }
        start.elapsed()
    })
    .join()
    .unwrap();
    partner.join().unwrap();
    elapsed.as_nanos() as f64 / ROUNDS as f64
}

/// Nanoseconds per round trip through two unbounded crossbeam channels, as
/// [`crossbeam_floor`], with messages of type `T` (plain data, no boxing):
/// what a message's size costs the channel (its slot, with the slot's
/// state word, may straddle cache lines).
fn crossbeam_payload<T: Default + Send + 'static>() -> f64 {
    const ROUNDS: u64 = 500_000;
    let (to_b, from_a) = crossbeam_channel::unbounded::<T>();
    let (to_a, from_b) = crossbeam_channel::unbounded::<T>();
    let partner = std::thread::spawn(move || {
        percore_benches::pin(1);
        for _ in 0..ROUNDS {
            let v = spin_recv(&from_a);
            to_a.send(std::hint::black_box(v)).unwrap();
        }
    });
    let elapsed = std::thread::spawn(move || {
        percore_benches::pin(0);
        let start = Instant::now();
        for _ in 0..ROUNDS {
            to_b.send(T::default()).unwrap();
            std::hint::black_box(spin_recv(&from_b));
        }
        start.elapsed()
    })
    .join()
    .unwrap();
    partner.join().unwrap();
    elapsed.as_nanos() as f64 / ROUNDS as f64
}

/// A mesh message's size (56 bytes), 8-byte aligned.
#[derive(Default)]
struct Words7([u64; 7]);

/// Two words.
#[derive(Default)]
#[allow(dead_code)] // only its size matters
struct Words2([u64; 2]);

/// A number carried in a message of some size.
trait Carry: Send + 'static {
    fn wrap(v: u64) -> Self;
    fn value(&self) -> u64;
}

impl Carry for u64 {
    fn wrap(v: u64) -> Self {
        v
    }
    fn value(&self) -> u64 {
        *self
    }
}

impl Carry for Words7 {
    fn wrap(v: u64) -> Self {
        Words7([v, 0, 0, 0, 0, 0, 0])
    }
    fn value(&self) -> u64 {
        self.0[0]
    }
}

/// 56 bytes in a cache line of its own (the slot's state word then in the
/// next).
#[derive(Default)]
#[repr(align(64))]
#[allow(dead_code)] // only its size matters
struct Line56([u64; 7]);

fn config(doorbell: DoorbellKind) -> Config {
    Config {
        cores: CoreSet::List(vec![0, 1]),
        runtime: percore_io::Builder::default().doorbell(doorbell),
        grace: Duration::from_secs(5),
    }
}

/// Keeps the current shard busy (never parked) until `stop` is set.
fn spin_until(stop: Rc<Cell<bool>>) {
    percore_io::spawn(async move {
        while !stop.get() {
            yield_now().await;
        }
    });
}

/// Round-trip latencies in ns (p50, p99): shard 0 asks shard 1 to run an
/// empty closure. Shard 0 always spins so that only the target's side is
/// measured; shard 1 spins too when `busy`, else it parks between requests.
fn round_trip(doorbell: DoorbellKind, busy: bool) -> (f64, f64) {
    let running = launch(config(doorbell), move |shard| async move {
        let stop = Rc::new(Cell::new(false));
        if shard.id == 1 {
            if busy {
                spin_until(stop.clone());
            }
            percore_cores::stopping().await;
            stop.set(true);
            return None;
        }
        spin_until(stop.clone());
        let requests = if busy { 200_000 } else { 20_000 };
        let mut samples = Vec::with_capacity(requests);
        for _ in 0..requests {
            if !busy {
                // Give the target time to run out of work and park.
                let until = Instant::now() + Duration::from_micros(100);
                while Instant::now() < until {
                    yield_now().await;
                }
            }
            let start = Instant::now();
            submit_to(1, || ()).await.unwrap();
            samples.push(start.elapsed().as_nanos() as f64);
        }
        stop.set(true);
        percore_cores::stop();
        samples.sort_by(f64::total_cmp);
        Some((samples[samples.len() / 2], samples[samples.len() * 99 / 100]))
    })
    .unwrap();
    running.join().unwrap()[0].flatten().expect("shard 0 reports")
}

/// Mean nanoseconds per busy round trip, timed over the whole loop as
/// [`crossbeam_floor`] times its own (no clock read per request): the
/// figure to set against crossbeam alone. Asked from a task, as the
/// daemon's connections ask and as the runtime alone asks: a shard's main
/// future is polled at the start of the tick after its wake-up, a task in
/// the same tick (about 60 ns more a round trip from the main future).
fn round_trip_mean(doorbell: DoorbellKind) -> f64 {
    mean_from_shard_0(doorbell, 200_000, |_| async {
        submit_to(1, || ()).await.unwrap();
        0
    })
}

/// Mean nanoseconds per round trip that `ask` makes from a task on shard 0
/// to shard 1, both shards spinning ([`time_asks`]).
fn mean_from_shard_0<F, Fut>(doorbell: DoorbellKind, rounds: u64, ask: F) -> f64
where
    F: Fn(u64) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + 'static,
{
    let running = launch(config(doorbell), move |shard| async move {
        let stop = Rc::new(Cell::new(false));
        spin_until(stop.clone());
        if shard.id == 1 {
            percore_cores::stopping().await;
            stop.set(true);
            return None;
        }
        let elapsed = percore_io::spawn(time_asks(ask, rounds)).await;
        stop.set(true);
        percore_cores::stop();
        Some(elapsed.as_nanos() as f64 / rounds as f64)
    })
    .unwrap();
    running.join().unwrap()[0].flatten().expect("shard 0 reports")
}

/// The runtime alone, without the mesh: two runtimes on CPUs 0 and 1, each
/// with a spinning task, pass a number back and forth through a crossbeam
/// channel that a plain `Poller` drains (no boxing, no reply slot, no
/// thread-local lookup); the asking side awaits the answer in a task. Mean
/// nanoseconds per round trip: what the event loop's ticks add to
/// crossbeam alone, apart from what the mesh adds.
fn runtime_alone_mean<T: Carry>() -> f64 {
    let (to_b, from_a) = crossbeam_channel::unbounded::<T>();
    let (to_a, from_b) = crossbeam_channel::unbounded::<T>();
    let (remote_tx, remote_rx) = std::sync::mpsc::channel();
    let (a_remote_tx, a_remote_rx) = std::sync::mpsc::channel();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b_done = done.clone();
    let partner = std::thread::spawn(move || {
        percore_benches::pin(1);
        let rt = percore_io::Runtime::new().unwrap();
        remote_tx.send(rt.remote()).unwrap();
        let a_remote: percore_io::Remote = a_remote_rx.recv().unwrap();
        rt.block_on(async move {
            answer_each(from_a, to_a, a_remote);
            let stop = Rc::new(Cell::new(false));
            spin_until(stop.clone());
            while !b_done.load(Ordering::Relaxed) {
                time::sleep(Duration::from_millis(1)).await;
            }
            stop.set(true);
        });
    });
    percore_benches::pin(0);
    let rt = percore_io::Runtime::new().unwrap();
    a_remote_tx.send(rt.remote()).unwrap();
    let b_remote: percore_io::Remote = remote_rx.recv().unwrap();
    let elapsed = rt.block_on(async move {
        let stop = Rc::new(Cell::new(false));
        spin_until(stop.clone());
        let elapsed = ask_rounds(to_b, from_b, b_remote).await;
        stop.set(true);
        elapsed
    });
    done.store(true, Ordering::Relaxed);
    partner.join().unwrap();
    elapsed.as_nanos() as f64 / ALONE_ROUNDS as f64
}

/// As [`runtime_alone_mean`] with 56-byte messages, but between two shards
/// that `launch` started (each polling its unused mesh inbox every tick, as
/// the mesh's shards do): tells the cost of the shards' setup apart from
/// that of the mesh's own message path.
fn launched_alone_mean() -> f64 {
    type Ends<T> = (crossbeam_channel::Sender<T>, crossbeam_channel::Receiver<T>);
    let (to_b, from_a) = crossbeam_channel::unbounded::<Words7>();
    let (to_a, from_b) = crossbeam_channel::unbounded::<Words7>();
    let ends: Arc<std::sync::Mutex<[Option<Ends<Words7>>; 2]>> =
        Arc::new(std::sync::Mutex::new([Some((to_b, from_b)), Some((to_a, from_a))]));
    let remotes: Arc<std::sync::Mutex<[Option<percore_io::Remote>; 2]>> = Arc::default();
    let running = launch(config(DoorbellKind::EventFd), move |shard| {
        let (ends, remotes) = (ends.clone(), remotes.clone());
        async move {
            remotes.lock().unwrap()[shard.id] = Some(percore_io::remote());
            let other = loop {
                if let Some(remote) = remotes.lock().unwrap()[1 - shard.id].clone() {
                    break remote;
                }
                yield_now().await;
            };
            let (tx, rx) = ends.lock().unwrap()[shard.id].take().expect("each shard's ends, once");
            let stop = Rc::new(Cell::new(false));
            spin_until(stop.clone());
            if shard.id == 1 {
                answer_each(rx, tx, other);
                percore_cores::stopping().await;
                stop.set(true);
                return None;
            }
            let elapsed = ask_rounds(tx, rx, other).await;
            stop.set(true);
            percore_cores::stop();
            Some(elapsed.as_nanos() as f64 / ALONE_ROUNDS as f64)
        }
    })
    .unwrap();
    running.join().unwrap()[0].flatten().expect("shard 0 reports")
}

/// Mean nanoseconds per busy round trip through the mesh's inboxes
/// without its requests and replies: shard 0 `post`s a closure to shard 1,
/// which `post`s one back that hands the number to the waiting task (no
/// reply slot, no `ReplyTo`, no reply future). Tells the inboxes' cost
/// apart from the request machinery's.
fn posted_mean() -> f64 {
    use std::task::{Poll, Waker};
    thread_local! {
        static ANSWER: Cell<Option<u64>> = const { Cell::new(None) };
        static WAITING: std::cell::RefCell<Option<Waker>> = const { std::cell::RefCell::new(None) };
    }
    fn answered(v: u64) {
        ANSWER.with(|a| a.set(Some(v)));
        if let Some(w) = WAITING.with(|w| w.borrow_mut().take()) {
            w.wake();
        }
    }
    async fn ask(v: u64) -> u64 {
        percore_cores::post(1, move || {
            let _ = percore_cores::post(0, move || answered(v + 1));
        })
        .unwrap();
        std::future::poll_fn(|cx| match ANSWER.with(Cell::take) {
            Some(v) => Poll::Ready(v),
            None => {
                WAITING.with(|w| *w.borrow_mut() = Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
    mean_from_shard_0(DoorbellKind::EventFd, ALONE_ROUNDS, ask)
}

/// Round trips timed by [`ask_rounds`].
const ALONE_ROUNDS: u64 = 200_000;

/// Drains a channel; each message is handed to `on`.
struct Drain<T, F: FnMut(T)> {
    rx: crossbeam_channel::Receiver<T>,
    on: F,
}

impl<T: 'static, F: FnMut(T) + 'static> percore_io::Poller for Drain<T, F> {
    fn poll(&mut self) -> usize {
        let mut n = 0;
        while let Ok(v) = self.rx.try_recv() {
            (self.on)(v);
            n += 1;
        }
        n
    }
    fn has_work(&self) -> bool {
        !self.rx.is_empty()
    }
}

/// The answering side: a poller that sends back each number plus one and
/// wakes the asker's runtime.
fn answer_each<T: Carry>(
    rx: crossbeam_channel::Receiver<T>,
    tx: crossbeam_channel::Sender<T>,
    asker: percore_io::Remote,
) {
    percore_io::add_poller(Drain {
        rx,
        on: move |v: T| {
            tx.send(T::wrap(v.value() + 1)).unwrap();
            asker.unpark();
        },
    });
}

/// The asking side: a task that sends a number, awaits the answer (which a
/// poller hands it), and again; the time of [`ALONE_ROUNDS`] round trips
/// after a warm-up.
async fn ask_rounds<T: Carry>(
    tx: crossbeam_channel::Sender<T>,
    rx: crossbeam_channel::Receiver<T>,
    answerer: percore_io::Remote,
) -> Duration {
    use std::task::{Poll, Waker};
    struct Answer {
        value: Cell<Option<u64>>,
        waker: std::cell::RefCell<Option<Waker>>,
    }
    let answer = Rc::new(Answer { value: Cell::new(None), waker: Default::default() });
    let on_answer = answer.clone();
    percore_io::add_poller(Drain {
        rx,
        on: move |v: T| {
            on_answer.value.set(Some(v.value()));
            if let Some(w) = on_answer.waker.borrow_mut().take() {
                w.wake();
            }
        },
    });
    percore_io::spawn(async move {
        let ask = |v: u64| {
            tx.send(T::wrap(v)).unwrap();
            answerer.unpark();
            std::future::poll_fn(|cx| match answer.value.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    *answer.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        };
        time_asks(ask, ALONE_ROUNDS).await
    })
    .await
}

/// The time of `rounds` round trips that `ask` makes, one after another,
/// after 1,000 to warm up (the channels' blocks allocated).
async fn time_asks<Fut: std::future::Future<Output = u64>>(ask: impl Fn(u64) -> Fut, rounds: u64) -> Duration {
    for i in 0..1_000 {
        ask(i).await;
    }
    let start = Instant::now();
    for i in 0..rounds {
        std::hint::black_box(ask(i).await);
    }
    start.elapsed()
}

/// Request/reply pairs per second from shard 0 to shard 1 with 64 requests
/// in flight (each pair is two messages).
fn throughput(doorbell: DoorbellKind) -> f64 {
    let running = launch(config(doorbell), |shard| async move {
        if shard.id == 1 {
            percore_cores::stopping().await;
            return None;
        }
        let done = Rc::new(Cell::new(0u64));
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let done = done.clone();
            tasks.push(percore_io::spawn(async move {
                while Instant::now() < deadline {
                    submit_to(1, || ()).await.unwrap();
                    done.set(done.get() + 1);
                }
            }));
        }
        let start = Instant::now();
        for t in tasks {
            t.await;
        }
        let rate = done.get() as f64 / start.elapsed().as_secs_f64();
        percore_cores::stop();
        time::sleep(Duration::from_millis(1)).await;
        Some(rate)
    })
    .unwrap();
    running.join().unwrap()[0].flatten().expect("shard 0 reports")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    assert!(percore_cores::allowed_cpus().len() >= 2, "needs CPUs 0 and 1");
    if std::env::var("CORES_BENCH_ONLY").as_deref() == Ok("mean") {
        for _ in 0..rounds {
            let bare = crossbeam_floor(false);
            let boxed = crossbeam_floor(true);
            let mean = round_trip_mean(DoorbellKind::EventFd);
            let runtime = std::thread::spawn(runtime_alone_mean::<u64>).join().unwrap();
            println!(
                "crossbeam alone {bare:.0} ns, boxed {boxed:.0} ns, runtime alone {runtime:.0} ns ({:.2}x), mesh busy mean {mean:.0} ns ({:.2}x)",
                runtime / bare,
                mean / bare
            );
        }
        return;
    }
    if std::env::var("CORES_BENCH_ONLY").as_deref() == Ok("meshmean") {
        // For profiling: only the mesh's busy round trip, timed as a whole.
        for _ in 0..rounds {
            println!("mesh busy mean {:.0} ns", round_trip_mean(DoorbellKind::EventFd));
        }
        return;
    }
    if std::env::var("CORES_BENCH_ONLY").as_deref() == Ok("launched") {
        // For profiling beside `meshmean`: the same shards, plain channels.
        for _ in 0..rounds {
            println!("56 B between launched shards {:.0} ns", launched_alone_mean());
        }
        return;
    }
    if std::env::var("CORES_BENCH_ONLY").as_deref() == Ok("payload") {
        for _ in 0..rounds {
            let one = crossbeam_payload::<u64>();
            let two = crossbeam_payload::<Words2>();
            let seven = crossbeam_payload::<Words7>();
            let line = crossbeam_payload::<Line56>();
            let runtime = std::thread::spawn(runtime_alone_mean::<u64>).join().unwrap();
            let runtime56 = std::thread::spawn(runtime_alone_mean::<Words7>).join().unwrap();
            let launched56 = launched_alone_mean();
            let posted = posted_mean();
            let mesh = round_trip_mean(DoorbellKind::EventFd);
            let mesh_msg_ring = round_trip_mean(DoorbellKind::MsgRing);
            println!(
                "crossbeam alone, a message of 8 B {one:.0} ns, 16 B {two:.0} ns, 56 B {seven:.0} ns, \
                 56 B in a line of its own {line:.0} ns | runtime alone, 8 B {runtime:.0} ns, 56 B {runtime56:.0} ns, \
                 56 B between launched shards {launched56:.0} ns | the mesh's inboxes by `post` {posted:.0} ns | mesh {mesh:.0} ns (msg_ring doorbell {mesh_msg_ring:.0})"
            );
        }
        return;
    }
    if std::env::var("CORES_BENCH_ONLY").as_deref() == Ok("busy") {
        // For profiling: only the busy round trip, repeated.
        for _ in 0..rounds {
            let (p50, p99) = round_trip(DoorbellKind::MsgRing, true);
            println!("busy p50 {p50:.0} ns p99 {p99:.0} ns");
        }
        return;
    }
    println!("cores: shards on CPUs 0 and 1, {rounds} rounds, medians");
    let kinds = [("eventfd", DoorbellKind::EventFd), ("msg_ring", DoorbellKind::MsgRing)];
    let mut floor = Vec::new();
    let mut channel = (Vec::new(), Vec::new());
    let mut busy = vec![(Vec::new(), Vec::new()); 2];
    let mut parked = vec![(Vec::new(), Vec::new()); 2];
    let mut rate = vec![Vec::new(); 2];
    let mut woken = (Vec::new(), Vec::new());
    for round in 0..rounds {
        floor.push(ping_pong_floor());
        let (w50, w99) = parked_floor();
        woken.0.push(w50);
        woken.1.push(w99);
        println!("  round {round} a parked thread woken (futex) and answering: p50 {w50:.0} ns p99 {w99:.0} ns");
        channel.0.push(crossbeam_floor(false));
        channel.1.push(crossbeam_floor(true));
        println!(
            "  round {round} crossbeam alone: {:.0} ns per round trip, {:.0} ns with boxed closures",
            channel.0[round], channel.1[round]
        );
        for (i, (name, kind)) in kinds.iter().enumerate() {
            let (b50, b99) = round_trip(*kind, true);
            let (p50, p99) = round_trip(*kind, false);
            let r = throughput(*kind);
            println!(
                "  round {round} {name:<8} busy p50 {b50:>7.0} ns p99 {b99:>7.0} ns | parked p50 {p50:>7.0} ns p99 {p99:>7.0} ns | {r:>9.0} pairs/s | floor {:.0} ns",
                floor[round]
            );
            busy[i].0.push(b50);
            busy[i].1.push(b99);
            parked[i].0.push(p50);
            parked[i].1.push(p99);
            rate[i].push(r);
        }
    }
    // Host noise only slows a round down, so the floor is the fastest round's
    // (the conservative choice for the ratios below).
    let floor = floor.iter().copied().fold(f64::INFINITY, f64::min);
    println!("\ncache-line ping-pong floor (CPU 0 <-> 1, fastest round): {floor:.0} ns per round trip");
    println!(
        "a parked thread woken and answering, the host's floor for a parked target (medians): p50 {:.0} ns, p99 {:.0} ns",
        median(&mut woken.0),
        median(&mut woken.1)
    );
    let (bare, boxed) = (median(&mut channel.0), median(&mut channel.1));
    println!(
        "crossbeam channels alone (spinning threads, medians): {bare:.0} ns ({:.2}x floor), boxed closures {boxed:.0} ns ({:.2}x floor)\n",
        bare / floor,
        boxed / floor
    );
    println!("| doorbell | busy target p50 ns | busy p99 ns | busy p50 ÷ floor | parked target p50 ns | parked p99 ns | request/reply pairs/s (64 in flight) | messages/s |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (name, _)) in kinds.iter().enumerate() {
        let b50 = median(&mut busy[i].0);
        let r = median(&mut rate[i]);
        println!(
            "| {name} | {b50:.0} | {:.0} | {:.2}x | {:.0} | {:.0} | {r:.0} | {:.0} |",
            median(&mut busy[i].1),
            b50 / floor,
            median(&mut parked[i].0),
            median(&mut parked[i].1),
            2.0 * r
        );
    }
}
