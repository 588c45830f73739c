%% @doc The examples work: examples/example1.erl routes foo* and bar* keys
%% to their tables; examples/mirror.exs (Elixir) mirrors a master and prints
%% a key. Against Redis 7.0.
-module(nsync_examples_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([example1/1, elixir_mirror/1]).

-define(T, 20000).

-spec suite() -> [tuple()].
suite() -> [{timetrap, {seconds, 120}}].

-spec all() -> [atom()].
all() -> [example1, elixir_mirror].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    {ok, S} = nsync_test_redis:start(#{version => '7.0'}),
    [{server, S} | Config].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_Case, Config) ->
    nsync_test_redis:stop(?config(server, Config)).

%%% ------------------------------------------------------------- cases

%% @doc example1: foo* keys land in table foo, bar* in bar, others nowhere;
%% snapshot and later commands alike.
-spec example1(ct_suite:ct_config()) -> ok.
example1(Config) ->
    S = ?config(server, Config),
    {ok, Root} = nsync_test_redis:project_root(),
    {ok, example1} = compile:file(filename:join([Root, "examples", "example1.erl"]),
                                  [{outdir, ?config(priv_dir, Config)}, return_errors]),
    {module, example1} = code:load_abs(filename:join(?config(priv_dir, Config), "example1")),
    [<<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, K, <<"v">>])
     || K <- [<<"foo:1">>, <<"bar:1">>, <<"baz:1">>]],
    {ok, Pid} = example1:start_link([{host, "127.0.0.1"}, {port, nsync_test_redis:port(S)}]),
    [{<<"foo:1">>, <<"v">>}] = ets:tab2list(nsync:tid(foo)),
    [{<<"bar:1">>, <<"v">>}] = ets:tab2list(nsync:tid(bar)),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"foo:2">>, <<"w">>]),
    2 = nsync_test_redis:cmd(S, [<<"HSET">>, <<"bar:2">>, <<"f">>, <<"1">>, <<"g">>, <<"2">>]),
    <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"baz:2">>, <<"x">>]),
    nsync_test_events:wait_until(
      fun() -> ets:lookup(nsync:tid(bar), <<"bar:2">>) =/= [] end, ?T),
    [{<<"bar:2">>, #{<<"f">> := <<"1">>, <<"g">> := <<"2">>}}] =
        ets:lookup(nsync:tid(bar), <<"bar:2">>),
    [{<<"foo:2">>, <<"w">>}] = ets:lookup(nsync:tid(foo), <<"foo:2">>),
    2 = ets:info(nsync:tid(foo), size),
    ok = nsync:stop(Pid).

%% @doc `elixir -pa <ebins> examples/mirror.exs 127.0.0.1 Port greeting'
%% prints the key's value (elixir comes with scripts/setup.sh: missing, the
%% case fails).
-spec elixir_mirror(ct_suite:ct_config()) -> ok.
elixir_mirror(Config) ->
    case os:find_executable("elixir") of
        false ->
            ct:fail("elixir is not installed (scripts/setup.sh installs it)");
        Elixir ->
            S = ?config(server, Config),
            <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"greeting">>, <<"hello">>]),
            <<"OK">> = nsync_test_redis:cmd(S, [<<"SET">>, <<"other">>, <<"1">>]),
            {ok, Root} = nsync_test_redis:project_root(),
            Ebins = lists:append([["-pa", filename:dirname(code:which(M))]
                                  || M <- [nsync, telemetry]]),
            {Status, Output} =
                run(Elixir, Ebins ++ [filename:join([Root, "examples", "mirror.exs"]),
                             "127.0.0.1", integer_to_list(nsync_test_redis:port(S)),
                             "greeting"]),
            ct:pal("elixir exited ~b:~n~s", [Status, Output]),
            0 = Status,
            {match, _} = re:run(Output, "greeting = \"hello\""),
            {match, _} = re:run(Output, "2 keys loaded"),
            ok
    end.

%%% ----------------------------------------------------------- helpers

run(Exe, Args) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, stderr_to_stdout, binary]),
    collect(Port, <<>>).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, <<Acc/binary, Data/binary>>);
        {Port, {exit_status, Status}} -> {Status, Acc}
    after 60000 ->
            error({elixir_timeout, Acc})
    end.
