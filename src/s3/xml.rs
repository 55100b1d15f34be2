//! XML for S3: answers written with a small writer (elements, escaped text;
//! S3's documents are flat and known, a serializer would add nothing), and
//! the request bodies clients send (DeleteObjects,
//! CompleteMultipartUpload, PutBucketCors) read with `quick-xml`.

use quick_xml::events::Event;
use quick_xml::Reader;

/// The XML namespace of S3's answers.
pub(crate) const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds an XML document.
pub(crate) struct Writer(String);

impl Writer {
    pub(crate) fn document() -> Writer {
        Writer(String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"))
    }

    /// Opens the root element, with S3's namespace.
    pub(crate) fn root(&mut self, name: &str) {
        self.0.push_str(&format!("<{name} xmlns=\"{NAMESPACE}\">"));
    }

    pub(crate) fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }

    /// Opens `name` with `attributes` (names and values as given: constants).
    pub(crate) fn open_with(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.0.push('<');
        self.0.push_str(name);
        for (attribute, value) in attributes {
            self.0.push_str(&format!(" {attribute}=\"{value}\""));
        }
        self.0.push('>');
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }

    /// `<name>text</name>`, the text escaped.
    pub(crate) fn leaf(&mut self, name: &str, text: impl std::fmt::Display) {
        self.open(name);
        self.0.push_str(&quick_xml::escape::escape(text.to_string()));
        self.close(name);
    }

    /// Escaped text inside the element open now.
    pub(crate) fn finish_text(&mut self, text: &str) {
        self.0.push_str(&quick_xml::escape::escape(text));
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// ISO 8601 in UTC with milliseconds, as S3 writes times
/// (`2009-10-12T17:50:30.000Z`).
pub(crate) fn iso8601(secs: u64) -> String {
    let compact = super::date::format_amz_date(secs);
    let (d, t) = (&compact[..8], &compact[9..15]);
    format!("{}-{}-{}T{}:{}:{}.000Z", &d[..4], &d[4..6], &d[6..], &t[..2], &t[2..4], &t[4..])
}

/// The most bytes of XML a request may carry (DeleteObjects of 1,000 keys
/// of 1 KiB each fits, as on S3).
pub(crate) const BODY_BYTES_MAX: u64 = 2 << 20;

/// The text of every element named `leaf` inside each `item` element, in
/// order: for `<Delete><Object><Key>a</Key></Object>...`, `items(body,
/// "Delete", "Object", &["Key", "VersionId"])` (a leaf given twice: its
/// texts joined). The root must be `root`.
pub(crate) fn items(body: &[u8], root: &str, item: &str, leaves: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
    let items = item_fields(body, root, item)?;
    Ok(items
        .into_iter()
        .map(|fields| {
            let mut values = vec![None; leaves.len()];
            for (name, text) in fields {
                if let Some(i) = leaves.iter().position(|l| *l == name) {
                    values[i].get_or_insert_with(String::new).push_str(&text);
                }
            }
            values
        })
        .collect())
}

/// The elements inside each `item` element, as (name, text) in document
/// order, one per element with text (for repeated ones: `<CORSRule>` with
/// several `<AllowedOrigin>`). The root must be `root`.
pub(crate) fn item_fields(body: &[u8], root: &str, item: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    fields_within(body, &[root], item)
}

/// [`item_fields`] of the `item` elements inside `container`, the path of
/// elements from the root down: `&["Tagging", "TagSet"]` for each `<Tag>`
/// of `<Tagging><TagSet><Tag>...`.
pub(crate) fn fields_within(body: &[u8], container: &[&str], item: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let (root, depth) = (container[0], container.len());
    // Text is taken as sent: a key may begin or end with spaces, and the
    // text on either side of an entity (`a &amp; b`) is part of it. (The
    // whitespace between elements is outside every field.)
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    let mut seen_root = false;
    // A field opened and no text of it seen yet.
    let mut fresh = false;
    // Inside a field of an item.
    let within = |path: &[String]| path.len() == depth + 2 && path[depth] == item && path[..depth].iter().eq(container);
    loop {
        let text = match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != root {
                        return Err(format!("the root element must be {root}, not {name}"));
                    }
                    seen_root = true;
                }
                if path.len() > 8 {
                    return Err("elements nested too deep".into());
                }
                if path.len() == depth && path.iter().eq(container) && name == item {
                    out.push(Vec::new());
                }
                fresh = path.len() == depth + 1;
                path.push(name);
                continue;
            }
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    return Err(format!("the root element must be {root} with content"));
                }
                if path.len() == depth && path.iter().eq(container) && name == item {
                    out.push(Vec::new());
                }
                continue;
            }
            Event::Text(t) if within(&path) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                quick_xml::escape::unescape(&text).map_err(|e| e.to_string())?.into_owned()
            }
            Event::CData(t) if within(&path) => t.decode().map_err(|e| e.to_string())?.into_owned(),
            // An entity or character reference inside a field's text.
            Event::GeneralRef(r) if within(&path) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
                Some(c) => c.to_string(),
                None => {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    quick_xml::escape::resolve_xml_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?
                        .to_string()
                }
            },
            Event::Eof => break,
            Event::DocType(_) => return Err("document type declarations are not accepted".into()),
            _ => continue,
        };
        let fields = out.last_mut().expect("inside an item");
        if fresh {
            fields.push((path[depth + 1].clone(), text));
            fresh = false;
        } else if let Some((_, so_far)) = fields.last_mut() {
            so_far.push_str(&text);
        }
    }
    if !seen_root {
        return Err(format!("no {root} element"));
    }
    if !path.is_empty() {
        return Err("the document ends inside an element".into());
    }
    Ok(out)
}

/// Whether `<name>true</name>` appears directly under the root.
pub(crate) fn flag(body: &[u8], name: &str) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains(&format!("<{name}>true</{name}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_and_reads_items() {
        let mut w = Writer::document();
        w.root("R");
        w.leaf("Key", "a<&>\"b");
        w.close("R");
        let text = w.finish();
        assert!(text.contains("<Key>a&lt;&amp;&gt;&quot;b</Key>"), "{text}");
        let body = b"<Delete xmlns=\"x\"><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object>\
            <Object><Key>c&#47;d</Key><VersionId>1</VersionId></Object></Delete>";
        let got = items(body, "Delete", "Object", &["Key", "VersionId"]).unwrap();
        assert_eq!(got, vec![vec![Some("a&b".into()), None], vec![Some("c/d".into()), Some("1".into())]]);
        assert!(flag(body, "Quiet"));
        // Spaces are part of a key, also beside an entity or a CDATA section.
        let body = b"<Delete>\n  <Object>\n    <Key> Tom &amp; Jerry </Key>\n  </Object>\n  \
            <Object><Key>a <![CDATA[<b>]]> c</Key></Object>\n</Delete>";
        let got = items(body, "Delete", "Object", &["Key"]).unwrap();
        assert_eq!(got, vec![vec![Some(" Tom & Jerry ".into())], vec![Some("a <b> c".into())]]);
        assert!(items(b"<Other/>", "Delete", "Object", &["Key"]).is_err());
        assert!(items(b"<Delete><Object><Key>a</Key>", "Delete", "Object", &["Key"]).is_err());
        assert!(items(b"not xml at all <", "Delete", "Object", &["Key"]).is_err());
        assert!(items(b"<!DOCTYPE x [<!ENTITY a \"b\">]><Delete/>", "Delete", "Object", &["Key"]).is_err());
    }
}
