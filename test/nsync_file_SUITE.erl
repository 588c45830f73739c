%%% @doc `nsync:load_file/2': RDB files and DUMP payloads loaded into the
%%% tables a link would make of them. Every file of the shared corpus
%%% (against its expected-contents JSON, or its known error), a file a real
%%% server saved against a link to that server (the same tables, row for
%%% row), truncated and corrupted files, DUMP payloads of a real server,
%%% callbacks and routing, filters, and how a loaded file shares table names
%%% with links.
-module(nsync_file_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([corpus/1, same_as_link/1, truncated/1, corrupted/1, dump_payload/1,
         callback_and_routing/1, filters/1, names/1, max_value_bytes/1]).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {minutes, 5}}].

-spec all() -> [atom()].
all() -> [corpus, same_as_link, truncated, corrupted, dump_payload, callback_and_routing,
          filters, names, max_value_bytes].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    {ok, Root} = nsync_test_redis:project_root(),
    Corpus = case os:getenv("RDB_CORPUS") of
                 Dir when is_list(Dir), Dir =/= "" -> Dir;
                 _ -> filename:join([Root, "..", "shared", "rdb-corpus"])
             end,
    true = filelib:is_dir(Corpus),
    [{corpus, Corpus} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) -> ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) when Case =:= same_as_link; Case =:= dump_payload;
                                     Case =:= names; Case =:= max_value_bytes ->
    {ok, S} = nsync_test_redis:start(#{version => '7.0'}),
    [{server, S} | Config];
init_per_testcase(_Case, Config) ->
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    case proplists:get_value(server, Config) of
        undefined -> ok;
        S -> nsync_test_redis:stop(S)
    end.

%%% ------------------------------------------------------------- cases

%% @doc Every RDB file of the corpus: those with an expected-contents JSON
%% load into tables equal to it (values, key and field expiries, every
%% database); the others give the error the parser's own corpus test
%% expects, or load.
-spec corpus(ct_suite:ct_config()) -> ok.
corpus(Config) ->
    Corpus = ?config(corpus, Config),
    Files = lists:sort(filelib:wildcard("**/*.rdb", Corpus)),
    ?assert(length(Files) > 90),
    Results = [{File, corpus_file(filename:join(Corpus, File))} || File <- Files],
    Loaded = [F || {F, {loaded, _}} <- Results],
    Keys = lists:sum([N || {_, {loaded, N}} <- Results]),
    ct:pal("~b files, ~b loaded (~b keys): ~p", [length(Files), length(Loaded), Keys,
                                                  [R || {_, R} = FR <- Results,
                                                        element(1, element(2, FR)) =/= loaded]]),
    ?assertEqual([], [{F, R} || {F, R} <- Results, element(1, R) =:= mismatch]),
    ok.

corpus_file(Path) ->
    Name = list_to_atom("corpus_" ++ integer_to_list(erlang:unique_integer([positive]))),
    Json = json_of(Path),
    Result = nsync:load_file(Path, [{db, all}, {name, Name}]),
    try
        case {Result, Json} of
            {{ok, _Pid}, {ok, Expected}} ->
                case compare(Name, Expected) of
                    [] -> {loaded, key_count(Expected)};
                    Mis -> {mismatch, lists:sublist(Mis, 5)}
                end;
            {{error, Reason}, {ok, _}} ->
                {mismatch, {error, Reason}};
            {_, none} ->
                expected_without_json(filename:basename(Path, ".rdb"), Path, Result)
        end
    after
        case Result of
            {ok, Pid} -> unlink(Pid), nsync:stop(Pid);
            _ -> ok
        end
    end.

json_of(Path) ->
    Base = filename:rootname(filename:rootname(Path, ".rdb"), ".nocompress"),
    case filelib:is_file(Base ++ ".json") of
        true -> {ok, nsync_test_json:file(Base ++ ".json")};
        false -> none
    end.

%% As nsync_core's tests/corpus.rs: files without JSON and how they end.
expected_without_json("future_v19", _, {error, {rdb, unsupported_version, _}} = E) -> {error, E};
expected_without_json("invalid_chksum_v8", _, {error, {rdb, checksum_mismatch, _}} = E) -> {error, E};
expected_without_json("redis_ent_opcode_ram_lru", _, {error, {rdb, unknown_opcode, _}} = E) -> {error, E};
expected_without_json(Name, Path, {error, {rdb, unsupported, _}} = E)
  when Name =:= "function"; Name =:= "module" ->
    case string:find(Path, "replicator") of
        nomatch -> {mismatch, E};
        _ -> {error, E}
    end;
expected_without_json(Name, Path, {ok, _}) ->
    case Name =:= "misc_with_stream" orelse string:find(Name, "module") =/= nomatch of
        true -> {loaded, 0};
        false -> {mismatch, {loaded_without_json, Path}}
    end;
expected_without_json(_Name, _Path, Other) ->
    {mismatch, Other}.

key_count(#{<<"dbs">> := Dbs}) ->
    lists:sum([map_size(Keys) || Keys <- maps:values(Dbs)]).

%% The mirror's tables against the JSON: what the oracle held (on
%% 2026-11-22) minus what has expired since (the file is loaded now).
compare(Name, #{<<"dbs">> := Dbs}) ->
    Now = erlang:system_time(millisecond),
    lists:append(
      [begin
           Db = binary_to_integer(DbBin),
           Tid = nsync:tid(Name, Db),
           Rows = case Tid of undefined -> []; _ -> ets:tab2list(Tid) end,
           Missing = [{missing, Db, K} || {K0, E} <- maps:to_list(Keys),
                                          K <- [json_key(K0)],
                                          not expired(maps:get(<<"expire_at_ms">>, E), Now),
                                          Tid =:= undefined orelse ets:lookup(Tid, K) =:= []],
           Json = json_keys(Keys),
           Extra = [{extra, Db, K} || {K, _} <- Rows, not is_map_key(K, Json)],
           %% (read with lookup/2: a big value's row holds its handle)
           Values = [{value, Db, K, Mis} || {K, _} <- Rows,
                                            #{K := E} <- [Json],
                                            [{_, V}] <- [nsync:lookup(Tid, K)],
                                            Mis <- [compare_entry(Tid, K, V, E, Now)],
                                            Mis =/= ok],
           Missing ++ Extra ++ Values
       end || {DbBin, Keys} <- maps:to_list(Dbs)])
        ++ [{extra_db, Db} || Db <- lists:seq(0, 15), nsync:tid(Name, Db) =/= undefined,
                              ets:info(nsync:tid(Name, Db), size) > 0,
                              not is_map_key(integer_to_binary(Db), Dbs)].

json_keys(Keys) ->
    maps:from_list([{json_key(K), E} || {K, E} <- maps:to_list(Keys)]).

json_key(<<"base64:", B64/binary>>) -> base64:decode(B64);
json_key(K) -> K.

expired(null, _Now) -> false;
expired(At, Now) -> At < Now.

compare_entry(Tid, K, V, #{<<"type">> := Type, <<"value">> := JV} = E, Now) ->
    Ttl = case maps:get(<<"expire_at_ms">>, E) of null -> undefined; T -> T end,
    FieldTtls = maps:from_list([{json_key(F), At} || {F, At} <- maps:to_list(
                                                                  maps:get(<<"field_expire_at_ms">>, E, #{}))]),
    %% hash fields that have expired since the oracle loaded the file
    Gone = [F || {F, At} <- maps:to_list(FieldTtls), At < Now],
    {Expected, Got} = case Type of
                          <<"hash">> -> {maps:without(Gone, expected(Type, JV)), maps:without(Gone, V)};
                          <<"stream">> -> {expected(Type, JV), stream_of(V)};
                          <<"zset">> -> {expected(Type, JV), [{plus_zero(S), M} || {S, M} <- V]};
                          _ -> {expected(Type, JV), V}
                      end,
    ExpectedFields = maps:without(Gone, FieldTtls),
    case {Got =:= Expected, nsync:ttl(Tid, K), nsync_mirror:field_ttls(Tid, K)} of
        {true, Ttl, ExpectedFields} -> ok;
        %% expired while the test ran
        {true, not_found, _} when is_integer(Ttl), Ttl < Now + 60000 -> ok;
        {Same, GotTtl, GotFields} ->
            {Type, [value || not Same], {ttl, Ttl, GotTtl}, {fields, ExpectedFields, GotFields}}
    end.

expected(<<"string">>, V) -> bytes(V);
expected(<<"list">>, V) -> [bytes(E) || E <- V];
expected(<<"set">>, V) -> lists:sort([bytes(E) || E <- V]);
expected(<<"zset">>, V) -> [{score(S), bytes(M)} || [M, S] <- V];
expected(<<"stream">>, V) -> stream_of(stream_json(V));
expected(<<"hash">>, V) -> maps:from_list([{json_key(F), bytes(X)} || {F, X} <- maps:to_list(V)]).

%% The JSON's stream in the mirror's shape (the parts the JSON has).
stream_json(#{<<"entries">> := Es, <<"length">> := Len, <<"last_id">> := Last} = V) ->
    {stream, [{id(Id), [bytes(X) || X <- Fs]} || [Id, Fs] <- Es],
     #{length => Len, last_id => id(Last),
       groups => [#{name => bytes(N), last_delivered_id => id(D),
                    pending => [{id(P), 0, 0} || P <- Pending],
                    consumers => [#{name => bytes(CN), pending => [id(P) || P <- CP]}
                                  || #{<<"name">> := CN, <<"pending">> := CP} <- Cs]}
                  || #{<<"name">> := N, <<"last_delivered_id">> := D, <<"pending">> := Pending,
                       <<"consumers">> := Cs} <- maps:get(<<"groups">>, V, [])]}}.

%% What the JSON says of a stream: its entries (with each field once: the
%% oracle read them into a map), length, last id and groups.
stream_of({stream, Entries, #{length := Len, last_id := Last, groups := Groups}}) ->
    {[{Id, once(Fs, [])} || {Id, Fs} <- Entries], Len, Last,
     lists:sort([{N, D, [Id || {Id, _, _} <- P],
                  lists:sort([{CN, CP} || #{name := CN, pending := CP} <- Cs])}
                 || #{name := N, last_delivered_id := D, pending := P, consumers := Cs} <- Groups])}.

%% Field-value pairs with each field once, the last value kept, in first
%% appearance order.
once([F, V | Rest], Acc) ->
    once(Rest, case lists:keymember(F, 1, Acc) of
                   true -> lists:keyreplace(F, 1, Acc, {F, V});
                   false -> Acc ++ [{F, V}]
               end);
once([], Acc) ->
    lists:append([[F, V] || {F, V} <- Acc]).

bytes(#{<<"base64">> := B64}) -> base64:decode(B64);
bytes(B) when is_binary(B) -> B.

score(<<"inf">>) -> inf;
score(<<"-inf">>) -> '-inf';
score(N) -> float(N) + 0.0.

%% The oracle wrote integral scores as integers: -0.0 became 0.
plus_zero(S) when is_float(S) -> S + 0.0;
plus_zero(S) -> S.

id(Text) ->
    [Ms, Seq] = binary:split(Text, <<"-">>),
    {binary_to_integer(Ms), binary_to_integer(Seq)}.

%% @doc A real Redis 7.0 with a workload's data (every type, expiries, two
%% databases, big values), saved: loading its dump.rdb gives the very
%% tables a link to that server builds (values, key and field expiries).
-spec same_as_link(ct_suite:ct_config()) -> ok.
same_as_link(Config) ->
    S = ?config(server, Config),
    _ = nsync_workload:run(S, #{seed => 11, count => 3000, version => '7.0', mode => link}),
    %% the short expiries pass, and the master drops those keys
    timer:sleep(2500),
    {ok, Sock} = nsync_test_redis:connect(S),
    [_ = nsync_test_redis:cmd_sock(Sock, [<<"EXISTS">>, K])
     || K <- nsync_test_redis:cmd_sock(Sock, [<<"KEYS">>, <<"*">>])],
    <<"OK">> = nsync_test_redis:cmd_sock(Sock, [<<"SELECT">>, <<"1">>]),
    [_ = nsync_test_redis:cmd_sock(Sock, [<<"EXISTS">>, K])
     || K <- nsync_test_redis:cmd_sock(Sock, [<<"KEYS">>, <<"*">>])],
    gen_tcp:close(Sock),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SAVE">>]),
    Dump = filename:join(nsync_test_redis:dir(S), "dump.rdb"),
    {ok, Link} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)},
                                   {block, true}, {timeout, 30000}, {db, all}, {name, via_link}]),
    {ok, File} = nsync:load_file(Dump, [{db, all}, {name, via_file}]),
    try
        #{keys_loaded := N, state := loaded, tables := [via_file]} = nsync:status(File),
        ?assert(N > 100),
        [begin
             Tl = nsync:tid(via_link, Db),
             Tf = nsync:tid(via_file, Db),
             ?assertEqual({Db, []}, {Db, differences(Tl, Tf)})
         end || Db <- [0, 1]],
        ct:pal("~b keys, the same rows through the link and from the file", [N])
    after
        unlink(Link), nsync:stop(Link),
        unlink(File), nsync:stop(File)
    end.

%% The keys whose value or expiries differ between two mirror tables (read
%% with lookup/2: a big value's row holds its handle).
differences(A, B) ->
    Keys = lists:usort([K || T <- [A, B], {K, _} <- ets:tab2list(T)]),
    Entry = fun(T, K) -> {nsync:lookup(T, K), nsync:ttl(T, K), nsync_mirror:field_ttls(T, K)} end,
    [{K, Entry(A, K), Entry(B, K)} || K <- Keys, Entry(A, K) =/= Entry(B, K)].

%% @doc A file cut short anywhere gives `{error, {rdb, truncated, Size}}'
%% (the name is free again afterwards); an empty file too.
-spec truncated(ct_suite:ct_config()) -> ok.
truncated(Config) ->
    {ok, Whole} = file:read_file(filename:join(?config(corpus, Config),
                                               "generated/redis-7.0.15.rdb")),
    Path = filename:join(?config(priv_dir, Config), "cut.rdb"),
    Size = byte_size(Whole),
    Cuts = [0, 1, 5, 9, 10, 100, 1000, Size div 3, Size div 2, Size - 9, Size - 1]
        ++ [rand:uniform(Size - 1) || _ <- lists:seq(1, 20)],
    [begin
         ok = file:write_file(Path, binary_part(Whole, 0, Cut)),
         ?assertEqual({error, {rdb, truncated, Cut}}, nsync:load_file(Path, [])),
         undefined = nsync:tid()
     end || Cut <- Cuts],
    ok.

