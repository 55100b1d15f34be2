//! An S3 request's body as the handlers read it: the HTTP framing
//! (`http::body`), then `aws-chunked` when the body is sent so, each piece
//! hashed as it passes: MD5 (the ETag), SHA-256 when the signature covers
//! the payload, and the checksum the client sent (`x-amz-checksum-*`, in a
//! header or the trailer) or `Content-MD5`. [`Body::finish`] checks them
//! all once the body has ended; no byte is read twice.

use super::md5::Md5;
use aws_lc_rs::digest;
use base64::Engine;

use super::checksum::{self, Algorithm, Hasher};

use super::chunked::Decoder;
use super::error::S3Error;
use super::head::Headers;
use super::sigv4::Payload;
use crate::http::body::{BodyError, BodyReader};

/// Where the client's checksum value is.
enum Expected {
    Header(String),
    Trailer(String),
}

/// The body being read.
pub(crate) struct Body<'r, 'b> {
    reader: BodyReader<'r, 'b>,
    decoder: Option<Decoder>,
    trailer_signed: bool,
    /// The MD5, with the payload's SHA-256 beside it when that covers the
    /// same bytes (no aws-chunked framing).
    md5: Md5,
    /// The SHA-256 the signature promises: computed beside the MD5, or
    /// apart (over the framed bytes of an aws-chunked body).
    sha256: Option<(Option<digest::Context>, [u8; 32])>,
    /// The checksum computed, and where the client's value is (none when
    /// the server computes one the client did not send: [`Body::compute`]).
    checksum: Option<(Algorithm, Hasher, Option<Expected>)>,
    content_md5: Option<String>,
    /// Payload bytes returned so far.
    total: u64,
    max: u64,
}

/// What a finished body hashed to.
pub(crate) struct Digests {
    pub(crate) md5: [u8; 16],
    /// The checksum the client sent and that held: its header's name
    /// (`x-amz-checksum-crc32`, ...) and value (base64), kept with the
    /// object and returned with it.
    pub(crate) checksum: Option<(String, String)>,
}

/// The payload's length as the client declares it: the decoded length of
/// an aws-chunked body, else Content-Length.
pub(crate) fn declared_len(headers: &Headers, framing: crate::http::request::Body) -> Option<u64> {
    if let Some(v) = headers.get("x-amz-decoded-content-length") {
        return v.parse().ok();
    }
    match framing {
        crate::http::request::Body::Length(n) => Some(n),
        crate::http::request::Body::None => Some(0),
        crate::http::request::Body::Chunked => None,
    }
}

impl<'r, 'b> Body<'r, 'b> {
    /// Reads through `reader`, checking what `payload` and `headers` promise;
    /// at most `max` payload bytes.
    pub(crate) fn new(
        reader: BodyReader<'r, 'b>,
        payload: &mut Option<Payload>,
        headers: &Headers,
        max: u64,
    ) -> Result<Self, S3Error> {
        let aws_chunked =
            headers.get("content-encoding").is_some_and(|v| v.split(',').any(|c| c.trim() == "aws-chunked"));
        let (decoder, trailer_signed, sha256) = match payload.take() {
            Some(Payload::SignedChunks(chain, trailer)) => (Some(Decoder::new(Some(chain))), trailer, None),
            Some(Payload::UnsignedTrailer) => (Some(Decoder::new(None)), false, None),
            Some(Payload::Sha256(hash)) => (aws_chunked.then(|| Decoder::new(None)), false, Some(hash)),
            Some(Payload::Unsigned) | None => (aws_chunked.then(|| Decoder::new(None)), false, None),
        };
        let mut checksum = None;
        for (name, value) in headers.starting_with("x-amz-checksum-") {
            let algorithm = &name["x-amz-checksum-".len()..];
            if algorithm == "type" || algorithm == "algorithm" || algorithm == "mode" {
                continue;
            }
            let algorithm = Algorithm::named(algorithm)?;
            checksum = Some((algorithm, Hasher::new(algorithm), Some(Expected::Header(value.to_string()))));
        }
        if let Some(trailer) = headers.get("x-amz-trailer") {
            let name = trailer.trim().to_ascii_lowercase();
            let Some(algorithm) = name.strip_prefix("x-amz-checksum-") else {
                return Err(S3Error::new(400, "InvalidRequest", format!("the trailer {name} is not supported")));
            };
            if decoder.is_none() {
                return Err(S3Error::new(400, "InvalidRequest", "x-amz-trailer needs an aws-chunked body"));
            }
            let algorithm = Algorithm::named(algorithm)?;
            checksum = Some((algorithm, Hasher::new(algorithm), Some(Expected::Trailer(name.clone()))));
        }
        // The payload's SHA-256 beside the MD5 when both see the same bytes.
        let (md5, sha256) = match sha256 {
            Some(hash) if decoder.is_none() => (Md5::with_sha256(), Some((None, hash))),
            Some(hash) => (Md5::new(), Some((Some(digest::Context::new(&digest::SHA256)), hash))),
            None => (Md5::new(), None),
        };
        Ok(Body {
            reader,
            decoder,
            trailer_signed,
            md5,
            sha256,
            checksum,
            content_md5: headers.get("content-md5").map(str::to_string),
            total: 0,
            max,
        })
    }

