%%% @doc Seeded random write workload against a real master, and a
%%% comparison of the master's dataset with an nsync mirror.
%%%
%%% `run/2' issues writes across ~90 distinct write commands and their
%%% options (strings, keys, lists, sets, zsets, hashes, streams, EVAL
%%% scripts, MULTI/EXEC with SELECT inside, short expiries that fire during
%%% the run, collections large enough to change encoding, binary keys and
%%% values). In `link' mode everything goes to the master and a replica
%%% (nsync) mirrors it. In `direct' mode each successful command is also
%%% handed, translated the way a 7.0 master propagates it, to a hook (the
%%% test applies it to a local mirror with `nsync_apply:apply_cmd/4').
%%%
%%% `compare/3' reads every key back (SCAN, TYPE, GET/LRANGE/SMEMBERS/ZRANGE
%%% WITHSCORES/HGETALL/XRANGE + XINFO STREAM FULL, PEXPIRETIME or PTTL) and returns the
%%% mismatches with the mirror's tables (only of the keys its `keep' fun
%%% admits, if given: a mirror with a key filter).
-module(nsync_workload).

-export([run/2, compare/3, compare_union/3, may_be_absent/1, pairs/1]).

-define(WORDS, [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>, <<"foo">>, <<"bar">>, <<"10">>,
                <<"-3">>, <<"2.5">>, <<>>, <<0, 1, 2>>, <<"\r\n">>, <<255, 254>>]).

-type opts() :: #{seed => integer(), count => pos_integer(), version => nsync_test_redis:version(),
                  mode => link | direct,
                  hook => fun((non_neg_integer(), [binary()]) -> any()),
                  at => [{pos_integer(), fun(() -> any())}]}.

%%% ------------------------------------------------------------ running

%% The Redis command set a server has: Valkey 8.1 has 7.0's (and more).
generation(valkey) -> '7.0';
generation(V) -> V.

