//! The differential model shared by the `model` fuzz target (`fuzz/fuzz_targets/model.rs`) and
//! the stable corpus replay (`tests/fuzz_corpus.rs`, which includes this file by path): it must
//! depend on nothing but `cascache`, `crossbeam-epoch`, `arbitrary` and `std`.
//!
//! An input decodes (with `arbitrary`) into a cache configuration and a sequence of operations:
//! every public operation of [`Cache`] and of its [`Pinned`](cascache::Pinned) view, including
//! `iter`, `clear`, `len` and `is_empty`. Each runs on the cache and on a sequential model, a
//! `HashMap<key, (value, version id)>`, and the results must agree exactly:
//!
//! * versions are opaque: every version a store returns must be fresh (never returned before in
//!   the run, never 0, round-trips through [`Version::from_raw`]) and gets the next model id;
//!   every version the cache reports later (`gets`, `Mismatch { current }`,
//!   `Occupied { current }`) must be the id the model holds for that key; a compare-and-swap
//!   succeeds iff its expected version is the stored one (expected versions are the current one,
//!   any seen before, or an arbitrary raw number);
//! * rejected values are handed back unchanged; references borrowed from a pinned view still
//!   show what they showed when read at the end of the view, after later writes and removals.
//!
//! Builder options come from the input too: bounded or not, initial capacity, shards, hasher, a
//! local collector, a default time to live on a [`MockClock`] the input advances, a weigher, an
//! eviction listener.
//!
//! * An *unbounded* cache (small initial table: it grows by resizing) and a *roomy* one (every
//!   shard's share of the capacity holds all 16 keys) must never lose a key or evict.
//! * A *tight* cache (capacity below the key space, maybe weighted) may evict: before every
//!   operation the model drops the keys the cache no longer has (eviction as a spontaneous
//!   delete), the `len` must still agree (so a key lost by a bug but still counted is caught) and
//!   the weight must stay within the capacity.
//! * Expiry is modelled exactly on the mock clock (a deadline is passed when `deadline <= now`):
//!   `insert` / `add` start the given or the default time to live, conditional writes
//!   (`replace`, `compare_and_swap`, `update`) keep the entry's deadline, `touch` sets a new one;
//!   expired entries may still count in `len` until the cache finds them.
//! * A colliding hasher (1–8 distinct hashes) drives long probe sequences and same-tag slots.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use cascache::{
    BuildError, Cache, CacheBuilder, CasError, MockClock, Occupied, Pinned, RemovalCause, Version,
};
use crossbeam_epoch::Collector;

/// Keys are `key-0` … `key-15`.
pub const KEYS: u8 = 16;
/// At most this many operations run per input (and per pinned batch); longer inputs are cut.
pub const MAX_OPS: usize = 512;

/// A key, reduced modulo [`KEYS`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Key(u8);

impl Key {
    fn name(self) -> String {
        format!("key-{}", self.0 % KEYS)
    }
}

/// A time to live: `n % 1024` milliseconds (0 included: expired on arrival).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Ttl(u16);

impl Ttl {
    fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0 % 1024))
    }
}

/// The expected version of a compare-and-swap or `remove_if_version`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum VersionPick {
    /// The version the model holds for this key now (or the newest seen, if absent).
    Current(Key),
    /// The `n`th version seen in the run (modulo how many were seen).
    Seen(u16),
    /// Any number (0 and unknown numbers stand for a version no store returned).
    Raw(u64),
}

/// The closure given to `update`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum UpdateFn {
    /// Appends a letter.
    Append(u8),
    /// Declines (returns `None`).
    Decline,
    /// Declines when the value's length is even, else appends `'!'`.
    DeclineIfEven,
}

impl UpdateFn {
    fn apply(self, value: &str) -> Option<String> {
        match self {
            UpdateFn::Append(c) => Some(format!("{value}{}", char::from(b'a' + c % 26))),
            UpdateFn::Decline => None,
            UpdateFn::DeclineIfEven => (value.len() % 2 == 1).then(|| format!("{value}!")),
        }
    }
}

