//! Cache configuration.

use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_epoch::Collector;

use crate::cache::Cache;
use crate::config::{Config, Listener, Reclaimer, Weigher};
use crate::expiry::{Clock, MonotonicClock, SharedClock};
use crate::policy::RemovalCause;

/// Configures and builds a [`Cache`].
///
/// ```
/// use std::time::Duration;
/// use cascache::Cache;
///
/// let cache: Cache<String, Vec<u8>> = Cache::builder()
///     .max_capacity(64 * 1024 * 1024) // bytes, with the weigher below
///     .weigher(|key: &String, value: &Vec<u8>| (key.len() + value.len()) as u32)
///     .time_to_live(Duration::from_secs(300))
///     .build();
/// assert!(cache.is_empty());
/// ```
#[must_use]
pub struct CacheBuilder<K, V, S = ahash::RandomState> {
    max_capacity: Option<u64>,
    initial_capacity: Option<usize>,
    shards: Option<usize>,
    hasher: S,
    collector: Option<Collector>,
    weigher: Option<Weigher<K, V>>,
    time_to_live: Option<Duration>,
    time_to_idle: Option<Duration>,
    clock: Option<SharedClock>,
    listener: Option<Listener<K, V>>,
    ordered_versions: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

/// A configuration [`CacheBuilder::try_build`] rejects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A time to live or time to idle of zero: every entry would be expired on arrival.
    ZeroDuration(&'static str),
    /// A weigher without a `max_capacity`: weights would bound nothing.
    WeigherWithoutCapacity,
    /// `shards(0)`.
    ZeroShards,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroDuration(what) => write!(f, "{what} must be longer than zero"),
            BuildError::WeigherWithoutCapacity => {
                f.write_str("a weigher needs a max_capacity to bound")
            }
            BuildError::ZeroShards => f.write_str("a cache needs at least one shard"),
        }
    }
}

impl Error for BuildError {}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A cache for about `max_capacity` entries, with the default hasher.
    ///
    /// ```
    /// let cache: cascache::Cache<u64, String> = cascache::Cache::new(10_000);
    /// assert!(cache.is_empty());
    /// ```
    pub fn new(max_capacity: u64) -> Self {
        Self::builder().max_capacity(max_capacity).build()
    }

    /// A builder to configure a cache.
    ///
    /// ```
    /// let cache = cascache::Cache::<String, u64>::builder().max_capacity(500).build();
    /// cache.insert("a".to_string(), 1);
    /// assert_eq!(cache.get("a"), Some(1));
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

