%%% @doc Mirror handlers for string commands (listed in `nsync_cmd'; the handler
%%% contract is in `nsync_cmd_lib'). Strings are binaries.
-module(nsync_cmd_string).

-export([set/3, setnx/3, setex/3, psetex/3, mset/3, msetnx/3, append/3,
         setrange/3, incr/3, decr/3, incrby/3, decrby/3, incrbyfloat/3,
         getset/3, getex/3, setbit/3, bitop/3, bitfield/3, msetex/3, delifeq/3, delex/3]).
-export([set_overwrites/1, set_compares/1]).

%% SET's conditions that compare the value it replaces.
-define(COMPARES, [<<"ifeq">>, <<"ifne">>, <<"ifdeq">>, <<"ifdne">>]).

-import(nsync_cmd_lib, [lower/1, to_int/1, value/2, exp_of/2, put_keep/3, put_new/3]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().

%% @doc SET key value [NX|XX|IFEQ v|IFNE v|IFDEQ d|IFDNE d] [GET]
%% [EX|PX|EXAT|PXAT t | KEEPTTL] (IFEQ: Valkey 8.1, Redis 8.4; IFNE, IFDEQ,
%% IFDNE: Redis 8.4). A SET with a relative expiry reaches replicas as
%% `SET key value PXAT t', its condition dropped; without one (or with
%% PXAT), as written, its condition included: the mirror checks it too.
-spec set([binary()], store(), integer()) -> result().
set([K, V | Opts], S, Now) ->
    {Cond, Exp} = set_opts(Opts, Now, none, none),
    case holds(Cond, K, S) of
        false -> {ok, S};
        true ->
            E = case Exp of
                    none -> undefined;
                    keepttl -> exp_of(K, S);
                    T -> T
                end,
            {ok, S#{K => {V, E, #{}}}}
    end.

set_opts([], _Now, Cond, Exp) -> {Cond, Exp};
set_opts([O | Rest], Now, Cond, Exp) ->
    case lower(O) of
        <<"nx">> -> set_opts(Rest, Now, nx, Exp);
        <<"xx">> -> set_opts(Rest, Now, xx, Exp);
        <<"ifeq">> -> set_opts(tl(Rest), Now, {ifeq, hd(Rest)}, Exp);
        <<"ifne">> -> set_opts(tl(Rest), Now, {ifne, hd(Rest)}, Exp);
        <<"ifdeq">> -> set_opts(tl(Rest), Now, {ifdeq, hd(Rest)}, Exp);
        <<"ifdne">> -> set_opts(tl(Rest), Now, {ifdne, hd(Rest)}, Exp);
        <<"get">> -> set_opts(Rest, Now, Cond, Exp);
        <<"keepttl">> -> set_opts(Rest, Now, Cond, keepttl);
        L when L =:= <<"ex">>; L =:= <<"px">>; L =:= <<"exat">>; L =:= <<"pxat">> ->
            [A | Rest1] = Rest,
            set_opts(Rest1, Now, Cond, nsync_cmd_lib:parse_expire_opt(L, A, Now))
    end.

%% Whether key `K' meets a write condition: none, NX, XX (none of the
%% keys exists / all do), IFEQ / IFNE a value, or IFDEQ / IFDNE a digest of
%% the value (Redis 8.4). A missing key fails IFEQ and IFDEQ and meets IFNE
%% and IFDNE, as in Redis.
holds(none, _K, _S) -> true;
holds(nx, K, S) -> not is_map_key(K, S);
holds(xx, K, S) -> is_map_key(K, S);
holds({ifeq, V}, K, S) -> value(K, S) =:= V;
holds({ifne, V}, K, S) -> value(K, S) =/= V;
holds({ifdeq, D}, K, S) -> is_map_key(K, S) andalso digest_is(value(K, S), D);
holds({ifdne, D}, K, S) -> not (is_map_key(K, S) andalso digest_is(value(K, S), D)).

%% Whether the digest of string `V' is `D', compared as Redis compares them
%% (case-insensitively; a master refuses a digest of another length).
digest_is(V, D) when is_binary(V), byte_size(D) =:= 16 ->
    nsync_nif:string_digest(V) =:= lower(D);
digest_is(V, _D) when is_binary(V) -> false.

%% @doc Whether SET with arguments `Args' sets its key whatever it held:
%% without a condition or KEEPTTL the result is the value, with the given
%% expiry or none (the table's `overwrites' flag of SET).
-spec set_overwrites([binary()]) -> boolean().
set_overwrites([_, _ | Opts]) ->
    not lists:any(fun(O) -> lists:member(lower(O), [<<"nx">>, <<"xx">>, <<"keepttl">> | ?COMPARES]) end, Opts);
set_overwrites(_) -> false.

%% @doc Whether SET with arguments `Args' reads the value it replaces (a
%% value or digest condition), so a big value must be materialised first.
-spec set_compares([binary()]) -> boolean().
set_compares([_, _ | Opts]) ->
    lists:any(fun(O) -> lists:member(lower(O), ?COMPARES) end, Opts);
set_compares(_) -> false.

%% @doc MSETEX numkeys key value [key value ...] [NX|XX] [EX|PX|EXAT|PXAT t |
%% KEEPTTL] (Redis 8.4): all keys or none (NX: none of them exists; XX: all do).
-spec msetex([binary()], store(), integer()) -> result().
msetex([N | Rest], S, Now) ->
    {KVs, Opts} = lists:split(2 * to_int(N), Rest),
    {Cond, Exp} = set_opts(Opts, Now, none, none),
    Keys = nsync_cmd_lib:firsts(KVs),
    case lists:all(fun(K) -> holds(Cond, K, S) end, Keys) of
        false -> {ok, S};
        true -> {ok, msetex_put(KVs, Exp, S)}
    end.

msetex_put([K, V | Rest], Exp, S) ->
    E = case Exp of none -> undefined; keepttl -> exp_of(K, S); T -> T end,
    msetex_put(Rest, Exp, S#{K => {V, E, #{}}});
msetex_put([], _Exp, S) -> S.

%% @doc DELIFEQ key value (Valkey 9; its masters propagate DEL).
-spec delifeq([binary()], store(), integer()) -> result().
delifeq([K, V], S, _) -> delete_if({ifeq, V}, K, S).

%% @doc DELEX key [IFEQ v | IFNE v | IFDEQ d | IFDNE d] (Redis 8.4, which
%% propagates a conditional DELEX that deleted as `DEL key' and one that did
%% not not at all; the conditions are checked here all the same).
-spec delex([binary()], store(), integer()) -> result().
delex([K], S, _) -> {ok, maps:remove(K, S)};
delex([K, C, V], S, _) ->
    case lower(C) of
        <<"ifeq">> -> delete_if({ifeq, V}, K, S);
        <<"ifne">> -> delete_if({ifne, V}, K, S);
        <<"ifdeq">> -> delete_if({ifdeq, V}, K, S);
        <<"ifdne">> -> delete_if({ifdne, V}, K, S)
    end.

