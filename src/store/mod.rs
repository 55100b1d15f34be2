//! The file store's write side: `PUT` and `DELETE /files/<path>`.
//!
//! Durability protocol of a PUT: the shard that received the request streams
//! the body into a temporary file (`.percore-…`) in the target's directory,
//! flushes it (fdatasync, or on ext4/XFS a write-back that the directory
//! fsync below makes durable: [`write_back_device`]) and closes it; then
//! the path's owner shard
//! (`shard_for(path)`) commits: under a per-path lock it checks the
//! preconditions, swaps the temporary file with the target
//! (`RENAME_EXCHANGE`; a no-replace rename for a new path) and fsyncs the
//! directory, then unlinks the old version. Only then is 201/200 sent.
//! Directories created on the way are made durable too (their parent is
//! fsynced). A DELETE commits the same way: check, move the object to a
//! temporary name, fsync the directory, unlink it, 204. Until the directory
//! flush succeeds the old state can be put back, and is if it fails.
//!
//! Concurrent writers to one path are serialised by the owner's lock, so a
//! precondition is checked and acted on atomically. A temporary file is
//! removed if the upload fails or is refused, and stale ones are removed at
//! start; they are never served.
//!
//! A failed flush (fsync, fdatasync or write-back, any error) fences writes for the rest
//! of the process's life (`durability::Fence`).
//! The failing request gets its error status, every later PUT or DELETE
//! gets 503, reads go on, `/health` says `read-only` and the
//! `percore_writes_fenced` gauge is 1. An operator checks the disk and
//! restarts percore.
//!
//! Each shard has one [`Store`] value (its data-directory handle, path
//! locks, queued commits, spare files, durability mode and the shared
//! fence), passed to whoever uses it. Files by job: `upload` (the
//! receiving shard's side), `commit` (the owner's), `locks`, `spares`,
//! `durability`, `marks` (directories that carry an attribute: the S3
//! API's folders), `rewrite` (an attribute of a stored object changed in
//! place: the S3 API's tags).

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use percore_io::{Dir, OpenOptions};

use crate::files::{self, TEMP_PREFIX};

mod commit;
mod durability;
mod invalidate;
mod locks;
mod marks;
mod rewrite;
mod spares;
mod upload;

pub(crate) use marks::Mark;
pub(crate) use rewrite::Holder;
pub(crate) use upload::Upload;

pub(crate) use durability::{
    remove_stale_temps, write_back_device, Attribute, Durability, Fence, Knobs, FENCED_MESSAGE,
};
pub(crate) use spares::spare_limit;

/// One shard's store (see the module comment).
pub(crate) struct Store {
    /// The data directory, opened once: every path is resolved beneath it.
    root: Dir,
    /// The same directory's canonical path, for the blocking clean-up at
    /// stop (removing spares).
    path: PathBuf,
    /// This shard's number, in temporary names.
    shard: usize,
    durability: Durability,
    commits: commit::Commits,
    /// Cache invalidations after commits, sent in batches.
    invalidations: Rc<invalidate::Invalidations>,
    spares: RefCell<spares::Spares>,
    temp_counter: Cell<u64>,
}

/// A shard's store gauges, for the metrics.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Gauges {
    /// Uploads committed by this shard (as the paths' owner), and the
    /// directory flushes that made them durable.
    pub(crate) commits: (u64, u64),
    /// Paths this shard invalidated in every shard's cache after its
    /// commits, and the broadcasts that carried them.
    pub(crate) invalidations: (u64, u64),
    /// Spare files held, and the limit.
    pub(crate) spares: (usize, usize),
}

impl Store {
    /// The store of shard `shard` over `root` (opened from `path`).
    pub(crate) fn new(root: Dir, path: PathBuf, shard: usize, durability: Durability, spare_limit: usize) -> Store {
        Store {
            root,
            path,
            shard,
            durability,
            commits: commit::Commits::default(),
            invalidations: Default::default(),
            spares: RefCell::new(spares::Spares::new(spare_limit)),
            temp_counter: Cell::new(0),
        }
    }

