#!/usr/bin/env bash
# Demo: starts a throwaway redis-server on a free loopback port, writes a few
# keys of every type, then (scripts/demo.escript) mirrors it with nsync,
# prints the ETS mirror, writes more keys and shows each one arrive, then
# loads the master's dump.rdb with nsync:load_file/2 and a key filter.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d "${TMPDIR:-/tmp}/nsync-demo.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --repl-diskless-sync-delay 0 \
    --logfile "$dir/redis.log" --daemonize no &
pid=$!
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
for _ in $(seq 100); do
    if [ "$(cli ping 2>/dev/null)" = "PONG" ]; then break; fi
    sleep 0.05
done
[ "$(cli ping 2>/dev/null)" = "PONG" ] || { echo "demo: redis-server did not start" >&2; cat "$dir/redis.log" >&2; exit 1; }
echo "demo: redis-server $(cli info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p') on 127.0.0.1:$port"

{
    echo "SET greeting hello"
    echo "SET counter -42"
    echo "SET big 9223372036854775807"
    echo "SET session:1 alive PX 3600000"
    echo "RPUSH queue job1 job2 job3 17"
    echo "SADD tags red green blue"
    echo "SADD ids 1 2 300 70000"
    echo "ZADD board 10 alice 20 bob -inf floor +inf ceiling"
    echo "HSET user:1 name Ada lang erlang"
    echo "XADD events 1-1 type login user ada"
    echo "XADD events 1-2 type logout user ada"
    echo "SELECT 1"
    echo "SET other-db yes"
} | cli >/dev/null
echo "demo: wrote $(cli dbsize) keys in db 0 (+1 in db 1, not mirrored: nsync mirrors db 0 by default)"
echo "demo: building nsync (rebar3 compile)"
rebar3 compile >"$dir/compile.log" 2>&1 || { cat "$dir/compile.log" >&2; exit 1; }
# nsync and its dependencies (telemetry: in lib/ when fetched from hex, in
# checkouts/ when linked by scripts/setup.sh)
ERL_LIBS=_build/default/lib:_build/default/checkouts escript scripts/demo.escript "$port" "$dir"
