//! Atomics shim: `core::sync::atomic` normally, loom's atomics under `cfg(loom)`.
//!
//! Every atomic the engine uses comes from here, so the loom models in
//! `tests/loom_*.rs` explore exactly the orderings the production build runs.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};

pub(crate) use core::sync::atomic::Ordering;

/// A hint to the CPU that the caller is spinning; a loom yield under `cfg(loom)`.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
