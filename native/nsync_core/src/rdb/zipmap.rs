//! Zipmaps (`RDB_TYPE_HASH_ZIPMAP`, Redis ≤ 2.4 hashes): a count byte, then
//! `len key len free value [free bytes]`… and `0xFF`. A length byte of 254 is
//! followed by a u32 LE length.

use super::{HashField, Raw, RdbError, Str};

const ZIPMAP_BIGLEN: u8 = 254;
const ZIPMAP_END: u8 = 255;

pub(crate) fn decode(blob: &[u8], offset: u64) -> Result<Vec<HashField<'_>>, RdbError> {
    let corrupt = RdbError::Corrupt {
        what: "zipmap",
        offset,
    };
    let declared = blob.first().copied().unwrap_or(0);
    let mut out = Vec::with_capacity(usize::from(declared.min(ZIPMAP_BIGLEN)));
    let mut pos = 1;
    loop {
        let Some((field, value, next)) = pair(blob, pos) else {
            return Err(corrupt);
        };
        let Some(field) = field else { return Ok(out) };
        out.push(HashField {
            field,
            value,
            expire_at_ms: None,
        });
        pos = next;
    }
}

/// The pair starting at `pos` (`None` at the end marker), and the position after it.
fn pair(blob: &[u8], pos: usize) -> Option<(Option<Str<'_>>, Str<'_>, usize)> {
    let Some((key_len, pos)) = length(blob, pos)? else {
        return Some((None, Str::Raw(Raw::Borrowed(b"")), pos));
    };
    let key_end = pos.checked_add(key_len)?;
    let key = blob.get(pos..key_end)?;
    let (value_len, after_len) = length(blob, key_end)??;
    let free = usize::from(*blob.get(after_len)?);
    let value_start = after_len + 1;
    let value_end = value_start.checked_add(value_len)?;
    let value = blob.get(value_start..value_end)?;
    let next = value_end.checked_add(free)?;
    Some((
        Some(Str::Raw(Raw::Borrowed(key))),
        Str::Raw(Raw::Borrowed(value)),
        next,
    ))
}

/// A zipmap length at `pos`: `Some(None)` at the end marker.
fn length(blob: &[u8], pos: usize) -> Option<Option<(usize, usize)>> {
    match *blob.get(pos)? {
        ZIPMAP_END => Some(None),
        ZIPMAP_BIGLEN => {
            let len = u32::from_le_bytes(blob.get(pos + 1..pos + 5)?.try_into().ok()?);
            Some(Some((usize::try_from(len).ok()?, pos + 5)))
        }
        len => Some(Some((usize::from(len), pos + 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_lengths_with_free_bytes() {
        let big = vec![b'v'; 300];
        let mut blob = vec![2u8];
        blob.extend([1, b'a', 2, 1, b'x', b'y', 0]);
        blob.extend([2, b'b', b'c', 254]);
        blob.extend(300u32.to_le_bytes());
        blob.push(0);
        blob.extend(&big);
        blob.push(ZIPMAP_END);
        let got = decode(&blob, 0).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].field, Str::Raw(Raw::Borrowed(b"a")));
        assert_eq!(got[0].value, Str::Raw(Raw::Borrowed(b"xy")));
        assert_eq!(got[1].field, Str::Raw(Raw::Borrowed(b"bc")));
        assert_eq!(got[1].value, Str::Raw(Raw::Borrowed(&big)));
    }

    #[test]
    fn truncated_is_corrupt() {
        assert!(decode(&[1, 1, b'a', 5, 0, b'x'], 0).is_err());
        assert!(decode(&[0], 0).is_err());
    }
}
