%% @doc The link's sessions and pump threads (nsync_nif:start/2): messages of
%% an older session are ignored; the link process answers calls during a big
%% full sync; a suspended link stops the pump from reading (bounded memory,
%% the stream backs up in the master's output buffer); stopping the link or
%% killing it ends the pump at once whether it waits for credit or in
%% `read', and the master sees the replica go; a snapshot corrupted on the
%% way (a proxy flips a byte) ends the session with a typed error and the
%% next session loads it whole. Redis 7.0.
-module(nsync_pump_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([older_session_ignored/1, status_answers_during_full_sync/1,
         suspended_link_stops_reading/1, stop_ends_pump_at_once/1,
         killed_link_closes_socket/1, corrupt_snapshot_reconnects/1]).
%% logger handler
-export([log/2]).

-define(T, 20000).
-define(MB, (1024 * 1024)).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 120}}].

-spec all() -> [atom()].
all() -> [older_session_ignored, status_answers_during_full_sync,
          suspended_link_stops_reading, stop_ends_pump_at_once,
          killed_link_closes_socket, corrupt_snapshot_reconnects].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    %% No output buffer limit: a suspended link must not be dropped.
    {ok, S} = nsync_test_redis:start(#{version => '7.0', diskless => true,
                                       config => [{"enable-debug-command", "yes"},
                                                  {"client-output-buffer-limit",
                                                   "replica 0 0 0"}]}),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    nsync_test_events:flush(),
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc After a reconnect, a batch or a `closed' of the previous session
%% (its id seen by tracing the link's messages) changes nothing: no write
%% reaches the mirror, no reconnect is started.
-spec older_session_ignored(ct_suite:ct_config()) -> ok.
older_session_ignored(Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"a:">>, 1, 10, <<"v">>),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    erlang:trace(Pid, true, ['receive']),
    1 = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"after_kill">>, <<"1">>]),
    nsync_test_events:wait_until(
      fun() -> nsync:lookup(nsync, <<"after_kill">>) =:= [{<<"after_kill">>, <<"1">>}] end, ?T),
    erlang:trace(Pid, false, ['receive']),
    Sessions = traced_sessions([]),
    ct:pal("sessions seen: ~p", [Sessions]),
    [Old, New] = Sessions,
    ?assertNotEqual(Old, New),
    Pid ! {nsync_pump, Old, {batch, [{cmd, 0, <<"set">>, [<<"ghost">>, <<"boo">>]}]}},
    Pid ! {nsync_pump, Old, {closed, eof}},
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"later">>, <<"2">>]),
    nsync_test_events:wait_until(
      fun() -> nsync:lookup(nsync, <<"later">>) =:= [{<<"later">>, <<"2">>}] end, ?T),
    [] = nsync:lookup(nsync, <<"ghost">>),
    #{state := streaming, reconnects := 1} = nsync:status(Pid),
    ok = nsync:stop(Pid).

%% @doc While a 500k-key snapshot loads into the mirror, nsync:status/1
%% answers within 200 ms every time (the pump works in its own thread; the
%% link process handles a batch of at most 1000 keys between calls).
-spec status_answers_during_full_sync(ct_suite:ct_config()) -> ok.
status_answers_during_full_sync(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"DEBUG">>, <<"POPULATE">>, <<"500000">>]),
    {ok, Pid} = nsync:start_link(opts(S, [])),
    {Syncing, Slowest} = poll_status(Pid, 0, 0),
    ct:pal("status calls while syncing: ~b, slowest ~b us", [Syncing, Slowest]),
    ?assert(Syncing >= 3),
    ?assert(Slowest < 200000),
    500000 = ets:info(nsync:tid(), size),
    ok = nsync:stop(Pid).

