//! The deployment files under deploy/ as an operator uses them: the nginx
//! alternative parses, the seccomp script adds exactly io_uring's three
//! calls to a profile, the systemd unit verifies with its sandboxing, and
//! the container image builds and answers /health where a container
//! engine runs (where none can run a container: said loudly, then skipped).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

/// `program` runs here, installing `package` from Debian if it can.
fn have(program: &str, package: &str) -> bool {
    let runs = || Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !runs() {
        crate::util::install_from_debian(package);
    }
    runs() || {
        eprintln!("*** SKIPPED: {program} is not installed and cannot be (.ci/run installs {package})");
        false
    }
}

#[test]
fn the_nginx_alternative_parses() {
    if !have("nginx", "nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = std::fs::read_to_string(deploy("nginx.conf")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.10:0").unwrap().local_addr().unwrap().port();
    config = config.replace("10.0.0.10:8080", &format!("127.0.0.10:{port}")).replace("10.0.0.", "127.0.0.");
    config = format!("pid {}/nginx.pid;\nerror_log stderr;\n{config}", dir.path().display());
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    let out = Command::new("nginx").args(["-t", "-p"]).arg(dir.path()).arg("-c").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_seccomp_script_adds_exactly_io_urings_three_calls() {
    if !have("jq", "jq") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("default.json");
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    });
    std::fs::write(&default, profile.to_string()).unwrap();
    let out = Command::new(deploy("seccomp.sh")).arg(&default).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the profile parses");
    assert_eq!(written["defaultAction"], profile["defaultAction"], "the rest unchanged");
    assert_eq!(written["archMap"], profile["archMap"]);
    let rules = written["syscalls"].as_array().unwrap();
    assert_eq!(rules[0], profile["syscalls"][0]);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["action"], "SCMP_ACT_ALLOW");
    assert_eq!(rules[1]["names"], serde_json::json!(["io_uring_setup", "io_uring_enter", "io_uring_register"]));
    let bad = Command::new(deploy("seccomp.sh")).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "no file: usage");
}

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let unit = std::fs::read_to_string(deploy("percore.service")).unwrap();
    for line in ["Type=notify", "ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/percore"] {
        assert!(unit.contains(line), "percore.service lacks {line}");
    }
    assert!(unit.contains("io_uring_setup io_uring_enter io_uring_register"), "io_uring allowed");
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("*** SKIPPED: systemd-analyze is not installed; the unit's sandboxing lines were checked only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("percore.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/percore", env!("CARGO_BIN_EXE_percore"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_container_image_builds_and_answers_health_where_an_engine_runs() {
    let engine = ["docker", "podman"].into_iter().find(|e| {
        Command::new(e).arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    });
    let Some(engine) = engine else {
        eprintln!("*** SKIPPED: no container engine runs here (docker info and podman info fail)");
        return;
    };
    if let Err(why) = runs_a_container(engine) {
        eprintln!("*** SKIPPED: {engine} is installed but cannot run a container here: {why}");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let built = Command::new(engine)
        .args(["build", "-t", "percore-test", "-f", "deploy/Dockerfile", "."])
        .current_dir(root)
        .status();
    assert!(built.unwrap().success(), "the image builds");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = Command::new(engine)
        .args(["run", "-d", "--rm", "-p", &format!("127.0.0.1:{port}:8080"), "-e", "PERCORE_WRITE_TOKEN=t"])
        .args(["--security-opt", "seccomp=unconfined", "percore-test"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let id = String::from_utf8_lossy(&run.stdout).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut healthy = false;
    while Instant::now() < deadline && !healthy {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
            healthy = crate::util::read_response(&mut s, false).is_some_and(|r| r.status == 200);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new(engine).args(["rm", "-f", &id]).status();
    assert!(healthy, "the container answered /health");
}

/// Whether `engine` can run a container at all: an image of nothing but
/// percore's binary and the libraries it loads (made here, no registry
/// needed) runs `percore --version`. An engine can answer `info` and still
/// fail here (a host with hybrid cgroups, limits it may not set).
fn runs_a_container(engine: &str) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_percore"));
    let mut files = vec![binary.to_path_buf()];
    let ldd = Command::new("ldd").arg(binary).output().map_err(|e| format!("ldd: {e}"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, or the loader's own line.
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(path));
        }
    }
    for file in &files {
        let inside = root.path().join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(file, &inside).map_err(|e| format!("copying {}: {e}", file.display()))?;
    }
    let tar = root.path().with_extension("tar");
    let packed = Command::new("tar").arg("-C").arg(root.path()).arg("-cf").arg(&tar).arg(".").status();
    if !packed.is_ok_and(|s| s.success()) {
        return Err("tar failed".into());
    }
    let image = "percore-probe:latest";
    let imported = Command::new(engine).arg("import").arg(&tar).arg(image).output();
    let _ = std::fs::remove_file(&tar);
    let imported = imported.map_err(|e| e.to_string())?;
    if !imported.status.success() {
        return Err(format!("import: {}", String::from_utf8_lossy(&imported.stderr).trim()));
    }
    let binary_inside = format!("/{}", binary.strip_prefix("/").unwrap().display());
    let ran =
        Command::new(engine).args(["run", "--rm", "--network", "none", image, &binary_inside, "--version"]).output();
    let _ = Command::new(engine).args(["rmi", "-f", image]).output();
    let ran = ran.map_err(|e| e.to_string())?;
    if !ran.status.success() {
        return Err(String::from_utf8_lossy(&ran.stderr).trim().to_string());
    }
    Ok(())
}
