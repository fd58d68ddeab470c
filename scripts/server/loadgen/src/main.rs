//! Closed-loop load generator for memcached's text protocol: N connections, one thread each,
//! `--depth D` requests in flight per connection (sent in one write, the replies read before the
//! next batch; depth 1 is a plain request/reply loop), keys drawn uniformly from a fixed key
//! space, fixed-size values. Mixes:
//!
//! * `get90`: 90% `get`, 10% `set`;
//! * `cas`: `gets` then `cas` with the unique just read (the founding example's loop step);
//!   a miss is answered with `add`. With depth D, D keys go through the step together: D `gets`,
//!   then D `cas`.
//!
//! Prints one line: `ops=… secs=… ops_per_sec=… …` (every request/reply pair is one op).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Opts {
    addr: String,
    conns: usize,
    secs: f64,
    mix: String,
    keys: u64,
    value_size: usize,
    depth: usize,
    prefill: bool,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    ops: u64,
    hits: u64,
    misses: u64,
    stored: u64,
    exists: u64,
    not_found: u64,
    errors: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.ops += o.ops;
        self.hits += o.hits;
        self.misses += o.misses;
        self.stored += o.stored;
        self.exists += o.exists;
        self.not_found += o.not_found;
        self.errors += o.errors;
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: cascached-loadgen --addr HOST:PORT [--conns 8] [--secs 3] [--mix get90|cas] \
         [--keys 10000] [--value-size 32] [--depth 1] [--no-prefill]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        addr: String::new(),
        conns: 8,
        secs: 3.0,
        mix: "get90".into(),
        keys: 10_000,
        value_size: 32,
        depth: 1,
        prefill: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).cloned().unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--addr" => o.addr = val(i),
            "--conns" => o.conns = val(i).parse().unwrap_or_else(|_| usage()),
            "--secs" => o.secs = val(i).parse().unwrap_or_else(|_| usage()),
            "--mix" => o.mix = val(i),
            "--keys" => o.keys = val(i).parse().unwrap_or_else(|_| usage()),
            "--value-size" => o.value_size = val(i).parse().unwrap_or_else(|_| usage()),
            "--depth" => o.depth = val(i).parse().unwrap_or_else(|_| usage()),
            "--no-prefill" => {
                o.prefill = false;
                i += 1;
                continue;
            }
            _ => usage(),
        }
        i += 2;
    }
    if o.addr.is_empty()
        || !(o.mix == "get90" || o.mix == "cas")
        || o.conns == 0
        || o.keys == 0
        || o.depth == 0
    {
        usage();
    }
    o
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    line: Vec<u8>,
    data: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let w = s.try_clone()?;
        Ok(Conn {
            r: BufReader::with_capacity(64 * 1024, s),
            w,
            line: Vec::new(),
            data: Vec::new(),
        })
    }

    fn read_line(&mut self) -> std::io::Result<()> {
        self.line.clear();
        let n = self.r.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        Ok(())
    }

    /// Reads a get/gets reply: Some(cas or 0) on a hit, None on a miss.
    fn read_value(&mut self) -> std::io::Result<Option<u64>> {
        self.read_line()?;
        if self.line.starts_with(b"END") {
            return Ok(None);
        }
        if !self.line.starts_with(b"VALUE ") {
            return Err(bad(&self.line));
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        let parts: Vec<&str> = text.split_whitespace().collect();
        let size: usize = parts
            .get(3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&self.line))?;
        let cas: u64 = parts.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
        self.data.resize(size + 2, 0);
        std::io::Read::read_exact(&mut self.r, &mut self.data)?;
        self.read_line()?;
        if !self.line.starts_with(b"END") {
            return Err(bad(&self.line));
        }
        Ok(Some(cas))
    }
}

fn bad(line: &[u8]) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("unexpected reply {:?}", String::from_utf8_lossy(line)),
    )
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn prefill(o: &Opts, value: &[u8]) -> std::io::Result<()> {
    let mut c = Conn::open(&o.addr)?;
    let batch = 200;
    let mut k = 0;
    while k < o.keys {
        let end = (k + batch).min(o.keys);
        let mut buf = Vec::new();
        for i in k..end {
            write!(buf, "set key:{i} 0 0 {}\r\n", value.len())?;
            buf.extend_from_slice(value);
            buf.extend_from_slice(b"\r\n");
        }
        c.w.write_all(&buf)?;
        for _ in k..end {
            c.read_line()?;
            if !c.line.starts_with(b"STORED") {
                return Err(bad(&c.line));
            }
        }
        k = end;
    }
    Ok(())
}

