//! Folders: keys that end in `/`. To S3 such a key is an ordinary object,
//! by convention empty; the S3 console's "Create folder", s3fs's `mkdir`
//! and Cyberduck make one to stand for a directory. In this store a key is
//! a path, so a folder is the directory it names, marked with an extended
//! attribute that holds what S3 keeps with the object (its Content-Type,
//! `x-amz-meta-*` and when it was made; its ETag is always the MD5 of no
//! bytes): `store::Store::mark_dir`, durable before the answer.
//!
//! A directory without the attribute is no key (a prefix of other keys, or
//! nothing): GET and HEAD of it are 404, as on S3. Deleting a folder
//! removes the attribute and leaves the objects under it, as on S3. A
//! folder holds no bytes: a PutObject with a body, a multipart upload or a
//! copy of an object to a folder key is refused, saying so. Listings show
//! a folder as a key of size 0 just before the keys under it (`listing`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::copy::{copy_result, copy_source, replaces_metadata, source_conditions};
use super::error::{from_io, invalid_request, no_such_bucket, no_such_key, not_implemented, S3Error};
use super::meta::{self, Folder, FOLDER_ETAG as ETAG, FOLDER_XATTR as XATTR};
use super::object::{commit_error, planned, precondition_failed, representation};
use super::{bucket, cluster, keys, Call};
use crate::http::get;
use crate::shard::on_owner;
use crate::store::{Mark, Outcome};

/// The Content-Type of a folder stored without one.
const CONTENT_TYPE: &str = "application/octet-stream";

/// Why `key` cannot take bytes.
pub(crate) fn holds_no_bytes(key: &str) -> S3Error {
    invalid_request(format!(
        "`{key}` ends in / and so is a folder, which percore stores as a directory: it holds no bytes (send it \
         with an empty body), and an object's key must not end in /"
    ))
}

/// The folder at `path` (`bucket/a/b` for the key `a/b/`), or NoSuchKey.
pub(crate) async fn open(call: &Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<Folder, S3Error> {
    match call.shard().store.root().open_dir(OsStr::from_bytes(path)).await {
        Ok(dir) => meta::read_folder(&dir).ok_or_else(no_such_key),
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            bucket::must_exist(call, bucket).await?;
            Err(no_such_key())
        }
        Err(err) => Err(from_io("cannot open the folder", &err)),
    }
}

/// The condition of a write to a folder: `If-None-Match: *` (create only) or
/// `If-Match` (only over a folder, whose ETag is always [`ETAG`]).
fn write_mark(call: &Call<'_, '_, '_>) -> Result<Mark, S3Error> {
    let if_none_match = call.request.if_none_match.as_deref().map(str::trim);
    let if_match = call.request.if_match.as_deref().map(str::trim);
    match (if_none_match, if_match) {
        (None, None) => Ok(Mark::Always),
        (Some("*"), None) => Ok(Mark::IfAbsent),
        (None, Some(list)) if list.split(',').any(|tag| matches!(tag.trim(), "*" | ETAG)) => Ok(Mark::IfPresent),
        (None, Some(_)) => Err(precondition_failed()),
        _ => Err(not_implemented("If-None-Match other than *, or with If-Match, on writes")),
    }
}

/// Marks the directory at `path` as a folder with `headers`, on the path's
/// owner shard.
async fn store(bucket: &str, path: &[u8], headers: Vec<(String, String)>, mark: Mark) -> Result<(), S3Error> {
    let folder = Folder { modified: crate::clock::coarse_epoch_seconds(), headers };
    let value = serde_json::to_vec(&folder).expect("strings serialize");
    let owner_path = path.to_vec();
    let outcome = on_owner(path, move |owner| async move {
        // The bucket (the path's first component) must be there already.
        owner.store.mark_dir(owner_path, Some(1), XATTR, value, mark).await
    })
    .await;
    match outcome {
        Outcome::Created(_) | Outcome::Replaced(_) => Ok(()),
        Outcome::NotFound => Err(no_such_bucket(bucket)),
        other => Err(commit_error(other)),
    }
}

