//! percore as a library: the daemon's modules behind [`main`], which the
//! `percore` binary calls. Modules: `config` (flags, TOML file,
//! environment), `serve` (the daemon), `http` (the HTTP/1.1 service),
//! `files`, `store` and `listing` (the file store), `cache`, `metrics`,
//! `balance` (connections spread over shards), and
//! `bench` (the load generator). Nothing here is a stable API: the public
//! surface is the command, plus [`fuzz`], the hooks the fuzz targets drive.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod balance;
mod bench;
mod cache;
mod clock;
mod config;
mod files;
mod health;
mod html;
mod http;
mod listen;
mod listing;
mod metrics;
mod peers;
mod ranges;
mod rebalance;
mod rendered;
mod ring;
mod s3;
mod serve;
mod shard;
mod store;
mod throttle;
mod tls;

/// percore: a thread-per-core io_uring file and object server.
#[derive(Parser, Debug)]
#[command(name = "percore", version, about)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up")]
enum Command {
    /// Serve files over HTTP/1.1 on every core.
    Serve(config::RawConfig),
    /// Load-test an HTTP server (percore or any other) from pinned client cores.
    Bench(bench::BenchArgs),
    /// After the ring changed: move the objects this node no longer owns to their new owners.
    Rebalance(rebalance::RebalanceArgs),
}

