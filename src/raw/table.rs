//! One open-addressed table of the chain.
//!
//! Each slot is an atomic pointer to an [`Entry`] plus a metadata byte holding a 7-bit tag of the
//! key's hash, so most probes skip a slot after reading one byte and never touch the entry. Probing
//! is linear from `hash & mask`.
//!
//! ## Slot states
//!
//! ```text
//!   EMPTY ──claim──▶ entry ──unlink──▶ TOMBSTONE
//!     │                │                   │
//!     │             (freeze)               │
//!     │                ▼                   │
//!     │         entry|FROZEN ──copied──▶ MOVED ◀──┘
//!     └──────────────────────────────────▶ MOVED
//! ```
//!
//! A slot holds at most one key over the table's life: tombstones are never reused (they are
//! dropped by the next resize). That is what makes a probe that stops at the first `EMPTY` slot
//! correct without locks: a key is always stored before the first empty slot of its probe
//! sequence, and a slot that was non-empty when a probe passed it can never later hold that key.
//! For the same reason a metadata tag, once written, describes the slot for good, until the slot
//! becomes a tombstone, whose metadata is then [`META_TOMBSTONE`]: a tombstone holds no entry, and
//! a slot never leaves the tombstone state except to become `MOVED`, which only matters to probes
//! for the key whose live entry the slot held when it was copied (and that slot's byte is its tag).
//!
//! `FROZEN` and `MOVED` appear only once a successor table exists (`next`): the resize protocol
//! is in the parent module.

use crossbeam_epoch::{Atomic, Guard, Shared};
use crossbeam_utils::CachePadded;

use super::entry::{Entry, Found, SEALED};
use crate::sync::{AtomicU8, AtomicUsize, Ordering};

/// Tag on an entry pointer in a slot: the slot is being copied to the next table.
pub(super) const FROZEN: usize = 1;
// Entries are 8-aligned, so slot pointers to them have three tag bits.
const _: () = assert!(std::mem::align_of::<Entry<u8, u8>>() >= 8);
/// Tag on a null slot: the slot's entry was removed.
pub(super) const TOMBSTONE: usize = 2;
/// Tag on a null slot: the slot has been copied; look in the next table.
pub(super) const MOVED: usize = 4;

/// Metadata byte of a slot whose tag is not known yet (empty, or claimed a moment ago).
const META_UNKNOWN: u8 = 0;
/// Metadata byte of a tombstone (never a tag: tags have the high bit set). Probes skip it without
/// loading the slot, and count it to notice runs of dead slots.
const META_TOMBSTONE: u8 = 1;

/// A link whose probe passed this many tombstones asks for a rehash instead: tombstones are never
/// reused, so a key removed and re-inserted over and over (a hot key under insert/remove churn)
/// leaves a run of them behind its home slot that every probe through it would walk, until the
/// table reaches its fill limit. A rehash (same size when the table is mostly dead) drops them.
/// Counting tombstones, not probe length, keeps a long run of live entries (a poor hasher) from
/// triggering rehash after rehash.
const DEAD_RUN_REHASH: usize = 1024;

/// The metadata tag of a hash: its top 7 bits, with the high bit set so it is never 0.
#[inline]
fn meta_tag(hash: u64) -> u8 {
    (hash >> 57) as u8 | 0x80
}

/// The entry `slot` points to (frozen or not), with its current value, if it holds the key of
/// `hash` and has not been removed.
fn live_entry_of<'g, K, V>(
    slot: Shared<'g, Entry<K, V>>,
    hash: u64,
    eq: impl Fn(&K) -> bool,
    guard: &'g Guard,
) -> Option<Found<'g, K, V>> {
    debug_assert!(!slot.is_null());
    // SAFETY: a non-null slot points to an entry that is retired only after it is unlinked,
    // through this guard's collector; the guard is held for 'g.
    let entry = unsafe { slot.deref() };
    if entry.hash != hash || !eq(&entry.key) {
        return None;
    }
    let node = entry.value.load(Ordering::Acquire, guard);
    // SAFETY: both pointers are non-null (an entry always has a node) and were loaded under
    // `guard`.
    (node.tag() & SEALED == 0).then(|| unsafe { Found::new(slot, node) })
}

/// What a probe for a key found in one table.
pub(super) enum Lookup<'g, K, V> {
    Found(Found<'g, K, V>),
    Absent,
    /// The key may have been moved to the next table.
    Moved,
}

/// Counters written by writers, kept off the cache line readers use.
struct WriteState {
    /// Slots claimed by an entry (live, dead or tombstoned): the fill level.
    claimed: AtomicUsize,
    /// Slots turned into tombstones.
    tombstones: AtomicUsize,
    /// Next slot index whose copy a helper may claim.
    copy_claim: AtomicUsize,
    /// Slots whose copy is finished; the copy is complete at `len`.
    copy_done: AtomicUsize,
}

