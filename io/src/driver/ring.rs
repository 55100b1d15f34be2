//! The ring: setup with feature probes and fallbacks, SQE push, enter, reap.
//!
//! Feature probes live here, each with the kernel version that brought it:
//! - `IORING_SETUP_COOP_TASKRUN` (5.19): completions are not run by IPIs.
//! - `IORING_SETUP_SINGLE_ISSUER` (6.0): only this thread submits.
//! - `IORING_SETUP_DEFER_TASKRUN` (6.1): completion work runs only when this
//!   thread enters with `GETEVENTS`, so [`Ring::enter`] always passes it.
//! - `IORING_FEAT_NODROP` (5.5): an overflowing CQ is buffered by the kernel,
//!   never dropped; the next `GETEVENTS` enter flushes it. Required.
//! - `IORING_FEAT_EXT_ARG` (5.11): a timeout on the wait. Required.
//! - `IORING_REGISTER_IOWQ_MAX_WORKERS` (5.15): the bound on this thread's
//!   kernel workers for blocking file work ([`RingConfig::file_workers`]).
//!
//! **Invariant:** [`Ring::push`] is the only place in the crate that hands an
//! SQE to the kernel.

use std::io;
use std::time::Duration;

use io_uring::{squeue, types, IoUring};

use super::slots::Cqe;
use crate::error;

/// Ring sizes and setup choices for one thread's ring.
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Submission queue entries (a power of two, at most 32768).
    pub sq_entries: u32,
    /// Completion queue entries (a power of two, at least `sq_entries`).
    /// Overflow is never lossy: the kernel buffers what does not fit.
    pub cq_entries: u32,
    /// Use `IORING_SETUP_DEFER_TASKRUN | SINGLE_ISSUER` when the kernel has
    /// them. On by default; off only for comparisons.
    pub defer_taskrun: bool,
    /// At most this many kernel worker threads (io-wq's *bounded* workers)
    /// run this thread's blocking file operations at once: opens that
    /// create, writes, fsync, write-back, rename, unlink, statx. io_uring
    /// cannot complete those without blocking, so it hands them to these
    /// workers; when all of them wait for the disk (an fsync waiting for a
    /// journal commit), the rest queue even if the CPU is idle. The kernel's
    /// default is min(SQ entries, 4 × online CPUs), 8 on a 2-CPU machine,
    /// whatever the load. Workers start on demand and exit after a few
    /// idle seconds, so a high bound costs nothing while idle. `None` keeps
    /// the kernel's default.
    pub file_workers: Option<u32>,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { sq_entries: 512, cq_entries: 4096, defer_taskrun: true, file_workers: None }
    }
}

/// Which optional ring features this kernel granted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFeatures {
    /// `IORING_SETUP_SINGLE_ISSUER` is active.
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN` is active.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN` is active.
    pub coop_taskrun: bool,
    /// The bound on kernel workers for blocking file work now in force
    /// (see [`RingConfig::file_workers`]); 0 if the kernel would not say.
    pub file_workers: u32,
}

pub(crate) struct Ring {
    uring: IoUring,
    features: RingFeatures,
    pub(crate) sqes_pushed: u64,
    pub(crate) enters: u64,
    pub(crate) cqes_reaped: u64,
}

/// One attempted combination of setup flags; tried in order until the kernel
/// accepts one.
struct Attempt {
    single_issuer: bool,
    defer_taskrun: bool,
    coop_taskrun: bool,
}

/// Sets the bound on this thread's io-wq workers for blocking file work
/// (`Some`), and returns the bound in force (the kernel's default for
/// `None`, or 0 if the kernel would not say: only a requested bound that
/// cannot be set is an error). The setting belongs to the calling thread's
/// io-wq, which serves every ring this thread submits to: rings are per
/// thread here.
fn set_file_workers(uring: &IoUring, bound: Option<u32>) -> io::Result<u32> {
    // [bounded, unbounded]; 0 leaves a value as it is, and the call writes
    // back the values that were in force before it.
    let mut max = [bound.unwrap_or(0), 0];
    let explain = |err: io::Error| {
        io::Error::new(
            err.kind(),
            format!(
                "cannot set the ring's file worker bound (IORING_REGISTER_IOWQ_MAX_WORKERS): {err}; \
                 it needs Linux >= 5.15, and a seccomp profile must allow io_uring_register"
            ),
        )
    };
    let set = uring.submitter().register_iowq_max_workers(&mut max);
    if bound.is_none() {
        return Ok(if set.is_ok() { max[0] } else { 0 });
    }
    set.map_err(explain)?;
    // Read back what is in force now (the kernel may clamp to RLIMIT_NPROC).
    let mut now = [0, 0];
    uring.submitter().register_iowq_max_workers(&mut now).map_err(explain)?;
    Ok(now[0])
}

