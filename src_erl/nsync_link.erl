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
%%% their session's id: those of an older session are ignored. An
%%% authentication failure is fatal: retrying with the same credentials is
%%% pointless, so the link stops with reason `{shutdown, {auth, Msg}}'. With
%%% `{block, true}', a start that cannot connect or authenticate at all
%%% returns `{error, Reason}' instead.
%%%
%%% The seam for a layer above links (Sentinel, Cluster): each session's
%%% master comes from the config's `next_master' fun when it has one (else
%%% from its host and port), asked again before every session, and
%%% `reconnect/1' ends the current session and starts the next one at once.
%%% The replication position stays in the NIF, so the next session resumes
%%% with PSYNC at whichever master it reaches.
-module(nsync_link).
-behaviour(gen_server).

-include("nsync_log.hrl").

%% API
-export([start_link/2, status/1, reconnect/1]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         format_status/1]).
%% proc_lib entry point
-export([init_it/2]).

-export_type([waiter/0, next_master/0]).

-type waiter() :: {pid(), reference()} | undefined.
%% Where the next session connects; called in the link process before each
%% session. A fun that raises counts as a failed attempt.
-type next_master() :: fun(() -> nsync_nif:master()).
-define(BACKOFF_START_MS, 100).
-define(BACKOFF_CAP_MS, 10000).

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
%% that had the stream gets `{error, closed}'.
-spec reconnect(pid()) -> ok.
reconnect(Pid) ->
    gen_server:call(Pid, reconnect).

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
handle_call(reconnect, _From, #state{session = undefined} = State) ->
    {reply, ok, retry_after(0, State)};
handle_call(reconnect, _From, #state{nif = Nif} = State) ->
    %% The pump answers {closed, disconnected}: the next session starts then.
    ok = nsync_nif:disconnect(Nif),
    {reply, ok, State};
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({nsync_pump, Session, {batch, Items}},
            #state{session = Session, nif = Nif} = State) ->
    Began = erlang:monotonic_time(),
    #state{delivery = D, observe = Obs} = State1 = lists:foldl(fun item/2, State, Items),
    ok = nsync_nif:ack(Nif, Session),
    {noreply, State1#state{observe = nsync_observe:batch_handled(Began, D, Obs)}};
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
%% the master's answer to PSYNC and the end of the first snapshot.
item({Answer, _Replid, _Offset} = Item, #state{delivery = D} = State)
  when Answer =:= fullresync; Answer =:= continue ->
    connected(Item, State#state{delivery = nsync_delivery:item(Item, D)});
item({load_eof, _Replid, _Offset} = Item, #state{delivery = D, observe = Obs} = State) ->
    D1 = nsync_delivery:item(Item, D),
    ok = kept_tables_replaced(D, D1),
    notify_waiter(loaded, State#state{delivery = D1, observe = nsync_observe:loaded(Obs)});
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
    case nsync_nif:open(nsync_opts:nif_config(Config)) of
        {ok, Nif} ->
            case nsync_delivery:new(Config) of
                {ok, Delivery} ->
                    Observe = nsync_observe:new(Config, Nif, Delivery),
                    ok = kept_tables(Delivery),
                    %% The first attempt is the first message: no call is
                    %% served before it.
                    {ok, retry_after(0, #state{nif = Nif, config = Config, waiter = Waiter,
                                               delivery = Delivery, observe = Observe})};
                {error, Reason} ->
                    nsync_nif:close(Nif),
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

start_session(#state{nif = Nif, observe = Obs} = State) ->
    case next_master(State) of
        {ok, Master} ->
            case nsync_nif:start(Nif, Master) of
                {ok, Session} ->
                    {noreply, State#state{session = Session, synced = false,
                                          observe = nsync_observe:session_started(Master, Obs)}};
                {error, Reason} ->
                    %% e.g. {badarg, host}: a next_master fun's bad answer
                    session_lost(Reason, State)
            end;
        {error, Reason} ->
            session_lost(Reason, State)
    end.

next_master(#state{config = #{next_master := Next}}) ->
    try
        {ok, Next()}
    catch
        Class:Reason -> {error, {next_master, {Class, Reason}}}
    end;
next_master(#state{config = Config}) ->
    {ok, nsync_opts:master(Config)}.

%% The master answered PSYNC: a connection (re)established.
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
    State#state{ever_connected = true, reconnects = Reconnects, attempts = 0,
                last_error = undefined, synced = true, observe = Obs1}.

%% A session is over (or could not start).
session_lost(Reason, #state{synced = Synced, attempts = Attempts, observe = Obs} = State) ->
    policy(Reason, State#state{observe = nsync_observe:session_lost(Reason, Synced, Attempts + 1,
                                                                   Obs)}).

%% What the session policy makes of it: the next attempt, or the end.
policy(disconnected, State) ->
    %% reconnect/1 asked for it: no failure, no backoff
    ?LOG_NOTICE("nsync: reconnecting as asked", ?NSYNC_LOG),
    {noreply, retry_after(0, closed(State))};
policy(Reason, #state{waiter = Waiter, ever_connected = false} = State)
  when Waiter =/= undefined ->
    case fails_blocking_start(Reason) of
        true ->
            %% The caller gets the reason as `{error, Reason}'.
            {stop, normal, notify_waiter({error, Reason}, State)};
        false ->
            {noreply, retry_later(Reason, State)}
    end;
policy({auth, Msg} = Reason, State) ->
    ?LOG_ERROR("nsync: ~s refused authentication: ~s; stopping (retrying with "
               "the same credentials is pointless)", [master(State), Msg], ?NSYNC_LOG),
    {stop, {shutdown, Reason}, closed(State)};
policy(Reason, State) ->
    {noreply, retry_later(Reason, closed(State))}.

%% `{error, closed}' tells the callback that an open connection went away
%% (not that a reconnect attempt failed).
closed(#state{synced = true, delivery = D} = State) ->
    State#state{synced = false, delivery = nsync_delivery:closed(D)};
closed(State) ->
    State.

%% Logs the first failure of a series (and any change of reason), not every
%% retry.
retry_later(Reason, #state{attempts = N, last_error = Last} = State) ->
    Delay = backoff(N + 1),
    case Reason =:= Last of
        true -> ok;
        false -> ?LOG_WARNING("nsync: connection to ~s failed: ~0p; retrying with "
                              "backoff (next in ~b ms)", [master(State), Reason, Delay],
                              ?NSYNC_LOG)
    end,
    retry_after(Delay, State#state{attempts = N + 1, last_error = Reason}).

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
%% supervisor, a blocking start's failure) or stopped by itself (a refused
%% password), rather than crashed.
stopped(normal) -> true;
stopped(shutdown) -> true;
stopped({shutdown, _}) -> true;
stopped(_) -> false.

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

%%% ---------------------------------------------------------------- misc

%% The master of the current or last session, for logs.
master(#state{nif = Nif}) ->
    case nsync_nif:info(Nif) of
        #{master := {Host, Port}} -> io_lib:format("~s:~b", [Host, Port]);
        #{master := undefined} -> "the master"
    end.

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
-endif.
