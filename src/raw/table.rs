//! One open-addressed table of the chain.
//!
//! ## Layout
//!
//! Slots come in **groups** of [`GROUP_SLOTS`], one cache line each (SwissTable's idea): a word
//! of one-byte hash tags, a byte of eviction-policy state per slot, and the slots' words. A
//! lookup loads the tag word, compares every tag at once (SWAR), and loads only the words whose
//! tag matches, from the same line: a hit touches this line and then the node it points to.
//! The group count is any number (`hash → group` by a multiply, not a mask), so a table can be
//! sized to its capacity instead of the next power of two. Probing is linear over groups and
//! stops at the first group that has a never-used slot.
//!
//! ## Slot words
//!
//! ```text
//!                     ┌──write (CAS)──┐
//!                     ▼               │
//!   EMPTY ──claim──▶ node ────────────┘──remove──▶ REMOVING ──▶ EMPTY, TOMBSTONE or PENDING
//!     │               │                                              │
//!     │           (freeze)                            PENDING ──dropped by its queue──▶ TOMBSTONE
//!     │               ▼
//!     │          node|FROZEN ──copied──▶ MOVED(new index)     (anything else copies as MOVED(none))
//!     └──────────────────────────────────▶ MOVED(none)
//! ```
//!
//! Every write of a key swings its slot from the node the writer read to a new node: the
//! compare-and-swap fails if the slot moved on (another write, a removal), so two writes from
//! one version cannot both land, and a write cannot land on a removed key. A slot holding a node
//! belongs to that key for as long as it holds any node of it.
//!
//! A slot is **claimed** by a compare-and-swap of its word from EMPTY or TOMBSTONE; the claimant
//! then publishes the slot's tag, and only then is the pointer visible to lookups, which match
//! tags. Inserts of one key are serialized by the caller (an eviction shard's lock, or one of the
//! raw table's own stripes), so a key is never linked twice; inserts of different keys race only
//! for slots, which the word's compare-and-swap settles.
//!
//! Removal takes three steps so that the tag byte is written by one thread at a time: the word
//! goes from the node to REMOVING (not claimable), the tag becomes EMPTY if the group still has
//! a never-used slot (then no probe ever went past this group, and the slot can be as good as
//! new) or DELETED otherwise, and the word becomes EMPTY or TOMBSTONE to match. Tombstones are
//! reused by later inserts; when claims exhaust the never-used slots, the table is rehashed (or
//! grown) by a resize, which drops them.
//!
//! A bounded cache's eviction queues name entries by slot index. A removal that does not come
//! from its queue (a `remove`, an expiry found by a read) leaves the slot PENDING instead, so
//! that no other key takes it while the queue still names it: the queue frees it when it drops
//! the entry.
//!
//! ## Why lookups may stop at a never-used slot
//!
//! A key is linked at the first free slot of its probe sequence, searching no further than the
//! first group that has a never-used slot (tag EMPTY). A group that was full once never shows an
//! EMPTY tag again: a removal writes EMPTY only while the same group shows another EMPTY, in one
//! compare-and-swap of the tag word. So every key sits at or before the first group whose tags,
//! read at any later moment, show an EMPTY slot.
//!
//! `FROZEN` and `MOVED` appear only once a successor table exists (`next`): the resize protocol
//! is in the parent module.

use std::ops::Range;

use crossbeam_epoch::{Atomic, Guard, Shared};
use crossbeam_utils::CachePadded;

use super::counter::Counter;
use super::node::{Found, Node, EXTRAS};
use crate::sync::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Slots per group: a 64-byte line holds the tag word (8 bytes), a policy byte per slot (8) and
/// six 8-byte slot words.
pub(super) const GROUP_SLOTS: usize = 6;

/// Tag of a never-used slot.
const TAG_EMPTY: u8 = 0;
/// Tag of a slot whose key was removed while its group was full (probes go on past it).
const TAG_DELETED: u8 = 1;

