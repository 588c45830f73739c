%%% @doc The link process: one replication link, and its session policy.
%%%
%%% Each connection attempt is a session of the NIF (`nsync_nif:start/2'): a
%%% pump thread reads the socket, parses and builds the terms of each batch
%%% while this process handles the batches before it; after handling one,
%%% this process gives the pump a credit back (`nsync_nif:ack/2'), so at
%%% most a few batches are in flight and a slow consumer slows the socket.
%%% Batches are plain messages, so calls (stop) are served between them;
%%% `status/1' does not wait for them (`nsync_status'). What a batch's items
%%% become (events for the callback, rows in the tables) is
%%% `nsync_delivery''s job, what the link tells the outside world (telemetry
%%% events, status facts) `nsync_observe''s; this module decides when
%%% sessions start and what a failure means.
%%%
%%% Connection failures: a session ends with `{closed, Reason}' as its
%%% pump's last message; the link then starts a new session after a backoff
%%% (exponential, with jitter; the NIF resumes with PSYNC). Messages carry
%%% their session's id: those of an older session are ignored. The policy:
%%% <ul>
%%% <li>A blocking start (`{block, true}') returns `{error, Reason}' at
%%%     once for what retrying cannot fix (`fails_blocking_start/1': no
%%%     connection, TLS, auth, NOPERM, not a Redis server, a snapshot
%%%     nsync cannot read or a value over `max_value_bytes').</li>
%%% <li>Otherwise every failure is retried, whatever the master's state: a
%%%     link never stops on its own, so a supervisor is never taken down by
%%%     a master (a rotated password, an ACL change).</li>
%%% <li>Backoff: 100 ms doubling, with jitter, up to 1 s once the link has
%%%     data (as a Redis replica retries every second), and up to 10 s
%%%     before it has any or after a full sync that failed (each costs the
%%%     master a fork).</li>
%%% <li>The backoff starts over only once a session has streamed for
%%%     ?STABLE_MS (5 s), not when the master merely answers PSYNC: a
%%%     snapshot that fails every time backs off to the cap.</li>
%%% <li>While a link with data is not streaming its tables stay readable
%%%     (`status/1': `stale', with `last_error').</li>
%%% </ul>
%%%
%%% The seam for a layer above links (Sentinel, Cluster): each session's
%%% master comes from the config's `next_master' fun when it has one (else
%%% from its host and port), asked again before every session, and
%%% `reconnect/1' ends the current session and starts the next one at once.
%%% The replication position stays in the NIF, so the next session resumes
%%% with PSYNC at whichever master it reaches.
%%%
%%% A link of `nsync:load_file/2' (a `file' in its config) has one session,
%%% which reads the file instead of a master: once it is loaded the link
%%% keeps its tables and starts no other; if it fails, the link stops and
%%% the waiter gets the reason.
-module(nsync_link).
-behaviour(gen_server).

-include("nsync_log.hrl").

%% API
-export([start_link/2, status/1, reconnect/1]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         format_status/1]).
%% proc_lib entry point, and the one of a cluster's manager
-export([init_it/2, init_and_enter/3]).

-export_type([waiter/0, next_master/0]).

