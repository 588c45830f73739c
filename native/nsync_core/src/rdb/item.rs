//! What the RDB parser delivers: one [`Item`] per record of the snapshot.
//!
//! Items handed to a [`super::Parser::parse`] sink borrow their strings from
//! the parser's buffers for the duration of the call ([`Raw::Borrowed`]);
//! [`Item::into_owned`] (and [`super::Parser::next_item`]) gives items that
//! own them ([`Raw::Shared`]).

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The bytes of a string that is not integer-encoded.
#[derive(Clone)]
pub enum Raw<'a> {
    /// Borrowed from the parser while an item is handed to a sink.
    Borrowed(&'a [u8]),
    /// Owned: items from `next_item`/`into_owned`, and parts of a value that
    /// arrived over several feeds.
    Shared(Bytes),
}

impl Raw<'_> {
    pub fn into_owned(self) -> Raw<'static> {
        match self {
            Raw::Borrowed(b) => Raw::Shared(Bytes::copy_from_slice(b)),
            Raw::Shared(b) => Raw::Shared(b),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        match self {
            Raw::Borrowed(b) => Bytes::copy_from_slice(b),
            Raw::Shared(b) => b.clone(),
        }
    }
}

impl Deref for Raw<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Raw::Borrowed(b) => b,
            Raw::Shared(b) => b,
        }
    }
}

impl AsRef<[u8]> for Raw<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// Equal bytes are equal strings, however they are held.
impl PartialEq for Raw<'_> {
    fn eq(&self, other: &Raw<'_>) -> bool {
        **self == **other
    }
}

impl Eq for Raw<'_> {}

impl PartialEq<[u8]> for Raw<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<str> for Raw<'_> {
    fn eq(&self, other: &str) -> bool {
        **self == *other.as_bytes()
    }
}

impl PartialEq<&str> for Raw<'_> {
    fn eq(&self, other: &&str) -> bool {
        **self == *other.as_bytes()
    }
}

/// The same text for both variants, so that items compare by Debug text too.
impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.escape_ascii())
    }
}

/// A Redis string as stored: raw bytes, or an integer-encoded string.
///
/// Integer-encoded strings keep their integer so consumers can write the
/// decimal text straight into their own buffers; [`Str::to_bytes`] gives the
/// text exactly as `GET` would return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str<'a> {
    Raw(Raw<'a>),
    Int(i64),
}

impl<'a> Str<'a> {
    /// The bytes a client would read (`GET`, `LRANGE`, ...).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Str::Raw(b) => b.to_bytes(),
            Str::Int(i) => Bytes::copy_from_slice(Decimal::new(*i).as_bytes()),
        }
    }

    /// Appends the client-visible bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Str::Raw(b) => out.extend_from_slice(b),
            Str::Int(i) => out.extend_from_slice(Decimal::new(*i).as_bytes()),
        }
    }

    /// Length in bytes of the client-visible form.
    pub fn len(&self) -> usize {
        match self {
            Str::Raw(b) => b.len(),
            Str::Int(i) => Decimal::new(*i).as_bytes().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_owned(self) -> Str<'static> {
        self.map_raw(&mut Raw::into_owned)
    }

    pub(crate) fn map_raw<'b>(self, f: &mut impl FnMut(Raw<'a>) -> Raw<'b>) -> Str<'b> {
        match self {
            Str::Raw(b) => Str::Raw(f(b)),
            Str::Int(i) => Str::Int(i),
        }
    }
}