/// An insert compares the table's claimed slots with its limit when its own count of claims
/// reaches a multiple of this (in a table of more than [`EXACT_GROUPS`] groups): the count is
/// striped per thread, so that inserts and removals do not all write one shared cache line, and
/// summing the stripes on every insert would cost more than it saves. The limit can be passed
/// by this many claims per thread, well within the 1/8 of slots it leaves free.
const CLAIMS_PER_CHECK: isize = 16;
/// Tables this small check their limit on every claim.
const EXACT_GROUPS: usize = 64;

/// Tag word bytes that belong to slots (the top two bytes are unused).
const SLOT_BYTES: u64 = (1 << (8 * GROUP_SLOTS)) - 1;
const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Word flag on a pointer: the slot is being copied to the next table.
pub(super) const FROZEN: usize = 1;
/// Word bit of the markers below (pointees are 8-aligned, so a pointer never has it).
const MARKER: usize = 4;
/// The low bits of a word that are not the node's address: FROZEN, and the node's own tag.
const TAG_BITS: usize = FROZEN | EXTRAS;
/// A removed slot that may be claimed again.
const TOMBSTONE: usize = MARKER;
/// A removal in progress: not claimable until the remover has written the tag.
const REMOVING: usize = MARKER | 1;
/// A removed slot that an eviction queue still names: not claimable until the queue drops it.
const PENDING: usize = MARKER | 2;
/// A slot copied to the next table; the bits above the low three hold its index there plus one
/// (0: nothing was carried over).
const MOVED: usize = MARKER | 3;
const MARKER_KIND: usize = 7;

// Nodes are 8-aligned (they hold u64s), so slot words keep three low bits for the flag and the
// markers on every target, 32-bit ones included.
const _: () = assert!(std::mem::align_of::<Node<u8, u8>>() >= 8);

/// The tag of a hash: its low seven bits, with the high bit set so it is never EMPTY or DELETED.
/// (The group comes from the high half: the two stay independent.)
#[inline]
pub(super) fn tag_of(hash: u64) -> u8 {
    (hash as u8 & 0x7F) | 0x80
}

/// 0x80 in every byte of `word` that is zero, and nothing else (exact, unlike the faster test
/// that may flag a byte above a zero one).
#[inline]
fn zero_bytes(word: u64) -> u64 {
    !(((word & !HIGH_BITS).wrapping_add(!HIGH_BITS)) | word | !HIGH_BITS)
}

/// The slots of a group whose tag byte is `tag`, as a bit mask (0x80 per matching byte).
#[inline]
fn matching(tags: u64, tag: u8) -> u64 {
    zero_bytes(tags ^ (LOW_BITS * u64::from(tag))) & SLOT_BYTES
}

/// Iterates over the slot positions of a byte mask from [`matching`].
#[inline]
fn positions(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let position = mask.trailing_zeros() as usize / 8;
        mask &= mask - 1;
        Some(position)
    })
}

/// One cache line of slots.
#[repr(C, align(64))]
pub(super) struct Group<K, V> {
    tags: AtomicU64,
    /// Eviction-policy state, one byte per slot (the top two unused).
    policy: [AtomicU8; 8],
    words: [AtomicPtr<Node<K, V>>; GROUP_SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Group<u8, u8>>() == 64);

impl<K, V> Group<K, V> {
    #[cfg(loom)]
    fn new() -> Self {
        Group {
            tags: AtomicU64::new(0),
            policy: std::array::from_fn(|_| AtomicU8::new(0)),
            words: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }
}

/// A slot word, decoded.
#[derive(Debug)]
pub(super) enum Word<'g, K, V> {
    Empty,
    Tombstone,
    Removing,
    Pending,
    /// Copied to the next table: its index there, if anything was carried over.
    Moved(Option<usize>),
    /// A node (frozen while it is being copied).
    Node {
        node: Shared<'g, Node<K, V>>,
        frozen: bool,
    },
}

impl<K, V> Clone for Word<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Word<'_, K, V> {}

impl<K, V> PartialEq for Word<'_, K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.encode() == other.encode()
    }
}

