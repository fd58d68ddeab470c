//! Deterministic model test of every public operation (single thread, no timing).
//!
//! A proptest strategy generates sequences of operations on a small key space (`u8` keys
//! `0..16`) so that collisions, removes, re-inserts, tombstone rehashes and table growth all
//! happen (the cache starts from the smallest table: `initial_capacity(2)`). Each operation runs on
//! the cache and on a model, `HashMap<K, (V, Version)>`, and the test checks after every step
//! that:
//!
//! * the result of the operation is the one the model predicts, including the variant of a
//!   `CasError` / `Occupied`, the current version it carries, and the value it hands back;
//! * every version a write returns is fresh: never 0 and never returned before in the whole run
//!   (all cases of all tests of this binary share one record);
//! * the whole cache agrees with the model (`gets` of every key, `contains_key`, `len`).
//!
//! Batches of steps run through one [`Pinned`] view, and the references its reads return are
//! checked at the end of the batch: they must still show the values as they were read, even after
//! the entries were replaced, removed or cleared meanwhile.
//!
//! The runner uses a fixed XorShift seed, so every run explores the same cases (a failure
//! reproduces exactly). The heavier variants are `#[ignore]`d:
//! `cargo test --release --test model -- --include-ignored`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Mutex;

use cascache::{Cache, CasError, Occupied, Pinned, Version};
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
    /// The key's current version (falls back to a stale one when the key is absent).
    Current,
    /// A version the key held earlier (before a replace, or before a remove / clear).
    Stale(Index),
    /// A version some other key holds or held.
    OtherKey(u8, Index),
    /// A version never issued.
    Bogus,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u32),
    Get(u8),
    Gets(u8),
    GetWith(u8),
    ContainsKey(u8),
    Add(u8, u32),
    Replace(u8, u32),
    Cas(u8, Pick, u32),
    /// `true`: the closure declines.
    Update(u8, bool),
    Remove(u8),
    Delete(u8),
    RemoveIfVersion(u8, Pick),
    Len,
    IsEmpty,
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
    prop_oneof![
        6 => (key(), val()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::Gets),
        1 => key().prop_map(Op::GetWith),
        1 => key().prop_map(Op::ContainsKey),
        3 => (key(), val()).prop_map(|(k, v)| Op::Add(k, v)),
        2 => (key(), val()).prop_map(|(k, v)| Op::Replace(k, v)),
        6 => (key(), pick(), val()).prop_map(|(k, p, v)| Op::Cas(k, p, v)),
        3 => (key(), any::<bool>()).prop_map(|(k, d)| Op::Update(k, d)),
        3 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::Delete),
        3 => (key(), pick()).prop_map(|(k, p)| Op::RemoveIfVersion(k, p)),
        1 => Just(Op::Len),
        1 => Just(Op::IsEmpty),
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

struct Model<V> {
    map: HashMap<u8, (V, Version)>,
    /// Every version each key has held, current included.
    history: HashMap<u8, Vec<Version>>,
}

impl<V: Val> Model<V> {
    fn new() -> Self {
        Model {
            map: HashMap::new(),
            history: HashMap::new(),
        }
    }

    fn current(&self, key: u8) -> Option<Version> {
        self.map.get(&key).map(|(_, v)| *v)
    }

    /// The versions `key` held before its current one (or before it was removed).
    fn stale_versions(&self, key: u8) -> Vec<Version> {
        let current = self.current(key);
        let history = self.history.get(&key).into_iter().flatten().copied();
        history.filter(|v| Some(*v) != current).collect()
    }

    fn stale(&self, key: u8, index: &Index) -> Option<Version> {
        let old = self.stale_versions(key);
        (!old.is_empty()).then(|| old[index.index(old.len())])
    }

