//! Candidate eviction policies, single-threaded simulators over u64 keys.
//!
//! Copied from the hit-ratio lab (`src/policy.rs`); the research record is
//! `docs/policy-research.md`. `S3Cfg::s3tlfu_adaptive()` ("S3-TLFU-A") is the recommended
//! policy, `S3Cfg::s3tlfu()` the fallback. The many `S3Cfg` knobs (see `parse_cfg`) are kept so
//! that any configuration from the research record can be rerun.
//!
//! All of them respect the constraint of the target concurrent cache: a *hit* only does a
//! (relaxed) store of a small per-entry counter (`freq`, 0..=max_freq). Everything else
//! (queues, ghost, sketch) is touched on the miss / insert / evict path only.
//! (`WTinyLfu` at the bottom is the exception: a reference that updates its sketch and LRU on
//! every hit; it is there to show what the constraint costs.)

use crate::trace::mix64;
use crate::{FastMap, Policy};
use std::collections::VecDeque;

// ---------------------------------------------------------------------------------------------
// Count-min sketch with 4-bit counters, periodic halving.
// ---------------------------------------------------------------------------------------------

pub struct Sketch {
    /// 4 rows; each row is `width` 4-bit counters packed 16 per u64.
    rows: [Vec<u64>; 4],
    mask: u64, // width - 1 (width is a power of two, in counters)
    adds: u64,
    sample: u64,
    /// Optional doorkeeper (bloom-ish bitset, cleared on reset): the first sighting of a key
    /// only sets the doorkeeper bit.
    door: Option<Vec<u64>>,
}

