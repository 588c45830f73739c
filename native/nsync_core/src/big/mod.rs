//! Compact in-memory values for big keys of a mirror ("big values").
//!
//! Copying a whole value per write costs O(n); these structures let the
//! mirror change one element of a value of any size in O(1) or O(log n), in
//! about the memory Redis itself uses (see the README's "Big values"):
//!
//! - [`Str`]: a byte string with spare capacity, grown as Redis's sds is;
//! - [`List`]: a deque of packed chunks of up to 8 KiB, like a quicklist of
//!   listpacks;
//! - [`Set`] and [`Hash`]: hash tables of [`entry::Entry`] (one allocation
//!   per member or field, an 8-byte slot); a hash keeps its fields' expiry
//!   times beside;
//! - [`ZSet`]: member → score in a table like a set's, plus an
//!   order-statistic index over (score, member) for ranks and ranges;
//! - [`Stream`]: entries packed in chunks keyed by id in a B-tree (like
//!   Redis's listpacks in a radix tree), the metadata, and the consumer
//!   groups with their pending entries and consumers.
//!
//! Orders are Redis's: a zset by score (-0.0 equal to 0.0), then member
//! bytewise. Nothing here panics on any input; a part of 4 GiB or more is
//! refused with [`TooLarge`].

pub mod entry;
pub mod hash;
pub mod list;
mod order;
pub mod set;
pub mod stream;
pub mod string;
pub mod zset;

use crate::rdb::{Decimal, LiveValue, Str as RdbStr, Value};

pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use stream::Stream;
pub use string::Str;
pub use zset::ZSet;

/// A string counts one element of a threshold per this many bytes.
pub const BYTES_PER_ELEMENT: usize = 1024;

/// A part (element, field, value) of 4 GiB or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value part too large")]
pub struct TooLarge;

/// A big value of any type.
#[derive(Debug)]
pub enum Big {
    Str(Str),
    List(List),
    Set(Set),
    ZSet(ZSet),
    Hash(Hash),
    Stream(Stream),
}

