//! One connection's TLS session (rustls' buffered API), driven by the
//! connection's own shard: ciphertext in from the multishot receive,
//! plaintext out to the HTTP parser, plaintext in from the handlers,
//! records out to the socket. No thread pool. The copies are the buffered
//! API's: a received piece is copied into rustls' record buffer and
//! decrypted there, then into the connection's buffer (which the parser
//! needs anyway); a response is copied into a record and encrypted there,
//! then out of rustls into the one buffer that is sent. rustls' unbuffered
//! API would drop one copy each way, receiving into and sealing straight
//! out of buffers percore owns.
//!
//! Kernel TLS (the `tls` ULP, keys handed over after the handshake so that
//! files splice again) would slot in here: the session would end after
//! the handshake and `Wire` would go back to its plain path. It is not
//! built: no kernel this was developed on offers the ULP to test it on.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{HandshakeKind, ServerConfig, ServerConnection};

/// Why a handshake did not complete.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The client spoke plain HTTP to the TLS port.
    PlainHttp,
    /// The client's TLS was refused (an alert went back, if the socket
    /// still worked).
    Tls(rustls::Error),
    /// The client closed, the socket failed, or the handshake timed out.
    Io(io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::PlainHttp => f.write_str("plain HTTP sent to the TLS port"),
            HandshakeError::Tls(err) => write!(f, "{err}"),
            HandshakeError::Io(err) => write!(f, "{err}"),
        }
    }
}

/// The TLS state of one connection.
pub(crate) struct Session {
    conn: RefCell<ServerConnection>,
    /// The client sent close_notify.
    peer_closed: Cell<bool>,
    /// close_notify has been queued.
    closing: Cell<bool>,
}

impl Session {
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<Session, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        // Responses are sealed in pieces whose size the caller bounds
        // (`wire`), so rustls need not bound its queue of records too.
        conn.set_buffer_limit(None);
        Ok(Session { conn: RefCell::new(conn), peer_closed: Cell::new(false), closing: Cell::new(false) })
    }

    pub(crate) fn handshaking(&self) -> bool {
        self.conn.borrow().is_handshaking()
    }

    /// Whether the handshake resumed a session (a ticket).
    pub(crate) fn resumed(&self) -> bool {
        self.conn.borrow().handshake_kind() == Some(HandshakeKind::Resumed)
    }

    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed.get()
    }

    /// Takes received ciphertext and appends the plaintext it carries to
    /// `plain`. An error ends the session (rustls has queued the alert,
    /// which [`Session::take_output`] returns).
    pub(crate) fn absorb(&self, mut data: &[u8], plain: &mut Vec<u8>) -> Result<(), rustls::Error> {
        let mut conn = self.conn.borrow_mut();
        while !data.is_empty() {
            match conn.read_tls(&mut data) {
                Ok(0) => return Err(rustls::Error::General("the TLS input buffer took nothing".into())),
                Ok(_) => {}
                Err(err) => return Err(rustls::Error::General(format!("TLS input refused: {err}"))),
            }
            let state = conn.process_new_packets()?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                conn.reader()
                    .read_exact(&mut plain[start..])
                    .map_err(|e| rustls::Error::General(format!("TLS plaintext: {e}")))?;
            }
            if state.peer_has_closed() {
                self.peer_closed.set(true);
            }
        }
        Ok(())
    }

    /// Seals `plain` into records, queued for [`Session::take_output`].
    pub(crate) fn seal(&self, plain: &[u8]) -> io::Result<()> {
        self.conn.borrow_mut().writer().write_all(plain)
    }

    /// Queues a close_notify alert (once).
    pub(crate) fn close_notify(&self) {
        if !self.closing.replace(true) {
            self.conn.borrow_mut().send_close_notify();
        }
    }

    /// Moves every queued record into `out` (cleared first); false if
    /// there were none.
    pub(crate) fn take_output(&self, out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut conn = self.conn.borrow_mut();
        while conn.wants_write() {
            if conn.write_tls(out).is_err() {
                break;
            }
        }
        !out.is_empty()
    }
}

/// Whether the first bytes of a connection look like plain HTTP rather
/// than a TLS record (which starts with content type 22, a handshake).
pub(crate) fn looks_like_plain_http(first: &[u8]) -> bool {
    first.first().is_some_and(u8::is_ascii_uppercase)
}
