//! When memcached 1.6.18 rewrites an `incr`/`decr`/`ma` result in place (space-padded to the
//! old length, stale and win-token marks kept) and when it stores a new unpadded item: an `mg`
//! hit's reply references the item until the connection's replies are written out, and a
//! referenced item is never rewritten in place (see `cascached::unflushed`). Each request below
//! is sent in one write, and each expected reply was read from memcached 1.6.18
//! (`CASCACHED_TEST_REFERENCE=127.0.0.1:PORT cargo test --release -p cascached --test
//! arithmetic_in_place -- --test-threads=1` runs them against it).

mod common;

use common::{server, Client};

const SET_139: &[u8] = b"set c 0 0 3\r\n139\r\n";

/// `SET_139`, then `between`, then `decr c 100`, then `get c`: the stored bytes of `c`.
fn decr_after(client: &mut Client, between: &[u8]) -> Vec<u8> {
    let request = [SET_139, between, b"decr c 100\r\nget c\r\n"].concat();
    let reply = client.exchange(&request);
    let at = reply
        .windows(6)
        .rposition(|w| w == b"VALUE ")
        .expect("get c hits");
    reply[at..].to_vec()
}

const PADDED: &[u8] = b"VALUE c 0 3\r\n39 \r\nEND\r\n";
const NEW_ITEM: &[u8] = b"VALUE c 0 2\r\n39\r\nEND\r\n";

#[test]
fn an_unreferenced_item_is_rewritten_in_place() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"set c 0 0 3\r\n139\r\ndecr c 100\r\nget c\r\n",
        b"STORED\r\n39\r\nVALUE c 0 3\r\n39 \r\nEND\r\n",
    );
    // A separate round trip after mg: its reply was written out.
    client.expect(SET_139, b"STORED\r\n");
    client.expect(b"mg c v\r\n", b"VA 3\r\n139\r\n");
    client.expect(
        b"decr c 100\r\nget c\r\n",
        b"39\r\nVALUE c 0 3\r\n39 \r\nEND\r\n",
    );
}

#[test]
fn an_mg_hit_in_the_same_burst_gives_a_new_unpadded_item() {
    let server = server();
    let mut client = Client::connect(&server);
    // The sequence, deterministic on one connection.
    client.expect(
        b"set c 0 0 3\r\n139\r\nmg c v\r\ndecr c 100\r\nget c\r\n",
        b"STORED\r\nVA 3\r\n139\r\n39\r\nVALUE c 0 2\r\n39\r\nEND\r\n",
    );
    // Any mg hit references the item, whatever its flags, `q` included.
    for mg in [
        &b"mg c\r\n"[..],
        b"mg c v q\r\n",
        b"mg c t k O1\r\n",
        b"mg c T0\r\n",
    ] {
        assert_eq!(decr_after(&mut client, mg), NEW_ITEM, "{mg:?}");
    }
    // These neither release the reference nor take one.
    for between in [
        &b"verbosity 1\r\n"[..],
        b"set x 0 0 1\r\na\r\n",
        b"set x 0 0 1 noreply\r\na\r\n",
        b"ms x 1\r\na\r\n",
        b"mg x v\r\n",
        b"touch c 0\r\n",
        b"incr x 1\r\n",
        b"delete x\r\n",
        b"verbosity 1 noreply\r\n",
        b"me c\r\n",
        b"stats\r\n",
        b"bogus\r\n",
        b"set x 0 0 1\r\nabc\r\n",
    ] {
        let mut mg_then = b"mg c\r\n".to_vec();
        mg_then.extend_from_slice(between);
        assert_eq!(decr_after(&mut client, &mg_then), NEW_ITEM, "{between:?}");
    }
}

#[test]
fn what_releases_the_reference() {
    let server = server();
    let mut client = Client::connect(&server);
    for between in [
        // Written out at once.
        &b"mg c\r\nget x\r\n"[..],
        b"mg c\r\ngets c\r\n",
        b"mg c\r\ngat 0 x\r\n",
        b"mg c\r\nmn\r\n",
        // No reference: a miss, an error, meta debug, a classic get.
        b"mg zz v\r\n",
        b"mg c O123456789012345678901234567890123\r\n",
        b"me c\r\n",
        b"get c\r\n",
        // The reference is to the item that was replaced.
        b"mg c\r\nset c 0 0 3\r\n139\r\n",
        // An oversized value is swallowed straight from the socket, which empties the buffer.
        &[
            &b"mg c\r\nset big 0 0 2000000\r\n"[..],
            &[b'x'; 2_000_000],
            b"\r\n",
        ]
        .concat(),
        // So is a data block longer than the rest of memcached's 16 KiB read buffer.
        &[
            &b"mg c\r\nset x 0 0 20000\r\n"[..],
            &[b'z'; 20_000],
            b"\r\n",
        ]
        .concat(),
    ] {
        let shown = String::from_utf8_lossy(&between[..between.len().min(40)]).into_owned();
        assert_eq!(decr_after(&mut client, between), PADDED, "{shown}");
    }
    // A data block that fits does not.
    let fits = [
        &b"mg c\r\nset x 0 0 10000\r\n"[..],
        &[b'z'; 10_000],
        b"\r\n",
    ]
    .concat();
    assert_eq!(decr_after(&mut client, &fits), NEW_ITEM);
}

