//! Redis Cluster's key hash slots, as `keyHashSlot` in Redis's `cluster.c`
//! computes them: CRC16 (XMODEM: polynomial 0x1021, initial value 0) of
//! the key, or of its hash tag, modulo 16384.

/// The number of hash slots of a cluster (`CLUSTER_SLOTS`).
pub const CLUSTER_SLOTS: u16 = 16384;

/// The slot of `key`: the CRC16 of its hash tag (the bytes between the
/// first `{` and the first `}` after it, when there are any) or else of
/// the whole key.
pub fn key_hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) & (CLUSTER_SLOTS - 1)
}

/// The hash tag of `key`, if it has a non-empty one.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = key.get(open + 1..)?;
    let close = rest.iter().position(|&b| b == b'}')?;
    match close {
        0 => None,
        _ => rest.get(..close),
    }
}

/// CRC16-XMODEM, table driven as Redis's `crc16.c`.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        // a u8 index into a 256-entry table: always in bounds
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

const CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // the XMODEM check value, also in Redis's crc16.c test
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_as_redis_computes_them() {
        // values of CLUSTER KEYSLOT on Redis 7.0
        assert_eq!(key_hash_slot(b"foo"), 12182);
        assert_eq!(key_hash_slot(b"bar"), 5061);
        assert_eq!(key_hash_slot(b"123456789"), 12739);
        assert_eq!(key_hash_slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        let user = key_hash_slot(b"user1000");
        assert_eq!(key_hash_slot(b"{user1000}.following"), user);
        assert_eq!(key_hash_slot(b"{user1000}.followers"), user);
        // only the first { and the first } after it count
        assert_eq!(key_hash_slot(b"foo{bar}{zap}"), key_hash_slot(b"bar"));
        assert_eq!(key_hash_slot(b"foo{{bar}}zap"), key_hash_slot(b"{bar"));
        // an empty tag, or none closed: the whole key
        assert_eq!(key_hash_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 0x3FFF);
        assert_eq!(key_hash_slot(b"foo{bar"), crc16(b"foo{bar") & 0x3FFF);
        assert_eq!(key_hash_slot(b"{}"), crc16(b"{}") & 0x3FFF);
        assert_eq!(key_hash_slot(b"a{b}"), key_hash_slot(b"b"));
    }
}