impl<'g, K, V> Word<'g, K, V> {
    #[inline]
    pub(super) fn decode(raw: *mut Node<K, V>) -> Self {
        let bits = raw as usize;
        if bits == 0 {
            Word::Empty
        } else if bits & MARKER != 0 {
            match bits & MARKER_KIND {
                TOMBSTONE => Word::Tombstone,
                REMOVING => Word::Removing,
                PENDING => Word::Pending,
                _ => Word::Moved((bits >> 3).checked_sub(1)),
            }
        } else {
            // The node pointer keeps its EXTRAS tag (see `node`); FROZEN is the slot's own.
            Word::Node {
                node: Shared::from(raw.wrapping_byte_sub(bits & TAG_BITS).cast_const())
                    .with_tag(bits & EXTRAS),
                frozen: bits & FROZEN != 0,
            }
        }
    }

    #[inline]
    fn encode(self) -> *mut Node<K, V> {
        let marker = |bits: usize| std::ptr::null_mut::<Node<K, V>>().wrapping_byte_add(bits);
        match self {
            Word::Empty => std::ptr::null_mut(),
            Word::Tombstone => marker(TOMBSTONE),
            Word::Removing => marker(REMOVING),
            Word::Pending => marker(PENDING),
            Word::Moved(index) => marker(MOVED | index.map_or(0, |i| i + 1) << 3),
            Word::Node { node, frozen } => node
                .as_raw()
                .cast_mut()
                .wrapping_byte_add(node.tag() | if frozen { FROZEN } else { 0 }),
        }
    }
}

/// Whether `node` holds the key `eq` looks for.
#[inline]
fn holds_key<K, V>(node: Shared<'_, Node<K, V>>, eq: impl Fn(&K) -> bool) -> bool {
    // SAFETY: a word points to a node that is retired only once unreachable, through the guard
    // the caller loaded it under and still holds.
    eq(&unsafe { node.deref() }.key)
}

/// What a probe for a key found in one table.
pub(super) enum Lookup<'g, K, V> {
    Found(Found<'g, K, V>),
    Absent,
    /// The key may have been moved to the next table.
    Moved,
}

/// How [`Table::claim`] went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Claim {
    Linked,
    /// Linked, and the table has reached its limit: the caller starts a resize.
    LinkedAtLimit,
    /// Another thread claimed the slot first (or a copy moved it): look again.
    Lost,
}

/// Where [`Table::find_free`] says a new key can go.
pub(super) struct Free {
    pub(super) index: usize,
    /// The word is EMPTY, else TOMBSTONE.
    pub(super) never_used: bool,
}

/// How a removal leaves its slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Freed {
    /// Free for any key (the table has no eviction queue, or the queue dropped its entry).
    Reusable,
    /// Kept for the eviction queue that still names it ([`PENDING`]).
    Pending,
}

/// Counters written by writers, kept off the cache lines readers use.
struct WriteState {
    /// Next group whose copy a helper may claim.
    copy_claim: AtomicUsize,
    /// Groups whose copy is finished; the copy is complete at `groups.len()`.
    copy_done: AtomicUsize,
    /// Eviction shards that may still index into this table once it is no longer the newest:
    /// the last of them to move past it retires it (see the parent module).
    shard_holds: AtomicUsize,
}

pub(super) struct Table<K, V> {
    groups: Box<[Group<K, V>]>,
    /// Slots whose word is not EMPTY (nodes, tombstones, pending and claims in progress),
    /// striped per thread: the fill level that triggers a resize.
    claimed: Counter,
    /// Most slots that may be claimed before the table is resized.
    limit: usize,
    /// The raw table's insert count when this table was built (see `churns` in the parent).
    pub(super) created_at_insert: usize,
    /// 0 for the first table, one more for each successor.
    pub(super) generation: u64,
    /// The successor while (and after) this table is copied; null otherwise.
    pub(super) next: Atomic<Table<K, V>>,
    state: CachePadded<WriteState>,
}

