//! Key values: compact encodings decode at once; collections of separate
//! strings are read one element at a time, so a big value arriving in small
//! chunks is never re-parsed from its start.
//!
//! A collection is read into an [`Elements`] whose strings borrow from the
//! run's input. If the run stops inside it, the bytes of the elements read
//! so far are carried over ([`Carried`]) as they came, and so are those of
//! every element read later (each one decoded as it comes, so that errors
//! are found where a parse of the whole value finds them, then dropped);
//! once the last one is there, they are decoded again, in one go. A
//! collection that is still arriving thus costs about the bytes received,
//! whatever the number of its elements or the count it claims.

use bytes::{Bytes, BytesMut};

use super::compact::{Encoding, Entries};
use super::consts::*;
use super::number::{parse_f64, str_to_i64};
use super::reader::{Read, Reader, Stop};
use super::sort::{sort_int_set, sort_set, sort_zset};
use super::{intset, listpack, module, stream, ziplist, zipmap};
use super::{HashField, Raw, RdbError, Str, StreamEntry, Value};

/// Preallocation cap for counts read from the file: they may lie.
const PREALLOC_MAX: usize = 1024;

/// How a value starts: complete, or a collection read element by element.
pub(crate) enum Start<'a> {
    Complete(Value<'a>),
    Elements(Elements<'a>),
}

/// A collection being read, with the elements read so far.
#[derive(Debug)]
pub(crate) struct Elements<'v> {
    /// The element count the value declared (nodes for quicklists and
    /// streams).
    declared: u64,
    left: u64,
    kind: Kind<'v>,
}

#[derive(Debug)]
enum Kind<'v> {
    List(Vec<Str<'v>>),
    Set(Vec<Str<'v>>),
    ZSet {
        binary: bool,
        members: Vec<(f64, Str<'v>)>,
    },
    Hash {
        ttl: FieldTtl,
        fields: Vec<HashField<'v>>,
    },
    Quicklist {
        v2: bool,
        items: Vec<Str<'v>>,
    },
    Stream {
        ty: u8,
        entries: Vec<StreamEntry<'v>>,
    },
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
/// type byte was at `type_offset`). Plain strings (type 0) are read by the
/// caller, on its fast path.
pub(crate) fn start<'a>(
    r: &mut Reader<'a>,
    ty: u8,
    type_offset: u64,
    valkey: bool,
) -> Read<Start<'a>> {
    let elements = |r: &mut Reader<'a>, kind_of: fn(u64) -> Kind<'a>| -> Read<Start<'a>> {
        let left = r.length()?;
        Ok(Start::Elements(Elements::new(left, kind_of(left))))
    };
    if valkey && ty >= VALKEY_RDB_TYPE_HASH_2 {
        // Valkey numbers these types its own way (23 is 9.2's path hash).
        if ty != VALKEY_RDB_TYPE_HASH_2 {
            return Err(Stop::Error(RdbError::UnknownType {
                type_byte: ty,
                offset: type_offset,
            }));
        }
        return elements(r, |n| Kind::Hash {
            ttl: FieldTtl::ValkeyAfter,
            fields: vec_for(n),
        });
    }
    let complete = |v: Value<'a>| Ok(Start::Complete(v));
    match ty {
        RDB_TYPE_LIST => elements(r, |n| Kind::List(vec_for(n))),
        RDB_TYPE_SET => elements(r, |n| Kind::Set(vec_for(n))),
        RDB_TYPE_ZSET => elements(r, |n| Kind::ZSet {
            binary: false,
            members: vec_for(n),
        }),
        RDB_TYPE_ZSET_2 => elements(r, |n| Kind::ZSet {
            binary: true,
            members: vec_for(n),
        }),
        RDB_TYPE_HASH => elements(r, |n| Kind::Hash {
            ttl: FieldTtl::None,
            fields: vec_for(n),
        }),
        RDB_TYPE_HASH_METADATA_PRE_GA => elements(r, |n| Kind::Hash {
            ttl: FieldTtl::AbsoluteBefore,
            fields: vec_for(n),
        }),
        RDB_TYPE_HASH_METADATA => {
            let min_expire = r.u64_le()?;
            let left = r.length()?;
            let kind = Kind::Hash {
                ttl: FieldTtl::RelativeBefore(min_expire),
                fields: vec_for(left),
            };
            Ok(Start::Elements(Elements::new(left, kind)))
        }
        RDB_TYPE_LIST_QUICKLIST => elements(r, |_| Kind::Quicklist {
            v2: false,
            items: Vec::new(),
        }),
        RDB_TYPE_LIST_QUICKLIST_2 => elements(r, |_| Kind::Quicklist {
            v2: true,
            items: Vec::new(),
        }),
        RDB_TYPE_STREAM_LISTPACKS
        | RDB_TYPE_STREAM_LISTPACKS_2
        | RDB_TYPE_STREAM_LISTPACKS_3
        | RDB_TYPE_STREAM_LISTPACKS_4 => {
            let left = r.length()?;
            Ok(Start::Elements(Elements::new(
                left,
                Kind::Stream {
                    ty,
                    entries: Vec::new(),
                },
            )))
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
fn blob_value<'a>(r: &mut Reader<'a>, ty: u8, type_offset: u64) -> Read<Value<'a>> {
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
        return Err(Stop::Error(RdbError::UnknownType {
            type_byte: ty,
            offset: type_offset,
        }));
    }
    if ty == RDB_TYPE_HASH_LISTPACK_EX {
        r.u64_le()?; // minimum expiry: the triplets carry absolute times
    }
    let offset = r.offset();
    let blob = r.blob()?;
    let value = match ty {
        RDB_TYPE_HASH_ZIPMAP => Value::Hash(zipmap::decode(blob, offset)?),
        RDB_TYPE_LIST_ZIPLIST => Value::List(ziplist::decode(blob, offset)?),
        RDB_TYPE_SET_INTSET => Value::Set(sort_int_set(intset::decode(blob, offset)?)),
        RDB_TYPE_ZSET_ZIPLIST => zset_from_pairs(ziplist::entries(blob, offset), offset)?,
        RDB_TYPE_HASH_ZIPLIST => hash_from_pairs(ziplist::entries(blob, offset), offset)?,
        RDB_TYPE_HASH_LISTPACK => hash_from_pairs(listpack::entries(blob, offset), offset)?,
        RDB_TYPE_ZSET_LISTPACK => zset_from_pairs(listpack::entries(blob, offset), offset)?,
        RDB_TYPE_SET_LISTPACK => {
            let mut items = listpack::decode(blob, offset)?;
            sort_set(&mut items);
            Value::Set(items)
        }
        _ => hash_from_triplets(listpack::decode(blob, offset)?, offset)?,
    };
    Ok(value)
}

