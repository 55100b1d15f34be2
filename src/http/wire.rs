//! The connection's bytes: the one seam between HTTP and the socket under
//! it. Everything above (`conn`, `reply`, the handlers) reads and writes
//! through a [`Wire`] and its [`Incoming`] and does not know whether the
//! socket is plain TCP or carries a TLS session (`tls`): with one, what
//! arrives is decrypted before it is handed up and what is sent is sealed
//! first, and files are read and sealed in pieces instead of spliced.
//! Every send is bounded by the send timeout and counted (plaintext bytes
//! sent, here and in the metrics; whether one failed).

use std::cell::{Cell, RefCell};
use std::io;
use std::time::Duration;

use bytes::Bytes;
use percore_io::{BufRing, File, IoBuf, Pipe, RecvStream, TcpStream};

use super::tls::{self, HandshakeError, Session};
use super::within;

/// Responses up to this size are joined into one buffer and sent with
/// `IORING_OP_SEND` rather than `WRITEV` (which on a socket takes the generic
/// VFS write path).
pub(crate) const SEND_JOIN_BYTES_MAX: usize = 16 * 1024;

/// Bytes of a file spliced under one send timeout: the slowest reader kept
/// is one that takes a piece per timeout (1 MiB per 30 s by default).
const SEND_FILE_PIECE: u64 = 1 << 20;

/// Bytes of a file read and sealed at a time over TLS: four full records,
/// and a bound on the memory a download holds (this plus its records).
const SEALED_FILE_PIECE: usize = 64 * 1024;

/// How long, and how many bytes, a closing connection's unread input is
/// read and dropped for (nginx's lingering close), after its write side is
/// shut down.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 8 << 20;

/// What the client sends, as it arrives (decrypted, over TLS).
pub(crate) struct Incoming<'a> {
    recv: RecvStream<'a>,
    wire: &'a Wire,
}

/// One connection's stream.
pub(crate) struct Wire {
    stream: TcpStream,
    /// The TLS session, on a TLS listener's connection (boxed, as every
    /// TLS-only future below: a plain connection's task does not carry
    /// their size).
    tls: Option<Box<Session>>,
    send_timeout: Duration,
    /// Bytes sent so far.
    sent: Cell<u64>,
    /// Set by the first send that failed or timed out: the connection is
    /// unusable from then on.
    broken: Cell<bool>,
}

impl Wire {
    /// A connection whose bytes are carried by `tls` when given.
    pub(crate) fn new(stream: TcpStream, tls: Option<Session>, send_timeout: Duration) -> Wire {
        Wire { stream, tls: tls.map(Box::new), send_timeout, sent: Cell::new(0), broken: Cell::new(false) }
    }

    /// The TLS session, if the connection has one.
    pub(crate) fn tls(&self) -> Option<&Session> {
        self.tls.as_deref()
    }

