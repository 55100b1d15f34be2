//! A directory of a bucket as a listing walks it: its entries in the
//! order of the keys under them (a directory sorts as its name followed by
//! `/`), kept by the shard between pages when the directory is large
//! (`listing::kept`), and where in them a page begins.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::time::SystemTime;

use percore_io::Dir;

use crate::files::TEMP_PREFIX;
use crate::listing::kept::{Kept, Sorted, Version};

pub(super) struct Frame {
    pub(super) dir: Dir,
    /// The directory's keys' common start (`a/b/`; empty at the bucket).
    pub(super) at: Vec<u8>,
    /// Entries by sort name (`Sorted::Keys`): (sort name, is a directory,
    /// name); kept by the shard for the next page if the directory is large.
    entries: Rc<Sorted>,
    pub(super) next: usize,
}

impl Frame {
    pub(super) fn entries(&self) -> &[(Vec<u8>, bool, Vec<u8>)] {
        match &*self.entries {
            Sorted::Keys(keys) => keys,
            Sorted::Names(_) => unreachable!("an S3 frame holds keys"),
        }
    }
}

/// The frame of `dir`, whose keys start with `at`, from the first entry
/// that can hold a key from `prefix` after `after` (`first_listed`).
pub(super) async fn frame(
    dir: Dir,
    at: Vec<u8>,
    prefix: &[u8],
    after: Option<&[u8]>,
    kept: &Kept,
) -> std::io::Result<Frame> {
    let read_at = SystemTime::now();
    let version = Version::of(&dir.metadata().await?);
    let entries = match kept.get(version, false) {
        Some(entries) => entries,
        None => {
            let sorted = Rc::new(Sorted::Keys(sorted_keys(&dir).await?));
            kept.keep(version, &sorted, read_at);
            sorted
        }
    };
    let mut frame = Frame { dir, at, entries, next: 0 };
    frame.next = first_listed(frame.entries(), &frame.at, prefix, after);
    Ok(frame)
}

/// The entries of `dir` by sort name (temporary files, symlinks and
/// anything but files and directories left out).
async fn sorted_keys(dir: &Dir) -> std::io::Result<Vec<(Vec<u8>, bool, Vec<u8>)>> {
    let mut entries = Vec::new();
    for entry in dir.read_dir_yielding().await? {
        let name = entry.name.as_bytes().to_vec();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let is_dir = match entry.kind {
            Some(percore_io::FileKind::Dir) => true,
            Some(percore_io::FileKind::File) => false,
            Some(percore_io::FileKind::Symlink | percore_io::FileKind::Other) => continue,
            None => match dir.stat(OsStr::from_bytes(&name)).await {
                Ok(meta) if meta.is_dir() => true,
                Ok(meta) if meta.is_file() => false,
                _ => continue,
            },
        };
        let mut sort = name.clone();
        if is_dir {
            sort.push(b'/');
        }
        entries.push((sort, is_dir, name));
    }
    entries.sort_unstable();
    Ok(entries)
}

/// The first of a directory's `entries` (its keys start with `at`) that
/// can hold a key from `prefix` after `after`: those before it hold only
/// keys before the prefix or at or before the start key (a directory whose keys the
/// prefix or the start key lies among is not one of them). The entries
/// skipped form a run from the first (sorted, each such set is), so a
/// page deep into a large directory does not step over the ones before.
fn first_listed(entries: &[(Vec<u8>, bool, Vec<u8>)], at: &[u8], prefix: &[u8], after: Option<&[u8]>) -> usize {
    entries.partition_point(|(sort, is_dir, _)| {
        let full = [at, sort].concat();
        let within = |bound: &[u8]| *is_dir && bound.starts_with(&full);
        (full.as_slice() < prefix && !within(prefix)) || after.is_some_and(|a| full.as_slice() <= a && !within(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_begins_at_the_first_entry_that_can_hold_one_of_its_keys() {
        let entries: Vec<(Vec<u8>, bool, Vec<u8>)> =
            [("a-c", false), ("a/", true), ("a0", false), ("b/", true), ("c", false)]
                .iter()
                .map(|(sort, dir)| (sort.as_bytes().to_vec(), *dir, sort.trim_end_matches('/').as_bytes().to_vec()))
                .collect();
        let first = |at: &str, prefix: &str, after: Option<&str>| {
            first_listed(&entries, at.as_bytes(), prefix.as_bytes(), after.map(str::as_bytes))
        };
        assert_eq!(first("", "", None), 0);
        assert_eq!(first("", "a/", None), 1, "the prefix lies in a/");
        assert_eq!(first("", "a/x/y", None), 1);
        assert_eq!(first("", "a0", None), 2);
        assert_eq!(first("", "", Some("a/x")), 1, "the start key lies in a/");
        assert_eq!(first("", "", Some("a/")), 1, "keys under a/ sort after a/ itself");
        assert_eq!(first("", "", Some("a0")), 3);
        assert_eq!(first("", "", Some("b")), 3, "b/ sorts after b");
        assert_eq!(first("", "", Some("b0")), 4);
        assert_eq!(first("", "", Some("c")), 5);
        assert_eq!(first("", "b", Some("a-c")), 3, "the later of the two bounds");
        // Under a directory, keys are `at` followed by the entry.
        assert_eq!(first("x/", "x/a0", None), 2);
        assert_eq!(first("x/", "", Some("x/c")), 5);
        assert_eq!(first("x/", "", Some("w")), 0);
    }
}
