//! The entry API: one key's load-if-missing and compute-and-store calls, with the options
//! (a time to live) that the short forms on [`Cache`] do not take.

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::error::CasError;
use crate::loader::infallible;
use crate::version::Version;

/// One key of a cache, from [`Cache::entry`].
///
/// ```
/// use cascache::{CompResult, Op};
/// let cache = cascache::Cache::new(100);
/// // The founding loop with a closure: insert 1 if absent, else add one; retried on conflict.
/// for _ in 0..3 {
///     cache.entry("hits").and_compute_with(|n| Op::Put(n.map_or(1, |n| n + 1)));
/// }
/// assert_eq!(cache.get("hits"), Some(3));
/// match cache.entry("hits").and_compute_with(|_| Op::Remove) {
///     CompResult::Removed(n) => assert_eq!(n, 3),
///     other => panic!("{other:?}"),
/// }
/// ```
pub struct Entry<'c, K, V, S = ahash::RandomState> {
    cache: &'c Cache<K, V, S>,
    key: K,
    ttl: Option<Duration>,
}

/// What an [`Entry::and_compute_with`] closure asks for, given the current value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<V> {
    /// Store this value (insert it if the key is absent).
    Put(V),
    /// Remove the key.
    Remove,
    /// Leave the key as it is.
    Nop,
}

/// What [`Entry::and_compute_with`] did. Every store carries its new version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompResult<V> {
    /// The key was absent; the value was inserted.
    Inserted(V, Version),
    /// The key's value was replaced with this one.
    ReplacedWith(V, Version),
    /// The key was removed; its last value.
    Removed(V),
    /// The closure returned [`Op::Nop`] on this value.
    Unchanged(V, Version),
    /// The key was absent and stays absent ([`Op::Nop`] or [`Op::Remove`] on no value).
    StillNone,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// The entry of `key`, for a compute-and-store ([`Entry::and_compute_with`]) or a
    /// load-if-missing with options ([`Entry::or_insert_with`] and its async and fallible forms).
    pub fn entry(&self, key: K) -> Entry<'_, K, V, S> {
        Entry {
            cache: self,
            key,
            ttl: None,
        }
    }
}

impl<K, V, S> Entry<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// A time to live for a value this call inserts into the absent key, instead of the cache's
    /// default. (A value that replaces another keeps the old one's deadline, as
    /// [`Cache::compare_and_swap`] does.)
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// let token = cache.entry("token").with_ttl(Duration::from_secs(60)).or_insert_with(|| 7);
    /// assert_eq!(token, 7);
    /// assert!(cache.time_to_live("token").unwrap().is_some());
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The key's value, or `init`'s, inserted; one loader per missing key, as
    /// [`Cache::get_or_insert_with`].
    pub fn or_insert_with(self, init: impl FnOnce() -> V) -> V {
        infallible(
            self.cache
                .load(self.key, self.ttl, || Ok::<V, Infallible>(init())),
        )
    }

    /// As [`Cache::try_get_or_insert_with`].
    pub fn or_try_insert_with<E: Send + Sync + 'static>(
        self,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>> {
        self.cache.load(self.key, self.ttl, init)
    }

    /// As [`Cache::get_or_insert_with_async`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cascache::Cache::new(100);
    /// let session = cache
    ///     .entry("session")
    ///     .with_ttl(Duration::from_secs(300))
    ///     .or_insert_with_async(async { "fetched".to_string() })
    ///     .await;
    /// assert_eq!(session, "fetched");
    /// # });
    /// ```
    pub async fn or_insert_with_async(self, init: impl Future<Output = V>) -> V {
        infallible(
            self.cache
                .load_async(self.key, self.ttl, true, async {
                    Ok::<V, Infallible>(init.await)
                })
                .await,
        )
    }

    /// As [`Cache::try_get_or_insert_with_async`].
    pub async fn or_try_insert_with_async<E: Send + Sync + 'static>(
        self,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>> {
        self.cache.load_async(self.key, self.ttl, true, init).await
    }

    /// Runs `f` on the current value (`None` if absent) and applies what it returns, only if
    /// nobody wrote the key meanwhile; otherwise runs `f` again on the newer value. The founding
    /// example's `gets` / `cas` retry loop, with inserts and removals too: an insert is an
    /// [`add`](Cache::add), a replace a [`compare_and_swap`](Cache::compare_and_swap) and a
    /// removal a [`remove_if_version`](Cache::remove_if_version) of the version `f` saw.
    ///
    /// `f` may run several times under contention, so it should have no side effects.
    pub fn and_compute_with(self, mut f: impl FnMut(Option<&V>) -> Op<V>) -> CompResult<V> {
        let cache = self.cache;
        loop {
            let guard = cache.guard();
            let current = cache.read_in(&self.key, &guard);
            let op = f(current.as_ref().map(|found| found.value()));
            let current = current.map(|found| (found.value().clone(), found.version()));
            drop(guard);
            if let Some(done) = self.apply(current, op) {
                return done;
            }
        }
    }

    /// [`and_compute_with`](Entry::and_compute_with) for async code: `f` gets a clone of the
    /// current value and returns a future of what to do. No lock is held and the thread is not
    /// pinned while that future runs.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use cascache::{CompResult, Op};
    /// let cache = cascache::Cache::new(100);
    /// cache.insert("n", 41u64);
    /// let done = cache
    ///     .entry("n")
    ///     .and_compute_with_async(|n| async move { Op::Put(n.unwrap_or(0) + 1) })
    ///     .await;
    /// assert!(matches!(done, CompResult::ReplacedWith(42, _)));
    /// # });
    /// ```
    pub async fn and_compute_with_async<F, Fut>(self, mut f: F) -> CompResult<V>
    where
        F: FnMut(Option<V>) -> Fut,
        Fut: Future<Output = Op<V>>,
    {
        loop {
            let current = self.cache.gets(&self.key);
            let op = f(current.as_ref().map(|(value, _)| value.clone())).await;
            if let Some(done) = self.apply(current, op) {
                return done;
            }
        }
    }

    /// Applies `op` to the key if it still holds `current` (value and version, or absent);
    /// `None` if it does not any more (the caller computes again).
    fn apply(&self, current: Option<(V, Version)>, op: Op<V>) -> Option<CompResult<V>> {
        let cache = self.cache;
        match (current, op) {
            (None, Op::Nop | Op::Remove) => Some(CompResult::StillNone),
            (None, Op::Put(value)) => {
                let guard = cache.guard();
                cache
                    .add_in(self.key.clone(), value.clone(), self.ttl, &guard)
                    .ok()
                    .map(|version| CompResult::Inserted(value, version))
            }
            (Some((value, version)), Op::Nop) => Some(CompResult::Unchanged(value, version)),
            (Some((_, version)), Op::Put(value)) => {
                match cache.compare_and_swap(&self.key, version, value.clone()) {
                    Ok(new) => Some(CompResult::ReplacedWith(value, new)),
                    Err(CasError::NotFound(_) | CasError::Mismatch { .. }) => None,
                }
            }
            (Some((value, version)), Op::Remove) => cache
                .remove_if_version(&self.key, version)
                .ok()
                .map(|()| CompResult::Removed(value)),
        }
    }
}
