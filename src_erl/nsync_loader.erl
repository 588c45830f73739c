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
%%% bounds it. The helper watches the link and ends with it. It counts
%%% the items it has inserted in an atomic, and sends a message only to a
%%% link that waits for one (a flag beside the count): no message of it
%%% ever reaches the link's process between batches.
-module(nsync_loader).

-export([new/0, insert/4, finish/1]).

-export_type([loader/0]).

%% items given to the helper and not yet inserted, at most
-define(IN_FLIGHT, 2).

-record(loader, {
          pid :: pid(),
          %% 1: items the helper has inserted; 2: 1 while the link waits
          %% for a message saying it inserted one more
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
    Done = atomics:new(2, []),
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

%% Waits until at most Max items are in flight. The flag says the link
%% waits: the helper takes it (exchange) and sends one message; if the
%% count is enough after all, the link takes the flag back, or gets the
%% message a helper that took it sends.
wait(Max, #loader{pid = Pid, done = Done, sent = Sent} = L) ->
    case Sent - atomics:get(Done, 1) =< Max of
        true ->
            L;
        false ->
            atomics:put(Done, 2, 1),
            case Sent - atomics:get(Done, 1) =< Max of
                true ->
                    case atomics:exchange(Done, 2, 0) of
                        1 -> L;
                        0 -> message(Pid), L
                    end;
                false ->
                    message(Pid),
                    wait(Max, L)
            end
    end.

message(Pid) ->
    receive
        {nsync_loader, Pid, inserted} -> ok;
        {'EXIT', Pid, Reason} -> exit(Reason)
    end.

helper(Monitor, Link, Done) ->
    receive
        {insert, Tabs, DataRows, ExpiryRows} ->
            rows(Tabs, DataRows, ExpiryRows),
            atomics:add(Done, 1, 1),
            case atomics:exchange(Done, 2, 0) of
                1 -> Link ! {nsync_loader, self(), inserted};
                0 -> ok
            end,
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

%% Every row lands, whichever process inserted it; the helper ends and
%% leaves no message behind.
insert_test() ->
    Tabs = {ets:new(d, [set, public, {write_concurrency, true}]), ets:new(e, [set, public])},
    L = lists:foldl(fun(I, Acc) -> insert(Tabs, [{I, I}], [{I, 0, #{}} || I rem 3 =:= 0], Acc) end,
                    new(), lists:seq(1, 1000)),
    #loader{pid = Pid} = L,
    ok = finish(L),
    ?assertEqual(lists:seq(1, 1000), lists:sort([K || {K, _} <- ets:tab2list(element(1, Tabs))])),
    ?assertEqual(333, ets:info(element(2, Tabs), size)),
    %% no message of the helper is left to the caller
    ?assertEqual(none, receive Msg -> Msg after 100 -> none end),
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
