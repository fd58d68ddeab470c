#!/usr/bin/env python3
"""pymemcache's HashClient (rendezvous hashing) over three server instances:

1. keys spread over all three (each key is on exactly the instance the hasher names, checked
   with a plain Client per instance; stats curr_items reported);
2. gets / cas work per key through the HashClient (a fresh unique stores, the same unique again
   is refused, a missing key gives None), and the founding example's loop from 4 processes
   on 20 keys spread over the shards ends with every increment counted;
3. one instance is stopped: configured as pymemcache documents (ignore_exc=True,
   retry_attempts, retry_timeout, dead_timeout), the client marks it dead after a few failed
   calls, re-hashes its keys onto the two live instances and carries on: the live shards keep
   their data, every set after the detection stores, gets / cas work on the moved keys.

    hashclient.py --bin target/release/cascached      # starts its own 3 instances
    hashclient.py --ports P1,P2,P3 --stop-pid PID3    # servers started elsewhere; PID3 serves P3
"""

import argparse
import multiprocessing
import os
import signal
import sys
import time

from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcproto  # noqa: E402
from seed_loop import cas_increment  # noqa: E402  (the verbatim founding loop)

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("  FAIL: " + what, flush=True)


def make_hash_client(ports):
    return HashClient([("127.0.0.1", p) for p in ports], ignore_exc=True, retry_attempts=1,
                      retry_timeout=0, dead_timeout=600, connect_timeout=1, timeout=2,
                      default_noreply=False)


def node_of(hc, key):
    return hc.hasher.get_node(key)


def inc_worker(ports, keys, rounds, out):
    hc = make_hash_client(ports)
    for _ in range(rounds):
        for k in keys:
            cas_increment(hc, k)
    out.put(0)


def curr_items(port):
    try:
        c = Client(("127.0.0.1", port), connect_timeout=1, timeout=2)
        s = c.stats()
        c.close()
        return int(s.get(b"curr_items", -1))
    except Exception:
        return "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(mcproto.REPO, "target", "release", "cascached"))
    ap.add_argument("--ports", default=None, help="three ports of running servers")
    ap.add_argument("--stop-pid", type=int, default=None, help="pid of the third server")
    ap.add_argument("--keys", type=int, default=600)
    args = ap.parse_args()

    procs = []
    if args.ports:
        ports = [int(p) for p in args.ports.split(",")]
        assert len(ports) == 3 and args.stop_pid, "--ports needs three ports and --stop-pid"
    else:
        for _ in range(3):
            procs.append(mcproto.start_server(args.bin, mem_mb=64))
        ports = [p for _, p in procs]
    name = os.path.basename(args.bin) if not args.ports else "servers"
    try:
        run(ports, procs, args)
    finally:
        for proc, _ in procs:
            mcproto.stop_server(proc)
    if FAILS:
        print("hashclient: FAIL (%d checks): %s" % (len(FAILS), "; ".join(FAILS[:5])))
        sys.exit(1)
    print("hashclient (%s): all checks passed" % name)


