//! A copy's source that lives on another node of the ring (CopyObject,
//! UploadPartCopy): read from that node's S3 listener with a signed GET
//! (its `Range` for a part's `x-amz-copy-source-range`), streamed into the
//! upload, its MD5 computed on the way. What the object keeps (its
//! Content-Type, `x-amz-meta-*`, the other kept headers and a whole
//! object's checksum) comes from the answer's head, its tags (when the head
//! counts some) from a GetObjectTagging of the same node.

use crate::peers::{Peer, Streamed};
use crate::store::{Store, Upload};

use super::checksum::Hasher;
use super::cluster;
use super::error::{invalid_argument, S3Error};
use super::md5::Md5;
use super::meta::KEPT_HEADERS;
use super::object::write_piece;
use super::tags::Tags;
use super::Call;

/// Bytes written into the upload at a time.
const PIECE_BYTES: usize = 1 << 20;

/// The source, its head read, its bytes to come.
pub(crate) struct Source {
    streamed: Streamed,
    node: String,
    /// The bytes to copy.
    pub(crate) len: u64,
    pub(crate) etag: String,
    /// Its Last-Modified, in seconds since the epoch.
    pub(crate) modified: u64,
    /// What a copy that keeps the source's metadata stores.
    pub(crate) headers: Vec<(String, String)>,
}

/// Opens `key` of `bucket` on `peer`, all of it or `range` (`bytes=FIRST-LAST`,
/// which must lie within it).
pub(crate) async fn open(
    call: &Call<'_, '_, '_>,
    peer: &Peer,
    bucket: &str,
    key: &str,
    range: Option<(u64, u64)>,
) -> Result<Source, S3Error> {
    let range_header = range.map(|(first, last)| format!("bytes={first}-{last}"));
    let extra: Vec<(&str, &str)> = range_header.iter().map(|r| ("range", r.as_str())).collect();
    let path = cluster::object_path(bucket, key);
    let mut streamed =
        cluster::open(call, peer, &path, &extra).await.map_err(|why| cluster::unreachable(&peer.name, &why))?;
    let expected = if range.is_some() { 206 } else { 200 };
    if streamed.status != expected {
        return Err(refused(&mut streamed, &peer.name, range).await);
    }
    let len: u64 = streamed
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| cluster::unreachable(&peer.name, "its answer has no Content-Length"))?;
    if let Some((first, last)) = range {
        // The node clamps a range that runs past the end; a copy's may not.
        if len != last - first + 1 {
            return Err(beyond(first, last));
        }
    }
    let etag = streamed.header("etag").unwrap_or_default().to_string();
    let modified = streamed
        .header("last-modified")
        .and_then(super::date::parse_timestamp)
        .ok_or_else(|| cluster::unreachable(&peer.name, "its answer has no Last-Modified"))?;
    let mut headers: Vec<(String, String)> = streamed
        .headers
        .iter()
        .filter(|(name, _)| {
            KEPT_HEADERS.contains(&name.as_str())
                || name.starts_with("x-amz-meta-")
                || (range.is_none() && name.starts_with("x-amz-checksum-"))
        })
        .cloned()
        .collect();
    // Tags are not in the head: asked for when it says there are some.
    let tagged = streamed.header("x-amz-tagging-count").is_some_and(|n| n.trim() != "0");
    if tagged && range.is_none() {
        headers.extend(tags_of(call, peer, &path).await?.stored());
    }
    Ok(Source { streamed, node: peer.name.clone(), len, etag, modified, headers })
}

/// The tags of the object at `path` on `peer` (GetObjectTagging).
async fn tags_of(call: &Call<'_, '_, '_>, peer: &Peer, path: &str) -> Result<Tags, S3Error> {
    let answer = cluster::ask(call, peer, "GET", path, &[("tagging", "")], Vec::new())
        .await
        .map_err(|why| cluster::unreachable(&peer.name, &why))?;
    if answer.status != 200 {
        return Err(cluster::refused(&peer.name, &answer));
    }
    Tags::from_xml(&answer.body)
        .map_err(|err| cluster::unreachable(&peer.name, &format!("its tags do not read: {}", err.message)))
}

fn beyond(first: u64, last: u64) -> S3Error {
    invalid_argument(format!("the x-amz-copy-source-range `bytes={first}-{last}` must lie within the source"))
}

/// The node's error answer to the GET, as this copy's.
async fn refused(streamed: &mut Streamed, node: &str, range: Option<(u64, u64)>) -> S3Error {
    if streamed.status == 416 {
        if let Some((first, last)) = range {
            return beyond(first, last);
        }
    }
    // (An error's body is small; one that cannot be read still names the status.)
    let body = streamed.rest(64 << 10).await.unwrap_or_default();
    let answer = crate::peers::Answer { status: streamed.status, body };
    cluster::refused(node, &answer)
}

/// Copies the source's bytes into `upload` (hashed into `checksum` too, if
/// given); their MD5.
pub(crate) async fn copy_into(
    store: &Store,
    upload: &Upload,
    source: &mut Source,
    mut checksum: Option<&mut Hasher>,
) -> Result<[u8; 16], S3Error> {
    let mut md5 = Md5::new();
    let mut offset = 0u64;
    let mut piece: Vec<u8> = Vec::with_capacity(PIECE_BYTES);
    loop {
        let bytes = source
            .streamed
            .next(PIECE_BYTES - piece.len())
            .await
            .map_err(|why| cluster::unreachable(&source.node, &format!("while the source was read: {why}")))?;
        let end = bytes.is_empty();
        if piece.is_empty() {
            piece = bytes;
        } else {
            piece.extend_from_slice(&bytes);
        }
        if (end || piece.len() == PIECE_BYTES) && !piece.is_empty() {
            md5.update(&piece);
            if let Some(checksum) = checksum.as_deref_mut() {
                checksum.update(&piece);
            }
            let len = piece.len() as u64;
            write_piece(store, upload, std::mem::take(&mut piece), offset).await?;
            offset += len;
        }
        if end {
            break;
        }
    }
    if offset != source.len {
        return Err(cluster::unreachable(&source.node, "the source ended early"));
    }
    Ok(md5.finalize())
}
