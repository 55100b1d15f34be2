//! Launch: one pinned thread per shard, each running its own ring and
//! executor, and the two-phase stop.
//!
//! Start-up is all or nothing: every shard pins itself and builds its ring,
//! reports, and waits for the go; if any shard fails, none runs and the error
//! names the shard and the cause.
//!
//! Stop, phase 1 ([`Message::Stop`](crate::mesh)): [`crate::stopping`]
//! resolves; each shard's main future returns and its tasks finish, while
//! every inbox keeps serving (a finishing task may still need another
//! shard). A shard that is done votes "quiet". Phase 2: the last vote
//! broadcasts `Exit` and every shard leaves. A shard that sees no `Exit` within
//! the grace period after the stop leaves anyway, dropping its unfinished work
//! (requesters of that work get [`MeshError::Stopped`](crate::MeshError)).
//! A panicking shard is reported with its id, votes, and stops all others.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use percore_io::{time, Remote};

use crate::mesh::{self, Message, Peer, Shard};
use crate::topology::{allowed_cpus, format_list, CoreSet, Placement, TopologyError};

/// How to launch the shards.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which CPUs.
    pub cores: CoreSet,
    /// Each shard's runtime (ring sizes, doorbell, budgets).
    pub runtime: percore_io::Builder,
    /// How long after a stop a shard waits for its work before dropping it.
    pub grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { cores: CoreSet::All, runtime: percore_io::Builder::default(), grace: Duration::from_secs(10) }
    }
}

/// Why a launch failed or a run ended badly.
#[derive(Debug)]
pub enum LaunchError {
    /// The CPUs asked for cannot be used.
    Topology(TopologyError),
    /// A shard could not start (ring setup, pinning, thread creation).
    ShardStart {
        /// The shard.
        shard: usize,
        /// Its CPU, if pinned.
        cpu: Option<usize>,
        /// What failed.
        cause: String,
    },
    /// A shard panicked; every shard was stopped.
    ShardPanicked {
        /// The shard.
        shard: usize,
        /// The panic message.
        message: String,
    },
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Topology(e) => e.fmt(f),
            LaunchError::ShardStart { shard, cpu: Some(cpu), cause } => {
                write!(f, "shard {shard} (CPU {cpu}) failed to start: {cause}")
            }
            LaunchError::ShardStart { shard, cpu: None, cause } => write!(f, "shard {shard} failed to start: {cause}"),
            LaunchError::ShardPanicked { shard, message } => write!(f, "shard {shard} panicked: {message}"),
        }
    }
}

impl std::error::Error for LaunchError {}

impl From<TopologyError> for LaunchError {
    fn from(e: TopologyError) -> Self {
        LaunchError::Topology(e)
    }
}

/// Requests a stop of every shard; usable from any thread (a signal
/// handler's thread, say). Cheap to clone.
#[derive(Clone)]
pub struct StopHandle {
    peers: Arc<Vec<Peer>>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle").field("shards", &self.peers.len()).finish()
    }
}

impl StopHandle {
    /// Starts phase 1 of the stop on every shard (idempotent).
    pub fn stop(&self) {
        for peer in self.peers.iter() {
            let _ = peer.send(Message::Stop);
        }
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.peers.len()
    }

    /// Runs `f` on shard `shard`, from any thread, with no reply: news from
    /// the control plane (reloaded certificates, a new key), as
    /// [`crate::post`] is between shards.
    ///
    /// # Errors
    /// [`MeshError::Stopped`](crate::MeshError) if the shard's inbox is
    /// closed (`f` is dropped); `NoSuchShard` for a bad id.
    pub fn post<F>(&self, shard: usize, f: F) -> Result<(), crate::MeshError>
    where
        F: FnOnce() + Send + 'static,
    {
        let count = self.peers.len();
        let peer = self.peers.get(shard).ok_or(crate::MeshError::NoSuchShard { shard, count })?;
        peer.send(Message::Run(mesh::job(f))).map(|_| ()).map_err(|_| crate::MeshError::Stopped { shard })
    }
}

/// Requests a stop of every shard, from inside a shard.
///
/// # Panics
/// Outside a shard.
pub fn stop() {
    let peers = mesh::with_local(|l| l.peers.clone());
    for peer in &peers {
        let _ = peer.send(Message::Stop);
    }
}

/// Lifecycle coordination shared by the shards: the quiet vote.
struct Control {
    peers: Vec<Peer>,
    quiet: AtomicUsize,
}

