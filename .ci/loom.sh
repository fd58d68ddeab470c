#!/usr/bin/env bash
# loom models of every atomic protocol (tests/loom_*.rs). Both cfgs are required: with only
# `--cfg loom`, loom cannot see crossbeam-epoch's atomics (the negative controls catch that).
# Each model prints its number of executions; LOOM_MAX_PREEMPTIONS overrides every model's bound.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test 'loom_*' -- --test-threads=1 --nocapture 2>&1 \
  | grep -v -E '^(stack backtrace:|note: run with)' | grep -v -E '^\s+[0-9]+: |^\s+at '
