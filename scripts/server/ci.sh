#!/usr/bin/env bash
# The proof with real clients that cascached is a memcached: every check in scripts/server/,
# against memcached 1.6.18 as the reference, on loopback ports nobody else uses. Servers run in
# the foreground of this script and are killed when it exits.
#
#   scripts/server/ci.sh                      # everything (a few minutes on 2 cores)
#
# Environment knobs:
#   DIFF_COMMANDS=20000   differential run size      DIFF_CONNS=4   connections per server
#   DIFF_SEEDS="1 2"      the fixed seeds; a new random seed (printed) runs too, unless DIFF_RANDOM=0
#   THROUGHPUT_ROUNDS=5 THROUGHPUT_SECS=2            THROUGHPUT_ASSERT=0.8 makes the ratio a gate
#   SKIP_BUILD=1          use the binaries already built
#   SKIP_INSTALL=1        do not run install-deps.sh
#   FUZZ_SECS=60          how long h. fuzzes the parser
#   CASCACHED=/usr/bin/memcached   test another binary instead (validates the harness: all pass)
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

DIFF_COMMANDS="${DIFF_COMMANDS:-20000}"
DIFF_CONNS="${DIFF_CONNS:-4}"
DIFF_SEEDS="${DIFF_SEEDS:-1 2}"
DIFF_RANDOM_SEED=""
[[ "${DIFF_RANDOM:-1}" != 0 ]] && DIFF_RANDOM_SEED=$((RANDOM * 32768 + RANDOM))
THROUGHPUT_ROUNDS="${THROUGHPUT_ROUNDS:-5}"
THROUGHPUT_SECS="${THROUGHPUT_SECS:-2}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CASCACHED="${CASCACHED:-$TARGET/release/cascached}"
LOADGEN="$TARGET/server-loadgen/release/cascached-loadgen"
WORK="$(mktemp -d /tmp/cascached-ci.XXXXXX)"
T0=$(date +%s)

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n--- %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server NAME BINARY MEM_MB: starts it on a free port; sets $PORT and $PID; 1 if it fails
start_server() {
    local name="$1" bin="$2" mem="$3" extra=()
    [[ "$(basename "$bin")" == memcached* && "$(id -u)" == 0 ]] && extra=(-u root)
    PORT="$(free_port)"
    "$bin" -p "$PORT" -l 127.0.0.1 -U 0 -t 2 -m "$mem" "${extra[@]}" >"$WORK/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    local i
    for i in $(seq 100); do
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "$name: exited at start: $(tail -5 "$WORK/$name.log")"
            return 1
        fi
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name: not listening on $PORT after 10s"
    return 1
}

RESULTS=()   # "name|PASS/FAIL/REPORT|figure"
record() { RESULTS+=("$1|$2|$3"); }
# run_proof NAME LOGFILE CMD...: runs it with a time limit, tees its output
run_proof() {
    local name="$1" log="$2"
    shift 2
    timeout 900 "$@" 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}
alive() { # alive NAME PID: reports a crash
    if ! kill -0 "$2" 2>/dev/null; then
        echo "!!! $1 (pid $2) is gone: crashed or exited; last log lines:"
        tail -20 "$WORK/$1.log"
        record "$1 alive" FAIL "process exited during the proofs"
        return 1
    fi
}

if [[ -z "${SKIP_INSTALL:-}" ]]; then
    step "install-deps"
    bash "$HERE/install-deps.sh" || { echo "install-deps failed"; exit 1; }
fi

step "build cascached (release) and the load generator"
CC_BUILT=1
if [[ -z "${SKIP_BUILD:-}" ]]; then
    [[ "$CASCACHED" == "$TARGET/release/cascached" ]] && { cargo build --release -p cascached 2>&1 | tail -3; }
    cargo build --release --manifest-path "$HERE/loadgen/Cargo.toml" --target-dir "$TARGET/server-loadgen" 2>&1 | tail -1
fi
[[ -x "$CASCACHED" ]] || { echo "no $CASCACHED"; CC_BUILT=0; }

step "start servers"
start_server memcached /usr/bin/memcached 64 && MC_PORT=$PORT && MC_PID=$PID || exit 1
start_server memcached-diff /usr/bin/memcached 1024 && MCD_PORT=$PORT || exit 1
start_server memcached-diff2 /usr/bin/memcached 1024 && MCD2_PORT=$PORT || exit 1
CC_UP=0
if ((CC_BUILT)) && start_server cascached "$CASCACHED" 64; then
    CC_PORT=$PORT CC_PID=$PID
    if start_server cascached-diff "$CASCACHED" 1024; then
        CCD_PORT=$PORT CCD_PID=$PID CC_UP=1
    fi
