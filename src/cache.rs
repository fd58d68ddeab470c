//! The public cache: hashing, versions and guards over the raw table.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_epoch::Guard;

use crate::config::{Config, Reclaimer};
use crate::error::{CasError, Occupied};
use crate::expiry::{self, SharedClock};
use crate::flight::Loading;
use crate::policy::{Departures, Policy, RemovalCause};
use crate::raw::{Found, Freed, NewNode, OwnedIter, RawTable, Rejected};
use crate::stats::{CacheStats, Stat, Stats};
use crate::version::{next_ordered_version, next_version, Version};

/// A time to idle is extended by reads at most this often (per entry), so hot entries' readers
/// do not all write the deadline.
const IDLE_GRANULARITY_MS: u64 = 1_000;

/// A concurrent cache whose values carry versions.
///
/// Reads ([`get`](Cache::get), [`gets`](Cache::gets), [`get_with`](Cache::get_with)) take no
/// lock and write no shared memory. Every write stores the value with a fresh [`Version`]; a
/// [`compare_and_swap`](Cache::compare_and_swap) stores only if the key still holds the version
/// the caller read, which is memcached's `gets`/`cas` without the network hop.
///
/// `Cache<K, V>` is `Send + Sync` when `K` and `V` are; share it with an `Arc` or a scoped
/// thread. See the [crate documentation](crate) for a guide.
///
/// ```
/// use cascache::Cache;
///
/// let cache = Cache::new(1_000);
/// cache.insert("hits", 0u64);
/// // The founding loop: read with a version, compute, store only if unchanged, else retry.
/// loop {
///     let (n, version) = cache.gets("hits").unwrap();
///     if cache.compare_and_swap("hits", version, n + 1).is_ok() {
///         break;
///     }
/// }
/// assert_eq!(cache.get("hits"), Some(1));
/// ```
pub struct Cache<K, V, S = ahash::RandomState> {
    // Field order matters: the table drops before the collector (see `Drop for Cache`).
    policy: Option<Policy<K, V>>,
    raw: RawTable<K, V, S>,
    config: Config<K, V>,
    stats: Stats,
    loading: Loading<K, V>,
    reclaimer: Reclaimer,
    /// Whether any entry may carry a deadline (a default time to live or idle, or a write or
    /// touch that set one): until then writes do not read the clock. A hint that only ever goes
    /// from false to true and guards no memory, so it is a plain std atomic outside the loom
    /// models.
    timed: std::sync::atomic::AtomicBool,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn from_parts(
        capacity: Option<u64>,
        initial_capacity: Option<usize>,
        shards: Option<usize>,
        hasher: S,
        config: Config<K, V>,
        reclaimer: Reclaimer,
    ) -> Self {
        // Without a weigher the capacity counts entries, and the table is presized for it, with
        // room for the few entries that writers link before they evict for them.
        let presize = initial_capacity.unwrap_or(match (capacity, &config.weigher) {
            (Some(capacity), None) => {
                let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
                capacity.saturating_add(capacity / 64 + 64)
            }
            _ => 0,
        });
        let shards = capacity.map(|capacity| Policy::<K, V>::shard_count(capacity, shards));
        let raw = RawTable::new(presize, hasher, shards.unwrap_or(0));
        let weighted = config.weigher.is_some();
        let policy = capacity
            .zip(shards)
            .map(|(capacity, shards)| Policy::new(capacity, shards, weighted, &raw));
        let timed = config.time_to_live.is_some() || config.time_to_idle.is_some();
        Cache {
            timed: std::sync::atomic::AtomicBool::new(timed),
            policy,
            raw,
            config,
            stats: Stats::new(),
            loading: Loading::new(),
            reclaimer,
        }
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.raw.hash(key)
    }

    /// How a removal outside the eviction hand leaves the key's slot: pending for the queue
    /// that still names it, in a bounded cache.
    #[inline]
    fn freed(&self) -> Freed {
        if self.policy.is_some() {
            Freed::Pending
        } else {
            Freed::Reusable
        }
    }

    #[inline]
    pub(crate) fn guard(&self) -> Guard {
        self.reclaimer.pin()
    }

    #[inline]
    fn now(&self) -> u64 {
        self.config.clock.now_millis()
    }

