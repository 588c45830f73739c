#!/usr/bin/env bash
# Big values (issue 13 item 1, issue 15's "big collections"): run by
# `make bench PARTS=big` (bench/run.sh) or alone.
#
#   1. threshold: terms vs big values at 16..16384 elements (one VM, no
#      server): time per write and per read, memory per element;
#   2. storm: a master with a 1M-element hash, set, zset and list, a
#      1M-entry stream and a 100 MB string, a real `redis-server
#      --replicaof` and nsync side by side: memory per value, then 100,000
#      writes per type (HSET, SADD, ZADD, RPUSH, XADD, APPEND to the big
#      values) timed on both, with nsync's CPU per write beside the
#      replica's and BEAM RSS during the storm against at rest.
#
# Writes the tables between <!-- big:begin --> and <!-- big:end --> in
# bench/RESULTS.md. BIG_PARTS="threshold storm" (default both) picks parts;
# each part's VM is stopped after BIG_TIMEOUT seconds (default 300: both
# take about a minute on a quiet machine), failing the run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
rebar3 compile >/dev/null
work=$(mktemp -d)
# The servers' pids, in a file: they are started in the `| tee` subshell.
cleanup() {
    [ -f "$work/pids" ] && while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
    rm -rf "$work"
}
trap cleanup EXIT
erlc -o "$work" bench/nsync_bench_big.erl
# telemetry is in lib/ when fetched from hex, in checkouts/ when linked by setup.sh
vm() {
    timeout "${BIG_TIMEOUT:-300}" erl -noshell -pa _build/default/lib/*/ebin \
        _build/default/checkouts/*/ebin -pa "$work" -run nsync_bench_big main "$@" || {
        echo "big.sh: $1 failed or ran over ${BIG_TIMEOUT:-300} s (BIG_TIMEOUT)" >&2; exit 1; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server() { # port dir args...
    local port=$1 dir=$2; shift 2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --repl-diskless-sync-delay 0 "$@" >"$dir/log" 2>&1 &
    echo $! >>"$work/pids"
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "big.sh: redis-server on $port did not start" >&2; exit 1
}

# The master's big values: keys h, s, z, l of 1M elements e1000000.. (the
# elements nsync_bench_big's e/1 makes), a stream x of 1M entries
# `* f e1000000` .. and a 100 MB string str.
build() {
    python3 - <<'PY' | redis-cli -p "$1" --pipe >/dev/null
import sys
w = sys.stdout.buffer
def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    w.write(b"".join(out))
n = 1000000
for start in range(0, n, 1000):
    es = [b"e%d" % (i + 1000000) for i in range(start, min(n, start + 1000))]
    cmd(b"HSET", b"h", *[x for e in es for x in (e, e)])
    cmd(b"SADD", b"s", *es)
    cmd(b"ZADD", b"z", *[x for i, e in enumerate(es, start) for x in (str(i).encode(), e)])
    cmd(b"RPUSH", b"l", *es)
    for e in es:
        cmd(b"XADD", b"x", b"*", b"f", e)
mb = b"x" * (1024 * 1024)
for _ in range(100):
    cmd(b"APPEND", b"str", mb)
PY
}

out="$work/results"
{
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on: $(nproc) CPUs," \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3)"
    parts=${BIG_PARTS:-threshold storm}
    case " $parts " in *" threshold "*) vm threshold;; esac
    case " $parts " in *" storm "*)
        mport=$(free_port); server "$mport" "$work/master"
        rport=$(free_port); server "$rport" "$work/replica" --replicaof 127.0.0.1 "$mport"
        build "$mport"
        vm storm "$mport" "$rport";;
    esac
} | tee "$out"

python3 - "$out" bench/RESULTS.md <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
head = lines[0]
rs = [json.loads(l[7:]) for l in lines if l.startswith("RESULT ")]
out = [head, ""]
out += ["Terms (big values off) against big values, per value of N elements "
        "(`threshold`; one write through `nsync_apply:apply_cmd/4`, one element "
        "read through `nsync:hget/3` & co, a whole-value read by `ets:lookup/2` "
        "of the term or `nsync:lookup/2` of the big value; memory of the ETS "
        "table with the term, compressed, or of the big value):", "",
        "| type | N | write us (term / big) | element read us (term / big) | "
        "whole read us (term / big) | bytes per element (term / big) |",
        "|---|---|---|---|---|---|"]
