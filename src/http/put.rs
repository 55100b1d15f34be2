//! `PUT` and `DELETE /files/<path>`: the body streamed into the store's
//! upload, then the commit on the path's owner shard (`store`), answered
//! from its outcome.

use bytes::Bytes;

use super::body::{BodyError, BodyReader};
use super::reply::Reply;
use super::request::{Body, Request};
use super::response::Head;
use super::wire::Incoming;
use crate::files;
use crate::s3::carried::{self, Carried};
use crate::s3::meta::{self, Folder};
use crate::shard::on_owner;
use crate::store::{Attribute, Conditions, Mark, Outcome, FENCED_MESSAGE};

use crate::files::io_status;

fn conditions(request: &Request) -> Conditions {
    Conditions {
        if_match: request.if_match.clone(),
        if_none_match: request.if_none_match.clone(),
        if_unmodified_since: request.if_unmodified_since.as_deref().and_then(crate::files::http_seconds),
    }
}

/// `PUT /files/<encoded>`, reading the body from `incoming` (`buf` holds
/// what was received after the head). An answer given before the whole
/// body was read closes the connection (the reply says so).
pub(crate) async fn put(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    encoded: &str,
) -> bool {
    let shard = reply.shard;
    // Until the body has been read, any answer closes the connection.
    let close_after = reply.close();
    reply.closing();
    // What S3 keeps with it, from `percore rebalance`.
    let carried = match request.s3_carried.as_deref().map(Carried::decode).transpose() {
        Ok(carried) => carried,
        Err(why) => return reply.simple(400, &format!("{}: {why}\n", carried::HEADER)).await,
    };
    let carried = match (carried, encoded.ends_with('/')) {
        (Some(Carried::Folder(folder)), true) => {
            return Box::pin(mark_folder(reply, request, encoded, folder, close_after)).await
        }
        (Some(Carried::Object { etag, headers }), false) => Some((etag, headers)),
        (None, _) => None,
        (Some(_), _) => {
            let why = "a folder's goes with a path that ends in /, an object's with one that does not";
            return reply.simple(400, &format!("{}: {why}\n", carried::HEADER)).await;
        }
    };
    let path = match files::object_path(encoded) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => return reply.simple(400, &format!("invalid path: {why}\n")).await,
    };
    if shard.store.fenced() {
        return reply.simple(503, FENCED_MESSAGE).await;
    }
    if let Body::Length(n) = request.body {
        if n > shard.config.body_bytes_max {
            // Refused before any of it is read.
            return reply.simple(413, "body too large\n").await;
        }
    }
    let len = match request.body {
        Body::Length(n) => Some(n),
        _ => None,
    };
    let mut upload = match shard.store.begin_upload(&path, len).await {
        Ok(upload) => upload,
        Err((what, err)) => return reply.simple(io_status(&err), &format!("{what}: {err}\n")).await,
    };
    if request.expect_continue && !reply.send_one(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n")).await {
        upload.discard().await;
        return false;
    }
    let mut body =
        BodyReader::new(incoming, buf, request.body, shard.config.body_bytes_max, shard.config.body_timeout());
    let written: Result<String, (u16, String)> = async {
        loop {
            let piece = match body.next().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                // A client that stopped sending gets 408; one that is gone, nothing.
                Err(BodyError::Io(err)) if err.kind() == std::io::ErrorKind::TimedOut => {
                    return Err((408, "request body timed out\n".into()))
                }
                Err(BodyError::Io(err)) => return Err((0, err.to_string())),
                Err(BodyError::Framing(why)) => return Err((400, format!("{why}\n"))),
                Err(BodyError::TooLarge) => return Err((413, "body too large\n".into())),
            };
            let offset = body.total() - piece.len() as u64;
            let (result, _) = upload.file().write_all_at(piece, offset).await;
            result
                .map_err(|e| shard.store.faults().saw(crate::health::Kind::Write, e))
                .map_err(|e| (io_status(&e), format!("cannot store the file: {e}\n")))?;
        }
        let flushed = match &carried {
            // Stamped for this version, set before the flush (as S3 does).
            Some((etag, headers)) => {
                let value = |stamp: &str| meta::encode(stamp, etag, headers);
                let attribute = Attribute { name: meta::XATTR, value: &value };
                upload.flush_with(&shard.store, Some(attribute)).await
            }
            None => upload.flush(&shard.store).await,
        };
        flushed.map_err(|e| (io_status(&e), format!("cannot flush the file: {e}\n")))
    }
    .await;
    let etag = match written {
        Ok(etag) => etag,
        Err((status, message)) => {
            // Nothing of a failed upload stays behind.
            upload.discard().await;
            return status != 0 && reply.simple(status, &message).await;
        }
    };
    let (owner_path, temp, cond) = (path.clone(), upload.temp().to_vec(), conditions(request));
    let result =
        on_owner(&path, move |owner| async move { owner.store.commit_put(owner_path, temp, cond, etag).await }).await;
    if let Outcome::Failed(std::io::ErrorKind::Interrupted, _) = result {
        // The owner stopped before it could commit (shutdown past its grace):
        // the temporary file is ours to remove. (Had it been renamed, this
        // finds nothing.)
        upload.discard().await;
    } else {
        drop(upload);
    }
    // The body is read: the connection stays open as the client asked,
    // unless a stop began while the upload went on.
    if !close_after && !percore_cores::is_stopping() {
        reply.keep_open();
    }
    outcome(reply, result).await
}