impl Ring {
    pub(crate) fn new(config: &RingConfig) -> io::Result<Ring> {
        if !config.sq_entries.is_power_of_two() || !config.cq_entries.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ring sizes must be powers of two (got {} SQ, {} CQ entries)",
                    config.sq_entries, config.cq_entries
                ),
            ));
        }
        if config.cq_entries < config.sq_entries {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cq_entries must be at least sq_entries"));
        }
        let attempts = [
            Attempt { single_issuer: true, defer_taskrun: true, coop_taskrun: true },
            Attempt { single_issuer: true, defer_taskrun: false, coop_taskrun: true },
            Attempt { single_issuer: false, defer_taskrun: false, coop_taskrun: true },
            Attempt { single_issuer: false, defer_taskrun: false, coop_taskrun: false },
        ];
        let mut last = None;
        for attempt in attempts.iter().filter(|a| config.defer_taskrun || !a.defer_taskrun) {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(config.cq_entries).setup_submit_all();
            if attempt.single_issuer {
                builder.setup_single_issuer();
            }
            if attempt.defer_taskrun {
                builder.setup_defer_taskrun();
            }
            if attempt.coop_taskrun {
                builder.setup_coop_taskrun();
            }
            match builder.build(config.sq_entries) {
                Ok(uring) => {
                    let params = uring.params();
                    if !params.is_feature_nodrop() || !params.is_feature_ext_arg() {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            "this kernel's io_uring lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG: \
                             percore needs Linux >= 6.1",
                        ));
                    }
                    let file_workers = set_file_workers(&uring, config.file_workers)?;
                    let features = RingFeatures {
                        single_issuer: attempt.single_issuer,
                        defer_taskrun: attempt.defer_taskrun,
                        coop_taskrun: attempt.coop_taskrun,
                        file_workers,
                    };
                    return Ok(Ring { uring, features, sqes_pushed: 0, enters: 0, cqes_reaped: 0 });
                }
                // EINVAL: the kernel does not know one of the flags; try fewer.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => last = Some(err),
                Err(err) => return Err(error::explain_setup(err)),
            }
        }
        Err(error::explain_setup(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))))
    }

    pub(crate) fn features(&self) -> RingFeatures {
        self.features
    }

    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.uring.as_raw_fd()
    }

    pub(crate) fn submitter(&self) -> io_uring::Submitter<'_> {
        self.uring.submitter()
    }

    /// Queues one SQE, first flushing the SQ to the kernel if it is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until the completion for its
    /// `user_data` is reaped. Callers guarantee this by keeping the pointed-to
    /// memory in the slot table (or, for reserved `user_data`, in memory that
    /// lives as long as the ring).
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..64 {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                self.sqes_pushed += 1;
                return Ok(());
            }
            // The SQ is full: hand its contents to the kernel and retry.
            self.enter(0, None)?;
        }
        Err(io::Error::new(io::ErrorKind::WouldBlock, "io_uring submission queue stays full"))
    }

    /// Number of SQEs queued but not yet handed to the kernel.
    pub(crate) fn sq_pending(&mut self) -> usize {
        self.uring.submission().len()
    }

    /// True when the kernel holds overflowed completions that an enter with
    /// `GETEVENTS` will flush into the CQ.
    pub(crate) fn cq_overflowed(&mut self) -> bool {
        self.uring.submission().cq_overflow()
    }

    /// True when completions are ready to reap.
    pub(crate) fn cq_ready(&mut self) -> bool {
        !self.uring.completion().is_empty()
    }

    /// Submits queued SQEs and runs pending completion work; with
    /// `min_complete > 0` waits for that many completions or `timeout`.
    ///
    /// Always passes `GETEVENTS`: with `DEFER_TASKRUN` completion work runs
    /// only in such an enter. Interrupts, timeouts and `EBUSY` (the CQ is full
    /// and the caller must reap first) are not errors here.
    pub(crate) fn enter(&mut self, min_complete: u32, timeout: Option<Duration>) -> io::Result<()> {
        self.enters += 1;
        let result = match timeout {
            Some(timeout) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(min_complete as usize, &args)
            }
            None => {
                let to_submit = self.uring.submission().len() as u32;
                // SAFETY: no argument pointer is passed (`None`), and the
                // flags are a plain GETEVENTS; the SQEs being submitted were
                // pushed through `push`, whose callers keep their memory alive.
                unsafe {
                    self.uring.submitter().enter::<libc::sigset_t>(
                        to_submit,
                        min_complete,
                        io_uring::EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                }
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.raw_os_error() {
                Some(libc::EINTR | libc::ETIME | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(io::Error::new(err.kind(), format!("io_uring_enter failed: {err}"))),
            },
        }
    }

    /// Moves up to `max` completions into `out`.
    pub(crate) fn reap(&mut self, out: &mut Vec<(u64, Cqe)>, max: usize) -> usize {
        let mut cq = self.uring.completion();
        let mut n = 0;
        for entry in cq.by_ref().take(max) {
            out.push((entry.user_data(), Cqe { result: entry.result(), flags: entry.flags() }));
            n += 1;
        }
        drop(cq);
        self.cqes_reaped += n as u64;
        n
    }
}
