%% @doc Replication as the master sees it, reconnects and resyncs: nsync is
%% an online replica whose ACKed offset reaches master_repl_offset and WAIT
%% counts it; a killed connection resumes with a partial resync (no reload,
%% no lost write); a forced full resync swaps the mirror at once and leaves
%% no stale key; a link pointed at a replica of its master (the seam of a
%% layer above links) resumes there. Redis 7.0 and 6.2 and Valkey, diskless
%% on and off.
-module(nsync_repl_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, groups/0, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([online_replica_acks/1, kill_resumes_partially/1, full_resync_swaps_mirror/1,
         next_master_resumes_at_replica/1]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 120}}].

-spec all() -> [{group, atom()}].
all() -> [{group, G} || G <- nsync_test_redis:server_groups()].

-spec groups() -> [tuple()].
groups() ->
    Cases = [online_replica_acks, kill_resumes_partially, full_resync_swaps_mirror,
             next_master_resumes_at_replica],
    [{G, [], Cases} || G <- nsync_test_redis:server_groups()].

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(Group, Config) -> nsync_test_redis:group_config(Group) ++ Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) -> ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    {ok, S} = nsync_test_redis:start(#{version => ?config(version, Config),
                                       diskless => ?config(diskless, Config)}),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    nsync_test_events:flush(),
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc INFO replication lists nsync as an online replica; after writes stop
%% its ACKed offset equals master_repl_offset, WAIT 1 1000 returns 1, and
%% the mirror holds the master's keys.
-spec online_replica_acks(ct_suite:ct_config()) -> ok.
online_replica_acks(Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"a:">>, 1, 200, <<"v">>),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    nsync_test_redis:set_keys(S, <<"b:">>, 1, 300, <<"w">>),
    nsync_test_events:wait_until(
      fun() ->
              Info = nsync_test_redis:info(S, <<"replication">>),
              Replica = replica(Info),
              maps:get(<<"state">>, Replica, undefined) =:= <<"online">>
                  andalso maps:get(<<"offset">>, Replica, undefined)
                          =:= maps:get(<<"master_repl_offset">>, Info)
      end, ?T),
    1 = nsync_test_redis:cmd(S, [<<"WAIT">>, <<"1">>, <<"1000">>]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"last">>, <<"x">>]),
    1 = nsync_test_redis:cmd(S, [<<"WAIT">>, <<"1">>, <<"1000">>]),
    nsync_test_events:wait_until(fun() -> same_keys(S) end, ?T),
    #{offset := Offset} = nsync:status(Pid),
    ?assertEqual(integer_to_binary(Offset),
                 maps:get(<<"master_repl_offset">>, nsync_test_redis:info(S, <<"replication">>))),
    ok = nsync:stop(Pid).

%% @doc CLIENT KILL TYPE replica: the callback gets {error, closed}, the link
%% reconnects with a partial resync (sync_partial_ok grows, no {load, ...}
%% again), and every write made meanwhile arrives, in the callback and in a
%% default mirror alike.
-spec kill_resumes_partially(ct_suite:ct_config()) -> ok.
kill_resumes_partially(Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"a:">>, 1, 100, <<"v">>),
    {ok, Events} = nsync:start_link(opts(Config, [{callback, self()}, {block, true},
                                                  {timeout, ?T}])),
    100 = length(nsync_test_events:collect_load(?T)),
    {ok, Mirror} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    PartialBefore = stat(S, <<"sync_partial_ok">>),
    FullBefore = stat(S, <<"sync_full">>),
    Killed = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    ?assertEqual(2, Killed),
    {error, closed} = nsync_test_events:next(?T),
    nsync_test_redis:set_keys(S, <<"b:">>, 1, 100, <<"w">>),
    Cmds = nsync_test_events:collect_cmds(100, ?T),
    ?assertEqual([{<<"set">>, [<<"b:", (integer_to_binary(I))/binary>>, <<"w">>]}
                  || I <- lists:seq(1, 100)], Cmds),
    nsync_test_events:wait_until(fun() -> same_keys(S) end, ?T),
    ?assertEqual(PartialBefore + 2, stat(S, <<"sync_partial_ok">>)),
    ?assertEqual(FullBefore, stat(S, <<"sync_full">>)),
    #{reconnects := 1, state := streaming, keys_loaded := 100} = nsync:status(Events),
    #{reconnects := 1} = nsync:status(Mirror),
    nsync_test_events:no_event(200),
    ok = nsync:stop(Mirror),
    ok = nsync:stop(Events).

%% @doc With a tiny backlog and many writes while the link is down, the
%% master forces a full resync: readers see the old complete table until the
%% new one is complete (never a partial one), then the new one at once; the
%% old table is deleted after a short grace period and no stale key survives.
-spec full_resync_swaps_mirror(ct_suite:ct_config()) -> ok.
full_resync_swaps_mirror(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"repl-backlog-size">>,
                                        <<"16384">>]),
    nsync_test_redis:set_keys(S, <<"old:">>, 1, 5000, <<"v">>),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"stale">>, <<"x">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    OldTid = nsync:tid(),
    5001 = ets:info(OldTid, size),
    FullBefore = stat(S, <<"sync_full">>),
    Reader = start_reader(),
    %% Not reading the socket: the master's output buffer holds what the
    %% kernel cannot, and the kill discards it, so the backlog is too short.
    ok = sys:suspend(Pid),
    1 = nsync_test_redis:cmd(S, [<<"DEL">>, <<"stale">>]),
    Big = binary:copy(<<"x">>, 4096),
    nsync_test_redis:set_keys(S, <<"new:">>, 1, 3000, Big),
    1 = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    ok = sys:resume(Pid),
    nsync_test_events:wait_until(
      fun() -> stat(S, <<"sync_full">>) =:= FullBefore + 1 andalso same_keys(S) end, ?T),
    NewTid = nsync:tid(),
    ?assertNotEqual(OldTid, NewTid),
    nsync_test_events:wait_until(fun() -> ets:info(OldTid) =:= undefined end, 5000),
    [] = ets:lookup(NewTid, <<"stale">>),
    8000 = ets:info(NewTid, size),
    {MinSeen, Tids} = stop_reader(Reader),
    ct:pal("reader: smallest table seen ~b, tables seen ~p", [MinSeen, Tids]),
    ?assert(MinSeen >= 5000),
    #{reconnects := 1, state := streaming, keys_loaded := 8000} = nsync:status(Pid),
    ok = nsync:stop(Pid).

