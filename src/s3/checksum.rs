//! The checksums S3 clients send and check (`x-amz-checksum-<name>`): the
//! CRCs (CRC32, CRC32C and CRC64NVME, the one aws-cli v2 sends by default
//! since 2.23), SHA-1, SHA-256, SHA-512 and MD5. A body's checksum is
//! computed while it streams in ([`Hasher`]); a multipart upload's is made
//! from its parts' ([`of_parts`]) without reading the object again: the
//! checksum of the parts' checksums (`COMPOSITE`, written `<base64>-N`) or,
//! for the CRCs, the CRC of the whole object (`FULL_OBJECT`), combined from
//! the parts' CRCs and lengths.
//!
//! CRC32 and CRC32C are `crc32fast`'s and `crc32c`'s, CRC64NVME and the
//! combining of CRCs `crc-fast`'s (its CRC32s measured at half the others'
//! speed here: 85 against 41-43 us a MiB), the digests aws-lc-rs's, MD5
//! `super::md5`'s.

use aws_lc_rs::digest;
use base64::Engine;
use crc_fast::CrcAlgorithm;

use super::error::{invalid_request, S3Error};
use super::md5::Md5;

/// A checksum algorithm S3 knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
    Sha512,
    Md5,
}

/// Every algorithm, for lookups by name.
const ALL: [Algorithm; 7] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64Nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Sha512,
    Algorithm::Md5,
];

/// The names a request may give that are not supported (S3 knows them).
const KNOWN_UNSUPPORTED: [&str; 3] = ["xxhash64", "xxhash3", "xxhash128"];

impl Algorithm {
    /// The algorithm named `name` in a header's name (`crc32` of
    /// `x-amz-checksum-crc32`), lower case.
    pub(crate) fn named(name: &str) -> Result<Algorithm, S3Error> {
        ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| unsupported(name))
    }

    /// The algorithm a header's value names (`x-amz-checksum-algorithm:
    /// CRC32`), in any case.
    pub(crate) fn parse(value: &str) -> Result<Algorithm, S3Error> {
        Algorithm::named(&value.trim().to_ascii_lowercase())
    }

    /// Lower case, as in the header's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "crc32",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc64Nvme => "crc64nvme",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Md5 => "md5",
        }
    }

    /// Upper case, as in XML and `x-amz-checksum-algorithm`.
    pub(crate) fn upper(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
            Algorithm::Md5 => "MD5",
        }
    }

    /// The header that carries a value: `x-amz-checksum-crc32`.
    pub(crate) fn header(self) -> String {
        ["x-amz-checksum-", self.name()].concat()
    }

    /// The XML element that carries a value: `ChecksumCRC32`.
    pub(crate) fn element(self) -> String {
        ["Checksum", self.upper()].concat()
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            _ => None,
        }
    }

    /// The bytes of a value.
    fn width(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
            Algorithm::Md5 => 16,
        }
    }
}

/// The error for a checksum algorithm this server does not compute.
fn unsupported(name: &str) -> S3Error {
    let known = if KNOWN_UNSUPPORTED.contains(&name) { " (S3 knows it; percore does not compute it)" } else { "" };
    invalid_request(format!(
        "the checksum algorithm {name} is not supported{known}: use CRC32, CRC32C, CRC64NVME, SHA1, SHA256, SHA512 \
         or MD5"
    ))
}

/// How a multipart upload's checksum covers the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The checksum of the parts' checksums, `-N` after it.
    Composite,
    /// The checksum of the object's bytes (CRCs only).
    FullObject,
}

impl Kind {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Kind::Composite => "COMPOSITE",
            Kind::FullObject => "FULL_OBJECT",
        }
    }

    pub(crate) fn parse(value: &str) -> Result<Kind, S3Error> {
        match value.trim() {
            "COMPOSITE" => Ok(Kind::Composite),
            "FULL_OBJECT" => Ok(Kind::FullObject),
            other => Err(invalid_request(format!("x-amz-checksum-type must be COMPOSITE or FULL_OBJECT, not {other}"))),
        }
    }
}

/// The header that names a checksum's kind (stored with multipart objects).
pub(crate) const TYPE_HEADER: &str = "x-amz-checksum-type";

/// A multipart upload's checksum, from CreateMultipartUpload's
/// `x-amz-checksum-algorithm` and `x-amz-checksum-type`, as S3 allows them:
/// CRC64NVME only over the full object, SHA-1, SHA-256, SHA-512 and MD5 only
/// composite, CRC32 and CRC32C either (composite unless asked).
pub(crate) fn for_upload(algorithm: Option<&str>, kind: Option<&str>) -> Result<Option<(Algorithm, Kind)>, S3Error> {
    let Some(algorithm) = algorithm else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(invalid_request("x-amz-checksum-type needs x-amz-checksum-algorithm")),
        };
    };
    let algorithm = Algorithm::parse(algorithm)?;
    let default = if algorithm == Algorithm::Crc64Nvme { Kind::FullObject } else { Kind::Composite };
    let kind = kind.map(Kind::parse).transpose()?.unwrap_or(default);
    let allowed = match kind {
        Kind::Composite => algorithm != Algorithm::Crc64Nvme,
        Kind::FullObject => algorithm.crc().is_some(),
    };
    if !allowed {
        return Err(invalid_request(format!(
            "the {} checksum type is not supported for the {} algorithm (CRC64NVME is FULL_OBJECT only; SHA and MD5 \
             are COMPOSITE only)",
            kind.text(),
            algorithm.upper()
        )));
    }
    Ok(Some((algorithm, kind)))
}

