//! The classic text protocol over TCP: replies and errors byte for byte as memcached 1.6.18
//! gives them (each expected reply below was read from memcached 1.6.18), the connection
//! surviving malformed input, and the limits (line length, item size, connections).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{server, server_with, show, Client};

/// Every request, then the exact reply memcached 1.6.18 sends; all on one connection, which
/// stays usable throughout.
#[test]
fn replies_match_memcached() {
    let key_250 = "a".repeat(250);
    let key_251 = "a".repeat(251);
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"\r\n".into(), b"ERROR\r\n".into()),
        (b"\n".into(), b"ERROR\r\n".into()),
        (b"GET foo\r\n".into(), b"ERROR\r\n".into()),
        (b"get\r\n".into(), b"ERROR\r\n".into()),
        (b"set k\r\n".into(), b"ERROR\r\n".into()),
        (b"set k 0 0\r\n".into(), b"ERROR\r\n".into()),
        // Wrong argument count: the data line is then a command of its own.
        (
            b"set k 0 0 1 2 3\r\nx\r\n".into(),
            b"ERROR\r\nERROR\r\n".into(),
        ),
        (b"cas k 0 0 1\r\nx\r\n".into(), b"ERROR\r\nERROR\r\n".into()),
        (
            b"set k 0 0 -1\r\nx\r\n".into(),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n".into(),
        ),
        (
            b"set k -1 0 1\r\nx\r\n".into(),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n".into(),
        ),
        // noreply silences the error too (memcached 1.6.18), not the stray data line.
        (
            b"set k abc 0 1 noreply\r\nx\r\n".into(),
            b"ERROR\r\n".into(),
        ),
        // A trailing word that is not noreply is ignored.
        (
            b"set k 0 0 1 junk\r\nx\r\nget k\r\n".into(),
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n".into(),
        ),
        (
            b"set k 0 0 1 noreply\r\ny\r\nget k\r\n".into(),
            b"VALUE k 0 1\r\ny\r\nEND\r\n".into(),
        ),
        // Flags are a u32 parsed as C's strtoul: +5 and -0 are numbers, 2^32 wraps to 0.
        (
            b"set k +5 0 1\r\nx\r\nget k\r\n".into(),
            b"STORED\r\nVALUE k 5 1\r\nx\r\nEND\r\n".into(),
        ),
        (
            b"set k 4294967296 0 1\r\nx\r\nget k\r\n".into(),
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n".into(),
        ),
        (
            b"set k 4294967295 0 1\r\nx\r\nget k\r\n".into(),
            b"STORED\r\nVALUE k 4294967295 1\r\nx\r\nEND\r\n".into(),
        ),
        // Data not followed by \r\n: refused, and what follows its length is a command.
        (
            b"set k 0 0 1\r\nxyz\r\n".into(),
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n".into(),
        ),
        (
            format!("set {key_251} 0 0 1\r\nx\r\n").into(),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n".into(),
        ),
        (
            format!("set {key_250} 0 0 1\r\nx\r\nget {key_250}\r\n").into(),
            format!("STORED\r\nVALUE {key_250} 0 1\r\nx\r\nEND\r\n").into(),
        ),
        (
            format!("get {key_251}\r\n").into(),
            b"CLIENT_ERROR bad command line format\r\n".into(),
        ),
        (
            b"get  k   k\r\n".into(),
            b"VALUE k 4294967295 1\r\nx\r\nVALUE k 4294967295 1\r\nx\r\nEND\r\n".into(),
        ),
        // A NUL ends the command line, as in C.
        (
            b"get k\0junk\r\n".into(),
            b"VALUE k 4294967295 1\r\nx\r\nEND\r\n".into(),
        ),
        (b"gat\r\n".into(), b"ERROR\r\n".into()),
        (b"gat 10\r\n".into(), b"END\r\n".into()),
        (
            b"gat abc k\r\n".into(),
            b"CLIENT_ERROR invalid exptime argument\r\n".into(),
        ),
        (b"touch k\r\n".into(), b"ERROR\r\n".into()),
        (
            b"touch k abc\r\n".into(),
            b"CLIENT_ERROR invalid exptime argument\r\n".into(),
        ),
        (b"touch k 10\r\n".into(), b"TOUCHED\r\n".into()),
        (b"touch nokey 10\r\n".into(), b"NOT_FOUND\r\n".into()),
        (b"touch k 10 noreply\r\n".into(), b"".into()),
        (b"incr k\r\n".into(), b"ERROR\r\n".into()),
        (
            b"incr k abc\r\n".into(),
            b"CLIENT_ERROR invalid numeric delta argument\r\n".into(),
        ),
        (
            b"incr k -1\r\n".into(),
            b"CLIENT_ERROR invalid numeric delta argument\r\n".into(),
        ),
        (
            b"incr k 18446744073709551616\r\n".into(),
            b"CLIENT_ERROR invalid numeric delta argument\r\n".into(),
        ),
        (
            b"incr k 1\r\n".into(),
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n".into(),
        ),
        (b"incr k 1 noreply\r\n".into(), b"".into()),
        (b"incr nokey 1\r\n".into(), b"NOT_FOUND\r\n".into()),
        (
            b"delete k 10\r\n".into(),
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n".into(),
        ),
        (b"delete k 10 noreply\r\n".into(), b"".into()),
        (b"delete k x y z\r\n".into(), b"ERROR\r\n".into()),
        (b"delete k 0\r\n".into(), b"DELETED\r\n".into()),
        (b"delete k\r\n".into(), b"NOT_FOUND\r\n".into()),
        (b"delete k noreply\r\n".into(), b"".into()),
        (
            b"flush_all abc\r\n".into(),
            b"CLIENT_ERROR invalid exptime argument\r\n".into(),
        ),
        (b"flush_all 1 2 3\r\n".into(), b"ERROR\r\n".into()),
        (b"flush_all 0 noreply\r\n".into(), b"".into()),
        (b"flush_all -1\r\n".into(), b"OK\r\n".into()),
        (b"verbosity\r\n".into(), b"ERROR\r\n".into()),
        (b"verbosity 1\r\n".into(), b"OK\r\n".into()),
        (
            b"verbosity abc\r\n".into(),
            b"CLIENT_ERROR bad command line format\r\n".into(),
        ),
        (b"verbosity 1 noreply\r\n".into(), b"".into()),
        (b"stats foo\r\n".into(), b"ERROR\r\n".into()),
        (b"stats reset\r\n".into(), b"RESET\r\n".into()),
        (
            b"append nokey 0 0 1\r\nz\r\nprepend nokey 0 0 1\r\nz\r\nreplace nokey 0 0 1\r\nz\r\n"
                .into(),
            b"NOT_STORED\r\nNOT_STORED\r\nNOT_STORED\r\n".into(),
        ),
        // append/prepend keep the item's flags.
        (
            b"set a 0 0 1\r\nx\r\nprepend a 0 0 1\r\ny\r\nappend a 5 100 1\r\nz\r\nget a\r\n"
                .into(),
            b"STORED\r\nSTORED\r\nSTORED\r\nVALUE a 0 3\r\nyxz\r\nEND\r\n".into(),
        ),
        (b"add a 0 0 1\r\nq\r\n".into(), b"NOT_STORED\r\n".into()),
    ];
    let server = server();
    let mut client = Client::connect(&server);
    for (request, reply) in cases {
        client.expect(&request, &reply);
    }
}

