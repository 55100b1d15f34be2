//! Multipart uploads: Create, UploadPart, UploadPartCopy, ListParts,
//! Complete, Abort, over the uploads `uploads` keeps (ListMultipartUploads:
//! `pending`).
//! Complete copies the parts in order into one new object (its ETag the MD5
//! of the parts' MD5s, `-N`; its checksum made from the parts' when the
//! upload has one: `checksum`), commits it (it appears whole or not at
//! all), then removes the upload. Uploads older than
//! `--s3-upload-expiry-secs` are removed when a new one starts.

use super::md5::Md5;
use percore_io::File;

use super::checksum::{self, Algorithm, Hasher, Kind};
use super::copy::Source;
use super::error::{from_io, invalid_argument, invalid_request, malformed_xml, S3Error};
use super::meta;
use super::object;
use super::sigv4::hex;
use super::uploads::{part_name, parts, record, remove_upload, store_small, upload_dir, uploads, Part, Record};
use super::xml::{self, Writer};
use super::{bucket, Call};
use crate::store::Conditions;

/// Part numbers run 1..=10000 (as on S3).
const PART_NUMBER_MAX: u32 = 10_000;
/// Every part but the last is at least this large (as on S3).
const PART_BYTES_MIN: u64 = 5 << 20;
/// Parts listed per page at most.
const PARTS_MAX: usize = 1000;

pub(crate) async fn create(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8], key: &str) -> Result<bool, S3Error> {
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    body.read_all().await?;
    call.body_read();
    bucket::must_exist(call, bucket).await?;
    let _ = path;
    let mut headers = meta::from_request(call.headers).map_err(|m| S3Error::new(400, "MetadataTooLarge", m))?;
    super::tags::add_requested(call.headers, &mut headers)?;
    let summed =
        checksum::for_upload(call.headers.get("x-amz-checksum-algorithm"), call.headers.get(checksum::TYPE_HEADER))?;
    let now = crate::clock::coarse_epoch_seconds();
    sweep(call, now).await;
    let mut random = [0u8; 16];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| super::error::internal("no random bytes for an upload id"))?;
    let id = hex(&random);
    let record = Record {
        bucket: bucket.to_string(),
        key: key.to_string(),
        headers,
        initiated: now,
        checksum: summed.map(|(algorithm, kind)| (algorithm.upper().to_string(), kind == Kind::FullObject)),
    };
    let json = serde_json::to_vec(&record).expect("strings serialize");
    store_small(call, format!("{}/upload.json", upload_dir(&id)).as_bytes(), json).await?;
    let mut out = Writer::document();
    out.root("InitiateMultipartUploadResult");
    out.leaf("Bucket", bucket);
    out.leaf("Key", key);
    out.leaf("UploadId", &id);
    out.close("InitiateMultipartUploadResult");
    let lines = summed.map_or(String::new(), |(algorithm, kind)| {
        format!("x-amz-checksum-algorithm: {}\r\n{}: {}\r\n", algorithm.upper(), checksum::TYPE_HEADER, kind.text())
    });
    call.xml_with(out.finish(), &lines).await
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
    let summed = record(call, &id, bucket, path).await?.checksum();
    let part_path = format!("{}/{}", upload_dir(&id), part_name(number));
    let staged = object::receive(call, part_path.as_bytes(), Vec::new(), summed.map(|(a, _)| a)).await?;
    let mut lines = format!("ETag: {}\r\n", staged.etag);
    if let Some((name, value)) = &staged.checksum {
        lines.push_str(&format!("{name}: {value}\r\n"));
    }
    object::commit(part_path.as_bytes(), staged, Conditions::default()).await?;
    call.empty(200, &lines).await
}

