//! The S3 API, on its own listeners (`--s3-listen`, `--s3-listen-tls`), over the same store as
//! `/files/`: a bucket is a top-level directory of the data directory, an
//! object's key its path beneath it. Path-style requests
//! (`/<bucket>/<key>`), signed with AWS Signature V4 (`sigv4`).
//!
//! A request's way: the connection loop hands it here with its head's
//! headers ([`head::Headers`]); [`serve`] checks the signature, routes by
//! method, bucket, key and query, and the handler answers (`bucket`,
//! `object`, `listing`, `multipart`). A handler returns an [`S3Error`]
//! before it has sent anything, which [`serve`] answers as XML. Bodies are
//! read through [`body::Body`], which checks the payload's hashes.
//!
//! Files by job: `head` (headers, query, target), `hoisted` (a presigned
//! URL's `x-amz-*` parameters, read as headers), `sigv4`, `body` and
//! `chunked` (payloads), `checksum` (`x-amz-checksum-*`, and a multipart
//! object's from its parts'), `uploads` (multipart uploads on disk),
//! `pending` (ListMultipartUploads), `parts` (a completed one's part
//! layout), `attributes` (GetObjectAttributes), `tags` (object tags as
//! requests carry them and the metadata keeps them), `tagging` (an
//! object's tags read and set; `bucket_tagging`, a bucket's), `acl` (ACLs
//! as they hold here), `unkept` (what else a request may ask that percore
//! does not keep: refused), `unset` (bucket settings percore does not
//! keep, read as unset), `date`, `xml`, `error` and `answer` (errors, and
//! how they are answered), `meta` (what is stored with an object), `keys`
//! (bucket names and keys as store paths), `settings`, `state` (a shard's),
//! `folder` (keys that end in `/`), `cors` (a bucket's rules for pages of
//! other origins), `post` and `form` (uploads from browsers' HTML forms),
//! `cluster` and `remote` (the nodes of a ring: what spans them, copies
//! from another node).

mod acl;
mod answer;
mod attributes;
mod body;
mod bucket;
pub(crate) mod bucket_tagging;
mod canonical;
pub(crate) mod carried;
pub(crate) mod checksum;
pub(crate) mod chunked;
pub(crate) mod cluster;
mod copy;
pub(crate) mod cors;
mod date;
mod delete;
mod error;
#[cfg(test)]
mod examples;
mod folder;
pub(crate) mod form;
mod frame;
pub(crate) mod head;
pub(crate) mod hoisted;
pub(crate) mod keys;
mod listing;
mod md5;
pub(crate) mod meta;
mod multipart;
mod object;
pub(crate) mod parts;
mod pending;
mod post;
mod remote;
pub(crate) mod settings;
pub(crate) mod sign;
pub(crate) mod sigv4;
pub(crate) mod state;
mod tagging;
pub(crate) mod tags;
mod unkept;
mod unset;
mod uploads;
pub(crate) mod xml;

use bytes::Bytes;

pub(crate) use error::S3Error;

use crate::http::body::BodyReader;
use crate::http::reply::Reply;
use crate::http::request::{Body as Framing, Method, Request};
use crate::http::response::Head;
use crate::http::wire::Incoming;
use crate::shard::Shard;
use answer::{answer_error, settle_unread, RequestId};
use head::{Headers, Query, Target};

/// One S3 request under way: what the handlers read and answer through.
pub(crate) struct Call<'c, 'a, 'b> {
    pub(crate) reply: &'c mut Reply<'a>,
    incoming: &'c mut Incoming<'b>,
    buf: &'c mut Vec<u8>,
    pub(crate) request: &'c Request,
    pub(crate) headers: &'c Headers,
    pub(crate) query: &'c Query,
    /// What the signature says of the body (taken by the body's reader).
    payload: Option<sigv4::Payload>,
    /// The connection closes after this answer whatever happens.
    close_after: bool,
    /// Whether anything of the body has been asked for (`100 Continue`
    /// sent, a reader opened, or the body drained): an answer after that
    /// leaves the body as the handler left it.
    body_touched: bool,
}

