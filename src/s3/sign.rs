//! Signing as a client does (the header form of AWS Signature V4):
//! `percore bench --s3`'s requests, and what the tests check the verifier
//! against.

use sha2::{Digest, Sha256};

use super::date::format_amz_date;
use super::head::encode;
use super::sigv4::{hex, mac, signing_key, Key, ALGORITHM};

/// A client's key: signs requests as boto3 does over plain HTTP (the
/// payload's SHA-256 signed).
#[derive(Clone)]
pub(crate) struct Signer {
    access_key: String,
    secret: String,
    region: String,
    /// The signing key of one day (derived once: four HMACs).
    day: (String, Key),
}

impl Signer {
    /// From `ACCESS_KEY_ID:SECRET_KEY`.
    pub(crate) fn parse(text: &str) -> Result<Signer, String> {
        let (access_key, secret) = text
            .split_once(':')
            .ok_or("--s3 takes ACCESS_KEY_ID:SECRET_KEY (a pair from the daemon's --s3-credentials)")?;
        Ok(Signer::new(access_key, secret, super::settings::REGION_DEFAULT))
    }

    pub(crate) fn new(access_key: &str, secret: &str, region: &str) -> Signer {
        let date = format_amz_date(crate::clock::coarse_epoch_seconds())[..8].to_string();
        let key = signing_key(secret, &date, region, "s3");
        Signer { access_key: access_key.into(), secret: secret.into(), region: region.into(), day: (date, key) }
    }

    /// The header lines (`x-amz-date`, `x-amz-content-sha256`, any of
    /// `extra`, `Authorization`) that sign `method path` on `host` with a
    /// body whose SHA-256 is `payload_hash`, at `now` (seconds since the
    /// epoch). `path` is as sent: percent-encoded as SigV4 encodes it.
    pub(crate) fn headers(
        &self,
        method: &str,
        path: &str,
        host: &str,
        extra: &[(&str, &str)],
        payload_hash: &str,
        now: u64,
    ) -> String {
        self.headers_with_query(method, path, &[], host, extra, payload_hash, now)
    }

    /// [`Signer::headers`] for a request with a query (`query`: its
    /// parameters, not encoded).
    #[allow(clippy::too_many_arguments, reason = "the pieces of a signature, each named")]
    pub(crate) fn headers_with_query(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        host: &str,
        extra: &[(&str, &str)],
        payload_hash: &str,
        now: u64,
    ) -> String {
        let amz_date = format_amz_date(now);
        let mut headers =
            vec![("host", host), ("x-amz-content-sha256", payload_hash), ("x-amz-date", amz_date.as_str())];
        headers.extend_from_slice(extra);
        let derived;
        let key = if amz_date.starts_with(&self.day.0) {
            &self.day.1
        } else {
            derived = signing_key(&self.secret, &amz_date[..8], &self.region, "s3");
            &derived
        };
        let query = canonical_query(query);
        let path_and_query = (path, query.as_str());
        let auth = authorization_with(
            key,
            &self.access_key,
            &self.region,
            method,
            path_and_query,
            &headers,
            payload_hash,
            &amz_date,
        );
        let mut out = format!("x-amz-date: {amz_date}\r\nx-amz-content-sha256: {payload_hash}\r\n");
        for (name, value) in extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("Authorization: {auth}\r\n"));
        out
    }
}

/// A query as SigV4 signs it: names and values encoded, sorted.
pub(crate) fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(n, v)| (encode(n.as_bytes(), false), encode(v.as_bytes(), false))).collect();
    pairs.sort();
    pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
}

/// The SHA-256 of `bytes`, hex: a signed payload's hash.
pub(crate) fn payload_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Signs a request as a client does (header form, `payload_hash` given):
/// the `Authorization` value.
#[cfg(test)]
#[allow(clippy::too_many_arguments, reason = "the pieces of a signature, each named")]
pub(crate) fn authorization(
    access_key: &str,
    secret: &str,
    region: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    amz_date: &str,
) -> String {
    let key = signing_key(secret, &amz_date[..8], region, "s3");
    authorization_with(&key, access_key, region, method, (path, ""), headers, payload_hash, amz_date)
}

