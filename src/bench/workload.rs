//! What the load generator asks for and how it checks the answers: keys,
//! sizes, deterministic contents (so every GET body is verified without
//! keeping a copy), and the request mix.

use std::fmt;

/// The request mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ping,
    Get,
    Put,
    /// Reads with this percentage, writes otherwise.
    Mixed(u8),
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        Ok(match s {
            "ping" => Kind::Ping,
            "get" => Kind::Get,
            "put" => Kind::Put,
            "mixed" => Kind::Mixed(90),
            other => return Err(format!("unknown workload `{other}` (ping, get, put, mixed)")),
        })
    }
}

/// Sizes with weights: `4KiB` or `4KiB:90,1MiB:10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sizes(pub(crate) Vec<(u64, u32)>);

pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("invalid size `{text}`"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    Ok(number * factor)
}

impl std::str::FromStr for Sizes {
    type Err = String;
    fn from_str(s: &str) -> Result<Sizes, String> {
        let mut sizes = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, weight) = match part.split_once(':') {
                Some((size, weight)) => {
                    (size, weight.trim().parse().map_err(|_| format!("invalid weight in `{part}`"))?)
                }
                None => (part, 1),
            };
            sizes.push((parse_bytes(size)?, weight));
        }
        if sizes.is_empty() || sizes.iter().all(|(_, w)| *w == 0) {
            return Err("no sizes".into());
        }
        Ok(Sizes(sizes))
    }
}

