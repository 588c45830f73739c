#!/usr/bin/env python3
"""Growth with the value size (issue 15 "Growth"): full sync of strings of
32 B to 64 KB into the ETS mirror beside a real replica, time and memory
per key and per value byte. (Growth with the key count, 100k -> 5M, is the
Full sync part's S1 rows.) Run by `make bench PARTS=growth` (bench/run.sh)
or alone: growth.py [--write RESULTS.md].

Per value size a master (diskless, `rdbcompression no`) is filled with
`DEBUG POPULATE N key SIZE` (N x SIZE ~ 32-256 MB); per run a fresh replica
and a fresh nsync VM (bench/nsync_bench.erl `fullsync ets`) sync from it.
env: RUNS (5), GROWTH_SIZES ("32:1000000 512:400000 4096:50000 65536:4000",
SIZE:KEYS pairs), plus report.py's.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
from report import log, med, fmt_range, loadavg, s3, mib, x2  # noqa: E402

SIZES = [tuple(int(x) for x in p.split(":")) for p in
         report.env_list("GROWTH_SIZES", "32:1000000 512:400000 4096:50000 65536:4000")]


def run():
    rows = []
    for size, keys in SIZES:
        log("growth: %d x %d B, %d runs, load %s" % (keys, size, report.RUNS, loadavg()))
        master = report.Server(report.master_config("diskless") +
                               [("rdbcompression", "no"), ("enable-debug-command", "yes")])
        try:
            master.conn.cmd("DEBUG", "POPULATE", keys, "key", size)
            res = {"replica": [], "ets": []}
            for i in range(report.RUNS):
                report.wait_quiet()
                res["replica"].append(report.replica_fullsync(master))
                res["ets"].append(report.nsync_fullsync(master, "ets"))
                log("  run %d: replica %.3fs ets %.3fs" % (
                    i + 1, res["replica"][-1]["seconds"], res["ets"][-1]["seconds"]))
            for r in res["ets"]:
                if r["keys"] != keys:
                    raise RuntimeError("nsync loaded %r keys of %d" % (r["keys"], keys))
        finally:
            master.stop()
        rows.append((size, keys, res))
    return rows


def nsync_bytes(r):
    """The mirror's memory: its ETS tables, plus the VM's binaries (values
    over 64 bytes are reference-counted binaries outside the table unless
    the table is compressed)."""
    return r["ets_bytes"] + r["erlang_memory_binary"]


def table(rows, goals):
    out = ["### Growth with the value size: strings of 32 B to 64 KB\n",
           "%d runs per row, diskless master with `rdbcompression no`, keys made by "
           "`DEBUG POPULATE` (values `value:N` padded with zeros). Seconds, median "
           "(min-max); ratio = nsync / replica within each run. Memory: the replica's "
           "`used_memory` less an empty replica's; nsync's ETS tables plus the VM's "
           "binaries (`erlang:memory(binary)`), and the BEAM's RSS growth. Per value "
           "byte = per key / the value size.\n" % report.RUNS,
           "| value B | keys | MB of values | replica s | nsync ETS s | ETS / replica | replica "
           "us/key | nsync us/key | nsync ns/value byte | replica B/key | nsync B/key | "
           "nsync RSS B/key | nsync B / value B |",
           "|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for size, keys, res in rows:
        rep = [r["seconds"] for r in res["replica"]]
        ets = [r["seconds"] for r in res["ets"]]
        rt = report.ratios(ets, rep)
        nb = med([nsync_bytes(r) for r in res["ets"]]) / keys
        out.append("| %d | %d | %.0f | %s | %s | **%s** | %.2f | %.2f | %.2f | %.0f | %.0f | "
                   "%.0f | %.2f |" % (
                       size, keys, size * keys / 1e6, fmt_range(rep, s3), fmt_range(ets, s3),
                       fmt_range(rt, x2), med(rep) / keys * 1e6, med(ets) / keys * 1e6,
                       med(ets) / keys / size * 1e9,
                       med([r["used_memory"] - r["used_memory_empty"]
                            for r in res["replica"]]) / keys, nb,
                       med([r["rss_after"] - r["rss_before"] for r in res["ets"]]) / keys,
                       nb / size))
        goals.append(("full sync into ETS / replica, %d x %d B values" % (keys, size),
                      "report (flat)", med(rt), x2(med(rt)), None))
        mem = nb / (med([r["used_memory"] - r["used_memory_empty"]
                         for r in res["replica"]]) / keys)
        goals.append(("mirror memory / replica used_memory, %d B values" % size, "<= 1.20x",
                      mem, x2(mem), mem <= 1.2))
    return "\n".join(out) + "\n"


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = sys.argv[1:]
    write = args[1] if args[:1] == ["--write"] else None
    report.compile_bench()
    head = report.machine_line()
    log(head)
    goals = []
    try:
        body = table(run(), goals)
    finally:
        report.cleanup_bench()
    text = head + "; load average at the end %s\n\n%s" % (loadavg(), body)
    print(text)
    report.save_goals("growth", goals)
    if write:
        report.write_sections(write, [("growth", "Growth with the value size", text)])


if __name__ == "__main__":
    main()
