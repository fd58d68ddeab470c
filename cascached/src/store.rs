//! memcached items on a [`cascache::Cache`]: the key is the item's bytes, the value an [`Item`]
//! (client flags, data, deadline, meta state), and memcached's CAS unique is the cache's
//! [`Version`].
//!
//! # Expiry
//!
//! Items carry their own deadline instead of using the cache's TTL, for three reasons:
//! memcached's `cas`/`replace`/`ms` give the item a new exptime while cascache's conditional
//! writes keep the old entry's TTL; `touch`, `gat` and `mg T` change the deadline without a new
//! CAS unique, which an atomic in the item does in place; and `get_expired` must tell an expired
//! item from a missing one. An expired item is invisible, and is removed (by its version, so a
//! newer value is never lost) by the first operation that finds it; the eviction hand reclaims
//! expired items nobody asks for.
//!
//! # Read-modify-write
//!
//! `append`, `prepend`, `incr`, `decr`, `replace`, `cas` and meta `md … I` run one loop
//! (`Store::write_loop`): read the live item and its version, compute the new item, and
//! `compare_and_swap` it in; if someone wrote meanwhile, compute again from their value. So two
//! clients incrementing one key concurrently never lose an increment, and `add` over an expired
//! item replaces exactly that item.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use cascache::{Cache, Expiry, Pinned, Version};

/// Keys are the client's bytes.
pub type Key = Box<[u8]>;

/// Bytes an item takes in memory beyond its key and data, counted toward `-m`: cascache's node
/// (version, key, this [`Item`], and the weight and deadline extension of a weighted cache), the
/// key's and the data's own allocations, the table slot, the eviction queue's slot and the
/// allocator's headers and rounding. Measured as resident memory per item beyond key and data
/// for 1M items of 14-byte keys (`scripts/server/capacity.py` and its notes): 178 bytes with
/// 10-byte values, 172 with 32-byte, 168 with 100-byte.
pub const ITEM_OVERHEAD: usize = 176;

/// The item was read by `get`, `gets`, `gat`, `touch` or `mg` (meta `h` flag).
const FETCHED: u8 = 1;
/// A client has been sent the win token (`W`) for this item: others get `Z`.
const TOKEN_SENT: u8 = 2;
/// Marked stale by `md … I` or a stale-allowed `ms … I C<cas>`: readers get `X`.
const STALE: u8 = 4;
/// The key was given in base64 (meta `b`), so replies encode it back.
const BINARY_KEY: u8 = 8;

/// A stored item.
#[derive(Debug)]
pub struct Item {
    data: Box<[u8]>,
    /// When the item expires, in milliseconds on the store's clock; 0: never.
    deadline: AtomicU64,
    /// When it was stored or last fetched, in seconds on the store's clock (meta `l`).
    accessed: AtomicU32,
    flags: u32,
    /// [`FETCHED`], [`TOKEN_SENT`], [`STALE`], [`BINARY_KEY`].
    state: AtomicU8,
}

impl Item {
    /// A new item.
    pub fn new(data: Box<[u8]>, flags: u32, deadline: u64, binary_key: bool, now: Now) -> Item {
        Item {
            data,
            deadline: AtomicU64::new(deadline),
            accessed: AtomicU32::new(now.seconds()),
            flags,
            state: AtomicU8::new(if binary_key { BINARY_KEY } else { 0 }),
        }
    }

    /// The value.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Client flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The deadline (0: never).
    pub fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    /// Gives the item a new deadline, keeping its version (`touch`).
    pub fn set_deadline(&self, deadline: u64) {
        self.deadline.store(deadline, Ordering::Relaxed);
    }

    fn is_expired(&self, now: Now) -> bool {
        let deadline = self.deadline();
        deadline != 0 && deadline <= now.millis
    }

    /// Whether the item has been fetched before.
    pub fn fetched(&self) -> bool {
        self.state.load(Ordering::Relaxed) & FETCHED != 0
    }

    /// Seconds since the item was stored or last fetched.
    pub fn idle_seconds(&self, now: Now) -> u32 {
        now.seconds()
            .saturating_sub(self.accessed.load(Ordering::Relaxed))
    }

