#!/usr/bin/env bash
# Capacity sweep of the hit_ratio tool over every trace in `traces/` (issue 16): cascache against
# its two peers held to their capacity, moka(exact) and quick_cache, in both multi-thread replays.
#
# Usage: scripts/hit-ratio-sweep.sh [--quick] [--out FILE] [--jobs N] [traces dir]
#        scripts/hit-ratio-sweep.sh --summarize FILE
#
#   --quick          a subset (OLTP, P3, P12, the LIRS traces, a few kv traces) in about 3 minutes
#   --out FILE       also keep the raw points as TSV in FILE (written as the points finish, so
#                    an interrupted sweep keeps what it measured); --summarize FILE prints the
#                    table and summary of such a file again without running anything
#   --jobs N         1-thread points run N at a time (default 2; they do not depend on timing).
#                    2-thread points always run one at a time, alone, so that each has the cores.
#   [traces dir]     default `traces`, in the repository
#
# Points. For every trace (any file of the traces dir except the docs and licence texts; traces
# with fewer than 128 distinct keys, the CacheLib format fixtures, are skipped), the footprint F
# (distinct keys) is read from the tool's own first line. Capacities are F/64, F/32, F/16, F/8,
# F/4 and F/2 (traces of 2M requests or more: F/64, F/16, F/4, F/2, to keep the sweep within
# its budget); OLTP, P3 and P12 also run at 8192, 16384, 32768, 65536 and 131072 entries, and a
# fraction of F within a factor of sqrt(2) of one of those is left out as a near-duplicate.
# Each capacity runs in three ways:
#   seq     1 thread. The shared-cursor replay and --independent coincide on one thread (both
#           replay the trace in order), so one run stands for both modes.
#   shared  2 threads taking batches of 16 requests from one shared cursor (the tool's default).
#   indep   2 threads as independent clients (--independent: chunk c of 64 requests goes to
#           thread c % 2, each thread replays its chunks on its own; the order depends on timing).
# Each point runs the tool once with `--only cascache --only 'moka(exact)' --only quick_cache`
# (moka(exact) is moka with run_pending_tasks() after every insert, held to its capacity; plain
# moka holds more than its capacity between batches and is left out). 2-thread figures vary
# from run to run: run a point again before trusting a small difference.
#
# Output: one line per point on stderr as it finishes; at the end, on stdout, the table (Δ =
# cascache minus the better peer, in points of hit %) and a summary line: the number of points,
# those where cascache >= max(moka(exact), quick_cache), those more than 0.5 and more than 1
# point below, the worst point, and the largest drop of cascache from 1 to 2 threads (shared
# cursor; the --independent one follows it).
#
# Standalone: it builds the tool with cargo (release) and needs only bash and awk.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
jobs=2
out=""
summarize=""
traces=traces
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a file}; shift ;;
    --jobs) jobs=${2:?--jobs needs a count}; shift ;;
    --summarize) summarize=${2:?--summarize needs a file}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) traces=$1 ;;
  esac
  shift
done

