//! Files and directories: openat2 (confined beneath a directory), read_at,
//! write_at, fsync, fdatasync, statx, close, renameat, unlinkat, mkdirat.
//!
//! Containment: [`Dir::open_file`] and [`Dir::open_dir`] resolve paths with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` by default, so `..`, absolute
//! paths and symlinks that leave the directory fail with `EXDEV` (and magic
//! links with `ELOOP`). `renameat`, `unlinkat`, `mkdirat` and `statx` have no
//! such flag in the kernel, so here they accept only a single path component
//! relative to a [`Dir`] that was itself opened beneath the root: they cannot
//! escape either.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use io_uring::{opcode, types};

use super::{maybe_short, transfer_all, Completable, NoData, Op, Outgoing, Transfer};
use crate::buf::{IoBuf, IoBufMut};
use crate::driver::slots::Cqe;
use crate::error::cqe_result;
use crate::fault::OpKind;
use crate::fd::{close_now, Fd};

/// Options for opening a file with openat2.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    create: bool,
    create_new: bool,
    truncate: bool,
    append: bool,
    direct: bool,
    directory: bool,
    path_only: bool,
    mode: u32,
    beneath: bool,
    no_magiclinks: bool,
    no_symlinks: bool,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read: false,
            write: false,
            create: false,
            create_new: false,
            truncate: false,
            append: false,
            direct: false,
            directory: false,
            path_only: false,
            mode: 0o644,
            beneath: true,
            no_magiclinks: true,
            no_symlinks: false,
            custom_flags: 0,
        }
    }
}

