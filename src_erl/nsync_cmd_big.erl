%%% @doc How commands apply to big values (`nsync_big'): the mirror runs a
%%% command through `run/4' when one of its keys holds a handle. The
%%% command table's `big' flag says how:
%%% <ul>
%%% <li>`keep': the handler never looks at values (DEL, RENAME, EXPIRE,
%%%   SETEX, ...): it runs as it is, moving handles like any value;</li>
%%% <li>`project': the command touches only the fields or members named in
%%%   its arguments (HSET and every hash command, SADD/SREM/SMOVE,
%%%   ZADD/ZINCRBY/ZREM; of a stream, the entries, groups and consumers it
%%%   names: XSETID, XACK, XCLAIM): the handler runs on each big value's
%%%   projection onto the arguments (a small term), and what it changed
%%%   there is written back in place. The handler's logic is reused
%%%   whole;</li>
%%% <li>`fun F/3': a handler of this module that works on handles in place
%%%   (pushes, pops, ranges of lists and zsets, APPEND, SETRANGE, SETBIT,
%%%   COPY, the stream deletions and trims), or projects as above with a
%%%   twist (XADD, XGROUP), with the handler's contract
%%%   (`nsync_cmd_lib');</li>
%%% <li>absent: the command is O(n) in Redis too (*STORE, SORT, BITOP,
%%%   ...): big values are materialised, the handler runs, and the mirror
%%%   stores the result (big again if it is over the threshold).</li>
%%% </ul>
%%% A handle changed in place stays in the store as it was; the mirror then
%%% deletes it if it became empty, or turns it back into a term if it shrank
%%% (`nsync_big:demote/2').
-module(nsync_cmd_big).

-export([run/4]).
%% handlers of the `big' flag
-export([push_left/3, push_right/3, lpop/3, rpop/3, linsert/3, lset/3, lrem/3,
         ltrim/3, lmove/3, rpoplpush/3, lmpop/3, blmpop/3, blpop/3, brpop/3,
         zpopmin/3, zpopmax/3, bzpopmin/3, bzpopmax/3, zmpop/3, bzmpop/3,
         zremrangebyrank/3, zremrangebyscore/3, zremrangebylex/3,
         append/3, setrange/3, setbit/3, copy/3, set/3,
         xadd/3, xtrim/3, xdel/3, xdelex/3, xackdel/3, xgroup/3]).

-import(nsync_cmd_lib, [lower/1, to_int/1, parse_float/1]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().

%% @doc Runs the command of table entry `Spec' on a store holding big
%% values; `Context' is the handler's third argument (the time, or the
%% settings of a command flagged `settings').
-spec run(nsync_cmd:spec(), [binary()], store(), integer() | nsync_cmd_lib:settings()) -> result().
run(#{big := keep, run := Run}, Args, S, Now) -> Run(Args, S, Now);
run(#{big := project, run := Run}, Args, S, Now) -> project(Run, Args, S, Now, false);
run(#{big := Fun}, Args, S, Now) when is_function(Fun, 3) -> Fun(Args, S, Now);
run(#{run := Run}, Args, S, Context) -> Run(Args, materialise(S), Context).

%% The store with every big value as its term (a hash with its field
%% expiries).
materialise(S) ->
    maps:map(fun(_K, {H, E, F}) ->
                     case nsync_big:is_handle(H) of
                         true -> {nsync_big:value(H, undefined), E, field_expires(H, F)};
                         false -> {H, E, F}
                     end
             end, S).

field_expires(H, F) ->
    case nsync_big:kind(H) of
        hash -> nsync_big:read(H, field_expires);
        _ -> F
    end.

%% @doc SET over a big string: as it is (the handle is replaced), but with
%% a condition on the value it replaces (IFEQ, IFDEQ, ...) that value is
%% read whole, as Redis reads it.
-spec set([binary()], store(), integer()) -> result().
set(Args, S, Now) ->
    case nsync_cmd_string:set_compares(Args) of
        true -> nsync_cmd_string:set(Args, materialise(S), Now);
        false -> nsync_cmd_string:set(Args, S, Now)
    end.

%%% ------------------------------------------------------------ projection

%% Runs `Run' on the projection of each big value onto the arguments and
%% writes back what it changed (with `WithPending', a stream's projection
%% holds the whole pending lists of the consumers the arguments name).
project(Run, Args, S, Now, WithPending) ->
    {Views, Big} = maps:fold(fun(K, {V, E, _} = Entry, {Vs, Bs}) ->
                                     case nsync_big:is_handle(V) of
                                         true ->
                                             {PV, PF} = view(V, Args, WithPending),
                                             {Vs#{K => {PV, E, PF}}, Bs#{K => {V, PV, PF}}};
                                         false ->
                                             {Vs#{K => Entry}, Bs}
                                     end
                             end, {#{}, #{}}, S),
    case Run(Args, Views, Now) of
        {ok, Out} ->
            {ok, maps:fold(fun(K, {H, PV, PF}, Acc) ->
                                   case Acc of
                                       #{K := {{stream, _, _} = NV, NE, _}} ->
                                           [nsync_big:write(H, {merge, Args, WithPending, NV})
                                            || NV =/= PV],
                                           Acc#{K := {H, NE, #{}}};
                                       #{K := {NV, NE, NF}} ->
                                           write_back(H, PV, PF, NV, NF),
                                           Acc#{K := {H, NE, #{}}};
                                       _ ->
                                           Acc
                                   end
                           end, Out, Big)};
        unhandled ->
            unhandled
    end.

%% The projection of a big hash, set, zset or stream onto `Probes': its
%% term form restricted to them, and a hash's field expiries among them.
view(H, Probes, false) -> view(nsync_big:read(H, {project, Probes}));
view(H, Probes, true) -> view(nsync_big:read(H, {project, Probes, true})).

view({Fields, Expires}) when is_map(Fields) -> {Fields, Expires};
view(Term) -> {Term, #{}}.

write_back(H, Old, OldF, New, NewF) when is_map(Old), is_map(New) ->
    Set = [{F, V} || {F, V} <- maps:to_list(New), maps:get(F, Old, none) =/= V],
    Gone = [F || {F, _} <- maps:to_list(Old), not is_map_key(F, New)],
    Persist = [F || {F, _} <- maps:to_list(OldF), not is_map_key(F, NewF), is_map_key(F, New)],
    Expire = [{F, At} || {F, At} <- maps:to_list(NewF), maps:get(F, OldF, none) =/= At],
    [nsync_big:write(H, {hset, Set}) || Set =/= []],
    [nsync_big:write(H, {hdel, Gone}) || Gone =/= []],
    [nsync_big:write(H, {hpersist, Persist}) || Persist =/= []],
    [nsync_big:write(H, {hexpire, Expire}) || Expire =/= []],
    ok;
write_back(H, Old, _, New, _) when is_list(Old), is_list(New) ->
    case nsync_big:kind(H) of
        set ->
            Added = ordsets:subtract(New, Old),
            Gone = ordsets:subtract(Old, New),
            [nsync_big:write(H, {sadd, Added}) || Added =/= []],
            [nsync_big:write(H, {srem, Gone}) || Gone =/= []];
        zset ->
            OldM = maps:from_list([{M, Sc} || {Sc, M} <- Old]),
            NewM = maps:from_list([{M, Sc} || {Sc, M} <- New]),
            Set = [{Sc, M} || {M, Sc} <- maps:to_list(NewM), maps:get(M, OldM, none) =/= Sc],
            Gone = [M || {M, _} <- maps:to_list(OldM), not is_map_key(M, NewM)],
            [nsync_big:write(H, {zadd, Set}) || Set =/= []],
            [nsync_big:write(H, {zrem, Gone}) || Gone =/= []]
    end,
    ok.

%%% ------------------------------------------------------------ lists

big(K, S) ->
    case S of
        #{K := {H, _, _}} -> nsync_big:is_handle(H);
        _ -> false
    end.

handle(K, S) ->
    #{K := {H, _, _}} = S,
    H.

%% Runs `Op' on the handle of `K' (the only key of a single-key command:
%% the big one).
in_place(K, S, Op) ->
    nsync_big:write(handle(K, S), Op),
    {ok, S}.

%% @doc LPUSH/LPUSHX key v ... on a big list.
-spec push_left([binary()], store(), integer()) -> result().
push_left([K | Vs], S, _) -> in_place(K, S, {push, left, Vs}).
%% @doc RPUSH/RPUSHX key v ... on a big list.
-spec push_right([binary()], store(), integer()) -> result().
push_right([K | Vs], S, _) -> in_place(K, S, {push, right, Vs}).

%% @doc LPOP key [count].
-spec lpop([binary()], store(), integer()) -> result().
lpop([K | C], S, _) -> in_place(K, S, {discard, left, count(C)}).
%% @doc RPOP key [count].
-spec rpop([binary()], store(), integer()) -> result().
rpop([K | C], S, _) -> in_place(K, S, {discard, right, count(C)}).

count([]) -> 1;
count([C]) -> to_int(C).

%% @doc LINSERT key BEFORE|AFTER pivot value.
-spec linsert([binary()], store(), integer()) -> result().
linsert([K, Where, Pivot, V], S, _) ->
    in_place(K, S, {linsert, where(Where), Pivot, V}).

%% @doc LSET key index value.
-spec lset([binary()], store(), integer()) -> result().
lset([K, I, V], S, _) -> in_place(K, S, {lset, to_int(I), V}).

%% @doc LREM key count value.
-spec lrem([binary()], store(), integer()) -> result().
lrem([K, C, V], S, _) -> in_place(K, S, {lrem, to_int(C), V}).

%% @doc LTRIM key start stop.
-spec ltrim([binary()], store(), integer()) -> result().
ltrim([K, St, En], S, _) -> in_place(K, S, {ltrim, to_int(St), to_int(En)}).

%% @doc LMOVE src dst LEFT|RIGHT LEFT|RIGHT (and BLMOVE ... timeout).
-spec lmove([binary()], store(), integer()) -> result().
lmove([Src, Dst, From, To | _], S, _) -> move(Src, Dst, side(From), side(To), S).

%% @doc RPOPLPUSH src dst (and BRPOPLPUSH src dst timeout).
-spec rpoplpush([binary()], store(), integer()) -> result().
rpoplpush([Src, Dst | _], S, _) -> move(Src, Dst, right, left, S).

side(B) ->
    case lower(B) of
        <<"left">> -> left;
        <<"right">> -> right;
        <<"min">> -> min;
        <<"max">> -> max
    end.

where(B) ->
    case lower(B) of
        <<"before">> -> before;
        <<"after">> -> 'after'
    end.

move(Src, Dst, From, To, S) ->
    case take(Src, From, S) of
        none -> {ok, S};
        {E, S1} -> {ok, put(Dst, To, E, S1)}
    end.

%% Pops one element off list `K' (big or not).
take(K, Side, S) ->
    case S of
        #{K := {V, _, _}} ->
            case nsync_big:is_handle(V) of
                true ->
                    [E] = nsync_big:write(V, {pop, Side, 1}),
                    {E, S};
                false ->
                    {E, Rest} = case Side of
                                    left -> {hd(V), tl(V)};
                                    right -> {lists:last(V), lists:droplast(V)}
                                end,
                    {E, nsync_cmd_lib:put_keep(K, Rest, S)}
            end;
        _ -> none
    end.

%% Pushes one element onto list `K' (big or not; created if absent).
put(K, Side, E, S) ->
    case S of
        #{K := {H, _, _}} ->
            case nsync_big:is_handle(H) of
                true -> nsync_big:write(H, {push, Side, [E]}), S;
                false ->
                    L = case Side of left -> [E | H]; right -> H ++ [E] end,
                    nsync_cmd_lib:put_keep(K, L, S)
            end;
        _ -> nsync_cmd_lib:put_keep(K, [E], S)
    end.

%% @doc LMPOP numkeys key ... LEFT|RIGHT [COUNT c].
-spec lmpop([binary()], store(), integer()) -> result().
lmpop([N0 | Rest] = A, S, N) ->
    {Keys, [Where | Opts]} = lists:split(to_int(N0), Rest),
    first_pop(Keys, S, {discard, side(Where), count(tl_or_empty(Opts))}, fun nsync_cmd_list:lmpop/3, A, N).

tl_or_empty([_ | T]) -> T;
tl_or_empty([]) -> [].

%% @doc BLMPOP timeout numkeys key ... LEFT|RIGHT [COUNT c].
-spec blmpop([binary()], store(), integer()) -> result().
blmpop([_Timeout | Rest], S, N) -> lmpop(Rest, S, N).

%% @doc BLPOP key ... timeout.
-spec blpop([binary()], store(), integer()) -> result().
blpop(A, S, N) -> first_pop(lists:droplast(A), S, {discard, left, 1}, fun nsync_cmd_list:blpop/3, A, N).
%% @doc BRPOP key ... timeout.
-spec brpop([binary()], store(), integer()) -> result().
brpop(A, S, N) -> first_pop(lists:droplast(A), S, {discard, right, 1}, fun nsync_cmd_list:brpop/3, A, N).

%% Pops from the first of `Keys' that exists: in place if it is big, else
%% with the term handler (which reads nothing but the first key).
first_pop(Keys, S, Write, Pure, Args, Now) ->
    case [K || K <- Keys, is_map_key(K, S)] of
        [] -> {ok, S};
        [K | _] ->
            case big(K, S) of
                true -> in_place(K, S, Write);
                false -> Pure(Args, S, Now)
            end
    end.

%%% ------------------------------------------------------------ zsets

%% @doc ZPOPMIN key [count].
-spec zpopmin([binary()], store(), integer()) -> result().
zpopmin([K | C], S, _) -> in_place(K, S, {zpop, min, count(C)}).
%% @doc ZPOPMAX key [count].
-spec zpopmax([binary()], store(), integer()) -> result().
zpopmax([K | C], S, _) -> in_place(K, S, {zpop, max, count(C)}).

%% @doc BZPOPMIN key ... timeout.
-spec bzpopmin([binary()], store(), integer()) -> result().
bzpopmin(A, S, N) -> first_pop(lists:droplast(A), S, {zpop, min, 1}, fun nsync_cmd_zset:bzpopmin/3, A, N).
%% @doc BZPOPMAX key ... timeout.
-spec bzpopmax([binary()], store(), integer()) -> result().
bzpopmax(A, S, N) -> first_pop(lists:droplast(A), S, {zpop, max, 1}, fun nsync_cmd_zset:bzpopmax/3, A, N).

%% @doc ZMPOP numkeys key ... MIN|MAX [COUNT c].
-spec zmpop([binary()], store(), integer()) -> result().
zmpop([N0 | Rest] = A, S, N) ->
    {Keys, [Where | Opts]} = lists:split(to_int(N0), Rest),
    first_pop(Keys, S, {zpop, side(Where), count(tl_or_empty(Opts))}, fun nsync_cmd_zset:zmpop/3, A, N).

%% @doc BZMPOP timeout numkeys key ... MIN|MAX [COUNT c].
-spec bzmpop([binary()], store(), integer()) -> result().
bzmpop([_Timeout | Rest], S, N) -> zmpop(Rest, S, N).

%% @doc ZREMRANGEBYRANK key start stop.
-spec zremrangebyrank([binary()], store(), integer()) -> result().
zremrangebyrank([K, St, En], S, _) ->
    in_place(K, S, {zremrangebyrank, to_int(St), to_int(En)}).

%% @doc ZREMRANGEBYSCORE key min max.
-spec zremrangebyscore([binary()], store(), integer()) -> result().
zremrangebyscore([K, Min, Max], S, _) ->
    {MinV, MinEx} = score_bound(Min),
    {MaxV, MaxEx} = score_bound(Max),
    in_place(K, S, {zremrangebyscore, MinV, MinEx, MaxV, MaxEx}).

score_bound(<<"(", R/binary>>) -> {parse_float(R), true};
score_bound(B) -> {parse_float(B), false}.

%% @doc ZREMRANGEBYLEX key min max.
-spec zremrangebylex([binary()], store(), integer()) -> result().
zremrangebylex([K, Min, Max], S, _) ->
    in_place(K, S, {zremrangebylex, Min, Max}).

%%% ------------------------------------------------------------ streams

%% @doc XADD key ... on a big stream: an entry with its id whole (what a
%% master propagates) is added in place, in one call; any other id goes
%% through the handler on the projection (ids and metadata as it computes
%% them). Then its trim, if any, runs in place.
-spec xadd([binary()], store(), integer()) -> result().
xadd([K | Rest], S, Now) ->
    {Add, Trim} = nsync_cmd_stream:xadd_parts(Rest),
    Added = case whole_id(Add) of
                {Id, Items} -> in_place(K, S, {xadd, Id, Items});
                none -> project(fun nsync_cmd_stream:xadd/3, [K | Add], S, Now, false)
            end,
    case {Added, Trim} of
        {{ok, S1}, {Spec, Refs}} -> in_place(K, S1, {xtrim, Spec, Refs});
        {Result, _} -> Result
    end.

%% XADD's id (`ms-seq', both numbers) and fields, or `none' for an id the
%% handler completes (`*', `ms-*', `ms'). NOMKSTREAM changes nothing on a
%% stream that exists.
whole_id([<<"NOMKSTREAM">> | Add]) -> whole_id(Add);
whole_id([Id | Items]) ->
    case binary:split(Id, <<"-">>) of
        [_, Seq] when Seq =/= <<"*">> -> {nsync_cmd_stream:parse_id(Id), Items};
        _ -> none
    end.

%% @doc XTRIM key MAXLEN|MINID ..., in place.
-spec xtrim([binary()], store(), integer()) -> result().
xtrim([K | Args], S, _) ->
    {Spec, Refs} = nsync_cmd_stream:xtrim_parts(Args),
    in_place(K, S, {xtrim, Spec, Refs}).

%% @doc XDEL key id ..., in place.
-spec xdel([binary()], store(), integer()) -> result().
xdel([K | Ids], S, _) ->
    in_place(K, S, {xdel, [nsync_cmd_stream:parse_id(I) || I <- Ids], keepref}).

%% @doc XDELEX key [KEEPREF|DELREF|ACKED] IDS n id ..., in place.
-spec xdelex([binary()], store(), integer()) -> result().
xdelex([K | Rest], S, _) ->
    {Refs, Ids} = nsync_cmd_stream:refs_and_ids(Rest),
    in_place(K, S, {xdel, Ids, Refs}).

%% @doc XACKDEL key group [KEEPREF|DELREF|ACKED] IDS n id ..., in place.
-spec xackdel([binary()], store(), integer()) -> result().
xackdel([K, G | Rest], S, _) ->
    {Refs, Ids} = nsync_cmd_stream:refs_and_ids(Rest),
    in_place(K, S, {xackdel, G, Ids, Refs}).

%% @doc XGROUP ... on a big stream: the handler on the projection, which
%% for DELCONSUMER holds the consumer's whole pending list.
-spec xgroup([binary()], store(), integer()) -> result().
xgroup([Sub | _] = Args, S, Now) ->
    project(fun nsync_cmd_stream:xgroup/3, Args, S, Now, lower(Sub) =:= <<"delconsumer">>).

%%% ------------------------------------------------------------ strings, keys

%% @doc APPEND key value.
-spec append([binary()], store(), integer()) -> result().
append([K, V], S, _) -> in_place(K, S, {append, V}).

%% @doc SETRANGE key offset value.
-spec setrange([binary()], store(), integer()) -> result().
setrange([K, Off, V], S, _) -> in_place(K, S, {setrange, to_int(Off), V}).

%% @doc SETBIT key offset 0|1.
-spec setbit([binary()], store(), integer()) -> result().
setbit([K, Off, Bit], S, _) ->
    in_place(K, S, {setbit, to_int(Off), to_int(Bit)}).

%% @doc COPY src dst [REPLACE]: the copy of a big value is a new one.
-spec copy([binary()], store(), integer()) -> result().
copy([_Src, Dst | _] = A, S, N) ->
    {ok, S2} = nsync_cmd_generic:copy(A, S, N),
    case {S, S2} of
        {#{Dst := Same}, #{Dst := Same}} -> {ok, S2};
        {_, #{Dst := {H, E, F}}} ->
            case nsync_big:is_handle(H) of
                true -> {ok, S2#{Dst := {nsync_big:copy(H), E, F}}};
                false -> {ok, S2}
            end;
        _ -> {ok, S2}
    end.
