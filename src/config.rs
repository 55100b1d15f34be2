//! Configuration in two stages: [`RawConfig`] (flags, environment, an
//! optional TOML file; every field optional) and [`Config`] (validated once,
//! immutable, units in the names).
//!
//! Precedence: flags, then environment variables (`PERCORE_*`), then the
//! TOML file (`--config`), then the built-in defaults, which need no file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use percore_cores::CoreSet;
use serde::Deserialize;

/// `percore serve` settings as given (flags and environment via clap, or the
/// TOML file via serde). Field names are the TOML keys.
#[derive(clap::Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawConfig {
    /// A TOML file with any of these settings (kebab-case keys).
    #[arg(long, env = "PERCORE_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Where to listen: IP:PORT (`[::1]:8080` for IPv6), HOST:PORT, :PORT or PORT (every IPv4 interface); repeat the flag, or separate with commas, for several. Without --write-token only loopback addresses are accepted [default: 127.0.0.1:8080].
    #[arg(long, env = "PERCORE_LISTEN", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub(crate) listen: Vec<String>,
    /// Where to listen for HTTPS, in the forms --listen takes (e.g. `:8443`); needs --tls-cert and --tls-key, or --tls-self-signed. With --tls-cert or --tls-self-signed and no --listen-tls: 127.0.0.1:8443.
    #[arg(long, env = "PERCORE_LISTEN_TLS", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub(crate) listen_tls: Vec<String>,
    /// A PEM certificate chain (leaf first) for HTTPS; repeat with --tls-key for several certificates chosen by SNI (the first is the default). Reloaded on SIGHUP.
    #[arg(long, env = "PERCORE_TLS_CERT", value_delimiter = ',')]
    #[serde(default)]
    pub(crate) tls_cert: Vec<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or EC) of each --tls-cert, in the same order.
    #[arg(long, env = "PERCORE_TLS_KEY", value_delimiter = ',')]
    #[serde(default)]
    pub(crate) tls_key: Vec<PathBuf>,
    /// Serve HTTPS with a certificate made at start for localhost (development only): its fingerprint and file are printed.
    #[arg(long, env = "PERCORE_TLS_SELF_SIGNED")]
    #[serde(default)]
    pub(crate) tls_self_signed: bool,
    /// What a TLS client asking for a name no certificate holds gets: `default` (the first certificate) or `refuse` (a handshake alert) [default: default].
    #[arg(long, env = "PERCORE_TLS_UNKNOWN_SNI")]
    pub(crate) tls_unknown_sni: Option<String>,
    /// Time a TLS handshake may take, in ms [default: 10000].
    #[arg(long, env = "PERCORE_TLS_HANDSHAKE_TIMEOUT_MS")]
    pub(crate) tls_handshake_timeout_ms: Option<u64>,
    /// Where to serve the S3 API (path-style, AWS Signature V4), in the forms --listen takes; needs --s3-credentials (with --ring, --s3-peers too).
    #[arg(long, env = "PERCORE_S3_LISTEN", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub(crate) s3_listen: Vec<String>,
    /// Where to serve the S3 API over HTTPS (with the --tls-cert certificates), in the forms --listen takes.
    #[arg(long, env = "PERCORE_S3_LISTEN_TLS", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub(crate) s3_listen_tls: Vec<String>,
    /// The S3 keys: a file with one `ACCESS_KEY_ID SECRET_KEY` pair per line (`#` comments).
    #[arg(long, env = "PERCORE_S3_CREDENTIALS")]
    pub(crate) s3_credentials: Option<PathBuf>,
    /// The region the S3 API reports [default: us-east-1].
    #[arg(long, env = "PERCORE_S3_REGION")]
    pub(crate) s3_region: Option<String>,
    /// Also serve virtual-host-style S3 requests: a request to `BUCKET.DOMAIN` names the bucket in its host (e.g. --s3-domain s3.example.com; path-style requests are served either way).
    #[arg(long, env = "PERCORE_S3_DOMAIN")]
    pub(crate) s3_domain: Option<String>,
    /// Serve unsigned S3 GET and HEAD requests (anonymous reads of every bucket).
    #[arg(long, env = "PERCORE_S3_ANONYMOUS_READS")]
    #[serde(default)]
    pub(crate) s3_anonymous_reads: bool,
    /// Unfinished S3 multipart uploads older than this are removed, in seconds [default: 604800].
    #[arg(long, env = "PERCORE_S3_UPLOAD_EXPIRY_SECS")]
    pub(crate) s3_upload_expiry_secs: Option<u64>,
    /// This node's name, in /health (`X-Percore-Node`), /metrics (`percore_node_info`) and the logs [default: the host name].
    #[arg(long, env = "PERCORE_NODE_NAME")]
    pub(crate) node_name: Option<String>,
    /// Behind HAProxy (`balance uri path-only`, `hash-type consistent`, servers with `id N`, weight 1): every node as NAME=ID, comma-separated, this one included; a request for an object another node owns then gets 503, never a 404 for an object that lives elsewhere (deploy/haproxy.cfg).
    #[arg(long, env = "PERCORE_RING")]
    pub(crate) ring: Option<String>,
    /// With --ring: the other nodes as this one reaches them directly, NAME=HOST:PORT, comma-separated; a directory listing then gathers every node's entries (objects of one directory live on all of them).
    #[arg(long, env = "PERCORE_PEERS")]
    pub(crate) peers: Option<String>,
    /// With --ring and --s3-listen: every other node's plain-HTTP S3 listener, NAME=HOST:PORT, comma-separated; a bucket's listing gathers every node's keys, bucket changes reach every node, copies read sources on their owners (signed with the first key of --s3-credentials, which every node shares).
    #[arg(long, env = "PERCORE_S3_PEERS")]
    pub(crate) s3_peers: Option<String>,
    /// Allow listening beyond loopback with no --write-token: anyone who can connect may then PUT and DELETE.
    #[arg(long, env = "PERCORE_ALLOW_ANONYMOUS_WRITES")]
    #[serde(default)]
    pub(crate) allow_anonymous_writes: bool,
    /// Directory the files live in; created if missing [default: ./data].
    #[arg(long, env = "PERCORE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// CPUs to run on: `all`, a count (`4`) or a list (`0,2-5`) [default: all].
    #[arg(long, env = "PERCORE_CORES")]
    pub(crate) cores: Option<String>,
    /// Largest request head (request line and headers) in bytes [default: 16384].
    #[arg(long, env = "PERCORE_HEADER_BYTES_MAX")]
    pub(crate) header_bytes_max: Option<usize>,
    /// Largest request body (upload) in bytes [default: 1073741824].
    #[arg(long, env = "PERCORE_BODY_BYTES_MAX")]
    pub(crate) body_bytes_max: Option<u64>,
    /// Largest request target (URL) in bytes [default: 4096].
    #[arg(long, env = "PERCORE_TARGET_BYTES_MAX")]
    pub(crate) target_bytes_max: Option<usize>,
    /// Memory each shard's cache of small files (up to 64 KiB each) may use; files up to 16 KiB count twice (their whole answer is kept rendered too); 0 turns the cache off [default: 67108864].
    #[arg(long, env = "PERCORE_CACHE_BYTES_MAX")]
    pub(crate) cache_bytes_max: Option<u64>,
    /// Open connections per shard; more are refused with 503 [default: 10000].
    #[arg(long, env = "PERCORE_CONNECTIONS_MAX_PER_SHARD")]
    pub(crate) connections_max_per_shard: Option<usize>,
    /// Time to receive a request head once it has started, in ms [default: 10000].
    #[arg(long, env = "PERCORE_HEADER_TIMEOUT_MS")]
    pub(crate) header_timeout_ms: Option<u64>,
    /// Time allowed between pieces of a request body, in ms [default: 30000].
    #[arg(long, env = "PERCORE_BODY_TIMEOUT_MS")]
    pub(crate) body_timeout_ms: Option<u64>,
    /// Log every request (method, path, status, bytes, duration) at info level.
    #[arg(long, env = "PERCORE_ACCESS_LOG")]
    #[serde(default)]
    pub(crate) access_log: bool,
    /// Time an idle keep-alive connection stays open, in ms [default: 60000].
    #[arg(long, env = "PERCORE_IDLE_TIMEOUT_MS")]
    pub(crate) idle_timeout_ms: Option<u64>,
    /// Time a response may take per send (per 1 MiB piece of a large file) before the connection is dropped, in ms [default: 30000].
    #[arg(long, env = "PERCORE_SEND_TIMEOUT_MS")]
    pub(crate) send_timeout_ms: Option<u64>,
    /// On SIGTERM/SIGINT, keep serving this long with /health answering 503 "draining" (so load balancers move away) before stopping, in ms [default: 0].
    #[arg(long, env = "PERCORE_DRAIN_MS")]
    pub(crate) drain_ms: Option<u64>,
    /// Grace period for in-flight requests at shutdown, in ms [default: 10000].
    #[arg(long, env = "PERCORE_SHUTDOWN_GRACE_MS")]
    pub(crate) shutdown_grace_ms: Option<u64>,
    /// Bearer token required for reads (GET, HEAD) of files; the write token also reads [default: none].
    #[arg(long, env = "PERCORE_READ_TOKEN", hide_env_values = true)]
    pub(crate) read_token: Option<String>,
    /// Bearer token required for writes (PUT, DELETE) [default: none].
    #[arg(long, env = "PERCORE_WRITE_TOKEN", hide_env_values = true)]
    pub(crate) write_token: Option<String>,
    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing directive) [default: info].
    #[arg(long, env = "PERCORE_LOG_LEVEL")]
    pub(crate) log_level: Option<String>,
    /// Log format: `human` or `json` [default: human].
    #[arg(long, env = "PERCORE_LOG_FORMAT")]
    pub(crate) log_format: Option<String>,
    /// How an upload is flushed before its rename: `auto` (on ext4 and XFS, written back and made durable by the directory fsync's journal commit together with the rename: one commit per PUT; fdatasync elsewhere) or `fdatasync` (always, two commits) [default: auto].
    #[arg(long, env = "PERCORE_BODY_FLUSH")]
    pub(crate) body_flush: Option<String>,
    /// Kernel worker threads per shard for blocking file work (creating opens, writes, fsync, rename, unlink): uploads that wait for the disk wait in these, so this bounds how many overlap; workers start on demand and exit when idle [default: 128].
    #[arg(long, env = "PERCORE_FILE_WORKERS")]
    pub(crate) file_workers: Option<u32>,
}

