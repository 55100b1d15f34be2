//! Cache invalidations after commits, one broadcast for every commit that
//! finishes in the same turn of the owner shard's run queue.
//!
//! A commit (PUT, DELETE, or the undo of a failed one) must not be answered
//! until no shard's cache holds the path's old bytes (see `crate::cache`).
//! Sent one path at a time, that costs each commit a round trip to every
//! other shard: 2 x (shards - 1) mesh messages, and a wake-up for each shard
//! that was parked. Here the first commit to need one opens a batch and
//! spawns its sender; the sender runs after the tasks already runnable, so
//! the other commits whose flushes completed in the same tick join the
//! batch, and one broadcast carries all their paths. Every commit still
//! waits for a broadcast that was sent after its own rename and that names
//! its path, which is what the guarantee needs.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// This shard's open batch (if any) and its counts.
#[derive(Default)]
pub(crate) struct Invalidations {
    /// The batch that has not been sent yet: commits join it.
    open: RefCell<Option<Rc<Batch>>>,
    /// (paths invalidated, broadcasts that carried them).
    counts: Cell<(u64, u64)>,
}

/// Paths waiting for one broadcast, and the commits waiting for it.
#[derive(Default)]
struct Batch {
    paths: RefCell<Vec<Vec<u8>>>,
    sent: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

impl Invalidations {
    /// (paths invalidated, broadcasts that carried them).
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.counts.get()
    }

    /// Drops `path` from every shard's cache (this one's included) and
    /// returns once all have.
    pub(crate) async fn everywhere(self: &Rc<Self>, path: &[u8]) {
        if !crate::cache::enabled() {
            // Every shard runs with the same cache setting: none holds a copy.
            return;
        }
        if percore_cores::current().count == 1 {
            // No other shard: no message, no batch.
            let (paths, broadcasts) = self.counts.get();
            self.counts.set((paths + 1, broadcasts));
            crate::cache::invalidate(path);
            return;
        }
        let batch = self.join(path);
        poll_fn(|cx| {
            if batch.sent.get() {
                return Poll::Ready(());
            }
            batch.waiting.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Adds `path` to the open batch, opening one (and spawning its sender)
    /// if there is none.
    fn join(self: &Rc<Self>, path: &[u8]) -> Rc<Batch> {
        let (paths, broadcasts) = self.counts.get();
        if let Some(batch) = self.open.borrow().as_ref() {
            batch.paths.borrow_mut().push(path.to_vec());
            self.counts.set((paths + 1, broadcasts));
            return batch.clone();
        }
        let batch = Rc::new(Batch::default());
        batch.paths.borrow_mut().push(path.to_vec());
        self.counts.set((paths + 1, broadcasts + 1));
        *self.open.borrow_mut() = Some(batch.clone());
        // A task of its own, not the first commit's: it runs after the tasks
        // already runnable (the other commits of this tick), and no commit's
        // future being dropped can leave the rest waiting.
        let this = self.clone();
        let sending = batch.clone();
        percore_io::spawn(async move { this.send(sending).await });
        batch
    }

    async fn send(&self, batch: Rc<Batch>) {
        // Closed to newcomers: a commit from here on waits for the next one.
        self.open.borrow_mut().take();
        let paths: Arc<Vec<Vec<u8>>> = Arc::new(batch.paths.take());
        // A shard that has stopped has no cache to worry about.
        let _ = percore_cores::broadcast(move || {
            for path in paths.iter() {
                crate::cache::invalidate(path);
            }
        })
        .await;
        batch.sent.set(true);
        for waker in batch.waiting.take() {
            waker.wake();
        }
    }
}
