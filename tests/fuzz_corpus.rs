//! Replays the stored fuzz corpus (`fuzz/corpus/model/`) through the fuzz target's differential
//! model on stable Rust, without libFuzzer: every input the fuzzer kept (a minimized set that
//! covers what it found) becomes a regression test. `fuzz/src/model.rs` is included by path, so
//! the target and this test decode and check inputs the same way.
//!
//! A crash found by `cargo fuzz` (`fuzz/artifacts/model/crash-*`) can be replayed here by copying
//! it into `fuzz/corpus/model/` once the bug is fixed.

#[path = "../fuzz/src/model.rs"]
#[allow(dead_code)]
mod model;

use std::path::Path;

#[test]
fn replay_model_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/model");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let mut bytes = 0;
    for path in &files {
        let data = std::fs::read(path).expect("corpus file");
        bytes += data.len();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(panic) = std::panic::catch_unwind(|| model::run_bytes(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("corpus input {name} failed: {message}");
        }
    }
    println!(
        "fuzz corpus: replayed {} inputs, {bytes} bytes",
        files.len()
    );
}