/// A TOML value that is one string or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

/// How an uploaded body is flushed before the rename that commits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFlush {
    /// Write-back only where the directory fsync's journal commit makes
    /// the body durable with the rename (ext4, XFS); fdatasync elsewhere.
    Auto,
    /// Always fdatasync.
    Fdatasync,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Every plain-HTTP address to listen on.
    pub(crate) listen: Vec<SocketAddr>,
    /// Every HTTPS address to listen on (at least one address in all).
    pub(crate) listen_tls: Vec<SocketAddr>,
    /// This node's name.
    pub(crate) node_name: String,
    /// The nodes behind the load balancer, when there are several.
    pub(crate) ring: Option<crate::ring::Ring>,
    /// The other nodes, for listings.
    pub(crate) peers: Vec<crate::peers::Peer>,
    /// The other nodes' S3 listeners (with `ring` and `s3`).
    pub(crate) s3_peers: Vec<crate::peers::Peer>,
    /// Certificates for HTTPS, when it listens.
    pub(crate) tls: Option<crate::tls::Settings>,
    /// The S3 API's settings, when it listens.
    pub(crate) s3: Option<crate::s3::settings::Settings>,
    pub(crate) tls_handshake_timeout_ms: u64,
    pub(crate) allow_anonymous_writes: bool,
    pub(crate) data_dir: PathBuf,
    pub(crate) cores: CoreSet,
    pub(crate) header_bytes_max: usize,
    pub(crate) target_bytes_max: usize,
    pub(crate) body_bytes_max: u64,
    pub(crate) cache_bytes_max: u64,
    pub(crate) connections_max_per_shard: usize,
    pub(crate) header_timeout_ms: u64,
    pub(crate) idle_timeout_ms: u64,
    pub(crate) body_timeout_ms: u64,
    pub(crate) access_log: bool,
    pub(crate) send_timeout_ms: u64,
    pub(crate) shutdown_grace_ms: u64,
    pub(crate) drain_ms: u64,
    pub(crate) read_token: Option<String>,
    pub(crate) write_token: Option<String>,
    pub(crate) log_level: String,
    pub(crate) log_format: LogFormat,
    pub(crate) body_flush: BodyFlush,
    pub(crate) file_workers: u32,
}

