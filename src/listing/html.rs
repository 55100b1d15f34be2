//! A listing page for browsers: breadcrumbs, a table of name, size and
//! modification time whose headers sort it (links, no script), and a link
//! to the next page. Every name is escaped; every link percent-encoded.

use std::fmt::Write;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{Page, Query, Sort};
use crate::html::{escape, STYLE};

/// What a path segment keeps unencoded in a link.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Renders `page` of the directory at URL path `dir` (`/files/…/`).
pub(super) fn render(page: &mut Page, dir: &str, query: &Query) -> String {
    match query.sort {
        Sort::Name => {}
        Sort::Size => page.entries.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name))),
        Sort::Modified => {
            page.entries.sort_by(|a, b| b.modified_secs.cmp(&a.modified_secs).then_with(|| a.name.cmp(&b.name)))
        }
    }
    let decoded = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let title = escape(&decoded(dir));
    let mut out = String::with_capacity(2048 + page.entries.len() * 200);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    // Breadcrumbs: / files / a / b /
    out.push_str("<nav><a href=\"/\">percore</a> / <a href=\"/files/\">files</a> / ");
    let mut href = String::from("/files/");
    for segment in dir.trim_start_matches("/files/").split('/').filter(|s| !s.is_empty()) {
        href.push_str(segment);
        href.push('/');
        let _ = write!(out, "<a href=\"{}\">{}</a> / ", escape(&href), escape(&decoded(segment)));
    }
    out.push_str("</nav>\n");
    if !page.unavailable.is_empty() {
        let names = page.unavailable.iter().map(|n| escape(n)).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "<p><strong>Incomplete:</strong> node(s) {names} did not answer; their entries are missing.</p>"
        );
    }
    let _ = write!(out, "<h1>{title}</h1>\n<table>\n<thead><tr>");
    for (label, sort) in [("Name", "name"), ("Size", "size"), ("Modified", "modified")] {
        let _ = write!(out, "<th><a href=\"?sort={sort}\">{label}</a></th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if dir != "/files/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in &page.entries {
        let link = utf8_percent_encode(&entry.name, SEGMENT).to_string();
        let (slash, size) = if entry.is_dir { ("/", String::from("—")) } else { ("", entry.size.to_string()) };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td class=\"n\">{size}</td><td>{}</td></tr>",
            escape(&link),
            escape(&entry.name),
            escape(&entry.modified),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if let Some(next) = &page.next {
        let after = utf8_percent_encode(next, SEGMENT);
        let sort = match query.sort {
            Sort::Name => "name",
            Sort::Size => "size",
            Sort::Modified => "modified",
        };
        let _ = writeln!(out, "<p><a href=\"?after={after}&amp;sort={sort}\">Next page</a></p>");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Entry, Page, Query, Sort};
    use super::*;

    fn entry(name: &str, size: u64, secs: i64, is_dir: bool) -> Entry {
        Entry { name: name.into(), size, etag: None, modified: format!("t{secs}"), is_dir, modified_secs: secs }
    }

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let mut page = Page {
            entries: vec![
                entry("a<b>\"c\"&d.txt", 3, 1, false),
                entry("ünï code", 1, 2, false),
                entry("sub", 0, 3, true),
            ],
            next: Some("x y".into()),
            unavailable: vec!["n2".into()],
        };
        let query =
            Query { prefix: vec![], limit: None, after: None, html: Some(true), sort: Sort::Name, local: false };
        let text = render(&mut page, "/files/d%3Cir/", &query);
        assert!(text.contains(">a&lt;b&gt;&quot;c&quot;&amp;d.txt</a>"), "{text}");
        assert!(text.contains("href=\"a%3Cb%3E%22c%22%26d.txt\""), "{text}");
        assert!(text.contains(">ünï code</a>") && text.contains("href=\"%C3%BCn%C3%AF%20code\""), "{text}");
        assert!(text.contains("href=\"sub/\">sub/</a>"), "{text}");
        assert!(text.contains("<title>/files/d&lt;ir/</title>"), "{text}");
        assert!(text.contains("?after=x%20y&amp;sort=name"), "{text}");
        assert!(!text.contains("<b>") && !text.contains("<script"), "{text}");
    }

    #[test]
    fn headers_sort_the_rows() {
        let mut page =
            Page { entries: vec![entry("a", 1, 5, false), entry("b", 9, 1, false)], next: None, unavailable: vec![] };
        let query =
            Query { prefix: vec![], limit: None, after: None, html: Some(true), sort: Sort::Size, local: false };
        let text = render(&mut page, "/files/", &query);
        assert!(text.find(">b</a>").unwrap() < text.find(">a</a>").unwrap(), "largest first");
    }
}
