//! Whole answers rendered once a second: the same bytes (`Date` included)
//! for every identical answer within a second, shared by reference count.
//! Used for `/ping` and for small cached files (`cache::Entry`).

use std::cell::RefCell;

use bytes::Bytes;

/// A whole answer that is the same bytes for every request within a `Date`
/// second: rendered at the first request of each second, then shared (a
/// reference count, no copy) by every answer in that second.
#[derive(Debug, Default)]
pub(crate) struct Rendered(RefCell<Option<(u64, Bytes)>>);

impl Rendered {
    /// The answer for the current `Date` second, rendered by `render` if
    /// the second changed since the last one.
    pub(crate) fn get(&self, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        let second = crate::clock::coarse_epoch_seconds();
        let mut rendered = self.0.borrow_mut();
        match &*rendered {
            Some((at, whole)) if *at == second => whole.clone(),
            _ => {
                let whole = Bytes::from(render());
                *rendered = Some((second, whole.clone()));
                whole
            }
        }
    }
}
