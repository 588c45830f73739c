%%% @doc Big values: a key whose value is bigger than a mirror's threshold
%%% is held by the NIF (a resource, `nsync_core::big' in Rust) instead of as
%%% a term, and its ETS row is `{Key, Handle}'. A write changes one element
%%% in place, in O(1) or O(log n), instead of copying the whole value out of
%%% ETS and back; reads of one element do not build the value.
%%%
%%% A handle is shared: any process may read it while the link process
%%% writes (a read-write lock in the NIF). Operations first run on the
%%% caller's scheduler, which answers `busy' rather than waiting for the
%%% lock or doing more than ~1000 elements of work; they are then run on a
%%% dirty scheduler, so no normal scheduler is held for long.
%%%
%%% Thresholds (`limits()'): a list, set, zset, hash or stream becomes big
%%% when a write (or the snapshot) gives it more than `elements' elements
%%% (a stream: entries), a string when it is longer than `bytes'; a big
%%% value becomes a term again when it shrinks below half of that (so a
%%% value near the threshold does not flip at every write). An empty big
%%% value is deleted, but for a stream, which Redis keeps.
-module(nsync_big).

-export([new/2, is_handle/1, read/2, write/2, value/2, len/1, kind/1, copy/1,
         default_threshold/0, limits/1, promote/3, demote/2]).

-export_type([handle/0, kind/0, op/0, limits/0]).

-type handle() :: reference().
%% A resource term (`is_reference/1' is true for it).
-type kind() :: string | list | set | zset | hash | stream.
-type op() :: atom() | tuple().
%% An operation of `nsync_nif:big_read/2' or `big_write/2' (see
%% native/nsync_nif/src/big/mod.rs).
-type limits() :: #{elements := pos_integer(), bytes := pos_integer()} | off.

%% Strings count bytes: a threshold of N elements makes strings of more
%% than N KiB big (as nsync_core::big::BYTES_PER_ELEMENT).
-define(BYTES_PER_ELEMENT, 1024).
-define(DEFAULT_THRESHOLD, 64).

%% @doc A big value of type `Kind' from its term (DESIGN.md's
%% representation; a dirty NIF call).
-spec new(kind(), term()) -> handle().
new(Kind, Value) ->
    {ok, Handle} = nsync_nif:big_new(Kind, Value),
    Handle.

%% @doc Whether a stored value is a big value's handle.
-spec is_handle(term()) -> boolean().
is_handle(V) -> is_reference(V).

%% @doc Runs a read operation (on a dirty scheduler if need be).
-spec read(handle(), op()) -> term().
read(H, Op) ->
    case nsync_nif:big_read(H, Op) of
        busy -> nsync_nif:big_read_dirty(H, Op);
        Result -> Result
    end.

%% @doc Runs a write operation (on a dirty scheduler if need be).
-spec write(handle(), op()) -> term().
write(H, Op) ->
    case nsync_nif:big_write(H, Op) of
        busy -> nsync_nif:big_write_dirty(H, Op);
        Result -> Result
    end.

%% @doc The whole value as a term; a hash without the fields expired at
%% `Now' (ms since the epoch; `undefined': all fields).
-spec value(handle(), integer() | undefined) -> term().
value(H, Now) -> read(H, {value, Now}).

%% @doc Elements of a collection, bytes of a string.
-spec len(handle()) -> non_neg_integer().
len(H) -> read(H, len).

-spec kind(handle()) -> kind().
kind(H) -> read(H, kind).

%% @doc An independent copy (COPY).
-spec copy(handle()) -> handle().
copy(H) -> read(H, copy).

%% @doc The threshold of a mirror that sets none: collections of more
%% elements (and strings of more KiB) are big.
%% Chosen from measurements: see the README's "Big values".
-spec default_threshold() -> pos_integer().
default_threshold() -> ?DEFAULT_THRESHOLD.

%% @doc The limits of a threshold of `N' elements (`off': never big; the
%% tests also give the limits themselves).
-spec limits(pos_integer() | off | limits()) -> limits().
limits(off) -> off;
limits(#{elements := E, bytes := B} = L) when is_integer(E), E > 0, is_integer(B), B > 0 -> L;
limits(N) when is_integer(N), N > 0 -> #{elements => N, bytes => N * ?BYTES_PER_ELEMENT}.

%% @doc The value to store for a term `V' of type `Kind' just written: a
%% new big value if it is over the limits, else `V'.
-spec promote(kind(), term(), limits()) -> term().
promote(_Kind, V, off) -> V;
promote(string, V, #{bytes := Max}) when is_binary(V), byte_size(V) > Max -> new(string, V);
promote(hash, V, #{elements := Max}) when is_map(V), map_size(V) > Max -> new(hash, V);
promote(stream, {stream, Entries, _} = V, #{elements := Max}) ->
    case longer_than(Entries, Max) of
        true -> new(stream, V);
        false -> V
    end;
promote(Kind, V, #{elements := Max}) when is_list(V) ->
    case fits(Kind, V) andalso longer_than(V, Max) of
        true -> new(Kind, V);
        false -> V
    end;
promote(_Kind, V, _Limits) -> V.

%% Whether a list term is a value of `Kind' (a set and a list look alike:
%% the command that wrote it tells them apart).
fits(zset, [{_, _} | _]) -> true;
fits(Kind, [B | _]) when is_binary(B) -> Kind =:= list orelse Kind =:= set;
fits(_, _) -> false.

longer_than(_L, -1) -> true;
longer_than([], _) -> false;
longer_than([_ | T], N) -> longer_than(T, N - 1).

%% @doc What to store for big value `H' after a write: `delete' if it is
%% empty (not a stream), `{Term, FieldExpires}' if it shrank below half
%% the limits (a hash's field expiries go back to the expiry table), else
%% `H'.
-spec demote(handle(), limits()) -> handle() | {term(), #{binary() => integer()}} | delete.
demote(H, Limits) ->
    case {read(H, stat), Limits} of
        {{stream, N}, #{elements := Max}} when N >= Max div 2 -> H;
        {{stream, _}, _} -> to_term(stream, H);
        {{_, 0}, _} -> delete;
        {{Kind, _}, off} -> to_term(Kind, H);
        {{string, N}, #{bytes := Max}} when N < Max div 2 -> to_term(string, H);
        {{Kind, N}, #{elements := Max}} when Kind =/= string, N < Max div 2 -> to_term(Kind, H);
        _ -> H
    end.

to_term(hash, H) -> {value(H, undefined), read(H, field_expires)};
to_term(_Kind, H) -> {value(H, undefined), #{}}.
