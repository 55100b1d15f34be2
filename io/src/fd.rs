//! An owned file descriptor whose drop closes it through the ring.
//!
//! Closing through the ring costs no syscall of its own (it rides with the
//! next enter). Without a runtime on the thread it falls back to `close(2)`.

use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, types};

#[derive(Debug)]
pub(crate) struct Fd(RawFd);

impl Fd {
    /// Takes ownership of `fd`.
    pub(crate) fn from_raw(fd: RawFd) -> Fd {
        debug_assert!(fd >= 0);
        Fd(fd)
    }

    /// Gives up ownership without closing.
    pub(crate) fn into_raw(self) -> RawFd {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let fd = self.0;
        let close = opcode::Close::new(types::Fd(fd)).build();
        // SAFETY: a close points at no memory.
        let queued = crate::context::try_with(|cx| unsafe { cx.driver.submit_ignored(close) }.is_ok());
        if queued != Some(true) {
            close_now(fd);
        }
    }
}

/// Closes `fd` with `close(2)`, for fds the kernel handed to an operation
/// whose future is gone.
pub(crate) fn close_now(fd: RawFd) {
    // SAFETY: close(2) takes no pointers; the caller owns `fd`.
    unsafe { libc::close(fd) };
}
