//! The protocol engine without sockets: how input split across reads is handled.

use std::sync::Arc;

use cascached::config::Config;
use cascached::session::{Next, Session, Shared};

fn new_session(config: Config) -> (Arc<Shared>, Session) {
    let shared = Shared::new(config);
    let session = Session::new(Arc::clone(&shared), shared.stats.new_block());
    (shared, session)
}

/// Feeds `input` in pieces of `step` bytes, as a connection would, keeping unconsumed bytes.
fn feed(session: &mut Session, input: &[u8], step: usize) -> Vec<u8> {
    let mut pending = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(step) {
        pending.extend_from_slice(piece);
        loop {
            let progress = session.handle(&pending, &mut out);
            pending.drain(..progress.consumed);
            if progress.next != Next::Flush {
                break;
            }
        }
    }
    out
}

/// The same bytes give the same replies however they are split across reads.
#[test]
fn replies_do_not_depend_on_how_input_arrives() {
    let input: &[u8] = b"set a 0 0 5\r\nhello\r\nget a b\r\nappend a 0 0 1\r\n!\r\n\
        incr a 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 20\r\nget n a\r\n\
        ms m 3 T0 F9\r\nabc\r\nmg m v f s\r\nmd m q\r\nmg m\r\nset k 0 0 1 noreply\r\nx\r\n\
        bogus\r\nset k 0 0 1\r\nxyz\r\nget k\r\nmn\r\n";
    let expected = b"STORED\r\nVALUE a 0 5\r\nhello\r\nEND\r\nSTORED\r\n\
        CLIENT_ERROR cannot increment or decrement non-numeric value\r\nSTORED\r\n15\r\n0\r\n\
        VALUE n 0 2\r\n0 \r\nVALUE a 0 6\r\nhello!\r\nEND\r\nHD\r\nVA 3 f9 s3\r\nabc\r\nEN\r\n\
        ERROR\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE k 0 1\r\nx\r\nEND\r\nMN\r\n";
    for step in [1, 2, 3, 7, 64, input.len()] {
        let (_, mut session) = new_session(Config::default());
        let out = feed(&mut session, input, step);
        assert_eq!(
            out.escape_ascii().to_string(),
            expected.escape_ascii().to_string(),
            "step {step}"
        );
    }
}

/// An oversized value is consumed as it arrives: nothing of it waits in the input buffer.
#[test]
fn oversized_value_is_swallowed_as_it_streams() {
    let (shared, mut session) = new_session(Config::default());
    let mut out = Vec::new();
    let progress = session.handle(b"set big 0 0 50000000\r\n", &mut out);
    assert_eq!(progress.consumed, 22);
    assert_eq!(out, b"SERVER_ERROR object too large for cache\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = 50_000_002;
    while left > chunk.len() {
        out.clear();
        let progress = session.handle(&chunk, &mut out);
        assert_eq!(
            progress.consumed,
            chunk.len(),
            "every streamed byte is dropped at once"
        );
        assert!(out.is_empty());
        left -= chunk.len();
    }
    let mut tail = vec![b'x'; left - 2];
    tail.extend_from_slice(b"\r\nget big\r\n");
    out.clear();
    let progress = session.handle(&tail, &mut out);
    assert_eq!(progress.consumed, tail.len());
    assert_eq!(out, b"END\r\n");
    assert_eq!(
        shared.stats.sum(cascached::stats::Counter::StoreTooLarge),
        1
    );
}

/// Replies past the high-water mark pause the batch so they can be sent first.
#[test]
fn large_replies_pause_the_batch() {
    let (_, mut session) = new_session(Config::default());
    let mut out = Vec::new();
    let value = vec![b'v'; 500_000];
    let set = [&b"set v 0 0 500000\r\n"[..], &value, b"\r\n"].concat();
    assert_eq!(session.handle(&set, &mut out).next, Next::Read);
    let gets = b"get v\r\n".repeat(10);
    let (mut consumed, mut batches, mut values) = (0, 0, 0);
    while consumed < gets.len() {
        out.clear();
        let progress = session.handle(&gets[consumed..], &mut out);
        consumed += progress.consumed;
        batches += 1;
        values += out.len() / 500_000;
        // Each batch stops soon after its replies pass 1 MB.
        assert!(out.len() < 2 << 20);
    }
    assert_eq!(values, 10);
    assert!(batches >= 3, "{batches} batches");
}

/// `quit` stops the batch; a line over the limit asks to close at once.
#[test]
fn quit_and_close() {
    let (_, mut session) = new_session(Config::default());
    let mut out = Vec::new();
    let progress = session.handle(b"mn\r\nquit\r\nmn\r\n", &mut out);
    assert_eq!((progress.consumed, progress.next), (10, Next::Quit));
    assert_eq!(out, b"MN\r\n");
    let (_, mut session) = new_session(Config::default());
    assert_eq!(session.handle(&[b'a'; 3000], &mut out).next, Next::Close);
}
