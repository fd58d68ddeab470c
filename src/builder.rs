//! Cache configuration.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use crossbeam_epoch::Collector;

use crate::cache::{Cache, Reclaimer};

/// Configures and builds a [`Cache`].
///
/// ```
/// use cascache::Cache;
///
/// let cache: Cache<String, Vec<u8>> = Cache::builder()
///     .max_capacity(10_000)
///     .build();
/// assert!(cache.is_empty());
/// ```
#[must_use]
pub struct CacheBuilder<K, V, S = ahash::RandomState> {
    max_capacity: u64,
    hasher: S,
    collector: Option<Collector>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> CacheBuilder<K, V> {
    pub(crate) fn new() -> Self {
        CacheBuilder {
            max_capacity: u64::MAX,
            hasher: ahash::RandomState::new(),
            collector: None,
            _types: PhantomData,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// The number of entries the cache is sized for. The table is allocated up front for this
    /// many entries (up to about a million; beyond that it grows as needed). Default: unbounded.
    ///
    /// ```
    /// let cache = cascache::Cache::<u32, u32>::builder().max_capacity(100).build();
    /// # drop(cache);
    /// ```
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = max_capacity;
        self
    }

    /// The hasher to use instead of the default (ahash, randomly seeded).
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let cache = cascache::Cache::<u32, u32>::builder()
    ///     .hasher(RandomState::new())
    ///     .build();
    /// cache.insert(1, 1);
    /// ```
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            max_capacity: self.max_capacity,
            hasher,
            collector: self.collector,
            _types: PhantomData,
        }
    }

    /// Retire removed and replaced values through this epoch collector instead of
    /// crossbeam-epoch's global one. With a collector of its own, a cache drops every value it
    /// ever held by the time it and its collector are dropped; the price is a slower pin
    /// (each operation registers with the collector). Useful in tests and loom models.
    ///
    /// ```
    /// use crossbeam_epoch::Collector;
    /// let cache = cascache::Cache::<u32, u32>::builder()
    ///     .collector(Collector::new())
    ///     .build();
    /// cache.insert(1, 1);
    /// ```
    pub fn collector(mut self, collector: Collector) -> Self {
        self.collector = Some(collector);
        self
    }

    /// Builds the cache.
    pub fn build(self) -> Cache<K, V, S>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
        S: BuildHasher,
    {
        let capacity = usize::try_from(self.max_capacity).unwrap_or(usize::MAX);
        let reclaimer = match self.collector {
            Some(collector) => Reclaimer::Local(collector),
            #[cfg(not(loom))]
            None => Reclaimer::Global,
            #[cfg(loom)]
            None => Reclaimer::Local(Collector::new()),
        };
        Cache::from_parts(capacity, self.hasher, reclaimer)
    }
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("collector", &self.collector.is_some())
            .finish_non_exhaustive()
    }
}
