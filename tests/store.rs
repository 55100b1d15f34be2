//! The write side end to end: PUT and DELETE through the real daemon, with
//! preconditions, chunked bodies, `Expect: 100-continue`, races between
//! writers, uploads cut short, and restarts.

use std::io::{Read, Write};
use std::time::Duration;

use crate::util::{
    closed, delete, exchange, get, join_all, metric, metrics, put, read_response, stray_temp_files, temp_files, Daemon,
};

#[test]
fn put_creates_replaces_and_delete_removes() {
    let daemon = Daemon::start(&["--cores", "2"]);
    let r = put(&daemon, "/files/a/b/c.txt", b"version one", "");
    assert_eq!(r.status, 201, "new object");
    let first = r.header("ETag").unwrap().to_string();
    let r = get(&daemon, "/files/a/b/c.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, b"version one".as_slice()));
    assert_eq!(r.header("ETag"), Some(first.as_str()), "GET and PUT agree on the ETag");
    let r = put(&daemon, "/files/a/b/c.txt", b"version two!", "");
    assert_eq!(r.status, 200, "replaced");
    assert_ne!(r.header("ETag").unwrap(), first);
    assert_eq!(get(&daemon, "/files/a/b/c.txt").body, b"version two!");
    assert_eq!(put(&daemon, "/files/empty", b"", "").status, 201);
    assert_eq!(get(&daemon, "/files/empty").body, b"");
    assert_eq!(delete(&daemon, "/files/a/b/c.txt", "").status, 204);
    assert_eq!(get(&daemon, "/files/a/b/c.txt").status, 404);
    assert_eq!(delete(&daemon, "/files/a/b/c.txt", "").status, 404);
    assert_eq!(delete(&daemon, "/files/no/such/dir/x", "").status, 404);
    // A file in the way of a directory, and bad paths.
    assert_eq!(put(&daemon, "/files/empty/inner", b"x", "").status, 409);
    assert_eq!(put(&daemon, "/files/../escape", b"x", "").status, 400);
    assert!(!daemon.dir().parent().unwrap().join("escape").exists());
    assert!(stray_temp_files(&daemon).is_empty());
}

#[test]
fn chunked_bodies_and_expect_continue() {
    let daemon = Daemon::start(&[]);
    let raw = b"PUT /files/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    assert_eq!(exchange(&daemon, raw).status, 201);
    assert_eq!(get(&daemon, "/files/chunked").body, b"hello world");
    // Expect: 100-continue: the interim response comes before the body is sent.
    let mut stream = daemon.connect();
    stream
        .write_all(b"PUT /files/expect HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"body").unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().status, 201);
    // Keep-alive after a PUT: the next request on the same connection.
    stream.write_all(b"GET /files/expect HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().body, b"body");
    // Bad chunk framing: 400, nothing stored.
    let bad = b"PUT /files/bad HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    assert_eq!(exchange(&daemon, bad).status, 400);
    let bad = b"PUT /files/bad HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n";
    assert_eq!(exchange(&daemon, bad).status, 400);
    assert_eq!(get(&daemon, "/files/bad").status, 404);
    assert!(stray_temp_files(&daemon).is_empty());
}

#[test]
fn conditional_writes() {
    let daemon = Daemon::start(&[]);
    assert_eq!(put(&daemon, "/files/doc", b"v1", "If-None-Match: *\r\n").status, 201);
    assert_eq!(put(&daemon, "/files/doc", b"v2", "If-None-Match: *\r\n").status, 412, "exists already");
    let etag = get(&daemon, "/files/doc").header("ETag").unwrap().to_string();
    assert_eq!(put(&daemon, "/files/doc", b"v2", "If-Match: \"stale\"\r\n").status, 412);
    assert_eq!(get(&daemon, "/files/doc").body, b"v1", "a refused write changes nothing");
    let r = put(&daemon, "/files/doc", b"v2", &format!("If-Match: {etag}\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(get(&daemon, "/files/doc").body, b"v2");
    assert_eq!(put(&daemon, "/files/missing", b"x", "If-Match: *\r\n").status, 412);
    assert_eq!(delete(&daemon, "/files/doc", &format!("If-Match: {etag}\r\n")).status, 412, "old version");
    // If-Unmodified-Since: a version modified later is not replaced or
    // deleted; If-Match, when sent, decides instead; a missing file or a
    // date that does not parse has nothing to compare.
    let modified = get(&daemon, "/files/doc").header("Last-Modified").unwrap().to_string();
    let long_ago = "If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n";
    assert_eq!(put(&daemon, "/files/doc", b"v3", long_ago).status, 412);
    assert_eq!(delete(&daemon, "/files/doc", long_ago).status, 412);
    assert_eq!(get(&daemon, "/files/doc").body, b"v2", "a refused write changes nothing");
    assert_eq!(put(&daemon, "/files/new", b"n", long_ago).status, 201);
    assert_eq!(put(&daemon, "/files/new", b"n", "If-Unmodified-Since: yesterday\r\n").status, 200);
    let r = put(&daemon, "/files/doc", b"v3", &format!("If-Unmodified-Since: {modified}\r\n"));
    assert_eq!(r.status, 200);
    let etag = r.header("ETag").unwrap().to_string();
    assert_eq!(put(&daemon, "/files/doc", b"v4", &format!("If-Match: {etag}\r\n{long_ago}")).status, 200);
    let etag = get(&daemon, "/files/doc").header("ETag").unwrap().to_string();
    assert_eq!(delete(&daemon, "/files/doc", &format!("If-Match: {etag}\r\n")).status, 204);
    assert!(stray_temp_files(&daemon).is_empty());
}

#[test]
fn exactly_one_concurrent_create_wins() {
    let daemon = std::sync::Arc::new(Daemon::start(&["--cores", "2"]));
    for round in 0..5 {
        let path = format!("/files/race-{round}");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (daemon, path) = (daemon.clone(), path.clone());
                std::thread::spawn(move || {
                    let body = format!("writer {i:02}");
                    (put(&daemon, &path, body.as_bytes(), "If-None-Match: *\r\n").status, body)
                })
            })
            .collect();
        let results: Vec<(u16, String)> = join_all(threads);
        let winners: Vec<&String> = results.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(results.iter().all(|(s, _)| *s == 201 || *s == 412), "{results:?}");
        assert_eq!(get(&daemon, &path).body, winners[0].as_bytes(), "the winner's body is stored");
    }
    assert!(stray_temp_files(&daemon).is_empty());
}

/// Writers to one path that wait together share one directory flush
/// (`store::commit`): every upload is answered, each with its own ETag, the
/// path ends up holding the body of the answer whose ETag it now has, and
/// conditions are checked in turn inside a batch (of writers that all name
/// the same version with `If-Match`, exactly one wins in each round).
#[test]
fn writers_to_one_path_share_flushes_and_keep_their_conditions() {
    let daemon = std::sync::Arc::new(Daemon::start(&["--cores", "2"]));
    let path = "/files/shared/key";
    let mut shared = false;
    for round in 0..5 {
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let daemon = daemon.clone();
                std::thread::spawn(move || {
                    let body = format!("round {round} writer {i:02} ").repeat(100);
                    let answer = put(&daemon, path, body.as_bytes(), "");
                    (answer.status, answer.header("ETag").map(str::to_string), body)
                })
            })
            .collect();
        let results: Vec<(u16, Option<String>, String)> = join_all(threads);
        assert!(results.iter().all(|(s, e, _)| (*s == 200 || *s == 201) && e.is_some()), "{results:?}");
        let mut etags: Vec<&String> = results.iter().filter_map(|(_, e, _)| e.as_ref()).collect();
        etags.sort();
        etags.dedup();
        assert_eq!(etags.len(), 32, "every version its own ETag");
        let now = get(&daemon, path);
        let current = now.header("ETag").unwrap().to_string();
        let (_, _, body) =
            results.iter().find(|(_, e, _)| e.as_deref() == Some(&current)).expect("an answered version");
        assert_eq!(now.body, body.as_bytes(), "round {round}: the path holds the body of its ETag's answer");
        let text = metrics(&daemon);
        shared |= metric(&text, "percore_commit_flushes_total", &[]) < metric(&text, "percore_commits_total", &[]);
    }
    assert!(shared, "no two of 160 concurrent writes to one path shared a flush");
    for round in 0..5 {
        let version = get(&daemon, path).header("ETag").unwrap().to_string();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (daemon, version) = (daemon.clone(), version.clone());
                std::thread::spawn(move || {
                    let body = format!("conditional {round} {i}");
                    put(&daemon, path, body.as_bytes(), &format!("If-Match: {version}\r\n")).status
                })
            })
            .collect();
        let statuses: Vec<u16> = join_all(threads);
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 412), "{statuses:?}");
    }
    assert!(stray_temp_files(&daemon).is_empty());
}

