//! Nodes: one per entry, immutable but for their deadlines.
//!
//! A table slot points to a [`Node`]: the key, the value and the version it was stored under,
//! and, in a weighted cache or when the value has a deadline, its weight and deadlines
//! ([`Extras`], flagged in the pointer's tag so that a plain node pays nothing for them). Every write allocates a new node and swings the slot from the node it
//! read to the new one with one compare-and-swap, so a reader always sees a value together with
//! its own version, and a compare-and-swap that compared versions acts on the exact node it
//! compared. A resize moves node pointers, never nodes, so a version taken before a resize still
//! names the same node after it.
//!
//! The eviction policy's per-entry state is not in the node but beside the slot, in its group
//! ([`Found::record_access`]): it survives every write of the key without being copied, and a
//! hit reads and writes it in the cache line the lookup already loaded.

use std::ptr::NonNull;

use crossbeam_epoch::Shared;

use super::recycle;
use super::table::Table;
use crate::sync::{AtomicU64, AtomicU8, Ordering};
use crate::version::Version;

/// The largest access count an entry records (S3-FIFO's 2-bit frequency).
pub(crate) const MAX_FREQUENCY: u8 = 3;
/// The largest number of hits an entry holds before the policy folds them into its sketch.
pub(crate) const MAX_HITS: u8 = 15;

/// One key's value, with the version it was stored under: the whole node of an entry of an
/// unweighted cache without a deadline (24 bytes for `u64` keys and values, so that the
/// allocator serves it from its 32-byte size class).
#[repr(C)]
pub(crate) struct Node<K, V> {
    pub(super) version: Version,
    pub(super) key: K,
    pub(super) value: V,
}

/// What a node of a weighted cache, or with a deadline, carries beyond [`Node`].
#[repr(C)]
pub(super) struct Extras {
    /// The value's weight toward the cache's capacity (1 without a weigher).
    weight: u32,
    /// When the value expires (its time to live), in milliseconds of the cache's clock; 0: never.
    expires_at: AtomicU64,
    /// When the value expires unless it is read again (its time to idle); 0: never.
    idle_expires_at: AtomicU64,
}

/// A node with [`Extras`], which a pointer to it says with the [`EXTRAS`] tag. The [`Node`] is
/// its first field (`repr(C)`), so a pointer to one is a pointer to the other.
#[repr(C)]
pub(super) struct ExtendedNode<K, V> {
    node: Node<K, V>,
    extras: Extras,
}

/// Pointer tag of a node that is an [`ExtendedNode`].
pub(super) const EXTRAS: usize = 2;

/// Frees the node `ptr` points to (tagged as it is in a slot), dropping its key and value and
/// keeping its memory for this thread's next node of that layout.
///
/// # Safety
///
/// `ptr` must own its node, allocated by [`NewNode::new`], which nobody else will use again.
pub(super) unsafe fn release<K, V>(ptr: NonNull<Node<K, V>>, extended: bool) {
    // SAFETY: the caller hands over an owned node of the layout its tag says.
    unsafe {
        if extended {
            recycle::release(ptr.cast::<ExtendedNode<K, V>>());
        } else {
            recycle::release(ptr);
        }
    }
}

/// A node ready to be stored (allocated once, reused across the retries of a write loop): owned
/// by this thread until a slot takes it.
pub(crate) struct NewNode<K, V> {
    ptr: NonNull<Node<K, V>>,
    extended: bool,
}

// SAFETY: a `NewNode` owns its node (like a `Box`), whose key and value are `Send` when these are.
unsafe impl<K: Send, V: Send> Send for NewNode<K, V> {}

impl<K, V> NewNode<K, V> {
    /// A node for `key` and `value`, with extras if the cache is `weighted` or the node has a
    /// deadline.
    pub(crate) fn new(
        key: K,
        value: V,
        version: Version,
        (weight, weighted): (u32, bool),
        expires_at: u64,
        idle_expires_at: u64,
    ) -> Self {
        let node = Node {
            version,
            key,
            value,
        };
        if weighted || expires_at != 0 || idle_expires_at != 0 {
            let extended = recycle::boxed(ExtendedNode {
                node,
                extras: Extras {
                    weight,
                    expires_at: AtomicU64::new(expires_at),
                    idle_expires_at: AtomicU64::new(idle_expires_at),
                },
            });
            NewNode {
                ptr: NonNull::from(Box::leak(extended)).cast(),
                extended: true,
            }
        } else {
            NewNode {
                ptr: NonNull::from(Box::leak(recycle::boxed(node))),
                extended: false,
            }
        }
    }

    #[inline]
    fn node(&self) -> &Node<K, V> {
        // SAFETY: this handle owns a live node.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn extras(&self) -> Option<&Extras> {
        // SAFETY: an extended node's pointer is a pointer to its `ExtendedNode`, which this
        // handle owns.
        self.extended
            .then(|| unsafe { &self.ptr.cast::<ExtendedNode<K, V>>().as_ref().extras })
    }

    pub(crate) fn weight(&self) -> u32 {
        self.extras().map_or(1, |extras| extras.weight)
    }

    pub(crate) fn version(&self) -> Version {
        self.node().version
    }

    pub(crate) fn key(&self) -> &K {
        &self.node().key
    }