/// UploadPartCopy: a part copied from (a range of) an existing object.
pub(crate) async fn upload_part_copy(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    let number = part_number(call)?;
    let summed = record(call, &id, bucket, path).await?.checksum();
    let (src_bucket, src_key) = super::copy::copy_source(call.headers.get("x-amz-copy-source").unwrap_or(""))?;
    let src_path = super::keys::object_path(&src_bucket, &src_key)?;
    let range = call.headers.get("x-amz-copy-source-range");
    let parse = |size: u64| copy_range(range.unwrap_or(""), size);
    let mut source = Source::open(call, &src_bucket, &src_key, &src_path, range.map(|_| &parse as _)).await?;
    super::copy::source_conditions(call, source.etag(), source.modified())?;
    let len = source.len();
    let store = &call.shard().store;
    if store.fenced() {
        return Err(S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()));
    }
    let part_path = format!("{}/{}", upload_dir(&id), part_name(number));
    let upload = store.begin_upload(part_path.as_bytes(), Some(len)).await.map_err(|(what, e)| from_io(what, &e))?;
    let mut hasher = summed.map(|(algorithm, _)| Hasher::new(algorithm));
    let md5 = match source.copy_into(store, &upload, hasher.as_mut()).await {
        Ok(md5) => md5,
        Err(err) => {
            upload.discard().await;
            return Err(err);
        }
    };
    drop(source);
    let summed = summed.zip(hasher).map(|((algorithm, _), h)| (algorithm, checksum::encode(&h.finish())));
    let headers = summed.iter().map(|(algorithm, value)| (algorithm.header(), value.clone())).collect();
    let staged = object::flush(store, upload, super::meta::md5_etag(&md5), headers).await?;
    let etag = object::commit(part_path.as_bytes(), staged, Conditions::default()).await?;
    let mut out = Writer::document();
    out.root("CopyPartResult");
    out.leaf("LastModified", xml::iso8601(crate::clock::coarse_epoch_seconds()));
    out.leaf("ETag", &etag);
    if let Some((algorithm, value)) = &summed {
        out.leaf(&algorithm.element(), value);
    }
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
    if let Some((algorithm, kind)) = record.checksum() {
        out.leaf("ChecksumAlgorithm", algorithm.upper());
        out.leaf("ChecksumType", kind.text());
    }
    for part in shown {
        out.open("Part");
        out.leaf("PartNumber", part.number);
        out.leaf("LastModified", xml::iso8601(part.modified));
        out.leaf("ETag", &part.etag);
        out.leaf("Size", part.size);
        if let Some((algorithm, value)) = part_checksum(part) {
            out.leaf(&algorithm.element(), value);
        }
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
    let (mut body, _) = call.body(xml::BODY_BYTES_MAX)?;
    body.checksum_header_is_not_the_bodys();
    let (document, _) = body.read_all().await?;
    call.body_read();
    let record = record(call, &id, bucket, path).await?;
    let conditions = object::write_conditions(call, bucket, path).await?;
    let summed = record.checksum();
    let element = summed.map(|(algorithm, _)| algorithm.element());
    let leaves: Vec<&str> = ["PartNumber", "ETag"].into_iter().chain(element.as_deref()).collect();
    let listed = xml::items(&document, "CompleteMultipartUpload", "Part", &leaves).map_err(malformed_xml)?;
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
            Some(part) if part.etag == quoted => {
                let given = item.get(2).and_then(|v| v.as_deref()).map(str::trim);
                if given.is_some_and(|given| part_checksum(part).map(|(_, value)| value) != Some(given)) {
                    return Err(S3Error::new(
                        400,
                        "InvalidPart",
                        format!(
                            "the {} listed for part {number} is not the checksum the part was uploaded with",
                            element.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                chosen.push(part)
            }
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
    let whole = object_checksum(call, summed, &chosen, total)?;
    let mut headers = record.headers;
    let sizes: Vec<u64> = chosen.iter().map(|p| p.size).collect();
    headers.extend(super::parts::encode(&sizes).map(|layout| (super::parts::HEADER.to_string(), layout)));
    if let Some((algorithm, kind, value)) = &whole {
        headers.push((algorithm.header(), value.clone()));
        headers.push((checksum::TYPE_HEADER.to_string(), kind.text().to_string()));
    }
    let upload = object::begin(store, path, Some(total)).await?;
    let sources: Vec<(&File, u64, u64)> = chosen.iter().map(|p| (&p.file, 0, p.size)).collect();
    if let Err(err) = super::copy::copy_into(store, &upload, &sources, None).await {
        upload.discard().await;
        return Err(err);
    }
    drop(sources);
    drop(stored);
    let staged = object::flush(store, upload, etag, headers).await?;
    let etag = object::commit(path, staged, conditions).await?;
    remove_upload(call.shard().store.root(), &id).await;
    let mut out = Writer::document();
    out.root("CompleteMultipartUploadResult");
    out.leaf("Location", format!("/{bucket}/{}", super::head::encode(key.as_bytes(), true)));
    out.leaf("Bucket", bucket);
    out.leaf("Key", key);
    out.leaf("ETag", &etag);
    if let Some((algorithm, kind, value)) = &whole {
        out.leaf(&algorithm.element(), value);
        out.leaf("ChecksumType", kind.text());
    }
    out.close("CompleteMultipartUploadResult");
    call.xml(out.finish()).await
}

/// A part's checksum: its algorithm and value (base64).
fn part_checksum(part: &Part) -> Option<(Algorithm, &str)> {
    let (name, value) = part.checksum.as_ref()?;
    let algorithm = Algorithm::named(name.strip_prefix("x-amz-checksum-")?).ok()?;
    Some((algorithm, value.as_str()))
}

/// The checksum a completed upload's object gets (algorithm, kind, value),
/// made from its `chosen` parts' (`total` bytes), and checked against what
/// the Complete request says of the whole: `x-amz-mp-object-size`,
/// `x-amz-checksum-type` and the value (`x-amz-checksum-<algorithm>`).
/// None for an upload without one (or parts stored by an earlier version,
/// which kept no checksum).
fn object_checksum(
    call: &Call<'_, '_, '_>,
    summed: Option<(Algorithm, Kind)>,
    chosen: &[&Part],
    total: u64,
) -> Result<Option<(Algorithm, Kind, String)>, S3Error> {
    if let Some(size) = call.headers.get("x-amz-mp-object-size") {
        if size.trim().parse::<u64>().ok() != Some(total) {
            return Err(invalid_request(format!(
                "x-amz-mp-object-size says {size} bytes, but the parts listed hold {total}"
            )));
        }
    }
    let Some((algorithm, kind)) = summed else { return Ok(None) };
    if let Some(asked) = call.headers.get(checksum::TYPE_HEADER) {
        if checksum::Kind::parse(asked)? != kind {
            return Err(invalid_request(format!(
                "this upload was created with the {} checksum type, not {asked}",
                kind.text()
            )));
        }
    }
    let mut values = Vec::with_capacity(chosen.len());
    for part in chosen {
        let value =
            part_checksum(part).filter(|(a, _)| *a == algorithm).and_then(|(_, v)| checksum::decode(algorithm, v));
        let Some(value) = value else { return Ok(None) };
        values.push((value, part.size));
    }
    let value = checksum::of_parts(algorithm, kind, &values);
    if let Some(given) = call.headers.get(&algorithm.header()) {
        if given.trim() != value {
            return Err(S3Error::new(
                400,
                "BadDigest",
                format!(
                    "the {} you specified for the whole object did not match the one computed from its parts ({value})",
                    algorithm.upper()
                ),
            ));
        }
    }
    Ok(Some((algorithm, kind, value)))
}

pub(crate) async fn abort(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let id = call.query.get("uploadId").unwrap_or("").to_string();
    record(call, &id, bucket, path).await?;
    remove_upload(call.shard().store.root(), &id).await;
    call.empty(204, "").await
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
