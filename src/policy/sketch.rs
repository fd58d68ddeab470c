//! A count-min sketch of 4-bit counters: how often a key was asked for recently, for TinyLFU
//! admission into the main queue.
//!
//! Four rows of `width` counters, 16 packed per `u64`. An increment raises only the row counters
//! equal to the current minimum (conservative update), saturating at 15. After `20 × entries`
//! increments every counter is halved, so old popularity fades.

/// Counters per expected entry, per row.
const COUNTERS_PER_ENTRY: usize = 4;
/// Halve every counter after this many increments per expected entry. Caffeine's 10 measured
/// lower here: 20 gained 0.1 to 0.4 points on OLTP, P3, sprite, scarab and orm-night, and lost
/// at most 0.13 elsewhere (zigzag, within its run-to-run spread, aside); 40 lost 1.3 on
/// OLTP @ 2,000 (`docs/policy-research.md` §7.1).
const AGING_PERIOD_PER_ENTRY: u64 = 20;

pub(super) struct Sketch {
    rows: [Box<[u64]>; 4],
    /// `width - 1`; the width is a power of two (in counters).
    mask: u64,
    increments: u64,
    aging_period: u64,
}

/// splitmix64's finalizer: spreads the key's hash differently for each row.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Sketch {
    /// A sketch for a cache of about `entries` entries.
    pub(super) fn new(entries: usize) -> Self {
        let width = (entries * COUNTERS_PER_ENTRY).max(64).next_power_of_two();
        let row = || vec![0u64; width / 16].into_boxed_slice();
        Sketch {
            rows: [row(), row(), row(), row()],
            mask: width as u64 - 1,
            increments: 0,
            aging_period: AGING_PERIOD_PER_ENTRY * entries.max(1) as u64,
        }
    }

    /// Word index and bit shift of `hash`'s counter in `row`.
    #[inline]
    fn position(&self, hash: u64, row: usize) -> (usize, u32) {
        let counter = mix(hash ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(row as u64 + 1)) & self.mask;
        ((counter >> 4) as usize, ((counter & 15) * 4) as u32)
    }

    /// How often `hash` was seen (an over-estimate, 0..=15).
    pub(super) fn estimate(&self, hash: u64) -> u32 {
        (0..4)
            .map(|row| {
                let (word, shift) = self.position(hash, row);
                ((self.rows[row][word] >> shift) & 15) as u32
            })
            .min()
            .unwrap_or(0)
    }

    pub(super) fn increment(&mut self, hash: u64) {
        let positions: [(usize, u32); 4] = std::array::from_fn(|row| self.position(hash, row));
        let counts: [u64; 4] = std::array::from_fn(|row| {
            let (word, shift) = positions[row];
            (self.rows[row][word] >> shift) & 15
        });
        let min = counts.iter().copied().min().unwrap_or(0);
        if min < 15 {
            for row in 0..4 {
                if counts[row] == min {
                    let (word, shift) = positions[row];
                    self.rows[row][word] += 1 << shift;
                }
            }
        }
        self.increments += 1;
        if self.increments >= self.aging_period {
            for row in self.rows.iter_mut() {
                for word in row.iter_mut() {
                    *word = (*word >> 1) & 0x7777_7777_7777_7777;
                }
            }
            self.increments /= 2;
        }
    }
}
