#!/usr/bin/env bash
# Runs every test stage, keeps going after a failing stage, and ends with one
# summary line: "nsync: N passed, N failed[, N skipped]". Exits non-zero when
# any stage failed. Stage logs are kept in _build/test-logs/.
#   1. cargo test --workspace --release --locked
#   2. rebar3 eunit
#   3. rebar3 ct           (every *_SUITE in test/)
#   4. scripts/fixtures.py (real 7.0 and 6.2 snapshots vs. the parser)
set -uo pipefail
cd "$(dirname "$0")/.."
export REBAR_COLOR=none
logdir=_build/test-logs
mkdir -p "$logdir"

passed=0; failed=0; skipped=0
failed_stages=()

strip() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1"; }

# stage NAME CMD...: runs CMD with output to the terminal and NAME.log.
stage() {
    local name=$1; shift
    echo "==> $name: $*"
    "$@" 2>&1 | tee "$logdir/$name.log"
    local rc=${PIPESTATUS[0]}
    strip "$logdir/$name.log" >"$logdir/$name.txt"
    return "$rc"
}

# record NAME RC P F S: adds counts; a failing command with no counted
# failure still counts as one failure.
record() {
    local name=$1 rc=$2 p=$3 f=$4 s=$5
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ]; then failed_stages+=("$name"); fi
    echo "--> $name: $p passed, $f failed, $s skipped (exit $rc)"
}

sum() { awk '{s += $1} END {print s + 0}'; }

# 1. Rust
stage cargo cargo test --workspace --release --locked; rc=$?
t=$logdir/cargo.txt
p=$(grep -Eo '^test result: .* ([0-9]+) passed' "$t" | grep -Eo '[0-9]+ passed' | sum)
f=$(grep -E '^test result: ' "$t" | grep -Eo '[0-9]+ failed' | sum)
s=$(grep -E '^test result: ' "$t" | grep -Eo '[0-9]+ ignored' | sum)
record cargo "$rc" "$p" "$f" "$s"

# 2. EUnit
stage eunit rebar3 eunit; rc=$?
t=$logdir/eunit.txt
p=0; f=0; s=0
if grep -Eq 'All [0-9]+ tests passed' "$t"; then
    p=$(grep -Eo 'All [0-9]+ tests passed' "$t" | grep -Eo '[0-9]+' | sum)
elif grep -Eq 'Failed: [0-9]+\.' "$t"; then
    f=$(grep -Eo 'Failed: [0-9]+' "$t" | grep -Eo '[0-9]+' | sum)
    s=$(grep -Eo 'Skipped: [0-9]+' "$t" | grep -Eo '[0-9]+' | sum)
    p=$(grep -Eo 'Passed: [0-9]+' "$t" | grep -Eo '[0-9]+' | sum)
elif grep -Eq 'Test passed\.' "$t"; then
    p=1
fi
record eunit "$rc" "$p" "$f" "$s"

# 3. Common Test
stage ct rebar3 ct; rc=$?
t=$logdir/ct.txt
p=0; f=0; s=0
if grep -Eq 'All [0-9]+ tests passed' "$t"; then
    p=$(grep -Eo 'All [0-9]+ tests passed' "$t" | grep -Eo '[0-9]+' | sum)
else
    f=$(grep -Eo 'Failed [0-9]+ tests' "$t" | grep -Eo '[0-9]+' | sum)
    s=$(grep -Eo 'Skipped [0-9]+ \(' "$t" | grep -Eo '[0-9]+' | sum)
    p=$(grep -Eo 'Passed [0-9]+ tests' "$t" | grep -Eo '[0-9]+' | sum)
fi
record ct "$rc" "$p" "$f" "$s"

# 4. Fixtures: exit 3 means the parser's rdb_json example is not there yet.
stage fixtures .venv/bin/python scripts/fixtures.py; rc=$?
t=$logdir/fixtures.txt
p=$(grep -Ec '^fixtures: .*: OK( |$)' "$t")
f=$(grep -Ec '^fixtures: .*: FAIL( |$)' "$t")
if [ "$rc" -eq 3 ]; then
    record fixtures 0 0 0 1
else
    record fixtures "$rc" "$p" "$f" 0
fi

echo
if [ ${#failed_stages[@]} -gt 0 ]; then
    echo "failed stages: ${failed_stages[*]} (logs in $logdir/)"
fi
if [ "$skipped" -gt 0 ]; then
    echo "nsync: $passed passed, $failed failed, $skipped skipped"
else
    echo "nsync: $passed passed, $failed failed"
fi
[ ${#failed_stages[@]} -eq 0 ]
