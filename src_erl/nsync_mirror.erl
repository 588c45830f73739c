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
%%% The mirror also remembers the keys whose values it does not know
%%% (`forget/3': a command it could not apply touched them) until a command
%%% sets them whole (`learn/3'); `nsync_apply' applies the command stream
%%% through the functions of the "for the applier" section.
-module(nsync_mirror).

-include("nsync_log.hrl").

-export([new/2, new/3, new/4, tid/1, tid/2, tables/1, load/4, fold/4, delete/1,
         lookup/2,
         entry/3, ttl/2, field_ttls/2, dbs/1, same_dbs/2, unknown_keys/2]).
%% for nsync_apply
-export([mirrored/2, tabs/2, read/2, write/3, replace/4, limits/1, settings/1, all_known/2, is_unknown/4,
         forget/3, learn/3, clear_db/2, clear_all/1, drop_slots/3, swap/3, all_unknown/2]).

-export_type([mirror/0, settings/0, dbspec/0, tabs/0, entry/0]).

-define(KEY(Tid), {?MODULE, Tid}).

-type db() :: non_neg_integer().
%% The database mirrored, every database, or some of them (each database
%% in its own table but for `N').
-type dbspec() :: db() | all | [db(), ...].
-type tabs() :: {ets:tid(), ets:tid()}.
%% A key's value, its expiry and its hash fields' expiries.
-type entry() :: {term(), integer() | undefined, #{binary() => integer()}}.
-type forget() :: #{binary() => true} | {all, #{binary() => true}}.
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
                      unknown := #{db() => forget()}}.

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
    M = #{name => Name, dbspec => DbSpec, compressed => Compressed, dbs => #{}, unknown => #{},
          big => Big,
          settings => maps:merge(#{hll_sparse_max_bytes => 3000, geo_formula => since_7_0},
                                 maps:without([big_threshold], Settings))},
    {M1, _} = tabs(M, first_db(DbSpec)),
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
    %% write_concurrency: a cluster view's shard links write one table at
    %% once; true, not auto (auto lost routed tables' live writes on OTP 25)
    Data = ets:new(Name, [set, public, {read_concurrency, true}, {write_concurrency, true}
                          | [compressed || Compressed]]),
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

%% @doc Whether database `Db' is mirrored.
-spec mirrored(mirror(), db()) -> boolean().
mirrored(#{dbspec := all}, _Db) -> true;
mirrored(#{dbspec := Dbs}, Db) when is_list(Dbs) -> lists:member(Db, Dbs);
mirrored(#{dbspec := N}, Db) -> N =:= Db.

%% @doc The tables of database `Db', created if it has none yet.
-spec tabs(mirror(), db()) -> {mirror(), tabs()}.
tabs(#{dbs := Dbs, name := Name, compressed := Compressed, settings := S} = M, Db) ->
    case Dbs of
        #{Db := T} -> {M, T};
        _ -> T = new_tabs(Name, Compressed, S), {M#{dbs := Dbs#{Db => T}}, T}
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
            {M, {Data, Exp}} = tabs(M0, Db),
            ets:insert(Data, DataRows),
            case ExpiryRows of
                [] -> ok;
                _ -> ets:insert(Exp, ExpiryRows)
            end,
            M;
        false ->
            M0
    end.

%% @doc Writes the entry of `Key' (its value, expiry and hash-field
%% expiries) or deletes it. A big value's expiry row holds its handle.
-spec write(tabs(), binary(), entry() | delete) -> true.
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

%% @doc Writes `New' over `Old' (the entry `read/2' gave, `none' if
%% absent) as `write/3' does, without touching the expiry table when
%% neither has a row there (the usual case).
-spec replace(tabs(), binary(), entry() | none, entry() | delete) -> true.
replace({Data, _} = Tabs, Key, Old, {V, undefined, F} = New)
  when map_size(F) =:= 0, not is_reference(V) ->
    case has_expiry_row(Old) of
        false -> ets:insert(Data, {Key, V});
        true -> write(Tabs, Key, New)
    end;
replace(Tabs, Key, _Old, New) ->
    write(Tabs, Key, New).

has_expiry_row(none) -> false;
has_expiry_row({V, E, F}) -> is_reference(V) orelse E =/= undefined orelse map_size(F) > 0.

%% @doc The entry of `Key', expired or not; `none' if absent.
-spec read(tabs(), binary()) -> entry() | none.
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

%%% ------------------------------------------------------------ unknown keys

%% @doc The keys of database `Db' the mirror has lost track of (absent from
%% its table, whatever the master holds), or `{all_but, Known}' after a
%% SWAPDB with a database it does not mirror (every key is unknown but
%% those written since).
-spec unknown_keys(mirror(), db()) -> [binary()] | {all_but, [binary()]}.
unknown_keys(#{unknown := P}, Db) ->
    case P of
        #{Db := {all, Known}} -> {all_but, lists:sort(maps:keys(Known))};
        #{Db := Map} -> lists:sort(maps:keys(Map));
        _ -> []
    end.

%% @doc Whether the mirror has lost track of `K' in database `Db'.
-spec is_unknown(mirror(), db(), tabs(), binary()) -> boolean().
is_unknown(#{unknown := P}, Db, {Data, _}, K) ->
    case P of
        #{Db := {all, Known}} -> not is_map_key(K, Known) andalso not ets:member(Data, K);
        #{Db := Map} -> is_map_key(K, Map);
        _ -> false
    end.

%% @doc Marks keys unknown and removes them from the table.
-spec forget(mirror(), db(), [binary()]) -> mirror().
forget(M, _Db, []) -> M;
forget(M0, Db, Keys) ->
    case mirrored(M0, Db) of
        false -> M0;
        true ->
            {#{unknown := P} = M, Tabs} = tabs(M0, Db),
            [write(Tabs, K, delete) || K <- Keys],
            P2 = case maps:get(Db, P, #{}) of
                     {all, Known} -> {all, maps:without(Keys, Known)};
                     Map -> maps:merge(Map, maps:from_list([{K, true} || K <- Keys]))
                 end,
            M#{unknown := P#{Db => P2}}
    end.

%% @doc Marks keys known again (a command set them whole).
-spec learn(mirror(), db(), [binary()]) -> mirror().
learn(M, _Db, []) -> M;
learn(#{unknown := P} = M, Db, Keys) ->
    P2 = case maps:get(Db, P, #{}) of
             {all, Known} -> {all, maps:merge(Known, maps:from_list([{K, true} || K <- Keys]))};
             Map -> maps:without(Keys, Map)
         end,
    M#{unknown := P#{Db => P2}}.

%% @doc Whether no key of database `Db' is unknown.
-spec all_known(mirror(), db()) -> boolean().
all_known(#{unknown := P}, Db) -> not is_map_key(Db, P).

%% @doc Every key of database `Db' is unknown but those written from now
%% on (a SWAPDB with a database the mirror does not mirror).
-spec all_unknown(mirror(), db()) -> mirror().
all_unknown(M0, Db) ->
    {#{unknown := P} = M, Tabs} = tabs(M0, Db),
    clear(Tabs),
    M#{unknown := P#{Db => {all, #{}}}}.

%%% ------------------------------------------------------------ whole databases

%% @doc Empties database `Db': every key is known (absent).
-spec clear_db(mirror(), db()) -> mirror().
clear_db(#{dbs := Dbs, unknown := P} = M, Db) ->
    case Dbs of
        #{Db := Tabs} -> clear(Tabs);
        _ -> ok
    end,
    M#{unknown := maps:remove(Db, P)}.

%% @doc Empties every database.
-spec clear_all(mirror()) -> mirror().
clear_all(#{dbs := Dbs} = M) ->
    lists:foreach(fun clear/1, maps:values(Dbs)),
    M#{unknown := #{}}.

%% @doc Deletes the keys of databases `Dbs' whose hash slot `InSlots' accepts;
%% unknown keys there are known (absent) from then on.
-spec drop_slots(mirror(), [db()], fun((0..16383) -> boolean())) -> mirror().
drop_slots(#{dbs := Tables} = M, Dbs, InSlots) ->
    In = fun(K) -> InSlots(nsync_cmd_lib:key_slot(K)) end,
    lists:foldl(fun(Db, #{unknown := P} = Acc) ->
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
                                        learn(Acc, Db, [K || K <- maps:keys(Unknown), In(K)]);
                                    _ -> Acc
                                end;
                            _ -> Acc
                        end
                end, M, Dbs).

clear({Data, Exp}) ->
    ets:delete_all_objects(Data),
    ets:delete_all_objects(Exp).

%% @doc Swaps the contents of databases `A' and `B' (their tables stay).
-spec swap(mirror(), db(), db()) -> mirror().
swap(M0, A, B) ->
    {M1, TA} = tabs(M0, A),
    {#{unknown := P} = M, TB} = tabs(M1, B),
    RowsA = dump(TA),
    RowsB = dump(TB),
    clear(TA),
    clear(TB),
    restore(TA, RowsB),
    restore(TB, RowsA),
    P2 = maps:remove(A, maps:remove(B, P)),
    P3 = case P of #{A := PA} -> P2#{B => PA}; _ -> P2 end,
    P4 = case P of #{B := PB} -> P3#{A => PB}; _ -> P3 end,
    M#{unknown := P4}.

dump({Data, Exp}) -> {ets:tab2list(Data), ets:tab2list(Exp)}.

restore({Data, Exp}, {D, E}) ->
    ets:insert(Data, D),
    ets:insert(Exp, E).

%%% ------------------------------------------------------------ settings

%% @doc The sizes above which values are big.
-spec limits(mirror()) -> nsync_big:limits().
limits(#{big := Limits}) -> Limits.

%% @doc The master's settings the HyperLogLog and GEO handlers follow.
-spec settings(mirror()) -> settings().
settings(#{settings := Settings}) -> Settings.

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
-endif.
