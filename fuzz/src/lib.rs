//! Fuzzing support for cascache: the differential model the fuzz targets run. The model lives in
//! its own file so that `tests/fuzz_corpus.rs` can include it and replay the stored corpus on
//! stable Rust without libFuzzer.

pub mod model;
