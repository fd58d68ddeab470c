//! The raw concurrent table: all of the crate's `unsafe` and its lock-free protocols.
//!
//! The public [`Cache`](crate::Cache) orchestrates the eviction policy, the statistics and the
//! versions over [`RawTable`], whose whole protocol is four operations under an epoch guard:
//!
//! * [`load`](RawTable::load): the live node of a key, as a [`Found`] (the node and its slot);
//! * [`compare_exchange`](RawTable::compare_exchange): swing that slot from the node found to a
//!   new one. Every write to an existing key is this one compare-and-swap, so it fails if any
//!   other write or a removal came first, and a versioned write (`compare_and_swap`) compares
//!   the version of the very node it then swings from;
//! * [`insert`](RawTable::insert): link a node for a key found absent, in a free slot;
//! * [`remove`](RawTable::remove): swing the slot from the node found to a free state. A write
//!   that read the node before fails, because the slot moved on: there is nothing to seal.
//!
//! One heap node per entry holds the key, the value, its version, weight and deadlines
//! ([`node`]); the slots live in groups of six per cache line with their hash tags and policy
//! bytes ([`table`]).
//!
//! ## Resizing
//!
//! When a table's claimed slots (nodes and tombstones, counted in per-thread stripes) reach 7/8
//! of it, a writer installs a successor (twice the size when 7/16 of it is live or it churns
//! fast, else the same size, a rehash that drops the tombstones) in `next`. From then on:
//!
//! * Writers that need a slot (insert) first help copy: they claim chunks of groups and copy
//!   them, then wait for the other helpers' chunks, and only then work in the successor. So
//!   while a copy is running, the successor holds nothing but copies, which keeps probing simple.
//! * A slot is copied by freezing its node pointer (flag `FROZEN`), linking the same pointer in
//!   the successor, and marking the old slot `MOVED` with its index there. Nodes are moved,
//!   never cloned, so a version read before the resize names the same node after it. A write or
//!   removal that meets a frozen slot helps finish the copy, then follows `MOVED` to the node's
//!   new slot and swings that one from the same node.
//! * Readers never wait and never copy: they probe the table they loaded, treat a frozen node as
//!   the live one (it is the node the successor gets), and if they met a `MOVED` slot without
//!   finding the key they look again in `next`.
//! * The helper that completes a copy swings the root to the successor and retires the old table
//!   (in a bounded cache, once every eviction shard has moved its queue past it: see below).
//!
//! ## Eviction queues
//!
//! A bounded cache's eviction queues hold slot indexes into a table, their shard's **base**
//! ([`QueueBase`]): four bytes per entry, and the hand finds the policy byte, the tag and the
//! node pointer in one cache line. A slot index is stable while the key is live (writes swing
//! the same slot); a removal outside the queue leaves its slot `PENDING` until the queue drops
//! the entry ([`RawTable::release`]), so no other key takes a slot a queue still names. After a
//! resize a shard translates its queue to the new table through the `MOVED` indexes, under its
//! lock ([`RawTable::rebase`]); each table counts the shards that may still index into it, and
//! the last one to move past it retires it.
//!
//! ## Reclamation
//!
//! Nodes and tables are retired through crossbeam-epoch: a pointer loaded under a guard stays
//! valid until the guard is dropped. Addresses are only compared under the guard they were
//! loaded with, so a freed and reused address (nodes' memory is recycled per thread) can never
//! make a stale compare-and-swap succeed.

mod counter;
pub(crate) use self::counter::Counters;
mod iter;
mod node;
mod recycle;
mod table;

use std::hash::{BuildHasher, Hash};
use std::ptr::NonNull;

use crossbeam_epoch::{Atomic, Guard, Owned, Shared};
use crossbeam_utils::CachePadded;

use self::counter::Counter;
pub(crate) use self::iter::{OwnedIter, RawIter};
use self::node::Node;
pub(crate) use self::node::{Found, NewNode};
pub(crate) use self::table::Freed;
use self::table::{Claim, Lookup, Table, Word};
use crate::sync::{epoch, spin_wait, Mutex, MutexGuard, Ordering};

