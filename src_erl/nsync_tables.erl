%%% @doc The tables of one link and their life cycle.
%%%
%%% A link keeps, per name, the mirror (`nsync_mirror') readers see: its
%%% live tables. A full sync loads into new tables (`start_load/1'), which
%%% the link owns: readers keep the live ones until the snapshot is
%%% complete, then `publish_load/1' hands the new tables to the node's
%%% table owner (`nsync_owner'), switches the registry (`nsync_registry')
%%% to them at once and has the owner delete the old ones after a grace
%%% period, so that a reader that looked one up just before the switch can
%%% still finish. A load cut short is discarded (`discard_load/1').
%%%
%%% Before its first snapshot a link holds its name without tables
%%% (`claim/2': readers get `undefined'). Published tables outlive the
%%% link: if it dies without stopping (`release/1', or killed), they stay
%%% with the owner and in the registry, and the next link of the same
%%% `name' takes them over (`adopt/2'): live, marked stale, until its first
%%% snapshot replaces them. A name is node-wide: a name another live link
%%% holds is refused.
-module(nsync_tables).

-export([new/3, adopt/2, claim/2, apply_cmd/6, start_load/1, load/5, discard_load/1,
         publish_load/1, live/2, update/4, names/1, stale/1, delete_all/1, release/1]).

-export_type([tables/0]).

%% Tables replaced by a full resync stay this long, so that a reader that
%% looked a table up just before the switch can still use it.
-define(RETIRED_GRACE_MS, 2000).

-record(tables, {
          %% the link's `name' option, under which its tables are found
          %% again after a crash
          link_name :: atom(),
          db :: nsync_mirror:dbspec(),
          compressed :: boolean(),
          %% the master's settings the mirrors follow (nsync_mirror:new/4)
          settings :: map(),
          %% what readers see: name => mirror
          live = #{} :: #{atom() => nsync_mirror:mirror()},
          %% names held without tables (nothing loaded yet)
          claimed = [] :: [atom()],
          %% live names whose tables a dead link loaded, until replaced
          stale = [] :: [atom()],
          %% being filled by the current full sync, published at its end
          loading :: #{atom() => nsync_mirror:mirror()} | undefined
         }).

-opaque tables() :: #tables{}.
-type taken() :: {taken, Owner :: pid()}.

%% @doc No tables yet; mirrors of database `Db' (or of every database)
%% with `compressed' data tables or not, following the master's `Settings'
%% (see `nsync_mirror:new/4').
-spec new(nsync_mirror:dbspec(), boolean(), map()) -> tables().
new(Db, Compressed, Settings) ->
    #tables{link_name = undefined, db = Db, compressed = Compressed, settings = Settings}.

