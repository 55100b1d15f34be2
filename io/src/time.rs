//! Time: `sleep`, `timeout` for any future, and the monotonic clock.
//!
//! Timers live in user space (per thread); the ring wait is given the
//! nearest deadline as its timeout. So a timer costs no SQE, and a timer
//! that is dropped before it fires (the common case for request timeouts)
//! costs no cancel SQE either, only an O(1) mark.
//!
//! A new timer first goes to a nursery, a list the loop looks through at
//! each tick; only one still armed after two ticks moves to the heap. A
//! timeout that ends within a tick or two (a small answer's send, nearly
//! always) never touches the heap; under a `/ping` load about half of all
//! timers did not (the other half, waits for a kept-alive connection's next
//! request, outlive two ticks).
//! Cancelled timers leave their heap entry behind, skipped when it surfaces
//! and dropped by a compaction once they outnumber the live ones.
//!
//! [`loop_now`] is the clock as the loop read it at the start of its tick,
//! for deadlines and durations that need no better than a tick's precision
//! (one clock read per tick instead of one per use).

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

/// This thread's loop clock.
#[derive(Clone, Copy)]
enum Tick {
    /// No runtime runs its loop on this thread.
    Outside,
    /// A tick has begun and nothing has asked for the time yet.
    Unread,
    /// The clock as first read in this tick.
    Read(Instant),
}

thread_local! {
    /// The clock of this thread's current loop tick, read on first use.
    static LOOP_NOW: std::cell::Cell<Tick> = const { std::cell::Cell::new(Tick::Outside) };
}

/// The monotonic clock as this thread's loop read it in the current tick:
/// the first call in a tick reads the clock, the others do not (a busy loop
/// with no timer and nobody asking reads no clock at all). It is behind the
/// real clock by at most the work done since in the tick (under load, a
/// few hundred microseconds; the loop never sleeps within a tick). Reads
/// the clock outside a runtime.
pub fn loop_now() -> Instant {
    LOOP_NOW.with(|tick| match tick.get() {
        Tick::Read(now) => now,
        Tick::Unread => {
            let now = Instant::now();
            tick.set(Tick::Read(now));
            now
        }
        Tick::Outside => Instant::now(),
    })
}

/// Begins a tick of this thread's loop: the clock is read when first asked
/// for ([`loop_now`]).
pub(crate) fn start_tick() {
    LOOP_NOW.with(|tick| tick.set(Tick::Unread));
}

