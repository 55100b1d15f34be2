//! The Range header (RFC 9110 §14.2): which bytes of a representation a
//! GET asks for. Pure: no I/O.

/// Ranges are served only while there are at most this many (after merging).
pub(crate) const RANGES_MAX: usize = 16;

/// What a Range header asks of a representation of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranges {
    /// Serve the whole thing (no Range, an invalid one, or too many parts).
    Full,
    /// Inclusive byte ranges, sorted and merged.
    Parts(Vec<(u64, u64)>),
    /// None of the ranges overlaps the representation: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b, c-, -n` against `size`.
pub(crate) fn parse_ranges(header: &str, size: u64) -> Ranges {
    // The unit's name is case-insensitive (RFC 9110, 14.1).
    let header = header.trim();
    let Some(spec) = header.get(..6).filter(|unit| unit.eq_ignore_ascii_case("bytes=")).map(|_| &header[6..]) else {
        return Ranges::Full;
    };
    let mut parts = Vec::new();
    for item in spec.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let Some((first, last)) = item.split_once('-') else { return Ranges::Full };
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
        };
        let range = match (first.trim(), last.trim()) {
            ("", suffix) => match number(suffix) {
                Some(0) => None,
                Some(n) => (size > 0).then(|| (size - n.min(size), size - 1)),
                None => return Ranges::Full,
            },
            (start, "") => match number(start) {
                Some(a) => (a < size).then(|| (a, size - 1)),
                None => return Ranges::Full,
            },
            (start, end) => match (number(start), number(end)) {
                (Some(a), Some(b)) if a <= b => (a < size).then(|| (a, b.min(size - 1))),
                _ => return Ranges::Full,
            },
        };
        parts.extend(range);
        if parts.len() > 4 * RANGES_MAX {
            // Pathological: far too many parts to be worth merging.
            return Ranges::Full;
        }
    }
    if parts.is_empty() {
        return Ranges::Unsatisfiable;
    }
    parts.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
    for (a, b) in parts {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    if merged.len() > RANGES_MAX {
        return Ranges::Full;
    }
    Ranges::Parts(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_clamped_and_merged() {
        assert_eq!(parse_ranges("bytes=0-9", 100), Ranges::Parts(vec![(0, 9)]));
        assert_eq!(parse_ranges("Bytes=0-9", 100), Ranges::Parts(vec![(0, 9)]), "the unit in any case");
        assert_eq!(parse_ranges("items=0-9", 100), Ranges::Full);
        assert_eq!(parse_ranges("byté", 100), Ranges::Full);
        assert_eq!(parse_ranges("bytes=90-200", 100), Ranges::Parts(vec![(90, 99)]));
        assert_eq!(parse_ranges("bytes=-10", 100), Ranges::Parts(vec![(90, 99)]));
        assert_eq!(parse_ranges("bytes=-1000", 100), Ranges::Parts(vec![(0, 99)]));
        assert_eq!(parse_ranges("bytes=50-", 100), Ranges::Parts(vec![(50, 99)]));
        assert_eq!(parse_ranges("bytes=0-1, 5-6", 100), Ranges::Parts(vec![(0, 1), (5, 6)]));
        assert_eq!(parse_ranges("bytes=5-9, 0-5", 100), Ranges::Parts(vec![(0, 9)]), "overlaps merge");
        assert_eq!(parse_ranges("bytes=0-4,5-9", 100), Ranges::Parts(vec![(0, 9)]), "adjacent ranges merge");
        assert_eq!(parse_ranges("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(parse_ranges("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(parse_ranges("bytes=0-0", 0), Ranges::Unsatisfiable);
        for invalid in ["items=0-1", "bytes=a-b", "bytes=5-1", "bytes=1", "bytes=-1-2", "bytes=+1-2"] {
            assert_eq!(parse_ranges(invalid, 100), Ranges::Full, "{invalid}");
        }
        let many: Vec<String> = (0..40).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        assert_eq!(parse_ranges(&format!("bytes={}", many.join(",")), 1000), Ranges::Full, "too many parts");
        let huge: Vec<String> = (0..1000).map(|_| "0-0".to_string()).collect();
        assert_eq!(parse_ranges(&format!("bytes={}", huge.join(",")), 1000), Ranges::Full);
    }
}
