//! ListMultipartUploads: the uploads of a bucket not yet completed or
//! aborted, in key order (then by when they began), paged by `max-uploads`,
//! `key-marker` and `upload-id-marker`; `prefix` keeps the keys under it and
//! `delimiter` rolls the keys with it after the prefix into CommonPrefixes
//! (each counting as one entry of a page, as on S3); `encoding-type=url`
//! encodes what it lists. On a ring, every node's uploads are gathered.

use super::error::{invalid_argument, S3Error};
use super::head::encode;
use super::uploads::uploads;
use super::xml::{self, Writer};
use super::{bucket, cluster, Call};

/// Uploads listed per page at most.
const UPLOADS_MAX: usize = 1000;

/// An upload: its key, id and when it began (seconds since the epoch).
type Upload = (String, String, u64);

/// What a page lists, in order.
enum Entry {
    Upload(Upload),
    Prefix(String),
}

pub(crate) async fn list(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    let q = call.query;
    let prefix = q.get("prefix").unwrap_or("").to_string();
    let delimiter = q.get("delimiter").unwrap_or("").to_string();
    let url = match q.get("encoding-type") {
        None => false,
        Some("url") => true,
        Some(other) => return Err(invalid_argument(format!("invalid encoding method specified: {other}"))),
    };
    let max = match q.get("max-uploads") {
        Some(m) => m.parse::<usize>().map_err(|_| invalid_argument("max-uploads must be a number"))?.min(UPLOADS_MAX),
        None => UPLOADS_MAX,
    };
    let key_marker = q.get("key-marker").unwrap_or("").to_string();
    let id_marker = q.get("upload-id-marker").unwrap_or("").to_string();
    let mut all: Vec<Upload> = uploads(call.shard().store.root())
        .await
        .into_iter()
        .filter(|(_, r)| r.bucket == bucket && r.key.starts_with(&prefix))
        .map(|(id, r)| (r.key, id, r.initiated))
        .collect();
    if cluster::local(call) {
        // A peer's question: this node's uploads, as they are.
        let json = serde_json::to_vec(&all).map_err(|e| super::error::internal(e.to_string()))?;
        let head = crate::http::response::Head::new(200).header("Content-Type", "application/json");
        let whole = call.reply.finish_with(head, &json);
        return Ok(call.reply.send_one(whole).await);
    }
    if cluster::spans_nodes(call) {
        // Each upload lives on its key's node: every node must answer.
        let query = [("uploads", ""), ("prefix", prefix.as_str())];
        for (name, answer) in cluster::everywhere(call, "GET", &format!("/{bucket}"), &query, &[]).await {
            match answer {
                Ok(a) if a.status == 200 => all.extend(
                    serde_json::from_slice::<Vec<Upload>>(&a.body)
                        .map_err(|e| cluster::unreachable(&name, &format!("its uploads do not parse: {e}")))?,
                ),
                Ok(a) if a.status == 404 => {}
                Ok(a) => return Err(cluster::refused(&name, &a)),
                Err(why) => return Err(cluster::unreachable(&name, &why)),
            }
        }
    }
    all.sort_by(|a, b| (&a.0, a.2, &a.1).cmp(&(&b.0, b.2, &b.1)));
    // A page after the markers: just after the upload they name, or (if it
    // has gone meanwhile) after every key below the key marker and that
    // key's uploads up to the id marker.
    if !key_marker.is_empty() {
        match all.iter().position(|(key, id, _)| *key == key_marker && *id == id_marker) {
            Some(at) => drop(all.drain(..=at)),
            None => all.retain(|(key, id, _)| {
                *key > key_marker || (*key == key_marker && !id_marker.is_empty() && *id > id_marker)
            }),
        }
    }
    let (entries, truncated) = page(all, &prefix, &delimiter, &key_marker, max);
    let text = |s: &str| if url { encode(s.as_bytes(), true) } else { s.to_string() };
    let mut out = Writer::document();
    out.root("ListMultipartUploadsResult");
    out.leaf("Bucket", bucket);
    out.leaf("KeyMarker", text(&key_marker));
    out.leaf("UploadIdMarker", &id_marker);
    match (truncated, entries.last()) {
        (true, Some(Entry::Upload((key, id, _)))) => {
            out.leaf("NextKeyMarker", text(key));
            out.leaf("NextUploadIdMarker", id);
        }
        (true, Some(Entry::Prefix(common))) => {
            out.leaf("NextKeyMarker", text(common));
            out.leaf("NextUploadIdMarker", "");
        }
        _ => {}
    }
    if url {
        out.leaf("EncodingType", "url");
    }
    out.leaf("Prefix", text(&prefix));
    if !delimiter.is_empty() {
        out.leaf("Delimiter", text(&delimiter));
    }
    out.leaf("MaxUploads", max);
    out.leaf("IsTruncated", truncated);
    for entry in &entries {
        let Entry::Upload((key, id, initiated)) = entry else { continue };
        out.open("Upload");
        out.leaf("Key", text(key));
        out.leaf("UploadId", id);
        out.open("Initiator");
        out.leaf("ID", "percore");
        out.leaf("DisplayName", "percore");
        out.close("Initiator");
        bucket::owner(&mut out);
        out.leaf("StorageClass", "STANDARD");
        out.leaf("Initiated", xml::iso8601(*initiated));
        out.close("Upload");
    }
    for entry in &entries {
        if let Entry::Prefix(common) = entry {
            out.open("CommonPrefixes");
            out.leaf("Prefix", text(common));
            out.close("CommonPrefixes");
        }
    }
    out.close("ListMultipartUploadsResult");
    call.xml(out.finish()).await
}

