%% @doc Test helper: certificates for TLS tests, made with the openssl CLI
%% in a fresh temp dir: a CA, a server certificate it signs (for
%% 127.0.0.1 and localhost), a client certificate it signs (for
%% `tls-auth-clients yes'), and a second, unrelated CA (the "wrong CA").
%% EC P-256 keys: quick to make, and every side here reads them.
-module(nsync_test_certs).

-export([make/0, remove/1]).

-export_type([certs/0]).

-type certs() :: #{dir := file:filename(),
                   ca := file:filename(), ca_key := file:filename(),
                   server_cert := file:filename(), server_key := file:filename(),
                   client_cert := file:filename(), client_key := file:filename(),
                   other_ca := file:filename()}.

%% @doc Makes the certificates; raises with openssl's output on failure.
-spec make() -> certs().
make() ->
    Dir = temp_dir(),
    F = fun(Name) -> filename:join(Dir, Name) end,
    ca(F("ca.crt"), F("ca.key"), "nsync test CA"),
    ca(F("other_ca.crt"), F("other_ca.key"), "nsync other CA"),
    signed(F, "server", "localhost",
           "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
    signed(F, "client", "nsync test client",
           "extendedKeyUsage=clientAuth\n"),
    #{dir => Dir, ca => F("ca.crt"), ca_key => F("ca.key"),
      server_cert => F("server.crt"), server_key => F("server.key"),
      client_cert => F("client.crt"), client_key => F("client.key"),
      other_ca => F("other_ca.crt")}.

%% @doc Removes the certificates' directory.
-spec remove(certs()) -> ok.
remove(#{dir := Dir}) ->
    _ = file:del_dir_r(Dir),
    ok.

%%% ------------------------------------------------------------ internal

ca(Cert, Key, Name) ->
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", Key, "-out", Cert, "-days", "3", "-subj", "/CN=" ++ Name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"]).

signed(F, Base, Name, Ext) ->
    ExtFile = F(Base ++ ".ext"),
    ok = file:write_file(ExtFile, ["basicConstraints=CA:FALSE\n",
                                   "keyUsage=critical,digitalSignature,keyEncipherment\n",
                                   Ext]),
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", F(Base ++ ".key"), "-out", F(Base ++ ".csr"), "-subj", "/CN=" ++ Name]),
    openssl(["x509", "-req", "-in", F(Base ++ ".csr"), "-CA", F("ca.crt"), "-CAkey", F("ca.key"),
             "-CAcreateserial", "-out", F(Base ++ ".crt"), "-days", "3",
             "-extfile", ExtFile]).

openssl(Args) ->
    Exe = case os:find_executable("openssl") of
              false -> error(no_openssl_cli);
              Path -> Path
          end,
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, stderr_to_stdout, binary]),
    collect(Port, Args, []).

collect(Port, Args, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, Args, [Acc, D]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, S}} -> error({openssl, S, Args, iolist_to_binary(Acc)})
    after 30000 ->
        error({openssl, timeout, Args})
    end.

temp_dir() ->
    Base = case os:getenv("TMPDIR") of
               T when is_list(T), T =/= "" -> T;
               _ -> "/tmp"
           end,
    Dir = filename:join(Base, io_lib:format("nsync_certs_~s_~p",
                                            [os:getpid(), erlang:unique_integer([positive])])),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    lists:flatten(Dir).
