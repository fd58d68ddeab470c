//! Seeded Zipf(s) key streams (rejection-inversion sampling, Hörmann & Derflinger), with a
//! splitmix64 generator so every run replays the same keys without extra crates.

/// splitmix64's finalizer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf(s) over the ranks 1..=n.
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Self {
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h(1.5) - 1.0;
        z.h_n = z.h(n as f64 + 0.5);
        z.cut = 1.0 - z.h_inv(z.h(1.5) - 2f64.powf(-s));
        z
    }

    fn h(&self, x: f64) -> f64 {
        let e = 1.0 - self.s;
        if e.abs() < 1e-12 {
            x.ln()
        } else {
            (x.powf(e) - 1.0) / e
        }
    }

    fn h_inv(&self, x: f64) -> f64 {
        let e = 1.0 - self.s;
        if e.abs() < 1e-12 {
            x.exp()
        } else {
            (1.0 + e * x).powf(1.0 / e)
        }
    }

    /// A rank in 1..=n (1 is the most popular).
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_n + rng.next_f64() * (self.h_x1 - self.h_n);
            let x = self.h_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h(k + 0.5) - k.powf(-self.s) {
                return k as u64;
            }
        }
    }
}

/// `len` keys in `0..n` drawn Zipf(s): key `rank - 1`, so the hottest key is 0.
pub fn stream(n: u64, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(n, s);
    let mut rng = Rng::new(seed);
    (0..len).map(|_| zipf.sample(&mut rng) - 1).collect()
}

/// The hit ratio an oracle that keeps the `capacity` most popular of `n` keys would reach on a
/// Zipf(s) stream.
pub fn static_optimal(n: u64, s: f64, capacity: u64) -> f64 {
    let weight = |k: u64| (k as f64).powf(-s);
    let top: f64 = (1..=capacity.min(n)).map(weight).sum();
    let all: f64 = top + (capacity.min(n) + 1..=n).map(weight).sum::<f64>();
    top / all
}
