%% @doc Redis Cluster: real clusters of 3 masters and 3 replicas
%% (`nsync_test_cluster'), written to by a cluster-aware random load
%% (`nsync_test_cluster_client'). One cluster per server version, shared by
%% the cases of its group.
-module(nsync_cluster_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([key_slots/1, client_follows_resharding/1]).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {minutes, 5}}].

-spec all() -> [{group, atom()}].
all() -> [{group, redis_70}, {group, valkey}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    Cases = [key_slots, client_follows_resharding],
    [{redis_70, [sequence], Cases}, {valkey, [sequence], Cases}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    [{suite_started, erlang:monotonic_time(millisecond)} | Config].

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(Config) ->
    ct:pal("nsync_cluster_SUITE took ~.1f s",
           [(erlang:monotonic_time(millisecond) - ?config(suite_started, Config)) / 1000]),
    ok.

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(Group, Config) ->
    Version = case Group of
                  redis_70 -> '7.0';
                  valkey -> valkey
              end,
    T0 = erlang:monotonic_time(millisecond),
    {ok, C} = nsync_test_cluster:start(#{version => Version}),
    ct:pal("~p cluster up in ~b ms: ~p", [Version, erlang:monotonic_time(millisecond) - T0,
                                         nsync_test_cluster:masters(C)]),
    [{cluster, C}, {version, Version} | Config].

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_Group, Config) ->
    nsync_test_cluster:stop(?config(cluster, Config)).

%%% ------------------------------------------------------------ cases

%% @doc `nsync_nif:key_slot/1' gives the slot `CLUSTER KEYSLOT' gives, for
%% random keys with and without hash tags (empty, nested, unclosed).
-spec key_slots(ct_suite:ct_config()) -> ok.
key_slots(Config) ->
    [Port | _] = nsync_test_cluster:ports(?config(cluster, Config)),
    S = nsync_test_cluster:server(?config(cluster, Config), Port),
    Pieces = [<<"{">>, <<"}">>, <<"user">>, <<"1000">>, <<>>, <<0>>, <<255>>, <<"{}">>, <<"a">>],
    Keys = [iolist_to_binary([lists:nth(rand:uniform(length(Pieces)), Pieces)
                              || _ <- lists:seq(1, rand:uniform(6))])
            || _ <- lists:seq(1, 1000)]
        ++ [crypto:strong_rand_bytes(rand:uniform(40)) || _ <- lists:seq(1, 1000)],
    Wrong = [{K, Slot, Redis} || K <- Keys,
                                 Slot <- [nsync_nif:key_slot(K)],
                                 Redis <- [nsync_test_redis:cmd(S, [<<"CLUSTER">>, <<"KEYSLOT">>, K])],
                                 Slot =/= Redis],
    ?assertEqual([], Wrong).

%% @doc The test client writes to the right master while slots move
%% (`--cluster reshard' of 500 slots): every key written reads back with
%% its last value, through MOVED and ASK redirections.
-spec client_follows_resharding(ct_suite:ct_config()) -> ok.
client_follows_resharding(Config) ->
    C = ?config(cluster, Config),
    [#{port := From}, #{port := To} | _] = nsync_test_cluster:masters(C),
    Ports = nsync_test_cluster:ports(C),
    Self = self(),
    Writer = spawn_link(fun() -> Self ! {written, write_keys(nsync_test_cluster_client:new(Ports), 0, #{})} end),
    ok = nsync_test_cluster:reshard(C, From, To, 500),
    Writer ! stop,
    Written = receive {written, W} -> W end,
    ct:pal("~b keys written during the reshard", [map_size(Written)]),
    Client = nsync_test_cluster_client:new(Ports),
    Wrong = maps:fold(fun(K, V, {Acc, Cl}) ->
                              case nsync_test_cluster_client:cmd(Cl, K, [<<"GET">>, K]) of
                                  {V, Cl1} -> {Acc, Cl1};
                                  {Other, Cl1} -> {[{K, V, Other} | Acc], Cl1}
                              end
                      end, {[], Client}, Written),
    ?assertEqual([], element(1, Wrong)),
    ok = nsync_test_cluster:reshard(C, To, From, 500).

write_keys(Client, I, Acc) ->
    receive
        stop -> Acc
    after 0 ->
        K = <<"w:", (integer_to_binary(I rem 3000))/binary>>,
        V = integer_to_binary(I),
        {<<"OK">>, Client1} = nsync_test_cluster_client:cmd(Client, K, [<<"SET">>, K, V]),
        write_keys(Client1, I + 1, Acc#{K => V})
    end.
