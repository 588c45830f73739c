%% @doc nsync_client, the control connection, against real servers: replies
%% of every type, pipelining, AUTH, SUBSCRIBE, timeouts, a lost connection,
%% bad peers, and TLS (verified, wrong CA, mutual TLS).
-module(nsync_client_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([replies/1, pipeline/1, auth/1, subscribe/1, timeout_keeps_the_connection/1,
         lost_connection/1, connect_errors/1, not_redis/1, owner_gone/1,
         tls/1, tls_wrong_ca/1, tls_mutual/1]).

-define(T, 5000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [atom()].
all() -> [replies, pipeline, auth, subscribe, timeout_keeps_the_connection,
          lost_connection, connect_errors, not_redis, owner_gone,
          tls, tls_wrong_ca, tls_mutual].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    {ok, S} = nsync_test_redis:start(#{}),
    Certs = nsync_test_certs:make(),
    [{server, S}, {certs, Certs} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    nsync_test_certs:remove(?config(certs, Config)),
    nsync_test_redis:stop(?config(server, Config)).

%% @doc Simple strings, bulk strings (1 MiB, empty, null), integers, nested
%% arrays and error replies come back as terms.
-spec replies(ct_suite:ct_config()) -> ok.
replies(Config) ->
    {ok, C} = open(Config, #{}),
    Big = binary:copy(<<"x">>, 1 bsl 20),
    ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C, [<<"PING">>])),
    ?assertEqual({ok, <<"OK">>}, nsync_client:command(C, [<<"SET">>, <<"big">>, Big])),
    ?assertEqual({ok, Big}, nsync_client:command(C, [<<"GET">>, <<"big">>])),
    ?assertEqual({ok, undefined}, nsync_client:command(C, [<<"GET">>, <<"nope">>])),
    ?assertEqual({ok, 3}, nsync_client:command(C, [<<"RPUSH">>, <<"l">>, a, "b", 7])),
    ?assertEqual({ok, [<<"a">>, <<"b">>, <<"7">>]},
                 nsync_client:command(C, [<<"LRANGE">>, <<"l">>, 0, -1])),
    ?assertMatch({ok, [<<"master">>, _, []]}, nsync_client:command(C, [<<"ROLE">>])),
    ?assertMatch({error, {redis, <<"WRONGTYPE", _/binary>>}},
                 nsync_client:command(C, [<<"INCR">>, <<"l">>])),
    ?assertMatch({error, {redis, <<"ERR unknown command", _/binary>>}},
                 nsync_client:command(C, [<<"NOSUCHCOMMAND">>])),
    ok = nsync_client:close(C),
    ?assertEqual({error, closed}, nsync_client:command(C, [<<"PING">>])).

%% @doc A pipeline of 10,000 commands gets every reply in order, error
%% replies in their place.
-spec pipeline(ct_suite:ct_config()) -> ok.
pipeline(Config) ->
    {ok, C} = open(Config, #{}),
    N = 10000,
    Cmds = [[<<"INCR">>, <<"counter">>] || _ <- lists:seq(1, N)] ++ [[<<"INCR">>, <<"l">>]],
    {ok, Replies} = nsync_client:pipeline(C, Cmds, 30000),
    {ok, Start} = nsync_client:command(C, [<<"GET">>, <<"counter">>]),
    First = binary_to_integer(Start) - N + 1,
    ?assertEqual([{ok, I} || I <- lists:seq(First, First + N - 1)], lists:droplast(Replies)),
    ?assertMatch({error, {redis, <<"WRONGTYPE", _/binary>>}}, lists:last(Replies)),
    ?assertEqual({ok, []}, nsync_client:pipeline(C, [])),
    nsync_client:close(C).

%% @doc AUTH with a password and with an ACL user; a wrong password is
%% `{auth, Msg}' from open/1; without a password commands are refused.
-spec auth(ct_suite:ct_config()) -> ok.
auth(_Config) ->
    {ok, S} = nsync_test_redis:start(#{pass => <<"secret">>}),
    try
        Base = #{host => <<"127.0.0.1">>, port => nsync_test_redis:port(S)},
        {ok, C1} = nsync_client:open(Base#{pass => <<"secret">>}),
        ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C1, [<<"PING">>])),
        {ok, <<"OK">>} = nsync_client:command(C1, [<<"ACL">>, <<"SETUSER">>, <<"ops">>, <<"on">>,
                                                   <<">pw">>, <<"+ping">>]),
        {ok, C2} = nsync_client:open(Base#{user => <<"ops">>, pass => <<"pw">>}),
        ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C2, [<<"PING">>])),
        ?assertMatch({error, {redis, <<"NOPERM", _/binary>>}},
                     nsync_client:command(C2, [<<"GET">>, <<"k">>])),
        ?assertMatch({error, {auth, <<"WRONGPASS", _/binary>>}},
                     nsync_client:open(Base#{pass => <<"wrong">>})),
        {ok, C3} = nsync_client:open(Base),
        ?assertMatch({error, {redis, <<"NOAUTH", _/binary>>}},
                     nsync_client:command(C3, [<<"GET">>, <<"k">>])),
        [nsync_client:close(C) || C <- [C1, C2, C3]]
    after
        nsync_test_redis:stop(S)
    end,
    ok.

%% @doc After SUBSCRIBE, messages published on the channels reach the
%% owner in order, and the connection answers PING.
-spec subscribe(ct_suite:ct_config()) -> ok.
subscribe(Config) ->
    {ok, C} = open(Config, #{}),
    ok = nsync_client:subscribe(C, [<<"a">>, <<"b">>], ?T),
    S = ?config(server, Config),
    [1 = nsync_test_redis:cmd(S, [<<"PUBLISH">>, Ch, integer_to_binary(I)])
     || I <- lists:seq(1, 100), Ch <- [<<"a">>, <<"b">>]],
    0 = nsync_test_redis:cmd(S, [<<"PUBLISH">>, <<"other">>, <<"x">>]),
    Got = [receive {nsync_client, C, {message, Ch, P}} -> {Ch, P} after ?T -> timeout end
           || _ <- lists:seq(1, 200)],
    ?assertEqual([{Ch, integer_to_binary(I)} || I <- lists:seq(1, 100), Ch <- [<<"a">>, <<"b">>]],
                 Got),
    ?assertEqual({ok, [<<"pong">>, <<>>]}, nsync_client:command(C, [<<"PING">>])),
    nsync_client:close(C),
    receive {nsync_client, C, Unexpected} -> error({unexpected, Unexpected})
    after 100 -> ok
    end.

%% @doc A call that times out returns `{error, timeout}'; its late reply is
%% dropped and the next call gets its own reply.
-spec timeout_keeps_the_connection(ct_suite:ct_config()) -> ok.
timeout_keeps_the_connection(Config) ->
    {ok, C} = open(Config, #{}),
    ?assertEqual({error, timeout}, nsync_client:command(C, [<<"BLPOP">>, <<"q">>, 1], 100)),
    ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C, [<<"PING">>], ?T)),
    ?assertEqual({ok, <<"x">>}, nsync_client:command(C, [<<"ECHO">>, <<"x">>])),
    nsync_client:close(C).

%% @doc The server dropping the connection: the waiting call gets an error,
%% the owner `{closed, closed}', later calls `{error, closed}'; nothing
%% raises in the caller.
-spec lost_connection(ct_suite:ct_config()) -> ok.
lost_connection(Config) ->
    {ok, C} = open(Config, #{}),
    {ok, Id} = nsync_client:command(C, [<<"CLIENT">>, <<"ID">>]),
    Caller = self(),
    spawn(fun() -> Caller ! {blpop, nsync_client:command(C, [<<"BLPOP">>, <<"q2">>, 0], 10000)} end),
    timer:sleep(100),
    1 = nsync_test_redis:cmd(?config(server, Config),
                             [<<"CLIENT">>, <<"KILL">>, <<"ID">>, integer_to_binary(Id)]),
    ?assertEqual({blpop, {error, closed}}, receive {blpop, _} = B -> B after ?T -> timeout end),
    ?assertEqual({closed, closed}, receive {nsync_client, C, M} -> M after ?T -> timeout end),
    ?assertEqual({error, closed}, nsync_client:command(C, [<<"PING">>])),
    ?assertEqual({error, closed}, nsync_client:pipeline(C, [[<<"PING">>]])),
    ?assertEqual(ok, nsync_client:close(C)).

%% @doc Unreachable servers and bad options are error terms.
-spec connect_errors(ct_suite:ct_config()) -> ok.
connect_errors(_Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    ?assertEqual({error, {connect, econnrefused}},
                 nsync_client:open(#{host => "127.0.0.1", port => Port})),
    ?assertEqual({error, {connect, nxdomain}},
                 nsync_client:open(#{host => <<"no-such-host.invalid">>, port => 6379})),
    ?assertMatch({error, {badarg, _}}, nsync_client:open(#{host => "127.0.0.1"})),
    ?assertMatch({error, {badarg, _}}, nsync_client:open(nonsense)),
    ?assertMatch({error, {badarg, _}},
                 nsync_client:open(#{host => "127.0.0.1", port => Port, tls => maybe})).

%% @doc A peer that is not Redis: its answer is a protocol error.
-spec not_redis(ct_suite:ct_config()) -> ok.
not_redis(_Config) ->
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    {ok, Port} = inet:port(L),
    spawn_link(fun() ->
                       {ok, S} = gen_tcp:accept(L),
                       {ok, _} = gen_tcp:recv(S, 0),
                       gen_tcp:send(S, <<"HTTP/1.1 400 Bad Request\r\n\r\n">>),
                       timer:sleep(1000)
               end),
    {ok, C} = nsync_client:open(#{host => "127.0.0.1", port => Port}),
    ?assertMatch({error, {protocol, _}}, nsync_client:command(C, [<<"PING">>])),
    ?assertMatch({closed, {protocol, _}}, receive {nsync_client, C, M} -> M after ?T -> timeout end),
    gen_tcp:close(L).

%% @doc The client closes when its owner goes.
-spec owner_gone(ct_suite:ct_config()) -> ok.
owner_gone(Config) ->
    Self = self(),
    {Owner, MRef} = spawn_monitor(fun() -> Self ! open(Config, #{}) end),
    {ok, C} = receive {ok, _} = R -> R after ?T -> timeout end,
    receive {'DOWN', MRef, process, Owner, _} -> ok end,
    nsync_test_events:wait_until(fun() -> not is_process_alive(C) end, ?T).

%% @doc TLS: verified against the suite's CA (and by IP address), or not
%% verified at all.
-spec tls(ct_suite:ct_config()) -> ok.
tls(Config) ->
    Certs = ?config(certs, Config),
    with_tls_server(Certs, no, fun(Base) ->
        {ok, C1} = nsync_client:open(Base#{tls => valid_tls([{cacertfile, maps:get(ca, Certs)}])}),
        ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C1, [<<"PING">>])),
        {ok, C2} = nsync_client:open(Base#{host => "localhost",
                                           tls => valid_tls(#{cacertfile => maps:get(ca, Certs)})}),
        ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C2, [<<"PING">>])),
        {ok, C3} = nsync_client:open(Base#{tls => valid_tls([{verify, none}])}),
        ok = nsync_client:subscribe(C3, [<<"c">>], ?T),
        {ok, 1} = nsync_client:command(C1, [<<"PUBLISH">>, <<"c">>, <<"over tls">>]),
        ?assertEqual({message, <<"c">>, <<"over tls">>},
                     receive {nsync_client, C3, M} -> M after ?T -> timeout end),
        [nsync_client:close(C) || C <- [C1, C2, C3]]
    end).

%% @doc A server certificate from another CA: `{tls, unknown_ca}'; a CA
%% file that is missing: `{tls, {cacertfile, enoent}}'.
-spec tls_wrong_ca(ct_suite:ct_config()) -> ok.
tls_wrong_ca(Config) ->
    Certs = ?config(certs, Config),
    with_tls_server(Certs, no, fun(Base) ->
        ?assertEqual({error, {tls, unknown_ca}},
                     nsync_client:open(Base#{tls => valid_tls([{cacertfile, maps:get(other_ca, Certs)}])})),
        ?assertEqual({error, {tls, {cacertfile, enoent}}},
                     nsync_client:open(Base#{tls => valid_tls([{cacertfile, "/nonexistent.pem"}])}))
    end).

%% @doc `tls-auth-clients yes': with the client certificate the commands
%% go through; without it the server refuses.
-spec tls_mutual(ct_suite:ct_config()) -> ok.
tls_mutual(Config) ->
    Certs = ?config(certs, Config),
    with_tls_server(Certs, yes, fun(Base) ->
        Ca = {cacertfile, maps:get(ca, Certs)},
        {ok, C} = nsync_client:open(Base#{tls => valid_tls([Ca, {certfile, maps:get(client_cert, Certs)},
                                                       {keyfile, maps:get(client_key, Certs)}])}),
        ?assertEqual({ok, <<"PONG">>}, nsync_client:command(C, [<<"PING">>])),
        nsync_client:close(C),
        %% TLS 1.3: the server checks the client after the client's
        %% handshake is done, so the refusal may come with the first reply.
        Refused = case nsync_client:open(Base#{tls => valid_tls([Ca])}) of
                      {ok, C2} -> nsync_client:command(C2, [<<"PING">>]);
                      Error -> Error
                  end,
        %% (ssl reports the alert, or only the close, or a failed send,
        %% depending on when it arrives)
        ct:pal("without a client certificate: ~p", [Refused]),
        ?assertMatch({error, _}, Refused)
    end).

%%% ----------------------------------------------------------- helpers

open(Config, Extra) ->
    nsync_client:open(Extra#{host => <<"127.0.0.1">>,
                             port => nsync_test_redis:port(?config(server, Config))}).

%% The option as nsync_opts passes it on: validated.
valid_tls(Opts) ->
    {ok, Tls} = nsync_tls:validate(Opts),
    Tls.

with_tls_server(Certs, AuthClients, Fun) ->
    {ok, S} = nsync_test_redis:start(#{tls => #{certs => Certs, auth_clients => AuthClients}}),
    try Fun(#{host => "127.0.0.1", port => nsync_test_redis:port(S)})
    after nsync_test_redis:stop(S)
    end.
