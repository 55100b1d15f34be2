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
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Files larger than this are not cached.
pub(crate) const FILE_BYTES_MAX: u64 = 64 * 1024;
/// How long an entry is trusted without looking at the file again.
pub(crate) const TTL: Duration = Duration::from_secs(2);

/// What an entry is made of, read from the file (see [`Entry`]).
pub(crate) struct Fill {
    pub(crate) body: Bytes,
    pub(crate) etag: String,
    pub(crate) last_modified: String,
    pub(crate) modified_secs: u64,
    pub(crate) content_type: String,
    pub(crate) s3: Option<crate::s3::meta::ObjectMeta>,
}

/// What a GET needs to answer from the cache. Shared (`Rc`), not copied,
/// by the cache and every answer from it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) body: Bytes,
    pub(crate) etag: String,
    pub(crate) last_modified: String,
    pub(crate) modified_secs: u64,
    pub(crate) content_type: String,
    /// What S3 stored with the object (its MD5 ETag, headers), if current
    /// (`s3::meta`): an S3 GET answers from the entry too.
    pub(crate) s3: Option<crate::s3::meta::ObjectMeta>,
    /// The whole 200 answer to a kept-alive GET (head and body), with the
    /// `Date` second it was rendered for: [`Entry::whole_answer`].
    rendered: crate::rendered::Rendered,
    /// The same for the S3 API (its ETag and stored headers).
    rendered_s3: crate::rendered::Rendered,
    filled: Instant,
}

/// A cached entry and which insertion of its path it is (matches its place
/// in `order`).
struct Kept {
    entry: Rc<Entry>,
    generation: u64,
}

struct Cache {
    /// Hashed with foldhash (randomly seeded): SipHash was a tenth of a
    /// cached GET's user time.
    entries: HashMap<Vec<u8>, Kept, foldhash::fast::RandomState>,
    /// Insertion order, for eviction (oldest first). A path re-inserted or
    /// invalidated leaves a stale item behind (its generation no longer the
    /// entry's), skipped when popped and dropped by an occasional compaction,
    /// so that insertions and invalidations stay O(1) however many entries
    /// the cache holds.
    order: VecDeque<(Vec<u8>, u64)>,
    bytes: u64,
    generations: u64,
}

impl Cache {
    /// Whether `item` of `order` is its path's current entry.
    fn current(&self, (path, generation): &(Vec<u8>, u64)) -> bool {
        self.entries.get(path).is_some_and(|kept| kept.generation == *generation)
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        entries: HashMap::default(),
        order: VecDeque::new(),
        bytes: 0,
        generations: 0,
    });
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

/// Bodies up to this size also keep their whole rendered answer
/// ([`Entry::whole_answer`]); they count twice against the budget.
pub(crate) const RENDERED_BYTES_MAX: usize = 16 * 1024;

impl Entry {
    /// The entry's whole answer for the current `Date` second: rendered by
    /// `render` at the first request of each second, then the same bytes
    /// (shared, not copied) for every request in that second.
    pub(crate) fn whole_answer(&self, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.rendered.get(render)
    }

    /// [`Entry::whole_answer`] for the S3 API.
    pub(crate) fn whole_s3_answer(&self, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.rendered_s3.get(render)
    }

    /// What the entry counts against the budget: its body, and each answer
    /// that may be rendered from it (an S3 object's for either API).
    fn cost(&self) -> u64 {
        let body = self.body.len() as u64;
        match (self.body.len() <= RENDERED_BYTES_MAX, self.s3.is_some()) {
            (false, _) => body,
            (true, false) => 2 * body,
            (true, true) => 3 * body,
        }
    }
}

/// A fresh entry for `path`, if cached.
pub(crate) fn get(path: &[u8]) -> Option<Rc<Entry>> {
    CACHE.with(|c| {
        let c = c.borrow();
        let entry = &c.entries.get(path)?.entry;
        (percore_io::time::loop_now().saturating_duration_since(entry.filled) < TTL).then(|| entry.clone())
    })
}

/// Caches `body` for `path` unless an invalidation happened since `epoch`;
/// returns the entry either way, for the caller to answer from.
pub(crate) fn insert(path: &[u8], epoch: u64, fill: Fill) -> Rc<Entry> {
    let Fill { body, etag, last_modified, modified_secs, content_type, s3 } = fill;
    let entry = Rc::new(Entry {
        body,
        etag,
        last_modified,
        modified_secs,
        content_type,
        s3,
        rendered: Default::default(),
        rendered_s3: Default::default(),
        filled: percore_io::time::loop_now(),
    });
    let budget = BUDGET.with(Cell::get);
    if budget == 0 || entry.body.len() as u64 > FILE_BYTES_MAX || self::epoch() != epoch {
        return entry;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.generations += 1;
        let kept = Kept { entry: entry.clone(), generation: c.generations };
        let size = entry.cost();
        if let Some(old) = c.entries.insert(path.to_vec(), kept) {
            c.bytes -= old.entry.cost();
        }
        c.bytes += size;
        let generation = c.generations;
        c.order.push_back((path.to_vec(), generation));
        while c.bytes > budget {
            let Some(oldest) = c.order.pop_front() else { break };
            if c.current(&oldest) {
                let evicted = c.entries.remove(&oldest.0).expect("a current item has its entry");
                c.bytes -= evicted.entry.cost();
            }
        }
        // Stale items at most about as many as live ones: amortised O(1).
        if c.order.len() > 2 * c.entries.len() + 64 {
            let order = std::mem::take(&mut c.order);
            c.order = order.into_iter().filter(|item| c.current(item)).collect();
        }
    });
    entry
}

/// Drops `path` from this shard's cache and moves the epoch on.
pub(crate) fn invalidate(path: &[u8]) {
    EPOCH.with(|e| e.set(e.get() + 1));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(old) = c.entries.remove(path) {
            // Its item in `order` is now stale.
            c.bytes -= old.entry.cost();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &[u8], epoch: u64, len: usize) {
        let fill = Fill {
            body: Bytes::from(vec![0; len]),
            etag: "\"e\"".into(),
            last_modified: "d".into(),
            modified_secs: 0,
            content_type: "t".into(),
            s3: None,
        };
        insert(path, epoch, fill);
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

    #[test]
    fn reinsertions_and_invalidations_leave_order_bounded_and_evict_oldest_first() {
        // Room for 10 entries of 1,000 bytes (each counted twice: body and
        // rendered answer).
        configure(10 * 2000);
        for round in 0..1000u32 {
            for key in 0..8u8 {
                put(&[b'k', key], epoch(), 1000);
            }
            invalidate(&[b'k', (round % 8) as u8]);
        }
        CACHE.with(|c| {
            let c = c.borrow();
            assert!(
                c.order.len() <= 2 * c.entries.len() + 64,
                "{} items for {} entries",
                c.order.len(),
                c.entries.len()
            );
            assert_eq!(c.bytes, c.entries.values().map(|kept| kept.entry.cost()).sum::<u64>());
        });
        // Within budget (10 entries): inserting 3 more evicts the
        // 3 least recently inserted, whatever stale items sit before them.
        let e = epoch();
        for key in 0..8u8 {
            put(&[b'k', key], e, 1000);
        }
        for key in 0..3u8 {
            put(&[b'n', key], e, 1000);
        }
        let present: Vec<bool> = (0..8u8).map(|key| get(&[b'k', key]).is_some()).collect();
        assert_eq!(present, [false, true, true, true, true, true, true, true]);
        assert!((0..3u8).all(|key| get(&[b'n', key]).is_some()));
        configure(0);
    }
}
