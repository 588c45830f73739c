%%% @doc Differential tests of the ETS mirror: a seeded random workload
%%% (`nsync_workload') runs against a real master and the mirror must equal
%%% the master's dataset afterwards (type, value and expiry of every key),
%%% with no command left unhandled. With a key filter keeping part of the
%%% keys, it must equal the master's kept keys but those a command wrote
%%% from keys the filter leaves out, which it has as unknown (absent).
-module(nsync_mirror_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([direct_7_0/1, direct_7_0_big/1, stream_7_0/1, stream_6_2/1, stream_valkey/1, link_7_0_disk/1,
         link_7_0_big/1, link_valkey_big/1,
         link_7_0_diskless/1, link_6_2_disk/1, link_6_2_diskless/1, link_valkey_disk/1,
         link_valkey_diskless/1, settings_hll_7_0/1, settings_geo_6_2/1, direct_7_0_keys/1,
         direct_7_0_families/1,
         link_7_0_keys/1]).

-define(COUNT, 10000).
%% The key filter of the *_keys cases: about half of every key family (the
%% workload's keys end in ":1" to ":12"), and the big collections.
-define(KEYS, [{match, <<"*:[1-6]">>}, {prefix, <<"big:">>}]).
%% A filter that keeps whole key families: commands between them are rare.
-define(FAMILIES, [{prefix, <<"l:">>}, {prefix, <<"S:">>}, {prefix, <<"h:">>},
                   {match, <<"[svxzn]:*">>}]).

-spec all() -> [atom() | {group, atom()}].
all() ->
    [direct_7_0, direct_7_0_big, direct_7_0_keys, direct_7_0_families, stream_7_0, stream_6_2, stream_valkey,
     settings_hll_7_0,
     settings_geo_6_2, {group, link}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    [{link, [], [link_7_0_disk, link_7_0_big, link_7_0_diskless, link_6_2_disk, link_6_2_diskless,
                  link_valkey_disk, link_valkey_diskless, link_valkey_big, link_7_0_keys]}].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(crypto),
    Config.

-spec end_per_suite(list()) -> ok.
end_per_suite(_Config) -> ok.

-spec init_per_testcase(atom(), list()) -> list() | {skip, term()}.
init_per_testcase(Case, Config) ->
    {Version, Diskless} = case Case of
                              direct_7_0 -> {'7.0', false};
                              direct_7_0_big -> {'7.0', false};
                              direct_7_0_keys -> {'7.0', false};
                              direct_7_0_families -> {'7.0', false};
                              link_7_0_keys -> {'7.0', true};
                              stream_7_0 -> {'7.0', false};
                              stream_6_2 -> {'6.2', false};
                              stream_valkey -> {valkey, false};
                              settings_hll_7_0 -> {'7.0', false};
                              settings_geo_6_2 -> {'6.2', false};
                              link_7_0_disk -> {'7.0', false};
                              link_7_0_big -> {'7.0', false};
                              link_7_0_diskless -> {'7.0', true};
                              link_6_2_disk -> {'6.2', false};
                              link_6_2_diskless -> {'6.2', true};
                              link_valkey_disk -> {valkey, false};
                              link_valkey_diskless -> {valkey, true};
                              link_valkey_big -> {valkey, false}
                          end,
    case lists:member(Version, nsync_test_redis:available_versions()) of
        false -> {skip, {no_redis, Version}};
        true ->
            {ok, Server} = nsync_test_redis:start(#{version => Version, diskless => Diskless}),
            [{server, Server}, {version, Version} | Config]
    end.

-spec end_per_testcase(atom(), list()) -> ok.
end_per_testcase(_Case, Config) ->
    case proplists:get_value(link, Config) of
        undefined -> ok;
        _ -> ok
    end,
    case proplists:get_value(server, Config) of
        undefined -> ok;
        Server -> nsync_test_redis:stop(Server)
    end.

%%% ------------------------------------------------------------ cases

%% @doc Without the link: every command the workload runs on a 7.0 master is
%% applied (as the master propagates it) to a local mirror; zero mismatches.
-spec direct_7_0(list()) -> ok.
direct_7_0(Config) -> direct_case(Config, #{}).

%% @doc As direct_7_0 with a tiny big-value threshold: every collection of
%% more than 4 elements and string of more than 8 bytes is a big value
%% (`nsync_big'), so the workload runs through the big paths (in place,
%% projected, materialised, promoted and demoted); zero mismatches.
-spec direct_7_0_big(list()) -> ok.
direct_7_0_big(Config) ->
    direct_case(Config, #{big_threshold => #{elements => 4, bytes => 8}}).

direct_case(Config, Opts) ->
    Server = ?config(server, Config),
    Mirror0 = nsync_mirror:new(direct_mirror, 0, true, Opts),
    put(mirror, Mirror0),
    put(unhandled, #{}),
    Hook = fun(Db, [Cmd | Args]) ->
                   case nsync_apply:apply_cmd(get(mirror), Db, Cmd, Args) of
                       {ok, M} -> put(mirror, M);
                       {unhandled, C, M} ->
                           case length(get_list(first_unhandled)) < 15 of
                               true -> put(first_unhandled, [[Cmd | Args] | get_list(first_unhandled)]);
                               false -> ok
                           end,
                           put(unhandled, maps:update_with(C, fun(X) -> X + 1 end, 1, get(unhandled))),
                           put(mirror, M)
                   end
           end,
    Stats = nsync_workload:run(Server, #{seed => 2024, count => ?COUNT, version => '7.0',
                                         mode => direct, hook => Hook}),
    report(Stats),
    ct:pal("unhandled: ~p~nfirst: ~p", [get(unhandled), lists:reverse(get_list(first_unhandled))]),
    Tid = nsync_mirror:tid(get(mirror)),
    ct:pal("big values at the end: ~p of ~b keys", [big_kinds(Tid), ets:info(Tid, size)]),
    Mis = nsync_workload:compare(Server, Tid, #{version => '7.0'}),
    report_mismatches(Mis),
    nsync_mirror:delete(get(mirror)),
    ?assertEqual([], Mis),
    ?assertEqual(#{}, get(unhandled)),
    ok.

%% @doc As direct_7_0 with a key filter keeping about half the keys: each
%% command goes through the NIF's filter (`nsync_nif:filter_command/3',
%% what a link's pump does) and then to the mirror; afterwards the kept
%% keys equal the master's, but for the ones the mirror has as unknown
%% (`nsync_mirror:unknown_keys/2': written from keys left out), which are
%% absent. Their number is reported. The filter splits every key family,
%% so the workload's commands between keys of one family straddle it all
%% the time: the most unknown keys a filter can leave.
-spec direct_7_0_keys(list()) -> ok.
direct_7_0_keys(Config) ->
    {Straddles, _Unknown} = direct_keys(Config, ?KEYS),
    ?assert(Straddles > 100).

%% @doc As direct_7_0_keys with a filter keeping whole key families (lists,
%% sets, zsets, hashes, strings, counters, streams; not HyperLogLogs, GEO,
%% bitmaps and a few others): only commands between kept and other
%% families straddle it, and none of them writes a kept key: no kept key is unknown.
-spec direct_7_0_families(list()) -> ok.
direct_7_0_families(Config) ->
    {_Straddles, Unknown} = direct_keys(Config, ?FAMILIES),
    ?assertEqual([], Unknown).

direct_keys(Config, Filter) ->
    Server = ?config(server, Config),
    {ok, Opts} = nsync_opts:validate([{keys, Filter}]),
    {ok, NifConfig} = nsync_opts:nif_config(Opts),
    {ok, Nif} = nsync_nif:open(NifConfig),
    put(mirror, nsync_mirror:new(direct_keys, 0)),
    put(unhandled, #{}),
    put(decisions, #{}),
    Apply = fun(Db, Cmd, Args, Out) ->
                    case nsync_apply:apply_cmd(get(mirror), Db, Cmd, Args, Out) of
                        {ok, M} -> put(mirror, M);
                        {unhandled, C, M} ->
                            put(unhandled, maps:update_with(C, fun(X) -> X + 1 end, 1, get(unhandled))),
                            put(mirror, M)
                    end
            end,
    Hook = fun(Db, [Cmd | Args] = Command) ->
                   Decision = nsync_nif:filter_command(Nif, Db, Command),
                   put(decisions, maps:update_with(element(1, {Decision}) , fun(X) -> X + 1 end, 1,
                                                   get(decisions))),
                   case Decision of
                       keep -> Apply(Db, Cmd, Args, []);
                       drop -> ok;
                       {only, [C | A]} -> Apply(Db, C, A, []);
                       {straddles, Out} -> Apply(Db, Cmd, Args, Out)
                   end
           end,
    Stats = nsync_workload:run(Server, #{seed => 2024, count => ?COUNT, version => '7.0',
                                         mode => direct, hook => Hook}),
    report(Stats),
    Keep = fun(K) -> nsync_nif:keeps(Nif, 0, K) end,
    Mis = nsync_workload:compare(Server, nsync_mirror:tid(get(mirror)),
                                 #{version => '7.0', keep => Keep}),
    Unknown = nsync_mirror:unknown_keys(get(mirror), 0),
    Decisions = maps:fold(fun(D, N, Acc) when is_atom(D) -> Acc#{D => N};
                             ({Tag, _}, N, Acc) -> maps:update_with(Tag, fun(X) -> X + N end, N, Acc)
                          end, #{}, get(decisions)),
    Kept = [K || K <- nsync_test_events:master_keys(Server), Keep(K)],
    ct:pal("filter: ~p~nunhandled: ~p~n~b of the master's ~b kept keys unknown: ~p",
           [Decisions, get(unhandled), length(Unknown), length(Kept), Unknown]),
    report_mismatches(Mis),
    nsync_mirror:delete(get(mirror)),
    %% every difference is a key the mirror knows it does not know
    ?assertEqual([], [M || M <- Mis, not unknowable(M, Unknown)]),
    ?assert(lists:all(Keep, Unknown)),
    {maps:get(straddles, Decisions, 0), Unknown}.

unknowable({missing_in_mirror, K, _Type}, Unknown) -> lists:member(K, Unknown);
unknowable(_, _) -> false.

%% @doc Redis 7.0, diskless, through a real link with the key filter of
%% direct_7_0_keys, killed and resumed in the middle: the mirror holds no
%% key left out and no wrong value; kept keys it lacks are those it has as
%% unknown (reported with the `unhandled' count).
-spec link_7_0_keys(list()) -> ok.
link_7_0_keys(Config) -> link_case(Config, [{keys, ?KEYS}]).

%% @doc Redis 7.0, disk-based sync: nsync mirrors the workload, link killed
%% and resumed in the middle; zero mismatches once the link has caught up.
-spec link_7_0_disk(list()) -> ok.
link_7_0_disk(Config) -> link_case(Config).
%% @doc As link_7_0_disk with a tiny big-value threshold (collections of
%% more than 4 elements): the snapshot's collections come from the pump as
%% big values, and the stream applies to them in place; zero mismatches.
-spec link_7_0_big(list()) -> ok.
link_7_0_big(Config) -> link_case(Config, [{big_threshold, 4}]).
%% @doc Redis 7.0, diskless sync; as link_7_0_disk.
-spec link_7_0_diskless(list()) -> ok.
link_7_0_diskless(Config) -> link_case(Config).
%% @doc Redis 6.2 (relative expiry forms, older propagation), disk sync.
-spec link_6_2_disk(list()) -> ok.
link_6_2_disk(Config) -> link_case(Config).
%% @doc Redis 6.2, diskless sync.
-spec link_6_2_diskless(list()) -> ok.
link_6_2_diskless(Config) -> link_case(Config).
%% @doc Valkey 8.1, disk sync.
-spec link_valkey_disk(list()) -> ok.
link_valkey_disk(Config) -> link_case(Config).
%% @doc Valkey 8.1, diskless sync.
-spec link_valkey_diskless(list()) -> ok.
link_valkey_diskless(Config) -> link_case(Config).
%% @doc As link_7_0_big with Valkey 8.1: streams, their groups and
%% metadata (XINFO STREAM FULL) equal the master's as big values.
-spec link_valkey_big(list()) -> ok.
link_valkey_big(Config) -> link_case(Config, [{big_threshold, 4}]).

link_case(Config) -> link_case(Config, []).

%% How many keys of table `Tid' hold big values, by type.
big_kinds(Tid) ->
    lists:foldl(fun(H, Acc) -> maps:update_with(nsync_big:kind(H), fun(N) -> N + 1 end, 1, Acc) end,
                #{}, [V || {_, V} <- ets:tab2list(Tid), nsync_big:is_handle(V)]).

link_case(Config, Opts) ->
    Server = ?config(server, Config),
    Version = ?config(version, Config),
    Port = nsync_test_redis:port(Server),
    %% some data before the link so the snapshot carries every type
    _ = nsync_workload:run(Server, #{seed => 7, count => 500, version => Version, mode => link}),
    {ok, Link} = nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true}, {timeout, 60000}
                                   | Opts]),
    Big = fun() -> big_kinds(nsync:tid()) end,
    ct:pal("big values after the snapshot: ~p", [Big()]),
    try
        Kill = fun() ->
                       N = nsync_test_redis:cmd(Server, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
                       ct:pal("killed ~p replica link(s)", [N])
               end,
        Stats = nsync_workload:run(Server, #{seed => 99, count => ?COUNT, version => Version, mode => link,
                                             at => [{?COUNT div 2, Kill}]}),
        report(Stats),
        %% let the short expiries fire, then make the master notice them
        timer:sleep(2500),
        touch_all(Server),
        ok = wait_acked(Server, 60),
        Status = nsync:status(Link),
        ct:pal("link status: ~p", [Status]),
        ct:pal("big values at the end: ~p", [Big()]),
        case lists:keyfind(keys, 1, Opts) of
            false ->
                Mis = nsync_workload:compare(Server, nsync:tid(), #{version => Version}),
                report_mismatches(Mis),
                ?assertEqual([], Mis),
                ?assertMatch(#{unhandled := 0}, Status);
            {keys, Filters} ->
                {ok, FilterOpts} = nsync_opts:validate([{keys, Filters}]),
                {ok, NifConfig} = nsync_opts:nif_config(FilterOpts),
                {ok, Nif} = nsync_nif:open(NifConfig),
                Keep = fun(K) -> nsync_nif:keeps(Nif, 0, K) end,
                Mis = nsync_workload:compare(Server, nsync:tid(), #{version => Version, keep => Keep}),
                report_mismatches(Mis),
                Missing = [K || {missing_in_mirror, K, _} <- Mis],
                ct:pal("~b kept keys unknown (~b unhandled)", [length(Missing),
                                                               maps:get(unhandled, Status)]),
                ?assertEqual([], [M || M <- Mis, element(1, M) =/= missing_in_mirror]),
                ?assert(length(Missing) =< maps:get(unhandled, Status)),
                ?assertEqual([], [K || {K, _} <- ets:tab2list(nsync:tid()), not Keep(K)])
        end
    after
        unlink(Link),
        nsync:stop(Link)
    end,
    ok.

%% @doc Redis 7.0 through the real replication stream, read by a minimal
%% test replica (PSYNC, snapshot of an empty db skipped, RESP commands applied
%% with `nsync_apply:apply_cmd/4', ACKs, link killed and resumed with
%% PSYNC replid offset): the mirror's logic over the forms the master really
%% propagates, independent of the NIF link; zero mismatches.
-spec stream_7_0(list()) -> ok.
stream_7_0(Config) -> stream_case(Config).
%% @doc As stream_7_0 with Redis 6.2 (relative expiry forms).
-spec stream_6_2(list()) -> ok.
stream_6_2(Config) -> stream_case(Config).
%% @doc As stream_7_0 with Valkey 8.1.
-spec stream_valkey(list()) -> ok.
stream_valkey(Config) -> stream_case(Config).

stream_case(Config) ->
    Server = ?config(server, Config),
    Version = ?config(version, Config),
    Reader = nsync_mirror_test_replica:start(nsync_test_redis:port(Server)),
    Kill = fun() ->
                   N = nsync_test_redis:cmd(Server, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
                   ct:pal("killed ~p replica link(s)", [N])
           end,
    Stats = nsync_workload:run(Server, #{seed => 31337, count => ?COUNT, version => Version, mode => link,
                                         at => [{?COUNT div 2, Kill}]}),
    report(Stats),
    timer:sleep(2500),
    touch_all(Server),
    ok = wait_offset(Server, Reader, 60),
    #{tid := Tid, unhandled := Unhandled, resumes := Resumes} = nsync_mirror_test_replica:status(Reader),
    ct:pal("unhandled: ~p; partial resyncs: ~p", [Unhandled, Resumes]),
    Mis = nsync_workload:compare(Server, Tid, #{version => Version}),
    report_mismatches(Mis),
    nsync_mirror_test_replica:stop(Reader),
    ?assertEqual([], Mis),
    ?assertEqual(#{}, Unhandled),
    ?assert(Resumes >= 1),
    ok.

wait_offset(_Server, _Reader, 0) -> {error, not_caught_up};
wait_offset(Server, Reader, N) ->
    Info = nsync_test_redis:info(Server, <<"replication">>),
    Master = binary_to_integer(maps:get(<<"master_repl_offset">>, Info)),
    case maps:get(offset, nsync_mirror_test_replica:status(Reader)) >= Master of
        true -> ok;
        false -> timer:sleep(500), wait_offset(Server, Reader, N - 1)
    end.

%% @doc A master with `hll-sparse-max-bytes 500' and a link told so: its
%% HyperLogLogs turn dense where the master's do, and equal its GET bytes.
-spec settings_hll_7_0(list()) -> ok.
settings_hll_7_0(Config) ->
    Server = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(Server, [<<"CONFIG">>, <<"SET">>, <<"hll-sparse-max-bytes">>, <<"500">>]),
    {ok, Link} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(Server)},
                                   {block, true}, {hll_sparse_max_bytes, 500}]),
    try
        [begin
             _ = nsync_test_redis:cmd(Server, [<<"PFADD">>, <<"h">> | [integer_to_binary(I * 97 + J) || J <- lists:seq(1, 40)]]),
             _ = nsync_test_redis:cmd(Server, [<<"PFCOUNT">>, <<"h">>]),
             Want = nsync_test_redis:cmd(Server, [<<"GET">>, <<"h">>]),
             ok = eventually(fun() -> [{<<"h">>, Want}] =:= nsync:lookup(nsync, <<"h">>) end, 100)
         end || I <- lists:seq(1, 12)],
        %% it did turn dense on the way
        <<"HYLL", 0, _/binary>> = nsync_test_redis:cmd(Server, [<<"GET">>, <<"h">>]),
        ?assertMatch(#{unhandled := 0}, nsync:status(Link))
    after
        unlink(Link),
        nsync:stop(Link)
    end.

%% @doc A Redis 6.2 master and a link told its distance formula: a stored
%% search over points that share longitudes (where 7.0's formula differs)
%% equals the master's, scores as doubles.
-spec settings_geo_6_2(list()) -> ok.
settings_geo_6_2(Config) ->
    Server = ?config(server, Config),
    {ok, Link} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(Server)},
                                   {block, true}, {geo_formula, before_7_0}]),
    try
        %% one longitude, latitudes 38 to 84.62: the two formulas differ in
        %% the last bit for some of these distances (73.52 and 84.62 from 38)
        Points = lists:append([[<<"13.5">>, float_to_binary(38.0 + I * 0.37, [{decimals, 6}]),
                                <<"p", (integer_to_binary(I))/binary>>] || I <- lists:seq(0, 126)]),
        _ = nsync_test_redis:cmd(Server, [<<"GEOADD">>, <<"g">> | Points]),
        Stored = fun(Args) ->
                         _ = nsync_test_redis:cmd(Server, Args),
                         Want = nsync_workload:pairs(nsync_test_redis:cmd(
                                                       Server, [<<"ZRANGE">>, <<"d">>, <<"0">>, <<"-1">>, <<"WITHSCORES">>])),
                         [_ | _] = Want,
                         ok = eventually(fun() -> [{<<"d">>, Want}] =:= nsync:lookup(nsync, <<"d">>) end, 100)
                 end,
        Stored([<<"GEORADIUSBYMEMBER">>, <<"g">>, <<"p0">>, <<"6000">>, <<"km">>, <<"STOREDIST">>, <<"d">>]),
        Stored([<<"GEOSEARCHSTORE">>, <<"d">>, <<"g">>, <<"FROMLONLAT">>, <<"13.5">>, <<"38.2">>,
                <<"BYBOX">>, <<"200">>, <<"300">>, <<"km">>, <<"DESC">>, <<"COUNT">>, <<"7">>, <<"STOREDIST">>]),
        ?assertMatch(#{unhandled := 0}, nsync:status(Link))
    after
        unlink(Link),
        nsync:stop(Link)
    end.

%%% ------------------------------------------------------------ helpers

get_list(K) -> case get(K) of undefined -> []; L -> L end.

report(#{commands := N, names := Names}) ->
    ct:pal("workload: ~b commands, ~b distinct command names~n~p",
           [N, map_size(Names), lists:sort(maps:to_list(Names))]).

report_mismatches(Mis) ->
    ct:pal("~b mismatches~n~p", [length(Mis), lists:sublist(Mis, 30)]).

%% SCAN every key and EXISTS it, so that the master expires (and propagates
%% the DEL of) every key whose time has passed.
touch_all(Server) ->
    touch_all(Server, <<"0">>).
touch_all(Server, Cursor) ->
    [Next, Keys] = nsync_test_redis:cmd(Server, [<<"SCAN">>, Cursor, <<"COUNT">>, <<"1000">>]),
    [nsync_test_redis:cmd(Server, [<<"EXISTS">>, K]) || K <- Keys],
    case Next of
        <<"0">> -> ok;
        _ -> touch_all(Server, Next)
    end.

%% Waits until the replica has acknowledged the master's offset.
%% Polls `Check' every 50 ms until it holds.
eventually(Check, 0) -> {error, Check()};
eventually(Check, N) ->
    case Check() of
        true -> ok;
        false -> timer:sleep(50), eventually(Check, N - 1)
    end.

wait_acked(_Server, 0) -> {error, not_acked};
wait_acked(Server, N) ->
    Info = nsync_test_redis:info(Server, <<"replication">>),
    Master = binary_to_integer(maps:get(<<"master_repl_offset">>, Info)),
    Acked = case maps:get(<<"slave0">>, Info, undefined) of
                undefined -> -1;
                S ->
                    Fields = maps:from_list([list_to_tuple(binary:split(F, <<"=">>))
                                             || F <- binary:split(S, <<",">>, [global])]),
                    binary_to_integer(maps:get(<<"offset">>, Fields, <<"-1">>))
            end,
    case Acked >= Master of
        true -> ok;
        false -> timer:sleep(1000), wait_acked(Server, N - 1)
    end.
