#!/bin/sh
# Builds the Rust NIF and copies it to priv/nsync_nif.so (the name
# erlang:load_nif/2 looks for on Linux and macOS alike). rebar3 runs it
# before compiling the Erlang side (also when nsync is a dependency).
#   NSYNC_CARGO_PROFILE   cargo profile (default release: no debug info;
#                         `make bench' uses profiling, with symbols)
#   CARGO_TARGET_DIR      cargo's output directory (default target/)
set -eu
cd "$(dirname "$0")/.."
profile=${NSYNC_CARGO_PROFILE:-release}

cargo=$(command -v cargo || true)
if [ -z "$cargo" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    # rustup's default place, when it is not on this shell's PATH
    cargo=${CARGO_HOME:-$HOME/.cargo}/bin/cargo
fi
if [ -z "$cargo" ]; then
    echo "nsync: building the NIF needs Rust's cargo (Rust 1.91 or newer), which is not on PATH: install it from https://rustup.rs and compile again" >&2
    exit 1
fi

"$cargo" build --profile "$profile" --locked -p nsync_nif
mkdir -p priv
target="${CARGO_TARGET_DIR:-target}/$profile"
# Copied beside and renamed over: a VM that has the old library loaded
# keeps its file (a copy in place rewrote it under the VM: a segfault).
if [ -f "$target/libnsync_nif.so" ]; then
    cp "$target/libnsync_nif.so" priv/nsync_nif.so.new && mv -f priv/nsync_nif.so.new priv/nsync_nif.so
elif [ -f "$target/libnsync_nif.dylib" ]; then
    cp "$target/libnsync_nif.dylib" priv/nsync_nif.so.new && mv -f priv/nsync_nif.so.new priv/nsync_nif.so
else
    echo "build_nif.sh: no library found in $target" >&2
    exit 1
fi