    /// Leaves a `x-amz-checksum-*` header unchecked against the body: in
    /// CompleteMultipartUpload it is the whole object's.
    pub(crate) fn checksum_header_is_not_the_bodys(&mut self) {
        if let Some((_, _, Some(Expected::Header(_)))) = &self.checksum {
            self.checksum = None;
        }
    }

    /// Computes the checksum `algorithm` too if the client sent none (a
    /// part of an upload that has one); an error if it sent another.
    pub(crate) fn compute(&mut self, algorithm: Algorithm) -> Result<(), S3Error> {
        match &self.checksum {
            None => self.checksum = Some((algorithm, Hasher::new(algorithm), None)),
            Some((sent, ..)) if *sent == algorithm => {}
            Some((sent, ..)) => {
                return Err(S3Error::new(
                    400,
                    "InvalidRequest",
                    format!(
                        "this upload was created with the {} checksum, but the part sent {}: send x-amz-checksum-{} \
                         or no checksum",
                        algorithm.upper(),
                        sent.upper(),
                        algorithm.name()
                    ),
                ))
            }
        }
        Ok(())
    }

    /// The next piece of the payload (decoded, hashed), or `None` at its end.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, S3Error> {
        loop {
            let raw = match self.reader.next().await {
                Ok(Some(raw)) => raw,
                Ok(None) => return Ok(None),
                Err(BodyError::Io(err)) if err.kind() == std::io::ErrorKind::TimedOut => return Err(S3Error::new(
                    400,
                    "RequestTimeout",
                    "your socket connection to the server was not read from or written to within the timeout period",
                )),
                Err(BodyError::Io(_)) => return Err(S3Error::gone()),
                Err(BodyError::Framing(why)) => return Err(S3Error::new(400, "IncompleteBody", why)),
                Err(BodyError::TooLarge) => return Err(too_large(self.max)),
            };
            // (The SHA-256 of a signed payload covers the bytes as sent,
            // aws-chunked framing included.)
            if let Some((Some(hash), _)) = &mut self.sha256 {
                hash.update(&raw);
            }
            let piece = match &mut self.decoder {
                None => raw,
                Some(decoder) => {
                    let mut out = Vec::with_capacity(raw.len());
                    decoder.feed(&raw, &mut out)?;
                    if out.is_empty() {
                        continue;
                    }
                    out
                }
            };
            self.total += piece.len() as u64;
            if self.total > self.max {
                return Err(too_large(self.max));
            }
            self.md5.update(&piece);
            if let Some((_, checksum, _)) = &mut self.checksum {
                checksum.update(&piece);
            }
            return Ok(Some(piece));
        }
    }

    /// Reads the whole payload into memory (XML bodies).
    pub(crate) async fn read_all(mut self) -> Result<(Vec<u8>, Digests), S3Error> {
        let mut all = Vec::new();
        while let Some(piece) = self.next().await? {
            all.extend_from_slice(&piece);
        }
        let digests = self.finish()?;
        Ok((all, digests))
    }

    /// Checks everything the request promised about its payload.
    pub(crate) fn finish(self) -> Result<Digests, S3Error> {
        if let Some(decoder) = &self.decoder {
            decoder.finish(self.trailer_signed)?;
        }
        let (md5, beside) = self.md5.finalize_both();
        if let Some((apart, expected)) = self.sha256 {
            let computed = match apart {
                Some(context) => context.finish().as_ref().to_vec(),
                None => beside.map(|h| h.to_vec()).unwrap_or_default(),
            };
            if computed != expected {
                return Err(S3Error::new(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "the provided x-amz-content-sha256 does not match what was computed",
                ));
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Some(given) = &self.content_md5 {
            if b64.decode(given.trim()).ok().as_deref() != Some(&md5[..]) {
                return Err(S3Error::new(
                    400,
                    "BadDigest",
                    "the Content-MD5 you specified did not match what we received",
                ));
            }
        }
        let mut held = None;
        if let Some((algorithm, hasher, expected)) = self.checksum {
            let computed = hasher.finish();
            let given = match &expected {
                None => None,
                Some(Expected::Header(value)) => Some(value.as_str()),
                Some(Expected::Trailer(trailer)) => {
                    let value = self.decoder.as_ref().and_then(|d| d.trailer_value(trailer));
                    Some(value.ok_or_else(|| {
                        S3Error::new(
                            400,
                            "InvalidRequest",
                            format!("the trailer x-amz-checksum-{} is missing", algorithm.name()),
                        )
                    })?)
                }
            };
            if given.is_some_and(|given| b64.decode(given.trim()).ok().as_ref() != Some(&computed)) {
                return Err(S3Error::new(
                    400,
                    "BadDigest",
                    format!("the {} you specified did not match the calculated checksum", algorithm.upper()),
                ));
            }
            held = Some((algorithm.header(), checksum::encode(&computed)));
        }
        Ok(Digests { md5, checksum: held })
    }
}

fn too_large(max: u64) -> S3Error {
    S3Error::new(400, "EntityTooLarge", format!("your proposed upload exceeds the maximum allowed size ({max} bytes)"))
}
