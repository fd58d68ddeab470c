//! The eviction policy of a bounded cache, per shard: S3-FIFO (Yang et al., SOSP 2023) with a
//! TinyLFU admission gate into its main queue and a small queue whose share adapts by hill
//! climbing ("S3-TLFU-A" in `docs/policy-research.md`, the study behind the choice and its
//! parameters).
//!
//! Reads never come here: a hit only bumps the entry's policy byte (a 2-bit access count and a
//! 4-bit count of hits not yet folded into the sketch; a relaxed store, none once both saturate).
//! Only writes that add an entry, or make one heavier, take the lock of the entry's shard. The
//! policy itself is plain single-threaded code over FIFOs:
//!
//! * a new entry (a miss, which the sketch counts) goes to the **small** queue, or straight to
//!   the **main** queue if its hash is in the **ghost** queue (recently evicted from small) and
//!   such ghost hits are paying off (below);
//! * evicting from small: an entry that was read, or that was missed before (sketch estimate of
//!   at least 2), is promoted to main if it passes **admission**: main has room, or the sketch
//!   rates it above main's next victim by a margin. While main is below its share every entry
//!   leaving small is promoted. The others are evicted, their hash kept in the ghost queue;
//! * evicting from main: CLOCK over the 2-bit count (a non-zero count buys another round);
//! * hits are folded into the sketch when the hand passes an entry, and by a cursor that visits
//!   four queued entries per miss (it also removes expired entries, so they are reclaimed even
//!   when nothing is evicted);
//! * the small queue's share starts at 5% and is moved by a hill climber on each period's hit
//!   ratio, computed from the folded hits (nothing is counted on the hit path); it turns back
//!   only when the ratio drops by more than the period's sampling noise. Small is halved at
//!   once when it has been of no use (twice the shard's entries left it in a row unread while
//!   main was being hit), which the climber's small steps took ~100,000 requests to find;
//! * expired entries are evicted whenever the hand reaches them;
//! * a ghost hit goes straight to main only while ghost hits are at least twice as frequent as
//!   hits in a sampled ghost of main's own evictions (both counts halved every `capacity`
//!   misses, at most every 65,536). When entries evicted from main come back as often, promoting ghost hits is
//!   pushing out entries main still needed: a loop a little longer than the cache turns every
//!   miss into a ghost hit and main into an LRU that the loop defeats (loop @ 600: 41.8% before
//!   this rule, 58.8% with it, against moka's 59.2%). Ghost hits then enter small marked as
//!   seen once, and reach main through the admission gate like any other entry.
//!
//! The queues hold slot indexes into the table (their shard's base, see `raw`), four bytes per
//! entry, and the policy byte sits beside the slot: the hand reads the count it needs from the
//! cache line that also holds the slot, and loads the node only for its key's hash (the sketch,
//! the ghosts) or its deadline. A key removed outside the hand keeps its slot pending until the
//! hand or a compaction drops the queue entry, so a slot index never names another key.
//!
//! Eviction is a removal like any other: it swings the key's slot from the node it read, so a
//! racing compare-and-swap either lands before it (and its value is evicted) or fails `NotFound`.
//!
//! Weights are accounted per shard with an atomic, updated by every link, replace and removal with
//! the exact weight of the node involved, so once writes quiesce each shard holds at most its share.

mod ghost;
mod sketch;

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

use crossbeam_epoch::Guard;
use crossbeam_utils::CachePadded;

use self::ghost::Ghost;
use self::sketch::Sketch;
use crate::raw::{Found, Freed, NewNode, QueueBase, RawTable, Rejected, Slot};
use crate::sync::{AtomicI64, AtomicU64, Mutex, Ordering};

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

/// The entries one call made leave the cache: counted for the statistics, and kept for the
/// listener only if the cache has one (so that without one, evicting allocates nothing).
pub(crate) struct Departures<'g, K, V> {
    listened: Vec<Departed<'g, K, V>>,
    listening: bool,
    /// Evictions, expirations and removals.
    counts: [u32; 3],
}

impl<'g, K, V> Departures<'g, K, V> {
    pub(crate) fn new(listening: bool) -> Self {
        Departures {
            listened: Vec::new(),
            listening,
            counts: [0; 3],
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, entry: Found<'g, K, V>, cause: RemovalCause) {
        match cause {
            RemovalCause::Evicted => self.counts[0] += 1,
            RemovalCause::Expired => self.counts[1] += 1,
            RemovalCause::Removed => self.counts[2] += 1,
            RemovalCause::Replaced => {}
        }
        if self.listening {
            self.listened.push(Departed { entry, cause });
        }
    }

    /// Whether nothing left.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.counts == [0; 3] && self.listened.is_empty()
    }

    /// `(evictions, expirations, removals)`, and the departures the listener is to hear of.
    pub(crate) fn into_parts(self) -> ([u32; 3], Vec<Departed<'g, K, V>>) {
        (self.counts, self.listened)
    }
}

