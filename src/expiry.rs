//! Time: the clock expiry deadlines are measured on, and memcached's exptime convention.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sync::{AtomicU64, Ordering};

/// A source of time for expiry, in milliseconds since some fixed start. Inject one with
/// [`CacheBuilder::clock`](crate::CacheBuilder::clock) to test expiry without sleeping
/// (see [`MockClock`]).
pub trait Clock: Send + Sync {
    /// Milliseconds elapsed since the clock's start; never decreases.
    fn now_millis(&self) -> u64;
}

/// The default clock: monotonic time since the cache was built.
pub(crate) struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    pub(crate) fn new() -> Self {
        MonotonicClock {
            start: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now_millis(&self) -> u64 {
        // +1 so that "now" is never 0, which means "no deadline".
        self.start.elapsed().as_millis() as u64 + 1
    }
}

/// A clock that moves only when told to: for tests of expiry.
///
/// ```
/// use std::time::Duration;
/// use cascache::{Cache, MockClock};
///
/// let clock = MockClock::new();
/// let cache = Cache::builder().max_capacity(100).clock(clock.clone()).build();
/// cache.insert_with_ttl("session", 1, Duration::from_secs(30));
/// clock.advance(Duration::from_secs(29));
/// assert_eq!(cache.get("session"), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get("session"), None);
/// ```
#[derive(Clone, Default)]
pub struct MockClock {
    millis: Arc<AtomicU64>,
}

impl MockClock {
    /// A clock at time 1 ms.
    pub fn new() -> Self {
        MockClock {
            millis: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst).max(1)
    }
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MockClock({} ms)", self.now_millis())
    }
}

/// How long a value should live, as memcached's `exptime` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Never expires (exptime 0).
    Never,
    /// Expires after this long.
    After(Duration),
    /// Already expired (negative exptime, or an absolute time in the past): stored but never
    /// returned.
    Expired,
}

/// Longest relative exptime memcached accepts; larger values are absolute Unix times.
const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

impl Expiry {
    /// Converts memcached's exptime: 0 never; up to 30 days (2,592,000, inclusive) relative
    /// seconds; above that an absolute Unix time (in the past: expired); negative: expired.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cascache::Expiry;
    ///
    /// assert_eq!(Expiry::from_memcached(0), Expiry::Never);
    /// assert_eq!(Expiry::from_memcached(60), Expiry::After(Duration::from_secs(60)));
    /// assert_eq!(Expiry::from_memcached(-1), Expiry::Expired);
    /// assert_eq!(Expiry::from_memcached(1_000_000_000), Expiry::Expired); // 2001: in the past
    /// ```
    pub fn from_memcached(exptime: i64) -> Expiry {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::from_memcached_at(exptime, now)
    }

    /// [`from_memcached`](Expiry::from_memcached) with the current Unix time given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cascache::Expiry;
    ///
    /// let now = 1_800_000_000;
    /// assert_eq!(Expiry::from_memcached_at(2_592_000, now), Expiry::After(Duration::from_secs(2_592_000)));
    /// assert_eq!(Expiry::from_memcached_at(now as i64 + 10, now), Expiry::After(Duration::from_secs(10)));
    /// assert_eq!(Expiry::from_memcached_at(now as i64, now), Expiry::Expired);
    /// ```
    pub fn from_memcached_at(exptime: i64, unix_now: u64) -> Expiry {
        match exptime {
            0 => Expiry::Never,
            e if e < 0 => Expiry::Expired,
            e if e <= MAX_RELATIVE_EXPTIME => Expiry::After(Duration::from_secs(e as u64)),
            e if (e as u64) > unix_now => Expiry::After(Duration::from_secs(e as u64 - unix_now)),
            _ => Expiry::Expired,
        }
    }
}

/// The clock a cache uses, shared.
pub(crate) type SharedClock = Arc<dyn Clock>;

/// The deadline for a time to live starting at `now` (0: no deadline).
pub(crate) fn deadline(now: u64, ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => now
            .saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)
            .max(1),
    }
}

/// Whether a deadline has passed at `now`.
#[inline]
pub(crate) fn is_expired(deadline: u64, now: u64) -> bool {
    deadline != 0 && deadline <= now
}

/// Whether an entry's value has expired at `now` (time to live or time to idle).
#[inline]
pub(crate) fn found_expired<K, V>(found: &crate::raw::Found<'_, K, V>, now: u64) -> bool {
    is_expired(found.expires_at(), now) || is_expired(found.idle_expires_at(), now)
}
