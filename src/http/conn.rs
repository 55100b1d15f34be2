//! One connection: read request heads, answer them in order (pipelined
//! requests included), keep the connection while the client wants it.
//!
//! The loop owns the control flow: it parses a head (`request`), routes it
//! (`route`), checks its token (`auth`), hands it to its handler with a
//! [`Reply`], and records what the answer did ([`Answered`]) in the
//! metrics and the access log. It reads and writes through a [`Wire`]
//! only.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use percore_io::{time, TcpStream};
use rustls::ServerConfig;

use super::body;
use super::reply::{Answered, Reply};
use super::request::{self, Body, Limits, Method, Parsed, Request};
use super::response::Head;
use super::route::{self, Route, Target};
use super::tls::{HandshakeError, Session};
use super::wire::{Incoming, Wire};
use super::{auth, carried, get, home, list, probe, put};
use crate::listen::Kind;
use crate::shard::{Counted, Shard};

/// Serves one connection that came in on a listener of `kind`; `_opened`
/// counts it among the shard's open connections until it ends (taken when
/// it was accepted or handed over, so the count includes connections whose
/// task has not run yet). `moved`: the connection was open on another
/// shard, which had read these bytes of it (`None`: a new connection). On
/// a TLS listener the handshake comes first; on the S3 listener requests
/// go to `s3`. A plain connection waiting for its next request may move on
/// to a less loaded shard (`crate::balance`).
pub(crate) async fn serve(stream: TcpStream, shard: Rc<Shard>, kind: Kind, _opened: Counted, moved: Option<Vec<u8>>) {
    let tls: Option<Arc<ServerConfig>> = if kind.tls() { shard.tls.borrow().clone() } else { None };
    let session = match tls.map(Session::new).transpose() {
        Ok(session) => session,
        Err(err) => {
            tracing::warn!("cannot start a TLS session: {err}");
            return;
        }
    };
    let wire = Wire::new(stream, session, shard.config.send_timeout());
    // A connection that moved here was admitted where it opened: it is
    // never refused mid-conversation.
    if moved.is_none() && shard.connections.get() > shard.config.connections_max_per_shard {
        // Over TLS the 503 would first cost a handshake, the very work an
        // overloaded shard must not take on: the connection just closes.
        if wire.tls().is_none() {
            let mut reply = Reply::new(&wire, &shard, true);
            let head = reply.finish(Head::new(503).header("Retry-After", 1), 0);
            reply.send_one(head).await;
        }
        return;
    }
    // Bytes received and not yet consumed. Empty and unallocated while the
    // connection is idle, so that an idle connection costs its task only.
    let mut buf: Vec<u8> = moved.unwrap_or_default();
    let mut incoming = wire.incoming(&shard.ring);
    // Boxed: a plain connection's task does not carry the handshake's size.
    if wire.tls().is_some() && !Box::pin(handshake(&wire, &shard, &mut incoming, &mut buf)).await {
        return;
    }
    match requests(&wire, &shard, &mut incoming, buf, kind.s3()).await {
        None => wire.close().await,
        Some(Move { to, received }) => {
            drop(incoming);
            if let Some(stream) = wire.into_plain_stream() {
                move_to(to, stream, kind, received);
            }
        }
    }
}

/// Sends an open connection, idle between requests, to shard `to` with
/// the bytes already read from it (`crate::balance`); closed if `to` has
/// stopped.
fn move_to(to: usize, stream: TcpStream, kind: Kind, received: Vec<u8>) {
    if let Err(err) = percore_cores::post(to, move || moved_in(stream, kind, received)) {
        tracing::debug!("cannot move a connection to shard {to}: {err}; it is closed");
    }
}

/// Serves a connection another shard moved here between requests (runs
/// on this shard, from its inbox).
fn moved_in(stream: TcpStream, kind: Kind, received: Vec<u8>) {
    let Some(shard) = crate::shard::try_current() else { return };
    shard.balance.moved_in.set(shard.balance.moved_in.get() + 1);
    let opened = Counted::new(&shard);
    percore_io::spawn(serve(stream, shard, kind, opened, Some(received)));
}

/// A connection leaving for shard `to` between requests, with the bytes
/// that had already arrived.
struct Move {
    to: usize,
    received: Vec<u8>,
}

