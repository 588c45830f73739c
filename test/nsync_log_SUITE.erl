%% @doc nsync's log lines on a node with the default logger configuration:
%% a peer node (`peer', its standard output read by the suite) starts the
%% nsync application as a release would. nsync's own line (a master that
%% cannot be resolved) and a user callback's (logged in the link process)
%% both appear; a filter on nsync's `application => nsync' metadata removes
%% nsync's lines and keeps the callback's. Redis 7.0.
-module(nsync_log_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([default_node_shows_lines/1]).
%% run on the peer
-export([start_link_on_peer/1, log_event/2, drop_nsync/2]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 90}}].

-spec all() -> [atom()].
all() -> [default_node_shows_lines].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    {ok, S} = nsync_test_redis:start(#{version => '7.0'}),
    Output = spawn_link(fun() -> capture(<<>>) end),
    %% The peer's standard output reaches the group leader of the process
    %% that starts it: this capture.
    {ok, Peer, _Node} = with_group_leader(Output, fun() ->
                                                   peer:start_link(#{connection => standard_io,
                                                                     args => code_path()})
                                           end),
    [{server, S}, {peer, Peer}, {output, Output} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    ct:pal("the peer's output:~n~s", [output(?config(output, Config))]),
    peer:stop(?config(peer, Config)),
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc On a default node, nsync's warning for an unresolvable master and a
%% callback's notice are printed; with a primary filter dropping events
%% whose metadata has `application => nsync', a second unresolvable
%% master's warning is not, while a second callback's notice is.
-spec default_node_shows_lines(ct_suite:ct_config()) -> ok.
default_node_shows_lines(Config) ->
    S = ?config(server, Config),
    Peer = ?config(peer, Config),
    Output = ?config(output, Config),
    Master = [{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)}],
    {ok, _} = peer:call(Peer, application, ensure_all_started, [nsync]),
    {ok, _} = peer:call(Peer, ?MODULE, start_link_on_peer,
                        [[{host, "no-such-host.invalid"}, {name, unresolved}]]),
    wait_for(Output, <<"nsync: connection to no-such-host.invalid:6379 failed">>),
    {ok, _} = peer:call(Peer, ?MODULE, start_link_on_peer,
                        [[{callback, {?MODULE, log_event, [<<"first">>]}} | Master]]),
    wait_for(Output, <<"first callback saw the snapshot">>),
    ok = peer:call(Peer, logger, add_primary_filter, [no_nsync, {fun ?MODULE:drop_nsync/2, []}]),
    {ok, Unresolved} = peer:call(Peer, ?MODULE, start_link_on_peer,
                                 [[{host, "other-host.invalid"}, {name, unresolved2}]]),
    %% The warning, had it passed, was handed to the handler before the
    %% attempt was counted, so before the next callback's line.
    nsync_test_events:wait_until(
      fun() -> maps:get(attempts, peer:call(Peer, nsync, status, [Unresolved])) >= 1 end, ?T),
    {ok, _} = peer:call(Peer, ?MODULE, start_link_on_peer,
                        [[{callback, {?MODULE, log_event, [<<"second">>]}} | Master]]),
    wait_for(Output, <<"second callback saw the snapshot">>),
    nomatch = binary:match(output(Output), <<"other-host.invalid">>),
    ok.

%%% ------------------------------------------------------ run on the peer

%% @doc Starts a link from a process that stays (the caller of a
%% `peer:call/4' exits at once), with the peer's own group leader.
-spec start_link_on_peer(nsync:options()) -> {ok, pid()}.
start_link_on_peer(Opts) ->
    Caller = self(),
    spawn(fun() ->
                  {ok, Pid} = nsync:start_link(Opts),
                  Caller ! {started, Pid},
                  receive after infinity -> ok end
          end),
    receive {started, Pid} -> {ok, Pid} after ?T -> error(not_started) end.

%% @doc A user callback that logs, in the link process, when the snapshot
%% is loaded.
-spec log_event(binary(), nsync:event()) -> ok.
log_event(Tag, {load, eof}) ->
    logger:notice("~s callback saw the snapshot", [Tag]);
log_event(_Tag, _Event) ->
    ok.

%% @doc A primary filter dropping nsync's own log events.
-spec drop_nsync(logger:log_event(), term()) -> stop | ignore.
drop_nsync(#{meta := #{application := nsync}}, _) -> stop;
drop_nsync(_Event, _) -> ignore.

%%% ------------------------------------------------------------ helpers

code_path() ->
    Dirs = [filename:dirname(code:which(M)) || M <- [nsync, telemetry, ?MODULE]],
    lists:append([["-pa", Dir] || Dir <- lists:usort(Dirs)]).

with_group_leader(Leader, Fun) ->
    Old = group_leader(),
    true = group_leader(Leader, self()),
    try Fun()
    after group_leader(Old, self())
    end.

wait_for(Output, Text) ->
    nsync_test_events:wait_until(fun() -> binary:match(output(Output), Text) =/= nomatch end,
                                 ?T).

output(Output) ->
    Output ! {get, self()},
    receive {output, Bytes} -> Bytes after 5000 -> error(no_output) end.

%% A minimal I/O server keeping what is written to it.
capture(Acc) ->
    receive
        {io_request, From, ReplyAs, Request} ->
            From ! {io_reply, ReplyAs, ok},
            capture(<<Acc/binary, (chars(Request))/binary>>);
        {get, Pid} ->
            Pid ! {output, Acc},
            capture(Acc)
    end.

chars({put_chars, Encoding, Chars}) -> unicode:characters_to_binary(Chars, Encoding);
chars({put_chars, Encoding, M, F, A}) -> chars({put_chars, Encoding, apply(M, F, A)});
chars({put_chars, Chars}) -> chars({put_chars, latin1, Chars});
chars(_) -> <<>>.
