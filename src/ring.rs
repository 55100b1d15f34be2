//! Which node owns an object when several percore nodes stand behind
//! HAProxy with `balance uri path-only` and `hash-type consistent`: the
//! same answer HAProxy computes, so that a node can refuse (503) a key it
//! does not own instead of answering 404 for an object that lives on
//! another node (to a client, a 404 for an existing object is data loss).
//! A node gets another's keys only while that node is out of HAProxy's
//! ring (down, or marked down by its health check).
//!
//! HAProxy 2.6's algorithm, replicated (`src/lb_chash.c`, `src/backend.c`,
//! `src/hash.c`): each server has 16 points per unit of weight on a 32-bit
//! ring, point `i` of the server with id `n` at `full_hash(n × 4096 + i)`; a
//! request's key is the SDBM hash of its path (up to `?`) as sent, passed
//! through `full_hash` too; it goes to the point nearest its key, the one
//! before it on a tie, wrapping around. The servers need explicit ids (`id N` in HAProxy's config) and
//! weight 1. Written by hand: no crate implements HAProxy's ring. Checked
//! against HAProxy itself in `tests/cluster.rs`.

/// Points per unit of a server's weight (HAProxy's `BE_WEIGHT_SCALE`).
const POINTS_PER_WEIGHT: u32 = 16;
/// HAProxy's `SRV_EWGHT_RANGE` (`SRV_UWGHT_RANGE` 256 × 16).
const ID_SPREAD: u32 = 4096;

/// Bob Jenkins' integer hash with HAProxy's final multiply (`full_hash`).
fn full_hash(mut a: u32) -> u32 {
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a_4f09) ^ (a >> 16);
    a.wrapping_mul(3_221_225_473)
}

/// HAProxy's `hash_sdbm`.
fn sdbm(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |hash, &c| u32::from(c).wrapping_add(hash << 6).wrapping_add(hash << 16).wrapping_sub(hash))
}

/// The key HAProxy's `balance uri path-only` with `hash-type consistent`
/// computes for a request path (percent-encoded, as sent): the SDBM hash,
/// avalanched with `full_hash` (found by matching HAProxy 2.6's choices:
/// without the avalanche 47 of 200 paths landed where HAProxy put them,
/// with it 200 of 200).
pub(crate) fn uri_key(path: &str) -> u32 {
    let path = path.as_bytes();
    let end = path.iter().position(|&b| b == b'?').unwrap_or(path.len());
    full_hash(sdbm(&path[..end]))
}

/// The nodes and their points.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    /// Node names, in the order given.
    names: Vec<String>,
    /// (point, index in `names`), sorted by point.
    points: Vec<(u32, usize)>,
    /// This node's index.
    me: usize,
}

impl Ring {
    /// `spec`: `name=id,…` (HAProxy's server ids); `me`: this node's name,
    /// which must be one of them.
    pub(crate) fn parse(spec: &str, me: &str) -> Result<Ring, String> {
        Ring::parse_with(spec, me, false)
    }

    /// As [`Ring::parse`], but `me` may be missing from the ring (a node
    /// being removed, whose every object then belongs elsewhere).
    pub(crate) fn parse_leaving(spec: &str, me: &str) -> Result<Ring, String> {
        Ring::parse_with(spec, me, true)
    }

