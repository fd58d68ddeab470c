#!/usr/bin/env bash
# Negative control of the linearizability checker, fast enough for CI: builds the deliberately
# broken crate (`--cfg cascache_broken_seal`: removal and eviction unlink an entry without
# sealing its value pointer, so a compare-and-swap, a store or a second removal racing them
# "succeeds" on a dead entry) and requires tests/linearizability/ to find a non-linearizable
# history twice: in CAS-vs-remove histories, and in eviction-race histories (no removals: the
# eviction path alone). `negative_control_broken_seal_is_caught` fails if either finds none
# within LIN_HISTORIES (default 100,000) histories or half of LIN_MAX_SECS (default here 20)
# seconds; it usually needs 1-5 CAS-vs-remove and 1-400 eviction-race histories (milliseconds).
# The ordinary history tests are ignored in that build; the hand-made checker tests and the
# injected-fault controls run as usual.
#
# Usage: scripts/linearizability-negative.sh [extra cargo test args]
# Its own target directory keeps the normal build's artifacts intact.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CARGO_TARGET_DIR=target/broken RUSTFLAGS="--cfg cascache_broken_seal" \
    LIN_MAX_SECS="${LIN_MAX_SECS:-20}" \
    cargo test --release --test linearizability "$@" -- --nocapture 2>&1 | tee "$log"
# A filter, or a build without the cfg, would run no negative control and still pass: refuse.
if ! grep -q '^test negative_control_broken_seal_is_caught \.\.\. ok$' "$log"; then
    echo "linearizability negative control: negative_control_broken_seal_is_caught did not pass" >&2
    exit 1
fi
elapsed=$(($(date +%s) - start))
echo "linearizability negative control: the broken build was caught (${elapsed} s with the build)"
