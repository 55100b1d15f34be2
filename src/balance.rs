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
//! Connections already open drift out of balance too: one shard's clients
//! leave and the others' stay, or one shard's connections are busy while
//! another's idle. What matters there is the *active* connections: those
//! that were answered within the last [`ACTIVE_WINDOW`] (idle ones cost
//! nothing wherever they are). Each shard counts its own, distinct
//! connections per window, and tells the others with its connection count.
//! A plain HTTP connection that has just been answered and waits for its
//! next request moves (the same way, with whatever bytes of its next
//! request had already arrived) when its shard has [`HANDOFF_GAP`] or more
//! active connections above the shard with the fewest: at most one move
//! per shard per [`MOVE_INTERVAL`], so that each move's news can arrive
//! before the next. After a move the target is at most level with the
//! shard it came from, so no connection moves back and forth; idle
//! connections never move (they have no request to end), so they cannot
//! tip the rule either.

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

/// A connection answered within this long counts as active (the window
/// over which each shard counts its distinct active connections).
pub(crate) const ACTIVE_WINDOW: Duration = Duration::from_millis(10);

/// What a shard tells the others of its load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Load {
    /// Open connections.
    pub(crate) open: usize,
    /// Connections answered within the last [`ACTIVE_WINDOW`].
    pub(crate) active: usize,
}

/// One shard's view of the others' loads and its own handover counts.
pub(crate) struct Balance {
    me: usize,
    /// The last load each shard told us (our own entry is unused), plus the
    /// connections we handed or moved to it since.
    view: RefCell<Vec<Load>>,
    /// Where the next search for the least loaded shard starts (ties).
    next: Cell<usize>,
    /// Set when this shard's load changes.
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
    /// The current activity window's number (connections remember the
    /// window in which they were last counted; 0 is never current).
    window: Cell<u64>,
    /// Distinct connections answered in the current window, and in the
    /// last whole one.
    active_now: Cell<usize>,
    active_last: Cell<usize>,
    /// Wakes the window's clock after a quiet spell ([`windows`]).
    woken: Notify,
}

impl Balance {
    pub(crate) fn new(me: usize, shards: usize) -> Balance {
        Balance {
            me,
            view: RefCell::new(vec![Load::default(); shards]),
            next: Cell::new(me + 1),
            changed: Notify::new(),
            handed_out: Cell::new(0),
            handed_in: Cell::new(0),
            moved_out: Cell::new(0),
            moved_in: Cell::new(0),
            last_move: Cell::new(None),
            window: Cell::new(1),
            active_now: Cell::new(0),
            active_last: Cell::new(0),
            woken: Notify::new(),
        }
    }

    /// A connection was answered; `seen` is the window it was last counted
    /// in (its own, starting at 0), updated here.
    pub(crate) fn answered(&self, seen: &mut u64) {
        let window = self.window.get();
        if *seen != window {
            *seen = window;
            self.active_now.set(self.active_now.get() + 1);
            if self.active_now.get() == 1 && self.active_last.get() == 0 {
                self.woken.notify();
            }
        }
    }

    /// This shard's active connections: the larger of the current window's
    /// count so far and the last whole window's.
    pub(crate) fn active(&self) -> usize {
        self.active_now.get().max(self.active_last.get())
    }

    /// Where an open connection of this shard, just answered and waiting
    /// for its next request, should go: `None` to stay. `now`: the clock.
    pub(crate) fn move_target(&self, now: Instant) -> Option<usize> {
        if self.last_move.get().is_some_and(|last| now.duration_since(last) < MOVE_INTERVAL) {
            return None;
        }
        // The same rule as a new connection's, over active connections, as
        // if this one were new.
        let to = self.least_loaded(|load| load.active, self.active().checked_sub(1)?)?;
        // It no longer counts here.
        self.active_now.set(self.active_now.get().saturating_sub(1));
        self.active_last.set(self.active_last.get().saturating_sub(1));
        self.last_move.set(Some(now));
        self.moved_out.set(self.moved_out.get() + 1);
        Some(to)
    }

    /// Where a connection just accepted here should be served: `None` for
    /// here, or the shard to hand it to. `own` is this shard's open
    /// connections before this one.
    pub(crate) fn target(&self, own: usize) -> Option<usize> {
        let to = self.least_loaded(|load| load.open, own)?;
        self.handed_out.set(self.handed_out.get() + 1);
        Some(to)
    }

    /// The shard a connection goes to under the rule, comparing `measure`
    /// of the loads (the view then counts the connection there in both), or
    /// `None`. `own`: this shard's measure without the connection.
    fn least_loaded(&self, measure: fn(&Load) -> usize, own: usize) -> Option<usize> {
        let view = self.view.borrow();
        let shards = view.len();
        let start = self.next.get();
        let (mut best, mut least) = (None, usize::MAX);
        for i in 0..shards {
            let shard = (start + i) % shards;
            if shard != self.me && measure(&view[shard]) < least {
                (best, least) = (Some(shard), measure(&view[shard]));
            }
        }
        let best = best?;
        if own + 1 < least + HANDOFF_GAP {
            return None;
        }
        drop(view);
        let mut view = self.view.borrow_mut();
        view[best].open += 1;
        view[best].active += 1;
        self.next.set(best + 1);
        Some(best)
    }