fi
echo "memcached $MC_PORT, memcached (differential) $MCD_PORT + $MCD2_PORT; cascached: $( ((CC_UP)) && echo "$CC_PORT, differential $CCD_PORT" || echo "NOT RUNNING")"
((CC_UP)) || record "cascached starts" FAIL "$CASCACHED -p PORT -l 127.0.0.1 -t 2 -m 64 did not serve"

figure() { grep -m1 "$1" "$2" 2>/dev/null | sed 's/^ *//' | cut -c1-220; }

# a. the founding example's loop
step "a. founding CAS loop, pymemcache, 4 processes x 500 increments"
run_proof seed-mc "$WORK/a-mc.out" python3 "$HERE/seed_loop.py" --port "$MC_PORT" \
    || record "seed loop on memcached (harness check)" FAIL "$(figure 'seed' "$WORK/a-mc.out")"
if ((CC_UP)); then
    if run_proof seed-cc "$WORK/a-cc.out" python3 "$HERE/seed_loop.py" --port "$CC_PORT"; then
        record "a. seed loop" PASS "$(figure 'seed loop:' "$WORK/a-cc.out")"
    else
        record "a. seed loop" FAIL "$(figure 'seed' "$WORK/a-cc.out")"
    fi
    alive cascached "$CC_PID"
else
    record "a. seed loop" FAIL "cascached not running"
fi

# b. memccapable
step "b. memccapable -a (libmemcached conformance, ASCII)"
run_proof mcap-mc "$WORK/b-mc.out" python3 "$HERE/memccapable.py" --port "$MC_PORT" --name memcached \
    || record "memccapable on memcached (harness check)" FAIL "$(figure 'memccapable' "$WORK/b-mc.out")"
if ((CC_UP)); then
    if run_proof mcap-cc "$WORK/b-cc.out" python3 "$HERE/memccapable.py" --port "$CC_PORT" --name cascached; then
        record "b. memccapable" PASS "$(figure 'memccapable (' "$WORK/b-cc.out")"
    else
        record "b. memccapable" FAIL "$(figure 'memccapable (' "$WORK/b-cc.out")"
    fi
    alive cascached "$CC_PID"
else
    record "b. memccapable" FAIL "cascached not running"
fi

# c. differential
step "c0. differential harness self-check: memcached vs memcached (uniques offset)"
SELF_SEED="${DIFF_SEEDS%% *}"
if run_proof diff-self "$WORK/c0.out" python3 "$HERE/differential.py" --ref-port "$MCD_PORT" \
    --test-port "$MCD2_PORT" --names memcached,memcached-2 --perturb 17 --tolerate-both \
    --commands "$DIFF_COMMANDS" --conns "$DIFF_CONNS" --seed "$SELF_SEED"; then
    record "c0. differential self-check" PASS "$(figure '^differential:' "$WORK/c0.out")"
else
    record "c0. differential self-check" FAIL "$(figure '^differential:' "$WORK/c0.out")"
fi
for seed in $DIFF_SEEDS $DIFF_RANDOM_SEED; do
    label="c. differential seed $seed"
    [[ "$seed" == "$DIFF_RANDOM_SEED" ]] && label="c. differential new random seed $seed"
    step "$label: memcached 1.6.18 vs cascached (replay: DIFF_SEEDS=$seed DIFF_RANDOM=0)"
    if ! ((CC_UP)); then
        record "$label" FAIL "cascached not running"
        continue
    fi
    out="$WORK/c-$seed.out"
    if run_proof diff "$out" python3 "$HERE/differential.py" --ref-port "$MCD_PORT" \
        --test-port "$CCD_PORT" --commands "$DIFF_COMMANDS" --conns "$DIFF_CONNS" --seed "$seed"; then
        record "$label" PASS "$(figure '^differential:' "$out")"
    else
        record "$label" FAIL "$(figure '^differential:' "$out") (replay: DIFF_SEEDS=$seed DIFF_RANDOM=0 bash scripts/server/ci.sh)"
    fi
    alive cascached-diff "$CCD_PID"
done

# instances_proof LABEL TAG SCRIPT FIGURE1 FIGURE2: a proof whose script starts cascached instances
# of its own (--bin): PASS with its two figure lines, FAIL with its first FAIL line (or its last)
instances_proof() {
    local label="$1" tag="$2" script="$3" out="$WORK/$2.out"
    if ! ((CC_BUILT)); then
        record "$label" FAIL "cascached not built"
    elif run_proof "$tag" "$out" python3 "$HERE/$script" --bin "$CASCACHED"; then
        record "$label" PASS "$(figure "$4" "$out"); $(figure "$5" "$out")"
    else
        record "$label" FAIL "$( (grep -m1 'FAIL' "$out" || tail -1 "$out") | cut -c1-200)"
    fi
}

