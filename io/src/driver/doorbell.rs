//! The doorbell: how another thread wakes this thread out of its ring wait.
//!
//! Two ways, both always armed on the receiving side:
//! - **eventfd**: the ring keeps an 8-byte read of an eventfd in flight; any
//!   thread `write(2)`s to the eventfd and the read completes.
//! - **MSG_RING** (`IORING_OP_MSG_RING`, Linux 5.18), the default: a sender
//!   that runs its own ring submits an SQE that posts a CQE straight into the
//!   target's CQ. It is submitted at once (that enter also carries whatever
//!   else the sender had queued): left for the sender's end of tick, it
//!   halved cross-core throughput (BENCHMARKS.md). A sender without a ring
//!   falls back to the eventfd; a message the kernel refuses is retried by
//!   eventfd.
//!
//! **Invariant:** the eventfd read's 8-byte buffer lives as long as the ring
//! or, if the read is still in flight at shutdown, is leaked, never freed.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use io_uring::opcode;

use super::slots::{Cqe, Orphan};
use super::{Driver, DOORBELL};
use crate::error::syscall;

/// `user_data` of the CQE that a MSG_RING doorbell posts.
pub(crate) const DOORBELL_MSG: u64 = u64::MAX - 2;

/// How a [`Doorbell`] reaches its ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DoorbellKind {
    /// `write(2)` to an eventfd whose read the target keeps armed.
    EventFd,
    /// `IORING_OP_MSG_RING` from the caller's own ring (eventfd if the
    /// calling thread runs no ring). The default: faster parked round trips
    /// and higher throughput than the eventfd (BENCHMARKS.md, cores).
    #[default]
    MsgRing,
}

struct Shared {
    eventfd: OwnedFd,
    /// A duplicate of the target ring's fd, so a MSG_RING never targets a
    /// closed (or reused) descriptor.
    ring_fd: OwnedFd,
    kind: DoorbellKind,
    rung: AtomicU64,
}

/// A handle that wakes one thread's ring from any thread. Cheap to clone.
///
/// Ringing a doorbell whose ring is not waiting is harmless: the ring sees a
/// spurious wake-up and goes on.
#[derive(Clone)]
pub struct Doorbell {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorbell").field("kind", &self.shared.kind).finish()
    }
}

impl Doorbell {
    pub(crate) fn new(ring_fd: RawFd, kind: DoorbellKind) -> io::Result<(Doorbell, DoorbellReader)> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked below.
        let efd = syscall(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `efd` was just returned by eventfd(2) and is owned by no one else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes no pointers; checked below.
        let dup = syscall(unsafe { libc::fcntl(ring_fd, libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: `dup` was just returned by fcntl(2) and is owned by no one else.
        let ring_fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let reader = DoorbellReader {
            eventfd: eventfd.as_raw_fd(),
            buf: Box::into_raw(Box::new(0u64)),
            armed: Cell::new(false),
            rings: Cell::new(0),
        };
        let shared = Arc::new(Shared { eventfd, ring_fd, kind, rung: AtomicU64::new(0) });
        Ok((Doorbell { shared }, reader))
    }

    /// Wakes the target ring.
    pub fn ring(&self) {
        self.shared.rung.fetch_add(1, Ordering::Relaxed);
        if self.shared.kind == DoorbellKind::MsgRing && self.ring_by_msg() {
            return;
        }
        self.ring_by_eventfd();
    }

    fn ring_by_eventfd(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an eventfd we own. A
        // failure can only be EAGAIN (the counter is saturated, so the target
        // is being woken anyway).
        unsafe { libc::write(self.shared.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Submits a MSG_RING from this thread's ring, if it has one.
    fn ring_by_msg(&self) -> bool {
        let entry = opcode::MsgRingData::new(types_fd(self.shared.ring_fd.as_raw_fd()), 0, DOORBELL_MSG, None).build();
        let fallback = Box::new(MsgFallback(self.clone()));
        crate::context::try_with(|cx| {
            // SAFETY: a MSG_RING data SQE points at no memory.
            let queued = unsafe { cx.driver.submit_detached(entry, fallback) }.is_ok();
            // Submitted at once rather than at the end of the sender's tick:
            // the target starts while the sender goes on (see module docs).
            queued && cx.driver.ring.borrow_mut().enter(0, None).is_ok()
        })
        .unwrap_or(false)
    }

    /// How many times this doorbell was rung (by anyone).
    pub fn rung(&self) -> u64 {
        self.shared.rung.load(Ordering::Relaxed)
    }

    /// Which mechanism this doorbell uses.
    pub fn kind(&self) -> DoorbellKind {
        self.shared.kind
    }
}

/// Rings by eventfd if the kernel refused a MSG_RING (its target ring is
/// disabled or short of memory), so no wake-up is lost. (`IOSQE_CQE_SKIP_SUCCESS`
/// cannot be used to spare the sender's CQE: the slot must see the result.)
struct MsgFallback(Doorbell);

impl Orphan for MsgFallback {
    fn release(&mut self, cqe: Cqe) {
        if cqe.result < 0 {
            self.0.ring_by_eventfd();
        }
    }
}

fn types_fd(fd: RawFd) -> io_uring::types::Fd {
    io_uring::types::Fd(fd)
}

/// The receiving side: keeps the eventfd read armed in the ring.
pub(crate) struct DoorbellReader {
    eventfd: RawFd,
    /// The read's buffer; the kernel owns it while `armed`.
    buf: *mut u64,
    armed: Cell<bool>,
    rings: Cell<u64>,
}

impl DoorbellReader {
    /// Arms the eventfd read if it is not in flight.
    pub(crate) fn arm(&self, driver: &Driver) -> io::Result<()> {
        if self.armed.get() {
            return Ok(());
        }
        let entry = opcode::Read::new(types_fd(self.eventfd), self.buf.cast(), 8).build().user_data(DOORBELL);
        // SAFETY: `buf` is a live heap allocation that this reader frees only
        // when the read is not armed (see `Drop`), so it outlives the read.
        unsafe { driver.ring.borrow_mut().push(&entry)? };
        self.armed.set(true);
        Ok(())
    }

    pub(crate) fn on_completion(&self, _cqe: Cqe) {
        self.armed.set(false);
        self.rings.set(self.rings.get() + 1);
    }

    pub(crate) fn armed(&self) -> bool {
        self.armed.get()
    }
}

impl Drop for DoorbellReader {
    fn drop(&mut self) {
        if self.armed.get() {
            // The kernel may still write into the buffer: leak it.
            return;
        }
        // SAFETY: `buf` came from Box::into_raw and the read is not in flight.
        drop(unsafe { Box::from_raw(self.buf) });
    }
}