/// An operation on the cache itself.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Insert(Key, u16),
    InsertWithTtl(Key, u16, Ttl),
    Get(Key),
    Gets(Key),
    GetWith(Key),
    ContainsKey(Key),
    Add(Key, u16),
    AddWithTtl(Key, u16, Ttl),
    Replace(Key, u16),
    Cas(Key, VersionPick, u16),
    Update(Key, UpdateFn),
    Remove(Key),
    Delete(Key),
    RemoveIfVersion(Key, VersionPick),
    Touch(Key, Option<Ttl>),
    GetAndTouch(Key, Option<Ttl>),
    TimeToLive(Key),
    GetOrInsertWith(Key, u16),
    /// `None`: the loader fails.
    TryGetOrInsertWith(Key, Option<u16>),
    /// Moves the mock clock `n % 2048` ms forward.
    Advance(u16),
    Len,
    IsEmpty,
    WeightedSize,
    Stats,
    Clear,
    Iter,
    /// A batch through one [`Pinned`] view.
    Pinned(Vec<PinnedOp>),
}

/// An operation through a pinned view.
#[derive(Arbitrary, Debug, Clone)]
pub enum PinnedOp {
    Get(Key),
    Gets(Key),
    ContainsKey(Key),
    Insert(Key, u16),
    Add(Key, u16),
    Replace(Key, u16),
    Cas(Key, VersionPick, u16),
    Update(Key, UpdateFn),
    Remove(Key),
    RemoveIfVersion(Key, VersionPick),
    Iter,
}

/// How the cache is bounded.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Bound {
    /// No capacity, an initial table for `n % 64` entries: it grows by resizing. Never evicts.
    Unbounded(u8),
    /// `1 << (shards % 3)` shards, each with room for every key (plus `extra` in all).
    Roomy { shards: u8, extra: u8 },
    /// Below the key space (`1 + n % 16` entries, or `1 + n % 64` weight units with a weigher
    /// counting value bytes), over `1 << (shards % 2)` shards: evicts.
    Tight {
        capacity: u8,
        shards: u8,
        weighted: bool,
    },
}

/// The cache's hasher.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum HasherPick {
    /// ahash, randomly seeded (the default).
    Default,
    /// Only `1 << (n % 4)` distinct hashes: long probes, equal tags.
    Colliding(u8),
}

/// A decoded fuzz input.
#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    pub bound: Bound,
    pub hasher: HasherPick,
    /// Retire through a collector of the cache's own (dropped with it, so every deferred
    /// destruction runs before the input ends) instead of the global one.
    pub local_collector: bool,
    /// The cache's default time to live (a zero one must be refused by `try_build`).
    pub time_to_live: Option<Ttl>,
    /// Install an eviction listener that records what it hears.
    pub listener: bool,
    pub ops: Vec<Op>,
}

/// Decodes `data` as libFuzzer's `arbitrary` glue would, and runs it. Panics on a divergence.
pub fn run_bytes(data: &[u8]) {
    if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        run(&input);
    }
}

/// A hasher with few distinct outputs.
#[derive(Clone, Copy)]
pub struct CollidingState {
    mask: u64,
}

/// See [`CollidingState`].
pub struct CollidingHasher {
    state: u64,
    mask: u64,
}

impl BuildHasher for CollidingState {
    type Hasher = CollidingHasher;
    fn build_hasher(&self) -> CollidingHasher {
        CollidingHasher {
            state: 0,
            mask: self.mask,
        }
    }
}

impl Hasher for CollidingHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state = self.state.wrapping_mul(31).wrapping_add(u64::from(b));
        }
    }
    fn finish(&self) -> u64 {
        self.state & self.mask
    }
}

/// What the eviction listener heard.
type Log = Arc<Mutex<Vec<(String, String, RemovalCause)>>>;

/// Runs one input on a cache built as it says.
pub fn run(input: &Input) {
    match input.hasher {
        HasherPick::Default => configure(Cache::builder(), input),
        HasherPick::Colliding(n) => configure(
            Cache::builder().hasher(CollidingState {
                mask: (1 << (n % 4)) - 1,
            }),
            input,
        ),
    }
}

