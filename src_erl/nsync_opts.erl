%%% @doc Validation of the options of `nsync:start_link/1' and
%%% `nsync:load_file/2'.
%%%
%%% Every option is checked up front, one clause per option, so that a bad
%%% one gives `{error, {badarg, Opt}}' at the call instead of a crash deep
%%% inside the link. The result is a complete config map with defaults.
-module(nsync_opts).

-export([validate/1, validate_file/2, nif_config/1, source/1]).

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
                    db := nsync_mirror:dbspec(),
                    %% the `keys' option: names kept (all if both lists are
                    %% empty, the filter then being one of databases, in `db')
                    keys := all | #{prefixes := [binary()], patterns := [binary()]},
                    compressed := boolean(),
                    big_threshold := pos_integer() | off,
                    max_value_bytes := pos_integer() | infinity,
                    connect_timeout := pos_integer(),
                    master_timeout := pos_integer(),
                    tls := nsync_tls:tls() | false,
                    %% the master is found through these sentinels
                    sentinel => nsync_sentinel:options(),
                    hll_sparse_max_bytes := non_neg_integer(),
                    geo_formula := before_7_0 | since_7_0,
                    %% `nsync:load_file/2': the file read instead of a master,
                    %% and the key of a DUMP payload file
                    file => binary(),
                    dump_key => binary() | undefined,
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
                    keys => all,
                    compressed => true,
                    big_threshold => 64,
                    max_value_bytes => infinity,
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

%% @doc Checks the file name and options of `nsync:load_file/2': those of
%% `validate/1' but the ones about a master (`host', `ip', `port', `pass',
%% `user', `block', `connect_timeout', `master_timeout', `tls', `sentinel'), plus `{key, Key}' (the file is the
%% DUMP payload of `Key'). The load always blocks; `timeout' defaults to
%% `infinity'.
-spec validate_file(term(), term()) -> {ok, config()} | {error, {badarg, term()}}.
validate_file(Path, Opts) when is_map(Opts) ->
    validate_file(Path, maps:to_list(Opts));
validate_file(Path, Opts) when is_list(Opts) ->
    try
        File = file_name(Path),
        {DumpKey, Rest} = dump_key(Opts),
        _ = [throw({badarg, Opt}) || Opt <- Rest, about_a_master(Opt)],
        case validate(Rest) of
            {ok, Config} ->
                Timeout = case lists:keymember(timeout, 1, Rest) of
                              true -> maps:get(timeout, Config);
                              false -> infinity
                          end,
                {ok, Config#{file => File, dump_key => DumpKey, block => true,
                             timeout => Timeout}};
            {error, _} = Error ->
                Error
        end
    catch
        throw:{badarg, _} = Bad -> {error, Bad}
    end;
validate_file(_Path, Opts) ->
    {error, {badarg, Opts}}.

%% @doc The part of the config the NIF needs (`nsync_nif:open/1'), every
%% key given: the NIF has no defaults of its own. The TLS files are read
%% here: `{error, {tls, {Opt, Posix}}}' when one cannot be. A key filter
%% takes the command table's key specs with it.
-spec nif_config(config()) -> {ok, nsync_nif:config()} | {error, {tls, term()}}.
nif_config(#{user := User, pass := Pass, connect_timeout := ConnectTimeout,
             master_timeout := MasterTimeout, db := Db, keys := Keys, tls := Tls,
             callback := Callback, big_threshold := Big, max_value_bytes := MaxValue}) ->
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
                   keys => case Keys of
                               all -> none;
                               #{} -> Keys#{commands => nsync_cmd:filter_table()}
                           end,
                   big_threshold => case Callback of default -> Big; _ -> off end,
                   max_value_bytes => MaxValue, tls => NifTls}};
        {error, _} = Error ->
            Error
    end.

%% @doc Where a session reads from (`nsync_nif:start/2'): the master the
%% options name, or the file of `nsync:load_file/2'.
-spec source(config()) -> nsync_nif:source().
source(#{file := File, dump_key := Key}) ->
    #{file => File, key => Key};
source(#{host := Host, port := Port}) ->
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
option({keys, Filters} = Opt, C) -> C#{keys => key_filter(Filters, Opt)};
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
option({max_value_bytes, infinity}, C) -> C#{max_value_bytes => infinity};
option({max_value_bytes, N}, C) when is_integer(N), N > 0 -> C#{max_value_bytes => N};
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

%% `[{prefix, P} | {match, Pattern} | {db, Db | [Db]}]' as
%% `#{prefixes, patterns, dbs}' (`all': no filter at all).
key_filter([], _Opt) ->
    all;
