%%% @doc The NIF: one replication link per resource.
%%%
%%% A link keeps what outlives a connection: the replication position
%%% (replid, offset, current db), so each session resumes with PSYNC
%%% wherever it connects. Each connection attempt is a session: `start/2'
%%% starts a pump thread that connects to the master given for that session,
%%% then reads the socket, runs the handshake, snapshot and command stream
%%% (with ACKs), and sends what it reads to the calling process in batches.
%%% A session may read a file instead (an RDB file, or a DUMP payload): it
%%% delivers its keys as a full sync does, then ends with `eof':
%%%
%%%   `{nsync_pump, Session, {batch, [item()]}}'  items, in stream order
%%%   `{nsync_pump, Session, {closed, reason()}}'  the session is over;
%%%                                                 always its last message
%%%
%%% Flow control is by credit: at most 4 batches are in flight; after
%%% handling one, the process calls `ack(Link, Session)'. Without credit the
%%% pump reads nothing, so a slow consumer slows the master (as a slow
%%% replica does) and memory stays bounded. No call blocks: every function
%%% returns at once. Dropping the resource (its owner died) ends the session
%%% and closes the socket, as `close/1' does.
%%%
%%% The NIF owns the connection facts (`info/1'): they describe what the
%%% caller has handled, since a batch's facts are published by its `ack/2'.
-module(nsync_nif).

-export([open/1, start/2, ack/2, info/1, disconnect/1, close/1, decode_dump/1, key_slot/1,
         foreign_rows/2, filter_command/3, keeps/3]).
%% Values the mirror computes as Redis does (nsync_core's hll, geo, digest).
-export([hll_pfadd/3, hll_pfcount/1, hll_todense/1, hll_pfmerge/3, geo_store/3,
         string_digest/1]).
%% big values (see nsync_big)
-export([big_new/2, big_read/2, big_read_dirty/2, big_write/2, big_write_dirty/2]).

-on_load(init/0).

-type link() :: reference().
-type session() :: pos_integer().
-type db() :: non_neg_integer().
-type config() :: #{user := binary() | undefined,
                    pass := binary() | undefined,
                    connect_timeout := pos_integer(),
                    %% no byte for this long (ms): the master is gone
                    master_timeout := pos_integer(),
                    tls := tls_config() | undefined,
                    listening_port := inet:port_number(),
                    %% whose snapshot keys are delivered
                    db := db() | all | [db()],
                    keys := none | key_filter(),
                    %% lists, sets, zsets and hashes of more elements come
                    %% as big values (nsync_big)
                    big_threshold := pos_integer() | off,
                    %% the largest value (snapshot key, command) accepted
                    max_value_bytes := pos_integer() | infinity}.
%% The key names kept (every name if both lists are empty), and the rules
%% of the commands whose keys are not just their first argument
%% (`nsync_cmd:filter_table/0'). With a filter, commands of the databases
%% not mirrored are dropped too.
-type key_filter() :: #{prefixes := [binary()],
                        patterns := [binary()],
                        commands := #{binary() => {nsync_cmd:keyspec(),
                                                   plain | per_key | move | copy}}}.
%% TLS settings with PEM bytes (`system': the roots built in).
-type tls_config() :: nsync_tls:loaded().
-type master() :: #{host := binary(), port := inet:port_number()}.
%% A file to read instead of a master: an RDB file, or (with a key) the
%% DUMP payload of that key.
-type file_source() :: #{file := file:filename_all(), key := binary() | undefined}.
-type source() :: master() | file_source().
-type replid() :: binary().
-type offset() :: integer().
-type key() :: binary().
%% A key's absolute expiry, ms since the epoch.
-type expire_at() :: integer().

%% The items of a batch, in stream order:
-type item() ::
        %% A full sync starts; Replid is undefined (and Offset 0) for a
        %% pre-2.8 master (SYNC).
        {fullresync, replid() | undefined, offset()}
        %% A partial resync was accepted; commands follow from Offset + 1.
      | {continue, replid(), offset()}
        %% Snapshot keys of database Db, in snapshot order: DataRows
        %% first, then BigHashes. Only keys of the databases given to
        %% open/1 and not expired. DataRows and ExpiryRows are the ETS
        %% mirror's rows; ExpiryRows has the keys of DataRows with a key or
        %% hash-field expiry, in the same order. BigHashes are hashes of
        %% more than 32 live fields, whose maps the caller makes (the pump
        %% cannot build maps that big: the VM builds them with
        %% scheduler-only memory). A collection over big_threshold is a
        %% big value: its data row is {Key, Handle} and it has an expiry
        %% row {Key, ExpireAt | undefined, #{}, Handle} (nsync_mirror's).
      | {keys, db(), DataRows :: [{key(), term()}],
         ExpiryRows :: [{key(), expire_at() | undefined, #{binary() => expire_at()}}
                        | {key(), expire_at() | undefined, #{}, nsync_big:handle()}],
         BigHashes :: [{key(), [{binary(), binary()}], expire_at() | undefined,
                        [{binary(), expire_at()}]}]}
        %% The snapshot is complete (only now are Replid/Offset the
        %% link's position).
      | {load_eof, replid() | undefined, offset()}
        %% One command of the stream; Cmd lowercase; every command but
        %% PING and REPLCONF, so select/multi/exec too (a resume may start
        %% inside a MULTI block); Db is the db the command applies to (for
        %% select: the new one). Without a key filter, commands of every db
        %% come, whatever the db given to open/1. With one, a command
        %% touching no kept key is dropped, DEL, UNLINK, MSET, MSETNX and
        %% MSETEX come with their kept keys only, and any other command
        %% that also names keys the filter leaves out comes as
        %% {cmd, Db, Cmd, Args, Filtered}, Filtered those keys' names.
      | {cmd, db(), Cmd :: binary(), Args :: [binary()]}
      | {cmd, db(), Cmd :: binary(), Args :: [binary()], Filtered :: [key()]}.
%% A full sync that was cut short was not committed: the next session gives
%% {continue, ...} from the previous position or a new {fullresync, ...}.
%% Function libraries of the snapshot are not delivered.

%% An I/O error: a POSIX atom (econnrefused, ...) or, for rare errors, the
%% OS message.
-type posix() :: atom() | binary().
%% Why a session ended:
-type reason() ::
        {connect, posix() | nxdomain}
        %% a file session's file cannot be opened or read
      | {file, posix()}
        %% TLS failed: unknown_ca, certificate_expired, hostname_mismatch,
        %% timeout (handshake), eof, {alert, Name}, {bad_certificate, Msg}, ...
      | {tls, term()}
        %% the connection ended before the master sent a byte (Why: eof,
        %% {recv, Posix}): not a Redis server, or a TLS port without TLS
      | {no_answer, eof | {recv, posix() | timeout}}
        %% wrong or missing password: retrying will not help
      | {auth, binary()}
        %% the user may not replicate (-NOPERM to PSYNC, no +psync)
      | {noperm, binary()}
        %% an error line, e.g. `<<"-LOADING ...">>': retry later
      | {master, binary()}
        %% Kind truncated: a file ends inside its snapshot
      | {rdb, Kind :: atom(), Offset :: non_neg_integer()}
      | {protocol, binary()}
        %% a value over max_value_bytes: at least `bytes' bytes
      | {too_large, #{key := binary() | undefined, bytes := non_neg_integer(),
                      limit := pos_integer()}}
        %% the master closed the connection; a file session read its file
      | eof
        %% timeout: master_timeout of silence
      | {recv, posix() | timeout}
      | {send, posix()}
        %% a bug; the next session starts over with a full sync
      | {internal, binary()}
        %% disconnect/1 ended it
      | disconnected
      | owner_gone
      | closed.
-type message() :: {nsync_pump, session(), {batch, [item()]} | {closed, reason()}}.
-type link_state() :: idle | connecting | handshake | loading | streaming | disconnected | closed.
-type info() :: #{state := link_state(),
                  master := {binary(), inet:port_number()} | undefined,
                  replid := replid() | undefined,
                  offset := offset() | undefined,
                  master_offset := offset() | undefined,
                  db := db(),
                  keys_loaded := non_neg_integer(),
                  snapshot_bytes := non_neg_integer(),
                  commands := non_neg_integer(),
                  bytes := non_neg_integer(),
                  last_read := integer() | undefined,
                  credit_exhausted := boolean(),
                  last_error := reason() | undefined}.
-export_type([link/0, session/0, config/0, key_filter/0, tls_config/0, master/0, source/0,
              item/0, reason/0, message/0, link_state/0, info/0]).

init() ->
    SoName = case code:priv_dir(nsync) of
                 {error, bad_name} ->
                     filename:join([filename:dirname(code:which(?MODULE)), "..", "priv", "nsync_nif"]);
                 Dir ->
                     filename:join(Dir, "nsync_nif")
             end,
    erlang:load_nif(SoName, 0).

%% @doc Creates a link; it connects when a session starts (`start/2').
%% Every key of the config is required (nsync_opts fills in the defaults);
%% `{error, {badarg, Key}}' names a bad, unknown or missing key,
%% `{error, {badarg, config}}' a term that is not a map, `{error, {tls,
%% Reason}}' TLS settings rustls cannot use (e.g. `{no_certificates,
%% cacerts}', `{bad_pem, cert}', `{no_private_key, key}').
-spec open(config()) -> {ok, link()} | {error, {badarg, atom()} | {tls, term()}}.
open(_Config) -> erlang:nif_error(nif_not_loaded).

%% @doc Starts a session: a pump thread resolves and connects to the master
%% `Source' names (within connect_timeout), resumes from the link's
%% position and sends its batches to the caller, tagged with the returned
%% session id (unique in the VM). For a file source it reads the file
%% instead, as credit allows, and delivers it as a full sync: items
%% `{fullresync, undefined, 0}', the keys and `{load_eof, undefined, 0}',
%% then `{closed, eof}' (or `{closed, {file, Posix}}', `{closed, {rdb, Kind,
%% Offset}}'). One session at a time: `{error, running}' until the previous
%% one has sent `{closed, _}'; `{error, closed}' after `close/1'.
-spec start(link(), source()) ->
          {ok, session()} | {error, closed | running | {badarg, atom()} | {spawn, binary()}}.
start(_Link, _Source) -> erlang:nif_error(nif_not_loaded).

%% @doc The caller has handled one batch of `Session': gives its pump a
%% credit back and publishes the facts the batch brought (`info/1').
%% Acks of another session are ignored.
-spec ack(link(), session()) -> ok.
ack(_Link, _Session) -> erlang:nif_error(nif_not_loaded).

%% @doc The link's connection facts, at once: the state (`idle' before the
%% first session, `disconnected' between sessions), the master of the
%% current or last session, the committed position, the keys delivered
%% and the snapshot's bytes read since the last full sync started, the
%% commands delivered since `open/1', and why the last session ended.
%% They describe what the caller has handled (acked). Live instead (as the
%% pump goes): `master_offset' (the stream's offset as far as parsed),
%% `bytes' (read since `open/1'), `last_read' (when bytes were last read,
%% ms since the epoch) and `credit_exhausted' (every batch in flight: the
%% pump reads nothing until the caller acks one).
-spec info(link()) -> info().
info(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc Ends the running session, if any, at once (even while its pump
%% waits in `read' or for credit): it sends `{closed, disconnected}'. The
%% link stays open, and the next session resumes from its position.
-spec disconnect(link()) -> ok.
disconnect(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc Closes the link: the session's socket is shut down at once, even
%% while its pump waits in `read' or for credit (it then sends
%% `{closed, closed}' and exits); `start/2' answers `{error, closed}'.
-spec close(link()) -> ok.
close(_Link) -> erlang:nif_error(nif_not_loaded).

%% @doc What the link's key filter makes of the command `Command' (name
%% first) run in database `Db', as its sessions do: `keep', `drop',
%% `{only, Command1}' (cut down to its kept keys) or `{straddles, Filtered}'
%% (delivered with the names of the keys the filter leaves out). `keep'
%% without a filter.
-spec filter_command(link(), db(), [binary()]) ->
          keep | drop | {only, [binary()]} | {straddles, [binary()]}.
filter_command(_Link, _Db, _Command) -> erlang:nif_error(nif_not_loaded).

%% @doc Whether the link mirrors the key `Key' of database `Db' (its
%% databases and key filter).
-spec keeps(link(), db(), binary()) -> boolean().
keeps(_Link, _Db, _Key) -> erlang:nif_error(nif_not_loaded).

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

%%% ------------------------------------------------------------ computed values
%%% HyperLogLog strings are Redis's byte for byte (sparse and dense encodings,
%%% the promotion at `SparseMaxBytes', the cached cardinality). `undefined'
%%% stands for a key that does not exist. All run on a dirty CPU scheduler.

-type hll_reply() :: {ok, binary()} | unchanged | {error, not_hll | corrupt}.

%% @doc PFADD: the key's new value, or `unchanged' when no register grew.
-spec hll_pfadd(binary() | undefined, [binary()], non_neg_integer()) -> hll_reply().
hll_pfadd(_Current, _Elements, _SparseMaxBytes) -> erlang:nif_error(nif_not_loaded).

%% @doc PFCOUNT of one key: the value with its cardinality cached (as the
%% master writes it), or `unchanged' when the cache was valid.
-spec hll_pfcount(binary()) -> hll_reply().
hll_pfcount(_Current) -> erlang:nif_error(nif_not_loaded).

%% @doc PFDEBUG TODENSE (or GETREG): the value in the dense encoding, or
%% `unchanged' when it was dense.
-spec hll_todense(binary()) -> hll_reply().
hll_todense(_Current) -> erlang:nif_error(nif_not_loaded).

%% @doc PFMERGE: the destination's new value from its current value and the
%% sources' (in command order).
-spec hll_pfmerge(binary() | undefined, [binary() | undefined], non_neg_integer()) -> hll_reply().
hll_pfmerge(_Dest, _Sources, _SparseMaxBytes) -> erlang:nif_error(nif_not_loaded).

%% @doc GEORADIUS / GEORADIUSBYMEMBER ... STORE|STOREDIST and GEOSEARCHSTORE
%% (`Command', name first) over the source sorted set (`[{Score, Member}]'
%% in Redis order, `undefined' if absent): the set stored at the destination,
%% in Redis order (`[]': the destination is deleted). `Formula' is
%% `before_7_0' for masters older than 7.0, whose distances differ in the
%% last bits, `since_7_0' otherwise.
-spec geo_store([binary()], [{float() | inf | '-inf', binary()}] | undefined,
                before_7_0 | since_7_0) ->
          {ok, [{float(), binary()}]} | {error, no_such_member | badarg | {badarg, string()}}.
geo_store(_Command, _ZSet, _Formula) -> erlang:nif_error(nif_not_loaded).

%% @doc The digest of a string value that Redis 8.4's `DIGEST' returns and
%% `SET'/`DELEX' `IFDEQ|IFDNE' compare: its XXH3-64 hash as 16 lowercase
%% hexadecimal digits.
-spec string_digest(binary()) -> <<_:128>>.
string_digest(_Value) -> erlang:nif_error(nif_not_loaded).

%% @doc The Redis Cluster hash slot of `Key' (0..16383), as `CLUSTER
%% KEYSLOT' computes it: CRC16 of the key, or of its hash tag (the bytes
%% between the first `{' and the first `}' after it, if any).
-spec key_slot(binary()) -> 0..16383.
key_slot(_Key) -> erlang:nif_error(nif_not_loaded).

%% @doc The rows (`[{Key, Value}]') whose key's hash slot is not set in the
%% bitmap `Owned' (bit `Slot' of byte `Slot div 8', least significant bit
%% first): `all' when every row's is, else `[{Index, Slot}]' (0-based, in
%% order).
-spec foreign_rows([tuple()], binary()) -> all | [{non_neg_integer(), 0..16383}].
foreign_rows(_Rows, _Owned) -> erlang:nif_error(nif_not_loaded).
