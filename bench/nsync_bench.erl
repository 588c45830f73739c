%%% @doc The nsync side of the full-sync, memory, live-stream and apply-rate
%%% benchmarks (issues 4 and 5). bench/report.py compiles this module into a
%%% temp dir and runs each measurement in a fresh VM:
%%%
%%%   erl -noshell -pa _build/default/lib/nsync/ebin -pa DIR \
%%%       -run nsync_bench main fullsync ets|noop PORT [CAFILE]
%%%       -run nsync_bench main fullsync_keys ets|noop PORT KEYS
%%%       -run nsync_bench main loadfile ets|noop FILE [KEYS]
%%%       -run nsync_bench main serve PORT
%%%       -run nsync_bench main clustersync PORT
%%%
%%% `fullsync' starts a link to 127.0.0.1:PORT (over TLS, verified against
%%% CAFILE, when one is given), waits for `{load, eof}' and
%%% prints one line `RESULT {json}' (time, ETS memory, VmHWM/VmRSS, CPU),
%%% then halts. `fullsync_keys': the same with KEYS, an Erlang term
%%% (`[{match, <<"*0">>}]'), as the link's `keys' option. `loadfile'
%%% measures `nsync:load_file/2' of FILE alike. `clustersync' does what
%%% `fullsync' does for a Redis Cluster reached through the seed
%%% 127.0.0.1:PORT (one view for every shard). `serve' starts a link with
%%% the default ETS mirror, prints
%%% `READY', then answers commands read from stdin, one a line:
%%%   `suspend'         suspends the link process (sys:suspend/1) (the stream backs up in the
%%%                     socket and the master's output buffer) -> `SUSPENDED'
%%%   `resume KEY VAL'  resumes it and, like `waitkey', answers once applied
%%%   `waitkey KEY VAL' looks at the mirror every ms until it holds KEY = VAL
%%%                     (a sentinel written to the master after the load)
%%%                     -> `RESULT {json}' (elapsed, commands applied since
%%%                     `suspend')
%%%   `quit'
-module(nsync_bench).

-export([main/1]).

main(["fullsync", Mode, Port]) ->
    run(fun() -> fullsync(list_to_atom(Mode), {port, list_to_integer(Port)}, []) end);
main(["fullsync", Mode, Port, CaFile]) ->
    run(fun() -> fullsync(list_to_atom(Mode), {port, list_to_integer(Port)},
                          [{tls, [{cacertfile, CaFile}]}]) end);
main(["fullsync_keys", Mode, Port, Keys]) ->
    run(fun() -> fullsync(list_to_atom(Mode), {port, list_to_integer(Port)}, [{keys, term(Keys)}]) end);
main(["loadfile", Mode, File]) ->
    run(fun() -> fullsync(list_to_atom(Mode), {file, File}, []) end);
main(["loadfile", Mode, File, Keys]) ->
    run(fun() -> fullsync(list_to_atom(Mode), {file, File}, [{keys, term(Keys)}]) end);
main(["serve", Port]) ->
    run(fun() -> serve(list_to_integer(Port)) end);
main(["clustersync", Port]) ->
    run(fun() -> clustersync(list_to_integer(Port)) end).

run(F) ->
    try
        F(),
        halt(0)
    catch
        C:R:S ->
            io:format("ERROR ~0p~n", [{C, R, S}]),
            halt(1)
    end.

%%% ------------------------------------------------------------ full sync

term(Text) ->
    {ok, Tokens, _} = erl_scan:string(Text ++ "."),
    {ok, Term} = erl_parse:parse_term(Tokens),
    Term.

fullsync(Mode, Source, Opts) ->
    _ = code:ensure_loaded(nsync_nif),
    Self = self(),
    Cb = case Mode of
             ets -> [];
             noop -> [{callback, fun({load, eof}) -> Self ! {eof, now_us()}, ok;
                                    (_) -> ok
                                 end}]
         end,
    RssBefore = proc_status("VmRSS"),
    Cpu0 = cpu_s(),
    T0 = now_us(),
    {ok, Pid} = case Source of
                    {port, Port} ->
                        nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true},
                                          {timeout, 900000} | Cb ++ Opts]);
                    {file, File} ->
                        nsync:load_file(File, Cb ++ Opts)
                end,
    T1 = now_us(),
    Teof = case Mode of
               noop -> receive {eof, T} -> T after 5000 -> T1 end;
               ets -> T1
           end,
    Cpu1 = cpu_s(),
    Hwm = proc_status("VmHWM"),
    Rss = proc_status("VmRSS"),
    #{keys_loaded := Keys, offset := Offset} = nsync:status(Pid),
    {EtsBytes, Rows} =
        case Mode of
            ets ->
                Tid = nsync:tid(),
                Words = ets:info(Tid, memory) + expiry_words(Tid),
                {Words * erlang:system_info(wordsize), ets:info(Tid, size)};
            noop -> {0, 0}
        end,
    {memory, LinkHeap} = process_info(Pid, memory),
    %% RSS once the replaced (empty) tables are gone and the link has
    %% collected its garbage: what a long-running node keeps.
    erlang:garbage_collect(Pid),
    timer:sleep(100),
    RssSettled = proc_status("VmRSS"),
    result(#{kind => fullsync, mode => Mode, seconds => (Teof - T0) / 1.0e6,
             keys => Keys, rows => Rows, offset => Offset,
             ets_bytes => EtsBytes, link_proc_bytes => LinkHeap,
             rss_before => RssBefore, hwm => Hwm, rss_after => Rss,
             rss_settled => RssSettled, cpu_s => Cpu1 - Cpu0,
             erlang_memory_total => erlang:memory(total),
             erlang_memory_binary => erlang:memory(binary),
             erlang_memory_ets => erlang:memory(ets)}),
    nsync:stop(Pid).

