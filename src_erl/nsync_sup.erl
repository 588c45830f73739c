%%% @doc The nsync application's supervisor: the table owner
%%% (`nsync_owner') and the owner of the status table (`nsync_status'),
%%% which must outlive every link.
-module(nsync_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Owner = #{id => nsync_owner,
              start => {nsync_owner, start_link, []},
              restart => permanent,
              shutdown => 5000,
              type => worker,
              modules => [nsync_owner]},
    %% (ignore if a link started it before the application)
    Status = #{id => nsync_status,
               start => {nsync_status, start_link, []},
               restart => permanent,
               shutdown => 5000,
               type => worker,
               modules => [nsync_status]},
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, [Owner, Status]}}.
