#!/usr/bin/env escript
%% The Erlang half of `make demo' (scripts/demo.sh starts the master and
%% writes the first keys): mirror the master, print the mirror, then write
%% more keys over a plain client socket and show each arriving in ETS;
%% last, have the master SAVE and load its dump.rdb with nsync:load_file/2,
%% keeping only some keys (a key filter).
-mode(compile).

main([PortText, Dir]) ->
    Port = list_to_integer(PortText),
    T0 = erlang:monotonic_time(microsecond),
    {ok, Link} = nsync:start_link([{host, "127.0.0.1"}, {port, Port},
                                   {block, true}, {timeout, 30000}]),
    Loaded = erlang:monotonic_time(microsecond) - T0,
    #{keys_loaded := Keys} = nsync:status(Link),
    io:format("~nnsync: full sync of ~b keys (all dbs) in ~.1f ms; the ETS mirror of db 0 holds:~n",
              [Keys, Loaded / 1000]),
    [io:format("  ~-12s ~p~n", [K, V]) || {K, V} <- lists:sort(ets:tab2list(nsync:tid()))],
    io:format("~nWriting to the master; each key read back from ETS as it arrives:~n"),
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, line}]),
    lists:foreach(fun(Cmd) -> write_and_watch(Sock, Cmd) end,
                  [[<<"SET">>, <<"fresh">>, <<"from the master">>],
                   [<<"INCRBY">>, <<"counter">>, <<"100">>],
                   [<<"RPUSH">>, <<"queue">>, <<"job4">>],
                   [<<"HSET">>, <<"user:1">>, <<"lang">>, <<"elixir">>],
                   [<<"ZINCRBY">>, <<"board">>, <<"15">>, <<"alice">>],
                   [<<"SET">>, <<"short-lived">>, <<"x">>, <<"PX">>, <<"60000">>],
                   [<<"DEL">>, <<"greeting">>]]),
    Status = nsync:status(Link),
    io:format("~nnsync:status/1: ~p~n", [maps:with([state, replid, offset, keys_loaded, commands], Status)]),
    io:format("nsync:ttl(nsync, <<\"short-lived\">>) = ~p (ms since the epoch)~n",
              [nsync:ttl(nsync, <<"short-lived">>)]),
    ok = nsync:stop(Link),
    load_backup(Port, filename:join(Dir, "dump.rdb"));
main(_) ->
    io:format(standard_error, "usage: demo.escript PORT DIR~n", []),
    halt(2).

%% The master saves its dataset; nsync loads the file (as a backup would be
%% inspected, or a node warm-started) with a key filter.
load_backup(Port, Dump) ->
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, line}]),
    ok = gen_tcp:send(Sock, resp([<<"SAVE">>])),
    {ok, <<"+OK\r\n">>} = gen_tcp:recv(Sock, 0, 30000),
    gen_tcp:close(Sock),
    Filter = [{prefix, "user:"}, {match, "q*"}],
    T0 = erlang:monotonic_time(microsecond),
    {ok, Backup} = nsync:load_file(Dump, [{name, backup}, {keys, Filter}]),
    Micros = erlang:monotonic_time(microsecond) - T0,
    io:format("~nnsync:load_file(~s, [{name, backup}, {keys, ~0p}]) in ~.1f ms:~n",
              [Dump, Filter, Micros / 1000]),
    [io:format("  ~-12s ~p~n", [K, V]) || {K, V} <- lists:sort(ets:tab2list(nsync:tid(backup)))],
    io:format("nsync:status/1: ~p~n", [maps:with([state, keys_loaded], nsync:status(Backup))]),
    ok = nsync:stop(Backup).

write_and_watch(Sock, [_, Key | _] = Cmd) ->
    Before = nsync:lookup(nsync, Key),
    T0 = erlang:monotonic_time(microsecond),
    ok = gen_tcp:send(Sock, resp(Cmd)),
    {ok, _Reply} = gen_tcp:recv(Sock, 0, 5000),
    After = wait_change(Key, Before, T0 + 5000000),
    Micros = erlang:monotonic_time(microsecond) - T0,
    io:format("  ~-40s -> ~p  (~b us after the write)~n",
              [lists:join(" ", Cmd), shown(After), Micros]).

wait_change(Key, Before, Deadline) ->
    case nsync:lookup(nsync, Key) of
        Before ->
            case erlang:monotonic_time(microsecond) > Deadline of
                true -> Before;
                false -> erlang:yield(), wait_change(Key, Before, Deadline)
            end;
        After -> After
    end.

shown([{_, Value}]) -> Value;
shown([]) -> absent.

resp(Args) ->
    [<<"*">>, integer_to_binary(length(Args)), <<"\r\n">>
     | [[<<"$">>, integer_to_binary(byte_size(A)), <<"\r\n">>, A, <<"\r\n">>] || A <- Args]].