pub(super) struct Table<K, V> {
    mask: usize,
    meta: Box<[AtomicU8]>,
    slots: Box<[Atomic<Entry<K, V>>]>,
    /// The successor while (and after) this table is copied; null otherwise.
    pub(super) next: Atomic<Table<K, V>>,
    state: CachePadded<WriteState>,
}

impl<K, V> Table<K, V> {
    /// A table of `len` slots; `len` is a power of two.
    pub(super) fn new(len: usize) -> Self {
        debug_assert!(len.is_power_of_two());
        Table {
            mask: len - 1,
            meta: (0..len).map(|_| AtomicU8::new(META_UNKNOWN)).collect(),
            slots: (0..len).map(|_| Atomic::null()).collect(),
            next: Atomic::null(),
            state: CachePadded::new(WriteState {
                claimed: AtomicUsize::new(0),
                tombstones: AtomicUsize::new(0),
                copy_claim: AtomicUsize::new(0),
                copy_done: AtomicUsize::new(0),
            }),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.mask + 1
    }

    /// Most slots writers may claim (entries and tombstones) before the table is resized.
    #[inline]
    pub(super) fn limit(&self) -> usize {
        self.len() / 4 * 3
    }

    pub(super) fn live_estimate(&self) -> usize {
        let claimed = self.state.claimed.load(Ordering::Relaxed);
        claimed.saturating_sub(self.state.tombstones.load(Ordering::Relaxed))
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    #[inline]
    pub(super) fn slot(&self, index: usize) -> &Atomic<Entry<K, V>> {
        &self.slots[index]
    }

    /// Looks for a live entry of the key in this table alone.
    pub(super) fn lookup<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        guard: &'g Guard,
    ) -> Lookup<'g, K, V> {
        let tag = meta_tag(hash);
        let mut index = self.home(hash);
        let mut moved = false;
        for _ in 0..self.len() {
            let meta = self.meta[index].load(Ordering::Relaxed);
            if meta == META_UNKNOWN || meta == tag {
                let slot = self.slots[index].load(Ordering::Acquire, guard);
                if slot.is_null() {
                    match slot.tag() {
                        TOMBSTONE => {}
                        MOVED => moved = true,
                        _ => break,
                    }
                } else if let Some(found) = live_entry_of(slot, hash, &eq, guard) {
                    return Lookup::Found(found);
                }
                // A dead entry of the key: a live one may follow (a re-insert).
            }
            index = (index + 1) & self.mask;
        }
        if moved {
            Lookup::Moved
        } else {
            Lookup::Absent
        }
    }

