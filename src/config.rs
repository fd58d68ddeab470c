//! What a cache is configured with beyond its table: the builder fills it, the cache reads it.

use std::time::Duration;

use crossbeam_epoch::{Collector, Guard};

use crate::expiry::SharedClock;
use crate::policy::RemovalCause;

/// Computes an entry's weight toward the capacity.
pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;
/// Hears about every entry that leaves the cache.
pub(crate) type Listener<K, V> = Box<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// Everything the builder configures beyond the table.
pub(crate) struct Config<K, V> {
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) time_to_live: Option<Duration>,
    pub(crate) time_to_idle: Option<Duration>,
    pub(crate) clock: SharedClock,
    pub(crate) listener: Option<Listener<K, V>>,
    /// Versions from one shared counter, ordered across threads.
    pub(crate) ordered_versions: bool,
}

/// Where retired entries and values go.
pub(crate) enum Reclaimer {
    /// crossbeam-epoch's global collector: the fastest pin.
    #[cfg(not(loom))]
    Global,
    /// A collector of the cache's own (tests, loom models, or isolation from other users).
    Local(Collector),
}

impl Reclaimer {
    #[inline]
    pub(crate) fn pin(&self) -> Guard {
        match self {
            #[cfg(not(loom))]
            Reclaimer::Global => crate::sync::epoch::pin(),
            Reclaimer::Local(collector) => collector.register().pin(),
        }
    }
}
