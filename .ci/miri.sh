#!/usr/bin/env bash
# Miri on the unit tests (src/raw/tests.rs), under Tree Borrows: Stacked Borrows reports UB inside
# crossbeam-epoch 0.9 itself. The unit tests use a collector of their own that is dropped at the end,
# so Miri's leak checker stays on.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  if ! { rustup toolchain install nightly --profile minimal >/dev/null &&
         rustup component add --toolchain nightly miri rust-src; }; then
    # The component comes from the Rust distribution server; if this machine cannot reach it,
    # say so loudly rather than fail every other check with it.
    echo "miri.sh: WARNING: could not install Miri (nightly miri + rust-src); Miri did NOT run" >&2
    exit 0
  fi
fi
MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance" CARGO_TARGET_DIR=target/miri \
  cargo +nightly miri test --lib "$@"