/// incr wraps at 2^64, decr floors at 0, and a shorter result is space-padded to the old
/// length (memcached rewrites the number in place).
#[test]
fn incr_decr_arithmetic() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 7\r\nget n\r\ndecr n 100\r\nget n\r\n",
        b"STORED\r\n15\r\n8\r\nVALUE n 0 2\r\n8 \r\nEND\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n",
    );
    client.expect(
        b"set n 0 0 20\r\n18446744073709551615\r\nincr n 2\r\nget n\r\n",
        b"STORED\r\n1\r\nVALUE n 0 20\r\n1                   \r\nEND\r\n",
    );
    client.expect(
        b"set n 3 0 2\r\n99\r\nincr n 1\r\nget n\r\n",
        b"STORED\r\n100\r\nVALUE n 3 3\r\n100\r\nEND\r\n",
    );
    client.expect(b"set n 0 0 3\r\n 12\r\nincr n 1\r\n", b"STORED\r\n13\r\n");
    client.expect(
        b"set n 0 0 2\r\n-1\r\nincr n 1\r\n",
        b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
}

/// Many clients incrementing one key at once: every increment counts.
#[test]
fn concurrent_incr_loses_nothing() {
    let server = server_with(|config| config.threads = 4);
    Client::connect(&server).expect(b"set n 0 0 1\r\n0\r\n", b"STORED\r\n");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut client = Client::connect(&server);
                for _ in 0..250 {
                    // Pipelined in fours to make the increments overlap.
                    let reply = client.exchange(&b"incr n 1\r\n".repeat(4));
                    assert_eq!(reply.iter().filter(|&&b| b == b'\n').count(), 4);
                }
            });
        }
    });
    Client::connect(&server).expect(b"get n\r\n", b"VALUE n 0 4\r\n4000\r\nEND\r\n");
}

