//! `GET /files/<dir>/`: a directory's listing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use bytes::Bytes;

use super::put::io_status;
use super::reply::Reply;
use super::request::{Method, Request};
use super::response::Head;
use crate::files;

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
    let dir = match dir {
        Ok(dir) => dir,
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP)) => {
            return reply.simple(404, "no such directory\n").await
        }
        Err(err) => return reply.simple(io_status(&err), &format!("cannot list: {err}\n")).await,
    };
    let page = match crate::listing::list(&dir, &query).await {
        Ok(page) => page,
        Err(err) => return reply.simple(io_status(&err), &format!("cannot list: {err}\n")).await,
    };
    let (body, content_type) = if query.html.unwrap_or(request.prefers_html) {
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
