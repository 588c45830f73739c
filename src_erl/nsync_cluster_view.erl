%%% @doc One mirror view for every shard of a cluster: its tables, who owns
%%% each slot, and the writes that need a referee.
%%%
%%% The view's tables are ordinary mirror tables (`nsync_mirror'), public,
%%% owned by this process and written by the shards' links. Each slot has
%%% an owner (a shard), kept in an `atomics' array that the links read
%%% before each write: a link writes the keys of the slots it owns
%%% directly, from its own process, as a single link writes its mirror.
%%% Everything else comes here, where it is done one at a time: a write to
%%% a slot the shard does not own (the slot becomes contested: see
%%% `nsync_cluster_claims' for who owns a key then), any write to a
%%% contested slot, a shard's FLUSHALL, and the swap after a shard's full
%%% resync (its keys are replaced in place; the other shards' keys stay).
%%%
%%% The direct path and this process never write the same slot at once:
%%% a link writes directly only between `enter/2' and `leave/2' (a counter
%%% per shard, odd inside), after reading the slot's owner there; before
%%% this process takes a slot over (marks it contested, or moves it to
%%% another owner) it waits until the owner's counter is even or has
%%% moved on. A link never calls this process between `enter/2' and
%%% `leave/2', so the wait is bounded by one batch of direct writes.
%%%
%%% The view is published (readers' `nsync:tid/1') once every shard it was
%%% started with has loaded its first snapshot; a shard's first snapshot
%%% is written into the view directly, later ones come through `resync/3'.
-module(nsync_cluster_view).
-behaviour(gen_server).

%% API
-export([start_link/1, handle/1, stop/1, mirror/2, add_shard/3, retire/2, shards/1,
         assign/2, handover/4, loaded/2, has_loaded/2, published/1, slot_counts/1,
         contested_count/1, strays/2]).
%% the links' side
-export([enter/2, leave/2, slot_state/2, owned/3, apply_cmd/3, rows/4, resync/3, flush/2,
         shard_of_node/2, topology_changed/1]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([view/0, shard/0]).

-include_lib("kernel/include/logger.hrl").

-type shard() :: nsync_cluster_claims:shard().
-type slot() :: 0..16383.
%% What the links hold: the process, the slot owners, a version of them
%% (bumped at every change) and the section counters.
-opaque view() :: #{pid := pid(), slots := atomics:atomics_ref(),
                    version := atomics:atomics_ref(),
                    sections := atomics:atomics_ref()}.

-define(MAX_SHARDS, 1024).
%% a slot's word: owner bsl 1, bit 0 set while contested
-define(CONTESTED, 1).

-record(state, {
          view :: view(),
          name :: atom(),
          db :: non_neg_integer(),
          compressed :: boolean(),
          settings :: map(),
          %% the view's tables: name => mirror
          mirrors = #{} :: #{atom() => nsync_mirror:mirror()},
          contests = nsync_cluster_claims:new() :: nsync_cluster_claims:contests(),
          %% shard => its link, and the node ids seen in it
          shards = #{} :: #{shard() => pid()},
          nodes = #{} :: #{binary() => shard()},
          %% shards whose first snapshot is in the view
          loaded = [] :: [shard()],
          %% shards the view waits for before it is published
          awaited = [] :: [shard()],
          published = false :: boolean(),
          %% who gets `{nsync_cluster_view, published}'
          notify :: pid()
         }).

%%% ================================================================ API

