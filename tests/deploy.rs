//! The deployment files under deploy/ as an operator uses them: the nginx
//! alternative parses, the seccomp script adds exactly io_uring's three
//! calls to a profile, and the systemd unit verifies with its sandboxing.
//! The container image is run in container.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("moby/moby/v") && said.contains("profiles/seccomp/default.json"), "where to get it: {said}");
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
