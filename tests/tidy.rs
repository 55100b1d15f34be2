//! Tidy: mechanical rules of the code base, checked on every test run.
//!
//! - every `.rs` file starts with a `//!` comment saying what lives there;
//! - no ignored test and no todo macro remains;
//! - no source file passes 1,000 lines;
//! - `io` depends on neither `cores` nor the daemon, `cores` not on the
//!   daemon (not even as dev-dependencies), as `cargo metadata` reports
//!   them: `src → cores → io`, never back;
//! - the daemon (`src/`) has no `unsafe` (it reaches the OS through `io`
//!   and well-kept crates), no file over 500 lines, and no circle of files
//!   that import each other.

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

/// The daemon's own files (`src/`), by path relative to `src/`.
fn daemon_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root().join("src")).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn the_daemon_has_no_unsafe_code() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"), "src/lib.rs must forbid unsafe code");
    let word = format!("{}{}", "uns", "afe");
    for (path, text) in daemon_sources() {
        for line in code_lines(&text) {
            for pattern in [format!("{word} {{"), format!("{word} fn"), format!("{word} impl")] {
                assert!(!line.contains(&pattern), "src/{path}: `{pattern}` (unsafe belongs in io/): {line}");
            }
        }
    }
}

#[test]
fn daemon_files_are_small() {
    for (path, text) in daemon_sources() {
        let lines = text.lines().count();
        assert!(lines <= 500, "src/{path} has {lines} lines (limit 500): split it by job");
    }
}

/// The lines of `text` that are code: comments dropped, and the unit-test
/// module at the end (`#[cfg(test)] mod tests`) cut off.
fn code_lines(text: &str) -> Vec<&str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|line| comment_start(line).map_or(line, |at| &line[..at]))
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// Where a `//` comment starts on `line`, outside string literals (a URL
/// in a string is not a comment).
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            // A character literal of a quote: not a string's start.
            b'\'' if !in_string && bytes.get(i + 1) == Some(&b'"') && bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The module path (`["http", "conn"]`) of a file under `src/`.
fn module_of(file: &str) -> Vec<String> {
    let file = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = file.split('/').map(String::from).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else { return vec![tree.to_string()] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("a use tree's braces close")];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(expand_use)
        .map(|item| if item == "self" { prefix.trim_end_matches("::").to_string() } else { format!("{prefix}{item}") })
        .collect()
}

/// The files `text` (the file `file`) names through `crate::`/`super::`
/// paths, in `use` declarations or inline.
fn imports(file: &str, text: &str, files: &std::collections::BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let here = module_of(file);
    // A file's own module scope: `super` in `a/b.rs` (module a::b) is `a`;
    // in `a/mod.rs` (module a) it is the crate root.
    let code = code_lines(text).join("\n");
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        // A declaration starts its line (after any visibility); `use ` in
        // a string or an expression is none.
        let line_start = rest[..at].rfind('\n').map_or(0, |n| n + 1);
        if matches!(rest[line_start..at].trim(), "" | "pub" | "pub(crate)" | "pub(super)") {
            paths.extend(expand_use(&rest[at + 4..end]));
        }
        rest = &rest[end.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    // Inline paths: `crate::a::b(...)`, `super::c::D`.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            let before = code[..at].chars().last();
            let len =
                code[at..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(code.len() - at);
            if before.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != ':') {
                paths.push(code[at..at + len].to_string());
            }
            from = at + len.max(1);
        }
    }
    let mut found = Vec::new();
    for path in paths {
        let path = path.split_whitespace().next().unwrap_or("").to_string();
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut module: Vec<String> = match segments.first() {
            Some(&"crate") => {
                segments.remove(0);
                Vec::new()
            }
            Some(&"super") => {
                let mut base = here.clone();
                while segments.first() == Some(&"super") {
                    segments.remove(0);
                    base.pop();
                }
                base
            }
            _ => continue,
        };
        // The deepest module the path names that is a file.
        let mut target = if files.contains(&module) { Some(module.clone()) } else { None };
        for segment in segments {
            module.push(segment.to_string());
            if files.contains(&module) {
                target = Some(module.clone());
            } else {
                break;
            }
        }
        if let Some(target) = target.filter(|t| *t != here && !t.is_empty()) {
            // A child naming its own ancestor module file by `super::` is
            // an import like any other.
            found.push(target);
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn daemon_files_import_in_one_direction() {
    use std::collections::{BTreeMap, BTreeSet};
    let sources = daemon_sources();
    let files: BTreeSet<Vec<String>> = sources.iter().map(|(f, _)| module_of(f)).collect();
    let graph: BTreeMap<Vec<String>, Vec<Vec<String>>> =
        sources.iter().map(|(f, text)| (module_of(f), imports(f, text, &files))).collect();
    // The check can see: conn uses the shard module.
    assert!(
        graph[&vec!["http".to_string(), "conn".to_string()]].contains(&vec!["shard".to_string()]),
        "the import scan is broken: {graph:?}"
    );
    // A circle is a path from a file back to itself.
    let mut circles = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.join("::")])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in &graph[&node] {
                if next == start {
                    circles.push(format!("{} -> {}", trail.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut longer = trail.clone();
                    longer.push(next.join("::"));
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(circles.is_empty(), "files that import each other in a circle:\n{}", circles.join("\n"));
    // The store sits below HTTP: nothing it reaches, directly or not, is in
    // `http/`.
    let mut seen: BTreeSet<Vec<String>> =
        graph.keys().filter(|m| m.first().is_some_and(|f| f == "store")).cloned().collect();
    let mut todo: Vec<Vec<String>> = seen.iter().cloned().collect();
    while let Some(node) = todo.pop() {
        for next in &graph[&node] {
            assert!(
                next.first().is_none_or(|f| f != "http"),
                "the store reaches http: {} -> {}",
                node.join("::"),
                next.join("::")
            );
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
}
