//! Request bodies: Content-Length or chunked framing, read in pieces from
//! what the head's read left over plus the socket.
//!
//! Chunk sizes are parsed with `httparse::parse_chunk_size`; an invalid size
//! or a missing CRLF after a chunk is a framing error (the connection
//! closes). Chunk extensions are ignored, trailers skipped.

use std::io;
use std::time::Duration;

use bytes::Bytes;

use super::reply::Reply;
use super::request::{Body, Request};
use super::wire::Incoming;

/// The largest body [`drain`] reads: a part of aws-cli's, boto3's or
/// rclone's multipart uploads fits.
pub(crate) const DRAINED_BYTES_MAX: u64 = 64 << 20;

/// The most [`drain`] reads of a request from a client that may be a
/// stranger (no valid token or signature): one is not sent `100 Continue`
/// for a large upload only to be refused.
pub(crate) const STRANGER_DRAINED_BYTES_MAX: u64 = 1 << 20;

/// Reads and drops the body of a request refused without it (a 503 for
/// another node's object, an S3 error), after `100 Continue` if the client waits for
/// one, so that the exchange ends in step: HAProxy 2.6 keeps the client's
/// connection open after an answer sent before the body and waits for the
/// body, while a client given that answer (botocore) sends none and its
/// next request instead, which HAProxy then reads as the body and refuses
/// with a 400 clients do not retry. True if the body was read whole (none,
/// or at most `max` bytes, at most [`DRAINED_BYTES_MAX`]): the connection
/// may stay open. A larger one gets no `100 Continue` and is not read.
async fn drain(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    max: u64,
) -> bool {
    match request.body {
        Body::None => return true,
        Body::Length(n) if n <= max.min(DRAINED_BYTES_MAX) => {}
        Body::Length(_) | Body::Chunked => return false,
    }
    if request.expect_continue && !reply.send_one(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n")).await {
        return false;
    }
    let timeout = reply.shard.config.body_timeout();
    let mut body = BodyReader::new(incoming, buf, request.body, DRAINED_BYTES_MAX, timeout);
    loop {
        match body.next().await {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// [`drain`]s the body, then keeps the connection open if the body was read
/// whole, unless it was to close after this answer anyway (`close_after`)
/// or the shard is stopping.
pub(crate) async fn settle(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    max: u64,
    close_after: bool,
) {
    if drain(reply, incoming, buf, request, max).await {
        reply.keep_open(close_after);
    }
}

enum State {
    /// Bytes of the body (or of the current chunk) still to come.
    Data {
        left: u64,
        chunked: bool,
    },
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Expecting trailer lines up to an empty line.
    Trailers,
    Done,
}

/// Connection buffers not in use, per shard: an idle connection gives its
/// buffer back (so it holds none) and the next one to receive takes one,
/// instead of a free and a malloc per request.
pub(crate) mod spare {
    use std::cell::RefCell;

    /// Buffers kept at most, and the largest capacity kept (larger ones,
    /// grown for a big head, are freed).
    const KEPT_MAX: usize = 256;
    const CAPACITY: usize = 4096;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer: a spare one if there is one.
    pub(crate) fn take() -> Vec<u8> {
        SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(CAPACITY))
    }

    /// Takes `buf` back for reuse (emptied), if it is of the usual size and
    /// fewer than `KEPT_MAX` are kept; frees it otherwise.
    pub(crate) fn give(mut buf: Vec<u8>) {
        if buf.capacity() != CAPACITY {
            return;
        }
        buf.clear();
        SPARE.with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < KEPT_MAX {
                spare.push(buf);
            }
        });
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The client closed, the read failed or timed out.
    Io(io::Error),
    /// The framing is invalid (bad chunk size, missing CRLF): 400.
    Framing(&'static str),
    /// The body is larger than allowed: 413.
    TooLarge,
}

/// Receives once from the connection into `buf` (a spare buffer once data
/// arrives, if it has none). Returns the bytes received; `UnexpectedEof`
/// when the peer has closed.
pub(crate) async fn recv_into(incoming: &mut Incoming<'_>, buf: &mut Vec<u8>) -> io::Result<usize> {
    incoming.recv_into(buf, spare::take).await
}

pub(crate) struct BodyReader<'a, 'b> {
    incoming: &'a mut Incoming<'b>,
    /// Bytes received but not consumed (starts with what followed the head).
    buf: &'a mut Vec<u8>,
    state: State,
    total: u64,
    max: u64,
    timeout: Duration,
    /// Trailer bytes seen so far: at most `TRAILER_BYTES_MAX` in all, so an
    /// endless stream of small trailer fields cannot hold the request open.
    trailer_bytes: usize,
}

/// The longest chunk-size line (size and extensions).
const CHUNK_LINE_BYTES_MAX: usize = 4096;

/// The most trailer bytes a chunked body may carry.
const TRAILER_BYTES_MAX: usize = 16 * 1024;

/// The most of the body returned in one piece.
const PIECE: usize = 64 * 1024;

impl<'a, 'b> BodyReader<'a, 'b> {
    pub(crate) fn new(
        incoming: &'a mut Incoming<'b>,
        buf: &'a mut Vec<u8>,
        body: Body,
        max: u64,
        timeout: Duration,
    ) -> Self {
        let state = match body {
            Body::None => State::Done,
            Body::Length(n) => State::Data { left: n, chunked: false },
            Body::Chunked => State::ChunkSize,
        };
        BodyReader { incoming, buf, state, total: 0, max, timeout, trailer_bytes: 0 }
    }

    /// Total body bytes returned so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Receives more bytes into `buf`.
    async fn fill(&mut self) -> Result<(), BodyError> {
        match super::within(self.timeout, recv_into(self.incoming, self.buf)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BodyError::Io(e)),
            Err(_) => Err(BodyError::Io(io::ErrorKind::TimedOut.into())),
        }
    }

    /// The next piece of the body, or `None` at its end.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Data { left, chunked } => {
                    if left == 0 {
                        self.state = if chunked { State::ChunkEnd } else { State::Done };
                        continue;
                    }
                    if self.buf.is_empty() {
                        self.fill().await?;
                    }
                    let take = (self.buf.len() as u64).min(left).min(PIECE as u64) as usize;
                    let piece: Vec<u8> = self.buf.drain(..take).collect();
                    self.total += take as u64;
                    if self.total > self.max {
                        return Err(BodyError::TooLarge);
                    }
                    self.state = State::Data { left: left - take as u64, chunked };
                    return Ok(Some(piece));
                }
                State::ChunkSize => match httparse::parse_chunk_size(self.buf) {
                    // Extensions are ignored, but not without bound: a size
                    // line over 4 KiB is refused whether it arrived whole or not.
                    Ok(httparse::Status::Complete((used, _))) if used > CHUNK_LINE_BYTES_MAX => {
                        return Err(BodyError::Framing("chunk size line too long"));
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.drain(..used);
                        self.state =
                            if size == 0 { State::Trailers } else { State::Data { left: size, chunked: true } };
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > CHUNK_LINE_BYTES_MAX {
                            return Err(BodyError::Framing("chunk size line too long"));
                        }
                        self.fill().await?;
                    }
                    Err(_) => return Err(BodyError::Framing("invalid chunk size")),
                },
                State::ChunkEnd => {
                    if self.buf.len() < 2 {
                        self.fill().await?;
                        continue;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(BodyError::Framing("missing CRLF after chunk data"));
                    }
                    self.buf.drain(..2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => match self.buf.windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        self.buf.drain(..2);
                        self.state = State::Done;
                    }
                    // A trailer field: skipped.
                    Some(end) => {
                        self.trailer_bytes += end + 2;
                        if self.trailer_bytes > TRAILER_BYTES_MAX {
                            return Err(BodyError::Framing("trailers too large"));
                        }
                        self.buf.drain(..end + 2);
                    }
                    None => {
                        if self.buf.len() > 8192 {
                            return Err(BodyError::Framing("trailers too large"));
                        }
                        self.fill().await?;
                    }
                },
            }
        }
    }
}
