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
//! of the process's life: after one, the kernel may have dropped dirty pages
//! and cleared the error, so a retry could report a success that is not one.
//! The failing request gets its error status, every later PUT or DELETE
//! gets 503, reads go on, `/health` says `read-only` and the
//! `percore_writes_fenced` gauge is 1. An operator checks the disk and
//! restarts percore.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use percore_io::{Dir, OpenOptions};

use crate::config::BodyFlush;
use crate::files::{self, TEMP_PREFIX};

mod commit;
pub(crate) use commit::{commit_counts, commit_delete, commit_put};

thread_local! {
    static TEMP_COUNTER: Cell<u64> = const { Cell::new(0) };
    static SPARES: RefCell<Spares> = RefCell::new(Spares::default());
}

/// Set for good by the first failed flush. A one-way latch read by every
/// shard: the one piece of state shared outside the mesh, like the drain
/// flag, because a fence must hold on every shard at once, not after a
/// message arrives.
static WRITES_FENCED: AtomicBool = AtomicBool::new(false);

/// Whether writes are fenced after a failed flush.
pub(crate) fn writes_fenced() -> bool {
    WRITES_FENCED.load(Ordering::SeqCst)
}

/// What a fenced write is told.
pub(crate) const FENCED_MESSAGE: &str =
    "writes are disabled: a flush to disk failed earlier, so acknowledgements could not be trusted; check the disk and the log, then restart percore\n";

/// Test builds only: skip the directory fsync after a rename when
/// `PERCORE_UNSAFE_SKIP_DIR_FSYNC` is set, so that the power-loss test can
/// show it catches the bug. Always false in builds without the
/// `fault-injection` feature.
pub(super) fn dir_fsync_skipped() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    unsafe_knob(&SKIP, "PERCORE_UNSAFE_SKIP_DIR_FSYNC")
}

/// Test builds only: commit an upload without flushing or writing back its
/// body when `PERCORE_UNSAFE_SKIP_BODY_FLUSH` is set (the power-loss test
/// shows it then finds empty objects). Always false without the
/// `fault-injection` feature.
fn body_flush_skipped() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    unsafe_knob(&SKIP, "PERCORE_UNSAFE_SKIP_BODY_FLUSH")
}

/// Whether the test-only environment variable `name` is set (read once,
/// into `cell`); always false without the `fault-injection` feature.
fn unsafe_knob(cell: &std::sync::OnceLock<bool>, name: &str) -> bool {
    cfg!(feature = "fault-injection") && *cell.get_or_init(|| std::env::var_os(name).is_some())
}

/// Records a failed flush: fences writes (see the module comment) and passes
/// the error on.
pub(crate) fn flush_failed(what: &str, err: io::Error) -> io::Error {
    if !WRITES_FENCED.swap(true, Ordering::SeqCst) {
        tracing::error!("{what} failed: {err}; writes are now refused (read-only) until percore is restarted");
    }
    err
}

pub(crate) use crate::shard::current as shard;

/// Splits `a/b/c` into (`["a", "b"]`, `"c"`).
fn split(path: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let leaf = parts.pop().expect("a checked path has a leaf");
    (parts, leaf)
}

