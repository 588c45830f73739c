%%% @doc The NIF: one replication link per resource.
%%%
%%% A link owns its socket, the replication protocol state (replid, offset,
%%% current db) and the RDB/RESP parsers. `poll/2' runs on a dirty I/O
%%% scheduler, does the socket I/O (connect, handshake, snapshot, command
%%% stream, ACKs) and returns a bounded batch of events; it never blocks for
%%% longer than about a second. Dropping the resource closes the socket.
-module(nsync_nif).

-export([open/1, poll/2, info/1, close/1, decode_dump/1]).

-on_load(init/0).

-type link() :: reference().
-type config() :: #{host := binary(),
                    port := inet:port_number(),
                    user => binary(),
                    pass => binary(),
                    connect_timeout => pos_integer(),
                    listening_port => inet:port_number()}.
%% Events, in stream order:
%%   {fullresync, Replid, Offset}   a full sync starts; Replid is undefined
%%                                  (and Offset 0) for a pre-2.8 master (SYNC)
%%   {continue, Replid, Offset}     a partial resync was accepted; commands
%%                                  follow from Offset + 1
%%   {key, Db, Key, Value, ExpireAtMs | undefined, FieldExpires}
%%                                  one key of the snapshot (expired keys are
%%                                  skipped); FieldExpires is [{Field, Ms}]
%%   {function, Source}             a function library of the snapshot
%%   {load_eof, Replid, Offset}     the snapshot is complete (only now are
%%                                  Replid/Offset the link's position)
%%   {cmd, Db, Cmd, Args}           one command of the stream; Cmd lowercase;
%%                                  every command but PING and REPLCONF, so
%%                                  select/multi/exec too (a resume may start
%%                                  inside a MULTI block); Db is the db the
%%                                  command applies to (for select: the new one)
%%   {closed, Reason}               the connection failed or is gone, always
%%                                  the last event of its batch; poll again
%%                                  to reconnect and resume (the caller
%%                                  chooses when: back off). A full sync that
%%                                  was cut short was not committed: expect
%%                                  {continue, ...} from the previous position
%%                                  or a new {fullresync, ...}.
%% Reasons: {connect, Posix | nxdomain}, {auth, Msg} (wrong or missing
%% password: retrying will not help), {master, Msg} (an error line, e.g.
%% <<"-LOADING ...">>: retry later), {rdb, Kind, Offset}, {protocol, Detail},
%% eof, {recv, Posix | timeout} (60 s of silence), {send, Posix}, closed.
%% Posix is an atom (econnrefused, ...) or, for rare errors, the OS message.
-type event() :: tuple().
-export_type([link/0, config/0, event/0]).

init() ->
    SoName = case code:priv_dir(nsync) of
                 {error, bad_name} ->
                     filename:join([filename:dirname(code:which(?MODULE)), "..", "priv", "nsync_nif"]);
                 Dir ->
                     filename:join(Dir, "nsync_nif")
             end,
    erlang:load_nif(SoName, 0).

%% @doc Creates a link; it connects on the first `poll/2'. Checks the
%% config (connect_timeout in ms, default 1000; listening_port default 0)
%% and answers `{error, {badarg, Key}}' for a bad or unknown key,
%% `{error, {badarg, config}}' if it is not a map.
-spec open(config()) -> {ok, link()} | {error, {badarg, atom()}}.
open(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Runs the link for a while and returns up to `Max' events: as soon
%% as there are some, or `{ok, []}' after about 50 ms without any; never
%% more than about a second (a final `{closed, Reason}' may make the batch
%% Max + 1 long). Resolving and connecting run in a helper thread, so a
%% connect_timeout longer than a poll just means polls answer `{ok, []}'
%% (state `connecting') until it connects or fails. Connection failures are
%% events
%% (`{closed, Reason}'); `{error, closed}' after `close/1', `{error,
%% poisoned}' if the link is unusable.
-spec poll(link(), pos_integer()) -> {ok, [event()]} | {error, closed | poisoned}.
poll(_Link, _Max) -> erlang:nif_error(nif_not_loaded).

%% @doc The link's state, without waiting for a running poll:
%% `#{state => idle | connecting | handshake | loading | streaming | closed,
%%    host, port, replid => binary() | undefined,
%%    offset => integer() | undefined, db, keys_loaded, commands,
%%    last_error => Reason | undefined}' (counts since `open/1'; replid,
%% offset and db are the committed position, updated after each poll).
-spec info(link()) -> map().
info(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc Closes the socket now, even while a poll runs (that poll then ends
%% with `{closed, closed}'); later polls answer `{error, closed}'.
-spec close(link()) -> ok.
close(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc The value of a `DUMP' payload (as `RESTORE' carries it), in the
%% representation of `{load, Key, Value}', with its hash fields' expiries;
%% `{ok, expired}' if it is a hash whose fields have all expired. Checks the
%% payload's RDB version and CRC-64 as Redis does. Runs on a dirty CPU
%% scheduler (a payload may hold a big collection).
-spec decode_dump(binary()) -> {ok, term(), [{binary(), integer()}]} | {ok, expired}
                               | {error, {rdb, atom(), non_neg_integer()}}.
decode_dump(_Payload) -> erlang:nif_error(nif_not_loaded).