macro_rules! setter {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $($(#[$doc])* pub fn $name(&mut self, value: $ty) -> &mut Self { self.$name = value; self })*
    };
}

impl OpenOptions {
    /// Read-only, confined beneath the directory, no magic links.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    setter! {
        /// Open for reading.
        read: bool;
        /// Open for writing.
        write: bool;
        /// Create if missing (`O_CREAT`).
        create: bool;
        /// Create, failing with `EEXIST` if present (`O_CREAT | O_EXCL`).
        create_new: bool;
        /// Truncate to zero length (`O_TRUNC`).
        truncate: bool;
        /// Append (`O_APPEND`).
        append: bool;
        /// Bypass the page cache (`O_DIRECT`): buffers, offsets and lengths
        /// must be aligned (see [`AlignedBuf`](crate::AlignedBuf)). Reads
        /// and writes of such a file are handed to the kernel at once rather
        /// than batched per tick, which the device serves faster.
        direct: bool;
        /// Fail unless the path is a directory (`O_DIRECTORY`).
        directory: bool;
        /// Open only as a location (`O_PATH`).
        path_only: bool;
        /// Permission bits for created files.
        mode: u32;
        /// Refuse paths that leave the directory (`RESOLVE_BENEATH`); on by default.
        beneath: bool;
        /// Refuse magic links such as `/proc/self/fd/N` (`RESOLVE_NO_MAGICLINKS`); on by default.
        no_magiclinks: bool;
        /// Refuse every symlink in the path (`RESOLVE_NO_SYMLINKS`).
        no_symlinks: bool;
        /// Extra `O_*` flags.
        custom_flags: i32;
    }

    fn how(&self) -> types::OpenHow {
        let mut flags = libc::O_CLOEXEC | self.custom_flags;
        flags |= match (self.read, self.write || self.append) {
            (_, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            (true, true) => libc::O_RDWR,
        };
        if self.create_new {
            flags |= libc::O_CREAT | libc::O_EXCL;
        } else if self.create {
            flags |= libc::O_CREAT;
        }
        for (on, flag) in [
            (self.truncate, libc::O_TRUNC),
            (self.append, libc::O_APPEND),
            (self.direct, libc::O_DIRECT),
            (self.directory, libc::O_DIRECTORY),
            (self.path_only, libc::O_PATH),
        ] {
            if on {
                flags |= flag;
            }
        }
        let mut resolve = 0;
        for (on, flag) in [
            (self.beneath, libc::RESOLVE_BENEATH),
            (self.no_magiclinks, libc::RESOLVE_NO_MAGICLINKS),
            (self.no_symlinks, libc::RESOLVE_NO_SYMLINKS),
        ] {
            if on {
                resolve |= flag;
            }
        }
        let mode = if flags & libc::O_CREAT != 0 { u64::from(self.mode) } else { 0 };
        types::OpenHow::new().flags(flags as u64).mode(mode).resolve(resolve)
    }
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Checks that `name` is one path component (no `/`, not `.` or `..`).
fn component(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a single path component")));
    }
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

struct OpenAt2 {
    path: CString,
    how: Box<types::OpenHow>,
}

impl Completable for OpenAt2 {
    type Output = io::Result<Fd>;
    fn complete(self, cqe: Cqe) -> io::Result<Fd> {
        cqe_result(cqe.result).map(|fd| Fd::from_raw(fd as RawFd))
    }
    fn release(&mut self, cqe: Cqe) {
        if cqe.result >= 0 {
            close_now(cqe.result);
        }
    }
}

async fn openat2(dirfd: RawFd, path: &Path, options: &OpenOptions) -> io::Result<Fd> {
    let data = OpenAt2 { path: path_cstring(path)?, how: Box::new(options.how()) };
    // SAFETY: the SQE points at `path` and `how`, both heap memory owned by
    // the op's data.
    let op = unsafe {
        Op::submit(OpKind::Open, data, |d, _| opcode::OpenAt2::new(types::Fd(dirfd), d.path.as_ptr(), &*d.how).build())
    };
    op.await
}

/// A directory handle: the root that paths are resolved beneath.
#[derive(Debug)]
pub struct Dir {
    fd: Fd,
}

impl AsRawFd for Dir {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl std::os::fd::AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor is open until `self.fd` drops, which the
        // borrow's lifetime (that of `&self`) cannot outlast.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd.as_raw_fd()) }
    }
}

impl Dir {
    /// Opens a directory by an ordinary path (relative to the working
    /// directory; not confined).
    ///
    /// # Errors
    /// As openat2(2), e.g. `ENOENT`, `ENOTDIR`.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<Dir> {
        let mut options = OpenOptions::new();
        options.directory(true).beneath(false).no_magiclinks(false);
        Ok(Dir { fd: openat2(libc::AT_FDCWD, path.as_ref(), &options).await? })
    }

    /// Opens a file at `path` relative to this directory with `options`
    /// (confined beneath it unless the options say otherwise).
    ///
    /// # Errors
    /// As openat2(2); a path that leaves the directory fails with `EXDEV`.
    pub async fn open_file(&self, path: impl AsRef<Path>, options: &OpenOptions) -> io::Result<File> {
        Ok(File { fd: openat2(self.fd.as_raw_fd(), path.as_ref(), options).await?, direct: options.direct })
    }

    /// Opens a subdirectory beneath this one.
    ///
    /// # Errors
    /// As [`Dir::open_file`]; `ENOTDIR` if it is not a directory.
    pub async fn open_dir(&self, path: impl AsRef<Path>) -> io::Result<Dir> {
        let mut options = OpenOptions::new();
        options.directory(true);
        Ok(Dir { fd: openat2(self.fd.as_raw_fd(), path.as_ref(), &options).await? })
    }

    /// Metadata of the entry `name` in this directory (symlinks not followed).
    ///
    /// # Errors
    /// `InvalidInput` unless `name` is a single component; else as statx(2).
    pub async fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Metadata> {
        statx(self.fd.as_raw_fd(), component(name.as_ref())?, libc::AT_SYMLINK_NOFOLLOW).await
    }

    /// Metadata of the directory itself.
    ///
    /// # Errors
    /// As statx(2).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        statx(self.fd.as_raw_fd(), CString::default(), libc::AT_EMPTY_PATH).await
    }

    /// Creates the directory `name` in this directory.
    ///
    /// # Errors
    /// `InvalidInput` unless `name` is a single component; else as mkdirat(2).
    pub async fn mkdir(&self, name: impl AsRef<OsStr>, mode: u32) -> io::Result<()> {
        let data = PathOp { path: component(name.as_ref())?, path2: None };
        let dirfd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at `data.path`, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Mkdir, data, |d, _| {
                opcode::MkDirAt::new(types::Fd(dirfd), d.path.as_ptr()).mode(mode).build()
            })
        };
        op.await
    }

    /// Removes the file `name` from this directory.
    ///
    /// # Errors
    /// `InvalidInput` unless `name` is a single component; else as unlinkat(2).
    pub async fn unlink(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        self.unlinkat(name.as_ref(), 0).await
    }

    /// Removes the empty directory `name` from this directory.
    ///
    /// # Errors
    /// As [`Dir::unlink`]; `ENOTEMPTY` if it has entries.
    pub async fn rmdir(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        self.unlinkat(name.as_ref(), libc::AT_REMOVEDIR).await
    }

    async fn unlinkat(&self, name: &OsStr, flags: i32) -> io::Result<()> {
        let data = PathOp { path: component(name)?, path2: None };
        let dirfd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at `data.path`, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Unlink, data, |d, _| {
                opcode::UnlinkAt::new(types::Fd(dirfd), d.path.as_ptr()).flags(flags).build()
            })
        };
        op.await
    }

    /// Renames `from` in this directory to `to` in `to_dir` (atomically
    /// replacing `to` if it exists).
    ///
    /// # Errors
    /// `InvalidInput` unless both names are single components; else as
    /// renameat2(2).
    pub async fn rename(&self, from: impl AsRef<OsStr>, to_dir: &Dir, to: impl AsRef<OsStr>) -> io::Result<()> {
        self.renameat(from.as_ref(), to_dir, to.as_ref(), 0).await
    }

    /// Like [`Dir::rename`] but fails with `EEXIST` if `to` exists
    /// (`RENAME_NOREPLACE`).
    ///
    /// # Errors
    /// As [`Dir::rename`].
    pub async fn rename_noreplace(
        &self,
        from: impl AsRef<OsStr>,
        to_dir: &Dir,
        to: impl AsRef<OsStr>,
    ) -> io::Result<()> {
        self.renameat(from.as_ref(), to_dir, to.as_ref(), libc::RENAME_NOREPLACE).await
    }

    /// Atomically swaps `a` in this directory and `b` in `to_dir`
    /// (`RENAME_EXCHANGE`): both must exist.
    ///
    /// # Errors
    /// As [`Dir::rename`].
    pub async fn rename_exchange(&self, a: impl AsRef<OsStr>, to_dir: &Dir, b: impl AsRef<OsStr>) -> io::Result<()> {
        self.renameat(a.as_ref(), to_dir, b.as_ref(), libc::RENAME_EXCHANGE).await
    }

    async fn renameat(&self, from: &OsStr, to_dir: &Dir, to: &OsStr, flags: u32) -> io::Result<()> {
        let data = PathOp { path: component(from)?, path2: Some(component(to)?) };
        let (old_dir, new_dir) = (self.fd.as_raw_fd(), to_dir.fd.as_raw_fd());
        // SAFETY: the SQE points at `path` and `path2`, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Rename, data, |d, _| {
                let new = d.path2.as_ref().expect("rename has two paths");
                opcode::RenameAt::new(types::Fd(old_dir), d.path.as_ptr(), types::Fd(new_dir), new.as_ptr())
                    .flags(flags)
                    .build()
            })
        };
        op.await
    }

    /// Flushes the directory's entries to stable storage (fsync). Needed after
    /// a create, rename or unlink for that change to survive power loss.
    ///
    /// # Errors
    /// As fsync(2), and `EIO` if the file system was shut down by the time
    /// the flush returned.
    ///
    /// XFS answers a directory fsync with success after the file system
    /// has been shut down (a disk error or `xfs_io -x -c shutdown`) without
    /// writing its log: `xfs_dir_fsync` forces the log only if the inode is
    /// still pinned, and the shutdown unpins every logged item it aborts. A
    /// rename made just before the shutdown and fsynced just after is then
    /// reported durable and is gone after a remount (seen on kernel 6.18;
    /// ext4 checks for shutdown in its fsync). XFS does fail `fstat` once
    /// shut down, so every flush here counts only if an `fstat` of the same
    /// descriptor after it succeeds: if the file system was still up then,
    /// no shutdown preceded the flush and its success was real. A shutdown
    /// between the two is reported as a failure, which is safe (the caller
    /// treats the write as not done).
    pub async fn sync_all(&self) -> io::Result<()> {
        fsync(self.fd.as_raw_fd(), OpKind::Fsync, types::FsyncFlags::empty()).await
    }

    /// Lists the directory's entries (without `.` and `..`).
    ///
    /// # Implementation notes
    /// io_uring has no getdents operation, so this is a plain blocking
    /// `getdents64` on the calling thread. For directories in the page cache
    /// that is microseconds; a large directory is better read with
    /// [`Dir::read_dir_yielding`].
    ///
    /// # Errors
    /// As openat(2) and readdir(3).
    pub fn read_dir(&self) -> io::Result<Vec<DirEntry>> {
        let mut stream = DirStream::open(self.fd.as_raw_fd())?;
        let mut entries = Vec::new();
        while stream.read(&mut entries, usize::MAX)? {}
        Ok(entries)
    }

    /// Lists the directory's entries as [`Dir::read_dir`] does, a piece of
    /// [`ENTRIES_PER_TURN`] entries at a time, yielding to the thread's
    /// other tasks and to I/O completions between pieces: reading a
    /// directory of 100,000 entries otherwise holds up everything else on
    /// the thread for tens of milliseconds. The read has a file description
    /// of its own, so reads of the same directory that interleave do not
    /// move each other's position. A directory changed during the read may
    /// show an entry added or removed meanwhile, or not (as readdir(3)).
    ///
    /// # Errors
    /// As openat(2) and readdir(3).
    pub async fn read_dir_yielding(&self) -> io::Result<Vec<DirEntry>> {
        let mut stream = DirStream::open(self.fd.as_raw_fd())?;
        let mut entries = Vec::new();
        while stream.read(&mut entries, ENTRIES_PER_TURN)? {
            crate::yield_now().await;
        }
        Ok(entries)
    }
}

