//! `percore bench`: the load generator. It runs on its own pinned client
//! shards (`percore-cores` + `percore-io`), checks every response, and
//! reports throughput, latency percentiles (HDR histogram), errors by kind
//! and its own CPU use per core, so a run where the client was the limit is
//! visible as such.

mod client;
mod link;
mod workload;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::error::Error;
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percore_cores::{launch, CoreSet};

use self::client::{Plan, Stats};
use self::workload::{ByteRange, Kind, Sizes};

/// Prints a line on standard output; when the reader has gone (`percore
/// bench ... | head -1`), exits quietly as command-line tools do, instead
/// of panicking as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// `percore bench` options.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// Target, e.g. http://127.0.0.1:8080 or https://localhost:8443
    url: String,
    /// Client CPUs: a count or a list (`1`, `2-3`).
    #[arg(long, default_value = "all")]
    cores: String,
    /// Connections in total, spread over the client cores.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up in seconds (not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Requests in flight per connection (pipelining depth; closed loop only).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Open loop: requests per second in total, latency measured from each
    /// request's intended send time. Without it: closed loop, as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Workload: ping, get, put or mixed.
    #[arg(long, default_value = "ping")]
    workload: Kind,
    /// For mixed: percentage of reads.
    #[arg(long, default_value_t = 90)]
    read_percent: u8,
    /// Keys to use (get, put, mixed).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Object sizes: `4KiB`, or weighted `4KiB:90,1MiB:10`.
    #[arg(long, default_value = "4KiB")]
    size: Sizes,
    /// Create the keys first with PUTs (needed before a get run).
    #[arg(long)]
    populate: bool,
    /// GETs ask for this byte range, `START-END` (inclusive) or `START-`;
    /// 206 (416 past the object) expected and checked byte for byte.
    #[arg(long)]
    range: Option<ByteRange>,
    /// GETs revalidate with `If-None-Match` and the ETag this connection last
    /// got for the key; 304 expected while it is unchanged (counted).
    #[arg(long)]
    conditional: bool,
    /// S3: sign every request (AWS Signature V4, the payload's SHA-256 and a CRC32 as boto3 sends them) with this key, `ACCESS_KEY_ID:SECRET_KEY`, for a daemon's --s3-listen address; keys live in the bucket `bench` (made by --populate).
    #[arg(long, env = "PERCORE_BENCH_S3", hide_env_values = true)]
    s3: Option<String>,
    /// Bearer token for the requests.
    #[arg(long, env = "PERCORE_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// HTTPS: trust the server's certificate if this CA (PEM) signed it [default: the system's roots].
    #[arg(long)]
    cacert: Option<String>,
    /// HTTPS: do not verify the server's certificate at all.
    #[arg(long)]
    insecure: bool,
    /// A new connection for every request (`Connection: close`): over HTTPS, each request pays a handshake, so req/s is handshakes/s.
    #[arg(long)]
    new_connection: bool,
    /// HTTPS: resume sessions with tickets (with --new-connection: resumed handshakes instead of full ones).
    #[arg(long)]
    resume: bool,
    /// HTTPS key exchange offered: `x25519` (as curl with OpenSSL 3.0) or `hybrid` (X25519MLKEM768 first, as current browsers).
    #[arg(long, default_value = "x25519", value_parser = ["x25519", "hybrid"])]
    kx: String,
    /// HTTPS: only this TLS version, `1.2` or `1.3` [default: either, 1.3 preferred].
    #[arg(long)]
    tls_version: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

struct ShardResult {
    stats: Stats,
    cpu: Duration,
    wall: Duration,
}

thread_local! {
    /// This client shard's counters (read by the progress line).
    static STATS: RefCell<Option<Rc<RefCell<Stats>>>> = const { RefCell::new(None) };
}

/// The target's address, its `Host`, and whether it is HTTPS.
fn resolve(url: &str) -> Result<(SocketAddr, String, bool), Box<dyn Error>> {
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err("the URL must start with http:// or https://".into()),
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:{}", if tls { 443 } else { 80 })
    };
    let addr = with_port.to_socket_addrs()?.next().ok_or_else(|| format!("cannot resolve {host}"))?;
    Ok((addr, host.to_string(), tls))
}

/// The TLS plan for an https:// target.
fn tls_plan(args: &BenchArgs, host: &str, tls: bool) -> Result<Option<link::TlsPlan>, Box<dyn Error>> {
    if !tls {
        return Ok(None);
    }
    Ok(Some(link::TlsPlan::new(
        host,
        args.cacert.as_deref(),
        args.insecure,
        args.resume,
        args.kx == "hybrid",
        args.tls_version.clone(),
    )?))
}

