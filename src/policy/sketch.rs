//! A count-min sketch of 4-bit counters: how often a key was asked for recently, for TinyLFU
//! admission into the main queue.
//!
//! Four counters per key, 16 packed per `u64`, all four in one 64-byte block of eight words
//! (Caffeine's layout): a key's counters are spread over the block's words by its hash, so an
//! increment or an estimate touches one cache line instead of four rows' worth. An increment
//! raises only the counters equal to the current minimum (conservative update), saturating at
//! 15. After `20 × entries` increments every counter is halved, so old popularity fades.

use super::spread;

/// Counters per expected entry (four per key, and four times as many keys' worth of room).
const COUNTERS_PER_ENTRY: usize = 16;
/// Counters per block: eight words of sixteen.
const BLOCK_COUNTERS: usize = 128;
/// Halve every counter after this many increments per expected entry. Caffeine's 10 measured
/// lower here: 20 gained 0.1 to 0.4 points on OLTP, P3, sprite, scarab and orm-night, and lost
/// at most 0.13 elsewhere (zigzag, within its run-to-run spread, aside); 40 lost 1.3 on
/// OLTP @ 2,000 (`docs/policy-research.md` §7.1).
const AGING_PERIOD_PER_ENTRY: u64 = 20;

/// One cache line of counters.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

pub(super) struct Sketch {
    blocks: Box<[Block]>,
    /// `blocks.len() - 1` (a power of two).
    mask: u64,
    increments: u64,
    aging_period: u64,
}

impl Sketch {
    /// A sketch for a cache of about `entries` entries.
    pub(super) fn new(entries: usize) -> Self {
        let blocks = (entries * COUNTERS_PER_ENTRY / BLOCK_COUNTERS)
            .max(1)
            .next_power_of_two();
        Sketch {
            blocks: vec![Block::default(); blocks].into_boxed_slice(),
            mask: blocks as u64 - 1,
            increments: 0,
            aging_period: AGING_PERIOD_PER_ENTRY * entries.max(1) as u64,
        }
    }

    /// The block of `hash` and, for each of its four counters, the word (0..8) and bit shift:
    /// counter `i` lies in words `2i` or `2i + 1`, so the four never share a word.
    #[inline]
    fn positions(&self, hash: u32) -> (usize, [(usize, u32); 4]) {
        let spread = spread(hash);
        let block = (spread & self.mask) as usize;
        let high = spread >> 32;
        let position = |i: usize| {
            let word = 2 * i + ((high >> i) & 1) as usize;
            let shift = (((high >> (8 + 4 * i)) & 15) * 4) as u32;
            (word, shift)
        };
        (block, [position(0), position(1), position(2), position(3)])
    }

    /// How often `hash` was seen (an over-estimate, 0..=15).
    #[inline]
    pub(super) fn estimate(&self, hash: u32) -> u32 {
        let (block, positions) = self.positions(hash);
        let words = &self.blocks[block].0;
        let count = |(word, shift): (usize, u32)| ((words[word] >> shift) & 15) as u32;
        count(positions[0])
            .min(count(positions[1]))
            .min(count(positions[2]))
            .min(count(positions[3]))
    }

    /// Counts one more sighting of `hash`.
    pub(super) fn increment(&mut self, hash: u32) {
        self.add(hash, 1);
    }

    /// Counts `times` more sightings of `hash`: what as many [`increment`](Sketch::increment)s
    /// would do, aging included, in one pass (folding an entry's hits called `increment` once per
    /// hit, up to 15 times per entry the hand visits).
    pub(super) fn add(&mut self, hash: u32, times: u32) {
        let mut left = u64::from(times);
        while left > 0 {
            // Up to the next aging, which single increments would have run between two of
            // them. (`increments < aging_period` always holds here, so `now` is at least 1.)
            let now = left.min(self.aging_period - self.increments);
            self.raise(hash, now);
            left -= now;
            self.increments += now;
            if self.increments >= self.aging_period {
                for block in self.blocks.iter_mut() {
                    for word in block.0.iter_mut() {
                        *word = (*word >> 1) & 0x7777_7777_7777_7777;
                    }
                }
                self.increments /= 2;
            }
        }
    }