/// The small queue's initial share of a shard's capacity, and its bounds.
const SMALL_INITIAL: f64 = 0.05;
const SMALL_MIN: f64 = 0.001;
const SMALL_MAX: f64 = 0.5;
/// Small is halved when it got no hit while main's hits, scaled to small's share, reached this
/// (no hit where 16 were due happens by chance with odds of about 1 in 10 million).
const UNUSED_SMALL_EVIDENCE: f64 = 16.0;
/// The ghost queue holds this many hashes per entry of capacity.
const GHOST_PER_ENTRY: f64 = 0.9;
/// One in this many hashes evicted from main is remembered (the main ghost only feeds a ratio).
const MAIN_GHOST_SAMPLE: u64 = 8;
/// Ghost hits go straight to main while they are at least this many times as frequent as hits
/// in the main ghost (1.5 to 3 measured alike on the loop sweep and the table; 2 is the middle).
const GHOST_PROMOTION_RATIO: f64 = 2.0;
/// Admission margin: a candidate must beat main's victim by more than this in the sketch.
const ADMISSION_MARGIN: u32 = 1;
/// Queued entries the cursor visits per miss (folding their hits, removing them if expired).
/// The research simulator visits 2 slots of a stable array; queue positions shift by one per
/// eviction, and 4 steps measured closest to it (OLTP @ 5,000: 55.81 against 55.23 with 2).
const CURSOR_STEPS: usize = 4;
/// The largest entry count the sketch and the climber are sized for (weighted caches count
/// weight units, which may be far more numerous than entries).
const MAX_SIZED_ENTRIES: i64 = 1 << 16;

pub(crate) struct Policy<K, V> {
    shards: Box<[CachePadded<Shard<K, V>>]>,
}

/// A queue entry: the key's slot index in its shard's base table, and either the weight it was
/// queued with (a weighted cache) or the key's policy hash (an unweighted one, whose entries all
/// weigh 1), so that the hand of an unweighted cache never loads a node to hash its key.
#[derive(Clone, Copy)]
struct Queued {
    slot: u32,
    weight_or_hash: u32,
}

