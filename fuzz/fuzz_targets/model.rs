//! Differential fuzzing of every public operation against a sequential model; see
//! `fuzz/src/model.rs`. Run with `cargo +nightly fuzz run model` (or `scripts/fuzz.sh`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cascache_fuzz::model::run_bytes(data);
});
