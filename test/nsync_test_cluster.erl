%% @doc Test helper: a real Redis Cluster on 127.0.0.1 (by default 3
%% masters with one replica each), built from `nsync_test_redis' servers
%% started with `cluster-enabled yes' and joined by
%% `redis-cli --cluster create --cluster-yes --cluster-replicas N'
%% (`valkey-cli' for Valkey), and the operations the cluster suites need:
%% topology, `CLUSTER FAILOVER', kill -9 of a node, adding a replica,
%% `--cluster reshard' and `--cluster rebalance'.
%%
%% A cluster is a process (not linked to the caller, so one started in
%% init_per_suite serves every case) that owns the set of live nodes; each
%% node is an `nsync_test_redis' server, stopped by pid (SIGKILL) with the
%% cluster. Ports: a node's cluster bus listens on its port + 10000 (6.2
%% has no `cluster-port'), so nodes take ports from 10000-22767, below the
%% kernel's ephemeral range, with both ports free.
-module(nsync_test_cluster).
-behaviour(gen_server).

-export([start/1, stop/1, version/1, ports/1, server/2, seeds/1, topology/1, masters/1,
         master_of/2, wait_stable/1, failover/2, kill/2, add_replica/2, reshard/4,
         rebalance/2, cli/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([cluster/0, node_info/0]).

-type cluster() :: pid().
-type node_info() :: #{id := binary(), port := inet:port_number(),
                       role := master | replica, master := binary() | none,
                       slots := [{0..16383, 0..16383}], flags := [binary()],
                       open_slots := [binary()]}.

-define(CALL_TIMEOUT, 180000).
-define(STABLE_TIMEOUT_MS, 60000).
-define(CLI_TIMEOUT_MS, 120000).
-define(LOW_PORT, 10000).
-define(HIGH_PORT, 22767).

%%% ------------------------------------------------------------------ API

%% @doc Starts a cluster and waits until it is stable (every node agrees on
%% the slots, every replica is in sync). Options: `version' ('7.0', '6.2',
%% valkey), `masters' (3), `replicas' (1 per master), `node_timeout' (ms,
%% 1000), `config' (more server options, as `nsync_test_redis'), `pass'
%% (every node's password, and its replicas' `masterauth'), `tls'
%% (`#{certs := nsync_test_certs:certs()}': nodes on TLS only, cluster bus
%% and replication included; the command-line client over TLS too).
-spec start(map()) -> {ok, cluster()} | {error, term()}.
start(Opts) ->
    case gen_server:start(?MODULE, Opts, [{timeout, ?CALL_TIMEOUT}]) of
        {ok, Pid} -> {ok, Pid};
        {error, _} = E -> E
    end.

%% @doc Stops every node (SIGKILL) and the cluster process.
-spec stop(cluster()) -> ok.
stop(C) ->
    gen_server:call(C, stop, ?CALL_TIMEOUT).

-spec version(cluster()) -> nsync_test_redis:version().
version(C) -> gen_server:call(C, version).

%% @doc The ports of the live nodes.
-spec ports(cluster()) -> [inet:port_number()].
ports(C) -> gen_server:call(C, ports).

%% @doc The server of the live node on `Port'.
-spec server(cluster(), inet:port_number()) -> nsync_test_redis:server().
server(C, Port) -> gen_server:call(C, {server, Port}).

%% @doc The live nodes as `[{Host, Port}]' (for `{cluster, Seeds}').
-spec seeds(cluster()) -> [{string(), inet:port_number()}].
seeds(C) -> [{"127.0.0.1", P} || P <- ports(C)].

%% @doc The nodes as a live node sees them (`CLUSTER NODES'), without the
%% nodes that failed.
-spec topology(cluster()) -> [node_info()].
topology(C) -> gen_server:call(C, topology, ?CALL_TIMEOUT).

%% @doc The masters that serve slots, with their replicas' ports, sorted by
%% port.
-spec masters(cluster()) -> [#{port := inet:port_number(), id := binary(),
                               slots := [{0..16383, 0..16383}],
                               replicas := [inet:port_number()]}].
masters(C) ->
    Nodes = topology(C),
    lists:sort([#{port => P, id => Id, slots => Slots,
                  replicas => lists:sort([RP || #{role := replica, master := M, port := RP} <- Nodes,
                                                M =:= Id])}
                || #{role := master, port := P, id := Id, slots := Slots} <- Nodes, Slots =/= []]).

%% @doc The port of the master serving `Slot'.
-spec master_of(cluster(), 0..16383) -> inet:port_number().
master_of(C, Slot) ->
    [P] = [P || #{port := P, slots := Ranges} <- masters(C),
                lists:any(fun({A, B}) -> Slot >= A andalso Slot =< B end, Ranges)],
    P.

%% @doc Waits until every live node says `cluster_state:ok', all agree on
%% the owner of every slot, no slot is migrating or importing, and every
%% replica's link to its master is up and not syncing.
-spec wait_stable(cluster()) -> ok.
wait_stable(C) -> gen_server:call(C, wait_stable, ?CALL_TIMEOUT).

%% @doc `CLUSTER FAILOVER' on a replica of the master on `MasterPort';
%% returns the port of the new master once the cluster is stable.
-spec failover(cluster(), inet:port_number()) -> inet:port_number().
failover(C, MasterPort) -> gen_server:call(C, {failover, MasterPort}, ?CALL_TIMEOUT).

%% @doc kill -9 of the node on `Port'. For a master, waits until a replica
%% is promoted and returns its port (else `none'); the dead node is
%% forgotten by the others.
-spec kill(cluster(), inet:port_number()) -> inet:port_number() | none.
kill(C, Port) -> gen_server:call(C, {kill, Port}, ?CALL_TIMEOUT).

%% @doc Starts a new node and adds it as a replica of the master on
%% `MasterPort' (`--cluster add-node --cluster-slave'); returns its port
%% once it is in sync.
-spec add_replica(cluster(), inet:port_number()) -> inet:port_number().
add_replica(C, MasterPort) -> gen_server:call(C, {add_replica, MasterPort}, ?CALL_TIMEOUT).

%% @doc `--cluster reshard': moves `N' slots from the master on `From' to
%% the master on `To'.
-spec reshard(cluster(), inet:port_number(), inet:port_number(), pos_integer()) -> ok.
reshard(C, From, To, N) -> gen_server:call(C, {reshard, From, To, N}, ?CALL_TIMEOUT).

%% @doc `--cluster rebalance' with per-master weights `[{Port, Weight}]'
%% (masters not named weigh 1); `[]' evens the slots out.
-spec rebalance(cluster(), [{inet:port_number(), number()}]) -> ok.
rebalance(C, Weights) -> gen_server:call(C, {rebalance, Weights}, ?CALL_TIMEOUT).

%% @doc Runs the cluster's command-line client with `Args'; returns its
%% exit status and output.
-spec cli(cluster(), [string()]) -> {integer(), binary()}.
cli(C, Args) -> gen_server:call(C, {cli, Args}, ?CALL_TIMEOUT).

%%% ------------------------------------------------------------ callbacks

-spec init(map()) -> {ok, map()} | {stop, term()}.
init(Opts) ->
    process_flag(trap_exit, true),
    Version = maps:get(version, Opts, '7.0'),
    Masters = maps:get(masters, Opts, 3),
    Replicas = maps:get(replicas, Opts, 1),
    case nsync_test_redis:cli(Version) of
        {ok, Cli} ->
            St = #{version => Version, cli => Cli, opts => Opts, nodes => #{}},
            case start_nodes(Masters * (Replicas + 1), St) of
                {ok, St1} -> create(Replicas, St1);
                {error, Reason, St1} -> stop_all(St1), {stop, Reason}
            end;
        {error, _} = E ->
            {stop, E}
    end.

-spec handle_call(term(), gen_server:from(), map()) ->
          {reply, term(), map()} | {stop, normal, ok, map()}.
handle_call(stop, _From, St) ->
    stop_all(St),
    {stop, normal, ok, St#{nodes := #{}}};
handle_call(version, _From, #{version := V} = St) ->
    {reply, V, St};
handle_call(ports, _From, #{nodes := Nodes} = St) ->
    {reply, lists:sort(maps:keys(Nodes)), St};
handle_call({server, Port}, _From, #{nodes := Nodes} = St) ->
    {reply, maps:get(Port, Nodes), St};
handle_call(topology, _From, St) ->
    {reply, live_topology(St), St};
handle_call(wait_stable, _From, St) ->
    {reply, stable(St), St};
handle_call({failover, MasterPort}, _From, St) ->
    {reply, do_failover(MasterPort, St), St};
handle_call({kill, Port}, _From, St) ->
    {Reply, St1} = do_kill(Port, St),
    {reply, Reply, St1};
handle_call({add_replica, MasterPort}, _From, St) ->
    {Reply, St1} = do_add_replica(MasterPort, St),
    {reply, Reply, St1};
handle_call({reshard, From, To, N}, _From, St) ->
    {reply, do_reshard(From, To, N, St), St};
handle_call({rebalance, Weights}, _From, St) ->
    {reply, do_rebalance(Weights, St), St};
handle_call({cli, Args}, _From, St) ->
    {reply, run_cli(Args, St), St}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, St) -> {noreply, St}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(_Msg, St) -> {noreply, St}.

-spec terminate(term(), map()) -> ok.
terminate(_Reason, St) ->
    stop_all(St).

%%% ------------------------------------------------------------ start

start_nodes(0, St) ->
    {ok, St};
start_nodes(N, St) ->
    case start_node(St, 20) of
        {ok, Port, Server} ->
            start_nodes(N - 1, St#{nodes := (maps:get(nodes, St))#{Port => Server}});
        {error, Reason} ->
            {error, Reason, St}
    end.

start_node(_St, 0) ->
    {error, no_free_ports};
start_node(#{version := V, opts := Opts} = St, Tries) ->
    Port = ?LOW_PORT + rand:uniform(?HIGH_PORT - ?LOW_PORT),
    case is_free(Port) andalso is_free(Port + 10000) of
        false ->
            start_node(St, Tries - 1);
        true ->
            %% DEBUG (CHANGE-REPL-ID) from loopback: an option since 7.0
            Debug = [{"enable-debug-command", "local"} || V =/= '6.2'],
            %% the cluster bus always asks for a client certificate: the
            %% nodes present the client one (the server's is for serverAuth)
            Secured = [{"masterauth", P} || #{pass := P} <- [Opts]]
                ++ lists:append([[{"tls-cluster", "yes"}, {"tls-replication", "yes"},
                                  {"tls-client-cert-file", Cert}, {"tls-client-key-file", Key}]
                                 || #{tls := #{certs := #{client_cert := Cert,
                                                          client_key := Key}}} <- [Opts]]),
            Config = [{"cluster-enabled", "yes"},
                      {"cluster-config-file", "nodes.conf"},
                      {"cluster-node-timeout", integer_to_list(maps:get(node_timeout, Opts, 1000))}
                      | Debug ++ Secured ++ maps:get(config, Opts, [])],
            ServerOpts = maps:with([pass, tls], Opts),
            case nsync_test_redis:start(ServerOpts#{version => V, port => Port, config => Config}) of
                {ok, Server} -> {ok, Port, Server};
                {error, Reason} ->
                    ct_log("nsync_test_cluster: node on ~p did not start: ~p", [Port, Reason]),
                    start_node(St, Tries - 1)
            end
    end.

is_free(Port) ->
    case gen_tcp:listen(Port, [{ip, {127, 0, 0, 1}}, {reuseaddr, false}]) of
        {ok, L} -> ok = gen_tcp:close(L), true;
        {error, _} -> false
    end.

create(Replicas, #{nodes := Nodes} = St) ->
    Addrs = [addr(P) || P <- lists:sort(maps:keys(Nodes))],
    case run_cli(["--cluster", "create" | Addrs]
                 ++ ["--cluster-replicas", integer_to_list(Replicas), "--cluster-yes"], St) of
        {0, _} ->
            case stable(St) of
                ok -> {ok, St};
                {error, _} = E -> stop_all(St), {stop, E}
            end;
        {Status, Out} ->
            stop_all(St),
            {stop, {cluster_create, Status, Out}}
    end.

stop_all(#{nodes := Nodes}) ->
    lists:foreach(fun nsync_test_redis:stop/1, maps:values(Nodes)).

%%% ------------------------------------------------------------ topology

addr(Port) -> "127.0.0.1:" ++ integer_to_list(Port).

%% CLUSTER NODES of the first live node that answers, without failed nodes.
live_topology(#{nodes := Nodes}) ->
    first_answer(fun(S) -> parse_nodes(nsync_test_redis:cmd(S, [<<"CLUSTER">>, <<"NODES">>])) end,
                 maps:values(Nodes)).

first_answer(F, [S | Rest]) ->
    try F(S) of
        R -> [N || #{flags := Flags} = N <- R, not lists:member(<<"fail">>, Flags)]
    catch
        error:_ when Rest =/= [] -> first_answer(F, Rest)
    end.

-spec parse_nodes(binary()) -> [node_info()].
parse_nodes(Text) ->
    [parse_node(binary:split(L, <<" ">>, [global, trim_all]))
     || L <- binary:split(Text, <<"\n">>, [global, trim_all])].

parse_node([Id, Addr, Flags0, Master, _Ping, _Pong, _Epoch, _Link | SlotSpecs]) ->
    [HostPort | _] = binary:split(Addr, [<<"@">>, <<",">>]),
    [_Host, Port] = binary:split(HostPort, <<":">>),
    Flags = [F || F <- binary:split(Flags0, <<",">>, [global]), F =/= <<"myself">>],
    Role = case lists:member(<<"master">>, Flags) of
               true -> master;
               false -> replica
           end,
    {Open, Ranges} = lists:partition(fun(<<"[", _/binary>>) -> true; (_) -> false end, SlotSpecs),
    #{id => Id, port => binary_to_integer(Port), role => Role,
      master => case Master of <<"-">> -> none; _ -> Master end,
      flags => Flags, open_slots => Open,
      slots => [case binary:split(R, <<"-">>) of
                    [A, B] -> {binary_to_integer(A), binary_to_integer(B)};
                    [A] -> {binary_to_integer(A), binary_to_integer(A)}
                end || R <- Ranges]}.

%%% ------------------------------------------------------------ stability

stable(St) ->
    Deadline = erlang:monotonic_time(millisecond) + ?STABLE_TIMEOUT_MS,
    stable(St, Deadline, undefined).

stable(St, Deadline, _LastWhy) ->
    Why = try unstable(St) catch Class:Reason -> {Class, Reason} end,
    case Why of
        ok -> ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true ->
                    ct_log("nsync_test_cluster: not stable: ~p", [Why]),
                    {error, {not_stable, Why}};
                false ->
                    timer:sleep(100),
                    stable(St, Deadline, Why)
            end
    end.

%% ok, or why the cluster is not stable yet.
unstable(#{nodes := Nodes}) ->
    Live = maps:keys(Nodes),
    Views = [{P, nsync_test_redis:cmd(S, [<<"CLUSTER">>, <<"INFO">>]),
              parse_nodes(nsync_test_redis:cmd(S, [<<"CLUSTER">>, <<"NODES">>]))}
             || {P, S} <- maps:to_list(Nodes)],
    NotOk = [P || {P, Info, _} <- Views, binary:match(Info, <<"cluster_state:ok">>) =:= nomatch],
    Owners = lists:usort([lists:sort([{Range, Port} || #{role := master, slots := Rs, port := Port,
                                                          flags := Flags} <- View,
                                                       not lists:member(<<"fail">>, Flags),
                                                       Range <- Rs])
                          || {_, _, View} <- Views]),
    Open = [{P, O} || {_, _, View} <- Views, #{port := P, open_slots := O} <- View, O =/= []],
    Strangers = lists:usort([P || {_, _, View} <- Views, #{port := P, flags := F} <- View,
                                  not lists:member(P, Live),
                                  not lists:member(<<"fail">>, F),
                                  not lists:member(<<"noaddr">>, F)]),
    Covered = case Owners of
                  [One] -> lists:sum([B - A + 1 || {{A, B}, _} <- One]);
                  _ -> 0
              end,
    case {NotOk, length(Owners), Open, Strangers, Covered} of
        {[], 1, [], [], 16384} -> replicas_synced(Nodes, hd(Views));
        _ -> {NotOk, {views, length(Owners)}, Open, Strangers, {covered, Covered}}
    end.

replicas_synced(Nodes, {_, _, View}) ->
    Lagging = [P || #{role := replica, port := P} <- View, is_map_key(P, Nodes),
                    not in_sync(maps:get(P, Nodes))],
    case Lagging of
        [] -> ok;
        _ -> {replicas_syncing, Lagging}
    end.

in_sync(Server) ->
    case nsync_test_redis:info(Server, <<"replication">>) of
        #{<<"master_link_status">> := <<"up">>, <<"master_sync_in_progress">> := <<"0">>} -> true;
        _ -> false
    end.

%%% ------------------------------------------------------------ operations

do_failover(MasterPort, #{nodes := Nodes} = St) ->
    #{id := Id} = node_on(MasterPort, St),
    [Replica | _] = [P || #{role := replica, master := M, port := P} <- live_topology(St),
                          M =:= Id],
    <<"OK">> = nsync_test_redis:cmd(maps:get(Replica, Nodes), [<<"CLUSTER">>, <<"FAILOVER">>]),
    wait_role(Replica, master, St),
    ok = stable(St),
    Replica.

do_kill(Port, #{nodes := Nodes} = St) ->
    Topo = live_topology(St),
    [#{id := Id} = Node] = [N || #{port := P} = N <- Topo, P =:= Port],
    Replicas = [P || #{role := replica, master := M, port := P} <- Topo, M =:= Id],
    Server = maps:get(Port, Nodes),
    _ = os:cmd("kill -9 " ++ integer_to_list(nsync_test_redis:os_pid(Server))),
    ok = nsync_test_redis:stop(Server),
    St1 = St#{nodes := maps:remove(Port, Nodes)},
    Promoted = case Node of
                   #{role := master, slots := [_ | _]} when Replicas =/= [] ->
                       wait_promotion(Replicas, St1, erlang:monotonic_time(millisecond)
                                      + ?STABLE_TIMEOUT_MS);
                   _ -> none
               end,
    forget(Id, St1),
    ok = stable(St1),
    {Promoted, St1}.

%% The replica among `Replicas' that now serves the dead master's slots.
wait_promotion(Replicas, St, Deadline) ->
    Topo = try live_topology(St) catch _:_ -> [] end,
    case [P || #{role := master, port := P, slots := [_ | _]} <- Topo, lists:member(P, Replicas)] of
        [P | _] -> P;
        [] ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error({no_promotion, Replicas});
                false -> timer:sleep(100), wait_promotion(Replicas, St, Deadline)
            end
    end.

forget(Id, #{nodes := Nodes}) ->
    [nsync_test_redis:cmd(S, [<<"CLUSTER">>, <<"FORGET">>, Id]) || S <- maps:values(Nodes)],
    ok.

wait_role(Port, Role, #{nodes := Nodes} = St) ->
    Want = atom_to_binary(Role),
    Deadline = erlang:monotonic_time(millisecond) + ?STABLE_TIMEOUT_MS,
    Wait = fun Loop() ->
                   case nsync_test_redis:info(maps:get(Port, Nodes), <<"replication">>) of
                       #{<<"role">> := Want} -> ok;
                       _ ->
                           erlang:monotonic_time(millisecond) < Deadline
                               orelse error({role_timeout, Port, Role}),
                           timer:sleep(50),
                           Loop()
                   end
           end,
    Wait(),
    St.

do_add_replica(MasterPort, #{nodes := Nodes} = St) ->
    #{id := MasterId} = node_on(MasterPort, St),
    {ok, Port, Server} = start_node(St, 20),
    St1 = St#{nodes := Nodes#{Port => Server}},
    {0, _} = run_cli(["--cluster", "add-node", addr(Port), addr(MasterPort),
                      "--cluster-slave", "--cluster-master-id", binary_to_list(MasterId)], St1),
    ok = stable(St1),
    {Port, St1}.

do_reshard(From, To, N, St) ->
    #{id := FromId} = node_on(From, St),
    #{id := ToId} = node_on(To, St),
    {0, _} = run_cli(["--cluster", "reshard", addr(From),
                      "--cluster-from", binary_to_list(FromId),
                      "--cluster-to", binary_to_list(ToId),
                      "--cluster-slots", integer_to_list(N), "--cluster-yes"], St),
    stable(St).

do_rebalance(Weights, #{nodes := Nodes} = St) ->
    WeightArgs = case Weights of
                     [] -> [];
                     _ -> ["--cluster-weight"
                           | [binary_to_list(maps:get(id, node_on(P, St))) ++ "="
                              ++ lists:flatten(io_lib:format("~p", [W])) || {P, W} <- Weights]]
                 end,
    {0, _} = run_cli(["--cluster", "rebalance", addr(hd(lists:sort(maps:keys(Nodes))))]
                     ++ WeightArgs ++ ["--cluster-threshold", "1"], St),
    stable(St).

node_on(Port, St) ->
    [Node] = [N || #{port := P} = N <- live_topology(St), P =:= Port],
    Node.

%%% ------------------------------------------------------------ cli

run_cli(Args, #{cli := Cli, opts := Opts}) ->
    Auth = case Opts of
               #{pass := P} -> ["-a", P, "--no-auth-warning"];
               _ -> []
           end,
    Tls = case Opts of
              #{tls := #{certs := #{ca := Ca, client_cert := Cert, client_key := Key}}} ->
                  ["--tls", "--cacert", Ca, "--cert", Cert, "--key", Key];
              _ -> []
          end,
    Port = open_port({spawn_executable, Cli},
                     [{args, Auth ++ Tls ++ Args}, exit_status, stderr_to_stdout, binary, use_stdio]),
    collect(Port, [], erlang:monotonic_time(millisecond) + ?CLI_TIMEOUT_MS).

collect(Port, Acc, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, D}} -> collect(Port, [Acc, D], Deadline);
        {Port, {exit_status, S}} ->
            Out = iolist_to_binary(Acc),
            S =:= 0 orelse ct_log("nsync_test_cluster: cli exited ~p:~n~s", [S, Out]),
            {S, Out}
    after Left ->
        catch port_close(Port),
        {timeout, iolist_to_binary(Acc)}
    end.

ct_log(Fmt, Args) ->
    _ = (catch ct:pal(Fmt, Args)),
    ok.
