//! `percore serve`: binds one `SO_REUSEPORT` listener per shard and listen address, launches the
//! shards, and stops them on SIGTERM or SIGINT.
//!
//! The listeners are bound here, before the shards start, so that port 0
//! works (the first bind picks the port, the others join it) and so that a
//! bind error stops start-up with a clear message.

use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use percore_cores::{launch_with, stopping};
use percore_io::{BufRing, Dir, TcpStream};

/// Receive buffers per shard, shared by its connections (taken only while
/// data is being copied out, so an idle connection holds none). The kernel
/// hands them out in ring order, so all of them become resident under load:
/// 128 × 8 KiB = 1 MiB per shard (512 measured the same req/s at 64 and 1,000
/// connections with 2-3 MiB more RSS; BENCHMARKS.md). A shard that runs dry
/// re-arms its receives when buffers come back (ENOBUFS), losing nothing.
const RECV_BUFFERS: u16 = 128;
const RECV_BUFFER_BYTES: u32 = 8 * 1024;

use crate::balance::{self, Balance};
use crate::config::{Config, LogFormat};
use crate::http::conn;
use crate::shard::{Counted, Draining, Shard};
use crate::store::{self, Fence, Knobs, Store};

pub(crate) fn run(config: Config) -> Result<(), Box<dyn Error>> {
    block_signals()?;
    init_logging(&config)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", config.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&config.data_dir)?;
    let stale = store::remove_stale_temps(&data_dir)
        .map_err(|e| format!("cannot clean temporary files in {}: {e}", data_dir.display()))?;
    if stale > 0 {
        tracing::info!("removed {stale} temporary file(s) left by an earlier run");
    }
    let (write_back_dev, flush) = store::write_back_device(&data_dir, config.body_flush);
    // One fence, one set of disk-fault counters and one drain flag for the
    // daemon, a clone in every shard.
    let durability = store::Durability {
        write_back_dev,
        fence: Fence::default(),
        knobs: Knobs::from_env(),
        faults: crate::health::DiskFaults::default(),
    };
    let draining = Draining::default();
    tracing::info!("uploads are made durable with {flush}");
    tracing::info!("blocking file work runs on up to {} kernel workers per shard", config.file_workers);
    let placement = config.cores.place(&percore_cores::allowed_cpus())?;
    let shards = placement.shards();
    let open_files = raise_open_files();
    let spare_limit = store::spare_limit(open_files, shards);
    tracing::info!("open files: up to {open_files}; spare files: up to {spare_limit} per shard");
    let tls = match &config.tls {
        Some(settings) => {
            let (pairs, note) = crate::tls::load(settings)?;
            if let Some(note) = note {
                println!("{note}");
                tracing::info!("{note}");
            }
            let tickets = crate::tls::tickets::TicketKeys::new(crate::tls::tickets::TicketKey::generate()?);
            let material = crate::tls::Material { pairs, unknown_sni: settings.unknown_sni, tickets };
            // Checked here, once, so that a shard's own build cannot fail.
            crate::tls::shard_config(&material)?;
            Some(material)
        }
        None => None,
    };
    let every = every(&config);
    let (listeners, addrs) = crate::listen::bind_all(&every, shards)?;
    let mut listeners: Vec<Option<crate::listen::ShardListeners>> = listeners.into_iter().map(Some).collect();
    let cores_config = percore_cores::Config {
        cores: config.cores.clone(),
        grace: Duration::from_millis(config.shutdown_grace_ms),
        runtime: percore_io::Builder::default().ring(percore_io::RingConfig {
            file_workers: Some(config.file_workers),
            ..percore_io::RingConfig::default()
        }),
    };
    let shard_config = config.clone();
    let (shard_data_dir, shard_draining, shard_tls) = (data_dir.clone(), draining.clone(), tls.clone());
    // No shard accepts before every shard can take commits for the paths it
    // owns (start-up only; every shard passes it, even one whose set-up failed).
    let ready = Arc::new(std::sync::Barrier::new(shards));
    // Each shard is handed its own listeners (one per address) as it starts.
    let give = move |id: usize| listeners[id].take().expect("listeners for every shard");
    let running = launch_with(cores_config, give, move |_shard, listeners| {
        let (config, ready) = (shard_config.clone(), ready.clone());
        let state = Given {
            data_dir: shard_data_dir.clone(),
            durability: durability.clone(),
            spare_limit,
            draining: shard_draining.clone(),
            tls: shard_tls.clone(),
        };
        async move { shard_main(listeners, config, state, &ready).await }
    })?;
    let shown = addrs.iter().map(|(a, kind)| kind.url(*a)).collect::<Vec<_>>().join(" ");
    let writers = crate::listen::writers(config.write_token.is_some(), config.allow_anonymous_writes);
    let node = &config.node_name;
    println!(
        "percore listening on {shown} serving {} with {shards} shards as node {node}; {writers}",
        data_dir.display()
    );
    tracing::info!(addrs = %shown, data_dir = %data_dir.display(), shards, node = %node, writers, "listening");
    if let Some(ring) = &config.ring {
        tracing::info!("one node of {ring}: requests for objects other nodes own get 503");
    }
    notify_systemd("READY=1");
    let stop = running.stop_handle();
    let control = match (config.tls.clone(), tls) {
        (Some(settings), Some(material)) => {
            let control = Arc::new(crate::tls::control::Control::new(settings, material, stop.clone(), install_tls));
            let rotating = control.clone();
            std::thread::Builder::new().name("percore-tls-keys".into()).spawn(move || rotating.rotate_forever())?;
            Some(control)
        }
        _ => None,
    };
    let drain = Duration::from_millis(config.drain_ms);
    std::thread::Builder::new().name("percore-signals".into()).spawn(move || {
        let signal = loop {
            match wait_for_signal() {
                Signal::SIGHUP => reload(control.as_deref()),
                signal => break signal,
            }
        };
        notify_systemd("STOPPING=1");
        if !drain.is_zero() {
            tracing::info!("signal {signal}: draining for {drain:?} (/health answers 503), then stopping");
            draining.set();
            std::thread::sleep(drain);
        }
        tracing::info!("stopping: no new connections, in-flight requests finish");
        stop.stop();
    })?;
    let outcomes = running.join()?;
    for (shard, outcome) in outcomes.into_iter().enumerate() {
        if let Some(Err(err)) = outcome {
            return Err(format!("shard {shard}: {err}").into());
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: reads the TLS certificates and keys again.
fn reload(control: Option<&crate::tls::control::Control>) {
    match control.map(crate::tls::control::Control::reload) {
        None => tracing::info!("SIGHUP: nothing to reload (no TLS certificates configured)"),
        Some(Ok(0)) => tracing::info!("SIGHUP: the self-signed certificate stays as it is"),
        Some(Ok(n)) => tracing::info!("SIGHUP: reloaded {n} TLS certificate(s); new handshakes use them"),
        Some(Err(err)) => tracing::warn!("SIGHUP: {err}; the certificates in use stay"),
    }
}

fn init_logging(config: &Config) -> Result<(), Box<dyn Error>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| format!("--log-level `{}`: {e}", config.log_level))?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| format!("cannot set up logging: {e}").into())
}

