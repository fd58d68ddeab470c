//! The checker: fresh versions over a whole history, then a Wing–Gong/Lowe search per key.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use crate::model::{found_absent, step, Op, Ret, Spec, State, Window};

/// A key that no operation uses: clock advances are filed under it.
pub const NO_KEY: u64 = u64::MAX;

/// One completed operation of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub thread: usize,
    pub key: u64,
    pub op: Op,
    pub ret: Ret,
    /// Clock tick taken just before the call.
    pub invoke: u64,
    /// Clock tick taken just after the return.
    pub response: u64,
    /// The cache-clock readings the operation may have made (filled in by the checker from the
    /// history's advances).
    pub window: Window,
}

impl Event {
    pub fn new(thread: usize, key: u64, op: Op, ret: Ret, invoke: u64, response: u64) -> Event {
        Event {
            thread,
            key,
            op,
            ret,
            invoke,
            response,
            window: Window::at(0),
        }
    }

    /// An operation of a caller (not an advance, not a departure the listener reported).
    fn is_call_on_key(&self) -> bool {
        !matches!(self.op, Op::Advance(_) | Op::Departed { .. })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>4}, {:>4}] t{} ",
            self.invoke, self.response, self.thread
        )?;
        match self.op {
            Op::Advance(_) => write!(f, "clock: {:?}", self.op),
            _ => write!(f, "key {}: {:?} -> {:?}", self.key, self.op, self.ret),
        }
    }
}

/// An event with the clock readings it may have made.
struct Timed<'a>(&'a Event);

impl fmt::Display for Timed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Window { lo, hi } = self.0.window;
        if lo == hi {
            write!(f, "{} (clock {lo})", self.0)
        } else {
            write!(f, "{} (clock {lo}..={hi})", self.0)
        }
    }
}

/// A recorded history: its cache's promises, each key's initial state and the events.
#[derive(Clone, Debug)]
pub struct History {
    pub spec: Spec,
    /// The cache clock when the threads started.
    pub clock0: u64,
    pub init: Vec<(u64, State)>,
    pub events: Vec<Event>,
}