    /// The time a write works at: the clock, or 0 ("before every deadline") while no entry can
    /// have a deadline, which spares writes a clock read (~20 ns). A write given a time to live
    /// first records that entries may now have deadlines. A thread that has not seen that yet
    /// works as if its clock read had come first; [`Cache::expired`] reads the clock for any
    /// entry that does have a deadline.
    #[inline]
    fn write_now(&self, ttl: Option<Duration>) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        if ttl.is_some() && !self.timed.load(Relaxed) {
            self.timed.store(true, Relaxed);
        }
        if self.timed.load(Relaxed) {
            self.now()
        } else {
            0
        }
    }

    /// Whether `found`'s value has expired at `now` (a [`Cache::write_now`] time: when it is 0,
    /// a value with a deadline is checked against the clock).
    #[inline]
    fn expired(&self, found: &Found<'_, K, V>, now: u64) -> bool {
        found.has_deadline()
            && expiry::found_expired(found, if now == 0 { self.now() } else { now })
    }

    /// `now` for the eviction policy, which compares other entries' deadlines with it.
    #[inline]
    fn policy_now(&self, now: u64) -> u64 {
        if now == 0 {
            self.write_now(None)
        } else {
            now
        }
    }

    fn weigh(&self, key: &K, value: &V) -> u32 {
        self.config
            .weigher
            .as_ref()
            .map_or(1, |weigh| weigh(key, value))
    }

    fn next_version(&self) -> Version {
        if self.config.ordered_versions {
            next_ordered_version()
        } else {
            next_version()
        }
    }

    /// A new node with its weight and deadlines.
    fn new_node(&self, key: K, value: V, ttl: Option<Duration>, now: u64) -> NewNode<K, V> {
        let weight = self.weigh(&key, &value);
        let expires_at = expiry::deadline(now, ttl.or(self.config.time_to_live));
        let idle_expires_at = expiry::deadline(now, self.config.time_to_idle);
        NewNode::new(
            key,
            value,
            self.next_version(),
            (weight, self.config.weigher.is_some()),
            expires_at,
            idle_expires_at,
        )
    }

    /// A node for a conditional write (`replace`, `compare_and_swap`, `update`): like memcached's
    /// `incr`, it keeps the entry's time to live; a time to idle restarts (the write is an access).
    /// The key is the entry's, cloned: a node holds its own.
    fn node_keeping_deadline(
        &self,
        value: V,
        weight: u32,
        old: &Found<'_, K, V>,
        now: u64,
    ) -> NewNode<K, V>
    where
        K: Clone,
    {
        let idle_expires_at = expiry::deadline(now, self.config.time_to_idle);
        NewNode::new(
            old.key().clone(),
            value,
            self.next_version(),
            (weight, self.config.weigher.is_some()),
            old.expires_at(),
            idle_expires_at,
        )
    }

    /// Gives a retried conditional write's node the deadline of the entry it now replaces.
    fn keep_deadline(&self, node: &mut NewNode<K, V>, old: &Found<'_, K, V>, now: u64) {
        node.set_deadlines(
            old.expires_at(),
            expiry::deadline(now, self.config.time_to_idle),
        );
    }

    /// Tells the listener and the statistics about entries that left the cache.
    #[inline]
    pub(crate) fn depart(&self, departed: Departures<'_, K, V>) {
        if departed.is_empty() {
            return;
        }
        let ([evicted, expired, removed], listened) = departed.into_parts();
        for (stat, count) in [
            (Stat::Eviction, evicted),
            (Stat::Expiration, expired),
            (Stat::Removal, removed),
        ] {
            if count != 0 {
                self.stats.add(stat, u64::from(count));
            }
        }
        if let Some(listener) = &self.config.listener {
            for departure in listened {
                listener(
                    departure.entry.key(),
                    departure.entry.value(),
                    departure.cause,
                );
            }
        }
    }

    /// Where a call's departures are collected (see [`Departures`]).
    #[inline]
    pub(crate) fn departures<'g>(&self) -> Departures<'g, K, V> {
        Departures::new(self.config.listener.is_some())
    }

    // ----- reads -----

    /// The live (unexpired) entry of a key, without touching statistics or the policy.
    pub(crate) fn live_in<'g, Q>(&self, key: &Q, guard: &'g Guard) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.live_hashed(self.hash(key), |k| k.borrow() == key, guard)
    }

    #[inline]
    pub(crate) fn live_hashed<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>> {
        let found = self.raw.load(hash, eq, guard)?;
        if found.has_deadline() && expiry::found_expired(&found, self.now()) {
            return None;
        }
        Some(found)
    }

    /// A read: the live entry, recorded as a hit (access count, time to idle) or a miss.
    #[inline]
    pub(crate) fn read_in<'g, Q>(&self, key: &Q, guard: &'g Guard) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read_hashed(self.hash(key), |k| k.borrow() == key, guard)
    }

    /// [`Cache::read_in`] of a key whose hash the caller has computed already.
    #[inline]
    pub(crate) fn read_hashed<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>> {
        match self.live_hashed(hash, eq, guard) {
            Some(found) => {
                self.stats.record(Stat::Hit);
                if self.policy.is_some() {
                    found.record_access();
                }
                if let Some(idle) = self.config.time_to_idle {
                    let deadline = expiry::deadline(self.now(), Some(idle));
                    if deadline >= found.idle_expires_at() + IDLE_GRANULARITY_MS {
                        found.set_idle_expires_at(deadline);
                    }
                }
                Some(found)
            }
            None => {
                self.stats.record(Stat::Miss);
                None
            }
        }
    }

    /// The value of `key`, cloned. memcached's `get`.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("k", vec![1, 2]);
    /// assert_eq!(cache.get("k"), Some(vec![1, 2]));
    /// assert_eq!(cache.get("other"), None);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_with(key, V::clone)
    }

    /// The value of `key` with its version. memcached's `gets`: pass the version to
    /// [`compare_and_swap`](Cache::compare_and_swap) to write only if nobody wrote meanwhile.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// let v = cache.insert("k", 7);
    /// assert_eq!(cache.gets("k"), Some((7, v)));
    /// ```
    pub fn gets<Q>(&self, key: &Q) -> Option<(V, Version)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let guard = self.guard();
        self.read_in(key, &guard)
            .map(|found| (found.value().clone(), found.version()))
    }

    /// Calls `f` on the value of `key` without cloning it, and returns what `f` returns.
    /// `f` runs while the thread is pinned: keep it short.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("page", "a long document".to_string());
    /// assert_eq!(cache.get_with("page", |text| text.len()), Some(15));
    /// ```
    pub fn get_with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.guard();
        self.read_in(key, &guard).map(|found| f(found.value()))
    }

    /// Whether `key` is in the cache (not counted as a read).
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert(1, ());
    /// assert!(cache.contains_key(&1));
    /// assert!(!cache.contains_key(&2));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.guard();
        self.live_in(key, &guard).is_some()
    }

    // ----- writes -----

    /// Accounts for a value that replaced `old` (which may have been expired).
    fn replaced<'g>(
        &self,
        hash: u64,
        old: Found<'g, K, V>,
        new_weight: u32,
        now: u64,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) {
        let cause = if self.expired(&old, now) {
            self.stats.record(Stat::Insert);
            RemovalCause::Expired
        } else {
            self.stats.record(Stat::Update);
            RemovalCause::Replaced
        };
        departed.push(old, cause);
        match &self.policy {
            Some(policy) if old.weight() != new_weight => policy.reweigh(
                hash,
                (old.weight(), new_weight),
                &self.raw,
                self.policy_now(now),
                guard,
                departed,
            ),
            _ => {}
        }
    }

    pub(crate) fn insert_in(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        guard: &Guard,
    ) -> Version {
        let hash = self.hash(&key);
        let now = self.write_now(ttl);
        let node = self.new_node(key, value, ttl, now);
        let version = node.version();
        let weight = node.weight();
        let mut departed = self.departures();
        if self
            .policy
            .as_ref()
            .is_some_and(|policy| !policy.fits(hash, weight))
        {
            // Too heavy to ever be kept: like memcached, the write still drops the old value.
            self.remove_hashed(
                hash,
                |k| k == node.key(),
                RemovalCause::Removed,
                guard,
                &mut departed,
            );
            self.depart(departed);
            let (key, value) = node.into_parts();
            if let Some(listener) = &self.config.listener {
                listener(&key, &value, RemovalCause::Evicted);
            }
            self.stats.record(Stat::Eviction);
            return version;
        }
        let stored = self.store_keyed(hash, node, false, now, guard, &mut departed);
        debug_assert!(stored.is_ok(), "a set never finds the key occupied");
        self.depart(departed);
        version
    }

    /// The write loop of `insert` and `add`: stores `node` (which holds the key) over the key's
    /// entry (live, or expired when `if_absent`), or links it as a new entry. With `if_absent`,
    /// a live entry makes it fail, handing the value back.
    fn store_keyed<'g>(
        &self,
        hash: u64,
        mut node: NewNode<K, V>,
        if_absent: bool,
        now: u64,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) -> Result<Version, Occupied<V>> {
        let (version, weight) = (node.version(), node.weight());
        let mut found = self.raw.load(hash, |k| k == node.key(), guard);
        loop {
            match found {
                Some(live) if if_absent && !self.expired(&live, now) => {
                    return Err(Occupied {
                        current: live.version(),
                        value: node.into_value(),
                    });
                }
                // With `if_absent`, an expired entry counts as absent: store over it.
                Some(existing) => match self.raw.compare_exchange(&existing, node, guard) {
                    Ok(_) => {
                        self.replaced(hash, existing, weight, now, guard, departed);
                        return Ok(version);
                    }
                    Err(back) => {
                        node = back;
                        found = self.raw.load(hash, |k| k == node.key(), guard);
                    }
                },
                None => match self.insert_new(hash, node, now, guard, departed) {
                    Ok(()) => {
                        self.stats.record(Stat::Insert);
                        return Ok(version);
                    }
                    Err(rejected) => {
                        node = rejected.node;
                        found = Some(rejected.existing);
                    }
                },
            }
        }
    }

    /// Links a new entry for a key found absent, through the eviction policy in a bounded cache
    /// (whose shard lock serializes inserts of one key), else under the table's own key lock.
    fn insert_new<'g>(
        &self,
        hash: u64,
        node: NewNode<K, V>,
        now: u64,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) -> Result<(), Rejected<'g, K, V>> {
        match &self.policy {
            Some(policy) => {
                let now = self.policy_now(now);
                policy.insert(hash, node, &self.raw, now, guard, departed)
            }
            None => {
                let _serialized = self.raw.lock_key(hash);
                self.raw.insert(hash, node, guard).map(drop)
            }
        }
    }

    /// Stores `value` under `key`, replacing any value, and returns its new version.
    /// memcached's `set`. The entry gets the cache's default time to live, if any.
    ///
    /// In a bounded cache, a value heavier than the capacity allows is not kept (the eviction
    /// listener hears of it as [`RemovalCause::Evicted`]), and any old value of the key is removed.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// let v1 = cache.insert("k", 1);
    /// let v2 = cache.insert("k", 2);
    /// assert_ne!(v1, v2);
    /// assert_eq!(cache.gets("k"), Some((2, v2)));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Version {
        self.insert_in(key, value, None, &self.guard())
    }

    /// [`insert`](Cache::insert) with a time to live for this entry.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// cache.insert_with_ttl("token", 1, Duration::from_secs(60));
    /// assert_eq!(cache.get("token"), Some(1));
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Version {
        self.insert_in(key, value, Some(ttl), &self.guard())
    }

    pub(crate) fn add_in(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        guard: &Guard,
    ) -> Result<Version, Occupied<V>> {
        let mut departed = self.departures();
        let result = self.add_departing(key, value, ttl, guard, &mut departed);
        self.depart(departed);
        result
    }

    /// `add`, with what it evicted pushed on `departed` for the caller to announce: the loader
    /// stores under its registry's lock, which the eviction listener must not run under.
    pub(crate) fn add_departing<'g>(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) -> Result<Version, Occupied<V>> {
        let hash = self.hash(&key);
        let now = self.write_now(ttl);
        let node = self.new_node(key, value, ttl, now);
        self.store_keyed(hash, node, true, now, guard, departed)
    }

    /// Stores `value` only if `key` is absent (or expired). memcached's `add`.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// assert!(cache.add("k", 1).is_ok());
    /// let err = cache.add("k", 2).unwrap_err();
    /// assert_eq!(err.value, 2);
    /// assert_eq!(cache.get("k"), Some(1));
    /// ```
    pub fn add(&self, key: K, value: V) -> Result<Version, Occupied<V>> {
        self.add_in(key, value, None, &self.guard())
    }

    /// [`add`](Cache::add) with a time to live for this entry.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// assert!(cache.add_with_ttl("lock", 1, Duration::from_secs(5)).is_ok());
    /// ```
    pub fn add_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<Version, Occupied<V>> {
        self.add_in(key, value, Some(ttl), &self.guard())
    }

    /// The write loop shared by `replace` and `compare_and_swap`: store over the live value if
    /// `expected` (when given) is its version.
    fn store_existing<Q>(
        &self,
        key: &Q,
        expected: Option<Version>,
        value: V,
        guard: &Guard,
    ) -> Result<Version, CasError<V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let now = self.write_now(None);
        let mut node: Option<NewNode<K, V>> = None;
        let mut value = Some(value);
        loop {
            let Some(found) = self.live_hashed(hash, |k| k.borrow() == key, guard) else {
                let value = value
                    .or_else(|| node.map(NewNode::into_value))
                    .expect("the value is in one of them");
                return Err(CasError::NotFound(value));
            };
            if let Some(expected) = expected {
                if found.version() != expected {
                    let value = value
                        .or_else(|| node.map(NewNode::into_value))
                        .expect("the value is in one of them");
                    return Err(CasError::Mismatch {
                        current: found.version(),
                        value,
                    });
                }
            }
            let new = match node.take() {
                Some(mut node) => {
                    self.keep_deadline(&mut node, &found, now);
                    node
                }
                None => {
                    let value = value.take().expect("the value is in one of them");
                    let weight = self.weigh(found.key(), &value);
                    self.node_keeping_deadline(value, weight, &found, now)
                }
            };
            let (version, weight) = (new.version(), new.weight());
            match self.raw.compare_exchange(&found, new, guard) {
                Ok(_) => {
                    let mut departed = self.departures();
                    self.replaced(hash, found, weight, now, guard, &mut departed);
                    self.depart(departed);
                    return Ok(version);
                }
                // The entry changed under us: look again (it may now mismatch or be gone).
                Err(back) => node = Some(back),
            }
        }
    }

    pub(crate) fn replace_in<Q>(
        &self,
        key: &Q,
        value: V,
        guard: &Guard,
    ) -> Result<Version, CasError<V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        self.store_existing(key, None, value, guard)
    }

    /// Stores `value` only if `key` is present. memcached's `replace`. Fails only with
    /// [`CasError::NotFound`].
    ///
    /// ```
    /// use cascache::CasError;
    /// let cache = cascache::Cache::new(100);
    /// assert_eq!(cache.replace("k", 1), Err(CasError::NotFound(1)));
    /// cache.insert("k", 0);
    /// assert!(cache.replace("k", 2).is_ok());
    /// assert_eq!(cache.get("k"), Some(2));
    /// ```
    pub fn replace<Q>(&self, key: &Q, value: V) -> Result<Version, CasError<V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        self.replace_in(key, value, &self.guard())
    }

    pub(crate) fn compare_and_swap_in<Q>(
        &self,
        key: &Q,
        expected: Version,
        value: V,
        guard: &Guard,
    ) -> Result<Version, CasError<V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        let result = self.store_existing(key, Some(expected), value, guard);
        self.stats.record(match &result {
            Ok(_) => Stat::CasHit,
            Err(CasError::NotFound(_)) => Stat::CasMiss,
            Err(CasError::Mismatch { .. }) => Stat::CasBadval,
        });
        result
    }

    /// Stores `value` only if `key` still holds version `expected`, and returns the new version.
    /// memcached's `cas`. On failure the value comes back inside the error, with the reason:
    /// [`CasError::NotFound`] (`NOT_FOUND`) or [`CasError::Mismatch`] (`EXISTS`).
    ///
    /// ```
    /// use cascache::{Cache, CasError};
    /// let cache = Cache::new(100);
    /// let v1 = cache.insert("k", 1);
    /// let v2 = cache.compare_and_swap("k", v1, 2).unwrap();
    /// // v1 is stale now: the same call fails and hands the value back.
    /// assert_eq!(
    ///     cache.compare_and_swap("k", v1, 3),
    ///     Err(CasError::Mismatch { current: v2, value: 3 })
    /// );
    /// ```
    pub fn compare_and_swap<Q>(
        &self,
        key: &Q,
        expected: Version,
        value: V,
    ) -> Result<Version, CasError<V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        self.compare_and_swap_in(key, expected, value, &self.guard())
    }

    pub(crate) fn update_in<Q, F>(&self, key: &Q, mut f: F, guard: &Guard) -> Option<Version>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&V) -> Option<V>,
    {
        let hash = self.hash(key);
        let now = self.write_now(None);
        let mut spare: Option<NewNode<K, V>> = None;
        loop {
            let found = self.live_hashed(hash, |k| k.borrow() == key, guard)?;
            let value = f(found.value())?;
            let weight = self.weigh(found.key(), &value);
            let node = match spare.take() {
                Some(mut node) => {
                    node.set_value(value, weight);
                    self.keep_deadline(&mut node, &found, now);
                    node
                }
                None => self.node_keeping_deadline(value, weight, &found, now),
            };
            let version = node.version();
            match self.raw.compare_exchange(&found, node, guard) {
                Ok(_) => {
                    let mut departed = self.departures();
                    self.replaced(hash, found, weight, now, guard, &mut departed);
                    self.depart(departed);
                    return Some(version);
                }
                Err(back) => spare = Some(back),
            }
        }
    }

    /// Runs the founding example's retry loop for you: reads the value, calls `f` with it, and
    /// stores what `f` returns if nobody wrote the key meanwhile, else calls `f` again with the
    /// newer value. `f` returning `None` leaves the value unchanged.
    ///
    /// Returns the stored version, or `None` if the key is absent or `f` declined. `f` may run
    /// several times under contention, so it should have no side effects.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("counter", 41u64);
    /// assert!(cache.update("counter", |n| Some(n + 1)).is_some());
    /// assert_eq!(cache.get("counter"), Some(42));
    /// assert_eq!(cache.update("counter", |_| None), None); // declined
    /// assert_eq!(cache.update("missing", |n| Some(n + 1)), None);
    /// ```
    pub fn update<Q, F>(&self, key: &Q, f: F) -> Option<Version>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&V) -> Option<V>,
    {
        self.update_in(key, f, &self.guard())
    }

    /// Seals the live entry of a key (`cause` says why), accounting for it; the entry is pushed
    /// on `departed`. Expired entries are removed as `Expired` and not returned.
    fn remove_hashed<'g>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        cause: RemovalCause,
        guard: &'g Guard,
        departed: &mut Departures<'g, K, V>,
    ) -> Option<Found<'g, K, V>> {
        loop {
            let found = self.raw.load(hash, &eq, guard)?;
            let expired = self.expired(&found, 0);
            if self.raw.remove(&found, self.freed(), guard) {
                self.removed(
                    found,
                    hash,
                    if expired {
                        RemovalCause::Expired
                    } else {
                        cause
                    },
                    departed,
                );
                return (!expired).then_some(found);
            }
        }
    }

    /// Accounts for an entry (of `hash`) this thread removed outside the eviction hand: its
    /// weight leaves the policy's tally (its queue entry is dropped lazily) and it joins
    /// `departed`.
    fn removed<'g>(
        &self,
        removed: Found<'g, K, V>,
        hash: u64,
        cause: RemovalCause,
        departed: &mut Departures<'g, K, V>,
    ) {
        if let Some(policy) = &self.policy {
            policy.forget(hash, removed.weight());
        }
        departed.push(removed, cause);
    }

    /// Removes the live entry of `key`, returning it (readable until `guard` drops).
    pub(crate) fn remove_in<'g, Q>(&self, key: &Q, guard: &'g Guard) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut departed = self.departures();
        let removed = self.remove_hashed(
            self.hash(key),
            |k| k.borrow() == key,
            RemovalCause::Removed,
            guard,
            &mut departed,
        );
        self.depart(departed);
        removed
    }

    /// Removes `key` and returns its value.
    ///
    /// The value is cloned: other threads may still be reading the removed value, which is
    /// dropped once they are done. Use [`delete`](Cache::delete) when the value is not needed
    /// (or not `Clone`).
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("k", 1);
    /// assert_eq!(cache.remove("k"), Some(1));
    /// assert_eq!(cache.remove("k"), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let guard = self.guard();
        self.remove_in(key, &guard)
            .map(|found| found.value().clone())
    }

    /// Removes `key`; true if it was present. memcached's `delete`.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("k", 1);
    /// assert!(cache.delete("k"));
    /// assert!(!cache.delete("k"));
    /// ```
    pub fn delete<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.guard();
        self.remove_in(key, &guard).is_some()
    }

    pub(crate) fn remove_if_version_in<Q>(
        &self,
        key: &Q,
        expected: Version,
        guard: &Guard,
    ) -> Result<(), CasError<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        loop {
            let Some(found) = self.live_hashed(hash, |k| k.borrow() == key, guard) else {
                return Err(CasError::NotFound(()));
            };
            if found.version() != expected {
                return Err(CasError::Mismatch {
                    current: found.version(),
                    value: (),
                });
            }
            if self.raw.remove(&found, self.freed(), guard) {
                let mut departed = self.departures();
                self.removed(found, hash, RemovalCause::Removed, &mut departed);
                self.depart(departed);
                return Ok(());
            }
        }
    }

    /// Removes `key` only if it still holds version `expected`: a delete that cannot discard a
    /// write it has not seen (memcached's meta `md <key> C<cas>`).
    ///
    /// ```
    /// use cascache::CasError;
    /// let cache = cascache::Cache::new(100);
    /// let v1 = cache.insert("k", 1);
    /// let v2 = cache.insert("k", 2);
    /// assert_eq!(cache.remove_if_version("k", v1), Err(CasError::Mismatch { current: v2, value: () }));
    /// assert_eq!(cache.remove_if_version("k", v2), Ok(()));
    /// assert_eq!(cache.remove_if_version("k", v2), Err(CasError::NotFound(())));
    /// ```
    pub fn remove_if_version<Q>(&self, key: &Q, expected: Version) -> Result<(), CasError<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if_version_in(key, expected, &self.guard())
    }

    // ----- expiry -----

    pub(crate) fn touch_in<'g, Q>(
        &self,
        key: &Q,
        ttl: Option<Duration>,
        guard: &'g Guard,
    ) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        // (`write_now` first records that entries may have deadlines, if this one gets one.)
        let expires_at = expiry::deadline(self.write_now(ttl), ttl);
        loop {
            let found = self.live_hashed(hash, |k| k.borrow() == key, guard)?;
            if found.expires_at() == expires_at {
                return Some(found);
            }
            // A new node with the same value and version, swapped in like any write: a deadline
            // written into the live node in place would be lost to a conditional write that had
            // already copied the old one (the linearizability test caught exactly that).
            let touched = NewNode::new(
                found.key().clone(),
                found.value().clone(),
                found.version(),
                (found.weight(), self.config.weigher.is_some()),
                expires_at,
                found.idle_expires_at(),
            );
            if self.raw.compare_exchange(&found, touched, guard).is_ok() {
                return Some(found);
            }
        }
    }

    /// Gives `key` a new time to live (`None`: never expires), keeping its value and version.
    /// memcached's `touch`. Returns whether the key was present. The value is cloned into a new
    /// node (a touch is a write that keeps the version), so a racing conditional write cannot
    /// lose it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// let v = cache.insert_with_ttl("k", 1, Duration::from_secs(1));
    /// assert!(cache.touch("k", Some(Duration::from_secs(3600))));
    /// assert_eq!(cache.gets("k"), Some((1, v))); // version unchanged
    /// assert!(!cache.touch("missing", None));
    /// ```
    pub fn touch<Q>(&self, key: &Q, ttl: Option<Duration>) -> bool
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let guard = self.guard();
        self.touch_in(key, ttl, &guard).is_some()
    }

    /// Reads `key` and gives it a new time to live in one step. memcached's `gats`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// let v = cache.insert("k", 1);
    /// assert_eq!(cache.get_and_touch("k", Some(Duration::from_secs(60))), Some((1, v)));
    /// ```
    pub fn get_and_touch<Q>(&self, key: &Q, ttl: Option<Duration>) -> Option<(V, Version)>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let guard = self.guard();
        let found = self.touch_in(key, ttl, &guard);
        self.stats.record(if found.is_some() {
            Stat::Hit
        } else {
            Stat::Miss
        });
        found.map(|found| (found.value().clone(), found.version()))
    }

    /// The time `key` has left to live, if it is present: `Some(None)` when it never expires.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("forever", 1);
    /// assert_eq!(cache.time_to_live("forever"), Some(None));
    /// assert_eq!(cache.time_to_live("missing"), None);
    /// ```
    pub fn time_to_live<Q>(&self, key: &Q) -> Option<Option<Duration>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.guard();
        let found = self.live_in(key, &guard)?;
        let deadline = match (found.expires_at(), found.idle_expires_at()) {
            (0, 0) => return Some(None),
            (0, d) | (d, 0) => d,
            (a, b) => a.min(b),
        };
        Some(Some(Duration::from_millis(
            deadline.saturating_sub(self.now()),
        )))
    }

    // ----- whole-cache operations -----

    /// The number of entries. Exact when no write is running; under concurrent writes it is a
    /// snapshot that may be off by the writes in flight. Expired entries count until they are
    /// found and removed.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert(1, 1);
    /// cache.insert(2, 2);
    /// cache.insert(1, 3);
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the cache holds no entry (see [`len`](Cache::len)).
    ///
    /// ```
    /// let cache: cascache::Cache<u8, u8> = cascache::Cache::new(10);
    /// assert!(cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight of the entries (their count without a weigher), and the capacity it is
    /// bounded by (`None` for an unbounded cache).
    ///
    /// ```
    /// let cache = cascache::Cache::<&str, String>::builder()
    ///     .max_capacity(1_000)
    ///     .weigher(|_k, v: &String| v.len() as u32)
    ///     .build();
    /// cache.insert("a", "12345".to_string());
    /// assert_eq!(cache.weighted_size(), (5, Some(1_000)));
    /// ```
    pub fn weighted_size(&self) -> (u64, Option<u64>) {
        match &self.policy {
            Some(policy) => (policy.weight(), Some(policy.capacity())),
            None => (self.len() as u64, None),
        }
    }

    /// The counters since the cache was built.
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// let v = cache.insert(1, 1);
    /// assert!(cache.compare_and_swap(&1, v, 2).is_ok());
    /// assert_eq!(cache.stats().cas_hits, 1);
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.stats.snapshot()
    }

    /// Frees now what this thread's writes have retired (replaced, removed and evicted
    /// values), as far as no reader can still see it. Retired memory is otherwise freed in
    /// batches, as later operations on any thread move the epoch along: a thread about to idle
    /// (a server's worker waiting for requests) can call this so that what it retired does not
    /// wait for its next operation.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert(1, vec![0u8; 1 << 20]);
    /// cache.insert(1, vec![]); // the 1 MiB value is retired
    /// cache.collect_garbage(); // and freed now, unless a reader still sees it
    /// ```
    pub fn collect_garbage(&self) {
        // A flush hands the thread's deferred frees to the collector and collects; freeing a
        // batch takes the epoch two steps past it, and each collection advances it at most
        // one.
        for _ in 0..3 {
            self.guard().flush();
        }
    }

    /// Removes every entry. Weakly consistent: entries inserted while it runs may remain.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert(1, 1);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// ```
    pub fn clear(&self) {
        let guard = self.guard();
        let now = self.now();
        let mut departed = self.departures();
        for found in self.raw.iter(&guard) {
            if let Some(removed) = self.raw.remove_current(&found, self.freed(), &guard) {
                let cause = if expiry::found_expired(&removed, now) {
                    RemovalCause::Expired
                } else {
                    RemovalCause::Removed
                };
                let hash = self.hash(removed.key());
                self.removed(removed, hash, cause, &mut departed);
            }
        }
        self.depart(departed);
    }

    /// Iterates over clones of the entries (expired ones skipped).
    ///
    /// Weakly consistent: every entry present for the whole iteration is yielded exactly once;
    /// entries written meanwhile may or may not be, and a value may be older than the newest.
    /// The iterator keeps its thread pinned (holding back memory reclamation) until dropped.
    /// [`Pinned::iter`] iterates without cloning.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert(1, "a");
    /// cache.insert(2, "b");
    /// let mut all: Vec<_> = cache.iter().collect();
    /// all.sort();
    /// assert_eq!(all, [(1, "a"), (2, "b")]);
    /// ```
    pub fn iter(&self) -> Iter<K, V>
    where
        K: Clone,
        V: Clone,
    {
        Iter {
            inner: self.raw.owned_iter(self.guard()),
            clock: Arc::clone(&self.config.clock),
        }
    }

    /// Checks the cache's internal agreement (fuzzing and test builds only; call it while no other thread
    /// uses the cache): the length counter matches the live entries, keys are unique, and in a
    /// bounded cache every live entry is queued exactly once, each shard's weight is the sum of
    /// its live values' weights and within its capacity, and the queues' own tallies add up.
    ///
    /// # Panics
    ///
    /// On the first disagreement, saying which.
    #[cfg(any(test, fuzzing))]
    #[doc(hidden)]
    pub fn check_invariants(&self)
    where
        K: fmt::Debug,
    {
        let guard = self.guard();
        let live: Vec<_> = self.raw.iter(&guard).collect();
        assert_eq!(
            live.len(),
            self.raw.len(),
            "length counter vs live entries in the table"
        );
        let mut keys = std::collections::HashSet::new();
        for found in &live {
            assert!(keys.insert(found.key() as *const K), "entry yielded twice");
            let again = self
                .raw
                .load(self.hash(found.key()), |k| k == found.key(), &guard);
            assert!(
                again.is_some(),
                "live entry {:?} not found by its key",
                found.key()
            );
        }
        if let Some(policy) = &self.policy {
            policy.check_invariants(live.len(), &self.raw, &guard);
        }
    }

    pub(crate) fn loading(&self) -> &Loading<K, V> {
        &self.loading
    }

    pub(crate) fn raw(&self) -> &RawTable<K, V, S> {
        &self.raw
    }

    pub(crate) fn is_live(&self, found: &Found<'_, K, V>) -> bool {
        !(found.has_deadline() && expiry::found_expired(found, self.now()))
    }
}

impl<K, V, S> Drop for Cache<K, V, S> {
    fn drop(&mut self) {
        // The eviction queues let go of the tables they held first; the table then frees the
        // rest, and the collector (if the cache has its own) runs deferred destructions last.
        if let Some(policy) = self.policy.take() {
            policy.release(&mut self.raw);
        }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// Iterator over clones of a cache's entries, from [`Cache::iter`].
pub struct Iter<K, V> {
    inner: OwnedIter<K, V>,
    clock: SharedClock,
}

impl<K: Clone, V: Clone> Iterator for Iter<K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        let clock = &self.clock;
        loop {
            let item = self.inner.next_with(|found| {
                let live = !expiry::found_expired(&found, clock.now_millis());
                live.then(|| (found.key().clone(), found.value().clone()))
            })?;
            if item.is_some() {
                return item;
            }
        }
    }
}

impl<K, V> fmt::Debug for Iter<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}
