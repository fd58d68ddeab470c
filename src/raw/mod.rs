//! The raw concurrent table: all of the crate's `unsafe` and its lock-free protocols.
//!
//! The public [`Cache`](crate::Cache) is a thin layer over [`RawTable`]: it hashes keys, issues
//! versions and picks the guard; this module keeps keys, entries and value nodes alive and
//! consistent.
//!
//! ## Two levels of atomicity
//!
//! * **Value level** ([`entry`]): every write to an existing key is one compare-and-swap on the
//!   entry's value pointer, from the node the writer read to a new node. Reads are a probe and two
//!   pointer loads. Removal seals the value pointer, which makes the entry dead for every racing
//!   writer; only then is the entry unlinked from its slot.
//! * **Slot level** ([`table`]): linking a new entry claims a free slot (never used, or a
//!   tombstone); unlinking frees it again. Inserts of one key are serialized by the caller (an
//!   eviction shard's lock, or [`RawTable::lock_key`]), so a key is linked at most once.
//!
//! ## Resizing
//!
//! When a table's claimed slots (entries and tombstones) reach 7/8 of it, a writer installs a
//! successor (twice the size when it is half live or churns fast, else the same size, a rehash
//! that drops the tombstones) in `next`. From then on:
//!
//! * Writers that need a slot (link, unlink) first help copy: they claim chunks of groups and
//!   copy them, then wait for the other helpers' chunks, and only then work in the successor. So
//!   while a copy is running, the successor holds nothing but copies, which keeps probing simple.
//! * A slot is copied by freezing its entry pointer (flag `FROZEN`), linking the same pointer in
//!   the successor, and marking the old slot `MOVED`. Entries are moved, never cloned, so a value
//!   node and its version are the same object before and after; a value-level CAS that started
//!   before the resize works after it.
//! * Readers never wait and never copy: they probe the table they loaded, treat a frozen entry as
//!   the live one (it is the same record the successor gets), and if they met a `MOVED` slot
//!   without finding the key they look again in `next`.
//! * The helper that completes a copy swings the root to the successor and retires the old table.
//!
//! ## Reclamation
//!
//! Entries, value nodes and tables are retired through crossbeam-epoch: a pointer loaded under a
//! guard stays valid until the guard is dropped. Addresses are only compared under the guard they
//! were loaded with, so a freed and reused address can never make a stale CAS succeed.

mod counter;
pub(crate) use self::counter::Counters;
pub(crate) mod entry;
mod iter;
mod queued;
mod recycle;
mod table;

use crossbeam_epoch::{Atomic, Guard, Owned, Shared};
use crossbeam_utils::CachePadded;

use self::counter::Counter;
pub(crate) use self::entry::Found;
use self::entry::{Entry, ValueNode, LINKED, QUEUED, SEALED};
pub(crate) use self::iter::{OwnedIter, RawIter};
pub(crate) use self::queued::QueuedEntry;
use self::table::{Claim, Lookup, Table, Word};
use crate::sync::{epoch, spin_wait, AtomicU64, AtomicU8, Mutex, MutexGuard, Ordering};
use crate::version::Version;

/// Groups copied per claimed chunk during a resize (about a hundred slots).
const COPY_CHUNK: usize = 16;
/// The largest table allocated up front (about 32 MiB, for caches of up to ~2.9M entries);
/// larger caches grow by resizing.
const MAX_PRESIZED_GROUPS: usize = 1 << 19;
/// Stripes of the insert locks of a table without eviction shards.
#[cfg(not(loom))]
const INSERT_STRIPES: usize = 64;
#[cfg(loom)]
const INSERT_STRIPES: usize = 1;

/// The result of linking a new entry when the key turned out to be live already.
pub(crate) struct Rejected<'g, K, V> {
    pub(crate) key: K,
    pub(crate) node: NewNode<V>,
    pub(crate) existing: Found<'g, K, V>,
}

/// A value node ready to be stored (allocated once, reused across retries of a loop).
pub(crate) struct NewNode<V>(Owned<ValueNode<V>>);

impl<V> NewNode<V> {
    pub(crate) fn new(
        value: V,
        version: Version,
        weight: u32,
        expires_at: u64,
        idle_expires_at: u64,
    ) -> Self {
        NewNode(Owned::from(recycle::boxed(ValueNode {
            version,
            value,
            weight,
            expires_at: AtomicU64::new(expires_at),
            idle_expires_at: AtomicU64::new(idle_expires_at),
        })))
    }

    pub(crate) fn weight(&self) -> u32 {
        self.0.weight
    }

