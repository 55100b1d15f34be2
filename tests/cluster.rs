//! Several percore nodes behind HAProxy, as deploy/haproxy.cfg sets them
//! up (that file, its addresses replaced): every node and the front end on
//! its own loopback address (127.0.0.10-13). Keys spread evenly and read
//! back byte for byte; each object lives on exactly one node, the one
//! HAProxy picks, which percore computes too (a misrouted key would be
//! refused with 503 and fail the test); a node killed with SIGKILL costs
//! only its own keys, which fail fast with 503, never 404, and come back
//! with it; a rolling restart (SIGTERM, one node at a time) under a steady
//! load through HAProxy fails no request; a fourth node takes about a
//! quarter of the keys, moved by `percore rebalance`, and every object
//! stays readable through the front end. And, without HAProxy, a node's
//! 503 for another node's objects, for every method.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{read_response, Daemon, Response};

const NODES: [(&str, &str); 3] = [("a", "127.0.0.11"), ("b", "127.0.0.12"), ("c", "127.0.0.13")];
/// The node a test adds.
const FOURTH: (&str, &str) = ("d", "127.0.0.14");
const FRONT: &str = "127.0.0.10";

/// HAProxy running deploy/haproxy.cfg with loopback addresses; killed
/// when dropped.
struct Front {
    child: Child,
    addr: SocketAddr,
    /// The S3 front end.
    s3: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // HAProxy's log (requests that did not end cleanly, servers going
        // down and up), shown when the test failed.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self._dir.path().join("haproxy.log")).unwrap_or_default();
            eprintln!("HAProxy's log:\n{log}");
        }
    }
}

fn haproxy_available() -> bool {
    if Command::new("haproxy").arg("-v").output().is_err() {
        crate::util::install_from_debian("haproxy");
    }
    let ok = Command::new("haproxy").arg("-v").output().is_ok();
    if !ok {
        eprintln!("*** SKIPPED: haproxy is not installed and cannot be (.ci/run installs it)");
    }
    ok
}

/// A free port on `ip` (for a node that must come back on the same one).
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// An address with a free port on each of `ips` (for nodes that must come
/// back on the same one).
fn fixed_addrs(ips: &[&str]) -> Vec<SocketAddr> {
    ips.iter().map(|ip| format!("{ip}:{}", free_port(ip)).parse().unwrap()).collect()
}

/// The ring of the three nodes, or with `four` the fourth too.
fn ring(four: bool) -> String {
    let names = NODES.iter().map(|(n, _)| *n).chain(four.then_some(FOURTH.0));
    names.enumerate().map(|(i, n)| format!("{n}={}:256", i + 1)).collect::<Vec<_>>().join(",")
}

/// The name of node `i` (the fourth is `d`).
fn name(i: usize) -> &'static str {
    NODES.get(i).map_or(FOURTH.0, |(n, _)| *n)
}

/// Starts node `i` of the ring of `addrs` (three nodes, or four), on its
/// address there, with the others as its peers.
fn start_node(i: usize, addrs: &[SocketAddr], data: tempfile::TempDir) -> Daemon {
    start_node_with(i, addrs, data, None)
}

/// The others of `addrs` as `--peers` (or `--s3-peers`) names them.
fn peers_of(i: usize, addrs: &[SocketAddr]) -> String {
    let peers: Vec<String> =
        addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(j, a)| format!("{}={a}", name(j))).collect();
    peers.join(",")
}

