%%% @doc The Sentinel layer of one link: where its master is, and when that
%%% changes. A layer above the link, through its seam: the link asks
%%% `master/1' (its `next_master') before each session, and this process
%%% calls `nsync_link:reconnect/1' when the master moves.
%%%
%%% Where the master is: each sentinel in turn (the last one that answered
%%% first) is asked `SENTINEL get-master-addr-by-name Name', and the address
%%% is confirmed with `ROLE' on it (with the link's credentials and TLS): a
%%% sentinel whose view is stale, or a replica not promoted yet, is not
%%% taken for the master.
%%%
%%% When it moves: a connection to one sentinel subscribes to
%%% `+switch-master'; a switch of this master to another address than the
%%% link's makes the link reconnect at once (and resume there with PSYNC:
%%% a promoted replica keeps the old replication id as its second one). When
%%% that connection is lost, another sentinel is subscribed to and asked
%%% again, so that a switch missed meanwhile is followed too.
%%%
%%% The option (validated by `validate/1'): `#{sentinels := [{Host, Port}],
%%% master := Name}', plus `user', `pass' and `tls' for the sentinels (not
%%% the master: the link's own options are used for it).
-module(nsync_sentinel).
-behaviour(gen_server).

-include("nsync_log.hrl").

%% API
-export([validate/1, start_link/2, master/1]).
%% gen_server callbacks
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         format_status/1]).

-export_type([options/0]).

-type options() :: #{sentinels := [{binary(), inet:port_number()}],
                     master := binary(),
                     user := binary() | undefined,
                     pass := binary() | undefined,
                     tls := nsync_tls:tls() | false}.
%% What the layer needs of its link's config: how to reach and check a
%% master, and the link's name (for telemetry).
-type master_auth() :: #{user := binary() | undefined,
                         pass := binary() | undefined,
                         tls := nsync_tls:tls() | false,
                         connect_timeout := pos_integer(),
                         name := atom()}.

-define(SWITCH, <<"+switch-master">>).
%% After every sentinel refused the subscription, try again this much later.
-define(RESUBSCRIBE_MS, 1000).
-define(CMD_TIMEOUT, 5000).

-record(state, {options :: options(),
                auth :: master_auth(),
                link :: pid(),
                %% the sentinels, the one that answered last first
                sentinels :: [{binary(), inet:port_number()}],
                %% the master last given to the link
                given :: nsync_nif:master() | undefined,
                %% the subscribed connection and its sentinel
                subscription :: {nsync_client:client(), {binary(), inet:port_number()}}
                              | undefined}).

%%% ================================================================ API

%% @doc Checks the `sentinel' option: a map or proplist with `sentinels'
%% (a non-empty list of `{Host, Port}') and `master' (the name the
%% sentinels monitor), and optionally `user', `pass' and `tls' for the
%% sentinels.
-spec validate(term()) -> {ok, options()} | {error, {badarg, {sentinel, term()}}}.
validate(Opts) when is_list(Opts) ->
    try validate(maps:from_list(Opts))
    catch error:_ -> {error, {badarg, {sentinel, Opts}}}
    end;
validate(#{sentinels := [_ | _] = Sentinels, master := Name} = Opts) ->
    try
        Valid = #{sentinels => [address(S) || S <- Sentinels],
                  master => text(Name, master),
                  user => optional_text(maps:get(user, Opts, undefined), user),
                  pass => optional_text(maps:get(pass, Opts, undefined), pass),
                  tls => tls(maps:get(tls, Opts, false))},
        case maps:keys(maps:without([sentinels, master, user, pass, tls], Opts)) of
            [] -> {ok, Valid};
            [Unknown | _] -> {error, {badarg, {sentinel, {Unknown, maps:get(Unknown, Opts)}}}}
        end
    catch
        throw:{bad, Bad} -> {error, {badarg, {sentinel, Bad}}}
    end;
validate(Opts) ->
    {error, {badarg, {sentinel, Opts}}}.

%% @doc Starts the layer of link `Link' (the caller, which it is linked to);
%% `Auth' is how the link reaches a master.
-spec start_link(options(), master_auth()) -> {ok, pid()} | {error, term()}.
start_link(Options, Auth) ->
    gen_server:start_link(?MODULE, {Options, Auth, self()}, []).