    pub(crate) fn version(&self) -> Version {
        self.0.version
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
        self.0.into_box().value
    }
}

pub(crate) struct RawTable<K, V> {
    root: Atomic<Table<K, V>>,
    len: Counter,
    /// Serialize inserts of one key where no eviction shard's lock does ([`RawTable::lock_key`]).
    insert_locks: Box<[CachePadded<Mutex<()>>]>,
}

impl<K, V> RawTable<K, V> {
    /// A table sized so that `capacity` entries fit without a resize (up to a limit).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let groups = Table::<K, V>::groups_for(capacity).min(MAX_PRESIZED_GROUPS);
        RawTable {
            root: Atomic::new(Table::new(groups)),
            len: Counter::new(),
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

    /// The live entry of a key, with its current value node.
    pub(crate) fn load<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>> {
        let mut table = self.root.load(Ordering::Acquire, guard);
        loop {
            // SAFETY: the root and every `next` are non-null tables retired only after they are
            // unreachable from the root, through `guard`'s collector.
            let t = unsafe { table.deref() };
            match t.lookup(hash, &eq, guard) {
                Lookup::Found(found) => return Some(found),
                Lookup::Absent => return None,
                // A slot is marked MOVED only after `next` is set.
                Lookup::Moved => table = t.next.load(Ordering::Acquire, guard),
            }
        }
    }

    /// Swings `found`'s entry from the node it was found with to `new`: the value-level
    /// compare-and-swap every write to an existing key goes through. Fails, handing `new` back,
    /// if the entry changed or was removed since it was found.
    pub(crate) fn compare_exchange(
        &self,
        found: &Found<'_, K, V>,
        new: NewNode<V>,
        guard: &Guard,
    ) -> Result<(), NewNode<V>> {
        match found.entry().value.compare_exchange(
            found.node,
            new.0,
            Ordering::AcqRel,
            Ordering::Acquire,
            guard,
        ) {
            Ok(_) => {
                // SAFETY: the old node is unreachable now (the entry points elsewhere and nodes are
                // referenced from nowhere else); readers that loaded it hold guards.
                unsafe { retire(found.node, guard) };
                Ok(())
            }
            Err(err) => Err(NewNode(err.new)),
        }
    }

    /// Removes `found`'s entry if it still holds the node it was found with. On success the
    /// value stays readable through `found` until `guard` is dropped.
    pub(crate) fn remove(&self, found: &Found<'_, K, V>, guard: &Guard) -> bool {
        if cfg!(cascache_broken_seal) {
            // Deliberately broken build for the linearizability checker's negative control:
            // unlink without sealing, so a racing CAS can land on a removed entry.
            self.len.add(-1);
            self.unlink(found.entry, guard);
            return true;
        }
        let sealed = found.node.with_tag(SEALED);
        if found
            .entry()
            .value
            .compare_exchange(
                found.node,
                sealed,
                Ordering::AcqRel,
                Ordering::Acquire,
                guard,
            )
            .is_err()
        {
            return false;
        }
        self.len.add(-1);
        // SAFETY: the node is sealed, so no reader will return it and no writer can replace it;
        // threads that loaded it before hold guards.
        unsafe { retire(found.node, guard) };
        self.unlink(found.entry, guard);
        true
    }

    /// Removes `found`'s entry whatever value it holds by now. Returns the entry with the node
    /// that was sealed, or `None` if someone else removed it first.
    pub(crate) fn remove_current<'g>(
        &self,
        found: &Found<'g, K, V>,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>> {
        let mut current = *found;
        loop {
            if self.remove(&current, guard) {
                return Some(current);
            }
            let node = found.entry().value.load(Ordering::Acquire, guard);
            if node.tag() & SEALED != 0 {
                return None;
            }
            // SAFETY: the entry is alive under `guard` and `node` (non-null) was loaded from it.
            current = unsafe { Found::new(found.entry, node) };
        }
    }

