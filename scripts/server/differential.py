#!/usr/bin/env python3
"""Differential test: the same seeded random command stream, over raw sockets, to a reference
server (memcached 1.6.18) and to the server under test (cascached); every reply must match
byte for byte, except CAS uniques, which are compared structurally.

Uniques: each side maps the uniques it returns to canonical ids by first appearance (#1, #2,
...). Two servers agree when the same replies carry the same canonical ids, so the same hits,
the same EXISTS / NOT_FOUND line up, whatever numbers each server hands out. Commands that send
a unique (cas, ms/md/ma C<cas>) are generated against canonical ids and rendered per server
with that server's own number: "real" (the key's latest unique), "stale" (an older one seen
anywhere), "bogus" (never handed out), 0, or malformed.

Every command is followed by `mn` on the same connection, and the reply is read up to the MN
that answers it, so noreply / quiet commands and error paths are delimited exactly. Remaining
TTLs (meta `t`) are compared with a tolerance of a few seconds (both servers tick once a second,
not in phase); nothing else is timing dependent: TTLs are 0, negative, or hours to days.

After every incr/decr/ma whose replies agree, the stored bytes are read back from both servers
and must agree too. Three of memcached's own nondeterminisms are told apart exactly and excused
(counted, the first few printed, the key dropped on both sides): an in-place race (see
stored_value_verdict), and two reads past the end of an item (see arith_fluke).

    differential.py --ref-port 11211 --test-port 11311 [--commands 20000] [--conns 4] [--seed N]

Exit status 0 iff there was no mismatch.
"""

import argparse
import collections
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mcproto import Conn, parse_replies  # noqa: E402

META_CODES = {b"HD", b"VA", b"EN", b"NF", b"NS", b"EX", b"MN"}
BOGUS_BASE = 1 << 62
TTL_TOLERANCE = 3
TRACE = os.environ.get("DIFF_TRACE", "").encode()
LETTERS = b"abcdefghijklmnopqrstuvwxyz"
NON_NUMERIC_START = bytes(b for b in range(256) if b not in b" \t\n\v\f\r+-0123456789")
NUMBER = re.compile(rb"\A[ \t\n\v\f\r]*\+?([0-9]+)")
ARITH_RESULT = re.compile(rb"\A(?:([0-9]+)\r\n|VA [0-9]+[^\r]*\r\n([0-9]+) *\r\n)\Z")
NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
U64 = 1 << 64


def memcached_number(data):
    """The number memcached 1.6.18's incr/decr/ma read from an item's data (`safe_strtoull` on
    the data followed by "\r\n"), or None for "non-numeric". For a value >= 2^63, memcached's
    minus-sign check runs strchr over the unterminated item (see Gen.after); this assumes it
    finds no '-' past the number."""
    if not data:
        return None
    m = re.match(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)", data)
    if not m:
        return None
    after = data[m.end():m.end() + 1]
    if after and after not in b" \t\n\v\f\r\0":
        return None
    magnitude = int(m.group(2))
    if magnitude >= U64:
        return None  # ERANGE
    value = (U64 - magnitude) % U64 if m.group(1) == b"-" else magnitude
    if value >= 1 << 63 and b"-" in data[:m.end()]:
        return None
    return value


# Deltas memcached refuses or reads as strtoull does. It parses a delta with the same
# safe_strtoull as a value, so `memcached_number` gives the number it reads (or None), which
# arith_fluke needs to tell memcached's >= 2^63 read past the item on these too.
ODD_DELTAS = (b"18446744073709551616", b"-1", b"+5", b"-0", b"007", b"5abc", b"0x5", b"1" * 21,
              b"00000000000000000000005")


def apply_delta(value, incr, delta):
    return (value + delta) % U64 if incr else max(value - delta, 0)


class Side:
    """One server: its connections and its unique <-> canonical id maps."""

    def __init__(self, name, port, nconns, timeout):
        self.name = name
        self.port = port
        self.timeout = timeout
        self.conns = [Conn(port, timeout=timeout) for _ in range(nconns)]
        self.reset_ids()

    def reset_ids(self):
        self.canon = {}  # the server's unique (bytes) -> canonical id
        self.actual = {}  # canonical id -> the server's unique (bytes)
        self.next_id = 1

    def canon_of(self, unique):
        cid = self.canon.get(unique)
        if cid is None:
            cid = self.next_id
            self.next_id += 1
            self.canon[unique] = cid
            self.actual[cid] = unique
        return cid

    def render(self, parts):
        out = []
        for p in parts:
            if isinstance(p, bytes):
                out.append(p)
            else:  # ("cas", canonical id)
                u = self.actual.get(p[1])
                out.append(u if u is not None else str(BOGUS_BASE + 7919 * p[1]).encode())
        return b"".join(out)


