%%% @doc Element reads on a mirror table, for small and big values alike
%%% (`nsync:hget/3' and the like): one field, member or range is read without
%%% building the whole value when the key holds a big value (`nsync_big'),
%%% and from the term otherwise (a small value is at most the threshold's
%%% size). Like `nsync_mirror:lookup/2' they hide a key whose expiry has
%%% passed, and hash fields whose expiry has passed. A key that holds
%%% another type raises `{wrongtype, Key}'.
-module(nsync_read).

-export([hget/3, hmget/3, hlen/2, sismember/3, scard/2, zscore/3, zrange/4,
         zrangebyscore/4, zcard/2, lrange/4, llen/2, xrange/4, xrange/5,
         xrevrange/4, xrevrange/5, xlen/2]).

-export_type([score_bound/0, stream_bound/0, stream_entry/0, count/0]).

-type score() :: nsync_cmd_lib:score().
-type score_bound() :: score() | {exclusive, score()}.
%% A bound of a score range, inclusive unless `{exclusive, S}'.
-type stream_bound() :: {non_neg_integer(), non_neg_integer()} | non_neg_integer() | '-' | '+'.
%% A stream id `{Ms, Seq}', a time `Ms' (`{Ms, 0}' as a start, `{Ms, max}'
%% as an end), or the first / last id.
-type stream_entry() :: {{non_neg_integer(), non_neg_integer()}, [binary()]}.
-type count() :: non_neg_integer() | infinity.
%% How many entries at most.

-define(MAX_SEQ, 18446744073709551615).

%%% ------------------------------------------------------------ hashes

%% @doc The value of `Field' in hash `Key', `undefined' if absent.
-spec hget(ets:tid(), binary(), binary()) -> binary() | undefined.
hget(Tid, Key, Field) ->
    hash(Tid, Key, undefined,
         fun(H, Now) -> big(Key, H, {hget, Field, Now}) end,
         fun(M, Live) -> field(M, Live, Field) end).

%% @doc The values of `Fields' in hash `Key' (`undefined' for each absent).
-spec hmget(ets:tid(), binary(), [binary()]) -> [binary() | undefined].
hmget(Tid, Key, Fields) ->
    hash(Tid, Key, [undefined || _ <- Fields],
         fun(H, Now) -> big(Key, H, {hmget, Fields, Now}) end,
         fun(M, Live) -> [field(M, Live, F) || F <- Fields] end).

%% @doc The number of (live) fields of hash `Key', 0 if absent.
-spec hlen(ets:tid(), binary()) -> non_neg_integer().
hlen(Tid, Key) ->
    hash(Tid, Key, 0,
         fun(H, Now) -> big(Key, H, {live_len, Now}) end,
         fun(M, Live) -> map_size(M) - length([F || F <- maps:keys(M), not Live(F)]) end).

field(M, Live, F) ->
    case M of
        #{F := V} -> case Live(F) of true -> V; false -> undefined end;
        _ -> undefined
    end.

hash(Tid, Key, Absent, Big, Small) ->
    Now = now_ms(),
    case nsync_mirror:entry(Tid, Key, Now) of
        none -> Absent;
        {H, _} when is_reference(H) -> Big(H, Now);
        {M, FieldExpires} when is_map(M) ->
            Small(M, fun(F) ->
                             case FieldExpires of
                                 #{F := At} -> Now =< At;
                                 _ -> true
                             end
                     end);
        _ -> erlang:error({wrongtype, Key})
    end.

%%% ------------------------------------------------------------ sets

%% @doc Whether `Member' is in set `Key'.
-spec sismember(ets:tid(), binary(), binary()) -> boolean().
sismember(Tid, Key, Member) ->
    case value(Tid, Key) of
        none -> false;
        H when is_reference(H) -> big(Key, H, {sismember, Member});
        [B | _] = L when is_binary(B) -> ordsets:is_element(Member, L);
        _ -> erlang:error({wrongtype, Key})
    end.

