%% @doc The docs a user reads in a shell: the doc chunks are built beside
%% the application (`code:get_doc/1', the Erlang shell's `h/2', IEx's
%% `h/1'), every function of the API module has a doc, and the module doc
%% names every option.
-module(nsync_docs_tests).

-include_lib("eunit/include/eunit.hrl").

%% Every export of nsync (but module_info) has a doc, in English.
api_functions_documented_test() ->
    {ok, {docs_v1, _, erlang, _, #{<<"en">> := _}, _, Docs}} = code:get_doc(nsync),
    Exports = [FA || {F, _} = FA <- nsync:module_info(exports), F =/= module_info],
    Documented = [{F, A} || {{function, F, A}, _, _, #{<<"en">> := _}, _} <- Docs],
    ?assertEqual([], Exports -- Documented).

%% The module doc lists each option of nsync_opts's config (and `ip').
every_option_in_module_doc_test() ->
    {ok, {docs_v1, _, _, _, #{<<"en">> := ModDoc}, _, _}} = code:get_doc(nsync),
    Text = iolist_to_binary(text(ModDoc)),
    {ok, Config} = nsync_opts:validate([]),
    Missing = [Opt || Opt <- [ip | maps:keys(Config)],
                      binary:match(Text, <<"{", (atom_to_binary(Opt))/binary, ",">>)
                          =:= nomatch],
    ?assertEqual([], Missing).

%% `h :nsync.start_link/1' in Elixir prints the doc, not "compiled without
%% docs": IEx reads <app>/doc/chunks, which the compile hook fills.
iex_h_shows_doc_test_() ->
    {timeout, 120,
     fun() ->
             Elixir = os:find_executable("elixir"),
             ?assertNotEqual(false, Elixir),
             Ebin = filename:dirname(code:which(nsync)),
             {0, Out} = run(Elixir, ["-pa", Ebin, "-e",
                                     "require IEx.Helpers; IEx.Helpers.h(:nsync.start_link/1)"]),
             ?assertNotEqual(nomatch, binary:match(Out, <<"Starts a link process">>)),
             ?assertEqual(nomatch, binary:match(Out, <<"without docs">>))
     end}.

%%% ----------------------------------------------------------- helpers

%% The text of an application/erlang+html tree.
text(B) when is_binary(B) -> B;
text({_Tag, _Attrs, Content}) -> text(Content);
text(L) when is_list(L) -> [text(X) || X <- L].

run(Exe, Args) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, stderr_to_stdout, binary]),
    collect(Port, <<>>).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, <<Acc/binary, Data/binary>>);
        {Port, {exit_status, Status}} -> {Status, Acc}
    after 100000 ->
            error({elixir_timeout, Acc})
    end.