%% @doc Bytes flipped anywhere, or a length that lies: a typed error (never
%% a crash), and nothing left behind.
-spec corrupted(ct_suite:ct_config()) -> ok.
corrupted(Config) ->
    {ok, Whole} = file:read_file(filename:join(?config(corpus, Config),
                                               "generated/redis-7.0.15.nocompress.rdb")),
    Path = filename:join(?config(priv_dir, Config), "bad.rdb"),
    Size = byte_size(Whole),
    Kinds = [begin
                 <<Before:At/binary, B, After/binary>> = Whole,
                 ok = file:write_file(Path, <<Before/binary, (B bxor (1 bsl rand:uniform(7))), After/binary>>),
                 case nsync:load_file(Path, []) of
                     {error, {rdb, Kind, Offset}} when is_integer(Offset) -> Kind;
                     %% a flip inside a value may still parse (no checksum)
                     {ok, Pid} -> unlink(Pid), nsync:stop(Pid), loaded
                 end
             end || At <- [0, 5, 9] ++ [rand:uniform(Size - 1) || _ <- lists:seq(1, 40)]],
    ct:pal("flips: ~p", [lists:sort(Kinds)]),
    ?assertMatch([bad_magic | _], Kinds),
    %% a string whose length claims 3 GB, in a file with a checksum
    ok = file:write_file(Path, <<"REDIS0009", 254, 0, 0, 3, "foo", 16#80, 16#C0, 0, 0, 0, "x">>),
    {error, {rdb, too_large, _}} = nsync:load_file(Path, []),
    {ok, Flipped} = file:read_file(filename:join(?config(corpus, Config),
                                                 "generated/redis-7.0.15.rdb")),
    Mid = byte_size(Flipped) div 2,
    <<A:Mid/binary, C, Z/binary>> = Flipped,
    ok = file:write_file(Path, <<A/binary, (C bxor 1), Z/binary>>),
    {error, {rdb, _, _}} = nsync:load_file(Path, []),
    undefined = nsync:tid(),
    ok.

%% @doc DUMP payloads of a real Redis 7.0 (a string, an integer, a list, a
%% set, a zset, a big hash, a stream) saved to files load, with `{key, K}',
%% as the values a link mirrors for those keys; a corrupted payload gives
%% `{rdb, checksum_mismatch, _}'.
-spec dump_payload(ct_suite:ct_config()) -> ok.
dump_payload(Config) ->
    S = ?config(server, Config),
    Cmds = [[<<"SET">>, <<"s">>, <<"hello">>], [<<"SET">>, <<"i">>, <<"-42">>],
            [<<"RPUSH">>, <<"l">>, <<"a">>, <<"b">>, <<"c">>],
            [<<"SADD">>, <<"S">>, <<"x">>, <<"1">>, <<"y">>],
            [<<"ZADD">>, <<"z">>, <<"1.5">>, <<"m">>, <<"-inf">>, <<"n">>],
            [<<"HSET">>, <<"h">> | lists:append([[<<"f", (integer_to_binary(I))/binary>>, <<"v">>]
                                                  || I <- lists:seq(1, 200)])],
            [<<"XADD">>, <<"x">>, <<"1-1">>, <<"f">>, <<"v">>]],
    [_ = nsync_test_redis:cmd(S, C) || C <- Cmds],
    Keys = [K || [_, K | _] <- Cmds],
    {ok, Link} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)},
                                   {block, true}, {timeout, 30000}, {name, dump_link}]),
    Dir = ?config(priv_dir, Config),
    try
        [begin
             Payload = nsync_test_redis:cmd(S, [<<"DUMP">>, K]),
             Path = filename:join(Dir, "payload.dump"),
             ok = file:write_file(Path, Payload),
             {ok, Pid} = nsync:load_file(Path, [{key, <<"as-", K/binary>>}, {name, dump_file}]),
             [{_, Value}] = nsync:lookup(dump_link, K),
             ?assertEqual([{<<"as-", K/binary>>, Value}],
                          nsync:lookup(dump_file, <<"as-", K/binary>>)),
             ?assertEqual(1, ets:info(nsync:tid(dump_file), size)),
             unlink(Pid),
             nsync:stop(Pid)
         end || K <- Keys],
        Payload = nsync_test_redis:cmd(S, [<<"DUMP">>, <<"l">>]),
        <<Head:3/binary, B, Tail/binary>> = Payload,
        Bad = filename:join(Dir, "bad.dump"),
        ok = file:write_file(Bad, <<Head/binary, (B bxor 1), Tail/binary>>),
        {error, {rdb, checksum_mismatch, _}} = nsync:load_file(Bad, [{key, "l"}]),
        ok = file:write_file(Bad, <<>>),
        {error, {rdb, corrupt, 0}} = nsync:load_file(Bad, [{key, "l"}])
    after
        unlink(Link), nsync:stop(Link)
    end.