def normalize(side, raw, status, cmd_key):
    """(normalized text, [ttl values], [(key, canonical id)]) for one batch of replies."""
    recs, complete = parse_replies(raw)
    out = []
    ttls = []
    seen = []

    def meta_flags(tokens, start):
        for i in range(start, len(tokens)):
            t = tokens[i]
            if len(t) > 1 and t[:1] == b"c" and t[1:].isdigit():
                cid = side.canon_of(t[1:])
                seen.append((cmd_key, cid))
                tokens[i] = b"c#%d" % cid
            elif len(t) > 1 and t[:1] == b"t" and t[1:].lstrip(b"-").isdigit() and t != b"t-1":
                ttls.append(int(t[1:]))
                tokens[i] = b"t~"

    for rec in recs:
        if rec[0] == "DATA":
            tokens = rec[1].split(b" ")
            data = rec[2]
            if tokens[0] == b"VALUE" and len(tokens) == 5 and tokens[4].isdigit():
                cid = side.canon_of(tokens[4])
                seen.append((tokens[1], cid))
                tokens[4] = b"#%d" % cid
            elif tokens[0] == b"VA":
                meta_flags(tokens, 2)
            out.append(b" ".join(tokens) + b"\r\n" + data + rec[3])
        else:
            tokens = rec[1].split(b" ")
            if tokens[0] in META_CODES:
                meta_flags(tokens, 1)
            out.append(b" ".join(tokens) + b"\r\n")
    if not complete:
        # the part the parser could not place (a truncated line or data block)
        consumed = sum(len(x) for x in out)
        out.append(b"<INCOMPLETE:" + raw[consumed:][:200] + b">")
    if status != "ok":
        out.append(b"<" + status.encode() + b">")
    return b"".join(out), ttls, seen


def ttls_match(a, b):
    return len(a) == len(b) and all(abs(x - y) <= TTL_TOLERANCE for x, y in zip(a, b))


