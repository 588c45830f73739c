%%% @doc The example of the original nsync: replicate a master and keep keys
%%% starting with `foo' in table `foo' and keys starting with `bar' in table
%%% `bar'; everything else is ignored. The callback's return value names the
%%% table an event is applied to.
%%%
%%% ```
%%% 1> c("examples/example1.erl").
%%% 2> {ok, Pid} = example1:start_link([{host, "127.0.0.1"}, {port, 6379}]).
%%% 3> ets:tab2list(nsync:tid(foo)).
%%% [{<<"foo:1">>, <<"hello">>}]
%%% '''
-module(example1).

-export([start_link/0, start_link/1, handle/1]).

%% @doc Replicates localhost:6379, blocking until the snapshot is loaded.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    start_link([]).

%% @doc Replicates the master given by `Opts' (nsync options).
-spec start_link(list()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    nsync:start_link([{callback, {?MODULE, handle}}, {block, true}, {timeout, 60000} | Opts]).

%% @doc The callback: routes each key and command by its key's prefix.
-spec handle(nsync:event()) -> foo | bar | undefined | ok.
handle({load, <<"foo", _/binary>>, _Value}) -> foo;
handle({load, <<"bar", _/binary>>, _Value}) -> bar;
handle({load, _Key, _Value}) -> undefined;
handle({load, eof}) ->
    logger:notice("example1: snapshot loaded"),
    ok;
handle({cmd, _Cmd, [<<"foo", _/binary>> | _]}) -> foo;
handle({cmd, _Cmd, [<<"bar", _/binary>> | _]}) -> bar;
handle({cmd, _Cmd, _Args}) -> undefined;
handle({error, Reason}) ->
    logger:warning("example1: ~p", [Reason]),
    ok.