/// The decimal text of an integer, on the stack.
pub struct Decimal {
    /// 20 bytes hold i64::MIN: 19 digits and the sign.
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    pub fn new(value: i64) -> Decimal {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        let mut rest = value.unsigned_abs();
        let mut put = |byte: u8| {
            start = start.saturating_sub(1);
            if let Some(slot) = buf.get_mut(start) {
                *slot = byte;
            }
        };
        loop {
            put(b'0' + (rest % 10) as u8);
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if value < 0 {
            put(b'-');
        }
        Decimal { buf, start }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// A stream ID `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

/// One live (not deleted) stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry<'a> {
    pub id: StreamId,
    /// Field, value, field, value, ...
    pub fields: Vec<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer<'a> {
    pub name: Raw<'a>,
    pub seen_time_ms: u64,
    /// Stream v3 (RDB 11+) only.
    pub active_time_ms: Option<u64>,
    pub pending: Vec<StreamId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroup<'a> {
    pub name: Raw<'a>,
    pub last_delivered_id: StreamId,
    /// Stream v2+ only.
    pub entries_read: Option<u64>,
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stream<'a> {
    /// Live entries in ID order.
    pub entries: Vec<StreamEntry<'a>>,
    pub length: u64,
    pub last_id: StreamId,
    /// Stream v2+ only.
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
    pub groups: Vec<ConsumerGroup<'a>>,
}

/// One hash field; `expire_at_ms` is set for fields with their own TTL (7.4+).
#[derive(Debug, Clone, PartialEq)]
pub struct HashField<'a> {
    pub field: Str<'a>,
    pub value: Str<'a>,
    pub expire_at_ms: Option<i64>,
}

/// A key's value, in the representation of DESIGN.md.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    String(Str<'a>),
    /// In list order.
    List(Vec<Str<'a>>),
    /// Sorted bytewise by client-visible bytes, no duplicates.
    Set(Vec<Str<'a>>),
    /// Sorted by score, then member bytewise (Redis order).
    ZSet(Vec<(f64, Str<'a>)>),
    /// In the order stored in the snapshot.
    Hash(Vec<HashField<'a>>),
    Stream(Box<Stream<'a>>),
    /// A module value (type 7): the module's 9-character type name, its
    /// encoding version, and the raw serialized body (after the module id,
    /// up to and including the EOF opcode).
    Module {
        type_name: String,
        enc_version: u32,
        raw: Raw<'a>,
    },
}

/// One key of the snapshot with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub db: u64,
    pub key: Raw<'a>,
    /// Absolute unix time in ms; `None` for keys without expiry.
    pub expire_at_ms: Option<i64>,
    pub idle: Option<u64>,
    pub freq: Option<u8>,
    pub value: Value<'a>,
}

/// One record of the snapshot, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// The file header was read.
    Header {
        version: u32,
        valkey: bool,
    },
    Aux {
        key: Raw<'a>,
        value: Raw<'a>,
    },
    SelectDb(u64),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    SlotInfo {
        slot: u64,
        slot_size: u64,
        expires_slot_size: u64,
    },
    /// A function library's source (FUNCTION2 opcode, Redis 7.0+).
    Function(Raw<'a>),
    /// Module aux data, skipped: the module's type name and `when`.
    ModuleAux {
        module: String,
        when: u64,
    },
    Key(Entry<'a>),
    /// The end of the snapshot; the checksum (if any) was verified.
    Eof,
}

// Rebuilding with every string replaced: `into_owned` copies them, the
// parser shares a value's strings with its input when the value is carried
// over to the next feed.

pub(crate) fn map_strs<'a, 'b>(
    strs: Vec<Str<'a>>,
    f: &mut impl FnMut(Raw<'a>) -> Raw<'b>,
) -> Vec<Str<'b>> {
    strs.into_iter().map(|s| s.map_raw(f)).collect()
}

impl<'a> HashField<'a> {
    pub(crate) fn map_raw<'b>(self, f: &mut impl FnMut(Raw<'a>) -> Raw<'b>) -> HashField<'b> {
        HashField {
            field: self.field.map_raw(f),
            value: self.value.map_raw(f),
            expire_at_ms: self.expire_at_ms,
        }
    }
}

impl<'a> StreamEntry<'a> {
    pub(crate) fn map_raw<'b>(self, f: &mut impl FnMut(Raw<'a>) -> Raw<'b>) -> StreamEntry<'b> {
        StreamEntry {
            id: self.id,
            fields: map_strs(self.fields, f),
        }
    }
}

impl<'a> Stream<'a> {
    pub(crate) fn map_raw<'b>(self, f: &mut impl FnMut(Raw<'a>) -> Raw<'b>) -> Stream<'b> {
        let groups = self
            .groups
            .into_iter()
            .map(|g| ConsumerGroup {
                name: f(g.name),
                last_delivered_id: g.last_delivered_id,
                entries_read: g.entries_read,
                pending: g.pending,
                consumers: g
                    .consumers
                    .into_iter()
                    .map(|c| Consumer {
                        name: f(c.name),
                        seen_time_ms: c.seen_time_ms,
                        active_time_ms: c.active_time_ms,
                        pending: c.pending,
                    })
                    .collect(),
            })
            .collect();
        Stream {
            entries: self.entries.into_iter().map(|e| e.map_raw(f)).collect(),
            length: self.length,
            last_id: self.last_id,
            first_id: self.first_id,
            max_deleted_id: self.max_deleted_id,
            entries_added: self.entries_added,
            groups,
        }
    }
}

impl<'a> Value<'a> {
    pub fn into_owned(self) -> Value<'static> {
        self.map_raw(&mut Raw::into_owned)
    }

    pub(crate) fn map_raw<'b>(self, f: &mut impl FnMut(Raw<'a>) -> Raw<'b>) -> Value<'b> {
        match self {
            Value::String(s) => Value::String(s.map_raw(f)),
            Value::List(items) => Value::List(map_strs(items, f)),
            Value::Set(items) => Value::Set(map_strs(items, f)),
            Value::ZSet(members) => Value::ZSet(
                members
                    .into_iter()
                    .map(|(score, m)| (score, m.map_raw(f)))
                    .collect(),
            ),
            Value::Hash(fields) => Value::Hash(fields.into_iter().map(|h| h.map_raw(f)).collect()),
            Value::Stream(stream) => Value::Stream(Box::new(stream.map_raw(f))),
            Value::Module {
                type_name,
                enc_version,
                raw,
            } => Value::Module {
                type_name,
                enc_version,
                raw: f(raw),
            },
        }
    }
}

impl Entry<'_> {
    pub fn into_owned(self) -> Entry<'static> {
        Entry {
            db: self.db,
            key: self.key.into_owned(),
            expire_at_ms: self.expire_at_ms,
            idle: self.idle,
            freq: self.freq,
            value: self.value.into_owned(),
        }
    }
}

