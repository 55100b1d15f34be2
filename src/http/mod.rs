//! The HTTP/1.1 service: request parsing (`request`), response heads
//! (`response`) and the connection loop (`conn`). Parsing and response
//! building are pure and tested without a ring; the connection loop owns the
//! control flow.

pub(crate) mod body;
pub(crate) mod conn;
pub(crate) mod request;
pub(crate) mod response;

use std::future::Future;
use std::time::Duration;

use percore_io::time;

/// Runs `future` for at most `limit`, counted from the loop's tick clock:
/// no clock read per use, and a tick's precision is plenty for timeouts of
/// seconds.
pub(crate) fn within<F: Future>(limit: Duration, future: F) -> time::Timeout<F> {
    time::timeout_at(time::loop_now() + limit, future)
}
