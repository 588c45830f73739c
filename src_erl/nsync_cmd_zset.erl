%%% @doc Mirror handlers for sorted-set commands (see `nsync_cmd'). A zset is
%%% `[{Score, Member}]' sorted by score then member bytewise; a score is a
%%% float or `inf' / `'-inf''. An empty zset is deleted.
-module(nsync_cmd_zset).

-export([zadd/3, zincrby/3, zrem/3, zremrangebyscore/3, zremrangebyrank/3,
         zremrangebylex/3, zpopmin/3, zpopmax/3, bzpopmin/3, bzpopmax/3,
         zmpop/3, bzmpop/3, zunionstore/3, zinterstore/3, zdiffstore/3,
         zrangestore/3]).
-import(nsync_cmd_lib, [lower/1, to_int/1, value/2, put_keep/3, put_new/3, parse_float/1,
                        norm_range/3, score_key/1]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().
-type score() :: nsync_cmd_lib:score().

%%% ------------------------------------------------------------ score math

%% Sorts `[{Score, Member}]' in Redis order.
-spec sort_zset([{score(), binary()}]) -> [{score(), binary()}].
sort_zset(L) -> [E || {_, E} <- lists:sort([{{score_key(Sc), M}, E} || {Sc, M} = E <- L])].

%% IEEE addition over scores (`nan' for inf + -inf).
-spec add(score(), score()) -> score() | nan.
add(inf, '-inf') -> nan;
add('-inf', inf) -> nan;
add(inf, _) -> inf;
add(_, inf) -> inf;
add('-inf', _) -> '-inf';
add(_, '-inf') -> '-inf';
add(A, B) ->
    try A + B
    catch error:badarith -> case A > 0 of true -> inf; false -> '-inf' end
    end.

%% IEEE multiplication over scores (`nan' for 0 * inf).
-spec mul(score(), score()) -> score() | nan.
mul(A, B) when is_float(A), is_float(B) ->
    try A * B
    catch error:badarith -> case (A > 0) =:= (B > 0) of true -> inf; false -> '-inf' end
    end;
mul(A, B) ->
    case sign(A) * sign(B) of
        0 -> nan;
        1 -> inf;
        -1 -> '-inf'
    end.

sign(inf) -> 1;
sign('-inf') -> -1;
sign(F) when F > 0 -> 1;
sign(F) when F < 0 -> -1;
sign(_) -> 0.

gt(A, B) -> score_key(A) > score_key(B).
lt(A, B) -> score_key(A) < score_key(B).

%%% ------------------------------------------------------------ helpers

zmap(K, S) ->
    case value(K, S) of
        none -> #{};
        L -> maps:from_list([{M, Sc} || {Sc, M} <- L])
    end.

from_map(M) -> sort_zset([{Sc, Mb} || {Mb, Sc} <- maps:to_list(M)]).

%% A source of ZUNIONSTORE & co: a zset, or a set (scores 1).
source(K, S) ->
    case value(K, S) of
        none -> [];
        [B | _] = L when is_binary(B) -> [{1.0, M} || M <- L];
        L -> L
    end.

%%% ------------------------------------------------------------ handlers

%% @doc ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...].
-spec zadd([binary()], store(), integer()) -> result().
zadd([K | Args], S, _) ->
    {Flags, Pairs} = zadd_flags(Args, []),
    New = case Pairs of
              [Sc, Mb] ->
                  %% one member (the usual ZADD): moved within the sorted
                  %% list, without rebuilding and sorting it
                  Old = case value(K, S) of none -> []; L -> L end,
                  zadd_one(parse_float(Sc), Mb, Flags, Old);
              _ ->
                  from_map(zadd_pairs(Pairs, Flags, zmap(K, S)))
          end,
    {ok, put_keep(K, New, S)}.

zadd_flags([A | Rest] = Args, Acc) ->
    case lower(A) of
        F when F =:= <<"nx">>; F =:= <<"xx">>; F =:= <<"gt">>; F =:= <<"lt">>;
               F =:= <<"ch">>; F =:= <<"incr">> -> zadd_flags(Rest, [binary_to_atom(F) | Acc]);
        _ -> {Acc, Args}
    end;
zadd_flags([], Acc) -> {Acc, []}.

zadd_pairs([Sc0, Mb | Rest], Flags, M) ->
    M2 = case score_after(Flags, maps:get(Mb, M, none), parse_float(Sc0)) of
             skip -> M;
             New -> M#{Mb => New}
         end,
    zadd_pairs(Rest, Flags, M2);
zadd_pairs([], _, M) -> M.

zadd_one(Sc, Mb, Flags, L) ->
    {Cur, Rest} = case lists:keytake(Mb, 2, L) of
                      {value, {C, _}, R} -> {C, R};
                      false -> {none, L}
                  end,
    case score_after(Flags, Cur, Sc) of
        skip -> L;
        New -> insert_sorted({score_key(New), Mb}, {New, Mb}, Rest)
    end.

%% The score of a member after ZADD's `Flags' with score `Sc', `skip' if
%% it stays as it is (absent: `Cur' = none).
score_after(Flags, none, Sc) ->
    case lists:member(xx, Flags) of
        true -> skip;
        false -> Sc
    end;
score_after(Flags, Cur, Sc) ->
    New = case lists:member(incr, Flags) of true -> add(Cur, Sc); false -> Sc end,
    Skip = lists:member(nx, Flags)
        orelse New =:= nan
        orelse (lists:member(gt, Flags) andalso not gt(New, Cur))
        orelse (lists:member(lt, Flags) andalso not lt(New, Cur)),
    case Skip of
        true -> skip;
        false -> New
    end.

%% Inserts `E' (sort key `Key') into a zset in Redis order.
insert_sorted(Key, E, [{Sc, Mb} = H | T]) ->
    case {score_key(Sc), Mb} < Key of
        true -> [H | insert_sorted(Key, E, T)];
        false -> [E, H | T]
    end;
insert_sorted(_Key, E, []) -> [E].

%% @doc ZINCRBY key increment member.
-spec zincrby([binary()], store(), integer()) -> result().
zincrby([K, Incr, Mb], S, N) -> zadd([K, <<"INCR">>, Incr, Mb], S, N).

%% @doc ZREM key member [member ...].
-spec zrem([binary()], store(), integer()) -> result().
zrem([K | Ms], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        _ -> {ok, put_keep(K, from_map(maps:without(Ms, zmap(K, S))), S)}
    end.

%% @doc ZREMRANGEBYSCORE key min max.
-spec zremrangebyscore([binary()], store(), integer()) -> result().
zremrangebyscore([K, Min, Max], S, _) ->
    remove_where(K, S, score_pred(Min, Max)).

%% @doc ZREMRANGEBYLEX key min max.
-spec zremrangebylex([binary()], store(), integer()) -> result().
zremrangebylex([K, Min, Max], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        L ->
            {Before, _Run, After} = lex_run(L, Min, Max),
            {ok, put_keep(K, Before ++ After, S)}
    end.

remove_where(K, S, Pred) ->
    case value(K, S) of
        none -> {ok, S};
        L -> {ok, put_keep(K, [E || E <- L, not Pred(E)], S)}
    end.

%% @doc ZREMRANGEBYRANK key start stop.
-spec zremrangebyrank([binary()], store(), integer()) -> result().
zremrangebyrank([K, St, En], S, _) ->
    case value(K, S) of
        none -> {ok, S};
        L ->
            case norm_range(to_int(St), to_int(En), length(L)) of
                empty -> {ok, S};
                {A, B} ->
                    {Pre, Rest} = lists:split(A, L),
                    {ok, put_keep(K, Pre ++ lists:nthtail(B - A + 1, Rest), S)}
            end
    end.

score_pred(Min, Max) ->
    {MinV, MinEx} = score_bound(Min),
    {MaxV, MaxEx} = score_bound(Max),
    Lo = score_key(MinV),
    Hi = score_key(MaxV),
    fun({Sc, _}) ->
            X = score_key(Sc),
            (case MinEx of true -> X > Lo; false -> X >= Lo end) andalso
                (case MaxEx of true -> X < Hi; false -> X =< Hi end)
    end.

score_bound(<<"(", R/binary>>) -> {parse_float(R), true};
score_bound(B) -> {parse_float(B), false}.

%% The members a lex range selects, as Redis's listpack scan does
%% (zzlFirstInLexRange, then forward while =< max): with equal scores that is
%% every member in range; with mixed scores (undefined in Redis's docs, but
%% the master still does it) it is the first contiguous run only.
%% Returns {Before, Run, After} with Before ++ Run ++ After = L.
lex_run(L, Min, Max) ->
    Lo = lex_bound(Min),
    Hi = lex_bound(Max),
    case L =/= [] andalso not lex_empty(Lo, Hi)
        andalso lex_ge(element(2, lists:last(L)), Lo)
        andalso lex_le(element(2, hd(L)), Hi) of
        false -> {L, [], []};
        true ->
            {Before, From} = lists:splitwith(fun({_, M}) -> not lex_ge(M, Lo) end, L),
            {Run, After} = lists:splitwith(fun({_, M}) -> lex_le(M, Hi) end, From),
            {Before, Run, After}
    end.

%% The reverse scan (zzlLastInLexRange, then backward while >= min).
lex_run_rev(L, Min, Max) ->
    Lo = lex_bound(Min),
    Hi = lex_bound(Max),
    R = lists:reverse(L),
    case L =/= [] andalso not lex_empty(Lo, Hi)
        andalso lex_ge(element(2, hd(R)), Lo)
        andalso lex_le(element(2, hd(L)), Hi) of
        false -> [];
        true ->
            From = lists:dropwhile(fun({_, M}) -> not lex_le(M, Hi) end, R),
            lists:takewhile(fun({_, M}) -> lex_ge(M, Lo) end, From)
    end.

%% zslParseLexRange's empty ranges: min above max, or equal and exclusive.
lex_empty(max, _) -> true;
lex_empty(_, min) -> true;
lex_empty({_, A}, {_, B}) when A > B -> true;
lex_empty({ex, A}, {_, A}) -> true;
lex_empty({_, A}, {ex, A}) -> true;
lex_empty(_, _) -> false.

lex_bound(<<"-">>) -> min;
lex_bound(<<"+">>) -> max;
lex_bound(<<"[", R/binary>>) -> {in, R};
lex_bound(<<"(", R/binary>>) -> {ex, R}.

lex_ge(_, min) -> true;
lex_ge(_, max) -> false;
lex_ge(M, {in, B}) -> M >= B;
lex_ge(M, {ex, B}) -> M > B.

lex_le(_, max) -> true;
lex_le(_, min) -> false;
lex_le(M, {in, B}) -> M =< B;
lex_le(M, {ex, B}) -> M < B.

%% @doc ZPOPMIN key [count].
-spec zpopmin([binary()], store(), integer()) -> result().
zpopmin([K], S, _) -> {ok, zpop(K, min, 1, S)};
zpopmin([K, C], S, _) -> {ok, zpop(K, min, to_int(C), S)}.
%% @doc ZPOPMAX key [count].
-spec zpopmax([binary()], store(), integer()) -> result().
zpopmax([K], S, _) -> {ok, zpop(K, max, 1, S)};
zpopmax([K, C], S, _) -> {ok, zpop(K, max, to_int(C), S)}.

zpop(K, Side, N, S) ->
    case value(K, S) of
        none -> S;
        L ->
            N1 = max(0, min(N, length(L))),
            L2 = case Side of
                     min -> lists:nthtail(N1, L);
                     max -> lists:sublist(L, length(L) - N1)
                 end,
            put_keep(K, L2, S)
    end.

%% @doc BZPOPMIN key [key ...] timeout.
-spec bzpopmin([binary()], store(), integer()) -> result().
bzpopmin(Args, S, _) -> {ok, first_pop(lists:droplast(Args), min, 1, S)}.
%% @doc BZPOPMAX key [key ...] timeout.
-spec bzpopmax([binary()], store(), integer()) -> result().
bzpopmax(Args, S, _) -> {ok, first_pop(lists:droplast(Args), max, 1, S)}.

first_pop(Keys, Side, N, S) ->
    case [K || K <- Keys, is_map_key(K, S)] of
        [] -> S;
        [K | _] -> zpop(K, Side, N, S)
    end.

%% @doc ZMPOP numkeys key [key ...] MIN|MAX [COUNT c].
-spec zmpop([binary()], store(), integer()) -> result().
zmpop([N0 | Rest], S, _) ->
    {Keys, [Where | Opts]} = lists:split(to_int(N0), Rest),
    Count = case Opts of [] -> 1; [_, C] -> to_int(C) end,
    Side = case lower(Where) of <<"min">> -> min; <<"max">> -> max end,
    {ok, first_pop(Keys, Side, Count, S)}.

%% @doc BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT c].
-spec bzmpop([binary()], store(), integer()) -> result().
bzmpop([_T | Rest], S, N) -> zmpop(Rest, S, N).

%% @doc ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX].
-spec zunionstore([binary()], store(), integer()) -> result().
zunionstore(Args, S, _) -> setop(union, Args, S).
%% @doc ZINTERSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX].
-spec zinterstore([binary()], store(), integer()) -> result().
zinterstore(Args, S, _) -> setop(inter, Args, S).
%% @doc ZDIFFSTORE dst numkeys key [key ...].
-spec zdiffstore([binary()], store(), integer()) -> result().
zdiffstore(Args, S, _) -> setop(diff, Args, S).

setop(Op, [Dst, N0 | Rest], S) ->
    N = to_int(N0),
    {Keys, Opts} = lists:split(N, Rest),
    {Weights, Agg} = setop_opts(Opts, lists:duplicate(N, 1.0), sum),
    Srcs = lists:zip([source(K, S) || K <- Keys], Weights),
    Res = case Op of
              diff ->
                  [{First, _} | Others] = Srcs,
                  Drop = maps:from_list([{M, x} || {L, _} <- Others, {_, M} <- L]),
                  [E || {_, M} = E <- First, not is_map_key(M, Drop)];
              _ ->
                  %% Redis processes the inputs from the smallest to the largest
                  Sorted = lists:sort(fun({A, _}, {B, _}) -> length(A) =< length(B) end, Srcs),
                  from_map(aggregate(Op, Sorted, Agg))
          end,
    case Res of
        [] -> {ok, maps:remove(Dst, S)};
        _ -> {ok, put_new(Dst, Res, S)}
    end.

setop_opts([], W, A) -> {W, A};
setop_opts([O | Rest], W, A) ->
    case lower(O) of
        <<"weights">> ->
            {Ws, Rest1} = lists:split(length(W), Rest),
            setop_opts(Rest1, [parse_float(X) || X <- Ws], A);
        <<"aggregate">> ->
            [How | Rest1] = Rest,
            setop_opts(Rest1, W, binary_to_atom(lower(How)));
        <<"withscores">> -> setop_opts(Rest, W, A)
    end.

weighted(Sc, W) ->
    case mul(Sc, W) of
        nan -> 0.0;
        V -> V
    end.

agg(sum, A, B) -> case add(A, B) of nan -> 0.0; V -> V end;
agg(min, A, B) -> case lt(B, A) of true -> B; false -> A end;
agg(max, A, B) -> case gt(B, A) of true -> B; false -> A end.

aggregate(union, Srcs, Agg) ->
    lists:foldl(fun({L, W}, Acc) ->
                        lists:foldl(fun({Sc, M}, Acc1) ->
                                            V = weighted(Sc, W),
                                            case Acc1 of
                                                #{M := Old} -> Acc1#{M := agg(Agg, Old, V)};
                                                _ -> Acc1#{M => V}
                                            end
                                    end, Acc, L)
                end, #{}, Srcs);
aggregate(inter, [{First, W0} | Others], Agg) ->
    Maps = [{maps:from_list([{M, Sc} || {Sc, M} <- L]), W} || {L, W} <- Others],
    lists:foldl(fun({Sc, M}, Acc) ->
                        case inter_one(M, weighted(Sc, W0), Maps, Agg) of
                            none -> Acc;
                            V -> Acc#{M => V}
                        end
                end, #{}, First).

inter_one(_M, V, [], _Agg) -> V;
inter_one(M, V, [{Map, W} | Rest], Agg) ->
    case Map of
        #{M := Sc} -> inter_one(M, agg(Agg, V, weighted(Sc, W)), Rest, Agg);
        _ -> none
    end.

%% @doc ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT off count].
-spec zrangestore([binary()], store(), integer()) -> result().
zrangestore([Dst, Src, A, B | Opts0], S, _) ->
    Opts = zr_opts(Opts0, #{by => rank, rev => false, limit => {0, -1}}),
    L0 = case value(Src, S) of none -> []; L -> L end,
    #{by := By, rev := Rev, limit := {Off, Cnt}} = Opts,
    Sel = case By of
              rank ->
                  L1 = case Rev of true -> lists:reverse(L0); false -> L0 end,
                  case norm_range(to_int(A), to_int(B), length(L1)) of
                      empty -> [];
                      {X, Y} -> lists:sublist(L1, X + 1, Y - X + 1)
                  end;
              _ ->
                  {Min, Max} = case Rev of true -> {B, A}; false -> {A, B} end,
                  L2 = case {By, Rev} of
                           {score, _} ->
                               Pred = score_pred(Min, Max),
                               L1 = [E || E <- L0, Pred(E)],
                               case Rev of true -> lists:reverse(L1); false -> L1 end;
                           {lex, false} -> element(2, lex_run(L0, Min, Max));
                           {lex, true} -> lex_run_rev(L0, Min, Max)
                       end,
                  Len = length(L2),
                  case Off < 0 orelse Off >= Len of
                      true -> [];
                      false -> lists:sublist(L2, Off + 1, if Cnt < 0 -> Len; true -> Cnt end)
                  end
          end,
    case Sel of
        [] -> {ok, maps:remove(Dst, S)};
        _ -> {ok, put_new(Dst, sort_zset(Sel), S)}
    end.

zr_opts([], O) -> O;
zr_opts([X | Rest], O) ->
    case lower(X) of
        <<"byscore">> -> zr_opts(Rest, O#{by => score});
        <<"bylex">> -> zr_opts(Rest, O#{by => lex});
        <<"rev">> -> zr_opts(Rest, O#{rev => true});
        <<"limit">> -> [Off, Cnt | R] = Rest, zr_opts(R, O#{limit => {to_int(Off), to_int(Cnt)}})
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

z(K, L) -> #{K => {L, undefined, #{}}}.
run(F, Args, S) -> {ok, R} = ?MODULE:F(Args, S, 0), R.
v(F, Args, S) -> value(hd(Args), run(F, Args, S)).
abc() -> z(<<"z">>, [{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}]).

order_test_() ->
    [?_assertEqual([{'-inf', <<"x">>}, {-1.0, <<"a">>}, {0.0, <<"b">>}, {-0.0, <<"c">>}, {inf, <<"a">>}],
                   sort_zset([{inf, <<"a">>}, {-0.0, <<"c">>}, {0.0, <<"b">>}, {-1.0, <<"a">>}, {'-inf', <<"x">>}])),
     ?_assertEqual(nan, add(inf, '-inf')),
     ?_assertEqual(inf, add(1.7e308, 1.7e308)),
     ?_assertEqual(nan, mul(0.0, inf)),
     ?_assertEqual('-inf', mul(-2.0, inf))].

%% A one-member ZADD (moved within the list) gives what the general path
%% (a map, sorted again) gives, whatever the flags, scores and members.
zadd_one_test() ->
    rand:seed(exsss, {7, 8, 9}),
    Scores = [<<"1">>, <<"2">>, <<"-0">>, <<"0">>, <<"2.5">>, <<"-inf">>, <<"+inf">>, <<"-3">>],
    Members = [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>],
    FlagSets = [[], [nx], [xx], [gt], [lt], [incr], [gt, incr], [xx, lt], [nx, incr]],
    Pick = fun(L) -> lists:nth(rand:uniform(length(L)), L) end,
    lists:foreach(
      fun(_) ->
              Z = maps:from_list([{Pick(Members), parse_float(Pick(Scores))}
                                  || _ <- lists:seq(1, rand:uniform(5) - 1)]),
              S = z(<<"z">>, from_map(Z)),
              Flags = Pick(FlagSets),
              Pair = [Pick(Scores), Pick(Members)],
              Args = [<<"z">> | [atom_to_binary(F) || F <- Flags] ++ Pair],
              General = from_map(zadd_pairs(Pair, Flags, zmap(<<"z">>, S))),
              ?assertEqual(General, v(zadd, Args, S))
      end, lists:seq(1, 2000)).

zadd_test_() ->
    [?_assertEqual([{1.0, <<"a">>}, {1.5, <<"x">>}, {2.0, <<"b">>}, {3.0, <<"c">>}],
                   v(zadd, [<<"z">>, <<"1.5">>, <<"x">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zadd, [<<"z">>, <<"XX">>, <<"1">>, <<"x">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zadd, [<<"z">>, <<"NX">>, <<"9">>, <<"a">>], abc())),
     ?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}, {9.0, <<"a">>}], v(zadd, [<<"z">>, <<"GT">>, <<"CH">>, <<"9">>, <<"a">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zadd, [<<"z">>, <<"GT">>, <<"0">>, <<"a">>], abc())),
     ?_assertEqual([{0.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zadd, [<<"z">>, <<"lt">>, <<"0">>, <<"a">>], abc())),
     %% GT/LT still add new members
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}, {5.0, <<"n">>}],
                   v(zadd, [<<"z">>, <<"GT">>, <<"5">>, <<"n">>], abc())),
     %% GT with INCR: a negative increment is refused, a positive applied
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zadd, [<<"z">>, <<"GT">>, <<"INCR">>, <<"-1">>, <<"a">>], abc())),
     ?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}, {3.5, <<"a">>}], v(zadd, [<<"z">>, <<"GT">>, <<"INCR">>, <<"2.5">>, <<"a">>], abc())),
     ?_assertEqual([{-1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zadd, [<<"z">>, <<"LT">>, <<"INCR">>, <<"-2">>, <<"a">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}, {inf, <<"i">>}], v(zadd, [<<"z">>, <<"+inf">>, <<"i">>], abc())),
     ?_assertEqual([{'-inf', <<"i">>}], v(zadd, [<<"z">>, <<"-inf">>, <<"i">>], #{})),
     ?_assertEqual([{1000.0, <<"e">>}], v(zadd, [<<"z">>, <<"1e3">>, <<"e">>], #{})),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}, {4.0, <<"d">>}],
                   v(zincrby, [<<"z">>, <<"4">>, <<"d">>], abc())),
     ?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}, {5.0, <<"a">>}], v(zincrby, [<<"z">>, <<"4">>, <<"a">>], abc()))].

zrem_test_() ->
    [?_assertEqual([{2.0, <<"b">>}], v(zrem, [<<"z">>, <<"a">>, <<"c">>, <<"q">>], abc())),
     ?_assertEqual([], v(zrem, [<<"z">>, <<"a">>, <<"b">>, <<"c">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}], v(zremrangebyscore, [<<"z">>, <<"(1">>, <<"+inf">>], abc())),
     ?_assertEqual([{3.0, <<"c">>}], v(zremrangebyscore, [<<"z">>, <<"-inf">>, <<"2">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}, {3.0, <<"c">>}], v(zremrangebyrank, [<<"z">>, <<"1">>, <<"-2">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}, {3.0, <<"c">>}], v(zremrangebyrank, [<<"z">>, <<"5">>, <<"9">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}], v(zremrangebylex, [<<"z">>, <<"(a">>, <<"+">>], abc())),
     ?_assertEqual([{3.0, <<"c">>}], v(zremrangebylex, [<<"z">>, <<"-">>, <<"[b">>], abc())),
     %% mixed scores: Redis scans in score order and stops at the first miss
     ?_assertEqual(cab(), v(zremrangebylex, [<<"z">>, <<"-">>, <<"[b">>], z(<<"z">>, cab()))),
     ?_assertEqual([{2.0, <<"c">>}, {3.0, <<"b">>}],
                   v(zremrangebylex, [<<"z">>, <<"[a">>, <<"[b">>], z(<<"z">>, acb()))),
     ?_assertEqual([{1.0, <<"a">>}],
                   v(zrangestore, [<<"d">>, <<"z">>, <<"[a">>, <<"[b">>, <<"BYLEX">>], z(<<"z">>, acb()))),
     ?_assertEqual([{3.0, <<"b">>}],
                   v(zrangestore, [<<"d">>, <<"z">>, <<"+">>, <<"[b">>, <<"BYLEX">>, <<"REV">>], z(<<"z">>, cab())))].

cab() -> [{1.0, <<"c">>}, {2.0, <<"a">>}, {3.0, <<"b">>}].
acb() -> [{1.0, <<"a">>}, {2.0, <<"c">>}, {3.0, <<"b">>}].

zpop_test_() ->
    [?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}], v(zpopmin, [<<"z">>], abc())),
     ?_assertEqual([{1.0, <<"a">>}], v(zpopmax, [<<"z">>, <<"2">>], abc())),
     ?_assertEqual([], v(zpopmax, [<<"z">>, <<"20">>], abc())),
     ?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}], value(<<"z">>, run(bzpopmin, [<<"q">>, <<"z">>, <<"0">>], abc()))),
     ?_assertEqual([{1.0, <<"a">>}], value(<<"z">>, run(zmpop, [<<"1">>, <<"z">>, <<"MAX">>, <<"COUNT">>, <<"2">>], abc()))),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}], value(<<"z">>, run(bzmpop, [<<"1">>, <<"1">>, <<"z">>, <<"max">>], abc())))].

