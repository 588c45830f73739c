%%% @doc RESP2 for control connections (`nsync_client'): commands encoded as
%%% arrays of bulk strings, replies decoded from a buffer that may end
%%% anywhere. Pure functions, no socket.
%%%
%%% Replies: a simple string or a bulk string is a binary, an integer an
%%% integer, a null `undefined', an array a list, and an error reply
%%% `{error, Msg}' (`Msg' without its `-').
-module(nsync_resp).

-export([encode/1, decode/1]).

-export_type([reply/0, arg/0]).

-type reply() :: binary() | integer() | undefined | [reply()] | {error, binary()}.
-type arg() :: iodata() | integer() | atom().
%% One argument of a command (an atom is sent as its name).

%% A line (simple string, error, integer or a length) longer than this is
%% not RESP: refused rather than buffered without end.
-define(MAX_LINE, 65536).

%% @doc The command `Args' as a RESP array of bulk strings.
-spec encode([arg()]) -> iodata().
encode(Args) ->
    Bins = [arg(A) || A <- Args],
    [$*, integer_to_binary(length(Bins)), <<"\r\n">>
     | [[$$, integer_to_binary(byte_size(B)), <<"\r\n">>, B, <<"\r\n">>] || B <- Bins]].

%% @doc The first reply in `Buffer' and the bytes after it; `more' when the
%% buffer ends before the reply does; `{error, {protocol, Detail}}' when the
%% bytes are not RESP2.
-spec decode(binary()) -> {ok, reply(), binary()} | more | {error, {protocol, binary()}}.
decode(Buffer) ->
    try reply(Buffer) of
        {Reply, Rest} -> {ok, Reply, Rest}
    catch
        throw:more -> more;
        throw:{bad, Detail} -> {error, {protocol, Detail}}
    end.

%%% ------------------------------------------------------------ internal

arg(A) when is_binary(A) -> A;
arg(A) when is_integer(A) -> integer_to_binary(A);
arg(A) when is_atom(A) -> atom_to_binary(A, utf8);
arg(A) when is_list(A) -> iolist_to_binary(A).

reply(<<$+, T/binary>>) -> line(T);
reply(<<$-, T/binary>>) ->
    {Msg, Rest} = line(T),
    {{error, Msg}, Rest};
reply(<<$:, T/binary>>) ->
    {N, Rest} = line(T),
    {integer(N), Rest};
reply(<<$$, T/binary>>) ->
    {N, Rest} = line(T),
    bulk(integer(N), Rest);
reply(<<$*, T/binary>>) ->
    {N, Rest} = line(T),
    array(integer(N), Rest, []);
reply(<<>>) ->
    throw(more);
reply(<<Byte, _/binary>>) ->
    throw({bad, iolist_to_binary(io_lib:format("unexpected reply type byte ~b", [Byte]))}).

line(Bin) ->
    case binary:match(Bin, <<"\r\n">>) of
        {Pos, 2} when Pos =< ?MAX_LINE ->
            <<Line:Pos/binary, "\r\n", Rest/binary>> = Bin,
            {Line, Rest};
        nomatch when byte_size(Bin) =< ?MAX_LINE ->
            throw(more);
        _ ->
            throw({bad, <<"line too long">>})
    end.

integer(Text) ->
    try binary_to_integer(Text)
    catch error:badarg -> throw({bad, <<"bad integer: ", Text/binary>>})
    end.

bulk(-1, Rest) ->
    {undefined, Rest};
bulk(Len, Rest) when Len >= 0 ->
    case Rest of
        <<Body:Len/binary, "\r\n", After/binary>> -> {Body, After};
        <<_:Len/binary, _, _, _/binary>> -> throw({bad, <<"bulk string not ended by CRLF">>});
        _ -> throw(more)
    end;
bulk(Len, _) ->
    throw({bad, iolist_to_binary(io_lib:format("bad bulk length ~b", [Len]))}).

array(-1, Rest, []) ->
    {undefined, Rest};
array(N, _Rest, []) when N < -1 ->
    throw({bad, iolist_to_binary(io_lib:format("bad array length ~b", [N]))});
array(0, Rest, Acc) ->
    {lists:reverse(Acc), Rest};
array(N, Rest, Acc) ->
    {Elem, After} = reply(Rest),
    array(N - 1, After, [Elem | Acc]).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

encode_test() ->
    ?assertEqual(<<"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n42\r\n">>,
                 iolist_to_binary(encode([<<"SET">>, "k", 42]))),
    ?assertEqual(<<"*1\r\n$4\r\nPING\r\n">>, iolist_to_binary(encode(['PING']))).

decode_test() ->
    ?assertEqual({ok, <<"OK">>, <<>>}, decode(<<"+OK\r\n">>)),
    ?assertEqual({ok, {error, <<"ERR x">>}, <<"+a">>}, decode(<<"-ERR x\r\n+a">>)),
    ?assertEqual({ok, -3, <<>>}, decode(<<":-3\r\n">>)),
    ?assertEqual({ok, <<"a\r\nb">>, <<>>}, decode(<<"$4\r\na\r\nb\r\n">>)),
    ?assertEqual({ok, <<>>, <<>>}, decode(<<"$0\r\n\r\n">>)),
    ?assertEqual({ok, undefined, <<>>}, decode(<<"$-1\r\n">>)),
    ?assertEqual({ok, undefined, <<>>}, decode(<<"*-1\r\n">>)),
    ?assertEqual({ok, [<<"master">>, 7, [<<"x">>, {error, <<"E">>}]], <<>>},
                 decode(<<"*3\r\n$6\r\nmaster\r\n:7\r\n*2\r\n+x\r\n-E\r\n">>)).

every_prefix_is_more_test() ->
    Whole = <<"*3\r\n$6\r\nmaster\r\n:7\r\n*2\r\n+x\r\n-E\r\n">>,
    [?assertEqual(more, decode(binary:part(Whole, 0, N)))
     || N <- lists:seq(0, byte_size(Whole) - 1)].

garbage_is_a_protocol_error_test() ->
    ?assertMatch({error, {protocol, _}}, decode(<<"HTTP/1.1 400 Bad Request\r\n">>)),
    ?assertMatch({error, {protocol, _}}, decode(<<":12x\r\n">>)),
    ?assertMatch({error, {protocol, _}}, decode(<<"$2\r\nabcd">>)),
    ?assertMatch({error, {protocol, _}}, decode(<<"*-5\r\n">>)),
    ?assertMatch({error, {protocol, _}}, decode(<<"+", (binary:copy(<<"a">>, 70000))/binary>>)).
-endif.
