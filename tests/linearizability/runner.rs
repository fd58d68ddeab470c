//! Planning histories and running them on real threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use cascache::{Cache, CasError, MockClock, RemovalCause, Version};

use crate::checker::{check_history, Event, History, Stats, NO_KEY};
use crate::model::{Deadline, Op, Ret, Spec, State, Val, Window};

/// SplitMix64: small, fast, and deterministic for a seed.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// What kind of histories to generate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mix {
    /// Every operation without time to live, 2–3 threads, 1–3 keys, on a cache that evicts
    /// nothing (bounded far above the key space, or unbounded from the smallest table so that
    /// writes race resizes).
    All,
    /// One key, 2 threads: in even rounds a compare-and-swap (or a delete) from the latest
    /// version races a removal, in odd rounds a value is put back and read.
    CasVsRemove,
    /// Times to live on a `MockClock` that the threads advance between (and during) operations.
    Ttl,
    /// A cache bounded below the key space: writes of new keys evict.
    Evict,
    /// Two keys in a cache for one, 2 threads: in each round one thread inserts the key that is
    /// (most likely) absent, which evicts the other, while the other thread writes that other
    /// key (mostly a CAS from the latest version it saw) or reads it. No removals: keys leave
    /// only by eviction.
    EvictRace,
}

/// A fault the harness injects on purpose: the negative controls of the models.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    None,
    /// An advance moves the clock only when its thread starts its next operation, after being
    /// recorded as done: a cache that reads a stale clock.
    LateAdvance,
    /// `touch` and `get_and_touch` leave the deadline alone (run as `contains_key` and `gets`).
    TouchIgnored,
    /// The eviction listener's reports are dropped: evictions nobody recorded.
    HiddenEviction,
    /// `compare_and_swap` runs as `replace`: it stores over whatever version the key holds.
    CasIgnoresVersion,
}

/// An operation before it runs: compare-and-swaps pick their expected version at run time.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Ready(Op),
    /// A CAS (`remove: false`) or `remove_if_version` with a version chosen when it runs.
    Conditional {
        remove: bool,
        value: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Step {
    key: u64,
    plan: Plan,
    /// Through a pinned view.
    pinned: bool,
}

/// One thread's part of a history.
struct Script {
    seed: u64,
    steps: Vec<Step>,
}

/// The cache a history runs on.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// `max_capacity`, or unbounded from the smallest table.
    capacity: Option<u64>,
    shards: Option<usize>,
    /// A `MockClock` (else the real clock, and no time to live anywhere).
    clocked: bool,
    /// The builder's `time_to_live`, in milliseconds.
    default_ttl: Option<u64>,
}

/// A key's initial value before it is inserted, with its time to live (`None`: the cache's
/// default); `None` if the key starts absent.
type Initial = Option<(u64, Option<u64>)>;

/// A history before it runs.
struct Planned {
    setup: Setup,
    init: Vec<(u64, Initial)>,
    scripts: Vec<Script>,
}

/// How many threads the next batch of histories runs on: mostly 2, the most overlap per history
/// on a 2-core machine.
fn plan_threads(rng: &mut Rng, mix: Mix) -> usize {
    match mix {
        Mix::CasVsRemove | Mix::EvictRace => 2,
        Mix::All | Mix::Ttl | Mix::Evict => rng.pick(&[2, 2, 2, 3]),
    }
}

