//! PostObject: an upload from a browser's HTML form (`POST /<bucket>`,
//! `multipart/form-data`), as boto3's `generate_presigned_post` and the AWS
//! SDKs' presigned POST make them. The form carries its own authority: a
//! base64 policy (an expiry and conditions on every field) signed with an
//! S3 key (AWS Signature V4), so the request itself is unsigned.
//!
//! Every field before the file is read first; the signature and every
//! condition are checked before a byte of the file is stored; the file then
//! streams into an upload (`form`), its MD5 the ETag, its size held to the
//! policy's `content-length-range`, and is committed as any PUT, with the
//! form's Content-Type, `x-amz-meta-*` and other kept fields as metadata.
//! The answer is S3's: 204 (or `success_action_status` 200 or 201, 201
//! with a `PostResponse` document), or a 303 to `success_action_redirect`.

use base64::Engine;
use serde_json::Value;

use super::body::Body;
use super::error::{access_denied, invalid_request, S3Error};
use super::form::{self, Form, Part};
use super::md5::Md5;
use super::meta::{self, md5_etag};
use super::object::{begin, commit, flush, write_piece};
use super::xml::Writer;
use super::{bucket, head, keys, sigv4, Call};
use crate::shard::Shard;
use crate::store::Conditions;

/// The most bytes of all the fields before the file together.
const FIELDS_BYTES_MAX: usize = 64 * 1024;

/// The most fields before the file.
const FIELDS_MAX: usize = 64;

