//! HTML text: escaping for content and attribute values (pages for
//! browsers: the front page, listings).

/// Escapes text for HTML content and (quoted) attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style both pages share (no external resource).
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}code,pre{background:#f3f3f3;padding:.1rem .3rem}pre{padding:.6rem;overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ddd}td.n{text-align:right}";

#[cfg(test)]
mod tests {
    #[test]
    fn escaping() {
        assert_eq!(super::escape(r#"<a href="x">&'é"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;é");
    }
}
