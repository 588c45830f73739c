//! The CRC-64 trailer, computed incrementally over the consumed bytes.

use crc::{Crc, Digest, Table, CRC_64_REDIS};

/// Slice-by-16 tables: the checksum must not be the bottleneck of the parse.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

#[derive(Clone)]
pub(crate) struct Crc64(Digest<'static, u64, Table<16>>);

impl Crc64 {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn value(&self) -> u64 {
        self.0.clone().finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Crc64 {
        Crc64(CRC64.digest())
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_value_and_chunking() {
        let mut crc = super::Crc64::default();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.value(), 0xe9c6d914c4b8d9ca);
    }
}
