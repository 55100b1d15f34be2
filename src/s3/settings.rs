//! The S3 listener's settings: where it listens, whose keys it accepts
//! (`--s3-credentials FILE`: one `ACCESS_KEY_ID SECRET_KEY` pair per line,
//! `#` comments), the region it names, and whether anonymous reads are
//! allowed (off unless the operator says so).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::peers::Peer;
use crate::ring::Ring;

/// The region percore reports (GetBucketLocation) unless told another.
pub(crate) const REGION_DEFAULT: &str = "us-east-1";

#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) listen: Vec<SocketAddr>,
    /// Where the S3 API is served over HTTPS (the daemon's certificates).
    pub(crate) listen_tls: Vec<SocketAddr>,
    /// Access key id → secret key.
    pub(crate) credentials: HashMap<String, String>,
    pub(crate) region: String,
    /// Virtual-host-style requests are served under this domain
    /// (`--s3-domain`, lowercase, without a port): `BUCKET.DOMAIN`.
    pub(crate) domain: Option<String>,
    /// Unsigned GET and HEAD requests are served (`--s3-anonymous-reads`).
    pub(crate) anonymous_reads: bool,
    /// Multipart uploads older than this are removed.
    pub(crate) upload_expiry_secs: u64,
}

/// How long an unfinished multipart upload is kept (7 days).
pub(crate) const UPLOAD_EXPIRY_SECS_DEFAULT: u64 = 7 * 24 * 3600;

impl Settings {
    /// Validated settings from the raw ones: `listen` given means S3 is on.
    pub(crate) fn from_raw(
        listen: &[String],
        listen_tls: &[String],
        credentials: Option<&Path>,
        region: Option<String>,
        domain: Option<String>,
        anonymous_reads: bool,
        upload_expiry_secs: Option<u64>,
    ) -> Result<Option<Settings>, String> {
        if listen.is_empty() && listen_tls.is_empty() {
            if credentials.is_some() {
                return Err("--s3-credentials is for the S3 listener: give --s3-listen (or --s3-listen-tls) too".into());
            }
            return Ok(None);
        }
        let parse = |texts: &[String], flag: &str| -> Result<Vec<SocketAddr>, String> {
            let mut addrs = Vec::new();
            for text in texts {
                addrs.extend(crate::listen::parse(text).map_err(|e| e.replace("--listen", flag))?);
            }
            Ok(addrs)
        };
        let (addrs, tls_addrs) = (parse(listen, "--s3-listen")?, parse(listen_tls, "--s3-listen-tls")?);
        let path = credentials.ok_or(
            "--s3-listen needs --s3-credentials FILE (one `ACCESS_KEY_ID SECRET_KEY` pair per line): S3 requests are \
             signed with those keys",
        )?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the S3 credentials file {}: {e}", path.display()))?;
        let credentials = parse_credentials(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let region = region.unwrap_or_else(|| REGION_DEFAULT.to_string());
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("--s3-region `{region}`: use letters, digits and `-` (e.g. us-east-1)"));
        }
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        if let Some(d) = &domain {
            let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !d.split('.').all(label_ok) {
                return Err(format!(
                    "--s3-domain `{d}`: give a host name without port or scheme (e.g. s3.example.com); buckets are then \
                     BUCKET.{d}"
                ));
            }
        }
        let upload_expiry_secs = upload_expiry_secs.unwrap_or(UPLOAD_EXPIRY_SECS_DEFAULT);
        Ok(Some(Settings {
            listen: addrs,
            listen_tls: tls_addrs,
            credentials,
            region,
            domain,
            anonymous_reads,
            upload_expiry_secs,
        }))
    }

    /// A key no fuzzer knows the secret of.
    pub(crate) fn for_fuzzing() -> Settings {
        let mut secret = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut secret);
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        Settings {
            listen: Vec::new(),
            listen_tls: Vec::new(),
            credentials: [("AKIDTEST".to_string(), secret)].into(),
            region: REGION_DEFAULT.into(),
            domain: None,
            anonymous_reads: false,
            upload_expiry_secs: UPLOAD_EXPIRY_SECS_DEFAULT,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(access_key: &str, secret: &str) -> Settings {
        Settings {
            listen: Vec::new(),
            listen_tls: Vec::new(),
            credentials: [(access_key.to_string(), secret.to_string())].into(),
            region: REGION_DEFAULT.into(),
            domain: None,
            anonymous_reads: false,
            upload_expiry_secs: UPLOAD_EXPIRY_SECS_DEFAULT,
        }
    }
}

