//! Big values owned by the NIF: a resource holding one of
//! `nsync_core::big`'s structures behind a read-write lock, so any process
//! reads while the link process writes (see `src_erl/nsync_big.erl`).
//!
//! Every operation comes in two NIFs: one on a normal scheduler, which
//! answers `busy` instead of waiting for the lock or doing more than
//! [`INLINE_WORK`] elements of work, and its `_dirty` twin on a dirty CPU
//! scheduler, which waits and does any amount; the Erlang side calls the
//! second when the first says `busy`. So no scheduler is held for long,
//! whatever the size of the value or what other processes are doing.
//!
//! Operations are terms: an atom or a tuple `{Name, Arg, ...}`; one meant
//! for another type raises `wrongtype`, anything else malformed `badarg`.

mod atoms;
mod term;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use nsync_core::big::stream::{EntryRef, Refs, StreamError, Trim};
use nsync_core::big::zset::{LexBound, ScoreBound};
use nsync_core::big::{Big, TooLarge};
use nsync_core::rdb::{Entry, StreamId};
use rustler::types::tuple::get_tuple;
use rustler::{Atom, Encoder, Env, Error, NifResult, ResourceArc, Term};

use atoms::*;

/// The most elements (or KiB of a string) an operation handles on a normal
/// scheduler (~50 µs of term building); more goes to a dirty one.
pub const INLINE_WORK: usize = 1000;

/// A big value: the resource behind a mirror row `{Key, Handle}`.
pub struct BigValue {
    value: RwLock<Big>,
}

#[rustler::resource_impl]
impl rustler::Resource for BigValue {}

impl BigValue {
    pub fn new(big: Big) -> BigValue {
        BigValue {
            value: RwLock::new(big),
        }
    }

    /// The value for reading; `None` (busy) if a writer holds it and we may
    /// not wait. A lock poisoned by a panic is used as it is: operations
    /// leave the structures consistent between statements.
    fn read(&self, wait: bool) -> Option<RwLockReadGuard<'_, Big>> {
        if wait {
            return Some(self.value.read().unwrap_or_else(PoisonError::into_inner));
        }
        match self.value.try_read() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn write(&self, wait: bool) -> Option<RwLockWriteGuard<'_, Big>> {
        if wait {
            return Some(self.value.write().unwrap_or_else(PoisonError::into_inner));
        }
        match self.value.try_write() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// The mirror's rows of snapshot key `entry` holding `big`:
/// `{Key, Handle}` and `{Key, ExpireAtMs | undefined, #{}, Handle}` (the
/// expiry row keeps the value alive: see `nsync_mirror`).
pub fn rows<'a>(env: Env<'a>, entry: &Entry, big: Big) -> (Term<'a>, Option<Term<'a>>) {
    let key = term::binary(env, &entry.key);
    let handle = ResourceArc::new(BigValue::new(big)).encode(env);
    let expire = match entry.expire_at_ms {
        Some(at) => at.encode(env),
        None => undefined().encode(env),
    };
    let expiry = (key, expire, Term::map_new(env), handle).encode(env);
    ((key, handle).encode(env), Some(expiry))
}

/// Where an operation runs: a dirty scheduler may wait and work long.
struct Ctx<'a> {
    env: Env<'a>,
    dirty: bool,
}

impl<'a> Ctx<'a> {
    /// Whether `n` elements of work must go to a dirty scheduler.
    fn too_much(&self, n: usize) -> bool {
        !self.dirty && n > INLINE_WORK
    }

    fn busy(&self) -> NifResult<Term<'a>> {
        Ok(busy().encode(self.env))
    }

    fn ok(&self) -> NifResult<Term<'a>> {
        Ok(rustler::types::atom::ok().encode(self.env))
    }
}

/// `{ok, Handle}`: a big value of type `Kind` (string, list, set, zset,
/// hash) made from its term. Dirty: the value may be big.
#[rustler::nif(schedule = "DirtyCpu")]
fn big_new<'a>(env: Env<'a>, kind: Atom, value: Term<'a>) -> NifResult<Term<'a>> {
    let big = term::decode(kind, value)?;
    Ok((
        rustler::types::atom::ok(),
        ResourceArc::new(BigValue::new(big)),
    )
        .encode(env))
}

