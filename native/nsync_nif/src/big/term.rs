//! Big values to and from the terms of DESIGN.md's representation.

use std::collections::{BTreeMap, BTreeSet};

use nsync_core::big::stream::{Consumer, EntryRef, Group, Meta, Nack, View};
use nsync_core::big::{Big, Hash, List, Set, Str, Stream, TooLarge, ZSet};
use nsync_core::rdb::StreamId;
use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Encoder, Env, Error, ListIterator, NewBinary, NifResult, Term};

use super::atoms;
use crate::atoms as names;
use crate::encode::{atom_map, optional};

pub fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    NewBinary::from_slice(env, bytes).into()
}

pub fn score_term<'a>(env: Env<'a>, score: f64) -> Term<'a> {
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

/// A score: a float, `inf`, `'-inf'` or `nan`.
pub fn decode_score(term: Term) -> NifResult<f64> {
    if let Ok(f) = term.decode::<f64>() {
        return Ok(f);
    }
    let atom: Atom = term.decode()?;
    if atom == atoms::inf() {
        Ok(f64::INFINITY)
    } else if atom == atoms::neg_inf() {
        Ok(f64::NEG_INFINITY)
    } else if atom == atoms::nan() {
        Ok(f64::NAN)
    } else {
        Err(Error::BadArg)
    }
}

pub fn bytes<'a>(term: Term<'a>) -> NifResult<&'a [u8]> {
    Ok(term.decode::<Binary<'a>>()?.as_slice())
}

/// The binaries of a list term.
pub fn binaries<'a>(term: Term<'a>) -> NifResult<impl Iterator<Item = NifResult<&'a [u8]>>> {
    Ok(term.decode::<ListIterator<'a>>()?.map(bytes))
}

fn too_large(_: TooLarge) -> Error {
    Error::BadArg
}

/// The type names of big values.
pub fn kind(big: &Big) -> Atom {
    match big {
        Big::Str(_) => atoms::string(),
        Big::List(_) => atoms::list(),
        Big::Set(_) => atoms::set(),
        Big::ZSet(_) => atoms::zset(),
        Big::Hash(_) => atoms::hash(),
        Big::Stream(_) => names::stream(),
    }
}

/// A big value of type `kind` from its term.
pub fn decode(kind: Atom, term: Term) -> NifResult<Big> {
    if kind == atoms::string() {
        Ok(Big::Str(Str::new(bytes(term)?)))
    } else if kind == atoms::list() {
        let mut list = List::new();
        for element in binaries(term)? {
            list.push_back(element?);
        }
        Ok(Big::List(list))
    } else if kind == atoms::set() {
        let mut set = Set::with_capacity(term.list_length()?);
        for member in binaries(term)? {
            set.add(member?).map_err(too_large)?;
        }
        Ok(Big::Set(set))
    } else if kind == atoms::zset() {
        let mut zset = ZSet::with_capacity(term.list_length()?);
        for pair in term.decode::<ListIterator>()? {
            let (score, member): (Term, Term) = pair.decode()?;
            zset.insert(bytes(member)?, decode_score(score)?)
                .map_err(too_large)?;
        }
        Ok(Big::ZSet(zset))
    } else if kind == atoms::hash() {
        let mut hash = Hash::with_capacity(term.map_size()?);
        for (field, value) in MapIterator::new(term).ok_or(Error::BadArg)? {
            hash.set(bytes(field)?, bytes(value)?).map_err(too_large)?;
        }
        Ok(Big::Hash(hash))
    } else if kind == names::stream() {
        decode_stream(term).map(Big::Stream)
    } else {
        Err(Error::BadArg)
    }
}

/// A list of `items` mapped through `f`, built from the tail.
pub fn list<'a, T>(
    env: Env<'a>,
    items: impl DoubleEndedIterator<Item = T>,
    mut f: impl FnMut(T) -> Term<'a>,
) -> Term<'a> {
    items.rev().fold(Term::list_new_empty(env), |tail, item| {
        tail.list_prepend(f(item))
    })
}

/// A map of `pairs` (distinct keys).
pub fn map<'a>(env: Env<'a>, pairs: impl Iterator<Item = (Term<'a>, Term<'a>)>) -> Term<'a> {
    let (keys, values): (Vec<Term<'a>>, Vec<Term<'a>>) = pairs.unzip();
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
}

