//! Parsed values and the items of a batch as Erlang terms (DESIGN.md,
//! `nsync_nif:item()`).
//!
//! Strings are copied once, straight into new binaries (integer-encoded
//! ones as their decimal text, formatted on the stack); lists are built
//! back to front with cons cells, without intermediate vectors.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nsync_core::rdb::{ConsumerGroup, Decimal, Entry, LiveValue, Str, Stream, StreamId, Value};
use nsync_core::repl::Event;
use rustler::{Encoder, Env, NewBinary, Term};

use crate::atoms;

pub fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    NewBinary::from_slice(env, bytes).into()
}

fn str_term<'a>(env: Env<'a>, s: &Str) -> Term<'a> {
    match s {
        Str::Raw(bytes) => binary(env, bytes),
        Str::Int(i) => binary(env, Decimal::new(*i).as_bytes()),
    }
}

/// A command name, lowercased as it is copied.
fn lowercase_binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut bin = NewBinary::new(env, bytes.len());
    for (dst, src) in bin.as_mut_slice().iter_mut().zip(bytes) {
        *dst = src.to_ascii_lowercase();
    }
    bin.into()
}

/// A list of `items` mapped through `f`, built from the tail.
fn list<'a, T>(env: Env<'a>, items: &[T], mut f: impl FnMut(&T) -> Term<'a>) -> Term<'a> {
    items
        .iter()
        .rev()
        .fold(Term::list_new_empty(env), |tail, item| {
            tail.list_prepend(f(item))
        })
}

pub fn optional<'a, T>(env: Env<'a>, value: Option<T>, f: impl FnOnce(T) -> Term<'a>) -> Term<'a> {
    match value {
        Some(v) => f(v),
        None => atoms::undefined().encode(env),
    }
}

fn replid_term<'a>(env: Env<'a>, replid: &Option<Bytes>) -> Term<'a> {
    optional(env, replid.as_ref(), |id| binary(env, id))
}

/// The item of a replication event other than a snapshot key (`batch.rs`
/// makes those): `{fullresync, Replid | undefined, Offset}`,
/// `{continue, Replid, Offset}`, `{load_eof, Replid | undefined, Offset}`,
/// `{cmd, Db, Cmd, Args}` ([`command`]). `None` for what is not delivered:
/// function libraries, and an empty command.
pub fn item<'a>(env: Env<'a>, event: &Event) -> Option<Term<'a>> {
    let term = match event {
        Event::FullResync { replid, offset } => {
            (atoms::fullresync(), replid_term(env, replid), *offset).encode(env)
        }
        Event::Continue { replid, offset } => {
            (atoms::continue_(), binary(env, replid), *offset).encode(env)
        }
        Event::LoadEof { replid, offset } => {
            (atoms::load_eof(), replid_term(env, replid), *offset).encode(env)
        }
        Event::Command { db, args } => return command(env, *db, args, None),
        Event::Key(_) | Event::Function(_) => return None,
    };
    Some(term)
}

/// `{cmd, Db, Cmd, Args}` of the command `args` (name first), or
/// `{cmd, Db, Cmd, Args, Filtered}` with the names of its keys a key
/// filter leaves out; `None` for an empty command.
pub fn command<'a, 'b>(
    env: Env<'a>,
    db: u64,
    args: impl IntoIterator<Item = &'b [u8]>,
    filtered: Option<&[Bytes]>,
) -> Option<Term<'a>> {
    let mut args = args.into_iter();
    let name = lowercase_binary(env, args.next()?);
    let rest: Vec<Term<'a>> = args.map(|a| binary(env, a)).collect();
    Some(match filtered {
        None => (atoms::cmd(), db, name, rest).encode(env),
        Some(keys) => {
            let keys = list(env, keys, |k| binary(env, k));
            (atoms::cmd(), db, name, rest, keys).encode(env)
        }
    })
}

