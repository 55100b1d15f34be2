//! HTTPS material: certificates and keys read from PEM files (or made up
//! for development with `--tls-self-signed`), checked once by the control
//! thread, and turned by each shard into its own rustls `ServerConfig`
//! (`shard_config`): its own parsed keys, its own ticketer, nothing shared
//! with another shard on the handshake path. The connection's TLS session
//! itself lives at the HTTP seam (`http::wire`).
//!
//! Crypto provider: `aws-lc-rs`. It needs a C compiler to build (no cmake
//! binary on x86-64 Linux: measured here, none installed) and built with
//! rustls in 45 s on two cores against ring's 20 s; rustls 0.23.48
//! deprecates its ring provider ("no support for post-quantum
//! algorithms"), and aws-lc-rs offers X25519MLKEM768 key exchange besides
//! X25519 and P-256, with AES-GCM and P-256 in assembly. TLS 1.3 and 1.2
//! with rustls' default suites, all AEAD with forward secrecy (AES-GCM,
//! ChaCha20-Poly1305; ECDHE).

pub(crate) mod control;
pub(crate) mod resolve;
pub(crate) mod settings;
pub(crate) mod tickets;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerConfig};
use rustls::sign::CertifiedKey;

pub(crate) use resolve::UnknownSni;
use tickets::{TicketKeys, Ticketer};

/// The TLS settings as configured.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// (certificate chain, key) PEM files; the first is the default.
    pub(crate) pairs: Vec<(PathBuf, PathBuf)>,
    /// Make a self-signed certificate at start (development).
    pub(crate) self_signed: bool,
    pub(crate) unknown_sni: UnknownSni,
}

/// One certificate chain with its key and the DNS names it is valid for.
pub(crate) struct Pair {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    names: Vec<String>,
}

impl Clone for Pair {
    fn clone(&self) -> Pair {
        Pair { chain: self.chain.clone(), key: self.key.clone_key(), names: self.names.clone() }
    }
}

/// Everything a shard needs for its TLS config: plain data, cloned into
/// every shard at start, at each reload and at each ticket-key rotation.
#[derive(Clone)]
pub(crate) struct Material {
    pub(crate) pairs: Vec<Pair>,
    pub(crate) unknown_sni: UnknownSni,
    pub(crate) tickets: TicketKeys,
}

/// aws-lc-rs with the server's order of suites: AES-128-GCM with SHA-256
/// first (TLS 1.3 and 1.2), then the rest in rustls' order. SHA-256 has
/// instructions on current x86 and ARM CPUs and SHA-384 has none: with
/// `TLS13_AES_256_GCM_SHA384`, which clients list first, a quarter of a
/// resumed handshake's server time went to SHA-512 blocks (perf, this
/// machine); AES-128 also seals a quarter faster than AES-256.
fn provider() -> Arc<CryptoProvider> {
    use rustls::CipherSuite as S;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let preferred = |suite: S| {
        matches!(
            suite,
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    };
    provider.cipher_suites.sort_by_key(|s| !preferred(s.suite()));
    Arc::new(provider)
}

/// Reads and checks every configured pair (or makes the self-signed one,
/// with a line for the operator saying where its certificate went).
pub(crate) fn load(settings: &Settings) -> Result<(Vec<Pair>, Option<String>), String> {
    if settings.pairs.is_empty() && settings.self_signed {
        let (pair, note) = self_signed()?;
        return Ok((vec![pair], Some(note)));
    }
    let pairs = settings.pairs.iter().map(|(cert, key)| load_pair(cert, key)).collect::<Result<Vec<_>, _>>()?;
    Ok((pairs, None))
}

/// One chain and its key, checked to belong together.
fn load_pair(cert: &Path, key: &Path) -> Result<Pair, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!("cannot read a private key (PKCS#8, PKCS#1 RSA or SEC1 EC, in PEM) from {}: {e}", key.display())
    })?;
    CertifiedKey::from_der(chain.clone(), private.clone_key(), &provider()).map_err(|e| {
        format!(
            "the key in {} does not fit the certificate in {} (or is of a kind not supported): {e}",
            key.display(),
            cert.display()
        )
    })?;
    let leaf = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|e| format!("cannot parse the first certificate in {}: {e}", cert.display()))?;
    let names = leaf.valid_dns_names().map(str::to_string).collect();
    Ok(Pair { chain, key: private, names })
}

/// A development certificate for localhost, 127.0.0.1 and ::1 (ECDSA
/// P-256), its PEM written to the temporary directory so that clients can
/// trust it; the note says where and gives its SHA-256 fingerprint.
fn self_signed() -> Result<(Pair, String), String> {
    let (pair, pem) = made_up()?;
    let path = std::env::temp_dir().join(format!("percore-self-signed-{}.pem", std::process::id()));
    std::fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let note = format!(
        "TLS: self-signed certificate for localhost, 127.0.0.1 and ::1 (development only), SHA-256 fingerprint {}; written to {} (curl --cacert {})",
        fingerprint(&pair.chain[0]),
        path.display(),
        path.display()
    );
    Ok((pair, note))
}

/// A self-signed pair for localhost, and its certificate in PEM.
fn made_up() -> Result<(Pair, String), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| format!("cannot make a certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let pair = Pair { chain: vec![made.cert.der().clone()], key, names: vec!["localhost".into()] };
    Ok((pair, made.cert.pem()))
}

/// A server config with a made-up certificate (the fuzz target's).
pub(crate) fn made_up_config() -> Arc<ServerConfig> {
    let (pair, _) = made_up().expect("a made-up certificate");
    let tickets = TicketKeys::new(tickets::TicketKey::generate().expect("randomness"));
    shard_config(&Material { pairs: vec![pair], unknown_sni: UnknownSni::Default, tickets }).expect("a config")
}

/// `AB:CD:…`: a certificate's SHA-256, as browsers and `openssl x509
/// -fingerprint -sha256` show it.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A shard's own server config from its copy of the material.
pub(crate) fn shard_config(material: &Material) -> Result<Arc<ServerConfig>, String> {
    let provider = provider();
    let keys = material
        .pairs
        .iter()
        .map(|p| CertifiedKey::from_der(p.chain.clone(), p.key.clone_key(), &provider).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot load a TLS key: {e}"))?;
    let names: Vec<Vec<String>> = material.pairs.iter().map(|p| p.names.clone()).collect();
    let resolver = resolve::ByName::new(keys, &names, material.unknown_sni);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    // Resumption by tickets only (they open on every shard); a session-ID
    // cache would be per shard and miss whenever a client lands elsewhere.
    config.ticketer = Arc::new(Ticketer::new(&material.tickets));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(Arc::new(config))
}