impl<'c, 'a, 'b> Call<'c, 'a, 'b> {
    pub(crate) fn shard(&self) -> &'a Shard {
        self.reply.shard
    }

    /// Opens the body for reading, at most `max` payload bytes.
    pub(crate) fn body(&mut self, max: u64) -> Result<(body::Body<'_, 'b>, &mut Reply<'a>), S3Error> {
        self.body_touched = true;
        let shard = self.reply.shard;
        let reader = BodyReader::new(self.incoming, self.buf, self.request.body, u64::MAX, shard.config.body_timeout());
        let body = body::Body::new(reader, &mut self.payload, self.headers, max)?;
        Ok((body, self.reply))
    }

    /// Sends `100 Continue` if the client waits for it.
    pub(crate) async fn continue_100(&mut self) -> bool {
        self.body_touched = true;
        !self.request.expect_continue || self.reply.send_one(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n")).await
    }

    /// Before an answer that needs no body (an error, or another node's
    /// object): a body not asked for yet is read and dropped
    /// ([`settle_unread`]).
    async fn settle_body(&mut self) {
        if !std::mem::replace(&mut self.body_touched, true) {
            // (The payload's terms are known once the signature held.)
            let signed = self.payload.is_some();
            settle_unread(self.reply, self.incoming, self.buf, self.request, self.close_after, signed).await;
        }
    }

    /// The body has been read in full: the connection can stay open.
    pub(crate) fn body_read(&mut self) {
        self.reply.keep_open(self.close_after);
    }

    /// Sends a 200 with an XML document.
    pub(crate) async fn xml(&mut self, document: String) -> Result<bool, S3Error> {
        self.xml_with(document, "").await
    }

    /// Sends a 200 with an XML document and extra header lines.
    pub(crate) async fn xml_with(&mut self, document: String, lines: &str) -> Result<bool, S3Error> {
        let head = Head::new(200).header("Content-Type", "application/xml").lines(lines);
        let whole = self.reply.finish_with(head, document.as_bytes());
        Ok(self.reply.send_one(whole).await)
    }

    /// Sends an empty answer with `status` and extra header lines.
    pub(crate) async fn empty(&mut self, status: u16, lines: &str) -> Result<bool, S3Error> {
        let head = Head::new(status).lines(lines);
        let whole = self.reply.finish(head, 0);
        Ok(self.reply.send_one(whole).await)
    }
}

/// Serves one S3 request (its head parsed into `request` and `headers`).
/// False if the connection is unusable afterwards.
pub(crate) async fn serve(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    headers: &Headers,
) -> bool {
    let shard = reply.shard;
    // Formatted only for an error's answer.
    let request_id = RequestId(percore_cores::current().id, shard.s3.next_request());
    let close_after = reply.close();
    if request.body != Framing::None {
        // Until a handler has read the body, any answer closes the connection.
        reply.closing();
    }
    let query = match Query::parse(request.query.as_deref()) {
        Ok(query) => query,
        Err(why) => {
            settle_unread(reply, incoming, buf, request, close_after, false).await;
            let err = S3Error::new(400, "InvalidURI", format!("the query could not be parsed: {why}"));
            return answer_error(reply, request, &err, request_id).await;
        }
    };
    // A presigned URL's `x-amz-*` parameters stand for headers (`hoisted`).
    let hoisted = match hoisted::hoisted(headers, &query) {
        Ok(hoisted) => hoisted,
        Err(why) => {
            settle_unread(reply, incoming, buf, request, close_after, false).await;
            return answer_error(reply, request, &error::invalid_argument(why), request_id).await;
        }
    };
    let headers = hoisted.as_ref().unwrap_or(headers);
    let payload = None;
    let mut call =
        Call { reply, incoming, buf, request, headers, query: &query, payload, close_after, body_touched: false };
    let outcome = if method_name(&request.method) == "OPTIONS" {
        // A browser's CORS preflight: unsigned, as browsers send it.
        Box::pin(preflight(&mut call)).await
    } else {
        if let Some(origin) = headers.get("origin") {
            Box::pin(cross_origin(&mut call, origin)).await;
        }
        match form_bucket(&call) {
            Some(_) if cluster::on_ring(&call) => Err(error::not_implemented("PostObject (a browser's form)").because(
                "not served by the nodes of a ring: the front end hashes the form's path, which names no key; \
                 upload through presigned PUT URLs",
            )),
            // A browser's form: signed in its own fields (`post`).
            Some(bucket) => Box::pin(post::post(&mut call, &bucket)).await,
            None => match authorize(&mut call) {
                Ok(()) => route(&mut call).await,
                Err(err) => Err(err),
            },
        }
    };
    match outcome {
        Ok(sent) => sent,
        Err(err) => {
            call.settle_body().await;
            answer_error(call.reply, request, &err, request_id).await
        }
    }
}

