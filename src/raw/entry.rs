//! Entry records and value nodes.
//!
//! A table slot points to an [`Entry`]: the key, its hash, and an atomic pointer to the current
//! [`ValueNode`]. Value nodes are immutable: a write allocates a new node (value + fresh version)
//! and swings the entry's pointer to it with one compare-and-swap, so a reader always sees a value
//! together with its own version, and a CAS that compares versions can act on the exact node it
//! compared. The entry record never moves between writes: a resize moves the *pointer* to it,
//! so versions and in-flight operations survive a resize.
//!
//! Removal seals the value pointer (tag bit [`SEALED`]); a sealed entry is dead forever. Any
//! compare-and-swap that loaded the entry before the seal fails, because its expected pointer no
//! longer matches: a write can never land on a removed entry and be lost.

//!
//! An entry can be referenced from two places: its table slot and, in a bounded cache, the
//! eviction queue of its shard. [`Entry::owners`] has a bit for each; whoever clears the last bit
//! retires the entry, so the queue can hold plain pointers to entries without a guard.

use crossbeam_epoch::{Atomic, Shared};

use crate::sync::{AtomicU64, AtomicU8, Ordering};
use crate::version::Version;

/// Tag on [`Entry::value`]: the entry has been removed and will never hold a value again.
pub(crate) const SEALED: usize = 1;

/// [`Entry::owners`] bit: the entry is linked in a table slot.
pub(crate) const LINKED: u8 = 1;
/// [`Entry::owners`] bit: the entry is in an eviction queue.
pub(crate) const QUEUED: u8 = 2;

/// The largest access count an entry records (S3-FIFO's 2-bit frequency).
pub(crate) const MAX_FREQUENCY: u8 = 3;
/// The largest number of hits an entry holds before the policy folds them into its sketch.
pub(crate) const MAX_HITS: u8 = 15;

/// One key's record in the table. Aligned to 8 so that slot pointers to it have the three tag
/// bits the table uses (`FROZEN`, `TOMBSTONE`, `MOVED`) on every target, 32-bit ones included
/// (crossbeam keeps only as many tag bits as the alignment allows).
#[repr(align(8))]
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    /// The current value node, tagged [`SEALED`] once the entry is removed.
    pub(crate) value: Atomic<ValueNode<V>>,
    /// [`LINKED`] and [`QUEUED`]: the references that keep the entry alive.
    pub(crate) owners: AtomicU8,
    /// The eviction policy's per-entry state, one byte: bits 0–1 count accesses since the hand
    /// last passed (saturating at [`MAX_FREQUENCY`]), bits 2–5 count hits not yet folded into
    /// the policy's frequency sketch (saturating at [`MAX_HITS`]).
    pub(crate) frequency: AtomicU8,
}

/// A value with the version it was stored under. Only the expiry deadline can change (touch).
pub(crate) struct ValueNode<V> {
    pub(crate) version: Version,
    pub(crate) value: V,
    /// The value's weight toward the cache's capacity.
    pub(crate) weight: u32,
    /// When the value expires (its time to live), in milliseconds of the cache's clock; 0: never.
    pub(crate) expires_at: AtomicU64,
    /// When the value expires unless it is read again (its time to idle); 0: never.
    pub(crate) idle_expires_at: AtomicU64,
}

/// A live entry found under a guard, with the value node it held when it was found.
///
/// Both pointers are non-null and were loaded under the guard that `'g` borrows, so they stay
/// valid for `'g`: entries and nodes are only ever retired through that guard's collector.
pub(crate) struct Found<'g, K, V> {
    pub(super) entry: Shared<'g, Entry<K, V>>,
    pub(super) node: Shared<'g, ValueNode<V>>,
}

impl<K, V> Clone for Found<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Found<'_, K, V> {}

impl<'g, K, V> Found<'g, K, V> {
    /// Wraps two pointers loaded under the guard `'g` borrows.
    ///
    /// # Safety
    ///
    /// `entry` and `node` must be non-null (tag bits aside), loaded under a guard that lives for
    /// `'g`, from a table or entry reachable when they were loaded.
    pub(super) unsafe fn new(
        entry: Shared<'g, Entry<K, V>>,
        node: Shared<'g, ValueNode<V>>,
    ) -> Self {
        Found {
            entry: entry.with_tag(0),
            node: node.with_tag(0),
        }
    }

    #[inline]
    pub(super) fn entry(&self) -> &'g Entry<K, V> {
        // SAFETY: non-null and protected by the guard for 'g (the contract of `Found::new`).
        unsafe { self.entry.deref() }
    }

    #[inline]
    fn node(&self) -> &'g ValueNode<V> {
        // SAFETY: non-null and protected by the guard for 'g (the contract of `Found::new`).
        unsafe { self.node.deref() }
    }

    /// The key's hash.
    #[inline]
    pub(crate) fn entry_hash(&self) -> u64 {
        self.entry().hash
    }

    /// The entry's key.
    #[inline]
    pub(crate) fn key(&self) -> &'g K {
        &self.entry().key
    }

    /// The value as it was when the entry was found.
    #[inline]
    pub(crate) fn value(&self) -> &'g V {
        &self.node().value
    }

    /// The version of [`Found::value`].
    #[inline]
    pub(crate) fn version(&self) -> Version {
        self.node().version
    }

    /// The weight of [`Found::value`].
    #[inline]
    pub(crate) fn weight(&self) -> u32 {
        self.node().weight
    }

    /// The expiry deadline of [`Found::value`] (0: never).
    #[inline]
    pub(crate) fn expires_at(&self) -> u64 {
        self.node().expires_at.load(Ordering::Relaxed)
    }

    /// The idle deadline of [`Found::value`] (0: never).
    #[inline]
    pub(crate) fn idle_expires_at(&self) -> u64 {
        self.node().idle_expires_at.load(Ordering::Relaxed)
    }

    /// Moves the idle deadline (a read of a cache with a time to idle).
    #[inline]
    pub(crate) fn set_idle_expires_at(&self, deadline: u64) {
        self.node()
            .idle_expires_at
            .store(deadline, Ordering::Relaxed);
    }

    /// Records a hit for the eviction policy: one relaxed store, and none once both counts are at
    /// their maximum, so hot keys' readers do not keep writing the same cache line.
    #[inline]
    pub(crate) fn record_access(&self) {
        let state = &self.entry().frequency;
        let current = state.load(Ordering::Relaxed);
        let frequency = (current & 3).saturating_add(1).min(MAX_FREQUENCY);
        let hits = (current >> 2).saturating_add(1).min(MAX_HITS);
        let updated = frequency | hits << 2;
        // Racing readers may lose an increment: harmless for a policy estimate.
        if updated != current {
            state.store(updated, Ordering::Relaxed);
        }
    }
}