store_test_() ->
    S = maps:merge(abc(), maps:merge(z(<<"y">>, [{10.0, <<"b">>}, {inf, <<"d">>}]),
                                     z(<<"s">>, [<<"a">>, <<"d">>]))),
    V = fun(F, Args) -> value(<<"dst">>, run(F, [<<"dst">> | Args], S)) end,
    [?_assertEqual([{1.0, <<"a">>}, {3.0, <<"c">>}, {12.0, <<"b">>}, {inf, <<"d">>}],
                   V(zunionstore, [<<"2">>, <<"z">>, <<"y">>])),
     ?_assertEqual([{12.0, <<"b">>}], V(zinterstore, [<<"2">>, <<"z">>, <<"y">>])),
     ?_assertEqual([{2.0, <<"b">>}], V(zinterstore, [<<"2">>, <<"z">>, <<"y">>, <<"AGGREGATE">>, <<"MIN">>])),
     ?_assertEqual([{22.0, <<"b">>}], V(zinterstore, [<<"2">>, <<"z">>, <<"y">>, <<"WEIGHTS">>, <<"1">>, <<"2">>])),
     %% a set is a zset with scores 1; inf * 0 is 0
     ?_assertEqual([{2.0, <<"d">>}],
                   V(zinterstore, [<<"2">>, <<"s">>, <<"y">>, <<"weights">>, <<"2">>, <<"0">>, <<"aggregate">>, <<"sum">>])),
     ?_assertEqual([{1.0, <<"a">>}, {3.0, <<"c">>}], V(zdiffstore, [<<"2">>, <<"z">>, <<"y">>])),
     ?_assertEqual(none, V(zdiffstore, [<<"2">>, <<"z">>, <<"z">>])),
     ?_assertEqual(none, V(zinterstore, [<<"2">>, <<"z">>, <<"nope">>]))].

zrangestore_test_() ->
    V = fun(Args) -> value(<<"dst">>, run(zrangestore, [<<"dst">>, <<"z">> | Args], abc())) end,
    [?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}], V([<<"1">>, <<"-1">>])),
     ?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}], V([<<"0">>, <<"1">>, <<"REV">>])),
     ?_assertEqual([{1.0, <<"a">>}, {2.0, <<"b">>}], V([<<"-inf">>, <<"(3">>, <<"BYSCORE">>])),
     ?_assertEqual([{2.0, <<"b">>}], V([<<"-inf">>, <<"(3">>, <<"BYSCORE">>, <<"LIMIT">>, <<"1">>, <<"5">>])),
     ?_assertEqual([{3.0, <<"c">>}], V([<<"+inf">>, <<"2">>, <<"BYSCORE">>, <<"REV">>, <<"LIMIT">>, <<"0">>, <<"1">>])),
     ?_assertEqual([{2.0, <<"b">>}, {3.0, <<"c">>}], V([<<"[b">>, <<"+">>, <<"BYLEX">>])),
     ?_assertEqual(none, V([<<"5">>, <<"9">>]))].
-endif.
