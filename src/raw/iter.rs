//! Weakly consistent iteration over the table chain.
//!
//! The iterator walks the table it started from, then follows `next` if a resize started. An
//! entry present and unwritten for the whole iteration is yielded exactly once; entries
//! inserted, written or removed meanwhile may or may not be. Because a resize moves node
//! pointers, a node already yielded from an old table can show up again in its successor: when
//! the walk moves to a successor it skips the nodes it has yielded, by address (safe: the guard
//! keeps them from being freed and their addresses from being reused). A key written after it
//! was yielded and before the resize copied it has a new node, which may be yielded again.

use std::collections::HashSet;

use crossbeam_epoch::Guard;

use super::node::{Found, Node};
use super::table::{Table, Word};
use crate::sync::Ordering;

struct Cursor<K, V> {
    table: *const Table<K, V>,
    index: usize,
    yielded: Vec<*const Node<K, V>>,
    skip: Option<HashSet<*const Node<K, V>>>,
}

impl<K, V> Cursor<K, V> {
    fn new(table: *const Table<K, V>) -> Self {
        Cursor {
            table,
            index: 0,
            yielded: Vec::new(),
            skip: None,
        }
    }

    /// # Safety
    ///
    /// `guard` must be the guard the starting table was loaded under, the same on every call.
    unsafe fn next<'g>(&mut self, guard: &'g Guard) -> Option<Found<'g, K, V>> {
        loop {
            // SAFETY: the table was reached under `guard` (the contract), which is still held.
            let table = unsafe { &*self.table };
            if self.index == table.slot_count() {
                let next = table.next.load(Ordering::Acquire, guard);
                if next.is_null() {
                    return None;
                }
                // Entries yielded so far may have been (or be about to be) copied into `next`.
                self.skip = Some(self.yielded.iter().copied().collect());
                self.table = next.as_raw();
                self.index = 0;
                continue;
            }
            let index = self.index;
            self.index += 1;
            let Word::Node { node, .. } = table.load(index, guard) else {
                continue;
            };
            // A node whose claimant has not published it yet is not in the cache yet.
            if !table.published(index) {
                continue;
            }
            let address = node.as_raw();
            if self
                .skip
                .as_ref()
                .is_some_and(|skip| skip.contains(&address))
            {
                continue;
            }
            self.yielded.push(address);
            return Some(Found { table, index, node });
        }
    }
}

/// Iterator over live entries under a borrowed guard.
pub(crate) struct RawIter<'g, K, V> {
    cursor: Cursor<K, V>,
    guard: &'g Guard,
}

impl<'g, K, V> RawIter<'g, K, V> {
    pub(super) fn new(root: &'g Table<K, V>, guard: &'g Guard) -> Self {
        RawIter {
            cursor: Cursor::new(root),
            guard,
        }
    }
}

impl<'g, K: 'g, V: 'g> Iterator for RawIter<'g, K, V> {
    type Item = Found<'g, K, V>;

    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: the cursor started from a table loaded under `self.guard`, always passed here.
        unsafe { self.cursor.next(self.guard) }
    }
}

/// Iterator over live entries under a guard it owns (so it can be returned by value).
pub(crate) struct OwnedIter<K, V> {
    cursor: Cursor<K, V>,
    guard: Guard,
}

impl<K, V> OwnedIter<K, V> {
    /// # Safety
    ///
    /// `root` must have been loaded under `guard`.
    pub(super) unsafe fn new(root: *const Table<K, V>, guard: Guard) -> Self {
        OwnedIter {
            cursor: Cursor::new(root),
            guard,
        }
    }

    /// Advances and hands the next entry to `f` (its references live only as long as the call).
    pub(crate) fn next_with<R>(&mut self, f: impl FnOnce(Found<'_, K, V>) -> R) -> Option<R> {
        // SAFETY: the cursor started from a table loaded under `self.guard`, always passed here.
        unsafe { self.cursor.next(&self.guard) }.map(f)
    }
}
