//! Room for the bytes the parser makes rather than finds in its input (LZF
//! output, the decimal text of integer-encoded keys and blobs), handed out
//! as slices borrowed for as long as the input is, so items borrow them
//! like any other string.
//!
//! One [`Arena`] serves one run of records (one [`super::reader::Reader`]);
//! it is carved from a buffer the parser keeps, without ever moving what it
//! handed out. A unit (record, or element of a value carried over) that
//! does not fit stops the run; the unit is retried in a fresh run, with a
//! bigger buffer if it alone needs more.

/// The buffer's size once needed (a parser that meets no LZF string or
/// integer-encoded key needs none); it grows only for a unit that needs
/// more, and is dropped after such a unit.
const DEFAULT_SIZE: usize = 256 << 10;

#[derive(Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({} bytes)", self.buf.len())
    }
}

impl Scratch {
    pub(crate) fn arena(&mut self) -> Arena<'_> {
        Arena {
            free: &mut self.buf[..],
            used: 0,
            unit_start: 0,
        }
    }

    /// Makes room for a unit that needs `needed` bytes.
    pub(crate) fn reserve(&mut self, needed: usize) {
        if needed > self.buf.len() {
            // Zeroed by the allocator (fresh pages), not byte by byte.
            self.buf = vec![
                0;
                needed
                    .max(DEFAULT_SIZE)
                    .max(self.buf.len().saturating_mul(2))
            ];
        }
    }

    /// Gives back what a big unit made it take.
    pub(crate) fn shrink(&mut self) {
        if self.buf.len() > DEFAULT_SIZE {
            self.buf = Vec::new();
        }
    }
}

pub(crate) struct Arena<'a> {
    free: &'a mut [u8],
    used: usize,
    /// `used` when the current unit started.
    unit_start: usize,
}

impl<'a> Arena<'a> {
    /// `n` bytes for the caller to fill; `Err(bytes the current unit
    /// needs)` when they do not fit.
    pub(crate) fn alloc(&mut self, n: usize) -> Result<&'a mut [u8], usize> {
        if n > self.free.len() {
            return Err(self.used.saturating_sub(self.unit_start).saturating_add(n));
        }
        let (head, rest) = std::mem::take(&mut self.free).split_at_mut(n);
        self.free = rest;
        self.used += n;
        Ok(head)
    }

    /// Bytes handed out so far.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// An arena over this one's free bytes, for a nested reader: what it
    /// hands out is dead by the time this one is used again.
    pub(crate) fn reborrow(&mut self) -> Arena<'_> {
        Arena {
            free: &mut *self.free,
            used: 0,
            unit_start: 0,
        }
    }

    /// What is allocated from now on belongs to a new unit.
    pub(crate) fn start_unit(&mut self) {
        self.unit_start = self.used;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_stay_valid_while_more_are_carved() {
        let mut scratch = Scratch::default();
        assert_eq!(scratch.arena().alloc(1), Err(1));
        scratch.reserve(1);
        let mut arena = scratch.arena();
        let a = arena.alloc(3).unwrap();
        a.copy_from_slice(b"abc");
        let a: &[u8] = a;
        arena.start_unit();
        let b = arena.alloc(DEFAULT_SIZE - 3).unwrap();
        b.fill(b'x');
        assert_eq!(a, b"abc");
        assert_eq!(arena.alloc(10), Err(DEFAULT_SIZE - 3 + 10));
        assert_eq!(arena.alloc(0).map(|s| s.len()), Ok(0));
    }

    #[test]
    fn a_unit_bigger_than_the_buffer_makes_it_grow_then_shrink() {
        let mut scratch = Scratch::default();
        scratch.reserve(1);
        let mut arena = scratch.arena();
        arena.alloc(100).unwrap();
        assert_eq!(arena.alloc(DEFAULT_SIZE), Err(DEFAULT_SIZE + 100));
        scratch.reserve(DEFAULT_SIZE + 100);
        assert!(scratch.arena().alloc(DEFAULT_SIZE + 100).is_ok());
        scratch.shrink();
        assert_eq!(scratch.arena().alloc(1), Err(1));
    }
}