/// Why a history was rejected.
#[derive(Debug)]
pub enum Violation {
    /// A store returned a version already stored or returned in the history.
    StaleVersion { version: u64, event: Event },
    /// No linearization of this key's sub-history satisfies the model.
    NotLinearizable {
        key: u64,
        init: State,
        events: Vec<Event>,
        advances: Vec<Event>,
        /// With recorded evictions: whether the sub-history would pass if any key could vanish
        /// unreported (then an eviction escaped the listener, or a value vanished without one).
        free_eviction_passes: Option<bool>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::StaleVersion { version, event } => {
                write!(f, "version {version} returned twice: {event}")
            }
            Violation::NotLinearizable {
                key,
                init,
                events,
                advances,
                free_eviction_passes,
            } => {
                writeln!(f, "key {key} is not linearizable; initial state {init:?}:")?;
                // The cache-clock readings matter only where the clock moved.
                for event in events {
                    if advances.is_empty() {
                        writeln!(f, "  {event}")?;
                    } else {
                        writeln!(f, "  {}", Timed(event))?;
                    }
                }
                if !advances.is_empty() {
                    writeln!(f, "clock advances:")?;
                    for event in advances {
                        writeln!(f, "  {event}")?;
                    }
                }
                match free_eviction_passes {
                    Some(true) => writeln!(
                        f,
                        "(linearizable if keys may vanish unreported: a value left the cache \
                         without the eviction listener hearing of it)"
                    ),
                    Some(false) => writeln!(f, "(not even if keys may vanish unreported)"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Figures of the checks that passed.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub histories: u64,
    /// Calls on keys (advances and departures not counted).
    pub operations: u64,
    pub sub_histories: u64,
    pub search_states: u64,
    /// Calls that overlapped another thread's call (or eviction) on the same key in real time:
    /// the ones that make the check more than a sequential test.
    pub overlapping: u64,
    pub advances: u64,
    /// Calls that overlapped a clock advance (their clock reading is not pinned down).
    pub clock_concurrent: u64,
    /// Calls that found a key absent where the linearization held a value (expired, or evicted
    /// without a report in the free-eviction model).
    pub absent_by_expiry: u64,
    /// Departures the eviction listener reported (evicted or expired).
    pub departures: u64,
    /// Time spent checking (not running) histories.
    pub check_time: Duration,
}

impl Stats {
    /// Overlapping calls as a fraction of all calls.
    pub fn overlap(&self) -> f64 {
        self.overlapping as f64 / self.operations.max(1) as f64
    }

    pub fn add(&mut self, other: &Stats) {
        self.histories += other.histories;
        self.operations += other.operations;
        self.sub_histories += other.sub_histories;
        self.search_states += other.search_states;
        self.overlapping += other.overlapping;
        self.advances += other.advances;
        self.clock_concurrent += other.clock_concurrent;
        self.absent_by_expiry += other.absent_by_expiry;
        self.departures += other.departures;
        self.check_time += other.check_time;
    }
}

/// Wing–Gong/Lowe search: a linearization of `events` (indices in order) from `init`, if any.
///
/// An operation may be linearized next iff it was invoked before every pending operation's
/// response (no pending operation precedes it in real time). With free eviction, the key may
/// also become absent just before any operation (evicting earlier is the same as evicting just
/// before the next operation that looks). Visited (linearized set, state) pairs are memoised:
/// reaching one again cannot succeed where it failed before.
///
/// The linearization lists each event's index with the state it was applied to (which differs
/// from the state before it when the search evicted the key in between).
pub fn linearize(
    spec: &Spec,
    init: State,
    events: &[Event],
    states: &mut u64,
) -> Option<Vec<(usize, State)>> {
    assert!(events.len() <= 64, "sub-history too long for the bitmask");
    let full = if events.len() == 64 {
        u64::MAX
    } else {
        (1u64 << events.len()) - 1
    };
    struct Search<'a> {
        spec: &'a Spec,
        events: &'a [Event],
        full: u64,
        memo: HashSet<(u64, State)>,
        order: Vec<(usize, State)>,
    }
    impl Search<'_> {
        fn go(&mut self, done: u64, state: State) -> bool {
            if done == self.full {
                return true;
            }
            if !self.memo.insert((done, state)) {
                return false;
            }
            let events = self.events;
            let pending = || (0..events.len()).filter(move |&i| done & (1 << i) == 0);
            let horizon = pending().map(|i| events[i].response).min().unwrap();
            let starts = [
                Some(state),
                (self.spec.free_eviction && state.is_some()).then_some(None),
            ];
            for i in pending().filter(|&i| events[i].invoke < horizon) {
                let e = &events[i];
                for from in starts.iter().flatten() {
                    if let Some(next) = step(self.spec, *from, e.window, e.op, e.ret) {
                        self.order.push((i, *from));
                        if self.go(done | 1 << i, next) {
                            return true;
                        }
                        self.order.pop();
                    }
                }
            }
            false
        }
    }
    let mut search = Search {
        spec,
        events,
        full,
        memo: HashSet::new(),
        order: Vec::with_capacity(events.len()),
    };
    let found = search.go(0, init);
    *states += search.memo.len() as u64;
    found.then_some(search.order)
}

/// Fills in every event's clock window from the history's advances: an operation read at least
/// the advances that returned before it was invoked, at most those invoked before it returned.
pub fn assign_windows(clock0: u64, events: &mut [Event]) {
    let advances: Vec<(u64, u64, u64)> = events
        .iter()
        .filter_map(|e| match e.op {
            Op::Advance(ms) => Some((e.invoke, e.response, ms)),
            _ => None,
        })
        .collect();
    for e in events.iter_mut() {
        let before: u64 = advances
            .iter()
            .filter(|a| a.1 < e.invoke)
            .map(|a| a.2)
            .sum();
        let possibly: u64 = advances
            .iter()
            .filter(|a| a.0 < e.response)
            .map(|a| a.2)
            .sum();
        e.window = Window {
            lo: clock0 + before,
            hi: clock0 + possibly,
        };
    }
}

/// Checks a whole history: fresh versions, then each key's sub-history on its own.
pub fn check_history(history: &History, stats: &mut Stats) -> Result<(), Violation> {
    let started = Instant::now();
    let result = check(history, stats);
    stats.check_time += started.elapsed();
    result
}

fn check(history: &History, stats: &mut Stats) -> Result<(), Violation> {
    let History {
        spec,
        clock0,
        init,
        events,
    } = history;
    let mut versions: HashSet<u64> = init
        .iter()
        .filter_map(|(_, s)| s.map(|e| e.version))
        .collect();
    for event in events {
        if let Ret::Stored(version) = event.ret {
            if !versions.insert(version) {
                return Err(Violation::StaleVersion {
                    version,
                    event: *event,
                });
            }
        }
    }
    let mut events = events.clone();
    assign_windows(*clock0, &mut events);
    let advances: Vec<Event> = events
        .iter()
        .filter(|e| matches!(e.op, Op::Advance(_)))
        .copied()
        .collect();
    let mut figures = Stats {
        advances: advances.len() as u64,
        ..Stats::default()
    };
    for &(key, state) in init {
        let mut sub: Vec<Event> = events
            .iter()
            .filter(|e| e.key == key && !matches!(e.op, Op::Advance(_)))
            .copied()
            .collect();
        sub.sort_by_key(|e| (e.invoke, e.response));
        let calls = sub.iter().filter(|e| e.is_call_on_key());
        figures.operations += calls.clone().count() as u64;
        figures.departures += sub.iter().filter(|e| !e.is_call_on_key()).count() as u64;
        figures.clock_concurrent +=
            calls.clone().filter(|e| e.window.lo != e.window.hi).count() as u64;
        // A departure counts as the evicting call's operation on this key.
        figures.overlapping += calls
            .filter(|a| {
                sub.iter()
                    .any(|b| a.thread != b.thread && a.invoke < b.response && b.invoke < a.response)
            })
            .count() as u64;
        match linearize(spec, state, &sub, &mut figures.search_states) {
            Some(order) => {
                // Replay the linearization for the coverage figures.
                let mut s = state;
                for (i, from) in order {
                    let e = &sub[i];
                    if s.is_some() && found_absent(e.op, e.ret) {
                        figures.absent_by_expiry += 1;
                    }
                    s = step(spec, from, e.window, e.op, e.ret).expect("the linearization replays");
                }
            }
            None => {
                let free_eviction_passes = (!spec.free_eviction).then(|| {
                    let free = Spec {
                        free_eviction: true,
                        ..*spec
                    };
                    linearize(&free, state, &sub, &mut 0).is_some()
                });
                return Err(Violation::NotLinearizable {
                    key,
                    init: state,
                    events: sub,
                    advances,
                    free_eviction_passes,
                });
            }
        }
        figures.sub_histories += 1;
    }
    figures.histories = 1;
    stats.add(&figures);
    Ok(())
}
