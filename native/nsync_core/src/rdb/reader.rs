//! A cursor over the bytes at hand for one run of records. Every read either
//! succeeds or says how far the bytes must reach before it can, so a unit
//! can be retried once they have arrived. What was read is borrowed from
//! the input (or from the run's arena) for the run's lifetime `'a`.

use super::arena::Arena;
use super::consts::*;
use super::item::{Decimal, Raw, Str};
use super::number::parse_f64;
use super::{lzf, RdbError, StreamId};

/// Why a read stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The input ends too early: it must reach this index of the run's
    /// buffer before the read can succeed.
    Need(usize),
    /// The run's arena is full: the current unit needs this many bytes of
    /// it; retry it in a new run.
    Arena(usize),
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
    data: &'a [u8],
    pos: usize,
    /// Bytes before this index are consumed for good, even if the current
    /// unit stops.
    mark: usize,
    /// Absolute snapshot offset of `data[0]`, for error messages.
    base: u64,
    /// The longest single read allowed (see [`super::Parser::with_max_read`]).
    max_read: usize,
    arena: Arena<'a>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(
        data: &'a [u8],
        pos: usize,
        base: u64,
        max_read: usize,
        arena: Arena<'a>,
    ) -> Reader<'a> {
        Reader {
            data,
            pos,
            mark: pos,
            base,
            max_read,
            arena,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The longest single read allowed.
    pub(crate) fn max_read(&self) -> usize {
        self.max_read
    }

    /// Changes the longest single read allowed; returns the previous one.
    pub(crate) fn set_max_read(&mut self, max_read: usize) -> usize {
        std::mem::replace(&mut self.max_read, max_read)
    }

    /// A reader of `input` (a value's bytes gathered across runs, starting
    /// at snapshot offset `base`) that makes its bytes in this reader's
    /// arena.
    pub(crate) fn over<'b>(&'b mut self, data: &'b [u8], base: u64) -> Reader<'b> {
        Reader {
            data,
            pos: 0,
            mark: 0,
            base,
            max_read: self.max_read,
            arena: self.arena.reborrow(),
        }
    }

    /// The bytes consumed for good since the cursor was at `start`.
    pub(crate) fn committed_since(&self, start: usize) -> &'a [u8] {
        let data: &'a [u8] = self.data;
        data.get(start..self.mark).unwrap_or_default()
    }

    /// Absolute snapshot offset of position `pos`.
    pub(crate) fn offset_of(&self, pos: usize) -> u64 {
        self.base.saturating_add(pos as u64)
    }

    pub(crate) fn mark(&self) -> usize {
        self.mark
    }

    /// Bytes this reader took from its arena.
    pub(crate) fn arena_used(&self) -> usize {
        self.arena.used()
    }

    /// Consumes everything read so far for good and starts a new unit.
    pub(crate) fn commit(&mut self) {
        self.mark = self.pos;
        self.arena.start_unit();
    }

    /// Absolute snapshot offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    pub(crate) fn corrupt(&self, what: &'static str) -> Stop {
        Stop::Error(RdbError::Corrupt {
            what,
            offset: self.offset(),
        })
    }

    pub(crate) fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        // Judged on the declared length alone, before any byte of it is
        // awaited: a lying length fails at once, whatever the chunking.
        if n > self.max_read {
            return Err(Stop::Error(RdbError::TooLarge {
                what: "string",
                len: n as u64,
                offset: self.offset(),
            }));
        }
        let data: &'a [u8] = self.data;
        match data.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(Stop::Need(self.pos.saturating_add(n))),
        }
    }

    /// The bytes read since the cursor was at `start`.
    pub(crate) fn bytes_since(&self, start: usize) -> &'a [u8] {
        let data: &'a [u8] = self.data;
        data.get(start..self.pos).unwrap_or_default()
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Read<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(Stop::Need(self.pos + 1)),
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
    pub(crate) fn stream_id(&mut self) -> Read<StreamId> {
        let ms = self.u64_be()?;
        let seq = self.u64_be()?;
        Ok(StreamId { ms, seq })
    }

    #[inline]
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
            Stop::Error(RdbError::TooLarge {
                what: "length",
                len: n,
                offset: self.offset(),
            })
        })
    }

    /// A string as stored: integer encodings stay integers.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Read<Str<'a>> {
        match self.short_string() {
            Some(bytes) => Ok(Str::Raw(Raw::Borrowed(bytes))),
            None => self.other_string(),
        }
    }

    /// A string's client-visible bytes (keys, blobs, names).
    #[inline(always)]
    pub(crate) fn blob(&mut self) -> Read<&'a [u8]> {
        match self.short_string() {
            Some(bytes) => Ok(bytes),
            None => self.other_blob(),
        }
    }

    /// The common case, inline: a plain string with a 6 or 14-bit length,
    /// all of it at hand. `None` leaves the cursor where it was.
    #[inline(always)]
    fn short_string(&mut self) -> Option<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let first = *data.get(self.pos)?;
        let (header, len) = match first >> 6 {
            RDB_6BITLEN => (1, usize::from(first & 0x3F)),
            RDB_14BITLEN => (
                2,
                usize::from(first & 0x3F) << 8 | usize::from(*data.get(self.pos + 1)?),
            ),
            _ => return None,
        };
        if len > self.max_read {
            return None;
        }
        let start = self.pos + header;
        let bytes = data.get(start..start + len)?;
        self.pos = start + len;
        Some(bytes)
    }

    fn other_string(&mut self) -> Read<Str<'a>> {
        match self.len_or_encoding()? {
            Len::Encoded(enc @ (RDB_ENC_INT8 | RDB_ENC_INT16 | RDB_ENC_INT32)) => {
                Ok(Str::Int(self.int(enc)?))
            }
            len => Ok(Str::Raw(Raw::Borrowed(self.bytes_of(len)?))),
        }
    }

    fn other_blob(&mut self) -> Read<&'a [u8]> {
        match self.len_or_encoding()? {
            Len::Encoded(enc @ (RDB_ENC_INT8 | RDB_ENC_INT16 | RDB_ENC_INT32)) => {
                let text = Decimal::new(self.int(enc)?);
                let out = self
                    .arena
                    .alloc(text.as_bytes().len())
                    .map_err(Stop::Arena)?;
                out.copy_from_slice(text.as_bytes());
                Ok(out)
            }
            len => self.bytes_of(len),
        }
    }

    pub(crate) fn raw(&mut self) -> Read<Raw<'a>> {
        Ok(Raw::Borrowed(self.blob()?))
    }

    /// The bytes of a plain or LZF string whose length field was read.
    fn bytes_of(&mut self, len: Len) -> Read<&'a [u8]> {
        match len {
            Len::Plain(n) => {
                let n = self.to_usize(n)?;
                self.take(n)
            }
            Len::Encoded(RDB_ENC_LZF) => self.lzf(),
            Len::Encoded(_) => Err(self.corrupt("string encoding")),
        }
    }

    fn int(&mut self, encoding: u8) -> Read<i64> {
        Ok(match encoding {
            RDB_ENC_INT8 => i64::from(self.u8()? as i8),
            RDB_ENC_INT16 => i64::from(i16::from_le_bytes(self.array()?)),
            RDB_ENC_INT32 => i64::from(i32::from_le_bytes(self.array()?)),
            _ => return Err(self.corrupt("string encoding")),
        })
    }

    fn lzf(&mut self) -> Read<&'a [u8]> {
        let offset = self.offset();
        let compressed_len = self.length()?;
        let plain_len = self.length()?;
        let compressed_len = self.to_usize(compressed_len)?;
        if plain_len > self.max_read as u64 {
            return Err(Stop::Error(RdbError::TooLarge {
                what: "LZF plain length",
                len: plain_len,
                offset,
            }));
        }
        let compressed = self.take(compressed_len)?;
        let plain_len = lzf::plain_len(compressed.len(), plain_len, offset)?;
        let out = self.arena.alloc(plain_len).map_err(Stop::Arena)?;
        lzf::decompress(compressed, out, offset)?;
        Ok(out)
    }

    fn to_usize(&self, n: u64) -> Read<usize> {
        usize::try_from(n).map_err(|_| {
            Stop::Error(RdbError::TooLarge {
                what: "string",
                len: n,
                offset: self.offset(),
            })
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