/// The most keys of a map a thread outside the VM's schedulers (the pump)
/// may build: bigger ones are hash maps, and `enif_make_map_from_arrays` /
/// `enif_make_map_put` then take scheduler-only temporary memory, which
/// corrupts the VM. (32 is the small-map limit of release emulators.)
pub const MAX_PUMP_MAP_KEYS: usize = 32;

/// Whether `live` is a hash too big for the pump to make a map of.
pub fn is_big_hash(live: &LiveValue) -> bool {
    matches!(live, LiveValue::Hash(fields) if fields.len() > MAX_PUMP_MAP_KEYS)
}

/// The term of a live value (not a big hash when built by the pump).
pub fn live_value<'a>(env: Env<'a>, live: &LiveValue) -> Term<'a> {
    match live {
        LiveValue::Hash(fields) => hash(env, fields.iter().map(|f| (&f.field, &f.value))),
        LiveValue::Other(value) => self::value(env, value),
    }
}

/// `[{Field, ExpireAtMs}]` of the live hash fields that have their own expiry.
pub fn field_expires<'a>(env: Env<'a>, live: &LiveValue) -> Term<'a> {
    let expiring: Vec<_> = live.expiring_fields().collect();
    list(env, &expiring, |(field, at)| {
        (str_term(env, field), *at).encode(env)
    })
}

fn expire_at<'a>(env: Env<'a>, entry: &Entry) -> Term<'a> {
    optional(env, entry.expire_at_ms, |at| at.encode(env))
}

/// The rows of the ETS mirror for one key of the snapshot: `{Key, Value}`
/// and, for a key with an expiry or hash fields with their own,
/// `{Key, ExpireAtMs | undefined, #{Field => ExpireAtMs}}` (nsync_mirror's
/// expiry table). `live` must not be a big hash (at most
/// [`MAX_PUMP_MAP_KEYS`] fields, so both maps are small).
pub fn key_rows<'a>(env: Env<'a>, entry: &Entry, live: &LiveValue) -> (Term<'a>, Option<Term<'a>>) {
    let key = binary(env, &entry.key);
    let data = (key, live_value(env, live)).encode(env);
    let (fields, ats): (Vec<Term<'a>>, Vec<Term<'a>>) = live
        .expiring_fields()
        .map(|(field, at)| (str_term(env, field), at.encode(env)))
        .unzip();
    if entry.expire_at_ms.is_none() && fields.is_empty() {
        return (data, None);
    }
    let expiry = (key, expire_at(env, entry), map(env, &fields, &ats)).encode(env);
    (data, Some(expiry))
}

/// `{Key, [{Field, Value}], ExpireAtMs | undefined, [{Field, ExpireAtMs}]}`:
/// a key of the snapshot holding the live fields of a hash too big for the
/// pump to make a map of; the link process makes it.
pub fn big_hash<'a>(env: Env<'a>, entry: &Entry, live: &LiveValue) -> Term<'a> {
    let pairs = list(env, live.fields(), |f| {
        (str_term(env, &f.field), str_term(env, &f.value)).encode(env)
    });
    (
        binary(env, &entry.key),
        pairs,
        expire_at(env, entry),
        field_expires(env, live),
    )
        .encode(env)
}

fn value<'a>(env: Env<'a>, value: &Value) -> Term<'a> {
    match value {
        Value::String(s) => str_term(env, s),
        Value::List(items) | Value::Set(items) => list(env, items, |s| str_term(env, s)),
        Value::ZSet(members) => list(env, members, |(score, member)| {
            (score_term(env, *score), str_term(env, member)).encode(env)
        }),
        Value::Hash(fields) => hash(env, fields.iter().map(|f| (&f.field, &f.value))),
        Value::Stream(stream) => stream_term(env, stream),
        Value::Module {
            type_name,
            enc_version,
            raw,
        } => (
            atoms::module(),
            binary(env, type_name.as_bytes()),
            *enc_version,
            binary(env, raw),
        )
            .encode(env),
    }
}

