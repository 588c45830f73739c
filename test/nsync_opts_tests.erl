%% @doc EUnit tests of nsync_opts: defaults, every option form, and a
%% `{badarg, Opt}' for each kind of bad option.
-module(nsync_opts_tests).

-include_lib("eunit/include/eunit.hrl").

defaults_test() ->
    {ok, C} = nsync_opts:validate([]),
    ?assertMatch(#{host := <<"localhost">>, port := 6379, pass := undefined,
                   user := undefined, callback := default, block := false,
                   timeout := 360000, name := nsync, db := 0, compressed := true}, C),
    ?assertEqual({ok, C}, nsync_opts:validate(#{})).

host_forms_test() ->
    Host = fun(H) -> {ok, #{host := B}} = nsync_opts:validate([{host, H}]), B end,
    ?assertEqual(<<"redis.example">>, Host("redis.example")),
    ?assertEqual(<<"redis.example">>, Host(<<"redis.example">>)),
    ?assertEqual(<<"localhost">>, Host(localhost)),
    ?assertEqual(<<"127.0.0.1">>, Host({127, 0, 0, 1})),
    ?assertEqual(<<"::1">>, Host({0, 0, 0, 0, 0, 0, 0, 1})),
    {ok, #{host := <<"10.0.0.1">>}} = nsync_opts:validate([{ip, {10, 0, 0, 1}}]).

first_occurrence_wins_test() ->
    {ok, #{port := 1}} = nsync_opts:validate([{port, 1}, {port, 2}]).

callback_forms_test() ->
    Fun = fun(_) -> ok end,
    Pid = self(),
    [{ok, #{callback := Cb}} = nsync_opts:validate([{callback, Cb}])
     || Cb <- [{m, f}, {m, f, [a]}, Fun, Pid]],
    {ok, #{callback := default}} = nsync_opts:validate([{callback, undefined}]).

other_options_test() ->
    {ok, C} = nsync_opts:validate([{port, 7000}, {pass, "pw"}, {user, <<"u">>}, block,
                                   {timeout, 10}, {name, mine}, {db, all},
                                   {connect_timeout, 200}, {compressed, false},
                                   {hll_sparse_max_bytes, 500}, {geo_formula, before_7_0}]),
    ?assertMatch(#{port := 7000, pass := <<"pw">>, user := <<"u">>, block := true,
                   timeout := 10, name := mine, db := all, connect_timeout := 200,
                   compressed := false, hll_sparse_max_bytes := 500,
                   geo_formula := before_7_0}, C),
    ?assertMatch(#{hll_sparse_max_bytes := 3000, geo_formula := since_7_0},
                 element(2, nsync_opts:validate([]))),
    [?assertEqual({error, {badarg, O}}, nsync_opts:validate([O]))
     || O <- [{hll_sparse_max_bytes, -1}, {hll_sparse_max_bytes, "1"}, {geo_formula, v6}]],
    {ok, #{block := false, timeout := infinity, db := 3}} =
        nsync_opts:validate(#{block => false, timeout => infinity, db => 3}).

bad_options_test_() ->
    Bad = [{port, 0}, {port, 65536}, {port, "6379"}, {host, ""}, {host, 42},
           {host, {1, 2, 3}}, {ip, <<>>}, {pass, 42}, {pass, ""}, {user, []},
           {callback, fun(_, _) -> ok end}, {callback, {m}}, {callback, {m, f, a}},
           {callback, "m"}, {block, yes}, {timeout, -1}, {timeout, 1.5},
           {name, "n"}, {name, undefined}, {db, -1}, {db, some},
           {connect_timeout, 0}, {compressed, yes}, {unknown, 1}, bogus, {port, 1, 2}],
    [?_assertEqual({error, {badarg, Opt}}, nsync_opts:validate([{port, 1}, Opt]))
     || Opt <- Bad].

not_a_list_test() ->
    ?assertEqual({error, {badarg, 42}}, nsync_opts:validate(42)),
    ?assertEqual({error, {badarg, <<"localhost">>}}, nsync_opts:validate(<<"localhost">>)).

%% A string is not a proplist: the error names it whole, not its last
%% character (it was `{badarg, 49}' for "127.0.0.1"); so does an improper list.
not_a_proplist_test() ->
    ?assertEqual({error, {badarg, "localhost"}}, nsync:start_link("localhost")),
    ?assertEqual({error, {badarg, "127.0.0.1"}}, nsync_opts:validate("127.0.0.1")),
    ?assertEqual({error, {badarg, [{port, 1} | block]}},
                 nsync_opts:validate([{port, 1} | block])),
    {ok, _} = nsync_opts:validate([]).

user_needs_pass_test() ->
    ?assertEqual({error, {badarg, {user, <<"u">>}}}, nsync_opts:validate([{user, "u"}])).

