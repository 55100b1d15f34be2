//! The slot table: the one owner of every in-flight operation's state.
//!
//! Each submitted SQE carries a [`Key`] (slot index plus generation) as its
//! `user_data`. The slot, not the future, decides when the operation's
//! resources may be freed: a future that is dropped while its operation is in
//! flight moves its resources into the slot as an [`Orphan`], and the slot
//! releases them only when the kernel's final completion for that key arrives.
//!
//! **Invariant:** a slot is returned to the free list only after the last
//! completion for its key (one without `IORING_CQE_F_MORE`) was reaped, or when
//! the operation never reached the kernel. The generation makes a stale key
//! (for example an async-cancel aimed at a slot that was since reused) miss.
//!
//! Pure Rust, no ring: unit-tested on its own.

use std::collections::VecDeque;
use std::task::Waker;

/// The `user_data` of an operation: `generation << 32 | index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key(u64);

impl Key {
    pub(crate) fn from_user_data(user_data: u64) -> Key {
        Key(user_data)
    }
    pub(crate) fn user_data(self) -> u64 {
        self.0
    }
    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
    fn new(index: usize, generation: u32) -> Key {
        Key((u64::from(generation) << 32) | index as u64)
    }
}

/// One completion as reaped from the CQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cqe {
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

impl Cqe {
    /// True when the kernel will post more completions for the same key.
    pub(crate) fn more(self) -> bool {
        io_uring::cqueue::more(self.flags)
    }
}

/// What a dropped operation leaves behind: its buffers and a hook that
/// releases whatever the kernel hands over after all (an accepted or opened fd,
/// a provided buffer).
pub(crate) trait Orphan {
    /// Called once per completion that arrives after the future was dropped.
    fn release(&mut self, cqe: Cqe);
}

enum State {
    Free {
        next: usize,
    },
    /// In flight; the waker of the future that waits on it, if it polled.
    Pending {
        waker: Option<Waker>,
    },
    /// Completed; the result waits for the future's next poll.
    Done(Cqe),
    /// A multishot operation: completions queue up until the stream takes them.
    Multi {
        waker: Option<Waker>,
        cqes: VecDeque<Cqe>,
        ended: bool,
    },
    /// The future is gone; the kernel still owns what the orphan holds.
    Orphaned(Box<dyn Orphan>),
}

struct Entry {
    generation: u32,
    state: State,
}

/// What the reaper must do after a completion was recorded. The caller acts
/// on it after releasing its borrow of the table, so wakers and release hooks
/// never run inside the table.
pub(crate) enum Action {
    Nothing,
    Wake(Waker),
    /// Give the completion to the orphan; if `reinsert`, more completions
    /// follow and the orphan must go back with [`Slots::restore_orphan`].
    Release {
        orphan: Box<dyn Orphan>,
        reinsert: bool,
    },
}

/// Outcome of polling a single-shot slot.
pub(crate) enum Poll1 {
    Pending,
    Ready(Cqe),
}

pub(crate) struct Slots {
    entries: Vec<Entry>,
    free_head: usize,
    in_use: usize,
}

