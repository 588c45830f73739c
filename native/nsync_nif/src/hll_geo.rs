//! The values of the commands the mirror cannot compute in Erlang without
//! redoing Redis's arithmetic: HyperLogLog strings (`nsync_core::hll`),
//! the sorted sets GEO searches store (`nsync_core::geo`) and the digest
//! string conditions compare (`nsync_core::digest`).

use nsync_core::digest;
use nsync_core::geo::{Formula, GeoError, GeoStore};
use nsync_core::hll::{self, Hll, HllError};
use rustler::{Binary, Encoder, Env, NewBinary, Term};

use crate::atoms;

mod names {
    rustler::atoms! {
        unchanged,
        not_hll,
        corrupt,
        no_such_member,
        before_7_0,
    }
}

/// A binary, or `undefined` for a key that does not exist.
fn maybe_binary<'a>(term: Term<'a>) -> Option<Binary<'a>> {
    term.decode::<Binary>().ok()
}

fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut out = NewBinary::new(env, bytes.len());
    out.as_mut_slice().copy_from_slice(bytes);
    Binary::from(out).encode(env)
}

/// `{ok, NewValue}`, `unchanged` or `{error, not_hll | corrupt}`.
fn hll_reply<'a>(env: Env<'a>, result: Result<Option<Hll>, HllError>) -> Term<'a> {
    match result {
        Ok(Some(hll)) => (atoms::ok(), binary(env, hll.as_bytes())).encode(env),
        Ok(None) => names::unchanged().encode(env),
        Err(HllError::NotHll) => (atoms::error(), names::not_hll()).encode(env),
        Err(HllError::Corrupt) => (atoms::error(), names::corrupt()).encode(env),
    }
}

/// PFADD over a key's value (`undefined`: no key).
#[rustler::nif(schedule = "DirtyCpu")]
fn hll_pfadd<'a>(
    env: Env<'a>,
    current: Term<'a>,
    elements: Vec<Binary<'a>>,
    sparse_max_bytes: usize,
) -> Term<'a> {
    let elements: Vec<&[u8]> = elements.iter().map(|e| e.as_slice()).collect();
    let current = maybe_binary(current);
    let current = current.as_ref().map(|b| b.as_slice());
    hll_reply(env, hll::pfadd(current, &elements, sparse_max_bytes))
}

/// PFCOUNT of one key: its value with the cardinality cached.
#[rustler::nif(schedule = "DirtyCpu")]
fn hll_pfcount<'a>(env: Env<'a>, current: Binary<'a>) -> Term<'a> {
    hll_reply(env, hll::pfcount(current.as_slice()))
}

/// PFDEBUG TODENSE (and GETREG): the value in the dense encoding.
#[rustler::nif(schedule = "DirtyCpu")]
fn hll_todense<'a>(env: Env<'a>, current: Binary<'a>) -> Term<'a> {
    hll_reply(env, hll::pfdebug_todense(current.as_slice()))
}

/// PFMERGE: the destination's new value from its own and the sources'.
#[rustler::nif(schedule = "DirtyCpu")]
fn hll_pfmerge<'a>(
    env: Env<'a>,
    dest: Term<'a>,
    sources: Vec<Term<'a>>,
    sparse_max_bytes: usize,
) -> Term<'a> {
    let sources: Vec<Option<Binary>> = sources.into_iter().map(maybe_binary).collect();
    let sources: Vec<Option<&[u8]>> = sources
        .iter()
        .map(|s| s.as_ref().map(|b| b.as_slice()))
        .collect();
    let dest = maybe_binary(dest);
    let dest = dest.as_ref().map(|b| b.as_slice());
    hll_reply(
        env,
        hll::pfmerge(dest, &sources, sparse_max_bytes).map(Some),
    )
}

/// A score of the mirror's zsets: a float, `inf` or `'-inf'`.
fn score(term: Term) -> Option<f64> {
    if let Ok(x) = term.decode::<f64>() {
        return Some(x);
    }
    let atom = term.atom_to_string().ok()?;
    match atom.as_str() {
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A storing GEO search (the whole command, name first) over the source
/// set (`undefined`: no such key) in the mirror's order: `{ok, [{Score,
/// Member}]}` in Redis order (empty: the destination is deleted), or
/// `{error, Reason}`. `Formula` is `before_7_0` for a master older than
/// 7.0 (its way of computing distances), anything else for a newer one.
#[rustler::nif(schedule = "DirtyCpu")]
fn geo_store<'a>(
    env: Env<'a>,
    command: Vec<Binary<'a>>,
    zset: Term<'a>,
    formula: Term<'a>,
) -> Term<'a> {
    let formula = if formula == names::before_7_0().encode(env) {
        Formula::Before70
    } else {
        Formula::Since70
    };
    let command: Vec<&[u8]> = command.iter().map(|a| a.as_slice()).collect();
    let search = match GeoStore::parse(&command) {
        Ok(search) => search,
        Err(err) => return geo_error(env, err),
    };
    let zset: Option<Vec<(Term, Binary)>> = zset.decode().ok();
    let members: Option<Vec<(f64, &[u8])>> = match &zset {
        None => None,
        Some(pairs) => {
            let mut members = Vec::with_capacity(pairs.len());
            for (s, member) in pairs {
                let Some(s) = score(*s) else {
                    return (atoms::error(), atoms::badarg()).encode(env);
                };
                members.push((s, member.as_slice()));
            }
            Some(members)
        }
    };
    match search.run(members.as_deref(), formula) {
        Ok(stored) => {
            let stored: Vec<Term> = stored
                .iter()
                .map(|(s, member)| (*s, binary(env, member)).encode(env))
                .collect();
            (atoms::ok(), stored).encode(env)
        }
        Err(err) => geo_error(env, err),
    }
}

fn geo_error(env: Env, err: GeoError) -> Term {
    match err {
        GeoError::NoSuchMember => (atoms::error(), names::no_such_member()).encode(env),
        GeoError::BadCommand(what) => (atoms::error(), (atoms::badarg(), what)).encode(env),
    }
}

/// The digest of a string value as Redis 8.4's `DIGEST` writes it: 16
/// lowercase hexadecimal digits of its XXH3-64 hash.
#[rustler::nif(schedule = "DirtyCpu")]
fn string_digest<'a>(env: Env<'a>, value: Binary<'a>) -> Term<'a> {
    binary(env, &digest::string_digest_hex(value.as_slice()))
}
