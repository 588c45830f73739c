//! `DUMP` payloads, which a master propagates inside `RESTORE`: one value in
//! RDB encoding (`<type><value>`), then the RDB version (2 bytes, little
//! endian) and the CRC-64 of everything before it (8 bytes, little endian).

use super::consts::{
    RDB_OPCODE_EOF, RDB_VERSION_MAX, VALKEY_RDB_VERSION_MAX, VALKEY_RDB_VERSION_MIN,
};
use super::crc::Crc64;
use super::{Item, Parser, RdbError, Status, Value};

/// Version and checksum.
const FOOTER_LEN: usize = 10;

/// The value of a `DUMP` payload, with its hash fields' expiries if any,
/// checked as Redis's `verifyDumpPayload` does (version, checksum).
pub fn decode_dump(payload: &[u8]) -> Result<Value<'static>, RdbError> {
    let corrupt = |what| RdbError::Corrupt { what, offset: 0 };
    let body_len = payload
        .len()
        .checked_sub(FOOTER_LEN)
        .ok_or(corrupt("DUMP payload (too short)"))?;
    let (body, footer) = payload.split_at(body_len);
    let (version, crc) = footer.split_at(2);
    let version = u32::from(u16::from_le_bytes([version[0], version[1]]));
    // Valkey 9's payloads carry its own versions (80+), and no magic.
    let valkey = (VALKEY_RDB_VERSION_MIN..=VALKEY_RDB_VERSION_MAX).contains(&version);
    if version > RDB_VERSION_MAX && !valkey {
        return Err(RdbError::UnsupportedVersion {
            version,
            offset: body_len as u64,
        });
    }
    let mut computed = Crc64::default();
    computed.update(&payload[..body_len + 2]);
    let expected = u64::from_le_bytes(crc.try_into().map_err(|_| corrupt("DUMP checksum"))?);
    if expected != computed.value() {
        return Err(RdbError::ChecksumMismatch {
            expected,
            computed: computed.value(),
            offset: body_len as u64 + 2,
        });
    }
    if body.is_empty() {
        return Err(corrupt("DUMP payload (no type)"));
    }
    // As a snapshot of one nameless key: header, the body, EOF, no checksum.
    let mut parser = Parser::keyless();
    let header = if valkey {
        format!("VALKEY{version:03}")
    } else {
        format!("REDIS{:04}", version.max(1))
    };
    parser.feed(header.as_bytes());
    parser.feed(body);
    parser.feed(&[RDB_OPCODE_EOF, 0, 0, 0, 0, 0, 0, 0, 0]);
    loop {
        match parser.next_item()? {
            Status::Ready(Item::Key(entry)) => return Ok(entry.value),
            Status::Ready(_) => {}
            Status::Incomplete | Status::Done => return Err(corrupt("DUMP payload (no value)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Str;

    /// `DUMP` of a key set to "hello" on Redis 7.0.15.
    const HELLO: &[u8] = b"\x00\x05hello\x0a\x00cr\xdfve4 \x0a";

    #[test]
    fn string() {
        let value = decode_dump(HELLO).unwrap();
        assert!(matches!(value, Value::String(Str::Raw(b)) if b == "hello"));
    }

    #[test]
    fn bad_checksum_version_and_length() {
        let mut flipped = HELLO.to_vec();
        flipped[3] ^= 1;
        assert!(matches!(
            decode_dump(&flipped),
            Err(RdbError::ChecksumMismatch { .. })
        ));
        let mut future = HELLO.to_vec();
        future[7] = 99;
        assert!(matches!(
            decode_dump(&future),
            Err(RdbError::UnsupportedVersion { version: 99, .. })
        ));
        for len in 0..HELLO.len() {
            assert!(decode_dump(&HELLO[..len]).is_err());
        }
    }
}