class Gen:
    """Seeded command generator. Knows the canonical uniques seen per key (from the reference
    side's replies) to produce real / stale / bogus CAS arguments."""

    def __init__(self, seed, skip=()):
        self.r = random.Random(seed)
        self.skip = set(skip)
        self.general = [b"k%d" % i for i in range(20)] + [b"k\xc3\xa9", b"K" * 250]
        self.numeric = [b"n%d" % i for i in range(6)]
        self.mid = [b"m%d" % i for i in range(4)]
        self.big = [b"b0", b"b1"]
        self.abs_exp = int(time.time()) + 200000
        self.pending = None
        self.reset_model()
        self.ops = [
            # (weight, category, function)
            (14, "get", self.op_get),
            (8, "gets", self.op_gets),
            (3, "gat", self.op_gat),
            (12, "set", self.op_store),
            (4, "add", self.op_store),
            (3, "replace", self.op_store),
            (3, "append", self.op_store),
            (3, "prepend", self.op_store),
            (12, "cas", self.op_cas),
            (3, "delete", self.op_delete),
            (7, "incr", self.op_incr),
            (3, "touch", self.op_touch),
            (0.15, "flush_all", self.op_flush),
            (0.5, "verbosity", self.op_verbosity),
            (0.3, "quit", self.op_quit),
            (4, "malformed", self.op_malformed),
            (1.2, "mid-value", self.op_mid),
            (0.35, "near-limit", self.op_near_limit),
            (7, "mg", self.op_mg),
            (5, "ms", self.op_ms),
            (2.5, "md", self.op_md),
            (3, "ma", self.op_ma),
            (0.5, "mn", self.op_mn),
            (1, "meta-malformed", self.op_meta_malformed),
        ]
        self.ops = [o for o in self.ops if o[1] not in self.skip]
        self.weights = [o[0] for o in self.ops]

    def reset_model(self):
        self.latest = {}  # key -> latest canonical id seen
        self.history = []  # every canonical id seen
        self.poisoned = {}  # key -> it may hold a number >= 2^63

    def after(self, reply):
        """Track which keys may hold a value that memcached 1.6.18 reads past the end of: its
        item data has no terminating NUL, so for incr/decr/ma a number >= 2^63 is checked for a
        minus sign with strchr over whatever follows in the slab chunk, and a value of only
        whitespace (from append/prepend) lets strtoull run on into those bytes. Either can turn
        the right answer into its opposite. Arithmetic replies on these keys are kept visible
        (no noreply, no q), so that arith_fluke can tell such a fluke from a real mismatch."""
        e = self.effect
        if e is None:
            return
        if e[0] == "flush":
            self.poisoned.clear()
        elif e[0] == "delete":
            if reply in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
                self.poisoned[e[1]] = False
        elif e[0] == "store":
            m = NUMBER.match(e[2])
            if m and int(m.group(1)) >= 1 << 63:
                self.poisoned[e[1]] = True
            elif reply.startswith((b"STORED", b"HD")):
                self.poisoned[e[1]] = False
        elif e[0] == "concat":
            # append/prepend onto a counter: the joined value is not known here
            if not reply.startswith((b"NOT_STORED", b"NS", b"EX")):
                self.poisoned[e[1]] = True
        elif e[0] == "arith":
            m = ARITH_RESULT.match(reply)
            if m:
                self.poisoned[e[1]] = int(m.group(1) or m.group(2)) >= 1 << 63
            elif reply.startswith((b"NOT_FOUND", b"NF")):
                self.poisoned[e[1]] = False
            elif not reply.startswith(b"CLIENT_ERROR"):
                self.poisoned[e[1]] = True  # the result was not shown

    def observe(self, seen):
        for key, cid in seen:
            if key is not None:
                self.latest[key] = cid
            self.history.append(cid)

    # -- pieces -----------------------------------------------------------------------------
    def key(self):
        r = self.r.random()
        if r < 0.70:
            return self.r.choice(self.general)
        if r < 0.92:
            return self.r.choice(self.numeric)
        return self.r.choice(self.mid)

    def plain_key(self):
        """A key that never holds a number."""
        return self.r.choice(self.general) if self.r.random() < 0.9 else self.r.choice(self.mid)

    def concat_key(self):
        """append / prepend targets: a third of them counters."""
        return self.r.choice(self.numeric) if self.r.random() < 0.33 else self.plain_key()

    def concat_value(self, key):
        """What gets appended or prepended: onto a counter, digits, spaces and junk that make
        numeric prefixes, numbers past 2^64, or non-numbers of it."""
        if key not in self.numeric or self.r.random() < 0.2:
            return self.value()
        return self.r.choice([
            b"0", b"7", b"99", b"%d" % self.r.randint(0, 1 << 20), b"1" * 19, b" ", b"  ",
            b"x", b" junk", b"\r\n", b"\t", b"-", b"+", b"\x00", b"0" * 21, b"",
            b"18446744073709551615", b"9223372036854775808",
        ])

    def keys(self, lo=1, hi=5):
        return [self.key() for _ in range(self.r.randint(lo, hi))]

    def exptime(self):
        return self.r.choice([0] * 12 + [-1, 100000, 2592000, 2592001, self.abs_exp])

    def flags(self):
        r = self.r.random()
        if r < 0.7:
            return 0
        if r < 0.95:
            return self.r.randrange(1 << 32)
        return (1 << 32) - 1

    def noreply(self, p=0.2):
        return b" noreply" if self.r.random() < p else b""

    def numeric_value(self):
        """Numbers, numeric prefixes, the edges of u64, and near-numbers memcached refuses."""
        r = self.r
        if r.random() < 0.5:
            return r.choice([
                b"0", b"1", b"%d" % r.randint(0, 1000), b"%d" % r.randrange(1 << 63),
                b"18446744073709551615", b"007", b"12 ", b" 12", b"%d" % r.randint(0, 1 << 40),
                b"-3", b"abc", b"", b"1" * 25, b"%d" % r.randint(0, 99), b"%d" % r.randint(0, 99),
            ])
        n = b"%d" % r.choice([r.randint(0, 999), r.randrange(1 << 64), (1 << 63) - 1, 1 << 63,
                              (1 << 64) - 1, (1 << 64) - 2])
        return r.choice([
            # a number then something: accepted after whitespace or NUL, refused otherwise
            n + b" junk", n + b"ab", n + b"\t", n + b"\r\n12", n + b"\x00zz", n + b" " * 5,
            b" " + n, b"\t \n" + n, b"+" + n, b"-" + n, b"-0", b"+0", b"--1", b"+-1",
            # more than 20 digits (zero-padded, or past 2^64), signs, other bases
            n.rjust(21, b"0"), n.rjust(30, b"0"), b"18446744073709551616", b"99999999999999999999",
            b"1" * 20, b"-18446744073709551615", b"-9223372036854775809", b"0x10", b"1e5",
            b"12" + b" " * 30,
        ])

    def value(self):
        """A value that never parses as a number, so incr/decr on these keys always fails
        (numeric values live on the n* keys)."""
        r = self.r.random()
        if r < 0.5:
            n = self.r.randint(0, 40)
            if n == 0:
                return b""
            return bytes([self.r.choice(LETTERS)] +
                         [self.r.choice(LETTERS + b"0123456789") for _ in range(n - 1)])
        n = self.r.randint(0, 200) if r < 0.85 else self.r.randint(200, 3000)
        if n == 0:
            return b""
        # binary: \r\n, \0, 0xff ...; the first byte is no digit, sign or space
        return bytes([self.r.choice(NON_NUMERIC_START)]) + self.r.randbytes(n - 1)

    def cas_arg(self, key):
        """A unique for `key`: a ("cas", id) placeholder or literal bytes."""
        r = self.r.random()
        if r < 0.7 and key in self.latest:
            return ("cas", self.latest[key])
        if r < 0.8 and self.history:
            return ("cas", self.r.choice(self.history))
        if r < 0.93:
            return b"%d" % (BOGUS_BASE + self.r.randrange(1 << 40))
        return b"0"

    def ttl_flag(self, letter):
        return letter + b"%d" % self.r.choice([0, -1, 100000, 2592000, self.abs_exp])

    # -- classic commands ---------------------------------------------------------------------
    def op_get(self):
        if self.r.random() < 0.05:
            ks = self.general[:20] + self.numeric + self.mid  # one wide multi-get
        else:
            ks = self.keys()
        return [b"get " + b" ".join(ks) + b"\r\n"], None

    def op_gets(self):
        ks = self.keys()
        return [b"gets " + b" ".join(ks) + b"\r\n"], None

    def op_gat(self):
        cmd = self.r.choice([b"gat", b"gats"])
        return [cmd + b" %d " % self.exptime() + b" ".join(self.keys(1, 3)) + b"\r\n"], None

    def op_store(self, cmd=None):
        cmd = cmd or self.r.choice([b"set"] * 4 + [b"add", b"replace", b"append", b"prepend"])
        if cmd in (b"append", b"prepend"):
            key = self.concat_key()
            v = self.concat_value(key)
            self.effect = ("concat", key)
        else:
            key = self.key()
            v = self.numeric_value() if key in self.numeric and self.r.random() < 0.8 else self.value()
            self.effect = ("store", key, v)
        line = b"%s %s %d %d %d%s\r\n" % (cmd, key, self.flags(), self.exptime(), len(v),
                                          self.noreply())
        return [line + v + b"\r\n"], key

    def op_cas(self, key=None):
        if key is None:
            key = self.key()
            if self.r.random() < 0.4:
                # the founding loop's step: gets now, the cas with its unique next
                self.pending = key
                return [b"gets " + key + b"\r\n"], key
        v = self.numeric_value() if key in self.numeric else self.value()
        self.effect = ("store", key, v)
        head = b"cas %s %d %d %d " % (key, self.flags(), self.exptime(), len(v))
        return [head, self.cas_arg(key), self.noreply(0.15) + b"\r\n" + v + b"\r\n"], key

    def op_delete(self):
        key = self.key()
        tail = self.r.choice([b"", b"", b"", b" noreply", b" 0", b" 10", b" 0 noreply"])
        self.effect = ("delete", key)
        return [b"delete " + key + tail + b"\r\n"], key

    def op_incr(self):
        key = self.r.choice(self.numeric) if self.r.random() < 0.85 else self.plain_key()
        cmd = self.r.choice([b"incr", b"decr"])
        delta = self.delta()
        self.effect = ("arith", key, cmd == b"incr", delta)
        if self.r.random() < 0.08:
            # deltas memcached refuses, or reads like strtoull
            odd = self.r.choice(ODD_DELTAS)
            self.effect = ("arith", key, cmd == b"incr", memcached_number(odd))
            return [b"%s %s %s\r\n" % (cmd, key, odd)], key
        # no noreply where the stored number may be >= 2^63 (see Gen.after)
        noreply = b"" if self.poisoned.get(key) else self.noreply(0.15)
        return [b"%s %s %d%s\r\n" % (cmd, key, delta, noreply)], key

    def delta(self):
        """Small, large, and at the edges of u64 (wrap and floor)."""
        r = self.r
        return r.choice([
            r.randint(0, 10), r.randint(0, 10), r.randint(0, 100000), r.randint(0, 1 << 40),
            (1 << 64) - 1, (1 << 64) - 2, 1 << 63, (1 << 63) - 1, (1 << 63) + 1,
            r.randrange(1 << 64), 1, 0])

    def op_touch(self):
        key = self.key()
        return [b"touch %s %d%s\r\n" % (key, self.exptime(), self.noreply(0.15))], key

    def op_flush(self):
        self.effect = ("flush",)
        return [self.r.choice([b"flush_all\r\n", b"flush_all 0\r\n", b"flush_all noreply\r\n",
                               b"flush_all 0 noreply\r\n"])], None

    def op_verbosity(self):
        return [self.r.choice([b"verbosity 1\r\n", b"verbosity 0\r\n", b"verbosity 0 noreply\r\n",
                               b"verbosity\r\n"])], None

    def op_quit(self):
        return [b"quit\r\n"], "QUIT"

    def op_mid(self):
        key = self.r.choice(self.mid)
        if self.r.random() < 0.5:
            return [b"get " + key + b"\r\n"], key
        v = self.r.randbytes(self.r.randint(3000, 120000))
        cmd = self.r.choice([b"set", b"set", b"append", b"prepend"])
        return [b"%s %s 0 0 %d\r\n" % (cmd, key, len(v)) + v + b"\r\n"], key

    def op_near_limit(self):
        """Values around the 1 MiB item limit. memcached's limit is for the whole item: with
        flags 0 the largest value is 1048517 - len(key) bytes."""
        key = self.r.choice(self.big)
        edge = 1048517 - len(key)
        r = self.r.random()
        if r < 0.25:
            return [b"gets " + key + b"\r\n"], key
        if r < 0.35:
            n = self.r.randint(10, 1000)
            return [b"append %s 0 0 %d\r\n" % (key, n) + b"a" * n + b"\r\n"], key
        size = self.r.choice([edge - 100000, edge - 4096, edge - 1, edge, edge + 1,
                              edge + 4096, 1 << 20, 2 * (1 << 20)])
        v = bytes([self.r.randrange(256)]) * size
        return [b"set %s 0 0 %d%s\r\n" % (key, size, self.noreply(0.1)) + v + b"\r\n"], key

    def op_malformed(self):
        long_key = b"L" * 251
        r = self.r
        return [r.choice([
            b"foo bar\r\n", b"GET k0\r\n", b"\r\n", b"get\r\n", b"gets\r\n", b"set\r\n",
            b"set k0 abc 0 1\r\nx\r\n", b"set k0 0 abc 1\r\nx\r\n", b"set k0 0 0 abc\r\nx\r\n",
            b"set k0 0 0\r\nx\r\n", b"set k0 abc 0 1 noreply\r\nx\r\n",
            b"set k0 4294967296 0 1\r\nx\r\n", b"set k0 -1 0 1\r\nx\r\n",
            b"set " + long_key + b" 0 0 1\r\nx\r\n", b"get " + long_key + b"\r\n",
            b"get k0 " + long_key + b" k1\r\n", b"delete " + long_key + b"\r\n",
            b"cas k0 0 0 1\r\nx\r\n", b"cas k0 0 0 1 abc\r\nx\r\n", b"cas k0 0 0 1 -5\r\nx\r\n",
            b"incr k0\r\n", b"incr k0 abc\r\n", b"incr k0 -1\r\n",
            b"decr k0 18446744073709551616\r\n", b"incr k1 1 2 3\r\n",
            b"touch k0\r\n", b"touch k0 abc\r\n", b"gat k0\r\n", b"gat abc k0\r\n",
            b"set k0 0 0 3\r\nabcdef\r\n", b"set k1 0 0 3 noreply\r\nabcdef\r\n",
            b"append k0 0 0 2\r\nxyz\r\n", b"cas k3 0 0 1 1\r\nxyz\r\n",
            b"flush_all abc\r\n", b"delete k0 noreply extra\r\n", b"get k0\n", b"set k2 0 0 1\nz\r\n",
        ])], None

    # -- meta commands ------------------------------------------------------------------------
    def pick(self, flags, lo=0, hi=None):
        hi = len(flags) if hi is None else hi
        n = self.r.randint(lo, hi)
        return self.r.sample(flags, min(n, len(flags)))

    def opaque(self):
        return b"O%d" % self.r.randint(0, 99999)

    def op_mg(self):
        key = self.key()
        fl = [b"v", b"c", b"f", b"k", self.opaque(), b"q", b"t", self.ttl_flag(b"T"), b"N100000"]
        fl.append(b"s")
        if key not in self.numeric:
            # On numeric keys: memcached's in-place incr keeps the item's stale / win-token
            # state, a replacing incr does not, and across connections which one happens is
            # timing dependent (see check_stored_value). So no recache (R), no invalidation (I).
            fl += [b"R30", b"R%d" % (2592000 * 2)]
        fl = self.pick(fl, 0, 6)
        if b"T-1" in fl and b"t" in fl:
            # memcached prints the TTL it just made negative as an unsigned 32-bit number of
            # seconds relative to its own start time (t4294967234): not comparable
            fl.remove(b"t")
        return [b"mg " + key + b"".join(b" " + f for f in fl) + b"\r\n"], key

    def op_ms(self):
        key = self.key()
        mode = self.r.choice(b"ERSAP").to_bytes(1, "big")
        fl = self.pick([self.ttl_flag(b"T"), b"F%d" % self.flags(), b"q", self.opaque(), b"k",
                        b"c", b"M" + mode], 0, 4)
        if b"M" + mode in fl and mode in b"AP":
            v = self.concat_value(key)
            self.effect = ("concat", key)
        else:
            v = self.numeric_value() if key in self.numeric else self.value()
            self.effect = ("store", key, v)
        parts = [b"ms %s %d" % (key, len(v)) + b"".join(b" " + f for f in fl)]
        if self.r.random() < 0.35:
            parts += [b" C", self.cas_arg(key)]
            if self.r.random() < 0.3 and key not in self.numeric:
                parts.append(b" I")
        parts.append(b"\r\n" + v + b"\r\n")
        return parts, key

    def op_md(self):
        key = self.key()
        fl = self.pick([b"q", self.opaque(), b"k"], 0, 2)
        parts = [b"md " + key + b"".join(b" " + f for f in fl)]
        if self.r.random() < 0.3:
            parts += [b" C", self.cas_arg(key)]
        if self.r.random() < 0.25 and key not in self.numeric:
            parts.append(b" I")
            if self.r.random() < 0.5:
                parts.append(b" T100000")
        parts.append(b"\r\n")
        return parts, key

    def op_ma(self):
        # autovivify (N) writes a number, so ma stays on the numeric keys
        key = self.r.choice(self.numeric)
        fl = self.pick([b"N100000", b"N0", b"J%d" % self.r.choice([0, 7, 50, (1 << 64) - 1]),
                        b"D%d" % self.r.choice([0, 1, 7, 1000, self.delta()]),
                        b"M" + self.r.choice([b"I", b"D", b"+", b"-", b"i", b"d"]),
                        b"q", b"v", b"c", b"t", self.opaque(), b"k"], 0, 5)
        if self.poisoned.get(key) and b"q" in fl:
            fl.remove(b"q")
        delta = next((int(f[1:]) for f in fl if f[:1] == b"D"), 1)
        self.effect = ("arith", key, not any(f in (b"MD", b"M-") for f in fl), delta)
        parts = [b"ma " + key + b"".join(b" " + f for f in fl)]
        if self.r.random() < 0.2:
            parts += [b" C", self.cas_arg(key)]
        parts.append(b"\r\n")
        return parts, key

    def op_mn(self):
        return [b"mn\r\n"], "MN"

    def op_meta_malformed(self):
        return [self.r.choice([
            b"mg\r\n", b"ms k0\r\n", b"ms k0 abc\r\n", b"md\r\n", b"ma\r\n",
            b"mg " + b"L" * 251 + b" v\r\n", b"ms k0 3 T0\r\nabcde\r\n",
            b"ms k0 -1\r\n", b"ma k0 Dabc\r\n", b"ma k0 D-1\r\n",
        ])], None

    def next(self):
        self.effect = None
        if self.pending is not None:
            key, self.pending = self.pending, None
            parts, key = self.op_cas(key)
            return "cas", parts, key
        (_, cat, fn) = self.r.choices(self.ops, self.weights)[0]
        if fn == self.op_store:
            parts, key = fn(cat.encode())
        else:
            parts, key = fn()
        return cat, parts, key


