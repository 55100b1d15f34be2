//! Multipart uploads: Create, UploadPart, ListParts, Complete, Abort,
//! ListMultipartUploads. An upload is a directory of the store,
//! `.percore-s3/uploads/<id>/` (hidden from `/files/` and from buckets by
//! the reserved prefix), holding `upload.json` (bucket, key, headers, when)
//! and one file per part, each committed durably as any object is, with
//! its MD5 ETag in its metadata. Complete copies the parts in order into
//! one new object (its ETag the MD5 of the parts' MD5s, `-N`), commits it
//! (it appears whole or not at all), then removes the upload. Uploads older
//! than `--s3-upload-expiry-secs` are removed when a new one starts.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::md5::Md5;
use percore_io::{Dir, File, OpenOptions};
use serde::{Deserialize, Serialize};

use super::copy::Source;
use super::error::{from_io, invalid_argument, malformed_xml, S3Error};
use super::meta;
use super::object::{self, Staged};
use super::sigv4::hex;
use super::xml::{self, Writer};
use super::{bucket, cluster, Call};
use crate::files;
use crate::store::Conditions;

/// Where uploads live, under the data directory.
const UPLOADS: &str = ".percore-s3/uploads";
/// Part numbers run 1..=10000 (as on S3).
const PART_NUMBER_MAX: u32 = 10_000;
/// Every part but the last is at least this large (as on S3).
const PART_BYTES_MIN: u64 = 5 << 20;
/// Parts listed per page at most.
const PARTS_MAX: usize = 1000;

#[derive(Serialize, Deserialize)]
struct Record {
    bucket: String,
    key: String,
    headers: Vec<(String, String)>,
    /// Seconds since the epoch.
    initiated: u64,
}

fn upload_dir(id: &str) -> String {
    format!("{UPLOADS}/{id}")
}

fn part_name(number: u32) -> String {
    format!("part-{number:05}")
}

/// Checks an upload id's form (ours are 32 hex digits).
fn check_id(id: &str) -> Result<(), S3Error> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(no_such_upload())
    }
}

fn no_such_upload() -> S3Error {
    S3Error::new(
        404,
        "NoSuchUpload",
        "the specified multipart upload does not exist: it may have been aborted, completed or expired",
    )
}

/// Reads a small file of the store whole.
async fn read_small(root: &Dir, path: &str) -> std::io::Result<Vec<u8>> {
    let file = root.open_file(path, &OpenOptions::new()).await?;
    let size = file.metadata().await?.size;
    let (result, bytes) = file.read_exact_at(Vec::with_capacity(size as usize), 0).await;
    result.map(|()| bytes)
}

/// The upload `id` of `bucket`/`key`'s record.
async fn record(call: &Call<'_, '_, '_>, id: &str, bucket: &str, key_path: &[u8]) -> Result<Record, S3Error> {
    check_id(id)?;
    let bytes = match read_small(call.shard().store.root(), &format!("{}/upload.json", upload_dir(id))).await {
        Ok(bytes) => bytes,
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Err(no_such_upload()),
        Err(err) => return Err(from_io("cannot read the upload", &err)),
    };
    let record: Record =
        serde_json::from_slice(&bytes).map_err(|_| super::error::internal("an upload's record is corrupt"))?;
    let mut path = record.bucket.as_bytes().to_vec();
    path.push(b'/');
    path.extend_from_slice(record.key.as_bytes());
    if record.bucket != bucket || path != key_path {
        return Err(no_such_upload());
    }
    Ok(record)
}

/// Stores `bytes` durably at `path` (through the upload and commit protocol).
async fn store_small(call: &Call<'_, '_, '_>, path: &[u8], bytes: Vec<u8>) -> Result<(), S3Error> {
    let store = &call.shard().store;
    let mut upload = store.begin_upload(path, Some(bytes.len() as u64)).await.map_err(|(what, e)| from_io(what, &e))?;
    let (result, _) = upload.file().write_all_at(bytes, 0).await;
    if let Err(err) = result {
        upload.discard().await;
        return Err(from_io("cannot store the upload's record", &err));
    }
    let stamp = match upload.flush(store).await {
        Ok(stamp) => stamp,
        Err(err) => {
            upload.discard().await;
            return Err(from_io("cannot flush the upload's record", &err));
        }
    };
    let staged = Staged { upload, etag: String::new(), stamp, checksum: None };
    object::commit(path, staged, Conditions::default()).await.map(|_| ())
}

