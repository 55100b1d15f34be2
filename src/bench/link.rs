//! A benchmark connection's byte path: plain TCP, or TLS through a rustls
//! client session driven on the client shard's ring (the same way the
//! daemon drives its own, so an HTTPS run measures the server, not a
//! blocking client). Also the client TLS config: the server's certificate
//! verified against `--cacert` (or the system's roots), or not at all
//! with `--insecure`; session resumption on or off.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use percore_io::{time, IoBuf, TcpStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme};

/// Where certificates are trusted from when no `--cacert` is given.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Longest wait for any one receive.
const RECV_TIMEOUT: Duration = Duration::from_secs(30);

/// How a client shard speaks TLS (plain data; each shard builds its own
/// config from it, with its own session cache).
#[derive(Clone, Debug)]
pub(crate) struct TlsPlan {
    pub(crate) server_name: ServerName<'static>,
    /// Trusted roots, DER; empty with `insecure`.
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) insecure: bool,
    /// Resume sessions with tickets (a new connection per request then
    /// measures resumed handshakes).
    pub(crate) resume: bool,
    /// Offer the post-quantum hybrid X25519MLKEM768 first (as current
    /// browsers do); else X25519 (then P-256), as OpenSSL 3.0's curl does.
    pub(crate) hybrid: bool,
    /// Only this TLS version (`1.2` or `1.3`); else both, 1.3 preferred.
    pub(crate) version: Option<String>,
}

impl TlsPlan {
    pub(crate) fn new(
        host: &str,
        cacert: Option<&str>,
        insecure: bool,
        resume: bool,
        hybrid: bool,
        version: Option<String>,
    ) -> Result<TlsPlan, String> {
        if version.as_deref().is_some_and(|v| v != "1.2" && v != "1.3") {
            return Err("--tls-version must be 1.2 or 1.3".into());
        }
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name).trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| format!("server name {name}: {e}"))?;
        let roots = if insecure {
            Vec::new()
        } else {
            let file = cacert.unwrap_or(SYSTEM_ROOTS);
            CertificateDer::pem_file_iter(file).and_then(|certs| certs.collect::<Result<Vec<_>, _>>()).map_err(|e| {
                format!("cannot read trusted certificates from {file}: {e} (give --cacert FILE, or --insecure)")
            })?
        };
        Ok(TlsPlan { server_name, roots, insecure, resume, hybrid, version })
    }

    /// This shard's client config.
    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if !self.hybrid {
            // P-256 listed second, never used for a key share while the
            // server takes X25519: OpenSSL refuses an ECDSA P-256
            // certificate in TLS 1.2 to a client whose groups lack P-256.
            use rustls::crypto::aws_lc_rs::kx_group::{SECP256R1, X25519};
            provider.kx_groups = vec![X25519, SECP256R1];
        }
        let versions: &[&rustls::SupportedProtocolVersion] = match self.version.as_deref() {
            Some("1.2") => &[&rustls::version::TLS12],
            Some(_) => &[&rustls::version::TLS13],
            None => rustls::DEFAULT_VERSIONS,
        };
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("the default provider supports both versions");
        let mut config = if self.insecure {
            let algorithms = builder.crypto_provider().signature_verification_algorithms;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(self.roots.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !self.resume {
            config.resumption = Resumption::disabled();
        }
        Arc::new(config)
    }
}

/// `--insecure`: accepts any certificate (signatures are still checked
/// against the certificate presented, with the provider's algorithms, so
/// the handshake costs the same).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// One connection's bytes.
pub(crate) struct Link {
    stream: TcpStream,
    tls: Option<ClientConnection>,
    /// Ciphertext received (TLS only), reused.
    scratch: Vec<u8>,
}