/// Entries [`Dir::read_dir_yielding`] reads between two yields: about
/// what one `getdents64` of glibc's 32 KiB buffer returns for short names.
pub(crate) const ENTRIES_PER_TURN: usize = 1024;

/// An open directory stream (`DIR*`) on a file description of its own,
/// closed when dropped (also when the future reading it is dropped).
struct DirStream(*mut libc::DIR);

impl DirStream {
    fn open(dirfd: RawFd) -> io::Result<DirStream> {
        // SAFETY: openat with a NUL-terminated path literal and a directory
        // fd the caller keeps open for the call; checked below. A new
        // description (not a dup) has its own position.
        let fd = crate::error::syscall(unsafe {
            libc::openat(dirfd, c".".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        })?;
        // SAFETY: `fd` is an fd we own; on success fdopendir owns it.
        let dir = unsafe { libc::fdopendir(fd) };
        if dir.is_null() {
            let err = io::Error::last_os_error();
            close_now(fd);
            return Err(err);
        }
        Ok(DirStream(dir))
    }

    /// Appends up to `max` entries to `entries`; true if there may be more.
    fn read(&mut self, entries: &mut Vec<DirEntry>, max: usize) -> io::Result<bool> {
        for _ in 0..max {
            // SAFETY: errno is thread-local; reset to tell end from error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `self.0` is a valid DIR* until drop; nothing else uses it.
            let entry = unsafe { libc::readdir64(self.0) };
            if entry.is_null() {
                let errno = io::Error::last_os_error();
                return if errno.raw_os_error() == Some(0) { Ok(false) } else { Err(errno) };
            }
            // SAFETY: readdir64 returned a valid entry whose d_name is a
            // NUL-terminated string, valid until the next readdir64 on this stream.
            let (name, d_type) = unsafe { (std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
            let name = name.to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match d_type {
                libc::DT_DIR => Some(FileKind::Dir),
                libc::DT_REG => Some(FileKind::File),
                libc::DT_LNK => Some(FileKind::Symlink),
                libc::DT_UNKNOWN => None,
                _ => Some(FileKind::Other),
            };
            entries.push(DirEntry { name: OsStr::from_bytes(name).to_os_string(), kind });
        }
        Ok(true)
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: `self.0` is valid and closed exactly once (this also
        // closes its fd).
        unsafe { libc::closedir(self.0) };
    }
}

/// What kind of entry a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Anything else (device, socket, fifo).
    Other,
}

/// One entry of [`Dir::read_dir`].
#[derive(Clone, Debug)]
pub struct DirEntry {
    /// The entry's name.
    pub name: OsString,
    /// Its kind, if the file system reports it in the listing.
    pub kind: Option<FileKind>,
}

struct PathOp {
    path: CString,
    path2: Option<CString>,
}

impl Completable for PathOp {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe_result(cqe.result).map(drop)
    }
}

/// File metadata from statx(2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Size in bytes.
    pub size: u64,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Inode number.
    pub ino: u64,
    /// Device major and minor numbers.
    pub dev: (u32, u32),
    /// Hard links.
    pub nlink: u32,
    /// Last modification, seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// Last status change (contents, attributes, entries), seconds and
    /// nanoseconds since the epoch; unlike `mtime`, never set by a caller.
    pub ctime: (i64, u32),
    /// Preferred I/O block size.
    pub blksize: u32,
}

impl Metadata {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    /// True for a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
    /// The modification time as a `SystemTime`.
    pub fn modified(&self) -> SystemTime {
        let (secs, nanos) = self.mtime;
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(u64::from(nanos))
        }
    }
}

