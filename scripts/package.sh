#!/usr/bin/env bash
# What a hex package of nsync holds, and that a user's project builds from it
# (hex itself cannot be reached here, nor its rebar3 plugin: this stands in
# for `rebar3 hex build', offline).
#   1. Expands the `files' list of src_erl/nsync.app.src as `rebar3 hex build'
#      does (globs, directories recursively, never *.so, *.o, *~, *.swp),
#      checks that it holds every source the build needs and nothing built or
#      test-only, and writes the contents to _build/package/nsync/ (hex also
#      adds the app file as src/nsync.app.src: so does this) and the list to
#      _build/package/files.txt.
#   2. Builds a rebar3 project depending on nsync (nsync and telemetry as
#      _checkouts) and a mix project (path dependencies; MIX_REBAR3 names
#      rebar3, so mix needs no hex), offline, and checks in each that the
#      application starts with telemetry, the NIF loads and answers (a
#      blocking start against a closed port gives {connect, econnrefused}),
#      and the docs are found (code:get_doc/1, Code.fetch_docs/1: h/1).
# Cargo's output for these builds is kept in target/package/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
out=$root/_build/package
pkg=$out/nsync
telemetry=$root/_checkouts/telemetry
export CARGO_TARGET_DIR=$root/target/package
export REBAR_COLOR=none
fail() { echo "package: $*" >&2; exit 1; }

[ -f "$telemetry/src/telemetry.app.src" ] \
    || fail "no telemetry source in _checkouts/telemetry (scripts/setup.sh links it)"
mkdir -p "$out"

# 1. The files list, expanded.
erl -noshell -eval '
    [Out] = init:get_plain_arguments(),
    {ok, [{application, nsync, App}]} = file:consult("src_erl/nsync.app.src"),
    Expand = fun(Paths) ->
        lists:usort([F || P <- Paths, W <- filelib:wildcard(P),
                          F <- case filelib:is_dir(W) of
                                   true -> filelib:wildcard(filename:join(W, "**"));
                                   false -> [W]
                               end,
                          filelib:is_regular(F)])
    end,
    Excluded = Expand(proplists:get_value(exclude_files, App, [])),
    Res = ["~$", "\\.o$", "\\.so$", "\\.swp$" | proplists:get_value(exclude_regexps, App, [])],
    Files = [F || F <- Expand(proplists:get_value(files, App)),
                  not lists:member(F, Excluded),
                  lists:all(fun(Re) -> re:run(F, Re) =:= nomatch end, Res)],
    ok = file:write_file(Out, [[F, $\n] || F <- Files]),
    halt().' -extra "$out/files.txt"

# Every tracked source the build needs is listed; nothing built or test-only.
need=$( (git ls-files src_erl native/nsync_core/src native/nsync_nif/src 2>/dev/null || true;
        printf '%s\n' Cargo.toml Cargo.lock native/nsync_core/Cargo.toml \
            native/nsync_nif/Cargo.toml scripts/build_nif.sh scripts/doc_chunks.sh \
            rebar.config rebar.lock priv/.gitkeep README.md CHANGELOG.md LICENSE) | sort -u)
missing=$(comm -23 <(echo "$need") <(sort -u "$out/files.txt"))
[ -z "$missing" ] || fail "the files list misses: $(echo $missing)"
unwanted=$(grep -E '(^|/)(target|_build|_checkouts|test|tests|bench|fuzz|examples)/|\.(so|dylib|beam|rdb)$' \
    "$out/files.txt" || true)
[ -z "$unwanted" ] || fail "the files list holds: $(echo $unwanted)"
echo "package: $(wc -l <"$out/files.txt") files," \
    "$(xargs du -cb <"$out/files.txt" | tail -n 1 | cut -f1) bytes (list in $out/files.txt)"

rm -rf "$pkg"
mkdir -p "$pkg/src"
tar -cf - -T "$out/files.txt" | tar -xf - -C "$pkg"   # keeps mtimes: cargo rebuilds only what changed
cp src_erl/nsync.app.src "$pkg/src/nsync.app.src"