%% @doc Where the master is now (see the module doc), or why that is not
%% known: `{sentinel, [{Sentinel, Why}]}' with each sentinel's answer.
-spec master(pid()) -> nsync_nif:master() | {error, term()}.
master(Layer) ->
    try gen_server:call(Layer, master, infinity)
    catch exit:Reason -> {error, {sentinel, {layer_down, Reason}}}
    end.

%%% ========================================================== callbacks

%% @private
-spec init({options(), master_auth(), pid()}) -> {ok, #state{}}.
init({#{sentinels := Sentinels} = Options, Auth, Link}) ->
    %% The link may stop normally (which a link does not propagate).
    monitor(process, Link),
    self() ! subscribe,
    {ok, #state{options = Options, auth = Auth, link = Link, sentinels = Sentinels}}.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(master, _From, State) ->
    case resolve(State) of
        {ok, Master, State1} -> {reply, Master, State1#state{given = Master}};
        {error, _} = Error -> {reply, Error, State}
    end;
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, normal, #state{}}.
handle_info({'DOWN', _, process, Link, _}, #state{link = Link} = State) ->
    {stop, normal, State};
handle_info(subscribe, #state{subscription = undefined} = State) ->
    {noreply, subscribe(State)};
handle_info({nsync_client, Client, {message, ?SWITCH, Payload}},
            #state{subscription = {Client, _}} = State) ->
    {noreply, switched(binary:split(Payload, <<" ">>, [global]), State)};
handle_info({nsync_client, Client, {closed, Reason}},
            #state{subscription = {Client, Sentinel}} = State) ->
    ?LOG_WARNING("nsync: lost the subscription to sentinel ~s: ~0p; subscribing to another",
                 [address_text(Sentinel), Reason], ?NSYNC_LOG),
    State1 = subscribe(State#state{subscription = undefined,
                                   sentinels = rotate(Sentinel, State#state.sentinels)}),
    {noreply, recheck(State1)};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{subscription = {Client, _}}) ->
    nsync_client:close(Client);
terminate(_Reason, _State) ->
    ok.

%% @private Keeps passwords out of crash reports.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(#{state := #state{options = O, auth = A} = State} = Status) ->
    Status#{state := State#state{options = O#{pass := redacted(maps:get(pass, O))},
                                 auth = A#{pass := redacted(maps:get(pass, A))}}};
format_status(Status) ->
    Status.

%%% ============================================================ internal

%%% ------------------------------------------------------------ the master

%% Asks the sentinels in turn; the first confirmed answer wins and its
%% sentinel goes first next time.
resolve(#state{sentinels = Sentinels} = State) ->
    resolve(Sentinels, [], State).

resolve([], Failures, _State) ->
    {error, {sentinel, lists:reverse(Failures)}};
resolve([Sentinel | Rest], Failures, #state{sentinels = All} = State) ->
    case ask(Sentinel, State) of
        {ok, Master} ->
            {ok, Master, State#state{sentinels = [Sentinel | lists:delete(Sentinel, All)]}};
        {error, Why} ->
            resolve(Rest, [{Sentinel, Why} | Failures], State)
    end.

ask(Sentinel, #state{options = #{master := Name}} = State) ->
    case with_client(sentinel_opts(Sentinel, State),
                     fun(C) -> nsync_client:command(C, [<<"SENTINEL">>,
                                                         <<"get-master-addr-by-name">>, Name],
                                                    ?CMD_TIMEOUT)
                     end) of
        {ok, [Host, Port]} when is_binary(Host), is_binary(Port) ->
            case port(Port) of
                {ok, P} -> confirm(#{host => Host, port => P}, State);
                error -> {error, {unexpected, [Host, Port]}}
            end;
        {ok, undefined} ->
            {error, {unknown_master, Name}};
        {ok, Other} ->
            {error, {unexpected, Other}};
        {error, _} = Error ->
            Error
    end.

%% The address must answer ROLE as a master.
confirm(#{host := Host, port := Port} = Master, #state{auth = Auth}) ->
    Opts = (maps:with([user, pass, tls, connect_timeout], Auth))#{host => Host, port => Port},
    case with_client(Opts, fun(C) -> nsync_client:command(C, [<<"ROLE">>], ?CMD_TIMEOUT) end) of
        {ok, [<<"master">> | _]} -> {ok, Master};
        {ok, [Role | _]} when is_binary(Role) -> {error, {not_master, {Host, Port}, Role}};
        {ok, Other} -> {error, {role, {Host, Port}, Other}};
        {error, Why} -> {error, {role, {Host, Port}, Why}}
    end.

with_client(Opts, Fun) ->
    case nsync_client:open(Opts) of
        {ok, C} ->
            try Fun(C)
            after nsync_client:close(C)
            end;
        {error, _} = Error ->
            Error
    end.

sentinel_opts({Host, Port}, #state{options = O, auth = #{connect_timeout := T}}) ->
    #{host => Host, port => Port, user => maps:get(user, O), pass => maps:get(pass, O),
      tls => maps:get(tls, O), connect_timeout => T}.

%%% ------------------------------------------------------- the switches

%% Subscribes to +switch-master on the first sentinel that accepts; if none
%% does, tries again a little later.
subscribe(#state{sentinels = Sentinels} = State) ->
    subscribe(Sentinels, State).

subscribe([], State) ->
    erlang:send_after(?RESUBSCRIBE_MS, self(), subscribe),
    State;
subscribe([Sentinel | Rest], State) ->
    case nsync_client:open(sentinel_opts(Sentinel, State)) of
        {ok, C} ->
            case nsync_client:subscribe(C, [?SWITCH], ?CMD_TIMEOUT) of
                ok ->
                    State#state{subscription = {C, Sentinel}};
                {error, _} ->
                    nsync_client:close(C),
                    subscribe(Rest, State)
            end;
        {error, _} ->
            subscribe(Rest, State)
    end.

%% `<name> <old-ip> <old-port> <new-ip> <new-port>'.
switched([Name, _OldHost, _OldPort, Host, Port], #state{options = #{master := Name}} = State) ->
    case port(Port) of
        {ok, P} ->
            ?LOG_NOTICE("nsync: sentinel: master ~s switched to ~s:~b", [Name, Host, P],
                        ?NSYNC_LOG),
            follow(#{host => Host, port => P}, State);
        error ->
            State
    end;
switched(_Other, State) ->
    State.

%% A port number a sentinel sent, as text.
port(Text) ->
    try binary_to_integer(Text) of
        P when P > 0, P < 65536 -> {ok, P};
        _ -> error
    catch
        error:badarg -> error
    end.

%% After a lost subscription: a switch may have been missed.
recheck(State) ->
    case resolve(State) of
        {ok, Master, State1} -> follow(Master, State1);
        {error, _} -> State
    end.

%% The link reconnects if the master is not the one it was given
%% (`[nsync, failover]' tells).
follow(Master, #state{given = Master} = State) ->
    State;
follow(#{host := Host, port := Port}, #state{link = Link, given = Given,
                                          options = #{master := Name},
                                          auth = #{name := LinkName}} = State) ->
    Previous = case Given of
                   #{host := H, port := P} -> {H, P};
                   undefined -> undefined
               end,
    nsync_telemetry:event([failover], #{system_time => erlang:system_time()},
                          #{name => LinkName, master => {Host, Port}, previous => Previous,
                            sentinel_master => Name}),
    ok = nsync_link:reconnect(Link),
    State.

%%% ------------------------------------------------------------- helpers

rotate(Sentinel, Sentinels) ->
    lists:delete(Sentinel, Sentinels) ++ [Sentinel].

address({Host, Port}) when is_integer(Port), Port > 0, Port < 65536 ->
    {host(Host), Port};
address(Bad) ->
    throw({bad, {sentinels, Bad}}).

host(H) when is_tuple(H) ->
    case inet:is_ip_address(H) of
        true -> list_to_binary(inet:ntoa(H));
        false -> throw({bad, {host, H}})
    end;
host(H) when is_atom(H) -> host(atom_to_list(H));
host(H) -> text(H, host).

text(T, _Key) when is_binary(T), T =/= <<>> -> T;
text(T, Key) when is_list(T), T =/= [] ->
    case catch unicode:characters_to_binary(T) of
        B when is_binary(B) -> B;
        _ -> throw({bad, {Key, T}})
    end;
text(T, Key) -> throw({bad, {Key, T}}).

optional_text(undefined, _Key) -> undefined;
optional_text(T, Key) -> text(T, Key).

tls(Tls) ->
    case nsync_tls:validate(Tls) of
        {ok, Valid} -> Valid;
        {error, {badarg, Bad}} -> throw({bad, Bad})
    end.

address_text({Host, Port}) -> io_lib:format("~s:~b", [Host, Port]).

redacted(undefined) -> undefined;
redacted(_) -> <<"(redacted)">>.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

validate_test() ->
    ?assertMatch({ok, #{sentinels := [{<<"127.0.0.1">>, 26379}, {<<"s2">>, 1}],
                        master := <<"mymaster">>, user := undefined, pass := <<"p">>,
                        tls := false}},
                 validate(#{sentinels => [{{127, 0, 0, 1}, 26379}, {"s2", 1}],
                            master => "mymaster", pass => "p"})),
    ?assertMatch({ok, #{tls := #{verify := none}}},
                 validate([{sentinels, [{"h", 1}]}, {master, <<"m">>}, {tls, [{verify, none}]}])),
    ?assertEqual({error, {badarg, {sentinel, {sentinels, {"h", 0}}}}},
                 validate(#{sentinels => [{"h", 0}], master => "m"})),
    ?assertEqual({error, {badarg, {sentinel, #{sentinels => [], master => "m"}}}},
                 validate(#{sentinels => [], master => "m"})),
    ?assertEqual({error, {badarg, {sentinel, {extra, 1}}}},
                 validate(#{sentinels => [{"h", 1}], master => "m", extra => 1})),
    ?assertEqual({error, {badarg, {sentinel, {tls, {verify, x}}}}},
                 validate(#{sentinels => [{"h", 1}], master => "m", tls => [{verify, x}]})),
    ?assertEqual({error, {badarg, {sentinel, nope}}}, validate(nope)).

port_test() ->
    ?assertEqual({ok, 6379}, port(<<"6379">>)),
    ?assertEqual(error, port(<<"0">>)),
    ?assertEqual(error, port(<<"x">>)).

rotate_test() ->
    ?assertEqual([b, c, a], rotate(a, [a, b, c])).
-endif.