/// Forgets the tick's clock (the runtime is leaving this thread).
pub(crate) fn end_ticks() {
    let _ = LOOP_NOW.try_with(|tick| tick.set(Tick::Outside));
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

/// (deadline, slot, generation) of a registration.
type Entry = (Instant, usize, u64);

#[derive(Default)]
pub(crate) struct Timers {
    /// Earliest first; may hold entries of cancelled timers (their slot's
    /// generation moved on or its waker is gone).
    heap: BinaryHeap<Reverse<Entry>>,
    /// The nursery: timers registered since the last [`fire`](Self::fire)...
    young: Vec<Entry>,
    /// ... and those that have been through one `fire` still armed. Either
    /// may hold cancelled entries, dropped at the next `fire`.
    older: Vec<Entry>,
    /// The earliest deadline in `older` (nothing is in `young` between a
    /// `fire` and the next registration).
    older_first: Option<Instant>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    armed: usize,
    /// Registrations, and those of them that reached the heap.
    registered: u64,
    promoted: u64,
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
        self.registered += 1;
        self.young.push((deadline, slot, entry.generation));
        Key { slot, generation: entry.generation }
    }

    fn is_armed(&self, slot: usize, generation: u64) -> bool {
        let slot = &self.slots[slot];
        slot.generation == generation && slot.waker.is_some()
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
        if self.armed == 0 {
            // Every entry left is a cancelled one.
            self.heap.clear();
            self.young.clear();
            self.older.clear();
            self.older_first = None;
        } else if self.heap.len() > 2 * self.armed + 1024 {
            // Cancelled entries at most about as many as armed ones.
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, s, g))| slots[*s].generation == *g && slots[*s].waker.is_some());
        }
        Some(waker)
    }

    /// Drops cancelled entries from the top of the heap.
    fn skip_cancelled(&mut self) {
        while let Some(Reverse((_, slot, generation))) = self.heap.peek() {
            if self.is_armed(*slot, *generation) {
                return;
            }
            self.heap.pop();
        }
    }

    /// Wakes every timer whose deadline has passed and returns their
    /// wakers. Moves the nursery on: armed timers registered before the
    /// previous `fire` go to the heap, those registered since wait one more
    /// tick; cancelled ones are dropped.
    pub(crate) fn fire(&mut self, now: Instant) -> Vec<Waker> {
        let mut fired = Vec::new();
        let mut older = std::mem::take(&mut self.older);
        for (deadline, slot, generation) in older.drain(..) {
            if !self.is_armed(slot, generation) {
                continue;
            }
            if deadline <= now {
                fired.extend(self.remove(Key { slot, generation }));
            } else {
                self.promoted += 1;
                self.heap.push(Reverse((deadline, slot, generation)));
            }
        }
        // `young` becomes `older`; the emptied buffer is the next `young`.
        std::mem::swap(&mut self.young, &mut older);
        let mut first: Option<Instant> = None;
        older.retain(|&(deadline, slot, generation)| {
            if !self.is_armed(slot, generation) {
                return false;
            }
            if deadline <= now {
                fired.extend(self.remove(Key { slot, generation }));
                return false;
            }
            first = Some(first.map_or(deadline, |f| f.min(deadline)));
            true
        });
        self.older = older;
        self.older_first = first;
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

    /// Time until the nearest deadline, if any (called after
    /// [`fire`](Self::fire), before any new registration).
    pub(crate) fn next_timeout(&mut self, now: Instant) -> Option<Duration> {
        self.skip_cancelled();
        let heap_first = self.heap.peek().map(|Reverse((deadline, _, _))| *deadline);
        let young_first = self.young.iter().map(|entry| entry.0).min();
        let first = [heap_first, self.older_first, young_first].into_iter().flatten().min();
        first.map(|deadline| deadline.saturating_duration_since(now))
    }

    pub(crate) fn len(&self) -> usize {
        self.armed
    }

    /// Timers registered, and how many of them reached the heap.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.registered, self.promoted)
    }
}

