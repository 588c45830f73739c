%%% @doc Validation of the options of `nsync:start_link/1'.
%%%
%%% Every option is checked up front, one clause per option, so that a bad
%%% one gives `{error, {badarg, Opt}}' at the call instead of a crash deep
%%% inside the link. The result is a complete config map with defaults.
-module(nsync_opts).

-export([validate/1, nif_config/1, master/1]).

-export_type([config/0, callback/0]).

-type callback() :: default
                  | {module(), atom()}
                  | {module(), atom(), list()}
                  | fun((term()) -> term())
                  | pid().
-type config() :: #{host := binary(),
                    port := inet:port_number(),
                    pass := binary() | undefined,
                    user := binary() | undefined,
                    callback := callback(),
                    block := boolean(),
                    timeout := timeout(),
                    name := atom(),
                    db := non_neg_integer() | all,
                    compressed := boolean(),
                    big_threshold := pos_integer() | off,
                    connect_timeout := pos_integer(),
                    master_timeout := pos_integer(),
                    tls := nsync_tls:tls() | false,
                    %% the master is found through these sentinels
                    sentinel => nsync_sentinel:options(),
                    hll_sparse_max_bytes := non_neg_integer(),
                    geo_formula := before_7_0 | since_7_0,
                    %% not an option: set by a layer above links (see
                    %% nsync_link) to pick each session's master
                    next_master => nsync_link:next_master(),
                    %% not an option: set by a layer above links, added to
                    %% the metadata of the link's telemetry events (e.g.
                    %% `shard'; see nsync_observe)
                    telemetry_metadata => map(),
                    %% a Redis Cluster's seed nodes (nsync_cluster)
                    cluster => [{binary(), inet:port_number()}, ...],
                    cluster_refresh => pos_integer(),
                    %% not an option: a cluster shard's link writes its
                    %% part of the cluster's view (nsync_cluster_shard)
                    cluster_shard => {nsync_cluster_view:view(), pos_integer()}}.

-define(DEFAULTS, #{host => <<"localhost">>,
                    port => 6379,
                    pass => undefined,
                    user => undefined,
                    callback => default,
                    block => false,
                    timeout => 360000,
                    name => nsync,
                    db => 0,
                    compressed => true,
                    big_threshold => 64,
                    connect_timeout => 5000,
                    master_timeout => 60000,
                    tls => false,
                    hll_sparse_max_bytes => 3000,
                    geo_formula => since_7_0}).

%% @doc Checks `Opts' (a proplist as in nsync, or a map) and returns the
%% complete config. As with proplists, the first occurrence of an option wins.
-spec validate(term()) -> {ok, config()} | {error, {badarg, term()}}.
validate(Opts) when is_map(Opts) ->
    validate(maps:to_list(Opts));
