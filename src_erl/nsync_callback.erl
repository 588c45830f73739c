%%% @doc A link's callback: gives it events, routes them by its return
%%% value, and keeps a callback that raises from stopping the link.
%%%
%%% The four forms: `{M, F}', `{M, F, A}' (called as
%%% `apply(M, F, A ++ [Event])'), a fun of arity 1, or a pid (events sent as
%%% messages). The return value names the table the event goes to: an atom;
%%% `undefined', `skip', `ok', `true' and `false' (what `ets:insert/2' and
%%% friends return) and anything else store nothing. A callback that raises
%%% is counted and logged, at most once a second, so that one failing on
%%% every key of a big snapshot cannot flood the log. The default callback
%%% (the ETS mirror) is not run: commands go to its table, nothing else
%%% does (snapshot keys reach it as rows, not through here).
-module(nsync_callback).

-include("nsync_log.hrl").

-export([new/2, notify/2, errors/1]).

-export_type([callback/0, route/0]).

-define(LOG_INTERVAL_MS, 1000).

-record(callback, {
          callback :: nsync_opts:callback(),
          %% the default mirror's table
          name :: atom(),
          errors = 0 :: non_neg_integer(),
          logged_at :: integer() | undefined,
          %% failures since the last one logged
          unlogged = 0 :: non_neg_integer()
         }).

-opaque callback() :: #callback{}.
%% The table an event goes to, or none.
-type route() :: atom().

%% @doc The callback of a link whose default table is `Name'.
-spec new(nsync_opts:callback(), atom()) -> callback().
new(Callback, Name) ->
    #callback{callback = Callback, name = Name}.

%% @doc Gives `Event' to the callback; returns the table it routes to.
-spec notify(nsync:event(), callback()) -> {route() | none, callback()}.
notify({cmd, _, _}, #callback{callback = default, name = Name} = Cb) ->
    {Name, Cb};
notify(_Event, #callback{callback = default} = Cb) ->
    {none, Cb};
notify(Event, #callback{callback = Callback} = Cb) ->
    try run(Callback, Event) of
        Result -> {route(Result), Cb}
    catch
        Class:Reason:Stack -> {none, failed(Event, Class, Reason, Stack, Cb)}
    end.

%% @doc How many times the callback raised.
-spec errors(callback()) -> non_neg_integer().
errors(#callback{errors = Errors}) ->
    Errors.

%%% ------------------------------------------------------------ internal

run({M, F}, Event) -> M:F(Event);
run({M, F, A}, Event) -> apply(M, F, A ++ [Event]);
run(Fun, Event) when is_function(Fun, 1) -> Fun(Event);
run(Pid, Event) when is_pid(Pid) -> Pid ! Event.

route(Result) when Result =:= undefined; Result =:= skip; Result =:= ok;
                   is_boolean(Result) -> none;
route(Table) when is_atom(Table) -> Table;
route(_) -> none.

failed(Event, Class, Reason, Stack,
       #callback{errors = Errors, logged_at = At, unlogged = Unlogged} = Cb) ->
    Now = erlang:monotonic_time(millisecond),
    case At =:= undefined orelse Now - At >= ?LOG_INTERVAL_MS of
        true ->
            ?LOG_ERROR(#{what => nsync_callback_failed, event => summary(Event),
                         class => Class, reason => Reason, stacktrace => Stack,
                         failures_not_logged => Unlogged}, ?NSYNC_LOG),
            Cb#callback{errors = Errors + 1, logged_at = Now, unlogged = 0};
        false ->
            Cb#callback{errors = Errors + 1, unlogged = Unlogged + 1}
    end.

%% Keeps big values out of the log.
summary({load, Key, _Value}) -> {load, Key, '...'};
summary(Event) -> Event.

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

route_test() ->
    ?assertEqual(none, route(undefined)),
    ?assertEqual(none, route(skip)),
    ?assertEqual(none, route(ok)),
    ?assertEqual(none, route(true)),
    ?assertEqual(none, route({load, <<"k">>, <<"v">>})),
    ?assertEqual(foo, route(foo)).

default_test() ->
    Cb = new(default, mirror),
    ?assertEqual({mirror, Cb}, notify({cmd, <<"set">>, [<<"k">>, <<"v">>]}, Cb)),
    ?assertEqual({none, Cb}, notify({load, eof}, Cb)).

forms_test() ->
    Self = self(),
    Event = {load, <<"k">>, <<"v">>},
    ?assertMatch({table, _}, notify(Event, new(fun(E) -> Self ! E, table end, mirror))),
    ?assertMatch({load, _}, notify(Event, new({erlang, element, [1]}, mirror))),
    ?assertMatch({none, _}, notify(Event, new({erlang, is_tuple}, mirror))),
    ?assertMatch({none, _}, notify(Event, new(Self, mirror))),
    ?assertEqual([Event, Event], [receive E -> E after 0 -> none end || _ <- [1, 2]]).

raising_is_counted_test() ->
    Cb0 = new(fun(_) -> error(boom) end, mirror),
    {none, Cb1} = notify({load, <<"k">>, <<"v">>}, Cb0),
    {none, Cb2} = notify({cmd, <<"set">>, []}, Cb1),
    ?assertEqual(2, errors(Cb2)).
-endif.