/// The `percore` command: parse, validate, launch, print the error chain.
pub fn main() -> ExitCode {
    let raw = match Command::parse() {
        Command::Serve(raw) => raw,
        Command::Bench(args) => return exit("percore bench", bench::run(args)),
        Command::Rebalance(args) => return exit("percore rebalance", rebalance::run(args)),
    };
    let config = match config::Config::try_from(raw) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("percore: {err}");
            return ExitCode::from(2);
        }
    };
    match serve::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("percore: {err}");
            let mut source = std::error::Error::source(&*err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// A tool's exit: success, or its error on standard error after `what`.
fn exit(what: &str, result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{what}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Entry points for the fuzz targets (`fuzz/`): the pure parsers that face
/// the network, with their invariants checked. Not for other use.
#[doc(hidden)]
pub mod fuzz {
    /// Parses `data` as a request head under small limits; panics if the
    /// parser breaks one of its promises.
    pub fn request_head(data: &[u8]) {
        use crate::http::request::{parse, Body, Limits, Parsed};
        let limits = Limits { head_bytes_max: 2048, target_bytes_max: 512 };
        match parse(data, &limits) {
            Ok(Parsed::Complete(request, head_len)) => {
                assert!(head_len <= data.len() && head_len <= limits.head_bytes_max);
                assert!(request.path.len() <= limits.target_bytes_max);
                assert!(request.path.starts_with('/'), "{:?}", request.path);
                if let Body::Length(n) = request.body {
                    assert!(n > 0);
                }
                // Parsing is a function of the head alone: what follows it
                // (a pipelined request, a body) changes nothing.
                match parse(&data[..head_len], &limits) {
                    Ok(Parsed::Complete(again, n)) => assert!(n == head_len && again == request),
                    _ => panic!("the head alone parses differently"),
                }
            }
            Ok(Parsed::Partial) => assert!(data.len() <= limits.head_bytes_max),
            Err(reject) => assert!((400..600).contains(&reject.status)),
        }
    }

    /// Feeds `data` to a fresh server TLS session as received pieces
    /// (their sizes taken from the first bytes); panics if the session
    /// hands up plaintext before a handshake completed, or breaks.
    pub fn tls_records(data: &[u8]) {
        use std::sync::{Arc, OnceLock};
        static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
        let config = CONFIG.get_or_init(crate::tls::made_up_config).clone();
        let session = crate::http::tls::Session::new(config).expect("a session");
        let (sizes, mut rest) = data.split_at(data.len().min(4));
        let mut plain = Vec::new();
        let mut out = Vec::new();
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, after) = rest.split_at(rest.len().min(usize::from(size).max(1) * 37));
            rest = after;
            let absorbed = session.absorb(piece, &mut plain);
            session.take_output(&mut out);
            assert!(plain.is_empty() || !session.handshaking(), "plaintext before the handshake completed");
            if absorbed.is_err() {
                break;
            }
        }
    }

    /// Takes `data` as an S3 request: a head (through to the signature
    /// check, which must never pass: the fuzzer does not know the secret),
    /// then a body, fed as received pieces to the aws-chunked decoder and
    /// whole to the XML reader. Panics if a key the store would take could
    /// leave the data directory, or a decoder hands up more than it got.
    pub fn s3_request(data: &[u8]) {
        use crate::s3::{chunked, cors, form, head, keys, settings, sigv4, xml};
        let split = data.windows(4).position(|w| w == b"\r\n\r\n").map_or(data.len(), |p| p + 4);
        let (head_bytes, body) = data.split_at(split);
        let headers = head::Headers::parse(head_bytes);
        // The HTTP layer's noted fields read as the S3 parse reads them.
        let limits = crate::http::request::Limits { head_bytes_max: 1 << 16, target_bytes_max: 1 << 16 };
        let mut noted = head::Headers::default();
        if let Ok(crate::http::request::Parsed::Complete(_, len)) =
            crate::http::request::parse_noting(data, &limits, Some(noted.fields_mut()))
        {
            noted.take_head(&data[..len]);
            assert_eq!(
                noted.pairs().collect::<Vec<_>>(),
                head::Headers::parse(&data[..len]).pairs().collect::<Vec<_>>()
            );
        }
        let mut request = httparse::Request::new(&mut []);
        let _ = request.parse(head_bytes);
        let target = std::str::from_utf8(head_bytes).ok().and_then(|t| t.split_whitespace().nth(1)).unwrap_or("/");
        let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
        if let (Ok(query), Ok(parsed)) = (head::Query::parse(query), head::Target::parse(path)) {
            if let Some(bucket) = &parsed.bucket {
                if keys::check_bucket(bucket).is_ok() && !parsed.key.is_empty() {
                    let store_path = if parsed.key.ends_with('/') {
                        keys::folder_path(bucket, &parsed.key)
                    } else {
                        keys::object_path(bucket, &parsed.key)
                    };
                    if let Ok(store_path) = store_path {
                        super::fuzz::object_path_invariants(&store_path);
                    }
                }
            }
            // Query parameters taken as headers never bring a line break.
            if let Ok(Some(with)) = crate::s3::hoisted::hoisted(&headers, &query) {
                assert!(with.pairs().all(|(n, v)| !n.contains(['\r', '\n']) && !v.contains(['\r', '\n'])));
            }
            let settings = settings::Settings::for_fuzzing();
            let signed = sigv4::Request { method: "PUT", path, query: &query, headers: &headers };
            let verified = sigv4::verify(&settings, &sigv4::KeyCache::default(), &signed, 1_700_000_000);
            assert!(!matches!(verified, Ok(Some(_))), "a signature held without the secret");
        }
        let mut decoder = chunked::Decoder::new(None);
        let mut out = Vec::new();
        let mut fed = 0;
        for piece in body.chunks(7) {
            fed += piece.len();
            if decoder.feed(piece, &mut out).is_err() {
                break;
            }
            assert!(out.len() <= fed, "decoded more than was received");
        }
        let _ = decoder.finish(false);
        let _ = xml::items(body, "Delete", "Object", &["Key", "VersionId"]);
        let _ = cors::parse(body);
        let _ = form::part(body);
        if let Some(content_type) = headers.get("content-type") {
            let _ = form::boundary(content_type);
        }
        // A multipart upload's checksum, a value's form, a kept part layout.
        use crate::s3::{checksum, parts};
        if let Ok(Some((algorithm, _))) =
            checksum::for_upload(headers.get("x-amz-checksum-algorithm"), headers.get("x-amz-checksum-type"))
        {
            if let Some(value) = headers.get(&algorithm.header()) {
                let _ = checksum::decode(algorithm, value);
            }
        }
        if let Some(runs) = headers.get(parts::HEADER).and_then(parts::decode) {
            let total: u64 = runs.iter().map(|(size, count)| size * u64::from(*count)).sum();
            let last = parts::span(&runs, parts::count(&runs)).expect("the last part");
            assert_eq!(last.0 + last.1, total, "the parts end where the object does");
            assert_eq!(parts::span(&runs, parts::count(&runs) + 1), None);
        }
        // Tags, from a header and from a document: what is taken is kept
        // exactly and taken again when carried.
        use crate::s3::tags::{self, Tags};
        let from_header = headers.get("x-amz-tagging").map(Tags::from_header);
        for set in from_header.into_iter().chain([Tags::from_xml(body)]).filter_map(Result::ok) {
            assert!(set.0.len() <= tags::TAGS_MAX);
            if let Some(entry) = set.stored() {
                assert!(tags::stored_value_holds(&entry.1), "{entry:?}");
                assert_eq!(Tags::of(std::slice::from_ref(&entry)), set);
            }
        }
        // What `percore rebalance` carries (any `/files/` writer may send it).
        if let Some(value) = headers.get("x-percore-s3") {
            if let Ok(carried) = crate::s3::carried::Carried::decode(value) {
                assert_eq!(crate::s3::carried::Carried::decode(&carried.encode()).as_ref(), Ok(&carried));
                use crate::s3::carried::Carried;
                match &carried {
                    Carried::Object { headers, .. } | Carried::Folder(crate::s3::meta::Folder { headers, .. }) => {
                        assert!(headers.iter().all(|(n, v)| !n.contains(['\r', '\n']) && !v.contains(['\r', '\n'])));
                    }
                    // Stored as attributes, each read back as its module reads it.
                    Carried::Bucket(bucket) => {
                        assert!(bucket.cors.as_deref().is_none_or(crate::s3::cors::stored_value_holds));
                        assert!(bucket.tags.as_deref().is_none_or(crate::s3::bucket_tagging::stored_value_holds));
                    }
                }
            }
        }
    }

    /// What every accepted store path satisfies.
    fn object_path_invariants(path: &[u8]) {
        assert!(!path.is_empty() && !path.contains(&0) && !path.contains(&b'\\'));
        assert!(std::str::from_utf8(path).is_ok());
        for segment in path.split(|&b| b == b'/') {
            assert!(!segment.is_empty() && segment != b"." && segment != b"..");
            assert!(segment.len() <= 255 && !segment.starts_with(crate::files::TEMP_PREFIX));
        }
    }

    /// Checks `encoded` as the path after `/files/`; panics if an accepted
    /// path could leave the data directory or hide a separator.
    pub fn object_path(encoded: &str) {
        if let Ok(path) = crate::files::object_path(encoded) {
            assert!(path.len() <= encoded.len() && path[0] != b'/');
            object_path_invariants(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// Request heads built from the pieces attackers use, so that the
    /// property run reaches past the first line.
    fn head_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            "GET ",
            "PUT ",
            "HEAD ",
            "/files/",
            "/ping",
            "%2e",
            "%2f",
            "..",
            "/",
            " HTTP/1.1",
            " HTTP/1.0",
            "\r\n",
            "\n",
            "\r",
            "Host: h",
            "Content-Length: ",
            "Transfer-Encoding: ",
            "chunked",
            "gzip",
            ",",
            "0",
            "12",
            "-1",
            " ",
            "\t",
            ":",
            "\0",
            "Expect: 100-continue",
            "Range: bytes=0-",
            "\r\n\r\n",
        ]);
        prop::collection::vec(piece, 0..24).prop_map(|parts| parts.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(data in prop::collection::vec(any::<u8>(), 0..600)) {
            crate::fuzz::request_head(&data);
        }

        #[test]
        fn request_like_heads_keep_the_parser_promises(data in head_like()) {
            crate::fuzz::request_head(&data);
        }

        #[test]
        fn no_accepted_path_leaves_the_directory(path in "[a-z./%2eEfF5cC0\\\\#]{0,40}") {
            crate::fuzz::object_path(&path);
        }
    }
}
