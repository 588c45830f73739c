%%% @doc A control connection to a Redis server (a Sentinel, a cluster node,
%%% a master to ask `ROLE'): commands and their replies, not replication.
%%%
%%% `open/1' connects (TCP, or TLS with the `tls' option), authenticates
%%% (`AUTH [user] pass') and returns a client process owned by the caller:
%%% it is not linked to it, watches it, and closes when it goes. Every
%%% function returns an error as a term and never raises into the caller,
%%% whatever the server or the client process did:
%%% <ul>
%%% <li>`command/2,3': one command, its reply (`{error, {redis, Msg}}' for
%%%     an error reply);</li>
%%% <li>`pipeline/2,3': several commands sent at once, their replies in
%%%     order, each `{ok, Reply}' or `{error, {redis, Msg}}';</li>
%%% <li>`subscribe/3': SUBSCRIBE; then each message published on those
%%%     channels reaches the owner as
%%%     `{nsync_client, Client, {message, Channel, Payload}}'.</li>
%%% </ul>
%%% When the connection is lost the owner gets
%%% `{nsync_client, Client, {closed, Reason}}', calls waiting get
%%% `{error, Reason}' and the process ends; later calls get
%%% `{error, closed}'. A call that times out gets `{error, timeout}' and
%%% leaves the connection usable (its reply, when it comes, is dropped).
%%% Replies are RESP2 (`nsync_resp:reply()').
-module(nsync_client).
-behaviour(gen_server).

%% API
-export([open/1, command/2, command/3, pipeline/2, pipeline/3, subscribe/3, close/1]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         format_status/1]).
%% proc_lib entry point
-export([init_it/2]).

-export_type([client/0, options/0, reason/0]).

-type client() :: pid().
-type options() :: #{host := binary() | string() | inet:ip_address(),
                     port := inet:port_number(),
                     user => binary() | undefined,
                     pass => binary() | undefined,
                     %% `false' (the default) or a validated `tls' option
                     %% (nsync_tls:validate/1)
                     tls => nsync_tls:tls() | false,
                     connect_timeout => pos_integer(),
                     %% for AUTH during open/1
                     timeout => pos_integer()}.
-type reason() :: {connect, inet:posix() | term()}
                | {tls, term()}
                | {auth, binary()}
                | {badarg, term()}
                | {protocol, binary()}
                | {recv, term()}
                | {send, term()}
                | closed
                | timeout.

-define(TIMEOUT, 5000).

-record(request, {from :: gen_server:from(),
                  kind :: command | pipeline | subscribe,
                  left :: pos_integer(),
                  replies = [] :: [nsync_resp:reply()]}).

