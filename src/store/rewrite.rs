//! An extended attribute of a stored object (or of a folder's directory)
//! rewritten in place: how the S3 API changes an object's tags without
//! writing it again.
//!
//! On the path's owner shard, under the path's commit lock (so no commit of
//! the path, and no other rewrite, runs in between): the object is opened,
//! the caller's `rewrite` makes the new value from what the file (its
//! descriptor and its validator) holds, the attribute is set, the file (or
//! directory) is fsynced, and every shard's cache drops the path, all
//! before the caller answers. Setting an attribute changes neither the
//! file's inode, size nor modification time, so its validator (the ETag
//! of `/files/`) stays what it was. The file is closed before the lock is
//! released: a replaced version is kept as a spare only when no descriptor
//! holds it (`spares`).
//!
//! A failed fsync raises the fence like any other flush; the attribute may
//! then hold the new value or the old, as after a crash.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::XattrFlags;

use super::{Outcome, Store};
use crate::files::{self, Found};

/// What holds the attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The object's file.
    File,
    /// The directory at the path (an S3 folder).
    Dir,
}

impl Store {
    /// Sets the attribute `name` of what `holder` says is at `path` to the
    /// value `rewrite` makes from its descriptor and its validator (empty
    /// for a directory), durably. `NotFound` if there is no such file or
    /// directory, or `rewrite` makes no value.
    pub(crate) async fn rewrite_attribute(
        &self,
        path: Vec<u8>,
        holder: Holder,
        name: &str,
        rewrite: impl FnOnce(BorrowedFd<'_>, &str) -> Option<Vec<u8>>,
    ) -> Outcome {
        let _lock = self.commits.lock(&path).await;
        if self.fenced() {
            return Outcome::Fenced;
        }
        // Whether the attribute was set: then caches must drop the path,
        // whatever the flush did.
        let mut set = false;
        let rewritten = async {
            match holder {
                Holder::File => {
                    let Found::File(file, stat) = files::open(&self.root, &path).await? else {
                        return Ok(Outcome::NotFound);
                    };
                    let stamp = files::etag(&stat);
                    let Some(value) = rewrite(file.as_fd(), &stamp) else { return Ok(Outcome::NotFound) };
                    rustix::fs::fsetxattr(&file, name, &value, XattrFlags::empty()).map_err(no_room)?;
                    set = true;
                    // An attribute is metadata, which fdatasync need not write.
                    let flushed = file.sync_all().await;
                    let _ = file.close().await;
                    flushed
                        .map_err(|e| self.durability.flush_failed("fsync of a file after setting its attribute", e))?;
                    Ok(Outcome::Replaced(stamp))
                }
                Holder::Dir => {
                    let dir = match self.root.open_dir(std::ffi::OsStr::from_bytes(&path)).await {
                        Ok(dir) => dir,
                        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                            return Ok(Outcome::NotFound)
                        }
                        Err(err) => return Err(err),
                    };
                    let Some(value) = rewrite(dir.as_fd(), "") else { return Ok(Outcome::NotFound) };
                    rustix::fs::fsetxattr(&dir, name, &value, XattrFlags::empty()).map_err(no_room)?;
                    set = true;
                    self.durability.flush_dir(&dir, "fsync of a directory after setting its attribute").await?;
                    Ok::<_, io::Error>(Outcome::Replaced(String::new()))
                }
            }
        };
        let outcome = rewritten.await.unwrap_or_else(|err| self.mark_failed(err));
        if set {
            self.invalidations.everywhere(&path).await;
        }
        outcome
    }
}

/// A failed `fsetxattr`, explained where the value did not fit: ext4 keeps
/// at most about 4 KiB of attributes with a file (ENOSPC, also what a full
/// disk gives), and Linux at most 64 KiB in one (E2BIG).
fn no_room(err: rustix::io::Errno) -> io::Error {
    let why = match err {
        rustix::io::Errno::NOSPC => {
            "the file system has no room for the attribute: it is full, or (ext4) the \
                                     attributes of one file are limited to a block, about 4 KiB"
        }
        rustix::io::Errno::TOOBIG => "the attribute is larger than the 64 KiB Linux keeps in one",
        _ => return err.into(),
    };
    io::Error::new(io::Error::from(err).kind(), why)
}
