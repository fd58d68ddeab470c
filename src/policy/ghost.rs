//! The ghost queue: hashes of keys recently evicted from the small queue, so that a key that comes
//! back soon after is admitted straight into the main queue (it has proven it is reused).
//!
//! A FIFO of the last `capacity` insertions, kept as a hash table of fingerprints stamped with
//! the insertion count: a copy ages out when `capacity` insertions have followed it, so nothing
//! has to be popped, and a lookup or insertion touches one cache line. It replaced a `VecDeque`
//! of hashes with a `HashMap` counting each hash's copies, which took two random cache misses per
//! insertion (10% of the churn benchmark's time), and it gives that structure's answers (a test
//! checks it against it). There a hash is a ghost while its count is above 0, and the count goes
//! up by one when the hash is inserted, down by one on a hit, and down by one (if above 0) when
//! any copy of the hash ages out. So a key that was hit, inserted again and hit again is
//! forgotten with its first copy, and a fresh window for it instead let every key of a loop
//! longer than the cache hit the ghost on every pass, and main took them all in
//! (`tests/bounded.rs`'s loop of 1,011 keys at 600 fell from 59% to 43.5%).

use super::spread;

/// Slots per bucket: 8 × 8 bytes, one cache line.
const BUCKET_SLOTS: usize = 8;
/// Buckets are sized for this many copies each on average, so that a bucket rarely holds more
/// than `BUCKET_SLOTS` of the last `capacity` insertions (Poisson(4) ≥ 9: 2%; the oldest copy
/// then ages out early).
const MEAN_LOAD: usize = 4;

/// A slot is `stamp << 32 | fingerprint << 1 | counted`: `stamp` is the insertion count when the
/// copy went in, and `counted` says whether the copy still adds one to its hash's count (the
/// count is the number of counted copies). 0 is an empty slot.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([u64; BUCKET_SLOTS]);

const COUNTED: u64 = 1;

pub(super) struct Ghost {
    buckets: Box<[Bucket]>,
    /// Insertions so far (wrapping): a copy is live while fewer than `capacity` insertions
    /// followed it.
    clock: u32,
    capacity: usize,
}

impl Ghost {
    pub(super) fn new() -> Self {
        Ghost {
            buckets: Box::new([]),
            clock: 0,
            capacity: 0,
        }
    }

    /// Remembers `hash` (one more count) for the next `capacity` insertions.
    pub(super) fn insert(&mut self, hash: u32, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if capacity != self.capacity {
            self.resize(capacity);
        }
        self.clock = self.clock.wrapping_add(1);
        let (clock, capacity) = (self.clock, self.capacity);
        let bucket = self.bucket_mut(hash);
        bucket.age_out(clock, capacity);
        let free = match bucket.0.iter().position(|&slot| slot == 0) {
            Some(free) => free,
            None => {
                // Overflow: the bucket's oldest copy ages out early.
                let oldest = (0..BUCKET_SLOTS)
                    .max_by_key(|&i| age(bucket.0[i], clock))
                    .expect("a bucket has slots");
                bucket.remove(oldest);
                oldest
            }
        };
        bucket.0[free] = u64::from(clock) << 32 | u64::from(fingerprint(hash)) | COUNTED;
    }

    /// Whether `hash` is a ghost; a hit takes one off its count.
    pub(super) fn take(&mut self, hash: u32) -> bool {
        if self.buckets.is_empty() {
            return false;
        }
        let (clock, capacity) = (self.clock, self.capacity);
        let bucket = self.bucket_mut(hash);
        bucket.age_out(clock, capacity);
        bucket.uncount(fingerprint(hash))
    }

    /// Starts loading `hash`'s bucket, for an insert or take soon after.
    pub(super) fn prefetch(&self, hash: u32) {
        if !self.buckets.is_empty() {
            crate::raw::prefetch(&self.buckets[self.index(hash)]);
        }
    }