%% @doc Starts the view of a cluster (`Config': the cluster's validated
%% options); the caller (the cluster's manager) is told when it is
%% published.
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Config) ->
    gen_server:start_link(?MODULE, {Config, self()}, []).

%% @doc What a link needs to write the view.
-spec handle(pid()) -> view().
handle(Pid) -> gen_server:call(Pid, handle).

-spec stop(pid()) -> ok.
stop(Pid) -> gen_server:stop(Pid).

%% @doc The view's table `Name' (created on demand: a callback's route).
-spec mirror(view(), atom()) -> nsync_mirror:mirror().
mirror(#{pid := Pid}, Name) -> gen_server:call(Pid, {mirror, Name}, infinity).

%% @doc Shard `Shard' is written by `Link'; `Nodes' are the node ids seen
%% in it (a `CLUSTER SETSLOT ... NODE Id' names a node).
-spec add_shard(pid(), shard(), {pid(), [binary()]}) -> ok.
add_shard(Pid, Shard, {Link, Nodes}) -> gen_server:call(Pid, {add_shard, Shard, Link, Nodes}).

%% @doc The shards and their links.
-spec shards(pid()) -> #{shard() => pid()}.
shards(Pid) -> gen_server:call(Pid, shards).

%% @doc Owners for slots that have none (the topology as first read, or
%% slots that had no master): `[{{First, Last}, Shard}]'. Slots with an
%% owner move only by `handover/4'.
-spec assign(pid(), [{{slot(), slot()}, shard()}]) -> ok.
assign(Pid, Ranges) -> gen_server:call(Pid, {assign, Ranges}, infinity).

%% @doc Shard `From''s stream is past the point where the slots `Ranges'
%% went to shard `To' (see `nsync_cluster_claims:handover/4').
-spec handover(pid() | view(), [{slot(), slot()}], shard(), shard()) -> ok.
handover(#{pid := Pid}, Ranges, From, To) -> handover(Pid, Ranges, From, To);
handover(Pid, Ranges, From, To) -> gen_server:call(Pid, {handover, Ranges, From, To}, infinity).

%% @doc Shard `Shard' has loaded its first snapshot.
-spec loaded(view(), shard()) -> ok.
loaded(#{pid := Pid}, Shard) -> gen_server:call(Pid, {loaded, Shard}, infinity).

%% @doc Whether shard `Shard''s first snapshot is in the view (a link
%% started again after a crash finds its part there).
-spec has_loaded(view(), shard()) -> boolean().
has_loaded(#{pid := Pid}, Shard) -> gen_server:call(Pid, {has_loaded, Shard}, infinity).

%% @doc Whether readers see the view.
-spec published(pid()) -> boolean().
published(Pid) -> gen_server:call(Pid, published).

%% @doc Shard `Shard' is no longer in the cluster (its link stopped): its
%% keys leave the view, its slots have no owner until `assign/2'.
-spec retire(pid(), shard()) -> ok.
retire(Pid, Shard) -> gen_server:call(Pid, {retire, Shard}, infinity).

%% @doc How many slots each shard owns (`0': none), and how many are
%% `contested'; read from the slot array, without calling the view.
-spec slot_counts(view()) -> #{shard() | 0 | contested => non_neg_integer()}.
slot_counts(#{slots := Slots}) ->
    lists:foldl(fun(S, Acc) ->
                        W = atomics:get(Slots, S),
                        Acc1 = maps:update_with(W bsr 1, fun(N) -> N + 1 end, 1, Acc),
                        case W band ?CONTESTED of
                            0 -> Acc1;
                            _ -> maps:update_with(contested, fun(N) -> N + 1 end, 1, Acc1)
                        end
                end, #{}, lists:seq(1, 16384)).

%% @doc How many slots are contested.
-spec contested_count(view()) -> non_neg_integer().
contested_count(#{slots := Slots}) ->
    count_contested(Slots, 16384, 0).

count_contested(_Slots, 0, N) -> N;
count_contested(Slots, I, N) -> count_contested(Slots, I - 1, N + (atomics:get(Slots, I) band ?CONTESTED)).

%% @doc The slots of `Owners' (`[{{First, Last}, Shard}]', as for
%% `assign/2') that another shard owns in the view, by move:
%% `#{{From, To} => [Slot]}', each list sorted.
-spec strays(view(), [{{slot(), slot()}, shard()}]) -> #{{shard(), shard()} => [slot()]}.
strays(#{slots := Slots}, Owners) ->
    lists:foldl(fun({{A, B}, To}, Acc) -> strays(Slots, B, A, To, Acc) end, #{}, Owners).

strays(_Slots, Slot, First, _To, Acc) when Slot < First ->
    Acc;
strays(Slots, Slot, First, To, Acc) ->
    case atomics:get(Slots, Slot + 1) bsr 1 of
        From when From =:= To; From =:= 0 ->
            strays(Slots, Slot - 1, First, To, Acc);
        From ->
            Acc1 = maps:update_with({From, To}, fun(L) -> [Slot | L] end, [Slot], Acc),
            strays(Slots, Slot - 1, First, To, Acc1)
    end.

%%% ----------------------------------------------------- the links' side

%% @doc Shard `Shard' starts writing directly (see the module doc).
-spec enter(view(), shard()) -> ok.
enter(#{sections := S}, Shard) -> atomics:add(S, Shard, 1).

%% @doc Shard `Shard' is done writing directly.
-spec leave(view(), shard()) -> ok.
leave(#{sections := S}, Shard) -> atomics:add(S, Shard, 1).

%% @doc The owner of `Slot' (0 if none) and whether it is contested.
-spec slot_state(view(), slot()) -> {shard() | 0, boolean()}.
slot_state(#{slots := Slots}, Slot) ->
    W = atomics:get(Slots, Slot + 1),
    {W bsr 1, W band ?CONTESTED =:= ?CONTESTED}.

%% @doc The slots `Shard' writes directly (owned, not contested) as a
%% bitmap (bit `Slot' of byte `Slot div 8', least significant first;
%% `nsync_nif:foreign_rows/2'), for the version of the slot owners it was
%% made from: `{Version, Bitmap}'. `Cached' is returned when its version
%% is still current. Read between `enter/2' and `leave/2'.
-spec owned(view(), shard(), {non_neg_integer(), binary()} | undefined) ->
          {non_neg_integer(), binary()}.
owned(#{version := V, slots := Slots}, Shard, Cached) ->
    Version = atomics:get(V, 1),
    case Cached of
        {Version, _} -> Cached;
        _ -> {Version, bitmap(Slots, Shard bsl 1)}
    end.

bitmap(Slots, Word) ->
    << <<(lists:foldl(fun(J, Acc) ->
                              case atomics:get(Slots, Byte * 8 + J + 1) of
                                  Word -> Acc bor (1 bsl J);
                                  _ -> Acc
                              end
                      end, 0, lists:seq(0, 7)))>>
       || Byte <- lists:seq(0, 2047) >>.

%% @doc Applies a command of shard `Shard' that is not its to write
%% directly: `{Slot, Keys}' (`Keys' in `Slot'), table `Name', database
%% `Db'. Returns the mirror's answer.
-spec apply_cmd(view(), shard(), {slot(), [binary()], atom(), non_neg_integer(), binary(),
                                   [binary()]}) -> ok | {unhandled, binary()}.
apply_cmd(#{pid := Pid}, Shard, Cmd) -> gen_server:call(Pid, {cmd, Shard, Cmd}, infinity).

%% @doc Writes snapshot rows of shard `Shard' that are not its to write
%% directly: `[{Slot, DataRow, ExpiryRows}]' into table `Name'.
-spec rows(view(), shard(), atom(), [{slot(), tuple(), [tuple()]}]) -> ok.
rows(#{pid := Pid}, Shard, Name, Rows) -> gen_server:call(Pid, {rows, Shard, Name, Rows}, infinity).

%% @doc Shard `Shard' completed a full resync into the mirrors `Staging'
%% (table name => mirror, public): its keys in the view become the
%% staging's, the other shards' stay. The caller deletes the staging
%% mirrors afterwards.
-spec resync(view(), shard(), #{atom() => nsync_mirror:mirror()}) -> ok.
resync(#{pid := Pid}, Shard, Staging) -> gen_server:call(Pid, {resync, Shard, Staging}, infinity).

%% @doc Shard `Shard''s FLUSHALL / FLUSHDB: its keys go.
-spec flush(view(), shard()) -> ok.
flush(#{pid := Pid}, Shard) -> gen_server:call(Pid, {resync, Shard, #{}}, infinity).

%% @doc The shard node `NodeId' belongs to, `undefined' if unknown.
-spec shard_of_node(view(), binary()) -> shard() | undefined.
shard_of_node(#{pid := Pid}, NodeId) -> gen_server:call(Pid, {shard_of_node, NodeId}).

%% @doc A shard's stream says slots are moving (`CLUSTER SETSLOT'): the
%% manager reads the topology soon.
-spec topology_changed(view()) -> ok.
topology_changed(#{pid := Pid}) -> gen_server:cast(Pid, topology_changed).

%%% ========================================================== callbacks

%% @private
-spec init({map(), pid()}) -> {ok, #state{}} | {stop, {already_started, pid()}}.
init({Config, Notify}) ->
    process_flag(trap_exit, true),
    logger:update_process_metadata(#{domain => [nsync]}),
    View = #{pid => self(), slots => atomics:new(16384, [{signed, false}]),
             version => atomics:new(1, [{signed, false}]),
             sections => atomics:new(?MAX_SHARDS, [{signed, false}])},
    #{name := Name, compressed := Compressed} = Config,
    State = #state{view = View, name = Name, db = 0, compressed = Compressed,
                   settings = (maps:with([hll_sparse_max_bytes, geo_formula, big_threshold],
                                         Config))#{write_concurrency => true},
                   notify = Notify},
    %% the name is the cluster's: readers get `undefined' until published
    case nsync_registry:claimable(Name) of
        true ->
            ok = nsync_registry:claim(Name, Name),
            {ok, ensure_mirror(Name, State)};
        {false, Holder} ->
            {stop, {already_started, Holder}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(handle, _From, #state{view = View} = State) ->
    {reply, View, State};
handle_call({mirror, Name}, _From, State) ->
    State1 = ensure_mirror(Name, State),
    {reply, maps:get(Name, State1#state.mirrors), State1};
handle_call({add_shard, Shard, Link, Nodes}, _From, #state{shards = Shards} = State)
  when Shard >= 1, Shard =< ?MAX_SHARDS, is_pid(Link) ->
    link(Link),
    Awaited = case State#state.published of
                  false -> lists:usort([Shard | State#state.awaited]);
                  true -> State#state.awaited
              end,
    {reply, ok, State#state{shards = Shards#{Shard => Link}, awaited = Awaited,
                            nodes = maps:merge(State#state.nodes,
                                               maps:from_list([{N, Shard} || N <- Nodes]))}};
handle_call(shards, _From, State) ->
    {reply, State#state.shards, State};
handle_call({assign, Ranges}, _From, #state{view = #{slots := Slots, version := V}} = State) ->
    %% every reading assigns: the version (each link's bitmap of its
    %% slots is made again when it moves) moves only when an owner changed
    Assigned = lists:foldl(fun({{A, B}, Shard}, N) -> N + assign(Slots, A, B, Shard bsl 1) end,
                           0, Ranges),
    [atomics:add(V, 1, 1) || Assigned > 0],
    {reply, ok, State};
handle_call({handover, Ranges, From, To}, _From, #state{name = Name} = State) ->
    Slots = [S || {A, B} <- Ranges, S <- lists:seq(A, B)],
    nsync_telemetry:event([cluster, slots_moved],
                          #{system_time => erlang:system_time(), slots => length(Slots)},
                          #{cluster => Name, from => From, to => To}),
    {reply, ok, lists:foldl(fun(Slot, St) -> handover_slot(Slot, From, To, St) end, State, Slots)};
handle_call({loaded, Shard}, _From, State) ->
    {reply, ok, maybe_publish(State#state{loaded = lists:usort([Shard | State#state.loaded])})};
handle_call({has_loaded, Shard}, _From, State) ->
    {reply, lists:member(Shard, State#state.loaded), State};
handle_call(published, _From, State) ->
    {reply, State#state.published, State};
handle_call({retire, Shard}, _From, State) ->
    {reply, ok, retire_shard(Shard, State)};
handle_call({cmd, Shard, Cmd}, _From, State) ->
    {Reply, State1} = referee_cmd(Shard, Cmd, State),
    {reply, Reply, State1};
handle_call({rows, Shard, Name, Rows}, _From, State) ->
    {reply, ok, referee_rows(Shard, Name, Rows, ensure_mirror(Name, State))};
handle_call({resync, Shard, Staging}, _From, State) ->
    {reply, ok, swap(Shard, Staging, State)};
handle_call({shard_of_node, NodeId}, _From, #state{nodes = Nodes} = State) ->
    {reply, maps:get(NodeId, Nodes, undefined), State};
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(topology_changed, #state{notify = Notify} = State) ->
    Notify ! {nsync_cluster_view, self(), topology_changed},
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({'EXIT', Pid, Reason}, #state{shards = Shards} = State) ->
    case [S || {S, P} <- maps:to_list(Shards), P =:= Pid] of
        [] -> {stop, Reason, State};
        Gone -> {noreply, State#state{shards = maps:without(Gone, Shards)}}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{name = Name, mirrors = Mirrors}) ->
    nsync_registry:unpublish([Name | maps:keys(Mirrors)]),
    lists:foreach(fun nsync_mirror:delete/1, maps:values(Mirrors)).

%%% ============================================================ internal

ensure_mirror(Name, #state{mirrors = Mirrors} = State) when is_map_key(Name, Mirrors) ->
    State;
ensure_mirror(Name, #state{mirrors = Mirrors, db = Db, compressed = C, settings = S} = State) ->
    Mirror = nsync_mirror:new(Name, Db, C, S),
    [ok = publish(Name, Mirror) || State#state.published],
    State#state{mirrors = Mirrors#{Name => Mirror}}.

publish(Name, Mirror) ->
    nsync_registry:publish(Name, Name, Mirror).

maybe_publish(#state{published = true} = State) ->
    State;
maybe_publish(#state{awaited = Awaited, loaded = Loaded, mirrors = Mirrors} = State) ->
    case Awaited =/= [] andalso Awaited -- Loaded =:= [] of
        true ->
            maps:foreach(fun publish/2, Mirrors),
            State#state.notify ! {nsync_cluster_view, self(), published},
            State#state{published = true};
        false ->
            State
    end.

%%% ------------------------------------------------------------ slots

owner(#state{view = #{slots := Slots}}, Slot) ->
    atomics:get(Slots, Slot + 1) bsr 1.

%% Sets a slot's owner and contested bit, after the slot's current
%% direct writer (if any) is out of its section.
set_slot(Slot, Owner, Contested, #state{view = #{slots := Slots, version := V}} = State) ->
    Old = atomics:exchange(Slots, Slot + 1, (Owner bsl 1) bor bit(Contested)),
    atomics:add(V, 1, 1),
    case Old band ?CONTESTED of
        0 -> wait_section(Old bsr 1, State);
        _ -> ok
    end.

%% Gives the slots First..Last without an owner to `Word''s shard; how many.
assign(Slots, First, Last, Word) ->
    lists:foldl(fun(S, N) ->
                        case atomics:compare_exchange(Slots, S + 1, 0, Word) of
                            ok -> N + 1;
                            _ -> N
                        end
                end, 0, lists:seq(First, Last)).

bit(true) -> ?CONTESTED;
bit(false) -> 0.

%% Waits until shard `Shard''s link is out of the section it may be in.
wait_section(0, _State) ->
    ok;
wait_section(Shard, #state{view = #{sections := S}, shards = Shards}) ->
    case atomics:get(S, Shard) of
        N when N band 1 =:= 0 -> ok;
        N -> spin(S, Shard, N, maps:get(Shard, Shards, undefined), 0)
    end.

spin(S, Shard, N, Link, Tries) ->
    case atomics:get(S, Shard) =/= N orelse not is_pid(Link) orelse not is_process_alive(Link) of
        true -> ok;
        false when Tries < 100 -> erlang:yield(), spin(S, Shard, N, Link, Tries + 1);
        false -> timer:sleep(1), spin(S, Shard, N, Link, Tries)
    end.

handover_slot(Slot, From, To, #state{contests = Contests} = State) ->
    case nsync_cluster_claims:handover(Slot, From, To, Contests) of
        {_, 0, Contests1} ->
            %% a retired shard was the last writer: the slot waits for an owner
            set_slot(Slot, 0, false, State),
            State#state{contests = nsync_cluster_claims:drop(Slot, Contests1)};
        {contested, Owner, Contests1} ->
            set_slot(Slot, Owner, true, State),
            State#state{contests = Contests1};
        {plain, Owner, Contests1} ->
            set_slot(Slot, Owner, false, State),
            State#state{contests = Contests1};
        none ->
            case owner(State, Slot) of
                From -> set_slot(Slot, To, false, State);
                _ -> ok
            end,
            State
    end.

%% The decision for a write of `Shard' to `Keys' of `Slot'; a slot without
%% an owner becomes the writer's.
decide(Shard, Slot, Keys, #state{contests = Contests} = State) ->
    case owner(State, Slot) of
        0 ->
            set_slot(Slot, Shard, false, State),
            {apply, State};
        Owner ->
            {Decision, Contests1} = nsync_cluster_claims:decide(Shard, {Slot, Owner}, Keys,
                                                                  Contests),
            case nsync_cluster_claims:contested(Slot, Contests1) andalso
                 not nsync_cluster_claims:contested(Slot, Contests) of
                true ->
                    ?LOG_INFO("nsync: cluster slot ~b is written by shard ~b and shard ~b "
                              "(a slot migration)", [Slot, Owner, Shard]),
                    State#state.notify ! {nsync_cluster_view, self(), contested},
                    set_slot(Slot, Owner, true, State);
                false ->
                    ok
            end,
            {Decision, State#state{contests = Contests1}}
    end.

%%% ------------------------------------------------------------ writes

referee_cmd(Shard, {Slot, Keys, Name, Db, Cmd, Args}, State0) ->
    State = ensure_mirror(Name, State0),
    {Decision, State1} = decide(Shard, Slot, Keys, State),
    Mirror = maps:get(Name, State1#state.mirrors),
    Result = case Decision of
                 apply -> nsync_apply:apply_cmd(Mirror, Db, Cmd, Args);
                 {replace, Old} ->
                     {ok, M1} = delete_keys(Mirror, Db, Old),
                     nsync_apply:apply_cmd(M1, Db, Cmd, Args);
                 {drop, Gone} -> delete_keys(Mirror, Db, Gone)
             end,
    case Result of
        {ok, M2} -> {ok, set_mirror(Name, M2, State1)};
        {unhandled, What, M2} -> {{unhandled, What}, set_mirror(Name, M2, State1)}
    end.

delete_keys(Mirror, _Db, []) -> {ok, Mirror};
delete_keys(Mirror, Db, Keys) -> nsync_apply:apply_cmd(Mirror, Db, <<"del">>, Keys).

set_mirror(Name, Mirror, #state{mirrors = Mirrors} = State) ->
    State#state{mirrors = Mirrors#{Name := Mirror}}.

%% Snapshot rows: each a write of its key by the shard.
referee_rows(Shard, Name, Rows, State) ->
    lists:foldl(fun({Slot, {Key, _} = Row, Expiry}, St) ->
                        case decide(Shard, Slot, [Key], St) of
                            {{drop, _}, St1} -> St1;
                            {_, St1} -> put_row(Name, Row, Expiry, St1)
                        end
                end, State, Rows).

put_row(Name, {Key, _} = Row, Expiry, #state{db = Db} = State) ->
    Mirror = maps:get(Name, State#state.mirrors),
    {ok, M1} = delete_keys(Mirror, Db, [Key]),
    set_mirror(Name, nsync_mirror:load(M1, Db, [Row], Expiry), State).

%%% ------------------------------------------------------------ resync

%% A shard's keys in the view become those of `Staging' (empty for a
%% FLUSHALL): its keys the staging lacks go, then the staging's rows are
%% written as the shard's writes. Its keys: those of the slots it owns
%% (all of them, or the untouched ones of a contested slot) and those it
%% touched where it imports.
swap(Shard, Staging, #state{mirrors = Mirrors} = State) ->
    State1 = maps:fold(fun(Name, Mirror, St) ->
                               drop_missing(Shard, Name, Mirror, maps:get(Name, Staging, none), St)
                       end, State, Mirrors),
    maps:fold(fun(Name, Stage, St) ->
                      nsync_mirror:fold(fun({Key, _} = Row, Expiry, Acc) ->
                                                Slot = nsync_nif:key_slot(Key),
                                                referee_rows(Shard, Name, [{Slot, Row, Expiry}], Acc)
                                        end, ensure_mirror(Name, St), Stage, St#state.db)
              end, State1, Staging).

%% Deletes the shard's keys of table `Name' that the staging lacks.
drop_missing(Shard, Name, Mirror, Stage, #state{db = Db, contests = Contests} = State) ->
    Tid = nsync_mirror:tid(Mirror),
    StageTid = case Stage of
                   none -> none;
                   _ -> nsync_mirror:tid(Stage)
               end,
    Missing = fun(Key) -> StageTid =:= none orelse not ets:member(StageTid, Key) end,
    Gone = ets:foldl(
             fun({Key, _}, Acc) ->
                     Slot = nsync_nif:key_slot(Key),
                     case is_held(Shard, Slot, Key, State) andalso Missing(Key) of
                         true -> [{Slot, Key} | Acc];
                         false -> Acc
                     end
             end, [], Tid),
    {ok, Mirror1} = delete_keys(Mirror, Db, [K || {_, K} <- Gone]),
    Contests1 = lists:foldl(fun({Slot, Key}, C) -> nsync_cluster_claims:forget(Slot, [Key], C) end,
                            Contests, Gone),
    set_mirror(Name, Mirror1, State#state{contests = Contests1}).

%% Whether the view holds `Key' (of `Slot') for `Shard'.
is_held(Shard, Slot, Key, #state{contests = Contests} = State) ->
    case nsync_cluster_claims:held_by(Shard, Slot, Contests) of
        {owner, Others} -> not lists:member(Key, Others);
        {importer, Mine} -> lists:member(Key, Mine);
        none -> not nsync_cluster_claims:contested(Slot, Contests) andalso owner(State, Slot) =:= Shard
    end.

%% A shard leaves: its keys go (as for its FLUSHALL), then the slots it
%% wrote: a contest goes on with the next writer, a slot it owned alone
%% waits for an owner.
retire_shard(Shard, State) ->
    #state{contests = Contests} = State1 = swap(Shard, #{}, State),
    State2 = lists:foldl(fun(Slot, St) -> handover_slot(Slot, Shard, 0, St) end, State1,
                         [S || S <- nsync_cluster_claims:slots(Contests),
                               nsync_cluster_claims:held_by(Shard, S, Contests) =/= none]),
    [set_slot(S, 0, false, State2) || S <- lists:seq(0, 16383), owner(State2, S) =:= Shard,
                                      not nsync_cluster_claims:contested(S, State2#state.contests)],
    State2#state{shards = maps:remove(Shard, State2#state.shards),
                 loaded = lists:delete(Shard, State2#state.loaded),
                 awaited = lists:delete(Shard, State2#state.awaited)}.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

%% The bitmap of a shard's directly written slots, and the NIF that reads
%% it, agree with key_slot/1.
owned_test() ->
    View = #{pid => self(), slots => atomics:new(16384, [{signed, false}]),
             version => atomics:new(1, [{signed, false}]),
             sections => atomics:new(4, [{signed, false}])},
    #{slots := Slots} = View,
    %% shard 1 owns the even slots, shard 2 the odd ones, 4 is contested
    [atomics:put(Slots, S + 1, ((S rem 2) + 1) bsl 1) || S <- lists:seq(0, 16383)],
    atomics:put(Slots, 5, (1 bsl 1) bor ?CONTESTED),
    {0, Bitmap} = Owned = owned(View, 1, undefined),
    ?assertEqual(2048, byte_size(Bitmap)),
    ?assertEqual(Owned, owned(View, 1, Owned)),
    Rows = [{K, v} || I <- lists:seq(1, 500), K <- [integer_to_binary(I)]],
    Expected = [{I, Slot} || {I, {K, _}} <- lists:zip(lists:seq(0, 499), Rows),
                             Slot <- [nsync_nif:key_slot(K)],
                             Slot rem 2 =:= 1 orelse Slot =:= 4],
    ?assertEqual(Expected, nsync_nif:foreign_rows(Rows, Bitmap)),
    ?assertEqual(all, nsync_nif:foreign_rows([], Bitmap)),
    ?assertError(badarg, nsync_nif:foreign_rows([not_a_row], Bitmap)),
    %% a change of owners is seen by the next call
    atomics:add(maps:get(version, View), 1, 1),
    {1, _} = owned(View, 1, Owned).
-endif.
