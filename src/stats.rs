//! Statistics cheap enough to leave on: striped counters (one cache line per thread, written
//! without an atomic read-modify-write: see `raw::counter`), summed when read.

use crate::raw::Counters;

/// A snapshot of a cache's counters since it was built ([`Cache::stats`](crate::Cache::stats)).
///
/// ```
/// let cache = cascache::Cache::new(100);
/// cache.insert("k", 1);
/// cache.get("k");
/// cache.get("missing");
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found the key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Writes that added a key.
    pub inserts: u64,
    /// Writes that replaced a key's value.
    pub updates: u64,
    /// Entries removed by a call.
    pub removals: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries that expired (found by a read, a write or the eviction hand).
    pub expirations: u64,
    /// `compare_and_swap` calls that stored (memcached's `cas_hits`).
    pub cas_hits: u64,
    /// `compare_and_swap` calls on a missing key (`cas_misses`).
    pub cas_misses: u64,
    /// `compare_and_swap` calls with a stale version (`cas_badval`).
    pub cas_badval: u64,
}

impl CacheStats {
    /// hits / (hits + misses), or 0 before any read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Stat {
    Hit,
    Miss,
    Insert,
    Update,
    Removal,
    Eviction,
    Expiration,
    CasHit,
    CasMiss,
    CasBadval,
}

const STATS: usize = 10;

pub(crate) struct Stats {
    counters: Counters<STATS>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            counters: Counters::new(),
        }
    }

    #[inline]
    pub(crate) fn record(&self, stat: Stat) {
        self.counters.increment(stat as usize);
    }

    #[inline]
    pub(crate) fn add(&self, stat: Stat, count: u64) {
        self.counters.add(stat as usize, count);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let sum = |stat: Stat| -> u64 { self.counters.sum(stat as usize) };
        CacheStats {
            hits: sum(Stat::Hit),
            misses: sum(Stat::Miss),
            inserts: sum(Stat::Insert),
            updates: sum(Stat::Update),
            removals: sum(Stat::Removal),
            evictions: sum(Stat::Eviction),
            expirations: sum(Stat::Expiration),
            cas_hits: sum(Stat::CasHit),
            cas_misses: sum(Stat::CasMiss),
            cas_badval: sum(Stat::CasBadval),
        }
    }
}
