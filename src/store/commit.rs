//! Commits on a path's owner shard: the per-path lock, PUTs committed in
//! batches that share one directory flush, and DELETE.
//!
//! Writers to one path queue on its owner shard. Whoever takes the path's
//! lock commits every upload queued for that path at that moment, in the
//! order they arrived: each one's preconditions are checked against the
//! version the one before it left, its temporary file is swapped into place
//! (`RENAME_EXCHANGE`, or a no-replace rename for a new path), then one
//! directory fsync makes all of them durable, and only then is any of them
//! answered. The last one is what the path holds; every acknowledged one
//! was, in its turn, the durable current version (the intermediate ones
//! were replaced in the same journal commit that made them durable). Uploads
//! that arrive while a batch commits form the next batch: 64 writers to one
//! key share a flush instead of waiting for 64 in a row.
//!
//! If the flush fails, every swap of the batch is undone in reverse order
//! and every upload of it is told it failed (writes are fenced from then
//! on: `durability::Fence`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::locks::{Locks, PathLock};
use super::spares::{self, dir_key};
use super::{current_etag, Conditions, Outcome, Store};

/// A shard's commits as the owner of paths: their locks, the uploads
/// queued per path, and what has been committed.
#[derive(Default)]
pub(super) struct Commits {
    locks: Locks,
    /// Uploads waiting to be committed, by path, in arrival order.
    queued: RefCell<HashMap<Vec<u8>, Vec<Rc<Queued>>>>,
    /// Uploads committed and the batches (directory flushes) they took.
    counts: Cell<(u64, u64)>,
}

impl Commits {
    /// (uploads committed, batches they were committed in).
    pub(super) fn counts(&self) -> (u64, u64) {
        self.counts.get()
    }

    /// Waits for `path`'s lock, which every change to the path holds
    /// (commits here, a directory's mark in `marks`).
    pub(super) async fn lock(&self, path: &[u8]) -> PathLock<'_> {
        self.locks.lock(path).await
    }
}

/// One upload waiting for its commit.
struct Queued {
    temp: Vec<u8>,
    conditions: Conditions,
    etag: String,
    /// Set by whoever committed it.
    outcome: RefCell<Option<Outcome>>,
    waker: RefCell<Option<Waker>>,
}

