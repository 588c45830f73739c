%% @doc The nsync API: option validation, start errors (unknown host, closed
%% port, wrong or missing password), `{block, true}' and `{timeout, Ms}',
%% status, stop, table names. Against Redis 7.0, and 6.2 where the server
%% matters.
-module(nsync_api_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, groups/0, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([bad_options/1, closed_port_blocking/1, unknown_host_blocking/1,
         wrong_password_blocking/1, missing_password_blocking/1,
         wrong_password_not_blocking/1, unreachable_not_blocking/1,
         block_returns_loaded/1, block_timeout_stops_link/1, compressed_tables/1,
         status_and_stop/1, default_name_taken/1, user_and_pass/1,
         password_changed_keeps_the_mirror/1, under_supervisor/1, db_all_tables/1]).

-define(T, 10000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [atom() | {group, atom()}].
all() -> [bad_options, closed_port_blocking, unknown_host_blocking,
          unreachable_not_blocking, {group, redis70}, {group, redis62}].

-spec groups() -> [tuple()].
groups() ->
    Cases = [wrong_password_blocking, missing_password_blocking,
             wrong_password_not_blocking, block_returns_loaded,
             block_timeout_stops_link, status_and_stop, default_name_taken,
             user_and_pass, password_changed_keeps_the_mirror, under_supervisor, db_all_tables,
             compressed_tables],
    [{redis70, [], Cases}, {redis62, [], Cases}].

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(redis70, Config) -> [{version, '7.0'} | Config];
init_per_group(redis62, Config) -> [{version, '6.2'} | Config].

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) -> ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) ->
    Opts = case Case of
               wrong_password_blocking -> #{pass => <<"s3cret">>};
               missing_password_blocking -> #{pass => <<"s3cret">>};
               wrong_password_not_blocking -> #{pass => <<"s3cret">>};
               user_and_pass -> #{pass => <<"s3cret">>};
               password_changed_keeps_the_mirror -> #{pass => <<"s3cret">>};
               block_timeout_stops_link -> #{diskless => true};
               _ -> #{}
           end,
    case proplists:get_value(version, Config) of
        undefined -> Config;
        V ->
            {ok, S} = nsync_test_redis:start(Opts#{version => V}),
            [{server, S} | Config]
    end.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    case proplists:get_value(server, Config) of
        undefined -> ok;
        S -> nsync_test_redis:stop(S)
    end.

%%% ------------------------------------------------------------- cases

%% @doc Every malformed or unknown option gives {error, {badarg, Opt}} and
%% starts nothing.
-spec bad_options(ct_suite:ct_config()) -> ok.
bad_options(_Config) ->
    Before = link_processes(),
    Bad = [{port, 0}, {port, "6379"}, {host, 42}, {host, ""}, {ip, {1, 2, 3}},
           {pass, 42}, {callback, fun(_, _) -> ok end}, {callback, {m, f, a}},
           {block, yes}, {timeout, -5}, {name, "x"}, {db, -1}, {unknown, 1},
           not_an_option],
    [{error, {badarg, Opt}} = nsync:start_link([Opt]) || Opt <- Bad],
    {error, {badarg, {user, <<"u">>}}} = nsync:start_link([{user, "u"}]),
    {error, {badarg, 42}} = nsync:start_link(42),
    {error, {badarg, {port, -1}}} = nsync:start_link(#{port => -1}),
    ?assertEqual(Before, link_processes()),
    ok.

%% @doc A closed port with {block, true}: {error, {connect, econnrefused}}.
-spec closed_port_blocking(ct_suite:ct_config()) -> ok.
closed_port_blocking(_Config) ->
    Port = closed_port(),
    {error, {connect, econnrefused}} =
        nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true}, {timeout, ?T}]),
    [] = link_processes(),
    ok.

