%%% @doc The `tls' option: its validation, the files it names read (the
%%% NIF's rustls session takes the PEM bytes, `load/1'), and `ssl''s
%%% options for control connections (`ssl_options/2').
%%%
%%% `{tls, true}' verifies the server against well-known roots (the NIF:
%%% webpki-roots, Mozilla's list built in; `ssl': the system's, from
%%% `public_key:cacerts_get/0'). `{tls, Opts}', a proplist or map:
%%% <ul>
%%% <li>`{cacertfile, Path}' or `{cacerts, Pem}': the CAs to trust instead;</li>
%%% <li>`{certfile, Path}' and `{keyfile, Path}' (or `{cert, Pem}' and
%%%     `{key, Pem}'): a client certificate, for `tls-auth-clients yes';</li>
%%% <li>`{server_name, Name}': the name sent (SNI) and verified; default
%%%     the host connected to (an IP address is verified against the
%%%     certificate's IP addresses, and no SNI is sent);</li>
%%% <li>`{verify, none}': no verification at all, for tests only.</li>
%%% </ul>
-module(nsync_tls).

-export([validate/1, load/1, ssl_options/2]).

-export_type([tls/0, loaded/0]).

-type source() :: {file, binary()} | {pem, binary()}.
-type tls() :: #{verify := peer | none,
                 cacerts := system | source(),
                 cert := source() | undefined,
                 key := source() | undefined,
                 server_name := binary() | undefined}.
%% A validated `tls' option; files are named, not read yet.
-type loaded() :: #{verify := peer | none,
                    cacerts := system | binary(),
                    cert := binary() | undefined,
                    key := binary() | undefined,
                    server_name := binary() | undefined}.
%% The same with the files read: PEM bytes.

-define(DEFAULTS, #{verify => peer, cacerts => system, cert => undefined,
                    key => undefined, server_name => undefined}).

%% @doc Checks the value of a `tls' option: `false' (plain TCP), `true' or
%% a proplist or map of the options above. `{badarg, {tls, Bad}}' names
%% the offending one.
-spec validate(term()) -> {ok, tls() | false} | {error, {badarg, {tls, term()}}}.
validate(false) ->
    {ok, false};
validate(true) ->
    {ok, ?DEFAULTS};
validate(Opts) when is_map(Opts) ->
    validate(maps:to_list(Opts));
validate(Opts) when is_list(Opts) ->
    try
        Tls = lists:foldl(fun option/2, ?DEFAULTS, lists:reverse(Opts)),
        check_pair(Tls)
    catch
        throw:{badarg, _} = Bad -> {error, Bad}
    end;
validate(Other) ->
    {error, {badarg, {tls, Other}}}.

