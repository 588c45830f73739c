%%% @doc The command table: for each command a master propagates, which of
%%% its arguments are keys, how the mirror applies it and the flags the link
%%% routes it by. Everyone reads a command's properties here.
%%%
%%% An entry is a literal map `#{keys := KeySpec, run := Run, Flag => Value}':
%%% <ul>
%%% <li>`keys': which arguments are keys, see `keys/2';</li>
%%% <li>`run': `fun Mod:Fun/3', the pure handler applied to the entries of
%%%   those keys (contract in `nsync_cmd_lib'); `ignore': changes no key;
%%%   `unhandled': cannot be applied faithfully, the mirror removes its keys;
%%%   `mirror': carried out by `nsync_mirror' itself (see `cross_db').</li>
%%% </ul>
%%% Flags, absent when false:
%%% <ul>
%%% <li>`dataset => true': applies to every table of a link (`spans_dataset/1');</li>
%%% <li>`all_dbs => true': seen by a `{db, N}' callback whatever database it
%%%   runs in (`all_dbs/1');</li>
%%% <li>`cross_db => Op': may touch another database, or keys its
%%%   arguments do not name (TRIMSLOTS), so the mirror carries it out with
%%%   its operation `Op' (COPY only when its DB option names another
%%%   database: otherwise its handler runs);</li>
%%% <li>`overwrites => true | fun((Args) -> boolean())': the result does not
%%%   depend on what its keys held (with these arguments), so it makes keys
%%%   the mirror lost track of known again (`overwrites/2');</li>
%%% <li>`big => keep | project | fun Mod:Fun/3': how the command applies
%%%   when a key holds a big value (`nsync_big'); absent: the value is
%%%   materialised first (see `nsync_cmd_big');</li>
%%% <li>`settings => true': the handler's third argument is the link's
%%%   `nsync_cmd_lib:settings()' instead of the time (HyperLogLog, GEO).</li>
%%% </ul>
%%% Adding a command is one clause of `spec/1' plus its handler, exported
%%% with arity 3 from an `nsync_cmd_*' module that depends only on
%%% `nsync_cmd_lib'; the tests below check every clause.
-module(nsync_cmd).

-export([spec/1, keys/2, overwrites/2, spans_dataset/1, all_dbs/1, names/0, roles/1,
         filter_table/0]).

-export_type([spec/0, keyspec/0, cross_op/0, roles/0]).

-type keyspec() :: none | first | two | all | pairs | all_but_last | second
                 | from_second | {numkeys, non_neg_integer()} | dest_numkeys
                 | sort | eval | xgroup | georadius | {numkeys_pairs, non_neg_integer()}.
-type cross_op() :: move | copy | swapdb | flushdb | flushall | trim_slots | cluster.
-type spec() :: #{keys := keyspec(),
                  run := nsync_cmd_lib:handler() | ignore | unhandled | mirror,
                  dataset => true,
                  all_dbs => true,
                  cross_db => cross_op(),
                  overwrites => true | fun(([binary()]) -> boolean()),
                  big => keep | project | nsync_cmd_lib:handler(),

                  settings => true}.

-type roles() :: per_key | {reads, first | second | rest | all} | moves | renames | none.

-define(IGNORE, #{keys => none, run => ignore}).
-define(UNHANDLED(KeySpec), #{keys => KeySpec, run => unhandled}).

%% @doc Whether `Cmd' (lowercase) applies to every table of a link
%% (FLUSHALL, FLUSHDB, SWAPDB), not only to the one it is routed to.
-spec spans_dataset(binary()) -> boolean().
spans_dataset(Cmd) ->
    case spec(Cmd) of
        #{dataset := true} -> true;
        _ -> false
    end.

%% @doc Whether a `{db, N}' callback sees `Cmd' (lowercase) whatever
%% database it runs in (FLUSHALL, SWAPDB).
-spec all_dbs(binary()) -> boolean().
all_dbs(Cmd) ->
    case spec(Cmd) of
        #{all_dbs := true} -> true;
        _ -> false
    end.

%% @doc Whether the command of entry `Spec' with arguments `Args' sets its
%% keys whatever they held.
-spec overwrites(spec(), [binary()]) -> boolean().
overwrites(#{overwrites := true}, _Args) -> true;
overwrites(#{overwrites := Pred}, Args) -> Pred(Args);
overwrites(_, _) -> false.

%% @doc The entry of command `Cmd' (lowercase), `undefined' if unknown.
%% Function clauses: the compiler matches the name byte by byte, faster than
%% hashing it for a map lookup.
-spec spec(binary()) -> spec() | undefined.
%% strings
spec(<<"set">>) -> #{keys => first, run => fun nsync_cmd_string:set/3, big => fun nsync_cmd_big:set/3,
                     overwrites => fun nsync_cmd_string:set_overwrites/1};
spec(<<"setnx">>) -> #{keys => first, run => fun nsync_cmd_string:setnx/3, big => keep};
spec(<<"setex">>) -> #{keys => first, run => fun nsync_cmd_string:setex/3, big => keep, overwrites => true};
spec(<<"psetex">>) -> #{keys => first, run => fun nsync_cmd_string:psetex/3, big => keep, overwrites => true};
spec(<<"mset">>) -> #{keys => pairs, run => fun nsync_cmd_string:mset/3, big => keep, overwrites => true};
spec(<<"msetex">>) -> #{keys => {numkeys_pairs, 0}, run => fun nsync_cmd_string:msetex/3};
spec(<<"delifeq">>) -> #{keys => first, run => fun nsync_cmd_string:delifeq/3};
spec(<<"delex">>) -> #{keys => first, run => fun nsync_cmd_string:delex/3};
spec(<<"msetnx">>) -> #{keys => pairs, run => fun nsync_cmd_string:msetnx/3, big => keep};
spec(<<"append">>) -> #{keys => first, run => fun nsync_cmd_string:append/3, big => fun nsync_cmd_big:append/3};
spec(<<"setrange">>) -> #{keys => first, run => fun nsync_cmd_string:setrange/3, big => fun nsync_cmd_big:setrange/3};
spec(<<"incr">>) -> #{keys => first, run => fun nsync_cmd_string:incr/3};
spec(<<"decr">>) -> #{keys => first, run => fun nsync_cmd_string:decr/3};
spec(<<"incrby">>) -> #{keys => first, run => fun nsync_cmd_string:incrby/3};
spec(<<"decrby">>) -> #{keys => first, run => fun nsync_cmd_string:decrby/3};
spec(<<"incrbyfloat">>) -> #{keys => first, run => fun nsync_cmd_string:incrbyfloat/3};
spec(<<"getset">>) -> #{keys => first, run => fun nsync_cmd_string:getset/3, big => keep, overwrites => true};
spec(<<"getdel">>) -> #{keys => first, run => fun nsync_cmd_generic:del/3, big => keep, overwrites => true};
spec(<<"getex">>) -> #{keys => first, run => fun nsync_cmd_string:getex/3, big => keep};
spec(<<"setbit">>) -> #{keys => first, run => fun nsync_cmd_string:setbit/3, big => fun nsync_cmd_big:setbit/3};
spec(<<"bitop">>) -> #{keys => from_second, run => fun nsync_cmd_string:bitop/3};
spec(<<"bitfield">>) -> #{keys => first, run => fun nsync_cmd_string:bitfield/3};
%% generic keys
spec(<<"del">>) -> #{keys => all, run => fun nsync_cmd_generic:del/3, big => keep, overwrites => true};
spec(<<"unlink">>) -> #{keys => all, run => fun nsync_cmd_generic:del/3, big => keep, overwrites => true};
spec(<<"rename">>) -> #{keys => two, run => fun nsync_cmd_generic:rename/3, big => keep};
spec(<<"renamenx">>) -> #{keys => two, run => fun nsync_cmd_generic:renamenx/3, big => keep};
spec(<<"copy">>) -> #{keys => two, run => fun nsync_cmd_generic:copy/3, big => fun nsync_cmd_big:copy/3, cross_db => copy};
spec(<<"expire">>) -> #{keys => first, run => fun nsync_cmd_generic:expire/3, big => keep};
spec(<<"pexpire">>) -> #{keys => first, run => fun nsync_cmd_generic:pexpire/3, big => keep};
spec(<<"expireat">>) -> #{keys => first, run => fun nsync_cmd_generic:expireat/3, big => keep};
spec(<<"pexpireat">>) -> #{keys => first, run => fun nsync_cmd_generic:pexpireat/3, big => keep};
spec(<<"persist">>) -> #{keys => first, run => fun nsync_cmd_generic:persist/3, big => keep};
spec(<<"sort">>) -> #{keys => sort, run => fun nsync_cmd_generic:sort/3};
spec(<<"restore">>) -> #{keys => first, run => fun nsync_cmd_generic:restore/3, big => keep};
spec(<<"restore-asking">>) -> #{keys => first, run => fun nsync_cmd_generic:restore/3, big => keep};
%% whole databases
spec(<<"move">>) -> #{keys => first, run => mirror, cross_db => move};
spec(<<"swapdb">>) -> #{keys => none, run => mirror, cross_db => swapdb,
                        dataset => true, all_dbs => true};
spec(<<"flushdb">>) -> #{keys => none, run => mirror, cross_db => flushdb, dataset => true};
spec(<<"flushall">>) -> #{keys => none, run => mirror, cross_db => flushall,
                          dataset => true, all_dbs => true};
%% lists
spec(<<"lpush">>) -> #{keys => first, run => fun nsync_cmd_list:lpush/3, big => fun nsync_cmd_big:push_left/3};
spec(<<"rpush">>) -> #{keys => first, run => fun nsync_cmd_list:rpush/3, big => fun nsync_cmd_big:push_right/3};
spec(<<"lpushx">>) -> #{keys => first, run => fun nsync_cmd_list:lpushx/3, big => fun nsync_cmd_big:push_left/3};
spec(<<"rpushx">>) -> #{keys => first, run => fun nsync_cmd_list:rpushx/3, big => fun nsync_cmd_big:push_right/3};
spec(<<"lpop">>) -> #{keys => first, run => fun nsync_cmd_list:lpop/3, big => fun nsync_cmd_big:lpop/3};
spec(<<"rpop">>) -> #{keys => first, run => fun nsync_cmd_list:rpop/3, big => fun nsync_cmd_big:rpop/3};
spec(<<"linsert">>) -> #{keys => first, run => fun nsync_cmd_list:linsert/3, big => fun nsync_cmd_big:linsert/3};
spec(<<"lset">>) -> #{keys => first, run => fun nsync_cmd_list:lset/3, big => fun nsync_cmd_big:lset/3};
spec(<<"lrem">>) -> #{keys => first, run => fun nsync_cmd_list:lrem/3, big => fun nsync_cmd_big:lrem/3};
spec(<<"ltrim">>) -> #{keys => first, run => fun nsync_cmd_list:ltrim/3, big => fun nsync_cmd_big:ltrim/3};
spec(<<"lmove">>) -> #{keys => two, run => fun nsync_cmd_list:lmove/3, big => fun nsync_cmd_big:lmove/3};
spec(<<"blmove">>) -> #{keys => two, run => fun nsync_cmd_list:lmove/3, big => fun nsync_cmd_big:lmove/3};
spec(<<"rpoplpush">>) -> #{keys => two, run => fun nsync_cmd_list:rpoplpush/3, big => fun nsync_cmd_big:rpoplpush/3};
spec(<<"brpoplpush">>) -> #{keys => two, run => fun nsync_cmd_list:rpoplpush/3, big => fun nsync_cmd_big:rpoplpush/3};
spec(<<"lmpop">>) -> #{keys => {numkeys, 0}, run => fun nsync_cmd_list:lmpop/3, big => fun nsync_cmd_big:lmpop/3};
spec(<<"blmpop">>) -> #{keys => {numkeys, 1}, run => fun nsync_cmd_list:blmpop/3, big => fun nsync_cmd_big:blmpop/3};
spec(<<"blpop">>) -> #{keys => all_but_last, run => fun nsync_cmd_list:blpop/3, big => fun nsync_cmd_big:blpop/3};
spec(<<"brpop">>) -> #{keys => all_but_last, run => fun nsync_cmd_list:brpop/3, big => fun nsync_cmd_big:brpop/3};
%% sets
spec(<<"sadd">>) -> #{keys => first, run => fun nsync_cmd_set:sadd/3, big => project};
spec(<<"srem">>) -> #{keys => first, run => fun nsync_cmd_set:srem/3, big => project};
spec(<<"smove">>) -> #{keys => two, run => fun nsync_cmd_set:smove/3, big => project};
spec(<<"spop">>) -> ?UNHANDLED(first);
spec(<<"sinterstore">>) -> #{keys => all, run => fun nsync_cmd_set:sinterstore/3};
spec(<<"sunionstore">>) -> #{keys => all, run => fun nsync_cmd_set:sunionstore/3};
spec(<<"sdiffstore">>) -> #{keys => all, run => fun nsync_cmd_set:sdiffstore/3};
%% sorted sets
spec(<<"zadd">>) -> #{keys => first, run => fun nsync_cmd_zset:zadd/3, big => project};
spec(<<"zincrby">>) -> #{keys => first, run => fun nsync_cmd_zset:zincrby/3, big => project};
spec(<<"zrem">>) -> #{keys => first, run => fun nsync_cmd_zset:zrem/3, big => project};
spec(<<"zremrangebyscore">>) -> #{keys => first, run => fun nsync_cmd_zset:zremrangebyscore/3, big => fun nsync_cmd_big:zremrangebyscore/3};
spec(<<"zremrangebyrank">>) -> #{keys => first, run => fun nsync_cmd_zset:zremrangebyrank/3, big => fun nsync_cmd_big:zremrangebyrank/3};
spec(<<"zremrangebylex">>) -> #{keys => first, run => fun nsync_cmd_zset:zremrangebylex/3, big => fun nsync_cmd_big:zremrangebylex/3};
spec(<<"zpopmin">>) -> #{keys => first, run => fun nsync_cmd_zset:zpopmin/3, big => fun nsync_cmd_big:zpopmin/3};
spec(<<"zpopmax">>) -> #{keys => first, run => fun nsync_cmd_zset:zpopmax/3, big => fun nsync_cmd_big:zpopmax/3};
spec(<<"bzpopmin">>) -> #{keys => all_but_last, run => fun nsync_cmd_zset:bzpopmin/3, big => fun nsync_cmd_big:bzpopmin/3};
spec(<<"bzpopmax">>) -> #{keys => all_but_last, run => fun nsync_cmd_zset:bzpopmax/3, big => fun nsync_cmd_big:bzpopmax/3};
spec(<<"zmpop">>) -> #{keys => {numkeys, 0}, run => fun nsync_cmd_zset:zmpop/3, big => fun nsync_cmd_big:zmpop/3};
spec(<<"bzmpop">>) -> #{keys => {numkeys, 1}, run => fun nsync_cmd_zset:bzmpop/3, big => fun nsync_cmd_big:bzmpop/3};
spec(<<"zunionstore">>) -> #{keys => dest_numkeys, run => fun nsync_cmd_zset:zunionstore/3};
spec(<<"zinterstore">>) -> #{keys => dest_numkeys, run => fun nsync_cmd_zset:zinterstore/3};
spec(<<"zdiffstore">>) -> #{keys => dest_numkeys, run => fun nsync_cmd_zset:zdiffstore/3};
spec(<<"zrangestore">>) -> #{keys => two, run => fun nsync_cmd_zset:zrangestore/3};
spec(<<"georadius">>) -> #{keys => georadius, run => fun nsync_cmd_geo:georadius/3, settings => true};
spec(<<"georadiusbymember">>) -> #{keys => georadius, run => fun nsync_cmd_geo:georadiusbymember/3,
                                   settings => true};
spec(<<"geosearchstore">>) -> #{keys => two, run => fun nsync_cmd_geo:geosearchstore/3, settings => true};
%% hashes
spec(<<"hset">>) -> #{keys => first, run => fun nsync_cmd_hash:hset/3, big => project};
spec(<<"hmset">>) -> #{keys => first, run => fun nsync_cmd_hash:hset/3, big => project};
spec(<<"hsetnx">>) -> #{keys => first, run => fun nsync_cmd_hash:hsetnx/3, big => project};
spec(<<"hdel">>) -> #{keys => first, run => fun nsync_cmd_hash:hdel/3, big => project};
spec(<<"hincrby">>) -> #{keys => first, run => fun nsync_cmd_hash:hincrby/3, big => project};
spec(<<"hincrbyfloat">>) -> #{keys => first, run => fun nsync_cmd_hash:hincrbyfloat/3, big => project};
spec(<<"hpexpireat">>) -> #{keys => first, run => fun nsync_cmd_hash:hpexpireat/3, big => project};
spec(<<"hexpireat">>) -> #{keys => first, run => fun nsync_cmd_hash:hexpireat/3, big => project};
spec(<<"hpexpire">>) -> #{keys => first, run => fun nsync_cmd_hash:hpexpire/3, big => project};
spec(<<"hexpire">>) -> #{keys => first, run => fun nsync_cmd_hash:hexpire/3, big => project};
spec(<<"hpersist">>) -> #{keys => first, run => fun nsync_cmd_hash:hpersist/3, big => project};
spec(<<"hsetex">>) -> #{keys => first, run => fun nsync_cmd_hash:hsetex/3, big => project};
spec(<<"hgetex">>) -> #{keys => first, run => fun nsync_cmd_hash:hgetex/3, big => project};
spec(<<"hgetdel">>) -> #{keys => first, run => fun nsync_cmd_hash:hgetdel/3, big => project};
%% streams
spec(<<"xadd">>) -> #{keys => first, run => fun nsync_cmd_stream:xadd/3, big => fun nsync_cmd_big:xadd/3};
spec(<<"xdel">>) -> #{keys => first, run => fun nsync_cmd_stream:xdel/3, big => fun nsync_cmd_big:xdel/3};
spec(<<"xtrim">>) -> #{keys => first, run => fun nsync_cmd_stream:xtrim/3, big => fun nsync_cmd_big:xtrim/3};
spec(<<"xsetid">>) -> #{keys => first, run => fun nsync_cmd_stream:xsetid/3, big => project};
spec(<<"xgroup">>) -> #{keys => xgroup, run => fun nsync_cmd_stream:xgroup/3, big => fun nsync_cmd_big:xgroup/3};
spec(<<"xack">>) -> #{keys => first, run => fun nsync_cmd_stream:xack/3, big => project};
spec(<<"xclaim">>) -> #{keys => first, run => fun nsync_cmd_stream:xclaim/3, big => project};
spec(<<"xdelex">>) -> #{keys => first, run => fun nsync_cmd_stream:xdelex/3, big => fun nsync_cmd_big:xdelex/3};
spec(<<"xackdel">>) -> #{keys => first, run => fun nsync_cmd_stream:xackdel/3, big => fun nsync_cmd_big:xackdel/3};
spec(<<"xautoclaim">>) -> ?UNHANDLED(first);
spec(<<"xreadgroup">>) -> ?UNHANDLED(none);
%% HyperLogLog
spec(<<"pfadd">>) -> #{keys => first, run => fun nsync_cmd_hll:pfadd/3, settings => true};
spec(<<"pfmerge">>) -> #{keys => all, run => fun nsync_cmd_hll:pfmerge/3, settings => true};
spec(<<"pfcount">>) -> #{keys => all, run => fun nsync_cmd_hll:pfcount/3, settings => true};
spec(<<"pfdebug">>) -> #{keys => second, run => fun nsync_cmd_hll:pfdebug/3, settings => true};
%% scripts run verbatim (pre-5.0 masters)
spec(<<"eval">>) -> ?UNHANDLED(eval);
spec(<<"evalsha">>) -> ?UNHANDLED(eval);
spec(<<"eval_ro">>) -> ?IGNORE;
spec(<<"evalsha_ro">>) -> ?IGNORE;
spec(<<"fcall">>) -> ?UNHANDLED(eval);
%% no key changes
spec(<<"select">>) -> ?IGNORE;
spec(<<"multi">>) -> ?IGNORE;
spec(<<"exec">>) -> ?IGNORE;
spec(<<"discard">>) -> ?IGNORE;
spec(<<"ping">>) -> ?IGNORE;
spec(<<"publish">>) -> ?IGNORE;
spec(<<"spublish">>) -> ?IGNORE;
spec(<<"replconf">>) -> ?IGNORE;
spec(<<"function">>) -> ?IGNORE;
spec(<<"script">>) -> ?IGNORE;
%% Redis 8.4's atomic slot migration: the keys of whole slots go (db 0).
spec(<<"trimslots">>) -> #{keys => none, run => mirror, cross_db => trim_slots,
                           dataset => true, all_dbs => true};
%% Valkey 8.0+ propagates CLUSTER SETSLOT to replicas (cluster state only);
%% CLUSTER FLUSHSLOT (Valkey 9) empties a slot.
spec(<<"cluster">>) -> #{keys => none, run => mirror, cross_db => cluster,
                         dataset => true, all_dbs => true};