/// What the policy allows, once it has been checked against the form.
struct Allowed {
    key: String,
    /// `content-length-range`: the file's smallest and largest sizes.
    sizes: (u64, u64),
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn policy_failed(why: impl std::fmt::Display) -> S3Error {
    access_denied(format!("Invalid according to Policy: {why}"))
}

/// Checks the form's signature and its policy against its fields; the
/// key to store the file under (`${filename}` replaced) and its sizes.
fn check(shard: &Shard, bucket: &str, fields: &[(String, String)], file: &Part) -> Result<Allowed, S3Error> {
    if field(fields, "AWSAccessKeyId").is_some() || field(fields, "signature").is_some() {
        return Err(invalid_request(
            "signature version 2 forms are not supported: make the form with AWS Signature V4 (boto3: \
             generate_presigned_post with Config(signature_version=\"s3v4\"))",
        ));
    }
    let need =
        |name: &str| field(fields, name).ok_or_else(|| invalid_request(format!("the form needs a {name} field")));
    let Some(policy) = field(fields, "policy") else {
        return Err(access_denied("a form without a signed policy is anonymous, and anonymous writes are off"));
    };
    if need("x-amz-algorithm")? != "AWS4-HMAC-SHA256" {
        return Err(invalid_request("x-amz-algorithm must be AWS4-HMAC-SHA256"));
    }
    let settings = shard.config.s3.as_ref().expect("an S3 listener has S3 settings");
    let (credential, signature) = (need("x-amz-credential")?, need("x-amz-signature")?);
    sigv4::verify_policy(settings, &shard.s3.keys, credential, policy, signature)?;
    let document = base64::engine::general_purpose::STANDARD
        .decode(policy.trim())
        .ok()
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .ok_or_else(|| invalid_request("the policy is not base64 JSON"))?;
    let expires = document["expiration"].as_str().and_then(super::date::parse_iso8601);
    let expires = expires.ok_or_else(|| invalid_request("the policy needs an expiration (ISO 8601, UTC)"))?;
    if crate::clock::coarse_epoch_seconds() > expires {
        return Err(policy_failed("Policy expired."));
    }
    let conditions = document["conditions"].as_array().ok_or_else(|| invalid_request("the policy needs conditions"))?;
    let mut named: Vec<String> = Vec::new();
    let mut sizes = (0, u64::MAX);
    for condition in conditions {
        let (op, name, expected) = match condition {
            Value::Object(map) if map.len() == 1 => {
                let (name, value) = map.iter().next().expect("one entry");
                ("eq", name.trim_start_matches('$').to_ascii_lowercase(), value.as_str().unwrap_or_default())
            }
            Value::Array(items) if items.len() == 3 && items[0] == "content-length-range" => {
                let (min, max) = (items[1].as_u64(), items[2].as_u64());
                sizes = min.zip(max).ok_or_else(|| invalid_request("content-length-range takes two numbers"))?;
                continue;
            }
            Value::Array(items) if items.len() == 3 => {
                let op = items[0].as_str().unwrap_or_default();
                let name = items[1].as_str().unwrap_or_default();
                let Some(name) = name.strip_prefix('$') else {
                    return Err(invalid_request(format!("a condition names its field with $: {condition}")));
                };
                (op, name.to_ascii_lowercase(), items[2].as_str().unwrap_or_default())
            }
            _ => return Err(invalid_request(format!("a condition the policy cannot hold: {condition}"))),
        };
        let actual = if name == "bucket" { Some(bucket) } else { field(fields, &name) };
        let holds = match (op, actual) {
            ("eq", Some(actual)) => actual == expected,
            // (A Content-Type may list several, each of which must hold.)
            ("starts-with", Some(actual)) if name == "content-type" => {
                actual.split(',').all(|v| v.trim().starts_with(expected))
            }
            ("starts-with", Some(actual)) => actual.starts_with(expected),
            ("starts-with", None) => expected.is_empty(),
            ("eq", None) => false,
            _ => return Err(invalid_request(format!("a condition the policy cannot hold: {condition}"))),
        };
        if !holds {
            return Err(policy_failed(format!("Policy Condition failed: {condition}")));
        }
        named.push(name);
    }
    // Every field the form sends is one the policy names.
    let free = |n: &str| matches!(n, "x-amz-signature" | "file" | "policy") || n.starts_with("x-ignore-");
    if let Some((extra, _)) = fields.iter().find(|(n, _)| {
        let n = n.to_ascii_lowercase();
        !free(&n) && !named.contains(&n)
    }) {
        return Err(policy_failed(format!("Extra input fields: {extra}")));
    }
    let key = need("key")?.replace("${filename}", file.filename.as_deref().unwrap_or_default());
    Ok(Allowed { key, sizes })
}

/// Reads the fields before the file; the file part's head.
async fn fields(form: &mut Form, body: &mut Body<'_, '_>) -> Result<(Vec<(String, String)>, Part), S3Error> {
    let mut fields = Vec::new();
    let mut bytes = 0;
    loop {
        let Some(part) = form.next_part(body).await? else {
            return Err(invalid_request("the form has no file field (it must come after every other field)"));
        };
        if part.name.eq_ignore_ascii_case("file") {
            return Ok((fields, part));
        }
        let text = form.field(body, FIELDS_BYTES_MAX - bytes).await?;
        bytes += text.len();
        let text =
            String::from_utf8(text).map_err(|_| invalid_request(format!("the field {} is not UTF-8", part.name)))?;
        fields.push((part.name, text));
        if fields.len() > FIELDS_MAX {
            return Err(invalid_request(format!("the form has more than {FIELDS_MAX} fields")));
        }
    }
}

pub(crate) async fn post(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    let content_type = call.headers.get("content-type").unwrap_or_default();
    let boundary = form::boundary(content_type).ok_or_else(|| invalid_request("a POST form is multipart/form-data"))?;
    bucket::must_exist(call, bucket).await?;
    let shard = call.shard();
    if shard.store.fenced() {
        return Err(S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()));
    }
    let limit = shard.config.body_bytes_max;
    if !call.continue_100().await {
        return Err(S3Error::gone());
    }
    let (mut body, _) = call.body(limit.saturating_add(FIELDS_BYTES_MAX as u64 + 64 * 1024))?;
    let mut form = Form::new(&boundary);
    let (fields, file) = fields(&mut form, &mut body).await?;
    let allowed = check(shard, bucket, &fields, &file)?;
    super::unkept::refuse_on_write(|name| field(&fields, name), super::anonymous_reads(shard))?;
    let mut headers = meta::from_fields(&fields).map_err(invalid_request)?;
    // A form's tags are a Tagging document, not a header's query form.
    if let Some(document) = field(&fields, "tagging").filter(|d| !d.trim().is_empty()) {
        headers.extend(super::tags::Tags::from_xml(document.as_bytes())?.stored());
    }
    let path = keys::object_path(bucket, &allowed.key)?;
    let upload = begin(&shard.store, &path, None).await?;
    let stored: Result<[u8; 16], S3Error> = async {
        let (mut md5, mut size) = (Md5::new(), 0u64);
        while let Some(piece) = form.piece(&mut body).await? {
            let offset = size;
            size += piece.len() as u64;
            if size > allowed.sizes.1.min(limit) {
                let why = format!(
                    "the file is over {} bytes, the most the form's policy (content-length-range) and the \
                     daemon's --body-bytes-max allow",
                    allowed.sizes.1.min(limit)
                );
                return Err(S3Error::new(400, "EntityTooLarge", why));
            }
            md5.update(&piece);
            write_piece(&shard.store, &upload, piece, offset).await?;
        }
        if size < allowed.sizes.0 {
            let why = format!(
                "the file has {size} bytes; the form's policy (content-length-range) asks at least {}",
                allowed.sizes.0
            );
            return Err(S3Error::new(400, "EntityTooSmall", why));
        }
        // The rest of the form, which S3 ignores, is read and dropped.
        while body.next().await?.is_some() {}
        Ok(md5.finalize())
    }
    .await;
    let md5 = match stored {
        Ok(md5) => md5,
        Err(err) => {
            upload.discard().await;
            return Err(err);
        }
    };
    drop(body);
    call.body_read();
    let staged = flush(&shard.store, upload, md5_etag(&md5), headers).await?;
    let etag = commit(&path, staged, Conditions::default()).await?;
    answer(call, bucket, &allowed.key, &etag, &fields).await
}

