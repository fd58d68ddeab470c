//! The meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`) over TCP. Expected replies are memcached
//! 1.6.18's, with the CAS uniques (which differ between servers) read back from the server.

mod common;

use common::{server, Client};

/// The unique of `key` as `mg … c` reports it (`u`: without counting as an access).
fn cas(client: &mut Client, key: &str) -> u64 {
    let reply = String::from_utf8(client.exchange(format!("mg {key} c u\r\n").as_bytes())).unwrap();
    reply
        .trim_end()
        .strip_prefix("HD c")
        .unwrap_or_else(|| panic!("{reply}"))
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn meta_get_flags() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"mn\r\n", b"MN\r\n");
    client.expect(b"mg foo\r\n", b"EN\r\n");
    client.expect(b"mg foo v q\r\nmg foo v k O123\r\n", b"EN kfoo O123\r\n");
    client.expect(b"set foo 5 0 3\r\nabc\r\nmg foo\r\n", b"STORED\r\nHD\r\n");
    let unique = cas(&mut client, "foo");
    client.expect(
        b"mg foo v c f s t k Oabc\r\n",
        format!("VA 3 c{unique} f5 s3 t-1 kfoo Oabc\r\nabc\r\n").as_bytes(),
    );
    // A flag is one letter; the rest of the token is its argument.
    client.expect(b"mg foo vcf\r\n", b"VA 3\r\nabc\r\n");
    // q hides only misses.
    client.expect(b"mg foo q\r\nmg foo v q\r\n", b"HD\r\nVA 3\r\nabc\r\n");
    client.expect(b"mg foo v T30 t\r\n", b"VA 3 t30\r\nabc\r\n");
    client.expect(b"mg foo t\r\n", b"HD t30\r\n");
    // T touches: the unique is unchanged.
    assert_eq!(cas(&mut client, "foo"), unique);
}

