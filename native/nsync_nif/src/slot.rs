//! `key_slot/1`: a key's Redis Cluster hash slot (`nsync_core::cluster`).

use nsync_core::cluster::key_hash_slot;
use rustler::Binary;

/// The hash slot of `key`, 0..16383.
#[rustler::nif]
fn key_slot(key: Binary) -> u16 {
    key_hash_slot(key.as_slice())
}
