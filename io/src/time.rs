//! Time: `sleep`, `timeout` for any future, and the monotonic clock.
//!
//! Timers live in user space (a heap per thread); the ring wait is given the
//! nearest deadline as its timeout. So a timer costs no SQE, and a timer
//! that is dropped before it fires (the common case for request timeouts)
//! costs no cancel SQE either, only an O(1) mark: cancelled timers leave
//! their heap entry behind, skipped when it surfaces and dropped by a
//! compaction once they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Reads the monotonic clock (`CLOCK_MONOTONIC`, via the vDSO).
pub fn now() -> Instant {
    Instant::now()
}

/// A registered timer: its slot and the slot's generation when registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    slot: usize,
    generation: u64,
}

struct Slot {
    generation: u64,
    /// `Some` while the timer is armed.
    waker: Option<Waker>,
}

#[derive(Default)]
pub(crate) struct Timers {
    /// (deadline, slot, generation), earliest first; may hold entries of
    /// cancelled timers (their slot's generation moved on or its waker is
    /// gone).
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    armed: usize,
}

impl Timers {
    fn insert(&mut self, deadline: Instant, waker: Waker) -> Key {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot { generation: 0, waker: None });
            self.slots.len() - 1
        });
        let entry = &mut self.slots[slot];
        entry.generation += 1;
        entry.waker = Some(waker);
        self.armed += 1;
        self.heap.push(Reverse((deadline, slot, entry.generation)));
        Key { slot, generation: entry.generation }
    }

    /// The waker of `key` if it is still armed.
    fn armed_mut(&mut self, key: Key) -> Option<&mut Waker> {
        let slot = self.slots.get_mut(key.slot)?;
        if slot.generation == key.generation {
            slot.waker.as_mut()
        } else {
            None
        }
    }

    /// Disarms `key` (if armed) and frees its slot; returns its waker.
    fn remove(&mut self, key: Key) -> Option<Waker> {
        let slot = self.slots.get_mut(key.slot)?;
        if slot.generation != key.generation {
            return None;
        }
        let waker = slot.waker.take()?;
        self.armed -= 1;
        self.free.push(key.slot);
        // Cancelled entries at most about as many as armed ones.
        if self.heap.len() > 2 * self.armed + 1024 {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, s, g))| slots[*s].generation == *g && slots[*s].waker.is_some());
        }
        Some(waker)
    }

    /// Drops cancelled entries from the top of the heap.
    fn skip_cancelled(&mut self) {
        while let Some(Reverse((_, slot, generation))) = self.heap.peek() {
            let slot = &self.slots[*slot];
            if slot.generation == *generation && slot.waker.is_some() {
                return;
            }
            self.heap.pop();
        }
    }

    /// Wakes every timer whose deadline has passed; returns how many.
    pub(crate) fn fire(&mut self, now: Instant) -> Vec<Waker> {
        let mut fired = Vec::new();
        loop {
            self.skip_cancelled();
            match self.heap.peek() {
                Some(Reverse((deadline, slot, generation))) if *deadline <= now => {
                    let key = Key { slot: *slot, generation: *generation };
                    self.heap.pop();
                    fired.extend(self.remove(key));
                }
                _ => return fired,
            }
        }
    }

    /// Time until the nearest deadline, if any.
    pub(crate) fn next_timeout(&mut self, now: Instant) -> Option<Duration> {
        self.skip_cancelled();
        self.heap.peek().map(|Reverse((deadline, _, _))| deadline.saturating_duration_since(now))
    }

    pub(crate) fn len(&self) -> usize {
        self.armed
    }
}

/// Future returned by [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    key: Option<Key>,
}

/// Completes after `duration`.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(now() + duration)
}

/// Completes at `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, key: None }
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (the next poll re-registers the timer).
    pub fn reset(&mut self, deadline: Instant) {
        self.unregister();
        self.deadline = deadline;
    }

    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            crate::context::try_with(|cx| cx.timers.borrow_mut().remove(key));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    /// Reads no clock: a sleep registers its timer on its first poll (even
    /// one already due: the loop fires it at the end of this tick), and is
    /// done once the loop has fired it, which it does only after the
    /// deadline.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (deadline, key) = (self.deadline, self.key);
        let registered = crate::context::with(|ctx| {
            let mut timers = ctx.timers.borrow_mut();
            match key {
                Some(k) => match timers.armed_mut(k) {
                    Some(waker) => {
                        if !waker.will_wake(cx.waker()) {
                            *waker = cx.waker().clone();
                        }
                        Some(k)
                    }
                    // Only `fire` removes a registered timer.
                    None => None,
                },
                None => Some(timers.insert(deadline, cx.waker().clone())),
            }
        });
        self.key = registered;
        match registered {
            Some(_) => Poll::Pending,
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out")
    }
}

/// Runs `future` for at most `duration`.
///
/// When the deadline passes first, `future` is dropped. For an io_uring
/// operation that drop submits an async cancel; the operation's buffer stays
/// with the driver until the kernel's completion arrives.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep(duration) }
}

/// Future returned by [`timeout`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self` and `Timeout` has no `Drop` impl; `sleep` is `Unpin`.
        let (future, sleep) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.future), &mut this.sleep)
        };
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order() {
        let mut timers = Timers::default();
        let base = Instant::now();
        timers.insert(base + Duration::from_millis(20), Waker::noop().clone());
        timers.insert(base + Duration::from_millis(10), Waker::noop().clone());
        assert_eq!(timers.next_timeout(base), Some(Duration::from_millis(10)));
        assert_eq!(timers.fire(base + Duration::from_millis(15)).len(), 1);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.fire(base + Duration::from_millis(25)).len(), 1);
        assert_eq!(timers.next_timeout(base), None);
    }

    #[test]
    fn cancelled_timers_never_fire_and_do_not_pile_up() {
        let mut timers = Timers::default();
        let base = Instant::now();
        let far = base + Duration::from_secs(60);
        // A keep-alive pattern: arm a long timeout, cancel it, again.
        for _ in 0..100_000 {
            let key = timers.insert(far, Waker::noop().clone());
            assert!(timers.remove(key).is_some());
            assert!(timers.remove(key).is_none(), "removed once");
        }
        assert_eq!(timers.len(), 0);
        assert!(timers.heap.len() <= 1024 + 1, "{} stale entries kept", timers.heap.len());
        assert_eq!(timers.next_timeout(base), None);
        // A slot reused by a new timer is not fired by its old entry.
        let old = timers.insert(base + Duration::from_millis(1), Waker::noop().clone());
        timers.remove(old);
        let new = timers.insert(base + Duration::from_millis(50), Waker::noop().clone());
        assert_eq!(new.slot, old.slot);
        assert!(timers.fire(base + Duration::from_millis(10)).is_empty(), "the old entry is stale");
        assert!(timers.armed_mut(new).is_some());
        assert_eq!(timers.next_timeout(base), Some(Duration::from_millis(50)));
        assert_eq!(timers.fire(base + Duration::from_millis(60)).len(), 1);
        assert!(timers.armed_mut(new).is_none());
        assert_eq!(timers.len(), 0);
    }
}