-type waiter() :: {pid(), reference()} | undefined.
%% Where the next session connects; called in the link process before each
%% session. `{error, Reason}', or a fun that raises, is a failed attempt.
-type next_master() :: fun(() -> nsync_nif:master() | {error, term()}).

-define(BACKOFF_START_MS, 100).
%% The cap once the link has data (a Redis replica retries every second).
-define(BACKOFF_CAP_DATA_MS, 1000).
%% The cap before the first snapshot, and after a failed full sync.
-define(BACKOFF_CAP_MS, 10000).
%% A session streaming this long resets the backoff.
-define(STABLE_MS, 5000).

-record(state, {
          nif :: nsync_nif:link(),
          config :: nsync_opts:config(),
          waiter :: waiter(),
          delivery :: nsync_delivery:delivery(),
          observe :: nsync_observe:observe(),
          %% the NIF session running, if any
          session :: nsync_nif:session() | undefined,
          %% the running session reached the master (it answered PSYNC)
          synced = false :: boolean(),
          %% the running session got FULLRESYNC and its snapshot is not
          %% loaded yet
          full_sync = false :: boolean(),
          %% when the running session started streaming (monotonic ms)
          streaming_since :: integer() | undefined,
          %% a snapshot was loaded: the tables hold data readers use
          has_data = false :: boolean(),
          %% this link loaded a snapshot (a blocking start returns then)
          loaded = false :: boolean(),
          %% the pending attempt's timer message, if any
          retry :: reference() | undefined,
          reconnects = 0 :: non_neg_integer(),
          %% consecutive failed attempts; 0 while connected
          attempts = 0 :: non_neg_integer(),
          ever_connected = false :: boolean(),
          %% the reason of the last failure, logged once per series
          last_error :: term()
         }).

%%% ================================================================ API

%% @doc Starts a link for a validated config. `Waiter', when given, receives
%% `{Ref, loaded}' after the first snapshot, or `{Ref, {error, Reason}}' if
%% the first connection fails. Returns `{error, Reason}' without crashing the
%% caller when the link cannot start (NIF open failure, table name taken).
-spec start_link(nsync_opts:config(), waiter()) -> {ok, pid()} | {error, term()}.
start_link(Config, Waiter) ->
    proc_lib:start_link(?MODULE, init_it, [Config, Waiter]).

%% @doc The link's status (see `nsync:status/1'), at once: it is read from
%% where it is kept (`nsync_status'), not asked of the link process.
-spec status(pid()) -> nsync:status().
status(Pid) ->
    nsync_status:status(Pid).

%% @doc Ends the current session, if any, and starts the next one at once
%% (its master asked again from `next_master'), without backoff; a callback
%% that had the stream gets `{error, closed}'. Asynchronous (a cast), so
%% that a layer the link calls (`next_master') may call it too.
-spec reconnect(pid()) -> ok.
reconnect(Pid) ->
    gen_server:cast(Pid, reconnect).

%% @private proc_lib entry: see init_and_enter/3.
-spec init_it(nsync_opts:config(), waiter()) -> no_return() | ok.
init_it(Config, Waiter) ->
    init_and_enter(?MODULE, Config, Waiter).

%% @private The body of a proc_lib entry starting gen_server `Module'
%% (a link, a cluster's manager): runs `Module:init({Config, Waiter})' and
%% acks `{error, Reason}' with a normal exit on failure, so that a failed
%% start never kills the caller.
-spec init_and_enter(module(), map(), waiter()) -> no_return() | ok.
init_and_enter(Module, Config, Waiter) ->
    case Module:init({Config, Waiter}) of
        {ok, State} ->
            proc_lib:init_ack({ok, self()}),
            gen_server:enter_loop(Module, [], State);
        {stop, Reason} ->
            proc_lib:init_ack({error, Reason})
    end.

%%% ========================================================== callbacks

%% @private
-spec init({nsync_opts:config(), waiter()}) -> {ok, #state{}} | {stop, term()}.
init({Config, Waiter}) ->
    %% Trapping exits lets terminate/2 clean the registry and close the socket.
    process_flag(trap_exit, true),
    %% The node's table owner keeps the published tables if this process
    %% dies: it runs before any table is made.
    case nsync_owner:ensure_started() of
        ok -> open(Config, Waiter);
        {error, Reason} -> {stop, Reason}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(reconnect, #state{session = undefined} = State) ->
    {noreply, retry_after(0, State)};
handle_cast(reconnect, #state{nif = Nif} = State) ->
    %% The pump answers {closed, disconnected}: the next session starts then.
    ok = nsync_nif:disconnect(Nif),
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({nsync_pump, Session, {batch, Items}},
            #state{session = Session, nif = Nif} = State) ->
    Began = erlang:monotonic_time(),
    #state{delivery = D, observe = Obs} = State1 =
        lists:foldl(fun item/2, State, nsync_delivery:runs(Items, State#state.delivery)),
    ok = nsync_nif:ack(Nif, Session),
    State2 = State1#state{observe = nsync_observe:batch_handled(Began, D, Obs)},
    %% A blocking start returns once the batch that completed the snapshot
    %% is acked and its facts recorded: status/1 then says so.
    {noreply, case State2 of
                  #state{loaded = true} -> notify_waiter(loaded, State2);
                  _ -> State2
              end};
handle_info({nsync_pump, Session, {closed, Reason}}, #state{session = Session} = State) ->
    session_lost(Reason, State#state{session = undefined});
handle_info({nsync_pump, _OlderSession, _}, State) ->
    {noreply, State};
handle_info({connect, Ref}, #state{retry = Ref} = State) ->
    start_session(State#state{retry = undefined});
handle_info({connect, _Cancelled}, State) ->
    {noreply, State};
handle_info({'EXIT', _From, normal}, State) ->
    {noreply, State};
handle_info({'EXIT', _From, Reason}, State) ->
    {stop, Reason, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private A link that is stopped (or stops by itself) deletes its
%% tables; one that crashes leaves its published tables to the next link
%% of its name, which readers keep seeing until then (a killed link runs no
%% terminate/2: the same).
-spec terminate(term(), #state{}) -> ok.
terminate(Reason, #state{nif = Nif, delivery = D, observe = Obs}) ->
    ok = nsync_observe:stopped(Reason, Obs),
    nsync_nif:close(Nif),
    case stopped(Reason) of
        true -> nsync_delivery:delete(D);
        false -> nsync_delivery:release(D)
    end.

%% @private Keeps the password out of crash reports and sys:get_status/1.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(#{state := #state{config = #{pass := Pass} = Config} = State} = Status)
  when is_binary(Pass) ->
    Status#{state := State#state{config = Config#{pass := <<"(redacted)">>}}};
format_status(Status) ->
    Status.

%%% ============================================================ internal

%% The items of a batch: the delivery handles them all; the policy watches
%% the master's answer to PSYNC and the end of each snapshot. A file's
%% session connects to no master.
item({fullresync, _Replid, _Offset} = Item, #state{config = #{file := _}, delivery = D} = State) ->
    State#state{delivery = nsync_delivery:item(Item, D)};
item({fullresync, _Replid, _Offset} = Item, #state{delivery = D} = State) ->
    connected(Item, State#state{delivery = nsync_delivery:item(Item, D), full_sync = true});
item({continue, _Replid, _Offset} = Item, #state{delivery = D} = State) ->
    streaming(connected(Item, State#state{delivery = nsync_delivery:item(Item, D)}));
item({load_eof, _Replid, _Offset} = Item, #state{delivery = D, observe = Obs} = State) ->
    D1 = nsync_delivery:item(Item, D),
    ok = kept_tables_replaced(D, D1),
    streaming(State#state{delivery = D1, full_sync = false, has_data = true, loaded = true,
                          observe = nsync_observe:loaded(Obs)});
item(Item, #state{delivery = D} = State) ->
    State#state{delivery = nsync_delivery:item(Item, D)}.

%% Readers see the tables a crashed link of this name left (taken over by
%% the delivery) until this link's first snapshot is complete: a reason
%% for the data to be stale, recorded for status/1.
kept_tables(D) ->
    case nsync_delivery:stale(D) of
        true -> nsync_status:record(self(), #{stale => crashed_link});
        false -> ok
    end.

kept_tables_replaced(Before, After) ->
    case nsync_delivery:stale(Before) andalso not nsync_delivery:stale(After) of
        true -> nsync_status:record(self(), #{stale => undefined});
        false -> ok
    end.

%%% ------------------------------------------------------------ sessions

%% The link's NIF resource and delivery (which holds its table names).
open(Config, Waiter) ->
    case open_nif(Config) of
        {ok, Nif} ->
            case nsync_delivery:new(Config) of
                {ok, Delivery} ->
                    Observe = nsync_observe:new(Config, Nif, Delivery),
                    ok = kept_tables(Delivery),
                    %% The first attempt is the first message: no call is
                    %% served before it. Tables a crashed link left are
                    %% data readers use.
                    {ok, retry_after(0, #state{nif = Nif, config = with_layer(Config),
                                               waiter = Waiter, delivery = Delivery,
                                               observe = Observe,
                                               has_data = nsync_delivery:stale(Delivery)})};
                {error, Reason} ->
                    nsync_nif:close(Nif),
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

start_session(#state{nif = Nif, observe = Obs} = State) ->
    case next_master(State) of
        {ok, Source} ->
            case nsync_nif:start(Nif, Source) of
                {ok, Session} ->
                    {noreply, State#state{session = Session, synced = false,
                                          full_sync = false, streaming_since = undefined,
                                          observe = nsync_observe:session_started(Source, Obs)}};
                {error, Reason} ->
                    %% e.g. {badarg, host}: a next_master fun's bad answer
                    session_lost(Reason, State)
            end;
        {error, Reason} ->
            session_lost(Reason, State)
    end.

next_master(#state{config = #{next_master := Next}}) ->
    try Next() of
        {error, _} = Error -> Error;
        Master -> {ok, Master}
    catch
        Class:Reason -> {error, {next_master, {Class, Reason}}}
    end;
next_master(#state{config = Config}) ->
    {ok, nsync_opts:source(Config)}.

%% A layer above the link that picks its masters: Sentinel.
with_layer(#{sentinel := Sentinel} = Config) ->
    Auth = maps:with([user, pass, tls, connect_timeout, name], Config),
    {ok, Layer} = nsync_sentinel:start_link(Sentinel, Auth),
    Config#{next_master => fun() -> nsync_sentinel:master(Layer) end};
with_layer(Config) ->
    Config.

open_nif(Config) ->
    case nsync_opts:nif_config(Config) of
        {ok, NifConfig} -> nsync_nif:open(NifConfig);
        {error, _} = Error -> Error
    end.

%% The master answered PSYNC: a connection (re)established. The backoff
%% is not reset here (see after_session/1).
connected(Item, #state{ever_connected = Again, attempts = Attempts, reconnects = N,
                       observe = Obs} = State) ->
    Reconnects = case Again of
                     true ->
                         ?LOG_NOTICE("nsync: reconnected to ~s after ~b failed attempt(s)",
                                     [master(State), Attempts], ?NSYNC_LOG),
                         N + 1;
                     false ->
                         N
                 end,
    Obs1 = nsync_observe:connected(Item, #{reconnection => Again, reconnects => Reconnects},
                                   Obs),
    State#state{ever_connected = true, reconnects = Reconnects, synced = true,
                observe = Obs1}.

%% The stream runs (after a snapshot, or resumed): the mirror is current.
streaming(State) ->
    State#state{streaming_since = erlang:monotonic_time(millisecond), last_error = undefined}.

%% A session is over (or could not start).
session_lost(_Reason, #state{config = #{file := _}, waiter = undefined} = State) ->
    %% the loaded file's session is over: the link keeps its tables
    {noreply, State};
session_lost(Reason, #state{synced = Synced, attempts = Attempts, observe = Obs} = State) ->
    policy(Reason, State#state{observe = nsync_observe:session_lost(Reason, Synced, Attempts + 1,
                                                                   Obs)}).

%% What the session policy makes of it: the next attempt, or the end.
policy(Reason, #state{config = #{file := _}} = State) ->
    file_failed(Reason, State);
policy(disconnected, State) ->
    %% reconnect/1 asked for it: no failure, no backoff
    ?LOG_NOTICE("nsync: reconnecting as asked", ?NSYNC_LOG),
    {noreply, retry_after(0, closed(State))};
policy(Reason, #state{waiter = Waiter} = State) when Waiter =/= undefined ->
    %% A blocking start: the first snapshot is not loaded yet.
    case fails_blocking_start(Reason) of
        true ->
            %% The caller gets the reason as `{error, Reason}'.
            {stop, normal, notify_waiter({error, Reason}, State)};
        false ->
            {noreply, retry_later(Reason, after_session(State))}
    end;
policy(Reason, State) ->
    {noreply, retry_later(Reason, after_session(closed(State)))}.

%% What a lost session leaves to the policy: a session that streamed long
%% enough ends the series of failures.
after_session(#state{streaming_since = Since} = State) ->
    Stable = Since =/= undefined andalso
        erlang:monotonic_time(millisecond) - Since >= ?STABLE_MS,
    Attempts = case Stable of
                   true -> 0;
                   false -> State#state.attempts
               end,
    State#state{attempts = Attempts, streaming_since = undefined}.

%% The file's session ended before the file was loaded: the waiter gets
%% the reason and the link stops.
file_failed(Reason, State) ->
    ?LOG_WARNING("nsync: cannot load ~s: ~0p", [master(State), Reason], ?NSYNC_LOG),
    {stop, normal, notify_waiter({error, Reason}, State)}.

%% `{error, closed}' tells the callback that an open connection went away
%% (not that a reconnect attempt failed).
closed(#state{synced = true, delivery = D} = State) ->
    State#state{synced = false, delivery = nsync_delivery:closed(D)};
closed(State) ->
    State.

%% Logs the first failure of a series (and any change of reason), not every
%% retry; a failure retrying may not fix as an error.
retry_later(Reason, #state{attempts = N, last_error = Last} = State) ->
    Delay = backoff(N + 1, backoff_cap(State)),
    case Reason =:= Last of
        true -> ok;
        false ->
            Level = case fails_blocking_start(Reason) of
                        true -> error;
                        false -> warning
                    end,
            ?LOG(Level, "nsync: connection to ~s failed: ~0p; retrying with backoff "
                        "(next in ~b ms)~s",
                 [master(State), Reason, Delay, stale_note(State)], ?NSYNC_LOG)
    end,
    retry_after(Delay, State#state{attempts = N + 1, last_error = Reason, full_sync = false}).

%% A failed full sync (each costs the master a fork) backs off further.
backoff_cap(#state{has_data = true, full_sync = false}) -> ?BACKOFF_CAP_DATA_MS;
backoff_cap(_State) -> ?BACKOFF_CAP_MS.

stale_note(#state{has_data = true}) -> "; the mirror keeps its data, marked stale";
stale_note(_State) -> "".

%% The next attempt, in `Delay' ms (now: the next message); an attempt
%% pending before is dropped.
retry_after(Delay, #state{attempts = Attempts, observe = Obs} = State) ->
    Ref = make_ref(),
    case Delay of
        0 -> self() ! {connect, Ref};
        _ -> erlang:send_after(Delay, self(), {connect, Ref})
    end,
    ok = nsync_observe:retrying(Delay, Attempts, Obs),
    State#state{retry = Ref}.

%% Whether a link ending with `Reason' was stopped (by nsync:stop/1, its
%% supervisor, a blocking start's failure) rather than crashed.
stopped(normal) -> true;
stopped(shutdown) -> true;
stopped({shutdown, _}) -> true;
stopped(_) -> false.

%% With `{block, true}', what retrying cannot fix is reported to the caller
%% at once rather than retried until the timeout: no connection, TLS, a
%% refused password, a user without +psync, a peer that is not a Redis
%% master, a snapshot nsync cannot read, a value over max_value_bytes.
fails_blocking_start({connect, _}) -> true;
fails_blocking_start({auth, _}) -> true;
fails_blocking_start({noperm, _}) -> true;
fails_blocking_start({tls, _}) -> true;
fails_blocking_start({no_answer, _}) -> true;
fails_blocking_start({protocol, _}) -> true;
fails_blocking_start({rdb, _, _}) -> true;
fails_blocking_start({too_large, _}) -> true;
fails_blocking_start(_) -> false.

notify_waiter(_Msg, #state{waiter = undefined} = State) ->
    State;
notify_waiter(Msg, #state{waiter = {Pid, Ref}} = State) ->
    Pid ! {Ref, Msg},
    State#state{waiter = undefined}.

%%% ---------------------------------------------------------------- misc

%% The master (or file) of the current or last session, for logs.
master(#state{config = #{file := File}}) ->
    File;
master(#state{nif = Nif}) ->
    case nsync_nif:info(Nif) of
        #{master := {Host, Port}} -> io_lib:format("~s:~b", [Host, Port]);
        #{master := undefined} -> "the master"
    end.

%% Delay before attempt N (1-based): 100 ms doubling up to Cap, with jitter
%% in the upper half so that links dropped together do not retry together.
-spec backoff(pos_integer(), pos_integer()) -> pos_integer().
backoff(Attempt, Cap) ->
    Base = backoff_base(Attempt, Cap),
    Base div 2 + rand:uniform(Base - Base div 2).

backoff_base(Attempt, Cap) ->
    min(Cap, ?BACKOFF_START_MS bsl min(Attempt - 1, 16)).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

backoff_base_test() ->
    ?assertEqual([100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000],
                 [backoff_base(N, ?BACKOFF_CAP_MS) || N <- lists:seq(1, 9)]),
    ?assertEqual([100, 200, 400, 800, 1000, 1000],
                 [backoff_base(N, ?BACKOFF_CAP_DATA_MS) || N <- lists:seq(1, 6)]),
    ?assertEqual(10000, backoff_base(1000, ?BACKOFF_CAP_MS)).

backoff_jitter_test() ->
    [?assert(D > backoff_base(N, Cap) div 2 andalso D =< backoff_base(N, Cap))
     || Cap <- [?BACKOFF_CAP_MS, ?BACKOFF_CAP_DATA_MS], N <- lists:seq(1, 12),
        _ <- lists:seq(1, 50), D <- [backoff(N, Cap)]].

backoff_cap_test() ->
    ?assertEqual(?BACKOFF_CAP_MS, backoff_cap(#state{has_data = false})),
    ?assertEqual(?BACKOFF_CAP_DATA_MS, backoff_cap(#state{has_data = true})),
    ?assertEqual(?BACKOFF_CAP_MS, backoff_cap(#state{has_data = true, full_sync = true})).

stable_session_resets_the_backoff_test() ->
    Now = erlang:monotonic_time(millisecond),
    Long = after_session(#state{attempts = 7, streaming_since = Now - ?STABLE_MS}),
    ?assertEqual({0, undefined}, {Long#state.attempts, Long#state.streaming_since}),
    Short = after_session(#state{attempts = 7, streaming_since = Now - 100}),
    ?assertEqual(7, Short#state.attempts),
    ?assertEqual(7, (after_session(#state{attempts = 7}))#state.attempts).
-endif.