    /// `times` conservative updates of `hash`'s counters at once. One update adds 1 to the
    /// counters at the minimum (below 15); the minimum then climbs by one per update and every
    /// counter it reaches climbs with it, so `times` of them leave each counter at the larger of
    /// its count and `min + times` (at most 15).
    #[inline]
    fn raise(&mut self, hash: u32, times: u64) {
        let (block, positions) = self.positions(hash);
        let words = &mut self.blocks[block].0;
        let count = |words: &[u64; 8], (word, shift): (usize, u32)| (words[word] >> shift) & 15;
        let counts = positions.map(|position| count(words, position));
        let min = counts[0].min(counts[1]).min(counts[2]).min(counts[3]);
        let target = (min + times).min(15);
        for (&(word, shift), &count) in positions.iter().zip(&counts) {
            if count < target {
                words[word] += (target - count) << shift;
            }
        }
    }

    /// Starts loading the block of `hash`, for an increment or estimate soon after.
    pub(super) fn prefetch(&self, hash: u32) {
        let block = (spread(hash) & self.mask) as usize;
        crate::raw::prefetch(&self.blocks[block]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_count_increments_and_age() {
        let mut sketch = Sketch::new(64);
        for _ in 0..5 {
            sketch.increment(7);
        }
        sketch.increment(8);
        assert_eq!(sketch.estimate(7), 5);
        assert_eq!(sketch.estimate(8), 1);
        assert_eq!(sketch.estimate(9), 0);
        for _ in 0..20 {
            sketch.increment(7);
        }
        assert_eq!(sketch.estimate(7), 15, "saturates at 15");
        // Aging halves every counter after 20 × 64 increments.
        for key in 100..100 + 20 * 64 {
            sketch.increment(key);
        }
        assert!(sketch.estimate(7) <= 8, "halved: {}", sketch.estimate(7));
    }

    /// One conservative update, written out: add 1 to the counters at the minimum (below 15),
    /// then age every `aging_period` updates.
    fn update_once(sketch: &mut Sketch, hash: u32) {
        let (block, positions) = sketch.positions(hash);
        let words = &mut sketch.blocks[block].0;
        let counts = positions.map(|(word, shift)| (words[word] >> shift) & 15);
        let min = *counts.iter().min().unwrap();
        for (&(word, shift), &count) in positions.iter().zip(&counts) {
            if count == min && min < 15 {
                words[word] += 1 << shift;
            }
        }
        sketch.increments += 1;
        if sketch.increments >= sketch.aging_period {
            for word in sketch
                .blocks
                .iter_mut()
                .flat_map(|block| block.0.iter_mut())
            {
                *word = (*word >> 1) & 0x7777_7777_7777_7777;
            }
            sketch.increments /= 2;
        }
    }

    /// `add(h, n)` leaves the sketch exactly as `n` single updates do, across agings and
    /// saturation.
    #[test]
    #[cfg_attr(miri, ignore = "safe code only; minutes under Miri")]
    fn add_is_that_many_increments() {
        let (mut added, mut incremented) = (Sketch::new(16), Sketch::new(16));
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let hash = (state % 97) as u32; // few keys: counters collide and saturate
            let times = (state >> 40) as u32 % 16;
            added.add(hash, times);
            for _ in 0..times {
                update_once(&mut incremented, hash);
            }
            assert_eq!(added.increments, incremented.increments, "step {step}");
            for probe in 0..97 {
                assert_eq!(
                    added.estimate(probe),
                    incremented.estimate(probe),
                    "step {step}"
                );
            }
        }
        let words = |sketch: &Sketch| sketch.blocks.iter().flat_map(|b| b.0).collect::<Vec<_>>();
        assert_eq!(words(&added), words(&incremented));
    }

    #[test]
    fn a_key_s_four_counters_are_in_four_words() {
        let sketch = Sketch::new(1024);
        for hash in 0..1000 {
            let (_, positions) = sketch.positions(hash);
            let mut words: Vec<usize> = positions.iter().map(|p| p.0).collect();
            words.dedup();
            assert_eq!(words.len(), 4);
        }
    }
}