validate(Opts) when is_list(Opts) ->
    %% A string (`start_link("localhost")') or an improper list is not a
    %% proplist: name the whole argument rather than its last character.
    case io_lib:printable_unicode_list(Opts) orelse not is_proper(Opts) of
        true when Opts =/= [] ->
            {error, {badarg, Opts}};
        _ ->
            try
                Config = lists:foldl(fun option/2, ?DEFAULTS, lists:reverse(Opts)),
                check_combination(Config)
            catch
                throw:{badarg, _} = Bad -> {error, Bad}
            end
    end;
validate(Opts) ->
    {error, {badarg, Opts}}.

%% @doc The part of the config the NIF needs (`nsync_nif:open/1'), every
%% key given: the NIF has no defaults of its own. The TLS files are read
%% here: `{error, {tls, {Opt, Posix}}}' when one cannot be.
-spec nif_config(config()) -> {ok, nsync_nif:config()} | {error, {tls, term()}}.
nif_config(#{user := User, pass := Pass, connect_timeout := ConnectTimeout,
             master_timeout := MasterTimeout, db := Db, tls := Tls,
             callback := Callback, big_threshold := Big}) ->
    Loaded = case Tls of
                 false -> {ok, undefined};
                 _ -> nsync_tls:load(Tls)
             end,
    case Loaded of
        {ok, NifTls} ->
            %% Snapshot values over the threshold come as big values for
            %% the default mirror; a callback gets every value as a term.
            {ok, #{user => User, pass => Pass, connect_timeout => ConnectTimeout,
                   master_timeout => MasterTimeout, listening_port => 0, db => Db,
                   big_threshold => case Callback of default -> Big; _ -> off end,
                   tls => NifTls}};
        {error, _} = Error ->
            Error
    end.

%% @doc The master the options name (`nsync_nif:start/2').
-spec master(config()) -> nsync_nif:master().
master(#{host := Host, port := Port}) ->
    #{host => Host, port => Port}.

%%% ------------------------------------------------------------ internal

option({host, H} = Opt, C) -> C#{host => host(H, Opt)};
option({ip, H} = Opt, C) -> C#{host => host(H, Opt)};
option({port, P}, C) when is_integer(P), P > 0, P < 65536 -> C#{port => P};
option({pass, undefined}, C) -> C#{pass => undefined};
option({pass, P} = Opt, C) -> C#{pass => text(P, Opt)};
option({user, undefined}, C) -> C#{user => undefined};
option({user, U} = Opt, C) -> C#{user => text(U, Opt)};
option({callback, Cb} = Opt, C) -> C#{callback => callback(Cb, Opt)};
option(block, C) -> C#{block => true};
option({block, B}, C) when is_boolean(B) -> C#{block => B};
option({timeout, infinity}, C) -> C#{timeout => infinity};
option({timeout, T}, C) when is_integer(T), T >= 0 -> C#{timeout => T};
option({name, N}, C) when is_atom(N), N =/= undefined -> C#{name => N};
option({db, all}, C) -> C#{db => all};
option({db, N}, C) when is_integer(N), N >= 0 -> C#{db => N};
option({connect_timeout, T}, C) when is_integer(T), T > 0 -> C#{connect_timeout => T};
option({master_timeout, T}, C) when is_integer(T), T > 0 -> C#{master_timeout => T};
option({sentinel, S}, C) ->
    case nsync_sentinel:validate(S) of
        {ok, Sentinel} -> C#{sentinel => Sentinel};
        {error, Bad} -> throw(Bad)
    end;
option({tls, T}, C) ->
    case nsync_tls:validate(T) of
        {ok, Tls} -> C#{tls => Tls};
        {error, Bad} -> throw(Bad)
    end;
option({compressed, B}, C) when is_boolean(B) -> C#{compressed => B};
option({big_threshold, off}, C) -> C#{big_threshold => off};
option({big_threshold, N}, C) when is_integer(N), N > 0 -> C#{big_threshold => N};
option({hll_sparse_max_bytes, N}, C) when is_integer(N), N >= 0 -> C#{hll_sparse_max_bytes => N};
option({geo_formula, F}, C) when F =:= before_7_0; F =:= since_7_0 -> C#{geo_formula => F};
option({cluster, [_ | _] = Seeds} = Opt, C) -> C#{cluster => [seed(S, Opt) || S <- Seeds]};
option({cluster_refresh, T}, C) when is_integer(T), T >= 100 -> C#{cluster_refresh => T};
option(Opt, _C) -> throw({badarg, Opt}).

seed({H, P}, Opt) when is_integer(P), P > 0, P < 65536 -> {host(H, Opt), P};
seed(_, Opt) -> throw({badarg, Opt}).

host(H, Opt) when is_tuple(H) ->
    case inet:is_ip_address(H) of
        true -> list_to_binary(inet:ntoa(H));
        false -> throw({badarg, Opt})
    end;
host(H, Opt) when is_atom(H) -> host(atom_to_list(H), Opt);
host(H, Opt) -> text(H, Opt).

%% A non-empty string or binary, as a binary.
text(T, _Opt) when is_binary(T), T =/= <<>> -> T;
text(T, Opt) when is_list(T), T =/= [] ->
    try unicode:characters_to_binary(T) of
        B when is_binary(B) -> B;
        _ -> throw({badarg, Opt})
    catch
        error:badarg -> throw({badarg, Opt})
    end;
text(_, Opt) -> throw({badarg, Opt}).

callback(undefined, _) -> default;
callback({M, F} = Cb, _) when is_atom(M), is_atom(F) -> Cb;
callback({M, F, A} = Cb, _) when is_atom(M), is_atom(F), is_list(A) -> Cb;
callback(Fun, _) when is_function(Fun, 1) -> Fun;
callback(Pid, _) when is_pid(Pid) -> Pid;
callback(_, Opt) -> throw({badarg, Opt}).

is_proper([_ | T]) -> is_proper(T);
is_proper(Tail) -> Tail =:= [].

%% An ACL user name is sent as `AUTH user pass': it needs a password.
check_combination(#{user := U, pass := undefined}) when U =/= undefined ->
    {error, {badarg, {user, U}}};
%% a cluster has database 0 only
check_combination(#{cluster := _, db := Db}) when Db =/= 0 ->
    {error, {badarg, {db, Db}}};
check_combination(Config) ->
    {ok, Config}.
