%% @doc The mirror outlives its link: a link killed or crashed under
%% `nsync:child_spec/1' leaves its tables to its restarted self (readers
%% never see `badarg' nor a missing key meanwhile), "not loaded yet" is
%% `undefined', a stopped link deletes its tables, and a link starts the
%% nsync application when nobody did. Against Redis 7.0.
-module(nsync_tables_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([killed_link_keeps_mirror/1, crashed_link_keeps_mirror/1,
         not_loaded_is_undefined/1, stop_deletes_tables/1, starts_application/1]).

-define(T, 20000).
%% Keys of the master; the restarted link's full sync waits for the
%% master's diskless delay (checked once a second by Redis), so that readers
%% depend on the old tables for a while.
-define(KEYS, 20000).
-define(SYNC_DELAY_S, 2).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 60}}].

-spec all() -> [atom()].
all() -> [killed_link_keeps_mirror, crashed_link_keeps_mirror, not_loaded_is_undefined,
          stop_deletes_tables, starts_application].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    {ok, S} = nsync_test_redis:start(#{version => '7.0', diskless => true}),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc `exit(Pid, kill)' under `child_spec/1': a reader looking keys up all
%% along never gets `badarg' nor `[]' for a key the master has; the
%% restarted link serves the old tables, stale, until its snapshot is
%% complete, then readers switch to the new ones (with the write made
%% meanwhile) at once.
-spec killed_link_keeps_mirror(ct_suite:ct_config()) -> ok.
killed_link_keeps_mirror(Config) ->
    restarted_link_keeps_mirror(kill, Config).

%% @doc The same when the link crashes (an exit signal it does not expect:
%% it runs terminate/2 with that reason) rather than being killed.
-spec crashed_link_keeps_mirror(ct_suite:ct_config()) -> ok.
crashed_link_keeps_mirror(Config) ->
    restarted_link_keeps_mirror(boom, Config).

restarted_link_keeps_mirror(Signal, Config) ->
    S = ?config(server, Config),
    nsync_test_redis:set_keys(S, <<"k:">>, 1, ?KEYS, <<"v">>),
    Spec = nsync:child_spec(opts(Config, [{block, true}, {timeout, ?T}])),
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(nsync_api_SUITE_sup, Spec),
    [{_, Pid1, worker, _}] = supervisor:which_children(Sup),
    Old = nsync:tid(),
    ?KEYS = ets:info(Old, size),
    #{stale := false} = nsync:status(Pid1),
    %% The restarted link's full sync waits this long for the master.
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"repl-diskless-sync-delay">>,
                                        integer_to_binary(?SYNC_DELAY_S)]),
    Reader = start_reader(),
    timer:sleep(50),
    T0 = erlang:monotonic_time(millisecond),
    exit(Pid1, Signal),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"after">>, <<"1">>]),
    Pid2 = wait_for(fun() ->
                            case supervisor:which_children(Sup) of
                                [{_, P, worker, _}] when is_pid(P), P =/= Pid1 -> P;
                                _ -> false
                            end
                    end),
    %% the supervisor's start waits for the snapshot ({block, true}), so
    %% the status call is answered once the new tables are in
    Restarted = erlang:monotonic_time(millisecond) - T0,
    #{stale := false} = nsync:status(Pid2),
    New = nsync:tid(),
    ?assertNotEqual(Old, New),
    [{<<"after">>, <<"1">>}] = nsync:lookup(nsync, <<"after">>),
    ?KEYS + 1 = ets:info(New, size),
    #{reads := Reads, badarg := Badarg, missing := Missing, stale_seen := StaleSeen,
      tids := Tids} = stop_reader(Reader),
    ct:pal("link exit(Pid, ~p): restarted and loaded in ~b ms; reader: ~b lookups, ~b badarg, "
           "~b missing, stale seen in status ~b times, tables seen ~b",
           [Signal, Restarted, Reads, Badarg, Missing, StaleSeen, length(Tids)]),
    ?assertEqual(0, Badarg),
    ?assertEqual(0, Missing),
    ?assert(StaleSeen > 0),
    ?assert(Restarted >= 1000),
    ?assertEqual(lists:sort([Old, New]), lists:sort(Tids)),
    %% the old tables go after their grace period
    wait_for(fun() -> ets:info(Old) =:= undefined end),
    unlink(Sup),
    exit(Sup, shutdown),
    wait_for(fun() -> nsync:tid() =:= undefined end),
    ok.

