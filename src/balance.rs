//! Balancing connections over shards.
//!
//! The kernel spreads new connections over the shards' `SO_REUSEPORT`
//! listeners by a hash of their addresses: with few connections that is a
//! lottery (16 connections on 8 shards left two shards with none and the
//! busiest with 2.1× the mean share). So the shard that accepts a connection
//! may hand it to a less loaded one: the socket's descriptor travels over
//! the mesh (`percore_cores::post`) before a byte of it is read, and the
//! target serves it as if it had accepted it. Nothing is read or written on
//! the socket before it moves, so the client sees nothing.
//!
//! Each shard knows the others' loads only from what they told it: a shard
//! whose number of open connections changed posts the new number to every
//! other shard, at most once per [`GOSSIP_INTERVAL`] (the first change after
//! a quiet spell goes out at once). Between two pieces of news a shard
//! counts the connections it handed to a peer into its view of that peer, so
//! a burst of accepts does not pile onto one target. Cores still share
//! nothing but channels.
//!
//! Rule: a shard keeps a new connection unless that would leave it
//! [`HANDOFF_GAP`] or more connections above the least loaded shard it knows
//! of; then the connection goes to that shard (ties go round the shards, so
//! several busy shards do not all pick the same one). A handed connection is
//! not handed again on arrival.
//!
//! Connections already open drift out of balance too: those of one shard
//! close and the others' stay. So a plain HTTP connection that has just
//! been answered and waits for its next request moves (the same way, with
//! whatever bytes of the next request had already arrived) when its shard
//! has [`HANDOFF_GAP`] or more connections above the least loaded one: at
//! most one such move per shard per [`MOVE_INTERVAL`], so that each move's
//! news can arrive before the next. After a move the target is at most
//! level with the shard it came from: no connection moves back and forth.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use percore_io::Notify;

/// Most often a shard tells the others its connection count. Connection
/// churn (a new connection per request) would otherwise cost a message to
/// every other shard per accept and per close.
pub(crate) const GOSSIP_INTERVAL: Duration = Duration::from_millis(1);

/// How many connections above the least loaded shard a shard may go before
/// it hands a new connection over. 2 keeps every shard within one
/// connection of every other (as far as the news is fresh), and keeps a
/// shard from handing its only connection over.
pub(crate) const HANDOFF_GAP: usize = 2;

/// Least time between two moves of open connections by one shard.
pub(crate) const MOVE_INTERVAL: Duration = GOSSIP_INTERVAL;

/// One shard's view of the others' loads and its own handover counts.
pub(crate) struct Balance {
    me: usize,
    /// The last count each shard told us (our own entry is unused), plus the
    /// connections we handed it since.
    view: RefCell<Vec<usize>>,
    /// Where the next search for the least loaded shard starts (ties).
    next: Cell<usize>,
    /// Set when this shard's connection count changes.
    changed: Notify,
    /// Connections this shard accepted and handed to another shard.
    pub(crate) handed_out: Cell<u64>,
    /// Connections another shard accepted and handed to this one.
    pub(crate) handed_in: Cell<u64>,
    /// Open connections this shard moved to another, between requests.
    pub(crate) moved_out: Cell<u64>,
    /// Open connections another shard moved to this one.
    pub(crate) moved_in: Cell<u64>,
    /// When this shard last moved an open connection.
    last_move: Cell<Option<Instant>>,
}

impl Balance {
    pub(crate) fn new(me: usize, shards: usize) -> Balance {
        Balance {
            me,
            view: RefCell::new(vec![0; shards]),
            next: Cell::new(me + 1),
            changed: Notify::new(),
            handed_out: Cell::new(0),
            handed_in: Cell::new(0),
            moved_out: Cell::new(0),
            moved_in: Cell::new(0),
            last_move: Cell::new(None),
        }
    }

    /// Where an open connection of this shard, idle between requests,
    /// should go: `None` to stay. `own` is this shard's open connections,
    /// that one included; `now` the clock.
    pub(crate) fn move_target(&self, own: usize, now: Instant) -> Option<usize> {
        if self.last_move.get().is_some_and(|last| now.duration_since(last) < MOVE_INTERVAL) {
            return None;
        }
        // The same rule as a new connection's, as if this one were new.
        let to = self.least_loaded(own.checked_sub(1)?)?;
        self.last_move.set(Some(now));
        self.moved_out.set(self.moved_out.get() + 1);
        Some(to)
    }