%% @doc Runs the workload on `Server'; returns `#{commands := N, names :=
%% #{Name => Count}}' (commands as the master executed them, EVAL counted as
%% one, MULTI/EXEC and the commands inside each counted).
-spec run(nsync_test_redis:server(), opts()) -> map().
run(Server, Opts0) ->
    Opts1 = maps:merge(#{seed => 1, count => 10000, version => '7.0', mode => link,
                         hook => fun(_, _) -> ok end, at => []}, Opts0),
    #{version := Server0} = Opts1,
    Opts = Opts1#{version := generation(Server0), server => Server0},
    #{seed := Seed, count := Count} = Opts,
    {ok, Sock} = nsync_test_redis:connect(Server),
    Old = rand:export_seed(),
    rand:seed(exsss, {Seed, Seed * 7 + 1, 42}),
    erase_ids(),
    try
        loop(1, Count, Sock, Server, Opts, #{commands => 0, names => #{}})
    after
        gen_tcp:close(Sock),
        case Old of undefined -> ok; _ -> rand:seed(Old) end
    end.

loop(I, Count, _Sock, _Server, _Opts, Stats) when I > Count -> Stats;
loop(I, Count, Sock, Server, Opts, Stats) ->
    [F() || {At, F} <- maps:get(at, Opts), At =:= I],
    Op = op(I, Opts),
    Stats2 = issue(Op, Sock, Server, Opts, Stats),
    loop(I + 1, Count, Sock, Server, Opts, Stats2).

count(Cmds, #{commands := N, names := Names} = S) ->
    Names2 = lists:foldl(fun([C | _], Acc) ->
                                 L = string:lowercase(C),
                                 maps:update_with(L, fun(X) -> X + 1 end, 1, Acc)
                         end, Names, Cmds),
    S#{commands := N + length(Cmds), names := Names2}.

issue({cmd, Args0}, Sock, Server, Opts, Stats) ->
    Args = with_dumps(Args0, Sock),
    [_ = nsync_test_redis:cmd_sock(Sock, C) || C <- prelude(Args, Opts)],
    Reply = nsync_test_redis:cmd_sock(Sock, Args),
    direct(0, Args, Reply, Server, Opts),
    note(Args, Reply),
    count([Args], Stats);
issue({multi, Cmds0}, Sock, Server, Opts, Stats) ->
    Cmds = lists:append([prelude(C, Opts) ++ [with_dumps(C, Sock)] || C <- Cmds0]),
    <<"OK">> = nsync_test_redis:cmd_sock(Sock, [<<"MULTI">>]),
    [nsync_test_redis:cmd_sock(Sock, C) || C <- Cmds],
    Replies = nsync_test_redis:cmd_sock(Sock, [<<"EXEC">>]),
    case is_list(Replies) of
        true ->
            lists:foldl(fun({C, R}, Db) ->
                                case C of
                                    [<<"SELECT">>, D] -> binary_to_integer(D);
                                    _ -> direct(Db, C, R, Server, Opts), note(C, R), Db
                                end
                        end, 0, lists:zip(Cmds, Replies));
        false -> ok
    end,
    count([[<<"multi">>] | Cmds] ++ [[<<"exec">>]], Stats);
issue({eval, Script, Keys, Argv}, Sock, _Server, _Opts, Stats) ->
    _ = nsync_test_redis:cmd_sock(Sock, [<<"EVAL">>, Script, integer_to_binary(length(Keys))
                                         | Keys ++ Argv]),
    count([[<<"eval">>]], Stats).

%% Commands sent before one: Valkey 8.1 creates the consumer of an
%% XREADGROUP that reads nothing, or of an XCLAIM that claims nothing,
%% without propagating it, so that its own replicas lack it; the consumer is
%% created first, in a way it propagates.
prelude([<<"XREADGROUP">>, _, G, C, _, _, _, K, _], #{server := valkey}) ->
    [[<<"XGROUP">>, <<"CREATECONSUMER">>, K, G, C]];
prelude([<<"XCLAIM">>, K, G, C | _], #{server := valkey}) ->
    [[<<"XGROUP">>, <<"CREATECONSUMER">>, K, G, C]];
prelude(_, _) -> [].

%% `{dump, Key}' in a command (RESTORE's payload) becomes the DUMP of Key,
%% taken before the command (and before MULTI); an absent key gives a
%% payload the master refuses (so nothing is propagated).
with_dumps(Args, Sock) ->
    [case A of
         {dump, K} ->
             case nsync_test_redis:cmd_sock(Sock, [<<"DUMP">>, K]) of
                 P when is_binary(P) -> P;
                 _ -> <<"not a dump payload">>
             end;
         _ -> A
     end || A <- Args].

%% remember stream ids the master generated
note([<<"XADD">>, K | _], Id) when is_binary(Id) ->
    put({ids, K}, [Id | lists:sublist(get_ids(K), 30)]);
note(_, _) -> ok.

get_ids(K) -> case get({ids, K}) of undefined -> []; L -> L end.
erase_ids() -> [erase(K) || {{ids, _} = K, _} <- get()].

%%% ------------------------------------------------------------ direct mode

%% Hands the command, as a 7.0 master would propagate it, to the hook.
direct(_Db, _Args, _Reply, _Server, #{mode := link}) -> ok;
direct(_Db, _Args, {error, _}, _Server, _Opts) -> ok;
direct(Db, [Cmd0 | Args] = C, Reply, Server, #{hook := Hook}) ->
    Cmd = string:lowercase(Cmd0),
    Prop = case {Cmd, Args} of
               {<<"spop">>, [SK | _]} ->
                   case Reply of
                       undefined -> [];
                       [] -> [];
                       B when is_binary(B) -> [[<<"srem">>, SK, B]];
                       L when is_list(L) -> [[<<"srem">>, SK | L]]
                   end;
               {<<"geoadd">>, [GK | Rest]} ->
                   %% propagated as ZADD with the geohash scores
                   [[<<"zadd">>, GK | geo_scores(Rest)]];
               {<<"incrbyfloat">>, [IK, _]} -> [[<<"set">>, IK, Reply, <<"KEEPTTL">>]];
               {<<"hincrbyfloat">>, [HK, F, _]} -> [[<<"hset">>, HK, F, Reply]];
               {<<"xadd">>, _} when Reply =:= undefined -> [];
               %% not propagated when they fail (a key filter relies on it)
               {<<"msetnx">>, _} when Reply =:= 0 -> [];
               {<<"renamenx">>, _} when Reply =:= 0 -> [];
               {<<"xadd">>, [XK | _]} ->
                   [[<<"xadd">>, XK | [case A of <<"*">> -> Reply; _ -> A end || A <- tl(Args)]]];
               _ -> [C]
           end,
    [Hook(Db, P) || P <- Prop],
    %% relative expiries: take the master's absolute time
    case relative(Cmd, Args) of
        {true, K} ->
            case nsync_test_redis:cmd(Server, [<<"PEXPIRETIME">>, K]) of
                T when is_integer(T), T > 0 -> Hook(Db, [<<"pexpireat">>, K, integer_to_binary(T)]);
                _ -> ok
            end;
        false -> ok
    end.

%% GEOADD's `lon lat member ...' as ZADD's `score member ...': the 52-bit
%% geohash, 26 bits of each coordinate interleaved (latitude in the even
%% bits), as Redis computes it.
geo_scores([Lon, Lat, M | Rest]) ->
    Cell = fun(X, Min, Max) -> trunc((binary_to_float(X) - Min) / (Max - Min) * (1 bsl 26)) end,
    Spread = fun(V) -> lists:foldl(fun(B, Acc) -> Acc bor (((V bsr B) band 1) bsl (2 * B)) end, 0,
                                   lists:seq(0, 25)) end,
    Score = Spread(Cell(Lat, -85.05112878, 85.05112878))
        bor (Spread(Cell(Lon, -180.0, 180.0)) bsl 1),
    [integer_to_binary(Score), M | geo_scores(Rest)];
geo_scores([]) -> [].

relative(C, [K | Rest]) when C =:= <<"expire">>; C =:= <<"pexpire">>; C =:= <<"setex">>;
                             C =:= <<"psetex">>, Rest =/= [] -> {true, K};
relative(C, [K, _ | Opts]) when C =:= <<"set">> ->
    case [O || O <- Opts, lists:member(string:lowercase(O), [<<"ex">>, <<"px">>])] of
        [] -> false;
        _ -> {true, K}
    end;
relative(<<"getex">>, [K | Opts]) ->
    case [O || O <- Opts, lists:member(string:lowercase(O), [<<"ex">>, <<"px">>])] of
        [] -> false;
        _ -> {true, K}
    end;
relative(_, _) -> false.

%%% ------------------------------------------------------------ generator

pick(L) -> lists:nth(rand:uniform(length(L)), L).
n(N) -> rand:uniform(N).
i(I) -> integer_to_binary(I).
chance(P) -> rand:uniform() < P.

key(P) -> <<P/binary, ":", (i(n(12)))/binary>>.
skey() -> case chance(0.1) of true -> binkey(); false -> key(<<"s">>) end.
binkey() -> <<"b:", (pick([<<0>>, <<"\r\n">>, <<255>>, <<"k y">>, <<1, 2, 3>>]))/binary, (i(n(4)))/binary>>.

val() ->
    case n(10) of
        1 -> crypto:strong_rand_bytes(n(20));
        2 -> binary:copy(<<"x">>, 100 + n(400));
        3 -> i(n(1000) - 500);
        _ -> pick(?WORDS)
    end.
member() -> pick([<<"m", (i(n(25)))/binary>>, pick(?WORDS)]).
score() ->
    case n(12) of
        1 -> <<"+inf">>;
        2 -> <<"-inf">>;
        3 -> <<"1e3">>;
        4 -> <<"-0.5">>;
        5 -> <<"0">>;
        _ -> i(n(100) - 30)
    end.
now_ms() -> erlang:system_time(millisecond).
long_s() -> i(1000 + n(100000)).

%% One workload step.
op(I, #{version := V, mode := Mode}) ->
    case I rem 997 of
        500 -> big();
        _ ->
            case n(100) of
                X when X =< 5, Mode =:= link -> script();
                X when X =< 10 -> {multi, [one(V, Mode) || _ <- lists:seq(1, 1 + n(4))]
                                   ++ select_in_multi(Mode)};
                _ -> {cmd, one(V, Mode)}
            end
    end.

select_in_multi(link) ->
    case chance(0.3) of
        true -> [[<<"SELECT">>, <<"1">>], [<<"SET">>, key(<<"db1">>), val()], [<<"SELECT">>, <<"0">>]];
        false -> []
    end;
select_in_multi(direct) -> [].

big() ->
    case n(4) of
        1 -> {cmd, [<<"RPUSH">>, <<"big:l">> | [val() || _ <- lists:seq(1, 300)]]};
        2 -> {cmd, [<<"SADD">>, <<"big:S">> | [i(N) || N <- lists:seq(1, 600)] ++ [<<"x">>]]};
        3 -> {cmd, [<<"ZADD">>, <<"big:z">> | lists:append([[score(), <<"m", (i(N))/binary>>] || N <- lists:seq(1, 200)])]};
        4 -> {cmd, [<<"HSET">>, <<"big:h">> | lists:append([[<<"f", (i(N))/binary>>, val()] || N <- lists:seq(1, 600)])]}
    end.

script() ->
    K1 = key(<<"n">>), K2 = key(<<"S">>), K3 = key(<<"h">>), K4 = key(<<"s">>),
    case n(4) of
        1 -> {eval, <<"redis.call('incrbyfloat', KEYS[1], ARGV[1]); return redis.call('spop', KEYS[2])">>,
              [K1, K2], [<<"1.5">>]};
        2 -> {eval, <<"redis.call('hincrbyfloat', KEYS[1], 'f1', ARGV[1]); redis.call('expire', KEYS[2], 500); return 1">>,
              [K3, K4], [<<"0.25">>]};
        3 -> {eval, <<"redis.call('set', KEYS[1], ARGV[1], 'px', 200); redis.call('lpush', KEYS[2], ARGV[1]); return 1">>,
              [key(<<"v">>), key(<<"l">>)], [val()]};
        4 -> {eval, <<"redis.call('zadd', KEYS[1], 'incr', 2, 'm1'); redis.call('del', KEYS[2]); return 1">>,
              [key(<<"z">>), K4], []}
    end.

%% One write command.
one(V, Mode) ->
    Gens = [{30, fun str/2}, {10, fun generic/2}, {14, fun list/2}, {9, fun set/2},
            {14, fun zset/2}, {9, fun hash/2}, {8, fun stream/2}, {6, fun vol/2},
            {5, fun hll/2}, {5, fun geo/2}],
    Total = lists:sum([W || {W, _} <- Gens]),
    choose(n(Total), Gens, V, Mode).

choose(X, [{W, F} | _], V, Mode) when X =< W -> F(V, Mode);
choose(X, [{W, _} | Rest], V, Mode) -> choose(X - W, Rest, V, Mode).

%% short expiries: in direct mode only on keys overwritten by SET
vol(_V, _Mode) ->
    K = key(<<"v">>),
    case n(5) of
        1 -> [<<"SET">>, K, val(), <<"PX">>, i(20 + n(2000))];
        2 -> [<<"SETEX">>, K, <<"1">>, val()];
        3 -> [<<"PSETEX">>, K, i(50 + n(1000)), val()];
        4 -> [<<"SET">>, K, val(), <<"PXAT">>, i(now_ms() + n(1500))];
        5 -> [<<"SET">>, K, val()]
    end.

expire_opts('7.0') -> pick([[], [], [<<"NX">>], [<<"XX">>], [<<"GT">>], [<<"LT">>], [<<"XX">>, <<"GT">>]]);
expire_opts(_) -> [].

str(V, _Mode) ->
    K = skey(), N = key(<<"n">>),
    case n(24) of
        1 -> [<<"SET">>, K, val()];
        2 -> [<<"SET">>, K, val() | pick([[<<"NX">>], [<<"XX">>], [<<"GET">>], [<<"XX">>, <<"GET">>],
                                          [<<"EX">>, long_s()], [<<"PX">>, long_s()],
                                          [<<"EXAT">>, i(now_ms() div 1000 + 5000)],
                                          [<<"PXAT">>, i(now_ms() + 5000000)], [<<"KEEPTTL">>],
                                          [<<"XX">>, <<"KEEPTTL">>, <<"GET">>]])];
        3 -> [<<"SETNX">>, K, val()];
        4 -> [<<"SETEX">>, K, long_s(), val()];
        5 -> [<<"PSETEX">>, K, long_s(), val()];
        6 -> [<<"MSET">>, K, val(), skey(), val()];
        7 -> [<<"MSETNX">>, K, val(), skey(), val()];
        8 -> [<<"APPEND">>, K, val()];
        9 -> [<<"SETRANGE">>, K, i(n(30) - 1), val()];
        10 -> [<<"INCR">>, N];
        11 -> [<<"DECR">>, N];
        12 -> [<<"INCRBY">>, N, i(n(100) - 50)];
        13 -> [<<"DECRBY">>, N, i(n(100))];
        14 -> [<<"INCRBYFLOAT">>, key(<<"f">>), pick([<<"1.5">>, <<"-0.25">>, <<"3e2">>, <<"10">>])];
        15 -> [<<"GETSET">>, K, val()];
        16 -> [<<"GETDEL">>, K];
        17 -> [<<"GETEX">>, K | pick([[<<"EX">>, long_s()], [<<"PX">>, long_s()], [<<"PERSIST">>],
                                     [<<"PXAT">>, i(now_ms() + 9000000)], [<<"EXAT">>, i(now_ms() div 1000 + 9000)]])];
        18 -> [<<"SETBIT">>, key(<<"bits">>), i(n(200) - 1), pick([<<"0">>, <<"1">>])];
        19 -> [<<"BITOP">>, pick([<<"AND">>, <<"OR">>, <<"XOR">>]), key(<<"bits">>), key(<<"bits">>), key(<<"bits">>)];
        20 -> [<<"BITOP">>, <<"NOT">>, key(<<"bits">>), key(<<"bits">>)];
        21 -> [<<"BITFIELD">>, key(<<"bits">>) | bitfield_ops()];
        22 -> [<<"INCRBY">>, N, <<"1">>];
        _ -> [<<"SET">>, K, val(), <<"GET">>]
    end ++ case V of _ -> [] end.

%% HyperLogLog: small adds keep keys sparse, big ones (and merges) take them
%% past hll-sparse-max-bytes to dense.
hll(_V, _Mode) ->
    K = key(<<"hll">>),
    case n(9) of
        1 -> [<<"PFADD">>, K | [element() || _ <- lists:seq(1, 300 + n(1500))]];
        2 -> [<<"PFCOUNT">>, K];
        3 -> [<<"PFCOUNT">>, K, key(<<"hll">>)];
        4 -> [<<"PFMERGE">>, K | [key(<<"hll">>) || _ <- lists:seq(1, n(3))]];
        5 -> [<<"PFDEBUG">>, <<"TODENSE">>, K];
        6 -> [<<"PFADD">>, K];
        _ -> [<<"PFADD">>, K | [element() || _ <- lists:seq(1, n(8))]]
    end.

element() -> <<"e", (i(n(100000)))/binary>>.

%% GEO: points around one place, and the searches that store their result
%% (as sets of their members' scores or of their distances).
geo(_V, _Mode) ->
    K = key(<<"geo">>),
    Dest = pick([key(<<"geo">>), key(<<"near">>)]),
    case n(8) of
        N when N =< 3 ->
            [<<"GEOADD">>, K | lists:append([[coord(13.36, 0.4), coord(38.11, 0.3), place()]
                                             || _ <- lists:seq(1, 1 + n(6))])];
        4 ->
            [<<"GEORADIUS">>, K, coord(13.36, 0.4), coord(38.11, 0.3), distance(), unit()
             | geo_opts()] ++ [pick([<<"STORE">>, <<"STOREDIST">>]), Dest];
        5 ->
            [<<"GEORADIUSBYMEMBER">>, K, place(), distance(), unit() | geo_opts()]
                ++ [pick([<<"STORE">>, <<"STOREDIST">>]), Dest];
        _ ->
            From = pick([[<<"FROMMEMBER">>, place()],
                         [<<"FROMLONLAT">>, coord(13.36, 0.4), coord(38.11, 0.3)]]),
            By = pick([[<<"BYRADIUS">>, distance(), unit()],
                       [<<"BYBOX">>, distance(), distance(), unit()]]),
            [<<"GEOSEARCHSTORE">>, Dest, K] ++ From ++ By ++ geo_opts()
                ++ pick([[], [<<"STOREDIST">>]])
    end.

coord(Centre, Spread) ->
    float_to_binary(Centre + (rand:uniform() * 2 - 1) * Spread, [{decimals, 6}]).
place() -> <<"p", (i(n(40)))/binary>>.
distance() -> pick([i(n(60)), i(n(5000)), <<"0">>, float_to_binary(rand:uniform() * 30, [{decimals, 3}])]).
%% lowercase: Redis 6.2 takes no other
unit() -> pick([<<"km">>, <<"m">>, <<"mi">>, <<"ft">>]).
geo_opts() ->
    pick([[], [<<"ASC">>], [<<"DESC">>]]) ++
        pick([[], [<<"COUNT">>, i(n(8))], [<<"COUNT">>, i(n(8)), <<"ANY">>]]).

bitfield_ops() ->
    lists:append([pick([[<<"SET">>, pick([<<"u8">>, <<"i5">>, <<"u1">>, <<"i16">>]), pick([<<"#1">>, <<"3">>, <<"17">>]), i(n(300) - 100)],
                        [<<"INCRBY">>, pick([<<"u8">>, <<"i5">>, <<"u3">>]), pick([<<"0">>, <<"#2">>, <<"9">>]), i(n(40) - 20)],
                        %% not FAIL: a BITFIELD whose writes all fail still creates/extends
                        %% the key on the master but is not propagated
                        [<<"OVERFLOW">>, pick([<<"WRAP">>, <<"SAT">>])],
                        [<<"GET">>, <<"u4">>, <<"0">>]]) || _ <- lists:seq(1, 1 + n(3))]).

anykey() -> pick([skey(), key(<<"n">>), key(<<"l">>), key(<<"S">>), key(<<"z">>), key(<<"h">>), key(<<"x">>)]).

generic(V, Mode) ->
    P = pick([<<"s">>, <<"l">>, <<"S">>, <<"z">>, <<"h">>, <<"x">>]),
    case n(16) of
        1 -> [<<"DEL">>, anykey(), anykey(), anykey()];
        2 -> [<<"UNLINK">>, anykey(), anykey()];
        3 -> [<<"RENAME">>, key(P), key(P)];
        4 -> [<<"RENAMENX">>, key(P), key(P)];
        5 -> [<<"COPY">>, key(P), key(P) | pick([[], [<<"REPLACE">>]])];
        6 -> [<<"EXPIRE">>, anykey(), long_s() | expire_opts(V)];
        7 -> [<<"PEXPIRE">>, anykey(), long_s() | expire_opts(V)];
        8 -> [<<"EXPIREAT">>, anykey(), i(now_ms() div 1000 + n(100000)) | expire_opts(V)];
        9 -> [<<"PEXPIREAT">>, anykey(), i(now_ms() + n(100000000)) | expire_opts(V)];
        10 -> [<<"PERSIST">>, anykey()];
        11 -> [<<"SORT">>, key(<<"l">>) | pick([[<<"ALPHA">>], [<<"ALPHA">>, <<"DESC">>], [<<"ALPHA">>, <<"LIMIT">>, <<"1">>, <<"3">>]])]
                  ++ [<<"STORE">>, key(<<"l">>)];
        12 -> [<<"SORT">>, pick([key(<<"S">>), key(<<"z">>)]), <<"BY">>, <<"nosort">>, <<"STORE">>, key(<<"l">>)];
        13 when Mode =:= link -> [<<"MOVE">>, anykey(), <<"1">>];
        14 when Mode =:= link -> [<<"COPY">>, anykey(), anykey(), <<"DB">>, <<"1">>, <<"REPLACE">>];
        15 when Mode =:= link -> [<<"PEXPIRE">>, anykey(), i(20 + n(1500))];
        16 when Mode =:= link ->
            Ttl = pick([[<<"0">>], [long_s()], [i(now_ms() + n(100000)), <<"ABSTTL">>]]),
            [<<"RESTORE">>, key(P), hd(Ttl), {dump, anykey()}, <<"REPLACE">> | tl(Ttl)];
        _ -> [<<"PERSIST">>, anykey()]
    end.

list(V, _Mode) ->
    K = key(<<"l">>),
    case n(19) of
        1 -> [<<"LPUSH">>, K, member(), member()];
        2 -> [<<"RPUSH">>, K, member(), member(), member()];
        3 -> [<<"LPUSHX">>, K, member()];
        4 -> [<<"RPUSHX">>, K, member()];
        5 -> [<<"LPOP">>, K];
        6 -> [<<"RPOP">>, K | pick([[], [i(n(4))]])];
        7 -> [<<"LINSERT">>, K, pick([<<"BEFORE">>, <<"AFTER">>]), member(), member()];
        8 -> [<<"LSET">>, K, i(n(6) - 3), member()];
        9 -> [<<"LREM">>, K, i(n(5) - 3), member()];
        10 -> [<<"LTRIM">>, K, i(n(6) - 3), i(n(10) - 4)];
        11 -> [<<"LMOVE">>, K, key(<<"l">>), pick([<<"LEFT">>, <<"RIGHT">>]), pick([<<"LEFT">>, <<"RIGHT">>])];
        12 -> [<<"RPOPLPUSH">>, K, key(<<"l">>)];
        13 when V =:= '7.0' -> [<<"LMPOP">>, <<"2">>, K, key(<<"l">>), pick([<<"LEFT">>, <<"RIGHT">>]) | pick([[], [<<"COUNT">>, i(n(3))]])];
        14 -> [<<"BLPOP">>, K, key(<<"l">>), <<"0.01">>];
        15 -> [<<"BRPOP">>, K, <<"0.01">>];
        16 -> [<<"BLMOVE">>, K, key(<<"l">>), <<"RIGHT">>, <<"LEFT">>, <<"0.01">>];
        17 -> [<<"BRPOPLPUSH">>, K, key(<<"l">>), <<"0.01">>];
        18 when V =:= '7.0' -> [<<"BLMPOP">>, <<"0.01">>, <<"1">>, K, <<"LEFT">>, <<"COUNT">>, <<"2">>];
        _ -> [<<"RPUSH">>, K, member()]
    end.

set(_V, _Mode) ->
    K = key(<<"S">>),
    case n(9) of
        1 -> [<<"SADD">>, K, member(), member(), member()];
        2 -> [<<"SREM">>, K, member(), member()];
        3 -> [<<"SMOVE">>, K, key(<<"S">>), member()];
        4 -> [<<"SPOP">>, K];
        5 -> [<<"SPOP">>, K, i(n(3))];
        6 -> [<<"SINTERSTORE">>, K, key(<<"S">>), key(<<"S">>)];
        7 -> [<<"SUNIONSTORE">>, K, key(<<"S">>), key(<<"S">>)];
        8 -> [<<"SDIFFSTORE">>, K, key(<<"S">>), key(<<"S">>)];
        9 -> [<<"SADD">>, K, member()]
    end.

zset(V, _Mode) ->
    K = key(<<"z">>),
    case n(19) of
        1 -> [<<"ZADD">>, K, score(), member(), score(), member()];
        2 -> [<<"ZADD">>, K | pick([[<<"NX">>], [<<"XX">>], [<<"GT">>], [<<"LT">>], [<<"CH">>], [<<"XX">>, <<"CH">>],
                                   [<<"GT">>, <<"CH">>]])] ++ [score(), member()];
        3 -> [<<"ZADD">>, K | pick([[<<"INCR">>], [<<"GT">>, <<"INCR">>], [<<"LT">>, <<"INCR">>], [<<"NX">>, <<"INCR">>]])]
                 ++ [i(n(10) - 5), member()];
        4 -> [<<"ZINCRBY">>, K, i(n(10) - 3), member()];
        5 -> [<<"ZREM">>, K, member(), member()];
        6 -> [<<"ZREMRANGEBYSCORE">>, K, pick([<<"-inf">>, <<"(1">>, <<"5">>]), pick([<<"+inf">>, <<"(20">>, <<"10">>])];
        7 -> [<<"ZREMRANGEBYRANK">>, K, i(n(4) - 2), i(n(4) - 2)];
        8 -> [<<"ZREMRANGEBYLEX">>, key(<<"zl">>), pick([<<"-">>, <<"[b">>, <<"(m1">>]), pick([<<"+">>, <<"[m2">>, <<"(m5">>])];
        9 -> [<<"ZADD">>, key(<<"zl">>), <<"0">>, member(), <<"0">>, member()];
        10 -> [<<"ZPOPMIN">>, K | pick([[], [i(n(3))]])];
        11 -> [<<"ZPOPMAX">>, K | pick([[], [i(n(3))]])];
        12 -> [pick([<<"BZPOPMIN">>, <<"BZPOPMAX">>]), K, key(<<"z">>), <<"0.01">>];
        13 when V =:= '7.0' -> [<<"ZMPOP">>, <<"2">>, K, key(<<"z">>), pick([<<"MIN">>, <<"MAX">>]), <<"COUNT">>, i(n(3))];
        14 -> [<<"ZUNIONSTORE">>, K, <<"2">>, key(<<"z">>), pick([key(<<"z">>), key(<<"S">>)])
                 | pick([[], [<<"WEIGHTS">>, <<"2">>, <<"0.5">>], [<<"AGGREGATE">>, <<"MAX">>],
                         [<<"WEIGHTS">>, <<"1">>, <<"-1">>, <<"AGGREGATE">>, <<"MIN">>]])];
        15 -> [<<"ZINTERSTORE">>, K, <<"2">>, key(<<"z">>), pick([key(<<"z">>), key(<<"S">>)])
                 | pick([[], [<<"WEIGHTS">>, <<"3">>, <<"1">>], [<<"AGGREGATE">>, <<"MIN">>]])];
        16 -> [<<"ZDIFFSTORE">>, K, <<"2">>, key(<<"z">>), key(<<"z">>)];
        17 -> [<<"ZRANGESTORE">>, K, key(<<"z">>) | pick([[<<"0">>, <<"-2">>], [<<"1">>, <<"3">>, <<"REV">>],
                                                        [<<"(0">>, <<"+inf">>, <<"BYSCORE">>, <<"LIMIT">>, <<"1">>, <<"3">>],
                                                        [<<"+inf">>, <<"-inf">>, <<"BYSCORE">>, <<"REV">>],
                                                        [<<"[a">>, <<"+">>, <<"BYLEX">>]])];
        18 -> [<<"GEOADD">>, K, <<"13.361389">>, <<"38.115556">>, member(), <<"15.087269">>, <<"37.502669">>, member()];
        _ -> [<<"ZADD">>, K, score(), member()]
    end.

hash(_V, _Mode) ->
    K = key(<<"h">>),
    F = fun() -> pick([<<"f1">>, <<"f2">>, <<"f3">>, <<"c1">>, <<"c2">>, member()]) end,
    case n(8) of
        1 -> [<<"HSET">>, K, F(), val(), F(), val()];
        2 -> [<<"HSETNX">>, K, F(), val()];
        3 -> [<<"HMSET">>, K, F(), val()];
        4 -> [<<"HDEL">>, K, F(), F()];
        5 -> [<<"HINCRBY">>, K, pick([<<"c1">>, <<"c2">>]), i(n(20) - 10)];
        6 -> [<<"HINCRBYFLOAT">>, K, <<"fl">>, pick([<<"0.5">>, <<"-1.25">>, <<"1e2">>])];
        _ -> [<<"HSET">>, K, F(), val()]
    end.

stream(V, Mode) ->
    K = key(<<"x">>),
    Id = fun() -> case get_ids(K) of [] -> <<"0-1">>; L -> pick(L) end end,
    case n(14) of
        N when N =< 3 -> [<<"XADD">>, K | pick([[], [<<"MAXLEN">>, <<"=">>, i(5 + n(10))], [<<"NOMKSTREAM">>],
                                               [<<"MINID">>, <<"=">>, <<"0-1">>]]
                                              ++ case Mode of link -> [[<<"MAXLEN">>, <<"~">>, <<"3">>]]; direct -> [] end)]
                           ++ [<<"*">>, <<"f">>, val(), <<"g">>, member()];
        4 -> [<<"XDEL">>, K, Id(), Id()];
        5 -> [<<"XTRIM">>, K, <<"MAXLEN">>, i(n(20))];
        6 -> [<<"XTRIM">>, K, <<"MINID">>, Id()];
        7 when V =:= '7.0' -> [<<"XSETID">>, K, i(now_ms() + 100000000 + n(10000)), <<"ENTRIESADDED">>, i(1000000 + n(100)),
                               <<"MAXDELETEDID">>, <<"0-1">>];
        8 -> [<<"XGROUP">>, <<"CREATE">>, K, pick([<<"g1">>, <<"g2">>]), pick([<<"$">>, <<"0">>]), <<"MKSTREAM">>];
        9 -> [<<"XGROUP">>, <<"SETID">>, K, pick([<<"g1">>, <<"g2">>]), pick([<<"$">>, <<"0">>])];
        10 -> [<<"XGROUP">>, pick([<<"CREATECONSUMER">>, <<"DELCONSUMER">>]), K, <<"g1">>, pick([<<"alice">>, <<"bob">>])];
        11 -> [<<"XGROUP">>, <<"DESTROY">>, K, <<"g2">>];
        12 when Mode =:= link -> [<<"XREADGROUP">>, <<"GROUP">>, <<"g1">>, pick([<<"alice">>, <<"bob">>]),
                                  <<"COUNT">>, <<"2">>, <<"STREAMS">>, K, <<">">>];
        13 when Mode =:= link -> [<<"XACK">>, K, <<"g1">>, Id(), Id()];
        14 when Mode =:= link -> [<<"XCLAIM">>, K, <<"g1">>, <<"carol">>, <<"0">>, Id()];
        _ -> [<<"XADD">>, K, <<"*">>, <<"f">>, val()]
    end.

%%% ------------------------------------------------------------ comparison

%% @doc Keys an unhandled command may have removed from the mirror
%% (HyperLogLog): absent is allowed for them, a wrong value is not.
-spec may_be_absent(binary()) -> boolean().
may_be_absent(<<"hll:", _/binary>>) -> true;
may_be_absent(_) -> false.

%% @doc Compares database 0 of the master with mirror table `Tid' (read
%% with `nsync_mirror:lookup/2' and `ttl/2'); returns the mismatches.
%% Options: `version' ('7.0': PEXPIRETIME, exact; '6.2': PTTL, ±1.5 s).
-spec compare(nsync_test_redis:server(), ets:tid(), map()) -> [term()].
compare(Server, Tid, Opts) ->
    compare_union([Server], Tid, Opts).

%% @doc Compares the union of database 0 of `Servers' (a cluster's
%% masters, whose key sets are disjoint) with mirror table `Tid'.
-spec compare_union([nsync_test_redis:server()], ets:tid(), map()) -> [term()].
compare_union(Servers, Tid, Opts) ->
    Version = generation(maps:get(version, Opts, '7.0')),
    Keep = maps:get(keep, Opts, fun(_) -> true end),
    {Mis, Keys} = lists:foldl(fun(Server, {MisAcc, KeyAcc}) ->
                                      {Mis1, Master} = compare_server(Server, Tid, Version, Keep),
                                      {MisAcc ++ Mis1, Master ++ KeyAcc}
                              end, {[], []}, Servers),
    MasterSet = maps:from_list([{K, x} || K <- Keys]),
    Extra = [{extra_in_mirror, K, V} || {K, _} <- ets:tab2list(Tid),
                                         not is_map_key(K, MasterSet),
                                         [{_, V}] <- [nsync_mirror:lookup(Tid, K)],
                                         not about_to_expire(Tid, K)],
    Mis ++ Extra.

compare_server(Server, Tid, Version, Keep) ->
    {ok, Sock} = nsync_test_redis:connect(Server),
    try
        Keys = scan(Sock, <<"0">>, []),
        Master = lists:usort([K || K <- Keys, Keep(K)]),
        {lists:append([cmp_key(Sock, Tid, K, Version) || K <- Master]), Master}
    after
        nsync_test_redis:close_sock(Sock)
    end.

scan(Sock, Cursor, Acc) ->
    [Next, Keys] = nsync_test_redis:cmd_sock(Sock, [<<"SCAN">>, Cursor, <<"COUNT">>, <<"1000">>]),
    case Next of
        <<"0">> -> Keys ++ Acc;
        _ -> scan(Sock, Next, Keys ++ Acc)
    end.

about_to_expire(Tid, K) ->
    case nsync_mirror:ttl(Tid, K) of
        T when is_integer(T) -> T - now_ms() < 300;
        _ -> false
    end.

cmd(Sock, Args) -> nsync_test_redis:cmd_sock(Sock, Args).

cmp_key(Sock, Tid, K, Version) ->
    Type = cmd(Sock, [<<"TYPE">>, K]),
    Exp = master_expiry(Sock, K, Version),
    MV = master_value(Sock, K, Type),
    Mirror = nsync_mirror:lookup(Tid, K),
    case {MV, Mirror, Exp} of
        {gone, _, _} -> [];
        {_, _, {soon, _}} -> [];
        {_, [], _} ->
            case may_be_absent(K) of
                true -> [];
                false -> [{missing_in_mirror, K, Type}]
            end;
        {_, [{_, V}], _} ->
            MirrorV = mirror_value(V, MV),
            VMis = case MirrorV =:= MV of
                       true -> [];
                       false -> [{value, K, Type, {master, MV}, {mirror, MirrorV}}]
                   end,
            VMis ++ cmp_expiry(K, Exp, nsync_mirror:ttl(Tid, K))
    end.

master_expiry(Sock, K, '7.0') ->
    case cmd(Sock, [<<"PEXPIRETIME">>, K]) of
        -1 -> none;
        T when is_integer(T), T > 0 ->
            case T - now_ms() < 300 of
                true -> {soon, T};
                false -> {abs, T}
            end;
        _ -> none
    end;
master_expiry(Sock, K, _) ->
    case cmd(Sock, [<<"PTTL">>, K]) of
        -1 -> none;
        T when is_integer(T), T >= 0, T < 300 -> {soon, T};
        T when is_integer(T), T >= 0 -> {rel, now_ms() + T};
        _ -> none
    end.

cmp_expiry(_K, none, undefined) -> [];
cmp_expiry(_K, {abs, T}, T) -> [];
cmp_expiry(K, {rel, T}, M) when is_integer(M) ->
    case abs(T - M) =< 1500 of
        true -> [];
        false -> [{expiry, K, {master, T}, {mirror, M}}]
    end;
cmp_expiry(K, E, M) -> [{expiry, K, {master, E}, {mirror, M}}].

master_value(Sock, K, Type) ->
    R = case Type of
            <<"string">> -> cmd(Sock, [<<"GET">>, K]);
            <<"list">> -> cmd(Sock, [<<"LRANGE">>, K, <<"0">>, <<"-1">>]);
            <<"set">> -> lists:usort(cmd(Sock, [<<"SMEMBERS">>, K]));
            <<"zset">> -> pairs(cmd(Sock, [<<"ZRANGE">>, K, <<"0">>, <<"-1">>, <<"WITHSCORES">>]));
            <<"hash">> -> hmap(cmd(Sock, [<<"HGETALL">>, K]));
            <<"stream">> -> read_stream(Sock, K);
            <<"none">> -> gone;
            Other -> {other, Other}
        end,
    case R of
        undefined -> gone;
        [] -> gone;
        _ -> R
    end.

%% @doc ZRANGE ... WITHSCORES's reply as the mirror's `[{Score, Member}]'.
-spec pairs([binary()]) -> [{nsync_cmd_lib:score(), binary()}].
pairs([M, S | Rest]) -> [{nsync_cmd_lib:parse_float(S), M} | pairs(Rest)];
pairs([]) -> [].

hmap(L) -> maps:from_list(kv(L)).
kv([A, B | R]) -> [{A, B} | kv(R)];
kv([]) -> [].

%% A stream as XRANGE and XINFO STREAM FULL show it: the entries, then
%% the metadata and groups (PELs with delivery times and counts, each
%% consumer's pending ids) the master reports; its fields that depend on
%% when the replica applied a command (seen-time, active-time) and those
%% of its storage (radix tree sizes, lag) are left out.
read_stream(Sock, K) ->
    Entries = [{nsync_cmd_stream:parse_id(Id), FVs} || [Id, FVs] <- cmd(Sock, [<<"XRANGE">>, K, <<"-">>, <<"+">>])],
    Full = hmap(cmd(Sock, [<<"XINFO">>, <<"STREAM">>, K, <<"FULL">>, <<"COUNT">>, <<"0">>])),
    Meta = maps:from_list([{Name, Parse(V)} || {Field, Name, Parse} <- stream_fields(),
                                                {ok, V} <- [maps:find(Field, Full)]]),
    Groups = lists:sort([master_group(hmap(G)) || G <- maps:get(<<"groups">>, Full)]),
    {stream, Entries, Meta#{groups => Groups}}.

%% XINFO STREAM FULL's fields compared: the reply's name, the mirror's
%% metadata key, how to read the reply's value.
stream_fields() ->
    Id = fun nsync_cmd_stream:parse_id/1,
    [{<<"length">>, length, fun(N) -> N end},
     {<<"last-generated-id">>, last_id, Id},
     {<<"max-deleted-entry-id">>, max_deleted_id, Id},
     {<<"entries-added">>, entries_added, fun(N) -> N end},
     {<<"recorded-first-entry-id">>, first_id, Id}].

master_group(G) ->
    Pel = lists:sort([{nsync_cmd_stream:parse_id(Id), Time, Count}
                      || [Id, _Consumer, Time, Count] <- maps:get(<<"pending">>, G)]),
    Consumers = lists:sort([begin
                                C = hmap(CL),
                                {maps:get(<<"name">>, C),
                                 lists:sort([nsync_cmd_stream:parse_id(Id) || [Id, _, _] <- maps:get(<<"pending">>, C)])}
                            end || CL <- maps:get(<<"consumers">>, G)]),
    {maps:get(<<"name">>, G), nsync_cmd_stream:parse_id(maps:get(<<"last-delivered-id">>, G)),
     maps:get(<<"entries-read">>, G, absent), Pel, Consumers}.

%% The mirror's value in the master's shape (a stream: the metadata the
%% master reported, `Master').
mirror_value({stream, E, M}, {stream, _, Master}) ->
    Meta = maps:from_list([{Name, maps:get(Name, M, undefined)} || {_, Name, _} <- stream_fields(),
                                                                    is_map_key(Name, Master)]),
    EntriesRead = is_map_key(entries_added, Master),
    Groups = lists:sort([mirror_group(G, EntriesRead) || G <- maps:get(groups, M, [])]),
    {stream, E, Meta#{groups => Groups}};
mirror_value(V, _) -> V.

mirror_group(G, EntriesRead) ->
    Consumers = lists:sort([{maps:get(name, C), lists:sort(maps:get(pending, C, []))}
                            || C <- maps:get(consumers, G, [])]),
    {maps:get(name, G), maps:get(last_delivered_id, G),
     case EntriesRead of
         true -> maps:get(entries_read, G, undefined);
         false -> absent
     end,
     lists:sort(maps:get(pending, G, [])), Consumers}.
