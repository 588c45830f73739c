%% @doc The Sentinel layer against real processes, shared by the cases (in
%% order): a master, a replica and three sentinels (quorum 2). The link
%% finds the master through the sentinels; a graceful `SENTINEL FAILOVER'
%% is followed with PSYNC continue (no full resync, no lost write); with the
%% first sentinel down the link still resolves and follows a failover back;
%% then the master is killed (kill -9) under a write load and the link
%% follows the promoted replica, again without a full resync; last, a
%% sentinel reached over TLS (`tls' in the option). Recovery times are
%% printed.
-module(nsync_sentinel_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([resolves_the_master/1, graceful_failover/1, sentinel_down/1, master_killed/1,
         tls_sentinel/1]).

-define(T, 30000).
-define(NAME, <<"mymaster">>).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 120}}].

-spec all() -> [atom()].
all() -> [resolves_the_master, graceful_failover, sentinel_down, master_killed, tls_sentinel].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    T0 = erlang:monotonic_time(millisecond),
    {ok, M} = nsync_test_redis:start(#{diskless => true}),
    {ok, R} = nsync_test_redis:start(#{diskless => true}),
    <<"OK">> = nsync_test_redis:cmd(R, [<<"REPLICAOF">>, <<"127.0.0.1">>, port(M)]),
    nsync_test_events:wait_until(fun() -> in_sync(M, R) end, ?T),
    Sentinels = [begin
                     {ok, S} = nsync_test_redis:start(
                                 #{sentinel => #{master => ?NAME,
                                                 port => nsync_test_redis:port(M)}}),
                     S
                 end || _ <- [1, 2, 3]],
    %% Each sentinel knows the two others and the replica.
    nsync_test_events:wait_until(
      fun() ->
              lists:all(fun(S) ->
                                Info = sentinel_master(S),
                                maps:get(<<"num-other-sentinels">>, Info) =:= <<"2">> andalso
                                    maps:get(<<"num-slaves">>, Info) =/= <<"0">>
                        end, Sentinels)
      end, ?T),
    ct:pal("master, replica and 3 sentinels ready in ~b ms",
           [erlang:monotonic_time(millisecond) - T0]),
    [{servers, [M, R]}, {sentinels, Sentinels}, {started, T0} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    [nsync_test_redis:stop(S) || S <- ?config(sentinels, Config) ++ ?config(servers, Config)],
    ct:pal("nsync_sentinel_SUITE: ~b ms",
           [erlang:monotonic_time(millisecond) - ?config(started, Config)]),
    ok.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, _Config) ->
    nsync_test_events:flush().

%%% ------------------------------------------------------------- cases

%% @doc The link asks the sentinels where the master is (confirmed with
%% ROLE) and mirrors it; status names it.
-spec resolves_the_master(ct_suite:ct_config()) -> ok.
resolves_the_master(Config) ->
    [M, _R] = ?config(servers, Config),
    nsync_test_redis:set_keys(M, <<"a:">>, 1, 1000, <<"v">>),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    ?assert(same_strings(M)),
    ?assertEqual({<<"127.0.0.1">>, nsync_test_redis:port(M)}, maps:get(master, nsync:status(Pid))),
    ok = nsync:stop(Pid).

