//! A shard's state: what its connections and commits share (one value per
//! shard, no locks), the connection count that the balance and the metrics
//! read, and how work reaches a path's owner shard.
//!
//! Each shard's state is installed on its thread at start-up; work that
//! another shard sends through the mesh (a commit, a handed-over
//! connection, load news) finds it with [`current`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use percore_io::{BufRing, Pipe};

use crate::config::Config;
use crate::store::{Outcome, Store};

/// What a shard's connections share (shard-local, no locks).
pub(crate) struct Shard {
    pub(crate) config: Config,
    /// This shard's own TLS config (its keys, its ticketer), when HTTPS
    /// listens; replaced when certificates reload or ticket keys rotate.
    pub(crate) tls: RefCell<Option<Arc<rustls::ServerConfig>>>,
    /// The shard's file store (data directory, commits, spares).
    pub(crate) store: Store,
    pub(crate) connections: Cell<usize>,
    /// What this shard knows of the others' loads (`crate::balance`).
    pub(crate) balance: Rc<crate::balance::Balance>,
    /// Receive buffers for every connection of the shard.
    pub(crate) ring: BufRing,
    /// Pipes for zero-copy file sends, reused between responses.
    pub(crate) pipes: RefCell<Vec<Pipe>>,
    /// Set when the daemon drains before a stop.
    pub(crate) draining: Draining,
    /// Warnings about peers that did not answer a listing, rate-limited
    /// (a node that is down would otherwise log one per listing).
    pub(crate) peer_warnings: crate::throttle::Throttle,
    /// Large directories' sorted entries, kept between a listing's pages.
    pub(crate) listings: crate::listing::kept::Kept,
    /// The S3 API's per-shard state (signing keys, request ids).
    pub(crate) s3: crate::s3::state::ShardState,
}

impl Shard {
    /// True while the daemon drains before stopping, or once it stops.
    pub(crate) fn draining(&self) -> bool {
        self.draining.is_set() || percore_cores::is_stopping()
    }

    /// This shard's gauges, for the metrics.
    pub(crate) fn gauges(&self) -> crate::metrics::Gauges {
        let store = self.store.gauges();
        crate::metrics::Gauges {
            open: self.connections.get(),
            active: self.balance.active(),
            handed_out: self.balance.handed_out.get(),
            handed_in: self.balance.handed_in.get(),
            moved_out: self.balance.moved_out.get(),
            moved_in: self.balance.moved_in.get(),
            commits: store.commits,
            invalidations: store.invalidations,
            spare_files: store.spares.0,
            spare_files_max: store.spares.1,
            listings: self.listings.counts(),
        }
    }
}

/// Set once when a stop signal arrives and `--drain-ms` is set: `/health`
/// answers 503 "draining" while the shards go on serving. One flag for the
/// whole daemon (made at start, a clone given to every shard and to the
/// signal thread): control plane only.
#[derive(Clone, Debug, Default)]
pub(crate) struct Draining(Arc<AtomicBool>);

impl Draining {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One open connection, counted in `Shard::connections` while it lives.
pub(crate) struct Counted(Rc<Shard>);

impl Counted {
    pub(crate) fn new(shard: &Rc<Shard>) -> Counted {
        shard.connections.set(shard.connections.get() + 1);
        shard.balance.changed();
        Counted(shard.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.balance.changed();
    }
}

thread_local! {
    /// This shard's state, for work that other shards send here.
    static SHARD: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

/// Makes `shard` this thread's state (once, at start-up).
pub(crate) fn install(shard: Rc<Shard>) {
    SHARD.with(|s| *s.borrow_mut() = Some(shard));
}

/// This thread's shard state, if it has one yet (a shard whose set-up
/// failed never has; work sent to it then is dropped).
pub(crate) fn try_current() -> Option<Rc<Shard>> {
    SHARD.with(|s| s.borrow().clone())
}

/// Runs `commit` on the shard that owns `path` (`percore_cores::shard_for`),
/// handing it that shard's state. If the owner is gone (a stop past its
/// grace) the outcome is `Failed(Interrupted)`, and the commit never ran.
pub(crate) async fn on_owner<F, Fut>(path: &[u8], commit: F) -> Outcome
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + 'static,
{
    let owner = percore_cores::shard_for(path, percore_cores::current().count);
    let run = move || async move {
        match try_current() {
            Some(shard) => commit(shard).await,
            None => Outcome::Failed(std::io::ErrorKind::Interrupted, "the owner shard is not running".into()),
        }
    };
    match percore_cores::spawn_on(owner, run).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Failed(std::io::ErrorKind::Interrupted, err.to_string()),
    }
}
