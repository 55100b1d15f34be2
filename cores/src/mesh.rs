//! The mesh: every shard has an inbox (a crossbeam channel) and every shard
//! holds a sender to every inbox. Requests and their replies both travel
//! through inboxes; nothing else is shared between shards.
//!
//! A request carries a [`ReplyTo`]: running the request sends the result back
//! to the requester's inbox, where it completes a shard-local pending slot.
//! If the request is dropped unrun (its target stopped), the `ReplyTo`'s
//! `Drop` sends an error reply instead, so no requester waits forever.
//!
//! Wake-ups: a sender pushes into the channel, then calls the target
//! runtime's [`Remote::unpark`], which rings its doorbell only if it is parked
//! (`percore_io`'s park protocol; a busy target costs the sender a fence and a
//! load, no syscall). The target drains its inbox in a [`Poller`] at the start
//! of every tick, at most [`DRAIN_BATCH`] messages at a time, and checks it
//! before it parks.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crossbeam_channel::{Receiver, Sender};
use percore_io::{Poller, Remote};

use crate::stats::Counters;

/// Messages drained per batch before the inbox task yields.
pub const DRAIN_BATCH: usize = 64;

/// Words of a job or a reply kept inline in its message (larger ones go to
/// the heap): two, so that a message stays within a cache line.
type Inline = smallbox::space::S2;

/// A closure for another shard, carried inline when it is small. Each heap
/// box would be allocated on one core and freed on another: glibc then
/// takes the allocating thread's arena lock from the freeing core, and the
/// cache lines of the lock and the chunk bounce. `FnMut`, run once: a
/// `SmallBox` cannot be called by value.
pub(crate) type Job = smallbox::SmallBox<dyn FnMut() + Send, Inline>;

/// A request's closure: given the [`ReplyTo`] that carries its result back.
type Ask = smallbox::SmallBox<dyn FnMut(ReplyTo) + Send, Inline>;

/// Wraps a one-shot closure as a [`Job`].
pub(crate) fn job(f: impl FnOnce() + Send + 'static) -> Job {
    let mut f = Some(f);
    smallbox::smallbox!(move || {
        if let Some(f) = f.take() {
            f();
        }
    })
}

/// Wraps a one-shot closure as an [`Ask`].
fn ask(f: impl FnOnce(ReplyTo) + Send + 'static) -> Ask {
    let mut f = Some(f);
    smallbox::smallbox!(move |reply_to: ReplyTo| {
        if let Some(f) = f.take() {
            f(reply_to);
        }
    })
}

/// A pending slot's index plus a generation, so a late reply for a slot that
/// was freed and reused (a requester that gave up, or an error reply from a
/// job that could not be sent) misses instead of completing the wrong request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplyId {
    index: u32,
    generation: u32,
}
/// A request's result, inline when small (as a [`Job`]).
type Value = smallbox::SmallBox<dyn Any + Send, Inline>;

fn value<R: Send + 'static>(r: R) -> Value {
    smallbox::smallbox!(r)
}

pub(crate) enum Message {
    /// Run a closure on the receiving shard.
    Run(Job),
    /// Run a request's closure on the receiving shard; `reply` takes its
    /// result back (or, dropped unrun, an error).
    Ask { ask: Ask, reply: ReplyTo },
    /// A reply to request `id` of the receiving shard.
    Reply { id: ReplyId, value: Result<Value, MeshError> },
    /// Phase 1 of shutdown: stop taking work, finish what is in flight.
    Stop,
    /// Phase 2: every shard is quiet (or the grace period is over): exit.
    Exit,
}

/// Why a cross-shard request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshError {
    /// The target shard has stopped (or stopped before running the request).
    Stopped {
        /// The target shard.
        shard: usize,
    },
    /// There is no such shard.
    NoSuchShard {
        /// The shard asked for.
        shard: usize,
        /// How many shards there are.
        count: usize,
    },
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshError::Stopped { shard } => write!(f, "shard {shard} has stopped"),
            MeshError::NoSuchShard { shard, count } => write!(f, "no shard {shard} (there are {count})"),
        }
    }
}

