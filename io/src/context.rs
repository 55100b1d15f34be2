//! The per-thread context: this thread's driver, executor and timers.
//!
//! **Invariant:** at most one runtime per thread; the context is set when the
//! [`Runtime`](crate::Runtime) is built and cleared when it is dropped, after
//! every in-flight operation has completed (or its memory was leaked).

use std::cell::RefCell;
use std::rc::Rc;

use crate::bufring::BufRingRegistry;
use crate::driver::Driver;
use crate::executor::Executor;
use crate::time::Timers;

pub(crate) struct Context {
    pub(crate) driver: Driver,
    pub(crate) executor: Executor,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) buf_rings: BufRingRegistry,
    pub(crate) config: crate::runtime::Tuning,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
}

const NO_RUNTIME: &str = "percore-io: no runtime on this thread (call from inside Runtime::block_on)";

/// Runs `f` with this thread's context.
///
/// # Panics
/// If the thread has no runtime.
pub(crate) fn with<R>(f: impl FnOnce(&Context) -> R) -> R {
    CONTEXT.with(|cell| {
        let cell = cell.borrow();
        f(cell.as_deref().expect(NO_RUNTIME))
    })
}

/// Runs `f` with this thread's context, if it has one.
pub(crate) fn try_with<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    CONTEXT.try_with(|cell| cell.try_borrow().ok().and_then(|c| c.as_deref().map(f))).ok().flatten()
}

pub(crate) fn install(cx: Rc<Context>) -> Result<(), Rc<Context>> {
    CONTEXT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) if slot.is_none() => {
            *slot = Some(cx);
            Ok(())
        }
        _ => Err(cx),
    })
}

pub(crate) fn uninstall() -> Option<Rc<Context>> {
    CONTEXT.with(|cell| cell.borrow_mut().take())
}
