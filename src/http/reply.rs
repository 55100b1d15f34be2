//! One answer under way, and what it did once sent.
//!
//! A handler answers through a [`Reply`]: it finishes heads with it (which
//! records the answer's status and whether the connection closes after
//! it) and sends through it (which records the bytes and whether every
//! send went out). The connection loop takes the [`Answered`] value that
//! comes out and records the metrics and the access log from it: an
//! answer's status is a value, not a slot shared by the shard.

use bytes::Bytes;
use percore_io::IoBuf;

use super::response::Head;
use super::wire::Wire;
use crate::shard::Shard;

/// What an answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answered {
    /// The status of its last head (0 if it sent none).
    pub(crate) status: u16,
    /// Bytes sent, heads included.
    pub(crate) bytes: u64,
    /// Whether the connection stays open for the next request.
    pub(crate) keep_alive: bool,
}

/// One answer under way.
pub(crate) struct Reply<'a> {
    pub(crate) wire: &'a Wire,
    pub(crate) shard: &'a Shard,
    close: bool,
    status: u16,
    bytes: u64,
    /// False once a send failed: the connection is unusable.
    sent: bool,
}

impl<'a> Reply<'a> {
    /// An answer on `wire`; `close`: the connection closes after it.
    pub(crate) fn new(wire: &'a Wire, shard: &'a Shard, close: bool) -> Reply<'a> {
        Reply { wire, shard, close, status: 0, bytes: 0, sent: true }
    }

    /// The connection closes after this answer (heads finished from now on
    /// say so).
    pub(crate) fn closing(&mut self) {
        self.close = true;
    }

    /// The connection stays open after this answer after all (a PUT whose
    /// body has been read in full: until then it was set to close).
    pub(crate) fn keep_open(&mut self) {
        self.close = false;
    }

    /// Whether the connection closes after this answer.
    pub(crate) fn close(&self) -> bool {
        self.close
    }

    /// What the answer did.
    pub(crate) fn answered(&self) -> Answered {
        Answered { status: self.status, bytes: self.bytes, keep_alive: self.sent && !self.close }
    }

    /// Finishes `head` for a body of `len` bytes: the answer's status is
    /// now the head's.
    pub(crate) fn finish(&mut self, head: Head, len: u64) -> Vec<u8> {
        self.status = head.status();
        head.finish(len, self.close)
    }

    /// Finishes `head` with `body` after it, in one buffer.
    pub(crate) fn finish_with(&mut self, head: Head, body: &[u8]) -> Vec<u8> {
        self.status = head.status();
        head.finish_with(body, self.close)
    }

    fn record(&mut self, sent: bool, len: u64) -> bool {
        if sent {
            self.bytes += len;
        } else {
            self.sent = false;
        }
        sent
    }

    /// Sends one buffer. False if the connection is unusable afterwards.
    pub(crate) async fn send_one(&mut self, whole: impl IoBuf) -> bool {
        let len = whole.bytes_init() as u64;
        let sent = self.wire.send_one(whole).await;
        self.record(sent, len)
    }

    /// Sends every part. False if the connection is unusable afterwards.
    pub(crate) async fn send(&mut self, parts: Vec<Bytes>) -> bool {
        let len = parts.iter().map(|p| p.len() as u64).sum();
        let sent = self.wire.send(parts).await;
        self.record(sent, len)
    }

    /// Sends a whole answer with status `status` rendered beforehand
    /// (`response::Rendered`: no head is built for it).
    pub(crate) async fn send_rendered(&mut self, status: u16, whole: Bytes) -> bool {
        self.status = status;
        self.send_one(whole).await
    }

    /// Sends `head` held back to leave with what follows (`Wire::send_more`).
    pub(crate) async fn send_more(&mut self, head: Vec<u8>) -> bool {
        let len = head.len() as u64;
        let sent = self.wire.send_more(head).await;
        self.record(sent, len)
    }

    /// Splices `len` bytes of `file` from `offset` (`Wire::splice`).
    pub(crate) async fn splice(&mut self, file: &percore_io::File, offset: u64, len: u64) -> bool {
        let sent = self.wire.splice(&self.shard.pipes, file, offset, len).await;
        self.record(sent, len)
    }

    /// A plain-text answer.
    pub(crate) async fn simple(&mut self, status: u16, body: &str) -> bool {
        let head = Head::new(status).header("Content-Type", "text/plain");
        let whole = self.finish_with(head, body.as_bytes());
        self.send_one(whole).await
    }

    pub(crate) async fn method_not_allowed(&mut self, allow: &str) -> bool {
        let head = Head::new(405).header("Allow", allow).header("Content-Type", "text/plain");
        let whole = self.finish_with(head, b"method not allowed\n");
        self.send_one(whole).await
    }

    pub(crate) async fn unauthorized(&mut self) -> bool {
        let head = Head::new(401).header("WWW-Authenticate", "Bearer").header("Content-Type", "text/plain");
        let whole = self.finish_with(head, b"a valid bearer token is required\n");
        self.send_one(whole).await
    }
}