/// How long a move waits for its receive to stop (the cancel's completion
/// comes with the ring's next round, so in practice microseconds); past
/// it the connection closes.
const HALT_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// The shard a plain connection, just answered, should move to, if any.
fn movable(wire: &Wire, shard: &Shard) -> Option<usize> {
    if wire.tls().is_some() || percore_cores::is_stopping() {
        return None;
    }
    shard.balance.move_target(time::loop_now())
}

/// Halts the connection's receive and gathers what had already arrived
/// into `buf`; `None` if the connection failed meanwhile.
async fn halted(incoming: &mut Incoming<'_>, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    incoming.halt();
    let drained = super::within(HALT_TIME_MAX, async {
        loop {
            match body::recv_into(incoming, &mut buf).await {
                Ok(_) => {}
                // The end of the halted receive (or the client closed: the
                // next shard reads that too).
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return true,
                Err(_) => return false,
            }
        }
    })
    .await;
    matches!(drained, Ok(true)).then_some(buf)
}

/// How long an idle kept-alive connection still takes a request once the
/// daemon stops: a proxy may have sent one on it just as the stop began,
/// and would otherwise see the connection close with no answer (HAProxy then
/// retries at once, on another pooled connection closing the same way).
const STOP_IDLE_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);

/// What a client that speaks plain HTTP to a TLS port gets, in plain text
/// (as nginx does), before the connection closes.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 45\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use an https:// URL.\n";

/// Runs the TLS handshake within the handshake timeout; false if the
/// connection is done (failed, timed out, plain HTTP, stopping).
async fn handshake(wire: &Wire, shard: &Shard, incoming: &mut Incoming<'_>, buf: &mut Vec<u8>) -> bool {
    use crate::metrics::{handshake as count, Handshake};
    let limit = shard.config.tls_handshake_timeout();
    let outcome = super::within(limit, percore_cores::unless_stopping(incoming.handshake(buf))).await;
    let failure = match outcome {
        Ok(Some(Ok(()))) => {
            let resumed = wire.tls().is_some_and(Session::resumed);
            count(if resumed { Handshake::Resumed } else { Handshake::Full });
            return true;
        }
        Ok(None) => return false,
        Ok(Some(Err(HandshakeError::PlainHttp))) => {
            count(Handshake::Failed);
            if wire.send_clear(PLAIN_HTTP_ON_TLS_PORT).await {
                wire.linger(incoming).await;
            }
            return false;
        }
        Ok(Some(Err(err))) => err.to_string(),
        Err(_) => format!("no handshake within {limit:?}"),
    };
    count(Handshake::Failed);
    // The client's doing, not the operator's: debug.
    tracing::debug!("TLS handshake failed: {failure}");
    false
}

