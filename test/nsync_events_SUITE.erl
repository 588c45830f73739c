%% @doc Events and callbacks: each callback form receives `{load, K, V}',
%% `{load, eof}' and `{cmd, Cmd, Args}' in order with DESIGN.md's values;
%% routing by return value (tables created on demand, FLUSHALL reaching every
%% table); a raising callback does not stop the link; db filtering; two links
%% to two masters in one node. Redis 7.0 and 6.2 and Valkey, diskless on and off.
-module(nsync_events_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, groups/0, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([callback_mf/1, callback_mfa/1, callback_fun/1, callback_pid/1,
         value_types/1, big_hashes/1, routing_by_return/1, unhandled_command/1, raising_callback/1,
         db_filter/1, two_links_two_masters/1]).
-export([route_prefix/1]).

-define(T, 10000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [{group, atom()}].
all() -> [{group, G} || G <- nsync_test_redis:server_groups()].

-spec groups() -> [tuple()].
groups() ->
    Cases = [callback_mf, callback_mfa, callback_fun, callback_pid, value_types,
             big_hashes, routing_by_return, unhandled_command, raising_callback, db_filter,
             two_links_two_masters],
    [{G, [], Cases} || G <- nsync_test_redis:server_groups()].

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(Group, Config) -> nsync_test_redis:group_config(Group) ++ Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) -> ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(unhandled_command, Config) ->
    %% A master propagates a renamed command under its new name, which no
    %% table knows: a command the mirror cannot apply, as a module's is.
    {ok, S} = start_server(Config, [{"rename-command SADD", "NSYNC-MODULE.ADD"}]),
    [{server, S} | Config];
init_per_testcase(_Case, Config) ->
    {ok, S} = start_server(Config, []),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    nsync_test_events:flush(),
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc A `{M, F}' callback receives the snapshot, eof and commands in order.
-spec callback_mf(ct_suite:ct_config()) -> ok.
callback_mf(Config) ->
    true = register(nsync_test_sink, self()),
    try check_callback(Config, {nsync_test_events, sink})
    after unregister(nsync_test_sink)
    end.

%% @doc A `{M, F, A}' callback is called as apply(M, F, A ++ [Event]).
-spec callback_mfa(ct_suite:ct_config()) -> ok.
callback_mfa(Config) ->
    check_callback(Config, {nsync_test_events, sink, [self()]}).

%% @doc A fun/1 callback receives the events.
-spec callback_fun(ct_suite:ct_config()) -> ok.
callback_fun(Config) ->
    Self = self(),
    check_callback(Config, fun(Event) -> Self ! Event, ok end).

%% @doc A pid callback receives the events as messages.
-spec callback_pid(ct_suite:ct_config()) -> ok.
callback_pid(Config) ->
    check_callback(Config, self()).

%% @doc A snapshot with every common type arrives with DESIGN.md's values
%% (integer-encoded strings as text, sets sorted, zsets as {Score, Member},
%% hashes as maps).
-spec value_types(ct_suite:ct_config()) -> ok.
value_types(Config) ->
    S = ?config(server, Config),
    C = fun(Args) -> nsync_test_redis:cmd(S, Args) end,
    <<"OK">> = C([<<"SET">>, <<"str">>, <<"hello">>]),
    <<"OK">> = C([<<"SET">>, <<"int">>, <<"-42">>]),
    3 = C([<<"RPUSH">>, <<"list">>, <<"a">>, <<"b">>, <<"c">>]),
    3 = C([<<"SADD">>, <<"set">>, <<"z">>, <<"y">>, <<"x">>]),
    3 = C([<<"SADD">>, <<"intset">>, <<"3">>, <<"10">>, <<"2">>]),
    3 = C([<<"ZADD">>, <<"zset">>, <<"2">>, <<"b">>, <<"1.5">>, <<"a">>, <<"inf">>, <<"c">>]),
    2 = C([<<"HSET">>, <<"hash">>, <<"f">>, <<"v">>, <<"g">>, <<"w">>]),
    <<"OK">> = C([<<"SET">>, <<"ttl">>, <<"x">>, <<"PX">>, <<"100000">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [{callback, self()}])),
    Loaded = lists:sort(nsync_test_events:collect_load(?T)),
    ?assertEqual([{<<"hash">>, #{<<"f">> => <<"v">>, <<"g">> => <<"w">>}},
                  {<<"int">>, <<"-42">>},
                  {<<"intset">>, [<<"10">>, <<"2">>, <<"3">>]},
                  {<<"list">>, [<<"a">>, <<"b">>, <<"c">>]},
                  {<<"set">>, [<<"x">>, <<"y">>, <<"z">>]},
                  {<<"str">>, <<"hello">>},
                  {<<"ttl">>, <<"x">>},
                  {<<"zset">>, [{1.5, <<"a">>}, {2.0, <<"b">>}, {inf, <<"c">>}]}],
                 Loaded),
    ok = nsync:stop(Pid).

%% @doc Hashes of more than 32 fields (the link process makes their maps,
%% not the NIF's pump thread: see nsync_nif) arrive like small ones: in a
%% callback, in the default mirror with their TTL, and with {db, all}.
-spec big_hashes(ct_suite:ct_config()) -> ok.
big_hashes(Config) ->
    S = ?config(server, Config),
    {ok, Sock} = nsync_test_redis:connect(S),
    C = fun(Args) -> nsync_test_redis:cmd_sock(Sock, Args) end,
    Name = fun(N) -> <<"h", (integer_to_binary(N))/binary>> end,
    [N = C([<<"HSET">>, Name(N) | hash_args(N)]) || N <- [32, 33, 1000]],
    1 = C([<<"PEXPIRE">>, <<"h1000">>, <<"100000">>]),
    <<"OK">> = C([<<"SELECT">>, <<"1">>]),
    40 = C([<<"HSET">>, <<"other_db">> | hash_args(40)]),
    {ok, Events} = nsync:start_link(opts(Config, [{callback, self()}])),
    ?assertEqual([{Name(N), hash_map(N)} || N <- [1000, 32, 33]],
                 lists:sort(nsync_test_events:collect_load(?T))),
    ok = nsync:stop(Events),
    {ok, Mirror} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    [?assertEqual([{Name(N), hash_map(N)}], nsync:lookup(nsync, Name(N))) || N <- [32, 33, 1000]],
    ?assert(is_integer(nsync:ttl(nsync, <<"h1000">>))),
    undefined = nsync:ttl(nsync, <<"h33">>),
    3 = ets:info(nsync:tid(), size),
    ok = nsync:stop(Mirror),
    {ok, All} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}, {db, all}])),
    [{<<"other_db">>, Other}] = ets:lookup(nsync:tid(nsync, 1), <<"other_db">>),
    ?assertEqual(hash_map(40), Other),
    ok = nsync:stop(All),
    ok = gen_tcp:close(Sock).

