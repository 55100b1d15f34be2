//! What a request may ask that percore does not keep or do, refused with a
//! clear error rather than dropped: a client told nothing would believe it
//! done.
//! - **Server-side encryption** (SSE-S3, SSE-KMS, SSE-C): 501. With SSE-C
//!   the client would believe the object readable only with its key.
//! - **Object Lock** (a retention or a legal hold on a write; a bucket made
//!   with it): 400 InvalidRequest, as S3 answers for a bucket made without
//!   it. A client told nothing would believe the object undeletable.
//! - **Appends** (`x-amz-write-offset-bytes`, S3 Express): 501. Taken as a
//!   plain PutObject, the bytes to append would replace the object.
//! - **ACLs**: a canned ACL is taken only where it holds here: `private`,
//!   `bucket-owner-read`, `bucket-owner-full-control` and
//!   `authenticated-read` (only the keys of `--s3-credentials` reach the
//!   store), `public-read` when anonymous reads are on. Any other, and every
//!   grant (`x-amz-grant-*`), is 400 AccessControlListNotSupported, as S3
//!   answers for a bucket whose ACLs are disabled (its default since 2023).
//!   With anonymous reads on, `private` is taken although anyone may read:
//!   so it is on S3 when a bucket policy grants public reads.
//! - **Another owner**: `x-amz-expected-bucket-owner` (and the copy
//!   source's) other than percore's one owner, `percore`: 403, as S3
//!   answers when another account owns the bucket.
//! - **Versions**: percore keeps one version of an object, whose id is
//!   `null`, S3's id of the version an unversioned bucket holds. A
//!   `versionId` other than `null` is 400 InvalidArgument: taken as no
//!   version, a GET would answer another version and a DELETE remove one.

use super::error::{access_denied, invalid_argument, invalid_request, not_implemented, S3Error};

/// The canned ACLs that hold for every object and bucket.
const TRUE_ACLS: [&str; 4] = ["private", "bucket-owner-read", "bucket-owner-full-control", "authenticated-read"];

/// The headers (or a form's fields) that grant access to named accounts.
const GRANTS: [&str; 5] = [
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

/// Refuses a write of an object (PutObject, CopyObject, a multipart upload's
/// start, a browser form) that asks for what percore does not do; `field`
/// finds a header (or a form's field) by its lower-case name.
pub(crate) fn refuse_on_write<'v>(
    field: impl Fn(&str) -> Option<&'v str>,
    anonymous_reads: bool,
) -> Result<(), S3Error> {
    refuse_encryption(&field)?;
    for name in ["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date"] {
        if field(name).is_some() {
            return Err(no_object_lock(name));
        }
    }
    if field("x-amz-object-lock-legal-hold").is_some_and(|v| !v.trim().eq_ignore_ascii_case("OFF")) {
        return Err(no_object_lock("x-amz-object-lock-legal-hold"));
    }
    if field("x-amz-write-offset-bytes").is_some() {
        return Err(not_implemented("appending to an object (x-amz-write-offset-bytes)").because(
            "percore replaces an object whole: send all of its bytes in one PutObject or a multipart upload",
        ));
    }
    refuse_acl(&field, field("x-amz-acl").or_else(|| field("acl")), anonymous_reads)
}

/// Refuses a CreateBucket that asks for Object Lock or an ACL that does
/// not hold.
pub(crate) fn refuse_on_bucket<'v>(
    field: impl Fn(&str) -> Option<&'v str>,
    anonymous_reads: bool,
) -> Result<(), S3Error> {
    if field("x-amz-bucket-object-lock-enabled").is_some_and(|v| !v.trim().eq_ignore_ascii_case("false")) {
        return Err(not_implemented("Object Lock (x-amz-bucket-object-lock-enabled)").because(
            "percore keeps no retention: an object can always be replaced or deleted by a key of --s3-credentials",
        ));
    }
    refuse_acl(&field, field("x-amz-acl"), anonymous_reads)
}

/// Refuses a request that asks for its bucket (or a copy's source bucket)
/// to be owned by another account than percore's one owner
/// (`x-amz-expected-bucket-owner`, `x-amz-source-expected-bucket-owner`),
/// as S3 refuses one whose bucket another account owns: taken without the
/// check, the client would believe it made. The source's is looked for
/// only in a PUT (`put`: a copy), sparing every GET a lookup.
pub(crate) fn refuse_other_owner<'v>(field: impl Fn(&str) -> Option<&'v str>, put: bool) -> Result<(), S3Error> {
    let names: &[&str] = if put {
        &["x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner"]
    } else {
        &["x-amz-expected-bucket-owner"]
    };
    for &name in names {
        if let Some(expected) = field(name).filter(|owner| owner.trim() != super::bucket::OWNER_ID) {
            return Err(access_denied(format!(
                "{name} is {expected}, but every bucket here is owned by {}: send that, or leave the header out",
                super::bucket::OWNER_ID
            )));
        }
    }
    Ok(())
}

