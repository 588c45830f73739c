%%% @doc The node-wide registry of table names.
%%%
%%% A name (atom) maps to one mirror, like a registered process name: the
%%% link that holds it and, once a snapshot was loaded into it, its tables
%%% (the data table of its database, db 0's with `{db, all}', and the table
%%% of each database). Readers (`nsync:tid/1,2') look names up without
%%% asking the link: entries live in `persistent_term', written only when a
%%% link claims a name, switches to a new snapshot's tables, creates a
%%% table or takes over the tables of a link that died.
%%%
%%% A link claims its name before it has data (`claim/1': readers get
%%% `undefined', "not loaded yet"), then publishes tables (`publish/3').
%%% The published tables belong to `nsync_owner', not to the link: when a
%%% link dies without stopping, its entries stay, so readers keep its last
%%% complete tables; a link started later with the same `name' option
%%% takes them over (`adoptable/1', `adopt/2') and serves them, marked
%%% stale, until its own snapshot replaces them. A name whose link is dead
%%% may be claimed by any link.
-module(nsync_registry).

-export([tid/1, tid/2, holder/1, stale/1, claimable/1, claim/2, publish/3, adoptable/1,
         adopt/2, unpublish/1]).

-export_type([mirror_name/0]).

-type mirror_name() :: atom().
%% A mirror's name: the `name' option's, or an atom a callback routed to.

-define(KEY(Name), {?MODULE, Name}).

%% What a name holds. `link_name' is the `name' option of that link (a
%% restarted link finds what its predecessor left by it); `mirror' and
%% `stale' concern the tables: `undefined' before the first snapshot.
-type entry() :: #{link := pid(),
                   link_name := atom(),
                   tid := ets:tid() | undefined,
                   dbs := #{non_neg_integer() => ets:tid()},
                   mirror := nsync_mirror:mirror() | undefined,
                   stale := boolean()}.

%%% ------------------------------------------------------------ readers

%% @doc The data table of mirror `Name', `undefined' if there is none or
%% none loaded yet.
-spec tid(mirror_name()) -> ets:tid() | undefined.
tid(Name) ->
    case entry(Name) of
        #{tid := Tid} -> Tid;
        undefined -> undefined
    end.

%% @doc The data table of database `Db' in mirror `Name', or `undefined'.
-spec tid(mirror_name(), non_neg_integer()) -> ets:tid() | undefined.
tid(Name, Db) ->
    case entry(Name) of
        #{dbs := #{Db := Tid}} -> Tid;
        _ -> undefined
    end.

%% @doc The link that holds `Name' (alive or not), or `undefined'.
-spec holder(mirror_name()) -> pid() | undefined.
holder(Name) ->
    case entry(Name) of
        #{link := Link} -> Link;
        undefined -> undefined
    end.

%% @doc Whether readers of `Name' see tables that its link did not load:
%% left by a link that died, until its successor's snapshot is complete
%% (or for good, if none starts). Read without the link.
-spec stale(mirror_name()) -> boolean().
stale(Name) ->
    case entry(Name) of
        #{stale := true} -> true;
        #{link := Link, mirror := M} when M =/= undefined -> not is_process_alive(Link);
        _ -> false
    end.

%%% -------------------------------------------------------------- links

%% @doc Whether the calling process may use `Name': not while another live
%% link holds it.
-spec claimable(mirror_name()) -> true | {false, pid()}.
claimable(Name) ->
    case holder(Name) of
        Link when is_pid(Link), Link =/= self() ->
            case is_process_alive(Link) of
                true -> {false, Link};
                false -> true
            end;
        _ ->
            true
    end.

%% @doc The calling link (of `name' `LinkName') holds `Name', which has no
%% tables yet: readers get `undefined'. The caller checked `claimable/1'.
-spec claim(mirror_name(), atom()) -> ok.
claim(Name, LinkName) ->
    put_entry(Name, #{link => self(), link_name => LinkName, tid => undefined, dbs => #{},
                      mirror => undefined, stale => false}).

