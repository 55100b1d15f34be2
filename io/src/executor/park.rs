//! Parking: how a runtime sleeps in its ring and how other threads wake it.
//!
//! Pairs with [`Shared::unpark`]:
//!
//! ```text
//!   runtime: parked.store(true); fence(SeqCst); if has_remote_work() { don't sleep } else { wait in ring }
//!   waker:   push work (channel / flag); fence(SeqCst); if parked.load() && parked.swap(false) { doorbell.ring() }
//!
//! "Remote work" is the remote run queue, the `block_on` future's wake flag,
//! and every [`Poller`](crate::Poller)'s `has_work`.
//! ```
//!
//! Each side fences between its write and its read, so at least one of them
//! sees the other's write: either the runtime sees the work and does not
//! sleep, or the waker sees `parked` and rings the doorbell. No wake-up is
//! lost, and a waker pays no syscall while the runtime is busy (`parked` is
//! false). A doorbell rung for a runtime that did not sleep after all is a
//! spurious wake-up, which is harmless.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;

use super::task::Task;
use crate::driver::doorbell::Doorbell;

pub(crate) struct Shared {
    /// Unique per runtime, never reused.
    pub(crate) id: u64,
    /// Loaded by every waker on every wake (`unpark`), written by the
    /// runtime only around a park. In a cache line of its own: beside
    /// `main_woken`, which the runtime swaps at every tick, each tick's
    /// write took the line from the wakers' caches, and every message to a
    /// busy runtime paid a cross-core miss to read a flag that had not
    /// changed.
    parked: CachePadded<AtomicBool>,
    /// Set by the `block_on` future's waker; swapped by the runtime at
    /// every tick (so kept off `parked`'s line).
    pub(crate) main_woken: CachePadded<AtomicBool>,
    /// Set when the runtime is gone; remote wakes are then dropped.
    pub(crate) closed: AtomicBool,
    remote_tx: Sender<Arc<Task>>,
    pub(crate) remote_rx: Receiver<Arc<Task>>,
    pub(crate) doorbell: Doorbell,
    pub(crate) remote_wakes: AtomicU64,
    pub(crate) unparks: AtomicU64,
}

impl Shared {
    pub(crate) fn new(id: u64, doorbell: Doorbell) -> Shared {
        let (remote_tx, remote_rx) = crossbeam_channel::unbounded();
        Shared {
            id,
            parked: CachePadded::new(AtomicBool::new(false)),
            main_woken: CachePadded::new(AtomicBool::new(true)),
            closed: AtomicBool::new(false),
            remote_tx,
            remote_rx,
            doorbell,
            remote_wakes: AtomicU64::new(0),
            unparks: AtomicU64::new(0),
        }
    }

    /// Queues a task woken on another thread and wakes the runtime.
    pub(crate) fn push_remote(&self, task: Arc<Task>) {
        if self.closed.load(Ordering::Acquire) {
            // The runtime has shut down and dropped every task's future on
            // its own thread; this is an empty shell, safe to drop here.
            return;
        }
        self.remote_wakes.fetch_add(1, Ordering::Relaxed);
        // Cannot fail: `remote_rx` lives in `self`.
        let _ = self.remote_tx.send(task);
        self.unpark();
    }

    /// Wakes the runtime if it is parked (or about to park). See the module
    /// docs for the ordering argument.
    ///
    /// The plain load before the swap keeps a busy runtime's flag in a shared
    /// cache-line state: a waker writes it only when the runtime is parked.
    /// Returns true when it rang the doorbell.
    pub(crate) fn unpark(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.unparks.fetch_add(1, Ordering::Relaxed);
            self.doorbell.ring();
            return true;
        }
        false
    }

    /// Announces the intent to sleep. Returns false if work arrived in the
    /// meantime (the caller must not sleep then); `more_work` is checked
    /// after the fence, like the remote queue.
    pub(crate) fn try_park(&self, more_work: impl FnOnce() -> bool) -> bool {
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.remote_rx.is_empty() || self.main_woken.load(Ordering::SeqCst) || more_work() {
            self.parked.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Called after the wait returns, however it returned.
    pub(crate) fn unparked(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }
}

/// A handle on a runtime that any thread may hold: it wakes the runtime out of
/// its ring wait (through its [`Doorbell`]) only when the runtime is parked.
///
/// `cores` pairs it with its message channels and a [`Poller`](crate::Poller):
/// push a message, then [`Remote::unpark`]; under load the runtime is not
/// parked and `unpark` costs one fence and one atomic load, no syscall.
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("runtime", &self.shared.id).finish()
    }
}

impl Remote {
    /// Wakes the runtime if it is parked; otherwise does nothing. Returns
    /// true when it rang the runtime's doorbell.
    pub fn unpark(&self) -> bool {
        self.shared.unpark()
    }

    /// The runtime's doorbell (rings unconditionally).
    pub fn doorbell(&self) -> &Doorbell {
        &self.shared.doorbell
    }

    /// How many times an `unpark` found the runtime parked and rang it.
    pub fn unparks(&self) -> u64 {
        self.shared.unparks.load(Ordering::Relaxed)
    }

    /// True while the runtime is running (false after it was dropped).
    pub fn is_alive(&self) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    /// The cache line (64 bytes) that holds `field`.
    fn line<T>(field: &T) -> usize {
        field as *const T as usize / 64
    }

    /// What a busy runtime's wakers read (`parked`, `closed`) shares no
    /// cache line with what the runtime writes at every tick
    /// (`main_woken`), nor `parked` with what wakers write (the counters).
    #[test]
    fn the_flag_wakers_read_is_apart_from_what_the_runtime_writes_each_tick() {
        let runtime = crate::Runtime::new().unwrap();
        let shared = &runtime.remote().shared;
        let ticked = line(&*shared.main_woken);
        let parked = line(&*shared.parked);
        assert_ne!(parked, ticked);
        assert_ne!(line(&shared.closed), ticked);
        assert_ne!(line(&shared.remote_wakes), ticked);
        assert_ne!(line(&shared.remote_wakes), parked);
        assert_ne!(line(&shared.unparks), parked);
    }
}
