//! What makes an upload durable, and the fence that a failed flush raises.
//!
//! A body is flushed before its commit: fdatasynced, or on ext4/XFS with an
//! internal journal only written back, which the commit's directory fsync
//! then makes durable ([`write_back_device`]). A failed flush (fsync,
//! fdatasync or write-back, any error) raises the [`Fence`] for the rest of
//! the process's life: after one, the kernel may have dropped dirty pages
//! and cleared the error, so a retry could report a success that is not one.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::BodyFlush;
use crate::files;

/// Set for good by the first failed flush, on every shard at once: one
/// `Arc` made at start and handed to every shard's store. Like the drain
/// flag, the one piece of state shared outside the mesh, because a fence
/// must hold everywhere at once, not after a message arrives.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fence(Arc<AtomicBool>);

impl Fence {
    /// Whether writes are fenced after a failed flush.
    pub(crate) fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Records a failed flush of `what`: raises the fence (logged once) and
    /// passes the error on.
    pub(crate) fn flush_failed(&self, what: &str, err: io::Error) -> io::Error {
        if !self.0.swap(true, Ordering::SeqCst) {
            tracing::error!("{what} failed: {err}; writes are now refused (read-only) until percore is restarted");
        }
        err
    }
}

/// What a fenced write is told.
pub(crate) const FENCED_MESSAGE: &str =
    "writes are disabled: a flush to disk failed earlier, so acknowledgements could not be trusted; check the disk and the log, then restart percore\n";

/// Test builds only (the `fault-injection` feature): flushes the
/// power-loss test turns off to show that it catches their absence. Read
/// once, from the environment, when a shard's store is made; always off
/// in other builds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Knobs {
    /// `PERCORE_UNSAFE_SKIP_DIR_FSYNC`: no directory fsync after a rename.
    pub(crate) skip_dir_fsync: bool,
    /// `PERCORE_UNSAFE_SKIP_BODY_FLUSH`: an upload is committed without its
    /// body being flushed or written back.
    pub(crate) skip_body_flush: bool,
}

impl Knobs {
    pub(crate) fn from_env() -> Knobs {
        let set = |name: &str| cfg!(feature = "fault-injection") && std::env::var_os(name).is_some();
        Knobs {
            skip_dir_fsync: set("PERCORE_UNSAFE_SKIP_DIR_FSYNC"),
            skip_body_flush: set("PERCORE_UNSAFE_SKIP_BODY_FLUSH"),
        }
    }
}

/// Decides at start-up how uploads under `data_dir` are flushed: `Some`
/// (the data directory's device) where a body written back before its
/// rename is durable once the directory fsync after the rename returns,
/// and a description for the log. That holds on file systems whose journal
/// commits in order and flushes the device cache before a commit record:
/// the write-back put the file's allocation and size into the journal
/// ahead of the rename, and the commit that carries the rename carries them
/// (XFS always; ext4 with a journal: ext2, or ext4 made without one, is
/// refused). Checked against power loss on both (`tests/powerloss.rs`).
/// Blocking; called once before the shards start.
pub(crate) fn write_back_device(data_dir: &Path, mode: BodyFlush) -> (Option<u64>, String) {
    use std::os::unix::fs::MetadataExt;
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    if mode == BodyFlush::Fdatasync {
        return (None, "fdatasync (--body-flush fdatasync)".into());
    }
    let Ok(dev) = std::fs::metadata(data_dir).map(|m| m.dev()) else {
        return (None, "fdatasync (the data directory's device is unknown)".into());
    };
    #[allow(clippy::unnecessary_cast, reason = "f_type's type differs by architecture")]
    let Ok(kind) = rustix::fs::statfs(data_dir).map(|st| st.f_type as i64) else {
        return (None, "fdatasync (statfs of the data directory failed)".into());
    };
    // The block device's name, as jbd2 names a journal after it.
    let name = std::fs::read_link(format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev)))
        .ok()
        .and_then(|link| link.file_name().map(|n| n.to_string_lossy().into_owned()));
    match (kind, name) {
        (XFS, _) => (Some(dev), "one journal commit per PUT (XFS)".into()),
        (EXT4, Some(name)) if Path::new(&format!("/proc/fs/jbd2/{name}-8")).exists() => {
            (Some(dev), format!("one journal commit per PUT (ext4, journal on {name})"))
        }
        (EXT4, _) => (None, "fdatasync (ext2/3/4 without an internal journal)".into()),
        _ => (None, "fdatasync (not ext4 or XFS)".into()),
    }
}

/// How one shard's uploads are flushed: the device written back rather
/// than fdatasynced ([`write_back_device`]), the fence, the test knobs.
#[derive(Clone, Debug)]
pub(crate) struct Durability {
    pub(crate) write_back_dev: Option<u64>,
    pub(crate) fence: Fence,
    pub(crate) knobs: Knobs,
    /// Disk faults seen (for `/health` and `/metrics`).
    pub(crate) faults: crate::health::DiskFaults,
}

