//! HTTPS for the tests: a private CA that issues certificates (ECDSA P-256
//! or RSA 2048, from rcgen) written as PEM files, and a rustls client that
//! trusts it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{read_response, Response};

/// A test CA and the files it issues, in a temporary directory.
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

/// Which kind of key a certificate gets.
#[derive(Clone, Copy)]
pub(crate) enum Key {
    Ecdsa,
    Rsa,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "percore test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki { dir, issuer: Issuer::new(params, key) }
    }

    /// The CA certificate's file (what clients trust).
    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `names` with a `key` of that kind, as
    /// `<stem>.crt` (the leaf, then the CA: a chain) and `<stem>.key`.
    pub(crate) fn issue(&self, stem: &str, names: &[&str], key: Key) -> (PathBuf, PathBuf) {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let pair = match key {
            Key::Ecdsa => KeyPair::generate().unwrap(),
            Key::Rsa => KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
        };
        let cert = params.signed_by(&pair, &self.issuer).unwrap();
        let (crt, keyfile) = (self.dir.path().join(format!("{stem}.crt")), self.dir.path().join(format!("{stem}.key")));
        let ca = std::fs::read_to_string(self.ca()).unwrap();
        std::fs::write(&crt, format!("{}{ca}", cert.pem())).unwrap();
        std::fs::write(&keyfile, pair.serialize_pem()).unwrap();
        (crt, keyfile)
    }
}

/// A client config that trusts `ca` (a PEM file), speaking HTTP/1.1,
/// with no session resumption (so each handshake shows the certificate
/// the server presents now).
pub(crate) fn client(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// An HTTPS connection to `addr` for `name` (handshake done).
pub(crate) fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(config.clone(), ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("a TLS handshake");
    }
    stream
}

/// Sends `raw` on `stream` and reads one response.
pub(crate) fn exchange(stream: &mut StreamOwned<ClientConnection, TcpStream>, raw: &[u8]) -> Response {
    stream.write_all(raw).unwrap();
    stream.flush().unwrap();
    read_response(stream, raw.starts_with(b"HEAD ")).expect("a response")
}

/// The DER of the certificate the server presented.
pub(crate) fn presented(stream: &StreamOwned<ClientConnection, TcpStream>) -> Vec<u8> {
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}
