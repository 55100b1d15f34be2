//! Buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket (only when
//! it holds no object or folder), GetBucketLocation, GetBucketVersioning (never
//! versioned). A bucket is a top-level directory of the data directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use percore_io::Dir;

use super::error::{from_io, invalid_argument, no_such_bucket, S3Error};
use super::xml::Writer;
use super::{cluster, keys, xml, Call};
use crate::files::TEMP_PREFIX;
use crate::shard::on_owner;
use crate::store::{Mark, Outcome};

/// Whether `bucket` exists (a directory at the top of the store).
pub(crate) async fn exists(call: &Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    match call.shard().store.root().stat(bucket).await {
        Ok(meta) => Ok(meta.is_dir()),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(from_io("cannot look up the bucket", &err)),
    }
}

/// Fails with NoSuchBucket unless `bucket` exists.
pub(crate) async fn must_exist(call: &Call<'_, '_, '_>, bucket: &str) -> Result<(), S3Error> {
    if exists(call, bucket).await? {
        Ok(())
    } else {
        Err(no_such_bucket(bucket))
    }
}

/// The most buckets a ListBuckets page holds (as on S3).
const BUCKETS_PER_PAGE_MAX: usize = 10_000;

/// ListBuckets: every bucket, by name; or, as current SDKs ask
/// (`max-buckets`, `continuation-token`, `prefix`, `bucket-region`), those
/// whose name starts with `prefix`, a page at a time (the token is the
/// last name of the page before; `bucket-region` other than this node's
/// region: none).
pub(crate) async fn list_buckets(call: &mut Call<'_, '_, '_>) -> Result<bool, S3Error> {
    let query = call.query;
    let prefix = query.get("prefix").unwrap_or("");
    let after = query.get("continuation-token").filter(|t| !t.is_empty());
    let page = match query.get("max-buckets") {
        Some(text) => {
            text.trim().parse::<usize>().ok().filter(|n| (1..=BUCKETS_PER_PAGE_MAX).contains(n)).ok_or_else(|| {
                invalid_argument(format!("max-buckets must be a number from 1 to {BUCKETS_PER_PAGE_MAX}, not {text}"))
            })?
        }
        None => usize::MAX,
    };
    let region = &call.shard().config.s3.as_ref().expect("an S3 listener has S3 settings").region;
    let elsewhere = query.get("bucket-region").is_some_and(|r| r != region.as_str());
    let root = call.shard().store.root();
    // (Another region holds none of them: the directory is not read.)
    let entries =
        if elsewhere { Vec::new() } else { root.read_dir().map_err(|e| from_io("cannot list the buckets", &e))? };
    let mut names: Vec<String> = entries
        .into_iter()
        .filter_map(|entry| entry.name.to_str().map(str::to_string))
        .filter(|name| keys::check_bucket(name).is_ok() && name.starts_with(prefix))
        .filter(|name| after.is_none_or(|after| name.as_str() > after))
        .collect();
    names.sort();
    let mut buckets: Vec<(String, u64)> = Vec::new();
    let mut more = false;
    for name in names {
        if let Ok(meta) = root.stat(&name).await {
            if meta.is_dir() {
                if buckets.len() == page {
                    more = true;
                    break;
                }
                buckets.push((name, meta.mtime.0.max(0) as u64));
            }
        }
    }
    let mut out = Writer::document();
    out.root("ListAllMyBucketsResult");
    owner(&mut out);
    out.open("Buckets");
    for (name, created) in &buckets {
        out.open("Bucket");
        out.leaf("Name", name);
        out.leaf("CreationDate", xml::iso8601(*created));
        out.leaf("BucketRegion", region);
        out.close("Bucket");
    }
    out.close("Buckets");
    if more {
        out.leaf("ContinuationToken", &buckets.last().expect("a full page").0);
    }
    if query.has("prefix") {
        out.leaf("Prefix", prefix);
    }
    out.close("ListAllMyBucketsResult");
    call.xml(out.finish()).await
}

