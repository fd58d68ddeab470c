#!/usr/bin/env python3
"""The founding example, run for real: memcached's CAS increment loop with pymemcache, copied
verbatim from the seed document, from several processes at once on one key. Every increment
must land: the final value is exactly procs * iters.

    seed_loop.py --port 11211 [--procs 4] [--iters 500]

The loop's text is checked against the seed document when one is found (--seed-doc, or
shared/seed/ beside the repository), so the copy below cannot drift from it.
"""

import argparse
import glob
import multiprocessing
import os
import sys
import time

import pymemcache.client.base as memcache

# ---- verbatim from the seed document (shared/seed/), not one character changed ----------------
LOOP_SOURCE = '''\
def cas_increment(client, key):
    while True:
        result, cas_id = client.gets(key)
        if result is None:
            # Handle missing key case
            break

        incremented_value = int(result) + 1
        if client.cas(key, str(incremented_value), cas_id):
            break
'''
# -----------------------------------------------------------------------------------------------
exec(LOOP_SOURCE)  # defines cas_increment exactly as the document writes it


class CountingClient(memcache.Client):
    """pymemcache's Client, counting the round trips the loop makes (the loop is untouched)."""

    gets_calls = 0
    cas_calls = 0

    def gets(self, *a, **kw):
        self.gets_calls += 1
        return super().gets(*a, **kw)

    def cas(self, *a, **kw):
        self.cas_calls += 1
        return super().cas(*a, **kw)


def worker(port, key, iters, start, out):
    client = CountingClient(("127.0.0.1", port), connect_timeout=5, timeout=10)
    start.wait()
    for _ in range(iters):
        cas_increment(client, key)  # noqa: F821 (defined by exec above)
    out.put((client.gets_calls, client.cas_calls))
    client.close()


def check_verbatim(seed_doc):
    candidates = [seed_doc] if seed_doc else []
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", ".."))
    for base in (os.path.join(repo, "..", "shared", "seed"), os.path.join(repo, "shared", "seed"),
                 "/work/shared/seed"):
        candidates += sorted(glob.glob(os.path.join(base, "*")))
    for path in candidates:
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        if "cas_increment" in text:
            if LOOP_SOURCE in text.replace("\r\n", "\n"):
                return "loop text matches the seed document %s" % os.path.basename(path)
            sys.exit("seed_loop: FAIL: the loop differs from the seed document %s" % path)
    return "seed document not found; verbatim check skipped"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--key", default="my_key")
    ap.add_argument("--seed-doc", default=None, help="path of the seed document to check against")
    args = ap.parse_args()

    note = check_verbatim(args.seed_doc)
    client = memcache.Client(("127.0.0.1", args.port), connect_timeout=5, timeout=10)
    # "Assume 'my_key' is already set"
    if not client.set(args.key, "0", noreply=False):
        sys.exit("seed_loop: FAIL: set %s did not store" % args.key)

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(args.port, args.key, args.iters, start, out))
             for _ in range(args.procs)]
    for p in procs:
        p.start()
    t0 = time.time()
    start.set()
    counts = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    dt = time.time() - t0
    bad = [p.exitcode for p in procs if p.exitcode != 0]

    value, _ = client.gets(args.key)
    final = int(value) if value is not None else None
    expected = args.procs * args.iters
    gets_calls = sum(c[0] for c in counts)
    cas_calls = sum(c[1] for c in counts)
    print("seed loop: %d processes x %d increments on %r -> final value %s (expected %d); "
          "%d gets, %d cas, %d retries (cas EXISTS); %.1fs; %s"
          % (args.procs, args.iters, args.key, final, expected, gets_calls, cas_calls,
             cas_calls - expected, dt, note))
    if bad or final != expected:
        sys.exit("seed_loop: FAIL (worker exit codes %s, final %s != %d)" % (bad, final, expected))


if __name__ == "__main__":
    main()