/// `(score, member)` pairs as `[{Score, Member}]`.
pub fn zset_pairs<'a, 'b>(env: Env<'a>, pairs: impl Iterator<Item = (f64, &'b [u8])>) -> Term<'a> {
    let items: Vec<(f64, &[u8])> = pairs.collect();
    list(env, items.into_iter(), |(score, member)| {
        (score_term(env, score), binary(env, member)).encode(env)
    })
}

/// The whole value as its term; a hash without the fields expired at
/// `now_ms` (all fields with `None`).
pub fn encode<'a>(env: Env<'a>, big: &Big, now_ms: Option<i64>) -> Term<'a> {
    match big {
        Big::Str(s) => binary(env, s.as_bytes()),
        Big::List(l) => {
            let items: Vec<&[u8]> = l.iter().collect();
            list(env, items.into_iter(), |e| binary(env, e))
        }
        Big::Set(s) => list(env, s.sorted().into_iter(), |m| binary(env, m)),
        Big::ZSet(z) => zset_pairs(env, z.iter()),
        Big::Hash(h) => map(
            env,
            h.iter_live(now_ms)
                .map(|(f, v)| (binary(env, f), binary(env, v))),
        ),
        Big::Stream(s) => stream_term(env, s.iter(), &s.meta, &s.groups),
    }
}

// Streams: `{stream, [{{Ms, Seq}, [F, V, ...]}], Meta}` with `Meta` as
// encode.rs makes it from a snapshot.

pub fn id_term<'a>(env: Env<'a>, id: StreamId) -> Term<'a> {
    (id.ms, id.seq).encode(env)
}

pub fn decode_id(term: Term) -> NifResult<StreamId> {
    let (ms, seq): (u64, u64) = term.decode()?;
    Ok(StreamId { ms, seq })
}

/// `{Id, [F, V, ...]}`.
pub fn entry_term<'a>(env: Env<'a>, entry: &EntryRef) -> Term<'a> {
    let items: Vec<Term<'a>> = entry.items().map(|b| binary(env, b)).collect();
    (id_term(env, entry.id), items).encode(env)
}

fn stream_term<'a, 'e>(
    env: Env<'a>,
    entries: impl Iterator<Item = EntryRef<'e>>,
    meta: &Meta,
    groups: &[Group],
) -> Term<'a> {
    let entries: Vec<Term<'a>> = entries.map(|e| entry_term(env, &e)).collect();
    let meta = [
        (names::last_id(), id_term(env, meta.last_id)),
        (names::length(), meta.length.encode(env)),
        (
            names::first_id(),
            optional(env, meta.first_id, |id| id_term(env, id)),
        ),
        (
            names::max_deleted_id(),
            optional(env, meta.max_deleted_id, |id| id_term(env, id)),
        ),
        (
            names::entries_added(),
            optional(env, meta.entries_added, |n| n.encode(env)),
        ),
        (
            names::groups(),
            groups
                .iter()
                .map(|g| group_term(env, g))
                .collect::<Vec<_>>()
                .encode(env),
        ),
    ];
    (names::stream(), entries, atom_map(env, &meta)).encode(env)
}

/// A view of a stream (`Stream::view`) as the term of a stream.
pub fn view_term<'a>(env: Env<'a>, view: &View) -> Term<'a> {
    stream_term(env, view.entries.iter().copied(), &view.meta, &view.groups)
}

fn group_term<'a>(env: Env<'a>, g: &Group) -> Term<'a> {
    let pending: Vec<Term<'a>> = g
        .pel
        .iter()
        .map(|(id, n)| (id_term(env, *id), n.delivery_time, n.delivery_count).encode(env))
        .collect();
    let consumers: Vec<Term<'a>> = g
        .consumers
        .iter()
        .map(|c| {
            let pending: Vec<Term<'a>> = c.pending.iter().map(|id| id_term(env, *id)).collect();
            atom_map(
                env,
                &[
                    (names::name(), binary(env, &c.name)),
                    (names::seen_time(), c.seen_time.encode(env)),
                    (
                        names::active_time(),
                        optional(env, c.active_time, |t| t.encode(env)),
                    ),
                    (names::pending(), pending.encode(env)),
                ],
            )
        })
        .collect();
    atom_map(
        env,
        &[
            (names::name(), binary(env, &g.name)),
            (
                names::last_delivered_id(),
                id_term(env, g.last_delivered_id),
            ),
            (
                names::entries_read(),
                optional(env, g.entries_read, |n| n.encode(env)),
            ),
            (names::pending(), pending.encode(env)),
            (names::consumers(), consumers.encode(env)),
        ],
    )
}

