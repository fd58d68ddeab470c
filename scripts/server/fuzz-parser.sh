#!/usr/bin/env bash
# Fuzzes cascached's parser and session (fuzz/fuzz_targets/memcache_parser.rs) for a fixed time
# with libFuzzer, starting from the stored corpus, and fails on a crash. The target is built the
# way cargo-fuzz builds it (sancov instrumentation, --cfg fuzzing, debug assertions and overflow
# checks), without cargo-fuzz itself and without AddressSanitizer (cascached has no unsafe code),
# so a clean machine needs only a nightly toolchain, which this installs if missing.
#
#   scripts/server/fuzz-parser.sh [SECONDS]     # default FUZZ_SECS or 60; FUZZ_SEED to replay
#
# Prints the seed, the number of executions, and on a crash the input (base64) and its file.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SECS="${1:-${FUZZ_SECS:-60}}"
SEED="${FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz-parser"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz-parser: installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal >/dev/null
fi

t0=$(date +%s)
mkdir -p "$TARGET_DIR"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo +nightly build --release --quiet --manifest-path "$ROOT/fuzz/Cargo.toml" \
    --bin memcache_parser --target "$TRIPLE" --target-dir "$TARGET_DIR" >"$TARGET_DIR.build.log" 2>&1 \
    || { tail -30 "$TARGET_DIR.build.log"; echo "fuzz-parser: build failed"; exit 1; }
echo "fuzz-parser: built in $(($(date +%s) - t0))s"

WORK="$(mktemp -d /tmp/fuzz-parser.XXXXXX)"
mkdir -p "$WORK/corpus" "$WORK/artifacts"
# New inputs go to the scratch corpus; the stored one is only read.
set +e
"$TARGET_DIR/$TRIPLE/release/memcache_parser" "$WORK/corpus" "$ROOT/fuzz/corpus/memcache_parser" \
    -max_total_time="$SECS" -seed="$SEED" -artifact_prefix="$WORK/artifacts/" \
    -print_final_stats=1 >"$WORK/log" 2>&1
status=$?
set -e
runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/log" | tail -1)"
rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$WORK/log" | tail -1)"
crash="$(ls "$WORK/artifacts" 2>/dev/null | head -1)"
if ((status != 0)) || [[ -n "$crash" ]]; then
    tail -40 "$WORK/log"
    [[ -n "$crash" ]] && echo "crashing input ($WORK/artifacts/$crash), base64: $(base64 -w0 "$WORK/artifacts/$crash")"
    echo "fuzz-parser: CRASH after ${runs:-?} executions, seed $SEED (replay: FUZZ_SEED=$SEED $0 $SECS)"
    exit 1
fi
echo "fuzz-parser: ${runs:-?} executions in ${SECS}s (${rate:-?}/s), seed $SEED, no crash; $(ls "$WORK/corpus" | wc -l) new corpus inputs in $WORK/corpus"
rm -rf "$WORK/artifacts"
