%% @doc Replication over TLS (the `tls' option, rustls in the NIF) against a
%% real TLS-only master (`tls-port', `port 0'), certificates made by the
%% suite: full sync (disk and diskless) and the stream, a reconnect that
%% resumes with PSYNC, mutual TLS, and the errors: a wrong CA, a client
%% without its certificate, plain TCP to the TLS port, TLS to a plain port,
%% unreadable CA files; each returned at once by a blocking start.
-module(nsync_tls_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([full_sync_disk/1, full_sync_diskless/1, reconnect_continues/1, mutual_tls/1,
         wrong_ca/1, no_client_cert/1, plain_tcp_to_tls_port/1, tls_to_plain_port/1,
         bad_tls_files/1]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 120}}].

-spec all() -> [atom()].
all() -> [full_sync_disk, full_sync_diskless, reconnect_continues, mutual_tls, wrong_ca,
          no_client_cert, plain_tcp_to_tls_port, tls_to_plain_port, bad_tls_files].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    [{certs, nsync_test_certs:make()} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    nsync_test_certs:remove(?config(certs, Config)).

%%% ------------------------------------------------------------- cases

%% @doc A disk-snapshot master: the full sync and then the stream go
%% through TLS, verified against the suite's CA.
-spec full_sync_disk(ct_suite:ct_config()) -> ok.
full_sync_disk(Config) ->
    full_sync(Config, false).

%% @doc The same with a diskless master.
-spec full_sync_diskless(ct_suite:ct_config()) -> ok.
full_sync_diskless(Config) ->
    full_sync(Config, true).

full_sync(Config, Diskless) ->
    with_master(Config, #{diskless => Diskless}, fun(S) ->
        nsync_test_redis:set_keys(S, <<"a:">>, 1, 20000, binary:copy(<<"v">>, 100)),
        {ok, Pid} = nsync:start_link(opts(Config, S, [{block, true}, {timeout, ?T}])),
        ?assertEqual(20000, ets:info(nsync:tid(), size)),
        nsync_test_redis:set_keys(S, <<"b:">>, 1, 5000, <<"w">>),
        nsync_test_events:wait_until(fun() -> same_data(S) end, ?T),
        #{state := streaming} = nsync:status(Pid),
        ok = nsync:stop(Pid)
    end).

%% @doc A killed replica connection reconnects over TLS and resumes with a
%% partial resync: no second full sync, no lost write.
-spec reconnect_continues(ct_suite:ct_config()) -> ok.
reconnect_continues(Config) ->
    with_master(Config, #{}, fun(S) ->
        nsync_test_redis:set_keys(S, <<"a:">>, 1, 1000, <<"v">>),
        {ok, Pid} = nsync:start_link(opts(Config, S, [{block, true}, {timeout, ?T}])),
        Full = stat(S, <<"sync_full">>),
        Partial = stat(S, <<"sync_partial_ok">>),
        nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
        nsync_test_redis:set_keys(S, <<"b:">>, 1, 1000, <<"w">>),
        nsync_test_events:wait_until(fun() -> same_data(S) end, ?T),
        ?assertEqual(Full, stat(S, <<"sync_full">>)),
        ?assertEqual(Partial + 1, stat(S, <<"sync_partial_ok">>)),
        #{reconnects := 1} = nsync:status(Pid),
        ok = nsync:stop(Pid)
    end).

%% @doc `tls-auth-clients yes': with the client certificate and key the
%% link syncs.
-spec mutual_tls(ct_suite:ct_config()) -> ok.
mutual_tls(Config) ->
    Certs = ?config(certs, Config),
    with_master(Config, #{auth_clients => yes}, fun(S) ->
        nsync_test_redis:set_keys(S, <<"a:">>, 1, 100, <<"v">>),
        Tls = [{cacertfile, maps:get(ca, Certs)}, {certfile, maps:get(client_cert, Certs)},
               {keyfile, maps:get(client_key, Certs)}],
        {ok, Pid} = nsync:start_link([{tls, Tls} | opts(Config, S, [{block, true},
                                                                      {timeout, ?T}])]),
        ?assert(same_data(S)),
        ok = nsync:stop(Pid)
    end).

%% @doc A master whose certificate another CA signed: `{tls, unknown_ca}',
%% returned at once by a blocking start.
-spec wrong_ca(ct_suite:ct_config()) -> ok.
wrong_ca(Config) ->
    Certs = ?config(certs, Config),
    with_master(Config, #{}, fun(S) ->
        Opts = [{tls, [{cacertfile, maps:get(other_ca, Certs)}]} | plain(S, [block])],
        ?assertEqual({error, {tls, unknown_ca}}, quick_start(Opts))
    end).

%% @doc `tls-auth-clients yes' and no client certificate: the master's
%% alert, at once.
-spec no_client_cert(ct_suite:ct_config()) -> ok.
no_client_cert(Config) ->
    with_master(Config, #{auth_clients => yes}, fun(S) ->
        ?assertEqual({error, {tls, {alert, certificate_required}}},
                     quick_start(opts(Config, S, [block])))
    end).

%% @doc Plain TCP to a TLS port: Redis resets the connection without a
%% word: `{no_answer, Why}', at once.
-spec plain_tcp_to_tls_port(ct_suite:ct_config()) -> ok.
plain_tcp_to_tls_port(Config) ->
    with_master(Config, #{}, fun(S) ->
        Got = quick_start(plain(S, [block])),
        ct:pal("plain TCP to a TLS port: ~p", [Got]),
        ?assertMatch({error, {no_answer, _}}, Got)
    end).

%% @doc TLS to a plain port: a `{tls, _}' error, at once.
-spec tls_to_plain_port(ct_suite:ct_config()) -> ok.
tls_to_plain_port(Config) ->
    {ok, S} = nsync_test_redis:start(#{}),
    try
        Got = quick_start(opts(Config, S, [block, {connect_timeout, 3000}])),
        ct:pal("TLS to a plain port: ~p", [Got]),
        ?assertMatch({error, {tls, _}}, Got)
    after
        nsync_test_redis:stop(S)
    end.

%% @doc A CA file that cannot be read, or holds no certificate: the start
%% fails with the reason, before connecting.
-spec bad_tls_files(ct_suite:ct_config()) -> ok.
bad_tls_files(Config) ->
    Dir = ?config(priv_dir, Config),
    NotPem = filename:join(Dir, "not.pem"),
    ok = file:write_file(NotPem, <<"hello">>),
    ?assertEqual({error, {tls, {cacertfile, enoent}}},
                 nsync:start_link([{tls, [{cacertfile, "/nonexistent/ca.pem"}]}, {port, 1}])),
    ?assertEqual({error, {tls, {no_certificates, cacerts}}},
                 nsync:start_link([{tls, [{cacertfile, NotPem}]}, {port, 1}])),
    ?assertEqual({error, {tls, {no_certificates, cert}}},
                 nsync:start_link([{tls, [{certfile, NotPem}, {keyfile, NotPem}]}, {port, 1}])),
    Cert = maps:get(client_cert, ?config(certs, Config)),
    ?assertEqual({error, {tls, {no_private_key, key}}},
                 nsync:start_link([{tls, [{certfile, Cert}, {keyfile, NotPem}]}, {port, 1}])),
    ?assertEqual({error, {badarg, {tls, {verify, sometimes}}}},
                 nsync:start_link([{tls, [{verify, sometimes}]}])).

%%% ----------------------------------------------------------- helpers

with_master(Config, Opts, Fun) ->
    Certs = ?config(certs, Config),
    Tls = #{certs => Certs, auth_clients => maps:get(auth_clients, Opts, no)},
    {ok, S} = nsync_test_redis:start(#{diskless => maps:get(diskless, Opts, false), tls => Tls}),
    try Fun(S)
    after
        nsync_test_events:flush(),
        nsync_test_redis:stop(S)
    end.

opts(Config, S, Extra) ->
    [{tls, [{cacertfile, maps:get(ca, ?config(certs, Config))}]} | plain(S, Extra)].

plain(S, Extra) ->
    Extra ++ [{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)}].

%% A blocking start that must fail well before its timeout.
quick_start(Opts) ->
    T0 = erlang:monotonic_time(millisecond),
    Result = nsync:start_link(Opts ++ [{timeout, 30000}]),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("~p in ~b ms", [Result, Took]),
    ?assert(Took < 5000),
    Result.

%% The mirror holds exactly the master's keys and string values.
same_data(S) ->
    case nsync:tid() of
        undefined -> false;
        Tid ->
            Keys = nsync_test_events:master_keys(S),
            Keys =:= nsync_test_events:mirror_keys(Tid) andalso
                lists:all(fun(K) -> ets:lookup(Tid, K) =:= [{K, nsync_test_redis:cmd(S, [<<"GET">>, K])}] end,
                          Keys)
    end.

stat(S, Name) ->
    binary_to_integer(maps:get(Name, nsync_test_redis:info(S, <<"stats">>))).
