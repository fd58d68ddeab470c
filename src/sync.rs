//! The one place the crate takes its atomics from: `std` normally, `loom` under `cfg(loom)`.
//!
//! Production code imports `crate::sync::…` only, so a loom build sees every atomic access the
//! algorithm makes. crossbeam-epoch switches itself to loom with `--cfg crossbeam_loom` (both
//! cfgs are needed: see the crate's `tests/loom.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicI64, AtomicIsize, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicI64, AtomicIsize, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
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

/// A lock for the few places one belongs (the eviction queues of a shard, the insert stripes,
/// the loads in flight):
/// parking_lot normally, loom's under `cfg(loom)` so that models see it, and std's under Miri,
/// which rejects the futex call parking_lot makes when a thread parks.
pub(crate) struct Mutex<T> {
    #[cfg(not(any(loom, miri)))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(all(miri, not(loom)))]
    inner: std::sync::Mutex<T>,
}

#[cfg(not(any(loom, miri)))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(all(miri, not(loom)))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(any(loom, miri)))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
            #[cfg(all(miri, not(loom)))]
            inner: std::sync::Mutex::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(any(loom, miri)))]
        return self.inner.lock();
        #[cfg(any(loom, miri))]
        return self
            .inner
            .lock()
            .expect("the policy never panics while holding its lock");
    }

    pub(crate) fn into_inner(self) -> T {
        #[cfg(not(any(loom, miri)))]
        return self.inner.into_inner();
        #[cfg(any(loom, miri))]
        return self
            .inner
            .into_inner()
            .expect("the policy never panics while holding its lock");
    }
}

/// A condition variable paired with [`Mutex`] (the blocking loader's waiters sleep on it):
/// parking_lot's normally, loom's under `cfg(loom)`, std's under Miri.
pub(crate) struct Condvar {
    #[cfg(not(any(loom, miri)))]
    inner: parking_lot::Condvar,
    #[cfg(loom)]
    inner: loom::sync::Condvar,
    #[cfg(all(miri, not(loom)))]
    inner: std::sync::Condvar,
}

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar {
            #[cfg(not(any(loom, miri)))]
            inner: parking_lot::Condvar::new(),
            #[cfg(loom)]
            inner: loom::sync::Condvar::new(),
            #[cfg(all(miri, not(loom)))]
            inner: std::sync::Condvar::new(),
        }
    }

    /// Releases the lock, sleeps until notified (or spuriously), and takes the lock again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(not(any(loom, miri)))]
        {
            let mut guard = guard;
            self.inner.wait(&mut guard);
            guard
        }
        #[cfg(any(loom, miri))]
        return self
            .inner
            .wait(guard)
            .expect("no thread panics while holding a loader's lock");
    }

    pub(crate) fn notify_all(&self) {
        self.inner.notify_all();
    }
}
