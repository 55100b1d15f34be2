//! percore-cores: one pinned shard per core and a crossbeam mesh between
//! them, on top of `percore-io`.
//!
//! Not built yet: see the `cores` issue. The crate compiles so the workspace
//! has its final shape.

#![warn(missing_docs)]