/// The 32 bits of a key's hash the policy works with (its sketch, ghosts and samples): both
/// halves, so that they vary within a shard (which bits 32 and up choose).
#[inline]
pub(crate) fn policy_hash(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

/// splitmix64's finalizer: spreads a policy hash over the bits the sketch and the ghosts pick
/// their positions from.
#[inline]
fn spread(hash: u32) -> u64 {
    let mut x = u64::from(hash) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Shard<K, V> {
    /// Weight of the live entries of the shard (signed: a removal may be counted before the
    /// replace it undoes).
    weight: AtomicI64,
    capacity: i64,
    /// Entries removed outside the hand since the queues were last compacted: their queue
    /// entries (and pending slots) stay until the hand reaches them, which a cache below
    /// capacity may never do.
    stale_slots: AtomicU64,
    queues: Mutex<Queues<K, V>>,
}

struct Queues<K, V> {
    /// The table the queues' slot indexes refer to.
    base: QueueBase<K, V>,
    /// Entries carry weights, not hashes ([`Queued`]).
    weighted: bool,
    small: VecDeque<Queued>,
    main: VecDeque<Queued>,
    small_weight: u64,
    main_weight: u64,
    ghost: Ghost,
    /// A sample of the hashes evicted from main (see [`MAIN_GHOST_SAMPLE`]).
    main_ghost: Ghost,
    /// Recent hits in `ghost` and (scaled up by the sample rate) in `main_ghost`, halved every
    /// `capacity` misses (at most every [`MAX_SIZED_ENTRIES`]).
    ghost_hits: f64,
    main_ghost_hits: f64,
    misses_since_halving: u64,
    sketch: Sketch,
    /// Position of the fold/expiry cursor over `small` then `main`.
    cursor: usize,
    /// The small queue's share, in weight units (adapted by the climber).
    small_target: f64,
    /// Entries that left small in a row without a hit there (nor a ghost hit before they came).
    unused_small_departures: u64,
    /// `climber.total_hits` when that run of departures began.
    hits_before_unused_run: u64,
    climber: Climber,
}

/// A hill climber on the small queue's share (Caffeine's idea), fed from the miss path only:
/// requests are misses plus folded hits, hits are folded hits.
struct Climber {
    requests: u64,
    hits: u64,
    /// Folded hits since the cache was built (never reset).
    total_hits: u64,
    /// The previous period's hit ratio; negative until the first full period.
    previous: f64,
    step: f64,
    direction: f64,
    period: u64,
}

impl<K, V> Policy<K, V> {
    /// The shard count a policy built with `shards` (a request, or `None` for the default) over
    /// `capacity` has: a power of two.
    pub(crate) fn shard_count(capacity: u64, shards: Option<usize>) -> usize {
        shards
            .unwrap_or_else(|| Self::default_shards(capacity))
            .max(1)
            .next_power_of_two()
    }

    /// A policy for `capacity` (entries, or weight units with a weigher) over
    /// [`shard_count`](Self::shard_count) shards, whose queues index into `raw`.
    pub(crate) fn new<S>(
        capacity: u64,
        shards: usize,
        weighted: bool,
        raw: &RawTable<K, V, S>,
    ) -> Self {
        let per_shard = capacity / shards as u64;
        let remainder = capacity % shards as u64;
        Policy {
            shards: (0..shards)
                .map(|i| {
                    let capacity =
                        (per_shard + u64::from((i as u64) < remainder)).min(i64::MAX as u64) as i64;
                    CachePadded::new(Shard {
                        weight: AtomicI64::new(0),
                        stale_slots: AtomicU64::new(0),
                        capacity,
                        queues: Mutex::new(Queues::new(capacity, weighted, raw.queue_base())),
                    })
                })
                .collect(),
        }
    }

    /// A sensible shard count: enough to spread writers, few enough that each shard's share of
    /// the capacity is large (small shards hurt the hit ratio): eight per core, and at least
    /// 4,096 entries each. With four per core, churn on 2 threads (`compare`) spent 7.4% of its
    /// samples waiting for a shard's lock (parking_lot's slow path, and the futex wake-ups and
    /// waits in the kernel); eight per core cut that to 5.1% and ran 7% faster (four
    /// interleaved runs each: 9.9-10.0 against 10.5-10.8 M ops/s on 2 cores), at the same hit
    /// ratio or a higher one (P3 @ 65,536 +0.14-0.30 points, P12 @ 131,072 +0.2, OLTP @ 65,536
    /// and Zipf @ 100,000 unchanged, on 1 and 2 threads). It costs memory where shards reach
    /// [`MAX_SIZED_ENTRIES`]: each shard's sketch is sized for at most that many entries, so
    /// more shards hold more of it (at 1.1M entries on 2 cores, 8 MiB instead of 4: 4.3 B more
    /// per entry).
    pub(crate) fn default_shards(capacity: u64) -> usize {
        #[cfg(loom)]
        let threads: usize = 1;
        #[cfg(not(loom))]
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        let by_threads = (threads * 8).next_power_of_two();
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

    /// Links a new entry for a key absent from the table (a miss), then queues it and evicts
    /// while its shard is over capacity. If the key turns out to be live, nothing is linked and
    /// the node comes back with it.
    ///
    /// The link comes first, under the key's insert lock rather than the shard's, so that other
    /// threads read the key while this one waits for the shard: linked under the shard's lock,
    /// a key stayed invisible for that wait, and reads of it then were misses (2 threads, 5 runs
    /// each: 0.3-0.6 points lost on cache2k orm-busy @ 5000, 0.15-0.2 on loop @ 512 and
    /// web07 @ 1000). The shard counts the entry's weight only once it holds the lock and
    /// queues it, so the hand never evicts for an entry it cannot find in its queues.
    pub(crate) fn insert<'g, S>(
        &self,
        hash: u64,
        node: NewNode<K, V>,
        raw: &RawTable<K, V, S>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) -> Result<(), Rejected<'g, K, V>>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let full_hash = hash;
        let shard = self.shard(hash);
        let weight = node.weight();
        let hand = shard.hand(raw, now, guard);
        let found = {
            let _serialized = raw.lock_key(full_hash);
            raw.insert(full_hash, node, guard)?
        };
        let mut queues = shard.queues.lock();
        let hash = policy_hash(hash);
        // Its ghost lookup and sketch increment come after the cursor: start the loads now.
        queues.ghost.prefetch(hash);
        queues.sketch.prefetch(hash);
        // Counted even if a removal took the key already: the removal subtracted its weight.
        shard.weight.fetch_add(i64::from(weight), Ordering::AcqRel);
        if queues.base.is_behind(&found) {
            // Linked in a table newer than the queues' (a resize finished meanwhile).
            queues.rebase(raw, Some(&found), guard);
        }
        // The queues' base may also have moved past the table the key was linked in.
        let slot = raw.index_in(&queues.base, &found, guard);
        queues.drop_stale_slots(&shard.stale_slots, &hand);
        queues.climb(&hand);
        queues.sketch.increment(hash);
        queues.advance_cursor(&hand, departed);
        let ghost_hit = queues.ghost.take(hash);
        if let Some(slot) = slot {
            let entry = Queued {
                slot,
                weight_or_hash: if queues.weighted { weight } else { hash },
            };
            if queues.ghost_hit_goes_to_main(ghost_hit, hash, hand.capacity) {
                queues.main_weight += u64::from(weight);
                queues.main.push_back(entry);
            } else {
                if ghost_hit {
                    // Seen before: it may leave small for main through the admission gate.
                    found.set_frequency(1);
                }
                queues.small_weight += u64::from(weight);
                queues.small.push_back(entry);
            }
        }
        // Queue first, then evict: the new entry is a candidate like any other.
        queues.evict_while_over(&hand, departed);
        Ok(())
    }

    /// Accounts for a value replaced by one of another weight.
    pub(crate) fn reweigh<'g, S>(
        &self,
        hash: u64,
        (old, new): (u32, u32),
        raw: &RawTable<K, V, S>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let shard = self.shard(hash);
        let delta = i64::from(new) - i64::from(old);
        let total = shard.weight.fetch_add(delta, Ordering::AcqRel) + delta;
        if delta > 0 && total > shard.capacity {
            let hand = shard.hand(raw, now, guard);
            let mut queues = shard.queues.lock();
            queues.rebase(raw, None, guard);
            queues.evict_while_over(&hand, departed);
        }
    }

    /// Accounts for an entry removed outside the policy (its queue entry is dropped lazily).
    pub(crate) fn forget(&self, hash: u64, weight: u32) {
        let shard = self.shard(hash);
        shard.weight.fetch_sub(i64::from(weight), Ordering::AcqRel);
        shard.stale_slots.fetch_add(1, Ordering::Relaxed);
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

    /// Lets go of the queues' tables when the cache is dropped (the table then frees the rest).
    pub(crate) fn release<S>(self, raw: &mut RawTable<K, V, S>) {
        for shard in self.shards.into_vec() {
            raw.drop_base(CachePadded::into_inner(shard).queues.into_inner().base);
        }
    }

    /// Checks the queues against the table (see `Cache::check_invariants`): every live queue
    /// entry names a distinct slot of a key of its shard, the tallies add up, and each shard's
    /// weight is its live queued values' and within its capacity.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants<S>(
        &self,
        live_in_table: usize,
        raw: &RawTable<K, V, S>,
        guard: &Guard,
    ) where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let mut live_queued = 0;
        let mut slots = std::collections::HashSet::new();
        for (index, shard) in self.shards.iter().enumerate() {
            let mut queues = shard.queues.lock();
            queues.rebase(raw, None, guard);
            let tally = |queue: &VecDeque<Queued>| -> u64 {
                queue.iter().map(|&q| u64::from(queues.weight_of(q))).sum()
            };
            assert_eq!(
                tally(&queues.small),
                queues.small_weight,
                "shard {index}: small queue tally"
            );
            assert_eq!(
                tally(&queues.main),
                queues.main_weight,
                "shard {index}: main queue tally"
            );
            let mut weight = 0i64;
            for &entry in queues.small.iter().chain(queues.main.iter()) {
                if let Slot::Live(found) = raw.resolve(&queues.base, entry.slot, guard) {
                    live_queued += 1;
                    weight += i64::from(found.weight());
                    assert!(
                        slots.insert(found.index()),
                        "shard {index}: slot {} queued twice",
                        found.index()
                    );
                    let hash = raw.hash(found.key());
                    assert!(
                        std::ptr::eq(self.shard(hash), &**shard),
                        "shard {index}: an entry of another shard"
                    );
                    if !queues.weighted {
                        assert_eq!(entry.weight_or_hash, policy_hash(hash), "queued hash");
                    }
                }
            }
            let recorded = shard.weight.load(Ordering::Acquire);
            assert_eq!(
                weight, recorded,
                "shard {index}: weight of live queued values vs counter"
            );
            assert!(
                recorded <= shard.capacity,
                "shard {index}: {recorded} over capacity {}",
                shard.capacity
            );
        }
        assert_eq!(
            live_queued, live_in_table,
            "live queued entries vs live table entries"
        );
    }

    /// The capacity this policy enforces.
    pub(crate) fn capacity(&self) -> u64 {
        self.shards.iter().map(|s| s.capacity as u64).sum()
    }
}

