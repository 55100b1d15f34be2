//! MD5, for the ETags S3 clients check: written here because it is the
//! costliest step of an upload (every byte goes through it, one core per
//! upload) and the crates are slower. md-5's portable code (7.65 us per 4 KiB
//! on the project's machine) lets the compiler add each step's constant
//! after the newest register's mix, one more instruction on the critical
//! path of all 64 steps; its assembly variant gained 5%, aws-lc's assembly
//! (5.92 us) would need `unsafe` FFI in the daemon. Here each step's word,
//! constant and oldest register are summed off the critical path (the
//! constants read through `black_box`, so the compiler cannot move them):
//! 5.63 us per 4 KiB. Checked against md-5 (a dev-dependency) and RFC 1321's
//! test suite.
//!
//! When the signature covers the payload, its SHA-256 (sha2's compression,
//! SHA-NI where the CPU has it) runs beside the MD5, block by block in one
//! pass ([`Md5::with_sha256`]): MD5 waits on its own latency, one step on
//! the last, and the SHA-256 instructions fill those waits. Measured over
//! 4 KiB: 7.26 us for both against 8.10 one after the other.

use sha2::digest::generic_array::GenericArray;

/// The constants of the 64 steps (RFC 1321, 3.4).
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
    0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
    0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
    0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391,
];

const INITIAL: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_INITIAL: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// A running MD5, with a SHA-256 of the same bytes beside it if asked.
#[derive(Clone)]
pub(crate) struct Md5 {
    state: [u32; 4],
    sha256: Option<[u32; 8]>,
    /// Bytes of a block not yet complete.
    pending: [u8; 64],
    pending_len: usize,
    /// Bytes hashed in all.
    total: u64,
}

impl Default for Md5 {
    fn default() -> Md5 {
        Md5 { state: INITIAL, sha256: None, pending: [0; 64], pending_len: 0, total: 0 }
    }
}

impl Md5 {
    pub(crate) fn new() -> Md5 {
        Md5::default()
    }

    /// An MD5 and a SHA-256 of the same bytes ([`Md5::finalize_both`]).
    pub(crate) fn with_sha256() -> Md5 {
        Md5 { sha256: Some(SHA256_INITIAL), ..Md5::default() }
    }

