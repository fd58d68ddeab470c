//! Replays the `memcache_parser` fuzz target's corpus (`fuzz/corpus/memcache_parser/`) through
//! the same checks the target runs, so `cargo test` keeps every input the fuzzer kept passing.

#[test]
fn fuzz_corpus_passes_the_target_checks() {
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/memcache_parser"
    );
    let mut inputs = 0;
    for entry in std::fs::read_dir(corpus).expect("the corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| cascached::fuzzing::check(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        inputs += 1;
    }
    assert!(inputs >= 50, "only {inputs} corpus inputs");
}