%% @doc `SENTINEL FAILOVER' with the replica in sync: the link follows
%% +switch-master to the promoted replica with PSYNC continue (no full
%% resync: the same tables), and writes to the new master reach the
%% mirror, which ends equal to it. The old master stays a master for up to
%% a second after the promotion and its stream goes on (the sentinels'
%% hello PUBLISHes, PINGs), which the promoted replica never gets: PSYNC
%% asks from before those bytes (they delivered nothing), where the new
%% master's history still matches.
-spec graceful_failover(ct_suite:ct_config()) -> ok.
graceful_failover(Config) ->
    [M, R] = ?config(servers, Config),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    Load = load(M),
    timer:sleep(500),
    stop_load(Load),
    nsync_test_events:wait_until(fun() -> in_sync(M, R) andalso link_in_sync(Pid, M) end, ?T),
    Tid = nsync:tid(),
    Partial = stat(R, <<"sync_partial_ok">>),
    [S1 | _] = ?config(sentinels, Config),
    T0 = erlang:monotonic_time(millisecond),
    ok = failover(S1),
    Took = wait_master(Pid, R),
    ct:pal("graceful failover: the link streams from the new master ~b ms after "
           "SENTINEL FAILOVER", [Took - T0]),
    Load2 = load(R),
    timer:sleep(500),
    stop_load(Load2),
    nsync_test_events:wait_until(fun() -> same_strings(R) end, ?T),
    full_resyncs(Tid, R, Partial),
    ok = nsync:stop(Pid).

%% @doc With the first sentinel down a link still finds the master through
%% the others, and follows a failover back to the first master (with PSYNC
%% continue, as in graceful_failover).
-spec sentinel_down(ct_suite:ct_config()) -> ok.
sentinel_down(Config) ->
    [M, R] = ?config(servers, Config),
    [S1, S2, _S3] = ?config(sentinels, Config),
    nsync_test_events:wait_until(fun() -> in_sync(R, M) end, ?T),
    _ = os:cmd("kill -9 " ++ integer_to_list(nsync_test_redis:os_pid(S1))),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    ?assertEqual({<<"127.0.0.1">>, nsync_test_redis:port(R)}, maps:get(master, nsync:status(Pid))),
    Tid = nsync:tid(),
    Partial = stat(M, <<"sync_partial_ok">>),
    T0 = erlang:monotonic_time(millisecond),
    ok = failover(S2),
    Took = wait_master(Pid, M),
    ct:pal("failover with a sentinel down: followed in ~b ms", [Took - T0]),
    Load = load(M),
    timer:sleep(300),
    stop_load(Load),
    nsync_test_events:wait_until(fun() -> same_strings(M) end, ?T),
    full_resyncs(Tid, M, Partial),
    ok = nsync:stop(Pid).

%% @doc kill -9 of the master under a random write load (paused once the
%% replica is in sync, so that no write is lost with the master): the
%% sentinels promote the replica, the link follows with PSYNC continue
%% (no full resync), and the mirror ends equal to the new master, which
%% status names.
-spec master_killed(ct_suite:ct_config()) -> ok.
master_killed(Config) ->
    [M, R] = ?config(servers, Config),
    nsync_test_events:wait_until(fun() -> in_sync(M, R) end, ?T),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    Load = load(M),
    timer:sleep(1000),
    stop_load(Load),
    nsync_test_events:wait_until(fun() -> in_sync(M, R) andalso link_in_sync(Pid, M) end, ?T),
    Tid = nsync:tid(),
    Full = stat(R, <<"sync_full">>),
    T0 = erlang:monotonic_time(millisecond),
    _ = os:cmd("kill -9 " ++ integer_to_list(nsync_test_redis:os_pid(M))),
    Took = wait_master(Pid, R),
    ct:pal("master killed: the link streams from the promoted replica ~b ms after "
           "kill -9 (down-after-milliseconds 1000)", [Took - T0]),
    Load2 = load(R),
    timer:sleep(1000),
    stop_load(Load2),
    nsync_test_events:wait_until(fun() -> same_strings(R) end, ?T),
    ?assertEqual(Tid, nsync:tid()),
    ?assertEqual(Full, stat(R, <<"sync_full">>)),
    ?assertEqual({<<"127.0.0.1">>, nsync_test_redis:port(R)}, maps:get(master, nsync:status(Pid))),
    ok = nsync:stop(Pid).

%% @doc A sentinel that listens on TLS only: the link asks it over TLS
%% (verified against the suite's CA) and mirrors the master it names. (Last:
%% a fourth sentinel changes the majority the others need.)
-spec tls_sentinel(ct_suite:ct_config()) -> ok.
tls_sentinel(Config) ->
    [_M, R] = ?config(servers, Config),
    Certs = nsync_test_certs:make(),
    {ok, S} = nsync_test_redis:start(#{sentinel => #{master => ?NAME,
                                                     port => nsync_test_redis:port(R)},
                                       tls => #{certs => Certs}}),
    try
        Sentinel = #{sentinels => [{"127.0.0.1", nsync_test_redis:port(S)}], master => ?NAME,
                     tls => [{cacertfile, maps:get(ca, Certs)}]},
        {ok, Pid} = nsync:start_link([{sentinel, Sentinel}, {block, true}, {timeout, ?T}]),
        ?assertEqual({<<"127.0.0.1">>, nsync_test_redis:port(R)},
                     maps:get(master, nsync:status(Pid))),
        nsync_test_events:wait_until(fun() -> same_strings(R) end, ?T),
        ok = nsync:stop(Pid)
    after
        nsync_test_redis:stop(S),
        nsync_test_certs:remove(Certs)
    end.

%%% ----------------------------------------------------------- helpers

opts(Config, Extra) ->
    Sentinels = [{"127.0.0.1", nsync_test_redis:port(S)} || S <- ?config(sentinels, Config)],
    [{sentinel, #{sentinels => Sentinels, master => ?NAME}} | Extra].

port(S) -> integer_to_binary(nsync_test_redis:port(S)).

%% Waits until the link streams from `S'; when it did.
wait_master(Pid, S) ->
    Port = nsync_test_redis:port(S),
    nsync_test_events:wait_until(
      fun() ->
              case nsync:status(Pid) of
                  #{state := streaming, master := {<<"127.0.0.1">>, Port}} -> true;
                  _ -> false
              end
      end, ?T),
    erlang:monotonic_time(millisecond).