#[test]
fn meta_errors_match_memcached() {
    let server = server();
    let mut client = Client::connect(&server);
    let eighteen = " v".repeat(18);
    let long_key = "a".repeat(251);
    for (request, reply) in [
        ("mg\r\n".to_string(), "ERROR\r\n"),
        ("mx foo\r\n".into(), "ERROR\r\n"),
        ("mg foo Z\r\n".into(), "CLIENT_ERROR invalid flag\r\n"),
        ("mg foo v v\r\n".into(), "CLIENT_ERROR duplicate flag\r\n"),
        (
            "mg foo Tabc\r\n".into(),
            "CLIENT_ERROR bad token in command line format\r\n",
        ),
        ("mg foo Tabc Z\r\n".into(), "CLIENT_ERROR invalid flag\r\n"),
        (
            "mg foo Fabc\r\n".into(),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        (
            "mg foo N\r\n".into(),
            "CLIENT_ERROR bad token in command line format\r\n",
        ),
        (
            format!("mg foo O{}\r\n", "x".repeat(32)),
            "CLIENT_ERROR opaque token too long\r\n",
        ),
        (
            format!("mg foo O{}\r\n", "x".repeat(31)),
            &*format!("EN O{}\r\n", "x".repeat(31)),
        ),
        (
            format!("mg foo{eighteen}\r\n"),
            "CLIENT_ERROR options flags are too long\r\n",
        ),
        (
            format!("md foo{eighteen}\r\n"),
            "CLIENT_ERROR options flags too long\r\n",
        ),
        (
            format!("mg {long_key} v\r\n"),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        (
            "mg Zm9 b v\r\n".into(),
            "CLIENT_ERROR error decoding key\r\n",
        ),
        (
            "md foo x\r\n".into(),
            "CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            "md foo C\r\n".into(),
            "CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            "ma foo Dabc\r\n".into(),
            "CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            "ma foo MX\r\n".into(),
            "CLIENT_ERROR invalid mode for ma M token\r\n",
        ),
        // Lower-case modes are refused, for ma and for ms.
        (
            "ma foo Mi v\r\n".into(),
            "CLIENT_ERROR invalid mode for ma M token\r\n",
        ),
        (
            "ma foo Md v\r\n".into(),
            "CLIENT_ERROR invalid mode for ma M token\r\n",
        ),
        (
            "ms foo 2 Ms\r\nxx\r\n".into(),
            "CLIENT_ERROR invalid mode for ms M token\r\n",
        ),
        (
            "ms foo 2 Ma\r\nxx\r\n".into(),
            "CLIENT_ERROR invalid mode for ms M token\r\n",
        ),
        (
            "ms foo\r\n".into(),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        (
            "ms foo abc\r\n".into(),
            "CLIENT_ERROR bad command line format\r\n",
        ),
        // Once the length is known, a refused ms swallows its data.
        (
            "ms foo 2 MX\r\nxx\r\n".into(),
            "CLIENT_ERROR invalid mode for ms M token\r\n",
        ),
        (
            "ms foo 2 S2\r\nxx\r\n".into(),
            "CLIENT_ERROR invalid flag\r\n",
        ),
        (
            "ms foo 2 M\r\nxx\r\n".into(),
            "CLIENT_ERROR incorrect length for M token\r\n",
        ),
        (
            "ms foo 2 T1 T2\r\nxx\r\n".into(),
            "CLIENT_ERROR duplicate flag\r\n",
        ),
        (
            "ms !!!! 1 b\r\nx\r\n".into(),
            "CLIENT_ERROR error decoding key\r\n",
        ),
        // Data not followed by \r\n: the error is sent even with q.
        (
            "ms foo 1 q\r\nxy\r\n".into(),
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        (
            format!("ms foo 1{}\r\nx\r\n", " q".repeat(18)),
            "CLIENT_ERROR options flags too long\r\nERROR\r\n",
        ),
        ("me\r\n".into(), "CLIENT_ERROR bad command line format\r\n"),
    ] {
        client.expect(request.as_bytes(), reply.as_bytes());
    }
}

#[test]
fn meta_set_modes_and_cas() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"ms k1 2\r\nhi\r\n", b"HD\r\n");
    client.expect(b"ms k1 2 q\r\nhi\r\n", b"");
    client.expect(b"ms k1 2 ME\r\nhi\r\n", b"NS\r\n");
    client.expect(b"ms k1 2 ME q\r\nhi\r\n", b"NS\r\n");
    client.expect(b"ms nokey 2 MR\r\nhi\r\n", b"NS\r\n");
    client.expect(b"ms nokey 2 MA\r\nhi\r\n", b"NS\r\n");
    client.expect(
        b"ms k1 2 MA\r\nzz\r\nmg k1 v\r\n",
        b"HD\r\nVA 4\r\nhizz\r\n",
    );
    client.expect(
        b"ms k1 2 MP\r\naa\r\nmg k1 v\r\n",
        b"HD\r\nVA 6\r\naahizz\r\n",
    );
    client.expect(b"ms k1 2 C1\r\nxx\r\n", b"EX\r\n");
    client.expect(b"ms k1 2 C1 q\r\nxx\r\n", b"EX\r\n");
    client.expect(b"ms nokey 2 C1\r\nxx\r\n", b"NF\r\n");
    client.expect(b"ms k1 1 MA C1\r\nx\r\n", b"EX\r\n");
    let unique = cas(&mut client, "k1");
    let reply = client.exchange(format!("ms k1 2 C{unique} c k O99 F7 T0\r\nok\r\n").as_bytes());
    let new_unique = cas(&mut client, "k1");
    assert_ne!(new_unique, unique);
    assert_eq!(reply, format!("HD c{new_unique} kk1 O99\r\n").as_bytes());
    client.expect(b"mg k1 f v\r\n", b"VA 2 f7\r\nok\r\n");
    client.expect(b"ms zzz 1 MR c\r\nx\r\n", b"NS c0\r\n");
    client.expect(b"ms nf 1 C5 k O1\r\nx\r\n", b"NF knf O1\r\n");
    client.expect(b"ms k1 2 T-1\r\nab\r\nmg k1 v\r\n", b"HD\r\nEN\r\n");
    client.expect(b"ms k 0\r\n\r\nmg k v s\r\n", b"HD\r\nVA 0 s0\r\n\r\n");
}

/// `C0`: append and prepend compare nothing; set and replace never match, even with `I`.
#[test]
fn meta_set_cas_zero() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"set k 0 0 1\r\na\r\n", b"STORED\r\n");
    client.expect(b"ms k 2 C0 MA\r\nbc\r\n", b"HD\r\n");
    client.expect(b"ms k 2 C0 MP\r\nzz\r\n", b"HD\r\n");
    client.expect(b"get k\r\n", b"VALUE k 0 5\r\nzzabc\r\nEND\r\n");
    client.expect(b"ms k 2 C99999 MA\r\nbc\r\n", b"EX\r\n");
    client.expect(b"ms k 2 C0 I\r\nqq\r\n", b"EX\r\n");
    client.expect(b"ms k 2 C0\r\nqq\r\n", b"EX\r\n");
    client.expect(b"ms k 2 C0 MR\r\nqq\r\n", b"EX\r\n");
    client.expect(b"ms k 2 C0 MR I\r\nqq\r\n", b"EX\r\n");
    client.expect(b"ms k 2 C0 ME\r\nqq\r\n", b"NS\r\n");
    client.expect(b"ms none 2 C0 MA\r\nqq\r\n", b"NS\r\n");
    client.expect(b"ms none 2 C0\r\nqq\r\n", b"NF\r\n");
    client.expect(b"get k\r\n", b"VALUE k 0 5\r\nzzabc\r\nEND\r\n");
}