impl Big {
    /// Elements of a collection (entries of a stream), bytes of a string.
    pub fn len(&self) -> usize {
        match self {
            Big::Str(s) => s.len(),
            Big::List(l) => l.len(),
            Big::Set(s) => s.len(),
            Big::ZSet(z) => z.len(),
            Big::Hash(h) => h.len(),
            Big::Stream(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the value takes, by an estimate of what the
    /// allocator hands out (glibc's chunks: 8 bytes of header, 16-byte
    /// steps, 32 at least) and of the tables' buckets (a slot and a
    /// control byte each, the bucket count a power of two at most 7/8
    /// full).
    pub fn memory(&self) -> usize {
        match self {
            Big::Str(s) => chunk(s.size()),
            Big::List(l) => l.chunk_sizes().map(chunk).sum::<usize>() + l.size_of_deque(),
            Big::Set(s) => table(s.capacity()) + s.entry_sizes().map(chunk).sum::<usize>(),
            Big::Hash(h) => {
                table(h.capacity()) + h.entry_sizes().map(chunk).sum::<usize>() + h.expires_memory()
            }
            Big::ZSet(z) => {
                table(z.capacity()) + z.entry_sizes().map(chunk).sum::<usize>() + z.index_size()
            }
            Big::Stream(s) => s.memory(),
        }
    }
}

/// Runs `f` on the bytes a client reads of `s`.
fn with_bytes<R>(s: &RdbStr, f: impl FnOnce(&[u8]) -> R) -> R {
    match s {
        RdbStr::Raw(bytes) => f(bytes),
        RdbStr::Int(i) => f(Decimal::new(*i).as_bytes()),
    }
}

/// The bytes an allocation of `size` takes (glibc malloc).
fn chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

/// The bytes of a hash table of entries with room for `capacity`.
fn table(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity.saturating_mul(8) / 7).next_power_of_two();
    buckets * (std::mem::size_of::<usize>() + 1)
}

impl Big {
    /// The big value of a snapshot value, if it is a list, set, zset,
    /// hash or stream of more than `threshold` elements (a hash with its
    /// fields' expiries, a stream with its groups), or a string of more
    /// than `threshold` KiB. (A stream that cannot be one, see
    /// [`Stream::of_rdb`], stays a term.)
    pub fn of_live(live: &LiveValue, threshold: usize) -> Option<Result<Big, TooLarge>> {
        match live {
            LiveValue::Other(Value::String(RdbStr::Raw(bytes)))
                if bytes.len() > threshold.saturating_mul(BYTES_PER_ELEMENT) =>
            {
                Some(Ok(Big::Str(Str::new(bytes))))
            }
            LiveValue::Hash(fields) if fields.len() > threshold => {
                let mut hash = Hash::with_capacity(fields.len());
                let built = fields.iter().try_for_each(|f| {
                    with_bytes(&f.field, |field| {
                        with_bytes(&f.value, |value| hash.set(field, value))?;
                        if let Some(at) = f.expire_at_ms {
                            hash.set_expire(field, at);
                        }
                        Ok(())
                    })
                });
                Some(built.map(|()| Big::Hash(hash)))
            }
            LiveValue::Other(Value::List(items)) if items.len() > threshold => {
                let mut list = List::new();
                for item in items {
                    with_bytes(item, |e| list.push_back(e));
                }
                Some(Ok(Big::List(list)))
            }
            LiveValue::Other(Value::Set(members)) if members.len() > threshold => {
                let mut set = Set::with_capacity(members.len());
                let built = members
                    .iter()
                    .try_for_each(|m| with_bytes(m, |m| set.add(m).map(drop)));
                Some(built.map(|()| Big::Set(set)))
            }
            LiveValue::Other(Value::ZSet(members)) if members.len() > threshold => {
                let mut zset = ZSet::with_capacity(members.len());
                let built = members
                    .iter()
                    .try_for_each(|(score, m)| with_bytes(m, |m| zset.insert(m, *score).map(drop)));
                Some(built.map(|()| Big::ZSet(zset)))
            }
            LiveValue::Other(Value::Stream(s)) if s.entries.len() > threshold => {
                Stream::of_rdb(s).map(|s| Ok(Big::Stream(s)))
            }
            _ => None,
        }
    }

    /// An independent copy (COPY).
    pub fn try_clone(&self) -> Result<Big, TooLarge> {
        Ok(match self {
            Big::Str(s) => Big::Str(s.clone()),
            Big::List(l) => Big::List(l.clone()),
            Big::Set(s) => Big::Set(s.try_clone()?),
            Big::ZSet(z) => Big::ZSet(z.try_clone()?),
            Big::Hash(h) => Big::Hash(h.try_clone()?),
            Big::Stream(s) => Big::Stream(s.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{HashField, Raw};

    fn raw(s: &str) -> RdbStr<'_> {
        RdbStr::Raw(Raw::Borrowed(s.as_bytes()))
    }

    #[test]
    fn of_live_over_the_threshold_only() {
        let list = Value::List(vec![raw("a"), RdbStr::Int(-7), raw("c")]);
        assert!(Big::of_live(&LiveValue::Other(&list), 3).is_none());
        let Some(Ok(Big::List(l))) = Big::of_live(&LiveValue::Other(&list), 2) else {
            panic!("a list")
        };
        assert_eq!(l.iter().collect::<Vec<_>>(), [&b"a"[..], b"-7", b"c"]);
        let zset = Value::ZSet(vec![(1.0, raw("x")), (2.0, raw("y"))]);
        let Some(Ok(Big::ZSet(z))) = Big::of_live(&LiveValue::Other(&zset), 1) else {
            panic!("a zset")
        };
        assert_eq!(z.score(b"y"), Some(2.0));
        let fields = [
            HashField {
                field: raw("f"),
                value: RdbStr::Int(1),
                expire_at_ms: Some(99),
            },
            HashField {
                field: raw("g"),
                value: raw("2"),
                expire_at_ms: None,
            },
        ];
        let live = LiveValue::Hash(fields.iter().collect());
        let Some(Ok(Big::Hash(h))) = Big::of_live(&live, 1) else {
            panic!("a hash")
        };
        assert_eq!(h.get(b"f"), Some(&b"1"[..]));
        assert_eq!(h.expire(b"f"), Some(99));
        let s = Value::String(raw("short"));
        assert!(Big::of_live(&LiveValue::Other(&s), 1).is_none());
        let long = "x".repeat(BYTES_PER_ELEMENT + 1);
        let s = Value::String(raw(&long));
        let Some(Ok(Big::Str(s))) = Big::of_live(&LiveValue::Other(&s), 1) else {
            panic!("a string")
        };
        assert_eq!(s.len(), BYTES_PER_ELEMENT + 1);
    }
}