/// [`authorization`] with the day's signing key given.
#[allow(clippy::too_many_arguments, reason = "the pieces of a signature, each named")]
fn authorization_with(
    key: &Key,
    access_key: &str,
    region: &str,
    method: &str,
    (path, query): (&str, &str),
    headers: &[(&str, &str)],
    payload_hash: &str,
    amz_date: &str,
) -> String {
    let mut sorted: Vec<(String, String)> =
        headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string())).collect();
    sorted.sort();
    let signed: Vec<&str> = sorted.iter().map(|(n, _)| n.as_str()).collect();
    let mut canonical = format!("{method}\n{path}\n{query}\n");
    for (n, v) in &sorted {
        canonical.push_str(&format!("{n}:{v}\n"));
    }
    canonical.push_str(&format!("\n{}\n{payload_hash}", signed.join(";")));
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let signature = hex(&mac(key, &[to_sign.as_bytes()]));
    format!("{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={}, Signature={signature}", signed.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::date::parse_amz_date;
    use crate::s3::head::{Headers, Query};
    use crate::s3::settings::Settings;
    use crate::s3::sigv4::{verify, KeyCache, Request, EMPTY_SHA256};

    fn settings() -> Settings {
        Settings::for_tests("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    }

    #[test]
    fn what_we_sign_we_verify_and_nothing_else() {
        let amz_date = "20250101T000000Z";
        let hash = EMPTY_SHA256;
        let auth = authorization(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "GET",
            "/b/k",
            &[("host", "127.0.0.1"), ("x-amz-content-sha256", hash), ("x-amz-date", amz_date)],
            hash,
            amz_date,
        );
        let head = format!(
            "GET /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nx-amz-content-sha256: {hash}\r\nx-amz-date: {amz_date}\r\nAuthorization: {auth}\r\n\r\n"
        );
        let headers = Headers::parse(head.as_bytes());
        let query = Query::default();
        let now = parse_amz_date(amz_date).unwrap();
        let ok = Request { method: "GET", path: "/b/k", query: &query, headers: &headers };
        assert!(verify(&settings(), &KeyCache::default(), &ok, now).unwrap().is_some());
        let moved = Request { method: "GET", path: "/b/other", query: &query, headers: &headers };
        assert_eq!(verify(&settings(), &KeyCache::default(), &moved, now).err().unwrap().code, "SignatureDoesNotMatch");
        let put = Request { method: "PUT", path: "/b/k", query: &query, headers: &headers };
        assert_eq!(verify(&settings(), &KeyCache::default(), &put, now).err().unwrap().code, "SignatureDoesNotMatch");
        // With a query (what one node of a ring asks another).
        let signer = Signer::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1");
        let now = crate::clock::coarse_epoch_seconds();
        let params = [("list-type", "2"), ("prefix", "a b/c+d"), ("x-percore-local", "1")];
        let lines = signer.headers_with_query("GET", "/b", &params, "127.0.0.1", &[], hash, now);
        let target = format!("/b?{}", canonical_query(&params));
        let head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n");
        let headers = Headers::parse(head.as_bytes());
        let query = Query::parse(target.split_once('?').map(|(_, q)| q)).unwrap();
        let asked = Request { method: "GET", path: "/b", query: &query, headers: &headers };
        assert!(verify(&settings(), &KeyCache::default(), &asked, now).unwrap().is_some());
        let other = Query::parse(Some("list-type=2&prefix=a%20b%2Fc%2Be")).unwrap();
        let changed = Request { method: "GET", path: "/b", query: &other, headers: &headers };
        assert_eq!(
            verify(&settings(), &KeyCache::default(), &changed, now).err().unwrap().code,
            "SignatureDoesNotMatch"
        );
        let none = Headers::parse(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n");
        let anonymous = Request { method: "GET", path: "/b/k", query: &query, headers: &none };
        assert!(verify(&settings(), &KeyCache::default(), &anonymous, now).unwrap().is_none());
    }
}
