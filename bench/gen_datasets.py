#!/usr/bin/env python3
"""Build the benchmark snapshots deterministically (issue 5's data sets).

Starts a throwaway redis-server (127.0.0.1 only, a free port, a temp dir,
no persistence of its own), loads each data set through pipelined RESP
(`redis-cli --pipe`, or DEBUG POPULATE for the big one), SAVEs and copies
dump.rdb to bench/data/NAME.rdb. Contents are a pure function of the data
set name (seeded RNG); the files' bytes differ between runs only in the AUX
fields Redis writes (ctime, used-mem) and in hash-table order.

usage: gen_datasets.py [--force] [--big] [NAME...]
  NAME is one of s1_100k s1_1m s1_5m s2 big_1g (default: all but big_1g;
  --big adds big_1g, the >= 1 GB file for the flat-memory check).
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI", "/usr/bin/redis-cli")

CHUNK = 4 << 20  # bytes of RESP handed to redis-cli at a time


def cmd(*args):
    """One RESP command (args are bytes or str)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


# ---------------------------------------------------------------- data sets

def gen_s1(n):
    """n strings key:%07d -> 32 random (incompressible) bytes."""
    rng = random.Random(1000 + n)
    step = 100_000
    for base in range(0, n, step):
        m = min(step, n - base)
        block = rng.randbytes(32 * m)
        buf = []
        for j in range(m):
            i = base + j
            buf.append(b"*3\r\n$3\r\nSET\r\n$11\r\nkey:%07d\r\n$32\r\n%s\r\n"
                       % (i, block[32 * j:32 * j + 32]))
        yield b"".join(buf)


def gen_s2():
    """The mixed set: 200k strings (half LZF-compressible), 50k each of
    10-field hashes, 10-element lists, 10-member sets (half intsets),
    10-member zsets, 20 hashes of 10k fields, 20 lists of 10k elements."""
    rng = random.Random(2)
    out = []

    def flush(force=False):
        nonlocal out
        if force or len(out) >= 20_000:
            data = b"".join(out)
            out = []
            return data
        return None

    # strings: even ids compressible (repetitive text), odd ids random bytes
    for i in range(200_000):
        if i % 2 == 0:
            val = (b"compressible-value-%07d-" % i) * 3
        else:
            val = rng.randbytes(64)
        out.append(cmd(b"SET", b"str:%07d" % i, val))
        d = flush()
        if d:
            yield d
    for i in range(50_000):
        args = [b"HSET", b"hash:%06d" % i]
        for f in range(10):
            args += [b"field%d" % f, b"v%d-%d" % (i, rng.randrange(1 << 30))]
        out.append(cmd(*args))
        d = flush()
        if d:
            yield d
    for i in range(50_000):
        args = [b"RPUSH", b"list:%06d" % i]
        args += [b"elem-%d-%d" % (e, rng.randrange(1 << 30)) for e in range(10)]
        out.append(cmd(*args))
        d = flush()
        if d:
            yield d
    for i in range(50_000):
        args = [b"SADD", b"set:%06d" % i]
        if i % 2 == 0:  # intset
            args += [b"%d" % (rng.randrange(-(1 << 40), 1 << 40)) for _ in range(10)]
        else:
            args += [b"member-%d" % rng.randrange(1 << 30) for _ in range(10)]
        out.append(cmd(*args))
        d = flush()
        if d:
            yield d
    for i in range(50_000):
        args = [b"ZADD", b"zset:%06d" % i]
        for m in range(10):
            args += [repr(rng.random() * 1000).encode(), b"m%d" % m]
        out.append(cmd(*args))
        d = flush()
        if d:
            yield d
    for h in range(20):
        key = b"bighash:%02d" % h
        for base in range(0, 10_000, 1000):
            args = [b"HSET", key]
            for f in range(base, base + 1000):
                args += [b"f%05d" % f, b"value-%d" % rng.randrange(1 << 40)]
            out.append(cmd(*args))
        d = flush()
        if d:
            yield d
    for li in range(20):
        key = b"biglist:%02d" % li
        for base in range(0, 10_000, 1000):
            args = [b"RPUSH", key]
            args += [b"item-%05d-%d" % (e, rng.randrange(1 << 30))
                     for e in range(base, base + 1000)]
            out.append(cmd(*args))
        d = flush()
        if d:
            yield d
    d = flush(True)
    if d:
        yield d


DATASETS = {
    "s1_100k": lambda: gen_s1(100_000),
    "s1_1m": lambda: gen_s1(1_000_000),
    "s1_5m": lambda: gen_s1(5_000_000),
    "s2": gen_s2,
    # big_1g is built server side with DEBUG POPULATE (see main)
}

# big_1g: 24M keys of 32-byte values (S1-like), rdbcompression off -> ~1.13 GB
BIG_KEYS = 24_000_000
BIG_VALUE = 32


# ---------------------------------------------------------------- server

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nsync-bench-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--enable-debug-command", "yes", "--logfile", "",
             "--loglevel", "warning", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if self.cli("PING").strip() == "PONG":
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        return subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
            check=True, capture_output=True, text=True).stdout

    def pipe(self, chunks):
        p = subprocess.Popen(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--pipe"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for c in chunks:
            p.stdin.write(c)
        p.stdin.close()
        out = p.stdout.read().decode(errors="replace")
        if p.wait() != 0 or "errors: 0" not in out:
            raise RuntimeError("redis-cli --pipe failed: " + out)

    def save_to(self, dest):
        self.cli("SAVE")
        tmp = dest + ".tmp"
        shutil.copyfile(os.path.join(self.dir, "dump.rdb"), tmp)
        os.replace(tmp, dest)
        os.remove(os.path.join(self.dir, "dump.rdb"))

    def stop(self):
        try:
            self.cli("SHUTDOWN", "NOSAVE")
        except subprocess.CalledProcessError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--force", action="store_true", help="rebuild existing files")
    ap.add_argument("--big", action="store_true", help="also build big_1g")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    names = a.names or (list(DATASETS) + (["big_1g"] if a.big else []))
    for n in names:
        if n not in DATASETS and n != "big_1g":
            sys.exit("unknown data set %s (known: %s big_1g)" % (n, " ".join(DATASETS)))
    os.makedirs(DATA, exist_ok=True)
    todo = [n for n in names
            if a.force or not os.path.exists(os.path.join(DATA, n + ".rdb"))]
    if not todo:
        print("data sets present:", " ".join(names))
        return
    srv = Server()
    try:
        for n in todo:
            t0 = time.time()
            srv.cli("FLUSHALL")
            if n == "big_1g":
                srv.cli("CONFIG", "SET", "rdbcompression", "no")
                srv.cli("DEBUG", "POPULATE", str(BIG_KEYS), "big", str(BIG_VALUE))
            else:
                srv.cli("CONFIG", "SET", "rdbcompression", "yes")
                srv.pipe(DATASETS[n]())
            keys = srv.cli("DBSIZE").strip()
            dest = os.path.join(DATA, n + ".rdb")
            srv.save_to(dest)
            print("%-8s %9s keys %8.1f MB  %.1fs" % (
                n, keys, os.path.getsize(dest) / 1e6, time.time() - t0), flush=True)
        srv.cli("FLUSHALL")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
