//! Power loss, not just process death: the data directory lives on an XFS
//! (and an ext4) file system in a loop-device image, and each round ends
//! with `xfs_io -x -c shutdown` (no log flush: whatever the journal had not
//! made durable is gone, as if the power had been cut) under concurrent
//! writes, then a remount (journal recovery). After each: every
//! acknowledged write is there or superseded (the crash harness's check),
//! and no request sent after the shutdown was acknowledged. A second test
//! shows the check catches a daemon that skips the directory fsync. A third
//! fills a small ext4 image: 507, nothing half-stored, and writes resume
//! once a DELETE frees space.
//!
//! Needs root, loop devices, and xfsprogs and e2fsprogs (`.ci/run` installs
//! them; the tests install them themselves when they can). What a machine
//! lacks (root, loop devices, the tools when they cannot be installed) is
//! said loudly and the test skipped (`PERCORE_SKIP_POWERLOSS=1`, which
//! once was needed for that, only notes itself in the message).
//! `PERCORE_POWERLOSS_ROUNDS` sets the rounds per file system (default 3).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::crash::{self, Op, State, PATHS, WRITERS};
use crate::util::{join_all, put, temp_files, Daemon};

/// A file system in an image file, mounted through a loop device.
struct LoopFs {
    image: PathBuf,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
    /// No container starts while this is mounted (`util::loop_mounts`);
    /// last, so released after the umount (`Drop`) and the directory.
    _mounts: std::sync::RwLockReadGuard<'static, ()>,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl LoopFs {
    fn new(kind: &'static str) -> LoopFs {
        LoopFs::with_size(kind, 512 << 20)
    }

    fn with_size(kind: &'static str, bytes: u64) -> LoopFs {
        let mounts = crate::util::loop_mounts();
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (image, mnt) = (dir.path().join("fs.img"), dir.path().join("mnt"));
        std::fs::create_dir(&mnt).unwrap();
        // Sparse: only what is written takes space.
        std::fs::File::create(&image).unwrap().set_len(bytes).unwrap();
        let image_str = image.to_str().unwrap();
        match kind {
            "xfs" => run("mkfs.xfs", &["-q", "-f", image_str]),
            "ext4-fast-commit" => run("mkfs.ext4", &["-q", "-F", "-O", "fast_commit", image_str]),
            _ => run("mkfs.ext4", &["-q", "-F", image_str]),
        }
        .unwrap();
        let fs = LoopFs { image, mnt, _dir: dir, _mounts: mounts };
        fs.mount();
        fs
    }

    fn mount(&self) {
        run("mount", &["-o", "loop", self.image.to_str().unwrap(), self.mnt.to_str().unwrap()]).unwrap();
    }

    fn umount(&self) {
        // A just-killed daemon's files may take a moment to be released.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match run("umount", &[self.mnt.to_str().unwrap()]) {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Shuts the file system down without flushing its log.
    fn shutdown(&self) {
        run("xfs_io", &["-x", "-c", "shutdown", self.mnt.to_str().unwrap()]).unwrap();
    }

    fn data(&self) -> PathBuf {
        let data = self.mnt.join("data");
        std::fs::create_dir_all(&data).unwrap();
        data
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = run("umount", &[self.mnt.to_str().unwrap()]);
    }
}

/// What this machine lacks to run the tests.
fn missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root");
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push("loop devices");
    }
    for tool in ["mkfs.xfs", "xfs_io", "mkfs.ext4", "mount"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map_or(true, |o| !o.status.success())
        {
            missing.push(tool);
        }
    }
    missing
}

/// Whether this machine can run the tests. Missing file-system tools are
/// installed from Debian when they can be (root, apt; once per run);
/// whatever is still missing is said loudly and the test is skipped.
fn can_run() -> bool {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    let mut missing = missing();
    if missing.iter().any(|m| m.starts_with("mkfs") || *m == "xfs_io") && !missing.contains(&"root") {
        INSTALL.call_once(|| crate::util::install_from_debian("xfsprogs e2fsprogs"));
        missing = self::missing();
    }
    if missing.is_empty() {
        return true;
    }
    let why =
        if std::env::var_os("PERCORE_SKIP_POWERLOSS").is_some() { " (PERCORE_SKIP_POWERLOSS is set)" } else { "" };
    eprintln!(
        "\n*** SKIPPED a power-loss test: this machine lacks {missing:?}{why}; run the tests as root on a machine \
         with loop devices (bash .ci/run) to run it ***\n"
    );
    false
}

