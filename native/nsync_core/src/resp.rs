//! RESP2 as a replica needs it: a streaming parser for the master's command
//! stream, reply parsing for the handshake, and command encoding.
//!
//! The command parser keeps explicit state between calls, so a command that
//! arrives in many small reads is parsed once, not rescanned from its start.
//! It answers `Ok(None)` when the bytes run out, never allocates from a
//! length it has only been promised (a `*2147483647` header costs nothing),
//! and keeps a command as the bytes it came in ([`Args`]): a command costs
//! its wire bytes in memory, however many arguments it has.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Redis refuses inline requests longer than this (`PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Redis strings top out at 512 MB; anything much larger is a corrupt stream.
pub const MAX_BULK_LEN: i64 = 1 << 32;
/// Redis's own limit on a master's multibulk length.
pub const MAX_ARRAY_LEN: i64 = i32::MAX as i64;
/// A `*`/`$` header is a sign, at most 20 digits and CRLF: longer is garbage.
const MAX_HEADER_LINE: usize = 24;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RespError {
    #[error("expected '{expected}', got byte {got:#04x}")]
    UnexpectedByte { expected: char, got: u8 },
    #[error("invalid {what} length")]
    BadLength { what: &'static str },
    #[error("{what} length {len} is too large")]
    TooLarge { what: &'static str, len: i64 },
    /// A command whose arguments add up to more than the parser's limit
    /// ([`CommandParser::with_max_bytes`]); `key` is its first argument
    /// after the name, when that arrived before the limit was passed.
    #[error("a command of at least {bytes} bytes is over the limit of {limit}")]
    OverLimit {
        key: Option<Bytes>,
        bytes: u64,
        limit: u64,
    },
    #[error("bulk string not terminated by CRLF")]
    MissingCrlf,
    #[error("line longer than {MAX_INLINE_LEN} bytes")]
    LineTooLong,
    #[error("unexpected reply type {0:#04x}")]
    UnexpectedReply(u8),
}

/// One command of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Name first; empty for an empty line or a `*0`/`*-1` array.
    pub args: Args,
    /// Exact bytes it took on the wire, for replication offsets.
    pub wire_len: usize,
}

impl Command {
    /// Case-insensitive test of argument `index` against `lowercase`.
    pub fn arg_is(&self, index: usize, lowercase: &[u8]) -> bool {
        self.args
            .get(index)
            .is_some_and(|a| a.eq_ignore_ascii_case(lowercase))
    }
}

/// The arguments of one command, name first, kept as they came on the wire
/// (`$<len>\r\n<bytes>\r\n` each, checked by the parser) and read in
/// place: no allocation per argument.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Args {
    wire: Bytes,
    count: usize,
}

impl Args {
    /// Arguments made of `args` (encoded as a master would send them).
    pub fn from_slices<A: AsRef<[u8]>>(args: &[A]) -> Args {
        let mut wire = Vec::new();
        for arg in args {
            push_bulk(&mut wire, arg.as_ref());
        }
        Args {
            wire: Bytes::from(wire),
            count: args.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Argument `index` (0 is the name), found by walking the ones before.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.iter().nth(index)
    }

    pub fn iter(&self) -> ArgsIter<'_> {
        ArgsIter {
            wire: &self.wire,
            left: self.count,
        }
    }

    /// The arguments as `Bytes` that share the wire buffer (no copy).
    pub fn to_bytes(&self) -> Vec<Bytes> {
        self.iter().map(|arg| self.wire.slice_ref(arg)).collect()
    }
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|a| a.escape_ascii().to_string()))
            .finish()
    }
}

impl<'a> IntoIterator for &'a Args {
    type Item = &'a [u8];
    type IntoIter = ArgsIter<'a>;

    fn into_iter(self) -> ArgsIter<'a> {
        self.iter()
    }
}

/// The arguments of an [`Args`], in order.
#[derive(Debug, Clone)]
pub struct ArgsIter<'a> {
    wire: &'a [u8],
    left: usize,
}

