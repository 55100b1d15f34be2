//! The container image as an operator runs it with Docker: deploy/Dockerfile's
//! runtime stage built, run as its unprivileged user under the seccomp
//! profile deploy/seccomp.sh writes, healthy by its own HEALTHCHECK, its
//! objects kept in the /data volume from one container to the next, and
//! stopped cleanly by `docker stop`.
//!
//! No image registry is reachable from CI, so the base images are made
//! here: Debian bookworm by `debootstrap` from Debian's mirror stands in for
//! `debian:bookworm-slim`, and the same with gcc and this machine's Rust
//! toolchain and crates for `rust:1-bookworm`. The image is built twice:
//! once with the binary under test in place of the build stage (quick, for
//! the runtime checks), once from the repository root exactly as the README
//! says, `cargo build` in the build stage included, through `.dockerignore`
//! (the context must be the source, not gigabytes of target/). Every other
//! line of the Dockerfile is used as shipped. Docker's default
//! seccomp profile is not a file a machine has, so the test writes one of
//! the same shape (every system call allowed by name except io_uring's,
//! anything else refused with EPERM) and runs percore under it and under
//! what seccomp.sh makes of it.
//!
//! Where Docker cannot run a container here, or debootstrap cannot be had,
//! the test says so loudly and stops (`.ci/run` installs and starts Docker).

use crate::util::{install_from_debian, put_request, read_response, Response};
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The local stand-in for `debian:bookworm-slim` (made, then removed).
const BASE: &str = "percore-test-base:bookworm";
/// Docker runs the first HEALTHCHECK 10 s after the start (its interval).
const HEALTHY_WITHIN: Duration = Duration::from_secs(40);
/// How long a started container may take to answer /health.
const ANSWERS_WITHIN: Duration = Duration::from_secs(20);
/// The write token the containers run with.
const AUTH: &str = "Authorization: Bearer t\r\n";

#[test]
fn the_image_and_the_systemd_unit_start_sandboxed_and_keep_their_data() {
    // Containers copy the mounts of the moment: none of the power-loss
    // tests' loop mounts may be among them (`util::loop_mounts`).
    let _mounts = crate::util::no_loop_mounts();
    let Some(docker) = Docker::usable() else { return };
    if !docker.has_base() {
        return;
    }
    let profiles = tempfile::tempdir().unwrap();
    let Some((blocking, allowing)) = seccomp_profiles(profiles.path()) else { return };
    the_image_runs_as_a_user_under_the_seccomp_profile_and_keeps_its_volume(&docker, &blocking, &allowing);
    the_systemd_unit_starts_sandboxed_and_stops_cleanly(&docker);
    the_shipped_dockerfile_builds_percore_from_the_source_tree(&docker, &allowing);
}

fn the_image_runs_as_a_user_under_the_seccomp_profile_and_keeps_its_volume(
    docker: &Docker,
    blocking: &str,
    allowing: &str,
) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), runtime_stage_on_local_base()).unwrap();
    let image = docker.build("image", ctx.path());

    // Under a default profile that leaves io_uring out, percore stops and says how to go on.
    let refused = docker.run(&["run", "--rm", "-e", "PERCORE_WRITE_TOKEN=t", "--security-opt", blocking, &image]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "percore cannot run without io_uring");
    assert!(said.contains("io_uring_setup") && said.contains("deploy/seccomp.sh"), "{said}");

    // Without a write token it will not listen on every interface.
    let open = docker.run(&["run", "--rm", "--security-opt", allowing, &image]);
    assert!(!open.status.success(), "no token, no start");
    assert!(String::from_utf8_lossy(&open.stderr).contains("PERCORE_WRITE_TOKEN"));

    let first = docker.start(&image, allowing);
    let user = docker.run(&["exec", &first.id, "id", "-un"]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "percore", "not root");
    assert_eq!(first.put("/files/kept/a.txt", b"in the volume", "").status, 401, "writes need the token");
    assert_eq!(first.put("/files/kept/a.txt", b"in the volume", AUTH).status, 201);
    docker.wait_healthy(&first.id);
    let stopped = docker.run(&["stop", "-t", "10", &first.id]);
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    let code = docker.run(&["inspect", "-f", "{{.State.ExitCode}}", &first.id]);
    assert_eq!(String::from_utf8_lossy(&code.stdout).trim(), "0", "SIGTERM stops percore cleanly");

    let second = docker.start(&image, allowing);
    let read = second.get("/files/kept/a.txt");
    assert_eq!((read.status, read.body.as_slice()), (200, &b"in the volume"[..]), "the object outlived its container");
}