%% @doc Makes `Mirror', loaded by the calling link (of `name' `LinkName'),
%% the tables readers see as `Name'.
-spec publish(mirror_name(), atom(), nsync_mirror:mirror()) -> ok.
publish(Name, LinkName, Mirror) ->
    put_entry(Name, #{link => self(), link_name => LinkName,
                      tid => nsync_mirror:tid(Mirror),
                      dbs => maps:from_list(nsync_mirror:dbs(Mirror)),
                      mirror => Mirror, stale => false}).

%% @doc The names holding tables that a dead link of `name' `LinkName'
%% left.
-spec adoptable(atom()) -> [mirror_name()].
adoptable(LinkName) ->
    [Name || {?KEY(Name), #{link := Link, link_name := L, mirror := M}}
                 <- persistent_term:get(),
             L =:= LinkName, M =/= undefined, not is_process_alive(Link)].

%% @doc The calling link (of `name' `LinkName') takes over `Name' and the
%% tables a dead link left there: readers keep them, marked stale, until
%% the caller publishes its own. Returns the mirror, or `none' if the name
%% has no tables or a live link holds it.
-spec adopt(mirror_name(), atom()) -> nsync_mirror:mirror() | none.
adopt(Name, LinkName) ->
    case {entry(Name), claimable(Name)} of
        {#{mirror := M} = E, true} when M =/= undefined ->
            put_entry(Name, E#{link := self(), link_name := LinkName, stale := true}),
            M;
        _ ->
            none
    end.

%% @doc Removes the names the calling process holds among `Names'.
-spec unpublish([mirror_name()]) -> ok.
unpublish(Names) ->
    Self = self(),
    lists:foreach(fun(Name) ->
                          case entry(Name) of
                              #{link := Self} -> persistent_term:erase(?KEY(Name));
                              _ -> ok
                          end
                  end, Names).

%%% ----------------------------------------------------------- internal

-spec entry(mirror_name()) -> entry() | undefined.
entry(Name) ->
    persistent_term:get(?KEY(Name), undefined).

put_entry(Name, Entry) ->
    persistent_term:put(?KEY(Name), Entry).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

claim_publish_test() ->
    Name = nsync_registry_test,
    ?assertEqual(undefined, tid(Name)),
    ?assert(claimable(Name)),
    ok = claim(Name, Name),
    %% held, but nothing loaded yet
    ?assertEqual(self(), holder(Name)),
    ?assertEqual(undefined, tid(Name)),
    ?assertNot(stale(Name)),
    M = nsync_mirror:new(Name, all),
    {ok, M1} = nsync_apply:apply_cmd(M, 1, <<"set">>, [<<"k">>, <<"v">>]),
    ok = publish(Name, Name, M1),
    ?assertEqual(nsync_mirror:tid(M1), tid(Name)),
    ?assertEqual(nsync_mirror:tid(M1, 1), tid(Name, 1)),
    ?assertEqual(undefined, tid(Name, 2)),
    ?assert(claimable(Name)),
    ok = unpublish([Name]),
    ?assertEqual(undefined, tid(Name)),
    nsync_mirror:delete(M1).

%% A link that dies leaves its tables; a link of the same name takes them
%% over; another live link's name is refused.
dead_link_test() ->
    Name = nsync_registry_dead,
    Parent = self(),
    M = nsync_mirror:new(Name, 0),
    Holder = spawn(fun() ->
                           ok = publish(Name, linkname, M),
                           Parent ! published,
                           receive stop -> ok end
                   end),
    receive published -> ok end,
    ?assertEqual({false, Holder}, claimable(Name)),
    ?assertEqual(none, adopt(Name, linkname)),
    ?assertEqual([], adoptable(linkname)),
    %% only the holder removes its names
    ok = unpublish([Name]),
    ?assertEqual(nsync_mirror:tid(M), tid(Name)),
    MRef = monitor(process, Holder),
    Holder ! stop,
    receive {'DOWN', MRef, _, _, _} -> ok end,
    %% the dead link's tables stay visible, stale
    ?assertEqual(nsync_mirror:tid(M), tid(Name)),
    ?assert(stale(Name)),
    ?assert(claimable(Name)),
    ?assertEqual([Name], adoptable(linkname)),
    ?assertEqual([], adoptable(other)),
    ?assertEqual(M, adopt(Name, linkname)),
    ?assertEqual(self(), holder(Name)),
    ?assert(stale(Name)),
    ?assertEqual([], adoptable(linkname)),
    ok = publish(Name, linkname, M),
    ?assertNot(stale(Name)),
    ok = unpublish([Name]),
    nsync_mirror:delete(M).
-endif.
