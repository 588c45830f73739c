%%% @doc Mirror handlers for stream commands (see `nsync_cmd'). A stream is
%%% `{stream, Entries, Meta}' with `Entries = [{{Ms, Seq}, [F, V, ...]}]' in
%%% id order and `Meta' as in DESIGN.md. Masters propagate XADD with the
%%% generated id and approximate trims rewritten as exact ones, so trimming
%%% here is exact. An empty stream is kept (Redis keeps it).
-module(nsync_cmd_stream).

-export([xadd/3, xdel/3, xtrim/3, xsetid/3, xgroup/3, xack/3, xclaim/3, xdelex/3, xackdel/3]).
-export([parse_id/1, xadd_parts/1, xtrim_parts/1, refs_and_ids/1]).
%% parse_id/1 is also how the test workload reads a master's stream ids;
%% the *_parts functions are how nsync_cmd_big reads these arguments.

-import(nsync_cmd_lib, [lower/1, to_int/1, value/2, put_keep/3]).

-export_type([trim/0, refs/0]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().
-type id() :: {non_neg_integer(), non_neg_integer()}.
-type trim() :: {maxlen, integer()} | {minid, id()}.
%% A trim: down to a length, or below an id.
-type refs() :: keepref | delref | acked.
%% What deleting entries does to the groups' references to them.

%% The metadata of a new, empty stream.
empty_meta() ->
    #{last_id => {0, 0}, length => 0, first_id => {0, 0}, max_deleted_id => {0, 0},
      entries_added => 0, groups => []}.

%% @doc Parses a complete stream id (`ms-seq' or `ms').
-spec parse_id(binary()) -> id().
parse_id(B) ->
    case binary:split(B, <<"-">>) of
        [Ms, Seq] -> {to_int(Ms), to_int(Seq)};
        [Ms] -> {to_int(Ms), 0}
    end.

get(K, S) ->
    case value(K, S) of
        {stream, E, M} -> {E, M};
        none -> none
    end.

put(K, E, M, S) -> put_keep(K, {stream, E, M}, S).