hash_args(N) ->
    lists:append([[F, V] || {F, V} <- maps:to_list(hash_map(N))]).

hash_map(N) ->
    maps:from_list([{<<"f", (integer_to_binary(I))/binary>>, integer_to_binary(I)}
                    || I <- lists:seq(1, N)]).

%% @doc The callback's return value routes events: keys foo* to table foo,
%% bar* to bar (created on demand), others nowhere; FLUSHALL empties every
%% table of the link.
-spec routing_by_return(ct_suite:ct_config()) -> ok.
routing_by_return(Config) ->
    S = ?config(server, Config),
    C = fun(Args) -> nsync_test_redis:cmd(S, Args) end,
    [<<"OK">> = C([<<"SET">>, K, <<"v">>]) || K <- [<<"foo1">>, <<"bar1">>, <<"baz1">>]],
    {ok, Pid} = nsync:start_link(opts(Config, [{callback, {?MODULE, route_prefix}},
                                               {block, true}, {timeout, ?T}])),
    [{<<"foo1">>, <<"v">>}] = ets:tab2list(nsync:tid(foo)),
    [{<<"bar1">>, <<"v">>}] = ets:tab2list(nsync:tid(bar)),
    undefined = nsync:tid(nsync),
    <<"OK">> = C([<<"SET">>, <<"foo2">>, <<"w">>]),
    3 = C([<<"RPUSH">>, <<"bar2">>, <<"a">>, <<"b">>, <<"c">>]),
    <<"OK">> = C([<<"SET">>, <<"baz2">>, <<"x">>]),
    nsync_test_events:wait_until(
      fun() -> nsync:lookup(bar, <<"bar2">>) =:= [{<<"bar2">>, [<<"a">>, <<"b">>, <<"c">>]}] end,
      ?T),
    [{<<"foo2">>, <<"w">>}] = nsync:lookup(foo, <<"foo2">>),
    #{tables := Tables} = nsync:status(Pid),
    [bar, foo] = lists:sort(Tables),
    <<"OK">> = C([<<"FLUSHALL">>]),
    nsync_test_events:wait_until(
      fun() -> ets:info(nsync:tid(foo), size) + ets:info(nsync:tid(bar), size) =:= 0 end, ?T),
    ok = nsync:stop(Pid).

