//! DeleteObject and DeleteObjects (a batch, XML): of objects, through the
//! store's delete commit, and of folders (`folder`). Deleting what does not
//! exist succeeds, as on S3.
//!
//! A delete can be conditional, as on S3: DeleteObject's `If-Match` (an
//! ETag, or `*`: the object must exist), `x-amz-if-match-size` and
//! `x-amz-if-match-last-modified-time`; in DeleteObjects, an Object's
//! `ETag`, `Size` and `LastModifiedTime`. A condition that does not hold is
//! 412 PreconditionFailed and deletes nothing; `If-Match` on a key that
//! does not exist is 404 NoSuchKey. The version that matched is the one
//! the commit removes (its validator goes with it): an object replaced in
//! between is kept, 409 ConditionalRequestConflict.

use super::error::{malformed_xml, no_such_key, not_implemented, S3Error};
use super::object::{self, commit_error, conflict, etag_listed, precondition_failed, Opened};
use super::xml::{self, Writer};
use super::{bucket, cluster, folder, keys, unkept, Call};
use crate::peers::Peer;
use crate::shard::on_owner;
use crate::store::{Conditions, Outcome};

/// What a conditional delete asks of the object it removes.
#[derive(Clone, Default)]
struct DeleteIf {
    /// An `If-Match` list (or `*`).
    etag: Option<String>,
    size: Option<u64>,
    /// Last-Modified, in seconds since the epoch.
    modified: Option<u64>,
}

impl DeleteIf {
    /// DeleteObject's conditions, from its headers.
    fn from_headers(call: &Call<'_, '_, '_>) -> Result<DeleteIf, S3Error> {
        if call.request.if_none_match.is_some() {
            return Err(not_implemented("If-None-Match on DeleteObject").because("a delete takes If-Match only"));
        }
        let size = match call.headers.get("x-amz-if-match-size") {
            Some(text) => Some(text.trim().parse().map_err(|_| invalid_header("x-amz-if-match-size", text))?),
            None => None,
        };
        let modified = match call.headers.get("x-amz-if-match-last-modified-time") {
            Some(text) => Some(
                super::date::parse_timestamp(text)
                    .ok_or_else(|| invalid_header("x-amz-if-match-last-modified-time", text))?,
            ),
            None => None,
        };
        Ok(DeleteIf { etag: call.request.if_match.clone(), size, modified })
    }

    /// An Object's conditions in DeleteObjects: its `ETag`, `Size` and
    /// `LastModifiedTime` (an HTTP date, as botocore writes it, or ISO 8601).
    fn from_xml(etag: Option<String>, size: Option<&str>, modified: Option<&str>) -> Result<DeleteIf, S3Error> {
        let size = match size {
            Some(text) => Some(text.trim().parse().map_err(|_| malformed_xml(format!("Size {text:?} is no size")))?),
            None => None,
        };
        let modified = match modified {
            Some(text) => Some(
                super::date::parse_timestamp(text)
                    .ok_or_else(|| malformed_xml(format!("LastModifiedTime {text:?} is no time")))?,
            ),
            None => None,
        };
        Ok(DeleteIf { etag, size, modified })
    }

    fn any(&self) -> bool {
        self.etag.is_some() || self.size.is_some() || self.modified.is_some()
    }

    fn hold_for(&self, object: &Opened) -> bool {
        self.etag.as_deref().is_none_or(|list| etag_listed(list, object.etag()))
            && self.size.is_none_or(|size| size == object.size)
            && self.modified.is_none_or(|secs| i64::try_from(secs) == Ok(object.stat.mtime.0))
    }
}

fn invalid_header(name: &str, text: &str) -> S3Error {
    super::error::invalid_argument(format!("{name}: {text:?} does not parse"))
}

/// DeleteObject.
pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let conditions = DeleteIf::from_headers(call)?;
    bucket::must_exist(call, bucket).await?;
    delete_one(call, bucket, path, &conditions).await?;
    call.empty(204, "").await
}

/// Deletes the object at `path` if `conditions` hold for it; deleting what
/// does not exist succeeds, as on S3, unless `If-Match` asked for it.
async fn delete_one(call: &Call<'_, '_, '_>, bucket: &str, path: &[u8], conditions: &DeleteIf) -> Result<(), S3Error> {
    let mut guard = Conditions::default();
    if conditions.any() {
        match object::open(call, bucket, path).await {
            Ok(current) if conditions.hold_for(&current) => guard.if_match = Some(current.stamp),
            Ok(_) => return Err(precondition_failed()),
            Err(err) if err.code == "NoSuchKey" && conditions.etag.is_none() => return Ok(()),
            Err(err) => return Err(err),
        }
    }
    let guarded = guard.if_match.is_some();
    let owner_path = path.to_vec();
    let outcome = on_owner(path, move |owner| async move { owner.store.commit_delete(owner_path, guard).await }).await;
    match outcome {
        Outcome::Deleted => Ok(()),
        Outcome::NotFound if guarded && conditions.etag.is_some() => Err(no_such_key()),
        Outcome::NotFound => Ok(()),
        Outcome::PreconditionFailed if guarded => Err(conflict("delete")),
        // A directory (a "prefix"), not an object: nothing to delete.
        Outcome::Failed(std::io::ErrorKind::IsADirectory, _) if !guarded => Ok(()),
        other => Err(commit_error(other)),
    }
}

/// The most keys one DeleteObjects may name (as on S3).
const DELETE_KEYS_MAX: usize = 1000;

/// One Object of a DeleteObjects request.
struct Target {
    key: String,
    version: Option<String>,
    conditions: DeleteIf,
}

