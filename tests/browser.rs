//! The pages for browsers, in a real browser: headless Chromium (Debian's)
//! loads the front page and a listing, every link on the front page
//! answers, names with `<`, `"`, `&` and unicode show as text, and a
//! screenshot is taken (left in the target directory for a human to look
//! at). A page from another origin writes and reads an S3 object through
//! presigned URLs: refused by the browser until the bucket's CORS rules
//! allow that origin; a page of another origin uses the AWS SDK for
//! JavaScript (bundled by esbuild) on a bucket whose rules allow it. An
//! HTML form uploads through a presigned POST and is sent back to its
//! page. If Chromium is missing the tests install it from
//! Debian when they can (root, apt), and otherwise say loudly that they
//! skipped.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::Daemon;

/// Chromium's path, installing the Debian package if missing and possible.
fn chromium() -> Option<PathBuf> {
    let find = || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists());
    if let Some(found) = find() {
        return Some(found);
    }
    eprintln!("browser test: Chromium not found");
    crate::util::install_from_debian("chromium");
    find()
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`,
/// `--screenshot=…`); returns its standard output.
fn run(chromium: &Path, profile: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1024,768"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium on {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_pages_render_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "\n*** SKIPPED the browser test: no Chromium and it could not be installed (needs root and apt) ***\n"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("docs/sub")).unwrap();
    std::fs::write(data.path().join("docs/a<b>&\"q\".txt"), b"hello").unwrap();
    std::fs::write(data.path().join("docs/ünïcødé.txt"), b"u").unwrap();
    let daemon = Daemon::start_in(data, &["--cores", "1"]);
    let profile = tempfile::tempdir().unwrap();
    let base = format!("http://{}", daemon.addr);
    // The front page renders, and every link on it answers.
    let home = run(&chromium, profile.path(), &format!("{base}/"), &["--dump-dom"]);
    assert!(home.contains("<h1>percore</h1>"), "{home}");
    let links: Vec<&str> = home.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    for wanted in ["/files/", "/health", "/metrics"] {
        assert!(links.contains(&wanted), "{wanted} in {links:?}");
    }
    for link in &links {
        let page = run(&chromium, profile.path(), &format!("{base}{link}"), &["--dump-dom"]);
        let expected = match *link {
            "/files/" => "docs/",
            "/health" => "ready",
            "/metrics" => "percore_requests_total",
            other => panic!("an unexpected link {other}"),
        };
        assert!(page.contains(expected), "{link}: {page}");
    }
    // A listing: names are text, not markup; links lead to the files.
    let listing = run(&chromium, profile.path(), &format!("{base}/files/docs/"), &["--dump-dom"]);
    assert!(listing.contains("a&lt;b&gt;&amp;\"q\".txt"), "{listing}");
    assert!(!listing.contains("<b>"), "a name became markup: {listing}");
    assert!(listing.contains("ünïcødé.txt") && listing.contains("href=\"sub/\""), "{listing}");
    let file = run(&chromium, profile.path(), &format!("{base}/files/docs/a%3Cb%3E%26%22q%22.txt"), &["--dump-dom"]);
    assert!(file.contains("hello"), "the link's target: {file}");
    // A screenshot, kept for a human.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("percore-listing.png");
    let _ = std::fs::remove_file(&shot);
    run(&chromium, profile.path(), &format!("{base}/files/docs/"), &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "{} bytes", png.len());
    eprintln!("browser test: screenshot of the listing at {}", shot.display());
}

/// A page that writes an object through a presigned PUT URL and reads it
/// back through a presigned GET, then shows what happened in its body.
fn cors_page(put: &str, get: &str) -> String {
    format!(
        r#"<!doctype html><html><body>waiting</body><script>
(async () => {{
  const seen = [];
  try {{
    const put = await fetch("{put}", {{ method: "PUT", body: "from the browser" }});
    seen.push("PUT " + put.status + " " + put.headers.get("ETag"));
    const get = await fetch("{get}");
    seen.push("GET " + get.status + " " + (await get.text()));
  }} catch (e) {{
    seen.push("BLOCKED " + e.name);
  }}
  document.body.textContent = seen.join(" | ");
}})();
</script></html>"#
    )
}

/// A daemon serving plain HTTP and S3: a page from the one is of another
/// origin than the other.
struct TwoOrigins {
    daemon: Daemon,
    _keys: tempfile::TempDir,
    /// `http://` and the plain listener's address.
    origin: String,
    /// `http://` and the S3 listener's address.
    endpoint: String,
}

fn two_origins() -> TwoOrigins {
    let keys = crate::s3::keys_dir();
    let args = crate::s3::s3_args(keys.path(), false);
    let daemon = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let origin = format!("http://{}", daemon.addr);
    let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
    TwoOrigins { daemon, _keys: keys, origin, endpoint }
}

/// Chromium, or `None` after saying loudly that `test` is skipped.
fn chromium_for(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        eprintln!("\n*** SKIPPED the {test}: no Chromium and it could not be installed (needs root and apt) ***\n");
    }
    found
}