%% @doc A callback gets `{load, K, V}' for every key and `{load, eof}', and
%% its return values route keys to tables; `status/1' reports `loaded'.
-spec callback_and_routing(ct_suite:ct_config()) -> ok.
callback_and_routing(Config) ->
    Path = filename:join(?config(corpus, Config), "generated/redis-7.0.15.rdb"),
    Self = self(),
    Cb = fun({load, <<"list:", _/binary>>, _} = E) -> Self ! E, lists_table;
            ({load, _, _} = E) -> Self ! E, skip;
            (E) -> Self ! E, ok
         end,
    {ok, Pid} = nsync:load_file(Path, [{callback, Cb}]),
    try
        Events = drain([]),
        Loads = [K || {load, K, _} <- Events],
        ?assertEqual({load, eof}, lists:last(Events)),
        #{keys_loaded := N, state := loaded, tables := [lists_table]} = nsync:status(Pid),
        ?assertEqual(N, length(Loads)),
        Lists = [K || <<"list:", _/binary>> = K <- Loads],
        ?assert(length(Lists) > 2),
        ?assertEqual(lists:sort(Lists),
                     lists:sort([K || {K, _} <- ets:tab2list(nsync:tid(lists_table))])),
        %% the process keeps its tables, and nothing more arrives
        timer:sleep(200),
        ?assertEqual([], drain([])),
        true = is_process_alive(Pid)
    after
        unlink(Pid), nsync:stop(Pid)
    end,
    undefined = nsync:tid(lists_table),
    ok.

