%%% @doc What the command handlers share: the store they work on, access to
%%% its entries, and Redis's argument parsing and number formatting. Depends
%%% on no other nsync module.
%%%
%%% A handler is `fun Mod:Fun/3' listed in `nsync_cmd':
%%% `Fun(Args, Store, Now) -> {ok, Store2} | unhandled' (with the `settings'
%%% flag, `Fun(Args, Store, Settings)': the link's `settings()', `now'
%%% included). `Store' holds the
%%% current entries of the keys the command touches (as given by its key
%%% spec), `Key => {Value, ExpireAt, FieldExpires}'; a key that does not exist
%%% is absent from the map. The handler returns the new entries of those keys
%%% (a key missing from `Store2' is deleted). Values use the representation of
%%% DESIGN.md. `Now' (ms since the epoch) is used only by relative expiry
%%% forms (EXPIRE, SETEX, ... from masters older than 7.0).
%%%
%%% Handlers never see a command the master refused (wrong type, bad syntax):
%%% the master does not propagate those. Anything a handler cannot parse
%%% raises and the mirror treats the command as unhandled.
-module(nsync_cmd_lib).

%% the store
-export([value/2, exp_of/2, put_keep/3, put_new/3, finish/1]).
%% arguments and numbers
-export([lower/1, to_int/1, int_bin/1, parse_float/1, format_float/1,
         parse_expire_opt/3, expire_ok/3, firsts/1, norm_range/3, score_key/1,
         store_targets/1, key_slot/1]).

-export_type([store/0, entry/0, expire/0, result/0, handler/0, score/0, settings/0]).

-type expire() :: integer() | undefined.
-type entry() :: {Value :: term(), expire(), FieldExpires :: #{binary() => integer()}}.
-type store() :: #{binary() => entry()}.
-type result() :: {ok, store()} | unhandled.
-type handler() :: fun(([binary()], store(), integer() | settings()) -> result()).
%% What a master does differently, for the handlers that depend on it:
%% its `hll-sparse-max-bytes' and how it computes GEO distances.
-type settings() :: #{now := integer(),
                      hll_sparse_max_bytes := non_neg_integer(),
                      geo_formula := before_7_0 | since_7_0}.
-type score() :: float() | inf | '-inf'.

%% Integers of up to this many characters (sign included) are exact doubles.
-define(EXACT_INT_DIGITS, 15).

%%% ------------------------------------------------------------ the store

%% @doc The value of `K' in `S', or `none'.
-spec value(binary(), store()) -> term().
value(K, S) ->
    case S of
        #{K := {V, _, _}} -> V;
        _ -> none
    end.

%% @doc The key expiry of `K' in `S' (undefined if none or absent).
-spec exp_of(binary(), store()) -> expire().
exp_of(K, S) ->
    case S of
        #{K := {_, E, _}} -> E;
        _ -> undefined
    end.

%% @doc Stores `V' at `K' keeping its expiries (a modification).
-spec put_keep(binary(), term(), store()) -> store().
put_keep(K, V, S) ->
    case S of
        #{K := {_, E, F}} -> S#{K := {V, E, F}};
        _ -> S#{K => {V, undefined, #{}}}
    end.

%% @doc Stores `V' at `K' as a new key without expiry (an overwrite).
-spec put_new(binary(), term(), store()) -> store().
put_new(K, V, S) -> S#{K => {V, undefined, #{}}}.

%% @doc Normalizes a handler's output entry: an empty collection is deleted
%% (Redis deletes a key whose list, set, zset or hash becomes empty) and the
%% expiries of fields that no longer exist are dropped.
-spec finish(entry()) -> entry() | delete.
finish({[], _, _}) -> delete;
finish({M, _, _}) when is_map(M), map_size(M) =:= 0 -> delete;
finish({M, E, F}) when is_map(M), map_size(F) > 0 ->
    {M, E, maps:filter(fun(Fd, _) -> is_map_key(Fd, M) end, F)};
finish({M, E, F}) when is_map(M) -> {M, E, F};
finish({V, E, _}) -> {V, E, #{}}.

%%% ------------------------------------------------------------ arguments

%% @doc ASCII lowercase.
-spec lower(binary()) -> binary().
lower(B) ->
    %% Command names from the NIF are lowercase already: no copy then.
    case has_upper(B) of
        true -> << <<(lc(C))>> || <<C>> <= B >>;
        false -> B
    end.

has_upper(<<C, _/binary>>) when C >= $A, C =< $Z -> true;
has_upper(<<_, Rest/binary>>) -> has_upper(Rest);
has_upper(<<>>) -> false.

lc(C) when C >= $A, C =< $Z -> C + 32;
lc(C) -> C.

%% @doc Parses a Redis integer argument.
-spec to_int(binary()) -> integer().
to_int(B) -> binary_to_integer(B).

%% @doc Formats an integer as Redis does.
-spec int_bin(integer()) -> binary().
int_bin(I) -> integer_to_binary(I).

%% @doc The first of each pair of a flat `k v k v ...' list (the keys of
%% MSET, the fields of HSETEX).
-spec firsts([binary()]) -> [binary()].
firsts([K, _ | Rest]) -> [K | firsts(Rest)];
firsts(_) -> [].

%% @doc The keys after each `STORE' or `STOREDIST' option of GEORADIUS and
%% GEORADIUSBYMEMBER, in order (the last one is where the result goes).
-spec store_targets([binary()]) -> [binary()].
store_targets([O, D | Rest]) ->
    case lower(O) of
        S when S =:= <<"store">>; S =:= <<"storedist">> -> [D | store_targets(Rest)];
        _ -> store_targets([D | Rest])
    end;
store_targets(_) -> [].

%% @doc Parses an expiry option (`EX'/`PX'/`EXAT'/`PXAT', lowercase) and its
%% argument into an absolute time in ms.
-spec parse_expire_opt(binary(), binary(), integer()) -> integer().
parse_expire_opt(<<"ex">>, A, Now) -> Now + to_int(A) * 1000;
parse_expire_opt(<<"px">>, A, Now) -> Now + to_int(A);
parse_expire_opt(<<"exat">>, A, _) -> to_int(A) * 1000;
parse_expire_opt(<<"pxat">>, A, _) -> to_int(A).

%% @doc Whether the conditions NX/XX/GT/LT (lowercase) of EXPIRE and HEXPIRE
%% allow replacing expiry `Old' (undefined: none, i.e. infinite) by `New'.
-spec expire_ok([binary()], expire(), integer()) -> boolean().
expire_ok(Opts, Old, New) ->
    lists:all(fun(<<"nx">>) -> Old =:= undefined;
                 (<<"xx">>) -> Old =/= undefined;
                 (<<"gt">>) -> Old =/= undefined andalso New > Old;
                 (<<"lt">>) -> Old =:= undefined orelse New < Old
              end, Opts).

%% @doc Normalizes a Redis `start stop' range (inclusive, negative from the
%% end) over `Len' elements to 0-based `{A, B}' or `empty'.
-spec norm_range(integer(), integer(), non_neg_integer()) -> {non_neg_integer(), non_neg_integer()} | empty.
norm_range(St0, En0, Len) ->
    St1 = if St0 < 0 -> Len + St0; true -> St0 end,
    En1 = if En0 < 0 -> Len + En0; true -> En0 end,
    St = max(St1, 0),
    En = min(En1, Len - 1),
    case St > En orelse St >= Len of
        true -> empty;
        false -> {St, En}
    end.

%% @doc The cluster hash slot of a key (Redis's `keyHashSlot'): CRC16
%% (XMODEM) of the key, or of its hash tag, the part between the first `{'
%% and the next `}' when that part is not empty, modulo 16384.
-spec key_slot(binary()) -> 0..16383.
key_slot(Key) ->
    Hashed = case binary:match(Key, <<"{">>) of
                 {Open, 1} ->
                     Rest = binary:part(Key, Open + 1, byte_size(Key) - Open - 1),
                     case binary:match(Rest, <<"}">>) of
                         {Close, 1} when Close > 0 -> binary:part(Rest, 0, Close);
                         _ -> Key
                     end;
                 nomatch -> Key
             end,
    crc16(Hashed, 0) band 16383.

crc16(<<B, Rest/binary>>, Crc) -> crc16(Rest, crc16_byte(8, Crc bxor (B bsl 8)));
crc16(<<>>, Crc) -> Crc.

crc16_byte(0, Crc) -> Crc;
crc16_byte(N, Crc) when Crc band 16#8000 =/= 0 -> crc16_byte(N - 1, ((Crc bsl 1) bxor 16#1021) band 16#FFFF);
crc16_byte(N, Crc) -> crc16_byte(N - 1, (Crc bsl 1) band 16#FFFF).

%%% ------------------------------------------------------------ numbers

%% @doc Parses a Redis double (strtod-like: "1e3", "+inf", "-inf", ".5",
%% "3."). Infinities are the atoms `inf' and `'-inf''.
-spec parse_float(binary()) -> score().
parse_float(B) when byte_size(B) =< ?EXACT_INT_DIGITS ->
    %% the usual score, an integer: exact as a double up to 15 digits
    %% (-0 is -0.0: the general path)
    try binary_to_integer(B) of
        I when I =/= 0 -> float(I);
        _ -> parse_general(B)
    catch
        error:badarg -> parse_general(B)
    end;
parse_float(B) ->
    parse_general(B).

parse_general(B0) ->
    case lower(B0) of
        I when I =:= <<"inf">>; I =:= <<"+inf">>; I =:= <<"infinity">>;
               I =:= <<"+infinity">> -> inf;
        I when I =:= <<"-inf">>; I =:= <<"-infinity">> -> '-inf';
        B -> parse_num(B)
    end.

parse_num(<<"-", R/binary>>) -> neg(parse_unsigned(R));
parse_num(<<"+", R/binary>>) -> parse_unsigned(R);
parse_num(R) -> parse_unsigned(R).

neg(F) -> -F.

parse_unsigned(B) ->
    {Mant, Exp} = case binary:split(B, <<"e">>) of
                      [M, E] -> {M, E};
                      [M] -> {M, <<"0">>}
                  end,
    {IntP, FracP} = case binary:split(Mant, <<".">>) of
                        [I, F] -> {I, F};
                        [I] -> {I, <<>>}
                    end,
    true = byte_size(IntP) + byte_size(FracP) > 0,
    true = all_digits(IntP) andalso all_digits(FracP),
    IntS = case IntP of <<>> -> <<"0">>; _ -> IntP end,
    FracS = case FracP of <<>> -> <<"0">>; _ -> FracP end,
    ExpI = binary_to_integer(Exp),
    case IntS =:= <<"0">> orelse all_zero(IntS) of
        true when FracS =:= <<"0">> orelse FracS =:= <<>> -> 0.0;
        _ ->
            Txt = <<IntS/binary, ".", FracS/binary, "e", (integer_to_binary(ExpI))/binary>>,
            binary_to_float(Txt)
    end.

all_digits(B) -> lists:all(fun(C) -> C >= $0 andalso C =< $9 end, binary_to_list(B)).
all_zero(B) -> lists:all(fun(C) -> C =:= $0 end, binary_to_list(B)).

%% @doc Formats a double like INCRBYFLOAT/HINCRBYFLOAT results (fixed
%% notation, no trailing zeros). Redis computes these in long double; modern
%% masters propagate the result itself, so this is used only for old masters.
-spec format_float(float()) -> binary().
format_float(F) when F == 0 -> <<"0">>;
format_float(F) ->
    T = float_to_list(F, [short]),
    case string:split(T, "e") of
        [M, E] -> list_to_binary(fixed(M, list_to_integer(E)));
        [M] -> list_to_binary(trim(M))
    end.

fixed(M, E) ->
    {Sign, M1} = case M of [$- | Rest] -> {"-", Rest}; _ -> {"", M} end,
    [I, Fr] = case string:split(M1, ".") of [A, B] -> [A, B]; [A] -> [A, ""] end,
    Digits = I ++ Fr,
    Point = length(I) + E,
    Body = if
               Point =< 0 -> "0." ++ lists:duplicate(-Point, $0) ++ Digits;
               Point >= length(Digits) -> Digits ++ lists:duplicate(Point - length(Digits), $0);
               true -> {L, R} = lists:split(Point, Digits), L ++ "." ++ R
           end,
    Sign ++ trim(Body).

trim(S) ->
    case lists:member($., S) of
        false -> S;
        true ->
            S1 = lists:reverse(lists:dropwhile(fun(C) -> C =:= $0 end, lists:reverse(S))),
            case lists:last(S1) of $. -> lists:droplast(S1); _ -> S1 end
    end.

%% @doc A sort key giving Redis's order of scores (-0.0 equals 0.0): sorted
%% sets and SORT of numbers.
-spec score_key(score()) -> {0 | 1 | 2, float()}.
score_key('-inf') -> {0, 0.0};
score_key(inf) -> {2, 0.0};
score_key(F) -> {1, F + 0.0}.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

parse_float_test_() ->
    [?_assertEqual(1000.0, parse_float(<<"1e3">>)),
     ?_assertEqual(inf, parse_float(<<"+inf">>)),
     ?_assertEqual(inf, parse_float(<<"inf">>)),
     ?_assertEqual('-inf', parse_float(<<"-INF">>)),
     ?_assertEqual(0.5, parse_float(<<".5">>)),
     ?_assertEqual(3.0, parse_float(<<"3.">>)),
     ?_assertEqual(-2.5, parse_float(<<"-2.5">>)),
     ?_assertEqual(12.0, parse_float(<<"12">>)),
     ?_assertEqual(1.5e-7, parse_float(<<"1.5E-7">>)),
     ?_assertError(_, parse_float(<<"abc">>)),
     ?_assertError(_, parse_float(<<"">>)),
     %% integers, the fast path, as the general one reads them
     ?_assertEqual(4521.0, parse_float(<<"4521">>)),
     ?_assertEqual(-7.0, parse_float(<<"-007">>)),
     ?_assertEqual(5.0, parse_float(<<"+5">>)),
     ?_assertEqual(999999999999999.0, parse_float(<<"999999999999999">>)),
     ?_assertEqual(1.0e15, parse_float(<<"1000000000000000">>)),
     ?_assert(is_float(parse_float(<<"0">>))),
     ?_assertEqual(<<"-0.0">>, float_to_binary(parse_float(<<"-0">>), [short]))].

format_float_test_() ->
    [?_assertEqual(<<"10.6">>, format_float(10.5 + 0.1)),
     ?_assertEqual(<<"3">>, format_float(3.0)),
     ?_assertEqual(<<"-0.25">>, format_float(-0.25)),
     ?_assertEqual(<<"100000000000000000000">>, format_float(1.0e20)),
     ?_assertEqual(<<"0.0001">>, format_float(1.0e-4)),
     ?_assertEqual(<<"0">>, format_float(0.0))].

finish_test_() ->
    [?_assertEqual(delete, finish({[], undefined, #{}})),
     ?_assertEqual(delete, finish({#{}, 5, #{}})),
     ?_assertEqual({#{<<"a">> => <<"1">>}, undefined, #{<<"a">> => 9}},
                   finish({#{<<"a">> => <<"1">>}, undefined, #{<<"a">> => 9, <<"b">> => 3}})),
     ?_assertEqual({<<>>, 7, #{}}, finish({<<>>, 7, #{}}))].

norm_range_test_() ->
    [?_assertEqual(empty, norm_range(0, -4, 3)),
     ?_assertEqual({0, 2}, norm_range(0, -1, 3))].

key_slot_test_() ->
    [%% CRC-16/XMODEM's check value, and CLUSTER KEYSLOT examples
     ?_assertEqual(16#31C3 band 16383, key_slot(<<"123456789">>)),
     ?_assertEqual(12182, key_slot(<<"foo">>)),
     ?_assertEqual(11058, key_slot(<<"somekey">>)),
     ?_assertEqual(key_slot(<<"foo">>), key_slot(<<"{foo}.bar">>)),
     ?_assertEqual(key_slot(<<"a{foo}b{c}">>), key_slot(<<"foo">>)),
     %% an empty tag hashes the whole key
     ?_assertNotEqual(key_slot(<<"">>), key_slot(<<"{}foo">>)),
     ?_assertEqual(key_slot(<<"{}foo">>), crc16(<<"{}foo">>, 0) band 16383)].

firsts_test_() ->
    [?_assertEqual([<<"a">>, <<"c">>], firsts([<<"a">>, <<"1">>, <<"c">>, <<"2">>])),
     ?_assertEqual([], firsts([]))].
-endif.
