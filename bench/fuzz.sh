#!/usr/bin/env bash
# Coverage-guided fuzzing of nsync_core's parsers with cargo-fuzz.
#
#   bench/fuzz.sh setup                 build the seed corpora only
#   bench/fuzz.sh run [TARGET] [SECS]   setup, then fuzz TARGET (rdb_parse or
#                                       resp_parse; default rdb_parse) for SECS
#                                       seconds (default 600) at low priority
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable toolchain
# with RUSTC_BOOTSTRAP=1. MAX_LEN (default 65536) caps input size: larger
# seeds are cut, which keeps executions fast. Seeds: every .rdb under ../shared/rdb-corpus (or
# $RDB_CORPUS), each twice: fed whole (prefix 0x00) and in chunks of 1, 7
# and 64 bytes (prefix 0x03 0x00 0x06 0x3f); see fuzz_targets/*.rs. Crashes
# land in native/nsync_core/fuzz/artifacts/TARGET/; minimize one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin TARGET ARTIFACT   (in native/nsync_core)
# and keep it under native/nsync_core/tests/fuzz_regressions/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORE=$ROOT/native/nsync_core
FUZZ=$CORE/fuzz
RDB_CORPUS=${RDB_CORPUS:-$ROOT/../shared/rdb-corpus}
[ -d "$RDB_CORPUS" ] || RDB_CORPUS=/work/shared/rdb-corpus
export RUSTC_BOOTSTRAP=1

setup() {
    local dir=$FUZZ/corpus/rdb_parse
    mkdir -p "$dir" "$FUZZ/corpus/resp_parse"
    local n=0
    while IFS= read -r -d '' f; do
        local name
        name=$(echo "${f#"$RDB_CORPUS"/}" | tr '/' '_')
        { printf '\x00'; cat "$f"; } > "$dir/whole_$name"
        { printf '\x03\x00\x06\x3f'; cat "$f"; } > "$dir/chunked_$name"
        n=$((n + 1))
    done < <(find "$RDB_CORPUS" -name '*.rdb' -print0 2>/dev/null)
    # Regression inputs found earlier are seeds too.
    if [ -d "$CORE/tests/fuzz_regressions" ]; then
        find "$CORE/tests/fuzz_regressions" -type f -name 'rdb_*' -exec cp {} "$dir/" \;
    fi
    local r=$FUZZ/corpus/resp_parse
    printf '\x00*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n*1\r\n$4\r\nPING\r\n' > "$r/set_ping"
    printf '\x02\x00\x04*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*1\r\n$5\r\nMULTI\r\n*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n*1\r\n$4\r\nEXEC\r\n' > "$r/multi"
    printf '\x01\x02PING\r\n\nset a b\r\n*0\r\n*-1\r\n' > "$r/inline"
    printf '\x00+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5ef0d6d6c 0\r\n' > "$r/reply"
    echo "seed corpus: $n rdb files (x2) in $dir, $(ls "$r" | wc -l) resp seeds"
}

case ${1:-setup} in
    setup) setup ;;
    run)
        target=${2:-rdb_parse}
        secs=${3:-600}
        setup
        cd "$CORE"
        nice -n 10 cargo fuzz run -O "$target" "fuzz/corpus/$target" -- \
            -max_total_time="$secs" -max_len="${MAX_LEN:-65536}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
        ;;
    *) echo "usage: $0 setup | run [rdb_parse|resp_parse] [SECS]" >&2; exit 2 ;;
esac