impl Control {
    fn vote_quiet(&self) {
        if self.quiet.fetch_add(1, Ordering::AcqRel) + 1 == self.peers.len() {
            for peer in &self.peers {
                let _ = peer.send(Message::Exit);
            }
        }
    }

    fn stop_all(&self) {
        for peer in &self.peers {
            let _ = peer.send(Message::Stop);
        }
    }
}

enum Outcome<T> {
    Done(Option<T>),
    Panicked(String),
    NotStarted,
}

/// Running shards. Dropping it without [`Running::join`] detaches them.
pub struct Running<T> {
    threads: Vec<JoinHandle<Outcome<T>>>,
    stop: StopHandle,
    placement: Placement,
}

impl<T> std::fmt::Debug for Running<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("placement", &self.placement).finish()
    }
}

impl<T> Running<T> {
    /// A handle that stops every shard.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Where the shards run.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Waits for every shard to exit. Returns each shard's main output, in
    /// shard order (`None` for a main dropped at the end of the grace period).
    ///
    /// # Errors
    /// [`LaunchError::ShardPanicked`] for the lowest shard that panicked.
    pub fn join(self) -> Result<Vec<Option<T>>, LaunchError> {
        let mut outputs = Vec::with_capacity(self.threads.len());
        let mut panicked = None;
        for (shard, thread) in self.threads.into_iter().enumerate() {
            match thread.join() {
                Ok(Outcome::Done(output)) => outputs.push(output),
                Ok(Outcome::Panicked(message)) => {
                    panicked.get_or_insert(LaunchError::ShardPanicked { shard, message });
                    outputs.push(None);
                }
                Ok(Outcome::NotStarted) => outputs.push(None),
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    panicked.get_or_insert(LaunchError::ShardPanicked { shard, message });
                    outputs.push(None);
                }
            }
        }
        panicked.map_or(Ok(outputs), Err)
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_string())
}

/// Starts one shard per chosen CPU, each running `main(shard)` on its own
/// ring. Returns once every shard has started.
///
/// # Errors
/// [`LaunchError::Topology`] for unusable CPUs; [`LaunchError::ShardStart`]
/// naming the first shard that could not start (then none runs).
pub fn launch<T, F, Fut>(config: Config, main: F) -> Result<Running<T>, LaunchError>
where
    F: Fn(Shard) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    launch_with(config, |_| (), move |shard, ()| main(shard))
}

/// As [`launch`], and each shard is handed a value of its own: `give(id)`
/// runs on the launching thread once per shard, in order, before that
/// shard's thread starts, and the value moves into the shard's thread (a
/// listener bound up front, say), to `main(shard, value)`.
///
/// # Errors
/// As [`launch`].
pub fn launch_with<T, S, G, F, Fut>(config: Config, mut give: G, main: F) -> Result<Running<T>, LaunchError>
where
    G: FnMut(usize) -> S,
    S: Send + 'static,
    F: Fn(Shard, S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let allowed = allowed_cpus();
    let placement = config.cores.place(&allowed)?;
    let count = placement.shards();
    let unpinned = placement.cpus.iter().filter(|c| c.is_none()).count();
    if unpinned > 0 {
        tracing::warn!(
            "{count} shards for {} CPUs ({}): {unpinned} shard(s) run unpinned",
            allowed.len(),
            format_list(&allowed)
        );
    }
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..count).map(|_| crossbeam_channel::unbounded()).unzip();
    let main = Arc::new(main);
    // Start-up handshake: each shard pins itself, builds its ring and reports
    // its runtime's `Remote` (or the error); the go carries the peer table.
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<(usize, Result<Remote, String>)>();
    let mut gates = Vec::with_capacity(count);
    let mut threads = Vec::with_capacity(count);
    for (id, inbox) in receivers.into_iter().enumerate() {
        let (go_tx, go_rx) = crossbeam_channel::bounded::<Option<Arc<Control>>>(1);
        gates.push(go_tx);
        let shard = ShardStart {
            id,
            count,
            cpu: placement.cpus[id],
            builder: config.runtime.clone(),
            grace: config.grace,
            inbox,
        };
        let (main, shard_ready, value) = (main.clone(), ready_tx.clone(), give(id));
        let spawned = std::thread::Builder::new()
            .name(format!("percore-shard-{id}"))
            .spawn(move || shard.run(&*main, value, shard_ready, go_rx));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                let _ = ready_tx.send((id, Err(format!("cannot create its thread: {e}"))));
            }
        }
    }
    drop(ready_tx);
    let mut remotes: Vec<Option<Remote>> = vec![None; count];
    let mut failure: Option<(usize, String)> = None;
    for _ in 0..count {
        match ready_rx.recv() {
            Ok((id, Ok(remote))) => remotes[id] = Some(remote),
            Ok((id, Err(cause))) => {
                if failure.as_ref().is_none_or(|(f, _)| id < *f) {
                    failure = Some((id, cause));
                }
            }
            Err(_) => break,
        }
    }
    if let Some((shard, cause)) = failure {
        for gate in &gates {
            let _ = gate.send(None);
        }
        for thread in threads {
            let _ = thread.join();
        }
        return Err(LaunchError::ShardStart { shard, cpu: placement.cpus[shard], cause });
    }
    let peers: Vec<Peer> = senders
        .into_iter()
        .zip(remotes)
        .map(|(tx, remote)| Peer { tx, remote: remote.expect("every shard reported") })
        .collect();
    let control = Arc::new(Control { peers: peers.clone(), quiet: AtomicUsize::new(0) });
    for gate in &gates {
        let _ = gate.send(Some(control.clone()));
    }
    Ok(Running { threads, stop: StopHandle { peers: Arc::new(peers) }, placement })
}