%% @doc The seam for a layer above links (Sentinel, Cluster): the link asks
%% its config's `next_master' fun for each session's master, and
%% nsync_link:reconnect/1 ends the session and starts the next one at once.
%% Pointed at a replica of its master, it resumes there with PSYNC: the
%% replica serves a partial resync (no full sync, the same tables), status
%% names the new master, and writes to the master reach the mirror through
%% the replica.
-spec next_master_resumes_at_replica(ct_suite:ct_config()) -> ok.
next_master_resumes_at_replica(Config) ->
    A = ?config(server, Config),
    {ok, B} = nsync_test_redis:start(#{version => ?config(version, Config),
                                       diskless => ?config(diskless, Config)}),
    Key = {?MODULE, master},
    try
        <<"OK">> = nsync_test_redis:cmd(B, [<<"REPLICAOF">>, <<"127.0.0.1">>,
                                            integer_to_binary(nsync_test_redis:port(A))]),
        nsync_test_events:wait_until(fun() -> link_up(B) end, ?T),
        nsync_test_redis:set_keys(A, <<"a:">>, 1, 100, <<"v">>),
        persistent_term:put(Key, master(A)),
        {ok, Opts} = nsync_opts:validate(opts(Config, [])),
        {ok, Pid} = nsync_link:start_link(
                      Opts#{next_master => fun() -> persistent_term:get(Key) end}, undefined),
        nsync_test_events:wait_until(fun() -> same_keys(A) end, ?T),
        Tid = nsync:tid(),
        #{offset := Offset} = nsync:status(Pid),
        nsync_test_events:wait_until(
          fun() -> replica_offset(B) >= Offset andalso link_up(B) end, ?T),
        FullBefore = stat(B, <<"sync_full">>),
        PartialBefore = stat(B, <<"sync_partial_ok">>),
        persistent_term:put(Key, master(B)),
        ok = nsync_link:reconnect(Pid),
        PortB = nsync_test_redis:port(B),
        nsync_test_events:wait_until(
          fun() ->
                  case nsync:status(Pid) of
                      #{state := streaming, master := {<<"127.0.0.1">>, PortB}} -> true;
                      _ -> false
                  end
          end, ?T),
        nsync_test_redis:set_keys(A, <<"b:">>, 1, 100, <<"w">>),
        nsync_test_events:wait_until(fun() -> same_keys(A) end, ?T),
        ?assertEqual(PartialBefore + 1, stat(B, <<"sync_partial_ok">>)),
        ?assertEqual(FullBefore, stat(B, <<"sync_full">>)),
        ?assertEqual(Tid, nsync:tid()),
        #{reconnects := 1} = nsync:status(Pid),
        ok = nsync:stop(Pid)
    after
        persistent_term:erase(Key),
        nsync_test_redis:stop(B)
    end.

%%% ----------------------------------------------------------- helpers

opts(Config, Extra) ->
    Extra ++ [{host, "127.0.0.1"}, {port, nsync_test_redis:port(?config(server, Config))}].

%% The mirror (default table) has exactly the master's keys.
same_keys(S) ->
    case nsync:tid() of
        undefined -> false;
        Tid -> nsync_test_events:mirror_keys(Tid) =:= nsync_test_events:master_keys(S)
    end.

master(S) ->
    #{host => <<"127.0.0.1">>, port => nsync_test_redis:port(S)}.

%% The offset a replica has processed, and whether its link to its master
%% is up.
replica_offset(S) ->
    binary_to_integer(maps:get(<<"master_repl_offset">>,
                               nsync_test_redis:info(S, <<"replication">>))).

link_up(S) ->
    maps:get(<<"master_link_status">>, nsync_test_redis:info(S, <<"replication">>),
             undefined) =:= <<"up">>.

stat(S, Name) ->
    binary_to_integer(maps:get(Name, nsync_test_redis:info(S, <<"stats">>))).

%% slave0's fields: ip=...,port=...,state=online,offset=N,lag=0
replica(Info) ->
    case maps:get(<<"slave0">>, Info, undefined) of
        undefined -> #{};
        Line ->
            maps:from_list([list_to_tuple(binary:split(F, <<"=">>))
                            || F <- binary:split(Line, <<",">>, [global])])
    end.

%% A reader that keeps looking up the default table and notes the smallest
%% size it ever sees (a half-loaded table would show up there).
start_reader() ->
    spawn_link(fun() -> reader(infinity, []) end).

reader(Min, Tids) ->
    receive
        {stop, From} -> From ! {reader, Min, Tids}
    after 0 ->
            Tid = nsync:tid(),
            case ets:info(Tid, size) of
                undefined -> reader(Min, Tids);
                Size -> reader(min(Min, Size), lists:usort([Tid | Tids]))
            end
    end.

stop_reader(Pid) ->
    Pid ! {stop, self()},
    receive {reader, Min, Tids} -> {Min, Tids} after ?T -> error(reader_timeout) end.
