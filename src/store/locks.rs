//! Per-path locks of one shard: held across the awaits of a commit, so
//! that a precondition is checked and acted on atomically.

use std::cell::RefCell;
use std::collections::HashMap;
use std::task::{Poll, Waker};

/// Paths being committed on this shard, with the tasks waiting for them.
#[derive(Default)]
pub(crate) struct Locks(RefCell<HashMap<Vec<u8>, Vec<Waker>>>);

/// A held lock on one path; released (and its waiters woken) on drop.
pub(crate) struct PathLock<'a> {
    locks: &'a Locks,
    path: Vec<u8>,
}

impl Locks {
    /// Takes `path`'s lock if it is free; otherwise registers `waker` to be
    /// woken when it is released.
    pub(crate) fn try_lock(&self, path: &[u8], waker: &Waker) -> Option<PathLock<'_>> {
        let mut locks = self.0.borrow_mut();
        match locks.get_mut(path) {
            Some(waiters) => {
                waiters.push(waker.clone());
                None
            }
            None => {
                locks.insert(path.to_vec(), Vec::new());
                Some(PathLock { locks: self, path: path.to_vec() })
            }
        }
    }

    /// Waits for `path`'s lock.
    pub(crate) async fn lock(&self, path: &[u8]) -> PathLock<'_> {
        std::future::poll_fn(|cx| self.try_lock(path, cx.waker()).map_or(Poll::Pending, Poll::Ready)).await
    }
}

impl Drop for PathLock<'_> {
    fn drop(&mut self) {
        let waiters = self.locks.0.borrow_mut().remove(&self.path).unwrap_or_default();
        // Everyone retries; one wins, the others queue again.
        for waker in waiters {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_has_one_holder_and_its_release_wakes_the_waiters() {
        let locks = Locks::default();
        let woken = std::sync::Arc::new(Flag::default());
        let waker = Waker::from(woken.clone());
        let held = locks.try_lock(b"a", &waker).expect("a free path");
        assert!(locks.try_lock(b"a", &waker).is_none(), "held");
        assert!(locks.try_lock(b"b", &waker).is_some(), "another path is free");
        assert!(!woken.0.load(std::sync::atomic::Ordering::SeqCst));
        drop(held);
        assert!(woken.0.load(std::sync::atomic::Ordering::SeqCst), "the waiter is woken");
        assert!(locks.try_lock(b"a", &waker).is_some(), "free again");
    }

    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