%% SENTINEL FAILOVER, again while the sentinel has not seen a replica it
%% may promote yet (NOGOODSLAVE: its view of a replica is refreshed every
%% few seconds).
failover(S) ->
    nsync_test_events:wait_until(
      fun() ->
              case nsync_test_redis:cmd(S, [<<"SENTINEL">>, <<"FAILOVER">>, ?NAME]) of
                  <<"OK">> -> true;
                  {error, <<"NOGOODSLAVE", _/binary>>} -> timer:sleep(200), false
              end
      end, ?T).

sentinel_master(S) ->
    Flat = nsync_test_redis:cmd(S, [<<"SENTINEL">>, <<"MASTER">>, ?NAME]),
    maps:from_list(pairs(Flat)).

pairs([K, V | Rest]) -> [{K, V} | pairs(Rest)];
pairs([]) -> [].

%% Replica `R' has everything master `M' has.
in_sync(M, R) ->
    Info = nsync_test_redis:info(R, <<"replication">>),
    maps:get(<<"master_link_status">>, Info, <<"down">>) =:= <<"up">> andalso
        maps:get(<<"slave_repl_offset">>, Info) =:=
        maps:get(<<"master_repl_offset">>, nsync_test_redis:info(M, <<"replication">>)).

link_in_sync(Pid, M) ->
    #{offset := Offset} = nsync:status(Pid),
    integer_to_binary(Offset) =:=
        maps:get(<<"master_repl_offset">>, nsync_test_redis:info(M, <<"replication">>)).

%% After a graceful failover: no full resync (the tables would be new), the
%% new master served nsync a partial one.
full_resyncs(Tid, NewMaster, PartialBefore) ->
    Partial = stat(NewMaster, <<"sync_partial_ok">>) - PartialBefore,
    ct:pal("after the switch: ~b partial resyncs served by the new master (~b refused "
           "so far)", [Partial, stat(NewMaster, <<"sync_partial_err">>)]),
    ?assertEqual(Tid, nsync:tid()),
    ?assert(Partial >= 1).

stat(S, Name) ->
    binary_to_integer(maps:get(Name, nsync_test_redis:info(S, <<"stats">>))).

%% A random write load on 300 string keys until stop_load/1.
load(S) ->
    spawn_link(fun() -> rand:seed(exsss), load_loop(S) end).

load_loop(S) ->
    receive {stop, From} -> From ! {self(), stopped}
    after 0 ->
            Key = <<"r:", (integer_to_binary(rand:uniform(300)))/binary>>,
            _ = case rand:uniform(4) of
                    1 -> nsync_test_redis:cmd(S, [<<"SET">>, Key, integer_to_binary(rand:uniform(1000))]);
                    2 -> nsync_test_redis:cmd(S, [<<"APPEND">>, Key, <<"x">>]);
                    3 -> nsync_test_redis:cmd(S, [<<"DEL">>, Key]);
                    4 -> nsync_test_redis:cmd(S, [<<"INCRBY">>, <<"counter">>, rand:uniform(9)])
                end,
            load_loop(S)
    end.

stop_load(Load) ->
    Load ! {stop, self()},
    receive {Load, stopped} -> ok after ?T -> error(load_stuck) end.

%% The mirror holds exactly the master's keys and string values.
same_strings(S) ->
    case nsync:tid() of
        undefined -> false;
        Tid ->
            Keys = nsync_test_events:master_keys(S),
            Keys =:= nsync_test_events:mirror_keys(Tid) andalso
                lists:all(fun(K) ->
                                  ets:lookup(Tid, K) =:= [{K, nsync_test_redis:cmd(S, [<<"GET">>, K])}]
                          end, Keys)
    end.
