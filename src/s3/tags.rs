//! Object tags, as requests carry them and as they are kept: an
//! `x-amz-tagging` header (URL query form), a Tagging document, and the
//! entry kept with an object's S3 metadata (`meta`), [`HEADER`]
//! (`x-percore-*` entries are kept, never sent as headers), which holds the
//! tags as `k1=v1&k2=v2` with only `=` (the one separator a tag may hold)
//! percent-encoded: ten tags of the longest ASCII keys and values then
//! take 3,860 bytes, within the 4 KiB that ext4 keeps with a file
//! (URL-encoded throughout they could take several times that). The
//! operations on an object's tags are `tagging`'s, a bucket's
//! `bucket_tagging`'s.
//!
//! Tags are checked as S3 checks them ([`check`]): at most [`TAGS_MAX`],
//! keys of 1 to 128 characters not starting with `aws:`, values up to 256,
//! letters, numbers, spaces and `_ . : / = + - @` only, each key once.

use super::error::{invalid_argument, malformed_xml, S3Error};
use super::head::{decode, Headers};
use super::xml::{self, Writer};

/// The stored entry's name.
pub(crate) const HEADER: &str = "x-percore-tags";

/// The most tags an object carries, as on S3.
pub(crate) const TAGS_MAX: usize = 10;
/// The longest key, in characters.
const KEY_CHARS_MAX: usize = 128;
/// The longest value, in characters.
const VALUE_CHARS_MAX: usize = 256;

/// An object's tags, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tags(pub(crate) Vec<(String, String)>);

impl Tags {
    /// The tags of an `x-amz-tagging` header: URL query parameters
    /// (`k1=v1&k2=v2`, each part percent-encoded; `+` is a space, as
    /// Python's `urlencode` writes it; a key without `=` has an empty value).
    pub(crate) fn from_header(value: &str) -> Result<Tags, S3Error> {
        let mut tags = Vec::new();
        for pair in value.trim().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let part = |text: &str| {
                decode(&text.replace('+', " "))
                    .map_err(|_| invalid_tag(format!("x-amz-tagging's {text:?} is not percent-encoded UTF-8")))
            };
            tags.push((part(key)?, part(value)?));
        }
        let tags = Tags(tags);
        check(&tags)?;
        Ok(tags)
    }

    /// The tags of a `<Tagging><TagSet><Tag><Key>..</Key><Value>..</Value>`
    /// document (PutObjectTagging's body, a form's `tagging` field).
    pub(crate) fn from_xml(document: &[u8]) -> Result<Tags, S3Error> {
        let tags = Tags::read_xml(document)?;
        check(&tags)?;
        Ok(tags)
    }

    /// The same, not checked.
    pub(crate) fn read_xml(document: &[u8]) -> Result<Tags, S3Error> {
        let items = xml::fields_within(document, &["Tagging", "TagSet"], "Tag").map_err(malformed_xml)?;
        let mut tags = Vec::with_capacity(items.len());
        for fields in items {
            let field = |name: &str| {
                let mut found = fields.iter().filter(|(n, _)| n == name);
                match (found.next(), found.next()) {
                    (Some((_, text)), None) => Ok(text.clone()),
                    // (An empty element is no field: an empty key is
                    // refused as one, by `check`.)
                    (None, _) => Ok(String::new()),
                    _ => Err(malformed_xml(format!("each Tag must hold one {name}"))),
                }
            };
            tags.push((field("Key")?, field("Value")?));
        }
        Ok(Tags(tags))
    }

    /// The tags kept in a stored entry's value (written by [`Tags::stored`]).
    pub(crate) fn from_stored(value: &str) -> Option<Tags> {
        let mut tags = Vec::new();
        for pair in value.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            tags.push((decode(key).ok()?, decode(value).ok()?));
        }
        Some(Tags(tags))
    }

    /// The stored entry, none for no tags.
    pub(crate) fn stored(&self) -> Option<(String, String)> {
        if self.0.is_empty() {
            return None;
        }
        let mut value = String::new();
        for (key, tag_value) in &self.0 {
            if !value.is_empty() {
                value.push('&');
            }
            escape_into(&mut value, key);
            value.push('=');
            escape_into(&mut value, tag_value);
        }
        Some((HEADER.to_string(), value))
    }

    /// The tags kept among an object's stored `headers`.
    pub(crate) fn of(headers: &[(String, String)]) -> Tags {
        headers
            .iter()
            .find(|(name, _)| name == HEADER)
            .and_then(|(_, value)| Tags::from_stored(value))
            .unwrap_or_default()
    }
}