key_filter(Filters, Opt) when is_list(Filters) ->
    case is_proper(Filters) of
        true -> ok;
        false -> throw({badarg, Opt})
    end,
    Empty = #{prefixes => [], patterns => [], dbs => all},
    lists:foldr(fun(F, Acc) -> key_filter_item(F, Acc, Opt) end, Empty, Filters);
key_filter(_, Opt) ->
    throw({badarg, Opt}).

key_filter_item({prefix, P}, #{prefixes := Ps} = F, Opt) ->
    F#{prefixes := [text(P, Opt) | Ps]};
key_filter_item({match, P}, #{patterns := Ps} = F, Opt) ->
    F#{patterns := [text(P, Opt) | Ps]};
key_filter_item({db, N}, F, Opt) when is_integer(N) ->
    key_filter_item({db, [N]}, F, Opt);
key_filter_item({db, [_ | _] = Ns}, #{dbs := Dbs} = F, Opt) ->
    _ = [throw({badarg, Opt}) || N <- Ns, not (is_integer(N) andalso N >= 0)],
    F#{dbs := lists:usort(Ns ++ case Dbs of all -> []; _ -> Dbs end)};
key_filter_item(_, _F, Opt) ->
    throw({badarg, Opt}).

%% An ACL user name is sent as `AUTH user pass': it needs a password.
check_combination(#{user := U, pass := undefined}) when U =/= undefined ->
    {error, {badarg, {user, U}}};
%% a cluster has database 0 only
check_combination(#{cluster := _, db := Db}) when Db =/= 0 ->
    {error, {badarg, {db, Db}}};
%% the view's referee does not know filtered keys (yet)
check_combination(#{cluster := _, keys := Keys}) when Keys =/= all ->
    {error, {badarg, {keys, cluster}}};
check_combination(Config) ->
    databases(Config).

%% The databases mirrored: the `db' option (0 by default), narrowed by the
%% key filter's: without `db' (or with `{db, all}') those are mirrored;
%% with `{db, N}' they must hold N.
databases(#{keys := #{dbs := Dbs} = Keys} = Config) ->
    Names = maps:remove(dbs, Keys),
    case {Dbs, maps:get(db, Config, undefined)} of
        {all, undefined} -> {ok, Config#{keys := Names, db => 0}};
        {all, _} -> {ok, Config#{keys := Names}};
        {_, Db} when Db =:= undefined; Db =:= all -> {ok, Config#{keys := Names, db => Dbs}};
        {_, Db} ->
            case lists:member(Db, Dbs) of
                true -> {ok, Config#{keys := Names}};
                false -> {error, {badarg, {db, Db}}}
            end
    end;
databases(Config) ->
    {ok, Config#{db => maps:get(db, Config, 0)}}.

%% The options that are about a master (not for `load_file/2').
about_a_master(block) -> true;
about_a_master({Name, _}) ->
    lists:member(Name, [host, ip, port, pass, user, block, connect_timeout, master_timeout, tls,
                        sentinel]);
about_a_master(_) -> false.

%% `{key, Key}' (the first one) and the other options.
dump_key(Opts) ->
    Key = case lists:keyfind(key, 1, Opts) of
              {key, K} when is_binary(K) -> K;
              {key, K} = Opt -> text(K, Opt);
              false -> undefined
          end,
    {Key, [Opt || Opt <- Opts, not (is_tuple(Opt) andalso element(1, Opt) =:= key)]}.

%% A file name as the bytes the NIF opens.
file_name(Path) when is_binary(Path), Path =/= <<>> -> Path;
file_name(Path) when is_list(Path); is_atom(Path) ->
    try unicode:characters_to_binary(filename:flatten(Path), unicode,
                                     file:native_name_encoding()) of
        B when is_binary(B), B =/= <<>> -> B;
        _ -> throw({badarg, Path})
    catch
        error:_ -> throw({badarg, Path})
    end;
file_name(Path) ->
    throw({badarg, Path}).
