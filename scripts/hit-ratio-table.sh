#!/usr/bin/env bash
# Runs the hit_ratio tool on every row of the issue's table, at 1 and 2 threads, printing the
# tool's own output lines (cascache, moka, quick_cache, exact LRU side by side).
# Usage: scripts/hit-ratio-table.sh [traces dir]   (default: ../shared/traces)
set -euo pipefail
cd "$(dirname "$0")/.."
traces=${1:-../shared/traces}
cargo build --release --example hit_ratio -q
rows=(
  "arc/OLTP.lis.zst 1000" "arc/OLTP.lis.zst 5000" "arc/P3.lis.zst 32768" "arc/P12.lis.zst 32768"
  "lirs/loop.trace.gz 512" "lirs/sprite.trace.gz 256" "lirs/multi2.trace.gz 512" "lirs/gli.trace.gz 1000"
  "kv/cache2k-web07.trace.xz 1000" "kv/cache2k-orm-busy.trace.xz 5000" "kv/scarab-recs.trace.xz 25000"
  "block/cloudphysics-w106.trace.xz 10000"
)
for threads in 1 2; do
  for row in "${rows[@]}"; do
    set -- $row
    ./target/release/examples/hit_ratio "$traces/$1" "$2" "$threads" 2>/dev/null | tail -1
  done
  ./target/release/examples/hit_ratio zipf 100000 "$threads" 2>/dev/null | tail -1
done