fn configure<S: BuildHasher>(builder: CacheBuilder<String, String, S>, input: &Input) {
    let clock = MockClock::new();
    let mut builder = builder.clock(clock.clone());
    let (capacity, exact) = match input.bound {
        Bound::Unbounded(n) => {
            builder = builder.initial_capacity(usize::from(n % 64));
            (None, true)
        }
        Bound::Roomy { shards, extra } => {
            let shards = 1u64 << (shards % 3);
            let capacity = u64::from(KEYS) * shards + u64::from(extra);
            builder = builder.max_capacity(capacity).shards(shards as usize);
            (Some(capacity), true)
        }
        Bound::Tight {
            capacity,
            shards,
            weighted,
        } => {
            let capacity = if weighted {
                builder = builder.weigher(|_k, v: &String| v.len() as u32);
                1 + u64::from(capacity % 64)
            } else {
                1 + u64::from(capacity % KEYS)
            };
            builder = builder.max_capacity(capacity).shards(1 << (shards % 2));
            (Some(capacity), false)
        }
    };
    if input.local_collector {
        builder = builder.collector(Collector::new());
    }
    let ttl = input.time_to_live.map(Ttl::get);
    if let Some(ttl) = ttl {
        builder = builder.time_to_live(ttl);
    }
    let log: Log = Arc::default();
    if input.listener {
        let log = Arc::clone(&log);
        builder = builder.eviction_listener(move |k: &String, v: &String, cause| {
            log.lock().unwrap().push((k.clone(), v.clone(), cause));
        });
    }
    let _ = format!("{builder:?}");
    let cache = match builder.try_build() {
        Ok(cache) => cache,
        Err(err) => {
            assert_eq!(ttl, Some(Duration::ZERO), "try_build refused: {err}");
            assert_eq!(err, BuildError::ZeroDuration("time_to_live"));
            let _ = err.to_string();
            return;
        }
    };
    let mut model = Model {
        map: HashMap::new(),
        zombies: HashSet::new(),
        ids: HashMap::new(),
        versions: Vec::new(),
        exact,
        capacity,
        ttl,
        now: 1,
        cas: (0, 0, 0),
    };
    drive(&mut model, &cache, &clock, &log, &input.ops);
    // Dropping the cache (and a local collector with it) frees every value it ever held.
    drop(cache);
}

fn value(n: u16) -> String {
    format!("v{n}")
}

/// One live key of the model.
#[derive(Debug)]
struct Slot {
    value: String,
    /// The id of its version.
    id: usize,
    /// When it expires on the mock clock (ms); 0: never.
    deadline: u64,
}

/// The sequential model.
struct Model {
    /// The live keys.
    map: HashMap<String, Slot>,
    /// Keys that expired and that the cache may still count in `len` until it finds them.
    zombies: HashSet<String>,
    /// Every version a store returned in this run → its id (ids count from 0).
    ids: HashMap<Version, usize>,
    /// Versions by id.
    versions: Vec<Version>,
    /// Whether the cache must keep every key (no eviction possible).
    exact: bool,
    capacity: Option<u64>,
    /// The cache's default time to live.
    ttl: Option<Duration>,
    /// The mock clock (ms).
    now: u64,
    /// compare-and-swap outcomes: (stored, not found, mismatched).
    cas: (u64, u64, u64),
}

impl Model {
    fn deadline(&self, ttl: Option<Duration>) -> u64 {
        match ttl {
            None => 0,
            Some(ttl) => self.now.saturating_add(ttl.as_millis() as u64).max(1),
        }
    }

    /// Records a successful conditional write (`replace`, `compare_and_swap`, `update`): like
    /// memcached's `incr`, it keeps the entry's deadline.
    fn rewritten(&mut self, key: &str, value: String, version: Version) {
        let deadline = self.map.get(key).expect("rewrote a live key").deadline;
        self.stored(key, value, version, None);
        self.map.get_mut(key).expect("just stored").deadline = deadline;
        self.expire();
    }

    /// Records a successful store: the version must be fresh. The deadline is `ttl`, else the
    /// cache's default time to live.
    fn stored(&mut self, key: &str, value: String, version: Version, ttl: Option<Duration>) {
        assert_ne!(version.get(), 0, "version 0 returned");
        assert_eq!(Version::from_raw(version.get()), Some(version));
        let id = self.versions.len();
        let previous = self.ids.insert(version, id);
        assert!(
            previous.is_none(),
            "store on {key} returned version {version} already returned (id {previous:?})"
        );
        self.versions.push(version);
        let deadline = self.deadline(ttl.or(self.ttl));
        self.map.insert(
            key.to_string(),
            Slot {
                value,
                id,
                deadline,
            },
        );
        self.expire();
    }