impl Link {
    /// Connects, and with `tls` completes the handshake; the flag says
    /// whether it resumed a session.
    pub(crate) async fn open(
        addr: std::net::SocketAddr,
        tls: Option<(&Arc<ClientConfig>, &ServerName<'static>)>,
    ) -> Result<(Link, bool), &'static str> {
        let stream = TcpStream::connect(addr).await.map_err(|_| "connect failed")?;
        let _ = stream.set_nodelay(true);
        let Some((config, name)) = tls else { return Ok((Link { stream, tls: None, scratch: Vec::new() }, false)) };
        let conn = ClientConnection::new(config.clone(), name.clone()).map_err(|_| "TLS set-up failed")?;
        let mut link = Link { stream, tls: Some(conn), scratch: Vec::with_capacity(32 * 1024) };
        while link.tls.as_ref().is_some_and(|c| c.is_handshaking()) {
            link.flush().await?;
            if !link.tls.as_ref().is_some_and(|c| c.is_handshaking()) {
                break;
            }
            link.absorb(&mut Vec::new()).await.map_err(|_| "TLS handshake failed")?;
        }
        link.flush().await?;
        let resumed = link.tls.as_ref().and_then(|c| c.handshake_kind()) == Some(HandshakeKind::Resumed);
        Ok((link, resumed))
    }

    /// Sends all of `out` (sealed, over TLS); gives the buffer back.
    pub(crate) async fn send_all(&mut self, out: Vec<u8>) -> (Result<(), &'static str>, Vec<u8>) {
        if self.tls.is_none() {
            let (result, back) = self.stream.send_all(out).await;
            return (result.map_err(|_| "send failed"), back);
        }
        // rustls takes at most its buffer limit (64 KiB) at a time: seal
        // what it takes, send that, and go on.
        let mut done = 0;
        while done < out.len() {
            let conn = self.tls.as_mut().expect("a TLS link");
            match conn.writer().write(&out[done..]) {
                Ok(n) if n > 0 => done += n,
                _ => return (Err("TLS seal failed"), out),
            }
            if let Err(kind) = self.flush().await {
                return (Err(kind), out);
            }
        }
        (Ok(()), out)
    }

    /// Sends whatever the TLS session has queued.
    async fn flush(&mut self) -> Result<(), &'static str> {
        let Some(conn) = &mut self.tls else { return Ok(()) };
        let mut sealed = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut sealed).map_err(|_| "TLS write failed")?;
        }
        if sealed.is_empty() {
            return Ok(());
        }
        let (result, _) = self.stream.send_all(sealed).await;
        result.map_err(|_| "send failed")
    }

    /// Receives once into the free capacity at the end of `buf`
    /// (plaintext, over TLS: decrypted there).
    pub(crate) async fn fill(&mut self, buf: &mut Vec<u8>) -> Result<(), &'static str> {
        if self.tls.is_some() {
            let before = buf.len();
            while buf.len() == before {
                self.absorb(buf).await?;
                self.flush().await?;
            }
            return Ok(());
        }
        let owned = std::mem::take(buf);
        let len = owned.len();
        match time::timeout(RECV_TIMEOUT, self.stream.recv(owned.slice(len..))).await {
            Ok((result, back)) => {
                *buf = back.into_inner();
                match result {
                    Ok(n) if n > 0 => Ok(()),
                    Ok(_) => Err("connection closed"),
                    Err(_) => Err("receive failed"),
                }
            }
            // The timed-out receive was cancelled with the buffer; the
            // connection ends here.
            Err(_) => Err("response timed out"),
        }
    }

    /// Receives ciphertext once and appends the plaintext it carries to
    /// `plain`.
    async fn absorb(&mut self, plain: &mut Vec<u8>) -> Result<(), &'static str> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let capacity = scratch.capacity().max(16 * 1024);
        scratch.reserve(capacity);
        let received = time::timeout(RECV_TIMEOUT, self.stream.recv(scratch.slice(0..capacity))).await;
        let (result, back) = received.map_err(|_| "response timed out")?;
        let back = back.into_inner();
        let n = match result {
            Ok(0) => return Err("connection closed"),
            Ok(n) => n,
            Err(_) => return Err("receive failed"),
        };
        let conn = self.tls.as_mut().expect("a TLS link");
        let mut data = &back[..n];
        while !data.is_empty() {
            conn.read_tls(&mut data).map_err(|_| "TLS input refused")?;
            let state = conn.process_new_packets().map_err(|_| "TLS error")?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                conn.reader().read_exact(&mut plain[start..]).map_err(|_| "TLS read failed")?;
            }
            if state.peer_has_closed() && ready == 0 && data.is_empty() {
                self.scratch = back;
                return Err("connection closed");
            }
        }
        self.scratch = back;
        Ok(())
    }
}