/// The page's entries from `uploads` (sorted, after the markers): each
/// upload, or for a key with `delimiter` after `prefix` the prefix up to it
/// (once, and only if it sorts after `key_marker`: an earlier page that
/// ended on it listed it, and a marker inside it starts after it, as
/// ListObjects does); at most `max`, and whether more are left.
fn page(uploads: Vec<Upload>, prefix: &str, delimiter: &str, key_marker: &str, max: usize) -> (Vec<Entry>, bool) {
    let mut entries: Vec<Entry> = Vec::new();
    for upload in uploads {
        let common = (!delimiter.is_empty())
            .then(|| upload.0[prefix.len()..].find(delimiter))
            .flatten()
            .map(|at| upload.0[..prefix.len() + at + delimiter.len()].to_string());
        let entry = match common {
            Some(common) if !key_marker.is_empty() && common.as_str() <= key_marker => continue,
            Some(common) if matches!(entries.last(), Some(Entry::Prefix(last)) if *last == common) => continue,
            Some(common) => Entry::Prefix(common),
            None => Entry::Upload(upload),
        };
        if entries.len() == max {
            return (entries, true);
        }
        entries.push(entry);
    }
    (entries, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Upload((key, id, _)) => format!("{key}#{id}"),
                Entry::Prefix(p) => format!("{p}*"),
            })
            .collect()
    }

    #[test]
    fn prefixes_roll_up_and_page_once() {
        let all: Vec<Upload> = ["a", "d/1", "d/2", "d/x/3", "e", "f/1"]
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), format!("u{i}"), 0))
            .collect();
        let (entries, more) = page(all.clone(), "", "/", "", 10);
        assert_eq!(names(&entries), ["a#u0", "d/*", "e#u4", "f/*"]);
        assert!(!more);
        let (entries, more) = page(all.clone(), "", "/", "", 2);
        assert_eq!(names(&entries), ["a#u0", "d/*"]);
        assert!(more);
        // The next page starts after the prefix: the markers' filter keeps
        // keys above `d/`, which begin with it.
        let after: Vec<Upload> = all.iter().filter(|u| u.0.as_str() > "d/").cloned().collect();
        let (entries, _) = page(after, "", "/", "d/", 2);
        assert_eq!(names(&entries), ["e#u4", "f/*"]);
        // A key marker inside a prefix starts after the prefix too.
        let inside: Vec<Upload> = all.iter().filter(|u| u.0.as_str() > "d/1").cloned().collect();
        let (entries, _) = page(inside, "", "/", "d/1", 10);
        assert_eq!(names(&entries), ["e#u4", "f/*"]);
        let under: Vec<Upload> = all.iter().filter(|u| u.0.starts_with("d/")).cloned().collect();
        let (entries, _) = page(under, "d/", "/", "", 10);
        assert_eq!(names(&entries), ["d/1#u1", "d/2#u2", "d/x/*"]);
        let (entries, more) = page(all, "", "", "", 6);
        assert_eq!(entries.len(), 6);
        assert!(!more);
    }
}
