%% @doc Redis Cluster: real clusters of 3 masters and 3 replicas
%% (`nsync_test_cluster'), written to by a cluster-aware random load
%% (`nsync_test_cluster_client'). One cluster per server version, shared by
%% the cases of its group, and one whose nodes require a password and
%% listen on TLS only. `CLUSTER_FULL=1' reshards 1000 slots on Valkey too
%% (300 by default: its SETSLOT waits for the replicas, 40 ms a slot).
-module(nsync_cluster_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(PASS, "cluster-secret").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([key_slots/1, client_follows_resharding/1, union_of_masters/1,
         shard_resync_keeps_the_others/1, shard_link_restarts/1, failover_under_load/1,
         resharding_under_load/1, secured_nodes/1]).
-export([handle_event/4]).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {minutes, 5}}].

-spec all() -> [{group, atom()}].
all() -> [{group, redis_70}, {group, valkey}, {group, redis_62}, {group, secured}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    Cases = [key_slots, client_follows_resharding, union_of_masters,
             shard_resync_keeps_the_others, shard_link_restarts, failover_under_load,
             resharding_under_load],
    %% 6.2 has no CLUSTER SHARDS: the topology comes from CLUSTER SLOTS
    [{redis_70, [sequence], Cases}, {valkey, [sequence], Cases},
     {redis_62, [sequence], [union_of_masters, failover_under_load]},
     {secured, [], [secured_nodes]}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(telemetry),
    [{suite_started, erlang:monotonic_time(millisecond)} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    ct:pal("nsync_cluster_SUITE took ~.1f s",
           [(erlang:monotonic_time(millisecond) - ?config(suite_started, Config)) / 1000]),
    ok.

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(secured, Config) ->
    Certs = nsync_test_certs:make(),
    start_cluster(#{version => '7.0', pass => ?PASS, tls => #{certs => Certs}},
                  [{certs, Certs} | Config]);
init_per_group(Group, Config) ->
    Version = case Group of
                  redis_70 -> '7.0';
                  valkey -> valkey;
                  redis_62 -> '6.2'
              end,
    start_cluster(#{version => Version}, Config).

start_cluster(#{version := Version} = Opts, Config) ->
    T0 = erlang:monotonic_time(millisecond),
    {ok, C} = nsync_test_cluster:start(Opts),
    ok = write_direct(C, <<"pre:">>, 20000),
    ct:pal("~p cluster up and loaded in ~b ms: ~p",
           [Version, erlang:monotonic_time(millisecond) - T0, nsync_test_cluster:masters(C)]),
    [{cluster, C}, {version, Version} | Config].

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_Group, Config) ->
    nsync_test_cluster:stop(?config(cluster, Config)),
    [nsync_test_certs:remove(Certs) || Certs <- [?config(certs, Config)], Certs =/= undefined],
    ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) ->
    Self = self(),
    erase(nsync_cluster_events),
    ok = telemetry:attach_many({?MODULE, Case},
                               [[nsync, connection], [nsync, partial_sync],
                                [nsync, full_sync, start], [nsync, full_sync, stop],
                                [nsync, cluster, failover], [nsync, cluster, slots_moved]],
                               fun ?MODULE:handle_event/4, Self),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(Case, _Config) ->
    telemetry:detach({?MODULE, Case}),
    ok.

%%% ------------------------------------------------------------ cases

%% @doc `nsync_nif:key_slot/1' gives the slot `CLUSTER KEYSLOT' gives, for
%% random keys with and without hash tags (empty, nested, unclosed).
-spec key_slots(ct_suite:ct_config()) -> ok.
key_slots(Config) ->
    [Port | _] = nsync_test_cluster:ports(?config(cluster, Config)),
    S = nsync_test_cluster:server(?config(cluster, Config), Port),
    Pieces = [<<"{">>, <<"}">>, <<"user">>, <<"1000">>, <<>>, <<0>>, <<255>>, <<"{}">>, <<"a">>],
    Keys = [iolist_to_binary([lists:nth(rand:uniform(length(Pieces)), Pieces)
                              || _ <- lists:seq(1, rand:uniform(6))])
            || _ <- lists:seq(1, 1000)]
        ++ [crypto:strong_rand_bytes(rand:uniform(40)) || _ <- lists:seq(1, 1000)],
    Wrong = [{K, Slot, Redis} || K <- Keys,
                                 Slot <- [nsync_nif:key_slot(K)],
                                 Redis <- [nsync_test_redis:cmd(S, [<<"CLUSTER">>, <<"KEYSLOT">>, K])],
                                 Slot =/= Redis],
    ?assertEqual([], Wrong).

%% @doc The test client writes to the right master while slots move
%% (`--cluster reshard' of 200 slots): every key written reads back with
%% its last value, through MOVED and ASK redirections.
-spec client_follows_resharding(ct_suite:ct_config()) -> ok.
client_follows_resharding(Config) ->
    C = ?config(cluster, Config),
    [#{port := From}, #{port := To} | _] = nsync_test_cluster:masters(C),
    Ports = nsync_test_cluster:ports(C),
    Self = self(),
    Writer = spawn_link(fun() -> Self ! {written, write_keys(nsync_test_cluster_client:new(Ports), 0, #{})} end),
    ok = nsync_test_cluster:reshard(C, From, To, 200),
    Writer ! stop,
    Written = receive {written, W} -> W end,
    ct:pal("~b keys written during the reshard", [map_size(Written)]),
    Client = nsync_test_cluster_client:new(Ports),
    Wrong = maps:fold(fun(K, V, {Acc, Cl}) ->
                              case nsync_test_cluster_client:cmd(Cl, K, [<<"GET">>, K]) of
                                  {V, Cl1} -> {Acc, Cl1};
                                  {Other, Cl1} -> {[{K, V, Other} | Acc], Cl1}
                              end
                      end, {[], Client}, Written),
    ?assertEqual([], element(1, Wrong)),
    ok = nsync_test_cluster:reshard(C, To, From, 200).

write_keys(Client, I, Acc) ->
    receive
        stop -> Acc
    after 0 ->
        K = <<"w:", (integer_to_binary(I rem 3000))/binary>>,
        V = integer_to_binary(I),
        {<<"OK">>, Client1} = nsync_test_cluster_client:cmd(Client, K, [<<"SET">>, K, V]),
        write_keys(Client1, I + 1, Acc#{K => V})
    end.

%% @doc (a) One view of the whole cluster: a mirror started on a loaded
%% cluster under a write load ends equal to the union of the masters;
%% every shard has its link (master, state, offset in the status, `shard'
%% in the telemetry metadata) and the slots are all owned.
-spec union_of_masters(ct_suite:ct_config()) -> ok.
union_of_masters(Config) ->
    C = ?config(cluster, Config),
    Load = nsync_test_cluster_client:start_load(nsync_test_cluster:ports(C), #{seed => 1}),
    {ok, Pid} = start_mirror(C, union),
    timer:sleep(2000),
    Stats = nsync_test_cluster_client:stop_load(Load),
    settle(C, Pid),
    #{state := streaming, published := true, shards := Shards,
      slots := #{unowned := 0, contested := 0}} = nsync:status(Pid),
    Masters = nsync_test_cluster:masters(C),
    ?assertEqual(lists:sort([P || #{port := P} <- Masters]),
                 lists:sort([P || #{master := {_, P}} <- Shards])),
    ?assertEqual(16384, lists:sum([N || #{slots := N} <- Shards])),
    ?assertEqual([], [S || #{state := St, offset := O} = S <- Shards,
                           St =/= streaming orelse not is_integer(O)]),
    ShardIds = lists:sort([Id || #{shard := Id} <- Shards]),
    ?assertEqual(ShardIds, lists:usort([Id || {[nsync, connection], #{shard := Id, cluster := union}}
                                                  <- events()])),
    ct:pal("load: ~p", [Stats]),
    no_mismatch(C, Config, union),
    ok = nsync:stop(Pid),
    ?assertEqual(undefined, nsync:tid(union)),
    ok.

%% @doc A full resync of one shard (its master's replication id changed)
%% replaces that shard's keys in place: the other shards' keys never leave
%% the view meanwhile, and the view ends equal to the union of masters.
-spec shard_resync_keeps_the_others(ct_suite:ct_config()) -> ok.
shard_resync_keeps_the_others(Config) ->
    C = ?config(cluster, Config),
    {ok, Pid} = start_mirror(C, resync),
    [#{port := Port} | Others] = nsync_test_cluster:masters(C),
    Tid = nsync:tid(resync),
    %% keys of the other shards the load does not write, read all along
    Watched = [K || {<<"pre:", _/binary>> = K, _} <- ets:tab2list(Tid),
                    lists:member(nsync_test_cluster:master_of(C, nsync_nif:key_slot(K)),
                                 [P || #{port := P} <- Others])],
    Reader = spawn_link(fun() -> read_loop(Tid, Watched, 0) end),
    Load = nsync_test_cluster_client:start_load(nsync_test_cluster:ports(C), #{seed => 2}),
    S = nsync_test_cluster:server(C, Port),
    Loads = fun() -> length([E || {[nsync, full_sync, stop], _} = E <- events()]) end,
    Before = Loads(),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"DEBUG">>, <<"CHANGE-REPL-ID">>]),
    kill_replicas(S),
    wait_for(fun() -> Loads() > Before end, 30000),
    timer:sleep(500),
    _ = nsync_test_cluster_client:stop_load(Load),
    Reader ! {stop, self()},
    Misses = receive {misses, M} -> M end,
    ct:pal("~b keys of the other shards watched, ~b misses", [length(Watched), Misses]),
    ?assertEqual(0, Misses),
    ?assert(length(Watched) > 1000),
    settle(C, Pid),
    no_mismatch(C, Config, resync),
    nsync:stop(Pid),
    ok.

%% @doc A shard's link that crashes starts again: the shard's keys stay in
%% the view meanwhile, the new link's full sync replaces them, and the
%% view ends equal to the union of the masters.
-spec shard_link_restarts(ct_suite:ct_config()) -> ok.
shard_link_restarts(Config) ->
    C = ?config(cluster, Config),
    {ok, Pid} = start_mirror(C, restart),
    #{shards := [#{shard := Shard, link := Link} | _]} = nsync:status(Pid),
    Size = ets:info(nsync:tid(restart), size),
    Load = nsync_test_cluster_client:start_load(nsync_test_cluster:ports(C), #{seed => 5}),
    exit(Link, kill),
    timer:sleep(100),
    %% the view keeps the shard's keys while its link is down
    ?assert(ets:info(nsync:tid(restart), size) >= Size - 100),
    wait_for(fun() ->
                     #{shards := Shards} = nsync:status(Pid),
                     [#{link := New, state := streaming}] = [S || #{shard := I} = S <- Shards,
                                                                  I =:= Shard],
                     New =/= Link
             end, 30000),
    _ = nsync_test_cluster_client:stop_load(Load),
    ?assertEqual(2, length([E || {[nsync, full_sync, start], #{shard := I}} = E <- events(),
                                 I =:= Shard])),
    settle(C, Pid),
    no_mismatch(C, Config, restart),
    nsync:stop(Pid).

%% @doc (b) CLUSTER FAILOVER, then kill -9 of another master (its replica
%% in sync), under a write load: each shard's link PSYNCs the promoted
%% replica and continues (no full resync after the first ones), and the
%% view ends equal to the union of the masters.
-spec failover_under_load(ct_suite:ct_config()) -> ok.
failover_under_load(Config) ->
    C = ?config(cluster, Config),
    {ok, Pid} = start_mirror(C, failover),
    %% one full sync per shard to start with (each began before the view
    %% was published)
    #{shards := Initial} = nsync:status(Pid),
    Load = nsync_test_cluster_client:start_load(nsync_test_cluster:ports(C), #{seed => 3}),
    timer:sleep(1000),
    [#{port := M1}, #{port := M2} | _] = nsync_test_cluster:masters(C),
    T1 = erlang:system_time(),
    New1 = nsync_test_cluster:failover(C, M1),
    ct:pal("CLUSTER FAILOVER: ~p -> ~p", [M1, New1]),
    timer:sleep(1000),
    %% kill -9 of a master whose replica is in sync, mid-load
    ok = nsync_test_cluster_client:pause_load(Load),
    wait_replicas_in_sync(C, M2),
    T2 = erlang:system_time(),
    New2 = nsync_test_cluster:kill(C, M2),
    ok = nsync_test_cluster_client:resume_load(Load),
    ct:pal("kill -9: ~p -> ~p", [M2, New2]),
    timer:sleep(2000),
    Stats = nsync_test_cluster_client:stop_load(Load),
    ct:pal("load: ~p", [Stats]),
    settle(C, Pid),
    Masters = [P || #{port := P} <- nsync_test_cluster:masters(C)],
    ?assert(lists:member(New1, Masters) andalso lists:member(New2, Masters)),
    #{shards := Shards} = nsync:status(Pid),
    ?assertEqual(lists:sort(Masters), lists:sort([P || #{master := {_, P}} <- Shards])),
    Partial = [Id || {[nsync, partial_sync], #{shard := Id}} <- events()],
    Full = length([E || {[nsync, full_sync, start], _} = E <- events()]) - length(Initial),
    ct:pal("partial syncs (shards) ~p, full resyncs after the first loads ~b~nevents: ~p",
           [Partial, Full, [{E, maps:with([shard, master, replid, offset], M)} || {E, M} <- events()]]),
    ?assertEqual(0, Full),
    ?assert(length(lists:usort(Partial)) >= 2),
    Failovers = [{maps:get(shard, M), maps:get(master, M)}
                 || {[nsync, cluster, failover], M} <- events()],
    ct:pal("[nsync, cluster, failover] events: ~p", [Failovers]),
    ct:pal("recovery (ms from the command to the failover seen, to PSYNC continued): "
           "CLUSTER FAILOVER ~p, kill -9 ~p", [recovery(New1, T1), recovery(New2, T2)]),
    ?assert(lists:member(New1, [P || {_, {_, P}} <- Failovers])),
    ?assert(lists:member(New2, [P || {_, {_, P}} <- Failovers])),
    no_mismatch(C, Config, failover),
    nsync:stop(Pid),
    %% the shard that lost its replica gets a new one, for the next cases
    _ = nsync_test_cluster:add_replica(C, New2),
    ok.

%% @doc (c) `--cluster reshard' of 1000 slots (300 with Valkey, whose
%% SETSLOT waits for its replicas: 40 ms a slot), then `--cluster
%% rebalance', under a write load: the view ends equal to the union of the
%% masters, with every slot owned and none contested.
-spec resharding_under_load(ct_suite:ct_config()) -> ok.
resharding_under_load(Config) ->
    C = ?config(cluster, Config),
    {ok, Pid} = start_mirror(C, reshard),
    Load = nsync_test_cluster_client:start_load(nsync_test_cluster:ports(C), #{seed => 4}),
    [#{port := From}, #{port := To} | _] = nsync_test_cluster:masters(C),
    T0 = erlang:monotonic_time(millisecond),
    Slots = case {?config(version, Config), os:getenv("CLUSTER_FULL")} of
                {valkey, false} -> 300;
                _ -> 1000
            end,
    ok = nsync_test_cluster:reshard(C, From, To, Slots),
    T1 = erlang:monotonic_time(millisecond),
    ok = nsync_test_cluster:rebalance(C, []),
    T2 = erlang:monotonic_time(millisecond),
    Stats = nsync_test_cluster_client:stop_load(Load),
    ct:pal("reshard of ~b slots ~b ms, rebalance ~b ms; load: ~p",
           [Slots, T1 - T0, T2 - T1, Stats]),
    Moved = lists:sum([N || {[nsync, cluster, slots_moved], #{slots := N}} <- events()]),
    ct:pal("slots moved in the view (telemetry): ~b", [Moved]),
    ?assert(Moved >= Slots),
    settle(C, Pid),
    wait_for(fun() -> #{slots := #{contested := 0, unowned := 0}} = nsync:status(Pid), true end,
             30000),
    no_mismatch(C, Config, reshard),
    #{shards := Shards} = nsync:status(Pid),
    Expected = lists:sort([{P, lists:sum([B - A + 1 || {A, B} <- R])}
                           || #{port := P, slots := R} <- nsync_test_cluster:masters(C)]),
    ?assertEqual(Expected, lists:sort([{P, N} || #{master := {_, P}, slots := N} <- Shards])),
    nsync:stop(Pid).

%% @doc `user', `pass' and `tls' reach every node: a cluster whose nodes
%% require a password (`AUTH default Pass') and listen on TLS only (cluster
%% bus and replication too) is mirrored with the CA as the only TLS option
%% (each node's certificate
%% checked against its address), through a `CLUSTER FAILOVER' to a node
%% nsync had not talked to (its PSYNC continues there), with keys written
%% before and after it.
-spec secured_nodes(ct_suite:ct_config()) -> ok.
secured_nodes(Config) ->
    C = ?config(cluster, Config),
    Ca = maps:get(ca, ?config(certs, Config)),
    {ok, Pid} = start_mirror(C, secured, [{user, <<"default">>}, {pass, ?PASS},
                                             {tls, [{cacertfile, Ca}]}]),
    #{shards := Initial} = nsync:status(Pid),
    ok = write_direct(C, <<"before:">>, 3000),
    [#{port := M1} | _] = nsync_test_cluster:masters(C),
    New = nsync_test_cluster:failover(C, M1),
    ok = write_direct(C, <<"after:">>, 3000),
    settle(C, Pid),
    #{state := streaming, shards := Shards} = nsync:status(Pid),
    ?assert(lists:member(New, [P || #{master := {_, P}} <- Shards])),
    [Shard] = [Id || {[nsync, cluster, failover], #{shard := Id, master := {_, P}}} <- events(),
                     P =:= New],
    ?assert(lists:member(Shard, [Id || {[nsync, partial_sync], #{shard := Id}} <- events()])),
    ?assertEqual(length(Initial), length([E || {[nsync, full_sync, start], _} = E <- events()])),
    no_mismatch(C, Config, secured),
    nsync:stop(Pid).

%%% ------------------------------------------------------------ helpers

%% Keys Prefix1..N (32-byte values), each SET on its slot's master.
write_direct(C, Prefix, N) ->
    Masters = nsync_test_cluster:masters(C),
    Owner = fun(K) ->
                    Slot = nsync_nif:key_slot(K),
                    hd([P || #{port := P, slots := Rs} <- Masters,
                             lists:any(fun({A, B}) -> Slot >= A andalso Slot =< B end, Rs)])
            end,
    ByMaster = lists:foldl(fun(I, Acc) ->
                                   K = <<Prefix/binary, (integer_to_binary(I))/binary>>,
                                   maps:update_with(Owner(K), fun(L) -> [K | L] end, [K], Acc)
                           end, #{}, lists:seq(1, N)),
    maps:foreach(fun(Port, Keys) ->
                         {ok, Sock} = nsync_test_redis:connect(nsync_test_cluster:server(C, Port)),
                         [ok = nsync_test_redis:send_cmd(Sock, [<<"SET">>, K, binary:copy(<<"v">>, 32)])
                          || K <- Keys],
                         [<<"OK">> = nsync_test_redis:recv_reply(Sock, 30000) || _ <- Keys],
                         nsync_test_redis:close_sock(Sock)
                 end, ByMaster).

start_mirror(C, Name) ->
    start_mirror(C, Name, []).

start_mirror(C, Name, Opts) ->
    T0 = erlang:monotonic_time(millisecond),
    {ok, Pid} = nsync:start_link([{cluster, nsync_test_cluster:seeds(C)}, {name, Name},
                                  {block, true}, {timeout, 120000} | Opts]),
    ct:pal("~p: every shard loaded in ~b ms", [Name, erlang:monotonic_time(millisecond) - T0]),
    %% a blocking start returns once every shard's link says it has loaded
    #{published := true, shards := Shards} = nsync:status(Pid),
    ?assertEqual([], [S || #{stale_reason := not_loaded} = S <- Shards]),
    {ok, Pid}.

%% How long after `T0' (system time) the manager saw the failover to the
%% master on `Port' and its shard's link continued there (ms).
recovery(Port, T0) ->
    Ms = fun(T) -> erlang:convert_time_unit(T - T0, native, millisecond) end,
    %% (the first time: a reading may show the master flip before it settles)
    [{Shard, Seen} | _] = [{Id, T} || {[nsync, cluster, failover],
                                       #{shard := Id, master := {_, P}, system_time := T}}
                                          <- events(),
                                      P =:= Port],
    Continued = lists:min([T || {[nsync, partial_sync], #{shard := Id, system_time := T}} <- events(),
                                Id =:= Shard, T >= Seen]),
    {Ms(Seen), Ms(Continued)}.

%% Waits until the mirror has applied each master's stream up to the
%% master's offset as read now.
settle(C, Pid) ->
    Offsets = [{P, master_offset(nsync_test_cluster:server(C, P))}
               || #{port := P} <- nsync_test_cluster:masters(C)],
    wait_for(fun() ->
                     #{shards := Shards} = nsync:status(Pid),
                     lists:all(fun({P, O}) ->
                                       lists:any(fun(#{master := {_, MP}, offset := SO}) ->
                                                         MP =:= P andalso is_integer(SO) andalso SO >= O;
                                                    (_) -> false
                                                 end, Shards)
                               end, Offsets)
             end, 60000).

master_offset(S) ->
    binary_to_integer(maps:get(<<"master_repl_offset">>, nsync_test_redis:info(S, <<"replication">>))).

no_mismatch(C, Config, Name) ->
    Servers = [nsync_test_cluster:server(C, P) || #{port := P} <- nsync_test_cluster:masters(C)],
    Mismatches = nsync_workload:compare_union(Servers, nsync:tid(Name),
                                              #{version => ?config(version, Config)}),
    ct:pal("~p: ~b keys in the view, ~b mismatches: ~p",
           [Name, ets:info(nsync:tid(Name), size), length(Mismatches), lists:sublist(Mismatches, 10)]),
    ?assertEqual([], Mismatches).

wait_for(F, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_for_until(F, Deadline).

wait_for_until(F, Deadline) ->
    case catch F() of
        true -> ok;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({timeout, Other});
                false -> timer:sleep(50), wait_for_until(F, Deadline)
            end
    end.

%% The master's replicas (the cluster's) have its offset.
wait_replicas_in_sync(C, Port) ->
    S = nsync_test_cluster:server(C, Port),
    wait_for(fun() ->
                     Info = nsync_test_redis:info(S, <<"replication">>),
                     Offset = maps:get(<<"master_repl_offset">>, Info),
                     Replicas = [V || {<<"slave", _/binary>>, V} <- maps:to_list(Info),
                                      binary:match(V, <<"port=0,">>) =:= nomatch],
                     Replicas =/= [] andalso
                         lists:all(fun(V) -> binary:match(V, <<"offset=", Offset/binary, ",">>) =/= nomatch end,
                                   Replicas)
             end, 10000).

%% Drops the master's replication connections (nsync's, and its cluster
%% replica's, which reconnects by itself).
kill_replicas(S) ->
    _ = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    ok.

read_loop(Tid, Keys, Misses) ->
    receive
        {stop, From} -> From ! {misses, Misses}
    after 0 ->
        M = length([K || K <- Keys, ets:lookup(Tid, K) =:= []]),
        timer:sleep(1),
        read_loop(Tid, Keys, Misses + M)
    end.

%% @private
-spec handle_event([atom()], map(), map(), pid()) -> ok.
handle_event(Event, Measurements, Metadata, Pid) ->
    Pid ! {nsync_cluster_event, Event, maps:merge(Measurements, Metadata)},
    ok.

%% The events received so far (kept in the process dictionary).
events() ->
    New = collect([]),
    All = case get(nsync_cluster_events) of undefined -> []; L -> L end ++ New,
    put(nsync_cluster_events, All),
    All.

collect(Acc) ->
    receive
        {nsync_cluster_event, E, M} -> collect([{E, M} | Acc])
    after 0 -> lists:reverse(Acc)
    end.