/// The entries, metadata and groups of a stream term, the entries given
/// to `entry` in order.
pub fn decode_stream_parts<'a>(
    term: Term<'a>,
    mut entry: impl FnMut(StreamId, &[&'a [u8]]) -> NifResult<()>,
) -> NifResult<(Meta, Vec<Group>)> {
    let (tag, entries, meta): (Atom, Term<'a>, Term<'a>) = term.decode()?;
    if tag != names::stream() {
        return Err(Error::BadArg);
    }
    let mut items: Vec<&'a [u8]> = Vec::new();
    for e in entries.decode::<ListIterator<'a>>()? {
        let (id, fields): (Term<'a>, Term<'a>) = e.decode()?;
        items.clear();
        for item in binaries(fields)? {
            items.push(item?);
        }
        entry(decode_id(id)?, &items)?;
    }
    let field = |key: Atom| meta.map_get(key);
    let decoded = Meta {
        last_id: decode_id(field(names::last_id())?)?,
        length: field(names::length())?.decode()?,
        first_id: decode_optional(field(names::first_id())?, decode_id)?,
        max_deleted_id: decode_optional(field(names::max_deleted_id())?, decode_id)?,
        entries_added: decode_optional(field(names::entries_added())?, |t| t.decode())?,
    };
    let groups = list_or_empty(meta, names::groups(), decode_group)?;
    Ok((decoded, groups))
}

fn decode_stream(term: Term) -> NifResult<Stream> {
    let mut stream = Stream::new();
    let (meta, groups) = decode_stream_parts(term, |id, items| {
        stream.push(id, items).map_err(|_| Error::BadArg)
    })?;
    stream.meta = meta;
    stream.groups = groups;
    Ok(stream)
}

/// `undefined` or a value.
fn decode_optional<'a, T>(
    term: Term<'a>,
    f: impl FnOnce(Term<'a>) -> NifResult<T>,
) -> NifResult<Option<T>> {
    if term.decode::<Atom>().is_ok_and(|a| a == atoms::undefined()) {
        return Ok(None);
    }
    f(term).map(Some)
}

/// The list under `key` of map `map` (absent: empty), decoded by `f`.
fn list_or_empty<'a, T>(
    map: Term<'a>,
    key: Atom,
    f: impl Fn(Term<'a>) -> NifResult<T>,
) -> NifResult<Vec<T>> {
    match map.map_get(key) {
        Ok(list) => list.decode::<ListIterator<'a>>()?.map(f).collect(),
        Err(_) => Ok(Vec::new()),
    }
}

fn decode_group(term: Term) -> NifResult<Group> {
    let pel: BTreeMap<StreamId, Nack> = list_or_empty(term, names::pending(), |p| {
        let (id, delivery_time, delivery_count): (Term, i64, i64) = p.decode()?;
        Ok((
            decode_id(id)?,
            Nack {
                delivery_time,
                delivery_count,
            },
        ))
    })?
    .into_iter()
    .collect();
    Ok(Group {
        name: bytes(term.map_get(names::name())?)?.into(),
        last_delivered_id: decode_id(term.map_get(names::last_delivered_id())?)?,
        entries_read: decode_optional(term.map_get(names::entries_read())?, |t| t.decode())?,
        pel,
        consumers: list_or_empty(term, names::consumers(), decode_consumer)?,
    })
}

fn decode_consumer(term: Term) -> NifResult<Consumer> {
    let pending: BTreeSet<StreamId> = list_or_empty(term, names::pending(), decode_id)?
        .into_iter()
        .collect();
    Ok(Consumer {
        name: bytes(term.map_get(names::name())?)?.into(),
        seen_time: term.map_get(names::seen_time())?.decode()?,
        active_time: decode_optional(term.map_get(names::active_time())?, |t| t.decode())?,
        pending,
    })
}