    /// Sets the deadlines (a retried conditional write takes those of the entry it now
    /// replaces), moving the node to one with extras if it now needs them.
    pub(crate) fn set_deadlines(&mut self, expires_at: u64, idle_expires_at: u64) {
        match self.extras() {
            Some(extras) => {
                extras.expires_at.store(expires_at, Ordering::Relaxed);
                extras
                    .idle_expires_at
                    .store(idle_expires_at, Ordering::Relaxed);
            }
            None if expires_at == 0 && idle_expires_at == 0 => {}
            None => {
                let version = self.version();
                let (key, value) = std::mem::replace(self, Self::placeholder()).into_parts();
                *self = NewNode::new(key, value, version, (1, false), expires_at, idle_expires_at);
            }
        }
    }

    /// Replaces the value and its weight (after a failed attempt computed from a stale read).
    /// A node without extras weighs 1: only a weighted cache weighs otherwise, and all its
    /// nodes have extras.
    pub(crate) fn set_value(&mut self, value: V, weight: u32) {
        // SAFETY: this handle owns the node exclusively.
        unsafe { self.ptr.as_mut() }.value = value;
        if self.extended {
            // SAFETY: as in `extras`, exclusively.
            unsafe { self.ptr.cast::<ExtendedNode<K, V>>().as_mut() }
                .extras
                .weight = weight;
        } else {
            debug_assert_eq!(weight, 1, "a weight needs a node with extras");
        }
    }

    pub(crate) fn into_value(self) -> V {
        self.into_parts().1
    }

    pub(crate) fn into_parts(self) -> (K, V) {
        let this = std::mem::ManuallyDrop::new(self);
        let node = if this.extended {
            // SAFETY: the handle owns an extended node allocated as a `Box` by `new`; it is
            // taken apart once (the handle is not dropped).
            recycle::unboxed(unsafe {
                Box::from_raw(this.ptr.cast::<ExtendedNode<K, V>>().as_ptr())
            })
            .node
        } else {
            // SAFETY: as above, a plain node.
            recycle::unboxed(unsafe { Box::from_raw(this.ptr.as_ptr()) })
        };
        (node.key, node.value)
    }

    /// The node as a slot holds it: tagged [`EXTRAS`] if it has them. The caller owns it from
    /// now on (a slot, or [`NewNode::from_shared`] to take it back).
    pub(super) fn into_shared<'g>(self) -> Shared<'g, Node<K, V>> {
        let this = std::mem::ManuallyDrop::new(self);
        Shared::from(this.ptr.as_ptr().cast_const()).with_tag(if this.extended {
            EXTRAS
        } else {
            0
        })
    }

    /// Takes back a node [`into_shared`](NewNode::into_shared) gave out and no slot took.
    ///
    /// # Safety
    ///
    /// `node` must come from `into_shared` and be owned by the caller.
    pub(super) unsafe fn from_shared(node: Shared<'_, Node<K, V>>) -> Self {
        NewNode {
            ptr: NonNull::new(node.as_raw().cast_mut()).expect("a node is never null"),
            extended: node.tag() & EXTRAS != 0,
        }
    }

    /// A handle owning nothing, only ever overwritten (see `set_deadlines`).
    fn placeholder() -> Self {
        NewNode {
            ptr: NonNull::dangling(),
            extended: false,
        }
    }
}

impl<K, V> Drop for NewNode<K, V> {
    fn drop(&mut self) {
        if self.ptr == NonNull::dangling() {
            return;
        }
        // SAFETY: the handle owns its node, allocated by `new`.
        unsafe { release(self.ptr, self.extended) };
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

    #[inline]
    fn extras(&self) -> Option<&'g Extras> {
        // SAFETY: as in `node`; a node tagged EXTRAS is an `ExtendedNode`.
        (self.node.tag() & EXTRAS != 0)
            .then(|| unsafe { &(*self.node.as_raw().cast::<ExtendedNode<K, V>>()).extras })
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
        self.extras().map_or(1, |extras| extras.weight)
    }

    /// Whether the value has a deadline at all (without reading the node when it has none).
    #[inline]
    pub(crate) fn has_deadline(&self) -> bool {
        self.extras().is_some_and(|extras| {
            extras.expires_at.load(Ordering::Relaxed) != 0
                || extras.idle_expires_at.load(Ordering::Relaxed) != 0
        })
    }

    /// The expiry deadline of [`Found::value`] (0: never).
    #[inline]
    pub(crate) fn expires_at(&self) -> u64 {
        self.extras()
            .map_or(0, |extras| extras.expires_at.load(Ordering::Relaxed))
    }

    /// The idle deadline of [`Found::value`] (0: never).
    #[inline]
    pub(crate) fn idle_expires_at(&self) -> u64 {
        self.extras()
            .map_or(0, |extras| extras.idle_expires_at.load(Ordering::Relaxed))
    }

    /// Moves the idle deadline (a read of a cache with a time to idle, whose nodes all have one).
    #[inline]
    pub(crate) fn set_idle_expires_at(&self, deadline: u64) {
        if let Some(extras) = self.extras() {
            extras.idle_expires_at.store(deadline, Ordering::Relaxed);
        }
    }

    /// The slot the node was found in (an eviction queue's name for the key; queues take it
    /// through [`RawTable::index_in`](super::RawTable::index_in)).
    #[cfg(any(test, fuzzing))]
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
