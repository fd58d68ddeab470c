//! The sequential specification of one key, and the operations a history is made of.
//!
//! The state of a key is absent, or a value with its version and what is known of its expiry
//! deadline. Versions are opaque: a store's version is the one the operation returned (the
//! checker separately requires every returned version to be fresh), and a conditional operation
//! succeeds iff its expected version is the stored one.
//!
//! # Time
//!
//! The cache reads its clock and the entry at different instants, never atomically together, so
//! an operation that runs while the clock moves may judge expiry by a reading taken before or
//! after the move, whichever order its effect on the key takes in the linearization. The model
//! therefore gives every operation a [`Window`]: the clock values it may have read (every reading
//! lies in `lo..=hi`, from the real-time order of the recorded clock advances). An entry with
//! deadline `d` is live for the operation iff `d > t` for one of its readings `t`, absent iff
//! `d <= t`; a store with a time to live `ttl` gets a deadline `t + ttl`. Each reading is
//! existential and independent. When no advance overlaps the operation, `lo == hi` is the clock
//! at its linearization point: expiry then happens exactly at the advance's linearization point.
//!
//! The deadline of a stored value is known only up to a range (a store's clock reading is one of
//! its window); each observation narrows it (seen live by a reading `>= lo`: `d > lo`; seen
//! expired by a reading `<= hi`: `d <= hi`) and an empty range rejects the linearization. An
//! expired value stays in the state (a later-linearized operation may have read the clock
//! earlier and still see it live) until a write replaces it or a removal seals it.
//!
//! # Eviction
//!
//! Evictions come from the cache's eviction listener, recorded as [`Op::Departed`] events in the
//! interval of the operation whose call evicted (the listener runs on that thread, inside that
//! call): a departure of value `x` requires the key to hold `x`, and leaves it absent. That is
//! the tight model. The loose one ([`Spec::free_eviction`]) lets any key become absent before
//! any operation, with or without a recorded departure: what a cache whose evictions nobody
//! observes must satisfy.

/// The version the model gives a value a loader stored: the call returns none. No real version
/// is 0; an operation that shows the value's version (a `gets`, a `cas` from it, an `add` that
/// found it) replaces this with the one it shows, which must then hold.
pub const LOADED: u64 = 0;

/// A deadline that never passes (a value stored without a time to live).
pub const NEVER: u64 = u64::MAX;

/// One operation. Values and versions are raw `u64`s so histories are easy to write by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `insert`: the cache's default time to live, if any.
    Insert(u64),
    /// `insert_with_ttl(key, value, ttl)`, the time to live in milliseconds.
    InsertTtl(u64, u64),
    Get,
    Gets,
    /// `add`: the cache's default time to live, if any.
    Add(u64),
    /// `add_with_ttl`, in milliseconds.
    AddTtl(u64, u64),
    Replace(u64),
    Cas {
        expected: u64,
        value: u64,
    },
    /// `update` with `|x| Some(x + delta)`, or `None` when `decline_even` and `x` is even.
    Update {
        delta: u64,
        decline_even: bool,
    },
    Remove,
    Delete,
    RemoveIfVersion {
        expected: u64,
    },
    ContainsKey,
    /// `touch(key, ttl)`: milliseconds, or `None` to never expire. Whether the key was present.
    Touch(Option<u64>),
    /// `get_and_touch(key, ttl)`: as `gets`.
    GetAndTouch(Option<u64>),
    /// `MockClock::advance` by this many milliseconds: no key.
    Advance(u64),
    /// `get_or_insert_with(key, || value)` or one of its async forms: it returns the value it
    /// found, or this one, stored (with a version nobody is told: see [`LOADED`]).
    GetOrInsert(u64),
    /// The eviction listener heard that `value` left the key, evicted (or, with `expired`, removed
    /// because it had expired), inside the call of the event's thread and interval.
    Departed {
        value: u64,
        expired: bool,
    },
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A store (insert, add, replace, cas, update) succeeded with this version.
    Stored(u64),
    /// `get` and `remove`.
    Value(Option<u64>),
    /// `gets`, `get_and_touch`.
    Versioned(Option<(u64, u64)>),
    /// `add` failed; the value handed back.
    Occupied { current: u64, value: u64 },
    /// `replace` / `cas` (with the value handed back) or `remove_if_version` (`None`).
    NotFound(Option<u64>),
    /// `cas` (with the value handed back) or `remove_if_version` (`None`).
    Mismatch { current: u64, value: Option<u64> },
    /// `remove_if_version` succeeded.
    Removed,
    /// `delete`, `contains_key`, `touch`.
    Bool(bool),
    /// `update` returned `None`.
    Declined,
    /// An advance or a departure: nothing returned.
    Done,
}