/// deploy/percore.service as shipped, started by systemd as PID 1 of a
/// container. The container may mount (systemd builds the unit's sandbox
/// from mount namespaces) and has no seccomp filter of Docker's, so the
/// filter that percore runs under is the unit's own `SystemCallFilter`.
fn the_systemd_unit_starts_sandboxed_and_stops_cleanly(docker: &Docker) {
    let ctx = tempfile::tempdir().unwrap();
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/percore.service");
    std::fs::copy(unit, ctx.path().join("percore.service")).unwrap();
    let dockerfile = format!(
        "FROM {BASE}\n\
         RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd systemd-sysv curl \\\n\
             && rm -rf /var/lib/apt/lists/*\n\
         COPY percore /usr/local/bin/percore\n\
         COPY percore.service /etc/systemd/system/percore.service\n\
         STOPSIGNAL SIGRTMIN+3\n\
         CMD [\"/sbin/init\"]\n"
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let image = docker.build("systemd", ctx.path());
    let args = ["run", "-d", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"];
    let mounts =
        ["--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"];
    let out = docker.run(&[&args[..], &mounts[..], &[&image]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = docker.keep(&out);
    let inside = |command: &[&str]| {
        let out = docker.run(&[&["exec", &id][..], command].concat());
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let deadline = Instant::now() + ANSWERS_WITHIN;
    while !matches!(inside(&["systemctl", "is-system-running"]).1.as_str(), "running" | "degraded") {
        assert!(Instant::now() < deadline, "systemd never finished booting: {:?}", inside(&["systemctl", "--failed"]));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Type=notify: start returns once percore has said it is ready.
    let started = inside(&["systemctl", "start", "percore"]);
    assert!(started.0, "the unit starts: {:?}", inside(&["journalctl", "-u", "percore", "--no-pager"]));
    let put = ["curl", "-sf", "-X", "PUT", "-H", "Authorization: Bearer change-me", "--data-binary", "under systemd"];
    assert!(inside(&[&put[..], &["http://127.0.0.1:8080/files/unit.txt"]].concat()).0, "a PUT with the unit's token");
    assert_eq!(inside(&["cat", "/var/lib/private/percore/unit.txt"]).1, "under systemd", "in its StateDirectory");
    let pid = inside(&["systemctl", "show", "-p", "MainPID", "--value", "percore"]).1;
    let status = inside(&["cat", &format!("/proc/{pid}/status")]).1;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("").to_string();
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "the unit's system call filter holds: {status}");
    assert!(!field("Uid:").starts_with('0'), "a dynamic user, not root: {status}");
    assert_eq!(field("CapEff:"), "0000000000000400", "CAP_NET_BIND_SERVICE alone: {status}");
    let writes_elsewhere = inside(&["nsenter", "-t", &pid, "-m", "touch", "/usr/local/bin/x"]);
    assert!(!writes_elsewhere.0, "ProtectSystem=strict: /usr is read-only in the unit's namespace");
    assert!(inside(&["systemctl", "stop", "percore"]).0);
    assert_eq!(inside(&["systemctl", "show", "-p", "Result", "--value", "percore"]).1, "success", "a clean stop");
}

/// deploy/Dockerfile as shipped, its build stage included, built from the
/// repository root as the README says (`docker build -f deploy/Dockerfile
/// .`): only its two base images are local stand-ins. The build context
/// holds the source, not target/ or data/ (`.dockerignore`), and the
/// stage's `cargo build --release --locked` compiles percore from it.
fn the_shipped_dockerfile_builds_percore_from_the_source_tree(docker: &Docker, allowing: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).expect("a .dockerignore at the context's root");
    let gitignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    for path in gitignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        assert!(ignored.lines().any(|l| l.trim() == path), "{path} is in .gitignore, not in .dockerignore");
    }
    let Some(rust) = docker.rust_stand_in() else { return };
    let shipped = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    let build = shipped.replacen("FROM rust:1-bookworm AS build\n", &format!("FROM {rust} AS build\n"), 1);
    let local = build.replacen("FROM debian:bookworm-slim\n", &format!("FROM {BASE}\n"), 1);
    assert_eq!(local.matches("\nFROM percore-test-").count(), 2, "the Dockerfile's two bases changed: {shipped}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), local).unwrap();
    let (image, said) = docker.build_with("built", &dir.path().join("Dockerfile"), root);
    let sent = context_bytes(&said).expect("the builder names the size of the context it was sent");
    assert!(
        sent < CONTEXT_AT_MOST,
        "{sent} bytes of build context: is target/ in it? {}",
        said.lines().next().unwrap()
    );

    let version = docker.run(&["run", "--rm", "--security-opt", allowing, &image, "--version"]);
    let here = Command::new(env!("CARGO_BIN_EXE_percore")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), String::from_utf8_lossy(&here.stdout), "the tree's percore");
    let node = docker.start(&image, allowing);
    assert_eq!(node.put("/files/built.txt", b"from source", AUTH).status, 201);
    let read = node.get("/files/built.txt");
    assert_eq!((read.status, read.body.as_slice()), (200, &b"from source"[..]));
}

/// The most build context the shipped Dockerfile's build may be sent: the
/// tracked tree is under 2 MB; one debug target/ is gigabytes.
const CONTEXT_AT_MOST: f64 = 32e6;

/// The size in `Sending build context to Docker daemon  1.79MB` (the
/// classic builder's first line; decimal units).
fn context_bytes(said: &str) -> Option<f64> {
    let size = said.lines().find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))?.trim();
    let split = size.find(|c: char| c.is_ascii_alphabetic())?;
    let scale = match &size[split..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some(size[..split].parse::<f64>().ok()? * scale)
}

/// deploy/Dockerfile with its build stage replaced by the binary under
/// test and its runtime stage's base by the local Debian image.
fn runtime_stage_on_local_base() -> String {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile")).unwrap();
    let (build, runtime) = shipped.split_once("\nFROM debian:bookworm-slim\n").expect("a debian:bookworm-slim stage");
    assert!(build.contains("FROM rust:1-bookworm AS build") && build.contains("cargo build --release"), "{build}");
    let binary = "/src/target/release/percore";
    assert!(runtime.contains(&format!("COPY --from=build {binary} ")), "{runtime}");
    // The label lets the test remove the build stage's image, which the
    // builder keeps.
    let me = std::process::id();
    format!("FROM scratch AS build\nLABEL percore.test={me}\nCOPY percore {binary}\n\nFROM {BASE}\n{runtime}")
}

/// `--security-opt` values: a default-shaped profile without io_uring, and
/// what deploy/seccomp.sh writes from it.
fn seccomp_profiles(dir: &Path) -> Option<(String, String)> {
    let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
    if !Path::new(header).exists() {
        install_from_debian("linux-libc-dev");
    }
    let table = std::fs::read_to_string(header).expect("the kernel's system call table (linux-libc-dev)");
    let names: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("#define __NR_")?.split_whitespace().next())
        .filter(|name| !name.starts_with("io_uring_"))
        .collect();
    assert!(names.len() > 300 && names.contains(&"epoll_wait"), "{} system calls read from {header}", names.len());
    let default = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    });
    let blocking = dir.join("default.json");
    std::fs::write(&blocking, default.to_string()).unwrap();
    if Command::new("jq").arg("--version").output().is_err() {
        install_from_debian("jq");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/seccomp.sh");
    let written = Command::new(script).arg(&blocking).output().unwrap();
    if !written.status.success() {
        eprintln!("*** SKIPPED: deploy/seccomp.sh failed: {}", String::from_utf8_lossy(&written.stderr));
        return None;
    }
    let allowing = dir.join("percore-seccomp.json");
    std::fs::write(&allowing, written.stdout).unwrap();
    let opt = |p: PathBuf| format!("seccomp={}", p.display());
    Some((opt(blocking), opt(allowing)))
}

