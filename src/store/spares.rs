//! Old versions kept for reuse: a replaced object's file, once the
//! directory fsync has made the replacement durable, under its temporary
//! name and known to be open nowhere else, is overwritten by a later upload
//! into the same directory instead of being unlinked while that upload
//! creates a new file. Freeing an inode and its blocks and allocating new
//! ones was half of a small PUT's CPU time on ext4 (BENCHMARKS.md).
//!
//! "Open nowhere else" is the kernel's answer, not a guess: a write lease
//! is granted only if no other descriptor, in any process, has the file
//! open (a GET still sending the old version keeps it open), and is given
//! up at once (`percore_io::File::only_open_here`). After that nothing can
//! reach the file: its name is temporary, and temporary names are never
//! served or listed. A reused file is written from offset 0 with a body at
//! least as long as its old content (so no old byte survives past the new
//! end), flushed and committed exactly like a new one. Spares are one
//! shard's, at most [`spare_limit`] of them (each an open descriptor) of at
//! most [`SPARE_BYTES_MAX`] each and [`SPARE_BYTES_TOTAL`] together; a clean
//! stop removes them, and like any temporary file they are removed at the
//! next start.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percore_io::{Dir, OpenOptions};

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

/// A spare file, open for writing.
pub(crate) struct Spare {
    pub(crate) name: Vec<u8>,
    pub(crate) file: percore_io::File,
    pub(crate) size: u64,
    /// Its last modification time (seconds, nanoseconds): a new version
    /// written into it must get a later one (`Durability::flush_body`).
    pub(crate) mtime: (i64, i64),
}

/// One shard's spares.
#[derive(Default)]
pub(crate) struct Spares {
    /// By the directory part of the object path (`a/b/` for `a/b/c`).
    by_dir: HashMap<Vec<u8>, Vec<Spare>>,
    count: usize,
    bytes: u64,
    /// At most this many ([`spare_limit`]).
    limit: usize,
    /// Set when the shard stops: nothing more is kept.
    closed: bool,
}

impl Spares {
    pub(crate) fn new(limit: usize) -> Spares {
        Spares { limit, ..Spares::default() }
    }

    /// Spares held, and the limit (for the metrics).
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.count, self.limit)
    }

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

    /// A spare in `dir` (see [`dir_key`]) for a body of exactly `len`
    /// bytes: one whose old content is no longer than that, so that the
    /// body covers all of it. The largest such; `None` if there is none.
    pub(crate) fn take(&mut self, dir: &[u8], len: u64) -> Option<Spare> {
        let list = self.by_dir.get(dir)?;
        let best = (0..list.len()).filter(|&i| list[i].size <= len).max_by_key(|&i| list[i].size)?;
        Some(self.remove(dir, best))
            // Unlinked since it was kept (by hand: nothing here unlinks a
            // spare it holds)? Then it would be written and renamed in
            // vain: drop it.
            .filter(|spare| rustix::fs::fstat(&spare.file).is_ok_and(|st| st.st_nlink == 1))
    }

    /// When the shard stops: removes its spares (under `data_dir`) and
    /// keeps no more, so that a clean stop leaves no temporary file behind.
    /// Blocking (at most [`SPARES_MAX`] unlinks, once).
    pub(crate) fn close(&mut self, data_dir: &Path) {
        self.closed = true;
        self.count = 0;
        self.bytes = 0;
        for (dir, list) in std::mem::take(&mut self.by_dir) {
            for spare in list {
                let path = data_dir.join(OsStr::from_bytes(&dir)).join(OsStr::from_bytes(&spare.name));
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The directory part of an object path: `a/b/` for `a/b/c`, empty for `c`.
pub(crate) fn dir_key(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[..=slash],
        None => &[],
    }
}

/// On the owner, after a replacement is durable: keeps the old version,
/// now under the temporary name `name` in `dir` (directory `key` under
/// `root`), as a spare if it is small and no one else has it open. When the
/// spares are at their limit already, it takes the place of the largest if
/// it is smaller (a spare serves only bodies at least as long, so the
/// largest are the least useful, and would otherwise fill the pool for
/// good). `false` if it was not kept (the caller unlinks it).
pub(crate) async fn keep(spares: &std::cell::RefCell<Spares>, root: &Dir, dir: &Dir, key: &[u8], name: &[u8]) -> bool {
    if spares.borrow().closed {
        return false;
    }
    let mut options = OpenOptions::new();
    options.write(true);
    let Ok(file) = dir.open_file(OsStr::from_bytes(name), &options).await else { return false };
    let Ok(st) = rustix::fs::fstat(&file) else { return false };
    let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    if !regular || st.st_nlink != 1 || st.st_size as u64 > SPARE_BYTES_MAX || !file.only_open_here() {
        return false;
    }
    let size = st.st_size as u64;
    let evicted = spares.borrow_mut().evict_larger_than(size);
    if let Some((evicted_key, evicted)) = evicted {
        // Its directory may be another: open it by its key.
        let key = OsStr::from_bytes(if evicted_key.is_empty() { b"." } else { &evicted_key });
        if let Ok(evicted_dir) = root.open_dir(key).await {
            let _ = evicted_dir.unlink(OsStr::from_bytes(&evicted.name)).await;
        }
    }
    let mut spares = spares.borrow_mut();
    if spares.full(size) || spares.closed {
        return false;
    }
    spares.count += 1;
    spares.bytes += size;
    let spare = Spare { name: name.to_vec(), file, size, mtime: (st.st_mtime, st.st_mtime_nsec as i64) };
    spares.by_dir.entry(key.to_vec()).or_default().push(spare);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_leave_most_descriptors_to_connections() {
        assert_eq!(spare_limit(1 << 20, 2), SPARES_MAX);
        assert_eq!(spare_limit(1024, 2), 64);
        assert_eq!(spare_limit(100, 1), 12);
        assert_eq!(spare_limit(0, 0), 0);
    }

    #[test]
    fn dir_keys() {
        assert_eq!(dir_key(b"a/b/c"), b"a/b/");
        assert_eq!(dir_key(b"c"), b"");
    }
}