    /// Records a fetch. Loads first, so that hot items are not written on every read (the
    /// writes would bounce the item's cache line between cores).
    pub fn mark_fetched(&self, now: Now) {
        if self.state.load(Ordering::Relaxed) & FETCHED == 0 {
            self.state.fetch_or(FETCHED, Ordering::Relaxed);
        }
        let seconds = now.seconds();
        if self.accessed.load(Ordering::Relaxed) != seconds {
            self.accessed.store(seconds, Ordering::Relaxed);
        }
    }

    /// Whether a client was already sent the win token.
    pub fn token_sent(&self) -> bool {
        self.state.load(Ordering::Relaxed) & TOKEN_SENT != 0
    }

    /// Claims the win token; false if another client claimed it first.
    pub fn claim_token(&self) -> bool {
        self.state.fetch_or(TOKEN_SENT, Ordering::AcqRel) & TOKEN_SENT == 0
    }

    /// Whether the item is marked stale.
    pub fn stale(&self) -> bool {
        self.state.load(Ordering::Relaxed) & STALE != 0
    }

    /// Whether the key was given in base64.
    pub fn binary_key(&self) -> bool {
        self.state.load(Ordering::Relaxed) & BINARY_KEY != 0
    }

    /// A new item for this key with other data, keeping flags, deadline and key encoding, and,
    /// with `keep_state`, the stale and token marks (memcached keeps them when it rewrites an
    /// item in place).
    fn rewritten(&self, data: Box<[u8]>, keep_state: bool, now: Now) -> Item {
        let mask = if keep_state {
            BINARY_KEY | STALE | TOKEN_SENT
        } else {
            BINARY_KEY
        };
        Item {
            data,
            deadline: AtomicU64::new(self.deadline()),
            accessed: AtomicU32::new(now.seconds()),
            flags: self.flags,
            state: AtomicU8::new(self.state.load(Ordering::Relaxed) & mask),
        }
    }
}

/// A moment on the store's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds since the store started, plus one (so 0 can mean "no deadline").
    pub millis: u64,
}

impl Now {
    fn seconds(self) -> u32 {
        (self.millis / 1000) as u32
    }

    /// Whole seconds left until `deadline` (rounded up, as memcached's second clock reads just
    /// after a store); `-1` for no deadline.
    pub fn seconds_until(self, deadline: u64) -> i64 {
        if deadline == 0 {
            -1
        } else {
            deadline.saturating_sub(self.millis).div_ceil(1000) as i64
        }
    }
}

/// A lookup's result.
#[derive(Debug)]
pub enum Lookup<'v> {
    /// A live item and its CAS unique.
    Hit(&'v Item, Version),
    /// No item.
    Miss,
    /// The item had expired (it is removed now).
    Expired,
}

/// Outcome of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored, with this unique (`STORED`, `HD`).
    Stored(Version),
    /// The condition failed (`NOT_STORED`, `NS`).
    NotStored,
    /// The CAS unique did not match (`EXISTS`, `EX`).
    Exists,
    /// No live item (`NOT_FOUND`, `NF`).
    NotFound,
}

/// Outcome of `incr`/`decr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithmeticOutcome {
    /// The new number, the new unique, and the deadline before the write.
    Updated {
        /// The result.
        value: u64,
        /// The new item's unique.
        version: Version,
        /// The old item's deadline (meta `t` before `T` shows it).
        previous_deadline: u64,
    },
    /// No live item.
    NotFound,
    /// The CAS unique did not match.
    Exists,
    /// The value is not a decimal u64.
    NonNumeric,
}

/// Outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted (or marked stale).
    Deleted,
    /// No live item.
    NotFound,
    /// The CAS unique did not match.
    Exists,
}

/// What one pass of [`Store::write_loop`] decided.
enum Step<W, D> {
    /// Store this item over what was read (or in the empty slot), and report `W` if it lands.
    Write(Item, W),
    /// Stop with `D`.
    Done(D),
}

/// How a [`Store::write_loop`] ended.
enum Written<W, D> {
    Stored(Version, W),
    Done(D),
}

/// The items of one server.
pub struct Store {
    cache: Cache<Key, Item>,
    started: Instant,
    /// When a delayed `flush_all` is due (store clock, ms); 0: none.
    pending_flush: AtomicU64,
    limit_bytes: u64,
}

