%%% @doc Mirror handlers for list commands (see `nsync_cmd'). A list is
%%% `[binary()]' in order; an empty list is deleted.
-module(nsync_cmd_list).

-export([lpush/3, rpush/3, lpushx/3, rpushx/3, lpop/3, rpop/3, linsert/3,
         lset/3, lrem/3, ltrim/3, lmove/3, rpoplpush/3, lmpop/3, blmpop/3,
         blpop/3, brpop/3]).

-import(nsync_cmd_lib, [lower/1, to_int/1, value/2, put_keep/3, norm_range/3]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().

list(K, S) -> case value(K, S) of none -> []; L -> L end.

%% @doc LPUSH key v [v ...].
-spec lpush([binary()], store(), integer()) -> result().
lpush([K | Vs], S, _) -> {ok, put_keep(K, lists:reverse(Vs, list(K, S)), S)}.
%% @doc RPUSH key v [v ...].
-spec rpush([binary()], store(), integer()) -> result().
rpush([K | Vs], S, _) -> {ok, put_keep(K, list(K, S) ++ Vs, S)}.
%% @doc LPUSHX key v [v ...].
-spec lpushx([binary()], store(), integer()) -> result().
lpushx([K | _] = A, S, N) -> if_exists(K, S, fun() -> lpush(A, S, N) end).
%% @doc RPUSHX key v [v ...].
-spec rpushx([binary()], store(), integer()) -> result().
rpushx([K | _] = A, S, N) -> if_exists(K, S, fun() -> rpush(A, S, N) end).

if_exists(K, S, F) ->
    case is_map_key(K, S) of
        true -> F();
        false -> {ok, S}
    end.

%% @doc LPOP key [count].
-spec lpop([binary()], store(), integer()) -> result().
lpop([K], S, _) -> {ok, pop(K, left, 1, S)};
lpop([K, C], S, _) -> {ok, pop(K, left, to_int(C), S)}.
%% @doc RPOP key [count].
-spec rpop([binary()], store(), integer()) -> result().
rpop([K], S, _) -> {ok, pop(K, right, 1, S)};
rpop([K, C], S, _) -> {ok, pop(K, right, to_int(C), S)}.

pop(K, Side, N, S) ->
    case value(K, S) of
        none -> S;
        L ->
            N1 = min(N, length(L)),
            L2 = case Side of
                     left -> lists:nthtail(N1, L);
                     right -> lists:sublist(L, length(L) - N1)
                 end,
            put_keep(K, L2, S)
    end.

%% @doc LINSERT key BEFORE|AFTER pivot value (pivot missing: no change).
-spec linsert([binary()], store(), integer()) -> result().
linsert([K, Where, Pivot, V], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        L ->
            case lists:splitwith(fun(E) -> E =/= Pivot end, L) of
                {_, []} -> {ok, S};
                {Pre, [P | Post]} ->
                    L2 = case lower(Where) of
                             <<"before">> -> Pre ++ [V, P | Post];
                             <<"after">> -> Pre ++ [P, V | Post]
                         end,
                    {ok, put_keep(K, L2, S)}
            end
    end.

%% @doc LSET key index value (negative index from the tail).
-spec lset([binary()], store(), integer()) -> result().
lset([K, I0, V], S, _) ->
    L = list(K, S),
    Len = length(L),
    I = case to_int(I0) of X when X < 0 -> Len + X; X -> X end,
    case I >= 0 andalso I < Len of
        true ->
            {Pre, [_ | Post]} = lists:split(I, L),
            {ok, put_keep(K, Pre ++ [V | Post], S)};
        false -> {ok, S}
    end.

%% @doc LREM key count value: a positive count removes from the head, a
%% negative one from the tail, 0 every occurrence.
-spec lrem([binary()], store(), integer()) -> result().
lrem([K, C0, V], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        L ->
            C = to_int(C0),
            L2 = if
                     C == 0 -> [E || E <- L, E =/= V];
                     C > 0 -> rem_n(L, V, C);
                     true -> lists:reverse(rem_n(lists:reverse(L), V, -C))
                 end,
            {ok, put_keep(K, L2, S)}
    end.

rem_n(L, _V, 0) -> L;
rem_n([], _V, _) -> [];
rem_n([V | T], V, N) -> rem_n(T, V, N - 1);
rem_n([H | T], V, N) -> [H | rem_n(T, V, N)].

%% @doc LTRIM key start stop (Redis index rules).
-spec ltrim([binary()], store(), integer()) -> result().
ltrim([K, St, En], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        L ->
            case norm_range(to_int(St), to_int(En), length(L)) of
                empty -> {ok, put_keep(K, [], S)};
                {A, B} -> {ok, put_keep(K, lists:sublist(L, A + 1, B - A + 1), S)}
            end
    end.

%% @doc LMOVE src dst LEFT|RIGHT LEFT|RIGHT (and BLMOVE ... timeout).
-spec lmove([binary()], store(), integer()) -> result().
lmove([Src, Dst, From, To | _], S, _) -> move(Src, Dst, side(From), side(To), S).

%% @doc RPOPLPUSH src dst (and BRPOPLPUSH src dst timeout).
-spec rpoplpush([binary()], store(), integer()) -> result().
rpoplpush([Src, Dst | _], S, _) -> move(Src, Dst, right, left, S).

side(B) ->
    case lower(B) of
        <<"left">> -> left;
        <<"right">> -> right
    end.

move(Src, Dst, From, To, S) ->
    case value(Src, S) of
        none -> {ok, S};
        L ->
            {E, Rest} = case From of
                            left -> {hd(L), tl(L)};
                            right -> {lists:last(L), lists:droplast(L)}
                        end,
            S1 = put_keep(Src, Rest, S),
            D = list(Dst, S1),
            D2 = case To of left -> [E | D]; right -> D ++ [E] end,
            {ok, put_keep(Dst, D2, S1)}
    end.

%% @doc LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT c].
-spec lmpop([binary()], store(), integer()) -> result().
lmpop([N0 | Rest], S, _) ->
    N = to_int(N0),
    {Keys, [Where | Opts]} = lists:split(N, Rest),
    Count = case Opts of [] -> 1; [_, C] -> to_int(C) end,
    case [K || K <- Keys, is_map_key(K, S)] of
        [] -> {ok, S};
        [K | _] -> {ok, pop(K, side(Where), Count, S)}
    end.

%% @doc BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT c].
-spec blmpop([binary()], store(), integer()) -> result().
blmpop([_Timeout | Rest], S, Now) -> lmpop(Rest, S, Now).

%% @doc BLPOP key [key ...] timeout.
-spec blpop([binary()], store(), integer()) -> result().
blpop(Args, S, _) -> bpop(lists:droplast(Args), left, S).
%% @doc BRPOP key [key ...] timeout.
-spec brpop([binary()], store(), integer()) -> result().
brpop(Args, S, _) -> bpop(lists:droplast(Args), right, S).

bpop(Keys, Side, S) ->
    case [K || K <- Keys, is_map_key(K, S)] of
        [] -> {ok, S};
        [K | _] -> {ok, pop(K, Side, 1, S)}
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

l(K, L) -> #{K => {L, undefined, #{}}}.
run(F, Args, S) -> {ok, R} = ?MODULE:F(Args, S, 0), R.
v(F, Args, S) -> value(hd(Args), run(F, Args, S)).
abc() -> l(<<"k">>, [<<"a">>, <<"b">>, <<"c">>]).

push_test_() ->
    [?_assertEqual([<<"2">>, <<"1">>, <<"a">>, <<"b">>, <<"c">>], v(lpush, [<<"k">>, <<"1">>, <<"2">>], abc())),
     ?_assertEqual([<<"a">>, <<"b">>, <<"c">>, <<"1">>, <<"2">>], v(rpush, [<<"k">>, <<"1">>, <<"2">>], abc())),
     ?_assertEqual([<<"1">>], v(rpush, [<<"k">>, <<"1">>], #{})),
     ?_assertEqual(#{}, run(lpushx, [<<"k">>, <<"1">>], #{})),
     ?_assertEqual(#{}, run(rpushx, [<<"k">>, <<"1">>], #{})),
     ?_assertEqual([<<"1">>, <<"a">>, <<"b">>, <<"c">>], v(lpushx, [<<"k">>, <<"1">>], abc())),
     %% pushes keep the TTL
     ?_assertEqual(#{<<"k">> => {[<<"a">>, <<"x">>], 7, #{}}},
                   run(rpush, [<<"k">>, <<"x">>], #{<<"k">> => {[<<"a">>], 7, #{}}}))].

pop_test_() ->
    [?_assertEqual([<<"b">>, <<"c">>], v(lpop, [<<"k">>], abc())),
     ?_assertEqual([<<"a">>, <<"b">>], v(rpop, [<<"k">>], abc())),
     ?_assertEqual([<<"c">>], v(lpop, [<<"k">>, <<"2">>], abc())),
     ?_assertEqual([<<"a">>], v(rpop, [<<"k">>, <<"2">>], abc())),
     %% count > length empties the list (deleted by nsync_cmd_lib:finish/1)
     ?_assertEqual([], v(lpop, [<<"k">>, <<"10">>], abc())),
     ?_assertEqual(#{}, run(lpop, [<<"k">>], #{}))].

linsert_lset_test_() ->
    [?_assertEqual([<<"a">>, <<"X">>, <<"b">>, <<"c">>], v(linsert, [<<"k">>, <<"BEFORE">>, <<"b">>, <<"X">>], abc())),
     ?_assertEqual([<<"a">>, <<"b">>, <<"X">>, <<"c">>], v(linsert, [<<"k">>, <<"after">>, <<"b">>, <<"X">>], abc())),
     %% pivot missing: no change
     ?_assertEqual(abc(), run(linsert, [<<"k">>, <<"BEFORE">>, <<"zz">>, <<"X">>], abc())),
     ?_assertEqual([<<"a">>, <<"b">>, <<"X">>], v(lset, [<<"k">>, <<"-1">>, <<"X">>], abc())),
     ?_assertEqual([<<"X">>, <<"b">>, <<"c">>], v(lset, [<<"k">>, <<"0">>, <<"X">>], abc()))].

lrem_test_() ->
    L = l(<<"k">>, [<<"x">>, <<"a">>, <<"x">>, <<"b">>, <<"x">>]),
    [?_assertEqual([<<"a">>, <<"b">>], v(lrem, [<<"k">>, <<"0">>, <<"x">>], L)),
     ?_assertEqual([<<"a">>, <<"x">>, <<"b">>, <<"x">>], v(lrem, [<<"k">>, <<"1">>, <<"x">>], L)),
     %% negative count removes from the tail
     ?_assertEqual([<<"x">>, <<"a">>, <<"b">>], v(lrem, [<<"k">>, <<"-2">>, <<"x">>], L)),
     ?_assertEqual([], v(lrem, [<<"k">>, <<"0">>, <<"a">>], l(<<"k">>, [<<"a">>])))].

ltrim_test_() ->
    [?_assertEqual([<<"b">>, <<"c">>], v(ltrim, [<<"k">>, <<"1">>, <<"-1">>], abc())),
     ?_assertEqual([<<"a">>, <<"b">>], v(ltrim, [<<"k">>, <<"-100">>, <<"1">>], abc())),
     ?_assertEqual([<<"c">>], v(ltrim, [<<"k">>, <<"-1">>, <<"100">>], abc())),
     ?_assertEqual([], v(ltrim, [<<"k">>, <<"2">>, <<"1">>], abc())),
     ?_assertEqual([], v(ltrim, [<<"k">>, <<"5">>, <<"10">>], abc()))].

move_test_() ->
    S = maps:merge(abc(), l(<<"d">>, [<<"z">>])),
    [?_assertEqual(#{<<"k">> => {[<<"a">>, <<"b">>], undefined, #{}}, <<"d">> => {[<<"c">>, <<"z">>], undefined, #{}}},
                   run(rpoplpush, [<<"k">>, <<"d">>], S)),
     ?_assertEqual(#{<<"k">> => {[<<"b">>, <<"c">>], undefined, #{}}, <<"d">> => {[<<"z">>, <<"a">>], undefined, #{}}},
                   run(lmove, [<<"k">>, <<"d">>, <<"LEFT">>, <<"RIGHT">>], S)),
     %% same list: rotation
     ?_assertEqual([<<"c">>, <<"a">>, <<"b">>], v(lmove, [<<"k">>, <<"k">>, <<"right">>, <<"left">>], abc())),
     ?_assertEqual([<<"a">>], value(<<"n">>, run(rpoplpush, [<<"k">>, <<"n">>], l(<<"k">>, [<<"a">>])))),
     ?_assertEqual([<<"c">>, <<"z">>], value(<<"d">>, run(lmove, [<<"k">>, <<"d">>, <<"RIGHT">>, <<"LEFT">>, <<"0">>], S)))].

mpop_test_() ->
    S = maps:merge(abc(), l(<<"j">>, [<<"z">>])),
    [?_assertEqual([<<"c">>], value(<<"k">>, run(lmpop, [<<"2">>, <<"x">>, <<"k">>, <<"LEFT">>, <<"COUNT">>, <<"2">>], S))),
     ?_assertEqual([<<"a">>, <<"b">>], value(<<"k">>, run(blmpop, [<<"0">>, <<"1">>, <<"k">>, <<"RIGHT">>], S))),
     ?_assertEqual([<<"b">>, <<"c">>], value(<<"k">>, run(blpop, [<<"nope">>, <<"k">>, <<"j">>, <<"0">>], S))),
     ?_assertEqual([], value(<<"j">>, run(brpop, [<<"j">>, <<"k">>, <<"0">>], S)))].
-endif.