%% The mirror's expiry table (rows only for keys with a TTL) counts too.
expiry_words(Tid) ->
    case persistent_term:get({nsync_mirror, Tid}, undefined) of
        undefined -> 0;
        Exp -> ets:info(Exp, memory)
    end.

%%% ------------------------------------------------------------ cluster

%% A cluster (seed 127.0.0.1:PORT) into one view: start to every shard
%% loaded (`{block, true}' returns when the view is published). nsync's
%% code is loaded before the clock starts, as the replicas it is compared
%% with are running servers (loading it on demand took ~50 ms of a ~1 s run).
clustersync(Port) ->
    ok = application:load(nsync),
    {ok, Modules} = application:get_key(nsync, modules),
    _ = [code:ensure_loaded(M) || M <- Modules],
    RssBefore = proc_status("VmRSS"),
    Cpu0 = cpu_s(),
    T0 = now_us(),
    {ok, Pid} = nsync:start_link([{cluster, [{"127.0.0.1", Port}]}, {block, true},
                                  {timeout, 900000}]),
    T1 = now_us(),
    Cpu1 = cpu_s(),
    Hwm = proc_status("VmHWM"),
    #{shards := Shards} = nsync:status(Pid),
    Tid = nsync:tid(),
    EtsBytes = (ets:info(Tid, memory) + expiry_words(Tid)) * erlang:system_info(wordsize),
    result(#{kind => clustersync, seconds => (T1 - T0) / 1.0e6, shards => length(Shards),
             keys => lists:sum([K || #{keys_loaded := K} <- Shards]),
             rows => ets:info(Tid, size), ets_bytes => EtsBytes,
             rss_before => RssBefore, hwm => Hwm, rss_after => proc_status("VmRSS"),
             cpu_s => Cpu1 - Cpu0}),
    nsync:stop(Pid).

%%% ------------------------------------------------------------ serve

serve(Port) ->
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true},
                                  {timeout, 900000}]),
    io:format("READY~n"),
    loop(Pid, 0).

loop(Pid, C0) ->
    case io:get_line("") of
        eof -> ok;
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["quit"] ->
                    ok;
                ["suspend"] ->
                    %% a suspended link handles no batch and gives its
                    %% pump no credit: the pump stops reading after 4
                    %% batches, and the stream waits in the socket and the
                    %% master's output buffer
                    #{commands := C} = nsync:status(Pid),
                    ok = sys:suspend(Pid, 5000),
                    io:format("SUSPENDED~n"),
                    loop(Pid, C);
                ["resume", Key, Val] ->
                    Prof = profile_start(Pid),
                    T0 = now_us(),
                    ok = sys:resume(Pid, 5000),
                    wait_key(Pid, list_to_binary(Key), list_to_binary(Val), T0, C0),
                    profile_stop(Prof),
                    loop(Pid, 0);
                ["waitkey", Key, Val] ->
                    T0 = now_us(),
                    wait_key(Pid, list_to_binary(Key), list_to_binary(Val), T0, C0),
                    loop(Pid, 0);
                Other ->
                    io:format("ERROR ~0p~n", [{unknown, Other}]),
                    loop(Pid, C0)
            end
    end.

%% Waits until the mirror holds Key = Val (a sentinel the master wrote after
%% the load: the stream is in order, so everything before it is applied),
%% looking at the table every millisecond (status/1's counters would not
%% say when the write is visible).
wait_key(Pid, Key, Val, T0, C0) ->
    await_key(Key, Val),
    T1 = now_us(),
    St = nsync:status(Pid),
    #{commands := C, unhandled := U, offset := Off} = St,
    result(#{kind => wait, seconds => (T1 - T0) / 1.0e6, offset => Off,
             commands => C - C0, commands_total => C, unhandled => U,
             rss => proc_status("VmRSS"), hwm => proc_status("VmHWM"),
             ets_bytes => ets:info(nsync:tid(), memory) * erlang:system_info(wordsize)}).

await_key(Key, Val) ->
    Found = case nsync:tid() of
                undefined -> false;
                Tid -> ets:lookup(Tid, Key) =:= [{Key, Val}]
            end,
    case Found of
        true -> ok;
        false -> receive after 1 -> await_key(Key, Val) end
    end.

%% NSYNC_BENCH_EPROF=File: eprof the link process while it applies the
%% backlog after `resume' (slows it down a lot), analysis written to File.
profile_start(Pid) ->
    case os:getenv("NSYNC_BENCH_EPROF") of
        F when is_list(F), F =/= "" ->
            {ok, _} = eprof:start(),
            profiling = eprof:start_profiling([Pid]),
            F;
        _ -> undefined
    end.

profile_stop(undefined) -> ok;
profile_stop(File) ->
    profiling_stopped = eprof:stop_profiling(),
    ok = eprof:log(File),
    eprof:analyze(total, [{sort, time}]),
    eprof:stop().

%%% ------------------------------------------------------------ helpers

now_us() ->
    erlang:monotonic_time(microsecond).

%% Bytes of a /proc/self/status field given in kB.
proc_status(Field) ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Bin, <<"\n">>, [global]),
                   binary:match(L, list_to_binary(Field ++ ":")) =:= {0, length(Field) + 1}],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb) * 1024.

%% CPU seconds (user + system) of the whole VM.
cpu_s() ->
    {ok, Bin} = file:read_file("/proc/self/stat"),
    [_, AfterComm] = binary:split(Bin, <<") ">>),
    Fields = binary:split(AfterComm, <<" ">>, [global]),
    %% fields 14 and 15 of stat (utime, stime) are 12th and 13th after comm
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks / 100.

result(Map) ->
    io:format("RESULT ~s~n", [json(Map)]).

json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(K), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(A) when is_atom(A) -> ["\"", atom_to_list(A), "\""];
json(B) when is_binary(B) -> ["\"", B, "\""];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [short]).
