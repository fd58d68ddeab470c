#!/usr/bin/env python3
"""Offline references for one LIRS-format trace at an exact capacity (research only).

Usage: scripts/research/exact_capacity_refs.py traces/lirs/sprite.trace.gz 256

Prints three families of policies that keep exactly `capacity` keys, each with the knowledge
or tuning an online cache cannot have, to bound what an exact-capacity policy reaches on a row:

* LRFU (Lee et al., 2001): evicts the resident key with the smallest combined recency-frequency
  value, sum over past requests of 2^(-lambda * age). Swept over lambda, with the history of every
  key ever seen, and with the history of resident keys only.
* Perfect LFU: exact request counts of every key ever seen, evicting the smallest (ties: least
  recent); with no aging, and halving every count every k * capacity requests.
* LIRS (Jiang and Zhang, 2002) swept over its HIR share, non-resident history bounded to
  3 * capacity.

Standard library only; sprite @ 256 takes a few seconds. Two limits check the LRFU: lambda = 1
is LRU (sprite @ 256: 49.90, the hit_ratio tool's exact LRU), and lambda near 0 with every key's
history is perfect LFU without aging (50.85 against 50.87: ties are broken differently).
"""
import gzip
import heapq
import math
import sys
from collections import OrderedDict, defaultdict


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [int(line) for line in f if line.strip().lstrip("-").isdigit()]


def lrfu(trace, capacity, lam, full_history):
    crf, last, resident, heap, hits = {}, {}, set(), [], 0
    for now, key in enumerate(trace):
        if key in last and (full_history or key in resident):
            value = 1.0 + 2.0 ** (-lam * (now - last[key])) * crf[key]
        else:
            value = 1.0
        crf[key], last[key] = value, now
        if key in resident:
            hits += 1
        else:
            if len(resident) >= capacity:
                while True:  # lazy deletion: skip heap entries older than the key's last request
                    _, stamp, victim = heapq.heappop(heap)
                    if victim in resident and last[victim] == stamp:
                        break
                resident.discard(victim)
                if not full_history:
                    del crf[victim], last[victim]
            resident.add(key)
        # log2 of the value scaled by 2^(lam * now): the order at any later time is the same.
        heapq.heappush(heap, (lam * now + math.log2(value), now, key))
    return 100.0 * hits / len(trace)


def perfect_lfu(trace, capacity, aging_period):
    count, stamp, heap, hits = defaultdict(int), {}, [], 0
    for now, key in enumerate(trace, 1):
        count[key] += 1
        if aging_period and now % aging_period == 0:
            for k in count:
                count[k] //= 2
            heap = [(count[k], stamp[k], k) for k in stamp]
            heapq.heapify(heap)
        if key in stamp:
            hits += 1
        elif len(stamp) >= capacity:
            while True:
                c, t, victim = heapq.heappop(heap)
                if stamp.get(victim) == t and count[victim] == c:
                    break
            del stamp[victim]
        stamp[key] = now
        heapq.heappush(heap, (count[key], now, key))
    return 100.0 * hits / len(trace)


def lirs(trace, capacity, hir_share, history=3):
    hir_capacity = max(1, int(capacity * hir_share))
    lir_capacity = capacity - hir_capacity
    stack, queue, lir, resident, hits = OrderedDict(), OrderedDict(), set(), set(), 0

    def prune():
        while stack:
            bottom = next(iter(stack))
            if bottom in lir:
                break
            del stack[bottom]

    def demote_bottom_lir():
        bottom = next(iter(stack))
        lir.discard(bottom)
        del stack[bottom]
        queue[bottom] = True
        prune()

    for key in trace:
        if key in lir:
            hits += 1
            stack[key] = True
            stack.move_to_end(key)
            prune()
            continue
        if key in resident:  # a resident HIR key
            hits += 1
            if key in stack:
                lir.add(key)
                del queue[key]
                stack.move_to_end(key)
                demote_bottom_lir()
            else:
                stack[key] = True
                queue.move_to_end(key)
            continue
        if len(lir) < lir_capacity:
            lir.add(key)
            resident.add(key)
            stack[key] = True
            continue
        if len(queue) >= hir_capacity:
            victim, _ = queue.popitem(last=False)
            resident.discard(victim)
        resident.add(key)
        if key in stack:
            lir.add(key)
            stack.move_to_end(key)
            demote_bottom_lir()
            if len(queue) > hir_capacity:
                victim, _ = queue.popitem(last=False)
                resident.discard(victim)
        else:
            stack[key] = True
            queue[key] = True
        if len(stack) > history * capacity:
            for k in list(stack):
                if len(stack) <= history * capacity:
                    break
                if k not in resident:
                    del stack[k]
    return 100.0 * hits / len(trace)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    trace, capacity = load(sys.argv[1]), int(sys.argv[2])
    print(f"{sys.argv[1]} @ {capacity}: {len(trace)} requests, {len(set(trace))} keys; hit ratio in %")
    for lam in (1e-9, 1e-5, 1e-4, 3e-4, 5e-4, 7e-4, 1e-3, 1.4e-3, 3e-3, 1e-2, 1.0):
        print(f"LRFU lambda={lam:g}: every key's history {lrfu(trace, capacity, lam, True):.2f}, "
              f"resident keys' only {lrfu(trace, capacity, lam, False):.2f}", flush=True)
    for k in (0, 2, 3, 5, 10, 20):
        label = f"aged every {k} x capacity" if k else "no aging"
        print(f"perfect LFU, {label}: {perfect_lfu(trace, capacity, k * capacity):.2f}", flush=True)
    for share in (0.01, 0.05, 0.1, 0.2, 0.3):
        print(f"LIRS, HIR share {share:g}: {lirs(trace, capacity, share):.2f}", flush=True)


if __name__ == "__main__":
    main()
