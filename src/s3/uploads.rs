//! Multipart uploads as the store keeps them: a directory per upload,
//! `.percore-s3/uploads/<id>/` (hidden from `/files/` and from buckets by
//! the reserved prefix), holding `upload.json` ([`Record`]: bucket, key,
//! headers, when, checksum) and one file per part (`part-00001`, ...), each
//! committed durably as any object is, with its MD5 ETag and checksum in its
//! metadata. The operations on them are `multipart`'s.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use percore_io::{Dir, File, OpenOptions};
use serde::{Deserialize, Serialize};

use super::checksum::{Algorithm, Kind};
use super::error::{from_io, S3Error};
use super::meta;
use super::object::{self, Staged};
use super::Call;
use crate::files;
use crate::store::Conditions;

/// Where uploads live, under the data directory.
const UPLOADS: &str = ".percore-s3/uploads";

#[derive(Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) headers: Vec<(String, String)>,
    /// Seconds since the epoch.
    pub(crate) initiated: u64,
    /// The checksum the object gets, from the parts' (`checksum`): its
    /// algorithm and whether it is `FULL_OBJECT` (else `COMPOSITE`). Absent
    /// in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checksum: Option<(String, bool)>,
}

impl Record {
    /// The upload's checksum, if it has one.
    pub(crate) fn checksum(&self) -> Option<(Algorithm, Kind)> {
        let (name, full) = self.checksum.as_ref()?;
        let algorithm = Algorithm::parse(name).ok()?;
        Some((algorithm, if *full { Kind::FullObject } else { Kind::Composite }))
    }
}

pub(crate) fn upload_dir(id: &str) -> String {
    format!("{UPLOADS}/{id}")
}

pub(crate) fn part_name(number: u32) -> String {
    format!("part-{number:05}")
}

/// Checks an upload id's form (ours are 32 hex digits).
pub(crate) fn check_id(id: &str) -> Result<(), S3Error> {
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
pub(crate) async fn record(
    call: &Call<'_, '_, '_>,
    id: &str,
    bucket: &str,
    key_path: &[u8],
) -> Result<Record, S3Error> {
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
pub(crate) async fn store_small(call: &Call<'_, '_, '_>, path: &[u8], bytes: Vec<u8>) -> Result<(), S3Error> {
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

/// A stored part.
pub(crate) struct Part {
    pub(crate) number: u32,
    pub(crate) size: u64,
    pub(crate) modified: u64,
    /// Quoted MD5 hex.
    pub(crate) etag: String,
    /// The checksum it was received with (`x-amz-checksum-*`, value), if any.
    pub(crate) checksum: Option<(String, String)>,
    pub(crate) file: File,
}

/// The parts of upload `id`, in order.
pub(crate) async fn parts(call: &Call<'_, '_, '_>, id: &str) -> Result<Vec<Part>, S3Error> {
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
        let (etag, checksum) = match meta::read(&file, &stamp) {
            Some(m) => (m.etag, m.headers.into_iter().find(|(name, _)| name.starts_with("x-amz-checksum-"))),
            None => (stamp, None),
        };
        let modified = stat.mtime.0.max(0) as u64;
        parts.push(Part { number, size: stat.size, modified, etag, checksum, file });
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

/// Removes upload `id`'s directory (its parts and record). Best effort: a
/// left-over upload is removed by a later sweep.
pub(crate) async fn remove_upload(root: &Dir, id: &str) {
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

/// Every upload's id and record.
pub(crate) async fn uploads(root: &Dir) -> Vec<(String, Record)> {
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