/// Checks the signature (or that anonymous access is allowed here).
fn authorize(call: &mut Call<'_, '_, '_>) -> Result<(), S3Error> {
    let shard = call.shard();
    let settings = shard.config.s3.as_ref().expect("an S3 listener has S3 settings");
    let method = method_name(&call.request.method);
    let signed = sigv4::Request { method, path: &call.request.path, query: call.query, headers: call.headers };
    let now = crate::clock::coarse_epoch_seconds();
    match sigv4::verify(settings, &shard.s3.keys, &signed, now)? {
        Some(verified) => {
            call.payload = Some(verified.payload);
            Ok(())
        }
        None if call.query.has("AWSAccessKeyId") || call.query.has("Signature") => Err(S3Error::new(
            400,
            "InvalidRequest",
            "signature version 2 presigned URLs are not supported: presign with AWS Signature V4 (aws-cli: \
             `aws configure set default.s3.signature_version s3v4`; boto3: Config(signature_version=\"s3v4\"))",
        )),
        None if settings.anonymous_reads && matches!(call.request.method, Method::Get | Method::Head) => Ok(()),
        None => Err(error::access_denied(
            "anonymous access is off: sign the request with a key from --s3-credentials (AWS Signature V4)",
        )),
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Other(name) => name,
    }
}

/// The bucket and key a request names: path-style, or virtual-host-style
/// under `--s3-domain`.
fn target<'c>(call: &Call<'c, '_, '_>) -> Result<Target<'c>, &'static str> {
    let domain = call.shard().config.s3.as_ref().and_then(|s| s.domain.as_deref());
    Target::of(&call.request.path, call.headers.get("host"), domain)
}

/// The bucket a request names, if it names a valid one (for CORS and
/// forms, which are decided before the signature is checked).
fn bucket_of(target: Target<'_>) -> Option<String> {
    let bucket = target.bucket?;
    keys::check_bucket(&bucket).is_ok().then(|| bucket.into_owned())
}

/// The bucket of a PostObject (a browser's form: `POST /<bucket>` with a
/// `multipart/form-data` body and no query), if the request is one.
fn form_bucket(call: &Call<'_, '_, '_>) -> Option<String> {
    if method_name(&call.request.method) != "POST" || !call.query.0.is_empty() {
        return None;
    }
    let content_type = call.headers.get("content-type")?.trim_start();
    if !content_type.get(..19).is_some_and(|kind| kind.eq_ignore_ascii_case("multipart/form-data")) {
        return None;
    }
    let target = target(call).ok()?;
    if !target.key.is_empty() {
        return None;
    }
    bucket_of(target)
}

async fn preflight(call: &mut Call<'_, '_, '_>) -> Result<bool, S3Error> {
    let bucket = target(call).ok().and_then(bucket_of);
    cors::preflight(call, bucket.as_deref()).await
}

/// A request from a page of `origin`: the bucket's CORS header lines join
/// every head of the answer (errors too, so the page can read them).
async fn cross_origin(call: &mut Call<'_, '_, '_>, origin: &str) {
    let Some(bucket) = target(call).ok().and_then(bucket_of) else { return };
    let lines = cors::actual(call, &bucket, origin, method_name(&call.request.method)).await;
    call.reply.add_lines(&lines);
}

