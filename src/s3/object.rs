//! Objects: PutObject, GetObject and HeadObject (ranges, conditionals,
//! `response-*` overrides: the `/files/` sending path), and the commit that
//! CopyObject, multipart uploads and `delete` share. Writes go through the
//! store's upload and commit protocol (`store`): durable before they are
//! answered, never partly visible. The S3 metadata (`meta`) is set on the
//! file before its flush.

use percore_io::File;

use super::checksum::{self, Algorithm, Kind};
pub(crate) use super::error::{commit_error, precondition_failed};
use super::error::{from_io, internal, invalid_argument, invalid_request, no_such_key, S3Error};
use super::meta::{self, ObjectMeta};
use super::{bucket, parts, Call};
use crate::cache;
use crate::files::{self, Found};
use crate::http::get::{self, Plan};
use crate::http::request::Method;
use crate::shard::on_owner;
use crate::store::{Attribute, Conditions, Outcome, Store, Upload};

/// An upload's temporary file and what it will be committed with.
pub(crate) struct Staged {
    pub(crate) upload: Upload,
    /// The S3 ETag (quoted).
    pub(crate) etag: String,
    /// The version's own validator (what the metadata is stamped with).
    pub(crate) stamp: String,
    /// The checksum the client sent and that held (header name, value).
    pub(crate) checksum: Option<(String, String)>,
}

/// Flushes `upload` with the metadata `headers` and `etag`.
pub(crate) async fn flush(
    store: &Store,
    mut upload: Upload,
    etag: String,
    headers: Vec<(String, String)>,
) -> Result<Staged, S3Error> {
    let value = |stamp: &str| meta::encode(stamp, &etag, &headers);
    let attribute = Attribute { name: meta::XATTR, value: &value };
    match upload.flush_with(store, Some(attribute)).await {
        Ok(stamp) => Ok(Staged { upload, etag, stamp, checksum: None }),
        Err(err) => {
            upload.discard().await;
            Err(from_io("cannot flush the object", &err))
        }
    }
}

/// Commits a staged upload as `path` on the path's owner shard.
pub(crate) async fn commit(path: &[u8], staged: Staged, conditions: Conditions) -> Result<String, S3Error> {
    // An `If-Match` that held against the version then current, given as
    // that version's validator ([`write_conditions`]).
    let guarded = conditions.if_match.as_deref().is_some_and(|m| m != "*");
    let (owner_path, temp, stamp) = (path.to_vec(), staged.upload.temp().to_vec(), staged.stamp.clone());
    let outcome =
        on_owner(path, move |owner| async move { owner.store.commit_put(owner_path, temp, conditions, stamp).await })
            .await;
    if let Outcome::Failed(std::io::ErrorKind::Interrupted, _) = outcome {
        staged.upload.discard().await;
    }
    match outcome {
        Outcome::Created(_) | Outcome::Replaced(_) => Ok(staged.etag),
        Outcome::PreconditionFailed if guarded => Err(conflict("write")),
        other => Err(commit_error(other)),
    }
}

/// A conditional write or delete whose object changed between the check
/// and the commit (as S3 answers).
pub(crate) fn conflict(what: &str) -> S3Error {
    S3Error::new(
        409,
        "ConditionalRequestConflict",
        format!("the object changed while this conditional {what} was under way: read its ETag again and retry"),
    )
}

/// Whether `list` (an `If-Match` value: ETags, quoted or not, or `*`) names
/// `etag`.
pub(crate) fn etag_listed(list: &str, etag: &str) -> bool {
    let unquoted = |tag: &str| tag.trim().trim_matches('"').to_string();
    list.trim() == "*" || list.split(',').any(|tag| unquoted(tag) == unquoted(etag))
}

/// The conditions of a write S3 clients send: `If-None-Match: *` (create
/// only) and `If-Match` (replace only the version with that ETag). S3 ETags
/// are MD5s the commit does not know: `If-Match` is checked here against
/// the object's S3 ETag, then handed to the commit as the store's own
/// validator of the version that matched, so that a write landing in
/// between fails the commit ([`commit`]: 409 ConditionalRequestConflict, as
/// S3 answers) rather than being overwritten.
pub(crate) async fn write_conditions(
    call: &Call<'_, '_, '_>,
    bucket: &str,
    path: &[u8],
) -> Result<Conditions, S3Error> {
    let if_none_match = match call.request.if_none_match.as_deref().map(str::trim) {
        None => None,
        Some("*") => Some("*".to_string()),
        Some(_) => return Err(super::error::not_implemented("If-None-Match other than * on writes")),
    };
    let if_match = match call.request.if_match.as_deref().map(str::trim) {
        None => None,
        Some("*") => Some("*".to_string()),
        Some(list) => {
            let current = open(call, bucket, path).await?;
            if !etag_listed(list, current.etag()) {
                return Err(precondition_failed());
            }
            Some(current.stamp)
        }
    };
    Ok(Conditions { if_match, if_none_match, if_unmodified_since: None })
}