drain(Acc) ->
    receive
        {load, _, _} = E -> drain([E | Acc]);
        {load, eof} = E -> drain([E | Acc])
    after 100 -> lists:reverse(Acc)
    end.

%% @doc The `db' and `keys' options filter a file as they filter a link.
-spec filters(ct_suite:ct_config()) -> ok.
filters(Config) ->
    Path = filename:join(?config(corpus, Config), "generated/redis-7.0.15.rdb"),
    #{<<"dbs">> := Dbs} = nsync_test_json:file(filename:rootname(Path) ++ ".json"),
    Now = erlang:system_time(millisecond),
    Alive = fun(Db) -> [json_key(K) || {K, E} <- maps:to_list(maps:get(Db, Dbs)),
                                       not expired(maps:get(<<"expire_at_ms">>, E), Now)] end,
    Load = fun(Opts) ->
                   {ok, Pid} = nsync:load_file(Path, Opts),
                   Got = lists:sort([{Db, K} || {Db, Tid} <- [{Db, nsync:tid(nsync, Db)}
                                                              || Db <- lists:seq(0, 15)],
                                                Tid =/= undefined, {K, _} <- ets:tab2list(Tid)]),
                   unlink(Pid),
                   nsync:stop(Pid),
                   Got
           end,
    Want = fun(Db, Pred) -> lists:sort([{Db, K} || K <- Alive(integer_to_binary(Db)), Pred(K)]) end,
    All = fun(_) -> true end,
    ?assertEqual(Want(1, All), Load([{db, 1}])),
    ?assertEqual(Want(0, All) ++ Want(15, All), Load([{keys, [{db, [0, 15]}]}])),
    Hashes = fun(K) -> binary:longest_common_prefix([K, <<"hash:">>]) =:= 5 end,
    ?assertEqual(Want(0, Hashes), Load([{keys, [{prefix, <<"hash:">>}]}])),
    Ints = fun(K) -> nsync_core_glob(<<"str:int:1[0-5]">>, K) end,
    ?assertEqual(Want(0, Ints), Load([{keys, [{match, "str:int:1[0-5]"}]}])),
    ?assertEqual(length(Want(0, Ints)), 6),
    ok.

