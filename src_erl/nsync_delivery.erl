%%% @doc Where a link's items go: turns the items of the NIF's batches
%%% (`nsync_nif:item()') into the events of DESIGN.md for the callback
%%% (`nsync_callback') and applies them to the tables the callback routes
%%% them to (`nsync_tables', `nsync_mirror').
%%%
%%% Snapshot keys come as `{keys, Db, DataRows, ExpiryRows, BigHashes}'. The
%%% default mirror inserts the row lists as they are (one ETS insert per
%%% table per item: its only work per key) and makes the maps of the big
%%% hashes. A user callback gets one `{load, Key, Value}' per key, in
%%% snapshot order, and each key goes to the table its return value names,
%%% again with one insert per table per item. Commands are given to the
%%% callback, then applied to the table it names; FLUSHALL, FLUSHDB and
%%% SWAPDB to every table of the link. A command that also names keys a key
%%% filter leaves out (`{cmd, Db, Cmd, Args, Filtered}') reaches the
%%% callback as any other; the mirror is told which keys it does not keep.
%%%
%%% Runs in the link process, which writes the tables (their life cycle,
%%% and who owns them, is `nsync_tables''s).
-module(nsync_delivery).

-include("nsync_log.hrl").

-export([new/1, runs/2, item/2, closed/1, tables/1, stale/1, unhandled/1, callback_errors/1,
         delete/1, release/1]).

-export_type([delivery/0]).

-record(delivery, {
          callback :: nsync_callback:callback(),
          %% the default mirror, not a user callback
          default :: boolean(),
          name :: atom(),
          %% the database(s) a user callback sees
          db :: nsync_mirror:dbspec(),
          %% where the tables are: a link's own (nsync_tables), or a
          %% cluster's view (nsync_cluster_shard, for a shard's link)
          tables_mod = nsync_tables :: nsync_tables | nsync_cluster_shard,
          tables :: nsync_tables:tables() | nsync_cluster_shard:shard(),
          unhandled = 0 :: non_neg_integer(),
          %% names reported once: unhandled commands, tables owned by others
          reported = sets:new() :: sets:set(term())
         }).

%% Distinct problems (unhandled command names, tables taken) logged.
-define(MAX_REPORTED, 100).

-opaque delivery() :: #delivery{}.
-type key() :: binary().
-type rows() :: {[{key(), term()}], [{key(), integer() | undefined, map()}]}.

%% @doc The delivery of a link with `Config'; it takes over the tables a
%% dead link of its name left, and the default mirror's name is held at
%% once (it may be taken).
-spec new(nsync_opts:config()) -> {ok, delivery()} | {error, {already_started, pid()}}.
new(#{callback := Callback, name := Name, db := Db, compressed := Compressed} = Config) ->
    Settings = maps:with([hll_sparse_max_bytes, geo_formula, big_threshold], Config),
    {Mod, Tables0} = case Config of
                         #{cluster_shard := {View, Shard}} ->
                             {nsync_cluster_shard,
                              nsync_cluster_shard:new(View, Shard, {Compressed, Settings})};
                         _ ->
                             {nsync_tables,
                              nsync_tables:adopt(Name, nsync_tables:new(Db, Compressed, Settings))}
                     end,
    D = #delivery{callback = nsync_callback:new(Callback, Name),
                  default = Callback =:= default, name = Name, db = Db,
                  tables_mod = Mod, tables = Tables0},
    %% a cluster's view has the default table whatever the callback
    case D#delivery.default orelse Mod =:= nsync_cluster_shard of
        true ->
            case Mod:claim(Name, D#delivery.tables) of
                {ok, Tables} -> {ok, D#delivery{tables = Tables}};
                {error, _} = Error -> Error
            end;
        false ->
            {ok, D}
    end.

%% @doc The items of a batch as `item/2' takes them: for the default mirror,
%% each run of plain SETs (`SET Key Value') of one db becomes one
%% `{sets, Db, [{Key, Value}]}', applied in one go.
-spec runs([nsync_nif:item()], delivery()) -> [item()].
runs(Items, #delivery{default = true}) -> set_runs(Items);
runs(Items, #delivery{}) -> Items.

-type item() :: nsync_nif:item() | {sets, non_neg_integer(), [{key(), binary()}]}.

set_runs([{cmd, Db, <<"set">>, [K, V]} | Rest]) ->
    {Rows, Rest1} = set_run(Db, Rest, [{K, V}]),
    [{sets, Db, Rows} | set_runs(Rest1)];
set_runs([Item | Rest]) -> [Item | set_runs(Rest)];
set_runs([]) -> [].

set_run(Db, [{cmd, Db, <<"set">>, [K, V]} | Rest], Acc) -> set_run(Db, Rest, [{K, V} | Acc]);
set_run(_Db, Rest, Acc) -> {lists:reverse(Acc), Rest}.

%% @doc Delivers one item of a batch.
-spec item(item(), delivery()) -> delivery().
item({sets, Db, Rows}, #delivery{tables_mod = nsync_tables, tables = T, name = Name} = D) ->
    case nsync_tables:live(Name, T) of
        {ok, Mirror, T1} ->
            {ok, Mirror1} = nsync_apply:apply_sets(Mirror, Db, Rows),
            D#delivery{tables = nsync_tables:update(Name, Mirror, Mirror1, T1)};
        {taken, Owner} ->
            table_taken(Name, Owner, D)
    end;
item({sets, Db, Rows}, D) ->
    lists:foldl(fun({K, V}, Acc) -> item({cmd, Db, <<"set">>, [K, V]}, Acc) end, D, Rows);
item({keys, Db, DataRows, ExpiryRows, BigHashes}, D) ->
    keys(Db, DataRows, ExpiryRows, BigHashes, D);
item({cmd, Db, Cmd, Args}, D) ->
    command(Db, Cmd, Args, [], D);
item({cmd, Db, Cmd, Args, Filtered}, D) ->
    command(Db, Cmd, Args, Filtered, D);
item({fullresync, _Replid, _Offset}, #delivery{tables_mod = Mod, tables = T} = D) ->
    D#delivery{tables = Mod:start_load(T)};
item({continue, _Replid, _Offset}, #delivery{tables_mod = Mod, tables = T} = D) ->
    %% The master kept our (pre-full-sync) position: the live tables plus
    %% the backlog are the dataset, a half-loaded snapshot is not.
    D#delivery{tables = Mod:discard_load(T)};
item({load_eof, _Replid, _Offset}, #delivery{tables_mod = Mod, tables = T} = D) ->
    notify({load, eof}, D#delivery{tables = Mod:publish_load(T)}).

%% @doc The connection of a session that had reached the master went away.
-spec closed(delivery()) -> delivery().
closed(D) ->
    notify({error, closed}, D).

%% @doc The names of the link's tables.
-spec tables(delivery()) -> [atom()].
tables(#delivery{tables_mod = Mod, tables = T}) ->
    Mod:names(T).

%% @doc Whether readers see tables a dead link of this name loaded (taken
%% over, until this link's first snapshot is complete).
-spec stale(delivery()) -> boolean().
stale(#delivery{tables_mod = Mod, tables = T}) ->
    Mod:stale(T).

%% @doc Commands the mirror could not apply.
-spec unhandled(delivery()) -> non_neg_integer().
unhandled(#delivery{unhandled = N}) ->
    N.

%% @doc Times the callback raised.
-spec callback_errors(delivery()) -> non_neg_integer().
callback_errors(#delivery{callback = Cb}) ->
    nsync_callback:errors(Cb).

%% @doc Deletes every table of the link (it is stopping).
-spec delete(delivery()) -> ok.
delete(#delivery{tables_mod = Mod, tables = T}) ->
    Mod:delete_all(T).

%% @doc The link dies without being stopped: its published tables stay for
%% the next link of its name (see `nsync_tables').
-spec release(delivery()) -> ok.
release(#delivery{tables_mod = Mod, tables = T}) ->
    Mod:release(T).

%%% ------------------------------------------------------- snapshot keys

keys(Db, DataRows, ExpiryRows, BigHashes, #delivery{default = true, name = Name} = D) ->
    D1 = load(Name, Db, {DataRows, ExpiryRows}, D),
    case BigHashes of
        [] -> D1;
        _ -> load(Name, Db, big_rows(BigHashes), D1)
    end;
keys(Db, DataRows, ExpiryRows, BigHashes, #delivery{callback = Cb} = D) ->
    {BigData, BigExpiry} = big_rows(BigHashes),
    {Routed, Cb1} = route_keys(DataRows, ExpiryRows, #{}, Cb),
    {Routed1, Cb2} = route_keys(BigData, BigExpiry, Routed, Cb1),
    maps:fold(fun(Name, Rows, Acc) -> load(Name, Db, Rows, Acc) end,
              D#delivery{callback = Cb2}, Routed1).

%% The rows of hashes too big for the NIF's pump to make maps of.
-spec big_rows(list()) -> rows().
big_rows(BigHashes) ->
    {[{Key, maps:from_list(Fields)} || {Key, Fields, _, _} <- BigHashes],
     [{Key, ExpireAt, maps:from_list(FieldExpires)}
      || {Key, _, ExpireAt, FieldExpires} <- BigHashes,
         ExpireAt =/= undefined orelse FieldExpires =/= []]}.

%% Gives each key to the callback and groups its rows by the table the
%% callback names. Expiry rows are a subsequence of the data rows.
route_keys([], _ExpiryRows, Routed, Cb) ->
    {Routed, Cb};
route_keys([{Key, Value} = Row | Rest], ExpiryRows, Routed, Cb) ->
    {Expiry, ExpiryRest} = case ExpiryRows of
                               [{Key, _, _} = E | ERest] -> {[E], ERest};
                               _ -> {[], ExpiryRows}
                           end,
    case nsync_callback:notify({load, Key, Value}, Cb) of
        {none, Cb1} ->
            route_keys(Rest, ExpiryRest, Routed, Cb1);
        {Name, Cb1} ->
            Routed1 = case Routed of
                          #{Name := {Rows, ERows}} ->
                              Routed#{Name := {[Row | Rows], Expiry ++ ERows}};
                          _ ->
                              Routed#{Name => {[Row], Expiry}}
                      end,
            route_keys(Rest, ExpiryRest, Routed1, Cb1)
    end.

load(Name, Db, {DataRows, ExpiryRows}, #delivery{tables_mod = Mod, tables = T} = D) ->
    case Mod:load(Name, Db, DataRows, ExpiryRows, T) of
        {ok, T1} -> D#delivery{tables = T1};
        {taken, Owner} -> table_taken(Name, Owner, D)
    end.

%%% ------------------------------------------------------------ commands

command(Db, Cmd, Args, Filtered, D) ->
    case visible(Db, Cmd, D) of
        true ->
            {Route, Cb} = nsync_callback:notify({cmd, Cmd, Args}, D#delivery.callback),
            apply_cmd(Route, Db, Cmd, Args, Filtered, D#delivery{callback = Cb});
        false ->
            D
    end.

%% With `{db, N}' a user callback sees only db N, plus the commands that
%% concern every db (`nsync_cmd:all_dbs/1'), and no SELECT (noise when
%% everything is db N); with `{db, all}' it sees everything, SELECT
%% included, to follow the dbs, and with a list of dbs those dbs' commands
%% and the SELECTs. The default mirror gets everything and filters by
%% itself, since it must follow keys moved into its db.
visible(_Db, _Cmd, #delivery{default = true}) -> true;
visible(_Db, _Cmd, #delivery{db = all}) -> true;
visible(_Db, <<"select">>, #delivery{db = Dbs}) -> is_list(Dbs);
visible(Db, Cmd, #delivery{db = Dbs}) when is_list(Dbs) ->
    lists:member(Db, Dbs) orelse nsync_cmd:all_dbs(Cmd);
visible(Db, Cmd, #delivery{db = Wanted}) ->
    Db =:= Wanted orelse nsync_cmd:all_dbs(Cmd).

%% A command that spans the dataset (`nsync_cmd:spans_dataset/1') goes to
%% every table of the link, any other to the table the callback named.
apply_cmd(Route, Db, Cmd, Args, Filtered, #delivery{tables_mod = Mod, tables = T} = D) ->
    case nsync_cmd:spans_dataset(Cmd) of
        true -> lists:foldl(fun(Name, Acc) -> apply_to(Name, Db, Cmd, Args, Filtered, Acc) end,
                            D, Mod:names(T));
        false when Route =:= none -> D;
        false -> apply_to(Route, Db, Cmd, Args, Filtered, D)
    end.

apply_to(Name, Db, Cmd, Args, Filtered, #delivery{tables_mod = Mod, tables = T} = D) ->
    case Mod:apply_cmd(Name, Db, Cmd, Args, Filtered, T) of
        {ok, T1} -> D#delivery{tables = T1};
        {unhandled, What, T1} -> unhandled(What, D#delivery{tables = T1});
        {taken, Owner} -> table_taken(Name, Owner, D)
    end.

unhandled(Cmd, #delivery{default = Default, unhandled = N} = D) ->
    D1 = D#delivery{unhandled = N + 1},
    case Default of
        true ->
            report_once({unhandled, Cmd}, D1,
                        fun() -> ?LOG_WARNING("nsync: the mirror cannot apply ~s; "
                                              "its keys may differ from the master", [Cmd],
                                              ?NSYNC_LOG)
                        end);
        false ->
            notify({error, {unhandled, Cmd}}, D1)
    end.

%%% --------------------------------------------------------------- misc

notify(Event, #delivery{callback = Cb} = D) ->
    {_Route, Cb1} = nsync_callback:notify(Event, Cb),
    D#delivery{callback = Cb1}.

%% A table routed to by name is owned by another link: refused (once
%% logged), the event is not stored.
table_taken(Name, Owner, D) ->
    report_once({table_taken, Name}, D,
                fun() ->
                        ?LOG_ERROR("nsync: table ~p belongs to link ~p; "
                                   "events routed to it are not stored", [Name, Owner],
                                   ?NSYNC_LOG)
                end).

%% At most ?MAX_REPORTED problems are logged (and remembered), then one
%% line says the rest are only counted: a master sending many different
%% unknown commands cannot flood the log nor grow the link's memory.
report_once(Key, #delivery{reported = Reported} = D, Log) ->
    case sets:is_element(Key, Reported) orelse sets:size(Reported) of
        true ->
            D;
        ?MAX_REPORTED ->
            ?LOG_WARNING("nsync: ~b different problems logged; further ones are not "
                         "(see status/1's counts)", [?MAX_REPORTED], ?NSYNC_LOG),
            D#delivery{reported = sets:add_element(too_many, Reported)};
        Size when Size > ?MAX_REPORTED ->
            D;
        _ ->
            Log(),
            D#delivery{reported = sets:add_element(Key, Reported)}
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

%% However many different problems, at most ?MAX_REPORTED are logged and
%% remembered.
report_once_is_bounded_test() ->
    Self = self(),
    Report = fun(I, D) -> report_once({unhandled, I rem 250}, D, fun() -> Self ! logged end) end,
    D = lists:foldl(Report, #delivery{}, lists:seq(1, 1000)),
    Logged = length([x || _ <- lists:seq(1, 300), receive logged -> true after 0 -> false end]),
    ?assertEqual(?MAX_REPORTED, Logged),
    ?assertEqual(?MAX_REPORTED + 1, sets:size(D#delivery.reported)).

big_rows_test() ->
    ?assertEqual({[{<<"a">>, #{<<"f">> => <<"1">>}}, {<<"b">>, #{}}],
                  [{<<"b">>, 5, #{<<"g">> => 7}}]},
                 big_rows([{<<"a">>, [{<<"f">>, <<"1">>}], undefined, []},
                           {<<"b">>, [], 5, [{<<"g">>, 7}]}])).

runs_test() ->
    Set = fun(Db, K) -> {cmd, Db, <<"set">>, [K, K]} end,
    Items = [Set(0, <<"a">>), Set(0, <<"b">>), {cmd, 0, <<"set">>, [<<"c">>, <<"1">>, <<"ex">>, <<"9">>]},
             Set(0, <<"d">>), Set(1, <<"e">>), {cmd, 0, <<"del">>, [<<"a">>]}, Set(0, <<"f">>)],
    ?assertEqual([{sets, 0, [{<<"a">>, <<"a">>}, {<<"b">>, <<"b">>}]}, lists:nth(3, Items),
                  {sets, 0, [{<<"d">>, <<"d">>}]}, {sets, 1, [{<<"e">>, <<"e">>}]},
                  lists:nth(6, Items), {sets, 0, [{<<"f">>, <<"f">>}]}],
                 set_runs(Items)).

route_keys_test() ->
    Self = self(),
    Cb = nsync_callback:new(fun({load, <<"x", _/binary>>, _} = E) -> Self ! E, x;
                               ({load, _, _} = E) -> Self ! E, skip
                            end, mirror),
    Data = [{<<"x1">>, <<"1">>}, {<<"y">>, <<"2">>}, {<<"x2">>, <<"3">>}],
    Expiry = [{<<"y">>, 9, #{}}, {<<"x2">>, 8, #{}}],
    {Routed, _} = route_keys(Data, Expiry, #{}, Cb),
    ?assertEqual(#{x => {[{<<"x2">>, <<"3">>}, {<<"x1">>, <<"1">>}], [{<<"x2">>, 8, #{}}]}},
                 Routed),
    %% the callback saw every key, in snapshot order
    ?assertEqual([{load, K, V} || {K, V} <- Data],
                 [receive E -> E after 0 -> none end || _ <- Data]).
-endif.
