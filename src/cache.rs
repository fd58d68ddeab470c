//! The public cache: hashing, versions and guards over the raw table.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crossbeam_epoch::{Collector, Guard};

use crate::builder::CacheBuilder;
use crate::error::{CasError, Occupied};
use crate::pinned::Pinned;
use crate::raw::{Found, NewNode, OwnedIter, RawTable};
use crate::version::{next_version, Version};

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
    // Field order matters: the table drops before the collector, so a local collector runs the
    // table's deferred destructions when it drops.
    raw: RawTable<K, V>,
    hasher: S,
    reclaimer: Reclaimer,
}

/// Where retired entries and values go.
pub(crate) enum Reclaimer {
    /// crossbeam-epoch's global collector: the fastest pin.
    #[cfg(not(loom))]
    Global,
    /// A collector of the cache's own (tests, loom models, or isolation from other users).
    Local(Collector),
}

impl Reclaimer {
    #[inline]
    fn pin(&self) -> Guard {
        match self {
            #[cfg(not(loom))]
            Reclaimer::Global => crate::sync::epoch::pin(),
            Reclaimer::Local(collector) => collector.register().pin(),
        }
    }
}

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

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn from_parts(capacity: usize, hasher: S, reclaimer: Reclaimer) -> Self {
        Cache {
            raw: RawTable::with_capacity(capacity),
            hasher,
            reclaimer,
        }
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn guard(&self) -> Guard {
        self.reclaimer.pin()
    }

    /// Pins the current thread once for several operations, and gives reads that borrow instead
    /// of cloning. See [`Pinned`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// cache.insert(1, "one".to_string());
    /// let pinned = cache.pin();
    /// let one: &String = pinned.get(&1).unwrap(); // no clone
    /// assert_eq!(one, "one");
    /// ```
    pub fn pin(&self) -> Pinned<'_, K, V, S> {
        Pinned::new(self, self.guard())
    }

    // ----- reads -----

    pub(crate) fn find_in<'g, Q>(&self, key: &Q, guard: &'g Guard) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.raw.find(self.hash(key), |k| k.borrow() == key, guard)
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
        self.find_in(key, &guard)
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
        self.find_in(key, &guard).map(|found| f(found.value()))
    }

    /// Whether `key` is in the cache.
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
        self.find_in(key, &guard).is_some()
    }

    // ----- writes -----

    pub(crate) fn insert_in(&self, key: K, value: V, guard: &Guard) -> Version {
        let hash = self.hash(&key);
        let mut node = NewNode::new(value, next_version());
        let version = node.version();
        let mut key = key;
        let mut found = self.raw.find(hash, |k| *k == key, guard);
        loop {
            match found {
                Some(existing) => match self.raw.replace_node(&existing, node, guard) {
                    Ok(()) => return version,
                    Err(back) => {
                        node = back;
                        found = self.raw.find(hash, |k| *k == key, guard);
                    }
                },
                None => match self.raw.link(hash, key, node, guard) {
                    Ok(()) => return version,
                    Err(rejected) => {
                        key = rejected.key;
                        node = rejected.node;
                        found = Some(rejected.existing);
                    }
                },
            }
        }
    }

    /// Stores `value` under `key`, replacing any value, and returns its new version.
    /// memcached's `set`.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// let v1 = cache.insert("k", 1);
    /// let v2 = cache.insert("k", 2);
    /// assert_ne!(v1, v2);
    /// assert_eq!(cache.gets("k"), Some((2, v2)));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Version {
        self.insert_in(key, value, &self.guard())
    }

    pub(crate) fn add_in(&self, key: K, value: V, guard: &Guard) -> Result<Version, Occupied<V>> {
        let hash = self.hash(&key);
        if let Some(found) = self.raw.find(hash, |k| *k == key, guard) {
            return Err(Occupied {
                current: found.version(),
                value,
            });
        }
        let node = NewNode::new(value, next_version());
        let version = node.version();
        match self.raw.link(hash, key, node, guard) {
            Ok(()) => Ok(version),
            Err(rejected) => Err(Occupied {
                current: rejected.existing.version(),
                value: rejected.node.into_value(),
            }),
        }
    }

    /// Stores `value` only if `key` is absent. memcached's `add`.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// assert!(cache.add("k", 1).is_ok());
    /// let err = cache.add("k", 2).unwrap_err();
    /// assert_eq!(err.value, 2);
    /// assert_eq!(cache.get("k"), Some(1));
    /// ```
    pub fn add(&self, key: K, value: V) -> Result<Version, Occupied<V>> {
        self.add_in(key, value, &self.guard())
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
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut node = NewNode::new(value, next_version());
        loop {
            let Some(found) = self.raw.find(hash, |k| k.borrow() == key, guard) else {
                return Err(CasError::NotFound(node.into_value()));
            };
            if let Some(expected) = expected {
                if found.version() != expected {
                    return Err(CasError::Mismatch {
                        current: found.version(),
                        value: node.into_value(),
                    });
                }
            }
            let version = node.version();
            match self.raw.replace_node(&found, node, guard) {
                Ok(()) => return Ok(version),
                // The entry changed under us: look again (it may now mismatch or be gone).
                Err(back) => node = back,
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
        K: Borrow<Q>,
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
        K: Borrow<Q>,
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
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.store_existing(key, Some(expected), value, guard)
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
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.compare_and_swap_in(key, expected, value, &self.guard())
    }

    pub(crate) fn update_in<Q, F>(&self, key: &Q, mut f: F, guard: &Guard) -> Option<Version>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&V) -> Option<V>,
    {
        let hash = self.hash(key);
        let mut spare: Option<NewNode<V>> = None;
        loop {
            let found = self.raw.find(hash, |k| k.borrow() == key, guard)?;
            let value = f(found.value())?;
            let node = match spare.take() {
                Some(mut node) => {
                    node.set_value(value);
                    node
                }
                None => NewNode::new(value, next_version()),
            };
            let version = node.version();
            match self.raw.replace_node(&found, node, guard) {
                Ok(()) => return Some(version),
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
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&V) -> Option<V>,
    {
        self.update_in(key, f, &self.guard())
    }

    /// Removes the live entry of `key`, returning it (readable until `guard` drops).
    pub(crate) fn remove_in<'g, Q>(&self, key: &Q, guard: &'g Guard) -> Option<Found<'g, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        loop {
            let found = self.raw.find(hash, |k| k.borrow() == key, guard)?;
            if self.raw.seal(&found, guard) {
                return Some(found);
            }
        }
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
            let Some(found) = self.raw.find(hash, |k| k.borrow() == key, guard) else {
                return Err(CasError::NotFound(()));
            };
            if found.version() != expected {
                return Err(CasError::Mismatch {
                    current: found.version(),
                    value: (),
                });
            }
            if self.raw.seal(&found, guard) {
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

    // ----- whole-cache operations -----

    /// The number of entries. Exact when no write is running; under concurrent writes it is a
    /// snapshot that may be off by the writes in flight.
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
        for found in self.raw.iter(&guard) {
            self.raw.seal_current(&found, &guard);
        }
    }

    /// Iterates over clones of the entries.
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
        }
    }

    pub(crate) fn raw(&self) -> &RawTable<K, V> {
        &self.raw
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
}

impl<K: Clone, V: Clone> Iterator for Iter<K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        self.inner
            .next_with(|found| (found.key().clone(), found.value().clone()))
    }
}

impl<K, V> fmt::Debug for Iter<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}