impl<'a> Iterator for ArgsIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // The parser checked these bytes; a malformed one ends the walk.
        let (len, line_len) = parse_header(self.wire, b'$', "bulk").ok()??;
        let len = usize::try_from(len).ok()?;
        let end = line_len.checked_add(len)?;
        let arg = self.wire.get(line_len..end)?;
        self.wire = self.wire.get(end.checked_add(2)?..)?;
        self.left -= 1;
        Some(arg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// An array whose header was read but whose arguments are still arriving.
/// Nothing is taken from the buffer until the command is complete.
#[derive(Debug)]
struct PartialArray {
    expected: usize,
    /// Arguments complete so far.
    done: usize,
    /// Length of the `*<count>` line.
    header_len: usize,
    /// Bytes at the start of the buffer parsed as part of this command.
    parsed: usize,
    /// Bytes of its arguments so far (the limit counts these).
    payload: u64,
}

/// Streaming parser for the command stream. A command's bytes are taken
/// from the caller's buffer once it is complete.
#[derive(Debug)]
pub struct CommandParser {
    partial: Option<PartialArray>,
    max_bytes: u64,
}

impl Default for CommandParser {
    fn default() -> CommandParser {
        CommandParser::with_max_bytes(u64::MAX)
    }
}

impl CommandParser {
    pub fn new() -> CommandParser {
        CommandParser::default()
    }

    /// A parser that refuses ([`RespError::OverLimit`]) a command whose
    /// arguments add up to more than `max_bytes`, as soon as an argument's
    /// header says so (before its bytes arrive).
    pub fn with_max_bytes(max_bytes: u64) -> CommandParser {
        CommandParser {
            partial: None,
            max_bytes,
        }
    }

    /// The next complete command from `buf`, or `None` if more bytes are
    /// needed. After an error the stream cannot be resynchronised.
    ///
    /// A master sends its stream as arrays only: anything else but an
    /// empty line (which carries nothing) is garbage, not an inline
    /// command.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, RespError> {
        let mut array = match self.partial.take() {
            Some(array) => array,
            None => match buf.first() {
                None => return Ok(None),
                Some(b'*') => {
                    let Some((count, line_len)) = parse_header(buf, b'*', "multibulk")? else {
                        return Ok(None);
                    };
                    if count > MAX_ARRAY_LEN {
                        return Err(RespError::TooLarge {
                            what: "multibulk",
                            len: count,
                        });
                    }
                    // `*0` and `*-1` are empty commands: Redis skips them, the
                    // offset still counts their bytes.
                    PartialArray {
                        expected: usize::try_from(count.max(0)).unwrap_or(0),
                        done: 0,
                        header_len: line_len,
                        parsed: line_len,
                        payload: 0,
                    }
                }
                Some(_) => return parse_empty_line(buf),
            },
        };
        while array.done < array.expected {
            let rest = buf.get(array.parsed..).unwrap_or_default();
            let Some((len, line_len)) = parse_header(rest, b'$', "bulk")? else {
                self.partial = Some(array);
                return Ok(None);
            };
            if len < 0 {
                return Err(RespError::BadLength { what: "bulk" });
            }
            if len > MAX_BULK_LEN {
                return Err(RespError::TooLarge { what: "bulk", len });
            }
            let payload = array.payload.saturating_add(len.unsigned_abs());
            if payload > self.max_bytes {
                return Err(self.over_limit(buf, &array, payload));
            }
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| line_len.checked_add(len)?.checked_add(2))
                .ok_or(RespError::BadLength { what: "bulk" })?;
            let Some(bulk) = rest.get(..end) else {
                self.partial = Some(array);
                return Ok(None);
            };
            if !bulk.ends_with(b"\r\n") {
                return Err(RespError::MissingCrlf);
            }
            array.parsed += end;
            array.payload = payload;
            array.done += 1;
        }
        let wire = buf.split_to(array.parsed).freeze();
        Ok(Some(Command {
            args: Args {
                wire: wire.slice(array.header_len..),
                count: array.expected,
            },
            wire_len: array.parsed,
        }))
    }

    fn over_limit(&self, buf: &[u8], array: &PartialArray, bytes: u64) -> RespError {
        let parsed = Args {
            wire: Bytes::copy_from_slice(
                buf.get(array.header_len..array.parsed).unwrap_or_default(),
            ),
            count: array.done,
        };
        RespError::OverLimit {
            key: parsed.get(1).map(Bytes::copy_from_slice),
            bytes,
            limit: self.max_bytes,
        }
    }
}