for r in rs:
    if r["part"] == "threshold":
        out.append("| %s | %d | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.0f / %.0f |" % (
            r["kind"], r["n"], r["term_write_us"], r["big_write_us"], r["term_elem_read_us"],
            r["big_elem_read_us"], r["term_value_read_us"], r["big_value_read_us"],
            r["term_bytes_per_elem"], r["big_bytes_per_elem"]))
out += ["", "Memory of the big values (nsync's estimate of its allocations; the "
        "replica's `MEMORY USAGE`), and of the whole data set (BEAM RSS after the "
        "load minus before the link; the replica's `used_memory`):", "",
        "| key | nsync | replica | ratio |", "|---|---|---|---|"]
for r in rs:
    if r["part"] == "memory" and r["key"] != "total":
        out.append("| %s | %.1f MB | %.1f MB | %.2fx |" % (
            r["key"], r["nsync_bytes"] / 1e6, r["replica_bytes"] / 1e6,
            r["nsync_bytes"] / r["replica_bytes"]))
    elif r["part"] == "memory":
        out.append("| all (RSS / used_memory) | %.1f MB | %.1f MB | %.2fx |" % (
            r["beam_rss_delta"] / 1e6, r["replica_used_memory"] / 1e6,
            r["beam_rss_delta"] / r["replica_used_memory"]))
out += ["", "Write storms, 100,000 writes to the 1M-element value (pipelined to the "
        "master; done when a sentinel written after them is applied). CPU per "
        "write: the whole BEAM's (link process, pump thread, schedulers) and the "
        "replica process's, during the storm:", "",
        "| command | nsync writes/s | replica writes/s | nsync CPU us/write | "
        "replica CPU us/write | BEAM RSS at rest -> peak |", "|---|---|---|---|---|---|"]
names = {"hash": "HSET", "set": "SADD", "zset": "ZADD", "list": "RPUSH", "stream": "XADD",
         "append": "APPEND (100 MB)"}
for r in rs:
    if r["part"] == "storm":
        out.append("| %s | %.0f | %.0f | %.2f | %.2f | %.0f -> %.0f MB (%.2fx) |" % (
            names[r["kind"]], r["nsync_writes_per_s"], r["replica_writes_per_s"],
            r["nsync_cpu_us_per_write"], r["replica_cpu_us_per_write"],
            r["rss_rest"] / 1e6, r["rss_peak"] / 1e6, r["rss_peak"] / r["rss_rest"]))
goals = []
for r in rs:
    if r["part"] == "storm":
        us = r["nsync_cpu_us_per_write"]
        goals.append(("%s on a 1M-element value: BEAM CPU per write" % names[r["kind"]],
                      "<= 10 us", us, "%.1f us" % us, us <= 10))
        peak = r["rss_peak"] / r["rss_rest"]
        goals.append(("BEAM RSS during the %s storm / at rest" % names[r["kind"]], "<= 1.5x",
                      peak, "%.2fx" % peak, peak <= 1.5))
    elif r["part"] == "memory" and r["key"] not in ("total", "str"):
        m = r["nsync_bytes"] / r["replica_bytes"]
        goals.append(("big value memory / replica MEMORY USAGE, 1M-element %s" % {
            "h": "hash", "s": "set", "z": "zset", "l": "list", "x": "stream"}.get(r["key"], r["key"]),
                      "<= 1.2x", m, "%.2fx" % m, m <= 1.2))
sys.path.insert(0, "bench")
import report
report.save_goals("big", goals)
table = "\n".join(out) + "\n"
path = sys.argv[2]
begin, end = "<!-- big:begin -->", "<!-- big:end -->"
text = open(path).read()
if begin in text and end in text:
    pre, rest = text.split(begin, 1)
    _, post = rest.split(end, 1)
    text = pre + begin + "\n" + table + end + post
else:
    text += "\n## Big values\n\n%s\n%s%s\n" % (begin, table, end)
open(path, "w").write(text)
print(table)
print("wrote the big-values tables to", path)
PY