spec(_) -> undefined.

% @doc Every command of the table (the test below checks it against the
% clauses of `spec/1').
-spec names() -> [binary()].
names() ->
    [<<"set">>, <<"setnx">>, <<"setex">>, <<"psetex">>, <<"mset">>, <<"msetex">>,
     <<"delifeq">>, <<"delex">>, <<"msetnx">>, <<"append">>, <<"setrange">>, <<"incr">>,
     <<"decr">>, <<"incrby">>, <<"decrby">>, <<"incrbyfloat">>, <<"getset">>, <<"getdel">>,
     <<"getex">>, <<"setbit">>, <<"bitop">>, <<"bitfield">>, <<"del">>, <<"unlink">>,
     <<"rename">>, <<"renamenx">>, <<"copy">>, <<"expire">>, <<"pexpire">>, <<"expireat">>,
     <<"pexpireat">>, <<"persist">>, <<"sort">>, <<"restore">>, <<"restore-asking">>,
     <<"move">>, <<"swapdb">>, <<"flushdb">>, <<"flushall">>, <<"lpush">>, <<"rpush">>,
     <<"lpushx">>, <<"rpushx">>, <<"lpop">>, <<"rpop">>, <<"linsert">>, <<"lset">>, <<"lrem">>,
     <<"ltrim">>, <<"lmove">>, <<"blmove">>, <<"rpoplpush">>, <<"brpoplpush">>, <<"lmpop">>,
     <<"blmpop">>, <<"blpop">>, <<"brpop">>, <<"sadd">>, <<"srem">>, <<"smove">>, <<"spop">>,
     <<"sinterstore">>, <<"sunionstore">>, <<"sdiffstore">>, <<"zadd">>, <<"zincrby">>,
     <<"zrem">>, <<"zremrangebyscore">>, <<"zremrangebyrank">>, <<"zremrangebylex">>,
     <<"zpopmin">>, <<"zpopmax">>, <<"bzpopmin">>, <<"bzpopmax">>, <<"zmpop">>, <<"bzmpop">>,
     <<"zunionstore">>, <<"zinterstore">>, <<"zdiffstore">>, <<"zrangestore">>,
     <<"georadius">>, <<"georadiusbymember">>, <<"geosearchstore">>, <<"hset">>, <<"hmset">>,
     <<"hsetnx">>, <<"hdel">>, <<"hincrby">>, <<"hincrbyfloat">>, <<"hpexpireat">>,
     <<"hexpireat">>, <<"hpexpire">>, <<"hexpire">>, <<"hpersist">>, <<"hsetex">>,
     <<"hgetex">>, <<"hgetdel">>, <<"xadd">>, <<"xdel">>, <<"xtrim">>, <<"xsetid">>,
     <<"xgroup">>, <<"xack">>, <<"xclaim">>, <<"xdelex">>, <<"xackdel">>, <<"xautoclaim">>,
     <<"xreadgroup">>, <<"pfadd">>, <<"pfmerge">>, <<"pfcount">>, <<"pfdebug">>, <<"eval">>,
     <<"evalsha">>, <<"eval_ro">>, <<"evalsha_ro">>, <<"fcall">>, <<"select">>, <<"multi">>,
     <<"exec">>, <<"discard">>, <<"ping">>, <<"publish">>, <<"spublish">>, <<"replconf">>,
     <<"function">>, <<"script">>, <<"trimslots">>, <<"cluster">>].

%% @doc How the keys of a command that has several relate, for keys the
%% mirror does not know (`nsync_mirror') and for a key filter
%% (`filter_table/0'):
%% <ul>
%% <li>`per_key': each key is written on its own (a filter may keep some
%%   of them; MSETNX too, as masters propagate it only when it set every
%%   key);</li>
%% <li>`{reads, Which}': the keys `Which' (`first', `second', `rest' after
%%   the first, or `all') of the list `keys/2' gives are only read;</li>
%% <li>`moves': the first key's new value depends on that key alone (it
%%   loses what goes to the second);</li>
%% <li>`renames': as `moves', and the second key's new value is the first
%%   key's old one, whatever the second held (RENAME; RENAMENX, which is
%%   propagated only when it succeeded);</li>
%% <li>`none': any key may depend on any other.</li>
%% </ul>
-spec roles(binary()) -> roles().
roles(<<"del">>) -> per_key;
roles(<<"unlink">>) -> per_key;
roles(<<"mset">>) -> per_key;
roles(<<"msetnx">>) -> per_key;
roles(<<"msetex">>) -> per_key;
roles(<<"copy">>) -> {reads, first};
roles(<<"sort">>) -> {reads, first};
roles(<<"georadius">>) -> {reads, first};
roles(<<"georadiusbymember">>) -> {reads, first};
roles(<<"zrangestore">>) -> {reads, second};
roles(<<"geosearchstore">>) -> {reads, second};
roles(<<"bitop">>) -> {reads, rest};
roles(<<"sinterstore">>) -> {reads, rest};
roles(<<"sunionstore">>) -> {reads, rest};
roles(<<"sdiffstore">>) -> {reads, rest};
roles(<<"zunionstore">>) -> {reads, rest};
roles(<<"zinterstore">>) -> {reads, rest};
roles(<<"zdiffstore">>) -> {reads, rest};
roles(<<"pfmerge">>) -> {reads, rest};
%% several keys: none written (one key: its cached count, no other key)
roles(<<"pfcount">>) -> {reads, all};
roles(<<"rename">>) -> renames;
roles(<<"renamenx">>) -> renames;
roles(<<"smove">>) -> moves;
roles(<<"lmove">>) -> moves;
roles(<<"blmove">>) -> moves;
roles(<<"rpoplpush">>) -> moves;
roles(<<"brpoplpush">>) -> moves;
roles(_) -> none.

%% @doc The command table as the NIF's key filter reads it
%% (`nsync_nif:open/1'): for each command whose keys are not just its first
%% argument, or that the filter treats apart, its key spec and `per_key'
%% (see `roles/1'), `move' (MOVE: the key lands in another database), `copy'
%% (COPY ... DB) or `plain'. A command absent from it has its first
%% argument as its key.
-spec filter_table() -> #{binary() => {keyspec(), per_key | move | copy | plain}}.
filter_table() ->
    maps:from_list([{Name, Rule} || Name <- names(),
                                    Rule <- [filter_rule(Name, spec(Name))],
                                    Rule =/= {first, plain}]).