/// Outside an array, only a line end is allowed (it carries nothing; the
/// offset counts it).
fn parse_empty_line(buf: &mut BytesMut) -> Result<Option<Command>, RespError> {
    let wire_len = match &buf[..] {
        [b'\n', ..] => 1,
        [b'\r'] => return Ok(None),
        [b'\r', b'\n', ..] => 2,
        [got, ..] => {
            return Err(RespError::UnexpectedByte {
                expected: '*',
                got: *got,
            })
        }
        [] => return Ok(None),
    };
    buf.advance(wire_len);
    Ok(Some(Command {
        args: Args::default(),
        wire_len,
    }))
}

/// Position of the first `\n` within the first `limit` bytes; an error if
/// there is none and `limit` bytes are already there.
fn find_newline(buf: &[u8], limit: usize) -> Result<Option<usize>, RespError> {
    let window = &buf[..buf.len().min(limit)];
    match window.iter().position(|&b| b == b'\n') {
        Some(pos) => Ok(Some(pos)),
        None if buf.len() >= limit => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

/// Length of `line` without its trailing `\n` or `\r\n`.
fn trim_line_end(line: &[u8]) -> usize {
    let mut end = line.len();
    if end > 0 && line[end - 1] == b'\n' {
        end -= 1;
    }
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    end
}

/// Parses `<prefix><integer>\r\n` at the start of `buf`: the integer and the
/// header's length, or `None` if it is not complete yet.
fn parse_header(
    buf: &[u8],
    prefix: u8,
    what: &'static str,
) -> Result<Option<(i64, usize)>, RespError> {
    match buf.first() {
        None => return Ok(None),
        Some(&b) if b != prefix => {
            return Err(RespError::UnexpectedByte {
                expected: prefix as char,
                got: b,
            })
        }
        Some(_) => {}
    }
    let Some(newline) =
        find_newline(buf, MAX_HEADER_LINE).map_err(|_| RespError::BadLength { what })?
    else {
        return Ok(None);
    };
    if newline < 2 || buf[newline - 1] != b'\r' {
        return Err(RespError::BadLength { what });
    }
    let value = parse_integer(&buf[1..newline - 1]).ok_or(RespError::BadLength { what })?;
    Ok(Some((value, newline + 1)))
}

/// A decimal integer with an optional minus sign, nothing else.
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// A reply to one handshake command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+...`, without the `+`.
    Simple(Bytes),
    /// `-...`, without the `-`.
    Error(Bytes),
    Integer(i64),
    /// `$...`; `None` for the null bulk string.
    Bulk(Option<Bytes>),
}

/// Parses one reply at the start of `buf`: the reply and its length in
/// bytes, or `None` if it is not complete yet.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if kind == b'$' {
        let Some((len, line_len)) = parse_header(buf, b'$', "bulk")? else {
            return Ok(None);
        };
        if len < 0 {
            return Ok(Some((Reply::Bulk(None), line_len)));
        }
        if len > MAX_INLINE_LEN as i64 {
            return Err(RespError::TooLarge { what: "reply", len });
        }
        let len = len as usize;
        let end = line_len + len + 2;
        if buf.len() < end {
            return Ok(None);
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Err(RespError::MissingCrlf);
        }
        let body = Bytes::copy_from_slice(&buf[line_len..line_len + len]);
        return Ok(Some((Reply::Bulk(Some(body)), end)));
    }
    if !matches!(kind, b'+' | b'-' | b':') {
        return Err(RespError::UnexpectedReply(kind));
    }
    let Some(newline) = find_newline(buf, MAX_INLINE_LEN)? else {
        return Ok(None);
    };
    let text = &buf[1..trim_line_end(&buf[..=newline])];
    let reply = match kind {
        b'+' => Reply::Simple(Bytes::copy_from_slice(text)),
        b'-' => Reply::Error(Bytes::copy_from_slice(text)),
        _ => Reply::Integer(parse_integer(text).ok_or(RespError::BadLength { what: "integer" })?),
    };
    Ok(Some((reply, newline + 1)))
}

