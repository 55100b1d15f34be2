//! Repeated warnings, rate-limited: the first of a kind is logged, the
//! same again within [`WINDOW`] only counted, and the count goes out with
//! the next one logged ("… (1,370 more in the last 10 s)"). One per shard
//! and kind of warning (a shard-local value, no locks).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// At most one line per kind of warning per this long.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// One kind of warning's rate limit.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// When a line was last logged.
    logged: Cell<Option<Instant>>,
    /// Warnings counted and not logged since.
    held: Cell<u64>,
}

impl Throttle {
    /// Whether a warning at `now` is logged; `Some(n)`: log it, saying `n`
    /// more were held back since the last line; `None`: count it only.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        match self.logged.get() {
            Some(at) if now.saturating_duration_since(at) < WINDOW => {
                self.held.set(self.held.get() + 1);
                None
            }
            _ => {
                self.logged.set(Some(now));
                Some(self.held.replace(0))
            }
        }
    }
}

/// The suffix that says how many were held back ("" when none).
pub(crate) fn held_back(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} more in the last {} s)", WINDOW.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_the_count_of_the_rest() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(throttle.admit(t0), Some(0), "the first is logged");
        for i in 1..=1370 {
            assert_eq!(throttle.admit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(throttle.admit(t0 + WINDOW), Some(1370), "the next window's first says how many");
        assert_eq!(held_back(1370), " (1370 more in the last 10 s)");
        assert_eq!(held_back(0), "");
    }
}
