//! Operations: futures over single-shot and multishot io_uring requests.
//!
//! An [`Op`] owns its resources (`T`, holding the buffers and any memory its
//! SQE points at) until its completion is polled. If the future is dropped
//! first, the resources move into the slot table as an orphan and an async
//! cancel is submitted; the slot frees them only after the kernel's final
//! completion, and releases anything the kernel handed over meanwhile (an fd
//! from accept or open, a provided buffer from a multishot recv).

pub(crate) mod fs;
pub(crate) mod net;
pub(crate) mod splice;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue;

use crate::context;
use crate::driver::slots::{Cqe, Key, Orphan, Poll1};
use crate::fault::{self, OpKind};

/// What an operation does with its completion.
pub(crate) trait Completable: Unpin + 'static {
    type Output;
    /// Turns the completion into the future's output, giving back buffers.
    fn complete(self, cqe: Cqe) -> Self::Output;
    /// Releases what the kernel handed over for a completion that nobody
    /// awaits any more (the future was dropped).
    fn release(&mut self, _cqe: Cqe) {}
}

struct Orphaned<T: Completable>(T);

impl<T: Completable> Orphan for Orphaned<T> {
    fn release(&mut self, cqe: Cqe) {
        self.0.release(cqe);
    }
}

/// A single-shot operation in flight.
pub(crate) struct Op<T: Completable> {
    key: Option<Key>,
    data: Option<T>,
    runtime: u64,
    _not_send: PhantomData<*const ()>,
}

impl<T: Completable> Op<T> {
    /// Submits the SQE that `build` makes from `data`.
    ///
    /// `build` gets `shorten = true` when fault injection asks for a short
    /// transfer; ops that move bytes then halve their length.
    ///
    /// # Safety
    /// Every pointer in the built SQE must point into heap memory owned by
    /// `data` (which this op keeps alive, moving it into the slot table if it
    /// is dropped early), or into memory that outlives the ring.
    pub(crate) unsafe fn submit(kind: OpKind, data: T, build: impl FnOnce(&mut T, bool) -> squeue::Entry) -> Op<T> {
        // SAFETY: forwarded from this function's contract.
        unsafe { Op::submit_with(kind, data, false, build) }
    }

    /// As [`Op::submit`]; with `eager`, the SQE goes to the kernel at once
    /// (used for O_DIRECT file I/O, which a device at queue depth serves
    /// better as a steady trickle than in bursts: see BENCHMARKS.md).
    ///
    /// # Safety
    /// As [`Op::submit`].
    pub(crate) unsafe fn submit_with(
        kind: OpKind,
        mut data: T,
        eager: bool,
        build: impl FnOnce(&mut T, bool) -> squeue::Entry,
    ) -> Op<T> {
        context::with(|cx| {
            let runtime = cx.executor.shared.id;
            // SAFETY: forwarded from this function's contract: the entry
            // points into `data`, which `Op` keeps alive.
            let key = unsafe { start(cx, kind, false, eager, |short| build(&mut data, short)) };
            Op { key: Some(key), data: Some(data), runtime, _not_send: PhantomData }
        })
    }
}

/// The one way an operation reaches the ring (single-shot or multishot),
/// and the one hook for fault injection: an injected errno completes the
/// operation locally without a submission; an injected short transfer is
/// passed to `build` (`true`), which halves its length.
///
/// # Safety
/// The entry `build` makes must point only at memory that stays valid
/// until the operation's last completion (owned by the op, or held by its
/// orphan, or outliving the ring).
unsafe fn start(
    cx: &context::Context,
    kind: OpKind,
    multishot: bool,
    eager: bool,
    build: impl FnOnce(bool) -> squeue::Entry,
) -> Key {
    match fault::take(kind) {
        Some(fault::Fault::Errno(errno)) => {
            let key = {
                let mut slots = cx.driver.slots.borrow_mut();
                if multishot {
                    slots.insert_multi()
                } else {
                    slots.insert_single()
                }
            };
            cx.driver.complete_locally(key, -errno);
            key
        }
        injected => {
            let entry = build(injected == Some(fault::Fault::Short));
            // SAFETY: forwarded from this function's contract.
            unsafe { cx.driver.submit(entry, multishot, eager) }
        }
    }
}

impl<T: Completable> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        let key = this.key.expect("Op polled after it completed");
        let polled = context::with(|ctx| ctx.driver.slots.borrow_mut().poll_single(key, cx.waker()));
        match polled {
            Poll1::Pending => Poll::Pending,
            Poll1::Ready(cqe) => {
                this.key = None;
                let data = this.data.take().expect("Op data present until completion");
                Poll::Ready(data.complete(cqe))
            }
        }
    }
}

