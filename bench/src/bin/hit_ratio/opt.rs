//! Belady's optimum: on a miss with the cache full, keep whichever of the resident keys and the
//! new one is requested again soonest, dropping the one requested furthest ahead (the new key
//! itself, if that is it: a cache may decline to admit). It reads the whole trace in advance, so
//! it is the ceiling for every policy in the table, not a candidate.

use std::collections::BinaryHeap;

use crate::{FastMap, Policy};

/// "Never requested again".
const NEVER: usize = usize::MAX;

pub struct Opt {
    cap: usize,
    /// For each request, the index of the next request of the same key ([`NEVER`] if none).
    next_use: Vec<usize>,
    /// Index of the request being replayed.
    position: usize,
    /// Resident keys and the index of their next request.
    resident: FastMap<u64, usize>,
    /// `(next request, key)` of resident keys, furthest first; stale pairs (the key was requested
    /// since, or dropped) are skipped when they surface.
    furthest: BinaryHeap<(usize, u64)>,
}

impl Opt {
    pub fn new(cap: usize, keys: &[u64]) -> Self {
        assert!(cap > 0);
        let mut next_use = vec![NEVER; keys.len()];
        let mut seen: FastMap<u64, usize> = FastMap::default();
        for (i, &key) in keys.iter().enumerate().rev() {
            if let Some(next) = seen.insert(key, i) {
                next_use[i] = next;
            }
        }
        Opt {
            cap,
            next_use,
            position: 0,
            resident: FastMap::default(),
            furthest: BinaryHeap::new(),
        }
    }

    /// The resident key requested furthest ahead, with that request's index.
    fn furthest_resident(&mut self) -> (usize, u64) {
        loop {
            let (next, key) = *self
                .furthest
                .peek()
                .expect("a full cache has resident keys");
            if self.resident.get(&key) == Some(&next) {
                return (next, key);
            }
            self.furthest.pop();
        }
    }
}

impl Policy for Opt {
    fn name(&self) -> String {
        "OPT".into()
    }

    fn access(&mut self, key: u64) -> bool {
        let next = *self
            .next_use
            .get(self.position)
            .expect("OPT replays the trace it was built from");
        self.position += 1;
        if let Some(slot) = self.resident.get_mut(&key) {
            *slot = next;
            self.furthest.push((next, key));
            return true;
        }
        if next == NEVER {
            return false; // admitting it could only push out a key requested again
        }
        if self.resident.len() >= self.cap {
            let (victim_next, victim) = self.furthest_resident();
            if victim_next <= next {
                return false;
            }
            self.furthest.pop();
            self.resident.remove(&victim);
        }
        self.resident.insert(key, next);
        self.furthest.push((next, key));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(cap: usize, keys: &[u64]) -> usize {
        let mut opt = Opt::new(cap, keys);
        keys.iter().filter(|&&k| opt.access(k)).count()
    }

    #[test]
    fn a_loop_one_longer_than_the_cache_keeps_all_but_one_key() {
        // Keys 0..=3 looped 10 times through 3 entries: LRU hits nothing; the optimum misses each
        // key once, then only once per pass.
        let keys: Vec<u64> = (0..10).flat_map(|_| 0..4u64).collect();
        assert_eq!(replay(3, &keys), 40 - 4 - 9);
    }

    #[test]
    fn a_key_never_requested_again_is_not_admitted() {
        // 1 stays resident through the one-off 2.
        assert_eq!(replay(1, &[1, 2, 1]), 1);
    }
}
