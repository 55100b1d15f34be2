//! Provided-buffer rings (`IORING_REGISTER_PBUF_RING`, Linux 5.19) for
//! multishot receives: the kernel picks a buffer only when data arrives, so
//! an idle connection holds none.
//!
//! A received buffer comes out as a [`RingBuf`]; dropping it gives the buffer
//! back to the ring. A receive whose future was dropped gives back, through
//! its orphan, every buffer the kernel picked for it.
//!
//! **Invariant:** the ring's memory (entries and buffers) lives until it is
//! unregistered, which happens only when no operation can still pick from it
//! (every holder of the inner `Rc`, including in-flight receives, is gone).

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::Waker;

use io_uring::types::BufRingEntry;

use crate::context;

/// Per-thread registry: hands out buffer group ids.
#[derive(Default)]
pub(crate) struct BufRingRegistry {
    next_bgid: Cell<u16>,
    leak: Cell<bool>,
}

impl BufRingRegistry {
    /// Makes every ring leak its memory instead of freeing it (shutdown with
    /// operations the kernel never completed).
    pub(crate) fn leak_all(&self) {
        self.leak.set(true);
    }
}

struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping with no address hint; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub(crate) struct Inner {
    bgid: u16,
    entries: u16,
    buf_size: u32,
    ring: Mapping,
    bufs: Mapping,
    /// Our copy of the tail we publish to the kernel.
    tail: Cell<u16>,
    /// Buffers the kernel has handed out that are not back yet.
    out: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
    runtime: u64,
}

impl Inner {
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        debug_assert!(bid < self.entries);
        // SAFETY: `bid < entries`, so the offset is inside the buffer mapping.
        unsafe { self.bufs.ptr.add(bid as usize * self.buf_size as usize) }
    }

    /// Publishes buffer `bid` at the tail of the ring.
    fn push(&self, bid: u16) {
        let mask = self.entries - 1;
        let tail = self.tail.get();
        // SAFETY: the ring mapping holds `entries` BufRingEntry records;
        // `tail & mask` is in range. The kernel reads entries only up to the
        // tail it has seen, and this one is beyond it until the store below.
        unsafe {
            let entry = &mut *self.ring.ptr.cast::<BufRingEntry>().add((tail & mask) as usize);
            entry.set_addr(self.buf_ptr(bid) as u64);
            entry.set_len(self.buf_size);
            entry.set_bid(bid);
        }
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // The shared tail is the `resv` field of entry 0 (offset 14), as in
        // liburing's io_uring_buf_ring_advance; a release store publishes the
        // entry written above.
        // SAFETY: offset 14 is in the mapping and 2-byte aligned; the kernel
        // only reads it.
        let shared_tail = unsafe { &*self.ring.ptr.add(14).cast::<AtomicU16>() };
        shared_tail.store(tail, Ordering::Release);
    }

    /// Called when the kernel reports it filled `bid`.
    pub(crate) fn take(self: &Rc<Self>, bid: u16, len: usize) -> RingBuf {
        assert!(bid < self.entries, "kernel reported buffer id {bid} out of range");
        self.out.set(self.out.get() + 1);
        RingBuf { ring: self.clone(), bid, len: len.min(self.buf_size as usize) }
    }

    /// Gives back a buffer the kernel handed out.
    pub(crate) fn give_back(&self, bid: u16) {
        self.out.set(self.out.get() - 1);
        self.push(bid);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    pub(crate) fn wait_for_buffer(&self, waker: &Waker) {
        self.waiters.borrow_mut().push(waker.clone());
    }

    pub(crate) fn available(&self) -> usize {
        usize::from(self.entries) - self.out.get()
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let leak = context::try_with(|cx| {
            if cx.executor.shared.id == self.runtime {
                let _ = cx.driver.ring.borrow().submitter().unregister_buf_ring(self.bgid);
            }
            cx.buf_rings.leak.get()
        });
        if leak == Some(true) {
            std::mem::forget(std::mem::replace(&mut self.ring, Mapping { ptr: std::ptr::null_mut(), len: 0 }));
            std::mem::forget(std::mem::replace(&mut self.bufs, Mapping { ptr: std::ptr::null_mut(), len: 0 }));
        }
        // Otherwise (our runtime is gone) the ring was unregistered with the
        // ring itself, after every operation completed: freeing is safe.
    }
}