    /// Moves keys whose deadline has passed to the zombies.
    fn expire(&mut self) {
        let now = self.now;
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|(_, slot)| slot.deadline != 0 && slot.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.map.remove(&key);
            self.zombies.insert(key);
        }
    }

    /// The id of a version the cache reported as current: some store must have returned it.
    fn id(&self, version: Version) -> usize {
        *self.ids.get(&version).unwrap_or_else(|| {
            panic!("the cache reported version {version}, which no store returned")
        })
    }

    /// The model's version id of `key`, if live.
    fn current(&self, key: &str) -> Option<usize> {
        self.map.get(key).map(|slot| slot.id)
    }

    fn value(&self, key: &str) -> Option<&String> {
        self.map.get(key).map(|slot| &slot.value)
    }

    fn pick(&self, pick: VersionPick) -> Version {
        let newest = || self.versions.last().copied();
        let raw = |n: u64| Version::from_raw(n).unwrap_or_else(|| Version::from_raw(1).unwrap());
        match pick {
            VersionPick::Current(k) => self
                .current(&k.name())
                .map(|id| self.versions[id])
                .or_else(newest)
                .unwrap_or_else(|| raw(1)),
            VersionPick::Seen(n) if !self.versions.is_empty() => {
                self.versions[usize::from(n) % self.versions.len()]
            }
            VersionPick::Seen(n) => raw(u64::from(n)),
            VersionPick::Raw(n) => raw(n),
        }
    }

    /// Whether `expected` is the version the model holds for `key`.
    fn matches(&self, key: &str, expected: Version) -> bool {
        match (self.current(key), self.ids.get(&expected)) {
            (Some(current), Some(&id)) => current == id,
            _ => false,
        }
    }

    fn remove(&mut self, key: &str) -> Option<Slot> {
        self.map.remove(key)
    }
}

/// What [`sync`] needs from a cache or a pinned view.
trait Target {
    fn has(&self, key: &str) -> bool;
}

impl<S: BuildHasher> Target for Cache<String, String, S> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }
}

impl<S: BuildHasher> Target for Pinned<'_, String, String, S> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }
}

/// Brings the model up to date with expiry and (a tight cache) evictions, or checks that no key
/// was lost (the others); then the sizes must agree.
fn sync<S: BuildHasher>(
    model: &mut Model,
    cache: &Cache<String, String, S>,
    on: &impl Target,
    log: &Log,
) {
    model.expire();
    let keys: Vec<String> = model.map.keys().cloned().collect();
    for key in keys {
        if !on.has(&key) {
            assert!(
                !model.exact,
                "{key} vanished from a cache that has room for every key"
            );
            model.map.remove(&key);
            // An evicted key is gone: it no longer counts in `len`.
            model.zombies.remove(&key);
        }
    }
    for k in 0..KEYS {
        let key = Key(k).name();
        if !model.map.contains_key(&key) {
            assert!(!on.has(&key), "{key} is in the cache but not in the model");
        }
    }
    let live = model.map.len();
    let dead = model
        .zombies
        .iter()
        .filter(|k| !model.map.contains_key(*k))
        .count();
    let len = cache.len();
    assert!(
        live <= len && len <= live + dead,
        "len {len}, but {live} live keys and {dead} expired"
    );
    assert_eq!(cache.is_empty(), len == 0, "is_empty");
    let (weight, bound) = cache.weighted_size();
    assert_eq!(bound, model.capacity, "weighted_size capacity");
    match model.capacity {
        None => assert_eq!(weight, len as u64, "weighted_size of an unbounded cache"),
        Some(capacity) => assert!(weight <= capacity, "weight {weight} over {capacity}"),
    }
    for (key, _value, cause) in log.lock().unwrap().drain(..) {
        if cause == RemovalCause::Evicted {
            assert!(!model.exact, "{key} evicted from a cache with room for it");
        }
    }
}