    /// Finds the first slot where `key` may be linked, or a live entry of it.
    ///
    /// Returns `Ok(index)` of an empty slot, `Err(Some(found))` for a live entry of the key, and
    /// `Err(None)` when the table is being resized, full, or wants a rehash (its probe passed
    /// [`DEAD_RUN_REHASH`] tombstones): the caller must start a resize and move on.
    pub(super) fn find_slot<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        start: Option<usize>,
        guard: &'g Guard,
    ) -> Result<usize, Option<Found<'g, K, V>>> {
        let tag = meta_tag(hash);
        let mut index = start.unwrap_or_else(|| self.home(hash));
        let mut dead = 0;
        for _ in 0..self.len() {
            let meta = self.meta[index].load(Ordering::Relaxed);
            if meta == META_TOMBSTONE {
                dead += 1;
            } else if meta == META_UNKNOWN || meta == tag {
                let slot = self.slots[index].load(Ordering::Acquire, guard);
                if slot.is_null() {
                    match slot.tag() {
                        TOMBSTONE => dead += 1,
                        MOVED => return Err(None),
                        // A run of tombstones this long: rehash rather than lengthen it.
                        _ if dead >= DEAD_RUN_REHASH => return Err(None),
                        _ => return Ok(index),
                    }
                } else if slot.tag() & FROZEN != 0 {
                    return Err(None);
                } else if let Some(found) = live_entry_of(slot, hash, &eq, guard) {
                    return Err(Some(found));
                }
            }
            index = (index + 1) & self.mask;
        }
        Err(None)
    }

    /// Reserves room for one more claimed slot; false when the table must be resized first.
    pub(super) fn reserve(&self) -> bool {
        let claimed = &self.state.claimed;
        if claimed.fetch_add(1, Ordering::Relaxed) < self.limit() {
            true
        } else {
            claimed.fetch_sub(1, Ordering::Relaxed);
            false
        }
    }

    pub(super) fn unreserve(&self) {
        self.state.claimed.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records the tag of a slot this thread just claimed.
    pub(super) fn set_meta(&self, index: usize, hash: u64) {
        self.meta[index].store(meta_tag(hash), Ordering::Relaxed);
    }

    /// Finds the slot holding exactly `entry` (untagged), if any, stopping at the first empty slot.
    /// Returns `Err(())` if the table is being copied and the caller must retry in the successor.
    pub(super) fn position_of(
        &self,
        entry: Shared<'_, Entry<K, V>>,
        hash: u64,
        guard: &Guard,
    ) -> Result<Option<usize>, ()> {
        let tag = meta_tag(hash);
        let mut index = self.home(hash);
        for _ in 0..self.len() {
            let meta = self.meta[index].load(Ordering::Relaxed);
            if meta == META_UNKNOWN || meta == tag {
                let slot = self.slots[index].load(Ordering::Acquire, guard);
                if slot == entry {
                    return Ok(Some(index));
                }
                if slot.with_tag(0) == entry || (slot.is_null() && slot.tag() == MOVED) {
                    return Err(());
                }
                if slot.is_null() && slot.tag() == 0 {
                    return Ok(None);
                }
            }
            index = (index + 1) & self.mask;
        }
        Ok(None)
    }

    /// Records that the slot at `index` was just turned into a tombstone by this thread.
    pub(super) fn add_tombstone(&self, index: usize) {
        self.meta[index].store(META_TOMBSTONE, Ordering::Relaxed);
        self.state.tombstones.fetch_add(1, Ordering::Relaxed);
    }

    /// Claims the next chunk of slots to copy; `None` when every chunk has been claimed.
    pub(super) fn claim_copy_chunk(&self, chunk: usize) -> Option<std::ops::Range<usize>> {
        let start = self.state.copy_claim.fetch_add(chunk, Ordering::Relaxed);
        (start < self.len()).then(|| start..(start + chunk).min(self.len()))
    }

    /// Records `count` copied slots; true for the call that completes the copy.
    pub(super) fn finish_copy_chunk(&self, count: usize) -> bool {
        self.state.copy_done.fetch_add(count, Ordering::AcqRel) + count == self.len()
    }

    /// True once every slot has been copied to `next`.
    pub(super) fn copy_complete(&self) -> bool {
        self.state.copy_done.load(Ordering::Acquire) == self.len()
    }

    /// Copies slot `index` to `next`. Only the thread that claimed the slot's chunk calls this.
    pub(super) fn copy_slot(&self, index: usize, next: &Table<K, V>, guard: &Guard) {
        let moved = Shared::null().with_tag(MOVED);
        let slot = &self.slots[index];
        let mut current = slot.load(Ordering::Acquire, guard);
        loop {
            if current.is_null() {
                // Empty or tombstone: nothing to carry over. Racing a writer's claim or a
                // remover's unlink, whoever comes second sees the other's state and adapts.
                match slot.compare_exchange(
                    current,
                    moved,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                    guard,
                ) {
                    Ok(_) => return,
                    Err(err) => current = err.current,
                }
            } else {
                debug_assert_eq!(current.tag(), 0, "only the chunk's owner freezes a slot");
                // Freeze first so that no remover can tombstone the slot while its entry is being
                // linked into `next`: a remover that meets a frozen slot helps finish the copy and
                // unlinks the entry from `next` instead.
                let frozen = current.with_tag(FROZEN);
                match slot.compare_exchange(
                    current,
                    frozen,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                    guard,
                ) {
                    Ok(_) => {
                        next.link_copy(current, guard);
                        slot.store(moved, Ordering::Release);
                        return;
                    }
                    Err(err) => current = err.current,
                }
            }
        }
    }

    /// Links an entry copied from the predecessor. Only copies write to a table while its
    /// predecessor is being copied, and the predecessor held at most `limit()` claimed slots of a
    /// table no larger than this one, so an empty slot always exists.
    fn link_copy(&self, entry: Shared<'_, Entry<K, V>>, guard: &Guard) {
        // SAFETY: the entry is frozen in the predecessor, so it is linked and cannot be retired
        // before this copy finishes; `guard` protects it.
        let hash = unsafe { entry.deref() }.hash;
        self.state.claimed.fetch_add(1, Ordering::Relaxed);
        let mut index = self.home(hash);
        let tag = meta_tag(hash);
        for _ in 0..self.len() {
            // Skip only slots of other tags. A slot with this tag must be tried (the CAS fails with
            // Acquire): skipping it on the relaxed byte alone would let this copy be published
            // (MOVED) without happening after the copy that claimed the slot, and a reader that
            // sees MOVED could then find that slot still empty.
            let meta = self.meta[index].load(Ordering::Relaxed);
            if (meta == META_UNKNOWN || meta == tag)
                && self.slots[index]
                    .compare_exchange(
                        Shared::null(),
                        entry,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                        guard,
                    )
                    .is_ok()
            {
                self.set_meta(index, hash);
                return;
            }
            index = (index + 1) & self.mask;
        }
        unreachable!("a resized table always has room for the entries copied into it");
    }
}