pub(crate) async fn create(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8], key: &str) -> Result<bool, S3Error> {
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    body.read_all().await?;
    call.body_read();
    bucket::must_exist(call, bucket).await?;
    let _ = path;
    let headers = meta::from_request(call.headers).map_err(|m| S3Error::new(400, "MetadataTooLarge", m))?;
    let now = crate::clock::coarse_epoch_seconds();
    sweep(call, now).await;
    let mut random = [0u8; 16];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| super::error::internal("no random bytes for an upload id"))?;
    let id = hex(&random);
    let record = Record { bucket: bucket.to_string(), key: key.to_string(), headers, initiated: now };
    let json = serde_json::to_vec(&record).expect("strings serialize");
    store_small(call, format!("{}/upload.json", upload_dir(&id)).as_bytes(), json).await?;
    let mut out = Writer::document();
    out.root("InitiateMultipartUploadResult");
    out.leaf("Bucket", bucket);
    out.leaf("Key", key);
    out.leaf("UploadId", &id);
    out.close("InitiateMultipartUploadResult");
    call.xml(out.finish()).await
}

fn part_number(call: &Call<'_, '_, '_>) -> Result<u32, S3Error> {
    call.query
        .get("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=PART_NUMBER_MAX).contains(n))
        .ok_or_else(|| invalid_argument(format!("part number must be an integer between 1 and {PART_NUMBER_MAX}")))
}

pub(crate) async fn upload_part(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    let number = part_number(call)?;
    record(call, &id, bucket, path).await?;
    let part_path = format!("{}/{}", upload_dir(&id), part_name(number));
    let staged = object::receive(call, part_path.as_bytes(), Vec::new()).await?;
    let etag = object::commit(part_path.as_bytes(), staged, Conditions::default()).await?;
    call.empty(200, &format!("ETag: {etag}\r\n")).await
}

/// UploadPartCopy: a part copied from (a range of) an existing object.
pub(crate) async fn upload_part_copy(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    let number = part_number(call)?;
    record(call, &id, bucket, path).await?;
    let (src_bucket, src_key) = super::copy::copy_source(call.headers.get("x-amz-copy-source").unwrap_or(""))?;
    let src_path = super::keys::object_path(&src_bucket, &src_key)?;
    let range = call.headers.get("x-amz-copy-source-range");
    let parse = |size: u64| copy_range(range.unwrap_or(""), size);
    let mut source = Source::open(call, &src_bucket, &src_key, &src_path, range.map(|_| &parse as _)).await?;
    super::copy::source_conditions(call, source.etag())?;
    let len = source.len();
    let store = &call.shard().store;
    if store.fenced() {
        return Err(S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()));
    }
    let part_path = format!("{}/{}", upload_dir(&id), part_name(number));
    let upload = store.begin_upload(part_path.as_bytes(), Some(len)).await.map_err(|(what, e)| from_io(what, &e))?;
    let md5 = match source.copy_into(store, &upload).await {
        Ok(md5) => md5,
        Err(err) => {
            upload.discard().await;
            return Err(err);
        }
    };
    drop(source);
    let staged = object::flush(store, upload, super::meta::md5_etag(&md5), Vec::new()).await?;
    let etag = object::commit(part_path.as_bytes(), staged, Conditions::default()).await?;
    let mut out = Writer::document();
    out.root("CopyPartResult");
    out.leaf("LastModified", xml::iso8601(crate::clock::coarse_epoch_seconds()));
    out.leaf("ETag", &etag);
    out.close("CopyPartResult");
    call.xml(out.finish()).await
}

/// `x-amz-copy-source-range: bytes=FIRST-LAST` within an object of `size`
/// bytes: (offset, length).
fn copy_range(range: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let bad = || {
        invalid_argument(format!(
            "the x-amz-copy-source-range `{range}` must be bytes=FIRST-LAST within the source's {size} bytes"
        ))
    };
    let (first, last) = range.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let (first, last): (u64, u64) = (first.parse().map_err(|_| bad())?, last.parse().map_err(|_| bad())?);
    if first > last || last >= size {
        return Err(bad());
    }
    Ok((first, last - first + 1))
}

/// A stored part.
struct Part {
    number: u32,
    size: u64,
    modified: u64,
    /// Quoted MD5 hex.
    etag: String,
    file: File,
}