fn plan_history(rng: &mut Rng, mix: Mix, threads: usize) -> Planned {
    let keys = match mix {
        Mix::All => rng.pick(&[1, 1, 2, 2, 3]),
        Mix::CasVsRemove => 1,
        Mix::Ttl => rng.pick(&[1, 1, 2]),
        Mix::Evict => rng.pick(&[2, 3, 4]),
        Mix::EvictRace => 2,
    };
    let setup = match mix {
        Mix::All | Mix::CasVsRemove => Setup {
            capacity: rng.chance(1, 2).then_some(1024),
            shards: None,
            clocked: false,
            default_ttl: None,
        },
        Mix::Ttl => Setup {
            capacity: rng.chance(1, 2).then_some(1024),
            shards: None,
            clocked: true,
            default_ttl: rng.chance(1, 3).then(|| rng.range(2, 6)),
        },
        Mix::Evict | Mix::EvictRace => Setup {
            capacity: Some(rng.range(1, keys - 1)),
            shards: rng.chance(3, 4).then_some(1),
            clocked: false,
            default_ttl: None,
        },
    };
    // Initial states are filled in (with real versions) when the history runs.
    let init = (0..keys)
        .map(|k| {
            let present = match mix {
                Mix::CasVsRemove | Mix::Evict | Mix::EvictRace => true,
                Mix::All | Mix::Ttl => rng.chance(2, 3),
            };
            let ttl = (mix == Mix::Ttl && rng.chance(1, 2)).then(|| rng.range(1, 6));
            (k, present.then_some((2 * k, ttl)))
        })
        .collect();
    // Each round has a key most threads use, so that most calls race another on the same key.
    let hot: Vec<u64> = (0..16).map(|_| rng.below(keys)).collect();
    let mut scripts = Vec::with_capacity(threads);
    for t in 0..threads {
        // Unique values per history, of both parities (for `update`'s `decline_even`).
        let mut fresh = {
            let mut n = 0u64;
            move |rng: &mut Rng| {
                n += 1;
                2 * (1000 * (t as u64 + 1) + n) + rng.below(2)
            }
        };
        let len = match mix {
            Mix::All => rng.range(2, 8),
            Mix::CasVsRemove => 2 * rng.range(2, 8),
            Mix::EvictRace => rng.range(8, 16),
            Mix::Ttl | Mix::Evict => rng.range(4, 8),
        } as usize;
        let mut steps = Vec::with_capacity(len);
        for (i, &hot_key) in hot.iter().enumerate().take(len) {
            let key = if mix == Mix::EvictRace {
                (i as u64 + t as u64) % 2
            } else if rng.chance(3, 4) {
                hot_key
            } else {
                rng.below(keys)
            };
            let cas = |rng: &mut Rng, fresh: &mut dyn FnMut(&mut Rng) -> u64| Plan::Conditional {
                remove: false,
                value: fresh(rng),
            };
            let rif = Plan::Conditional {
                remove: true,
                value: 0,
            };
            let ttl = |rng: &mut Rng| rng.range(1, 5);
            let plan = match mix {
                Mix::All => match rng.below(19) {
                    0 | 1 => Plan::Ready(Op::Insert(fresh(rng))),
                    18 => Plan::Ready(Op::GetOrInsert(fresh(rng))),
                    2 => Plan::Ready(Op::Get),
                    3 | 4 => Plan::Ready(Op::Gets),
                    5 => Plan::Ready(Op::Add(fresh(rng))),
                    6 => Plan::Ready(Op::Replace(fresh(rng))),
                    7..=9 => cas(rng, &mut fresh),
                    10 => Plan::Ready(Op::Update {
                        delta: 2 * (1 + rng.below(500)) + rng.below(2),
                        decline_even: rng.chance(1, 2),
                    }),
                    11 => Plan::Ready(Op::Remove),
                    12 => Plan::Ready(Op::Delete),
                    13 | 14 => rif,
                    15 => Plan::Ready(Op::ContainsKey),
                    16 => Plan::Ready(Op::Touch(None)),
                    _ => Plan::Ready(Op::GetAndTouch(None)),
                },
                // Even rounds race a write (mostly a CAS from the latest version thread 0 saw)
                // against a removal; odd rounds put a value back and read it.
                Mix::CasVsRemove => match (t, i % 2) {
                    (0, 0) if rng.chance(2, 3) => cas(rng, &mut fresh),
                    (0, 0) => Plan::Ready(Op::Delete),
                    (0, _) => Plan::Ready(Op::Gets),
                    (_, 0) => match rng.below(3) {
                        0 => Plan::Ready(Op::Remove),
                        1 => Plan::Ready(Op::Delete),
                        _ => rif,
                    },
                    _ => Plan::Ready(Op::Add(fresh(rng))),
                },
                Mix::Ttl => match rng.below(21) {
                    0 | 1 => Plan::Ready(Op::InsertTtl(fresh(rng), ttl(rng))),
                    2 => Plan::Ready(Op::Insert(fresh(rng))),
                    3 => Plan::Ready(Op::AddTtl(fresh(rng), ttl(rng))),
                    4 => Plan::Ready(Op::Add(fresh(rng))),
                    5 => Plan::Ready(Op::Get),
                    6 | 7 => Plan::Ready(Op::Gets),
                    8 | 9 => cas(rng, &mut fresh),
                    10 => Plan::Ready(Op::Replace(fresh(rng))),
                    11 => Plan::Ready(Op::Update {
                        delta: 2 * (1 + rng.below(500)) + rng.below(2),
                        decline_even: rng.chance(1, 2),
                    }),
                    12 => Plan::Ready(Op::Touch(Some(ttl(rng)))),
                    13 => Plan::Ready(Op::Touch(None)),
                    14 => Plan::Ready(Op::GetAndTouch(rng.chance(2, 3).then(|| ttl(rng)))),
                    15 => Plan::Ready(Op::ContainsKey),
                    16 => match rng.below(3) {
                        0 => Plan::Ready(Op::Remove),
                        1 => Plan::Ready(Op::Delete),
                        _ => rif,
                    },
                    _ => Plan::Ready(Op::Advance(rng.range(1, 3))),
                },
                Mix::EvictRace if t == 0 => Plan::Ready(Op::Insert(fresh(rng))),
                Mix::EvictRace => match rng.below(8) {
                    0..=3 => cas(rng, &mut fresh),
                    4 => Plan::Ready(Op::Replace(fresh(rng))),
                    5 => Plan::Ready(Op::Update {
                        delta: 2,
                        decline_even: false,
                    }),
                    _ => Plan::Ready(Op::Gets),
                },
                Mix::Evict => match rng.below(18) {
                    0..=3 => Plan::Ready(Op::Insert(fresh(rng))),
                    17 => Plan::Ready(Op::GetOrInsert(fresh(rng))),
                    4 => Plan::Ready(Op::Add(fresh(rng))),
                    5 => Plan::Ready(Op::Get),
                    6 | 7 => Plan::Ready(Op::Gets),
                    8 | 9 => cas(rng, &mut fresh),
                    10 => Plan::Ready(Op::Replace(fresh(rng))),
                    11 => Plan::Ready(Op::Update {
                        delta: 2 * (1 + rng.below(500)) + rng.below(2),
                        decline_even: rng.chance(1, 2),
                    }),
                    12 => Plan::Ready(if rng.chance(1, 2) {
                        Op::Remove
                    } else {
                        Op::Delete
                    }),
                    13 => rif,
                    14 => Plan::Ready(Op::ContainsKey),
                    15 => Plan::Ready(Op::Touch(None)),
                    _ => Plan::Ready(Op::GetAndTouch(None)),
                },
            };
            let key = if matches!(plan, Plan::Ready(Op::Advance(_))) {
                NO_KEY
            } else {
                key
            };
            steps.push(Step {
                key,
                plan,
                pinned: rng.chance(1, 4),
            });
        }
        scripts.push(Script {
            seed: rng.next(),
            steps,
        });
    }
    Planned {
        setup,
        init,
        scripts,
    }
}