%% @doc An unknown host with {block, true}: {error, {connect, _}} at once.
-spec unknown_host_blocking(ct_suite:ct_config()) -> ok.
unknown_host_blocking(_Config) ->
    {Us, {error, {connect, _} = Reason}} =
        timer:tc(fun() -> nsync:start_link([{host, "no-such-host.invalid"}, {port, 6379},
                                            {block, true}, {timeout, ?T}])
                 end),
    ct:pal("unknown host: ~p in ~b ms", [Reason, Us div 1000]),
    [] = link_processes(),
    ok.

%% @doc Without block, an unreachable master: {ok, Pid}, the link stays
%% disconnected and retries with backoff (few attempts, little CPU).
-spec unreachable_not_blocking(ct_suite:ct_config()) -> ok.
unreachable_not_blocking(_Config) ->
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, closed_port()},
                                  {callback, self()}]),
    timer:sleep(300),
    {reductions, R0} = process_info(Pid, reductions),
    timer:sleep(2000),
    {reductions, R1} = process_info(Pid, reductions),
    #{state := disconnected, reconnects := 0} = nsync:status(Pid),
    ct:pal("reductions in 2 s while disconnected: ~b", [R1 - R0]),
    ?assert(R1 - R0 < 100000),
    nsync_test_events:no_event(0),
    ok = nsync:stop(Pid).

%% @doc A wrong password with {block, true}: `{error, {auth, <<"WRONGPASS...">>}}'.
-spec wrong_password_blocking(ct_suite:ct_config()) -> ok.
wrong_password_blocking(Config) ->
    {error, {auth, <<"WRONGPASS", _/binary>>}} =
        nsync:start_link(opts(Config, [{pass, "wrong"}, {block, true}, {timeout, ?T}])),
    [] = link_processes(),
    ok.

%% @doc No password for a master that needs one: `{error, {auth, <<"NOAUTH...">>}}'.
-spec missing_password_blocking(ct_suite:ct_config()) -> ok.
missing_password_blocking(Config) ->
    {error, {auth, <<"NOAUTH", _/binary>>}} =
        nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    ok.

%% @doc Without block, a wrong password is retried with backoff, not
%% fatal (a link never stops because of the master's state, so its
%% supervisor is never taken down): status names the reason, and the
%% attempts back off (about 5 in 2 s, not one every 100 ms).
-spec wrong_password_not_blocking(ct_suite:ct_config()) -> ok.
wrong_password_not_blocking(Config) ->
    S = ?config(server, Config),
    Before = stat(S, <<"total_connections_received">>),
    {ok, Pid} = nsync:start_link(opts(Config, [{pass, "wrong"}])),
    timer:sleep(2000),
    Attempts = stat(S, <<"total_connections_received">>) - Before,
    ct:pal("connections in 2 s: ~b", [Attempts]),
    ?assert(Attempts =< 7),
    ?assertMatch(#{state := disconnected, stale_reason := not_loaded,
                   last_error := {auth, <<"WRONGPASS", _/binary>>}}, nsync:status(Pid)),
    ok = nsync:stop(Pid).

%% @doc {block, true} returns after the snapshot: every key is in the
%% default table at once.
-spec block_returns_loaded(ct_suite:ct_config()) -> ok.
block_returns_loaded(Config) ->
    S = ?config(server, Config),
    [<<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k", (integer_to_binary(I))/binary>>,
                                         integer_to_binary(I)])
     || I <- lists:seq(1, 2000)],
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    Tid = nsync:tid(),
    2000 = ets:info(Tid, size),
    [{<<"k42">>, <<"42">>}] = ets:lookup(Tid, <<"k42">>),
    [{<<"k42">>, <<"42">>}] = nsync:lookup(nsync, <<"k42">>),
    undefined = nsync:ttl(nsync, <<"k42">>),
    not_found = nsync:ttl(Tid, <<"nope">>),
    ok = nsync:stop(Pid).