/// Serves requests until the connection is done (`None`) or moves to
/// another shard; `s3`: they are S3 API requests.
async fn requests(
    wire: &Wire,
    shard: &Rc<Shard>,
    incoming: &mut Incoming<'_>,
    mut buf: Vec<u8>,
    s3: bool,
) -> Option<Move> {
    let limits =
        Limits { head_bytes_max: shard.config.header_bytes_max, target_bytes_max: shard.config.target_bytes_max };
    // When the head under way must be complete: set by its first byte, so a
    // client trickling a byte at a time cannot hold the connection open
    // beyond the header timeout (slowloris).
    let mut head_deadline: Option<std::time::Instant> = None;
    // The connection's one timer for waiting on its client: postponed at
    // each wait rather than registered anew per request.
    let mut waiting = time::sleep_until(time::loop_now() + shard.config.idle_timeout());
    // Set once the daemon stops while this connection is idle.
    let mut last_call = false;
    // An S3 request's every header (signatures cover any of them): noted
    // by the one parse of its head, kept in space reused request after
    // request.
    let mut headers = crate::s3::head::Headers::default();
    // The activity window this connection was last counted in (`balance`).
    let mut seen = 0;
    loop {
        match request::parse_noting(&buf, &limits, s3.then(|| headers.fields_mut())) {
            Ok(Parsed::Complete(request, head_len)) => {
                head_deadline = None;
                if s3 {
                    headers.take_head(&buf[..head_len]);
                    buf.drain(..head_len);
                    let started = time::loop_now();
                    let close = !request.keep_alive || percore_cores::is_stopping();
                    let mut reply = Reply::new(wire, shard, close);
                    Box::pin(crate::s3::serve(&mut reply, incoming, &mut buf, &request, &headers)).await;
                    let answered = reply.answered();
                    finished(shard, &request, "s3", started, answered, reply.cause());
                    shard.balance.answered(&mut seen);
                    if !answered.keep_alive {
                        if request.body != Body::None {
                            wire.linger(incoming).await;
                        }
                        return None;
                    }
                    continue;
                }
                buf.drain(..head_len);
                let started = time::loop_now();
                let route = route::route(&request);
                let close = !request.keep_alive || percore_cores::is_stopping();
                let mut reply = Reply::new(wire, shard, close);
                // A PUT's body is read by its handler, or by `respond` when
                // it refuses it.
                if request.method != Method::Put {
                    match request.body {
                        Body::None => {}
                        // Bodies are not used by these routes: skip them to
                        // keep the framing, or close when they cannot be
                        // skipped.
                        Body::Length(n) => {
                            if !skip_body(incoming, shard, &mut buf, n).await {
                                return None;
                            }
                        }
                        Body::Chunked => reply.closing(),
                    }
                }
                match route.target {
                    // The hottest answer, and a small future: awaited in
                    // place (no box, no layer: each would copy it once more).
                    Target::Ping => probe::ping_or_health(&mut reply, &request, false).await,
                    // Boxed: the connection's own future then stays small
                    // while it waits between requests (its size is that of
                    // its largest state).
                    _ => Box::pin(respond(&mut reply, incoming, &mut buf, &request, route)).await,
                };
                let answered = reply.answered();
                finished(shard, &request, route.label, started, answered, reply.cause());
                shard.balance.answered(&mut seen);
                if !answered.keep_alive {
                    if request.method == Method::Put {
                        // The answer may have come before the whole body
                        // (refused, failed): closing with unread bytes would
                        // reset the connection and could destroy the answer
                        // in the client's buffers.
                        wire.linger(incoming).await;
                    }
                    return None;
                }
            }
            Ok(Parsed::Partial) => {
                if buf.is_empty() && !last_call && seen != 0 {
                    if let Some(to) = movable(wire, shard) {
                        return halted(incoming, buf).await.map(|received| Move { to, received });
                    }
                }
                // An idle connection waits for the idle timeout; one with a
                // head under way for the header timeout.
                let deadline = if buf.is_empty() {
                    body::spare::give(std::mem::take(&mut buf));
                    time::loop_now() + shard.config.idle_timeout()
                } else {
                    *head_deadline.get_or_insert_with(|| time::loop_now() + shard.config.header_timeout())
                };
                waiting.postpone(deadline);
                let received =
                    time::timeout_by(&mut waiting, percore_cores::unless_stopping(body::recv_into(incoming, &mut buf)))
                        .await;
                match received {
                    Ok(Some(Ok(_))) => {}
                    Err(_) if !buf.is_empty() => {
                        let mut reply = Reply::new(wire, shard, true);
                        reply.simple(408, "request head timed out\n").await;
                        // The client may still be sending its head: without
                        // a lingering close an unread byte turns the close
                        // into a reset, which can destroy the 408.
                        wire.linger(incoming).await;
                        return None;
                    }
                    // Stopping while idle: a request already on its way (a
                    // proxy reusing this kept-alive connection) is still
                    // served, and answered with `Connection: close`.
                    Ok(None) if buf.is_empty() && !last_call => {
                        last_call = true;
                        match super::within(STOP_IDLE_WINDOW, body::recv_into(incoming, &mut buf)).await {
                            Ok(Ok(_)) => {}
                            _ => return None,
                        }
                    }
                    // Closed, failed, idle too long, or shutting down while idle.
                    _ => return None,
                }
            }
            Err(reject) => {
                let mut reply = Reply::new(wire, shard, true);
                reply.simple(reject.status, &format!("{}\n", reject.reason)).await;
                wire.linger(incoming).await;
                return None;
            }
        }
    }
}

