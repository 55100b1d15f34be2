//! AWS Signature Version 4, as S3 checks it: in the `Authorization` header
//! or in a presigned URL's query, over the canonical request (method,
//! path, query, the signed headers, the payload's hash), with the signing
//! key derived from the secret, date, region and service.
//!
//! What is checked: the access key is known; the credential's date is the
//! request's; the request is within [`SKEW_MAX`] of the clock (a header
//! signature) or not expired (a presigned URL, at most [`EXPIRES_MAX`]);
//! `host` is signed; the signature matches (compared in constant time).
//! The payload is checked later, while the body streams, against what the
//! signature covers: [`Payload`].
//!
//! The HMAC and SHA-256 are RustCrypto's `hmac` and `sha2` (SHA-NI where
//! the CPU has it): a keyed HMAC is two hash states, cloned per signature,
//! half the time of aws-lc-rs's context per call on this path (measured:
//! 180 vs 358 ns for a string to sign). The dates are `date`'s.

use std::borrow::Cow;
use std::cell::RefCell;

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::canonical;
pub(crate) use super::canonical::Request;
use super::date::{format_amz_date, parse_amz_date};
use super::error::{access_denied, malformed, S3Error};
use super::head::{Headers, Query};
use super::settings::Settings;

/// How far a signed request's time may be from the server's clock.
pub(crate) const SKEW_MAX_SECS: u64 = 15 * 60;
/// The longest validity of a presigned URL (7 days, as on S3).
pub(crate) const EXPIRES_MAX_SECS: u64 = 7 * 24 * 3600;
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The SHA-256 of nothing, hex: a chunk signature's constant.
pub(crate) const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What the signature says about the body, checked while it is read.
pub(crate) enum Payload {
    /// Not covered (`UNSIGNED-PAYLOAD`, presigned URLs).
    Unsigned,
    /// Its SHA-256 must be this.
    Sha256([u8; 32]),
    /// `aws-chunked`, each chunk signed (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`,
    /// `trailer` with `-TRAILER`).
    SignedChunks(Box<Chain>, bool),
    /// `aws-chunked`, unsigned, a checksum in the trailer
    /// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
    UnsignedTrailer,
}

/// A request whose signature holds.
pub(crate) struct Verified {
    pub(crate) payload: Payload,
}

/// The chain of chunk signatures of an `aws-chunked` body: each chunk's
/// signature covers its data and the signature before it, starting from
/// the request's.
pub(crate) struct Chain {
    key: Key,
    amz_date: String,
    scope: String,
    previous: String,
}

impl Chain {
    /// The chain of a request signed `seed` by `secret` at `amz_date` in
    /// `region` (AWS's published examples start from such a seed).
    #[cfg(test)]
    pub(crate) fn from_seed(secret: &str, amz_date: &str, region: &str, seed: &str) -> Chain {
        let date = &amz_date[..8];
        Chain {
            key: signing_key(secret, date, region, "s3"),
            amz_date: amz_date.to_string(),
            scope: format!("{date}/{region}/s3/aws4_request"),
            previous: seed.to_string(),
        }
    }

    /// Whether `given` signs the chunk whose data hashes to `sha256`; the
    /// chain moves on when it does.
    pub(crate) fn next(&mut self, sha256: &[u8], given: &str) -> bool {
        let to_sign = format!(
            "{ALGORITHM}-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex(sha256)
        );
        let expected = hex(&mac(&self.key, &[to_sign.as_bytes()]));
        if !same(&expected, given) {
            return false;
        }
        self.previous = expected;
        true
    }

    /// Whether `given` signs the trailer lines `trailer` (each `name:value\n`).
    pub(crate) fn trailer(&self, trailer: &str, given: &str) -> bool {
        let hash = Sha256::digest(trailer.as_bytes());
        let to_sign = format!(
            "{ALGORITHM}-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex(hash.as_ref())
        );
        same(&hex(&mac(&self.key, &[to_sign.as_bytes()])), given)
    }
}

