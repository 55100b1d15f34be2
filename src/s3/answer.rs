//! How a request that fails is answered: its body, if it was not read,
//! settled first ([`settle_unread`]), then the error as S3 sends it, with
//! the request's id ([`answer_error`]).

use super::S3Error;
use crate::http::reply::Reply;
use crate::http::request::{Body as Framing, Method, Request};
use crate::http::response::Head;
use crate::http::wire::Incoming;

/// Reads and drops the body of a request answered without it, if it is
/// small (`http::body::settle`, after `100 Continue` if the client waits;
/// `http::body::STRANGER_DRAINED_BYTES_MAX` unless `signed`), so that the exchange
/// ends in step and the connection stays open: HAProxy waits for a body
/// its client (botocore, told no) never sends, and would read the client's
/// next request as that body and refuse it with a 400. A larger body is
/// not read, and the connection closes.
pub(super) async fn settle_unread(
    reply: &mut Reply<'_>,
    incoming: &mut Incoming<'_>,
    buf: &mut Vec<u8>,
    request: &Request,
    close_after: bool,
    signed: bool,
) {
    // (Without a body, a handler's own decision to close stands.)
    if request.body != Framing::None {
        let max =
            if signed { crate::http::body::DRAINED_BYTES_MAX } else { crate::http::body::STRANGER_DRAINED_BYTES_MAX };
        crate::http::body::settle(reply, incoming, buf, request, max, close_after).await;
    }
}

/// Which request of which shard: the `x-amz-request-id` of an error.
#[derive(Clone, Copy)]
pub(super) struct RequestId(pub(super) usize, pub(super) u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}{:012X}", self.0, self.1)
    }
}

/// Answers `err` as S3 does: its status, the XML body (none for HEAD).
pub(super) async fn answer_error(
    reply: &mut Reply<'_>,
    request: &Request,
    err: &S3Error,
    request_id: RequestId,
) -> bool {
    let request_id = request_id.to_string();
    if err.status == 0 {
        // The client is gone: nothing to answer.
        reply.closing();
        return false;
    }
    // (501, an operation percore does not have, is no fault; nor is
    // another node's being down.)
    if err.status >= 500 && err.status != 501 && !err.elsewhere {
        reply.fault(format!("{}: {}", err.code, err.message));
    }
    let mut head = Head::new(err.status).header("x-amz-request-id", &request_id);
    if err.status == 503 {
        head = head.header("Retry-After", 1);
    }
    let whole = if request.method == Method::Head {
        reply.finish(head, 0)
    } else {
        let body = err.body(&request.path, &request_id);
        reply.finish_with(head.header("Content-Type", "application/xml"), body.as_bytes())
    };
    reply.send_one(whole).await
}