    /// The data directory.
    pub(crate) fn root(&self) -> &Dir {
        &self.root
    }

    /// Whether writes are fenced after a failed flush.
    pub(crate) fn fenced(&self) -> bool {
        self.durability.fence.is_raised()
    }

    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            commits: self.commits.counts(),
            invalidations: self.invalidations.counts(),
            spares: self.spares.borrow().held(),
        }
    }

    /// When the shard stops: removes its spare files and keeps no more.
    /// Blocking, once.
    pub(crate) fn close(&self) {
        self.spares.borrow_mut().close(&self.path);
    }

    /// Opens the directory that holds `path`, creating missing directories
    /// (and fsyncing their parents) if `create`.
    pub(crate) async fn parent_dir(&self, path: &[u8], create: bool) -> io::Result<(Dir, Vec<u8>)> {
        parent_dir(&self.root, &self.durability, path, create.then_some(0)).await
    }

    /// Makes a change to `dir`'s entries durable (raising the fence if the
    /// flush fails).
    pub(crate) async fn flush_dir(&self, dir: &Dir, what: &str) -> io::Result<()> {
        self.durability.flush_dir(dir, what).await
    }

    /// A new temporary file name, unique in this process.
    fn temp_name(&self) -> Vec<u8> {
        let n = self.temp_counter.get() + 1;
        self.temp_counter.set(n);
        let mut name = TEMP_PREFIX.to_vec();
        name.extend_from_slice(format!("{}-{}-{n}", std::process::id(), self.shard).as_bytes());
        name
    }
}

/// Options for a new temporary file.
fn temp_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o644);
    options
}

/// Splits `a/b/c` into (`["a", "b"]`, `"c"`).
fn split(path: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let leaf = parts.pop().expect("a checked path has a leaf");
    (parts, leaf)
}

/// Opens the directory that holds `path`, creating missing directories (and
/// fsyncing their parents) if `create` says how many leading components
/// must exist already (an S3 bucket is never made by a PUT into it: a
/// missing one is `NotFound`).
pub(super) async fn parent_dir(
    root: &Dir,
    durability: &Durability,
    path: &[u8],
    create: Option<usize>,
) -> io::Result<(Dir, Vec<u8>)> {
    let (dirs, leaf) = split(path);
    if !dirs.is_empty() {
        // The common case, the directories exist: one openat2 (beneath the
        // root, as each component would be) rather than one per component.
        let joined = dirs.join(&b'/');
        match root.open_dir(OsStr::from_bytes(&joined)).await {
            Ok(dir) => return Ok((dir, leaf.to_vec())),
            Err(err) if create.is_some() && err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => return Err(err),
        }
    }
    let mut dir = root.open_dir(".").await?;
    let existing = create.unwrap_or(usize::MAX);
    for (index, component) in dirs.into_iter().enumerate() {
        let name = OsStr::from_bytes(component);
        dir = match dir.open_dir(name).await {
            Ok(next) => next,
            Err(err) if index >= existing && err.raw_os_error() == Some(libc::ENOENT) => {
                match dir.mkdir(name, 0o755).await {
                    Ok(()) => dir.sync_all().await.map_err(|e| durability.flush_failed("fsync of a directory", e))?,
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                dir.open_dir(name).await?
            }
            Err(err) => return Err(err),
        };
    }
    Ok((dir, leaf.to_vec()))
}

/// The outcome of a commit, sent back to the shard that asked.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Created(String),
    Replaced(String),
    Deleted,
    NotFound,
    PreconditionFailed,
    /// Writes are fenced after a failed flush.
    Fenced,
    Failed(io::ErrorKind, String),
}

