%%% @doc The node-wide registry of table names.
%%%
%%% A name (atom) maps to one mirror, like a registered process name: the
%%% link that owns it, the data table of its database (db 0's with
%%% `{db, all}') and the table of each database. Readers (`nsync:tid/1,2')
%%% look names up without asking the link: entries live in
%%% `persistent_term', written only when a link creates a table or switches
%%% to a new snapshot's tables. An entry whose owner is dead counts as
%%% absent (a killed link cannot clean up), so its name can be claimed
%%% again.
-module(nsync_registry).

-export([lookup/1, lookup/2, claimable/1, publish/3, unpublish/1]).

-define(KEY(Name), {?MODULE, Name}).

%% @doc The table `Name': its owning link and data table, or `undefined'.
-spec lookup(atom()) -> {pid(), ets:tid()} | undefined.
lookup(Name) ->
    case entry(Name) of
        {Owner, Tid, _DbTids} -> {Owner, Tid};
        undefined -> undefined
    end.

%% @doc The data table of database `Db' in the mirror `Name', or `undefined'.
-spec lookup(atom(), non_neg_integer()) -> ets:tid() | undefined.
lookup(Name, Db) ->
    case entry(Name) of
        {_Owner, _Tid, #{Db := Tid}} -> Tid;
        _ -> undefined
    end.

%% @doc Whether the calling process may use `Name': not while another live
%% link owns it.
-spec claimable(atom()) -> true | {false, pid()}.
claimable(Name) ->
    case lookup(Name) of
        {Owner, _} when Owner =/= self() -> {false, Owner};
        _ -> true
    end.

%% @doc Makes `Name' the calling process's mirror with data table `Tid'
%% and the tables of its databases.
-spec publish(atom(), ets:tid(), #{non_neg_integer() => ets:tid()}) -> ok.
publish(Name, Tid, DbTids) ->
    persistent_term:put(?KEY(Name), {self(), Tid, DbTids}).

%% @doc Removes the names the calling process owns among `Names'.
-spec unpublish([atom()]) -> ok.
unpublish(Names) ->
    Self = self(),
    lists:foreach(fun(Name) ->
                          case persistent_term:get(?KEY(Name), undefined) of
                              {Self, _, _} -> persistent_term:erase(?KEY(Name));
                              _ -> ok
                          end
                  end, Names).

entry(Name) ->
    case persistent_term:get(?KEY(Name), undefined) of
        {Owner, _Tid, _DbTids} = Entry ->
            case is_process_alive(Owner) of
                true -> Entry;
                false -> undefined
            end;
        undefined ->
            undefined
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

publish_lookup_test() ->
    Name = nsync_registry_test,
    T0 = ets:new(t0, []),
    T1 = ets:new(t1, []),
    ?assertEqual(undefined, lookup(Name)),
    ?assert(claimable(Name)),
    ok = publish(Name, T0, #{0 => T0, 1 => T1}),
    Self = self(),
    ?assertEqual({Self, T0}, lookup(Name)),
    ?assertEqual(T1, lookup(Name, 1)),
    ?assertEqual(undefined, lookup(Name, 2)),
    ?assert(claimable(Name)),
    ok = unpublish([Name]),
    ?assertEqual(undefined, lookup(Name)).

owned_by_another_test() ->
    Name = nsync_registry_other,
    T = ets:new(t, [public]),
    Parent = self(),
    Owner = spawn(fun() ->
                          ok = publish(Name, T, #{0 => T}),
                          Parent ! published,
                          receive stop -> ok end
                  end),
    receive published -> ok end,
    ?assertEqual({false, Owner}, claimable(Name)),
    %% only the owner removes its names
    ok = unpublish([Name]),
    ?assertEqual({Owner, T}, lookup(Name)),
    MRef = monitor(process, Owner),
    Owner ! stop,
    receive {'DOWN', MRef, _, _, _} -> ok end,
    %% a dead owner's name is free
    ?assertEqual(undefined, lookup(Name)),
    ?assert(claimable(Name)),
    persistent_term:erase(?KEY(Name)).
-endif.