#[test]
fn a_page_from_another_origin_uses_s3_once_the_bucket_allows_it() {
    let Some(chromium) = chromium_for("browser CORS test") else { return };
    let TwoOrigins { daemon, origin, endpoint, _keys } = two_origins();
    let phase = |name: &str| crate::s3::script("cors.py", &endpoint, None, &[("PHASE", name), ("ORIGIN", &origin)]);
    let urls = phase("setup");
    let url = |method: &str| {
        let line = urls.lines().find(|l| l.starts_with(method)).unwrap_or_else(|| panic!("no {method} URL: {urls}"));
        line[method.len() + 1..].to_string()
    };
    std::fs::create_dir(daemon.path("site")).unwrap();
    std::fs::write(daemon.path("site/cors.html"), cors_page(&url("PUT"), &url("GET"))).unwrap();
    let page = format!("{origin}/files/site/cors.html");
    let profile = tempfile::tempdir().unwrap();
    let load = || run(&chromium, profile.path(), &page, &["--dump-dom", "--virtual-time-budget=10000"]);
    // No rules: the browser refuses the preflight's answer; nothing is stored.
    let refused = load();
    assert!(refused.contains("BLOCKED TypeError"), "{refused}");
    assert!(!daemon.path("web/from-browser.txt").exists());
    // Rules that allow the page's origin: the page writes, reads the ETag
    // it is shown, and reads the object back.
    phase("allow");
    let allowed = load();
    // (The ETag is readable because the rule exposes it: the MD5 of the body.)
    let put = "PUT 200 \"0371e0d44aa40f3d51ebef0a55fe0f46\"";
    assert!(allowed.contains(put) && allowed.contains("GET 200 from the browser"), "{allowed}");
    assert_eq!(std::fs::read(daemon.path("web/from-browser.txt")).unwrap(), b"from the browser");
    phase("remove");
}

#[test]
fn an_html_form_uploads_to_s3_and_comes_back_to_its_page() {
    let Some(chromium) = chromium_for("browser form test") else { return };
    let TwoOrigins { daemon, origin, endpoint, _keys } = two_origins();
    let done = format!("{origin}/files/site/done.html");
    let out = crate::s3::script("form_fields.py", &endpoint, None, &[("REDIRECT", &done)]);
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(out.lines().next().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"));
    // A plain HTML form (no script but the one that submits it), its file
    // a text field, as S3 allows.
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            let value = value.as_str().unwrap().replace('&', "&amp;").replace('"', "&quot;");
            format!("<input type=\"hidden\" name=\"{name}\" value=\"{value}\">\n")
        })
        .collect();
    let page = format!(
        "<!doctype html><html><body><form method=\"post\" enctype=\"multipart/form-data\" \
         action=\"{endpoint}/forms\">\n{inputs}<textarea name=\"file\">typed into a form</textarea>\n\
         </form><script>document.forms[0].submit()</script></body></html>"
    );
    let back = "<!doctype html><html><body>waiting</body><script>\
        document.body.textContent = 'stored ' + new URLSearchParams(location.search).get('key');</script></html>";
    std::fs::create_dir(daemon.path("site")).unwrap();
    std::fs::write(daemon.path("site/form.html"), page).unwrap();
    std::fs::write(daemon.path("site/done.html"), back).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{origin}/files/site/form.html");
    let shown = run(&chromium, profile.path(), &url, &["--dump-dom", "--virtual-time-budget=10000"]);
    assert!(shown.contains("stored from-a-form.txt"), "{shown}");
    assert_eq!(std::fs::read(daemon.path("forms/from-a-form.txt")).unwrap(), b"typed into a form");
}

/// A web app of another origin using the AWS SDK for JavaScript v3 in the
/// page, as such apps do (`tests/s3_clients/js/browser_app.mjs`, bundled
/// by esbuild): the SDK's preflights with its own headers, its checksums,
/// lib-storage's multipart upload reading the parts' ETags, listings,
/// copies and batch deletes, through the bucket's CORS rules.
#[test]
fn the_aws_sdk_for_javascript_works_in_a_page_of_another_origin() {
    let Some(chromium) = chromium_for("browser SDK test") else { return };
    let TwoOrigins { daemon, origin, endpoint, _keys } = two_origins();
    crate::s3::node("browser_setup.mjs", &endpoint, &[("BUCKET", "webapp"), ("ORIGIN", &origin)]);
    let entry = crate::s3::js_client("browser_app.mjs");
    std::fs::create_dir(daemon.path("site")).unwrap();
    let bundle = daemon.path("site/app.js");
    let built = Command::new(entry.parent().unwrap().join("node_modules/.bin/esbuild"))
        .arg(&entry)
        .args(["--bundle", "--format=iife", "--global-name=App", "--platform=browser", "--log-level=warning"])
        .arg(format!("--outfile={}", bundle.display()))
        .output()
        .expect("run esbuild (.ci/run installs it in target/js-clients)");
    assert!(built.status.success(), "esbuild: {}", String::from_utf8_lossy(&built.stderr));
    // The page PUTs what it saw beside itself (its own origin's /files/):
    // the calls take longer than Chromium's `--dump-dom` waits.
    let page = format!(
        r#"<!doctype html><html><body>waiting</body><script src="app.js"></script><script>
App.run("{endpoint}", "webapp").then((seen) => fetch("/files/site/seen.txt", {{ method: "PUT", body: seen }}));
</script></html>"#
    );
    std::fs::write(daemon.path("site/app.html"), page).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{origin}/files/site/app.html");
    let browser = Browser(
        Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("run chromium"),
    );
    let seen = daemon.path("site/seen.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !seen.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(browser);
    let shown = std::fs::read_to_string(&seen).expect("the page reported what it saw within 90 s");
    assert!(shown.ends_with("| OK"), "the page's SDK calls: {shown}");
    assert!(shown.contains("LIST app/big.bin,app/copy.txt,app/note.txt"), "{shown}");
    assert!(!daemon.path("webapp/app/note.txt").exists(), "the page deleted what it wrote");
}

/// A Chromium left running (in a process group of its own), stopped with
/// all its processes when dropped.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group this test made (its leader
        // is our child, not yet reaped), with a valid signal.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}
