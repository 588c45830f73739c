%%% @doc Applies a master's command stream to an ETS mirror
%%% (`nsync_mirror').
%%%
%%% Commands are applied through the table of `nsync_cmd': for each command
%%% the keys it touches are read from the mirror, the pure handler runs on
%%% their entries (`nsync_cmd_big' when a big value is among them), and what
%%% changed is written back, a value that grew past the mirror's threshold
%%% as a big value. The commands the table marks `cross_db' (MOVE, COPY ...
%%% DB, SWAPDB, FLUSHDB, FLUSHALL, TRIMSLOTS, CLUSTER FLUSHSLOT) are carried
%%% out here across the mirror's databases. A command that cannot be
%%% applied faithfully (modules, unknown names, a value the mirror does not
%%% know) returns `{unhandled, Cmd, Mirror}' and the keys it touched become
%%% unknown (`nsync_mirror:forget/3') until a command overwrites them, so
%%% readers see such keys as absent, never with a wrong value.
%%%
%%% With a key filter, a command may also name keys the mirror leaves out
%%% (`apply_cmd/5'): their values are unknown too, but they are never
%%% stored nor remembered. A command with unknown keys sets what it can
%%% still compute: keys it only reads keep their values, the source of a
%%% move (RENAME, SMOVE, LMOVE ...) its own new value when it is known, the
%%% destination of a RENAME from a known key that key's value; any other
%%% key it writes becomes unknown (`nsync_cmd:roles/1').
-module(nsync_apply).

-include("nsync_log.hrl").

-export([apply_cmd/4, apply_cmd/5, apply_sets/3]).

-type mirror() :: nsync_mirror:mirror().
-type db() :: non_neg_integer().

%% @doc Applies one command of the stream, run in database `Db'. `Cmd' is
%% the command name (any case), `Args' its arguments.
-spec apply_cmd(mirror(), db(), binary(), [binary()]) ->
          {ok, mirror()} | {unhandled, binary(), mirror()}.
apply_cmd(M, Db, Cmd, Args) ->
    apply_cmd(M, Db, Cmd, Args, []).

%% @doc Applies a command some of whose keys, `Filtered', a key filter
%% leaves out of the mirror: their values are unknown, and they are never
%% stored (see the module doc). `{unhandled, Cmd, Mirror}' when a key the
%% mirror keeps became unknown.
-spec apply_cmd(mirror(), db(), binary(), [binary()], [binary()]) ->
          {ok, mirror()} | {unhandled, binary(), mirror()}.
apply_cmd(M, Db, Cmd0, Args, Filtered) ->
    Cmd = nsync_cmd_lib:lower(Cmd0),
    Spec = nsync_cmd:spec(Cmd),
    try
        dispatch(M, Db, Cmd, Args, Spec, Filtered)
    catch
        Class:Reason:Stack ->
            logger:debug(#{what => mirror_apply_failed, cmd => Cmd, class => Class,
                           reason => Reason, stack => Stack}, ?NSYNC_LOG),
            {unhandled, Cmd, nsync_mirror:forget(M, Db, safe_keys(Spec, Args) -- Filtered)}
    end.

%% @doc Applies a run of plain SETs (`SET Key Value', no options) of the
%% stream, run in database `Db', in order: what `apply_cmd/4' does for each,
%% without the dispatch per command (the commonest stream on a busy master).
%% Each value replaces the key's and drops its TTL; with no expiry row in
%% the db (the usual case) there is nothing to drop.
-spec apply_sets(mirror(), db(), [{binary(), binary()}]) -> {ok, mirror()}.
apply_sets(M0, Db, Rows) ->
    case nsync_mirror:mirrored(M0, Db) andalso nsync_mirror:all_known(M0, Db) of
        true ->
            {M, {_, Exp} = Tabs} = nsync_mirror:tabs(M0, Db),
            sets(Rows, Tabs, nsync_mirror:limits(M), ets:info(Exp, size) =:= 0),
            {ok, M};
        false ->
            %% not mirrored (each SET is ignored), or keys unknown in this
            %% db (each SET makes its key known): one by one
            {ok, lists:foldl(fun({K, V}, Acc) ->
                                     {ok, Acc1} = apply_cmd(Acc, Db, <<"set">>, [K, V]),
                                     Acc1
                             end, M0, Rows)}
    end.

sets([], _Tabs, _Limits, _NoExpiries) -> ok;
sets([{K, V} | Rest], {Data, _} = Tabs, Limits, true) when Limits =:= off;
                                                          byte_size(V) =< map_get(bytes, Limits) ->
    ets:insert(Data, {K, V}),
    sets(Rest, Tabs, Limits, true);
sets([{K, V} | Rest], Tabs, Limits, NoExpiries) ->
    %% an expiry row may need dropping, or the value becomes a big value
    %% (whose expiry row holds its handle)
    Stored = nsync_big:promote(string, V, Limits),
    nsync_mirror:write(Tabs, K, {Stored, undefined, #{}}),
    sets(Rest, Tabs, Limits, NoExpiries andalso not is_reference(Stored)).

%% The keys to drop when a command failed: by its key spec if that can be
%% read, else its first argument.
safe_keys(#{keys := KS}, Args) ->
    try nsync_cmd:keys(KS, Args)
    catch _:_ -> first_arg(Args)
    end;
safe_keys(undefined, Args) -> first_arg(Args).

first_arg([K | _]) -> [K];
first_arg([]) -> [].

dispatch(M, _Db, _Cmd, _Args, #{run := ignore}, _Out) -> {ok, M};
dispatch(M, Db, Cmd, Args, #{cross_db := Op} = Spec, Out) -> cross(Op, M, Db, Cmd, Args, Spec, Out);
dispatch(M, Db, Cmd, Args, Spec, Out) -> dispatch_local(M, Db, Cmd, Args, Spec, Out).

dispatch_local(M, Db, Cmd, Args, Spec, Out) ->
    case nsync_mirror:mirrored(M, Db) of
        false -> {ok, M};
        true -> local(M, Db, Cmd, Args, Spec, Out)
    end.

local(M, Db, Cmd, Args, undefined, Out) ->
    {unhandled, Cmd, nsync_mirror:forget(M, Db, first_arg(Args) -- Out)};
local(M, Db, Cmd, Args, #{run := unhandled, keys := KS}, Out) ->
    {unhandled, Cmd, nsync_mirror:forget(M, Db, nsync_cmd:keys(KS, Args) -- Out)};
local(M0, Db, <<"set">>, [K, V], Spec, []) ->
    case nsync_mirror:all_known(M0, Db) of
        true ->
            %% The commonest command, without options and with nothing
            %% unknown in the db: the value is replaced and any TTL dropped,
            %% whatever was there.
            {M, Tabs} = nsync_mirror:tabs(M0, Db),
            Value = nsync_big:promote(string, V, nsync_mirror:limits(M)),
            nsync_mirror:write(Tabs, K, {Value, undefined, #{}}),
            {ok, M};
        false ->
            run(M0, Db, <<"set">>, [K, V], Spec, [])
    end;
local(M, Db, Cmd, Args, #{keys := first, run := Run} = Spec, []) when is_function(Run, 3) ->
    case nsync_mirror:all_known(M, Db) of
        true -> run_one(M, Db, Cmd, Args, Spec);
        false -> run(M, Db, Cmd, Args, Spec, [])
    end;
local(M, Db, Cmd, Args, Spec, Out) ->
    run(M, Db, Cmd, Args, Spec, Out).

%% `run/6' for the commonest commands (HSET, SADD, ZADD, LPUSH, INCR ...):
%% one key, nothing unknown in the db, no big value, so the store is that
%% key's entry and only it can change. What `run/6' does, without its
%% work for several keys, unknown keys and big values (a third of the time
%% of a small collection's write).
run_one(M0, Db, Cmd, [K | _] = Args, #{run := Run} = Spec) ->
    {M, Tabs} = nsync_mirror:tabs(M0, Db),
    case nsync_mirror:read(Tabs, K) of
        {V, _, _} when is_reference(V) ->
            run(M, Db, Cmd, Args, Spec, []);
        Old ->
            Store = case Old of
                        none -> #{};
                        _ -> #{K => Old}
                    end,
            case Run(Args, Store, context(Spec, M)) of
                unhandled ->
                    {unhandled, Cmd, nsync_mirror:forget(M, Db, [K])};
                {ok, Store2} when map_size(Store2) =< 1 ->
                    New = case Store2 of
                              #{K := E} -> sized(nsync_cmd_lib:finish(E), kind_of(Run),
                                                 nsync_mirror:limits(M));
                              _ -> delete
                          end,
                    case {Old, New} of
                        {Same, Same} -> ok;
                        {none, delete} -> ok;
                        _ -> nsync_mirror:replace(Tabs, K, Old, New)
                    end,
                    {ok, M};
                {ok, Store2} ->
                    _ = commit(Tabs, Store, Store2, kind_of(Run), nsync_mirror:limits(M)),
                    {ok, M}
            end
    end.

%% A handler's third argument: the time, or the settings with it.
context(#{settings := true}, M) ->
    (nsync_mirror:settings(M))#{now => erlang:system_time(millisecond)};
context(_Spec, _M) ->
    erlang:system_time(millisecond).

%% Runs a command's handler on the entries of the keys it names and writes
%% back what changed.
run(M0, Db, Cmd, Args, #{keys := KS, run := Run} = Spec, Out) ->
    Named = nsync_cmd:keys(KS, Args),
    Keys = lists:usort(Named),
    {M, Tabs} = nsync_mirror:tabs(M0, Db),
    Limits = nsync_mirror:limits(M),
    Unknown = [K || K <- Keys, lists:member(K, Out) orelse nsync_mirror:is_unknown(M, Db, Tabs, K)],
    Store = maps:from_list([{K, E} || K <- Keys, not lists:member(K, Unknown),
                                      (E = nsync_mirror:read(Tabs, K)) =/= none]),
    Context = context(Spec, M),
    Result = case has_big(Store) of
                 false -> Run(Args, Store, Context);
                 true -> nsync_cmd_big:run(Spec, Args, Store, Context)
             end,
    case Result of
        unhandled ->
            {unhandled, Cmd, nsync_mirror:forget(M, Db, Keys -- Out)};
        {ok, Store2} when Unknown =:= [] ->
            _ = commit(Tabs, Store, Store2, kind_of(Run), Limits),
            {ok, M};
        {ok, Store2} ->
            case nsync_cmd:overwrites(Spec, Args) of
                true ->
                    %% it sets its keys whatever they held: they are known now
                    _ = commit(Tabs, Store, maps:without(Out, Store2), kind_of(Run), Limits),
                    {ok, nsync_mirror:learn(M, Db, Unknown -- Out)};
                false ->
                    Commit = fun(Known) -> commit(Tabs, maps:with(Known, Store),
                                                  maps:with(Known, Store2), kind_of(Run), Limits)
                             end,
                    partly_known(M, Db, Cmd, Named, Unknown, Out, Commit)
            end
    end.

%% A command some of whose keys are unknown: only what does not depend on
%% them is written (see the module doc); the other keys it may write
%% become unknown.
partly_known(M0, Db, Cmd, Named, Unknown, Out, Commit) ->
    Roles = nsync_cmd:roles(Cmd),
    Known = case {Roles, Named} of
                {moves, [Source | _]} -> [Source || not lists:member(Source, Unknown)];
                {renames, [Source, Dest]} ->
                    case lists:member(Source, Unknown) of
                        true -> [];
                        false -> [Source | [Dest || not lists:member(Dest, Out)]]
                    end;
                _ -> []
            end,
    Uncertain = lists:usort(Named) -- (read_only(Roles, Named) ++ Known ++ Out),
    _ = Commit(Known),
    %% a destination set whole from a known source is known again
    M = nsync_mirror:learn(M0, Db, [K || K <- Known, lists:member(K, Unknown)]),
    case Uncertain of
        [] -> {ok, M};
        _ -> {unhandled, Cmd, nsync_mirror:forget(M, Db, Uncertain)}
    end.

%% The keys a command only reads (a key it also writes is not one).
read_only({reads, Which}, Named) ->
    Read = case {Which, Named} of
               {first, [K | _]} -> [K];
               {second, [_, K | _]} -> [K];
               {rest, [_ | Ks]} -> Ks;
               {all, Ks} -> Ks;
               _ -> []
           end,
    Read -- (Named -- Read);
read_only(_Roles, _Named) ->
    [].

has_big(Store) ->
    lists:any(fun({V, _, _}) -> is_reference(V) end, maps:values(Store)).

%% The type of the values a handler writes (for turning a value that grew
%% past the threshold into a big value); `none' for generic commands, whose
%% results are kept as they come.
kind_of(Run) ->
    case erlang:fun_info(Run, module) of
        {module, nsync_cmd_string} -> string;
        {module, nsync_cmd_list} -> list;
        {module, nsync_cmd_set} -> set;
        {module, nsync_cmd_zset} -> zset;
        {module, nsync_cmd_hash} -> hash;
        {module, nsync_cmd_stream} -> stream;
        _ -> none
    end.

%% Writes what changed between the two stores; returns the changed keys.
commit(Tabs, Old, New, Kind, Limits) ->
    Keys = lists:usort(maps:keys(Old) ++ maps:keys(New)),
    lists:foldl(fun(K, Acc) ->
                        O = maps:get(K, Old, none),
                        N = case New of
                                #{K := E} -> sized(nsync_cmd_lib:finish(E), Kind, Limits);
                                _ -> delete
                            end,
                        case {O, N} of
                            {X, X} -> Acc;
                            {none, delete} -> Acc;
                            _ -> nsync_mirror:write(Tabs, K, N), [K | Acc]
                        end
                end, [], Keys).

%% The entry to store for a value just written: a term over the limits
%% becomes a big value (a hash's field expiries go into it), a big value
%% that became empty is deleted, one that shrank becomes a term again.
sized(delete, _Kind, _Limits) -> delete;
sized({V, E, _F}, _Kind, Limits) when is_reference(V) ->
    case nsync_big:demote(V, Limits) of
        delete -> delete;
        V -> {V, E, #{}};
        {Term, FieldExpires} -> {Term, E, FieldExpires}
    end;
sized({V, E, F} = Entry, Kind, Limits) when Kind =/= none ->
    case nsync_big:promote(Kind, V, Limits) of
        V -> Entry;
        H ->
            [nsync_big:write(H, {hexpire, maps:to_list(F)}) || map_size(F) > 0],
            {H, E, #{}}
    end;
sized(Entry, _Kind, _Limits) -> Entry.

%%% ------------------------------------------------------------ cross-db

%% The operations of the commands the table marks `cross_db'.
cross(flushdb, M, Db, _Cmd, _Args, _Spec, _Out) ->
    {ok, nsync_mirror:clear_db(M, Db)};
cross(flushall, M, _Db, _Cmd, _Args, _Spec, _Out) ->
    {ok, nsync_mirror:clear_all(M)};
cross(move, M, Db, Cmd, [Key, T0], _Spec, _Out) ->
    %% a key filter keeps a name in every database or in none
    move(M, Cmd, Db, binary_to_integer(T0), Key);
cross(swapdb, M, _Db, Cmd, [A0, B0], _Spec, _Out) ->
    swapdb(M, Cmd, binary_to_integer(A0), binary_to_integer(B0));
cross(trim_slots, M, _Db, _Cmd, [_Ranges, N | Bounds], _Spec, _Out) ->
    %% TRIMSLOTS RANGES n start end ...: Redis 8.4 trims db 0
    Ranges = slot_ranges(lists:sublist(Bounds, 2 * binary_to_integer(N))),
    {ok, nsync_mirror:drop_slots(M, [0], fun(Slot) -> lists:any(fun({A, B}) -> Slot >= A andalso Slot =< B end, Ranges) end)};
cross(cluster, M, _Db, _Cmd, [Sub, Slot0 | _], _Spec, _Out) ->
    case nsync_cmd_lib:lower(Sub) of
        <<"flushslot">> ->
            Slot = binary_to_integer(Slot0),
            Dbs = [Db || {Db, _} <- nsync_mirror:dbs(M)],
            {ok, nsync_mirror:drop_slots(M, Dbs, fun(S) -> S =:= Slot end)};
        _ -> {ok, M}
    end;
cross(cluster, M, _Db, _Cmd, _Args, _Spec, _Out) -> {ok, M};
cross(copy, M, Db, Cmd, Args, Spec, Out) ->
    %% across databases only with a DB option naming another one
    case copy_db(Args) of
        {Target, Rest} when Target =/= Db -> copy_across(M, Cmd, Db, Target, Rest, Out);
        {_, Rest} -> dispatch_local(M, Db, Cmd, Rest, Spec, Out);
        none -> dispatch_local(M, Db, Cmd, Args, Spec, Out)
    end.

slot_ranges([A, B | Rest]) -> [{binary_to_integer(A), binary_to_integer(B)} | slot_ranges(Rest)];
slot_ranges([]) -> [].

%% MOVE is propagated only when it succeeded: the key left `From' and did
%% not exist in `To'.
move(M, _Cmd, From, From, _Key) -> {ok, M};
move(M0, Cmd, From, To, Key) ->
    case {nsync_mirror:mirrored(M0, From), nsync_mirror:mirrored(M0, To)} of
        {false, false} -> {ok, M0};
        {true, false} ->
            {M, Tabs} = nsync_mirror:tabs(M0, From),
            nsync_mirror:write(Tabs, Key, delete),
            {ok, nsync_mirror:learn(M, From, [Key])};
        {false, true} ->
            {unhandled, Cmd, nsync_mirror:forget(M0, To, [Key])};
        {true, true} ->
            {M1, FT} = nsync_mirror:tabs(M0, From),
            {M, TT} = nsync_mirror:tabs(M1, To),
            case nsync_mirror:is_unknown(M, From, FT, Key) of
                true ->
                    {unhandled, Cmd, nsync_mirror:forget(nsync_mirror:learn(M, From, [Key]), To, [Key])};
                false ->
                    case nsync_mirror:read(FT, Key) of
                        none -> {ok, M};
                        E ->
                            nsync_mirror:write(FT, Key, delete),
                            nsync_mirror:write(TT, Key, E),
                            {ok, nsync_mirror:learn(M, To, [Key])}
                    end
            end
    end.

%% COPY src dst DB n [REPLACE]: finds the DB option.
copy_db([Src, Dst | Opts]) -> copy_db(Opts, [Dst, Src]);
copy_db(_) -> none.

copy_db([O, N | Rest], Acc) ->
    case nsync_cmd_lib:lower(O) of
        <<"db">> -> {binary_to_integer(N), lists:reverse(Acc, Rest)};
        _ -> copy_db([N | Rest], [O | Acc])
    end;
copy_db(_, _) -> none.

%% COPY across databases is propagated only when it succeeded. A source
%% the key filter leaves out is unknown; a destination it leaves out is
%% not kept.
copy_across(M0, Cmd, From, To, [Src, Dst | _], Out) ->
    case {nsync_mirror:mirrored(M0, From) andalso not lists:member(Src, Out),
          nsync_mirror:mirrored(M0, To) andalso not lists:member(Dst, Out)} of
        {_, false} -> {ok, M0};
        {false, true} -> {unhandled, Cmd, nsync_mirror:forget(M0, To, [Dst])};
        {true, true} ->
            {M1, FT} = nsync_mirror:tabs(M0, From),
            {M, TT} = nsync_mirror:tabs(M1, To),
            case nsync_mirror:is_unknown(M, From, FT, Src) of
                true -> {unhandled, Cmd, nsync_mirror:forget(M, To, [Dst])};
                false ->
                    case nsync_mirror:read(FT, Src) of
                        none -> {ok, M};
                        {V, Exp, F} when is_reference(V) ->
                            nsync_mirror:write(TT, Dst, {nsync_big:copy(V), Exp, F}),
                            {ok, nsync_mirror:learn(M, To, [Dst])};
                        E -> nsync_mirror:write(TT, Dst, E), {ok, nsync_mirror:learn(M, To, [Dst])}
                    end
            end
    end.

swapdb(M, _Cmd, A, A) -> {ok, M};
swapdb(M, Cmd, A, B) ->
    case {nsync_mirror:mirrored(M, A), nsync_mirror:mirrored(M, B)} of
        {true, true} -> {ok, nsync_mirror:swap(M, A, B)};
        %% the other database's content is not mirrored: this one is now unknown
        {true, false} -> {unhandled, Cmd, nsync_mirror:all_unknown(M, A)};
        {false, true} -> {unhandled, Cmd, nsync_mirror:all_unknown(M, B)};
        {false, false} -> {ok, M}
    end.


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

ap(M, Db, Cmd) ->
    [C | A] = Cmd,
    {ok, M2} = apply_cmd(M, Db, C, A),
    M2.

%% A run of plain SETs leaves the tables as the same SETs one by one: TTLs
%% dropped, a long value made big, later values winning, other dbs ignored,
%% an unknown db's keys made known.
apply_sets_test() ->
    Limits = #{elements => 4, bytes => 8},
    Long = <<"0123456789">>,
    Before = [[<<"set">>, <<"t">>, <<"1">>, <<"px">>, <<"99999999">>], [<<"rpush">>, <<"l">>, <<"x">>]],
    Rows = [{<<"a">>, <<"1">>}, {<<"t">>, <<"2">>}, {<<"a">>, <<"3">>}, {<<"b">>, Long},
            {<<"l">>, <<"4">>}, {<<"c">>, <<"5">>}],
    Tables = fun(M) ->
                     [lists:sort([list_to_tuple([whole(X) || X <- tuple_to_list(R)])
                                  || R <- ets:tab2list(Tab)])
                      || Tab <- nsync_mirror:tables(M)]
             end,
    One = lists:foldl(fun({K, V}, Acc) -> ap(Acc, 0, [<<"set">>, K, V]) end,
                      lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end,
                                  nsync_mirror:new(one, 0, true, #{big_threshold => Limits}), Before), Rows),
    {ok, Run} = apply_sets(lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end,
                                       nsync_mirror:new(run, 0, true, #{big_threshold => Limits}), Before),
                           0, Rows),
    ?assertEqual(Tables(One), Tables(Run)),
    ?assertEqual({big, Long}, whole(element(2, hd(ets:lookup(nsync_mirror:tid(Run), <<"b">>))))),
    ?assertEqual(undefined, nsync_mirror:ttl(nsync_mirror:tid(Run), <<"t">>)),
    {ok, Run2} = apply_sets(Run, 1, [{<<"a">>, <<"other">>}]),
    ?assertEqual([{<<"a">>, <<"3">>}], ets:lookup(nsync_mirror:tid(Run2), <<"a">>)),
    ?assertEqual(undefined, nsync_mirror:tid(Run2, 1)),
    %% after an unhandled command its key is unknown; a SET makes it known
    {unhandled, _, Run3} = apply_cmd(Run2, 0, <<"nosuchcommand">>, [<<"u">>]),
    {ok, Run4} = apply_sets(Run3, 0, [{<<"u">>, <<"6">>}]),
    ?assertEqual([{<<"u">>, <<"6">>}], ets:lookup(nsync_mirror:tid(Run4), <<"u">>)),
    nsync_mirror:delete(One),
    nsync_mirror:delete(Run4).

%% A big value read whole (handles differ between tables), else the term.
whole(H) when is_reference(H) -> {big, nsync_big:value(H, erlang:system_time(millisecond))};
whole(X) -> X.

apply_test() ->
    M0 = nsync_mirror:new(t, 0),
    T = nsync_mirror:tid(M0),
    M = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                    [[<<"SET">>, <<"a">>, <<"1">>],
                     [<<"set">>, <<"b">>, <<"x">>, <<"PXAT">>, <<"99999999999999">>],
                     [<<"rpush">>, <<"l">>, <<"1">>, <<"2">>],
                     [<<"lpop">>, <<"l">>, <<"5">>],
                     [<<"multi">>],
                     [<<"incr">>, <<"a">>],
                     [<<"exec">>],
                     [<<"select">>, <<"3">>]]),
    ?assertEqual([{<<"a">>, <<"2">>}], ets:lookup(T, <<"a">>)),
    ?assertEqual(99999999999999, nsync_mirror:ttl(T, <<"b">>)),
    ?assertEqual([], ets:lookup(T, <<"l">>)),
    %% other dbs are ignored with {db, 0}
    M2 = ap(M, 1, [<<"set">>, <<"a">>, <<"other">>]),
    ?assertEqual([{<<"a">>, <<"2">>}], ets:lookup(T, <<"a">>)),
    M3 = ap(M2, 0, [<<"persist">>, <<"b">>]),
    ?assertEqual(undefined, nsync_mirror:ttl(T, <<"b">>)),
    M4 = ap(M3, 0, [<<"flushall">>]),
    ?assertEqual(0, ets:info(T, size)),
    nsync_mirror:delete(M4).

%% The commands of Redis 8.x and Valkey 8.1-9, in the forms their masters
%% propagate, through the command table.
newer_servers_test() ->
    M0 = nsync_mirror:new(t, 0),
    T = nsync_mirror:tid(M0),
    Cmds = [[<<"set">>, <<"k">>, <<"v1">>],
            [<<"set">>, <<"k">>, <<"v2">>, <<"IFEQ">>, <<"v1">>],
            [<<"set">>, <<"k">>, <<"no">>, <<"IFEQ">>, <<"v1">>],
            [<<"msetex">>, <<"2">>, <<"a">>, <<"1">>, <<"b">>, <<"2">>, <<"PXAT">>, <<"99999999999999">>],
            [<<"delifeq">>, <<"a">>, <<"1">>],
            [<<"delex">>, <<"b">>, <<"IFEQ">>, <<"other">>],
            [<<"hsetex">>, <<"h">>, <<"FNX">>, <<"PXAT">>, <<"99999999999999">>, <<"FIELDS">>, <<"2">>,
             <<"f">>, <<"1">>, <<"g">>, <<"2">>],
            [<<"hsetex">>, <<"h">>, <<"KEEPTTL">>, <<"FIELDS">>, <<"1">>, <<"f">>, <<"1.5">>],
            [<<"hpersist">>, <<"h">>, <<"FIELDS">>, <<"1">>, <<"g">>],
            [<<"hdel">>, <<"h">>, <<"g">>],
            [<<"setbit">>, <<"x">>, <<"0">>, <<"1">>],
            [<<"bitop">>, <<"DIFF">>, <<"y">>, <<"x">>, <<"k">>],
            [<<"xadd">>, <<"s">>, <<"1-0">>, <<"f">>, <<"v">>],
            [<<"xadd">>, <<"s">>, <<"2-0">>, <<"f">>, <<"v">>],
            [<<"xdelex">>, <<"s">>, <<"DELREF">>, <<"IDS">>, <<"1">>, <<"1-0">>],
            [<<"cluster">>, <<"setslot">>, <<"12">>, <<"node">>, <<"abc">>],
            [<<"pfadd">>, <<"p">>, <<"a">>, <<"b">>],
            [<<"pfcount">>, <<"p">>]],
    M = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0, Cmds),
    ?assertEqual([{<<"k">>, <<"v2">>}], ets:lookup(T, <<"k">>)),
    ?assertEqual([], ets:lookup(T, <<"a">>)),
    ?assertEqual([{<<"b">>, <<"2">>}], ets:lookup(T, <<"b">>)),
    ?assertEqual(99999999999999, nsync_mirror:ttl(T, <<"b">>)),
    ?assertEqual([{<<"h">>, #{<<"f">> => <<"1.5">>}}], ets:lookup(T, <<"h">>)),
    ?assertEqual(#{<<"f">> => 99999999999999}, nsync_mirror:field_ttls(T, <<"h">>)),
    ?assertEqual([{<<"y">>, <<128, 0>>}], ets:lookup(T, <<"y">>)),
    ?assertMatch([{<<"s">>, {stream, [{{2, 0}, _}], _}}], ets:lookup(T, <<"s">>)),
    ?assertMatch([{<<"p">>, <<"HYLL", 1, 0, 0, 0, 2, _/binary>>}], ets:lookup(T, <<"p">>)),
    nsync_mirror:delete(M).

%% SET and DELEX with value and digest conditions (Redis 8.4) on a big
%% string: the condition reads the value the handle holds.
conditions_on_big_strings_test() ->
    M0 = nsync_mirror:new(t, 0, true, #{big_threshold => 1}),
    T = nsync_mirror:tid(M0),
    Big = binary:copy(<<"x">>, 200000),
    Digest = nsync_nif:string_digest(Big),
    M1 = ap(M0, 0, [<<"set">>, <<"k">>, Big]),
    ?assertMatch([{<<"k">>, H}] when is_reference(H), ets:lookup(T, <<"k">>)),
    M2 = ap(M1, 0, [<<"set">>, <<"k">>, <<"no">>, <<"IFDNE">>, Digest]),
    M3 = ap(M2, 0, [<<"set">>, <<"k">>, <<"no">>, <<"IFEQ">>, <<"other">>]),
    ?assertEqual(Big, nsync_big:value(element(2, hd(ets:lookup(T, <<"k">>))), undefined)),
    M4 = ap(M3, 0, [<<"set">>, <<"k">>, <<"yes">>, <<"IFDEQ">>, Digest]),
    ?assertEqual([{<<"k">>, <<"yes">>}], ets:lookup(T, <<"k">>)),
    M5 = ap(M4, 0, [<<"set">>, <<"j">>, Big]),
    M6 = ap(M5, 0, [<<"delex">>, <<"j">>, <<"IFEQ">>, Big]),
    ?assertEqual([], ets:lookup(T, <<"j">>)),
    nsync_mirror:delete(M6).

%% Redis 8.4's TRIMSLOTS and Valkey 9's CLUSTER FLUSHSLOT delete the keys
%% of whole hash slots (foo and {foo}x are in slot 12182, somekey in 11058).
slots_test() ->
    M0 = nsync_mirror:new(t, all),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"set">>, K, <<"v">>] || K <- [<<"foo">>, <<"{foo}x">>, <<"somekey">>, <<"bar">>]]),
    M2 = ap(M1, 3, [<<"set">>, <<"somekey">>, <<"v">>]),
    {unhandled, _, M3} = apply_cmd(M2, 0, <<"frobnicate">>, [<<"{foo}unknown">>]),
    T0 = nsync_mirror:tid(M3, 0),
    M4 = ap(M3, 5, [<<"trimslots">>, <<"RANGES">>, <<"2">>, <<"0">>, <<"10">>, <<"12000">>, <<"12182">>]),
    ?assertEqual([<<"bar">>, <<"somekey">>], lists:sort([K || {K, _} <- ets:tab2list(T0)])),
    ?assertEqual([], nsync_mirror:unknown_keys(M4, 0)),
    M5 = ap(M4, 0, [<<"CLUSTER">>, <<"FLUSHSLOT">>, <<"11058">>]),
    ?assertEqual([<<"bar">>], [K || {K, _} <- ets:tab2list(T0)]),
    ?assertEqual([], ets:tab2list(nsync_mirror:tid(M5, 3))),
    M6 = ap(M5, 0, [<<"cluster">>, <<"setslot">>, <<"5061">>, <<"node">>, <<"abc">>]),
    ?assertEqual([<<"bar">>], [K || {K, _} <- ets:tab2list(T0)]),
    nsync_mirror:delete(M6).

unhandled_test() ->
    M0 = nsync_mirror:new(t, 0),
    T = nsync_mirror:tid(M0),
    M1 = ap(M0, 0, [<<"set">>, <<"hll">>, <<"x">>]),
    {unhandled, <<"pfadd">>, M2} = apply_cmd(M1, 0, <<"PFADD">>, [<<"hll">>, <<"a">>]),
    ?assertEqual([], ets:lookup(T, <<"hll">>)),
    %% the key is unknown now: an APPEND cannot be applied either
    {unhandled, <<"append">>, M3} = apply_cmd(M2, 0, <<"append">>, [<<"hll">>, <<"z">>]),
    ?assertEqual([], ets:lookup(T, <<"hll">>)),
    %% a SET makes it known again
    M4 = ap(M3, 0, [<<"set">>, <<"hll">>, <<"v">>]),
    M5 = ap(M4, 0, [<<"append">>, <<"hll">>, <<"w">>]),
    ?assertEqual([{<<"hll">>, <<"vw">>}], ets:lookup(T, <<"hll">>)),
    {unhandled, <<"frobnicate">>, M6} = apply_cmd(M5, 0, <<"frobnicate">>, [<<"hll">>]),
    ?assertEqual([], ets:lookup(T, <<"hll">>)),
    %% a command that cannot be parsed is unhandled, not a crash
    {unhandled, <<"incrby">>, M7} = apply_cmd(M6, 0, <<"incrby">>, [<<"n">>, <<"notanumber">>]),
    nsync_mirror:delete(M7).

move_copy_all_test() ->
    M0 = nsync_mirror:new(t, all),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"set">>, <<"a">>, <<"1">>, <<"PXAT">>, <<"99999999999999">>],
                      [<<"set">>, <<"b">>, <<"2">>],
                      [<<"move">>, <<"a">>, <<"2">>],
                      [<<"copy">>, <<"b">>, <<"c">>, <<"DB">>, <<"5">>],
                      [<<"copy">>, <<"b">>, <<"d">>, <<"db">>, <<"0">>]]),
    T0 = nsync_mirror:tid(M1, 0),
    T2 = nsync_mirror:tid(M1, 2),
    T5 = nsync_mirror:tid(M1, 5),
    ?assertEqual([], ets:lookup(T0, <<"a">>)),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(T2, <<"a">>)),
    ?assertEqual(99999999999999, nsync_mirror:ttl(T2, <<"a">>)),
    ?assertEqual([{<<"c">>, <<"2">>}], ets:lookup(T5, <<"c">>)),
    ?assertEqual([{<<"d">>, <<"2">>}], ets:lookup(T0, <<"d">>)),
    {ok, M2} = apply_cmd(M1, 0, <<"swapdb">>, [<<"0">>, <<"2">>]),
    %% tids stay, contents swap
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(T0, <<"a">>)),
    ?assertEqual(99999999999999, nsync_mirror:ttl(T0, <<"a">>)),
    ?assertEqual([{<<"b">>, <<"2">>}], ets:lookup(T2, <<"b">>)),
    {ok, M3} = apply_cmd(M2, 2, <<"flushdb">>, []),
    ?assertEqual(0, ets:info(T2, size)),
    ?assertEqual(1, ets:info(T0, size)),
    nsync_mirror:delete(M3).

move_copy_single_test() ->
    M0 = nsync_mirror:new(t, 1),
    T = nsync_mirror:tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 1, C) end, M0,
                     [[<<"set">>, <<"a">>, <<"1">>], [<<"set">>, <<"b">>, <<"2">>],
                      [<<"move">>, <<"a">>, <<"0">>],
                      [<<"copy">>, <<"b">>, <<"c">>, <<"DB">>, <<"4">>]]),
    ?assertEqual([{<<"b">>, <<"2">>}], ets:tab2list(T)),
    %% a key moved in from a db we do not mirror: value unknown
    {unhandled, <<"move">>, M2} = apply_cmd(M1, 0, <<"move">>, [<<"x">>, <<"1">>]),
    {unhandled, <<"rpush">>, M3} = apply_cmd(M2, 1, <<"rpush">>, [<<"x">>, <<"e">>]),
    ?assertEqual([], ets:lookup(T, <<"x">>)),
    {unhandled, <<"copy">>, M4} = apply_cmd(M3, 0, <<"copy">>, [<<"q">>, <<"b">>, <<"DB">>, <<"1">>, <<"REPLACE">>]),
    ?assertEqual([], ets:lookup(T, <<"b">>)),
    %% SWAPDB with the mirrored db: everything unknown
    {unhandled, <<"swapdb">>, M5} = apply_cmd(M4, 3, <<"swapdb">>, [<<"1">>, <<"3">>]),
    ?assertEqual(0, ets:info(T, size)),
    {unhandled, <<"incr">>, M6} = apply_cmd(M5, 1, <<"incr">>, [<<"n">>]),
    M7 = ap(M6, 1, [<<"set">>, <<"n">>, <<"5">>]),
    M8 = ap(M7, 1, [<<"incr">>, <<"n">>]),
    ?assertEqual([{<<"n">>, <<"6">>}], ets:tab2list(T)),
    {ok, M9} = apply_cmd(M8, 1, <<"flushdb">>, []),
    M10 = ap(M9, 1, [<<"incr">>, <<"n">>]),
    ?assertEqual([{<<"n">>, <<"1">>}], ets:tab2list(T)),
    nsync_mirror:delete(M10).

%% Keys a key filter leaves out: never stored nor remembered; what does not
%% depend on them is applied, what does becomes unknown.
filtered_keys_test() ->
    M0 = nsync_mirror:new(t, 0),
    T = nsync_mirror:tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"set">>, <<"k1">>, <<"a">>], [<<"set">>, <<"k2">>, <<"b">>],
                      [<<"rpush">>, <<"l1">>, <<"x">>, <<"y">>],
                      [<<"sadd">>, <<"s1">>, <<"m">>, <<"n">>], [<<"sadd">>, <<"s2">>, <<"n">>]]),
    F = fun(M, Cmd, Out) -> [C | A] = Cmd, apply_cmd(M, 0, C, A, Out) end,
    %% renamed from a key left out: its value is unknown
    {unhandled, <<"rename">>, M2} = F(M1, [<<"rename">>, <<"out">>, <<"k1">>], [<<"out">>]),
    ?assertEqual([], ets:lookup(T, <<"k1">>)),
    ?assertEqual([<<"k1">>], nsync_mirror:unknown_keys(M2, 0)),
    %% renamed to a key left out: gone, and known to be gone
    {ok, M3} = F(M2, [<<"rename">>, <<"k2">>, <<"out">>], [<<"out">>]),
    ?assertEqual([], ets:lookup(T, <<"k2">>)),
    M4 = ap(M3, 0, [<<"append">>, <<"k2">>, <<"c">>]),
    ?assertEqual([{<<"k2">>, <<"c">>}], ets:lookup(T, <<"k2">>)),
    %% stored into a key left out from kept ones: nothing changes
    {ok, M5} = F(M4, [<<"sunionstore">>, <<"out">>, <<"s1">>, <<"s2">>], [<<"out">>]),
    %% stored from a key left out into a kept one: unknown; the kept
    %% source it only read keeps its value
    {unhandled, _, M6} = F(M5, [<<"sunionstore">>, <<"s2">>, <<"out">>, <<"s1">>], [<<"out">>]),
    ?assertEqual([], ets:lookup(T, <<"s2">>)),
    ?assertEqual([{<<"s1">>, [<<"m">>, <<"n">>]}], ets:lookup(T, <<"s1">>)),
    %% a list popped into a key left out: the kept source is known
    {ok, M7} = F(M6, [<<"lmove">>, <<"l1">>, <<"out">>, <<"LEFT">>, <<"RIGHT">>], [<<"out">>]),
    ?assertEqual([{<<"l1">>, [<<"y">>]}], ets:lookup(T, <<"l1">>)),
    {unhandled, _, M8} = F(M7, [<<"smove">>, <<"out">>, <<"s1">>, <<"z">>], [<<"out">>]),
    ?assertEqual([], ets:lookup(T, <<"s1">>)),
    %% a copy to a key left out changes nothing
    {ok, M9} = F(M8, [<<"copy">>, <<"l1">>, <<"out">>], [<<"out">>]),
    ?assertEqual([{<<"l1">>, [<<"y">>]}], ets:lookup(T, <<"l1">>)),
    %% nothing left out was stored or remembered
    ?assertEqual([], ets:lookup(T, <<"out">>)),
    ?assertEqual([<<"k1">>, <<"s1">>, <<"s2">>], nsync_mirror:unknown_keys(M9, 0)),
    %% a known key renamed onto an unknown one: RENAME sets it whole
    {ok, M10} = F(M9, [<<"rename">>, <<"l1">>, <<"k1">>], []),
    ?assertEqual([{<<"k1">>, [<<"y">>]}], ets:lookup(T, <<"k1">>)),
    ?assertEqual([], ets:lookup(T, <<"l1">>)),
    %% an unknown one renamed onto a kept one: both unknown
    {unhandled, _, M11} = F(M10, [<<"renamenx">>, <<"s1">>, <<"l1">>], []),
    ?assertEqual([<<"l1">>, <<"s1">>, <<"s2">>], nsync_mirror:unknown_keys(M11, 0)),
    nsync_mirror:delete(M11).

%% An unknown key read by a command: what the command writes is unknown.
unknown_source_test() ->
    M0 = nsync_mirror:new(t, 0),
    T = nsync_mirror:tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"sadd">>, <<"a">>, <<"1">>], [<<"sadd">>, <<"b">>, <<"2">>],
                      [<<"sadd">>, <<"d">>, <<"1">>, <<"2">>]]),
    {unhandled, _, M2} = apply_cmd(M1, 0, <<"frobnicate">>, [<<"a">>]),
    %% D was {1, 2}; the union of the unknown A and B: unknown, not {2}
    {unhandled, _, M3} = apply_cmd(M2, 0, <<"sunionstore">>, [<<"d">>, <<"a">>, <<"b">>]),
    ?assertEqual([], ets:lookup(T, <<"d">>)),
    ?assertEqual([{<<"b">>, [<<"2">>]}], ets:lookup(T, <<"b">>)),
    ?assertEqual([<<"a">>, <<"d">>], nsync_mirror:unknown_keys(M3, 0)),
    nsync_mirror:delete(M3).

%% A mirror of some databases follows keys moved or swapped between them.
some_dbs_test() ->
    M0 = nsync_mirror:new(t, [2, 0]),
    ?assertEqual(nsync_mirror:tid(M0, 0), nsync_mirror:tid(M0)),
    M1 = lists:foldl(fun({Db, C}, Acc) -> ap(Acc, Db, C) end, M0,
                     [{0, [<<"set">>, <<"a">>, <<"1">>]}, {1, [<<"set">>, <<"a">>, <<"x">>]},
                      {0, [<<"move">>, <<"a">>, <<"2">>]}]),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(nsync_mirror:tid(M1, 2), <<"a">>)),
    ?assertEqual(undefined, nsync_mirror:tid(M1, 1)),
    {unhandled, _, M2} = apply_cmd(M1, 1, <<"move">>, [<<"b">>, <<"0">>]),
    ?assertEqual([<<"b">>], nsync_mirror:unknown_keys(M2, 0)),
    {ok, M3} = apply_cmd(M2, 0, <<"swapdb">>, [<<"0">>, <<"2">>]),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(nsync_mirror:tid(M3, 0), <<"a">>)),
    ?assertEqual([<<"b">>], nsync_mirror:unknown_keys(M3, 2)),
    {unhandled, _, M4} = apply_cmd(M3, 0, <<"swapdb">>, [<<"2">>, <<"5">>]),
    ?assertEqual({all_but, []}, nsync_mirror:unknown_keys(M4, 2)),
    nsync_mirror:delete(M4).

field_expiry_test() ->
    M0 = nsync_mirror:new(t, 0),
    T = nsync_mirror:tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"hset">>, <<"h">>, <<"a">>, <<"1">>, <<"b">>, <<"2">>],
                      [<<"hpexpireat">>, <<"h">>, <<"1">>, <<"FIELDS">>, <<"1">>, <<"a">>]]),
    ?assertEqual([{<<"h">>, #{<<"b">> => <<"2">>}}], nsync_mirror:lookup(T, <<"h">>)),
    ?assertEqual(#{<<"a">> => 1}, nsync_mirror:field_ttls(T, <<"h">>)),
    M2 = ap(M1, 0, [<<"hdel">>, <<"h">>, <<"a">>]),
    ?assertEqual(#{}, nsync_mirror:field_ttls(T, <<"h">>)),
    nsync_mirror:delete(M2).
-endif.
