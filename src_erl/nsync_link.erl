%%% @doc The link process: one replication link to one master.
%%%
%%% Each connection attempt is a session of the NIF (`nsync_nif:start/2'): a
%%% pump thread reads the socket, parses and builds the terms of each batch
%%% of events while this process handles the batches before it; after
%%% handling one, this process gives the pump a credit back
%%% (`nsync_nif:ack/2'), so at most a few batches are in flight and a slow
%%% consumer slows the socket. Batches are plain messages, so calls (status,
%%% stop) are served between them. It turns NIF events into the nsync events
%%% of DESIGN.md, gives them to the callback and routes them by the
%%% callback's return value to ETS mirrors (`nsync_mirror') it owns. With the
%%% default mirror, the pump delivers snapshot keys as ready-made rows, which
%%% are inserted as they come.
%%%
%%% Tables: a name (atom) maps to one mirror. Names are node-wide, like
%%% registered process names: the registry (`persistent_term', read by
%%% `nsync:tid/1') records the owning link and the table. A full sync always
%%% loads into new tables; readers keep the previous tables until the
%%% snapshot is complete, then the registry switches to the new tables at once
%%% and the old ones are deleted a little later (a reader that looked one up
%%% just before the switch can still finish).
%%%
%%% Connection failures: a session ends with `{closed, Reason}' as its pump's
%%% last message; the link then starts a new session after a backoff
%%% (exponential, with jitter; the NIF resumes with PSYNC). Messages carry
%%% their session's id: those of an older session are ignored. An authentication failure is
%%% fatal: retrying with the same credentials is pointless, so the link stops
%%% with reason `{shutdown, {auth, Msg}}'. With `{block, true}', a start that
%%% cannot connect or authenticate at all returns `{error, Reason}' instead.
-module(nsync_link).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

%% API
-export([start_link/2, status/1, table/1, table/2]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         format_status/1]).
%% proc_lib entry point
-export([init_it/2]).

-export_type([waiter/0]).

-type waiter() :: {pid(), reference()} | undefined.
-type status() :: connecting | syncing | streaming | disconnected.

-define(BACKOFF_START_MS, 100).
-define(BACKOFF_CAP_MS, 10000).
-define(CALLBACK_LOG_INTERVAL_MS, 1000).
%% Tables replaced by a full resync stay this long, so that a reader that
%% looked a table up just before the switch can still use it.
-define(RETIRED_GRACE_MS, 2000).
%% Commands that span the dataset: applied to every table of the link.
-define(DATASET_CMDS, [<<"flushall">>, <<"flushdb">>, <<"swapdb">>]).

-record(state, {
          nif :: nsync_nif:link(),
          config :: nsync_opts:config(),
          waiter :: waiter(),
          %% the NIF session running, if any
          session :: non_neg_integer() | undefined,
          status = connecting :: status(),
          replid :: binary() | undefined,
          offset :: integer() | undefined,
          %% tables readers see: name => mirror
          live = #{} :: #{atom() => term()},
          %% tables being filled by the current full sync, published at its end
          loading :: #{atom() => term()} | undefined,
          %% replaced tables, deleted after a grace period
          retired = #{} :: #{reference() => [term()]},
          keys_loaded = 0 :: non_neg_integer(),
          unhandled = 0 :: non_neg_integer(),
          reconnects = 0 :: non_neg_integer(),
          %% consecutive failed attempts; 0 while connected
          attempts = 0 :: non_neg_integer(),
          ever_connected = false :: boolean(),
          last_error :: term(),
          retry_delay = 0 :: non_neg_integer(),
          callback_errors = 0 :: non_neg_integer(),
          callback_logged_at :: integer() | undefined,
          callback_unlogged = 0 :: non_neg_integer(),
          %% names reported once: unhandled commands, tables owned by others
          reported = sets:new() :: sets:set(term())
         }).

%%% ================================================================ API

%% @doc Starts a link for a validated config. `Waiter', when given, receives
%% `{Ref, loaded}' after the first snapshot, or `{Ref, {error, Reason}}' if
%% the first connection fails. Returns `{error, Reason}' without crashing the
%% caller when the link cannot start (NIF open failure, table name taken).
-spec start_link(nsync_opts:config(), waiter()) -> {ok, pid()} | {error, term()}.
start_link(Config, Waiter) ->
    proc_lib:start_link(?MODULE, init_it, [Config, Waiter]).

%% @doc The link's state and counters.
-spec status(pid()) -> map().
status(Pid) ->
    gen_server:call(Pid, status).

%% @doc The registered table `Name': its owning link and ETS table, or
%% `undefined' if no live link owns that name.
-spec table(atom()) -> {pid(), ets:tid()} | undefined.
table(Name) ->
    case registered(Name) of
        {Owner, Tid, _DbTids} -> {Owner, Tid};
        undefined -> undefined
    end.

%% @doc The table of database `Db' in the registered mirror `Name' (with
%% `{db, all}' each database has its own), or `undefined'.
-spec table(atom(), non_neg_integer()) -> ets:tid() | undefined.
table(Name, Db) ->
    case registered(Name) of
        {_Owner, _Tid, #{Db := Tid}} -> Tid;
        _ -> undefined
    end.

registered(Name) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        {Owner, _Tid, _DbTids} = Entry ->
            case is_process_alive(Owner) of
                true -> Entry;
                false -> undefined
            end;
        undefined ->
            undefined
    end.

%% @private proc_lib entry: runs init/1 and acks `{error, Reason}' with a
%% normal exit on failure, so that a failed start never kills the caller.
-spec init_it(nsync_opts:config(), waiter()) -> no_return() | ok.
init_it(Config, Waiter) ->
    case init({Config, Waiter}) of
        {ok, State} ->
            proc_lib:init_ack({ok, self()}),
            gen_server:enter_loop(?MODULE, [], State);
        {stop, Reason} ->
            proc_lib:init_ack({error, Reason})
    end.

%%% ========================================================== callbacks

%% @private
-spec init({nsync_opts:config(), waiter()}) -> {ok, #state{}} | {stop, term()}.
init({#{host := Host, port := Port} = Config, Waiter}) ->
    logger:update_process_metadata(#{domain => [nsync], nsync_master => {Host, Port}}),
    %% Trapping exits lets terminate/2 clean the registry and close the socket.
    process_flag(trap_exit, true),
    case nsync_nif:open(nsync_opts:nif_config(Config)) of
        {ok, Nif} ->
            State = #state{nif = Nif, config = Config, waiter = Waiter},
            case create_default_table(State) of
                {ok, State1} ->
                    self() ! connect,
                    {ok, State1};
                {error, Reason} ->
                    nsync_nif:close(Nif),
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(status, _From, State) ->
    {reply, status_map(State), State};
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({nsync_pump, Session, {batch, Events}},
            #state{session = Session, nif = Nif} = State) ->
    State1 = handle_events(Events, State),
    ok = nsync_nif:ack(Nif, Session),
    {noreply, State1};
handle_info({nsync_pump, Session, {closed, Reason}}, #state{session = Session} = State) ->
    session_ended(connection_lost(Reason, State#state{session = undefined}));
handle_info({nsync_pump, _OlderSession, _}, State) ->
    {noreply, State};
handle_info(connect, #state{nif = Nif} = State) ->
    case nsync_nif:start(Nif, delivery(State)) of
        {ok, Session} -> {noreply, State#state{session = Session}};
        {error, Reason} -> session_ended(connection_lost(Reason, State))
    end;
handle_info({delete_retired, Ref}, #state{retired = Retired} = State) ->
    {Mirrors, Retired1} = maps:take(Ref, Retired),
    lists:foreach(fun nsync_mirror:delete/1, Mirrors),
    {noreply, State#state{retired = Retired1}};
handle_info({'EXIT', _From, normal}, State) ->
    {noreply, State};
handle_info({'EXIT', _From, Reason}, State) ->
    {stop, Reason, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{nif = Nif, live = Live, loading = Loading, retired = Retired}) ->
    nsync_nif:close(Nif),
    Self = self(),
    [persistent_term:erase({?MODULE, Name})
     || Name <- maps:keys(Live),
        element(1, persistent_term:get({?MODULE, Name}, {none, none, none})) =:= Self],
    [nsync_mirror:delete(M) || M <- maps:values(Live) ++ loading_mirrors(Loading)
                                    ++ lists:append(maps:values(Retired))],
    ok.

%% @private Keeps the password out of crash reports and sys:get_status/1.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(#{state := #state{config = #{pass := Pass} = Config} = State} = Status)
  when is_binary(Pass) ->
    Status#{state := State#state{config = Config#{pass := <<"(redacted)">>}}};
format_status(Status) ->
    Status.

%%% =========================================================== internal

%% A session is over: the next one starts after the backoff.
session_ended({stop, _Reason, _State} = Stop) ->
    Stop;
session_ended(#state{retry_delay = Delay} = State) ->
    erlang:send_after(Delay, self(), connect),
    {noreply, State}.

%% Snapshot keys come as rows for the default mirror, as events for a
%% user callback.
delivery(#state{config = #{callback := default, db := Db}}) -> {rows, Db};
delivery(_State) -> events.

handle_events([], State) ->
    State;
handle_events([{key, _, _, _, _, _} | _] = Events, State) ->
    {Rest, State1} = load_keys(Events, State),
    handle_events(Rest, State1);
handle_events([Event | Rest], State) ->
    handle_events(Rest, event(Event, State)).

%% A run of snapshot keys: each goes to the callback, then they are written
%% with one ETS insert per table (a third of the cost of one insert per key),
%% and the state is updated once, not once per key.
load_keys(Events, State) ->
    {Rest, Count, Routed, State1} = route_keys(Events, 0, #{}, State),
    State2 = State1#state{keys_loaded = State1#state.keys_loaded + Count},
    {Rest, maps:fold(fun load_rows/3, State2, Routed)}.

route_keys([{key, Db, Key, Value, ExpireAt, FieldExpires} | Rest], Count, Routed, State) ->
    case visible(Db, State) andalso notify({load, Key, Value}, State) of
        false ->
            route_keys(Rest, Count + 1, Routed, State);
        {none, State1} ->
            route_keys(Rest, Count + 1, Routed, State1);
        {Name, State1} ->
            Row = {Db, Key, Value, ExpireAt, FieldExpires},
            Routed1 = case Routed of
                          #{Name := Rows} -> Routed#{Name := [Row | Rows]};
                          _ -> Routed#{Name => [Row]}
                      end,
            route_keys(Rest, Count + 1, Routed1, State1)
    end;
route_keys(Rest, Count, Routed, State) ->
    {Rest, Count, Routed, State}.

event({fullresync, Replid, Offset}, State) ->
    State1 = discard_loading(connected(State)),
    Fresh = maps:map(fun(Name, _) -> new_mirror(Name, State1) end, State1#state.live),
    State1#state{status = syncing, replid = Replid, offset = Offset,
                 keys_loaded = 0, loading = Fresh};
event({continue, Replid, Offset}, State) ->
    %% The master kept our (pre-full-sync) position: the live tables plus
    %% the backlog are the dataset, a half-loaded snapshot is not.
    State1 = discard_loading(connected(State)),
    State1#state{status = streaming, replid = Replid, offset = Offset};
event({function, _Source}, State) ->
    %% Function libraries are not part of the keyspace: not delivered.
    State;
event({load_eof, Replid, Offset}, State) ->
    State1 = publish_loading(State#state{status = streaming, replid = Replid,
                                         offset = Offset}),
    {_, State2} = notify({load, eof}, State1),
    notify_waiter(loaded, State2);
event({rows, Db, DataRows, ExpiryRows},
      #state{config = #{name := Name}, keys_loaded = Loaded} = State) ->
    insert_rows(Name, Db, DataRows, ExpiryRows,
                State#state{keys_loaded = Loaded + length(DataRows)});
%% A hash too big for the pump to make a map of (see nsync_nif): made here.
event({big_hash, Db, Key, Fields, ExpireAt, FieldExpires},
      #state{config = #{callback := default}} = State) ->
    Expiry = [{Key, ExpireAt, maps:from_list(FieldExpires)}
              || ExpireAt =/= undefined orelse FieldExpires =/= []],
    event({rows, Db, [{Key, maps:from_list(Fields)}], Expiry}, State);
event({big_hash, Db, Key, Fields, ExpireAt, FieldExpires}, State) ->
    {[], State1} = load_keys([{key, Db, Key, maps:from_list(Fields), ExpireAt, FieldExpires}],
                             State),
    State1;
event({cmd, Db, Cmd, Args}, State) ->
    case visible(Db, Cmd, State) of
        true ->
            {Route, State1} = notify({cmd, Cmd, Args}, State),
            apply_cmd(Route, Db, Cmd, Args, State1);
        false ->
            State
    end;
event(Other, State) ->
    ?LOG_DEBUG("nsync: ignoring unknown NIF event ~0p", [Other]),
    State.

%% A connection (re)established: the master answered PSYNC.
connected(#state{ever_connected = Before, attempts = Attempts} = State) ->
    case Before of
        true ->
            ?LOG_NOTICE("nsync: reconnected to ~s after ~b attempt(s)",
                        [master(State), Attempts]),
            State#state{reconnects = State#state.reconnects + 1, attempts = 0,
                        last_error = undefined};
        false ->
            State#state{ever_connected = true, attempts = 0, last_error = undefined}
    end.

connection_lost(Reason, #state{waiter = Waiter, ever_connected = false} = State)
  when Waiter =/= undefined ->
    case fails_blocking_start(Reason) of
        true ->
            %% The caller gets the reason as `{error, Reason}'.
            State1 = notify_waiter({error, Reason}, State),
            {stop, normal, State1};
        false ->
            retry_later(Reason, State)
    end;
connection_lost({auth, Msg} = Reason, State) ->
    ?LOG_ERROR("nsync: ~s refused authentication: ~s; stopping (retrying with "
               "the same credentials is pointless)", [master(State), Msg]),
    {stop, {shutdown, Reason}, closed(State)};
connection_lost(Reason, State) ->
    retry_later(Reason, closed(State)).

%% `{error, closed}' tells the callback that an open connection went away
%% (not that a reconnect attempt failed).
closed(#state{status = Status} = State) when Status =:= syncing; Status =:= streaming ->
    {_, State1} = notify({error, closed}, State),
    State1#state{status = disconnected};
closed(State) ->
    State#state{status = disconnected}.

%% Logs the first failure of a series (and any change of reason), not every
%% retry.
retry_later(Reason, #state{attempts = N, last_error = Last} = State) ->
    Delay = backoff(N + 1),
    case Reason =:= Last of
        true -> ok;
        false -> ?LOG_WARNING("nsync: connection to ~s failed: ~0p; retrying with "
                              "backoff (next in ~b ms)", [master(State), Reason, Delay])
    end,
    State#state{status = disconnected, attempts = N + 1, last_error = Reason,
                retry_delay = Delay}.

%% With `{block, true}', failing to reach or log into the master at all is
%% reported to the caller rather than retried until the timeout.
fails_blocking_start({connect, _}) -> true;
fails_blocking_start({auth, _}) -> true;
fails_blocking_start(_) -> false.

notify_waiter(_Msg, #state{waiter = undefined} = State) ->
    State;
notify_waiter(Msg, #state{waiter = {Pid, Ref}} = State) ->
    Pid ! {Ref, Msg},
    State#state{waiter = undefined}.

%% With `{db, N}' a user callback sees only db N, plus the commands that
%% span every db, and no SELECT (noise when everything is db N); with
%% `{db, all}' it sees everything, SELECT included, to follow the dbs. The
%% default mirror gets everything and filters by itself, since it must
%% follow keys moved into its db.
visible(Db, #state{config = #{callback := Cb, db := Wanted}}) ->
    Cb =:= default orelse Wanted =:= all orelse Wanted =:= Db.

visible(_Db, <<"select">>, #state{config = #{callback := Cb, db := Wanted}}) ->
    Cb =:= default orelse Wanted =:= all;
visible(Db, Cmd, State) ->
    visible(Db, State) orelse Cmd =:= <<"flushall">> orelse Cmd =:= <<"swapdb">>.

%%% ----------------------------------------------------------- callback

%% Gives an event to the callback; returns the table it routes to (or none).
%% (The default mirror gets snapshot keys as rows, not through here.)
notify({cmd, _, _}, #state{config = #{callback := default, name := Name}} = State) ->
    {Name, State};
notify(_Event, #state{config = #{callback := default}} = State) ->
    {none, State};
notify(Event, #state{config = #{callback := Callback}} = State) ->
    try run_callback(Callback, Event) of
        Result -> {route(Result), State}
    catch
        Class:Reason:Stack -> {none, callback_failed(Event, Class, Reason, Stack, State)}
    end.

run_callback({M, F}, Event) -> M:F(Event);
run_callback({M, F, A}, Event) -> apply(M, F, A ++ [Event]);
run_callback(Fun, Event) when is_function(Fun, 1) -> Fun(Event);
run_callback(Pid, Event) when is_pid(Pid) -> Pid ! Event.

%% The callback's return value names the table the event goes to. `true' and
%% `false' (what `ets:insert/2' and friends return) store nothing, like
%% `undefined', `skip' and `ok'.
route(Result) when Result =:= undefined; Result =:= skip; Result =:= ok;
                   is_boolean(Result) -> none;
route(Table) when is_atom(Table) -> Table;
route(_) -> none.

%% A raising callback must not kill the link; logs at most once a second so
%% that a callback failing on every key of a big snapshot cannot flood the log.
callback_failed(Event, Class, Reason, Stack,
                #state{callback_logged_at = At, callback_unlogged = Unlogged} = State) ->
    Now = erlang:monotonic_time(millisecond),
    Errors = State#state.callback_errors + 1,
    case At =:= undefined orelse Now - At >= ?CALLBACK_LOG_INTERVAL_MS of
        true ->
            ?LOG_ERROR(#{what => nsync_callback_failed, event => summary(Event),
                         class => Class, reason => Reason, stacktrace => Stack,
                         failures_not_logged => Unlogged}),
            State#state{callback_errors = Errors, callback_logged_at = Now,
                        callback_unlogged = 0};
        false ->
            State#state{callback_errors = Errors, callback_unlogged = Unlogged + 1}
    end.

%% Keeps big values out of the log.
summary({load, Key, _Value}) -> {load, Key, '...'};
summary(Event) -> Event.

%%% ------------------------------------------------------------- tables

create_default_table(#state{config = #{callback := default, name := Name}} = State) ->
    case claimable(Name) of
        true ->
            Mirror = new_mirror(Name, State),
            register_table(Name, Mirror),
            {ok, State#state{live = #{Name => Mirror}}};
        {false, Owner} ->
            {error, {already_started, Owner}}
    end;
create_default_table(State) ->
    {ok, State}.

new_mirror(Name, #state{config = #{db := Db, compressed := Compressed}}) ->
    nsync_mirror:new(Name, Db, Compressed).

register_table(Name, Mirror) ->
    persistent_term:put({?MODULE, Name}, {self(), nsync_mirror:tid(Mirror),
                                          maps:from_list(nsync_mirror:dbs(Mirror))}).

%% A command created a database's table (`{db, all}'): readers must find it.
reregister_if_new_db(Name, Old, New) ->
    case nsync_mirror:same_dbs(Old, New) of
        true -> ok;
        false -> register_table(Name, New)
    end.

claimable(Name) ->
    case table(Name) of
        {Owner, _} when Owner =/= self() -> {false, Owner};
        _ -> true
    end.

load_rows(Name, Rows, State) ->
    update_loading(Name, fun(Mirror) -> nsync_mirror:load_many(Mirror, Rows) end, State).

%% Rows the pump made for the default mirror, inserted as they are.
insert_rows(Name, Db, DataRows, ExpiryRows, State) ->
    update_loading(Name, fun(Mirror) ->
                                 nsync_mirror:insert_rows(Mirror, Db, DataRows, ExpiryRows)
                         end, State).

%% Writes to the mirror `Name' of the snapshot being loaded.
update_loading(Name, Write, #state{loading = Loading} = State) when is_map(Loading) ->
    case loading_mirror(Name, State) of
        {ok, Mirror} -> State#state{loading = Loading#{Name => Write(Mirror)}};
        {error, State1} -> State1
    end.

loading_mirror(Name, #state{loading = Loading} = State) ->
    case Loading of
        #{Name := Mirror} -> {ok, Mirror};
        _ -> new_table(Name, State)
    end.

live_mirror(Name, #state{live = Live} = State) ->
    case Live of
        #{Name := Mirror} -> {ok, Mirror};
        _ ->
            case new_table(Name, State) of
                {ok, Mirror} = Ok -> register_table(Name, Mirror), Ok;
                Error -> Error
            end
    end.

%% A table created on demand for a name the callback returned; a name owned
%% by another link is refused (once logged) and the event is not stored.
new_table(Name, State) ->
    case claimable(Name) of
        true ->
            {ok, new_mirror(Name, State)};
        {false, Owner} ->
            {error, report_once({table_taken, Name}, State,
                                fun() ->
                                        ?LOG_ERROR("nsync: table ~p belongs to link ~p; "
                                                   "events routed to it are not stored",
                                                   [Name, Owner])
                                end)}
    end.

apply_cmd(Route, Db, Cmd, Args, #state{live = Live} = State) ->
    case lists:member(Cmd, ?DATASET_CMDS) of
        true -> lists:foldl(fun(Name, S) -> apply_to(Name, Db, Cmd, Args, S) end,
                            State, maps:keys(Live));
        false when Route =:= none -> State;
        false -> apply_to(Route, Db, Cmd, Args, State)
    end.

apply_to(Name, Db, Cmd, Args, State) ->
    case live_mirror(Name, State) of
        {ok, Mirror} ->
            case nsync_mirror:apply_cmd(Mirror, Db, Cmd, Args) of
                {ok, Mirror} ->
                    %% the usual case: only ETS changed
                    State;
                {ok, Mirror1} ->
                    reregister_if_new_db(Name, Mirror, Mirror1),
                    State#state{live = (State#state.live)#{Name => Mirror1}};
                {unhandled, What, Mirror1} ->
                    reregister_if_new_db(Name, Mirror, Mirror1),
                    unhandled(What, State#state{live = (State#state.live)#{Name => Mirror1}})
            end;
        {error, State1} ->
            State1
    end.

unhandled(Cmd, #state{config = #{callback := Callback}} = State) ->
    State1 = State#state{unhandled = State#state.unhandled + 1},
    case Callback of
        default ->
            report_once({unhandled, Cmd}, State1,
                        fun() -> ?LOG_WARNING("nsync: the mirror cannot apply ~s; "
                                              "its keys may differ from the master", [Cmd])
                        end);
        _ ->
            {_, State2} = notify({error, {unhandled, Cmd}}, State1),
            State2
    end.

report_once(Key, #state{reported = Reported} = State, Log) ->
    case sets:is_element(Key, Reported) of
        true -> State;
        false -> Log(), State#state{reported = sets:add_element(Key, Reported)}
    end.

%% The new snapshot is complete: readers switch to its tables at once; the
%% old tables go after a grace period. Names of the old snapshot absent from the new one keep
%% an empty table (they were all in `loading' from the start).
publish_loading(#state{loading = undefined} = State) ->
    State;
publish_loading(#state{loading = Loading, live = Live, retired = Retired} = State) ->
    maps:foreach(fun register_table/2, Loading),
    Ref = make_ref(),
    erlang:send_after(?RETIRED_GRACE_MS, self(), {delete_retired, Ref}),
    State#state{live = maps:merge(Live, Loading), loading = undefined,
                retired = Retired#{Ref => maps:values(maps:with(maps:keys(Loading), Live))}}.

discard_loading(#state{loading = Loading} = State) ->
    [nsync_mirror:delete(M) || M <- loading_mirrors(Loading)],
    State#state{loading = undefined}.

loading_mirrors(undefined) -> [];
loading_mirrors(Loading) -> maps:values(Loading).

%%% -------------------------------------------------------------- misc

status_map(#state{nif = Nif, config = #{host := Host, port := Port}} = State) ->
    Info = nsync_nif:info(Nif),
    #{state => State#state.status,
      master => {Host, Port},
      replid => maps:get(replid, Info, State#state.replid),
      offset => maps:get(offset, Info, State#state.offset),
      keys_loaded => State#state.keys_loaded,
      %% counted by the pump, per batch sent
      commands => maps:get(commands, Info),
      unhandled => State#state.unhandled,
      reconnects => State#state.reconnects,
      callback_errors => State#state.callback_errors,
      tables => maps:keys(State#state.live)}.

master(#state{config = #{host := Host, port := Port}}) ->
    io_lib:format("~s:~b", [Host, Port]).

%% Delay before attempt N (1-based): 100 ms doubling up to 10 s, with jitter
%% in the upper half so that links dropped together do not retry together.
-spec backoff(pos_integer()) -> pos_integer().
backoff(Attempt) ->
    Base = backoff_base(Attempt),
    Base div 2 + rand:uniform(Base - Base div 2).

backoff_base(Attempt) ->
    min(?BACKOFF_CAP_MS, ?BACKOFF_START_MS bsl min(Attempt - 1, 16)).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

backoff_base_test() ->
    ?assertEqual([100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000],
                 [backoff_base(N) || N <- lists:seq(1, 9)]),
    ?assertEqual(10000, backoff_base(1000)).

backoff_jitter_test() ->
    [?assert(D > backoff_base(N) div 2 andalso D =< backoff_base(N))
     || N <- lists:seq(1, 12), _ <- lists:seq(1, 50), D <- [backoff(N)]].

route_test() ->
    ?assertEqual(none, route(undefined)),
    ?assertEqual(none, route(skip)),
    ?assertEqual(none, route(ok)),
    ?assertEqual(none, route(true)),
    ?assertEqual(none, route({load, <<"k">>, <<"v">>})),
    ?assertEqual(foo, route(foo)).
-endif.
