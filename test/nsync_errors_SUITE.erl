%% @doc Errors that stop and errors that retry (the link's policy), against
%% real servers and fake masters: a blocking start returns at once with the
%% reason for what retrying cannot fix (NOPERM, an HTTP server, random
%% bytes, a corrupt snapshot); repeated full-sync failures back off instead
%% of costing the master a fork every 100 ms; a stalled master is noticed
%% after `master_timeout' and the link resumes with PSYNC; after an outage
%% the link is back within about a second (the cap once it has data); a
%% master restarted empty empties the mirror; a rotated password under a
%% supervisor keeps the link, its data (stale) and the supervisor. Each
%% recovery time is printed.
-module(nsync_errors_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([noperm/1, http_server/1, random_bytes/1, corrupt_snapshot/1,
         full_sync_failures_back_off/1, master_timeout/1, reconnect_pace/1,
         restarted_empty/1, password_rotated_under_supervisor/1]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 120}}].

-spec all() -> [atom()].
all() -> [noperm, http_server, random_bytes, corrupt_snapshot, full_sync_failures_back_off,
          master_timeout, reconnect_pace, restarted_empty, password_rotated_under_supervisor].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    [{started, erlang:monotonic_time(millisecond)} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    ct:pal("nsync_errors_SUITE: ~b ms",
           [erlang:monotonic_time(millisecond) - ?config(started, Config)]),
    ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, _Config) ->
    nsync_test_events:flush().

%%% ------------------------------------------------------------- cases

%% @doc An ACL user without +psync: `-NOPERM' is not an old master (no SYNC
%% fallback): a blocking start returns `{noperm, Msg}' at once; without
%% block the attempts back off.
-spec noperm(ct_suite:ct_config()) -> ok.
noperm(_Config) ->
    {ok, S} = nsync_test_redis:start(#{}),
    try
        <<"OK">> = nsync_test_redis:cmd(S, [<<"ACL">>, <<"SETUSER">>, <<"ro">>, <<"on">>,
                                            <<">pw">>, <<"~*">>, <<"+@all">>, <<"-psync">>,
                                            <<"-sync">>]),
        Opts = [{user, "ro"}, {pass, "pw"}, {host, "127.0.0.1"},
                {port, nsync_test_redis:port(S)}],
        ?assertMatch({error, {noperm, <<"-NOPERM", _/binary>>}}, quick_start([block | Opts])),
        Before = stat(S, <<"total_connections_received">>),
        {ok, Pid} = nsync:start_link(Opts),
        timer:sleep(3000),
        Attempts = stat(S, <<"total_connections_received">>) - Before,
        ct:pal("NOPERM: ~b connections in 3 s", [Attempts]),
        ?assert(Attempts =< 8),
        ?assertMatch(#{last_error := {noperm, _}}, nsync:status(Pid)),
        ok = nsync:stop(Pid)
    after
        nsync_test_redis:stop(S)
    end.

%% @doc An HTTP server: a protocol error, at once.
-spec http_server(ct_suite:ct_config()) -> ok.
http_server(_Config) ->
    with_fake(fun(_Cmd, _N) -> {reply, <<"HTTP/1.1 400 Bad Request\r\n\r\n">>} end,
              fun(Port) ->
                      ?assertMatch({error, {protocol, _}}, quick_start(opts(Port, [block])))
              end).

%% @doc A peer sending random bytes: a protocol error, at once.
-spec random_bytes(ct_suite:ct_config()) -> ok.
random_bytes(_Config) ->
    rand:seed(exsss, {1, 2, 3}),
    with_fake(fun(_Cmd, _N) -> {reply, rand:bytes(4096)} end,
              fun(Port) ->
                      ?assertMatch({error, {protocol, _}}, quick_start(opts(Port, [block])))
              end).

%% @doc A master whose snapshot nsync cannot read: `{rdb, Kind, Offset}',
%% at once.
-spec corrupt_snapshot(ct_suite:ct_config()) -> ok.
corrupt_snapshot(_Config) ->
    with_fake(fun corrupt_master/2,
              fun(Port) ->
                      ?assertEqual({error, {rdb, bad_magic, 0}},
                                   quick_start(opts(Port, [block])))
              end).

