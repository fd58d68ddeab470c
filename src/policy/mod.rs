//! The eviction policy of a bounded cache: S3-FIFO (Yang et al., SOSP 2023), per shard.
//!
//! Reads never come here: a hit only bumps the entry's 2-bit access count (a relaxed store, none
//! once saturated). Only writes that add an entry, or make one heavier, take the lock of the
//! entry's shard, and only to push it on a queue and evict while the shard is over its share of
//! the capacity. The policy itself is plain single-threaded code over FIFOs:
//!
//! * new entries go to a **small** queue (10% of the shard's capacity); a key whose hash is in
//!   the **ghost** queue (recently evicted from small) goes straight to the **main** queue;
//! * evicting from small: an entry accessed at least twice since insertion moves to main,
//!   otherwise it is evicted and its hash remembered in the ghost queue; while main holds less
//!   than its share, every entry leaving small moves to main (so a loop larger than small can
//!   still settle in main);
//! * evicting from main: an entry with a non-zero count is re-queued with its count decremented
//!   (CLOCK's second chance), otherwise it is evicted;
//! * expired entries are evicted whenever the hand reaches them, whatever their count.
//!
//! Eviction is a removal like any other: it seals the entry's value pointer, so a racing
//! compare-and-swap either lands before it (and is evicted with the entry) or fails `NotFound`.
//!
//! Weights are accounted per shard with an atomic, updated by every link, replace and removal with
//! the exact weight of the node involved, so once writes quiesce each shard holds at most its share.

mod ghost;

use crossbeam_epoch::Guard;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;

use self::ghost::Ghost;
use crate::raw::{Found, QueuedEntry, RawTable};
use crate::sync::{AtomicI64, Mutex, Ordering};

/// Why an entry left the cache, as told to the eviction listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// Evicted to make room (or too heavy to be kept at all).
    Evicted,
    /// Its time to live or time to idle ran out.
    Expired,
    /// Removed by a call (`remove`, `delete`, `remove_if_version`, `clear`).
    Removed,
    /// Its value was replaced by a write (the listener gets the old value).
    Replaced,
}

/// An entry that left the cache, kept readable under the guard until the listener has seen it.
pub(crate) struct Departed<'g, K, V> {
    pub(crate) entry: Found<'g, K, V>,
    pub(crate) cause: RemovalCause,
}

/// Percent of a shard's capacity given to the small queue.
const SMALL_PERCENT: u64 = 10;

pub(crate) struct Policy<K, V> {
    shards: Box<[CachePadded<Shard<K, V>>]>,
}

struct Shard<K, V> {
    /// Weight of the live entries of the shard (signed: a removal may be counted before the
    /// link or replace it undoes).
    weight: AtomicI64,
    capacity: i64,
    queues: Mutex<Queues<K, V>>,
}

struct Queues<K, V> {
    small: VecDeque<(QueuedEntry<K, V>, u32)>,
    main: VecDeque<(QueuedEntry<K, V>, u32)>,
    small_weight: u64,
    ghost: Ghost,
    /// Position of the expiry sweep over `small` then `main`.
    sweep: usize,
}

/// What the hand does with the entry at the head of a queue.
enum Verdict {
    Evict(RemovalCause),
    Keep,
}

impl<K, V> Policy<K, V> {
    /// A policy for `capacity` (entries, or weight units with a weigher) over `shards` shards.
    pub(crate) fn new(capacity: u64, shards: usize) -> Self {
        let shards = shards.max(1).next_power_of_two();
        let per_shard = capacity / shards as u64;
        let remainder = capacity % shards as u64;
        Policy {
            shards: (0..shards)
                .map(|i| {
                    CachePadded::new(Shard {
                        weight: AtomicI64::new(0),
                        capacity: (per_shard + u64::from((i as u64) < remainder))
                            .min(i64::MAX as u64) as i64,
                        queues: Mutex::new(Queues {
                            small: VecDeque::new(),
                            main: VecDeque::new(),
                            small_weight: 0,
                            ghost: Ghost::new(),
                            sweep: 0,
                        }),
                    })
                })
                .collect(),
        }
    }

