//! The checks the `memcache_parser` fuzz target runs on each input, here so that the corpus
//! replay test (`tests/fuzz_corpus.rs`) runs exactly the same ones under plain `cargo test`.
//!
//! 1. Parsing the input request by request, each request uses at least one byte and no more
//!    than there is.
//! 2. The parser does not depend on how the bytes arrived: any prefix of a request parses as
//!    "incomplete" (or, for a line already over the limit, "close"), and any longer input
//!    parses as the same request.
//! 3. Running the input through a [`Session`] on a small store, whole and then in pieces, never
//!    panics, uses every byte it is given, and every reply ends with `\r\n`.

use std::sync::{Arc, OnceLock};

use crate::config::Config;
use crate::protocol::{parse, Limits, Parsed, MAX_LINE_LEN};
use crate::session::{Next, Session, Shared};
use crate::stats::Counters;

/// Runs every check on `data`; panics on the first failure.
pub fn check(data: &[u8]) {
    let limits = Limits {
        max_item_size: 4096,
    };
    check_parser(data, &limits);
    // One store for every input (building a cache per input would dominate the run), emptied
    // first so each input starts alike.
    static SHARED: OnceLock<(Arc<Shared>, Arc<Counters>)> = OnceLock::new();
    let (shared, counters) = SHARED.get_or_init(|| {
        let shared = Shared::new(Config {
            memory_limit: 1 << 20,
            max_item_size: limits.max_item_size,
            ..Config::default()
        });
        let counters = shared.stats.new_block();
        (shared, counters)
    });
    shared.store.flush(0, shared.store.now());
    check_session(data, shared, counters, None);
    // Split points taken from the data itself, so the fuzzer explores them too.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    check_session(data, shared, counters, Some(step));
}

fn check_parser(data: &[u8], limits: &Limits) {
    let mut offset = 0;
    while offset < data.len() {
        let rest = &data[offset..];
        let consumed = match parse(rest, limits) {
            Parsed::Request { consumed, .. } => consumed,
            Parsed::Incomplete | Parsed::Close => return,
        };
        assert!(
            consumed >= 1 && consumed <= rest.len(),
            "consumed {consumed}"
        );
        let whole = format!("{:?}", parse(rest, limits));
        for cut in [1, consumed / 2, consumed - 1] {
            if cut == 0 || cut >= consumed {
                continue;
            }
            match parse(&rest[..cut], limits) {
                Parsed::Incomplete => {}
                // The limit applies to what has arrived without a newline.
                Parsed::Close => {
                    assert!(cut > MAX_LINE_LEN && !rest[..cut].contains(&b'\n'));
                }
                other => panic!("prefix of {cut} bytes parsed as {other:?}, whole as {whole}"),
            }
        }
        let longer = &data[offset..(offset + consumed + 7).min(data.len())];
        assert_eq!(format!("{:?}", parse(longer, limits)), whole);
        offset += consumed;
    }
}

fn check_session(data: &[u8], shared: &Arc<Shared>, counters: &Arc<Counters>, step: Option<usize>) {
    let mut session = Session::new(Arc::clone(shared), Arc::clone(counters));
    let mut pending = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    while fed < data.len() {
        let next = step.map_or(data.len(), |step| (fed + step).min(data.len()));
        pending.extend_from_slice(&data[fed..next]);
        fed = next;
        loop {
            out.clear();
            let progress = session.handle(&pending, &mut out);
            assert!(progress.consumed <= pending.len());
            assert!(out.is_empty() || out.ends_with(b"\r\n"), "reply {out:?}");
            pending.drain(..progress.consumed);
            match progress.next {
                Next::Flush => continue,
                Next::Read => break,
                Next::Quit | Next::Close => return,
            }
        }
    }
}
