//! Directories that carry an extended attribute of their own: how the S3
//! API stores a folder (an empty object whose key ends in `/`, as the S3
//! console, s3fs and Cyberduck make them) in a store whose keys are paths,
//! and a bucket's CORS rules.
//!
//! A mark is made as an upload's directories are (each new one fsynced
//! into its parent), then the attribute is set and the directory itself
//! fsynced, all before the caller answers. Unmarking removes the attribute
//! and fsyncs the directory; the directory stays (as directories left by
//! deletes do: an upload into it may be under way on another shard), and an
//! empty unmarked directory is no key. Both hold the path's commit lock, so
//! a mark and an unmark of one path happen in arrival order.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use super::{parent_dir, Outcome, Store};

/// Which state of the attribute a mark may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Set it whether or not it is there.
    Always,
    /// Only if the directory carries none (a write with `If-None-Match: *`).
    IfAbsent,
    /// Only if the directory carries one (a write with `If-Match`).
    IfPresent,
}

impl Store {
    /// Sets the attribute `name` of the directory `path` to `value`,
    /// durably. With `make`, the directory is made if missing, with the
    /// missing ones above it (the first `make` components of the path must
    /// be there); without, it must exist. `PreconditionFailed` if `mark` did
    /// not hold; `NotFound` if what must be there is not;
    /// `Failed(NotADirectory, ..)` if a file is in the way.
    pub(crate) async fn mark_dir(
        &self,
        path: Vec<u8>,
        make: Option<usize>,
        name: &str,
        value: Vec<u8>,
        mark: Mark,
    ) -> Outcome {
        let _lock = self.commits.lock(&path).await;
        if self.fenced() {
            return Outcome::Fenced;
        }
        let marked = async {
            let dir = match make {
                None => self.root.open_dir(OsStr::from_bytes(&path)).await?,
                Some(existing) => {
                    let (parent, leaf) = parent_dir(&self.root, &self.durability, &path, Some(existing)).await?;
                    let leaf = OsStr::from_bytes(&leaf);
                    match parent.mkdir(leaf, 0o755).await {
                        Ok(()) => self.durability.flush_dir(&parent, "fsync of a directory after a mkdir").await?,
                        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(err) => return Err(err),
                    }
                    parent.open_dir(leaf).await?
                }
            };
            let flags = match mark {
                Mark::Always => XattrFlags::empty(),
                Mark::IfAbsent => XattrFlags::CREATE,
                Mark::IfPresent => XattrFlags::REPLACE,
            };
            match rustix::fs::fsetxattr(&dir, name, &value, flags) {
                Ok(()) => {}
                Err(Errno::EXIST | Errno::NODATA) => return Ok(Outcome::PreconditionFailed),
                Err(err) => return Err(err.into()),
            }
            self.durability.flush_dir(&dir, "fsync of a directory after setting its mark").await?;
            Ok(Outcome::Created(String::new()))
        };
        marked.await.unwrap_or_else(|err| self.mark_failed(err))
    }

    /// Removes the attribute `name` from the directory `path`, durably.
    /// `NotFound` if there is no such directory or it carries no such
    /// attribute.
    pub(crate) async fn unmark_dir(&self, path: Vec<u8>, name: &str) -> Outcome {
        let _lock = self.commits.lock(&path).await;
        if self.fenced() {
            return Outcome::Fenced;
        }
        let unmarked = async {
            let dir = self.root.open_dir(OsStr::from_bytes(&path)).await?;
            match rustix::fs::fremovexattr(&dir, name) {
                Ok(()) => {}
                Err(Errno::NODATA) => return Ok(Outcome::NotFound),
                Err(err) => return Err(err.into()),
            }
            self.durability.flush_dir(&dir, "fsync of a directory after removing its mark").await?;
            Ok(Outcome::Deleted)
        };
        unmarked.await.unwrap_or_else(|err| self.mark_failed(err))
    }

    pub(super) fn mark_failed(&self, err: io::Error) -> Outcome {
        match err.raw_os_error() {
            Some(libc::ENOENT) => Outcome::NotFound,
            Some(libc::ENOTDIR) => Outcome::Failed(io::ErrorKind::NotADirectory, err.to_string()),
            _ => self.failed(err),
        }
    }
}