struct ShardStart {
    id: usize,
    count: usize,
    cpu: Option<usize>,
    builder: percore_io::Builder,
    grace: Duration,
    inbox: Receiver<Message>,
}

impl ShardStart {
    fn run<T, S, F, Fut>(
        self,
        main: &F,
        value: S,
        ready: crossbeam_channel::Sender<(usize, Result<Remote, String>)>,
        go: Receiver<Option<Arc<Control>>>,
    ) -> Outcome<T>
    where
        F: Fn(Shard, S) -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some(cpu) = self.cpu {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                let _ = ready.send((self.id, Err(format!("cannot pin its thread to CPU {cpu}"))));
                return Outcome::NotStarted;
            }
        }
        let runtime = match self.builder.build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send((self.id, Err(e.to_string())));
                return Outcome::NotStarted;
            }
        };
        let _ = ready.send((self.id, Ok(runtime.remote())));
        let Ok(Some(control)) = go.recv() else { return Outcome::NotStarted };
        let local = mesh::install(self.id, control.peers.clone());
        let shard = Shard { id: self.id, count: self.count };
        let (grace, inbox) = (self.grace, self.inbox);
        let result = catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(run_shard(main(shard, value), local, inbox, &control, grace))
        }));
        let outcome = match result {
            Ok(output) => Outcome::Done(output),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!("shard {} panicked: {message}; stopping every shard", self.id);
                control.stop_all();
                control.vote_quiet();
                Outcome::Panicked(message)
            }
        };
        // Dropping the runtime drops unfinished tasks (their requesters get
        // errors) and the inbox poller (queued requests get error replies).
        drop(runtime);
        mesh::uninstall();
        outcome
    }
}

/// One shard's life inside its runtime: main, then its tasks, then the vote
/// and the wait for `Exit`.
async fn run_shard<T>(
    main: impl Future<Output = T>,
    local: std::rc::Rc<mesh::Local>,
    inbox: Receiver<Message>,
    control: &Control,
    grace: Duration,
) -> Option<T> {
    percore_io::add_poller(mesh::Inbox { local, rx: inbox });
    // Phase 1: main runs until it returns, or until the grace period after a
    // stop has passed.
    // Fused: once passed, it stays passed for the later phases.
    let mut deadline = Fuse(Some(Box::pin(async move {
        mesh::stopping().await;
        time::sleep(grace).await;
    })));
    let output = race(main, &mut deadline).await;
    // Its tasks finish, within the same deadline.
    let tasks_done = async {
        while percore_io::stats().tasks_live > 0 {
            time::sleep(Duration::from_millis(1)).await;
        }
    };
    let _ = race(tasks_done, &mut deadline).await;
    control.vote_quiet();
    // Phase 2: wait for every shard to be quiet (`Exit`), or the deadline.
    let _ = race(mesh::wait_for(|local| &local.exiting), &mut deadline).await;
    output
}

/// A future that stays complete once it has completed.
struct Fuse<F>(Option<F>);

impl<F: Future + Unpin> Future for Fuse<F> {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let Some(inner) = self.0.as_mut() else { return Poll::Ready(()) };
        if std::pin::Pin::new(inner).poll(cx).is_ready() {
            self.0 = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Runs `a` until it or `b` completes; `Some` with `a`'s output if `a` won.
async fn race<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if b.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