# The table and summary line of a TSV of points:
# trace, capacity, footprint, threads, mode, cascache, moka(exact), quick_cache.
report() {
  sort -t$'\t' -k1,1 -k2,2n -k4,4n -k5,5r "$1" | awk -F'\t' '
    function best(m, q) { return m > q ? m : q }
    function peer(m, q) { return m > q ? "moka(exact)" : "quick_cache" }
    BEGIN {
      printf "%-34s %9s %7s %7s %-6s %8s %11s %11s %7s\n", "trace", "capacity", "of F", "threads", "mode", "cascache", "moka(exact)", "quick_cache", "Δ"
    }
    {
      trace = $1; cap = $2; f = $3; t = $4; mode = $5; c = $6; m = $7; q = $8
      d = c - best(m, q)
      printf "%-34s %9d %7s %7d %-6s %8.2f %11.2f %11.2f %+7.2f\n", trace, cap, sprintf("1/%.3g", f / cap), t, mode, c, m, q, d
      n++
      if (d >= 0) ok++
      if (d < -0.5) half++
      if (d < -1) one++
      if (n == 1 || d < worst) {
        worst = d
        wp = sprintf("%s @ %d, %d thread(s), %s: %.2f below (cascache %.2f, %s %.2f)", trace, cap, t, mode, -d, c, peer(m, q), best(m, q))
      }
      key = trace SUBSEP cap
      if (mode == "seq") one_thread[key] = c
      else two_threads[mode, key] = c
    }
    END {
      split("shared indep", modes, " ")
      for (i = 1; i <= 2; i++) {
        drop[i] = ""; dv = 0
        for (key in one_thread) {
          if (!((modes[i], key) in two_threads)) continue
          x = one_thread[key] - two_threads[modes[i], key]
          split(key, k, SUBSEP)
          if (drop[i] == "" || x > dv) {
            dv = x
            drop[i] = sprintf("%s @ %d, %.2f -> %.2f (%+.2f)", k[1], k[2], one_thread[key], two_threads[modes[i], key], -x)
          }
        }
        if (drop[i] == "") drop[i] = "none"
      }
      printf "\nsummary: %d points; cascache >= max(moka(exact), quick_cache) at %d; more than 0.5 below at %d, more than 1 below at %d; worst: %s; largest 1->2-thread drop of cascache, shared cursor: %s (--independent: %s)\n", n, ok, half, one, n ? wp : "none", drop[1], drop[2]
    }'
}

if [ -n "$summarize" ]; then
  report "$summarize"
  exit 0
fi

echo "# building the hit_ratio tool (cargo build --release -p cascache-bench --bin hit_ratio)" >&2
bin=$(cargo build --release -p cascache-bench --bin hit_ratio --message-format=json -q |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "error: no hit_ratio executable from cargo" >&2; exit 1; }

tsv=$(mktemp "${TMPDIR:-/tmp}/hit-ratio-sweep.XXXXXX")
points=$(mktemp "${TMPDIR:-/tmp}/hit-ratio-points.XXXXXX")
trap 'rm -f "$tsv" "$points"' EXIT
[ -n "$out" ] && : >"$out"

# One point: runs the tool and appends its TSV line to $tsv (and $out), reporting it on stderr.
run_point() {
  local trace=$1 cap=$2 footprint=$3 threads=$4 mode=$5 flags=() output line
  [ "$mode" = indep ] && flags=(--independent)
  if ! output=$("$bin" "$trace" "$cap" "$threads" "${flags[@]}" \
    --only cascache --only 'moka(exact)' --only quick_cache 2>&1); then
    printf 'error: %s %s %s %s failed:\n%s\n' "$trace" "$cap" "$threads" "$mode" "$output" >&2
    return 0
  fi
  # The tool's last two lines are the column names and the row.
  line=$(printf '%s\n' "$output" | tail -2 | awk -v tr="${trace#"$traces"/}" -v cap="$cap" \
    -v f="$footprint" -v t="$threads" -v mode="$mode" '
      NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tr, cap, f, t, mode, $col["cascache"], $col["moka(exact)"], $col["quick_cache"] }')
  printf '%s\n' "$line" >>"$tsv"
  [ -n "$out" ] && printf '%s\n' "$line" >>"$out"
  printf '# %4ds  %s\n' "$(($(date +%s) - sweep_start))" "$(printf '%s' "$line" | tr '\t' ' ')" >&2
}
export -f run_point
sweep_start=$(date +%s)
export bin tsv out traces sweep_start