/// `ms … C<cas> I` stores (as stale) exactly when the CAS is older than the item's, with
/// uniques issued in order across connections (and so across server threads).
#[test]
fn meta_set_invalidate_compares_uniques_in_issue_order() {
    let server = server();
    let mut clients: Vec<_> = (0..4).map(|_| Client::connect(&server)).collect();
    for round in 0..50 {
        let key = format!("o{round}");
        // Writes through different connections: each unique is newer than the last.
        let mut uniques = Vec::new();
        for client in &mut clients {
            client.expect(format!("ms {key} 1\r\nx\r\n").as_bytes(), b"HD\r\n");
            uniques.push(cas(client, &key));
        }
        assert!(uniques.windows(2).all(|w| w[0] < w[1]), "{uniques:?}");
        let latest = *uniques.last().unwrap();
        // A newer CAS than the item's: EX, nothing stored.
        clients[0].expect(
            format!(
                "ms {key} 1 I C{}\r\ny\r\nmg {key} v\r\n",
                latest + 1_000_000
            )
            .as_bytes(),
            b"EX\r\nVA 1\r\nx\r\n",
        );
        // An older one, from another connection's write: stored, stale.
        clients[1].expect(
            format!("ms {key} 1 I C{}\r\nz\r\nmg {key} v\r\n", uniques[0]).as_bytes(),
            b"HD\r\nVA 1 X W\r\nz\r\n",
        );
    }
}

#[test]
fn meta_delete() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"md nokey\r\n", b"NF\r\n");
    client.expect(b"md nokey q\r\n", b"NF\r\n");
    client.expect(b"md nokey k O1\r\n", b"NF knokey O1\r\n");
    client.expect(b"ms d1 1\r\nx\r\nmd d1 q\r\nmg d1\r\n", b"HD\r\nEN\r\n");
    client.expect(b"ms d1 1\r\nx\r\nmd d1 C1\r\n", b"HD\r\nEX\r\n");
    let unique = cas(&mut client, "d1");
    client.expect(
        format!("md d1 C{unique} k O5\r\n").as_bytes(),
        b"HD kd1 O5\r\n",
    );
    client.expect(b"mg d1\r\n", b"EN\r\n");
    assert_eq!(client.stat("delete_hits"), 2);
    assert_eq!(client.stat("delete_misses"), 4);
}

/// `md … I` marks an item stale: the next reader wins the token to refresh it (`X W`), the
/// others see it stale with the token taken (`Z X`), until a new value is stored.
#[test]
fn stale_while_revalidate() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"ms foo 3 T60\r\nold\r\n", b"HD\r\n");
    let old = cas(&mut client, "foo");
    client.expect(b"md foo I T30\r\n", b"HD\r\n");
    client.expect(b"mg foo v t\r\n", b"VA 3 t30 X W\r\nold\r\n");
    client.expect(b"mg foo v\r\n", b"VA 3 Z X\r\nold\r\n");
    assert_ne!(
        cas(&mut client, "foo"),
        old,
        "marking stale is a new unique"
    );
    // A writer holding the pre-invalidation unique may still store, as stale (I + older C).
    client.expect(
        format!("ms foo 3 I C{old}\r\nmid\r\nmg foo v\r\n").as_bytes(),
        b"HD\r\nVA 3 Z X\r\nmid\r\n",
    );
    // The winner stores the fresh value: stale and token are gone.
    client.expect(b"ms foo 3\r\nnew\r\nmg foo v\r\n", b"HD\r\nVA 3\r\nnew\r\n");
    // `set` and `touch` after `md … I` behave the same way as in memcached.
    client.expect(
        b"md foo I\r\ntouch foo 100\r\nmg foo v\r\n",
        b"HD\r\nTOUCHED\r\nVA 3 X W\r\nnew\r\n",
    );
    client.expect(b"md foo I q\r\n", b"");
}