impl<K, V> Queues<K, V> {
    fn new(capacity: i64, weighted: bool, base: QueueBase<K, V>) -> Self {
        let entries = capacity.clamp(1, MAX_SIZED_ENTRIES) as usize;
        let capacity = capacity.max(1) as f64;
        Queues {
            base,
            weighted,
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_weight: 0,
            main_weight: 0,
            ghost: Ghost::new(),
            main_ghost: Ghost::new(),
            ghost_hits: 0.0,
            main_ghost_hits: 0.0,
            misses_since_halving: 0,
            sketch: Sketch::new(entries),
            cursor: 0,
            small_target: (capacity * SMALL_INITIAL).max(1.0),
            unused_small_departures: 0,
            hits_before_unused_run: 0,
            climber: Climber::new((10 * entries as u64).max(20_000)),
        }
    }

    /// Starts loading what the hand reads of an entry it will visit soon: its slot, and (when
    /// the entry holds the hash) its sketch block and ghost bucket. The heads of the queues are
    /// cold (they were queued a whole queue length ago), and each visit would otherwise wait
    /// for three cache misses in a row.
    #[inline]
    fn prefetch<S>(&self, entry: Queued, hand: &Hand<'_, '_, K, V, S>)
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        hand.raw.prefetch_slot(&self.base, entry.slot);
        if !self.weighted {
            self.sketch.prefetch(entry.weight_or_hash);
            self.ghost.prefetch(entry.weight_or_hash);
        }
    }

    /// The weight an entry was queued with.
    #[inline]
    fn weight_of(&self, entry: Queued) -> u32 {
        if self.weighted {
            entry.weight_or_hash
        } else {
            1
        }
    }

    /// The policy hash of an entry's key (recomputed from the node in a weighted cache).
    #[inline]
    fn hash_of<S>(
        &self,
        entry: Queued,
        found: &Found<'_, K, V>,
        hand: &Hand<'_, '_, K, V, S>,
    ) -> u32
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        if self.weighted {
            policy_hash(hand.raw.hash(found.key()))
        } else {
            entry.weight_or_hash
        }
    }

    fn ghost_capacity(capacity: i64) -> usize {
        (capacity.clamp(1, MAX_SIZED_ENTRIES) as f64 * GHOST_PER_ENTRY)
            .round()
            .max(16.0) as usize
    }

    /// Counts a miss's hits in the two ghosts and says whether a ghost hit may go straight to
    /// main: only while ghost hits are [`GHOST_PROMOTION_RATIO`] times as frequent as main's
    /// evictions coming back.
    fn ghost_hit_goes_to_main(&mut self, ghost_hit: bool, hash: u32, capacity: i64) -> bool {
        if ghost_hit {
            self.ghost_hits += 1.0;
        }
        if is_main_ghost_sample(hash) && self.main_ghost.take(hash) {
            self.main_ghost_hits += MAIN_GHOST_SAMPLE as f64;
        }
        self.misses_since_halving += 1;
        // Weighted caches count weight units: halve on the same scale the sketch ages on.
        if self.misses_since_halving >= capacity.clamp(1, MAX_SIZED_ENTRIES) as u64 {
            self.misses_since_halving = 0;
            self.ghost_hits /= 2.0;
            self.main_ghost_hits /= 2.0;
        }
        ghost_hit && self.ghost_hits >= GHOST_PROMOTION_RATIO * self.main_ghost_hits
    }

    /// Moves the queues onto the newest table after a resize (see `raw`): entries whose slot
    /// was not carried over (removed before the copy) are dropped.
    fn rebase<S>(&mut self, raw: &RawTable<K, V, S>, found: Option<&Found<'_, K, V>>, guard: &Guard)
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let Queues {
            base,
            weighted,
            small,
            main,
            small_weight,
            main_weight,
            cursor,
            ..
        } = self;
        if found.is_none() && !raw.behind_root(base, guard) {
            return;
        }
        let weighted = *weighted;
        raw.rebase(base, found, guard, |translate| {
            *small_weight -= retain_translated(small, weighted, &mut *translate);
            *main_weight -= retain_translated(main, weighted, &mut *translate);
        });
        *cursor = 0;
    }

    /// Drops the queue entries of removed entries once they are half of the queued ones, so that
    /// insert/remove churn below capacity cannot grow the queues without bound (amortised O(1):
    /// a pass over n entries follows at least n/2 removals).
    fn drop_stale_slots<S>(&mut self, stale_slots: &AtomicU64, hand: &Hand<'_, '_, K, V, S>)
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let queued = (self.small.len() + self.main.len()) as u64;
        if queued < 64 || stale_slots.load(Ordering::Relaxed) * 2 < queued {
            return;
        }
        stale_slots.store(0, Ordering::Relaxed);
        self.small_weight -= retain_live(&mut self.small, self.weighted, &self.base, hand);
        self.main_weight -= retain_live(&mut self.main, self.weighted, &self.base, hand);
        self.cursor = 0;
    }

    /// Folds an entry's hits into the sketch (and into the climber's hit-ratio estimate).
    fn fold<S>(&mut self, entry: Queued, found: &Found<'_, K, V>, hand: &Hand<'_, '_, K, V, S>)
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let hits = found.take_hits();
        if hits != 0 {
            let hash = self.hash_of(entry, found, hand);
            fold_hits(&mut self.sketch, &mut self.climber, hits, hash);
        }
    }

    /// Moves the cursor over the next queued entries: folds their hits, and removes expired ones
    /// (their queue entries are dropped when the hand reaches them), so expired entries nobody
    /// reads are reclaimed even when nothing is evicted.
    fn advance_cursor<'g, S>(
        &mut self,
        hand: &Hand<'_, 'g, K, V, S>,
        departed: &mut Departures<'g, K, V>,
    ) where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let queued_len = self.small.len() + self.main.len();
        for _ in 0..CURSOR_STEPS.min(queued_len) {
            self.cursor += 1;
            if self.cursor >= queued_len {
                self.cursor = 0;
            }
            let entry = queued_at(&self.small, &self.main, self.cursor);
            let Slot::Live(found) = hand.raw.resolve(&self.base, entry.slot, hand.guard) else {
                continue;
            };
            if hand.expired(&found) {
                hand.expire(&found, Freed::Pending, departed);
            } else {
                self.fold(entry, &found, hand);
            }
        }
        // The next visits' entries are cold (each was queued long ago): start loading their
        // slots now, for the next admission. (Without it the cursor's loads were a third of the
        // admission path's samples on churn.) The visits above changed no queue, so
        // `queued_len` holds.
        let mut ahead = self.cursor;
        for _ in 0..CURSOR_STEPS.min(queued_len) {
            ahead += 1;
            if ahead >= queued_len {
                ahead = 0;
            }
            hand.raw
                .prefetch_slot(&self.base, queued_at(&self.small, &self.main, ahead).slot);
        }
    }

    /// Counts a miss and, at the end of each period, moves the small queue's share toward a
    /// better hit ratio.
    fn climb<S>(&mut self, hand: &Hand<'_, '_, K, V, S>) {
        let capacity = hand.capacity.max(1) as f64;
        let climber = &mut self.climber;
        climber.requests += 1;
        if climber.step == 0.0 {
            climber.step = capacity * 0.02;
        }
        if climber.previous < 0.0 && hand.weight.load(Ordering::Relaxed) < hand.capacity {
            // Warming up: measure only once the shard is full.
            climber.requests = 0;
            climber.hits = 0;
            return;
        }
        if climber.requests < climber.period {
            return;
        }
        let ratio = climber.hits as f64 / climber.requests as f64;
        climber.requests = 0;
        climber.hits = 0;
        if climber.previous < 0.0 {
            climber.previous = ratio;
            return;
        }
        let delta = ratio - climber.previous;
        // Turn back only on a drop beyond the measurement's noise: two standard errors of a hit
        // ratio over one period are at most 1/sqrt(period). Turning back on every dip sent the
        // small queue on excursions several times a run on loop @ 512 with 2 threads, whose
        // requests arrive slightly out of order (12 alternating runs: 49.69% on average
        // before, 49.84% after; 1 thread unchanged).
        if delta < -1.0 / (climber.period as f64).sqrt() {
            climber.direction = -climber.direction;
        }
        if delta.abs() > 0.05 {
            climber.step = capacity * 0.02;
        } else {
            climber.step *= 0.98;
        }
        climber.previous = ratio;
        let low = small_min(capacity);
        let high = (capacity * SMALL_MAX).max(low);
        // A shrink takes at most half of small in one period, so that a cliff (a reuse distance
        // small just covered) is crossed in measured steps rather than skipped: 2% of capacity
        // took kv/corda @ 2,827 from 31.6 entries to the floor of 2.8 in one move, past its
        // reuses (most 17-64 requests apart), and the drop of the period that straddled the
        // move stayed inside the noise bound (28.86% against 33.33% for every simulator and
        // LRU; 31.26% with the cap; the table's rows unchanged within noise).
        let step = (climber.direction * climber.step).max(-self.small_target / 2.0);
        self.small_target = (self.small_target + step).clamp(low, high);
    }

    /// Counts an entry leaving small, and halves small when it has been of no use: twice as many
    /// entries as the shard holds left it in a row without a hit there, while main took hits
    /// enough that a share of them the size of small would be [`UNUSED_SMALL_EVIDENCE`]. (In a
    /// scan nothing hits anywhere, and that says nothing about small.) The climber then starts
    /// over from the new share, and grows it again if the hit ratio falls. On a loop longer than
    /// the cache, the climber's 2% steps alone took about 100,000 requests to shrink small to
    /// one entry; this takes a few thousand.
    fn count_small_departure(&mut self, was_used: bool, capacity: i64) {
        if was_used {
            self.restart_unused_run();
            return;
        }
        self.unused_small_departures += 1;
        let capacity = capacity.max(1) as f64;
        let low = small_min(capacity);
        let queued = (self.small.len() + self.main.len()).max(1) as u64;
        if self.unused_small_departures < 2 * queued || self.small_target <= low {
            return;
        }
        let main_hits = (self.climber.total_hits - self.hits_before_unused_run) as f64;
        let hits_for_small_share =
            main_hits * self.small_target / (capacity - self.small_target).max(1.0);
        if hits_for_small_share < UNUSED_SMALL_EVIDENCE {
            return; // nothing hit anywhere yet (a scan): no evidence against small
        }
        self.small_target = (self.small_target / 2.0).max(low);
        self.restart_unused_run();
        self.climber.restart();
    }

    fn restart_unused_run(&mut self) {
        self.unused_small_departures = 0;
        self.hits_before_unused_run = self.climber.total_hits;
    }

    /// The entry main would evict next: runs the CLOCK hand (entries with a non-zero count move
    /// to the back with the count decremented and their hits folded) and drops the entries of
    /// removed keys. The victim stays at the head.
    fn main_victim<'g, S>(
        &mut self,
        hand: &Hand<'_, 'g, K, V, S>,
    ) -> Option<(Queued, Found<'g, K, V>)>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        loop {
            let &head = self.main.front()?;
            if let Some(&next) = self.main.get(1) {
                self.prefetch(next, hand); // the head after this one, cold like it
            }
            let found = match hand.raw.resolve(&self.base, head.slot, hand.guard) {
                Slot::Live(found) => found,
                gone => {
                    self.main.pop_front();
                    self.main_weight -= u64::from(self.weight_of(head));
                    hand.drop_entry(gone);
                    continue;
                }
            };
            let frequency = found.frequency();
            if frequency == 0 || hand.expired(&found) {
                return Some((head, found));
            }
            self.main.pop_front();
            found.set_frequency(frequency - 1);
            self.fold(head, &found, hand);
            self.main.push_back(head);
        }
    }

    /// TinyLFU admission of a candidate leaving small: yes while main has room, else only if the
    /// sketch rates it above main's next victim by more than the margin.
    fn admit<S>(&mut self, candidate: u32, main_share: u64, hand: &Hand<'_, '_, K, V, S>) -> bool
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        if self.main_weight < main_share {
            return true;
        }
        let Some((entry, victim)) = self.main_victim(hand) else {
            return true;
        };
        let victim_hash = self.hash_of(entry, &victim, hand);
        let victim = self.sketch.estimate(victim_hash) + u32::from(victim.hits());
        self.sketch.estimate(candidate) > victim + ADMISSION_MARGIN
    }

    /// Evicts until the shard is within its capacity (or nothing is left to evict).
    fn evict_while_over<'g, S>(
        &mut self,
        hand: &Hand<'_, 'g, K, V, S>,
        departed: &mut Departures<'g, K, V>,
    ) where
        K: Hash + Eq,
        S: BuildHasher,
    {
        while hand.live_weight() > hand.capacity {
            // (Rounded by hand: `f64::round` is a library call, and this runs on every miss.)
            let small_share = ((self.small_target + 0.5) as u64).max(1);
            let main_share = (hand.capacity.max(0) as u64).saturating_sub(small_share);
            if self.small_weight >= small_share || self.main.is_empty() {
                let Some(candidate) = self.small.pop_front() else {
                    return; // both queues empty: the excess is entries still being linked
                };
                if let Some(&next) = self.small.front() {
                    self.prefetch(next, hand); // the next admission's candidate
                }
                let weight = self.weight_of(candidate);
                self.small_weight -= u64::from(weight);
                let found = match hand.raw.resolve(&self.base, candidate.slot, hand.guard) {
                    Slot::Live(found) => found,
                    gone => {
                        hand.drop_entry(gone);
                        continue;
                    }
                };
                // (If a write replaced the expired value meanwhile, the entry is a live candidate.)
                if hand.expired(&found) && hand.expire(&found, Freed::Reusable, departed) {
                    continue;
                }
                let hash = self.hash_of(candidate, &found, hand);
                if self.weighted {
                    self.ghost.prefetch(hash); // most candidates are evicted into it
                }
                self.count_small_departure(found.frequency() >= 1, hand.capacity);
                let seen_before = found.frequency() >= 1 || self.sketch.estimate(hash) >= 2;
                let promote = (seen_before && self.admit(hash, main_share, hand))
                    || self.main_weight < main_share;
                self.fold(candidate, &found, hand);
                if promote {
                    found.set_frequency(0);
                    self.main_weight += u64::from(weight);
                    self.main.push_back(candidate);
                } else {
                    self.ghost.insert(hash, Self::ghost_capacity(hand.capacity));
                    hand.evict(&found, departed);
                }
            } else {
                let Some((entry, victim)) = self.main_victim(hand) else {
                    continue;
                };
                if hand.expired(&victim) {
                    if !hand.expire(&victim, Freed::Reusable, departed) {
                        continue; // a write replaced the expired value: look at the head again
                    }
                } else {
                    let hash = self.hash_of(entry, &victim, hand);
                    if is_main_ghost_sample(hash) {
                        let sampled =
                            Self::ghost_capacity(hand.capacity) / MAIN_GHOST_SAMPLE as usize;
                        self.main_ghost.insert(hash, sampled.max(1));
                    }
                    hand.evict(&victim, departed);
                }
                self.main
                    .pop_front()
                    .expect("main_victim leaves its victim at the head");
                self.main_weight -= u64::from(self.weight_of(entry));
            }
        }
    }
}