%% @doc A command the mirror cannot apply (one it does not know, as a
%% module's) reaches the callback as {cmd, ...} then {error, {unhandled,
%% Cmd}}, and is counted in status.
-spec unhandled_command(ct_suite:ct_config()) -> ok.
unhandled_command(Config) ->
    S = ?config(server, Config),
    Self = self(),
    Cb = fun(Event) -> Self ! Event, table end,
    {ok, Pid} = nsync:start_link(opts(Config, [{callback, Cb}, {block, true}, {timeout, ?T}])),
    [] = nsync_test_events:collect_load(?T),
    1 = nsync_test_redis:cmd(S, [<<"NSYNC-MODULE.ADD">>, <<"m">>, <<"a">>]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"v">>]),
    {cmd, <<"nsync-module.add">>, [<<"m">>, <<"a">>]} = nsync_test_events:next(?T),
    {error, {unhandled, <<"nsync-module.add">>}} = nsync_test_events:next(?T),
    {cmd, <<"set">>, [<<"k">>, <<"v">>]} = nsync_test_events:next(?T),
    %% The callback runs before its event is applied (and status/1 is not
    %% a barrier: it does not wait for the link process).
    nsync_test_events:wait_until(
      fun() -> nsync:lookup(table, <<"k">>) =:= [{<<"k">>, <<"v">>}] end, ?T),
    nsync_test_events:wait_until(fun() -> maps:get(unhandled, nsync:status(Pid)) =:= 1 end, ?T),
    [] = nsync:lookup(table, <<"m">>),
    ok = nsync:stop(Pid).

%% @doc A callback that raises is logged and does not stop the link: later
%% events still arrive and are counted in status.
-spec raising_callback(ct_suite:ct_config()) -> ok.
raising_callback(Config) ->
    S = ?config(server, Config),
    C = fun(Args) -> nsync_test_redis:cmd(S, Args) end,
    <<"OK">> = C([<<"SET">>, <<"bad">>, <<"1">>]),
    <<"OK">> = C([<<"SET">>, <<"good">>, <<"2">>]),
    Self = self(),
    Cb = fun({load, <<"bad">>, _}) -> error(boom);
            ({cmd, <<"set">>, [<<"boom">> | _]}) -> throw(boom);
            (Event) -> Self ! Event, ok
         end,
    {ok, Pid} = nsync:start_link(opts(Config, [{callback, Cb}, {block, true}, {timeout, ?T}])),
    [{<<"good">>, <<"2">>}] = nsync_test_events:collect_load(?T),
    <<"OK">> = C([<<"SET">>, <<"boom">>, <<"x">>]),
    <<"OK">> = C([<<"SET">>, <<"after">>, <<"y">>]),
    [{<<"set">>, [<<"after">>, <<"y">>]}] = nsync_test_events:collect_cmds(1, ?T),
    true = is_process_alive(Pid),
    nsync_test_events:wait_until(
      fun() -> maps:get(callback_errors, nsync:status(Pid)) =:= 2 end, ?T),
    #{callback_errors := 2, state := streaming} = nsync:status(Pid),
    ok = nsync:stop(Pid).

