//! `Notify`: a wake-up signal that any thread sends and one task awaits.
//!
//! It holds at most one permit: notifications that arrive while the permit is
//! already set coalesce, so a burst of senders costs the receiver one wake-up
//! (and at most one doorbell, only if its runtime is parked).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// A coalescing, cross-thread wake-up signal for one waiting task.
///
/// ```
/// use std::sync::Arc;
/// let rt = percore_io::Runtime::new().unwrap();
/// rt.block_on(async {
///     let notify = Arc::new(percore_io::Notify::new());
///     let sender = notify.clone();
///     std::thread::spawn(move || {
///         sender.notify();
///     });
///     notify.notified().await;
/// });
/// ```
#[derive(Debug, Default)]
pub struct Notify {
    permit: AtomicBool,
    waker: AtomicWaker,
}

impl Notify {
    /// A signal with no permit.
    pub fn new() -> Notify {
        Notify::default()
    }

    /// Sets the permit and wakes the waiting task, if any. From any thread.
    ///
    /// Returns true when this call woke a task (false when the permit was
    /// already set, so the notification coalesced, or nobody waited yet).
    pub fn notify(&self) -> bool {
        if self.permit.swap(true, Ordering::AcqRel) {
            return false;
        }
        match self.waker.take() {
            Some(waker) => {
                waker.wake();
                true
            }
            None => false,
        }
    }

    /// Waits for the permit and consumes it.
    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self }
    }
}

/// Future returned by [`Notify::notified`].
#[derive(Debug)]
pub struct Notified<'a> {
    notify: &'a Notify,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.permit.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.notify.waker.register(cx.waker());
        // Re-check after registering: a notify between the swap above and the
        // registration found no waker to wake, but it did set the permit.
        if self.notify.permit.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}
