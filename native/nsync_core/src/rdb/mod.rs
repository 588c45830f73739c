//! Streaming RDB parser.
//!
//! Feed bytes in chunks of any size with [`Parser::feed`]; pull records with
//! [`Parser::next_item`], which answers [`Status::Incomplete`] when the bytes
//! fed so far end inside a record. The parser keeps only the record being
//! decoded plus a small constant, whatever the snapshot's size.

mod item;

pub use item::*;

use thiserror::Error;

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
            | RdbError::TooLarge { offset, .. } => *offset,
        }
    }
}

/// The streaming parser. See the module documentation.
#[derive(Debug, Default)]
pub struct Parser {
    // Filled in by the parser implementation.
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Appends bytes of the snapshot (and possibly bytes past its end).
    pub fn feed(&mut self, _data: &[u8]) {}

    /// The next record, `Incomplete` if more bytes are needed, `Done` after
    /// the end. After an error the parser stays failed.
    pub fn next_item(&mut self) -> Result<Status, RdbError> {
        Ok(Status::Incomplete)
    }

    /// True once the end of the snapshot (EOF opcode and checksum) was read.
    pub fn is_done(&self) -> bool {
        false
    }

    /// Bytes fed past the end of the snapshot (for diskless sync: the EOF
    /// mark and the start of the command stream). Empty before the end.
    pub fn take_rest(&mut self) -> bytes::Bytes {
        bytes::Bytes::new()
    }

    /// Bytes of the snapshot consumed so far.
    pub fn offset(&self) -> u64 {
        0
    }
}
