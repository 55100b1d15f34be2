//! A store commit's outcome as the answer to a `/files/` write.

use super::reply::Reply;
use super::response::Head;
use crate::store::{Outcome, FENCED_MESSAGE};

/// Answers a commit's outcome.
pub(super) async fn outcome(reply: &mut Reply<'_>, outcome: Outcome) -> bool {
    let (status, etag, body): (u16, Option<String>, String) = match outcome {
        Outcome::Created(etag) => (201, Some(etag), String::new()),
        Outcome::Replaced(etag) => (200, Some(etag), String::new()),
        Outcome::Deleted => (204, None, String::new()),
        Outcome::NotFound => (404, None, "no such file\n".into()),
        Outcome::PreconditionFailed => (412, None, "precondition failed\n".into()),
        Outcome::Fenced => {
            reply.fault("writes are fenced after a failed flush");
            (503, None, FENCED_MESSAGE.into())
        }
        Outcome::Failed(kind, message) => {
            let status = match kind {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => 507,
                std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::AlreadyExists => 409,
                _ => 500,
            };
            // A client's mistake (a PUT onto a directory) is not the
            // operator's concern; a server fault is, with its cause (logged
            // once by the connection loop).
            if status < 500 {
                tracing::debug!(status, "commit refused: {message}");
            } else {
                reply.fault(format!("commit failed: {message}"));
            }
            (status, None, format!("{message}\n"))
        }
    };
    let mut head = Head::new(status);
    // (A directory's mark has none.)
    if let Some(etag) = etag.filter(|e| !e.is_empty()) {
        head = head.header("ETag", etag);
    }
    if !body.is_empty() {
        head = head.header("Content-Type", "text/plain");
    }
    let whole = reply.finish_with(head, body.as_bytes());
    reply.send_one(whole).await
}