impl Sketch {
    /// `counters_per_entry` counters per cache entry per row (rounded to a power of two);
    /// halve every `sample_mult * cap` increments.
    pub fn new(cap: usize, counters_per_entry: usize, sample_mult: u64, doorkeeper: bool) -> Self {
        let width = (cap * counters_per_entry).max(64).next_power_of_two();
        let words = width / 16;
        Sketch {
            rows: [
                vec![0; words],
                vec![0; words],
                vec![0; words],
                vec![0; words],
            ],
            mask: width as u64 - 1,
            adds: 0,
            sample: sample_mult * cap as u64,
            door: if doorkeeper {
                Some(vec![0; (width / 64).max(1)])
            } else {
                None
            },
        }
    }
    #[inline]
    fn idx(&self, h: u64, row: usize) -> (usize, u32) {
        let hh = mix64(h ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(row as u64 + 1)));
        let c = hh & self.mask;
        ((c >> 4) as usize, ((c & 15) * 4) as u32)
    }
    fn door_bits(&self, h: u64) -> [(usize, u64); 2] {
        let n = self.door.as_ref().unwrap().len() as u64 * 64;
        let a = mix64(h ^ 0x1234_5678) % n;
        let b = mix64(h ^ 0x8765_4321) % n;
        [
            ((a / 64) as usize, 1 << (a % 64)),
            ((b / 64) as usize, 1 << (b % 64)),
        ]
    }
    pub fn estimate(&self, key: u64) -> u32 {
        let h = mix64(key);
        let mut m = 15u32;
        for r in 0..4 {
            let (w, s) = self.idx(h, r);
            m = m.min(((self.rows[r][w] >> s) & 15) as u32);
        }
        if let Some(d) = &self.door {
            let [(i, a), (j, b)] = self.door_bits(h);
            if d[i] & a != 0 && d[j] & b != 0 {
                m += 1;
            }
        }
        m
    }
    pub fn increment(&mut self, key: u64) {
        let h = mix64(key);
        if self.door.is_some() {
            let [(i, a), (j, b)] = self.door_bits(h);
            let d = self.door.as_mut().unwrap();
            if d[i] & a == 0 || d[j] & b == 0 {
                d[i] |= a;
                d[j] |= b;
                self.tick();
                return;
            }
        }
        // conservative update: only raise the minimum counters
        let mut cur = [0u32; 4];
        let mut pos = [(0usize, 0u32); 4];
        for r in 0..4 {
            pos[r] = self.idx(h, r);
            cur[r] = ((self.rows[r][pos[r].0] >> pos[r].1) & 15) as u32;
        }
        let m = *cur.iter().min().unwrap();
        if m < 15 {
            for r in 0..4 {
                if cur[r] == m {
                    self.rows[r][pos[r].0] += 1 << pos[r].1;
                }
            }
        }
        self.tick();
    }
    fn tick(&mut self) {
        self.adds += 1;
        if self.adds >= self.sample {
            for row in self.rows.iter_mut() {
                for w in row.iter_mut() {
                    *w = (*w >> 1) & 0x7777_7777_7777_7777;
                }
            }
            if let Some(d) = self.door.as_mut() {
                d.iter_mut().for_each(|x| *x = 0);
            }
            self.adds /= 2;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ghost FIFO of keys (in the port: of hashes / fingerprints).
// ---------------------------------------------------------------------------------------------

pub struct Ghost {
    cap: usize,
    map: FastMap<u64, u64>, // key -> insertion sequence number
    fifo: VecDeque<(u64, u64)>,
    seq: u64,
}

impl Ghost {
    pub fn new(cap: usize) -> Self {
        Ghost {
            cap,
            map: FastMap::default(),
            fifo: VecDeque::new(),
            seq: 0,
        }
    }
    #[allow(dead_code)] // lab API, unused by the tool
    pub fn insert(&mut self, k: u64) {
        self.insert_o(k, 0)
    }
    /// Insert with a 2-bit origin tag (0 = left small untested, 1 = rejected by the admission
    /// gate, 2 = evicted from main).
    pub fn insert_o(&mut self, k: u64, origin: u8) {
        if self.cap == 0 {
            return;
        }
        self.seq += 1;
        let tagged = self.seq << 2 | origin as u64;
        self.map.insert(k, tagged);
        self.fifo.push_back((k, tagged));
        while self.fifo.len() > self.cap {
            let (ok, os) = self.fifo.pop_front().unwrap();
            if self.map.get(&ok) == Some(&os) {
                self.map.remove(&ok);
            }
        }
    }
    /// Membership test; a hit removes the key from the ghost.
    #[allow(dead_code)] // lab API, unused by the tool
    pub fn take(&mut self, k: u64) -> bool {
        self.map.remove(&k).is_some()
    }
    /// Membership test returning the origin tag; a hit removes the key.
    pub fn take_origin(&mut self, k: u64) -> Option<u8> {
        self.map.remove(&k).map(|t| (t & 3) as u8)
    }
}

// ---------------------------------------------------------------------------------------------
// S3-FIFO family.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct S3Cfg {
    pub label: String,
    /// fraction of capacity for the small (probationary) FIFO
    pub small: f64,
    /// ghost size as a fraction of capacity
    pub ghost: f64,
    /// per-entry saturating counter maximum (3 = 2 bits)
    pub max_freq: u8,
    /// hits needed while in small to be promoted to main
    pub promote: u8,
    /// TinyLFU sketch: None = plain S3-FIFO
    pub sketch: Option<SketchCfg>,
    /// while main holds fewer than its share, entries leaving small are promoted even
    /// without hits (so a cold start fills main instead of cycling everything through small)
    pub fill_main: bool,
    /// adaptive small share (ARC-style, miss path only): a ghost hit on a key that left small
    /// untested grows the small target by `adapt_step` entries; a ghost hit on a key evicted
    /// from main (needs `ghost_main`) or, with `adapt_rej`, on a key rejected by the gate
    /// shrinks it. Bounds: [adapt_min, adapt_max] × capacity. 0 step = off.
    pub adapt_step: f64,
    pub adapt_min: f64,
    pub adapt_max: f64,
    pub adapt_rej: bool,
    /// also put keys evicted from main into the ghost (tagged), re-inserted into main on return
    pub ghost_main: bool,
    /// hill-climb the small share (Caffeine-style) on the hit ratio of each period of
    /// `climb` × capacity requests (0 = off). Needs a request/hit count (not per-entry).
    pub climb: f64,
    /// climber: initial step as a fraction of capacity; minimum period in requests
    pub climb_step: f64,
    pub climb_min: f64,
    /// climber measures hits through the folded per-entry hit counters (miss path only)
    /// instead of counting hits on the hit path
    pub climb_proxy: bool,
    /// climber: do not move during warm-up (until the cache is full, then one period that
    /// only records the baseline hit ratio)
    pub climb_warm: bool,
}

#[derive(Clone, Debug)]
pub struct SketchCfg {
    pub counters_per_entry: usize,
    pub sample_mult: u64,
    pub doorkeeper: bool,
    /// a small-queue entry with no hits is still promoted (subject to the admission test) if
    /// its sketch estimate is >= this (i.e. it was missed before)
    pub promote_min: u32,
    /// apply the admission test (candidate estimate > main victim estimate) also to
    /// entries promoted by hits in small
    pub gate_hit_promotions: bool,
    /// apply the admission test to ghost hits as well
    pub gate_ghost: bool,
    /// when the main CLOCK hand skips an entry with freq > 0, add its freq to the sketch
    pub fold_hits: bool,
    /// per-entry 4-bit hit counter (besides the 2-bit CLOCK freq), folded into the sketch when
    /// the hand passes the entry or it leaves small; the admission test uses
    /// sketch(victim) + unfolded hits(victim). Replaces `fold_hits`' use of freq.
    pub lazy_hits: bool,
    /// with lazy_hits: on every miss, a separate cursor walks this many slots of the entry
    /// array and folds their unfolded hits into the sketch (keeps residents' counts current)
    pub fold_rate: u32,
    /// admission requires estimate(candidate) > estimate(victim) + margin
    pub margin: u32,
    /// extra margin for the ghost-hit admission test only (the candidate's current access is
    /// already in its estimate there, the victim's next access is not)
    pub ghost_margin: u32,
    /// on a miss that is not a ghost hit, insert straight into main if the key passes the
    /// admission test (estimate incl. this access > victim + margin + direct_margin)
    pub direct: bool,
    pub direct_margin: u32,
}

impl S3Cfg {
    pub fn s3fifo() -> Self {
        S3Cfg {
            label: "S3-FIFO".into(),
            small: 0.1,
            ghost: 0.9,
            max_freq: 3,
            promote: 1,
            sketch: None,
            fill_main: false,
            adapt_step: 0.0,
            adapt_min: 0.01,
            adapt_max: 0.5,
            adapt_rej: false,
            ghost_main: false,
            climb: 0.0,
            climb_step: 0.0625,
            climb_min: 0.0,
            climb_proxy: false,
            climb_warm: false,
        }
    }
    /// The recommended configuration ("S3-TLFU"): S3-FIFO + TinyLFU admission gate on every
    /// entry into main, sketch fed by misses and lazily folded per-entry hit counts.
    pub fn s3tlfu() -> Self {
        parse_cfg("sk=1,lazy=1,fill=1,gate=1,gg=0,margin=1")
            .map(|mut c| {
                c.label = "S3-TLFU".into();
                c
            })
            .unwrap()
    }
    /// S3-TLFU with an adaptive small share: start at 5%, hill-climb on a hit-ratio proxy
    /// measured entirely on the miss path (folded per-entry hit counts; fold cursor 2/miss).
    pub fn s3tlfu_adaptive() -> Self {
        parse_cfg("sk=1,lazy=1,fill=1,gate=1,gg=0,margin=1,small=0.05,climb=10,amin=0.001,cstep=0.02,cmin=20000,cproxy=1,frate=2,cwarm=1")
            .map(|mut c| { c.label = "S3-TLFU-A".into(); c }).unwrap()
    }
    pub fn s3lfu() -> Self {
        S3Cfg {
            label: "S3-LFU".into(),
            sketch: Some(SketchCfg {
                counters_per_entry: 4,
                sample_mult: 10,
                doorkeeper: false,
                promote_min: 2,
                gate_hit_promotions: false,
                gate_ghost: false,
                fold_hits: true,
                lazy_hits: false,
                fold_rate: 0,
                margin: 0,
                ghost_margin: 0,
                direct: false,
                direct_margin: 0,
            }),
            ..Self::s3fifo()
        }
    }
}

const SMALL: u8 = 0;
const MAIN: u8 = 1;

pub struct S3 {
    cfg: S3Cfg,
    cap: usize,
    small_cap: usize,
    small_target: f64,
    map: FastMap<u64, u32>,
    key: Vec<u64>,
    freq: Vec<u8>,
    hits: Vec<u8>,
    queue: Vec<u8>,
    free: Vec<u32>,
    small: VecDeque<u32>,
    main: VecDeque<u32>,
    ghost: Ghost,
    sketch: Option<Sketch>,
    fold_cursor: usize,
    climb_reqs: u64,
    climb_hits: u64,
    climb_prev: f64,
    climb_step: f64,
    climb_dir: f64,
    /// debug counters: [promote_by_hit, promote_by_sketch, promote_by_fill, ghost_to_main, main_evictions, admit_tests, admit_yes]
    pub stats: [u64; 7],
}

impl S3 {
    pub fn new(cap: usize, cfg: S3Cfg) -> Self {
        let small_cap =
            ((cap as f64 * cfg.small).round() as usize).clamp(1, cap.saturating_sub(1).max(1));
        let ghost = Ghost::new((cap as f64 * cfg.ghost).round() as usize);
        let sketch = cfg
            .sketch
            .as_ref()
            .map(|s| Sketch::new(cap, s.counters_per_entry, s.sample_mult, s.doorkeeper));
        let mut map = FastMap::default();
        // Preallocate at most 1M slots: a huge capacity grows on demand instead of failing up front.
        let pre = cap.min(1 << 20);
        map.reserve(pre + 1);
        S3 {
            cfg,
            cap,
            small_cap,
            small_target: small_cap as f64,
            map,
            key: Vec::with_capacity(pre),
            freq: Vec::with_capacity(pre),
            hits: Vec::with_capacity(pre),
            queue: Vec::with_capacity(pre),
            free: Vec::new(),
            small: VecDeque::with_capacity(pre),
            main: VecDeque::with_capacity(pre),
            ghost,
            sketch,
            fold_cursor: 0,
            climb_reqs: 0,
            climb_hits: 0,
            climb_prev: -1.0,
            climb_step: 0.0,
            climb_dir: -1.0,
            stats: [0; 7],
        }
    }

    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }

    /// Fold an entry's unfolded hits into the sketch (lazy_hits) and reset them.
    fn fold(&mut self, i: u32) {
        let n = std::mem::take(&mut self.hits[i as usize]);
        if self.cfg.climb_proxy {
            self.climb_hits += n as u64;
            self.climb_reqs += n as u64;
        }
        if let Some(sk) = self.sketch.as_mut() {
            for _ in 0..n {
                sk.increment(self.key[i as usize]);
            }
        }
    }

    #[allow(dead_code)] // used by the lab's `grid` sweeps
    pub fn small_cap_now(&self) -> usize {
        self.small_cap
    }

    fn climb_tick(&mut self) {
        if self.climb_step == 0.0 {
            self.climb_step = self.cap as f64 * self.cfg.climb_step;
        }
        if self.cfg.climb_warm && self.climb_prev < 0.0 {
            // warm-up: wait until full, then measure one baseline period without moving
            if self.len() < self.cap {
                self.climb_reqs = 0;
                self.climb_hits = 0;
                return;
            }
        }
        if self.climb_reqs as f64 >= (self.cfg.climb * self.cap as f64).max(self.cfg.climb_min) {
            let hr = self.climb_hits as f64 / self.climb_reqs as f64;
            if self.cfg.climb_warm && self.climb_prev < 0.0 {
                self.climb_prev = hr;
                self.climb_reqs = 0;
                self.climb_hits = 0;
                return;
            }
            let delta = hr - self.climb_prev.max(0.0);
            if delta < 0.0 {
                self.climb_dir = -self.climb_dir;
            }
            if delta.abs() > 0.05 {
                self.climb_step = self.cap as f64 * self.cfg.climb_step;
            } else {
                self.climb_step *= 0.98;
            }
            self.climb_prev = hr;
            let c = self.cap as f64;
            self.small_target = (self.small_target + self.climb_dir * self.climb_step)
                .clamp((c * self.cfg.adapt_min).max(1.0), c * self.cfg.adapt_max);
            self.small_cap = self.small_target.round() as usize;
            self.climb_reqs = 0;
            self.climb_hits = 0;
        }
    }

    fn lazy(&self) -> bool {
        self.cfg.sketch.as_ref().is_some_and(|s| s.lazy_hits)
    }

    /// Run the main CLOCK hand until the head has freq 0; returns that victim (not removed).
    fn main_victim(&mut self) -> Option<u32> {
        loop {
            let &h = self.main.front()?;
            let f = self.freq[h as usize];
            if f == 0 {
                return Some(h);
            }
            self.main.pop_front();
            self.freq[h as usize] = f - 1;
            if self.lazy() {
                self.fold(h);
            } else if let (Some(sk), Some(sc)) = (self.sketch.as_mut(), self.cfg.sketch.as_ref()) {
                if sc.fold_hits {
                    sk.increment(self.key[h as usize]);
                }
            }
            self.main.push_back(h);
        }
    }

    /// TinyLFU admission test of `cand` against main's next victim. Admit if main has room.
    fn admit(&mut self, cand: u64) -> bool {
        self.admit_m(cand, 0)
    }

    fn admit_m(&mut self, cand: u64, extra: u32) -> bool {
        let main_cap = self.cap - self.small_cap;
        if self.main.len() < main_cap {
            return true;
        }
        let Some(v) = self.main_victim() else {
            return true;
        };
        self.stats[5] += 1;
        let sk = self.sketch.as_ref().unwrap();
        let unfolded = if self.lazy() {
            self.hits[v as usize] as u32
        } else {
            0
        };
        let ve = sk.estimate(self.key[v as usize]) + unfolded;
        let r = sk.estimate(cand) > ve + self.cfg.sketch.as_ref().unwrap().margin + extra;
        if r {
            self.stats[6] += 1;
        }
        r
    }

    fn remove_slot(&mut self, i: u32) {
        self.map.remove(&self.key[i as usize]);
        self.free.push(i);
    }

    /// Free exactly one slot.
    fn evict_one(&mut self) {
        loop {
            if self.small.len() >= self.small_cap || self.main.is_empty() {
                let Some(t) = self.small.pop_front() else {
                    break;
                };
                let k = self.key[t as usize];
                let f = self.freq[t as usize];
                let promote = if f >= self.cfg.promote {
                    match &self.cfg.sketch {
                        Some(sc) if sc.gate_hit_promotions => self.admit(k),
                        _ => true,
                    }
                } else if let Some(sc) = &self.cfg.sketch {
                    let min = sc.promote_min;
                    self.sketch.as_ref().unwrap().estimate(k) >= min && self.admit(k)
                } else {
                    false
                } || (self.cfg.fill_main
                    && self.main.len() < self.cap - self.small_cap);
                if self.lazy() {
                    self.fold(t);
                } else if let (Some(sk), Some(sc)) =
                    (self.sketch.as_mut(), self.cfg.sketch.as_ref())
                {
                    if sc.fold_hits {
                        for _ in 0..f {
                            sk.increment(k);
                        }
                    }
                }
                if promote {
                    self.stats[if f >= self.cfg.promote {
                        0
                    } else if self.cfg.fill_main && self.main.len() < self.cap - self.small_cap {
                        2
                    } else {
                        1
                    }] += 1;
                    self.freq[t as usize] = 0;
                    self.queue[t as usize] = MAIN;
                    self.main.push_back(t);
                    continue;
                }
                let tested = f >= self.cfg.promote
                    || self.cfg.sketch.as_ref().is_some_and(|sc| {
                        self.sketch.as_ref().unwrap().estimate(k) >= sc.promote_min
                    });
                self.ghost.insert_o(
                    k,
                    if tested && self.cfg.sketch.is_some() {
                        1
                    } else {
                        0
                    },
                );
                self.remove_slot(t);
                return;
            } else {
                let v = self.main_victim().unwrap();
                self.stats[4] += 1;
                self.main.pop_front();
                if self.cfg.ghost_main {
                    self.ghost.insert_o(self.key[v as usize], 2);
                }
                self.remove_slot(v);
                return;
            }
        }
    }

    fn insert(&mut self, k: u64, q: u8) {
        let i = if let Some(i) = self.free.pop() {
            self.key[i as usize] = k;
            self.freq[i as usize] = 0;
            self.hits[i as usize] = 0;
            self.queue[i as usize] = q;
            i
        } else {
            self.key.push(k);
            self.freq.push(0);
            self.hits.push(0);
            self.queue.push(q);
            (self.key.len() - 1) as u32
        };
        self.map.insert(k, i);
        if q == SMALL {
            self.small.push_back(i)
        } else {
            self.main.push_back(i)
        }
    }
}

