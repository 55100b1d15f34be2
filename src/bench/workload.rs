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
pub(crate) fn check(key: u64, size: u64, body: &[u8]) -> bool {
    if body.len() as u64 != size {
        return false;
    }
    let base = base(key);
    body.chunks(BLOCK).enumerate().all(|(index, block)| {
        let n = block.len().min(8);
        block[..n] == stamp(&base, index)[..n] && block[n..] == base[n..block.len()]
    })
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
}