/// Appends `text` with the separators percent-encoded: `=` (and `&` and
/// `%`, which no tag holds, for a value not checked yet).
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '=' => out.push_str("%3D"),
            '&' => out.push_str("%26"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
}

/// Whether a stored entry's value (a writer on `/files/` may send one with
/// `percore rebalance`'s header) is a tag set S3 would take.
pub(crate) fn stored_value_holds(value: &str) -> bool {
    Tags::from_stored(value).is_some_and(|tags| !tags.0.is_empty() && check(&tags).is_ok())
}

/// How many tags a stored entry's value keeps (`x-amz-tagging-count`).
pub(crate) fn count(value: &str) -> usize {
    value.split('&').filter(|p| !p.is_empty()).count()
}

pub(crate) fn invalid_tag(message: impl Into<String>) -> S3Error {
    S3Error::new(400, "InvalidTag", message)
}

/// Checks an object's tags as S3 does.
pub(crate) fn check(tags: &Tags) -> Result<(), S3Error> {
    if tags.0.len() > TAGS_MAX {
        return Err(S3Error::new(
            400,
            "BadRequest",
            format!("object tags cannot be more than {TAGS_MAX}: {} were sent", tags.0.len()),
        ));
    }
    check_each(tags)
}

/// Checks each tag of a set (an object's or a bucket's) as S3 does.
pub(crate) fn check_each(tags: &Tags) -> Result<(), S3Error> {
    let allowed = |c: char| {
        c.is_alphabetic() || c.is_numeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
    };
    for (i, (key, value)) in tags.0.iter().enumerate() {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > KEY_CHARS_MAX {
            return Err(invalid_tag(format!("a tag key must be 1 to {KEY_CHARS_MAX} characters long ({key:?})")));
        }
        if value.chars().count() > VALUE_CHARS_MAX {
            return Err(invalid_tag(format!("the value of tag {key:?} is longer than {VALUE_CHARS_MAX} characters")));
        }
        if let Some(c) = key.chars().chain(value.chars()).find(|&c| !allowed(c)) {
            return Err(invalid_tag(format!(
                "tag {key:?} holds {c:?}: tag keys and values may hold letters, numbers, spaces and _ . : / = + - @"
            )));
        }
        if key.starts_with("aws:") {
            return Err(invalid_tag(format!("tag keys starting with aws: are reserved ({key:?})")));
        }
        if tags.0[..i].iter().any(|(earlier, _)| earlier == key) {
            return Err(invalid_tag(format!("the tag key {key:?} is given twice: each key once")));
        }
    }
    Ok(())
}

/// The request's tags (`x-amz-tagging`), added to the `headers` a write
/// stores.
pub(crate) fn add_requested(request: &Headers, headers: &mut Vec<(String, String)>) -> Result<(), S3Error> {
    if let Some(value) = request.get("x-amz-tagging") {
        headers.extend(Tags::from_header(value)?.stored());
    }
    Ok(())
}

/// The tags of a copy, added to the `headers` it stores: the source's
/// (`source`, its stored headers) with `x-amz-tagging-directive: COPY`, the
/// default, or the request's with `REPLACE`.
pub(crate) fn add_copied(
    request: &Headers,
    source: &[(String, String)],
    headers: &mut Vec<(String, String)>,
) -> Result<(), S3Error> {
    headers.retain(|(name, _)| name != HEADER);
    match request.get("x-amz-tagging-directive").unwrap_or("COPY") {
        "COPY" => {
            headers.extend(source.iter().find(|(name, _)| name == HEADER).cloned());
            Ok(())
        }
        "REPLACE" => add_requested(request, headers),
        other => Err(invalid_argument(format!("x-amz-tagging-directive must be COPY or REPLACE, not {other}"))),
    }
}

