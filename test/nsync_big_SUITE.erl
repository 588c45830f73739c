%%% @doc Big values (`nsync_big'): the mirror holds a key over its threshold
%%% as a handle owned by the NIF. These cases check the element reads of
%%% the API on small and big values alike, the value's life through the
%%% table operations (RENAME, MOVE, SWAPDB, COPY, promotion and demotion,
%%% compressed and plain tables), streams with their consumer groups
%%% (every stream command on a term and on a big value, and big streams from
%%% a snapshot), and readers working while the mirror writes. (The random
%%% differential workload through the big paths is
%%% `nsync_mirror_SUITE:direct_7_0_big' and `link_7_0_big'.)
-module(nsync_big_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_testcase/2, end_per_testcase/2]).
-export([reads_small_and_big/1, promote_and_demote/1, table_operations/1,
         copy_is_deep/1, concurrent_readers/1, big_reads_go_dirty/1,
         full_resync_replaces_big_values/1, streams_small_and_big/1,
         streams_from_the_snapshot/1, streams_with_groups_through_a_link/1]).

-define(TINY, #{elements => 4, bytes => 8}).

-spec all() -> [atom()].
all() ->
    [reads_small_and_big, promote_and_demote, table_operations, copy_is_deep,
     concurrent_readers, big_reads_go_dirty, full_resync_replaces_big_values,
     streams_small_and_big, streams_from_the_snapshot, streams_with_groups_through_a_link].

-spec init_per_testcase(atom(), list()) -> list().
init_per_testcase(Case, Config) when Case =:= full_resync_replaces_big_values;
                                     Case =:= streams_from_the_snapshot;
                                     Case =:= streams_with_groups_through_a_link ->
    {ok, Server} = nsync_test_redis:start(#{version => '7.0'}),
    [{server, Server} | Config];
init_per_testcase(_Case, Config) ->
    Config.

-spec end_per_testcase(atom(), list()) -> ok.
end_per_testcase(_Case, Config) ->
    case proplists:get_value(server, Config) of
        undefined -> ok;
        Server -> nsync_test_redis:stop(Server)
    end.

%%% ------------------------------------------------------------ helpers

mirror(Db, Opts) -> nsync_mirror:new(big_suite, Db, true, Opts).

apply_all(M, Db, Cmds) ->
    lists:foldl(fun([C | A], Acc) ->
                        {ok, Acc2} = nsync_apply:apply_cmd(Acc, Db, C, A),
                        Acc2
                end, M, Cmds).

b(I) -> integer_to_binary(I).

is_big(Tid, Key) ->
    case ets:lookup(Tid, Key) of
        [{_, V}] -> nsync_big:is_handle(V);
        [] -> false
    end.

%%% ------------------------------------------------------------ cases

%% @doc Every element read gives the same answer on a mirror that keeps
%% values as terms and on one where they are big values, and the answer
%% Redis would give; expired keys and hash fields are hidden.
reads_small_and_big(_Config) ->
    Now = erlang:system_time(millisecond),
    Cmds = [[<<"hset">>, <<"h">> | lists:append([[<<"f", (b(I))/binary>>, b(I)] || I <- lists:seq(1, 10)])],
            [<<"hpexpireat">>, <<"h">>, b(Now - 1000), <<"FIELDS">>, <<"1">>, <<"f1">>],
            [<<"hpexpireat">>, <<"h">>, b(Now + 100000), <<"FIELDS">>, <<"1">>, <<"f2">>],
            [<<"sadd">>, <<"s">> | [b(I) || I <- lists:seq(1, 10)]],
            [<<"zadd">>, <<"z">> | lists:append([[b(I rem 4), <<"m", (b(I))/binary>>] || I <- lists:seq(1, 10)])],
            [<<"zadd">>, <<"z">>, <<"-inf">>, <<"low">>, <<"+inf">>, <<"high">>],
            [<<"rpush">>, <<"l">> | [b(I) || I <- lists:seq(1, 10)]],
            [<<"lpush">>, <<"l">>, <<"first">>],
            [<<"xadd">>, <<"x">>, <<"1-1">>, <<"a">>, <<"1">>],
            [<<"xadd">>, <<"x">>, <<"2-1">>, <<"b">>, <<"2">>],
            [<<"xadd">>, <<"x">>, <<"3-0">>, <<"c">>, <<"3">>],
            [<<"rpush">>, <<"gone">>, <<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>],
            [<<"pexpireat">>, <<"gone">>, b(Now - 1)]],
    Small = apply_all(mirror(0, #{big_threshold => off}), 0, Cmds),
    Big = apply_all(mirror(0, #{big_threshold => ?TINY}), 0, Cmds),
    TB = nsync_mirror:tid(Big),
    ?assert(lists:all(fun(K) -> is_big(TB, K) end, [<<"h">>, <<"s">>, <<"z">>, <<"l">>, <<"gone">>])),
    Reads = fun(T) ->
                    [nsync_read:hget(T, <<"h">>, <<"f3">>),
                     nsync_read:hget(T, <<"h">>, <<"f1">>),
                     nsync_read:hget(T, <<"nope">>, <<"f3">>),
                     nsync_read:hmget(T, <<"h">>, [<<"f1">>, <<"f2">>, <<"zz">>]),
                     nsync_read:hlen(T, <<"h">>),
                     nsync_read:sismember(T, <<"s">>, <<"7">>),
                     nsync_read:sismember(T, <<"s">>, <<"77">>),
                     nsync_read:scard(T, <<"s">>),
                     nsync_read:zscore(T, <<"z">>, <<"m6">>),
                     nsync_read:zscore(T, <<"z">>, <<"low">>),
                     nsync_read:zrange(T, <<"z">>, 0, 2),
                     nsync_read:zrange(T, <<"z">>, -2, -1),
                     nsync_read:zrange(T, <<"z">>, 5, 2),
                     nsync_read:zrangebyscore(T, <<"z">>, 1.0, {exclusive, 3.0}),
                     nsync_read:zrangebyscore(T, <<"z">>, {exclusive, 2.0}, inf),
                     nsync_read:zcard(T, <<"z">>),
                     nsync_read:lrange(T, <<"l">>, 0, 2),
                     nsync_read:lrange(T, <<"l">>, -3, -1),
                     nsync_read:lrange(T, <<"l">>, 100, 200),
                     nsync_read:llen(T, <<"l">>),
                     nsync_read:llen(T, <<"gone">>),
                     nsync_read:lrange(T, <<"gone">>, 0, -1),
                     nsync_read:xrange(T, <<"x">>, 2, '+'),
                     nsync_read:xrange(T, <<"x">>, '-', {2, 1}),
                     nsync_mirror:lookup(T, <<"h">>),
                     nsync_mirror:ttl(T, <<"gone">>)]
            end,
    Expected = [<<"3">>, undefined, undefined, [undefined, <<"2">>, undefined], 9, true, false, 10,
                2.0, '-inf',
                [{'-inf', <<"low">>}, {0.0, <<"m4">>}, {0.0, <<"m8">>}],
                [{3.0, <<"m7">>}, {inf, <<"high">>}], [],
                [{1.0, <<"m1">>}, {1.0, <<"m5">>}, {1.0, <<"m9">>}, {2.0, <<"m10">>},
                 {2.0, <<"m2">>}, {2.0, <<"m6">>}],
                [{3.0, <<"m3">>}, {3.0, <<"m7">>}, {inf, <<"high">>}],
                12, [<<"first">>, <<"1">>, <<"2">>], [<<"8">>, <<"9">>, <<"10">>], [], 11, 0, [],
                [{{2, 1}, [<<"b">>, <<"2">>]}, {{3, 0}, [<<"c">>, <<"3">>]}],
                [{{1, 1}, [<<"a">>, <<"1">>]}, {{2, 1}, [<<"b">>, <<"2">>]}],
                [{<<"h">>, maps:from_list([{<<"f", (b(I))/binary>>, b(I)} || I <- lists:seq(2, 10)])}],
                not_found],
    ?assertEqual(Expected, Reads(nsync_mirror:tid(Small))),
    ?assertEqual(Expected, Reads(TB)),
    ?assertEqual(#{<<"f1">> => Now - 1000, <<"f2">> => Now + 100000}, nsync_mirror:field_ttls(TB, <<"h">>)),
    ?assertError({wrongtype, <<"l">>}, nsync_read:hget(TB, <<"l">>, <<"x">>)),
    ?assertError({wrongtype, <<"h">>}, nsync_read:llen(TB, <<"h">>)),
    nsync_mirror:delete(Small),
    nsync_mirror:delete(Big).

%% @doc A value becomes big when a write takes it past the threshold, a
%% term again when it shrinks below half of it, and goes when empty; a
%% string past the byte limit becomes big by APPEND.
promote_and_demote(_Config) ->
    M0 = mirror(0, #{big_threshold => ?TINY}),
    T = nsync_mirror:tid(M0),
    M1 = apply_all(M0, 0, [[<<"rpush">>, <<"l">>, <<"a">>, <<"b">>, <<"c">>, <<"d">>]]),
    ?assertEqual([{<<"l">>, [<<"a">>, <<"b">>, <<"c">>, <<"d">>]}], ets:lookup(T, <<"l">>)),
    M2 = apply_all(M1, 0, [[<<"rpush">>, <<"l">>, <<"e">>]]),
    ?assert(is_big(T, <<"l">>)),
    M3 = apply_all(M2, 0, [[<<"lpop">>, <<"l">>, <<"3">>]]),
    ?assert(is_big(T, <<"l">>)),
    M4 = apply_all(M3, 0, [[<<"lpop">>, <<"l">>]]),
    ?assertEqual([{<<"l">>, [<<"e">>]}], ets:lookup(T, <<"l">>)),
    M5 = apply_all(M4, 0, [[<<"rpush">>, <<"l">>, <<"1">>, <<"2">>, <<"3">>, <<"4">>, <<"5">>],
                           [<<"ltrim">>, <<"l">>, <<"1">>, <<"0">>]]),
    ?assertEqual([], ets:lookup(T, <<"l">>)),
    M6 = apply_all(M5, 0, [[<<"set">>, <<"s">>, <<"12345678">>], [<<"append">>, <<"s">>, <<"9">>],
                           [<<"setrange">>, <<"s">>, <<"12">>, <<"x">>], [<<"setbit">>, <<"s">>, <<"0">>, <<"0">>]]),
    ?assert(is_big(T, <<"s">>)),
    ?assertEqual([{<<"s">>, <<16#31, "23456789", 0, 0, 0, "x">>}], nsync_mirror:lookup(T, <<"s">>)),
    %% a hash's field expiries move into the big value and back out
    M7 = apply_all(M6, 0, [[<<"hset">>, <<"h">>, <<"a">>, <<"1">>],
                           [<<"hpexpireat">>, <<"h">>, <<"99999999999999">>, <<"FIELDS">>, <<"1">>, <<"a">>],
                           [<<"hset">>, <<"h">>, <<"b">>, <<"2">>, <<"c">>, <<"3">>, <<"d">>, <<"4">>, <<"e">>, <<"5">>]]),
    ?assert(is_big(T, <<"h">>)),
    ?assertEqual(#{<<"a">> => 99999999999999}, nsync_mirror:field_ttls(T, <<"h">>)),
    M8 = apply_all(M7, 0, [[<<"hdel">>, <<"h">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>]]),
    ?assertEqual([{<<"h">>, #{<<"a">> => <<"1">>}}], ets:lookup(T, <<"h">>)),
    ?assertEqual(#{<<"a">> => 99999999999999}, nsync_mirror:field_ttls(T, <<"h">>)),
    nsync_mirror:delete(M8).

%% @doc RENAME, MOVE and SWAPDB move a big value's handle with its expiry;
%% a compressed table and a plain one behave the same.
table_operations(_Config) ->
    [begin
         M0 = nsync_mirror:new(big_suite, all, C, #{big_threshold => ?TINY}),
         M1 = apply_all(M0, 0, [[<<"sadd">>, <<"s">>, <<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>],
                                [<<"pexpireat">>, <<"s">>, <<"99999999999999">>],
                                [<<"rename">>, <<"s">>, <<"t">>],
                                [<<"move">>, <<"t">>, <<"2">>]]),
         T0 = nsync_mirror:tid(M1, 0),
         T2 = nsync_mirror:tid(M1, 2),
         ?assertEqual([], ets:lookup(T0, <<"t">>)),
         ?assert(is_big(T2, <<"t">>)),
         ?assertEqual(99999999999999, nsync_mirror:ttl(T2, <<"t">>)),
         {ok, M2} = nsync_apply:apply_cmd(M1, 0, <<"swapdb">>, [<<"0">>, <<"2">>]),
         erlang:garbage_collect(),
         ?assertEqual([{<<"t">>, [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>]}], nsync_mirror:lookup(T0, <<"t">>)),
         ?assertEqual(99999999999999, nsync_mirror:ttl(T0, <<"t">>)),
         M3 = apply_all(M2, 0, [[<<"srem">>, <<"t">>, <<"a">>]]),
         ?assertEqual(4, nsync_read:scard(T0, <<"t">>)),
         M4 = apply_all(M3, 0, [[<<"del">>, <<"t">>]]),
         ?assertEqual([], nsync_mirror:lookup(T0, <<"t">>)),
         nsync_mirror:delete(M4)
     end || C <- [true, false]],
    ok.

%% @doc COPY (in a db and across dbs) makes an independent big value.
copy_is_deep(_Config) ->
    M0 = nsync_mirror:new(big_suite, all, true, #{big_threshold => ?TINY}),
    M1 = apply_all(M0, 0, [[<<"zadd">>, <<"z">>, <<"1">>, <<"a">>, <<"2">>, <<"b">>, <<"3">>, <<"c">>,
                            <<"4">>, <<"d">>, <<"5">>, <<"e">>],
                           [<<"copy">>, <<"z">>, <<"z2">>],
                           [<<"copy">>, <<"z">>, <<"z3">>, <<"DB">>, <<"1">>],
                           [<<"zadd">>, <<"z2">>, <<"9">>, <<"a">>],
                           [<<"zrem">>, <<"z">>, <<"e">>]]),
    T0 = nsync_mirror:tid(M1, 0),
    T1 = nsync_mirror:tid(M1, 1),
    ?assertEqual(1.0, nsync_read:zscore(T0, <<"z">>, <<"a">>)),
    ?assertEqual(9.0, nsync_read:zscore(T0, <<"z2">>, <<"a">>)),
    ?assertEqual(5, nsync_read:zcard(T0, <<"z2">>)),
    ?assertEqual(4, nsync_read:zcard(T0, <<"z">>)),
    ?assertEqual(5, nsync_read:zcard(T1, <<"z3">>)),
    ?assertEqual(1.0, nsync_read:zscore(T1, <<"z3">>, <<"a">>)),
    nsync_mirror:delete(M1).

%% @doc Processes read a big hash, list and zset (element reads and whole
%% values) while the mirror writes to them; every read sees a consistent
%% value and the writes all land.
concurrent_readers(_Config) ->
    M0 = mirror(0, #{big_threshold => 100}),
    T = nsync_mirror:tid(M0),
    Seed = [[<<"hset">>, <<"h">> | lists:append([[b(I), b(I)] || I <- lists:seq(1, 5000)])],
            [<<"rpush">>, <<"l">> | [b(I) || I <- lists:seq(1, 5000)]],
            [<<"zadd">>, <<"z">> | lists:append([[b(I), b(I)] || I <- lists:seq(1, 5000)])]],
    M1 = apply_all(M0, 0, Seed),
    Parent = self(),
    Readers = [spawn_link(fun() -> reader(Parent, T, N, 0) end) || N <- lists:seq(1, 4)],
    M2 = lists:foldl(fun(I, Acc) ->
                             apply_all(Acc, 0, [[<<"hset">>, <<"h">>, b(I), b(-I)],
                                                [<<"rpush">>, <<"l">>, b(I)],
                                                [<<"lpop">>, <<"l">>],
                                                [<<"zadd">>, <<"z">>, b(I), b(I)]])
                     end, M1, lists:seq(5001, 15000)),
    [R ! stop || R <- Readers],
    Counts = [receive {done, R, C} -> C end || R <- Readers],
    ct:pal("reads per reader while 40000 writes applied: ~p", [Counts]),
    ?assert(lists:all(fun(C) -> C > 0 end, Counts)),
    ?assertEqual(15000, nsync_read:hlen(T, <<"h">>)),
    ?assertEqual(<<"-15000">>, nsync_read:hget(T, <<"h">>, <<"15000">>)),
    ?assertEqual(5000, nsync_read:llen(T, <<"l">>)),
    ?assertEqual([<<"10001">>], nsync_read:lrange(T, <<"l">>, 0, 0)),
    ?assertEqual([{15000.0, <<"15000">>}], nsync_read:zrange(T, <<"z">>, -1, -1)),
    nsync_mirror:delete(M2).

reader(Parent, T, N, Count) ->
    receive
        stop -> Parent ! {done, self(), Count}
    after 0 ->
            case N rem 4 of
                0 -> [{_, H}] = nsync_mirror:lookup(T, <<"h">>), true = map_size(H) >= 5000;
                1 -> true = lists:member(length(nsync_read:lrange(T, <<"l">>, 0, -1)), [5000, 5001]);
                2 -> [{S, M}] = nsync_read:zrange(T, <<"z">>, 10, 10), S = binary_to_integer(M) + 0.0;
                3 -> <<"7">> = nsync_read:hget(T, <<"h">>, <<"7">>)
            end,
            reader(Parent, T, N, Count + 1)
    end.

%% @doc Big values from the snapshot (built by the pump) survive the table
%% swap of a forced full resync: the new tables hold new big values equal
%% to the master's, the old tables and their values go after the grace
%% period, and a reader still holding an old handle can read it.
full_resync_replaces_big_values(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"repl-backlog-size">>, <<"16384">>]),
    _ = nsync_test_redis:cmd(S, [<<"HSET">>, <<"h">> | lists:append([[b(I), b(I)] || I <- lists:seq(1, 500)])]),
    _ = nsync_test_redis:cmd(S, [<<"RPUSH">>, <<"l">> | [b(I) || I <- lists:seq(1, 500)]]),
    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)},
                                  {block, true}, {timeout, 60000}, {big_threshold, 100}]),
    OldTid = nsync:tid(),
    ?assert(is_big(OldTid, <<"h">>) andalso is_big(OldTid, <<"l">>)),
    [{_, OldH}] = ets:lookup(OldTid, <<"h">>),
    FullBefore = sync_full(S),
    ok = sys:suspend(Pid),
    _ = nsync_test_redis:cmd(S, [<<"HSET">>, <<"h">>, <<"new">>, <<"field">>]),
    nsync_test_redis:set_keys(S, <<"filler:">>, 1, 2000, binary:copy(<<"x">>, 4096)),
    1 = nsync_test_redis:cmd(S, [<<"CLIENT">>, <<"KILL">>, <<"TYPE">>, <<"replica">>]),
    ok = sys:resume(Pid),
    nsync_test_events:wait_until(fun() -> sync_full(S) =:= FullBefore + 1
                                              andalso nsync:tid() =/= OldTid end, 30000),
    NewTid = nsync:tid(),
    nsync_test_events:wait_until(fun() -> nsync:hget(NewTid, <<"h">>, <<"new">>) =:= <<"field">> end, 10000),
    ?assert(is_big(NewTid, <<"h">>) andalso is_big(NewTid, <<"l">>)),
    ?assertEqual(501, nsync:hlen(NewTid, <<"h">>)),
    ?assertEqual([<<"1">>, <<"2">>], nsync:lrange(NewTid, <<"l">>, 0, 1)),
    nsync_test_events:wait_until(fun() -> ets:info(OldTid) =:= undefined end, 5000),
    erlang:garbage_collect(),
    %% the old value lives on while this process holds its handle (with
    %% the HSET if the link applied it before the connection dropped)
    ?assert(lists:member(nsync_big:len(OldH), [500, 501])),
    ?assertEqual(<<"7">>, nsync_big:read(OldH, {hget, <<"7">>, undefined})),
    ok = nsync:stop(Pid).

sync_full(S) ->
    binary_to_integer(maps:get(<<"sync_full">>, nsync_test_redis:info(S, <<"stats">>))).

%% @doc Reads and writes of more than ~1000 elements run on a dirty
%% scheduler (the normal NIF answers busy) and give the same results.
big_reads_go_dirty(_Config) ->
    H = nsync_big:new(list, [b(I) || I <- lists:seq(1, 20000)]),
    ?assertEqual(busy, nsync_nif:big_read(H, {lrange, 0, -1})),
    ?assertEqual([b(I) || I <- lists:seq(1, 20000)], nsync_big:read(H, {lrange, 0, -1})),
    ?assertEqual([<<"1">>, <<"2">>], nsync_nif:big_read(H, {lrange, 0, 1})),
    ?assertEqual(busy, nsync_nif:big_write(H, {lrem, 0, <<"5">>})),
    ok = nsync_big:write(H, {lrem, 0, <<"5">>}),
    ?assertEqual(19999, nsync_big:len(H)),
    ?assertError(wrongtype, nsync_big:read(H, {hget, <<"f">>, undefined})),
    ?assertError(badarg, nsync_big:write(H, {frobnicate})),
    ?assertError(badarg, nsync_big:new(zset, [<<"not a pair">>])).

%%% ------------------------------------------------------------ streams

%% A stream's value without the times a handler takes from the clock
%% (consumers created by a command are seen "now").
timeless([{K, {stream, E, M}}]) ->
    Groups = [G#{consumers := [C#{seen_time := seen} || C <- Cs]}
              || #{consumers := Cs} = G <- maps:get(groups, M)],
    [{K, {stream, E, M#{groups := Groups}}}];
timeless(V) -> V.

x(I) -> <<(b(I))/binary, "-1">>.

%% @doc Every stream command gives the same value on a mirror that keeps
%% streams as terms and on one where they are big values (entries in the
%% NIF, with their groups, pending entries and consumers); XRANGE,
%% XREVRANGE and XLEN read both alike; a stream trimmed below half the
%% threshold is a term again, and an emptied one stays.
streams_small_and_big(_Config) ->
    Add = [[<<"xadd">>, <<"x">>, x(I), <<"f">>, b(I), <<"g">>, <<"v">>] || I <- lists:seq(1, 30)],
    Steps =
        [Add,
         [[<<"xadd">>, <<"x">>, <<"31-*">>, <<"other">>, <<"shape">>],
          [<<"xadd">>, <<"x">>, <<"31-*">>, <<"f">>, <<"seq">>],
          [<<"xgroup">>, <<"CREATE">>, <<"x">>, <<"g1">>, <<"0">>],
          [<<"xgroup">>, <<"CREATE">>, <<"x">>, <<"g2">>, <<"$">>, <<"ENTRIESREAD">>, <<"3">>],
          [<<"xgroup">>, <<"CREATE">>, <<"x">>, <<"g1">>, <<"$">>]],
         %% XREADGROUP and XAUTOCLAIM as masters propagate them
         [[<<"xclaim">>, <<"x">>, <<"g1">>, <<"alice">>, <<"0">>, x(2), x(3), x(4), <<"TIME">>, <<"77">>,
           <<"RETRYCOUNT">>, <<"1">>, <<"FORCE">>, <<"JUSTID">>, <<"LASTID">>, x(4)],
          [<<"xclaim">>, <<"x">>, <<"g1">>, <<"bob">>, <<"0">>, x(5), x(6), <<"TIME">>, <<"78">>, <<"FORCE">>],
          [<<"xclaim">>, <<"x">>, <<"g1">>, <<"bob">>, <<"0">>, x(3), <<"TIME">>, <<"80">>],
          [<<"xclaim">>, <<"x">>, <<"g2">>, <<"carol">>, <<"0">>, x(5), x(99), <<"TIME">>, <<"79">>, <<"FORCE">>],
          [<<"xgroup">>, <<"SETID">>, <<"x">>, <<"g1">>, x(6), <<"ENTRIESREAD">>, <<"6">>],
          [<<"xack">>, <<"x">>, <<"g1">>, x(2), x(99)]],
         [[<<"xgroup">>, <<"CREATECONSUMER">>, <<"x">>, <<"g1">>, <<"dave">>],
          [<<"xgroup">>, <<"CREATECONSUMER">>, <<"x">>, <<"g1">>, <<"bob">>],
          [<<"xdel">>, <<"x">>, x(7), x(8), x(77)],
          [<<"xsetid">>, <<"x">>, <<"99999999999999-0">>, <<"ENTRIESADDED">>, <<"500">>,
           <<"MAXDELETEDID">>, <<"9-1">>],
          [<<"xadd">>, <<"x">>, <<"MAXLEN">>, <<"=">>, <<"28">>, <<"99999999999999-5">>, <<"f">>, <<"t">>],
          [<<"xadd">>, <<"x">>, <<"NOMKSTREAM">>, <<"MINID">>, <<"~">>, x(3), <<"LIMIT">>, <<"10">>,
           <<"99999999999999-6">>, <<"f">>, <<"u">>]],
         %% Redis 8.2's references
         [[<<"xdelex">>, <<"x">>, <<"ACKED">>, <<"IDS">>, <<"2">>, x(4), x(20)],
          [<<"xdelex">>, <<"x">>, <<"DELREF">>, <<"IDS">>, <<"1">>, x(5)],
          [<<"xackdel">>, <<"x">>, <<"g1">>, <<"KEEPREF">>, <<"IDS">>, <<"2">>, x(6), x(3)],
          [<<"xtrim">>, <<"x">>, <<"MINID">>, <<"=">>, x(12), <<"ACKED">>],
          [<<"xgroup">>, <<"DELCONSUMER">>, <<"x">>, <<"g1">>, <<"alice">>],
          [<<"xgroup">>, <<"DESTROY">>, <<"x">>, <<"g2">>]],
         [[<<"xtrim">>, <<"x">>, <<"MAXLEN">>, <<"~">>, <<"10">>, <<"DELREF">>]],
         [[<<"xtrim">>, <<"x">>, <<"MAXLEN">>, <<"1">>]],
         [[<<"xtrim">>, <<"x">>, <<"MAXLEN">>, <<"0">>]]],
    Small0 = mirror(0, #{big_threshold => off}),
    Big0 = mirror(0, #{big_threshold => ?TINY}),
    TS = nsync_mirror:tid(Small0),
    TB = nsync_mirror:tid(Big0),
    Reads = fun(T) ->
                    [nsync_read:xrange(T, <<"x">>, '-', '+', 3),
                     nsync_read:xrange(T, <<"x">>, 9, {20, 1}),
                     nsync_read:xrevrange(T, <<"x">>, '+', 10, 4),
                     nsync_read:xrevrange(T, <<"x">>, {6, 0}, '-'),
                     nsync_read:xlen(T, <<"x">>),
                     timeless(nsync_mirror:lookup(T, <<"x">>))]
            end,
    {_, _, Bigness} =
        lists:foldl(fun(Cmds, {S0, B0, Acc}) ->
                            S1 = apply_all(S0, 0, Cmds),
                            B1 = apply_all(B0, 0, Cmds),
                            ?assertEqual(Reads(TS), Reads(TB)),
                            {S1, B1, [is_big(TB, <<"x">>) | Acc]}
                    end, {Small0, Big0, []}, Steps),
    ?assertEqual([true, true, true, true, true, true, false, false], lists:reverse(Bigness)),
    ?assertMatch([{<<"x">>, {stream, [], #{length := 0}}}], nsync_mirror:lookup(TB, <<"x">>)),
    ?assertError({wrongtype, <<"x">>}, nsync_read:llen(TB, <<"x">>)),
    nsync_mirror:delete(Small0),
    nsync_mirror:delete(Big0).

%% @doc A stream over the threshold in the master's snapshot becomes a big
%% value in the pump (entries, metadata, groups with their pending entries
%% and consumers), equal to what a link without big values loads; the
%% stream's commands then apply to it in place.
streams_from_the_snapshot(Config) ->
    S = ?config(server, Config),
    C = fun(Args) -> nsync_test_redis:cmd(S, Args) end,
    [C([<<"XADD">>, <<"x">>, <<(b(I))/binary, "-", (b(I rem 3))/binary>>, <<"f">>, b(I), <<"n">>, b(-I)])
     || I <- lists:seq(1, 300)],
    <<"OK">> = C([<<"XGROUP">>, <<"CREATE">>, <<"x">>, <<"g1">>, <<"0">>]),
    <<"OK">> = C([<<"XGROUP">>, <<"CREATE">>, <<"x">>, <<"g2">>, <<"$">>]),
    _ = C([<<"XREADGROUP">>, <<"GROUP">>, <<"g1">>, <<"alice">>, <<"COUNT">>, <<"20">>, <<"STREAMS">>, <<"x">>, <<">">>]),
    _ = C([<<"XREADGROUP">>, <<"GROUP">>, <<"g1">>, <<"bob">>, <<"COUNT">>, <<"5">>, <<"STREAMS">>, <<"x">>, <<">">>]),
    2 = C([<<"XDEL">>, <<"x">>, <<"30-0">>, <<"31-1">>]),
    Start = fun(Name, Threshold) ->
                    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)},
                                                  {name, Name}, {block, true}, {timeout, 60000},
                                                  {big_threshold, Threshold}]),
                    Pid
            end,
    Small = Start(streams_small, off),
    Big = Start(streams_big, 100),
    TS = nsync:tid(streams_small),
    TB = nsync:tid(streams_big),
    ?assert(is_big(TB, <<"x">>)),
    ?assertNot(is_big(TS, <<"x">>)),
    [{_, {stream, Entries, #{groups := [G1, G2]}}}] = nsync:lookup(TB, <<"x">>),
    ?assertEqual(298, length(Entries)),
    ?assertMatch(#{name := <<"g1">>, consumers := [#{name := <<"alice">>}, #{name := <<"bob">>}]}, G1),
    ?assertEqual(25, length(maps:get(pending, G1))),
    %% created at `$': its entries-read is unknown (-1 in the RDB)
    ?assertMatch(#{name := <<"g2">>, entries_read := undefined}, G2),
    ?assertEqual(nsync:lookup(TS, <<"x">>), nsync:lookup(TB, <<"x">>)),
    _ = C([<<"XACK">>, <<"x">>, <<"g1">>, <<"2-2">>, <<"3-0">>]),
    _ = C([<<"XADD">>, <<"x">>, <<"MAXLEN">>, <<"250">>, <<"1000-0">>, <<"f">>, <<"last">>]),
    nsync_test_events:wait_until(
      fun() -> nsync:xrevrange(TS, <<"x">>, '+', '-', 1) =:= [{{1000, 0}, [<<"f">>, <<"last">>]}]
                   andalso nsync:xrevrange(TB, <<"x">>, '+', '-', 1) =:= [{{1000, 0}, [<<"f">>, <<"last">>]}]
      end, 10000),
    ?assertEqual(250, nsync:xlen(TB, <<"x">>)),
    ?assertEqual(nsync:lookup(TS, <<"x">>), nsync:lookup(TB, <<"x">>)),
    ok = nsync:stop(Small),
    ok = nsync:stop(Big).

%% @doc A random workload of stream commands with consumer groups on a
%% real master (XADD with trims, XREADGROUP, XACK, XCLAIM, XAUTOCLAIM,
%% XDEL, XTRIM, XGROUP ...), mirrored through a link whose threshold makes
%% most streams big values (in the snapshot and from the commands) and
%% through one without big values: both equal the master (entries, last
%% id, length, groups, and each group's pending entries with their
%% consumers and delivery counts), and equal each other.
streams_with_groups_through_a_link(Config) ->
    S = ?config(server, Config),
    rand:seed(exsss, {11, 12, 13}),
    Run = fun(N) -> [stream_step(S) || _ <- lists:seq(1, N)] end,
    Run(300),
    Start = fun(Name, Threshold) ->
                    {ok, Pid} = nsync:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)},
                                                  {name, Name}, {block, true}, {timeout, 60000},
                                                  {big_threshold, Threshold}]),
                    Pid
            end,
    Small = Start(groups_small, off),
    Big = Start(groups_big, 4),
    TS = nsync:tid(groups_small),
    TB = nsync:tid(groups_big),
    Kinds = fun() -> lists:sort([nsync_big:kind(V) || {_, V} <- ets:tab2list(TB), nsync_big:is_handle(V)]) end,
    ct:pal("big values after the snapshot: ~p", [Kinds()]),
    Check = fun(Round) ->
                    Names = Run(1500),
                    ct:pal("commands: ~p", [lists:sort(maps:to_list(count(Names)))]),
                    Done = <<"done", (b(Round))/binary>>,
                    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, Done, <<"1">>]),
                    nsync_test_events:wait_until(fun() -> ets:member(TS, Done) andalso ets:member(TB, Done) end,
                                                 30000),
                    ct:pal("big values: ~p~nentries and pending entries per group: ~p",
                           [Kinds(), [{K, nsync:xlen(TB, K), [{G, length(P)} || {G, P} <- pel(S, K)]}
                                      || K <- stream_keys()]]),
                    ?assert(length(Kinds()) >= 2),
                    [?assertEqual({T, []}, {T, nsync_workload:compare(S, nsync:tid(T), #{version => '7.0'})})
                     || T <- [groups_small, groups_big]],
                    [begin
                         ?assertEqual(pel(S, K), mirror_pel(TB, K)),
                         ?assertEqual(timeless(nsync:lookup(TS, K)), timeless(nsync:lookup(TB, K)))
                     end || K <- stream_keys()]
            end,
    Check(1),
    Check(2),
    ok = nsync:stop(Small),
    ok = nsync:stop(Big).

stream_keys() -> [<<"x1">>, <<"x2">>, <<"x3">>].

%% One random stream command; its name.
stream_step(S) ->
    K = pick(stream_keys()),
    G = pick([<<"g1">>, <<"g2">>]),
    C = pick([<<"alice">>, <<"bob">>, <<"carol">>]),
    Ids = fun() -> [Id || [Id, _] <- nsync_test_redis:cmd(S, [<<"XRANGE">>, K, <<"-">>, <<"+">>])] end,
    Some = fun() ->
                   case Ids() of
                       [] -> [<<"0-1">>];
                       L -> [pick(L) || _ <- lists:seq(1, rand:uniform(3))]
                   end
           end,
    Cmd = case rand:uniform(20) of
              N when N =< 6 ->
                  [<<"XADD">>, K | pick([[], [], [<<"MAXLEN">>, <<"~">>, b(20 + rand:uniform(40))],
                                         [<<"MAXLEN">>, <<"=">>, b(3 + rand:uniform(40))]])]
                  ++ [<<"*">>, <<"f">>, b(rand:uniform(1000)) | pick([[], [<<"g">>, <<"v">>]])];
              N when N =< 10 ->
                  [<<"XREADGROUP">>, <<"GROUP">>, G, C, <<"COUNT">>, b(rand:uniform(8)), <<"STREAMS">>, K, <<">">>];
              11 -> [<<"XACK">>, K, G | Some()];
              12 -> [<<"XGROUP">>, <<"CREATE">>, K, G, <<"0">>];
              13 -> [<<"XCLAIM">>, K, G, C, <<"0">> | Some() ++ pick([[], [<<"JUSTID">>], [<<"FORCE">>]])];
              14 -> [<<"XAUTOCLAIM">>, K, G, C, <<"0">>, <<"0-0">>, <<"COUNT">>, b(rand:uniform(4))];
              15 -> [<<"XDEL">>, K | Some()];
              16 -> [<<"XTRIM">>, K | pick([[<<"MAXLEN">>, <<"~">>, b(rand:uniform(30))],
                                            [<<"MAXLEN">>, b(rand:uniform(40))],
                                            [<<"MINID">>, hd(Some())]])];
              17 -> [<<"XGROUP">>, <<"CREATE">>, K, G, pick([<<"$">>, <<"0">>]), <<"MKSTREAM">>];
              18 -> [<<"XGROUP">>, <<"SETID">>, K, G, pick([<<"$">>, <<"0">>, hd(Some())])];
              19 -> [<<"XGROUP">>, pick([<<"CREATECONSUMER">>, <<"DELCONSUMER">>]), K, G, C];
              20 ->
                  case rand:uniform(3) of
                      1 -> [<<"XGROUP">>, <<"DESTROY">>, K, G];
                      _ -> [<<"XREADGROUP">>, <<"GROUP">>, G, C, <<"STREAMS">>, K, <<">">>]
                  end
          end,
    _ = nsync_test_redis:cmd(S, Cmd),
    hd(Cmd).

pick(L) -> lists:nth(rand:uniform(length(L)), L).

count(Names) -> lists:foldl(fun(C, M) -> maps:update_with(C, fun(X) -> X + 1 end, 1, M) end, #{}, Names).

%% The master's pending entries of stream `K': per group, `{Id, Consumer,
%% DeliveryCount}' in id order.
pel(S, K) ->
    case nsync_test_redis:cmd(S, [<<"EXISTS">>, K]) of
        0 -> [];
        1 ->
            lists:sort([{G, [{nsync_cmd_stream:parse_id(Id), Consumer, Count}
                             || [Id, Consumer, _Idle, Count]
                                    <- nsync_test_redis:cmd(S, [<<"XPENDING">>, K, G, <<"-">>, <<"+">>, <<"1000000">>])]}
                        || G <- [maps:get(<<"name">>, maps:from_list(pairs(GL)))
                                 || GL <- nsync_test_redis:cmd(S, [<<"XINFO">>, <<"GROUPS">>, K])]])
    end.

pairs([A, B | R]) -> [{A, B} | pairs(R)];
pairs([]) -> [].

mirror_pel(T, K) ->
    case nsync:lookup(T, K) of
        [] -> [];
        [{_, {stream, _, #{groups := Groups}}}] ->
            lists:sort([{Name, [{Id, owner(Id, Cs), Count} || {Id, _Time, Count} <- Pel]}
                        || #{name := Name, pending := Pel, consumers := Cs} <- Groups])
    end.

owner(Id, Consumers) ->
    case [N || #{name := N, pending := P} <- Consumers, lists:member(Id, P)] of
        [N] -> N;
        Ns -> {owners, Ns}
    end.
