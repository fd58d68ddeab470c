//! The ghost queue: hashes of keys recently evicted from the small queue, so that a key that comes
//! back soon after is admitted straight into the main queue (it has proven it is reused).

use std::collections::{HashMap, VecDeque};

/// A FIFO of hashes with O(1) membership.
pub(super) struct Ghost {
    order: VecDeque<u64>,
    /// How many times each hash is in `order` (a hash can be evicted again before it ages out).
    members: HashMap<u64, u32, ahash::RandomState>,
}

impl Ghost {
    pub(super) fn new() -> Self {
        Ghost {
            order: VecDeque::new(),
            members: HashMap::default(),
        }
    }

    pub(super) fn insert(&mut self, hash: u64, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.order.len() >= capacity {
            self.pop_oldest();
        }
        self.order.push_back(hash);
        *self.members.entry(hash).or_insert(0) += 1;
    }

    /// Whether `hash` is a ghost; a hit removes it from membership (it ages out of `order` later).
    pub(super) fn take(&mut self, hash: u64) -> bool {
        match self.members.get_mut(&hash) {
            Some(count) => {
                *count -= 1;
                if *count == 0 {
                    self.members.remove(&hash);
                }
                true
            }
            None => false,
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(hash) = self.order.pop_front() {
            if let Some(count) = self.members.get_mut(&hash) {
                *count -= 1;
                if *count == 0 {
                    self.members.remove(&hash);
                }
            }
        }
    }
}