/// The ID (and name) of the owner of every bucket: percore has one.
pub(crate) const OWNER_ID: &str = "percore";

/// The `<Owner>` of everything.
pub(crate) fn owner(out: &mut Writer) {
    out.open("Owner");
    out.leaf("ID", OWNER_ID);
    out.leaf("DisplayName", OWNER_ID);
    out.close("Owner");
}

pub(crate) async fn create(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    // The body (a CreateBucketConfiguration naming a region) is read and
    // not used: percore has one region.
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    body.read_all().await?;
    call.body_read();
    let store = &call.shard().store;
    if store.fenced() {
        return Err(S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()));
    }
    let existed = exists(call, bucket).await?;
    if !existed {
        // Made as uploads make their directories: durably.
        let mut inside = bucket.as_bytes().to_vec();
        inside.extend_from_slice(b"/x");
        store.parent_dir(&inside, true).await.map_err(|e| from_io("cannot create the bucket", &e))?;
    }
    if cluster::spans_nodes(call) {
        // On every node (again if it existed here: a node that missed it
        // gets it now).
        let answers = cluster::everywhere(call, "PUT", &format!("/{bucket}"), &[], &[]).await;
        if let Some(err) = cluster::first_failure(&answers, &[200]) {
            return Err(err.because("the bucket is made on the nodes that answered; create it again"));
        }
    }
    if existed && !cluster::local(call) {
        return Err(S3Error::new(409, "BucketAlreadyOwnedByYou", "the bucket exists and is yours"));
    }
    call.empty(200, &format!("Location: /{bucket}\r\n")).await
}

pub(crate) async fn head(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    must_exist(call, bucket).await?;
    let region = &call.shard().config.s3.as_ref().expect("S3 settings").region;
    call.empty(200, &format!("x-amz-bucket-region: {region}\r\n")).await
}

pub(crate) async fn location(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    must_exist(call, bucket).await?;
    let region = call.shard().config.s3.as_ref().expect("S3 settings").region.clone();
    let mut out = Writer::document();
    // us-east-1 is named by an empty constraint, as on S3.
    if region == super::settings::REGION_DEFAULT {
        out.root("LocationConstraint");
    } else {
        out.root("LocationConstraint");
        out.finish_text(&region);
    }
    out.close("LocationConstraint");
    call.xml(out.finish()).await
}

pub(crate) async fn versioning(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    must_exist(call, bucket).await?;
    let mut out = Writer::document();
    out.root("VersioningConfiguration");
    out.close("VersioningConfiguration");
    call.xml(out.finish()).await
}

pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    must_exist(call, bucket).await?;
    let store = &call.shard().store;
    let dir = store.root().open_dir(bucket).await.map_err(|e| from_io("cannot open the bucket", &e))?;
    if holds_object(&dir).await.map_err(|e| from_io("cannot read the bucket", &e))? {
        return Err(S3Error::new(
            409,
            "BucketNotEmpty",
            "the bucket you tried to delete is not empty: delete its objects first",
        ));
    }
    if cluster::spans_nodes(call) {
        delete_elsewhere(call, bucket).await?;
    }
    remove_empty(&dir).await.map_err(|e| from_io("cannot remove the bucket's empty directories", &e))?;
    match store.root().rmdir(bucket).await {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) => {
            return Err(S3Error::new(409, "BucketNotEmpty", "an object was stored in the bucket meanwhile"))
        }
        Err(err) => return Err(from_io("cannot remove the bucket", &err)),
    }
    store
        .flush_dir(store.root(), "fsync of the data directory after removing a bucket")
        .await
        .map_err(|e| from_io("cannot remove the bucket", &e))?;
    call.empty(204, "").await
}