/// Opens the directory that holds `path`, creating missing directories (and
/// fsyncing their parents) if `create`.
pub(crate) async fn parent_dir(root: &Dir, path: &[u8], create: bool) -> io::Result<(Dir, Vec<u8>)> {
    let (dirs, leaf) = split(path);
    if !dirs.is_empty() {
        // The common case, the directories exist: one openat2 (beneath the
        // root, as each component would be) rather than one per component.
        let joined = dirs.join(&b'/');
        match root.open_dir(OsStr::from_bytes(&joined)).await {
            Ok(dir) => return Ok((dir, leaf.to_vec())),
            Err(err) if create && err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => return Err(err),
        }
    }
    let mut dir = root.open_dir(".").await?;
    for component in dirs {
        let name = OsStr::from_bytes(component);
        dir = match dir.open_dir(name).await {
            Ok(next) => next,
            Err(err) if create && err.raw_os_error() == Some(libc::ENOENT) => {
                match dir.mkdir(name, 0o755).await {
                    Ok(()) => dir.sync_all().await.map_err(|e| flush_failed("fsync of a directory", e))?,
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

/// `If-Match` / `If-None-Match` as sent.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) if_match: Option<String>,
    pub(crate) if_none_match: Option<String>,
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
    /// RFC 9110 §13.2.2 for state-changing methods: If-Match first, then
    /// If-None-Match; either failing is 412.
    pub(super) fn allow(&self, current: Option<&str>) -> bool {
        if let Some(list) = &self.if_match {
            if !list_matches(list, current) {
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

pub(super) async fn current_etag(dir: &Dir, leaf: &[u8]) -> io::Result<Option<String>> {
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

pub(super) fn failed(err: io::Error) -> Outcome {
    Outcome::Failed(err.kind(), err.to_string())
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
    let Ok(path) = std::ffi::CString::new(data_dir.as_os_str().as_bytes()) else {
        return (None, "fdatasync".into());
    };
    // SAFETY: `statfs` is plain data for which all-zero is valid; statfs
    // writes it through a pointer valid for the call; `path` is a C string.
    let kind = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(path.as_ptr(), &mut st) != 0 {
            return (None, "fdatasync (statfs of the data directory failed)".into());
        }
        st.f_type as i64
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

/// Makes an uploaded body ready for its commit: written back if it lives on
/// `write_back_dev` (see [`write_back_device`]; the commit's directory fsync
/// then makes it durable; a directory under the data directory may be
/// another mount), else fdatasynced. A failed flush fences writes like any
/// other. Returns the new version's ETag, from the same `fstat` that gives
/// the device (all writes are done; a flush changes neither inode, size nor
/// mtime, and neither does the commit's rename).
///
/// `reused` is the old modification time of a spare the body was written
/// into. The ETag is inode, size and mtime, and the inode is the old
/// version's: where timestamps are coarse (before Linux 6.13's fine-grained
/// ones), a rewrite within the same clock tick would get the old version's
/// mtime, and so its ETag if the size matches. Then the mtime is set one
/// nanosecond past the old one (every earlier version of the inode is older
/// still).
pub(crate) async fn flush_body(
    file: &percore_io::File,
    write_back_dev: Option<u64>,
    reused: Option<(i64, i64)>,
) -> io::Result<String> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(file);
    let mut st = fstat(fd)?;
    if let Some(old) = reused.filter(|&old| (st.st_mtime, st.st_mtime_nsec) <= old) {
        let later = if old.1 >= 999_999_999 { (old.0 + 1, 0) } else { (old.0, old.1 + 1) };
        let times = [
            libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
            libc::timespec { tv_sec: later.0, tv_nsec: later.1 },
        ];
        // SAFETY: `times` is two valid timespecs that outlive the call, on a
        // descriptor the caller keeps open. (A plain call: rare, and an
        // inode update in memory, journalled with the flush's commit.)
        if unsafe { libc::futimens(fd, times.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        st = fstat(fd)?;
    }
    if body_flush_skipped() {
        // Test builds only: no flush at all.
    } else if Some(st.st_dev) == write_back_dev {
        file.write_back().await.map_err(|e| flush_failed("write-back of an uploaded file", e))?;
    } else {
        file.sync_data().await.map_err(|e| flush_failed("fdatasync of an uploaded file", e))?;
    }
    Ok(files::etag_of(st.st_ino, st.st_size as u64, (st.st_mtime, st.st_mtime_nsec as u32)))
}

/// `fstat` of an open descriptor.
///
/// A plain call on this thread rather than a ring operation: io_uring
/// always hands statx to a worker thread, and an open file's inode is in
/// memory, so the call never waits for the disk.
fn fstat(fd: std::os::fd::RawFd) -> io::Result<libc::stat> {
    // SAFETY: `stat` is plain data for which all-zero is valid; fstat writes
    // it through a pointer valid for the call, on a descriptor the caller
    // keeps open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// A new temporary file name, unique in this process.
pub(crate) fn temp_name() -> Vec<u8> {
    let n = TEMP_COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let shard = percore_cores::current().id;
    let mut name = TEMP_PREFIX.to_vec();
    name.extend_from_slice(format!("{}-{shard}-{n}", std::process::id()).as_bytes());
    name
}

/// Options for a new temporary file.
pub(crate) fn temp_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o644);
    options
}

/// Runs `commit` on `path`'s owner shard.
pub(crate) async fn on_owner<F, Fut>(path: &[u8], commit: F) -> Outcome
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + 'static,
{
    let owner = percore_cores::shard_for(path, percore_cores::current().count);
    match percore_cores::spawn_on(owner, commit).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Failed(io::ErrorKind::Interrupted, err.to_string()),
    }
}

/// Old versions kept for reuse: a replaced object's file, once the
/// directory fsync has made the replacement durable, under its temporary
/// name and known to be open nowhere else, is overwritten by a later upload
/// into the same directory instead of being unlinked while that upload
/// creates a new file. Freeing an inode and its blocks and allocating new
/// ones was half of a small PUT's CPU time on ext4 (BENCHMARKS.md).
///
/// "Open nowhere else" is the kernel's answer, not a guess: a write lease
/// (`F_SETLEASE`) is granted only if no other descriptor, in any process,
/// has the file open (a GET still sending the old version keeps it open),
/// and is given up at once. After that nothing can reach the file: its
/// name is temporary, and temporary names are never served or listed. A
/// reused file is written from offset 0 with a body at least as long as
/// its old content (so no old byte survives past the new end), flushed and
/// committed exactly like a new one. Spares are this shard's, at most
/// [`spare_limit`] of them (each an open descriptor) of at most
/// [`SPARE_BYTES_MAX`] each and [`SPARE_BYTES_TOTAL`] together; a clean
/// stop removes them, and like any temporary file they are removed at the
/// next start.
#[derive(Default)]
struct Spares {
    /// By the directory part of the object path (`a/b/` for `a/b/c`).
    by_dir: HashMap<Vec<u8>, Vec<Spare>>,
    count: usize,
    bytes: u64,
    /// At most this many (set at start, [`configure_spares`]).
    limit: usize,
    /// Set when the shard stops: nothing more is kept.
    closed: bool,
}

impl Spares {
    fn full(&self, size: u64) -> bool {
        self.count >= self.limit || self.bytes + size > SPARE_BYTES_TOTAL
    }

    /// When full: takes out the largest spare if it is larger than `size`.
    fn evict_larger_than(&mut self, size: u64) -> Option<(Vec<u8>, Spare)> {
        if !self.full(size) {
            return None;
        }
        let (key, index, _) = self
            .by_dir
            .iter()
            .flat_map(|(key, list)| list.iter().enumerate().map(move |(i, spare)| (key, i, spare.size)))
            .filter(|&(_, _, held)| held > size)
            .max_by_key(|&(_, _, held)| held)?;
        let key = key.clone();
        let spare = self.remove(&key, index);
        Some((key, spare))
    }

    /// Takes out spare `index` of directory `key` (both as found).
    fn remove(&mut self, key: &[u8], index: usize) -> Spare {
        let list = self.by_dir.get_mut(key).expect("a spare's directory has a list");
        let spare = list.swap_remove(index);
        if list.is_empty() {
            self.by_dir.remove(key);
        }
        self.count -= 1;
        self.bytes -= spare.size;
        spare
    }
}

/// A spare file, open for writing.
pub(crate) struct Spare {
    pub(crate) name: Vec<u8>,
    pub(crate) file: percore_io::File,
    pub(crate) size: u64,
    /// Its last modification time (seconds, nanoseconds): a new version
    /// written into it must get a later one ([`flush_body`]).
    pub(crate) mtime: (i64, i64),
}

/// Spare files per shard, at most (fewer if open files are scarce:
/// [`spare_limit`]). 64 measured 11–12k PUT/s on the comparison's load (64
/// connections over 64 directories), 256 measured 14.6–16.6k: uploads
/// outran the spares their commits gave back.
const SPARES_MAX: usize = 256;
/// Larger old versions are unlinked: reuse pays for small files, whose cost
/// is the inode's, not the data's.
const SPARE_BYTES_MAX: u64 = 64 * 1024;
/// Disk space that one shard's spares may hold together.
const SPARE_BYTES_TOTAL: u64 = 8 << 20;

/// How many spares each of `shards` shards may hold when the process may
/// open `open_files` descriptors: [`SPARES_MAX`], or an eighth of each
/// shard's share of the descriptors if that is less (connections and files
/// in flight need the rest).
pub(crate) fn spare_limit(open_files: u64, shards: usize) -> usize {
    let share = open_files / (8 * shards.max(1) as u64);
    SPARES_MAX.min(usize::try_from(share).unwrap_or(usize::MAX))
}

/// Sets this shard's spare limit (at start).
pub(crate) fn configure_spares(limit: usize) {
    SPARES.with(|spares| spares.borrow_mut().limit = limit);
}

/// The directory part of an object path: `a/b/` for `a/b/c`, empty for `c`.
pub(crate) fn dir_key(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[..=slash],
        None => &[],
    }
}

/// A spare in `dir` (see [`dir_key`]) for a body of exactly `len` bytes:
/// one whose old content is no longer than that, so that the body covers
/// all of it. The largest such; `None` if there is none.
pub(crate) fn take_spare(dir: &[u8], len: u64) -> Option<Spare> {
    SPARES
        .with(|spares| {
            let mut spares = spares.borrow_mut();
            let list = spares.by_dir.get(dir)?;
            let best = (0..list.len()).filter(|&i| list[i].size <= len).max_by_key(|&i| list[i].size)?;
            Some(spares.remove(dir, best))
        })
        // Unlinked since it was kept (by hand: nothing here unlinks a spare it
        // holds)? Then it would be written and renamed in vain: drop it.
        .filter(|spare| fstat(std::os::fd::AsRawFd::as_raw_fd(&spare.file)).is_ok_and(|st| st.st_nlink == 1))
}

/// On the owner, after a replacement is durable: keeps the old version,
/// now under the temporary name `name` in `dir`, as a spare if it is small
/// and no one else has it open. When the shard's spares are at their limit
/// already, it takes the place of the largest if it is smaller (a spare
/// serves only bodies at least as long, so the largest are the least
/// useful, and would otherwise fill the pool for good). `false` if it was
/// not kept (the caller unlinks it).
pub(super) async fn keep_spare(root: &Dir, dir: &Dir, key: &[u8], name: &[u8]) -> bool {
    if SPARES.with(|spares| spares.borrow().closed) {
        return false;
    }
    let mut options = OpenOptions::new();
    options.write(true);
    let Ok(file) = dir.open_file(OsStr::from_bytes(name), &options).await else { return false };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let Ok(st) = fstat(fd) else { return false };
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    if !regular || st.st_nlink != 1 || st.st_size as u64 > SPARE_BYTES_MAX || !open_nowhere_else(fd) {
        return false;
    }
    let size = st.st_size as u64;
    if let Some((evicted_key, evicted)) = SPARES.with(|spares| spares.borrow_mut().evict_larger_than(size)) {
        // Its directory may be another: open it by its key.
        let key = OsStr::from_bytes(if evicted_key.is_empty() { b"." } else { &evicted_key });
        if let Ok(evicted_dir) = root.open_dir(key).await {
            let _ = evicted_dir.unlink(OsStr::from_bytes(&evicted.name)).await;
        }
    }
    SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.full(size) || spares.closed {
            return false;
        }
        spares.count += 1;
        spares.bytes += size;
        let spare = Spare { name: name.to_vec(), file, size, mtime: (st.st_mtime, st.st_mtime_nsec) };
        spares.by_dir.entry(key.to_vec()).or_default().push(spare);
        true
    })
}

/// Whether `fd` is the only open descriptor of its file, in any process: a
/// write lease is granted only then (`fcntl(2)`, "Leases"); it is released
/// at once. (Another process opening the file in between breaks the lease
/// with SIGIO, which `percore serve` ignores.) False where leases are
/// unavailable (`fs.leases-enable = 0`, a file system without them, a file
/// owned by another user).
fn open_nowhere_else(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: fcntl on a descriptor the caller keeps open; F_SETLEASE takes
    // an integer argument and touches no memory of ours.
    unsafe {
        if libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) != 0 {
            return false;
        }
        libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) == 0
    }
}

/// Spare files this shard holds, and its limit (for the metrics).
pub(crate) fn spares_held() -> (usize, usize) {
    SPARES.with(|spares| (spares.borrow().count, spares.borrow().limit))
}

/// When the shard stops: removes its spares and keeps no more, so that a
/// clean stop leaves no temporary file behind. Blocking (at most
/// [`SPARES_MAX`] unlinks, once).
pub(crate) fn remove_spares(data_dir: &Path) {
    let spares = SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        spares.closed = true;
        spares.count = 0;
        spares.bytes = 0;
        std::mem::take(&mut spares.by_dir)
    });
    for (dir, list) in spares {
        for spare in list {
            let _ = std::fs::remove_file(data_dir.join(OsStr::from_bytes(&dir)).join(OsStr::from_bytes(&spare.name)));
        }
    }
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
        } else if entry.file_name().as_bytes().starts_with(TEMP_PREFIX) {
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
    fn preconditions() {
        let c = |m: Option<&str>, n: Option<&str>| Conditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
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
    }

    #[test]
    fn spares_leave_most_descriptors_to_connections() {
        assert_eq!(spare_limit(1 << 20, 2), SPARES_MAX);
        assert_eq!(spare_limit(1024, 2), 64);
        assert_eq!(spare_limit(100, 1), 12);
        assert_eq!(spare_limit(0, 0), 0);
    }

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
}
