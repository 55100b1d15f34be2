//! CopyObject and the copying it shares with UploadPartCopy and
//! CompleteMultipartUpload: a source read and written into a new upload in
//! 1 MiB pieces, its MD5 computed on the way, then committed as any PUT.

use super::md5::Md5;
use percore_io::File;

use super::checksum::{self, Algorithm, Hasher};
use super::error::{from_io, internal, invalid_argument, invalid_request, S3Error};
use super::meta;
use super::meta::md5_etag;
use super::object::{
    begin, commit, etag_listed, flush, open, precondition_failed, write_conditions, write_piece, Opened,
};
use super::xml::{self, Writer};
use super::{bucket, cluster, keys, remote, Call};
use crate::http::request::Method;
use crate::store::{Store, Upload};

/// Bytes read and written at a time when copying between files.
const COPY_PIECE_BYTES: usize = 1 << 20;

/// `x-amz-copy-source`'s bucket and key (`/bucket/key` or `bucket/key`,
/// URL-encoded).
pub(crate) fn copy_source(value: &str) -> Result<(String, String), S3Error> {
    let value = match value.split_once("?versionId=") {
        Some((value, version)) => {
            super::unkept::refuse_version(Some(version))?;
            value
        }
        None => value,
    };
    let decoded = super::head::decode(value).map_err(|_| invalid_request("x-amz-copy-source is not UTF-8"))?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = decoded
        .split_once('/')
        .filter(|(_, k)| !k.is_empty())
        .ok_or_else(|| invalid_request("x-amz-copy-source must be bucket/key"))?;
    keys::check_bucket(bucket)?;
    Ok((bucket.to_string(), key.to_string()))
}

/// Copies `sources` (open files, each from an offset for a length, in
/// order) into `upload`, hashing the bytes (into `checksum` too, if given);
/// returns their MD5.
pub(crate) async fn copy_into(
    store: &Store,
    upload: &Upload,
    sources: &[(&File, u64, u64)],
    mut checksum: Option<&mut Hasher>,
) -> Result<[u8; 16], S3Error> {
    let mut md5 = Md5::new();
    let mut offset = 0u64;
    for &(file, start, len) in sources {
        let (mut at, end) = (start, start + len);
        while at < end {
            let want = (end - at).min(COPY_PIECE_BYTES as u64) as usize;
            let (result, piece) = file.read_exact_at(Vec::with_capacity(want), at).await;
            result
                .map_err(|e| store.faults().saw(crate::health::Kind::Read, e))
                .map_err(|e| from_io("cannot read the source", &e))?;
            md5.update(&piece);
            if let Some(checksum) = checksum.as_deref_mut() {
                checksum.update(&piece);
            }
            write_piece(store, upload, piece, offset).await?;
            offset += want as u64;
            at += want as u64;
        }
    }
    Ok(md5.finalize())
}

pub(crate) async fn copy(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let (src_bucket, src_key) = copy_source(call.headers.get("x-amz-copy-source").unwrap_or(""))?;
    if src_key.ends_with('/') {
        return Err(invalid_request(format!(
            "the source `{src_key}` is a folder (a key that ends in /), which holds no bytes: it can be copied \
             only to another folder"
        )));
    }
    let src_path = keys::object_path(&src_bucket, &src_key)?;
    // A copy has no body (skipped, if any, by closing the connection).
    bucket::must_exist(call, bucket).await?;
    let conditions = write_conditions(call, bucket, path).await?;
    let replace = replaces_metadata(call, src_path == path)?;
    let mut source = Source::open(call, &src_bucket, &src_key, &src_path, None).await?;
    source_conditions(call, source.etag(), source.modified())?;
    let mut headers = if replace {
        let mut headers = meta::from_request(call.headers).map_err(|m| S3Error::new(400, "MetadataTooLarge", m))?;
        // The checksum describes the bytes, which the copy keeps.
        headers.extend(source.headers().iter().filter(|(name, _)| name.starts_with("x-amz-checksum-")).cloned());
        headers
    } else {
        source.headers().to_vec()
    };
    // A copy is one part, whatever the source's were.
    headers.retain(|(name, _)| name != super::parts::HEADER);
    super::tags::add_copied(call.headers, source.headers(), &mut headers)?;
    // A copy keeps the source's checksum, or gets a new one if asked.
    let fresh = call.headers.get("x-amz-checksum-algorithm").map(Algorithm::parse).transpose()?;
    let mut hasher = fresh.map(Hasher::new);
    let store = &call.shard().store;
    if store.fenced() {
        return Err(S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()));
    }
    let upload = begin(store, path, Some(source.len())).await?;
    let md5 = match source.copy_into(store, &upload, hasher.as_mut()).await {
        Ok(md5) => md5,
        Err(err) => {
            upload.discard().await;
            return Err(err);
        }
    };
    drop(source);
    let fresh = fresh.zip(hasher).map(|(algorithm, h)| (algorithm, checksum::encode(&h.finish())));
    if let Some((algorithm, value)) = &fresh {
        headers.retain(|(name, _)| !name.starts_with("x-amz-checksum-"));
        headers.push((algorithm.header(), value.clone()));
    }
    let staged = flush(store, upload, md5_etag(&md5), headers).await?;
    let etag = commit(path, staged, conditions).await?;
    if call.request.method == Method::Head {
        return Err(internal("a copy is a PUT"));
    }
    call.xml(copy_result(&etag, fresh.as_ref().map(|(a, v)| (*a, v.as_str())))).await
}

