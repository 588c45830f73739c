//! [`Str`]: a byte string that grows in place with spare capacity, as
//! Redis's sds does (doubled up to 1 MiB, then 1 MiB more each time), so an
//! APPEND costs the bytes appended.

/// Growth beyond this adds this much instead of doubling (sds's
/// `SDS_MAX_PREALLOC`).
const MAX_PREALLOC: usize = 1024 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Str {
    bytes: Vec<u8>,
}

impl Str {
    pub fn new(bytes: &[u8]) -> Str {
        Str {
            bytes: bytes.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn make_room(&mut self, new_len: usize) {
        if new_len <= self.bytes.capacity() {
            return;
        }
        let target = if new_len < MAX_PREALLOC {
            new_len.saturating_mul(2)
        } else {
            new_len.saturating_add(MAX_PREALLOC)
        };
        self.bytes.reserve_exact(target - self.bytes.len());
    }

    /// APPEND; the new length.
    pub fn append(&mut self, tail: &[u8]) -> usize {
        self.make_room(self.bytes.len().saturating_add(tail.len()));
        self.bytes.extend_from_slice(tail);
        self.bytes.len()
    }

    /// SETRANGE (zero-padded); the new length.
    pub fn set_range(&mut self, offset: usize, part: &[u8]) -> usize {
        if part.is_empty() {
            return self.bytes.len();
        }
        let end = offset.saturating_add(part.len());
        if end > self.bytes.len() {
            self.make_room(end);
            self.bytes.resize(end, 0);
        }
        if let Some(dst) = self.bytes.get_mut(offset..end) {
            dst.copy_from_slice(part);
        }
        self.bytes.len()
    }

    /// SETBIT (bit 0 is the most significant of byte 0); the old bit.
    pub fn set_bit(&mut self, offset: usize, on: bool) -> bool {
        let byte = offset / 8;
        if byte >= self.bytes.len() {
            self.make_room(byte + 1);
            self.bytes.resize(byte + 1, 0);
        }
        let mask = 0x80u8 >> (offset % 8);
        let Some(b) = self.bytes.get_mut(byte) else {
            return false;
        };
        let old = *b & mask != 0;
        if on {
            *b |= mask;
        } else {
            *b &= !mask;
        }
        old
    }

    /// The bytes `start..=stop` (normalised by the caller; clamped here).
    pub fn range(&self, start: usize, stop: usize) -> &[u8] {
        let end = stop.saturating_add(1).min(self.bytes.len());
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// Bytes held (capacity).
    pub fn size(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_setrange_setbit() {
        let mut s = Str::new(b"ab");
        assert_eq!(s.append(b"cd"), 4);
        assert_eq!(s.set_range(6, b"x"), 7);
        assert_eq!(s.as_bytes(), b"abcd\0\0x");
        assert_eq!(s.set_range(1, b"ZZ"), 7);
        assert_eq!(s.as_bytes(), b"aZZd\0\0x");
        assert_eq!(s.set_range(100, b""), 7);
        assert!(!s.set_bit(7 * 8 + 1, true));
        assert_eq!(s.len(), 8);
        assert_eq!(s.as_bytes().last(), Some(&0x40));
        assert!(s.set_bit(7 * 8 + 1, false));
        assert_eq!(s.range(1, 2), b"ZZ");
        assert_eq!(s.range(5, 100).len(), 3);
        assert_eq!(s.range(50, 100), b"");
        // amortised growth: capacity doubles while small
        let mut big = Str::new(b"");
        for _ in 0..1000 {
            big.append(&[1; 100]);
        }
        assert!(big.size() < 2 * 100_000 + 1);
    }
}