fn module_value<'a>(r: &mut Reader<'a>) -> Read<Value<'a>> {
    let id = r.length()?;
    let body_start = r.pos();
    module::skip_body(r)?;
    let (type_name, enc_version) = module::decode_id(id);
    Ok(Value::Module {
        type_name,
        enc_version,
        raw: Raw::Borrowed(r.bytes_since(body_start)),
    })
}

fn pairs_error(offset: u64) -> RdbError {
    RdbError::Corrupt {
        what: "odd number of entries in a compact hash or zset",
        offset,
    }
}

fn hash_from_pairs<'a, E: Encoding>(
    mut items: Entries<'a, E>,
    offset: u64,
) -> Result<Value<'a>, RdbError> {
    let mut fields = Vec::with_capacity(items.declared() / 2);
    while let Some(field) = items.next() {
        let value = items.next().ok_or(pairs_error(offset))??;
        fields.push(HashField {
            field: field?,
            value,
            expire_at_ms: None,
        });
    }
    Ok(Value::Hash(fields))
}

/// Listpack hashes with field TTLs: (field, value, absolute ms or 0) triplets.
fn hash_from_triplets(items: Vec<Str<'_>>, offset: u64) -> Result<Value<'_>, RdbError> {
    let corrupt = RdbError::Corrupt {
        what: "listpack hash with TTLs",
        offset,
    };
    let mut fields = Vec::with_capacity(items.len() / 3);
    let mut it = items.into_iter();
    while let Some(field) = it.next() {
        let value = it.next().ok_or(corrupt.clone())?;
        let ttl = it
            .next()
            .as_ref()
            .and_then(str_to_i64)
            .ok_or(corrupt.clone())?;
        fields.push(HashField {
            field,
            value,
            expire_at_ms: (ttl != 0).then_some(ttl),
        });
    }
    Ok(Value::Hash(fields))
}

fn zset_from_pairs<'a, E: Encoding>(
    mut items: Entries<'a, E>,
    offset: u64,
) -> Result<Value<'a>, RdbError> {
    let mut members = Vec::with_capacity(items.declared() / 2);
    while let Some(member) = items.next() {
        let score = match items.next().ok_or(pairs_error(offset))?? {
            Str::Int(i) => i as f64,
            Str::Raw(text) => {
                parse_f64(&text)
                    .filter(|s| !s.is_nan())
                    .ok_or(RdbError::Corrupt {
                        what: "zset score",
                        offset,
                    })?
            }
        };
        members.push((score, member?));
    }
    sort_zset(&mut members);
    Ok(Value::ZSet(members))
}