impl Sizes {
    /// The size of key `key` (a stable choice by key, weighted).
    pub(crate) fn of(&self, key: u64) -> u64 {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = mix(key) % total;
        for (size, weight) in &self.0 {
            if pick < u64::from(*weight) {
                return *size;
            }
            pick -= u64::from(*weight);
        }
        self.0[0].0
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(s, w)| format!("{s}B:{w}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// A 64-bit mixer (splitmix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The path of key `key`.
pub(crate) fn path(key: u64) -> String {
    format!("/files/bench/{:02x}/key-{key}", key % 64)
}

/// The path of key `key` on an S3 listener (bucket `bench`).
pub(crate) fn s3_path(key: u64) -> String {
    format!("/bench/{:02x}/key-{key}", key % 64)
}

/// Contents are made of blocks of this many bytes: the key's base block,
/// with the block's index stamped over its first 8 bytes (so a misplaced or
/// repeated block is caught too).
const BLOCK: usize = 4096;

/// Byte `at` of a key's base block.
fn byte(seed: u64, at: u64) -> u8 {
    ((seed.wrapping_add(at.wrapping_mul(0x9D)) >> 3) as u8) ^ (at as u8)
}

/// Base blocks already made, by key, up to `BASES_MAX` keys per thread
/// (4 KiB each): checking a body is then a memory compare.
const BASES_MAX: usize = 16_384;

thread_local! {
    static BASES: std::cell::RefCell<std::collections::HashMap<u64, std::rc::Rc<[u8]>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn base(key: u64) -> std::rc::Rc<[u8]> {
    BASES.with(|bases| {
        if let Some(b) = bases.borrow().get(&key) {
            return b.clone();
        }
        let seed = mix(key);
        let made: std::rc::Rc<[u8]> = (0..BLOCK as u64).map(|at| byte(seed, at)).collect();
        let mut bases = bases.borrow_mut();
        if bases.len() < BASES_MAX {
            bases.insert(key, made.clone());
        }
        made
    })
}

/// Block `index`'s first 8 bytes: the base's, xor the index.
fn stamp(base: &[u8], index: usize) -> [u8; 8] {
    let mut head = [0u8; 8];
    let n = base.len().min(8);
    head[..n].copy_from_slice(&base[..n]);
    let x = u64::from_le_bytes(head) ^ index as u64;
    x.to_le_bytes()
}

/// The contents of key `key`: the same bytes every time it is written, so
/// a read can be checked exactly whatever writes raced it (each PUT is an
/// atomic replace with identical bytes).
pub(crate) fn contents(key: u64, size: u64) -> Vec<u8> {
    let base = base(key);
    let mut out = Vec::with_capacity(size as usize);
    let mut index = 0;
    while out.len() < size as usize {
        let take = (size as usize - out.len()).min(BLOCK);
        let start = out.len();
        out.extend_from_slice(&base[..take]);
        let head = stamp(&base, index);
        let n = take.min(8);
        out[start..start + n].copy_from_slice(&head[..n]);
        index += 1;
    }
    out
}

/// Whether `body` is key `key`'s contents of length `size`.
#[cfg(test)]
fn check(key: u64, size: u64, body: &[u8]) -> bool {
    body.len() as u64 == size && check_at(key, 0, body)
}

/// Whether `body` is the part of key `key`'s contents that starts at byte
/// `start` (as a range request returns it).
pub(crate) fn check_at(key: u64, start: u64, body: &[u8]) -> bool {
    let base = base(key);
    let mut pos = start as usize;
    let mut rest = body;
    while !rest.is_empty() {
        let (index, offset) = (pos / BLOCK, pos % BLOCK);
        let (piece, tail) = rest.split_at((BLOCK - offset).min(rest.len()));
        // Bytes offset..offset + len of block `index`: its stamp up to byte
        // 8, the base after.
        let stamped = 8.clamp(offset, offset + piece.len());
        let n = stamped - offset;
        if (n > 0 && piece[..n] != stamp(&base, index)[offset..stamped])
            || piece[n..] != base[stamped..offset + piece.len()]
        {
            return false;
        }
        pos += piece.len();
        rest = tail;
    }
    true
}

/// A byte range for GETs: `bytes=start-end` (`end` inclusive; open if
/// `None`), as `--range 0-1023` or `--range 4096-` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) start: u64,
    pub(crate) end: Option<u64>,
}

impl std::str::FromStr for ByteRange {
    type Err = String;
    fn from_str(s: &str) -> Result<ByteRange, String> {
        let bad = || format!("invalid range `{s}`: want `START-END` or `START-` (bytes, END inclusive)");
        let (start, end) = s.trim().split_once('-').ok_or_else(bad)?;
        let start: u64 = start.parse().map_err(|_| bad())?;
        let end = match end {
            "" => None,
            end => Some(end.parse::<u64>().map_err(|_| bad())?),
        };
        if end.is_some_and(|end| end < start) {
            return Err(bad());
        }
        Ok(ByteRange { start, end })
    }
}

impl ByteRange {
    /// The part of an object of `size` bytes this range selects (RFC 9110
    /// §14.1.2: an end past the object is cut to it), or `None` if it
    /// selects nothing (416).
    pub(crate) fn within(&self, size: u64) -> Option<std::ops::Range<u64>> {
        (self.start < size).then(|| self.start..self.end.map_or(size, |end| (end + 1).min(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_contents() {
        assert_eq!(parse_bytes("4KiB").unwrap(), 4096);
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("4XB").is_err());
        let mix: Sizes = "4KiB:90,1MiB:10".parse().unwrap();
        let large = (0..10_000).filter(|&k| mix.of(k) == 1 << 20).count();
        assert!((700..1300).contains(&large), "about 10% large: {large}");
        let body = contents(7, 5000);
        assert!(check(7, 5000, &body));
        assert!(!check(8, 5000, &body), "another key's bytes");
        let mut bad = body.clone();
        bad[4000] ^= 1;
        assert!(!check(7, 5000, &bad), "one flipped byte is caught");
        assert!(!check(7, 5000, &body[..4999]), "wrong length");
        for at in [0, 7, 8, 4095, 4096, 4100, 4999] {
            let mut bad = body.clone();
            bad[at] ^= 0x40;
            assert!(!check(7, 5000, &bad), "a flipped byte at {at} is caught");
        }
        // Blocks carry their index: two blocks swapped are caught.
        let big = contents(3, 3 * 4096);
        let mut swapped = big[4096..8192].to_vec();
        swapped.extend_from_slice(&big[..4096]);
        swapped.extend_from_slice(&big[8192..]);
        assert!(!check(3, 3 * 4096, &swapped));
        assert!(check(3, 3 * 4096, &big));
        assert_eq!(contents(9, 3), contents(9, 4096)[..3], "short contents are a prefix");
        assert!(check(9, 0, &[]));
    }

    #[test]
    fn ranges_are_checked_against_the_same_bytes() {
        let all = contents(5, 3 * 4096 + 100);
        for (a, b) in [(0, 1), (3, 9), (8, 9), (4090, 4105), (4096, 4104), (100, 12_388), (12_287, 12_388)] {
            assert!(check_at(5, a as u64, &all[a..b]), "{a}..{b}");
            let mut bad = all[a..b].to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!check_at(5, a as u64, &bad), "{a}..{b} with its last byte flipped");
            if b - a > 16 {
                assert!(!check_at(5, a as u64 + 1, &all[a..b]), "{a}..{b} checked one byte off");
            }
        }
        let r: ByteRange = "100-199".parse().unwrap();
        assert_eq!((r.within(1000), r.within(150), r.within(100)), (Some(100..200), Some(100..150), None));
        let open: ByteRange = "4096-".parse().unwrap();
        assert_eq!(open.within(10_000), Some(4096..10_000));
        for bad in ["", "5", "a-b", "9-3", "-5"] {
            assert!(bad.parse::<ByteRange>().is_err(), "{bad}");
        }
    }
}
