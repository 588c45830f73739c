%%% @doc What a link tells the outside world at each turn of its life: its
%%% telemetry events (`nsync_telemetry'), the facts of its status
%%% (`nsync_status') and the logger metadata of its process. The link
%%% process calls it; nothing here decides anything about sessions.
%%%
%%% Per batch the cost is one `nsync_nif:info/1' and one
%%% `telemetry:execute/3', whatever the batch holds; status facts are
%%% written when they change.
%%%
%%% Every event's metadata: `link' (the pid), `name', `master' (`{Host,
%%% Port}' of the current or last session, or `undefined'), `replid' and
%%% `offset' (the position, or the one the master answered), plus what the
%%% config's `telemetry_metadata' holds (a layer above links adds e.g.
%%% `shard' there).
-module(nsync_observe).

-export([new/3, session_started/2, connected/3, loaded/1, batch_handled/3,
         session_lost/4, retrying/3, stopped/2]).

-export_type([observe/0]).

-record(observe, {
          nif :: nsync_nif:link(),
          %% what every event's metadata starts with
          metadata :: map(),
          %% the full sync loading, if any
          full_sync :: nsync_telemetry:span() | undefined,
          %% the snapshot was completed by the batch being handled
          loaded_in_batch = false :: boolean(),
          %% when the master last answered PSYNC (monotonic), while connected
          connected_at :: integer() | undefined,
          %% the NIF's counts at the last batch
          keys = 0 :: non_neg_integer(),
          commands = 0 :: non_neg_integer(),
          %% the delivery's counters as last recorded
          counters :: {non_neg_integer(), non_neg_integer(), [atom()]} | undefined
         }).

-opaque observe() :: #observe{}.

%% @doc A link with `Config' and NIF resource `Nif' starts (in its process):
%% its status is registered.
-spec new(nsync_opts:config(), nsync_nif:link(), nsync_delivery:delivery()) -> observe().
new(#{name := Name} = Config, Nif, Delivery) ->
    logger:update_process_metadata(#{nsync_name => Name}),
    ok = nsync_status:add(self(), Nif),
    Metadata = maps:merge(maps:get(telemetry_metadata, Config, #{}),
                          #{link => self(), name => Name}),
    record_counters(Delivery, #observe{nif = Nif, metadata = Metadata}).

%% @doc A session starts, connecting to `Master' (or reading a file:
%% `nsync:load_file/2').
-spec session_started(nsync_nif:source(), observe()) -> observe().
session_started(#{file := File}, Obs) ->
    logger:update_process_metadata(#{nsync_file => File}),
    ok = nsync_status:record(self(), #{file => File}),
    Obs;
session_started(#{host := Host, port := Port}, Obs) ->
    logger:update_process_metadata(#{nsync_master => {Host, Port}}),
    ok = nsync_status:record(self(), #{next_retry => undefined}),
    Obs.

%% @doc The master answered PSYNC (`fullresync' or `continue', with its
%% replid and offset). `Policy' holds the session policy's facts:
%% `reconnection' (whether a connection was had before) and `reconnects'.
-spec connected(nsync_nif:item(), #{reconnection := boolean(),
                                    reconnects := non_neg_integer()},
                observe()) -> observe().
connected({Answer, Replid, Offset}, #{reconnection := Reconnection,
                                      reconnects := Reconnects}, Obs) ->
    ok = nsync_status:record(self(), #{connected_since => erlang:system_time(millisecond),
                                       attempts => 0, reconnects => Reconnects,
                                       next_retry => undefined}),
    Metadata = (metadata(Obs))#{replid => Replid, offset => Offset},
    nsync_telemetry:event([connection], #{system_time => erlang:system_time()},
                          Metadata#{reconnection => Reconnection}),
    Obs1 = Obs#observe{connected_at = erlang:monotonic_time()},
    case Answer of
        fullresync ->
            Obs1#observe{full_sync = nsync_telemetry:span_start([full_sync], Metadata),
                         keys = 0};
        continue ->
            nsync_telemetry:event([partial_sync], #{system_time => erlang:system_time()},
                                  Metadata),
            Obs1
    end.

%% @doc The snapshot is complete (its events are in the batch being
%% handled); the full sync's `stop' goes once the batch is acked.
-spec loaded(observe()) -> observe().
loaded(Obs) ->
    Obs#observe{loaded_in_batch = true}.

%% @doc A batch was handled and acked; its handling began at `Began'
%% (`erlang:monotonic_time()').
-spec batch_handled(integer(), nsync_delivery:delivery(), observe()) -> observe().
batch_handled(Began, Delivery, #observe{nif = Nif, keys = Keys0, commands = Commands0} = Obs) ->
    #{keys_loaded := Keys, commands := Commands, offset := Offset,
      master_offset := MasterOffset} = Info = nsync_nif:info(Nif),
    Metadata = metadata(Info, Obs),
    nsync_telemetry:event([batch], #{duration => erlang:monotonic_time() - Began,
                                     commands => Commands - Commands0,
                                     keys => max(0, Keys - Keys0),
                                     lag => lag(MasterOffset, Offset)},
                          Metadata),
    Obs1 = case Obs of
               #observe{loaded_in_batch = true} -> full_sync_done(Info, Metadata, Obs);
               _ -> Obs
           end,
    record_counters(Delivery, Obs1#observe{keys = Keys, commands = Commands}).

%% @doc A session is over for `Reason' (`disconnected': `reconnect/1' asked
%% for it). `Synced': it had reached the master (a connection lost), else
%% it was a failed attempt, the `Attempts'th in a row.
-spec session_lost(term(), boolean(), pos_integer(), observe()) -> observe().
session_lost(Reason, Synced, Attempts, Obs) ->
    Now = erlang:system_time(millisecond),
    ok = nsync_status:record(self(), case Reason of
                                         disconnected -> #{connected_since => undefined};
                                         _ -> #{connected_since => undefined,
                                                last_error => Reason, last_error_at => Now}
                                     end),
    Metadata = (metadata(Obs))#{reason => Reason},
    Obs1 = end_full_sync(Reason, Metadata, Obs),
    case Synced of
        true -> disconnection(Metadata, Obs1);
        false when Reason =:= disconnected -> Obs1;
        false ->
            nsync_telemetry:event([failed_connection], #{system_time => erlang:system_time(),
                                                         attempts => Attempts},
                                  Metadata),
            Obs1
    end.

%% @doc The next attempt starts in `Delay' ms; `Attempts' failed in a row.
-spec retrying(non_neg_integer(), non_neg_integer(), observe()) -> ok.
retrying(Delay, Attempts, _Obs) ->
    nsync_status:record(self(), #{next_retry => erlang:system_time(millisecond) + Delay,
                                  attempts => Attempts}).

%% @doc The link stops for `Reason': a full sync loading and a connection
%% end with it, and its status goes.
-spec stopped(term(), observe()) -> ok.
stopped(Reason, Obs) ->
    Metadata = (metadata(Obs))#{reason => Reason},
    _ = disconnection(Metadata, end_full_sync(Reason, Metadata, Obs)),
    nsync_status:forget(self()).

%%% ------------------------------------------------------------ internal

full_sync_done(#{keys_loaded := Keys, snapshot_bytes := Bytes}, Metadata,
               #observe{full_sync = Span} = Obs) ->
    ok = nsync_status:record(self(), #{loaded => true}),
    _ = [nsync_telemetry:span_stop(Span, #{keys => Keys, bytes => Bytes}, Metadata)
         || Span =/= undefined],
    Obs#observe{full_sync = undefined, loaded_in_batch = false}.

end_full_sync(_Reason, _Metadata, #observe{full_sync = undefined} = Obs) ->
    Obs;
end_full_sync(Reason, Metadata, #observe{full_sync = Span} = Obs) ->
    nsync_telemetry:span_exception(Span, Reason, maps:remove(reason, Metadata)),
    Obs#observe{full_sync = undefined}.

disconnection(_Metadata, #observe{connected_at = undefined} = Obs) ->
    Obs;
disconnection(Metadata, #observe{connected_at = At} = Obs) ->
    nsync_telemetry:event([disconnection], #{system_time => erlang:system_time(),
                                             duration => erlang:monotonic_time() - At},
                          Metadata),
    Obs#observe{connected_at = undefined}.

metadata(#observe{nif = Nif} = Obs) ->
    metadata(nsync_nif:info(Nif), Obs).

metadata(#{master := Master, replid := Replid, offset := Offset}, #observe{metadata = M}) ->
    M#{master => Master, replid => Replid, offset => Offset}.

%% A measurement is a number: no lag before there is a position.
lag(MasterOffset, Offset) ->
    case nsync_status:lag(MasterOffset, Offset) of
        undefined -> 0;
        Lag -> Lag
    end.

record_counters(Delivery, #observe{counters = Recorded} = Obs) ->
    Counters = {nsync_delivery:unhandled(Delivery), nsync_delivery:callback_errors(Delivery),
                nsync_delivery:tables(Delivery)},
    case Counters of
        Recorded ->
            Obs;
        {Unhandled, Errors, Tables} ->
            ok = nsync_status:record(self(), #{unhandled => Unhandled, callback_errors => Errors,
                                               tables => Tables}),
            Obs#observe{counters = Counters}
    end.
