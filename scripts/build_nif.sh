#!/bin/sh
# Builds the Rust NIF and copies it to priv/nsync_nif.so (the name
# erlang:load_nif/2 looks for on Linux and macOS alike).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked -p nsync_nif
mkdir -p priv
target="${CARGO_TARGET_DIR:-target}/release"
if [ -f "$target/libnsync_nif.so" ]; then
    cp "$target/libnsync_nif.so" priv/nsync_nif.so
elif [ -f "$target/libnsync_nif.dylib" ]; then
    cp "$target/libnsync_nif.dylib" priv/nsync_nif.so
else
    echo "build_nif.sh: no library found in $target" >&2
    exit 1
fi
