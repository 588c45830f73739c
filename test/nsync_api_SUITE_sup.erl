%%% @doc A one_for_one supervisor of one child, for nsync_api_SUITE.
-module(nsync_api_SUITE_sup).
-behaviour(supervisor).
-export([init/1]).

-spec init(supervisor:child_spec()) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(Spec) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Spec]}}.
