#!/usr/bin/env python3
"""libmemcached's protocol conformance tester against one server, ASCII protocol only:
`memccapable -h 127.0.0.1 -p PORT -a` (Debian's libmemcached-tools names it memccapable;
older packages call it memcapable). It flushes the server. Every test must pass; its exit
status is not trusted (it is 0 even when it cannot connect), the per-test lines are.

    memccapable.py --port 11211
"""

import argparse
import re
import shutil
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--io-timeout", type=int, default=5, help="memccapable -t (seconds per I/O)")
    ap.add_argument("--name", default="server")
    ap.add_argument("--verbose", action="store_true", help="print memccapable's whole output")
    args = ap.parse_args()

    tool = shutil.which("memccapable") or shutil.which("memcapable")
    if not tool:
        sys.exit("memccapable: not installed (apt-get install libmemcached-tools)")
    cmd = [tool, "-h", "127.0.0.1", "-p", str(args.port), "-a", "-t", str(args.io_timeout)]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=300)
        out = p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace") + "\n<memccapable timed out>"
    results = re.findall(r"^(ascii [\w ]+?)\s+\[(\w+)\]\s*$", out, re.M)
    passed = [t for t, r in results if r == "pass"]
    failed = [(t, r) for t, r in results if r != "pass"]
    lines = [line for line in out.splitlines() if line.strip()]
    summary = lines[-1] if lines else "<no output>"
    ok = results and not failed and "All tests passed" in out
    if args.verbose or not ok:
        print(out.rstrip())
    print("memccapable (%s): %d passed, %d failed; summary line: %r"
          % (args.name, len(passed), len(failed), summary))
    for t, r in failed:
        print("  failed: %s [%s]" % (t, r))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