impl std::error::Error for MeshError {}

/// The sending side of one shard's inbox, and its runtime's wake-up handle.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) tx: Sender<Message>,
    pub(crate) remote: Remote,
}

impl Peer {
    /// Sends and wakes the target if it is parked; returns whether it had to
    /// ring the target's doorbell.
    pub(crate) fn send(&self, message: Message) -> Result<bool, Message> {
        self.tx.send(message).map_err(|e| e.0)?;
        Ok(self.remote.unpark())
    }
}

/// Routes a result back to the shard that asked for it.
///
/// It names the requester by id and replies through the replying shard's
/// own sender to that inbox: a request clones no `Sender` (whose reference
/// count is shared by every shard that holds one, so each clone and drop
/// was an atomic write to a cache line that other cores also write).
pub(crate) struct ReplyTo {
    requester: u32,
    id: ReplyId,
    target: u32,
    sent: bool,
}

impl ReplyTo {
    pub(crate) fn send(mut self, value: Value) {
        self.sent = true;
        let (requester, id) = (self.requester, self.id);
        with_local(|local| {
            local.counters.messages_out.set(local.counters.messages_out.get() + 1);
            let _ = local.peers[requester as usize].send(Message::Reply { id, value: Ok(value) });
        });
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if !self.sent {
            // Dropped unrun (the target stopped): tell the requester. If the
            // requester is gone too, there is nobody to tell. Unrun requests
            // are dropped on a shard's thread while its mesh view is still
            // installed (with its runtime, or where a send failed).
            let (requester, id, target) = (self.requester, self.id, self.target);
            let _ = LOCAL.try_with(|l| {
                if let Some(local) = l.borrow().as_deref() {
                    let reply = Message::Reply { id, value: Err(MeshError::Stopped { shard: target as usize }) };
                    let _ = local.peers[requester as usize].send(reply);
                }
            });
        }
    }
}

struct Pending {
    generation: u32,
    value: Option<Result<Value, MeshError>>,
    waker: Option<Waker>,
}

/// This shard's view of the mesh (thread-local; see [`current`]).
pub(crate) struct Local {
    pub(crate) id: usize,
    pub(crate) peers: Vec<Peer>,
    pending: RefCell<slab::Slab<Pending>>,
    next_generation: Cell<u32>,
    pub(crate) counters: Counters,
    pub(crate) stopping: Flag,
    pub(crate) exiting: Flag,
}

/// A shard-local, one-way flag that tasks can wait for.
///
/// Each waiting future holds a slot in `waiters` and frees it when dropped:
/// a future polled once per request and dropped when the request is served
/// (as `stopping()` is, racing every idle wait) must not leave its waker
/// behind, or the flag would keep every finished task alive.
#[derive(Default)]
pub(crate) struct Flag {
    set: Cell<bool>,
    waiters: RefCell<slab::Slab<Waker>>,
}

