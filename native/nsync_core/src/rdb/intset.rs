//! Intsets (`RDB_TYPE_SET_INTSET`): `u32 encoding (2|4|8), u32 length`, then
//! sorted signed little-endian integers.

use super::RdbError;

pub(crate) fn decode(blob: &[u8], offset: u64) -> Result<Vec<i64>, RdbError> {
    let corrupt = RdbError::Corrupt {
        what: "intset",
        offset,
    };
    let header = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(blob.get(at..at + 4)?.try_into().ok()?))
    };
    let width = header(0).ok_or(corrupt.clone())? as usize;
    let count = header(4).ok_or(corrupt.clone())? as usize;
    let body = blob.get(8..).ok_or(corrupt.clone())?;
    if !matches!(width, 2 | 4 | 8) || count.checked_mul(width) != Some(body.len()) {
        return Err(corrupt);
    }
    let mut out = Vec::with_capacity(count);
    for chunk in body.chunks_exact(width) {
        let value = match *chunk {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => return Err(corrupt),
        };
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intset(width: u32, values: &[i64]) -> Vec<u8> {
        let mut blob = width.to_le_bytes().to_vec();
        blob.extend((values.len() as u32).to_le_bytes());
        for v in values {
            blob.extend(&v.to_le_bytes()[..width as usize]);
        }
        blob
    }

    #[test]
    fn every_width_signed() {
        for (width, values) in [
            (2, vec![-32768, -1, 0, 32767]),
            (4, vec![-2147483648, -70000, 70000, 2147483647]),
            (8, vec![i64::MIN, -1099511627776, 1099511627776, i64::MAX]),
        ] {
            assert_eq!(decode(&intset(width, &values), 0).unwrap(), values);
        }
    }

    #[test]
    fn bad_headers() {
        assert!(decode(&intset(3, &[1]), 0).is_err());
        let mut short = intset(4, &[1, 2]);
        short.pop();
        assert!(decode(&short, 0).is_err());
        assert!(decode(&[2, 0], 0).is_err());
    }
}