    /// Links a new entry for a key not live in the table. If the key is live, nothing is linked
    /// and the key and value come back with the live entry.
    ///
    /// The caller serializes inserts of one key (by its eviction shard's lock, or
    /// [`RawTable::lock_key`]): a slot freed by a removal can be claimed again, so two
    /// concurrent inserts of one key could otherwise both find it absent and link it twice.
    ///
    /// With `queued`, the entry starts owned by an eviction queue too, and the caller must hand
    /// the returned [`QueuedEntry`] to one (the entry is then freed only once both the table and
    /// the queue have let go of it).
    pub(crate) fn insert<'g>(
        &self,
        hash: u64,
        key: K,
        node: NewNode<V>,
        queued: bool,
        guard: &'g Guard,
    ) -> Result<Option<QueuedEntry<K, V>>, Rejected<'g, K, V>>
    where
        K: Eq,
    {
        let owners = if queued { LINKED | QUEUED } else { LINKED };
        let entry: Owned<Entry<K, V>> = Owned::from(recycle::boxed(Entry {
            hash,
            key,
            value: Atomic::from(node.0),
            owners: AtomicU8::new(owners),
            frequency: AtomicU8::new(0),
        }));
        let entry = entry.into_shared(guard);
        loop {
            let table = self.writable_table(guard);
            // SAFETY: `entry` is this thread's until it is linked.
            let key = &unsafe { entry.deref() }.key;
            match table.find_free(hash, |k| k == key, guard) {
                Ok(free) => match table.claim(&free, entry, hash) {
                    Claim::Linked => {
                        self.len.add(1);
                        // SAFETY: just linked with the QUEUED bit set, whose share this handle is.
                        return Ok(queued.then(|| unsafe { QueuedEntry::new(entry) }));
                    }
                    Claim::Lost => {}
                    Claim::Full => self.start_resize(table, guard),
                },
                Err(Some(existing)) => {
                    // SAFETY: the entry was never published; this thread owns it.
                    let Entry { key, value, .. } = *unsafe { entry.into_owned() }.into_box();
                    // SAFETY: the node was never published either.
                    let node = NewNode(unsafe { value.into_owned() });
                    return Err(Rejected {
                        key,
                        node,
                        existing,
                    });
                }
                Err(None) => self.start_resize(table, guard),
            }
        }
    }

    /// Unlinks a sealed entry from its slot and retires it.
    fn unlink(&self, entry: Shared<'_, Entry<K, V>>, guard: &Guard) {
        // SAFETY: the caller found the entry under `guard` and it is retired only here.
        let hash = unsafe { entry.deref() }.hash;
        loop {
            let table = self.writable_table(guard);
            match table.position_of(entry, hash) {
                Ok(Some(index)) => {
                    if table.unlink_at(index, entry) {
                        // SAFETY: the entry is in no slot of any table now (a copy moves it, so it
                        // was in exactly this one), so the table's share can go.
                        unsafe { release(entry, LINKED, guard) };
                        return;
                    }
                    // A copy froze the slot: help it, then unlink from the successor.
                }
                Ok(None) => {
                    debug_assert!(
                        false,
                        "a sealed entry is linked until its remover unlinks it"
                    );
                    return;
                }
                Err(()) => {}
            }
        }
    }

    /// The newest table, after helping finish every copy in progress on the way to it.
    fn writable_table<'g>(&self, guard: &'g Guard) -> &'g Table<K, V> {
        let mut table = self.root.load(Ordering::Acquire, guard);
        loop {
            // SAFETY: as in `find`.
            let t = unsafe { table.deref() };
            let next = t.next.load(Ordering::Acquire, guard);
            if next.is_null() {
                return t;
            }
            self.help_copy(t, next, guard);
            table = next;
        }
    }

    /// Installs a successor for `table` unless one exists: twice the size, or the same size when
    /// most claimed slots are tombstones (a rehash that drops them).
    fn start_resize(&self, table: &Table<K, V>, guard: &Guard) {
        if !table.next.load(Ordering::Acquire, guard).is_null() {
            return;
        }
        let groups = if table.live_estimate() * 2 >= table.limit() || table.churns() {
            table.group_count() * 2
        } else {
            table.group_count()
        };
        // The loser of a race drops its allocation.
        let _ = table.next.compare_exchange(
            Shared::null(),
            Owned::new(Table::new(groups)),
            Ordering::AcqRel,
            Ordering::Acquire,
            guard,
        );
    }

    /// Copies chunks of `table` into `next` until none is left to claim, then waits until every
    /// helper has finished its chunk.
    fn help_copy(&self, table: &Table<K, V>, next: Shared<'_, Table<K, V>>, guard: &Guard) {
        // SAFETY: `next` was loaded under `guard` from a reachable table and is non-null.
        let next_table = unsafe { next.deref() };
        let chunk = COPY_CHUNK.min(table.group_count() / 2).max(1);
        while let Some(range) = table.claim_copy_chunk(chunk) {
            let count = range.len();
            for group in range {
                table.copy_group(group, next_table, guard);
            }
            if table.finish_copy_chunk(count) {
                self.advance_root(guard);
            }
        }
        while !table.copy_complete() {
            spin_wait();
        }
    }

    /// Swings the root past every table whose copy is complete, retiring them.
    fn advance_root(&self, guard: &Guard) {
        loop {
            let root = self.root.load(Ordering::Acquire, guard);
            // SAFETY: as in `find`.
            let table = unsafe { root.deref() };
            let next = table.next.load(Ordering::Acquire, guard);
            if next.is_null() || !table.copy_complete() {
                return;
            }
            if self
                .root
                .compare_exchange(root, next, Ordering::AcqRel, Ordering::Acquire, guard)
                .is_ok()
            {
                // SAFETY: the table is no longer reachable from the root; every slot is MOVED so
                // it owns no entry. Threads that reached it hold guards.
                unsafe { guard.defer_destroy(root) };
            }
        }
    }

    /// Releases eviction-queue shares while the cache is being dropped: `&mut self` proves no
    /// other thread can reach the entries, so they are freed at once when the table has let go.
    pub(crate) fn release_queued(&mut self, queued: Vec<QueuedEntry<K, V>>) {
        // SAFETY: `&mut self`: no other thread uses the table or its entries, so destroying
        // without waiting for a grace period is sound.
        let guard = unsafe { epoch::unprotected() };
        for entry in queued {
            entry.release(guard);
        }
    }

    /// Iterates over live entries under `guard`.
    pub(crate) fn iter<'g>(&self, guard: &'g Guard) -> RawIter<'g, K, V>
    where
        K: 'g,
        V: 'g,
    {
        RawIter::new(self.root.load(Ordering::Acquire, guard), guard)
    }

    /// Iterates over live entries under a guard the iterator owns.
    pub(crate) fn owned_iter(&self, guard: Guard) -> OwnedIter<K, V> {
        let root = self.root.load(Ordering::Acquire, &guard).as_raw();
        // SAFETY: `root` was loaded under `guard`, which the iterator keeps.
        unsafe { OwnedIter::new(root, guard) }
    }
}