impl<T: Completable> Drop for Op<T> {
    fn drop(&mut self) {
        let (Some(key), Some(data)) = (self.key.take(), self.data.take()) else {
            return;
        };
        hand_over(self.runtime, key, Box::new(Orphaned(data)));
    }
}

/// Gives an abandoned operation's resources to the slot table (or releases
/// them at once if the operation has already ended).
fn hand_over(runtime: u64, key: Key, orphan: Box<dyn Orphan>) {
    let mut orphan = Some(orphan);
    context::try_with(|cx| {
        if cx.executor.shared.id != runtime {
            return;
        }
        let mut owned = orphan.take().expect("orphan taken once");
        let (queued, in_flight) = cx.driver.slots.borrow_mut().abandon(key);
        for cqe in queued {
            owned.release(cqe);
        }
        if in_flight {
            cx.driver.slots.borrow_mut().restore_orphan(key, owned);
            cx.driver.cancel(key);
        }
    });
    if let Some(orphan) = orphan {
        // The runtime that ran this op is gone and may have leaked its slot
        // while the kernel still owned the memory: never free it.
        std::mem::forget(orphan);
    }
}

/// An operation that only returns its result (fsync, close, shutdown...).
pub(crate) struct NoData;

impl Completable for NoData {
    type Output = std::io::Result<u32>;
    fn complete(self, cqe: Cqe) -> std::io::Result<u32> {
        crate::error::cqe_result(cqe.result)
    }
}

/// A read or receive into an owned buffer.
pub(crate) struct Transfer<B> {
    pub(crate) buf: B,
}

impl<B: crate::buf::IoBufMut> Completable for Transfer<B> {
    type Output = (std::io::Result<usize>, B);
    fn complete(mut self, cqe: Cqe) -> (std::io::Result<usize>, B) {
        let result = crate::error::cqe_result(cqe.result).map(|n| n as usize);
        if let Ok(n) = result {
            // SAFETY: the kernel wrote `n` bytes from the buffer's start.
            unsafe { self.buf.set_init(n) };
        }
        (result, self.buf)
    }
}

/// A write or send from an owned buffer.
pub(crate) struct Outgoing<B> {
    pub(crate) buf: B,
}

impl<B: crate::buf::IoBuf> Completable for Outgoing<B> {
    type Output = (std::io::Result<usize>, B);
    fn complete(self, cqe: Cqe) -> (std::io::Result<usize>, B) {
        (crate::error::cqe_result(cqe.result).map(|n| n as usize), self.buf)
    }
}

/// Halves a transfer length for an injected short transfer.
pub(crate) fn maybe_short(len: usize, shorten: bool) -> u32 {
    let len = len.min(u32::MAX as usize) as u32;
    if shorten && len > 1 {
        len / 2
    } else {
        len
    }
}

/// Repeats `step` on the rest of `buf` until `total` bytes have moved: the
/// loop behind `read_exact_at`, `write_all_at` and `send_all`. `step` gets
/// the remaining range and how many bytes are done; a step that moves nothing
/// ends the loop with `on_zero` (`UnexpectedEof` for reads, `WriteZero` for
/// writes). Interrupted steps are retried; the buffer comes back either way.
pub(crate) async fn transfer_all<B, F, Fut>(
    buf: B,
    total: usize,
    on_zero: std::io::ErrorKind,
    mut step: F,
) -> (std::io::Result<()>, B)
where
    B: crate::buf::IoBuf,
    F: FnMut(crate::buf::Slice<B>, usize) -> Fut,
    Fut: Future<Output = (std::io::Result<usize>, crate::buf::Slice<B>)>,
{
    let mut done = 0;
    let mut rest = buf.slice(0..total);
    while done < total {
        let (result, slice) = step(rest, done).await;
        let inner = slice.into_inner();
        match result {
            Ok(0) => return (Err(on_zero.into()), inner),
            Ok(n) => done += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return (Err(err), inner),
        }
        rest = inner.slice(done..total);
    }
    (Ok(()), rest.into_inner())
}

/// A multishot request (accept, recv) that is re-armed when the kernel ends
/// it. The owner turns each completion into an item.
///
/// Dropped while armed, it gives the request up: completions already
/// queued and those still to come go to its orphan `O` (which closes an
/// accepted fd, gives a provided buffer back), and the request is
/// cancelled. No owner can forget to.
pub(crate) struct Multishot<O: Orphan + 'static> {
    key: Option<Key>,
    runtime: u64,
    kind: OpKind,
    /// Takes the request's completions once its owner is gone.
    orphan: Option<O>,
    _not_send: PhantomData<*const ()>,
}

