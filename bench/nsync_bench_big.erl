%%% @doc Big values (issue 13 item 1, issue 15's "big collections" row).
%%% bench/big.sh runs, each in a fresh VM:
%%%
%%%   erl -noshell -pa _build/default/{lib,checkouts}/*/ebin -pa DIR \
%%%       -run nsync_bench_big main threshold
%%%       -run nsync_bench_big main storm MASTER_PORT REPLICA_PORT
%%%
%%% `threshold' (no server): for values of N elements held as terms (big
%%% values off) and as big values, the time of one write through
%%% `nsync_apply:apply_cmd/4', of one element read, of a whole-value read
%%% (`ets:lookup/2' of the term, `nsync:lookup/2'), and the memory per
%%% element; the default threshold is chosen from it.
%%%
%%% `storm': the master holds a 1M-field hash, 1M-member set and zset, a
%%% 1M-element list, a 1M-entry stream and a 100 MB string (written by
%%% bench/big.sh), which a real replica (`--replicaof') and nsync both
%%% load; then, per type, a storm of writes to the master (pipelined, one
%%% per element), each followed by a sentinel that tells when nsync and
%%% the replica have applied it all.
%%% Prints `RESULT {json}' lines: memory (nsync's estimate and the
%%% replica's MEMORY USAGE per value, BEAM RSS and the replica's
%%% used_memory), and per storm the writes per second of each, nsync's
%%% CPU time per write beside the replica's, and BEAM RSS during the storm
%%% against at rest.
-module(nsync_bench_big).

-export([main/1]).

main(["threshold"]) -> run(fun threshold/0);
main(["storm", Master, Replica]) ->
    run(fun() -> storm(list_to_integer(Master), list_to_integer(Replica)) end).

run(F) ->
    try
        F(),
        halt(0)
    catch
        C:R:S ->
            io:format("ERROR ~0p~n", [{C, R, S}]),
            halt(1)
    end.

%%% ------------------------------------------------------------ threshold

-define(SIZES, [16, 64, 128, 256, 512, 1024, 4096, 16384]).
%% Writes per value: 2000, fewer for big N, where a write to a term copies
%% all N elements (a 16384-member zset term: 28 ms a write; 2000 of them
%% took minutes on a loaded machine), so that each size costs about the
%% same (N x writes <= 2M element copies), 100 at least.
-define(WRITES(N), max(100, min(2000, 2000000 div N))).

threshold() ->
    _ = code:ensure_loaded(nsync_nif),
    [threshold(Kind, N) || Kind <- [hash, set, zset, list], N <- ?SIZES],
    ok.

threshold(Kind, N) ->
    Small = measure(Kind, N, off),
    Big = measure(Kind, N, 1),
    result(#{part => threshold, kind => Kind, n => N,
             term_write_us => maps:get(write_us, Small), big_write_us => maps:get(write_us, Big),
             term_elem_read_us => maps:get(read_us, Small), big_elem_read_us => maps:get(read_us, Big),
             term_value_read_us => maps:get(value_us, Small), big_value_read_us => maps:get(value_us, Big),
             term_bytes_per_elem => maps:get(bytes, Small) / N,
             big_bytes_per_elem => maps:get(bytes, Big) / N}).

e(I) -> <<"e", (integer_to_binary(I + 1000000))/binary>>.

fill(hash, N) -> [<<"hset">>, <<"k">> | lists:append([[e(I), e(I)] || I <- lists:seq(1, N)])];
fill(set, N) -> [<<"sadd">>, <<"k">> | [e(I) || I <- lists:seq(1, N)]];
fill(zset, N) -> [<<"zadd">>, <<"k">> | lists:append([[integer_to_binary(I), e(I)] || I <- lists:seq(1, N)])];
fill(list, N) -> [<<"rpush">>, <<"k">> | [e(I) || I <- lists:seq(1, N)]].

%% Writes that keep the size: one command per write.
writes(hash, N, I) -> [[<<"hset">>, <<"k">>, e(I rem N + 1), e(I)]];
writes(set, N, I) -> [[<<"srem">>, <<"k">>, e(I rem N + 1)], [<<"sadd">>, <<"k">>, e(I rem N + 1)]];
writes(zset, N, I) -> [[<<"zadd">>, <<"k">>, integer_to_binary(I), e(I rem N + 1)]];
writes(list, _N, I) -> [[<<"rpush">>, <<"k">>, e(I)], [<<"lpop">>, <<"k">>]].

read(hash, T, N, I) -> nsync:hget(T, <<"k">>, e(I rem N + 1));
read(set, T, N, I) -> nsync:sismember(T, <<"k">>, e(I rem N + 1));
read(zset, T, N, I) -> nsync:zscore(T, <<"k">>, e(I rem N + 1));
read(list, T, N, I) -> nsync:lrange(T, <<"k">>, I rem N, I rem N).

measure(Kind, N, Threshold) ->
    M0 = nsync_mirror:new(bench_big, 0, true, #{big_threshold => Threshold}),
    T = nsync_mirror:tid(M0),
    [C | A] = fill(Kind, N),
    {ok, M1} = nsync_apply:apply_cmd(M0, 0, C, A),
    Cmds = lists:append([writes(Kind, N, I) || I <- lists:seq(1, ?WRITES(N))]),
    {WUs, M2} = timer:tc(fun() ->
                                 lists:foldl(fun([C1 | A1], Acc) ->
                                                     {ok, Acc1} = nsync_apply:apply_cmd(Acc, 0, C1, A1),
                                                     Acc1
                                             end, M1, Cmds)
                         end),
    Reads = max(200, 200000 div N),
    {RUs, _} = timer:tc(fun() -> [read(Kind, T, N, I) || I <- lists:seq(1, Reads)] end),
    Values = max(20, 20000 div N),
    {VUs, _} = timer:tc(fun() -> [ets:lookup(T, <<"k">>) || _ <- lists:seq(1, Values)] end),
    {LUs, _} = timer:tc(fun() -> [nsync:lookup(T, <<"k">>) || _ <- lists:seq(1, Values)] end),
    [{_, V}] = ets:lookup(T, <<"k">>),
    Bytes = case nsync_big:is_handle(V) of
                true -> nsync_big:read(V, memory);
                false -> ets:info(T, memory) * erlang:system_info(wordsize)
            end,
    ValueUs = case nsync_big:is_handle(V) of
                  true -> LUs / Values;
                  false -> VUs / Values
              end,
    nsync_mirror:delete(M2),
    #{write_us => WUs / length(Cmds), read_us => RUs / Reads, value_us => ValueUs, bytes => Bytes}.

%%% ------------------------------------------------------------ storm

-define(N, 1000000).
-define(STORM, 100000).

storm(MPort, RPort) ->
    _ = code:ensure_loaded(nsync_nif),
    {ok, M} = connect(MPort),
    {ok, R} = connect(RPort),
    wait_replica(M, R),
    RssBefore = proc_status("VmRSS"),
    {ok, _Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, MPort}, {block, true},
                                   {timeout, 900000}]),
    erlang:garbage_collect(),
    Tid = nsync:tid(),
    Keys = [<<"h">>, <<"s">>, <<"z">>, <<"l">>, <<"x">>, <<"str">>],
    [begin
         [{_, H}] = ets:lookup(Tid, K),
         Big = nsync_big:is_handle(H),
         Nsync = case Big of
                     true -> nsync_big:read(H, memory);
                     false when is_binary(H) -> byte_size(H);
                     false -> erts_debug:flat_size(H) * erlang:system_info(wordsize)
                 end,
         Usage = cmd(R, [<<"MEMORY">>, <<"USAGE">>, K, <<"SAMPLES">>, <<"0">>]),
         result(#{part => memory, key => K, big => Big, nsync_bytes => Nsync, replica_bytes => Usage})
     end || K <- Keys],
    RssRest = proc_status("VmRSS"),
    result(#{part => memory, key => total, beam_rss_delta => RssRest - RssBefore,
             replica_used_memory => used_memory(R)}),
    Storms = [{hash, fun(I) -> [<<"HSET">>, <<"h">>, e(?N + I), e(I)] end},
              {set, fun(I) -> [<<"SADD">>, <<"s">>, e(?N + I)] end},
              {zset, fun(I) -> [<<"ZADD">>, <<"z">>, integer_to_binary(I), e(?N + I)] end},
              {list, fun(I) -> [<<"RPUSH">>, <<"l">>, e(I)] end},
              {stream, fun(I) -> [<<"XADD">>, <<"x">>, <<"*">>, <<"f">>, e(I)] end},
              {append, fun(I) -> [<<"APPEND">>, <<"str">>, e(I)] end}],
    RPid = replica_pid(R),
    [storm(Kind, Gen, M, R, RPid) || {Kind, Gen} <- Storms],
    ok.

storm(Kind, Gen, M, R, RPid) ->
    erlang:garbage_collect(),
    Rest = proc_status("VmRSS"),
    Sampler = spawn_link(fun() -> sample_rss(Rest) end),
    Sentinel = <<"sentinel:", (atom_to_binary(Kind))/binary>>,
    Cpu0 = cpu_s(self_stat()),
    RCpu0 = cpu_s(stat_of(RPid)),
    T0 = erlang:monotonic_time(microsecond),
    Replica = spawn_link(fun() -> wait_replica_key(R, Sentinel, T0) end),
    send_pipelined(M, [Gen(I) || I <- lists:seq(1, ?STORM)] ++ [[<<"SET">>, Sentinel, <<"1">>]]),
    Tn = await_key(Sentinel, T0),
    Cpu1 = cpu_s(self_stat()),
    Tr = receive {replica_done, Us} -> Us end,
    RCpu1 = cpu_s(stat_of(RPid)),
    _ = Replica,
    Sampler ! {stop, self()},
    Peak = receive {peak, P} -> P end,
    result(#{part => storm, kind => Kind, writes => ?STORM,
             nsync_s => Tn / 1.0e6, replica_s => Tr / 1.0e6,
             nsync_writes_per_s => ?STORM / (Tn / 1.0e6),
             replica_writes_per_s => ?STORM / (Tr / 1.0e6),
             nsync_cpu_us_per_write => (Cpu1 - Cpu0) * 1.0e6 / ?STORM,
             replica_cpu_us_per_write => (RCpu1 - RCpu0) * 1.0e6 / ?STORM,
             rss_rest => Rest, rss_peak => Peak}).

wait_replica(M, R) ->
    Off = info_field(cmd(M, [<<"INFO">>, <<"replication">>]), <<"master_repl_offset">>),
    wait_offset(R, Off).

wait_offset(R, Off) ->
    Info = cmd(R, [<<"INFO">>, <<"replication">>]),
    case info_field(Info, <<"master_link_status">>) =:= <<"up">> andalso
        binary_to_integer(info_field(Info, <<"slave_repl_offset">>)) >= binary_to_integer(Off) of
        true -> ok;
        false -> timer:sleep(100), wait_offset(R, Off)
    end.

wait_replica_key(R, Key, T0) ->
    case cmd(R, [<<"EXISTS">>, Key]) of
        1 -> whereis_parent() ! {replica_done, erlang:monotonic_time(microsecond) - T0};
        _ -> timer:sleep(1), wait_replica_key(R, Key, T0)
    end.

whereis_parent() ->
    {links, [P | _]} = process_info(self(), links),
    P.

await_key(Key, T0) ->
    case nsync:tid() of
        undefined -> timer:sleep(1), await_key(Key, T0);
        Tid ->
            case ets:member(Tid, Key) of
                true -> erlang:monotonic_time(microsecond) - T0;
                false -> timer:sleep(1), await_key(Key, T0)
            end
    end.

sample_rss(Peak) ->
    receive {stop, From} -> From ! {peak, max(Peak, proc_status("VmRSS"))}
    after 10 -> sample_rss(max(Peak, proc_status("VmRSS")))
    end.

used_memory(R) ->
    binary_to_integer(info_field(cmd(R, [<<"INFO">>, <<"memory">>]), <<"used_memory">>)).

replica_pid(R) ->
    binary_to_integer(info_field(cmd(R, [<<"INFO">>, <<"server">>]), <<"process_id">>)).

info_field(Info, Name) ->
    Lines = binary:split(Info, <<"\r\n">>, [global]),
    hd([V || L <- Lines, [N, V] <- [binary:split(L, <<":">>)], N =:= Name]).

%%% ------------------------------------------------------------ RESP

connect(Port) ->
    gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, raw}, {nodelay, true}]).

encode(Args) ->
    [<<"*">>, integer_to_binary(length(Args)), <<"\r\n">>
     | [[<<"$">>, integer_to_binary(byte_size(A)), <<"\r\n">>, A, <<"\r\n">>] || A <- Args]].

cmd(S, Args) ->
    ok = gen_tcp:send(S, encode(Args)),
    {Reply, <<>>} = reply(S, <<>>),
    Reply.

%% Sends commands in windows of 1000, reading their replies.
send_pipelined(_S, []) -> ok;
send_pipelined(S, Cmds) ->
    {Now, Later} = lists:split(min(1000, length(Cmds)), Cmds),
    ok = gen_tcp:send(S, [encode(C) || C <- Now]),
    read_replies(S, length(Now), <<>>),
    send_pipelined(S, Later).

read_replies(_S, 0, <<>>) -> ok;
read_replies(S, N, Buf) ->
    {_, Rest} = reply(S, Buf),
    read_replies(S, N - 1, Rest).

reply(S, Buf) ->
    case parse(Buf) of
        more -> {ok, More} = gen_tcp:recv(S, 0, 60000), reply(S, <<Buf/binary, More/binary>>);
        {R, Rest} -> {R, Rest}
    end.

parse(Buf) ->
    case binary:split(Buf, <<"\r\n">>) of
        [_] -> more;
        [<<"+", L/binary>>, Rest] -> {L, Rest};
        [<<"-", L/binary>>, Rest] -> {{error, L}, Rest};
        [<<":", L/binary>>, Rest] -> {binary_to_integer(L), Rest};
        [<<"$-1">>, Rest] -> {undefined, Rest};
        [<<"$", L/binary>>, Rest] ->
            Len = binary_to_integer(L),
            case Rest of
                <<V:Len/binary, "\r\n", Rest2/binary>> -> {V, Rest2};
                _ -> more
            end
    end.

%%% ------------------------------------------------------------ misc

proc_status(Field) ->
    {ok, B} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(B, <<"\n">>, [global]),
                   binary:match(L, list_to_binary(Field ++ ":")) =/= nomatch],
    [_, V | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(V) * 1024.

self_stat() -> "/proc/self/stat".
stat_of(Pid) -> "/proc/" ++ integer_to_list(Pid) ++ "/stat".

%% User + system CPU seconds of a process.
cpu_s(StatFile) ->
    {ok, B} = file:read_file(StatFile),
    [_, AfterComm] = binary:split(B, <<") ">>),
    F = binary:split(AfterComm, <<" ">>, [global]),
    (binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F))) / 100.

result(Map) ->
    io:format("RESULT ~s~n", [json(Map)]).

json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(K), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(A) when is_atom(A) -> ["\"", atom_to_list(A), "\""];
json(B) when is_binary(B) -> ["\"", B, "\""];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 3}]).
