%%% @doc nsync: a Redis/Valkey replica inside the BEAM.
%%%
%%% `start_link/1' starts a link process that connects to a master as a
%%% replica (like `redis-server --replicaof'), receives the snapshot and then
%%% the live command stream, and gives each event to a callback, or keeps an
%%% ETS mirror of the master's dataset (the default).
%%%
%%% Options (a proplist as in the original nsync, or a map; see
%%% {@type option()}):
%%% <ul>
%%% <li>`{host, H}' / `{ip, H}': master address, a string, binary, atom or
%%%     inet tuple (default `"localhost"')</li>
%%% <li>`{port, P}': master port (6379)</li>
%%% <li>`{pass, P}', `{user, U}': password, and ACL user name (sent as
%%%     `AUTH user pass', so `user' needs `pass')</li>
%%% <li>`{callback, Cb}': `{M, F}', `{M, F, A}' (called as
%%%     `apply(M, F, A ++ [Event])'), a fun of arity 1, or a pid (events sent
%%%     as messages). Default: everything goes to the table named by `name'.</li>
%%% <li>`{block, true}' (or the atom `block'): return only once the first
%%%     snapshot is loaded; `{timeout, Ms}' (360000) then bounds the wait: on
%%%     timeout the link is stopped and `{error, timeout}' returned.</li>
%%% <li>`{name, Atom}': name of the default table (`nsync'); two links with
%%%     the default callback need different names.</li>
%%% <li>`{db, N | all}': the database mirrored (0). A user callback sees
%%%     only the events of that database (and FLUSHALL, SWAPDB); with `all'
%%%     every database has its own table (`tid/2').</li>
%%% <li>`{keys, Filters}': mirror only some keys: `{prefix, P}' (keys
%%%     starting with `P'), `{match, Pattern}' (Redis `MATCH' glob syntax:
%%%     `*', `?', `[a-z]', `[^...]', `\' escapes), `{db, N | [N]}' (those
%%%     databases, each in its own table; with `{db, N}' it must hold N). A
%%%     key is kept when its name starts with a prefix or matches a pattern
%%%     (any name if none is given) and it is in one of the databases.
%%%     Filtered-out keys are skipped in the NIF, snapshot and stream; see
%%%     the README for commands whose keys straddle the filter.</li>
%%% <li>`{connect_timeout, Ms}' (5000): TCP connect timeout (and the TLS
%%%     handshake's).</li>
%%% <li>`{master_timeout, Ms}' (60000): a master that sends nothing for
%%%     this long is gone (as a replica's `repl-timeout'; masters PING every
%%%     10 s): the link drops it and reconnects, resuming with PSYNC.</li>
%%% <li>`{tls, true | TlsOpts}': TLS to the master (rustls), `true'
%%%     verifying it against well-known roots; TlsOpts `cacertfile' /
%%%     `cacerts' (PEM), `certfile' + `keyfile' / `cert' + `key' (mutual
%%%     TLS), `server_name' (SNI, default the host), `{verify, none}' (tests
%%%     only). See `nsync_tls'.</li>
%%% <li>`{sentinel, #{sentinels := [{Host, Port}], master := Name}}' (plus
%%%     `user', `pass', `tls' for the sentinels): the master is found
%%%     through Redis Sentinel and followed through failovers (with PSYNC:
%%%     no full resync when the promoted replica has what nsync has);
%%%     `host' and `port' are not used. See `nsync_sentinel'.</li>
%%% <li>`{compressed, Bool}' (true): the mirror's data tables are ETS
%%%     `compressed': about half the memory for collections, reads and
%%%     writes of small values no slower; reads of hashes of more than 32
%%%     fields slower (see the README).</li>
%%% <li>`{big_threshold, N | off}' (64): a list, set, zset or hash of more
%%%     than N elements (a string of more than N KiB) is held by
%%%     the NIF as a big value, changed in place by each write; its ETS row
%%%     is `{Key, Handle}' (read it with `lookup/2' or the element reads);
%%%     `off': every value is a term.</li>
%%% <li>`{hll_sparse_max_bytes, N}' (3000): the master's
%%%     `hll-sparse-max-bytes', which the mirror's HyperLogLogs follow.</li>
%%% <li>`{geo_formula, before_7_0 | since_7_0}' (since_7_0): `before_7_0'
%%%     for a Redis master older than 7.0, whose GEO distances the mirror's
%%%     stored GEO searches then compute as it does.</li>
%%% <li>`{max_value_bytes, N | infinity}' (infinity): the largest value
%%%     accepted, in bytes (a snapshot key's string, or its collection's
%%%     elements together; a command's arguments together). A larger one
%%%     ends the session with `{too_large, #{key, bytes, limit}}' as soon as
%%%     its lengths say so, before it is buffered. Without it nsync accepts
%%%     what a master may send (Redis exempts its replication link from its
%%%     own limits), still holding an incomplete value in about the memory
%%%     its bytes take.</li>
%%% </ul>
%%%
%%% Events ({@type event()}): `{load, Key, Value}', `{load, eof}',
%%% `{cmd, Cmd, Args}', `{error, closed}' (the link reconnects by itself),
%%% and `{error, {unhandled, Cmd}}'. Values are described by
%%% {@type value()}. The callback's return value for `load' and `cmd'
%%% events routes them: an atom names the table the event is applied to
%%% (created on demand, read with `tid/1'); `undefined', `skip', `ok', `true'
%%% and `false' store nothing.
%%%
%%% Errors: a bad option (or options that are not a list or map) gives
%%% `{error, {badarg, Opt}}'. With `{block, true}', what retrying cannot fix
%%% gives `{error, Reason}' at once (e.g. `{connect, econnrefused}',
%%% `{tls, unknown_ca}', `{auth, Msg}', `{noperm, Msg}', `{protocol, Msg}'
%%% for a peer that is not a Redis master, `{rdb, Kind, Offset}'). Otherwise
%%% every failure is retried with backoff (capped at 1 s once the link has
%%% data, 10 s before): a link never stops because of its master, and while
%%% it is not streaming its tables keep the last data, `status/1' saying
%%% `stale => true' and `last_error'.
-module(nsync).

-export([start_link/0, start_link/1, load_file/2, child_spec/1, stop/1, status/1,
         tid/0, tid/1, tid/2, lookup/2, ttl/2]).
%% element reads
-export([hget/3, hmget/3, hlen/2, sismember/3, scard/2, zscore/3, zrange/4,
         zrangebyscore/4, zcard/2, lrange/4, llen/2, xrange/4, xrange/5,
         xrevrange/4, xrevrange/5, xlen/2]).

-export_type([option/0, options/0, key_filter/0, file_option/0, tls_option/0, callback/0,
              event/0, value/0, score/0,
              stream/0, stream_id/0, stream_meta/0, stream_group/0,
              stream_consumer/0, module_value/0, status/0, table/0]).

%% (edoc reads a type's doc from the comment after it.)
-type option() :: {host | ip, string() | binary() | atom() | inet:ip_address()}
                | {port, inet:port_number()}
                | {pass, string() | binary() | undefined}
                | {user, string() | binary() | undefined}
                | {callback, callback() | undefined}
                | block | {block, boolean()}
                | {timeout, timeout()}
                | {name, atom()}
                | {db, non_neg_integer() | all}
                | {keys, [key_filter()]}
                | {connect_timeout, pos_integer()}
                | {master_timeout, pos_integer()}
                | {tls, true | [tls_option()] | #{atom() => term()}}
                | {sentinel, #{sentinels := [{string() | binary() | inet:ip_address(),
                                              inet:port_number()}],
                               master := string() | binary(),
                               user => string() | binary(),
                               pass => string() | binary(),
                               tls => true | [tls_option()] | #{atom() => term()}}}
                | {compressed, boolean()}
                | {big_threshold, pos_integer() | off}
                | {max_value_bytes, pos_integer() | infinity}

                | {hll_sparse_max_bytes, non_neg_integer()}
                | {geo_formula, before_7_0 | since_7_0}.
%% One option of `start_link/1'.

-type tls_option() :: {cacertfile | certfile | keyfile, file:filename_all()}
                    | {cacerts | cert | key, binary()}
                    | {server_name, string() | binary()}
                    | {verify, none | peer}.
%% One TLS option (see `nsync_tls'); PEMs as binaries.

-type options() :: [option()] | #{atom() => term()}.
%% A proplist (the first occurrence of an option wins) or a map of them.

-type key_filter() :: {prefix, string() | binary()}
                    | {match, string() | binary()}
                    | {db, non_neg_integer() | [non_neg_integer(), ...]}.
%% One element of the `keys' option: a key name prefix, a glob pattern
%% (Redis `MATCH' syntax), or databases.

-type file_option() :: {key, string() | binary()}
                     | {callback, callback() | undefined}
                     | {timeout, timeout()}
                     | {name, atom()}
                     | {db, non_neg_integer() | all}
                     | {keys, [key_filter()]}
                     | {compressed, boolean()}
                     | {big_threshold, pos_integer() | off}
                     | {max_value_bytes, pos_integer() | infinity}
                     | {hll_sparse_max_bytes, non_neg_integer()}
                     | {geo_formula, before_7_0 | since_7_0}.
%% One option of `load_file/2': `{key, Key}' says the file is the DUMP
%% payload of `Key'; the others are those of `start_link/1'.

-type callback() :: {module(), atom()} | {module(), atom(), list()}
                  | fun((event()) -> term()) | pid().
%% Where events go; the result of a `load' or `cmd' event routes it.

-type event() :: {load, binary(), value()} | {load, eof}
               | {cmd, binary(), [binary()]}
               | {error, closed} | {error, {unhandled, binary()}}.
%% What a callback receives (see the module doc).

-type value() :: binary() | [binary()] | [{score(), binary()}]
               | #{binary() => binary()} | stream() | module_value().
%% A key's value: a string, a list (in order), a set (sorted), a zset
%% (`[{Score, Member}]' in Redis order), a hash, a stream or a module value.

-type score() :: float() | inf | '-inf' | nan.
%% A zset score; `nan' only from a corrupt snapshot (Redis refuses NaN).

-type stream() :: {stream, [{stream_id(), [binary()]}], stream_meta()}.

-type stream_id() :: {non_neg_integer(), non_neg_integer()}.
%% `{Ms, Seq}'.

-type stream_meta() :: #{last_id := stream_id(),
                         length := non_neg_integer(),
                         first_id := stream_id() | undefined,
                         max_deleted_id := stream_id() | undefined,
                         entries_added := non_neg_integer() | undefined,
                         groups := [stream_group()]}.
%% `first_id', `max_deleted_id' and `entries_added' are `undefined' in
%% snapshots older than Redis 7.0.

-type stream_group() :: #{name := binary(),
                          last_delivered_id := stream_id(),
                          entries_read := non_neg_integer() | undefined,
                          pending := [{stream_id(), non_neg_integer(),
                                       non_neg_integer()}],
                          consumers := [stream_consumer()]}.
%% `pending': `[{Id, DeliveryTimeMs, DeliveryCount}]'.

-type stream_consumer() :: #{name := binary(),
                             seen_time := non_neg_integer(),
                             active_time := non_neg_integer() | undefined,
                             pending := [stream_id()]}.
%% Times in ms since the epoch; `active_time' is `undefined' before 7.2.

-type module_value() :: {module, binary(), non_neg_integer(), binary()}.
%% A module type's value, undecoded: `{module, TypeName, EncVersion,
%% RawPayload}'.

-type status() :: #{state := connecting | syncing | streaming | disconnected | loaded,
                    master := {binary(), inet:port_number()} | undefined,
                    replid := binary() | undefined,
                    offset := integer() | undefined,
                    master_offset := integer() | undefined,
                    lag := non_neg_integer() | undefined,
                    keys_loaded := non_neg_integer(),
                    commands := non_neg_integer(),
                    bytes := non_neg_integer(),
                    last_io := integer() | undefined,
                    connected_since := integer() | undefined,
                    attempts := non_neg_integer(),
                    next_retry := integer() | undefined,
                    last_error := term(),
                    last_error_at := integer() | undefined,
                    stale := boolean(),
                    stale_reason := nsync_status:stale_reason() | undefined,
                    unhandled := non_neg_integer(),
                    reconnects := non_neg_integer(),
                    callback_errors := non_neg_integer(),
                    tables := [atom()]}.
%% What `status/1' reports (times in ms since the epoch). `master' is that
%% of the current or last session (`undefined' before the first one, and
%% for a loaded file, whose state is `loaded');
%% `offset' the replication offset applied, `master_offset' the master's as
%% far as received, `lag' the difference in bytes; `bytes' received since
%% the start, `last_io' when bytes last came; `connected_since' when the
%% master last answered PSYNC (`undefined' while not connected);
%% `attempts' the failed attempts in a row, `next_retry' when the next
%% starts; `last_error' why the last session or attempt failed (an
%% `nsync_nif:reason()' such as `{connect, econnrefused}', or `undefined'),
%% kept after a reconnect, `last_error_at' when; `stale' whether the data
%% may be behind the master, `stale_reason' why (see
%% {@type nsync_status:stale_reason()}).

-type table() :: atom() | ets:tid().
%% A table's name (the `name' option, or an atom a callback routed to) or
%% its ETS id.

%% @doc Starts a link with the default options (localhost:6379, ETS mirror).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    start_link([]).

%% @doc Starts a link process linked to the caller. See the module doc for
%% the options.
-spec start_link(options()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    case nsync_opts:validate(Opts) of
        {ok, #{block := true} = Config} -> start_blocking(Config);
        {ok, Config} -> (starter(Config))(Config, undefined);
        {error, _} = Error -> Error
    end.

%% @doc Loads an RDB file (a `dump.rdb' or a `BGSAVE' of any Redis 2.x-8.x
%% or Valkey) into the tables a link would make of it: the same values,
%% callback, routing, `db' and `keys' filters. With `{key, Key}', the file
%% is instead the `DUMP' payload of one key, loaded as `Key'. Returns once
%% the file is loaded: `{ok, Pid}', a process linked to the caller that
%% keeps the tables (`tid/1', `lookup/2' ..., `status/1' says `loaded')
%% until `stop/1'. The file is read as it is loaded, a chunk at a time,
%% so memory does not grow with its size. Keys whose expiry has passed are
%% not loaded.
%%
%% Errors: `{error, {file, Posix}}' (cannot open or read it), `{error,
%% {rdb, Kind, Offset}}' (not a valid snapshot or payload; `truncated' if
%% it ends inside one), `{error, {badarg, Opt}}', `{error,
%% {already_started, Pid}}' when the table name belongs to a running link
%% or loaded file (names are node-wide: give the file another `name'), and
%% `{error, timeout}' past `{timeout, Ms}' (`infinity' by default).
-spec load_file(file:filename_all(), [file_option()] | #{atom() => term()}) ->
          {ok, pid()} | {error, term()}.
load_file(Path, Opts) ->
    case nsync_opts:validate_file(Path, Opts) of
        {ok, Config} -> start_blocking(Config);
        {error, _} = Error -> Error
    end.

%% A link, or with `cluster' a cluster's manager (which starts the links).
starter(#{cluster := _}) -> fun nsync_cluster:start_link/2;
starter(_) -> fun nsync_link:start_link/2.

%% @doc A supervisor child spec for a link with `Opts' (id `{nsync, Name}',
%% `Name' the `name' option). Elixir's `{:nsync, opts}' child tuples call it.
%% The link is a worker restarted on failure; with `{block, true}' the
%% supervisor's start (and restart) waits for the snapshot.
-spec child_spec(options()) -> supervisor:child_spec().
child_spec(Opts) ->
    Name = case Opts of
               #{name := N} -> N;
               _ when is_map(Opts) -> nsync;
               _ -> proplists:get_value(name, Opts, nsync)
           end,
    #{id => {?MODULE, Name},
      start => {?MODULE, start_link, [Opts]},
      restart => permanent,
      shutdown => 5000,
      type => worker,
      modules => [?MODULE, nsync_link, nsync_cluster]}.

%% @doc Stops a link; its tables go with it. (A link that crashes or is
%% killed leaves its tables to the next link started with its name.)
-spec stop(pid()) -> ok.
stop(Pid) ->
    gen_server:stop(Pid).

%% @doc The link's state (`connecting | syncing | streaming | disconnected'),
%% master, position and lag, counters, I/O, retries, last error, whether
%% its data may be stale and why, and its table names (see {@type
%% status()}). Answered at once, whatever the link is doing (a slow
%% callback does not delay it): it is read from where the facts are kept,
%% not asked of the link process. Exits with `noproc' if `Pid' is not a
%% running link.
-spec status(pid()) -> status() | nsync_cluster:status().
status(Pid) ->
    case nsync_status:facts(Pid) of
        #{cluster := _} -> nsync_cluster:status(Pid);
        _ -> nsync_link:status(Pid)
    end.

%% @doc The ETS table of the default mirror (name `nsync'), `undefined'
%% until its first snapshot is loaded.
-spec tid() -> ets:tid() | undefined.
tid() ->
    tid(nsync).

%% @doc The ETS table named `Name' (the default mirror's `name', or an atom a
%% callback routed events to), or `undefined': no such table, or its first
%% snapshot is not loaded yet. Rows are `{Key, Value}'; the table is
%% replaced by a new one after a full resync, so look it up again rather
%% than keeping it for long. If its link crashes, the table stays until
%% the restarted link's snapshot replaces it (`status/1' says `stale').
-spec tid(atom()) -> ets:tid() | undefined.
tid(Name) when is_atom(Name) ->
    nsync_registry:tid(Name).

%% @doc The ETS table of database `Db' in mirror `Name': with `{db, all}'
%% every database has its own table (`tid/1' gives db 0's); with `{db, N}'
%% only `tid(Name, N)' exists (the same as `tid(Name)'). `undefined' if there is none (yet).
-spec tid(atom(), non_neg_integer()) -> ets:tid() | undefined.
tid(Name, Db) when is_atom(Name), is_integer(Db), Db >= 0 ->
    nsync_registry:tid(Name, Db).

%% @doc `[{Key, Value}]' for `Key' in a table (name or tid), `[]' if absent
%% or expired. Raises `badarg' for a name without a table (yet).
-spec lookup(table(), binary()) -> [{binary(), value()}].
lookup(Table, Key) ->
    nsync_mirror:lookup(resolve(Table), Key).

%% @doc The expiry of `Key' (ms since the epoch), `undefined' if it has none,
%% `not_found' if absent.
-spec ttl(table(), binary()) -> integer() | undefined | not_found.
ttl(Table, Key) ->
    nsync_mirror:ttl(resolve(Table), Key).

%%% ------------------------------------------------------------ element reads
%%% They read one element or range of a key without building its whole
%%% value when it is a big one, hide expired keys and hash fields as
%%% `lookup/2' does, treat an absent key as empty, and raise
%%% `{wrongtype, Key}' for a key of another type.

%% @doc HGET: the value of `Field' in hash `Key', `undefined' if absent.
-spec hget(table(), binary(), binary()) -> binary() | undefined.
hget(Table, Key, Field) -> nsync_read:hget(resolve(Table), Key, Field).

%% @doc HMGET: the values of `Fields' in hash `Key', `undefined' for each
%% absent one.
-spec hmget(table(), binary(), [binary()]) -> [binary() | undefined].
hmget(Table, Key, Fields) -> nsync_read:hmget(resolve(Table), Key, Fields).

%% @doc HLEN: the number of fields of hash `Key'.
-spec hlen(table(), binary()) -> non_neg_integer().
hlen(Table, Key) -> nsync_read:hlen(resolve(Table), Key).

%% @doc SISMEMBER: whether `Member' is in set `Key'.
-spec sismember(table(), binary(), binary()) -> boolean().
sismember(Table, Key, Member) -> nsync_read:sismember(resolve(Table), Key, Member).

%% @doc SCARD: the number of members of set `Key'.
-spec scard(table(), binary()) -> non_neg_integer().
scard(Table, Key) -> nsync_read:scard(resolve(Table), Key).

%% @doc ZSCORE: the score of `Member' in zset `Key', `undefined' if absent.
-spec zscore(table(), binary(), binary()) -> score() | undefined.
zscore(Table, Key, Member) -> nsync_read:zscore(resolve(Table), Key, Member).

%% @doc ZRANGE by rank: `[{Score, Member}]' of ranks `Start'..`Stop'
%% (inclusive; 0 is the lowest score, -1 the highest).
-spec zrange(table(), binary(), integer(), integer()) -> [{score(), binary()}].
zrange(Table, Key, Start, Stop) -> nsync_read:zrange(resolve(Table), Key, Start, Stop).

%% @doc ZRANGE BYSCORE: `[{Score, Member}]' with scores from `Min' to
%% `Max' in order; a bound `{exclusive, S}' excludes `S' (Redis's `(S').
-spec zrangebyscore(table(), binary(), nsync_read:score_bound(), nsync_read:score_bound()) ->
          [{score(), binary()}].
zrangebyscore(Table, Key, Min, Max) -> nsync_read:zrangebyscore(resolve(Table), Key, Min, Max).

%% @doc ZCARD: the number of members of zset `Key'.
-spec zcard(table(), binary()) -> non_neg_integer().
zcard(Table, Key) -> nsync_read:zcard(resolve(Table), Key).

%% @doc LRANGE: the elements `Start'..`Stop' of list `Key' (inclusive,
%% negative from the end).
-spec lrange(table(), binary(), integer(), integer()) -> [binary()].
lrange(Table, Key, Start, Stop) -> nsync_read:lrange(resolve(Table), Key, Start, Stop).

%% @doc LLEN: the length of list `Key'.
-spec llen(table(), binary()) -> non_neg_integer().
llen(Table, Key) -> nsync_read:llen(resolve(Table), Key).

%% @doc XRANGE: the entries of stream `Key' with ids in `Start'..`End'
%% (inclusive; `'-'' and `'+'' are the first and last ids, a bare `Ms'
%% means `{Ms, 0}' as a start and the last id of `Ms' as an end).
-spec xrange(table(), binary(), nsync_read:stream_bound(), nsync_read:stream_bound()) ->
          [{stream_id(), [binary()]}].
xrange(Table, Key, Start, End) -> nsync_read:xrange(resolve(Table), Key, Start, End).

%% @doc XRANGE ... COUNT: the first `Count' of those entries.
-spec xrange(table(), binary(), nsync_read:stream_bound(), nsync_read:stream_bound(),
             non_neg_integer() | infinity) -> [{stream_id(), [binary()]}].
xrange(Table, Key, Start, End, Count) ->
    nsync_read:xrange(resolve(Table), Key, Start, End, Count).

%% @doc XREVRANGE: the entries of stream `Key' with ids from `End' down
%% to `Start' (inclusive), the newest first.
-spec xrevrange(table(), binary(), nsync_read:stream_bound(), nsync_read:stream_bound()) ->
          [{stream_id(), [binary()]}].
xrevrange(Table, Key, End, Start) -> nsync_read:xrevrange(resolve(Table), Key, End, Start).

%% @doc XREVRANGE ... COUNT: the first `Count' of those entries (the
%% newest).
-spec xrevrange(table(), binary(), nsync_read:stream_bound(), nsync_read:stream_bound(),
                non_neg_integer() | infinity) -> [{stream_id(), [binary()]}].
xrevrange(Table, Key, End, Start, Count) ->
    nsync_read:xrevrange(resolve(Table), Key, End, Start, Count).

%% @doc XLEN: the length of stream `Key'.
-spec xlen(table(), binary()) -> non_neg_integer().
xlen(Table, Key) -> nsync_read:xlen(resolve(Table), Key).

%%% ------------------------------------------------------------ internal

resolve(Name) when is_atom(Name) ->
    case tid(Name) of
        undefined -> erlang:error(badarg, [Name]);
        Tid -> Tid
    end;
resolve(Tid) ->
    Tid.

%% The link sends `{Ref, loaded}' after the first snapshot, or
%% `{Ref, {error, Reason}}' and stops if it cannot connect at all.
start_blocking(#{timeout := Timeout} = Config) ->
    Ref = make_ref(),
    case (starter(Config))(Config, {self(), Ref}) of
        {ok, Pid} ->
            MRef = monitor(process, Pid),
            receive
                {Ref, loaded} ->
                    demonitor(MRef, [flush]),
                    {ok, Pid};
                {Ref, {error, _} = Error} ->
                    %% The link stops right after telling: return once it
                    %% is gone, so no process outlives the error.
                    receive {'DOWN', MRef, process, Pid, _} -> ok
                    after 5000 -> exit(Pid, kill)
                    end,
                    forget(Pid, MRef),
                    Error;
                {'DOWN', MRef, process, Pid, Reason} ->
                    forget(Pid, MRef),
                    {error, Reason}
            after Timeout ->
                    %% Unlike the original nsync, do not leave the link running.
                    unlink(Pid),
                    exit(Pid, shutdown),
                    receive {'DOWN', MRef, process, Pid, _} -> ok end,
                    forget(Pid, MRef),
                    receive {Ref, _} -> ok after 0 -> ok end,
                    {error, timeout}
            end;
        {error, _} = Error ->
            Error
    end.

%% Drops what a stopped link may have left in a trapping caller's mailbox.
forget(Pid, MRef) ->
    unlink(Pid),
    demonitor(MRef, [flush]),
    receive {'EXIT', Pid, _} -> ok after 0 -> ok end.