fn score_term<'a>(env: Env<'a>, score: f64) -> Term<'a> {
    if score.is_finite() {
        score.encode(env)
    } else if score.is_nan() {
        atoms::nan().encode(env)
    } else if score > 0.0 {
        atoms::inf().encode(env)
    } else {
        atoms::neg_inf().encode(env)
    }
}

fn hash<'a, 'v, 's: 'v>(
    env: Env<'a>,
    fields: impl Iterator<Item = (&'v Str<'s>, &'v Str<'s>)>,
) -> Term<'a> {
    let (keys, values): (Vec<Term<'a>>, Vec<Term<'a>>) = fields
        .map(|(f, v)| (str_term(env, f), str_term(env, v)))
        .unzip();
    map(env, &keys, &values)
}

/// A map of `keys` to `values`; of duplicate keys (a corrupt snapshot) the
/// last one wins.
fn map<'a>(env: Env<'a>, keys: &[Term<'a>], values: &[Term<'a>]) -> Term<'a> {
    match Term::map_from_term_arrays(env, keys, values) {
        Ok(map) => map,
        Err(_) => keys
            .iter()
            .zip(values)
            .fold(Term::map_new(env), |map, (k, v)| {
                map.map_put(*k, *v).unwrap_or(map)
            }),
    }
}

fn id_term<'a>(env: Env<'a>, id: &StreamId) -> Term<'a> {
    (id.ms, id.seq).encode(env)
}

/// `{stream, [{{Ms, Seq}, [F, V, ...]}], Meta}`.
fn stream_term<'a>(env: Env<'a>, stream: &Stream) -> Term<'a> {
    let entries = list(env, &stream.entries, |entry| {
        (
            id_term(env, &entry.id),
            list(env, &entry.fields, |s| str_term(env, s)),
        )
            .encode(env)
    });
    let meta = [
        (atoms::last_id(), id_term(env, &stream.last_id)),
        (atoms::length(), stream.length.encode(env)),
        (
            atoms::first_id(),
            optional(env, stream.first_id.as_ref(), |id| id_term(env, id)),
        ),
        (
            atoms::max_deleted_id(),
            optional(env, stream.max_deleted_id.as_ref(), |id| id_term(env, id)),
        ),
        (
            atoms::entries_added(),
            optional(env, stream.entries_added, |n| n.encode(env)),
        ),
        (
            atoms::groups(),
            list(env, &stream.groups, |g| group_term(env, g)),
        ),
    ];
    (atoms::stream(), entries, atom_map(env, &meta)).encode(env)
}

fn group_term<'a>(env: Env<'a>, group: &ConsumerGroup) -> Term<'a> {
    let pending = list(env, &group.pending, |p| {
        (id_term(env, &p.id), p.delivery_time_ms, p.delivery_count).encode(env)
    });
    let consumers = list(env, &group.consumers, |c| {
        let fields = [
            (atoms::name(), binary(env, &c.name)),
            (atoms::seen_time(), c.seen_time_ms.encode(env)),
            (
                atoms::active_time(),
                optional(env, c.active_time_ms, |t| t.encode(env)),
            ),
            (
                atoms::pending(),
                list(env, &c.pending, |id| id_term(env, id)),
            ),
        ];
        atom_map(env, &fields)
    });
    let fields = [
        (atoms::name(), binary(env, &group.name)),
        (
            atoms::last_delivered_id(),
            id_term(env, &group.last_delivered_id),
        ),
        (
            atoms::entries_read(),
            optional(env, group.entries_read, |n| n.encode(env)),
        ),
        (atoms::pending(), pending),
        (atoms::consumers(), consumers),
    ];
    atom_map(env, &fields)
}

/// A map with atom keys (distinct by construction).
pub fn atom_map<'a>(env: Env<'a>, pairs: &[(rustler::Atom, Term<'a>)]) -> Term<'a> {
    pairs.iter().fold(Term::map_new(env), |map, (k, v)| {
        map.map_put(*k, *v).unwrap_or(map)
    })
}

/// Milliseconds since the epoch (expiry checks).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
