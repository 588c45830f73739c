%%% @doc A Redis Cluster mirrored as one view: the manager that owns one
%%% link per shard, through the cluster's changes.
%%%
%%% Started by `nsync:start_link/1' with `{cluster, Seeds}'. It reads the
%%% topology from a seed (`nsync_cluster_topology': `CLUSTER SHARDS', or
%%% `CLUSTER SLOTS' before Redis 7), starts the view
%%% (`nsync_cluster_view'), gives it the slots' owners and starts one link
%%% (`nsync_link') per shard master, each with the shard's tables side
%%% (`nsync_cluster_shard'); the links sync in parallel and each PSYNCs
%%% its master as a single link does. `pass', `user', `connect_timeout'
%%% apply to every node.
%%%
%%% Following the cluster (`nsync_cluster_follow': when the topology is
%%% read again, slot moves and their barriers): it is read soon after a
%%% link asks for its master again (its connection closed), a slot becomes
%%% contested in the view, or a `CLUSTER SETSLOT' comes in a shard's stream
%%% (Valkey 8+). Each reading is applied to the links here: a shard's
%%% master that changed (a failover promoted a replica) becomes the link's
%%% next master at once (`nsync_link:reconnect/1'): its PSYNC continues
%%% there (the promoted replica kept the old master's replication id as
%%% its second one), a full resync only when the replica was behind. A new
%%% shard gets a link; a link whose node is no longer a master anywhere
%%% leaves the view. A link that crashed starts again.
%%%
%%% `status/1' (no call to this process: facts in `nsync_status') gives the
%%% cluster's state and each shard's link status.
-module(nsync_cluster).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

%% API
-export([start_link/2, status/1]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         format_status/1]).
%% proc_lib entry point
-export([init_it/2]).
-export_type([status/0]).

-type status() :: #{state := syncing | streaming | degraded,
                    published := boolean(),
                    shards := [map()],
                    slots := #{unowned := non_neg_integer(), contested := non_neg_integer()},
                    refreshes := non_neg_integer(),
                    topology_read_at := integer() | undefined,
                    last_error := term()}.
%% What `status/1' reports: `state' is `syncing' until every shard has
%% loaded (the view is published), then `streaming' while every shard's
%% link streams, else `degraded'; `shards' has each shard's link status
%% (`nsync:status/1' of a link) with its `shard' number, its `link' pid
%% (`undefined' while a crashed link waits to start again) and the `slots'
%% it owns in the view; `slots' the slots without an owner and the contested
%% ones (moving); `refreshes' the topology readings, `topology_read_at'
%% the last one's time and `last_error' why the last one failed.

%% a shard link that crashed starts again after this; more than
%% MAX_RESTARTS crashes in RESTART_WINDOW_MS stop the cluster
-define(RESTART_DELAY_MS, 1000).
-define(MAX_RESTARTS, 10).
-define(RESTART_WINDOW_MS, 60000).
-define(LOADED_CHECK_MS, 5).

-record(shard, {
          %% undefined between a crash and the restart
          link :: pid() | undefined,
          %% the master it follows, and every node id seen in the shard
          master :: nsync_cluster_topology:node_addr() | none,
          nodes = [] :: [binary()],
          %% the slot ranges the last reading gave it
          slots = [] :: [{0..16383, 0..16383}]
         }).

-record(state, {
          config :: map(),
          waiter :: nsync_link:waiter(),
          view :: pid(),
          handle :: nsync_cluster_view:view(),
          %% the shards' masters, read by the links' next_master funs
          targets :: ets:tid(),
          shards = #{} :: #{nsync_cluster_view:shard() => #shard{}},
          next_shard = 1 :: pos_integer(),
          %% the readings of the topology, slot moves
          follow :: nsync_cluster_follow:follow(),
          %% when shard links crashed lately (monotonic ms)
          crashes = [] :: [integer()]
         }).

%%% ================================================================ API

%% @doc Starts a cluster's manager for a validated config with a `cluster'
%% key; `Waiter' (as for `nsync_link:start_link/2') hears when every shard
%% has loaded, or why the topology could not be read.
-spec start_link(map(), nsync_link:waiter()) -> {ok, pid()} | {error, term()}.
start_link(Config, Waiter) ->
    proc_lib:start_link(?MODULE, init_it, [Config, Waiter]).

%% @doc The cluster's status: its own facts and each shard's link status
%% (`nsync:status/1' of the link, with `shard' and `slots').
-spec status(pid()) -> status().
status(Pid) ->
    case nsync_status:facts(Pid) of
        #{cluster := #{view := Handle} = Facts} ->
            Slots = nsync_cluster_view:slot_counts(Handle),
            Shards = [shard_status(Shard, Link, Slots)
                      || {Shard, Link} <- lists:sort(maps:to_list(maps:get(links, Facts)))],
            States = [S || #{state := S} <- Shards],
            #{state => cluster_state(States, maps:get(published, Facts)),
              published => maps:get(published, Facts),
              shards => Shards,
              slots => #{unowned => maps:get(0, Slots, 0),
                         contested => maps:get(contested, Slots, 0)},
              refreshes => maps:get(refreshes, Facts),
              topology_read_at => maps:get(read_at, Facts),
              last_error => maps:get(last_error, Facts)};
        #{} ->
            exit({noproc, {nsync, status, [Pid]}})
    end.

shard_status(Shard, Link, Slots) ->
    Status = try nsync_status:status(Link)
             catch exit:{noproc, _} -> #{state => disconnected, master => undefined}
             end,
    Status#{shard => Shard, link => Link, slots => maps:get(Shard, Slots, 0)}.

cluster_state(_, false) -> syncing;
cluster_state(States, true) ->
    case lists:all(fun(S) -> S =:= streaming end, States) of
        true -> streaming;
        false -> degraded
    end.

%% @private proc_lib entry, as a link's (`nsync_link:init_and_enter/3').
-spec init_it(map(), nsync_link:waiter()) -> no_return() | ok.
init_it(Config, Waiter) ->
    nsync_link:init_and_enter(?MODULE, Config, Waiter).

%%% ========================================================== callbacks

%% @private
-spec init({map(), nsync_link:waiter()}) -> {ok, #state{}} | {stop, term()}.
init({Config, Waiter}) ->
    process_flag(trap_exit, true),
    logger:update_process_metadata(#{domain => [nsync], nsync_name => maps:get(name, Config)}),
    ok = nsync_status:ensure_started(),
    case nsync_cluster_view:start_link(Config) of
        {ok, View} ->
            State = #state{config = Config, waiter = Waiter, view = View,
                           handle = nsync_cluster_view:handle(View),
                           follow = nsync_cluster_follow:new(Config),
                           targets = ets:new(nsync_cluster_targets, [set, protected,
                                                                     {read_concurrency, true}])},
            ok = nsync_status:watch(self()),
            case first_topology(State) of
                {ok, State1} -> {ok, record_facts(schedule(State1))};
                {error, {shard_link, _} = Reason} -> {stop, Reason};
                {error, Reason, _} when Waiter =/= undefined -> {stop, {cluster, Reason}};
                {error, _Reason, State1} -> {ok, record_facts(schedule(State1))}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({refresh, Ref}, #state{follow = F} = State) ->
    case nsync_cluster_follow:due(Ref, F) of
        {true, F1} ->
            try refresh(State#state{follow = F1}) of
                State1 -> {noreply, record_facts(schedule(State1))}
            catch
                throw:{shard_link, _} = Reason -> {stop, Reason, State}
            end;
        {false, _} ->
            {noreply, State}
    end;
handle_info(check_barriers, State) ->
    {noreply, check_barriers(State)};
handle_info({reconnecting, _Shard}, State) ->
    %% a link's connection closed: its master may have changed
    {noreply, soon(State)};
handle_info({nsync_cluster_view, View, Why}, #state{view = View} = State)
  when Why =:= contested; Why =:= topology_changed ->
    {noreply, soon(State)};
handle_info({nsync_cluster_view, View, published}, #state{view = View} = State) ->
    ?LOG_NOTICE("nsync: cluster ~p: every shard has loaded (~b shards)",
                [maps:get(name, State#state.config), map_size(State#state.shards)]),
    %% status/1 says published before the blocking start returns
    {noreply, notify_loaded(record_facts(State))};
handle_info(notify_loaded, State) ->
    {noreply, notify_loaded(State)};
handle_info({'EXIT', Pid, Reason}, #state{view = Pid} = State) ->
    {stop, Reason, State};
handle_info({'EXIT', Pid, Reason}, #state{shards = Shards} = State) ->
    case [S || {S, #shard{link = L}} <- maps:to_list(Shards), L =:= Pid] of
        [] when Reason =:= normal -> {noreply, State};
        [] -> {stop, Reason, State};
        [Shard] -> shard_died(Shard, Reason, State)
    end;
handle_info({restart, Shard}, #state{shards = Shards} = State) ->
    case Shards of
        #{Shard := #shard{link = undefined, master = Master} = S} ->
            case start_link_for(Shard, Master, State) of
                {ok, Link} ->
                    ok = nsync_cluster_view:add_shard(State#state.view, Shard,
                                                      {Link, S#shard.nodes}),
                    {noreply, record_facts(State#state{shards = Shards#{Shard := S#shard{link = Link}}})};
                {error, Reason} ->
                    {stop, {shard_link, Reason}, State}
            end;
        _ ->
            {noreply, State}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{shards = Shards, view = View, follow = F}) ->
    [stop_link(L) || #shard{link = L} <- maps:values(Shards)],
    nsync_cluster_follow:close(F),
    nsync_cluster_view:stop(View),
    nsync_status:forget(self()).

%% @private Keeps the password out of crash reports and sys:get_status/1.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(#{state := #state{config = #{pass := Pass} = Config} = State} = Status)
  when is_binary(Pass) ->
    Status#{state := State#state{config = Config#{pass := <<"(redacted)">>}}};
format_status(Status) ->
    Status.

%%% ============================================================ topology

%% The first reading: the view gets the slots' owners before any link
%% writes, then every shard gets its link.
first_topology(#state{follow = F} = State) ->
    case nsync_cluster_follow:read(masters(State), F) of
        {ok, Topology, F1} ->
            try apply_topology(Topology, State#state{follow = F1}) of
                State1 -> {ok, State1}
            catch
                throw:{shard_link, _} = Reason -> {error, Reason}
            end;
        {error, Reason, F1} ->
            {error, Reason, State#state{follow = F1}}
    end.

refresh(#state{follow = F} = State) ->
    case nsync_cluster_follow:read(masters(State), F) of
        {ok, Topology, F1} -> check_barriers(apply_topology(Topology, State#state{follow = F1}));
        {error, _Reason, F1} -> check_barriers(State#state{follow = F1})
    end.

%% The shards' masters, asked first for a reading.
masters(#state{shards = Shards}) ->
    [{H, P} || #shard{master = #{host := H, port := P}} <- maps:values(Shards)].

%% The shards of a new reading: which link each continues, new links for
%% new shards, and slots whose owner in the view is not their master's
%% shard start moving.
apply_topology(Topology, #state{shards = Shards} = State) ->
    Known = [{Id, M, Nodes, Slots}
             || {Id, #shard{master = #{id := M}, nodes = Nodes, slots = Slots}} <- maps:to_list(Shards)],
    %% a master without slots (just demoted by a failover, or emptied) is
    %% not a shard to follow: a shard continues where its slots are
    Serving = [S || #{slots := [_ | _]} = S <- Topology],
    {Matched, New, Gone} = nsync_cluster_topology:match(Serving, Known),
    State1 = lists:foldl(fun follow/2, State, Matched),
    State2 = lists:foldl(fun new_shard/2, State1, New),
    State3 = lists:foldl(fun leave/2, State2, Gone),
    ShardOf = maps:from_list([{M, Id} || {Id, #shard{master = #{id := M}}} <- maps:to_list(State3#state.shards)]),
    Owners = [{Range, maps:get(M, ShardOf)} || {Range, M} <- nsync_cluster_topology:slot_masters(Topology),
                                                is_map_key(M, ShardOf)],
    ok = nsync_cluster_view:assign(State3#state.view, Owners),
    State3#state{follow = nsync_cluster_follow:moves(Owners, members(State3), State3#state.handle,
                                                     State3#state.follow)}.

%% A known shard: its master may have changed (a failover).
follow({Id, #{master := Master, replicas := Replicas, slots := Slots}},
       #state{shards = Shards} = State) ->
    #shard{link = Link, master = Old, nodes = Nodes} = Shard0 = maps:get(Id, Shards),
    Nodes1 = lists:usort(Nodes ++ [N || #{id := N} <- [Master | Replicas]]),
    Shard = Shard0#shard{nodes = Nodes1, slots = Slots},
    %% (no link between a crash and its restart)
    [ok = nsync_cluster_view:add_shard(State#state.view, Id, {Link, Nodes1}) || is_pid(Link)],
    case same_node(Old, Master) of
        true ->
            State#state{shards = Shards#{Id := Shard}};
        false ->
            ?LOG_NOTICE("nsync: cluster shard ~b: master ~s:~b (was ~s)",
                        [Id, maps:get(host, Master), maps:get(port, Master), addr(Old)]),
            nsync_telemetry:event([cluster, failover], #{system_time => erlang:system_time()},
                                  #{cluster => maps:get(name, State#state.config), shard => Id,
                                    master => host_port(Master), previous => host_port(Old)}),
            true = ets:insert(State#state.targets, {Id, target(Master)}),
            [ok = nsync_link:reconnect(Link) || Link =/= undefined],
            State#state{shards = Shards#{Id := Shard#shard{master = Master}}}
    end.

same_node(#{id := A, host := H, port := P}, #{id := A, host := H, port := P}) -> true;
same_node(_, _) -> false.

host_port(#{host := H, port := P}) -> {H, P};
host_port(none) -> undefined.

addr(#{host := H, port := P}) -> io_lib:format("~s:~b", [H, P]);
addr(none) -> "none".

target(#{host := Host, port := Port}) -> #{host => Host, port => Port}.

%% A shard nobody followed: a link of its own.
new_shard(#{master := Master, replicas := Replicas, slots := Slots},
          #state{next_shard = Id, targets = Targets} = State) ->
    true = ets:insert(Targets, {Id, target(Master)}),
    Nodes = lists:usort([N || #{id := N} <- [Master | Replicas]]),
    case start_link_for(Id, Master, State) of
        {ok, Link} ->
            ok = nsync_cluster_view:add_shard(State#state.view, Id, {Link, Nodes}),
            ?LOG_INFO("nsync: cluster shard ~b: master ~s", [Id, addr(Master)]),
            State#state{next_shard = Id + 1,
                        shards = (State#state.shards)#{Id => #shard{link = Link, master = Master,
                                                                    nodes = Nodes, slots = Slots}}};
        {error, Reason} ->
            %% the view could never be complete
            ?LOG_ERROR("nsync: cluster shard ~s: the link did not start: ~0p", [addr(Master), Reason]),
            throw({shard_link, Reason})
    end.

%% A shard whose node is no longer a master anywhere: its link stops, its
%% keys leave the view, its slots go to their masters' shards.
leave(Id, #state{shards = Shards, targets = Targets} = State) ->
    #shard{link = Link, master = Master} = maps:get(Id, Shards),
    ?LOG_NOTICE("nsync: cluster shard ~b (~s) is no longer in the cluster", [Id, addr(Master)]),
    true = ets:insert(Targets, {Id, none}),
    stop_link(Link),
    ok = nsync_cluster_view:retire(State#state.view, Id),
    State#state{shards = maps:remove(Id, Shards),
                follow = nsync_cluster_follow:forget(Id, State#state.follow)}.

%% Shard `Id''s link: a link of the cluster's options, following the
%% shard's master, writing its part of the view.
start_link_for(Id, Master, #state{config = Config, targets = Targets} = State) ->
    Self = self(),
    Next = fun() ->
                   Self ! {reconnecting, Id},
                   case ets:lookup(Targets, Id) of
                       [{Id, #{} = T}] -> T;
                       _ -> error(no_master)
                   end
           end,
    LinkConfig = Config#{host => maps:get(host, Master), port => maps:get(port, Master),
                         next_master => Next, block => false,
                         cluster_shard => {State#state.handle, Id},
                         telemetry_metadata => #{cluster => maps:get(name, Config), shard => Id}},
    nsync_link:start_link(maps:remove(cluster, LinkConfig), undefined).

stop_link(undefined) ->
    ok;
stop_link(Link) ->
    unlink(Link),
    catch gen_server:stop(Link, shutdown, 5000),
    ok.

%% A shard's link that stopped by itself (a refused password: the same for
%% every node) stops the cluster; one that crashed starts again (its part
%% of the view stays; the new link's full sync replaces it), unless links
%% crash too often.
shard_died(Shard, {shutdown, _} = Reason, State) ->
    ?LOG_ERROR("nsync: cluster shard ~b: its link stopped: ~0p", [Shard, Reason]),
    {stop, {shard, Shard, Reason}, State};
shard_died(Shard, Reason, #state{shards = Shards, crashes = Crashes} = State) ->
    Now = erlang:monotonic_time(millisecond),
    Recent = [T || T <- [Now | Crashes], Now - T < ?RESTART_WINDOW_MS],
    case length(Recent) > ?MAX_RESTARTS of
        true ->
            ?LOG_ERROR("nsync: cluster shard ~b: its link crashed (~0p), ~b crashes in ~b s: "
                       "stopping", [Shard, Reason, length(Recent), ?RESTART_WINDOW_MS div 1000]),
            {stop, {shard, Shard, Reason}, State};
        false ->
            ?LOG_ERROR("nsync: cluster shard ~b: its link crashed: ~0p; starting it again",
                       [Shard, Reason]),
            erlang:send_after(?RESTART_DELAY_MS, self(), {restart, Shard}),
            #{Shard := S} = Shards,
            {noreply, State#state{shards = Shards#{Shard := S#shard{link = undefined}},
                                  crashes = Recent}}
    end.

%% Moves whose old owner's link is past their barrier are handed over.
check_barriers(#state{follow = F} = State) ->
    State#state{follow = nsync_cluster_follow:check_barriers(members(State), State#state.handle, F)}.

%% What following the topology needs of the shards.
members(#state{shards = Shards}) ->
    maps:map(fun(_, #shard{master = M, link = L}) -> #{master => M, link => L} end, Shards).

%%% ------------------------------------------------------------ misc

%% A blocking start returns once the view is published and every shard's
%% link has recorded its loaded snapshot (status/1 then says so: the view
%% is published from within the last link's batch, before its facts).
notify_loaded(#state{waiter = undefined} = State) ->
    State;
notify_loaded(#state{waiter = {Pid, Ref}, shards = Shards} = State) ->
    case lists:all(fun(#shard{link = L}) -> recorded_loaded(L) end, maps:values(Shards)) of
        true ->
            Pid ! {Ref, loaded},
            State#state{waiter = undefined};
        false ->
            erlang:send_after(?LOADED_CHECK_MS, self(), notify_loaded),
            State
    end.

recorded_loaded(undefined) ->
    false;
recorded_loaded(Link) ->
    try nsync_status:status(Link) of
        #{stale_reason := not_loaded} -> false;
        #{} -> true
    catch
        exit:_ -> false
    end.

schedule(#state{follow = F} = State) ->
    State#state{follow = nsync_cluster_follow:schedule(members(State), State#state.handle, F)}.

soon(#state{follow = F} = State) ->
    State#state{follow = nsync_cluster_follow:soon(F)}.

%% What status/1 reads.
record_facts(#state{shards = Shards, handle = Handle, view = View} = State) ->
    Facts = (nsync_cluster_follow:facts(State#state.follow))#{
              view => Handle,
              links => maps:map(fun(_, #shard{link = L}) -> L end, Shards),
              published => nsync_cluster_view:published(View)},
    ok = nsync_status:record(self(), #{cluster => Facts}),
    State.