impl<K, V> Table<K, V> {
    /// A table of `groups` groups (at least one), `generation` resizes after the first, which
    /// `shards` eviction shards index into, built when the raw table had taken
    /// `created_at_insert` inserts.
    pub(super) fn new(
        groups: usize,
        generation: u64,
        shards: usize,
        created_at_insert: usize,
    ) -> Self {
        let groups = groups.max(1);
        let slots = groups * GROUP_SLOTS;
        Table {
            groups: new_groups(groups),
            claimed: Counter::new(),
            // A one-group table (the smallest, as in the loom models) resizes at half full, so
            // that a resize stays a few inserts away; bigger ones at 7/8.
            limit: if groups == 1 {
                slots / 2
            } else {
                slots * 7 / 8
            },
            created_at_insert,
            generation,
            next: Atomic::null(),
            state: CachePadded::new(WriteState {
                copy_claim: AtomicUsize::new(0),
                copy_done: AtomicUsize::new(0),
                shard_holds: AtomicUsize::new(shards),
            }),
        }
    }

    /// The fewest groups whose resize limit (7/8 of the slots) leaves room for `entries`.
    pub(super) fn groups_for(entries: usize) -> usize {
        (entries.saturating_mul(8)).div_ceil(7 * GROUP_SLOTS).max(1)
    }

    #[inline]
    pub(super) fn group_count(&self) -> usize {
        self.groups.len()
    }

    #[inline]
    pub(super) fn slot_count(&self) -> usize {
        self.groups.len() * GROUP_SLOTS
    }