/// Checks a compare-and-swap / replace result against the model, applying it.
fn check_store(
    model: &mut Model,
    key: &str,
    expected: Option<Version>,
    val: String,
    result: Result<Version, CasError<String>>,
) {
    let current = model.current(key);
    match result {
        Ok(version) => {
            assert!(current.is_some(), "store on absent {key} succeeded");
            if let Some(expected) = expected {
                assert!(
                    model.matches(key, expected),
                    "cas on {key} succeeded from a stale version"
                );
                model.cas.0 += 1;
            }
            model.rewritten(key, val, version);
        }
        Err(err) => {
            let _ = err.to_string();
            let reported = err.current();
            match err {
                CasError::NotFound(back) => {
                    assert_eq!(back, val, "NotFound handed back another value");
                    assert!(
                        current.is_none(),
                        "{key} is present, the cache said NotFound"
                    );
                    assert_eq!(reported, None);
                    if expected.is_some() {
                        model.cas.1 += 1;
                    }
                }
                CasError::Mismatch {
                    current: now,
                    value,
                } => {
                    assert_eq!(value, val, "Mismatch handed back another value");
                    assert_eq!(reported, Some(now));
                    let expected = expected.expect("replace never mismatches");
                    assert_eq!(
                        current,
                        Some(model.id(now)),
                        "Mismatch reported a stale version"
                    );
                    assert!(
                        !model.matches(key, expected),
                        "cas from the current version failed"
                    );
                    model.cas.2 += 1;
                }
            }
        }
    }
}

fn check_add(
    model: &mut Model,
    key: &str,
    val: String,
    ttl: Option<Duration>,
    result: Result<Version, Occupied<String>>,
) {
    match result {
        Ok(version) => {
            assert!(
                model.current(key).is_none(),
                "add on present {key} succeeded"
            );
            model.stored(key, val, version, ttl);
        }
        Err(err) => {
            let _ = err.to_string();
            assert_eq!(err.value, val, "Occupied handed back another value");
            assert_eq!(
                model.current(key),
                Some(model.id(err.current)),
                "add on {key}: Occupied"
            );
        }
    }
}

fn check_update(model: &mut Model, key: &str, f: UpdateFn, result: Option<Version>) {
    let next = model.value(key).and_then(|v| f.apply(v));
    match (result, next) {
        (Some(version), Some(next)) => model.rewritten(key, next, version),
        (None, None) => {}
        (result, next) => panic!("update on {key}: cache {result:?}, model {next:?}"),
    }
}

fn check_remove_if_version(
    model: &mut Model,
    key: &str,
    expected: Version,
    result: Result<(), CasError<()>>,
) {
    match result {
        Ok(()) => {
            assert!(
                model.matches(key, expected),
                "remove_if_version on {key} from a stale version"
            );
            model.remove(key);
        }
        Err(CasError::NotFound(())) => {
            assert!(model.current(key).is_none(), "{key}: NotFound")
        }
        Err(CasError::Mismatch { current, .. }) => {
            assert_eq!(
                model.current(key),
                Some(model.id(current)),
                "{key}: Mismatch version"
            );
            assert!(
                !model.matches(key, expected),
                "{key}: current version mismatched"
            );
        }
    }
}

fn check_entries(model: &Model, mut entries: Vec<(String, String)>) {
    entries.sort();
    let keys: HashSet<&String> = entries.iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), entries.len(), "iter yielded a key twice");
    let mut expected: Vec<(String, String)> = model
        .map
        .iter()
        .map(|(k, slot)| (k.clone(), slot.value.clone()))
        .collect();
    expected.sort();
    assert_eq!(entries, expected, "iter");
}

/// After a loader inserted `key`, learns the version it got (it must be fresh).
fn loaded<S: BuildHasher>(
    model: &mut Model,
    cache: &Cache<String, String, S>,
    key: &str,
    value: &str,
) {
    match cache.gets(key) {
        Some((got, version)) => {
            assert_eq!(got, value, "get_or_insert_with stored another value");
            model.stored(key, got, version, None);
        }
        None => assert!(!model.exact, "a loaded {key} vanished"),
    }
}

