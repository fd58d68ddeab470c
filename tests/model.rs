//! Deterministic model test of every public operation (single thread, no timing).
//!
//! A proptest strategy generates sequences of operations on a small key space (`u8` keys
//! `0..16`) so that collisions, removes, re-inserts, tombstone rehashes and table growth all
//! happen (the cache starts from the smallest table: `initial_capacity(2)`). Each operation runs
//! on the cache and on a model, a `HashMap<K, (V, Version, deadline)>` with a clock, statistics
//! and the eviction listener's expected calls. The cache's clock is a [`MockClock`] the test
//! advances, so expiry is deterministic too. The test checks after every step that:
//!
//! * the result of the operation is the one the model predicts, including the variant of a
//!   `CasError` / `Occupied`, the current version it carries, and the value it hands back;
//! * every version a write returns is fresh: never 0 and never returned before in the whole run
//!   (all cases of all tests of this binary share one record);
//! * the eviction listener heard exactly the departures the model predicts (key, old value,
//!   cause);
//! * the whole cache agrees with the model: `gets`, `contains_key` and `time_to_live` of every
//!   key, `len`, `is_empty`, `weighted_size`, and every counter of `stats`.
//!
//! Batches of steps run through one [`Pinned`] view, and the references its reads return are
//! checked at the end of the batch: they must still show the values as they were read, even after
//! the entries were replaced, removed, expired or cleared meanwhile.
//!
//! Bounded caches (eviction) and time to idle are not modelled here.
//!
//! The runner uses a fixed XorShift seed, so every run explores the same cases (a failure
//! reproduces exactly). The heavier variants are `#[ignore]`d:
//! `cargo test --release --test model -- --include-ignored`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cascache::{Cache, CacheStats, CasError, MockClock, Occupied, Pinned, RemovalCause, Version};
use crossbeam_epoch::Collector;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config, RngAlgorithm, TestCaseError, TestCaseResult, TestRng, TestRunner,
};

/// Keys are `0..KEYS`.
const KEYS: u8 = 16;

/// The runner's fixed seed (any 16 bytes; changing it explores other cases).
///
/// XorShift rather than ChaCha: both are deterministic for a fixed seed, but in an unoptimized
/// build ChaCha took about 70% of this test's time.
const SEED: [u8; 16] = *b"cascache model!!";

/// Misses a `get_or_insert_with` / `try_get_or_insert_with` that runs its loader records.
///
/// Current behaviour: 2 (the first read, then the leader's re-check), though the call is one
/// read. Reported as a probable bug; set to 1 once reads count once.
const MISSES_PER_LOAD: u64 = 1;

/// Whether `replace`, `compare_and_swap` and `update` keep the entry's deadline.
///
/// Current behaviour: they do not, the new value gets the cache's default time to live (none by
/// default), so an entry given a time to live by `insert_with_ttl`, `add_with_ttl` or `touch`
/// never expires after one of them. Reported (memcached's `incr`/`decr`, which `update` stands
/// for, keep the item's expiry); flip this if that changes.
const CONDITIONAL_WRITES_KEEP_DEADLINE: bool = true;

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A value type under test: built from a generated number, and transformed by `update`.
trait Val: Clone + Ord + Debug + Send + Sync + 'static {
    fn make(n: u32) -> Self;
    fn bump(&self) -> Self;
}

impl Val for u32 {
    fn make(n: u32) -> Self {
        n
    }
    fn bump(&self) -> Self {
        self.wrapping_add(1)
    }
}

impl Val for String {
    fn make(n: u32) -> Self {
        format!("value-{n}")
    }
    fn bump(&self) -> Self {
        // Bounded length: `update` runs at most a few hundred times per case.
        format!("{self}+")
    }
}

thread_local! {
    /// Live `Tracked` instances created on this thread. The model test is single-threaded and
    /// its caches use a collector of their own, so every drop happens on this thread too.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Drops of `Tracked` instances: a double drop shows up as `DROPS > created`.
    static DROPS: Cell<usize> = const { Cell::new(0) };
    static CREATED: Cell<usize> = const { Cell::new(0) };
}

/// A heap-owning value that counts its live instances.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Tracked(String);

impl Tracked {
    fn new(s: String) -> Self {
        LIVE.with(|c| c.set(c.get() + 1));
        CREATED.with(|c| c.set(c.get() + 1));
        Tracked(s)
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.0.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.with(|c| c.set(c.get() - 1));
        DROPS.with(|c| c.set(c.get() + 1));
    }
}