%% @doc The number of members of set `Key', 0 if absent.
-spec scard(ets:tid(), binary()) -> non_neg_integer().
scard(Tid, Key) -> card(Tid, Key, set, fun([B | _]) -> is_binary(B) end).

%%% ------------------------------------------------------------ zsets

%% @doc The score of `Member' in zset `Key', `undefined' if absent.
-spec zscore(ets:tid(), binary(), binary()) -> score() | undefined.
zscore(Tid, Key, Member) ->
    case value(Tid, Key) of
        none -> undefined;
        H when is_reference(H) -> big(Key, H, {zscore, Member});
        [{_, _} | _] = L ->
            case lists:keyfind(Member, 2, L) of
                {Score, _} -> Score;
                false -> undefined
            end;
        _ -> erlang:error({wrongtype, Key})
    end.

%% @doc The members of zset `Key' of ranks `Start'..`Stop' (inclusive, 0
%% the lowest score, negative from the end, as ZRANGE), with their scores.
-spec zrange(ets:tid(), binary(), integer(), integer()) -> [{score(), binary()}].
zrange(Tid, Key, Start, Stop) ->
    case value(Tid, Key) of
        none -> [];
        H when is_reference(H) -> big(Key, H, {zrange, Start, Stop});
        [{_, _} | _] = L -> sublist(L, Start, Stop);
        _ -> erlang:error({wrongtype, Key})
    end.

%% @doc The members of zset `Key' whose scores are within `Min'..`Max' in
%% order, with their scores (ZRANGE BYSCORE).
-spec zrangebyscore(ets:tid(), binary(), score_bound(), score_bound()) -> [{score(), binary()}].
zrangebyscore(Tid, Key, Min, Max) ->
    {MinS, MinEx} = bound(Min),
    {MaxS, MaxEx} = bound(Max),
    case value(Tid, Key) of
        none -> [];
        H when is_reference(H) -> big(Key, H, {zrangebyscore, MinS, MinEx, MaxS, MaxEx});
        [{_, _} | _] = L ->
            Lo = nsync_cmd_lib:score_key(MinS),
            Hi = nsync_cmd_lib:score_key(MaxS),
            [E || {S, _} = E <- L, above(nsync_cmd_lib:score_key(S), Lo, MinEx),
                  above(Hi, nsync_cmd_lib:score_key(S), MaxEx)];
        _ -> erlang:error({wrongtype, Key})
    end.

bound({exclusive, S}) -> {S, true};
bound(S) -> {S, false}.

above(A, B, true) -> A > B;
above(A, B, false) -> A >= B.

%% @doc The number of members of zset `Key', 0 if absent.
-spec zcard(ets:tid(), binary()) -> non_neg_integer().
zcard(Tid, Key) -> card(Tid, Key, zset, fun([E | _]) -> is_tuple(E) end).

%%% ------------------------------------------------------------ lists

%% @doc The elements `Start'..`Stop' of list `Key' (inclusive, negative
%% from the end, as LRANGE).
-spec lrange(ets:tid(), binary(), integer(), integer()) -> [binary()].
lrange(Tid, Key, Start, Stop) ->
    case value(Tid, Key) of
        none -> [];
        H when is_reference(H) -> big(Key, H, {lrange, Start, Stop});
        [B | _] = L when is_binary(B) -> sublist(L, Start, Stop);
        _ -> erlang:error({wrongtype, Key})
    end.

%% @doc The length of list `Key', 0 if absent.
-spec llen(ets:tid(), binary()) -> non_neg_integer().
llen(Tid, Key) -> card(Tid, Key, list, fun([B | _]) -> is_binary(B) end).

%%% ------------------------------------------------------------ streams

%% @doc The entries of stream `Key' with ids in `Start'..`End' (inclusive,
%% as XRANGE), `[{{Ms, Seq}, [Field, Value, ...]}]'.
-spec xrange(ets:tid(), binary(), stream_bound(), stream_bound()) -> [stream_entry()].
xrange(Tid, Key, Start, End) -> xrange(Tid, Key, Start, End, infinity).