/// `gat`/`gats` return the item and give it a new exptime.
#[test]
fn gat_touches() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set k 0 1 1\r\nx\r\n", b"STORED\r\n");
    client.expect(
        b"gat 100 k nokey\r\nmg k t\r\n",
        b"VALUE k 0 1\r\nx\r\nEND\r\nHD t100\r\n",
    );
    let unique = client.unique("k").unwrap();
    client.expect(
        b"gats -1 k\r\n",
        format!("VALUE k 0 1 {unique}\r\nx\r\nEND\r\n").as_bytes(),
    );
    client.expect(b"get k\r\n", b"END\r\n");
}

/// `flush_all <delay>` removes the items written before the deadline when it passes. As in
/// memcached, whose clock ticks in seconds, the deadline is `delay - 1` seconds away (so
/// `flush_all 1` is immediate).
#[test]
fn delayed_flush() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"set k 0 0 1\r\nx\r\nflush_all 1\r\nget k\r\n",
        b"STORED\r\nOK\r\nEND\r\n",
    );
    client.expect(b"set k 0 0 1\r\nx\r\nflush_all 3\r\n", b"STORED\r\nOK\r\n");
    client.expect(
        b"set later 0 0 1\r\ny\r\nget k\r\n",
        b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
    );
    std::thread::sleep(Duration::from_millis(2_100));
    client.expect(b"get k later\r\n", b"END\r\n");
    client.expect(
        b"set k 0 0 1\r\nz\r\nget k\r\n",
        b"STORED\r\nVALUE k 0 1\r\nz\r\nEND\r\n",
    );
}