    /// News from shard `from` of its load.
    pub(crate) fn heard(&self, from: usize, load: Load) {
        if let Some(entry) = self.view.borrow_mut().get_mut(from) {
            *entry = load;
        }
    }

    /// This shard's connection count changed (opened or closed).
    pub(crate) fn changed(&self) {
        self.changed.notify();
    }

    /// Ends the current activity window.
    fn next_window(&self) {
        self.active_last.set(self.active_now.replace(0));
        self.window.set(self.window.get() + 1);
    }

    /// What this shard believes every shard's load is (for tests).
    #[cfg(test)]
    fn view(&self) -> Vec<Load> {
        self.view.borrow().clone()
    }
}

/// The activity windows' clock: ends a window every [`ACTIVE_WINDOW`] while
/// the shard has active connections (and tells `gossip`), and sleeps while
/// it has none, until the shard stops.
pub(crate) async fn windows(balance: Rc<Balance>) {
    loop {
        if balance.active() == 0 {
            let woken = std::pin::pin!(balance.woken.notified());
            if percore_cores::unless_stopping(woken).await.is_none() {
                return;
            }
        }
        if percore_cores::unless_stopping(percore_io::time::sleep(ACTIVE_WINDOW)).await.is_none() {
            return;
        }
        balance.next_window();
        balance.changed();
    }
}

/// Tells the other shards this shard's load (its connection count and its
/// active connections) whenever it changes, at most once per
/// [`GOSSIP_INTERVAL`], until the shard stops. `count` reads the count;
/// `heard` is what the message runs on the receiving shard.
pub(crate) async fn gossip(balance: Rc<Balance>, count: impl Fn() -> usize, heard: fn(usize, Load)) {
    // The windows turn on every shard count: `/metrics` shows each shard's
    // active connections even when there is no other shard to tell.
    percore_io::spawn(windows(balance.clone()));
    let shards = balance.view.borrow().len();
    if shards < 2 {
        return;
    }
    let me = balance.me;
    let mut told = Load::default();
    loop {
        let changed = std::pin::pin!(balance.changed.notified());
        if percore_cores::unless_stopping(changed).await.is_none() {
            return;
        }
        let now = Load { open: count(), active: balance.active() };
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
        b.heard(1, open(1));
        b.heard(2, open(0));
        assert_eq!(b.target(1), Some(2), "2 would be 2 above shard 2's 0");
        let counts: Vec<usize> = b.view().iter().map(|l| l.open).collect();
        assert_eq!(counts, vec![0, 1, 1], "the handed connection is counted at once");
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
        let mut view: Vec<usize> = b.view().iter().map(|l| l.open).collect();
        view[0] = own;
        assert!(view.iter().all(|&n| n == 2), "{view:?}");
    }

    fn open(n: usize) -> Load {
        Load { open: n, active: 0 }
    }

    /// Counts `n` distinct connections answered in the current window.
    fn answer(b: &Balance, n: usize) -> Vec<u64> {
        let mut seen = vec![0; n];
        for s in &mut seen {
            b.answered(s);
            b.answered(s);
        }
        seen
    }

    #[test]
    fn active_connections_are_counted_once_per_window() {
        let b = Balance::new(0, 2);
        let mut seen = answer(&b, 3);
        assert_eq!(b.active(), 3);
        b.next_window();
        assert_eq!(b.active(), 3, "the last whole window's count holds");
        b.answered(&mut seen[0]);
        b.next_window();
        assert_eq!(b.active(), 1, "one answered in the window before");
        b.next_window();
        assert_eq!(b.active(), 0);
    }

    #[test]
    fn active_connections_move_until_level_at_most_one_per_interval() {
        let b = Balance::new(0, 2);
        let t0 = Instant::now();
        // Many idle connections there, few active: the active ones count.
        b.heard(1, Load { open: 40, active: 2 });
        answer(&b, 3);
        assert_eq!(b.move_target(t0), None, "3 against 2: moving one would only swap the excess");
        answer(&b, 1);
        assert_eq!(b.move_target(t0), Some(1), "4 against 2");
        assert_eq!(b.view()[1], Load { open: 41, active: 3 });
        assert_eq!(b.active(), 3, "the moved connection no longer counts here");
        b.heard(1, Load { open: 40, active: 0 });
        assert_eq!(b.move_target(t0), None, "within the interval since the last move");
        assert_eq!(b.move_target(t0 + MOVE_INTERVAL), Some(1), "3 against 0");
        assert_eq!(b.move_target(t0 + 3 * MOVE_INTERVAL), None, "2 against 1");
        assert_eq!((b.moved_out.get(), b.handed_out.get()), (2, 0));
    }

    #[test]
    fn one_shard_never_hands_over() {
        let b = Balance::new(0, 1);
        assert_eq!(b.target(100), None);
    }
}