/// The parts of upload `id`, in order.
async fn parts(call: &Call<'_, '_, '_>, id: &str) -> Result<Vec<Part>, S3Error> {
    let dir =
        call.shard().store.root().open_dir(upload_dir(id)).await.map_err(|e| from_io("cannot open the upload", &e))?;
    let mut parts = Vec::new();
    for entry in dir.read_dir().map_err(|e| from_io("cannot read the upload", &e))? {
        let name = entry.name.to_string_lossy();
        let Some(number) = name.strip_prefix("part-").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let file = match dir.open_file(OsStr::from_bytes(entry.name.as_bytes()), &OpenOptions::new()).await {
            Ok(file) => file,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(err) => return Err(from_io("cannot open a part", &err)),
        };
        let stat = file.metadata().await.map_err(|e| from_io("cannot read a part", &e))?;
        let stamp = files::etag(&stat);
        let etag = meta::read(&file, &stamp).map(|m| m.etag).unwrap_or(stamp);
        parts.push(Part { number, size: stat.size, modified: stat.mtime.0.max(0) as u64, etag, file });
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

pub(crate) async fn list_parts(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    let record = record(call, &id, bucket, path).await?;
    let marker: u32 = call.query.get("part-number-marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let max = call.query.get("max-parts").and_then(|m| m.parse::<usize>().ok()).unwrap_or(PARTS_MAX).min(PARTS_MAX);
    let all: Vec<Part> = parts(call, &id).await?.into_iter().filter(|p| p.number > marker).collect();
    let truncated = all.len() > max;
    let mut out = Writer::document();
    out.root("ListPartsResult");
    out.leaf("Bucket", bucket);
    out.leaf("Key", &record.key);
    out.leaf("UploadId", &id);
    out.leaf("PartNumberMarker", marker);
    let shown = &all[..all.len().min(max)];
    if let Some(last) = shown.last() {
        out.leaf("NextPartNumberMarker", last.number);
    }
    out.leaf("MaxParts", max);
    out.leaf("IsTruncated", truncated);
    out.leaf("StorageClass", "STANDARD");
    for part in shown {
        out.open("Part");
        out.leaf("PartNumber", part.number);
        out.leaf("LastModified", xml::iso8601(part.modified));
        out.leaf("ETag", &part.etag);
        out.leaf("Size", part.size);
        out.close("Part");
    }
    out.close("ListPartsResult");
    call.xml(out.finish()).await
}

pub(crate) async fn complete(
    call: &mut Call<'_, '_, '_>,
    bucket: &str,
    path: &[u8],
    key: &str,
) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    let record = record(call, &id, bucket, path).await?;
    let conditions = object::write_conditions(call, bucket, path).await?;
    let listed =
        xml::items(&document, "CompleteMultipartUpload", "Part", &["PartNumber", "ETag"]).map_err(malformed_xml)?;
    if listed.is_empty() {
        return Err(malformed_xml("no Part listed"));
    }
    let stored = parts(call, &id).await?;
    let mut chosen: Vec<&Part> = Vec::with_capacity(listed.len());
    for item in &listed {
        let number: u32 = item[0]
            .as_deref()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| malformed_xml("a Part without a PartNumber"))?;
        if chosen.last().is_some_and(|p| p.number >= number) {
            return Err(S3Error::new(400, "InvalidPartOrder", "the list of parts was not in ascending order"));
        }
        let etag = item[1].as_deref().map(str::trim).unwrap_or("");
        let quoted = if etag.starts_with('"') { etag.to_string() } else { format!("\"{etag}\"") };
        match stored.iter().find(|p| p.number == number) {
            Some(part) if part.etag == quoted => chosen.push(part),
            _ => {
                return Err(S3Error::new(
                    400,
                    "InvalidPart",
                    format!("part {number} could not be found or its ETag does not match: upload it again"),
                ))
            }
        }
    }
    if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < PART_BYTES_MIN) {
        return Err(S3Error::new(
            400,
            "EntityTooSmall",
            format!(
                "part {} is smaller than the minimum allowed size (5 MiB); only the last part may be smaller",
                small.number
            ),
        ));
    }
    let total: u64 = chosen.iter().map(|p| p.size).sum();
    let store = &call.shard().store;
    if total > call.shard().config.body_bytes_max.max(5 << 40) {
        return Err(S3Error::new(400, "EntityTooLarge", "the object would exceed the maximum allowed size"));
    }
    let mut of_md5s = Md5::new();
    for part in &chosen {
        let raw: Vec<u8> =
            (0..16).map(|i| u8::from_str_radix(&part.etag[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0)).collect();
        of_md5s.update(&raw);
    }
    let etag = format!("\"{}-{}\"", hex(&of_md5s.finalize()), chosen.len());
    let upload = object::begin(store, path, Some(total)).await?;
    let sources: Vec<(&File, u64, u64)> = chosen.iter().map(|p| (&p.file, 0, p.size)).collect();
    if let Err(err) = super::copy::copy_into(store, &upload, &sources).await {
        upload.discard().await;
        return Err(err);
    }
    drop(sources);
    drop(stored);
    let staged = object::flush(store, upload, etag, record.headers).await?;
    let etag = object::commit(path, staged, conditions).await?;
    remove_upload(call.shard().store.root(), &id).await;
    let mut out = Writer::document();
    out.root("CompleteMultipartUploadResult");
    out.leaf("Location", format!("/{bucket}/{}", super::head::encode(key.as_bytes(), true)));
    out.leaf("Bucket", bucket);
    out.leaf("Key", key);
    out.leaf("ETag", &etag);
    out.close("CompleteMultipartUploadResult");
    call.xml(out.finish()).await
}

/// Removes upload `id`'s directory (its parts and record). Best effort: a
/// left-over upload is removed by a later sweep.
async fn remove_upload(root: &Dir, id: &str) {
    let Ok(dir) = root.open_dir(upload_dir(id)).await else { return };
    if let Ok(entries) = dir.read_dir() {
        for entry in entries {
            let _ = dir.unlink(&entry.name).await;
        }
    }
    if let Ok(uploads) = root.open_dir(UPLOADS).await {
        let _ = uploads.rmdir(id).await;
    }
}

pub(crate) async fn abort(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    record(call, &id, bucket, path).await?;
    remove_upload(call.shard().store.root(), &id).await;
    call.empty(204, "").await
}

/// Every upload's id and record.
async fn uploads(root: &Dir) -> Vec<(String, Record)> {
    let Ok(dir) = root.open_dir(UPLOADS).await else { return Vec::new() };
    let Ok(entries) = dir.read_dir() else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries {
        let id = entry.name.to_string_lossy().into_owned();
        if check_id(&id).is_err() {
            continue;
        }
        if let Ok(bytes) = read_small(root, &format!("{}/upload.json", upload_dir(&id))).await {
            if let Ok(record) = serde_json::from_slice::<Record>(&bytes) {
                out.push((id, record));
            }
        }
    }
    out
}

/// Removes uploads older than the expiry.
async fn sweep(call: &Call<'_, '_, '_>, now: u64) {
    let settings = call.shard().config.s3.as_ref().expect("S3 settings");
    let root = call.shard().store.root();
    for (id, record) in uploads(root).await {
        if now.saturating_sub(record.initiated) > settings.upload_expiry_secs {
            tracing::info!(bucket = %record.bucket, key = %record.key, "removing a multipart upload abandoned for over {} s", settings.upload_expiry_secs);
            remove_upload(root, &id).await;
        }
    }
}

pub(crate) async fn list_uploads(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    let prefix = call.query.get("prefix").unwrap_or("").to_string();
    let mut all: Vec<(String, String, u64)> = uploads(call.shard().store.root())
        .await
        .into_iter()
        .filter(|(_, r)| r.bucket == bucket && r.key.starts_with(&prefix))
        .map(|(id, r)| (r.key, id, r.initiated))
        .collect();
    if cluster::local(call) {
        // A peer's question: this node's uploads, as they are.
        let json = serde_json::to_vec(&all).map_err(|e| super::error::internal(e.to_string()))?;
        let head = crate::http::response::Head::new(200).header("Content-Type", "application/json");
        let whole = call.reply.finish_with(head, &json);
        return Ok(call.reply.send_one(whole).await);
    }
    if cluster::spans_nodes(call) {
        // Each upload lives on its key's node: every node must answer.
        let query = [("uploads", ""), ("prefix", prefix.as_str())];
        for (name, answer) in cluster::everywhere(call, "GET", &format!("/{bucket}"), &query, &[]).await {
            match answer {
                Ok(a) if a.status == 200 => all.extend(
                    serde_json::from_slice::<Vec<(String, String, u64)>>(&a.body)
                        .map_err(|e| cluster::unreachable(&name, &format!("its uploads do not parse: {e}")))?,
                ),
                Ok(a) if a.status == 404 => {}
                Ok(a) => return Err(cluster::refused(&name, &a)),
                Err(why) => return Err(cluster::unreachable(&name, &why)),
            }
        }
    }
    all.sort_by(|a, b| (&a.0, a.2, &a.1).cmp(&(&b.0, b.2, &b.1)));
    let mut out = Writer::document();
    out.root("ListMultipartUploadsResult");
    out.leaf("Bucket", bucket);
    out.leaf("KeyMarker", "");
    out.leaf("UploadIdMarker", "");
    out.leaf("Prefix", &prefix);
    out.leaf("MaxUploads", 1000);
    out.leaf("IsTruncated", false);
    for (key, id, initiated) in &all {
        out.open("Upload");
        out.leaf("Key", key);
        out.leaf("UploadId", id);
        out.open("Initiator");
        out.leaf("ID", "percore");
        out.leaf("DisplayName", "percore");
        out.close("Initiator");
        bucket::owner(&mut out);
        out.leaf("StorageClass", "STANDARD");
        out.leaf("Initiated", xml::iso8601(*initiated));
        out.close("Upload");
    }
    out.close("ListMultipartUploadsResult");
    call.xml(out.finish()).await
}