const NONE: usize = usize::MAX;

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots { entries: Vec::new(), free_head: NONE, in_use: 0 }
    }

    /// Number of slots whose operation has not been fully reaped.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    fn insert(&mut self, state: State) -> Key {
        self.in_use += 1;
        if self.free_head != NONE {
            let index = self.free_head;
            let entry = &mut self.entries[index];
            let State::Free { next } = entry.state else { unreachable!("free list points at a used slot") };
            self.free_head = next;
            entry.generation = entry.generation.wrapping_add(1);
            entry.state = state;
            return Key::new(index, entry.generation);
        }
        // Indexes stay below 2^31 so that they never meet the reserved
        // `user_data` values (u64::MAX - k) of the driver.
        assert!(self.entries.len() < (1 << 31), "slot table full");
        self.entries.push(Entry { generation: 0, state });
        Key::new(self.entries.len() - 1, 0)
    }

    pub(crate) fn insert_single(&mut self) -> Key {
        self.insert(State::Pending { waker: None })
    }

    pub(crate) fn insert_multi(&mut self) -> Key {
        self.insert(State::Multi { waker: None, cqes: VecDeque::new(), ended: false })
    }

    fn entry(&mut self, key: Key) -> Option<&mut Entry> {
        let entry = self.entries.get_mut(key.index())?;
        if entry.generation != key.generation() || matches!(entry.state, State::Free { .. }) {
            return None;
        }
        Some(entry)
    }

    fn free(&mut self, key: Key) {
        let head = self.free_head;
        let entry = &mut self.entries[key.index()];
        debug_assert!(!matches!(entry.state, State::Free { .. }));
        entry.state = State::Free { next: head };
        self.free_head = key.index();
        self.in_use -= 1;
    }

    /// A slot for an operation nobody awaits: its completion goes straight
    /// to `orphan`.
    pub(crate) fn insert_orphan(&mut self, orphan: Box<dyn Orphan>) -> Key {
        self.insert(State::Orphaned(orphan))
    }

    /// True while `key`'s operation has not been fully reaped.
    pub(crate) fn is_live(&mut self, key: Key) -> bool {
        self.entry(key).is_some_and(|e| !matches!(e.state, State::Done(_)))
    }

    /// Records a completion reaped from the CQ for `key`.
    pub(crate) fn complete(&mut self, key: Key, cqe: Cqe) -> Action {
        let Some(entry) = self.entry(key) else {
            // A completion for a key that is not live is a driver bug: every
            // key stays live until its final completion.
            debug_assert!(false, "completion for a dead slot {key:?}");
            return Action::Nothing;
        };
        match &mut entry.state {
            State::Pending { waker } => {
                let waker = waker.take();
                debug_assert!(!cqe.more(), "single-shot op posted F_MORE");
                entry.state = State::Done(cqe);
                waker.map_or(Action::Nothing, Action::Wake)
            }
            State::Multi { waker, cqes, ended } => {
                cqes.push_back(cqe);
                *ended = !cqe.more();
                waker.take().map_or(Action::Nothing, Action::Wake)
            }
            State::Orphaned(_) => {
                let reinsert = cqe.more();
                let State::Orphaned(orphan) = std::mem::replace(&mut entry.state, State::Pending { waker: None })
                else {
                    unreachable!()
                };
                if !reinsert {
                    self.free(key);
                }
                Action::Release { orphan, reinsert }
            }
            State::Done(_) | State::Free { .. } => {
                debug_assert!(false, "second completion for single-shot slot {key:?}");
                Action::Nothing
            }
        }
    }

    /// Puts back an orphan that still expects completions (multishot).
    pub(crate) fn restore_orphan(&mut self, key: Key, orphan: Box<dyn Orphan>) {
        let entry = self.entry(key).expect("restore_orphan on a dead slot");
        entry.state = State::Orphaned(orphan);
    }

    /// Polls a single-shot slot. On `Ready` the slot is freed.
    pub(crate) fn poll_single(&mut self, key: Key, waker: &Waker) -> Poll1 {
        let entry = self.entry(key).expect("poll of a dead slot");
        match &mut entry.state {
            State::Pending { waker: stored } => {
                match stored {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *stored = Some(waker.clone()),
                }
                Poll1::Pending
            }
            State::Done(cqe) => {
                let cqe = *cqe;
                self.free(key);
                Poll1::Ready(cqe)
            }
            _ => unreachable!("poll_single on a non-single slot"),
        }
    }

    /// Takes the next queued completion of a multishot slot. `Ok(None)` means
    /// none is queued yet (the waker is stored); `Err(())` means the operation
    /// has ended and every completion was taken: the slot is freed.
    pub(crate) fn poll_multi(&mut self, key: Key, waker: &Waker) -> Result<Option<Cqe>, ()> {
        let entry = self.entry(key).expect("poll of a dead slot");
        let State::Multi { waker: stored, cqes, ended } = &mut entry.state else {
            unreachable!("poll_multi on a non-multi slot")
        };
        if let Some(cqe) = cqes.pop_front() {
            return Ok(Some(cqe));
        }
        if *ended {
            self.free(key);
            return Err(());
        }
        match stored {
            Some(w) if w.will_wake(waker) => {}
            _ => *stored = Some(waker.clone()),
        }
        Ok(None)
    }

    /// The future of `key` is being dropped. Returns the completions it had
    /// not taken yet and whether the operation is still in flight. If it is,
    /// the caller must hand the slot its orphan with [`Slots::restore_orphan`]
    /// (after releasing the returned completions through it) before the next
    /// reap; if not, the slot is freed.
    pub(crate) fn abandon(&mut self, key: Key) -> (Vec<Cqe>, bool) {
        let entry = self.entry(key).expect("abandon of a dead slot");
        let (queued, in_flight) = match std::mem::replace(&mut entry.state, State::Pending { waker: None }) {
            State::Pending { .. } => (Vec::new(), true),
            State::Done(cqe) => (vec![cqe], false),
            State::Multi { cqes, ended, .. } => (cqes.into(), !ended),
            State::Orphaned(_) | State::Free { .. } => unreachable!("abandon of an orphan"),
        };
        if !in_flight {
            self.free(key);
        }
        (queued, in_flight)
    }

    /// Wakes every waiting future (used when the runtime shuts down).
    pub(crate) fn take_wakers(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for entry in &mut self.entries {
            match &mut entry.state {
                State::Pending { waker } | State::Multi { waker, .. } => wakers.extend(waker.take()),
                _ => {}
            }
        }
        wakers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Recorder(Rc<RefCell<Vec<Cqe>>>);
    impl Orphan for Recorder {
        fn release(&mut self, cqe: Cqe) {
            self.0.borrow_mut().push(cqe);
        }
    }

    const MORE: u32 = io_uring_cqe_f_more();
    const fn io_uring_cqe_f_more() -> u32 {
        1 << 1
    }

    fn cqe(result: i32, flags: u32) -> Cqe {
        Cqe { result, flags }
    }

    #[test]
    fn single_shot_round_trip_frees_slot() {
        let mut slots = Slots::new();
        let counter = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let key = slots.insert_single();
        assert!(matches!(slots.poll_single(key, &waker), Poll1::Pending));
        let Action::Wake(w) = slots.complete(key, cqe(7, 0)) else { panic!("expected wake") };
        w.wake();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(matches!(slots.poll_single(key, &waker), Poll1::Ready(Cqe { result: 7, .. })));
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn reused_slot_gets_new_generation_and_stale_key_misses() {
        let mut slots = Slots::new();
        let first = slots.insert_single();
        slots.complete(first, cqe(0, 0));
        let waker = Waker::noop();
        assert!(matches!(slots.poll_single(first, waker), Poll1::Ready(_)));
        let second = slots.insert_single();
        assert_eq!(first.index(), second.index());
        assert_ne!(first, second);
        assert!(slots.entry(first).is_none());
    }

    #[test]
    fn dropped_in_flight_op_keeps_slot_until_completion() {
        let mut slots = Slots::new();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let key = slots.insert_single();
        let (queued, in_flight) = slots.abandon(key);
        assert!(queued.is_empty());
        assert!(in_flight, "in flight: the slot keeps the orphan");
        slots.restore_orphan(key, Box::new(Recorder(seen.clone())));
        assert_eq!(slots.in_use(), 1);
        let Action::Release { mut orphan, reinsert } = slots.complete(key, cqe(5, 0)) else { panic!() };
        assert!(!reinsert);
        orphan.release(cqe(5, 0));
        assert_eq!(slots.in_use(), 0);
        assert_eq!(seen.borrow().as_slice(), &[cqe(5, 0)]);
    }

    #[test]
    fn multishot_orphan_lives_until_final_completion() {
        let mut slots = Slots::new();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let key = slots.insert_multi();
        slots.complete(key, cqe(1, MORE));
        let (queued, in_flight) = slots.abandon(key);
        assert_eq!(queued, vec![cqe(1, MORE)], "untaken completions are handed back");
        assert!(in_flight);
        slots.restore_orphan(key, Box::new(Recorder(seen.clone())));
        let Action::Release { orphan, reinsert } = slots.complete(key, cqe(2, MORE)) else { panic!() };
        assert!(reinsert);
        slots.restore_orphan(key, orphan);
        let Action::Release { reinsert, .. } = slots.complete(key, cqe(-125, 0)) else { panic!() };
        assert!(!reinsert);
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn multishot_stream_drains_then_ends() {
        let mut slots = Slots::new();
        let waker = Waker::noop();
        let key = slots.insert_multi();
        assert_eq!(slots.poll_multi(key, waker), Ok(None));
        slots.complete(key, cqe(10, MORE));
        slots.complete(key, cqe(11, 0));
        assert_eq!(slots.poll_multi(key, waker), Ok(Some(cqe(10, MORE))));
        assert_eq!(slots.poll_multi(key, waker), Ok(Some(cqe(11, 0))));
        assert_eq!(slots.poll_multi(key, waker), Err(()));
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn completed_but_unpolled_op_returns_result_to_orphan_on_drop() {
        let mut slots = Slots::new();
        let key = slots.insert_single();
        slots.complete(key, cqe(9, 0));
        let (queued, in_flight) = slots.abandon(key);
        assert_eq!(queued, vec![cqe(9, 0)]);
        assert!(!in_flight);
        assert_eq!(slots.in_use(), 0);
    }
}
