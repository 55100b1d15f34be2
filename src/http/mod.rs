//! The HTTP/1.1 service: request parsing (`request`), response heads
//! (`response`) and the connection loop (`conn`). Parsing and response
//! building are pure and tested without a ring; the connection loop owns the
//! control flow.

pub(crate) mod body;
pub(crate) mod conn;
pub(crate) mod request;
pub(crate) mod response;
