//! A bounded cache's eviction queues hold entries through [`QueuedEntry`]: an owning handle
//! (the entry's `QUEUED` share, see [`super::entry`]) that keeps the entry alive without a guard,
//! so the policy can keep plain FIFOs of them and look at their hash and access count at any time.

use std::ptr::NonNull;

use crossbeam_epoch::{Guard, Shared};

use super::entry::{Entry, Found, QUEUED, SEALED};
use crate::sync::Ordering;

pub(crate) struct QueuedEntry<K, V> {
    entry: NonNull<Entry<K, V>>,
}

// SAFETY: the handle is a share of an `Entry<K, V>`, which is shared between threads like the
// cache itself; it gives access to `&Entry` only.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for QueuedEntry<K, V> {}
// SAFETY: as above; all methods take `&self` and touch the entry only through atomics or `&`.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for QueuedEntry<K, V> {}

impl<K, V> QueuedEntry<K, V> {
    /// # Safety
    ///
    /// `entry` must be a live entry whose `QUEUED` bit is set and owned by the new handle.
    pub(super) unsafe fn new(entry: Shared<'_, Entry<K, V>>) -> Self {
        QueuedEntry {
            entry: NonNull::new(entry.with_tag(0).as_raw() as *mut Entry<K, V>)
                .expect("a linked entry is non-null"),
        }
    }

    #[inline]
    fn entry(&self) -> &Entry<K, V> {
        // SAFETY: the QUEUED share this handle owns keeps the entry allocated.
        unsafe { self.entry.as_ref() }
    }

    /// Starts loading the entry's cache line, for a hand that will look at it soon (the queue
    /// heads are cold: they were queued a whole queue length ago).
    #[inline]
    pub(crate) fn prefetch(&self) {
        super::prefetch(self.entry.as_ptr());
    }

    /// The key's hash.
    pub(crate) fn hash(&self) -> u64 {
        self.entry().hash
    }

    /// Accesses recorded since the hand last passed (0..=3).
    pub(crate) fn frequency(&self) -> u8 {
        self.entry().frequency.load(Ordering::Relaxed) & 3
    }

    /// Sets the access count, keeping the unfolded hits. (A racing reader's increment may be
    /// lost: harmless for a policy estimate.)
    pub(crate) fn set_frequency(&self, frequency: u8) {
        let state = &self.entry().frequency;
        let current = state.load(Ordering::Relaxed);
        state.store((current & !3) | (frequency & 3), Ordering::Relaxed);
    }

    /// Takes the hits not yet folded into the policy's sketch, resetting them.
    pub(crate) fn take_hits(&self) -> u8 {
        let state = &self.entry().frequency;
        let current = state.load(Ordering::Relaxed);
        if current >> 2 != 0 {
            state.store(current & 3, Ordering::Relaxed);
        }
        current >> 2
    }

    /// The hits not yet folded into the policy's sketch.
    pub(crate) fn hits(&self) -> u8 {
        self.entry().frequency.load(Ordering::Relaxed) >> 2
    }

    /// The entry with its current value, or `None` once it has been removed.
    pub(crate) fn current<'g>(&self, guard: &'g Guard) -> Option<Found<'g, K, V>> {
        let node = self.entry().value.load(Ordering::Acquire, guard);
        if node.tag() & SEALED != 0 {
            return None;
        }
        let entry = Shared::from(self.entry.as_ptr() as *const Entry<K, V>);
        // SAFETY: both non-null; the entry outlives 'g because it is retired (never freed
        // directly) once its shares are gone, and `guard` is held for 'g.
        Some(unsafe { Found::new(entry, node) })
    }

    /// Gives up the queue's share; the entry is retired if the table has let go of it too.
    pub(crate) fn release(self, guard: &Guard) {
        let entry = Shared::from(self.entry.as_ptr() as *const Entry<K, V>);
        // SAFETY: this handle owns the QUEUED share and is consumed.
        unsafe { super::release(entry, QUEUED, guard) };
    }
}
