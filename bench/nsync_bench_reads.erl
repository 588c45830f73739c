%%% @doc The read path (issue 15's "Reads"): lookups on the mirror from
%%% reader processes, run by bench/reads.py in a fresh VM:
%%%
%%%   erl -noshell -pa _build/default/{lib,checkouts}/*/ebin -pa DIR \
%%%       -run nsync_bench_reads main PORT
%%%
%%% Starts a link (default ETS mirror) to 127.0.0.1:PORT, waits for the
%%% load, prints `READY', then answers commands read from stdin, one a line:
%%%   `reads KIND READERS SECONDS KEYS'  READERS processes read for SECONDS
%%%       (throughput), then each times LAT_CALLS calls one by one
%%%       (latency) -> `RESULT {json}': reads per second (all readers), the
%%%       latency percentiles in ns, and the commands the link applied
%%%       meanwhile (per second). KIND: `ets' (`ets:lookup/2' of a string
%%%       key `key:%012d', N < KEYS), `lookup' (`nsync:lookup/2' of it),
%%%       `hget' (`nsync:hget/3' of field `f:%012d' of the big hash `h').
%%%   `quit'
%%% The keys are redis-benchmark's `__rand_int__' form, so its GETs against
%%% the master read the same keys.
-module(nsync_bench_reads).

-export([main/1]).

-define(LAT_CALLS, 200000).
%% the full sync's bound (reads.py waits a little longer for READY)
-define(LOAD_TIMEOUT_MS, 240000).
%% random keys each reader cycles through (made before timing)
-define(KEYS_PER_READER, 65536).
%% what a reader may take beyond its reading time (making its keys, timing
%% LAT_CALLS calls one by one), and for its latencies after its count
-define(READER_SLACK_MS, 60000).

main([Port]) ->
    try
        _ = code:ensure_loaded(nsync_nif),
        {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, list_to_integer(Port)},
                                      {block, true}, {timeout, ?LOAD_TIMEOUT_MS}]),
        io:format("READY~n"),
        loop(Pid),
        halt(0)
    catch
        C:R:S ->
            io:format("ERROR ~0p~n", [{C, R, S}]),
            halt(1)
    end.

loop(Pid) ->
    case io:get_line("") of
        eof -> ok;
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["quit"] -> ok;
                ["reads", Kind, Readers, Seconds, Keys] ->
                    reads(Pid, list_to_atom(Kind), list_to_integer(Readers),
                          list_to_integer(Seconds), list_to_integer(Keys)),
                    loop(Pid);
                Other ->
                    io:format("ERROR ~0p~n", [{unknown, Other}]),
                    loop(Pid)
            end
    end.

reads(Pid, Kind, Readers, Seconds, Keys) ->
    Tid = nsync:tid(),
    Self = self(),
    #{commands := C0} = nsync:status(Pid),
    T0 = now_ns(),
    Ps = [element(1, spawn_monitor(fun() -> reader(Self, Kind, Tid, Seconds, Keys, I) end))
          || I <- lists:seq(1, Readers)],
    %% bounded: a reader that fails or stalls ends the run with an ERROR line
    Bound = Seconds * 1000 + ?READER_SLACK_MS,
    Counts = [from_reader(count, P, Bound) || P <- Ps],
    T1 = now_ns(),
    #{commands := C1} = nsync:status(Pid),
    Lats = lists:merge([from_reader(lat, P, ?READER_SLACK_MS) || P <- Ps]),
    Overhead = timer_overhead(),
    Total = lists:sum(Counts),
    N = length(Lats),
    result(#{kind => Kind, readers => Readers, reads => Total,
             reads_per_s => Total / ((T1 - T0) / 1.0e9),
             p50_ns => pct(Lats, N, 0.50), p90_ns => pct(Lats, N, 0.90),
             p99_ns => pct(Lats, N, 0.99), p999_ns => pct(Lats, N, 0.999),
             max_ns => lists:last(Lats), timer_ns => Overhead,
             link_cmds_per_s => (C1 - C0) / ((T1 - T0) / 1.0e9)}).

from_reader(Tag, P, Ms) ->
    receive
        {Tag, P, X} -> X;
        {'DOWN', _, process, P, Reason} when Reason =/= normal -> error({reader_failed, Reason})
    after Ms ->
        error({reader_stalled, Tag, Ms})
    end.

%% A reader: throughput for Seconds, then LAT_CALLS calls timed one by one;
%% both results go to Parent (the latencies sorted). Wrong answers crash it.
reader(Parent, Kind, Tid, Seconds, Keys, Seed) ->
    rand:seed(exsss, {Seed, 17, 42}),
    Args = list_to_tuple([arg(Kind, rand:uniform(Keys) - 1) || _ <- lists:seq(1, ?KEYS_PER_READER)]),
    Read = read_fun(Kind, Tid),
    check(Kind, Read(element(1, Args))),
    Deadline = now_ns() + Seconds * 1000000000,
    Count = throughput(Read, Args, 1, Deadline, 0),
    Parent ! {count, self(), Count},
    Parent ! {lat, self(), lists:sort(latencies(Read, Args, 1, ?LAT_CALLS, []))}.

arg(hget, I) -> iolist_to_binary(io_lib:format("f:~12..0B", [I]));
arg(_, I) -> iolist_to_binary(io_lib:format("key:~12..0B", [I])).

read_fun(ets, Tid) -> fun(K) -> ets:lookup(Tid, K) end;
read_fun(lookup, Tid) -> fun(K) -> nsync:lookup(Tid, K) end;
read_fun(hget, Tid) -> fun(F) -> nsync:hget(Tid, <<"h">>, F) end.

check(hget, V) when is_binary(V) -> ok;
check(_, [{_, V}]) when is_binary(V) -> ok.

%% Reads in rounds of 1000, looking at the clock between rounds.
throughput(Read, Args, I, Deadline, Count) ->
    I1 = round(Read, Args, I, 1000),
    case now_ns() >= Deadline of
        true -> Count + 1000;
        false -> throughput(Read, Args, I1, Deadline, Count + 1000)
    end.

round(_Read, _Args, I, 0) -> I;
round(Read, Args, I, N) ->
    _ = Read(element(I, Args)),
    round(Read, Args, next(I), N - 1).

latencies(_Read, _Args, _I, 0, Acc) -> Acc;
latencies(Read, Args, I, N, Acc) ->
    K = element(I, Args),
    T0 = erlang:monotonic_time(nanosecond),
    _ = Read(K),
    T1 = erlang:monotonic_time(nanosecond),
    latencies(Read, Args, next(I), N - 1, [T1 - T0 | Acc]).

next(?KEYS_PER_READER) -> 1;
next(I) -> I + 1.

%% What two clock reads alone measure (the median), included in every
%% latency above.
timer_overhead() ->
    L = lists:sort([begin
                        T0 = erlang:monotonic_time(nanosecond),
                        T1 = erlang:monotonic_time(nanosecond),
                        T1 - T0
                    end || _ <- lists:seq(1, 10000)]),
    lists:nth(5000, L).

pct(Sorted, N, P) ->
    lists:nth(max(1, min(N, round(N * P))), Sorted).

now_ns() ->
    erlang:monotonic_time(nanosecond).

result(Map) ->
    io:format("RESULT ~s~n", [json(Map)]).

json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(K), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(A) when is_atom(A) -> ["\"", atom_to_list(A), "\""];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [short]).