/// An oversized value is refused, its bytes discarded as they arrive, the old value of a `set`
/// deleted (not that of an `add`), and the connection goes on.
#[test]
fn oversized_values_are_refused_and_swallowed() {
    let server = server();
    let mut client = Client::connect(&server);
    let big = vec![b'y'; 2_000_000];
    let request = |command: &str| [command.as_bytes(), &big, b"\r\n"].concat();
    client.expect(b"set big 0 0 1\r\nx\r\n", b"STORED\r\n");
    client.expect(
        &request("add big 0 0 2000000\r\n"),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    client.expect(b"get big\r\n", b"VALUE big 0 1\r\nx\r\nEND\r\n");
    client.expect(
        &request("set big 0 0 2000000\r\n"),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    client.expect(b"get big\r\n", b"END\r\n");
    client.expect(&request("set big 0 0 2000000 noreply\r\n"), b"");
    // Exactly the declared length is swallowed: the rest is a (bad) command.
    client.expect(
        &[&request("set big 0 0 2000000\r\n")[..2_000_021], b"XX\r\n"].concat(),
        b"SERVER_ERROR object too large for cache\r\nERROR\r\n",
    );
    // The limit is memcached's: the whole item (59 bytes of header, key, 4 for nonzero flags).
    let fits = vec![b'z'; 1_048_516];
    client.expect(
        &[&b"set k 0 0 1048516\r\n"[..], &fits, b"\r\n"].concat(),
        b"STORED\r\n",
    );
    client.expect(
        &[&b"set k 1 0 1048516\r\n"[..], &fits, b"\r\n"].concat(),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    // append past the limit is NOT_STORED.
    client.expect(b"append k 0 0 1\r\nz\r\n", b"NOT_STORED\r\n");
}

/// A 100 MB oversized value streams through without the server buffering it.
#[test]
fn huge_oversized_value_streams_through() {
    let server = server();
    let mut client = Client::connect(&server);
    let total = 100 << 20;
    client.send(format!("set huge 0 0 {total}\r\n").as_bytes());
    let chunk = vec![b'h'; 1 << 20];
    for _ in 0..total >> 20 {
        client.send(&chunk);
    }
    client.expect(
        b"\r\nget huge\r\n",
        b"SERVER_ERROR object too large for cache\r\nEND\r\n",
    );
}

/// A line with no newline in its first 2048 bytes closes the connection; up to 2048 waits.
#[test]
fn line_limit_closes_the_connection() {
    let server = server();
    let mut patient = Client::connect(&server);
    patient.send(&[b'x'; 2048]);
    patient.expect(b"\r\n", b"ERROR\r\n");
    let mut closed = Client::connect(&server);
    closed.send(&[b'x'; 2049]);
    assert_eq!(closed.read_to_close(), b"");
    // A multiget may be longer.
    let mut multiget = Client::connect(&server);
    let line = format!("get {}\r\n", "k ".repeat(3000));
    multiget.expect(line.as_bytes(), b"END\r\n");
}

/// memcached hangs up on HTTP, and on `quit` after sending the replies before it.
#[test]
fn quit_and_http_close() {
    let server = server();
    let mut client = Client::connect(&server);
    client.send(b"get k\r\nquit\r\nget k\r\n");
    assert_eq!(show(&client.read_to_close()), show(b"END\r\n"));
    let mut client = Client::connect(&server);
    client.send(b"GET / HTTP/1.1\r\n");
    assert_eq!(client.read_to_close(), b"");
}

/// Pipelined requests are answered in order, also when the replies outgrow the socket buffers
/// (the client writes everything before reading anything).
#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = server();
    let mut client = Client::connect(&server);
    let value = vec![b'v'; 10_000];
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..2_000 {
        request.extend_from_slice(format!("set key{i} {i} 0 {}\r\n", value.len()).as_bytes());
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(format!("get key{i}\r\n").as_bytes());
        expected.extend_from_slice(b"STORED\r\n");
        expected.extend_from_slice(format!("VALUE key{i} {i} {}\r\n", value.len()).as_bytes());
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\nEND\r\n");
    }
    // Write from another thread: 20 MB each way does not fit in the socket buffers.
    let mut writer = TcpStream::connect(server.local_addr()).unwrap();
    let mut reader = writer.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&request).unwrap());
    let mut reply = vec![0; expected.len()];
    reader.read_exact(&mut reply).unwrap();
    sender.join().unwrap();
    assert!(reply == expected, "replies out of order or wrong");
    let last = [&b"VALUE key1999 1999 10000\r\n"[..], &value, b"\r\nEND\r\n"].concat();
    client.expect(b"get key1999\r\n", &last);
}