fn drive<S: BuildHasher>(
    model: &mut Model,
    cache: &Cache<String, String, S>,
    clock: &MockClock,
    log: &Log,
    ops: &[Op],
) {
    let _ = format!("{cache:?}");
    for op in ops.iter().take(MAX_OPS) {
        sync(model, cache, cache, log);
        // The crate's internal agreement (queues vs table, weights, length): fuzzing builds only.
        #[cfg(fuzzing)]
        cache.check_invariants();
        match *op {
            Op::Insert(k, n) => {
                let version = cache.insert(k.name(), value(n));
                model.stored(&k.name(), value(n), version, None);
            }
            Op::InsertWithTtl(k, n, ttl) => {
                let version = cache.insert_with_ttl(k.name(), value(n), ttl.get());
                model.stored(&k.name(), value(n), version, Some(ttl.get()));
            }
            Op::Get(k) => {
                let expected = model.value(&k.name()).cloned();
                assert_eq!(cache.get(k.name().as_str()), expected, "get");
            }
            Op::Gets(k) => {
                let got = cache.gets(k.name().as_str());
                let got = got.map(|(v, version)| (v, model.id(version)));
                let expected = model.map.get(&k.name()).map(|s| (s.value.clone(), s.id));
                assert_eq!(got, expected, "gets");
            }
            Op::GetWith(k) => {
                let expected = model.value(&k.name()).map(String::len);
                assert_eq!(
                    cache.get_with(k.name().as_str(), String::len),
                    expected,
                    "get_with"
                );
            }
            Op::ContainsKey(k) => {
                assert_eq!(
                    cache.contains_key(k.name().as_str()),
                    model.map.contains_key(&k.name())
                );
            }
            Op::Add(k, n) => {
                let result = cache.add(k.name(), value(n));
                check_add(model, &k.name(), value(n), None, result);
            }
            Op::AddWithTtl(k, n, ttl) => {
                let result = cache.add_with_ttl(k.name(), value(n), ttl.get());
                check_add(model, &k.name(), value(n), Some(ttl.get()), result);
            }
            Op::Replace(k, n) => {
                let result = cache.replace(k.name().as_str(), value(n));
                check_store(model, &k.name(), None, value(n), result);
            }
            Op::Cas(k, pick, n) => {
                let expected = model.pick(pick);
                let result = cache.compare_and_swap(k.name().as_str(), expected, value(n));
                check_store(model, &k.name(), Some(expected), value(n), result);
            }
            Op::Update(k, f) => {
                let result = cache.update(k.name().as_str(), |v: &String| f.apply(v));
                check_update(model, &k.name(), f, result);
            }
            Op::Remove(k) => {
                let expected = model.remove(&k.name()).map(|slot| slot.value);
                assert_eq!(cache.remove(k.name().as_str()), expected, "remove");
            }
            Op::Delete(k) => {
                let expected = model.remove(&k.name()).is_some();
                assert_eq!(cache.delete(k.name().as_str()), expected, "delete");
            }
            Op::RemoveIfVersion(k, pick) => {
                let expected = model.pick(pick);
                let result = cache.remove_if_version(k.name().as_str(), expected);
                check_remove_if_version(model, &k.name(), expected, result);
            }
            Op::Touch(k, ttl) => {
                let ttl = ttl.map(Ttl::get);
                let touched = cache.touch(k.name().as_str(), ttl);
                let deadline = model.deadline(ttl);
                match model.map.get_mut(&k.name()) {
                    Some(slot) => {
                        assert!(touched, "touch missed a live key");
                        slot.deadline = deadline;
                    }
                    None => assert!(!touched, "touch found an absent key"),
                }
            }
            Op::GetAndTouch(k, ttl) => {
                let ttl = ttl.map(Ttl::get);
                let got = cache.get_and_touch(k.name().as_str(), ttl);
                let got = got.map(|(v, version)| (v, model.id(version)));
                let deadline = model.deadline(ttl);
                let expected = model.map.get_mut(&k.name()).map(|slot| {
                    slot.deadline = deadline;
                    (slot.value.clone(), slot.id)
                });
                assert_eq!(got, expected, "get_and_touch");
            }
            Op::TimeToLive(k) => {
                let expected = model.map.get(&k.name()).map(|slot| {
                    (slot.deadline != 0).then(|| Duration::from_millis(slot.deadline - model.now))
                });
                assert_eq!(
                    cache.time_to_live(k.name().as_str()),
                    expected,
                    "time_to_live"
                );
            }
            Op::GetOrInsertWith(k, n) => {
                let present = model.value(&k.name()).cloned();
                let mut called = false;
                let got = cache.get_or_insert_with(k.name(), || {
                    called = true;
                    value(n)
                });
                assert_eq!(called, present.is_none(), "loader called iff absent");
                match present {
                    Some(present) => assert_eq!(got, present, "get_or_insert_with"),
                    None => {
                        assert_eq!(got, value(n), "get_or_insert_with");
                        loaded(model, cache, &k.name(), &got);
                    }
                }
            }
            Op::TryGetOrInsertWith(k, n) => {
                let present = model.value(&k.name()).cloned();
                let got = cache.try_get_or_insert_with(k.name(), || n.map(value).ok_or("no value"));
                match (present, n) {
                    (Some(present), _) => assert_eq!(got, Ok(present), "try_get_or_insert_with"),
                    (None, Some(n)) => {
                        assert_eq!(got, Ok(value(n)), "try_get_or_insert_with");
                        loaded(model, cache, &k.name(), &value(n));
                    }
                    (None, None) => {
                        assert_eq!(got.map_err(|e| *e), Err("no value"), "failed loader")
                    }
                }
            }
            Op::Advance(ms) => {
                let ms = u64::from(ms % 2048);
                clock.advance(Duration::from_millis(ms));
                model.now += ms;
            }
            Op::Len | Op::IsEmpty | Op::WeightedSize => {} // checked by every `sync`
            Op::Stats => {
                let stats = cache.stats();
                let _ = stats.hit_ratio();
                let cas = (stats.cas_hits, stats.cas_misses, stats.cas_badval);
                assert_eq!(cas, model.cas, "cas statistics (hits, misses, badval)");
            }
            Op::Clear => {
                cache.clear();
                model.map.clear();
                model.zombies.clear();
            }
            Op::Iter => check_entries(model, cache.iter().collect()),
            Op::Pinned(ref batch) => pinned_batch(model, cache, log, batch),
        }
    }
    sync(model, cache, cache, log);
}