/// S3's answer to a stored form.
async fn answer(
    call: &mut Call<'_, '_, '_>,
    bucket: &str,
    key: &str,
    etag: &str,
    fields: &[(String, String)],
) -> Result<bool, S3Error> {
    let location = format!("/{bucket}/{}", head::encode(key.as_bytes(), true));
    let lines = format!("ETag: {etag}\r\nLocation: {location}\r\n");
    if let Some(to) = field(fields, "success_action_redirect").or_else(|| field(fields, "redirect")) {
        let query = [("bucket", bucket), ("key", key), ("etag", etag)]
            .iter()
            .map(|(n, v)| format!("{n}={}", head::encode(v.as_bytes(), false)))
            .collect::<Vec<_>>()
            .join("&");
        let separator = if to.contains('?') { '&' } else { '?' };
        if !to.contains(['\r', '\n']) {
            return call.empty(303, &format!("ETag: {etag}\r\nLocation: {to}{separator}{query}\r\n")).await;
        }
    }
    match field(fields, "success_action_status") {
        Some("200") => call.empty(200, &lines).await,
        Some("201") => {
            let mut out = Writer::document();
            out.root("PostResponse");
            out.leaf("Location", &location);
            out.leaf("Bucket", bucket);
            out.leaf("Key", key);
            out.leaf("ETag", etag);
            out.close("PostResponse");
            let head = crate::http::response::Head::new(201).lines(&lines).header("Content-Type", "application/xml");
            let whole = call.reply.finish_with(head, out.finish().as_bytes());
            Ok(call.reply.send_one(whole).await)
        }
        _ => call.empty(204, &lines).await,
    }
}
