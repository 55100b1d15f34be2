//! What operators and load balancers ask: `/ping`, `/health`, `/metrics`.

use std::future::Future;

use bytes::Bytes;

use super::reply::Reply;
use super::request::{Method, Request};
use super::response::Head;
use crate::rendered::Rendered;

/// `GET /ping` (`health == false`) or `GET /health`. (A plain function
/// returning the send's future: no state machine of its own on the
/// hottest path.)
pub(crate) fn ping_or_health<'a>(
    reply: &mut Reply<'a>,
    request: &Request,
    health: bool,
) -> impl Future<Output = bool> + 'a {
    let head_only = request.method == Method::Head;
    // A fenced daemon still serves reads: healthy, but says so.
    // A failing disk (I/O errors in the last minute, on any shard) makes
    // the daemon unhealthy: an orchestrator should move traffic away.
    let disk = if health { reply.shard.store.faults().recent() } else { None };
    let (status, body): (u16, &'static [u8]) = match (health, reply.shard.draining()) {
        (false, _) => (200, b"pong\n"),
        (true, false) if reply.shard.store.fenced() => (200, b"read-only\n"),
        (true, false) if disk.is_some() => (503, b"disk errors in the last minute: check the disk and the log\n"),
        (true, false) => (200, b"ready\n"),
        (true, true) => (503, b"draining\n"),
    };
    // Never kept by a cache: a stale health answer would mislead.
    // (Borrowed, not cloned: `/ping` runs this for every request.)
    let shard = reply.shard;
    let head = || {
        let head = Head::new(status).header("Content-Type", "text/plain").header("Cache-Control", "no-store");
        if health {
            // Which shard answered: where this connection is served now
            // (connections move between shards: `crate::balance`).
            head.header("X-Percore-Node", &shard.config.node_name)
                .header("X-Percore-Shard", percore_cores::current().id)
        } else {
            head
        }
    };
    if !health && !head_only && !reply.close() {
        // The same bytes for every kept-alive `GET /ping` within a second:
        // rendered once a second per shard.
        thread_local! {
            static PONG: Rendered = Rendered::default();
        }
        let whole = PONG.with(|pong| pong.get(|| head().finish_with(body, false)));
        reply.rendered(200);
        return reply.send_one(whole);
    }
    let whole = if head_only { reply.finish(head(), body.len() as u64) } else { reply.finish_with(head(), body) };
    reply.send_one(Bytes::from(whole))
}

/// `GET /metrics`: every shard's counters, gathered over the mesh.
pub(crate) async fn metrics(reply: &mut Reply<'_>, request: &Request) -> bool {
    let gathered = percore_cores::broadcast(|| {
        let gauges = crate::shard::try_current().map(|shard| shard.gauges()).unwrap_or_default();
        crate::metrics::snapshot(gauges)
    })
    .await;
    match gathered {
        Ok(shards) => {
            let mut text =
                crate::metrics::render(&shards, reply.shard.store.fenced(), reply.shard.store.faults().counts());
            text.push_str(&format!(
                "# HELP percore_node_info This node's name.\n# TYPE percore_node_info gauge\npercore_node_info{{node=\"{}\"}} 1\n",
                reply.shard.config.node_name
            ));
            let head =
                Head::new(200).header("Content-Type", "text/plain; version=0.0.4").header("Cache-Control", "no-store");
            let mut parts = vec![Bytes::from(reply.finish(head, text.len() as u64))];
            if request.method != Method::Head {
                parts.push(Bytes::from(text));
            }
            reply.send(parts).await
        }
        Err(err) => reply.simple(503, &format!("{err}\n")).await,
    }
}