    /// Bytes sent so far on this connection.
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.sent.get()
    }

    /// Whether a send has failed (the connection must close).
    pub(crate) fn broken(&self) -> bool {
        self.broken.get()
    }

    /// Counts a send's outcome (here and in the metrics); passes `sent` on.
    fn count(&self, sent: bool, len: u64) -> bool {
        if sent {
            self.sent.set(self.sent.get() + len);
            crate::metrics::bytes_out(len);
        } else {
            self.broken.set(true);
        }
        sent
    }

    /// The connection's one receive path: a multishot receive that takes a
    /// buffer from the shard's `ring` only when data arrives (an idle
    /// connection holds none) and stays armed between requests.
    pub(crate) fn incoming<'a>(&'a self, ring: &'a BufRing) -> Incoming<'a> {
        Incoming { recv: self.stream.recv_multi(ring), wire: self }
    }

    /// Sends what the TLS session has queued (records, alerts, tickets);
    /// true if there was nothing or it all went out.
    async fn flush_tls(&self) -> bool {
        let Some(session) = &self.tls else { return true };
        let mut out = Vec::new();
        if !session.take_output(&mut out) {
            return true;
        }
        let sent = matches!(within(self.send_timeout, self.stream.send_all(out)).await, Ok((Ok(()), _)));
        if !sent {
            self.broken.set(true);
        }
        sent
    }

    /// Seals `parts` and sends them as one.
    async fn send_sealed(&self, session: &Session, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let sealed = parts.iter().all(|part| session.seal(part).is_ok());
        let sent = sealed && self.flush_tls().await;
        self.count(sent, len as u64)
    }

    /// Sends bytes outside the TLS session (a plain-text 400 to a client
    /// that spoke plain HTTP to the TLS port).
    pub(crate) async fn send_clear(&self, bytes: &'static [u8]) -> bool {
        let sent =
            matches!(within(self.send_timeout, self.stream.send_all(Bytes::from_static(bytes))).await, Ok((Ok(()), _)));
        self.count(sent, bytes.len() as u64)
    }

    /// The plain TCP stream, for another shard to serve (`None` over TLS:
    /// the session stays where it is). Only once its [`Incoming`] has been
    /// halted and drained ([`Incoming::halt`]), so no byte is lost.
    pub(crate) fn into_plain_stream(self) -> Option<TcpStream> {
        self.tls.is_none().then_some(self.stream)
    }

    /// Ends a TLS session with close_notify (nothing to do on plain TCP):
    /// the client then knows the answer was not cut short.
    pub(crate) async fn close(&self) {
        if let Some(session) = &self.tls {
            if !self.broken.get() && !session.handshaking() {
                session.close_notify();
                Box::pin(self.flush_tls()).await;
            }
        }
    }

    /// Sends one buffer (a head, or a head with a small body after it).
    pub(crate) async fn send_one(&self, whole: impl IoBuf) -> bool {
        if let Some(session) = &self.tls {
            return Box::pin(self.send_sealed(session, &[whole.init_bytes()])).await;
        }
        let len = whole.bytes_init() as u64;
        let sent = matches!(within(self.send_timeout, self.stream.send_all(whole)).await, Ok((Ok(()), _)));
        self.count(sent, len)
    }

    /// Sends every part: joined into one buffer when small, else in one
    /// writev.
    pub(crate) async fn send(&self, parts: Vec<Bytes>) -> bool {
        if let Some(session) = &self.tls {
            let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
            return Box::pin(self.send_sealed(session, &parts)).await;
        }
        let len: usize = parts.iter().map(Bytes::len).sum();
        if parts.len() > 1 && len <= SEND_JOIN_BYTES_MAX {
            return self.send_one(parts.concat()).await;
        }
        let sent = matches!(within(self.send_timeout, self.stream.writev_all(parts)).await, Ok((Ok(()), _)));
        self.count(sent, len as u64)
    }

    /// Sends `head` held back (`MSG_MORE`) to leave with the bytes that
    /// follow it: a head alone in a segment is one more wake-up for the
    /// client.
    pub(crate) async fn send_more(&self, head: Vec<u8>) -> bool {
        let len = head.len() as u64;
        if let Some(session) = &self.tls {
            // Sealed now, sent with what follows.
            return self.count(session.seal(&head).is_ok(), len);
        }
        let sent = matches!(within(self.send_timeout, self.stream.send_all_more(head)).await, Ok((Ok(()), _)));
        self.count(sent, len)
    }

    /// Splices `len` bytes of `file` from `offset` (file → pipe → socket,
    /// no copy through user memory), in pieces, each under the send
    /// timeout: a slow reader of a large file is fine as long as it keeps
    /// reading; one that stops is dropped. A pipe comes from `pipes` and
    /// goes back there if it ends empty. False if the connection is
    /// unusable afterwards (short, failed or timed out: the framing is
    /// broken).
    pub(crate) async fn splice(&self, pipes: &RefCell<Vec<Pipe>>, file: &File, offset: u64, len: u64) -> bool {
        if let Some(session) = &self.tls {
            return Box::pin(self.send_file_sealed(session, file, offset, len)).await;
        }
        let popped = pipes.borrow_mut().pop();
        let pipe = match popped {
            Some(pipe) => pipe,
            None => match Pipe::new(1 << 20) {
                Ok(pipe) => pipe,
                Err(_) => return self.count(false, 0),
            },
        };
        let mut done = 0;
        while done < len {
            let piece = (len - done).min(SEND_FILE_PIECE);
            let more = done + piece < len;
            let sent =
                within(self.send_timeout, percore_io::send_file(&self.stream, file, offset + done, piece, &pipe, more))
                    .await;
            match sent {
                Ok(Ok(n)) if n == piece => {
                    self.count(true, n);
                    done += n;
                }
                // The pipe, which may hold bytes, is dropped.
                _ => return self.count(false, 0),
            }
        }
        // The whole span went out and the pipe is empty: reuse it.
        pipes.borrow_mut().push(pipe);
        true
    }

    /// Over TLS: reads `len` bytes of `file` from `offset` a piece at a
    /// time, seals each and sends it under the send timeout. The buffers
    /// are reused from piece to piece.
    async fn send_file_sealed(&self, session: &Session, file: &File, offset: u64, len: u64) -> bool {
        let mut plain: Vec<u8> = Vec::with_capacity(SEALED_FILE_PIECE.min(len as usize));
        let mut out: Vec<u8> = Vec::new();
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(SEALED_FILE_PIECE as u64) as usize;
            plain.clear();
            let (read, piece) = file.read_exact_at(plain.slice(..want), offset + done).await;
            plain = piece.into_inner();
            // A file cut short under the answer breaks its framing.
            if read.is_err() || plain.len() < want || session.seal(&plain[..want]).is_err() {
                return self.count(false, 0);
            }
            session.take_output(&mut out);
            let (sent, back) = match within(self.send_timeout, self.stream.send_all(std::mem::take(&mut out))).await {
                Ok((result, back)) => (result.is_ok(), Some(back)),
                Err(_) => (false, None),
            };
            if !self.count(sent, want as u64) {
                return false;
            }
            out = back.unwrap_or_default();
            done += want as u64;
        }
        true
    }

    /// Half-closes the connection (after close_notify, over TLS) and
    /// discards what the client still sends, briefly and undecrypted, so
    /// that the close that follows is a FIN rather than a reset (which
    /// could destroy the answer in the client's buffers).
    pub(crate) async fn linger(&self, incoming: &mut Incoming<'_>) {
        self.close().await;
        if self.stream.shutdown(percore_io::Shutdown::Write).await.is_err() {
            return;
        }
        let deadline = percore_io::time::loop_now() + LINGER_TIME;
        let mut dropped = 0;
        while dropped < LINGER_BYTES_MAX {
            match percore_io::time::timeout_at(deadline, percore_cores::unless_stopping(incoming.recv.next())).await {
                Ok(Some(Some(Ok(data)))) => dropped += data.len(),
                // End of input, an error, out of time, or the daemon stopping.
                _ => return,
            }
        }
    }
}

