//! Directories' sorted entries, kept by a shard between the pages of a
//! listing. A listing reads its directory whole to sort it (file systems
//! return entries in hash order), so paging through a directory of N
//! entries read and sorted it once per page: O(N²) for the whole listing.
//! Measured before this existed (2-vCPU VM, ListObjectsV2 pages of 1,000):
//! 24 ms of server CPU a page with 10,000 keys, 162 ms with 100,000.
//!
//! A directory's entries are kept while it is unchanged: the same inode
//! with the same modification and change times. Adding, removing or
//! renaming an entry sets both, whoever does it (any shard, or a process
//! behind the daemon's back); its times are read before its entries, so a
//! change between the two is seen on the next page. File systems stamp
//! those times from a coarse clock, so a second change in the same tick
//! as the read could leave them as they were read: a directory changed
//! less than [`SETTLED`] before it was read is not kept.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use percore_io::Metadata;

/// How long before a read a directory must have last changed to be kept
/// (coarse file-system clocks tick every 1-10 ms).
const SETTLED: Duration = Duration::from_secs(1);

/// Directories with fewer entries are read again each time (a few
/// milliseconds at most).
const ENTRIES_MIN: usize = 2_000;

/// Directories kept at most, and the most bytes their entries take, per
/// shard (the least recently used goes first).
const KEPT_MAX: usize = 16;
const BYTES_MAX: usize = 64 << 20;

/// A directory's version: what a change of its entries changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    dev: (u32, u32),
    ino: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
}

impl Version {
    pub(crate) fn of(meta: &Metadata) -> Version {
        Version { dev: meta.dev, ino: meta.ino, mtime: meta.mtime, ctime: meta.ctime }
    }

    /// Whether its last change came at least [`SETTLED`] before `read_at`.
    fn settled(&self, read_at: SystemTime) -> bool {
        let Some(limit) = read_at.checked_sub(SETTLED).and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        else {
            return false;
        };
        let before = |(secs, nanos): (i64, u32)| u64::try_from(secs).is_ok_and(|s| Duration::new(s, nanos) < limit);
        before(self.mtime) && before(self.ctime)
    }
}

/// A directory's entries, sorted for one kind of listing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sorted {
    /// `/files/`: names, in byte order.
    Names(Vec<Vec<u8>>),
    /// S3: (sort key: the name, with `/` after a directory's; is a
    /// directory; name), by sort key.
    Keys(Vec<(Vec<u8>, bool, Vec<u8>)>),
}

impl Sorted {
    fn len(&self) -> usize {
        match self {
            Sorted::Names(names) => names.len(),
            Sorted::Keys(keys) => keys.len(),
        }
    }

    /// About the heap bytes it takes.
    fn bytes(&self) -> usize {
        const VEC: usize = std::mem::size_of::<Vec<u8>>();
        match self {
            Sorted::Names(names) => names.iter().map(|n| n.capacity() + VEC).sum(),
            Sorted::Keys(keys) => keys.iter().map(|(s, _, n)| s.capacity() + n.capacity() + 2 * VEC + 8).sum(),
        }
    }

    fn same_kind(&self, other: &Sorted) -> bool {
        matches!((self, other), (Sorted::Names(_), Sorted::Names(_)) | (Sorted::Keys(_), Sorted::Keys(_)))
    }
}

struct Entry {
    version: Version,
    sorted: Rc<Sorted>,
    bytes: usize,
    /// When it was last used (a count of uses), for eviction.
    used: u64,
}

/// A shard's kept directories.
#[derive(Default)]
pub(crate) struct Kept {
    entries: RefCell<Vec<Entry>>,
    uses: Cell<u64>,
    /// Directories read whole, and reads spared by kept entries (metrics).
    reads: Cell<u64>,
    spared: Cell<u64>,
}

impl Kept {
    /// The kept entries of the directory at `version`, of the kind of
    /// listing `names` (true: `/files/`; false: S3) asks for.
    pub(crate) fn get(&self, version: Version, names: bool) -> Option<Rc<Sorted>> {
        let mut entries = self.entries.borrow_mut();
        let found =
            entries.iter_mut().find(|e| e.version == version && matches!(*e.sorted, Sorted::Names(_)) == names)?;
        self.uses.set(self.uses.get() + 1);
        self.spared.set(self.spared.get() + 1);
        found.used = self.uses.get();
        Some(found.sorted.clone())
    }

    /// Keeps `sorted`, read from the directory at `version` (its times
    /// read just before `read_at`), if it is large and settled enough;
    /// replaces what was kept of the same directory for the same kind of
    /// listing.
    pub(crate) fn keep(&self, version: Version, sorted: &Rc<Sorted>, read_at: SystemTime) {
        self.reads.set(self.reads.get() + 1);
        let bytes = sorted.bytes();
        if sorted.len() < ENTRIES_MIN || bytes > BYTES_MAX || !version.settled(read_at) {
            return;
        }
        let mut entries = self.entries.borrow_mut();
        entries
            .retain(|e| !(e.version.dev == version.dev && e.version.ino == version.ino && e.sorted.same_kind(sorted)));
        while entries.len() >= KEPT_MAX || entries.iter().map(|e| e.bytes).sum::<usize>() + bytes > BYTES_MAX {
            let oldest = entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i);
            match oldest {
                Some(i) => entries.swap_remove(i),
                None => break,
            };
        }
        self.uses.set(self.uses.get() + 1);
        entries.push(Entry { version, sorted: sorted.clone(), bytes, used: self.uses.get() });
    }
}

impl Kept {
    /// (directories read whole for a listing, reads spared by kept entries)
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.reads.get(), self.spared.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(ino: u64, changed: i64) -> Version {
        Version { dev: (8, 1), ino, mtime: (changed, 5), ctime: (changed, 7) }
    }

    fn names(n: usize, tag: u8) -> Rc<Sorted> {
        Rc::new(Sorted::Names((0..n).map(|i| format!("{tag}-{i:06}").into_bytes()).collect()))
    }

    #[test]
    fn kept_while_unchanged_settled_and_large() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let kept = Kept::default();
        let old = version(1, 999_990);
        kept.keep(old, &names(ENTRIES_MIN, 1), now);
        assert!(kept.get(old, true).is_some(), "kept");
        assert!(kept.get(old, false).is_none(), "for /files/ only");
        let changed = Version { ctime: (999_995, 0), ..old };
        assert!(kept.get(changed, true).is_none(), "a change of its times is another version");
        // Changed within a second of the read: not kept.
        let racy = version(2, 999_999);
        kept.keep(racy, &names(ENTRIES_MIN, 2), now);
        assert!(kept.get(racy, true).is_none());
        // Small: not kept.
        let small = version(3, 1);
        kept.keep(small, &names(ENTRIES_MIN - 1, 3), now);
        assert!(kept.get(small, true).is_none());
        // A newer version replaces the older one of the same directory.
        kept.keep(changed, &names(ENTRIES_MIN, 4), now);
        assert!(kept.get(old, true).is_none() && kept.get(changed, true).is_some());
        // At most KEPT_MAX: the least recently used goes.
        for ino in 10..10 + KEPT_MAX as u64 {
            kept.get(changed, true);
            kept.keep(version(ino, 1), &names(ENTRIES_MIN, 5), now);
        }
        assert!(kept.get(changed, true).is_some(), "used recently, kept");
        assert!(kept.get(version(10, 1), true).is_none(), "the least recently used went");
        assert_eq!(kept.entries.borrow().len(), KEPT_MAX);
        assert_eq!(kept.counts(), (4 + KEPT_MAX as u64, 3 + KEPT_MAX as u64));
    }
}
