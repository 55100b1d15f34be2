//! The pages for browsers, in a real browser: headless Chromium (Debian's)
//! loads the front page and a listing, every link on the front page
//! answers, names with `<`, `"`, `&` and unicode show as text, and a
//! screenshot is taken (left in the target directory for a human to look
//! at). If Chromium is missing the test installs it from Debian when it
//! can (root, apt), and otherwise says loudly that it skipped.

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