%% @doc A suspended link hands out no credit: the pump stops reading after
%% at most 4 batches, the master keeps the stream in its output buffer
%% (as for a slow replica) and the VM's memory stays flat; once resumed the
%% link catches up.
-spec suspended_link_stops_reading(ct_suite:ct_config()) -> ok.
suspended_link_stops_reading(Config) ->
    S = ?config(server, Config),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    ok = sys:suspend(Pid),
    erlang:garbage_collect(),
    Before = erlang:memory(total),
    nsync_test_redis:set_keys(S, <<"big:">>, 1, 1000, binary:copy(<<"x">>, 100000)),
    nsync_test_events:wait_until(fun() -> replica_output_buffer(S) > 50 * ?MB end, ?T),
    {message_queue_len, Queued} = process_info(Pid, message_queue_len),
    Growth = erlang:memory(total) - Before,
    ct:pal("master's output buffer ~b MB, link's queue ~b, VM memory growth ~b MB",
           [replica_output_buffer(S) div ?MB, Queued, Growth div ?MB]),
    ?assert(Queued =< 4),
    ?assert(Growth < 32 * ?MB),
    ok = sys:resume(Pid),
    nsync_test_events:wait_until(fun() -> ets:info(nsync:tid(), size) =:= 1000 end, ?T),
    ok = nsync:stop(Pid).

%% @doc Stopping the link ends its pump at once, and the master sees the
%% replica go: when the pump waits for credit (the link suspended with 4
%% batches queued) and when it waits in `read' (an idle stream).
-spec stop_ends_pump_at_once(ct_suite:ct_config()) -> ok.
stop_ends_pump_at_once(Config) ->
    S = ?config(server, Config),
    {ok, Waiting} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    ok = sys:suspend(Waiting),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, 200, binary:copy(<<"x">>, 100000)),
    nsync_test_events:wait_until(
      fun() -> process_info(Waiting, message_queue_len) =:= {message_queue_len, 4} end, ?T),
    assert_gone_at_once(S, fun() -> ok = nsync:stop(Waiting) end),
    {ok, Idle} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    200 = ets:info(nsync:tid(), size),
    timer:sleep(300),
    assert_gone_at_once(S, fun() -> ok = nsync:stop(Idle) end).

%% @doc A link killed with exit(Pid, kill) runs no terminate/2: its NIF
%% resource is dropped, which ends the pump and closes the socket, whether
%% the pump waits in `read' or for credit.
-spec killed_link_closes_socket(ct_suite:ct_config()) -> ok.
killed_link_closes_socket(Config) ->
    S = ?config(server, Config),
    process_flag(trap_exit, true),
    {ok, Idle} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    assert_gone_at_once(S, fun() -> kill(Idle) end),
    {ok, Waiting} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    ok = sys:suspend(Waiting),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, 200, binary:copy(<<"x">>, 100000)),
    nsync_test_events:wait_until(
      fun() -> process_info(Waiting, message_queue_len) =:= {message_queue_len, 4} end, ?T),
    assert_gone_at_once(S, fun() -> kill(Waiting) end),
    process_flag(trap_exit, false),
    ok.

%% @doc The first connection's snapshot has one byte flipped on the way (a
%% proxy between nsync and a real master): that session ends with an
%% `{rdb, Kind, Offset}' error, nothing of it is published, and the link
%% reconnects and loads the whole snapshot. (Not a blocking start: that
%% returns the `{rdb, Kind, Offset}' error at once, nsync_errors_SUITE.)
-spec corrupt_snapshot_reconnects(ct_suite:ct_config()) -> ok.
corrupt_snapshot_reconnects(Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, 2000, binary:copy(<<"v">>, 50)),
    {ok, Proxy} = nsync_test_proxy:start(nsync_test_redis:port(S)),
    ok = nsync_test_proxy:set_mode(Proxy, {flip_at, 20000}),
    ok = logger:add_handler(nsync_pump_suite, ?MODULE, #{config => #{pid => self()}}),
    Pid = try
              {ok, P} = nsync:start_link([{host, "127.0.0.1"},
                                          {port, nsync_test_proxy:port(Proxy)}]),
              nsync_test_events:wait_until(
                fun() -> nsync:tid() =/= undefined andalso ets:info(nsync:tid(), size) =:= 2000
                end, ?T),
              P
          after logger:remove_handler(nsync_pump_suite)
          end,
    Reasons = [Reason || {nsync_failed, Reason} <- flush_logged()],
    ct:pal("sessions failed with ~p", [Reasons]),
    [{rdb, Kind, Offset}] = Reasons,
    ?assert(is_atom(Kind) andalso is_integer(Offset)),
    2000 = ets:info(nsync:tid(), size),
    [{<<"k:7">>, _}] = nsync:lookup(nsync, <<"k:7">>),
    #{state := streaming} = nsync:status(Pid),
    ?assertEqual(2, nsync_test_proxy:connections(Proxy)),
    ok = nsync:stop(Pid),
    ok = nsync_test_proxy:stop(Proxy).

%%% ----------------------------------------------------------- helpers

opts(S, Extra) ->
    Extra ++ [{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)}].

