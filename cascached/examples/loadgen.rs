//! A closed-loop load generator for any memcached-protocol server, to compare cascached with
//! memcached by hand on loopback:
//!
//! ```sh
//! cargo run --release -p cascached --example loadgen -- --port 11211 --mix getset
//! cargo run --release -p cascached --example loadgen -- --port 11211 --mix cas
//! ```
//!
//! `--mix getset`: 90% `get` / 10% `set` over `--keys` keys (uniform). `--mix cas`: each
//! connection runs memcached's CAS increment loop (`gets` then `cas` with the unique) on keys
//! drawn from `--keys`, so connections collide and some `cas` get `EXISTS`. Every request is one
//! operation; each connection has one request in flight. Options: `--host`, `--port`,
//! `--threads` (client threads, default 2), `--conns` (default 16), `--secs` (default 5),
//! `--keys` (default 10000 for getset, 100 for cas), `--value` (bytes, default 100).

use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[derive(Clone, Copy, PartialEq)]
enum Mix {
    GetSet,
    Cas,
}

struct Options {
    addr: std::net::SocketAddr,
    threads: usize,
    conns: usize,
    secs: u64,
    keys: u64,
    value: usize,
    mix: Mix,
}

fn options() -> Options {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |name: &str, default: &str| -> String {
        match args.iter().position(|a| a == name) {
            Some(i) if i + 1 < args.len() => {
                let value = args.remove(i + 1);
                args.remove(i);
                value
            }
            _ => default.to_string(),
        }
    };
    let host = take("--host", "127.0.0.1");
    let port = take("--port", "11211");
    let mix = match take("--mix", "getset").as_str() {
        "cas" => Mix::Cas,
        _ => Mix::GetSet,
    };
    let default_keys = if mix == Mix::Cas { "100" } else { "10000" };
    Options {
        addr: format!("{host}:{port}")
            .to_socket_addrs()
            .expect("address")
            .next()
            .expect("address"),
        threads: take("--threads", "2").parse().expect("--threads"),
        conns: take("--conns", "16").parse().expect("--conns"),
        secs: take("--secs", "5").parse().expect("--secs"),
        keys: take("--keys", default_keys).parse().expect("--keys"),
        value: take("--value", "100").parse().expect("--value"),
        mix,
    }
}

/// A small xorshift: the client must cost little next to the server.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    ops: u64,
    hits: u64,
    stored: u64,
    exists: u64,
}

struct Connection {
    stream: TcpStream,
    reply: Vec<u8>,
    /// The key of the `gets` whose reply is awaited (cas mix), or None.
    gets_key: Option<u64>,
    /// The reply ends with `END\r\n` (get/gets) rather than one line.
    multi_line: bool,
}

fn send_next(conn: &mut Connection, options: &Options, rng: &mut Rng, value: &[u8]) {
    let key = rng.next() % options.keys;
    let mut request = Vec::with_capacity(64 + value.len());
    match (options.mix, conn.gets_key.take()) {
        (Mix::GetSet, _) if rng.next() % 10 == 0 => {
            let _ = write!(request, "set key:{key} 0 0 {}\r\n", value.len());
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
            conn.multi_line = false;
        }
        (Mix::GetSet, _) => {
            let _ = write!(request, "get key:{key}\r\n");
            conn.multi_line = true;
        }
        (Mix::Cas, _) => {
            let _ = write!(request, "gets key:{key}\r\n");
            conn.gets_key = Some(key);
            conn.multi_line = true;
        }
    }
    conn.stream.write_all(&request).expect("write");
}

/// After a `gets` reply in the cas mix: the `cas` that increments the counter, or a `set` to
/// create it.
fn send_cas(conn: &mut Connection, key: u64, reply: &[u8]) {
    let mut request = Vec::with_capacity(64);
    let header_end = reply.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let header: Vec<&[u8]> = reply[..header_end].split(|&b| b == b' ').collect();
    if header.len() == 5 {
        let len: usize = std::str::from_utf8(header[3]).unwrap().parse().unwrap();
        let data = &reply[header_end + 2..header_end + 2 + len];
        let n: u64 = std::str::from_utf8(data)
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(0);
        let next = (n + 1).to_string();
        let unique = std::str::from_utf8(header[4]).unwrap();
        let _ = write!(
            request,
            "cas key:{key} 0 0 {} {unique}\r\n{next}\r\n",
            next.len()
        );
    } else {
        let _ = write!(request, "set key:{key} 0 0 1\r\n0\r\n");
    }
    conn.multi_line = false;
    conn.stream.write_all(&request).expect("write");
}

fn run_thread(options: &Options, conns: usize, seed: u64) -> io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut rng = Rng(seed | 1);
    let value = vec![b'x'; options.value];
    let mut connections = Vec::new();
    for i in 0..conns {
        let std_stream = std::net::TcpStream::connect(options.addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        connections.push(Connection {
            stream,
            reply: Vec::new(),
            gets_key: None,
            multi_line: false,
        });
    }
    for conn in &mut connections {
        send_next(conn, options, &mut rng, &value);
    }
    let deadline = Instant::now() + Duration::from_secs(options.secs);
    let mut tally = Tally::default();
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in &events {
            let conn = &mut connections[event.token().0];
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => conn.reply.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            let complete = if conn.multi_line {
                conn.reply.ends_with(b"END\r\n")
            } else {
                conn.reply.ends_with(b"\r\n")
            };
            if !complete {
                continue;
            }
            tally.ops += 1;
            if conn.reply.starts_with(b"VALUE") {
                tally.hits += 1;
            } else if conn.reply.starts_with(b"STORED") {
                tally.stored += 1;
            } else if conn.reply.starts_with(b"EXISTS") {
                tally.exists += 1;
            }
            let reply = std::mem::take(&mut conn.reply);
            match conn.gets_key {
                Some(key) if options.mix == Mix::Cas => {
                    conn.gets_key = None;
                    send_cas(conn, key, &reply);
                }
                _ => send_next(conn, options, &mut rng, &value),
            }
        }
    }
    Ok(tally)
}

fn main() {
    let options = options();
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..options.threads)
            .map(|t| {
                let conns = options.conns / options.threads
                    + usize::from(t < options.conns % options.threads);
                let options = &options;
                s.spawn(move || run_thread(options, conns, 0x9E37_79B9_7F4A_7C15 * (t as u64 + 1)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().expect("load thread"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total = tallies.iter().fold(Tally::default(), |a, t| Tally {
        ops: a.ops + t.ops,
        hits: a.hits + t.hits,
        stored: a.stored + t.stored,
        exists: a.exists + t.exists,
    });
    println!(
        "{:.0} ops/s ({} ops in {elapsed:.1}s; get hits {}, STORED {}, EXISTS {})",
        total.ops as f64 / elapsed,
        total.ops,
        total.hits,
        total.stored,
        total.exists
    );
}