impl<K, V> Shard<K, V> {
    fn hand<'a, 'g, S>(
        &'a self,
        raw: &'a RawTable<K, V, S>,
        now: u64,
        guard: &'g Guard,
    ) -> Hand<'a, 'g, K, V, S> {
        Hand {
            weight: &self.weight,
            capacity: self.capacity,
            raw,
            now,
            guard,
        }
    }
}

/// The entry at `position` of `small` followed by `main` (the cursor's walk).
#[inline]
fn queued_at(small: &VecDeque<Queued>, main: &VecDeque<Queued>, position: usize) -> Queued {
    match small.get(position) {
        Some(&entry) => entry,
        None => main[position - small.len()],
    }
}

/// Whether the main ghost keeps `hash` (its top bits; the ghosts place hashes by spreading them).
fn is_main_ghost_sample(hash: u32) -> bool {
    u64::from(hash >> 29) % MAIN_GHOST_SAMPLE == 0
}

/// Keeps the entries of live keys, dropping (and freeing the slots of) the others; returns the
/// weight dropped.
fn retain_live<K, V, S>(
    queue: &mut VecDeque<Queued>,
    weighted: bool,
    base: &QueueBase<K, V>,
    hand: &Hand<'_, '_, K, V, S>,
) -> u64
where
    K: Hash + Eq,
    S: BuildHasher,
{
    let mut dropped = 0;
    queue.retain(
        |entry| match hand.raw.resolve(base, entry.slot, hand.guard) {
            Slot::Live(_) => true,
            gone => {
                dropped += if weighted {
                    u64::from(entry.weight_or_hash)
                } else {
                    1
                };
                hand.drop_entry(gone);
                false
            }
        },
    );
    dropped
}

