//! Time: `sleep`, `timeout` for any future, and the monotonic clock.
//!
//! Timers live in user space (an ordered map per thread); the ring wait is
//! given the nearest deadline as its timeout. So a timer costs no SQE, and a
//! timer that is dropped before it fires (the common case for request
//! timeouts) costs no cancel SQE either.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Reads the monotonic clock (`CLOCK_MONOTONIC`, via the vDSO).
pub fn now() -> Instant {
    Instant::now()
}

#[derive(Default)]
pub(crate) struct Timers {
    entries: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl Timers {
    fn insert(&mut self, deadline: Instant, waker: Waker) -> (Instant, u64) {
        self.next_id += 1;
        let key = (deadline, self.next_id);
        self.entries.insert(key, waker);
        key
    }

    /// Wakes every timer whose deadline has passed; returns how many.
    pub(crate) fn fire(&mut self, now: Instant) -> Vec<Waker> {
        let mut fired = Vec::new();
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            fired.push(entry.remove());
        }
        fired
    }

    /// Time until the nearest deadline, if any.
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.entries.first_key_value().map(|((deadline, _), _)| deadline.saturating_duration_since(now))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Future returned by [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    key: Option<(Instant, u64)>,
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
            crate::context::try_with(|cx| cx.timers.borrow_mut().entries.remove(&key));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = self.key;
        let new_key = crate::context::with(|ctx| {
            let mut timers = ctx.timers.borrow_mut();
            match key.and_then(|k| timers.entries.get_mut(&k).map(|w| (k, w))) {
                Some((k, waker)) => {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    k
                }
                // Not registered yet, or fired (removed) but the deadline was
                // read before it passed: register again.
                None => timers.insert(deadline, cx.waker().clone()),
            }
        });
        self.key = Some(new_key);
        Poll::Pending
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
}
