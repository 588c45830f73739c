%% @doc A TCP proxy between nsync and a real server, for fault tests: it
%% forwards both ways and can, on command, stall (keep the sockets open but
%% forward nothing), throttle, cut a connection after N bytes from the
%% server, flip a byte at an offset, reset every connection, or point new
%% connections at another port. Loopback only; one process per proxy,
%% linked to the caller, plus two pipe processes per connection.
-module(nsync_test_proxy).

-export([start/1, stop/1, port/1, set_mode/2, set_target/2, reset/1,
         connections/1, bytes_down/1]).

-export_type([proxy/0, mode/0]).

-opaque proxy() :: pid().
%% forward: copy as is; stall: read nothing, send nothing (sockets stay
%% open); {throttle, BytesPerSecond}: server-to-client bytes at most this
%% fast; {cut_after, N}: close a connection once N bytes came from the
%% server on it; {flip_at, Offset}: xor one byte at this offset of the
%% server-to-client bytes of the next connection accepted.
-type mode() :: forward | stall | {throttle, pos_integer()}
              | {cut_after, non_neg_integer()} | {flip_at, non_neg_integer()}.

-define(T, 5000).
-define(CHUNK, 65536).

%%% ================================================================ API

%% @doc Starts a proxy on a free loopback port to 127.0.0.1:`TargetPort'.
-spec start(inet:port_number()) -> {ok, proxy()}.
start(TargetPort) ->
    Self = self(),
    Pid = spawn_link(fun() -> init(Self, TargetPort) end),
    receive {Pid, started} -> {ok, Pid} after ?T -> error(proxy_start) end.

%% @doc Stops the proxy and closes every connection through it.
-spec stop(proxy()) -> ok.
stop(Proxy) -> call(Proxy, stop).

%% @doc The port nsync should connect to.
-spec port(proxy()) -> inet:port_number().
port(Proxy) -> call(Proxy, port).

%% @doc Changes what the open connections (and new ones) do.
-spec set_mode(proxy(), mode()) -> ok.
set_mode(Proxy, Mode) -> call(Proxy, {mode, Mode}).

%% @doc New connections go to 127.0.0.1:`Port' (open ones stay).
-spec set_target(proxy(), inet:port_number()) -> ok.
set_target(Proxy, Port) -> call(Proxy, {target, Port}).

%% @doc Resets every open connection (RST to both sides).
-spec reset(proxy()) -> ok.
reset(Proxy) -> call(Proxy, reset).

%% @doc Connections accepted so far.
-spec connections(proxy()) -> non_neg_integer().
connections(Proxy) -> call(Proxy, connections).

%% @doc Bytes forwarded from servers to clients so far.
-spec bytes_down(proxy()) -> non_neg_integer().
bytes_down(Proxy) -> call(Proxy, bytes_down).

%%% =========================================================== internal

call(Proxy, Request) ->
    Ref = monitor(process, Proxy),
    Proxy ! {call, self(), Ref, Request},
    receive
        {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, process, Proxy, Reason} -> error({proxy_down, Reason})
    after ?T -> error(proxy_stuck)
    end.

-record(st, {listen :: gen_tcp:socket(),
             target :: inet:port_number(),
             mode = forward :: mode(),
             pipes = [] :: [pid()],
             accepted = 0 :: non_neg_integer(),
             down = 0 :: non_neg_integer()}).