/// Future returned by [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// The registered timer and the deadline it was registered for (earlier
    /// than `deadline` after a [`postpone`](Sleep::postpone)).
    key: Option<(Key, Instant)>,
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

    /// Moves the deadline, cheaply when it moves later: the timer stays
    /// registered for the earlier deadline and, when that fires, the next
    /// poll registers it again for the later one (so a connection that
    /// pushes its idle deadline on at every request touches the timers once
    /// per timeout, not once per request). A deadline earlier than the
    /// registered one is a [`reset`](Sleep::reset).
    pub fn postpone(&mut self, deadline: Instant) {
        match self.key {
            Some((_, registered)) if deadline >= registered => self.deadline = deadline,
            _ => self.reset(deadline),
        }
    }

    fn unregister(&mut self) {
        if let Some((key, _)) = self.key.take() {
            crate::context::try_with(|cx| cx.timers.borrow_mut().remove(key));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    /// Reads no clock: a sleep registers its timer on its first poll (even
    /// one already due: the loop fires it at the end of this tick), and is
    /// done once the loop has fired it for its deadline, which it does only
    /// after that deadline. A timer fired for an earlier deadline (the sleep
    /// was postponed) is registered again.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (deadline, key) = (self.deadline, self.key);
        let registered = crate::context::with(|ctx| {
            let mut timers = ctx.timers.borrow_mut();
            match key {
                Some((k, at)) => match timers.armed_mut(k) {
                    Some(waker) => {
                        if !waker.will_wake(cx.waker()) {
                            *waker = cx.waker().clone();
                        }
                        Some((k, at))
                    }
                    // Only `fire` removes a registered timer: it fired.
                    None if deadline > at => Some((timers.insert(deadline, cx.waker().clone()), deadline)),
                    None => None,
                },
                None => Some((timers.insert(deadline, cx.waker().clone()), deadline)),
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

/// Runs `future` until `deadline` at most; see [`timeout`].
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep_until(deadline) }
}

/// Runs `future` until `sleep` completes at most: a timeout whose sleep
/// outlives it, to be [postponed](Sleep::postpone) and used again.
pub fn timeout_by<F: Future>(sleep: &mut Sleep, future: F) -> Timeout<F, &mut Sleep> {
    Timeout { future, sleep }
}

/// Future returned by [`timeout`] and [`timeout_at`] (which own their
/// sleep, `S = Sleep`) and by [`timeout_by`] (which borrows it).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F, S = Sleep> {
    future: F,
    sleep: S,
}

impl<F: Future, S: std::borrow::BorrowMut<Sleep> + Unpin> Future for Timeout<F, S> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self` and `Timeout` has no `Drop` impl; `sleep` is `Unpin`.
        let (future, sleep) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.future), this.sleep.borrow_mut())
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
    fn short_lived_timers_never_reach_the_heap_and_long_ones_fire_on_time() {
        let mut timers = Timers::default();
        let base = Instant::now();
        let tick = |k: u64| base + Duration::from_millis(k);
        // An anchor that stays armed, so that the nursery is not simply
        // cleared when nothing is armed.
        let anchor = timers.insert(tick(1_000_000), Waker::noop().clone());
        // Timers cancelled in the tick they were made in, or in the next:
        // the request timeouts of a loaded server.
        for round in 0..1_000u64 {
            let a = timers.insert(tick(60_000 + round), Waker::noop().clone());
            let b = timers.insert(tick(30_000 + round), Waker::noop().clone());
            assert!(timers.remove(a).is_some());
            assert!(timers.fire(tick(round)).is_empty());
            assert!(timers.remove(b).is_some(), "b was still armed after one tick");
        }
        // Only the anchor went to the heap; the next tick leaves nothing
        // stale in the nursery.
        assert!(timers.fire(tick(1_000)).is_empty());
        assert_eq!(timers.promoted, 1);
        assert_eq!(timers.heap.len(), 1);
        assert!(timers.young.is_empty() && timers.older.is_empty());
        // A timer that outlives two ticks moves to the heap and fires at its
        // deadline, not before.
        let late = timers.insert(tick(5_000), Waker::noop().clone());
        assert!(timers.fire(tick(2_000)).is_empty());
        assert_eq!(timers.next_timeout(tick(2_000)), Some(Duration::from_millis(3_000)), "seen in the nursery");
        assert!(timers.fire(tick(3_000)).is_empty());
        assert_eq!(timers.promoted, 2);
        assert_eq!(timers.next_timeout(tick(3_000)), Some(Duration::from_millis(2_000)), "seen in the heap");
        assert!(timers.fire(tick(4_999)).is_empty());
        assert_eq!(timers.fire(tick(5_000)).len(), 1);
        assert!(timers.armed_mut(late).is_none());
        // A timer already due fires at the first tick, from the nursery.
        let due = timers.insert(tick(4_000), Waker::noop().clone());
        assert_eq!(timers.fire(tick(5_001)).len(), 1);
        assert!(timers.armed_mut(due).is_none());
        assert_eq!(timers.promoted, 2);
        assert_eq!(timers.len(), 1);
        assert!(timers.remove(anchor).is_some());
        assert_eq!(timers.next_timeout(tick(0)), None);
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