/// Connections over `-c` get memcached's error and are closed; the others are served, and a
/// freed slot can be taken again.
#[test]
fn connection_limit_holds() {
    let server = server_with(|config| config.max_connections = 3);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(&server)).collect();
    for client in &mut clients {
        client.expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    }
    let mut refused = Client::connect(&server);
    assert_eq!(
        refused.read_to_close(),
        b"ERROR Too many open connections\r\n"
    );
    assert_eq!(clients[0].stat("curr_connections"), 3);
    assert_eq!(clients[0].stat("rejected_connections"), 1);
    drop(clients.pop());
    // The server notices the close asynchronously: retry until the slot is free.
    let mut admitted = None;
    for _ in 0..100 {
        let mut client = Client::connect(&server);
        if client.try_exchange(b"").is_ok() {
            admitted = Some(client);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut admitted = admitted.expect("a freed slot is reused");
    admitted.expect(b"get k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n");
}

/// `stats` reports the notes' fields with true values.
#[test]
fn stats_fields_and_values() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"set a 0 0 1\r\nx\r\nget a b\r\ndelete b\r\nincr a 1\r\ntouch a 0\r\n",
        b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nNOT_FOUND\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nTOUCHED\r\n",
    );
    let reply = String::from_utf8(client.exchange(b"stats\r\n")).unwrap();
    for field in [
        "pid",
        "uptime",
        "time",
        "version",
        "curr_connections",
        "total_connections",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "get_expired",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "curr_items",
        "total_items",
        "evictions",
        "bytes",
        "limit_maxbytes",
        "threads",
    ] {
        assert!(
            reply.contains(&format!("STAT {field} ")),
            "missing {field} in {reply}"
        );
    }
    assert!(reply.ends_with("END\r\n"));
    for (name, value) in [
        ("cmd_get", 2),
        ("cmd_set", 1),
        ("get_hits", 1),
        ("get_misses", 1),
        ("delete_misses", 1),
        ("touch_hits", 1),
        ("curr_items", 1),
        ("total_items", 1),
        ("curr_connections", 1),
        ("threads", 2),
        ("limit_maxbytes", 64 << 20),
        ("pid", u64::from(std::process::id())),
    ] {
        assert_eq!(client.stat(name), value, "{name}");
    }
    assert!(client.stat("bytes") > 2);
}

/// `-m` bounds the items' memory (key, data and the per-item overhead): writing far more than
/// fits evicts, and the byte count stays within the limit.
#[test]
fn memory_limit_is_enforced() {
    let server = server_with(|config| {
        config.memory_limit = 4 << 20;
        config.max_item_size = 64 << 10;
    });
    let mut client = Client::connect(&server);
    let value = vec![b'm'; 10_000];
    for i in 0..2_000 {
        let request = [
            format!("set key{i} 0 0 10000 noreply\r\n").as_bytes(),
            &value,
            b"\r\n",
        ]
        .concat();
        client.send(&request);
    }
    client.expect(b"", b"");
    let (bytes, limit) = (client.stat("bytes"), client.stat("limit_maxbytes"));
    assert_eq!(limit, 4 << 20);
    assert!(bytes <= limit, "{bytes} > {limit}");
    assert!(bytes > limit / 2, "{bytes}: the memory is used");
    assert!(client.stat("evictions") > 0);
    let items = client.stat("curr_items");
    assert!(items < 2_000 && items * 10_000 <= limit, "{items} items");
    assert_eq!(client.stat("total_items"), 2_000);
}

/// Shutting the server down closes its connections and frees its port.
#[test]
fn shutdown_closes_connections_and_frees_the_port() {
    let server = server();
    let addr = server.local_addr();
    let mut client = Client::connect(&server);
    client.expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    server.shutdown();
    assert_eq!(client.read_to_close(), b"");
    std::net::TcpListener::bind(addr).expect("the port is free again");
}

/// `-o idle_timeout=1`: a connection that waits for its next command (here with half a command
/// line sent) is closed after more than a second and counted in `idle_kicks`; one that keeps
/// sending commands is not.
#[test]
fn idle_connections_are_closed() {
    let server = server_with(|config| config.idle_timeout = 1);
    let mut idle = Client::connect(&server);
    let mut busy = Client::connect(&server);
    idle.send(b"get hal");
    let started = std::time::Instant::now();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(400));
        busy.expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    }
    assert_eq!(idle.read_to_close(), b"");
    let waited = started.elapsed();
    assert!(waited > Duration::from_secs(1), "{waited:?}");
    assert_eq!(busy.stat("idle_kicks"), 1);
    assert_eq!(busy.stat("curr_connections"), 1);
}
