//! Request metrics, kept per shard (thread-local, no atomics) and gathered
//! over the mesh for `GET /metrics` (Prometheus text format).

use std::cell::RefCell;
use std::fmt::Write;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0];

/// One shard's counters, as sent to the shard that renders them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) shard: usize,
    /// (method, route, status) → requests; a few dozen at most, looked up
    /// by a scan (a `BTreeMap` comparing strings was 3% of a request).
    pub(crate) requests: Vec<(Labels, u64)>,
    /// Requests by the first bucket their latency falls in (not cumulative:
    /// rendering sums them).
    pub(crate) latency_buckets: [u64; BUCKETS.len()],
    pub(crate) latency_count: u64,
    pub(crate) latency_sum_seconds: f64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    /// TLS handshakes: full, resumed (a ticket), failed.
    pub(crate) tls_handshakes: [u64; 3],
    /// What the shard read from its connections and store for this snapshot.
    pub(crate) gauges: Gauges,
    pub(crate) cores: Option<percore_cores::ShardStats>,
    /// The shard thread's CPU time so far (user and system), read on that
    /// thread when the snapshot is taken.
    pub(crate) cpu_seconds: f64,
}

/// A shard's gauges that live elsewhere, given to [`snapshot`] by the
/// shard: its connections (open now, and handed to or taken from other
/// shards since start: `crate::balance`) and its store's commits and spares.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Gauges {
    pub(crate) open: usize,
    /// Connections answered within the last activity window: the load the
    /// shards balance (`crate::balance::ACTIVE_WINDOW`).
    pub(crate) active: usize,
    pub(crate) handed_out: u64,
    pub(crate) handed_in: u64,
    /// Open connections moved to or from other shards between requests.
    pub(crate) moved_out: u64,
    pub(crate) moved_in: u64,
    /// Uploads committed by this shard (as the paths' owner), and the
    /// directory flushes that made them durable.
    pub(crate) commits: (u64, u64),
    /// Paths invalidated in every shard's cache after those commits, and
    /// the broadcasts that carried them.
    pub(crate) invalidations: (u64, u64),
    pub(crate) spare_files: usize,
    pub(crate) spare_files_max: usize,
    /// Directories read whole for a listing, and reads spared by the
    /// entries kept between pages (`listing::kept`).
    pub(crate) listings: (u64, u64),
}

thread_local! {
    static METRICS: RefCell<Snapshot> = RefCell::new(Snapshot::default());
}

/// (method, route, status) of answered requests.
pub(crate) type Labels = (&'static str, &'static str, u16);

/// The same labels (the strings are constants: their addresses usually
/// tell).
fn same(a: &Labels, b: &Labels) -> bool {
    let same_str = |x: &str, y: &str| std::ptr::eq(x, y) || x == y;
    a.2 == b.2 && same_str(a.0, b.0) && same_str(a.1, b.1)
}

/// Counts one answered request.
pub(crate) fn record(method: &'static str, route: &'static str, status: u16, latency: Duration) {
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        let labels = (method, route, status);
        match m.requests.iter_mut().find(|(l, _)| same(l, &labels)) {
            Some((_, n)) => *n += 1,
            None => m.requests.push((labels, 1)),
        }
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            m.latency_buckets[bucket] += 1;
        }
        m.latency_count += 1;
        m.latency_sum_seconds += seconds;
    });
}

pub(crate) fn bytes_in(n: usize) {
    METRICS.with(|m| m.borrow_mut().bytes_in += n as u64);
}

pub(crate) fn bytes_out(n: u64) {
    METRICS.with(|m| m.borrow_mut().bytes_out += n);
}

/// How a TLS handshake ended, as counted.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handshake {
    Full = 0,
    Resumed = 1,
    Failed = 2,
}

/// Counts one TLS handshake.
pub(crate) fn handshake(how: Handshake) {
    METRICS.with(|m| m.borrow_mut().tls_handshakes[how as usize] += 1);
}

/// This shard's counters, with the `gauges` its caller read.
pub(crate) fn snapshot(gauges: Gauges) -> Snapshot {
    let mut s = METRICS.with(|m| m.borrow().clone());
    s.shard = percore_cores::current().id;
    s.gauges = gauges;
    s.cores = Some(percore_cores::stats::local());
    s.cpu_seconds = crate::clock::thread_cpu().as_secs_f64();
    s
}

