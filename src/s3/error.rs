//! S3's errors as its clients expect them: a status, a code they match on
//! (`NoSuchKey`, `SignatureDoesNotMatch`, ...) and a message that says what
//! to do, sent as an XML `<Error>` body.

use super::xml;
use crate::store::Outcome;

/// An S3 error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct S3Error {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// A 5xx that is no fault of this node's (another node is down): not
    /// logged as a server fault.
    pub(crate) elsewhere: bool,
}

impl S3Error {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error { status, code, message: message.into(), elsewhere: false }
    }

    /// The same error, caused by another node of the ring.
    pub(crate) fn caused_elsewhere(mut self) -> S3Error {
        self.elsewhere = true;
        self
    }

    /// The same error, its message followed by `why` in brackets.
    pub(crate) fn because(mut self, why: &str) -> S3Error {
        self.message = format!("{} ({why})", self.message);
        self
    }

    /// The client is gone (its body stopped with the connection): nothing
    /// is answered.
    pub(crate) fn gone() -> S3Error {
        S3Error::new(0, "ClientGone", "the connection closed")
    }

    /// The XML body, naming the `resource` (the request's path).
    pub(crate) fn body(&self, resource: &str, request_id: &str) -> String {
        let mut out = xml::Writer::document();
        out.open("Error");
        out.leaf("Code", self.code);
        out.leaf("Message", &self.message);
        out.leaf("Resource", resource);
        out.leaf("RequestId", request_id);
        out.close("Error");
        out.finish()
    }
}

/// Shorthands for the errors percore answers.
pub(crate) fn access_denied(message: impl Into<String>) -> S3Error {
    S3Error::new(403, "AccessDenied", message)
}
pub(crate) fn invalid_argument(message: impl Into<String>) -> S3Error {
    S3Error::new(400, "InvalidArgument", message)
}
pub(crate) fn invalid_request(message: impl Into<String>) -> S3Error {
    S3Error::new(400, "InvalidRequest", message)
}
pub(crate) fn no_such_bucket(bucket: &str) -> S3Error {
    S3Error::new(404, "NoSuchBucket", format!("the bucket {bucket} does not exist: create it first"))
}
pub(crate) fn no_such_key() -> S3Error {
    S3Error::new(404, "NoSuchKey", "the specified key does not exist")
}
/// A signature's parts malformed: in the `Authorization` header, or in a
/// presigned URL's query.
pub(crate) fn malformed(presigned: bool, message: impl Into<String>) -> S3Error {
    let code = if presigned { "AuthorizationQueryParametersError" } else { "AuthorizationHeaderMalformed" };
    S3Error::new(400, code, message)
}

pub(crate) fn malformed_xml(why: impl std::fmt::Display) -> S3Error {
    S3Error::new(400, "MalformedXML", format!("the XML body is not well-formed or does not match the schema: {why}"))
}
pub(crate) fn not_implemented(what: &str) -> S3Error {
    S3Error::new(501, "NotImplemented", format!("{what} is not implemented by percore"))
}
pub(crate) fn internal(message: impl Into<String>) -> S3Error {
    S3Error::new(500, "InternalError", message)
}

/// Maps a store I/O error to an S3 error.
pub(crate) fn from_io(what: &str, err: &std::io::Error) -> S3Error {
    let status = crate::files::io_status(err);
    let code = match status {
        507 => "InsufficientStorage",
        503 => "ServiceUnavailable",
        409 => "KeyConflict",
        403 => "AccessDenied",
        400 => "InvalidArgument",
        _ => "InternalError",
    };
    let message = match status {
        409 => format!("{what}: a key and a key under it (`a` and `a/b`) cannot both exist in this store ({err})"),
        _ => format!("{what}: {err}"),
    };
    S3Error::new(if status == 507 { 507 } else { status }, code, message)
}

/// The S3 error of a commit that did not happen.
pub(crate) fn commit_error(outcome: Outcome) -> S3Error {
    match outcome {
        Outcome::PreconditionFailed => precondition_failed(),
        Outcome::Fenced => S3Error::new(503, "ServiceUnavailable", crate::store::FENCED_MESSAGE.trim()),
        Outcome::Failed(kind, message) => match kind {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                S3Error::new(507, "InsufficientStorage", message)
            }
            std::io::ErrorKind::IsADirectory
            | std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::AlreadyExists => S3Error::new(
                409,
                "KeyConflict",
                format!("a key and a key under it (`a` and `a/b`) cannot both exist in this store: {message}"),
            ),
            _ => internal(format!("commit failed: {message}")),
        },
        Outcome::NotFound => no_such_key(),
        Outcome::Created(_) | Outcome::Replaced(_) | Outcome::Deleted => internal("unexpected commit outcome"),
    }
}

/// 412: a condition of the request did not hold.
pub(crate) fn precondition_failed() -> S3Error {
    S3Error::new(412, "PreconditionFailed", "at least one of the preconditions you specified did not hold")
}
