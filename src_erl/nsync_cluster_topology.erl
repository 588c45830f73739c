%%% @doc A Redis Cluster's topology: its shards (a master, its replicas and
%%% the slot ranges it serves), read from one node with `CLUSTER SHARDS'
%%% (Redis 7.0+, Valkey) or, when the node does not know it, `CLUSTER
%%% SLOTS'; and which shard of an earlier reading each shard of a new one
%%% continues (a failover promotes a replica: the shard is the same, its
%%% master changed).
%%%
%%% Pure but for `read/2', which asks through an `nsync_client'.
-module(nsync_cluster_topology).

-export([read/2, from_shards/2, from_slots/2, match/2, slot_masters/1]).

-export_type([topology/0, shard/0, node_addr/0, asked/0]).

-type node_addr() :: #{id := binary(), host := binary(), port := inet:port_number()}.
-type shard() :: #{master := node_addr(),
                   replicas := [node_addr()],
                   slots := [{0..16383, 0..16383}]}.
%% The shards that have a master, sorted.
-type topology() :: [shard()].
%% The node a reading came from (its host stands for a node whose
%% endpoint is unknown) and whether nsync talks TLS to the nodes (then a
%% node's `tls-port' is the one to use).
-type asked() :: #{host := binary(), tls := boolean()}.

