//! Ziplists (RDB 2–9 lists, zsets, hashes and quicklist nodes):
//! `u32 zlbytes, u32 zltail, u16 zllen`, entries, `0xFF`.

use super::compact::{self, Encoding, Entries};
use super::{Raw, RdbError, Str};

const ZIPLIST_HEADER_SIZE: usize = 10;
const ZIP_END: u8 = 0xFF;
const ZIP_BIG_PREVLEN: u8 = 0xFE;
const ZIP_INT_16B: u8 = 0xC0;
const ZIP_INT_32B: u8 = 0xD0;
const ZIP_INT_64B: u8 = 0xE0;
const ZIP_INT_24B: u8 = 0xF0;
const ZIP_INT_8B: u8 = 0xFE;
const ZIP_INT_IMM_MIN: u8 = 0xF1;
const ZIP_INT_IMM_MAX: u8 = 0xFD;

pub(crate) struct Ziplist;

impl Encoding for Ziplist {
    const NAME: &'static str = "ziplist";
    const HEADER_SIZE: usize = ZIPLIST_HEADER_SIZE;
    const END: u8 = ZIP_END;

    fn declared(blob: &[u8]) -> usize {
        compact::u16_at(blob, 8).min(blob.len() / 2)
    }

    /// The entry whose previous-length field is at `pos`, and the position after it.
    fn step(blob: &[u8], pos: usize) -> Option<(Str<'_>, usize)> {
        entry(
            blob,
            pos + if blob.get(pos) == Some(&ZIP_BIG_PREVLEN) {
                5
            } else {
                1
            },
        )
    }
}

/// The entries in order, strings borrowed from the blob.
pub(crate) fn entries(blob: &[u8], offset: u64) -> Entries<'_, Ziplist> {
    Entries::new(blob, offset)
}

/// Every entry of the ziplist.
pub(crate) fn decode(blob: &[u8], offset: u64) -> Result<Vec<Str<'_>>, RdbError> {
    entries(blob, offset).into_vec()
}

/// The entry whose encoding byte is at `pos`, and the position after it.
fn entry(blob: &[u8], pos: usize) -> Option<(Str<'_>, usize)> {
    let enc = *blob.get(pos)?;
    let int = |width: usize| -> Option<(i64, usize)> {
        let bytes = blob.get(pos + 1..pos + 1 + width)?;
        let mut buf = [0u8; 8];
        buf.get_mut(8 - width..)?.copy_from_slice(bytes);
        // Little endian in the top bytes, then an arithmetic shift sign-extends.
        let value = i64::from_le_bytes(buf) >> (64 - 8 * width as u32);
        Some((value, pos + 1 + width))
    };
    let string = |header: usize, len: usize| -> Option<(Str, usize)> {
        let start = pos.checked_add(header)?;
        let end = start.checked_add(len)?;
        Some((Str::Raw(Raw::Borrowed(blob.get(start..end)?)), end))
    };
    let (value, next) = match enc >> 6 {
        0 => return string(1, usize::from(enc & 0x3F)),
        1 => {
            let low = *blob.get(pos + 1)?;
            return string(2, usize::from(enc & 0x3F) << 8 | usize::from(low));
        }
        2 => {
            let len = u32::from_be_bytes(blob.get(pos + 1..pos + 5)?.try_into().ok()?);
            return string(5, usize::try_from(len).ok()?);
        }
        _ => match enc {
            ZIP_INT_16B => int(2)?,
            ZIP_INT_32B => int(4)?,
            ZIP_INT_64B => int(8)?,
            ZIP_INT_24B => int(3)?,
            ZIP_INT_8B => int(1)?,
            ZIP_INT_IMM_MIN..=ZIP_INT_IMM_MAX => (i64::from(enc & 0x0F) - 1, pos + 1),
            _ => return None,
        },
    };
    Some((Str::Int(value), next))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ziplist from raw entry encodings (prevlen is added here).
    pub(crate) fn ziplist(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        for e in entries {
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(0xFE);
                body.extend((prev as u32).to_le_bytes());
            }
            body.extend(e);
            prev = e.len() + if prev < 254 { 1 } else { 5 };
        }
        let mut blob = ((body.len() + 11) as u32).to_le_bytes().to_vec();
        blob.extend(0u32.to_le_bytes());
        blob.extend((entries.len() as u16).to_le_bytes());
        blob.extend(body);
        blob.push(0xFF);
        blob
    }

    #[test]
    fn integer_widths_and_immediates() {
        let mut entries = vec![
            vec![0xFE, 0x80],
            [vec![0xC0], (-300i16).to_le_bytes().to_vec()].concat(),
            vec![0xF0, 0x00, 0x00, 0x80],
            vec![0xF0, 0xFF, 0xFF, 0x7F],
            [vec![0xD0], (-70000i32).to_le_bytes().to_vec()].concat(),
            [vec![0xE0], i64::MIN.to_le_bytes().to_vec()].concat(),
        ];
        entries.extend((0xF1..=0xFD).map(|b| vec![b]));
        let blob = ziplist(&entries);
        let got = decode(&blob, 0).unwrap();
        let mut want = vec![-128, -300, -8388608, 8388607, -70000, i64::MIN];
        want.extend(0..=12);
        assert_eq!(got, want.into_iter().map(Str::Int).collect::<Vec<_>>());
    }

    #[test]
    fn string_lengths_and_big_prevlen() {
        let long = vec![b'x'; 300];
        let entries = vec![
            [vec![0x03], b"abc".to_vec()].concat(),
            [vec![0x41, 0x2C], long.clone()].concat(),
            [vec![0x80, 0, 0, 0, 2], b"hi".to_vec()].concat(),
        ];
        let blob = ziplist(&entries);
        let got = decode(&blob, 0).unwrap();
        let want = vec![
            Str::Raw(Raw::Borrowed(b"abc")),
            Str::Raw(Raw::Borrowed(&long)),
            Str::Raw(Raw::Borrowed(b"hi")),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn truncated_is_corrupt() {
        let blob = ziplist(&[vec![0x05, b'a']]);
        assert!(decode(&blob, 0).is_err());
        assert!(decode(&[0; 10], 0).is_err());
        assert!(decode(&blob[..blob.len() - 1], 0).is_err());
    }
}