/// Rewrites a queue's slot indexes with `translate`, dropping the entries it has no index for;
/// returns the weight dropped.
fn retain_translated(
    queue: &mut VecDeque<Queued>,
    weighted: bool,
    translate: &mut dyn FnMut(u32) -> Option<u32>,
) -> u64 {
    let mut dropped = 0;
    queue.retain_mut(|entry| match translate(entry.slot) {
        Some(moved) => {
            entry.slot = moved;
            true
        }
        None => {
            dropped += if weighted {
                u64::from(entry.weight_or_hash)
            } else {
                1
            };
            false
        }
    });
    dropped
}

/// Folds `hits` of the key of `hash` into the sketch and into the climber's counts (a free
/// function so that it can borrow those two apart from the queue the entry sits in).
fn fold_hits(sketch: &mut Sketch, climber: &mut Climber, hits: u8, hash: u32) {
    sketch.add(hash, u32::from(hits));
    climber.hits += u64::from(hits);
    climber.requests += u64::from(hits);
    climber.total_hits += u64::from(hits);
}

impl Climber {
    fn new(period: u64) -> Self {
        let mut climber = Climber {
            requests: 0,
            hits: 0,
            total_hits: 0,
            previous: 0.0,
            step: 0.0,
            direction: 0.0,
            period,
        };
        climber.restart();
        climber
    }

