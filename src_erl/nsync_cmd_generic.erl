%%% @doc Mirror handlers for generic key commands: DEL/UNLINK, RENAME,
%%% COPY (same db), expiry, PERSIST, SORT ... STORE (see `nsync_cmd').
-module(nsync_cmd_generic).

-export([del/3, rename/3, renamenx/3, copy/3, expire/3, pexpire/3,
         expireat/3, pexpireat/3, persist/3, sort/3, restore/3]).

-import(nsync_cmd_lib, [lower/1, to_int/1, value/2, expire_ok/3, score_key/1, parse_float/1]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().

%% @doc DEL/UNLINK key [key ...] (also GETDEL key).
-spec del([binary()], store(), integer()) -> result().
del(Keys, S, _) -> {ok, maps:without(Keys, S)}.

%% @doc RENAME src dst (value and expiries move; onto itself: no change).
-spec rename([binary()], store(), integer()) -> result().
rename([Src, Src], S, _) -> {ok, S};
rename([Src, Dst], S, _) ->
    case S of
        #{Src := E} -> {ok, (maps:remove(Src, S))#{Dst => E}};
        _ -> {ok, S}
    end.

%% @doc RENAMENX src dst.
-spec renamenx([binary()], store(), integer()) -> result().
renamenx([Src, Dst], S, Now) ->
    case is_map_key(Dst, S) of
        true -> {ok, S};
        false -> rename([Src, Dst], S, Now)
    end.

%% @doc COPY src dst [REPLACE] (the DB option is handled by the mirror).
-spec copy([binary()], store(), integer()) -> result().
copy([Src, Src | _], S, _) -> {ok, S};
copy([Src, Dst | Opts], S, _) ->
    Replace = lists:member(<<"replace">>, [lower(O) || O <- Opts]),
    case S of
        #{Dst := _} when not Replace -> {ok, S};
        #{Src := E} -> {ok, S#{Dst => E}};
        _ -> {ok, S}
    end.

%% @doc RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]:
%% the payload is decoded by the NIF (an undecodable one raises, so the key
%% is dropped as unhandled). The master propagates only a RESTORE that
%% succeeded; 7.0+ masters make the TTL absolute (ABSTTL), older ones send
%% it relative. A TTL of 0 means no expiry.
-spec restore([binary()], store(), integer()) -> result().
restore([K, Ttl, Payload | Opts], S, Now) ->
    At = case {to_int(Ttl), lists:member(<<"absttl">>, [lower(O) || O <- Opts])} of
             {0, _} -> undefined;
             {T, true} -> T;
             {T, false} -> Now + T
         end,
    case nsync_nif:decode_dump(Payload) of
        {ok, expired} -> {ok, maps:remove(K, S)};
        {ok, Value, FieldExpires} -> {ok, S#{K => {Value, At, maps:from_list(FieldExpires)}}};
        {error, Reason} -> erlang:error({bad_dump_payload, Reason})
    end.

%% @doc EXPIRE key seconds [NX|XX|GT|LT] (relative: local clock).
-spec expire([binary()], store(), integer()) -> result().
expire([K, T | Opts], S, Now) -> set_expire(K, Now + to_int(T) * 1000, Opts, S).
%% @doc PEXPIRE key ms [NX|XX|GT|LT].
-spec pexpire([binary()], store(), integer()) -> result().
pexpire([K, T | Opts], S, Now) -> set_expire(K, Now + to_int(T), Opts, S).
%% @doc EXPIREAT key unix-seconds [NX|XX|GT|LT].
-spec expireat([binary()], store(), integer()) -> result().
expireat([K, T | Opts], S, _) -> set_expire(K, to_int(T) * 1000, Opts, S).
%% @doc PEXPIREAT key unix-ms [NX|XX|GT|LT] (the form 7.0+ masters send).
-spec pexpireat([binary()], store(), integer()) -> result().
pexpireat([K, T | Opts], S, _) -> set_expire(K, to_int(T), Opts, S).

set_expire(K, At, Opts, S) ->
    case S of
        #{K := {V, Old, F}} ->
            case expire_ok([lower(O) || O <- Opts], Old, At) of
                true -> {ok, S#{K := {V, At, F}}};
                false -> {ok, S}
            end;
        _ -> {ok, S}
    end.

%% @doc PERSIST key.
-spec persist([binary()], store(), integer()) -> result().
persist([K], S, _) ->
    case S of
        #{K := {V, _, F}} -> {ok, S#{K := {V, undefined, F}}};
        _ -> {ok, S}
    end.

%% @doc SORT key [BY nosort] [LIMIT off count] [ASC|DESC] [ALPHA] STORE dst.
%% BY/GET patterns read other keys: unhandled.
-spec sort([binary()], store(), integer()) -> result().
sort([K | Opts], S, _) ->
    case sort_opts(Opts, #{}) of
        unhandled -> unhandled;
        #{store := Dst} = O ->
            case limit(sort_elems(value(K, S), O), O) of
                [] -> {ok, maps:remove(Dst, S)};
                Elems -> {ok, nsync_cmd_lib:put_new(Dst, Elems, S)}
            end;
        _ -> {ok, S}
    end.

sort_opts([], O) -> O;
sort_opts([A | Rest], O) ->
    case {lower(A), Rest} of
        {<<"by">>, [P | R]} ->
            case binary:match(P, <<"*">>) of
                nomatch -> sort_opts(R, O#{nosort => true});
                _ -> unhandled
            end;
        {<<"limit">>, [Off, Cnt | R]} -> sort_opts(R, O#{limit => {to_int(Off), to_int(Cnt)}});
        {<<"get">>, _} -> unhandled;
        {<<"asc">>, R} -> sort_opts(R, O);
        {<<"desc">>, R} -> sort_opts(R, O#{desc => true});
        {<<"alpha">>, R} -> sort_opts(R, O#{alpha => true});
        {<<"store">>, [D | R]} -> sort_opts(R, O#{store => D})
    end.

sort_elems(none, _) -> [];
sort_elems(V, O) when is_list(V) ->
    {Kind, Elems} = case V of
                        [{_, _} | _] -> {zset, [M || {_, M} <- V]};
                        _ -> {list_or_set, V}
                    end,
    case maps:get(nosort, O, false) of
        %% BY nosort keeps list and zset order; for a set with STORE Redis
        %% sorts ALPHA, which is the ordset's own order
        true when Kind =:= zset; Kind =:= list_or_set ->
            case maps:get(desc, O, false) of true -> lists:reverse(Elems); false -> Elems end;
        false ->
            Alpha = maps:get(alpha, O, false),
            Dec = [{sort_key(E, Alpha), E} || E <- Elems],
            Sorted = [E || {_, E} <- lists:sort(Dec)],
            case maps:get(desc, O, false) of true -> lists:reverse(Sorted); false -> Sorted end
    end.

sort_key(E, true) -> E;
sort_key(E, false) -> {score_key(parse_float(E)), E}.

limit(Elems, #{limit := {Off, Cnt}}) ->
    Len = length(Elems),
    Start = max(Off, 0),
    Count = if Cnt < 0 -> Len; true -> Cnt end,
    case Start >= Len of
        true -> [];
        false -> lists:sublist(Elems, Start + 1, Count)
    end;
limit(Elems, _) -> Elems.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

-define(NOW, 1000000).
s(L) -> maps:from_list([{K, {V, E, #{}}} || {K, V, E} <- L]).
run(F, Args, S) -> {ok, R} = ?MODULE:F(Args, S, ?NOW), R.

del_test_() ->
    E = s([{<<"a">>, <<"1">>, undefined}, {<<"b">>, <<"2">>, undefined}]),
    [?_assertEqual(#{}, run(del, [<<"a">>, <<"b">>, <<"c">>], E))].

rename_test_() ->
    E = s([{<<"a">>, <<"1">>, 50}, {<<"b">>, <<"2">>, undefined}]),
    [?_assertEqual(s([{<<"b">>, <<"1">>, 50}]), run(rename, [<<"a">>, <<"b">>], E)),
     %% RENAME onto itself changes nothing (and keeps the TTL)
     ?_assertEqual(E, run(rename, [<<"a">>, <<"a">>], E)),
     ?_assertEqual(E, run(renamenx, [<<"a">>, <<"b">>], E)),
     ?_assertEqual(s([{<<"c">>, <<"1">>, 50}, {<<"b">>, <<"2">>, undefined}]),
                   run(renamenx, [<<"a">>, <<"c">>], E))].

copy_test_() ->
    E = s([{<<"a">>, [<<"x">>], 50}, {<<"b">>, <<"2">>, undefined}]),
    [%% COPY onto an existing key without REPLACE: no change
     ?_assertEqual(E, run(copy, [<<"a">>, <<"b">>], E)),
     ?_assertEqual(E#{<<"b">> => {[<<"x">>], 50, #{}}}, run(copy, [<<"a">>, <<"b">>, <<"REPLACE">>], E)),
     ?_assertEqual(E#{<<"c">> => {[<<"x">>], 50, #{}}}, run(copy, [<<"a">>, <<"c">>], E)),
     ?_assertEqual(E, run(copy, [<<"zz">>, <<"c">>], E))].

%% DUMP of "hello" on Redis 7.0.15 (decoded by the NIF).
-define(HELLO, <<0, 5, "hello", 10, 0, "cr", 16#df, "ve4 ", 10>>).

restore_test_() ->
    E = s([{<<"a">>, <<"old">>, 5000}]),
    [?_assertEqual(s([{<<"a">>, <<"hello">>, undefined}]),
                   run(restore, [<<"a">>, <<"0">>, ?HELLO, <<"REPLACE">>], E)),
     %% relative TTL (masters before 7.0) and ABSTTL (7.0+)
     ?_assertEqual(s([{<<"a">>, <<"old">>, 5000}, {<<"b">>, <<"hello">>, ?NOW + 300}]),
                   run(restore, [<<"b">>, <<"300">>, ?HELLO], E)),
     ?_assertEqual(s([{<<"a">>, <<"hello">>, 77}]),
                   run(restore, [<<"a">>, <<"77">>, ?HELLO, <<"REPLACE">>, <<"ABSTTL">>,
                                 <<"IDLETIME">>, <<"5">>], E)),
     %% a corrupt payload raises: the mirror drops the key as unhandled
     ?_assertError({bad_dump_payload, _}, run(restore, [<<"a">>, <<"0">>, <<"junk">>, <<"REPLACE">>], E)),
     ?_assertError(_, run(restore, [<<"a">>, <<"0">>, <<(?HELLO)/binary, 0>>], E))].

expire_test_() ->
    E = s([{<<"a">>, <<"1">>, 5000}, {<<"b">>, <<"2">>, undefined}]),
    X = fun(Cmd, Args) -> nsync_cmd_lib:exp_of(hd(Args), run(Cmd, Args, E)) end,
    [?_assertEqual(?NOW + 10000, X(expire, [<<"b">>, <<"10">>])),
     ?_assertEqual(?NOW + 10, X(pexpire, [<<"b">>, <<"10">>])),
     ?_assertEqual(10000, X(expireat, [<<"b">>, <<"10">>])),
     ?_assertEqual(10, X(pexpireat, [<<"a">>, <<"10">>])),
     ?_assertEqual(5000, X(pexpireat, [<<"a">>, <<"10">>, <<"NX">>])),
     ?_assertEqual(10, X(pexpireat, [<<"b">>, <<"10">>, <<"nx">>])),
     ?_assertEqual(undefined, X(pexpireat, [<<"b">>, <<"10">>, <<"XX">>])),
     ?_assertEqual(6000, X(pexpireat, [<<"a">>, <<"6000">>, <<"GT">>])),
     ?_assertEqual(5000, X(pexpireat, [<<"a">>, <<"4000">>, <<"GT">>])),
     %% GT on a key without TTL: no TTL is infinite, never smaller
     ?_assertEqual(undefined, X(pexpireat, [<<"b">>, <<"4000">>, <<"GT">>])),
     %% LT on a key without TTL sets it
     ?_assertEqual(4000, X(pexpireat, [<<"b">>, <<"4000">>, <<"LT">>])),
     ?_assertEqual(5000, X(pexpireat, [<<"a">>, <<"7000">>, <<"LT">>])),
     ?_assertEqual(4000, X(pexpireat, [<<"a">>, <<"4000">>, <<"XX">>, <<"LT">>])),
     ?_assertEqual(#{}, run(pexpireat, [<<"x">>, <<"1">>], #{})),
     ?_assertEqual(undefined, X(persist, [<<"a">>]))].

sort_test_() ->
    E = s([{<<"l">>, [<<"3">>, <<"10">>, <<"2">>], undefined},
           {<<"z">>, [{1.0, <<"b">>}, {2.0, <<"a">>}], undefined},
           {<<"d">>, <<"old">>, 100}]),
    V = fun(Args) -> nsync_cmd_lib:value(<<"d">>, run(sort, Args, E)) end,
    [?_assertEqual([<<"2">>, <<"3">>, <<"10">>], V([<<"l">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual([<<"10">>, <<"2">>, <<"3">>], V([<<"l">>, <<"ALPHA">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual([<<"10">>, <<"3">>], V([<<"l">>, <<"DESC">>, <<"LIMIT">>, <<"0">>, <<"2">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual([<<"b">>, <<"a">>], V([<<"z">>, <<"BY">>, <<"nosort">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual(none, V([<<"missing">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual(undefined, nsync_cmd_lib:exp_of(<<"d">>, run(sort, [<<"l">>, <<"STORE">>, <<"d">>], E))),
     ?_assertEqual(unhandled, sort([<<"l">>, <<"BY">>, <<"w_*">>, <<"STORE">>, <<"d">>], E, 0)),
     ?_assertEqual(unhandled, sort([<<"l">>, <<"GET">>, <<"#">>, <<"STORE">>, <<"d">>], E, 0))].
-endif.