delete_if(Cond, K, S) ->
    case is_map_key(K, S) andalso holds(Cond, K, S) of
        true -> {ok, maps:remove(K, S)};
        false -> {ok, S}
    end.

%% @doc SETNX key value.
-spec setnx([binary()], store(), integer()) -> result().
setnx([K, V], S, _Now) ->
    case is_map_key(K, S) of
        true -> {ok, S};
        false -> {ok, put_new(K, V, S)}
    end.

%% @doc SETEX key seconds value (relative: local clock).
-spec setex([binary()], store(), integer()) -> result().
setex([K, Secs, V], S, Now) -> {ok, S#{K => {V, Now + to_int(Secs) * 1000, #{}}}}.

%% @doc PSETEX key ms value.
-spec psetex([binary()], store(), integer()) -> result().
psetex([K, Ms, V], S, Now) -> {ok, S#{K => {V, Now + to_int(Ms), #{}}}}.

%% @doc MSET k v [k v ...].
-spec mset([binary()], store(), integer()) -> result().
mset([K, V | Rest], S, Now) -> mset(Rest, put_new(K, V, S), Now);
mset([], S, _Now) -> {ok, S}.

%% @doc MSETNX k v [k v ...]: all or nothing.
-spec msetnx([binary()], store(), integer()) -> result().
msetnx(Args, S, Now) ->
    case lists:any(fun(K) -> is_map_key(K, S) end, nsync_cmd_lib:firsts(Args)) of
        true -> {ok, S};
        false -> mset(Args, S, Now)
    end.

%% @doc APPEND key value.
-spec append([binary()], store(), integer()) -> result().
append([K, V], S, _Now) ->
    Old = case value(K, S) of none -> <<>>; B -> B end,
    {ok, put_keep(K, <<Old/binary, V/binary>>, S)}.

%% @doc SETRANGE key offset value (zero padded).
-spec setrange([binary()], store(), integer()) -> result().
setrange([K, Off0, V], S, _Now) ->
    Off = to_int(Off0),
    case value(K, S) of
        none when V =:= <<>> -> {ok, S};
        _ when V =:= <<>> -> {ok, S};
        Old0 ->
            Old = case Old0 of none -> <<>>; _ -> Old0 end,
            {ok, put_keep(K, splice(Old, Off, V), S)}
    end.

splice(Old, Off, V) ->
    Padded = pad(Old, Off + byte_size(V)),
    <<Pre:Off/binary, _:(byte_size(V))/binary, Post/binary>> = Padded,
    <<Pre/binary, V/binary, Post/binary>>.

pad(B, Len) when byte_size(B) >= Len -> B;
pad(B, Len) -> <<B/binary, 0:((Len - byte_size(B)) * 8)>>.

%% @doc INCR key.
-spec incr([binary()], store(), integer()) -> result().
incr([K], S, _) -> add(K, 1, S).
%% @doc DECR key.
-spec decr([binary()], store(), integer()) -> result().
decr([K], S, _) -> add(K, -1, S).
%% @doc INCRBY key n.
-spec incrby([binary()], store(), integer()) -> result().
incrby([K, N], S, _) -> add(K, to_int(N), S).
%% @doc DECRBY key n.
-spec decrby([binary()], store(), integer()) -> result().
decrby([K, N], S, _) -> add(K, -to_int(N), S).

add(K, N, S) ->
    Old = case value(K, S) of none -> 0; B -> to_int(B) end,
    {ok, put_keep(K, nsync_cmd_lib:int_bin(Old + N), S)}.

%% @doc INCRBYFLOAT key x (masters >= 3.0 propagate SET ... KEEPTTL instead).
-spec incrbyfloat([binary()], store(), integer()) -> result().
incrbyfloat([K, X], S, _) ->
    Old = case value(K, S) of none -> 0.0; B -> num(B) end,
    New = Old + num(X),
    {ok, put_keep(K, nsync_cmd_lib:format_float(New), S)}.

num(B) ->
    case nsync_cmd_lib:parse_float(B) of
        F when is_float(F) -> F
    end.

%% @doc GETSET key value (clears the TTL).
-spec getset([binary()], store(), integer()) -> result().
getset([K, V], S, _) -> {ok, put_new(K, V, S)}.

%% @doc GETEX key [EX|PX|EXAT|PXAT t | PERSIST].
-spec getex([binary()], store(), integer()) -> result().
getex([K | Opts], S, Now) ->
    case S of
        #{K := {V, E, F}} ->
            E2 = case Opts of
                     [] -> E;
                     [P] -> <<"persist">> = lower(P), undefined;
                     [O, A] -> nsync_cmd_lib:parse_expire_opt(lower(O), A, Now)
                 end,
            {ok, S#{K := {V, E2, F}}};
        _ ->
            {ok, S}
    end.

%% @doc SETBIT key offset 0|1.
-spec setbit([binary()], store(), integer()) -> result().
setbit([K, Off0, Bit0], S, _) ->
    Off = to_int(Off0),
    Bit = to_int(Bit0),
    Old = case value(K, S) of none -> <<>>; B -> B end,
    Padded = pad(Old, Off div 8 + 1),
    <<Pre:Off/bits, _:1, Post/bits>> = Padded,
    {ok, put_keep(K, <<Pre/bits, Bit:1, Post/bits>>, S)}.

%% @doc BITOP AND|OR|XOR|NOT|DIFF|DIFF1|ANDOR|ONE dest key [key ...].
-spec bitop([binary()], store(), integer()) -> result().
bitop([Op0, Dest | Keys], S, _) ->
    Vals = [case value(K, S) of none -> <<>>; B -> B end || K <- Keys],
    Len = lists:max([byte_size(V) || V <- Vals]),
    Ints = [binary:decode_unsigned(pad(V, Len)) || V <- Vals],
    Mask = (1 bsl (Len * 8)) - 1,
    R = case lower(Op0) of
            <<"and">> -> fold(fun(A, B) -> A band B end, Ints);
            <<"or">> -> fold(fun(A, B) -> A bor B end, Ints);
            <<"xor">> -> fold(fun(A, B) -> A bxor B end, Ints);
            <<"not">> -> [I] = Ints, (bnot I) band Mask;
            <<"diff">> -> [X | Ys] = Ints, X band (bnot ors(Ys)) band Mask;
            <<"diff1">> -> [X | Ys] = Ints, (bnot X) band ors(Ys) band Mask;
            <<"andor">> -> [X | Ys] = Ints, X band ors(Ys);
            <<"one">> -> one(Ints)
        end,
    case Len of
        0 -> {ok, maps:remove(Dest, S)};
        _ -> {ok, put_new(Dest, <<R:(Len * 8)>>, S)}
    end.

fold(F, [H | T]) -> lists:foldl(fun(X, Acc) -> F(Acc, X) end, H, T).
ors(L) -> lists:foldl(fun(X, A) -> X bor A end, 0, L).
%% bits set in exactly one input
one(Ints) ->
    {Once, _Twice} = lists:foldl(fun(X, {O, T}) ->
                                         {(O bxor X) band (bnot (T bor (O band X))),
                                          T bor (O band X)}
                                 end, {0, 0}, Ints),
    Once.

%% @doc BITFIELD key [GET t o] [SET t o v] [INCRBY t o n] [OVERFLOW WRAP|SAT|FAIL].
-spec bitfield([binary()], store(), integer()) -> result().
bitfield([K | Ops0], S, _) ->
    Ops = bf_parse(Ops0, wrap),
    Writes = [O || O = {W, _, _, _, _, _} <- Ops, W =/= get],
    case Writes of
        [] -> {ok, S};
        _ ->
            MaxBit = lists:max([Off + Bits || {_, _, Bits, Off, _, _} <- Writes]),
            Old = case value(K, S) of none -> <<>>; B -> B end,
            Bin = pad(Old, (MaxBit - 1) div 8 + 1),
            {ok, put_keep(K, lists:foldl(fun bf_apply/2, Bin, Writes), S)}
    end.

bf_parse([], _Ov) -> [];
bf_parse([Op, T, O | Rest], Ov) ->
    case lower(Op) of
        <<"overflow">> -> bf_parse([O | Rest], ov(lower(T)));
        <<"get">> -> {Sg, Bits} = bf_type(T), [{get, Sg, Bits, bf_off(O, Bits), 0, Ov} | bf_parse(Rest, Ov)];
        L when L =:= <<"set">>; L =:= <<"incrby">> ->
            {Sg, Bits} = bf_type(T),
            [V | Rest1] = Rest,
            [{binary_to_atom(L), Sg, Bits, bf_off(O, Bits), to_int(V), Ov} | bf_parse(Rest1, Ov)]
    end;
bf_parse([Op, _T], _Ov) ->
    <<"overflow">> = lower(Op),
    [].

ov(<<"wrap">>) -> wrap;
ov(<<"sat">>) -> sat;
ov(<<"fail">>) -> fail.

bf_type(<<C, N/binary>>) when C =:= $i; C =:= $I -> {signed, to_int(N)};
bf_type(<<C, N/binary>>) when C =:= $u; C =:= $U -> {unsigned, to_int(N)}.

bf_off(<<"#", N/binary>>, Bits) -> to_int(N) * Bits;
bf_off(N, _) -> to_int(N).

bf_apply({Op, Sg, Bits, Off, V, Ov}, Bin) ->
    <<Pre:Off/bits, Cur0:Bits/bits, Post/bits>> = Bin,
    Cur = case Sg of
              signed -> <<C:Bits/signed>> = Cur0, C;
              unsigned -> <<C:Bits>> = Cur0, C
          end,
    %% SET of a negative value on an unsigned field: Redis sees it as a
    %% uint64 above the maximum
    Target = case {Op, Sg} of
                 {set, unsigned} when V < 0 -> V + (1 bsl 64);
                 {set, _} -> V;
                 {incrby, _} -> Cur + V
             end,
    {Min, Max} = case Sg of
                     signed -> {-(1 bsl (Bits - 1)), (1 bsl (Bits - 1)) - 1};
                     unsigned -> {0, (1 bsl Bits) - 1}
                 end,
    New = if
              Target >= Min, Target =< Max -> Target;
              Ov =:= wrap -> wrap(Target, Bits, Sg);
              Ov =:= sat, Target > Max -> Max;
              Ov =:= sat -> Min;
              Ov =:= fail -> fail
          end,
    case New of
        fail -> Bin;
        _ -> <<Pre/bits, New:Bits, Post/bits>>
    end.

wrap(T, Bits, unsigned) -> T band ((1 bsl Bits) - 1);
wrap(T, Bits, signed) ->
    U = T band ((1 bsl Bits) - 1),
    <<X:Bits/signed>> = <<U:Bits>>,
    X.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

-define(NOW, 1000000).
s(L) -> maps:from_list([{K, {V, E, #{}}} || {K, V, E} <- L]).
run(F, Args, S) -> {ok, R} = ?MODULE:F(Args, S, ?NOW), R.

%% Valkey 8.1 / Redis 8.4 conditions, MSETEX, DELIFEQ, DELEX.
conditional_test_() ->
    E = s([{<<"k">>, <<"old">>, 5000}]),
    [?_assertEqual(s([{<<"k">>, <<"v">>, undefined}]), run(set, [<<"k">>, <<"v">>, <<"IFEQ">>, <<"old">>], E)),
     ?_assertEqual(E, run(set, [<<"k">>, <<"v">>, <<"ifeq">>, <<"other">>], E)),
     ?_assertEqual(#{}, run(set, [<<"k">>, <<"v">>, <<"IFEQ">>, <<"old">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<"v">>, 5000}]),
                   run(set, [<<"k">>, <<"v">>, <<"IFNE">>, <<"x">>, <<"KEEPTTL">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, undefined}]), run(set, [<<"k">>, <<"v">>, <<"IFNE">>, <<"x">>], #{})),
     ?_assertEqual(E, run(set, [<<"k">>, <<"v">>, <<"IFNE">>, <<"old">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"1">>, 9000}, {<<"n">>, <<"2">>, 9000}]),
                   run(msetex, [<<"2">>, <<"k">>, <<"1">>, <<"n">>, <<"2">>, <<"PXAT">>, <<"9000">>], E)),
     ?_assertEqual(E, run(msetex, [<<"2">>, <<"k">>, <<"1">>, <<"n">>, <<"2">>, <<"NX">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"1">>, 5000}]), run(msetex, [<<"1">>, <<"k">>, <<"1">>, <<"XX">>, <<"KEEPTTL">>], E)),
     ?_assertEqual(#{}, run(delifeq, [<<"k">>, <<"old">>], E)),
     ?_assertEqual(E, run(delifeq, [<<"k">>, <<"new">>], E)),
     ?_assertEqual(#{}, run(delex, [<<"k">>], E)),
     ?_assertEqual(E, run(delex, [<<"k">>, <<"IFNE">>, <<"old">>], E)),
     ?_assertEqual(#{}, run(delex, [<<"k">>, <<"IFNE">>, <<"x">>], E))].

%% Redis 8.4's digest conditions, in the forms a master propagates: SET
%% without an expiry or with PXAT keeps its condition (the digest of "old"
%% is 0f3ca07a8cc8bf40, XXH3-64 as Redis's DIGEST writes it).
digest_test_() ->
    E = s([{<<"k">>, <<"old">>, 5000}]),
    D = <<"0f3ca07a8cc8bf40">>,
    [?_assertEqual(D, nsync_nif:string_digest(<<"old">>)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, undefined}]), run(set, [<<"k">>, <<"v">>, <<"IFDEQ">>, D], E)),
     %% compared case-insensitively
     ?_assertEqual(s([{<<"k">>, <<"v">>, 77}]),
                   run(set, [<<"k">>, <<"v">>, <<"ifdeq">>, <<"0F3CA07A8CC8BF40">>, <<"PXAT">>, <<"77">>], E)),
     ?_assertEqual(E, run(set, [<<"k">>, <<"v">>, <<"IFDEQ">>, <<"0f3ca07a8cc8bf41">>], E)),
     ?_assertEqual(#{}, run(set, [<<"k">>, <<"v">>, <<"IFDEQ">>, D], #{})),
     ?_assertEqual(E, run(set, [<<"k">>, <<"v">>, <<"IFDNE">>, D, <<"GET">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, 5000}]),
                   run(set, [<<"k">>, <<"v">>, <<"IFDNE">>, <<"ffffffffffffffff">>, <<"KEEPTTL">>], E)),
     %% a missing key meets IFDNE
     ?_assertEqual(s([{<<"k">>, <<"v">>, undefined}]), run(set, [<<"k">>, <<"v">>, <<"IFDNE">>, D], #{})),
     ?_assertEqual(#{}, run(delex, [<<"k">>, <<"IFDEQ">>, D], E)),
     ?_assertEqual(E, run(delex, [<<"k">>, <<"IFDEQ">>, <<"0000000000000000">>], E)),
     ?_assertEqual(E, run(delex, [<<"k">>, <<"IFDNE">>, D], E)),
     ?_assertEqual(#{}, run(delex, [<<"k">>, <<"ifdne">>, <<"0000000000000000">>], E)),
     ?_assertNot(set_overwrites([<<"k">>, <<"v">>, <<"IFDNE">>, D])),
     ?_assert(set_compares([<<"k">>, <<"v">>, <<"NX">>, <<"IfDeq">>, D])),
     ?_assertNot(set_compares([<<"k">>, <<"v">>, <<"NX">>, <<"PX">>, <<"5">>]))].

set_test_() ->
    E = s([{<<"k">>, <<"old">>, 5000}]),
    [?_assertEqual(s([{<<"k">>, <<"v">>, undefined}]), run(set, [<<"k">>, <<"v">>], E)),
     ?_assertEqual(E, run(set, [<<"k">>, <<"v">>, <<"NX">>], E)),
     ?_assertEqual(#{}, run(set, [<<"k">>, <<"v">>, <<"xx">>], #{})),
     %% SET GET on a missing key creates it
     ?_assertEqual(s([{<<"k">>, <<"v">>, undefined}]), run(set, [<<"k">>, <<"v">>, <<"GET">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<"v">>, 5000}]), run(set, [<<"k">>, <<"v">>, <<"KEEPTTL">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, 77}]), run(set, [<<"k">>, <<"v">>, <<"PXAT">>, <<"77">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, 3000}]), run(set, [<<"k">>, <<"v">>, <<"EXAT">>, <<"3">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, ?NOW + 2000}]), run(set, [<<"k">>, <<"v">>, <<"ex">>, <<"2">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, ?NOW + 20}]),
                   run(set, [<<"k">>, <<"v">>, <<"XX">>, <<"GET">>, <<"PX">>, <<"20">>], E)),
     %% SET over a hash with field TTLs drops them
     ?_assertEqual(#{<<"h">> => {<<"v">>, undefined, #{}}},
                   run(set, [<<"h">>, <<"v">>], #{<<"h">> => {#{<<"f">> => <<"1">>}, undefined, #{<<"f">> => 5}}}))].

setnx_setex_test_() ->
    E = s([{<<"k">>, <<"old">>, undefined}]),
    [?_assertEqual(E, run(setnx, [<<"k">>, <<"v">>], E)),
     ?_assertEqual(s([{<<"n">>, <<"v">>, undefined}]), run(setnx, [<<"n">>, <<"v">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<"v">>, ?NOW + 10000}]), run(setex, [<<"k">>, <<"10">>, <<"v">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"v">>, ?NOW + 10}]), run(psetex, [<<"k">>, <<"10">>, <<"v">>], E))].

mset_test_() ->
    E = s([{<<"a">>, <<"x">>, 9}]),
    [?_assertEqual(s([{<<"a">>, <<"1">>, undefined}, {<<"b">>, <<"2">>, undefined}]),
                   run(mset, [<<"a">>, <<"1">>, <<"b">>, <<"2">>], E)),
     ?_assertEqual(E, run(msetnx, [<<"a">>, <<"1">>, <<"b">>, <<"2">>], E)),
     ?_assertEqual(s([{<<"c">>, <<"1">>, undefined}, {<<"b">>, <<"2">>, undefined}]),
                   run(msetnx, [<<"c">>, <<"1">>, <<"b">>, <<"2">>], #{}))].

append_setrange_test_() ->
    E = s([{<<"k">>, <<"ab">>, 9}]),
    [?_assertEqual(s([{<<"k">>, <<"abcd">>, 9}]), run(append, [<<"k">>, <<"cd">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"cd">>, undefined}]), run(append, [<<"k">>, <<"cd">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<"aX">>, 9}]), run(setrange, [<<"k">>, <<"1">>, <<"X">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"ab", 0, 0, "X">>, 9}]), run(setrange, [<<"k">>, <<"4">>, <<"X">>], E)),
     ?_assertEqual(s([{<<"k">>, <<0, "XY">>, undefined}]), run(setrange, [<<"k">>, <<"1">>, <<"XY">>], #{})),
     %% empty value on a missing key creates nothing
     ?_assertEqual(#{}, run(setrange, [<<"k">>, <<"3">>, <<>>], #{}))].

incr_test_() ->
    E = s([{<<"k">>, <<"10">>, 9}]),
    [?_assertEqual(s([{<<"k">>, <<"11">>, 9}]), run(incr, [<<"k">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"-1">>, undefined}]), run(decr, [<<"k">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<"15">>, 9}]), run(incrby, [<<"k">>, <<"5">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"-5">>, 9}]), run(decrby, [<<"k">>, <<"15">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"10.5">>, 9}]), run(incrbyfloat, [<<"k">>, <<"0.5">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"5000">>, undefined}]), run(incrbyfloat, [<<"k">>, <<"5.0e3">>], #{}))].

getset_getex_test_() ->
    E = s([{<<"k">>, <<"a">>, 9}]),
    [?_assertEqual(s([{<<"k">>, <<"b">>, undefined}]), run(getset, [<<"k">>, <<"b">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"a">>, undefined}]), run(getex, [<<"k">>, <<"PERSIST">>], E)),
     ?_assertEqual(s([{<<"k">>, <<"a">>, 1234}]), run(getex, [<<"k">>, <<"pxat">>, <<"1234">>], E)),
     ?_assertEqual(E, run(getex, [<<"k">>], E)),
     ?_assertEqual(#{}, run(getex, [<<"k">>, <<"ex">>, <<"5">>], #{}))].

setbit_test_() ->
    [?_assertEqual(s([{<<"k">>, <<128>>, undefined}]), run(setbit, [<<"k">>, <<"0">>, <<"1">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<0, 1>>, undefined}]), run(setbit, [<<"k">>, <<"15">>, <<"1">>], #{})),
     ?_assertEqual(s([{<<"k">>, <<127>>, 3}]), run(setbit, [<<"k">>, <<"0">>, <<"0">>], s([{<<"k">>, <<255>>, 3}])))].

bitop_test_() ->
    E = s([{<<"a">>, <<16#F0, 16#0F>>, undefined}, {<<"b">>, <<16#FF>>, undefined}]),
    V = fun(Op, Keys) -> nsync_cmd_lib:value(<<"d">>, run(bitop, [Op, <<"d">> | Keys], E)) end,
    [?_assertEqual(<<16#F0, 0>>, V(<<"AND">>, [<<"a">>, <<"b">>])),
     ?_assertEqual(<<16#FF, 16#0F>>, V(<<"or">>, [<<"a">>, <<"b">>])),
     ?_assertEqual(<<16#0F, 16#0F>>, V(<<"XOR">>, [<<"a">>, <<"b">>])),
     ?_assertEqual(<<16#0F, 16#F0>>, V(<<"NOT">>, [<<"a">>])),
     ?_assertEqual(<<0, 16#0F>>, V(<<"DIFF">>, [<<"a">>, <<"b">>])),
     ?_assertEqual(<<16#0F, 0>>, V(<<"DIFF1">>, [<<"a">>, <<"b">>])),
     ?_assertEqual(<<16#0F, 16#0F>>, V(<<"ONE">>, [<<"a">>, <<"b">>])),
     %% all inputs empty: the destination is deleted
     ?_assertEqual(#{}, run(bitop, [<<"OR">>, <<"d">>, <<"x">>], s([{<<"d">>, <<"1">>, undefined}])))].

bitfield_test_() ->
    V = fun(Args, S0) -> nsync_cmd_lib:value(<<"k">>, run(bitfield, [<<"k">> | Args], S0)) end,
    [?_assertEqual(<<255>>, V([<<"SET">>, <<"u8">>, <<"0">>, <<"255">>], #{})),
     ?_assertEqual(<<0>>, V([<<"INCRBY">>, <<"u8">>, <<"0">>, <<"1">>], s([{<<"k">>, <<255>>, undefined}]))),
     ?_assertEqual(<<255>>, V([<<"OVERFLOW">>, <<"SAT">>, <<"INCRBY">>, <<"u8">>, <<"0">>, <<"10">>],
                               s([{<<"k">>, <<250>>, undefined}]))),
     ?_assertEqual(<<250>>, V([<<"OVERFLOW">>, <<"FAIL">>, <<"INCRBY">>, <<"u8">>, <<"0">>, <<"10">>],
                               s([{<<"k">>, <<250>>, undefined}]))),
     ?_assertEqual(<<0, 0, 5>>, V([<<"SET">>, <<"i8">>, <<"#2">>, <<"5">>], #{})),
     ?_assertEqual(<<16#80>>, V([<<"INCRBY">>, <<"i8">>, <<"0">>, <<"1">>], s([{<<"k">>, <<127>>, undefined}]))),
     ?_assertEqual(<<2#01000000>>, V([<<"set">>, <<"u2">>, <<"0">>, <<"1">>], #{})),
     %% a negative SET on an unsigned field saturates to the maximum
     ?_assertEqual(<<255>>, V([<<"OVERFLOW">>, <<"SAT">>, <<"SET">>, <<"u8">>, <<"0">>, <<"-5">>], #{})),
     ?_assertEqual(<<251>>, V([<<"SET">>, <<"u8">>, <<"0">>, <<"-5">>], #{})),
     ?_assertEqual(#{}, run(bitfield, [<<"k">>, <<"GET">>, <<"u8">>, <<"0">>], #{}))].
-endif.