#[rustler::nif]
fn big_read<'a>(env: Env<'a>, handle: ResourceArc<BigValue>, op: Term<'a>) -> NifResult<Term<'a>> {
    read(&Ctx { env, dirty: false }, &handle, op)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn big_read_dirty<'a>(
    env: Env<'a>,
    handle: ResourceArc<BigValue>,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    read(&Ctx { env, dirty: true }, &handle, op)
}

#[rustler::nif]
fn big_write<'a>(env: Env<'a>, handle: ResourceArc<BigValue>, op: Term<'a>) -> NifResult<Term<'a>> {
    write(&Ctx { env, dirty: false }, &handle, op)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn big_write_dirty<'a>(
    env: Env<'a>,
    handle: ResourceArc<BigValue>,
    op: Term<'a>,
) -> NifResult<Term<'a>> {
    write(&Ctx { env, dirty: true }, &handle, op)
}

/// An operation's name and arguments: `Name` or `{Name, Arg, ...}`.
fn parts(op: Term) -> NifResult<(Atom, Vec<Term>)> {
    if let Ok(name) = op.decode::<Atom>() {
        return Ok((name, Vec::new()));
    }
    let mut items = get_tuple(op)?;
    if items.is_empty() {
        return Err(Error::BadArg);
    }
    let name = items.remove(0).decode::<Atom>()?;
    Ok((name, items))
}

fn arg<'a>(args: &[Term<'a>], i: usize) -> NifResult<Term<'a>> {
    args.get(i).copied().ok_or(Error::BadArg)
}

/// `undefined` or a time in ms.
fn now_arg(args: &[Term], i: usize) -> NifResult<Option<i64>> {
    let t = arg(args, i)?;
    if t.decode::<Atom>().is_ok_and(|a| a == undefined()) {
        return Ok(None);
    }
    Ok(Some(t.decode::<i64>()?))
}

/// Redis's `start stop` over `len` items (negative from the end) as
/// 0-based `start..end`, empty when out of range.
fn ranks(args: &[Term], i: usize, len: usize) -> NifResult<(usize, usize)> {
    let start: i64 = arg(args, i)?.decode()?;
    let stop: i64 = arg(args, i + 1)?.decode()?;
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |x: i64| if x < 0 { n.saturating_add(x) } else { x };
    let (s, e) = (from_end(start).max(0), from_end(stop).min(n - 1));
    if s > e || s >= n {
        return Ok((0, 0));
    }
    let to = |x: i64| usize::try_from(x).unwrap_or(0);
    Ok((to(s), to(e) + 1))
}

fn score_bound(args: &[Term], i: usize) -> NifResult<ScoreBound> {
    Ok(ScoreBound {
        score: term::decode_score(arg(args, i)?)?,
        exclusive: arg(args, i + 1)?.decode::<bool>()?,
    })
}

/// `-`, `+`, `[member` or `(member`, as Redis writes lex bounds.
fn lex_bound<'a>(t: Term<'a>) -> NifResult<LexBound<'a>> {
    match term::bytes(t)? {
        b"-" => Ok(LexBound::Min),
        b"+" => Ok(LexBound::Max),
        [b'[', rest @ ..] => Ok(LexBound::Incl(rest)),
        [b'(', rest @ ..] => Ok(LexBound::Excl(rest)),
        _ => Err(Error::BadArg),
    }
}

fn side(t: Term) -> NifResult<bool> {
    let a: Atom = t.decode()?;
    if a == left() || a == min() {
        Ok(true)
    } else if a == right() || a == max() {
        Ok(false)
    } else {
        Err(Error::BadArg)
    }
}

fn count(t: Term) -> NifResult<usize> {
    Ok(usize::try_from(t.decode::<i64>()?).unwrap_or(0))
}

fn too_large(_: TooLarge) -> Error {
    Error::BadArg
}

/// A count of entries: `infinity` or an integer.
fn limit(t: Term) -> NifResult<usize> {
    if t.decode::<Atom>().is_ok_and(|a| a == infinity()) {
        return Ok(usize::MAX);
    }
    count(t)
}

fn probes<'a>(t: Term<'a>) -> NifResult<Vec<&'a [u8]>> {
    term::binaries(t)?.collect()
}

fn ids(t: Term) -> NifResult<Vec<StreamId>> {
    t.decode::<rustler::ListIterator>()?
        .map(term::decode_id)
        .collect()
}

fn refs(t: Term) -> NifResult<Refs> {
    let a: Atom = t.decode()?;
    if a == keepref() {
        Ok(Refs::KeepRef)
    } else if a == delref() {
        Ok(Refs::DelRef)
    } else if a == acked() {
        Ok(Refs::Acked)
    } else {
        Err(Error::BadArg)
    }
}

