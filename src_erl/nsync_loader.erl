%%% @doc A second process inserting a snapshot's rows beside the link.
%%%
%%% During a full sync the link process inserts every key into ETS, one
%%% core's work (~0.8 us a row), while the pump and the master leave part
%%% of the other core idle (with a disk-backed master, the whole snapshot
%%% arrives after its BGSAVE, at memory speed). The link gives every other
%%% keys item to this helper, which inserts it into the same tables (data
%%% tables are `write_concurrency'): both cores insert. Snapshot keys are
%%% distinct, so the order of the inserts does not matter; the link waits
%%% for the helper before anyone can see the tables (`finish/1', at the
%%% end of the load or when it is discarded). At most `?IN_FLIGHT' items
%%% wait for the helper, so memory stays bounded as the pump's credit
%%% bounds it. The helper watches the link and ends with it. The helper
%%% tells the link of each item done with a message `{nsync_loader, Pid,
%%% inserted}', which the link's process may get between batches and
%%% ignore: the count the helper keeps in an atomic is what `insert/4'
%%% and `finish/1' believe.
-module(nsync_loader).

-export([new/0, insert/4, finish/1]).

-export_type([loader/0]).

%% items given to the helper and not yet inserted, at most
-define(IN_FLIGHT, 2).

-record(loader, {
          pid :: pid(),
          %% items the helper has inserted (it counts them here, then says
          %% so in a message, which the link's gen_server loop may take and
          %% drop between batches: the count is what is believed)
          done :: atomics:atomics_ref(),
          %% items given to the helper
          sent = 0 :: non_neg_integer(),
          %% whether the next item goes to the helper
          helper_next = false :: boolean()
         }).

-opaque loader() :: #loader{}.
-type tabs() :: {ets:tid(), ets:tid()}.

%% @doc A helper for one load, linked to the caller.
-spec new() -> loader().
new() ->
    Link = self(),
    Done = atomics:new(1, []),
    #loader{pid = spawn_link(fun() -> helper(erlang:monitor(process, Link), Link, Done) end),
            done = Done}.

%% @doc Inserts snapshot rows into `Tabs' (data, expiry): here, or in the
%% helper, by turns.
-spec insert(tabs(), [tuple()], [tuple()], loader()) -> loader().
insert(Tabs, DataRows, ExpiryRows, #loader{helper_next = false} = L) ->
    rows(Tabs, DataRows, ExpiryRows),
    L#loader{helper_next = true};
insert(Tabs, DataRows, ExpiryRows, #loader{pid = Pid} = L) ->
    #loader{sent = N} = L1 = wait(?IN_FLIGHT - 1, L),
    Pid ! {insert, Tabs, DataRows, ExpiryRows},
    L1#loader{helper_next = false, sent = N + 1}.

%% @doc Waits until the helper has inserted everything given to it, and
%% ends it.
-spec finish(loader()) -> ok.
finish(#loader{pid = Pid} = L) ->
    _ = wait(0, L),
    unlink(Pid),
    Pid ! stop,
    ok.

%%% ------------------------------------------------------------ internal

%% Waits until at most Max items are in flight.
wait(Max, #loader{pid = Pid, done = Done, sent = Sent} = L) ->
    case Sent - atomics:get(Done, 1) =< Max of
        true ->
            L;
        false ->
            receive
                {nsync_loader, Pid, inserted} -> wait(Max, L);
                {'EXIT', Pid, Reason} -> exit(Reason)
            end
    end.

helper(Monitor, Link, Done) ->
    receive
        {insert, Tabs, DataRows, ExpiryRows} ->
            rows(Tabs, DataRows, ExpiryRows),
            atomics:add(Done, 1, 1),
            Link ! {nsync_loader, self(), inserted},
            helper(Monitor, Link, Done);
        stop ->
            ok;
        {'DOWN', Monitor, process, _, _} ->
            ok
    end.

rows({Data, Exp}, DataRows, ExpiryRows) ->
    ets:insert(Data, DataRows),
    case ExpiryRows of
        [] -> true;
        _ -> ets:insert(Exp, ExpiryRows)
    end.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

%% Every row lands, whichever process inserted it; the helper ends.
insert_test() ->
    Tabs = {ets:new(d, [set, public, {write_concurrency, true}]), ets:new(e, [set, public])},
    %% the helper's messages taken by someone else between inserts (as
    %% the link's gen_server loop does between batches) change nothing
    Drop = fun() -> receive {nsync_loader, _, inserted} -> ok after 0 -> ok end end,
    L = lists:foldl(fun(I, Acc) ->
                            [Drop() || I rem 2 =:= 0],
                            insert(Tabs, [{I, I}], [{I, 0, #{}} || I rem 3 =:= 0], Acc)
                    end, new(), lists:seq(1, 100)),
    #loader{pid = Pid} = L,
    ok = finish(L),
    ?assertEqual(lists:seq(1, 100), lists:sort([K || {K, _} <- ets:tab2list(element(1, Tabs))])),
    ?assertEqual(33, ets:info(element(2, Tabs), size)),
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok after 1000 -> error(helper_alive) end.

%% The helper ends with the process it helps.
ends_with_link_test() ->
    Self = self(),
    Link = spawn(fun() -> #loader{pid = P} = new(), Self ! {helper, P}, receive stop -> ok end end),
    Pid = receive {helper, P} -> P end,
    Ref = erlang:monitor(process, Pid),
    Link ! stop,
    receive {'DOWN', Ref, process, Pid, _} -> ok after 1000 -> error(helper_alive) end.
-endif.