    /// Back to the state of a new cache (`total_hits` aside): the next full period only records
    /// its hit ratio, the first move shrinks small, and the step is set again at the next miss.
    fn restart(&mut self) {
        self.requests = 0;
        self.hits = 0;
        self.previous = -1.0;
        self.step = 0.0;
        self.direction = -1.0;
    }
}

/// The small queue's smallest share of a shard's capacity (in weight units).
fn small_min(capacity: f64) -> f64 {
    (capacity * SMALL_MIN).max(1.0)
}

/// What the eviction hand works with.
struct Hand<'a, 'g, K, V, S> {
    weight: &'a AtomicI64,
    capacity: i64,
    raw: &'a RawTable<K, V, S>,
    now: u64,
    guard: &'g Guard,
}

impl<'g, K, V, S> Hand<'_, 'g, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// Whether `found`'s value has expired. A `now` of 0 means no entry had a deadline when the
    /// write began, and nothing expires at 0 anyway: then the node is not read at all, which
    /// spares the hand and the cursor a cache miss per entry they pass.
    #[inline]
    fn expired(&self, found: &Found<'g, K, V>) -> bool {
        self.now != 0 && crate::expiry::found_expired(found, self.now)
    }

    /// The shard's weight: its live entries', every one of them queued.
    fn live_weight(&self) -> i64 {
        self.weight.load(Ordering::Acquire)
    }

    /// Finishes with a queue entry whose key is gone: a pending slot is freed for other keys.
    fn drop_entry(&self, gone: Slot<'_, K, V>) {
        if let Slot::Pending(pending) = gone {
            self.raw.release(pending);
        }
    }

    /// Evicts an entry whatever value it holds by now (eviction chose the entry, not a value),
    /// accounting for the exact weight of the value it removed; the caller drops its queue
    /// entry. False if someone else removed it first.
    fn evict(&self, found: &Found<'g, K, V>, departed: &mut Departures<'g, K, V>) -> bool {
        match self.raw.remove_current(found, Freed::Reusable, self.guard) {
            Some(removed) => self.departs(removed, RemovalCause::Evicted, departed),
            None => false,
        }
    }

    /// Removes an entry found expired, only if it still holds the value found expired: a write
    /// that landed since stored a live value, which must stay. `freed` says whether the caller
    /// drops the queue entry now (or leaves the slot pending for the hand). False if the entry
    /// changed.
    fn expire(
        &self,
        found: &Found<'g, K, V>,
        freed: Freed,
        departed: &mut Departures<'g, K, V>,
    ) -> bool {
        self.raw.remove(found, freed, self.guard)
            && self.departs(*found, RemovalCause::Expired, departed)
    }

    fn departs(
        &self,
        removed: Found<'g, K, V>,
        cause: RemovalCause,
        departed: &mut Departures<'g, K, V>,
    ) -> bool {
        self.weight
            .fetch_sub(i64::from(removed.weight()), Ordering::AcqRel);
        departed.push(removed, cause);
        true
    }
}
