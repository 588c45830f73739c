//! A cursor over the bytes received so far. Every read either succeeds or
//! says how many bytes (from the cursor's start) it needs, so a record can be
//! retried once they have arrived.

use bytes::Bytes;

use super::consts::*;
use super::item::Str;
use super::{lzf, RdbError};

/// Why a read stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The input ends too early: this many bytes from the cursor's start are
    /// needed before the read can succeed.
    Need(usize),
    Error(RdbError),
}

impl From<RdbError> for Stop {
    fn from(e: RdbError) -> Stop {
        Stop::Error(e)
    }
}

pub(crate) type Read<T> = Result<T, Stop>;

/// A length field: either a plain length or a special string encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Len {
    Plain(u64),
    Encoded(u8),
}

pub(crate) struct Reader<'a> {
    data: &'a Bytes,
    start: usize,
    pos: usize,
    /// Absolute snapshot offset of `data[start]`, for error messages.
    base: u64,
    /// The longest single read allowed (see [`super::Parser::with_max_read`]).
    max_read: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a Bytes, start: usize, base: u64, max_read: usize) -> Reader<'a> {
        Reader { data, start, pos: start, base, max_read }
    }

    /// Bytes consumed since the cursor was created.
    pub(crate) fn consumed(&self) -> usize {
        self.pos - self.start
    }

    /// Absolute snapshot offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.consumed() as u64)
    }

    pub(crate) fn corrupt(&self, what: &'static str) -> Stop {
        Stop::Error(RdbError::Corrupt { what, offset: self.offset() })
    }

    fn available(&self) -> usize {
        self.data.len() - self.pos
    }

    fn need(&self, n: usize) -> Stop {
        Stop::Need(self.consumed().saturating_add(n))
    }

    pub(crate) fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        // Judged on the declared length alone, before any byte of it is
        // awaited: a lying length fails at once, whatever the chunking.
        if n > self.max_read {
            return Err(Stop::Error(RdbError::TooLarge { what: "string", len: n as u64, offset: self.offset() }));
        }
        if n > self.available() {
            return Err(self.need(n));
        }
        let data: &'a Bytes = self.data;
        let slice = data.get(self.pos..self.pos + n).ok_or_else(|| self.need(n))?;
        self.pos += n;
        Ok(slice)
    }

    /// `n` bytes as a zero-copy slice of the input.
    pub(crate) fn take_bytes(&mut self, n: usize) -> Read<Bytes> {
        let slice = self.take(n)?;
        Ok(self.data.slice_ref(slice))
    }

    /// The bytes read since the cursor had consumed `since` bytes.
    pub(crate) fn bytes_since(&self, since: usize) -> Bytes {
        self.data.slice(self.start.saturating_add(since).min(self.pos)..self.pos)
    }

    pub(crate) fn u8(&mut self) -> Read<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.need(1)),
        }
    }

    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u32_le(&mut self) -> Read<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64_le(&mut self) -> Read<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64_be(&mut self) -> Read<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn f64_le(&mut self) -> Read<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A 16-byte stream ID (ms, seq: big endian).
    pub(crate) fn stream_id(&mut self) -> Read<super::StreamId> {
        let ms = self.u64_be()?;
        let seq = self.u64_be()?;
        Ok(super::StreamId { ms, seq })
    }

    pub(crate) fn len_or_encoding(&mut self) -> Read<Len> {
        let first = self.u8()?;
        match first >> 6 {
            RDB_6BITLEN => Ok(Len::Plain(u64::from(first & 0x3F))),
            RDB_14BITLEN => {
                let next = self.u8()?;
                Ok(Len::Plain(u64::from(first & 0x3F) << 8 | u64::from(next)))
            }
            RDB_ENCVAL => Ok(Len::Encoded(first & 0x3F)),
            _ => match first {
                RDB_32BITLEN => Ok(Len::Plain(u64::from(u32::from_be_bytes(self.array()?)))),
                RDB_64BITLEN => Ok(Len::Plain(self.u64_be()?)),
                _ => Err(self.corrupt("length encoding")),
            },
        }
    }

    pub(crate) fn length(&mut self) -> Read<u64> {
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.corrupt("length (got a string encoding)")),
        }
    }

    /// A length used as a count or size in memory.
    pub(crate) fn length_usize(&mut self) -> Read<usize> {
        let n = self.length()?;
        usize::try_from(n).map_err(|_| {
            Stop::Error(RdbError::TooLarge { what: "length", len: n, offset: self.offset() })
        })
    }

    /// A string as stored: integer encodings stay integers.
    pub(crate) fn string(&mut self) -> Read<Str> {
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                let n = self.to_usize(n)?;
                Ok(Str::Raw(self.take_bytes(n)?))
            }
            Len::Encoded(RDB_ENC_INT8) => Ok(Str::Int(i64::from(self.u8()? as i8))),
            Len::Encoded(RDB_ENC_INT16) => {
                Ok(Str::Int(i64::from(i16::from_le_bytes(self.array()?))))
            }
            Len::Encoded(RDB_ENC_INT32) => {
                Ok(Str::Int(i64::from(i32::from_le_bytes(self.array()?))))
            }
            Len::Encoded(RDB_ENC_LZF) => Ok(Str::Raw(self.lzf()?)),
            Len::Encoded(_) => Err(self.corrupt("string encoding")),
        }
    }

    /// A string's client-visible bytes (keys, blobs, names).
    pub(crate) fn bytes(&mut self) -> Read<Bytes> {
        Ok(match self.string()? {
            Str::Raw(b) => b,
            Str::Int(i) => Bytes::from(i.to_string()),
        })
    }

    fn lzf(&mut self) -> Read<Bytes> {
        let offset = self.offset();
        let compressed_len = self.length()?;
        let plain_len = self.length()?;
        let compressed_len = self.to_usize(compressed_len)?;
        if plain_len > self.max_read as u64 {
            return Err(Stop::Error(RdbError::TooLarge { what: "LZF plain length", len: plain_len, offset }));
        }
        let compressed = self.take(compressed_len)?;
        Ok(lzf::decompress(compressed, plain_len, offset)?)
    }

    fn to_usize(&self, n: u64) -> Read<usize> {
        usize::try_from(n).map_err(|_| {
            Stop::Error(RdbError::TooLarge { what: "string", len: n, offset: self.offset() })
        })
    }

    /// A double in the text form of type 3 zsets.
    pub(crate) fn text_double(&mut self) -> Read<f64> {
        let len = self.u8()?;
        match len {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let text = self.take(usize::from(len))?;
                parse_f64(text).ok_or_else(|| self.corrupt("text double"))
            }
        }
    }
}

/// Parses a double written by Redis (`%.17g`, "inf", "-inf", "nan").
pub(crate) fn parse_f64(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// The integer value of a stored string (as Redis's `string2ll`).
pub(crate) fn str_to_i64(s: &Str) -> Option<i64> {
    match s {
        Str::Int(i) => Some(*i),
        Str::Raw(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    }
}