/// `mg … N` on a miss creates an empty item: the creator wins (`W`), the others wait (`Z`).
#[test]
fn vivify_on_miss() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"mg foo N30 v t\r\n", b"VA 0 t30 W\r\n\r\n");
    client.expect(b"mg foo N30 v t\r\n", b"VA 0 t30 Z\r\n\r\n");
    client.expect(b"mg foo v\r\n", b"VA 0 Z\r\n\r\n");
    client.expect(
        b"ms foo 3 T60\r\nnew\r\nmg foo v t\r\n",
        b"HD\r\nVA 3 t60\r\nnew\r\n",
    );
}

/// Many clients missing the same key at once: exactly one is told to fill it.
#[test]
fn vivify_gives_exactly_one_win_under_contention() {
    let server = server();
    for round in 0..20 {
        let key = format!("hot{round}");
        let wins: usize = std::thread::scope(|s| {
            let clients: Vec<_> = (0..8)
                .map(|_| {
                    let key = &key;
                    let server = &server;
                    s.spawn(move || {
                        let mut client = Client::connect(server);
                        let reply = client.exchange(format!("mg {key} N30 v\r\n").as_bytes());
                        usize::from(reply.starts_with(b"VA 0 W"))
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "round {round}");
    }
}

/// `mg … R<ttl>`: the first client to see the TTL below the threshold wins a recache.
#[test]
fn recache_token() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"ms foo 3 T100\r\nabc\r\nmg foo R30 v\r\nmg foo R200 v\r\nmg foo R200 v\r\nmg foo\r\n",
        b"HD\r\nVA 3\r\nabc\r\nVA 3 W\r\nabc\r\nVA 3 Z\r\nabc\r\nHD Z\r\n",
    );
    // No TTL, no recache.
    client.expect(b"ms bar 1\r\nx\r\nmg bar R200\r\n", b"HD\r\nHD\r\n");
}

#[test]
fn meta_arithmetic() {
    let server = server();
    let mut client = Client::connect(&server);
    for (request, reply) in [
        (&b"ma nokey\r\n"[..], &b"NF\r\n"[..]),
        (b"ma nokey q\r\n", b"NF\r\n"),
        (b"ma nokey k O1\r\n", b"NF knokey O1\r\n"),
        (b"ma nokey N0 J10 v\r\n", b"VA 2\r\n10\r\n"),
        (b"ma nokey v\r\n", b"VA 2\r\n11\r\n"),
        (b"ma nokey D5 v t\r\n", b"VA 2 t-1\r\n16\r\n"),
        (b"ma nokey MD D100 v\r\n", b"VA 1\r\n0\r\n"),
        (b"ma nokey M- D1 v\r\n", b"VA 1\r\n0\r\n"),
        (b"ma nokey M+ v\r\n", b"VA 1\r\n1\r\n"),
        (b"ma nokey MI v\r\n", b"VA 1\r\n2\r\n"),
        (b"ma nokey C1 v\r\n", b"EX\r\n"),
        (b"ma nokey C1 k O1\r\n", b"EX knokey O1\r\n"),
        // q hides a successful delta, not the creation of the item.
        (b"ma nokey q v\r\n", b""),
        (b"ma viv N30 q\r\n", b"HD\r\n"),
        (b"ma viv2 N30 v t k O1 q\r\n", b"VA 1 t30 kviv2 O1\r\n0\r\n"),
        (b"ma viv J5\r\nmg viv v\r\n", b"HD\r\nVA 1\r\n1\r\n"),
        (
            b"ma n1 t t\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        // Flags apply in request order: t before T shows the old TTL.
        (
            b"ms n1 1 T30\r\n5\r\nma n1 t T0\r\nma n1 t\r\n",
            b"HD\r\nHD t30\r\nHD t-1\r\n",
        ),
        (
            b"ms t 2\r\nab\r\nma t v\r\n",
            b"HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        // An empty value is non-numeric before the CAS is compared; a wrong CAS on any other
        // value is EX, numeric or not.
        (
            b"set e 0 0 0\r\n\r\nma e C999999\r\nma e C0\r\n",
            b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n\
              CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        (b"ma t C999999\r\n", b"EX\r\n"),
        // C0 compares nothing.
        (
            b"set z 0 0 2\r\n10\r\nma z C0 v\r\n",
            b"STORED\r\nVA 2\r\n11\r\n",
        ),
        (b"ma z C0 MD D2 v\r\n", b"VA 1\r\n9\r\n"),
    ] {
        client.expect(request, reply);
    }
    let unique = cas(&mut client, "nokey");
    let reply = client.exchange(format!("ma nokey C{unique} c v\r\n").as_bytes());
    let after = cas(&mut client, "nokey");
    assert_eq!(reply, format!("VA 1 c{after}\r\n4\r\n").as_bytes());
    // memcached applies the delta, then notices the opaque token is too long.
    client.expect(
        format!("ma nokey O{}\r\nmg nokey v\r\n", "x".repeat(40)).as_bytes(),
        b"CLIENT_ERROR opaque token too long\r\nVA 2\r\n5 \r\n",
    );
}

#[test]
fn base64_keys() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"ms Zm9v 2 b\r\nhi\r\nmg foo v\r\nmg Zm9v b v k\r\n",
        b"HD\r\nVA 2\r\nhi\r\nVA 2 kZm9v b\r\nhi\r\n",
    );
    // A key is echoed as it was stored: a key stored in text stays text.
    client.expect(
        b"set text 0 0 1\r\nx\r\nmg dGV4dA== b k\r\n",
        b"STORED\r\nHD ktext\r\n",
    );
    client.expect(b"mg bm9uZQ== b k O1\r\n", b"EN kbm9uZQ== b O1\r\n");
    client.expect(b"md Zm9v b k\r\nmg foo\r\n", b"HD kZm9v b\r\nEN\r\n");
}

#[test]
fn hit_and_last_access_flags() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(
        b"ms hh 1\r\nx\r\nmg hh h l\r\nmg hh h\r\n",
        b"HD\r\nHD h0 l0\r\nHD h1\r\n",
    );
    client.expect(
        b"ms hh 1\r\nx\r\nmg hh u h\r\nmg hh h\r\nmg hh h\r\n",
        b"HD\r\nHD h0\r\nHD h0\r\nHD h1\r\n",
    );
    client.expect(
        b"ms hh 1\r\nx\r\nget hh\r\nmg hh h\r\n",
        b"HD\r\nVALUE hh 0 1\r\nx\r\nEND\r\nHD h1\r\n",
    );
    client.expect(
        b"ms hh 1\r\nx\r\ntouch hh 30\r\nmg hh h\r\n",
        b"HD\r\nTOUCHED\r\nHD h1\r\n",
    );
}

#[test]
fn meta_set_too_large_deletes_the_old_value() {
    let server = server();
    let mut client = Client::connect(&server);
    let big = vec![b'y'; 2_000_000];
    client.expect(b"ms big 1\r\nx\r\n", b"HD\r\n");
    client.expect(
        &[&b"ms big 2000000 T0 q\r\n"[..], &big, b"\r\nmg big v\r\n"].concat(),
        b"SERVER_ERROR object too large for cache\r\nEN\r\n",
    );
}

#[test]
fn meta_debug() {
    let server = server();
    let mut client = Client::connect(&server);
    client.expect(b"me foo\r\n", b"EN\r\n");
    client.expect(b"set foo 3 0 2\r\nhi\r\n", b"STORED\r\n");
    let unique = cas(&mut client, "foo");
    client.expect(
        b"me foo\r\n",
        format!("ME foo exp=-1 la=0 cas={unique} fetch=no cls=1 size=68\r\n").as_bytes(),
    );
    client.expect(
        b"get foo\r\nme Zm9v b\r\n",
        format!("VALUE foo 3 2\r\nhi\r\nEND\r\nME foo exp=-1 la=0 cas={unique} fetch=yes cls=1 size=68\r\n")
            .as_bytes(),
    );
}
