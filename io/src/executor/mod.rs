//! The single-threaded executor: run queue, task registry, `spawn`.
//!
//! Tasks are `!Send` and run only on the thread that spawned them. Their
//! wakers are `Send`: a wake on the home thread pushes onto the local queue; a
//! wake on any other thread goes through [`park::Shared`] (a crossbeam channel
//! plus the doorbell). Each tick runs at most `task_budget` tasks, then reaps
//! at most `cqe_budget` completions, so a busy task cannot starve I/O.

pub(crate) mod notify;
pub(crate) mod park;
pub(crate) mod task;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use self::park::Shared;
use self::task::Task;

/// Work that a runtime polls at the start of every tick, outside any task:
/// a cross-thread inbox, say. Producers on other threads push their work
/// and then call [`Remote::unpark`](crate::Remote::unpark).
pub trait Poller: 'static {
    /// Does a bounded amount of work; returns how much (0: none waiting).
    fn poll(&mut self) -> usize;
    /// True if work is waiting. The runtime asks after announcing that it
    /// will park (and fencing), so work pushed before an `unpark` is never
    /// missed.
    fn has_work(&self) -> bool;
}

/// Adds a poller to the current thread's runtime, for the runtime's life.
///
/// # Panics
/// If the thread has no runtime.
pub fn add_poller(poller: impl Poller) {
    crate::context::with(|cx| cx.executor.pollers.borrow_mut().push(Box::new(poller)));
}

pub(crate) struct Executor {
    pub(crate) shared: Arc<Shared>,
    pollers: RefCell<Vec<Box<dyn Poller>>>,
    local: RefCell<VecDeque<Arc<Task>>>,
    tasks: RefCell<slab::Slab<Arc<Task>>>,
    pub(crate) tasks_polled: Cell<u64>,
    pub(crate) tasks_spawned: Cell<u64>,
}

impl Executor {
    pub(crate) fn new(shared: Arc<Shared>) -> Executor {
        Executor {
            shared,
            pollers: RefCell::new(Vec::new()),
            local: RefCell::new(VecDeque::with_capacity(256)),
            tasks: RefCell::new(slab::Slab::new()),
            tasks_polled: Cell::new(0),
            tasks_spawned: Cell::new(0),
        }
    }

    pub(crate) fn spawn_boxed(&self, future: task::BoxFuture) {
        let task = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let task = Arc::new(Task::new(self.shared.clone(), entry.key(), future));
            entry.insert(task.clone());
            task
        };
        self.tasks_spawned.set(self.tasks_spawned.get() + 1);
        task.scheduled.store(true, std::sync::atomic::Ordering::Release);
        self.local.borrow_mut().push_back(task);
    }

    pub(crate) fn push_local(&self, task: Arc<Task>) {
        self.local.borrow_mut().push_back(task);
    }

    pub(crate) fn has_local_work(&self) -> bool {
        !self.local.borrow().is_empty()
    }

    /// Runs every poller once; returns the work they did.
    pub(crate) fn run_pollers(&self) -> usize {
        if self.pollers.borrow().is_empty() {
            return 0;
        }
        // Taken out while they run, so a poller may add another.
        let mut pollers = std::mem::take(&mut *self.pollers.borrow_mut());
        let work = pollers.iter_mut().map(|p| p.poll()).sum();
        let mut slot = self.pollers.borrow_mut();
        pollers.append(&mut slot);
        *slot = pollers;
        work
    }

    pub(crate) fn pollers_have_work(&self) -> bool {
        self.pollers.borrow().iter().any(|p| p.has_work())
    }

    /// Runs at most `budget` queued tasks (no more than were queued when the
    /// tick began, so a task that wakes itself runs once per tick). Returns
    /// how many ran.
    pub(crate) fn run_tasks(&self, budget: usize) -> usize {
        // Tasks woken on other threads join the local queue first.
        while let Ok(task) = self.shared.remote_rx.try_recv() {
            self.local.borrow_mut().push_back(task);
        }
        let n = self.local.borrow().len().min(budget);
        for _ in 0..n {
            let Some(task) = self.local.borrow_mut().pop_front() else {
                break;
            };
            self.run_one(task);
        }
        self.tasks_polled.set(self.tasks_polled.get() + n as u64);
        n
    }

    fn run_one(&self, task: Arc<Task>) {
        struct OnPanic<'a>(&'a Executor, &'a Arc<Task>);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                // A panicking task is removed and its future dropped here, on
                // the home thread, before the panic leaves `block_on`.
                if std::thread::panicking() {
                    self.0.finish(self.1);
                }
            }
        }
        let guard = OnPanic(self, &task);
        // SAFETY: tasks are only queued on their home executor's queues (local
        // queue, or the remote channel that only the home thread drains), so
        // this is the home thread; a task is in at most one queue at a time
        // (`scheduled` flag), so it is not being polled already.
        let done = unsafe { task.poll() };
        drop(guard);
        if done {
            self.finish(&task);
        }
    }

    fn finish(&self, task: &Arc<Task>) {
        // SAFETY: home thread; the poll has returned or unwound.
        let future = unsafe { task.take_future() };
        drop(future);
        let mut tasks = self.tasks.borrow_mut();
        if tasks.get(task.key).is_some_and(|t| Arc::ptr_eq(t, task)) {
            tasks.remove(task.key);
        }
    }

    pub(crate) fn live_tasks(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Drops every task's future (and every poller) on this (the home) thread.
    pub(crate) fn shutdown(&self) {
        drop(std::mem::take(&mut *self.pollers.borrow_mut()));
        loop {
            let tasks: Vec<Arc<Task>> = self.tasks.borrow_mut().drain().collect();
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                // SAFETY: home thread, and no task is being polled during shutdown.
                drop(unsafe { task.take_future() });
            }
        }
        self.local.borrow_mut().clear();
        while self.shared.remote_rx.try_recv().is_ok() {}
    }
}

thread_local! {
    /// The id of the runtime that owns this thread, 0 if none.
    pub(crate) static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Routes a woken task to its home queue.
pub(crate) fn schedule(task: Arc<Task>) {
    let home_id = task.home.id;
    if CURRENT_ID.with(Cell::get) == home_id {
        crate::context::with(|cx| cx.executor.push_local(task));
    } else {
        let home = task.home.clone();
        home.push_remote(task);
    }
}

/// Spawns a task on the current thread's runtime.
///
/// The task runs on this thread only. Dropping the [`JoinHandle`] detaches
/// the task; it keeps running.
///
/// # Panics
/// If the thread has no runtime. A panic inside the task propagates out of
/// the runtime's `block_on`.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    let state = Rc::new(RefCell::new(JoinState { output: None, waker: None, finished: false }));
    let task_state = state.clone();
    let wrapped = async move {
        let output = future.await;
        let waker = {
            let mut state = task_state.borrow_mut();
            state.output = Some(output);
            state.finished = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    };
    crate::context::with(|cx| cx.executor.spawn_boxed(Box::pin(wrapped)));
    JoinHandle { state }
}

struct JoinState<T> {
    output: Option<T>,
    waker: Option<Waker>,
    finished: bool,
}

/// Awaits a spawned task's output. Dropping it detaches the task.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> JoinHandle<T> {
    /// True once the task has returned.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.borrow_mut();
        if let Some(output) = state.output.take() {
            return Poll::Ready(output);
        }
        assert!(!state.finished, "JoinHandle polled after it returned the output");
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Yields once to the other tasks and to I/O completions.
pub async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false).await
}