    /// Takes one eviction shard's hold; true for the last, whose caller retires the table.
    pub(super) fn release_shard_hold(&self) -> bool {
        self.state.shard_holds.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The group a probe for `hash` starts at (a multiply by the group count: any count works).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        (((hash >> 32) * self.groups.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next_group(&self, group: usize) -> usize {
        if group + 1 == self.groups.len() {
            0
        } else {
            group + 1
        }
    }

    #[inline]
    fn word(&self, index: usize) -> &AtomicPtr<Node<K, V>> {
        &self.groups[index / GROUP_SLOTS].words[index % GROUP_SLOTS]
    }

    /// Starts loading the group line of slot `index` (a hint: nothing happens out of range).
    #[inline]
    pub(super) fn prefetch(&self, index: usize) {
        if let Some(group) = self.groups.get(index / GROUP_SLOTS) {
            super::prefetch(group);
        }
    }

    /// The policy byte of slot `index` (see [`Found::policy`]).
    #[inline]
    pub(super) fn policy(&self, index: usize) -> &AtomicU8 {
        &self.groups[index / GROUP_SLOTS].policy[index % GROUP_SLOTS]
    }

    /// The word of slot `index`, decoded, for a thread holding `guard`.
    #[inline]
    pub(super) fn load<'g>(&self, index: usize, _guard: &'g Guard) -> Word<'g, K, V> {
        Word::decode(self.word(index).load(Ordering::Acquire))
    }

    /// Whether slot `index` has been published (its tag set by the claimant): a node in an
    /// unpublished slot is not in the cache yet, so an iterator must not yield it.
    pub(super) fn published(&self, index: usize) -> bool {
        let tags = self.groups[index / GROUP_SLOTS]
            .tags
            .load(Ordering::Acquire);
        (tags >> (8 * (index % GROUP_SLOTS))) as u8 & 0x80 != 0
    }

    /// Looks for a live node of the key in this table alone.
    #[inline]
    pub(super) fn lookup<'g>(
        &'g self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        _guard: &'g Guard,
    ) -> Lookup<'g, K, V> {
        let tag = tag_of(hash);
        let mut group = self.home(hash);
        let mut moved = false;
        for _ in 0..self.groups.len() {
            let g = &self.groups[group];
            let tags = g.tags.load(Ordering::Acquire);
            for slot in positions(matching(tags, tag)) {
                match Word::decode(g.words[slot].load(Ordering::Acquire)) {
                    Word::Node { node, .. } if holds_key(node, &eq) => {
                        return Lookup::Found(Found {
                            table: self,
                            index: group * GROUP_SLOTS + slot,
                            node,
                        });
                    }
                    Word::Moved(_) => moved = true,
                    _ => {}
                }
            }
            let empties = zero_bytes(tags) & SLOT_BYTES;
            if empties != 0 {
                // The key is nowhere beyond. But if this table has been copied, keys inserted
                // since live in the next one: a never-used slot is copied as MOVED too.
                let slot = empties.trailing_zeros() as usize / 8;
                if let Word::Moved(_) = Word::decode(g.words[slot].load(Ordering::Acquire)) {
                    moved = true;
                }
                break;
            }
            group = self.next_group(group);
        }
        if moved {
            Lookup::Moved
        } else {
            Lookup::Absent
        }
    }

    /// Finds where a new key of `hash` can be linked: the first free slot (tombstone or
    /// never-used) of its probe sequence, up to the first group with a never-used slot.
    ///
    /// Returns `Err(Some(found))` for a live node of the key, and `Err(None)` when the table is
    /// being resized or has no free slot: the caller must resize and move on.
    pub(super) fn find_free<'g>(
        &'g self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        _guard: &'g Guard,
    ) -> Result<Free, Option<Found<'g, K, V>>> {
        let tag = tag_of(hash);
        let mut group = self.home(hash);
        let mut free = None;
        for _ in 0..self.groups.len() {
            let g = &self.groups[group];
            let tags = g.tags.load(Ordering::Acquire);
            for slot in positions(matching(tags, tag)) {
                match Word::decode(g.words[slot].load(Ordering::Acquire)) {
                    Word::Node { frozen: true, .. } | Word::Moved(_) => return Err(None),
                    Word::Node { node, .. } if holds_key(node, &eq) => {
                        return Err(Some(Found {
                            table: self,
                            index: group * GROUP_SLOTS + slot,
                            node,
                        }));
                    }
                    _ => {}
                }
            }
            let empties = zero_bytes(tags) & SLOT_BYTES;
            if free.is_none() {
                // A tombstone of this group, else (if this is the last group to look at) a
                // never-used slot.
                let deleted = matching(tags, TAG_DELETED);
                for slot in positions(deleted).chain(positions(empties)) {
                    match Word::decode(g.words[slot].load(Ordering::Acquire)) {
                        Word::Tombstone => {
                            free = Some(Free {
                                index: group * GROUP_SLOTS + slot,
                                never_used: false,
                            });
                            break;
                        }
                        Word::Empty => {
                            free = Some(Free {
                                index: group * GROUP_SLOTS + slot,
                                never_used: true,
                            });
                            break;
                        }
                        Word::Moved(_) | Word::Node { frozen: true, .. } => return Err(None),
                        // Claimed a moment ago (unpublished), being removed, or pending: not
                        // free.
                        _ => {}
                    }
                }
            }
            if empties != 0 {
                return free.ok_or(None);
            }
            group = self.next_group(group);
        }
        free.ok_or(None)
    }

    /// Links `node` at the free slot `free` found for it, with a fresh policy byte; `Lost` if
    /// another thread claimed the slot first (or a copy moved it), and the caller must look again.
    pub(super) fn claim(&self, free: &Free, node: Shared<'_, Node<K, V>>, hash: u64) -> Claim {
        let expected = if free.never_used {
            Word::Empty
        } else {
            Word::Tombstone
        };
        let linked = self
            .word(free.index)
            .compare_exchange(
                expected.encode(),
                Word::Node {
                    node,
                    frozen: false,
                }
                .encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if !linked {
            return Claim::Lost;
        }
        // (The previous key's state may be left in it; the tag's release publishes this one.)
        self.policy(free.index).store(0, Ordering::Relaxed);
        self.set_tag(free.index, tag_of(hash));
        if free.never_used && self.count_claim() {
            Claim::LinkedAtLimit
        } else {
            Claim::Linked
        }
    }

    /// Counts a claimed never-used slot; true if the table is now at its limit (checked once
    /// every [`CLAIMS_PER_CHECK`] claims of this thread, or always in a small table).
    fn count_claim(&self) -> bool {
        let mine = self.claimed.add_to_stripe(1);
        (self.groups.len() <= EXACT_GROUPS || mine % CLAIMS_PER_CHECK == 0)
            && self.claimed.sum() >= self.limit
    }

    /// Writes the tag byte of slot `index`. Only the thread that owns the slot's current state
    /// (its claimant, or its remover) writes it, so the bytes of one slot are written in order.
    fn set_tag(&self, index: usize, tag: u8) {
        let shift = 8 * (index % GROUP_SLOTS);
        let tags = &self.groups[index / GROUP_SLOTS].tags;
        let mut current = tags.load(Ordering::Relaxed);
        loop {
            let new = (current & !(0xFF << shift)) | u64::from(tag) << shift;
            match tags.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Swings slot `index` from `current` to `new`; on failure, the word found instead.
    pub(super) fn replace<'g>(
        &self,
        index: usize,
        current: Shared<'_, Node<K, V>>,
        new: Shared<'_, Node<K, V>>,
        _guard: &'g Guard,
    ) -> Result<(), Word<'g, K, V>> {
        let node = |node| Word::Node {
            node,
            frozen: false,
        };
        self.word(index)
            .compare_exchange(
                node(current).encode(),
                node(new).encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(drop)
            .map_err(Word::decode)
    }

    /// Removes `node` from slot `index`, leaving the slot as `freed` says; on failure, the word
    /// found instead (another write or removal came first, or a copy froze the slot).
    ///
    /// Under `--cfg cascache_broken_seal` (the linearizability checker's negative control) the
    /// word is taken whatever node it holds by now, so a write that landed after the caller read
    /// `node` is removed unseen while the removal reports `node`'s value: the caller retires
    /// the node it was handed back, which is then the only node this removal took.
    pub(super) fn remove<'g>(
        &self,
        index: usize,
        node: Shared<'g, Node<K, V>>,
        freed: Freed,
        _guard: &'g Guard,
    ) -> Result<Shared<'g, Node<K, V>>, Word<'g, K, V>> {
        let word = self.word(index);
        let live = Word::Node {
            node,
            frozen: false,
        };
        let taken = if cfg!(cascache_broken_seal) {
            let mut current = word.load(Ordering::Acquire);
            loop {
                match Word::decode(current) {
                    Word::Node {
                        node: any,
                        frozen: false,
                    } => {
                        match word.compare_exchange(
                            current,
                            Word::Removing.encode(),
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => break any,
                            Err(actual) => current = actual,
                        }
                    }
                    other => return Err(other),
                }
            }
        } else {
            word.compare_exchange(
                live.encode(),
                Word::Removing.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_err(Word::decode)?;
            node
        };
        // The tag: EMPTY while the group shows another never-used slot (one compare-and-swap,
        // so that no insert can fill the group's last one in between), else DELETED. A pending
        // slot stays DELETED until its queue frees it.
        let as_new = self.clear_tag(index, freed == Freed::Reusable);
        let end = match (as_new, freed) {
            (true, _) => Word::Empty,
            (false, Freed::Reusable) => Word::Tombstone,
            (false, Freed::Pending) => Word::Pending,
        };
        word.store(end.encode(), Ordering::Release);
        Ok(taken)
    }

    /// Frees a PENDING slot for any key, once the eviction queue that named it has dropped it.
    pub(super) fn release_pending(&self, index: usize) {
        debug_assert!(matches!(
            Word::decode(self.word(index).load(Ordering::Acquire)),
            Word::Pending
        ));
        let as_new = self.clear_tag(index, true);
        let end = if as_new { Word::Empty } else { Word::Tombstone };
        // A copy can meet the slot only as PENDING or as what it becomes here.
        let _ = self.word(index).compare_exchange(
            Word::Pending.encode(),
            end.encode(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Writes the tag of a slot being freed: EMPTY (returning true) if `may_be_new` and the
    /// group shows another never-used slot, in the same compare-and-swap, else DELETED.
    fn clear_tag(&self, index: usize, may_be_new: bool) -> bool {
        let shift = 8 * (index % GROUP_SLOTS);
        let tags = &self.groups[index / GROUP_SLOTS].tags;
        let mut current = tags.load(Ordering::Relaxed);
        loop {
            let others_empty = zero_bytes(current) & SLOT_BYTES & !(0x80 << shift) != 0;
            let as_new = may_be_new && others_empty;
            let tag = if as_new { TAG_EMPTY } else { TAG_DELETED };
            let new = (current & !(0xFF << shift)) | u64::from(tag) << shift;
            match tags.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if as_new {
                        self.claimed.add(-1);
                    }
                    break as_new;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims the next chunk of groups to copy; `None` when every chunk has been claimed.
    pub(super) fn claim_copy_chunk(&self, chunk: usize) -> Option<Range<usize>> {
        let len = self.groups.len();
        let start = self.state.copy_claim.fetch_add(chunk, Ordering::Relaxed);
        (start < len).then(|| start..(start + chunk).min(len))
    }

    /// Records `count` copied groups; true for the call that completes the copy.
    pub(super) fn finish_copy_chunk(&self, count: usize) -> bool {
        self.state.copy_done.fetch_add(count, Ordering::AcqRel) + count == self.groups.len()
    }

    /// True once every group has been copied to `next`.
    pub(super) fn copy_complete(&self) -> bool {
        self.state.copy_done.load(Ordering::Acquire) == self.groups.len()
    }

    /// Copies group `group` to `next`, placing each node by `hash_of` its key. Only the thread
    /// that claimed the group's chunk calls this.
    pub(super) fn copy_group(
        &self,
        group: usize,
        next: &Table<K, V>,
        hash_of: &dyn Fn(&K) -> u64,
        guard: &Guard,
    ) {
        for slot in 0..GROUP_SLOTS {
            self.copy_slot(group * GROUP_SLOTS + slot, next, hash_of, guard);
        }
    }

    fn copy_slot(
        &self,
        index: usize,
        next: &Table<K, V>,
        hash_of: &dyn Fn(&K) -> u64,
        guard: &Guard,
    ) {
        let word = self.word(index);
        let mut current = word.load(Ordering::Acquire);
        loop {
            match Word::decode(current) {
                // Nothing to carry over (a pending slot's queue drops its entry when it next
                // looks). Racing a claim or the end of a removal, whoever comes second sees the
                // other's word and adapts.
                Word::Empty | Word::Tombstone | Word::Pending => {
                    match word.compare_exchange(
                        current,
                        Word::Moved(None).encode(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return,
                        Err(actual) => current = actual,
                    }
                }
                Word::Removing => {
                    // The remover is between two steps: let it finish.
                    crate::sync::spin_wait();
                    current = word.load(Ordering::Acquire);
                }
                Word::Node {
                    node,
                    frozen: false,
                } => {
                    // Freeze first, so that no write or removal can change the slot while its
                    // node is being linked into `next`: a writer that meets a frozen slot helps
                    // finish the copy and writes in `next` instead.
                    let frozen = Word::Node { node, frozen: true };
                    if let Err(actual) = word.compare_exchange(
                        current,
                        frozen.encode(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        current = actual;
                        continue;
                    }
                    let policy = self.policy(index).load(Ordering::Relaxed);
                    // SAFETY: the node is frozen here, so it stays linked (and unretired) until
                    // this copy is done; `guard` protects it.
                    let hash = hash_of(&unsafe { node.deref() }.key);
                    let moved_to = next.link_copy(node, hash, policy, guard);
                    word.store(Word::Moved(Some(moved_to)).encode(), Ordering::Release);
                    return;
                }
                Word::Node { frozen: true, .. } | Word::Moved(_) => {
                    unreachable!("only the chunk's owner freezes and moves a slot")
                }
            }
        }
    }

    /// Links a node copied from the predecessor, with its policy byte, and returns its slot.
    /// Only copies write to a table while its predecessor is being copied, and a resize keeps
    /// the size only when fewer than 7/16 of the slots are live (and grows it for a table over
    /// its limit), so a never-used slot is always found.
    fn link_copy(
        &self,
        node: Shared<'_, Node<K, V>>,
        hash: u64,
        policy: u8,
        _guard: &Guard,
    ) -> usize {
        self.claimed.add(1);
        let mut group = self.home(hash);
        for _ in 0..self.groups.len() {
            let g = &self.groups[group];
            // Other copies race for never-used slots only (no key is removed here before the
            // copy is over), so try every slot the tags show never-used; one fails only if a
            // concurrent copy claimed it first.
            let tags = g.tags.load(Ordering::Acquire);
            for slot in positions(zero_bytes(tags) & SLOT_BYTES) {
                let linked = g.words[slot]
                    .compare_exchange(
                        std::ptr::null_mut(),
                        Word::Node {
                            node,
                            frozen: false,
                        }
                        .encode(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                if linked {
                    let index = group * GROUP_SLOTS + slot;
                    g.policy[slot].store(policy, Ordering::Relaxed);
                    self.set_tag(index, tag_of(hash));
                    return index;
                }
            }
            // Every slot whose tag was EMPTY went to other copies, which are about to publish
            // them: the group ends up full, and probes go on to the next one, as this one does.
            group = self.next_group(group);
        }
        unreachable!("a resized table always has room for the nodes copied into it");
    }

    /// Every slot word of the table, for dropping it (`&mut self`: no other thread is left).
    pub(super) fn words_mut(&mut self) -> impl Iterator<Item = *mut Node<K, V>> + '_ {
        self.groups
            .iter()
            .flat_map(|g| g.words.iter().map(|w| w.load(Ordering::Relaxed)))
    }
}

/// `count` groups, all slots never-used.
#[cfg(not(loom))]
fn new_groups<K, V>(count: usize) -> Box<[Group<K, V>]> {
    let layout = std::alloc::Layout::array::<Group<K, V>>(count).expect("a table fits in memory");
    // SAFETY: the layout has a non-zero size (count ≥ 1, groups are 64 bytes). All-zero bytes
    // are a valid `Group`: its fields are atomic integers and pointers, whose zero is 0 and
    // null, and which have no padding or invariants beyond that. A zeroed allocation also lets
    // the system hand out untouched pages lazily, so a presized table costs memory only where
    // it is used.
    unsafe {
        let groups = std::alloc::alloc_zeroed(layout).cast::<Group<K, V>>();
        if groups.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(groups, count))
    }
}

/// Under loom atomics are not plain memory: build them one by one.
#[cfg(loom)]
fn new_groups<K, V>(count: usize) -> Box<[Group<K, V>]> {
    (0..count).map(|_| Group::new()).collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn zero_bytes_is_exact() {
        for word in [
            0u64,
            1,
            0x0100,
            0x8000_0000_0000_0080,
            u64::MAX,
            0x0001_0000_0100_0001,
        ] {
            let expected: u64 = (0..8)
                .filter(|i| (word >> (8 * i)) as u8 == 0)
                .map(|i| 0x80u64 << (8 * i))
                .sum();
            assert_eq!(zero_bytes(word), expected, "{word:#x}");
        }
    }

    #[test]
    fn matching_finds_every_slot_with_the_tag_and_no_other() {
        let tags = 0x0000_9A81_9A00_019A_u64;
        assert_eq!(
            positions(matching(tags, 0x9A)).collect::<Vec<_>>(),
            [0, 3, 5]
        );
        assert_eq!(positions(matching(tags, 0x81)).collect::<Vec<_>>(), [4]);
        assert_eq!(
            positions(matching(tags, TAG_EMPTY)).collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(
            positions(matching(tags, TAG_DELETED)).collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn node_words_keep_the_node_tag_and_the_frozen_flag() {
        let mut node = Node {
            version: crate::version::next_version(),
            key: 1u8,
            value: 2u8,
        };
        let plain = Shared::from(std::ptr::addr_of_mut!(node).cast_const());
        for tag in [0, EXTRAS] {
            for frozen in [false, true] {
                let word = Word::Node {
                    node: plain.with_tag(tag),
                    frozen,
                };
                let Word::Node {
                    node: decoded,
                    frozen: was_frozen,
                } = Word::<u8, u8>::decode(word.encode())
                else {
                    panic!("a node word decodes as a node");
                };
                assert_eq!((decoded.as_raw(), decoded.tag()), (plain.as_raw(), tag));
                assert_eq!(was_frozen, frozen);
            }
        }
    }

    #[test]
    fn markers_round_trip() {
        for word in [
            Word::<u8, u8>::Empty,
            Word::Tombstone,
            Word::Removing,
            Word::Moved(None),
            Word::Moved(Some(0)),
            Word::Moved(Some(123_456)),
            Word::Pending,
        ] {
            assert_eq!(Word::decode(word.encode()), word);
        }
    }
}
