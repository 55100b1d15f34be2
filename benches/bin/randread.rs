//! 4 KiB random reads from a file at a fixed queue depth on one pinned core,
//! with percore-io: `randread <file> <cpu> <queue depth> <direct 0|1> <seconds> [nodefer]`.
//! Prints `iops=N`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use percore_io::{AlignedBuf, File, OpenOptions, Runtime};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("file").clone();
    let cpu: usize = args[2].parse().unwrap();
    let depth: usize = args[3].parse().unwrap();
    let direct = args[4] == "1";
    let seconds = Duration::from_secs_f64(args[5].parse().unwrap());
    percore_benches::pin(cpu);
    let reads = Rc::new(Cell::new(0u64));
    let defer_taskrun = args.get(6).map(String::as_str) != Some("nodefer");
    let ring = percore_io::RingConfig { defer_taskrun, ..Default::default() };
    let task_budget = std::env::var("TASK_BUDGET").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let submit_batch = std::env::var("SUBMIT_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(u32::MAX);
    let builder = Runtime::builder().ring(ring).task_budget(task_budget).submit_batch(submit_batch);
    builder.build().unwrap().block_on(async {
        let mut options = OpenOptions::new();
        options.direct(direct);
        let file = Rc::new(File::open_with(&path, &options).await.expect("open the bench file"));
        let blocks = file.metadata().await.unwrap().size / 4096;
        let stop_at = Instant::now() + seconds;
        let mut handles = Vec::new();
        for worker in 0..depth {
            let (file, reads) = (file.clone(), reads.clone());
            handles.push(percore_io::spawn(async move {
                // xorshift: cheap, and different per worker.
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let mut buf = AlignedBuf::new(4096, 4096);
                while Instant::now() < stop_at {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let offset = (state % blocks) * 4096;
                    let (r, b) = file.read_at(buf, offset).await;
                    assert_eq!(r.expect("read"), 4096);
                    buf = b;
                    reads.set(reads.get() + 1);
                }
            }));
        }
        for h in handles {
            h.await;
        }
    });
    println!("iops={:.0}", reads.get() as f64 / seconds.as_secs_f64());
}