/// Runs one operation (through a pinned view if `pinned`), returning what it returned.
fn execute(
    cache: &Cache<u64, u64>,
    clock: Option<&MockClock>,
    pinned: bool,
    key: u64,
    op: Op,
    fault: Fault,
) -> Ret {
    fn cas_ret(r: Result<Version, CasError<u64>>) -> Ret {
        match r {
            Ok(v) => Ret::Stored(v.get()),
            Err(CasError::NotFound(back)) => Ret::NotFound(Some(back)),
            Err(CasError::Mismatch { current, value }) => Ret::Mismatch {
                current: current.get(),
                value: Some(value),
            },
        }
    }
    fn rif_ret(r: Result<(), CasError<()>>) -> Ret {
        match r {
            Ok(()) => Ret::Removed,
            Err(CasError::NotFound(())) => Ret::NotFound(None),
            Err(CasError::Mismatch { current, .. }) => Ret::Mismatch {
                current: current.get(),
                value: None,
            },
        }
    }
    let version = |raw: u64| Version::from_raw(raw).expect("versions are never 0");
    let ms = Duration::from_millis;
    let add_ret = |r: Result<Version, cascache::Occupied<u64>>| match r {
        Ok(v) => Ret::Stored(v.get()),
        Err(occupied) => Ret::Occupied {
            current: occupied.current.get(),
            value: occupied.value,
        },
    };
    let updater = |delta: u64, decline_even: bool| {
        move |x: &u64| (!(decline_even && x % 2 == 0)).then_some(x + delta)
    };
    let update_ret = |r: Option<Version>| r.map_or(Ret::Declined, |v| Ret::Stored(v.get()));
    match (op, fault) {
        (Op::Advance(by), _) => {
            clock.expect("advances run on a MockClock").advance(ms(by));
            return Ret::Done;
        }
        (Op::Cas { value, .. }, Fault::CasIgnoresVersion) => {
            return cas_ret(cache.replace(&key, value))
        }
        (Op::Touch(_), Fault::TouchIgnored) => return Ret::Bool(cache.contains_key(&key)),
        (Op::GetAndTouch(_), Fault::TouchIgnored) => {
            return Ret::Versioned(cache.gets(&key).map(|(x, v)| (x, v.get())))
        }
        _ => {}
    }
    if pinned {
        let p = cache.pin();
        match op {
            Op::Insert(x) => Ret::Stored(p.insert(key, x).get()),
            Op::Get => Ret::Value(p.get(&key).copied()),
            Op::Gets => Ret::Versioned(p.gets(&key).map(|(x, v)| (*x, v.get()))),
            Op::Add(x) => add_ret(p.add(key, x)),
            Op::Replace(x) => cas_ret(p.replace(&key, x)),
            Op::Cas { expected, value } => {
                cas_ret(p.compare_and_swap(&key, version(expected), value))
            }
            Op::Update {
                delta,
                decline_even,
            } => update_ret(p.update(&key, updater(delta, decline_even))),
            Op::Remove => Ret::Value(p.remove(&key).copied()),
            Op::Delete => Ret::Bool(p.remove(&key).is_some()),
            Op::RemoveIfVersion { expected } => {
                rif_ret(p.remove_if_version(&key, version(expected)))
            }
            Op::ContainsKey => Ret::Bool(p.contains_key(&key)),
            // Not on the pinned view: through the cache.
            _ => execute(cache, clock, false, key, op, fault),
        }
    } else {
        match op {
            Op::Insert(x) => Ret::Stored(cache.insert(key, x).get()),
            Op::InsertTtl(x, ttl) => Ret::Stored(cache.insert_with_ttl(key, x, ms(ttl)).get()),
            Op::Get => Ret::Value(cache.get(&key)),
            Op::GetOrInsert(x) => Ret::Value(Some(cache.get_or_insert_with(key, || x))),
            Op::Gets => Ret::Versioned(cache.gets(&key).map(|(x, v)| (x, v.get()))),
            Op::Add(x) => add_ret(cache.add(key, x)),
            Op::AddTtl(x, ttl) => add_ret(cache.add_with_ttl(key, x, ms(ttl))),
            Op::Replace(x) => cas_ret(cache.replace(&key, x)),
            Op::Cas { expected, value } => {
                cas_ret(cache.compare_and_swap(&key, version(expected), value))
            }
            Op::Update {
                delta,
                decline_even,
            } => update_ret(cache.update(&key, updater(delta, decline_even))),
            Op::Remove => Ret::Value(cache.remove(&key)),
            Op::Delete => Ret::Bool(cache.delete(&key)),
            Op::RemoveIfVersion { expected } => {
                rif_ret(cache.remove_if_version(&key, version(expected)))
            }
            Op::ContainsKey => Ret::Bool(cache.contains_key(&key)),
            Op::Touch(ttl) => Ret::Bool(cache.touch(&key, ttl.map(ms))),
            Op::GetAndTouch(ttl) => Ret::Versioned(
                cache
                    .get_and_touch(&key, ttl.map(ms))
                    .map(|(x, v)| (x, v.get())),
            ),
            Op::Advance(_) | Op::Departed { .. } => unreachable!("not a call on a key"),
        }
    }
}

