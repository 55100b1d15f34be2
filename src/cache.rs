//! A per-shard cache of small files' bytes, kept only because the benchmark
//! in BENCHMARKS.md shows it beats reading from the page cache.
//!
//! Consistency: after the owner shard commits a PUT or DELETE of a path, it
//! broadcasts an invalidation of that path to every shard and waits for all
//! of them before it answers, so a read that starts after the answer never
//! sees the old bytes. A read that misses takes the shard's invalidation
//! epoch first and inserts only if no invalidation happened meanwhile, so a
//! read racing a write cannot put old bytes back. Entries also expire after a
//! short TTL, which bounds how long a change made behind percore's back (an
//! edit in the data directory) can go unseen.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Files larger than this are not cached.
pub(crate) const FILE_BYTES_MAX: u64 = 64 * 1024;
/// How long an entry is trusted without looking at the file again.
pub(crate) const TTL: Duration = Duration::from_secs(2);

/// What a GET needs to answer from the cache.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) body: Bytes,
    pub(crate) etag: String,
    pub(crate) last_modified: String,
    pub(crate) modified_secs: u64,
    pub(crate) content_type: String,
    filled: Instant,
}

struct Cache {
    entries: HashMap<Vec<u8>, Entry>,
    /// Insertion order, for eviction (oldest first).
    order: VecDeque<Vec<u8>>,
    bytes: u64,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache { entries: HashMap::new(), order: VecDeque::new(), bytes: 0 });
    static EPOCH: Cell<u64> = const { Cell::new(0) };
    static BUDGET: Cell<u64> = const { Cell::new(0) };
}

/// Sets this shard's budget in bytes (0 turns the cache off).
pub(crate) fn configure(budget_bytes: u64) {
    BUDGET.with(|b| b.set(budget_bytes));
}

pub(crate) fn enabled() -> bool {
    BUDGET.with(Cell::get) > 0
}

/// The current invalidation epoch (take it before reading a file).
pub(crate) fn epoch() -> u64 {
    EPOCH.with(Cell::get)
}

/// A fresh entry for `path`, if cached.
pub(crate) fn get(path: &[u8]) -> Option<Entry> {
    CACHE.with(|c| {
        let c = c.borrow();
        let entry = c.entries.get(path)?;
        (entry.filled.elapsed() < TTL).then(|| entry.clone())
    })
}

/// Caches `body` for `path` unless an invalidation happened since `epoch`.
pub(crate) fn insert(
    path: &[u8],
    epoch: u64,
    body: Bytes,
    etag: String,
    last_modified: String,
    modified_secs: u64,
    content_type: String,
) {
    let budget = BUDGET.with(Cell::get);
    if budget == 0 || body.len() as u64 > FILE_BYTES_MAX || self::epoch() != epoch {
        return;
    }
    let entry = Entry { body, etag, last_modified, modified_secs, content_type, filled: Instant::now() };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let size = entry.body.len() as u64;
        if let Some(old) = c.entries.insert(path.to_vec(), entry) {
            c.bytes -= old.body.len() as u64;
            c.order.retain(|p| p != path);
        }
        c.bytes += size;
        c.order.push_back(path.to_vec());
        while c.bytes > budget {
            let Some(oldest) = c.order.pop_front() else { break };
            if let Some(evicted) = c.entries.remove(&oldest) {
                c.bytes -= evicted.body.len() as u64;
            }
        }
    });
}

/// Drops `path` from this shard's cache and moves the epoch on.
pub(crate) fn invalidate(path: &[u8]) {
    EPOCH.with(|e| e.set(e.get() + 1));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(old) = c.entries.remove(path) {
            c.bytes -= old.body.len() as u64;
            c.order.retain(|p| p != path);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &[u8], epoch: u64, len: usize) {
        insert(path, epoch, Bytes::from(vec![0; len]), "\"e\"".into(), "d".into(), 0, "t".into());
    }

    #[test]
    fn epochs_keep_racing_reads_out_and_the_budget_holds() {
        configure(10_000);
        let e = epoch();
        put(b"a", e, 100);
        assert!(get(b"a").is_some());
        // A read that began before an invalidation does not insert.
        let before = epoch();
        invalidate(b"a");
        assert!(get(b"a").is_none());
        put(b"a", before, 100);
        assert!(get(b"a").is_none(), "stale insert refused");
        // The oldest entries go when the budget is exceeded.
        let e = epoch();
        for i in 0..20u8 {
            put(&[i], e, 1000);
        }
        assert!(get(&[0]).is_none());
        assert!(get(&[19]).is_some());
        assert!(CACHE.with(|c| c.borrow().bytes) <= 10_000);
        configure(0);
        put(b"off", epoch(), 10);
        assert!(get(b"off").is_none());
    }
}
