//! Big values to and from the terms of DESIGN.md's representation.

use nsync_core::big::{Big, Hash, List, Set, Str, TooLarge, ZSet};
use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Encoder, Env, Error, ListIterator, NewBinary, NifResult, Term};

use super::atoms;

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
    }
}
