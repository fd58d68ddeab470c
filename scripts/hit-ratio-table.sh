#!/usr/bin/env bash
# Runs the hit_ratio tool on every row of the issue's table, at 1 and 2 threads, printing the
# tool's own output lines (cascache, moka, moka(exact), quick_cache, exact LRU side by side, and
# on 1 thread ARC and LIRS), each followed by how many entries the concurrent caches held
# (mean / max, % of capacity) and their throughput over the replay.
# Usage: scripts/hit-ratio-table.sh [traces dir]   (default: traces, in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
traces=${1:-traces}
cargo build --release -p cascache-bench --bin hit_ratio -q
rows=(
  "arc/OLTP.lis.zst 1000" "arc/OLTP.lis.zst 5000" "arc/P3.lis.zst 32768" "arc/P12.lis.zst 32768"
  "lirs/loop.trace.gz 512" "lirs/sprite.trace.gz 256" "lirs/multi2.trace.gz 512" "lirs/gli.trace.gz 1000"
  "kv/cache2k-web07.trace.xz 1000" "kv/cache2k-orm-busy.trace.xz 5000" "kv/scarab-recs.trace.xz 25000"
  "block/cloudphysics-w106.trace.xz 10000"
)
# The tool's last line is the row, the line before it the column names (printed once per thread
# count: `header` is reset below); the occupancy line starts "# entries held".
run() {
  local out
  out=$("${CARGO_TARGET_DIR:-target}"/release/hit_ratio "$@" 2>/dev/null)
  if [ -z "$header" ]; then
    header=printed
    echo "$out" | tail -2 | head -1
  fi
  echo "$out" | tail -1
  echo "$out" | grep '^# entries held' | sed 's/ (sampled every [0-9]* requests)//; s/^# /    /'
  echo "$out" | grep '^# throughput' | sed 's/ ([0-9]* thread(s), whole replay)//; s/^# /    /'
}
# On 1 thread the rows also show ARC and LIRS, classic policies at exactly the row's capacity
# (single-threaded references; the 2-thread rows would repeat them).
for threads in 1 2; do
  classic=()
  [ "$threads" = 1 ] && classic=(--classic)
  header=
  for row in "${rows[@]}"; do
    set -- $row
    run "$traces/$1" "$2" "$threads" "${classic[@]}"
  done
  run zipf 100000 "$threads" "${classic[@]}"
done