/// Refuses a `versionId` other than `null`.
pub(crate) fn refuse_version(id: Option<&str>) -> Result<(), S3Error> {
    match id {
        None | Some("null") => Ok(()),
        Some(id) => Err(invalid_argument(format!(
            "invalid version id `{id}`: percore keeps one version of each object, whose id is null (as S3 in a bucket \
             without versioning): ask without a versionId"
        ))),
    }
}

/// Refuses server-side encryption (a header, or a browser form's field,
/// `field` finds): percore stores bytes as they come.
fn refuse_encryption<'v>(field: impl Fn(&str) -> Option<&'v str>) -> Result<(), S3Error> {
    const ASKING: [&str; 3] = [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-copy-source-server-side-encryption-customer-algorithm",
    ];
    match ASKING.iter().find(|name| field(name).is_some()) {
        Some(name) => Err(not_implemented(&format!("server-side encryption ({name})")).because(
            "percore stores objects as they are sent: keep the data directory on an encrypted file system \
             (dm-crypt/LUKS) and send no server-side encryption headers",
        )),
        None => Ok(()),
    }
}

fn no_object_lock(name: &str) -> S3Error {
    invalid_request(format!(
        "{name} asks for Object Lock, which percore does not keep (an object can always be replaced or deleted by \
         a key of --s3-credentials): send the object without it"
    ))
}

fn refuse_acl<'v>(
    field: impl Fn(&str) -> Option<&'v str>,
    acl: Option<&str>,
    anonymous_reads: bool,
) -> Result<(), S3Error> {
    if let Some(name) = GRANTS.iter().find(|name| field(name).is_some()) {
        return Err(acl_not_supported(&format!("{name} grants access to named accounts, which percore does not keep")));
    }
    let Some(acl) = acl.map(str::trim).filter(|acl| !acl.is_empty()) else { return Ok(()) };
    if TRUE_ACLS.contains(&acl) || (acl == "public-read" && anonymous_reads) {
        return Ok(());
    }
    let why = if acl == "public-read" {
        "anonymous reads are off (--s3-anonymous-reads turns them on for every bucket)".to_string()
    } else {
        format!("access here is by the keys of --s3-credentials only, so the canned ACL {acl} would not hold")
    };
    Err(acl_not_supported(&why))
}

pub(crate) fn acl_not_supported(why: &str) -> S3Error {
    S3Error::new(
        400,
        "AccessControlListNotSupported",
        format!("the ACL asked for is not supported: {why}; send private or no ACL"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    #[test]
    fn what_holds_passes_and_nothing_else() {
        for ok in [
            &[][..],
            &[("x-amz-acl", "private")],
            &[("x-amz-acl", "bucket-owner-full-control")],
            &[("x-amz-object-lock-legal-hold", "OFF")],
            &[("content-type", "text/plain")],
        ] {
            assert!(refuse_on_write(headers(ok), false).is_ok(), "{ok:?}");
        }
        assert!(refuse_on_write(headers(&[("x-amz-acl", "public-read")]), true).is_ok());
        assert!(refuse_on_write(headers(&[("acl", "public-read")]), true).is_ok());
        let code = |pairs: &[(&str, &str)], anonymous| refuse_on_write(headers(pairs), anonymous).unwrap_err().code;
        assert_eq!(code(&[("x-amz-acl", "public-read")], false), "AccessControlListNotSupported");
        assert_eq!(code(&[("acl", "public-read")], false), "AccessControlListNotSupported");
        assert_eq!(code(&[("x-amz-acl", "public-read-write")], true), "AccessControlListNotSupported");
        assert_eq!(
            code(&[("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")], true),
            "AccessControlListNotSupported"
        );
        assert_eq!(code(&[("x-amz-object-lock-mode", "GOVERNANCE")], false), "InvalidRequest");
        assert_eq!(code(&[("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00Z")], false), "InvalidRequest");
        assert_eq!(code(&[("x-amz-object-lock-legal-hold", "ON")], false), "InvalidRequest");
        assert_eq!(code(&[("x-amz-write-offset-bytes", "10")], false), "NotImplemented");
        assert_eq!(code(&[("x-amz-server-side-encryption", "AES256")], false), "NotImplemented");
        assert!(refuse_on_bucket(headers(&[("x-amz-bucket-object-lock-enabled", "false")]), false).is_ok());
        assert_eq!(
            refuse_on_bucket(headers(&[("x-amz-bucket-object-lock-enabled", "true")]), false).unwrap_err().code,
            "NotImplemented"
        );
        assert_eq!(
            refuse_on_bucket(headers(&[("x-amz-acl", "public-read")]), false).unwrap_err().code,
            "AccessControlListNotSupported"
        );
        assert!(refuse_version(None).is_ok() && refuse_version(Some("null")).is_ok());
        assert_eq!(refuse_version(Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")).unwrap_err().code, "InvalidArgument");
    }
}