-record(state, {owner :: pid(),
                transport :: gen_tcp | ssl,
                sock :: gen_tcp:socket() | ssl:sslsocket(),
                buffer = <<>> :: binary(),
                %% requests sent, oldest first, waiting for their replies
                pending = queue:new() :: queue:queue(#request{}),
                subscribed = false :: boolean()}).

%%% ================================================================ API

%% @doc Connects and authenticates; the caller owns the client.
-spec open(options()) -> {ok, client()} | {error, reason()}.
open(Opts) when is_map(Opts) ->
    proc_lib:start(?MODULE, init_it, [self(), Opts], infinity);
open(Opts) ->
    {error, {badarg, Opts}}.

%% @equiv command(Client, Args, 5000)
-spec command(client(), [nsync_resp:arg()]) -> {ok, nsync_resp:reply()} | {error, reason() | {redis, binary()}}.
command(Client, Args) ->
    command(Client, Args, ?TIMEOUT).

%% @doc Sends one command and waits at most `Timeout' ms for its reply.
-spec command(client(), [nsync_resp:arg()], timeout()) ->
          {ok, nsync_resp:reply()} | {error, reason() | {redis, binary()}}.
command(Client, Args, Timeout) ->
    call(Client, {command, [Args]}, Timeout).

%% @equiv pipeline(Client, Commands, 5000)
-spec pipeline(client(), [[nsync_resp:arg()]]) ->
          {ok, [{ok, nsync_resp:reply()} | {error, {redis, binary()}}]} | {error, reason()}.
pipeline(Client, Commands) ->
    pipeline(Client, Commands, ?TIMEOUT).

%% @doc Sends the commands at once and waits at most `Timeout' ms for all
%% their replies, in order.
-spec pipeline(client(), [[nsync_resp:arg()]], timeout()) ->
          {ok, [{ok, nsync_resp:reply()} | {error, {redis, binary()}}]} | {error, reason()}.
pipeline(_Client, [], _Timeout) ->
    {ok, []};
pipeline(Client, Commands, Timeout) ->
    call(Client, {pipeline, Commands}, Timeout).

%% @doc Subscribes to `Channels'; once the server has confirmed, messages
%% on them reach the owner (see the module doc). A subscribed connection
%% accepts only SUBSCRIBE, UNSUBSCRIBE and PING as commands.
-spec subscribe(client(), [iodata()], timeout()) -> ok | {error, reason() | {redis, binary()}}.
subscribe(Client, [_ | _] = Channels, Timeout) ->
    call(Client, {subscribe, Channels}, Timeout).

%% @doc Closes the connection; the owner gets no `closed' message.
-spec close(client()) -> ok.
close(Client) ->
    try gen_server:stop(Client, normal, ?TIMEOUT)
    catch exit:_ -> ok
    end.

%% @private Connects before acking, so that open/1 returns the reason of a
%% failure; the process then exits normally.
-spec init_it(pid(), options()) -> ok.
init_it(Owner, Opts) ->
    %% OTP 25's proc_lib:start/4 waits for the ack alone: always send one.
    Connected = try connect(Opts)
                catch Class:Reason -> {error, {badarg, {Class, Reason}}}
                end,
    case Connected of
        {ok, State} ->
            monitor(process, Owner),
            proc_lib:init_ack({ok, self()}),
            ok = setopts(State, [{active, once}]),
            gen_server:enter_loop(?MODULE, [], State#state{owner = Owner});
        {error, _} = Error ->
            proc_lib:init_ack(Error)
    end.

%%% ========================================================== callbacks

%% @private Not used: open/1 starts the process with init_it/2.
-spec init(term()) -> {stop, not_used}.
init(_) ->
    {stop, not_used}.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) ->
          {noreply, #state{}} | {reply, term(), #state{}} | {stop, term(), #state{}}.
handle_call({Kind, Commands}, From, State) when Kind =:= command; Kind =:= pipeline ->
    send(Commands, #request{from = From, kind = Kind, left = length(Commands)}, State);
handle_call({subscribe, Channels}, From, State) ->
    Request = #request{from = From, kind = subscribe, left = length(Channels)},
    send([[<<"SUBSCRIBE">> | Channels]], Request, State#state{subscribed = true});
handle_call(Request, _From, State) ->
    {reply, {error, {badarg, Request}}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, normal, #state{}}.
handle_info({Tag, Sock, Data}, #state{sock = Sock, buffer = Buffer} = State)
  when Tag =:= tcp; Tag =:= ssl ->
    case replies(State#state{buffer = <<Buffer/binary, Data/binary>>}) of
        {ok, State1} ->
            ok = setopts(State1, [{active, once}]),
            {noreply, State1};
        {error, Reason, State1} ->
            lost(Reason, State1)
    end;
handle_info({Tag, Sock}, #state{sock = Sock} = State)
  when Tag =:= tcp_closed; Tag =:= ssl_closed ->
    lost(closed, State);
handle_info({ssl_error, Sock, {tls_alert, {Alert, _Text}}}, #state{sock = Sock} = State) ->
    lost({tls, Alert}, State);
handle_info({Tag, Sock, Reason}, #state{sock = Sock} = State)
  when Tag =:= tcp_error; Tag =:= ssl_error ->
    lost({recv, Reason}, State);
handle_info({'DOWN', _, process, Owner, _}, #state{owner = Owner} = State) ->
    {stop, normal, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{transport = Transport, sock = Sock}) ->
    _ = Transport:close(Sock),
    ok.

%% @private Keeps buffered replies out of crash reports.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(#{state := #state{} = State} = Status) ->
    Status#{state := State#state{buffer = <<"(buffer)">>}};
format_status(Status) ->
    Status.

%%% ============================================================ internal

call(Client, Request, Timeout) ->
    try gen_server:call(Client, Request, Timeout)
    catch
        exit:{timeout, _} -> {error, timeout};
        exit:_ -> {error, closed}
    end.

%%% ------------------------------------------------------------ connect

connect(#{host := Host0, port := Port} = Opts) ->
    ConnectTimeout = maps:get(connect_timeout, Opts, ?TIMEOUT),
    Timeout = maps:get(timeout, Opts, ?TIMEOUT),
    Host = host(Host0),
    SockOpts = [binary, {active, false}, {packet, raw}, {nodelay, true}],
    Connected =
        case tls_options(maps:get(tls, Opts, false), Host) of
            none ->
                wrap(gen_tcp, gen_tcp:connect(Host, Port, SockOpts, ConnectTimeout));
            {ok, TlsOpts} ->
                ok = ensure_ssl(),
                wrap(ssl, ssl:connect(Host, Port, SockOpts ++ TlsOpts, ConnectTimeout));
            {error, _} = Error ->
                Error
        end,
    case Connected of
        {ok, State} ->
            case auth(State, Opts, Timeout) of
                ok -> {ok, State};
                {error, _} = Error2 -> close_sock(State), Error2
            end;
        {error, _} = Error3 ->
            Error3
    end;
connect(Opts) ->
    {error, {badarg, Opts}}.

host(Host) when is_binary(Host) -> binary_to_list(Host);
host(Host) -> Host.

tls_options(false, _Host) ->
    none;
tls_options(Tls, Host) ->
    case nsync_tls:load(Tls) of
        {ok, Loaded} -> nsync_tls:ssl_options(Loaded, host_text(Host));
        {error, _} = Error -> Error
    end.

host_text(Host) when is_tuple(Host) -> inet:ntoa(Host);
host_text(Host) -> Host.

%% ssl is an optional application of nsync: started when TLS is used.
ensure_ssl() ->
    _ = application:ensure_all_started(ssl),
    ok.

wrap(Transport, {ok, Sock}) ->
    {ok, #state{owner = self(), transport = Transport, sock = Sock}};
wrap(_Transport, {error, {tls_alert, {Alert, _Text}}}) ->
    {error, {tls, Alert}};
wrap(ssl, {error, Reason}) when Reason =:= econnrefused; Reason =:= timeout;
                                Reason =:= nxdomain; Reason =:= ehostunreach;
                                Reason =:= enetunreach; Reason =:= econnreset ->
    {error, {connect, Reason}};
wrap(ssl, {error, Reason}) ->
    {error, {tls, Reason}};
wrap(gen_tcp, {error, Reason}) ->
    {error, {connect, Reason}}.

auth(State, Opts, Timeout) ->
    Args = case {maps:get(user, Opts, undefined), maps:get(pass, Opts, undefined)} of
               {_, undefined} -> none;
               {undefined, Pass} -> [<<"AUTH">>, Pass];
               {User, Pass} -> [<<"AUTH">>, User, Pass]
           end,
    case Args of
        none -> ok;
        _ ->
            case sync_command(State, Args, Timeout) of
                {ok, <<"OK">>} -> ok;
                {ok, {error, Msg}} -> {error, {auth, Msg}};
                {ok, Other} -> {error, {protocol, iolist_to_binary(io_lib:format("AUTH: ~0p", [Other]))}};
                {error, _} = Error -> Error
            end
    end.

%% One command on the passive socket, before the process serves calls.
sync_command(#state{transport = T, sock = Sock}, Args, Timeout) ->
    case T:send(Sock, nsync_resp:encode(Args)) of
        ok -> sync_reply(T, Sock, <<>>, Timeout);
        {error, Reason} -> {error, {send, Reason}}
    end.

sync_reply(T, Sock, Buffer, Timeout) ->
    case nsync_resp:decode(Buffer) of
        {ok, Reply, _Rest} -> {ok, Reply};
        {error, _} = Error -> Error;
        more ->
            case T:recv(Sock, 0, Timeout) of
                {ok, Data} -> sync_reply(T, Sock, <<Buffer/binary, Data/binary>>, Timeout);
                {error, timeout} -> {error, timeout};
                {error, closed} -> {error, closed};
                {error, Reason} -> {error, {recv, Reason}}
            end
    end.

setopts(#state{transport = gen_tcp, sock = Sock}, Opts) -> inet:setopts(Sock, Opts);
setopts(#state{transport = ssl, sock = Sock}, Opts) -> ssl:setopts(Sock, Opts).

close_sock(#state{transport = T, sock = Sock}) ->
    _ = T:close(Sock),
    ok.

%%% ----------------------------------------------------------- requests

send(Commands, Request, #state{transport = T, sock = Sock, pending = Pending} = State) ->
    case T:send(Sock, [nsync_resp:encode(C) || C <- Commands]) of
        ok ->
            {noreply, State#state{pending = queue:in(Request, Pending)}};
        {error, Reason} ->
            gen_server:reply(Request#request.from, {error, {send, Reason}}),
            lost({send, Reason}, State)
    end.

%% Every whole reply in the buffer: to its request, or to the owner.
replies(#state{buffer = Buffer} = State) ->
    case nsync_resp:decode(Buffer) of
        more ->
            {ok, State};
        {error, Reason} ->
            {error, Reason, State};
        {ok, Reply, Rest} ->
            case reply(Reply, State#state{buffer = Rest}) of
                {ok, State1} -> replies(State1);
                {error, _, _} = Error -> Error
            end
    end.

reply([Kind, Channel, Payload], #state{subscribed = true, owner = Owner} = State)
  when Kind =:= <<"message">> ->
    Owner ! {nsync_client, self(), {message, Channel, Payload}},
    {ok, State};
reply(Reply, #state{pending = Pending} = State) ->
    case queue:out(Pending) of
        {{value, #request{left = 1, replies = Acc} = Request}, Rest} ->
            gen_server:reply(Request#request.from,
                             result(Request#request.kind, lists:reverse(Acc, [Reply]))),
            {ok, State#state{pending = Rest}};
        {{value, #request{left = N, replies = Acc} = Request}, Rest} ->
            Request1 = Request#request{left = N - 1, replies = [Reply | Acc]},
            {ok, State#state{pending = queue:in_r(Request1, Rest)}};
        {empty, _} ->
            {error, {protocol, <<"a reply nothing asked for">>}, State}
    end.

result(command, [{error, Msg}]) -> {error, {redis, Msg}};
result(command, [Reply]) -> {ok, Reply};
result(pipeline, Replies) -> {ok, [one(R) || R <- Replies]};
result(subscribe, Replies) ->
    case [Msg || {error, Msg} <- Replies] of
        [] -> ok;
        [Msg | _] -> {error, {redis, Msg}}
    end.

one({error, Msg}) -> {error, {redis, Msg}};
one(Reply) -> {ok, Reply}.

%% The connection is gone: every waiting call and the owner are told.
lost(Reason, #state{pending = Pending, owner = Owner} = State) ->
    [gen_server:reply(From, {error, Reason}) || #request{from = From} <- queue:to_list(Pending)],
    Owner ! {nsync_client, self(), {closed, Reason}},
    {stop, normal, State#state{pending = queue:new()}}.
