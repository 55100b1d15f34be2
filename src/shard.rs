//! A shard's state: what its connections and commits share (one value per
//! shard, no locks), and the connection count that the balance and the
//! metrics read.
//!
//! Each shard's state is installed on its thread at start-up; work that
//! another shard sends through the mesh (a commit, a handed-over
//! connection, load news) finds it with [`current`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use percore_io::{BufRing, Dir, Pipe};

use crate::config::Config;

/// What a shard's connections share (shard-local, no locks).
pub(crate) struct Shard {
    pub(crate) config: Config,
    pub(crate) root: Dir,
    /// The device on which uploads are written back rather than
    /// fdatasynced (`store::write_back_device`).
    pub(crate) write_back_dev: Option<u64>,
    pub(crate) connections: Cell<usize>,
    /// What this shard knows of the others' loads (`crate::balance`).
    pub(crate) balance: Rc<crate::balance::Balance>,
    /// Receive buffers for every connection of the shard.
    pub(crate) ring: BufRing,
    /// Pipes for zero-copy file sends, reused between responses.
    pub(crate) pipes: RefCell<Vec<Pipe>>,
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

/// This thread's shard state.
///
/// # Panics
/// On a thread that is not a started shard.
pub(crate) fn current() -> Rc<Shard> {
    SHARD.with(|s| s.borrow().clone().expect("shard state installed on every shard"))
}

/// This thread's shard state, if it has one yet (a shard whose set-up
/// failed never has; work sent to it then is dropped).
pub(crate) fn try_current() -> Option<Rc<Shard>> {
    SHARD.with(|s| s.borrow().clone())
}

/// This shard's connection counts (for the metrics).
pub(crate) fn connections() -> crate::metrics::Connections {
    SHARD.with(|s| {
        s.borrow().as_ref().map_or(Default::default(), |shard| crate::metrics::Connections {
            open: shard.connections.get(),
            handed_out: shard.balance.handed_out.get(),
            handed_in: shard.balance.handed_in.get(),
        })
    })
}

/// Awaits `future`, unless the shard starts stopping first (`None`): for
/// waits that a stop should end (an idle connection, the load news).
pub(crate) async fn stopping_or<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut stopping = std::pin::pin!(percore_cores::stopping());
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(output));
        }
        stopping.as_mut().poll(cx).map(|()| None)
    })
    .await
}
