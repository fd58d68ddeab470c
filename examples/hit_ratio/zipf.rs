//! Seeded Zipf(s) generator over 1..=n (rejection-inversion, Hörmann & Derflinger), plus a
//! splitmix64/xorshift PRNG so results are reproducible without extra crates.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        crate::trace::mix64(self.0)
    }
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}
impl Zipf {
    pub fn new(n: u64, s: f64) -> Self {
        let n = n as f64;
        let mut z = Zipf {
            n,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h(1.5) - 1.0;
        z.h_n = z.h(n + 0.5);
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
    /// Returns a rank in 1..=n (1 = most popular).
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

/// The churn workload: Zipf(0.99) over 1M keys, `len` requests, seeded. Keys are scrambled
/// ranks so that key order carries no popularity information.
pub fn zipf_trace(n: u64, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let z = Zipf::new(n, s);
    let mut r = Rng::new(seed);
    (0..len)
        .map(|_| crate::trace::mix64(z.sample(&mut r) ^ 0x5bd1_e995))
        .collect()
}
