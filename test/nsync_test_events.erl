%% @doc Test helper for the nsync suites: callbacks that forward events to a
%% test process as plain messages (so every callback form is observed the
%% same way as the pid form), and receive/wait helpers.
-module(nsync_test_events).

-export([sink/1, sink/2, next/1, collect_load/1, collect_cmds/2,
         no_event/1, flush/0, wait_until/2, master_keys/1, mirror_keys/1]).

-define(SINK, nsync_test_sink).

%% @doc `{M, F}' callback: forwards to the process registered as
%% `nsync_test_sink'.
-spec sink(term()) -> ok.
sink(Event) ->
    ?SINK ! Event,
    ok.

%% @doc `{M, F, [Pid]}' callback: forwards to `Pid'.
-spec sink(pid(), term()) -> ok.
sink(Pid, Event) ->
    Pid ! Event,
    ok.

%% @doc The next nsync event in the mailbox, or `timeout'.
-spec next(timeout()) -> term().
next(Timeout) ->
    receive
        {load, _, _} = E -> E;
        {load, eof} = E -> E;
        {cmd, _, _} = E -> E;
        {error, _} = E -> E
    after Timeout -> timeout
    end.

%% @doc The `{load, K, V}' events up to `{load, eof}', as `[{K, V}]' in order.
%% Fails on any other event in between.
-spec collect_load(timeout()) -> [{binary(), term()}].
collect_load(Timeout) ->
    collect_load(Timeout, []).

collect_load(Timeout, Acc) ->
    case next(Timeout) of
        {load, eof} -> lists:reverse(Acc);
        {load, K, V} -> collect_load(Timeout, [{K, V} | Acc]);
        Other -> error({unexpected_event, Other, lists:reverse(Acc)})
    end.

%% @doc The next `N' events, which must be `{cmd, Cmd, Args}', as `{Cmd, Args}'.
-spec collect_cmds(non_neg_integer(), timeout()) -> [{binary(), [binary()]}].
collect_cmds(0, _Timeout) ->
    [];
collect_cmds(N, Timeout) ->
    case next(Timeout) of
        {cmd, C, A} -> [{C, A} | collect_cmds(N - 1, Timeout)];
        Other -> error({unexpected_event, Other})
    end.

%% @doc Asserts that no nsync event arrives within `Timeout'.
-spec no_event(timeout()) -> ok.
no_event(Timeout) ->
    case next(Timeout) of
        timeout -> ok;
        Other -> error({unexpected_event, Other})
    end.

%% @doc Drops all nsync events in the mailbox.
-spec flush() -> ok.
flush() ->
    case next(0) of
        timeout -> ok;
        _ -> flush()
    end.

%% @doc Polls `Fun' every 20 ms until it returns true; fails after `Timeout' ms.
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_loop(Fun, Deadline).

wait_loop(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error(wait_until_timeout);
                false -> timer:sleep(20), wait_loop(Fun, Deadline)
            end
    end.

%% @doc All keys of db 0 of the master, sorted.
-spec master_keys(nsync_test_redis:server()) -> [binary()].
master_keys(Server) ->
    lists:sort(scan(Server, <<"0">>, [])).

scan(Server, Cursor, Acc) ->
    [Next, Keys] = nsync_test_redis:cmd(Server, [<<"SCAN">>, Cursor, <<"COUNT">>, <<"1000">>]),
    case Next of
        <<"0">> -> Keys ++ Acc;
        _ -> scan(Server, Next, Keys ++ Acc)
    end.

%% @doc All keys of a mirror table, sorted.
-spec mirror_keys(ets:tid()) -> [binary()].
mirror_keys(Tid) ->
    lists:sort([K || {K, _} <- ets:tab2list(Tid)]).
