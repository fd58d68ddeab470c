//! The performance suite's workloads, shared by the criterion benches (`bench/benches/peers.rs`) and
//! the side-by-side `compare` example, so both measure exactly the same thing.
//!
//! Every workload replays pre-generated Zipf(0.99) key streams, one per thread (thread `t` always
//! gets stream `t`, whatever the implementation), against cascache and its peers:
//!
//! | workload | keys | operations | implementations |
//! |---|---|---|---|
//! | `read-mostly` | 100K, all fit | 95% get, 5% insert (every 20th op) | all maps and caches |
//! | `churn` | 1M, capacity 100K | get; insert on a miss (hit ratio reported) | the caches and a `Mutex<LruCache>` |
//! | `cas-1` | 1 | increments, each implementation's best read-modify-write | cascache `gets` + `compare_and_swap` (and `update`), papaya `update`, dashmap `get_mut`, scc `update_sync`, moka `and_compute_with`, `Mutex<HashMap>` |
//! | `cas-1k` | 1,000 | as `cas-1` | as `cas-1` |
//! | `write-heavy` | 100K | insert and remove, alternating | all maps and caches |
//!
//! The bounded caches get a capacity of 125% of the key space where all keys must fit (so a
//! sharded capacity never evicts), and 100K in `churn`. Every implementation hashes with
//! `ahash::RandomState`.

pub mod peers;
pub mod zipf;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use self::peers::{Counter, Map};

/// The Zipf exponent of every key stream.
pub const ZIPF_S: f64 = 0.99;
/// `churn`: the cache's capacity.
pub const CHURN_CAPACITY: u64 = 100_000;
/// `churn`: requests each thread replays before the first measurement (from an empty cache):
/// one pass over its stream, so the hit ratio is measured in steady state. The frequency-based
/// policies converge over several times the capacity in requests. With 2^19 per thread,
/// cascache's hit ratio was still rising: 81.65% in 200 ms rounds, 82.30% in 1 s rounds, and
/// 82.79% after 2^21. So a cache doing fewer operations per round looked worse than it is.
/// quick_cache stayed at 82.2–82.3% throughout.
pub const CHURN_WARMUP: u64 = 1 << 21;

/// How long one measurement runs.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// This many operations per thread.
    Ops(u64),
    /// This long (threads check a stop flag every few hundred operations).
    Time(Duration),
}

/// What one measurement counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub ops: u64,
    /// Reads that hit (`churn`; 0 elsewhere).
    pub hits: u64,
    pub elapsed: Duration,
}

impl Sample {
    /// Millions of operations per second.
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    ReadMostly,
    Churn,
    Cas1,
    Cas1k,
    WriteHeavy,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::ReadMostly,
        Workload::Churn,
        Workload::Cas1,
        Workload::Cas1k,
        Workload::WriteHeavy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::ReadMostly => "read-mostly",
            Workload::Churn => "churn",
            Workload::Cas1 => "cas-1",
            Workload::Cas1k => "cas-1k",
            Workload::WriteHeavy => "write-heavy",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Workload::ReadMostly => "100K keys, all fit; 95% get / 5% insert",
            Workload::Churn => "1M keys, capacity 100K; get, insert on a miss",
            Workload::Cas1 => "1 key; read-modify-write increments",
            Workload::Cas1k => "1,000 keys; read-modify-write increments",
            Workload::WriteHeavy => "100K keys; insert / remove alternating",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// How many distinct keys the streams draw from.
    pub fn keys(self) -> u64 {
        match self {
            Workload::ReadMostly | Workload::WriteHeavy => 100_000,
            Workload::Churn => 1_000_000,
            Workload::Cas1 => 1,
            Workload::Cas1k => 1_000,
        }
    }

