//! The HTTP/1.1 service. Pure leaves, tested without a ring: request
//! parsing (`request`), routing (`route`), tokens (`auth`), response heads
//! (`response`). The connection loop (`conn`) owns the control flow; it
//! hands each request to a handler (`home`, `probe`, `get`, `list`, `put`) with a
//! `reply` and reads and writes only through the `wire`, the one seam over
//! the socket. Bodies are read by `body`.

mod auth;
pub(crate) mod body;
mod carried;
pub(crate) mod conn;
pub(crate) mod get;
mod home;
mod list;
mod outcome;
mod probe;
pub(crate) mod put;
pub(crate) mod reply;
pub(crate) mod request;
pub(crate) mod response;
mod route;
pub(crate) mod tls;
pub(crate) mod wire;

use std::future::Future;
use std::time::Duration;

use percore_io::time;

/// Runs `future` for at most `limit`, counted from the loop's tick clock:
/// no clock read per use, and a tick's precision is plenty for timeouts of
/// seconds.
pub(crate) fn within<F: Future>(limit: Duration, future: F) -> time::Timeout<F> {
    time::timeout_at(time::loop_now() + limit, future)
}
