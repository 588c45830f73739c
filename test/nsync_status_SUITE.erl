%% @doc `nsync:status/1' against Redis 7.0: it answers at once whatever the
%% link process is doing (a slow callback with thousands of events queued,
%% a suspended process), and it reports what an operator looks for: the
%% position applied and the master's as received (lag), bytes and last
%% I/O, when the connection was made, failed attempts and the next retry,
%% the last error (kept after recovering), and whether the data may be
%% stale and why (not loaded yet, disconnected, a master gone silent with
%% the socket open).
-module(nsync_status_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([answers_while_callback_is_slow/1, answers_while_link_is_suspended/1,
         connected_link/1, unreachable_then_connected/1, silent_master_is_stale/1,
         stopped_link/1]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 90}}].

-spec all() -> [atom()].
all() -> [answers_while_callback_is_slow, answers_while_link_is_suspended, connected_link,
          unreachable_then_connected, silent_master_is_stale, stopped_link].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) ->
    %% A master that pings every second where silence is the point, else
    %% never during a case (a ping moves its offset, which cases compare
    %% with the link's); no output buffer limit, so that a slow link is not
    %% dropped.
    Ping = case Case of
               silent_master_is_stale -> "1";
               _ -> "3600"
           end,
    {ok, S} = nsync_test_redis:start(#{version => '7.0',
                                       config => [{"client-output-buffer-limit",
                                                   "replica 0 0 0"},
                                                  {"repl-ping-replica-period", Ping}]}),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    nsync_test_events:flush(),
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc A callback that takes a millisecond per command, 4000 commands
%% written at once: the link process is busy for seconds with batches
%% queued in its mailbox, and status/1 answers each of 50 calls at once
%% (the slowest under 100 ms; the figures are printed), showing the lag.
-spec answers_while_callback_is_slow(ct_suite:ct_config()) -> ok.
answers_while_callback_is_slow(Config) ->
    S = ?config(server, Config),
    Slow = fun({cmd, _, _}) -> timer:sleep(1), ok; (_) -> ok end,
    {ok, Pid} = nsync:start_link(opts(S, [{callback, Slow}, {block, true}, {timeout, ?T}])),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, 4000, <<"v">>),
    nsync_test_events:wait_until(fun() -> queued(Pid) > 0 end, ?T),
    Calls = [begin
                 timer:sleep(20),
                 {Us, Status} = timer:tc(fun() -> nsync:status(Pid) end),
                 {Us, queued(Pid), Status}
             end || _ <- lists:seq(1, 50)],
    Times = lists:sort([Us || {Us, _, _} <- Calls]),
    Busy = length([Q || {_, Q, _} <- Calls, Q > 0]),
    MaxLag = lists:max([Lag || {_, _, #{lag := Lag}} <- Calls]),
    ct:pal("status/1 while the link is busy (~b of 50 calls with batches queued): "
           "median ~b us, slowest ~b us; largest lag ~b bytes",
           [Busy, lists:nth(25, Times), lists:last(Times), MaxLag]),
    ?assert(Busy >= 10),
    ?assert(MaxLag > 0),
    ?assert(lists:last(Times) < 100000),
    Master = master_offset(S),
    nsync_test_events:wait_until(fun() -> maps:get(offset, nsync:status(Pid)) =:= Master end,
                                 3 * ?T),
    #{lag := 0, master_offset := Master} = nsync:status(Pid),
    ok = nsync:stop(Pid).

%% @doc A suspended link process (`sys:suspend/1') handles no message at
%% all; status/1 still answers, and says the link is streaming.
-spec answers_while_link_is_suspended(ct_suite:ct_config()) -> ok.
answers_while_link_is_suspended(Config) ->
    S = ?config(server, Config),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    ok = sys:suspend(Pid),
    {Us, #{state := streaming, stale := false}} = timer:tc(fun() -> nsync:status(Pid) end),
    ct:pal("status/1 of a suspended link: ~b us", [Us]),
    ok = sys:resume(Pid),
    ok = nsync:stop(Pid).

%% @doc A streaming link: position equal to the master's, no lag, bytes
%% and last I/O, connected since it started, no attempts, no retry, no
%% error, not stale; writes move the offset and the bytes.
-spec connected_link(ct_suite:ct_config()) -> ok.
connected_link(Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"a:">>, 1, 100, <<"v">>),
    Before = erlang:system_time(millisecond),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    Master = master_offset(S),
    nsync_test_events:wait_until(fun() -> maps:get(offset, nsync:status(Pid)) =:= Master end,
                                 ?T),
    Status = nsync:status(Pid),
    ct:pal("~p", [Status]),
    #{state := streaming, master := {<<"127.0.0.1">>, Port}, offset := Master,
      master_offset := Master, lag := 0, keys_loaded := 100, bytes := Bytes,
      last_io := LastIo, connected_since := Since, attempts := 0,
      next_retry := undefined, last_error := undefined, last_error_at := undefined,
      stale := false, stale_reason := undefined, reconnects := 0, unhandled := 0,
      callback_errors := 0, tables := [nsync]} = Status,
    ?assertEqual(nsync_test_redis:port(S), Port),
    ?assert(Bytes > 100 * 4),
    Now = erlang:system_time(millisecond),
    ?assert(Since >= Before andalso Since =< Now),
    ?assert(LastIo >= Since andalso LastIo =< Now),
    nsync_test_redis:set_keys(S, <<"b:">>, 1, 10, <<"w">>),
    Master2 = master_offset(S),
    nsync_test_events:wait_until(fun() -> maps:get(offset, nsync:status(Pid)) =:= Master2 end,
                                 ?T),
    #{bytes := Bytes2, commands := Commands} = nsync:status(Pid),
    ?assert(Bytes2 > Bytes),
    ?assert(Commands >= 10),
    ok = nsync:stop(Pid).

