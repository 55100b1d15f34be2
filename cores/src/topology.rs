//! Topology: which CPUs the shards run on.
//!
//! The usable CPUs are the process's affinity mask (`sched_getaffinity`), so
//! `taskset`, cgroup cpusets and systemd's `CPUAffinity=` are respected. A
//! [`CoreSet`] narrows them: all of them, the first N, or an explicit list
//! (`0,2-5`). A list naming a CPU outside the mask is an error; a count
//! larger than the mask runs the extra shards unpinned (with a warning), so
//! tests can run more shards than the machine has cores.

use std::fmt;
use std::str::FromStr;

/// Which CPUs to run shards on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CoreSet {
    /// Every CPU in the affinity mask.
    #[default]
    All,
    /// This many shards, on the first CPUs of the mask.
    Count(usize),
    /// Exactly these CPUs.
    List(Vec<usize>),
}

/// An error choosing CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// The `--cores` text does not parse.
    Parse(String),
    /// A listed CPU is not in the process's affinity mask.
    NotAllowed {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// No CPU at all (empty list, count 0, or an empty mask).
    Empty,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::Parse(msg) => write!(f, "invalid core list: {msg}"),
            TopologyError::NotAllowed { cpu, allowed } => write!(
                f,
                "CPU {cpu} is not in this process's affinity mask (allowed: {}); \
                 check taskset, the cgroup cpuset or systemd's CPUAffinity",
                format_list(allowed)
            ),
            TopologyError::Empty => write!(f, "no CPU to run on (the core list or affinity mask is empty)"),
        }
    }
}

impl std::error::Error for TopologyError {}

/// Formats CPUs as ranges: `0-3,6`.
pub fn format_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

impl FromStr for CoreSet {
    type Err = TopologyError;

    /// `all`, a count (`4`), or a list of CPUs and ranges (`0,2-5`). A single
    /// number is a count; write `3-3` or `3,` for "CPU 3 only".
    fn from_str(text: &str) -> Result<CoreSet, TopologyError> {
        let text = text.trim();
        if text.is_empty() || text == "all" {
            return Ok(CoreSet::All);
        }
        if let Ok(count) = text.parse::<usize>() {
            return if count == 0 { Err(TopologyError::Empty) } else { Ok(CoreSet::Count(count)) };
        }
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parse =
                |s: &str| s.trim().parse::<usize>().map_err(|_| TopologyError::Parse(format!("`{s}` in `{text}`")));
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (parse(a)?, parse(b)?);
                    if a > b {
                        return Err(TopologyError::Parse(format!("range `{part}` runs backwards")));
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(parse(part)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return Err(TopologyError::Empty);
        }
        Ok(CoreSet::List(cpus))
    }
}

/// Where each shard runs: `Some(cpu)` pinned, `None` unpinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// One entry per shard, in shard order.
    pub cpus: Vec<Option<usize>>,
}

impl Placement {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.cpus.len()
    }
}

/// The CPUs in this process's affinity mask, ascending.
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    cpus.sort_unstable();
    cpus
}

impl CoreSet {
    /// Chooses CPUs for the shards out of `allowed`.
    ///
    /// # Errors
    /// A listed CPU outside `allowed`, or nothing to run on.
    pub fn place(&self, allowed: &[usize]) -> Result<Placement, TopologyError> {
        if allowed.is_empty() {
            return Err(TopologyError::Empty);
        }
        let cpus = match self {
            CoreSet::All => allowed.iter().copied().map(Some).collect(),
            CoreSet::Count(n) => (0..*n).map(|i| allowed.get(i).copied()).collect(),
            CoreSet::List(list) => {
                if let Some(&cpu) = list.iter().find(|c| !allowed.contains(c)) {
                    return Err(TopologyError::NotAllowed { cpu, allowed: allowed.to_vec() });
                }
                list.iter().copied().map(Some).collect()
            }
        };
        Ok(Placement { cpus })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_lists_and_ranges() {
        assert_eq!("all".parse(), Ok(CoreSet::All));
        assert_eq!("4".parse(), Ok(CoreSet::Count(4)));
        assert_eq!("0,2-5".parse(), Ok(CoreSet::List(vec![0, 2, 3, 4, 5])));
        assert_eq!("3,".parse(), Ok(CoreSet::List(vec![3])));
        assert_eq!("5-5, 1".parse(), Ok(CoreSet::List(vec![1, 5])));
        assert!(matches!("x".parse::<CoreSet>(), Err(TopologyError::Parse(_))));
        assert!(matches!("5-2".parse::<CoreSet>(), Err(TopologyError::Parse(_))));
        assert_eq!("0".parse::<CoreSet>(), Err(TopologyError::Empty));
    }

    #[test]
    fn places_within_the_mask() {
        let allowed = [0, 1, 4, 5];
        assert_eq!(CoreSet::All.place(&allowed).unwrap().cpus, vec![Some(0), Some(1), Some(4), Some(5)]);
        assert_eq!(CoreSet::Count(2).place(&allowed).unwrap().cpus, vec![Some(0), Some(1)]);
        // More shards than CPUs: the extra ones run unpinned.
        assert_eq!(CoreSet::Count(6).place(&allowed).unwrap().cpus.iter().filter(|c| c.is_none()).count(), 2);
        assert_eq!(CoreSet::List(vec![4, 5]).place(&allowed).unwrap().cpus, vec![Some(4), Some(5)]);
        let err = CoreSet::List(vec![0, 2]).place(&allowed).unwrap_err();
        assert_eq!(err, TopologyError::NotAllowed { cpu: 2, allowed: allowed.to_vec() });
        assert!(err.to_string().contains("0-1,4-5"), "{err}");
    }

    #[test]
    fn this_process_has_cpus() {
        assert!(!allowed_cpus().is_empty());
    }
}