fn rounds() -> usize {
    std::env::var("PERCORE_POWERLOSS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

/// Rounds of writes cut by a shutdown, on one kind of file system:
/// `writers` threads writing to `paths`.
fn shutdown_rounds(kind: &'static str, writers: usize, paths: &'static [&'static str]) {
    let _heavy = crate::util::heavy();
    let fs = LoopFs::new(kind);
    let mut state: State = PATHS.iter().map(|p| (*p, None)).collect();
    let next_id = Arc::new(AtomicU64::new(1));
    let (mut checked, mut failed) = (0, 0);
    for round in 0..rounds() {
        let data = fs.data();
        let daemon = Daemon::start_at(&data, &["--cores", "2"], &[], None);
        let stop = Arc::new(AtomicBool::new(false));
        let etags = Arc::new(Mutex::new(BTreeMap::new()));
        let started = Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (addr, next_id, stop, etags) = (daemon.addr, next_id.clone(), stop.clone(), etags.clone());
                let seed = (round * writers + w) as u64 * 0x5851_F42D + 11;
                std::thread::spawn(move || crash::writer(addr, seed, &next_id, &stop, &etags, true, paths))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + 100 * round as u64));
        if paths.len() == 1 {
            // The writers of one path did share flushes.
            let text = crate::util::metrics(&daemon);
            let (commits, flushes) = (
                crate::util::metric(&text, "percore_commits_total", &[]),
                crate::util::metric(&text, "percore_commit_flushes_total", &[]),
            );
            assert!(flushes < commits, "{kind} round {round}: {commits} commits took {flushes} flushes");
        }
        fs.shutdown();
        let down = Instant::now();
        // Writers keep going for a moment against the dead file system.
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
        let ops: Vec<Op> = join_all(handles).into_iter().flatten().collect();
        let late: Vec<&Op> = ops.iter().filter(|o| o.sent > down && matches!(o.result, crash::Ack::Acked(_))).collect();
        assert!(late.is_empty(), "{kind} round {round}: acknowledged after the shutdown: {late:?}");
        failed += ops.iter().filter(|o| o.sent > down).count();
        let _ = daemon.kill9();
        fs.umount();
        fs.mount();
        let data = fs.data();
        let daemon = Daemon::start_at(&data, &["--cores", "2"], &[], None);
        assert!(temp_files(&data).is_empty(), "{kind} round {round}: temporary files survived start-up");
        let (after, n) = crash::check(&daemon, &state, started, &ops);
        crash::listings_agree(&daemon, &after);
        checked += n;
        state = after;
        let _ = daemon.kill9();
    }
    println!(
        "power loss on {kind}: {} rounds, {checked} acknowledged writes checked, {failed} sent after the shutdown",
        rounds()
    );
    assert!(checked > 0);
}

#[test]
fn acknowledged_writes_survive_a_shutdown_of_xfs() {
    if can_run() {
        shutdown_rounds("xfs", WRITERS, &PATHS);
    }
}

/// Many writers on one path, so that uploads commit in batches sharing one
/// directory fsync (`store::commit`): every acknowledged write of a batch is
/// durable, on both file systems whose write-back the commit relies on.
#[test]
fn acknowledged_batched_writes_to_one_path_survive_a_shutdown() {
    if can_run() {
        shutdown_rounds("xfs", 16, &PATHS[..1]);
        shutdown_rounds("ext4", 16, &PATHS[..1]);
    }
}

#[test]
fn acknowledged_writes_survive_a_shutdown_of_ext4() {
    if can_run() {
        shutdown_rounds("ext4", WRITERS, &PATHS);
    }
}

/// An ext4 made with `-O fast_commit`, where an fsync may be logged as a
/// fast commit instead of a full journal commit: the write-back protocol
/// must hold there too. (On kernel 6.18 the daemon's directory fsyncs did
/// not show up as fast commits in `/proc/fs/ext4/<dev>/fc_info`, file
/// fsyncs did; this checks the outcome whichever path the kernel takes.)
#[test]
fn acknowledged_writes_survive_a_shutdown_of_ext4_with_fast_commits() {
    if can_run() {
        shutdown_rounds("ext4-fast-commit", WRITERS, &PATHS);
    }
}

/// Rounds of S3 writes cut by a shutdown: three boto3 workers overwrite
/// their keys by PutObject, CopyObject (new metadata) and multipart uploads,
/// each version's Content-Type, `x-amz-meta-*` and tags naming it, and now
/// and then replace a version's tags in place (PutObjectTagging)
/// (`tests/s3_clients/power_load.py`). After each remount every round so
/// far is checked (`power_check.py`): each key holds its last acknowledged
/// version or one sent after it, with body, type, metadata, tags and ETag
/// all of that one version (the attribute that carries them is set before
/// the body's flush, so the journal commit that makes the rename durable
/// holds it too), a version's tags no older than the last replacement
/// acknowledged for it (the file is fsynced after the attribute is
/// rewritten), and nothing sent after the shutdown was acknowledged.
fn s3_shutdown_rounds(kind: &'static str) {
    let _heavy = crate::util::heavy();
    // Each round's bucket is kept and checked again later: up to 60 MB a
    // round (12 keys, 5 MiB multipart uploads), room for 20 rounds and more
    // (sparse: only what is written takes space).
    let fs = LoopFs::with_size(kind, 4 << 30);
    let keys = crate::s3::keys_dir();
    let mut args = crate::s3::s3_args(keys.path(), false);
    args.extend(["--cores", "2"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str, round: usize| logs.path().join(format!("{name}{round}"));
    let mut out = String::new();
    for round in 0..rounds() {
        let data = fs.data();
        let daemon = Daemon::start_at(&data, &args, &[], None);
        let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_clients");
        let mut load = Command::new(crate::s3::python());
        crate::s3::client_env(&mut load)
            .arg(dir.join("power_load.py"))
            .current_dir(&dir)
            .env("S3_ENDPOINT", &endpoint)
            .env("BUCKET", format!("round-{round}"))
            .env("SENT", log("sent", round))
            .env("ACKS", log("acks", round))
            .env("DOWN", log("down", round))
            .stdout(std::process::Stdio::null());
        let mut load = load.spawn().expect("python3 with boto3 (.ci/run installs it in target/s3-clients)");
        // Cut once some versions are acknowledged and more are under way.
        let acked = || std::fs::read_to_string(log("acks", round)).map_or(0, |a| a.lines().count());
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked() < 40 + 10 * round && Instant::now() < deadline {
            assert!(load.try_wait().unwrap().is_none(), "{kind} round {round}: the S3 load stopped before the cut");
            std::thread::sleep(Duration::from_millis(10));
        }
        fs.shutdown();
        std::fs::write(log("down", round), b"").unwrap();
        // The workers go on for a moment against the dead file system.
        std::thread::sleep(Duration::from_millis(100));
        let _ = load.kill();
        let _ = load.wait();
        let _ = daemon.kill9();
        fs.umount();
        fs.mount();
        let data = fs.data();
        let daemon = Daemon::start_at(&data, &args, &[], None);
        assert!(temp_files(&data).is_empty(), "{kind} round {round}: temporary files survived start-up");
        let endpoint = format!("http://{}", daemon.s3_addr.expect("an S3 address"));
        let rounds_so_far = (round + 1).to_string();
        let env = [("LOGS", logs.path().to_str().unwrap()), ("ROUNDS", rounds_so_far.as_str())];
        out = crate::s3::script("power_check.py", &endpoint, None, &env);
        let _ = daemon.kill9();
    }
    let acknowledged: usize =
        (0..rounds()).map(|r| std::fs::read_to_string(log("acks", r)).map_or(0, |a| a.lines().count())).sum();
    println!("S3 power loss on {kind}: {} rounds, {acknowledged} acknowledged versions; {}", rounds(), out.trim());
}

#[test]
fn acknowledged_s3_objects_and_their_metadata_survive_a_shutdown_of_xfs() {
    if can_run() {
        s3_shutdown_rounds("xfs");
    }
}

#[test]
fn acknowledged_s3_objects_and_their_metadata_survive_a_shutdown_of_ext4() {
    if can_run() {
        s3_shutdown_rounds("ext4");
        s3_shutdown_rounds("ext4-fast-commit");
    }
}

/// Acknowledged PUTs of new objects, then an immediate shutdown; returns how
/// many of them are missing or not whole after the remount. `skip` names a
/// step the daemon leaves out (a test-only knob), if any.
fn lost_after_shutdown(kind: &'static str, skip: Option<&str>) -> usize {
    let fs = LoopFs::new(kind);
    let data = fs.data();
    let env: Vec<(&str, &str)> = skip.map(|knob| (knob, "1")).into_iter().collect();
    let daemon = Daemon::start_at(&data, &["--cores", "1"], &env, None);
    std::fs::create_dir_all(data.join("d")).unwrap();
    // Make the directory itself durable first: only the renames are in question.
    Command::new("sync").status().unwrap();
    let objects = 8;
    for i in 0..objects {
        assert_eq!(put(&daemon, &format!("/files/d/o{i}"), &crash::body(i, 100), "").status, 201);
    }
    fs.shutdown();
    let _ = daemon.kill9();
    fs.umount();
    fs.mount();
    (0..objects)
        .filter(|i| std::fs::read(fs.mnt.join(format!("data/d/o{i}"))).ok() != Some(crash::body(*i, 100)))
        .count()
}

#[test]
fn the_shutdown_test_catches_a_missing_directory_fsync() {
    if !can_run() {
        return;
    }
    for kind in ["xfs", "ext4", "ext4-fast-commit"] {
        assert_eq!(lost_after_shutdown(kind, None), 0, "{kind}: with the directory fsync nothing is lost");
        let lost = lost_after_shutdown(kind, Some("PERCORE_UNSAFE_SKIP_DIR_FSYNC"));
        println!("{kind} without the directory fsync: {lost} of 8 acknowledged objects lost");
        assert!(lost > 0, "{kind}: without the directory fsync an acknowledged rename should be lost");
    }
}

/// On ext4 and XFS an upload is written back, not fdatasynced, and the
/// directory fsync after its rename makes body and rename durable in one
/// journal commit. The same check without any body flush finds objects that
/// are there but not whole: so the write-back is what makes them whole.
#[test]
fn the_shutdown_test_catches_a_missing_body_flush() {
    if !can_run() {
        return;
    }
    for kind in ["xfs", "ext4", "ext4-fast-commit"] {
        let lost = lost_after_shutdown(kind, Some("PERCORE_UNSAFE_SKIP_BODY_FLUSH"));
        println!("{kind} without the body's write-back: {lost} of 8 acknowledged objects not whole");
        assert!(lost > 0, "{kind}: without the body's write-back an acknowledged object should be damaged");
    }
}

/// A rename made just before a shutdown and flushed just after: the io
/// crate's directory flush must not report it durable. (XFS's own directory
/// fsync returns success there and the rename is gone after the remount;
/// this is what made the XFS rounds above lose acknowledged writes now and
/// then.)
#[test]
fn a_flush_after_a_shutdown_never_reports_success() {
    if !can_run() {
        return;
    }
    for kind in ["xfs", "ext4"] {
        let fs = LoopFs::new(kind);
        let data = fs.data();
        std::fs::write(data.join("f"), b"durable").unwrap();
        Command::new("sync").status().unwrap();
        let rt = percore_io::Runtime::new().unwrap();
        let (dir, file) = rt.block_on(async {
            let dir = percore_io::Dir::open(&data).await.unwrap();
            let file = dir.open_file("f", percore_io::OpenOptions::new().read(true)).await.unwrap();
            (dir, file)
        });
        std::fs::rename(data.join("f"), data.join("g")).unwrap();
        fs.shutdown();
        // What the kernel says on its own, for the record.
        // SAFETY: fsync on a descriptor `dir` keeps open.
        let raw = unsafe { libc::fsync(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
        let (dir_flush, file_flush) = rt.block_on(async {
            let flushed = (dir.sync_all().await, file.sync_data().await);
            // Closed on the ring, so before the runtime goes.
            drop((dir, file));
            flushed
        });
        drop(rt);
        println!("{kind}: fsync(2) of the directory after the shutdown returned {raw}; Dir::sync_all: {dir_flush:?}");
        fs.umount();
        fs.mount();
        let renamed = fs.mnt.join("data/g").exists();
        assert!(dir_flush.is_err(), "{kind}: a directory flush after a shutdown reported success (renamed: {renamed})");
        assert!(file_flush.is_err(), "{kind}: a file flush after a shutdown reported success");
    }
}

#[test]
fn a_full_file_system_is_507_and_writes_resume_after_a_delete() {
    if !can_run() {
        return;
    }
    // Loop-device work of its own: not alongside the shutdown rounds.
    let _heavy = crate::util::heavy();
    let fs = LoopFs::with_size("ext4", 16 << 20);
    let data = fs.data();
    let daemon = Daemon::start_at(&data, &["--cores", "1"], &[], None);
    let object = |i: u64| crash::body(i, 1 << 20);
    let mut stored = Vec::new();
    let full = loop {
        let i = stored.len() as u64;
        assert!(i < 64, "a 16 MiB file system never filled up");
        let r = put(&daemon, &format!("/files/o{i}"), &object(i), "");
        match r.status {
            201 => stored.push(i),
            507 => break i,
            other => panic!("PUT {i}: {other}: {}", String::from_utf8_lossy(&r.body)),
        }
    };
    assert!(stored.len() >= 4, "{} objects fit", stored.len());
    // Replacing an object needs room for the new version first: refused, the
    // old one intact.
    let r = put(&daemon, "/files/o0", &object(1000), "");
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert!(!daemon.path(&format!("o{full}")).exists(), "the refused upload left no object");
    assert!(temp_files(&data).is_empty(), "nor a temporary file");
    for &i in &stored {
        assert_eq!(crate::util::get(&daemon, &format!("/files/o{i}")).body, object(i), "o{i} intact");
    }
    // A full disk is not a failed one: after a DELETE, writes go on.
    assert_eq!(crate::util::delete(&daemon, "/files/o1", "").status, 204);
    assert_eq!(crate::util::delete(&daemon, "/files/o2", "").status, 204);
    assert_eq!(put(&daemon, &format!("/files/o{full}"), &object(full), "").status, 201);
    assert_eq!(crate::util::get(&daemon, &format!("/files/o{full}")).body, object(full));
    let _ = daemon.kill9();
}