#[test]
fn an_upload_cut_short_leaves_nothing() {
    let daemon = Daemon::start(&[]);
    assert_eq!(put(&daemon, "/files/kept", b"old", "").status, 201);
    let wait_for = |want_temp: bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while temp_files(daemon.dir()).is_empty() == want_temp {
            assert!(std::time::Instant::now() < deadline, "temp files: {:?}", temp_files(daemon.dir()));
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    for path in ["/files/kept", "/files/new"] {
        let mut stream = daemon.connect();
        stream
            .write_all(format!("PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n").as_bytes())
            .unwrap();
        stream.write_all(&[7u8; 50_000]).unwrap();
        // The upload is under way once its temporary file exists...
        wait_for(true);
        // ...and the client goes away in the middle of it.
        drop(stream);
        wait_for(false);
    }
    assert_eq!(get(&daemon, "/files/kept").body, b"old", "the old version is intact");
    assert_eq!(get(&daemon, "/files/new").status, 404, "no partial object");
}

#[test]
fn oversized_bodies_are_refused_before_they_are_read() {
    let daemon = Daemon::start(&["--body-bytes-max", "1000"]);
    let mut stream = daemon.connect();
    stream.write_all(b"PUT /files/big HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n").unwrap();
    let r = read_response(&mut stream, false).unwrap();
    assert_eq!(r.status, 413);
    // Chunked bodies are counted as they come.
    let mut raw = b"PUT /files/big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"1f4\r\n");
        raw.extend_from_slice(&[b'x'; 500]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(exchange(&daemon, &raw).status, 413);
    assert_eq!(get(&daemon, "/files/big").status, 404);
    assert!(stray_temp_files(&daemon).is_empty());
}

/// A PUT refused before its body (no token, a bad path, a route that takes
/// no PUT, a bad header) reads a small body first, after `100 Continue`
/// when the client waits for one, and the connection goes on: behind
/// HAProxy, which waits for the body the client was told not to send, an
/// answer before it put the connection out of step. A stranger's large
/// body and one over the limit are refused at once, never asked for.
#[test]
fn puts_refused_before_their_body_keep_the_connection_in_step() {
    let daemon = Daemon::start(&["--write-token", "writer-secret", "--body-bytes-max", "4000000"]);
    let token = "Authorization: Bearer writer-secret\r\n";
    let mut stream = daemon.connect();
    let in_step = |stream: &mut std::net::TcpStream| {
        stream.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_response(stream, false).map(|r| r.status)
    };
    for (what, head, status) in [
        ("no token", "PUT /files/t HTTP/1.1\r\nHost: t\r\n".to_string(), 401),
        ("a bad path", format!("PUT /files/../escape HTTP/1.1\r\nHost: t\r\n{token}"), 400),
        ("a route that takes no PUT", "PUT /ping HTTP/1.1\r\nHost: t\r\n".to_string(), 405),
        ("a bad X-Percore-S3", format!("PUT /files/c HTTP/1.1\r\nHost: t\r\n{token}X-Percore-S3: %%\r\n"), 400),
    ] {
        stream.write_all(format!("{head}Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n").as_bytes()).unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{what}");
        stream.write_all(&[b'x'; 1000]).unwrap();
        assert_eq!(read_response(&mut stream, false).unwrap().status, status, "{what}");
        assert_eq!(in_step(&mut stream), Some(200), "{what}: the connection goes on");
        stream.write_all(format!("{head}Content-Length: 3\r\n\r\nabc").as_bytes()).unwrap();
        assert_eq!(read_response(&mut stream, false).unwrap().status, status, "{what}, without Expect");
        assert_eq!(in_step(&mut stream), Some(200), "{what}, without Expect: the connection goes on");
    }
    // A stranger's upload of 2 MB: refused at once, the connection closed.
    stream
        .write_all(b"PUT /files/t HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().status, 401);
    assert!(closed(&mut stream));
    // Over the limit, with the token: the same.
    let mut stream = daemon.connect();
    let head =
        format!("PUT /files/t HTTP/1.1\r\nHost: t\r\n{token}Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().status, 413);
    assert!(closed(&mut stream));
    for path in ["/files/t", "/files/c"] {
        let r = exchange(&daemon, format!("GET {path} HTTP/1.1\r\nHost: t\r\n{token}\r\n").as_bytes());
        assert_eq!(r.status, 404, "nothing stored at {path}");
    }
    assert!(stray_temp_files(&daemon).is_empty());
}

#[test]
fn acknowledged_objects_survive_a_restart_and_stale_temps_do_not() {
    let mut daemon = Daemon::start(&[]);
    for i in 0..20 {
        assert_eq!(
            put(&daemon, &format!("/files/dir{}/obj{i}", i % 3), format!("data {i}").as_bytes(), "").status,
            201
        );
    }
    assert!(daemon.terminate(Duration::from_secs(5)).unwrap().success());
    let data = daemon.kill9().expect("owned data directory");
    std::fs::write(data.path().join("dir1/.percore-999-0-1"), b"half an upload").unwrap();
    let daemon = Daemon::start_in(data, &[]);
    for i in 0..20 {
        let r = get(&daemon, &format!("/files/dir{}/obj{i}", i % 3));
        assert_eq!((r.status, r.body), (200, format!("data {i}").into_bytes()));
    }
    assert!(temp_files(daemon.dir()).is_empty(), "stale temporary files are removed at start");
}

#[test]
fn bearer_tokens_guard_reads_and_writes() {
    let daemon = Daemon::start(&["--read-token", "reader-secret", "--write-token", "writer-secret"]);
    let auth = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let r = put(&daemon, "/files/t", b"x", "");
    assert_eq!((r.status, r.header("WWW-Authenticate")), (401, Some("Bearer")));
    assert_eq!(put(&daemon, "/files/t", b"x", &auth("reader-secret")).status, 401, "the read token cannot write");
    assert_eq!(put(&daemon, "/files/t", b"x", &auth("writer-secreT")).status, 401);
    assert_eq!(put(&daemon, "/files/t", b"x", &auth("writer-secret")).status, 201);
    assert_eq!(get(&daemon, "/files/t").status, 401);
    let read = |t: &str| exchange(&daemon, format!("GET /files/t HTTP/1.1\r\nHost: h\r\n{}\r\n", auth(t)).as_bytes());
    assert_eq!(read("reader-secret").body, b"x");
    assert_eq!(read("writer-secret").status, 200, "writers may read");
    assert_eq!(read("nope").status, 401);
    assert_eq!(delete(&daemon, "/files/t", "").status, 401);
    assert_eq!(delete(&daemon, "/files/t", &auth("reader-secret")).status, 401);
    assert_eq!(delete(&daemon, "/files/t", &auth("writer-secret")).status, 204);
    assert_eq!(get(&daemon, "/ping").status, 200, "ping stays open");
}

#[test]
fn the_cache_never_serves_a_replaced_or_deleted_version() {
    let daemon = Daemon::start(&["--cores", "2"]);
    for version in 0..20 {
        let body = format!("version {version}");
        let status = put(&daemon, "/files/hot.txt", body.as_bytes(), "").status;
        assert!(status == 201 || status == 200);
        // Reads on fresh connections land on both shards and fill both caches.
        for _ in 0..6 {
            let r = get(&daemon, "/files/hot.txt");
            assert_eq!(r.body, body.as_bytes(), "read after write of {body}");
        }
    }
    let etag = get(&daemon, "/files/hot.txt").header("ETag").unwrap().to_string();
    let r = exchange(
        &daemon,
        format!("GET /files/hot.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 304, "conditional reads from the cache");
    assert_eq!(delete(&daemon, "/files/hot.txt", "").status, 204);
    for _ in 0..6 {
        assert_eq!(get(&daemon, "/files/hot.txt").status, 404, "read after delete");
    }
}

/// Commits of different paths that finish together share one invalidation
/// broadcast; each is still answered only once no shard's cache holds its
/// old bytes.
#[test]
fn writers_to_many_paths_share_invalidations_and_never_read_old_bytes() {
    let daemon = std::sync::Arc::new(Daemon::start(&["--cores", "2"]));
    let threads: Vec<_> = (0..16)
        .map(|writer| {
            let daemon = daemon.clone();
            std::thread::spawn(move || {
                let path = format!("/files/many/{writer}");
                for version in 0..15 {
                    let body = format!("writer {writer} version {version} ").repeat(20);
                    let status = put(&daemon, &path, body.as_bytes(), "").status;
                    assert!(status == 201 || status == 200, "{path}: {status}");
                    // Fresh connections land on both shards and fill both caches.
                    for _ in 0..4 {
                        assert_eq!(
                            get(&daemon, &path).body,
                            body.as_bytes(),
                            "read after the write of {path} {version}"
                        );
                    }
                }
            })
        })
        .collect();
    join_all(threads);
    let text = metrics(&daemon);
    let (paths, broadcasts) = (
        metric(&text, "percore_cache_invalidations_total", &[]),
        metric(&text, "percore_cache_invalidation_broadcasts_total", &[]),
    );
    assert_eq!(paths, 16.0 * 15.0, "every commit invalidated its path once");
    assert!(broadcasts < paths, "no two of 240 concurrent commits shared a broadcast ({broadcasts})");

    // With the cache off nothing is cached anywhere: no broadcast at all.
    let uncached = Daemon::start(&["--cores", "2", "--cache-bytes-max", "0"]);
    for version in 0..10 {
        let body = format!("version {version}");
        assert!(put(&uncached, "/files/plain", body.as_bytes(), "").status < 300);
        assert_eq!(get(&uncached, "/files/plain").body, body.as_bytes());
    }
    let text = metrics(&uncached);
    assert_eq!(metric(&text, "percore_cache_invalidation_broadcasts_total", &[]), 0.0);
}

#[test]
fn a_change_behind_percores_back_is_seen_after_the_cache_ttl() {
    let daemon = Daemon::start(&[]);
    std::fs::write(daemon.path("edited"), b"before").unwrap();
    assert_eq!(get(&daemon, "/files/edited").body, b"before");
    std::fs::write(daemon.path("edited"), b"after!").unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get(&daemon, "/files/edited").body, b"after!");
    // And with the cache off, at once.
    let uncached = Daemon::start(&["--cache-bytes-max", "0"]);
    std::fs::write(uncached.path("edited"), b"before").unwrap();
    assert_eq!(get(&uncached, "/files/edited").body, b"before");
    std::fs::write(uncached.path("edited"), b"after!").unwrap();
    assert_eq!(get(&uncached, "/files/edited").body, b"after!");
}

/// A replaced small file is kept as a spare and overwritten by a later
/// upload into its directory, only by a body that covers all of its old
/// content, and never while anyone else has it open; a clean stop removes
/// the spares.
#[test]
fn replaced_files_are_reused_only_when_open_nowhere_else() {
    use std::os::unix::fs::MetadataExt;
    let mut daemon = Daemon::start(&["--cores", "1"]);
    let spares = |daemon: &Daemon| metric(&metrics(daemon), "percore_spare_files", &[]) as usize;
    assert_eq!(put(&daemon, "/files/d/a", &[b'1'; 100], "").status, 201);
    let first = std::fs::metadata(daemon.path("d/a")).unwrap().ino();
    assert_eq!(put(&daemon, "/files/d/a", &[b'2'; 100], "").status, 200);
    assert_eq!(spares(&daemon), 1, "the replaced version is kept");
    let kept = temp_files(daemon.dir());
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::metadata(&kept[0]).unwrap().ino(), first);
    // A shorter body does not take it: old bytes would outlive the new end.
    assert_eq!(put(&daemon, "/files/d/b", &[b'3'; 50], "").status, 201);
    assert_eq!(spares(&daemon), 1);
    assert_eq!(std::fs::read(daemon.path("d/b")).unwrap(), [b'3'; 50]);
    // A body at least as long does: same inode, exactly the new bytes.
    assert_eq!(put(&daemon, "/files/d/c", &[b'4'; 150], "").status, 201);
    assert_eq!(spares(&daemon), 0, "the spare was taken");
    assert_eq!(std::fs::metadata(daemon.path("d/c")).unwrap().ino(), first, "the spare's inode holds d/c");
    assert_eq!(std::fs::read(daemon.path("d/c")).unwrap(), [b'4'; 150]);
    assert_eq!(get(&daemon, "/files/d/c").body, [b'4'; 150]);
    // Replaced while someone has it open: not kept (unlinked), so a later
    // upload cannot overwrite what that reader is reading.
    let mut reader = std::fs::File::open(daemon.path("d/c")).unwrap();
    assert_eq!(put(&daemon, "/files/d/c", &[b'5'; 150], "").status, 200);
    assert_eq!(spares(&daemon), 0, "an old version open elsewhere is not kept");
    assert!(temp_files(daemon.dir()).is_empty());
    for (i, key) in ["x", "y", "c"].iter().enumerate() {
        assert!(put(&daemon, &format!("/files/d/{key}"), &[b'6' + i as u8; 200], "").status / 100 == 2);
    }
    assert_eq!(reader.metadata().unwrap().nlink(), 0, "the reader's version is unlinked");
    let mut held = Vec::new();
    reader.read_to_end(&mut held).unwrap();
    assert_eq!(held, [b'4'; 150], "and intact");
    assert_eq!(std::fs::read(daemon.path("d/c")).unwrap(), [b'8'; 200]);
    assert_eq!(spares(&daemon), 1, "the replaced d/c (a version no one holds) is kept");
    assert!(stray_temp_files(&daemon).is_empty());
    // The SIGIO that breaks a lease (another process opening a spare in the
    // moment its lease is held) does not end the daemon.
    // SAFETY: kill(2) with the daemon's pid and a valid signal.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGIO) };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(&daemon, "/files/d/c").body, [b'8'; 200], "alive after SIGIO");
    assert!(daemon.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(temp_files(daemon.dir()).is_empty(), "a clean stop removes the spares");
}

/// A full spare pool makes room for a smaller spare by removing its largest
/// (which fewer uploads could use), so mixed sizes cannot clog it.
#[test]
fn a_full_spare_pool_trades_its_largest_for_a_smaller_one() {
    let daemon = Daemon::start(&["--cores", "1"]);
    let spares = |daemon: &Daemon| metric(&metrics(daemon), "percore_spare_files", &[]) as usize;
    let sizes = |daemon: &Daemon| {
        let mut sizes: Vec<u64> =
            temp_files(daemon.dir()).iter().map(|t| std::fs::metadata(t).unwrap().len()).collect();
        sizes.sort_unstable();
        sizes
    };
    let limit = metric(&metrics(&daemon), "percore_spare_files_max", &[]) as usize;
    assert!(limit >= 16, "spare limit {limit}");
    for i in 0..limit {
        for version in [b'a', b'b'] {
            // One directory each: an upload into a directory takes its spares.
            assert!(put(&daemon, &format!("/files/big{i}/k"), &[version; 1000], "").status / 100 == 2);
        }
    }
    assert_eq!(spares(&daemon), limit);
    assert_eq!(sizes(&daemon), vec![1000; limit]);
    // Full: a larger candidate is not kept...
    for version in [b'a', b'b'] {
        assert!(put(&daemon, "/files/larger/k", &[version; 2000], "").status / 100 == 2);
    }
    assert_eq!(sizes(&daemon), vec![1000; limit]);
    // ...a smaller one replaces a largest one (in another directory).
    for version in [b'a', b'b'] {
        assert!(put(&daemon, "/files/small/0", &[version; 100], "").status / 100 == 2);
    }
    assert_eq!(spares(&daemon), limit);
    let mut want = vec![1000; limit - 1];
    want.insert(0, 100);
    assert_eq!(sizes(&daemon), want);
    // And it serves a body of its size or more in its directory.
    assert_eq!(put(&daemon, "/files/small/1", &[b'c'; 150], "").status, 201);
    assert_eq!(spares(&daemon), limit - 1);
    assert_eq!(std::fs::read(daemon.path("small/1")).unwrap(), [b'c'; 150]);
    assert!(stray_temp_files(&daemon).is_empty());
}
