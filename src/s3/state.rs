//! A shard's S3 state: signing keys derived lately, and the count behind
//! request ids. (Its own file: the shard holds it, so it imports nothing
//! that imports the shard.)

use std::cell::Cell;

use super::sigv4::KeyCache;

#[derive(Default)]
pub(crate) struct ShardState {
    pub(crate) keys: KeyCache,
    requests: Cell<u64>,
}

impl ShardState {
    /// This shard's next request number.
    pub(crate) fn next_request(&self) -> u64 {
        let id = self.requests.get() + 1;
        self.requests.set(id);
        id
    }
}
