%%% @doc The NIF: one replication link per resource.
%%%
%%% A link owns the replication position (replid, offset, current db), which
%%% survives reconnects. Each connection attempt is a session: `start/2'
%%% starts a pump thread that connects, then reads the socket, runs the
%%% handshake, snapshot and command stream (with ACKs), and sends the events
%%% to the calling process in batches:
%%%
%%%   `{nsync_pump, Session, {batch, [Event]}}'  events, in stream order
%%%   `{nsync_pump, Session, {closed, Reason}}'  the session is over; always
%%%                                              its last message
%%%
%%% Flow control is by credit: at most 4 batches are in flight; after
%%% handling one, the process calls `ack(Link, Session)'. Without credit the
%%% pump reads nothing, so a slow consumer slows the master (as a slow
%%% replica does) and memory stays bounded. No call blocks: `start/2', `ack/2',
%%% `info/1' and `close/1' return at once. Dropping the resource (its owner
%%% died) ends the session and closes the socket, as `close/1' does.
-module(nsync_nif).

-export([open/1, start/2, ack/2, info/1, close/1, decode_dump/1]).
%% big values (see nsync_big)
-export([big_new/2, big_read/2, big_read_dirty/2, big_write/2, big_write_dirty/2]).

-on_load(init/0).

-type link() :: reference().
-type session() :: pos_integer().
-type config() :: #{host := binary(),
                    port := inet:port_number(),
                    user => binary(),
                    pass => binary(),
                    connect_timeout => pos_integer(),
                    listening_port => inet:port_number()}.
%% How snapshot keys are delivered: as `{key, ...}' events, or as rows of
%% the ETS mirror for database Db (or every database).
-type delivery() :: events | {rows, non_neg_integer() | all}.
%% Events, in stream order:
%%   {fullresync, Replid, Offset}   a full sync starts; Replid is undefined
%%                                  (and Offset 0) for a pre-2.8 master (SYNC)
%%   {continue, Replid, Offset}     a partial resync was accepted; commands
%%                                  follow from Offset + 1
%%   {key, Db, Key, Value, ExpireAtMs | undefined, FieldExpires}
%%                                  one key of the snapshot (expired keys are
%%                                  skipped); FieldExpires is [{Field, Ms}]
%%                                  (delivery `events')
%%   {rows, Db, [{Key, Value}], [{Key, ExpireAtMs | undefined, #{Field => Ms}}]}
%%                                  a run of snapshot keys of database Db as
%%                                  the mirror's data and expiry rows (the
%%                                  latter only for keys with an expiry;
%%                                  delivery `{rows, _}', other dbs left out)
%%   {big_hash, Db, Key, [{Field, Value}], ExpireAtMs | undefined, FieldExpires}
%%                                  a key holding a hash of more than 32 live
%%                                  fields, in either delivery: the pump
%%                                  cannot build maps that big (the VM builds
%%                                  them with scheduler-only memory), so the
%%                                  caller makes the map
%%   {function, Source}             a function library of the snapshot
%%   {load_eof, Replid, Offset}     the snapshot is complete (only now are
%%                                  Replid/Offset the link's position)
%%   {cmd, Db, Cmd, Args}           one command of the stream; Cmd lowercase;
%%                                  every command but PING and REPLCONF, so
%%                                  select/multi/exec too (a resume may start
%%                                  inside a MULTI block); Db is the db the
%%                                  command applies to (for select: the new one)
%% A full sync that was cut short was not committed: the next session gives
%% {continue, ...} from the previous position or a new {fullresync, ...}.
%% Reasons of {closed, Reason}: {connect, Posix | nxdomain}, {auth, Msg}
%% (wrong or missing password: retrying will not help), {master, Msg} (an
%% error line, e.g. `<<"-LOADING ...">>': retry later), {rdb, Kind, Offset},
%% {protocol, Detail}, eof, {recv, Posix | timeout} (60 s of silence),
%% {send, Posix}, {internal, Msg} (a bug; the next session starts over with a
%% full sync), owner_gone, closed. Posix is an atom (econnrefused, ...) or,
%% for rare errors, the OS message.
-type event() :: tuple().
-export_type([link/0, session/0, config/0, delivery/0, event/0]).

init() ->
    SoName = case code:priv_dir(nsync) of
                 {error, bad_name} ->
                     filename:join([filename:dirname(code:which(?MODULE)), "..", "priv", "nsync_nif"]);
                 Dir ->
                     filename:join(Dir, "nsync_nif")
             end,
    erlang:load_nif(SoName, 0).

%% @doc Creates a link; it connects when a session starts (`start/2').
%% Checks the config (connect_timeout in ms, default 1000; listening_port
%% default 0) and answers `{error, {badarg, Key}}' for a bad or unknown key,
%% `{error, {badarg, config}}' if it is not a map.
-spec open(config()) -> {ok, link()} | {error, {badarg, atom()}}.
open(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Starts a session: a pump thread connects (resolving and connecting
%% with connect_timeout), resumes from the link's position and sends its
%% batches to the caller, tagged with the returned session id (unique in the
%% VM). One session at a time: `{error, running}' until the previous one
%% has sent `{closed, _}'; `{error, closed}' after `close/1'.
-spec start(link(), delivery()) ->
          {ok, session()} | {error, closed | running | {badarg, delivery} | {spawn, string()}}.
start(_Link, _Delivery) -> erlang:nif_error(nif_not_loaded).

%% @doc Gives the pump of `Session' a credit back: the caller has handled
%% one of its batches. Credits for another session are ignored.
-spec ack(link(), session()) -> ok.
ack(_Link, _Session) -> erlang:nif_error(nif_not_loaded).

%% @doc The link's state, at once:
%% `#{state => idle | connecting | handshake | loading | streaming | closed,
%%    host, port, replid => binary() | undefined,
%%    offset => integer() | undefined, db, keys_loaded, commands,
%%    last_error => Reason | undefined}' (counts since `open/1'; replid,
%% offset and db are the committed position, updated after each batch).
-spec info(link()) -> map().
info(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc Closes the link: the session's socket is shut down at once, even
%% while its pump waits in `read' or for credit (it then sends
%% `{closed, closed}' and exits); `start/2' answers `{error, closed}'.
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

%% @doc A big value of type `Kind' made from its term (see `nsync_big'):
%% `{ok, Handle}'; raises `badarg' if the term is not of that type. Runs
%% on a dirty CPU scheduler.
-spec big_new(nsync_big:kind(), term()) -> {ok, nsync_big:handle()}.
big_new(_Kind, _Value) -> erlang:nif_error(nif_not_loaded).

%% @doc Runs read operation `Op' on a big value on this scheduler; `busy'
%% if that would wait for a writer or take long (then `big_read_dirty/2').
-spec big_read(nsync_big:handle(), nsync_big:op()) -> term() | busy.
big_read(_Handle, _Op) -> erlang:nif_error(nif_not_loaded).

%% @doc `big_read/2' on a dirty CPU scheduler: waits and does any amount.
-spec big_read_dirty(nsync_big:handle(), nsync_big:op()) -> term().
big_read_dirty(_Handle, _Op) -> erlang:nif_error(nif_not_loaded).

%% @doc Runs write operation `Op' on a big value; `busy' as `big_read/2'.
-spec big_write(nsync_big:handle(), nsync_big:op()) -> term() | busy.
big_write(_Handle, _Op) -> erlang:nif_error(nif_not_loaded).

%% @doc `big_write/2' on a dirty CPU scheduler.
-spec big_write_dirty(nsync_big:handle(), nsync_big:op()) -> term().
big_write_dirty(_Handle, _Op) -> erlang:nif_error(nif_not_loaded).
