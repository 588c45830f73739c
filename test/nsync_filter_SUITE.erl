%%% @doc Key filters (`{keys, Filters}') against real masters: the snapshot
%%% and the stream keep exactly the keys the prefixes, patterns and
%%% databases admit; commands whose keys straddle the filter leave the
%%% mirror exact for every kept key it still knows (and the ones it cannot
%%% know absent); a user callback sees what the filter keeps; and the NIF
%%% finds every command's keys where nsync_cmd:keys/2 does.
-module(nsync_filter_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([snapshot_and_stream/1, straddling/1, databases/1, callback/1, command_keys/1]).

-define(T, 10000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {minutes, 2}}].

-spec all() -> [atom()].
all() -> [snapshot_and_stream, straddling, databases, callback, command_keys].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(command_keys, Config) ->
    Config;
init_per_testcase(_Case, Config) ->
    {ok, S} = nsync_test_redis:start(#{version => '7.0'}),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    case proplists:get_value(server, Config) of
        undefined -> ok;
        S -> nsync_test_redis:stop(S)
    end.

%%% ------------------------------------------------------------- cases

%% @doc Prefixes and glob patterns: the snapshot loads the kept keys only
%% (`keys_loaded' counts them), and the stream adds and changes only kept
%% keys; DEL and MSET that name both keep their kept part.
-spec snapshot_and_stream(ct_suite:ct_config()) -> ok.
snapshot_and_stream(Config) ->
    S = ?config(server, Config),
    ok = nsync_test_redis:set_keys(S, <<"user:">>, 1, 300, <<"u">>),
    ok = nsync_test_redis:set_keys(S, <<"session:">>, 1, 300, <<"s">>),
    ok = nsync_test_redis:set_keys(S, <<"other:">>, 1, 300, <<"o">>),
    Keep = fun(<<"user:", _/binary>>) -> true;
              (<<"session:", Rest/binary>>) -> lists:member(binary:last(Rest), [$0, $5]);
              (_) -> false
           end,
    {ok, Link} = start(S, [{keys, [{prefix, "user:"}, {match, <<"session:*[05]">>}]}]),
    try
        Kept = [K || K <- nsync_test_events:master_keys(S), Keep(K)],
        ?assertEqual(300 + 60, length(Kept)),
        ?assertEqual(Kept, nsync_test_events:mirror_keys(nsync:tid())),
        #{keys_loaded := 360} = nsync:status(Link),
        Writes = [[<<"SET">>, <<"user:new">>, <<"1">>], [<<"SET">>, <<"other:new">>, <<"1">>],
                  [<<"HSET">>, <<"session:10">>, <<"f">>, <<"v">>],
                  [<<"HSET">>, <<"session:11">>, <<"f">>, <<"v">>],
                  [<<"DEL">>, <<"user:1">>, <<"other:1">>, <<"session:5">>, <<"session:6">>],
                  [<<"MSET">>, <<"other:2">>, <<"x">>, <<"user:2">>, <<"y">>, <<"session:15">>, <<"z">>],
                  [<<"APPEND">>, <<"other:3">>, <<"more">>]],
        [_ = nsync_test_redis:cmd(S, W) || W <- Writes],
        sync(S, [Link]),
        ?assertEqual([], nsync_workload:compare(S, nsync:tid(), #{keep => Keep})),
        ?assertEqual([K || K <- nsync_test_events:master_keys(S), Keep(K)],
                     nsync_test_events:mirror_keys(nsync:tid())),
        #{unhandled := 0} = nsync:status(Link)
    after
        stop(Link)
    end.

%% @doc Commands whose keys straddle the filter (kept keys `k*', others
%% `x*'): a kept key renamed, moved, popped or copied away from is exact (a
%% RENAME to a name left out deletes it, and the mirror knows it is gone);
%% a kept key written from a key left out (RENAME, LMOVE, SMOVE, *STORE,
%% COPY into it) cannot be known: it is absent, counted in `unhandled',
%% until a command sets it again (a RENAME from a kept key too); a kept key
%% a command only reads keeps its value.
-spec straddling(ct_suite:ct_config()) -> ok.
straddling(Config) ->
    S = ?config(server, Config),
    Setup = [[<<"SET">>, <<"k1">>, <<"a">>], [<<"SET">>, <<"k2">>, <<"b">>],
             [<<"RPUSH">>, <<"kl">>, <<"1">>, <<"2">>, <<"3">>],
             [<<"SADD">>, <<"ks">>, <<"m">>, <<"n">>], [<<"SADD">>, <<"ks2">>, <<"n">>],
             [<<"SET">>, <<"x1">>, <<"out">>], [<<"RPUSH">>, <<"xl">>, <<"9">>, <<"8">>],
             [<<"SADD">>, <<"xs">>, <<"m">>, <<"z">>], [<<"SET">>, <<"kgone">>, <<"g">>]],
    [_ = nsync_test_redis:cmd(S, C) || C <- Setup],
    Keep = fun(<<"k", _/binary>>) -> true; (_) -> false end,
    {ok, Link} = start(S, [{keys, [{prefix, "k"}]}]),
    try
        Straddling = [[<<"RENAME">>, <<"x1">>, <<"k1">>],                   % k1 unknown
                      [<<"RENAME">>, <<"k2">>, <<"x2">>],                   % k2 gone, known
                      [<<"RPUSH">>, <<"k2">>, <<"v">>],                     % ... so exact
                      [<<"LMOVE">>, <<"kl">>, <<"xl">>, <<"LEFT">>, <<"RIGHT">>],  % kl exact
                      [<<"SMOVE">>, <<"ks">>, <<"xs">>, <<"m">>],           % ks exact
                      [<<"SUNIONSTORE">>, <<"x3">>, <<"ks2">>, <<"ks">>],   % nothing
                      [<<"SUNIONSTORE">>, <<"ks3">>, <<"xs">>, <<"ks2">>],  % ks3 unknown
                      [<<"COPY">>, <<"ks2">>, <<"x5">>],                    % nothing
                      [<<"COPY">>, <<"xs">>, <<"k6">>],                     % k6 unknown
                      [<<"MSET">>, <<"k4">>, <<"v4">>, <<"x4">>, <<"w">>],  % k4 exact
                      [<<"DEL">>, <<"kgone">>, <<"x4">>],                   % kgone gone
                      [<<"LMOVE">>, <<"xl">>, <<"kl">>, <<"RIGHT">>, <<"LEFT">>],  % kl unknown
                      [<<"SMOVE">>, <<"xs">>, <<"ks">>, <<"z">>]],          % ks unknown
        [_ = nsync_test_redis:cmd(S, C) || C <- Straddling],
        sync(S, [Link]),
        Unknown = [<<"k1">>, <<"k6">>, <<"kl">>, <<"ks">>, <<"ks3">>],
        ?assertEqual([{missing_in_mirror, K, T} || K <- Unknown,
                                                   T <- [nsync_test_redis:cmd(S, [<<"TYPE">>, K])]],
                     lists:sort(nsync_workload:compare(S, nsync:tid(), #{keep => Keep}))),
        #{unhandled := 5} = nsync:status(Link),
        %% a kept key renamed onto an unknown one: RENAME sets it whole
        _ = nsync_test_redis:cmd(S, [<<"RENAME">>, <<"k4">>, <<"k1">>]),
        sync(S, [Link]),
        ?assertEqual([{missing_in_mirror, K, T} || K <- Unknown -- [<<"k1">>],
                                                   T <- [nsync_test_redis:cmd(S, [<<"TYPE">>, K])]],
                     lists:sort(nsync_workload:compare(S, nsync:tid(), #{keep => Keep}))),
        ?assertEqual([{<<"k1">>, <<"v4">>}], nsync:lookup(nsync, <<"k1">>)),
        %% set again, they are known
        [_ = nsync_test_redis:cmd(S, [<<"SET">>, K, <<"again">>]) || K <- Unknown],
        [_ = nsync_test_redis:cmd(S, [<<"APPEND">>, K, <<"!">>]) || K <- Unknown],
        sync(S, [Link]),
        ?assertEqual([], nsync_workload:compare(S, nsync:tid(), #{keep => Keep})),
        ?assertEqual([<<"again!">>], lists:usort([V || K <- Unknown, [{_, V}] <- [nsync:lookup(nsync, K)]])),
        #{unhandled := 5} = nsync:status(Link)
    after
        stop(Link)
    end.

%% @doc A set of databases (`{keys, [{db, [0, 2]}]}'): those databases each
%% in a table, commands of the others dropped; a key MOVEd in from a
%% database left out is unknown, one MOVEd between kept ones is followed;
%% with `{db, 2}' besides, only that one.
-spec databases(ct_suite:ct_config()) -> ok.
databases(Config) ->
    S = ?config(server, Config),
    {ok, Sock} = nsync_test_redis:connect(S),
    Run = fun(Cmds) -> [nsync_test_redis:cmd_sock(Sock, C) || C <- Cmds] end,
    _ = Run([[<<"SET">>, <<"a">>, <<"0">>], [<<"SELECT">>, <<"1">>], [<<"SET">>, <<"a">>, <<"1">>],
             [<<"SELECT">>, <<"2">>], [<<"SET">>, <<"a">>, <<"2">>], [<<"SELECT">>, <<"0">>]]),
    {ok, Link} = start(S, [{keys, [{db, [0, 2]}]}]),
    {ok, Only2} = start(S, [{name, only2}, {db, 2}, {keys, [{db, [2, 5]}]}]),
    try
        ?assertEqual([{<<"a">>, <<"0">>}], ets:tab2list(nsync:tid(nsync, 0))),
        ?assertEqual([{<<"a">>, <<"2">>}], ets:tab2list(nsync:tid(nsync, 2))),
        ?assertEqual(undefined, nsync:tid(nsync, 1)),
        ?assertEqual([{<<"a">>, <<"2">>}], ets:tab2list(nsync:tid(only2))),
        _ = Run([[<<"SELECT">>, <<"1">>], [<<"SET">>, <<"b">>, <<"1">>], [<<"MOVE">>, <<"a">>, <<"0">>],
                 [<<"SELECT">>, <<"2">>], [<<"SET">>, <<"c">>, <<"2">>], [<<"MOVE">>, <<"c">>, <<"0">>],
                 [<<"SELECT">>, <<"0">>], [<<"DEL">>, <<"a">>]]),
        _ = Run([[<<"SELECT">>, <<"1">>], [<<"MOVE">>, <<"b">>, <<"0">>], [<<"SELECT">>, <<"0">>]]),
        sync(S, [Link, Only2]),
        %% db 0: c moved from 2 (known); b moved from 1 (unknown)
        ?assertEqual([{<<"c">>, <<"2">>}], ets:tab2list(nsync:tid(nsync, 0))),
        ?assertEqual([{<<"a">>, <<"2">>}], ets:tab2list(nsync:tid(nsync, 2))),
        ?assertEqual(undefined, nsync:tid(nsync, 1)),
        #{unhandled := 1} = nsync:status(Link),
        ?assertEqual([{<<"a">>, <<"2">>}], ets:tab2list(nsync:tid(only2)))
    after
        gen_tcp:close(Sock),
        stop(Link),
        stop(Only2)
    end.

%% @doc A user callback sees the kept keys' `load' events and the commands
%% the filter keeps: none of a key left out, DEL and MSET cut down, a
%% straddling command whole.
-spec callback(ct_suite:ct_config()) -> ok.
callback(Config) ->
    S = ?config(server, Config),
    ok = nsync_test_redis:set_keys(S, <<"k">>, 1, 5, <<"v">>),
    ok = nsync_test_redis:set_keys(S, <<"x">>, 1, 5, <<"v">>),
    Self = self(),
    {ok, Link} = start(S, [{keys, [{match, "k*"}]}, {callback, fun(E) -> Self ! E, ok end}]),
    try
        Loaded = nsync_test_events:collect_load(?T),
        ?assertEqual([<<"k1">>, <<"k2">>, <<"k3">>, <<"k4">>, <<"k5">>], lists:sort([K || {K, _} <- Loaded])),
        [_ = nsync_test_redis:cmd(S, C)
         || C <- [[<<"SET">>, <<"x1">>, <<"w">>], [<<"DEL">>, <<"x1">>, <<"k1">>, <<"x2">>],
                  [<<"MSET">>, <<"x3">>, <<"1">>, <<"k3">>, <<"2">>], [<<"RENAME">>, <<"x4">>, <<"k4">>],
                  [<<"SET">>, <<"k2">>, <<"w">>]]],
        ?assertEqual([{<<"del">>, [<<"k1">>]}, {<<"mset">>, [<<"k3">>, <<"2">>]},
                      {<<"rename">>, [<<"x4">>, <<"k4">>]}, {<<"set">>, [<<"k2">>, <<"w">>]}],
                     nsync_test_events:collect_cmds(4, ?T)),
        nsync_test_events:no_event(300)
    after
        stop(Link)
    end.

%% @doc For every command of nsync_cmd's table, with random arguments, the
%% NIF's filter (`nsync_nif:filter_command/3') finds the keys
%% `nsync_cmd:keys/2' finds: kept ones, filtered-out ones, none.
-spec command_keys(ct_suite:ct_config()) -> ok.
command_keys(_Config) ->
    {ok, Config} = nsync_opts:validate([{keys, [{prefix, "k"}]}]),
    {ok, NifConfig} = nsync_opts:nif_config(Config),
    {ok, Nif} = nsync_nif:open(NifConfig),
    rand:seed(exsss, {3, 14, 15}),
    Pool = [<<"k1">>, <<"k2">>, <<"x1">>, <<"x2">>, <<"0">>, <<"1">>, <<"2">>, <<"3">>,
            <<"STORE">>, <<"store">>, <<"STOREDIST">>, <<"DB">>, <<"LEFT">>, <<"-1">>],
    Checked = [check_keys(Nif, Cmd, [lists:nth(rand:uniform(length(Pool)), Pool)
                                     || _ <- lists:seq(1, rand:uniform(8) - 1)])
               || Cmd <- nsync_cmd:names(), _ <- lists:seq(1, 200)],
    Outcomes = lists:foldl(fun(O, Acc) -> maps:update_with(O, fun(N) -> N + 1 end, 1, Acc) end,
                           #{}, Checked),
    ct:pal("~p", [Outcomes]),
    ?assertEqual([], [O || O <- maps:keys(Outcomes), element(1, O) =:= mismatch]),
    ?assert(maps:get(straddles, Outcomes, 0) > 500),
    ok.

check_keys(Nif, Cmd, Args) ->
    Got = nsync_nif:filter_command(Nif, 0, [Cmd | Args]),
    #{keys := Spec} = nsync_cmd:spec(Cmd),
    CopyAcross = Cmd =:= <<"copy">> andalso lists:member(<<"DB">>, Args),
    case catch nsync_cmd:keys(Spec, Args) of
        {'EXIT', _} -> unreadable;
        %% its destination's database decides too (see `databases')
        _ when CopyAcross -> copy_across;
        Keys ->
            Kept = [K || <<"k", _/binary>> = K <- Keys],
            Out = lists:usort(Keys -- Kept),
            PerKey = nsync_cmd:roles(Cmd) =:= per_key,
            Want = if
                       Keys =:= [] -> keep;
                       Out =:= [] -> keep;
                       Kept =:= [] -> drop;
                       PerKey -> only;
                       true -> {straddles, Out}
                   end,
            case {Want, Got} of
                {keep, keep} -> keep;
                {drop, drop} -> drop;
                {only, {only, [Cmd | _]}} -> only;
                {{straddles, Out}, {straddles, Out}} -> straddles;
                _ -> {mismatch, Cmd, Args, Want, Got}
            end
    end.

%%% ---------------------------------------------------------- helpers

start(S, Opts) ->
    nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)}, {block, true},
                      {timeout, ?T} | Opts]).

stop(Link) ->
    unlink(Link),
    nsync:stop(Link).

%% Waits until the links have handled everything the master has sent
%% (`status/1''s offset is that of the last batch handled).
sync(S, Links) ->
    Info = nsync_test_redis:info(S, <<"replication">>),
    Master = binary_to_integer(maps:get(<<"master_repl_offset">>, Info)),
    nsync_test_events:wait_until(
      fun() -> lists:all(fun(L) -> maps:get(offset, nsync:status(L)) >= Master end, Links) end,
      ?T).
