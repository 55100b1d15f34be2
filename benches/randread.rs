//! Random-read benchmark: 4 KiB random reads from a 1 GiB file at queue
//! depth 1 and 32, buffered (page cache warm) and O_DIRECT, percore-io
//! (default submission, and `submit_batch(1)`: each SQE handed to the kernel
//! at once) against `fio --ioengine=io_uring` with the same parameters, pinned
//! to CPU 0, interleaved rounds, medians. Installs fio (Debian) if missing.
//!
//! `cargo bench -p percore-benches --bench randread [-- ROUNDS SECONDS]`

use std::path::{Path, PathBuf};
use std::process::Command;

use percore_benches::{field, median};

const FILE_BYTES: u64 = 1 << 30;

fn ensure_fio() {
    if Command::new("fio").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return;
    }
    println!("fio not found: installing it from Debian");
    let ok = Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not install fio (needs root and the Debian archive)");
}

fn bench_file() -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("randread-1GiB.bin");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == FILE_BYTES) {
        return path;
    }
    println!("writing {} ...", path.display());
    use std::io::Write;
    let mut file = std::fs::File::create(&path).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..(FILE_BYTES >> 20) {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    path
}

fn warm_page_cache(path: &Path) {
    let _ = std::fs::read(path).map(|data| std::hint::black_box(data.len()));
}

/// Runs percore's reader; `eager` sets `submit_batch(1)` (hand each SQE to
/// the kernel at once) instead of the default once-per-tick submission.
fn percore(path: &Path, depth: usize, direct: bool, seconds: f64, eager: bool) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_randread"))
        .env("SUBMIT_BATCH", if eager { "1" } else { "4294967295" })
        .args([path.to_str().unwrap(), "0", &depth.to_string(), if direct { "1" } else { "0" }, &seconds.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "randread failed: {}", String::from_utf8_lossy(&out.stderr));
    field(&String::from_utf8_lossy(&out.stdout), "iops")
}

fn fio(path: &Path, depth: usize, direct: bool, seconds: f64) -> f64 {
    let out = Command::new("fio")
        .args([
            "--name=randread",
            &format!("--filename={}", path.display()),
            "--rw=randread",
            "--bs=4k",
            &format!("--iodepth={depth}"),
            "--ioengine=io_uring",
            &format!("--direct={}", u8::from(direct)),
            &format!("--runtime={seconds}"),
            "--time_based",
            "--size=1G",
            "--cpus_allowed=0",
            "--norandommap",
            // fio drops the file's page cache before it starts unless told
            // not to; the buffered cases compare warm-cache reads.
            "--invalidate=0",
            "--randrepeat=0",
            "--output-format=json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "fio failed: {}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8_lossy(&out.stdout);
    // jobs[0].read.iops, without a JSON dependency: the first "iops" after "read".
    let read = json.find("\"read\"").expect("fio JSON has a read section");
    let iops = json[read..].find("\"iops\"").expect("read section has iops") + read;
    let value = json[iops..].split(':').nth(1).unwrap().split(',').next().unwrap().trim();
    value.parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    ensure_fio();
    let path = bench_file();
    println!("randread: 4 KiB random reads, 1 GiB file, CPU 0, {rounds} rounds x {seconds} s");
    let cases = [(1, false), (32, false), (1, true), (32, true)];
    let mut ours = vec![Vec::new(); cases.len()];
    let mut eager = vec![Vec::new(); cases.len()];
    let mut theirs = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, &(depth, direct)) in cases.iter().enumerate() {
            if !direct {
                warm_page_cache(&path);
            }
            let a = percore(&path, depth, direct, seconds, false);
            let e = percore(&path, depth, direct, seconds, true);
            if !direct {
                warm_page_cache(&path);
            }
            let b = fio(&path, depth, direct, seconds);
            let mode = if direct { "O_DIRECT" } else { "buffered" };
            println!(
                "  round {round} qd {depth:>2} {mode:<8} percore {a:>9.0}  percore eager {e:>9.0}  fio {b:>9.0} IOPS"
            );
            ours[i].push(a);
            eager[i].push(e);
            theirs[i].push(b);
        }
    }
    println!("\n| mode | queue depth | percore IOPS | percore eager IOPS | fio IOPS | percore ÷ fio | eager ÷ fio |");
    println!("|---|---|---|---|---|---|---|");
    for (i, &(depth, direct)) in cases.iter().enumerate() {
        let (a, e, b) = (median(&mut ours[i]), median(&mut eager[i]), median(&mut theirs[i]));
        let mode = if direct { "O_DIRECT" } else { "buffered" };
        println!("| {mode} | {depth} | {a:.0} | {e:.0} | {b:.0} | {:.3} | {:.3} |", a / b, e / b);
    }
}