impl Flag {
    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Sets the flag for good and wakes every waiter. (Once set, nothing
    /// registers again, so a freed slot is never reused under a future that
    /// still holds its key.)
    pub(crate) fn set(&self) {
        self.set.set(true);
        let wakers: Vec<Waker> = self.waiters.borrow_mut().drain().collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Waiters registered now (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Future returned by [`wait_for`].
pub(crate) struct FlagWait {
    flag: fn(&Local) -> &Flag,
    key: Option<usize>,
}

impl Future for FlagWait {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (flag, key) = (self.flag, self.key);
        let key = with_local(|local| {
            let flag = flag(local);
            if flag.set.get() {
                return None;
            }
            let mut waiters = flag.waiters.borrow_mut();
            Some(match key {
                Some(k) if waiters.contains(k) => {
                    if !waiters[k].will_wake(cx.waker()) {
                        waiters[k] = cx.waker().clone();
                    }
                    k
                }
                _ => waiters.insert(cx.waker().clone()),
            })
        });
        self.key = key;
        if key.is_some() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

impl Drop for FlagWait {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let flag = self.flag;
            LOCAL.with(|l| {
                if let Some(local) = l.borrow().as_deref() {
                    let _ = flag(local).waiters.borrow_mut().try_remove(key);
                }
            });
        }
    }
}

/// Resolves once `flag` of the current shard is set.
pub(crate) fn wait_for(flag: fn(&Local) -> &Flag) -> FlagWait {
    FlagWait { flag, key: None }
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

pub(crate) fn install(id: usize, peers: Vec<Peer>) -> Rc<Local> {
    let local = Rc::new(Local {
        id,
        peers,
        pending: RefCell::new(slab::Slab::new()),
        next_generation: Cell::new(0),
        counters: Counters::default(),
        stopping: Flag::default(),
        exiting: Flag::default(),
    });
    LOCAL.with(|l| *l.borrow_mut() = Some(local.clone()));
    local
}

pub(crate) fn uninstall() {
    LOCAL.with(|l| l.borrow_mut().take());
}

const NOT_A_SHARD: &str = "percore-cores: this thread is not a shard (call from inside a launched shard)";

pub(crate) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> R {
    LOCAL.with(|l| f(l.borrow().as_deref().expect(NOT_A_SHARD)))
}

/// Who the current shard is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard's id, dense in `0..count`.
    pub id: usize,
    /// How many shards there are.
    pub count: usize,
}

/// The current shard.
///
/// # Panics
/// If called outside a shard.
pub fn current() -> Shard {
    with_local(|l| Shard { id: l.id, count: l.peers.len() })
}

/// A stable hash of `key` onto `0..count`: the shard that owns `key`.
///
/// FNV-1a over the key's `Hash` output: the same key maps to the same shard
/// in every shard, every run, and every build (unlike `DefaultHasher`).
pub fn shard_for<K: Hash + ?Sized>(key: &K, count: usize) -> usize {
    assert!(count > 0, "shard_for needs at least one shard");
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    key.hash(&mut hasher);
    (hasher.finish() % count as u64) as usize
}

struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Sends a request's closure to `shard` and returns the future of its
/// reply.
fn request(shard: usize, ask: Ask) -> Reply {
    with_local(|local| {
        let Some(target) = local.peers.get(shard) else {
            return Reply::failed(MeshError::NoSuchShard { shard, count: local.peers.len() });
        };
        let generation = local.next_generation.get();
        // Wraps after 2^32 requests: a reply late by that many is not a risk.
        local.next_generation.set(generation.wrapping_add(1));
        let index = local.pending.borrow_mut().insert(Pending { generation, value: None, waker: None });
        let id = ReplyId { index: u32::try_from(index).expect("fewer than 2^32 requests in flight"), generation };
        let reply = ReplyTo { requester: local.id as u32, id, target: shard as u32, sent: false };
        match target.send(Message::Ask { ask, reply }) {
            Ok(woke) => {
                let c = &local.counters;
                c.messages_out.set(c.messages_out.get() + 1);
                c.wakeups_sent.set(c.wakeups_sent.get() + u64::from(woke));
                Reply { id: Some(id), failed: None }
            }
            Err(message) => {
                // The inbox is closed. Dropping the unsent job sends an error
                // reply to our own inbox, which will miss: the slot is freed
                // here and a reuse gets a new generation.
                local.pending.borrow_mut().remove(index);
                drop(message);
                Reply::failed(MeshError::Stopped { shard })
            }
        }
    })
}

/// The future of a reply: resolves when the target's result comes back.
struct Reply {
    id: Option<ReplyId>,
    failed: Option<MeshError>,
}

impl Reply {
    fn failed(err: MeshError) -> Reply {
        Reply { id: None, failed: Some(err) }
    }
}

impl Future for Reply {
    type Output = Result<Value, MeshError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(err) = self.failed.take() {
            return Poll::Ready(Err(err));
        }
        let id = self.id.expect("Reply polled after completion");
        with_local(|local| {
            let mut pending = local.pending.borrow_mut();
            let slot = pending.get_mut(id.index as usize).expect("pending reply slot");
            debug_assert_eq!(slot.generation, id.generation);
            match slot.value.take() {
                Some(value) => {
                    pending.remove(id.index as usize);
                    self.id = None;
                    Poll::Ready(value)
                }
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            // The requester gave up: a reply that still comes is dropped.
            LOCAL.with(|l| {
                if let Some(local) = l.borrow().as_ref() {
                    local.pending.borrow_mut().try_remove(id.index as usize);
                }
            });
        }
    }
}

fn downcast<R: 'static>(value: Value) -> R {
    match value.downcast::<R>() {
        Ok(value) => value.into_inner(),
        Err(_) => unreachable!("a reply is of the type its request asked for"),
    }
}

/// Runs `f` on shard `shard` with no reply: one message, nothing awaited
/// (for one-way news such as a shard's load, or handing over a value that
/// the target takes on from there). On the current shard, `f` runs at once.
///
/// If the target stops before it runs `f`, `f` is dropped unrun there,
/// with whatever it owns.
///
/// # Errors
/// [`MeshError::Stopped`] if the target's inbox is closed (`f` is dropped
/// here); [`MeshError::NoSuchShard`] for a bad id.
///
/// # Panics
/// Outside a shard.
pub fn post<F>(shard: usize, f: F) -> Result<(), MeshError>
where
    F: FnOnce() + Send + 'static,
{
    let mut f = Some(f);
    let sent = with_local(|local| {
        if shard == local.id {
            return Ok(false);
        }
        let target = local.peers.get(shard).ok_or(MeshError::NoSuchShard { shard, count: local.peers.len() })?;
        let job = job(f.take().expect("taken once"));
        let woke = target.send(Message::Run(job)).map_err(|_| MeshError::Stopped { shard })?;
        let c = &local.counters;
        c.messages_out.set(c.messages_out.get() + 1);
        c.wakeups_sent.set(c.wakeups_sent.get() + u64::from(woke));
        Ok(true)
    })?;
    if !sent {
        (f.take().expect("not sent"))();
    }
    Ok(())
}

/// Runs `f` on shard `shard` and returns its result (Seastar's `submit_to`).
/// On the current shard, `f` runs at once.
///
/// # Errors
/// [`MeshError::Stopped`] if the target has stopped (or stops before it runs
/// `f`); [`MeshError::NoSuchShard`] for a bad id.
///
/// # Panics
/// Outside a shard.
pub async fn submit_to<R, F>(shard: usize, f: F) -> Result<R, MeshError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if shard == current().id {
        return Ok(f());
    }
    let reply = request(shard, ask(move |reply_to| reply_to.send(value(f()))));
    reply.await.map(downcast)
}

/// Spawns the future that `f` makes as a task on shard `shard` and returns its
/// output. `f` is `Send`; the future it makes need not be.
///
/// # Errors
/// As [`submit_to`]; also `Stopped` if the target drops the task unfinished
/// (shutdown past its grace period).
///
/// # Panics
/// Outside a shard.
pub async fn spawn_on<R, Fut, F>(shard: usize, f: F) -> Result<R, MeshError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    if shard == current().id {
        return Ok(percore_io::spawn(f()).await);
    }
    let reply = request(
        shard,
        ask(move |reply_to| {
            percore_io::spawn(async move {
                let output = f().await;
                reply_to.send(value(output));
            });
        }),
    );
    reply.await.map(downcast)
}

/// Runs `f` on every shard (this one included) and gathers the results in
/// shard order.
///
/// # Errors
/// The first shard's error, if any shard has stopped.
///
/// # Panics
/// Outside a shard.
pub async fn broadcast<R, F>(f: F) -> Result<Vec<R>, MeshError>
where
    F: Fn() -> R + Send + Sync + Clone + 'static,
    R: Send + 'static,
{
    let Shard { id, count } = current();
    let replies: Vec<Option<Reply>> = (0..count)
        .map(|shard| {
            (shard != id).then(|| {
                let f = f.clone();
                request(shard, ask(move |reply_to| reply_to.send(value(f()))))
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for (shard, reply) in replies.into_iter().enumerate() {
        match reply {
            None => results.push(f()),
            Some(reply) => results.push(downcast(reply.await.map_err(|_| MeshError::Stopped { shard })?)),
        }
    }
    Ok(results)
}

/// Resolves once a stop has been requested (by [`crate::stop`], a
/// [`crate::StopHandle`], or a shard's panic). Shards' main futures await it to
/// know when to wind down.
///
/// # Panics
/// Outside a shard.
pub fn stopping() -> impl Future<Output = ()> {
    wait_for(|local| &local.stopping)
}

/// True once a stop has been requested.
///
/// # Panics
/// Outside a shard.
pub fn is_stopping() -> bool {
    with_local(|local| local.stopping.is_set())
}

/// Awaits `future`, unless a stop is requested first (`None`): for waits
/// that a stop should end (an idle connection, a background loop).
///
/// # Panics
/// Outside a shard.
pub async fn unless_stopping<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut stopping = std::pin::pin!(stopping());
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(output));
        }
        stopping.as_mut().poll(cx).map(|()| None)
    })
    .await
}