%% @doc The topology as the node behind `Client' sees it.
-spec read(nsync_client:client(), asked()) -> {ok, topology()} | {error, term()}.
read(Client, Asked) ->
    case nsync_client:command(Client, [<<"CLUSTER">>, <<"SHARDS">>]) of
        {ok, Reply} ->
            parsed(fun from_shards/2, Reply, Asked);
        {error, {redis, <<"ERR unknown", _/binary>>}} ->
            slots(Client, Asked);
        {error, {redis, <<"ERR Unknown", _/binary>>}} ->
            slots(Client, Asked);
        {error, _} = E ->
            E
    end.

slots(Client, Asked) ->
    case nsync_client:command(Client, [<<"CLUSTER">>, <<"SLOTS">>]) of
        {ok, Reply} -> parsed(fun from_slots/2, Reply, Asked);
        {error, _} = E -> E
    end.

parsed(Parse, Reply, Asked) ->
    try Parse(Reply, Asked) of
        Topology -> {ok, Topology}
    catch
        error:_ -> {error, {bad_topology, Reply}}
    end.

%% @doc The topology from a `CLUSTER SHARDS' reply; the host asked stands
%% for a node whose endpoint is unknown (`?'); with TLS a node's
%% `tls-port' (`tls-cluster yes'), else its `port'. A shard's master is its online master, else its failed one (until a
%% replica is promoted the shard is still that master's); failed
%% replicas are left out, and so are shards with no master at all.
-spec from_shards(list(), asked()) -> topology().
from_shards(Reply, Asked) ->
    Shards = [shard_of(props(S), Asked) || S <- Reply],
    lists:sort([S || #{master := M} = S <- Shards, M =/= none]).

shard_of(#{<<"slots">> := Flat, <<"nodes">> := Nodes0}, Asked) ->
    Nodes = [props(N) || N <- Nodes0],
    Failed = fun(N) -> lists:member(maps:get(<<"health">>, N, <<"online">>),
                                    [<<"fail">>, <<"failed">>])
             end,
    IsMaster = fun(#{<<"role">> := R}) -> R =:= <<"master">> orelse R =:= <<"primary">>;
                  (_) -> false
               end,
    Masters = [N || N <- Nodes, IsMaster(N), not Failed(N)]
        ++ [N || N <- Nodes, IsMaster(N), Failed(N)],
    #{master => case Masters of [M | _] -> addr_of(M, Asked); [] -> none end,
      replicas => lists:sort([addr_of(N, Asked) || N <- Nodes, not IsMaster(N), not Failed(N)]),
      slots => pairs(Flat)}.

addr_of(#{<<"id">> := Id} = N, #{host := Host, tls := Tls}) ->
    %% a node lists only the ports it has (no `port' when it listens on
    %% TLS only)
    Port = case {Tls, N} of
               {true, #{<<"tls-port">> := P}} -> P;
               {_, #{<<"port">> := P}} -> P;
               {_, #{<<"tls-port">> := P}} -> P
           end,
    Endpoint = case N of
                   #{<<"endpoint">> := E} when E =/= <<"?">>, E =/= <<>>, is_binary(E) -> E;
                   #{<<"ip">> := Ip} when Ip =/= <<"?">>, Ip =/= <<>>, is_binary(Ip) -> Ip;
                   _ -> Host
               end,
    #{id => Id, host => Endpoint, port => Port}.

props([K, V | Rest]) -> (props(Rest))#{K => V};
props([]) -> #{}.

pairs([A, B | Rest]) -> [{A, B} | pairs(Rest)];
pairs([]) -> [].

%% @doc The topology from a `CLUSTER SLOTS' reply (ranges with their
%% master and the replicas that are up), grouped by master. (A node gives
%% the ports of the connection's kind: TLS ones to a TLS client.)
-spec from_slots(list(), asked()) -> topology().
from_slots(Reply, #{host := Host}) ->
    ByMaster = lists:foldl(
                 fun([A, B, Master | Replicas], Acc) ->
                         #{id := Id} = M = slot_node(Master, Host),
                         Shard = maps:get(Id, Acc, #{master => M, replicas => [], slots => []}),
                         #{replicas := Rs, slots := Ss} = Shard,
                         Acc#{Id => Shard#{replicas := lists:usort(Rs ++ [slot_node(R, Host)
                                                                         || R <- Replicas]),
                                           slots := lists:sort([{A, B} | Ss])}}
                 end, #{}, Reply),
    lists:sort(maps:values(ByMaster)).

slot_node([Ip, Port, Id | _], Host) ->
    Endpoint = case Ip of
                   _ when is_binary(Ip), Ip =/= <<>>, Ip =/= <<"?">> -> Ip;
                   _ -> Host
               end,
    #{id => Id, host => Endpoint, port => Port}.

%% @doc Which known shard each shard of `Topology' continues. `Known' is
%% `[{Ref, MasterId, NodeIds, Slots}]': a shard of an earlier reading (its
%% master's id, the ids of every node seen in it, the slot ranges it
%% served). A new shard continues the known shard with the same master,
%% else the one whose node it promoted, else the one whose master is now
%% its replica, else the one that served some of its slots (a promoted
%% replica never seen before). Returns `{Matched, New, Gone}':
%% `[{Ref, Shard}]', the shards that continue none (`[Shard]') and the
%% known shards nothing continues (`[Ref]').
-spec match(topology(), [{Ref, binary(), [binary()], [{0..16383, 0..16383}]}]) ->
          {[{Ref, shard()}], [shard()], [Ref]} when Ref :: term().
match(Topology, Known) ->
    Rules = [fun(#{master := #{id := M}}, {_, KM, _, _}) -> M =:= KM end,
             fun(#{master := #{id := M}}, {_, _, Ids, _}) -> lists:member(M, Ids) end,
             fun(#{replicas := Rs}, {_, KM, _, _}) ->
                     lists:any(fun(#{id := R}) -> R =:= KM end, Rs)
             end,
             fun(#{slots := Rs}, {_, _, _, KRs}) -> overlap(Rs, KRs) end],
    {Matched, New, Left} = lists:foldl(fun match_by/2, {[], Topology, Known}, Rules),
    {lists:reverse(Matched), New, [Ref || {Ref, _, _, _} <- Left]}.

overlap(As, Bs) ->
    lists:any(fun({A1, A2}) -> lists:any(fun({B1, B2}) -> A1 =< B2 andalso B1 =< A2 end, Bs) end,
              As).

match_by(Rule, {Matched, Shards, Known}) ->
    lists:foldl(fun(Shard, {M, S, K}) ->
                        case [Kn || Kn <- K, Rule(Shard, Kn)] of
                            [{Ref, _, _, _} = Kn | _] ->
                                {[{Ref, Shard} | M], S, lists:delete(Kn, K)};
                            [] ->
                                {M, S ++ [Shard], K}
                        end
                end, {Matched, [], Known}, Shards).

%% @doc The master id serving each slot range.
-spec slot_masters(topology()) -> [{{0..16383, 0..16383}, binary()}].
slot_masters(Topology) ->
    lists:sort([{Range, Id} || #{master := #{id := Id}, slots := Ranges} <- Topology,
                               Range <- Ranges]).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

node(Id, Port, Role, Health) ->
    [<<"id">>, Id, <<"port">>, Port, <<"ip">>, <<"127.0.0.1">>, <<"endpoint">>, <<"127.0.0.1">>,
     <<"role">>, Role, <<"replication-offset">>, 0, <<"health">>, Health].

%% as Redis 7.0.15 answers after a failover: the promoted replica leads its
%% shard, the failed master is listed as a failed replica
shards_reply() ->
    [[<<"slots">>, [0, 5460], <<"nodes">>,
      [node(<<"m1">>, 7001, <<"master">>, <<"online">>),
       node(<<"r1">>, 7004, <<"replica">>, <<"loading">>)]],
     [<<"slots">>, [5461, 10922, 16000, 16000], <<"nodes">>,
      [node(<<"r2">>, 7005, <<"master">>, <<"online">>),
       node(<<"m2">>, 7002, <<"replica">>, <<"failed">>)]],
     [<<"slots">>, [10923, 15999, 16001, 16383], <<"nodes">>,
      [node(<<"m3">>, 7003, <<"master">>, <<"online">>)]],
     [<<"slots">>, [0, 0], <<"nodes">>,
      [node(<<"dead">>, 7009, <<"master">>, <<"failed">>)]]].

addr(Id, Port) -> #{id => Id, host => <<"127.0.0.1">>, port => Port}.

plain(Host) -> #{host => Host, tls => false}.

from_shards_test() ->
    ?assertEqual(lists:sort([#{master => addr(<<"m1">>, 7001), replicas => [addr(<<"r1">>, 7004)],
                    slots => [{0, 5460}]},
                  #{master => addr(<<"m3">>, 7003), replicas => [],
                    slots => [{10923, 15999}, {16001, 16383}]},
                  #{master => addr(<<"r2">>, 7005), replicas => [],
                    slots => [{5461, 10922}, {16000, 16000}]},
                  %% a failed master not replaced yet still leads its shard
                  #{master => addr(<<"dead">>, 7009), replicas => [], slots => [{0, 0}]}]),
                 from_shards(shards_reply(), plain(<<"h">>))),
    %% TLS-only nodes (tls-cluster yes, port 0) list their tls-port only;
    %% a TLS client takes the tls-port of a node that has both
    Tls = [[<<"slots">>, [0, 16383], <<"nodes">>,
            [[<<"id">>, <<"t1">>, <<"tls-port">>, 7101, <<"endpoint">>, <<"127.0.0.1">>,
              <<"role">>, <<"master">>, <<"health">>, <<"online">>],
             [<<"id">>, <<"t2">>, <<"port">>, 7002, <<"tls-port">>, 7102,
              <<"endpoint">>, <<"127.0.0.1">>, <<"role">>, <<"replica">>,
              <<"health">>, <<"online">>]]]],
    ?assertEqual([#{master => addr(<<"t1">>, 7101), replicas => [addr(<<"t2">>, 7102)],
                    slots => [{0, 16383}]}],
                 from_shards(Tls, #{host => <<"h">>, tls => true})),
    ?assertEqual([#{master => addr(<<"t1">>, 7101), replicas => [addr(<<"t2">>, 7002)],
                    slots => [{0, 16383}]}],
                 from_shards(Tls, plain(<<"h">>))).

%% as Redis 6.2 answers (no CLUSTER SHARDS); an unknown endpoint is the
%% asked node's host
from_slots_test() ->
    Reply = [[0, 5460, [<<"127.0.0.1">>, 7001, <<"m1">>], [<<"127.0.0.1">>, 7004, <<"r1">>]],
             [5461, 10922, [<<"?">>, 7002, <<"m2">>, []]],
             [10923, 16383, [<<"127.0.0.1">>, 7001, <<"m1">>]]],
    ?assertEqual([#{master => addr(<<"m1">>, 7001), replicas => [addr(<<"r1">>, 7004)],
                    slots => [{0, 5460}, {10923, 16383}]},
                  #{master => #{id => <<"m2">>, host => <<"seed">>, port => 7002},
                    replicas => [], slots => [{5461, 10922}]}],
                 from_slots(Reply, plain(<<"seed">>))).

match_test() ->
    T = from_shards(shards_reply(), plain(<<"h">>)),
    By = fun(Id) -> hd([S || #{master := #{id := M}} = S <- T, M =:= Id]) end,
    [S1, S2, S3, Dead] = [By(<<"m1">>), By(<<"r2">>), By(<<"m3">>), By(<<"dead">>)],
    %% m1 unchanged, m2's replica r2 promoted, m3 new, a failed master's
    %% shard still there; a shard of m4 gone
    Known = [{a, <<"m1">>, [<<"m1">>, <<"r1">>], []}, {b, <<"m2">>, [<<"m2">>, <<"r2">>], []},
             {d, <<"m4">>, [<<"m4">>], []}, {e, <<"dead">>, [<<"dead">>], []}],
    {Matched, New, Gone} = match(T, Known),
    ?assertEqual({[{a, S1}, {b, S2}, {e, Dead}], [S3], [d]}, {lists:sort(Matched), New, Gone}),
    %% a demoted master (now r9's replica) continues in r9's shard
    Demoted = [#{master => addr(<<"r9">>, 1), replicas => [addr(<<"m9">>, 2)], slots => []}],
    ?assertMatch({[{x, _}], [], []}, match(Demoted, [{x, <<"m9">>, [<<"m9">>], []}])),
    %% a promoted replica never seen: the shard that served its slots
    Promoted = [#{master => addr(<<"p">>, 1), replicas => [], slots => [{5, 9}]}],
    ?assertMatch({[{y, _}], [], []}, match(Promoted, [{y, <<"m">>, [<<"m">>], [{0, 5}]}])),
    ?assertEqual([{{0, 0}, <<"dead">>}, {{0, 5460}, <<"m1">>}, {{5461, 10922}, <<"r2">>},
                  {{10923, 15999}, <<"m3">>},
                  {{16000, 16000}, <<"r2">>}, {{16001, 16383}, <<"m3">>}],
                 slot_masters(T)).
-endif.