%% @doc Reads the files a validated option names. `{tls, {Opt, Posix}}'
%% when one cannot be read.
-spec load(tls()) -> {ok, loaded()} | {error, {tls, {atom(), term()}}}.
load(Tls) ->
    try
        {ok, maps:map(fun(Key, Value) -> read(Key, Value) end, Tls)}
    catch
        throw:{tls, _} = Error -> {error, Error}
    end.

%% @doc `ssl:connect/4''s options for a loaded option and the host
%% connected to; `{tls, Reason}' when its PEM holds nothing usable.
-spec ssl_options(loaded(), binary() | string()) -> {ok, [ssl:tls_client_option()]}
                                                     | {error, {tls, term()}}.
ssl_options(#{verify := none} = Loaded, _Host) ->
    with_client_cert(Loaded, [{verify, verify_none}]);
ssl_options(#{cacerts := CaCerts, server_name := Name} = Loaded, Host) ->
    try
        Verify = [{verify, verify_peer}, {cacerts, ca_ders(CaCerts)},
                  {customize_hostname_check,
                   [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}
                  | server_name(to_list(case Name of undefined -> Host; _ -> Name end))],
        with_client_cert(Loaded, Verify)
    catch
        throw:{tls, _} = Error -> {error, Error}
    end.

%%% ------------------------------------------------------------ internal

option({cacertfile, Path}, T) -> T#{cacerts => {file, path(cacertfile, Path)}};
option({cacerts, Pem}, T) -> T#{cacerts => {pem, pem(cacerts, Pem)}};
option({certfile, Path}, T) -> T#{cert => {file, path(certfile, Path)}};
option({cert, Pem}, T) -> T#{cert => {pem, pem(cert, Pem)}};
option({keyfile, Path}, T) -> T#{key => {file, path(keyfile, Path)}};
option({key, Pem}, T) -> T#{key => {pem, pem(key, Pem)}};
option({server_name, Name} = Opt, T) -> T#{server_name => text(Name, Opt)};
option({verify, V}, T) when V =:= none; V =:= peer -> T#{verify => V};
option(Opt, _T) -> throw({badarg, {tls, Opt}}).

path(Key, Path) -> text(Path, {Key, Path}).

pem(_Key, Pem) when is_binary(Pem), Pem =/= <<>> -> Pem;
pem(Key, Pem) -> throw({badarg, {tls, {Key, Pem}}}).

text(T, _Opt) when is_binary(T), T =/= <<>> -> T;
text(T, Opt) when is_list(T), T =/= [] ->
    try unicode:characters_to_binary(T) of
        B when is_binary(B) -> B;
        _ -> throw({badarg, {tls, Opt}})
    catch
        error:badarg -> throw({badarg, {tls, Opt}})
    end;
text(_, Opt) -> throw({badarg, {tls, Opt}}).

%% A client certificate needs its key, and the other way round.
check_pair(#{cert := undefined, key := Key}) when Key =/= undefined ->
    {error, {badarg, {tls, {key, no_cert}}}};
check_pair(#{cert := Cert, key := undefined}) when Cert =/= undefined ->
    {error, {badarg, {tls, {cert, no_key}}}};
check_pair(Tls) ->
    {ok, Tls}.

read(Key, {file, Path}) ->
    case file:read_file(Path) of
        {ok, Pem} -> Pem;
        {error, Posix} -> throw({tls, {file_key(Key), Posix}})
    end;
read(_Key, {pem, Pem}) -> Pem;
read(_Key, Value) -> Value.

file_key(cacerts) -> cacertfile;
file_key(cert) -> certfile;
file_key(key) -> keyfile.

ca_ders(system) ->
    try public_key:cacerts_get() of
        [_ | _] = Certs -> Certs;
        [] -> throw({tls, no_system_cacerts})
    catch
        _:_ -> throw({tls, no_system_cacerts})
    end;
ca_ders(Pem) ->
    case [Der || {'Certificate', Der, not_encrypted} <- pem_entries(Pem)] of
        [] -> throw({tls, {no_certificates, cacerts}});
        Ders -> Ders
    end.

with_client_cert(#{cert := undefined}, Opts) ->
    {ok, Opts};
with_client_cert(#{cert := CertPem, key := KeyPem}, Opts) ->
    try
        Cert = case [Der || {'Certificate', Der, not_encrypted} <- pem_entries(CertPem)] of
                   [First | _] -> First;
                   [] -> throw({tls, {no_certificates, cert}})
               end,
        Key = case [{Type, Der} || {Type, Der, not_encrypted} <- pem_entries(KeyPem),
                                   lists:member(Type, ['RSAPrivateKey', 'ECPrivateKey',
                                                       'PrivateKeyInfo'])] of
                  [K | _] -> K;
                  [] -> throw({tls, {no_private_key, key}})
              end,
        {ok, [{cert, Cert}, {key, Key} | Opts]}
    catch
        throw:{tls, _} = Error -> {error, Error}
    end.

pem_entries(Pem) ->
    try public_key:pem_decode(Pem)
    catch _:_ -> []
    end.

%% An IP address is verified against the certificate's IP addresses, with
%% no SNI (which names hosts only).
server_name(Name) ->
    case inet:parse_address(Name) of
        {ok, Ip} ->
            [{server_name_indication, disable},
             {customize_hostname_check,
              [{match_fun, fun(_, {ip, Ip2}) -> Ip2 =:= Ip orelse default;
                              (_, _) -> default
                           end}]}];
        {error, einval} ->
            [{server_name_indication, Name}]
    end.

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) when is_list(L) -> L.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

validate_test() ->
    ?assertEqual({ok, false}, validate(false)),
    ?assertMatch({ok, #{verify := peer, cacerts := system}}, validate(true)),
    ?assertMatch({ok, #{cacerts := {file, <<"/ca.pem">>}, server_name := <<"r">>}},
                 validate([{cacertfile, "/ca.pem"}, {server_name, "r"}])),
    ?assertMatch({ok, #{verify := none}}, validate(#{verify => none})),
    ?assertMatch({ok, #{cert := {pem, <<"C">>}, key := {pem, <<"K">>}}},
                 validate([{cert, <<"C">>}, {key, <<"K">>}])),
    ?assertEqual({error, {badarg, {tls, {verify, maybe}}}}, validate([{verify, maybe}])),
    ?assertEqual({error, {badarg, {tls, {certfile, 1}}}}, validate([{certfile, 1}])),
    ?assertEqual({error, {badarg, {tls, {cert, no_key}}}}, validate([{certfile, "c"}])),
    ?assertEqual({error, {badarg, {tls, {key, no_cert}}}}, validate([{keyfile, "k"}])),
    ?assertEqual({error, {badarg, {tls, yes}}}, validate(yes)).

load_test() ->
    {ok, Tls} = validate([{cacertfile, "/nonexistent/ca.pem"}]),
    ?assertEqual({error, {tls, {cacertfile, enoent}}}, load(Tls)),
    {ok, Pem} = validate([{cacerts, <<"PEM">>}]),
    ?assertMatch({ok, #{cacerts := <<"PEM">>, cert := undefined}}, load(Pem)).

bad_pem_test() ->
    {ok, Tls} = validate([{cacerts, <<"not a pem">>}]),
    {ok, Loaded} = load(Tls),
    ?assertEqual({error, {tls, {no_certificates, cacerts}}}, ssl_options(Loaded, "h")).
-endif.
