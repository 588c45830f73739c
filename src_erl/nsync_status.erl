%%% @doc A link's status: where its facts are kept, and how `nsync:status/1'
%%% assembles them.
%%%
%%% `nsync:status/1' answers at once whatever the link is doing (a slow
%%% callback may hold the link process for seconds): it never asks the link
%%% process. It joins the NIF's connection facts (`nsync_nif:info/1', read
%%% from the link's resource: state, position, counts, bytes, last read)
%%% with the facts recorded in a node-wide ETS table by the link and by the
%%% layers around it, and derives `lag' and `stale' from them.
%%%
%%% Recording facts: `record(Link, #{Fact => Value})', from any process, at
%%% any time (one row per fact: writers of different facts never overwrite
%%% each other; a write costs one `ets:insert/2'). `Link' is the link's pid.
%%% The facts `status/1' reads:
%%% <ul>
%%% <li>`reconnects', `attempts' (consecutive failed attempts),
%%%     `next_retry' (when the next attempt starts, ms since the epoch),
%%%     `connected_since', `last_error', `last_error_at': the link's
%%%     session policy records them;</li>
%%% <li>`loaded' (`true' once a snapshot is complete), `unhandled',
%%%     `callback_errors', `tables': the link, as it handles batches;
%%%     `file': the file a link of `nsync:load_file/2' reads (its state is
%%%     `loaded' once it is);</li>
%%% <li>`stale' (a reason, or `undefined'): a layer's own reason for the
%%%     data to be stale, which wins over the derived one (e.g. the retry
%%%     policy gave up on a master, or tables kept from a link that died
%%%     hold the last complete data until the new snapshot);</li>
%%% <li>`silent_after' (ms, default 20000): no byte from a connected
%%%     master for longer is stale (`silent'); masters send a PING every
%%%     10 s (`repl-ping-replica-period').</li>
%%% </ul>
%%% A layer above links (e.g. a cluster's manager) may record facts under
%%% its own pid and read them with `facts/1'.
%%%
%%% The table belongs to the `nsync_status' process, which does nothing
%%% else but delete a link's rows when the link dies (even when killed).
%%% The nsync application's supervisor starts it (`nsync_sup', which every
%%% link starts when nobody did); `ensure_started/0' covers a use before
%%% the application runs.
-module(nsync_status).
-behaviour(gen_server).

%% API
-export([start_link/0, ensure_started/0, add/2, watch/1, record/2, forget/1,
         facts/1, status/1, lag/2]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([facts/0, stale_reason/0]).

-define(TABLE, ?MODULE).
-define(SILENT_AFTER_MS, 20000).

%% What a link, or a layer around it, records.
-type facts() :: #{atom() => term()}.
%% Why the data may be behind the master: `not_loaded' (no snapshot
%% complete yet), `disconnected', `syncing' (a full resync loads; readers
%% have the previous snapshot), `silent' (a connected master sent nothing
%% for `silent_after' ms), `behind' (the same, while the link process has
%% not handled the batches it was sent), or a layer's own reason.
-type stale_reason() :: not_loaded | disconnected | syncing | silent | behind
                      | atom() | {atom(), term()}.

%%% ================================================================ API

%% @doc Starts the process that owns the status table (for a supervisor);
%% `ignore' if it runs already (a link started it first).
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    case gen_server:start_link({local, ?MODULE}, ?MODULE, [], []) of
        {error, {already_started, _}} -> ignore;
        Started -> Started
    end.

%% @doc Starts the owner of the status table unless it runs.
-spec ensure_started() -> ok.
ensure_started() ->
    case whereis(?MODULE) of
        undefined ->
            case gen_server:start({local, ?MODULE}, ?MODULE, [], []) of
                {ok, _} -> ok;
                {error, {already_started, _}} -> ok
            end;
        _ ->
            ok
    end.

%% @doc Makes `Link' known, with the NIF resource its connection facts are
%% read from; its rows go when it dies.
-spec add(pid(), nsync_nif:link()) -> ok.
add(Link, Nif) ->
    ok = ensure_started(),
    true = ets:insert(?TABLE, {{Link, nif}, Nif}),
    watch(Link).