impl Queued {
    fn finish(&self, outcome: Outcome) {
        *self.outcome.borrow_mut() = Some(outcome);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl Store {
    /// On the owner shard: puts `temp` in `path`'s place if the conditions hold,
    /// in a batch with the other uploads to `path` waiting at the time (see the
    /// module comment).
    ///
    /// `etag` is the uploaded file's, taken from its open descriptor when it
    /// was flushed (`Durability::flush_body`; a rename changes neither its inode,
    /// size nor mtime), which spares the commit a statx under the path's lock.
    pub(crate) async fn commit_put(
        &self,
        path: Vec<u8>,
        temp: Vec<u8>,
        conditions: Conditions,
        etag: String,
    ) -> Outcome {
        let commits = &self.commits;
        let me = Rc::new(Queued { temp, conditions, etag, outcome: RefCell::new(None), waker: RefCell::new(None) });
        commits.queued.borrow_mut().entry(path.clone()).or_default().push(me.clone());
        // Either another upload's commit takes this one along, or this one
        // takes the lock and commits whatever is queued.
        let lock = std::future::poll_fn(|cx| {
            if me.outcome.borrow().is_some() {
                return Poll::Ready(None);
            }
            match commits.locks.try_lock(&path, cx.waker()) {
                Some(lock) => Poll::Ready(Some(lock)),
                None => {
                    *me.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        if let Some(_lock) = lock {
            let batch = commits.queued.borrow_mut().remove(&path).unwrap_or_default();
            self.commit_batch(&path, &batch).await;
        }
        let outcome = me.outcome.borrow_mut().take();
        outcome.unwrap_or_else(|| {
            // Unreachable: the batch that held this upload set every outcome.
            Outcome::Failed(io::ErrorKind::Other, "the upload's commit was lost".into())
        })
    }

    /// Commits `batch` (uploads to `path`, in arrival order) under its lock and
    /// finishes each one.
    async fn commit_batch(&self, path: &[u8], batch: &[Rc<Queued>]) {
        let found = match self.parent_dir(path, false).await {
            Ok((dir, leaf)) => match current_etag(&dir, &leaf).await {
                Ok(current) => Ok((dir, leaf, current)),
                Err(err) => Err((Some(dir), err)),
            },
            Err(err) => Err((None, err)),
        };
        let (dir, leaf, mut current) = match found {
            Ok(found) => found,
            Err((dir, err)) => {
                let outcome = self.failed(err);
                for upload in batch {
                    if let Some(dir) = &dir {
                        let _ = dir.unlink(OsStr::from_bytes(&upload.temp)).await;
                    }
                    upload.finish(outcome.clone());
                }
                return;
            }
        };
        // Swapped in order; each entry: the upload, and whether a version was
        // there before it (the old version now waits under its temporary name).
        let mut swapped: Vec<(&Rc<Queued>, bool)> = Vec::new();
        let mut refused: Vec<(&Rc<Queued>, Outcome)> = Vec::new();
        let target = OsStr::from_bytes(&leaf);
        for upload in batch {
            if self.fenced() {
                refused.push((upload, Outcome::Fenced));
                continue;
            }
            if !upload.conditions.allow(current.as_deref()) {
                refused.push((upload, Outcome::PreconditionFailed));
                continue;
            }
            let new = OsStr::from_bytes(&upload.temp);
            let renamed = match current {
                // Swapped rather than replaced: the old version waits under the
                // temporary name until the directory is flushed, so that a
                // failed flush can put it back.
                Some(_) => dir.rename_exchange(new, &dir, target).await,
                None => dir.rename_noreplace(new, &dir, target).await,
            };
            match renamed {
                Ok(()) => {
                    swapped.push((upload, current.is_some()));
                    current = Some(upload.etag.clone());
                }
                Err(err) => refused.push((upload, self.failed(err))),
            }
        }
        if !swapped.is_empty() {
            let flushed = self.durability.flush_dir(&dir, "fsync of a directory after a rename").await;
            if let Err(err) = flushed {
                // The clients are told the writes failed: undo what is visible,
                // newest first. (Whether the undo reaches the disk is as unknown
                // as the renames; writes are fenced from now on.)
                for (upload, had_before) in swapped.iter().rev() {
                    let new = OsStr::from_bytes(&upload.temp);
                    let _ = match had_before {
                        true => dir.rename_exchange(new, &dir, target).await,
                        false => dir.rename_noreplace(target, &dir, new).await,
                    };
                }
                // A read in between may have cached an undone version.
                self.invalidations.everywhere(path).await;
                let outcome = self.failed(err);
                refused.extend(swapped.drain(..).map(|(upload, _)| (upload, outcome.clone())));
            } else {
                self.invalidations.everywhere(path).await;
            }
        }
        let (commits, batches) = self.commits.counts.get();
        self.commits.counts.set((commits + swapped.len() as u64, batches + u64::from(!swapped.is_empty())));
        for (upload, outcome) in refused {
            let _ = dir.unlink(OsStr::from_bytes(&upload.temp)).await;
            upload.finish(outcome);
        }
        // Answered before the old versions are cleared away (the lock is held
        // until they are, and the upload that committed the batch answers
        // after): nothing of the cleanup is needed for durability.
        for (upload, had_before) in &swapped {
            let etag = upload.etag.clone();
            upload.finish(if *had_before { Outcome::Replaced(etag) } else { Outcome::Created(etag) });
        }
        // The replaced versions, now under the temporary names: kept for
        // reuse while the pool has room, else removed. (A crash before these
        // unlinks leaves stale temporary files, removed at start.)
        for (upload, _) in swapped.iter().filter(|(_, had_before)| *had_before) {
            if !spares::keep(&self.spares, &self.root, &dir, dir_key(path), &upload.temp).await {
                let _ = dir.unlink(OsStr::from_bytes(&upload.temp)).await;
            }
        }
    }

    /// On the owner shard: removes `path` if it exists and the conditions hold.
    pub(crate) async fn commit_delete(&self, path: Vec<u8>, conditions: Conditions) -> Outcome {
        let _lock = self.commits.locks.lock(&path).await;
        let (dir, leaf) = match self.parent_dir(&path, false).await {
            Ok(found) => found,
            Err(err)
                if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP)) =>
            {
                return Outcome::NotFound
            }
            Err(err) => return self.failed(err),
        };
        async {
            if self.fenced() {
                return Ok(Outcome::Fenced);
            }
            let Some(current) = current_etag(&dir, &leaf).await? else { return Ok(Outcome::NotFound) };
            if !conditions.allow(Some(&current)) {
                return Ok(Outcome::PreconditionFailed);
            }
            // Moved aside rather than unlinked, so that a failed flush can put it
            // back; removed once the directory is flushed (a crash in between
            // leaves a stale temporary file, removed at start).
            let (aside, target) = (self.temp_name(), OsStr::from_bytes(&leaf));
            dir.rename_noreplace(target, &dir, OsStr::from_bytes(&aside)).await?;
            // (Never skipped: the test knob is for the rename of an upload.)
            let flushed = dir.sync_all().await;
            if let Err(err) =
                flushed.map_err(|e| self.durability.flush_failed("fsync of a directory after a delete", e))
            {
                let _ = dir.rename_noreplace(OsStr::from_bytes(&aside), &dir, target).await;
                self.invalidations.everywhere(&path).await;
                return Err(err);
            }
            let _ = dir.unlink(OsStr::from_bytes(&aside)).await;
            self.invalidations.everywhere(&path).await;
            Ok::<_, io::Error>(Outcome::Deleted)
        }
        .await
        .unwrap_or_else(|err| self.failed(err))
    }
}
