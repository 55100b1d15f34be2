//! The runtime: builds a thread's ring and executor and runs its tick loop.
//!
//! One tick: read the clock (the tick's [`loop_now`](crate::time::loop_now));
//! poll the `block_on` future if it was woken; run at most
//! `task_budget` tasks; fire due timers; then either submit (when there is
//! more work) or park in the ring until a completion, a timer or the doorbell;
//! finally reap at most `cqe_budget` completions.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::bufring::BufRingRegistry;
use crate::context::{self, Context};
use crate::driver::doorbell::{Doorbell, DoorbellKind};
use crate::driver::ring::{Ring, RingConfig, RingFeatures};
use crate::driver::Driver;
use crate::executor::park::{Remote, Shared};
use crate::executor::{Executor, CURRENT_ID};

/// Bounds on the work of one tick.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    pub(crate) task_budget: usize,
    pub(crate) cqe_budget: usize,
}

/// Default for [`Builder::submit_batch`]: hand SQEs to the kernel only at the
/// end of a tick.
const SUBMIT_BATCH_DEFAULT: u32 = u32::MAX;

/// Configures a [`Runtime`].
#[derive(Clone, Debug)]
pub struct Builder {
    ring: RingConfig,
    doorbell: DoorbellKind,
    task_budget: usize,
    cqe_budget: usize,
    submit_batch: u32,
    shutdown_grace: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            ring: RingConfig::default(),
            doorbell: DoorbellKind::default(),
            task_budget: 256,
            cqe_budget: 1024,
            submit_batch: SUBMIT_BATCH_DEFAULT,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Builder {
    /// Ring sizes and setup flags.
    pub fn ring(mut self, ring: RingConfig) -> Self {
        self.ring = ring;
        self
    }

    /// How other threads wake this runtime.
    pub fn doorbell(mut self, kind: DoorbellKind) -> Self {
        self.doorbell = kind;
        self
    }

    /// Tasks run per tick before completions are reaped (at least 1).
    pub fn task_budget(mut self, tasks: usize) -> Self {
        self.task_budget = tasks.max(1);
        self
    }

    /// Completions reaped per tick (at least 1).
    pub fn cqe_budget(mut self, cqes: usize) -> Self {
        self.cqe_budget = cqes.max(1);
        self
    }

    /// Hands queued SQEs to the kernel as soon as `sqes` of them are waiting,
    /// instead of once at the end of each tick.
    ///
    /// Fewer, larger submissions cost less CPU (the default suits network
    /// servers); on some block devices a steady trickle keeps the device
    /// queue fuller: see BENCHMARKS.md (random reads) for measurements.
    pub fn submit_batch(mut self, sqes: u32) -> Self {
        self.submit_batch = sqes.max(1);
        self
    }

    /// How long dropping the runtime waits for in-flight operations to
    /// complete after cancelling them. Memory of operations that still have
    /// not completed then is leaked, never freed.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Builds the runtime on the calling thread.
    ///
    /// # Errors
    /// If io_uring is unavailable (the message says why and what to do), or
    /// this thread already has a runtime.
    pub fn build(self) -> io::Result<Runtime> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        if context::try_with(|_| ()).is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "this thread already runs a percore-io runtime"));
        }
        let ring = Ring::new(&self.ring)?;
        let (doorbell, reader) = Doorbell::new(ring.fd(), self.doorbell)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared::new(id, doorbell));
        let cx = Rc::new(Context {
            driver: Driver::new(ring, reader, self.submit_batch),
            executor: Executor::new(shared),
            timers: Default::default(),
            buf_rings: BufRingRegistry::default(),
            config: Tuning { task_budget: self.task_budget, cqe_budget: self.cqe_budget },
        });
        if context::install(cx.clone()).is_err() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "this thread already runs a percore-io runtime"));
        }
        CURRENT_ID.with(|c| c.set(id));
        Ok(Runtime { cx, shutdown_grace: self.shutdown_grace, running: Default::default(), _not_send: PhantomData })
    }
}

/// A thread's io_uring ring plus its single-threaded executor.
///
/// `!Send`: it lives and dies on the thread that built it.
pub struct Runtime {
    cx: Rc<Context>,
    shutdown_grace: Duration,
    /// Set while `block_on` runs: it is not re-entrant.
    running: std::cell::Cell<bool>,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("features", &self.features()).finish()
    }
}

struct MainWaker(Arc<Shared>);

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.main_woken.store(true, Ordering::SeqCst);
        if CURRENT_ID.with(|c| c.get()) != self.0.id {
            self.0.unpark();
        }
    }
}

