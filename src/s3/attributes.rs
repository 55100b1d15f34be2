//! GetObjectAttributes (`GET /bucket/key?attributes`): what
//! `x-amz-object-attributes` asks for of an object, without its bytes: its
//! ETag, its checksum and kind, its parts (a multipart object's, from the
//! layout it keeps: `parts`; paged by `x-amz-max-parts` and
//! `x-amz-part-number-marker`), its storage class and size.

use super::error::{invalid_argument, S3Error};
use super::xml::Writer;
use super::{checksum, object, parts, Call};

/// The attributes a request may ask for.
const KNOWN: [&str; 5] = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"];
/// Parts listed per answer at most (as on S3).
const PARTS_MAX: u32 = 1000;

pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str, path: &[u8]) -> Result<bool, S3Error> {
    let wanted: Vec<&str> = call
        .headers
        .get("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(invalid_argument(
            "x-amz-object-attributes must name at least one of ".to_string() + &KNOWN.join(", "),
        ));
    }
    if let Some(unknown) = wanted.iter().find(|a| !KNOWN.contains(a)) {
        return Err(invalid_argument(format!("{unknown} is not an object attribute: ask for {}", KNOWN.join(", "))));
    }
    let max = match call.headers.get("x-amz-max-parts") {
        Some(m) => m.trim().parse::<u32>().map_err(|_| invalid_argument("x-amz-max-parts must be a number"))?,
        None => PARTS_MAX,
    }
    .min(PARTS_MAX);
    let marker = match call.headers.get("x-amz-part-number-marker") {
        Some(m) => {
            m.trim().parse::<u32>().map_err(|_| invalid_argument("x-amz-part-number-marker must be a number"))?
        }
        None => 0,
    };
    let opened = object::open(call, bucket, path).await?;
    let stored = opened.headers();
    let mut out = Writer::document();
    out.root("GetObjectAttributesResponse");
    if wanted.contains(&"ETag") {
        out.leaf("ETag", opened.etag().trim_matches('"'));
    }
    let summed = stored.iter().find(|(name, _)| name.starts_with("x-amz-checksum-") && name != checksum::TYPE_HEADER);
    if let (true, Some((name, value))) = (wanted.contains(&"Checksum"), summed) {
        if let Ok(algorithm) = checksum::Algorithm::named(&name["x-amz-checksum-".len()..]) {
            let kind = stored.iter().find(|(n, _)| n == checksum::TYPE_HEADER).map_or("FULL_OBJECT", |(_, k)| k);
            out.open("Checksum");
            out.leaf(&algorithm.element(), value);
            out.leaf("ChecksumType", kind);
            out.close("Checksum");
        }
    }
    let layout = stored.iter().find(|(name, _)| name == parts::HEADER).and_then(|(_, text)| parts::decode(text));
    if let (true, Some(runs)) = (wanted.contains(&"ObjectParts"), &layout) {
        let total = parts::count(runs);
        let shown: Vec<u32> = (marker.saturating_add(1)..=total).take(max as usize).collect();
        out.open("ObjectParts");
        out.leaf("PartsCount", total);
        out.leaf("PartNumberMarker", marker);
        if let Some(last) = shown.last() {
            out.leaf("NextPartNumberMarker", last);
        }
        out.leaf("MaxParts", max);
        out.leaf("IsTruncated", shown.last().is_some_and(|last| *last < total));
        for number in shown {
            let (_, size) = parts::span(runs, number).expect("a part within the count");
            out.open("Part");
            out.leaf("PartNumber", number);
            out.leaf("Size", size);
            out.close("Part");
        }
        out.close("ObjectParts");
    }
    if wanted.contains(&"StorageClass") {
        out.leaf("StorageClass", "STANDARD");
    }
    if wanted.contains(&"ObjectSize") {
        out.leaf("ObjectSize", opened.size);
    }
    out.close("GetObjectAttributesResponse");
    let modified = httpdate::fmt_http_date(opened.stat.modified());
    call.xml_with(out.finish(), &format!("Last-Modified: {modified}\r\n")).await
}
