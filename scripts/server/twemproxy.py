#!/usr/bin/env python3
"""twemproxy (nutcracker) in front of two server instances, ketama hashing, as an operator
would shard memcached:

1. 400 keys set through the proxy land on both instances (counted with a direct `get` on each
   instance), and every one reads back through the proxy;
2. the founding example's loop (verbatim, via seed_loop) from 4 processes through the proxy
   on 10 counters spread over the shards ends with every increment counted.

    twemproxy.py --bin target/release/cascached [--nutcracker /usr/sbin/nutcracker]
"""

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile

from pymemcache.client.base import Client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcproto  # noqa: E402
from seed_loop import cas_increment  # noqa: E402  (the verbatim founding loop)

KEYS = 400
COUNTERS = 10
PROCESSES = 4
ROUNDS = 25


def increment_all(port, out):
    client = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
    for _ in range(ROUNDS):
        for i in range(COUNTERS):
            cas_increment(client, "counter-%d" % i)
    out.put(True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the server binary (cascached or memcached)")
    ap.add_argument("--nutcracker", default=shutil.which("nutcracker") or "/usr/sbin/nutcracker")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="twemproxy.")
    servers = [mcproto.start_server(args.bin) for _ in range(2)]
    proxy_port = mcproto.free_port()
    config = os.path.join(work, "nutcracker.yml")
    with open(config, "w") as f:
        f.write("pool:\n  listen: 127.0.0.1:%d\n  hash: fnv1a_64\n  distribution: ketama\n"
                "  timeout: 2000\n  servers:\n" % proxy_port)
        for i, (_, port) in enumerate(servers):
            f.write("    - 127.0.0.1:%d:1 shard%d\n" % (port, i))
    proxy = subprocess.Popen([args.nutcracker, "-c", config, "-o", os.path.join(work, "log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures = []
    try:
        mcproto.wait_listening(proxy_port, proxy)
        client = Client(("127.0.0.1", proxy_port), connect_timeout=5, timeout=5)
        for i in range(KEYS):
            if not client.set("key-%d" % i, "value-%d" % i, noreply=False):
                failures.append("set key-%d through the proxy" % i)
        read_back = sum(client.get("key-%d" % i) == b"value-%d" % i for i in range(KEYS))
        direct = [Client(("127.0.0.1", port)) for _, port in servers]
        placed = [sum(d.get("key-%d" % i) is not None for i in range(KEYS)) for d in direct]
        print("twemproxy: %d keys through nutcracker (ketama) over 2 instances: %s, %d/%d read back"
              % (KEYS, "/".join(map(str, placed)), read_back, KEYS))
        if read_back != KEYS:
            failures.append("%d of %d keys read back" % (read_back, KEYS))
        if sum(placed) != KEYS or min(placed) == 0:
            failures.append("keys not spread over both instances exactly once: %s" % placed)

        for i in range(COUNTERS):
            client.set("counter-%d" % i, "0", noreply=False)
        out = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=increment_all, args=(proxy_port, out))
                 for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        totals = [int(client.get("counter-%d" % i) or -1) for i in range(COUNTERS)]
        expected = PROCESSES * ROUNDS
        print("twemproxy: founding loop, %d processes x %d rounds over %d counters: totals %s "
              "(expected all %d)" % (PROCESSES, ROUNDS, COUNTERS, sorted(set(totals)), expected))
        if any(t != expected for t in totals):
            failures.append("lost increments through the proxy: %s" % totals)
    finally:
        mcproto.stop_server(proxy)
        for proc, _ in servers:
            mcproto.stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("  FAIL: " + f)
    print("twemproxy: %s" % ("all checks passed" if not failures else "%d failed" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
