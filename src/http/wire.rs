//! The connection's bytes: the one seam between HTTP and the socket under
//! it. Everything above (`conn`, `reply`, the handlers) reads and writes
//! through a [`Wire`] and does not know the stream is a plain TCP socket;
//! a TLS stream will sit here next. Every send is bounded by the send
//! timeout and counted (bytes sent, here and in the metrics; whether one
//! failed).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use bytes::Bytes;
use percore_io::{BufRing, File, IoBuf, Pipe, RecvStream, TcpStream};

use super::within;

/// Responses up to this size are joined into one buffer and sent with
/// `IORING_OP_SEND` rather than `WRITEV` (which on a socket takes the generic
/// VFS write path).
pub(crate) const SEND_JOIN_BYTES_MAX: usize = 16 * 1024;

/// Bytes of a file spliced under one send timeout: the slowest reader kept
/// is one that takes a piece per timeout (1 MiB per 30 s by default).
const SEND_FILE_PIECE: u64 = 1 << 20;

/// How long, and how many bytes, a closing connection's unread input is
/// read and dropped for (nginx's lingering close), after its write side is
/// shut down.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 8 << 20;

/// What the client sends: received pieces, as they arrive.
pub(crate) type Incoming<'a> = RecvStream<'a>;

/// One connection's stream.
pub(crate) struct Wire {
    stream: TcpStream,
    send_timeout: Duration,
    /// Bytes sent so far.
    sent: Cell<u64>,
    /// Set by the first send that failed or timed out: the connection is
    /// unusable from then on.
    broken: Cell<bool>,
}

impl Wire {
    pub(crate) fn new(stream: TcpStream, send_timeout: Duration) -> Wire {
        Wire { stream, send_timeout, sent: Cell::new(0), broken: Cell::new(false) }
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
        self.stream.recv_multi(ring)
    }

    /// Sends one buffer (a head, or a head with a small body after it).
    pub(crate) async fn send_one(&self, whole: impl IoBuf) -> bool {
        let len = whole.bytes_init() as u64;
        let sent = matches!(within(self.send_timeout, self.stream.send_all(whole)).await, Ok((Ok(()), _)));
        self.count(sent, len)
    }

    /// Sends every part: joined into one buffer when small, else in one
    /// writev.
    pub(crate) async fn send(&self, parts: Vec<Bytes>) -> bool {
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

    /// Half-closes the connection and discards what the client still
    /// sends, briefly, so that the close that follows is a FIN rather than
    /// a reset (which could destroy the answer in the client's buffers).
    pub(crate) async fn linger(&self, incoming: &mut Incoming<'_>) {
        if self.stream.shutdown(percore_io::Shutdown::Write).await.is_err() {
            return;
        }
        let deadline = percore_io::time::loop_now() + LINGER_TIME;
        let mut dropped = 0;
        while dropped < LINGER_BYTES_MAX {
            match percore_io::time::timeout_at(deadline, percore_cores::unless_stopping(incoming.next())).await {
                Ok(Some(Some(Ok(data)))) => dropped += data.len(),
                // End of input, an error, out of time, or the daemon stopping.
                _ => return,
            }
        }
    }
}
