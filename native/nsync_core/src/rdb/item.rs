//! What the RDB parser delivers: one [`Item`] per record of the snapshot.

use bytes::Bytes;

/// A Redis string as stored: raw bytes, or an integer-encoded string.
///
/// Integer-encoded strings keep their integer so consumers can write the
/// decimal text straight into their own buffers; [`Str::to_bytes`] gives the
/// text exactly as `GET` would return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str {
    Raw(Bytes),
    Int(i64),
}

impl Str {
    /// The bytes a client would read (`GET`, `LRANGE`, ...).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Str::Raw(b) => b.clone(),
            Str::Int(i) => Bytes::from(i.to_string()),
        }
    }

    /// Appends the client-visible bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Str::Raw(b) => out.extend_from_slice(b),
            Str::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        }
    }

    /// Length in bytes of the client-visible form.
    pub fn len(&self) -> usize {
        match self {
            Str::Raw(b) => b.len(),
            Str::Int(i) => int_text_len(*i),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn int_text_len(i: i64) -> usize {
    let mut n = if i < 0 { 2 } else { 1 };
    let mut v = i.unsigned_abs();
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// A stream ID `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

/// One live (not deleted) stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    /// Field, value, field, value, ...
    pub fields: Vec<Str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Bytes,
    pub seen_time_ms: u64,
    /// Stream v3 (RDB 11+) only.
    pub active_time_ms: Option<u64>,
    pub pending: Vec<StreamId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroup {
    pub name: Bytes,
    pub last_delivered_id: StreamId,
    /// Stream v2+ only.
    pub entries_read: Option<u64>,
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Live entries in ID order.
    pub entries: Vec<StreamEntry>,
    pub length: u64,
    pub last_id: StreamId,
    /// Stream v2+ only.
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
    pub groups: Vec<ConsumerGroup>,
}

/// One hash field; `expire_at_ms` is set for fields with their own TTL (7.4+).
#[derive(Debug, Clone, PartialEq)]
pub struct HashField {
    pub field: Str,
    pub value: Str,
    pub expire_at_ms: Option<i64>,
}

/// A key's value, in the representation of DESIGN.md.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Str),
    /// In list order.
    List(Vec<Str>),
    /// Sorted bytewise by client-visible bytes, no duplicates.
    Set(Vec<Str>),
    /// Sorted by score, then member bytewise (Redis order).
    ZSet(Vec<(f64, Str)>),
    /// In the order stored in the snapshot.
    Hash(Vec<HashField>),
    Stream(Box<Stream>),
    /// A module value (type 7): the module's 9-character type name, its
    /// encoding version, and the raw serialized body (after the module id,
    /// up to and including the EOF opcode).
    Module {
        type_name: String,
        enc_version: u32,
        raw: Bytes,
    },
}

/// One key of the snapshot with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub db: u64,
    pub key: Bytes,
    /// Absolute unix time in ms; `None` for keys without expiry.
    pub expire_at_ms: Option<i64>,
    pub idle: Option<u64>,
    pub freq: Option<u8>,
    pub value: Value,
}

/// One record of the snapshot, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The file header was read.
    Header { version: u32, valkey: bool },
    Aux { key: Bytes, value: Bytes },
    SelectDb(u64),
    ResizeDb { db_size: u64, expires_size: u64 },
    SlotInfo { slot: u64, slot_size: u64, expires_slot_size: u64 },
    /// A function library's source (FUNCTION2 opcode, Redis 7.0+).
    Function(Bytes),
    /// Module aux data, skipped: the module's type name and `when`.
    ModuleAux { module: String, when: u64 },
    Key(Entry),
    /// The end of the snapshot; the checksum (if any) was verified.
    Eof,
}
