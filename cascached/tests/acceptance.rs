//! The acceptance cases of `shared/notes/memcached.md`, with the reply bytes memcached 1.6.18
//! gives.

mod common;

use common::{server, Client};

/// Case 1: `gets` on a missing key.
#[test]
fn gets_missing_key_is_end() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"gets foo\r\n", b"END\r\n");
}

/// Case 2: `set` then `gets` returns the value with its unique.
#[test]
fn set_then_gets_returns_value_and_unique() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set foo 0 0 6\r\nbarval\r\n", b"STORED\r\n");
    let unique = client.unique("foo").expect("hit");
    client.expect(
        b"gets foo\r\n",
        format!("VALUE foo 0 6 {unique}\r\nbarval\r\nEND\r\n").as_bytes(),
    );
}

/// Case 3: `cas` with another unique, the right one, the same again, and 0.
#[test]
fn cas_outcomes() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set foo 0 0 6\r\nbarval\r\n", b"STORED\r\n");
    let unique = client.unique("foo").unwrap();
    let other = unique + 1;
    client.expect(
        format!("cas foo 0 0 6 {other}\r\nbarva2\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    client.expect(
        format!("cas foo 0 0 6 {unique}\r\nbarva2\r\n").as_bytes(),
        b"STORED\r\n",
    );
    client.expect(
        format!("cas foo 0 0 6 {unique}\r\nbarva3\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    client.expect(b"cas foo 0 0 1 0\r\nx\r\n", b"EXISTS\r\n");
    client.expect(b"get foo\r\n", b"VALUE foo 0 6\r\nbarva2\r\nEND\r\n");
}

/// Case 4: a unique taken before a delete: `NOT_FOUND` after the delete, `EXISTS` once the key
/// is added again (the new item has a new unique).
#[test]
fn cas_after_delete_and_after_readd() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set foo 0 0 1\r\nx\r\n", b"STORED\r\n");
    let unique = client.unique("foo").unwrap();
    client.expect(b"delete foo\r\n", b"DELETED\r\n");
    client.expect(
        format!("cas foo 0 0 1 {unique}\r\ny\r\n").as_bytes(),
        b"NOT_FOUND\r\n",
    );
    client.expect(b"add foo 0 0 1\r\nz\r\n", b"STORED\r\n");
    client.expect(
        format!("cas foo 0 0 1 {unique}\r\ny\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    assert_ne!(client.unique("foo"), Some(unique));
}

/// Case 5: a multi-key `gets` has a block per hit, each with its own unique.
#[test]
fn multi_gets_gives_each_key_its_unique() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"set foo1 0 0 1\r\na\r\nset foo2 0 0 1\r\nb\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    let (u1, u2) = (
        client.unique("foo1").unwrap(),
        client.unique("foo2").unwrap(),
    );
    assert_ne!(u1, u2);
    client.expect(
        b"gets foo1 missing foo2\r\n",
        format!("VALUE foo1 0 1 {u1}\r\na\r\nVALUE foo2 0 1 {u2}\r\nb\r\nEND\r\n").as_bytes(),
    );
}

/// Case 6: two clients `cas` with the same unique: exactly one wins.
#[test]
fn racing_cas_from_two_connections_stores_once() {
    let server = server();
    let mut first = Client::connect(&server);
    let mut second = Client::connect(&server);
    first.expect(b"set foo 0 0 1\r\n0\r\n", b"STORED\r\n");
    for round in 0..50 {
        let unique = first.unique("foo").unwrap();
        assert_eq!(second.unique("foo"), Some(unique));
        let request = format!("cas foo 0 0 1 {unique}\r\n{}\r\n", round % 10);
        // Both in flight before either reply is read.
        first.send(request.as_bytes());
        second.send(request.as_bytes());
        let mut replies = [first.exchange(b""), second.exchange(b"")];
        replies.sort();
        assert_eq!(replies, [b"EXISTS\r\n".to_vec(), b"STORED\r\n".to_vec()]);
    }
}

/// Case 7: which commands change the unique.
#[test]
fn mutations_change_the_unique_and_reads_do_not() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set n 0 0 2\r\n10\r\n", b"STORED\r\n");
    let mut seen = vec![client.unique("n").unwrap()];
    for (request, reply) in [
        (&b"incr n 5\r\n"[..], &b"15\r\n"[..]),
        (b"decr n 1\r\n", b"14\r\n"),
        (b"append n 0 0 1\r\n0\r\n", b"STORED\r\n"),
        (b"prepend n 0 0 1\r\n1\r\n", b"STORED\r\n"),
        (b"replace n 0 0 1\r\n7\r\n", b"STORED\r\n"),
        (b"set n 0 0 1\r\n8\r\n", b"STORED\r\n"),
    ] {
        client.expect(request, reply);
        let unique = client.unique("n").unwrap();
        assert!(!seen.contains(&unique), "{request:?} kept an old unique");
        seen.push(unique);
    }
    let unique = *seen.last().unwrap();
    for (request, reply) in [
        (&b"touch n 100\r\n"[..], &b"TOUCHED\r\n"[..]),
        (b"gat 100 n\r\n", b"VALUE n 0 1\r\n8\r\nEND\r\n"),
        (b"get n\r\n", b"VALUE n 0 1\r\n8\r\nEND\r\n"),
        (b"add n 0 0 1\r\n9\r\n", b"NOT_STORED\r\n"),
        (b"cas n 0 0 1 1\r\n9\r\n", b"EXISTS\r\n"),
    ] {
        client.expect(request, reply);
        assert_eq!(
            client.unique("n"),
            Some(unique),
            "{request:?} changed the unique"
        );
    }
}