impl Config {
    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub(crate) fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
    pub(crate) fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
    pub(crate) fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_handshake_timeout_ms)
    }
}

impl RawConfig {
    /// Fills every field still unset from `file`.
    fn or(self, file: RawConfig) -> RawConfig {
        RawConfig {
            config: self.config,
            listen: if self.listen.is_empty() { file.listen } else { self.listen },
            listen_tls: if self.listen_tls.is_empty() { file.listen_tls } else { self.listen_tls },
            tls_cert: if self.tls_cert.is_empty() { file.tls_cert } else { self.tls_cert },
            tls_key: if self.tls_key.is_empty() { file.tls_key } else { self.tls_key },
            tls_self_signed: self.tls_self_signed || file.tls_self_signed,
            s3_listen: if self.s3_listen.is_empty() { file.s3_listen } else { self.s3_listen },
            s3_listen_tls: if self.s3_listen_tls.is_empty() { file.s3_listen_tls } else { self.s3_listen_tls },
            s3_credentials: self.s3_credentials.or(file.s3_credentials),
            s3_region: self.s3_region.or(file.s3_region),
            s3_domain: self.s3_domain.or(file.s3_domain),
            s3_anonymous_reads: self.s3_anonymous_reads || file.s3_anonymous_reads,
            s3_upload_expiry_secs: self.s3_upload_expiry_secs.or(file.s3_upload_expiry_secs),
            node_name: self.node_name.or(file.node_name),
            ring: self.ring.or(file.ring),
            peers: self.peers.or(file.peers),
            s3_peers: self.s3_peers.or(file.s3_peers),
            tls_unknown_sni: self.tls_unknown_sni.or(file.tls_unknown_sni),
            tls_handshake_timeout_ms: self.tls_handshake_timeout_ms.or(file.tls_handshake_timeout_ms),
            allow_anonymous_writes: self.allow_anonymous_writes || file.allow_anonymous_writes,
            data_dir: self.data_dir.or(file.data_dir),
            cores: self.cores.or(file.cores),
            header_bytes_max: self.header_bytes_max.or(file.header_bytes_max),
            target_bytes_max: self.target_bytes_max.or(file.target_bytes_max),
            body_bytes_max: self.body_bytes_max.or(file.body_bytes_max),
            cache_bytes_max: self.cache_bytes_max.or(file.cache_bytes_max),
            connections_max_per_shard: self.connections_max_per_shard.or(file.connections_max_per_shard),
            header_timeout_ms: self.header_timeout_ms.or(file.header_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(file.idle_timeout_ms),
            body_timeout_ms: self.body_timeout_ms.or(file.body_timeout_ms),
            access_log: self.access_log || file.access_log,
            send_timeout_ms: self.send_timeout_ms.or(file.send_timeout_ms),
            shutdown_grace_ms: self.shutdown_grace_ms.or(file.shutdown_grace_ms),
            drain_ms: self.drain_ms.or(file.drain_ms),
            read_token: self.read_token.or(file.read_token),
            write_token: self.write_token.or(file.write_token),
            log_level: self.log_level.or(file.log_level),
            log_format: self.log_format.or(file.log_format),
            body_flush: self.body_flush.or(file.body_flush),
            file_workers: self.file_workers.or(file.file_workers),
        }
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Config, String> {
        let raw = match &raw.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
                let file: RawConfig =
                    toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))?;
                raw.or(file)
            }
            None => raw,
        };
        let positive = |name: &str, value: Option<u64>, default: u64| -> Result<u64, String> {
            match value.unwrap_or(default) {
                0 => Err(format!("{name} must be greater than 0")),
                v => Ok(v),
            }
        };
        let cores: CoreSet = match raw.cores.as_deref() {
            Some(text) => text.parse().map_err(|e| format!("--cores: {e}"))?,
            None => CoreSet::All,
        };
        let log_format = match raw.log_format.as_deref().unwrap_or("human") {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => return Err(format!("--log-format must be `human` or `json`, not `{other}`")),
        };
        let body_flush = match raw.body_flush.as_deref().unwrap_or("auto") {
            "auto" => BodyFlush::Auto,
            "fdatasync" => BodyFlush::Fdatasync,
            other => return Err(format!("--body-flush must be `auto` or `fdatasync`, not `{other}`")),
        };
        let header_bytes_max = positive("header-bytes-max", raw.header_bytes_max.map(|v| v as u64), 16 * 1024)?;
        if header_bytes_max < 1024 {
            return Err("header-bytes-max must be at least 1024".to_string());
        }
        let write_token = raw.write_token.filter(|t| !t.is_empty());
        let mut listen = Vec::new();
        for text in if raw.listen.is_empty() { vec![crate::listen::DEFAULT.to_string()] } else { raw.listen } {
            if text != "none" {
                listen.extend(crate::listen::parse(&text)?);
            }
        }
        let s3_tls = !raw.s3_listen_tls.is_empty();
        let (tls, listen_tls) = crate::tls::settings::from_flags(
            raw.tls_cert,
            raw.tls_key,
            raw.tls_self_signed,
            raw.tls_unknown_sni,
            raw.listen_tls,
            s3_tls,
        )?;
        if s3_tls && tls.is_none() {
            return Err("--s3-listen-tls needs a certificate: --tls-cert and --tls-key (or --tls-self-signed)".into());
        }
        let s3 = crate::s3::settings::Settings::from_raw(
            &raw.s3_listen,
            &raw.s3_listen_tls,
            raw.s3_credentials.as_deref(),
            raw.s3_region,
            raw.s3_domain,
            raw.s3_anonymous_reads,
            raw.s3_upload_expiry_secs,
        )?;
        if listen.is_empty() && listen_tls.is_empty() && s3.is_none() {
            return Err("--listen none leaves nothing to listen on: give --listen-tls with a certificate".to_string());
        }
        let every: Vec<SocketAddr> = listen.iter().chain(&listen_tls).copied().collect();
        crate::listen::check_exposure(&every, write_token.is_some(), raw.allow_anonymous_writes)?;
        let node_name = match raw.node_name.filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "percore".to_string()),
        };
        if !node_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(format!("--node-name `{node_name}`: use letters, digits, `-`, `_` and `.` only"));
        }
        let ring = raw.ring.as_deref().map(|spec| crate::ring::Ring::parse(spec, &node_name)).transpose()?;
        let peers =
            raw.peers.as_deref().map(|spec| crate::peers::parse(spec, "--peers")).transpose()?.unwrap_or_default();
        if !peers.is_empty() && ring.is_none() {
            return Err("--peers is for the nodes of a --ring: give --ring too".to_string());
        }
        let s3_peers = crate::s3::settings::ring_peers(ring.as_ref(), s3.as_ref(), raw.s3_peers.as_deref())?;
        Ok(Config {
            s3,
            node_name,
            ring,
            peers,
            s3_peers,
            listen,
            listen_tls,
            tls,
            tls_handshake_timeout_ms: positive("tls-handshake-timeout-ms", raw.tls_handshake_timeout_ms, 10_000)?,
            allow_anonymous_writes: raw.allow_anonymous_writes,
            data_dir: raw.data_dir.unwrap_or_else(|| PathBuf::from("data")),
            cores,
            header_bytes_max: header_bytes_max as usize,
            target_bytes_max: positive("target-bytes-max", raw.target_bytes_max.map(|v| v as u64), 4096)? as usize,
            body_bytes_max: raw.body_bytes_max.unwrap_or(1 << 30),
            cache_bytes_max: raw.cache_bytes_max.unwrap_or(64 << 20),
            connections_max_per_shard: positive(
                "connections-max-per-shard",
                raw.connections_max_per_shard.map(|v| v as u64),
                10_000,
            )? as usize,
            header_timeout_ms: positive("header-timeout-ms", raw.header_timeout_ms, 10_000)?,
            idle_timeout_ms: positive("idle-timeout-ms", raw.idle_timeout_ms, 60_000)?,
            body_timeout_ms: positive("body-timeout-ms", raw.body_timeout_ms, 30_000)?,
            access_log: raw.access_log,
            send_timeout_ms: positive("send-timeout-ms", raw.send_timeout_ms, 30_000)?,
            shutdown_grace_ms: positive("shutdown-grace-ms", raw.shutdown_grace_ms, 10_000)?,
            drain_ms: raw.drain_ms.unwrap_or(0),
            read_token: raw.read_token.filter(|t| !t.is_empty()),
            write_token,
            log_level: raw.log_level.unwrap_or_else(|| "info".to_string()),
            log_format,
            body_flush,
            file_workers: positive("file-workers", raw.file_workers.map(u64::from), 128)? as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let config = Config::try_from(RawConfig::default()).unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:8080".parse().unwrap()], "loopback only by default");
        assert_eq!(config.data_dir, PathBuf::from("data"));
        assert_eq!(config.cores, CoreSet::All);
        assert_eq!(config.header_bytes_max, 16384);
        assert_eq!(config.file_workers, 128);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("percore.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ndata-dir = \"/srv/files\"\ncores = \"1\"\n").unwrap();
        let raw = RawConfig { config: Some(path.clone()), listen: vec!["127.0.0.1:9100".into()], ..Default::default() };
        let config = Config::try_from(raw).unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:9100".parse().unwrap()], "the flag wins");
        assert_eq!(config.data_dir, PathBuf::from("/srv/files"), "the file fills the rest");
        assert_eq!(config.cores, CoreSet::Count(1));
        std::fs::write(&path, "listen = [\"127.0.0.1:9000\", \"[::1]:9001\"]\n").unwrap();
        let config = Config::try_from(RawConfig { config: Some(path), ..Default::default() }).unwrap();
        assert_eq!(config.listen.len(), 2, "a list in the file");
    }

    #[test]
    fn wide_listening_needs_a_token_or_an_explicit_yes() {
        let raw = || RawConfig { listen: vec![":8080".into()], ..Default::default() };
        let err = Config::try_from(raw()).unwrap_err();
        assert!(err.contains("--allow-anonymous-writes"), "{err}");
        let token = RawConfig { write_token: Some("t".into()), ..raw() };
        assert_eq!(Config::try_from(token).unwrap().listen, vec!["0.0.0.0:8080".parse().unwrap()]);
        assert!(Config::try_from(RawConfig { allow_anonymous_writes: true, ..raw() }).is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        let err = Config::try_from(RawConfig { cores: Some("x".into()), ..Default::default() }).unwrap_err();
        assert!(err.contains("--cores"), "{err}");
        let err = Config::try_from(RawConfig { idle_timeout_ms: Some(0), ..Default::default() }).unwrap_err();
        assert!(err.contains("idle-timeout-ms"), "{err}");
        let err = Config::try_from(RawConfig { body_flush: Some("never".into()), ..Default::default() }).unwrap_err();
        assert!(err.contains("--body-flush"), "{err}");
        let err = Config::try_from(RawConfig { file_workers: Some(0), ..Default::default() }).unwrap_err();
        assert!(err.contains("file-workers"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let err = Config::try_from(RawConfig { config: Some(path), ..Default::default() }).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    /// A node of a ring serves S3 knowing every other node's S3 listener
    /// (the rules: `s3::settings::ring_peers`).
    #[test]
    fn s3_on_a_ring_needs_its_s3_peers() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, "AKID secret\n").unwrap();
        let raw = |peers: Option<&str>| RawConfig {
            s3_listen: vec!["127.0.0.1:9000".into()],
            s3_credentials: Some(keys.clone()),
            node_name: Some("a".into()),
            ring: Some("a=1,b=2".into()),
            s3_peers: peers.map(String::from),
            ..Default::default()
        };
        let err = Config::try_from(raw(None)).unwrap_err();
        assert!(err.contains("--s3-listen with --ring needs --s3-peers"), "{err}");
        let config = Config::try_from(raw(Some("b=127.0.0.2:9000"))).unwrap();
        assert_eq!(config.s3_peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
    }
}
