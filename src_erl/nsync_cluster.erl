%%% @doc A Redis Cluster mirrored as one view: the manager that follows the
%%% cluster's topology and owns one link per shard.
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
%%% Following the cluster: the topology is read again every
%%% `cluster_refresh' ms (5000), every 500 ms while slots move or a shard
%%% reconnects, and soon after a link asks for its master again (its
%%% connection closed), a slot becomes contested in the view, or a
%%% `CLUSTER SETSLOT' comes in a shard's stream (Valkey 8+). A shard's
%%% master that changed (a failover promoted a replica) becomes the
%%% link's next master at once (`nsync_link:reconnect/1'): its PSYNC
%%% continues there (the promoted replica kept the old master's replication
%%% id as its second one), a full resync only when the replica was behind.
%%% A slot the topology shows on another shard than its owner in the view
%%% moves only once the old owner's stream is past the move: its master's
%%% offset, read after the topology showed the move, is the barrier the
%%% old owner's link must reach (`CLUSTER SETSLOT ... NODE' in the stream,
%%% Valkey 8+, hands it over at once). A new shard gets a link; a link
%%% whose node is no longer a master anywhere leaves the view.
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

-define(FAST_REFRESH_MS, 500).
%% a shard link that crashed starts again after this; more than
%% MAX_RESTARTS crashes in RESTART_WINDOW_MS stop the cluster
-define(RESTART_DELAY_MS, 1000).
-define(MAX_RESTARTS, 10).
-define(RESTART_WINDOW_MS, 60000).
-define(SOON_MS, 50).
-define(BARRIER_CHECK_MS, 100).
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
          %% control connections: {Host, Port} => client
          clients = #{} :: #{{binary(), inet:port_number()} => nsync_client:client()},
          %% slots moving: {From, To} => {Ranges, Offset | undefined}
          barriers = #{} :: #{{nsync_cluster_view:shard(), nsync_cluster_view:shard()} =>
                                  {[{0..16383, 0..16383}], integer() | undefined}},
          refresh :: reference() | undefined,
          %% when shard links crashed lately (monotonic ms)
          crashes = [] :: [integer()],
          refreshes = 0 :: non_neg_integer(),
          read_at :: integer() | undefined,
          last_error :: term()
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

