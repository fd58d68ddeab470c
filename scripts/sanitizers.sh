#!/usr/bin/env bash
# Runs the stress tests (tests/stress.rs, tests/bounded.rs; default tests only, not the `_heavy`
# ignored ones) under AddressSanitizer (+ LeakSanitizer) and/or ThreadSanitizer on nightly.
#
#   scripts/sanitizers.sh [asan|tsan|all] [-- <libtest args, e.g. a test-name filter>]
#
# Default mode: all (asan, then tsan; both run even if the first fails; exit status is non-zero if
# either fails). Each mode has its own target dir (target/asan, target/tsan). Takes about 2 minutes
# per mode on 2 cores with a warm target dir, longer for the first (tsan) build of std.
#
# Both modes pass `--cfg crossbeam_sanitize`, as crossbeam's own sanitizer CI does: crossbeam-epoch
# then seals garbage bags after 4 objects instead of 64 and drains every expired bag on each
# collect, so memory is freed sooner and more often, which gives ASan more use-after-free chances.
# Set CROSSBEAM_SANITIZE=0 to leave it out.
#
# asan: `detect_leaks=1`. LeakSanitizer reports only memory that is unreachable at exit. Garbage
#   left on crossbeam-epoch's global collector at exit is still reachable (the collector lives in a
#   static; sealed bags hang off its queue, unsealed ones off the registered `Local`s), so it is not
#   reported and no suppressions file is needed. A real leak (a value nobody can reach) is.
#   Std is not rebuilt (no -Zbuild-std): the allocator and mem* are intercepted anyway.
# tsan: needs -Zbuild-std (std itself must be instrumented, and built with cfg(sanitize = "thread")
#   so `Arc` uses acquire loads instead of fences TSan does not model) and the nightly rust-src
#   component (installed here if missing). crossbeam-epoch >= 0.9.18 and crossbeam-utils detect
#   TSan in their build scripts (`cfg(crossbeam_sanitize_thread)`) and replace their fence-based
#   synchronisation with acquire loads that TSan understands, so no suppressions are needed.
#
# Extra sanitizer options can be given the usual way; they are appended, so they win:
#   ASAN_OPTIONS=detect_stack_use_after_return=1 scripts/sanitizers.sh asan
#   TSAN_OPTIONS=halt_on_error=1 scripts/sanitizers.sh tsan
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-all}"
[[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift
case "$mode" in
  asan | tsan | all) ;;
  *)
    echo "usage: scripts/sanitizers.sh [asan|tsan|all] [-- <libtest args>]" >&2
    exit 2
    ;;
esac

target=x86_64-unknown-linux-gnu
tests=(--test stress --test bounded)
cfg=""
[[ "${CROSSBEAM_SANITIZE:-1}" != 0 ]] && cfg="--cfg crossbeam_sanitize"

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal >/dev/null
fi

run_asan() {
  echo "=== AddressSanitizer + LeakSanitizer ($(date -u +%H:%M:%S))"
  RUSTFLAGS="-Zsanitizer=address $cfg" \
    RUSTDOCFLAGS="-Zsanitizer=address $cfg" \
    ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    CARGO_TARGET_DIR=target/asan \
    cargo +nightly test --target "$target" "${tests[@]}" -- "$@"
}

run_tsan() {
  echo "=== ThreadSanitizer ($(date -u +%H:%M:%S))"
  if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    rustup component add --toolchain nightly rust-src
  fi
  # A report does not stop the run (halt_on_error=0); the process then exits with status 66.
  RUSTFLAGS="-Zsanitizer=thread $cfg" \
    RUSTDOCFLAGS="-Zsanitizer=thread $cfg" \
    TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
    CARGO_TARGET_DIR=target/tsan \
    cargo +nightly test -Zbuild-std --target "$target" "${tests[@]}" -- "$@"
}

status=0
if [[ "$mode" == asan || "$mode" == all ]]; then
  run_asan "$@" || status=1
fi
if [[ "$mode" == tsan || "$mode" == all ]]; then
  run_tsan "$@" || status=1
fi
echo "=== sanitizers ($mode): $([[ $status == 0 ]] && echo passed || echo FAILED) ($(date -u +%H:%M:%S))"
exit "$status"