    /// A sensible shard count: enough to spread writers, few enough that each shard's share of
    /// the capacity is large (small shards hurt the hit ratio).
    pub(crate) fn default_shards(capacity: u64) -> usize {
        #[cfg(loom)]
        let threads: usize = 1;
        #[cfg(not(loom))]
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        let by_threads = (threads * 4).next_power_of_two();
        let by_capacity = (capacity / 4096).max(1).next_power_of_two() as usize;
        by_threads.min(by_capacity)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // The table uses the low bits and the metadata tag the top 7: take bits from the middle.
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// Whether a value this heavy can ever be kept.
    pub(crate) fn fits(&self, hash: u64, weight: u32) -> bool {
        i64::from(weight) <= self.shard(hash).capacity
    }

    /// Accounts for a newly linked entry, queues it, and evicts while its shard is over capacity.
    pub(crate) fn admit<'g>(
        &self,
        queued: QueuedEntry<K, V>,
        weight: u32,
        raw: &RawTable<K, V>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) {
        let shard = self.shard(queued.hash());
        shard.weight.fetch_add(i64::from(weight), Ordering::AcqRel);
        let mut queues = shard.queues.lock();
        if queues.ghost.take(queued.hash()) {
            queues.main.push_back((queued, weight));
        } else {
            queues.small_weight += u64::from(weight);
            queues.small.push_back((queued, weight));
        }
        queues.sweep_expired(shard, raw, now, guard, departed);
        queues.evict_while_over(shard, raw, now, guard, departed);
    }

    /// Accounts for a value replaced by one of another weight.
    pub(crate) fn reweigh<'g>(
        &self,
        hash: u64,
        (old, new): (u32, u32),
        raw: &RawTable<K, V>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) {
        let shard = self.shard(hash);
        let delta = i64::from(new) - i64::from(old);
        let total = shard.weight.fetch_add(delta, Ordering::AcqRel) + delta;
        if delta > 0 && total > shard.capacity {
            shard
                .queues
                .lock()
                .evict_while_over(shard, raw, now, guard, departed);
        }
    }

    /// Accounts for an entry removed outside the policy (its queue slot is dropped lazily).
    pub(crate) fn forget(&self, hash: u64, weight: u32) {
        self.shard(hash)
            .weight
            .fetch_sub(i64::from(weight), Ordering::AcqRel);
    }

    /// Total weight of the live entries.
    pub(crate) fn weight(&self) -> u64 {
        let total: i64 = self
            .shards
            .iter()
            .map(|s| s.weight.load(Ordering::Acquire))
            .sum();
        total.max(0) as u64
    }

    /// Takes every queued entry out of the queues (when the cache is dropped: the table then
    /// releases the queues' shares).
    pub(crate) fn drain(&mut self) -> Vec<QueuedEntry<K, V>> {
        let mut entries = Vec::new();
        for shard in self.shards.iter_mut() {
            let queues = shard.queues.get_mut();
            entries.extend(queues.small.drain(..).map(|(queued, _)| queued));
            entries.extend(queues.main.drain(..).map(|(queued, _)| queued));
        }
        entries
    }

    /// The capacity this policy enforces.
    pub(crate) fn capacity(&self) -> u64 {
        self.shards.iter().map(|s| s.capacity as u64).sum()
    }
}

/// Queue positions the expiry sweep looks at per admitted entry.
const SWEEP_STEPS: usize = 2;