fn run_phase(
    args: &BenchArgs,
    kind: Kind,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    interval: Option<Duration>,
) -> Result<Vec<ShardResult>, Box<dyn Error>> {
    let (addr, host, tls) = resolve(&args.url)?;
    let tls = tls_plan(args, &host, tls)?;
    let cores: CoreSet = args.cores.parse()?;
    let start = Instant::now() + Duration::from_millis(50);
    let plan = Arc::new(Plan {
        addr,
        host,
        kind,
        keys: args.keys,
        sizes: args.size.clone(),
        pipeline: if interval.is_some() { 1 } else { args.pipeline.max(1) },
        interval,
        measure_from: start + warmup,
        stop_at: start + warmup + duration,
        token: args.token.clone(),
        range: args.range,
        conditional: args.conditional,
        tls,
        new_connection: args.new_connection,
        s3: args.s3.as_deref().map(crate::s3::sign::Signer::parse).transpose()?,
    });
    let progress = std::io::stdout().is_terminal() && !args.json;
    let config = percore_cores::Config { cores, ..percore_cores::Config::default() };
    let running = launch(config, move |shard| {
        let plan = plan.clone();
        async move {
            let plan = Rc::new(Plan::clone(&plan));
            let stats = Rc::new(RefCell::new(Stats::new()));
            STATS.with(|s| *s.borrow_mut() = Some(stats.clone()));
            let (cpu0, wall0) = (crate::clock::thread_cpu(), Instant::now());
            let mine = (shard.id..connections).step_by(shard.count);
            // This shard's own TLS config (and session cache).
            let tls = plan.tls.as_ref().map(link::TlsPlan::config);
            let tasks: Vec<_> = mine
                .map(|c| percore_io::spawn(client::run(plan.clone(), stats.clone(), c as u64, tls.clone())))
                .collect();
            if shard.id == 0 && progress {
                percore_io::spawn(report_progress(plan.clone()));
            }
            for task in tasks {
                task.await;
            }
            let stats = std::mem::replace(&mut *stats.borrow_mut(), Stats::new());
            ShardResult { stats, cpu: crate::clock::thread_cpu() - cpu0, wall: wall0.elapsed() }
        }
    })?;
    Ok(running.join()?.into_iter().flatten().collect())
}

/// Prints requests per second once a second (shard 0, on a terminal),
/// gathering every client shard's counters over the mesh.
async fn report_progress(plan: Rc<Plan>) {
    let mut last = (0u64, 0u64);
    let mut tick = Instant::now();
    while Instant::now() < plan.stop_at {
        percore_io::time::sleep(Duration::from_secs(1)).await;
        let counts = percore_cores::broadcast(|| {
            STATS.with(|s| {
                s.borrow().as_ref().map_or((0, 0, 0), |st| {
                    let st = st.borrow();
                    (st.requests, st.bytes, st.errors.values().sum::<u64>())
                })
            })
        })
        .await;
        let Ok(counts) = counts else { return };
        let (requests, bytes, errors) = counts.iter().fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        let seconds = tick.elapsed().as_secs_f64();
        tick = Instant::now();
        say!(
            "{:>9.0} req/s {:>8.1} MB/s errors {errors}",
            (requests - last.0) as f64 / seconds,
            (bytes - last.1) as f64 / seconds / 1e6
        );
        last = (requests, bytes);
    }
}

pub(crate) fn run(args: BenchArgs) -> Result<(), Box<dyn Error>> {
    let kind = match args.workload {
        Kind::Mixed(_) => Kind::Mixed(args.read_percent.min(100)),
        other => other,
    };
    if args.s3.is_some() && kind == Kind::Ping {
        return Err("--s3 serves objects, not /ping: give --workload get, put or mixed".into());
    }
    if args.populate {
        populate(&args).map_err(|e| format!("populating failed: {e}"))?;
    }
    let interval = args.rate.map(|rate| Duration::from_secs_f64(args.connections as f64 / rate.max(0.001)));
    let results = run_phase(
        &args,
        kind,
        args.connections.max(1),
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.duration),
        interval,
    )?;
    report(&args, kind, &results);
    Ok(())
}