%% @doc The facts of `Pid' (a link, or a layer above links recording its
%% own) are deleted when it dies.
-spec watch(pid()) -> ok.
watch(Pid) ->
    ok = ensure_started(),
    gen_server:cast(?MODULE, {watch, Pid}).

%% @doc Records facts of `Link' (see the module doc), replacing the
%% previous values of those facts. Never fails: a fact that cannot be
%% recorded (no table) is dropped.
-spec record(pid(), facts()) -> ok.
record(Link, Facts) ->
    try ets:insert(?TABLE, [{{Link, Fact}, Value} || {Fact, Value} <- maps:to_list(Facts)]) of
        true -> ok
    catch
        error:badarg -> ok
    end.

%% @doc Forgets `Link' (it is stopping).
-spec forget(pid()) -> ok.
forget(Link) ->
    try ets:select_delete(?TABLE, [{{{Link, '_'}, '_'}, [], [true]}]) of
        _ -> ok
    catch
        error:badarg -> ok
    end.

%% @doc The facts recorded for `Link' (or under a layer's pid).
-spec facts(pid()) -> facts().
facts(Link) ->
    try ets:select(?TABLE, [{{{Link, '$1'}, '$2'}, [], [{{'$1', '$2'}}]}]) of
        Rows -> maps:from_list(Rows)
    catch
        error:badarg -> #{}
    end.

%% @doc The status of link `Link' (`nsync:status/1'). Exits with `noproc'
%% if `Link' is not a running link, as a call to it would.
-spec status(pid()) -> nsync:status().
status(Link) ->
    case facts(Link) of
        #{nif := Nif} = Facts ->
            assemble(nsync_nif:info(Nif), Facts, erlang:system_time(millisecond));
        #{} ->
            exit({noproc, {nsync, status, [Link]}})
    end.

%% @doc The lag: bytes of the stream received (up to `MasterOffset') and
%% not yet handled by the link process (up to `Offset'); `undefined'
%% without a position.
-spec lag(integer() | undefined, integer() | undefined) -> non_neg_integer() | undefined.
lag(MasterOffset, Offset) when is_integer(MasterOffset), is_integer(Offset) ->
    max(0, MasterOffset - Offset);
lag(_, _) ->
    undefined.

%%% ========================================================== callbacks

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    _ = ets:new(?TABLE, [ordered_set, public, named_table,
                         {read_concurrency, true}, {write_concurrency, true}]),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast({watch, pid()}, map()) -> {noreply, map()}.
handle_cast({watch, Link}, State) ->
    _ = monitor(process, Link),
    {noreply, State}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', _Ref, process, Link, _Reason}, State) ->
    forget(Link),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%%% ============================================================ internal

assemble(Info, Facts, Now) ->
    #{state := NifState, master := Master, replid := Replid, offset := Offset,
      master_offset := MasterOffset, keys_loaded := KeysLoaded, commands := Commands,
      bytes := Bytes, last_read := LastRead, credit_exhausted := Exhausted,
      last_error := NifError} = Info,
    State = case Facts of
                #{file := _, loaded := true} -> loaded;
                _ -> public_state(NifState, NifError)
            end,
    Stale = stale(State, Facts, silent_for(LastRead, Now), Exhausted),
    #{state => State,
      master => Master,
      replid => Replid,
      offset => Offset,
      master_offset => MasterOffset,
      lag => lag(MasterOffset, Offset),
      keys_loaded => KeysLoaded,
      commands => Commands,
      bytes => Bytes,
      last_io => LastRead,
      connected_since => maps:get(connected_since, Facts, undefined),
      attempts => maps:get(attempts, Facts, 0),
      next_retry => maps:get(next_retry, Facts, undefined),
      last_error => maps:get(last_error, Facts, undefined),
      last_error_at => maps:get(last_error_at, Facts, undefined),
      stale => Stale =/= undefined,
      stale_reason => Stale,
      unhandled => maps:get(unhandled, Facts, 0),
      reconnects => maps:get(reconnects, Facts, 0),
      callback_errors => maps:get(callback_errors, Facts, 0),
      tables => maps:get(tables, Facts, [])}.

%% `connecting' until a first attempt ends; `disconnected' once a connection
%% was lost or an attempt failed, until the master answers PSYNC again.
-spec public_state(nsync_nif:link_state(), nsync_nif:reason() | undefined) ->
          connecting | syncing | streaming | disconnected.