/// Routes by method, bucket, key and the query's sub-resource. Every
/// handler but GET and PUT of an object is boxed: the request's future
/// (moved into a box per request by the connection loop) stays the size
/// of the common ones.
async fn route(call: &mut Call<'_, '_, '_>) -> Result<bool, S3Error> {
    let request: &Request = call.request;
    let target = target(call).map_err(|why| S3Error::new(400, "InvalidURI", why))?;
    let method = method_name(&request.method);
    let q = call.query;
    let Some(bucket) = target.bucket else {
        return match method {
            "GET" | "HEAD" => Box::pin(bucket::list_buckets(call)).await,
            _ => Err(method_not_allowed()),
        };
    };
    keys::check_bucket(&bucket)?;
    unkept::refuse_other_owner(|name| call.headers.get(name), method == "PUT")?;
    if target.key.is_empty() {
        return match method {
            "PUT" if q.has("cors") => Box::pin(cors::put(call, &bucket)).await,
            "GET" if q.has("acl") => Box::pin(acl::get(call, &bucket, None)).await,
            "PUT" if q.has("acl") => Box::pin(acl::put(call, &bucket, None)).await,
            "GET" if q.has("cors") => Box::pin(cors::get(call, &bucket)).await,
            "DELETE" if q.has("cors") => Box::pin(cors::delete(call, &bucket)).await,
            "PUT" if q.has("tagging") => Box::pin(bucket_tagging::put(call, &bucket)).await,
            "GET" if q.has("tagging") => Box::pin(bucket_tagging::get(call, &bucket)).await,
            "DELETE" if q.has("tagging") => Box::pin(bucket_tagging::delete(call, &bucket)).await,
            "PUT" if !has_subresource(q) => {
                unkept::refuse_on_bucket(|name| call.headers.get(name), anonymous_reads(call.shard()))?;
                Box::pin(bucket::create(call, &bucket)).await
            }
            "HEAD" => Box::pin(bucket::head(call, &bucket)).await,
            "DELETE" if !has_subresource(q) => Box::pin(bucket::delete(call, &bucket)).await,
            "GET" if q.has("location") => Box::pin(bucket::location(call, &bucket)).await,
            "GET" if q.has("uploads") => Box::pin(pending::list(call, &bucket)).await,
            "GET" if q.has("versioning") => Box::pin(bucket::versioning(call, &bucket)).await,
            "GET" if q.has("versions") => Box::pin(listing::list(call, &bucket, listing::Version::Versions)).await,
            "GET" if q.get("list-type") == Some("2") => {
                Box::pin(listing::list(call, &bucket, listing::Version::V2)).await
            }
            "GET" if !has_subresource(q) => Box::pin(listing::list(call, &bucket, listing::Version::V1)).await,
            "POST" if q.has("delete") => Box::pin(delete::delete_many(call, &bucket)).await,
            "GET" | "DELETE" if unset::named(q).is_some() => {
                let name = unset::named(q).unwrap_or_default();
                Box::pin(unset::answer(call, &bucket, name, method == "DELETE")).await
            }
            "GET" | "PUT" | "DELETE" | "POST" => Err(unserved(method, q, "a bucket")),
            _ => Err(method_not_allowed()),
        };
    }
    let key = target.key;
    if matches!(method, "PUT" | "POST") {
        unkept::refuse_on_write(|name| call.headers.get(name), anonymous_reads(call.shard()))?;
    }
    unkept::refuse_version(q.get("versionId"))?;
    if let Some(owner) = cluster::elsewhere(call, &request.path) {
        return Err(Box::pin(misdirected(call, owner)).await);
    }
    if key.ends_with('/') {
        return Box::pin(route_folder(call, &bucket, &key)).await;
    }
    let path = keys::object_path(&bucket, &key)?;
    match method {
        "PUT" if q.has("partNumber") && q.has("uploadId") => {
            if call.headers.get("x-amz-copy-source").is_some() {
                return Box::pin(multipart::upload_part_copy(call, &bucket, &path)).await;
            }
            Box::pin(multipart::upload_part(call, &bucket, &path)).await
        }
        "PUT" if q.has("tagging") => Box::pin(tagging::put(call, &bucket, &path, false)).await,
        "PUT" if call.headers.get("x-amz-copy-source").is_some() => Box::pin(copy::copy(call, &bucket, &path)).await,
        "PUT" if !has_subresource(q) => Box::pin(object::put(call, &bucket, &path)).await,
        "GET" if q.has("uploadId") => Box::pin(multipart::list_parts(call, &bucket, &path)).await,
        "GET" | "HEAD" if !has_subresource(q) => object::get(call, &bucket, &path).await,
        "GET" if q.has("attributes") => Box::pin(attributes::get(call, &bucket, &path)).await,
        "GET" if q.has("tagging") => Box::pin(tagging::get(call, &bucket, &path, false)).await,
        "GET" if q.has("acl") => Box::pin(acl::get(call, &bucket, Some(&path))).await,
        "PUT" if q.has("acl") => Box::pin(acl::put(call, &bucket, Some(&path))).await,
        "DELETE" if q.has("tagging") => Box::pin(tagging::delete(call, &bucket, &path, false)).await,
        "DELETE" if q.has("uploadId") => Box::pin(multipart::abort(call, &bucket, &path)).await,
        "DELETE" if !has_subresource(q) => Box::pin(delete::delete(call, &bucket, &path)).await,
        "POST" if q.has("uploads") => Box::pin(multipart::create(call, &bucket, &path, &key)).await,
        "POST" if q.has("uploadId") => Box::pin(multipart::complete(call, &bucket, &path, &key)).await,
        "GET" | "PUT" | "DELETE" | "POST" | "HEAD" => Err(unserved(method, q, "an object")),
        _ => Err(method_not_allowed()),
    }
}