init(Parent, TargetPort) ->
    process_flag(trap_exit, true),
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false},
                                 {reuseaddr, true}, {backlog, 128}]),
    Self = self(),
    spawn_link(fun() -> acceptor(Self, L) end),
    Parent ! {Self, started},
    loop(#st{listen = L, target = TargetPort}).

acceptor(Proxy, L) ->
    case gen_tcp:accept(L) of
        {ok, Client} ->
            ok = gen_tcp:controlling_process(Client, Proxy),
            Proxy ! {accepted, Client},
            acceptor(Proxy, L);
        {error, _} ->
            ok
    end.

loop(#st{} = S) ->
    receive
        {accepted, Client} ->
            loop(connect(Client, S));
        {down_bytes, N} ->
            loop(S#st{down = S#st.down + N});
        {'EXIT', Pid, _} ->
            loop(S#st{pipes = lists:delete(Pid, S#st.pipes)});
        {call, From, Ref, stop} ->
            [exit(P, kill) || P <- S#st.pipes],
            gen_tcp:close(S#st.listen),
            From ! {Ref, ok};
        {call, From, Ref, Request} ->
            {Reply, S1} = handle(Request, S),
            From ! {Ref, Reply},
            loop(S1)
    end.

handle(port, S) ->
    {ok, Port} = inet:port(S#st.listen),
    {Port, S};
handle({mode, Mode}, S) ->
    [P ! {mode, Mode} || P <- S#st.pipes],
    {ok, S#st{mode = Mode}};
handle({target, Port}, S) ->
    {ok, S#st{target = Port}};
handle(reset, S) ->
    [P ! reset || P <- S#st.pipes],
    {ok, S};
handle(connections, S) ->
    {S#st.accepted, S};
handle(bytes_down, S) ->
    {S#st.down, S}.

%% A connection: one pipe process per direction; each owns the socket it
%% reads and also holds the other one, to close or reset both.
connect(Client, #st{target = Target, mode = Mode, accepted = N, pipes = Pipes} = S) ->
    case gen_tcp:connect({127, 0, 0, 1}, Target, [binary, {active, false}], ?T) of
        {ok, Server} ->
            Proxy = self(),
            DownMode = Mode,
            UpMode = case Mode of {flip_at, _} -> forward; {cut_after, _} -> forward;
                                  {throttle, _} -> forward; M -> M end,
            Up = spawn_link(fun() -> pipe_start(Client, Server, UpMode, undefined) end),
            Down = spawn_link(fun() -> pipe_start(Server, Client, DownMode, Proxy) end),
            ok = gen_tcp:controlling_process(Client, Up),
            ok = gen_tcp:controlling_process(Server, Down),
            Up ! go, Down ! go,
            %% A flip applies to one connection only.
            Mode1 = case Mode of {flip_at, _} -> forward; _ -> Mode end,
            S#st{pipes = [Up, Down | Pipes], accepted = N + 1, mode = Mode1};
        {error, _} ->
            gen_tcp:close(Client),
            S#st{accepted = N + 1}
    end.

pipe_start(From, To, Mode, Counter) ->
    receive go -> ok end,
    pipe(From, To, Mode, Counter, 0).

%% Copies From to To according to Mode; Sent counts bytes sent on this
%% connection in this direction.
pipe(From, To, Mode0, Counter, Sent) ->
    Mode = latest_mode(Mode0),
    receive reset -> abort([From, To])
    after 0 ->
            case Mode of
                stall ->
                    receive
                        {mode, M} -> pipe(From, To, M, Counter, Sent);
                        reset -> abort([From, To])
                    end;
                _ ->
                    case gen_tcp:recv(From, 0, 100) of
                        {ok, Data} -> forward(From, To, Mode, Counter, Sent, Data);
                        {error, timeout} -> pipe(From, To, Mode, Counter, Sent);
                        {error, _} -> close([From, To])
                    end
            end
    end.

forward(From, To, Mode, Counter, Sent, Data0) ->
    {Data, Mode1, Cut} = shape(Mode, Sent, Data0),
    case gen_tcp:send(To, Data) of
        ok ->
            Counter =:= undefined orelse (Counter ! {down_bytes, byte_size(Data)}),
            case Cut of
                true -> close([From, To]);
                false -> pipe(From, To, Mode1, Counter, Sent + byte_size(Data))
            end;
        {error, _} ->
            close([From, To])
    end.

%% What of Data goes out under Mode, the mode after it, and whether the
%% connection is cut after sending it.
shape({flip_at, At}, Sent, Data) when At >= Sent, At < Sent + byte_size(Data) ->
    Pos = At - Sent,
    <<Before:Pos/binary, Byte, After/binary>> = Data,
    {<<Before/binary, (Byte bxor 16#5a), After/binary>>, forward, false};
shape({cut_after, N}, Sent, Data) when Sent + byte_size(Data) >= N ->
    {binary:part(Data, 0, N - Sent), {cut_after, N}, true};
shape({throttle, Rate} = Mode, _Sent, Data) ->
    timer:sleep(max(1, byte_size(Data) * 1000 div Rate)),
    {Data, Mode, false};
shape(Mode, _Sent, Data) ->
    {Data, Mode, false}.

latest_mode(Mode) ->
    receive {mode, M} -> latest_mode(M) after 0 -> Mode end.

close(Socks) -> [gen_tcp:close(S) || S <- Socks], ok.

abort(Socks) ->
    [begin inet:setopts(S, [{linger, {true, 0}}]), gen_tcp:close(S) end || S <- Socks],
    ok.