def stored_data(raw):
    """The data of a `get` reply with one hit, or None."""
    recs, complete = parse_replies(raw)
    if complete and len(recs) == 2 and recs[0][0] == "DATA" and recs[1] == ("LINE", b"END"):
        return recs[0][2]
    return None


def stored_value_verdict(stored, either_way):
    """After an arithmetic command both servers answered alike, `get` of its key on each:
    "same"; "race" when the only difference is memcached's in-place rule: the reference stored
    a new unpadded item ("39") where the server under test rewrote the item in place ("39 "),
    because something held a reference to the item at that moment. On one connection whose
    replies are all written out, that is memcached's LRU maintainer: a second fetch of an item
    in the COLD LRU queues an asynchronous bump that holds a reference until the maintainer
    thread gets to it (items.c, lru_bump_async); with `-o no_lru_maintainer` this never
    happens. Another connection's reply, released just after it is sent, can do the same.
    `either_way` also allows the reverse, for memcached against memcached. Else "differ"."""
    (rraw, rst), (traw, tst) = stored
    if (rraw, rst) == (traw, tst):
        return "same"
    pairs = [(stored_data(rraw), stored_data(traw))]
    if either_way:
        pairs.append(pairs[0][::-1])
    for unpadded, padded in pairs:
        if unpadded is not None and padded is not None and unpadded.isdigit() and \
                len(padded) > len(unpadded) and padded.rstrip(b" ") == unpadded and \
                rraw.split(b"\r\n", 1)[0].rsplit(b" ", 1)[0] == traw.split(b"\r\n", 1)[0].rsplit(b" ", 1)[0]:
            return "race"
    return "differ"


