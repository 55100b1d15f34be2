//! S3 on the nodes of a ring (`--ring`, `--s3-peers`): each object lives
//! on the node HAProxy hashes its path to, the same node `/files/` uses
//! (the front end hashes `/files` followed by the S3 path:
//! deploy/haproxy.cfg), and a node answers 503 ServiceUnavailable, never
//! NoSuchKey, for an object another node owns. What spans nodes reaches
//! them through their S3 listeners, signed with the first key of
//! `--s3-credentials` (every node has the same file) and marked with the
//! query parameter [`LOCAL`], which makes the node answer for itself only:
//! - buckets are made, removed and given CORS rules on every node (a node
//!   that does not answer fails the request, 503, naming it);
//! - a bucket's listing (and its multipart uploads) gathers every node's
//!   part of the same page; a node that does not answer fails it, 503:
//!   an incomplete listing would read as deleted objects to `aws s3 sync
//!   --delete` or `rclone sync`;
//! - DeleteObjects sends each node its own keys;
//! - a copy whose source lives on another node reads it from there
//!   (`remote`).

use serde::{Deserialize, Serialize};

use crate::peers::{self, Answer, Ask, Peer, Streamed};

use super::error::S3Error;
use super::head::encode;
use super::sign::{canonical_query, payload_hash, Signer};
use super::Call;

/// The query parameter of a request one node sends another: answer for
/// yourself only.
pub(crate) const LOCAL: &str = "x-percore-local";

/// With [`LOCAL`], a listing's start key (base64url of its bytes: a key
/// need not be UTF-8 on disk).
pub(crate) const AFTER: &str = "x-percore-after";

/// A node's part of a listing page, as it sends it to the node that
/// gathers the page (keys in base64url: on disk they are bytes).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Part {
    /// (key, size, modified, ETag)
    pub(crate) objects: Vec<(String, u64, u64, String)>,
    pub(crate) prefixes: Vec<String>,
}

/// Whether a node's part of a listing holds no key (false if it does not
/// parse).
pub(crate) fn holds_nothing(body: &[u8]) -> bool {
    serde_json::from_slice::<Part>(body).is_ok_and(|p| p.objects.is_empty() && p.prefixes.is_empty())
}

/// Whether this node is one of a ring's.
pub(crate) fn on_ring(call: &Call<'_, '_, '_>) -> bool {
    !call.shard().config.s3_peers.is_empty()
}

/// Whether this request asks for this node's part only (sent by a peer).
pub(crate) fn local(call: &Call<'_, '_, '_>) -> bool {
    call.query.has(LOCAL)
}

/// Whether the request's answer needs the other nodes too.
pub(crate) fn spans_nodes(call: &Call<'_, '_, '_>) -> bool {
    on_ring(call) && !local(call)
}

/// The ring's name for the node that owns the object at `path` (as sent,
/// `/bucket/key`), if another node owns it.
pub(crate) fn elsewhere<'s>(call: &Call<'_, 's, '_>, path: &str) -> Option<&'s str> {
    let ring = call.shard().config.ring.as_ref()?;
    ring.elsewhere(&files_path(path))
}

/// The peer that owns `key` of `bucket`, if another node owns it.
pub(crate) fn owner_of<'s>(call: &Call<'_, 's, '_>, bucket: &str, key: &str) -> Option<&'s Peer> {
    let name = elsewhere(call, &object_path(bucket, key))?;
    call.shard().config.s3_peers.iter().find(|p| p.name == name)
}

/// What the front end hashes for an S3 path: the `/files/` path of the
/// same object, so that both APIs find it on one node.
fn files_path(path: &str) -> String {
    format!("/files{path}")
}

/// `/bucket/key`, encoded as SigV4 (and the SDKs) encode a path.
pub(crate) fn object_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", encode(key.as_bytes(), true))
}