/// `PUT /files/<dir>/` with a folder carried by `percore rebalance`: the
/// directory made if missing and marked as S3's folder, durably, on the
/// path's owner shard.
async fn mark_folder(
    reply: &mut Reply<'_>,
    request: &Request,
    encoded: &str,
    folder: Folder,
    close_after: bool,
) -> bool {
    if request.body != Body::None {
        return reply.simple(400, "a folder holds no bytes: send it with an empty body\n").await;
    }
    let path = match files::object_path(encoded.trim_end_matches('/')) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => return reply.simple(400, &format!("invalid path: {why}\n")).await,
    };
    // No body to read: the connection stays open as the client asked.
    if !close_after && !percore_cores::is_stopping() {
        reply.keep_open();
    }
    let value = serde_json::to_vec(&folder).expect("strings serialize");
    let owner_path = path.clone();
    let result = on_owner(&path, move |owner| async move {
        // The bucket (the path's first component) must be there already.
        owner.store.mark_dir(owner_path, Some(1), meta::FOLDER_XATTR, value, Mark::Always).await
    })
    .await;
    outcome(reply, result).await
}

/// `DELETE /files/<encoded>`.
pub(crate) async fn delete(reply: &mut Reply<'_>, request: &Request, encoded: &str) -> bool {
    let path = match files::object_path(encoded) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => return reply.simple(400, &format!("invalid path: {why}\n")).await,
    };
    let (owner_path, cond) = (path.clone(), conditions(request));
    let result = on_owner(&path, move |owner| async move { owner.store.commit_delete(owner_path, cond).await }).await;
    outcome(reply, result).await
}

/// Answers a commit's outcome.
async fn outcome(reply: &mut Reply<'_>, outcome: Outcome) -> bool {
    let (status, etag, body): (u16, Option<String>, String) = match outcome {
        Outcome::Created(etag) => (201, Some(etag), String::new()),
        Outcome::Replaced(etag) => (200, Some(etag), String::new()),
        Outcome::Deleted => (204, None, String::new()),
        Outcome::NotFound => (404, None, "no such file\n".into()),
        Outcome::PreconditionFailed => (412, None, "precondition failed\n".into()),
        Outcome::Fenced => {
            reply.fault("writes are fenced after a failed flush");
            (503, None, FENCED_MESSAGE.into())
        }
        Outcome::Failed(kind, message) => {
            let status = match kind {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => 507,
                std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::AlreadyExists => 409,
                _ => 500,
            };
            // A client's mistake (a PUT onto a directory) is not the
            // operator's concern; a server fault is, with its cause (logged
            // once by the connection loop).
            if status < 500 {
                tracing::debug!(status, "commit refused: {message}");
            } else {
                reply.fault(format!("commit failed: {message}"));
            }
            (status, None, format!("{message}\n"))
        }
    };
    let mut head = Head::new(status);
    if let Some(etag) = etag {
        head = head.header("ETag", etag);
    }
    if !body.is_empty() {
        head = head.header("Content-Type", "text/plain");
    }
    let whole = reply.finish_with(head, body.as_bytes());
    reply.send_one(whole).await
}