impl Store {
    /// A store bounded to `limit_bytes` of key, data and [`ITEM_OVERHEAD`] per item, where no
    /// item is heavier than `max_item_size` (so each eviction shard can hold the largest).
    pub fn new(limit_bytes: u64, max_item_size: usize) -> Store {
        let heaviest = (max_item_size + ITEM_OVERHEAD) as u64;
        // cascache bounds each shard to its share of the capacity, and never keeps an item
        // heavier than that share: keep shards large enough for many of the largest items.
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let mut shards = (parallelism * 4).next_power_of_two();
        while shards > 1 && limit_bytes / (shards as u64) < 16 * heaviest {
            shards /= 2;
        }
        let cache = Cache::builder()
            .max_capacity(limit_bytes)
            .shards(shards)
            .weigher(|key: &Key, item: &Item| {
                (key.len() + item.data.len() + ITEM_OVERHEAD).min(u32::MAX as usize) as u32
            })
            // CAS uniques in issue order, so `ms … C<cas> I` compares them like memcached.
            .ordered_versions()
            .build();
        Store {
            cache,
            started: Instant::now(),
            pending_flush: AtomicU64::new(0),
            limit_bytes,
        }
    }

    /// The current moment.
    pub fn now(&self) -> Now {
        Now {
            millis: self.started.elapsed().as_millis() as u64 + 1,
        }
    }

    /// The deadline for a memcached exptime given at `now` (0: never).
    pub fn deadline(&self, exptime: i32, now: Now) -> u64 {
        match Expiry::from_memcached(i64::from(exptime)) {
            Expiry::Never => 0,
            Expiry::After(ttl) => now
                .millis
                .saturating_add(ttl.as_millis().min(u128::from(u64::MAX)) as u64),
            // Due now, so already expired.
            Expiry::Expired => now.millis,
        }
    }

