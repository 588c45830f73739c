%% @doc A master reached through a replica (master -> redis replica ->
%% nsync): the mirror follows the master's writes through the middle one;
%% `REPLICAOF NO ONE' on the middle one (its replid changes, and it drops
%% its replicas) is followed with PSYNC continue (`+CONTINUE <new replid>'):
%% no full resync, the same tables, and its own writes reach the mirror.
-module(nsync_chain_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0]).
-export([chained_replica_promoted/1]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [atom()].
all() -> [chained_replica_promoted].

%% @doc See the module doc.
-spec chained_replica_promoted(ct_suite:ct_config()) -> ok.
chained_replica_promoted(_Config) ->
    {ok, Top} = nsync_test_redis:start(#{diskless => true}),
    {ok, Mid} = nsync_test_redis:start(#{}),
    try
        nsync_test_redis:set_keys(Top, <<"a:">>, 1, 500, <<"v">>),
        <<"OK">> = nsync_test_redis:cmd(Mid, [<<"REPLICAOF">>, <<"127.0.0.1">>,
                                              integer_to_binary(nsync_test_redis:port(Top))]),
        nsync_test_events:wait_until(fun() -> link_up(Mid) end, ?T),
        {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(Mid)},
                                      {block, true}, {timeout, ?T}]),
        nsync_test_redis:set_keys(Top, <<"b:">>, 1, 500, <<"w">>),
        nsync_test_events:wait_until(fun() -> same_keys(Top) end, ?T),
        Tid = nsync:tid(),
        #{replid := Replid1} = nsync:status(Pid),
        Full = stat(Mid, <<"sync_full">>),
        Partial = stat(Mid, <<"sync_partial_ok">>),
        <<"OK">> = nsync_test_redis:cmd(Mid, [<<"REPLICAOF">>, <<"NO">>, <<"ONE">>]),
        T0 = erlang:monotonic_time(millisecond),
        nsync_test_redis:set_keys(Mid, <<"c:">>, 1, 500, <<"x">>),
        nsync_test_events:wait_until(fun() -> same_keys(Mid) end, ?T),
        ct:pal("the promoted middle replica's writes in the mirror ~b ms after REPLICAOF NO ONE",
               [erlang:monotonic_time(millisecond) - T0]),
        #{replid := Replid2, state := streaming} = nsync:status(Pid),
        ?assertNotEqual(Replid1, Replid2),
        ?assertEqual(maps:get(<<"master_replid">>, nsync_test_redis:info(Mid, <<"replication">>)),
                     Replid2),
        ?assertEqual(Tid, nsync:tid()),
        ?assertEqual(Full, stat(Mid, <<"sync_full">>)),
        ?assertEqual(Partial + 1, stat(Mid, <<"sync_partial_ok">>)),
        ok = nsync:stop(Pid)
    after
        nsync_test_redis:stop(Mid),
        nsync_test_redis:stop(Top)
    end.

link_up(S) ->
    maps:get(<<"master_link_status">>, nsync_test_redis:info(S, <<"replication">>), <<"down">>)
        =:= <<"up">>.

same_keys(S) ->
    case nsync:tid() of
        undefined -> false;
        Tid -> nsync_test_events:mirror_keys(Tid) =:= nsync_test_events:master_keys(S)
    end.

stat(S, Name) ->
    binary_to_integer(maps:get(Name, nsync_test_redis:info(S, <<"stats">>))).
