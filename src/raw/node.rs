//! Nodes: one per entry, immutable but for their deadlines.
//!
//! A table slot points to a [`Node`]: the key, the value, the version it was stored under, its
//! weight and deadlines. Every write allocates a new node and swings the slot from the node it
//! read to the new one with one compare-and-swap, so a reader always sees a value together with
//! its own version, and a compare-and-swap that compared versions acts on the exact node it
//! compared. A resize moves node pointers, never nodes, so a version taken before a resize still
//! names the same node after it.
//!
//! The eviction policy's per-entry state is not in the node but beside the slot, in its group
//! ([`Found::record_access`]): it survives every write of the key without being copied, and a
//! hit reads and writes it in the cache line the lookup already loaded.

use crossbeam_epoch::Shared;

use super::recycle;
use super::table::Table;
use crate::sync::{AtomicU64, AtomicU8, Ordering};
use crate::version::Version;

/// The largest access count an entry records (S3-FIFO's 2-bit frequency).
pub(crate) const MAX_FREQUENCY: u8 = 3;
/// The largest number of hits an entry holds before the policy folds them into its sketch.
pub(crate) const MAX_HITS: u8 = 15;

/// One key's value, with the version it was stored under.
pub(crate) struct Node<K, V> {
    pub(super) version: Version,
    /// The value's weight toward the cache's capacity.
    pub(super) weight: u32,
    /// When the value expires (its time to live), in milliseconds of the cache's clock; 0: never.
    pub(super) expires_at: AtomicU64,
    /// When the value expires unless it is read again (its time to idle); 0: never.
    pub(super) idle_expires_at: AtomicU64,
    pub(super) key: K,
    pub(super) value: V,
}

/// A node ready to be stored (allocated once, reused across the retries of a write loop).
pub(crate) struct NewNode<K, V>(pub(super) Box<Node<K, V>>);

impl<K, V> NewNode<K, V> {
    pub(crate) fn new(
        key: K,
        value: V,
        version: Version,
        weight: u32,
        expires_at: u64,
        idle_expires_at: u64,
    ) -> Self {
        NewNode(recycle::boxed(Node {
            version,
            weight,
            expires_at: AtomicU64::new(expires_at),
            idle_expires_at: AtomicU64::new(idle_expires_at),
            key,
            value,
        }))
    }

    pub(crate) fn weight(&self) -> u32 {
        self.0.weight
    }

    pub(crate) fn version(&self) -> Version {
        self.0.version
    }

    pub(crate) fn key(&self) -> &K {
        &self.0.key
    }

    /// Sets the deadlines (a retried conditional write takes those of the entry it now replaces).
    pub(crate) fn set_deadlines(&mut self, expires_at: u64, idle_expires_at: u64) {
        self.0.expires_at = AtomicU64::new(expires_at);
        self.0.idle_expires_at = AtomicU64::new(idle_expires_at);
    }

    /// Replaces the value and its weight (after a failed attempt computed from a stale read).
    pub(crate) fn set_value(&mut self, value: V, weight: u32) {
        self.0.value = value;
        self.0.weight = weight;
    }

    pub(crate) fn into_value(self) -> V {
        self.into_parts().1
    }

    pub(crate) fn into_parts(self) -> (K, V) {
        let node = recycle::unboxed(self.0);
        (node.key, node.value)
    }
}

/// A live entry found under a guard: the node, and the slot it was found in.
///
/// The node and the table were loaded under the guard that `'g` borrows, so they stay valid for
/// `'g`: nodes and tables are only retired through that guard's collector, once unreachable.
pub(crate) struct Found<'g, K, V> {
    pub(super) table: &'g Table<K, V>,
    pub(super) index: usize,
    pub(super) node: Shared<'g, Node<K, V>>,
}

impl<K, V> Clone for Found<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Found<'_, K, V> {}

impl<'g, K, V> Found<'g, K, V> {
    #[inline]
    fn node(&self) -> &'g Node<K, V> {
        // SAFETY: non-null (a `Found` is only built from a slot holding a node) and protected by
        // the guard for 'g, through which it is retired.
        unsafe { self.node.deref() }
    }

    /// The entry's key.
    #[inline]
    pub(crate) fn key(&self) -> &'g K {
        &self.node().key
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

    /// The slot the node was found in (an eviction queue's name for the key).
    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The entry's policy byte: bits 0–1 count accesses since the eviction hand last passed
    /// (saturating at [`MAX_FREQUENCY`]), bits 2–5 count hits not yet folded into the policy's
    /// frequency sketch (saturating at [`MAX_HITS`]).
    #[inline]
    pub(crate) fn policy(&self) -> &'g AtomicU8 {
        self.table.policy(self.index)
    }

    /// Accesses recorded since the hand last passed (0..=3).
    #[inline]
    pub(crate) fn frequency(&self) -> u8 {
        self.policy().load(Ordering::Relaxed) & 3
    }

    /// Sets the access count, keeping the unfolded hits. (A racing reader's increment may be
    /// lost: harmless for a policy estimate.)
    #[inline]
    pub(crate) fn set_frequency(&self, frequency: u8) {
        let state = self.policy();
        let current = state.load(Ordering::Relaxed);
        state.store((current & !3) | (frequency & 3), Ordering::Relaxed);
    }

    /// The hits not yet folded into the policy's sketch.
    #[inline]
    pub(crate) fn hits(&self) -> u8 {
        self.policy().load(Ordering::Relaxed) >> 2
    }

    /// Takes the hits not yet folded into the policy's sketch, resetting them.
    #[inline]
    pub(crate) fn take_hits(&self) -> u8 {
        let state = self.policy();
        let current = state.load(Ordering::Relaxed);
        if current >> 2 != 0 {
            state.store(current & 3, Ordering::Relaxed);
        }
        current >> 2
    }

    /// Records a hit for the eviction policy: one relaxed store to the slot's group line, which
    /// the lookup has just read, and none once both counts are at their maximum, so hot keys'
    /// readers do not keep writing it.
    #[inline]
    pub(crate) fn record_access(&self) {
        let state = self.policy();
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