/// Streams the request's body into an upload of `path`, checking it, and
/// flushes it with `headers` (and the checksum `want`, computed if the
/// client sent none): the object waits for its commit.
pub(crate) async fn receive(
    call: &mut Call<'_, '_, '_>,
    path: &[u8],
    headers: Vec<(String, String)>,
    want: Option<Algorithm>,
) -> Result<Staged, S3Error> {
    let shard = call.shard();
    if shard.store.fenced() {
        return Err(S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()));
    }
    let max = shard.config.body_bytes_max;
    let declared = super::body::declared_len(call.headers, call.request.body);
    if declared.is_some_and(|n| n > max) {
        return Err(S3Error::new(
            400,
            "EntityTooLarge",
            format!("your proposed upload exceeds the maximum allowed size ({max} bytes)"),
        ));
    }
    let upload = begin(&shard.store, path, declared).await?;
    if !call.continue_100().await {
        upload.discard().await;
        return Err(S3Error::gone());
    }
    let (mut body, _) = call.body(max)?;
    if let Some(algorithm) = want {
        if let Err(err) = body.compute(algorithm) {
            upload.discard().await;
            return Err(err);
        }
    }
    let written: Result<super::body::Digests, S3Error> = async {
        let mut offset = 0u64;
        while let Some(piece) = body.next().await? {
            let len = piece.len() as u64;
            write_piece(&shard.store, &upload, piece, offset).await?;
            offset += len;
        }
        body.finish()
    }
    .await;
    let digests = match written {
        Ok(digests) => digests,
        Err(err) => {
            upload.discard().await;
            return Err(err);
        }
    };
    call.body_read();
    let mut headers = headers;
    headers.extend(digests.checksum.clone());
    let mut staged = flush(&shard.store, upload, meta::md5_etag(&digests.md5), headers).await?;
    staged.checksum = digests.checksum;
    Ok(staged)
}

/// Writes `piece` of an object's bytes into `upload` at `offset` (a disk
/// fault counted as such).
pub(crate) async fn write_piece(store: &Store, upload: &Upload, piece: Vec<u8>, offset: u64) -> Result<(), S3Error> {
    let (result, _) = upload.file().write_all_at(piece, offset).await;
    result
        .map_err(|e| store.faults().saw(crate::health::Kind::Write, e))
        .map_err(|e| from_io("cannot store the object", &e))
}

/// Starts an upload to `path` (`bucket/key...`): the key's directories are
/// made as needed, the bucket never (NoSuchBucket when it is missing).
pub(crate) async fn begin(store: &Store, path: &[u8], len: Option<u64>) -> Result<Upload, S3Error> {
    match store.begin_upload_under(path, len, 1).await {
        Ok(upload) => Ok(upload),
        Err((_, err)) if err.kind() == std::io::ErrorKind::NotFound => {
            let bucket = String::from_utf8_lossy(path.split(|&b| b == b'/').next().unwrap_or_default()).into_owned();
            Err(super::error::no_such_bucket(&bucket))
        }
        Err((what, err)) => Err(from_io(what, &err)),
    }
}

/// PutObject. (The bucket is checked by the upload's start: no lookup of
/// its own.)
pub(crate) async fn put(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let conditions = write_conditions(call, bucket, path).await?;
    let mut headers = meta::from_request(call.headers).map_err(|m| S3Error::new(400, "MetadataTooLarge", m))?;
    super::tags::add_requested(call.headers, &mut headers)?;
    let staged = receive(call, path, headers, None).await?;
    let checksum = staged.checksum.clone();
    let etag = commit(path, staged, conditions).await?;
    let mut lines = String::with_capacity(128);
    push_line(&mut lines, "ETag", &etag);
    if let Some((name, value)) = &checksum {
        push_line(&mut lines, name, value);
        push_line(&mut lines, checksum::TYPE_HEADER, Kind::FullObject.text());
    }
    call.empty(200, &lines).await
}

/// The response headers S3 lets a GET override with `response-*`.
const OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

/// An open object with its representation.
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) size: u64,
    pub(crate) stat: percore_io::Metadata,
    /// The store's own validator of this version.
    pub(crate) stamp: String,
    /// What S3 stored with it; none for a file written through `/files/`.
    pub(crate) meta: Option<ObjectMeta>,
}

impl Opened {
    /// Its S3 ETag (the store's own for a file written through `/files/`).
    pub(crate) fn etag(&self) -> &str {
        self.meta.as_ref().map_or(&self.stamp, |m| &m.etag)
    }

    pub(crate) fn headers(&self) -> &[(String, String)] {
        self.meta.as_ref().map_or(&[], |m| &m.headers)
    }
}