/// Every address the daemon listens on, with what it speaks there.
fn every(config: &Config) -> Vec<(std::net::SocketAddr, crate::listen::Kind)> {
    let plain = config.listen.iter().map(|a| (*a, crate::listen::Kind::Plain));
    let tls = config.listen_tls.iter().map(|a| (*a, crate::listen::Kind::Tls));
    let s3 = config.s3.iter().flat_map(|s3| s3.listen.iter().map(|a| (*a, crate::listen::Kind::S3)));
    let s3_tls = config.s3.iter().flat_map(|s3| s3.listen_tls.iter().map(|a| (*a, crate::listen::Kind::S3Tls)));
    plain.chain(tls).chain(s3).chain(s3_tls).collect()
}

/// What the launcher gives each shard besides its listener and the config.
struct Given {
    /// The data directory's canonical path.
    data_dir: PathBuf,
    durability: store::Durability,
    spare_limit: usize,
    draining: Draining,
    /// TLS certificates and keys, when HTTPS listens.
    tls: Option<crate::tls::Material>,
}

async fn shard_main(
    listeners: crate::listen::ShardListeners,
    config: Config,
    given: Given,
    ready: &std::sync::Barrier,
) -> Result<(), String> {
    let root = Dir::open(&given.data_dir)
        .await
        .map_err(|e| format!("cannot open the data directory {}: {e}", given.data_dir.display()));
    let root = match root {
        Ok(root) => root,
        Err(err) => {
            ready.wait();
            percore_cores::stop();
            return Err(err);
        }
    };
    crate::cache::configure(config.cache_bytes_max);
    let ring = match BufRing::new(RECV_BUFFERS, RECV_BUFFER_BYTES) {
        Ok(ring) => ring,
        Err(err) => {
            ready.wait();
            percore_cores::stop();
            return Err(format!("cannot set up receive buffers: {err}"));
        }
    };
    let me = percore_cores::current();
    let balance = Rc::new(Balance::new(me.id, me.count));
    let store = Store::new(root, given.data_dir, me.id, given.durability, given.spare_limit);
    // Checked on the main thread before launch; were it to fail here, the
    // other shards must not wait at the barrier for this one.
    let tls = match given.tls.as_ref().map(crate::tls::shard_config).transpose() {
        Ok(tls) => tls,
        Err(err) => {
            ready.wait();
            percore_cores::stop();
            return Err(err);
        }
    };
    let shard = Rc::new(Shard {
        config,
        tls: std::cell::RefCell::new(tls),
        store,
        connections: Default::default(),
        balance: balance.clone(),
        ring,
        pipes: Default::default(),
        draining: given.draining,
        peer_warnings: Default::default(),
        listings: Default::default(),
        s3: Default::default(),
    });
    crate::shard::install(shard.clone());
    let counted = shard.clone();
    percore_io::spawn(balance::gossip(balance, move || counted.connections.get(), heard));
    // Blocks this thread briefly at start-up, before it serves anything.
    ready.wait();
    // One accept stream per listen address, taken in turn.
    let mut incoming: Vec<_> = listeners.iter().map(|(l, kind)| (l.incoming(), *kind)).collect();
    let mut next_first = 0;
    let accept_failures = crate::throttle::Throttle::default();
    let mut stop = pin!(stopping());
    loop {
        let next = std::future::poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            let count = incoming.len();
            for i in 0..count {
                let at = (next_first + i) % count;
                if let Poll::Ready(accepted) = incoming[at].0.poll_next(cx) {
                    next_first = at + 1;
                    return Poll::Ready(Some((accepted, incoming[at].1)));
                }
            }
            Poll::Pending
        })
        .await;
        match next {
            // Stopping: no new connections; the ones open finish their
            // request in flight (the launcher waits for them, within the grace).
            None => {
                shard.store.close();
                return Ok(());
            }
            Some((Ok(stream), kind)) => {
                let _ = stream.set_nodelay(true);
                match shard.balance.target(shard.connections.get()) {
                    None => {
                        let opened = Counted::new(&shard);
                        percore_io::spawn(conn::serve(stream, shard.clone(), kind, opened, None));
                    }
                    Some(to) => {
                        // Fails only once `to` has exited, which no shard
                        // does while another still accepts.
                        if let Err(err) = percore_cores::post(to, move || adopt(stream, kind)) {
                            tracing::warn!("cannot hand a connection to shard {to}: {err}; it is closed");
                        }
                    }
                }
            }
            Some((Err(err), _)) => {
                // Out of file descriptors ends the multishot accept: back off,
                // then the next poll re-arms it (no busy loop).
                if let Some(held) = accept_failures.admit(std::time::Instant::now()) {
                    let more = crate::throttle::held_back(held);
                    tracing::warn!("accept failed: {err}; retrying in 10 ms{more}");
                }
                percore_io::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves a connection that another shard accepted and handed here (runs
/// on this shard, from its inbox), of the `kind` of listener it came in on.
fn adopt(stream: TcpStream, kind: crate::listen::Kind) {
    let Some(shard) = crate::shard::try_current() else {
        // This shard failed its set-up and everything is stopping.
        return;
    };
    shard.balance.handed_in.set(shard.balance.handed_in.get() + 1);
    let opened = Counted::new(&shard);
    percore_io::spawn(conn::serve(stream, shard, kind, opened, None));
}

/// Takes new TLS material (reloaded certificates, a new ticket key): this
/// shard builds its own config from it, for the handshakes to come (runs
/// on this shard, from its inbox).
fn install_tls(material: crate::tls::Material) {
    let Some(shard) = crate::shard::try_current() else { return };
    match crate::tls::shard_config(&material) {
        Ok(config) => *shard.tls.borrow_mut() = Some(config),
        Err(err) => tracing::warn!("cannot use the new TLS material: {err}; the old stays"),
    }
}

/// News from shard `from` of its load (runs on this shard, from
/// its inbox).
fn heard(from: usize, load: balance::Load) {
    if let Some(shard) = crate::shard::try_current() {
        shard.balance.heard(from, load);
    }
}

/// Raises the soft limit on open files to the hard one (every connection,
/// file in flight and spare file is a descriptor; a default soft limit of
/// 1,024 would cap the connections long before `--connections-max-per-shard`)
/// and returns the soft limit in force.
fn raise_open_files() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // The kernel refuses more than fs.nr_open (an unlimited hard limit
    // included).
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let current = limit.current.unwrap_or(u64::MAX);
    let target = limit.maximum.unwrap_or(u64::MAX).min(nr_open);
    if current < target {
        let raised = Rlimit { current: Some(target), maximum: limit.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return target;
        }
        tracing::warn!("cannot raise the open-file limit from {current} to {target}");
    }
    current
}

/// Tells systemd (`Type=notify`) about the service's state, if it asked:
/// one datagram to `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
/// socket). Failures are logged, never fatal.
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => UnixAddr::from_abstract_name(name),
        None => UnixAddr::from_pathname(std::path::Path::new(&path)),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
    if let Err(err) = sent {
        tracing::warn!("cannot notify systemd ({state}): {err}");
    }
}

/// The signals the daemon takes itself: SIGINT and SIGTERM stop it
/// ([`wait_for_signal`]), and SIGIO is never taken. The store takes a write
/// lease for a moment to learn that no one else has a replaced file open
/// (`store::spares`); should another process open that file in that
/// moment, the kernel breaks the lease by sending SIGIO, whose default
/// action would end the daemon. Blocked in every thread, it stays pending
/// and harmless, and the opener just waits the microseconds until the lease
/// is released.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGIO);
    set
}

/// Blocks [`handled_signals`] in this thread, and so in every thread
/// started after it (the shards included). Called before any thread starts.
fn block_signals() -> Result<(), Box<dyn Error>> {
    handled_signals().thread_block().map_err(|e| format!("cannot block signals: {e}").into())
}

/// Waits for SIGINT, SIGTERM or SIGHUP (blocked by [`block_signals`]).
fn wait_for_signal() -> Signal {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    loop {
        if let Ok(signal) = set.wait() {
            return signal;
        }
    }
}