impl Runtime {
    /// A runtime with the default configuration.
    ///
    /// # Errors
    /// See [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::default().build()
    }

    /// A builder for a configured runtime.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The optional ring features this kernel granted.
    pub fn features(&self) -> RingFeatures {
        self.cx.driver.ring.borrow().features()
    }

    /// A handle that wakes this runtime from other threads.
    pub fn remote(&self) -> Remote {
        Remote { shared: self.cx.executor.shared.clone() }
    }

    /// Runs `future` to completion on this thread, driving spawned tasks and
    /// I/O meanwhile.
    ///
    /// # Panics
    /// If called from inside `block_on` (it is not re-entrant), if a spawned
    /// task panics (the panic propagates), or if the ring fails
    /// in a way the runtime cannot recover from (`io_uring_enter` returning
    /// anything but an interrupt, a timeout or a full CQ).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        struct Running<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                crate::time::end_ticks();
                self.0.set(false);
            }
        }
        assert!(!self.running.replace(true), "percore-io: Runtime::block_on called from inside block_on");
        let _running = Running(&self.running);
        let cx = &*self.cx;
        let shared = &cx.executor.shared;
        let waker = Waker::from(Arc::new(MainWaker(shared.clone())));
        let mut task_cx = TaskContext::from_waker(&waker);
        let mut future = pin!(future);
        shared.main_woken.store(true, Ordering::SeqCst);
        loop {
            crate::time::start_tick();
            if shared.main_woken.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut task_cx) {
                    return output;
                }
            }
            let polled = cx.executor.run_pollers();
            cx.executor.run_tasks(cx.config.task_budget);
            let next_timer = fire_timers(cx);
            let busy = polled > 0
                || cx.executor.has_local_work()
                || shared.main_woken.load(Ordering::SeqCst)
                || !shared.remote_rx.is_empty();
            let result = if busy || cx.driver.ring.borrow_mut().cq_ready() {
                cx.driver.submit_pending()
            } else if shared.try_park(|| cx.executor.pollers_have_work()) {
                let result = cx.driver.wait(next_timer);
                shared.unparked();
                result
            } else {
                Ok(())
            };
            if let Err(err) = result {
                panic!("percore-io: the ring failed: {err}");
            }
            cx.driver.dispatch(cx.config.cqe_budget);
        }
    }

    /// Counters of this runtime.
    pub fn stats(&self) -> Stats {
        stats_of(&self.cx)
    }
}

/// Wakes due timers; returns the time until the next one.
fn fire_timers(cx: &Context) -> Option<Duration> {
    if cx.timers.borrow().len() == 0 {
        return None;
    }
    let now = crate::time::loop_now();
    let fired = cx.timers.borrow_mut().fire(now);
    for waker in fired {
        waker.wake();
    }
    cx.timers.borrow_mut().next_timeout(now)
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let cx = &*self.cx;
        cx.executor.shared.closed.store(true, Ordering::Release);
        // Dropping the futures turns their in-flight operations into orphans
        // (each submits its async cancel).
        cx.executor.shutdown();
        for waker in cx.driver.slots.borrow_mut().take_wakers() {
            drop(waker);
        }
        cx.driver.cancel_all();
        let deadline = Instant::now() + self.shutdown_grace;
        let mut last_cancel = Instant::now();
        while cx.driver.in_flight() > 0 || cx.driver.doorbell.armed() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now.duration_since(last_cancel) > Duration::from_millis(100) {
                cx.driver.cancel_all();
                last_cancel = now;
            }
            let _ = cx.driver.ring.borrow_mut().enter(1, Some(Duration::from_millis(10)));
            cx.driver.dispatch(usize::MAX);
        }
        if cx.driver.in_flight() > 0 {
            // The kernel may still write into what these slots hold: leak
            // them (and the provided-buffer rings) rather than free them.
            let slots = std::mem::replace(&mut *cx.driver.slots.borrow_mut(), crate::driver::slots::Slots::new());
            std::mem::forget(slots);
            cx.buf_rings.leak_all();
        }
        cx.executor.shutdown();
        CURRENT_ID.with(|c| c.set(0));
        context::uninstall();
    }
}

/// Counters of one runtime (one thread's ring and executor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// SQEs handed to the ring.
    pub sqes_submitted: u64,
    /// `io_uring_enter` calls.
    pub ring_enters: u64,
    /// Completions reaped.
    pub cqes_reaped: u64,
    /// Async cancels submitted for dropped operations.
    pub cancels: u64,
    /// Cancels sent again because the first missed (see `Driver::cancel`).
    pub cancel_retries: u64,
    /// Operations whose final completion has not been reaped.
    pub ops_in_flight: usize,
    /// Task polls.
    pub tasks_polled: u64,
    /// Tasks spawned.
    pub tasks_spawned: u64,
    /// Tasks not yet finished.
    pub tasks_live: usize,
    /// Wakes of this runtime's tasks from other threads.
    pub remote_wakes: u64,
    /// Doorbell completions seen (eventfd reads and MSG_RING posts).
    pub doorbell_wakeups: u64,
    /// Armed timers.
    pub timers: usize,
    /// Timers registered.
    pub timers_registered: u64,
    /// Timers still armed two ticks after they were registered (they moved
    /// from the nursery to the heap: see [`crate::time`]).
    pub timers_to_heap: u64,
}

fn stats_of(cx: &Context) -> Stats {
    let ring = cx.driver.ring.borrow();
    let (timers_registered, timers_to_heap) = cx.timers.borrow().counts();
    Stats {
        sqes_submitted: ring.sqes_pushed,
        ring_enters: ring.enters,
        cqes_reaped: ring.cqes_reaped,
        cancels: cx.driver.cancels.get(),
        cancel_retries: cx.driver.cancel_retries.get(),
        ops_in_flight: cx.driver.in_flight(),
        tasks_polled: cx.executor.tasks_polled.get(),
        tasks_spawned: cx.executor.tasks_spawned.get(),
        tasks_live: cx.executor.live_tasks(),
        remote_wakes: cx.executor.shared.remote_wakes.load(Ordering::Relaxed),
        doorbell_wakeups: cx.driver.doorbell_cqes.get(),
        timers: cx.timers.borrow().len(),
        timers_registered,
        timers_to_heap,
    }
}

/// Counters of the current thread's runtime.
///
/// # Panics
/// If the thread has no runtime.
pub fn stats() -> Stats {
    context::with(stats_of)
}

/// A [`Remote`] for the current thread's runtime.
///
/// # Panics
/// If the thread has no runtime.
pub fn remote() -> Remote {
    context::with(|cx| Remote { shared: cx.executor.shared.clone() })
}