impl Local {
    fn complete(&self, id: ReplyId, value: Result<Value, MeshError>) {
        let waker = {
            let mut pending = self.pending.borrow_mut();
            // A slot that is gone, or reused, belongs to a requester that
            // gave up (or to a request that was never sent).
            let Some(slot) = pending.get_mut(id.index as usize).filter(|s| s.generation == id.generation) else {
                return;
            };
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn handle(&self, message: Message) {
        let c = &self.counters;
        match message {
            Message::Run(mut job) => {
                c.messages_in.set(c.messages_in.get() + 1);
                job();
            }
            Message::Ask { mut ask, reply } => {
                c.messages_in.set(c.messages_in.get() + 1);
                ask(reply);
            }
            Message::Reply { id, value } => {
                c.messages_in.set(c.messages_in.get() + 1);
                self.complete(id, value);
            }
            Message::Stop => self.stopping.set(),
            Message::Exit => self.exiting.set(),
        }
    }
}

/// Drains the shard's inbox at the start of every tick of its runtime.
pub(crate) struct Inbox {
    pub(crate) local: Rc<Local>,
    pub(crate) rx: Receiver<Message>,
}

impl Poller for Inbox {
    fn poll(&mut self) -> usize {
        let mut drained = 0;
        while drained < DRAIN_BATCH {
            let Ok(message) = self.rx.try_recv() else { break };
            self.local.handle(message);
            drained += 1;
        }
        if drained > 0 {
            self.local.counters.drains.set(self.local.counters.drains.get() + 1);
        }
        drained
    }

    fn has_work(&self) -> bool {
        !self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message and its channel slot's state word take 64 bytes at most:
    /// two cache lines for the receiving core to read from the sender's
    /// cache (crossbeam's blocks start 8 bytes in, so no slot is aligned),
    /// where a larger message would take three.
    #[test]
    fn a_message_and_its_slot_state_take_64_bytes_at_most() {
        assert!(std::mem::size_of::<Message>() <= 56, "{} bytes", std::mem::size_of::<Message>());
    }

    /// A wait polled and dropped (as every request's idle wait races
    /// `stopping()`) leaves no waker behind; waits still pending are all
    /// woken and finish when the flag is set.
    #[test]
    fn dropped_waits_leave_no_waker_behind() {
        let local = install(0, Vec::new());
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10_000 {
            let mut wait = std::pin::pin!(stopping());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            assert!(wait.as_mut().poll(&mut cx).is_pending(), "a second poll reuses the slot");
        }
        assert_eq!(local.stopping.waiting(), 0);
        let mut kept: Vec<_> = (0..3).map(|_| Box::pin(stopping())).collect();
        for wait in &mut kept {
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(local.stopping.waiting(), 3);
        local.stopping.set();
        assert_eq!(local.stopping.waiting(), 0);
        for wait in &mut kept {
            assert!(wait.as_mut().poll(&mut cx).is_ready());
        }
        drop(kept);
        uninstall();
    }
}
