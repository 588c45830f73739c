%%% @doc The nsync application: starts `nsync_sup', the supervisor of the
%%% node's table owner (`nsync_owner') and status table (`nsync_status'). Links are not under it: a link is a
%%% worker of the user's supervision tree (`nsync:child_spec/1'), or linked
%%% to the process that started it.
-module(nsync_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    nsync_sup:start_link().

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