/// The Docker engine, and what this test made in it (removed on drop).
struct Docker {
    volume: String,
    images: RefCell<Vec<String>>,
    containers: RefCell<Vec<String>>,
}

struct Container {
    id: String,
    port: u16,
}

impl Docker {
    /// Docker, if it answers and can run a container on this machine.
    fn usable() -> Option<Docker> {
        let info = Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !info.is_ok_and(|s| s.success()) {
            eprintln!("*** SKIPPED: Docker does not run here (`docker info` fails; .ci/run installs and starts it)");
            return None;
        }
        if let Err(why) = runs_a_container() {
            eprintln!("*** SKIPPED: Docker is installed but cannot run a container here: {why}");
            return None;
        }
        Some(Docker {
            volume: format!("percore-test-data-{}", std::process::id()),
            images: RefCell::new(Vec::new()),
            containers: RefCell::new(Vec::new()),
        })
    }

    /// Builds `ctx` (its Dockerfile, and the binary under test put beside
    /// it as `percore`) as this test's image `name`; returns its tag.
    fn build(&self, name: &str, ctx: &Path) -> String {
        std::fs::copy(env!("CARGO_BIN_EXE_percore"), ctx.join("percore")).unwrap();
        self.build_with(name, &ctx.join("Dockerfile"), ctx).0
    }

