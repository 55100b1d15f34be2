//! Object tags: GetObjectTagging, PutObjectTagging and DeleteObjectTagging,
//! on objects and folders. What tags are, how requests carry them and how
//! they are kept with an object's metadata (so that they go wherever it
//! goes: copies, multipart uploads, `percore rebalance`) is `tags`'s. A
//! PutObjectTagging on a stored object rewrites that metadata in place on
//! the path's owner shard, under the path's commit lock, and fsyncs the
//! file before it answers (`store::Store::rewrite_attribute`): the tags are
//! as durable as the object, and neither its ETag nor its Last-Modified
//! changes, as on S3.

use super::error::{commit_error, no_such_key, S3Error};
use super::meta::{self, Folder, ObjectMeta};
use super::tags::{document, Tags, HEADER};
use super::{bucket, folder, object, Call};
use crate::shard::on_owner;
use crate::store::{Holder, Outcome};

/// The most bytes of a PutObjectTagging body: ten tags of the longest keys
/// and values, written with character references, fit.
const BODY_BYTES_MAX: u64 = 64 << 10;

/// GetObjectTagging, of an object or a folder (`folder`).
pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8], folder: bool) -> Result<bool, S3Error> {
    let tags = if folder {
        Tags::of(&folder::open(call, bucket, path).await?.headers)
    } else {
        Tags::of(object::open(call, bucket, path).await?.headers())
    };
    call.xml(document(&tags)).await
}

/// PutObjectTagging: the body's tags replace the object's.
pub(crate) async fn put(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8], folder: bool) -> Result<bool, S3Error> {
    let (body, _) = call.body(BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    let tags = Tags::from_xml(&document)?;
    set(call, bucket, path, folder, tags).await?;
    call.empty(200, "").await
}

/// DeleteObjectTagging: the object keeps no tags.
pub(crate) async fn delete(
    call: &mut Call<'_, '_, '_>,
    bucket: &str,
    path: &[u8],
    folder: bool,
) -> Result<bool, S3Error> {
    set(call, bucket, path, folder, Tags::default()).await?;
    call.empty(204, "").await
}

/// Replaces the tags of the object (or folder) at `path`, durably, on its
/// owner shard.
async fn set(call: &Call<'_, '_, '_>, bucket: &str, path: &[u8], folder: bool, tags: Tags) -> Result<(), S3Error> {
    let (owner_path, entry) = (path.to_vec(), tags.stored());
    let outcome = on_owner(path, move |owner| async move {
        if folder {
            let rewrite = move |fd: std::os::fd::BorrowedFd<'_>, _: &str| {
                let mut folder = meta::read_folder(&fd)?;
                retag(&mut folder.headers, entry);
                Some(serde_json::to_vec::<Folder>(&folder).expect("plain data serializes"))
            };
            owner.store.rewrite_attribute(owner_path, Holder::Dir, meta::FOLDER_XATTR, rewrite).await
        } else {
            let rewrite = move |fd: std::os::fd::BorrowedFd<'_>, stamp: &str| {
                // A file written through `/files/` has no S3 metadata: its
                // ETag is the store's own, and stays.
                let mut meta = meta::read(&fd, stamp).unwrap_or_else(|| ObjectMeta {
                    stamp: stamp.to_string(),
                    etag: stamp.to_string(),
                    headers: Vec::new(),
                });
                retag(&mut meta.headers, entry);
                Some(meta::encode(stamp, &meta.etag, &meta.headers))
            };
            owner.store.rewrite_attribute(owner_path, Holder::File, meta::XATTR, rewrite).await
        }
    })
    .await;
    match outcome {
        Outcome::Replaced(_) => Ok(()),
        Outcome::NotFound => {
            bucket::must_exist(call, bucket).await?;
            Err(no_such_key())
        }
        other => Err(commit_error(other)),
    }
}

/// Puts `entry` (or none) in place of the tags kept in `headers`.
fn retag(headers: &mut Vec<(String, String)>, entry: Option<(String, String)>) {
    headers.retain(|(name, _)| name != HEADER);
    headers.extend(entry);
}
