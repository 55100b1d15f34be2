//! Object tags (`x-amz-tagging`, `?tagging`): percore keeps none. A write
//! that sends tags is refused with 501, as S3's directory buckets refuse a
//! tag set that is not empty, so no object has any, and an object's tags
//! read as the empty set it truly has. aws-cli v2 reads the source's tags
//! when it copies an object in parts (`--copy-props default`): a 501 there
//! would fail the copy, where an empty set lets it go on.

use super::error::{not_implemented, S3Error};
use super::xml::Writer;
use super::{object, Call};

/// Refuses a write that sends tags: `value`, the request's `x-amz-tagging`
/// (or a browser form's `tagging` field). An empty value sends none.
pub(crate) fn refuse(value: Option<&str>) -> Result<(), S3Error> {
    match value {
        Some(tags) if !tags.trim().is_empty() => Err(not_implemented("object tags (x-amz-tagging)").because(
            "percore keeps no tags, and would lose these: send the object without them (an object's tags read as \
             the empty set)",
        )),
        _ => Ok(()),
    }
}

/// GetObjectTagging: the empty set, for an object that exists.
pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    object::open(call, bucket, path).await?;
    let mut out = Writer::document();
    out.root("Tagging");
    out.open("TagSet");
    out.close("TagSet");
    out.close("Tagging");
    call.xml(out.finish()).await
}

/// DeleteObjectTagging: nothing to remove, for an object that exists.
pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    object::open(call, bucket, path).await?;
    call.empty(204, "").await
}
