%%% @doc The tables of one link and their life cycle.
%%%
%%% A link keeps, per name, the mirror (`nsync_mirror') readers see: its
%%% live tables. A full sync loads into new tables (`start_load/1'):
%%% readers keep the live ones until the snapshot is complete, then
%%% `publish_load/1' switches the registry (`nsync_registry') to the new
%%% tables at once and retires the old ones, which the link deletes a
%%% little later (`retire/2'), so that a reader that looked one up just
%%% before the switch can still finish. A load cut short is discarded
%%% (`discard_load/1'). A name is node-wide: a name another link owns is
%%% refused. No process of its own: the link process owns the tables.
-module(nsync_tables).

-export([new/3, claim/2, apply_cmd/5, start_load/1, load/5, discard_load/1, publish_load/1, retire/2,
         live/2, update/4, names/1, delete_all/1]).

-export_type([tables/0]).

-record(tables, {
          db :: non_neg_integer() | all,
          compressed :: boolean(),
          %% the master's settings the mirrors follow (nsync_mirror:new/4)
          settings :: map(),
          %% what readers see: name => mirror
          live = #{} :: #{atom() => nsync_mirror:mirror()},
          %% being filled by the current full sync, published at its end
          loading :: #{atom() => nsync_mirror:mirror()} | undefined,
          %% replaced by a full sync, deleted after a grace period
          retired = #{} :: #{reference() => [nsync_mirror:mirror()]}
         }).

-opaque tables() :: #tables{}.
-type taken() :: {taken, Owner :: pid()}.

%% @doc No tables yet; mirrors of database `Db' (or of every database)
%% with `compressed' data tables or not, following the master's `Settings'
%% (see `nsync_mirror:new/4').
-spec new(non_neg_integer() | all, boolean(), map()) -> tables().
new(Db, Compressed, Settings) ->
    #tables{db = Db, compressed = Compressed, settings = Settings}.

%% @doc Creates the live table `Name' at once (the default mirror, when the
%% link starts).
-spec claim(atom(), tables()) -> {ok, tables()} | {error, {already_started, pid()}}.
claim(Name, T) ->
    case live(Name, T) of
        {ok, _Mirror, T1} -> {ok, T1};
        {taken, Owner} -> {error, {already_started, Owner}}
    end.

%% @doc A full sync starts: an empty table for every live name (names of
%% the old snapshot absent from the new one get an empty table too).
-spec start_load(tables()) -> tables().
start_load(T) ->
    T1 = discard_load(T),
    T1#tables{loading = maps:map(fun(Name, _) -> new_mirror(Name, T1) end, T1#tables.live)}.

%% @doc Loads snapshot rows of database `Db' into the loading table `Name'
%% (created on demand). Rows outside a full sync are dropped.
-spec load(atom(), non_neg_integer(), [tuple()], [tuple()], tables()) ->
          {ok, tables()} | taken().
load(_Name, _Db, _DataRows, _ExpiryRows, #tables{loading = undefined} = T) ->
    {ok, T};
load(Name, Db, DataRows, ExpiryRows, #tables{loading = Loading} = T) ->
    case loading_mirror(Name, T) of
        {ok, Mirror} ->
            Mirror1 = nsync_mirror:load(Mirror, Db, DataRows, ExpiryRows),
            {ok, T#tables{loading = Loading#{Name => Mirror1}}};
        {taken, _} = Taken ->
            Taken
    end.

%% @doc The full sync will not complete (the master resumed the stream
%% instead): its tables go.
-spec discard_load(tables()) -> tables().
discard_load(#tables{loading = Loading} = T) ->
    lists:foreach(fun nsync_mirror:delete/1, loading_mirrors(Loading)),
    T#tables{loading = undefined}.

%% @doc The snapshot is complete: readers switch to its tables at once.
%% The tables it replaces are retired under the returned reference, to be
%% deleted with `retire/2' after a grace period (`none' if there are none).
-spec publish_load(tables()) -> {reference() | none, tables()}.
publish_load(#tables{loading = undefined} = T) ->
    {none, T};
publish_load(#tables{loading = Loading, live = Live, retired = Retired} = T) ->
    maps:foreach(fun publish/2, Loading),
    T1 = T#tables{live = maps:merge(Live, Loading), loading = undefined},
    case maps:values(maps:with(maps:keys(Loading), Live)) of
        [] ->
            {none, T1};
        Old ->
            Ref = make_ref(),
            {Ref, T1#tables{retired = Retired#{Ref => Old}}}
    end.

%% @doc Deletes the tables retired under `Ref'.
-spec retire(reference(), tables()) -> tables().
retire(Ref, #tables{retired = Retired} = T) ->
    {Old, Retired1} = maps:take(Ref, Retired),
    lists:foreach(fun nsync_mirror:delete/1, Old),
    T#tables{retired = Retired1}.

%% @doc The live table `Name', created (and published) on demand.
-spec live(atom(), tables()) -> {ok, nsync_mirror:mirror(), tables()} | taken().
live(Name, #tables{live = Live} = T) ->
    case Live of
        #{Name := Mirror} ->
            {ok, Mirror, T};
        _ ->
            case nsync_registry:claimable(Name) of
                true ->
                    Mirror = new_mirror(Name, T),
                    publish(Name, Mirror),
                    {ok, Mirror, T#tables{live = Live#{Name => Mirror}}};
                {false, Owner} ->
                    {taken, Owner}
            end
    end.

%% @doc Applies a command of the stream to the live table `Name' (created
%% on demand).
-spec apply_cmd(atom(), non_neg_integer(), binary(), [binary()], tables()) ->
          {ok, tables()} | {unhandled, binary(), tables()} | taken().
apply_cmd(Name, Db, Cmd, Args, T) ->
    case live(Name, T) of
        {ok, Mirror, T1} ->
            case nsync_mirror:apply_cmd(Mirror, Db, Cmd, Args) of
                {ok, Mirror1} -> {ok, update(Name, Mirror, Mirror1, T1)};
                {unhandled, What, Mirror1} -> {unhandled, What, update(Name, Mirror, Mirror1, T1)}
            end;
        {taken, _} = Taken ->
            Taken
    end.

%% @doc The live table `Name' changed from `Old' to `New' (a command
%% applied to it); readers learn of a database table it created.
-spec update(atom(), nsync_mirror:mirror(), nsync_mirror:mirror(), tables()) -> tables().
update(_Name, Same, Same, T) ->
    %% the usual case: only ETS changed
    T;
update(Name, Old, New, #tables{live = Live} = T) ->
    case nsync_mirror:same_dbs(Old, New) of
        true -> ok;
        false -> publish(Name, New)
    end,
    T#tables{live = Live#{Name := New}}.

%% @doc The live names.
-spec names(tables()) -> [atom()].
names(#tables{live = Live}) ->
    maps:keys(Live).

%% @doc Deletes every table and frees the names (the link is stopping).
-spec delete_all(tables()) -> ok.
delete_all(#tables{live = Live, loading = Loading, retired = Retired}) ->
    nsync_registry:unpublish(maps:keys(Live)),
    lists:foreach(fun nsync_mirror:delete/1,
                  maps:values(Live) ++ loading_mirrors(Loading)
                  ++ lists:append(maps:values(Retired))).

%%% ------------------------------------------------------------ internal

new_mirror(Name, #tables{db = Db, compressed = Compressed, settings = Settings}) ->
    nsync_mirror:new(Name, Db, Compressed, Settings).

publish(Name, Mirror) ->
    nsync_registry:publish(Name, nsync_mirror:tid(Mirror), maps:from_list(nsync_mirror:dbs(Mirror))).

loading_mirror(Name, #tables{loading = Loading} = T) ->
    case Loading of
        #{Name := Mirror} -> {ok, Mirror};
        _ ->
            case nsync_registry:claimable(Name) of
                true -> {ok, new_mirror(Name, T)};
                {false, Owner} -> {taken, Owner}
            end
    end.

loading_mirrors(undefined) -> [];
loading_mirrors(Loading) -> maps:values(Loading).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

row(K) -> {K, <<"v">>}.

tid(Name) ->
    case nsync_registry:lookup(Name) of
        {_Owner, Tid} -> Tid;
        undefined -> undefined
    end.

full_sync_test() ->
    {ok, T0} = claim(tables_test, new(0, true, #{})),
    Old = tid(tables_test),
    ?assertEqual([tables_test], names(T0)),
    %% a full sync loads beside the live table; readers see the live one
    T1 = start_load(T0),
    {ok, T2} = load(tables_test, 0, [row(<<"a">>)], [], T1),
    {ok, T3} = load(tables_test_other, 0, [row(<<"b">>)], [], T2),
    ?assertEqual(Old, tid(tables_test)),
    ?assertEqual(undefined, tid(tables_test_other)),
    ?assertEqual(0, ets:info(Old, size)),
    %% at eof the registry switches; the old table is retired, not deleted
    {Ref, T4} = publish_load(T3),
    New = tid(tables_test),
    ?assertNotEqual(Old, New),
    ?assertEqual([row(<<"a">>)], ets:tab2list(New)),
    ?assertEqual([row(<<"b">>)], ets:tab2list(tid(tables_test_other))),
    ?assertEqual([tables_test, tables_test_other], lists:sort(names(T4))),
    ?assertEqual(0, ets:info(Old, size)),
    T5 = retire(Ref, T4),
    ?assertEqual(undefined, ets:info(Old)),
    ok = delete_all(T5),
    ?assertEqual(undefined, ets:info(New)),
    ?assertEqual(undefined, tid(tables_test)).

discarded_load_test() ->
    {ok, T0} = claim(tables_test, new(0, true, #{})),
    Live = tid(tables_test),
    {ok, T1} = load(tables_test, 0, [row(<<"a">>)], [], start_load(T0)),
    T2 = discard_load(T1),
    ?assertEqual({none, T2}, publish_load(T2)),
    ?assertEqual(Live, tid(tables_test)),
    %% rows outside a full sync are dropped
    ?assertEqual({ok, T2}, load(tables_test, 0, [row(<<"b">>)], [], T2)),
    ?assertEqual(0, ets:info(Live, size)),
    ok = delete_all(T2).

taken_name_test() ->
    Parent = self(),
    Owner = spawn(fun() ->
                          {ok, T} = claim(tables_taken, new(0, true, #{})),
                          Parent ! {claimed, T},
                          receive stop -> delete_all(T) end
                  end),
    receive {claimed, _} -> ok end,
    ?assertEqual({error, {already_started, Owner}}, claim(tables_taken, new(0, true, #{}))),
    ?assertEqual({taken, Owner}, live(tables_taken, new(0, true, #{}))),
    ?assertEqual({taken, Owner}, load(tables_taken, 0, [], [], start_load(new(0, true, #{})))),
    Owner ! stop.
-endif.
