%%% @doc Mirror handlers for hash commands, including field expiry (Redis
%%% 7.4+) and the Redis 8 HSETEX/HGETEX/HGETDEL (see `nsync_cmd'). A hash is
%%% `#{Field => Value}'; field expiries live in the entry's third element.
-module(nsync_cmd_hash).

-export([hset/3, hsetnx/3, hdel/3, hincrby/3, hincrbyfloat/3, hpexpireat/3,
         hexpireat/3, hpexpire/3, hexpire/3, hpersist/3, hsetex/3, hgetex/3,
         hgetdel/3]).

-import(nsync_cmd_lib, [lower/1, to_int/1, expire_ok/3]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().

get(K, S) ->
    case S of
        #{K := {M, E, F}} -> {M, E, F};
        _ -> {#{}, undefined, #{}}
    end.

%% @doc HSET/HMSET key f v [f v ...] (a set field loses its TTL).
-spec hset([binary()], store(), integer()) -> result().
hset([K | FVs], S, _) ->
    {M, E, F} = get(K, S),
    {M2, F2} = set_fields(FVs, M, F),
    {ok, S#{K => {M2, E, F2}}}.

set_fields([Fd, V | Rest], M, F) -> set_fields(Rest, M#{Fd => V}, maps:remove(Fd, F));
set_fields([], M, F) -> {M, F}.

%% @doc HSETNX key field value.
-spec hsetnx([binary()], store(), integer()) -> result().
hsetnx([K, Fd, V], S, N) ->
    {M, _, _} = get(K, S),
    case is_map_key(Fd, M) of
        true -> {ok, S};
        false -> hset([K, Fd, V], S, N)
    end.

%% @doc HDEL key field [field ...] (also how field expiry is propagated).
-spec hdel([binary()], store(), integer()) -> result().
hdel([K | Fds], S, _) ->
    case S of
        #{K := {M, E, F}} -> {ok, S#{K := {maps:without(Fds, M), E, maps:without(Fds, F)}}};
        _ -> {ok, S}
    end.

%% @doc HINCRBY key field n (keeps the field TTL).
-spec hincrby([binary()], store(), integer()) -> result().
hincrby([K, Fd, N], S, _) ->
    {M, E, F} = get(K, S),
    Old = to_int(maps:get(Fd, M, <<"0">>)),
    {ok, S#{K => {M#{Fd => nsync_cmd_lib:int_bin(Old + to_int(N))}, E, F}}}.

%% @doc HINCRBYFLOAT key field x (masters propagate HSET with the result).
-spec hincrbyfloat([binary()], store(), integer()) -> result().
hincrbyfloat([K, Fd, X], S, _) ->
    {M, E, F} = get(K, S),
    Old = fnum(maps:get(Fd, M, <<"0">>)),
    {ok, S#{K => {M#{Fd => nsync_cmd_lib:format_float(Old + fnum(X))}, E, F}}}.

fnum(B) ->
    case nsync_cmd_lib:parse_float(B) of
        V when is_float(V) -> V
    end.

%% @doc HPEXPIREAT key unix-ms [NX|XX|GT|LT] FIELDS n field [field ...].
-spec hpexpireat([binary()], store(), integer()) -> result().
hpexpireat([K, T | Rest], S, _) -> field_expire(K, to_int(T), Rest, S).
%% @doc HEXPIREAT key unix-s [NX|XX|GT|LT] FIELDS n field ....
-spec hexpireat([binary()], store(), integer()) -> result().
hexpireat([K, T | Rest], S, _) -> field_expire(K, to_int(T) * 1000, Rest, S).
%% @doc HPEXPIRE key ms [NX|XX|GT|LT] FIELDS n field ....
-spec hpexpire([binary()], store(), integer()) -> result().
hpexpire([K, T | Rest], S, Now) -> field_expire(K, Now + to_int(T), Rest, S).
%% @doc HEXPIRE key s [NX|XX|GT|LT] FIELDS n field ....
-spec hexpire([binary()], store(), integer()) -> result().
hexpire([K, T | Rest], S, Now) -> field_expire(K, Now + to_int(T) * 1000, Rest, S).

field_expire(K, At, Rest, S) ->
    {Opts, Fds} = fields(Rest),
    case S of
        #{K := {M, E, F}} ->
            F2 = lists:foldl(
                   fun(Fd, Acc) ->
                           case is_map_key(Fd, M) andalso
                               expire_ok([lower(O) || O <- Opts], maps:get(Fd, Acc, undefined), At) of
                               true -> Acc#{Fd => At};
                               false -> Acc
                           end
                   end, F, Fds),
            {ok, S#{K := {M, E, F2}}};
        _ -> {ok, S}
    end.

%% Splits `[Opt ...] FIELDS n f ...' into the options and the fields.
fields(Args) ->
    {Opts, [_Fields, N | Fds]} = lists:splitwith(fun(A) -> lower(A) =/= <<"fields">> end, Args),
    {Opts, lists:sublist(Fds, to_int(N))}.

%% @doc HPERSIST key FIELDS n field [field ...].
-spec hpersist([binary()], store(), integer()) -> result().
hpersist([K | Rest], S, _) ->
    {_, Fds} = fields(Rest),
    case S of
        #{K := {M, E, F}} -> {ok, S#{K := {M, E, maps:without(Fds, F)}}};
        _ -> {ok, S}
    end.

%% @doc HSETEX key [NX|XX] [FNX|FXX] [EX|PX|EXAT|PXAT t | KEEPTTL] FIELDS n f v ...
%% (NX/XX, on the key: Valkey 9's form).
-spec hsetex([binary()], store(), integer()) -> result().
hsetex([K | Rest], S, Now) ->
    {Opts0, [_Fields, N0 | FVs0]} =
        lists:splitwith(fun(A) -> lower(A) =/= <<"fields">> end, Rest),
    FVs = lists:sublist(FVs0, 2 * to_int(N0)),
    Fds = nsync_cmd_lib:firsts(FVs),
    {Cond, Ttl} = hsetex_opts([lower(O) || O <- Opts0], Now, [], none),
    {M, E, F} = get(K, S),
    Ok = lists:all(fun(none) -> true;
                      (nx) -> not is_map_key(K, S);
                      (xx) -> is_map_key(K, S);
                      (fnx) -> not lists:any(fun(Fd) -> is_map_key(Fd, M) end, Fds);
                      (fxx) -> lists:all(fun(Fd) -> is_map_key(Fd, M) end, Fds)
                   end, Cond),
    case Ok of
        false -> {ok, S};
        true ->
            {M2, F1} = set_fields(FVs, M, F),
            F2 = case Ttl of
                     keepttl -> maps:merge(F1, maps:with(Fds, F));
                     none -> F1;
                     At -> maps:merge(F1, maps:from_list([{Fd, At} || Fd <- Fds]))
                 end,
            {ok, S#{K => {M2, E, F2}}}
    end.

hsetex_opts([], _Now, C, T) -> {C, T};
hsetex_opts([Cond | R], Now, C, T) when Cond =:= <<"nx">>; Cond =:= <<"xx">>;
                                        Cond =:= <<"fnx">>; Cond =:= <<"fxx">> ->
    hsetex_opts(R, Now, [binary_to_atom(Cond) | C], T);
hsetex_opts([<<"keepttl">> | R], Now, C, _) -> hsetex_opts(R, Now, C, keepttl);
hsetex_opts([O, A | R], Now, C, _) -> hsetex_opts(R, Now, C, nsync_cmd_lib:parse_expire_opt(O, A, Now)).

%% @doc HGETEX key [EX|PX|EXAT|PXAT t | PERSIST] FIELDS n field ....
-spec hgetex([binary()], store(), integer()) -> result().
hgetex([K | Rest], S, Now) ->
    {Opts, Fds} = fields(Rest),
    case {S, [lower(O) || O <- Opts]} of
        {#{K := _}, []} -> {ok, S};
        {#{K := {M, E, F}}, [<<"persist">>]} -> {ok, S#{K := {M, E, maps:without(Fds, F)}}};
        {#{K := {M, E, F}}, [O, _]} ->
            At = nsync_cmd_lib:parse_expire_opt(O, lists:last(Opts), Now),
            Present = [Fd || Fd <- Fds, is_map_key(Fd, M)],
            {ok, S#{K := {M, E, maps:merge(F, maps:from_list([{Fd, At} || Fd <- Present]))}}};
        _ -> {ok, S}
    end.

%% @doc HGETDEL key FIELDS n field ....
-spec hgetdel([binary()], store(), integer()) -> result().
hgetdel([K | Rest], S, Now) ->
    {_, Fds} = fields(Rest),
    hdel([K | Fds], S, Now).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

h(M, F) -> #{<<"h">> => {M, undefined, F}}.
run(Fn, Args, S) -> {ok, R} = ?MODULE:Fn([<<"h">> | Args], S, 1000), R.
ab() -> h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{<<"a">> => 5000}).

hset_test_() ->
    [?_assertEqual(h(#{<<"a">> => <<"9">>, <<"b">> => <<"2">>, <<"c">> => <<"3">>}, #{}),
                   run(hset, [<<"a">>, <<"9">>, <<"c">>, <<"3">>], ab())),
     ?_assertEqual(h(#{<<"x">> => <<"1">>}, #{}), run(hset, [<<"x">>, <<"1">>], #{})),
     ?_assertEqual(ab(), run(hsetnx, [<<"a">>, <<"9">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>, <<"c">> => <<"3">>}, #{<<"a">> => 5000}),
                   run(hsetnx, [<<"c">>, <<"3">>], ab())),
     ?_assertEqual(h(#{<<"b">> => <<"2">>}, #{}), run(hdel, [<<"a">>, <<"zz">>], ab())),
     %% deleting the last field empties the hash (deleted by finish/2)
     ?_assertEqual(h(#{}, #{}), run(hdel, [<<"a">>, <<"b">>], ab()))].

hincr_test_() ->
    [?_assertEqual(h(#{<<"a">> => <<"4">>, <<"b">> => <<"2">>}, #{<<"a">> => 5000}), run(hincrby, [<<"a">>, <<"3">>], ab())),
     ?_assertEqual(h(#{<<"n">> => <<"-3">>}, #{}), run(hincrby, [<<"n">>, <<"-3">>], #{})),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2.5">>}, #{<<"a">> => 5000}), run(hincrbyfloat, [<<"b">>, <<"0.5">>], ab()))].

field_expire_test_() ->
    [?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{<<"a">> => 5000, <<"b">> => 7000}),
                   run(hpexpireat, [<<"7000">>, <<"FIELDS">>, <<"2">>, <<"b">>, <<"nope">>], ab())),
     ?_assertEqual(ab(), run(hpexpireat, [<<"7000">>, <<"NX">>, <<"FIELDS">>, <<"1">>, <<"a">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{<<"a">> => 7000}),
                   run(hpexpireat, [<<"7000">>, <<"GT">>, <<"FIELDS">>, <<"2">>, <<"a">>, <<"b">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{<<"a">> => 3000, <<"b">> => 3000}),
                   run(hexpire, [<<"2">>, <<"FIELDS">>, <<"2">>, <<"a">>, <<"b">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{}),
                   run(hpersist, [<<"FIELDS">>, <<"1">>, <<"a">>], ab())),
     ?_assertEqual(#{}, run(hpexpireat, [<<"7000">>, <<"FIELDS">>, <<"1">>, <<"a">>], #{}))].

redis8_test_() ->
    [?_assertEqual(h(#{<<"a">> => <<"x">>, <<"b">> => <<"2">>}, #{<<"a">> => 9000}),
                   run(hsetex, [<<"PXAT">>, <<"9000">>, <<"FIELDS">>, <<"1">>, <<"a">>, <<"x">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"x">>, <<"b">> => <<"2">>}, #{<<"a">> => 5000}),
                   run(hsetex, [<<"KEEPTTL">>, <<"FIELDS">>, <<"1">>, <<"a">>, <<"x">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"x">>, <<"b">> => <<"2">>}, #{}),
                   run(hsetex, [<<"FIELDS">>, <<"1">>, <<"a">>, <<"x">>], ab())),
     ?_assertEqual(ab(), run(hsetex, [<<"FNX">>, <<"FIELDS">>, <<"2">>, <<"a">>, <<"x">>, <<"c">>, <<"y">>], ab())),
     ?_assertEqual(ab(), run(hsetex, [<<"FXX">>, <<"EX">>, <<"1">>, <<"FIELDS">>, <<"1">>, <<"c">>, <<"y">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{<<"a">> => 5000, <<"b">> => 3000}),
                   run(hgetex, [<<"EX">>, <<"2">>, <<"FIELDS">>, <<"2">>, <<"b">>, <<"c">>], ab())),
     ?_assertEqual(h(#{<<"a">> => <<"1">>, <<"b">> => <<"2">>}, #{}),
                   run(hgetex, [<<"PERSIST">>, <<"FIELDS">>, <<"1">>, <<"a">>], ab())),
     ?_assertEqual(h(#{<<"b">> => <<"2">>}, #{}), run(hgetdel, [<<"FIELDS">>, <<"1">>, <<"a">>], ab())),
     %% Valkey's key conditions
     ?_assertEqual(ab(), run(hsetex, [<<"NX">>, <<"FIELDS">>, <<"1">>, <<"c">>, <<"y">>], ab())),
     ?_assertEqual(h(#{<<"c">> => <<"y">>}, #{<<"c">> => 9000}),
                   run(hsetex, [<<"NX">>, <<"PXAT">>, <<"9000">>, <<"FIELDS">>, <<"1">>, <<"c">>, <<"y">>], #{})),
     ?_assertEqual(#{}, run(hsetex, [<<"XX">>, <<"FIELDS">>, <<"1">>, <<"c">>, <<"y">>], #{}))].
-endif.