/// Signing keys derived lately, per shard: deriving one is four HMACs, and
/// a client signs every request of a day with the same one.
#[derive(Default)]
pub(crate) struct KeyCache(RefCell<Vec<Derived>>);

/// A derived signing key and what it was derived for.
struct Derived {
    access_key: String,
    date: String,
    region: String,
    key: Key,
}

/// Keys kept at most (then the oldest goes).
const KEYS_KEPT_MAX: usize = 64;

impl KeyCache {
    /// Runs `f` with the signing key of `access_key` (whose secret is
    /// `secret`) for one day and region: looked up without allocating,
    /// derived on a miss.
    fn with_key<R>(&self, secret: &str, access_key: &str, date: &str, region: &str, f: impl FnOnce(&Key) -> R) -> R {
        {
            let keys = self.0.borrow();
            if let Some(d) = keys.iter().find(|d| d.access_key == access_key && d.date == date && d.region == region) {
                return f(&d.key);
            }
        }
        let key = signing_key(secret, date, region, "s3");
        let out = f(&key);
        let mut keys = self.0.borrow_mut();
        if keys.len() >= KEYS_KEPT_MAX {
            keys.remove(0);
        }
        keys.push(Derived { access_key: access_key.into(), date: date.into(), region: region.into(), key });
        out
    }
}

/// A signing key: HMAC-SHA256 keyed (its inner and outer states made once).
pub(crate) type Key = hmac::Hmac<Sha256>;

/// A key for HMAC-SHA256 (any length is a valid key).
fn key(bytes: &[u8]) -> Key {
    Key::new_from_slice(bytes).expect("HMAC takes keys of any length")
}

