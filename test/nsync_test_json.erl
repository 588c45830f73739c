%%% @doc A small JSON decoder for the tests (OTP 25 has no `json'): objects
%%% become maps with binary keys, arrays lists, strings UTF-8 binaries,
%%% numbers integers or floats, and `true', `false', `null' atoms.
-module(nsync_test_json).

-export([decode/1, file/1]).

%% @doc The value of a JSON document.
-spec decode(binary()) -> term().
decode(Bin) ->
    {Value, Rest} = value(ws(Bin)),
    <<>> = ws(Rest),
    Value.

%% @doc The value of a JSON file.
-spec file(file:filename()) -> term().
file(Path) ->
    {ok, Bin} = file:read_file(Path),
    decode(Bin).

ws(<<C, Rest/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(Rest);
ws(Bin) -> Bin.

value(<<"{", Rest/binary>>) -> object(ws(Rest), #{});
value(<<"[", Rest/binary>>) -> array(ws(Rest), []);
value(<<"\"", Rest/binary>>) -> string(Rest, []);
value(<<"true", Rest/binary>>) -> {true, Rest};
value(<<"false", Rest/binary>>) -> {false, Rest};
value(<<"null", Rest/binary>>) -> {null, Rest};
value(Bin) -> number(Bin).

object(<<"}", Rest/binary>>, Acc) -> {Acc, Rest};
object(<<"\"", Bin/binary>>, Acc) ->
    {Key, Rest1} = string(Bin, []),
    <<":", Rest2/binary>> = ws(Rest1),
    {Value, Rest3} = value(ws(Rest2)),
    Acc1 = Acc#{Key => Value},
    case ws(Rest3) of
        <<",", Rest4/binary>> -> object(ws(Rest4), Acc1);
        <<"}", Rest4/binary>> -> {Acc1, Rest4}
    end.

array(<<"]", Rest/binary>>, []) -> {[], Rest};
array(Bin, Acc) ->
    {Value, Rest1} = value(Bin),
    case ws(Rest1) of
        <<",", Rest2/binary>> -> array(ws(Rest2), [Value | Acc]);
        <<"]", Rest2/binary>> -> {lists:reverse([Value | Acc]), Rest2}
    end.

%% Acc: the parts decoded so far, reversed (binaries, and code points of
%% escapes).
string(Bin, Acc) ->
    case binary:match(Bin, [<<"\"">>, <<"\\">>]) of
        {Pos, 1} ->
            <<Plain:Pos/binary, Special, Rest/binary>> = Bin,
            Acc1 = [Plain | Acc],
            case Special of
                $" -> {unicode:characters_to_binary(lists:reverse(Acc1)), Rest};
                $\\ -> escape(Rest, Acc1)
            end
    end.

escape(<<"u", A:4/binary, "\\u", B:4/binary, Rest/binary>>, Acc) ->
    High = binary_to_integer(A, 16),
    Low = binary_to_integer(B, 16),
    case High >= 16#D800 andalso High =< 16#DBFF of
        true -> string(Rest, [16#10000 + ((High - 16#D800) bsl 10) + (Low - 16#DC00) | Acc]);
        false -> escape(<<"u", B/binary, Rest/binary>>, [High | Acc])
    end;
escape(<<"u", A:4/binary, Rest/binary>>, Acc) ->
    string(Rest, [binary_to_integer(A, 16) | Acc]);
escape(<<C, Rest/binary>>, Acc) ->
    Char = case C of
               $n -> $\n; $t -> $\t; $r -> $\r; $b -> $\b; $f -> $\f;
               _ -> C
           end,
    string(Rest, [Char | Acc]).

number(Bin) ->
    Len = number_len(Bin, 0),
    <<TextBin:Len/binary, Rest/binary>> = Bin,
    Text = binary_to_list(TextBin),
    Value = case lists:any(fun(C) -> lists:member(C, ".eE") end, Text) of
                false -> list_to_integer(Text);
                true -> to_float(Text)
            end,
    {Value, Rest}.

number_len(Bin, N) ->
    case Bin of
        <<_:N/binary, C, _/binary>> when (C >= $0 andalso C =< $9); C =:= $-; C =:= $+;
                                         C =:= $.; C =:= $e; C =:= $E ->
            number_len(Bin, N + 1);
        _ -> N
    end.

%% JSON's `1e5' and `2.5E-3' as Erlang floats (which want a dot and digits
%% around it).
to_float(Text) ->
    {Mantissa, Exp} = case string:split(string:lowercase(Text), "e") of
                          [M, E] -> {M, "e" ++ E};
                          [M] -> {M, ""}
                      end,
    Mantissa1 = case lists:member($., Mantissa) of
                    true -> Mantissa;
                    false -> Mantissa ++ ".0"
                end,
    list_to_float(Mantissa1 ++ Exp).