/// Groups copied per claimed chunk during a resize (about a hundred slots).
const COPY_CHUNK: usize = 16;
/// The largest table allocated up front (about 32 MiB, for caches of up to ~2.9M entries);
/// larger caches grow by resizing.
const MAX_PRESIZED_GROUPS: usize = 1 << 19;
/// Stripes of the insert locks of a table without eviction shards.
#[cfg(not(loom))]
const INSERT_STRIPES: usize = 64;
#[cfg(loom)]
const INSERT_STRIPES: usize = 2;

/// An insert that found the key live: the node comes back with the live one.
pub(crate) struct Rejected<'g, K, V> {
    pub(crate) node: NewNode<K, V>,
    pub(crate) existing: Found<'g, K, V>,
}

/// Where an eviction queue's slot index leads now ([`RawTable::resolve`]).
pub(crate) enum Slot<'g, K, V> {
    /// The key's live node.
    Live(Found<'g, K, V>),
    /// Removed outside the queue: the queue drops its entry and frees the slot with
    /// [`RawTable::release`].
    Pending(PendingSlot<'g, K, V>),
    /// Nothing left to name (the resize that moved the slot dropped it).
    Gone,
}

/// A pending slot a queue may free.
pub(crate) struct PendingSlot<'g, K, V> {
    table: &'g Table<K, V>,
    index: usize,
}

/// The table an eviction shard's queue indexes into. The shard's hold on it keeps it allocated
/// until the shard moves past it ([`RawTable::rebase`]).
pub(crate) struct QueueBase<K, V> {
    table: NonNull<Table<K, V>>,
}

impl<K, V> QueueBase<K, V> {
    /// Whether a key just linked (found as `found`) lies in a newer table than this base, so
    /// the shard must [`rebase`](RawTable::rebase) before queueing it.
    pub(crate) fn is_behind(&self, found: &Found<'_, K, V>) -> bool {
        // SAFETY: the shard's hold keeps its base allocated.
        found.table.generation > unsafe { self.table.as_ref() }.generation
    }
}

// SAFETY: a base is a counted hold on a table, which is shared between threads like the cache
// itself; it is only dereferenced by the shard that owns it, under the shard's lock.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for QueueBase<K, V> {}
// SAFETY: as above; `&QueueBase` gives no access to the table.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for QueueBase<K, V> {}

pub(crate) struct RawTable<K, V, S> {
    root: Atomic<Table<K, V>>,
    len: Counter,
    /// Keys linked so far (striped, like `len`): how fast a table churns.
    inserts: Counter,
    hasher: S,
    /// Eviction shards whose queues index into the tables (0 without a policy).
    shards: usize,
    /// Serialize inserts of one key ([`RawTable::lock_key`]).
    insert_locks: Box<[CachePadded<Mutex<()>>]>,
}

impl<K, V, S> RawTable<K, V, S> {
    /// A table sized so that `capacity` entries fit without a resize (up to a limit), whose
    /// slots `shards` eviction shards will index into (0: none).
    pub(crate) fn new(capacity: usize, hasher: S, shards: usize) -> Self {
        let groups = Table::<K, V>::groups_for(capacity).min(MAX_PRESIZED_GROUPS);
        RawTable {
            root: Atomic::new(Table::new(groups, 0, shards, 0)),
            len: Counter::new(),
            inserts: Counter::new(),
            hasher,
            shards,
            insert_locks: (0..INSERT_STRIPES)
                .map(|_| CachePadded::new(Mutex::new(())))
                .collect(),
        }
    }

