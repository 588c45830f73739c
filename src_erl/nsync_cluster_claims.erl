%%% @doc Who owns a key of a cluster's mirror: the rules that keep one
%%% view equal to the union of the shards' datasets while slots move.
%%%
%%% Each slot has an owner: the shard whose link writes the slot's keys
%%% directly. A slot is contested while more than one shard's stream
%%% carries keys of it: `MIGRATE' moves keys one by one, the source's
%%% stream has `DEL' and the target's `RESTORE-ASKING' (and the keys
%%% clients create there after an `-ASK'), and the two streams reach the
%%% mirror in any interleaving. During a contest:
%%% <ul>
%%% <li>the writers of the slot are ranked: the owner (the source) first,
%%% then each importer in the order it appeared. A writer is a shard in
%%% one epoch: a shard that hands the slot over and later imports it back
%%% is a new writer, ranked after the others;</li>
%%% <li>a key an importer touched is that importer's: its first command on
%%% the key replaces whatever the view held (the key did not exist on
%%% that shard before: a RESTORE brings it whole, an `-ASK' creates it),
%%% and the commands of lower-ranked writers on it are stale (they come
%%% from before the key left them): not applied, and so is the source's
%%% `DEL' of a migrated key;</li>
%%% <li>keys no importer touched are the owner's, written as usual;</li>
%%% <li>a stale command's other keys are deleted from the view: the source
%%% either no longer has them (RENAME's source, LMOVE's emptied list) or
%%% moves or deletes them before the slot changes hands.</li>
%%% </ul>
%%% A writer's epoch ends with a handover (`handover/3'): its stream is
%%% past the point where the slot left it (Valkey 8+ propagates `CLUSTER
%%% SETSLOT Slot NODE Id' there; for older servers the manager reads the
%%% owner's master offset after the topology showed the move), so none of
%%% its commands on the slot remain. When the owner's epoch ends the next
%%% live writer owns the slot (or, when none is left, the one the slot
%%% went to); once no importer is left the slot is plain again.
%%%
%%% Why this is right whatever the interleaving: a shard holds a key of a
%%% slot it imports only after the key left the source (RESTORE-ASKING
%%% comes after the source had it, and MIGRATE's DEL after that), or when
%%% the source did not have it (an `-ASK' goes only to a key the source
%%% lacks). So once the view saw an importer touch a key, everything the
%%% source's stream still says about that key predates the move. A
%%% multi-key command runs on one node only when all its keys are there
%%% (else `-TRYAGAIN'): the source's command on a touched key is stale as
%%% a whole, and since every key the source still holds in the slot is
%%% moved before the handover (the RESTORE replaces it) or deleted by it,
%%% deleting the command's other keys leaves no stale key behind. The
%%% model test below replays random migrations (and moves back) under
%%% random interleavings of the streams and full resyncs, and checks the
%%% view against the union of the shards.
%%%
%%% This module is pure: the view process (`nsync_cluster_view') keeps
%%% the contests and acts on the decisions.
-module(nsync_cluster_claims).

-export([new/0, decide/4, contested/2, owner_of/2, held_by/3, handover/4, forget/3,
         drop/2, slots/1]).

-export_type([contests/0, decision/0, shard/0]).

-type shard() :: pos_integer().
-type key() :: binary().
-type slot() :: 0..16383.
%% a shard in one epoch of a contest
-type writer() :: {shard() | 0, non_neg_integer()}.
-record(contest, {
          %% every writer so far, in rank order, and whether it still
          %% writes (`live') or handed the slot over to a shard
          order :: [{writer(), live | {gone, shard() | 0}}],
          %% keys an importer touched, and which
          touched = #{} :: #{key() => writer()},
          %% each shard's current epoch
          epochs = #{} :: #{shard() | 0 => non_neg_integer()}
         }).
-opaque contests() :: #{slot() => #contest{}}.
-type decision() :: apply              % apply the command to the view
                  | {replace, [key()]} % delete these keys first, then apply
                  | {drop, [key()]}.   % stale: not applied; delete these keys

%% @doc No contested slot.
-spec new() -> contests().
new() -> #{}.

%% @doc What to do with a command (or snapshot row) of shard `Shard' on
%% `Keys' (in slot `Slot', owned by `Owner' when not contested), and the
%% contests after it. A shard writing a slot it does not own makes the
%% slot contested, with that shard as its newest importer.
-spec decide(shard(), {slot(), shard()}, [key()], contests()) -> {decision(), contests()}.
decide(Shard, {Slot, Owner}, Keys, Contests) ->
    case Contests of
        #{Slot := C} ->
            decide_in(Shard, Keys, C, Slot, Contests);
        _ when Owner =:= Shard ->
            {apply, Contests};
        _ ->
            C = #contest{order = [{{Owner, 0}, live}], epochs = #{Owner => 0}},
            decide_in(Shard, Keys, C, Slot, Contests)
    end.

decide_in(Shard, Keys, C0, Slot, Contests) ->
    C = join(Shard, C0),
    #contest{order = Order, touched = Touched, epochs = #{Shard := Epoch}} = C,
    Me = {Shard, Epoch},
    Pos = position(Me, Order),
    Later = [K || K <- Keys, #{K := By} <- [Touched], position(By, Order) > Pos],
    IsOwner = owner(Order) =:= Me,
    New = [K || K <- Keys, case Touched of
                               #{K := Me} -> false;
                               #{K := _} -> true;
                               _ -> not IsOwner
                           end],
    case {Later, New} of
        {[_ | _], _} ->
            {{drop, Keys -- Later}, Contests#{Slot => C}};
        {[], []} ->
            {apply, Contests#{Slot => C}};
        {[], _} ->
            T = maps:merge(Touched, maps:from_list([{K, Me} || K <- New])),
            {{replace, New}, Contests#{Slot => C#contest{touched = T}}}
    end.

%% The shard as a writer of the contest: a new importer at the end.
join(Shard, #contest{order = Order, epochs = Epochs} = C) ->
    E = maps:get(Shard, Epochs, 0),
    Me = {Shard, E},
    case position(Me, Order) of
        0 -> C#contest{order = Order ++ [{Me, live}], epochs = Epochs#{Shard => E}};
        _ -> C
    end.

%% `Writer''s epoch is over: it handed the slot to `To'; the shard's next
%% epoch, if any, is a new writer.
retire({Shard, E} = Writer, To, #contest{order = Order, epochs = Epochs} = C) ->
    Order1 = [case W of
                  Writer -> {W, {gone, To}};
                  _ -> Entry
              end || {W, _} = Entry <- Order],
    Order2 = case lists:any(fun({W, live}) -> W =/= Writer; (_) -> false end, Order1) of
                 true -> Order1;
                 %% nobody writes the slot now: whoever the last writer
                 %% handed it to owns it, in its next epoch
                 false -> next_owner(Order1, Epochs#{Shard := E + 1})
             end,
    C#contest{order = Order2, epochs = Epochs#{Shard := E + 1}}.

next_owner(Order, Epochs) ->
    {_, {gone, To}} = lists:last(Order),
    E = maps:get(To, Epochs, 0),
    Order ++ [{{To, E}, live}].

owner(Order) ->
    case [W || {W, live} <- Order] of
        [W | _] -> W;
        [] -> none
    end.

position(Writer, Order) -> position(Writer, Order, 1).
position(_Writer, [], _N) -> 0;
position(Writer, [{Writer, _} | _], N) -> N;
position(Writer, [_ | Rest], N) -> position(Writer, Rest, N + 1).

%% @doc Whether `Slot' is contested.
-spec contested(slot(), contests()) -> boolean().
contested(Slot, Contests) -> is_map_key(Slot, Contests).

%% @doc The shard writing the untouched keys of a contested slot, `none'
%% when the slot is not contested.
-spec owner_of(slot(), contests()) -> shard() | none.
owner_of(Slot, Contests) ->
    case Contests of
        #{Slot := #contest{order = Order}} -> element(1, owner(Order));
        _ -> none
    end.

%% @doc Which keys of contested slot `Slot' the view holds for `Shard':
%% `{owner, Others}' when it owns the slot (all but `Others', the keys
%% other writers touched), `{importer, Keys}' when it imports it, `none'
%% when it does not write it.
-spec held_by(shard(), slot(), contests()) -> {owner, [key()]} | {importer, [key()]} | none.
held_by(Shard, Slot, Contests) ->
    case Contests of
        #{Slot := #contest{order = Order, touched = T, epochs = #{Shard := E}}} ->
            Me = {Shard, E},
            case owner(Order) of
                Me -> {owner, [K || {K, W} <- maps:to_list(T), W =/= Me]};
                _ -> {importer, [K || {K, W} <- maps:to_list(T), W =:= Me]}
            end;
        _ -> none
    end.

%% @doc Shard `From''s stream is past the point where `Slot' went to shard
%% `To' (`0': unknown, the shard left the cluster): the end of its epoch as
%% a writer of the slot. Returns what the slot became: `{contested, Owner}'
%% or `{plain, Owner}' (no contest left; `Owner' 0 when the last writer
%% left with `To' unknown); `none' if the slot was not contested (the
%% caller makes `To' its owner).
-spec handover(slot(), shard(), shard() | 0, contests()) ->
          {contested | plain, shard() | 0, contests()} | none.
handover(Slot, From, To, Contests) ->
    case Contests of
        #{Slot := #contest{epochs = #{From := E}} = C} ->
            #contest{order = Order, touched = T} = C1 = retire({From, E}, To, C),
            Owner = owner(Order),
            %% the writers before the owner are gone; the owner's touched
            %% keys are plain keys of it now
            Rest = lists:dropwhile(fun({W, _}) -> W =/= Owner end, Order),
            T1 = maps:filter(fun(_, W) -> W =/= Owner end, T),
            case Rest of
                [_] when map_size(T1) =:= 0 ->
                    {plain, element(1, Owner), maps:remove(Slot, Contests)};
                _ ->
                    {contested, element(1, Owner),
                     Contests#{Slot := C1#contest{order = Rest, touched = T1}}}
            end;
        #{Slot := #contest{order = Order}} ->
            %% not a writer of this contest: nothing of it is in the view
            {contested, element(1, owner(Order)), Contests};
        _ ->
            none
    end.

%% @doc Keys of `Slot' that left the view (a full resync of their shard
%% left them out): no longer touched.
-spec forget(slot(), [key()], contests()) -> contests().
forget(Slot, Keys, Contests) ->
    case Contests of
        #{Slot := #contest{touched = T} = C} ->
            Contests#{Slot := C#contest{touched = maps:without(Keys, T)}};
        _ -> Contests
    end.

%% @doc `Slot' is no longer contested (its last writer left the cluster).
-spec drop(slot(), contests()) -> contests().
drop(Slot, Contests) -> maps:remove(Slot, Contests).

%% @doc The contested slots.
-spec slots(contests()) -> [slot()].
slots(Contests) -> lists:sort(maps:keys(Contests)).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

-define(S, 7).

decide_test() ->
    C0 = new(),
    A = <<"a">>, B = <<"b">>,
    %% the owner writes its slot
    ?assertEqual({apply, C0}, decide(1, {?S, 1}, [A], C0)),
    %% an importer's first touch replaces, later ones apply
    {{replace, [A]}, C1} = decide(2, {?S, 1}, [A], C0),
    ?assert(contested(?S, C1)),
    {apply, C2} = decide(2, {?S, 1}, [A], C1),
    %% the source's commands on a touched key are stale; others apply
    {{drop, []}, C3} = decide(1, {?S, 1}, [A], C2),
    {apply, C4} = decide(1, {?S, 1}, [B], C3),
    {{drop, [B]}, _} = decide(1, {?S, 1}, [B, A], C4),
    ?assertEqual({owner, [A]}, held_by(1, ?S, C4)),
    ?assertEqual({importer, [A]}, held_by(2, ?S, C4)),
    ?assertEqual(none, held_by(3, ?S, C4)),
    %% a third shard imports from the importer
    {{replace, [A]}, C5} = decide(3, {?S, 1}, [A], C4),
    {{drop, []}, C6} = decide(2, {?S, 1}, [A], C5),
    %% 1 hands over: 2 owns the slot, 3 still imports
    {contested, 2, C7} = handover(?S, 1, 2, C6),
    ?assertEqual(2, owner_of(?S, C7)),
    {{drop, []}, _} = decide(2, {?S, 2}, [A], C7),
    {apply, C8} = decide(2, {?S, 2}, [B], C7),
    {plain, 3, C9} = handover(?S, 2, 3, C8),
    ?assertNot(contested(?S, C9)),
    ?assertEqual(none, handover(?S, 3, 1, C9)).

moved_back_test() ->
    A = <<"a">>,
    %% 1 -> 2, and 2 -> 1 while 1's stream lags: 2 hands back first
    {{replace, [A]}, C1} = decide(2, {?S, 1}, [A], new()),
    {contested, 1, C2} = handover(?S, 2, 1, C1),
    %% 1's stale (first epoch) command on the key is dropped
    {{drop, []}, C3} = decide(1, {?S, 1}, [A], C2),
    %% 1 passes its own handover: 1 again, in its next epoch
    {contested, 1, C4} = handover(?S, 1, 2, C3),
    {{replace, [A]}, C5} = decide(1, {?S, 1}, [A], C4),
    {plain, 1, _} = handover(?S, 2, 1, C5).

%%% The model test: a slot moves from shard 1 to shard 2 (and sometimes
%%% back) by MIGRATE under client writes; the two replication streams are
%%% merged in random interleavings, sometimes with a full resync of a
%%% shard (part of its stream lost, a snapshot instead), and applied to a
%%% view as the view process does; the view must end equal to the union
%%% of the shards' datasets.

model_test_() ->
    {timeout, 120, fun() -> [model_run(Seed) || Seed <- lists:seq(1, 2000)] end}.

model_run(Seed) ->
    rand:seed(exsss, {Seed, 3, 5}),
    Keys = [<<"k", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 2 + rand:uniform(6))],
    %% shard 1 holds the slot; the view starts from its snapshot
    Init = maps:from_list([{K, <<"0">>} || K <- Keys, rand:uniform(2) =:= 1]),
    Phases = case rand:uniform(2) of 1 -> [{1, 2}]; 2 -> [{1, 2}, {2, 1}] end,
    {Datasets, Streams} = lists:foldl(fun(Phase, Acc) -> phase(Keys, Phase, Acc) end,
                                      {#{1 => Init, 2 => #{}}, #{1 => [], 2 => []}}, Phases),
    #{1 := Final1, 2 := Final2} = Datasets,
    ?assertEqual(#{}, maps:with(maps:keys(Final1), Final2)),
    Union = maps:merge(Final1, Final2),
    [begin
         Seen1 = seen(1, lists:reverse(maps:get(1, Streams)), Init),
         Seen2 = seen(2, lists:reverse(maps:get(2, Streams)), #{}),
         Merged = interleave(Seen1, Seen2),
         {View, _, _} = lists:foldl(fun replay/2, {Init, 1, new()}, Merged),
         ?assertEqual({Seed, Union}, {Seed, View})
     end || _ <- lists:seq(1, 20)].

%% Clients and MIGRATEs while the slot moves from `From' to `To', then
%% the rest of the keys, then the handover in `From''s stream. A stream
%% entry is kept with the shard's dataset after it.
phase(Keys, {From, To}, Acc) ->
    Acc1 = lists:foldl(fun(_, A) ->
                               #{From := DF} = element(1, A),
                               case rand:uniform(4) of
                                   1 when map_size(DF) > 0 -> migrate(pick(maps:keys(DF)), From, To, A);
                                   _ -> client(Keys, From, To, A)
                               end
                       end, Acc, lists:seq(1, 10 + rand:uniform(40))),
    #{From := Left} = element(1, Acc1),
    {Ds, Ss} = lists:foldl(fun(K, A) -> migrate(K, From, To, A) end, Acc1, maps:keys(Left)),
    {Ds, add(From, {handover, To}, Ds, Ss)}.

add(Shard, Entry, Ds, Ss) ->
    Ss#{Shard := [{Entry, maps:get(Shard, Ds)} | maps:get(Shard, Ss)]}.

migrate(K, From, To, {Ds, Ss}) ->
    #{From := DF, To := DT} = Ds,
    Ds1 = Ds#{From := maps:remove(K, DF), To := DT#{K => maps:get(K, DF)}},
    %% the target's RESTORE-ASKING is written before the source's DEL
    Ss1 = add(To, {cmd, {restore, maps:get(K, DF)}, [K]}, Ds1, Ss),
    {Ds1, add(From, {cmd, del, [K]}, Ds1, Ss1)}.

%% A client command, run where the cluster sends it: on the source if its
%% keys are there, on the target after -ASK if none is, refused
%% (-TRYAGAIN) if they are split.
client(Keys, From, To, {Ds, Ss} = Acc) ->
    Cmd = pick([{set, integer_to_binary(rand:uniform(99))}, append, incr, del, rename]),
    Ks = case Cmd of
             rename -> [pick(Keys), pick(Keys)];
             _ -> [pick(Keys)]
         end,
    #{From := DF} = Ds,
    Shard = case {[K || K <- Ks, is_map_key(K, DF)], Ks} of
                {[], _} -> To;
                {Ks, _} -> From;
                _ -> none
            end,
    case Shard =/= none andalso run(Cmd, Ks, maps:get(Shard, Ds)) of
        {ok, D} -> Ds1 = Ds#{Shard := D}, {Ds1, add(Shard, {cmd, Cmd, Ks}, Ds1, Ss)};
        _ -> Acc
    end.

%% A command on a dataset; `refused' if the server would not propagate it.
run({set, V}, [K], D) -> {ok, D#{K => V}};
run({restore, V}, [K], D) -> {ok, D#{K => V}};
run(append, [K], D) -> {ok, D#{K => <<(maps:get(K, D, <<>>))/binary, "x">>}};
run(incr, [K], D) -> {ok, D#{K => <<(maps:get(K, D, <<>>))/binary, "+1">>}};
run(del, [K], D) ->
    case is_map_key(K, D) of
        true -> {ok, maps:remove(K, D)};
        false -> refused
    end;
run(rename, [K, K], D) -> case is_map_key(K, D) of true -> {ok, D}; false -> refused end;
run(rename, [A, B], D) ->
    case maps:take(A, D) of
        {V, D1} -> {ok, D1#{B => V}};
        error -> refused
    end.

%% What the view receives of a shard's stream: all of it, or (a full
%% resync) a prefix, then the dataset at a later point (with the
%% handovers of the part skipped), then the rest.
seen(Shard, Stream, Initial) ->
    case rand:uniform(3) of
        1 when Stream =/= [] ->
            Len = length(Stream),
            A = rand:uniform(Len + 1) - 1,
            B = A + rand:uniform(Len - A + 1) - 1,
            {Prefix, Rest} = lists:split(A, Stream),
            {Skipped, After} = lists:split(B - A, Rest),
            Snapshot = case Skipped of
                           [] when A =:= 0 -> Initial;
                           [] -> element(2, lists:last(Prefix));
                           _ -> element(2, lists:last(Skipped))
                       end,
            [{Shard, E} || {E, _} <- Prefix]
                ++ [{Shard, {resync, Snapshot, [H || {{handover, _} = H, _} <- Skipped]}}]
                ++ [{Shard, E} || {E, _} <- After];
        _ ->
            [{Shard, E} || {E, _} <- Stream]
    end.

%% A random merge of two streams, each in its order.
interleave([], B) -> B;
interleave(A, []) -> A;
interleave([X | A] = AA, [Y | B] = BB) ->
    case rand:uniform(2) of
        1 -> [X | interleave(A, BB)];
        2 -> [Y | interleave(AA, B)]
    end.

%% The view applies one element of a stream, as the view process does.
replay({Shard, {handover, To}}, {View, Owner, Contests}) ->
    case handover(?S, Shard, To, Contests) of
        {_, Owner1, Contests1} -> {View, Owner1, Contests1};
        none when Shard =:= Owner -> {View, To, Contests};
        none -> {View, Owner, Contests}
    end;
replay({Shard, {cmd, Cmd, Ks}}, {View, Owner, Contests}) ->
    case decide(Shard, {?S, Owner}, Ks, Contests) of
        {{drop, Gone}, C1} -> {maps:without(Gone, View), Owner, C1};
        {apply, C1} -> {apply_view(Cmd, Ks, View), Owner, C1};
        {{replace, Old}, C1} -> {apply_view(Cmd, Ks, maps:without(Old, View)), Owner, C1}
    end;
replay({Shard, {resync, Snapshot, Handovers}}, {View, Owner, Contests}) ->
    %% the shard's keys the snapshot lacks go, then the handovers it is
    %% past, then its rows as writes of the shard
    Mine = case held_by(Shard, ?S, Contests) of
               {owner, Others} -> maps:keys(View) -- Others;
               {importer, Touched} -> Touched;
               none -> case Shard =:= Owner andalso not contested(?S, Contests) of
                           true -> maps:keys(View);
                           false -> []
                       end
           end,
    Gone = Mine -- maps:keys(Snapshot),
    St1 = {maps:without(Gone, View), Owner, forget(?S, Gone, Contests)},
    St2 = lists:foldl(fun replay/2, St1, [{Shard, H} || H <- Handovers]),
    lists:foldl(fun({K, V}, St) -> replay({Shard, {cmd, {set, V}, [K]}}, St) end,
                St2, maps:to_list(Snapshot)).

apply_view(Cmd, Ks, View) ->
    case run(Cmd, Ks, View) of
        {ok, V} -> V;
        refused -> View
    end.

pick(L) -> lists:nth(rand:uniform(length(L)), L).
-endif.
