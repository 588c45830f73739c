%%% @doc Test helper: a minimal replica in pure Erlang that feeds a master's
%%% replication stream into an `nsync_mirror', so the mirror's command logic
%%% can be checked against the forms a real master propagates without the NIF
%%% link. It must start on an EMPTY master: the snapshot is skipped, not
%%% parsed (disk framing only: it does not announce `capa eof').
%%% On a dropped connection it resumes with `PSYNC replid offset+1'.
-module(nsync_mirror_test_replica).

-export([start/1, status/1, stop/1]).

-define(RECV_MS, 100).

%% @doc Starts the replica (linked) against 127.0.0.1:Port.
-spec start(inet:port_number()) -> pid().
start(Port) ->
    Parent = self(),
    Pid = spawn_link(fun() -> init(Port, Parent) end),
    receive {Pid, ready} -> Pid after 30000 -> error(replica_start_timeout) end.

%% @doc `#{offset, tid, unhandled => #{Cmd => N}, resumes, commands}'.
-spec status(pid()) -> map().
status(Pid) ->
    Ref = make_ref(),
    Pid ! {status, self(), Ref},
    receive {Ref, S} -> S after 30000 -> error(replica_status_timeout) end.

%% @doc Stops the replica and drops its mirror.
-spec stop(pid()) -> ok.
stop(Pid) ->
    unlink(Pid),
    Ref = monitor(process, Pid),
    Pid ! stop,
    receive {'DOWN', Ref, _, _, _} -> ok after 5000 -> exit(Pid, kill), ok end.

init(Port, Parent) ->
    M = nsync_mirror:new(nsync_test_replica, 0),
    {Sock, Replid, Offset} = full_sync(Port),
    Parent ! {self(), ready},
    loop(#{port => Port, sock => Sock, buf => <<>>, replid => Replid, offset => Offset,
           db => 0, mirror => M, unhandled => #{}, resumes => 0, commands => 0}).

connect(Port) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, raw}], 5000),
    ok = send(S, [<<"REPLCONF">>, <<"capa">>, <<"psync2">>]),
    {<<"+OK">>, _} = line(S, <<>>),
    S.

full_sync(Port) ->
    S = connect(Port),
    ok = send(S, [<<"PSYNC">>, <<"?">>, <<"-1">>]),
    {<<"+FULLRESYNC ", Rest/binary>>, Buf0} = line(S, <<>>),
    [Replid, Off] = binary:split(Rest, <<" ">>),
    {<<"$", Len/binary>>, Buf1} = skip_newlines(S, Buf0),
    _Rdb = bytes(S, Buf1, binary_to_integer(Len)),
    {S, Replid, binary_to_integer(Off)}.

%% keepalive newlines come before the payload header
skip_newlines(S, Buf) ->
    case line(S, Buf) of
        {<<>>, Buf2} -> skip_newlines(S, Buf2);
        R -> R
    end.

line(S, Buf) ->
    case binary:split(Buf, <<"\n">>) of
        [L, Rest] -> {string:trim(L, trailing, "\r"), Rest};
        [_] ->
            {ok, D} = gen_tcp:recv(S, 0, 30000),
            line(S, <<Buf/binary, D/binary>>)
    end.

%% reads exactly N bytes (the snapshot), returns them; what follows is lost
%% only if the master sent commands in the same packet: keep it
bytes(_S, Buf, N) when byte_size(Buf) >= N ->
    <<B:N/binary, Rest/binary>> = Buf,
    put(pending, Rest),
    B;
bytes(S, Buf, N) ->
    {ok, D} = gen_tcp:recv(S, 0, 30000),
    bytes(S, <<Buf/binary, D/binary>>, N).

send(S, Args) ->
    gen_tcp:send(S, [<<"*">>, integer_to_binary(length(Args)), <<"\r\n">>,
                     [[<<"$">>, integer_to_binary(iolist_size(A)), <<"\r\n">>, A, <<"\r\n">>] || A <- Args]]).

