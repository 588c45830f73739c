//! Parsed values and replication events as Erlang terms (DESIGN.md).
//!
//! Strings are copied once, straight into new binaries (integer-encoded
//! ones as their decimal text, formatted on the stack); lists are built
//! back to front with cons cells, without intermediate vectors.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nsync_core::rdb::{ConsumerGroup, Decimal, Entry, HashField, Str, Stream, StreamId, Value};
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

fn optional<'a, T>(env: Env<'a>, value: Option<T>, f: impl FnOnce(T) -> Term<'a>) -> Term<'a> {
    match value {
        Some(v) => f(v),
        None => atoms::undefined().encode(env),
    }
}

fn replid_term<'a>(env: Env<'a>, replid: &Option<Bytes>) -> Term<'a> {
    optional(env, replid.as_ref(), |id| binary(env, id))
}

/// One event for the link process; `None` for keys that expired already
/// (and for an empty command).
pub fn event<'a>(env: Env<'a>, event: &Event, now_ms: i64) -> Option<Term<'a>> {
    let term = match event {
        Event::FullResync { replid, offset } => {
            (atoms::fullresync(), replid_term(env, replid), *offset).encode(env)
        }
        Event::Continue { replid, offset } => {
            (atoms::continue_(), binary(env, replid), *offset).encode(env)
        }
        Event::Key(entry) => {
            let live = LiveValue::of_entry(entry, now_ms)?;
            key(env, entry, &live)
        }
        Event::Function(source) => (atoms::function(), binary(env, source)).encode(env),
        Event::LoadEof { replid, offset } => {
            (atoms::load_eof(), replid_term(env, replid), *offset).encode(env)
        }
        Event::Command { db, args } => {
            let (name, rest) = args.split_first()?;
            let args = list(env, rest, |a| binary(env, a));
            (atoms::cmd(), *db, lowercase_binary(env, name), args).encode(env)
        }
    };
    Some(term)
}

/// The most keys of a map a thread outside the VM's schedulers (the pump)
/// may build: bigger ones are hash maps, and `enif_make_map_from_arrays` /
/// `enif_make_map_put` then take scheduler-only temporary memory, which
/// corrupts the VM. (32 is the small-map limit of release emulators.)
pub const MAX_PUMP_MAP_KEYS: usize = 32;

/// A value as delivered at some instant: a hash without its expired fields.
pub enum LiveValue<'v, 's> {
    Hash(Vec<&'v HashField<'s>>),
    Other(&'v Value<'s>),
}

impl<'v, 's> LiveValue<'v, 's> {
    /// `None` if every field of a (non-empty) hash has expired at `now_ms`.
    pub fn of(value: &'v Value<'s>, now_ms: i64) -> Option<LiveValue<'v, 's>> {
        let Value::Hash(fields) = value else {
            return Some(LiveValue::Other(value));
        };
        let live: Vec<_> = fields
            .iter()
            .filter(|f| !matches!(f.expire_at_ms, Some(at) if at <= now_ms))
            .collect();
        (!live.is_empty() || fields.is_empty()).then_some(LiveValue::Hash(live))
    }

    /// The key of `entry` as delivered at `now_ms`; `None` if it expired.
    pub fn of_entry(entry: &'v Entry<'s>, now_ms: i64) -> Option<LiveValue<'v, 's>> {
        if entry.expire_at_ms.is_some_and(|at| at <= now_ms) {
            return None;
        }
        LiveValue::of(&entry.value, now_ms)
    }

    /// The fields of a hash too big for the pump to make a map of.
    pub fn big_hash_fields(&self) -> Option<&[&'v HashField<'s>]> {
        match self {
            LiveValue::Hash(fields) if fields.len() > MAX_PUMP_MAP_KEYS => Some(fields),
            _ => None,
        }
    }

    fn fields(&self) -> &[&'v HashField<'s>] {
        match self {
            LiveValue::Hash(fields) => fields,
            LiveValue::Other(_) => &[],
        }
    }

    /// The value's term.
    pub fn term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            LiveValue::Hash(fields) => hash(env, fields.iter().map(|f| (&f.field, &f.value))),
            LiveValue::Other(value) => self::value(env, value),
        }
    }

    /// `[{Field, ExpireAtMs}]` of the hash fields that have their own expiry.
    pub fn field_expires<'a>(&self, env: Env<'a>) -> Term<'a> {
        let expiring: Vec<_> = self.expiring_fields().collect();
        list(env, &expiring, |(field, at)| {
            (str_term(env, field), *at).encode(env)
        })
    }

    fn expiring_fields(&self) -> impl Iterator<Item = (&'v Str<'s>, i64)> + '_ {
        self.fields()
            .iter()
            .filter_map(|f| Some((&f.field, f.expire_at_ms?)))
    }
}

/// `{key, Db, Key, Value, ExpireAtMs | undefined, FieldExpires}`.
pub fn key<'a>(env: Env<'a>, entry: &Entry, live: &LiveValue) -> Term<'a> {
    (
        atoms::key(),
        entry.db,
        binary(env, &entry.key),
        live.term(env),
        optional(env, entry.expire_at_ms, |at| at.encode(env)),
        live.field_expires(env),
    )
        .encode(env)
}

/// The rows of the ETS mirror for one key of the snapshot: `{Key, Value}`
/// and, for a key with an expiry or hash fields with their own,
/// `{Key, ExpireAtMs | undefined, #{Field => ExpireAtMs}}` (nsync_mirror's
/// expiry table). `live` must not be a big hash (at most
/// [`MAX_PUMP_MAP_KEYS`] fields, so both maps are small).
pub fn key_rows<'a>(env: Env<'a>, entry: &Entry, live: &LiveValue) -> (Term<'a>, Option<Term<'a>>) {
    let key = binary(env, &entry.key);
    let data = (key, live.term(env)).encode(env);
    let (fields, ats): (Vec<Term<'a>>, Vec<Term<'a>>) = live
        .expiring_fields()
        .map(|(field, at)| (str_term(env, field), at.encode(env)))
        .unzip();
    if entry.expire_at_ms.is_none() && fields.is_empty() {
        return (data, None);
    }
    let expire = optional(env, entry.expire_at_ms, |at| at.encode(env));
    (
        data,
        Some((key, expire, map(env, &fields, &ats)).encode(env)),
    )
}

/// `{big_hash, Db, Key, [{Field, Value}], ExpireAtMs | undefined,
/// [{Field, ExpireAtMs}]}`: a key of the snapshot holding the live `fields`
/// of a hash too big for the pump to make a map of; the link process
/// makes it.
pub fn big_hash<'a>(
    env: Env<'a>,
    entry: &Entry,
    live: &LiveValue,
    fields: &[&HashField],
) -> Term<'a> {
    let pairs = list(env, fields, |f| {
        (str_term(env, &f.field), str_term(env, &f.value)).encode(env)
    });
    (
        atoms::big_hash(),
        entry.db,
        binary(env, &entry.key),
        pairs,
        optional(env, entry.expire_at_ms, |at| at.encode(env)),
        live.field_expires(env),
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