impl<K, V> Queues<K, V> {
    /// Looks at the next few queued entries, round robin, and removes those that have expired:
    /// expired entries nobody reads are reclaimed (and stop counting toward the capacity) even
    /// when the cache is not full and the eviction hand does not run. Their queue slots are
    /// released when the hand reaches them.
    fn sweep_expired<'g>(
        &mut self,
        shard: &Shard<K, V>,
        raw: &RawTable<K, V>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) {
        let queued_len = self.small.len() + self.main.len();
        if queued_len == 0 {
            return;
        }
        let hand = Hand {
            weight: &shard.weight,
            raw,
            now,
            guard,
        };
        for _ in 0..SWEEP_STEPS.min(queued_len) {
            self.sweep = (self.sweep + 1) % queued_len;
            let (queued, _) = if self.sweep < self.small.len() {
                &self.small[self.sweep]
            } else {
                &self.main[self.sweep - self.small.len()]
            };
            if let Some(found) = queued.current(guard) {
                if crate::expiry::found_expired(&found, now) {
                    hand.remove(&found, RemovalCause::Expired, departed);
                }
            }
        }
    }

    fn evict_while_over<'g>(
        &mut self,
        shard: &Shard<K, V>,
        raw: &RawTable<K, V>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) {
        let hand = Hand {
            weight: &shard.weight,
            raw,
            now,
            guard,
        };
        let small_target = shard.capacity as u64 * SMALL_PERCENT / 100;
        let main_share = shard.capacity as u64 - small_target;
        loop {
            let weight = shard.weight.load(Ordering::Acquire);
            if weight <= shard.capacity {
                return;
            }
            let from_small = self.small_weight > small_target || self.main.is_empty();
            let evicted = if from_small {
                let main_weight = (weight as u64).saturating_sub(self.small_weight);
                let main_room = main_share.saturating_sub(main_weight);
                self.evict_from_small(&hand, small_target, main_room, departed)
            } else {
                self.evict_from_main(&hand, departed)
            };
            if !evicted && self.small.is_empty() && self.main.is_empty() {
                // Nothing left to evict here: the excess belongs to entries still being linked.
                return;
            }
        }
    }

    /// Pops small until one entry is evicted (true), or small is back within `target` after a
    /// promotion or empty (false). Entries accessed at least twice since insertion are promoted to
    /// main instead of evicted; so is every entry while main has room below its share
    /// (`main_room`), which keeps loops and scans larger than small from never reaching main.
    fn evict_from_small<'g>(
        &mut self,
        hand: &Hand<'_, 'g, K, V>,
        target: u64,
        mut main_room: u64,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) -> bool {
        while let Some((queued, weight)) = self.small.pop_front() {
            self.small_weight -= u64::from(weight);
            let keep_threshold = if main_room > 0 { 0 } else { 2 };
            match hand.judge(&queued, keep_threshold) {
                None => queued.release(hand.guard),
                Some((_, Verdict::Keep)) => {
                    queued.set_frequency(0);
                    main_room = main_room.saturating_sub(u64::from(weight));
                    self.main.push_back((queued, weight));
                    if self.small_weight <= target {
                        return false;
                    }
                }
                Some((found, Verdict::Evict(cause))) => {
                    let hash = queued.hash();
                    let removed = hand.remove(&found, cause, departed);
                    queued.release(hand.guard);
                    if removed {
                        if cause == RemovalCause::Evicted {
                            let ghost_capacity = self.main.len().max(16);
                            self.ghost.insert(hash, ghost_capacity);
                        }
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Pops main until one entry is evicted (true) or main is empty (false). Entries accessed
    /// since the hand last passed get another round with their count decremented.
    fn evict_from_main<'g>(
        &mut self,
        hand: &Hand<'_, 'g, K, V>,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) -> bool {
        while let Some((queued, weight)) = self.main.pop_front() {
            match hand.judge(&queued, 1) {
                None => queued.release(hand.guard),
                Some((_, Verdict::Keep)) => {
                    queued.set_frequency(queued.frequency().saturating_sub(1));
                    self.main.push_back((queued, weight));
                }
                Some((found, Verdict::Evict(cause))) => {
                    let removed = hand.remove(&found, cause, departed);
                    queued.release(hand.guard);
                    if removed {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// What the eviction hand works with.
struct Hand<'a, 'g, K, V> {
    weight: &'a AtomicI64,
    raw: &'a RawTable<K, V>,
    now: u64,
    guard: &'g Guard,
}

impl<'g, K, V> Hand<'_, 'g, K, V> {
    /// Decides the fate of a queued entry: `None` when it is already gone.
    fn judge(
        &self,
        queued: &QueuedEntry<K, V>,
        keep_threshold: u8,
    ) -> Option<(Found<'g, K, V>, Verdict)> {
        let found = queued.current(self.guard)?;
        let verdict = if crate::expiry::found_expired(&found, self.now) {
            Verdict::Evict(RemovalCause::Expired)
        } else if queued.frequency() >= keep_threshold {
            Verdict::Keep
        } else {
            Verdict::Evict(RemovalCause::Evicted)
        };
        Some((found, verdict))
    }

    /// Removes the judged entry, accounting for the exact weight of the value it sealed. False if
    /// someone else removed it first.
    fn remove(
        &self,
        found: &Found<'g, K, V>,
        cause: RemovalCause,
        departed: &mut Vec<Departed<'g, K, V>>,
    ) -> bool {
        match self.raw.seal_current(found, self.guard) {
            Some(sealed) => {
                self.weight
                    .fetch_sub(i64::from(sealed.weight()), Ordering::AcqRel);
                departed.push(Departed {
                    entry: sealed,
                    cause,
                });
                true
            }
            None => false,
        }
    }
}