impl<K, V> CacheBuilder<K, V> {
    pub(crate) fn new() -> Self {
        CacheBuilder {
            max_capacity: None,
            initial_capacity: None,
            shards: None,
            hasher: ahash::RandomState::new(),
            collector: None,
            weigher: None,
            time_to_live: None,
            time_to_idle: None,
            clock: None,
            listener: None,
            ordered_versions: false,
            _types: PhantomData,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Bounds the cache: at most this many entries, or this much total weight with a
    /// [`weigher`](Self::weigher). Past it, writes evict (S3-FIFO). Without it the cache is
    /// unbounded (a concurrent map with versions and expiry).
    ///
    /// ```
    /// let cache = cascache::Cache::<u32, u32>::builder().max_capacity(100).build();
    /// for i in 0..1_000 {
    ///     cache.insert(i, i);
    /// }
    /// assert!(cache.len() <= 100);
    /// ```
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = Some(max_capacity);
        self
    }

    /// How many entries to allocate room for up front (default: `max_capacity` when it counts
    /// entries, else a small table that grows).
    ///
    /// ```
    /// let cache = cascache::Cache::<u32, u32>::builder().initial_capacity(10_000).build();
    /// # drop(cache);
    /// ```
    pub fn initial_capacity(mut self, entries: usize) -> Self {
        self.initial_capacity = Some(entries);
        self
    }

    /// Gives each entry a weight toward `max_capacity` (default: 1 per entry). Called on every
    /// write with the key and the new value.
    ///
    /// ```
    /// let cache = cascache::Cache::<u32, String>::builder()
    ///     .max_capacity(10)
    ///     .weigher(|_, v: &String| v.len() as u32)
    ///     .build();
    /// cache.insert(1, "0123456789".into());
    /// cache.insert(2, "x".into()); // evicts something: 11 > 10
    /// assert!(cache.weighted_size().0 <= 10);
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(weigher));
        self
    }

    /// A default time to live for entries written without one.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::<u32, u32>::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .build();
    /// # drop(cache);
    /// ```
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// Entries expire after going unread this long (reads extend it, at most once a second
    /// per entry). With a time to live too, whichever comes first applies.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::<u32, u32>::builder()
    ///     .time_to_idle(Duration::from_secs(600))
    ///     .build();
    /// # drop(cache);
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.time_to_idle = Some(tti);
        self
    }

    /// Versions that increase in the order writes are issued, across threads (memcached's cas
    /// uniques, which its meta protocol compares: "invalidate if the supplied cas is older").
    /// Costs one shared `fetch_add` per write; by default each thread draws versions from a
    /// block of its own, and versions are only unique.
    ///
    /// ```
    /// let cache = cascache::Cache::builder().ordered_versions().build();
    /// let first = cache.insert("a", 1);
    /// let second = std::thread::scope(|s| s.spawn(|| cache.insert("b", 2)).join().unwrap());
    /// assert!(second > first);
    /// ```
    pub fn ordered_versions(mut self) -> Self {
        self.ordered_versions = true;
        self
    }

    /// The clock expiry is measured with (default: monotonic time). See [`MockClock`](crate::MockClock).
    ///
    /// ```
    /// let clock = cascache::MockClock::new();
    /// let cache = cascache::Cache::<u32, u32>::builder().clock(clock.clone()).build();
    /// # drop(cache);
    /// ```
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Called with the key, the value and the cause whenever an entry leaves the cache
    /// (evicted, expired, removed, or its value replaced). It runs on the thread whose call made
    /// the entry leave, after the cache has released every lock, so it may call the cache.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cascache::RemovalCause;
    ///
    /// let evicted = Arc::new(Mutex::new(Vec::new()));
    /// let log = evicted.clone();
    /// let cache = cascache::Cache::<u32, u32>::builder()
    ///     .max_capacity(1)
    ///     .eviction_listener(move |k, _v, cause| {
    ///         if cause == RemovalCause::Evicted {
    ///             log.lock().unwrap().push(*k)
    ///         }
    ///     })
    ///     .build();
    /// cache.insert(1, 1);
    /// cache.insert(2, 2);
    /// assert_eq!(evicted.lock().unwrap().len(), 1);
    /// ```
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// How many independently locked eviction shards (default: a few per core, fewer for small
    /// capacities). Each shard bounds its share of `max_capacity`.
    ///
    /// ```
    /// let cache = cascache::Cache::<u32, u32>::builder().max_capacity(1_000).shards(1).build();
    /// # drop(cache);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
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
            initial_capacity: self.initial_capacity,
            shards: self.shards,
            hasher,
            collector: self.collector,
            weigher: self.weigher,
            time_to_live: self.time_to_live,
            time_to_idle: self.time_to_idle,
            clock: self.clock,
            listener: self.listener,
            ordered_versions: self.ordered_versions,
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

    /// Builds the cache, or says what is wrong with the configuration.
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = cascache::Cache::<u32, u32>::builder().time_to_live(Duration::ZERO).try_build();
    /// assert!(err.is_err());
    /// ```
    pub fn try_build(self) -> Result<Cache<K, V, S>, BuildError>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
        S: BuildHasher,
    {
        if self.time_to_live == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("time_to_live"));
        }
        if self.time_to_idle == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("time_to_idle"));
        }
        if self.weigher.is_some() && self.max_capacity.is_none() {
            return Err(BuildError::WeigherWithoutCapacity);
        }
        if self.shards == Some(0) {
            return Err(BuildError::ZeroShards);
        }
        let reclaimer = match self.collector {
            Some(collector) => Reclaimer::Local(collector),
            #[cfg(not(loom))]
            None => Reclaimer::Global,
            #[cfg(loom)]
            None => Reclaimer::Local(Collector::new()),
        };
        let config = Config {
            weigher: self.weigher,
            time_to_live: self.time_to_live,
            time_to_idle: self.time_to_idle,
            clock: self
                .clock
                .unwrap_or_else(|| Arc::new(MonotonicClock::new())),
            listener: self.listener,
            ordered_versions: self.ordered_versions,
        };
        Ok(Cache::from_parts(
            self.max_capacity,
            self.initial_capacity,
            self.shards,
            self.hasher,
            config,
            reclaimer,
        ))
    }

    /// Builds the cache.
    ///
    /// # Panics
    ///
    /// On a configuration [`try_build`](Self::try_build) rejects.
    pub fn build(self) -> Cache<K, V, S>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Send + Sync + 'static,
        S: BuildHasher,
    {
        match self.try_build() {
            Ok(cache) => cache,
            Err(err) => panic!("invalid cache configuration: {err}"),
        }
    }
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("initial_capacity", &self.initial_capacity)
            .field("time_to_live", &self.time_to_live)
            .field("time_to_idle", &self.time_to_idle)
            .field("weigher", &self.weigher.is_some())
            .field("collector", &self.collector.is_some())
            .field("ordered_versions", &self.ordered_versions)
            .finish_non_exhaustive()
    }
}