%% The session ids of the pump messages the traced link received, in order.
traced_sessions(Acc) ->
    receive
        {trace, _, 'receive', {nsync_pump, Session, _}} ->
            case lists:member(Session, Acc) of
                true -> traced_sessions(Acc);
                false -> traced_sessions(Acc ++ [Session])
            end;
        {trace, _, 'receive', _} ->
            traced_sessions(Acc)
    after 0 ->
            Acc
    end.

%% Calls status/1 every 10 ms until the snapshot is loaded: how many calls
%% found the link syncing, and the slowest call (us).
poll_status(Pid, Syncing, Slowest) ->
    {Us, Status} = timer:tc(fun() -> nsync:status(Pid) end),
    case Status of
        #{state := streaming} ->
            {Syncing, max(Slowest, Us)};
        #{state := syncing} ->
            timer:sleep(10),
            poll_status(Pid, Syncing + 1, max(Slowest, Us));
        #{} ->
            timer:sleep(10),
            poll_status(Pid, Syncing, max(Slowest, Us))
    end.

kill(Pid) ->
    exit(Pid, kill),
    receive {'EXIT', Pid, killed} -> ok after ?T -> error(link_not_killed) end.

%% Runs End (which ends the only link), then within a second the master
%% must list no replica and no pump thread may be left.
assert_gone_at_once(S, End) ->
    1 = pump_threads(),
    <<"1">> = connected_replicas(S),
    Started = erlang:monotonic_time(millisecond),
    End(),
    nsync_test_events:wait_until(
      fun() -> connected_replicas(S) =:= <<"0">> andalso pump_threads() =:= 0 end, 1000),
    ct:pal("replica gone after ~b ms", [erlang:monotonic_time(millisecond) - Started]).

connected_replicas(S) ->
    maps:get(<<"connected_slaves">>, nsync_test_redis:info(S, <<"replication">>)).

%% Bytes the master holds for its (only) replica: CLIENT LIST's omem.
replica_output_buffer(S) ->
    Line = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"LIST">>, <<"TYPE">>, <<"replica">>]),
    {match, [Omem]} = re:run(Line, <<"omem=([0-9]+)">>, [{capture, all_but_first, binary}]),
    binary_to_integer(Omem).

%% Threads of this VM named like the NIF's pump threads.
pump_threads() ->
    length([T || T <- filelib:wildcard("/proc/self/task/*/comm"),
                 file:read_file(T) =:= {ok, <<"nsync-pump\n">>}]).

%% logger handler: sends the reason of each "connection failed" warning of
%% nsync to the test process.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{msg := {Format, [_Master, Reason, _Delay | _]}, meta := #{application := nsync}},
    #{config := #{pid := Pid}}) when is_list(Format) ->
    case string:find(Format, "failed") of
        nomatch -> ok;
        _ -> Pid ! {logged, {nsync_failed, Reason}}, ok
    end;
log(_Event, _Config) ->
    ok.

flush_logged() ->
    receive {logged, What} -> [What | flush_logged()] after 0 -> [] end.