/// How a part's `x-amz-copy-source-range` becomes (offset, length) within
/// a source of the given size.
pub(crate) type RangeOf<'r> = &'r dyn Fn(u64) -> Result<(u64, u64), S3Error>;

/// A copy's source: an open file here, or on another node of the ring
/// (`remote`).
pub(crate) enum Source {
    Here(Opened, u64, u64),
    There(remote::Source),
}

impl Source {
    /// Opens `src_key` of `src_bucket` (at `src_path` here), all of it or
    /// `range` (`x-amz-copy-source-range`, parsed by `range`).
    pub(crate) async fn open(
        call: &Call<'_, '_, '_>,
        src_bucket: &str,
        src_key: &str,
        src_path: &[u8],
        range: Option<RangeOf<'_>>,
    ) -> Result<Source, S3Error> {
        if let Some(peer) = cluster::owner_of(call, src_bucket, src_key) {
            let wanted = match range {
                // The part's first and last byte, checked by the node.
                Some(parse) => Some(parse(u64::MAX).map(|(first, len)| (first, first + len - 1))?),
                None => None,
            };
            return Ok(Source::There(remote::open(call, peer, src_bucket, src_key, wanted).await?));
        }
        let opened = open(call, src_bucket, src_path).await?;
        let (start, len) = match range {
            Some(parse) => parse(opened.size)?,
            None => (0, opened.size),
        };
        Ok(Source::Here(opened, start, len))
    }

    pub(crate) fn etag(&self) -> &str {
        match self {
            Source::Here(opened, ..) => opened.etag(),
            Source::There(remote) => &remote.etag,
        }
    }

    /// Its Last-Modified, in seconds since the epoch.
    pub(crate) fn modified(&self) -> u64 {
        match self {
            Source::Here(opened, ..) => opened.stat.mtime.0.max(0) as u64,
            Source::There(remote) => remote.modified,
        }
    }

    pub(crate) fn headers(&self) -> &[(String, String)] {
        match self {
            Source::Here(opened, ..) => opened.headers(),
            Source::There(remote) => &remote.headers,
        }
    }

    /// The bytes to copy.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Source::Here(_, _, len) => *len,
            Source::There(remote) => remote.len,
        }
    }

    /// Copies the bytes into `upload` (hashed into `checksum` too, if
    /// given); their MD5.
    pub(crate) async fn copy_into(
        &mut self,
        store: &Store,
        upload: &Upload,
        checksum: Option<&mut Hasher>,
    ) -> Result<[u8; 16], S3Error> {
        match self {
            Source::Here(opened, start, len) => {
                copy_into(store, upload, &[(&opened.file, *start, *len)], checksum).await
            }
            Source::There(remote) => remote::copy_into(store, upload, remote, checksum).await,
        }
    }
}

/// Whether a copy replaces the source's metadata with the request's
/// (`x-amz-metadata-directive: REPLACE`) rather than keeping it (`COPY`, the
/// default); a copy onto itself must replace it.
pub(crate) fn replaces_metadata(call: &Call<'_, '_, '_>, onto_itself: bool) -> Result<bool, S3Error> {
    let replace = match call.headers.get("x-amz-metadata-directive").unwrap_or("COPY") {
        "COPY" => false,
        "REPLACE" => true,
        other => return Err(invalid_request(format!("x-amz-metadata-directive must be COPY or REPLACE, not {other}"))),
    };
    if onto_itself && !replace {
        return Err(invalid_request(
            "this copy request is illegal because it is trying to copy an object to itself without changing the \
             object's metadata",
        ));
    }
    Ok(replace)
}

/// Checks the copy's source conditions against the source's ETag and
/// Last-Modified (seconds since the epoch), as RFC 9110 orders them (S3
/// answers the same): `x-amz-copy-source-if-match` (an ETag, quoted or
/// not, a list, or `*`), or else `-if-unmodified-since`; then
/// `-if-none-match`, or else `-if-modified-since`. One that does not hold
/// is 412 and copies nothing; a date that does not parse is refused rather
/// than ignored.
pub(crate) fn source_conditions(call: &Call<'_, '_, '_>, etag: &str, modified: u64) -> Result<(), S3Error> {
    let since = |name: &str| -> Result<Option<u64>, S3Error> {
        match call.headers.get(name) {
            Some(text) => super::date::parse_timestamp(text)
                .map(Some)
                .ok_or_else(|| invalid_argument(format!("{name}: {text:?} is no HTTP date"))),
            None => Ok(None),
        }
    };
    let holds = match call.headers.get("x-amz-copy-source-if-match") {
        Some(list) => etag_listed(list, etag),
        None => since("x-amz-copy-source-if-unmodified-since")?.is_none_or(|at| modified <= at),
    } && match call.headers.get("x-amz-copy-source-if-none-match") {
        Some(list) => !etag_listed(list, etag),
        None => since("x-amz-copy-source-if-modified-since")?.is_none_or(|at| modified > at),
    };
    if holds {
        Ok(())
    } else {
        Err(precondition_failed())
    }
}

/// A copy's answer: the new version's ETag, and now (and the checksum
/// computed for it, if one was asked for).
pub(crate) fn copy_result(etag: &str, checksum: Option<(Algorithm, &str)>) -> String {
    let mut out = Writer::document();
    out.root("CopyObjectResult");
    out.leaf("LastModified", xml::iso8601(crate::clock::coarse_epoch_seconds()));
    out.leaf("ETag", etag);
    if let Some((algorithm, value)) = checksum {
        out.leaf(&algorithm.element(), value);
        out.leaf("ChecksumType", "FULL_OBJECT");
    }
    out.close("CopyObjectResult");
    out.finish()
}
