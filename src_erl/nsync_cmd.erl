%%% @doc The mirror's command table: one entry per write command, mapping the
%%% command name to the keys it touches and to a pure handler.
%%%
%%% A handler is `Module:Fun(Args, Store, Now) -> {ok, Store2} | unhandled'.
%%% `Store' holds the current entries of the keys the command touches (as
%%% given by the key spec), `Key => {Value, ExpireAt, FieldExpires}'; a key
%%% that does not exist is absent from the map. The handler returns the new
%%% entries of those keys (a key missing from `Store2' is deleted). Values use
%%% the representation of DESIGN.md. `Now' (ms since the epoch) is used only by
%%% relative expiry forms (EXPIRE, SETEX, ... from masters older than 7.0).
%%%
%%% Handlers never see a command the master refused (wrong type, bad syntax):
%%% the master does not propagate those. Anything a handler cannot parse raises
%%% and the mirror treats the command as unhandled.
%%%
%%% Cross-database and whole-database commands (SELECT, MOVE, COPY ... DB,
%%% SWAPDB, FLUSHDB, FLUSHALL) and commands that change nothing (MULTI, EXEC,
%%% PUBLISH, ...) are classified here and carried out by `nsync_mirror'.
-module(nsync_cmd).

-export([spec/1, keys/2, run/4, lower/1, finish/2]).
%% shared helpers for the nsync_cmd_* modules
-export([value/2, entry/2, exp_of/2, put_keep/3, put_new/3,
         to_int/1, int_bin/1, parse_float/1, format_float/1,
         parse_expire_opt/3]).

-export_type([store/0, entry/0, keyspec/0]).