%% @doc XADD key [NOMKSTREAM] [KEEPREF|DELREF] [MAXLEN|MINID [=|~] thr] [LIMIT n]
%% id f v [f v ...].
-spec xadd([binary()], store(), integer()) -> result().
xadd([K | Rest], S, Now) ->
    {Opts, [Id0 | FVs]} = xadd_opts(Rest, #{}),
    case {get(K, S), Opts} of
        {none, #{nomkstream := true}} -> {ok, S};
        {Cur, _} ->
            {E, M} = case Cur of none -> {[], empty_meta()}; _ -> Cur end,
            #{last_id := {LMs, LSeq} = Last, length := Len, entries_added := Added} = M,
            Id = case binary:split(Id0, <<"-">>) of
                     [<<"*">>] when Now > LMs -> {Now, 0};
                     [<<"*">>] -> {LMs, LSeq + 1};
                     [Ms0, <<"*">>] ->
                         case to_int(Ms0) of LMs -> {LMs, LSeq + 1}; Ms -> {Ms, 0} end;
                     _ -> parse_id(Id0)
                 end,
            true = Id > Last orelse Last =:= {0, 0},
            First = case Len of 0 -> Id; _ -> maps:get(first_id, M) end,
            %% A stream from a pre-7.0 snapshot or DUMP has no entries_added.
            Added1 = case Added of undefined -> undefined; _ -> Added + 1 end,
            M2 = M#{last_id := Id, length := Len + 1, entries_added := Added1, first_id => First},
            {E3, M3} = trim(E ++ [{Id, FVs}], M2, maps:get(trim, Opts, none),
                            maps:get(refs, Opts, keepref)),
            {ok, put(K, E3, M3, S)}
    end.

%% @doc XADD's arguments after the key as the arguments of an XADD
%% without its trim, and that trim (`none' if it has none): an XADD with a
%% trim is the XADD without it, then the trim.
-spec xadd_parts([binary()]) -> {[binary()], {trim(), refs()} | none}.
xadd_parts(Args) ->
    {Opts, IdFVs} = xadd_opts(Args, #{}),
    Add = [<<"NOMKSTREAM">> || is_map_key(nomkstream, Opts)] ++ IdFVs,
    case Opts of
        #{trim := Trim} -> {Add, {Trim, maps:get(refs, Opts, keepref)}};
        _ -> {Add, none}
    end.

xadd_opts([A | Rest] = Args, O) ->
    case lower(A) of
        <<"nomkstream">> -> xadd_opts(Rest, O#{nomkstream => true});
        <<"limit">> -> xadd_opts(tl(Rest), O);
        R when R =:= <<"keepref">>; R =:= <<"delref">>; R =:= <<"acked">> ->
            xadd_opts(Rest, O#{refs => binary_to_atom(R)});
        S when S =:= <<"maxlen">>; S =:= <<"minid">> ->
            {Thr, Rest1} = case Rest of
                               [X, T | R] when X =:= <<"=">>; X =:= <<"~">> -> {T, R};
                               [T | R] -> {T, R}
                           end,
            xadd_opts(Rest1, O#{trim => trim_spec(S, Thr)});
        _ -> {O, Args}
    end.

trim_spec(<<"maxlen">>, T) -> {maxlen, to_int(T)};
trim_spec(<<"minid">>, T) -> {minid, parse_id(T)}.

%% Trims as Redis 8.2 does with KEEPREF (the default: consumer groups keep
%% their references to trimmed entries), DELREF (the references go too) or
%% ACKED (only entries no group still references are trimmed: see
%% `referenced/2'). Masters propagate exact trims (`~' is rewritten to `='
%% with the length or first id it reached), which a replica runs again.
trim(E, M, none, _Refs) -> {E, M};
trim(E, M, Spec, Refs) ->
    {Gone, Kept} = case Spec of
                       {maxlen, N} -> trim_maxlen(E, length(E), N, M, Refs, false, [], []);
                       {minid, Id} -> trim_minid(E, Id, M, Refs, [], [])
                   end,
    case Gone of
        [] -> {E, M};
        _ -> deleted(Gone, fix(Kept, M), Refs)
    end.

%% Oldest first, until `N' entries are left. With ACKED an entry still
%% referenced is kept and the walk goes on, but Redis walks the stream's
%% nodes (listpacks of up to 100 entries by default) and stops at the end of
%% the first node that could not be emptied to reach `N': where it stops
%% then depends on a node layout the mirror does not have. That happens only
%% when an entry would be trimmed after one that was kept: the trim raises
%% (unhandled, the key is dropped) rather than guess.
trim_maxlen([{I, _} = X | Rest], Len, N, M, Refs, Skipped, Gone, Kept) when Len > N ->
    case {trimmable(I, M, Refs), Skipped} of
        {true, true} -> error({trim_depends_on_node_layout, I});
        {true, false} -> trim_maxlen(Rest, Len - 1, N, M, Refs, false, [I | Gone], Kept);
        {false, _} -> trim_maxlen(Rest, Len, N, M, Refs, true, Gone, [X | Kept])
    end;
trim_maxlen(Rest, _Len, _N, _M, _Refs, _Skipped, Gone, Kept) ->
    {lists:reverse(Gone), lists:reverse(Kept, Rest)}.

%% Every entry below `Id' (that ACKED allows).
trim_minid([{I, _} = X | Rest], Id, M, Refs, Gone, Kept) when I < Id ->
    case trimmable(I, M, Refs) of
        true -> trim_minid(Rest, Id, M, Refs, [I | Gone], Kept);
        false -> trim_minid(Rest, Id, M, Refs, Gone, [X | Kept])
    end;
trim_minid(Rest, _Id, _M, _Refs, Gone, Kept) ->
    {lists:reverse(Gone), lists:reverse(Kept, Rest)}.

trimmable(I, M, acked) -> not referenced(I, M);
trimmable(_I, _M, _Refs) -> true.

%% Whether a consumer group still references entry `I' (Redis 8.2's
%% `streamEntryIsReferenced'): some group has not read it yet (its last
%% delivered id is below `I') or it is pending in some group. A stream
%% without groups references nothing.
referenced(I, M) ->
    case maps:get(groups, M, []) of
        [] -> false;
        Gs ->
            lists:any(fun(G) -> maps:get(last_delivered_id, G) < I
                                    orelse lists:keymember(I, 1, maps:get(pending, G, []))
                      end, Gs)
    end.

%% Drops the group references of deleted entries with DELREF.
deleted(_Gone, {E, M}, Refs) when Refs =:= keepref; Refs =:= acked -> {E, M};
deleted(Gone, {E, M}, delref) -> {E, M#{groups := [unpend(G, Gone) || G <- maps:get(groups, M)]}}.

%% recompute length and first id after removals
fix(E, M) ->
    First = case E of [] -> {0, 0}; [{I, _} | _] -> I end,
    {E, M#{length := length(E), first_id => First}}.

%% @doc XDEL key id [id ...].
-spec xdel([binary()], store(), integer()) -> result().
xdel([K | Ids], S, _) ->
    case get(K, S) of
        none -> {ok, S};
        Stream -> {ok, delete_ids(K, [parse_id(I) || I <- Ids], keepref, Stream, S)}
    end.

%% Deletes entries `Ids' (those that exist, and with ACKED those no group
%% references); with DELREF the groups drop their references to all of
%% `Ids', as Redis does even for an id the stream does not hold.
delete_ids(K, Ids, Refs, {E, M}, S) ->
    Deletable = [I || I <- Ids, trimmable(I, M, Refs)],
    Deleted = [I || {I, _} <- E, lists:member(I, Deletable)],
    MaxDel = lists:max([maps:get(max_deleted_id, M, {0, 0}) | Deleted]),
    {E2, M2} = deleted(Ids, fix([X || {I, _} = X <- E, not lists:member(I, Deletable)], M), Refs),
    put(K, E2, M2#{max_deleted_id => MaxDel}, S).

%% @doc XDELEX key [KEEPREF|DELREF|ACKED] IDS n id [id ...] (Redis 8.2;
%% propagated as written when it deleted something).
-spec xdelex([binary()], store(), integer()) -> result().
xdelex([K | Rest], S, _) ->
    {Refs, Ids} = refs_and_ids(Rest),
    case get(K, S) of
        none -> {ok, S};
        Stream -> {ok, delete_ids(K, Ids, Refs, Stream, S)}
    end.

%% @doc XACKDEL key group [KEEPREF|DELREF|ACKED] IDS n id [id ...] (Redis
%% 8.2; propagated as written when it acknowledged something): the ids
%% pending in the group are acknowledged, then deleted as XDELEX deletes
%% them (with ACKED, those no group references any more); ids not pending
%% in the group are left alone.
-spec xackdel([binary()], store(), integer()) -> result().
xackdel([K, G | Rest], S, _) ->
    {Refs, Ids} = refs_and_ids(Rest),
    case get(K, S) of
        none -> {ok, S};
        {E, M} ->
            case [X || X <- maps:get(groups, M, []), maps:get(name, X) =:= G] of
                [] -> {ok, S};
                [Group] ->
                    Pending = [I || I <- lists:usort(Ids), lists:keymember(I, 1, maps:get(pending, Group, []))],
                    M2 = update_group(G, M, fun(X) -> unpend(X, Pending) end),
                    {ok, delete_ids(K, Pending, Refs, {E, M2}, S)}
            end
    end.

%% @doc `[KEEPREF|DELREF|ACKED] IDS n id ...': the strategy and the parsed
%% ids.
-spec refs_and_ids([binary()]) -> {refs(), [id()]}.
refs_and_ids(Args) ->
    {Opts, [_Ids, N | Ids]} = lists:splitwith(fun(A) -> lower(A) =/= <<"ids">> end, Args),
    Refs = case [lower(O) || O <- Opts] of
               [] -> keepref;
               [<<"keepref">>] -> keepref;
               [<<"delref">>] -> delref;
               [<<"acked">>] -> acked
           end,
    {Refs, [parse_id(I) || I <- lists:sublist(Ids, to_int(N))]}.

%% @doc XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n] [KEEPREF|DELREF].
-spec xtrim([binary()], store(), integer()) -> result().
xtrim([K | Args], S, _) ->
    case get(K, S) of
        none -> {ok, S};
        {E, M} ->
            {Spec, Refs} = xtrim_parts(Args),
            {E2, M2} = trim(E, M, Spec, Refs),
            {ok, put(K, E2, M2, S)}
    end.

%% @doc XTRIM's arguments after the key: the trim and the strategy.
-spec xtrim_parts([binary()]) -> {trim(), refs()}.
xtrim_parts([Strategy | Rest]) ->
    {Thr, Opts} = case Rest of
                      [X, T | O] when X =:= <<"=">>; X =:= <<"~">> -> {T, O};
                      [T | O] -> {T, O}
                  end,
    {#{refs := Refs}, _} = xadd_opts(Opts ++ [<<"end">>], #{refs => keepref}),
    {trim_spec(lower(Strategy), Thr), Refs}.

%% @doc XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id].
-spec xsetid([binary()], store(), integer()) -> result().
xsetid([K, Id | Opts], S, _) ->
    case get(K, S) of
        none -> {ok, S};
        {E, M} -> {ok, put(K, E, xsetid_opts(Opts, M#{last_id := parse_id(Id)}), S)}
    end.

xsetid_opts([O, V | Rest], M) ->
    case lower(O) of
        <<"entriesadded">> -> xsetid_opts(Rest, M#{entries_added := to_int(V)});
        <<"maxdeletedid">> -> xsetid_opts(Rest, M#{max_deleted_id => parse_id(V)})
    end;
xsetid_opts([], M) -> M.

%%% ------------------------------------------------------------ groups

group_id(<<"$">>, M) -> maps:get(last_id, M);
group_id(I, _) -> parse_id(I).

%% A group's entries-read counter: ENTRIESREAD's, else unknown
%% (`undefined', Redis's -1, even for `$' as t_stream.c creates groups).
entries_read([O, V | Rest]) ->
    case lower(O) of
        <<"entriesread">> ->
            case to_int(V) of
                -1 -> undefined;
                N -> N
            end;
        _ -> entries_read([V | Rest])
    end;
entries_read(_) -> undefined.

update_group(G, M, F) ->
    Gs = maps:get(groups, M, []),
    M#{groups => [case maps:get(name, X) of G -> F(X); _ -> X end || X <- Gs]}.

%% @doc XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER key group ....
-spec xgroup([binary()], store(), integer()) -> result().
xgroup([Sub, K | Rest], S, Now) ->
    Cur = get(K, S),
    case {lower(Sub), Cur, Rest} of
        {<<"create">>, _, [G, Id | Opts]} ->
            Mk = lists:member(<<"mkstream">>, [lower(O) || O <- Opts]),
            case Cur of
                none when not Mk -> {ok, S};
                _ ->
                    {E, M} = case Cur of none -> {[], empty_meta()}; _ -> Cur end,
                    Group = #{name => G, last_delivered_id => group_id(Id, M),
                              entries_read => entries_read(Opts),
                              pending => [], consumers => []},
                    Gs = maps:get(groups, M, []),
                    case lists:any(fun(X) -> maps:get(name, X) =:= G end, Gs) of
                        true -> {ok, S};
                        false -> {ok, put(K, E, M#{groups => Gs ++ [Group]}, S)}
                    end
            end;
        {_, none, _} -> {ok, S};
        {<<"setid">>, {E, M}, [G, Id | Opts]} ->
            {ok, put(K, E, update_group(G, M, fun(X) ->
                                                     X#{last_delivered_id => group_id(Id, M),
                                                        entries_read => entries_read(Opts)}
                                             end), S)};
        {<<"destroy">>, {E, M}, [G]} ->
            {ok, put(K, E, M#{groups => [X || X <- maps:get(groups, M, []), maps:get(name, X) =/= G]}, S)};
        {<<"createconsumer">>, {E, M}, [G, C]} ->
            {ok, put(K, E, update_group(G, M, fun(X) -> ensure_consumer(X, C, Now) end), S)};
        {<<"delconsumer">>, {E, M}, [G, C]} ->
            {ok, put(K, E, update_group(G, M, fun(X) -> del_consumer(X, C) end), S)}
    end.

ensure_consumer(G, C, Now) ->
    Cs = maps:get(consumers, G, []),
    case lists:any(fun(X) -> maps:get(name, X) =:= C end, Cs) of
        true -> G;
        false -> G#{consumers => Cs ++ [#{name => C, seen_time => Now, active_time => -1, pending => []}]}
    end.

del_consumer(G, C) ->
    Cs = maps:get(consumers, G, []),
    Mine = lists:append([maps:get(pending, X, []) || X <- Cs, maps:get(name, X) =:= C]),
    G#{consumers => [X || X <- Cs, maps:get(name, X) =/= C],
       pending => [P || {I, _, _} = P <- maps:get(pending, G, []), not lists:member(I, Mine)]}.

%% @doc XACK key group id [id ...].
-spec xack([binary()], store(), integer()) -> result().
xack([K, G | Ids0], S, _) ->
    case get(K, S) of
        none -> {ok, S};
        {E, M} ->
            Ids = [parse_id(I) || I <- Ids0],
            {ok, put(K, E, update_group(G, M, fun(X) -> unpend(X, Ids) end), S)}
    end.

%% The group without the pending entries `Ids' (acknowledged, or their
%% references dropped).
unpend(G, Ids) ->
    G#{pending => [P || {I, _, _} = P <- maps:get(pending, G, []), not lists:member(I, Ids)],
       consumers => [C#{pending => [I || I <- maps:get(pending, C, []), not lists:member(I, Ids)]}
                     || C <- maps:get(consumers, G, [])]}.

%% @doc XCLAIM key group consumer min-idle id [id ...] [IDLE ms] [TIME ms]
%% [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id] (also how XREADGROUP and
%% XAUTOCLAIM are propagated).
-spec xclaim([binary()], store(), integer()) -> result().
xclaim([K, G, C, _MinIdle | Rest], S, Now) ->
    case get(K, S) of
        none -> {ok, S};
        {E, M} ->
            {IdArgs, Opts0} = lists:splitwith(fun(A) -> is_id(A) end, Rest),
            Ids = [parse_id(I) || I <- IdArgs],
            Opts = claim_opts(Opts0, #{}),
            Time = case Opts of
                       #{time := T} -> T;
                       #{idle := Idle} -> Now - Idle;
                       _ -> Now
                   end,
            Exists = maps:from_list([{I, x} || {I, _} <- E]),
            F = fun(Grp0) ->
                        Grp1 = ensure_consumer(Grp0, C, Now),
                        Grp = lists:foldl(fun(I, Gx) -> claim_one(Gx, I, C, Time, Opts, Exists) end, Grp1, Ids),
                        case Opts of
                            #{lastid := L} ->
                                case L > maps:get(last_delivered_id, Grp) of
                                    true -> Grp#{last_delivered_id => L, entries_read => read_to(Grp, L, M)};
                                    false -> Grp
                                end;
                            _ -> Grp
                        end
                end,
            {ok, put(K, E, update_group(G, M, F), S)}
    end.

%% A group's entries-read counter once it has read up to `Id', as
%% XREADGROUP's loop in t_stream.c counts it: one more when the counter is
%% known and no deleted entry may lie after `Id', else the master's
%% estimate. Only XREADGROUP moves the last id forward with LASTID (as the
%% XCLAIM it is propagated as): a Redis 7.0 replica leaves the counter
%% unknown there, while the master counts, and Valkey propagates the
%% count afterwards (XGROUP SETID ... ENTRIESREAD).
read_to(G, Id, M) ->
    Read = maps:get(entries_read, G, undefined),
    case {is_integer(Read) andalso not has_tombstones(Id, M), maps:get(entries_added, M, undefined)} of
        {true, _} -> Read + 1;
        {false, Added} when is_integer(Added), Added > 0 -> estimate_read(Id, M);
        _ -> Read
    end.

%% streamRangeHasTombstones(s, Id, NULL): a deleted entry may lie at or
%% after `Id'.
has_tombstones(Id, M) ->
    case M of
        #{length := Len, max_deleted_id := Del, first_id := First}
          when Len > 0, Del =/= undefined, Del =/= {0, 0}, First =/= undefined ->
            First =< Del andalso Id =< Del;
        _ -> false
    end.

%% streamEstimateDistanceFromFirstEverEntry(s, Id): the number of entries
%% added up to `Id', or `undefined' when deletions hide it.
estimate_read(Id, #{entries_added := Added, length := Len, last_id := Last} = M) when is_integer(Added) ->
    First = maps:get(first_id, M, undefined),
    Del = maps:get(max_deleted_id, M, undefined),
    if
        Len =:= 0, Id =< Last -> Added;
        Id =:= Last -> Added;
        Id > Last -> undefined;
        First =:= undefined -> undefined;
        Del =:= undefined; Del =:= {0, 0}; Del < First ->
            if
                Id < First -> Added - Len;
                Id =:= First -> Added - Len + 1;
                true -> undefined
            end;
        true -> undefined
    end;
estimate_read(_, _) -> undefined.

is_id(A) ->
    try parse_id(A), true
    catch _:_ -> false
    end.

claim_opts([], O) -> O;
claim_opts([A | Rest], O) ->
    case {lower(A), Rest} of
        {<<"idle">>, [V | R]} -> claim_opts(R, O#{idle => to_int(V)});
        {<<"time">>, [V | R]} -> claim_opts(R, O#{time => to_int(V)});
        {<<"retrycount">>, [V | R]} -> claim_opts(R, O#{retrycount => to_int(V)});
        {<<"force">>, R} -> claim_opts(R, O#{force => true});
        {<<"justid">>, R} -> claim_opts(R, O#{justid => true});
        {<<"lastid">>, [V | R]} -> claim_opts(R, O#{lastid => parse_id(V)})
    end.

claim_one(G, I, C, Time, Opts, Exists) ->
    Pel = maps:get(pending, G, []),
    Cur = lists:keyfind(I, 1, Pel),
    case {Cur, is_map_key(I, Exists)} of
        {_, false} ->
            %% the entry is gone: Redis drops it from the PEL
            unpend(G, [I]);
        {false, true} when not is_map_key(force, Opts) -> G;
        {_, true} ->
            Count0 = case Cur of false -> 0; {_, _, N} -> N end,
            Count = case Opts of
                        #{retrycount := RC} -> RC;
                        #{justid := true} -> Count0;
                        _ -> Count0 + 1
                    end,
            G1 = unpend(G, [I]),
            Pel2 = lists:keysort(1, [{I, Time, Count} | maps:get(pending, G1)]),
            Cs = [case maps:get(name, X) of
                      C -> X#{pending => lists:sort([I | maps:get(pending, X, [])])};
                      _ -> X
                  end || X <- maps:get(consumers, G1)],
            G1#{pending => Pel2, consumers => Cs}
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

run(F, Args, S) -> {ok, R} = ?MODULE:F([<<"s">> | Args], S, 5000), R.
entries(S) -> {stream, E, _} = value(<<"s">>, S), E.
meta(S) -> {stream, _, M} = value(<<"s">>, S), M.
three() ->
    lists:foldl(fun(I, S) -> run(xadd, [I, <<"f">>, I], S) end, #{}, [<<"1-1">>, <<"2-0">>, <<"3-5">>]).

xadd_test_() ->
    S = three(),
    [?_assertEqual([{{1, 1}, [<<"f">>, <<"1-1">>]}, {{2, 0}, [<<"f">>, <<"2-0">>]}, {{3, 5}, [<<"f">>, <<"3-5">>]}], entries(S)),
     ?_assertMatch(#{last_id := {3, 5}, length := 3, entries_added := 3, first_id := {1, 1}}, meta(S)),
     ?_assertEqual({3, 6}, element(1, lists:last(entries(run(xadd, [<<"3-*">>, <<"a">>, <<"b">>], S))))),
     %% a stream loaded from a pre-7.0 snapshot has no entries_added
     ?_assertMatch(#{length := 4, entries_added := undefined},
                   meta(run(xadd, [<<"4-0">>, <<"a">>, <<"b">>],
                            #{<<"s">> => {{stream, entries(S), (meta(S))#{entries_added := undefined}},
                                          undefined, #{}}}))),
     ?_assertEqual({5000, 0}, element(1, lists:last(entries(run(xadd, [<<"*">>, <<"a">>, <<"b">>], S))))),
     ?_assertEqual(#{}, run(xadd, [<<"NOMKSTREAM">>, <<"1-1">>, <<"a">>, <<"b">>], #{})),
     ?_assertEqual([{2, 0}, {3, 5}, {4, 0}],
                   [I || {I, _} <- entries(run(xadd, [<<"MAXLEN">>, <<"~">>, <<"3">>, <<"4">>, <<"a">>, <<"b">>], S))]),
     ?_assertMatch(#{length := 2, first_id := {3, 5}, entries_added := 4},
                   meta(run(xadd, [<<"MINID">>, <<"3">>, <<"LIMIT">>, <<"10">>, <<"4-0">>, <<"a">>, <<"b">>], S)))].

xdel_trim_test_() ->
    S = three(),
    [?_assertEqual([{1, 1}, {3, 5}], [I || {I, _} <- entries(run(xdel, [<<"2-0">>, <<"9-9">>], S))]),
     ?_assertMatch(#{length := 2, max_deleted_id := {2, 0}}, meta(run(xdel, [<<"2-0">>], S))),
     %% a stream emptied by XDEL stays
     ?_assertEqual([], entries(run(xdel, [<<"1-1">>, <<"2-0">>, <<"3-5">>], S))),
     ?_assertEqual([{3, 5}], [I || {I, _} <- entries(run(xtrim, [<<"MAXLEN">>, <<"1">>], S))]),
     ?_assertEqual([{2, 0}, {3, 5}], [I || {I, _} <- entries(run(xtrim, [<<"minid">>, <<"=">>, <<"2">>], S))]),
     ?_assertMatch(#{last_id := {9, 9}, entries_added := 10},
                   meta(run(xsetid, [<<"9-9">>, <<"ENTRIESADDED">>, <<"10">>], S)))].

group_test_() ->
    S0 = three(),
    S1 = xg([<<"CREATE">>, <<"s">>, <<"g">>, <<"$">>], S0),
    [G] = maps:get(groups, meta(S1)),
    S2 = run(xclaim, [<<"g">>, <<"alice">>, <<"0">>, <<"1-1">>, <<"2-0">>, <<"TIME">>, <<"77">>,
                      <<"RETRYCOUNT">>, <<"1">>, <<"FORCE">>, <<"JUSTID">>, <<"LASTID">>, <<"2-0">>], S1),
    [G2] = maps:get(groups, meta(S2)),
    S3 = run(xack, [<<"g">>, <<"1-1">>], S2),
    [G3] = maps:get(groups, meta(S3)),
    [?_assertMatch(#{name := <<"g">>, last_delivered_id := {3, 5}, pending := []}, G),
     ?_assertMatch(#{pending := [{{1, 1}, 77, 1}, {{2, 0}, 77, 1}], last_delivered_id := {3, 5},
                     consumers := [#{name := <<"alice">>, pending := [{1, 1}, {2, 0}]}]}, G2),
     ?_assertMatch(#{pending := [{{2, 0}, 77, 1}], consumers := [#{pending := [{2, 0}]}]}, G3),
     ?_assertMatch([#{consumers := []}], maps:get(groups, meta(xg([<<"DELCONSUMER">>, <<"s">>, <<"g">>, <<"alice">>], S3)))),
     ?_assertMatch([], maps:get(groups, meta(xg([<<"destroy">>, <<"s">>, <<"g">>], S3)))),
     ?_assertMatch([#{last_delivered_id := {1, 0}}],
                   maps:get(groups, meta(xg([<<"SETID">>, <<"s">>, <<"g">>, <<"1">>], S3)))),
     ?_assertMatch({stream, [], #{groups := [#{name := <<"g">>}]}},
                   value(<<"s">>, xg([<<"CREATE">>, <<"s">>, <<"g">>, <<"$">>, <<"MKSTREAM">>], #{})))].

xg(Args, S) -> {ok, R} = xgroup(Args, S, 5000), R.

%% A group's entries-read: unknown when created (even at `$') or set
%% without ENTRIESREAD; XREADGROUP's propagated XCLAIM ... LASTID counts
%% as the master does (one more, or estimated from the stream's counters;
%% unknown when a deletion may lie after the id).
entries_read_test_() ->
    S0 = three(),
    Read = fun(S) -> [#{entries_read := R}] = maps:get(groups, meta(S)), R end,
    Claim = fun(Id, S) -> run(xclaim, [<<"g">>, <<"alice">>, <<"0">>, Id, <<"TIME">>, <<"7">>, <<"RETRYCOUNT">>,
                                       <<"1">>, <<"FORCE">>, <<"JUSTID">>, <<"LASTID">>, Id], S)
            end,
    At0 = xg([<<"CREATE">>, <<"s">>, <<"g">>, <<"0">>], S0),
    [?_assertEqual(undefined, Read(xg([<<"CREATE">>, <<"s">>, <<"g">>, <<"$">>], S0))),
     ?_assertEqual(undefined, Read(At0)),
     ?_assertEqual(2, Read(xg([<<"SETID">>, <<"s">>, <<"g">>, <<"0">>, <<"ENTRIESREAD">>, <<"2">>], At0))),
     ?_assertEqual(undefined, Read(xg([<<"SETID">>, <<"s">>, <<"g">>, <<"0">>, <<"ENTRIESREAD">>, <<"-1">>], At0))),
     %% estimated at the first entry, then counted
     ?_assertEqual(1, Read(Claim(<<"1-1">>, At0))),
     ?_assertEqual(2, Read(Claim(<<"2-0">>, Claim(<<"1-1">>, At0)))),
     %% the last entry's count is entries-added
     ?_assertEqual(3, Read(Claim(<<"3-5">>, At0))),
     %% after a deletion past the first entry, unknown until the last one
     ?_assertEqual(undefined, Read(Claim(<<"1-1">>, run(xdel, [<<"2-0">>], At0)))),
     ?_assertEqual(3, Read(Claim(<<"3-5">>, Claim(<<"1-1">>, run(xdel, [<<"2-0">>], At0)))))].

%% Redis 8.2: deleting entries with or without their group references.
refs_test_() ->
    Pel = [{{1, 0}, 7, 1}, {{2, 0}, 7, 1}],
    G = #{name => <<"g">>, last_delivered_id => {2, 0}, entries_read => 2, pending => Pel,
          consumers => [#{name => <<"c">>, seen_time => 7, active_time => 7,
                          pending => [{1, 0}, {2, 0}]}]},
    E = [{{1, 0}, [<<"f">>, <<"a">>]}, {{2, 0}, [<<"f">>, <<"b">>]}, {{3, 0}, [<<"f">>, <<"c">>]}],
    S = #{<<"s">> => {{stream, E, (empty_meta())#{last_id := {3, 0}, length := 3,
                                                  first_id := {1, 0}, groups := [G]}},
                      undefined, #{}}},
    Run = fun(F, Args) -> {ok, #{<<"s">> := {{stream, E2, M}, _, _}}} = ?MODULE:F([<<"s">> | Args], S, 9),
                          [#{pending := P, consumers := [#{pending := CP}]}] = maps:get(groups, M),
                          {[I || {I, _} <- E2], [I || {I, _, _} <- P], CP}
          end,
    [?_assertEqual({[{2, 0}, {3, 0}], [{1, 0}, {2, 0}], [{1, 0}, {2, 0}]},
                   Run(xdelex, [<<"IDS">>, <<"1">>, <<"1-0">>])),
     ?_assertEqual({[{2, 0}, {3, 0}], [{2, 0}], [{2, 0}]},
                   Run(xdelex, [<<"DELREF">>, <<"IDS">>, <<"1">>, <<"1-0">>])),
     ?_assertEqual({[{1, 0}, {3, 0}], [{1, 0}], [{1, 0}]},
                   Run(xackdel, [<<"g">>, <<"KEEPREF">>, <<"IDS">>, <<"1">>, <<"2-0">>])),
     ?_assertEqual({[{3, 0}], [], []}, Run(xtrim, [<<"MAXLEN">>, <<"1">>, <<"DELREF">>])),
     ?_assertEqual({[{2, 0}, {3, 0}], [{1, 0}, {2, 0}], [{1, 0}, {2, 0}]},
                   Run(xtrim, [<<"MINID">>, <<"=">>, <<"2">>, <<"LIMIT">>, <<"0">>])),
     ?_assertEqual({[{2, 0}, {3, 0}, {4, 0}], [{2, 0}], [{2, 0}]},
                   Run(xadd, [<<"DELREF">>, <<"MAXLEN">>, <<"3">>, <<"4-0">>, <<"f">>, <<"d">>])),
     %% XACKDEL deletes only what was pending in the group
     ?_assertEqual({[{1, 0}, {3, 0}], [{1, 0}], [{1, 0}]},
                   Run(xackdel, [<<"g">>, <<"IDS">>, <<"2">>, <<"3-0">>, <<"2-0">>])),
     ?_assertEqual({[{1, 0}, {2, 0}, {3, 0}], [{1, 0}, {2, 0}], [{1, 0}, {2, 0}]},
                   Run(xackdel, [<<"nogroup">>, <<"IDS">>, <<"1">>, <<"1-0">>]))].

%% Redis 8.2's ACKED: an entry is deleted only when no group references it
%% (every group has read it and none has it pending).
acked_test_() ->
    G = fun(Name, Last, Pel) ->
                #{name => Name, last_delivered_id => Last, entries_read => 2,
                  pending => [{I, 7, 1} || I <- Pel],
                  consumers => [#{name => <<"c">>, seen_time => 7, active_time => 7, pending => Pel}]}
        end,
    E = [{{N, 0}, [<<"f">>, <<"v">>]} || N <- [1, 2, 3]],
    S = fun(Groups) ->
                #{<<"s">> => {{stream, E, (empty_meta())#{last_id := {3, 0}, length := 3,
                                                          first_id := {1, 0}, groups := Groups}},
                              undefined, #{}}}
        end,
    One = S([G(<<"g">>, {2, 0}, [{1, 0}, {2, 0}])]),
    Ids = fun(F, Args, St) -> {ok, #{<<"s">> := {{stream, E2, M}, _, _}}} = ?MODULE:F([<<"s">> | Args], St, 9),
                              {[I || {I, _} <- E2], [[I || {I, _, _} <- maps:get(pending, X)]
                                                     || X <- maps:get(groups, M)]}
          end,
    [%% pending, then unread: both referenced
     ?_assertEqual({[{1, 0}, {2, 0}, {3, 0}], [[{1, 0}, {2, 0}]]},
                   Ids(xdelex, [<<"ACKED">>, <<"IDS">>, <<"2">>, <<"1-0">>, <<"3-0">>], One)),
     %% no group: nothing is referenced
     ?_assertEqual({[{2, 0}, {3, 0}], []}, Ids(xdelex, [<<"acked">>, <<"IDS">>, <<"1">>, <<"1-0">>], S([]))),
     %% acknowledged, read by every group: deleted
     ?_assertEqual({[{2, 0}, {3, 0}], [[{2, 0}]]},
                   Ids(xackdel, [<<"g">>, <<"ACKED">>, <<"IDS">>, <<"1">>, <<"1-0">>], One)),
     %% another group has not read it: acknowledged here, kept
     ?_assertEqual({[{1, 0}, {2, 0}, {3, 0}], [[{2, 0}], []]},
                   Ids(xackdel, [<<"g">>, <<"ACKED">>, <<"IDS">>, <<"1">>, <<"1-0">>],
                       S([G(<<"g">>, {2, 0}, [{1, 0}, {2, 0}]), G(<<"h">>, {0, 0}, [])]))),
     %% ... or has it pending
     ?_assertEqual({[{1, 0}, {2, 0}, {3, 0}], [[{2, 0}], [{1, 0}]]},
                   Ids(xackdel, [<<"g">>, <<"ACKED">>, <<"IDS">>, <<"1">>, <<"1-0">>],
                       S([G(<<"g">>, {2, 0}, [{1, 0}, {2, 0}]), G(<<"h">>, {3, 0}, [{1, 0}])]))),
     %% trims skip what is referenced
     ?_assertEqual({[{1, 0}, {2, 0}, {3, 0}], [[{1, 0}, {2, 0}]]},
                   Ids(xtrim, [<<"MINID">>, <<"=">>, <<"3-0">>, <<"ACKED">>], One)),
     ?_assertEqual({[{1, 0}, {3, 0}], [[{1, 0}]]},
                   Ids(xtrim, [<<"MINID">>, <<"3-0">>, <<"ACKED">>], S([G(<<"g">>, {3, 0}, [{1, 0}])]))),
     ?_assertEqual({[{2, 0}, {3, 0}], [[{2, 0}]]},
                   Ids(xtrim, [<<"MAXLEN">>, <<"=">>, <<"1">>, <<"ACKED">>], S([G(<<"g">>, {2, 0}, [{2, 0}])]))),
     ?_assertEqual({[{1, 0}, {2, 0}, {3, 0}, {4, 0}], [[{1, 0}, {2, 0}]]},
                   Ids(xadd, [<<"ACKED">>, <<"MAXLEN">>, <<"3">>, <<"4-0">>, <<"f">>, <<"v">>], One)),
     %% a MAXLEN trim that would delete past a kept entry depends on the
     %% master's node layout: unhandled
     ?_assertError({trim_depends_on_node_layout, {2, 0}},
                   Ids(xtrim, [<<"MAXLEN">>, <<"1">>, <<"ACKED">>], S([G(<<"g">>, {3, 0}, [{1, 0}])])))].
-endif.
