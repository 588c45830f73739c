//! Redis Cluster hash slots of keys (`nsync_core::cluster`): `key_slot/1`
//! for one key, `foreign_rows/2` for a batch of snapshot rows.

use nsync_core::cluster::key_hash_slot;
use rustler::types::tuple::get_tuple;
use rustler::{Binary, Encoder, Env, ListIterator, NifResult, Term};

use crate::atoms;

/// The hash slot of `key`, 0..16383.
#[rustler::nif]
fn key_slot(key: Binary) -> u16 {
    key_hash_slot(key.as_slice())
}

/// The rows of `rows` (`[{Key, Value}]`) whose key's slot is not set in
/// the bitmap `owned` (bit `Slot` of byte `Slot div 8`, least significant
/// first): `all` when every row's is, else `[{Index, Slot}]` (0-based,
/// in order). A row that is not a tuple with a binary first element
/// raises `badarg`. A batch is at most a thousand rows: a normal scheduler
/// runs it in tens of microseconds.
#[rustler::nif]
fn foreign_rows<'a>(
    env: Env<'a>,
    rows: ListIterator<'a>,
    owned: Binary<'a>,
) -> NifResult<Term<'a>> {
    let owned = owned.as_slice();
    let mut foreign = Vec::new();
    for (index, row) in rows.enumerate() {
        let key: Binary = get_tuple(row)?
            .first()
            .ok_or(rustler::Error::BadArg)?
            .decode()?;
        let slot = key_hash_slot(key.as_slice());
        let byte = owned.get(usize::from(slot / 8)).copied().unwrap_or(0);
        if byte & (1 << (slot % 8)) == 0 {
            foreign.push((index, slot));
        }
    }
    Ok(if foreign.is_empty() {
        atoms::all().encode(env)
    } else {
        foreign.encode(env)
    })
}
