"""Shared helpers for the cascached proofs: free ports, server processes, a raw text-protocol
connection that reads exactly one batch of replies (terminated by a `mn` sentinel), and a reply
parser that knows where data blocks start and end."""

import os
import socket
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc=None, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server on port %d exited with %s" % (port, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on port %d after %.0fs" % (port, timeout))


def rss(pid):
    """Resident memory of process `pid`, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for %d" % pid)


def stat(port, name):
    """One counter of the server's `stats`, or None if it has no such counter."""
    conn = Conn(port)
    raw, _ = conn.cmd(b"stats\r\n")
    conn.close()
    for line in raw.decode().split("\r\n"):
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] == name:
            return int(parts[2])
    return None


def server_argv(binary, port, threads=2, mem_mb=64, extra=()):
    """memcached-style command line; memcached refuses to run as root without -u."""
    argv = [binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", str(threads),
            "-m", str(mem_mb)] + list(extra)
    if os.path.basename(binary).startswith("memcached") and os.geteuid() == 0:
        argv += ["-u", "root"]
    return argv


def start_server(binary, port=None, threads=2, mem_mb=64, extra=(), log=None):
    """Start a server in the foreground of this process (never a daemon). Returns (proc, port)."""
    port = port or free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(server_argv(binary, port, threads, mem_mb, extra),
                            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    wait_listening(port, proc)
    return proc, port


def stop_server(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_replies(buf):
    """Split a reply stream into records. Returns (records, complete) where a record is
    ("LINE", line) or ("DATA", header_line, data, trailer) for VALUE / VA blocks, and complete
    is False when the buffer stops in the middle of a line or data block."""
    recs = []
    pos = 0
    n = len(buf)
    while pos < n:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return recs, False
        line = buf[pos:nl]
        pos = nl + 2
        size = None
        parts = line.split(b" ")
        try:
            if parts[0] == b"VALUE" and len(parts) >= 4:
                size = int(parts[3])
            elif parts[0] == b"VA" and len(parts) >= 2:
                size = int(parts[1])
        except ValueError:
            size = None
        if size is not None and size >= 0:
            if pos + size + 2 > n:
                return recs, False
            recs.append(("DATA", line, buf[pos:pos + size], buf[pos + size:pos + size + 2]))
            pos += size + 2
        else:
            recs.append(("LINE", line))
    return recs, True


class Conn:
    """One raw text-protocol connection. `batch(payload)` sends payload + `mn\\r\\n` and reads
    until the MN that answers the sentinel, so commands with no reply (noreply, q) and commands
    with an unknown number of reply lines are delimited exactly."""

    SENTINEL = b"mn\r\n"

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.addr = (host, port)
        self.timeout = timeout
        self.sock = None
        self.connect()

    def connect(self):
        self.close()
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def send(self, payload, sentinel=True):
        self.sock.sendall(payload + (self.SENTINEL if sentinel else b""))

    def read_batch(self, timeout=None, mn_lines=1):
        """Returns (reply_bytes_without_sentinel, status) with status "ok", "eof" or
        "timeout"; on eof/timeout the bytes are whatever arrived. mn_lines: how many MN lines
        end the batch (2 when the payload itself is an `mn`)."""
        self.sock.settimeout(timeout or self.timeout)
        buf = b""
        while True:
            if buf.endswith(b"MN\r\n"):
                recs, complete = parse_replies(buf)
                if complete and recs and recs[-1] == ("LINE", b"MN") and \
                        recs.count(("LINE", b"MN")) >= mn_lines:
                    return buf[:-4], "ok"
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return buf, "timeout"
            except OSError:
                return buf, "eof"
            if not chunk:
                return buf, "eof"
            buf += chunk

    def read_until_eof(self, timeout=None):
        self.sock.settimeout(timeout or self.timeout)
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return buf, "timeout"
            except OSError:
                return buf, "eof"
            if not chunk:
                return buf, "eof"
            buf += chunk

    def cmd(self, payload, timeout=None):
        self.send(payload)
        return self.read_batch(timeout)


def log(*a):
    print(*a, flush=True)
    sys.stdout.flush()