fn pinned_batch<S: BuildHasher>(
    model: &mut Model,
    cache: &Cache<String, String, S>,
    log: &Log,
    batch: &[PinnedOp],
) {
    let pinned = cache.pin();
    let _ = format!("{pinned:?}");
    // Borrowed results, with what they showed when returned.
    let mut borrowed: Vec<(&String, String)> = Vec::new();
    for op in batch.iter().take(MAX_OPS) {
        sync(model, cache, &pinned, log);
        match *op {
            PinnedOp::Get(k) => {
                let got = pinned.get(k.name().as_str());
                assert_eq!(got, model.value(&k.name()), "pinned get");
                borrowed.extend(got.map(|v| (v, v.clone())));
            }
            PinnedOp::Gets(k) => {
                let got = pinned.gets(k.name().as_str());
                let expected = model.map.get(&k.name()).map(|s| (&s.value, s.id));
                assert_eq!(
                    got.map(|(v, version)| (v, model.id(version))),
                    expected,
                    "pinned gets"
                );
                borrowed.extend(got.map(|(v, _)| (v, v.clone())));
            }
            PinnedOp::ContainsKey(k) => {
                assert_eq!(
                    pinned.contains_key(k.name().as_str()),
                    model.map.contains_key(&k.name())
                );
            }
            PinnedOp::Insert(k, n) => {
                let version = pinned.insert(k.name(), value(n));
                model.stored(&k.name(), value(n), version, None);
            }
            PinnedOp::Add(k, n) => {
                let result = pinned.add(k.name(), value(n));
                check_add(model, &k.name(), value(n), None, result);
            }
            PinnedOp::Replace(k, n) => {
                let result = pinned.replace(k.name().as_str(), value(n));
                check_store(model, &k.name(), None, value(n), result);
            }
            PinnedOp::Cas(k, pick, n) => {
                let expected = model.pick(pick);
                let result = pinned.compare_and_swap(k.name().as_str(), expected, value(n));
                check_store(model, &k.name(), Some(expected), value(n), result);
            }
            PinnedOp::Update(k, f) => {
                let result = pinned.update(k.name().as_str(), |v: &String| f.apply(v));
                check_update(model, &k.name(), f, result);
            }
            PinnedOp::Remove(k) => {
                let got = pinned.remove(k.name().as_str());
                let expected = model.remove(&k.name()).map(|slot| slot.value);
                assert_eq!(got, expected.as_ref(), "pinned remove");
                borrowed.extend(got.map(|v| (v, v.clone())));
            }
            PinnedOp::RemoveIfVersion(k, pick) => {
                let expected = model.pick(pick);
                let result = pinned.remove_if_version(k.name().as_str(), expected);
                check_remove_if_version(model, &k.name(), expected, result);
            }
            PinnedOp::Iter => {
                let entries: Vec<(String, String)> =
                    pinned.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                check_entries(model, entries);
                borrowed.extend(pinned.iter().map(|(_, v)| (v, v.clone())));
            }
        }
    }
    // The view kept everything it lent alive and unchanged, whatever happened since.
    for (reference, was) in borrowed {
        assert_eq!(
            *reference, was,
            "a borrowed value changed under a pinned view"
        );
    }
}