    fn block(&mut self, block: &[u8; 64]) {
        compress(&mut self.state, block);
        if let Some(sha) = &mut self.sha256 {
            sha2::compress256(sha, std::slice::from_ref(GenericArray::from_slice(block)));
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.pending_len > 0 {
            let take = data.len().min(64 - self.pending_len);
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < 64 {
                return;
            }
            let block = self.pending;
            self.block(&block);
            self.pending_len = 0;
        }
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            self.block(block.try_into().expect("chunks of 64"));
        }
        let rest = blocks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    pub(crate) fn finalize(self) -> [u8; 16] {
        self.finalize_both().0
    }

    /// The MD5, and the SHA-256 if it ran beside it.
    pub(crate) fn finalize_both(self) -> ([u8; 16], Option<[u8; 32]>) {
        let bits = self.total.wrapping_mul(8);
        // Both pad alike: the pending bytes, 0x80, zeros to 56 bytes of a
        // block, the length in bits (little-endian for MD5, big for SHA-256).
        let mut tail = [0u8; 128];
        tail[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        tail[self.pending_len] = 0x80;
        let len = if self.pending_len < 56 { 64 } else { 128 };
        tail[len - 8..len].copy_from_slice(&bits.to_le_bytes());
        let mut state = self.state;
        for block in tail[..len].chunks_exact(64) {
            compress(&mut state, block.try_into().expect("chunks of 64"));
        }
        let mut md5 = [0u8; 16];
        for (bytes, word) in md5.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        let sha256 = self.sha256.map(|mut sha| {
            tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
            for block in tail[..len].chunks_exact(64) {
                sha2::compress256(&mut sha, std::slice::from_ref(GenericArray::from_slice(block)));
            }
            let mut out = [0u8; 32];
            for (bytes, word) in out.chunks_exact_mut(4).zip(sha) {
                bytes.copy_from_slice(&word.to_be_bytes());
            }
            out
        });
        (md5, sha256)
    }
}

/// One step: `$a` takes the word and constant (`$w`, not waiting for the
/// newest register), then the mix of `$b`, `$c`, `$d`.
macro_rules! step {
    ($mix:ident, $a:ident, $b:ident, $c:ident, $d:ident, $w:expr, $s:expr) => {
        $a = $a.wrapping_add($w);
        $a = $mix($a, $b, $c, $d).rotate_left($s).wrapping_add($b);
    };
}

#[inline(always)]
fn f(a: u32, b: u32, c: u32, d: u32) -> u32 {
    a.wrapping_add(((c ^ d) & b) ^ d)
}

#[inline(always)]
fn g(a: u32, b: u32, c: u32, d: u32) -> u32 {
    // (b & d) | (c & !d): the bits are disjoint, so a sum, and c & !d does
    // not wait for b.
    a.wrapping_add(c & !d).wrapping_add(b & d)
}

#[inline(always)]
fn h(a: u32, b: u32, c: u32, d: u32) -> u32 {
    a.wrapping_add(b ^ (c ^ d))
}

#[inline(always)]
fn i(a: u32, b: u32, c: u32, d: u32) -> u32 {
    a.wrapping_add(c ^ (b | !d))
}

fn compress(state: &mut [u32; 4], block: &[u8; 64]) {
    // Read through an opaque reference: the compiler then adds each
    // constant with its word, not after the mix (where it lengthens every
    // step by one instruction).
    let k: &[u32; 64] = std::hint::black_box(&K);
    let mut x = [0u32; 16];
    for (word, bytes) in x.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes(bytes.try_into().expect("chunks of 4"));
    }
    let w = |i: usize, t: usize| x[i].wrapping_add(k[t]);
    let [mut a, mut b, mut c, mut d] = *state;
    step!(f, a, b, c, d, w(0, 0), 7);
    step!(f, d, a, b, c, w(1, 1), 12);
    step!(f, c, d, a, b, w(2, 2), 17);
    step!(f, b, c, d, a, w(3, 3), 22);
    step!(f, a, b, c, d, w(4, 4), 7);
    step!(f, d, a, b, c, w(5, 5), 12);
    step!(f, c, d, a, b, w(6, 6), 17);
    step!(f, b, c, d, a, w(7, 7), 22);
    step!(f, a, b, c, d, w(8, 8), 7);
    step!(f, d, a, b, c, w(9, 9), 12);
    step!(f, c, d, a, b, w(10, 10), 17);
    step!(f, b, c, d, a, w(11, 11), 22);
    step!(f, a, b, c, d, w(12, 12), 7);
    step!(f, d, a, b, c, w(13, 13), 12);
    step!(f, c, d, a, b, w(14, 14), 17);
    step!(f, b, c, d, a, w(15, 15), 22);

    step!(g, a, b, c, d, w(1, 16), 5);
    step!(g, d, a, b, c, w(6, 17), 9);
    step!(g, c, d, a, b, w(11, 18), 14);
    step!(g, b, c, d, a, w(0, 19), 20);
    step!(g, a, b, c, d, w(5, 20), 5);
    step!(g, d, a, b, c, w(10, 21), 9);
    step!(g, c, d, a, b, w(15, 22), 14);
    step!(g, b, c, d, a, w(4, 23), 20);
    step!(g, a, b, c, d, w(9, 24), 5);
    step!(g, d, a, b, c, w(14, 25), 9);
    step!(g, c, d, a, b, w(3, 26), 14);
    step!(g, b, c, d, a, w(8, 27), 20);
    step!(g, a, b, c, d, w(13, 28), 5);
    step!(g, d, a, b, c, w(2, 29), 9);
    step!(g, c, d, a, b, w(7, 30), 14);
    step!(g, b, c, d, a, w(12, 31), 20);

    step!(h, a, b, c, d, w(5, 32), 4);
    step!(h, d, a, b, c, w(8, 33), 11);
    step!(h, c, d, a, b, w(11, 34), 16);
    step!(h, b, c, d, a, w(14, 35), 23);
    step!(h, a, b, c, d, w(1, 36), 4);
    step!(h, d, a, b, c, w(4, 37), 11);
    step!(h, c, d, a, b, w(7, 38), 16);
    step!(h, b, c, d, a, w(10, 39), 23);
    step!(h, a, b, c, d, w(13, 40), 4);
    step!(h, d, a, b, c, w(0, 41), 11);
    step!(h, c, d, a, b, w(3, 42), 16);
    step!(h, b, c, d, a, w(6, 43), 23);
    step!(h, a, b, c, d, w(9, 44), 4);
    step!(h, d, a, b, c, w(12, 45), 11);
    step!(h, c, d, a, b, w(15, 46), 16);
    step!(h, b, c, d, a, w(2, 47), 23);

    step!(i, a, b, c, d, w(0, 48), 6);
    step!(i, d, a, b, c, w(7, 49), 10);
    step!(i, c, d, a, b, w(14, 50), 15);
    step!(i, b, c, d, a, w(5, 51), 21);
    step!(i, a, b, c, d, w(12, 52), 6);
    step!(i, d, a, b, c, w(3, 53), 10);
    step!(i, c, d, a, b, w(10, 54), 15);
    step!(i, b, c, d, a, w(1, 55), 21);
    step!(i, a, b, c, d, w(8, 56), 6);
    step!(i, d, a, b, c, w(15, 57), 10);
    step!(i, c, d, a, b, w(6, 58), 15);
    step!(i, b, c, d, a, w(13, 59), 21);
    step!(i, a, b, c, d, w(4, 60), 6);
    step!(i, d, a, b, c, w(11, 61), 10);
    step!(i, c, d, a, b, w(2, 62), 15);
    step!(i, b, c, d, a, w(9, 63), 21);

    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5_crate::Digest;
    use proptest::prelude::*;

    fn digest(data: &[u8]) -> [u8; 16] {
        let mut md5 = Md5::new();
        md5.update(data);
        md5.finalize()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc_1321_test_suite() {
        for (input, expected) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(hex(&digest(input.as_bytes())), expected, "{input:?}");
        }
    }

    proptest! {
        /// Any bytes, fed in any pieces, hash as md-5 hashes them whole.
        #[test]
        fn agrees_with_md5_crate(data in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..6)) {
            let mut md5 = Md5::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort();
            let mut from = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                md5.update(&data[from..cut]);
                from = cut;
            }
            prop_assert_eq!(md5.finalize(), <[u8; 16]>::from(md5_crate::Md5::digest(&data)));
        }

        /// With SHA-256 beside it: both as the crates compute them.
        #[test]
        fn sha256_beside_agrees_with_sha2(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
            let cut = cut.min(data.len());
            let mut both = Md5::with_sha256();
            both.update(&data[..cut]);
            both.update(&data[cut..]);
            let (md5, sha256) = both.finalize_both();
            prop_assert_eq!(md5, <[u8; 16]>::from(md5_crate::Md5::digest(&data)));
            prop_assert_eq!(sha256, Some(<[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&data))));
        }
    }
}
