//! A cache view that keeps the thread pinned across operations.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crossbeam_epoch::Guard;

use crate::cache::Cache;
use crate::error::{CasError, Occupied};
use crate::raw::RawIter;
use crate::version::Version;

/// A view of a [`Cache`] that keeps the current thread pinned, from [`Cache::pin`].
///
/// Every operation on a cache pins the thread for its duration (~10 ns). A `Pinned` view pins
/// once for many operations, and its reads borrow values instead of cloning them: a reference
/// stays valid as long as the view, even if the entry is replaced or removed meanwhile (it then
/// shows the value as it was). Memory of replaced and removed values is not reclaimed while any
/// thread holds a view, so keep views short-lived.
///
/// ```
/// let cache = cascache::Cache::new(100);
/// let pinned = cache.pin();
/// let v = pinned.insert("k", String::from("value"));
/// let (value, version) = pinned.gets("k").unwrap();
/// assert_eq!((value.as_str(), version), ("value", v));
/// ```
pub struct Pinned<'c, K, V, S = ahash::RandomState> {
    cache: &'c Cache<K, V, S>,
    guard: Guard,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
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
}

impl<'c, K, V, S> Pinned<'c, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn new(cache: &'c Cache<K, V, S>, guard: Guard) -> Self {
        Pinned { cache, guard }
    }

    /// The value of `key`, borrowed. See [`Cache::get`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// cache.insert(1, [0u8; 64]);
    /// let pinned = cache.pin();
    /// assert_eq!(pinned.get(&1).map(|v| v.len()), Some(64));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache
            .read_in(key, &self.guard)
            .map(|found| found.value())
    }

    /// The value of `key`, borrowed, with its version. See [`Cache::gets`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// let v = cache.insert(1, "one");
    /// assert_eq!(cache.pin().gets(&1), Some((&"one", v)));
    /// ```
    pub fn gets<Q>(&self, key: &Q) -> Option<(&V, Version)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache
            .read_in(key, &self.guard)
            .map(|found| (found.value(), found.version()))
    }

    /// Whether `key` is in the cache.
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// cache.insert(1, ());
    /// assert!(cache.pin().contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.live_in(key, &self.guard).is_some()
    }

    /// See [`Cache::insert`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// let pinned = cache.pin();
    /// for i in 0..5 {
    ///     pinned.insert(i, i * 10);
    /// }
    /// assert_eq!(cache.len(), 5);
    /// ```
    pub fn insert(&self, key: K, value: V) -> Version {
        self.cache.insert_in(key, value, None, &self.guard)
    }

    /// See [`Cache::add`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// assert!(cache.pin().add(1, 1).is_ok());
    /// ```
    pub fn add(&self, key: K, value: V) -> Result<Version, Occupied<V>> {
        self.cache.add_in(key, value, None, &self.guard)
    }

    /// See [`Cache::replace`].
    ///
    /// ```
    /// let cache = cascache::Cache::<i32, i32>::new(10);
    /// assert!(cache.pin().replace(&1, 1).is_err());
    /// ```
    pub fn replace<Q>(&self, key: &Q, value: V) -> Result<Version, CasError<V>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.replace_in(key, value, &self.guard)
    }

    /// See [`Cache::compare_and_swap`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// let pinned = cache.pin();
    /// let v = pinned.insert("n", 1);
    /// let (n, v) = pinned.gets("n").unwrap();
    /// assert!(pinned.compare_and_swap("n", v, n + 1).is_ok());
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
        self.cache
            .compare_and_swap_in(key, expected, value, &self.guard)
    }

    /// See [`Cache::update`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// cache.insert("n", 1);
    /// assert!(cache.pin().update("n", |n| Some(n * 2)).is_some());
    /// assert_eq!(cache.get("n"), Some(2));
    /// ```
    pub fn update<Q, F>(&self, key: &Q, f: F) -> Option<Version>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&V) -> Option<V>,
    {
        self.cache.update_in(key, f, &self.guard)
    }

    /// Removes `key` and returns its value, borrowed: it stays readable through this view.
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// cache.insert(1, String::from("gone"));
    /// let pinned = cache.pin();
    /// assert_eq!(pinned.remove(&1).map(String::as_str), Some("gone"));
    /// assert!(!cache.contains_key(&1));
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache
            .remove_in(key, &self.guard)
            .map(|found| found.value())
    }

    /// See [`Cache::remove_if_version`].
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// let v = cache.insert(1, 1);
    /// assert!(cache.pin().remove_if_version(&1, v).is_ok());
    /// ```
    pub fn remove_if_version<Q>(&self, key: &Q, expected: Version) -> Result<(), CasError<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.remove_if_version_in(key, expected, &self.guard)
    }

    /// Iterates over the entries without cloning (weakly consistent, as [`Cache::iter`]).
    ///
    /// ```
    /// let cache = cascache::Cache::new(10);
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// let pinned = cache.pin();
    /// let sum: i32 = pinned.iter().map(|(_, v)| v).sum();
    /// assert_eq!(sum, 30);
    /// ```
    pub fn iter(&self) -> PinnedIter<'_, K, V, S> {
        PinnedIter {
            inner: self.cache.raw().iter(&self.guard),
            cache: self.cache,
        }
    }
}

impl<K, V, S> fmt::Debug for Pinned<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned").finish_non_exhaustive()
    }
}

/// Iterator over borrowed entries, from [`Pinned::iter`].
pub struct PinnedIter<'g, K, V, S = ahash::RandomState> {
    inner: RawIter<'g, K, V>,
    cache: &'g Cache<K, V, S>,
}

impl<'g, K, V, S> Iterator for PinnedIter<'g, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    type Item = (&'g K, &'g V);

    fn next(&mut self) -> Option<Self::Item> {
        let cache = self.cache;
        self.inner
            .by_ref()
            .find(|found| cache.is_live(found))
            .map(|found| (found.key(), found.value()))
    }
}

impl<K, V, S> fmt::Debug for PinnedIter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedIter").finish_non_exhaustive()
    }
}
