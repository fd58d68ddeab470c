//! An embedded, concurrent cache whose values carry versions: memcached's `gets` / `cas`
//! without the network hop.
//!
//! # Usage
//!
//! ```
//! use std::sync::Arc;
//! use cascache::Cache;
//!
//! let cache = Arc::new(Cache::new(10_000));
//! cache.insert("visits", 0u64);
//!
//! let workers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let cache = Arc::clone(&cache);
//!         std::thread::spawn(move || {
//!             for _ in 0..1_000 {
//!                 // memcached's CAS increment: gets, compute, cas; retry if someone won the race.
//!                 loop {
//!                     let (n, version) = cache.gets("visits").unwrap();
//!                     if cache.compare_and_swap("visits", version, n + 1).is_ok() {
//!                         break;
//!                     }
//!                 }
//!             }
//!         })
//!     })
//!     .collect();
//! for worker in workers {
//!     worker.join().unwrap();
//! }
//! assert_eq!(cache.get("visits"), Some(4_000));
//! ```
//!
//! [`Cache::update`] runs that loop for you, and [`Cache::pin`] gives a view whose reads borrow
//! instead of cloning.
//!
//! # Loading and async callers
//!
//! [`Cache::get_or_insert_with`] runs one loader per missing key however many threads ask for
//! it; [`Cache::get_or_insert_with_async`] does the same for async code on any runtime (the
//! crate depends on none), and hands the load to a waiting caller if the one running it is
//! cancelled. [`Cache::entry`] gives the options (a time to live for the loaded value) and
//! [`Entry::and_compute_with`], the founding loop with a closure that may also insert or remove.
//! [`Cache::lookup`] tells a load in flight from a miss without waiting.
//!
//! # Versions
//!
//! Every successful write stores the value with a new [`Version`], unique in the process: a
//! version is never reused for a key, even after the key is removed and inserted again, so a
//! compare-and-swap cannot be fooled by a value that changed and changed back (no ABA). A version
//! is never 0 ([`Version::get`] is what a memcached client sees as the cas unique).
//!
//! # Consistency
//!
//! Every single-key operation is linearizable: it takes effect atomically at one instant between
//! its call and its return. In particular a `compare_and_swap` that returns `Ok` was applied to
//! the live entry (a racing `remove` makes it fail with `NotFound`, never lose the write), and
//! `gets` never pairs a value with another value's version. Whole-cache operations
//! ([`Cache::len`], [`Cache::iter`], [`Cache::clear`]) are weakly consistent.
//!
//! # Performance
//!
//! Reads take no lock and write no shared memory: a hash, one cache line of tags and slot
//! pointers, and the entry's node. Each entry is one heap node (version, key, value), and every
//! write publishes a new node with one compare-and-swap of its slot. So a write to an existing
//! key clones the key into the new node: [`Cache::replace`], [`Cache::compare_and_swap`],
//! [`Cache::update`], [`Cache::touch`] and [`Cache::get_and_touch`] need `K: Clone` (cheap for
//! the usual keys; use `Arc<str>` or similar for large ones). The table is open-addressed and
//! grows cooperatively: writers that need a slot while a resize runs copy chunks of it and wait
//! for the copy to finish; readers and writes to existing keys never wait. Removed and replaced
//! nodes are freed by epoch-based reclamation (crossbeam-epoch) once no reader can still see
//! them.
//!
//! # memcached commands
//!
//! | memcached | cascache |
//! |---|---|
//! | `get` | [`Cache::get`] |
//! | `gets` | [`Cache::gets`] |
//! | `set` | [`Cache::insert`] |
//! | `add` | [`Cache::add`] |
//! | `replace` | [`Cache::replace`] |
//! | `cas` | [`Cache::compare_and_swap`] |
//! | `delete` | [`Cache::delete`] / [`Cache::remove`] |
//! | `md <key> C<cas>` | [`Cache::remove_if_version`] |
//! | `flush_all` | [`Cache::clear`] |
//! | `incr` / `decr` | [`Cache::update`] |

#![warn(missing_docs)]

mod builder;
mod cache;
mod config;
mod entry;
mod error;
mod expiry;
mod flight;
mod loader;
mod pinned;
mod policy;
mod raw;
mod stats;
mod sync;
mod version;

pub use crate::builder::{BuildError, CacheBuilder};
pub use crate::cache::{Cache, Iter};
pub use crate::entry::{CompResult, Entry, Op};
pub use crate::error::{CasError, Occupied};
pub use crate::expiry::{Clock, Expiry, MockClock};
pub use crate::loader::Lookup;
pub use crate::pinned::{Pinned, PinnedIter};
pub use crate::policy::RemovalCause;
pub use crate::stats::CacheStats;
pub use crate::version::Version;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