/// A checksum being computed over bytes as they pass.
pub(crate) enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(Box<crc_fast::Digest>),
    Digest(digest::Context),
    Md5(Box<Md5>),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Crc64Nvme => Hasher::Crc64Nvme(Box::new(crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme))),
            Algorithm::Sha1 => Hasher::Digest(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY)),
            Algorithm::Sha256 => Hasher::Digest(digest::Context::new(&digest::SHA256)),
            Algorithm::Sha512 => Hasher::Digest(digest::Context::new(&digest::SHA512)),
            Algorithm::Md5 => Hasher::Md5(Box::default()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(bytes),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, bytes),
            Hasher::Crc64Nvme(c) => c.update(bytes),
            Hasher::Digest(d) => d.update(bytes),
            Hasher::Md5(m) => m.update(bytes),
        }
    }

    /// The value's bytes (a CRC big-endian, as S3 encodes it).
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Crc64Nvme(c) => c.finalize().to_be_bytes().to_vec(),
            Hasher::Digest(d) => d.finish().as_ref().to_vec(),
            Hasher::Md5(m) => m.finalize().to_vec(),
        }
    }
}

/// Base64, as S3 writes checksum values.
pub(crate) fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A value's bytes, if it is base64 of the algorithm's width.
pub(crate) fn decode(algorithm: Algorithm, value: &str) -> Option<Vec<u8>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    (bytes.len() == algorithm.width()).then_some(bytes)
}

/// The checksum of a multipart object whose parts (in order) have the
/// checksums `parts` (each its value's bytes and the part's length), as
/// S3 writes it: `<base64>-N` for a composite one.
pub(crate) fn of_parts(algorithm: Algorithm, kind: Kind, parts: &[(Vec<u8>, u64)]) -> String {
    match (kind, algorithm.crc()) {
        (Kind::FullObject, Some(crc)) => {
            let width = algorithm.width();
            let value = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let mut whole: Option<u64> = None;
            for (bytes, len) in parts {
                let part = value(bytes);
                whole = Some(match whole {
                    None => part,
                    Some(before) => crc_fast::checksum_combine(crc, before, part, *len),
                });
            }
            let whole = whole.unwrap_or_else(|| crc_fast::checksum(crc, b""));
            encode(&whole.to_be_bytes()[8 - width..])
        }
        _ => {
            let mut hasher = Hasher::new(algorithm);
            for (bytes, _) in parts {
                hasher.update(bytes);
            }
            format!("{}-{}", encode(&hasher.finish()), parts.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(algorithm: Algorithm, bytes: &[u8]) -> Vec<u8> {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn values_are_the_published_check_values() {
        let check = b"123456789";
        assert_eq!(of(Algorithm::Crc32, check), 0xcbf43926u32.to_be_bytes());
        assert_eq!(of(Algorithm::Crc32c, check), 0xe3069283u32.to_be_bytes());
        assert_eq!(of(Algorithm::Crc64Nvme, check), 0xae8b14860a799888u64.to_be_bytes());
        // S3's own example values (base64 of the big-endian bytes).
        assert_eq!(encode(&of(Algorithm::Crc32, b"data")), "rfPzYw==");
        assert_eq!(of(Algorithm::Sha512, b"").len(), 64);
        assert_eq!(encode(&of(Algorithm::Md5, b"")), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn a_full_object_crc_combined_from_parts_is_the_crc_of_the_whole() {
        let whole: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            for cuts in [vec![0, 100_000], vec![0, 1, 100_000], vec![0, 40_000, 40_000, 99_999, 100_000]] {
                let parts: Vec<(Vec<u8>, u64)> =
                    cuts.windows(2).map(|w| (of(algorithm, &whole[w[0]..w[1]]), (w[1] - w[0]) as u64)).collect();
                assert_eq!(
                    of_parts(algorithm, Kind::FullObject, &parts),
                    encode(&of(algorithm, &whole)),
                    "{algorithm:?} cut at {cuts:?}"
                );
            }
        }
    }

    #[test]
    fn a_composite_checksum_is_the_checksum_of_the_parts_checksums() {
        let parts = vec![(of(Algorithm::Sha256, b"one"), 3), (of(Algorithm::Sha256, b"two"), 3)];
        let joined = [parts[0].0.clone(), parts[1].0.clone()].concat();
        assert_eq!(
            of_parts(Algorithm::Sha256, Kind::Composite, &parts),
            format!("{}-2", encode(&of(Algorithm::Sha256, &joined)))
        );
    }

    #[test]
    fn an_upload_gets_the_kinds_s3_allows() {
        assert_eq!(for_upload(None, None).unwrap(), None);
        assert_eq!(for_upload(Some("CRC64NVME"), None).unwrap(), Some((Algorithm::Crc64Nvme, Kind::FullObject)));
        assert_eq!(for_upload(Some("crc32"), None).unwrap(), Some((Algorithm::Crc32, Kind::Composite)));
        assert_eq!(
            for_upload(Some("CRC32C"), Some("FULL_OBJECT")).unwrap(),
            Some((Algorithm::Crc32c, Kind::FullObject))
        );
        assert!(for_upload(Some("CRC64NVME"), Some("COMPOSITE")).is_err());
        assert!(for_upload(Some("SHA256"), Some("FULL_OBJECT")).is_err());
        assert!(for_upload(None, Some("COMPOSITE")).is_err());
        assert!(for_upload(Some("XXHASH3"), None).unwrap_err().message.contains("S3 knows it"));
        assert!(for_upload(Some("CRC32"), Some("PARTIAL")).is_err());
    }

    #[test]
    fn values_of_the_wrong_width_do_not_decode() {
        assert!(decode(Algorithm::Crc32, "rfPzYw==").is_some());
        assert!(decode(Algorithm::Crc64Nvme, "rfPzYw==").is_none());
        assert!(decode(Algorithm::Crc32, "not base64").is_none());
    }
}
