//! `GET /`: a small page for a person with a browser: what this server is,
//! where things are, how to upload. No script, no external resource.

use bytes::Bytes;

use super::reply::Reply;
use super::request::{Method, Request};
use super::response::Head;
use crate::html::{escape, STYLE};

/// The page.
fn page(shards: usize, token_for_writes: bool, token_for_reads: bool) -> String {
    let version = escape(env!("CARGO_PKG_VERSION"));
    let auth = if token_for_writes { " -H 'Authorization: Bearer $TOKEN'" } else { "" };
    let writes = if token_for_writes {
        "Writes need the write token."
    } else {
        "Anyone who can reach this server may write: it listens on loopback only, or was told to allow it."
    };
    let plural = if shards == 1 { "" } else { "s" };
    let reads = if token_for_reads { " Reads need the read token (or the write token)." } else { "" };
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>percore</title>
<style>{STYLE}</style>
</head>
<body>
<h1>percore</h1>
<p>A file and object server, one pinned thread per CPU core over io_uring. Version {version}, {shards} shard{plural}.</p>
<ul>
<li><a href="/files/">Files</a>: the listing of the data directory</li>
<li><a href="/health">Health</a>: <code>ready</code>, <code>read-only</code> or <code>draining</code></li>
<li><a href="/metrics">Metrics</a>: Prometheus text</li>
</ul>
<h2>Upload and fetch</h2>
<p>{writes}{reads} Replace <code>$SERVER</code> with this page's address.</p>
<pre>curl -T notes.txt{auth} $SERVER/files/docs/notes.txt
curl $SERVER/files/docs/notes.txt
curl -X DELETE{auth} $SERVER/files/docs/notes.txt</pre>
</body>
</html>
"#
    )
}

/// Answers `GET /` (and HEAD).
pub(crate) async fn home(reply: &mut Reply<'_>, request: &Request) -> bool {
    let config = &reply.shard.config;
    let text = page(percore_cores::current().count, config.write_token.is_some(), config.read_token.is_some());
    let head = Head::new(200).header("Content-Type", "text/html; charset=utf-8");
    let head = reply.finish(head, text.len() as u64);
    let mut parts = vec![Bytes::from(head)];
    if request.method != Method::Head {
        parts.push(Bytes::from(text));
    }
    reply.send(parts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_what_exists() {
        let text = page(4, true, false);
        for link in ["href=\"/files/\"", "href=\"/health\"", "href=\"/metrics\"", "4 shards", "Bearer"] {
            assert!(text.contains(link), "{link}");
        }
        assert!(!page(1, false, false).contains("Bearer"));
    }
}
