#!/usr/bin/env bash
# loom models of every atomic protocol (tests/loom_*.rs). Both cfgs are required: with only
# `--cfg loom`, loom cannot see crossbeam-epoch's atomics (the negative controls catch that).
# Each model prints its number of executions; LOOM_MAX_PREEMPTIONS overrides every model's bound.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test 'loom_*' -- --test-threads=1 --nocapture 2>&1 \
  | grep -v -E '^(stack backtrace:|note: run with)' | grep -v -E '^\s+[0-9]+: |^\s+at '

# The async loader's negative control: a build whose waiter checks for the outcome and registers
# its waker under two lock holds. loom must find the waiter asleep forever; it reports that as a
# deadlock and aborts the process, so the check is here rather than a #[should_panic].
out="$(RUSTFLAGS="--cfg loom --cfg crossbeam_loom --cfg cascache_broken_handover" \
  CARGO_TARGET_DIR=target/loom-broken \
  cargo test --release --test loom_loader -- --test-threads=1 --nocapture 2>&1)" && {
  echo "negative control negative_handover_lost_wakeup PASSED: loom did not see the lost wakeup" >&2
  exit 1
}
if grep -q '^deadlock; threads' <<<"$out"; then
  echo "loom negative control negative_handover_lost_wakeup: caught ($(grep -m1 '^deadlock; threads' <<<"$out"))"
else
  tail -30 <<<"$out" >&2
  echo "negative control negative_handover_lost_wakeup failed, but not with loom's deadlock" >&2
  exit 1
fi
