%%% @doc A shard's link writing its part of a cluster's view: the tables
%%% side of a link started by `nsync_cluster', in place of `nsync_tables'.
%%%
%%% Runs in the link process. A snapshot row or a command whose key's slot
%%% the shard owns, uncontested, is written directly to the view's tables;
%%% anything else goes to the view process (`nsync_cluster_view'), which
%%% decides who owns the keys. The shard's first snapshot is written into
%%% the view as it comes (nothing of the shard is there yet); a later full
%%% resync loads into staging tables of the link and replaces the shard's
%%% keys at its end, so that a resync cut short (and followed by a resumed
%%% stream) leaves the view as it was. A `CLUSTER SETSLOT Slot NODE Id'
%%% in the stream (Valkey 8+ propagates it) is the exact point where the
%%% slot left this shard: it hands the slot over at once.
-module(nsync_cluster_shard).

-export([new/3, claim/2, start_load/1, load/5, discard_load/1, publish_load/1, apply_cmd/6,
         names/1, stale/1, delete_all/1, release/1, shard/1]).

-export_type([shard/0]).

-record(shard, {
          view :: nsync_cluster_view:view(),
          shard :: nsync_cluster_view:shard(),
          settings :: {boolean(), map()},
          %% the view's mirrors this link wrote: name => mirror
          mirrors = #{} :: #{atom() => nsync_mirror:mirror()},
          %% a full sync in progress: `direct' (the first) or staging mirrors
          loading :: direct | #{atom() => nsync_mirror:mirror()} | undefined,
          %% whether the shard's first snapshot is complete
          loaded = false :: boolean(),
          %% whether the first snapshot wrote anything (a cut-short one did)
          wrote = false :: boolean(),
          %% the slots it writes directly, as of a version of the owners
          owned :: {non_neg_integer(), binary()} | undefined
         }).

-opaque shard() :: #shard{}.

%%% ================================================================ API

%% @doc The tables side of shard `Shard''s link in `View'; `Compressed'
%% and `Settings' as for a link's own tables.
-spec new(nsync_cluster_view:view(), nsync_cluster_view:shard(), {boolean(), map()}) -> shard().
new(View, Shard, Settings) ->
    #shard{view = View, shard = Shard, settings = Settings}.

%% @doc The view's table `Name' (the default mirror; called once, as the
%% link starts): its name is the view's, published by the view.
-spec claim(atom(), shard()) -> {ok, shard()}.
claim(Name, #shard{view = View, shard = Me} = S) ->
    {_, S1} = mirror(Name, S),
    %% a link started again after a crash: the shard's keys are in the view
    %% already, its first full sync replaces them
    {ok, S1#shard{loaded = nsync_cluster_view:has_loaded(View, Me)}}.

%% @doc Whether readers see tables a dead link loaded: never for a shard
%% (the view's tables live with the cluster).
-spec stale(shard()) -> false.
stale(_S) -> false.

%% @doc The link stops: the view's tables stay with the view.
-spec delete_all(shard()) -> ok.
delete_all(_S) -> ok.

%% @doc The link dies: the view's tables stay with the view.
-spec release(shard()) -> ok.
release(_S) -> ok.

%% @doc The shard's number in its cluster.
-spec shard(shard()) -> nsync_cluster_view:shard().
shard(#shard{shard = Shard}) -> Shard.

%% @doc A full sync starts.
-spec start_load(shard()) -> shard().
start_load(#shard{loaded = false, wrote = false} = S) ->
    S#shard{loading = direct};
start_load(S) ->
    (discard_load(S))#shard{loading = #{}}.

%% @doc Snapshot rows of table `Name'.
-spec load(atom(), non_neg_integer(), [tuple()], [tuple()], shard()) -> {ok, shard()}.
load(_Name, _Db, _DataRows, _ExpiryRows, #shard{loading = undefined} = S) ->
    {ok, S};
load(Name, Db, DataRows, ExpiryRows, #shard{loading = direct, view = View, shard = Me} = S0) ->
    {Mirror, S} = mirror(Name, S0),
    nsync_cluster_view:enter(View, Me),
    {_, Bitmap} = Owned = nsync_cluster_view:owned(View, Me, S#shard.owned),
    {Mine, Foreign} = split_rows(nsync_nif:foreign_rows(DataRows, Bitmap), DataRows, ExpiryRows),
    Mirror1 = case Mine of
                  all -> nsync_mirror:load(Mirror, Db, DataRows, ExpiryRows);
                  {D, E} -> nsync_mirror:load(Mirror, Db, D, E)
              end,
    nsync_cluster_view:leave(View, Me),
    [ok = nsync_cluster_view:rows(View, Me, Name, Foreign) || Foreign =/= []],
    {ok, S#shard{mirrors = (S#shard.mirrors)#{Name => Mirror1}, wrote = true, owned = Owned}};
load(Name, Db, DataRows, ExpiryRows, #shard{loading = Staging, settings = {C, Settings}} = S) ->
    Stage = case Staging of
                #{Name := M} -> M;
                _ -> nsync_mirror:new(Name, Db, C, Settings)
            end,
    {ok, S#shard{loading = Staging#{Name => nsync_mirror:load(Stage, Db, DataRows, ExpiryRows)}}}.

%% @doc The full sync will not complete: its staging tables go (a first
%% snapshot cut short stays in the view: the next full sync replaces it).
-spec discard_load(shard()) -> shard().
discard_load(#shard{loading = Staging} = S) when is_map(Staging) ->
    lists:foreach(fun nsync_mirror:delete/1, maps:values(Staging)),
    S#shard{loading = undefined};
discard_load(S) ->
    S#shard{loading = undefined}.

%% @doc The snapshot is complete: the first one is the shard's part of the
%% view; a later one replaces it.
-spec publish_load(shard()) -> shard().
publish_load(#shard{loading = direct, view = View, shard = Me} = S) ->
    ok = nsync_cluster_view:loaded(View, Me),
    S#shard{loading = undefined, loaded = true};
publish_load(#shard{loading = Staging, view = View, shard = Me} = S) when is_map(Staging) ->
    ok = nsync_cluster_view:resync(View, Me, Staging),
    lists:foreach(fun nsync_mirror:delete/1, maps:values(Staging)),
    [ok = nsync_cluster_view:loaded(View, Me) || not S#shard.loaded],
    S#shard{loading = undefined, loaded = true};
publish_load(S) ->
    S.

%% @doc Applies a command of the stream to table `Name'. (A cluster has no
%% key filter, `nsync_opts' refuses one: no key of a command is filtered.)
-spec apply_cmd(atom(), non_neg_integer(), binary(), [binary()], [], shard()) ->
          {ok, shard()} | {unhandled, binary(), shard()}.
apply_cmd(_Name, _Db, <<"cluster">>, Args, [], S) ->
    {ok, cluster_cmd(Args, S)};
apply_cmd(Name, Db, Cmd, Args, [], #shard{view = View, shard = Me} = S0) ->
    {Mirror, S} = mirror(Name, S0),
    case keys(Cmd, Args) of
        [] when Cmd =:= <<"flushall">>; Cmd =:= <<"flushdb">> ->
            ok = nsync_cluster_view:flush(View, Me),
            {ok, S};
        [] ->
            result(Name, nsync_apply:apply_cmd(Mirror, Db, Cmd, Args), S);
        [Key | _] = Keys ->
            Slot = nsync_nif:key_slot(Key),
            nsync_cluster_view:enter(View, Me),
            case nsync_cluster_view:slot_state(View, Slot) of
                {Me, false} ->
                    Result = nsync_apply:apply_cmd(Mirror, Db, Cmd, Args),
                    nsync_cluster_view:leave(View, Me),
                    result(Name, Result, S);
                _ ->
                    nsync_cluster_view:leave(View, Me),
                    case nsync_cluster_view:apply_cmd(View, Me, {Slot, Keys, Name, Db, Cmd, Args}) of
                        ok -> {ok, S};
                        {unhandled, What} -> {unhandled, What, S}
                    end
            end
    end.

%% @doc The names of the view's tables this link wrote.
-spec names(shard()) -> [atom()].
names(#shard{mirrors = Mirrors}) -> maps:keys(Mirrors).

%%% ============================================================ internal

mirror(Name, #shard{mirrors = Mirrors, view = View} = S) ->
    case Mirrors of
        #{Name := M} -> {M, S};
        _ ->
            M = nsync_cluster_view:mirror(View, Name),
            {M, S#shard{mirrors = Mirrors#{Name => M}}}
    end.

result(Name, {ok, M}, #shard{mirrors = Mirrors} = S) ->
    {ok, S#shard{mirrors = Mirrors#{Name => M}}};
result(Name, {unhandled, What, M}, #shard{mirrors = Mirrors} = S) ->
    {unhandled, What, S#shard{mirrors = Mirrors#{Name => M}}}.

%% The keys a command names, `[]' for one that names none (or cannot be
%% read: the mirror reports it).
keys(Cmd, Args) ->
    case nsync_cmd:spec(Cmd) of
        #{keys := KeySpec} ->
            try nsync_cmd:keys(KeySpec, Args)
            catch _:_ -> []
            end;
        undefined ->
            case Args of
                [K | _] -> [K];
                [] -> []
            end
    end.

%% The rows of the slots this shard writes directly (`all' when every row
%% is, as `nsync_nif:foreign_rows/2' found), and the others as
%% `[{Slot, DataRow, ExpiryRows}]'. Expiry rows are a subsequence of the
%% data rows, in the same order.
split_rows(all, _DataRows, _ExpiryRows) ->
    {all, []};
split_rows(Foreign, DataRows, ExpiryRows) ->
    split_rows(Foreign, 0, DataRows, ExpiryRows, [], [], []).

split_rows(_Foreign, _I, [], _Exp, MineD, MineE, Others) ->
    {{lists:reverse(MineD), lists:reverse(MineE)}, lists:reverse(Others)};
split_rows(Foreign, I, [{Key, _} = Row | Rest], Exp, MineD, MineE, Others) ->
    {RowExp, ExpRest} = case Exp of
                            [E | ERest] when element(1, E) =:= Key -> {[E], ERest};
                            _ -> {[], Exp}
                        end,
    case Foreign of
        [{I, Slot} | Foreign1] ->
            split_rows(Foreign1, I + 1, Rest, ExpRest, MineD, MineE, [{Slot, Row, RowExp} | Others]);
        _ ->
            split_rows(Foreign, I + 1, Rest, ExpRest, [Row | MineD], RowExp ++ MineE, Others)
    end.

%% `CLUSTER SETSLOT' in the stream (Valkey 8+ propagates it): slots are
%% moving, so the manager reads the topology soon; `SETSLOT Slot NODE Id'
%% is the point where this shard's stream is past the slot's move, when it
%% went to another shard.
cluster_cmd([Sub | Rest], #shard{view = View, shard = Me} = S) ->
    case string:lowercase(Sub) of
        <<"setslot">> ->
            ok = nsync_cluster_view:topology_changed(View),
            case setslot_node(Rest) of
                {Slot, NodeId} ->
                    case nsync_cluster_view:shard_of_node(View, NodeId) of
                        To when is_integer(To), To =/= Me ->
                            ok = nsync_cluster_view:handover(View, [{Slot, Slot}], Me, To);
                        _ ->
                            ok
                    end;
                none ->
                    ok
            end;
        _ ->
            ok
    end,
    S;
cluster_cmd([], S) ->
    S.

%% `Slot NODE Id' as `{Slot, Id}', else `none' (other SETSLOT forms).
setslot_node([SlotBin, How, NodeId | _]) ->
    case {string:lowercase(How), string:to_integer(SlotBin)} of
        {<<"node">>, {Slot, <<>>}} when Slot >= 0, Slot =< 16383 -> {Slot, NodeId};
        _ -> none
    end;
setslot_node(_) ->
    none.
