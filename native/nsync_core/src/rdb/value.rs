//! Key values: compact encodings decode at once; collections of separate
//! strings are read one element at a time so a big value arriving in small
//! chunks is never re-parsed from its start.

use std::cmp::Ordering;

use bytes::Bytes;

use super::consts::*;
use super::reader::{parse_f64, str_to_i64, Read, Reader, Stop};
use super::{intset, listpack, module, stream, ziplist, zipmap};
use super::{HashField, RdbError, Str, StreamEntry, Value};

/// Preallocation cap for counts read from the file: they may lie.
const PREALLOC_MAX: usize = 1024;

/// How a value starts: complete, or a collection read element by element.
pub(crate) enum Start {
    Complete(Value),
    Elements(Elements),
}

/// A collection being read, with the elements read so far.
#[derive(Debug)]
pub(crate) struct Elements {
    left: u64,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    List(Vec<Str>),
    Set(Vec<Str>),
    ZSet { binary: bool, members: Vec<(f64, Str)> },
    Hash { ttl: FieldTtl, fields: Vec<HashField> },
    Quicklist { v2: bool, items: Vec<Str> },
    Stream { ty: u8, entries: Vec<StreamEntry> },
}

/// How a hash stores per-field expiry.
#[derive(Debug, Clone, Copy)]
enum FieldTtl {
    None,
    /// Redis 7.4 RC (type 22): an absolute ms length before each pair, 0 = none.
    AbsoluteBefore,
    /// Type 24: a length before each pair, relative to the hash's minimum.
    RelativeBefore(u64),
    /// Valkey HASH_2: an 8-byte LE absolute ms after each pair, -1 = none.
    ValkeyAfter,
}

fn vec_for<T>(declared: u64) -> Vec<T> {
    Vec::with_capacity(usize::try_from(declared).map_or(PREALLOC_MAX, |n| n.min(PREALLOC_MAX)))
}

/// Reads the start of a value of type `ty` (the key was already read; the
/// type byte was at `type_offset`).
pub(crate) fn start(r: &mut Reader, ty: u8, type_offset: u64, valkey: bool) -> Read<Start> {
    let elements = |r: &mut Reader, kind_of: fn(u64) -> Kind| -> Read<Start> {
        let left = r.length()?;
        Ok(Start::Elements(Elements { left, kind: kind_of(left) }))
    };
    if valkey && ty == VALKEY_RDB_TYPE_HASH_2 {
        return elements(r, |n| Kind::Hash { ttl: FieldTtl::ValkeyAfter, fields: vec_for(n) });
    }
    let complete = |v: Value| Ok(Start::Complete(v));
    match ty {
        RDB_TYPE_STRING => complete(Value::String(r.string()?)),
        RDB_TYPE_LIST => elements(r, |n| Kind::List(vec_for(n))),
        RDB_TYPE_SET => elements(r, |n| Kind::Set(vec_for(n))),
        RDB_TYPE_ZSET => elements(r, |n| Kind::ZSet { binary: false, members: vec_for(n) }),
        RDB_TYPE_ZSET_2 => elements(r, |n| Kind::ZSet { binary: true, members: vec_for(n) }),
        RDB_TYPE_HASH => elements(r, |n| Kind::Hash { ttl: FieldTtl::None, fields: vec_for(n) }),
        RDB_TYPE_HASH_METADATA_PRE_GA => {
            elements(r, |n| Kind::Hash { ttl: FieldTtl::AbsoluteBefore, fields: vec_for(n) })
        }
        RDB_TYPE_HASH_METADATA => {
            let min_expire = r.u64_le()?;
            let left = r.length()?;
            let kind = Kind::Hash { ttl: FieldTtl::RelativeBefore(min_expire), fields: vec_for(left) };
            Ok(Start::Elements(Elements { left, kind }))
        }
        RDB_TYPE_LIST_QUICKLIST => elements(r, |_| Kind::Quicklist { v2: false, items: Vec::new() }),
        RDB_TYPE_LIST_QUICKLIST_2 => elements(r, |_| Kind::Quicklist { v2: true, items: Vec::new() }),
        RDB_TYPE_STREAM_LISTPACKS | RDB_TYPE_STREAM_LISTPACKS_2 | RDB_TYPE_STREAM_LISTPACKS_3 => {
            let left = r.length()?;
            Ok(Start::Elements(Elements { left, kind: Kind::Stream { ty, entries: Vec::new() } }))
        }
        RDB_TYPE_MODULE_2 => complete(module_value(r)?),
        RDB_TYPE_MODULE_PRE_GA => Err(Stop::Error(RdbError::Unsupported {
            what: "module value of the pre-release format (type 6)",
            offset: type_offset,
        })),
        _ => complete(blob_value(r, ty, type_offset)?),
    }
}

