//! `GET /files/<dir>/`: a directory's listing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use bytes::Bytes;

use super::reply::Reply;
use super::request::{Method, Request};
use super::response::Head;
use crate::files;
use crate::files::io_status;
use crate::listing::Page;

/// Lists the directory `encoded` (after `/files/`, empty or ending in `/`).
pub(crate) async fn list(reply: &mut Reply<'_>, request: &Request, encoded: &str) -> bool {
    let query = match crate::listing::parse_query(request.query.as_deref()) {
        Ok(query) => query,
        Err(why) => return reply.simple(400, &format!("{why}\n")).await,
    };
    let root = reply.shard.store.root();
    let dir = match encoded.trim_end_matches('/') {
        "" => root.open_dir(".").await,
        path => match files::object_path(path) {
            Ok(path) => root.open_dir(OsStr::from_bytes(&path)).await,
            Err(files::PathError::Invalid(why)) => return reply.simple(400, &format!("invalid path: {why}\n")).await,
        },
    };
    let gathering = !query.local && !reply.shard.config.peers.is_empty();
    let html = query.html.unwrap_or(request.prefers_html);
    let limit = query.page_size(html);
    let page = match dir {
        Ok(dir) => match crate::listing::list(&dir, &query, limit, &reply.shard.listings).await {
            Ok(page) => Some(page),
            Err(err) => return reply.simple(io_status(&err), &format!("cannot list: {err}\n")).await,
        },
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP)) => {
            None
        }
        Err(err) => return reply.simple(io_status(&err), &format!("cannot list: {err}\n")).await,
    };
    // Behind a load balancer the directory's objects are on every node.
    let page = if gathering { gather(reply, request, page, limit).await } else { page };
    let Some(page) = page else {
        return reply.simple(404, "no such directory\n").await;
    };
    let (body, content_type) = if html {
        (page.html(&request.path, &query), "text/html; charset=utf-8")
    } else {
        match page.json() {
            Ok(json) => (json, "application/json"),
            Err(err) => return reply.simple(500, &format!("cannot list: {err}\n")).await,
        }
    };
    // The same URL answers HTML or JSON by the client's Accept.
    let head = Head::new(200).header("Content-Type", content_type).header("Vary", "Accept");
    let head = reply.finish(head, body.len() as u64);
    let mut parts = vec![Bytes::from(head)];
    if request.method != Method::Head {
        parts.push(Bytes::from(body));
    }
    reply.send(parts).await
}

/// This node's part of a listing (`None`: no such directory here) with
/// every peer's, asked for the same page (of `limit` entries); a peer that does not answer is
/// named in the page. `None` if no node has the directory.
async fn gather(reply: &Reply<'_>, request: &Request, mine: Option<Page>, limit: usize) -> Option<Page> {
    let kept: Vec<&str> = request
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| ["prefix=", "after="].iter().any(|k| p.starts_with(k)))
        .collect();
    let kept: String = kept.iter().map(|p| format!("{p}&")).collect();
    let target = format!("{}?{kept}limit={limit}&local=1&format=json", request.path);
    let authorization = request.bearer.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    // Every peer at once, each a task on this shard.
    let asked: Vec<_> = reply
        .shard
        .config
        .peers
        .iter()
        .cloned()
        .map(|peer| {
            let (target, authorization) = (target.clone(), authorization.clone());
            percore_io::spawn(async move {
                let answer = crate::peers::get(&peer, &target, &authorization).await;
                (peer.name, answer)
            })
        })
        .collect();
    let mut found = mine.is_some();
    let mut pages: Vec<Page> = mine.into_iter().collect();
    let mut unavailable = Vec::new();
    for task in asked {
        match task.await {
            (name, Ok((200, body))) => match Page::from_json(&body) {
                Ok(page) => {
                    found = true;
                    pages.push(page);
                }
                Err(why) => {
                    warn_peer(reply, &format!("node {name} sent a listing that does not parse: {why}"));
                    unavailable.push(name);
                }
            },
            // No such directory there.
            (_, Ok((404, _))) => {}
            (name, Ok((status, _))) => {
                warn_peer(reply, &format!("node {name} answered {status} to a listing"));
                unavailable.push(name);
            }
            (name, Err(why)) => {
                warn_peer(reply, &format!("node {name} did not answer a listing: {why}"));
                unavailable.push(name);
            }
        }
    }
    (found || !unavailable.is_empty()).then(|| Page::merge(pages, limit, unavailable))
}

/// Logs a peer's failure, at most once per window per shard.
fn warn_peer(reply: &Reply<'_>, what: &str) {
    if let Some(held) = reply.shard.peer_warnings.admit(std::time::Instant::now()) {
        tracing::warn!("{what}; the listing names it as unavailable{}", crate::throttle::held_back(held));
    }
}