/// Destroys a value node or an entry once no thread can be reading it, keeping its memory for
/// this thread's next allocation of the same layout (see [`recycle`]).
///
/// # Safety
///
/// As for `Guard::defer_destroy`: `retired` is unreachable for threads that pin from now on,
/// and it is retired once.
unsafe fn retire<T>(retired: Shared<'_, T>, guard: &Guard) {
    let retired = std::ptr::NonNull::new(retired.as_raw().cast_mut())
        .expect("only nodes and entries that were reachable are retired");
    // SAFETY: the caller's contract is `defer_destroy`'s, and the closure does what it would: it
    // drops the object once every guard that could have loaded it is gone. Nodes and entries are
    // allocated as `Box`es (`recycle::boxed`), which `release` needs.
    unsafe { guard.defer_unchecked(move || recycle::release(retired)) };
}

/// Drops one owner's share (`LINKED` or `QUEUED`) of an entry, retiring it with the last share.
///
/// # Safety
///
/// The caller must hold the `share` bit of `entry` (it is set and nobody else will clear it), and
/// must not use the entry through that share afterwards.
unsafe fn release<K, V>(entry: Shared<'_, Entry<K, V>>, share: u8, guard: &Guard) {
    // SAFETY: the caller's share keeps the entry alive until this line.
    let owners = unsafe { entry.deref() }
        .owners
        .fetch_and(!share, Ordering::AcqRel);
    if owners & !share == 0 {
        // SAFETY: no owner is left: the entry is in no table and no queue. Threads that reached
        // it through a table hold guards.
        unsafe { retire(entry, guard) };
    }
}

impl<K, V> Drop for RawTable<K, V> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach the table, so nothing is concurrently
        // read and destroying at once is sound.
        let guard = unsafe { epoch::unprotected() };
        // Writers finish every copy they start, so a chain longer than one table remains only if
        // a thread panicked in the middle of a copy. Then an entry may sit in two tables (frozen
        // in the old one, linked in the new one): free each entry once, and never resume the copy.
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
                let Word::Entry { entry, .. } = Word::decode(word) else {
                    continue;
                };
                if chained && !freed.insert(entry.as_raw()) {
                    continue;
                }
                // SAFETY: entries still in a slot are owned by the table (the eviction queues have
                // released theirs: the cache drops its policy first), and are freed once.
                let entry = unsafe { entry.into_owned() };
                let node = entry.value.load(Ordering::Relaxed, guard);
                if node.tag() & SEALED == 0 {
                    // SAFETY: an unsealed node is owned by its entry (sealed ones were retired).
                    drop(unsafe { node.into_owned() });
                }
                drop(entry);
            }
        }
        for table in tables {
            // SAFETY: the tables are owned by `self`; their entries were freed above.
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
