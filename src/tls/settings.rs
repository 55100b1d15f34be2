//! The TLS settings from the daemon's flags: which certificates, whether
//! to make one, what an unknown server name gets, and where HTTPS listens.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The TLS settings and addresses: HTTPS listens when given certificates
/// (or told to make one), on `listen_tls` or else the default TLS address.
pub(crate) fn from_flags(
    certs: Vec<PathBuf>,
    keys: Vec<PathBuf>,
    self_signed: bool,
    unknown_sni: Option<String>,
    listen_tls: Vec<String>,
    s3_tls: bool,
) -> Result<(Option<super::Settings>, Vec<SocketAddr>), String> {
    if certs.len() != keys.len() {
        return Err(format!(
            "--tls-cert and --tls-key come in pairs: {} certificate(s), {} key(s)",
            certs.len(),
            keys.len()
        ));
    }
    let unknown_sni = match unknown_sni.as_deref().unwrap_or("default") {
        "default" => super::UnknownSni::Default,
        "refuse" => super::UnknownSni::Refuse,
        other => return Err(format!("--tls-unknown-sni must be `default` or `refuse`, not `{other}`")),
    };
    if certs.is_empty() && !self_signed {
        if !listen_tls.is_empty() {
            return Err(
                "--listen-tls needs a certificate: --tls-cert and --tls-key (or --tls-self-signed for development)"
                    .to_string(),
            );
        }
        return Ok((None, Vec::new()));
    }
    let mut addrs = Vec::new();
    // The default HTTPS address only when the certificates are for it: not
    // when they are for the S3 API's HTTPS alone.
    let default = if s3_tls { vec![] } else { vec![crate::listen::DEFAULT_TLS.to_string()] };
    for text in if listen_tls.is_empty() { default } else { listen_tls } {
        addrs.extend(crate::listen::parse(&text)?);
    }
    let pairs = certs.into_iter().zip(keys).collect();
    Ok((Some(super::Settings { pairs, self_signed, unknown_sni }), addrs))
}