/// Removes and returns one line (without its line end) from `buf`, or `None`
/// if no complete line is there yet.
pub fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, RespError> {
    let Some(newline) = find_newline(buf, MAX_INLINE_LEN)? else {
        return Ok(None);
    };
    let line = buf.split_to(newline + 1).freeze();
    Ok(Some(line.slice(..trim_line_end(&line))))
}

/// Appends `args` to `out` as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.push(b'*');
    push_decimal(out, args.len());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        push_bulk(out, arg.as_ref());
    }
}

fn push_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    push_decimal(out, arg.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(n.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Command>, RespError> {
        let mut parser = CommandParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = parser.next(&mut buf)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn args(cmd: &Command) -> Vec<&[u8]> {
        cmd.args.iter().collect()
    }

    #[test]
    fn parses_arrays_with_exact_lengths() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n";
        let cmds = parse_all(wire).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(args(&cmds[0]), vec![&b"SET"[..], b"k", b"hello"]);
        assert_eq!(cmds[0].wire_len, 31);
        assert_eq!(cmds[1].wire_len, 14);
        assert_eq!(cmds[0].wire_len + cmds[1].wire_len, wire.len());
    }

    #[test]
    fn byte_by_byte_gives_the_same_commands() {
        let wire = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n\r\n*3\r\n$4\r\nSADD\r\n$0\r\n\r\n$10\r\n0123456789\r\n";
        let whole = parse_all(wire).unwrap();
        let mut parser = CommandParser::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in wire.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(cmd) = parser.next(&mut buf).unwrap() {
                got.push(cmd);
            }
        }
        assert_eq!(got, whole);
        assert_eq!(got.len(), 3);
        assert!(buf.is_empty());
    }

    /// A master sends arrays only: a line end outside one carries nothing,
    /// anything else (an inline command, random bytes) is garbage.
    #[test]
    fn only_empty_lines_outside_arrays() {
        let cmds = parse_all(b"\n\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 3);
        assert!(cmds[0].args.is_empty() && cmds[1].args.is_empty());
        assert_eq!((cmds[0].wire_len, cmds[1].wire_len), (1, 2));
        assert_eq!(parse_all(b"\r").unwrap(), vec![]);
        for garbage in [&b"PING\r\n"[..], b"set a b\r\n", b"\r\x00", b"\x00\xff\x17"] {
            assert!(
                matches!(
                    parse_all(garbage),
                    Err(RespError::UnexpectedByte { expected: '*', .. })
                ),
                "{garbage:?}"
            );
        }
    }

    /// A command costs its wire bytes: its arguments are read in place.
    #[test]
    fn arguments_are_read_in_place() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        let cmd = parse_all(wire).unwrap().remove(0);
        assert_eq!(cmd.args.len(), 3);
        assert_eq!(cmd.args.get(1), Some(&b"k"[..]));
        assert_eq!(cmd.args.get(2), Some(&b""[..]));
        assert_eq!(cmd.args.get(3), None);
        assert_eq!(cmd.args, Args::from_slices(&["SET", "k", ""]));
        assert_eq!(format!("{:?}", cmd.args), r#"["SET", "k", ""]"#);
        assert!(cmd.arg_is(0, b"set"));
    }

    /// Arguments past the limit are refused when their header says so,
    /// naming the key when it came first.
    #[test]
    fn the_limit_counts_a_commands_arguments() {
        let wire = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$100\r\n";
        let mut parser = CommandParser::with_max_bytes(105);
        assert_eq!(
            parser.next(&mut BytesMut::from(&wire[..])),
            Err(RespError::OverLimit {
                key: Some(Bytes::from("key")),
                bytes: 106,
                limit: 105
            })
        );
        let mut parser = CommandParser::with_max_bytes(106);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(parser.next(&mut buf), Ok(None));
        buf.extend_from_slice(&[b'x'; 100]);
        buf.extend_from_slice(b"\r\n");
        assert_eq!(parser.next(&mut buf).unwrap().unwrap().args.len(), 3);
        let mut parser = CommandParser::with_max_bytes(2);
        assert!(matches!(
            parser.next(&mut BytesMut::from(&b"*1\r\n$3\r\n"[..])),
            Err(RespError::OverLimit { key: None, .. })
        ));
    }

    #[test]
    fn empty_arrays_are_counted_but_carry_nothing() {
        let cmds = parse_all(b"*0\r\n*-1\r\n").unwrap();
        assert_eq!(cmds.len(), 2);
        assert!(cmds.iter().all(|c| c.args.is_empty()));
        assert_eq!(cmds[0].wire_len + cmds[1].wire_len, 9);
    }

    #[test]
    fn huge_promised_lengths_allocate_nothing() {
        let mut parser = CommandParser::new();
        let mut buf = BytesMut::from(&b"*2147483647\r\n$3\r\nSET\r\n"[..]);
        assert_eq!(parser.next(&mut buf).unwrap(), None);
        let mut buf = BytesMut::from(&b"*1\r\n$4294967296\r\n"[..]);
        assert_eq!(CommandParser::new().next(&mut buf).unwrap(), None);
        let mut buf = BytesMut::from(&b"*2147483648\r\n"[..]);
        assert!(matches!(
            CommandParser::new().next(&mut buf),
            Err(RespError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&b"*1\r\n$4294967297\r\n"[..]);
        assert!(matches!(
            CommandParser::new().next(&mut buf),
            Err(RespError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let cases: &[&[u8]] = &[
            b"*1\r\n:3\r\n",
            b"*x\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$3\r\nabcXY",
            b"*99999999999999999999999\r\n",
            b"*1\n",
            b"*1\r\n$1\r\n",
        ];
        for case in &cases[..6] {
            assert!(
                parse_all(case).is_err(),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(parse_all(cases[6]).unwrap(), vec![]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix of many pseudo-random inputs.
        let mut seed: u32 = 12345;
        let alphabet = b"*$:+-\r\n0123456789abc ";
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let mut input = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                input.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let _ = parse_all(&input);
            let _ = parse_reply(&input);
            let _ = take_line(&mut BytesMut::from(&input[..]));
        }
    }

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(b"+PONG\r\n").unwrap(),
            Some((Reply::Simple(Bytes::from("PONG")), 7))
        );
        assert_eq!(
            parse_reply(b"-ERR no\r\nrest").unwrap(),
            Some((Reply::Error(Bytes::from("ERR no")), 9))
        );
        assert_eq!(
            parse_reply(b":-12\r\n").unwrap(),
            Some((Reply::Integer(-12), 6))
        );
        assert_eq!(
            parse_reply(b"$3\r\nabc\r\n").unwrap(),
            Some((Reply::Bulk(Some(Bytes::from("abc"))), 9))
        );
        assert_eq!(
            parse_reply(b"$-1\r\n").unwrap(),
            Some((Reply::Bulk(None), 5))
        );
        assert_eq!(parse_reply(b"$3\r\nab").unwrap(), None);
        assert_eq!(parse_reply(b"+OK").unwrap(), None);
        assert!(parse_reply(b"*1\r\n").is_err());
    }

    #[test]
    fn lines() {
        let mut buf = BytesMut::from(&b"$EOF:abc\r\nrest"[..]);
        assert_eq!(take_line(&mut buf).unwrap(), Some(Bytes::from("$EOF:abc")));
        assert_eq!(&buf[..], b"rest");
        assert_eq!(take_line(&mut buf).unwrap(), None);
    }

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode_command(&["REPLCONF", "ACK", "123"], &mut out);
        assert_eq!(out, b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\n123\r\n");
        let mut parser = CommandParser::new();
        let cmd = parser.next(&mut BytesMut::from(&out[..])).unwrap().unwrap();
        assert_eq!(cmd.wire_len, out.len());
        assert!(cmd.arg_is(0, b"replconf") && cmd.arg_is(1, b"ack"));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_integer(b"9223372036854775808"), None);
        assert_eq!(parse_integer(b"-"), None);
        assert_eq!(parse_integer(b"1 "), None);
    }
}
