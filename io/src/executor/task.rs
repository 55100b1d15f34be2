//! Tasks: a `!Send` future, shared with `Send` wakers.
//!
//! A [`Task`] is held in an `Arc` so that its [`Waker`] can travel to other
//! threads, but its future is touched only on the home thread: the executor
//! polls it there and the registry (also on the home thread) holds a strong
//! reference until the future has been dropped. So the last `Arc` that a
//! foreign thread may drop is always an empty shell.

use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::park::Shared;

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

pub(crate) struct Task {
    /// True while the task sits in a run queue; a wake while set is a no-op.
    pub(crate) scheduled: AtomicBool,
    pub(crate) home: Arc<Shared>,
    /// Index in the home executor's registry.
    pub(crate) key: usize,
    /// Only touched on the home thread (see the module docs).
    future: UnsafeCell<Option<BoxFuture>>,
}

// SAFETY: the only non-thread-safe field is `future`, which is accessed only
// on the home thread: `poll` and `take_future` are called by the home
// executor, which checks its identity. Other threads only touch `scheduled`
// (atomic) and `home` (Sync), and drop an `Arc<Task>` only after the home
// thread has set `future` to `None` (the registry keeps a strong reference
// until then).
unsafe impl Send for Task {}
// SAFETY: as above.
unsafe impl Sync for Task {}

impl Task {
    pub(crate) fn new(home: Arc<Shared>, key: usize, future: BoxFuture) -> Task {
        Task { scheduled: AtomicBool::new(false), home, key, future: UnsafeCell::new(Some(future)) }
    }

    /// Polls the future; returns true when it has completed (and was dropped).
    ///
    /// # Safety
    /// Must be called on the task's home thread, never re-entrantly for the
    /// same task.
    pub(crate) unsafe fn poll(self: &Arc<Self>) -> bool {
        // Cleared before the poll, so a wake during the poll queues it again.
        self.scheduled.store(false, Ordering::Release);
        // SAFETY: home thread only and not re-entrant (caller's contract), so
        // this is the only reference to the future.
        let slot = unsafe { &mut *self.future.get() };
        let Some(future) = slot.as_mut() else {
            return true;
        };
        // Borrowed: no reference count taken and dropped per poll (a waker
        // that is kept, such as a reply's, is cloned from it).
        let waker = futures_task::waker_ref(self);
        let mut cx = std::task::Context::from_waker(&waker);
        if future.as_mut().poll(&mut cx).is_ready() {
            *slot = None;
            return true;
        }
        false
    }

    /// Takes the future out (to drop it on the home thread).
    ///
    /// # Safety
    /// Home thread only, and not while the task is being polled.
    pub(crate) unsafe fn take_future(&self) -> Option<BoxFuture> {
        // SAFETY: caller's contract.
        unsafe { (*self.future.get()).take() }
    }
}

impl futures_task::ArcWake for Task {
    fn wake(self: Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            super::schedule(self);
        }
    }

    fn wake_by_ref(arc_self: &Arc<Self>) {
        if !arc_self.scheduled.swap(true, Ordering::AcqRel) {
            super::schedule(arc_self.clone());
        }
    }
}