impl Durability {
    /// Makes an uploaded body ready for its commit: written back if it lives
    /// on `write_back_dev` (the commit's directory fsync then makes it
    /// durable; a directory under the data directory may be another mount),
    /// else fdatasynced. A failed flush raises the fence like any other.
    /// Returns the new version's ETag, from the same `fstat` that gives the
    /// device (all writes are done; a flush changes neither inode, size nor
    /// mtime, and neither does the commit's rename). `fstat` and `futimens`
    /// are plain calls: an open file's inode is in memory.
    ///
    /// `reused` is the old modification time of a spare the body was
    /// written into. The ETag is inode, size and mtime, and the inode is the
    /// old version's: where timestamps are coarse (before Linux 6.13's
    /// fine-grained ones), a rewrite within the same clock tick would get
    /// the old version's mtime, and so its ETag if the size matches. Then
    /// the mtime is set one nanosecond past the old one (every earlier
    /// version of the inode is older still).
    pub(crate) async fn flush_body(
        &self,
        file: &percore_io::File,
        reused: Option<(i64, i64)>,
        attribute: Option<Attribute<'_>>,
    ) -> io::Result<String> {
        let mut st = rustix::fs::fstat(file)?;
        if let Some(old) = reused.filter(|&old| (st.st_mtime, st.st_mtime_nsec as i64) <= old) {
            let later = if old.1 >= 999_999_999 { (old.0 + 1, 0) } else { (old.0, old.1 + 1) };
            let omit = rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT };
            let times = rustix::fs::Timestamps {
                last_access: omit,
                last_modification: rustix::fs::Timespec { tv_sec: later.0, tv_nsec: later.1 },
            };
            rustix::fs::futimens(file, &times)?;
            st = rustix::fs::fstat(file)?;
        }
        let etag = files::etag_of(st.st_ino, st.st_size as u64, (st.st_mtime, st.st_mtime_nsec as u32));
        if let Some(attribute) = &attribute {
            // Metadata, not data: the journal commit of the directory fsync
            // (write-back) or a full fsync (below) makes it durable.
            rustix::fs::fsetxattr(file, attribute.name, &(attribute.value)(&etag), rustix::fs::XattrFlags::empty())?;
        }
        if self.knobs.skip_body_flush {
            // Test builds only: no flush at all.
        } else if Some(st.st_dev) == self.write_back_dev {
            file.write_back().await.map_err(|e| self.flush_failed("write-back of an uploaded file", e))?;
        } else if attribute.is_some() {
            // fdatasync need not write an extended attribute.
            file.sync_all().await.map_err(|e| self.flush_failed("fsync of an uploaded file", e))?;
        } else {
            file.sync_data().await.map_err(|e| self.flush_failed("fdatasync of an uploaded file", e))?;
        }
        Ok(etag)
    }

    /// Flushes `dir` after a rename in it (unless a test knob says not to);
    /// a failure raises the fence.
    pub(crate) async fn flush_dir(&self, dir: &percore_io::Dir, what: &str) -> io::Result<()> {
        if self.knobs.skip_dir_fsync {
            return Ok(());
        }
        dir.sync_all().await.map_err(|e| self.flush_failed(what, e))
    }

    /// A failed flush: raises the fence and counts the disk fault.
    pub(crate) fn flush_failed(&self, what: &str, err: io::Error) -> io::Error {
        let err = self.faults.saw(crate::health::Kind::Flush, err);
        self.fence.flush_failed(what, err)
    }
}

/// An extended attribute set on an uploaded file before its flush: its
/// value made from the version's ETag (`value(etag)`), so that it can name
/// the version it describes.
pub(crate) struct Attribute<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a dyn Fn(&str) -> Vec<u8>,
}

/// Removes temporary files left by an earlier run (a crash mid-upload).
/// Blocking; called once before the shards start. Symlinks are not followed.
pub(crate) fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            removed += remove_stale_temps(&entry.path())?;
        } else if entry.file_name().as_bytes().starts_with(files::TEMP_PREFIX) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/.percore-1-0-1"), b"x").unwrap();
        std::fs::write(dir.path().join(".percore-2-0-1"), b"x").unwrap();
        std::fs::write(dir.path().join("a/keep"), b"x").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        assert!(dir.path().join("a/keep").exists());
        assert!(!dir.path().join(".percore-2-0-1").exists());
    }

    #[test]
    fn a_fence_once_raised_stays_raised_on_every_clone() {
        let fence = Fence::default();
        let other = fence.clone();
        assert!(!other.is_raised());
        let _ = fence.flush_failed("a test flush", io::Error::other("disk gone"));
        assert!(other.is_raised() && fence.is_raised());
    }
}
