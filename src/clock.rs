//! Clocks std does not offer: a thread's CPU time, and the coarse wall
//! clock (the kernel's last tick, no hardware read) that the `Date` header
//! needs. Through nix (libc's vDSO calls).

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// CPU time (user and system) of the calling thread.
pub(crate) fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, |ts| Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec() as u32))
}

/// Seconds since the epoch by the coarse clock (at most a few ms behind).
pub(crate) fn coarse_epoch_seconds() -> u64 {
    clock_gettime(ClockId::CLOCK_REALTIME_COARSE).map_or(0, |now| now.tv_sec().max(0) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks_move() {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(super::coarse_epoch_seconds().abs_diff(wall) <= 1);
        let before = super::thread_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(super::thread_cpu() > before);
    }
}