impl Policy for S3 {
    fn name(&self) -> String {
        self.cfg.label.clone()
    }
    fn access(&mut self, k: u64) -> bool {
        if self.cfg.climb > 0.0 && !self.cfg.climb_proxy {
            self.climb_reqs += 1;
            self.climb_tick();
        }
        if let Some(&i) = self.map.get(&k) {
            if !self.cfg.climb_proxy {
                self.climb_hits += 1;
            }
            let f = &mut self.freq[i as usize];
            if *f < self.cfg.max_freq {
                *f += 1; // the only thing a hit does (plus, with lazy_hits, the 4-bit hit count)
            }
            let h = &mut self.hits[i as usize];
            if *h < 15 {
                *h += 1;
            }
            return true;
        }
        if self.cfg.climb > 0.0 && self.cfg.climb_proxy {
            self.climb_reqs += 1;
            self.climb_tick();
        }
        if let Some(sk) = self.sketch.as_mut() {
            sk.increment(k);
        }
        let rate = self
            .cfg
            .sketch
            .as_ref()
            .map_or(0, |s| if s.lazy_hits { s.fold_rate } else { 0 });
        for _ in 0..rate {
            if self.key.is_empty() {
                break;
            }
            self.fold_cursor = (self.fold_cursor + 1) % self.key.len();
            let c = self.fold_cursor as u32;
            if self.map.get(&self.key[c as usize]) == Some(&c) {
                self.fold(c);
            }
        }
        let origin = self.ghost.take_origin(k);
        let ghost_hit = origin.is_some();
        if self.cfg.adapt_step > 0.0 {
            if let Some(o) = origin {
                let c = self.cap as f64;
                let d = match o {
                    0 => self.cfg.adapt_step,
                    1 if self.cfg.adapt_rej => -self.cfg.adapt_step,
                    2 => -self.cfg.adapt_step,
                    _ => 0.0,
                };
                self.small_target = (self.small_target + d)
                    .clamp((c * self.cfg.adapt_min).max(1.0), c * self.cfg.adapt_max);
                self.small_cap = self.small_target.round() as usize;
            }
        }
        let to_main = ghost_hit
            && match &self.cfg.sketch {
                // the admission test only once the cache is full, so that it sees a full main
                Some(sc) if sc.gate_ghost && self.len() >= self.cap => {
                    self.admit_m(k, sc.ghost_margin)
                }
                _ => true,
            };
        let to_main = to_main
            || match &self.cfg.sketch {
                Some(sc) if sc.direct && !ghost_hit && self.len() >= self.cap => {
                    let m = sc.direct_margin;
                    self.sketch.as_ref().unwrap().estimate(k) >= 2 && self.admit_m(k, m)
                }
                _ => false,
            };
        if self.len() >= self.cap {
            if to_main {
                // S3-FIFO: a ghost hit goes to main; free a main slot if main is at its share
                self.evict_one();
            } else {
                self.evict_one();
            }
        }
        if to_main {
            self.stats[3] += 1;
        }
        self.insert(k, if to_main { MAIN } else { SMALL });
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Reference: W-TinyLFU (Caffeine-style, fixed 1% window, SLRU 20/80 main, sketch on every
// access). Violates the "hit = one relaxed store" constraint; shown for comparison only.
// ---------------------------------------------------------------------------------------------

pub struct WTinyLfu {
    win: crate::lru::Lru2,
    prob: crate::lru::Lru2,
    prot: crate::lru::Lru2,
    win_cap: usize,
    prot_cap: usize,
    main_cap: usize,
    sketch: Sketch,
}

impl WTinyLfu {
    pub fn new(cap: usize, window: f64) -> Self {
        let win_cap = ((cap as f64 * window).round() as usize).max(1);
        let main_cap = cap - win_cap;
        WTinyLfu {
            win: crate::lru::Lru2::default(),
            prob: crate::lru::Lru2::default(),
            prot: crate::lru::Lru2::default(),
            win_cap,
            prot_cap: (main_cap as f64 * 0.8) as usize,
            main_cap,
            sketch: Sketch::new(cap, 4, 10, true),
        }
    }
}

impl Policy for WTinyLfu {
    fn name(&self) -> String {
        "W-TinyLFU(ref)".into()
    }
    fn access(&mut self, k: u64) -> bool {
        self.sketch.increment(k);
        if self.win.touch(k) || self.prot.touch(k) {
            return true;
        }
        if self.prob.remove(k) {
            self.prot.push(k);
            if self.prot.len() > self.prot_cap {
                let d = self.prot.pop_lru().unwrap();
                self.prob.push(d);
            }
            return true;
        }
        self.win.push(k);
        if self.win.len() > self.win_cap {
            let c = self.win.pop_lru().unwrap();
            if self.prob.len() + self.prot.len() < self.main_cap {
                self.prob.push(c);
            } else {
                let v = self
                    .prob
                    .peek_lru()
                    .or_else(|| self.prot.peek_lru())
                    .unwrap();
                if self.sketch.estimate(c) > self.sketch.estimate(v) {
                    if !self.prob.remove(v) {
                        self.prot.remove(v);
                    }
                    self.prob.push(c);
                }
            }
        }
        false
    }
}

/// Parse a compact config spec, e.g. `small=0.1,ghost=0.9,sk=1,pmin=2,lazy=1,fill=1`.
/// Keys: small, ghost, maxf, promote, fill, sk (0/1), cpe, samp, door, pmin, gate, gg, fold, lazy.
pub fn parse_cfg(spec: &str) -> Result<S3Cfg, String> {
    let mut c = S3Cfg::s3fifo();
    let mut sk = match S3Cfg::s3lfu().sketch {
        Some(s) => s,
        None => unreachable!(),
    };
    let mut use_sk = false;
    for kv in spec.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or(format!("bad item {kv}"))?;
        let f: f64 = v.parse().map_err(|_| format!("bad value {kv}"))?;
        let b = f != 0.0;
        match k {
            "small" => c.small = f,
            "ghost" => c.ghost = f,
            "maxf" => c.max_freq = f as u8,
            "promote" => c.promote = f as u8,
            "fill" => c.fill_main = b,
            "astep" => c.adapt_step = f,
            "amin" => c.adapt_min = f,
            "amax" => c.adapt_max = f,
            "arej" => c.adapt_rej = b,
            "gm" => c.ghost_main = b,
            "climb" => c.climb = f,
            "cstep" => c.climb_step = f,
            "cmin" => c.climb_min = f,
            "cproxy" => c.climb_proxy = b,
            "cwarm" => c.climb_warm = b,
            "sk" => use_sk = b,
            "cpe" => sk.counters_per_entry = f as usize,
            "samp" => sk.sample_mult = f as u64,
            "door" => sk.doorkeeper = b,
            "pmin" => sk.promote_min = f as u32,
            "gate" => sk.gate_hit_promotions = b,
            "gg" => sk.gate_ghost = b,
            "fold" => sk.fold_hits = b,
            "lazy" => sk.lazy_hits = b,
            "frate" => sk.fold_rate = f as u32,
            "margin" => sk.margin = f as u32,
            "gmargin" => sk.ghost_margin = f as u32,
            "direct" => sk.direct = b,
            "dmargin" => sk.direct_margin = f as u32,
            _ => return Err(format!("unknown key {k}")),
        }
    }
    c.sketch = if use_sk { Some(sk) } else { None };
    c.label = spec.to_string();
    Ok(c)
}

/// The candidate simulators printed by `--candidates` (the same list as the lab's `sim`).
pub fn candidates(cap: usize) -> Vec<Box<dyn Policy>> {
    let mut fill = parse_cfg("fill=1").expect("valid spec");
    fill.label = "S3-FIFO+fill".into();
    let mut gg = parse_cfg("sk=1,lazy=1,fill=1,gate=1,gg=1").expect("valid spec");
    gg.label = "S3-TLFU-gg".into();
    vec![
        Box::new(S3::new(cap, S3Cfg::s3fifo())),
        Box::new(S3::new(cap, fill)),
        Box::new(S3::new(cap, S3Cfg::s3tlfu())),
        Box::new(S3::new(cap, S3Cfg::s3tlfu_adaptive())),
        Box::new(S3::new(cap, gg)),
        Box::new(WTinyLfu::new(cap, 0.01)),
    ]
}