%% The few patterns `filters' uses, as plain Erlang.
nsync_core_glob(<<"str:int:1[0-5]">>, K) ->
    case K of
        <<"str:int:1", D>> -> D >= $0 andalso D =< $5;
        _ -> false
    end.

%% @doc Table names are node-wide: a file cannot take the name of a live
%% link nor a link that of a loaded file (`{error, {already_started, Pid}}');
%% a loaded file under another name serves reads until it is stopped, while
%% the link mirrors the master.
-spec names(ct_suite:ct_config()) -> ok.
names(Config) ->
    S = ?config(server, Config),
    ok = nsync_test_redis:set_keys(S, <<"k:">>, 1, 100, <<"v">>),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SAVE">>]),
    Dump = filename:join(nsync_test_redis:dir(S), "dump.rdb"),
    Opts = [{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)}, {block, true},
            {timeout, 30000}],
    {ok, Link} = nsync:start_link(Opts),
    ?assertEqual({error, {already_started, Link}}, nsync:load_file(Dump, [])),
    unlink(Link), nsync:stop(Link),
    {ok, File} = nsync:load_file(Dump, []),
    ?assertEqual({error, {already_started, File}}, nsync:start_link(Opts)),
    unlink(File), nsync:stop(File),
    %% a warm start: the backup under its own name, then the link
    {ok, Warm} = nsync:load_file(Dump, [{name, warm}]),
    {ok, Link2} = nsync:start_link(Opts),
    ?assertEqual(lists:sort(ets:tab2list(nsync:tid(warm))), lists:sort(ets:tab2list(nsync:tid()))),
    ?assertEqual(100, ets:info(nsync:tid(warm), size)),
    unlink(Warm), nsync:stop(Warm),
    undefined = nsync:tid(warm),
    unlink(Link2), nsync:stop(Link2),
    ok.

