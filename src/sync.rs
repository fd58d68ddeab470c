//! The one place the crate takes its atomics from: `std` normally, `loom` under `cfg(loom)`.
//!
//! Production code imports `crate::sync::…` only, so a loom build sees every atomic access the
//! algorithm makes. crossbeam-epoch switches itself to loom with `--cfg crossbeam_loom` (both
//! cfgs are needed: see the crate's `tests/loom.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicI64, AtomicIsize, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicI64, AtomicIsize, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

pub(crate) use crossbeam_epoch as epoch;

/// Waits a moment for another thread to make progress (used only while a resize is finishing).
#[inline]
pub(crate) fn spin_wait() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
