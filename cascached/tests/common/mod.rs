//! Test helpers: an in-process server on a free port, and a raw TCP client.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cascached::config::Config;
use cascached::server::{start, ServerHandle};

/// A server on 127.0.0.1 and a free port, with `adjust` applied to the default options.
pub fn server_with(adjust: impl FnOnce(&mut Config)) -> ServerHandle {
    let mut config = Config {
        port: 0,
        threads: 2,
        ..Config::default()
    };
    adjust(&mut config);
    if let Ok(reference) = std::env::var("CASCACHED_TEST_REFERENCE") {
        // Each test starts from an empty reference server (run them with --test-threads=1).
        let mut stream = TcpStream::connect(reference.as_str()).expect("reference server");
        stream.write_all(b"flush_all\r\n").unwrap();
        let mut ok = [0u8; 4];
        stream.read_exact(&mut ok).unwrap();
    }
    start(config).expect("server starts")
}

/// A server with the default options.
pub fn server() -> ServerHandle {
    server_with(|_| {})
}

/// Sent after each request: its reply marks the end of the request's replies. `version`
/// counts in no statistic, and the tests send it nowhere else.
const SENTINEL: &[u8] = b"version\r\n";

/// The sentinel's reply: this server's version, or the reference server's
/// (`CASCACHED_TEST_REFERENCE_VERSION`, default 1.6.18).
fn sentinel_reply() -> Vec<u8> {
    let version = match std::env::var("CASCACHED_TEST_REFERENCE") {
        Ok(_) => std::env::var("CASCACHED_TEST_REFERENCE_VERSION").unwrap_or("1.6.18".into()),
        Err(_) => cascached::session::VERSION.to_string(),
    };
    format!("VERSION {version}\r\n").into_bytes()
}

/// A raw connection.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    /// Connects to `server`, or, when `CASCACHED_TEST_REFERENCE` names an address, to that
    /// server instead: running the tests against memcached 1.6.18 that way shows the expected
    /// replies are memcached's (the tests that need a fresh server or its own options then fail,
    /// as they should).
    pub fn connect(server: &ServerHandle) -> Client {
        let stream = match std::env::var("CASCACHED_TEST_REFERENCE") {
            Ok(reference) => TcpStream::connect(reference.as_str()),
            Err(_) => TcpStream::connect(server.local_addr()),
        }
        .expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends `request` followed by a sentinel request and returns every reply before the
    /// sentinel's: the exact reply bytes, with no guessing how long to wait for more.
    pub fn exchange(&mut self, request: &[u8]) -> Vec<u8> {
        self.try_exchange(request)
            .unwrap_or_else(|reply| panic!("connection closed; got {:?}", show(&reply)))
    }

    /// [`exchange`](Client::exchange), or what came before the server closed the connection.
    pub fn try_exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
        // The server may close before it reads everything: keep what was received.
        let _ = self.stream.write_all(request);
        let _ = self.stream.write_all(SENTINEL);
        let sentinel_reply = sentinel_reply();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        while !reply.ends_with(&sentinel_reply) {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return Err(reply),
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
            }
        }
        reply.truncate(reply.len() - sentinel_reply.len());
        Ok(reply)
    }

    /// Asserts the exact reply to `request`.
    #[track_caller]
    pub fn expect(&mut self, request: &[u8], reply: &[u8]) {
        let got = self.exchange(request);
        assert_eq!(
            show(&got),
            show(reply),
            "request {:?}",
            show(&request[..request.len().min(200)])
        );
    }

    /// Reads until the server closes the connection; returns what came before.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "connection not closed");
            match self.stream.read(&mut chunk) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The CAS unique of `key` (from `gets`), or None on a miss.
    pub fn unique(&mut self, key: &str) -> Option<u64> {
        let reply = self.exchange(format!("gets {key}\r\n").as_bytes());
        let header = reply.split(|&b| b == b'\r').next()?;
        let header = std::str::from_utf8(header).ok()?;
        let fields: Vec<&str> = header.split(' ').collect();
        (fields.len() == 5 && fields[0] == "VALUE").then(|| fields[4].parse().unwrap())
    }

    /// One `stats` value.
    pub fn stat(&mut self, name: &str) -> u64 {
        let reply = String::from_utf8(self.exchange(b"stats\r\n")).unwrap();
        let prefix = format!("STAT {name} ");
        reply
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no stat {name}"))
            .parse()
            .unwrap()
    }
}

/// Bytes as text, with control bytes escaped, for readable assertion failures.
pub fn show(bytes: &[u8]) -> String {
    if bytes.len() > 400 {
        let (head, tail) = (&bytes[..200], &bytes[bytes.len() - 200..]);
        format!(
            "{}…({} bytes)…{}",
            head.escape_ascii(),
            bytes.len(),
            tail.escape_ascii()
        )
    } else {
        bytes.escape_ascii().to_string()
    }
}
