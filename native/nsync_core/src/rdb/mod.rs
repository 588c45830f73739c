//! Streaming RDB parser.
//!
//! Feed bytes in chunks of any size ([`Parser::feed`], or
//! [`Parser::feed_bytes`] to hand a buffer over without a copy), then
//! [`Parser::parse`] hands every complete record to a sink as an [`Item`]
//! whose strings borrow from the parser, until the bytes fed so far end
//! inside a record ([`Outcome::Incomplete`]). [`Parser::next_item`] gives one
//! owned item at a time. The parser keeps only the record being decoded plus
//! a small constant, whatever the snapshot's size.

mod arena;
mod compact;
mod consts;
mod crc;
mod dump;
mod input;
mod intset;
mod item;
mod listpack;
mod live;
mod lzf;
mod module;
mod number;
mod reader;
mod sort;
mod stream;
#[cfg(test)]
pub(crate) mod test_rng;
mod value;
mod ziplist;
mod zipmap;

pub use crc::Crc64;
pub use dump::decode_dump;
pub use item::*;
pub use live::LiveValue;

use std::ops::ControlFlow;

use bytes::Bytes;
use thiserror::Error;

use arena::Scratch;
use consts::*;
use input::Input;
use reader::{Read, Reader, Stop};
use value::{Carried, Start};

/// Why [`Parser::parse`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// More bytes are needed before the next record is complete.
    Incomplete,
    /// The snapshot ended (after [`Item::Eof`] was handed out).
    Done,
    /// The sink returned `ControlFlow::Break`; call `parse` again to go on.
    Paused,
}

/// The outcome of one [`Parser::next_item`] call.
#[derive(Debug)]
pub enum Status {
    /// A complete record.
    Ready(Item<'static>),
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
    ChecksumMismatch {
        expected: u64,
        computed: u64,
        offset: u64,
    },
    #[error("corrupt {what} at offset {offset}")]
    Corrupt { what: &'static str, offset: u64 },
    #[error("{what} too large ({len} bytes) at offset {offset}")]
    TooLarge {
        what: &'static str,
        len: u64,
        offset: u64,
    },
    #[error("unsupported {what} at offset {offset}")]
    Unsupported { what: &'static str, offset: u64 },
    /// A key's value over the parser's limit ([`Parser::with_max_value`]):
    /// at least `len` bytes (a string's declared length, or a collection's
    /// bytes so far).
    #[error("the value of key {} is over the limit ({len} > {limit} bytes) at offset {offset}",
            .key.escape_ascii())]
    ValueTooLarge {
        key: Bytes,
        len: u64,
        limit: u64,
        offset: u64,
    },
    /// The input (a file) ended inside the snapshot, at this offset.
    #[error("snapshot cut short at offset {offset}")]
    Truncated { offset: u64 },
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
            RdbError::ValueTooLarge { .. } => "value_too_large",
            RdbError::Truncated { .. } => "truncated",
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
            | RdbError::Unsupported { offset, .. }
            | RdbError::ValueTooLarge { offset, .. }
            | RdbError::Truncated { offset } => *offset,
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
    scratch: Scratch,
    max_read: usize,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser {
            input: Input::default(),
            core: Core::default(),
            scratch: Scratch::default(),
            max_read: DEFAULT_MAX_READ,
        }
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
        Parser {
            max_read,
            ..Parser::default()
        }
    }

    /// A parser that refuses (with [`RdbError::ValueTooLarge`]) a key whose
    /// value takes more than `max_value` bytes in the snapshot: a string
    /// (or blob) as soon as its length is read, a collection as soon as its
    /// elements add up to more.
    pub fn with_max_value(max_value: u64) -> Parser {
        let mut parser = Parser::new();
        parser.core.max_value = max_value;
        parser
    }

    /// A parser of values written as `DUMP` writes them: after the header,
    /// each record is a type (possibly preceded by key metadata) and a
    /// value, with no key name; keys are reported as empty.
    pub(crate) fn keyless() -> Parser {
        let mut parser = Parser::default();
        parser.core.keyless = true;
        parser
    }

    /// Appends bytes of the snapshot (and possibly bytes past its end).
    pub fn feed(&mut self, data: &[u8]) {
        self.input.feed(data);
    }

    /// Appends bytes without copying them: the parser reads `data` in place
    /// and drops it once consumed.
    pub fn feed_bytes(&mut self, data: Bytes) {
        self.input.feed_bytes(data);
    }