%% @doc The mirror's data tables are ETS `compressed' by default and not
%% with {compressed, false}; both hold the same values, collections (a map
%% of more than 32 fields among them) included, after the snapshot and
%% after stream commands.
-spec compressed_tables(ct_suite:ct_config()) -> ok.
compressed_tables(Config) ->
    S = ?config(server, Config),
    Fields = lists:append([[<<"f", (integer_to_binary(I))/binary>>, integer_to_binary(I)]
                           || I <- lists:seq(1, 40)]),
    _ = nsync_test_redis:cmd(S, [<<"HSET">>, <<"h">> | Fields]),
    _ = nsync_test_redis:cmd(S, [<<"RPUSH">>, <<"l">>, <<"a">>, <<"b">>, <<"c">>]),
    _ = nsync_test_redis:cmd(S, [<<"ZADD">>, <<"z">>, <<"1.5">>, <<"m">>, <<"-2">>, <<"n">>]),
    _ = nsync_test_redis:cmd(S, [<<"SET">>, <<"s">>, <<"v">>]),
    {ok, P1} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}, {name, comp}])),
    {ok, P2} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}, {name, plain},
                                              {compressed, false}])),
    true = ets:info(nsync:tid(comp), compressed),
    false = ets:info(nsync:tid(plain), compressed),
    Keys = [<<"h">>, <<"l">>, <<"z">>, <<"s">>],
    Dump = fun(Name) -> [ets:lookup(nsync:tid(Name), K) || K <- Keys] end,
    [[{<<"h">>, #{<<"f40">> := <<"40">>} = H}], [{_, [<<"a">>, <<"b">>, <<"c">>]}],
     [{_, [{-2.0, <<"n">>}, {1.5, <<"m">>}]}], [{_, <<"v">>}]] = Dump(comp),
    40 = map_size(H),
    true = Dump(comp) =:= Dump(plain),
    _ = nsync_test_redis:cmd(S, [<<"HSET">>, <<"h">>, <<"f41">>, <<"41">>]),
    _ = nsync_test_redis:cmd(S, [<<"LPUSH">>, <<"l">>, <<"z">>]),
    _ = nsync_test_redis:cmd(S, [<<"SET">>, <<"s">>, <<"w">>]),
    ok = wait_until(fun() ->
                            Dump(comp) =:= Dump(plain) andalso
                                ets:lookup(nsync:tid(comp), <<"s">>) =:= [{<<"s">>, <<"w">>}]
                    end, ?T),
    [{_, #{<<"f41">> := <<"41">>}}] = ets:lookup(nsync:tid(comp), <<"h">>),
    [{_, [<<"z">>, <<"a">>, <<"b">>, <<"c">>]}] = ets:lookup(nsync:tid(comp), <<"l">>),
    ok = nsync:stop(P1),
    ok = nsync:stop(P2).

%% @doc {db, all}: one table per database, found with nsync:tid/2, for dbs
%% of the snapshot and dbs first written by the stream; SWAPDB swaps them.
-spec db_all_tables(ct_suite:ct_config()) -> ok.
db_all_tables(Config) ->
    S = ?config(server, Config),
    {ok, Sock} = nsync_test_redis:connect(S),
    Cmds = fun(L) -> [nsync_test_redis:cmd_sock(Sock, C) || C <- L] end,
    _ = Cmds([[<<"SET">>, <<"a">>, <<"0">>], [<<"SELECT">>, <<"3">>], [<<"SET">>, <<"b">>, <<"3">>]]),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}, {db, all}])),
    [{<<"a">>, <<"0">>}] = ets:lookup(nsync:tid(), <<"a">>),
    T3 = nsync:tid(nsync, 3),
    [{<<"b">>, <<"3">>}] = ets:lookup(T3, <<"b">>),
    undefined = nsync:tid(nsync, 5),
    _ = Cmds([[<<"SELECT">>, <<"5">>], [<<"SET">>, <<"c">>, <<"5">>]]),
    ok = wait_until(fun() ->
                            T5 = nsync:tid(nsync, 5),
                            T5 =/= undefined andalso ets:lookup(T5, <<"c">>) =:= [{<<"c">>, <<"5">>}]
                    end, ?T),
    _ = Cmds([[<<"SWAPDB">>, <<"3">>, <<"5">>]]),
    ok = wait_until(fun() -> ets:lookup(T3, <<"c">>) =:= [{<<"c">>, <<"5">>}] end, ?T),
    [{<<"b">>, <<"3">>}] = ets:lookup(nsync:tid(nsync, 5), <<"b">>),
    [] = ets:lookup(T3, <<"b">>),
    ok = gen_tcp:close(Sock),
    ok = nsync:stop(Pid),
    undefined = nsync:tid(nsync, 3).

