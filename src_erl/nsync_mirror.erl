%%% @doc The ETS mirror: keeps ETS tables equal to a Redis master's dataset
%%% by loading its snapshot and applying its command stream.
%%%
%%% Each mirrored database has a data table with rows `{Key, Value}' (values
%%% as in DESIGN.md, so `ets:lookup/2' is the fastest read) and a companion
%%% expiry table with rows `{Key, ExpireAt | undefined, #{Field => ExpireAt}}'
%%% for keys that have a key or hash-field expiry. The expiry table is found
%%% from the data table through `persistent_term' (`lookup/2', `ttl/2').
%%%
%%% A value bigger than the mirror's threshold is a big value (`nsync_big'):
%%% its data row is `{Key, Handle}' and its expiry row
%%% `{Key, ExpireAt | undefined, #{}, Handle}' (a big hash keeps its field
%%% expiries itself). The expiry row holds the handle because a compressed
%%% table does not keep a resource alive: it is written after the data row
%%% and removed after it, so a reader of the data row always finds the
%%% value alive.
%%% Tables are `public' (the link that fills them writes them, whoever owns
%%% them: see `nsync_owner') and owned by the process that calls `new/2'.
%%%
%%% Commands are applied through the table of `nsync_cmd': the mirror reads
%%% the entries of the keys a command touches, runs the pure handler, and
%%% writes back what changed; the commands the table marks `cross_db' (MOVE,
%%% COPY ... DB, SWAPDB, FLUSHDB, FLUSHALL) it carries out itself. A command
%%% that cannot be applied faithfully (modules, unknown names, a value the
%%% mirror does not know) returns `{unhandled, Cmd, Mirror}' and
%%% the keys it touched are removed and remembered as unknown ("poisoned")
%%% until a command overwrites them, so readers see such keys as absent, never
%%% with a wrong value.
%%%
%%% With a key filter, a command may also name keys the mirror leaves out
%%% (`apply_cmd/5'): their values are unknown too, but they are never
%%% stored nor remembered. A command with unknown keys sets what it can
%%% still compute: keys it only reads keep their values, the source of a
%%% move (RENAME, SMOVE, LMOVE ...) its own new value when it is known, the
%%% destination of a RENAME from a known key that key's value; any other
%%% key it writes becomes unknown (`nsync_cmd:roles/1').
-module(nsync_mirror).

-include("nsync_log.hrl").

-export([new/2, new/3, new/4, tid/1, tid/2, tables/1, load/4, fold/4, apply_cmd/4, apply_cmd/5,
         delete/1, lookup/2, entry/3, ttl/2, field_ttls/2, dbs/1, same_dbs/2, unknown_keys/2]).

-export_type([mirror/0, settings/0, dbspec/0]).

-define(KEY(Tid), {?MODULE, Tid}).

-type db() :: non_neg_integer().
%% The database mirrored, every database, or some of them (each database
%% in its own table but for `N').
-type dbspec() :: db() | all | [db(), ...].
-type tabs() :: {ets:tid(), ets:tid()}.
-type poison() :: #{binary() => true} | {all, #{binary() => true}}.
-type settings() :: #{hll_sparse_max_bytes := non_neg_integer(),
                      geo_formula := before_7_0 | since_7_0,
                      %% several processes write the tables (a cluster's view)
                      write_concurrency => boolean()}.
-opaque mirror() :: #{name := atom(),
                      dbspec := dbspec(),
                      compressed := boolean(),
                      big := nsync_big:limits(),
                      settings := settings(),
                      dbs := #{db() => tabs()},
                      poison := #{db() => poison()}}.

%%% ------------------------------------------------------------ tables

%% @doc Creates a mirror of database `DbSpec' with compressed data tables
%% (see `new/3').
-spec new(atom(), dbspec()) -> mirror().
new(Name, DbSpec) ->
    new(Name, DbSpec, true).

%% @doc Creates a mirror of database `DbSpec' (or of every database, each in
%% its own table, with `all', or of those listed). The tables are owned by
%% the caller. With
%% `Compressed', data tables are ETS `compressed': collections take about
%% half the memory (values are kept in the external term format), reads of
%% small values cost the same, and reads of maps of more than 32 fields cost
%% a few times more (the map is rebuilt on every read).
-spec new(atom(), dbspec(), boolean()) -> mirror().
new(Name, DbSpec, Compressed) ->
    new(Name, DbSpec, Compressed, #{}).

%% @doc Creates a mirror as `new/3' does, for a master whose settings differ
%% from the defaults: `hll_sparse_max_bytes' (its `hll-sparse-max-bytes',
%% 3000) and `geo_formula' (`before_7_0' for a master older than 7.0,
%% `since_7_0' by default), which the HyperLogLog and GEO commands follow;
%% and with `big_threshold' (`nsync_big:default_threshold()'): collections
%% of more elements (strings of more KiB) become big values (`off': never;
%% the tests give `nsync_big:limits()').
-spec new(atom(), dbspec(), boolean(), #{hll_sparse_max_bytes => non_neg_integer(),
                                        geo_formula => before_7_0 | since_7_0,
                                        write_concurrency => boolean(),
                                        big_threshold => pos_integer() | off
                                                       | nsync_big:limits()}) -> mirror().
