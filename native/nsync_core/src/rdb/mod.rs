//! Streaming RDB parser.
//!
//! Feed bytes in chunks of any size with [`Parser::feed`]; pull records with
//! [`Parser::next_item`], which answers [`Status::Incomplete`] when the bytes
//! fed so far end inside a record. The parser keeps only the record being
//! decoded plus a small constant, whatever the snapshot's size.

mod consts;
mod crc;
mod dump;
mod intset;
mod item;
mod listpack;
mod lzf;
mod module;
mod reader;
mod stream;
mod value;
mod ziplist;
mod zipmap;

pub use crc::Crc64;
pub use dump::decode_dump;
pub use item::*;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use consts::*;
use reader::{Read, Reader, Stop};
use value::{Elements, Start};

/// The outcome of one [`Parser::next_item`] call.
#[derive(Debug)]
pub enum Status {
    /// A complete record.
    Ready(Item),
    /// More bytes are needed before the next record is complete.
    Incomplete,
    /// The snapshot ended (after [`Item::Eof`] was returned).
    Done,
}

/// A snapshot that cannot be parsed. Every variant carries the byte offset
/// (from the start of the snapshot) where the problem was found.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RdbError {
    #[error("not an RDB file (bad magic) at offset {offset}")]
    BadMagic { offset: u64 },
    #[error("unsupported RDB version {version}")]
    UnsupportedVersion { version: u32, offset: u64 },
    #[error("unknown value type {type_byte} at offset {offset}")]
    UnknownType { type_byte: u8, offset: u64 },
    #[error("unknown opcode {opcode:#04x} at offset {offset}")]
    UnknownOpcode { opcode: u8, offset: u64 },
    #[error("checksum mismatch: file says {expected:#018x}, computed {computed:#018x}")]
    ChecksumMismatch { expected: u64, computed: u64, offset: u64 },
    #[error("corrupt {what} at offset {offset}")]
    Corrupt { what: &'static str, offset: u64 },
    #[error("{what} too large ({len} bytes) at offset {offset}")]
    TooLarge { what: &'static str, len: u64, offset: u64 },
    #[error("unsupported {what} at offset {offset}")]
    Unsupported { what: &'static str, offset: u64 },
}

impl RdbError {
    /// A short machine name, used as the Erlang atom.
    pub fn kind(&self) -> &'static str {
        match self {
            RdbError::BadMagic { .. } => "bad_magic",
            RdbError::UnsupportedVersion { .. } => "unsupported_version",
            RdbError::UnknownType { .. } => "unknown_type",
            RdbError::UnknownOpcode { .. } => "unknown_opcode",
            RdbError::ChecksumMismatch { .. } => "checksum_mismatch",
            RdbError::Corrupt { .. } => "corrupt",
            RdbError::TooLarge { .. } => "too_large",
            RdbError::Unsupported { .. } => "unsupported",
        }
    }

    /// Byte offset from the start of the snapshot.
    pub fn offset(&self) -> u64 {
        match self {
            RdbError::BadMagic { offset }
            | RdbError::UnsupportedVersion { offset, .. }
            | RdbError::UnknownType { offset, .. }
            | RdbError::UnknownOpcode { offset, .. }
            | RdbError::ChecksumMismatch { offset, .. }
            | RdbError::Corrupt { offset, .. }
            | RdbError::TooLarge { offset, .. }
            | RdbError::Unsupported { offset, .. } => *offset,
        }
    }
}

/// The default for [`Parser::with_max_read`]: 1 GiB, twice Redis's largest
/// string (`proto-max-bulk-len`, 512 MB by default) and Redis's own safety
/// limit for one ziplist or listpack.
pub const DEFAULT_MAX_READ: usize = 1 << 30;

/// The streaming parser. See the module documentation.
#[derive(Debug)]
pub struct Parser {
    input: Input,
    core: Core,
    max_read: usize,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser { input: Input::default(), core: Core::default(), max_read: DEFAULT_MAX_READ }
    }
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// A parser that refuses (with [`RdbError::TooLarge`]) any single string
    /// or encoded blob longer than `max_read` bytes, so that a corrupt length
    /// cannot make it buffer without bound.
    pub fn with_max_read(max_read: usize) -> Parser {
        Parser { max_read, ..Parser::default() }
    }

    /// Appends bytes of the snapshot (and possibly bytes past its end).
    pub fn feed(&mut self, data: &[u8]) {
        self.input.feed(data);
    }

    /// The next record, `Incomplete` if more bytes are needed, `Done` after
    /// the end. After an error the parser stays failed.
    pub fn next_item(&mut self) -> Result<Status, RdbError> {
        loop {
            match &self.core.state {
                State::Failed(e) => return Err(e.clone()),
                State::Done => return Ok(Status::Done),
                _ => {}
            }
            if !self.input.ready() {
                return Ok(Status::Incomplete);
            }
            // The checksum covers everything up to the EOF opcode.
            let crc = match self.core.state {
                State::Checksum => {
                    self.input.flush_crc();
                    self.input.crc.value()
                }
                _ => 0,
            };
            let mut mark = 0;
            let mut r = Reader::new(&self.input.cur, self.input.pos, self.input.offset, self.max_read);
            let result = self.core.step(&mut r, &mut mark, crc);
            if result.is_ok() {
                mark = r.consumed();
            }
            self.input.commit(mark);
            match result {
                Ok(Some(item)) => return Ok(Status::Ready(item)),
                Ok(None) => {}
                Err(Stop::Need(n)) => self.input.need = n.saturating_sub(mark),
                Err(Stop::Error(e)) => {
                    self.core.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// True once the end of the snapshot (EOF opcode and checksum) was read.
    pub fn is_done(&self) -> bool {
        matches!(self.core.state, State::Done)
    }

    /// Bytes fed past the end of the snapshot (for diskless sync: the EOF
    /// mark and the start of the command stream). Empty before the end.
    pub fn take_rest(&mut self) -> Bytes {
        if !self.is_done() {
            return Bytes::new();
        }
        let input = &mut self.input;
        let unread = input.cur.slice(input.pos.min(input.cur.len())..);
        input.cur = Bytes::new();
        input.pos = 0;
        input.hashed = 0;
        if input.pending.is_empty() {
            return unread;
        }
        let mut rest = BytesMut::with_capacity(unread.len() + input.pending.len());
        rest.extend_from_slice(&unread);
        rest.extend_from_slice(&input.pending.split());
        rest.freeze()
    }

    /// Bytes of the snapshot consumed so far.
    pub fn offset(&self) -> u64 {
        self.input.offset
    }
}

/// The bytes received and not yet consumed. Consumed bytes are dropped (and
/// hashed) only when new input is merged in, so the checksum runs over long
/// runs and strings can be zero-copy slices of `cur`.
#[derive(Debug, Default)]
struct Input {
    /// Frozen input; `cur[pos..]` is unconsumed.
    cur: Bytes,
    pos: usize,
    /// `cur[..hashed]` has been added to the checksum.
    hashed: usize,
    /// Bytes fed since `cur` was frozen.
    pending: BytesMut,
    /// Absolute snapshot offset of `cur[pos]`.
    offset: u64,
    /// Unconsumed bytes needed before parsing is worth retrying.
    need: usize,
    crc: crc::Crc64,
}

impl Input {
    fn feed(&mut self, data: &[u8]) {
        // Move the unconsumed tail (the start of a record, usually short)
        // to the new bytes, so merging them later needs no copy.
        if self.pending.is_empty() && self.pos < self.cur.len() {
            self.flush_crc();
            self.pending.extend_from_slice(self.cur.get(self.pos..).unwrap_or_default());
            self.cur = Bytes::new();
            self.pos = 0;
            self.hashed = 0;
        }
        self.pending.extend_from_slice(data);
    }

    /// Whether enough bytes are at hand for the next attempt (merging the
    /// pending bytes into `cur` if they are needed).
    fn ready(&mut self) -> bool {
        let unread = self.cur.len().saturating_sub(self.pos);
        if unread >= self.need && !(unread == 0 && self.need == 0) {
            return true;
        }
        if self.pending.is_empty() || unread.saturating_add(self.pending.len()) < self.need {
            return false;
        }
        self.flush_crc();
        if unread == 0 {
            self.cur = self.pending.split().freeze();
        } else {
            let mut merged = BytesMut::with_capacity(unread + self.pending.len());
            merged.extend_from_slice(self.cur.get(self.pos..).unwrap_or_default());
            merged.extend_from_slice(&self.pending);
            self.pending.clear();
            self.cur = merged.freeze();
        }
        self.pos = 0;
        self.hashed = 0;
        true
    }

    fn commit(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
        self.offset = self.offset.saturating_add(n as u64);
        if n > 0 {
            self.need = 0;
        }
    }

    /// Adds the consumed bytes not yet hashed to the checksum.
    fn flush_crc(&mut self) {
        if let Some(consumed) = self.cur.get(self.hashed..self.pos) {
            self.crc.update(consumed);
        }
        self.hashed = self.pos;
    }
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Magic,
    Records,
    /// A collection whose elements are still arriving.
    Value(Box<PartialKey>),
    /// After the EOF opcode: the 8-byte checksum.
    Checksum,
    Done,
    Failed(RdbError),
}

#[derive(Debug)]
struct PartialKey {
    key: Bytes,
    meta: KeyMeta,
    elements: Elements,
}

/// Opcodes that apply to the next key only.
#[derive(Debug, Default)]
struct KeyMeta {
    expire_at_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
}

#[derive(Debug, Default)]
struct Core {
    state: State,
    version: u32,
    valkey: bool,
    db: u64,
    meta: KeyMeta,
}

impl Core {
    /// Parses one unit at the reader; `mark` is moved past the parts of a
    /// collection that are kept in the state if the input runs out.
    fn step(&mut self, r: &mut Reader, mark: &mut usize, crc: u64) -> Read<Option<Item>> {
        match std::mem::replace(&mut self.state, State::Records) {
            State::Magic => {
                self.state = State::Magic;
                self.magic(r)
            }
            State::Records => self.record(r, mark),
            State::Value(partial) => self.continue_value(*partial, r, mark),
            State::Checksum => {
                self.state = State::Checksum;
                self.checksum(r, crc)
            }
            other => {
                self.state = other;
                Ok(None)
            }
        }
    }

    fn magic(&mut self, r: &mut Reader) -> Read<Option<Item>> {
        let bad_magic = Stop::Error(RdbError::BadMagic { offset: 0 });
        let head = r.take(9)?;
        let (valkey, digits) = match (head.get(..5), head.get(..6)) {
            (Some(b"REDIS"), _) => (false, head.get(5..)),
            (_, Some(b"VALKEY")) => (true, head.get(6..)),
            _ => return Err(bad_magic),
        };
        let version = digits
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u32>().ok())
            .ok_or(bad_magic)?;
        let supported = if valkey {
            version >= VALKEY_RDB_VERSION_MIN
        } else {
            (1..=RDB_VERSION_MAX).contains(&version)
        };
        if !supported {
            return Err(Stop::Error(RdbError::UnsupportedVersion { version, offset: 5 }));
        }
        self.version = version;
        self.valkey = valkey;
        self.state = State::Records;
        Ok(Some(Item::Header { version, valkey }))
    }

    fn record(&mut self, r: &mut Reader, mark: &mut usize) -> Read<Option<Item>> {
        let offset = r.offset();
        let op = r.u8()?;
        let item = match op {
            RDB_OPCODE_EOF => {
                if self.version >= RDB_VERSION_CHECKSUM {
                    self.state = State::Checksum;
                    return Ok(None);
                }
                self.state = State::Done;
                Item::Eof
            }
            RDB_OPCODE_SELECTDB => {
                let db = r.length()?;
                self.db = db;
                Item::SelectDb(db)
            }
            RDB_OPCODE_EXPIRETIME => {
                let seconds = r.u32_le()?;
                self.meta.expire_at_ms = Some(i64::from(seconds) * 1000);
                return Ok(None);
            }
            RDB_OPCODE_EXPIRETIME_MS => {
                let ms = r.u64_le()?;
                self.meta.expire_at_ms = Some(ms as i64);
                return Ok(None);
            }
            RDB_OPCODE_FREQ => {
                self.meta.freq = Some(r.u8()?);
                return Ok(None);
            }
            RDB_OPCODE_IDLE => {
                self.meta.idle = Some(r.length()?);
                return Ok(None);
            }
            RDB_OPCODE_RESIZEDB => {
                let db_size = r.length()?;
                let expires_size = r.length()?;
                Item::ResizeDb { db_size, expires_size }
            }
            RDB_OPCODE_AUX => {
                let key = r.bytes()?;
                let value = r.bytes()?;
                Item::Aux { key, value }
            }
            RDB_OPCODE_MODULE_AUX => {
                let id = r.length()?;
                if r.length()? != RDB_MODULE_OPCODE_UINT {
                    return Err(r.corrupt("module aux 'when' opcode"));
                }
                let when = r.length()?;
                module::skip_body(r)?;
                Item::ModuleAux { module: module::decode_id(id).0, when }
            }
            RDB_OPCODE_FUNCTION_PRE_GA => {
                return Err(Stop::Error(RdbError::Unsupported {
                    what: "function opcode 0xf6 of the Redis 7.0 release candidates",
                    offset,
                }))
            }
            RDB_OPCODE_FUNCTION2 => Item::Function(r.bytes()?),
            RDB_OPCODE_SLOT_INFO => {
                let slot = r.length()?;
                let slot_size = r.length()?;
                let expires_slot_size = r.length()?;
                Item::SlotInfo { slot, slot_size, expires_slot_size }
            }
            ty if ty < RDB_TYPE_NUMBERS_END => return self.key(ty, offset, r, mark),
            opcode => return Err(Stop::Error(RdbError::UnknownOpcode { opcode, offset })),
        };
        Ok(Some(item))
    }

    fn key(&mut self, ty: u8, type_offset: u64, r: &mut Reader, mark: &mut usize) -> Read<Option<Item>> {
        let key = r.bytes()?;
        match value::start(r, ty, type_offset, self.valkey)? {
            Start::Complete(value) => {
                let meta = std::mem::take(&mut self.meta);
                Ok(Some(self.entry(key, meta, value)))
            }
            Start::Elements(elements) => {
                *mark = r.consumed();
                let meta = std::mem::take(&mut self.meta);
                self.continue_value(PartialKey { key, meta, elements }, r, mark)
            }
        }
    }

    fn continue_value(&mut self, mut partial: PartialKey, r: &mut Reader, mark: &mut usize) -> Read<Option<Item>> {
        match partial.elements.read(r, mark) {
            Ok(value) => Ok(Some(self.entry(partial.key, partial.meta, value))),
            Err(stop) => {
                if let Stop::Need(_) = stop {
                    self.state = State::Value(Box::new(partial));
                }
                Err(stop)
            }
        }
    }

    fn entry(&self, key: Bytes, meta: KeyMeta, value: Value) -> Item {
        Item::Key(Entry {
            db: self.db,
            key,
            expire_at_ms: meta.expire_at_ms,
            idle: meta.idle,
            freq: meta.freq,
            value,
        })
    }

    fn checksum(&mut self, r: &mut Reader, computed: u64) -> Read<Option<Item>> {
        let offset = r.offset();
        let stored = r.u64_le()?;
        if stored != 0 && stored != computed {
            return Err(Stop::Error(RdbError::ChecksumMismatch { expected: stored, computed, offset }));
        }
        self.state = State::Done;
        Ok(Some(Item::Eof))
    }
}

#[cfg(test)]
mod tests;
