%%% @doc The NIF: one replication link per resource.
%%%
%%% A link owns its socket, the replication protocol state (replid, offset,
%%% current db) and the RDB/RESP parsers. `poll/2' runs on a dirty I/O
%%% scheduler, does the socket I/O (connect, handshake, snapshot, command
%%% stream, ACKs) and returns a bounded batch of events; it never blocks for
%%% longer than about a second. Dropping the resource closes the socket.
-module(nsync_nif).

-export([open/1, poll/2, info/1, close/1]).

-on_load(init/0).

-type link() :: reference().
-type config() :: #{host := binary(),
                    port := inet:port_number(),
                    user => binary(),
                    pass => binary(),
                    connect_timeout => pos_integer(),
                    listening_port => inet:port_number()}.
%% Events, in stream order:
%%   {fullresync, Replid, Offset}   a full sync starts
%%   {continue, Replid, Offset}     a partial resync was accepted
%%   {key, Db, Key, Value, ExpireAtMs | undefined, FieldExpires}
%%                                  one key of the snapshot (expired keys are
%%                                  skipped); FieldExpires is [{Field, Ms}]
%%   {function, Source}             a function library of the snapshot
%%   {load_eof, Replid, Offset}     the snapshot is complete
%%   {cmd, Db, Cmd, Args}           one command of the stream; Cmd lowercase
%%   {closed, Reason}               the connection is gone; poll again to
%%                                  reconnect and resume
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

%% @doc Creates a link; it connects on the first `poll/2'.
-spec open(config()) -> {ok, link()} | {error, term()}.
open(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Runs the link for a while and returns up to `Max' events.
-spec poll(link(), pos_integer()) -> {ok, [event()]} | {error, term()}.
poll(_Link, _Max) -> erlang:nif_error(nif_not_loaded).

%% @doc The link's state: `#{state, replid, offset, db, ...}'.
-spec info(link()) -> map().
info(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc Closes the socket now.
-spec close(link()) -> ok.
close(_Link) -> erlang:nif_error(nif_not_loaded).
