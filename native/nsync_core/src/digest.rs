//! The digest of a string value that Redis 8.4's `DIGEST` returns and that
//! `SET ... IFDEQ|IFDNE` and `DELEX ... IFDEQ|IFDNE` compare against.
//!
//! Redis (t_string.c, `stringDigest`) hashes the value's bytes with
//! XXH3-64 (seed 0, the default secret; an integer-encoded string is hashed
//! as its decimal text, which is the value's bytes here) and writes the hash
//! as 16 lowercase hexadecimal digits (`"%016" PRIx64`). A condition
//! compares that text with the argument ignoring case (`strcasecmp`); an
//! argument that is not 16 characters long is refused before any compare
//! (`validateHexDigest`), so a master never propagates one.

use twox_hash::XxHash3_64;

/// The length of a digest's text.
pub const DIGEST_HEX_LENGTH: usize = 16;

/// The XXH3-64 hash of `value`, as `DIGEST` computes it.
pub fn string_digest(value: &[u8]) -> u64 {
    XxHash3_64::oneshot(value)
}

/// The digest of `value` as the text `DIGEST` replies with.
pub fn string_digest_hex(value: &[u8]) -> [u8; DIGEST_HEX_LENGTH] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = string_digest(value);
    let mut out = [0u8; DIGEST_HEX_LENGTH];
    for (i, digit) in out.iter_mut().enumerate() {
        let shift = 4 * (DIGEST_HEX_LENGTH - 1 - i);
        // a nibble indexes the 16 digits
        *digit = HEX[((hash >> shift) & 0xf) as usize];
    }
    out
}

/// Whether the digest of `value` equals `digest` as Redis compares them:
/// case-insensitively, over the whole text.
pub fn digest_matches(value: &[u8], digest: &[u8]) -> bool {
    digest.eq_ignore_ascii_case(&string_digest_hex(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Reference values from libxxhash 0.8.1 (`XXH3_64bits`), covering each
    /// of XXH3's input-length paths (0, 1-3, 4-8, 9-16, 17-128, 129-240,
    /// and the striped long path over one and several 1 KiB blocks).
    #[test]
    fn matches_libxxhash() {
        let vectors: &[(usize, &str)] = &[
            (0, "2d06800538d394c2"),
            (1, "13e608bc156defed"),
            (2, "1c9074b93943b86c"),
            (3, "a9088dda485b481c"),
            (4, "6d9253b16c8b1ed3"),
            (7, "8e8291ad89127e2e"),
            (8, "60539db630471163"),
            (9, "feff668361d723a8"),
            (16, "b8c859b0f030b585"),
            (17, "714a04408e79b80f"),
            (64, "287eb1fa9e4be2c1"),
            (128, "67425a03650261bf"),
            (129, "c664bf3311c6abc4"),
            (200, "746cd0025327bf5b"),
            (240, "64556dc6b462a6cf"),
            (241, "8beadd3a8874fe17"),
            (500, "b8bc3e5683ce226a"),
            (1024, "9b81661c641c72b1"),
            (1025, "806c2072ed713576"),
            (4096, "d7428746842be37e"),
            (100000, "0c056f6fcc340974"),
        ];
        for (len, hex) in vectors {
            assert_eq!(
                &string_digest_hex(&pattern(*len)),
                hex.as_bytes(),
                "length {len}"
            );
        }
        assert_eq!(&string_digest_hex(b"foo"), b"ab6e5f64077e7d8a");
        assert_eq!(&string_digest_hex(b"123"), b"404a763b3f4c8c9a");
    }

    #[test]
    fn compares_as_redis_does() {
        assert!(digest_matches(b"bar", b"d463c860a032d362"));
        assert!(digest_matches(b"bar", b"D463C860A032D362"));
        assert!(!digest_matches(b"bar", b"d463c860a032d36"));
        assert!(!digest_matches(b"bar", b"0xd463c860a032d3"));
        assert!(!digest_matches(b"baz", b"d463c860a032d362"));
        // leading zeros are written out
        assert_eq!(string_digest_hex(b"").len(), DIGEST_HEX_LENGTH);
    }
}