impl Incoming<'_> {
    /// Stops receiving: what had already arrived still comes out of
    /// [`Incoming::recv_into`], which then reports `UnexpectedEof`; later
    /// bytes stay in the socket. Before the stream moves to another shard.
    pub(crate) fn halt(&mut self) {
        self.recv.halt();
    }

    /// Receives once and appends what arrived (decrypted, over TLS) to
    /// `buf`; returns how many bytes that added. `UnexpectedEof` when the
    /// client has closed (or sent close_notify); `InvalidData` when its TLS
    /// records are bad (the alert has gone back).
    ///
    /// An empty `buf` without capacity gets `fresh()` only once bytes have
    /// arrived: a connection waiting for its next request holds no buffer.
    pub(crate) async fn recv_into(&mut self, buf: &mut Vec<u8>, fresh: fn() -> Vec<u8>) -> io::Result<usize> {
        let Some(session) = &self.wire.tls else {
            return match self.recv.next().await {
                Some(Ok(received)) => {
                    if buf.capacity() == 0 {
                        *buf = fresh();
                    }
                    buf.extend_from_slice(&received);
                    crate::metrics::bytes_in(received.len());
                    Ok(received.len())
                }
                Some(Err(err)) => Err(err),
                None => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        };
        loop {
            if session.peer_closed() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let before = buf.len();
            let absorbed = match self.recv.next().await {
                Some(Ok(received)) => {
                    crate::metrics::bytes_in(received.len());
                    if buf.capacity() == 0 {
                        *buf = fresh();
                    }
                    session.absorb(&received, buf)
                }
                Some(Err(err)) => return Err(err),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            };
            // Whatever the session has to say back (an alert, a key update).
            let flushed = Box::pin(self.wire.flush_tls()).await;
            absorbed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if !flushed {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if buf.len() > before {
                return Ok(buf.len() - before);
            }
        }
    }

    /// Runs the TLS handshake (nothing on plain TCP). Application data that
    /// arrives with the client's last flight is appended to `buf`.
    pub(crate) async fn handshake(&mut self, buf: &mut Vec<u8>) -> Result<(), HandshakeError> {
        let Some(session) = &self.wire.tls else { return Ok(()) };
        let mut first = true;
        while session.handshaking() {
            let absorbed = match self.recv.next().await {
                Some(Ok(received)) => {
                    crate::metrics::bytes_in(received.len());
                    if first && tls::looks_like_plain_http(&received) {
                        return Err(HandshakeError::PlainHttp);
                    }
                    first = false;
                    session.absorb(&received, buf)
                }
                Some(Err(err)) => return Err(HandshakeError::Io(err)),
                None => return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof.into())),
            };
            // The server's flight, or the alert that ends the handshake.
            let flushed = self.wire.flush_tls().await;
            absorbed.map_err(HandshakeError::Tls)?;
            if !flushed {
                return Err(HandshakeError::Io(io::ErrorKind::BrokenPipe.into()));
            }
        }
        Ok(())
    }
}