new(Name, DbSpec0, Compressed, Settings)
  when is_atom(Name), is_boolean(Compressed), is_map(Settings) ->
    DbSpec = dbspec(DbSpec0),
    Big = nsync_big:limits(maps:get(big_threshold, Settings, nsync_big:default_threshold())),
    M = #{name => Name, dbspec => DbSpec, compressed => Compressed, dbs => #{}, poison => #{},
          big => Big,
          settings => maps:merge(#{hll_sparse_max_bytes => 3000, geo_formula => since_7_0},
                                 maps:without([big_threshold], Settings))},
    {M1, _} = ensure_db(M, first_db(DbSpec)),
    M1.

dbspec(all) -> all;
dbspec(N) when is_integer(N), N >= 0 -> N;
dbspec([_ | _] = Dbs) ->
    true = lists:all(fun(N) -> is_integer(N) andalso N >= 0 end, Dbs),
    lists:usort(Dbs).

%% The database whose table `tid/1' gives.
first_db(all) -> 0;
first_db([First | _]) -> First;
first_db(N) -> N.

new_tabs(Name, Compressed, Settings) ->
    Concurrent = [{write_concurrency, auto} || maps:get(write_concurrency, Settings, false)],
    Data = ets:new(Name, [set, public, {read_concurrency, true}
                          | [compressed || Compressed] ++ Concurrent]),
    Exp = ets:new(nsync_mirror_expires, [set, public, {read_concurrency, true} | Concurrent]),
    persistent_term:put(?KEY(Data), Exp),
    {Data, Exp}.

%% @doc The data table of the mirrored database (db 0 with `all', the
%% first one with a list).
-spec tid(mirror()) -> ets:tid().
tid(#{dbspec := DbSpec} = M) -> tid(M, first_db(DbSpec)).

%% @doc The data table of database `Db', or `undefined' if not (yet) there.
-spec tid(mirror(), db()) -> ets:tid() | undefined.
tid(#{dbs := Dbs}, Db) ->
    case Dbs of
        #{Db := {Data, _}} -> Data;
        _ -> undefined
    end.

%% @doc Every table of the mirror (data and expiry tables).
-spec tables(mirror()) -> [ets:tid()].
tables(#{dbs := Dbs}) -> lists:append([[D, E] || {D, E} <- maps:values(Dbs)]).

%% @doc The databases that have tables, with their data tables.
-spec dbs(mirror()) -> [{db(), ets:tid()}].
dbs(#{dbs := Dbs}) -> lists:sort([{Db, D} || {Db, {D, _}} <- maps:to_list(Dbs)]).

%% @doc Whether two versions of a mirror have the same database tables
%% (constant time when nothing changed: the same term).
-spec same_dbs(mirror(), mirror()) -> boolean().
same_dbs(#{dbs := A}, #{dbs := B}) -> A =:= B.

%% @doc Deletes the mirror's tables.
-spec delete(mirror()) -> ok.
delete(#{dbs := Dbs}) ->
    lists:foreach(fun({Data, Exp}) ->
                          _ = persistent_term:erase(?KEY(Data)),
                          catch ets:delete(Data),
                          catch ets:delete(Exp)
                  end, maps:values(Dbs)),
    ok.

mirrored(#{dbspec := all}, _Db) -> true;
mirrored(#{dbspec := Dbs}, Db) when is_list(Dbs) -> lists:member(Db, Dbs);
mirrored(#{dbspec := N}, Db) -> N =:= Db.

ensure_db(#{dbs := Dbs, name := Name, compressed := Compressed, settings := S} = M, Db) ->
    case Dbs of
        #{Db := T} -> {M, T};
        _ -> T = new_tabs(Name, Compressed, S), {M#{dbs := Dbs#{Db => T}}, T}
    end.

%%% ------------------------------------------------------------ reads

%% @doc Like `ets:lookup/2' on a mirror table, but hides a key whose expiry
%% has passed and hash fields whose expiry has passed (even when the master's
%% DEL/HDEL has not arrived yet), and gives the value of a big value
%% (`nsync_big'), not its handle.
-spec lookup(ets:tid(), term()) -> [{term(), term()}].
lookup(Tid, Key) ->
    Now = erlang:system_time(millisecond),
    case entry(Tid, Key, Now) of
        none -> [];
        {V, F} -> visible(Key, V, F, Now)
    end.

%% @doc The value of `Key' (a big value's handle as it is) and its hash
%% fields' expiries, `none' if the key is absent or expired at `Now'.
-spec entry(ets:tid(), term(), integer()) -> {term(), #{binary() => integer()}} | none.
entry(Tid, Key, Now) ->
    case ets:lookup(Tid, Key) of
        [] -> none;
        [{_, V}] ->
            case exp_row(Tid, Key) of
                none -> {V, #{}};
                {E, _} when is_integer(E), Now > E -> none;
                {_, F} -> {V, F}
            end
    end.

visible(Key, V, _F, Now) when is_reference(V) ->
    case nsync_big:value(V, Now) of
        M when is_map(M), map_size(M) =:= 0 -> [];
        Value -> [{Key, Value}]
    end;
visible(Key, V, F, Now) when is_map(V), map_size(F) > 0 ->
    V2 = maps:filter(fun(Fd, _) ->
                             case F of
                                 #{Fd := FE} -> Now =< FE;
                                 _ -> true
                             end
                     end, V),
    case map_size(V2) of
        0 -> [];
        _ -> [{Key, V2}]
    end;
visible(Key, V, _F, _Now) -> [{Key, V}].

%% @doc The absolute expiry (ms since the epoch) of `Key', `undefined' if it
%% has none, `not_found' if the key is absent (or expired).
-spec ttl(ets:tid(), term()) -> integer() | undefined | not_found.
ttl(Tid, Key) ->
    Now = erlang:system_time(millisecond),
    case entry(Tid, Key, Now) of
        none -> not_found;
        {V, F} ->
            case present(Key, V, F, Now) of
                false -> not_found;
                true ->
                    case exp_row(Tid, Key) of
                        {E, _} -> E;
                        none -> undefined
                    end
            end
    end.

%% Whether a live key has a live field, if it is a hash (without building a
%% big value).
present(_Key, H, _F, Now) when is_reference(H) ->
    nsync_big:kind(H) =/= hash orelse nsync_big:read(H, {live_len, Now}) > 0;
present(Key, V, F, Now) ->
    visible(Key, V, F, Now) =/= [].

%% @doc The hash-field expiries of `Key' (`#{}' if none).
-spec field_ttls(ets:tid(), term()) -> #{binary() => integer()}.
field_ttls(Tid, Key) ->
    case ets:lookup(Tid, Key) of
        [{_, H}] when is_reference(H) -> big_field_ttls(H);
        _ ->
            case exp_row(Tid, Key) of
                {_, F} -> F;
                none -> #{}
            end
    end.

big_field_ttls(H) ->
    case nsync_big:kind(H) of
        hash -> nsync_big:read(H, field_expires);
        _ -> #{}
    end.

exp_row(Tid, Key) ->
    case persistent_term:get(?KEY(Tid), undefined) of
        undefined -> none;
        ExpT ->
            case ets:lookup(ExpT, Key) of
                [{_, E, F}] -> {E, F};
                [{_, E, F, _Handle}] -> {E, F};
                [] -> none
            end
    end.

%%% ------------------------------------------------------------ writes

%% @doc Loads keys of a snapshot into database `Db' as ready-made rows:
%% data rows `{Key, Value}' and expiry rows `{Key, ExpireAt | undefined,
%% #{Field => ExpireAt}}' (only for keys that have a key or field expiry),
%% with one ETS insert per table. A snapshot's tables start empty and hold
%% each key once, so nothing needs deleting. Rows of a database the mirror
%% does not mirror are left out.
-spec load(mirror(), db(), [{binary(), term()}],
           [{binary(), integer() | undefined, #{binary() => integer()}}]) -> mirror().
load(M0, Db, DataRows, ExpiryRows) ->
    case mirrored(M0, Db) of
        true ->
            {M, {Data, Exp}} = ensure_db(M0, Db),
            ets:insert(Data, DataRows),
            case ExpiryRows of
                [] -> ok;
                _ -> ets:insert(Exp, ExpiryRows)
            end,
            M;
        false ->
            M0
    end.

write({Data, Exp}, Key, {V, E, F}) ->
    ets:insert(Data, {Key, V}),
    case is_reference(V) of
        true -> ets:insert(Exp, {Key, E, F, V});
        false when E =:= undefined, map_size(F) =:= 0 -> ets:delete(Exp, Key);
        false -> ets:insert(Exp, {Key, E, F})
    end;
write({Data, Exp}, Key, delete) ->
    ets:delete(Data, Key),
    ets:delete(Exp, Key).

read({Data, Exp}, Key) ->
    case ets:lookup(Data, Key) of
        [] -> none;
        [{_, V}] ->
            case ets:lookup(Exp, Key) of
                [] -> {V, undefined, #{}};
                [{_, E, F}] -> {V, E, F};
                [{_, E, F, _Handle}] -> {V, E, F}
            end
    end.

%% @doc Folds `Fun(DataRow, ExpiryRows, Acc)' over the keys of database
%% `Db', with each key's expiry row (`[]' if none), as `load/4' takes them.
-spec fold(fun((tuple(), [tuple()], Acc) -> Acc), Acc, mirror(), db()) -> Acc.
fold(Fun, Acc0, #{dbs := Dbs}, Db) ->
    case Dbs of
        #{Db := {Data, Exp}} ->
            ets:foldl(fun(Row, Acc) -> Fun(Row, ets:lookup(Exp, element(1, Row)), Acc) end,
                      Acc0, Data);
        _ ->
            Acc0
    end.

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
            {unhandled, Cmd, poison(M, Db, safe_keys(Spec, Args) -- Filtered)}
    end.

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
    case mirrored(M, Db) of
        false -> {ok, M};
        true -> local(M, Db, Cmd, Args, Spec, Out)
    end.

local(M, Db, Cmd, Args, undefined, Out) ->
    {unhandled, Cmd, poison(M, Db, first_arg(Args) -- Out)};
local(M, Db, Cmd, Args, #{run := unhandled, keys := KS}, Out) ->
    {unhandled, Cmd, poison(M, Db, nsync_cmd:keys(KS, Args) -- Out)};
local(#{poison := P} = M0, Db, <<"set">>, [K, V], _Spec, []) when not is_map_key(Db, P) ->
    %% The commonest command, without options and with nothing unknown in
    %% the db: the value is replaced and any TTL dropped, whatever was there.
    {#{big := Limits} = M, Tabs} = ensure_db(M0, Db),
    write(Tabs, K, {nsync_big:promote(string, V, Limits), undefined, #{}}),
    {ok, M};
local(M0, Db, Cmd, Args, #{keys := KS, run := Run} = Spec, Out) ->
    Named = nsync_cmd:keys(KS, Args),
    Keys = lists:usort(Named),
    {#{big := Limits} = M, Tabs} = ensure_db(M0, Db),
    Unknown = [K || K <- Keys, lists:member(K, Out) orelse is_poisoned(M, Db, Tabs, K)],
    Store = maps:from_list([{K, E} || K <- Keys, not lists:member(K, Unknown),
                                      (E = read(Tabs, K)) =/= none]),
    Now = erlang:system_time(millisecond),
    Context = case Spec of
                  #{settings := true} -> (maps:get(settings, M))#{now => Now};
                  _ -> Now
              end,
    Result = case has_big(Store) of
                 false -> Run(Args, Store, Context);
                 true -> nsync_cmd_big:run(Spec, Args, Store, Context)
             end,
    case Result of
        unhandled ->
            {unhandled, Cmd, poison(M, Db, Keys -- Out)};
        {ok, Store2} when Unknown =:= [] ->
            _ = commit(Tabs, Store, Store2, kind_of(Run), Limits),
            {ok, M};
        {ok, Store2} ->
            case nsync_cmd:overwrites(Spec, Args) of
                true ->
                    %% it sets its keys whatever they held: they are known now
                    _ = commit(Tabs, Store, maps:without(Out, Store2), kind_of(Run), Limits),
                    {ok, unpoison(M, Db, Unknown -- Out)};
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
    M = unpoison(M0, Db, [K || K <- Known, lists:member(K, Unknown)]),
    case Uncertain of
        [] -> {ok, M};
        _ -> {unhandled, Cmd, poison(M, Db, Uncertain)}
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
                            _ -> write(Tabs, K, N), [K | Acc]
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

%%% ------------------------------------------------------------ poison

%% @doc The keys of database `Db' the mirror has lost track of (absent from
%% its table, whatever the master holds), or `{all_but, Known}' after a
%% SWAPDB with a database it does not mirror (every key is unknown but
%% those written since).
-spec unknown_keys(mirror(), db()) -> [binary()] | {all_but, [binary()]}.
unknown_keys(#{poison := P}, Db) ->
    case P of
        #{Db := {all, Known}} -> {all_but, lists:sort(maps:keys(Known))};
        #{Db := Map} -> lists:sort(maps:keys(Map));
        _ -> []
    end.

is_poisoned(#{poison := P}, Db, {Data, _}, K) ->
    case P of
        #{Db := {all, Known}} -> not is_map_key(K, Known) andalso not ets:member(Data, K);
        #{Db := Map} -> is_map_key(K, Map);
        _ -> false
    end.

%% Marks keys unknown and removes them from the table.
poison(M, _Db, []) -> M;
poison(M0, Db, Keys) ->
    case mirrored(M0, Db) of
        false -> M0;
        true ->
            {#{poison := P} = M, Tabs} = ensure_db(M0, Db),
            [write(Tabs, K, delete) || K <- Keys],
            P2 = case maps:get(Db, P, #{}) of
                     {all, Known} -> {all, maps:without(Keys, Known)};
                     Map -> maps:merge(Map, maps:from_list([{K, true} || K <- Keys]))
                 end,
            M#{poison := P#{Db => P2}}
    end.

unpoison(M, _Db, []) -> M;
unpoison(#{poison := P} = M, Db, Keys) ->
    P2 = case maps:get(Db, P, #{}) of
             {all, Known} -> {all, maps:merge(Known, maps:from_list([{K, true} || K <- Keys]))};
             Map -> maps:without(Keys, Map)
         end,
    M#{poison := P#{Db => P2}}.

%%% ------------------------------------------------------------ cross-db

%% The operations of the commands the table marks `cross_db'.
cross(flushdb, M, Db, _Cmd, _Args, _Spec, _Out) ->
    case M of
        #{dbs := #{Db := Tabs}} -> clear(Tabs);
        _ -> ok
    end,
    {ok, reset_poison(M, Db)};
cross(flushall, #{dbs := Dbs} = M, _Db, _Cmd, _Args, _Spec, _Out) ->
    lists:foreach(fun clear/1, maps:values(Dbs)),
    {ok, M#{poison := #{}}};
cross(move, M, Db, Cmd, [Key, T0], _Spec, _Out) ->
    %% a key filter keeps a name in every database or in none
    move(M, Cmd, Db, binary_to_integer(T0), Key);
cross(swapdb, M, _Db, Cmd, [A0, B0], _Spec, _Out) ->
    swapdb(M, Cmd, binary_to_integer(A0), binary_to_integer(B0));
cross(trim_slots, M, _Db, _Cmd, [_Ranges, N | Bounds], _Spec, _Out) ->
    %% TRIMSLOTS RANGES n start end ...: Redis 8.4 trims db 0
    Ranges = slot_ranges(lists:sublist(Bounds, 2 * binary_to_integer(N))),
    {ok, drop_slots(M, [0], fun(Slot) -> lists:any(fun({A, B}) -> Slot >= A andalso Slot =< B end, Ranges) end)};
cross(cluster, #{dbs := Dbs} = M, _Db, _Cmd, [Sub, Slot0 | _], _Spec, _Out) ->
    case nsync_cmd_lib:lower(Sub) of
        <<"flushslot">> ->
            Slot = binary_to_integer(Slot0),
            {ok, drop_slots(M, maps:keys(Dbs), fun(S) -> S =:= Slot end)};
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

%% Deletes the keys of databases `Dbs' whose hash slot `InSlots' accepts;
%% unknown keys there are known (absent) from then on.
drop_slots(#{dbs := Tables} = M, Dbs, InSlots) ->
    In = fun(K) -> InSlots(nsync_cmd_lib:key_slot(K)) end,
    lists:foldl(fun(Db, #{poison := P} = Acc) ->
                        case Tables of
                            #{Db := {Data, _} = Tabs} ->
                                Gone = ets:foldl(fun({K, _}, Ks) ->
                                                         case In(K) of
                                                             true -> [K | Ks];
                                                             false -> Ks
                                                         end
                                                 end, [], Data),
                                lists:foreach(fun(K) -> write(Tabs, K, delete) end, Gone),
                                case P of
                                    #{Db := Unknown} when is_map(Unknown) ->
                                        unpoison(Acc, Db, [K || K <- maps:keys(Unknown), In(K)]);
                                    _ -> Acc
                                end;
                            _ -> Acc
                        end
                end, M, Dbs).

clear({Data, Exp}) ->
    ets:delete_all_objects(Data),
    ets:delete_all_objects(Exp).

reset_poison(#{poison := P} = M, Db) -> M#{poison := maps:remove(Db, P)}.

%% MOVE is propagated only when it succeeded: the key left `From' and did
%% not exist in `To'.
move(M, _Cmd, From, From, _Key) -> {ok, M};
move(M0, Cmd, From, To, Key) ->
    case {mirrored(M0, From), mirrored(M0, To)} of
        {false, false} -> {ok, M0};
        {true, false} ->
            {M, Tabs} = ensure_db(M0, From),
            write(Tabs, Key, delete),
            {ok, unpoison(M, From, [Key])};
        {false, true} ->
            {unhandled, Cmd, poison(M0, To, [Key])};
        {true, true} ->
            {M1, FT} = ensure_db(M0, From),
            {M, TT} = ensure_db(M1, To),
            case is_poisoned(M, From, FT, Key) of
                true ->
                    {unhandled, Cmd, poison(unpoison(M, From, [Key]), To, [Key])};
                false ->
                    case read(FT, Key) of
                        none -> {ok, M};
                        E ->
                            write(FT, Key, delete),
                            write(TT, Key, E),
                            {ok, unpoison(M, To, [Key])}
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
    case {mirrored(M0, From) andalso not lists:member(Src, Out),
          mirrored(M0, To) andalso not lists:member(Dst, Out)} of
        {_, false} -> {ok, M0};
        {false, true} -> {unhandled, Cmd, poison(M0, To, [Dst])};
        {true, true} ->
            {M1, FT} = ensure_db(M0, From),
            {M, TT} = ensure_db(M1, To),
            case is_poisoned(M, From, FT, Src) of
                true -> {unhandled, Cmd, poison(M, To, [Dst])};
                false ->
                    case read(FT, Src) of
                        none -> {ok, M};
                        {V, Exp, F} when is_reference(V) ->
                            write(TT, Dst, {nsync_big:copy(V), Exp, F}),
                            {ok, unpoison(M, To, [Dst])};
                        E -> write(TT, Dst, E), {ok, unpoison(M, To, [Dst])}
                    end
            end
    end.

swapdb(M, _Cmd, A, A) -> {ok, M};
swapdb(M, Cmd, A, B) ->
    case {mirrored(M, A), mirrored(M, B)} of
        {true, true} -> {ok, swap(M, A, B)};
        %% the other database's content is not mirrored: this one is now unknown
        {true, false} -> {unhandled, Cmd, all_unknown(M, A)};
        {false, true} -> {unhandled, Cmd, all_unknown(M, B)};
        {false, false} -> {ok, M}
    end.

swap(M0, A, B) ->
    {M1, TA} = ensure_db(M0, A),
    {#{poison := P} = M, TB} = ensure_db(M1, B),
    RowsA = dump(TA),
    RowsB = dump(TB),
    clear(TA),
    clear(TB),
    restore(TA, RowsB),
    restore(TB, RowsA),
    P2 = maps:remove(A, maps:remove(B, P)),
    P3 = case P of #{A := PA} -> P2#{B => PA}; _ -> P2 end,
    P4 = case P of #{B := PB} -> P3#{A => PB}; _ -> P3 end,
    M#{poison := P4}.

all_unknown(M0, Db) ->
    {#{poison := P} = M, Tabs} = ensure_db(M0, Db),
    clear(Tabs),
    M#{poison := P#{Db => {all, #{}}}}.

dump({Data, Exp}) -> {ets:tab2list(Data), ets:tab2list(Exp)}.
restore({Data, Exp}, {D, E}) ->
    ets:insert(Data, D),
    ets:insert(Exp, E).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

new_test() ->
    M = new(t, 0),
    T = tid(M),
    ?assertEqual(T, tid(M, 0)),
    ?assertEqual(undefined, tid(M, 1)),
    ?assertEqual([], ets:tab2list(T)),
    ok = delete(M),
    ?assertEqual(undefined, ets:info(T, size)).

load_lookup_test() ->
    Now = erlang:system_time(millisecond),
    M = load(new(t, 0), 0,
             [{<<"a">>, <<"1">>}, {<<"b">>, <<"2">>}, {<<"gone">>, <<"3">>},
              {<<"h">>, #{<<"f">> => <<"1">>, <<"g">> => <<"2">>}},
              {<<"h2">>, #{<<"f">> => <<"1">>}}],
             [{<<"b">>, Now + 100000, #{}}, {<<"gone">>, Now - 10, #{}},
              {<<"h">>, undefined, #{<<"f">> => Now - 5, <<"g">> => Now + 100000}},
              {<<"h2">>, undefined, #{<<"f">> => Now - 5}}]),
    M2 = load(M, 3, [{<<"other">>, <<"x">>}], []),
    T = tid(M2),
    ?assertEqual([{<<"a">>, <<"1">>}], lookup(T, <<"a">>)),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(T, <<"a">>)),
    ?assertEqual(undefined, ttl(T, <<"a">>)),
    ?assertEqual(Now + 100000, ttl(T, <<"b">>)),
    %% expired key: present in the raw table, hidden by lookup/2
    ?assertEqual([], lookup(T, <<"gone">>)),
    ?assertEqual(not_found, ttl(T, <<"gone">>)),
    ?assertEqual([{<<"h">>, #{<<"g">> => <<"2">>}}], lookup(T, <<"h">>)),
    ?assertEqual([], lookup(T, <<"h2">>)),
    ?assertEqual(not_found, ttl(T, <<"nope">>)),
    %% a database the mirror does not mirror is left out
    ?assertEqual([], lookup(T, <<"other">>)),
    ?assertEqual(undefined, tid(M2, 3)),
    delete(M2).

ap(M, Db, Cmd) ->
    [C | A] = Cmd,
    {ok, M2} = apply_cmd(M, Db, C, A),
    M2.

apply_test() ->
    M0 = new(t, 0),
    T = tid(M0),
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
    ?assertEqual(99999999999999, ttl(T, <<"b">>)),
    ?assertEqual([], ets:lookup(T, <<"l">>)),
    %% other dbs are ignored with {db, 0}
    M2 = ap(M, 1, [<<"set">>, <<"a">>, <<"other">>]),
    ?assertEqual([{<<"a">>, <<"2">>}], ets:lookup(T, <<"a">>)),
    M3 = ap(M2, 0, [<<"persist">>, <<"b">>]),
    ?assertEqual(undefined, ttl(T, <<"b">>)),
    M4 = ap(M3, 0, [<<"flushall">>]),
    ?assertEqual(0, ets:info(T, size)),
    delete(M4).

%% The commands of Redis 8.x and Valkey 8.1-9, in the forms their masters
%% propagate, through the command table.
newer_servers_test() ->
    M0 = new(t, 0),
    T = tid(M0),
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
    ?assertEqual(99999999999999, ttl(T, <<"b">>)),
    ?assertEqual([{<<"h">>, #{<<"f">> => <<"1.5">>}}], ets:lookup(T, <<"h">>)),
    ?assertEqual(#{<<"f">> => 99999999999999}, field_ttls(T, <<"h">>)),
    ?assertEqual([{<<"y">>, <<128, 0>>}], ets:lookup(T, <<"y">>)),
    ?assertMatch([{<<"s">>, {stream, [{{2, 0}, _}], _}}], ets:lookup(T, <<"s">>)),
    ?assertMatch([{<<"p">>, <<"HYLL", 1, 0, 0, 0, 2, _/binary>>}], ets:lookup(T, <<"p">>)),
    delete(M).

%% SET and DELEX with value and digest conditions (Redis 8.4) on a big
%% string: the condition reads the value the handle holds.
conditions_on_big_strings_test() ->
    M0 = new(t, 0, true, #{big_threshold => 1}),
    T = tid(M0),
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
    delete(M6).

%% Redis 8.4's TRIMSLOTS and Valkey 9's CLUSTER FLUSHSLOT delete the keys
%% of whole hash slots (foo and {foo}x are in slot 12182, somekey in 11058).
slots_test() ->
    M0 = new(t, all),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"set">>, K, <<"v">>] || K <- [<<"foo">>, <<"{foo}x">>, <<"somekey">>, <<"bar">>]]),
    M2 = ap(M1, 3, [<<"set">>, <<"somekey">>, <<"v">>]),
    {unhandled, _, M3} = apply_cmd(M2, 0, <<"frobnicate">>, [<<"{foo}unknown">>]),
    T0 = tid(M3, 0),
    M4 = ap(M3, 5, [<<"trimslots">>, <<"RANGES">>, <<"2">>, <<"0">>, <<"10">>, <<"12000">>, <<"12182">>]),
    ?assertEqual([<<"bar">>, <<"somekey">>], lists:sort([K || {K, _} <- ets:tab2list(T0)])),
    ?assertEqual(#{0 => #{}}, maps:get(poison, M4)),
    M5 = ap(M4, 0, [<<"CLUSTER">>, <<"FLUSHSLOT">>, <<"11058">>]),
    ?assertEqual([<<"bar">>], [K || {K, _} <- ets:tab2list(T0)]),
    ?assertEqual([], ets:tab2list(tid(M5, 3))),
    M6 = ap(M5, 0, [<<"cluster">>, <<"setslot">>, <<"5061">>, <<"node">>, <<"abc">>]),
    ?assertEqual([<<"bar">>], [K || {K, _} <- ets:tab2list(T0)]),
    delete(M6).

unhandled_test() ->
    M0 = new(t, 0),
    T = tid(M0),
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
    delete(M7).

move_copy_all_test() ->
    M0 = new(t, all),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"set">>, <<"a">>, <<"1">>, <<"PXAT">>, <<"99999999999999">>],
                      [<<"set">>, <<"b">>, <<"2">>],
                      [<<"move">>, <<"a">>, <<"2">>],
                      [<<"copy">>, <<"b">>, <<"c">>, <<"DB">>, <<"5">>],
                      [<<"copy">>, <<"b">>, <<"d">>, <<"db">>, <<"0">>]]),
    T0 = tid(M1, 0),
    T2 = tid(M1, 2),
    T5 = tid(M1, 5),
    ?assertEqual([], ets:lookup(T0, <<"a">>)),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(T2, <<"a">>)),
    ?assertEqual(99999999999999, ttl(T2, <<"a">>)),
    ?assertEqual([{<<"c">>, <<"2">>}], ets:lookup(T5, <<"c">>)),
    ?assertEqual([{<<"d">>, <<"2">>}], ets:lookup(T0, <<"d">>)),
    {ok, M2} = apply_cmd(M1, 0, <<"swapdb">>, [<<"0">>, <<"2">>]),
    %% tids stay, contents swap
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(T0, <<"a">>)),
    ?assertEqual(99999999999999, ttl(T0, <<"a">>)),
    ?assertEqual([{<<"b">>, <<"2">>}], ets:lookup(T2, <<"b">>)),
    {ok, M3} = apply_cmd(M2, 2, <<"flushdb">>, []),
    ?assertEqual(0, ets:info(T2, size)),
    ?assertEqual(1, ets:info(T0, size)),
    delete(M3).

move_copy_single_test() ->
    M0 = new(t, 1),
    T = tid(M0),
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
    delete(M10).

%% Keys a key filter leaves out: never stored nor remembered; what does not
%% depend on them is applied, what does becomes unknown.
filtered_keys_test() ->
    M0 = new(t, 0),
    T = tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"set">>, <<"k1">>, <<"a">>], [<<"set">>, <<"k2">>, <<"b">>],
                      [<<"rpush">>, <<"l1">>, <<"x">>, <<"y">>],
                      [<<"sadd">>, <<"s1">>, <<"m">>, <<"n">>], [<<"sadd">>, <<"s2">>, <<"n">>]]),
    F = fun(M, Cmd, Out) -> [C | A] = Cmd, apply_cmd(M, 0, C, A, Out) end,
    %% renamed from a key left out: its value is unknown
    {unhandled, <<"rename">>, M2} = F(M1, [<<"rename">>, <<"out">>, <<"k1">>], [<<"out">>]),
    ?assertEqual([], ets:lookup(T, <<"k1">>)),
    ?assertEqual([<<"k1">>], unknown_keys(M2, 0)),
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
    ?assertEqual([<<"k1">>, <<"s1">>, <<"s2">>], unknown_keys(M9, 0)),
    %% a known key renamed onto an unknown one: RENAME sets it whole
    {ok, M10} = F(M9, [<<"rename">>, <<"l1">>, <<"k1">>], []),
    ?assertEqual([{<<"k1">>, [<<"y">>]}], ets:lookup(T, <<"k1">>)),
    ?assertEqual([], ets:lookup(T, <<"l1">>)),
    %% an unknown one renamed onto a kept one: both unknown
    {unhandled, _, M11} = F(M10, [<<"renamenx">>, <<"s1">>, <<"l1">>], []),
    ?assertEqual([<<"l1">>, <<"s1">>, <<"s2">>], unknown_keys(M11, 0)),
    delete(M11).

%% A poisoned key read by a command: what the command writes is unknown.
poisoned_source_test() ->
    M0 = new(t, 0),
    T = tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"sadd">>, <<"a">>, <<"1">>], [<<"sadd">>, <<"b">>, <<"2">>],
                      [<<"sadd">>, <<"d">>, <<"1">>, <<"2">>]]),
    {unhandled, _, M2} = apply_cmd(M1, 0, <<"frobnicate">>, [<<"a">>]),
    %% D was {1, 2}; the union of the unknown A and B: unknown, not {2}
    {unhandled, _, M3} = apply_cmd(M2, 0, <<"sunionstore">>, [<<"d">>, <<"a">>, <<"b">>]),
    ?assertEqual([], ets:lookup(T, <<"d">>)),
    ?assertEqual([{<<"b">>, [<<"2">>]}], ets:lookup(T, <<"b">>)),
    ?assertEqual([<<"a">>, <<"d">>], unknown_keys(M3, 0)),
    delete(M3).

%% A mirror of some databases follows keys moved or swapped between them.
some_dbs_test() ->
    M0 = new(t, [2, 0]),
    ?assertEqual(tid(M0, 0), tid(M0)),
    M1 = lists:foldl(fun({Db, C}, Acc) -> ap(Acc, Db, C) end, M0,
                     [{0, [<<"set">>, <<"a">>, <<"1">>]}, {1, [<<"set">>, <<"a">>, <<"x">>]},
                      {0, [<<"move">>, <<"a">>, <<"2">>]}]),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(tid(M1, 2), <<"a">>)),
    ?assertEqual(undefined, tid(M1, 1)),
    {unhandled, _, M2} = apply_cmd(M1, 1, <<"move">>, [<<"b">>, <<"0">>]),
    ?assertEqual([<<"b">>], unknown_keys(M2, 0)),
    {ok, M3} = apply_cmd(M2, 0, <<"swapdb">>, [<<"0">>, <<"2">>]),
    ?assertEqual([{<<"a">>, <<"1">>}], ets:lookup(tid(M3, 0), <<"a">>)),
    ?assertEqual([<<"b">>], unknown_keys(M3, 2)),
    {unhandled, _, M4} = apply_cmd(M3, 0, <<"swapdb">>, [<<"2">>, <<"5">>]),
    ?assertEqual({all_but, []}, unknown_keys(M4, 2)),
    delete(M4).

field_expiry_test() ->
    M0 = new(t, 0),
    T = tid(M0),
    M1 = lists:foldl(fun(C, Acc) -> ap(Acc, 0, C) end, M0,
                     [[<<"hset">>, <<"h">>, <<"a">>, <<"1">>, <<"b">>, <<"2">>],
                      [<<"hpexpireat">>, <<"h">>, <<"1">>, <<"FIELDS">>, <<"1">>, <<"a">>]]),
    ?assertEqual([{<<"h">>, #{<<"b">> => <<"2">>}}], lookup(T, <<"h">>)),
    ?assertEqual(#{<<"a">> => 1}, field_ttls(T, <<"h">>)),
    M2 = ap(M1, 0, [<<"hdel">>, <<"h">>, <<"a">>]),
    ?assertEqual(#{}, field_ttls(T, <<"h">>)),
    delete(M2).
-endif.