/// `If-Match` / `If-None-Match` as sent, and `If-Unmodified-Since` (seconds
/// since the epoch, parsed; an unparsable date is ignored, RFC 9110 §13.1.4).
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) if_match: Option<String>,
    pub(crate) if_none_match: Option<String>,
    pub(crate) if_unmodified_since: Option<u64>,
}

/// Strong comparison of `current` against an entity-tag list (or `*`).
fn list_matches(list: &str, current: Option<&str>) -> bool {
    let list = list.trim();
    if list == "*" {
        return current.is_some();
    }
    let Some(current) = current else { return false };
    list.split(',').map(str::trim).any(|tag| !tag.starts_with("W/") && tag == current)
}

impl Conditions {
    /// RFC 9110 §13.2.2 for state-changing methods: If-Match first (else
    /// If-Unmodified-Since), then If-None-Match; any failing is 412.
    /// `current` is the store's ETag of the version there, which holds its
    /// modification time.
    fn allow(&self, current: Option<&str>) -> bool {
        if let Some(list) = &self.if_match {
            if !list_matches(list, current) {
                return false;
            }
        } else if let Some(since) = self.if_unmodified_since {
            // (No version, no date to compare: the condition is ignored.)
            let modified = current.and_then(files::etag_fields).map(|(_, _, (secs, _))| secs);
            if modified.is_some_and(|secs| secs.max(0) as u64 > since) {
                return false;
            }
        }
        if let Some(list) = &self.if_none_match {
            if list_matches(list, current) {
                return false;
            }
        }
        true
    }
}

async fn current_etag(dir: &Dir, leaf: &[u8]) -> io::Result<Option<String>> {
    match dir.stat(OsStr::from_bytes(leaf)).await {
        Ok(meta) if meta.is_file() => Ok(Some(files::etag(&meta))),
        Ok(meta) if meta.is_dir() => Err(io::Error::new(io::ErrorKind::IsADirectory, "the path names a directory")),
        // A symlink (never followed) or a special file: not ours to replace.
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, "the path names something other than a regular file"))
        }
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

impl Store {
    /// A commit that failed with `err` (a disk fault is counted).
    fn failed(&self, err: io::Error) -> Outcome {
        let err = self.durability.faults.saw(crate::health::Kind::Commit, err);
        Outcome::Failed(err.kind(), err.to_string())
    }

    /// Disk faults seen by any shard.
    pub(crate) fn faults(&self) -> &crate::health::DiskFaults {
        &self.durability.faults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions() {
        let c = |m: Option<&str>, n: Option<&str>| Conditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
            if_unmodified_since: None,
        };
        assert!(c(None, None).allow(None));
        assert!(c(None, Some("*")).allow(None), "create only if absent");
        assert!(!c(None, Some("*")).allow(Some("\"a\"")));
        assert!(c(Some("\"a\""), None).allow(Some("\"a\"")));
        assert!(c(Some("\"x\", \"a\""), None).allow(Some("\"a\"")));
        assert!(!c(Some("\"a\""), None).allow(Some("\"b\"")));
        assert!(!c(Some("\"a\""), None).allow(None));
        assert!(!c(Some("W/\"a\""), None).allow(Some("\"a\"")), "If-Match compares strongly");
        assert!(c(Some("*"), None).allow(Some("\"a\"")));
        assert!(!c(Some("*"), None).allow(None));
        // If-Unmodified-Since against the time in the store's ETag (1000 s
        // here), unless If-Match is sent; nothing to compare with no version.
        let current = files::etag_of(7, 3, (1000, 5));
        let since = |secs| Conditions { if_unmodified_since: Some(secs), ..Conditions::default() };
        assert!(since(1000).allow(Some(&current)));
        assert!(!since(999).allow(Some(&current)));
        assert!(since(999).allow(None));
        let matched = Conditions { if_match: Some(current.clone()), ..since(999) };
        assert!(matched.allow(Some(&current)), "If-Match wins over If-Unmodified-Since");
    }
}