%% @doc nsync:child_spec/1 under a one_for_one supervisor: the link starts
%% blocking, and a killed link is restarted and mirrors the master again.
-spec under_supervisor(ct_suite:ct_config()) -> ok.
under_supervisor(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"before">>, <<"1">>]),
    Spec = nsync:child_spec(opts(Config, [{block, true}, {timeout, ?T}])),
    {nsync, nsync} = maps:get(id, Spec),
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(nsync_api_SUITE_sup, Spec),
    [{_, Pid1, worker, _}] = supervisor:which_children(Sup),
    [{<<"before">>, <<"1">>}] = nsync:lookup(nsync, <<"before">>),
    exit(Pid1, kill),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"after">>, <<"2">>]),
    ok = wait_until(fun() ->
                            case supervisor:which_children(Sup) of
                                [{_, Pid2, worker, _}] when is_pid(Pid2), Pid2 =/= Pid1 ->
                                    nsync:tid() =/= undefined andalso
                                        nsync:lookup(nsync, <<"after">>) =:= [{<<"after">>, <<"2">>}];
                                _ -> false
                            end
                    end, ?T),
    [{<<"before">>, <<"1">>}] = nsync:lookup(nsync, <<"before">>),
    unlink(Sup),
    exit(Sup, shutdown),
    ok.

wait_until(Fun, Ms) when Ms =< 0 ->
    true = Fun(),
    ok;
wait_until(Fun, Ms) ->
    case catch Fun() of
        true -> ok;
        _ -> timer:sleep(50), wait_until(Fun, Ms - 50)
    end.

%% @doc {block, true} with a timeout shorter than the master's snapshot
%% delay: {error, timeout}, and the link is stopped (the master loses its
%% replica), unlike the original nsync.
-spec block_timeout_stops_link(ct_suite:ct_config()) -> ok.
block_timeout_stops_link(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>,
                                        <<"repl-diskless-sync-delay">>, <<"3">>]),
    {Us, {error, timeout}} =
        timer:tc(fun() -> nsync:start_link(opts(Config, [{block, true}, {timeout, 500},
                                                         {callback, self()}]))
                 end),
    ?assert(Us < 2000000),
    [] = link_processes(),
    nsync_test_events:wait_until(
      fun() -> connected_replicas(S) =:= <<"0">> end, 10000),
    %% A timeout of 0 cannot be met either.
    {error, timeout} = nsync:start_link(opts(Config, [{block, true}, {timeout, 0}])),
    [] = link_processes(),
    ok.

%% @doc status/1 reports state, master, replid, offset and counts; stop/1
%% ends the link and drops its table.
-spec status_and_stop(ct_suite:ct_config()) -> ok.
status_and_stop(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"a">>, <<"1">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"b">>, <<"2">>]),
    nsync_test_events:wait_until(fun() -> nsync:lookup(nsync, <<"b">>) =/= [] end, ?T),
    Status = nsync:status(Pid),
    ct:pal("status: ~p", [Status]),
    #{state := streaming, replid := Replid, offset := Offset, keys_loaded := 1,
      commands := Cmds, unhandled := 0, reconnects := 0,
      master := {<<"127.0.0.1">>, _}} = Status,
    ?assertEqual(40, byte_size(Replid)),
    ?assert(is_integer(Offset) andalso Offset > 0),
    ?assert(Cmds >= 1),
    Tid = nsync:tid(),
    ok = nsync:stop(Pid),
    undefined = nsync:tid(),
    undefined = ets:info(Tid),
    ok.

