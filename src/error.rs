//! Errors of conditional writes. Each hands the rejected value back, so a retry loop never has to
//! clone or rebuild it.

use std::error::Error;
use std::fmt;

use crate::version::Version;

/// Why a [`compare_and_swap`](crate::Cache::compare_and_swap) (or a
/// [`replace`](crate::Cache::replace), or a [`remove_if_version`](crate::Cache::remove_if_version))
/// did not store, with the value it was given.
///
/// These are memcached's `NOT_FOUND` and `EXISTS` replies to `cas`.
///
/// ```
/// use cascache::{Cache, CasError};
///
/// let cache = Cache::new(100);
/// let v1 = cache.insert("k", 1);
/// cache.insert("k", 2);
/// match cache.compare_and_swap("k", v1, 10) {
///     Err(CasError::Mismatch { current, value }) => {
///         assert_eq!(value, 10); // handed back
///         assert_eq!(cache.gets("k"), Some((2, current)));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// assert_eq!(cache.compare_and_swap("absent", v1, 3), Err(CasError::NotFound(3)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CasError<V> {
    /// The key is not in the cache (never inserted, removed, or gone since it was read).
    NotFound(V),
    /// The key holds another version than the one expected: someone wrote it meanwhile.
    Mismatch {
        /// The version the key holds now.
        current: Version,
        /// The value that was not stored.
        value: V,
    },
}

impl<V> CasError<V> {
    /// The value that was not stored.
    pub fn into_value(self) -> V {
        match self {
            CasError::NotFound(value) | CasError::Mismatch { value, .. } => value,
        }
    }

    /// The key's current version, when the failure was a mismatch.
    pub fn current(&self) -> Option<Version> {
        match self {
            CasError::NotFound(_) => None,
            CasError::Mismatch { current, .. } => Some(*current),
        }
    }
}

impl<V> fmt::Display for CasError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CasError::NotFound(_) => f.write_str("key not found"),
            CasError::Mismatch { current, .. } => {
                write!(f, "version mismatch: the key is at version {current}")
            }
        }
    }
}

impl<V: fmt::Debug> Error for CasError<V> {}

/// Why an [`add`](crate::Cache::add) did not store: the key is present. Hands the value back.
///
/// memcached's `NOT_STORED` reply to `add`.
///
/// ```
/// let cache = cascache::Cache::new(100);
/// let v = cache.add("k", 1).unwrap();
/// let err = cache.add("k", 2).unwrap_err();
/// assert_eq!((err.current, err.value), (v, 2));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Occupied<V> {
    /// The version of the value already stored.
    pub current: Version,
    /// The value that was not stored.
    pub value: V,
}

impl<V> fmt::Display for Occupied<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key already present at version {}", self.current)
    }
}

impl<V: fmt::Debug> Error for Occupied<V> {}