    /// The lock that serializes inserts of the key of `hash`, for callers that hold no other
    /// lock of that key ([`RawTable::insert`]'s contract).
    pub(crate) fn lock_key(&self, hash: u64) -> MutexGuard<'_, ()> {
        self.insert_locks[(hash >> 16) as usize % INSERT_STRIPES].lock()
    }

    /// Live entries (exact when writes have quiesced).
    pub(crate) fn len(&self) -> usize {
        self.len.sum()
    }

    #[inline]
    fn root<'g>(&self, guard: &'g Guard) -> &'g Table<K, V> {
        // SAFETY: the root is a non-null table, retired only after it is no longer the root,
        // through `guard`'s collector.
        unsafe { self.root.load(Ordering::Acquire, guard).deref() }
    }

    /// The table after `table` in the chain, if a resize has started.
    #[inline]
    fn next<'g>(table: &'g Table<K, V>, guard: &'g Guard) -> Option<&'g Table<K, V>> {
        let next = table.next.load(Ordering::Acquire, guard);
        // SAFETY: a successor is retired only after its predecessor is unreachable (it is the
        // root, or an eviction shard's hold keeps it); `guard` protects it as long as it
        // protects `table`.
        (!next.is_null()).then(|| unsafe { next.deref() })
    }

    /// The live node of a key.
    #[inline]
    pub(crate) fn load<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>> {
        let mut table = self.root(guard);
        loop {
            match table.lookup(hash, &eq, guard) {
                Lookup::Found(found) => return Some(found),
                Lookup::Absent => return None,
                // A slot is marked MOVED only after `next` is set.
                Lookup::Moved => table = Self::next(table, guard)?,
            }
        }
    }

    /// Iterates over live entries under `guard`.
    pub(crate) fn iter<'g>(&self, guard: &'g Guard) -> RawIter<'g, K, V>
    where
        K: 'g,
        V: 'g,
    {
        RawIter::new(self.root(guard), guard)
    }

    /// Iterates over live entries under a guard the iterator owns.
    pub(crate) fn owned_iter(&self, guard: Guard) -> OwnedIter<K, V> {
        let root = self.root.load(Ordering::Acquire, &guard).as_raw();
        // SAFETY: `root` was loaded under `guard`, which the iterator keeps.
        unsafe { OwnedIter::new(root, guard) }
    }

    /// Lets go of a shard's base when the cache is dropped (`&mut self`: no thread is left), so
    /// that the tables only it held are freed with the rest.
    pub(crate) fn drop_base(&mut self, base: QueueBase<K, V>) {
        // SAFETY: `&mut self`: nothing runs concurrently, so tables are freed at once.
        let guard = unsafe { epoch::unprotected() };
        // SAFETY: the shard's hold keeps its base allocated.
        let mut table = unsafe { base.table.as_ref() };
        let root = self.root(guard);
        while table.generation < root.generation {
            let next = Self::next(table, guard).expect("tables up to the root are chained");
            if table.release_shard_hold() {
                // SAFETY: as in `rebase`; no other thread exists.
                unsafe { guard.defer_destroy(Shared::from(table as *const Table<K, V>)) };
            }
            table = next;
        }
    }

    /// The queue base of a new eviction policy: the first table, whose holds count every shard.
    pub(crate) fn queue_base(&self) -> QueueBase<K, V> {
        // SAFETY: nothing else can have resized a table no policy has used yet; the unprotected
        // guard only reads the pointer.
        let root = self
            .root
            .load(Ordering::Acquire, unsafe { epoch::unprotected() });
        QueueBase {
            table: NonNull::new(root.as_raw().cast_mut()).expect("the root is never null"),
        }
    }
}

