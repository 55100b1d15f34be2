//! What `percore rebalance` carries that is not an object's bytes (header
//! `X-Percore-S3`, `s3::carried`): an S3 folder's mark, `PUT
//! /files/<dir>/`, and a bucket with its own settings, `PUT
//! /files/<bucket>/`. Each lands durably before the answer.

use super::outcome::outcome;
use super::reply::Reply;
use super::request::{Body, Request};
use crate::files;
use crate::s3::carried::Bucket;
use crate::s3::meta::{self, Folder};
use crate::shard::on_owner;
use crate::store::{Mark, Outcome, FENCED_MESSAGE};

/// `PUT /files/<dir>/` with a folder carried by `percore rebalance`: the
/// directory made if missing and marked as S3's folder, durably, on the
/// path's owner shard.
pub(super) async fn mark_folder(
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
    reply.keep_open(close_after);
    let value = serde_json::to_vec(&folder).expect("strings serialize");
    let owner_path = path.clone();
    let result = on_owner(&path, move |owner| async move {
        // The bucket (the path's first component) must be there already.
        owner.store.mark_dir(owner_path, Some(1), meta::FOLDER_XATTR, value, Mark::Always).await
    })
    .await;
    outcome(reply, result).await
}

/// Whether `encoded` (a `/files/` path) names a bucket: one name and a
/// slash. Every node of a ring takes it (no node owns a bucket).
pub(super) fn is_bucket(encoded: &str) -> bool {
    encoded.strip_suffix('/').is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// `PUT /files/<bucket>/` with a bucket carried by `percore rebalance`:
/// the bucket made if missing (durably, as CreateBucket makes it), then
/// given each setting it does not have yet. A setting it has stays: the
/// nodes of a ring were all given the same, and the one here is as recent
/// as any carried. 201 if the bucket was made, 200 if it was there.
pub(super) async fn make_bucket(
    reply: &mut Reply<'_>,
    request: &Request,
    encoded: &str,
    bucket: Bucket,
    close_after: bool,
) -> bool {
    if request.body != Body::None {
        return reply.simple(400, "a bucket holds no bytes: send it with an empty body\n").await;
    }
    let name = match files::object_path(encoded.trim_end_matches('/')) {
        Ok(path) => String::from_utf8(path).ok().filter(|n| crate::s3::keys::check_bucket(n).is_ok()),
        Err(files::PathError::Invalid(_)) => None,
    };
    let Some(name) = name else {
        let why = "a bucket's settings go with a bucket's name: 3-63 lower-case letters, digits, `.` and `-`";
        return reply.simple(400, &format!("{why}\n")).await;
    };
    // No body to read: the connection stays open as the client asked.
    reply.keep_open(close_after);
    let store = &reply.shard.store;
    if store.fenced() {
        return reply.simple(503, FENCED_MESSAGE).await;
    }
    let existed = matches!(store.root().stat(name.as_str()).await, Ok(meta) if meta.is_dir());
    if !existed {
        let inside = format!("{name}/x");
        if let Err(err) = store.parent_dir(inside.as_bytes(), true).await {
            let kind = err.kind();
            return outcome(reply, Outcome::Failed(kind, format!("cannot make the bucket {name}: {err}"))).await;
        }
    }
    for (attribute, value) in bucket.attributes() {
        let path = name.clone().into_bytes();
        let marked = on_owner(name.as_bytes(), move |owner| async move {
            owner.store.mark_dir(path, None, attribute, value, Mark::IfAbsent).await
        })
        .await;
        match marked {
            // Set, or kept as it was.
            Outcome::Created(_) | Outcome::PreconditionFailed => {}
            other => return outcome(reply, other).await,
        }
    }
    let made = if existed { Outcome::Replaced(String::new()) } else { Outcome::Created(String::new()) };
    outcome(reply, made).await
}