-type expire() :: integer() | undefined.
-type entry() :: {Value :: term(), expire(), FieldExpires :: #{binary() => integer()}}.
-type store() :: #{binary() => entry()}.
-type keyspec() :: none | first | two | all | pairs | all_but_last | second
                 | from_second | {numkeys, non_neg_integer()} | dest_numkeys
                 | sort | eval | xgroup | georadius | geosearchstore.
-type spec() :: {keyspec(), module(), atom()}
              | ignore | cross_db | {unhandled, keyspec()} | undefined.

%% @doc The command table: how the mirror applies `Cmd' (lowercase).
%% `{KeySpec, Module, Fun}': read the keys of `KeySpec', run the pure handler;
%% `ignore': changes no key; `cross_db': done by the mirror itself;
%% `{unhandled, KeySpec}': cannot be applied faithfully, its keys are removed;
%% `undefined': unknown command.
-spec spec(binary()) -> spec().
%% strings
spec(<<"set">>) -> {first, nsync_cmd_string, set};
spec(<<"setnx">>) -> {first, nsync_cmd_string, setnx};
spec(<<"setex">>) -> {first, nsync_cmd_string, setex};
spec(<<"psetex">>) -> {first, nsync_cmd_string, psetex};
spec(<<"mset">>) -> {pairs, nsync_cmd_string, mset};
spec(<<"msetnx">>) -> {pairs, nsync_cmd_string, msetnx};
spec(<<"append">>) -> {first, nsync_cmd_string, append};
spec(<<"setrange">>) -> {first, nsync_cmd_string, setrange};
spec(<<"incr">>) -> {first, nsync_cmd_string, incr};
spec(<<"decr">>) -> {first, nsync_cmd_string, decr};
spec(<<"incrby">>) -> {first, nsync_cmd_string, incrby};
spec(<<"decrby">>) -> {first, nsync_cmd_string, decrby};
spec(<<"incrbyfloat">>) -> {first, nsync_cmd_string, incrbyfloat};
spec(<<"getset">>) -> {first, nsync_cmd_string, getset};
spec(<<"getdel">>) -> {first, nsync_cmd_generic, del};
spec(<<"getex">>) -> {first, nsync_cmd_string, getex};
spec(<<"setbit">>) -> {first, nsync_cmd_string, setbit};
spec(<<"bitop">>) -> {from_second, nsync_cmd_string, bitop};
spec(<<"bitfield">>) -> {first, nsync_cmd_string, bitfield};
%% generic keys
spec(<<"del">>) -> {all, nsync_cmd_generic, del};
spec(<<"unlink">>) -> {all, nsync_cmd_generic, del};
spec(<<"rename">>) -> {two, nsync_cmd_generic, rename};
spec(<<"renamenx">>) -> {two, nsync_cmd_generic, renamenx};
spec(<<"copy">>) -> {two, nsync_cmd_generic, copy};
spec(<<"expire">>) -> {first, nsync_cmd_generic, expire};
spec(<<"pexpire">>) -> {first, nsync_cmd_generic, pexpire};
spec(<<"expireat">>) -> {first, nsync_cmd_generic, expireat};
spec(<<"pexpireat">>) -> {first, nsync_cmd_generic, pexpireat};
spec(<<"persist">>) -> {first, nsync_cmd_generic, persist};
spec(<<"sort">>) -> {sort, nsync_cmd_generic, sort};
spec(<<"restore">>) -> {first, nsync_cmd_generic, restore};
spec(<<"restore-asking">>) -> {first, nsync_cmd_generic, restore};
spec(<<"move">>) -> cross_db;
spec(<<"swapdb">>) -> cross_db;
spec(<<"flushdb">>) -> cross_db;
spec(<<"flushall">>) -> cross_db;
%% lists
spec(<<"lpush">>) -> {first, nsync_cmd_list, lpush};
spec(<<"rpush">>) -> {first, nsync_cmd_list, rpush};
spec(<<"lpushx">>) -> {first, nsync_cmd_list, lpushx};
spec(<<"rpushx">>) -> {first, nsync_cmd_list, rpushx};
spec(<<"lpop">>) -> {first, nsync_cmd_list, lpop};
spec(<<"rpop">>) -> {first, nsync_cmd_list, rpop};
spec(<<"linsert">>) -> {first, nsync_cmd_list, linsert};
spec(<<"lset">>) -> {first, nsync_cmd_list, lset};
spec(<<"lrem">>) -> {first, nsync_cmd_list, lrem};
spec(<<"ltrim">>) -> {first, nsync_cmd_list, ltrim};
spec(<<"lmove">>) -> {two, nsync_cmd_list, lmove};
spec(<<"blmove">>) -> {two, nsync_cmd_list, lmove};
spec(<<"rpoplpush">>) -> {two, nsync_cmd_list, rpoplpush};
spec(<<"brpoplpush">>) -> {two, nsync_cmd_list, rpoplpush};
spec(<<"lmpop">>) -> {{numkeys, 0}, nsync_cmd_list, lmpop};
spec(<<"blmpop">>) -> {{numkeys, 1}, nsync_cmd_list, blmpop};
spec(<<"blpop">>) -> {all_but_last, nsync_cmd_list, blpop};
spec(<<"brpop">>) -> {all_but_last, nsync_cmd_list, brpop};
%% sets
spec(<<"sadd">>) -> {first, nsync_cmd_set, sadd};
spec(<<"srem">>) -> {first, nsync_cmd_set, srem};
spec(<<"smove">>) -> {two, nsync_cmd_set, smove};
spec(<<"spop">>) -> {unhandled, first};
spec(<<"sinterstore">>) -> {all, nsync_cmd_set, sinterstore};
spec(<<"sunionstore">>) -> {all, nsync_cmd_set, sunionstore};
spec(<<"sdiffstore">>) -> {all, nsync_cmd_set, sdiffstore};
%% sorted sets
spec(<<"zadd">>) -> {first, nsync_cmd_zset, zadd};
spec(<<"zincrby">>) -> {first, nsync_cmd_zset, zincrby};
spec(<<"zrem">>) -> {first, nsync_cmd_zset, zrem};
spec(<<"zremrangebyscore">>) -> {first, nsync_cmd_zset, zremrangebyscore};
spec(<<"zremrangebyrank">>) -> {first, nsync_cmd_zset, zremrangebyrank};
spec(<<"zremrangebylex">>) -> {first, nsync_cmd_zset, zremrangebylex};
spec(<<"zpopmin">>) -> {first, nsync_cmd_zset, zpopmin};
spec(<<"zpopmax">>) -> {first, nsync_cmd_zset, zpopmax};
spec(<<"bzpopmin">>) -> {all_but_last, nsync_cmd_zset, bzpopmin};
spec(<<"bzpopmax">>) -> {all_but_last, nsync_cmd_zset, bzpopmax};
spec(<<"zmpop">>) -> {{numkeys, 0}, nsync_cmd_zset, zmpop};
spec(<<"bzmpop">>) -> {{numkeys, 1}, nsync_cmd_zset, bzmpop};
spec(<<"zunionstore">>) -> {dest_numkeys, nsync_cmd_zset, zunionstore};
spec(<<"zinterstore">>) -> {dest_numkeys, nsync_cmd_zset, zinterstore};
spec(<<"zdiffstore">>) -> {dest_numkeys, nsync_cmd_zset, zdiffstore};
spec(<<"zrangestore">>) -> {two, nsync_cmd_zset, zrangestore};
spec(<<"georadius">>) -> {unhandled, georadius};
spec(<<"georadiusbymember">>) -> {unhandled, georadius};
spec(<<"geosearchstore">>) -> {unhandled, first};
%% hashes
spec(<<"hset">>) -> {first, nsync_cmd_hash, hset};
spec(<<"hmset">>) -> {first, nsync_cmd_hash, hset};
spec(<<"hsetnx">>) -> {first, nsync_cmd_hash, hsetnx};
spec(<<"hdel">>) -> {first, nsync_cmd_hash, hdel};
spec(<<"hincrby">>) -> {first, nsync_cmd_hash, hincrby};
spec(<<"hincrbyfloat">>) -> {first, nsync_cmd_hash, hincrbyfloat};
spec(<<"hpexpireat">>) -> {first, nsync_cmd_hash, hpexpireat};
spec(<<"hexpireat">>) -> {first, nsync_cmd_hash, hexpireat};
spec(<<"hpexpire">>) -> {first, nsync_cmd_hash, hpexpire};
spec(<<"hexpire">>) -> {first, nsync_cmd_hash, hexpire};
spec(<<"hpersist">>) -> {first, nsync_cmd_hash, hpersist};
spec(<<"hsetex">>) -> {first, nsync_cmd_hash, hsetex};
spec(<<"hgetex">>) -> {first, nsync_cmd_hash, hgetex};
spec(<<"hgetdel">>) -> {first, nsync_cmd_hash, hgetdel};
%% streams
spec(<<"xadd">>) -> {first, nsync_cmd_stream, xadd};
spec(<<"xdel">>) -> {first, nsync_cmd_stream, xdel};
spec(<<"xtrim">>) -> {first, nsync_cmd_stream, xtrim};
spec(<<"xsetid">>) -> {first, nsync_cmd_stream, xsetid};
spec(<<"xgroup">>) -> {xgroup, nsync_cmd_stream, xgroup};
spec(<<"xack">>) -> {first, nsync_cmd_stream, xack};
spec(<<"xclaim">>) -> {first, nsync_cmd_stream, xclaim};
spec(<<"xautoclaim">>) -> {unhandled, first};
spec(<<"xreadgroup">>) -> {unhandled, none};
%% HyperLogLog and scripts run verbatim (pre-5.0 masters)
spec(<<"pfadd">>) -> {unhandled, first};
spec(<<"pfmerge">>) -> {unhandled, all};
spec(<<"pfcount">>) -> {unhandled, all};
spec(<<"pfdebug">>) -> {unhandled, second};
spec(<<"eval">>) -> {unhandled, eval};
spec(<<"evalsha">>) -> {unhandled, eval};
spec(<<"eval_ro">>) -> ignore;
spec(<<"evalsha_ro">>) -> ignore;
spec(<<"fcall">>) -> {unhandled, eval};
%% no key changes
spec(<<"select">>) -> ignore;
spec(<<"multi">>) -> ignore;
spec(<<"exec">>) -> ignore;
spec(<<"discard">>) -> ignore;
spec(<<"ping">>) -> ignore;
spec(<<"publish">>) -> ignore;
spec(<<"spublish">>) -> ignore;
spec(<<"replconf">>) -> ignore;
spec(<<"function">>) -> ignore;
spec(<<"script">>) -> ignore;
spec(_) -> undefined.

%% @doc The keys of a command, by key spec.
-spec keys(keyspec(), [binary()]) -> [binary()].
keys(none, _) -> [];
keys(first, [K | _]) -> [K];
keys(two, [A, B | _]) -> [A, B];
keys(all, Args) -> Args;
keys(pairs, Args) -> odd(Args);
keys(all_but_last, []) -> [];
keys(all_but_last, Args) -> lists:droplast(Args);
keys(second, [_, K | _]) -> [K];
keys(second, _) -> [];
keys(from_second, [_ | Ks]) -> Ks;
keys({numkeys, Skip}, Args) ->
    [N | Rest] = lists:nthtail(Skip, Args),
    lists:sublist(Rest, to_int(N));
keys(dest_numkeys, [D, N | Rest]) -> [D | lists:sublist(Rest, to_int(N))];
keys(sort, [K | Rest]) -> [K | sort_store(Rest)];
keys(eval, [_Script, N | Rest]) -> lists:sublist(Rest, to_int(N));
keys(xgroup, [_Sub, K | _]) -> [K];
keys(georadius, Args) -> store_args(Args);
keys(_, _) -> [].

odd([K, _ | Rest]) -> [K | odd(Rest)];
odd(_) -> [].

sort_store([O, D | Rest]) ->
    case lower(O) of
        <<"store">> -> [D];
        _ -> sort_store([D | Rest])
    end;
sort_store(_) -> [].

store_args([O, D | Rest]) ->
    case lower(O) of
        S when S =:= <<"store">>; S =:= <<"storedist">> -> [D | store_args(Rest)];
        _ -> store_args([D | Rest])
    end;
store_args(_) -> [].

%% @doc Runs the handler of a table entry over `Store'.
-spec run({keyspec(), module(), atom()}, [binary()], store(), integer()) ->
          {ok, store()} | unhandled.
run({_KeySpec, Mod, Fun}, Args, Store, Now) ->
    Mod:Fun(Args, Store, Now).

%% @doc Normalizes handler output: removes empty collections (Redis deletes a
%% key whose list, set, zset or hash becomes empty) and field expiries of
%% fields that no longer exist.
-spec finish(binary(), entry()) -> entry() | delete.
finish(_K, {[], _, _}) -> delete;
finish(_K, {M, _, _}) when is_map(M), map_size(M) =:= 0 -> delete;
finish(_K, {M, E, F}) when is_map(M), map_size(F) > 0 ->
    {M, E, maps:filter(fun(Fd, _) -> is_map_key(Fd, M) end, F)};
finish(_K, {M, E, F}) when is_map(M) -> {M, E, F};
finish(_K, {V, E, _}) -> {V, E, #{}}.

%%% ---------------------------------------------------------------- helpers

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

%% @doc The value of `K' in `S', or `none'.
-spec value(binary(), store()) -> term().
value(K, S) ->
    case S of
        #{K := {V, _, _}} -> V;
        _ -> none
    end.

%% @doc The entry of `K' in `S', or `none'.
-spec entry(binary(), store()) -> entry() | none.
entry(K, S) -> maps:get(K, S, none).

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

%% @doc Parses a Redis integer argument.
-spec to_int(binary()) -> integer().
to_int(B) -> binary_to_integer(B).

%% @doc Formats an integer as Redis does.
-spec int_bin(integer()) -> binary().
int_bin(I) -> integer_to_binary(I).

%% @doc Parses a Redis double (strtod-like: "1e3", "+inf", "-inf", ".5",
%% "3."). Infinities are the atoms `inf' and `'-inf''.
-spec parse_float(binary()) -> float() | inf | '-inf'.
parse_float(B0) ->
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

%% @doc Parses an expiry option (`EX'/`PX'/`EXAT'/`PXAT', lowercase) and its
%% argument into an absolute time in ms.
-spec parse_expire_opt(binary(), binary(), integer()) -> integer().
parse_expire_opt(<<"ex">>, A, Now) -> Now + to_int(A) * 1000;
parse_expire_opt(<<"px">>, A, Now) -> Now + to_int(A);
parse_expire_opt(<<"exat">>, A, _) -> to_int(A) * 1000;
parse_expire_opt(<<"pxat">>, A, _) -> to_int(A).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

keys_test_() ->
    [?_assertEqual([<<"a">>, <<"c">>], keys(pairs, [<<"a">>, <<"1">>, <<"c">>, <<"2">>])),
     ?_assertEqual([<<"a">>, <<"b">>], keys({numkeys, 0}, [<<"2">>, <<"a">>, <<"b">>, <<"LEFT">>])),
     ?_assertEqual([<<"a">>], keys({numkeys, 1}, [<<"0">>, <<"1">>, <<"a">>, <<"LEFT">>])),
     ?_assertEqual([<<"d">>, <<"a">>, <<"b">>],
                   keys(dest_numkeys, [<<"d">>, <<"2">>, <<"a">>, <<"b">>, <<"WEIGHTS">>, <<"1">>, <<"2">>])),
     ?_assertEqual([<<"k">>, <<"d">>], keys(sort, [<<"k">>, <<"ALPHA">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual([<<"k">>], keys(sort, [<<"k">>, <<"ALPHA">>])),
     ?_assertEqual([<<"a">>, <<"b">>], keys(all_but_last, [<<"a">>, <<"b">>, <<"0">>])),
     ?_assertEqual([<<"s">>], keys(xgroup, [<<"CREATE">>, <<"s">>, <<"g">>, <<"$">>])),
     ?_assertEqual([<<"d">>], keys(georadius, [<<"k">>, <<"1">>, <<"2">>, <<"5">>, <<"km">>, <<"STORE">>, <<"d">>]))].

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
     ?_assertError(_, parse_float(<<"">>))].

format_float_test_() ->
    [?_assertEqual(<<"10.6">>, format_float(10.5 + 0.1)),
     ?_assertEqual(<<"3">>, format_float(3.0)),
     ?_assertEqual(<<"-0.25">>, format_float(-0.25)),
     ?_assertEqual(<<"100000000000000000000">>, format_float(1.0e20)),
     ?_assertEqual(<<"0.0001">>, format_float(1.0e-4)),
     ?_assertEqual(<<"0">>, format_float(0.0))].

finish_test_() ->
    [?_assertEqual(delete, finish(<<"k">>, {[], undefined, #{}})),
     ?_assertEqual(delete, finish(<<"k">>, {#{}, 5, #{}})),
     ?_assertEqual({#{<<"a">> => <<"1">>}, undefined, #{<<"a">> => 9}},
                   finish(<<"k">>, {#{<<"a">> => <<"1">>}, undefined, #{<<"a">> => 9, <<"b">> => 3}})),
     ?_assertEqual({<<>>, 7, #{}}, finish(<<"k">>, {<<>>, 7, #{}}))].
-endif.