    /// Builds `dockerfile` on the context `ctx` as this test's image
    /// `name`, with Docker's classic builder (the one Debian's docker.io
    /// has; it keeps each stage's image, which `drop` removes by label).
    /// Its tag, and what the build printed.
    fn build_with(&self, name: &str, dockerfile: &Path, ctx: &Path) -> (String, String) {
        let tag = format!("percore-test-{name}-{}", std::process::id());
        self.images.borrow_mut().push(tag.clone());
        let mut build = Command::new("docker");
        build.env("DOCKER_BUILDKIT", "0").arg("build").arg("-f").arg(dockerfile).args(["-t", &tag]).arg(ctx);
        let built = build.output().expect("docker runs");
        let said = String::from_utf8_lossy(&built.stdout).into_owned();
        if !built.status.success() {
            let tail: Vec<&str> = said.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("the {name} image builds:\n{}\n{}", tail.join("\n"), String::from_utf8_lossy(&built.stderr));
        }
        (tag, said)
    }

    /// A stand-in for `rust:1-bookworm`, which no registry here serves: the
    /// local Debian base with gcc, and this machine's own Rust toolchain
    /// and crate registry copied in, cargo kept offline. None (said loudly)
    /// where the crates cannot be fetched first.
    fn rust_stand_in(&self) -> Option<String> {
        let cargo = Path::new(env!("CARGO"));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let fetched = Command::new(cargo).args(["fetch", "--locked"]).current_dir(root).output().unwrap();
        if !fetched.status.success() {
            eprintln!(
                "*** SKIPPED: the image's build: `cargo fetch` failed: {}",
                String::from_utf8_lossy(&fetched.stderr)
            );
            return None;
        }
        let sysroot = cargo.parent().and_then(Path::parent).expect("cargo in <sysroot>/bin");
        // A rustup toolchain is a directory of its own; a distribution's
        // rustc lives in /usr, whose lib/ is not the toolchain's alone.
        if sysroot.starts_with("/usr") || !sysroot.join("lib/rustlib").is_dir() {
            eprintln!(
                "*** SKIPPED: the image's build: {} is not a self-contained (rustup) toolchain to copy in",
                sysroot.display()
            );
            return None;
        }
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
        let ctx = tempfile::tempdir().unwrap();
        let rust = ctx.path().join("rust");
        std::fs::create_dir_all(rust.join("bin")).unwrap();
        std::fs::create_dir_all(ctx.path().join("registry")).unwrap();
        for (from, to) in [
            (sysroot.join("bin/cargo"), rust.join("bin/cargo")),
            (sysroot.join("bin/rustc"), rust.join("bin/rustc")),
            (sysroot.join("lib"), rust.join("lib")),
            (home.join("registry/index"), ctx.path().join("registry/index")),
            (home.join("registry/cache"), ctx.path().join("registry/cache")),
        ] {
            link_or_copy(&from, &to);
        }
        let me = std::process::id();
        let dockerfile = format!(
            "FROM {BASE}\n\
             LABEL percore.test={me}\n\
             RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev \\\n\
                 && rm -rf /var/lib/apt/lists/*\n\
             COPY rust /usr/local/rust\n\
             COPY registry /usr/local/cargo/registry\n\
             ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\\n\
                 CARGO_HOME=/usr/local/cargo CARGO_NET_OFFLINE=true\n"
        );
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        Some(self.build_with("rust", &ctx.path().join("Dockerfile"), ctx.path()).0)
    }

    /// Notes the container `docker run -d` printed, for removal; its id.
    fn keep(&self, started: &Output) -> String {
        let id = String::from_utf8_lossy(&started.stdout).trim().to_string();
        self.containers.borrow_mut().push(id.clone());
        id
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("docker").args(args).output().expect("docker runs")
    }

