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
//!   order-statistic index over (score, member) for ranks and ranges.
//!
//! Orders are Redis's: a zset by score (-0.0 equal to 0.0), then member
//! bytewise. Nothing here panics on any input; a part of 4 GiB or more is
//! refused with [`TooLarge`].

pub mod entry;
pub mod hash;
pub mod list;
mod order;
pub mod set;
pub mod string;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use string::Str;
pub use zset::ZSet;

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
}

impl Big {
    /// Elements of a collection, bytes of a string.
    pub fn len(&self) -> usize {
        match self {
            Big::Str(s) => s.len(),
            Big::List(l) => l.len(),
            Big::Set(s) => s.len(),
            Big::ZSet(z) => z.len(),
            Big::Hash(h) => h.len(),
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
        }
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
    /// An independent copy (COPY).
    pub fn try_clone(&self) -> Result<Big, TooLarge> {
        Ok(match self {
            Big::Str(s) => Big::Str(s.clone()),
            Big::List(l) => Big::List(l.clone()),
            Big::Set(s) => Big::Set(s.try_clone()?),
            Big::ZSet(z) => Big::ZSet(z.try_clone()?),
            Big::Hash(h) => Big::Hash(h.try_clone()?),
        })
    }
}
