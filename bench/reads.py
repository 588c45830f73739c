#!/usr/bin/env python3
"""The read path (issue 15 "Reads, the reason to run a mirror"): lookups on
nsync's mirror beside GETs against the same master. Run by `make bench
PARTS=reads` (bench/run.sh) or alone: reads.py [--write RESULTS.md].

A master (diskless) holds 1M strings `key:%012d` -> 32 bytes (the keys of
redis-benchmark's `__rand_int__`) and a 1M-field hash `h` (`f:%012d`); a
fresh VM (bench/nsync_bench_reads.erl) mirrors it. Per run:
  1. redis-benchmark against the master: `GET key:__rand_int__` with `-P 16`
     (50 clients), without pipelining from 1 client and from 50, and
     `HGET h f:__rand_int__` with `-P 16`;
  2. in the VM, for `ets:lookup/2`, `nsync:lookup/2` and `nsync:hget/3`
     from 1 and 2 reader processes: reads per second for READ_SECONDS, then
     200,000 calls timed one by one (p50/p99);
  3. the same reads while redis-benchmark writes `SET key:__rand_int__`
     (`-P 16`, 32 bytes) to the master and the link applies the stream.
Every wait is bounded: a step that does not finish in its time raises an
error naming it (and the VM and servers are stopped), never a hang.
env: RUNS (5), READ_SECONDS (2), plus report.py's (QUIET, REDIS_BENCHMARK...).
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
from report import log, med, fmt_range, loadavg  # noqa: E402

N_KEYS = 1_000_000
N_FIELDS = 1_000_000
SECONDS = int(os.environ.get("READ_SECONDS", "2"))
# Bounds of the waits (s) shorter than report.py's STEP_TIMEOUT (the
# others: the master's population, each redis-benchmark run, the link
# catching up with the stream): the VM's full sync, one `reads` line.
LOAD_S, READS_S = 300, 120
KINDS = [("ets", "`ets:lookup/2` string"), ("lookup", "`nsync:lookup/2` string"),
         ("hget", "`nsync:hget/3` field of a 1M-field hash")]


def populate(master):
    """1M strings and the 1M-field hash, through `redis-cli --pipe`."""
    def cmd(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)
    val = b"v" * 32
    chunks = [cmd(b"SET", b"key:%012d" % i, val) for i in range(N_KEYS)]
    for start in range(0, N_FIELDS, 1000):
        args = [b"HSET", b"h"]
        for i in range(start, min(N_FIELDS, start + 1000)):
            args += [b"f:%012d" % i, val]
        chunks.append(cmd(*args))
    report.run_bounded([report.REDIS_CLI, "-h", "127.0.0.1", "-p", str(master.port), "--pipe"],
                       "reads: populating the master", input=b"".join(chunks), check=True,
                       capture_output=True)
    assert master.conn.cmd("DBSIZE") == N_KEYS + 1


class ReadsVM(report.NsyncServe):
    """A VM mirroring `port`, answering `reads` lines (nsync_bench_reads)."""

    def __init__(self, port):
        cmd = [report.ERL, *report.ERL_FLAGS, "-noshell", "-pa", *report.EBINS,
               "-pa", report.BEAM_DIR, "-run", "nsync_bench_reads", "main", str(port)]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        try:
            self.expect("READY", timeout=LOAD_S)
        except BaseException:
            # not yet the caller's to stop
            self.p.kill()
            self.p.wait()
            raise

    def reads(self, kind, readers):
        self.send("reads %s %d %d %d" % (kind, readers, SECONDS, N_KEYS))
        return report.parse_result(self.expect("RESULT", timeout=READS_S))


def machine_busy_s():
    """CPU seconds all CPUs spent busy (not idle or waiting for I/O)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def caught_up(master, vm):
    """Waits until the VM's link has acknowledged everything the master
    sent (after the stream), so the next idle readings are idle."""
    target = report.master_offset(master)

    def acked():
        if vm.p.poll() is not None:
            raise RuntimeError("nsync VM exited (rc %s)" % vm.p.returncode)
        return report.wait_acked(master, target, 0) is not None
    report.wait_until(acked, "reads: the link catching up with the stream", 0.05)