/// `--s3-peers` (`spec`) checked against the ring and the S3 settings: a
/// node of a ring that serves S3 names every other node's S3 listener,
/// once, and serves path-style requests only (the front end hashes the
/// path); `--s3-peers` alone is refused.
pub(crate) fn ring_peers(ring: Option<&Ring>, s3: Option<&Settings>, spec: Option<&str>) -> Result<Vec<Peer>, String> {
    let peers = spec.map(|spec| crate::peers::parse(spec, "--s3-peers")).transpose()?;
    let (ring, s3, peers) = match (ring, s3, peers) {
        (Some(ring), Some(s3), Some(peers)) => (ring, s3, peers),
        (Some(_), Some(_), None) => {
            return Err("--s3-listen with --ring needs --s3-peers (every other node's S3 listener, NAME=HOST:PORT): \
                        a bucket's listing gathers every node's keys"
                .into())
        }
        (_, _, Some(_)) => {
            return Err("--s3-peers is for the nodes of a --ring serving S3: give --ring and --s3-listen too".into())
        }
        (_, _, None) => return Ok(Vec::new()),
    };
    if s3.domain.is_some() {
        return Err("--s3-domain with --ring: the front end hashes the path, which holds no bucket in a \
                    virtual-host-style request; serve path-style requests only (leave out --s3-domain)"
            .into());
    }
    let mut others: Vec<&str> = ring.others().collect();
    let mut named: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    others.sort_unstable();
    named.sort_unstable();
    if others != named {
        return Err(format!(
            "--s3-peers must name every other node of the ring once ({}), not {}",
            others.join(", "),
            if named.is_empty() { "none".to_string() } else { named.join(", ") }
        ));
    }
    Ok(peers)
}

/// Reads `ACCESS_KEY_ID SECRET_KEY` lines.
fn parse_credentials(text: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [key, secret] = fields.as_slice() else {
            return Err(format!("line {}: expected `ACCESS_KEY_ID SECRET_KEY`", n + 1));
        };
        if key.contains('/') || !key.is_ascii() {
            return Err(format!("line {}: an access key id is ASCII without `/`", n + 1));
        }
        if out.insert(key.to_string(), secret.to_string()).is_some() {
            return Err(format!("line {}: the access key id {key} is given twice", n + 1));
        }
    }
    if out.is_empty() {
        return Err("no `ACCESS_KEY_ID SECRET_KEY` line".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files() {
        let keys = parse_credentials("# ops\nAKID1 secret/one\n\n  AKID2   two  \n").unwrap();
        assert_eq!(keys.get("AKID1").map(String::as_str), Some("secret/one"));
        assert_eq!(keys.get("AKID2").map(String::as_str), Some("two"));
        assert!(parse_credentials("AKID1\n").unwrap_err().contains("line 1"));
        assert!(parse_credentials("A B\nA C\n").unwrap_err().contains("twice"));
        assert!(parse_credentials("# nothing\n").is_err());
        assert!(Settings::from_raw(&["127.0.0.1:0".into()], &[], None, None, None, false, None)
            .unwrap_err()
            .contains("--s3-credentials"));
        assert!(Settings::from_raw(&[], &[], None, None, None, false, None).unwrap().is_none());
    }

    #[test]
    fn a_ring_serving_s3_names_every_other_node_once_and_serves_path_style_only() {
        let s3 = Settings::for_tests("AKID", "secret");
        let ring = Ring::parse("a=1,b=2,c=3", "a").unwrap();
        assert!(ring_peers(None, Some(&s3), None).unwrap().is_empty(), "S3 on a single node");
        assert!(ring_peers(Some(&ring), None, None).unwrap().is_empty(), "a ring without S3");
        let err = ring_peers(Some(&ring), Some(&s3), None).unwrap_err();
        assert!(err.contains("--s3-listen with --ring needs --s3-peers"), "{err}");
        let peers = ring_peers(Some(&ring), Some(&s3), Some("c=127.0.0.3:9000,b=127.0.0.2:9000")).unwrap();
        assert_eq!(peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        for wrong in [
            "b=127.0.0.2:9000",
            "b=127.0.0.2:9000,c=127.0.0.3:9000,d=127.0.0.4:9000",
            "b=127.0.0.2:9000,a=127.0.0.1:9000",
        ] {
            let err = ring_peers(Some(&ring), Some(&s3), Some(wrong)).unwrap_err();
            assert!(err.contains("--s3-peers must name every other node of the ring once (b, c)"), "{wrong}: {err}");
        }
        let virtual_hosts = Settings { domain: Some("s3.test".into()), ..s3.clone() };
        let err = ring_peers(Some(&ring), Some(&virtual_hosts), Some("b=127.0.0.2:9000,c=127.0.0.3:9000")).unwrap_err();
        assert!(err.contains("--s3-domain with --ring"), "{err}");
        let err = ring_peers(None, Some(&s3), Some("b=127.0.0.2:9000")).unwrap_err();
        assert!(err.contains("--s3-peers is for the nodes of a --ring"), "{err}");
    }
}