/// `{maxlen, N}` or `{minid, Id}`.
fn trim(t: Term) -> NifResult<Trim> {
    let (kind, threshold): (Atom, Term) = t.decode()?;
    if kind == maxlen() {
        Ok(Trim::MaxLen(count(threshold)? as u64))
    } else if kind == minid() {
        Ok(Trim::MinId(term::decode_id(threshold)?))
    } else {
        Err(Error::BadArg)
    }
}

/// An id out of order is a bad argument; a trim that depends on the
/// master's node layout raises `{trim_depends_on_node_layout, Id}`, as the
/// stream handler does.
fn stream_error(e: StreamError) -> Error {
    match e {
        StreamError::IdOrder(_) => Error::BadArg,
        StreamError::TrimDependsOnNodeLayout(id) => {
            Error::RaiseTerm(Box::new((trim_depends_on_node_layout(), (id.ms, id.seq))))
        }
    }
}

fn read<'a>(ctx: &Ctx<'a>, handle: &BigValue, op: Term<'a>) -> NifResult<Term<'a>> {
    let env = ctx.env;
    let (name, args) = parts(op)?;
    let Some(big) = handle.read(ctx.dirty) else {
        return ctx.busy();
    };
    let big = &*big;
    if name == len() {
        return Ok(big.len().encode(env));
    }
    if name == kind() {
        return Ok(term::kind(big).encode(env));
    }
    if name == memory() {
        return Ok(big.memory().encode(env));
    }
    if name == stat() {
        return Ok((term::kind(big), big.len()).encode(env));
    }
    if name == value() {
        if ctx.too_much(big.len() / if matches!(big, Big::Str(_)) { 1024 } else { 1 }) {
            return ctx.busy();
        }
        return Ok(term::encode(env, big, now_arg(&args, 0)?));
    }
    if name == copy() {
        if ctx.too_much(big.len()) {
            return ctx.busy();
        }
        let copy = big.try_clone().map_err(too_large)?;
        return Ok(ResourceArc::new(BigValue::new(copy)).encode(env));
    }
    match big {
        Big::Hash(h) => {
            if name == hget() {
                let now = now_arg(&args, 1)?;
                return Ok(match h.get_live(term::bytes(arg(&args, 0)?)?, now) {
                    Some(v) => term::binary(env, v),
                    None => undefined().encode(env),
                });
            }
            if name == hmget() {
                let now = now_arg(&args, 1)?;
                let fields = term::binaries(arg(&args, 0)?)?.collect::<NifResult<Vec<_>>>()?;
                return Ok(term::list(env, fields.into_iter(), |f| {
                    match h.get_live(f, now) {
                        Some(v) => term::binary(env, v),
                        None => undefined().encode(env),
                    }
                }));
            }
            if name == live_len() {
                let now = now_arg(&args, 0)?;
                let expired = h
                    .expires()
                    .filter(|(_, at)| now.is_some_and(|now| now > *at))
                    .count();
                return Ok((h.len() - expired.min(h.len())).encode(env));
            }
            if name == field_expires() {
                return Ok(term::map(
                    env,
                    h.expires()
                        .map(|(f, at)| (term::binary(env, f), at.encode(env))),
                ));
            }
            if name == project() {
                // {Fields, FieldExpires} of the probes that are fields
                let probes = term::binaries(arg(&args, 0)?)?.collect::<NifResult<Vec<_>>>()?;
                let mut found: Vec<&[u8]> =
                    probes.into_iter().filter(|f| h.get(f).is_some()).collect();
                found.sort_unstable();
                found.dedup();
                let fields = term::map(
                    env,
                    found
                        .iter()
                        .filter_map(|f| Some((term::binary(env, f), term::binary(env, h.get(f)?)))),
                );
                let expires = term::map(
                    env,
                    found
                        .iter()
                        .filter_map(|f| Some((term::binary(env, f), h.expire(f)?.encode(env)))),
                );
                return Ok((fields, expires).encode(env));
            }
        }
        Big::Set(s) => {
            if name == sismember() {
                return Ok(s.contains(term::bytes(arg(&args, 0)?)?).encode(env));
            }
            if name == project() {
                let probes = term::binaries(arg(&args, 0)?)?.collect::<NifResult<Vec<_>>>()?;
                let mut found: Vec<&[u8]> = probes.into_iter().filter(|m| s.contains(m)).collect();
                found.sort_unstable();
                found.dedup();
                return Ok(term::list(env, found.into_iter(), |m| term::binary(env, m)));
            }
        }
        Big::ZSet(z) => {
            if name == zscore() {
                return Ok(match z.score(term::bytes(arg(&args, 0)?)?) {
                    Some(s) => term::score_term(env, s),
                    None => undefined().encode(env),
                });
            }
            if name == zrange() {
                let (start, end) = ranks(&args, 0, z.len())?;
                if ctx.too_much(end - start) {
                    return ctx.busy();
                }
                return Ok(term::zset_pairs(env, z.iter_from(start).take(end - start)));
            }
            if name == zrangebyscore() {
                let (start, end) = z.score_range(score_bound(&args, 0)?, score_bound(&args, 2)?);
                if ctx.too_much(end - start) {
                    return ctx.busy();
                }
                return Ok(term::zset_pairs(env, z.iter_from(start).take(end - start)));
            }
            if name == project() {
                let probes = term::binaries(arg(&args, 0)?)?.collect::<NifResult<Vec<_>>>()?;
                let mut found: Vec<(f64, &[u8])> = probes
                    .into_iter()
                    .filter_map(|m| Some((z.score(m)?, m)))
                    .collect();
                found.sort_unstable_by(|a, b| {
                    nsync_core::big::zset::compare_scores(a.0, b.0).then(a.1.cmp(b.1))
                });
                found.dedup_by(|a, b| a.1 == b.1);
                return Ok(term::zset_pairs(env, found.into_iter()));
            }
        }
        Big::List(l) => {
            if name == lrange() {
                let (start, end) = ranks(&args, 0, l.len())?;
                if ctx.too_much(end - start) {
                    return ctx.busy();
                }
                let items: Vec<&[u8]> = if end > start {
                    l.range(start, end - 1).collect()
                } else {
                    Vec::new()
                };
                return Ok(term::list(env, items.into_iter(), |e| term::binary(env, e)));
            }
        }
        Big::Stream(s) => {
            if name == xrange() || name == xrevrange() {
                // {xrange, Lo, Hi, Count} or {xrevrange, Hi, Lo, Count}
                let from = term::decode_id(arg(&args, 0)?)?;
                let to = term::decode_id(arg(&args, 1)?)?;
                let entries: Box<dyn Iterator<Item = EntryRef>> = if name == xrange() {
                    Box::new(s.range(from).take_while(move |e| e.id <= to))
                } else {
                    Box::new(s.rev_range(from).take_while(move |e| e.id >= to))
                };
                let mut out = Vec::new();
                for e in entries.take(limit(arg(&args, 2)?)?) {
                    if ctx.too_much(out.len()) {
                        return ctx.busy();
                    }
                    out.push(term::entry_term(env, &e));
                }
                return Ok(out.encode(env));
            }
            if name == xlen() {
                return Ok(s.meta.length.encode(env));
            }
            if name == project() {
                // {project, Probes} or {project, Probes, WithPending}
                let probes = probes(arg(&args, 0)?)?;
                let with_pending = match args.get(1) {
                    Some(t) => t.decode::<bool>()?,
                    None => false,
                };
                if (with_pending && !ctx.dirty) || ctx.too_much(probes.len()) {
                    return ctx.busy();
                }
                return Ok(term::view_term(env, &s.view(&probes, with_pending)));
            }
        }
        Big::Str(_) => {}
    }
    Err(mismatch(name))
}