/// PutObject of a folder: an empty body, checked as any other.
pub(crate) async fn put(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8], key: &str) -> Result<bool, S3Error> {
    let mark = write_mark(call)?;
    let mut headers = meta::from_request(call.headers).map_err(|m| S3Error::new(400, "MetadataTooLarge", m))?;
    super::tags::add_requested(call.headers, &mut headers)?;
    if super::body::declared_len(call.headers, call.request.body).is_some_and(|n| n > 0) {
        return Err(holds_no_bytes(key));
    }
    if !call.continue_100().await {
        return Err(S3Error::gone());
    }
    let (body, _) = call.body(0)?;
    let (_, digests) =
        body.read_all().await.map_err(|err| if err.code == "EntityTooLarge" { holds_no_bytes(key) } else { err })?;
    call.body_read();
    headers.extend(digests.checksum.clone());
    store(bucket, path, headers, mark).await?;
    let mut lines = format!("ETag: {ETAG}\r\n");
    if let Some((name, value)) = &digests.checksum {
        lines.push_str(&format!("{name}: {value}\r\n"));
    }
    call.empty(200, &lines).await
}

/// GetObject and HeadObject of a folder: no bytes, its stored headers.
pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let folder = open(call, bucket, path).await?;
    let (content_type, extra) = representation(call, &folder.headers, CONTENT_TYPE);
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(folder.modified);
    let last_modified = httpdate::fmt_http_date(modified);
    let described = get::Meta {
        size: 0,
        etag: ETAG,
        last_modified: &last_modified,
        modified_secs: folder.modified,
        content_type: &content_type,
        extra: &extra,
    };
    let plan = planned(call, &described, &folder.headers)?;
    Ok(get::send_empty(call.reply, &described, plan).await)
}

/// Why a conditional delete of a folder is refused.
pub(crate) fn conditional_delete() -> S3Error {
    not_implemented("a conditional delete of a folder (a key that ends in /)")
        .because("a folder's ETag never changes: delete it without conditions")
}

/// DeleteObject of a folder: its mark goes, the objects under it stay.
pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let asks = ["if-match", "if-none-match", "x-amz-if-match-size", "x-amz-if-match-last-modified-time"];
    if asks.iter().any(|name| call.headers.get(name).is_some()) {
        return Err(conditional_delete());
    }
    bucket::must_exist(call, bucket).await?;
    delete_one(path).await?;
    call.empty(204, "").await
}

/// Unmarks the folder at `path`; deleting what is not a folder succeeds,
/// as on S3.
pub(crate) async fn delete_one(path: &[u8]) -> Result<(), S3Error> {
    let owner_path = path.to_vec();
    let outcome = on_owner(path, move |owner| async move { owner.store.unmark_dir(owner_path, XATTR).await }).await;
    match outcome {
        Outcome::Deleted | Outcome::NotFound | Outcome::Failed(std::io::ErrorKind::NotADirectory, _) => Ok(()),
        other => Err(commit_error(other)),
    }
}

/// CopyObject to a folder: from another folder (or onto itself, replacing
/// its metadata, as s3fs does for a directory's `chmod`), here or on
/// another node of a ring.
pub(crate) async fn copy(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8], key: &str) -> Result<bool, S3Error> {
    let (src_bucket, src_key) = copy_source(call.headers.get("x-amz-copy-source").unwrap_or(""))?;
    if !src_key.ends_with('/') {
        return Err(holds_no_bytes(key).because("only another folder can be copied to it"));
    }
    let src_path = keys::folder_path(&src_bucket, &src_key)?;
    bucket::must_exist(call, bucket).await?;
    let mark = write_mark(call)?;
    let replace = replaces_metadata(call, src_path == path)?;
    let source = match cluster::owner_of(call, &src_bucket, &src_key) {
        // On another node of the ring: what it keeps, from that node's
        // answer to a GET (a NoSuchKey here would be a wrong answer).
        Some(peer) => {
            let there = super::remote::open(call, peer, &src_bucket, &src_key, None).await?;
            Folder { modified: there.modified, headers: there.headers }
        }
        None => open(call, &src_bucket, &src_path).await?,
    };
    source_conditions(call, ETAG, source.modified)?;
    let mut headers = if replace {
        meta::from_request(call.headers).map_err(|m| S3Error::new(400, "MetadataTooLarge", m))?
    } else {
        source.headers.clone()
    };
    super::tags::add_copied(call.headers, &source.headers, &mut headers)?;
    store(bucket, path, headers, mark).await?;
    call.xml(copy_result(ETAG, None)).await
}