def run(ports, procs, args):
    nodes = ["127.0.0.1:%d" % p for p in ports]
    hc = make_hash_client(ports)
    direct = {n: Client(("127.0.0.1", p), connect_timeout=1, timeout=2) for n, p in zip(nodes, ports)}
    keys = ["hk:%d" % i for i in range(args.keys)]

    # 1. spread
    stored = sum(1 for k in keys if hc.set(k, "v:" + k) is True)
    check(stored == len(keys), "sets through HashClient stored %d/%d" % (stored, len(keys)))
    per = {n: 0 for n in nodes}
    misplaced = 0
    for k in keys:
        holders = [n for n in nodes if direct[n].get(k) == ("v:" + k).encode()]
        if holders == [node_of(hc, k)]:
            per[holders[0]] += 1
        else:
            misplaced += 1
    items = {n: curr_items(p) for n, p in zip(nodes, ports)}
    print("hashclient: %d keys over 3 instances: %s (by get on each instance; stats curr_items %s)"
          % (len(keys), "/".join(str(per[n]) for n in nodes), "/".join(str(items[n]) for n in nodes)))
    check(misplaced == 0, "%d keys not exactly on the instance the hasher names" % misplaced)
    check(all(c >= len(keys) // 6 for c in per.values()), "uneven spread %s" % per)

    # 2. CAS per key
    cas_ok = 0
    for k in keys:
        v, cas = hc.gets(k)
        if v is None or cas is None:
            continue
        r1 = hc.cas(k, "c:" + k, cas)
        r2 = hc.cas(k, "stale", cas)
        v2 = hc.get(k)
        if r1 is True and r2 is False and v2 == ("c:" + k).encode():
            cas_ok += 1
    check(cas_ok == len(keys), "gets/cas/stale-cas per key correct on %d/%d keys" % (cas_ok, len(keys)))
    missing = hc.cas("hk:missing", "x", b"12345")
    check(missing is None, "cas on a missing key gave %r, expected None" % (missing,))

    counters = ["hc:counter:%d" % i for i in range(20)]
    for k in counters:
        hc.set(k, "0")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=inc_worker, args=(ports, counters, 25, out)) for _ in range(4)]
    t0 = time.time()
    for w in workers:
        w.start()
    for w in workers:
        out.get(timeout=300)
        w.join(60)
    totals = [int(hc.get(k) or -1) for k in counters]
    spread = len({node_of(hc, k) for k in counters})
    print("hashclient: founding loop, 4 processes x 25 rounds over %d counters on %d shards: "
          "totals %s (expected all 100), %.1fs" % (len(counters), spread, sorted(set(totals)), time.time() - t0))
    check(totals == [100] * len(counters), "CAS increments lost across shards: %s" % totals)

    # 3. stop one instance
    dead = nodes[2]
    if procs:
        mcproto.stop_server(procs[2][0])
    else:
        os.kill(args.stop_pid, signal.SIGTERM)
    time.sleep(0.3)
    on_dead = [k for k in keys if node_of(hc, k) == dead]
    live = [k for k in keys if node_of(hc, k) != dead]
    errors = 0
    live_ok = 0
    for k in keys:
        try:
            v = hc.get(k)
        except Exception as e:  # ignore_exc: none expected
            errors += 1
            print("  exception from get(%s): %r" % (k, e))
            continue
        if k in live and v == ("c:" + k).encode():
            live_ok += 1
    marked = dead not in hc.clients or ("127.0.0.1", ports[2]) in hc._dead_clients
    print("hashclient: instance %s stopped: %d keys were on it; live shards still serve %d/%d of "
          "theirs; client marked it dead: %s; exceptions: %d" % (dead, len(on_dead), live_ok, len(live), marked, errors))
    check(errors == 0, "%d exceptions escaped the HashClient" % errors)
    check(live_ok == len(live), "live shards lost data: %d/%d" % (live_ok, len(live)))
    check(("127.0.0.1", ports[2]) in hc._dead_clients, "the stopped instance was not marked dead")

    failed_sets = [k for k in keys if hc.set(k, "w:" + k) is not True]
    read_back = sum(1 for k in keys if hc.get(k) == ("w:" + k).encode())
    now_on = {n: 0 for n in nodes[:2]}
    for k in keys:
        for n in nodes[:2]:
            if direct[n].get(k) == ("w:" + k).encode():
                now_on[n] += 1
    moved_cas = 0
    for k in on_dead:
        v, cas = hc.gets(k)
        if cas is not None and hc.cas(k, "m:" + k, cas) is True and hc.cas(k, "x", cas) is False:
            moved_cas += 1
    print("hashclient: after failover: %d/%d sets stored, %d read back, now %s on the live "
          "instances; gets/cas on moved keys: %d/%d"
          % (len(keys) - len(failed_sets), len(keys), read_back,
             "/".join(str(now_on[n]) for n in nodes[:2]), moved_cas, len(on_dead)))
    check(not failed_sets, "sets failed after the dead instance was marked: %s" % failed_sets[:5])
    check(read_back == len(keys), "read back %d/%d after failover" % (read_back, len(keys)))
    check(sum(now_on.values()) == len(keys), "keys not all on the live instances: %s" % now_on)
    check(moved_cas == len(on_dead), "cas on moved keys: %d/%d" % (moved_cas, len(on_dead)))


if __name__ == "__main__":
    main()