fn write<'a>(ctx: &Ctx<'a>, handle: &BigValue, op: Term<'a>) -> NifResult<Term<'a>> {
    let env = ctx.env;
    let (name, args) = parts(op)?;
    let Some(mut big) = handle.write(ctx.dirty) else {
        return ctx.busy();
    };
    match &mut *big {
        Big::Hash(h) => {
            if name == hset() {
                for pair in arg(&args, 0)?.decode::<rustler::ListIterator>()? {
                    let (f, v): (Term, Term) = pair.decode()?;
                    h.set(term::bytes(f)?, term::bytes(v)?).map_err(too_large)?;
                }
                return ctx.ok();
            }
            if name == hdel() {
                for f in term::binaries(arg(&args, 0)?)? {
                    h.remove(f?);
                }
                return ctx.ok();
            }
            if name == hexpire() {
                for pair in arg(&args, 0)?.decode::<rustler::ListIterator>()? {
                    let (f, at): (Term, i64) = pair.decode()?;
                    h.set_expire(term::bytes(f)?, at);
                }
                return ctx.ok();
            }
            if name == hpersist() {
                for f in term::binaries(arg(&args, 0)?)? {
                    h.clear_expire(f?);
                }
                return ctx.ok();
            }
        }
        Big::Set(s) => {
            if name == sadd() {
                for m in term::binaries(arg(&args, 0)?)? {
                    s.add(m?).map_err(too_large)?;
                }
                return ctx.ok();
            }
            if name == srem() {
                for m in term::binaries(arg(&args, 0)?)? {
                    s.remove(m?);
                }
                return ctx.ok();
            }
        }
        Big::ZSet(z) => {
            if name == zadd() {
                for pair in arg(&args, 0)?.decode::<rustler::ListIterator>()? {
                    let (score, m): (Term, Term) = pair.decode()?;
                    z.insert(term::bytes(m)?, term::decode_score(score)?)
                        .map_err(too_large)?;
                }
                return ctx.ok();
            }
            if name == zrem() {
                for m in term::binaries(arg(&args, 0)?)? {
                    z.remove(m?);
                }
                return ctx.ok();
            }
            if name == zpop() {
                let n = count(arg(&args, 1)?)?.min(z.len());
                let (start, end) = if side(arg(&args, 0)?)? {
                    (0, n)
                } else {
                    (z.len() - n, z.len())
                };
                z.remove_ranks(start, end);
                return ctx.ok();
            }
            if name == zremrangebyrank() {
                let (start, end) = ranks(&args, 0, z.len())?;
                z.remove_ranks(start, end);
                return ctx.ok();
            }
            if name == zremrangebyscore() {
                let (start, end) = z.score_range(score_bound(&args, 0)?, score_bound(&args, 2)?);
                z.remove_ranks(start, end);
                return ctx.ok();
            }
            if name == zremrangebylex() {
                let mixed = match (z.get(0), z.get(z.len().saturating_sub(1))) {
                    (Some((a, _)), Some((b, _))) => a != b,
                    _ => false,
                };
                if mixed && ctx.too_much(z.len()) {
                    return ctx.busy();
                }
                let (start, end) =
                    z.lex_range(lex_bound(arg(&args, 0)?)?, lex_bound(arg(&args, 1)?)?);
                z.remove_ranks(start, end);
                return ctx.ok();
            }
        }
        Big::List(l) => {
            if name == push() {
                let front = side(arg(&args, 0)?)?;
                for e in term::binaries(arg(&args, 1)?)? {
                    if front {
                        l.push_front(e?);
                    } else {
                        l.push_back(e?);
                    }
                }
                return ctx.ok();
            }
            if name == pop() {
                let front = side(arg(&args, 0)?)?;
                let n = count(arg(&args, 1)?)?.min(l.len());
                if ctx.too_much(n) {
                    return ctx.busy();
                }
                let popped: Vec<Vec<u8>> = (0..n).filter_map(|_| l.pop(front)).collect();
                return Ok(term::list(env, popped.iter(), |e| term::binary(env, e)));
            }
            if name == discard() {
                l.discard(side(arg(&args, 0)?)?, count(arg(&args, 1)?)?);
                return ctx.ok();
            }
            if name == lset() {
                let i: i64 = arg(&args, 0)?.decode()?;
                let n = i64::try_from(l.len()).unwrap_or(i64::MAX);
                let i = if i < 0 { n.saturating_add(i) } else { i };
                if let Ok(i) = usize::try_from(i) {
                    l.set(i, term::bytes(arg(&args, 1)?)?);
                }
                return ctx.ok();
            }
            if name == ltrim() {
                let (start, end) = ranks(&args, 0, l.len())?;
                if end == 0 {
                    l.discard(true, l.len());
                } else {
                    l.trim(start, end - 1);
                }
                return ctx.ok();
            }
            if name == linsert() {
                if ctx.too_much(l.len()) {
                    return ctx.busy();
                }
                let after = arg(&args, 0)?.decode::<Atom>()? == self::after();
                l.insert(
                    term::bytes(arg(&args, 1)?)?,
                    after,
                    term::bytes(arg(&args, 2)?)?,
                );
                return ctx.ok();
            }
            if name == lrem() {
                if ctx.too_much(l.len()) {
                    return ctx.busy();
                }
                let c: i64 = arg(&args, 0)?.decode()?;
                l.remove(c, term::bytes(arg(&args, 1)?)?);
                return ctx.ok();
            }
        }
        Big::Str(s) => {
            if name == append() {
                let tail = term::bytes(arg(&args, 0)?)?;
                if ctx.too_much(tail.len() / 1024) {
                    return ctx.busy();
                }
                return Ok(s.append(tail).encode(env));
            }
            if name == setrange() {
                let offset = count(arg(&args, 0)?)?;
                let part = term::bytes(arg(&args, 1)?)?;
                let grow = offset.saturating_add(part.len()).saturating_sub(s.len());
                if ctx.too_much((grow + part.len()) / 1024) {
                    return ctx.busy();
                }
                return Ok(s.set_range(offset, part).encode(env));
            }
            if name == setbit() {
                let offset = count(arg(&args, 0)?)?;
                let grow = (offset / 8).saturating_sub(s.len());
                if ctx.too_much(grow / 1024) {
                    return ctx.busy();
                }
                let on = arg(&args, 1)?.decode::<i64>()? != 0;
                return Ok(u8::from(s.set_bit(offset, on)).encode(env));
            }
        }
        Big::Stream(s) => {
            if name == merge() {
                // {merge, Probes, WithPending, Stream}: a handler's result
                // on {project, Probes, WithPending}
                let probes = probes(arg(&args, 0)?)?;
                let with_pending: bool = arg(&args, 1)?.decode()?;
                let mut entries: Vec<(StreamId, Vec<&[u8]>)> = Vec::new();
                let (meta, groups) = term::decode_stream_parts(arg(&args, 2)?, |id, items| {
                    entries.push((id, items.to_vec()));
                    Ok(())
                })?;
                if (with_pending && !ctx.dirty) || ctx.too_much(probes.len() + entries.len()) {
                    return ctx.busy();
                }
                s.merge(&probes, with_pending, &entries, meta, groups)
                    .map_err(stream_error)?;
                return ctx.ok();
            }
            if name == xadd() {
                // {xadd, Id, [F, V, ...]}: an XADD with its id whole
                let id = term::decode_id(arg(&args, 0)?)?;
                let items = term::binaries(arg(&args, 1)?)?.collect::<NifResult<Vec<_>>>()?;
                s.add(id, &items).map_err(stream_error)?;
                return ctx.ok();
            }
            if name == xdel() {
                // {xdel, Ids, Refs}
                let ids = ids(arg(&args, 0)?)?;
                if ctx.too_much(ids.len()) {
                    return ctx.busy();
                }
                s.delete_ids(&ids, refs(arg(&args, 1)?)?);
                return ctx.ok();
            }
            if name == xackdel() {
                // {xackdel, Group, Ids, Refs}
                let ids = ids(arg(&args, 1)?)?;
                if ctx.too_much(ids.len()) {
                    return ctx.busy();
                }
                s.ack_delete(term::bytes(arg(&args, 0)?)?, &ids, refs(arg(&args, 2)?)?);
                return ctx.ok();
            }
            if name == xtrim() {
                // {xtrim, {maxlen, N} | {minid, Id}, Refs}
                let spec = trim(arg(&args, 0)?)?;
                if ctx.too_much(s.trim_work(spec)) {
                    return ctx.busy();
                }
                s.trim(spec, refs(arg(&args, 1)?)?).map_err(stream_error)?;
                return ctx.ok();
            }
        }
    }
    Err(mismatch(name))
}

/// An operation this value has not: `wrongtype` if it is one for another
/// type, else `badarg`.
fn mismatch(name: Atom) -> Error {
    let known = [
        hget(),
        hmget(),
        live_len(),
        field_expires(),
        project(),
        sismember(),
        zscore(),
        zrange(),
        zrangebyscore(),
        lrange(),
        xrange(),
        xrevrange(),
        xlen(),
        hset(),
        hdel(),
        hexpire(),
        hpersist(),
        sadd(),
        srem(),
        zadd(),
        zrem(),
        zpop(),
        zremrangebyrank(),
        zremrangebyscore(),
        zremrangebylex(),
        push(),
        pop(),
        discard(),
        lset(),
        ltrim(),
        linsert(),
        lrem(),
        append(),
        setrange(),
        setbit(),
        merge(),
        xadd(),
        xdel(),
        xackdel(),
        xtrim(),
    ];
    if known.contains(&name) {
        Error::RaiseAtom("wrongtype")
    } else {
        Error::BadArg
    }
}
