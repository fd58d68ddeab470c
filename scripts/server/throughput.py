#!/usr/bin/env python3
"""Throughput of the server under test against memcached on loopback, measured in one run with
the rounds interleaved (ref, test, test, ref, ...), each round a fresh closed-loop run of
scripts/server/loadgen (Rust, std threads: N connections, ~10k keys, 32-byte values). Mixes:
get90 (90% get / 10% set) and cas (gets, then cas with that unique). Depths: requests in flight
per connection; 1 is a plain request/reply loop (the founding example's client), 8 a pipelining
client (libmemcached's buffered mode, or a proxy such as twemproxy multiplexing its clients onto
one server connection). Reports the median ops/s of each mix and depth and the ratio test/ref.
It reports only, unless --assert-ratio R is given (then a ratio below R anywhere fails).

    throughput.py --ref-port 11211 --test-port 11311 [--rounds 5] [--secs 2] [--conns 8] [--depths 1,8]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_LOADGEN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")),
                               "server-loadgen", "release", "cascached-loadgen")


def run(loadgen, port, mix, depth, args):
    cmd = [loadgen, "--addr", "127.0.0.1:%d" % port, "--mix", mix, "--conns", str(args.conns),
           "--secs", str(args.secs), "--keys", str(args.keys), "--value-size", str(args.value_size),
           "--depth", str(depth)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.secs + 120)
    out = p.stdout.decode()
    m = re.search(r"ops_per_sec=(\d+)", out)
    if p.returncode != 0 or not m:
        raise RuntimeError("loadgen on port %d (%s) failed: %s %s" % (port, mix, out, p.stderr.decode()))
    errors = int(re.search(r"errors=(\d+)", out).group(1))
    return int(m.group(1)), errors, out.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-port", type=int, required=True)
    ap.add_argument("--test-port", type=int, required=True)
    ap.add_argument("--names", default="memcached,cascached")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=2.0)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--value-size", type=int, default=32)
    ap.add_argument("--mixes", default="get90,cas")
    ap.add_argument("--depths", default="1,8")
    ap.add_argument("--loadgen", default=DEFAULT_LOADGEN)
    ap.add_argument("--assert-ratio", type=float, default=None,
                    help="fail when test/ref is below this in any mix (default: report only)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not os.access(args.loadgen, os.X_OK):
        sys.exit("throughput: no loadgen at %s (cargo build --release --manifest-path "
                 "scripts/server/loadgen/Cargo.toml --target-dir target/server-loadgen)" % args.loadgen)
    ref_name, test_name = args.names.split(",")
    runs = [(m, int(d)) for d in args.depths.split(",") for m in args.mixes.split(",")]
    sides = [(ref_name, args.ref_port), (test_name, args.test_port)]
    results = {(n, run_): [] for n, _ in sides for run_ in runs}
    errors = 0
    for r in range(args.rounds):
        for m, d in runs:
            order = sides if r % 2 == 0 else sides[::-1]
            for name, port in order:
                ops, errs, line = run(args.loadgen, port, m, d, args)
                errors += errs
                results[(name, (m, d))].append(ops)
                if args.verbose:
                    print("  round %d %-6s depth %-2d %-10s %s" % (r + 1, m, d, name, line))
    print("throughput: loopback, server -t 2, %d connections, %d keys, %d-byte values, "
          "%d interleaved rounds x %.0fs, medians:" % (args.conns, args.keys, args.value_size,
                                                      args.rounds, args.secs))
    worst = None
    for m, d in runs:
        ref = statistics.median(results[(ref_name, (m, d))])
        test = statistics.median(results[(test_name, (m, d))])
        ratio = test / ref if ref else 0.0
        worst = ratio if worst is None else min(worst, ratio)
        print("  %-6s depth %-2d %s %9.0f ops/s   %s %9.0f ops/s   ratio %s/%s = %.2f   (rounds: %s | %s)"
              % (m, d, ref_name, ref, test_name, test, test_name, ref_name, ratio,
                 " ".join(str(x) for x in results[(ref_name, (m, d))]),
                 " ".join(str(x) for x in results[(test_name, (m, d))])))
    if errors:
        print("throughput: %d unexpected replies during the runs" % errors)
    if args.assert_ratio is not None and worst < args.assert_ratio:
        print("throughput: FAIL: worst ratio %.2f < %.2f" % (worst, args.assert_ratio))
        sys.exit(1)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