    /// Where a connection just accepted here should be served: `None` for
    /// here, or the shard to hand it to. `own` is this shard's open
    /// connections before this one.
    pub(crate) fn target(&self, own: usize) -> Option<usize> {
        let to = self.least_loaded(own)?;
        self.handed_out.set(self.handed_out.get() + 1);
        Some(to)
    }

    /// The shard a connection goes to under the rule (its view then counts
    /// the connection), or `None`. `own`: this shard's connections without
    /// it.
    fn least_loaded(&self, own: usize) -> Option<usize> {
        let view = self.view.borrow();
        let shards = view.len();
        let start = self.next.get();
        let (mut best, mut least) = (None, usize::MAX);
        for i in 0..shards {
            let shard = (start + i) % shards;
            if shard != self.me && view[shard] < least {
                (best, least) = (Some(shard), view[shard]);
            }
        }
        let best = best?;
        if own + 1 < least + HANDOFF_GAP {
            return None;
        }
        drop(view);
        self.view.borrow_mut()[best] += 1;
        self.next.set(best + 1);
        Some(best)
    }

    /// News from shard `from`: it has `count` open connections.
    pub(crate) fn heard(&self, from: usize, count: usize) {
        if let Some(entry) = self.view.borrow_mut().get_mut(from) {
            *entry = count;
        }
    }

    /// This shard's connection count changed (opened or closed).
    pub(crate) fn changed(&self) {
        self.changed.notify();
    }

    /// What this shard believes every shard's load is (for tests).
    #[cfg(test)]
    fn view(&self) -> Vec<usize> {
        self.view.borrow().clone()
    }
}

/// Tells the other shards this shard's connection count whenever it changes,
/// at most once per [`GOSSIP_INTERVAL`], until the shard stops. `count` reads
/// the count; `heard` is what the message runs on the receiving shard.
pub(crate) async fn gossip(balance: Rc<Balance>, count: impl Fn() -> usize, heard: fn(usize, usize)) {
    let shards = balance.view.borrow().len();
    if shards < 2 {
        return;
    }
    let me = balance.me;
    let mut told = 0;
    loop {
        let changed = std::pin::pin!(balance.changed.notified());
        if percore_cores::unless_stopping(changed).await.is_none() {
            return;
        }
        let now = count();
        if now != told {
            for shard in (0..shards).filter(|&s| s != me) {
                // A stopped shard needs no news.
                let _ = percore_cores::post(shard, move || heard(me, now));
            }
            told = now;
        }
        percore_io::time::sleep(GOSSIP_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_connections_until_the_gap_then_hands_to_the_least_loaded() {
        let b = Balance::new(0, 3);
        assert_eq!(b.target(0), None, "an idle shard keeps its first connection");
        b.heard(1, 1);
        b.heard(2, 0);
        assert_eq!(b.target(1), Some(2), "2 would be 2 above shard 2's 0");
        assert_eq!(b.view(), vec![0, 1, 1], "the handed connection is counted at once");
        assert_eq!(b.target(1), None, "now within one of every shard");
        assert_eq!(b.target(2), Some(1), "ties go round: shard 1 next");
        assert_eq!(b.handed_out.get(), 2);
    }

    #[test]
    fn a_burst_of_accepts_spreads_over_every_shard() {
        // Shard 0 accepts 16 connections before any news arrives: it keeps
        // its share and the rest go round the others.
        let b = Balance::new(0, 8);
        let mut own = 0;
        for _ in 0..16 {
            if b.target(own).is_none() {
                own += 1;
            }
        }
        let mut view = b.view();
        view[0] = own;
        assert!(view.iter().all(|&n| n == 2), "{view:?}");
    }

    #[test]
    fn open_connections_move_until_level_at_most_one_per_interval() {
        let b = Balance::new(0, 2);
        let t0 = Instant::now();
        b.heard(1, 2);
        assert_eq!(b.move_target(3, t0), None, "3 against 2: moving one would only swap the excess");
        assert_eq!(b.move_target(4, t0), Some(1), "4 against 2");
        assert_eq!(b.view(), vec![0, 3]);
        assert_eq!(b.move_target(3, t0), None, "3 against 3");
        b.heard(1, 0);
        assert_eq!(b.move_target(3, t0), None, "within the interval since the last move");
        assert_eq!(b.move_target(3, t0 + MOVE_INTERVAL), Some(1));
        assert_eq!(b.move_target(1, t0 + 3 * MOVE_INTERVAL), None, "a shard's only connection stays");
        assert_eq!((b.moved_out.get(), b.handed_out.get()), (2, 0));
    }

    #[test]
    fn one_shard_never_hands_over() {
        let b = Balance::new(0, 1);
        assert_eq!(b.target(100), None);
    }
}
