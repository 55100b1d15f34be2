//! A bucket's settings that percore does not keep, read as what they are:
//! unset. Tools that manage buckets (Terraform's `aws_s3_bucket`, S3
//! browsers) read each of them after they make or import a bucket; an
//! answer that says "none" is true here, where a 501 would stop them.
//! Removing one is removing nothing (204, as S3 answers for a setting a
//! bucket does not have). Setting one is not served (501, `s3::unserved`):
//! percore would not do what it says.

use super::error::S3Error;
use super::xml::Writer;
use super::{bucket, Call, Query};

/// How a setting reads when the bucket has none.
enum Unset {
    /// 404 with this code and message, as S3 answers.
    Missing(&'static str, &'static str),
    /// This document: the root, and the one element inside it, if any.
    Document(&'static str, Option<(&'static str, &'static str)>),
}

/// The settings, by their query parameter.
const SETTINGS: [(&str, Unset); 12] = [
    ("policy", Unset::Missing("NoSuchBucketPolicy", "the bucket policy does not exist")),
    ("policyStatus", Unset::Missing("NoSuchBucketPolicy", "the bucket policy does not exist")),
    ("lifecycle", Unset::Missing("NoSuchLifecycleConfiguration", "the lifecycle configuration does not exist")),
    ("website", Unset::Missing("NoSuchWebsiteConfiguration", "the bucket has no website configuration")),
    (
        "encryption",
        Unset::Missing(
            "ServerSideEncryptionConfigurationNotFoundError",
            "the server-side encryption configuration was not found: percore stores bytes as sent",
        ),
    ),
    (
        "replication",
        Unset::Missing("ReplicationConfigurationNotFoundError", "the replication configuration was not found"),
    ),
    (
        "object-lock",
        Unset::Missing(
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
        ),
    ),
    (
        "publicAccessBlock",
        Unset::Missing("NoSuchPublicAccessBlockConfiguration", "the public access block configuration was not found"),
    ),
    ("logging", Unset::Document("BucketLoggingStatus", None)),
    ("accelerate", Unset::Document("AccelerateConfiguration", None)),
    ("requestPayment", Unset::Document("RequestPaymentConfiguration", Some(("Payer", "BucketOwner")))),
    ("notification", Unset::Document("NotificationConfiguration", None)),
];

/// Which of these settings `query` names, if any.
pub(crate) fn named(query: &Query) -> Option<&'static str> {
    SETTINGS.iter().map(|(name, _)| *name).find(|name| query.has(name))
}

/// GET (the setting, unset) or DELETE (nothing to remove) of the setting
/// `name` of `bucket`.
pub(crate) async fn answer(
    call: &mut Call<'_, '_, '_>,
    bucket: &str,
    name: &str,
    delete: bool,
) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    if delete {
        return call.empty(204, "").await;
    }
    let (_, unset) = SETTINGS.iter().find(|(n, _)| *n == name).expect("a setting named by `named`");
    match unset {
        Unset::Missing(code, message) => Err(S3Error::new(404, code, *message)),
        Unset::Document(root, inside) => {
            let mut out = Writer::document();
            out.root(root);
            if let Some((name, text)) = inside {
                out.leaf(name, text);
            }
            out.close(root);
            call.xml(out.finish()).await
        }
    }
}