/// A collection carried over to later runs: the bytes of its elements so
/// far, copied as they came (a stream's trailer last), and what is needed
/// to decode them once they are all there.
#[derive(Debug)]
pub(crate) struct Carried {
    /// The collection's kind, without elements.
    kind: Kind<'static>,
    declared: u64,
    left: u64,
    /// The elements' bytes so far.
    raw: BytesMut,
    /// All of them (and a stream's trailer), once complete.
    whole: Option<Bytes>,
    /// Snapshot offset of the first element's first byte.
    offset: u64,
}

impl Carried {
    /// The elements' bytes taken from the run so far (`complete`: the
    /// elements read, starting at snapshot offset `offset`).
    fn new(elements: &Elements<'_>, complete: &[u8], offset: u64) -> Carried {
        Carried {
            kind: elements.kind.empty(),
            declared: elements.declared,
            left: elements.left,
            raw: BytesMut::from(complete),
            whole: None,
            offset,
        }
    }

    /// Bytes of the value received so far.
    pub(crate) fn len(&self) -> u64 {
        self.whole.as_ref().map_or(self.raw.len(), Bytes::len) as u64
    }

    /// Takes the remaining elements from `r` as they come (each one decoded
    /// to check it, its bytes copied, consumed for good); once all are
    /// there, decodes the whole value. Its bytes may add up to `max_bytes`
    /// at most (`over` makes the error past it).
    pub(crate) fn read<'b>(
        &'b mut self,
        r: &'b mut Reader<'_>,
        max_bytes: u64,
        over: impl Fn(u64, u64) -> RdbError,
    ) -> Read<Value<'b>> {
        if self.whole.is_none() {
            let mut check = Elements::new(self.left, self.kind.empty());
            while self.left > 0 {
                let start = r.pos();
                check.read_one(r)?;
                check.kind.clear();
                self.raw.extend_from_slice(r.bytes_since(start));
                if self.raw.len() as u64 > max_bytes {
                    return Err(Stop::Error(over(self.raw.len() as u64, r.offset())));
                }
                self.left -= 1;
                r.commit();
            }
            if let Kind::Stream { ty, .. } = self.kind {
                let start = r.pos();
                stream::read_trailer(r, ty)?;
                self.raw.extend_from_slice(r.bytes_since(start));
                r.commit();
            }
            self.whole = Some(std::mem::take(&mut self.raw).freeze());
        }
        self.decode(r)
    }

    /// Decodes the complete value, LZF strings into `r`'s arena.
    fn decode<'b>(&'b self, r: &'b mut Reader<'_>) -> Read<Value<'b>> {
        let Some(whole) = self.whole.as_ref() else {
            return Ok(Value::List(Vec::new()));
        };
        let mut inner = r.over(whole, self.offset);
        let mut elements = Elements::new(self.declared, self.kind.empty());
        match elements.read(&mut inner) {
            // The bytes were all there: a shortfall is a lie of the value.
            Err(Stop::Need(_)) => Err(Stop::Error(RdbError::Corrupt {
                what: "collection (its elements end early)",
                offset: self.offset,
            })),
            // The whole value is one unit: the arena must hold what all its
            // elements made, not only the last one's (the run was retried
            // with the same arena, for ever).
            Err(Stop::Arena(needed)) => Err(Stop::Arena(inner.arena_used().saturating_add(needed))),
            result => result,
        }
    }
}