%% @doc Before its first snapshot a link's table is `undefined' (not an
%% empty table): `nsync:tid/0' is `undefined' and `nsync:lookup/2' raises
%% badarg, while the link waits for the master; the table appears with the
%% snapshot.
-spec not_loaded_is_undefined(ct_suite:ct_config()) -> ok.
not_loaded_is_undefined(Config) ->
    S = ?config(server, Config),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"a">>, <<"1">>]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"CONFIG">>, <<"SET">>, <<"repl-diskless-sync-delay">>,
                                        <<"1">>]),
    {ok, Pid} = nsync:start_link(opts(Config, [])),
    timer:sleep(300),
    #{state := State, stale := true, stale_reason := not_loaded} = nsync:status(Pid),
    ?assertNotEqual(streaming, State),
    undefined = nsync:tid(),
    {'EXIT', {badarg, _}} = (catch nsync:lookup(nsync, <<"a">>)),
    %% the name is held all the same
    {error, {already_started, Pid}} = nsync:start_link(opts(Config, [])),
    wait_for(fun() -> nsync:tid() =/= undefined end),
    [{<<"a">>, <<"1">>}] = nsync:lookup(nsync, <<"a">>),
    ok = nsync:stop(Pid).

%% @doc A link that is stopped (nsync:stop/1, or its supervisor) deletes
%% its tables: nothing is left to a successor.
-spec stop_deletes_tables(ct_suite:ct_config()) -> ok.
stop_deletes_tables(Config) ->
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    Tid = nsync:tid(),
    ok = nsync:stop(Pid),
    undefined = ets:info(Tid),
    undefined = nsync:tid(),
    Spec = nsync:child_spec(opts(Config, [{block, true}, {timeout, ?T}])),
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(nsync_api_SUITE_sup, Spec),
    Tid2 = nsync:tid(),
    ok = supervisor:terminate_child(Sup, {nsync, nsync}),
    undefined = ets:info(Tid2),
    undefined = nsync:tid(),
    unlink(Sup),
    exit(Sup, shutdown),
    ok.

%% @doc nsync:start_link/1 works when the nsync application was not
%% started: it starts it (its table owner) on demand.
-spec starts_application(ct_suite:ct_config()) -> ok.
starts_application(Config) ->
    ok = application:stop(nsync),
    undefined = whereis(nsync_owner),
    {ok, Pid} = nsync:start_link(opts(Config, [{block, true}, {timeout, ?T}])),
    true = lists:keymember(nsync, 1, application:which_applications()),
    Owner = whereis(nsync_owner),
    Owner = ets:info(nsync:tid(), owner),
    ok = nsync:stop(Pid).

%%% ----------------------------------------------------------- helpers

opts(Config, Extra) ->
    Extra ++ [{host, "127.0.0.1"}, {port, nsync_test_redis:port(?config(server, Config))}].

%% Polls `Fun' until it returns something other than false.
wait_for(Fun) ->
    wait_for(Fun, ?T).

wait_for(Fun, Ms) when Ms =< 0 ->
    error({timeout, Fun()});
wait_for(Fun, Ms) ->
    case catch Fun() of
        false -> timer:sleep(20), wait_for(Fun, Ms - 20);
        {'EXIT', _} -> timer:sleep(20), wait_for(Fun, Ms - 20);
        Result -> Result
    end.

%% A reader that looks up a key of the master through nsync:lookup/2 as a
%% user would, counting lookups that fail (badarg) or miss the key, the
%% tables it saw, and how often the link said its tables were stale.
start_reader() ->
    spawn_link(fun() -> reader(#{reads => 0, badarg => 0, missing => 0, stale_seen => 0,
                                 tids => []}, 0) end).

reader(Acc, N) ->
    receive
        {stop, From} -> From ! {reader, read(Acc, N)}
    after 0 ->
            timer:sleep(1),
            reader(read(Acc, N), N + 1)
    end.

read(Acc, N) ->
    Acc1 = case catch nsync:lookup(nsync, <<"k:7">>) of
               [{_, _}] -> Acc;
               [] -> bump(missing, Acc);
               {'EXIT', {badarg, _}} -> bump(badarg, Acc)
           end,
    Tids = case nsync:tid() of
               undefined -> maps:get(tids, Acc1);
               Tid -> lists:usort([Tid | maps:get(tids, Acc1)])
           end,
    Acc2 = case N rem 100 =:= 0 andalso stale() of
               true -> bump(stale_seen, Acc1);
               false -> Acc1
           end,
    bump(reads, Acc2#{tids := Tids}).

%% Whether the current link of the default mirror says readers see the
%% tables of a crashed link (status/1 does not wait for the link, which
%% may be busy loading), and the registry says the same.
stale() ->
    case catch nsync:status(nsync_registry:holder(nsync)) of
        #{stale_reason := crashed_link} -> nsync_registry:stale(nsync);
        _ -> false
    end.

bump(Key, Acc) ->
    maps:update_with(Key, fun(V) -> V + 1 end, Acc).

stop_reader(Pid) ->
    Pid ! {stop, self()},
    receive {reader, Acc} -> Acc after ?T -> error(reader_timeout) end.