impl Val for Tracked {
    fn make(n: u32) -> Self {
        Tracked::new(String::make(n))
    }
    fn bump(&self) -> Self {
        Tracked::new(self.0.bump())
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// Which version a conditional write passes.
#[derive(Clone, Debug)]
enum Pick {
    /// The key's current version (an expired entry's, or a stale one, when the key is not live).
    Current,
    /// A version the key held earlier (before a replace, or before a remove / clear).
    Stale(Index),
    /// A version some other key holds or held.
    OtherKey(u8, Index),
    /// A version never issued.
    Bogus,
}

/// Times to live are in milliseconds of the mock clock.
#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u32),
    InsertWithTtl(u8, u32, u64),
    Get(u8),
    Gets(u8),
    GetWith(u8),
    ContainsKey(u8),
    Add(u8, u32),
    AddWithTtl(u8, u32, u64),
    Replace(u8, u32),
    Cas(u8, Pick, u32),
    /// `true`: the closure declines.
    Update(u8, bool),
    Remove(u8),
    Delete(u8),
    RemoveIfVersion(u8, Pick),
    Touch(u8, Option<u64>),
    GetAndTouch(u8, Option<u64>),
    TimeToLive(u8),
    GetOrInsertWith(u8, u32),
    /// `true`: the loader fails.
    TryGetOrInsertWith(u8, u32, bool),
    /// Moves the mock clock forward.
    Advance(u64),
    Len,
    IsEmpty,
    WeightedSize,
    Stats,
    Clear,
    Iter,
}

#[derive(Clone, Debug)]
enum Step {
    Plain(Op),
    /// Operations under one pinned view; `true` runs the operation through the view (when it has
    /// it), `false` through the cache while the view is held.
    Pinned(Vec<(bool, Op)>),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        3 => Just(Pick::Current),
        3 => any::<Index>().prop_map(Pick::Stale),
        1 => (0..KEYS, any::<Index>()).prop_map(|(k, i)| Pick::OtherKey(k, i)),
        1 => Just(Pick::Bogus),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = || 0..KEYS;
    let val = || 0u32..1000;
    // Times to live around the clock's steps, so that entries expire now and then (0 included:
    // stored already expired).
    let ttl = || 0u64..40;
    prop_oneof![
        6 => (key(), val()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (key(), val(), ttl()).prop_map(|(k, v, t)| Op::InsertWithTtl(k, v, t)),
        2 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::Gets),
        1 => key().prop_map(Op::GetWith),
        1 => key().prop_map(Op::ContainsKey),
        3 => (key(), val()).prop_map(|(k, v)| Op::Add(k, v)),
        1 => (key(), val(), ttl()).prop_map(|(k, v, t)| Op::AddWithTtl(k, v, t)),
        2 => (key(), val()).prop_map(|(k, v)| Op::Replace(k, v)),
        6 => (key(), pick(), val()).prop_map(|(k, p, v)| Op::Cas(k, p, v)),
        3 => (key(), any::<bool>()).prop_map(|(k, d)| Op::Update(k, d)),
        3 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::Delete),
        3 => (key(), pick()).prop_map(|(k, p)| Op::RemoveIfVersion(k, p)),
        1 => (key(), proptest::option::of(ttl())).prop_map(|(k, t)| Op::Touch(k, t)),
        1 => (key(), proptest::option::of(ttl())).prop_map(|(k, t)| Op::GetAndTouch(k, t)),
        1 => key().prop_map(Op::TimeToLive),
        2 => (key(), val()).prop_map(|(k, v)| Op::GetOrInsertWith(k, v)),
        1 => (key(), val(), any::<bool>()).prop_map(|(k, v, f)| Op::TryGetOrInsertWith(k, v, f)),
        2 => (0u64..25).prop_map(Op::Advance),
        1 => Just(Op::Len),
        1 => Just(Op::IsEmpty),
        1 => Just(Op::WeightedSize),
        1 => Just(Op::Stats),
        1 => Just(Op::Clear),
        1 => Just(Op::Iter),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => op().prop_map(Step::Plain),
        1 => vec((any::<bool>(), op()), 1..12).prop_map(Step::Pinned),
    ]
}

fn steps(max_len: usize) -> impl Strategy<Value = Vec<Step>> {
    vec(step(), 1..max_len)
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// Every version returned by any write of any case of this binary (versions are unique in the
/// process, so this set only grows).
static SEEN: Mutex<Option<HashSet<Version>>> = Mutex::new(None);

fn record_fresh(version: Version, what: &str) -> Result<(), TestCaseError> {
    prop_assert_ne!(version.get(), 0, "{} returned version 0", what);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = seen.get_or_insert_with(HashSet::new).insert(version);
    prop_assert!(
        fresh,
        "{} returned {:?}, a version seen before",
        what,
        version
    );
    Ok(())
}

/// An entry in the table: live, or expired but not yet removed (it still counts in `len`).
#[derive(Clone, Debug)]
struct Slot<V> {
    value: V,
    version: Version,
    /// Mock-clock milliseconds; 0: never expires.
    deadline: u64,
}

/// The counters of `CacheStats`, as the model predicts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    hits: u64,
    misses: u64,
    inserts: u64,
    updates: u64,
    removals: u64,
    evictions: u64,
    expirations: u64,
    cas_hits: u64,
    cas_misses: u64,
    cas_badval: u64,
}