%% @doc `{max_value_bytes, N}': a file a real server saved with a value over
%% `N' (a string, then a hash whose fields and values together are) gives
%% `{error, {too_large, #{key, bytes, limit}}}' at once, the caller alive
%% and no table or process left behind; with a limit the values fit, the
%% same file loads all of them.
-spec max_value_bytes(ct_suite:ct_config()) -> ok.
max_value_bytes(Config) ->
    S = ?config(server, Config),
    ok = nsync_test_redis:set_keys(S, <<"small:">>, 1, 50, <<"v">>),
    %% random bytes: LZF cannot shrink them, the file holds them as they are
    Big = crypto:strong_rand_bytes(5000),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"big">>, Big]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SAVE">>]),
    Dump = filename:join(nsync_test_redis:dir(S), "dump.rdb"),
    {links, Before} = process_info(self(), links),
    ?assertMatch({error, {too_large, #{key := <<"big">>, bytes := 5000, limit := 4096}}},
                 nsync:load_file(Dump, [{max_value_bytes, 4096}])),
    ?assertEqual(undefined, nsync:tid()),
    ?assertEqual({links, Before}, process_info(self(), links)),
    %% a collection counts its elements together: 40 fields of 100 bytes
    1 = nsync_test_redis:cmd(S, [<<"DEL">>, <<"big">>]),
    Fields = lists:append([[<<"f", (integer_to_binary(I))/binary>>, crypto:strong_rand_bytes(100)]
                           || I <- lists:seq(10, 49)]),
    40 = nsync_test_redis:cmd(S, [<<"HSET">>, <<"hash">> | Fields]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SAVE">>]),
    {error, {too_large, #{key := <<"hash">>, bytes := HashBytes, limit := 4096}}} =
        nsync:load_file(Dump, [{max_value_bytes, 4096}]),
    ?assert(HashBytes > 4096),
    ?assertEqual(undefined, nsync:tid()),
    {ok, Pid} = nsync:load_file(Dump, [{max_value_bytes, 8192}]),
    try
        #{keys_loaded := 51, state := loaded} = nsync:status(Pid),
        [{<<"hash">>, Hash}] = nsync:lookup(nsync:tid(), <<"hash">>),
        ?assertEqual(40, map_size(Hash))
    after
        unlink(Pid), nsync:stop(Pid)
    end.
