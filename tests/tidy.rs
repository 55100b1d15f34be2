//! Tidy: mechanical rules of the code base, checked on every test run.
//!
//! - every `.rs` file starts with a `//!` comment saying what lives there;
//! - no ignored test and no todo macro remains;
//! - no source file passes 1,000 lines;
//! - `io` depends on neither `cores` nor the daemon, `cores` not on the
//!   daemon (not even as dev-dependencies), as `cargo metadata` reports
//!   them: `src → cores → io`, never back.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name == "target" || name.starts_with('.') || name == "corpus" || name == "artifacts" {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn all_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["src", "io", "cores", "tests", "benches", "fuzz"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10, "tidy found too few files: {files:?}");
    files
}

#[test]
fn every_file_starts_with_a_module_comment() {
    let missing: Vec<_> = all_sources()
        .into_iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().trim_start().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "files without a leading //! comment: {missing:?}");
}

#[test]
fn no_ignored_tests_or_todos() {
    // Built from pieces so that this file does not match itself.
    let banned = [format!("#[{}", "ignore"), format!("{}!(", "todo")];
    for path in all_sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        for pattern in &banned {
            assert!(!text.contains(pattern.as_str()), "{} contains {pattern}", path.display());
        }
    }
}

#[test]
fn no_file_is_too_long() {
    for path in all_sources() {
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 1000, "{} has {lines} lines (limit 1000): split it", path.display());
    }
}

/// From `cargo metadata`: what each workspace package declares, every kind
/// of dependency (normal, dev, build) included.
#[test]
fn dependencies_point_one_way() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let depends_on = |package: &str| -> Vec<String> {
        let packages = metadata["packages"].as_array().unwrap();
        let found = packages.iter().find(|p| p["name"] == package).unwrap_or_else(|| panic!("no package {package}"));
        found["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect()
    };
    let io = depends_on("percore-io");
    for forbidden in ["percore-cores", "percore"] {
        assert!(!io.iter().any(|d| d == forbidden), "percore-io must not depend on {forbidden}: {io:?}");
    }
    let cores = depends_on("percore-cores");
    assert!(!cores.iter().any(|d| d == "percore"), "percore-cores must not depend on percore: {cores:?}");
    // And the direction that must hold: the daemon on cores, cores on io.
    assert!(depends_on("percore").iter().any(|d| d == "percore-cores"));
    assert!(cores.iter().any(|d| d == "percore-io"));
}