impl<K, V, S> RawTable<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The hash of a key, as the table places it.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Swings `current`'s slot from its node to `new`: the compare-and-swap every write to an
    /// existing key goes through. On success the old node is retired (it stays readable through
    /// `current` until the guard drops) and the new one is returned, found in the same slot. It
    /// fails, handing `new` back, if the key was written or removed since `current` was found.
    pub(crate) fn compare_exchange<'g>(
        &self,
        current: &Found<'g, K, V>,
        new: NewNode<K, V>,
        guard: &'g Guard,
    ) -> Result<Found<'g, K, V>, NewNode<K, V>> {
        let new = new.into_shared();
        let (mut table, mut index) = (current.table, current.index);
        loop {
            match table.replace(index, current.node, new, guard) {
                Ok(()) => {
                    // SAFETY: the old node is unreachable now (its slot points elsewhere, and a
                    // node is in one slot only); readers that loaded it hold guards.
                    unsafe { retire(current.node, guard) };
                    return Ok(Found {
                        table,
                        index,
                        node: new,
                    });
                }
                Err(word) => match self.chase(table, index, word, current.node, guard) {
                    Some(moved) => (table, index) = moved,
                    None => {
                        // SAFETY: `new` was never published; this thread still owns it.
                        return Err(unsafe { NewNode::from_shared(new) });
                    }
                },
            }
        }
    }

    /// Removes `current`'s entry if its slot still holds the node it was found with, leaving the
    /// slot as `freed` says. On success the value stays readable through `current` until the
    /// guard drops.
    pub(crate) fn remove(&self, current: &Found<'_, K, V>, freed: Freed, guard: &Guard) -> bool {
        let (mut table, mut index) = (current.table, current.index);
        loop {
            match table.remove(index, current.node, freed, guard) {
                Ok(taken) => {
                    self.len.add(-1);
                    // SAFETY: the node is in no slot now; readers that loaded it hold guards.
                    // (It is `current.node` but in the deliberately broken build, where it is
                    // whatever node the slot held, and the only one this removal took.)
                    unsafe { retire(taken, guard) };
                    return true;
                }
                Err(word) => match self.chase(table, index, word, current.node, guard) {
                    Some(moved) => (table, index) = moved,
                    None => return false,
                },
            }
        }
    }

    /// Removes `found`'s entry whatever node it holds by now (eviction chooses a key, not a
    /// value). Returns the node removed, or `None` if someone else removed the key first.
    pub(crate) fn remove_current<'g>(
        &self,
        found: &Found<'g, K, V>,
        freed: Freed,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>> {
        let mut current = *found;
        loop {
            if self.remove(&current, freed, guard) {
                return Some(current);
            }
            match self.resolve_at(current.table, current.index, guard) {
                Slot::Live(now) => current = now,
                Slot::Pending(_) | Slot::Gone => return None,
            }
        }
    }

    /// After a failed swing of slot `index` from `node`, which found `word` there instead:
    /// where the same node lives now if a resize moved it (helping the copy finish first if the
    /// slot is frozen), or `None` if the slot moved on from `node`.
    fn chase<'g>(
        &self,
        table: &'g Table<K, V>,
        index: usize,
        word: Word<'g, K, V>,
        node: Shared<'g, Node<K, V>>,
        guard: &'g Guard,
    ) -> Option<(&'g Table<K, V>, usize)> {
        let mut word = word;
        loop {
            match word {
                Word::Node { node: n, frozen } if n == node && frozen => {
                    let next = Self::next(table, guard).expect("a frozen slot has a successor");
                    self.help_copy(table, next, guard);
                    word = table.load(index, guard);
                }
                Word::Moved(Some(moved)) => {
                    let next = Self::next(table, guard).expect("a moved slot has a successor");
                    return Some((next, moved));
                }
                Word::Removing => {
                    // A removal racing this write is between two steps: its outcome decides.
                    spin_wait();
                    word = table.load(index, guard);
                }
                _ => return None,
            }
        }
    }

    /// Links a new node for a key not live in the table. If the key is live, nothing is linked
    /// and the node comes back with the live entry.
    ///
    /// The caller serializes inserts of one key with [`RawTable::lock_key`]: a slot freed by a
    /// removal can be claimed again, so two concurrent inserts of one key could otherwise both
    /// find it absent and link it twice.
    pub(crate) fn insert<'g>(
        &self,
        hash: u64,
        node: NewNode<K, V>,
        guard: &'g Guard,
    ) -> Result<Found<'g, K, V>, Rejected<'g, K, V>> {
        let node = node.into_shared();
        // SAFETY: `node` is this thread's until it is linked.
        let key = &unsafe { node.deref() }.key;
        loop {
            let table = self.writable_table(guard);
            match table.find_free(hash, |k| k == key, guard) {
                Ok(free) => match table.claim(&free, node, hash) {
                    Claim::Lost => {}
                    linked => {
                        self.len.add(1);
                        self.inserts.add(1);
                        if linked == Claim::LinkedAtLimit {
                            self.start_resize(table, guard);
                        }
                        return Ok(Found {
                            table,
                            index: free.index,
                            node,
                        });
                    }
                },
                Err(Some(existing)) => {
                    return Err(Rejected {
                        // SAFETY: the node was never published; this thread owns it.
                        node: unsafe { NewNode::from_shared(node) },
                        existing,
                    });
                }
                Err(None) => self.start_resize(table, guard),
            }
        }
    }

    /// Where slot `index` of `table` leads now, for an eviction queue (or a writer that lost a
    /// race and looks again): through a copy in progress (helped to its end) and any resizes
    /// since, to the live node, a pending slot, or nothing.
    #[inline(never)]
    fn resolve_at<'g>(
        &self,
        table: &'g Table<K, V>,
        index: usize,
        guard: &'g Guard,
    ) -> Slot<'g, K, V> {
        let (mut table, mut index) = (table, index);
        loop {
            match table.load(index, guard) {
                Word::Node {
                    node,
                    frozen: false,
                } => return Slot::Live(Found { table, index, node }),
                Word::Node { frozen: true, .. } => {
                    let next = Self::next(table, guard).expect("a frozen slot has a successor");
                    self.help_copy(table, next, guard);
                }
                Word::Moved(Some(moved)) => {
                    table = Self::next(table, guard).expect("a moved slot has a successor");
                    index = moved;
                }
                Word::Pending => return Slot::Pending(PendingSlot { table, index }),
                Word::Removing => spin_wait(),
                Word::Moved(None) | Word::Empty | Word::Tombstone => return Slot::Gone,
            }
        }
    }

    /// Where a queue entry of `base` (its slot index there) leads now. The caller is the shard
    /// that owns `base`, under its lock.
    #[inline]
    pub(crate) fn resolve<'g>(
        &self,
        base: &QueueBase<K, V>,
        index: u32,
        guard: &'g Guard,
    ) -> Slot<'g, K, V> {
        // SAFETY: the shard's hold keeps its base allocated, and `guard` is held for 'g, through
        // which the base would be retired once the shard lets go of it.
        let table = unsafe { base.table.as_ref() };
        let index = index as usize;
        // The common case inline (the key's node, in the base), the rest out of line.
        match table.load(index, guard) {
            Word::Node {
                node,
                frozen: false,
            } => Slot::Live(Found { table, index, node }),
            _ => self.resolve_at(table, index, guard),
        }
    }

    /// Starts loading the cache line of a queue entry's slot, for a hand that will visit it soon
    /// (queue heads are cold: they were queued a whole queue length ago).
    #[inline]
    pub(crate) fn prefetch_slot(&self, base: &QueueBase<K, V>, index: u32) {
        // SAFETY: as in `resolve`; the line is only prefetched.
        unsafe { base.table.as_ref() }.prefetch(index as usize);
    }

    /// Frees a pending slot the queue has dropped.
    pub(crate) fn release(&self, pending: PendingSlot<'_, K, V>) {
        pending.table.release_pending(pending.index);
    }

    /// Whether resizes have completed since `base`: the shard should [`rebase`] onto the root.
    ///
    /// [`rebase`]: RawTable::rebase
    pub(crate) fn behind_root(&self, base: &QueueBase<K, V>, guard: &Guard) -> bool {
        // SAFETY: the shard's hold keeps its base allocated.
        self.root(guard).generation > unsafe { base.table.as_ref() }.generation
    }

    /// Moves a shard's queue from `base` to the newest table it can (the one `found` was linked
    /// in, else the root): `translate` is given every slot index of the old base, in queue
    /// order, and keeps those that still lead to a node, with their new index. Every table the
    /// shard moves past loses its hold, and the last hold retires it.
    pub(crate) fn rebase(
        &self,
        base: &mut QueueBase<K, V>,
        found: Option<&Found<'_, K, V>>,
        guard: &Guard,
        translate: impl FnOnce(&mut dyn FnMut(u32) -> Option<u32>),
    ) {
        let target = found.map_or_else(|| self.root(guard), |found| found.table);
        // SAFETY: the shard's hold keeps its base allocated, and every table after it in the
        // chain is held by the shard too, until it moves past them below.
        let from = unsafe { base.table.as_ref() };
        if target.generation <= from.generation {
            return;
        }
        // Every table before `target` has been copied in full (a key is linked in, and the
        // root swings to, a table only once its predecessors' copies are complete), so all
        // their slots are final: MOVED, with the index they went to or none.
        translate(&mut |index| Self::follow_moves(from, index as usize, target, guard));
        let mut passed = from;
        while passed.generation < target.generation {
            let next = Self::next(passed, guard).expect("tables up to the target are chained");
            if passed.release_shard_hold() {
                // SAFETY: no shard indexes into `passed` any more and it is not the root (the
                // root is never older than a table a shard has moved to); readers that reached
                // it hold guards.
                unsafe { guard.defer_destroy(Shared::from(passed as *const Table<K, V>)) };
            }
            passed = next;
        }
        base.table = NonNull::from(target);
    }

    /// Where slot `index` of `from` went in `target`, a later table, following the `MOVED`
    /// indexes of every table in between (all copied in full, so their slots are final); `None`
    /// if a copy dropped the slot.
    fn follow_moves(
        from: &Table<K, V>,
        index: usize,
        target: &Table<K, V>,
        guard: &Guard,
    ) -> Option<u32> {
        let (mut table, mut index) = (from, index);
        while table.generation < target.generation {
            match table.load(index, guard) {
                Word::Moved(Some(moved)) => {
                    table = Self::next(table, guard)?;
                    index = moved;
                }
                _ => return None,
            }
        }
        u32::try_from(index).ok()
    }

    /// The slot index in `base`'s table of a key linked as `found`, for a shard that queues it
    /// after linking it outside the shard's lock: the shard may have moved its base past the
    /// table the key was linked in meanwhile. `None` if the copy dropped the slot (the key was
    /// removed before it). `base` must not be behind `found` ([`QueueBase::is_behind`]).
    pub(crate) fn index_in(
        &self,
        base: &QueueBase<K, V>,
        found: &Found<'_, K, V>,
        guard: &Guard,
    ) -> Option<u32> {
        // SAFETY: the shard's hold keeps its base allocated.
        let target = unsafe { base.table.as_ref() };
        debug_assert!(found.table.generation <= target.generation);
        // Every table before the base has been copied in full (a shard's base is a table a key
        // was linked in, or the root, and both come only after their predecessors' copies).
        Self::follow_moves(found.table, found.index, target, guard)
    }

    /// The newest table, after helping finish every copy in progress on the way to it.
    fn writable_table<'g>(&self, guard: &'g Guard) -> &'g Table<K, V> {
        let mut table = self.root(guard);
        while let Some(next) = Self::next(table, guard) {
            self.help_copy(table, next, guard);
            table = next;
        }
        table
    }

    /// Installs a successor for `table` unless one exists: twice the size when 7/16 of its
    /// slots are live or it churns fast, else the same size (a rehash that drops tombstones).
    ///
    /// It churns fast when it took fewer inserts since it was built than it has slots: a table
    /// whose tombstones fill it that fast should grow rather than be rehashed (each rehash copies
    /// every slot), and at a lower load removals leave far fewer tombstones (a removal in a group
    /// that still has a never-used slot leaves none).
    fn start_resize(&self, table: &Table<K, V>, guard: &Guard) {
        if !table.next.load(Ordering::Acquire, guard).is_null() {
            return;
        }
        let slots = table.slot_count();
        let inserts = self.inserts.sum();
        let churns = inserts.saturating_sub(table.created_at_insert) < slots;
        let groups = if self.len() * 16 >= slots * 7 || churns {
            table.group_count() * 2
        } else {
            table.group_count()
        };
        // The loser of a race drops its allocation.
        let _ = table.next.compare_exchange(
            Shared::null(),
            Owned::new(Table::new(
                groups,
                table.generation + 1,
                self.shards,
                inserts,
            )),
            Ordering::AcqRel,
            Ordering::Acquire,
            guard,
        );
    }

    /// Copies chunks of `table` into `next` until none is left to claim, then waits until every
    /// helper has finished its chunk.
    fn help_copy(&self, table: &Table<K, V>, next: &Table<K, V>, guard: &Guard) {
        let hash_of = |key: &K| self.hash(key);
        let chunk = COPY_CHUNK.min(table.group_count() / 2).max(1);
        while let Some(range) = table.claim_copy_chunk(chunk) {
            let count = range.len();
            for group in range {
                table.copy_group(group, next, &hash_of, guard);
            }
            if table.finish_copy_chunk(count) {
                self.advance_root(guard);
            }
        }
        while !table.copy_complete() {
            spin_wait();
        }
    }

    /// Swings the root past every table whose copy is complete. Without eviction shards the old
    /// table is retired at once; with them, by the last shard that moves past it.
    fn advance_root(&self, guard: &Guard) {
        loop {
            let root = self.root.load(Ordering::Acquire, guard);
            // SAFETY: as in `root`.
            let table = unsafe { root.deref() };
            let next = table.next.load(Ordering::Acquire, guard);
            if next.is_null() || !table.copy_complete() {
                return;
            }
            if self
                .root
                .compare_exchange(root, next, Ordering::AcqRel, Ordering::Acquire, guard)
                .is_ok()
                && self.shards == 0
            {
                // SAFETY: the table is no longer reachable from the root; every slot is MOVED so
                // it owns no node. Threads that reached it hold guards.
                unsafe { guard.defer_destroy(root) };
            }
        }
    }
}