/// Case 8: `cas` on an expired or a flushed key.
#[test]
fn cas_on_expired_or_flushed_key_is_not_found() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set short 0 1 1\r\nx\r\n", b"STORED\r\n");
    let short = client.unique("short").unwrap();
    client.expect(b"set flushed 0 0 1\r\nx\r\n", b"STORED\r\n");
    let flushed = client.unique("flushed").unwrap();
    client.expect(b"flush_all\r\n", b"OK\r\n");
    client.expect(
        format!("cas flushed 0 0 1 {flushed}\r\ny\r\n").as_bytes(),
        b"NOT_FOUND\r\n",
    );
    client.expect(b"set short 0 1 1\r\nx\r\n", b"STORED\r\n");
    let short_again = client.unique("short").unwrap();
    assert_ne!(short, short_again);
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    client.expect(
        format!("cas short 0 0 1 {short_again}\r\ny\r\n").as_bytes(),
        b"NOT_FOUND\r\n",
    );
    // A negative exptime stores an item that is already expired.
    client.expect(b"set gone 0 -1 1\r\nx\r\n", b"STORED\r\n");
    client.expect(b"get gone\r\n", b"END\r\n");
}

/// Case 9: `cas … noreply` stores silently.
#[test]
fn cas_noreply_stores_without_a_reply() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set k 0 0 1\r\n5\r\n", b"STORED\r\n");
    let unique = client.unique("k").unwrap();
    client.expect(
        format!("cas k 0 0 1 {unique} noreply\r\n6\r\n").as_bytes(),
        b"",
    );
    client.expect(b"get k\r\n", b"VALUE k 0 1\r\n6\r\nEND\r\n");
}

/// Case 10: the cas counters of a fresh server.
#[test]
fn cas_statistics_from_a_fresh_server() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"cas k 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n");
    assert_eq!(client.stat("cas_misses"), 1);
    client.expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    let unique = client.unique("k").unwrap();
    client.expect(
        format!("cas k 0 0 1 {}\r\ny\r\n", unique + 1).as_bytes(),
        b"EXISTS\r\n",
    );
    assert_eq!(client.stat("cas_badval"), 1);
    client.expect(
        format!("cas k 0 0 1 {unique}\r\ny\r\n").as_bytes(),
        b"STORED\r\n",
    );
    assert_eq!(
        (
            client.stat("cas_hits"),
            client.stat("cas_misses"),
            client.stat("cas_badval")
        ),
        (1, 1, 1)
    );
}

/// Case 11: non-numeric arguments. The data line that follows is then read as a command
/// (memcached does not know its length), hence the `ERROR`.
#[test]
fn non_numeric_arguments_are_client_errors() {
    let server = server();
    let mut client = Client::connect(&server);
    for request in [
        &b"set k abc 0 1\r\nx\r\n"[..],
        b"set k 0 abc 1\r\nx\r\n",
        b"set k 0 0 abc\r\nx\r\n",
        b"cas k 0 0 1 abc\r\nx\r\n",
    ] {
        client.expect(
            request,
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
    }
}
