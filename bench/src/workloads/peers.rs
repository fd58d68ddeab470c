//! Each implementation under test behind the same small interfaces, every one with the same
//! hasher (`ahash::RandomState`) so the comparison is of the structures, not of their default
//! hashers (SipHash for several peers).

use std::collections::HashMap;
use std::num::NonZeroUsize;

use ahash::RandomState;
use parking_lot::Mutex;

/// Reads and writes of a map or a cache.
pub trait Map: Sync {
    /// A read; true on a hit.
    fn get(&self, key: u64) -> bool;
    fn insert(&self, key: u64, value: u64);
    fn remove(&self, key: u64);
}

/// A read-modify-write increment, each implementation its best way.
pub trait Counter: Sync {
    /// Stores 1 under `key` (through the implementation's plain insert).
    fn seed(&self, key: u64);
    /// Adds one to the (present) value of `key`.
    fn increment(&self, key: u64);
    fn value(&self, key: u64) -> Option<u64>;
}

// ----- cascache -----

pub type Cascache = cascache::Cache<u64, u64>;

/// A bounded cascache.
pub fn cascache(capacity: u64) -> Cascache {
    cascache::Cache::new(capacity)
}

impl Map for Cascache {
    #[inline]
    fn get(&self, key: u64) -> bool {
        cascache::Cache::get(self, &key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        cascache::Cache::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        cascache::Cache::delete(self, &key);
    }
}

impl Counter for Cascache {
    fn seed(&self, key: u64) {
        cascache::Cache::insert(self, key, 1);
    }
    /// The founding loop: `gets`, then `compare_and_swap` from the version read, retried.
    #[inline]
    fn increment(&self, key: u64) {
        loop {
            let (n, version) = self.gets(&key).expect("counters are present");
            if self.compare_and_swap(&key, version, n + 1).is_ok() {
                return;
            }
        }
    }
    fn value(&self, key: u64) -> Option<u64> {
        cascache::Cache::get(self, &key)
    }
}

/// cascache's `update`: the same retry loop, run by the cache around a closure.
pub struct CascacheUpdate(pub Cascache);

impl Counter for CascacheUpdate {
    fn seed(&self, key: u64) {
        self.0.insert(key, 1);
    }
    #[inline]
    fn increment(&self, key: u64) {
        self.0.update(&key, |n| Some(n + 1));
    }
    fn value(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
}

// ----- moka -----

pub type Moka = moka::sync::Cache<u64, u64, RandomState>;

pub fn moka(capacity: u64) -> Moka {
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .build_with_hasher(RandomState::new())
}

impl Map for Moka {
    #[inline]
    fn get(&self, key: u64) -> bool {
        moka::sync::Cache::get(self, &key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        self.invalidate(&key);
    }
}

impl Counter for Moka {
    fn seed(&self, key: u64) {
        moka::sync::Cache::insert(self, key, 1);
    }
    #[inline]
    fn increment(&self, key: u64) {
        self.entry(key).and_compute_with(|entry| {
            moka::ops::compute::Op::Put(entry.map_or(1, |e| e.into_value() + 1))
        });
    }
    fn value(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
}

// ----- quick_cache -----

pub type QuickCache = quick_cache::sync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    RandomState,
    quick_cache::sync::DefaultLifecycle<u64, u64>,
>;

pub fn quick_cache(capacity: u64) -> QuickCache {
    quick_cache::sync::Cache::with(
        capacity as usize,
        capacity,
        quick_cache::UnitWeighter,
        RandomState::new(),
        Default::default(),
    )
}

impl Map for QuickCache {
    #[inline]
    fn get(&self, key: u64) -> bool {
        quick_cache::sync::Cache::get(self, &key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        quick_cache::sync::Cache::remove(self, &key);
    }
}

// ----- papaya -----

pub type Papaya = papaya::HashMap<u64, u64, RandomState>;

pub fn papaya(capacity: usize) -> Papaya {
    papaya::HashMap::builder()
        .capacity(capacity)
        .hasher(RandomState::new())
        .build()
}

impl Map for Papaya {
    #[inline]
    fn get(&self, key: u64) -> bool {
        self.pin().get(&key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.pin().insert(key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        self.pin().remove(&key);
    }
}

impl Counter for Papaya {
    fn seed(&self, key: u64) {
        self.pin().insert(key, 1);
    }
    #[inline]
    fn increment(&self, key: u64) {
        self.pin().update(key, |n| n + 1);
    }
    fn value(&self, key: u64) -> Option<u64> {
        self.pin().get(&key).copied()
    }
}

// ----- scc -----

pub type Scc = scc::HashMap<u64, u64, RandomState>;

pub fn scc(capacity: usize) -> Scc {
    scc::HashMap::with_capacity_and_hasher(capacity, RandomState::new())
}

impl Map for Scc {
    #[inline]
    fn get(&self, key: u64) -> bool {
        self.read_sync(&key, |_, v| *v).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.upsert_sync(key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        self.remove_sync(&key);
    }
}

impl Counter for Scc {
    fn seed(&self, key: u64) {
        self.upsert_sync(key, 1);
    }
    #[inline]
    fn increment(&self, key: u64) {
        self.update_sync(&key, |_, n| *n += 1);
    }
    fn value(&self, key: u64) -> Option<u64> {
        self.read_sync(&key, |_, v| *v)
    }
}

// ----- dashmap -----

pub type DashMap = dashmap::DashMap<u64, u64, RandomState>;

pub fn dashmap(capacity: usize) -> DashMap {
    dashmap::DashMap::with_capacity_and_hasher(capacity, RandomState::new())
}

impl Map for DashMap {
    #[inline]
    fn get(&self, key: u64) -> bool {
        dashmap::DashMap::get(self, &key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        dashmap::DashMap::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        dashmap::DashMap::remove(self, &key);
    }
}

impl Counter for DashMap {
    fn seed(&self, key: u64) {
        dashmap::DashMap::insert(self, key, 1);
    }
    /// An increment in place, under the shard's write lock.
    #[inline]
    fn increment(&self, key: u64) {
        *self.get_mut(&key).expect("counters are present") += 1;
    }
    fn value(&self, key: u64) -> Option<u64> {
        dashmap::DashMap::get(self, &key).map(|v| *v)
    }
}

// ----- Mutex<HashMap> -----

pub struct MutexMap(pub Mutex<HashMap<u64, u64, RandomState>>);

pub fn mutex_map(capacity: usize) -> MutexMap {
    MutexMap(Mutex::new(HashMap::with_capacity_and_hasher(
        capacity,
        RandomState::new(),
    )))
}

impl Map for MutexMap {
    #[inline]
    fn get(&self, key: u64) -> bool {
        self.0.lock().get(&key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.lock().insert(key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        self.0.lock().remove(&key);
    }
}

impl Counter for MutexMap {
    fn seed(&self, key: u64) {
        self.0.lock().insert(key, 1);
    }
    #[inline]
    fn increment(&self, key: u64) {
        *self.0.lock().get_mut(&key).expect("counters are present") += 1;
    }
    fn value(&self, key: u64) -> Option<u64> {
        self.0.lock().get(&key).copied()
    }
}

// ----- Mutex<LruCache> -----

pub struct MutexLru(pub Mutex<lru::LruCache<u64, u64, RandomState>>);

pub fn mutex_lru(capacity: usize) -> MutexLru {
    MutexLru(Mutex::new(lru::LruCache::with_hasher(
        NonZeroUsize::new(capacity).expect("a capacity above zero"),
        RandomState::new(),
    )))
}

impl Map for MutexLru {
    #[inline]
    fn get(&self, key: u64) -> bool {
        self.0.lock().get(&key).is_some()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.lock().put(key, value);
    }
    #[inline]
    fn remove(&self, key: u64) {
        self.0.lock().pop(&key);
    }
}