    #[cfg(test)]
    fn contains(&self, hash: u32) -> bool {
        let counted = fingerprint(hash) | COUNTED as u32;
        !self.buckets.is_empty()
            && self.buckets[self.index(hash)]
                .0
                .iter()
                .any(|&slot| slot as u32 == counted && age(slot, self.clock) < self.capacity)
    }

    fn resize(&mut self, capacity: usize) {
        let buckets = capacity.div_ceil(MEAN_LOAD);
        self.buckets = vec![Bucket::default(); buckets].into_boxed_slice();
        self.capacity = capacity;
    }

    /// The spread hash's low 32 bits, mapped onto the bucket count by a multiply (no division).
    fn index(&self, hash: u32) -> usize {
        ((spread(hash) as u32 as u64 * self.buckets.len() as u64) >> 32) as usize
    }

    fn bucket_mut(&mut self, hash: u32) -> &mut Bucket {
        let index = self.index(hash);
        &mut self.buckets[index]
    }
}

impl Bucket {
    /// Removes the copies `capacity` insertions old. (Ages out are applied when the bucket is
    /// next used, which is before any other event of the hashes it holds: in the same order.)
    fn age_out(&mut self, clock: u32, capacity: usize) {
        for i in 0..BUCKET_SLOTS {
            if self.0[i] != 0 && age(self.0[i], clock) >= capacity {
                self.remove(i);
            }
        }
    }

    /// Removes a copy, taking one off its hash's count (if above 0).
    fn remove(&mut self, i: usize) {
        let slot = std::mem::take(&mut self.0[i]);
        if slot & COUNTED == 0 {
            self.uncount(slot as u32 & !(COUNTED as u32));
        }
    }

    /// Takes one off the count of the hash with `fingerprint`; false if it was 0.
    fn uncount(&mut self, fingerprint: u32) -> bool {
        let counted = fingerprint | COUNTED as u32;
        match self.0.iter().position(|&slot| slot as u32 == counted) {
            Some(i) => {
                self.0[i] &= !COUNTED;
                true
            }
            None => false,
        }
    }
}

/// Insertions since `slot` went in.
fn age(slot: u64, clock: u32) -> usize {
    clock.wrapping_sub((slot >> 32) as u32) as usize
}