impl<'v> Elements<'v> {
    fn new(declared: u64, kind: Kind<'v>) -> Elements<'v> {
        Elements {
            declared,
            left: declared,
            kind,
        }
    }

    /// Reads the remaining elements, consuming each one for good as it is
    /// complete.
    pub(crate) fn read(&mut self, r: &mut Reader<'v>) -> Read<Value<'v>> {
        while self.left > 0 {
            self.read_one(r)?;
            self.left -= 1;
            r.commit();
        }
        self.finish(r)
    }

    /// What was read so far (the elements' bytes from `start`, the
    /// reader's position where they began), kept beyond the run.
    pub(crate) fn carry_over(&self, r: &Reader<'_>, start: usize) -> Carried {
        Carried::new(self, r.committed_since(start), r.offset_of(start))
    }

    fn read_one(&mut self, r: &mut Reader<'v>) -> Read<()> {
        match &mut self.kind {
            Kind::List(items) | Kind::Set(items) => items.push(r.string()?),
            Kind::ZSet { binary, members } => {
                let member = r.string()?;
                let score = zset_score(r, *binary)?;
                members.push((score, member));
            }
            Kind::Hash { ttl, fields } => {
                let ttl_before = ttl.read_before(r)?;
                let field = r.string()?;
                let value = r.string()?;
                let expire_at_ms = match *ttl {
                    FieldTtl::None => None,
                    _ if ttl_before == 0 && !matches!(ttl, FieldTtl::ValkeyAfter) => None,
                    FieldTtl::AbsoluteBefore => Some(ms_i64(Some(ttl_before), r)?),
                    FieldTtl::RelativeBefore(min) => Some(ms_i64(
                        ttl_before.checked_add(min).and_then(|t| t.checked_sub(1)),
                        r,
                    )?),
                    FieldTtl::ValkeyAfter => Some(r.u64_le()? as i64).filter(|&ms| ms != -1),
                };
                fields.push(HashField {
                    field,
                    value,
                    expire_at_ms,
                });
            }
            Kind::Quicklist { v2, items } => {
                let container = quicklist_container(r, *v2)?;
                let offset = r.offset();
                match container {
                    QUICKLIST_NODE_CONTAINER_PLAIN => items.push(r.string()?),
                    QUICKLIST_NODE_CONTAINER_PACKED => {
                        let blob = r.blob()?;
                        if *v2 {
                            push_all(items, listpack::entries(blob, offset))?;
                        } else {
                            push_all(items, ziplist::entries(blob, offset))?;
                        }
                    }
                    _ => return Err(r.corrupt("quicklist node container")),
                }
            }
            Kind::Stream { entries, .. } => {
                let offset = r.offset();
                let node_key = r.blob()?;
                let lp = r.blob()?;
                stream::decode_node(node_key, lp, offset, entries)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, r: &mut Reader<'v>) -> Read<Value<'v>> {
        Ok(match &mut self.kind {
            Kind::List(items) | Kind::Quicklist { items, .. } => Value::List(std::mem::take(items)),
            Kind::Set(items) => {
                sort_set(items);
                Value::Set(std::mem::take(items))
            }
            Kind::ZSet { members, .. } => {
                sort_zset(members);
                Value::ZSet(std::mem::take(members))
            }
            Kind::Hash { fields, .. } => Value::Hash(std::mem::take(fields)),
            Kind::Stream { ty, entries } => {
                let stream = stream::read_trailer(r, *ty)?;
                Value::Stream(Box::new(super::Stream {
                    entries: std::mem::take(entries),
                    ..stream
                }))
            }
        })
    }
}

impl Kind<'_> {
    /// The same kind of collection, without elements.
    fn empty<'b>(&self) -> Kind<'b> {
        match self {
            Kind::List(_) => Kind::List(Vec::new()),
            Kind::Set(_) => Kind::Set(Vec::new()),
            Kind::ZSet { binary, .. } => Kind::ZSet {
                binary: *binary,
                members: Vec::new(),
            },
            Kind::Hash { ttl, .. } => Kind::Hash {
                ttl: *ttl,
                fields: Vec::new(),
            },
            Kind::Quicklist { v2, .. } => Kind::Quicklist {
                v2: *v2,
                items: Vec::new(),
            },
            Kind::Stream { ty, .. } => Kind::Stream {
                ty: *ty,
                entries: Vec::new(),
            },
        }
    }

    /// Drops the elements read (keeping the room they took).
    fn clear(&mut self) {
        match self {
            Kind::List(items) | Kind::Set(items) | Kind::Quicklist { items, .. } => items.clear(),
            Kind::ZSet { members, .. } => members.clear(),
            Kind::Hash { fields, .. } => fields.clear(),
            Kind::Stream { entries, .. } => entries.clear(),
        }
    }
}

impl FieldTtl {
    /// The length some hash encodings put before each field (0 if none).
    fn read_before(self, r: &mut Reader<'_>) -> Read<u64> {
        match self {
            FieldTtl::AbsoluteBefore | FieldTtl::RelativeBefore(_) => r.length(),
            FieldTtl::None | FieldTtl::ValkeyAfter => Ok(0),
        }
    }
}

/// A zset member's score, binary or text; Redis refuses to load a NaN
/// score (rdbLoadObject).
fn zset_score(r: &mut Reader<'_>, binary: bool) -> Read<f64> {
    let score = if binary {
        r.f64_le()?
    } else {
        r.text_double()?
    };
    if score.is_nan() {
        return Err(r.corrupt("zset score (NaN)"));
    }
    Ok(score)
}

/// A quicklist node's container (quicklist 2), packed for quicklist 1.
fn quicklist_container(r: &mut Reader<'_>, v2: bool) -> Read<u64> {
    if v2 {
        r.length()
    } else {
        Ok(QUICKLIST_NODE_CONTAINER_PACKED)
    }
}

fn push_all<'a, E: Encoding>(
    items: &mut Vec<Str<'a>>,
    entries: Entries<'a, E>,
) -> Result<(), RdbError> {
    items.reserve(entries.declared());
    for entry in entries {
        items.push(entry?);
    }
    Ok(())
}

fn ms_i64(ms: Option<u64>, r: &Reader) -> Read<i64> {
    ms.and_then(|ms| i64::try_from(ms).ok())
        .ok_or_else(|| r.corrupt("hash field TTL"))
}