# The checks both consumers run: the app starts (and telemetry with it), the
# NIF loads and answers, the docs are found.
probe_erl='
    {ok, Apps} = application:ensure_all_started(nsync),
    true = lists:member(telemetry, Apps),
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    {error, {connect, econnrefused}} =
        nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true}]),
    {ok, {docs_v1, _, _, _, _, _, Docs}} = code:get_doc(nsync),
    [#{<<"en">> := _}] = [D || {{function, start_link, 1}, _, _, D, _} <- Docs],
    io:format("package: ~s: nsync starts, its NIF answers, its docs are found~n",
              [hd(init:get_plain_arguments())]),
    halt().'

# 2a. A rebar3 project.
app=$out/rebar_app
rm -rf "$app"
mkdir -p "$app/src" "$app/_checkouts"
cat >"$app/rebar.config" <<'EOF'
{deps, [{nsync, "0.1.0"}]}.
EOF
cat >"$app/src/pkg_check.app.src" <<'EOF'
{application, pkg_check, [{vsn, "0.1.0"}, {applications, [kernel, stdlib, nsync]}]}.
EOF
ln -s "$pkg" "$app/_checkouts/nsync"
ln -s "$(cd "$telemetry" && pwd -P)" "$app/_checkouts/telemetry"
(cd "$app" && rebar3 compile >"$out/rebar_app.log" 2>&1) \
    || { cat "$out/rebar_app.log" >&2; fail "the rebar3 project does not build"; }
(cd "$app" && erl -noshell -pa _build/default/checkouts/*/ebin _build/default/lib/*/ebin \
    -eval "$probe_erl" -extra "rebar3 project")

# 2b. A mix project. Mix builds a rebar3 dependency with rebar3 itself (its
# hooks, priv/ and doc chunks are what is checked here). Mix turns nsync's
# dependency on telemetry from hex into a hex dependency, which needs the Hex
# client, not to be had offline: so this copy of the package declares none,
# and the mix project names telemetry by path (nsync's app file still makes
# it start first).
mix=$out/mix_app
rm -rf "$mix" "$out/nsync_mix"
mkdir -p "$mix"
cp -rp "$pkg" "$out/nsync_mix"
rm -rf "$out/nsync_mix/_build" "$out/nsync_mix/doc" "$out/nsync_mix/priv/nsync_nif.so"
sed -i 's/^{deps, .*/{deps, []}./' "$out/nsync_mix/rebar.config"
grep -q '^{deps, \[\]}\.$' "$out/nsync_mix/rebar.config" || fail "could not drop the deps of the mix copy"
# Mix builds a path dependency in place: a writable copy of telemetry.
rm -rf "$out/telemetry"
cp -r "$(cd "$telemetry" && pwd -P)" "$out/telemetry"
chmod -R u+w "$out/telemetry"
cat >"$mix/mix.exs" <<EOF
defmodule PkgCheck.MixProject do
  use Mix.Project

  def project, do: [app: :pkg_check, version: "0.1.0", deps: deps()]

  defp deps do
    [{:nsync, path: "$out/nsync_mix"},
     {:telemetry, path: "$out/telemetry", override: true}]
  end
end
EOF
export MIX_HOME=$out/mix_home MIX_REBAR3
MIX_REBAR3=$(command -v rebar3)
(cd "$mix" && MIX_ENV=dev mix compile >"$out/mix_app.log" 2>&1) \
    || { cat "$out/mix_app.log" >&2; fail "the mix project does not build"; }
(cd "$mix" && MIX_ENV=dev mix run --no-compile --no-deps-check -e '
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(l)
    :ok = :gen_tcp.close(l)
    {:error, {:connect, :econnrefused}} =
      :nsync.start_link(host: "127.0.0.1", port: port, block: true)
    {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(:nsync)
    [%{"en" => _}] = for {{:function, :start_link, 1}, _, _, d, _} <- docs, do: d
    true = :telemetry in Enum.map(Application.started_applications(), &elem(&1, 0))
    IO.puts("package: mix project: nsync starts, its NIF answers, its docs are found")')
