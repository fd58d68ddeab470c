#!/usr/bin/env bash
# Negative control of the linearizability checker: builds the deliberately broken crate
# (`--cfg cascache_broken_seal`: removal unlinks an entry without sealing its value pointer, so a
# compare-and-swap racing a remove can "succeed" on a dead entry) and requires
# tests/linearizability.rs to find a non-linearizable history. The test
# `negative_control_broken_seal_is_caught` fails if none is found within LIN_HISTORIES
# (default 200,000) CAS-vs-remove histories or 300 s; the ordinary check is ignored there.
#
# Usage: scripts/linearizability-negative.sh [extra cargo test args]
# Its own target directory keeps the normal build's artifacts intact.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
CARGO_TARGET_DIR=target/broken RUSTFLAGS="--cfg cascache_broken_seal" \
    cargo test --release --test linearizability "$@" -- --nocapture
echo "linearizability negative control: the broken build was caught ($(($(date +%s) - start)) s including the build)"
