%%% @doc Mirror handlers for set commands (see `nsync_cmd'). A set is an
%%% ordset of binaries; an empty set is deleted.
-module(nsync_cmd_set).

-export([sadd/3, srem/3, smove/3, sinterstore/3, sunionstore/3, sdiffstore/3]).

-import(nsync_cmd_lib, [value/2, put_keep/3, put_new/3]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().

set(K, S) -> case value(K, S) of none -> []; L -> L end.

%% @doc SADD key m [m ...].
-spec sadd([binary()], store(), integer()) -> result().
sadd([K | Ms], S, _) -> {ok, put_keep(K, ordsets:union(set(K, S), ordsets:from_list(Ms)), S)}.

%% @doc SREM key m [m ...] (also how SPOP is propagated).
-spec srem([binary()], store(), integer()) -> result().
srem([K | Ms], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        L -> {ok, put_keep(K, ordsets:subtract(L, ordsets:from_list(Ms)), S)}
    end.

%% @doc SMOVE src dst member.
-spec smove([binary()], store(), integer()) -> result().
smove([Src, Dst, M], S, _) ->
    Src1 = set(Src, S),
    case ordsets:is_element(M, Src1) of
        false -> {ok, S};
        true when Src =:= Dst -> {ok, S};
        true ->
            S1 = put_keep(Src, ordsets:del_element(M, Src1), S),
            {ok, put_keep(Dst, ordsets:add_element(M, set(Dst, S1)), S1)}
    end.

%% @doc SINTERSTORE dst key [key ...].
-spec sinterstore([binary()], store(), integer()) -> result().
sinterstore([D | Ks], S, _) -> store(D, ordsets:intersection([set(K, S) || K <- Ks]), S).
%% @doc SUNIONSTORE dst key [key ...].
-spec sunionstore([binary()], store(), integer()) -> result().
sunionstore([D | Ks], S, _) -> store(D, ordsets:union([set(K, S) || K <- Ks]), S).
%% @doc SDIFFSTORE dst key [key ...].
-spec sdiffstore([binary()], store(), integer()) -> result().
sdiffstore([D, K | Ks], S, _) ->
    store(D, ordsets:subtract(set(K, S), ordsets:union([set(X, S) || X <- Ks])), S).

store(D, [], S) -> {ok, maps:remove(D, S)};
store(D, L, S) -> {ok, put_new(D, L, S)}.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

st(L) -> maps:from_list([{K, {V, undefined, #{}}} || {K, V} <- L]).
run(F, Args, S) -> {ok, R} = ?MODULE:F(Args, S, 0), R.

sadd_srem_test_() ->
    S = st([{<<"s">>, [<<"a">>, <<"c">>]}]),
    [?_assertEqual(st([{<<"s">>, [<<"a">>, <<"b">>, <<"c">>]}]), run(sadd, [<<"s">>, <<"c">>, <<"b">>, <<"b">>], S)),
     ?_assertEqual(st([{<<"s">>, [<<"c">>]}]), run(srem, [<<"s">>, <<"a">>, <<"zz">>], S)),
     %% removing the last member empties the set (deleted by finish/2)
     ?_assertEqual(st([{<<"s">>, []}]), run(srem, [<<"s">>, <<"a">>, <<"c">>], S)),
     ?_assertEqual(#{}, run(srem, [<<"s">>, <<"a">>], #{}))].

smove_test_() ->
    S = st([{<<"s">>, [<<"a">>, <<"c">>]}, {<<"t">>, [<<"b">>]}]),
    [?_assertEqual(st([{<<"s">>, [<<"c">>]}, {<<"t">>, [<<"a">>, <<"b">>]}]), run(smove, [<<"s">>, <<"t">>, <<"a">>], S)),
     ?_assertEqual(S, run(smove, [<<"s">>, <<"t">>, <<"zz">>], S)),
     ?_assertEqual(S, run(smove, [<<"s">>, <<"s">>, <<"a">>], S)),
     ?_assertEqual([<<"c">>], value(<<"n">>, run(smove, [<<"s">>, <<"n">>, <<"c">>], S)))].

store_test_() ->
    S = st([{<<"a">>, [<<"1">>, <<"2">>, <<"3">>]}, {<<"b">>, [<<"2">>, <<"4">>]}, {<<"d">>, [<<"x">>]}]),
    [?_assertEqual([<<"2">>], value(<<"d">>, run(sinterstore, [<<"d">>, <<"a">>, <<"b">>], S))),
     ?_assertEqual(none, value(<<"d">>, run(sinterstore, [<<"d">>, <<"a">>, <<"nope">>], S))),
     ?_assertEqual([<<"1">>, <<"2">>, <<"3">>, <<"4">>], value(<<"d">>, run(sunionstore, [<<"d">>, <<"a">>, <<"b">>], S))),
     ?_assertEqual([<<"1">>, <<"3">>], value(<<"d">>, run(sdiffstore, [<<"d">>, <<"a">>, <<"b">>], S))),
     %% destination among the sources
     ?_assertEqual([<<"1">>, <<"2">>, <<"3">>, <<"x">>], value(<<"d">>, run(sunionstore, [<<"d">>, <<"d">>, <<"a">>], S)))].
-endif.