/// Values stored as one blob in a compact encoding.
fn blob_value(r: &mut Reader, ty: u8, type_offset: u64) -> Read<Value> {
    if !matches!(
        ty,
        RDB_TYPE_HASH_ZIPMAP
            | RDB_TYPE_LIST_ZIPLIST
            | RDB_TYPE_SET_INTSET
            | RDB_TYPE_ZSET_ZIPLIST
            | RDB_TYPE_HASH_ZIPLIST
            | RDB_TYPE_HASH_LISTPACK
            | RDB_TYPE_ZSET_LISTPACK
            | RDB_TYPE_SET_LISTPACK
            | RDB_TYPE_HASH_LISTPACK_EX_PRE_GA
            | RDB_TYPE_HASH_LISTPACK_EX
    ) {
        return Err(Stop::Error(RdbError::UnknownType { type_byte: ty, offset: type_offset }));
    }
    if ty == RDB_TYPE_HASH_LISTPACK_EX {
        r.u64_le()?; // minimum expiry: the triplets carry absolute times
    }
    let offset = r.offset();
    let blob = r.bytes()?;
    let value = match ty {
        RDB_TYPE_HASH_ZIPMAP => Value::Hash(zipmap::decode(&blob, offset)?),
        RDB_TYPE_LIST_ZIPLIST => Value::List(ziplist::decode(&blob, offset)?),
        RDB_TYPE_SET_INTSET => Value::Set(sorted_set(intset::decode(&blob, offset)?)),
        RDB_TYPE_ZSET_ZIPLIST => zset_from_pairs(ziplist::decode(&blob, offset)?, offset)?,
        RDB_TYPE_HASH_ZIPLIST => hash_from_pairs(ziplist::decode(&blob, offset)?, offset)?,
        RDB_TYPE_HASH_LISTPACK => hash_from_pairs(listpack::decode(&blob, offset)?, offset)?,
        RDB_TYPE_ZSET_LISTPACK => zset_from_pairs(listpack::decode(&blob, offset)?, offset)?,
        RDB_TYPE_SET_LISTPACK => Value::Set(sorted_set(listpack::decode(&blob, offset)?)),
        _ => hash_from_triplets(listpack::decode(&blob, offset)?, offset)?,
    };
    Ok(value)
}

fn module_value(r: &mut Reader) -> Read<Value> {
    let id = r.length()?;
    let body_start = r.consumed();
    module::skip_body(r)?;
    let (type_name, enc_version) = module::decode_id(id);
    Ok(Value::Module { type_name, enc_version, raw: r.bytes_since(body_start) })
}

fn pairs_error(offset: u64) -> RdbError {
    RdbError::Corrupt { what: "odd number of entries in a compact hash or zset", offset }
}

fn hash_from_pairs(items: Vec<Str>, offset: u64) -> Result<Value, RdbError> {
    let mut fields = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(field) = it.next() {
        let value = it.next().ok_or(pairs_error(offset))?;
        fields.push(HashField { field, value, expire_at_ms: None });
    }
    Ok(Value::Hash(fields))
}

/// Listpack hashes with field TTLs: (field, value, absolute ms or 0) triplets.
fn hash_from_triplets(items: Vec<Str>, offset: u64) -> Result<Value, RdbError> {
    let corrupt = RdbError::Corrupt { what: "listpack hash with TTLs", offset };
    let mut fields = Vec::with_capacity(items.len() / 3);
    let mut it = items.into_iter();
    while let Some(field) = it.next() {
        let value = it.next().ok_or(corrupt.clone())?;
        let ttl = it.next().as_ref().and_then(str_to_i64).ok_or(corrupt.clone())?;
        fields.push(HashField { field, value, expire_at_ms: (ttl != 0).then_some(ttl) });
    }
    Ok(Value::Hash(fields))
}

fn zset_from_pairs(items: Vec<Str>, offset: u64) -> Result<Value, RdbError> {
    let mut members = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(member) = it.next() {
        let score = match it.next().ok_or(pairs_error(offset))? {
            Str::Int(i) => i as f64,
            Str::Raw(text) => {
                parse_f64(&text).filter(|s| !s.is_nan()).ok_or(RdbError::Corrupt { what: "zset score", offset })?
            }
        };
        members.push((score, member));
    }
    Ok(Value::ZSet(sorted_zset(members)))
}

impl Elements {
    /// Reads the remaining elements, moving `mark` past each one so a caller
    /// that runs out of input keeps what was read.
    pub(crate) fn read(&mut self, r: &mut Reader, mark: &mut usize) -> Read<Value> {
        while self.left > 0 {
            self.read_one(r)?;
            self.left -= 1;
            *mark = r.consumed();
        }
        self.finish(r)
    }

