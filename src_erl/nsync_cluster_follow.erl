%%% @doc Following a cluster's topology for its manager (`nsync_cluster'):
%%% the readings (from the shards' masters first, then the seeds, through
%%% control connections kept open), when the next one is due, and the
%%% slots that move between shards, each waiting for its barrier.
%%%
%%% The topology is read again every `cluster_refresh' ms (5000), every
%%% 500 ms while slots move, a reading failed or a shard is not streaming,
%%% and `soon/1' after a sign of change. A slot the topology shows on
%%% another shard than its owner in the view moves only once the old
%%% owner's stream is past the move: its master's offset, read after the
%%% topology showed the move, is the barrier the old owner's link must
%%% reach (`CLUSTER SETSLOT ... NODE' in the stream, Valkey 8+, hands it
%%% over at once, see `nsync_cluster_shard').
%%%
%%% Runs in the manager's process: the timer's message is
%%% `{refresh, Ref}' (`due/2' says whether it is the current one) and the
%%% barriers' check `check_barriers'.
-module(nsync_cluster_follow).

-export([new/1, read/2, moves/4, check_barriers/3, forget/2, schedule/3, soon/1, due/2,
         facts/1, close/1]).

-export_type([follow/0, members/0]).

-include_lib("kernel/include/logger.hrl").

-define(FAST_REFRESH_MS, 500).
-define(SOON_MS, 50).
-define(BARRIER_CHECK_MS, 100).

-type shard() :: nsync_cluster_view:shard().
-type ranges() :: [{0..16383, 0..16383}].
%% The manager's shards as this module needs them: each one's master and
%% link (`undefined' while a crashed link waits to start again).
-type members() :: #{shard() => #{master := nsync_cluster_topology:node_addr() | none,
                                  link := pid() | undefined}}.

-record(follow, {
          name :: atom(),
          seeds :: [{binary() | string(), inet:port_number()}],
          %% what a control connection needs besides the node
          client_opts :: map(),
          tls :: boolean(),
          refresh_ms :: pos_integer(),
          %% control connections: {Host, Port} => client
          clients = #{} :: #{{binary() | string(), inet:port_number()} => nsync_client:client()},
          %% slots moving: {From, To} => {Ranges, Offset | undefined}
          barriers = #{} :: #{{shard(), shard()} => {ranges(), integer() | undefined}},
          refresh :: reference() | undefined,
          refreshes = 0 :: non_neg_integer(),
          read_at :: integer() | undefined,
          last_error :: term()
         }).

-opaque follow() :: #follow{}.

%%% ================================================================ API

%% @doc Following the cluster of a validated config (`cluster' seeds,
%% `cluster_refresh', the nodes' `user', `pass', `connect_timeout', `tls').
-spec new(map()) -> follow().
new(#{cluster := Seeds, name := Name} = Config) ->
    #follow{name = Name, seeds = Seeds,
            client_opts = maps:with([user, pass, connect_timeout, tls], Config),
            tls = maps:get(tls, Config, false) =/= false,
            refresh_ms = maps:get(cluster_refresh, Config, 5000)}.

%% @doc A reading of the topology, asked of `Masters' (the shards' masters
%% as last read) first, then of the seeds, until one answers. A failure is
%% logged once (until a reading succeeds again).
-spec read([{binary(), inet:port_number()}], follow()) ->
          {ok, nsync_cluster_topology:topology(), follow()} | {error, term(), follow()}.
read(Masters, #follow{seeds = Seeds} = F) ->
    case read_from(lists:usort(Masters) ++ [{H, P} || {H, P} <- Seeds], F, no_node) of
        {ok, Topology, F1} ->
            {ok, Topology, F1#follow{last_error = undefined}};
        {error, Reason, F1} ->
            [?LOG_WARNING("nsync: cluster ~p: cannot read the topology: ~0p", [F#follow.name, Reason])
             || Reason =/= F#follow.last_error],
            {error, Reason, F1#follow{last_error = Reason}}
    end.

%% @doc The slots of `Owners' (the last reading's `[{Range, Shard}]')
%% whose owner in the view is another shard start moving: a barrier per
%% `{From, To}', the old owner's master offset read now.
-spec moves([{{0..16383, 0..16383}, shard()}], members(), nsync_cluster_view:view(), follow()) ->
          follow().
moves(Owners, Members, View, #follow{barriers = Barriers} = F) ->
    Barriers1 = maps:map(fun(Move, Slots) ->
                                 Ranges = ranges(Slots),
                                 case Barriers of
                                     #{Move := {Ranges, Offset}} when is_integer(Offset) -> {Ranges, Offset};
                                     _ -> {Ranges, undefined}
                                 end
                         end, nsync_cluster_view:strays(View, Owners)),
    read_barriers(Members, F#follow{barriers = Barriers1}).

%% @doc Moves whose old owner's link is past the barrier are handed over
%% in the view; while moves wait, a check comes again (`check_barriers').
-spec check_barriers(members(), nsync_cluster_view:view(), follow()) -> follow().
check_barriers(Members, View, #follow{barriers = Barriers} = F) ->
    Done = maps:filter(fun({From, _}, {_, Offset}) when is_integer(Offset) ->
                               case maps:find(From, Members) of
                                   {ok, #{link := Link}} -> applied(Link) >= Offset;
                                   error -> true
                               end;
                          (_, _) -> false
                       end, Barriers),
    maps:foreach(fun({From, To}, {Ranges, _}) ->
                         ok = nsync_cluster_view:handover(View, Ranges, From, To)
                 end, Done),
    F1 = F#follow{barriers = maps:without(maps:keys(Done), Barriers)},
    [erlang:send_after(?BARRIER_CHECK_MS, self(), check_barriers) || map_size(F1#follow.barriers) > 0],
    F1.

%% @doc Shard `Shard' left the cluster: no move from or to it waits.
-spec forget(shard(), follow()) -> follow().
forget(Shard, #follow{barriers = Barriers} = F) ->
    F#follow{barriers = maps:filter(fun({From, To}, _) -> From =/= Shard andalso To =/= Shard end,
                                    Barriers)}.

%% @doc The next reading: soon while slots move (in the view: `View''s
%% contested slots, or here), the last reading failed, or a shard's link
%% is not streaming; else after `cluster_refresh'.
-spec schedule(members(), nsync_cluster_view:view(), follow()) -> follow().
schedule(Members, View, #follow{barriers = Barriers, last_error = Error} = F) ->
    Busy = map_size(Barriers) > 0 orelse Error =/= undefined
        orelse nsync_cluster_view:contested_count(View) > 0
        orelse lists:any(fun(#{link := L}) -> not streaming(L) end, maps:values(Members)),
    at(case Busy of
           true -> ?FAST_REFRESH_MS;
           false -> F#follow.refresh_ms
       end, F).

%% @doc The next reading soon (something changed).
-spec soon(follow()) -> follow().
soon(#follow{refresh = Ref} = F) ->
    case Ref =/= undefined andalso erlang:read_timer(Ref) of
        Left when is_integer(Left), Left =< ?SOON_MS -> F;
        _ -> at(?SOON_MS, F)
    end.

%% @doc Whether `{refresh, Ref}' is the reading due now (not a cancelled
%% one); the timer is then spent.
-spec due(reference(), follow()) -> {boolean(), follow()}.
due(Ref, #follow{refresh = Ref} = F) -> {true, F#follow{refresh = undefined}};
due(_Ref, F) -> {false, F}.

%% @doc What the cluster's status reports of the readings.
-spec facts(follow()) -> #{refreshes := non_neg_integer(), read_at := integer() | undefined,
                           last_error := term()}.
facts(#follow{refreshes = N, read_at = At, last_error = Error}) ->
    #{refreshes => N, read_at => At, last_error => Error}.

%% @doc Closes the control connections.
-spec close(follow()) -> ok.
close(#follow{clients = Clients}) ->
    lists:foreach(fun nsync_client:close/1, maps:values(Clients)).

%%% ============================================================ internal

read_from([], F, LastError) ->
    {error, LastError, F};
read_from([{Host, Port} | Rest], F, _LastError) ->
    case client(Host, Port, F) of
        {ok, Client, F1} ->
            case nsync_cluster_topology:read(Client, #{host => Host, tls => F#follow.tls}) of
                {ok, Topology} ->
                    {ok, Topology, F1#follow{refreshes = F1#follow.refreshes + 1,
                                             read_at = erlang:system_time(millisecond)}};
                {error, Reason} ->
                    read_from(Rest, drop_client(Host, Port, F1), {Host, Port, Reason})
            end;
        {error, Reason, F1} ->
            read_from(Rest, F1, {Host, Port, Reason})
    end.

%% Sorted slots as ranges.
ranges([]) -> [];
ranges([S | Rest]) -> ranges(Rest, S, S, []).
ranges([S | Rest], A, B, Acc) when S =:= B + 1 -> ranges(Rest, A, S, Acc);
ranges([S | Rest], A, B, Acc) -> ranges(Rest, S, S, [{A, B} | Acc]);
ranges([], A, B, Acc) -> lists:reverse([{A, B} | Acc]).

%% The old owners' master offsets for the moves that have none yet.
read_barriers(Members, #follow{barriers = Barriers} = F) ->
    maps:fold(fun({From, _} = Move, {Ranges, undefined}, F0) ->
                      case master_offset(maps:get(From, Members, undefined), F0) of
                          {ok, Offset, F1} ->
                              F1#follow{barriers = (F1#follow.barriers)#{Move := {Ranges, Offset}}};
                          {error, F1} ->
                              F1
                      end;
                 (_, _, F0) -> F0
              end, F, Barriers).

master_offset(#{master := #{host := H, port := P}}, F) ->
    case client(H, P, F) of
        {ok, Client, F1} ->
            case nsync_client:command(Client, [<<"INFO">>, <<"replication">>]) of
                {ok, Info} when is_binary(Info) ->
                    case re:run(Info, <<"master_repl_offset:(\\d+)">>, [{capture, all_but_first, binary}]) of
                        {match, [N]} -> {ok, binary_to_integer(N), F1};
                        nomatch -> {error, F1}
                    end;
                _ -> {error, drop_client(H, P, F1)}
            end;
        {error, _, F1} ->
            {error, F1}
    end;
master_offset(_, F) ->
    {error, F}.

streaming(Link) ->
    try nsync_status:status(Link) of
        #{state := streaming} -> true;
        _ -> false
    catch
        exit:_ -> false
    end.

applied(Link) ->
    try nsync_status:status(Link) of
        #{offset := Offset} when is_integer(Offset) -> Offset;
        _ -> -1
    catch
        exit:_ -> -1
    end.

%% A control connection to a node, opened on demand and kept.
client(Host, Port, #follow{clients = Clients, client_opts = Opts} = F) ->
    case Clients of
        #{{Host, Port} := C} ->
            {ok, C, F};
        _ ->
            case nsync_client:open(Opts#{host => Host, port => Port}) of
                {ok, C} -> {ok, C, F#follow{clients = Clients#{{Host, Port} => C}}};
                {error, Reason} -> {error, Reason, F}
            end
    end.

drop_client(Host, Port, #follow{clients = Clients} = F) ->
    case maps:take({Host, Port}, Clients) of
        {C, Rest} -> nsync_client:close(C), F#follow{clients = Rest};
        error -> F
    end.

at(Delay, #follow{refresh = Old} = F) ->
    _ = [erlang:cancel_timer(Old) || Old =/= undefined],
    Ref = make_ref(),
    _ = erlang:send_after(Delay, self(), {refresh, Ref}),
    F#follow{refresh = Ref}.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

ranges_test() ->
    ?assertEqual([], ranges([])),
    ?assertEqual([{1, 3}, {5, 5}, {7, 8}], ranges([1, 2, 3, 5, 7, 8])).
-endif.