/// 31 bits of the spread hash's upper half (the bucket comes from the lower), shifted clear of
/// the `COUNTED` bit, and never 0 (so a slot is never 0). Within one bucket, two hashes collide
/// only if those bits match: a false ghost hit costs one promotion, rarely.
fn fingerprint(hash: u32) -> u32 {
    ((spread(hash) >> 33) as u32).max(1) << 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct, well-spread hashes (a SplitMix64 sequence).
    fn hashes(n: usize, seed: u64) -> Vec<u32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u32
            })
            .collect()
    }

    #[test]
    fn a_hash_is_taken_once_per_insertion() {
        let mut ghost = Ghost::new();
        let [a, b] = hashes(2, 4)[..] else {
            unreachable!()
        };
        assert!(!ghost.take(a));
        ghost.insert(a, 100);
        ghost.insert(a, 100);
        assert!(ghost.take(a));
        assert!(ghost.take(a));
        assert!(!ghost.take(a));
        assert!(!ghost.take(b));
    }

    /// The structure this replaced, kept as the reference: a FIFO of hashes and a count of each
    /// hash's copies in it, where aging out decrements the count if it is not 0 already.
    #[derive(Default)]
    struct CountedFifo {
        order: std::collections::VecDeque<u32>,
        members: std::collections::HashMap<u32, u32>,
    }

    impl CountedFifo {
        fn insert(&mut self, hash: u32, capacity: usize) {
            while self.order.len() >= capacity {
                let oldest = self.order.pop_front().unwrap();
                if let Some(count) = self.members.get_mut(&oldest) {
                    *count -= 1;
                    if *count == 0 {
                        self.members.remove(&oldest);
                    }
                }
            }
            self.order.push_back(hash);
            *self.members.entry(hash).or_insert(0) += 1;
        }

        fn take(&mut self, hash: u32) -> bool {
            let Some(count) = self.members.get_mut(&hash) else {
                return false;
            };
            *count -= 1;
            if *count == 0 {
                self.members.remove(&hash);
            }
            true
        }
    }

    /// Random inserts and hits over a few keys, where no bucket can overflow (at most 8 live
    /// copies): every answer matches the reference's.
    #[test]
    #[cfg_attr(miri, ignore = "safe code only; minutes under Miri")]
    fn answers_as_the_counted_fifo_it_replaced() {
        let keys = hashes(12, 5);
        let mut choices = hashes(200_000, 6).into_iter();
        for capacity in [1, 2, 3, 5, 8] {
            let (mut ghost, mut reference) = (Ghost::new(), CountedFifo::default());
            for step in 0..20_000 {
                let choice = choices.next().unwrap();
                let key = keys[(choice >> 8) as usize % keys.len()];
                if choice & 1 == 0 {
                    ghost.insert(key, capacity);
                    reference.insert(key, capacity);
                } else {
                    assert_eq!(
                        ghost.take(key),
                        reference.take(key),
                        "capacity {capacity}, step {step}"
                    );
                }
            }
        }
    }

    /// The reference's behaviour the policy was tuned with (see the module's comment): a hash
    /// that was hit and comes back is forgotten when its first copy ages out.
    #[test]
    fn a_hash_inserted_again_after_a_hit_keeps_its_first_age() {
        let mut ghost = Ghost::new();
        let hashes = hashes(4, 7);
        ghost.insert(hashes[0], 3);
        assert!(ghost.take(hashes[0]));
        ghost.insert(hashes[1], 3);
        ghost.insert(hashes[0], 3); // back, with the age of its first insertion
        ghost.insert(hashes[2], 3); // three insertions after the first: it ages out
        assert!(!ghost.take(hashes[0]));
        assert!(ghost.take(hashes[1]));
    }

    #[test]
    fn a_small_ghost_is_an_exact_fifo() {
        let mut ghost = Ghost::new();
        let hashes = hashes(20, 1);
        for &hash in &hashes {
            ghost.insert(hash, 10);
        }
        for (i, &hash) in hashes.iter().enumerate() {
            assert_eq!(ghost.take(hash), i >= 10, "hash {i} of 20 with capacity 10");
        }
    }

    /// As in a FIFO whose hits leave their place in the order: a hash ages out `capacity`
    /// insertions after it went in, whatever was taken meanwhile.
    #[test]
    fn hashes_age_out_by_insertions_not_by_members() {
        let mut ghost = Ghost::new();
        let hashes = hashes(5, 2);
        for &hash in &hashes[..4] {
            ghost.insert(hash, 4);
        }
        assert!(ghost.take(hashes[1]));
        ghost.insert(hashes[4], 4);
        assert!(!ghost.take(hashes[0]), "four insertions followed it");
        assert!(!ghost.take(hashes[1]), "taken");
        assert!(ghost.take(hashes[2]));
        assert!(ghost.take(hashes[3]));
        assert!(ghost.take(hashes[4]));
    }

    /// A bucket that overflows drops its oldest early, rarely: recent hashes are nearly all
    /// remembered, and none older than the capacity.
    #[test]
    #[cfg_attr(miri, ignore = "safe code only; minutes under Miri")]
    fn a_large_ghost_remembers_about_its_capacity() {
        let capacity = 10_000;
        let mut ghost = Ghost::new();
        let hashes = hashes(5 * capacity, 3);
        for &hash in &hashes {
            ghost.insert(hash, capacity);
        }
        let remembered = |range: std::ops::Range<usize>| {
            let len = range.len();
            let found = hashes[range].iter().filter(|&&h| ghost.contains(h)).count();
            found as f64 / len as f64
        };
        let newest_half = remembered(4 * capacity + capacity / 2..5 * capacity);
        let older = remembered(3 * capacity..4 * capacity);
        assert!(newest_half > 0.99, "newest half: {newest_half}");
        assert_eq!(older, 0.0, "older than the capacity");
    }
}