BLANK = re.compile(rb"\A[ \t\n\v\f\r]+\Z")


def arith_fluke(ref, test, i, arith, rraw, traw, either_way):
    """Which of memcached 1.6.18's two reads past the end of an item (its data has no
    terminating NUL) explains a disagreement on incr/decr/ma, or None. The servers' stored
    values are read back to tell:
    - "2^63": the reference refused a number >= 2^63 (strchr for a minus sign ran past the
      item), and the server under test stored exactly that number with the delta applied;
    - "blank": the reference found a number in a value of only whitespace (strtoull skipped it
      and the "\r\n" and read the slab chunk's stale bytes), where the server under test,
      whose value is that whitespace, refused.
    `either_way`: also the other way round (memcached against memcached)."""
    _, key, incr, delta = arith
    cases = [(ref, test, rraw, traw)]
    if either_way:
        cases.append((test, ref, traw, rraw))
    for refused, applied, refused_raw, applied_raw in cases:
        if refused_raw != NON_NUMERIC or applied_raw.startswith(b"CLIENT_ERROR") or delta is None:
            continue
        before = stored_data(refused.conns[i].cmd(b"get " + key + b"\r\n")[0])
        after = stored_data(applied.conns[i].cmd(b"get " + key + b"\r\n")[0])
        number = memcached_number(before) if before is not None else None
        if number is not None and number >= 1 << 63 and after is not None and \
                memcached_number(after) == apply_delta(number, incr, delta):
            return "2^63"
    cases = [(test, ref, traw)] + ([(ref, test, rraw)] if either_way else [])
    for refused, read_past, refused_raw in cases:
        read_past_raw = rraw if read_past is ref else traw
        if refused_raw == NON_NUMERIC and not read_past_raw.startswith(b"CLIENT_ERROR"):
            value = stored_data(refused.conns[i].cmd(b"get " + key + b"\r\n")[0])
            if value is not None and BLANK.match(value):
                return "blank"
    return None


