%%% @doc The owner of the node's published mirror tables.
%%%
%%% A link process parses what its master sends and can crash on it; the
%%% tables readers see must not go with it. So a table, once published to
%%% readers (`nsync_registry'), belongs to this process, which does nothing
%%% else: it never reads a socket, runs a callback or applies a command.
%%% Tables are `public': the link(s) that fill a table write it directly,
%%% as fast as the table's owner would (ETS checks the access right, not
%%% the owner, on each write).
%%%
%%% A link creates its tables (a full sync loads into tables it owns, which
%%% die with it if it crashes mid-snapshot) and hands each one over when it
%%% is published (`keep/1', `ets:give_away/3': no round trip). Tables a
%%% full sync replaced are deleted here after a grace period (`retire/2'),
%%% so that the deletion happens even if their link dies meanwhile. When a
%%% link crashes, its published tables stay here and in the registry: the
%%% link restarted under the same name takes them over, and readers keep
%%% them until its own snapshot is complete.
%%%
%%% Started by the nsync application (`nsync_sup'); `ensure_started/0'
%%% starts the application when a link starts without it.
-module(nsync_owner).
-behaviour(gen_server).

%% API
-export([start_link/0, ensure_started/0, keep/1, retire/2]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%%% ================================================================ API

%% @private Started by `nsync_sup'.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Makes sure the owner runs: starts the nsync application (and what
%% it needs) if nobody did, as when `nsync:start_link/1' is called from a
%% project that does not list nsync among its applications.
-spec ensure_started() -> ok | {error, term()}.
ensure_started() ->
    case whereis(?MODULE) of
        undefined ->
            case application:ensure_all_started(nsync) of
                {ok, _} -> running();
                {error, _} = Error -> Error
            end;
        _ ->
            ok
    end.

%% @doc Hands the tables of `Mirror' that the calling process owns over to
%% the owner (the mirror is being published).
-spec keep(nsync_mirror:mirror()) -> ok.
keep(Mirror) ->
    Owner = whereis(?MODULE),
    Self = self(),
    lists:foreach(fun(Tab) ->
                          case ets:info(Tab, owner) of
                              Self -> ets:give_away(Tab, Owner, nsync);
                              _ -> ok
                          end
                  end, nsync_mirror:tables(Mirror)).

%% @doc Deletes the tables of `Mirrors' (replaced by a new snapshot's) in
%% `GraceMs', so that a reader that looked one up just before the switch
%% can still finish.
-spec retire([nsync_mirror:mirror()], non_neg_integer()) -> ok.
retire([], _GraceMs) ->
    ok;
retire(Mirrors, GraceMs) ->
    gen_server:cast(?MODULE, {retire, Mirrors, GraceMs}).

%%% ========================================================== callbacks

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast({retire, Mirrors, GraceMs}, State) ->
    erlang:send_after(GraceMs, self(), {delete, Mirrors}),
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({delete, Mirrors}, State) ->
    lists:foreach(fun nsync_mirror:delete/1, Mirrors),
    {noreply, State};
handle_info({'ETS-TRANSFER', _Tab, _From, nsync}, State) ->
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%%% ============================================================ internal

%% The application runs, but its owner may be restarting.
running() ->
    case whereis(?MODULE) of
        undefined -> {error, {nsync_owner, not_running}};
        _ -> ok
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

%% Published tables outlive the process that made them; retired ones are
%% deleted after their grace, even when that process is gone.
keep_and_retire_test() ->
    ok = ensure_started(),
    Parent = self(),
    Maker = spawn(fun() ->
                          M = nsync_mirror:new(nsync_owner_test, 0),
                          ok = keep(M),
                          Parent ! {made, M},
                          receive never -> ok end
                  end),
    M = receive {made, Made} -> Made end,
    Tabs = nsync_mirror:tables(M),
    Owner = whereis(?MODULE),
    ?assertEqual([Owner || _ <- Tabs], [ets:info(T, owner) || T <- Tabs]),
    exit(Maker, kill),
    %% still there, and writable by anyone (public)
    ?assert(ets:insert(nsync_mirror:tid(M), {<<"k">>, <<"v">>})),
    ok = retire([M], 20),
    ?assertNotEqual(undefined, ets:info(nsync_mirror:tid(M))),
    timer:sleep(100),
    ?assertEqual([undefined || _ <- Tabs], [ets:info(T) || T <- Tabs]).
-endif.