/// The clock values an operation may have read: every one of its readings lies in `lo..=hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub lo: u64,
    pub hi: u64,
}

impl Window {
    /// An operation that no clock advance overlapped.
    pub const fn at(t: u64) -> Window {
        Window { lo: t, hi: t }
    }
}

/// What is known of a deadline: it lies in `lo..=hi` (`NEVER..=NEVER`: no deadline).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline {
    pub lo: u64,
    pub hi: u64,
}

impl Deadline {
    pub const NEVER: Deadline = Deadline {
        lo: NEVER,
        hi: NEVER,
    };

    /// The deadline of a value stored with `ttl` (milliseconds; `None`: never) by an operation
    /// that read the clock somewhere in `w`.
    pub fn after(w: Window, ttl: Option<u64>) -> Deadline {
        match ttl {
            None => Deadline::NEVER,
            Some(ttl) => Deadline {
                lo: w.lo.saturating_add(ttl),
                hi: w.hi.saturating_add(ttl),
            },
        }
    }
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.lo, self.hi) {
            (NEVER, NEVER) => f.write_str("never"),
            (lo, hi) if lo == hi => write!(f, "{lo}"),
            (lo, NEVER) => write!(f, "{lo}..never"),
            (lo, hi) => write!(f, "{lo}..={hi}"),
        }
    }
}

/// A stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Val {
    pub value: u64,
    pub version: u64,
    pub deadline: Deadline,
}

impl Val {
    pub const fn new(value: u64, version: u64, deadline: Deadline) -> Val {
        Val {
            value,
            version,
            deadline,
        }
    }

    /// A value that never expires.
    pub const fn forever(value: u64, version: u64) -> Val {
        Val::new(value, version, Deadline::NEVER)
    }

    /// The value as found live by an operation with window `w` (its deadline narrowed), if it
    /// can be: some reading `t >= w.lo` with `deadline > t`.
    fn live(self, w: Window) -> Option<Val> {
        (self.deadline.hi > w.lo).then(|| Val {
            deadline: Deadline {
                lo: self.deadline.lo.max(w.lo + 1),
                ..self.deadline
            },
            ..self
        })
    }

    /// The value as found expired by an operation with window `w` (its deadline narrowed), if it
    /// can be: some reading `t <= w.hi` with `deadline <= t`.
    fn expired(self, w: Window) -> Option<Val> {
        (self.deadline.lo <= w.hi).then(|| Val {
            deadline: Deadline {
                hi: self.deadline.hi.min(w.hi),
                ..self.deadline
            },
            ..self
        })
    }
}

/// The sequential model of one key.
pub type State = Option<Val>;

/// What a history's cache promises beyond the operations themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// The builder's `time_to_live`, in milliseconds: applies to `insert` and `add`.
    pub default_ttl: Option<u64>,
    /// Any key may be evicted before any operation, whether or not a departure was recorded.
    pub free_eviction: bool,
}