/// Removes `bucket` from the other nodes of the ring, once each has said it
/// holds nothing of it. If one of them then cannot (an object stored
/// there meanwhile, or it stopped answering), the bucket is made again on
/// those that removed it: it stays on every node or on none.
async fn delete_elsewhere(call: &Call<'_, '_, '_>, bucket: &str) -> Result<(), S3Error> {
    let path = format!("/{bucket}");
    let query = [("list-type", "2"), ("max-keys", "1")];
    for (name, answer) in cluster::everywhere(call, "GET", &path, &query, &[]).await {
        match answer {
            Ok(a) if a.status == 200 && cluster::holds_nothing(&a.body) => {}
            Ok(a) if a.status == 200 => {
                return Err(S3Error::new(
                    409,
                    "BucketNotEmpty",
                    format!("the bucket you tried to delete is not empty (node {name} holds objects of it)"),
                ))
            }
            Ok(a) if a.status == 404 => {}
            Ok(a) => return Err(cluster::refused(&name, &a)),
            Err(why) => return Err(cluster::unreachable(&name, &why)),
        }
    }
    let answers = cluster::everywhere(call, "DELETE", &path, &[], &[]).await;
    let Some(err) = cluster::first_failure(&answers, &[204, 404]) else { return Ok(()) };
    let again = cluster::everywhere(call, "PUT", &path, &[], &[]).await;
    match cluster::first_failure(&again, &[200]) {
        None => Err(err.because("the bucket is kept on every node")),
        Some(also) => Err(err.because(&format!(
            "and making it again on the nodes that had removed it failed: {}; delete it again once every node \
             answers",
            also.message
        ))),
    }
}

/// Removes the directories under `dir` (deepest first) and the temporary
/// files in them: spare old versions the store keeps for reuse (a spare
/// found unlinked is dropped when next taken: `store::spares`) and uploads
/// still under way into the bucket (whose commit then fails).
async fn remove_empty(dir: &Dir) -> std::io::Result<()> {
    for entry in dir.read_dir()? {
        let name = OsStr::from_bytes(entry.name.as_bytes());
        if entry.name.as_bytes().starts_with(TEMP_PREFIX) {
            dir.unlink(name).await?;
        } else if dir.stat(name).await?.is_dir() {
            let child = dir.open_dir(name).await?;
            Box::pin(remove_empty(&child)).await?;
            dir.rmdir(name).await?;
        }
    }
    Ok(())
}

/// Whether `dir` is a folder or holds an object or a folder anywhere
/// beneath it.
pub(crate) async fn holds_object(dir: &Dir) -> std::io::Result<bool> {
    let mut stack = vec![dir.open_dir(".").await?];
    while let Some(dir) = stack.pop() {
        if super::meta::read_folder(&dir).is_some() {
            return Ok(true);
        }
        for entry in dir.read_dir()? {
            if entry.name.as_bytes().starts_with(TEMP_PREFIX) {
                continue;
            }
            let meta = dir.stat(&entry.name).await?;
            if meta.is_file() {
                return Ok(true);
            }
            if meta.is_dir() {
                stack.push(dir.open_dir(&entry.name).await?);
            }
        }
    }
    Ok(false)
}

/// Sets (`Some`) or removes the attribute `name` of the bucket's directory
/// (one of its own settings: CORS rules, tags), durably, on its owner shard.
pub(crate) async fn store_setting(bucket: &str, name: &'static str, value: Option<Vec<u8>>) -> Result<(), S3Error> {
    let path = bucket.as_bytes().to_vec();
    let outcome = match value {
        Some(value) => {
            on_owner(bucket.as_bytes(), move |owner| async move {
                owner.store.mark_dir(path, None, name, value, Mark::Always).await
            })
            .await
        }
        None => on_owner(bucket.as_bytes(), move |owner| async move { owner.store.unmark_dir(path, name).await }).await,
    };
    match outcome {
        Outcome::Created(_) | Outcome::Replaced(_) | Outcome::Deleted | Outcome::NotFound => Ok(()),
        other => Err(super::error::commit_error(other)),
    }
}