impl<O: Orphan + 'static> Multishot<O> {
    pub(crate) fn new(kind: OpKind, orphan: O) -> Multishot<O> {
        let runtime = context::with(|cx| cx.executor.shared.id);
        Multishot { key: None, runtime, kind, orphan: Some(orphan), _not_send: PhantomData }
    }

    pub(crate) fn is_armed(&self) -> bool {
        self.key.is_some()
    }

    /// Submits the multishot SQE.
    ///
    /// # Safety
    /// The entry may point only at memory that outlives the request (such as
    /// a registered buffer ring held by the orphan).
    pub(crate) unsafe fn arm(&mut self, entry: squeue::Entry) {
        debug_assert!(self.key.is_none());
        // SAFETY: forwarded from this function's contract. (A multishot
        // request moves no bytes of its own: a short-transfer fault does
        // not apply to it.)
        let key = context::with(|cx| unsafe { start(cx, self.kind, true, false, |_| entry) });
        self.key = Some(key);
    }

    /// Asks the kernel to end the request (an async cancel). Completions
    /// it made before the cancel took still come through
    /// [`Multishot::poll_next`], then its last one (`ECANCELED`, or
    /// whatever ended it first), then `Ready(None)`. Nothing if not armed.
    pub(crate) fn cancel(&self) {
        if let Some(key) = self.key {
            context::with(|cx| cx.driver.cancel(key));
        }
    }

    /// The next completion; `Ready(None)` when the request has ended and
    /// every completion was taken (it must be re-armed to go on).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Cqe>> {
        let Some(key) = self.key else {
            return Poll::Ready(None);
        };
        let polled = context::with(|ctx| ctx.driver.slots.borrow_mut().poll_multi(key, cx.waker()));
        match polled {
            Ok(Some(cqe)) => Poll::Ready(Some(cqe)),
            Ok(None) => Poll::Pending,
            Err(()) => {
                self.key = None;
                Poll::Ready(None)
            }
        }
    }
}

impl<O: Orphan + 'static> Drop for Multishot<O> {
    fn drop(&mut self) {
        if let (Some(key), Some(orphan)) = (self.key.take(), self.orphan.take()) {
            hand_over(self.runtime, key, Box::new(orphan));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::time::Duration;

    use io_uring::{opcode, types};

    use super::*;

    /// Records what reaches it and closes accepted descriptors.
    struct Recorder(Rc<RefCell<Vec<i32>>>);

    impl Orphan for Recorder {
        fn release(&mut self, cqe: Cqe) {
            if cqe.result >= 0 {
                crate::fd::close_now(cqe.result);
            }
            self.0.borrow_mut().push(cqe.result);
        }
    }

    /// A multishot dropped while armed, by an owner that did nothing more,
    /// hands its request to its orphan: the connection it had accepted is
    /// given to the orphan (and closed), the request is cancelled and its
    /// slot freed. (Before, owners had to call `abandon`, and one that did
    /// not leaked the slot and the accepted descriptors.)
    #[test]
    fn a_dropped_multishot_gives_its_completions_to_its_orphan() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let listener = crate::TcpListener::bind(([127, 0, 0, 1], 0).into()).unwrap();
            let seen = Rc::new(RefCell::new(Vec::new()));
            let mut op = Multishot::new(OpKind::Accept, Recorder(seen.clone()));
            let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).build();
            // SAFETY: a multishot accept points at no memory.
            unsafe { op.arm(entry) };
            crate::time::sleep(Duration::from_millis(20)).await;
            let client = std::net::TcpStream::connect(listener.local_addr()).unwrap();
            crate::time::sleep(Duration::from_millis(20)).await;
            drop(op);
            for _ in 0..100 {
                if context::with(|cx| cx.driver.in_flight()) == 0 {
                    break;
                }
                crate::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(context::with(|cx| cx.driver.in_flight()), 0, "the request's slot is freed");
            assert!(seen.borrow().iter().any(|&r| r >= 0), "the accepted connection reached the orphan: {seen:?}");
            // The orphan closed the server's end: the client reads its end.
            let mut byte = [0u8; 1];
            client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            assert_eq!(std::io::Read::read(&mut &client, &mut byte).unwrap(), 0);
        });
    }
}
