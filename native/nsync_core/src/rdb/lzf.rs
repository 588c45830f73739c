//! LZF-compressed strings (`RDB_ENC_LZF`).

use bytes::Bytes;

use super::RdbError;

/// LZF expands at most 264 bytes from 3 input bytes: a declared plain length
/// beyond this ratio is a lie, and must not be allocated.
const MAX_EXPANSION: usize = 90;

pub(crate) fn decompress(compressed: &[u8], plain_len: u64, offset: u64) -> Result<Bytes, RdbError> {
    let corrupt = RdbError::Corrupt { what: "LZF string", offset };
    let limit = compressed.len().saturating_mul(MAX_EXPANSION);
    let plain_len = match usize::try_from(plain_len) {
        Ok(n) if n <= limit => n,
        _ => return Err(RdbError::TooLarge { what: "LZF plain length", len: plain_len, offset }),
    };
    if plain_len == 0 {
        return if compressed.is_empty() { Ok(Bytes::new()) } else { Err(corrupt) };
    }
    match lzf::decompress(compressed, plain_len) {
        Ok(plain) if plain.len() == plain_len => Ok(Bytes::from(plain)),
        _ => Err(corrupt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(20);
        let packed = lzf::compress(&text).unwrap();
        let plain = decompress(&packed, text.len() as u64, 0).unwrap();
        assert_eq!(&plain[..], &text[..]);
    }

    #[test]
    fn lying_lengths_are_errors() {
        let packed = lzf::compress(&b"x".repeat(1000)).unwrap();
        assert!(decompress(&packed, 999, 0).is_err());
        assert!(decompress(&packed, 1001, 0).is_err());
        assert!(matches!(decompress(&packed, 1 << 60, 0), Err(RdbError::TooLarge { .. })));
        assert!(decompress(&[0xFF, 0xFF], 10, 0).is_err());
    }
}
