#!/usr/bin/env bash
# nsync benchmarks (issues 4 and 5).
#
#   bench/run.sh            data sets (built if missing), parse-only bench, then
#                           full sync / memory / live stream / apply rate
#                           against a real redis-server replica (bench/report.py)
#   BIG=1 bench/run.sh      also the >= 1 GB file in the parse-only part
#   RUNS=N                  timed runs per measurement (default 5)
#   RUNS_5M=N               full-sync runs on s1_5m (default 3)
#   PARTS="parse sync live apply filter reads growth big tls cluster"   what to
#                           run (default: all; filter = S1 with a 10% key
#                           filter, and load_file; reads is bench/reads.py,
#                           lookups on the mirror beside GETs; growth is
#                           bench/growth.py, values of 32 B to 64 KB; big is
#                           bench/big.sh, big values: needs no data set; tls:
#                           S1 full sync over TLS beside a replica with
#                           tls-replication yes, TLS_SETS / TLS_MODES; cluster
#                           is bench/cluster.py, a 3-shard cluster's S1 full
#                           sync into one view)
#   SETS="s1_100k s1_1m s1_5m s2"   full-sync data sets; MODES="diskless disk"
#
# Prints the tables and writes each, with the machine's description, between
# its markers in bench/RESULTS.md (the rest of that file is kept); last, the
# summary of every part's goals (bench/summary.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-5}
DATA=bench/data
# Release code with symbols (Cargo.toml's profiling profile), so perf
# profiles of parse_bench and of the NIF (built by rebar3's hook,
# scripts/build_nif.sh) name their functions.
export NSYNC_CARGO_PROFILE=profiling

PARTS=${PARTS:-parse sync live apply filter reads growth big tls cluster}
has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }

if has parse || has sync || has live || has apply || has filter || has tls; then

sets=(s1_100k s1_1m s1_5m s2)
[ "${BIG:-0}" = 1 ] && sets+=(big_1g)
big_flag=(); [ "${BIG:-0}" = 1 ] && big_flag=(--big)
nice -n 10 python3 bench/gen_datasets.py "${big_flag[@]}" "${sets[@]}"
fi

if has parse; then
cargo build --profile profiling -p nsync_core --example parse_bench
files=()
for s in "${sets[@]}"; do files+=("$DATA/$s.rdb"); done
# Without BIG=1 a big_1g.rdb built earlier is still measured.
[ "${BIG:-0}" != 1 ] && [ -f "$DATA/big_1g.rdb" ] && files+=("$DATA/big_1g.rdb")

out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on: $(nproc) CPUs," \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
        "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    target/profiling/examples/parse_bench --runs "$RUNS" "${files[@]}"
} | tee "$out"

python3 - "$out" bench/RESULTS.md <<'PY'
import sys
table = open(sys.argv[1]).read().rstrip() + "\n"
path = sys.argv[2]
begin, end = "<!-- parse-only:begin -->", "<!-- parse-only:end -->"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# nsync benchmark results\n\n## Parse only\n\n%s\n%s\n" % (begin, end)
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + "\n" + table + end + tail
else:
    text += "\n## Parse only\n\n%s\n%s%s\n" % (begin, table, end)
open(path, "w").write(text)
print("wrote the parse-only table to", path)
PY
fi

# Full sync, memory, live stream, apply rate: nsync (built by rebar3, cargo
# via its hook) against redis-server replicas on the same masters.
rest=()
for p in sync live apply tls filter; do has "$p" && rest+=("$p"); done
if [ ${#rest[@]} -gt 0 ]; then
    rebar3 compile
    python3 bench/report.py --write bench/RESULTS.md "${rest[@]}"
fi

# Big values: terms vs big values, and write storms to 1M-element values
# beside a real replica.
if has big; then
    t0=$SECONDS
    bench/big.sh
    echo "big: done in $((SECONDS - t0)) s" >&2
fi

# Lookups on the mirror beside GETs against the same master; growth with the
# value size (32 B to 64 KB) beside a replica. Neither needs a data set.
for p in reads growth; do
    if has "$p"; then
        t0=$SECONDS
        rebar3 compile
        python3 "bench/$p.py" --write bench/RESULTS.md
        echo "$p: done in $((SECONDS - t0)) s" >&2
    fi
done

# A 3-shard cluster's full sync into one view, beside three replicas.
if has cluster; then
    rebar3 compile
    python3 bench/cluster.py --write bench/RESULTS.md
fi

python3 bench/summary.py --write bench/RESULTS.md