struct Statx {
    path: CString,
    buf: Box<libc::statx>,
}

impl Completable for Statx {
    type Output = io::Result<Metadata>;
    fn complete(self, cqe: Cqe) -> io::Result<Metadata> {
        cqe_result(cqe.result)?;
        let s = &*self.buf;
        Ok(Metadata {
            size: s.stx_size,
            mode: u32::from(s.stx_mode),
            ino: s.stx_ino,
            dev: (s.stx_dev_major, s.stx_dev_minor),
            nlink: s.stx_nlink,
            mtime: (s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
            ctime: (s.stx_ctime.tv_sec, s.stx_ctime.tv_nsec),
            blksize: s.stx_blksize,
        })
    }
}

async fn statx(dirfd: RawFd, path: CString, flags: i32) -> io::Result<Metadata> {
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let data = Statx { path, buf };
    // SAFETY: the SQE points at `path` and `buf`, heap memory owned by the op.
    let op = unsafe {
        Op::submit(OpKind::Statx, data, |d, _| {
            let buf: *mut libc::statx = &mut *d.buf;
            opcode::Statx::new(types::Fd(dirfd), d.path.as_ptr(), buf.cast())
                .flags(flags)
                .mask(libc::STATX_BASIC_STATS)
                .build()
        })
    };
    op.await
}

/// fsync or fdatasync, then a check that the file system is still up (why:
/// [`Dir::sync_all`]).
async fn fsync(fd: RawFd, kind: OpKind, flags: types::FsyncFlags) -> io::Result<()> {
    // SAFETY: the fsync SQE points at no memory.
    let op = unsafe { Op::submit(kind, NoData, |_, _| opcode::Fsync::new(types::Fd(fd)).flags(flags).build()) };
    op.await?;
    still_up(fd)
}

/// Fails if the file system under `fd` has been shut down (XFS fails an
/// fstat then; see [`Dir::sync_all`]). A plain call on this thread: the
/// inode of an open descriptor is in memory.
fn still_up(fd: RawFd) -> io::Result<()> {
    // SAFETY: `stat` is plain data for which all-zero is valid; fstat writes
    // it through a pointer valid for the call, on a descriptor the caller
    // keeps open (it borrows the file or directory for the whole call).
    let up = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st)
    };
    if up != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An open file.