/// memcached writes replies out after 21 requests of a read, then after every 20.
#[test]
fn the_request_count_that_forces_a_write_out() {
    let server = server();
    let mut client = Client::connect(&server);
    // Any request that takes no reference will do (not `version`: it is the sentinel).
    let filler = b"verbosity 1\r\n";
    // set (1), then `before` fillers, mg, `after` fillers, decr: the decr is request
    // 3 + before + after.
    let mut run = |before: usize, after: usize| {
        let between = [
            filler.repeat(before),
            b"mg c\r\n".to_vec(),
            filler.repeat(after),
        ];
        decr_after(&mut client, &between.concat())
    };
    assert_eq!(run(0, 18), NEW_ITEM); // decr is request 21
    assert_eq!(run(0, 19), PADDED); // 22: after the write-out
    assert_eq!(run(18, 0), NEW_ITEM); // mg is request 20, the decr 21
    assert_eq!(run(19, 0), PADDED); // mg is request 21, the decr 22
    assert_eq!(run(20, 18), NEW_ITEM); // mg 22, decr 41: the second stretch of 20
    assert_eq!(run(20, 19), PADDED); // decr 42
    assert_eq!(run(40, 18), NEW_ITEM); // mg 42, decr 61
    assert_eq!(run(40, 19), PADDED);
    // A classic get writes out but does not restart the count.
    let get_first = [&b"get x\r\nmg c\r\n"[..], &filler.repeat(17)].concat();
    assert_eq!(decr_after(&mut client, &get_first), NEW_ITEM); // decr 21
    let get_first = [&b"get x\r\nmg c\r\n"[..], &filler.repeat(18)].concat();
    assert_eq!(decr_after(&mut client, &get_first), PADDED); // decr 22
}

/// memcached reads 16 KiB at a time: a request line that does not fit in what is left is read
/// after the replies so far are written out.
#[test]
fn the_read_buffer_boundary() {
    let server = server();
    let mut client = Client::connect(&server);
    let tail = b"mg c\r\ndecr c 100\r\n";
    for (decr_end, expected) in [
        (16_384 - 1, NEW_ITEM),
        (16_384, NEW_ITEM),
        (16_384 + 1, PADDED),
        (16_384 + 10, PADDED),
    ] {
        // SET_139, a filler set, `tail`, and then the decr line ends at `decr_end`.
        let filler_len = decr_end - SET_139.len() - tail.len();
        let header_len = format!("set f 0 0 {} noreply\r\n", filler_len).len();
        let data_len = filler_len - header_len - 2;
        let mut filler = format!("set f 0 0 {data_len} noreply\r\n").into_bytes();
        assert_eq!(filler.len(), header_len, "header length");
        filler.extend(std::iter::repeat(b'y').take(data_len));
        filler.extend_from_slice(b"\r\n");
        let request = [SET_139, &filler, tail, b"get c\r\n"].concat();
        assert_eq!(request.len() - b"get c\r\n".len(), decr_end);
        let reply = client.exchange(&request);
        assert!(reply.ends_with(expected), "decr ending at {decr_end}");
    }
}

/// A new item keeps neither the stale mark nor the win token; an in-place rewrite keeps both.
#[test]
fn meta_state_survives_only_an_in_place_rewrite() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"ms s 3\r\n139\r\nmd s I\r\nma s MD D100\r\nmg s v\r\n",
        b"HD\r\nHD\r\nHD\r\nVA 3 X W\r\n39 \r\n",
    );
    client.expect(
        b"ms s 3\r\n139\r\nmd s I\r\nmg s\r\nma s MD D100\r\nmg s v\r\n",
        b"HD\r\nHD\r\nHD X W\r\nHD\r\nVA 2\r\n39\r\n",
    );
    // md I marks the referenced item itself: it stays referenced.
    client.expect(
        b"ms s 3\r\n139\r\nmg s\r\nmd s I\r\nma s MD D100\r\nmg s v\r\n",
        b"HD\r\nHD\r\nHD\r\nHD\r\nVA 2\r\n39\r\n",
    );
}