    /// Pins the thread for a few operations; reads through the view borrow the items.
    pub fn view(&self, now: Now) -> View<'_> {
        View {
            pinned: self.cache.pin(),
            now,
        }
    }

    /// `set`: stores unconditionally.
    pub fn set(&self, key: &[u8], item: Item) -> Version {
        self.cache.insert(key.into(), item)
    }

    /// `add`: stores if there is no live item.
    pub fn add(&self, key: &[u8], now: Now, make: impl Fn() -> Item) -> WriteOutcome {
        self.store_if(key, now, make, |current| match current {
            Some(_) => Err(WriteOutcome::NotStored),
            None => Ok(()),
        })
    }

    /// `replace`: stores if there is a live item.
    pub fn replace(&self, key: &[u8], now: Now, make: impl Fn() -> Item) -> WriteOutcome {
        self.store_if(key, now, make, |current| match current {
            Some(_) => Ok(()),
            None => Err(WriteOutcome::NotStored),
        })
    }

    /// `cas`: stores if the live item's unique is `unique`. With `allow_stale` (meta `I`), an
    /// older unique stores too, but as a stale item that keeps the current deadline and win
    /// token (versions come from one shared counter, so they order writes as memcached's
    /// uniques do). A unique of 0 never matches, stale or not (memcached: `EX`).
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        unique: u64,
        allow_stale: bool,
        now: Now,
        make: impl Fn() -> Item,
    ) -> WriteOutcome {
        let written = self.write_loop(key, now, |current| match current {
            None => Step::Done(WriteOutcome::NotFound),
            Some((_, version)) if version.get() == unique => Step::Write(make(), ()),
            Some((old, version)) if allow_stale && unique != 0 && unique < version.get() => {
                let item = make();
                item.set_deadline(old.deadline());
                let token = old.state.load(Ordering::Relaxed) & TOKEN_SENT;
                item.state.fetch_or(STALE | token, Ordering::Relaxed);
                Step::Write(item, ())
            }
            Some(_) => Step::Done(WriteOutcome::Exists),
        });
        match written {
            Written::Stored(version, ()) => WriteOutcome::Stored(version),
            Written::Done(outcome) => outcome,
        }
    }

    /// `append`/`prepend` (meta: with an optional CAS check, where 0 checks nothing, as in
    /// memcached): the item keeps its flags and deadline. `NotStored` if missing, or if the
    /// result would be over `max_data_len`.
    pub fn concat(
        &self,
        key: &[u8],
        data: &[u8],
        append: bool,
        compare: Option<u64>,
        max_data_len: impl Fn(&Item) -> usize,
        now: Now,
    ) -> WriteOutcome {
        let written = self.write_loop(key, now, |current| {
            let Some((old, version)) = current else {
                return Step::Done(WriteOutcome::NotStored);
            };
            if compare.is_some_and(|unique| unique != 0 && unique != version.get()) {
                return Step::Done(WriteOutcome::Exists);
            }
            let len = old.data.len() + data.len();
            if len > max_data_len(old) {
                return Step::Done(WriteOutcome::NotStored);
            }
            let mut joined = Vec::with_capacity(len);
            if append {
                joined.extend_from_slice(&old.data);
                joined.extend_from_slice(data);
            } else {
                joined.extend_from_slice(data);
                joined.extend_from_slice(&old.data);
            }
            Step::Write(old.rewritten(joined.into(), false, now), ())
        });
        match written {
            Written::Stored(version, ()) => WriteOutcome::Stored(version),
            Written::Done(outcome) => outcome,
        }
    }

    /// `incr`/`decr`: the value must be a decimal u64; incr wraps at 2^64, decr stops at 0. A
    /// result no longer than the old value is space-padded to its length and keeps the item's
    /// stale and win-token marks, as memcached rewrites it in place, unless `referenced` says
    /// memcached would still hold the item of that version elsewhere (then it stores a new,
    /// unpadded item: see [`crate::unflushed`]). `new_deadline` replaces the deadline (meta `T`).
    /// As in memcached, an empty value is non-numeric before the CAS is checked, and a CAS of 0
    /// checks nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn arithmetic(
        &self,
        key: &[u8],
        incr: bool,
        delta: u64,
        compare: Option<u64>,
        new_deadline: Option<u64>,
        referenced: impl Fn(Version) -> bool,
        now: Now,
    ) -> ArithmeticOutcome {
        let written = self.write_loop(key, now, |current| {
            let Some((old, version)) = current else {
                return Step::Done(ArithmeticOutcome::NotFound);
            };
            if old.data.is_empty() {
                return Step::Done(ArithmeticOutcome::NonNumeric);
            }
            if compare.is_some_and(|unique| unique != 0 && unique != version.get()) {
                return Step::Done(ArithmeticOutcome::Exists);
            }
            let Some(number) = crate::protocol::number::parse_u64(&old.data) else {
                return Step::Done(ArithmeticOutcome::NonNumeric);
            };
            let value = if incr {
                number.wrapping_add(delta)
            } else {
                number.saturating_sub(delta)
            };
            let mut digits = Vec::with_capacity(old.data.len().max(20));
            crate::protocol::number::push_u64(&mut digits, value);
            let in_place = digits.len() <= old.data.len() && !referenced(version);
            if in_place {
                digits.resize(old.data.len(), b' ');
            }
            let item = old.rewritten(digits.into(), in_place, now);
            if let Some(deadline) = new_deadline {
                item.set_deadline(deadline);
            }
            Step::Write(item, (value, old.deadline()))
        });
        match written {
            Written::Stored(version, (value, previous_deadline)) => ArithmeticOutcome::Updated {
                value,
                version,
                previous_deadline,
            },
            Written::Done(outcome) => outcome,
        }
    }

    /// `delete` / `md`: removes the live item (if its unique is `compare`, when given).
    pub fn delete(&self, key: &[u8], compare: Option<u64>, now: Now) -> DeleteOutcome {
        loop {
            let pinned = self.cache.pin();
            let Some((item, version)) = pinned.gets(key) else {
                return DeleteOutcome::NotFound;
            };
            if item.is_expired(now) {
                let _ = pinned.remove_if_version(key, version);
                return DeleteOutcome::NotFound;
            }
            if compare.is_some_and(|unique| unique != version.get()) {
                return DeleteOutcome::Exists;
            }
            if pinned.remove_if_version(key, version).is_ok() {
                return DeleteOutcome::Deleted;
            }
            // Rewritten meanwhile: delete the newer item.
        }
    }

    /// `md … I`: marks the live item stale with a new unique (readers get `X`, and the next one
    /// the win token), optionally with a new deadline. On success, the old and new versions
    /// (memcached marks the same item, so it stays the one its replies reference).
    pub fn mark_stale(
        &self,
        key: &[u8],
        compare: Option<u64>,
        new_deadline: Option<u64>,
        now: Now,
    ) -> Result<(Version, Version), DeleteOutcome> {
        let written = self.write_loop(key, now, |current| {
            let Some((old, version)) = current else {
                return Step::Done(DeleteOutcome::NotFound);
            };
            if compare.is_some_and(|unique| unique != version.get()) {
                return Step::Done(DeleteOutcome::Exists);
            }
            let item = old.rewritten(old.data.clone(), true, now);
            let state = item.state.load(Ordering::Relaxed);
            item.state
                .store((state | STALE) & !TOKEN_SENT, Ordering::Relaxed);
            if let Some(deadline) = new_deadline {
                item.set_deadline(deadline);
            }
            Step::Write(item, version)
        });
        match written {
            Written::Stored(new, old) => Ok((old, new)),
            Written::Done(outcome) => Err(outcome),
        }
    }

    /// `flush_all [delay]`: with no delay every item goes now; with a delay, every item written
    /// before the deadline goes when it passes ([`run_due_flush`](Store::run_due_flush)). A new
    /// flush replaces a pending one. memcached sets its deadline one second early (its clock
    /// ticks in seconds, and `flush_all 1` flushes at once), and so does this.
    pub fn flush(&self, delay: i32, now: Now) {
        let deadline = if delay > 0 {
            self.deadline(delay, now).saturating_sub(1000)
        } else {
            now.millis
        };
        if deadline <= now.millis {
            self.pending_flush.store(0, Ordering::Relaxed);
            self.cache.clear();
        } else {
            self.pending_flush.store(deadline, Ordering::Relaxed);
        }
    }

    /// Runs a delayed flush whose deadline has passed. Called before each batch of requests,
    /// so no request sees an item the flush should have removed.
    pub fn run_due_flush(&self, now: Now) {
        let due = self.pending_flush.load(Ordering::Relaxed);
        if due != 0
            && due <= now.millis
            && self
                .pending_flush
                .compare_exchange(due, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.cache.clear();
        }
    }

    /// Frees what this thread's writes retired (see [`Cache::collect_garbage`]): a worker
    /// calls it before it idles, so that evicted values are not held until its next request.
    pub fn collect_garbage(&self) {
        self.cache.collect_garbage();
    }

    /// Items held (expired ones count until found, as in memcached).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the store holds no item.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes held, as the weigher counts them.
    pub fn bytes(&self) -> u64 {
        self.cache.weighted_size().0
    }

    /// The memory limit.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Items evicted to make room.
    pub fn evictions(&self) -> u64 {
        self.cache.stats().evictions
    }

    /// Time since the store started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The conditional writes' shared loop: reads the live item (or none), asks `decide`, and
    /// writes its item over exactly the version read (or into the empty slot); if another
    /// write got there first, asks again with the newer item. An expired item counts as none,
    /// but is the version overwritten.
    fn write_loop<W, D>(
        &self,
        key: &[u8],
        now: Now,
        mut decide: impl FnMut(Option<(&Item, Version)>) -> Step<W, D>,
    ) -> Written<W, D> {
        loop {
            let pinned = self.cache.pin();
            let current = pinned.gets(key);
            let live = current.filter(|(item, _)| !item.is_expired(now));
            let (item, report) = match decide(live) {
                Step::Write(item, report) => (item, report),
                Step::Done(done) => return Written::Done(done),
            };
            let stored = match current {
                Some((_, version)) => pinned.compare_and_swap(key, version, item).ok(),
                None => pinned.add(key.into(), item).ok(),
            };
            if let Some(version) = stored {
                return Written::Stored(version, report);
            }
        }
    }

    fn store_if(
        &self,
        key: &[u8],
        now: Now,
        make: impl Fn() -> Item,
        condition: impl Fn(Option<(&Item, Version)>) -> Result<(), WriteOutcome>,
    ) -> WriteOutcome {
        let written = self.write_loop(key, now, |current| match condition(current) {
            Ok(()) => Step::Write(make(), ()),
            Err(outcome) => Step::Done(outcome),
        });
        match written {
            Written::Stored(version, ()) => WriteOutcome::Stored(version),
            Written::Done(outcome) => outcome,
        }
    }
}

