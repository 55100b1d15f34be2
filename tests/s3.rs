//! The S3 API as its users reach it: boto3 through every operation (and over
//! HTTPS, where it streams aws-chunked bodies with checksums), with
//! folders and with presigned POST forms, `aws s3` syncing a tree, `rclone sync` and `check`, `s3cmd`,
//! restic backing up into a bucket, s3fs mounting one; the MinIO SDK,
//! Arrow's S3 file system (the AWS SDK for C++), obstore (Rust's
//! object_store) and the AWS SDK for JavaScript; hostile requests;
//! kill -9 during multipart uploads and copies. The scripts are in
//! `tests/s3_clients/`; `.ci/run` installs the clients (boto3, awscli,
//! minio, pyarrow and obstore in `target/s3-clients`, the JavaScript SDK in
//! `target/js-clients`, rclone, s3cmd, restic and s3fs from Debian).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::Daemon;

const KEY_ID: &str = "AKIDTEST";
const SECRET: &str = "secret/key+1";

/// A daemon serving S3 (plain, and HTTPS when `tls`), with its credentials
/// file (kept until the daemon is dropped).
struct S3 {
    daemon: Daemon,
    _keys: tempfile::TempDir,
    ca: Option<PathBuf>,
}

pub(crate) fn keys_dir() -> tempfile::TempDir {
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("credentials"), format!("# test key\n{KEY_ID} {SECRET}\n")).unwrap();
    keys
}

pub(crate) fn s3_args(keys: &Path, tls: bool) -> Vec<String> {
    let mut args =
        vec!["--s3-listen", "127.0.0.1:0", "--s3-credentials"].into_iter().map(String::from).collect::<Vec<_>>();
    args.push(keys.join("credentials").to_str().unwrap().to_string());
    if tls {
        args.extend(["--s3-listen-tls", "127.0.0.1:0", "--tls-self-signed"].map(String::from));
    }
    args
}

impl S3 {
    fn start(tls: bool) -> S3 {
        let keys = keys_dir();
        let args = s3_args(keys.path(), tls);
        let daemon = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        // The self-signed note names the certificate file.
        let ca = daemon.notes.iter().find_map(|n| {
            n.split_whitespace().find(|w| w.ends_with(".pem")).map(|w| PathBuf::from(w.trim_end_matches(')')))
        });
        S3 { daemon, _keys: keys, ca }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.daemon.s3_addr.expect("an S3 address"))
    }

    fn tls_endpoint(&self) -> String {
        format!("https://localhost:{}", self.daemon.s3_tls_addr.expect("an S3 HTTPS address").port())
    }
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s3-clients/bin")
}

/// The Python with boto3: `target/s3-clients` (made by `.ci/run`) or the
/// one on the PATH.
pub(crate) fn python() -> PathBuf {
    let venv = clients_dir().join("python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn aws() -> PathBuf {
    let venv = clients_dir().join("aws");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("aws")
    }
}

/// The environment every client gets: the key, the region, and none of the
/// caller's AWS settings (a CA bundle there breaks rclone). botocore signs
/// in Python, as a plain `pip install boto3` does; with awscrt installed
/// (for CRC64NVME) it would sign with the CRT, as aws-cli v2 does: the
/// checksums test asks for that (`BOTO_DISABLE_CRT=false`).
pub(crate) fn client_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") || name.starts_with("RCLONE_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("BOTO_DISABLE_CRT", "true")
}