    /// The local Debian base image, made with debootstrap if missing.
    fn has_base(&self) -> bool {
        if self.run(&["image", "inspect", BASE]).status.success() {
            return true;
        }
        if Command::new("debootstrap").arg("--version").output().is_err() {
            install_from_debian("debootstrap");
        }
        let root = tempfile::tempdir().unwrap();
        let made = Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(root.path())
            .arg("http://deb.debian.org/debian")
            .output();
        match made {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let tail: String = String::from_utf8_lossy(&out.stderr).chars().rev().take(400).collect();
                eprintln!("*** SKIPPED: debootstrap failed: {}", tail.chars().rev().collect::<String>());
                return false;
            }
            Err(e) => {
                eprintln!("*** SKIPPED: debootstrap is not installed and cannot be ({e})");
                return false;
            }
        }
        let import = format!("tar -C '{}' -c . | docker import - {BASE}", root.path().display());
        let imported = Command::new("sh").args(["-c", &import]).output().unwrap();
        assert!(imported.status.success(), "import: {}", String::from_utf8_lossy(&imported.stderr));
        true
    }

    /// Starts the image detached with the volume, the token and `seccomp`,
    /// and waits until it answers /health.
    fn start(&self, image: &str, seccomp: &str) -> Container {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let publish = format!("127.0.0.1:{port}:8080");
        let data = format!("{}:/data", self.volume);
        let args = ["run", "-d", "-p", &publish, "-v", &data, "-e", "PERCORE_WRITE_TOKEN=t"];
        let out = self.run(&[&args[..], &["--security-opt", seccomp, image]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let container = Container { id: self.keep(&out), port };
        let deadline = Instant::now() + ANSWERS_WITHIN;
        while container.ask(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").is_none_or(|r| r.status != 200) {
            if Instant::now() > deadline {
                let logs = self.run(&["logs", &container.id]);
                panic!("the container never answered /health: {}", String::from_utf8_lossy(&logs.stderr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        container
    }

    /// Waits for Docker's own HEALTHCHECK (curl inside the container) to pass.
    fn wait_healthy(&self, id: &str) {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            let out = self.run(&["inspect", "-f", "{{.State.Health.Status}}", id]);
            let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if status == "healthy" {
                return;
            }
            assert!(Instant::now() < deadline, "Docker's health check says {status:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for id in self.containers.borrow().iter() {
            let _ = self.run(&["rm", "-f", id]);
        }
        let _ = self.run(&["volume", "rm", "-f", &self.volume]);
        for image in self.images.borrow().iter() {
            let _ = self.run(&["rmi", "-f", image]);
        }
        let _ = self.run(&["rmi", "-f", BASE]);
        let stage = format!("label=percore.test={}", std::process::id());
        let _ = self.run(&["image", "prune", "-f", "--filter", &stage]);
    }
}

impl Container {
    /// One request on a new connection; None if the container does not answer.
    fn ask(&self, raw: &[u8]) -> Option<Response> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).ok()?;
        read_response(&mut s, false)
    }

    fn get(&self, path: &str) -> Response {
        self.ask(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).expect("an answer")
    }

    fn put(&self, path: &str, body: &[u8], extra: &str) -> Response {
        self.ask(&put_request(path, body, extra)).expect("an answer")
    }
}

/// Whether Docker can run a container at all: an image of nothing but
/// percore's binary and the libraries it loads (made here, no registry
/// needed) runs `percore --version`. An engine can answer `info` and still
/// fail here (podman on a host where it may not set resource limits).
fn runs_a_container() -> Result<(), String> {
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
    let image = format!("percore-probe-{}", std::process::id());
    let import = format!("tar -C '{}' -c . | docker import - {image}", root.path().display());
    let imported = Command::new("sh").args(["-c", &import]).output().map_err(|e| e.to_string())?;
    if !imported.status.success() {
        return Err(format!("import: {}", String::from_utf8_lossy(&imported.stderr).trim()));
    }
    let inside = binary.display().to_string();
    let ran = Command::new("docker").args(["run", "--rm", "--network", "none", &image, &inside, "--version"]).output();
    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    let ran = ran.map_err(|e| e.to_string())?;
    if !ran.status.success() {
        return Err(String::from_utf8_lossy(&ran.stderr).trim().to_string());
    }
    Ok(())
}

/// `from` at `to`: hard links where both are on one file system (the
/// toolchain is over 500 MB), a copy otherwise.
fn link_or_copy(from: &Path, to: &Path) {
    let linked = Command::new("cp").arg("-al").arg(from).arg(to).output().unwrap();
    if !linked.status.success() {
        let _ = std::fs::remove_dir_all(to);
        let _ = std::fs::remove_file(to);
        let copied = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
        assert!(copied.status.success(), "copying {}: {}", from.display(), String::from_utf8_lossy(&copied.stderr));
    }
}
