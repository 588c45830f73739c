%% @doc nsync's telemetry events against real servers (Redis 7.0, disk sync):
%% a first connection and its full sync (keys and the RDB's bytes, equal to
%% the master's dump.rdb), batches (commands, keys, lag; the last batch's
%% offset is the master's), a reconnection that resumes (disconnection,
%% connection with `reconnection', partial_sync), failed attempts, a full
%% sync cut short (exception, then a complete one), and what a layer above
%% links adds (its metadata on a link's events, its own events).
-module(nsync_telemetry_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([first_full_sync/1, reconnection_resumes/1, failed_attempts/1,
         full_sync_cut_short/1, layer_metadata_and_events/1]).
%% telemetry handler
-export([handle_event/4]).

-define(T, 20000).
-define(EVENTS, [[nsync, connection], [nsync, disconnection], [nsync, failed_connection],
                 [nsync, full_sync, start], [nsync, full_sync, stop],
                 [nsync, full_sync, exception], [nsync, partial_sync], [nsync, batch],
                 [nsync, failover]]).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 90}}].

-spec all() -> [atom()].
all() -> [first_full_sync, reconnection_resumes, failed_attempts, full_sync_cut_short,
          layer_metadata_and_events].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    {ok, Started} = application:ensure_all_started(telemetry),
    [{started, Started} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    _ = [application:stop(App) || App <- lists:reverse(?config(started, Config))],
    ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) ->
    %% No ping during a case: a ping moves the master's offset, which cases
    %% compare with the link's.
    {ok, S} = nsync_test_redis:start(#{version => '7.0',
                                       config => [{"repl-ping-replica-period", "3600"}]}),
    ok = telemetry:attach_many({?MODULE, Case}, ?EVENTS, fun ?MODULE:handle_event/4, self()),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(Case, Config) ->
    telemetry:detach({?MODULE, Case}),
    flush(),
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc A first connection: `connection' (not a reconnection), `full_sync' `start' then `stop' with the keys delivered
%% and the bytes of the RDB (the size of the master's dump.rdb), sharing
%% their span context; batches whose keys add up to the snapshot's; then
%% 50 writes: batches whose commands add up to at least 50, each with a
%% lag and the link's position, the last at the master's offset.
-spec first_full_sync(ct_suite:ct_config()) -> ok.
first_full_sync(Config) ->
    S = ?config(server, Config),
    Port = nsync_test_redis:port(S),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, 3000, <<"value">>),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    {#{system_time := _},
     #{link := Pid, name := nsync, master := {<<"127.0.0.1">>, Port}, reconnection := false,
       replid := Replid, offset := StartOffset}} = next([nsync, connection]),
    ?assert(is_binary(Replid) andalso is_integer(StartOffset)),
    {#{system_time := _, monotonic_time := _},
     #{replid := Replid, offset := StartOffset, telemetry_span_context := Ctx}} =
        next([nsync, full_sync, start]),
    {#{duration := Duration, keys := 3000, bytes := Bytes},
     #{telemetry_span_context := Ctx, replid := Replid, link := Pid}} =
        next([nsync, full_sync, stop]),
    RdbSize = filelib:file_size(filename:join(nsync_test_redis:dir(S), "dump.rdb")),
    ct:pal("full sync: ~b keys, ~b bytes (dump.rdb ~b), ~b us",
           [3000, Bytes, RdbSize, erlang:convert_time_unit(Duration, native, microsecond)]),
    ?assertEqual(RdbSize, Bytes),
    ?assert(Duration > 0),
    Loading = all([nsync, batch]),
    ?assertEqual(3000, lists:sum([K || {#{keys := K}, _} <- Loading])),
    nsync_test_redis:set_keys(S, <<"w:">>, 1, 50, <<"x">>),
    Master = master_offset(S),
    Streaming = batches_until(Master),
    ct:pal("~b batches while loading, ~b for 50 writes", [length(Loading), length(Streaming)]),
    ?assert(lists:sum([C || {#{commands := C}, _} <- Streaming]) >= 50),
    [begin
         #{lag := Lag, duration := D, keys := 0} = M,
         #{offset := O, link := Pid, name := nsync} = Md,
         ?assert(is_integer(Lag) andalso Lag >= 0 andalso D > 0 andalso is_integer(O))
     end || {M, Md} <- Streaming],
    [] = all([nsync, partial_sync]) ++ all([nsync, failed_connection]),
    ok = nsync:stop(Pid),
    {#{duration := _}, #{reason := normal}} = next([nsync, disconnection]),
    ok.

%% @doc The master drops the replica: `disconnection' (its reason, how long
%% the connection lasted), then `connection' as a reconnection and
%% `partial_sync' from the position, and no full sync.
-spec reconnection_resumes(ct_suite:ct_config()) -> ok.
reconnection_resumes(Config) ->
    S = ?config(server, Config),
    {ok, Pid} = nsync:start_link(opts(S, [{block, true}, {timeout, ?T}])),
    {_, #{reconnection := false}} = next([nsync, connection]),
    {_, _} = next([nsync, full_sync, start]),
    {_, _} = next([nsync, full_sync, stop]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"a">>, <<"1">>]),
    Master = master_offset(S),
    nsync_test_events:wait_until(fun() -> maps:get(offset, nsync:status(Pid)) =:= Master end,
                                 ?T),
    1 = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    {#{duration := Lasted}, #{reason := Reason, offset := Master, link := Pid}} =
        next([nsync, disconnection]),
    ct:pal("disconnected (~p) after ~b ms",
           [Reason, erlang:convert_time_unit(Lasted, native, millisecond)]),
    ?assert(Lasted > 0),
    {_, #{reconnection := true, offset := Master}} = next([nsync, connection]),
    {#{system_time := _}, #{offset := Master}} = next([nsync, partial_sync]),
    [] = all([nsync, full_sync, start]),
    ok = nsync:stop(Pid).

%% @doc A closed port: `failed_connection' for each attempt, with the
%% reason and the attempts in a row; no connection.
-spec failed_attempts(ct_suite:ct_config()) -> ok.
failed_attempts(_Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, Port}]),
    {#{attempts := 1}, #{reason := {connect, econnrefused}, master := {<<"127.0.0.1">>, Port},
                         link := Pid, offset := undefined}} = next([nsync, failed_connection]),
    {#{attempts := 2}, _} = next([nsync, failed_connection]),
    ok = nsync:stop(Pid),
    [] = all([nsync, connection]) ++ all([nsync, disconnection]),
    ok.

%% @doc A proxy cuts the connection in the middle of the snapshot: the full
%% sync's `exception' (its reason, the span context of its start, a
%% `disconnection'), then a new full sync that completes.
-spec full_sync_cut_short(ct_suite:ct_config()) -> ok.
full_sync_cut_short(Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, 5000, binary:copy(<<"v">>, 100)),
    {ok, Proxy} = nsync_test_proxy:start(nsync_test_redis:port(S)),
    ok = nsync_test_proxy:set_mode(Proxy, {cut_after, 100000}),
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_proxy:port(Proxy)}]),
    {_, #{reconnection := false}} = next([nsync, connection]),
    {_, #{telemetry_span_context := Ctx}} = next([nsync, full_sync, start]),
    {#{duration := _, monotonic_time := _},
     #{telemetry_span_context := Ctx, kind := error, reason := Reason, stacktrace := []}} =
        next([nsync, full_sync, exception]),
    ct:pal("full sync cut short: ~p", [Reason]),
    {_, #{reason := Reason}} = next([nsync, disconnection]),
    ok = nsync_test_proxy:set_mode(Proxy, forward),
    {_, #{reconnection := true}} = next([nsync, connection]),
    {_, #{telemetry_span_context := Ctx2}} = next([nsync, full_sync, start]),
    ?assertNotEqual(Ctx, Ctx2),
    {#{keys := 5000}, #{telemetry_span_context := Ctx2}} = next([nsync, full_sync, stop]),
    ok = nsync:stop(Pid),
    ok = nsync_test_proxy:stop(Proxy).

%% @doc A layer above links: the `telemetry_metadata' of a link's config is
%% in every event of that link, and `nsync_telemetry:event/3' executes the
%% layer's own `[nsync | Name]' events.
-spec layer_metadata_and_events(ct_suite:ct_config()) -> ok.
layer_metadata_and_events(Config) ->
    S = ?config(server, Config),
    {ok, LinkConfig} = nsync_opts:validate(opts(S, [])),
    Ref = make_ref(),
    {ok, Pid} = nsync_link:start_link(LinkConfig#{telemetry_metadata => #{shard => 3}},
                                      {self(), Ref}),
    receive {Ref, loaded} -> ok after ?T -> error(not_loaded) end,
    {_, #{shard := 3, link := Pid}} = next([nsync, connection]),
    {_, #{shard := 3}} = next([nsync, full_sync, start]),
    {_, #{shard := 3}} = next([nsync, full_sync, stop]),
    [_ | _] = Batches = all([nsync, batch]),
    [#{shard := 3} = M || {_, M} <- Batches],
    ok = nsync_telemetry:event([failover], #{system_time => 1}, #{name => nsync}),
    {#{system_time := 1}, #{name := nsync}} = next([nsync, failover]),
    ok = nsync:stop(Pid).

%%% ------------------------------------------------------------ helpers

%% @doc The telemetry handler: events go to the test process.
-spec handle_event(telemetry:event_name(), map(), map(), pid()) -> ok.
handle_event(Event, Measurements, Metadata, Pid) ->
    Pid ! {telemetry, Event, Measurements, Metadata},
    ok.

next(Event) ->
    receive {telemetry, Event, Measurements, Metadata} -> {Measurements, Metadata}
    after ?T -> error({no_event, Event})
    end.

%% The batch events up to the one that leaves the link at `Offset'.
batches_until(Offset) ->
    case next([nsync, batch]) of
        {_, #{offset := Offset}} = Last -> [Last];
        Batch -> [Batch | batches_until(Offset)]
    end.

%% The events of this name received so far, in order.
all(Event) ->
    receive {telemetry, Event, Measurements, Metadata} -> [{Measurements, Metadata} | all(Event)]
    after 0 -> []
    end.

flush() ->
    receive {telemetry, _, _, _} -> flush() after 0 -> ok end.

opts(S, Extra) ->
    [{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)} | Extra].

master_offset(S) ->
    binary_to_integer(maps:get(<<"master_repl_offset">>,
                               nsync_test_redis:info(S, <<"replication">>))).