/// A pinned view of the store for reads that borrow items (see [`Store::view`]).
pub struct View<'s> {
    pinned: Pinned<'s, Key, Item>,
    now: Now,
}

impl View<'_> {
    /// The live item of `key`. An expired item is removed (only that version) and reported.
    pub fn lookup(&self, key: &[u8]) -> Lookup<'_> {
        match self.pinned.gets(key) {
            Some((item, version)) if item.is_expired(self.now) => {
                let _ = self.pinned.remove_if_version(key, version);
                Lookup::Expired
            }
            Some((item, version)) => Lookup::Hit(item, version),
            None => Lookup::Miss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(store: &Store, data: &[u8]) -> Item {
        Item::new(data.into(), 0, 0, false, store.now())
    }

    fn value(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
        match store.view(store.now()).lookup(key) {
            Lookup::Hit(item, _) => Some(item.data().to_vec()),
            _ => None,
        }
    }

    #[test]
    fn concurrent_increments_are_never_lost() {
        let store = Store::new(64 << 20, 1 << 20);
        store.set(b"n", item(&store, b"0"));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        let outcome =
                            store.arithmetic(b"n", true, 1, None, None, |_| false, store.now());
                        assert!(matches!(outcome, ArithmeticOutcome::Updated { .. }));
                    }
                });
            }
        });
        assert_eq!(value(&store, b"n").unwrap(), b"4000");
    }

    #[test]
    fn arithmetic_pads_like_memcached() {
        let store = Store::new(64 << 20, 1 << 20);
        store.set(b"n", item(&store, b"10"));
        store.arithmetic(b"n", false, 7, None, None, |_| false, store.now());
        assert_eq!(value(&store, b"n").unwrap(), b"3 ");
        store.set(b"n", item(&store, b"99"));
        store.arithmetic(b"n", true, 1, None, None, |_| false, store.now());
        assert_eq!(value(&store, b"n").unwrap(), b"100");
        store.set(b"n", item(&store, b"abc"));
        assert_eq!(
            store.arithmetic(b"n", true, 1, None, None, |_| false, store.now()),
            ArithmeticOutcome::NonNumeric
        );
    }

    #[test]
    fn arithmetic_on_a_referenced_item_stores_a_new_unpadded_one() {
        let store = Store::new(64 << 20, 1 << 20);
        let held = store.set(b"n", item(&store, b"139"));
        store.arithmetic(b"n", false, 100, None, None, |v| v == held, store.now());
        assert_eq!(value(&store, b"n").unwrap(), b"39");
        // The new item is not referenced: rewritten in place.
        store.arithmetic(b"n", false, 1, None, None, |v| v == held, store.now());
        assert_eq!(value(&store, b"n").unwrap(), b"38");
        store.arithmetic(b"n", false, 30, None, None, |v| v == held, store.now());
        assert_eq!(value(&store, b"n").unwrap(), b"8 ");
    }

    #[test]
    fn expired_items_are_absent_for_every_operation() {
        let store = Store::new(64 << 20, 1 << 20);
        let now = store.now();
        store.set(
            b"k",
            Item::new(b"v".to_vec().into(), 0, now.millis, false, now),
        );
        assert!(matches!(store.view(now).lookup(b"k"), Lookup::Expired));
        assert!(matches!(store.view(now).lookup(b"k"), Lookup::Miss));
        store.set(
            b"k",
            Item::new(b"v".to_vec().into(), 0, now.millis, false, now),
        );
        assert_eq!(
            store.replace(b"k", now, || item(&store, b"w")),
            WriteOutcome::NotStored
        );
        assert!(matches!(
            store.add(b"k", now, || item(&store, b"w")),
            WriteOutcome::Stored(_)
        ));
        assert_eq!(value(&store, b"k").unwrap(), b"w");
    }

    #[test]
    fn delayed_flush_runs_when_due() {
        let store = Store::new(64 << 20, 1 << 20);
        store.set(b"k", item(&store, b"v"));
        let now = store.now();
        store.flush(3, now);
        store.run_due_flush(now);
        assert_eq!(value(&store, b"k").unwrap(), b"v");
        store.run_due_flush(Now {
            millis: now.millis + 2_000,
        });
        assert_eq!(value(&store, b"k"), None);
    }

    #[test]
    fn seconds_until_rounds_up() {
        let now = Now { millis: 1_000 };
        assert_eq!(now.seconds_until(0), -1);
        assert_eq!(now.seconds_until(31_000), 30);
        assert_eq!(now.seconds_until(30_500), 30);
    }
}