    fn parse_with(spec: &str, me: &str, may_be_absent: bool) -> Result<Ring, String> {
        let mut names = Vec::new();
        let mut points = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, id) = part.split_once('=').ok_or_else(|| {
                format!("--ring: `{part}` is not NAME=ID or NAME=ID:WEIGHT (the server's `id` and `weight` in HAProxy's config)")
            })?;
            let (id, weight) = id.split_once(':').unwrap_or((id, "1"));
            let id: u32 = id
                .trim()
                .parse()
                .ok()
                .filter(|id| (1..=1_000_000).contains(id))
                .ok_or_else(|| format!("--ring: `{id}` is not a server id (1 and up) for {name}"))?;
            let weight: u32 =
                weight.trim().parse().ok().filter(|w| (1..=256).contains(w)).ok_or_else(|| {
                    format!("--ring: `{weight}` is not a weight (1 to 256, as in HAProxy) for {name}")
                })?;
            if names.iter().any(|n| n == name) {
                return Err(format!("--ring names {name} twice"));
            }
            let index = names.len();
            names.push(name.trim().to_string());
            for i in 0..POINTS_PER_WEIGHT * weight {
                points.push((full_hash(id.wrapping_mul(ID_SPREAD).wrapping_add(i)), index));
            }
        }
        if names.len() < 2 {
            return Err("--ring needs at least two nodes (NAME=ID,NAME=ID…)".into());
        }
        let me = match names.iter().position(|n| n == me) {
            Some(me) => me,
            // No node has this index: every key is elsewhere.
            None if may_be_absent => names.len(),
            None => return Err(format!("--ring does not name this node ({me}); set --node-name to one of its names")),
        };
        points.sort_unstable();
        Ok(Ring { names, points, me })
    }

    /// The index of the node that owns `key`.
    fn owner_of(&self, key: u32) -> usize {
        let after = self.points.partition_point(|&(p, _)| p < key);
        let next = self.points[after % self.points.len()];
        let prev = self.points[(after + self.points.len() - 1) % self.points.len()];
        // Distances on the ring (wrapping), as HAProxy computes them.
        if key.wrapping_sub(prev.0) <= next.0.wrapping_sub(key) {
            prev.1
        } else {
            next.1
        }
    }

    /// The node that owns `path`, if not this one.
    pub(crate) fn elsewhere(&self, path: &str) -> Option<&str> {
        let owner = self.owner_of(uri_key(path));
        (owner != self.me).then(|| self.names[owner].as_str())
    }

    /// The other nodes' names.
    pub(crate) fn others(&self) -> impl Iterator<Item = &str> {
        self.names.iter().enumerate().filter(|(i, _)| *i != self.me).map(|(_, n)| n.as_str())
    }

    /// Which node owns `path`.
    #[cfg(test)]
    pub(crate) fn owner(&self, path: &str) -> &str {
        &self.names[self.owner_of(uri_key(path))]
    }
}

impl std::fmt::Display for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a ring of {} nodes ({})", self.names.len(), self.names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_nodes_and_each_has_one_owner() {
        let ring = Ring::parse("a=1:256,b=2:256,c=3:256", "a").unwrap();
        let mut counts = std::collections::HashMap::new();
        for i in 0..30_000 {
            *counts.entry(ring.owner(&format!("/files/k/{i}"))).or_insert(0) += 1;
        }
        for (node, n) in &counts {
            assert!((9_000..11_000).contains(n), "{node}: {n} of 30,000 ({counts:?})");
        }
        // A fourth node takes about a quarter, and only from the others.
        let four = Ring::parse("a=1:256,b=2:256,c=3:256,d=4:256", "a").unwrap();
        let moved = (0..30_000)
            .map(|i| format!("/files/k/{i}"))
            .filter(|p| ring.owner(p) != four.owner(p))
            .inspect(|p| assert_eq!(four.owner(p), "d", "a key moved between old nodes"))
            .count();
        assert!((6_500..8_500).contains(&moved), "{moved} of 30,000 moved");
    }

    #[test]
    fn the_query_is_not_part_of_the_key_and_bad_specs_are_refused() {
        assert_eq!(uri_key("/files/a?x=1"), uri_key("/files/a"));
        // Where HAProxy 2.6 put these (deploy/haproxy.cfg, servers a=1,
        // b=2, c=3), observed.
        let ring = Ring::parse("a=1,b=2,c=3", "a").unwrap();
        let seen = [("/files/k/o0", "a"), ("/files/k/o10", "a"), ("/files/k/o104", "b"), ("/files/k/o1", "c")];
        for (path, node) in seen {
            assert_eq!(ring.owner(path), node, "{path}");
        }
        assert_eq!(sdbm(b"ab"), u32::from(b'b') + (u32::from(b'a') << 6) + (u32::from(b'a') << 16) - u32::from(b'a'));
        assert!(Ring::parse("a=1", "a").is_err());
        assert!(Ring::parse("a=1,b=2", "z").unwrap_err().contains("--node-name"));
        // A node leaving the ring owns nothing in it.
        let leaving = Ring::parse_leaving("a=1,b=2", "z").unwrap();
        assert!((0..100).all(|i| leaving.elsewhere(&format!("/files/{i}")).is_some()));
        assert!(Ring::parse("a=1,a=2", "a").is_err());
        assert!(Ring::parse("a=1,b", "a").is_err());
        assert!(Ring::parse("a=0,b=2", "a").is_err());
        assert!(Ring::parse("a=1:0,b=2", "a").is_err());
        assert!(Ring::parse("a=1:257,b=2", "a").is_err());
    }
}