    /// The implementations run on this workload, cascache first.
    pub fn peers(self) -> &'static [&'static str] {
        match self {
            Workload::ReadMostly | Workload::WriteHeavy => &[
                "cascache",
                "moka",
                "quick_cache",
                "papaya",
                "scc",
                "dashmap",
                "Mutex<HashMap>",
            ],
            Workload::Churn => &["cascache", "moka", "quick_cache", "Mutex<LruCache>"],
            Workload::Cas1 | Workload::Cas1k => &[
                "cascache",
                "cascache update",
                "moka",
                "papaya",
                "scc",
                "dashmap",
                "Mutex<HashMap>",
            ],
        }
    }

    /// Keys per thread's stream (a power of two; a stream is replayed cyclically).
    fn stream_len(self) -> usize {
        match self {
            Workload::Churn => 1 << 21,
            Workload::Cas1 => 1,
            _ => 1 << 20,
        }
    }

    /// One key stream per thread, thread `t` seeded with `t`.
    pub fn streams(self, threads: usize) -> Arc<Vec<Vec<u64>>> {
        Arc::new(
            (0..threads)
                .map(|t| zipf::stream(self.keys(), ZIPF_S, self.stream_len(), 0x5eed + t as u64))
                .collect(),
        )
    }

    /// `peer` set up for this workload (filled, or warmed up for `churn`), ready to run on up to
    /// `streams.len()` threads.
    pub fn case(self, peer: &str, streams: &Arc<Vec<Vec<u64>>>) -> Box<dyn Case> {
        let fit = self.keys() * 5 / 4;
        let streams = Arc::clone(streams);
        let unknown = || -> ! { panic!("{peer} does not run {}", self.name()) };
        match self {
            Workload::ReadMostly | Workload::WriteHeavy => match peer {
                "cascache" => map_case(self, peer, peers::cascache(fit), streams),
                "moka" => map_case(self, peer, peers::moka(fit), streams),
                "quick_cache" => map_case(self, peer, peers::quick_cache(fit), streams),
                "papaya" => map_case(self, peer, peers::papaya(fit as usize), streams),
                "scc" => map_case(self, peer, peers::scc(fit as usize), streams),
                "dashmap" => map_case(self, peer, peers::dashmap(fit as usize), streams),
                "Mutex<HashMap>" => map_case(self, peer, peers::mutex_map(fit as usize), streams),
                _ => unknown(),
            },
            Workload::Churn => {
                let capacity = CHURN_CAPACITY;
                match peer {
                    "cascache" => map_case(self, peer, peers::cascache(capacity), streams),
                    "moka" => map_case(self, peer, peers::moka(capacity), streams),
                    "quick_cache" => map_case(self, peer, peers::quick_cache(capacity), streams),
                    "Mutex<LruCache>" => {
                        map_case(self, peer, peers::mutex_lru(capacity as usize), streams)
                    }
                    _ => unknown(),
                }
            }
            Workload::Cas1 | Workload::Cas1k => match peer {
                "cascache" => counter_case(self, peer, peers::cascache(fit), streams),
                "cascache update" => counter_case(
                    self,
                    peer,
                    peers::CascacheUpdate(peers::cascache(fit)),
                    streams,
                ),
                "moka" => counter_case(self, peer, peers::moka(fit), streams),
                "papaya" => counter_case(self, peer, peers::papaya(fit as usize), streams),
                "scc" => counter_case(self, peer, peers::scc(fit as usize), streams),
                "dashmap" => counter_case(self, peer, peers::dashmap(fit as usize), streams),
                "Mutex<HashMap>" => {
                    counter_case(self, peer, peers::mutex_map(fit as usize), streams)
                }
                _ => unknown(),
            },
        }
    }
}

fn map_case<M: Map + Send + 'static>(
    workload: Workload,
    peer: &str,
    target: M,
    streams: Arc<Vec<Vec<u64>>>,
) -> Box<dyn Case> {
    Box::new(MapCase::new(workload, peer, target, streams))
}

fn counter_case<C: Counter + Send + 'static>(
    workload: Workload,
    peer: &str,
    target: C,
    streams: Arc<Vec<Vec<u64>>>,
) -> Box<dyn Case> {
    Box::new(CounterCase::new(workload, peer, target, streams))
}

/// One implementation on one workload, with its state (contents, stream positions) kept from one
/// measurement to the next.
pub trait Case {
    fn peer(&self) -> &str;
    /// Runs the workload on `threads` threads (at most the number of streams).
    fn run(&mut self, threads: usize, until: Until) -> Sample;
    /// Checks the implementation computed what it should have (counters: no lost increment).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

struct MapCase<M> {
    workload: Workload,
    peer: String,
    target: M,
    streams: Arc<Vec<Vec<u64>>>,
    cursors: Vec<usize>,
}

impl<M: Map> MapCase<M> {
    fn new(workload: Workload, peer: &str, target: M, streams: Arc<Vec<Vec<u64>>>) -> Self {
        let mut case = MapCase {
            workload,
            peer: peer.to_string(),
            target,
            cursors: vec![0; streams.len()],
            streams,
        };
        match workload {
            Workload::Churn => {
                let threads = case.streams.len();
                case.run(threads, Until::Ops(CHURN_WARMUP));
            }
            _ => {
                for key in 0..workload.keys() {
                    case.target.insert(key, key);
                }
            }
        }
        case
    }
}

/// Runs `op` on a concrete target type, so every implementation's loop is compiled for it
/// (no virtual call per operation).
fn drive_map<M: Map>(
    workload: Workload,
    target: &M,
    streams: &[Vec<u64>],
    cursors: &mut [usize],
    until: Until,
) -> Sample {
    match workload {
        Workload::ReadMostly => drive(target, streams, cursors, until, |m, key, i| {
            if i % 20 == 0 {
                m.insert(key, i as u64);
                false
            } else {
                m.get(key)
            }
        }),
        Workload::Churn => drive(target, streams, cursors, until, |m, key, _| {
            m.get(key) || {
                m.insert(key, key);
                false
            }
        }),
        Workload::WriteHeavy => drive(target, streams, cursors, until, |m, key, i| {
            if i % 2 == 0 {
                m.insert(key, key);
            } else {
                m.remove(key);
            }
            false
        }),
        Workload::Cas1 | Workload::Cas1k => unreachable!("counters are CounterCase"),
    }
}

impl<M: Map> Case for MapCase<M> {
    fn peer(&self) -> &str {
        &self.peer
    }