    fn read_one(&mut self, r: &mut Reader) -> Read<()> {
        match &mut self.kind {
            Kind::List(items) | Kind::Set(items) => items.push(r.string()?),
            Kind::ZSet { binary, members } => {
                let member = r.string()?;
                let score = if *binary { r.f64_le()? } else { r.text_double()? };
                // Redis refuses to load a NaN score (rdbLoadObject).
                if score.is_nan() {
                    return Err(r.corrupt("zset score (NaN)"));
                }
                members.push((score, member));
            }
            Kind::Hash { ttl, fields } => {
                let ttl_before = match ttl {
                    FieldTtl::AbsoluteBefore | FieldTtl::RelativeBefore(_) => r.length()?,
                    FieldTtl::None | FieldTtl::ValkeyAfter => 0,
                };
                let field = r.string()?;
                let value = r.string()?;
                let expire_at_ms = match *ttl {
                    FieldTtl::None => None,
                    _ if ttl_before == 0 && !matches!(ttl, FieldTtl::ValkeyAfter) => None,
                    FieldTtl::AbsoluteBefore => Some(ms_i64(Some(ttl_before), r)?),
                    FieldTtl::RelativeBefore(min) => {
                        Some(ms_i64(ttl_before.checked_add(min).and_then(|t| t.checked_sub(1)), r)?)
                    }
                    FieldTtl::ValkeyAfter => Some(r.u64_le()? as i64).filter(|&ms| ms != -1),
                };
                fields.push(HashField { field, value, expire_at_ms });
            }
            Kind::Quicklist { v2, items } => {
                let container = if *v2 { r.length()? } else { QUICKLIST_NODE_CONTAINER_PACKED };
                let offset = r.offset();
                match container {
                    QUICKLIST_NODE_CONTAINER_PLAIN => items.push(r.string()?),
                    QUICKLIST_NODE_CONTAINER_PACKED => {
                        let blob = r.bytes()?;
                        let node = if *v2 {
                            listpack::decode(&blob, offset)?
                        } else {
                            ziplist::decode(&blob, offset)?
                        };
                        items.extend(node);
                    }
                    _ => return Err(r.corrupt("quicklist node container")),
                }
            }
            Kind::Stream { entries, .. } => {
                let offset = r.offset();
                let node_key = r.bytes()?;
                let lp = r.bytes()?;
                stream::decode_node(&node_key, &lp, offset, entries)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, r: &mut Reader) -> Read<Value> {
        Ok(match &mut self.kind {
            Kind::List(items) | Kind::Quicklist { items, .. } => Value::List(std::mem::take(items)),
            Kind::Set(items) => Value::Set(sorted_set(std::mem::take(items))),
            Kind::ZSet { members, .. } => Value::ZSet(sorted_zset(std::mem::take(members))),
            Kind::Hash { fields, .. } => Value::Hash(std::mem::take(fields)),
            Kind::Stream { ty, entries } => {
                let stream = stream::read_trailer(r, *ty)?;
                Value::Stream(Box::new(super::Stream { entries: std::mem::take(entries), ..stream }))
            }
        })
    }
}

fn ms_i64(ms: Option<u64>, r: &Reader) -> Read<i64> {
    ms.and_then(|ms| i64::try_from(ms).ok()).ok_or_else(|| r.corrupt("hash field TTL"))
}

/// Sets are delivered sorted by client-visible bytes, without duplicates.
fn sorted_set(mut items: Vec<Str>) -> Vec<Str> {
    if !items.windows(2).all(|w| matches!(w, [a, b] if cmp_str(a, b) == Ordering::Less)) {
        items.sort_by(cmp_str);
        items.dedup_by(|a, b| cmp_str(a, b) == Ordering::Equal);
    }
    items
}

/// Zsets in Redis order: score, then member bytewise.
fn sorted_zset(mut members: Vec<(f64, Str)>) -> Vec<(f64, Str)> {
    let cmp = |a: &(f64, Str), b: &(f64, Str)| {
        // `+ 0.0` folds -0.0 into 0.0, which Redis treats as equal.
        (a.0 + 0.0).total_cmp(&(b.0 + 0.0)).then_with(|| cmp_str(&a.1, &b.1))
    };
    if !members.windows(2).all(|w| matches!(w, [a, b] if cmp(a, b) != Ordering::Greater)) {
        members.sort_by(cmp);
    }
    members
}

/// Compares two strings by the bytes a client would read.
pub(crate) fn cmp_str(a: &Str, b: &Str) -> Ordering {
    match (a, b) {
        (Str::Raw(a), Str::Raw(b)) => a.cmp(b),
        _ => IntText::of(a).as_bytes().cmp(IntText::of(b).as_bytes()),
    }
}

/// The decimal text of an integer on the stack, or the raw bytes.
enum IntText<'a> {
    Raw(&'a Bytes),
    Int([u8; 20], usize),
}

impl<'a> IntText<'a> {
    fn of(s: &'a Str) -> IntText<'a> {
        match s {
            Str::Raw(b) => IntText::Raw(b),
            Str::Int(i) => {
                // 20 bytes hold i64::MIN: 19 digits and the sign.
                let mut buf = [0u8; 20];
                let mut pos = buf.len();
                let mut v = i.unsigned_abs();
                let mut put = |byte: u8| {
                    pos = pos.saturating_sub(1);
                    if let Some(slot) = buf.get_mut(pos) {
                        *slot = byte;
                    }
                };
                loop {
                    put(b'0' + (v % 10) as u8);
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                if *i < 0 {
                    put(b'-');
                }
                IntText::Int(buf, pos)
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            IntText::Raw(b) => b,
            IntText::Int(buf, start) => buf.get(*start..).unwrap_or_default(),
        }
    }
}