/// Runs a script of `tests/s3_clients` against `endpoint`; panics with its
/// output unless it succeeds and prints `ok`.
pub(crate) fn script(name: &str, endpoint: &str, ca: Option<&Path>, env: &[(&str, &str)]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_clients");
    let mut command = Command::new(python());
    client_env(&mut command)
        .arg(dir.join(name))
        .current_dir(&dir)
        .env("S3_ENDPOINT", endpoint)
        .envs(env.iter().copied());
    if let Some(ca) = ca {
        command.env("S3_CA", ca);
    }
    let out = command.output().expect("python3 with boto3 (.ci/run installs it in target/s3-clients)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("ok"), "{name} failed:\n{text}");
    text
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e} (.ci/run installs it)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn boto3_through_every_operation() {
    let s3 = S3::start(false);
    script("boto3_every_operation.py", &s3.endpoint(), None, &[]);
    script("hoisted.py", &s3.endpoint(), None, &[]);
}

#[test]
fn boto3_object_tags_are_kept_with_the_object_through_a_kill9() {
    let s3 = S3::start(false);
    let files = format!("http://{}", s3.daemon.addr);
    script("tagging.py", &s3.endpoint(), None, &[("FILES", &files)]);
    let S3 { daemon, _keys: keys, .. } = s3;
    let data = daemon.kill9().expect("the daemon's data directory");
    let args = s3_args(keys.path(), false);
    let daemon = Daemon::start_in(data, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
    script("tagging.py", &endpoint, None, &[("PHASE", "check")]);
}

#[test]
fn boto3_virtual_host_style_names_the_bucket_in_the_host() {
    let keys = keys_dir();
    let mut args = s3_args(keys.path(), false);
    args.extend(["--s3-domain", "S3.percore.test"].map(String::from));
    let daemon = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
    script("virtual_host.py", &endpoint, None, &[("S3_DOMAIN", "s3.percore.test")]);
}

#[test]
fn boto3_over_https_streams_checked_aws_chunked_bodies() {
    let s3 = S3::start(true);
    script("https.py", &s3.tls_endpoint(), s3.ca.as_deref(), &[]);
}

#[test]
fn checksums_as_current_sdks_and_aws_cli_v2_send_them_in_headers_and_trailers() {
    let s3 = S3::start(true);
    // awscrt computes CRC32C and CRC64NVME for botocore, and signs.
    let crt = ("BOTO_DISABLE_CRT", "false");
    script("checksums.py", &s3.endpoint(), None, &[crt]);
    script("checksums.py", &s3.tls_endpoint(), s3.ca.as_deref(), &[crt, ("S3_BUCKET", "sums-tls")]);
}

#[test]
fn hostile_requests_are_refused_and_store_nothing() {
    let s3 = S3::start(false);
    script("hostile.py", &s3.endpoint(), None, &[]);
    let stray: Vec<_> =
        walk(s3.daemon.dir()).into_iter().filter(|p| !p.starts_with(s3.daemon.dir().join("hostile"))).collect();
    assert!(stray.iter().all(|p| p.starts_with(s3.daemon.dir().join(".percore-s3"))), "{stray:?}");
}

#[test]
fn anonymous_reads_serve_unsigned_gets_only_and_take_a_public_read_acl() {
    let keys = keys_dir();
    let mut args = s3_args(keys.path(), false);
    args.push("--s3-anonymous-reads".to_string());
    let daemon = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
    script("anonymous.py", &endpoint, None, &[]);
}

#[test]
fn listings_equal_a_model_of_s3s_rules_over_random_keys_prefixes_delimiters_and_start_keys() {
    let s3 = S3::start(false);
    script("listing_model.py", &s3.endpoint(), None, &[]);
}

/// A large directory listed page by page while it changes, through S3
/// and `/files/`: the entries a shard keeps between pages never hide a
/// change (`large_dir.py`). One shard, so that one connection's pages
/// find what the page before kept.
#[test]
fn large_directories_list_page_by_page_through_changes_made_between_pages() {
    let keys = keys_dir();
    let mut args = s3_args(keys.path(), false);
    args.extend(["--cores", "1"].map(String::from));
    let daemon = Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
    let files = format!("http://{}", daemon.addr);
    let out = script("large_dir.py", &endpoint, None, &[("DATA", daemon.dir().to_str().unwrap()), ("FILES", &files)]);
    println!("{}", out.trim());
}

#[test]
fn uploads_whose_bytes_arrive_in_random_pieces_are_stored_whole_or_refused_whole() {
    let s3 = S3::start(true);
    script("pieces_model.py", &s3.endpoint(), None, &[]);
    script("pieces_model.py", &s3.tls_endpoint(), s3.ca.as_deref(), &[("PIECES_SEED", "2")]);
}

#[test]
fn list_parts_pages_and_completions_of_random_part_numbers_equal_a_model() {
    let s3 = S3::start(false);
    script("parts_model.py", &s3.endpoint(), None, &[]);
}

#[test]
fn gets_and_heads_under_every_combination_of_conditions_and_ranges_answer_as_rfc_9110_orders_them() {
    let s3 = S3::start(false);
    script("conditions_model.py", &s3.endpoint(), None, &[]);
}

#[test]
fn keys_that_need_encoding_round_trip_and_keys_the_store_cannot_hold_are_refused() {
    let s3 = S3::start(false);
    script("key_model.py", &s3.endpoint(), None, &[]);
}

#[test]
fn minio_sdk_arrow_and_object_store_write_read_list_copy_and_delete_as_their_users_do() {
    let s3 = S3::start(false);
    script("sdks.py", &s3.endpoint(), None, &[]);
}

/// `target/js-clients`, where `.ci/run` installs the versions of the AWS
/// SDK for JavaScript (and esbuild) that `tests/s3_clients/js/package-lock.json`
/// pins, with `name` of `tests/s3_clients/js` copied in (Node and esbuild
/// find an ES module's imports beside it); the copy's path.
pub(crate) fn js_client(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/js-clients");
    assert!(
        dir.join("node_modules/@aws-sdk/client-s3").is_dir(),
        "the AWS SDK for JavaScript is not installed in {}: run .ci/run, or `npm ci` there with the files of \
         tests/s3_clients/js",
        dir.display()
    );
    let copy = dir.join(name);
    std::fs::copy(root.join("tests/s3_clients/js").join(name), &copy).unwrap();
    copy
}

/// Runs `script` of `tests/s3_clients/js` with Node against `endpoint`;
/// panics with its output unless it succeeds and prints `ok`.
pub(crate) fn node(script: &str, endpoint: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new("node");
    client_env(&mut command).arg(js_client(script)).env("S3_ENDPOINT", endpoint).envs(env.iter().copied());
    let text = run(&mut command);
    assert!(text.lines().any(|l| l == "ok"), "{script} did not finish:\n{text}");
    text
}

/// The AWS SDK for JavaScript v3 under Node.
#[test]
fn aws_sdk_for_javascript_v3_uploads_downloads_presigns_lists_and_deletes() {
    let s3 = S3::start(false);
    node("js_sdk.mjs", &s3.endpoint(), &[]);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A tree of `count` small files in nested directories, and one of
/// `big` bytes.
fn tree(root: &Path, count: usize, big: usize) {
    for i in 0..count {
        let dir = root.join(format!("d{}/s{}", i % 10, i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..(i * 37) % 3000).map(|b| (b as u8) ^ (i as u8)).collect();
        std::fs::write(dir.join(format!("file {i}.txt")), body).unwrap();
    }
    let big: Vec<u8> = (0..big).map(|b| (b % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
}

/// Whether two trees hold the same files with the same bytes.
pub(crate) fn same_trees(a: &Path, b: &Path) {
    let rel = |root: &Path| {
        let mut files: Vec<PathBuf> =
            walk(root).into_iter().map(|p| p.strip_prefix(root).unwrap().to_path_buf()).collect();
        files.sort();
        files
    };
    let files = rel(a);
    assert_eq!(files, rel(b), "the same files");
    for f in files {
        assert!(std::fs::read(a.join(&f)).unwrap() == std::fs::read(b.join(&f)).unwrap(), "{f:?} differs");
    }
}

#[test]
fn aws_cli_syncs_copies_lists_and_removes_a_tree() {
    let s3 = S3::start(false);
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local");
    tree(&local, 1000, 64 << 20);
    let aws = |args: &[&str]| {
        let mut command = Command::new(aws());
        client_env(&mut command).args(["--endpoint-url", &s3.endpoint()]).args(args);
        run(&mut command)
    };
    aws(&["s3", "mb", "s3://backup"]);
    aws(&["s3", "sync", local.to_str().unwrap(), "s3://backup/tree", "--only-show-errors"]);
    let again = aws(&["s3", "sync", local.to_str().unwrap(), "s3://backup/tree"]);
    assert!(again.trim().is_empty(), "a second sync copies nothing: {again}");
    let listed = aws(&["s3", "ls", "--recursive", "s3://backup/tree/"]);
    assert_eq!(listed.lines().count(), 1001, "{listed}");
    let top = aws(&["s3", "ls", "s3://backup/tree/"]);
    assert!(top.contains("PRE d0/") && top.contains("PRE d9/") && top.contains("big.bin"), "{top}");
    let back = work.path().join("back");
    aws(&["s3", "cp", "--recursive", "s3://backup/tree", back.to_str().unwrap(), "--only-show-errors"]);
    same_trees(&local, &back);
    // A copy inside the store: multipart, each part copied server-side (UploadPartCopy).
    aws(&["s3", "cp", "s3://backup/tree/big.bin", "s3://backup/copy/big.bin", "--only-show-errors"]);
    let copied = work.path().join("copied.bin");
    aws(&["s3", "cp", "s3://backup/copy/big.bin", copied.to_str().unwrap(), "--only-show-errors"]);
    assert!(std::fs::read(&copied).unwrap() == std::fs::read(local.join("big.bin")).unwrap());
    aws(&["s3", "rm", "s3://backup/copy/big.bin", "--only-show-errors"]);
    // A stream of unknown length (`cp -` from stdin): uploaded in parts.
    let mut command = Command::new(self::aws());
    client_env(&mut command)
        .args(["--endpoint-url", &s3.endpoint(), "s3", "cp", "-", "s3://backup/stream.bin", "--only-show-errors"])
        .stdin(std::fs::File::open(local.join("big.bin")).unwrap());
    run(&mut command);
    // Presigned URLs: aws-cli 1 signs them with signature version 2 unless
    // configured for version 4; the refusal says how.
    let fetch = |url: &str| {
        let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}", url]).output().expect("curl");
        let mut text = out.stdout;
        let status = String::from_utf8(text.split_off(text.iter().rposition(|&b| b == b'\n').unwrap())).unwrap();
        (status.trim().to_string(), text)
    };
    let url = aws(&["s3", "presign", "s3://backup/stream.bin", "--expires-in", "60"]);
    if url.contains("AWSAccessKeyId=") {
        let (status, body) = fetch(url.trim());
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, "400", "{body}");
        assert!(body.contains("aws configure set default.s3.signature_version s3v4"), "{body}");
    }
    let config = work.path().join("aws-config");
    std::fs::write(&config, "[default]\ns3 =\n    signature_version = s3v4\n").unwrap();
    let mut command = Command::new(self::aws());
    client_env(&mut command).env("AWS_CONFIG_FILE", &config).args([
        "--endpoint-url",
        &s3.endpoint(),
        "s3",
        "presign",
        "s3://backup/stream.bin",
        "--expires-in",
        "60",
    ]);
    let url = run(&mut command);
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let (status, body) = fetch(url.trim());
    assert_eq!(status, "200");
    assert!(body == std::fs::read(local.join("big.bin")).unwrap(), "the stream came back whole through the URL");
    aws(&["s3", "rm", "s3://backup/stream.bin", "--only-show-errors"]);
    aws(&["s3", "rm", "--recursive", "s3://backup/tree", "--only-show-errors"]);
    assert!(aws(&["s3", "ls", "--recursive", "s3://backup/"]).trim().is_empty());
    aws(&["s3", "rb", "s3://backup"]);
}

#[test]
fn rclone_syncs_and_checks_both_ways_and_s3cmd_puts_gets_lists_deletes() {
    let s3 = S3::start(false);
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local");
    tree(&local, 300, 12 << 20);
    let config = work.path().join("rclone.conf");
    std::fs::write(
        &config,
        format!(
            "[pc]\ntype = s3\nprovider = Other\naccess_key_id = {KEY_ID}\nsecret_access_key = {SECRET}\n\
             endpoint = {}\nregion = us-east-1\nforce_path_style = true\n",
            s3.endpoint()
        ),
    )
    .unwrap();
    let rclone = |args: &[&str]| {
        let mut command = Command::new("rclone");
        client_env(&mut command).arg("--config").arg(&config).args(args);
        run(&mut command)
    };
    rclone(&["mkdir", "pc:mirror"]);
    rclone(&["sync", local.to_str().unwrap(), "pc:mirror/tree"]);
    let check = rclone(&["check", local.to_str().unwrap(), "pc:mirror/tree"]);
    assert!(check.contains("0 differences found") && check.contains("301 matching files"), "{check}");
    let back = work.path().join("back");
    rclone(&["sync", "pc:mirror/tree", back.to_str().unwrap()]);
    same_trees(&local, &back);
    let hashes = rclone(&["md5sum", "pc:mirror/tree/big.bin"]);
    let local_md5 = run(Command::new("md5sum").arg(local.join("big.bin")));
    assert_eq!(hashes.split_whitespace().next(), local_md5.split_whitespace().next());

    let s3cfg = work.path().join("s3cfg");
    let host = s3.daemon.s3_addr.unwrap().to_string();
    std::fs::write(
        &s3cfg,
        format!(
            "[default]\naccess_key = {KEY_ID}\nsecret_key = {SECRET}\nhost_base = {host}\nhost_bucket = {host}\n\
             use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| {
        let mut command = Command::new("s3cmd");
        client_env(&mut command).arg("-c").arg(&s3cfg).args(args);
        run(&mut command)
    };
    s3cmd(&["mb", "s3://cmd"]);
    s3cmd(&["put", local.join("big.bin").to_str().unwrap(), "s3://cmd/big.bin"]);
    s3cmd(&["put", local.join("d1/s1/file 1.txt").to_str().unwrap(), "s3://cmd/small/one.txt"]);
    let listed = s3cmd(&["ls", "-r", "s3://cmd"]);
    assert!(listed.contains("s3://cmd/big.bin") && listed.contains("s3://cmd/small/one.txt"), "{listed}");
    let got = work.path().join("got.bin");
    s3cmd(&["get", "s3://cmd/big.bin", got.to_str().unwrap()]);
    assert!(std::fs::read(&got).unwrap() == std::fs::read(local.join("big.bin")).unwrap());
    s3cmd(&["del", "s3://cmd/big.bin"]);
    let listed = s3cmd(&["ls", "-r", "s3://cmd"]);
    assert!(!listed.contains("big.bin") && listed.contains("one.txt"), "{listed}");
    // ACLs as they hold: read back as the owner's; set private, taken;
    // set public (anonymous reads are off), refused, saying why.
    let info = s3cmd(&["info", "s3://cmd/small/one.txt"]);
    assert!(info.contains("percore: FULL_CONTROL"), "{info}");
    // A bucket's settings as they are: who pays, no lifecycle, no policy.
    let info = s3cmd(&["info", "s3://cmd"]);
    for line in ["Payer:     BucketOwner", "Expiration Rule: none", "Policy:    none", "CORS:      none"] {
        assert!(info.contains(line), "{line}: {info}");
    }
    s3cmd(&["setacl", "--acl-private", "s3://cmd/small/one.txt"]);
    let mut public = Command::new("s3cmd");
    client_env(&mut public).arg("-c").arg(&s3cfg).args(["setacl", "--acl-public", "s3://cmd/small/one.txt"]);
    let out = public.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("AccessControlListNotSupported"), "{said}");
}

#[test]
fn kill9_during_multipart_uploads_and_copies_loses_nothing_acknowledged() {
    let _heavy = crate::util::heavy();
    let keys = keys_dir();
    let args = s3_args(keys.path(), false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&args);
    let work = tempfile::tempdir().unwrap();
    let acks = work.path().join("acks");
    let endpoint = format!("http://{}", daemon.s3_addr.unwrap());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_clients");
    let mut load = Command::new(python());
    client_env(&mut load)
        .arg(dir.join("crash_load.py"))
        .current_dir(&dir)
        .env("S3_ENDPOINT", &endpoint)
        .env("ACKS", &acks)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut load = load.spawn().unwrap();
    // Kill once some objects are complete and more are under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&acks).map_or(0, |a| a.matches("object").count()) < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    let data = daemon.kill9().unwrap();
    let _ = load.kill();
    let _ = load.wait();
    let acked = std::fs::read_to_string(&acks).unwrap();
    assert!(acked.matches("object").count() >= 6, "the load made progress: {acked}");
    let daemon = Daemon::start_in(data, &args);
    let endpoint = format!("http://{}", daemon.s3_addr.unwrap());
    let out = script("crash_check.py", &endpoint, None, &[("ACKS", acks.to_str().unwrap())]);
    eprintln!("{out}");
}

#[test]
fn boto3_folders_are_empty_objects_kept_as_marked_directories() {
    let s3 = S3::start(false);
    script("folders.py", &s3.endpoint(), None, &[("DATA_DIR", s3.daemon.dir().to_str().unwrap())]);
}

/// An s3fs mount of a bucket (a FUSE daemon; its own child process),
/// unmounted and stopped on drop.
struct Mount {
    s3fs: std::process::Child,
    dir: PathBuf,
}

impl Mount {
    /// Mounts `bucket` of `s3` at `dir`; `None` (said loudly) where this
    /// machine has no FUSE.
    fn new(s3: &S3, bucket: &str, dir: &Path, passwd: &Path) -> Option<Mount> {
        let options = format!(
            "passwd_file={},url={},use_path_request_style,endpoint=us-east-1,sigv4",
            passwd.display(),
            s3.endpoint()
        );
        let mut command = Command::new("s3fs");
        client_env(&mut command)
            .args([bucket, dir.to_str().unwrap(), "-f", "-o", &options])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let s3fs = command.spawn().expect("s3fs (.ci/run installs it)");
        let mut mount = Mount { s3fs, dir: dir.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
            if mounts.lines().any(|l| l.split_whitespace().nth(1) == dir.to_str()) {
                return Some(mount);
            }
            if let Some(status) = mount.s3fs.try_wait().unwrap() {
                let mut why = String::new();
                let _ = std::io::Read::read_to_string(mount.s3fs.stderr.as_mut().unwrap(), &mut why);
                assert!(why.to_lowercase().contains("fuse"), "s3fs exited ({status}) without mounting: {why}");
                eprintln!("*** SKIPPED the s3fs test: this machine cannot mount FUSE: {why}");
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("s3fs did not mount {} within 20 s", dir.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.s3fs.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.s3fs.kill();
        let _ = self.s3fs.wait();
    }
}

/// The regular files under `dir` that are objects (not the store's own
/// temporary and spare files).
fn objects_under(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    let temp = |p: &PathBuf| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".percore-"));
    walk(dir).into_iter().filter(|p| !temp(p)).collect()
}

#[test]
fn s3fs_mounts_a_bucket_and_makes_renames_and_removes_files_and_directories() {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("*** SKIPPED the s3fs test: no /dev/fuse on this machine");
        return;
    }
    if Command::new("s3fs").arg("--version").output().is_err() {
        crate::util::install_from_debian("s3fs");
    }
    use std::os::unix::fs::PermissionsExt;
    let s3 = S3::start(false);
    let work = tempfile::tempdir().unwrap();
    let passwd = work.path().join("passwd-s3fs");
    std::fs::write(&passwd, format!("{KEY_ID}:{SECRET}\n")).unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (mnt, bucket) = (work.path().join("mnt"), s3.daemon.path("fsb"));
    std::fs::create_dir(&mnt).unwrap();
    std::fs::create_dir(&bucket).unwrap();
    let Some(mount) = Mount::new(&s3, "fsb", &mnt, &passwd) else { return };
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(mnt.join("notes.txt"), b"first notes").unwrap();
    std::fs::write(mnt.join("big.bin"), &big).unwrap();
    // Directories: each a folder (an empty object `docs/`), before and
    // without any file in it.
    std::fs::create_dir(mnt.join("docs")).unwrap();
    std::fs::create_dir_all(mnt.join("docs/2024/q1")).unwrap();
    std::fs::create_dir(mnt.join("docs/empty")).unwrap();
    std::fs::write(mnt.join("docs/2024/q1/report.txt"), b"q1 report").unwrap();
    std::fs::set_permissions(mnt.join("docs"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let missing = std::fs::metadata(mnt.join("not-there")).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
    // Renames: a directory (every object under it copied, then removed) and
    // a file into a directory.
    std::fs::rename(mnt.join("docs/2024"), mnt.join("docs/2025")).unwrap();
    std::fs::rename(mnt.join("notes.txt"), mnt.join("docs/notes.txt")).unwrap();
    let mut appended = std::fs::OpenOptions::new().append(true).open(mnt.join("docs/notes.txt")).unwrap();
    std::io::Write::write_all(&mut appended, b", then more").unwrap();
    drop(appended);
    drop(mount);
    // What the store holds, and what a fresh mount sees of it.
    assert_eq!(std::fs::read(bucket.join("docs/2025/q1/report.txt")).unwrap(), b"q1 report");
    assert_eq!(std::fs::read(bucket.join("docs/notes.txt")).unwrap(), b"first notes, then more");
    assert!(std::fs::read(bucket.join("big.bin")).unwrap() == big, "the 20 MiB file (multipart) is whole");
    assert!(objects_under(&bucket.join("docs/2024")).is_empty(), "nothing is left under the old name");
    let Some(mount) = Mount::new(&s3, "fsb", &mnt, &passwd) else { return };
    let names = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(mnt.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(""), ["big.bin", "docs"]);
    assert_eq!(names("docs"), ["2025", "empty", "notes.txt"]);
    assert!(std::fs::metadata(mnt.join("docs/empty")).unwrap().is_dir(), "an empty directory stays one");
    let mode = std::fs::metadata(mnt.join("docs")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o750, "a directory's mode is kept with its folder");
    assert!(std::fs::read(mnt.join("big.bin")).unwrap() == big);
    assert_eq!(std::fs::read(mnt.join("docs/2025/q1/report.txt")).unwrap(), b"q1 report");
    // Removal: files, folders, the lot.
    std::fs::remove_dir(mnt.join("docs/empty")).unwrap();
    std::fs::remove_dir_all(mnt.join("docs")).unwrap();
    std::fs::remove_file(mnt.join("big.bin")).unwrap();
    assert!(names("").is_empty());
    drop(mount);
    assert!(objects_under(&bucket).is_empty(), "{:?}", objects_under(&bucket));
    let Some(_mount) = Mount::new(&s3, "fsb", &mnt, &passwd) else { return };
    assert!(names("").is_empty(), "no folder is left either");
}

#[test]
fn restic_backs_up_checks_restores_and_prunes_into_a_bucket() {
    if Command::new("restic").arg("version").output().is_err() {
        crate::util::install_from_debian("restic");
    }
    let s3 = S3::start(false);
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local");
    tree(&local, 200, 24 << 20);
    let repository = format!("s3:{}/backups/host1", s3.endpoint());
    let restic = |args: &[&str]| {
        let mut command = Command::new("restic");
        client_env(&mut command)
            .env("RESTIC_PASSWORD", "not a secret")
            .env("RESTIC_CACHE_DIR", work.path().join("cache"))
            .args(["-r", &repository])
            .args(args);
        run(&mut command)
    };
    // restic makes the bucket itself.
    restic(&["init"]);
    restic(&["backup", "--quiet", local.to_str().unwrap()]);
    std::fs::write(local.join("d1/changed.txt"), b"a second snapshot").unwrap();
    restic(&["backup", "--quiet", local.to_str().unwrap()]);
    let checked = restic(&["check", "--read-data"]);
    assert!(checked.contains("no errors were found"), "{checked}");
    let restored = work.path().join("restored");
    restic(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    same_trees(&local, &restored.join(local.strip_prefix("/").unwrap()));
    restic(&["forget", "--keep-last", "1", "--prune"]);
    let snapshots = restic(&["snapshots", "--json"]);
    assert_eq!(snapshots.matches("\"short_id\"").count(), 1, "{snapshots}");
    let checked = restic(&["check", "--read-data"]);
    assert!(checked.contains("no errors were found"), "{checked}");
}

#[test]
fn browser_forms_made_by_boto3_upload_within_their_signed_policy() {
    let s3 = S3::start(false);
    script("post.py", &s3.endpoint(), None, &[]);
}