#[derive(Debug)]
pub struct File {
    fd: Fd,
    /// Opened with `O_DIRECT`: reads and writes go to the kernel at once.
    direct: bool,
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl std::os::fd::AsFd for File {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor is open until `self.fd` drops, which the
        // borrow's lifetime (that of `&self`) cannot outlast.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd.as_raw_fd()) }
    }
}

impl File {
    /// Whether this is the only open descriptor of its file, in any
    /// process: a write lease (`fcntl(2)`, "Leases") is granted only then,
    /// and is released at once. False where leases are unavailable
    /// (`fs.leases-enable = 0`, a file system without them, a file owned by
    /// another user). Should another process open the file in between, the
    /// kernel breaks the lease with `SIGIO` (the caller's process must not
    /// die of it: block or ignore it) and that opener waits the
    /// microseconds until the release. A plain call, not a ring operation:
    /// it never waits for the disk.
    pub fn only_open_here(&self) -> bool {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor `self` keeps open; F_SETLEASE takes
        // an integer argument and touches no memory of ours.
        unsafe {
            if libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) != 0 {
                return false;
            }
            libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) == 0
        }
    }

    /// Opens `path` relative to the working directory (not confined).
    ///
    /// # Errors
    /// As openat2(2).
    pub async fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> io::Result<File> {
        let mut options = options.clone();
        options.beneath(false);
        Ok(File { fd: openat2(libc::AT_FDCWD, path.as_ref(), &options).await?, direct: options.direct })
    }

    /// Reads into `buf` (from its start, up to its capacity) at `pos`.
    /// Returns the bytes read (0 at end of file) and the buffer, whose length
    /// is then the bytes read.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> (io::Result<usize>, B) {
        let fd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at the buffer, heap memory owned by the op.
        let op = unsafe {
            Op::submit_with(OpKind::Read, Transfer { buf }, self.direct, |d, shorten| {
                let len = maybe_short(d.buf.bytes_total(), shorten);
                opcode::Read::new(types::Fd(fd), d.buf.stable_mut_ptr(), len).offset(pos).build()
            })
        };
        op.await
    }

    /// Reads until `buf`'s capacity is full.
    ///
    /// # Errors
    /// `UnexpectedEof` if the file ends first (the buffer then holds what was
    /// read); else as read(2).
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_total();
        transfer_all(buf, total, io::ErrorKind::UnexpectedEof, |rest, done| self.read_at(rest, pos + done as u64)).await
    }

    /// Writes `buf`'s initialized bytes at `pos`; returns how many were
    /// written (possibly fewer: see [`File::write_all_at`]).
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<usize>, B) {
        let fd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at the buffer, heap memory owned by the op.
        let op = unsafe {
            Op::submit_with(OpKind::Write, Outgoing { buf }, self.direct, |d, shorten| {
                let len = maybe_short(d.buf.bytes_init(), shorten);
                opcode::Write::new(types::Fd(fd), d.buf.stable_ptr(), len).offset(pos).build()
            })
        };
        op.await
    }

    /// Writes all of `buf`'s initialized bytes at `pos`, continuing after
    /// short writes.
    ///
    /// # Errors
    /// As write(2); `WriteZero` if the kernel accepts no bytes.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        transfer_all(buf, total, io::ErrorKind::WriteZero, |rest, done| self.write_at(rest, pos + done as u64)).await
    }

    /// Flushes data and metadata to stable storage (fsync).
    ///
    /// # Errors
    /// As fsync(2), and `EIO` if the file system was shut down by the time
    /// the flush returned (see [`Dir::sync_all`]). After an `EIO` the kernel
    /// may have dropped the dirty pages: do not retry and treat the data as
    /// lost.
    pub async fn sync_all(&self) -> io::Result<()> {
        fsync(self.fd.as_raw_fd(), OpKind::Fsync, types::FsyncFlags::empty()).await
    }

    /// Flushes data (and the metadata needed to read it) to stable storage
    /// (fdatasync).
    ///
    /// # Errors
    /// As [`File::sync_all`].
    pub async fn sync_data(&self) -> io::Result<()> {
        fsync(self.fd.as_raw_fd(), OpKind::Fdatasync, types::FsyncFlags::DATASYNC).await
    }

    /// Writes the file's dirty pages back and waits for that to finish
    /// (`sync_file_range` with `WAIT_BEFORE | WRITE | WAIT_AFTER` over the
    /// whole file), without a flush of the device cache or of the file's
    /// metadata: **not durable on its own**. On a journaling file system
    /// whose journal commits in order (ext4, XFS), the write-back puts the
    /// file's block allocation and size into the journal, so a later
    /// `fsync` of anything that commits the journal past this point (the
    /// directory after a rename into it) makes the data, the size and that
    /// change durable together, with one journal commit instead of two.
    ///
    /// # Errors
    /// As sync_file_range(2) (a write-back error is reported as `EIO`), and
    /// `EIO` if the file system was shut down by the time it returned.
    pub async fn write_back(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: the SQE points at no memory; offset 0 and length 0 mean
        // the whole file.
        let op = unsafe {
            Op::submit(OpKind::SyncRange, NoData, |_, _| {
                opcode::SyncFileRange::new(types::Fd(fd), 0).flags(flags).build()
            })
        };
        op.await?;
        still_up(fd)
    }

    /// The file's metadata.
    ///
    /// # Errors
    /// As statx(2).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        statx(self.fd.as_raw_fd(), CString::default(), libc::AT_EMPTY_PATH).await
    }

    /// Closes the file and reports the result (dropping also closes, but
    /// without a result).
    ///
    /// # Errors
    /// As close(2).
    pub async fn close(self) -> io::Result<()> {
        close_fd(self.fd).await
    }
}

pub(crate) async fn close_fd(fd: Fd) -> io::Result<()> {
    let raw = fd.into_raw();
    // SAFETY: the close SQE points at no memory.
    let op = unsafe { Op::submit(OpKind::Close, NoData, |_, _| opcode::Close::new(types::Fd(raw)).build()) };
    op.await.map(drop)
}
