%%% @doc Mirror handlers for the GEO searches that store their result:
%%% `GEORADIUS'/`GEORADIUSBYMEMBER ... STORE|STOREDIST' and `GEOSEARCHSTORE',
%%% which masters propagate as written. The NIF runs the search over the
%%% mirror's copy of the source set as Redis does (`nsync_core::geo'), so
%%% the stored members and scores are the master's, equal as doubles. They
%%% take the link's settings (the `settings' flag of `nsync_cmd'):
%%% `geo_formula', `before_7_0' for a master older than 7.0.
-module(nsync_cmd_geo).

-export([georadius/3, georadiusbymember/3, geosearchstore/3]).

-import(nsync_cmd_lib, [value/2, put_new/3]).

-type store() :: nsync_cmd_lib:store().
-type result() :: nsync_cmd_lib:result().
-type settings() :: nsync_cmd_lib:settings().

%% @doc GEORADIUS src lon lat radius unit [options] STORE|STOREDIST dest.
-spec georadius([binary()], store(), settings()) -> result().
georadius([Src | _] = Args, S, Set) -> search(<<"georadius">>, Src, Args, S, Set).

%% @doc GEORADIUSBYMEMBER src member radius unit [options] STORE|STOREDIST dest.
-spec georadiusbymember([binary()], store(), settings()) -> result().
georadiusbymember([Src | _] = Args, S, Set) -> search(<<"georadiusbymember">>, Src, Args, S, Set).

%% @doc GEOSEARCHSTORE dest src FROMMEMBER|FROMLONLAT ... BYRADIUS|BYBOX ...
%% [options], or (Valkey 9) GEOSEARCHSTORE dest src BYPOLYGON n lon lat ...
%% [options], searched around the polygon's centroid.
-spec geosearchstore([binary()], store(), settings()) -> result().
geosearchstore([_Dest, Src | _] = Args, S, Set) -> search(<<"geosearchstore">>, Src, Args, S, Set).

search(Name, Src, Args, S, #{geo_formula := Formula}) ->
    ZSet = case value(Src, S) of
               none -> undefined;
               L when is_list(L) -> L
           end,
    case nsync_nif:geo_store([Name | Args], ZSet, Formula) of
        {ok, Stored} -> {ok, stored(dest(Name, Args), Stored, S)};
        {error, _} -> unhandled
    end.

%% The result replaces the destination (its expiry gone); nothing found
%% deletes it.
stored(Dest, [], S) -> maps:remove(Dest, S);
stored(Dest, Stored, S) -> put_new(Dest, Stored, S).

%% GEOSEARCHSTORE's destination comes first; GEORADIUS's follows its last
%% STORE or STOREDIST.
dest(<<"geosearchstore">>, [Dest | _]) -> Dest;
dest(_, Args) -> lists:last(nsync_cmd_lib:store_targets(Args)).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

-define(SET, #{geo_formula => since_7_0}).

%% GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
sicily() ->
    #{<<"Sicily">> => {[{3479099956230698.0, <<"Palermo">>}, {3479447370796909.0, <<"Catania">>}],
                       undefined, #{}},
      <<"dst">> => {<<"old">>, 12345, #{}}}.

geo_test_() ->
    Run = fun(F, Args) -> ?MODULE:F(Args, sicily(), ?SET) end,
    [%% GEORADIUS Sicily 15 37 200 km STOREDIST dst: the distances in km
     ?_assertEqual({ok, (sicily())#{<<"dst">> := {[{56.4412578701582, <<"Catania">>},
                                                    {190.44242984775784, <<"Palermo">>}], undefined, #{}}}},
                   Run(georadius, [<<"Sicily">>, <<"15">>, <<"37">>, <<"200">>, <<"km">>, <<"STOREDIST">>, <<"dst">>])),
     ?_assertEqual({ok, (sicily())#{<<"dst">> := {[{3479447370796909.0, <<"Catania">>}], undefined, #{}}}},
                   Run(georadiusbymember, [<<"Sicily">>, <<"Catania">>, <<"100">>, <<"km">>, <<"STORE">>, <<"dst">>])),
     %% nothing found: the destination is deleted
     ?_assertEqual({ok, maps:remove(<<"dst">>, sicily())},
                   Run(geosearchstore, [<<"dst">>, <<"Sicily">>, <<"FROMLONLAT">>, <<"0">>, <<"0">>,
                                        <<"BYBOX">>, <<"10">>, <<"10">>, <<"km">>])),
     ?_assertEqual({ok, maps:remove(<<"dst">>, sicily())},
                   Run(geosearchstore, [<<"dst">>, <<"nope">>, <<"FROMMEMBER">>, <<"x">>,
                                        <<"BYRADIUS">>, <<"10">>, <<"km">>])),
     %% Valkey 9: a polygon around Catania only, stored with distances from
     %% its centroid in meters
     ?_assertMatch({ok, #{<<"dst">> := {[{D, <<"Catania">>}], undefined, #{}}}} when D > 0,
                   Run(geosearchstore, [<<"dst">>, <<"Sicily">>, <<"BYPOLYGON">>, <<"3">>,
                                        <<"14.5">>, <<"37">>, <<"15.5">>, <<"37">>, <<"15">>, <<"38">>,
                                        <<"STOREDIST">>])),
     ?_assertEqual(unhandled, Run(geosearchstore, [<<"dst">>, <<"Sicily">>, <<"FROMLONLAT">>, <<"15">>,
                                                   <<"37">>, <<"BYPOLYGON">>, <<"3">>, <<"14.5">>, <<"37">>,
                                                   <<"15.5">>, <<"37">>, <<"15">>, <<"38">>])),
     %% a member the set lacks: the master refused it, the mirror cannot apply it
     ?_assertEqual(unhandled, Run(georadiusbymember, [<<"Sicily">>, <<"Rome">>, <<"1">>, <<"km">>,
                                                      <<"STORE">>, <<"dst">>]))].
-endif.