def reply_kind(raw, status):
    if status != "ok":
        return "<%s>" % status
    if not raw:
        return "(no reply)"
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    if line.startswith(("CLIENT_ERROR", "SERVER_ERROR")):
        return line[:34]
    return line.split(" ", 1)[0][:34]


def show(b, limit=400):
    s = repr(b)
    return s if len(s) <= limit else s[:limit] + "...(%d bytes)" % len(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-port", type=int, required=True, help="reference server (memcached)")
    ap.add_argument("--test-port", type=int, required=True, help="server under test (cascached)")
    ap.add_argument("--commands", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=4, help="connections per server")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for one reply")
    ap.add_argument("--show", type=int, default=15, help="mismatches printed in full")
    ap.add_argument("--max-mismatches", type=int, default=200, help="stop after this many")
    ap.add_argument("--skip", default="", help="comma-separated categories to leave out")
    ap.add_argument("--perturb", type=int, default=0,
                    help="first spend N uniques on the test server so the two servers' numbers "
                         "differ (harness self-check: structural comparison must still agree)")
    ap.add_argument("--tolerate-both", action="store_true",
                    help="also excuse the server under test for memcached's >= 2^63 incr bug "
                         "(for memcached vs memcached)")
    ap.add_argument("--names", default="memcached,cascached", help="labels for the two servers")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    ref_name, test_name = args.names.split(",")
    ref = Side(ref_name, args.ref_port, args.conns, args.timeout)
    test = Side(test_name, args.test_port, args.conns, args.timeout)
    gen = Gen(seed, [s for s in args.skip.split(",") if s])

    def resync(i):
        """After a mismatch: fresh connections, both servers flushed, CAS maps cleared."""
        for side in (ref, test):
            side.conns[i].connect()
            side.conns[i].cmd(b"flush_all\r\n")
            side.reset_ids()
        gen.reset_model()

    for side in (ref, test):
        out, st = side.conns[0].cmd(b"flush_all\r\n")
        if (out, st) != (b"OK\r\n", "ok"):
            sys.exit("differential: %s on port %d: flush_all gave %r %s" % (side.name, side.port, out, st))
    if args.perturb:
        test.conns[0].cmd(b"set __perturb 0 0 1 noreply\r\nx\r\n" * args.perturb + b"flush_all\r\n")

    per_cat = collections.Counter()
    bad_cat = collections.Counter()
    mismatches = 0
    flukes = collections.Counter()
    padding_races = 0
    outcomes = collections.defaultdict(collections.Counter)  # reference reply codes
    kinds = {}  # (category, reference reply kind, test reply kind) -> [count, first n, command]
    t0 = time.time()
    done = 0
    for n in range(args.commands):
        cat, parts, key = gen.next()
        i = gen.r.randrange(args.conns)
        per_cat[cat] += 1
        payloads = (ref.render(parts), test.render(parts))
        big = sum(len(p) for p in payloads) > 200000 or cat == "near-limit"
        tmo = args.timeout * (4 if big else 1)
        results = []
        if key == "QUIT":
            for side, p in zip((ref, test), payloads):
                side.conns[i].send(p, sentinel=False)
            for side in (ref, test):
                raw, st = side.conns[i].read_until_eof(tmo)
                results.append((raw, st))
                side.conns[i].connect()
            key = None
        else:
            for side, p in zip((ref, test), payloads):
                try:
                    side.conns[i].send(p)
                except OSError:
                    pass  # shows up as eof on read
            for side in (ref, test):
                results.append(side.conns[i].read_batch(tmo, 2 if key == "MN" else 1))
        (rraw, rst), (traw, tst) = results
        if key == "MN":
            key = None
        next_ids = (ref.next_id, test.next_id)
        rnorm, rttl, rseen = normalize(ref, rraw, rst, key)
        tnorm, tttl, _ = normalize(test, traw, tst, key)
        done = n + 1
        if TRACE and (TRACE in payloads[0] or TRACE in rraw):
            print("TRACE #%d conn %d %s -> %s | %s %s" % (n, i, show(payloads[0], 120), show(rraw, 120), show(traw, 120), show(payloads[1], 60) if payloads[1] != payloads[0] else ""))
        if cat in ("cas", "ms", "ma", "md", "incr") and rst == "ok":
            outcomes[cat][rraw.split(b"\r\n", 1)[0].split(b" ", 1)[0].decode("ascii", "replace") or "-"] += 1
        arith = gen.effect if gen.effect and gen.effect[0] == "arith" else None
        if rnorm == tnorm and ttls_match(rttl, tttl):
            if arith and rst == tst == "ok":
                # The replies agree; so must the stored bytes (padding, or a new item).
                stored = [side.conns[i].cmd(b"get " + arith[1] + b"\r\n") for side in (ref, test)]
                verdict = stored_value_verdict(stored, args.tolerate_both)
                if verdict == "race":
                    padding_races += 1
                    if padding_races <= 3:
                        print("excused: %s: %s stored %s, %s stored %s (memcached's in-place rule, "
                              "an LRU bump held the item)" % (show(payloads[0], 80), ref.name,
                                                       show(stored[0][0], 60), test.name,
                                                       show(stored[1][0], 60)))
                    for side in (ref, test):
                        side.conns[i].cmd(b"delete " + arith[1] + b"\r\n")
                    gen.observe(rseen)
                    gen.poisoned[arith[1]] = False
                    continue
                if verdict == "differ":
                    cat += " (stored value)"
                    payloads = (payloads[0] + b"get " + arith[1] + b"\r\n",) * 2
                    (rraw, rst), (traw, tst) = stored
                    rnorm = None
            if rnorm is not None:
                gen.observe(rseen)
                gen.after(rraw)
                if rst != "ok" or tst != "ok":  # both closed the connection the same way
                    for side in (ref, test):
                        side.conns[i].connect()
                continue
        elif arith and rst == tst == "ok" and \
                (fluke := arith_fluke(ref, test, i, arith, rraw, traw, args.tolerate_both)):
            # memcached 1.6.18 reading past the unterminated item (see Gen.after)
            flukes[fluke] += 1
            if flukes[fluke] <= 3:
                print("excused: %s on a %s: %s says %s, %s says %s" % (
                    show(payloads[0], 80), "number >= 2^63" if fluke == "2^63" else "blank value",
                    ref.name, show(rraw, 80), test.name, show(traw, 80)))
            # forget the uniques this reply handed out, and drop the key on both sides
            for side, first in zip((ref, test), next_ids):
                for cid in range(first, side.next_id):
                    side.canon.pop(side.actual.pop(cid), None)
                side.next_id = first
                side.conns[i].cmd(b"delete " + arith[1] + b"\r\n")
            gen.poisoned[arith[1]] = False
            continue
        mismatches += 1
        bad_cat[cat] += 1
        sig = (cat, reply_kind(rraw, rst), reply_kind(traw, tst))
        if sig not in kinds:
            kinds[sig] = [0, n, payloads[0]]
        kinds[sig][0] += 1
        if mismatches <= args.show:
            print("MISMATCH #%d  seed=%d  command #%d (%s) on connection %d" % (mismatches, seed, n, cat, i))
            print("  command   %-10s %s" % (ref.name, show(payloads[0])))
            if payloads[1] != payloads[0]:
                print("  command   %-10s %s" % (test.name, show(payloads[1])))
            print("  reply     %-10s %s %s" % (ref.name, show(rraw), "" if rst == "ok" else "<%s>" % rst))
            print("  reply     %-10s %s %s" % (test.name, show(traw), "" if tst == "ok" else "<%s>" % tst))
            if rttl or tttl:
                print("  ttls      %s vs %s" % (rttl, tttl))
            sys.stdout.flush()
        try:
            resync(i)
        except OSError as e:
            print("differential: cannot reconnect after mismatch: %s" % e)
            break
        if mismatches >= args.max_mismatches:
            print("differential: stopping after %d mismatches" % mismatches)
            break
    dt = time.time() - t0
    cats = " ".join("%s=%d" % (c, per_cat[c]) for c in sorted(per_cat))
    print("differential: %s vs %s  seed=%d  commands=%d  connections=%d  mismatches=%d  "
          "(excused: memcached reads past the item: >= 2^63 %d, blank %d; in-place races %d)  %.1fs"
          % (ref.name, test.name, seed, done, args.conns, mismatches, flukes["2^63"],
             flukes["blank"], padding_races, dt))
    print("  commands per category: " + cats)
    for c in sorted(outcomes):
        print("  %s replies (reference): %s" % (c, " ".join(
            "%s=%d" % kv for kv in outcomes[c].most_common(6))))
    if bad_cat:
        print("  mismatches per category: " + " ".join("%s=%d" % kv for kv in sorted(bad_cat.items())))
        print("  mismatch kinds (category: %s reply -> %s reply, count, first command):" % (ref.name, test.name))
        for (c, rk, tk), (cnt, first, cmd) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
            print("    %-6s %-34s -> %-34s x%-4d #%d %s" % (c, rk, tk, cnt, first, show(cmd, 90)))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
