#!/bin/sh
# Post-compile hook: writes the edoc doc chunks of src_erl/ to doc/chunks/
# (edoc_opts of rebar.config, as `rebar3 edoc' does) when a source is newer,
# and copies them into the application directory being built, beside its
# ebin/: that is where the Erlang shell's h/2 and IEx's h/1 look
# (<app>/doc/chunks/<module>.chunk). Docs are a nicety: a failure here
# warns and never fails the build (`make test' runs `rebar3 edoc' strictly).
set -u
cd "$(dirname "$0")/.."
src=$(pwd -P)
erl=${ERL:-erl}

if [ ! -f doc/chunks/nsync.chunk ] \
    || [ -n "$(find src_erl rebar.config -newer doc/chunks/nsync.chunk 2>/dev/null | head -n 1)" ]; then
    if ! out=$("$erl" -noshell -eval '
        {ok, Config} = file:consult("rebar.config"),
        Opts = proplists:get_value(edoc_opts, Config, []),
        Status = case catch edoc:application(nsync, ".", Opts) of
                     ok -> 0;
                     _ -> 1
                 end,
        halt(Status).' 2>&1); then
        echo "nsync: could not build the doc chunks (h/1 will show specs only):" >&2
        echo "$out" >&2
        exit 0
    fi
fi

# Where the application is built: Mix names it; a top-level rebar3 project
# builds in _build/PROFILE/lib; a rebar3 checkout in _build/PROFILE/checkouts;
# a rebar3 dependency is built in place.
same() { [ -d "$1" ] && [ "$(cd "$1" && pwd -P)" = "$src" ]; }
if [ -n "${REBAR_BARE_COMPILER_OUTPUT_DIR:-}" ]; then
    app=$REBAR_BARE_COMPILER_OUTPUT_DIR
elif [ -n "${REBAR_CHECKOUTS_DIR:-}" ] && same "$REBAR_CHECKOUTS_DIR/nsync"; then
    app=${REBAR_CHECKOUTS_OUT_DIR:-}/nsync
elif [ -n "${REBAR_ROOT_DIR:-}" ] && same "$REBAR_ROOT_DIR"; then
    app=${REBAR_BUILD_DIR:-_build/default}/lib/nsync
else
    app=$src
fi
if [ -d "$app" ] && ! same "$app" && [ -f doc/chunks/nsync.chunk ]; then
    mkdir -p "$app/doc/chunks" && cp doc/chunks/*.chunk "$app/doc/chunks/" \
        || echo "nsync: could not copy the doc chunks to $app/doc/chunks" >&2
fi
exit 0
