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
//! on: `super::flush_failed`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::{
    current_etag, dir_fsync_skipped, dir_key, failed, flush_failed, keep_spare, parent_dir, shard, temp_name,
    writes_fenced, Conditions, Outcome,
};

thread_local! {
    /// Paths being committed on this shard, with the tasks waiting for them.
    static LOCKS: RefCell<HashMap<Vec<u8>, Vec<Waker>>> = RefCell::new(HashMap::new());
    /// Uploads waiting to be committed, by path, in arrival order.
    static QUEUED: RefCell<HashMap<Vec<u8>, Vec<Rc<Queued>>>> = RefCell::new(HashMap::new());
    /// Uploads committed and the batches (directory flushes) they took.
    static COUNTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// (uploads committed, batches they were committed in) on this shard.
pub(crate) fn commit_counts() -> (u64, u64) {
    COUNTS.with(Cell::get)
}

/// A shard-local lock on one path, held across the awaits of a commit.
struct PathLock(Vec<u8>);

/// Takes `path`'s lock if it is free; otherwise registers `waker` to be
/// woken when it is released.
fn try_lock(path: &[u8], waker: &Waker) -> Option<PathLock> {
    LOCKS.with(|locks| {
        let mut locks = locks.borrow_mut();
        match locks.get_mut(path) {
            Some(waiters) => {
                waiters.push(waker.clone());
                None
            }
            None => {
                locks.insert(path.to_vec(), Vec::new());
                Some(PathLock(path.to_vec()))
            }
        }
    })
}

async fn lock(path: &[u8]) -> PathLock {
    std::future::poll_fn(|cx| try_lock(path, cx.waker()).map_or(Poll::Pending, Poll::Ready)).await
}

impl Drop for PathLock {
    fn drop(&mut self) {
        let waiters = LOCKS.with(|locks| locks.borrow_mut().remove(&self.0)).unwrap_or_default();
        // Everyone retries; one wins, the others queue again.
        for waker in waiters {
            waker.wake();
        }
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

/// On the owner shard: puts `temp` in `path`'s place if the conditions hold,
/// in a batch with the other uploads to `path` waiting at the time (see the
/// module comment).
///
/// `etag` is the uploaded file's, taken from its open descriptor when it
/// was flushed (`super::flush_body`; a rename changes neither its inode,
/// size nor mtime), which spares the commit a statx under the path's lock.
pub(crate) async fn commit_put(path: Vec<u8>, temp: Vec<u8>, conditions: Conditions, etag: String) -> Outcome {
    let me = Rc::new(Queued { temp, conditions, etag, outcome: RefCell::new(None), waker: RefCell::new(None) });
    QUEUED.with(|q| q.borrow_mut().entry(path.clone()).or_default().push(me.clone()));
    // Either another upload's commit takes this one along, or this one
    // takes the lock and commits whatever is queued.
    let lock = std::future::poll_fn(|cx| {
        if me.outcome.borrow().is_some() {
            return Poll::Ready(None);
        }
        match try_lock(&path, cx.waker()) {
            Some(lock) => Poll::Ready(Some(lock)),
            None => {
                *me.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await;
    if let Some(_lock) = lock {
        let batch = QUEUED.with(|q| q.borrow_mut().remove(&path)).unwrap_or_default();
        commit_batch(&path, &batch).await;
    }
    let outcome = me.outcome.borrow_mut().take();
    outcome.unwrap_or_else(|| {
        // Unreachable: the batch that held this upload set every outcome.
        Outcome::Failed(io::ErrorKind::Other, "the upload's commit was lost".into())
    })
}

/// Commits `batch` (uploads to `path`, in arrival order) under its lock and
/// finishes each one.
async fn commit_batch(path: &[u8], batch: &[Rc<Queued>]) {
    let shard = shard();
    let root = &shard.root;
    let found = match parent_dir(root, path, false).await {
        Ok((dir, leaf)) => match current_etag(&dir, &leaf).await {
            Ok(current) => Ok((dir, leaf, current)),
            Err(err) => Err((Some(dir), err)),
        },
        Err(err) => Err((None, err)),
    };
    let (dir, leaf, mut current) = match found {
        Ok(found) => found,
        Err((dir, err)) => {
            let outcome = failed(err);
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
        if writes_fenced() {
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
            Err(err) => refused.push((upload, failed(err))),
        }
    }
    if !swapped.is_empty() {
        let flushed = if dir_fsync_skipped() { Ok(()) } else { dir.sync_all().await };
        if let Err(err) = flushed {
            let err = flush_failed("fsync of a directory after a rename", err);
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
            invalidate_everywhere(path).await;
            let outcome = failed(err);
            refused.extend(swapped.drain(..).map(|(upload, _)| (upload, outcome.clone())));
        } else {
            invalidate_everywhere(path).await;
        }
    }
    COUNTS.with(|c| {
        let (commits, batches) = c.get();
        c.set((commits + swapped.len() as u64, batches + u64::from(!swapped.is_empty())));
    });
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
        if !keep_spare(root, &dir, dir_key(path), &upload.temp).await {
            let _ = dir.unlink(OsStr::from_bytes(&upload.temp)).await;
        }
    }
}

/// On the owner shard: removes `path` if it exists and the conditions hold.
pub(crate) async fn commit_delete(path: Vec<u8>, conditions: Conditions) -> Outcome {
    let _lock = lock(&path).await;
    let shard = shard();
    let (dir, leaf) = match parent_dir(&shard.root, &path, false).await {
        Ok(found) => found,
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP)) => {
            return Outcome::NotFound
        }
        Err(err) => return failed(err),
    };
    async {
        if writes_fenced() {
            return Ok(Outcome::Fenced);
        }
        let Some(current) = current_etag(&dir, &leaf).await? else { return Ok(Outcome::NotFound) };
        if !conditions.allow(Some(&current)) {
            return Ok(Outcome::PreconditionFailed);
        }
        // Moved aside rather than unlinked, so that a failed flush can put it
        // back; removed once the directory is flushed (a crash in between
        // leaves a stale temporary file, removed at start).
        let (aside, target) = (temp_name(), OsStr::from_bytes(&leaf));
        dir.rename_noreplace(target, &dir, OsStr::from_bytes(&aside)).await?;
        if let Err(err) = dir.sync_all().await {
            let err = flush_failed("fsync of a directory after a delete", err);
            let _ = dir.rename_noreplace(OsStr::from_bytes(&aside), &dir, target).await;
            invalidate_everywhere(&path).await;
            return Err(err);
        }
        let _ = dir.unlink(OsStr::from_bytes(&aside)).await;
        invalidate_everywhere(&path).await;
        Ok::<_, io::Error>(Outcome::Deleted)
    }
    .await
    .unwrap_or_else(failed)
}

/// Drops `path` from every shard's cache and waits until all have (so the
/// answer that follows is never contradicted by a cached read). Runs under
/// the path's lock; a shard that has stopped has no cache to worry about.
async fn invalidate_everywhere(path: &[u8]) {
    let path = path.to_vec();
    let _ = percore_cores::broadcast(move || crate::cache::invalidate(&path)).await;
}
