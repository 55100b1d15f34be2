//! The driver: one ring per thread, its slot table and its doorbell.
//!
//! Everything here is thread-local. [`Driver::submit`] records an operation in
//! the slot table and pushes its SQE; [`Driver::dispatch`] reaps completions
//! into the slots and wakes their futures. Wakers and orphan release hooks run
//! after the table's borrow ends, never inside it and never recursively.

pub(crate) mod doorbell;
pub(crate) mod ring;
pub(crate) mod slots;

use std::cell::{Cell, RefCell};
use std::io;
use std::time::Duration;

use io_uring::{opcode, squeue, types};

use self::doorbell::DoorbellReader;
use self::ring::Ring;
use self::slots::{Action, Cqe, Key, Slots};

/// `user_data` of SQEs whose completion nobody waits for: async cancels,
/// fire-and-forget closes, the sender side of a MSG_RING doorbell.
pub(crate) const IGNORED: u64 = u64::MAX;
/// `user_data` of the armed eventfd read and of MSG_RING doorbell posts.
pub(crate) const DOORBELL: u64 = u64::MAX - 1;

pub(crate) struct Driver {
    pub(crate) ring: RefCell<Ring>,
    pub(crate) slots: RefCell<Slots>,
    pub(crate) doorbell: DoorbellReader,
    scratch: RefCell<Vec<(u64, Cqe)>>,
    pub(crate) doorbell_cqes: Cell<u64>,
    pub(crate) cancels: Cell<u64>,
    pub(crate) cancel_retries: Cell<u64>,
    /// Flush the SQ to the kernel once this many SQEs wait in it.
    submit_batch: usize,
}

impl Driver {
    pub(crate) fn new(ring: Ring, doorbell: DoorbellReader, submit_batch: u32) -> Driver {
        Driver {
            ring: RefCell::new(ring),
            slots: RefCell::new(Slots::new()),
            doorbell,
            scratch: RefCell::new(Vec::with_capacity(256)),
            doorbell_cqes: Cell::new(0),
            cancels: Cell::new(0),
            cancel_retries: Cell::new(0),
            submit_batch: submit_batch as usize,
        }
    }

    /// Records a single-shot operation and queues its SQE.
    ///
    /// # Safety
    /// Every pointer in `entry` must point into memory that the caller moves
    /// into the operation's future and, if that future is dropped early, into
    /// the slot as an orphan, so that it lives until the completion is reaped.
    ///
    /// With `eager`, the SQ goes to the kernel at once instead of at the end
    /// of the tick (or when `submit_batch` SQEs wait).
    pub(crate) unsafe fn submit(&self, entry: squeue::Entry, multishot: bool, eager: bool) -> Key {
        let key = {
            let mut slots = self.slots.borrow_mut();
            if multishot {
                slots.insert_multi()
            } else {
                slots.insert_single()
            }
        };
        let entry = entry.user_data(key.user_data());
        let mut ring = self.ring.borrow_mut();
        // SAFETY: forwarded from this function's contract.
        let pushed = unsafe { ring.push(&entry) };
        let pushed = pushed.and_then(|()| {
            if eager || ring.sq_pending() >= self.submit_batch {
                ring.enter(0, None)?;
            }
            Ok(())
        });
        drop(ring);
        if let Err(err) = pushed {
            // The SQE never reached the kernel: complete it here with the
            // error so the future sees it on its first poll.
            let errno = err.raw_os_error().unwrap_or(libc::EBUSY);
            self.complete_locally(key, -errno);
        }
        key
    }

    /// Submits an operation that no future awaits; its completion goes to
    /// `orphan` (no cancel is ever submitted for it).
    ///
    /// # Safety
    /// As [`Driver::submit`], with `orphan` owning the memory.
    pub(crate) unsafe fn submit_detached(
        &self,
        entry: squeue::Entry,
        orphan: Box<dyn slots::Orphan>,
    ) -> io::Result<()> {
        let key = self.slots.borrow_mut().insert_orphan(orphan);
        let entry = entry.user_data(key.user_data());
        // SAFETY: forwarded from this function's contract.
        if let Err(err) = unsafe { self.ring.borrow_mut().push(&entry) } {
            self.complete_locally(key, -err.raw_os_error().unwrap_or(libc::EBUSY));
            return Err(err);
        }
        Ok(())
    }

    /// Completes `key` without the kernel (fault injection, failed push).
    pub(crate) fn complete_locally(&self, key: Key, result: i32) {
        let action = self.slots.borrow_mut().complete(key, Cqe { result, flags: 0 });
        self.act(key, action, Cqe { result, flags: 0 });
    }

