#!/usr/bin/env bash
# Builds Valkey for the tests, once per machine, and prints nothing when it
# is already built. Source: $NSYNC_VALKEY_SRC, else ../shared/servers/
# valkey-*.tar.gz beside the checkout. Result:
#   ${XDG_CACHE_HOME:-~/.cache}/nsync/valkey/src/valkey-server
# (with TLS when libssl-dev is there). Rebuilt only when the tarball changes.
# Several checkouts may run this at once: a lock makes one build, the others
# wait for it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

src=${NSYNC_VALKEY_SRC:-$(ls "$root"/../shared/servers/valkey-*.tar.gz 2>/dev/null | head -n 1)}
if [ -z "$src" ] || [ ! -f "$src" ]; then
    echo "valkey.sh: no Valkey source tarball (../shared/servers/valkey-*.tar.gz or \$NSYNC_VALKEY_SRC)" >&2
    exit 1
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nsync
dest=$cache/valkey
stamp=$dest/.nsync-source
mkdir -p "$cache"
want="$(basename "$src") $(sha256sum "$src" | cut -d' ' -f1)"

built() { [ -x "$dest/src/valkey-server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }
built && exit 0

exec 9>"$cache/valkey.lock"
flock 9
built && exit 0

log=$cache/valkey-build.log
echo "valkey.sh: building $(basename "$src") into $dest (a few minutes, once per machine; log: $log)"
tls=""
if dpkg -s libssl-dev >/dev/null 2>&1 || [ -f /usr/include/openssl/ssl.h ]; then
    tls="BUILD_TLS=yes"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl-dev >"$log" 2>&1 \
        && tls="BUILD_TLS=yes"
fi
work=$(mktemp -d "$cache/valkey-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# A tarball with one top directory (a release) or none (git archive).
strip=0
[ "$(tar tzf "$src" | cut -d/ -f1 | sort -u | wc -l)" -eq 1 ] && strip=1
tar xzf "$src" -C "$work" --strip-components=$strip \
    || { echo "valkey.sh: cannot unpack $src" >&2; exit 1; }
if ! make -C "$work" -j2 MALLOC=libc $tls >>"$log" 2>&1; then
    echo "valkey.sh: build failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
"$work/src/valkey-server" --version >>"$log" 2>&1 || { echo "valkey.sh: the built valkey-server does not run" >&2; exit 1; }
echo "$want" >"$work/.nsync-source"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "valkey.sh: built $("$dest/src/valkey-server" --version)"