%% @private proc_lib entry: acks `{error, Reason}' with a normal exit on
%% failure, so that a failed start never kills the caller.
-spec init_it(map(), nsync_link:waiter()) -> no_return() | ok.
init_it(Config, Waiter) ->
    case init({Config, Waiter}) of
        {ok, State} ->
            proc_lib:init_ack({ok, self()}),
            gen_server:enter_loop(?MODULE, [], State);
        {stop, Reason} ->
            proc_lib:init_ack({error, Reason})
    end.

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
                           targets = ets:new(nsync_cluster_targets, [set, protected,
                                                                     {read_concurrency, true}])},
            ok = nsync_status:watch(self()),
            case first_topology(State) of
                {ok, State1} -> {ok, record_facts(schedule(State1))};
                {error, {shard_link, _} = Reason} -> {stop, Reason};
                {error, Reason} when Waiter =/= undefined -> {stop, {cluster, Reason}};
                {error, Reason} -> {ok, record_facts(schedule(State#state{last_error = Reason}))}
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
handle_info({refresh, Ref}, #state{refresh = Ref} = State) ->
    try refresh(State#state{refresh = undefined}) of
        State1 -> {noreply, record_facts(schedule(State1))}
    catch
        throw:{shard_link, _} = Reason -> {stop, Reason, State}
    end;
handle_info({refresh, _Old}, State) ->
    {noreply, State};
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
terminate(_Reason, #state{shards = Shards, view = View, clients = Clients}) ->
    [stop_link(L) || #shard{link = L} <- maps:values(Shards)],
    lists:foreach(fun nsync_client:close/1, maps:values(Clients)),
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
first_topology(State) ->
    case read_topology(State) of
        {ok, Topology, State1} ->
            try apply_topology(Topology, State1) of
                State2 -> {ok, State2}
            catch
                throw:{shard_link, _} = Reason -> {error, Reason}
            end;
        {error, Reason, _State1} ->
            {error, Reason}
    end.

refresh(State) ->
    case read_topology(State) of
        {ok, Topology, State1} ->
            check_barriers(apply_topology(Topology, State1#state{last_error = undefined}));
        {error, Reason, State1} ->
            [?LOG_WARNING("nsync: cluster ~p: cannot read the topology: ~0p",
                          [maps:get(name, State#state.config), Reason])
             || Reason =/= State#state.last_error],
            check_barriers(State1#state{last_error = Reason})
    end.

%% Asks the shards' masters first, then the seeds, until one answers.
read_topology(#state{shards = Shards, config = #{cluster := Seeds}} = State) ->
    Masters = [{H, P} || #shard{master = #{host := H, port := P}} <- maps:values(Shards)],
    read_from(lists:usort(Masters) ++ [{H, P} || {H, P} <- Seeds], State, no_node).

read_from([], State, LastError) ->
    {error, LastError, State};
read_from([{Host, Port} | Rest], #state{config = Config} = State, _LastError) ->
    case client(Host, Port, State) of
        {ok, Client, State1} ->
            case nsync_cluster_topology:read(Client, #{host => Host,
                                                      tls => maps:get(tls, Config, false) =/= false}) of
                {ok, Topology} ->
                    {ok, Topology, State1#state{refreshes = State1#state.refreshes + 1,
                                               read_at = erlang:system_time(millisecond)}};
                {error, Reason} ->
                    read_from(Rest, drop_client(Host, Port, State1), {Host, Port, Reason})
            end;
        {error, Reason, State1} ->
            read_from(Rest, State1, {Host, Port, Reason})
    end.

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
    moves(Owners, State3).

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
                barriers = maps:filter(fun({From, To}, _) -> From =/= Id andalso To =/= Id end,
                                       State#state.barriers)}.

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

%%% ------------------------------------------------------------ slot moves

%% Slots whose owner in the view is not the topology's: a barrier per
%% {From, To}, the old owner's master offset read now.
moves(Owners, #state{handle = Handle, barriers = Barriers} = State) ->
    Moving = lists:foldl(
               fun({{A, B}, To}, Acc) ->
                       lists:foldl(fun(Slot, Acc1) ->
                                           case nsync_cluster_view:slot_state(Handle, Slot) of
                                               {From, _} when From =/= To, From =/= 0 ->
                                                   maps:update_with({From, To}, fun(L) -> [Slot | L] end,
                                                                    [Slot], Acc1);
                                               _ -> Acc1
                                           end
                                   end, Acc, lists:seq(A, B))
               end, #{}, Owners),
    Barriers1 = maps:map(fun(Move, Slots) ->
                                 Ranges = ranges(lists:sort(Slots)),
                                 case Barriers of
                                     #{Move := {Ranges, Offset}} when is_integer(Offset) -> {Ranges, Offset};
                                     _ -> {Ranges, undefined}
                                 end
                         end, Moving),
    read_barriers(State#state{barriers = Barriers1}).

ranges([]) -> [];
ranges([S | Rest]) -> ranges(Rest, S, S, []).
ranges([S | Rest], A, B, Acc) when S =:= B + 1 -> ranges(Rest, A, S, Acc);
ranges([S | Rest], A, B, Acc) -> ranges(Rest, S, S, [{A, B} | Acc]);
ranges([], A, B, Acc) -> lists:reverse([{A, B} | Acc]).

%% The old owners' master offsets for the moves that have none yet.
read_barriers(#state{barriers = Barriers, shards = Shards} = State) ->
    maps:fold(fun({From, _} = Move, {Ranges, undefined}, St) ->
                      case master_offset(maps:get(From, Shards, undefined), St) of
                          {ok, Offset, St1} ->
                              St1#state{barriers = (St1#state.barriers)#{Move := {Ranges, Offset}}};
                          {error, St1} ->
                              St1
                      end;
                 (_, _, St) -> St
              end, State, Barriers).

master_offset(#shard{master = #{host := H, port := P}}, State) ->
    case client(H, P, State) of
        {ok, Client, State1} ->
            case nsync_client:command(Client, [<<"INFO">>, <<"replication">>]) of
                {ok, Info} when is_binary(Info) ->
                    case re:run(Info, <<"master_repl_offset:(\\d+)">>, [{capture, all_but_first, binary}]) of
                        {match, [N]} -> {ok, binary_to_integer(N), State1};
                        nomatch -> {error, State1}
                    end;
                _ -> {error, drop_client(H, P, State1)}
            end;
        {error, _, State1} ->
            {error, State1}
    end;
master_offset(_, State) ->
    {error, State}.

%% Moves whose old owner's link is past the barrier are handed over.
check_barriers(#state{barriers = Barriers, shards = Shards, view = View} = State) ->
    Done = maps:filter(fun({From, _}, {_, Offset}) when is_integer(Offset) ->
                               case maps:find(From, Shards) of
                                   {ok, #shard{link = Link}} -> applied(Link) >= Offset;
                                   error -> true
                               end;
                          (_, _) -> false
                       end, Barriers),
    maps:foreach(fun({From, To}, {Ranges, _}) ->
                         ok = nsync_cluster_view:handover(View, Ranges, From, To)
                 end, Done),
    State1 = State#state{barriers = maps:without(maps:keys(Done), Barriers)},
    case map_size(State1#state.barriers) of
        0 -> ok;
        _ -> erlang:send_after(?BARRIER_CHECK_MS, self(), check_barriers)
    end,
    State1.

streaming(Link) ->
    try nsync_status:status(Link) of
        #{state := streaming} -> true;
        _ -> false
    catch
        exit:_ -> false
    end.

applied(Link) ->
    try nsync_status:status(Link) of
        #{offset := Offset} when is_integer(Offset) -> Offset;
        _ -> -1
    catch
        exit:_ -> -1
    end.

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

%% A control connection to a node, opened on demand and kept.
client(Host, Port, #state{clients = Clients, config = Config} = State) ->
    case Clients of
        #{{Host, Port} := C} ->
            {ok, C, State};
        _ ->
            Opts = maps:merge(maps:with([user, pass, connect_timeout, tls], Config),
                              #{host => Host, port => Port}),
            case nsync_client:open(Opts) of
                {ok, C} -> {ok, C, State#state{clients = Clients#{{Host, Port} => C}}};
                {error, Reason} -> {error, Reason, State}
            end
    end.

drop_client(Host, Port, #state{clients = Clients} = State) ->
    case maps:take({Host, Port}, Clients) of
        {C, Rest} -> nsync_client:close(C), State#state{clients = Rest};
        error -> State
    end.

%% The next reading: soon while slots move or the last one failed, else
%% after `cluster_refresh'.
schedule(#state{config = Config, barriers = Barriers, last_error = Error} = State) ->
    Busy = map_size(Barriers) > 0 orelse Error =/= undefined
        orelse nsync_cluster_view:contested_count(State#state.handle) > 0
        orelse lists:any(fun(#shard{link = L}) -> not streaming(L) end,
                         maps:values(State#state.shards)),
    Delay = case Busy of
                true -> ?FAST_REFRESH_MS;
                false -> maps:get(cluster_refresh, Config, 5000)
            end,
    at(Delay, State).

soon(#state{refresh = Ref} = State) ->
    case Ref =/= undefined andalso erlang:read_timer(Ref) of
        Left when is_integer(Left), Left =< ?SOON_MS -> State;
        _ -> at(?SOON_MS, State)
    end.

at(Delay, #state{refresh = Old} = State) ->
    _ = [erlang:cancel_timer(Old) || Old =/= undefined],
    Ref = make_ref(),
    _ = erlang:send_after(Delay, self(), {refresh, Ref}),
    State#state{refresh = Ref}.

%% What status/1 reads.
record_facts(#state{shards = Shards, handle = Handle, view = View} = State) ->
    ok = nsync_status:record(self(), #{cluster => #{view => Handle,
                                                    links => maps:map(fun(_, #shard{link = L}) -> L end,
                                                                      Shards),
                                                    published => nsync_cluster_view:published(View),
                                                    refreshes => State#state.refreshes,
                                                    read_at => State#state.read_at,
                                                    last_error => State#state.last_error}}),
    State.