    /// The version a conditional write on `key` passes for `pick`.
    fn resolve(&self, key: u8, pick: &Pick) -> Version {
        let bogus = Version::from_raw(u64::MAX).unwrap();
        match pick {
            Pick::Current => self
                .current(key)
                .or_else(|| self.stale_versions(key).last().copied())
                .unwrap_or(bogus),
            Pick::Stale(index) => self.stale(key, index).unwrap_or(bogus),
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

    /// Records a successful write of `value` under `key` at `version`.
    fn stored(&mut self, key: u8, value: V, version: Version, what: &str) -> TestCaseResult {
        record_fresh(version, what)?;
        self.map.insert(key, (value, version));
        self.history.entry(key).or_default().push(version);
        Ok(())
    }

    fn sorted(&self) -> Vec<(u8, V)> {
        let mut all: Vec<_> = self.map.iter().map(|(k, (v, _))| (*k, v.clone())).collect();
        all.sort();
        all
    }

    // ----- expected outcomes, shared by the cache and the pinned view -----

    fn check_read(&self, key: u8, got: Option<(V, Version)>, what: &str) -> TestCaseResult {
        let want = self.map.get(&key).cloned();
        prop_assert_eq!(got, want, "{} of key {}", what, key);
        Ok(())
    }

    fn check_insert(&mut self, key: u8, value: V, got: Version, what: &str) -> TestCaseResult {
        self.stored(key, value, got, what)
    }

    fn check_add(
        &mut self,
        key: u8,
        value: V,
        got: Result<Version, Occupied<V>>,
        what: &str,
    ) -> TestCaseResult {
        match (self.current(key), got) {
            (None, Ok(version)) => self.stored(key, value, version, what)?,
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

    /// `expected`: the version passed (`None` for `replace`).
    fn check_store(
        &mut self,
        key: u8,
        expected: Option<Version>,
        value: V,
        got: Result<Version, CasError<V>>,
        what: &str,
    ) -> TestCaseResult {
        let current = self.current(key);
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
                self.stored(key, value, version, what)?;
            }
            Err(err) => {
                let want = match current {
                    None => CasError::NotFound(value),
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
        match self.map.get(&key).cloned() {
            None => {
                prop_assert!(calls.is_empty(), "{} called f on absent key {}", what, key);
                prop_assert_eq!(got, None, "{} of absent key {}", what, key);
            }
            Some((value, _)) => {
                // No contention: exactly one call, with the current value.
                prop_assert_eq!(
                    &calls,
                    &vec![value.clone()],
                    "{} calls for key {}",
                    what,
                    key
                );
                if decline {
                    prop_assert_eq!(got, None, "{} declined, key {}", what, key);
                } else {
                    let Some(version) = got else {
                        return Err(TestCaseError::fail(format!("{what} of key {key}: None")));
                    };
                    self.stored(key, value.bump(), version, what)?;
                }
            }
        }
        Ok(())
    }

    fn check_remove(&mut self, key: u8, got: Option<V>, what: &str) -> TestCaseResult {
        let want = self.map.remove(&key).map(|(v, _)| v);
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
                self.map.remove(&key);
                Ok(())
            }
            Some(current) => Err(CasError::Mismatch { current, value: () }),
        };
        prop_assert_eq!(got, want, "{} of key {} with {:?}", what, key, expected);
        Ok(())
    }

    /// The whole cache agrees with the model.
    fn check_all<S: std::hash::BuildHasher>(
        &self,
        cache: &Cache<u8, V, S>,
        pinned: Option<&Pinned<'_, u8, V, S>>,
    ) -> TestCaseResult {
        for key in 0..KEYS {
            let want = self.map.get(&key).cloned();
            prop_assert_eq!(cache.gets(&key), want.clone(), "gets of key {}", key);
            prop_assert_eq!(cache.contains_key(&key), want.is_some());
            if let Some(p) = pinned {
                let got = p.gets(&key).map(|(v, ver)| (v.clone(), ver));
                prop_assert_eq!(got, want.clone(), "pinned gets of key {}", key);
                prop_assert_eq!(p.contains_key(&key), want.is_some());
            }
        }
        prop_assert_eq!(cache.len(), self.map.len(), "len");
        prop_assert_eq!(cache.is_empty(), self.map.is_empty(), "is_empty");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Running operations
// ---------------------------------------------------------------------------------------------

/// Runs `op` on the cache (or through `pinned` when it has the operation) and checks the result
/// against the model. References read through the view are pushed to `held` with the value they
/// showed.
fn apply<'p, V: Val>(
    cache: &Cache<u8, V>,
    pinned: Option<&'p Pinned<'_, u8, V>>,
    held: &mut Vec<(&'p V, V)>,
    model: &mut Model<V>,
    op: &Op,
) -> TestCaseResult {
    match (op, pinned) {
        (Op::Insert(k, n), None) => {
            let got = cache.insert(*k, V::make(*n));
            model.check_insert(*k, V::make(*n), got, "insert")?;
        }
        (Op::Insert(k, n), Some(p)) => {
            let got = p.insert(*k, V::make(*n));
            model.check_insert(*k, V::make(*n), got, "pinned insert")?;
        }
        (Op::Get(k), None) => {
            let got = cache.get(k);
            prop_assert_eq!(got, model.map.get(k).map(|(v, _)| v.clone()), "get {}", k);
        }
        (Op::Get(k), Some(p)) => {
            let got = p.get(k);
            prop_assert_eq!(got, model.map.get(k).map(|(v, _)| v), "pinned get {}", k);
            held.extend(got.map(|r| (r, r.clone())));
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
            let want = model.map.get(k).map(|(v, _)| v.clone());
            prop_assert_eq!(calls.get(), usize::from(want.is_some()), "get_with calls");
            prop_assert_eq!(got, want, "get_with {}", k);
        }
        (Op::ContainsKey(k), None) => {
            prop_assert_eq!(cache.contains_key(k), model.map.contains_key(k));
        }
        (Op::ContainsKey(k), Some(p)) => {
            prop_assert_eq!(p.contains_key(k), model.map.contains_key(k));
        }
        (Op::Add(k, n), None) => {
            let got = cache.add(*k, V::make(*n));
            model.check_add(*k, V::make(*n), got, "add")?;
        }
        (Op::Add(k, n), Some(p)) => {
            let got = p.add(*k, V::make(*n));
            model.check_add(*k, V::make(*n), got, "pinned add")?;
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
            let want = model.map.remove(k).is_some();
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
        (Op::Len, _) => prop_assert_eq!(cache.len(), model.map.len(), "len"),
        (Op::IsEmpty, _) => prop_assert_eq!(cache.is_empty(), model.map.is_empty()),
        (Op::Clear, _) => {
            cache.clear();
            model.map.clear();
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
    Ok(())
}

/// Runs one case on `cache`; returns the model (so the caller can count its values).
fn run_case<V: Val>(cache: &Cache<u8, V>, steps: &[Step]) -> Result<Model<V>, TestCaseError> {
    let mut model = Model::new();
    for step in steps {
        match step {
            Step::Plain(op) => {
                apply(cache, None, &mut Vec::new(), &mut model, op)?;
                model.check_all(cache, None)?;
            }
            Step::Pinned(ops) => {
                let pinned = cache.pin();
                let mut held = Vec::new();
                for (through_view, op) in ops {
                    let view = through_view.then_some(&pinned);
                    apply(cache, view, &mut held, &mut model, op)?;
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
    // A last whole-cache comparison through both iterators.
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

fn tiny<V: Val>() -> Cache<u8, V> {
    Cache::builder().initial_capacity(2).build()
}

fn run_model<V: Val>(cases: u32, max_steps: usize) {
    runner(cases)
        .run(&steps(max_steps), |steps| {
            run_case(&tiny::<V>(), &steps).map(drop)
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn model_u32() {
    run_model::<u32>(256, 200);
}

#[test]
fn model_string() {
    run_model::<String>(256, 200);
}

/// `Tracked` values with a collector of the cache's own: once the cache is dropped, the only live
/// values are the model's copies, and each value was dropped once.
#[test]
fn model_tracked_drops() {
    runner(128)
        .run(&steps(200), |steps| {
            LIVE.with(|c| c.set(0));
            CREATED.with(|c| c.set(0));
            DROPS.with(|c| c.set(0));
            let cache: Cache<u8, Tracked> = Cache::builder()
                .initial_capacity(2)
                .collector(Collector::new())
                .build();
            let model = run_case(&cache, &steps)?;
            drop(cache);
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
    runner(64)
        .run(&steps(200), |steps| {
            let cache: Cache<u8, u32> = Cache::builder().initial_capacity(1_000).build();
            run_case(&cache, &steps).map(drop)
        })
        .unwrap();
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn model_u32_heavy() {
    run_model::<u32>(8192, 600);
}

#[test]
#[ignore = "heavy: run with --release --include-ignored"]
fn model_string_heavy() {
    run_model::<String>(4096, 600);
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