%% @doc Without block, a snapshot that fails every time backs off (the
%% backoff no longer resets at FULLRESYNC): a handful of full syncs in 5 s,
%% not one every 50-100 ms.
-spec full_sync_failures_back_off(ct_suite:ct_config()) -> ok.
full_sync_failures_back_off(_Config) ->
    with_fake(fun corrupt_master/2,
              fun(Port) ->
                      {ok, Pid} = nsync:start_link(opts(Port, [])),
                      timer:sleep(5000),
                      Syncs = fake_count(),
                      ct:pal("full syncs of a corrupt snapshot in 5 s: ~b", [Syncs]),
                      ?assert(Syncs =< 8),
                      ?assertMatch(#{last_error := {rdb, bad_magic, 0},
                                     stale_reason := not_loaded}, nsync:status(Pid)),
                      ok = nsync:stop(Pid)
              end).

%% @doc A master that stops sending (a proxy forwards nothing, its sockets
%% open) is dropped after `master_timeout': `{error, closed}', and once
%% the path works again the link resumes with PSYNC (no full sync).
-spec master_timeout(ct_suite:ct_config()) -> ok.
master_timeout(_Config) ->
    {ok, S} = nsync_test_redis:start(#{config => [{'repl-ping-replica-period', 1}]}),
    {ok, P} = nsync_test_proxy:start(nsync_test_redis:port(S)),
    try
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"1">>]),
        {ok, Pid} = nsync:start_link(opts(nsync_test_proxy:port(P),
                                          [{master_timeout, 2000}, {callback, self()},
                                           {block, true}, {timeout, ?T}])),
        [{<<"k">>, <<"1">>}] = nsync_test_events:collect_load(?T),
        Full = stat(S, <<"sync_full">>),
        ok = nsync_test_proxy:set_mode(P, stall),
        T0 = erlang:monotonic_time(millisecond),
        ?assertEqual({error, closed}, nsync_test_events:next(?T)),
        Noticed = erlang:monotonic_time(millisecond) - T0,
        ct:pal("a stalled master noticed after ~b ms (master_timeout 2000)", [Noticed]),
        ?assert(Noticed >= 1900 andalso Noticed < 4000),
        ok = nsync_test_proxy:set_mode(P, forward),
        ok = nsync_test_proxy:reset(P),
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"2">>]),
        ?assertEqual({cmd, <<"set">>, [<<"k">>, <<"2">>]}, next_cmd(?T)),
        ct:pal("resumed ~b ms after the path came back", [erlang:monotonic_time(millisecond) - T0 - Noticed]),
        ?assertEqual(Full, stat(S, <<"sync_full">>)),
        ok = nsync:stop(Pid)
    after
        nsync_test_proxy:stop(P),
        nsync_test_redis:stop(S)
    end.