impl From<CacheStats> for Counts {
    fn from(s: CacheStats) -> Self {
        Counts {
            hits: s.hits,
            misses: s.misses,
            inserts: s.inserts,
            updates: s.updates,
            removals: s.removals,
            evictions: s.evictions,
            expirations: s.expirations,
            cas_hits: s.cas_hits,
            cas_misses: s.cas_misses,
            cas_badval: s.cas_badval,
        }
    }
}

/// A call of the eviction listener.
type Departure<V> = (u8, V, RemovalCause);

fn cause_rank(cause: RemovalCause) -> u8 {
    match cause {
        RemovalCause::Evicted => 0,
        RemovalCause::Expired => 1,
        RemovalCause::Removed => 2,
        RemovalCause::Replaced => 3,
    }
}

fn sort_departures<V: Val>(all: &mut [Departure<V>]) {
    all.sort_by(|a, b| (a.0, cause_rank(a.2), &a.1).cmp(&(b.0, cause_rank(b.2), &b.1)));
}

struct Model<V> {
    /// The mock clock, in milliseconds (it starts at 1).
    now: u64,
    /// The cache's default time to live, in milliseconds.
    default_ttl: Option<u64>,
    /// Every entry in the table, expired ones included.
    map: HashMap<u8, Slot<V>>,
    /// Every version each key has held, current included.
    history: HashMap<u8, Vec<Version>>,
    stats: Counts,
    /// The listener calls the current operation should make.
    departed: Vec<Departure<V>>,
}

impl<V: Val> Model<V> {
    fn new(default_ttl: Option<u64>) -> Self {
        Model {
            now: 1,
            default_ttl,
            map: HashMap::new(),
            history: HashMap::new(),
            stats: Counts::default(),
            departed: Vec::new(),
        }
    }

    fn deadline(&self, ttl: Option<u64>) -> u64 {
        ttl.map_or(0, |ttl| (self.now + ttl).max(1))
    }

    fn expired(&self, slot: &Slot<V>) -> bool {
        slot.deadline != 0 && slot.deadline <= self.now
    }

    /// The live (present and unexpired) entry of `key`.
    fn live(&self, key: u8) -> Option<&Slot<V>> {
        self.map.get(&key).filter(|slot| !self.expired(slot))
    }

    fn current(&self, key: u8) -> Option<Version> {
        self.live(key).map(|slot| slot.version)
    }

    /// The versions `key` held before its live one.
    fn stale_versions(&self, key: u8) -> Vec<Version> {
        let current = self.current(key);
        let history = self.history.get(&key).into_iter().flatten().copied();
        history.filter(|v| Some(*v) != current).collect()
    }

    /// The version a conditional write on `key` passes for `pick`.
    fn resolve(&self, key: u8, pick: &Pick) -> Version {
        let bogus = Version::from_raw(u64::MAX).unwrap();
        let stale = |index: &Index| {
            let old = self.stale_versions(key);
            (!old.is_empty()).then(|| old[index.index(old.len())])
        };
        match pick {
            // An expired entry's version is the most tempting stale one.
            Pick::Current => self
                .map
                .get(&key)
                .map(|slot| slot.version)
                .or_else(|| self.stale_versions(key).last().copied())
                .unwrap_or(bogus),
            Pick::Stale(index) => stale(index).unwrap_or(bogus),
            Pick::OtherKey(other, index) => {
                let other = if *other == key {
                    (key + 1) % KEYS
                } else {
                    *other
                };
                match self.history.get(&other) {
                    Some(all) if !all.is_empty() => all[index.index(all.len())],
                    _ => bogus,
                }
            }
            Pick::Bogus => bogus,
        }
    }

    fn sorted(&self) -> Vec<(u8, V)> {
        let mut all: Vec<_> = (0..KEYS)
            .filter_map(|k| self.live(k).map(|slot| (k, slot.value.clone())))
            .collect();
        all.sort();
        all
    }

    fn ttl(&self, key: u8) -> Option<Option<Duration>> {
        let slot = self.live(key)?;
        Some((slot.deadline != 0).then(|| Duration::from_millis(slot.deadline - self.now)))
    }