public_state(loading, _) -> syncing;
public_state(streaming, _) -> streaming;
public_state(NifState, undefined)
  when NifState =:= idle; NifState =:= connecting; NifState =:= handshake -> connecting;
public_state(_NifState, _LastError) -> disconnected.


silent_for(undefined, _Now) -> undefined;
silent_for(LastRead, Now) -> Now - LastRead.

%% Why the data may be behind the master, or `undefined'. A layer's
%% recorded reason wins; then the first of: no snapshot yet, no connection,
%% a full resync loading, a connected master silent for too long (the
%% link's fault, `behind', when every batch waits for the link process).
-spec stale(atom(), facts(), integer() | undefined, boolean()) -> stale_reason() | undefined.
stale(_State, #{stale := Reason}, _SilentFor, _Exhausted) when Reason =/= undefined ->
    Reason;
stale(_State, Facts, _SilentFor, _Exhausted) when not is_map_key(loaded, Facts) ->
    not_loaded;
stale(State, _Facts, _SilentFor, _Exhausted)
  when State =:= connecting; State =:= disconnected ->
    disconnected;
stale(syncing, _Facts, _SilentFor, _Exhausted) ->
    syncing;
stale(streaming, Facts, SilentFor, Exhausted) when is_integer(SilentFor) ->
    case SilentFor > maps:get(silent_after, Facts, ?SILENT_AFTER_MS) of
        true when Exhausted -> behind;
        true -> silent;
        false -> undefined
    end;
stale(_State, _Facts, _SilentFor, _Exhausted) ->
    undefined.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

public_state_test() ->
    ?assertEqual(connecting, public_state(idle, undefined)),
    ?assertEqual(connecting, public_state(handshake, undefined)),
    ?assertEqual(syncing, public_state(loading, eof)),
    ?assertEqual(streaming, public_state(streaming, eof)),
    ?assertEqual(disconnected, public_state(connecting, {connect, econnrefused})),
    ?assertEqual(disconnected, public_state(disconnected, eof)),
    ?assertEqual(disconnected, public_state(closed, closed)).

stale_test() ->
    Loaded = #{loaded => true},
    ?assertEqual(not_loaded, stale(streaming, #{}, 0, false)),
    ?assertEqual(master_down, stale(streaming, Loaded#{stale => master_down}, 0, false)),
    ?assertEqual(disconnected, stale(connecting, Loaded#{stale => undefined}, 0, false)),
    ?assertEqual(disconnected, stale(disconnected, Loaded, undefined, false)),
    ?assertEqual(syncing, stale(syncing, Loaded, 0, false)),
    ?assertEqual(undefined, stale(streaming, Loaded, 19000, false)),
    ?assertEqual(silent, stale(streaming, Loaded, 21000, false)),
    ?assertEqual(behind, stale(streaming, Loaded, 21000, true)),
    ?assertEqual(silent, stale(streaming, Loaded#{silent_after => 100}, 101, false)).

lag_test() ->
    ?assertEqual(0, lag(10, 10)),
    ?assertEqual(5, lag(15, 10)),
    ?assertEqual(undefined, lag(15, undefined)),
    ?assertEqual(undefined, lag(undefined, undefined)).

start_link_after_a_link_test() ->
    ok = ensure_started(),
    ?assertEqual(ignore, start_link()).

record_and_forget_test() ->
    Link = spawn(fun() -> receive stop -> ok end end),
    ok = ensure_started(),
    ok = record(Link, #{attempts => 2, stale => undefined}),
    ok = record(Link, #{attempts => 3}),
    ?assertEqual(#{attempts => 3, stale => undefined}, facts(Link)),
    ?assertExit({noproc, _}, status(Link)),
    ok = forget(Link),
    ?assertEqual(#{}, facts(Link)),
    Link ! stop.

rows_go_with_the_link_test() ->
    Link = spawn(fun() -> receive stop -> ok end end),
    ok = add(Link, make_ref()),
    ok = record(Link, #{attempts => 1}),
    ?assertMatch(#{nif := _, attempts := 1}, facts(Link)),
    Link ! stop,
    ?assert(gone(Link, 100)).

gone(_Link, 0) -> false;
gone(Link, Tries) ->
    facts(Link) =:= #{} orelse begin timer:sleep(10), gone(Link, Tries - 1) end.
-endif.