fn worker(
    o: &Opts,
    id: usize,
    value: &[u8],
    start: &Barrier,
    stop: &AtomicBool,
) -> std::io::Result<Tally> {
    let mut c = Conn::open(&o.addr)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0xD1B5_4A32_D192_ED03));
    let mut t = Tally::default();
    let mut req = Vec::with_capacity(256);
    let mut keys = vec![0u64; o.depth];
    let mut uniques: Vec<Option<u64>> = vec![None; o.depth];
    let mut is_get = vec![false; o.depth];
    start.wait();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..32 {
            req.clear();
            for key in keys.iter_mut() {
                *key = rng.next() % o.keys;
            }
            if o.mix == "get90" {
                for (&key, get) in keys.iter().zip(is_get.iter_mut()) {
                    *get = rng.next() % 100 < 90;
                    if *get {
                        write!(req, "get key:{key}\r\n")?;
                    } else {
                        write!(req, "set key:{key} 0 0 {}\r\n", value.len())?;
                        req.extend_from_slice(value);
                        req.extend_from_slice(b"\r\n");
                    }
                }
                c.w.write_all(&req)?;
                for &get in &is_get {
                    if get {
                        match c.read_value()? {
                            Some(_) => t.hits += 1,
                            None => t.misses += 1,
                        }
                    } else {
                        c.read_line()?;
                        if c.line.starts_with(b"STORED") {
                            t.stored += 1
                        } else {
                            t.errors += 1
                        }
                    }
                    t.ops += 1;
                }
            } else {
                for &key in &keys {
                    write!(req, "gets key:{key}\r\n")?;
                }
                c.w.write_all(&req)?;
                for unique in uniques.iter_mut() {
                    *unique = c.read_value()?;
                    t.ops += 1;
                }
                req.clear();
                for (&key, unique) in keys.iter().zip(&uniques) {
                    match unique {
                        Some(cas) => {
                            t.hits += 1;
                            write!(req, "cas key:{key} 0 0 {} {cas}\r\n", value.len())?;
                        }
                        None => {
                            t.misses += 1;
                            write!(req, "add key:{key} 0 0 {}\r\n", value.len())?;
                        }
                    }
                    req.extend_from_slice(value);
                    req.extend_from_slice(b"\r\n");
                }
                c.w.write_all(&req)?;
                for _ in 0..o.depth {
                    c.read_line()?;
                    t.ops += 1;
                    if c.line.starts_with(b"STORED") {
                        t.stored += 1
                    } else if c.line.starts_with(b"EXISTS") || c.line.starts_with(b"NOT_STORED") {
                        t.exists += 1
                    } else if c.line.starts_with(b"NOT_FOUND") {
                        t.not_found += 1
                    } else {
                        t.errors += 1
                    }
                }
            }
        }
    }
    Ok(t)
}

fn main() {
    let o = parse_args();
    let value: Vec<u8> = (0..o.value_size).map(|i| b'a' + (i % 26) as u8).collect();
    if o.prefill {
        if let Err(e) = prefill(&o, &value) {
            eprintln!("loadgen: prefill failed: {e}");
            std::process::exit(1);
        }
    }
    let start = Arc::new(Barrier::new(o.conns + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..o.conns)
        .map(|id| {
            let (o, value, start, stop) = (o.clone(), value.clone(), start.clone(), stop.clone());
            std::thread::spawn(move || {
                let r = worker(&o, id, &value, &start, &stop);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(o.secs);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    let mut failed = None;
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => total.add(&t),
            Ok(Err(e)) => failed = Some(e.to_string()),
            Err(_) => failed = Some("worker panicked".into()),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if let Some(e) = failed {
        eprintln!("loadgen: connection failed: {e}");
        std::process::exit(1);
    }
    println!(
        "ops={} secs={:.3} ops_per_sec={:.0} hits={} misses={} stored={} exists={} not_found={} errors={}",
        total.ops,
        secs,
        total.ops as f64 / secs,
        total.hits,
        total.misses,
        total.stored,
        total.exists,
        total.not_found,
        total.errors
    );
}