/// A request for an object another node of the ring owns (the front end
/// sent it here because that node is out of its ring): 503, never a
/// NoSuchKey for an object that may well exist there. Its body is read
/// first if it is small (`http::body::settle`: why HAProxy needs that).
async fn misdirected(call: &mut Call<'_, '_, '_>, owner: &str) -> S3Error {
    call.settle_body().await;
    call.reply.add_lines(&format!("X-Percore-Owner: {owner}\r\n"));
    S3Error::new(
        503,
        "ServiceUnavailable",
        format!("this object belongs to node {owner}, which the load balancer cannot reach now: retry later"),
    )
    .caused_elsewhere()
}

/// Routes a request for a folder (a key that ends in `/`: `folder`).
async fn route_folder(call: &mut Call<'_, '_, '_>, bucket: &str, key: &str) -> Result<bool, S3Error> {
    let path = keys::folder_path(bucket, key)?;
    let method = method_name(&call.request.method);
    let q = call.query;
    // (A GET's `partNumber` asks for a part of an object: a folder is one
    // empty part.)
    let in_parts = q.has("uploadId") || q.has("uploads") || (method == "PUT" && q.has("partNumber"));
    match method {
        "PUT" | "POST" | "DELETE" | "GET" if in_parts => {
            Err(folder::holds_no_bytes(key).because("it cannot be uploaded in parts"))
        }
        "GET" if q.has("tagging") => Box::pin(tagging::get(call, bucket, &path, true)).await,
        "PUT" if q.has("tagging") => Box::pin(tagging::put(call, bucket, &path, true)).await,
        "DELETE" if q.has("tagging") => Box::pin(tagging::delete(call, bucket, &path, true)).await,
        "PUT" if call.headers.get("x-amz-copy-source").is_some() => folder::copy(call, bucket, &path, key).await,
        "PUT" if !has_subresource(q) => folder::put(call, bucket, &path, key).await,
        "GET" | "HEAD" if !has_subresource(q) => folder::get(call, bucket, &path).await,
        "DELETE" if !has_subresource(q) => folder::delete(call, bucket, &path).await,
        "GET" | "PUT" | "DELETE" | "POST" | "HEAD" => Err(unserved(method, q, "an object")),
        _ => Err(method_not_allowed()),
    }
}

/// Query parameters that name an operation S3 has and percore does not
/// (`?acl`, `?tagging`, ...): anything but the parameters of the plain
/// operations and of a presigned URL.
fn has_subresource(query: &Query) -> bool {
    subresource(query).is_some()
}

/// The first query parameter that names such an operation.
fn subresource(query: &Query) -> Option<&str> {
    query.0.iter().map(|(name, _)| name.as_str()).find(|name| {
        !(name.starts_with("X-Amz-")
            || hoisted::is_hoisted(name)
            || name.starts_with("response-")
            || *name == cluster::LOCAL
            || *name == cluster::AFTER
            || matches!(
                *name,
                "prefix"
                    | "delimiter"
                    | "marker"
                    | "max-keys"
                    | "encoding-type"
                    | "list-type"
                    | "continuation-token"
                    | "start-after"
                    | "fetch-owner"
                    | "x-id"
                    | "partNumber"
                    | "versionId"
            ))
    })
}

/// Whether unsigned GET and HEAD requests are served.
pub(crate) fn anonymous_reads(shard: &Shard) -> bool {
    shard.config.s3.as_ref().is_some_and(|s| s.anonymous_reads)
}

/// What percore does not serve, named: `PUT ?acl on an object is not
/// implemented by percore (...)`.
fn unserved(method: &str, query: &Query, what: &str) -> S3Error {
    let operation = subresource(query).map_or_else(|| method.to_string(), |name| format!("{method} ?{name}"));
    error::not_implemented(&format!("{operation} on {what}")).because(
        "not served: versioning (each key has one version, null), policies, lifecycle, replication, website \
         hosting, encryption and notification settings; access is by the keys of --s3-credentials",
    )
}

fn method_not_allowed() -> S3Error {
    S3Error::new(405, "MethodNotAllowed", "the specified method is not allowed against this resource")
}