/// Answers `request` on its `route`. False if the connection is unusable
/// afterwards (the reply knows more: [`Reply::answered`]).
async fn respond(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    route: Route<'_>,
) -> bool {
    let allowed = auth::allowed(&reply.shard.config, request.bearer.as_deref(), route.access);
    if request.method == Method::Put && (!allowed || !matches!(route.target, Target::Put(_))) {
        // Refused before its body: a small one is read first (`body::settle`:
        // why), from a client that may be a stranger.
        let close_after = reply.close();
        reply.closing();
        body::settle(reply, incoming, buf, request, body::STRANGER_DRAINED_BYTES_MAX, close_after).await;
    }
    if !allowed {
        return reply.unauthorized().await;
    }
    if let (Some(ring), Target::File(_) | Target::Put(_) | Target::Delete(_)) =
        (&reply.shard.config.ring, &route.target)
    {
        // A bucket is on every node (`carried::make_bucket`), owned by none.
        let every_node = matches!(route.target, Target::Put(path) if carried::is_bucket(path));
        if let Some(owner) = ring.elsewhere(&request.path).filter(|_| !every_node) {
            let put = matches!(route.target, Target::Put(_));
            return Box::pin(misdirected(reply, incoming, buf, request, owner, put)).await;
        }
    }
    match route.target {
        Target::Home => home::home(reply, request).await,
        Target::Ping => probe::ping_or_health(reply, request, false).await,
        Target::Health => probe::ping_or_health(reply, request, true).await,
        // Boxed, the rare and large answers: `respond`'s own future, moved
        // into a box per request, stays the size of the common ones.
        Target::Metrics => Box::pin(probe::metrics(reply, request)).await,
        Target::List(dir) => list::list(reply, request, dir).await,
        Target::File(path) => get::get(reply, request, path).await,
        Target::Put(path) => Box::pin(put::put(reply, incoming, buf, request, path)).await,
        Target::Delete(path) => put::delete(reply, request, path).await,
        Target::NotAllowed(allow) => reply.method_not_allowed(allow).await,
        Target::NotFound => reply.simple(404, "no such route\n").await,
    }
}

/// A request for an object another node owns (the load balancer sent it
/// here because that node is out of its ring): 503, never a 404 for an
/// object that may well exist there. A PUT's body is read first if it is
/// small (`body::settle`: why); a larger one closes the connection unread.
async fn misdirected(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    owner: &str,
    put: bool,
) -> bool {
    if put {
        let close_after = reply.close();
        reply.closing();
        body::settle(reply, incoming, buf, request, body::DRAINED_BYTES_MAX, close_after).await;
    }
    let body = format!("this object belongs to node {owner}, which the load balancer cannot reach now: retry later\n");
    let head = Head::new(503)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Retry-After", 1)
        .header("X-Percore-Owner", owner.to_string());
    let whole = if request.method == Method::Head {
        reply.finish(head, body.len() as u64)
    } else {
        reply.finish_with(head, body.as_bytes())
    };
    reply.send_one(Bytes::from(whole)).await
}

/// Records an answered request: the metrics, the access log if enabled,
/// and a server fault (a 5xx with a cause: `Reply::fault`), always, once.
/// Client errors (4xx) are logged at debug: not the operator's warnings.
fn finished(
    shard: &Shard,
    request: &Request,
    label: &'static str,
    started: std::time::Instant,
    answered: Answered,
    cause: Option<&str>,
) {
    // The loop's clock: the tick the head completed in to the tick the
    // answer's last send completed in.
    let elapsed = time::loop_now().saturating_duration_since(started);
    let method = route::method_label(&request.method);
    crate::metrics::record(method, label, answered.status, elapsed);
    // (A deliberate 5xx, such as `/health`'s 503 while draining, records
    // no cause: it is not a fault.)
    if let Some(cause) = cause.filter(|_| answered.status >= 500) {
        tracing::warn!(node = %shard.config.node_name, method, path = %request.path, status = answered.status, "server fault: {cause}");
    } else if (400..500).contains(&answered.status) {
        tracing::debug!(method, path = %request.path, status = answered.status, "client error");
    }
    if shard.config.access_log {
        tracing::info!(
            target: "percore::access",
            node = %shard.config.node_name,
            method,
            path = %request.path,
            status = answered.status,
            bytes = answered.bytes,
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
}

/// Reads and drops a body of `len` bytes that no route uses. False if the
/// connection is unusable afterwards.
async fn skip_body(incoming: &mut Incoming<'_>, shard: &Shard, buf: &mut Vec<u8>, len: u64) -> bool {
    let mut left = len;
    loop {
        let take = (buf.len() as u64).min(left) as usize;
        buf.drain(..take);
        left -= take as u64;
        if left == 0 {
            return true;
        }
        match super::within(shard.config.body_timeout(), body::recv_into(incoming, buf)).await {
            Ok(Ok(_)) => {}
            _ => return false,
        }
    }
}
