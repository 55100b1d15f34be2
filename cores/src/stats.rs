//! Per-shard counters, gathered from every shard over the mesh.
//!
//! The counters are thread-local (`Cell`s in the shard's mesh state), so
//! counting costs no atomic and no cache line is shared between cores;
//! [`gather`] asks every shard for its own over the mesh.

use std::cell::Cell;

use crate::mesh::{self, MeshError};

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) messages_in: Cell<u64>,
    pub(crate) messages_out: Cell<u64>,
    pub(crate) wakeups_sent: Cell<u64>,
    pub(crate) drains: Cell<u64>,
}

/// One shard's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// The shard.
    pub shard: usize,
    /// Messages this shard took from its inbox (requests and replies).
    pub messages_in: u64,
    /// Messages this shard sent (requests and replies).
    pub messages_out: u64,
    /// Requests whose notification woke the target's inbox task (the rest
    /// coalesced with a notification the target had not consumed yet).
    pub wakeups_sent: u64,
    /// Times the inbox task drained its inbox to empty.
    pub inbox_drains: u64,
    /// The shard's ring and executor counters (tasks run, submissions,
    /// completions, doorbell wake-ups...).
    pub io: percore_io::Stats,
}

/// The current shard's counters.
///
/// # Panics
/// Outside a shard.
pub fn local() -> ShardStats {
    mesh::with_local(|l| ShardStats {
        shard: l.id,
        messages_in: l.counters.messages_in.get(),
        messages_out: l.counters.messages_out.get(),
        wakeups_sent: l.counters.wakeups_sent.get(),
        inbox_drains: l.counters.drains.get(),
        io: percore_io::stats(),
    })
}

/// Every shard's counters, in shard order.
///
/// # Errors
/// If a shard has stopped.
///
/// # Panics
/// Outside a shard.
pub async fn gather() -> Result<Vec<ShardStats>, MeshError> {
    mesh::broadcast(local).await
}