%% @doc Issue 13's reconnect pace: after an outage (every attempt refused
%% for 8 s) the mirror is current again within about a second of the
%% master coming back, since the backoff is capped near 1 s once the link
%% has data (it was 10 s).
-spec reconnect_pace(ct_suite:ct_config()) -> ok.
reconnect_pace(_Config) ->
    {ok, S} = nsync_test_redis:start(#{}),
    {ok, P} = nsync_test_proxy:start(nsync_test_redis:port(S)),
    try
        {ok, Pid} = nsync:start_link(opts(nsync_test_proxy:port(P), [{block, true},
                                                                     {timeout, ?T}])),
        ok = nsync_test_proxy:set_target(P, closed_port()),
        ok = nsync_test_proxy:reset(P),
        timer:sleep(8000),
        ?assertMatch(#{stale := true}, nsync:status(Pid)),
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"after">>, <<"outage">>]),
        T0 = erlang:monotonic_time(millisecond),
        ok = nsync_test_proxy:set_target(P, nsync_test_redis:port(S)),
        nsync_test_events:wait_until(
          fun() -> nsync:lookup(nsync, <<"after">>) =:= [{<<"after">>, <<"outage">>}] end, ?T),
        Back = erlang:monotonic_time(millisecond) - T0,
        ct:pal("after an 8 s outage the mirror was current ~b ms after the master came back",
               [Back]),
        ?assert(Back < 2000),
        ?assertMatch(#{stale := false}, nsync:status(Pid)),
        ok = nsync:stop(Pid)
    after
        nsync_test_proxy:stop(P),
        nsync_test_redis:stop(S)
    end.

%% @doc A master without persistence restarted (kill -9, a new replid, no
%% data): the link full-syncs and the mirror ends empty, not stale.
-spec restarted_empty(ct_suite:ct_config()) -> ok.
restarted_empty(_Config) ->
    {ok, S1} = nsync_test_redis:start(#{}),
    {ok, P} = nsync_test_proxy:start(nsync_test_redis:port(S1)),
    try
        nsync_test_redis:set_keys(S1, <<"k:">>, 1, 1000, <<"v">>),
        {ok, Pid} = nsync:start_link(opts(nsync_test_proxy:port(P), [{block, true},
                                                                     {timeout, ?T}])),
        1000 = ets:info(nsync:tid(), size),
        #{replid := Replid1} = nsync:status(Pid),
        _ = os:cmd("kill -9 " ++ integer_to_list(nsync_test_redis:os_pid(S1))),
        {ok, S2} = nsync_test_redis:start(#{}),
        T0 = erlang:monotonic_time(millisecond),
        ok = nsync_test_proxy:set_target(P, nsync_test_redis:port(S2)),
        try
            nsync_test_events:wait_until(
              fun() ->
                      Tid = nsync:tid(),
                      Tid =/= undefined andalso ets:info(Tid, size) =:= 0
              end, ?T),
            ct:pal("restarted empty: the mirror was empty ~b ms after the restart",
                   [erlang:monotonic_time(millisecond) - T0]),
            #{replid := Replid2} = Status = nsync:status(Pid),
            ?assertNotEqual(Replid1, Replid2),
            ?assertMatch(#{stale := false, state := streaming}, Status),
            <<"OK">> = nsync_test_redis:cmd(S2, [<<"SET">>, <<"new">>, <<"1">>]),
            nsync_test_events:wait_until(
              fun() -> nsync:lookup(nsync, <<"new">>) =:= [{<<"new">>, <<"1">>}] end, ?T),
            ok = nsync:stop(Pid)
        after
            nsync_test_redis:stop(S2)
        end
    after
        nsync_test_proxy:stop(P),
        nsync_test_redis:stop(S1)
    end.

%% @doc A link with data under a supervisor (`child_spec/1', permanent)
%% whose master's password is rotated: the link retries (the same
%% process), its supervisor stays up, readers keep the data, status says
%% stale with `{auth, Msg}'; the password restored, it resumes.
-spec password_rotated_under_supervisor(ct_suite:ct_config()) -> ok.
password_rotated_under_supervisor(_Config) ->
    {ok, S} = nsync_test_redis:start(#{pass => <<"old">>}),
    try
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"1">>]),
        Spec = nsync:child_spec(opts(nsync_test_redis:port(S), [{pass, "old"}])),
        process_flag(trap_exit, true),
        {ok, Sup} = supervisor:start_link(nsync_api_SUITE_sup, Spec),
        [{_, Pid, worker, _}] = supervisor:which_children(Sup),
        nsync_test_events:wait_until(
          fun() -> nsync:tid() =/= undefined andalso nsync:lookup(nsync, <<"k">>) =/= [] end, ?T),
        <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"requirepass">>,
                                            <<"new">>]),
        1 = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
        timer:sleep(3000),
        ?assertMatch([{_, Pid, worker, _}], supervisor:which_children(Sup)),
        ?assertMatch(#{stale := true, last_error := {auth, _}}, nsync:status(Pid)),
        ?assertEqual([{<<"k">>, <<"1">>}], nsync:lookup(nsync, <<"k">>)),
        <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"requirepass">>,
                                            <<"old">>]),
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"2">>]),
        T0 = erlang:monotonic_time(millisecond),
        nsync_test_events:wait_until(
          fun() -> nsync:lookup(nsync, <<"k">>) =:= [{<<"k">>, <<"2">>}] end, ?T),
        ct:pal("password restored: current again after ~b ms",
               [erlang:monotonic_time(millisecond) - T0]),
        ?assertMatch(#{stale := false}, nsync:status(Pid)),
        unlink(Sup),
        exit(Sup, shutdown),
        process_flag(trap_exit, false)
    after
        nsync_test_redis:stop(S)
    end.

%%% ----------------------------------------------------------- helpers

opts(Port, Extra) ->
    Extra ++ [{host, "127.0.0.1"}, {port, Port}].

%% A blocking start that must fail well before its timeout.
quick_start(Opts) ->
    T0 = erlang:monotonic_time(millisecond),
    Result = nsync:start_link(Opts ++ [{timeout, 30000}]),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("~p in ~b ms", [Result, Took]),
    ?assert(Took < 2000),
    Result.

next_cmd(Timeout) ->
    case nsync_test_events:next(Timeout) of
        {cmd, _, _} = Cmd -> Cmd;
        {error, closed} -> next_cmd(Timeout);
        Other -> Other
    end.

stat(S, Name) ->
    binary_to_integer(maps:get(Name, nsync_test_redis:info(S, <<"stats">>))).

closed_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Port.

%% A master that follows the handshake, then sends a snapshot that is not
%% an RDB file.
corrupt_master([<<"PING">>], _N) -> {reply, <<"+PONG\r\n">>};
corrupt_master([<<"REPLCONF">> | _], _N) -> {reply, <<"+OK\r\n">>};
corrupt_master([<<"PSYNC">> | _], _N) ->
    Rdb = <<"NOTREDIS00000000">>,
    {reply, [<<"+FULLRESYNC ">>, binary:copy(<<"a">>, 40), <<" 0\r\n$">>,
             integer_to_binary(byte_size(Rdb)), <<"\r\n">>, Rdb]};
corrupt_master(_, _N) -> {reply, <<"-ERR unexpected\r\n">>}.

%% A fake master on a loopback port: each command it reads (RESP) is
%% answered by `Script(Args, ConnectionNumber)'; `fake_count/0' is the
%% number of connections accepted.
with_fake(Script, Fun) ->
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false},
                                 {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    Counter = counters:new(1, []),
    put(fake_counter, Counter),
    Acceptor = spawn_link(fun() -> fake_accept(L, Script, Counter) end),
    try Fun(Port)
    after
        unlink(Acceptor),
        exit(Acceptor, kill),
        gen_tcp:close(L)
    end.

fake_count() ->
    counters:get(get(fake_counter), 1).

fake_accept(L, Script, Counter) ->
    case gen_tcp:accept(L) of
        {ok, Sock} ->
            counters:add(Counter, 1, 1),
            N = counters:get(Counter, 1),
            Pid = spawn(fun() -> receive go -> fake_serve(Sock, Script, N, <<>>) end end),
            ok = gen_tcp:controlling_process(Sock, Pid),
            Pid ! go,
            fake_accept(L, Script, Counter);
        {error, _} ->
            ok
    end.

fake_serve(Sock, Script, N, Buffer) ->
    case nsync_resp:decode(Buffer) of
        {ok, Args, Rest} when is_list(Args) ->
            {reply, Bytes} = Script(Args, N),
            case gen_tcp:send(Sock, Bytes) of
                ok -> fake_serve(Sock, Script, N, Rest);
                {error, _} -> gen_tcp:close(Sock)
            end;
        more ->
            case gen_tcp:recv(Sock, 0, 30000) of
                {ok, Data} -> fake_serve(Sock, Script, N, <<Buffer/binary, Data/binary>>);
                {error, _} -> gen_tcp:close(Sock)
            end;
        _ ->
            gen_tcp:close(Sock)
    end.