/// Applies `op` (which returned `ret` and read the clock within `w`) to `s`, if the sequential
/// specification allows it; the next state.
///
/// For every (state, operation, result) at most one next state is possible: where two
/// explanations could differ (an `update` that declined an entry that may or may not have
/// expired), the state is left as loose as both.
pub fn step(spec: &Spec, s: State, w: Window, op: Op, ret: Ret) -> Option<State> {
    // The state for an operation that found the key live, if it can have.
    let live = s.and_then(|e| e.live(w));
    // A value a loader stored has a version nobody was told ([`LOADED`]): the first operation
    // that shows one pins it down.
    let live_with = |version: u64| {
        live.filter(|e| e.version == version || e.version == LOADED)
            .map(|e| Val { version, ..e })
    };
    // The state for an operation that found the key absent (never stored, removed, or expired at
    // one of its readings), if it can have.
    let gone: Option<State> = match s {
        None => Some(None),
        Some(e) => e.expired(w).map(Some),
    };
    let store = |value: u64, version: u64, ttl: Option<u64>| {
        Some(Some(Val::new(value, version, Deadline::after(w, ttl))))
    };
    match (op, ret) {
        (Op::Insert(x), Ret::Stored(r)) => store(x, r, spec.default_ttl),
        (Op::InsertTtl(x, ttl), Ret::Stored(r)) => store(x, r, Some(ttl)),
        (Op::Get, Ret::Value(Some(y))) => live.filter(|e| e.value == y).map(Some),
        // Values are fresh: a loader's own value was stored by it over an absent key.
        (Op::GetOrInsert(x), Ret::Value(Some(y))) if y == x => {
            gone.map(|_| Some(Val::new(x, LOADED, Deadline::after(w, spec.default_ttl))))
        }
        (Op::GetOrInsert(_), Ret::Value(Some(y))) => live.filter(|e| e.value == y).map(Some),
        (Op::Gets, Ret::Versioned(Some((y, r)))) => live_with(r).filter(|e| e.value == y).map(Some),
        (Op::GetAndTouch(ttl), Ret::Versioned(Some((y, r)))) => {
            live_with(r).filter(|e| e.value == y).map(|e| {
                Some(Val {
                    deadline: Deadline::after(w, ttl),
                    ..e
                })
            })
        }
        (Op::Get, Ret::Value(None))
        | (Op::Gets | Op::GetAndTouch(_), Ret::Versioned(None))
        | (Op::ContainsKey | Op::Touch(_), Ret::Bool(false))
        | (Op::RemoveIfVersion { .. }, Ret::NotFound(None)) => gone,
        (Op::Add(x) | Op::AddTtl(x, _), Ret::Stored(r)) => {
            let ttl = match op {
                Op::AddTtl(_, ttl) => Some(ttl),
                _ => spec.default_ttl,
            };
            // `add` judges expiry and computes the new deadline from one reading, which is at
            // least the old deadline when it stored over an expired value.
            let read = match gone? {
                Some(old) => Window {
                    lo: w.lo.max(old.deadline.lo),
                    hi: w.hi,
                },
                None => w,
            };
            Some(Some(Val::new(x, r, Deadline::after(read, ttl))))
        }
        (
            Op::Add(x) | Op::AddTtl(x, _),
            Ret::Occupied {
                current,
                value: back,
            },
        ) if back == x => live_with(current).map(Some),
        // Conditional writes keep the deadline of the value they replace.
        (Op::Replace(x), Ret::Stored(r)) => live.map(|e| {
            Some(Val {
                value: x,
                version: r,
                ..e
            })
        }),
        (Op::Cas { expected, value: x }, Ret::Stored(r)) => live_with(expected).map(|e| {
            Some(Val {
                value: x,
                version: r,
                ..e
            })
        }),
        (Op::Replace(x) | Op::Cas { value: x, .. }, Ret::NotFound(back)) if back == Some(x) => gone,
        (
            Op::Cas { expected, value: x },
            Ret::Mismatch {
                current,
                value: back,
            },
        ) if back == Some(x) && current != expected => live_with(current).map(Some),
        (
            Op::Update {
                delta,
                decline_even,
            },
            Ret::Stored(r),
        ) => live
            .filter(|e| !(decline_even && e.value % 2 == 0))
            .map(|e| {
                Some(Val {
                    value: e.value + delta,
                    version: r,
                    ..e
                })
            }),
        (Op::Update { decline_even, .. }, Ret::Declined) => match s {
            // Declined whether it found the value live or expired: nothing learnt.
            Some(e) if decline_even && e.value % 2 == 0 => Some(s),
            _ => gone,
        },
        // Removals seal the entry whether or not its value had expired.
        (Op::Remove, Ret::Value(Some(y))) => live.filter(|e| e.value == y).map(|_| None),
        (Op::Delete, Ret::Bool(true)) => live.map(|_| None),
        (Op::Remove, Ret::Value(None)) | (Op::Delete, Ret::Bool(false)) => gone.map(|_| None),
        (Op::RemoveIfVersion { expected }, Ret::Removed) => live_with(expected).map(|_| None),
        (
            Op::RemoveIfVersion { expected },
            Ret::Mismatch {
                current,
                value: None,
            },
        ) if current != expected => live_with(current).map(Some),
        (Op::ContainsKey, Ret::Bool(true)) => live.map(Some),
        (Op::Touch(ttl), Ret::Bool(true)) => live.map(|e| {
            Some(Val {
                deadline: Deadline::after(w, ttl),
                ..e
            })
        }),
        (Op::Departed { value, expired }, Ret::Done) => {
            let e = s.filter(|e| e.value == value)?;
            (!expired || e.expired(w).is_some()).then_some(None)
        }
        _ => None,
    }
}

/// Whether an operation's result says it found the key absent (for the coverage figures: an
/// absence the model explained by expiry or eviction).
pub fn found_absent(op: Op, ret: Ret) -> bool {
    matches!((op, ret), (Op::GetOrInsert(x), Ret::Value(Some(y))) if x == y)
        || matches!(
            (op, ret),
            (Op::Get | Op::Remove, Ret::Value(None))
                | (_, Ret::Versioned(None))
                | (Op::Add(_) | Op::AddTtl(..), Ret::Stored(_))
                | (_, Ret::NotFound(_))
                | (
                    Op::Delete | Op::ContainsKey | Op::Touch(_),
                    Ret::Bool(false)
                )
        )
}
