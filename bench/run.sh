#!/usr/bin/env bash
# nsync benchmarks (issue 5). Today: the parse-only part.
#
#   bench/run.sh            data sets (built if missing) + parse-only bench
#   BIG=1 bench/run.sh      also the >= 1 GB file (built if missing, a few minutes)
#   RUNS=N                  timed runs per parser and file (default 5)
#
# Prints the table and writes it, with the machine's description, between
# the parse-only markers of bench/RESULTS.md (the rest of that file is kept).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-5}
DATA=bench/data

sets=(s1_100k s1_1m s1_5m s2)
[ "${BIG:-0}" = 1 ] && sets+=(big_1g)
big_flag=(); [ "${BIG:-0}" = 1 ] && big_flag=(--big)
nice -n 10 python3 bench/gen_datasets.py "${big_flag[@]}" "${sets[@]}"

cargo build --release -p nsync_core --example parse_bench
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
    target/release/examples/parse_bench --runs "$RUNS" "${files[@]}"
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