/// The request `method path?query` to `peer`, signed (`extra`: further
/// headers to sign and send).
fn signed(
    call: &Call<'_, '_, '_>,
    peer: &Peer,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (String, String, Vec<u8>) {
    let settings = call.shard().config.s3.as_ref().expect("an S3 listener has S3 settings");
    // The first key by name: every node reads the same file.
    let (access, secret) = settings.credentials.iter().min().expect("checked at start: a node of a ring has keys");
    let signer = Signer::new(access, secret, &settings.region);
    let hash = payload_hash(&body);
    let host = peer.addr.to_string();
    let lines =
        signer.headers_with_query(method, path, query, &host, extra, &hash, crate::clock::coarse_epoch_seconds());
    let mut target = path.to_string();
    let query = canonical_query(query);
    if !query.is_empty() {
        target.push('?');
        target.push_str(&query);
    }
    (target, lines, body)
}

/// Asks `peer` for its part: `method path?query` with [`LOCAL`] added,
/// signed; its whole answer.
pub(crate) async fn ask(
    call: &Call<'_, '_, '_>,
    peer: &Peer,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let mut query = query.to_vec();
    query.push((LOCAL, "1"));
    let (target, lines, body) = signed(call, peer, method, path, &query, &[], body);
    let answer = peers::exchange(peer.addr, Ask { method, target: &target, lines: &lines, body }).await;
    warn(call, &peer.name, &answer);
    answer
}

/// Opens `GET path` on `peer` (with `extra` headers, signed), its body to
/// be read piece by piece.
pub(crate) async fn open(
    call: &Call<'_, '_, '_>,
    peer: &Peer,
    path: &str,
    extra: &[(&str, &str)],
) -> Result<Streamed, String> {
    let (target, lines, _) = signed(call, peer, "GET", path, &[(LOCAL, "1")], extra, Vec::new());
    let streamed =
        peers::open(peer.addr, Ask { method: "GET", target: &target, lines: &lines, body: Vec::new() }).await;
    warn(call, &peer.name, &streamed);
    streamed
}

/// Asks every peer at once (each a task on this shard), as [`ask`]; their
/// names and answers, in `--s3-peers` order.
pub(crate) async fn everywhere(
    call: &Call<'_, '_, '_>,
    method: &'static str,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, Result<Answer, String>)> {
    let mut query = query.to_vec();
    query.push((LOCAL, "1"));
    let asked: Vec<_> = call
        .shard()
        .config
        .s3_peers
        .iter()
        .map(|peer| {
            let (target, lines, body) = signed(call, peer, method, path, &query, &[], body.to_vec());
            let (name, addr) = (peer.name.clone(), peer.addr);
            percore_io::spawn(async move {
                let answer = peers::exchange(addr, Ask { method, target: &target, lines: &lines, body }).await;
                (name, answer)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(asked.len());
    for task in asked {
        let (name, answer) = task.await;
        warn(call, &name, &answer);
        answers.push((name, answer));
    }
    answers
}

/// A node that did not answer: 503, naming it (logged by [`warn`] where
/// it failed, not as this node's fault).
pub(crate) fn unreachable(name: &str, why: &str) -> S3Error {
    S3Error::new(
        503,
        "ServiceUnavailable",
        format!("node {name} of the ring did not answer ({why}): retry once every node is up"),
    )
    .caused_elsewhere()
}

/// Logs that a peer did not answer, at most once per window per shard.
fn warn<T>(call: &Call<'_, '_, '_>, name: &str, answer: &Result<T, String>) {
    if let Err(why) = answer {
        if let Some(held) = call.shard().peer_warnings.admit(std::time::Instant::now()) {
            tracing::warn!(
                "node {name} of the ring did not answer an S3 request ({why}); S3 requests that need it fail with \
                 503{}",
                crate::throttle::held_back(held)
            );
        }
    }
}

/// A node's S3 error answer, as this node's: its status and code, its
/// message naming the node.
pub(crate) fn refused(name: &str, answer: &Answer) -> S3Error {
    let text = String::from_utf8_lossy(&answer.body);
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find('<')?;
        // (Escaped as `xml::Writer` escapes it.)
        quick_xml::escape::unescape(&text[start..end]).ok().map(|t| t.into_owned())
    };
    let code = field("Code").unwrap_or_default();
    let known = ["BucketNotEmpty", "NoSuchBucket", "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch"];
    let code = known.into_iter().find(|k| *k == code).unwrap_or("ServiceUnavailable");
    let status = if code == "ServiceUnavailable" { 503 } else { answer.status };
    let message = field("Message").unwrap_or_else(|| format!("status {}", answer.status));
    let err = S3Error::new(status, code, format!("node {name} of the ring: {message}"));
    // (Its own fault, if any, that node logs.)
    if status >= 500 {
        err.caused_elsewhere()
    } else {
        err
    }
}

/// On a ring, repeats a change of a bucket's own setting (`method` of
/// `?subresource`, with `body`, answered `fine`) on every other node, so
/// that any node answers for it; `partly` says what a failure leaves and
/// what to do.
pub(crate) async fn on_every_node(
    call: &Call<'_, '_, '_>,
    method: &'static str,
    bucket: &str,
    subresource: &str,
    body: &[u8],
    fine: u16,
    partly: &str,
) -> Result<(), S3Error> {
    if !spans_nodes(call) {
        return Ok(());
    }
    let answers = everywhere(call, method, &format!("/{bucket}"), &[(subresource, "")], body).await;
    match first_failure(&answers, &[fine]) {
        Some(err) => Err(err.because(partly)),
        None => Ok(()),
    }
}

/// The first failure among `answers` (a status not in `fine`).
pub(crate) fn first_failure(answers: &[(String, Result<Answer, String>)], fine: &[u16]) -> Option<S3Error> {
    answers.iter().find_map(|(name, answer)| match answer {
        Ok(a) if fine.contains(&a.status) => None,
        Ok(a) => Some(refused(name, a)),
        Err(why) => Some(unreachable(name, why)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_apis_hash_the_same_path_and_a_nodes_errors_name_it() {
        // HAProxy's S3 front end hashes `/files` followed by the S3 path.
        assert_eq!(files_path(&object_path("b", "d/k 1+2")), "/files/b/d/k%201%2B2");
        let body = b"<?xml version=\"1.0\"?><Error><Code>BucketNotEmpty</Code><Message>not empty</Message></Error>";
        let err = refused("b", &Answer { status: 409, body: body.to_vec() });
        assert_eq!(
            (err.status, err.code, err.message.as_str()),
            (409, "BucketNotEmpty", "node b of the ring: not empty")
        );
        assert!(!err.elsewhere);
        let odd = refused("c", &Answer { status: 500, body: b"<Error><Code>Odd</Code></Error>".to_vec() });
        assert_eq!((odd.status, odd.code), (503, "ServiceUnavailable"));
        assert!(odd.elsewhere, "another node's 5xx is not this node's fault");
        assert!(odd.message.contains("node c") && odd.message.contains("status 500"), "{}", odd.message);
        let down = unreachable("a", "cannot connect");
        assert_eq!((down.status, down.elsewhere), (503, true));
    }
}
