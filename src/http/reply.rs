//! One answer under way, and what it did once sent.
//!
//! A handler answers through a [`Reply`]: it finishes heads with it (which
//! records the answer's status and whether the connection closes after
//! it) and sends through it (the wire counts the bytes and whether every
//! send went out). The connection loop takes the [`Answered`] value that
//! comes out and records the metrics and the access log from it: an
//! answer's status is a value, not a slot shared by the shard.
//!
//! The sends are plain functions returning the wire's futures, not async
//! functions of their own: each async layer on the way to a send copies
//! the send's future once more (`memcpy` went from 7.3% to 10% of a
//! `/ping` with two such layers; BENCHMARKS.md).

use std::future::Future;

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
    /// The wire's bytes sent when the answer began.
    start: u64,
    /// Why the server failed (a 5xx answer): logged once with the request.
    cause: Option<String>,
    /// Header lines every head of this answer carries (an S3 bucket's CORS
    /// headers for the request's origin).
    lines: String,
}

impl<'a> Reply<'a> {
    /// An answer on `wire`; `close`: the connection closes after it.
    pub(crate) fn new(wire: &'a Wire, shard: &'a Shard, close: bool) -> Reply<'a> {
        Reply { wire, shard, close, status: 0, start: wire.bytes_sent(), cause: None, lines: String::new() }
    }

    /// The connection closes after this answer (heads finished from now on
    /// say so).
    pub(crate) fn closing(&mut self) {
        self.close = true;
    }

    /// The connection stays open after this answer after all (a request
    /// whose body has been read in full: until then it was set to close),
    /// unless it was to close anyway (`close_after`: what [`Reply::close`]
    /// said before) or the shard is stopping.
    pub(crate) fn keep_open(&mut self, close_after: bool) {
        if !close_after && !percore_cores::is_stopping() {
            self.close = false;
        }
    }

    /// Whether the connection closes after this answer.
    pub(crate) fn close(&self) -> bool {
        self.close
    }

    /// Records why the server failed this request (a 5xx answer); the
    /// connection loop logs it once with the request.
    pub(crate) fn fault(&mut self, cause: impl Into<String>) {
        self.cause = Some(cause.into());
    }

    /// Why the server failed this request, if it did.
    pub(crate) fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// What the answer did.
    pub(crate) fn answered(&self) -> Answered {
        Answered {
            status: self.status,
            bytes: self.wire.bytes_sent() - self.start,
            keep_alive: !self.wire.broken() && !self.close,
        }
    }

    /// Header lines (`Name: value\r\n` each) for every head finished from
    /// now on.
    pub(crate) fn add_lines(&mut self, lines: &str) {
        self.lines.push_str(lines);
    }

    /// Whether heads of this answer get lines of [`Reply::add_lines`].
    pub(crate) fn has_lines(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Finishes `head` for a body of `len` bytes: the answer's status is
    /// now the head's.
    pub(crate) fn finish(&mut self, head: Head, len: u64) -> Vec<u8> {
        self.status = head.status();
        self.with_lines(head).finish(len, self.close)
    }

    /// Finishes `head` with `body` after it, in one buffer.
    pub(crate) fn finish_with(&mut self, head: Head, body: &[u8]) -> Vec<u8> {
        self.status = head.status();
        self.with_lines(head).finish_with(body, self.close)
    }

    fn with_lines(&self, head: Head) -> Head {
        if self.lines.is_empty() {
            head
        } else {
            head.lines(&self.lines)
        }
    }

    /// Sends one buffer. False if the connection is unusable afterwards.
    pub(crate) fn send_one<B: IoBuf>(&self, whole: B) -> impl Future<Output = bool> + 'a {
        self.wire.send_one(whole)
    }

    /// Sends every part. False if the connection is unusable afterwards.
    pub(crate) fn send(&self, parts: Vec<Bytes>) -> impl Future<Output = bool> + 'a {
        self.wire.send(parts)
    }

    /// Records the status of a whole answer rendered beforehand
    /// (`rendered::Rendered`: no head is finished for it), sent next.
    pub(crate) fn rendered(&mut self, status: u16) {
        self.status = status;
    }

    /// Sends `head` held back to leave with what follows (`Wire::send_more`).
    pub(crate) fn send_more(&self, head: Vec<u8>) -> impl Future<Output = bool> + 'a {
        self.wire.send_more(head)
    }

    /// Splices `len` bytes of `file` from `offset` (`Wire::splice`).
    pub(crate) fn splice<'f>(
        &self,
        file: &'f percore_io::File,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = bool> + 'f
    where
        'a: 'f,
    {
        self.wire.splice(&self.shard.pipes, file, offset, len)
    }

    /// A plain-text answer; a 5xx's text is also its recorded cause
    /// (unless one was recorded already).
    pub(crate) fn simple(&mut self, status: u16, body: &str) -> impl Future<Output = bool> + 'a {
        if status >= 500 && self.cause.is_none() {
            self.cause = Some(body.trim_end().to_string());
        }
        let head = Head::new(status).header("Content-Type", "text/plain");
        let whole = self.finish_with(head, body.as_bytes());
        self.send_one(whole)
    }

    pub(crate) fn method_not_allowed(&mut self, allow: &str) -> impl Future<Output = bool> + 'a {
        let head = Head::new(405).header("Allow", allow).header("Content-Type", "text/plain");
        let whole = self.finish_with(head, b"method not allowed\n");
        self.send_one(whole)
    }

    pub(crate) fn unauthorized(&mut self) -> impl Future<Output = bool> + 'a {
        let head = Head::new(401).header("WWW-Authenticate", "Bearer").header("Content-Type", "text/plain");
        let whole = self.finish_with(head, b"a valid bearer token is required\n");
        self.send_one(whole)
    }
}