# Capacities of a trace: fractions of its footprint (the denominators) and fixed counts, a
# fraction within sqrt(2) of a fixed count left out.
capacities() {
  local footprint=$1 fractions=$2 fixed=$3
  awk -v f="$footprint" -v fr="$fractions" -v fx="$fixed" 'BEGIN {
    nfx = split(fx, fixed, " ")
    for (i = 1; i <= nfx; i++) caps[fixed[i]] = 1
    nfr = split(fr, den, " ")
    for (i = 1; i <= nfr; i++) {
      c = int(f / den[i] + 0.5)
      if (c < 1) continue
      near = 0
      for (j = 1; j <= nfx; j++) {
        r = c > fixed[j] ? c / fixed[j] : fixed[j] / c
        if (r < sqrt(2)) near = 1
      }
      if (!near) caps[c] = 1
    }
    for (c in caps) print c
  }' | sort -n | tr '\n' ' '
}

fixed_arc="8192 16384 32768 65536 131072"
if [ "$quick" = 1 ]; then
  # trace (relative to the traces dir), fractions, fixed capacities
  plan=(
    "arc/OLTP.lis.zst||8192 32768 131072"
    "arc/P3.lis.zst||16384 131072"
    "arc/P12.lis.zst||32768"
    "kv/cache2k-web07.trace.xz|64 8 2|"
    "kv/cache2k-orm-busy.trace.xz|16|"
    "kv/scarab-recs.trace.xz|16|"
  )
  for f in "$traces"/lirs/*; do plan+=("${f#"$traces"/}|64 8 2|"); done
else
  plan=()
  while IFS= read -r f; do
    case "${f##*/}" in
      OLTP.lis* | P3.lis* | P12.lis*) plan+=("${f#"$traces"/}|64 32 16 8 4 2|$fixed_arc") ;;
      *) plan+=("${f#"$traces"/}|64 32 16 8 4 2|") ;;
    esac
  done < <(find "$traces" -type f ! -name '*.md' ! -name '*LICENSE*' ! -name '.*' | sort)
fi

# The points: trace, capacity, footprint (one per line, tab separated).
for entry in "${plan[@]}"; do
  IFS='|' read -r rel fractions fixed <<<"$entry"
  trace=$traces/$rel
  # The tool's first line: "# <name>: <requests> requests, <keys> unique keys (...)".
  if ! head=$("$bin" "$trace" 1 --only LRU 2>&1 | grep ' unique keys'); then
    echo "# skipped $rel: the tool could not read it" >&2
    continue
  fi
  requests=$(printf '%s' "$head" | sed 's/.*: \([0-9]*\) requests, .*/\1/')
  footprint=$(printf '%s' "$head" | sed 's/.* \([0-9]*\) unique keys.*/\1/')
  if [ "$footprint" -lt 128 ]; then
    echo "# skipped $rel: $footprint distinct keys (a format fixture, too small to sweep)" >&2
    continue
  fi
  if [ "$quick" = 0 ] && [ "$requests" -ge 2000000 ]; then
    fractions=${fractions/64 32 16 8 4 2/64 16 4 2}
  fi
  for cap in $(capacities "$footprint" "$fractions" "$fixed"); do
    printf '%s\t%s\t%s\n' "$trace" "$cap" "$footprint" >>"$points"
  done
done
echo "# $(wc -l <"$points") capacities over $(cut -f1 "$points" | sort -u | wc -l) traces, 3 runs each (seq, shared, indep)" >&2

# 1 thread: independent of timing, so $jobs at a time.
echo "# 1 thread ($jobs at a time)" >&2
awk -F'\t' '{ print $1; print $2; print $3 }' "$points" |
  xargs -d '\n' -n 3 -P "$jobs" bash -c 'run_point "$1" "$2" "$3" 1 seq' _
# 2 threads: one run at a time, alone.
echo "# 2 threads (one at a time)" >&2
while IFS=$'\t' read -r trace cap footprint; do
  run_point "$trace" "$cap" "$footprint" 2 shared
  run_point "$trace" "$cap" "$footprint" 2 indep
done <"$points"

report "$tsv"
echo "# sweep took ${SECONDS}s" >&2