%% @doc Two links with the default callback need different names; the
%% second one with the same name gets {error, {already_started, Pid}}.
-spec default_name_taken(ct_suite:ct_config()) -> ok.
default_name_taken(Config) ->
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    {error, {already_started, Pid}} = nsync:start_link(opts(Config, [])),
    {ok, Pid2} = nsync:start_link(opts(Config, [{name, other}, {block, true},
                                                {timeout, ?T}])),
    ?assertNotEqual(nsync:tid(), nsync:tid(other)),
    ok = nsync:stop(Pid2),
    ok = nsync:stop(Pid).

%% @doc The right password (and ACL user `default' with it) syncs; the
%% password does not show in sys:get_status/1 (nor in crash reports).
-spec user_and_pass(ct_suite:ct_config()) -> ok.
user_and_pass(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"a">>, <<"1">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [{pass, <<"s3cret">>}, {block, true},
                                               {timeout, ?T}])),
    [{<<"a">>, <<"1">>}] = ets:lookup(nsync:tid(), <<"a">>),
    nomatch = string:find(io_lib:format("~p", [sys:get_status(Pid)]), "s3cret"),
    ok = nsync:stop(Pid),
    {ok, Pid2} = nsync:start_link(opts(Config, [{user, "default"}, {pass, "s3cret"},
                                                {block, true}, {timeout, ?T}])),
    [{<<"a">>, <<"1">>}] = ets:lookup(nsync:tid(), <<"a">>),
    ok = nsync:stop(Pid2).

%% @doc The master's password changes (rotated) and the connection drops:
%% the callback gets {error, closed}, the reconnects are refused and
%% retried, the mirror stays readable and status says `stale' with the
%% reason; once the password is back the link resumes (PSYNC), current.
-spec password_changed_keeps_the_mirror(ct_suite:ct_config()) -> ok.
password_changed_keeps_the_mirror(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"kept">>, <<"1">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [{pass, "s3cret"}, {block, true},
                                               {timeout, ?T}])),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"requirepass">>,
                                        <<"changed">>]),
    1 = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    ok = wait_until(fun() ->
                            case nsync:status(Pid) of
                                #{stale := true, last_error := {auth, <<"WRONGPASS", _/binary>>}} ->
                                    true;
                                _ -> false
                            end
                    end, ?T),
    [{<<"kept">>, <<"1">>}] = nsync:lookup(nsync, <<"kept">>),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"requirepass">>,
                                        <<"s3cret">>]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"kept">>, <<"2">>]),
    T0 = erlang:monotonic_time(millisecond),
    ok = wait_until(fun() -> nsync:lookup(nsync, <<"kept">>) =:= [{<<"kept">>, <<"2">>}] end, ?T),
    ct:pal("current again ~b ms after the password came back",
           [erlang:monotonic_time(millisecond) - T0]),
    ?assertMatch(#{state := streaming, stale := false}, nsync:status(Pid)),
    ok = nsync:stop(Pid).

%%% ----------------------------------------------------------- helpers

opts(Config, Extra) ->
    Extra ++ [{host, {127, 0, 0, 1}}, {port, nsync_test_redis:port(?config(server, Config))}].

%% A loopback port nobody listens on.
closed_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Port.

link_processes() ->
    [P || P <- processes(),
          case proc_lib:initial_call(P) of
              {nsync_link, init_it, _} -> true;
              _ -> false
          end].

stat(S, Name) ->
    binary_to_integer(maps:get(Name, nsync_test_redis:info(S, <<"stats">>))).

connected_replicas(S) ->
    maps:get(<<"connected_slaves">>, nsync_test_redis:info(S, <<"replication">>)).