/// Versions an operation's result shows for its key (what a client could pass to a later CAS).
fn seen_version(ret: Ret) -> Option<u64> {
    match ret {
        Ret::Stored(v) | Ret::Occupied { current: v, .. } | Ret::Mismatch { current: v, .. } => {
            Some(v)
        }
        Ret::Versioned(Some((_, v))) => Some(v),
        _ => None,
    }
}

// ----- the eviction listener -----

/// A departure the listener heard of: key, value, and whether it was an expiry.
type Departure = (u64, u64, bool);

thread_local! {
    /// What the eviction listener heard on this thread since it was last drained. The listener
    /// runs on the thread whose call made the entry leave, inside that call.
    static DEPARTED: RefCell<Vec<Departure>> = const { RefCell::new(Vec::new()) };
}

fn listen(key: &u64, value: &u64, cause: RemovalCause) {
    // Replacements and removals are the calls' own effects: only the cache's own decisions are
    // events of their own.
    if matches!(cause, RemovalCause::Evicted | RemovalCause::Expired) {
        DEPARTED.with(|d| {
            d.borrow_mut()
                .push((*key, *value, cause == RemovalCause::Expired))
        });
    }
}

fn take_departed() -> Vec<Departure> {
    DEPARTED.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

fn build_cache(setup: &Setup, clock: Option<&MockClock>) -> Cache<u64, u64> {
    let mut builder = Cache::builder().eviction_listener(listen);
    builder = match setup.capacity {
        Some(capacity) => builder.max_capacity(capacity),
        None => builder.initial_capacity(0),
    };
    if let Some(shards) = setup.shards {
        builder = builder.shards(shards);
    }
    if let Some(clock) = clock {
        builder = builder.clock(clock.clone());
    }
    if let Some(ttl) = setup.default_ttl {
        builder = builder.time_to_live(Duration::from_millis(ttl));
    }
    builder.build()
}

// ----- threads -----

/// Whether worker threads are pinned to distinct cores (`LIN_PIN=0` turns it off, to see the
/// overlap the scheduler leaves on its own).
fn pinning() -> bool {
    std::env::var("LIN_PIN").map_or(true, |v| v != "0")
}

/// Spins `n` times (desynchronises threads by a few nanoseconds).
fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// The start line of each round: gathers the threads (spinning, then sleeping), then aligns
/// them (spinning), so that their operations start within a cache-line transfer of each other.
///
/// With the threads pinned to distinct cores (see [`affinity`]), a waiter whose partner has lost
/// its core to other work sleeps rather than spins away its own time slice, and the last thread
/// to arrive wakes it; a thread waking from a short sleep is soon run again, and the alignment
/// spin then starts both together. (Measured on the loaded 2-core machine: sleeping kept the
/// same overlap as yielding in 2.5 times less wall time.)
struct Gate {
    gathered: AtomicUsize,
    aligned: AtomicUsize,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// Pauses (about 27 ns each here) a thread spins at the gate before it sleeps (gathering) or
/// yields (aligning): long enough for a running partner to arrive.
const PATIENCE: u32 = 1024;

impl Gate {
    fn new() -> Gate {
        Gate {
            gathered: AtomicUsize::new(0),
            aligned: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Waits until `target` arrivals in all (each thread arrives once per round).
    fn pass(&self, target: usize) {
        self.gather(target);
        self.align(target);
    }

    fn gather(&self, target: usize) {
        if self.gathered.fetch_add(1, Ordering::SeqCst) + 1 == target {
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _lock = self.lock.lock().unwrap();
                self.wake.notify_all();
            }
            return;
        }
        for _ in 0..PATIENCE {
            if self.gathered.load(Ordering::Acquire) >= target {
                return;
            }
            std::hint::spin_loop();
        }
        let mut lock = self.lock.lock().unwrap();
        // The last arrival either sees this sleeper (and notifies under the lock, so after this
        // thread waits) or arrived before the check below.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.gathered.load(Ordering::SeqCst) < target {
            lock = self.wake.wait(lock).unwrap();
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    fn align(&self, target: usize) {
        if self.aligned.fetch_add(1, Ordering::AcqRel) + 1 == target {
            return;
        }
        let mut spins = 0u32;
        while self.aligned.load(Ordering::Acquire) < target {
            if spins < PATIENCE {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now(); // more threads than free cores: let the others arrive
            }
        }
    }
}

/// A history ready to run: its plan, its fresh cache holding the initial values, and its stamp
/// clock.
struct Prepared {
    planned: Planned,
    cache: Cache<u64, u64>,
    clock: Option<MockClock>,
    /// The initial states, with real versions.
    init: Vec<(u64, State)>,
    /// The global clock for this history's invoke / response stamps.
    ticks: AtomicU64,
}

impl Prepared {
    /// Builds the cache and inserts the initial values on this thread (they may evict each
    /// other: the listener says which).
    fn new(planned: Planned) -> Prepared {
        let setup = planned.setup;
        let clock = setup.clocked.then(MockClock::new);
        let cache = build_cache(&setup, clock.as_ref());
        take_departed();
        let mut init: Vec<(u64, State)> = planned
            .init
            .iter()
            .map(|&(k, s)| {
                let s = s.map(|(x, ttl)| {
                    let version = match ttl {
                        Some(ttl) => cache.insert_with_ttl(k, x, Duration::from_millis(ttl)),
                        None => cache.insert(k, x),
                    };
                    let ttl = ttl.or(setup.default_ttl).filter(|_| setup.clocked);
                    Val::new(x, version.get(), Deadline::after(Window::at(CLOCK0), ttl))
                });
                (k, s)
            })
            .collect();
        for (k, x, _) in take_departed() {
            let state = &mut init.iter_mut().find(|(key, _)| *key == k).unwrap().1;
            if state.is_some_and(|e| e.value == x) {
                *state = None;
            }
        }
        Prepared {
            planned,
            cache,
            clock,
            init,
            ticks: AtomicU64::new(0),
        }
    }

    /// The longest script.
    fn rounds(&self) -> usize {
        self.planned
            .scripts
            .iter()
            .map(|s| s.steps.len())
            .max()
            .unwrap_or(0)
    }

    fn into_history(self, events: Vec<Event>) -> History {
        History {
            spec: Spec {
                default_ttl: self.planned.setup.default_ttl,
                free_eviction: false,
            },
            clock0: CLOCK0,
            init: self.init,
            events,
        }
    }
}

/// The cache clock when a history starts (`MockClock::new()`).
const CLOCK0: u64 = 1;

/// Runs thread `thread`'s script of one history; the events it produced. `first_round` counts
/// the rounds of the batch's earlier histories, for the gate.
fn run_script(
    history: &Prepared,
    gate: &Gate,
    first_round: usize,
    thread: usize,
    stale: &[u64],
    fault: Fault,
) -> Vec<Event> {
    let Prepared {
        planned,
        cache,
        clock,
        init,
        ticks,
    } = history;
    let script = &planned.scripts[thread];
    let threads = planned.scripts.len();
    let mut rng = Rng(script.seed);
    // Versions this thread knows per key: the initial ones, then whatever its results show.
    let mut seen: HashMap<u64, Vec<u64>> = init
        .iter()
        .map(|&(k, s)| (k, s.map(|e| e.version).into_iter().collect()))
        .collect();
    let max_delay = rng.pick(&[0, 0, 1, 2, 4]);
    let mut late_advance = None;
    let mut events = Vec::with_capacity(script.steps.len());
    for round in 0..history.rounds() {
        // Every thread's `round`th operation starts together.
        gate.pass(threads * (first_round + round + 1));
        if let Some(by) = late_advance.take() {
            clock.as_ref().unwrap().advance(Duration::from_millis(by));
        }
        let Some(&Step { key, plan, pinned }) = script.steps.get(round) else {
            continue;
        };
        let op = match plan {
            Plan::Ready(op) => op,
            Plan::Conditional { remove, value } => {
                let known = &seen[&key];
                let expected = match (known.last(), rng.below(10)) {
                    (Some(&latest), 0..=6) => latest,
                    (Some(_), 7) => known[rng.below(known.len() as u64) as usize],
                    _ => stale[rng.below(stale.len() as u64) as usize],
                };
                if remove {
                    Op::RemoveIfVersion { expected }
                } else {
                    Op::Cas { expected, value }
                }
            }
        };
        // A few nanoseconds of skew, so that the threads meet at varied points of their calls.
        spin(rng.below(max_delay + 1));
        let invoke = ticks.fetch_add(1, Ordering::SeqCst);
        let ret = match (op, fault) {
            (Op::Advance(by), Fault::LateAdvance) => {
                late_advance = Some(by);
                Ret::Done
            }
            _ => execute(cache, clock.as_ref(), pinned, key, op, fault),
        };
        let response = ticks.fetch_add(1, Ordering::SeqCst);
        if let Some(v) = seen_version(ret) {
            seen.get_mut(&key).unwrap().push(v);
        }
        events.push(Event::new(thread, key, op, ret, invoke, response));
        for (k, value, expired) in take_departed() {
            if fault == Fault::HiddenEviction {
                continue;
            }
            // An expired value replaced by a store on its own key is that store's effect.
            let stores_over = k == key
                && matches!(
                    op,
                    Op::Insert(_) | Op::InsertTtl(..) | Op::Add(_) | Op::AddTtl(..)
                );
            if expired && stores_over {
                continue;
            }
            let op = Op::Departed { value, expired };
            events.push(Event::new(thread, k, op, Ret::Done, invoke, response));
        }
    }
    if let Some(by) = late_advance {
        clock.as_ref().unwrap().advance(Duration::from_millis(by));
    }
    events
}

/// Runs a batch of histories (all on `threads` threads) back to back on one set of threads:
/// spawning threads for every history would let them start out of phase on a loaded machine.
/// Each history's events.
fn run_batch(batch: &[Prepared], threads: usize, stale: &[u64], fault: Fault) -> Vec<Vec<Event>> {
    let gate = Gate::new();
    let per_thread: Vec<Vec<Vec<Event>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let gate = &gate;
                scope.spawn(move || {
                    if pinning() {
                        affinity::pin(thread);
                    }
                    let mut first_round = 0;
                    batch
                        .iter()
                        .map(|history| {
                            let events =
                                run_script(history, gate, first_round, thread, stale, fault);
                            first_round += history.rounds();
                            events
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("worker panicked"))
            .collect()
    });
    (0..batch.len())
        .map(|h| {
            per_thread
                .iter()
                .flat_map(|t| t[h].iter().copied())
                .collect()
        })
        .collect()
}

/// Versions that were never stored in any history's cache (process-wide unique, drawn from a
/// cache of their own): what a client holding a stale or foreign cas unique would send.
fn stale_versions(count: usize) -> Vec<u64> {
    let side: Cache<u64, u64> = Cache::new(16);
    (0..count).map(|_| side.insert(0, 0).get()).collect()
}

/// How a batch of histories went.
pub struct Outcome {
    pub stats: Stats,
    /// Histories run (the last one is the violating one, if any).
    pub ran: u64,
    /// The first violation, described with the seed that produced it.
    pub violation: Option<String>,
    pub elapsed: Duration,
}

/// Histories per set of threads.
const BATCH: u64 = 32;

/// Runs up to `count` histories of `mix` with `fault` injected, stopping at the first violation
/// or at `deadline`. With `free_eviction`, the histories are checked against the loose eviction
/// model.
pub fn run_histories(
    mix: Mix,
    fault: Fault,
    free_eviction: bool,
    count: u64,
    seed: u64,
    deadline: Instant,
) -> Outcome {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let stale = stale_versions(8);
    let mut stats = Stats::default();
    let mut ran = 0;
    while ran < count {
        if Instant::now() > deadline {
            println!(
                "linearizability: time budget reached after {ran} of {count} {mix:?} histories"
            );
            break;
        }
        let threads = plan_threads(&mut rng, mix);
        let batch: Vec<Prepared> = (0..BATCH.min(count - ran))
            .map(|_| Prepared::new(plan_history(&mut rng, mix, threads)))
            .collect();
        let events = run_batch(&batch, threads, &stale, fault);
        for (history, events) in batch.into_iter().zip(events) {
            let setup = history.planned.setup;
            let mut history = history.into_history(events);
            history.spec.free_eviction = free_eviction;
            ran += 1;
            if let Err(v) = check_history(&history, &mut stats) {
                let violation = format!(
                    "history {} (LIN_SEED={seed}, mix {mix:?}, fault {fault:?}, cache {setup:?}) \
                     violates the model: {v}",
                    ran - 1
                );
                return Outcome {
                    stats,
                    ran,
                    violation: Some(violation),
                    elapsed: started.elapsed(),
                };
            }
        }
    }
    Outcome {
        stats,
        ran,
        violation: None,
        elapsed: started.elapsed(),
    }
}

/// Pinning the threads of a history to distinct cores (where the OS allows).
///
/// Left to itself, the scheduler of a loaded machine keeps two threads that wake each other on
/// one core (a producer–consumer pair, as it sees them), where they take turns and their calls
/// never overlap.
mod affinity {
    /// Pins the calling thread to the `n`th core the process may run on (modulo their number).
    /// Best effort: where the OS refuses, or with a single core, the thread stays where it is.
    pub fn pin(n: usize) {
        if let Some(cores) = core_affinity::get_core_ids().filter(|cores| cores.len() >= 2) {
            core_affinity::set_for_current(cores[n % cores.len()]);
        }
    }
}
