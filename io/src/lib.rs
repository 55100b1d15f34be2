//! percore-io: an io_uring driver and a single-threaded executor.
//!
//! One [`Runtime`] per thread: a ring (built with `SINGLE_ISSUER`,
//! `DEFER_TASKRUN` and `COOP_TASKRUN` when the kernel has them), a slot table
//! that owns every in-flight operation's memory, and an executor for `!Send`
//! tasks. Operations take owned buffers and give them back with the result.
//! Dropping an operation's future never frees memory the kernel may still
//! write: the driver keeps it until the completion arrives.
//!
//! This crate knows nothing of shards, cores or HTTP.
//!
//! ```
//! use percore_io::{Runtime, spawn};
//! let rt = Runtime::new().expect("io_uring available");
//! let answer = rt.block_on(async { spawn(async { 6 * 7 }).await });
//! assert_eq!(answer, 42);
//! ```

#![warn(missing_docs)]

mod buf;
mod bufring;
mod context;
mod driver;
mod error;
mod executor;
pub mod fault;
mod fd;
mod op;
mod runtime;
pub mod time;

pub use buf::{AlignedBuf, IoBuf, IoBufMut, Slice};
pub use bufring::{BufRing, RingBuf};
pub use driver::doorbell::{Doorbell, DoorbellKind};
pub use driver::ring::{RingConfig, RingFeatures};
pub use executor::notify::{Notified, Notify};
pub use executor::park::Remote;
pub use executor::{add_poller, spawn, yield_now, JoinHandle, Poller};
pub use op::fs::{Dir, DirEntry, File, FileKind, Metadata, OpenOptions};
pub use op::net::{Incoming, ListenOptions, RecvStream, Shutdown, TcpListener, TcpStream};
pub use op::splice::{send_file, splice, Pipe};
pub use runtime::{remote, stats, Builder, Runtime, Stats};
