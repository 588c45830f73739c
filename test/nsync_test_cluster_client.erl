%% @doc Test helper: a small cluster-aware client and a random write load
%% across the slots of a Redis Cluster.
%%
%% The client sends each command to the master of its key's slot
%% (`nsync_nif:key_slot/1', checked against `CLUSTER KEYSLOT' by the
%% cluster suite), learns the slot map from `CLUSTER SLOTS', follows
%% `-MOVED' (the slot has a new owner: remembered) and `-ASK' (one command
%% on the importing node, after `ASKING'), waits out `-TRYAGAIN',
%% `-CLUSTERDOWN' and `-LOADING', and reconnects (re-reading the slot map)
%% when a node goes away, as during a failover.
%%
%% The load (`start_load/2') is a process issuing seeded random writes of
%% every main type over a pool of keys spread over the slots, with groups
%% of keys sharing a hash tag for multi-key commands (RENAME, SMOVE,
%% SUNIONSTORE, LMOVE, MSET, MULTI/EXEC, EVAL).
-module(nsync_test_cluster_client).

-export([new/1, cmd/3, cmd_multi/3, close/1]).
-export([start_load/2, pause_load/1, resume_load/1, stop_load/1]).

-export_type([client/0]).

-opaque client() :: #{seeds := [inet:port_number()],
                      slots := tuple(),
                      socks := #{inet:port_number() => gen_tcp:socket()}}.

-define(DEADLINE_MS, 60000).

%%% ------------------------------------------------------------ client

%% @doc A client of the cluster reachable through any of `Ports'.
-spec new([inet:port_number()]) -> client().
new(Ports) ->
    refresh(#{seeds => Ports, slots => erlang:make_tuple(16384, undefined), socks => #{}}).

%% @doc Runs `Args' on the master of `Key''s slot; returns the reply
%% (errors other than redirections and retryable states are replies too).
-spec cmd(client(), binary(), [iodata() | integer()]) -> {nsync_test_redis:reply(), client()}.
cmd(C, Key, Args) ->
    run(C, nsync_nif:key_slot(Key), [Args], deadline()).

%% @doc `MULTI', `Cmds', `EXEC' on the master of `Key''s slot (every key of
%% `Cmds' in that slot); the replies of EXEC, or an error if the
%% transaction was refused or aborted.
-spec cmd_multi(client(), binary(), [[iodata() | integer()]]) ->
          {nsync_test_redis:reply(), client()}.
cmd_multi(C, Key, Cmds) ->
    run(C, nsync_nif:key_slot(Key), [[<<"MULTI">>] | Cmds] ++ [[<<"EXEC">>]], deadline()).

%% @doc Closes the client's connections.
-spec close(client()) -> ok.
close(#{socks := Socks}) ->
    lists:foreach(fun gen_tcp:close/1, maps:values(Socks)).

deadline() -> erlang:monotonic_time(millisecond) + ?DEADLINE_MS.

%% One command (or a MULTI block) for `Slot', following redirections.
run(C, Slot, Cmds, Deadline) ->
    erlang:monotonic_time(millisecond) < Deadline orelse error({cluster_cmd_timeout, Slot, Cmds}),
    Port = case element(Slot + 1, maps:get(slots, C)) of
               undefined -> hd(maps:get(seeds, C));
               P -> P
           end,
    case send(C, Port, Cmds) of
        {ok, Reply, C1} ->
            case redirect(Reply) of
                none -> {Reply, C1};
                {moved, To} ->
                    run(C1#{slots := setelement(Slot + 1, maps:get(slots, C1), To)}, Slot, Cmds,
                        Deadline);
                {ask, To} ->
                    case send(C1, To, [[<<"ASKING">>] | Cmds]) of
                        {ok, AskReply, C2} ->
                            case redirect(AskReply) of
                                none -> {AskReply, C2};
                                _ -> retry_later(C2, Slot, Cmds, Deadline)
                            end;
                        {down, C2} ->
                            retry_later(refresh(C2), Slot, Cmds, Deadline)
                    end;
                wait ->
                    retry_later(C1, Slot, Cmds, Deadline)
            end;
        {down, C1} ->
            retry_later(refresh(C1), Slot, Cmds, Deadline)
    end.

retry_later(C, Slot, Cmds, Deadline) ->
    timer:sleep(20 + rand:uniform(30)),
    run(C, Slot, Cmds, Deadline).

%% What a reply asks for. A MULTI block's reply is EXEC's: its queueing
%% errors are seen in the replies before it.
redirect({error, <<"MOVED ", Rest/binary>>}) -> {moved, target(Rest)};
redirect({error, <<"ASK ", Rest/binary>>}) -> {ask, target(Rest)};
redirect({error, <<"TRYAGAIN", _/binary>>}) -> wait;
redirect({error, <<"CLUSTERDOWN", _/binary>>}) -> wait;
redirect({error, <<"LOADING", _/binary>>}) -> wait;
redirect({multi, Replies}) ->
    case [R || R <- Replies, redirect(R) =/= none] of
        [First | _] -> redirect(First);
        [] -> none
    end;
redirect(_) -> none.

target(Rest) ->
    [_Slot, Addr] = binary:split(Rest, <<" ">>),
    [_Host, Port] = binary:split(Addr, <<":">>, [trim_all]),
    binary_to_integer(Port).

%% Sends the commands pipelined and reads every reply; for a MULTI block
%% the result is EXEC's reply, or `{multi, QueueReplies}' when a command
%% was refused while queueing (redirections then show there).
send(C, Port, Cmds) ->
    case sock(C, Port) of
        {ok, Sock, C1} ->
            try
                [ok = nsync_test_redis:send_cmd(Sock, Cmd) || Cmd <- Cmds],
                Replies = [nsync_test_redis:recv_reply(Sock, 30000) || _ <- Cmds],
                {ok, result(Cmds, Replies), C1}
            catch
                error:_ -> {down, drop(C1, Port)}
            end;
        {down, C1} ->
            {down, C1}
    end.

result(Cmds, Replies) ->
    case lists:any(fun(Cmd) -> hd(Cmd) =:= <<"MULTI">> end, Cmds) of
        false -> lists:last(Replies);
        true ->
            Exec = lists:last(Replies),
            Queued = lists:droplast(Replies),
            case [R || {error, _} = R <- Queued] of
                [] -> Exec;
                _ -> {multi, Queued}
            end
    end.

sock(#{socks := Socks} = C, Port) ->
    case Socks of
        #{Port := S} -> {ok, S, C};
        _ ->
            case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, line},
                                                        {nodelay, true}], 2000) of
                {ok, S} -> {ok, S, C#{socks := Socks#{Port => S}}};
                {error, _} -> {down, C}
            end
    end.

drop(#{socks := Socks} = C, Port) ->
    case maps:take(Port, Socks) of
        {S, Rest} -> gen_tcp:close(S), C#{socks := Rest};
        error -> C
    end.

%% Re-reads the slot map from the first node that answers `CLUSTER SLOTS';
%% a node that answered becomes the first seed.
refresh(#{seeds := Seeds} = C) ->
    refresh(C, Seeds ++ known_ports(C)).

refresh(C, []) ->
    C;
refresh(C, [Port | Rest]) ->
    case send(C, Port, [[<<"CLUSTER">>, <<"SLOTS">>]]) of
        {ok, Ranges, C1} when is_list(Ranges) ->
            Owners = maps:from_list([{Slot, P} || [A, B, [_Host, P | _] | _] <- Ranges,
                                                  Slot <- lists:seq(A, B)]),
            Slots = list_to_tuple([maps:get(S, Owners, undefined) || S <- lists:seq(0, 16383)]),
            C1#{slots := Slots, seeds := [Port | lists:delete(Port, maps:get(seeds, C1))]};
        {ok, _, C1} -> refresh(C1, Rest);
        {down, C1} -> refresh(C1, Rest)
    end.

known_ports(#{slots := Slots}) ->
    lists:usort([P || P <- tuple_to_list(Slots), P =/= undefined]).

%%% ------------------------------------------------------------ the load

%% @doc Starts a process issuing random writes until `stop_load/1'.
%% Options: `seed' (1), `keys' (keys per type, 2000), `groups' (hash-tag
%% groups, 200), `pause_ms' (between commands, 0).
-spec start_load([inet:port_number()], map()) -> pid().
start_load(Ports, Opts) ->
    Parent = self(),
    spawn_link(fun() ->
                       Seed = maps:get(seed, Opts, 1),
                       rand:seed(exsss, {Seed, 17, 4242}),
                       load_loop(new(Ports), Opts, Parent, #{commands => 0, errors => #{}})
               end).

%% @doc Stops issuing commands once the one in flight is answered.
-spec pause_load(pid()) -> ok.
pause_load(Pid) -> call(Pid, pause).

-spec resume_load(pid()) -> ok.
resume_load(Pid) -> call(Pid, resume).

%% @doc Stops the load; returns `#{commands := N, errors := #{Prefix => N}}'.
-spec stop_load(pid()) -> map().
stop_load(Pid) ->
    Stats = call(Pid, stop),
    unlink(Pid),
    Stats.

call(Pid, Msg) ->
    Ref = monitor(process, Pid),
    Pid ! {Msg, self(), Ref},
    receive
        {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, process, Pid, Why} -> error({load_died, Why})
    after 120000 -> error(load_timeout)
    end.

load_loop(C, Opts, Parent, Stats) ->
    receive
        {pause, From, Ref} ->
            From ! {Ref, ok},
            paused(C, Opts, Parent, Stats);
        {stop, From, Ref} ->
            close(C),
            From ! {Ref, Stats}
    after 0 ->
        {C1, Stats1} = step(C, Opts, Stats),
        case maps:get(pause_ms, Opts, 0) of
            0 -> ok;
            Ms -> timer:sleep(Ms)
        end,
        load_loop(C1, Opts, Parent, Stats1)
    end.

paused(C, Opts, Parent, Stats) ->
    receive
        {resume, From, Ref} ->
            From ! {Ref, ok},
            load_loop(C, Opts, Parent, Stats);
        {stop, From, Ref} ->
            close(C),
            From ! {Ref, Stats};
        {pause, From, Ref} ->
            From ! {Ref, ok},
            paused(C, Opts, Parent, Stats)
    end.

step(C, Opts, #{commands := N, errors := Errors} = Stats) ->
    {Reply, C1} = case op(Opts) of
                      {cmd, [_, Key | _] = Args} -> cmd(C, Key, Args);
                      {multi, Key, Cmds} -> cmd_multi(C, Key, Cmds);
                      {eval, Key, Args} -> cmd(C, Key, Args)
                  end,
    Errors1 = case Reply of
                  {error, E} ->
                      [Prefix | _] = binary:split(E, <<" ">>),
                      maps:update_with(Prefix, fun(X) -> X + 1 end, 1, Errors);
                  {multi, Queued} ->
                      maps:update_with(multi, fun(X) -> X + 1 end, 1, Errors#{last_multi => Queued});
                  _ -> Errors
              end,
    {C1, Stats#{commands := N + 1, errors := Errors1}}.

%%% ------------------------------------------------------------ commands

pick(L) -> lists:nth(rand:uniform(length(L)), L).
n(N) -> rand:uniform(N).
i(I) -> integer_to_binary(I).

key(Type, Opts) -> <<Type/binary, ":", (i(n(maps:get(keys, Opts, 2000))))/binary>>.
group(Opts) -> <<"{g", (i(n(maps:get(groups, Opts, 200))))/binary, "}:">>.
val() -> pick([<<"a">>, <<"bb">>, <<"hello">>, i(n(1000)), <<0, 255, "\r\n">>,
               binary:copy(<<"x">>, n(300))]).
member() -> <<"m", (i(n(40)))/binary>>.
long_ms() -> i(erlang:system_time(millisecond) + 600000 + n(600000)).

op(Opts) ->
    case n(100) of
        X when X =< 72 -> {cmd, single(Opts)};
        X when X =< 88 -> {cmd, grouped(group(Opts))};
        X when X =< 96 ->
            G = group(Opts),
            {multi, <<G/binary, "s">>, [grouped(G) || _ <- lists:seq(1, 1 + n(3))]};
        _ ->
            G = group(Opts),
            {eval, <<G/binary, "s">>,
             [<<"EVAL">>, <<"redis.call('incr', KEYS[1]); redis.call('rpush', KEYS[2], ARGV[1]); return 1">>,
              <<"2">>, <<G/binary, "n">>, <<G/binary, "l">>, val()]}
    end.

single(Opts) ->
    S = key(<<"s">>, Opts), Num = key(<<"n">>, Opts), L = key(<<"l">>, Opts),
    Set = key(<<"S">>, Opts), H = key(<<"h">>, Opts), Z = key(<<"z">>, Opts),
    case n(24) of
        1 -> [<<"SET">>, S, val()];
        2 -> [<<"SET">>, S, val(), <<"PXAT">>, long_ms()];
        3 -> [<<"APPEND">>, S, val()];
        4 -> [<<"DEL">>, pick([S, Num, L, Set, H, Z])];
        5 -> [<<"UNLINK">>, pick([S, L, H])];
        6 -> [<<"INCRBY">>, Num, i(n(100))];
        7 -> [<<"INCR">>, Num];
        8 -> [<<"PEXPIREAT">>, pick([S, Num, L, Set]), long_ms()];
        9 -> [<<"PERSIST">>, pick([S, L, H])];
        10 -> [<<"RPUSH">>, L, val(), val()];
        11 -> [<<"LPOP">>, L];
        12 -> [<<"LPUSH">>, L, val()];
        13 -> [<<"SADD">>, Set, member(), member()];
        14 -> [<<"SREM">>, Set, member()];
        15 -> [<<"SPOP">>, Set];
        16 -> [<<"HSET">>, H, member(), val(), member(), val()];
        17 -> [<<"HDEL">>, H, member()];
        18 -> [<<"HINCRBY">>, H, <<"count">>, i(n(10))];
        19 -> [<<"ZADD">>, Z, i(n(100)), member()];
        20 -> [<<"ZINCRBY">>, Z, <<"1.5">>, member()];
        21 -> [<<"ZREM">>, Z, member()];
        22 -> [<<"SET">>, S, val(), <<"KEEPTTL">>];
        23 -> [<<"GETDEL">>, S];
        24 -> [<<"SETRANGE">>, S, i(n(20)), val()]
    end.

%% Commands on the keys of one hash-tag group (one slot).
grouped(G) ->
    K = fun(Suffix) -> <<G/binary, Suffix/binary>> end,
    case n(10) of
        1 -> [<<"SET">>, K(<<"s">>), val()];
        2 -> [<<"RENAME">>, K(<<"s">>), K(<<"t">>)];
        3 -> [<<"MSET">>, K(<<"s">>), val(), K(<<"t">>), val()];
        4 -> [<<"SADD">>, K(<<"a">>), member(), member()];
        5 -> [<<"SMOVE">>, K(<<"a">>), K(<<"b">>), member()];
        6 -> [<<"SUNIONSTORE">>, K(<<"c">>), K(<<"a">>), K(<<"b">>)];
        7 -> [<<"RPUSH">>, K(<<"l">>), val()];
        8 -> [<<"LMOVE">>, K(<<"l">>), K(<<"m">>), <<"LEFT">>, <<"RIGHT">>];
        9 -> [<<"DEL">>, K(<<"s">>), K(<<"t">>), K(<<"c">>)];
        10 -> [<<"INCR">>, K(<<"n">>)]
    end.
