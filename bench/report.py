#!/usr/bin/env python3
"""nsync against a real redis-server replica (issues 4 and 5): full sync,
memory, live stream and stream apply rate. python3 stdlib only.

Every server is started here, on 127.0.0.1 free ports in temp dirs. Each
nsync measurement runs in a fresh Erlang VM (bench/nsync_bench.erl, compiled
into a temp dir); each real replica is a fresh redis-server. Runs of the
contenders are interleaved (run 1 of each, then run 2 of each, ...), and each
ratio is taken within one run, so a load spike hits both sides of a ratio.

usage: report.py [--write RESULTS.md] [PART...]
  PART: sync (full sync + memory), live (live stream), apply (apply rate),
        tls (full sync over TLS beside a replica with tls-replication yes),
        filter (S1 with a key filter keeping 10% of the keys, and
        nsync:load_file/2 of the snapshots); default all five.
env:  RUNS (5), RUNS_5M (3: runs for s1_5m), SETS (s1_100k,s1_1m,s1_5m,s2),
      MODES (diskless,disk), LIVE_N (1000000), APPLY_N (1000000, the SET
      workload; the mixed one sends the same total), REDIS_SERVER,
      REDIS_BENCHMARK, ERL, NSYNC_BENCH_ERL_FLAGS (emulator flags for the
      nsync VMs, e.g. "+sbwt none +sbwtdcpu none +sbwtdio none"),
      NSYNC_BENCH_EPROF=FILE (eprof the link while it applies, see
      nsync_bench.erl; slows it down), QUIET=1 (on a shared machine: before
      each run, wait up to 10 min until the CPUs are 90% idle), TLS_SETS
      (s1_1m), TLS_MODES (diskless,disk), TLS_RUNS (runs of the tls part: RUNS, 3
      at least), NSYNC_BENCH_BUILD (the build the nsync VMs run,
      _build/default; a copy with other beams A/Bs two builds),
      STEP_TIMEOUT (600: seconds one step may take; past it the part
      reports that it did not finish, and the next part runs).
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import glob

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
# The build the nsync VMs run: NSYNC_BENCH_BUILD names another (a copy of
# _build/default with other beams, to A/B two builds on one machine).
BUILD = os.environ.get("NSYNC_BENCH_BUILD", os.path.join(ROOT, "_build", "default"))
EBIN = os.path.join(BUILD, "lib", "nsync", "ebin")
# nsync and its dependencies (telemetry: in lib/ when fetched from hex, in
# checkouts/ when linked by scripts/setup.sh)
EBINS = sorted(glob.glob(os.path.join(BUILD, "lib", "*", "ebin")) +
               glob.glob(os.path.join(BUILD, "checkouts", "*", "ebin")))
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
REDIS_BENCHMARK = os.environ.get("REDIS_BENCHMARK", "/usr/bin/redis-benchmark")
REDIS_CLI = os.environ.get("REDIS_CLI", "/usr/bin/redis-cli")
ERL = os.environ.get("ERL", "erl")
MiB = 1 << 20


def env_list(name, default):
    return [x for x in os.environ.get(name, default).replace(",", " ").split() if x]


RUNS = int(os.environ.get("RUNS", "5"))
RUNS_5M = int(os.environ.get("RUNS_5M", "3"))
SETS = env_list("SETS", "s1_100k s1_1m s1_5m s2")
MODES = env_list("MODES", "diskless disk")
LIVE_N = int(os.environ.get("LIVE_N", "1000000"))
APPLY_N = int(os.environ.get("APPLY_N", "1000000"))
# The longest one step may take (a full sync, a workload, a wait for a
# replica): past it the step fails, and its part reports that it did not
# finish instead of hanging the run.
STEP_TIMEOUT = int(os.environ.get("STEP_TIMEOUT", "600"))


def run_bounded(args, what, **kw):
    """subprocess.run within STEP_TIMEOUT; a timeout says which step."""
    try:
        return subprocess.run(args, timeout=STEP_TIMEOUT, **kw)
    except subprocess.TimeoutExpired:
        raise RuntimeError("%s: not done within %d s" % (what, STEP_TIMEOUT))


def wait_until(ready, what, pause):
    """Polls `ready()` every `pause` s until it holds, at most STEP_TIMEOUT."""
    deadline = time.time() + STEP_TIMEOUT
    while not ready():
        if time.time() > deadline:
            raise RuntimeError("%s: not done within %d s" % (what, STEP_TIMEOUT))
        time.sleep(pause)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ RESP

class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(1 << 16)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                d = self.sock.recv(1 << 16)
                if not d:
                    raise ConnectionError("closed")
                self.buf += d
            body, self.buf = self.buf[:n], self.buf[n + 2:]
            return body.decode(errors="replace")
        if t == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)

    def info(self, *sections):
        d = {}
        for ln in self.cmd("INFO", *sections).splitlines():
            if ln and not ln.startswith("#") and ":" in ln:
                k, v = ln.split(":", 1)
                d[k] = v
        return d

    def close(self):
        self.sock.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    """A redis-server on a free loopback port in a temp dir. `rdb`: a file
    it loads at start (linked into the dir; a disk-sync BGSAVE replaces the
    link, never the file)."""

    def __init__(self, config=(), rdb=None):
        self.dir = tempfile.mkdtemp(prefix="redisbench_")
        if rdb:
            os.symlink(os.path.abspath(rdb), os.path.join(self.dir, "dump.rdb"))
        for _ in range(5):
            self.port = free_port()
            args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", self.dir, "--dbfilename", "dump.rdb", "--save", "",
                    "--appendonly", "no", "--daemonize", "no",
                    "--logfile", os.path.join(self.dir, "redis.log")]
            for k, v in config:
                args += ["--" + k, str(v)]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return
        raise RuntimeError("redis-server did not start: " + self.logtail())

    def _wait_ready(self):
        deadline = time.time() + 300  # loading a 5M-key file takes a while
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = Conn(self.port)
                try:
                    if c.info("persistence").get("loading") == "0":
                        self.conn = c
                        return True
                except RuntimeError:
                    pass
                c.close()
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def logtail(self):
        try:
            return open(os.path.join(self.dir, "redis.log")).read()[-2000:]
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=30)
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1]) * 1024
    return None


def master_config(mode):
    c = [("repl-diskless-sync", "yes" if mode == "diskless" else "no"),
         ("repl-diskless-sync-delay", 0),
         ("client-output-buffer-limit", "replica 0 0 0")]
    return c


# ------------------------------------------------------------------ nsync VM

BEAM_DIR = None


def compile_bench(modules=("nsync_bench.erl",)):
    global BEAM_DIR
    BEAM_DIR = tempfile.mkdtemp(prefix="benchbeam_")
    for m in modules:
        subprocess.run(["erlc", "-o", BEAM_DIR, os.path.join(HERE, m)], check=True)
    if not os.path.exists(os.path.join(EBIN, "nsync.beam")):
        sys.exit("build nsync first: rebar3 compile")


def cleanup_bench():
    shutil.rmtree(BEAM_DIR, ignore_errors=True)


ERL_FLAGS = os.environ.get("NSYNC_BENCH_ERL_FLAGS", "").split()


def erl_cmd(*args):
    return [ERL, *ERL_FLAGS, "-noshell", "-pa", *EBINS, "-pa", BEAM_DIR, "-run", "nsync_bench", "main",
            *args]


def parse_result(text):
    for ln in text.splitlines():
        if ln.startswith("RESULT "):
            return json.loads(ln[7:])
    raise RuntimeError("no RESULT in:\n" + text[-3000:])


def nsync_fullsync(master, mode, tls=None, keys=None):
    """`tls`: (port, CA file) of the master's TLS port; `keys`: a `keys`
    option (an Erlang term)."""
    if tls is not None:
        args = ("fullsync", mode, str(tls[0]), tls[1])
    elif keys is not None:
        args = ("fullsync_keys", mode, str(master.port), keys)
    else:
        args = ("fullsync", mode, str(master.port))
    p = run_bounded(erl_cmd(*args), "nsync full sync (%s)" % " ".join(args),
                    capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("nsync fullsync failed:\n" + p.stdout + p.stderr)
    return parse_result(p.stdout)


class NsyncServe:
    """A VM with a link (ETS mirror) to `port`, driven over stdin."""

    def __init__(self, port):
        self.p = subprocess.Popen(erl_cmd("serve", str(port)), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        self.buf = b""
        self.expect("READY")

    def readline(self, deadline):
        while b"\n" not in self.buf:
            if not select.select([self.p.stdout], [], [], max(0, deadline - time.time()))[0]:
                return None
            d = os.read(self.p.stdout.fileno(), 65536)
            if not d:
                return False
            self.buf += d
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode(errors="replace")

    def expect(self, word, timeout=STEP_TIMEOUT):
        deadline = time.time() + timeout
        while True:
            ln = self.readline(deadline)
            if ln is None:
                self.p.kill()
                raise RuntimeError("nsync VM: no %s within %d s" % (word, timeout))
            if ln is False:
                raise RuntimeError("nsync VM exited (rc %s)" % self.p.wait())
            if ln.startswith("ERROR"):
                raise RuntimeError(ln)
            if ln.startswith(word):
                return ln

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def stop(self):
        try:
            self.send("quit")
            self.p.wait(timeout=20)
        except Exception:
            self.p.kill()
            self.p.wait()


def transfer_only(master):
    """The floor of any full sync: `redis-cli --rdb` receives the snapshot
    from the same master and stores nothing but the file (page cache)."""
    d = tempfile.mkdtemp(prefix="benchrdb_")
    try:
        t0 = time.perf_counter()
        run_bounded([REDIS_CLI, "-h", "127.0.0.1", "-p", str(master.port), "--rdb",
                     os.path.join(d, "out.rdb")], "transfer only (redis-cli --rdb)",
                    check=True, capture_output=True)
        return {"seconds": time.perf_counter() - t0}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def replica_fullsync(master, tls=None):
    """`tls`: (master's TLS port, the replica's TLS config): replicate over
    TLS (`tls-replication yes`)."""
    r = Server(config=tls[1] if tls else ())
    try:
        c = r.conn
        base = int(c.info("memory")["used_memory"])
        cpu0 = proc_cpu_s(r.pid)
        t0 = time.perf_counter()
        c.cmd("REPLICAOF", "127.0.0.1", tls[0] if tls else master.port)

        def loaded():
            d = c.info("replication", "persistence")
            return d.get("master_link_status") == "up" and d.get("loading") == "0" \
                and d.get("master_sync_in_progress") == "0"
        wait_until(loaded, "replica full sync", 0.001)
        t1 = time.perf_counter()
        cpu1 = proc_cpu_s(r.pid)
        m = c.info("memory")
        keys = c.cmd("DBSIZE")
        return {"seconds": t1 - t0, "used_memory": int(m["used_memory"]),
                "used_memory_empty": base, "used_memory_rss": int(m["used_memory_rss"]),
                "keys": keys, "cpu_s": cpu1 - cpu0,
                "hwm": proc_status(r.pid, "VmHWM"), "rss_after": proc_status(r.pid, "VmRSS")}
    finally:
        r.stop()


# ------------------------------------------------------------------ helpers

def med(xs):
    return statistics.median(xs)


def fmt_range(xs, f):
    if not xs:
        return "-"
    return "%s (%s-%s)" % (f(med(xs)), f(min(xs)), f(max(xs)))


def s3(x):
    return "%.3f" % x


def x2(x):
    return "%.2fx" % x


def x3(x):
    return "%.3fx" % x


def mib(x):
    return "%.1f" % (x / MiB)


def ratios(a, b):
    return [x / y for x, y in zip(a, b) if y]


def machine_line():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1048576
    ver = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True).stdout.split()
    rv = next((w.split("=")[1] for w in ver if w.startswith("v=")), "?")
    otp = subprocess.run([ERL, "-noshell", "-eval",
                          'io:format("~s", [erlang:system_info(otp_release)]), halt().'],
                         capture_output=True, text=True).stdout
    return ("Measured %s on: %d CPUs, %s, %.1f GiB RAM, redis-server %s, OTP %s%s, "
            "load average at start %s" % (time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                                           os.cpu_count(), cpu, mem, rv, otp,
                                           " (nsync VMs: erl %s)" % " ".join(ERL_FLAGS)
                                           if ERL_FLAGS else "", loadavg()))


QUIET = os.environ.get("QUIET") == "1"


def cpu_idle_fraction(seconds=1.0):
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet():
    """With QUIET=1, waits until other work on the machine has stopped (the
    CPUs 90% idle over a second), at most 10 minutes."""
    if not QUIET:
        return
    deadline = time.time() + 600
    waited = False
    while cpu_idle_fraction() < 0.9 and time.time() < deadline:
        waited = True
    if waited:
        log("  (waited for the machine to be quiet: load %s)" % loadavg())


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------ full sync

def run_sync(goals):
    rows = []       # (set, mode, contender, [results])
    memrows = []
    for s in SETS:
        rdb = os.path.join(DATA, s + ".rdb")
        if not os.path.exists(rdb):
            log("skip %s: %s missing" % (s, rdb))
            continue
        runs = RUNS_5M if s == "s1_5m" else RUNS
        for mode in MODES:
            log("sync: %s %s, %d runs, load %s" % (s, mode, runs, loadavg()))
            master = Server(master_config(mode), rdb=rdb)
            try:
                res = {"replica": [], "ets": [], "noop": [], "transfer": []}
                for i in range(runs):
                    wait_quiet()
                    res["replica"].append(replica_fullsync(master))
                    res["ets"].append(nsync_fullsync(master, "ets"))
                    res["noop"].append(nsync_fullsync(master, "noop"))
                    res["transfer"].append(transfer_only(master))
                    log("  run %d: replica %.3fs ets %.3fs noop %.3fs transfer only %.3fs" % (
                        i + 1, res["replica"][-1]["seconds"], res["ets"][-1]["seconds"],
                        res["noop"][-1]["seconds"], res["transfer"][-1]["seconds"]))
                for r in res["ets"] + res["noop"]:
                    if r["keys"] != res["replica"][0]["keys"]:
                        raise RuntimeError("key count differs: %r vs %r" % (r, res["replica"][0]))
            finally:
                master.stop()
            rows.append((s, mode, res))
    return rows


def sync_tables(rows, goals):
    out = []
    out.append("### Full sync: start to `{load, eof}` / REPLICAOF to link up and loaded\n")
    out.append("%d runs per row (s1_5m: %d). " % (RUNS, RUNS_5M) +
               "Seconds, median (min-max); ratio = nsync / replica within each run, "
               "median (min-max) of the per-run ratios (< 1: nsync faster). CPU = CPU "
               "seconds of the replica process / of the nsync VM during the sync "
               "(median). Transfer only = `redis-cli --rdb` from the same master (receives "
               "the snapshot into a file, parses and stores nothing): the floor of any full "
               "sync from that master, and its ratio to the replica the best any contender "
               "can reach.\n")
    out.append("| set | keys | master | replica s | replica CPU s | nsync ETS s | ETS / replica "
               "| ETS CPU s | nsync no-op s | no-op / replica | no-op CPU s | transfer only s "
               "| transfer / replica |")
    out.append("|---|---:|---|---|---:|---|---|---:|---|---|---:|---|---|")
    for s, mode, res in rows:
        rep = [r["seconds"] for r in res["replica"]]
        ets = [r["seconds"] for r in res["ets"]]
        noop = [r["seconds"] for r in res["noop"]]
        re_ = ratios(ets, rep)
        rn = ratios(noop, rep)
        transfer = [r["seconds"] for r in res["transfer"]]
        rt = ratios(transfer, rep)
        out.append("| %s | %d | %s | %s | %.2f | %s | **%s** | %.2f | %s | **%s** | %.2f | %s "
                   "| %s |" % (
            s, res["replica"][0]["keys"], mode, fmt_range(rep, s3),
            med([r["cpu_s"] for r in res["replica"]]), fmt_range(ets, s3), fmt_range(re_, x2),
            med([r["cpu_s"] for r in res["ets"]]), fmt_range(noop, s3), fmt_range(rn, x2),
            med([r["cpu_s"] for r in res["noop"]]), fmt_range(transfer, s3),
            fmt_range(rt, x2)))
        if s in ("s1_1m", "s2"):
            floor = " (transfer-only floor %s)" % x2(med(rt))
            goals.append(("full sync into ETS / replica, %s, %s%s" % (s, mode, floor),
                          "<= 0.80x", med(re_), x2(med(re_)), med(re_) <= 0.8))
            # issue 15: the no-op callback within 5% of the transfer-only floor
            lim = 1.05 * med(rt)
            goals.append(("full sync, no-op callback / replica, %s, %s%s" % (s, mode, floor),
                          "<= floor + 5%% (%s)" % x2(lim), med(rn), x2(med(rn)), med(rn) <= lim))
    # growth
    s1 = [(s, mode, res) for s, mode, res in rows if s.startswith("s1_")]
    if s1:
        out.append("\nGrowth (S1, 100k -> 5M keys): time per key (median run) and memory "
                   "per key (mirror: its ETS tables; replica: `used_memory` less an empty "
                   "replica's).\n")
        out.append("| set | master | replica us/key | nsync ETS us/key | nsync no-op us/key "
                   "| replica bytes/key | mirror bytes/key |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for s, mode, res in s1:
            k = res["replica"][0]["keys"]
            out.append("| %s | %s | %.2f | %.2f | %.2f | %.0f | %.0f |" % (
                s, mode, med([r["seconds"] for r in res["replica"]]) / k * 1e6,
                med([r["seconds"] for r in res["ets"]]) / k * 1e6,
                med([r["seconds"] for r in res["noop"]]) / k * 1e6,
                med([r["used_memory"] - r["used_memory_empty"] for r in res["replica"]]) / k,
                med([r["ets_bytes"] for r in res["ets"]]) / k))

    mem = []
    mem.append("### Memory after the full sync\n")
    mem.append("Mirror = `ets:info(T, memory)` x word size of the mirror's tables (data + "
               "expiry); replica = its INFO `used_memory` after loading (an empty replica "
               "has %s MiB of it), and its RSS. BEAM: VmHWM (peak during the sync: each "
               "run is a fresh VM, so the peak is the sync's) and VmRSS right after "
               "`{load, eof}`; the VM's RSS before starting the link was %s MiB. MiB, "
               "medians over runs and masters; peak - after is the worst run.\n" % (
                   mib(med([r["used_memory_empty"] for _, _, res in rows for r in res["replica"]]))
                   if rows else "-",
                   mib(med([r["rss_before"] for _, _, res in rows for r in res["ets"]]))
                   if rows else "-"))
    mem.append("| set | mirror ETS | replica used_memory | mirror / used_memory (per-run) "
               "| replica RSS | BEAM peak (ETS) | BEAM after (ETS) | peak - after, worst "
               "| BEAM peak (no-op) | BEAM after (no-op) | peak - after (no-op), worst |")
    mem.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    by_set = {}
    for s, mode, res in rows:
        d = by_set.setdefault(s, {"replica": [], "ets": [], "noop": []})
        for k in d:
            d[k] += res[k]
    for s, d in by_set.items():
        ets_b = [r["ets_bytes"] for r in d["ets"]]
        used = [r["used_memory"] for r in d["replica"]]
        rm = ratios(ets_b, used)
        dpe = [r["hwm"] - r["rss_after"] for r in d["ets"]]
        dpn = [r["hwm"] - r["rss_after"] for r in d["noop"]]
        mem.append("| %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s |" % (
            s, mib(med(ets_b)), mib(med(used)), fmt_range(rm, x2),
            mib(med([r["rss_after"] for r in d["replica"]])),
            mib(med([r["hwm"] for r in d["ets"]])), mib(med([r["rss_after"] for r in d["ets"]])),
            mib(max(dpe)), mib(med([r["hwm"] for r in d["noop"]])),
            mib(med([r["rss_after"] for r in d["noop"]])), mib(max(dpn))))
        goals.append(("mirror memory / replica used_memory, %s" % s, "<= 1.20x", med(rm),
                      x2(med(rm)), med(rm) <= 1.2))
        goals.append(("BEAM peak RSS - RSS after, ETS mirror, %s (worst run)" % s, "<= 64 MiB",
                      max(dpe) / MiB, mib(max(dpe)) + " MiB", max(dpe) <= 64 * MiB))
    return "\n".join(out) + "\n", "\n".join(mem) + "\n"


# ------------------------------------------------------------------ key filter

S1_KEYS = {"s1_100k": 100_000, "s1_1m": 1_000_000, "s1_5m": 5_000_000}


def tenth_filters(n):
    """Two `keys` options keeping the first tenth of S1's key:%07d: by
    prefixes, and the glob `*0` (every tenth key)."""
    tenth = n // 10
    d = len(str(tenth)) - 1
    while tenth % (10 ** d):
        d -= 1
    prefixes = ",".join('{prefix,<<"key:%s">>}' % str(i).zfill(7 - d)
                        for i in range(tenth // 10 ** d))
    return {"prefix": "[%s]" % prefixes, "glob": '[{match,<<"*0">>}]'}


def nsync_loadfile(path, mode, keys=None):
    extra = [keys] if keys else []
    p = subprocess.run(erl_cmd("loadfile", mode, path, *extra), capture_output=True, text=True,
                       timeout=3600)
    if p.returncode != 0:
        raise RuntimeError("nsync loadfile failed:\n" + p.stdout + p.stderr)
    return parse_result(p.stdout)


def run_filter():
    """Per S1 set and master mode, per run: a real replica, the unfiltered
    ETS mirror and the mirror with each 10% filter, against one master;
    then load_file of each snapshot (and big_1g's, if built)."""
    rows = []
    for s in [x for x in SETS if x in S1_KEYS]:
        rdb = os.path.join(DATA, s + ".rdb")
        if not os.path.exists(rdb):
            log("skip %s: %s missing" % (s, rdb))
            continue
        filters = tenth_filters(S1_KEYS[s])
        runs = RUNS_5M if s == "s1_5m" else RUNS
        for mode in MODES:
            log("filter: %s %s, %d runs, load %s" % (s, mode, runs, loadavg()))
            master = Server(master_config(mode), rdb=rdb)
            try:
                res = {"replica": [], "ets": [], "prefix": [], "glob": []}
                for i in range(runs):
                    wait_quiet()
                    res["replica"].append(replica_fullsync(master))
                    res["ets"].append(nsync_fullsync(master, "ets"))
                    for name, keys in filters.items():
                        res[name].append(nsync_fullsync(master, "ets", keys=keys))
                    log("  run %d: replica %.3fs ets %.3fs prefix %.3fs glob %.3fs" % (
                        i + 1, res["replica"][-1]["seconds"], res["ets"][-1]["seconds"],
                        res["prefix"][-1]["seconds"], res["glob"][-1]["seconds"]))
                for name in filters:
                    for r in res[name]:
                        if r["keys"] != S1_KEYS[s] // 10:
                            raise RuntimeError("%s kept %r keys" % (name, r["keys"]))
            finally:
                master.stop()
            rows.append((s, mode, res))
    files = []
    for s in [x for x in SETS + ["big_1g"] if x in S1_KEYS or x == "big_1g"]:
        rdb = os.path.join(DATA, s + ".rdb")
        if not os.path.exists(rdb):
            continue
        log("load_file: %s (%d MiB)" % (s, os.path.getsize(rdb) // MiB))
        res = {"noop": [], "ets": [], "glob": []}
        for i in range(RUNS_5M if s in ("s1_5m", "big_1g") else RUNS):
            wait_quiet()
            res["noop"].append(nsync_loadfile(rdb, "noop"))
            if s != "big_1g":
                res["ets"].append(nsync_loadfile(rdb, "ets"))
            res["glob"].append(nsync_loadfile(rdb, "ets", '[{match,<<"*0">>}]'))
        files.append((s, os.path.getsize(rdb), res))
    return rows, files


def filter_tables(data, goals):
    rows, files = data
    out = ["### Key filter: S1 keeping 10% of the keys\n",
           "%d runs per row (s1_5m: %d), one master per row; every run syncs a real replica, "
           "the unfiltered ETS mirror and the mirror with each filter, in turn. Prefix: the "
           "`{prefix, P}` filters of the first tenth of `key:%%07d`; glob: `{match, \"*0\"}`. "
           "Seconds and ratios to the replica as in Full sync; memory as in Memory (ETS: the "
           "mirror's tables; BEAM peak: VmHWM of the fresh VM).\n" % (RUNS, RUNS_5M),
           "| set | master | replica s | ETS s | ETS / replica | prefix 10% s | prefix / replica "
           "| glob 10% s | glob / replica | ETS MiB | prefix MiB | glob MiB | replica used_memory "
           "| BEAM peak ETS | BEAM peak prefix | BEAM peak glob |",
           "|---|---|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s, mode, res in rows:
        rep = [r["seconds"] for r in res["replica"]]
        cols = []
        for name in ("ets", "prefix", "glob"):
            t = [r["seconds"] for r in res[name]]
            cols += [fmt_range(t, s3), "**%s**" % fmt_range(ratios(t, rep), x2)]
        cells = ([s, mode, fmt_range(rep, s3)] + cols
                 + [mib(med([r["ets_bytes"] for r in res[n]])) for n in ("ets", "prefix", "glob")]
                 + [mib(med([r["used_memory"] for r in res["replica"]]))]
                 + [mib(med([r["hwm"] for r in res[n]])) for n in ("ets", "prefix", "glob")])
        out.append("| " + " | ".join(cells) + " |")
        glob = ratios([r["seconds"] for r in res["glob"]], [r["seconds"] for r in res["ets"]])
        goals.append(("S1 sync keeping 10%% / unfiltered, %s, %s (glob)" % (s, mode), "report",
                      med(glob), x2(med(glob)), None))
    out.append("\n### load_file\n")
    out.append("`nsync:load_file/2` of the snapshot files (page cache warm): a no-op "
               "callback (parse and terms only), the ETS mirror, and the mirror with the glob "
               "filter. BEAM peak - before: VmHWM of the fresh VM less its RSS before the "
               "load: what reading the file costs beyond the tables. Seconds and MiB, "
               "medians.\n")
    out.append("| file | MiB | no-op s | no-op peak - before | ETS s | ETS MiB | glob 10% s "
               "| glob peak - before |")
    out.append("|---|---:|---|---:|---|---:|---|---:|")
    for s, size, res in files:
        def peak(rs):
            return mib(max(r["hwm"] - r["rss_before"] for r in rs)) if rs else "-"
        ets = res["ets"]
        out.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            s, size // MiB, fmt_range([r["seconds"] for r in res["noop"]], s3), peak(res["noop"]),
            fmt_range([r["seconds"] for r in ets], s3) if ets else "-",
            mib(med([r["ets_bytes"] for r in ets])) if ets else "-",
            fmt_range([r["seconds"] for r in res["glob"]], s3), peak(res["glob"])))
        worst = max(r["hwm"] - r["rss_before"] for r in res["noop"])
        goals.append(("load_file %s, no-op: BEAM peak - before (flat memory)" % s, "<= 64 MiB",
                      worst / MiB, mib(worst) + " MiB", worst <= 64 * MiB))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ TLS

TLS_SETS = env_list("TLS_SETS", "s1_1m")
TLS_MODES = env_list("TLS_MODES", "diskless disk")
# Runs of the TLS part: 3 at least (a run of its four syncs takes seconds,
# and one run on a loaded machine gave 2.03x where the next gave 0.6x).
TLS_RUNS = int(os.environ.get("TLS_RUNS", max(RUNS, 3)))


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs():
    """A CA and a server certificate for 127.0.0.1 (EC P-256), in a temp dir."""
    d = tempfile.mkdtemp(prefix="benchtls_")
    p = lambda n: os.path.join(d, n)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2",
            "-subj", "/CN=nsync bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", p("server.key"), "-out", p("server.csr"),
            "-subj", "/CN=localhost")
    with open(p("ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-out", p("server.crt"), "-days", "2", "-extfile", p("ext"))
    return d


def tls_config(certs, port):
    """A TLS port beside the plain one (which the bench's own INFO polling
    uses); replication over TLS."""
    p = lambda n: os.path.join(certs, n)
    return [("tls-port", port), ("tls-cert-file", p("server.crt")),
            ("tls-key-file", p("server.key")), ("tls-ca-cert-file", p("ca.crt")),
            ("tls-auth-clients", "no"), ("tls-replication", "yes")]


def run_tls(goals):
    rows = []
    certs = make_certs()
    try:
        for s in TLS_SETS:
            rdb = os.path.join(DATA, s + ".rdb")
            if not os.path.exists(rdb):
                log("skip %s: %s missing" % (s, rdb))
                continue
            for mode in TLS_MODES:
                log("tls: %s %s, %d runs, load %s" % (s, mode, TLS_RUNS, loadavg()))
                port = free_port()
                master = Server(master_config(mode) + tls_config(certs, port), rdb=rdb)
                tls = (port, os.path.join(certs, "ca.crt"))
                try:
                    res = {"replica_tls": [], "ets_tls": [], "replica": [], "ets": []}
                    syncs = {
                        "replica_tls": lambda: replica_fullsync(
                            master, (port, tls_config(certs, free_port()))),
                        "ets_tls": lambda: nsync_fullsync(master, "ets", tls),
                        "replica": lambda: replica_fullsync(master),
                        "ets": lambda: nsync_fullsync(master, "ets")}
                    for i in range(TLS_RUNS):
                        wait_quiet()
                        # Odd runs in reverse order: neither side always first.
                        for k in (list(syncs) if i % 2 == 0 else list(syncs)[::-1]):
                            res[k].append(syncs[k]())
                        log("  run %d: over TLS replica %.3fs nsync %.3fs; plain replica "
                            "%.3fs nsync %.3fs" % (i + 1, *(res[k][-1]["seconds"] for k in (
                                "replica_tls", "ets_tls", "replica", "ets"))))
                    for r in res["ets_tls"]:
                        if r["keys"] != res["replica_tls"][0]["keys"]:
                            raise RuntimeError("key count differs: %r" % r)
                finally:
                    master.stop()
                rows.append((s, mode, res))
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    return rows


def tls_table(rows, goals):
    out = ["### Full sync over TLS: nsync (rustls) beside a replica with "
           "`tls-replication yes`\n",
           "%d runs per row, each contender in each run from the same master (its TLS "
           "port; plain: its TCP port). Seconds, median (min-max); ratio = nsync / "
           "replica within each run, median (min-max) of the per-run ratios. The plain "
           "columns show what TLS costs each side.\n" % TLS_RUNS,
           "| set | keys | master | replica TLS s | nsync TLS s | TLS: nsync / replica "
           "| replica plain s | nsync plain s | plain: nsync / replica | nsync CPU s TLS / plain |",
           "|---|---:|---|---|---|---|---|---|---|---|"]
    for s, mode, res in rows:
        sec = {k: [r["seconds"] for r in v] for k, v in res.items()}
        rt = ratios(sec["ets_tls"], sec["replica_tls"])
        rp = ratios(sec["ets"], sec["replica"])
        out.append("| %s | %d | %s | %s | %s | **%s** | %s | %s | %s | %.2f / %.2f |" % (
            s, res["replica_tls"][0]["keys"], mode, fmt_range(sec["replica_tls"], s3),
            fmt_range(sec["ets_tls"], s3), fmt_range(rt, x2), fmt_range(sec["replica"], s3),
            fmt_range(sec["ets"], s3), fmt_range(rp, x2),
            med([r["cpu_s"] for r in res["ets_tls"]]), med([r["cpu_s"] for r in res["ets"]])))
        goals.append(("full sync over TLS into ETS / replica (tls-replication yes), %s, %s"
                      % (s, mode), "<= 0.90x", med(rt), x2(med(rt)), med(rt) <= 0.9))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ live stream

def bench_args(port, extra):
    return [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "--csv"] + extra


def run_benchmarks(port, workload):
    """Runs the workload's redis-benchmark processes concurrently; returns
    (summed requests/s, number of commands sent)."""
    procs = [subprocess.Popen(bench_args(port, a), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
             for a, _ in workload]
    rps = 0.0
    deadline = time.time() + STEP_TIMEOUT
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
                q.wait()
            raise RuntimeError("redis-benchmark: not done within %d s" % STEP_TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError("redis-benchmark failed: " + out)
        for ln in out.splitlines():
            f = [x.strip('"') for x in ln.split('","')]
            if len(f) > 1 and f[0].strip('"') != "test":
                rps += float(f[1])
    return rps, sum(n for _, n in workload)


def set_workload(n):
    return [(["-t", "set", "-n", str(n), "-P", "16", "-r", "1000000", "-d", "32"], n)]


VAL = "v" * 32


def mixed_workload(n):
    """Six concurrent redis-benchmark processes, n/6 commands each, on many
    small keys (redis-benchmark's own -t lpush/sadd/hset/zadd would all hit
    one single ever-growing key)."""
    k = n // 6
    common = ["-n", str(k), "-P", "16", "-c", "8"]
    return [(common + ["-r", "1000000", "SET", "key:__rand_int__", VAL], k),
            (common + ["-r", "100000", "INCR", "counter:__rand_int__"], k),
            (common + ["-r", "10000", "LPUSH", "list:__rand_int__", VAL], k),
            (common + ["-r", "10000", "HSET", "hash:__rand_int__", "f:__rand_int__", VAL], k),
            (common + ["-r", "10000", "SADD", "set:__rand_int__", "m:__rand_int__"], k),
            (common + ["-r", "10000", "ZADD", "zset:__rand_int__", "__rand_int__",
                       "m:__rand_int__"], k)]


def attach(kind, master):
    """Attaches a replica of `kind` to `master` and waits for the sync."""
    if kind == "none":
        return None
    if kind == "replica":
        r = Server()
        r.conn.cmd("REPLICAOF", "127.0.0.1", master.port)

        def loaded():
            d = r.conn.info("replication", "persistence")
            return d.get("master_link_status") == "up" and d.get("loading") == "0"
        try:
            wait_until(loaded, "replica attach", 0.005)
        except RuntimeError:
            r.stop()
            raise
        return r
    return NsyncServe(master.port)


def master_offset(master):
    return int(master.conn.info("replication")["master_repl_offset"])


SENTINEL = "nsync-bench-sentinel"


def write_sentinel(master):
    """Writes a fresh sentinel value after the load; the stream is in order,
    so a replica holding it has applied everything before it."""
    tok = "t%d" % time.perf_counter_ns()
    master.conn.cmd("SET", SENTINEL, tok)
    return tok


def poll_key(replica, tok, timeout=STEP_TIMEOUT):
    deadline = time.time() + timeout
    while replica.conn.cmd("GET", SENTINEL) != tok:
        if time.time() > deadline:
            raise RuntimeError("replica: no sentinel within %d s" % timeout)
        time.sleep(0.001)


def wait_sentinel(kind, att, tok):
    """Seconds from now until the replica holds the sentinel. The real
    replica is asked with GET every ms; nsync's VM looks at its mirror every
    ms and reports its own elapsed time (its stdin line arrives in well
    under a ms); returns (seconds, nsync's report or None)."""
    t0 = time.perf_counter()
    if kind == "replica":
        poll_key(att, tok)
        return time.perf_counter() - t0, None
    att.send("waitkey %s %s" % (SENTINEL, tok))
    r = parse_result(att.expect("RESULT"))
    return r["seconds"], r


def wait_acked(master, target, t_end):
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        d = master.conn.info("replication")
        offs = [int(m.group(1)) for k, v in d.items() if k.startswith("slave")
                for m in [re.search(r"offset=(\d+)", v)] if m]
        if offs and min(offs) >= target:
            return time.perf_counter() - t_end
        time.sleep(0.001)
    return None


def att_pid(att):
    if att is None:
        return None
    return att.pid if isinstance(att, Server) else att.p.pid


def detach(att):
    if att is not None:
        att.stop()


def run_live():
    kinds = ["none", "replica", "nsync"]
    res = {k: [] for k in kinds}
    for i in range(RUNS):
        wait_quiet()
        for kind in kinds:
            master = Server(master_config("diskless"))
            att = None
            try:
                att = attach(kind, master)
                apid = att_pid(att)
                cpu0 = proc_cpu_s(apid) if apid else 0
                mcpu0 = proc_cpu_s(master.pid)
                rps, n = run_benchmarks(master.port, set_workload(LIVE_N))
                t_end = time.perf_counter()
                tok = write_sentinel(master)
                target = master_offset(master)
                r = {"rps": rps}
                if kind != "none":
                    t_ask = time.perf_counter()
                    secs, _ = wait_sentinel(kind, att, tok)
                    r["catchup"] = (t_ask - t_end) + secs
                    r["cpu_s"] = proc_cpu_s(apid) - cpu0
                    r["acked"] = wait_acked(master, target, t_end)
                r["master_cpu_s"] = proc_cpu_s(master.pid) - mcpu0
                res[kind].append(r)
                log("live run %d %-7s %9.0f ops/s catch-up %s" % (
                    i + 1, kind, rps, "%.1f ms" % (r["catchup"] * 1e3) if "catchup" in r else "-"))
            finally:
                detach(att)
                master.stop()
    return res


def live_table(res, goals):
    out = ["### Live stream: `redis-benchmark -t set -n %d -P 16 -r 1000000 -d 32` "
           "on the master\n" % LIVE_N]
    out.append("Master ops/s with nothing, a real replica, or nsync (ETS mirror) attached "
               "(fresh master per run, %d runs, interleaved). Catch-up = from redis-benchmark's "
               "exit until the replica holds a sentinel key written to the master right after "
               "it (the stream is in order: everything before it is applied; the replica is "
               "asked with GET every ms, nsync's VM looks the key up in the mirror every ms). "
               "Acked = until the master's INFO `slaveN:...offset=` reaches its "
               "`master_repl_offset` after the sentinel (both replicas ACK once a second, so "
               "this is 0-1 s by construction). ms, median (min-max).\n" % RUNS)
    out.append("CPU s = CPU seconds of the replica process / of the nsync VM, and of the "
               "master, from the start of the load to the catch-up (median).\n")
    out.append("| attached | master SET ops/s | / with replica (per-run) | catch-up ms | acked ms "
               "| replica CPU s | master CPU s |")
    out.append("|---|---|---|---|---|---:|---:|")
    rep = [r["rps"] for r in res["replica"]]
    for kind in ("none", "replica", "nsync"):
        rps = [r["rps"] for r in res[kind]]
        ratio = fmt_range(ratios(rps, rep), x2) if kind != "replica" else "1"
        cu = [r["catchup"] * 1e3 for r in res[kind] if "catchup" in r]
        ak = [r["acked"] * 1e3 for r in res[kind] if r.get("acked") is not None]
        cpu = [r["cpu_s"] for r in res[kind] if "cpu_s" in r]
        out.append("| %s | %s | %s | %s | %s | %s | %.2f |" % (
            kind, fmt_range(rps, lambda x: "%.0f" % x), ratio,
            fmt_range(cu, lambda x: "%.1f" % x), fmt_range(ak, lambda x: "%.0f" % x),
            "%.2f" % med(cpu) if cpu else "-", med([r["master_cpu_s"] for r in res[kind]])))
    rn = ratios([r["rps"] for r in res["nsync"]], rep)
    goals.append(("master SET rate, nsync attached / replica attached", ">= 0.95x", med(rn),
                  x3(med(rn)), med(rn) >= 0.95))
    cu = [r["catchup"] * 1e3 for r in res["nsync"]]
    goals.append(("nsync catch-up after the load (median; worst run %.0f ms)" % max(cu),
                  "<= 100 ms", med(cu), "%.1f ms" % med(cu), med(cu) <= 100))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ apply rate

def run_apply():
    workloads = [("SET", set_workload(APPLY_N)), ("mixed", mixed_workload(APPLY_N))]
    res = {}
    for wname, wl in workloads:
        res[wname] = {"replica": [], "nsync": []}
        for i in range(RUNS):
            wait_quiet()
            for kind in ("replica", "nsync"):
                master = Server(master_config("diskless"))
                att = None
                try:
                    att = attach(kind, master)
                    off0 = master_offset(master)
                    if kind == "replica":
                        os.kill(att.pid, signal.SIGSTOP)
                    else:
                        att.send("suspend")
                        att.expect("SUSPENDED")
                    rps, n = run_benchmarks(master.port, wl)
                    tok = write_sentinel(master)
                    cpu0 = proc_cpu_s(att_pid(att))
                    target = master_offset(master)
                    n += 1
                    if kind == "replica":
                        t0 = time.perf_counter()
                        os.kill(att.pid, signal.SIGCONT)
                        poll_key(att, tok)
                        secs = time.perf_counter() - t0
                        r = {"seconds": secs, "commands": n}
                    else:
                        att.send("resume %s %s" % (SENTINEL, tok))
                        w = parse_result(att.expect("RESULT"))
                        secs = w["seconds"]
                        r = {"seconds": secs, "commands": n, "vm": w}
                        if w["unhandled"]:
                            log("WARNING: %d unhandled commands" % w["unhandled"])
                        # SADD/ZADD that change nothing are not propagated: a
                        # few fewer commands than sent is normal in `mixed'
                        if w["commands"] < 0.99 * n:
                            log("WARNING: nsync counted %d commands, %d sent" % (w["commands"], n))
                    r["cpu_s"] = proc_cpu_s(att_pid(att)) - cpu0
                    r["bytes"] = target - off0
                    r["rate"] = r["commands"] / secs
                    res[wname][kind].append(r)
                    log("apply %s run %d %-7s %d cmds %.3fs %.0f cmds/s" % (
                        wname, i + 1, kind, r["commands"], secs, r["rate"]))
                finally:
                    if kind == "replica" and att is not None:
                        try:
                            os.kill(att.pid, signal.SIGCONT)
                        except OSError:
                            pass
                    detach(att)
                    master.stop()
    return res


def apply_table(res, goals):
    out = ["### Stream apply rate (issue 4)\n"]
    out.append("The replica is stopped (nsync: its link process suspended with "
               "`sys:suspend/1`, so its pump gets no credit and stops reading; the real replica: SIGSTOP) while redis-benchmark "
               "writes the workload to the master, so the whole stream waits in the socket and "
               "the master's replica output buffer; then it is resumed (SIGCONT) and timed until "
               "it holds a sentinel key written to the master after the load (as in the live "
               "table). Rate = commands sent / that time (a SADD or ZADD that changes nothing is not propagated: nsync counts up to ~0.01%% fewer in `mixed`). SET: `-t set -n %d -P 16 -r 1000000 -d 32`. Mixed: six "
               "concurrent redis-benchmark processes, %d commands each, `-P 16 -c 8`: "
               "`SET key:R v32` (R < 1M), `INCR counter:R` (R < 100k), and on R < 10k keys "
               "`LPUSH list:R v32`, `HSET hash:R f:R v32`, `SADD set:R m:R`, `ZADD zset:R R "
               "m:R`, i.e. collections of ~%d elements. %d runs, interleaved; commands/s, "
               "median (min-max).\n" % (APPLY_N, APPLY_N // 6, APPLY_N // 6 // 10000, RUNS))
    out.append("CPU us/cmd = CPU time of the replica process / of the nsync VM while "
               "applying, per command (median).\n")
    out.append("| workload | commands | stream MB | replica cmds/s | nsync cmds/s | nsync / "
               "replica (per-run) | replica s | nsync s | replica CPU us/cmd | nsync CPU us/cmd |")
    out.append("|---|---:|---:|---|---|---|---|---|---:|---:|")
    for w, d in res.items():
        rr = [r["rate"] for r in d["replica"]]
        nr = [r["rate"] for r in d["nsync"]]
        out.append("| %s | %d | %.1f | %s | %s | **%s** | %s | %s | %.2f | %.2f |" % (
            w, d["replica"][0]["commands"], med([r["bytes"] for r in d["replica"]]) / 1e6,
            fmt_range(rr, lambda x: "%.0f" % x), fmt_range(nr, lambda x: "%.0f" % x),
            fmt_range(ratios(nr, rr), x2), fmt_range([r["seconds"] for r in d["replica"]], s3),
            fmt_range([r["seconds"] for r in d["nsync"]], s3),
            med([r["cpu_s"] * 1e6 / r["commands"] for r in d["replica"]]),
            med([r["cpu_s"] * 1e6 / r["commands"] for r in d["nsync"]])))
        r = med(ratios(nr, rr))
        if w == "mixed":
            goals.append(("stream apply rate nsync / replica, mixed collections", ">= 1x", r,
                          x2(r), r >= 1))
        else:
            goals.append(("stream apply rate nsync / replica, %s (no goal set; shown)" % w,
                          "-", r, x2(r), None))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ output

def goals_table(goals, title="Goals (nsync / replica, same run)"):
    out = ["### %s\n" % title,
           "| figure | goal | measured (median) | goal met? |", "|---|---|---|---|"]
    for name, goal, _, shown, ok in goals:
        out.append("| %s | %s | %s | %s |" % (name, goal, shown,
                                               "-" if ok is None else ("yes" if ok else "**no**")))
    return "\n".join(out) + "\n"


# Each part's goal rows, kept for bench/summary.py (the summary table of
# every part's goals in RESULTS.md).
GOALS_DIR = os.environ.get("NSYNC_BENCH_GOALS", os.path.join(DATA, "goals"))


def save_goals(part, goals):
    os.makedirs(GOALS_DIR, exist_ok=True)
    rows = [{"figure": n, "goal": g, "value": v, "shown": sh, "met": ok,
             "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
            for n, g, v, sh, ok in goals]
    with open(os.path.join(GOALS_DIR, part + ".json"), "w") as f:
        json.dump(rows, f, indent=1)


def write_sections(path, sections):
    """Writes each (marker, title, body) between its markers in `path`."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# nsync benchmark results\n"
    for marker, title, body in sections:
        text = replace_section(text, marker, title, body)
    open(path, "w").write(text)
    log("wrote", ", ".join(m for m, _, _ in sections), "to", path)


def replace_section(text, marker, title, body):
    begin, end = "<!-- %s:begin -->" % marker, "<!-- %s:end -->" % marker
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        return head + begin + "\n" + body + end + tail
    return text.rstrip("\n") + "\n\n## %s\n\n%s\n%s%s\n" % (title, begin, body, end)


def main():
    # a benchmark stopped by SIGTERM still stops its servers (finally:)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = sys.argv[1:]
    write = None
    if args[:1] == ["--write"]:
        write, args = args[1], args[2:]
    parts = args or ["sync", "live", "apply", "tls", "filter"]
    compile_bench()
    head = machine_line()
    log(head)
    goals = []
    sections = []

    def part(name, f):
        n, t0 = len(goals), time.time()
        try:
            f()
        except Exception as e:
            # a stuck or failed step ends its part, not the run: the
            # summary says so, and the other parts still run
            del goals[n:]
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            log("%s: did not finish: %s" % (name, reason))
            goals.append(("%s: did not finish (%s)" % (name, reason), "finishes", None,
                          "-", False))
        save_goals(name, goals[n:])
        log("%s: done in %.0f s" % (name, time.time() - t0))

    def sync():
        rows = run_sync(goals)
        if rows:
            st, mt = sync_tables(rows, goals)
            sections.extend([("fullsync", "Full sync", st), ("memory", "Memory", mt)])

    def tls():
        rows = run_tls(goals)
        if rows:
            sections.append(("tls", "Full sync over TLS", tls_table(rows, goals)))
    try:
        if "sync" in parts:
            part("sync", sync)
        if "live" in parts:
            part("live", lambda: sections.append(
                ("live", "Live stream", live_table(run_live(), goals))))
        if "apply" in parts:
            part("apply", lambda: sections.append(
                ("apply", "Stream apply rate", apply_table(run_apply(), goals))))
        if "filter" in parts:
            part("filter", lambda: sections.append(
                ("filter", "Key filters and load_file", filter_tables(run_filter(), goals))))
        if "tls" in parts:
            part("tls", tls)
    finally:
        cleanup_bench()
    tail = "load average at the end %s\n" % loadavg()
    gt = goals_table(goals)
    sections.insert(0, ("goals", "Goals", head + "; " + tail + "\n" + gt))
    for _, _, body in sections:
        print(body)
    if write:
        write_sections(write, sections)

if __name__ == "__main__":
    main()