def benchmark(port, args):
    """One redis-benchmark run: (requests/s, p50 ms, p99 ms)."""
    p = report.run_bounded(report.bench_args(port, args), "reads: redis-benchmark " + " ".join(args),
                           capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("redis-benchmark failed: " + p.stdout + p.stderr)
    for ln in p.stdout.splitlines():
        f = [x.strip('"') for x in ln.split('","')]
        if len(f) >= 7 and f[0].strip('"') != "test":
            return float(f[1]), float(f[4]), float(f[6])
    raise RuntimeError("redis-benchmark: no result in " + p.stdout)


GETS = [("get_p16", "GET, `-P 16`, 50 clients",
         ["-P", "16", "-n", "4000000", "-r", str(N_KEYS), "GET", "key:__rand_int__"]),
        ("get_1", "GET, not pipelined, 1 client",
         ["-c", "1", "-n", "100000", "-r", str(N_KEYS), "GET", "key:__rand_int__"]),
        ("get_50", "GET, not pipelined, 50 clients",
         ["-n", "500000", "-r", str(N_KEYS), "GET", "key:__rand_int__"]),
        ("hget_p16", "HGET, `-P 16`, 50 clients",
         ["-P", "16", "-n", "4000000", "-r", str(N_FIELDS), "HGET", "h", "f:__rand_int__"])]

STREAM = ["-t", "set", "-P", "16", "-r", str(N_KEYS), "-d", "32", "-n", "1000000000"]


def run():
    res = {"redis": {k: [] for k, _, _ in GETS}, "idle": {}, "stream": {}}
    master = report.Server(report.master_config("diskless"))
    vm = None
    try:
        t0 = time.time()
        populate(master)
        log("reads: master populated in %.1f s" % (time.time() - t0))
        t0 = time.time()
        vm = ReadsVM(master.port)
        log("reads: mirror loaded in %.1f s" % (time.time() - t0))
        for i in range(report.RUNS):
            report.wait_quiet()
            for key, _, args in GETS:
                res["redis"][key].append(benchmark(master.port, args))
            for kind, _ in KINDS:
                for readers in (1, 2):
                    res["idle"].setdefault((kind, readers), []).append(vm.reads(kind, readers))
            stream = subprocess.Popen(report.bench_args(master.port, STREAM),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1)
                # who takes the 2 CPUs meanwhile: CPU seconds per second
                pids = {"master": master.pid, "redis-benchmark": stream.pid, "nsync VM": vm.p.pid}
                cpu0 = {w: report.proc_cpu_s(p) for w, p in pids.items()}
                busy0 = machine_busy_s()
                t_cpu = time.time()
                sets0 = report.master_offset(master)
                for kind, _ in KINDS:
                    for readers in (1, 2):
                        res["stream"].setdefault((kind, readers), []).append(
                            vm.reads(kind, readers))
                secs = time.time() - t_cpu
                cpu = {w: (report.proc_cpu_s(p) - cpu0[w]) / secs for w, p in pids.items()}
                cpu["machine"] = (machine_busy_s() - busy0) / secs
                res.setdefault("cpu", []).append(cpu)
                res.setdefault("stream_mb_s", []).append(
                    (report.master_offset(master) - sets0) / secs / 1e6)
            finally:
                stream.kill()
                stream.wait()
            caught_up(master, vm)
            log("reads run %d: GET -P 16 %.0f/s; ets:lookup 1 reader %.0f/s p99 %d ns; "
                "under the stream %.0f/s (link %.0f SET/s)" % (
                    i + 1, res["redis"]["get_p16"][-1][0], res["idle"][("ets", 1)][-1]["reads_per_s"],
                    res["idle"][("ets", 1)][-1]["p99_ns"],
                    res["stream"][("ets", 1)][-1]["reads_per_s"],
                    res["stream"][("ets", 1)][-1]["link_cmds_per_s"]))
    finally:
        if vm:
            vm.stop()
        master.stop()
    return res


def k(x):
    return "%.0fk" % (x / 1e3) if x < 1e6 else "%.2fM" % (x / 1e6)


def tables(res, goals):
    out = ["### Reads: lookups on the mirror beside GETs against the same master\n",
           "%d runs, medians (min-max). The master holds 1M strings `key:%%012d` -> 32 "
           "bytes and a 1M-field hash `h` (a big value in the mirror). redis-benchmark "
           "(its own client CPU included, on the same 2 cores): requests/s and its "
           "p50/p99. nsync: reader processes in the VM that mirrors the master, each "
           "reading random keys for %d s (reads/s of all readers), then timing 200,000 "
           "calls one by one (p50/p99 include two `erlang:monotonic_time/1` calls, "
           "~%d ns). Under the stream: redis-benchmark writes `SET key:__rand_int__` "
           "(`-P 16`, 32 B) to the master meanwhile, and the link applies it (its "
           "rate in the last column).\n" % (
               report.RUNS, SECONDS,
               med([r["timer_ns"] for rs in res["idle"].values() for r in rs])),
           "| redis-benchmark | requests/s | p50 us | p99 us |", "|---|---|---:|---:|"]
    for key, name, _ in GETS:
        rs = res["redis"][key]
        out.append("| %s | %s | %.0f | %.0f |" % (
            name, fmt_range([r[0] for r in rs], k), med([r[1] for r in rs]) * 1e3,
            med([r[2] for r in rs]) * 1e3))
    cpu = res["cpu"]
    f2 = lambda x: "%.2f" % x  # noqa: E731
    out += ["", "While the stream ran (all its readings), CPU seconds per second: the master "
            "%s, redis-benchmark %s, the nsync VM (pump, link and readers) %s; the whole "
            "machine %s of its %d CPUs (the rest: other work on it); the master took %s MB/s "
            "of writes (its replication stream)." % (
                fmt_range([c["master"] for c in cpu], f2),
                fmt_range([c["redis-benchmark"] for c in cpu], f2),
                fmt_range([c["nsync VM"] for c in cpu], f2),
                fmt_range([c["machine"] for c in cpu], f2), os.cpu_count(),
                fmt_range(res["stream_mb_s"], lambda x: "%.1f" % x))]
    out += ["", "| read | readers | reads/s | / GET -P 16 | p50 ns | p99 ns | under the "
            "stream: reads/s | / idle | p50 ns | p99 ns | link SET/s |",
            "|---|---:|---|---|---:|---:|---|---|---:|---:|---:|"]
    get16 = med([r[0] for r in res["redis"]["get_p16"]])
    hget16 = med([r[0] for r in res["redis"]["hget_p16"]])
    for kind, name in KINDS:
        base = hget16 if kind == "hget" else get16
        for readers in (1, 2):
            idle = res["idle"][(kind, readers)]
            st = res["stream"][(kind, readers)]
            ri = [r["reads_per_s"] for r in idle]
            rs = [r["reads_per_s"] for r in st]
            vs = [a / b for a, b in zip(rs, ri)]
            out.append("| %s | %d | %s | %.1fx | %d | %d | %s | %s | %d | %d | %s |" % (
                name, readers, fmt_range(ri, k), med(ri) / base,
                med([r["p50_ns"] for r in idle]), med([r["p99_ns"] for r in idle]),
                fmt_range(rs, k), fmt_range(vs, report.x2),
                med([r["p50_ns"] for r in st]), med([r["p99_ns"] for r in st]),
                k(med([r["link_cmds_per_s"] for r in st]))))
            if readers == 2:
                goals.append(("reads/s, %s, 2 readers / redis-benchmark %s -P 16" % (
                    name, "HGET" if kind == "hget" else "GET"), ">= 20x", med(ri) / base,
                    "%.1fx" % (med(ri) / base), med(ri) / base >= 20))
            else:
                p99 = med([r["p99_ns"] for r in idle])
                goals.append(("read p99, %s, 1 reader" % name, "<= 2 us", p99,
                              "%.2f us" % (p99 / 1e3), p99 <= 2000))
            goals.append(("reads/s under a %s SET/s stream / idle, %s, %d reader%s" % (
                k(med([r["link_cmds_per_s"] for r in st])), name, readers,
                "s" if readers > 1 else ""), ">= 0.90x", med(vs), report.x2(med(vs)),
                med(vs) >= 0.9))
    return "\n".join(out) + "\n"


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = sys.argv[1:]
    write = args[1] if args[:1] == ["--write"] else None
    report.compile_bench(["nsync_bench_reads.erl"])
    head = report.machine_line()
    log(head)
    goals = []
    try:
        body = tables(run(), goals)
    finally:
        report.cleanup_bench()
    text = head + "; load average at the end %s\n\n%s\n%s" % (
        loadavg(), report.goals_table(goals, "Reads goals"), body)
    print(text)
    report.save_goals("reads", goals)
    if write:
        report.write_sections(write, [("reads", "Reads", text)])


if __name__ == "__main__":
    main()
