%%% @doc nsync's `telemetry' events: every one is executed here, for links
%%% and for the layers above them (Sentinel failovers, cluster topology).
%%%
%%% Event names start with `nsync'; spans (`[nsync, full_sync, ...]') follow
%%% `telemetry:span/3''s conventions: `start' with `monotonic_time' and
%%% `system_time', `stop' and `exception' with `duration' and
%%% `monotonic_time' (native time units), the three sharing a
%%% `telemetry_span_context'; `exception' adds `kind', `reason' and
%%% `stacktrace' to the metadata. The README lists every event with its
%%% measurements and metadata.
%%%
%%% A layer's own event: `nsync_telemetry:event([failover], Measurements,
%%% Metadata)' executes `[nsync, failover]'. Put numbers in the measurements,
%%% and in the metadata what identifies the source, as links do: `name',
%%% `master' (`{Host, Port}'), and whatever the layer adds to its links'
%%% events (`shard').
-module(nsync_telemetry).

-export([event/3, span_start/2, span_stop/3, span_exception/3]).

-export_type([span/0]).

%% A span begun by `span_start/2': its name, start time and context.
-opaque span() :: {[atom()], integer(), reference()}.

%% @doc Executes the event `[nsync | Name]'.
-spec event([atom()], telemetry:event_measurements(), telemetry:event_metadata()) -> ok.
event(Name, Measurements, Metadata) ->
    telemetry:execute([nsync | Name], Measurements, Metadata).

%% @doc Executes `[nsync | Name] ++ [start]' and returns the span, to end
%% with `span_stop/3' or `span_exception/3'.
-spec span_start([atom()], telemetry:event_metadata()) -> span().
span_start(Name, Metadata) ->
    Start = erlang:monotonic_time(),
    Context = make_ref(),
    event(Name ++ [start], #{monotonic_time => Start, system_time => erlang:system_time()},
          Metadata#{telemetry_span_context => Context}),
    {Name, Start, Context}.

%% @doc Executes the span's `stop' event, with `duration' and
%% `monotonic_time' added to `Measurements'.
-spec span_stop(span(), telemetry:event_measurements(), telemetry:event_metadata()) -> ok.
span_stop({Name, Start, Context}, Measurements, Metadata) ->
    Now = erlang:monotonic_time(),
    event(Name ++ [stop], Measurements#{duration => Now - Start, monotonic_time => Now},
          Metadata#{telemetry_span_context => Context}).

%% @doc Executes the span's `exception' event: it ended without completing,
%% for `Reason' (an error term, `kind' `error', no stacktrace).
-spec span_exception(span(), term(), telemetry:event_metadata()) -> ok.
span_exception({Name, Start, Context}, Reason, Metadata) ->
    Now = erlang:monotonic_time(),
    event(Name ++ [exception], #{duration => Now - Start, monotonic_time => Now},
          Metadata#{telemetry_span_context => Context, kind => error, reason => Reason,
                    stacktrace => []}).

-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

span_test_() ->
    {setup,
     fun() -> application:ensure_all_started(telemetry) end,
     fun(_) -> ok end,
     fun() ->
             Self = self(),
             Events = [[nsync, test_span, start], [nsync, test_span, stop],
                       [nsync, test_span, exception]],
             ok = telemetry:attach_many(?MODULE, Events,
                                        fun(E, M, Md, _) -> Self ! {E, M, Md} end, []),
             try
                 Span = span_start([test_span], #{name => a}),
                 ok = span_stop(Span, #{keys => 3}, #{name => a}),
                 ok = span_exception(span_start([test_span], #{}), eof, #{}),
                 [{_, Start, #{telemetry_span_context := Ctx, name := a}},
                  {_, Stop, #{telemetry_span_context := Ctx}},
                  {_, _, #{telemetry_span_context := Ctx2}},
                  {_, Exc, #{reason := eof, kind := error, stacktrace := [],
                             telemetry_span_context := Ctx2}}] =
                     [receive {E, M, Md} -> {E, M, Md} after 1000 -> timeout end
                      || E <- [hd(Events), lists:nth(2, Events), hd(Events), lists:last(Events)]],
                 ?assertMatch(#{monotonic_time := _, system_time := _}, Start),
                 ?assertMatch(#{keys := 3, duration := D} when D >= 0, Stop),
                 ?assertMatch(#{duration := _, monotonic_time := _}, Exc),
                 ?assertNotEqual(Ctx, Ctx2)
             after
                 telemetry:detach(?MODULE)
             end
     end}.
-endif.