/// Destroys a node once no thread can be reading it, keeping its memory for this thread's next
/// allocation of the same layout (see [`recycle`]).
///
/// # Safety
///
/// As for `Guard::defer_destroy`: `retired` is unreachable for threads that pin from now on,
/// and it is retired once.
unsafe fn retire<K, V>(retired: Shared<'_, Node<K, V>>, guard: &Guard) {
    let extended = retired.tag() & node::EXTRAS != 0;
    let retired = NonNull::new(retired.as_raw().cast_mut())
        .expect("only nodes that were reachable are retired");
    // SAFETY: the caller's contract is `defer_destroy`'s, and the closure does what it would: it
    // drops the node once every guard that could have loaded it is gone, as the layout its tag
    // says, which is how `NewNode::new` allocated it.
    unsafe { guard.defer_unchecked(move || node::release(retired, extended)) };
}

impl<K, V, S> Drop for RawTable<K, V, S> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach the table, so nothing is concurrently
        // read and destroying at once is sound.
        let guard = unsafe { epoch::unprotected() };
        // Writers finish every copy they start, so a chain longer than one table remains only if
        // a thread panicked in the middle of a copy. Then a node may sit in two tables (frozen in
        // the old one, linked in the new one): free each node once, and never resume the copy.
        // (Tables the eviction shards still held were freed when the cache dropped its policy.)
        let mut tables = Vec::new();
        let mut table = self.root.load(Ordering::Relaxed, guard);
        while !table.is_null() {
            tables.push(table);
            // SAFETY: tables in the chain are owned by `self` until freed below.
            table = unsafe { table.deref() }.next.load(Ordering::Relaxed, guard);
        }
        let mut freed = std::collections::HashSet::new();
        let chained = tables.len() > 1;
        for table in &tables {
            // SAFETY: the tables in the chain are owned by `self` until freed below, and no other
            // thread can reach them (`&mut self`).
            let t = unsafe { &mut *table.as_raw().cast_mut() };
            for word in t.words_mut() {
                let Word::Node { node, .. } = Word::decode(word) else {
                    continue;
                };
                if chained && !freed.insert(node.as_raw()) {
                    continue;
                }
                let extended = node.tag() & node::EXTRAS != 0;
                let node = NonNull::new(node.as_raw().cast_mut()).expect("a node is never null");
                // SAFETY: nodes still in a slot are owned by the table, and are freed once.
                unsafe { node::release(node, extended) };
            }
        }
        for table in tables {
            // SAFETY: the tables are owned by `self`; their nodes were freed above.
            drop(unsafe { table.into_owned() });
        }
    }
}

/// Starts loading the cache line at `address`, for code that will read it soon. Safe for any
/// address: the policy uses it on its own tables too.
#[inline]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address, and reads
    // nothing into the program. (`unused_unsafe`: newer compilers declare the intrinsic safe.)
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = address;
}

#[cfg(test)]
mod tests;