%% @doc The tables of the link of `name' `LinkName' (called once, as it
%% starts): it takes over the tables a dead link of that name left, which
%% readers keep seeing, stale, until its first snapshot is complete.
-spec adopt(atom(), tables()) -> tables().
adopt(LinkName, T) ->
    lists:foldl(fun(Name, Acc) ->
                        case nsync_registry:adopt(Name, LinkName) of
                            none -> Acc;
                            Mirror -> adopted(Name, Mirror, Acc)
                        end
                end, T#tables{link_name = LinkName}, nsync_registry:adoptable(LinkName)).

%% @doc Holds the name `Name' at once (the default mirror, when the link
%% starts); its tables come with the first snapshot. Tables a dead link
%% left under that name are kept for readers until then.
-spec claim(atom(), tables()) -> {ok, tables()} | {error, {already_started, pid()}}.
claim(Name, #tables{live = Live, claimed = Claimed, link_name = LinkName} = T) ->
    case nsync_registry:claimable(Name) of
        {false, Owner} ->
            {error, {already_started, Owner}};
        true when is_map_key(Name, Live) ->
            {ok, T};
        true ->
            case nsync_registry:adopt(Name, LinkName) of
                none ->
                    ok = nsync_registry:claim(Name, LinkName),
                    {ok, T#tables{claimed = [Name | Claimed]}};
                Old ->
                    {ok, adopted(Name, Old, T)}
            end
    end.

%% @doc A full sync starts: an empty table for every name held (names of
%% the old snapshot absent from the new one get an empty table too).
-spec start_load(tables()) -> tables().
start_load(T) ->
    T1 = discard_load(T),
    Names = maps:keys(T1#tables.live) ++ T1#tables.claimed,
    T1#tables{loading = maps:from_list([{Name, new_mirror(Name, T1)} || Name <- Names])}.

%% @doc Loads snapshot rows of database `Db' into the loading table `Name'
%% (created on demand). Rows outside a full sync are dropped.
-spec load(atom(), non_neg_integer(), [tuple()], [tuple()], tables()) ->
          {ok, tables()} | taken().
load(_Name, _Db, _DataRows, _ExpiryRows, #tables{loading = undefined} = T) ->
    {ok, T};
load(Name, Db, DataRows, ExpiryRows, T) ->
    case loading_mirror(Name, T) of
        {ok, Mirror, #tables{loading = Loading} = T1} ->
            Mirror1 = nsync_mirror:load(Mirror, Db, DataRows, ExpiryRows),
            {ok, T1#tables{loading = Loading#{Name => Mirror1}}};
        {taken, _} = Taken ->
            Taken
    end.

%% @doc The full sync will not complete (the master resumed the stream
%% instead): its tables go.
-spec discard_load(tables()) -> tables().
discard_load(#tables{loading = Loading} = T) ->
    lists:foreach(fun nsync_mirror:delete/1, loading_mirrors(Loading)),
    T#tables{loading = undefined}.

%% @doc The snapshot is complete: readers switch to its tables at once; the
%% tables it replaces are deleted after a grace period.
-spec publish_load(tables()) -> tables().
publish_load(#tables{loading = undefined} = T) ->
    T;
publish_load(#tables{loading = Loading, live = Live, claimed = Claimed, stale = Stale} = T) ->
    maps:foreach(fun(Name, Mirror) -> publish(Name, Mirror, T) end, Loading),
    Names = maps:keys(Loading),
    ok = nsync_owner:retire(maps:values(maps:with(Names, Live)), ?RETIRED_GRACE_MS),
    T#tables{live = maps:merge(Live, Loading), loading = undefined,
             claimed = Claimed -- Names, stale = Stale -- Names}.

%% @doc The live table `Name', created (and published) on demand.
-spec live(atom(), tables()) -> {ok, nsync_mirror:mirror(), tables()} | taken().
live(Name, #tables{live = Live, claimed = Claimed} = T) ->
    case Live of
        #{Name := Mirror} ->
            {ok, Mirror, T};
        _ ->
            case nsync_registry:claimable(Name) of
                true ->
                    %% What a dead link of another name left here is not
                    %% this link's data: replaced by an empty table.
                    _ = [nsync_owner:retire([Old], ?RETIRED_GRACE_MS)
                         || Old <- [nsync_registry:adopt(Name, T#tables.link_name)], Old =/= none],
                    Mirror = new_mirror(Name, T),
                    publish(Name, Mirror, T),
                    {ok, Mirror, T#tables{live = Live#{Name => Mirror},
                                          claimed = Claimed -- [Name]}};
                {false, Owner} ->
                    {taken, Owner}
            end
    end.

%% @doc Applies a command of the stream to the live table `Name' (created
%% on demand); `Filtered' are its keys a key filter leaves out
%% (`nsync_apply:apply_cmd/5').
-spec apply_cmd(atom(), non_neg_integer(), binary(), [binary()], [binary()], tables()) ->
          {ok, tables()} | {unhandled, binary(), tables()} | taken().
apply_cmd(Name, Db, Cmd, Args, Filtered, T) ->
    case live(Name, T) of
        {ok, Mirror, T1} ->
            case nsync_apply:apply_cmd(Mirror, Db, Cmd, Args, Filtered) of
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
        false -> publish(Name, New, T)
    end,
    T#tables{live = Live#{Name := New}}.

%% @doc The live names.
-spec names(tables()) -> [atom()].
names(#tables{live = Live}) ->
    maps:keys(Live).

%% @doc Whether readers see tables a dead link loaded (taken over, not yet
%% replaced by a snapshot of this link).
-spec stale(tables()) -> boolean().
stale(#tables{stale = Stale}) ->
    Stale =/= [].

%% @doc Deletes every table and frees the names (the link is stopping).
-spec delete_all(tables()) -> ok.
delete_all(#tables{live = Live, claimed = Claimed, loading = Loading}) ->
    nsync_registry:unpublish(maps:keys(Live) ++ Claimed),
    lists:foreach(fun nsync_mirror:delete/1, maps:values(Live) ++ loading_mirrors(Loading)).

%% @doc The link dies without stopping: a snapshot being loaded goes, the
%% published tables stay for the next link of its name.
-spec release(tables()) -> ok.
release(T) ->
    _ = discard_load(T),
    ok.

%%% ------------------------------------------------------------ internal

new_mirror(Name, #tables{db = Db, compressed = Compressed, settings = Settings}) ->
    nsync_mirror:new(Name, Db, Compressed, Settings).

%% Tables are handed to the owner before readers can find them: a link
%% that dies right after leaves them to its successor, never deleted
%% under a reader.
publish(Name, Mirror, #tables{link_name = LinkName}) ->
    ok = nsync_owner:keep(Mirror),
    nsync_registry:publish(Name, LinkName, Mirror).

adopted(Name, Mirror, #tables{live = Live, stale = Stale} = T) ->
    T#tables{live = Live#{Name => Mirror}, stale = [Name | Stale]}.

%% The loading table `Name'; a name new to this link is claimed (and what
%% a dead link left there is kept for readers until the load is published).
loading_mirror(Name, #tables{loading = Loading} = T) ->
    case Loading of
        #{Name := Mirror} -> {ok, Mirror, T};
        _ ->
            case nsync_registry:claimable(Name) of
                true ->
                    T1 = case nsync_registry:adopt(Name, T#tables.link_name) of
                             none -> T;
                             Old -> adopted(Name, Old, T)
                         end,
                    {ok, new_mirror(Name, T1), T1};
                {false, Owner} ->
                    {taken, Owner}
            end
    end.

loading_mirrors(undefined) -> [];
loading_mirrors(Loading) -> maps:values(Loading).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

row(K) -> {K, <<"v">>}.

tid(Name) -> nsync_registry:tid(Name).

new() ->
    new(tables_link).

new(LinkName) ->
    ok = nsync_owner:ensure_started(),
    adopt(LinkName, new(0, true, #{})).

full_sync_test() ->
    {ok, T0} = claim(tables_test, new()),
    %% held, nothing loaded yet
    ?assertEqual(undefined, tid(tables_test)),
    ?assertEqual(self(), nsync_registry:holder(tables_test)),
    ?assertEqual([], names(T0)),
    %% the first snapshot, an empty one, still gives the name a table
    T1 = publish_load(start_load(T0)),
    Old = tid(tables_test),
    ?assertEqual(0, ets:info(Old, size)),
    ?assertEqual([tables_test], names(T1)),
    %% a full sync loads beside the live table; readers see the live one
    {ok, T2} = load(tables_test, 0, [row(<<"a">>)], [], start_load(T1)),
    {ok, T3} = load(tables_test_other, 0, [row(<<"b">>)], [], T2),
    ?assertEqual(Old, tid(tables_test)),
    ?assertEqual(undefined, tid(tables_test_other)),
    %% at eof the registry switches; the old table is retired, not deleted
    T4 = publish_load(T3),
    New = tid(tables_test),
    ?assertNotEqual(Old, New),
    ?assertEqual([row(<<"a">>)], ets:tab2list(New)),
    ?assertEqual([row(<<"b">>)], ets:tab2list(tid(tables_test_other))),
    ?assertEqual([tables_test, tables_test_other], lists:sort(names(T4))),
    ?assertEqual(0, ets:info(Old, size)),
    %% published tables belong to the owner
    ?assertEqual(whereis(nsync_owner), ets:info(New, owner)),
    ok = delete_all(T4),
    ?assertEqual(undefined, ets:info(New)),
    ?assertEqual(undefined, tid(tables_test)).

discarded_load_test() ->
    {ok, T0} = claim(tables_test, new()),
    T1 = publish_load(start_load(T0)),
    Live = tid(tables_test),
    {ok, T2} = load(tables_test, 0, [row(<<"a">>)], [], start_load(T1)),
    T3 = discard_load(T2),
    ?assertEqual(T3, publish_load(T3)),
    ?assertEqual(Live, tid(tables_test)),
    %% rows outside a full sync are dropped
    ?assertEqual({ok, T3}, load(tables_test, 0, [row(<<"b">>)], [], T3)),
    ?assertEqual(0, ets:info(Live, size)),
    ok = delete_all(T3).

taken_name_test() ->
    Parent = self(),
    Owner = spawn(fun() ->
                          {ok, T} = claim(tables_taken, new()),
                          Parent ! {claimed, T},
                          receive stop -> delete_all(T) end
                  end),
    receive {claimed, _} -> ok end,
    ?assertEqual({error, {already_started, Owner}}, claim(tables_taken, new())),
    ?assertEqual({taken, Owner}, live(tables_taken, new())),
    ?assertEqual({taken, Owner}, load(tables_taken, 0, [], [], start_load(new()))),
    Owner ! stop.

%% A link killed mid-snapshot: its published tables stay (readers keep the
%% last complete data), the half-loaded ones go; the next link of its name
%% takes them over, stale, until its own snapshot replaces them.
killed_link_test() ->
    Parent = self(),
    Dead = spawn(fun() ->
                         T0 = new(tables_killed_link),
                         {ok, T1} = claim(tables_killed, T0),
                         {ok, T2} = load(tables_killed, 0, [row(<<"a">>)], [], start_load(T1)),
                         T3 = publish_load(T2),
                         {ok, T4} = load(tables_killed, 0, [row(<<"b">>)], [],
                                         start_load(T3)),
                         Parent ! {loading, T4},
                         receive never -> ok end
                 end),
    Loading = receive {loading, T} -> T end,
    [Half] = [nsync_mirror:tid(M) || M <- loading_mirrors(Loading#tables.loading)],
    Published = tid(tables_killed),
    MRef = monitor(process, Dead),
    exit(Dead, kill),
    receive {'DOWN', MRef, _, _, _} -> ok end,
    ?assertEqual(undefined, ets:info(Half)),
    ?assertEqual(Published, tid(tables_killed)),
    ?assertEqual([row(<<"a">>)], ets:tab2list(Published)),
    ?assert(nsync_registry:stale(tables_killed)),
    %% a link of another name does not take them; one of the same name does
    ?assertNot(stale(new(other_link))),
    T0 = new(tables_killed_link),
    ?assert(stale(T0)),
    ?assertEqual([tables_killed], names(T0)),
    {ok, T0} = claim(tables_killed, T0),
    ?assertEqual(Published, tid(tables_killed)),
    {ok, T1} = load(tables_killed, 0, [row(<<"c">>)], [], start_load(T0)),
    ?assertEqual(Published, tid(tables_killed)),
    T2 = publish_load(T1),
    ?assertNot(stale(T2)),
    ?assertNot(nsync_registry:stale(tables_killed)),
    ?assertEqual([row(<<"c">>)], ets:tab2list(tid(tables_killed))),
    ok = delete_all(T2).
-endif.
