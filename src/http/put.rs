//! `PUT` and `DELETE /files/<path>`: the body streamed into the store's
//! upload, then the commit on the path's owner shard (`store`), answered
//! from its outcome.

use bytes::Bytes;

use super::body::{self, BodyError, BodyReader};
use super::reply::Reply;
use super::request::{Body, Request};
use super::wire::Incoming;
use crate::files;
use crate::s3::carried::{self, Carried};
use crate::s3::meta;
use crate::shard::on_owner;
use crate::store::{Attribute, Conditions, Outcome, FENCED_MESSAGE};

use super::outcome::outcome;
use crate::files::io_status;

fn conditions(request: &Request) -> Conditions {
    Conditions {
        if_match: request.if_match.clone(),
        if_none_match: request.if_none_match.clone(),
        if_unmodified_since: request.if_unmodified_since.as_deref().and_then(crate::files::http_seconds),
    }
}

/// `PUT /files/<encoded>`, reading the body from `incoming` (`buf` holds
/// what was received after the head). A refusal before the body reads a
/// small body first ([`refuse`]); a failure while it streams in closes the
/// connection (the reply says so).
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
        Err(why) => {
            return refuse(reply, incoming, buf, request, close_after, 400, &format!("{}: {why}\n", carried::HEADER))
                .await
        }
    };
    let carried = match (carried, encoded.ends_with('/')) {
        (Some(Carried::Folder(folder)), true) => {
            return Box::pin(super::carried::mark_folder(reply, request, encoded, folder, close_after)).await
        }
        (Some(Carried::Bucket(bucket)), true) => {
            return Box::pin(super::carried::make_bucket(reply, request, encoded, bucket, close_after)).await
        }
        (Some(Carried::Object { etag, headers }), false) => Some((etag, headers)),
        (None, _) => None,
        (Some(_), _) => {
            let why = "a folder's or a bucket's goes with a path that ends in /, an object's with one that does not";
            return refuse(reply, incoming, buf, request, close_after, 400, &format!("{}: {why}\n", carried::HEADER))
                .await;
        }
    };
    let path = match files::object_path(encoded) {
        Ok(path) => path,
        Err(files::PathError::Invalid(why)) => {
            return refuse(reply, incoming, buf, request, close_after, 400, &format!("invalid path: {why}\n")).await
        }
    };
    if shard.store.fenced() {
        return refuse(reply, incoming, buf, request, close_after, 503, FENCED_MESSAGE).await;
    }
    if let Body::Length(n) = request.body {
        if n > shard.config.body_bytes_max {
            // Refused before any of it is read (`refuse` reads none).
            return refuse(reply, incoming, buf, request, close_after, 413, "body too large\n").await;
        }
    }
    let len = match request.body {
        Body::Length(n) => Some(n),
        _ => None,
    };
    let mut upload = match shard.store.begin_upload(&path, len).await {
        Ok(upload) => upload,
        Err((what, err)) => {
            let message = format!("{what}: {err}\n");
            return refuse(reply, incoming, buf, request, close_after, io_status(&err), &message).await;
        }
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
    reply.keep_open(close_after);
    outcome(reply, result).await
}

/// Answers a PUT refused before its body was read. The body is read and
/// dropped first if it is small (`body::settle`: why HAProxy needs that;
/// no more than the store would take), so the connection stays open; a
/// larger one is not read, and the connection closes.
async fn refuse(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    close_after: bool,
    status: u16,
    message: &str,
) -> bool {
    let max = reply.shard.config.body_bytes_max;
    body::settle(reply, incoming, buf, request, max, close_after).await;
    reply.simple(status, message).await
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