filter_rule(_Name, #{keys := Keys, cross_db := move}) -> {Keys, move};
filter_rule(_Name, #{keys := Keys, cross_db := copy}) -> {Keys, copy};
filter_rule(Name, #{keys := Keys}) ->
    case roles(Name) of
        per_key -> {Keys, per_key};
        _ -> {Keys, plain}
    end.

%% @doc The keys of a command, by key spec.
-spec keys(keyspec(), [binary()]) -> [binary()].
keys(none, _) -> [];
keys(first, [K | _]) -> [K];
keys(two, [A, B | _]) -> [A, B];
keys(all, Args) -> Args;
keys(pairs, Args) -> nsync_cmd_lib:firsts(Args);
keys(all_but_last, []) -> [];
keys(all_but_last, Args) -> lists:droplast(Args);
keys(second, [_, K | _]) -> [K];
keys(second, _) -> [];
keys(from_second, [_ | Ks]) -> Ks;
keys({numkeys, Skip}, Args) ->
    [N | Rest] = lists:nthtail(Skip, Args),
    lists:sublist(Rest, nsync_cmd_lib:to_int(N));
keys({numkeys_pairs, Skip}, Args) ->
    [N | Rest] = lists:nthtail(Skip, Args),
    nsync_cmd_lib:firsts(lists:sublist(Rest, 2 * nsync_cmd_lib:to_int(N)));
keys(dest_numkeys, [D, N | Rest]) -> [D | lists:sublist(Rest, nsync_cmd_lib:to_int(N))];
keys(sort, [K | Rest]) -> [K | sort_store(Rest)];
keys(eval, [_Script, N | Rest]) -> lists:sublist(Rest, nsync_cmd_lib:to_int(N));
keys(xgroup, [_Sub, K | _]) -> [K];
keys(georadius, [Src | Rest]) -> [Src | nsync_cmd_lib:store_targets(Rest)];
keys(_, _) -> [].

sort_store([O, D | Rest]) ->
    case nsync_cmd_lib:lower(O) of
        <<"store">> -> [D];
        _ -> sort_store([D | Rest])
    end;
sort_store(_) -> [].


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

keys_test_() ->
    [?_assertEqual([<<"a">>, <<"c">>], keys(pairs, [<<"a">>, <<"1">>, <<"c">>, <<"2">>])),
     ?_assertEqual([<<"a">>, <<"b">>], keys({numkeys, 0}, [<<"2">>, <<"a">>, <<"b">>, <<"LEFT">>])),
     ?_assertEqual([<<"a">>], keys({numkeys, 1}, [<<"0">>, <<"1">>, <<"a">>, <<"LEFT">>])),
     ?_assertEqual([<<"d">>, <<"a">>, <<"b">>],
                   keys(dest_numkeys, [<<"d">>, <<"2">>, <<"a">>, <<"b">>, <<"WEIGHTS">>, <<"1">>, <<"2">>])),
     ?_assertEqual([<<"k">>, <<"d">>], keys(sort, [<<"k">>, <<"ALPHA">>, <<"STORE">>, <<"d">>])),
     ?_assertEqual([<<"k">>], keys(sort, [<<"k">>, <<"ALPHA">>])),
     ?_assertEqual([<<"a">>, <<"b">>], keys(all_but_last, [<<"a">>, <<"b">>, <<"0">>])),
     ?_assertEqual([<<"s">>], keys(xgroup, [<<"CREATE">>, <<"s">>, <<"g">>, <<"$">>])),
     ?_assertEqual([<<"k">>, <<"d">>],
                   keys(georadius, [<<"k">>, <<"1">>, <<"2">>, <<"5">>, <<"km">>, <<"STORE">>, <<"d">>]))].

%% The command names of the table, read from the clauses of spec/1.
commands() ->
    {ok, {_, [{abstract_code, {raw_abstract_v1, Forms}}]}} =
        beam_lib:chunks(code:which(?MODULE), [abstract_code]),
    [Clauses] = [Cs || {function, _, spec, 1, Cs} <- Forms],
    [list_to_binary(Name) || {clause, _, [{bin, _, [{bin_element, _, {string, _, Name}, _, _}]}], _, _}
                                 <- Clauses].

with(Flag) -> lists:sort([C || C <- commands(), is_map_key(Flag, spec(C))]).

%% Every handler is a fun Mod:Fun/3 exported by a loaded module; every other
%% entry says how it is carried out.
table_entries_test_() ->
    Cs = commands(),
    [?_assert(length(Cs) > 100),
     ?_assertEqual(length(Cs), length(lists:usort(Cs))),
     %% a command added to spec/1 goes in names/0 too
     ?_assertEqual({[], []}, {Cs -- names(), names() -- Cs})
     | [{C, fun() -> check_entry(C, spec(C)) end} || C <- Cs]].

check_entry(C, #{keys := _, run := Run} = S) ->
    ?assertEqual(C, nsync_cmd_lib:lower(C)),
    ?assertEqual([], maps:keys(maps:without([keys, run, dataset, all_dbs, cross_db, overwrites,
                                             settings, big], S))),
    case S of
        #{big := Big} when is_function(Big) -> check_fun(Big);
        #{big := Big} -> ?assert(lists:member(Big, [keep, project]));
        _ -> ok
    end,
    case Run of
        F when is_function(F) -> check_fun(F);
        mirror -> ?assert(is_map_key(cross_db, S));
        _ -> ?assert(lists:member(Run, [ignore, unhandled]))
    end.

check_fun(F) ->
    {type, external} = erlang:fun_info(F, type),
    {module, M} = erlang:fun_info(F, module),
    {name, N} = erlang:fun_info(F, name),
    ?assertEqual({arity, 3}, erlang:fun_info(F, arity)),
    ?assertEqual({module, M}, code:ensure_loaded(M)),
    ?assert(erlang:function_exported(M, N, 3)).

flags_test_() ->
    [?_assertEqual([<<"cluster">>, <<"flushall">>, <<"flushdb">>, <<"swapdb">>, <<"trimslots">>], with(dataset)),
     ?_assertEqual([<<"cluster">>, <<"flushall">>, <<"swapdb">>, <<"trimslots">>], with(all_dbs)),
     ?_assertEqual([<<"cluster">>, <<"copy">>, <<"flushall">>, <<"flushdb">>, <<"move">>, <<"swapdb">>,
                    <<"trimslots">>], with(cross_db)),
     ?_assertEqual([<<"del">>, <<"getdel">>, <<"getset">>, <<"mset">>, <<"psetex">>, <<"set">>,
                    <<"setex">>, <<"unlink">>], with(overwrites)),
     ?_assertEqual([true, true, true, false, false],
                   [spans_dataset(C) || C <- [<<"flushall">>, <<"flushdb">>, <<"swapdb">>, <<"move">>, <<"nope">>]]),
     ?_assertEqual([true, false, true, false, false],
                   [all_dbs(C) || C <- [<<"flushall">>, <<"flushdb">>, <<"swapdb">>, <<"copy">>, <<"nope">>]]),
     ?_assertEqual(undefined, spec(<<"frobnicate">>))].

%% Roles name commands of the table that have several keys; the filter's
%% table leaves out exactly the commands whose key is their first argument.
roles_test_() ->
    Multi = [C || C <- commands(), roles(C) =/= none],
    Table = filter_table(),
    [?_assertEqual([], [C || C <- Multi, maps:get(keys, spec(C)) =:= first]),
     ?_assertEqual({all, per_key}, maps:get(<<"del">>, Table)),
     ?_assertEqual({first, move}, maps:get(<<"move">>, Table)),
     ?_assertEqual({two, copy}, maps:get(<<"copy">>, Table)),
     ?_assertEqual({two, plain}, maps:get(<<"rename">>, Table)),
     ?_assertEqual({none, plain}, maps:get(<<"select">>, Table)),
     ?_assertNot(is_map_key(<<"set">>, Table)),
     ?_assertEqual(lists:sort([C || C <- commands(), maps:get(keys, spec(C)) =/= first]
                              ++ [<<"move">>]),
                   lists:sort(maps:keys(Table)))].

overwrites_test_() ->
    O = fun(C, Args) -> overwrites(spec(C), Args) end,
    [?_assert(O(<<"del">>, [<<"k">>])),
     ?_assert(O(<<"mset">>, [<<"k">>, <<"v">>])),
     ?_assert(O(<<"set">>, [<<"k">>, <<"v">>])),
     ?_assert(O(<<"set">>, [<<"k">>, <<"v">>, <<"GET">>, <<"PX">>, <<"5">>])),
     ?_assertNot(O(<<"set">>, [<<"k">>, <<"v">>, <<"NX">>])),
     ?_assertNot(O(<<"set">>, [<<"k">>, <<"v">>, <<"xx">>])),
     ?_assertNot(O(<<"set">>, [<<"k">>, <<"v">>, <<"KeepTTL">>])),
     ?_assertNot(O(<<"append">>, [<<"k">>, <<"v">>])),
     ?_assertNot(O(<<"msetnx">>, [<<"k">>, <<"v">>]))].
-endif.
