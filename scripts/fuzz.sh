#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for the given number of seconds each (default 60),
# starting from (and adding to) the stored corpus in fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [seconds]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); installs cargo-fuzz if it
# is missing. A crash stops the run and leaves its input in fuzz/artifacts/<target>/; replay it
# with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...` (from fuzz/), or on
# stable by copying it into fuzz/corpus/model/ and running `cargo test --test fuzz_corpus`.
#
# Afterwards, shrink the grown corpus before committing it:
#   (cd fuzz && cargo +nightly fuzz cmin model)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
rustup toolchain list | grep -q '^nightly' || {
    echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
}

for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    echo "=== fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
done