/// Writes every key once over `POPULATE_CONNECTIONS` connections in
/// parallel (key `k` on connection `k mod n`: a random put run would not be
/// sure to reach them all), each request head and body in one write with
/// Nagle off, so that a durable server's flushes, not delayed ACKs, set the
/// pace.
fn populate(args: &BenchArgs) -> Result<(), Box<dyn Error>> {
    const POPULATE_CONNECTIONS: u64 = 16;
    let (addr, host, tls) = resolve(&args.url)?;
    let tls = tls_plan(args, &host, tls)?;
    let signer = args.s3.as_deref().map(crate::s3::sign::Signer::parse).transpose()?;
    if let Some(signer) = &signer {
        make_bench_bucket(addr, &host, signer)?;
    }
    let lanes = POPULATE_CONNECTIONS.min(args.keys.max(1));
    let handles: Vec<_> = (0..lanes)
        .map(|lane| {
            let (keys, sizes, token, host) = (args.keys, args.size.clone(), args.token.clone(), host.clone());
            let (tls, signer) = (tls.clone(), signer.clone());
            std::thread::spawn(move || -> Result<(), String> {
                use std::io::{Read, Write};
                let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
                tcp.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut stream: Box<dyn ReadWrite> = match tls {
                    None => Box::new(tcp),
                    Some(plan) => {
                        let conn = rustls::ClientConnection::new(plan.config(), plan.server_name.clone())
                            .map_err(|e| e.to_string())?;
                        Box::new(rustls::StreamOwned::new(conn, tcp))
                    }
                };
                for key in (lane..keys).step_by(lanes as usize) {
                    let size = sizes.of(key);
                    let body = workload::contents(key, size);
                    let (path, auth) = match &signer {
                        Some(signer) => {
                            let path = workload::s3_path(key);
                            let auth = client::s3_headers(signer, "PUT", &path, &host, &body);
                            (path, auth)
                        }
                        None => (
                            workload::path(key),
                            token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default(),
                        ),
                    };
                    let mut request =
                        format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {size}\r\n\r\n")
                            .into_bytes();
                    request.extend_from_slice(&body);
                    stream.write_all(&request).map_err(|e| e.to_string())?;
                    // The response head, a byte at a time (it is short).
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
                        head.push(byte[0]);
                    }
                    // 204: how some servers (nginx's WebDAV) acknowledge a replace.
                    if !(head.starts_with(b"HTTP/1.1 201")
                        || head.starts_with(b"HTTP/1.1 200")
                        || head.starts_with(b"HTTP/1.1 204"))
                    {
                        let text = String::from_utf8_lossy(&head).to_string();
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        let mut body = vec![0u8; length.min(4096)];
                        let _ = stream.read_exact(&mut body);
                        let status = text.lines().next().unwrap_or_default();
                        return Err(format!(
                            "PUT of key {key} answered {status}: {}",
                            String::from_utf8_lossy(&body).trim()
                        ));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "a populate thread panicked")??;
    }
    Ok(())
}

/// Makes the bucket `bench` on an S3 listener (it may exist already).
fn make_bench_bucket(addr: SocketAddr, host: &str, signer: &crate::s3::sign::Signer) -> Result<(), Box<dyn Error>> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr)?;
    let auth = client::s3_headers(signer, "PUT", "/bench", host, b"");
    tcp.write_all(
        format!("PUT /bench HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    if answer.starts_with("HTTP/1.1 200") || answer.contains("BucketAlreadyOwnedByYou") {
        Ok(())
    } else {
        Err(format!("cannot make the bucket bench: {}", answer.lines().next().unwrap_or("no answer")).into())
    }
}

/// A blocking stream, plain or TLS (for populating).
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

fn report(args: &BenchArgs, kind: Kind, results: &[ShardResult]) {
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let (mut requests, mut bytes, mut not_modified) = (0u64, 0u64, 0u64);
    let (mut connections, mut resumed) = (0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in results {
        let _ = histogram.add(&r.stats.histogram);
        requests += r.stats.requests;
        bytes += r.stats.bytes;
        not_modified += r.stats.not_modified;
        connections += r.stats.connections;
        resumed += r.stats.resumed;
        for (kind, n) in &r.stats.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
    }
    let seconds = args.duration;
    let loads: Vec<f64> = results.iter().map(|r| r.cpu.as_secs_f64() / r.wall.as_secs_f64().max(1e-9)).collect();
    let q = |p: f64| histogram.value_at_quantile(p);
    if args.json {
        let json = serde_json::json!({
            "url": args.url,
            "workload": match kind { Kind::Ping => "ping", Kind::Get => "get", Kind::Put => "put", Kind::Mixed(_) => "mixed" },
            "read_percent": match kind { Kind::Mixed(p) => Some(p), _ => None },
            "connections": args.connections,
            "pipeline": args.pipeline,
            "rate": args.rate,
            "range": args.range.map(|r| format!("{}-{}", r.start, r.end.map(|e| e.to_string()).unwrap_or_default())),
            "conditional": args.conditional,
            "not_modified": not_modified,
            "new_connection": args.new_connection,
            "connections_per_second": connections as f64 / seconds,
            "resumed_handshakes": resumed,
            "seconds": seconds,
            "requests": requests,
            "requests_per_second": requests as f64 / seconds,
            "megabytes_per_second": bytes as f64 / seconds / 1e6,
            "latency_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": histogram.max()},
            "errors": errors,
            "client_core_load": loads,
        });
        say!("{json}");
        return;
    }
    say!(
        "{:.0} req/s, {:.1} MB/s over {seconds} s ({} requests)",
        requests as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        requests
    );
    if args.conditional {
        say!("304 Not Modified: {not_modified} of {requests}");
    }
    if args.new_connection {
        say!("{:.0} connections/s ({resumed} of {connections} TLS handshakes resumed)", connections as f64 / seconds);
    }
    say!("latency µs: p50 {} p90 {} p99 {} p99.9 {} max {}", q(0.5), q(0.9), q(0.99), q(0.999), histogram.max());
    let loads: Vec<String> = loads.iter().map(|l| format!("{:.0}%", l * 100.0)).collect();
    say!("client core load: {}", loads.join(" "));
    if errors.is_empty() {
        say!("errors: none");
    } else {
        for (kind, n) in &errors {
            say!("errors: {kind}: {n}");
        }
    }
}
