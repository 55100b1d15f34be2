//! DeleteObject and DeleteObjects (a batch, XML): of objects, through the
//! store's delete commit, and of folders (`folder`). Deleting what does not
//! exist succeeds, as on S3.

use super::error::{malformed_xml, S3Error};
use super::object::commit_error;
use super::xml::{self, Writer};
use super::{bucket, cluster, folder, keys, Call};
use crate::peers::Peer;
use crate::shard::on_owner;
use crate::store::{Conditions, Outcome};

/// DeleteObject.
pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    delete_one(path).await?;
    call.empty(204, "").await
}

/// Deletes the object at `path`; deleting what does not exist succeeds,
/// as on S3.
async fn delete_one(path: &[u8]) -> Result<(), S3Error> {
    let owner_path = path.to_vec();
    let outcome =
        on_owner(path, move |owner| async move { owner.store.commit_delete(owner_path, Conditions::default()).await })
            .await;
    match outcome {
        Outcome::Deleted | Outcome::NotFound => Ok(()),
        // A directory (a "prefix"), not an object: nothing to delete.
        Outcome::Failed(std::io::ErrorKind::IsADirectory, _) => Ok(()),
        other => Err(commit_error(other)),
    }
}

/// The most keys one DeleteObjects may name (as on S3).
const DELETE_KEYS_MAX: usize = 1000;

pub(crate) async fn delete_many(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    bucket::must_exist(call, bucket).await?;
    let objects = xml::items(&document, "Delete", "Object", &["Key", "VersionId"]).map_err(malformed_xml)?;
    if objects.len() > DELETE_KEYS_MAX {
        return Err(malformed_xml(format!("more than {DELETE_KEYS_MAX} keys")));
    }
    let quiet = xml::flag(&document, "Quiet");
    // Each key's outcome: None deleted, or its error's code and message.
    let mut results: Vec<(String, Option<(String, String)>)> = Vec::with_capacity(objects.len());
    // Keys other nodes own, by node (on a ring).
    let mut elsewhere: Vec<(&Peer, Vec<String>)> = Vec::new();
    let spans = cluster::spans_nodes(call);
    for object in objects {
        let Some(key) = object[0].clone() else {
            return Err(malformed_xml("an Object without a Key"));
        };
        if let Some(peer) = cluster::owner_of(call, bucket, &key).filter(|_| spans) {
            match elsewhere.iter_mut().find(|(p, _)| p.name == peer.name) {
                Some((_, keys)) => keys.push(key),
                None => elsewhere.push((peer, vec![key])),
            }
            continue;
        }
        let result = if key.ends_with('/') {
            match keys::folder_path(bucket, &key) {
                Ok(path) => folder::delete_one(&path).await,
                Err(err) => Err(err),
            }
        } else {
            match keys::object_path(bucket, &key) {
                Ok(path) => delete_one(&path).await,
                Err(err) => Err(err),
            }
        };
        results.push((key, result.err().map(|e| (e.code.to_string(), e.message))));
    }
    for (peer, keys) in elsewhere {
        results.extend(delete_on(call, peer, bucket, keys).await);
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

/// Deletes `keys` of `bucket` on `peer`, the node that owns them: each
/// key's outcome, an error for each if the node does not answer.
async fn delete_on(
    call: &Call<'_, '_, '_>,
    peer: &Peer,
    bucket: &str,
    keys: Vec<String>,
) -> Vec<(String, Option<(String, String)>)> {
    let mut document = Writer::document();
    document.root("Delete");
    for key in &keys {
        document.open("Object");
        document.leaf("Key", key);
        document.close("Object");
    }
    document.close("Delete");
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