%% @doc With {db, N} the callback sees only db N's keys and commands (no
%% SELECT); with {db, all} it sees every db and the SELECTs.
-spec db_filter(ct_suite:ct_config()) -> ok.
db_filter(Config) ->
    S = ?config(server, Config),
    {ok, Sock} = nsync_test_redis:connect(S),
    C = fun(Args) -> nsync_test_redis:cmd_sock(Sock, Args) end,
    <<"OK">> = C([<<"SET">>, <<"zero">>, <<"0">>]),
    <<"OK">> = C([<<"SELECT">>, <<"1">>]),
    <<"OK">> = C([<<"SET">>, <<"one">>, <<"1">>]),
    {ok, Pid1} = nsync:start_link(opts(Config, [{callback, self()}, {db, 1}])),
    [{<<"one">>, <<"1">>}] = nsync_test_events:collect_load(?T),
    {ok, PidAll} = nsync:start_link(opts(Config, [{callback, {nsync_test_events, sink,
                                                               [spawn_collector()]}},
                                                  {db, all}])),
    nsync_test_events:wait_until(fun() -> maps:get(state, nsync:status(PidAll)) =:= streaming end, ?T),
    <<"OK">> = C([<<"SET">>, <<"one2">>, <<"x">>]),
    <<"OK">> = C([<<"SELECT">>, <<"0">>]),
    <<"OK">> = C([<<"SET">>, <<"zero2">>, <<"y">>]),
    <<"OK">> = C([<<"SELECT">>, <<"1">>]),
    <<"OK">> = C([<<"SET">>, <<"one3">>, <<"z">>]),
    [{<<"set">>, [<<"one2">>, <<"x">>]}, {<<"set">>, [<<"one3">>, <<"z">>]}] =
        nsync_test_events:collect_cmds(2, ?T),
    nsync_test_events:no_event(300),
    ok = nsync:stop(Pid1),
    ok = nsync:stop(PidAll),
    All = collected(),
    ct:pal("db all events: ~p", [All]),
    [<<"one">>, <<"zero">>] = lists:sort([K || {load, K, _} <- All]),
    Cmds = [{Cmd, Args} || {cmd, Cmd, Args} <- All],
    ?assertEqual([{<<"set">>, [<<"one2">>, <<"x">>]},
                  {<<"set">>, [<<"zero2">>, <<"y">>]},
                  {<<"set">>, [<<"one3">>, <<"z">>]}],
                 [X || {<<"set">>, _} = X <- Cmds]),
    ?assert(lists:member({<<"select">>, [<<"0">>]}, Cmds)),
    ok = gen_tcp:close(Sock).

%% @doc Two links to two masters in one node, each with its own table, do
%% not see each other's keys.
-spec two_links_two_masters(ct_suite:ct_config()) -> ok.
two_links_two_masters(Config) ->
    S1 = ?config(server, Config),
    {ok, S2} = start_server(Config, []),
    try
        <<"OK">> = nsync_test_redis:cmd(S1, [<<"SET">>, <<"k">>, <<"one">>]),
        <<"OK">> = nsync_test_redis:cmd(S2, [<<"SET">>, <<"k">>, <<"two">>]),
        {ok, P1} = nsync:start_link(opts(S1, Config, [{name, m1}, {block, true}, {timeout, ?T}])),
        {ok, P2} = nsync:start_link(opts(S2, Config, [{name, m2}, {block, true}, {timeout, ?T}])),
        [{<<"k">>, <<"one">>}] = ets:lookup(nsync:tid(m1), <<"k">>),
        [{<<"k">>, <<"two">>}] = ets:lookup(nsync:tid(m2), <<"k">>),
        <<"OK">> = nsync_test_redis:cmd(S1, [<<"SET">>, <<"only1">>, <<"a">>]),
        <<"OK">> = nsync_test_redis:cmd(S2, [<<"FLUSHALL">>]),
        <<"OK">> = nsync_test_redis:cmd(S2, [<<"SET">>, <<"only2">>, <<"b">>]),
        nsync_test_events:wait_until(
          fun() -> nsync_test_events:mirror_keys(nsync:tid(m1)) =:= [<<"k">>, <<"only1">>]
                       andalso nsync_test_events:mirror_keys(nsync:tid(m2)) =:= [<<"only2">>]
          end, ?T),
        ok = nsync:stop(P1),
        [{<<"only2">>, <<"b">>}] = ets:tab2list(nsync:tid(m2)),
        ok = nsync:stop(P2)
    after
        nsync_test_redis:stop(S2)
    end.