/// Renders every shard's snapshot as Prometheus text.
/// `fenced`: whether writes are fenced (the store's fence, one for the daemon).
/// `disk_faults`: disk faults since start, by kind (`health::KINDS` order).
pub(crate) fn render(shards: &[Snapshot], fenced: bool, disk_faults: [u64; 5]) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        lines(&mut out);
    };
    family("percore_requests_total", "counter", "Requests answered, by method, route and status.", &mut |o| {
        for s in shards {
            let mut requests = s.requests.clone();
            requests.sort_unstable();
            for ((method, route, status), n) in &requests {
                let _ = writeln!(
                    o,
                    "percore_requests_total{{shard=\"{}\",method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}",
                    s.shard
                );
            }
        }
    });
    family("percore_request_duration_seconds", "histogram", "Time from a request's head to its response.", &mut |o| {
        for s in shards {
            let mut n = 0;
            for (bound, in_bucket) in BUCKETS.iter().zip(s.latency_buckets) {
                n += in_bucket;
                let _ =
                    writeln!(o, "percore_request_duration_seconds_bucket{{shard=\"{}\",le=\"{bound}\"}} {n}", s.shard);
            }
            let _ = writeln!(
                o,
                "percore_request_duration_seconds_bucket{{shard=\"{}\",le=\"+Inf\"}} {}",
                s.shard, s.latency_count
            );
            let _ =
                writeln!(o, "percore_request_duration_seconds_sum{{shard=\"{}\"}} {}", s.shard, s.latency_sum_seconds);
            let _ = writeln!(o, "percore_request_duration_seconds_count{{shard=\"{}\"}} {}", s.shard, s.latency_count);
        }
    });
    family("percore_tls_handshakes_total", "counter", "TLS handshakes, by result.", &mut |o| {
        for s in shards {
            for (result, n) in ["full", "resumed", "failed"].iter().zip(s.tls_handshakes) {
                let _ = writeln!(o, "percore_tls_handshakes_total{{shard=\"{}\",result=\"{result}\"}} {n}", s.shard);
            }
        }
    });
    family(
        "percore_shard_cpu_seconds_total",
        "counter",
        "CPU time of each shard's thread, user and system (its load over an interval: the rate of this).",
        &mut |o| {
            for s in shards {
                let _ = writeln!(o, "percore_shard_cpu_seconds_total{{shard=\"{}\"}} {:.6}", s.shard, s.cpu_seconds);
            }
        },
    );
    let mut gauge = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Snapshot) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in shards {
            let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, value(s));
        }
    };
    gauge("percore_received_bytes_total", "counter", "Bytes received from clients.", &|s| s.bytes_in);
    gauge("percore_sent_bytes_total", "counter", "Bytes sent to clients.", &|s| s.bytes_out);
    gauge("percore_open_connections", "gauge", "Open client connections.", &|s| s.gauges.open as u64);
    gauge(
        "percore_active_connections",
        "gauge",
        "Connections answered within the last 10 ms: the load the shards balance.",
        &|s| s.gauges.active as u64,
    );
    gauge(
        "percore_connections_handed_out_total",
        "counter",
        "Connections accepted here and handed to a less loaded shard.",
        &|s| s.gauges.handed_out,
    );
    gauge(
        "percore_connections_handed_in_total",
        "counter",
        "Connections another shard accepted and handed here.",
        &|s| s.gauges.handed_in,
    );
    gauge(
        "percore_connections_moved_out_total",
        "counter",
        "Open connections moved from here to a less loaded shard between two requests.",
        &|s| s.gauges.moved_out,
    );
    gauge(
        "percore_connections_moved_in_total",
        "counter",
        "Open connections another shard moved here between two requests.",
        &|s| s.gauges.moved_in,
    );
    gauge("percore_commits_total", "counter", "Uploads committed by this shard as their path's owner.", &|s| {
        s.gauges.commits.0
    });
    gauge(
        "percore_commit_flushes_total",
        "counter",
        "Directory flushes of those commits (uploads to one path waiting together share one).",
        &|s| s.gauges.commits.1,
    );
    gauge(
        "percore_cache_invalidations_total",
        "counter",
        "Paths dropped from every shard's cache after this shard's commits.",
        &|s| s.gauges.invalidations.0,
    );
    gauge(
        "percore_cache_invalidation_broadcasts_total",
        "counter",
        "Broadcasts that carried those invalidations (commits finishing together share one).",
        &|s| s.gauges.invalidations.1,
    );
    gauge(
        "percore_spare_files",
        "gauge",
        "Replaced small files kept (under temporary names) for uploads to overwrite.",
        &|s| s.gauges.spare_files as u64,
    );
    gauge("percore_spare_files_max", "gauge", "The most spare files a shard keeps.", &|s| {
        s.gauges.spare_files_max as u64
    });
    gauge("percore_listing_dir_reads_total", "counter", "Directories read whole for a listing's page.", &|s| {
        s.gauges.listings.0
    });
    gauge(
        "percore_listing_dir_reads_spared_total",
        "counter",
        "Listing pages of a large unchanged directory served from its entries kept since an earlier page.",
        &|s| s.gauges.listings.1,
    );
    let io = |f: fn(&percore_cores::ShardStats) -> u64| move |s: &Snapshot| s.cores.as_ref().map_or(0, f);
    gauge("percore_io_sqes_submitted_total", "counter", "SQEs handed to the ring.", &io(|c| c.io.sqes_submitted));
    gauge("percore_io_ring_enters_total", "counter", "io_uring_enter calls.", &io(|c| c.io.ring_enters));
    gauge("percore_io_cqes_reaped_total", "counter", "Completions reaped.", &io(|c| c.io.cqes_reaped));
    gauge("percore_io_tasks_polled_total", "counter", "Task polls.", &io(|c| c.io.tasks_polled));
    gauge(
        "percore_io_timers_total",
        "counter",
        "Timers registered (request timeouts).",
        &io(|c| c.io.timers_registered),
    );
    gauge(
        "percore_io_timers_to_heap_total",
        "counter",
        "Timers still armed two loop ticks after they were registered.",
        &io(|c| c.io.timers_to_heap),
    );
    gauge(
        "percore_io_doorbell_wakeups_total",
        "counter",
        "Wake-ups by another shard's doorbell.",
        &io(|c| c.io.doorbell_wakeups),
    );
    gauge("percore_mesh_messages_in_total", "counter", "Cross-shard messages received.", &io(|c| c.messages_in));
    gauge("percore_mesh_messages_out_total", "counter", "Cross-shard messages sent.", &io(|c| c.messages_out));
    gauge("percore_mesh_wakeups_sent_total", "counter", "Doorbells rung for parked shards.", &io(|c| c.wakeups_sent));
    let _ = writeln!(
        out,
        "# HELP percore_disk_errors_total I/O errors that say the storage is failing (EIO, read-only or corrupted file system), by what was being done.\n# TYPE percore_disk_errors_total counter"
    );
    for (kind, n) in crate::health::KINDS.iter().zip(disk_faults) {
        let _ = writeln!(out, "percore_disk_errors_total{{kind=\"{}\"}} {n}", kind.label());
    }
    let fenced = u8::from(fenced);
    let _ = writeln!(
        out,
        "# HELP percore_writes_fenced 1 once a flush to disk has failed: writes are refused until a restart.\n# TYPE percore_writes_fenced gauge\npercore_writes_fenced {fenced}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut s = Snapshot { shard: 1, bytes_in: 10, ..Snapshot::default() };
        s.requests.push((("GET", "files", 200), 3));
        s.latency_buckets[0] = 1;
        s.latency_count = 1;
        let text = render(&[s], false, [0; 5]);
        assert!(
            text.contains("percore_requests_total{shard=\"1\",method=\"GET\",route=\"files\",status=\"200\"} 3"),
            "{text}"
        );
        assert!(text.contains("percore_received_bytes_total{shard=\"1\"} 10"));
        assert!(text.contains("percore_request_duration_seconds_bucket{shard=\"1\",le=\"+Inf\"} 1"));
        assert!(text.lines().all(|l| l.starts_with('#') || l.starts_with("percore_")), "{text}");
    }

    #[test]
    fn recorded_requests_render_as_counters_and_a_cumulative_histogram() {
        let ms = |m: f64| Duration::from_secs_f64(m / 1000.0);
        // Labels equal in content but not in address count together.
        let files = String::from("files").leak();
        for (method, route, status, latency) in [
            ("GET", "ping", 200, ms(0.05)),
            ("GET", "files", 200, ms(0.2)),
            ("GET", &*files, 200, ms(3.0)),
            ("PUT", "files", 201, ms(20_000.0)),
            ("GET", "ping", 200, ms(0.1)),
        ] {
            record(method, route, status, latency);
        }
        let mut s = METRICS.with(|m| m.borrow().clone());
        s.shard = 0;
        let text = render(&[s], false, [0; 5]);
        let sample = |line: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(line).and_then(|rest| rest.strip_prefix(' ')))
                .unwrap_or_else(|| panic!("no {line} in\n{text}"))
                .to_string()
        };
        let requests = |m: &str, r: &str, st: u16| {
            sample(&format!("percore_requests_total{{shard=\"0\",method=\"{m}\",route=\"{r}\",status=\"{st}\"}}"))
        };
        assert_eq!(requests("GET", "ping", 200), "2");
        assert_eq!(requests("GET", "files", 200), "2");
        assert_eq!(requests("PUT", "files", 201), "1");
        let bucket = |le: &str| sample(&format!("percore_request_duration_seconds_bucket{{shard=\"0\",le=\"{le}\"}}"));
        assert_eq!(bucket("0.0001"), "2", "50 and 100 µs");
        assert_eq!(bucket("0.00025"), "3");
        assert_eq!(bucket("0.005"), "4");
        assert_eq!(bucket("10"), "4", "20 s is beyond the last bound");
        assert_eq!(bucket("+Inf"), "5");
        assert_eq!(sample("percore_request_duration_seconds_count{shard=\"0\"}"), "5");
    }
}