%% @doc A master that cannot be reached (a proxy whose target is closed):
%% disconnected, not loaded (stale), the attempts counted, the next retry
%% in the future, the last error and when; once the proxy points at the
%% server, the link loads and streams, attempts are 0, and the last error
%% is kept from before the connection.
-spec unreachable_then_connected(ct_suite:ct_config()) -> ok.
unreachable_then_connected(Config) ->
    S = ?config(server, Config),
    {ok, Closed} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, ClosedPort} = inet:port(Closed),
    ok = gen_tcp:close(Closed),
    {ok, Proxy} = nsync_test_proxy:start(ClosedPort),
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_proxy:port(Proxy)}]),
    nsync_test_events:wait_until(fun() -> maps:get(attempts, nsync:status(Pid)) >= 2 end, ?T),
    Down = nsync:status(Pid),
    ct:pal("~p", [Down]),
    Now = erlang:system_time(millisecond),
    #{state := disconnected, stale := true, stale_reason := not_loaded,
      connected_since := undefined, last_error := Error, last_error_at := ErrorAt,
      next_retry := NextRetry, offset := undefined, lag := undefined} = Down,
    ?assertNotEqual(undefined, Error),
    ?assert(ErrorAt =< Now andalso ErrorAt > Now - 10000),
    ?assert(NextRetry > Now - 1000 andalso NextRetry < Now + 11000),
    ok = nsync_test_proxy:set_target(Proxy, nsync_test_redis:port(S)),
    nsync_test_events:wait_until(fun() -> maps:get(stale, nsync:status(Pid)) =:= false end,
                                 ?T),
    #{state := streaming, attempts := 0, next_retry := undefined, last_error := Error,
      last_error_at := ErrorAt, connected_since := Since, reconnects := 0} = nsync:status(Pid),
    ?assert(Since >= ErrorAt),
    ok = nsync:stop(Pid),
    ok = nsync_test_proxy:stop(Proxy).

%% @doc A master that goes silent with the socket open (a stalled proxy):
%% the state stays `streaming' and the offset frozen, but once no byte came
%% for longer than `silent_after' (2.5 s here; the master pings every
%% second) the data is stale (`silent'); it is not before the stall, and no
%% longer once the bytes flow again.
-spec silent_master_is_stale(ct_suite:ct_config()) -> ok.
silent_master_is_stale(Config) ->
    S = ?config(server, Config),
    {ok, Proxy} = nsync_test_proxy:start(nsync_test_redis:port(S)),
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_proxy:port(Proxy)},
                                  {block, true}, {timeout, ?T}]),
    ok = nsync_status:record(Pid, #{silent_after => 2500}),
    timer:sleep(3000),
    #{stale := false} = nsync:status(Pid),
    ok = nsync_test_proxy:set_mode(Proxy, stall),
    nsync_test_events:wait_until(fun() -> maps:get(stale, nsync:status(Pid)) end, 10000),
    #{state := streaming, stale_reason := silent, last_io := LastIo,
      offset := Frozen} = nsync:status(Pid),
    ?assert(erlang:system_time(millisecond) - LastIo > 2500),
    ok = nsync_test_proxy:set_mode(Proxy, forward),
    nsync_test_events:wait_until(fun() -> maps:get(stale, nsync:status(Pid)) =:= false end,
                                 10000),
    #{offset := Offset} = nsync:status(Pid),
    ?assert(Offset > Frozen),
    ok = nsync:stop(Pid),
    ok = nsync_test_proxy:stop(Proxy).

%% @doc The status of a link that stopped, or was killed, is gone: status/1
%% exits with `noproc', as a call to it would.
-spec stopped_link(ct_suite:ct_config()) -> ok.
stopped_link(Config) ->
    S = ?config(server, Config),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    ok = nsync:stop(Pid),
    ?assertExit({noproc, _}, nsync:status(Pid)),
    process_flag(trap_exit, true),
    {ok, Killed} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    exit(Killed, kill),
    receive {'EXIT', Killed, killed} -> ok end,
    nsync_test_events:wait_until(fun() -> nsync_status:facts(Killed) =:= #{} end, ?T),
    ?assertExit({noproc, _}, nsync:status(Killed)),
    ok.

%%% ------------------------------------------------------------ helpers

opts(S, Extra) ->
    [{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)} | Extra].

queued(Pid) ->
    {message_queue_len, N} = process_info(Pid, message_queue_len),
    N.

master_offset(S) ->
    binary_to_integer(maps:get(<<"master_repl_offset">>,
                               nsync_test_redis:info(S, <<"replication">>))).