impl Item<'_> {
    pub fn into_owned(self) -> Item<'static> {
        match self {
            Item::Header { version, valkey } => Item::Header { version, valkey },
            Item::Aux { key, value } => Item::Aux {
                key: key.into_owned(),
                value: value.into_owned(),
            },
            Item::SelectDb(db) => Item::SelectDb(db),
            Item::ResizeDb {
                db_size,
                expires_size,
            } => Item::ResizeDb {
                db_size,
                expires_size,
            },
            Item::SlotInfo {
                slot,
                slot_size,
                expires_slot_size,
            } => Item::SlotInfo {
                slot,
                slot_size,
                expires_slot_size,
            },
            Item::Function(source) => Item::Function(source.into_owned()),
            Item::ModuleAux { module, when } => Item::ModuleAux { module, when },
            Item::Key(entry) => Item::Key(entry.into_owned()),
            Item::Eof => Item::Eof,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_of_extremes() {
        for v in [0, 7, -7, 10, -10, 1234567890, i64::MAX, i64::MIN] {
            assert_eq!(Decimal::new(v).as_bytes(), v.to_string().as_bytes());
            assert_eq!(Str::Int(v).len(), v.to_string().len());
        }
    }

    #[test]
    fn borrowed_and_shared_compare_and_print_alike() {
        let borrowed = Str::Raw(Raw::Borrowed(b"a\"b\x00"));
        let owned = borrowed.clone().into_owned();
        assert!(matches!(owned, Str::Raw(Raw::Shared(_))));
        assert_eq!(borrowed, owned);
        assert_eq!(format!("{borrowed:?}"), format!("{owned:?}"));
    }
}