    fn run(&mut self, threads: usize, until: Until) -> Sample {
        let cursors = &mut self.cursors[..threads];
        drive_map(self.workload, &self.target, &self.streams, cursors, until)
    }
}

struct CounterCase<C> {
    peer: String,
    target: C,
    keys: u64,
    streams: Arc<Vec<Vec<u64>>>,
    cursors: Vec<usize>,
    increments: u64,
}

impl<C: Counter> CounterCase<C> {
    fn new(workload: Workload, peer: &str, target: C, streams: Arc<Vec<Vec<u64>>>) -> Self {
        // Every counter starts at 1 (moka's `and_compute_with` sees an entry either way).
        for key in 0..workload.keys() {
            target.seed(key);
        }
        CounterCase {
            peer: peer.to_string(),
            keys: workload.keys(),
            target,
            cursors: vec![0; streams.len()],
            streams,
            increments: 0,
        }
    }
}

impl<C: Counter> Case for CounterCase<C> {
    fn peer(&self) -> &str {
        &self.peer
    }

    fn run(&mut self, threads: usize, until: Until) -> Sample {
        let cursors = &mut self.cursors[..threads];
        let sample = drive(&self.target, &self.streams, cursors, until, |c, key, _| {
            c.increment(key);
            false
        });
        self.increments += sample.ops;
        sample
    }

    fn check(&self) -> Result<(), String> {
        let total: u64 = (0..self.keys)
            .map(|key| self.target.value(key).unwrap_or(0))
            .sum();
        let expected = self.keys + self.increments;
        if total == expected {
            Ok(())
        } else {
            Err(format!(
                "{}: counters sum to {total}, expected {expected} (lost increments)",
                self.peer
            ))
        }
    }
}

/// Operations between two looks at the stop flag.
const CHECK_EVERY: usize = 256;

/// Runs `op(target, key, index)` on `cursors.len()` threads, thread `t` over `streams[t]` from
/// `cursors[t]` (where it leaves off is written back). Returns the operations, the `true`s `op`
/// returned, and the time from the common start to the last thread's end.
pub fn drive<T, F>(
    target: &T,
    streams: &[Vec<u64>],
    cursors: &mut [usize],
    until: Until,
    op: F,
) -> Sample
where
    T: Sync + ?Sized,
    F: Fn(&T, u64, usize) -> bool + Sync,
{
    let threads = cursors.len();
    assert!(threads <= streams.len(), "one stream per thread");
    let barrier = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let results: Vec<(Instant, Instant, u64, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = cursors
            .iter()
            .zip(streams)
            .map(|(&cursor, keys)| {
                let (barrier, stop, op) = (&barrier, &stop, &op);
                scope.spawn(move || {
                    assert!(keys.len().is_power_of_two());
                    let mask = keys.len() - 1;
                    let mut i = cursor;
                    let mut hits = 0u64;
                    barrier.wait();
                    let start = Instant::now();
                    match until {
                        Until::Ops(n) => {
                            for _ in 0..n {
                                hits += u64::from(op(target, keys[i & mask], i));
                                i += 1;
                            }
                        }
                        Until::Time(_) => {
                            while !stop.load(Ordering::Relaxed) {
                                for _ in 0..CHECK_EVERY {
                                    hits += u64::from(op(target, keys[i & mask], i));
                                    i += 1;
                                }
                            }
                        }
                    }
                    (start, Instant::now(), hits, i)
                })
            })
            .collect();
        barrier.wait();
        if let Until::Time(duration) = until {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .collect()
    });
    let start = results
        .iter()
        .map(|r| r.0)
        .min()
        .expect("at least a thread");
    let end = results
        .iter()
        .map(|r| r.1)
        .max()
        .expect("at least a thread");
    let mut sample = Sample {
        elapsed: end - start,
        ..Sample::default()
    };
    for (cursor, (_, _, hits, next)) in cursors.iter_mut().zip(results) {
        sample.ops += (next - *cursor) as u64;
        sample.hits += hits;
        *cursor = next;
    }
    sample
}
