%%% @doc Mirror handlers for HyperLogLog commands. An HLL is a string whose
%%% bytes the master rewrites (registers, encoding, cached cardinality): the
%%% NIF computes the new bytes exactly as Redis does (`nsync_core::hll'), so
%%% the mirror's value equals the master's `GET'. They take the link's
%%% settings (the `settings' flag of `nsync_cmd'): `hll_sparse_max_bytes',
%%% the master's `hll-sparse-max-bytes'.
-module(nsync_cmd_hll).

-export([pfadd/3, pfcount/3, pfmerge/3, pfdebug/3]).

-import(nsync_cmd_lib, [lower/1, value/2, put_keep/3]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().
-type settings() :: nsync_cmd_lib:settings().

%% @doc PFADD key [element ...] (a new key is created even with no element).
-spec pfadd([binary()], store(), settings()) -> result().
pfadd([K | Elements], S, #{hll_sparse_max_bytes := Max}) ->
    store(K, nsync_nif:hll_pfadd(string_or_undefined(K, S), Elements, Max), S).

%% @doc PFCOUNT key: propagated when the master rewrote the cached
%% cardinality, which the mirror then writes too. With several keys it
%% changes nothing.
-spec pfcount([binary()], store(), settings()) -> result().
pfcount([K], S, _) ->
    case string_or_undefined(K, S) of
        undefined -> {ok, S};
        V -> store(K, nsync_nif:hll_pfcount(V), S)
    end;
pfcount(_Keys, S, _) -> {ok, S}.

%% @doc PFMERGE dest [source ...] (dest is merged too).
-spec pfmerge([binary()], store(), settings()) -> result().
pfmerge([Dest | Sources], S, #{hll_sparse_max_bytes := Max}) ->
    Values = [string_or_undefined(K, S) || K <- Sources],
    store(Dest, nsync_nif:hll_pfmerge(string_or_undefined(Dest, S), Values, Max), S).

%% @doc PFDEBUG TODENSE|GETREG key convert to the dense encoding (and are
%% propagated when they did); DECODE and ENCODING change nothing.
-spec pfdebug([binary()], store(), settings()) -> result().
pfdebug([Sub, K | _], S, _) ->
    case lower(Sub) of
        Dense when Dense =:= <<"todense">>; Dense =:= <<"getreg">> ->
            case string_or_undefined(K, S) of
                undefined -> {ok, S};
                V -> store(K, nsync_nif:hll_todense(V), S)
            end;
        _ -> {ok, S}
    end.

%% The key's string (`undefined' if none); not a string raises (unhandled).
string_or_undefined(K, S) ->
    case value(K, S) of
        none -> undefined;
        V when is_binary(V) -> V
    end.

%% A changed HLL keeps the key's expiry, as the master modifies it in place.
store(K, {ok, New}, S) -> {ok, put_keep(K, New, S)};
store(_K, unchanged, S) -> {ok, S};
store(_K, {error, _}, _S) -> unhandled.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

-define(SET, #{hll_sparse_max_bytes => 3000}).

run(F, Args, S) -> ?MODULE:F(Args, S, ?SET).
val(K, {ok, S}) -> value(K, S).

hll_test_() ->
    {ok, S1} = run(pfadd, [<<"h">>, <<"a">>, <<"b">>], #{}),
    V1 = value(<<"h">>, S1),
    {ok, S2} = run(pfcount, [<<"h">>], S1),
    V2 = value(<<"h">>, S2),
    {ok, S3} = run(pfdebug, [<<"TODENSE">>, <<"h">>], S2#{<<"h">> := {V2, 99, #{}}}),
    [?_assertMatch(<<"HYLL", 1, _/binary>>, V1),
     %% counted: the cache holds 2 and is valid
     ?_assertMatch(<<"HYLL", 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, _/binary>>, V2),
     ?_assertEqual({ok, S2}, run(pfcount, [<<"h">>], S2)),
     ?_assertEqual({ok, S1}, run(pfadd, [<<"h">>, <<"a">>], S1)),
     ?_assertEqual({ok, S1}, run(pfcount, [<<"h">>, <<"other">>], S1)),
     %% dense, the expiry kept
     ?_assertMatch(#{<<"h">> := {<<"HYLL", 0, _/binary>>, 99, _}}, S3),
     ?_assertEqual({ok, S3}, run(pfdebug, [<<"ENCODING">>, <<"h">>], S3)),
     ?_assertEqual(12304, byte_size(val(<<"h">>, run(pfdebug, [<<"getreg">>, <<"h">>], S2)))),
     %% PFADD with no element creates the key; PFMERGE of nothing too
     ?_assertMatch(<<"HYLL", 1, _/binary>>, val(<<"n">>, run(pfadd, [<<"n">>], #{}))),
     ?_assertMatch(<<"HYLL", 1, _/binary>>, val(<<"d">>, run(pfmerge, [<<"d">>, <<"x">>], #{}))),
     ?_assertEqual(unhandled, run(pfadd, [<<"s">>, <<"a">>], #{<<"s">> => {<<"not an hll">>, undefined, #{}}})),
     ?_assertError(_, run(pfadd, [<<"l">>, <<"a">>], #{<<"l">> => {[<<"x">>], undefined, #{}}}))].

merge_test() ->
    {ok, S} = run(pfadd, [<<"a">>, <<"x">>, <<"y">>], #{}),
    {ok, S2} = run(pfadd, [<<"b">>, <<"y">>, <<"z">>], S),
    {ok, S3} = run(pfmerge, [<<"c">>, <<"a">>, <<"b">>], S2),
    {ok, S4} = run(pfadd, [<<"d">>, <<"x">>, <<"y">>, <<"z">>], S3),
    %% the union's registers; both caches stale (the merged one as PFMERGE leaves it)
    ?assertEqual(value(<<"d">>, S4), value(<<"c">>, S4)).
-endif.