    /// A counted read (`get`, `gets`, `get_with`, the pinned reads).
    fn read(&mut self, key: u8) -> Option<(V, Version)> {
        match self.live(key) {
            Some(slot) => {
                let found = (slot.value.clone(), slot.version);
                self.stats.hits += 1;
                Some(found)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Records a successful store of `value` under `key` at `version`.
    fn stored(
        &mut self,
        key: u8,
        value: V,
        version: Version,
        deadline: u64,
        what: &str,
    ) -> TestCaseResult {
        record_fresh(version, what)?;
        self.map.insert(
            key,
            Slot {
                value,
                version,
                deadline,
            },
        );
        self.history.entry(key).or_default().push(version);
        Ok(())
    }

    /// An unconditional store (`insert`, `add` of an absent key, a load): the old entry, live or
    /// expired, departs.
    fn store_over(
        &mut self,
        key: u8,
        value: V,
        ttl: Option<u64>,
        version: Version,
        what: &str,
    ) -> TestCaseResult {
        match self.map.get(&key) {
            Some(old) if self.expired(old) => {
                self.stats.inserts += 1;
                self.stats.expirations += 1;
                self.departed
                    .push((key, old.value.clone(), RemovalCause::Expired));
            }
            Some(old) => {
                self.stats.updates += 1;
                self.departed
                    .push((key, old.value.clone(), RemovalCause::Replaced));
            }
            None => self.stats.inserts += 1,
        }
        let deadline = self.deadline(ttl.or(self.default_ttl));
        self.stored(key, value, version, deadline, what)
    }

    /// A store over the live entry (`replace`, `compare_and_swap`, `update`).
    fn store_live(&mut self, key: u8, value: V, version: Version, what: &str) -> TestCaseResult {
        let old = self.live(key).expect("checked by the caller").clone();
        self.stats.updates += 1;
        self.departed.push((key, old.value, RemovalCause::Replaced));
        let deadline = if CONDITIONAL_WRITES_KEEP_DEADLINE {
            old.deadline
        } else {
            self.deadline(self.default_ttl)
        };
        self.stored(key, value, version, deadline, what)
    }

    /// Takes the entry of `key` out of the table, live or expired; returns the live value.
    fn take(&mut self, key: u8) -> Option<V> {
        let slot = self.map.remove(&key)?;
        if self.expired(&slot) {
            self.stats.expirations += 1;
            self.departed.push((key, slot.value, RemovalCause::Expired));
            None
        } else {
            self.stats.removals += 1;
            self.departed
                .push((key, slot.value.clone(), RemovalCause::Removed));
            Some(slot.value)
        }
    }

    // ----- expected outcomes, shared by the cache and the pinned view -----

    fn check_read(&mut self, key: u8, got: Option<(V, Version)>, what: &str) -> TestCaseResult {
        let want = self.read(key);
        prop_assert_eq!(got, want, "{} of key {}", what, key);
        Ok(())
    }

    fn check_add(
        &mut self,
        key: u8,
        value: V,
        ttl: Option<u64>,
        got: Result<Version, Occupied<V>>,
        what: &str,
    ) -> TestCaseResult {
        match (self.current(key), got) {
            (None, Ok(version)) => self.store_over(key, value, ttl, version, what)?,
            (Some(current), Err(occupied)) => {
                prop_assert_eq!(
                    occupied,
                    Occupied { current, value },
                    "{} of key {}",
                    what,
                    key
                )
            }
            (want, got) => {
                prop_assert!(
                    false,
                    "{} of key {}: current {:?}, got {:?}",
                    what,
                    key,
                    want,
                    got
                )
            }
        }
        Ok(())
    }

    /// `replace` (`expected == None`) and `compare_and_swap`.
    fn check_store(
        &mut self,
        key: u8,
        expected: Option<Version>,
        value: V,
        got: Result<Version, CasError<V>>,
        what: &str,
    ) -> TestCaseResult {
        let current = self.current(key);
        let is_cas = expected.is_some();
        match got {
            Ok(version) => {
                prop_assert!(
                    current.is_some() && (expected.is_none() || expected == current),
                    "{} of key {} with {:?} succeeded, but the key holds {:?}",
                    what,
                    key,
                    expected,
                    current
                );
                self.stats.cas_hits += u64::from(is_cas);
                self.store_live(key, value, version, what)?;
            }
            Err(err) => {
                let want = match current {
                    None => {
                        self.stats.cas_misses += u64::from(is_cas);
                        CasError::NotFound(value)
                    }
                    Some(current) => {
                        prop_assert!(
                            expected.is_some() && expected != Some(current),
                            "{} of key {} with {:?} failed with {:?} but the key holds {:?}",
                            what,
                            key,
                            expected,
                            err,
                            current
                        );
                        self.stats.cas_badval += 1;
                        CasError::Mismatch { current, value }
                    }
                };
                prop_assert_eq!(err, want, "{} of key {}", what, key);
            }
        }
        Ok(())
    }

    fn check_update(
        &mut self,
        key: u8,
        decline: bool,
        calls: Vec<V>,
        got: Option<Version>,
        what: &str,
    ) -> TestCaseResult {
        match self.live(key).cloned() {
            None => {
                prop_assert!(calls.is_empty(), "{} called f on absent key {}", what, key);
                prop_assert_eq!(got, None, "{} of absent key {}", what, key);
            }
            Some(slot) => {
                // No contention: exactly one call, with the current value.
                prop_assert_eq!(
                    &calls,
                    &vec![slot.value.clone()],
                    "{} calls, key {}",
                    what,
                    key
                );
                if decline {
                    prop_assert_eq!(got, None, "{} declined, key {}", what, key);
                } else {
                    let Some(version) = got else {
                        return Err(TestCaseError::fail(format!("{what} of key {key}: None")));
                    };
                    self.store_live(key, slot.value.bump(), version, what)?;
                }
            }
        }
        Ok(())
    }

    fn check_remove(&mut self, key: u8, got: Option<V>, what: &str) -> TestCaseResult {
        let want = self.take(key);
        prop_assert_eq!(got, want, "{} of key {}", what, key);
        Ok(())
    }

    fn check_remove_if(
        &mut self,
        key: u8,
        expected: Version,
        got: Result<(), CasError<()>>,
        what: &str,
    ) -> TestCaseResult {
        let want = match self.current(key) {
            None => Err(CasError::NotFound(())),
            Some(current) if current == expected => {
                self.take(key);
                Ok(())
            }
            Some(current) => Err(CasError::Mismatch { current, value: () }),
        };
        prop_assert_eq!(got, want, "{} of key {} with {:?}", what, key, expected);
        Ok(())
    }

    /// `touch` (and the touch of `get_and_touch`): a new deadline for a live key.
    fn touch(&mut self, key: u8, ttl: Option<u64>) -> bool {
        let deadline = self.deadline(ttl);
        let now = self.now;
        match self.map.get_mut(&key) {
            Some(slot) if !(slot.deadline != 0 && slot.deadline <= now) => {
                slot.deadline = deadline;
                true
            }
            _ => false,
        }
    }

    fn clear(&mut self) {
        for key in 0..KEYS {
            self.take(key);
        }
    }

    /// The whole cache agrees with the model. The reads it makes are counted, as the cache
    /// counts them.
    fn check_all(
        &mut self,
        cache: &Cache<u8, V>,
        pinned: Option<&Pinned<'_, u8, V>>,
    ) -> TestCaseResult {
        for key in 0..KEYS {
            let got = cache.gets(&key);
            self.check_read(key, got, "gets")?;
            let live = self.live(key).is_some();
            prop_assert_eq!(cache.contains_key(&key), live, "contains_key {}", key);
            prop_assert_eq!(
                cache.time_to_live(&key),
                self.ttl(key),
                "time_to_live {}",
                key
            );
            if let Some(p) = pinned {
                let got = p.gets(&key).map(|(v, ver)| (v.clone(), ver));
                self.check_read(key, got, "pinned gets")?;
                prop_assert_eq!(p.contains_key(&key), live, "pinned contains_key {}", key);
            }
        }
        let len = self.map.len();
        prop_assert_eq!(cache.len(), len, "len");
        prop_assert_eq!(cache.is_empty(), len == 0, "is_empty");
        prop_assert_eq!(cache.weighted_size(), (len as u64, None), "weighted_size");
        prop_assert_eq!(Counts::from(cache.stats()), self.stats, "stats");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Running operations
// ---------------------------------------------------------------------------------------------

/// What the listener heard.
type Heard<V> = Arc<Mutex<Vec<Departure<V>>>>;

/// A cache under test, with its clock and its listener's record.
struct Subject<V> {
    cache: Cache<u8, V>,
    clock: MockClock,
    heard: Heard<V>,
}

/// How to build the cache.
#[derive(Clone, Copy)]
struct Setup {
    initial_capacity: usize,
    default_ttl: Option<u64>,
    own_collector: bool,
}

const TINY: Setup = Setup {
    initial_capacity: 2,
    default_ttl: None,
    own_collector: false,
};

impl Setup {
    fn build<V: Val>(self) -> Subject<V> {
        let clock = MockClock::new();
        let heard: Heard<V> = Arc::default();
        let log = Arc::clone(&heard);
        let mut builder = Cache::builder()
            .initial_capacity(self.initial_capacity)
            .clock(clock.clone())
            .eviction_listener(move |k: &u8, v: &V, cause| {
                log.lock().unwrap().push((*k, v.clone(), cause));
            });
        if let Some(ttl) = self.default_ttl {
            builder = builder.time_to_live(Duration::from_millis(ttl));
        }
        if self.own_collector {
            builder = builder.collector(Collector::new());
        }
        Subject {
            cache: builder.build(),
            clock,
            heard,
        }
    }
}

/// Runs `op` on the cache (or through `pinned` when it has the operation) and checks the result
/// against the model. References read through the view are pushed to `held` with the value they
/// showed.
fn apply<'p, V: Val>(
    subject: &Subject<V>,
    pinned: Option<&'p Pinned<'_, u8, V>>,
    held: &mut Vec<(&'p V, V)>,
    model: &mut Model<V>,
    op: &Op,
) -> TestCaseResult {
    let cache = &subject.cache;
    match (op, pinned) {
        (Op::Insert(k, n), None) => {
            let got = cache.insert(*k, V::make(*n));
            model.store_over(*k, V::make(*n), None, got, "insert")?;
        }
        (Op::Insert(k, n), Some(p)) => {
            let got = p.insert(*k, V::make(*n));
            model.store_over(*k, V::make(*n), None, got, "pinned insert")?;
        }
        (Op::InsertWithTtl(k, n, ttl), _) => {
            let got = cache.insert_with_ttl(*k, V::make(*n), Duration::from_millis(*ttl));
            model.store_over(*k, V::make(*n), Some(*ttl), got, "insert_with_ttl")?;
        }
        (Op::Get(k), None) => {
            let got = cache.get(k);
            let want = model.read(*k).map(|(v, _)| v);
            prop_assert_eq!(got, want, "get {}", k);
        }
        (Op::Get(k), Some(p)) => {
            let got = p.get(k);
            held.extend(got.map(|r| (r, r.clone())));
            let want = model.read(*k).map(|(v, _)| v);
            prop_assert_eq!(got.cloned(), want, "pinned get {}", k);
        }
        (Op::Gets(k), None) => model.check_read(*k, cache.gets(k), "gets")?,
        (Op::Gets(k), Some(p)) => {
            let got = p.gets(k);
            held.extend(got.map(|(r, _)| (r, r.clone())));
            model.check_read(*k, got.map(|(v, ver)| (v.clone(), ver)), "pinned gets")?;
        }
        (Op::GetWith(k), _) => {
            let calls = Cell::new(0);
            let got = cache.get_with(k, |v| {
                calls.set(calls.get() + 1);
                v.clone()
            });
            let want = model.read(*k).map(|(v, _)| v);
            prop_assert_eq!(calls.get(), usize::from(want.is_some()), "get_with calls");
            prop_assert_eq!(got, want, "get_with {}", k);
        }
        (Op::ContainsKey(k), None) => {
            prop_assert_eq!(cache.contains_key(k), model.live(*k).is_some());
        }
        (Op::ContainsKey(k), Some(p)) => {
            prop_assert_eq!(p.contains_key(k), model.live(*k).is_some());
        }
        (Op::Add(k, n), None) => {
            let got = cache.add(*k, V::make(*n));
            model.check_add(*k, V::make(*n), None, got, "add")?;
        }
        (Op::Add(k, n), Some(p)) => {
            let got = p.add(*k, V::make(*n));
            model.check_add(*k, V::make(*n), None, got, "pinned add")?;
        }
        (Op::AddWithTtl(k, n, ttl), _) => {
            let got = cache.add_with_ttl(*k, V::make(*n), Duration::from_millis(*ttl));
            model.check_add(*k, V::make(*n), Some(*ttl), got, "add_with_ttl")?;
        }
        (Op::Replace(k, n), None) => {
            let got = cache.replace(k, V::make(*n));
            model.check_store(*k, None, V::make(*n), got, "replace")?;
        }
        (Op::Replace(k, n), Some(p)) => {
            let got = p.replace(k, V::make(*n));
            model.check_store(*k, None, V::make(*n), got, "pinned replace")?;
        }
        (Op::Cas(k, pick, n), None) => {
            let expected = model.resolve(*k, pick);
            let got = cache.compare_and_swap(k, expected, V::make(*n));
            model.check_store(*k, Some(expected), V::make(*n), got, "compare_and_swap")?;
        }
        (Op::Cas(k, pick, n), Some(p)) => {
            let expected = model.resolve(*k, pick);
            let got = p.compare_and_swap(k, expected, V::make(*n));
            model.check_store(*k, Some(expected), V::make(*n), got, "pinned cas")?;
        }
        (Op::Update(k, decline), _) => {
            let calls = RefCell::new(Vec::new());
            let f = |v: &V| {
                calls.borrow_mut().push(v.clone());
                (!decline).then(|| v.bump())
            };
            let (got, what) = match pinned {
                None => (cache.update(k, f), "update"),
                Some(p) => (p.update(k, f), "pinned update"),
            };
            model.check_update(*k, *decline, calls.into_inner(), got, what)?;
        }
        (Op::Remove(k), None) => model.check_remove(*k, cache.remove(k), "remove")?,
        (Op::Remove(k), Some(p)) => {
            let got = p.remove(k);
            held.extend(got.map(|r| (r, r.clone())));
            model.check_remove(*k, got.cloned(), "pinned remove")?;
            // The removed value stays readable through the view; the cache no longer has it.
            prop_assert!(!p.contains_key(k) && !cache.contains_key(k));
        }
        (Op::Delete(k), _) => {
            let want = model.take(*k).is_some();
            prop_assert_eq!(cache.delete(k), want, "delete {}", k);
        }
        (Op::RemoveIfVersion(k, pick), None) => {
            let expected = model.resolve(*k, pick);
            let got = cache.remove_if_version(k, expected);
            model.check_remove_if(*k, expected, got, "remove_if_version")?;
        }
        (Op::RemoveIfVersion(k, pick), Some(p)) => {
            let expected = model.resolve(*k, pick);
            let got = p.remove_if_version(k, expected);
            model.check_remove_if(*k, expected, got, "pinned remove_if_version")?;
        }
        (Op::Touch(k, ttl), _) => {
            let got = cache.touch(k, ttl.map(Duration::from_millis));
            prop_assert_eq!(got, model.touch(*k, *ttl), "touch {}", k);
        }
        (Op::GetAndTouch(k, ttl), _) => {
            let got = cache.get_and_touch(k, ttl.map(Duration::from_millis));
            let want = model.read(*k);
            if want.is_some() {
                model.touch(*k, *ttl);
            }
            prop_assert_eq!(got, want, "get_and_touch {}", k);
        }
        (Op::TimeToLive(k), _) => {
            prop_assert_eq!(cache.time_to_live(k), model.ttl(*k), "time_to_live {}", k);
        }
        (Op::GetOrInsertWith(k, n), _) => {
            let calls = Cell::new(0);
            let got = cache.get_or_insert_with(*k, || {
                calls.set(calls.get() + 1);
                V::make(*n)
            });
            check_load(subject, model, *k, *n, false, calls.get(), Ok(got))?;
        }
        (Op::TryGetOrInsertWith(k, n, fail), _) => {
            let calls = Cell::new(0);
            let got = cache.try_get_or_insert_with(*k, || {
                calls.set(calls.get() + 1);
                if *fail {
                    Err(format!("loader of {k} failed"))
                } else {
                    Ok(V::make(*n))
                }
            });
            let got = got.map_err(|e| (*e).clone());
            check_load(subject, model, *k, *n, *fail, calls.get(), got)?;
        }
        (Op::Advance(ms), _) => {
            subject.clock.advance(Duration::from_millis(*ms));
            model.now += ms;
        }
        (Op::Len, _) => prop_assert_eq!(cache.len(), model.map.len(), "len"),
        (Op::IsEmpty, _) => prop_assert_eq!(cache.is_empty(), model.map.is_empty()),
        (Op::WeightedSize, _) => {
            prop_assert_eq!(cache.weighted_size(), (model.map.len() as u64, None));
        }
        (Op::Stats, _) => prop_assert_eq!(Counts::from(cache.stats()), model.stats),
        (Op::Clear, _) => {
            cache.clear();
            model.clear();
        }
        (Op::Iter, None) => {
            let mut all: Vec<(u8, V)> = cache.iter().collect();
            all.sort();
            prop_assert_eq!(all, model.sorted(), "iter");
        }
        (Op::Iter, Some(p)) => {
            let mut all: Vec<(u8, V)> = Vec::new();
            for (k, v) in p.iter() {
                held.push((v, v.clone()));
                all.push((*k, v.clone()));
            }
            all.sort();
            prop_assert_eq!(all, model.sorted(), "pinned iter");
        }
    }
    // The listener heard exactly the departures the model predicts.
    let mut heard = std::mem::take(&mut *subject.heard.lock().unwrap());
    let mut want = std::mem::take(&mut model.departed);
    sort_departures(&mut heard);
    sort_departures(&mut want);
    prop_assert_eq!(heard, want, "eviction listener after {:?}", op);
    Ok(())
}

/// Checks a `get_or_insert_with` / `try_get_or_insert_with` (`fail`: its loader fails).
fn check_load<V: Val>(
    subject: &Subject<V>,
    model: &mut Model<V>,
    key: u8,
    n: u32,
    fail: bool,
    calls: usize,
    got: Result<V, String>,
) -> TestCaseResult {
    if let Some(slot) = model.live(key) {
        let value = slot.value.clone();
        model.stats.hits += 1;
        prop_assert_eq!(calls, 0, "loader of present key {} called", key);
        prop_assert_eq!(got, Ok(value), "load of present key {}", key);
        return Ok(());
    }
    model.stats.misses += MISSES_PER_LOAD;
    prop_assert_eq!(calls, 1, "loader calls for key {}", key);
    if fail {
        prop_assert_eq!(got, Err(format!("loader of {key} failed")), "failed load");
        return Ok(());
    }
    prop_assert_eq!(got, Ok(V::make(n)), "load of key {}", key);
    // The loaded value was inserted: learn its version (a counted read).
    let Some((value, version)) = subject.cache.gets(&key) else {
        return Err(TestCaseError::fail(format!("loaded key {key} absent")));
    };
    model.stats.hits += 1;
    prop_assert_eq!(&value, &V::make(n));
    model.store_over(key, value, None, version, "get_or_insert_with")
}

/// Runs one case; returns the model (so the caller can count its values).
fn run_case<V: Val>(
    subject: &Subject<V>,
    default_ttl: Option<u64>,
    steps: &[Step],
) -> Result<Model<V>, TestCaseError> {
    let cache = &subject.cache;
    let mut model = Model::new(default_ttl);
    for step in steps {
        match step {
            Step::Plain(op) => {
                apply(subject, None, &mut Vec::new(), &mut model, op)?;
                model.check_all(cache, None)?;
            }
            Step::Pinned(ops) => {
                let pinned = cache.pin();
                let mut held = Vec::new();
                for (through_view, op) in ops {
                    let view = through_view.then_some(&pinned);
                    apply(subject, view, &mut held, &mut model, op)?;
                    model.check_all(cache, Some(&pinned))?;
                }
                // Every reference read through the view still shows what it showed, whatever
                // happened to its entry since.
                for (reference, was) in &held {
                    prop_assert_eq!(*reference, was, "a pinned reference changed");
                }
            }
        }
    }
    let mut all: Vec<(u8, V)> = cache.iter().collect();
    all.sort();
    prop_assert_eq!(all, model.sorted(), "final iter");
    Ok(model)
}

fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        // Shrinking replays cases; keep it bounded so a failure reports quickly.
        max_shrink_iters: 4096,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::XorShift, &SEED))
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.inserts += o.inserts;
        self.updates += o.updates;
        self.removals += o.removals;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
        self.cas_hits += o.cas_hits;
        self.cas_misses += o.cas_misses;
        self.cas_badval += o.cas_badval;
    }
}

/// Runs the model on `cases` generated cases and prints what they exercised (summed counters).
fn run_model<V: Val>(setup: Setup, cases: u32, max_steps: usize) {
    let total = Mutex::new((0usize, Counts::default()));
    runner(cases)
        .run(&steps(max_steps), |steps| {
            let model = run_case(&setup.build::<V>(), setup.default_ttl, &steps)?;
            let mut total = total.lock().unwrap();
            total.0 += steps.len();
            total.1 += model.stats;
            Ok(())
        })
        .unwrap();
    let (steps, counts) = total.into_inner().unwrap();
    eprintln!(
        "{cases} cases, {steps} steps; summed stats (full-state checks included): {counts:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn model_u32() {
    run_model::<u32>(TINY, 256, 200);
}

/// String values, and a default time to live (which `insert`, `add`, `replace`, `update` and
/// `compare_and_swap` apply).
#[test]
fn model_string_default_ttl() {
    let setup = Setup {
        default_ttl: Some(30),
        ..TINY
    };
    run_model::<String>(setup, 256, 200);
}

/// `Tracked` values with a collector of the cache's own: once the cache is dropped, the only live
/// values are the model's copies, and each value was dropped once.
#[test]
fn model_tracked_drops() {
    let setup = Setup {
        own_collector: true,
        ..TINY
    };
    runner(128)
        .run(&steps(200), |steps| {
            LIVE.with(|c| c.set(0));
            CREATED.with(|c| c.set(0));
            DROPS.with(|c| c.set(0));
            let subject = setup.build::<Tracked>();
            let model = run_case(&subject, setup.default_ttl, &steps)?;
            drop(subject);
            let live = LIVE.with(Cell::get);
            prop_assert_eq!(live, model.map.len() as isize, "live values after drop");
            drop(model);
            let (created, drops) = (CREATED.with(Cell::get), DROPS.with(Cell::get));
            prop_assert_eq!(drops, created, "every value dropped exactly once");
            Ok(())
        })
        .unwrap();
}

/// The same model with a cache whose table starts large (no resizes at all).
#[test]
fn model_presized() {
    let setup = Setup {
        initial_capacity: 1_000,
        ..TINY
    };
    run_model::<u32>(setup, 64, 200);
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn model_u32_heavy() {
    run_model::<u32>(TINY, 8192, 600);
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn model_string_default_ttl_heavy() {
    let setup = Setup {
        default_ttl: Some(30),
        ..TINY
    };
    run_model::<String>(setup, 4096, 600);
}

/// The runner is deterministic: two runners with the seed generate the same cases.
#[test]
fn runner_is_deterministic() {
    use proptest::strategy::ValueTree;
    let strategy = steps(50);
    let (mut a, mut b) = (runner(1), runner(1));
    for _ in 0..8 {
        let x = strategy.new_tree(&mut a).unwrap().current();
        let y = strategy.new_tree(&mut b).unwrap().current();
        assert_eq!(format!("{x:?}"), format!("{y:?}"));
    }
}
