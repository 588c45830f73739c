//! Listpacks (RDB 10+ compact encodings and stream nodes):
//! `u32 total, u16 count`, entries, `0xFF`. Each entry is an encoding, data,
//! and a back-length of 1–5 bytes that a forward reader skips.

use super::compact::{self, Encoding, Entries};
use super::{Raw, RdbError, Str};

const LP_HEADER_SIZE: usize = 6;
const LP_EOF: u8 = 0xFF;
const LP_ENCODING_32BIT_STR: u8 = 0xF0;
const LP_ENCODING_16BIT_INT: u8 = 0xF1;
const LP_ENCODING_24BIT_INT: u8 = 0xF2;
const LP_ENCODING_32BIT_INT: u8 = 0xF3;
const LP_ENCODING_64BIT_INT: u8 = 0xF4;

pub(crate) struct Listpack;

impl Encoding for Listpack {
    const NAME: &'static str = "listpack";
    const HEADER_SIZE: usize = LP_HEADER_SIZE;
    const END: u8 = LP_EOF;

    fn declared(blob: &[u8]) -> usize {
        compact::u16_at(blob, 4).min(blob.len())
    }

    /// The entry at `pos`, and the position after it and its back-length.
    fn step(blob: &[u8], pos: usize) -> Option<(Str<'_>, usize)> {
        entry(blob, pos)
            .and_then(|(entry, len)| Some((entry, pos.checked_add(len + backlen_size(len))?)))
    }
}

/// The entries in order, strings borrowed from the blob.
pub(crate) fn entries(blob: &[u8], offset: u64) -> Entries<'_, Listpack> {
    Entries::new(blob, offset)
}

/// Every entry of the listpack.
pub(crate) fn decode(blob: &[u8], offset: u64) -> Result<Vec<Str<'_>>, RdbError> {
    entries(blob, offset).into_vec()
}

/// Size of the back-length that follows an entry of `len` bytes.
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16383 => 2,
        16384..=2097151 => 3,
        2097152..=268435455 => 4,
        _ => 5,
    }
}

/// The entry at `pos` and its length (encoding plus data, without backlen).
fn entry(blob: &[u8], pos: usize) -> Option<(Str<'_>, usize)> {
    let enc = *blob.get(pos)?;
    let byte = |i: usize| blob.get(pos + i).copied();
    let int = |width: usize| -> Option<(Str, usize)> {
        let bytes = blob.get(pos + 1..pos + 1 + width)?;
        let mut buf = [0u8; 8];
        buf.get_mut(8 - width..)?.copy_from_slice(bytes);
        let value = i64::from_le_bytes(buf) >> (64 - 8 * width as u32);
        Some((Str::Int(value), 1 + width))
    };
    let string = |header: usize, len: usize| -> Option<(Str, usize)> {
        let start = pos.checked_add(header)?;
        let end = start.checked_add(len)?;
        Some((Str::Raw(Raw::Borrowed(blob.get(start..end)?)), header + len))
    };
    if enc & 0x80 == 0 {
        return Some((Str::Int(i64::from(enc)), 1));
    }
    if enc & 0xC0 == 0x80 {
        return string(1, usize::from(enc & 0x3F));
    }
    if enc & 0xE0 == 0xC0 {
        let raw = i64::from(enc & 0x1F) << 8 | i64::from(byte(1)?);
        // 13-bit two's complement.
        let value = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
        return Some((Str::Int(value), 2));
    }
    if enc & 0xF0 == 0xE0 {
        return string(2, usize::from(enc & 0x0F) << 8 | usize::from(byte(1)?));
    }
    match enc {
        LP_ENCODING_32BIT_STR => {
            let len = u32::from_le_bytes(blob.get(pos + 1..pos + 5)?.try_into().ok()?);
            string(5, usize::try_from(len).ok()?)
        }
        LP_ENCODING_16BIT_INT => int(2),
        LP_ENCODING_24BIT_INT => int(3),
        LP_ENCODING_32BIT_INT => int(4),
        LP_ENCODING_64BIT_INT => int(8),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a listpack from raw entry encodings (backlens are added here).
    pub(crate) fn listpack(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in entries {
            body.extend(e);
            let mut len = e.len();
            let mut back = Vec::new();
            loop {
                back.push((len & 0x7F) as u8 | if back.is_empty() { 0 } else { 0x80 });
                len >>= 7;
                if len == 0 {
                    break;
                }
            }
            back.reverse();
            body.extend(back);
        }
        let mut blob = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        blob.extend((entries.len() as u16).to_le_bytes());
        blob.extend(body);
        blob.push(0xFF);
        blob
    }

    /// A listpack entry for a small string.
    pub(crate) fn lp_str(s: &[u8]) -> Vec<u8> {
        assert!(s.len() < 64);
        [vec![0x80 | s.len() as u8], s.to_vec()].concat()
    }

    #[test]
    fn integer_encodings() {
        let entries = vec![
            vec![0x00],
            vec![0x7F],
            vec![0xC0 | 0x10, 0x00], // int13 -4096
            vec![0xC0 | 0x0F, 0xFF], // int13 4095
            vec![0xDF, 0xFF],        // int13 -1
            [vec![0xF1], (-32768i16).to_le_bytes().to_vec()].concat(),
            vec![0xF2, 0x00, 0x00, 0x80],
            vec![0xF2, 0xFF, 0xFF, 0x7F],
            [vec![0xF3], i32::MIN.to_le_bytes().to_vec()].concat(),
            [vec![0xF4], (-4611686018427387904i64).to_le_bytes().to_vec()].concat(),
        ];
        let blob = listpack(&entries);
        let got = decode(&blob, 0).unwrap();
        let want = [
            0,
            127,
            -4096,
            4095,
            -1,
            -32768,
            -8388608,
            8388607,
            i32::MIN as i64,
            -4611686018427387904,
        ];
        assert_eq!(got, want.into_iter().map(Str::Int).collect::<Vec<_>>());
    }

    #[test]
    fn string_encodings() {
        let s200 = vec![b'y'; 200];
        let entries = vec![
            lp_str(b""),
            lp_str(b"abc"),
            [vec![0xE0, 200], s200.clone()].concat(),
            [vec![0xF0], 3u32.to_le_bytes().to_vec(), b"xyz".to_vec()].concat(),
        ];
        let blob = listpack(&entries);
        let got = decode(&blob, 0).unwrap();
        let want = vec![
            Str::Raw(Raw::Borrowed(b"")),
            Str::Raw(Raw::Borrowed(b"abc")),
            Str::Raw(Raw::Borrowed(&s200)),
            Str::Raw(Raw::Borrowed(b"xyz")),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn bad_entries_are_corrupt() {
        assert!(decode(&listpack(&[vec![0xF5]]), 0).is_err());
        let blob = listpack(&[lp_str(b"abc")]);
        assert!(decode(&blob[..blob.len() - 1], 0).is_err());
        assert!(decode(&listpack(&[vec![0x85, b'a']]), 0).is_err());
    }
}