/// The Objects of a DeleteObjects request.
fn targets(document: &[u8]) -> Result<Vec<Target>, S3Error> {
    let leaves = ["Key", "VersionId", "ETag", "Size", "LastModifiedTime"];
    let objects = xml::items(document, "Delete", "Object", &leaves).map_err(malformed_xml)?;
    if objects.len() > DELETE_KEYS_MAX {
        return Err(malformed_xml(format!("more than {DELETE_KEYS_MAX} keys")));
    }
    objects
        .into_iter()
        .map(|mut object| {
            let key = object[0].take().ok_or_else(|| malformed_xml("an Object without a Key"))?;
            let conditions = DeleteIf::from_xml(object[2].take(), object[3].as_deref(), object[4].as_deref())?;
            Ok(Target { key, version: object[1].take(), conditions })
        })
        .collect()
}

pub(crate) async fn delete_many(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    bucket::must_exist(call, bucket).await?;
    let targets = targets(&document)?;
    let quiet = xml::flag(&document, "Quiet");
    // Each key's outcome: None deleted, or its error's code and message.
    let mut results: Vec<(String, Option<(String, String)>)> = Vec::with_capacity(targets.len());
    // Keys other nodes own, by node (on a ring).
    let mut elsewhere: Vec<(&Peer, Vec<Target>)> = Vec::new();
    let spans = cluster::spans_nodes(call);
    for target in targets {
        if let Some(peer) = cluster::owner_of(call, bucket, &target.key).filter(|_| spans) {
            match elsewhere.iter_mut().find(|(p, _)| p.name == peer.name) {
                Some((_, targets)) => targets.push(target),
                None => elsewhere.push((peer, vec![target])),
            }
            continue;
        }
        let result = delete_target(call, bucket, &target).await;
        results.push((target.key, result.err().map(|e| (e.code.to_string(), e.message))));
    }
    for (peer, targets) in elsewhere {
        results.extend(delete_on(call, peer, bucket, targets).await);
    }
    let mut out = Writer::document();
    out.root("DeleteResult");
    for (key, result) in results {
        match result {
            None if quiet => {}
            None => {
                out.open("Deleted");
                out.leaf("Key", &key);
                out.close("Deleted");
            }
            Some((code, message)) => {
                out.open("Error");
                out.leaf("Key", &key);
                out.leaf("Code", code);
                out.leaf("Message", message);
                out.close("Error");
            }
        }
    }
    out.close("DeleteResult");
    call.xml(out.finish()).await
}

/// Deletes one Object of a DeleteObjects request, here.
async fn delete_target(call: &Call<'_, '_, '_>, bucket: &str, target: &Target) -> Result<(), S3Error> {
    unkept::refuse_version(target.version.as_deref())?;
    if target.key.ends_with('/') {
        if target.conditions.any() {
            return Err(folder::conditional_delete());
        }
        return folder::delete_one(&keys::folder_path(bucket, &target.key)?).await;
    }
    delete_one(call, bucket, &keys::object_path(bucket, &target.key)?, &target.conditions).await
}

/// Deletes `targets` of `bucket` on `peer`, the node that owns them: each
/// key's outcome, an error for each if the node does not answer.
async fn delete_on(
    call: &Call<'_, '_, '_>,
    peer: &Peer,
    bucket: &str,
    targets: Vec<Target>,
) -> Vec<(String, Option<(String, String)>)> {
    let mut document = Writer::document();
    document.root("Delete");
    for target in &targets {
        document.open("Object");
        document.leaf("Key", &target.key);
        if let Some(version) = &target.version {
            document.leaf("VersionId", version);
        }
        let conditions = &target.conditions;
        if let Some(etag) = &conditions.etag {
            document.leaf("ETag", etag);
        }
        if let Some(size) = conditions.size {
            document.leaf("Size", size);
        }
        if let Some(secs) = conditions.modified {
            document.leaf("LastModifiedTime", xml::iso8601(secs));
        }
        document.close("Object");
    }
    document.close("Delete");
    let keys: Vec<String> = targets.into_iter().map(|t| t.key).collect();
    let body = document.finish().into_bytes();
    let failed =
        |err: S3Error| keys.iter().map(|k| (k.clone(), Some((err.code.to_string(), err.message.clone())))).collect();
    let answer = match cluster::ask(call, peer, "POST", &format!("/{bucket}"), &[("delete", "")], body).await {
        Ok(a) if a.status == 200 => a,
        Ok(a) => return failed(cluster::refused(&peer.name, &a)),
        Err(why) => return failed(cluster::unreachable(&peer.name, &why)),
    };
    let deleted = xml::items(&answer.body, "DeleteResult", "Deleted", &["Key"]);
    let errors = xml::items(&answer.body, "DeleteResult", "Error", &["Key", "Code", "Message"]);
    let (Ok(deleted), Ok(errors)) = (deleted, errors) else {
        return failed(cluster::unreachable(&peer.name, "its DeleteResult does not parse"));
    };
    let mut results: Vec<(String, Option<(String, String)>)> =
        deleted.into_iter().filter_map(|d| d[0].clone()).map(|k| (k, None)).collect();
    for e in errors {
        let mut e = e.into_iter();
        if let (Some(Some(key)), Some(code), Some(message)) = (e.next(), e.next(), e.next()) {
            results.push((key, Some((code.unwrap_or_default(), message.unwrap_or_default()))));
        }
    }
    // A key the node did not mention was not deleted.
    let mentioned: std::collections::HashSet<String> = results.iter().map(|(k, _)| k.clone()).collect();
    for key in &keys {
        if !mentioned.contains(key) {
            let why = format!("node {} did not say whether it deleted it", peer.name);
            results.push((key.clone(), Some(("InternalError".to_string(), why))));
        }
    }
    results
}
