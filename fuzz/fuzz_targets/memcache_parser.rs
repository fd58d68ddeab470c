//! The memcached protocol parser and session on arbitrary bytes: no panic, every request uses at
//! least one byte, parsing does not depend on how the bytes arrive, and every reply is a whole
//! line. The checks live in `cascached::fuzzing`, which `cascached/tests/fuzz_corpus.rs` also
//! runs over this target's corpus. Run with `cargo +nightly fuzz run memcache_parser`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cascached::fuzzing::check(data);
});