    /// Queues an SQE whose completion is ignored.
    ///
    /// # Safety
    /// `entry` must point at no memory (a close, an async cancel by key):
    /// nothing keeps memory alive for it, since no slot owns it.
    pub(crate) unsafe fn submit_ignored(&self, entry: squeue::Entry) -> io::Result<()> {
        let entry = entry.user_data(IGNORED);
        // SAFETY: forwarded from this function's contract: the entry points
        // at no memory, so nothing must outlive the call.
        unsafe { self.ring.borrow_mut().push(&entry) }
    }

    /// Asks the kernel to cancel the operation of `key`. Its completion (with
    /// `-ECANCELED`, or its real result if it won the race) still arrives and
    /// is handled by the slot's orphan.
    ///
    /// The cancel's own result is checked: `-ENOENT` while the target is
    /// still in flight means the cancel raced the request being armed (or
    /// handed to an io-wq worker) and missed it, so it is sent again (at most
    /// [`CANCEL_ATTEMPTS_MAX`] times). Without this a missed cancel of, say,
    /// an accept would leave it armed until a connection happens to come.
    pub(crate) fn cancel(&self, key: Key) {
        self.cancels.set(self.cancels.get() + 1);
        self.submit_cancel(key, 1);
    }

    fn submit_cancel(&self, target: Key, attempt: u32) {
        let entry = opcode::AsyncCancel::new(target.user_data()).build();
        // SAFETY: an async-cancel SQE points at no memory.
        let _ = unsafe { self.submit_detached(entry, Box::new(CancelRetry { target, attempt })) };
        // If even that failed (the SQ stayed full), the op completes on its
        // own in time and its orphan releases what it holds then.
    }

    /// Cancels every operation on the ring (used at shutdown).
    pub(crate) fn cancel_all(&self) {
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build();
        // SAFETY: a cancel of every request points at no memory.
        let _ = unsafe { self.submit_ignored(entry) };
    }

    /// Reaps up to `max` completions and acts on each. Returns how many.
    pub(crate) fn dispatch(&self, max: usize) -> usize {
        let mut batch = std::mem::take(&mut *self.scratch.borrow_mut());
        let n = self.ring.borrow_mut().reap(&mut batch, max);
        for (user_data, cqe) in batch.drain(..) {
            match user_data {
                IGNORED => {}
                DOORBELL => {
                    self.doorbell_cqes.set(self.doorbell_cqes.get() + 1);
                    self.doorbell.on_completion(cqe);
                }
                doorbell::DOORBELL_MSG => self.doorbell_cqes.set(self.doorbell_cqes.get() + 1),
                _ => {
                    let key = Key::from_user_data(user_data);
                    let action = self.slots.borrow_mut().complete(key, cqe);
                    self.act(key, action, cqe);
                }
            }
        }
        *self.scratch.borrow_mut() = batch;
        n
    }

    fn act(&self, key: Key, action: Action, cqe: Cqe) {
        match action {
            Action::Nothing => {}
            Action::Wake(waker) => waker.wake(),
            Action::Release { mut orphan, reinsert } => {
                orphan.release(cqe);
                if reinsert {
                    self.slots.borrow_mut().restore_orphan(key, orphan);
                }
            }
        }
    }

    /// Submits and waits up to `timeout` for at least one completion.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.doorbell.arm(self)?;
        self.ring.borrow_mut().enter(1, timeout)
    }

    /// Submits queued SQEs and runs completion work without waiting.
    pub(crate) fn submit_pending(&self) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        if ring.sq_pending() > 0 || self.slots.borrow().in_use() > 0 || ring.cq_overflowed() {
            ring.enter(0, None)
        } else {
            Ok(())
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.slots.borrow().in_use()
    }
}

/// Attempts at cancelling one operation before giving up on it (it then
/// completes whenever the kernel completes it).
pub(crate) const CANCEL_ATTEMPTS_MAX: u32 = 64;

/// Watches an async cancel's result and sends it again if it missed.
struct CancelRetry {
    target: Key,
    attempt: u32,
}

impl slots::Orphan for CancelRetry {
    fn release(&mut self, cqe: Cqe) {
        if cqe.result != -libc::ENOENT || self.attempt >= CANCEL_ATTEMPTS_MAX {
            return;
        }
        let (target, attempt) = (self.target, self.attempt + 1);
        crate::context::try_with(|cx| {
            if cx.driver.slots.borrow_mut().is_live(target) {
                cx.driver.cancel_retries.set(cx.driver.cancel_retries.get() + 1);
                cx.driver.submit_cancel(target, attempt);
            }
        });
    }
}
