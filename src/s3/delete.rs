//! DeleteObject and DeleteObjects (a batch, XML): of objects, through the
//! store's delete commit, and of folders (`folder`). Deleting what does not
//! exist succeeds, as on S3.

use super::error::{malformed_xml, S3Error};
use super::object::commit_error;
use super::xml::{self, Writer};
use super::{bucket, folder, keys, Call};
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
    let mut out = Writer::document();
    out.root("DeleteResult");
    for object in objects {
        let Some(key) = object[0].clone() else {
            return Err(malformed_xml("an Object without a Key"));
        };
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
        match result {
            Ok(()) if quiet => {}
            Ok(()) => {
                out.open("Deleted");
                out.leaf("Key", &key);
                out.close("Deleted");
            }
            Err(err) => {
                out.open("Error");
                out.leaf("Key", &key);
                out.leaf("Code", err.code);
                out.leaf("Message", &err.message);
                out.close("Error");
            }
        }
    }
    out.close("DeleteResult");
    call.xml(out.finish()).await
}
