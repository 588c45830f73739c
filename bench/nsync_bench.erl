%%% @doc The nsync side of the full-sync, memory, live-stream and apply-rate
%%% benchmarks (issues 4 and 5). bench/report.py compiles this module into a
%%% temp dir and runs each measurement in a fresh VM:
%%%
%%%   erl -noshell -pa _build/default/lib/nsync/ebin -pa DIR \
%%%       -run nsync_bench main fullsync ets|noop PORT
%%%       -run nsync_bench main serve PORT
%%%
%%% `fullsync' starts a link to 127.0.0.1:PORT, waits for `{load, eof}' and
%%% prints one line `RESULT {json}' (time, ETS memory, VmHWM/VmRSS, CPU),
%%% then halts. `serve' starts a link with the default ETS mirror, prints
%%% `READY', then answers commands read from stdin, one a line:
%%%   `suspend'         suspends the link process (the stream backs up in the
%%%                     socket and the master's output buffer) -> `SUSPENDED'
%%%   `resume OFFSET'   resumes it and, like `wait', answers once applied
%%%   `wait OFFSET'     polls nsync:status/1 every 0.5 ms until its offset
%%%                     (the position of the last event applied) is >= OFFSET
%%%                     -> `RESULT {json}' (elapsed, commands applied)
%%%   `quit'
-module(nsync_bench).

-export([main/1]).

main(["fullsync", Mode, Port]) ->
    run(fun() -> fullsync(list_to_atom(Mode), list_to_integer(Port)) end);
main(["serve", Port]) ->
    run(fun() -> serve(list_to_integer(Port)) end).

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

fullsync(Mode, Port) ->
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
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true},
                                  {timeout, 900000} | Cb]),
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

%%% ------------------------------------------------------------ serve

serve(Port) ->
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, Port}, {block, true},
                                  {timeout, 900000}]),
    io:format("READY~n"),
    loop(Pid, undefined).

loop(Pid, Saved) ->
    case io:get_line("") of
        eof -> ok;
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["quit"] ->
                    ok;
                ["suspend"] ->
                    %% a status call would block while suspended: read the
                    %% counter first
                    #{commands := C0} = nsync:status(Pid),
                    true = erlang:suspend_process(Pid),
                    io:format("SUSPENDED~n"),
                    loop(Pid, C0);
                ["resume", Off] ->
                    T0 = now_us(),
                    true = erlang:resume_process(Pid),
                    wait(Pid, list_to_integer(Off), T0, Saved),
                    loop(Pid, undefined);
                ["wait", Off] ->
                    T0 = now_us(),
                    #{commands := C0} = nsync:status(Pid),
                    wait(Pid, list_to_integer(Off), T0, C0),
                    loop(Pid, undefined);
                Other ->
                    io:format("ERROR ~0p~n", [{unknown, Other}]),
                    loop(Pid, Saved)
            end
    end.

wait(Pid, Target, T0, C0) ->
    #{offset := Off, commands := C} = nsync:status(Pid),
    case is_integer(Off) andalso Off >= Target of
        true ->
            T1 = now_us(),
            result(#{kind => wait, seconds => (T1 - T0) / 1.0e6, offset => Off,
                     commands => C - C0, commands_total => C,
                     unhandled => maps:get(unhandled, nsync:status(Pid)),
                     rss => proc_status("VmRSS"), hwm => proc_status("VmHWM"),
                     ets_bytes => ets:info(nsync:tid(), memory)
                                  * erlang:system_info(wordsize)});
        false ->
            receive after 0 -> ok end,
            busy_sleep_us(500),
            wait(Pid, Target, T0, C0)
    end.

%% timer:sleep has 1 ms granularity; poll a bit finer without spinning hard.
busy_sleep_us(Us) ->
    Deadline = now_us() + Us,
    receive after 0 -> ok end,
    spin(Deadline).

spin(Deadline) ->
    case now_us() >= Deadline of
        true -> ok;
        false -> erlang:yield(), spin(Deadline)
    end.

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
