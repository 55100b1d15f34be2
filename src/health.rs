//! Disk faults seen by any shard, for `/health` and `/metrics`: an I/O error
//! that says the storage is failing (EIO, a read-only or corrupted file
//! system, a vanished device) turns `/health` to 503 for [`RECENT`] after
//! the last one, so an orchestrator can act; counts by kind go to
//! `percore_disk_errors_total`. One value for the daemon (made at start,
//! a clone in every shard and store): counters and a time, no lock.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long after the last disk fault `/health` reports it.
pub(crate) const RECENT: Duration = Duration::from_secs(60);

/// What was being done when a disk fault happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Open,
    Read,
    Write,
    Flush,
    Commit,
}

pub(crate) const KINDS: [Kind; 5] = [Kind::Open, Kind::Read, Kind::Write, Kind::Flush, Kind::Commit];

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Open => "open",
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Flush => "flush",
            Kind::Commit => "commit",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    counts: [AtomicU64; 5],
    /// Seconds since the epoch of the last fault (0: none yet).
    last: AtomicU64,
}

/// Disk faults, shared by every shard.
#[derive(Clone, Debug, Default)]
pub(crate) struct DiskFaults(Arc<Inner>);

/// Whether `err` says the storage itself is failing (not a full disk, a
/// missing file or a refused permission).
pub(crate) fn is_disk_fault(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EIO | libc::EROFS | libc::EUCLEAN | libc::ENODEV | libc::ENXIO))
}

impl DiskFaults {
    /// Counts `err` under `kind` if it is a disk fault; passes it on.
    pub(crate) fn saw(&self, kind: Kind, err: io::Error) -> io::Error {
        if is_disk_fault(&err) {
            self.0.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
            self.0.last.store(crate::clock::coarse_epoch_seconds(), Ordering::Relaxed);
        }
        err
    }

    /// Faults so far, by kind (in [`KINDS`] order).
    pub(crate) fn counts(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0.counts[i].load(Ordering::Relaxed))
    }

    /// Seconds since the last fault, if it was within [`RECENT`].
    pub(crate) fn recent(&self) -> Option<u64> {
        let last = self.0.last.load(Ordering::Relaxed);
        let age = crate::clock::coarse_epoch_seconds().saturating_sub(last);
        (last != 0 && age < RECENT.as_secs()).then_some(age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_storage_failures_count() {
        let faults = DiskFaults::default();
        assert_eq!(faults.recent(), None);
        let _ = faults.saw(Kind::Write, io::Error::from_raw_os_error(libc::ENOSPC));
        let _ = faults.saw(Kind::Open, io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(faults.recent(), None, "a full disk or a missing file is not a failing disk");
        let _ = faults.saw(Kind::Read, io::Error::from_raw_os_error(libc::EIO));
        let shared = faults.clone();
        assert!(shared.recent().is_some_and(|age| age <= 1), "{:?}", shared.recent());
        assert_eq!(shared.counts(), [0, 1, 0, 0, 0]);
    }
}
