#!/usr/bin/env python3
"""Cluster full sync (issue 10): a 3-master Redis Cluster holding S1 (1M
keys `key:%07d` -> 32 random bytes, the keys of bench/gen_datasets.py's
s1_1m, each on its slot's master) synced into one nsync view, beside three
real replicas (one per master, `REPLICAOF` sent to the three at once, time
until the last has loaded), in the same run, alternating, on the same
masters (diskless, delay 0, as the sync part's masters).

    bench/cluster.py [--write bench/RESULTS.md]

env: RUNS (5), KEYS (1000000), REDIS_SERVER, REDIS_CLI, ERL. Writes the
table between <!-- cluster:begin --> and <!-- cluster:end -->. Run by
`make bench` (PARTS=cluster).
"""

import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (the sync part's servers, VM and helpers)

KEYS = int(os.environ.get("KEYS", "1000000"))
MASTERS = 3


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def s1_by_master(n, owner):
    """S1's SET commands (gen_datasets.gen_s1's keys and values), one
    buffer per master."""
    rng = random.Random(1000 + n)
    out = [[] for _ in range(MASTERS)]
    step = 100_000
    for base in range(0, n, step):
        m = min(step, n - base)
        block = rng.randbytes(32 * m)
        for j in range(m):
            key = b"key:%07d" % (base + j)
            out[owner[crc16(key) & 16383]].append(
                b"*3\r\n$3\r\nSET\r\n$11\r\n%s\r\n$32\r\n%s\r\n" % (key, block[32 * j:32 * j + 32]))
    return [b"".join(o) for o in out]


def start_cluster():
    config = report.master_config("diskless") + [
        ("cluster-enabled", "yes"), ("cluster-config-file", "nodes.conf"),
        ("cluster-node-timeout", 5000)]
    masters = []
    for _ in range(MASTERS):
        masters.append(report.Server(config + [("cluster-port", report.free_port())]))
    addrs = ["127.0.0.1:%d" % m.port for m in masters]
    subprocess.run([report.REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas", "0",
                    "--cluster-yes"], check=True, capture_output=True, timeout=300)
    deadline = time.time() + 60
    while not all(m.conn.cmd("CLUSTER", "INFO").find("cluster_state:ok") >= 0 for m in masters):
        if time.time() > deadline:
            raise RuntimeError("cluster not ok")
        time.sleep(0.1)
    return masters


def load(masters):
    owner = [None] * 16384
    for i, m in enumerate(masters):
        for r in m.conn.cmd("CLUSTER", "SLOTS"):
            if r[2][1] == m.port:
                for s in range(r[0], r[1] + 1):
                    owner[s] = i
    for m, buf in zip(masters, s1_by_master(KEYS, owner)):
        subprocess.run([report.REDIS_CLI, "-p", str(m.port), "--pipe"], input=buf, check=True,
                       capture_output=True, timeout=600)
    total = sum(m.conn.cmd("DBSIZE") for m in masters)
    if total != KEYS:
        raise RuntimeError("loaded %d keys, not %d" % (total, KEYS))


def replicas_fullsync(masters):
    """One plain replica per master, REPLICAOF sent to the three at once:
    until the last one has loaded."""
    rs = [report.Server() for _ in masters]
    try:
        base = [int(r.conn.info("memory")["used_memory"]) for r in rs]
        t0 = time.perf_counter()
        for r, m in zip(rs, masters):
            r.conn.cmd("REPLICAOF", "127.0.0.1", m.port)
        done = [None] * len(rs)
        while None in done:
            for i, r in enumerate(rs):
                if done[i] is None:
                    d = r.conn.info("replication", "persistence")
                    if d.get("master_link_status") == "up" and d.get("loading") == "0" \
                            and d.get("master_sync_in_progress") == "0":
                        done[i] = time.perf_counter()
            time.sleep(0.001)
        mem = [int(r.conn.info("memory")["used_memory"]) for r in rs]
        keys = sum(r.conn.cmd("DBSIZE") for r in rs)
        return {"seconds": max(done) - t0, "each": [t - t0 for t in done],
                "used_memory": sum(mem), "used_memory_empty": sum(base), "keys": keys}
    finally:
        for r in rs:
            r.stop()


def nsync_clustersync(masters):
    p = subprocess.run(report.erl_cmd("clustersync", str(masters[0].port)), capture_output=True,
                       text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("nsync clustersync failed:\n" + p.stdout + p.stderr)
    return report.parse_result(p.stdout)


def table(res, goals):
    rep, ns = res["replicas"], res["nsync"]
    ratios = [n["seconds"] / r["seconds"] for n, r in zip(ns, rep)]
    mem = [n["ets_bytes"] / r["used_memory"] for n, r in zip(ns, rep)]
    out = ["### Cluster full sync: 3 masters, S1 (%d keys) spread by slot\n" % KEYS,
           "%d runs, alternating on the same masters (diskless, delay 0; odd runs nsync first). "
           "nsync: one `{cluster, Seeds}` link set, start (its code loaded, as the replicas "
           "are running servers) to `{block, true}` returning (every shard "
           "loaded, the view published); replicas: three plain `redis-server`s, `REPLICAOF` "
           "sent to the three at once, until the last has loaded. Seconds, median "
           "(min-max); ratio = nsync / replicas within each run. Memory: the view's ETS "
           "(data and expiry tables) against the three replicas' `used_memory` summed "
           "(%s empty).\n" % (report.RUNS, report.mib(report.med([r["used_memory_empty"] for r in rep]))),
           "| | replicas (3) | nsync (1 view) | nsync / replicas | view ETS | replicas used_memory | view / used_memory |",
           "|---|---|---|---|---|---|---|",
           "| S1 %d keys | %s | %s | %s | %s | %s | %s |" % (
               KEYS, report.fmt_range([r["seconds"] for r in rep], report.s3),
               report.fmt_range([n["seconds"] for n in ns], report.s3),
               report.fmt_range(ratios, report.x2),
               report.mib(report.med([n["ets_bytes"] for n in ns])),
               report.mib(report.med([r["used_memory"] for r in rep])),
               report.fmt_range(mem, report.x2))]
    goals.append(("cluster full sync, nsync / three replicas", "<= 0.80x", report.med(ratios),
                  report.x2(report.med(ratios)), report.med(ratios) <= 0.8))
    goals.append(("cluster view memory / replicas' used_memory", "<= 1.20x", report.med(mem),
                  report.x2(report.med(mem)), report.med(mem) <= 1.2))
    return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    write = args[1] if args[:1] == ["--write"] else None
    report.compile_bench()
    head = report.machine_line()
    report.log(head)
    masters = start_cluster()
    try:
        load(masters)
        res = {"replicas": [], "nsync": []}
        for i in range(report.RUNS):
            report.wait_quiet()
            # alternating which side goes first: neither always finds the
            # masters just after the other's full sync
            if i % 2 == 0:
                res["replicas"].append(replicas_fullsync(masters))
                res["nsync"].append(nsync_clustersync(masters))
            else:
                res["nsync"].append(nsync_clustersync(masters))
                res["replicas"].append(replicas_fullsync(masters))
            if res["nsync"][-1]["keys"] != KEYS or res["replicas"][-1]["keys"] != KEYS:
                raise RuntimeError("key counts: %r" % res)
            report.log("  run %d: replicas %.3fs (%s) nsync %.3fs" % (
                i + 1, res["replicas"][-1]["seconds"],
                " ".join("%.3f" % t for t in res["replicas"][-1]["each"]),
                res["nsync"][-1]["seconds"]))
    finally:
        for m in masters:
            m.stop()
        report.shutil.rmtree(report.BEAM_DIR, ignore_errors=True)
    goals = []
    body = table(res, goals)
    body = head + "; load average at the end %s\n\n" % report.loadavg() + body + "\n" + \
        report.goals_table(goals)
    print(body)
    report.save_goals("cluster", goals)
    if write:
        try:
            text = open(write).read()
        except FileNotFoundError:
            text = "# nsync benchmark results\n"
        open(write, "w").write(report.replace_section(text, "cluster", "Cluster full sync", body))
        report.log("wrote the cluster table to", write)


if __name__ == "__main__":
    main()