    /// Hands every complete record fed so far to `sink`, in order, until
    /// the input runs out, the snapshot ends or `sink` breaks. The items
    /// borrow from the parser: [`Item::into_owned`] keeps one beyond the
    /// call. After an error the parser stays failed.
    pub fn parse<F>(&mut self, mut sink: F) -> Result<Outcome, RdbError>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        loop {
            match &self.core.state {
                State::Failed(e) => return Err(e.clone()),
                State::Done => return Ok(Outcome::Done),
                _ => {}
            }
            if !self.input.ready() {
                return Ok(Outcome::Incomplete);
            }
            // The checksum covers everything up to the EOF opcode.
            let crc = matches!(self.core.state, State::Checksum).then(|| self.input.checksum());
            let (buffer, pos, base) = self.input.buffer();
            let mut r = Reader::new(buffer, pos, base, self.max_read, self.scratch.arena());
            let result = self.core.run(&mut r, crc, &mut sink);
            let mark = r.mark();
            let need = match &result {
                Err(Stop::Need(end)) => end.saturating_sub(mark),
                _ => 0,
            };
            self.input.consume_to(mark, need);
            match result {
                Ok(Run::Paused) => return Ok(Outcome::Paused),
                Ok(Run::Again) | Err(Stop::Need(_)) => self.scratch.shrink(),
                Err(Stop::Arena(needed)) => self.scratch.reserve(needed),
                Err(Stop::Error(e)) => {
                    self.core.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// The next record as an owned item, `Incomplete` if more bytes are
    /// needed, `Done` after the end. After an error the parser stays failed.
    pub fn next_item(&mut self) -> Result<Status, RdbError> {
        let mut next = None;
        let outcome = self.parse(|item| {
            next = Some(item.into_owned());
            ControlFlow::Break(())
        })?;
        Ok(match (next, outcome) {
            (Some(item), _) => Status::Ready(item),
            (None, Outcome::Done) => Status::Done,
            (None, _) => Status::Incomplete,
        })
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
        self.input.take_rest()
    }

    /// Bytes of the snapshot consumed so far.
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }
}

/// Why a run of records ended, when it ended well.
enum Run {
    /// The sink broke.
    Paused,
    /// The state needs the caller (the checksum) or has ended.
    Again,
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

/// A key whose value was carried over from an earlier run.
#[derive(Debug)]
struct PartialKey {
    key: Raw<'static>,
    meta: KeyMeta,
    value: Carried,
}

/// Opcodes that apply to the next key only.
#[derive(Debug, Default)]
struct KeyMeta {
    expire_at_ms: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
}

#[derive(Debug)]
struct Core {
    state: State,
    version: u32,
    valkey: bool,
    /// A `DUMP` payload: values without key names.
    keyless: bool,
    db: u64,
    meta: KeyMeta,
    /// The most bytes a key's value may take ([`Parser::with_max_value`]).
    max_value: u64,
}

impl Default for Core {
    fn default() -> Core {
        Core {
            state: State::default(),
            version: 0,
            valkey: false,
            keyless: false,
            db: 0,
            meta: KeyMeta::default(),
            max_value: u64::MAX,
        }
    }
}

impl Core {
    /// Parses one unit after another at the reader, committing each, and
    /// hands the items to `sink`. `crc` is the checksum of everything before
    /// the reader's start, when the state is `Checksum`.
    fn run<'a, F>(&mut self, r: &mut Reader<'a>, crc: Option<u64>, sink: &mut F) -> Read<Run>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        loop {
            let flow = match (&self.state, crc) {
                (State::Records, _) => self.record(r, sink)?,
                (State::Value(_), _) => self.continue_value(r, sink)?,
                (State::Magic, _) => self.magic(r, sink)?,
                (State::Checksum, Some(crc)) => self.checksum(r, crc, sink)?,
                (State::Checksum, None) | (State::Done, _) | (State::Failed(_), _) => {
                    return Ok(Run::Again)
                }
            };
            r.commit();
            if flow.is_break() {
                return Ok(Run::Paused);
            }
        }
    }

    fn magic<'a, F>(&mut self, r: &mut Reader<'a>, sink: &mut F) -> Read<ControlFlow<()>>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
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
            (VALKEY_RDB_VERSION_MIN..=VALKEY_RDB_VERSION_MAX).contains(&version)
        } else {
            (1..=RDB_VERSION_MAX).contains(&version)
        };
        if !supported {
            return Err(Stop::Error(RdbError::UnsupportedVersion {
                version,
                offset: 5,
            }));
        }
        self.version = version;
        self.valkey = valkey;
        self.state = State::Records;
        Ok(sink(Item::Header { version, valkey }))
    }

    #[inline(always)]
    fn record<'a, F>(&mut self, r: &mut Reader<'a>, sink: &mut F) -> Read<ControlFlow<()>>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        let op = r.u8()?;
        if op == RDB_TYPE_STRING && !self.keyless {
            // Most keys of most snapshots: kept inline.
            let key = r.blob()?;
            let value = self
                .limited(r, |r| r.string())
                .map_err(|stop| self.over_limit(stop, key))?;
            let meta = std::mem::take(&mut self.meta);
            return Ok(sink(entry(
                self.db,
                Raw::Borrowed(key),
                meta,
                Value::String(value),
            )));
        }
        self.other_record(op, r, sink)
    }

    fn other_record<'a, F>(
        &mut self,
        op: u8,
        r: &mut Reader<'a>,
        sink: &mut F,
    ) -> Read<ControlFlow<()>>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        let offset = r.offset().saturating_sub(1);
        let item = match op {
            RDB_OPCODE_EOF => {
                if self.version >= RDB_VERSION_CHECKSUM {
                    self.state = State::Checksum;
                    return Ok(ControlFlow::Continue(()));
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
                return Ok(ControlFlow::Continue(()));
            }
            RDB_OPCODE_EXPIRETIME_MS => {
                let ms = r.u64_le()?;
                self.meta.expire_at_ms = Some(ms as i64);
                return Ok(ControlFlow::Continue(()));
            }
            RDB_OPCODE_FREQ => {
                self.meta.freq = Some(r.u8()?);
                return Ok(ControlFlow::Continue(()));
            }
            RDB_OPCODE_IDLE => {
                self.meta.idle = Some(r.length()?);
                return Ok(ControlFlow::Continue(()));
            }
            RDB_OPCODE_RESIZEDB => {
                let db_size = r.length()?;
                let expires_size = r.length()?;
                Item::ResizeDb {
                    db_size,
                    expires_size,
                }
            }
            RDB_OPCODE_AUX => {
                let key = r.raw()?;
                let value = r.raw()?;
                Item::Aux { key, value }
            }
            RDB_OPCODE_MODULE_AUX => {
                let id = r.length()?;
                if r.length()? != RDB_MODULE_OPCODE_UINT {
                    return Err(r.corrupt("module aux 'when' opcode"));
                }
                let when = r.length()?;
                module::skip_body(r)?;
                Item::ModuleAux {
                    module: module::decode_id(id).0,
                    when,
                }
            }
            RDB_OPCODE_FUNCTION_PRE_GA => {
                return Err(Stop::Error(RdbError::Unsupported {
                    what: "function opcode 0xf6 of the Redis 7.0 release candidates",
                    offset,
                }))
            }
            RDB_OPCODE_FUNCTION2 => Item::Function(r.raw()?),
            RDB_OPCODE_KEY_META if !self.valkey => {
                // Module metadata of the next key: nothing nsync delivers.
                let classes = r.length()?;
                for _ in 0..classes {
                    r.take(4)?;
                    module::skip_body(r)?;
                }
                return Ok(ControlFlow::Continue(()));
            }
            VALKEY_RDB_OPCODE_SLOT_IMPORT if self.valkey => {
                r.raw()?;
                let ranges = r.length()?;
                for _ in 0..ranges {
                    r.length()?;
                    r.length()?;
                }
                return Ok(ControlFlow::Continue(()));
            }
            VALKEY_RDB_OPCODE_UPDATE if self.valkey => {
                return Err(Stop::Error(RdbError::Unsupported {
                    what: "command inlined by a forkless save (UPDATE opcode)",
                    offset,
                }))
            }
            RDB_OPCODE_SLOT_INFO => {
                let slot = r.length()?;
                let slot_size = r.length()?;
                let expires_slot_size = r.length()?;
                Item::SlotInfo {
                    slot,
                    slot_size,
                    expires_slot_size,
                }
            }
            ty if ty < RDB_TYPE_NUMBERS_END => return self.key(ty, offset, r, sink),
            opcode => return Err(Stop::Error(RdbError::UnknownOpcode { opcode, offset })),
        };
        Ok(sink(item))
    }

    fn key<'a, F>(
        &mut self,
        ty: u8,
        type_offset: u64,
        r: &mut Reader<'a>,
        sink: &mut F,
    ) -> Read<ControlFlow<()>>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        let key = if self.keyless {
            Raw::Borrowed(&[])
        } else {
            r.raw()?
        };
        if ty == RDB_TYPE_STRING {
            let value = self
                .limited(r, |r| r.string())
                .map_err(|stop| self.over_limit(stop, &key))?;
            let meta = std::mem::take(&mut self.meta);
            return Ok(sink(entry(self.db, key, meta, Value::String(value))));
        }
        let value_start = r.pos();
        let start = self.limited(r, |r| value::start(r, ty, type_offset, self.valkey));
        let mut elements = match start.map_err(|stop| self.over_limit(stop, &key))? {
            Start::Complete(value) => {
                self.check_size(&key, r.pos() - value_start, r)?;
                let meta = std::mem::take(&mut self.meta);
                return Ok(sink(entry(self.db, key, meta, value)));
            }
            Start::Elements(elements) => elements,
        };
        // Elements are consumed one by one: if the run stops before the
        // last, their bytes so far are carried over to the next run.
        r.commit();
        let elements_start = r.pos();
        match self.limited(r, |r| elements.read(r)) {
            Ok(value) => {
                self.check_size(&key, r.pos() - elements_start, r)?;
                let meta = std::mem::take(&mut self.meta);
                Ok(sink(entry(self.db, key, meta, value)))
            }
            Err(Stop::Error(e)) => Err(self.over_limit(Stop::Error(e), &key)),
            Err(stop) => {
                let value = elements.carry_over(r, elements_start);
                let key = Raw::Shared(Bytes::copy_from_slice(&key));
                self.check_size(&key, usize::try_from(value.len()).unwrap_or(usize::MAX), r)?;
                let meta = std::mem::take(&mut self.meta);
                self.state = State::Value(Box::new(PartialKey { key, meta, value }));
                Err(stop)
            }
        }
    }

    /// Runs `read` (of a key's value) with single reads limited to the value
    /// limit as well.
    fn limited<'a, T>(
        &self,
        r: &mut Reader<'a>,
        read: impl FnOnce(&mut Reader<'a>) -> Read<T>,
    ) -> Read<T> {
        let max_read = r.set_max_read(self.value_max_read(r));
        let result = read(r);
        r.set_max_read(max_read);
        result
    }

    /// The longest single read allowed within a key's value.
    fn value_max_read(&self, r: &Reader) -> usize {
        usize::try_from(self.max_value).map_or(r.max_read(), |max| max.min(r.max_read()))
    }

    /// A string or blob over the parser's limit, as the error naming its key
    /// (other stops as they are).
    fn over_limit(&self, stop: Stop, key: &[u8]) -> Stop {
        match stop {
            Stop::Error(RdbError::TooLarge { len, offset, .. }) if len > self.max_value => {
                Stop::Error(self.too_large(key, len, offset))
            }
            other => other,
        }
    }

    /// Refuses a value of `len` bytes over the parser's limit.
    fn check_size(&self, key: &[u8], len: usize, r: &Reader) -> Read<()> {
        let len = len as u64;
        if len > self.max_value {
            return Err(Stop::Error(self.too_large(key, len, r.offset())));
        }
        Ok(())
    }

    fn too_large(&self, key: &[u8], len: u64, offset: u64) -> RdbError {
        RdbError::ValueTooLarge {
            key: Bytes::copy_from_slice(key),
            len,
            limit: self.max_value,
            offset,
        }
    }

    fn continue_value<'a, F>(&mut self, r: &mut Reader<'a>, sink: &mut F) -> Read<ControlFlow<()>>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        let State::Value(partial) = std::mem::replace(&mut self.state, State::Records) else {
            return Ok(ControlFlow::Continue(()));
        };
        let PartialKey {
            key,
            meta,
            mut value,
        } = *partial;
        let over = |len, offset| self.too_large(&key, len, offset);
        let max_read = r.set_max_read(self.value_max_read(r));
        match value.read(r, self.max_value, over) {
            Ok(complete) => {
                let flow = sink(entry(self.db, key.clone(), meta, complete));
                r.set_max_read(max_read);
                Ok(flow)
            }
            Err(stop) => {
                r.set_max_read(max_read);
                match stop {
                    Stop::Error(e) => Err(self.over_limit(Stop::Error(e), &key)),
                    stop => {
                        self.state = State::Value(Box::new(PartialKey { key, meta, value }));
                        Err(stop)
                    }
                }
            }
        }
    }

    fn checksum<'a, F>(
        &mut self,
        r: &mut Reader<'a>,
        computed: u64,
        sink: &mut F,
    ) -> Read<ControlFlow<()>>
    where
        F: FnMut(Item<'_>) -> ControlFlow<()>,
    {
        let offset = r.offset();
        let stored = r.u64_le()?;
        if stored != 0 && stored != computed {
            return Err(Stop::Error(RdbError::ChecksumMismatch {
                expected: stored,
                computed,
                offset,
            }));
        }
        self.state = State::Done;
        Ok(sink(Item::Eof))
    }
}

fn entry<'a>(db: u64, key: Raw<'a>, meta: KeyMeta, value: Value<'a>) -> Item<'a> {
    Item::Key(Entry {
        db,
        key,
        expire_at_ms: meta.expire_at_ms,
        idle: meta.idle,
        freq: meta.freq,
        value,
    })
}

#[cfg(test)]
mod tests;
