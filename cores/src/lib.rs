//! percore-cores: one pinned shard per core and a crossbeam mesh between
//! them, on top of `percore-io`.
//!
//! [`launch`] starts one thread per chosen CPU (`percore-shard-N`), pinned,
//! each with its own io_uring ring and executor. Shards share nothing
//! mutable: they talk only through crossbeam channels, one inbox per shard,
//! with [`submit_to`], [`spawn_on`], [`post`] and [`broadcast`] (in the spirit of
//! Seastar's `smp::submit_to`). [`shard_for`] names the owner of a key.
//!
//! ```
//! use percore_cores::{launch, submit_to, Config, CoreSet};
//! let config = Config { cores: CoreSet::Count(2), ..Config::default() };
//! let running = launch(config, |shard| async move {
//!     let other = (shard.id + 1) % shard.count;
//!     submit_to(other, move || other * 10).await.unwrap()
//! })
//! .unwrap();
//! assert_eq!(running.join().unwrap(), vec![Some(10), Some(0)]);
//! ```

#![warn(missing_docs)]

mod launch;
mod mesh;
pub mod stats;
mod topology;

pub use launch::{launch, launch_with, stop, Config, LaunchError, Running, StopHandle};
pub use mesh::{
    broadcast, current, is_stopping, post, shard_for, spawn_on, stopping, submit_to, unless_stopping, MeshError, Shard,
    DRAIN_BATCH,
};
pub use stats::ShardStats;
pub use topology::{allowed_cpus, format_list, CoreSet, Placement, TopologyError};