/// Opens the object at `path` with its metadata.
pub(crate) async fn open(call: &Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<Opened, S3Error> {
    match files::open(call.shard().store.root(), path).await {
        Ok(Found::File(file, stat)) => {
            let stamp = files::etag(&stat);
            let meta = meta::read(&file, &stamp);
            Ok(Opened { size: stat.size, file, stat, stamp, meta })
        }
        Ok(Found::Dir | Found::Nothing) => {
            bucket::must_exist(call, bucket).await?;
            Err(no_such_key())
        }
        Err(err) => Err(from_io("cannot open the object", &err)),
    }
}

/// Appends the header line `name: value` (pushed piece by piece: `format!`
/// took about a thousand instructions a line on the PUT path).
fn push_line(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// The Content-Type and the other header lines of an object's answer: what
/// was stored with it, overridden by the request's `response-*`. The
/// checksum of the whole object (`x-amz-checksum-*`, kept when the upload
/// sent one, with its `x-amz-checksum-type`: `FULL_OBJECT` unless a
/// multipart upload stored another) goes with answers to requests without a
/// Range only: clients check it against the bytes they get. An object with
/// tags says how many (`x-amz-tagging-count`).
pub(super) fn representation(call: &Call<'_, '_, '_>, stored: &[(String, String)], guessed: &str) -> (String, String) {
    let mut content_type = None;
    let mut extra = String::new();
    let overridden = |name: &str| OVERRIDES.iter().any(|(param, header)| *header == name && call.query.has(param));
    // A part's answer (`partNumber`) is a range too: the whole's checksum is not its.
    let part = call.query.has("partNumber");
    let ranged = call.request.range.is_some() || part;
    let (mut summed, mut typed) = (false, false);
    for (name, value) in stored {
        let checksum = name.starts_with("x-amz-checksum-");
        if name == super::tags::HEADER {
            push_line(&mut extra, "x-amz-tagging-count", &super::tags::count(value).to_string());
            continue;
        }
        if overridden(name) || (ranged && checksum) || name.starts_with("x-percore-") {
            continue;
        }
        summed |= checksum;
        typed |= checksum && name == checksum::TYPE_HEADER;
        if name == "content-type" {
            content_type = Some(value.clone());
            continue;
        }
        // Values were headers once: no CR or LF.
        push_line(&mut extra, name, value);
    }
    if summed && !typed {
        push_line(&mut extra, checksum::TYPE_HEADER, Kind::FullObject.text());
    }
    if let Some(count) = parts::count_of(stored).filter(|_| part) {
        push_line(&mut extra, "x-amz-mp-parts-count", &count.to_string());
    }
    for (param, header) in OVERRIDES {
        if let Some(value) = call.query.get(param).filter(|v| !v.contains(['\r', '\n'])) {
            if header == "content-type" {
                content_type = Some(value.to_string());
            } else {
                push_line(&mut extra, header, value);
            }
        }
    }
    (content_type.unwrap_or_else(|| guessed.to_string()), extra)
}

pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    if let Some(entry) = cache::get(path) {
        return from_entry(call, &entry).await;
    }
    Box::pin(from_file(call, bucket, path)).await
}

/// GET or HEAD of an object not in the cache: opened and read (and cached
/// if small). Boxed: the common answer, from the cache, then waits in a
/// smaller future.
async fn from_file(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    // Taken before the file is read: if the path is invalidated meanwhile,
    // what was read is not cached.
    let epoch = cache::epoch();
    let opened = open(call, bucket, path).await?;
    let cacheable = call.request.method == Method::Get && cache::enabled() && opened.size <= cache::FILE_BYTES_MAX;
    if cacheable {
        let (result, body) = opened.file.read_exact_at(Vec::with_capacity(opened.size as usize), 0).await;
        result.map_err(|e| from_io("cannot read the object", &e))?;
        let fill = cache::Fill {
            body: bytes::Bytes::from(body),
            last_modified: httpdate::fmt_http_date(opened.stat.modified()),
            modified_secs: opened.stat.mtime.0.max(0) as u64,
            content_type: files::content_type(path),
            etag: opened.stamp,
            s3: opened.meta,
        };
        let entry = cache::insert(path, epoch, fill);
        return from_entry(call, &entry).await;
    }
    let (content_type, extra) = representation(call, opened.headers(), &files::content_type(path));
    let last_modified = httpdate::fmt_http_date(opened.stat.modified());
    let described = get::Meta {
        size: opened.size,
        etag: opened.etag(),
        last_modified: &last_modified,
        modified_secs: opened.stat.mtime.0.max(0) as u64,
        content_type: &content_type,
        extra: &extra,
    };
    let plan = planned(call, &described, opened.headers())?;
    Ok(get::send_file(call.reply, call.request, &described, plan, &opened.file).await)
}

/// Answers a GET or HEAD from a cached entry.
async fn from_entry(call: &mut Call<'_, '_, '_>, entry: &cache::Entry) -> Result<bool, S3Error> {
    let (etag, stored) = match &entry.s3 {
        Some(meta) => (meta.etag.as_str(), meta.headers.as_slice()),
        None => (entry.etag.as_str(), &[][..]),
    };
    let request = call.request;
    let unconditional = request.method == Method::Get
        && request.if_match.is_none()
        && request.if_none_match.is_none()
        && request.if_modified_since.is_none()
        && request.if_unmodified_since.is_none()
        && request.range.is_none()
        && !call.query.0.iter().any(|(name, _)| name.starts_with("response-") || name == "partNumber");
    let plain = !call.reply.close() && !call.reply.has_lines();
    if unconditional && plain && entry.body.len() <= cache::RENDERED_BYTES_MAX {
        // The common answer, the same bytes for every such request within
        // a second: rendered once a second per entry, sent without a copy
        // (as `/files/` does).
        let whole = entry.whole_s3_answer(|| {
            let (content_type, extra) = representation(call, stored, &entry.content_type);
            let described = get::Meta {
                size: entry.body.len() as u64,
                etag,
                last_modified: &entry.last_modified,
                modified_secs: entry.modified_secs,
                content_type: &content_type,
                extra: &extra,
            };
            get::whole_ok(&described, entry)
        });
        call.reply.rendered(200);
        return Ok(call.reply.send_one(whole).await);
    }
    let (content_type, extra) = representation(call, stored, &entry.content_type);
    let described = get::Meta {
        size: entry.body.len() as u64,
        etag,
        last_modified: &entry.last_modified,
        modified_secs: entry.modified_secs,
        content_type: &content_type,
        extra: &extra,
    };
    let plan = planned(call, &described, stored)?;
    Ok(get::send_entry(call.reply, call.request, &described, plan, entry).await)
}

/// What to answer, or the S3 error for a precondition or range that fails;
/// a part of the object if the request asks for one (`partNumber`, found
/// in its `stored` headers: `parts`).
pub(super) fn planned(
    call: &Call<'_, '_, '_>,
    described: &get::Meta<'_>,
    stored: &[(String, String)],
) -> Result<Plan, S3Error> {
    let plan = match get::plan(call.request, described) {
        // S3 answers a HEAD's Range as a GET's, without the bytes: 206 with
        // the range's length (the whole for several ranges), or 416.
        Plan::Whole if call.request.method == Method::Head => match get::range_plan(call.request, described) {
            Plan::Parts(_) => Plan::Whole,
            plan => plan,
        },
        plan => plan,
    };
    let plan = match plan {
        Plan::PreconditionFailed => return Err(precondition_failed()),
        Plan::Unsatisfiable => return Err(S3Error::new(416, "InvalidRange", "the requested range is not satisfiable")),
        plan => plan,
    };
    match call.query.get("partNumber") {
        Some(asked) => part_plan(call, described, stored, asked, plan),
        None => Ok(plan),
    }
}

/// The plan of a GET or HEAD with `partNumber` (`asked`), from the plan
/// its conditions made (`plan`): the part's bytes (206), found in the
/// object's `stored` headers; a NotModified or PreconditionFailed stands.
fn part_plan(
    call: &Call<'_, '_, '_>,
    described: &get::Meta<'_>,
    stored: &[(String, String)],
    asked: &str,
    plan: Plan,
) -> Result<Plan, S3Error> {
    let number: u32 = asked
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| invalid_argument("part number must be an integer between 1 and 10000"))?;
    if call.request.range.is_some() {
        return Err(invalid_request("a request cannot ask for both a Range and a partNumber"));
    }
    if !matches!(plan, Plan::Whole) {
        return Ok(plan);
    }
    let not_satisfiable = || S3Error::new(416, "InvalidPartNumber", format!("the object has no part {number}"));
    let (start, len) = match stored.iter().find(|(name, _)| name == parts::HEADER) {
        Some((_, text)) => {
            parts::decode(text).and_then(|runs| parts::span(&runs, number)).ok_or_else(not_satisfiable)?
        }
        // A multipart object whose layout was not kept.
        None if parts::multipart_etag(described.etag) => {
            return Err(S3Error::new(501, "NotImplemented", parts::layout_lost()))
        }
        None if number == 1 => (0, described.size),
        None => return Err(not_satisfiable()),
    };
    if start + len > described.size {
        return Err(internal(format!("the kept part layout does not fit the object's {} bytes", described.size)));
    }
    match len {
        0 if described.size == 0 => Ok(Plan::Whole),
        0 => Err(S3Error::new(416, "InvalidPartNumber", format!("part {number} is empty: it has no bytes to send"))),
        len => Ok(Plan::Part(start, start + len - 1)),
    }
}
