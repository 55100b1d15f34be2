//! A bucket's tags: PutBucketTagging, GetBucketTagging (404 NoSuchTagSet
//! when it has none, as S3 answers) and DeleteBucketTagging. Kept in an
//! extended attribute of the bucket's directory (`store::Store::mark_dir`,
//! fsynced before the answer), in the form an object's tags are kept
//! (`tagging`). On a ring every node keeps them (set and removed on every
//! node, as CORS rules are), so any node answers; `percore rebalance`
//! carries them to a node that joins (`carried::Bucket`).

use super::cluster;
use super::error::S3Error;
use super::tags::{self, Tags};
use super::{bucket, Call};

/// The attribute of the bucket's directory.
pub(crate) const XATTR: &str = "user.percore.s3.tags";

/// The most tags a bucket carries, as on S3.
const TAGS_MAX: usize = 50;

/// The most bytes the stored tags take: what one attribute of a directory
/// holds on every file system percore runs on (ext4 keeps about 4 KiB of
/// attributes with an inode). Fifty tags S3 takes can be longer: such a
/// set is refused, saying why.
const STORED_BYTES_MAX: usize = 3072;

/// The most bytes of a PutBucketTagging body: fifty of the longest tags,
/// written with character references, fit.
const BODY_BYTES_MAX: u64 = 256 << 10;

/// The bucket's tags; none if it has none.
async fn read(call: &Call<'_, '_, '_>, bucket: &str) -> Tags {
    let Ok(dir) = call.shard().store.root().open_dir(bucket).await else { return Tags::default() };
    let mut value = vec![0u8; STORED_BYTES_MAX];
    match rustix::fs::fgetxattr(&dir, XATTR, &mut value) {
        Ok(n) => std::str::from_utf8(&value[..n]).ok().and_then(Tags::from_stored).unwrap_or_default(),
        Err(_) => Tags::default(),
    }
}

/// Whether `value` is tags as this module stores them (what `percore
/// rebalance` carries to another node).
pub(crate) fn stored_value_holds(value: &str) -> bool {
    let tags = Tags::from_stored(value);
    value.len() <= STORED_BYTES_MAX && tags.is_some_and(|tags| !tags.0.is_empty() && check(&tags).is_ok())
}

/// Checks a bucket's tags as S3 does.
fn check(tags: &Tags) -> Result<(), S3Error> {
    if tags.0.len() > TAGS_MAX {
        return Err(tags::invalid_tag(format!("a bucket carries at most {TAGS_MAX} tags: {} were sent", tags.0.len())));
    }
    tags::check_each(tags)
}

/// PutBucketTagging: the body's tags replace the bucket's (an empty set
/// removes them).
pub(crate) async fn put(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    let (body, _) = call.body(BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    bucket::must_exist(call, bucket).await?;
    let tags = Tags::read_xml(&document)?;
    check(&tags)?;
    let value = tags.stored().map(|(_, value)| value);
    if let Some(value) = value.as_ref().filter(|v| v.len() > STORED_BYTES_MAX) {
        return Err(tags::invalid_tag(format!(
            "the tags take {} bytes stored; percore keeps at most {STORED_BYTES_MAX} per bucket (an extended \
             attribute of its directory): use fewer or shorter tags",
            value.len()
        )));
    }
    bucket::store_setting(bucket, XATTR, value.map(String::into_bytes)).await?;
    let partly = "the tags are set on the nodes that answered; set them again";
    cluster::on_every_node(call, "PUT", bucket, "tagging", &document, 204, partly).await?;
    // (S3 answers 204.)
    call.empty(204, "").await
}

/// GetBucketTagging.
pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    let tags = read(call, bucket).await;
    if tags.0.is_empty() {
        return Err(S3Error::new(404, "NoSuchTagSet", "the bucket has no tags"));
    }
    call.xml(tags::document(&tags)).await
}

/// DeleteBucketTagging.
pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    bucket::store_setting(bucket, XATTR, None).await?;
    let partly = "the tags are removed from the nodes that answered; remove them again";
    cluster::on_every_node(call, "DELETE", bucket, "tagging", &[], 204, partly).await?;
    call.empty(204, "").await
}