/// The HMAC of `parts`, one after another, under `key`.
pub(crate) fn mac(key: &Key, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The signing key of `secret` for one day, region and service.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Key {
    let step = |k: &[u8], data: &str| mac(&key(k), &[data.as_bytes()]);
    let k = step(format!("AWS4{secret}").as_bytes(), date);
    let k = step(&k, region);
    let k = step(&k, service);
    key(&step(&k, "aws4_request"))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` in lower-case hex to `out`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut pairs = [0u8; 64];
    for chunk in bytes.chunks(32) {
        let written = write_hex(&mut pairs, chunk);
        out.push_str(std::str::from_utf8(written).expect("hex digits are ASCII"));
    }
}

/// Writes `bytes` (at most half of `out`'s length) in lower-case hex at
/// the start of `out`; returns what it wrote.
fn write_hex<'a>(out: &'a mut [u8], bytes: &[u8]) -> &'a [u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, &b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
    &out[..2 * bytes.len()]
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `given` is `expected` written as SigV4 writes a signature
/// (lower-case hex), compared in constant time: as a chunk's signature is
/// (`Chain::next`), without parsing the hex first.
fn signature_matches(expected: &[u8; 32], given: &str) -> bool {
    let mut hex = [0u8; 64];
    same_bytes(write_hex(&mut hex, expected), given.as_bytes())
}

/// What a signature names: who, when, where, which headers, and the
/// signature itself (borrowed from the request).
struct Claim<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    /// `host;x-amz-date;...` as sent.
    signed_headers: &'a str,
    signature: &'a str,
    /// `YYYYMMDDTHHMMSSZ` (made from `Date` when there is no `x-amz-date`).
    amz_date: Cow<'a, str>,
}

/// Checks the request's signature. `None`: the request carries none
/// (anonymous); the caller decides whether that is allowed.
pub(crate) fn verify(
    settings: &Settings,
    keys: &KeyCache,
    request: &Request<'_>,
    now: u64,
) -> Result<Option<Verified>, S3Error> {
    let presigned = request.query.has("X-Amz-Signature");
    let claim = match (request.headers.get("authorization"), presigned) {
        (Some(_), true) => {
            return Err(S3Error::new(400, "InvalidArgument", "only one auth mechanism allowed: header or query"))
        }
        (Some(value), false) => header_claim(value, request.headers)?,
        (None, true) => query_claim(request.query)?,
        (None, false) => return Ok(None),
    };
    let Some(secret) = settings.credentials.get(claim.access_key) else {
        return Err(S3Error::new(
            403,
            "InvalidAccessKeyId",
            "the access key id you provided does not exist in our records (--s3-credentials)",
        ));
    };
    if claim.service != "s3" {
        return Err(malformed(presigned, format!("the credential's service must be s3, not {}", claim.service)));
    }
    if !claim.amz_date.starts_with(claim.date) {
        return Err(malformed(presigned, "the credential's date is not the request's date"));
    }
    if !claim.signed_headers.split(';').any(|h| h == "host") {
        return Err(malformed(presigned, "the signed headers must include host"));
    }
    let time = parse_amz_date(&claim.amz_date)
        .ok_or_else(|| malformed(presigned, format!("invalid date {}: use YYYYMMDDTHHMMSSZ", claim.amz_date)))?;
    if presigned {
        let expires: u64 = request
            .query
            .get("X-Amz-Expires")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed(true, "X-Amz-Expires must be a number of seconds"))?;
        if expires > EXPIRES_MAX_SECS {
            return Err(malformed(true, "X-Amz-Expires must be less than a week (604800 seconds)"));
        }
        if now > time + expires {
            return Err(access_denied("request has expired: sign a new URL"));
        }
        if time > now + SKEW_MAX_SECS {
            return Err(access_denied("request is not valid yet: its X-Amz-Date is in the future"));
        }
    } else if time.abs_diff(now) > SKEW_MAX_SECS {
        return Err(S3Error::new(
            403,
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large (over 15 minutes): \
             check the client's clock",
        ));
    }
    let content_sha256 = request.headers.get("x-amz-content-sha256");
    let payload_claim = match (content_sha256, presigned) {
        (Some(value), _) => value,
        (None, true) => "UNSIGNED-PAYLOAD",
        (None, false) => {
            return Err(invalid("missing required header for this request: x-amz-content-sha256"));
        }
    };
    let canonical = canonical::hash(request, claim.signed_headers, payload_claim, presigned)?;
    let mut canonical_hex = [0u8; 64];
    write_hex(&mut canonical_hex, &canonical);
    // The string to sign, signed as it is written.
    let expected: [u8; 32] = keys.with_key(secret, claim.access_key, claim.date, claim.region, |key| {
        let parts = [ALGORITHM, "\n", &claim.amz_date, "\n", claim.date, "/", claim.region, "/", claim.service];
        let mut mac = key.clone();
        for part in parts {
            mac.update(part.as_bytes());
        }
        mac.update(b"/aws4_request\n");
        mac.update(&canonical_hex);
        mac.finalize().into_bytes().into()
    });
    if !signature_matches(&expected, claim.signature) {
        return Err(S3Error::new(
            403,
            "SignatureDoesNotMatch",
            "the request signature we calculated does not match the signature you provided: check your key and \
             signing method",
        ));
    }
    let chain = || {
        Box::new(Chain {
            key: keys.with_key(secret, claim.access_key, claim.date, claim.region, Key::clone),
            amz_date: claim.amz_date.to_string(),
            scope: format!("{}/{}/{}/aws4_request", claim.date, claim.region, claim.service),
            previous: hex(expected.as_ref()),
        })
    };
    let payload = match payload_claim {
        "UNSIGNED-PAYLOAD" => Payload::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Payload::SignedChunks(chain(), false),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Payload::SignedChunks(chain(), true),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::UnsignedTrailer,
        value => Payload::Sha256(parse_sha256(value).ok_or_else(|| {
            invalid(format!("x-amz-content-sha256 must be a hex SHA-256 or a known payload form, not `{value}`"))
        })?),
    };
    Ok(Some(Verified { payload }))
}

/// Checks a browser form's signature (PostObject): the HMAC of its
/// base64 `policy` under the signing key that `credential`
/// (`KEY/YYYYMMDD/REGION/s3/aws4_request`) names.
pub(crate) fn verify_policy(
    settings: &Settings,
    keys: &KeyCache,
    credential_text: &str,
    policy: &str,
    signature: &str,
) -> Result<(), S3Error> {
    let (access_key, date, region, service) = credential(credential_text, true)?;
    let Some(secret) = settings.credentials.get(access_key) else {
        return Err(S3Error::new(
            403,
            "InvalidAccessKeyId",
            "the access key id you provided does not exist in our records (--s3-credentials)",
        ));
    };
    if service != "s3" {
        return Err(malformed(true, format!("the credential's service must be s3, not {service}")));
    }
    let expected = keys.with_key(secret, access_key, date, region, |key| mac(key, &[policy.as_bytes()]));
    if !signature_matches(&expected, signature) {
        return Err(S3Error::new(
            403,
            "SignatureDoesNotMatch",
            "the form's signature does not match its policy: sign the policy with a key from --s3-credentials",
        ));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::new(400, "InvalidRequest", message)
}

fn parse_sha256(value: &str) -> Option<[u8; 32]> {
    /// Each byte's value as a hex digit, 0xff for none.
    const DIGIT: [u8; 256] = {
        let mut table = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    let bytes = value.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (hi, lo) = (DIGIT[pair[0] as usize], DIGIT[pair[1] as usize]);
        bad |= (hi | lo) & 0xf0;
        out[i] = hi << 4 | (lo & 15);
    }
    (bad == 0).then_some(out)
}

/// `Credential=AKID/DATE/REGION/SERVICE/aws4_request`'s value split.
fn credential(value: &str, presigned: bool) -> Result<(&str, &str, &str, &str), S3Error> {
    let parts = value.split_once('/').and_then(|(key, rest)| {
        let (date, rest) = rest.split_once('/')?;
        let (region, rest) = rest.split_once('/')?;
        let (service, rest) = rest.split_once('/')?;
        (rest == "aws4_request" && date.len() == 8).then_some((key, date, region, service))
    });
    parts.ok_or_else(|| {
        malformed(presigned, format!("invalid credential `{value}`: expected KEY/YYYYMMDD/REGION/s3/aws4_request"))
    })
}

fn header_claim<'a>(value: &'a str, headers: &'a Headers) -> Result<Claim<'a>, S3Error> {
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        if value.starts_with("AWS ") {
            return Err(invalid("signature version 2 is not supported: sign with AWS Signature Version 4"));
        }
        return Err(malformed(false, format!("the authorization must use {ALGORITHM}")));
    };
    let (mut cred, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(cred), Some(signed), Some(signature)) = (cred, signed, signature) else {
        return Err(malformed(false, "the authorization needs Credential, SignedHeaders and Signature"));
    };
    let (access_key, date, region, service) = credential(cred, false)?;
    let amz_date = match headers.get("x-amz-date") {
        Some(d) => Cow::Borrowed(d),
        None => match headers.get("date").and_then(|d| httpdate::parse_http_date(d).ok()) {
            Some(t) => {
                Cow::Owned(format_amz_date(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)))
            }
            None => return Err(access_denied("a signed request needs an x-amz-date or Date header")),
        },
    };
    Ok(Claim { access_key, date, region, service, signed_headers: signed, signature, amz_date })
}

fn query_claim(query: &Query) -> Result<Claim<'_>, S3Error> {
    let need = |name: &str| query.get(name).ok_or_else(|| malformed(true, format!("the query needs {name}")));
    if need("X-Amz-Algorithm")? != ALGORITHM {
        return Err(malformed(true, format!("X-Amz-Algorithm must be {ALGORITHM}")));
    }
    let (access_key, date, region, service) = credential(need("X-Amz-Credential")?, true)?;
    Ok(Claim {
        access_key,
        date,
        region,
        service,
        signed_headers: need("X-Amz-SignedHeaders")?,
        signature: need("X-Amz-Signature")?,
        amz_date: Cow::Borrowed(need("X-Amz-Date")?),
    })
}