tls_and_master_timeout_test() ->
    {ok, C} = nsync_opts:validate([{tls, [{verify, none}]}, {master_timeout, 2000}]),
    ?assertMatch(#{tls := #{verify := none}, master_timeout := 2000}, C),
    ?assertMatch({ok, #{tls := false, master_timeout := 60000}}, nsync_opts:validate([])),
    ?assertEqual({error, {badarg, {tls, {verify, maybe}}}},
                 nsync_opts:validate([{tls, [{verify, maybe}]}])),
    ?assertEqual({error, {badarg, {master_timeout, 0}}},
                 nsync_opts:validate([{master_timeout, 0}])).

nif_config_test() ->
    {ok, C} = nsync_opts:validate([{host, {127, 0, 0, 1}}, {port, 7000}, {pass, "pw"}]),
    ?assertEqual({ok, #{user => undefined, pass => <<"pw">>, connect_timeout => 5000,
                        master_timeout => 60000, listening_port => 0, db => 0, keys => none,
                        big_threshold => 64, max_value_bytes => infinity,
                        tls => undefined}}, nsync_opts:nif_config(C)),
    ?assertEqual(#{host => <<"127.0.0.1">>, port => 7000}, nsync_opts:source(C)),
    %% a callback gets terms: no big values from the snapshot
    {ok, C2} = nsync_opts:validate([{callback, self()}, {big_threshold, 10}]),
    ?assertMatch({ok, #{big_threshold := off}}, nsync_opts:nif_config(C2)),
    ?assertEqual({error, {badarg, {big_threshold, 0}}}, nsync_opts:validate([{big_threshold, 0}])),
    {ok, #{big_threshold := off}} = nsync_opts:validate([{big_threshold, off}]),
    {ok, T} = nsync_opts:validate([{tls, [{cacertfile, "/nonexistent.pem"}]}]),
    ?assertEqual({error, {tls, {cacertfile, enoent}}}, nsync_opts:nif_config(T)),
    {ok, F} = nsync_opts:validate([{keys, [{prefix, "a:"}]}]),
    {ok, #{keys := #{prefixes := [<<"a:">>], patterns := [], commands := Table}}} =
        nsync_opts:nif_config(F),
    ?assertEqual(nsync_cmd:filter_table(), Table).

max_value_bytes_test() ->
    {ok, C} = nsync_opts:validate([{max_value_bytes, 1 bsl 20}]),
    ?assertMatch({ok, #{max_value_bytes := 1048576}}, nsync_opts:nif_config(C)),
    {ok, #{max_value_bytes := infinity}} = nsync_opts:validate([{max_value_bytes, infinity}]),
    [?assertEqual({error, {badarg, O}}, nsync_opts:validate([O]))
     || O <- [{max_value_bytes, 0}, {max_value_bytes, -1}, {max_value_bytes, "1"}]].

key_filters_test() ->
    Keys = fun(Opts) -> {ok, #{keys := K, db := Db}} = nsync_opts:validate(Opts), {K, Db} end,
    ?assertEqual({all, 0}, Keys([])),
    ?assertEqual({all, 0}, Keys([{keys, []}])),
    ?assertEqual({#{prefixes => [<<"user:">>, <<"x">>], patterns => [<<"s:*[0-9]">>]}, 0},
                 Keys([{keys, [{prefix, "user:"}, {match, <<"s:*[0-9]">>}, {prefix, <<"x">>}]}])),
    %% databases: without `db' (or with all) those are mirrored
    ?assertEqual({#{prefixes => [], patterns => []}, [0, 2]}, Keys([{keys, [{db, [2, 0]}]}])),
    ?assertEqual({#{prefixes => [], patterns => []}, [0, 3]},
                 Keys([{db, all}, {keys, [{db, 3}, {db, [0]}]}])),
    ?assertEqual({#{prefixes => [<<"a">>], patterns => []}, 2},
                 Keys([{db, 2}, {keys, [{db, [2, 5]}, {prefix, "a"}]}])),
    ?assertEqual({error, {badarg, {db, 1}}}, nsync_opts:validate([{db, 1}, {keys, [{db, 2}]}])),
    %% a cluster (database 0 only) has no key filter
    ?assertEqual({error, {badarg, {keys, cluster}}},
                 nsync_opts:validate([{cluster, [{"h", 7000}]}, {keys, [{prefix, "a"}]}])),
    ?assertMatch({ok, #{keys := all}}, nsync_opts:validate([{cluster, [{"h", 7000}]}, {keys, []}])),
    [?assertEqual({error, {badarg, {keys, F}}}, nsync_opts:validate([{keys, F}]))
     || F <- [user, [{prefix, ""}], [{match, 42}], [{db, -1}], [{db, []}], [{db, [a]}],
              [{glob, "*"}], [{prefix, "a"} | b]]].

file_options_test() ->
    {ok, C} = nsync_opts:validate_file("dir/dump.rdb", [{name, f}, {keys, [{prefix, "a"}]}]),
    ?assertMatch(#{file := <<"dir/dump.rdb">>, dump_key := undefined, block := true,
                   timeout := infinity, name := f}, C),
    ?assertEqual(#{file => <<"dir/dump.rdb">>, key => undefined}, nsync_opts:source(C)),
    {ok, D} = nsync_opts:validate_file(<<"k.dump">>, #{key => "user:1", timeout => 5}),
    ?assertMatch(#{dump_key := <<"user:1">>, timeout := 5}, D),
    [?assertEqual({error, {badarg, O}}, nsync_opts:validate_file("f", [O]))
     || O <- [{host, "h"}, {port, 1}, {pass, "p"}, block, {block, false},
              {connect_timeout, 5}, {master_timeout, 5}, {tls, []}, {key, 42}, {bogus, 1}]],
    [?assertEqual({error, {badarg, P}}, nsync_opts:validate_file(P, []))
     || P <- ["", <<>>, 42]],
    ?assertEqual({error, {badarg, "f"}}, nsync_opts:validate_file("dump", "f")).