/// [`start_node`], serving S3 too with `s3`: every node's S3 address and
/// the credentials file.
fn start_node_with(
    i: usize,
    addrs: &[SocketAddr],
    data: tempfile::TempDir,
    s3: Option<(&[SocketAddr], &Path)>,
) -> Daemon {
    let ring = ring(addrs.len() == 4);
    let listen = addrs[i].to_string();
    let peers = peers_of(i, addrs);
    let mut args: Vec<String> =
        ["--listen", &listen, "--cores", "1", "--node-name", name(i), "--ring", &ring, "--peers", &peers]
            .iter()
            .map(|a| a.to_string())
            .collect();
    if let Some((s3_addrs, keys)) = s3 {
        for arg in [
            "--s3-listen",
            &s3_addrs[i].to_string(),
            "--s3-credentials",
            keys.to_str().unwrap(),
            "--s3-peers",
            &peers_of(i, s3_addrs),
        ] {
            args.push(arg.to_string());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start_in(data, &args)
}

/// Three nodes, each on its own loopback address and a fixed port.
fn start_nodes() -> (Vec<Option<Daemon>>, Vec<SocketAddr>) {
    let addrs = fixed_addrs(&NODES.map(|(_, ip)| ip));
    let nodes = (0..NODES.len()).map(|i| Some(start_node(i, &addrs, tempfile::tempdir().unwrap()))).collect();
    (nodes, addrs)
}

fn start_front(nodes: &[SocketAddr]) -> Front {
    start_front_with(nodes, None)
}

/// [`start_front`], its S3 front end (`Front::s3`) sending to `s3`, the
/// nodes' S3 listeners (without: to their `/files/` ones, unused).
fn start_front_with(nodes: &[SocketAddr], s3: Option<&[SocketAddr]>) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind((FRONT, 0)).unwrap().local_addr().unwrap().port();
    let s3_port = std::net::TcpListener::bind((FRONT, 0)).unwrap().local_addr().unwrap().port();
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg")).unwrap();
    let mut config = shipped.replace("bind 10.0.0.10:8080", &format!("bind {FRONT}:{port}"));
    config = config.replace("bind 10.0.0.10:9000", &format!("bind {FRONT}:{s3_port}"));
    for (i, addr) in nodes.iter().enumerate() {
        let s3_addr = s3.map_or(*addr, |s3| s3[i]);
        config = config.replace(
            &format!("10.0.0.{}:9000 id {} check port 8080", 11 + i, i + 1),
            &format!("{s3_addr} id {} check port {}", i + 1, addr.port()),
        );
        config = config.replace(&format!("10.0.0.{}:9000", 11 + i), &s3_addr.to_string());
        config = config.replace(&format!("10.0.0.{}:8080", 11 + i), &addr.to_string());
    }
    assert!(!config.contains("10.0.0."), "every address replaced by a loopback one:\n{config}");
    // A fourth node, as an operator adds one: a server line like the others.
    if nodes.len() == 4 {
        config = config.replace(
            &format!("    server c {} id 3 check\n", nodes[2]),
            &format!("    server c {} id 3 check\n    server d {} id 4 check\n", nodes[2], nodes[3]),
        );
        let s3_d = s3.map_or(nodes[3], |s3| s3[3]);
        let s3_c = format!("{} id 3 check port {}\n", s3.map_or(nodes[2], |s3| s3[2]), nodes[2].port());
        config = config.replace(&s3_c, &format!("{s3_c}    server d {s3_d} id 4 check port {}\n", nodes[3].port()));
        assert!(config.matches("server d ").count() == 2, "{config}");
    }
    // HAProxy's own log of requests that did not end cleanly, kept beside
    // the config (printed if the test fails).
    config = config.replace("global\n", "global\n    log stderr format raw local0 info\n");
    config = config.replace("defaults\n", "defaults\n    log global\n    option httplog\n    option dontlog-normal\n");
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
    let child =
        Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let addr: SocketAddr = format!("{FRONT}:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "HAProxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s3 = format!("{FRONT}:{s3_port}").parse().unwrap();
    Front { child, addr, s3, _dir: dir }
}

fn body(i: usize) -> Vec<u8> {
    format!("object {i} ").repeat(1 + i % 40).into_bytes()
}

fn path(i: usize) -> String {
    format!("objects/{:02}/o{i}", i % 50)
}

/// Sends `raw` on a kept-alive connection to the front end (reconnecting
/// when HAProxy closed it) and reads the answer.
fn exchange(conn: &mut Option<TcpStream>, front: SocketAddr, raw: &[u8]) -> Response {
    for _ in 0..3 {
        let stream = conn.get_or_insert_with(|| {
            let s = TcpStream::connect(front).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            s
        });
        if stream.write_all(raw).is_ok() {
            if let Some(response) = read_response(stream, raw.starts_with(b"HEAD")) {
                if response.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                    *conn = None;
                }
                return response;
            }
        }
        *conn = None;
    }
    panic!("no answer through the front end");
}

#[test]
fn three_nodes_behind_haproxy_share_keys_and_a_killed_node_costs_only_its_own() {
    let _heavy = crate::util::heavy();
    if !haproxy_available() {
        return;
    }
    let (mut nodes, addrs) = start_nodes();
    // Each node says who it is.
    for (node, (name, _)) in nodes.iter().zip(NODES) {
        let node = node.as_ref().unwrap();
        assert_eq!(crate::util::get(node, "/health").header("X-Percore-Node"), Some(name));
        let metrics = crate::util::metrics(node);
        assert!(metrics.contains(&format!("percore_node_info{{node=\"{name}\"}} 1")), "{metrics}");
    }
    let front = start_front(&addrs);
    let front_addr = front.addr;
    // 10,000 objects written through the front end by 4 writers.
    const OBJECTS: usize = 10_000;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut conn = None;
                for i in (w..OBJECTS).step_by(4) {
                    let data = body(i);
                    let mut raw =
                        format!("PUT /files/{} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", path(i), data.len())
                            .into_bytes();
                    raw.extend_from_slice(&data);
                    let r = exchange(&mut conn, front_addr, &raw);
                    assert!(r.status == 201 || r.status == 200, "PUT {}: {} {:?}", path(i), r.status, r.body);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Each on exactly one node; about a third each.
    let dirs: Vec<std::path::PathBuf> = nodes.iter().map(|n| n.as_ref().unwrap().dir().to_path_buf()).collect();
    let mut per_node = [0usize; 3];
    let owner: Vec<usize> = (0..OBJECTS)
        .map(|i| {
            let holders: Vec<usize> = (0..3).filter(|&n| dirs[n].join(path(i)).exists()).collect();
            assert_eq!(holders.len(), 1, "{} is on nodes {holders:?}", path(i));
            per_node[holders[0]] += 1;
            holders[0]
        })
        .collect();
    println!("objects per node: {per_node:?}");
    for n in per_node {
        let share = n as f64 / OBJECTS as f64;
        assert!((share - 1.0 / 3.0).abs() <= 0.1 / 3.0, "{per_node:?}: not a third each within 10%");
    }
    // All read back through the front end, byte for byte.
    let mut conn = None;
    for i in 0..OBJECTS {
        let r =
            exchange(&mut conn, front_addr, format!("GET /files/{} HTTP/1.1\r\nHost: t\r\n\r\n", path(i)).as_bytes());
        assert!(r.status == 200 && r.body == body(i), "GET {}: {}", path(i), r.status);
    }
    // Listings through the front end are complete: gathered from every
    // node, in order, paged.
    let listing = |conn: &mut Option<TcpStream>, target: &str| -> serde_json::Value {
        let r = exchange(conn, front_addr, format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200, "{target}: {:?}", String::from_utf8_lossy(&r.body));
        serde_json::from_slice(&r.body).unwrap()
    };
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    };
    let dirs = listing(&mut conn, "/files/objects/?format=json");
    assert_eq!(names(&dirs).len(), 50, "every directory, each once: {dirs}");
    let mut want: Vec<String> = (0..OBJECTS).filter(|i| i % 50 == 7).map(|i| format!("o{i}")).collect();
    want.sort();
    let mut got = Vec::new();
    let mut after = String::new();
    loop {
        let page = listing(&mut conn, &format!("/files/objects/07/?format=json&limit=64{after}"));
        got.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(got, want, "the listing of one directory, paged, holds every object in it, in order");
    // Node b killed under a mixed load through the front end: its keys
    // fail with 503 (never 404, never wrong bytes), the others' are served.
    let load = mixed_load(front_addr, "1KiB", 4, 0.2, 4);
    std::thread::sleep(Duration::from_millis(1500));
    let killed = 1;
    let data = nodes[killed].take().unwrap().kill9().unwrap();
    let killed_at = Instant::now();
    let report = load.join().unwrap();
    println!("load while node b was killed: {report}");
    let errors = report["errors"].as_object().unwrap();
    assert!(
        errors.keys().all(|kind| kind.contains("503") || kind == "connection closed"),
        "a failure other than 503 while a node was down: {errors:?}"
    );
    assert!(errors.keys().any(|kind| kind.contains("503")), "the dead node's keys got 503: {report}");
    assert!(report["requests"].as_u64().unwrap() > 1000, "the other nodes' keys were served: {report}");
    let wait_until = killed_at + Duration::from_secs(3);
    let mut worst = Duration::ZERO;
    let mut statuses = std::collections::BTreeMap::new();
    for i in (0..OBJECTS).step_by(37) {
        let started = Instant::now();
        let r =
            exchange(&mut conn, front_addr, format!("GET /files/{} HTTP/1.1\r\nHost: t\r\n\r\n", path(i)).as_bytes());
        if owner[i] == killed {
            assert_eq!(
                r.status,
                503,
                "{} lives on the killed node: {} {:?}",
                path(i),
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            // Once HAProxy has marked it down (three failed checks, 1.5 s), fast;
            // before that, HAProxy retries the dead node (1 s apart).
            if started > wait_until {
                worst = worst.max(started.elapsed());
            }
        } else {
            assert!(r.status == 200 && r.body == body(i), "{} on a live node: {}", path(i), r.status);
        }
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    println!("with node b down: {statuses:?}, slowest 503 once it was marked down {worst:?}");
    assert!(worst > Duration::ZERO, "no request for the dead node's keys was timed after it was marked down");
    // A listing says whose part is missing.
    let r = exchange(&mut conn, front_addr, b"GET /files/objects/07/?format=json HTTP/1.1\r\nHost: t\r\n\r\n");
    let page: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert!(r.status == 503 || page["unavailable"] == serde_json::json!(["b"]), "{} {page}", r.status);
    assert!(worst < Duration::from_millis(500), "a request for the dead node's keys took {worst:?}");
    // Restarted on its data and address: every acknowledged object is
    // there again, once HAProxy sees it up (two good checks).
    nodes[killed] = Some(start_node(killed, &addrs, data));
    std::thread::sleep(Duration::from_millis(1500));
    let mut conn = None;
    for i in (0..OBJECTS).filter(|&i| owner[i] == killed) {
        let r =
            exchange(&mut conn, front.addr, format!("GET /files/{} HTTP/1.1\r\nHost: t\r\n\r\n", path(i)).as_bytes());
        assert!(r.status == 200 && r.body == body(i), "after the restart, GET {}: {}", path(i), r.status);
    }
}

#[test]
fn a_rolling_restart_under_load_through_haproxy_fails_no_request() {
    let _heavy = crate::util::heavy();
    if !haproxy_available() {
        return;
    }
    let (mut nodes, addrs) = start_nodes();
    let front = start_front(&addrs);
    // A steady mixed load while each node in turn gets SIGTERM and comes back.
    let load = mixed_load(front.addr, "2KiB", 8, 0.5, 9);
    std::thread::sleep(Duration::from_millis(2000));
    for (i, (name, _)) in NODES.iter().enumerate() {
        let mut node = nodes[i].take().unwrap();
        let data = node.take_data().unwrap();
        let status = node.terminate(Duration::from_secs(10)).expect("stopped on SIGTERM");
        assert!(status.success(), "{name}: {status:?}");
        nodes[i] = Some(start_node(i, &addrs, data));
        // Back in HAProxy's eyes (its checks are 500 ms apart) before the next.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let report = load.join().unwrap();
    println!("rolling restart under load: {report}");
    let errors = report["errors"].as_object().unwrap();
    assert!(errors.is_empty(), "failed requests during the rolling restart: {errors:?}");
    assert!(report["requests"].as_u64().unwrap() > 1000, "{report}");
    drop(front);
}

/// `percore bench` through the front end on its own thread: 90% GET, 10%
/// PUT over 300 keys of `size`, every answer checked; its JSON report.
fn mixed_load(
    front: SocketAddr,
    size: &'static str,
    connections: usize,
    warmup: f64,
    seconds: u64,
) -> std::thread::JoinHandle<serde_json::Value> {
    std::thread::spawn(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_percore"))
            .args(["bench", &format!("http://{front}"), "--workload", "mixed", "--read-percent", "90"])
            .args(["--keys", "300", "--size", size, "--populate", "--cores", "1", "--json"])
            .args(["--connections", &connections.to_string(), "--warmup", &warmup.to_string()])
            .args(["--duration", &seconds.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// `percore rebalance` on a node, returning what it printed.
fn rebalance(node: &Daemon, name: &str, peers: &[(&str, SocketAddr)], extra: &[&str]) -> String {
    let peers = peers.iter().map(|(n, a)| format!("{n}={a}")).collect::<Vec<_>>().join(",");
    let out = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["rebalance", "--node-name", name, "--ring", &ring(true), "--peer", &peers, "--data-dir"])
        .arg(node.dir())
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "rebalance on {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_fourth_node_takes_a_quarter_of_the_keys_and_everything_stays_readable() {
    let _heavy = crate::util::heavy();
    if !haproxy_available() {
        return;
    }
    let (mut nodes, mut addrs) = start_nodes();
    let front = start_front(&addrs);
    const OBJECTS: usize = 3_000;
    let mut conn = None;
    for i in 0..OBJECTS {
        let data = body(i);
        let mut raw = format!("PUT /files/{} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", path(i), data.len())
            .into_bytes();
        raw.extend_from_slice(&data);
        assert_eq!(exchange(&mut conn, front.addr, &raw).status, 201);
    }
    drop(conn);
    // How many would move to a fourth node.
    let fourth: SocketAddr = format!("{}:{}", FOURTH.1, free_port(FOURTH.1)).parse().unwrap();
    let peers: Vec<(&str, SocketAddr)> =
        NODES.iter().map(|(n, _)| *n).zip(addrs.iter().copied()).chain([(FOURTH.0, fourth)]).collect();
    let count = |text: &str| -> usize {
        let first_number = |l: &str| l.split(' ').find_map(|w| w.parse::<usize>().ok());
        text.lines().filter(|l| l.ends_with(" to d")).filter_map(first_number).sum()
    };
    let would: usize = NODES
        .iter()
        .zip(&nodes)
        .map(|((name, _), node)| count(&rebalance(node.as_ref().unwrap(), name, &peers, &["--dry-run"])))
        .sum();
    let share = would as f64 / OBJECTS as f64;
    println!("a fourth node takes {would} of {OBJECTS} keys ({:.1}%)", share * 100.0);
    assert!((0.2..0.3).contains(&share), "{would} of {OBJECTS} would move");
    // The procedure (deploy/README.md): start d; copy; restart the old
    // nodes on the new ring (moved keys now get 503 there, not 404); copy
    // again and delete; point HAProxy at all four.
    let mut four = addrs.clone();
    four.push(fourth);
    let d = start_node(3, &four, tempfile::tempdir().unwrap());
    for ((name, _), node) in NODES.iter().zip(&nodes) {
        rebalance(node.as_ref().unwrap(), name, &peers, &[]);
    }
    for (i, slot) in nodes.iter_mut().enumerate() {
        let mut node = slot.take().unwrap();
        let data = node.take_data().unwrap();
        assert!(node.terminate(Duration::from_secs(10)).unwrap().success());
        *slot = Some(start_node(i, &four, data));
    }
    let mut moved = 0;
    for ((name, _), node) in NODES.iter().zip(&nodes) {
        moved += count(&rebalance(node.as_ref().unwrap(), name, &peers, &["--delete"]));
    }
    assert_eq!(moved, would, "the delete pass moves what the dry run counted");
    drop(front);
    addrs.push(fourth);
    let front = start_front(&addrs);
    std::thread::sleep(Duration::from_millis(1200));
    // Every object on exactly one node, and read back through the front end.
    let dirs: Vec<std::path::PathBuf> =
        nodes.iter().map(|n| n.as_ref().unwrap().dir().to_path_buf()).chain([d.dir().to_path_buf()]).collect();
    let mut conn = None;
    for i in 0..OBJECTS {
        let holders = dirs.iter().filter(|dir| dir.join(path(i)).exists()).count();
        assert_eq!(holders, 1, "{} is on {holders} nodes", path(i));
        let r =
            exchange(&mut conn, front.addr, format!("GET /files/{} HTTP/1.1\r\nHost: t\r\n\r\n", path(i)).as_bytes());
        assert!(r.status == 200 && r.body == body(i), "after adding d, GET {}: {}", path(i), r.status);
    }
}

#[test]
fn a_node_refuses_another_nodes_objects_with_503_for_every_method() {
    let daemon = Daemon::start(&["--node-name", "a", "--ring", "a=1:256,b=2:256"]);
    let mut conn = daemon.connect();
    let mut ask = |raw: String| {
        conn.write_all(raw.as_bytes()).unwrap();
        read_response(&mut conn, raw.starts_with("HEAD")).unwrap()
    };
    // Some keys are a's (404: not written), some b's (503 naming b).
    let mut theirs = None;
    let mut ours = 0;
    for i in 0..64 {
        let r = ask(format!("GET /files/k{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
        match r.status {
            404 => ours += 1,
            503 => {
                assert_eq!(r.header("X-Percore-Owner"), Some("b"));
                assert_eq!(r.header("Retry-After"), Some("1"));
                theirs.get_or_insert(i);
            }
            other => panic!("k{i}: {other}"),
        }
    }
    let theirs = theirs.expect("some of 64 keys are b's");
    assert!(ours > 10, "and many are a's: {ours}");
    // HEAD: the same answer, no body (the connection stays in step).
    let r = ask(format!("HEAD /files/k{theirs} HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_eq!((r.status, r.body.len()), (503, 0));
    assert_eq!(ask("GET /ping HTTP/1.1\r\nHost: t\r\n\r\n".into()).status, 200, "still in step");
    // PUT and DELETE of b's key: refused, nothing written.
    let r = ask(format!("DELETE /files/k{theirs} HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_eq!(r.status, 503);
    let r = ask(format!("PUT /files/k{theirs} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"));
    assert_eq!(r.status, 503);
    // Its body was read: the connection stays in step (behind HAProxy, an
    // answer before the body desynchronised it).
    assert_eq!(ask("GET /ping HTTP/1.1\r\nHost: t\r\n\r\n".into()).status, 200, "in step after a PUT");
    // With Expect: 100-continue, the body is asked for, read, then refused.
    let r =
        ask(format!("PUT /files/k{theirs} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
    assert_eq!(r.status, 100);
    assert_eq!(ask("abc".into()).status, 503);
    assert_eq!(ask("GET /ping HTTP/1.1\r\nHost: t\r\n\r\n".into()).status, 200, "in step after 100 Continue");
    assert!(!daemon.path(&format!("k{theirs}")).exists(), "nothing written for another node's key");
}

/// The S3 API on three nodes behind HAProxy's S3 front end (deploy/haproxy.cfg):
/// boto3 makes a bucket on every node, writes keys that land about a third
/// on each (on the node `/files/` finds them on: read back through the
/// `/files/` front end too), lists them gathered from every node, copies
/// between nodes, uploads in parts, deletes in batches; with a node killed
/// its keys get 503 and listings fail (503) rather than leave its keys
/// out; restarted, everything is there; random listings equal a model of
/// S3's (`listing_model.py`), keys that need encoding round trip
/// (`key_model.py`), and the MinIO SDK, Arrow, object_store (`sdks.py`) and
/// the AWS SDK for JavaScript (`js_sdk.mjs`) work through the front end.
#[test]
fn s3_on_three_nodes_behind_haproxy_lists_copies_and_deletes_across_nodes() {
    let _heavy = crate::util::heavy();
    if !haproxy_available() {
        return;
    }
    let keys = crate::s3::keys_dir();
    let credentials = keys.path().join("credentials");
    let ips: Vec<&str> = NODES.iter().map(|(_, ip)| *ip).collect();
    let (addrs, s3_addrs) = (fixed_addrs(&ips), fixed_addrs(&ips));
    let s3 = Some((s3_addrs.as_slice(), credentials.as_path()));
    let mut nodes: Vec<Option<Daemon>> =
        (0..NODES.len()).map(|i| Some(start_node_with(i, &addrs, tempfile::tempdir().unwrap(), s3))).collect();
    let front = start_front_with(&addrs, Some(&s3_addrs));
    let work = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", front.s3);
    let files = format!("http://{}", front.addr);
    let each_node: Vec<String> = s3_addrs.iter().map(|a| format!("http://{a}")).collect();
    let each_node = each_node.join(",");
    let phase = |name: &str, extra: &[(&str, &str)]| {
        let mut env = vec![
            ("PHASE", name),
            ("FILES_ENDPOINT", files.as_str()),
            ("WORK", work.path().to_str().unwrap()),
            ("NODES_S3", each_node.as_str()),
        ];
        env.extend_from_slice(extra);
        let out = crate::s3::script("cluster.py", &endpoint, None, &env);
        println!("{name}: {}", out.trim());
    };
    phase("fill", &[]);
    // Each object on exactly one node, about a third each.
    let dirs: Vec<std::path::PathBuf> = nodes.iter().map(|n| n.as_ref().unwrap().dir().join("spread")).collect();
    let listed = std::fs::read_to_string(work.path().join("keys")).unwrap();
    let keys_written: Vec<&str> = listed.lines().collect();
    let mut per_node = [0usize; 3];
    let mut on_b = Vec::new();
    for key in &keys_written {
        let holders: Vec<usize> = (0..3).filter(|&n| dirs[n].join(key).is_file()).collect();
        assert_eq!(holders.len(), 1, "{key} is on nodes {holders:?}");
        per_node[holders[0]] += 1;
        if holders[0] == 1 {
            on_b.push(*key);
        }
    }
    println!("S3 objects per node: {per_node:?}");
    for n in per_node {
        let share = n as f64 / keys_written.len() as f64;
        assert!((0.25..=0.42).contains(&share), "{per_node:?}: not about a third each");
    }
    std::fs::write(work.path().join("on_b"), on_b.join("\n")).unwrap();
    // Node b killed: its keys 503, the others' served, listings and bucket
    // changes refused with 503 (never a listing without b's keys).
    let data = nodes[1].take().unwrap().kill9().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    phase("down", &[]);
    // Nothing of b's was written on the nodes that stood in for it.
    for key in &on_b {
        assert!(!dirs[0].join(key).exists() && !dirs[2].join(key).exists(), "{key} was written beside node b");
    }
    nodes[1] = Some(start_node_with(1, &addrs, data, s3));
    std::thread::sleep(Duration::from_millis(1500));
    phase("check", &[]);
    // Listings gathered from the three nodes, against S3's rules.
    crate::s3::script("listing_model.py", &endpoint, None, &[("LISTING_ROUNDS", "2")]);
    // Keys that need encoding, spread over the nodes and deleted in batches.
    crate::s3::script("key_model.py", &endpoint, None, &[("KEYS_COUNT", "60")]);
    // The MinIO SDK, Arrow, object_store and the AWS SDK for JavaScript, and
    // multipart uploads, through the front end.
    crate::s3::script("sdks.py", &endpoint, None, &[]);
    crate::s3::node("js_sdk.mjs", &endpoint, &[]);
    crate::s3::script("parts_model.py", &endpoint, None, &[]);
    // Nothing left behind on any node but the empty data directories.
    for node in nodes.iter().flatten() {
        assert!(!node.dir().join("spread").exists(), "the bucket is gone from {:?}", node.dir());
    }
}

/// S3 objects and folders moved by `percore rebalance` to a fourth node
/// keep what S3 keeps with them: ETags (MD5s and multipart ones),
/// Content-Type, `x-amz-meta-*`, folders' marks; nothing is left twice.
/// Every bucket, an empty one too, is then on the fourth node as well,
/// with its CORS rules and tags.
#[test]
fn a_rebalance_carries_what_s3_keeps_with_objects_and_folders() {
    let _heavy = crate::util::heavy();
    if !haproxy_available() {
        return;
    }
    let keys = crate::s3::keys_dir();
    let credentials = keys.path().join("credentials");
    let ips: Vec<&str> = NODES.iter().map(|(_, ip)| *ip).chain([FOURTH.1]).collect();
    let (four, s3_four) = (fixed_addrs(&ips), fixed_addrs(&ips));
    let (three, s3_three) = (&four[..3], &s3_four[..3]);
    let mut nodes: Vec<Option<Daemon>> = (0..3)
        .map(|i| Some(start_node_with(i, three, tempfile::tempdir().unwrap(), Some((s3_three, &credentials)))))
        .collect();
    let front = start_front_with(three, Some(s3_three));
    let work = tempfile::tempdir().unwrap();
    let phase = |front: &Front, name: &str, s3: &[SocketAddr]| {
        let nodes: Vec<String> = s3.iter().map(|a| format!("http://{a}")).collect();
        let nodes = nodes.join(",");
        let env = [("PHASE", name), ("WORK", work.path().to_str().unwrap()), ("NODES", &nodes)];
        let out = crate::s3::script("rebalance.py", &format!("http://{}", front.s3), None, &env);
        println!("{name}: {}", out.trim());
    };
    phase(&front, "fill", s3_three);
    // The procedure of deploy/README.md, with S3 on every node.
    let peers: Vec<(&str, SocketAddr)> = (0..4).map(|i| (name(i), four[i])).collect();
    let d = start_node_with(3, &four, tempfile::tempdir().unwrap(), Some((&s3_four, &credentials)));
    let copied: Vec<String> =
        nodes.iter().enumerate().map(|(i, node)| rebalance(node.as_ref().unwrap(), name(i), &peers, &[])).collect();
    // The first node makes both buckets on d; the others find them there.
    let made = "buckets (with their CORS rules and tags) on d";
    assert!(copied[0].contains(&format!("made 2 {made}; 0 were there")), "{}", copied[0]);
    assert!(copied[1..].iter().all(|out| out.contains(&format!("made 0 {made}; 2 were there"))), "{copied:?}");
    for (i, slot) in nodes.iter_mut().enumerate() {
        let mut node = slot.take().unwrap();
        let data = node.take_data().unwrap();
        assert!(node.terminate(Duration::from_secs(10)).unwrap().success());
        *slot = Some(start_node_with(i, &four, data, Some((&s3_four, &credentials))));
    }
    let mut report = String::new();
    for (i, node) in nodes.iter().enumerate() {
        report += &rebalance(node.as_ref().unwrap(), name(i), &peers, &["--delete"]);
    }
    println!("{report}");
    assert!(report.contains("S3 folders to d"), "some folders moved to d: {report}");
    drop(front);
    let front = start_front_with(&four, Some(&s3_four));
    std::thread::sleep(Duration::from_millis(1200));
    // Each object and folder mark on one node only.
    let dirs: Vec<std::path::PathBuf> = nodes.iter().flatten().chain([&d]).map(|n| n.dir().join("moving")).collect();
    let listed = std::fs::read_to_string(work.path().join("keys")).unwrap();
    for key in listed.lines() {
        let marked = |dir: &std::path::PathBuf| {
            let path = dir.join(key.trim_end_matches('/'));
            if key.ends_with('/') {
                let mut value = [0u8; 512];
                rustix::fs::getxattr(&path, "user.percore.s3.folder", &mut value).is_ok()
            } else {
                path.is_file()
            }
        };
        assert_eq!(dirs.iter().filter(|dir| marked(dir)).count(), 1, "{key} is not on exactly one node");
    }
    phase(&front, "check", &s3_four);
}
