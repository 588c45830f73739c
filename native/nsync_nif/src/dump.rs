//! `decode_dump/1`: the value of a `DUMP` payload, for `RESTORE` in the
//! stream.

use nsync_core::rdb::{decode_dump as decode, LiveValue};
use rustler::{Binary, Encoder, Env, Term};

use crate::atoms;
use crate::encode::{field_expires, live_value, unix_now_ms};
use crate::reason::rdb_error;

/// `{ok, Value, FieldExpires}`, `{ok, expired}` (a hash whose fields all
/// expired) or `{error, {rdb, Kind, Offset}}`. Dirty: a payload can hold a
/// big collection (and this runs on a scheduler, so maps of any size are
/// fine).
#[rustler::nif(schedule = "DirtyCpu")]
fn decode_dump<'a>(env: Env<'a>, payload: Binary<'a>) -> Term<'a> {
    match decode(payload.as_slice()) {
        Ok(value) => match LiveValue::of(&value, unix_now_ms()) {
            Some(live) => (
                atoms::ok(),
                live_value(env, &live),
                field_expires(env, &live),
            )
                .encode(env),
            None => (atoms::ok(), atoms::expired()).encode(env),
        },
        Err(err) => (atoms::error(), rdb_error(env, &err)).encode(env),
    }
}