%% @doc The first `Count' of them (XRANGE ... COUNT).
-spec xrange(ets:tid(), binary(), stream_bound(), stream_bound(), count()) -> [stream_entry()].
xrange(Tid, Key, Start, End, Count) ->
    Lo = id(Start, 0),
    Hi = id(End, ?MAX_SEQ),
    stream(Tid, Key, {xrange, Lo, Hi, Count},
           fun({stream, Entries, _}) ->
                   take(Count, lists:takewhile(fun({Id, _}) -> Id =< Hi end,
                                               lists:dropwhile(fun({Id, _}) -> Id < Lo end,
                                                               Entries)))
           end, []).

%% @doc The entries of stream `Key' with ids in `End'..`Start', the
%% newest first (as XREVRANGE).
-spec xrevrange(ets:tid(), binary(), stream_bound(), stream_bound()) -> [stream_entry()].
xrevrange(Tid, Key, End, Start) -> xrevrange(Tid, Key, End, Start, infinity).

%% @doc The first `Count' of them (XREVRANGE ... COUNT).
-spec xrevrange(ets:tid(), binary(), stream_bound(), stream_bound(), count()) -> [stream_entry()].
xrevrange(Tid, Key, End, Start, Count) ->
    Hi = id(End, ?MAX_SEQ),
    Lo = id(Start, 0),
    stream(Tid, Key, {xrevrange, Hi, Lo, Count},
           fun({stream, Entries, _}) ->
                   take(Count, lists:reverse([E || {Id, _} = E <- Entries, Id >= Lo, Id =< Hi]))
           end, []).

%% @doc The length of stream `Key' (its metadata's), 0 if absent.
-spec xlen(ets:tid(), binary()) -> non_neg_integer().
xlen(Tid, Key) ->
    stream(Tid, Key, xlen, fun({stream, _, #{length := N}}) -> N end, 0).

%% Runs `BigOp' on a big stream, `Small' on a term `{stream, Entries, Meta}'.
stream(Tid, Key, BigOp, Small, Absent) ->
    case value(Tid, Key) of
        none -> Absent;
        H when is_reference(H) -> big(Key, H, BigOp);
        {stream, _, _} = V -> Small(V);
        _ -> erlang:error({wrongtype, Key})
    end.

take(infinity, L) -> L;
take(N, L) -> lists:sublist(L, N).

id('-', _) -> {0, 0};
id('+', _) -> {?MAX_SEQ, ?MAX_SEQ};
id(Ms, Seq) when is_integer(Ms) -> {Ms, Seq};
id({_, _} = Id, _) -> Id.

%%% ------------------------------------------------------------ internal

big(Key, H, Op) ->
    try nsync_big:read(H, Op)
    catch error:wrongtype -> erlang:error({wrongtype, Key})
    end.

now_ms() -> erlang:system_time(millisecond).

%% The live value of `Key' (a handle for a big one), or `none'.
value(Tid, Key) ->
    case nsync_mirror:entry(Tid, Key, now_ms()) of
        none -> none;
        {V, _} -> V
    end.

%% The size of a list, set or zset of type `Kind' (checked with `Is' on a
%% term: a list and a set look alike).
card(Tid, Key, Kind, Is) ->
    case value(Tid, Key) of
        none -> 0;
        H when is_reference(H) ->
            case nsync_big:read(H, stat) of
                {Kind, N} -> N;
                _ -> erlang:error({wrongtype, Key})
            end;
        L when is_list(L) ->
            case Is(L) of
                true -> length(L);
                false -> erlang:error({wrongtype, Key})
            end;
        _ -> erlang:error({wrongtype, Key})
    end.

sublist(L, Start, Stop) ->
    case nsync_cmd_lib:norm_range(Start, Stop, length(L)) of
        empty -> [];
        {A, B} -> lists:sublist(L, A + 1, B - A + 1)
    end.
