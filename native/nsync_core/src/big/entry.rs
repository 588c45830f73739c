//! [`Entry`]: a key and a value in one heap block, behind a thin pointer.
//!
//! A hash field, a set member or a zset member is one allocation
//! `[key length u32][value length u32][key][value]`, and a table slot holds
//! only its 8-byte address: two `Box<[u8]>` would cost two allocations and a
//! 16-byte slot each (measured: the difference between ~50 and ~80 bytes per
//! small field). Entries hash and compare by key, and borrow as their key,
//! so a `HashSet<Entry>` is a map from key to value.

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

use super::TooLarge;

const HEADER: usize = 8;
const ALIGN: usize = 4;

/// An owned `(key, value)` pair of byte strings in one allocation.
pub struct Entry {
    block: NonNull<u8>,
}

// SAFETY: an Entry owns its block exclusively, like a Box<[u8]>.
unsafe impl Send for Entry {}
// SAFETY: shared access only reads the block.
unsafe impl Sync for Entry {}

/// The address of an entry's block, for an index that refers to entries
/// owned elsewhere (a zset's order index): it must not outlive the entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EntryRef(NonNull<u8>);

// SAFETY: a plain address; dereferencing it is what needs care (see key()).
unsafe impl Send for EntryRef {}
// SAFETY: as above.
unsafe impl Sync for EntryRef {}

fn layout(key_len: usize, value_len: usize) -> Result<Layout, TooLarge> {
    let size = HEADER
        .checked_add(key_len)
        .and_then(|n| n.checked_add(value_len))
        .ok_or(TooLarge)?;
    Layout::from_size_align(size, ALIGN).map_err(|_| TooLarge)
}

/// The key and value of the block at `block`.
///
/// # Safety
/// `block` must point to a live block written by [`Entry::new`], which must
/// outlive `'a` and not be written meanwhile.
unsafe fn parts<'a>(block: NonNull<u8>) -> (&'a [u8], &'a [u8]) {
    let p = block.as_ptr();
    let key_len = p.cast::<u32>().read() as usize;
    let value_len = p.add(4).cast::<u32>().read() as usize;
    let key = std::slice::from_raw_parts(p.add(HEADER), key_len);
    let value = std::slice::from_raw_parts(p.add(HEADER + key_len), value_len);
    (key, value)
}

impl Entry {
    /// A new entry; `TooLarge` if a part is 4 GiB or more.
    pub fn new(key: &[u8], value: &[u8]) -> Result<Entry, TooLarge> {
        let key_len = u32::try_from(key.len()).map_err(|_| TooLarge)?;
        let value_len = u32::try_from(value.len()).map_err(|_| TooLarge)?;
        let layout = layout(key.len(), value.len())?;
        // SAFETY: the layout's size is at least HEADER, never zero.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(block) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block has room for the header (4-aligned) and both
        // parts, and nothing else refers to it yet.
        unsafe {
            let p = block.as_ptr();
            p.cast::<u32>().write(key_len);
            p.add(4).cast::<u32>().write(value_len);
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(HEADER), key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), p.add(HEADER + key.len()), value.len());
        }
        Ok(Entry { block })
    }

    pub fn key(&self) -> &[u8] {
        // SAFETY: self owns the live block, borrowed for the result's life.
        unsafe { parts(self.block).0 }
    }

    pub fn value(&self) -> &[u8] {
        // SAFETY: as in key().
        unsafe { parts(self.block).1 }
    }

    /// The value, writable in place (same length).
    pub fn value_mut(&mut self) -> &mut [u8] {
        let key_len = self.key().len();
        let value_len = self.value().len();
        // SAFETY: self owns the block exclusively (&mut self), and the value
        // part lies within it.
        unsafe {
            std::slice::from_raw_parts_mut(self.block.as_ptr().add(HEADER + key_len), value_len)
        }
    }

    pub fn as_ref(&self) -> EntryRef {
        EntryRef(self.block)
    }

    /// Bytes allocated for this entry (without allocator overhead).
    pub fn size(&self) -> usize {
        HEADER + self.key().len() + self.value().len()
    }
}

impl EntryRef {
    /// The key of the entry referred to.
    ///
    /// # Safety
    /// The entry must be alive (not dropped) for `'a`.
    pub unsafe fn key<'a>(self) -> &'a [u8] {
        parts(self.0).0
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let (key_len, value_len) = (self.key().len(), self.value().len());
        // The layout was valid when the block was allocated with it.
        if let Ok(layout) = layout(key_len, value_len) {
            // SAFETY: the block was allocated with this very layout and is
            // owned by self alone.
            unsafe { alloc::dealloc(self.block.as_ptr(), layout) }
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

/// Hashes as its key does (`Borrow<[u8]>` requires it).
impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Entry")
            .field(&self.key())
            .field(&self.value())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parts_round_trip() {
        let e = Entry::new(b"field", b"value!").unwrap();
        assert_eq!(e.key(), b"field");
        assert_eq!(e.value(), b"value!");
        let empty = Entry::new(b"", b"").unwrap();
        assert_eq!(empty.key(), b"");
        assert_eq!(empty.value(), b"");
        assert_eq!(empty.size(), HEADER);
    }

    #[test]
    fn value_mut_in_place() {
        let mut e = Entry::new(b"m", &1.5f64.to_le_bytes()).unwrap();
        e.value_mut().copy_from_slice(&2.5f64.to_le_bytes());
        assert_eq!(e.value(), 2.5f64.to_le_bytes());
        assert_eq!(unsafe { e.as_ref().key() }, b"m");
    }

    #[test]
    fn set_of_entries_is_a_map_by_key() {
        let mut s = HashSet::new();
        assert!(s.insert(Entry::new(b"a", b"1").unwrap()));
        assert!(!s.insert(Entry::new(b"a", b"2").unwrap()));
        s.replace(Entry::new(b"a", b"3").unwrap());
        assert_eq!(s.get(&b"a"[..]).unwrap().value(), b"3");
        assert!(s.remove(&b"a"[..]));
        assert!(s.is_empty());
    }
}