# d. HashClient over 3 instances
step "d. pymemcache HashClient over 3 cascached instances, one stopped"
instances_proof "d. HashClient" d hashclient.py 'keys over 3' 'after failover'

# f. twemproxy in front of 2 instances
step "f. twemproxy (nutcracker, ketama) over 2 cascached instances"
instances_proof "f. twemproxy" f twemproxy.py 'keys through nutcracker' 'founding loop'

# e. throughput
step "e. throughput vs memcached (interleaved rounds)"
if ((CC_UP)); then
    ASSERT=()
    [[ -n "${THROUGHPUT_ASSERT:-}" ]] && ASSERT=(--assert-ratio "$THROUGHPUT_ASSERT")
    if run_proof tput "$WORK/e.out" python3 "$HERE/throughput.py" --ref-port "$MC_PORT" --test-port "$CC_PORT" \
        --rounds "$THROUGHPUT_ROUNDS" --secs "$THROUGHPUT_SECS" --loadgen "$LOADGEN" "${ASSERT[@]}"; then
        for run in "get90  depth 1 " "cas    depth 1 " "get90  depth 8 " "cas    depth 8 "; do
            record "e. throughput ${run//  / }" REPORT "$(figure "  $run" "$WORK/e.out" | sed 's/ *(rounds.*//')"
        done
    elif [[ -n "${THROUGHPUT_ASSERT:-}" ]]; then
        record "e. throughput" FAIL "$(tail -3 "$WORK/e.out" | tr '\n' ' ' | cut -c1-300)"
    else
        record "e. throughput" REPORT "run failed (not gating): $(tail -2 "$WORK/e.out" | tr '\n' ' ' | cut -c1-200)"
    fi
    alive cascached "$CC_PID"
else
    record "e. throughput" REPORT "cascached not running"
fi

# i. items held under -m 64 with 32-byte values, against memcached (issue 15's target, not met
# yet: reported, not gating; cascached's RSS past the limit is checked)
step "i. items held at -m 64, 32-byte values, vs memcached"
if ((CC_BUILT)); then
    if run_proof capacity "$WORK/i.out" python3 "$HERE/capacity.py" --bin "$CASCACHED" --min-ratio 0; then
        record "i. capacity" REPORT "$(figure '^capacity: ' "$WORK/i.out" | sed 's/^capacity: //')"
    else
        record "i. capacity" FAIL "$(tail -1 "$WORK/i.out")"
    fi
else
    record "i. capacity" FAIL "cascached not built"
fi

# g. hostile and faulty clients, each against memcached side by side
step "g. hostile clients: non-reader, 1,000 slow, idle_timeout, 100k churn, -m 64, SIGTERM/SIGINT"
if ((CC_BUILT)); then
    g0=$(date +%s)
    run_proof hostile "$WORK/g.out" python3 "$HERE/hostile.py" --bin "$CASCACHED"
    while IFS= read -r line; do
        line="${line#  }" status="${line%% *}" rest="${line#* }"
        record "g. ${rest%%: *}" "$status" "${rest#*: }"
    done < <(grep -E '^  (PASS|FAIL|REPORT) ' "$WORK/g.out")
    grep -q '^hostile clients: .* 0 failed' "$WORK/g.out" || record "g. hostile clients" FAIL "$(tail -1 "$WORK/g.out")"
    echo "g. took $(($(date +%s) - g0))s"
else
    record "g. hostile clients" FAIL "cascached not built"
fi

# h. the parser's fuzz target for a fixed time (the corpus replay runs in cargo test)
step "h. fuzz the parser (libFuzzer, ${FUZZ_SECS:-60}s)"
if run_proof fuzz "$WORK/h.out" bash "$HERE/fuzz-parser.sh" "${FUZZ_SECS:-60}"; then
    record "h. parser fuzzing" PASS "$(figure '^fuzz-parser: [0-9]' "$WORK/h.out" | cut -d';' -f1); $(figure 'built in' "$WORK/h.out" | sed 's/fuzz-parser: //')"
else
    record "h. parser fuzzing" FAIL "$(tail -1 "$WORK/h.out")"
fi

step "summary ($(($(date +%s) - T0))s)"
pass=0 fail=0
for r in "${RESULTS[@]}"; do
    IFS='|' read -r name status fig <<<"$r"
    printf '%-42s %-6s %s\n' "$name" "$status" "$fig"
    case "$status" in PASS) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; esac
done
echo "logs: $WORK"
echo "server proofs: $pass passed, $fail failed"
((fail == 0))