/// A ring of equal-sized receive buffers registered with this thread's ring.
///
/// Memory: `entries * buf_size` bytes of address space, touched (and so
/// resident) only as the kernel fills buffers.
#[derive(Clone)]
pub struct BufRing {
    pub(crate) inner: Rc<Inner>,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.inner.bgid)
            .field("entries", &self.inner.entries)
            .field("buf_size", &self.inner.buf_size)
            .field("available", &self.available())
            .finish()
    }
}

impl BufRing {
    /// Registers a ring of `entries` buffers (a power of two, at most 32768)
    /// of `buf_size` bytes each.
    ///
    /// # Errors
    /// `InvalidInput` for bad sizes; otherwise the registration error with
    /// what to do (for example a too-low `RLIMIT_MEMLOCK` on older kernels).
    ///
    /// # Panics
    /// If the thread has no runtime.
    pub fn new(entries: u16, buf_size: u32) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 || buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a buffer ring needs a power-of-two entry count up to 32768 and a non-zero size (got {entries} x {buf_size})"),
            ));
        }
        let ring_bytes = (usize::from(entries) * std::mem::size_of::<BufRingEntry>()).next_multiple_of(4096);
        let ring = Mapping::new(ring_bytes)?;
        let bufs = Mapping::new(usize::from(entries) * buf_size as usize)?;
        context::with(|cx| {
            let bgid = cx.buf_rings.next_bgid.get();
            cx.buf_rings.next_bgid.set(bgid.wrapping_add(1));
            // SAFETY: `ring` is a page-aligned mapping of `entries` records
            // that lives in `Inner` until after the ring is unregistered (or
            // is leaked if operations might still use it).
            unsafe {
                cx.driver
                    .ring
                    .borrow()
                    .submitter()
                    .register_buf_ring_with_flags(ring.ptr as u64, entries, bgid, 0)
                    .map_err(|e| crate::error::explain_buf_ring(e, ring_bytes))?;
            }
            let inner = Rc::new(Inner {
                bgid,
                entries,
                buf_size,
                ring,
                bufs,
                tail: Cell::new(0),
                out: Cell::new(0),
                waiters: RefCell::new(Vec::new()),
                runtime: cx.executor.shared.id,
            });
            for bid in 0..entries {
                inner.push(bid);
            }
            Ok(BufRing { inner })
        })
    }

    /// Buffers in the ring, ready for the kernel to pick.
    pub fn available(&self) -> usize {
        self.inner.available()
    }

    /// Total buffers.
    pub fn entries(&self) -> usize {
        usize::from(self.inner.entries)
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.inner.buf_size as usize
    }
}

/// A filled buffer from a [`BufRing`]; dropping it returns the buffer.
pub struct RingBuf {
    ring: Rc<Inner>,
    bid: u16,
    len: usize,
}

impl Deref for RingBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the kernel filled `len` bytes of buffer `bid`, which is ours
        // until we give it back on drop.
        unsafe { std::slice::from_raw_parts(self.ring.buf_ptr(self.bid), self.len) }
    }
}

impl std::fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingBuf").field("bid", &self.bid).field("len", &self.len).finish()
    }
}

// SAFETY: the buffer is ring memory that stays mapped while this `RingBuf`
// (which holds the ring's `Rc`) lives, and it is given back to the kernel only
// when the `RingBuf` drops, which for an in-flight send happens after its
// completion (the op, or its orphan, owns the `RingBuf` until then).
unsafe impl crate::buf::IoBuf for RingBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ring.buf_ptr(self.bid)
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.ring.give_back(self.bid);
    }
}