loop(#{sock := S} = St0) ->
    St = case erase(pending) of
             undefined -> St0;
             P -> St0#{buf := <<(maps:get(buf, St0))/binary, P/binary>>}
         end,
    receive
        stop ->
            gen_tcp:close(S),
            nsync_mirror:delete(maps:get(mirror, St)),
            ok;
        {status, From, Ref} ->
            From ! {Ref, #{offset => maps:get(offset, St), tid => nsync_mirror:tid(maps:get(mirror, St)),
                           unhandled => maps:get(unhandled, St), resumes => maps:get(resumes, St),
                           commands => maps:get(commands, St)}},
            loop(St)
    after 0 ->
            case gen_tcp:recv(S, 0, ?RECV_MS) of
                {ok, D} ->
                    St2 = consume(St#{buf := <<(maps:get(buf, St))/binary, D/binary>>}),
                    ok = ack(St2),
                    loop(St2);
                {error, timeout} ->
                    _ = ack(St),
                    loop(St);
                {error, _Closed} ->
                    loop(resume(St))
            end
    end.

ack(#{sock := S, offset := O}) ->
    _ = send(S, [<<"REPLCONF">>, <<"ACK">>, integer_to_binary(O)]),
    ok.

resume(#{port := Port, replid := Replid, offset := O, resumes := R} = St) ->
    gen_tcp:close(maps:get(sock, St)),
    timer:sleep(100),
    S = connect(Port),
    ok = send(S, [<<"PSYNC">>, Replid, integer_to_binary(O + 1)]),
    {Reply, Buf} = line(S, <<>>),
    case Reply of
        <<"+CONTINUE", _/binary>> -> St#{sock := S, buf := Buf, resumes := R + 1};
        _ -> error({no_partial_resync, Reply})
    end.

%% applies every complete command in the buffer
consume(#{buf := Buf} = St) ->
    case parse(Buf) of
        {ok, Args, Rest} ->
            Used = byte_size(Buf) - byte_size(Rest),
            St2 = apply_one(Args, St),
            consume(St2#{buf := Rest, offset := maps:get(offset, St2) + Used});
        more -> St
    end.

apply_one([Cmd0 | Args], #{mirror := M, db := Db, unhandled := U, commands := N} = St) ->
    case string:lowercase(Cmd0) of
        <<"select">> -> St#{db := binary_to_integer(hd(Args))};
        <<"ping">> -> St;
        <<"replconf">> ->
            %% GETACK: answer with the offset before it
            _ = ack(St),
            St;
        Cmd ->
            case nsync_apply:apply_cmd(M, Db, Cmd, Args) of
                {ok, M2} -> St#{mirror := M2, commands := N + 1};
                {unhandled, C, M2} ->
                    St#{mirror := M2, commands := N + 1,
                        unhandled := maps:update_with(C, fun(X) -> X + 1 end, 1, U)}
            end
    end.

parse(<<"*", _/binary>> = Buf) ->
    case binary:split(Buf, <<"\r\n">>) of
        [<<"*", N/binary>>, Rest] -> bulks(binary_to_integer(N), Rest, []);
        [_] -> more
    end;
parse(<<"\n", Rest/binary>>) -> parse(Rest);
parse(<<>>) -> more;
parse(Buf) ->
    %% inline command
    case binary:split(Buf, <<"\r\n">>) of
        [L, Rest] -> {ok, binary:split(L, <<" ">>, [global, trim_all]), Rest};
        [_] -> more
    end.

bulks(0, Rest, Acc) -> {ok, lists:reverse(Acc), Rest};
bulks(N, Buf, Acc) ->
    case binary:split(Buf, <<"\r\n">>) of
        [<<"$", L/binary>>, Rest] ->
            Len = binary_to_integer(L),
            case Rest of
                <<B:Len/binary, "\r\n", Rest2/binary>> -> bulks(N - 1, Rest2, [B | Acc]);
                _ -> more
            end;
        [_] -> more
    end.