/// `tags` as GetObjectTagging (and GetBucketTagging) answers them.
pub(crate) fn document(tags: &Tags) -> String {
    let mut out = Writer::document();
    out.root("Tagging");
    out.open("TagSet");
    for (key, value) in &tags.0 {
        out.open("Tag");
        out.leaf("Key", key);
        out.leaf("Value", value);
        out.close("Tag");
    }
    out.close("TagSet");
    out.close("Tagging");
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        Tags(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn a_header_is_read_as_url_query_parameters() {
        assert_eq!(Tags::from_header("").unwrap(), Tags::default());
        assert_eq!(
            Tags::from_header("project=blue&team=a+b&empty=&bare&path=%2Fx%2By").unwrap(),
            tags(&[("project", "blue"), ("team", "a b"), ("empty", ""), ("bare", ""), ("path", "/x+y")])
        );
        assert_eq!(Tags::from_header("k%C3%A9y=v%C3%A4lue").unwrap(), tags(&[("kéy", "välue")]));
        for (bad, code) in [
            ("a=1&a=2", "InvalidTag"),
            ("=v", "InvalidTag"),
            ("aws:x=1", "InvalidTag"),
            ("k=a,b", "InvalidTag"),
            ("k=%FF", "InvalidTag"),
            ("a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11", "BadRequest"),
        ] {
            assert_eq!(Tags::from_header(bad).unwrap_err().code, code, "{bad}");
        }
    }

    #[test]
    fn limits_are_counted_in_characters() {
        let key = "é".repeat(KEY_CHARS_MAX);
        let value = "ü".repeat(VALUE_CHARS_MAX);
        assert!(check(&tags(&[(&key, &value)])).is_ok());
        assert!(check(&tags(&[(&format!("{key}a"), "")])).is_err());
        assert!(check(&tags(&[("k", &format!("{value}a"))])).is_err());
        assert!(check(&tags(&[("with space", "x y"), ("日本", "٣"), ("a_b.c:d/e=f+g-h@i", "")])).is_ok());
        for bad in ["tab\t", "line\n", "star*", "comma,", "quote\"", "nul\0"] {
            assert!(check(&tags(&[("k", bad)])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_stored_form_reads_back_exactly() {
        let set = tags(&[("a b", "c&d=e"), ("x+y", "%41"), ("ключ", ""), ("k", "v")]);
        let (name, value) = set.stored().unwrap();
        assert_eq!(name, HEADER);
        assert_eq!(count(&value), 4);
        assert_eq!(value, "a b=c%26d%3De&x+y=%2541&ключ=&k=v");
        assert_eq!(Tags::of(&[(name, value.clone())]), set);
        assert!(!stored_value_holds(&value), "& and % are no tag's");
        let valid = tags(&[("a=b", "=c="), ("ключ", "")]);
        let (_, value) = valid.stored().unwrap();
        assert!(stored_value_holds(&value));
        assert_eq!(Tags::from_stored(&value), Some(valid));
        assert!(!stored_value_holds("k=a%2Cb"), "a comma is no tag S3 takes");
        assert!(!stored_value_holds("novalue"));
        // The largest set S3 takes, in ASCII, fits in ext4's 4 KiB.
        let key = |i: usize| format!("{i}{}", "k".repeat(KEY_CHARS_MAX - 1));
        let largest = Tags((0..TAGS_MAX).map(|i| (key(i), "=".repeat(VALUE_CHARS_MAX))).collect());
        assert!(check(&largest).is_ok());
        let (_, value) = largest.stored().unwrap();
        assert_eq!(Tags::from_stored(&value), Some(largest));
        let plain = Tags((0..TAGS_MAX).map(|i| (key(i), "v".repeat(VALUE_CHARS_MAX))).collect());
        assert_eq!(plain.stored().unwrap().1.len(), 3_859);
        assert_eq!(Tags::default().stored(), None);
    }

    #[test]
    fn a_tagging_document_is_read() {
        let body = b"<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet>\
            <Tag><Key>a&#x2F;b</Key><Value>1 2</Value></Tag><Tag><Key>empty</Key><Value/></Tag>\
            <Tag><Key>none</Key></Tag></TagSet></Tagging>";
        assert_eq!(Tags::from_xml(body).unwrap(), tags(&[("a/b", "1 2"), ("empty", ""), ("none", "")]));
        assert_eq!(Tags::from_xml(b"<Tagging><TagSet/></Tagging>").unwrap(), Tags::default());
        let keyless = Tags::from_xml(b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>");
        assert_eq!(keyless.unwrap_err().code, "InvalidTag");
        for bad in [
            &b"<Tagging><TagSet><Tag><Key>a</Key><Key>b</Key></Tag></TagSet></Tagging>"[..],
            b"<Other/>",
            b"<Tagging><TagSet><Tag><Key>a</Key>",
        ] {
            assert_eq!(Tags::from_xml(bad).unwrap_err().code, "MalformedXML", "{}", String::from_utf8_lossy(bad));
        }
        // Tags outside a TagSet are not the object's.
        assert_eq!(Tags::from_xml(b"<Tagging><Tag><Key>a</Key></Tag></Tagging>").unwrap(), Tags::default());
        assert_eq!(document(&tags(&[("a<b", "c")])).matches("<Key>a&lt;b</Key><Value>c</Value>").count(), 1);
    }
}
