%% @doc Self-check of the test helper nsync_test_proxy against a real
%% redis-server: it forwards, stalls with the sockets open, cuts after N
%% bytes, resets, flips a byte and follows a new target.
-module(nsync_test_proxy_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([forwards/1, stalls/1, cuts_after/1, resets/1, flips_a_byte/1, retargets/1]).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [atom()].
all() -> [forwards, stalls, cuts_after, resets, flips_a_byte, retargets].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    {ok, S} = nsync_test_redis:start(#{}),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"k">>, <<"value">>]),
    [{server, S} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    nsync_test_redis:stop(?config(server, Config)).

%% @doc Commands and replies go through; connections and bytes are counted.
-spec forwards(ct_suite:ct_config()) -> ok.
forwards(Config) ->
    with_proxy(Config, fun(P) ->
        Sock = client(P),
        ?assertEqual(<<"value">>, nsync_test_redis:cmd_sock(Sock, [<<"GET">>, <<"k">>])),
        ?assertEqual(1, nsync_test_proxy:connections(P)),
        ?assertEqual(byte_size(<<"$5\r\nvalue\r\n">>), nsync_test_proxy:bytes_down(P))
    end).

%% @doc In stall mode nothing is forwarded but the socket stays open; back
%% to forward, the pending command is answered.
-spec stalls(ct_suite:ct_config()) -> ok.
stalls(Config) ->
    with_proxy(Config, fun(P) ->
        Sock = client(P),
        ok = nsync_test_proxy:set_mode(P, stall),
        ok = nsync_test_redis:send_cmd(Sock, [<<"GET">>, <<"k">>]),
        ?assertEqual({error, timeout}, gen_tcp:recv(Sock, 0, 500)),
        ok = nsync_test_proxy:set_mode(P, forward),
        ?assertEqual(<<"value">>, nsync_test_redis:recv_reply(Sock, 5000))
    end).

%% @doc cut_after N closes the connection once N bytes came from the server.
-spec cuts_after(ct_suite:ct_config()) -> ok.
cuts_after(Config) ->
    with_proxy(Config, fun(P) ->
        ok = nsync_test_proxy:set_mode(P, {cut_after, 4}),
        {ok, Sock} = raw_client(P),
        ok = nsync_test_redis:send_cmd(Sock, [<<"GET">>, <<"k">>]),
        ?assertEqual({ok, <<"$5\r\n">>}, gen_tcp:recv(Sock, 4, 5000)),
        ?assertEqual({error, closed}, gen_tcp:recv(Sock, 0, 5000))
    end).

%% @doc reset drops every open connection.
-spec resets(ct_suite:ct_config()) -> ok.
resets(Config) ->
    with_proxy(Config, fun(P) ->
        {ok, Sock} = raw_client(P),
        ok = nsync_test_redis:send_cmd(Sock, [<<"PING">>]),
        {ok, <<"+PONG\r\n">>} = gen_tcp:recv(Sock, 7, 5000),
        ok = nsync_test_proxy:reset(P),
        ?assertMatch({error, _}, gen_tcp:recv(Sock, 0, 5000))
    end).

%% @doc flip_at alters one byte of the next connection only.
-spec flips_a_byte(ct_suite:ct_config()) -> ok.
flips_a_byte(Config) ->
    with_proxy(Config, fun(P) ->
        ok = nsync_test_proxy:set_mode(P, {flip_at, 4}),
        {ok, A} = raw_client(P),
        ok = nsync_test_redis:send_cmd(A, [<<"GET">>, <<"k">>]),
        <<"$5\r\n", V1:5/binary, "\r\n">> = recv_n(A, 11),
        ?assertEqual(<<($v bxor 16#5a), "alue">>, V1),
        {ok, B} = raw_client(P),
        ok = nsync_test_redis:send_cmd(B, [<<"GET">>, <<"k">>]),
        ?assertEqual(<<"$5\r\nvalue\r\n">>, recv_n(B, 11))
    end).

%% @doc set_target sends new connections to another server.
-spec retargets(ct_suite:ct_config()) -> ok.
retargets(Config) ->
    {ok, S2} = nsync_test_redis:start(#{}),
    try
        <<"OK">> = nsync_test_redis:cmd(S2, [<<"SET">>, <<"k">>, <<"other">>]),
        with_proxy(Config, fun(P) ->
            ok = nsync_test_proxy:set_target(P, nsync_test_redis:port(S2)),
            ?assertEqual(<<"other">>, nsync_test_redis:cmd_sock(client(P), [<<"GET">>, <<"k">>]))
        end)
    after
        nsync_test_redis:stop(S2)
    end.

%%% ------------------------------------------------------------ helpers

with_proxy(Config, Fun) ->
    {ok, P} = nsync_test_proxy:start(nsync_test_redis:port(?config(server, Config))),
    try Fun(P), ok after nsync_test_proxy:stop(P) end.

client(P) ->
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, nsync_test_proxy:port(P),
                                 [binary, {active, false}, {packet, line}]),
    Sock.

raw_client(P) ->
    gen_tcp:connect({127, 0, 0, 1}, nsync_test_proxy:port(P), [binary, {active, false}]).

recv_n(Sock, N) ->
    {ok, Data} = gen_tcp:recv(Sock, N, 5000),
    Data.
