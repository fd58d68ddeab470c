//! Loading a missing value once for every caller that wants it, blocking or async: the public
//! layer over the single-flight registry (`flight.rs`).
//!
//! A load ends by storing its value the way [`Cache::add`] does: if a racing write stored the
//! key first, that value stays and is what the load returns. So every caller's answer is the
//! cache's value at an instant of its call (the linearizability test checks it).

use std::any::Any;
use std::borrow::Borrow;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Cache;
use crate::flight::{Leader, Outcome, Role};
use crate::version::Version;

/// What [`Cache::lookup`] found: the value, a load in flight, or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<V> {
    /// The key is present.
    Present(V, Version),
    /// The key is absent and a loader for it is running: a loader call would wait for it.
    Loading,
    /// The key is absent and nobody is loading it.
    Absent,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// The value of `key`, or the value `init` returns, which is inserted. Concurrent calls for
    /// the same missing key run `init` once: the others wait and get its value. If `init` panics,
    /// the panic propagates to its caller and a waiter takes over.
    ///
    /// If another write stores the key while `init` runs, that value is kept and returned (as
    /// [`add`](Cache::add) would): the answer is always the cache's value at an instant of the
    /// call.
    ///
    /// ```
    /// let cache = cascache::Cache::new(100);
    /// let value = cache.get_or_insert_with("config".to_string(), || "loaded".to_string());
    /// assert_eq!(value, "loaded");
    /// // Present now: the loader is not called again.
    /// let again = cache.get_or_insert_with("config".to_string(), || unreachable!());
    /// assert_eq!(again, "loaded");
    /// ```
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V
    where
        K: Clone,
        V: Clone,
    {
        infallible(self.load(key, None, || Ok::<V, Infallible>(init())))
    }

    /// [`get_or_insert_with`](Cache::get_or_insert_with) for a loader that can fail: the error
    /// goes to the caller that ran the loader and to every caller waiting on it, and nothing is
    /// inserted (the next call tries again).
    ///
    /// ```
    /// let cache: cascache::Cache<&str, u32> = cascache::Cache::new(100);
    /// let err = cache.try_get_or_insert_with("n", || "not a number".parse::<u32>()).unwrap_err();
    /// assert!(err.to_string().contains("invalid digit"));
    /// assert_eq!(cache.try_get_or_insert_with("n", || "7".parse::<u32>()).unwrap(), 7);
    /// ```
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        self.load(key, None, init)
    }

    /// [`get_or_insert_with`](Cache::get_or_insert_with) for async code: the loader is a future,
    /// and callers waiting for it await without blocking their executor's thread. Works on any
    /// runtime (waiting uses the task's waker), and the returned future is `Send` when `K`, `V`
    /// and `init` are.
    ///
    /// Cancellation-safe: if the caller running the loader drops its future, a waiting caller
    /// takes the load over and runs its own `init`. A loader that panics is handled the same way,
    /// and the panic propagates to its caller.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cascache::Cache::new(100);
    /// let value = cache.get_or_insert_with_async(1, async { "slow".to_string() }).await;
    /// assert_eq!(value, "slow");
    /// # });
    /// ```
    pub async fn get_or_insert_with_async(&self, key: K, init: impl Future<Output = V>) -> V
    where
        K: Clone,
        V: Clone,
    {
        // A hit returns before the load's state is built around `init`.
        if let Some(value) = self.get(&key) {
            return value;
        }
        infallible(
            self.load_async(key, None, false, async { Ok::<V, Infallible>(init.await) })
                .await,
        )
    }

    /// [`try_get_or_insert_with`](Cache::try_get_or_insert_with) for async code (see
    /// [`get_or_insert_with_async`](Cache::get_or_insert_with_async)): an error reaches the
    /// caller that ran the loader and every caller waiting on it.
    pub async fn try_get_or_insert_with_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        self.load_async(key, None, false, init).await
    }

    /// Whether `key` is present, being loaded, or absent, without waiting for a load and without
    /// counting a read: async code can tell a load in flight from a miss.
    ///
    /// ```
    /// use cascache::Lookup;
    /// let cache = cascache::Cache::new(100);
    /// assert_eq!(cache.lookup(&1), Lookup::Absent);
    /// let v = cache.insert(1, "one");
    /// assert_eq!(cache.lookup(&1), Lookup::Present("one", v));
    /// ```
    pub fn lookup<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let guard = self.guard();
        if let Some(found) = self.live_in(key, &guard) {
            return Lookup::Present(found.value().clone(), found.version());
        }
        if self.loading().is_loading(self.raw().hash(key), key) {
            Lookup::Loading
        } else {
            Lookup::Absent
        }
    }

    /// The blocking load: read, else join the key's load (leading it, or waiting for it).
    pub(crate) fn load<E>(
        &self,
        key: K,
        ttl: Option<Duration>,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        // Join until this caller leads (or gets an answer as a waiter), then load.
        let leader = loop {
            match self.join_load(&key, true) {
                Role::Present(value) => return Ok(value),
                Role::Leader(leader) => break leader,
                Role::Waiter(load) => {
                    if let Some(answer) = waited(load.wait()) {
                        return answer;
                    }
                }
            }
        };
        let loaded = init();
        self.finish_load(leader, key, ttl, loaded)
    }

    /// The async load, the same steps as [`Cache::load`] (`read`: whether to read the key
    /// first; the short forms have just read it). Nothing that holds a lock or pins the thread
    /// lives across an `.await`: the leader's registration does (it is what a dropped future
    /// abandons).
    pub(crate) async fn load_async<E>(
        &self,
        key: K,
        ttl: Option<Duration>,
        mut read: bool,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        let leader = loop {
            let role = self.join_load(&key, read);
            read = true;
            match role {
                Role::Present(value) => return Ok(value),
                Role::Leader(leader) => break leader,
                Role::Waiter(load) => {
                    if let Some(answer) = waited(load.wait_async().await) {
                        return answer;
                    }
                }
            }
        };
        let loaded = init.await;
        self.finish_load(leader, key, ttl, loaded)
    }

    /// A read (counted; skipped without `read`), then the key's load: joined if one is in
    /// flight, else started if the key is still absent when read again under the registry's
    /// lock.
    fn join_load(&self, key: &K, read: bool) -> Role<'_, K, V, V>
    where
        K: Clone,
        V: Clone,
    {
        // One pin and one hash for the read and the join (a miss paid two of each: 7% of the
        // coalesced-miss benchmark's samples were pins).
        let guard = self.guard();
        let hash = self.raw().hash(key);
        if read {
            if let Some(found) = self.read_hashed(hash, |k| k == key, &guard) {
                return Role::Present(found.value().clone());
            }
        }
        self.loading().join(hash, key, || {
            self.live_hashed(hash, |k| k == key, &guard)
                .map(|f| f.value().clone())
        })
    }

    /// Stores what the leader's loader returned (as `add` does) and hands the outcome to the
    /// waiters. Evictions the store caused are announced once the registry's lock is released.
    fn finish_load<E>(
        &self,
        leader: Leader<'_, K, V>,
        key: K,
        ttl: Option<Duration>,
        loaded: Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        V: Clone,
        E: Send + Sync + 'static,
    {
        match loaded {
            Ok(value) => {
                let guard = self.guard();
                let (value, departed) = leader.finish(|| {
                    let mut departed = self.departures();
                    let value = loop {
                        match self.add_departing(
                            key.clone(),
                            value.clone(),
                            ttl,
                            &guard,
                            &mut departed,
                        ) {
                            Ok(_) => break value,
                            // A racing write stored first: its value stands, if still there.
                            Err(_) => {
                                if let Some(found) = self.live_in(&key, &guard) {
                                    break found.value().clone();
                                }
                            }
                        }
                    };
                    (Outcome::Loaded(value.clone()), (value, departed))
                });
                self.depart(departed);
                Ok(value)
            }
            Err(error) => {
                let error = Arc::new(error);
                let failed = Arc::clone(&error) as Arc<dyn Any + Send + Sync>;
                leader.finish(|| (Outcome::Failed(failed), ()));
                Err(error)
            }
        }
    }
}

/// A waiter's answer from the outcome it woke to, or `None` to join again: the load was
/// abandoned, or failed with an error of another loader's type (this caller then tries its own).
fn waited<V, E: Send + Sync + 'static>(outcome: Outcome<V>) -> Option<Result<V, Arc<E>>> {
    match outcome {
        Outcome::Loaded(value) => Some(Ok(value)),
        Outcome::Failed(error) => error.downcast::<E>().ok().map(Err),
        Outcome::Abandoned => None,
    }
}

pub(crate) fn infallible<V>(result: Result<V, Arc<Infallible>>) -> V {
    match result {
        Ok(value) => value,
        Err(never) => match *never {},
    }
}