%%% ----------------------------------------------------------- helpers

%% @doc Routing callback of routing_by_return: the table is the key prefix.
-spec route_prefix(nsync:event()) -> atom().
route_prefix({load, <<"foo", _/binary>>, _}) -> foo;
route_prefix({load, <<"bar", _/binary>>, _}) -> bar;
route_prefix({cmd, _, [<<"foo", _/binary>> | _]}) -> foo;
route_prefix({cmd, _, [<<"bar", _/binary>> | _]}) -> bar;
route_prefix(_) -> skip.

%% Writes keys of several types, starts a link with `Callback', checks the
%% snapshot events then the command events, in order.
check_callback(Config, Callback) ->
    S = ?config(server, Config),
    C = fun(Args) -> nsync_test_redis:cmd(S, Args) end,
    <<"OK">> = C([<<"SET">>, <<"s">>, <<"hello">>]),
    3 = C([<<"RPUSH">>, <<"l">>, <<"a">>, <<"b">>, <<"c">>]),
    1 = C([<<"HSET">>, <<"h">>, <<"f">>, <<"v">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [{callback, Callback}])),
    Loaded = nsync_test_events:collect_load(?T),
    ?assertEqual([{<<"h">>, #{<<"f">> => <<"v">>}}, {<<"l">>, [<<"a">>, <<"b">>, <<"c">>]},
                  {<<"s">>, <<"hello">>}], lists:sort(Loaded)),
    <<"OK">> = C([<<"SET">>, <<"k">>, <<"v">>]),
    1 = C([<<"DEL">>, <<"s">>]),
    4 = C([<<"LPUSH">>, <<"l">>, <<"d">>]),
    1 = C([<<"HSET">>, <<"h">>, <<"g">>, <<"w">>]),
    1 = C([<<"INCR">>, <<"n">>]),
    2 = C([<<"SADD">>, <<"set">>, <<"x">>, <<"y">>]),
    ?assertEqual([{<<"set">>, [<<"k">>, <<"v">>]},
                  {<<"del">>, [<<"s">>]},
                  {<<"lpush">>, [<<"l">>, <<"d">>]},
                  {<<"hset">>, [<<"h">>, <<"g">>, <<"w">>]},
                  {<<"incr">>, [<<"n">>]},
                  {<<"sadd">>, [<<"set">>, <<"x">>, <<"y">>]}],
                 nsync_test_events:collect_cmds(6, ?T)),
    nsync_test_events:no_event(200),
    ok = nsync:stop(Pid).

start_server(Config, ServerConfig) ->
    nsync_test_redis:start(#{version => ?config(version, Config),
                             diskless => ?config(diskless, Config),
                             config => ServerConfig}).

opts(Config, Extra) ->
    opts(?config(server, Config), Config, Extra).

opts(Server, _Config, Extra) ->
    Extra ++ [{host, "127.0.0.1"}, {port, nsync_test_redis:port(Server)}].

%% A process that keeps the events it receives until asked for them.
spawn_collector() ->
    Pid = spawn_link(fun() -> collector([]) end),
    register(nsync_test_collector, Pid),
    Pid.

collector(Acc) ->
    receive
        {get, From} -> From ! {collected, lists:reverse(Acc)};
        Event -> collector([Event | Acc])
    end.

collected() ->
    nsync_test_collector ! {get, self()},
    receive {collected, Events} -> Events after ?T -> error(collector_timeout) end.
