//! Parser-level tests on hand-made snapshots.

use super::listpack::tests::{listpack, lp_str};
use super::*;

/// A snapshot under construction: magic, records, EOF and CRC-64.
struct Rdb(Vec<u8>);

impl Rdb {
    fn new(magic: &str) -> Rdb {
        Rdb(magic.as_bytes().to_vec())
    }
    fn byte(mut self, b: u8) -> Rdb {
        self.0.push(b);
        self
    }
    fn raw(mut self, bytes: &[u8]) -> Rdb {
        self.0.extend_from_slice(bytes);
        self
    }
    fn len(self, n: u64) -> Rdb {
        match n {
            0..=63 => self.byte(n as u8),
            64..=16383 => self.raw(&[0x40 | (n >> 8) as u8, n as u8]),
            _ => self.byte(0x81).raw(&n.to_be_bytes()),
        }
    }
    fn str(self, s: &[u8]) -> Rdb {
        self.len(s.len() as u64).raw(s)
    }
    fn finish(self) -> Vec<u8> {
        let mut data = self.byte(0xFF).0;
        let crc = ::crc::Crc::<u64>::new(&::crc::CRC_64_REDIS).checksum(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        data
    }
}

fn parse_all(data: &[u8]) -> (Vec<Item<'static>>, Result<(), RdbError>) {
    let mut parser = Parser::new();
    parser.feed(data);
    let mut items = Vec::new();
    loop {
        match parser.next_item() {
            Ok(Status::Ready(item)) => items.push(item),
            Ok(Status::Done) => return (items, Ok(())),
            Ok(Status::Incomplete) => {
                return (
                    items,
                    Err(RdbError::Corrupt {
                        what: "test: incomplete",
                        offset: 0,
                    }),
                )
            }
            Err(e) => return (items, Err(e)),
        }
    }
}

fn only_key<'i>(items: &'i [Item<'static>]) -> &'i Entry<'static> {
    let keys: Vec<&Entry> = items
        .iter()
        .filter_map(|i| match i {
            Item::Key(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 1, "{items:?}");
    keys[0]
}

fn raw(s: &str) -> Str<'_> {
    Str::Raw(Raw::Borrowed(s.as_bytes()))
}

fn field<'s>(f: &'s str, v: &'s str, expire_at_ms: Option<i64>) -> HashField<'s> {
    HashField {
        field: raw(f),
        value: raw(v),
        expire_at_ms,
    }
}

#[test]
fn valkey_magic_with_hash_2() {
    let data = Rdb::new("VALKEY080")
        .byte(consts::VALKEY_RDB_TYPE_HASH_2)
        .str(b"h")
        .len(2)
        .str(b"a")
        .str(b"1")
        .raw(&1_800_000_000_000i64.to_le_bytes())
        .str(b"b")
        .str(b"2")
        .raw(&(-1i64).to_le_bytes())
        .finish();
    let (items, end) = parse_all(&data);
    assert_eq!(end, Ok(()));
    assert_eq!(
        items[0],
        Item::Header {
            version: 80,
            valkey: true
        }
    );
    let expected = vec![
        field("a", "1", Some(1_800_000_000_000)),
        field("b", "2", None),
    ];
    assert_eq!(only_key(&items).value, Value::Hash(expected));
}

#[test]
fn valkey_magic_below_80_is_unsupported() {
    let (_, end) = parse_all(&Rdb::new("VALKEY012").finish());
    assert!(matches!(
        end,
        Err(RdbError::UnsupportedVersion { version: 12, .. })
    ));
}

#[test]
fn hash_metadata_ttl_is_relative_to_min_expire() {
    let min_expire = 1_700_000_000_000u64;
    let data = Rdb::new("REDIS0012")
        .byte(consts::RDB_TYPE_HASH_METADATA)
        .str(b"h")
        .raw(&min_expire.to_le_bytes())
        .len(2)
        .len(0)
        .str(b"a")
        .str(b"1")
        .len(1001)
        .str(b"b")
        .str(b"2")
        .finish();
    let (items, end) = parse_all(&data);
    assert_eq!(end, Ok(()));
    let expected = vec![
        field("a", "1", None),
        field("b", "2", Some(1_700_000_001_000)),
    ];
    assert_eq!(only_key(&items).value, Value::Hash(expected));
}

#[test]
fn listpack_ex_ttl_is_absolute() {
    let lp = listpack(&[
        lp_str(b"a"),
        lp_str(b"1"),
        vec![0x00],
        lp_str(b"b"),
        lp_str(b"2"),
        [vec![0xF4], 1_700_000_000_123i64.to_le_bytes().to_vec()].concat(),
    ]);
    let data = Rdb::new("REDIS0012")
        .byte(consts::RDB_TYPE_HASH_LISTPACK_EX)
        .str(b"h")
        .raw(&1_600_000_000_000u64.to_le_bytes())
        .str(&lp)
        .finish();
    let (items, end) = parse_all(&data);
    assert_eq!(end, Ok(()));
    let expected = vec![
        field("a", "1", None),
        field("b", "2", Some(1_700_000_000_123)),
    ];
    assert_eq!(only_key(&items).value, Value::Hash(expected));
}

#[test]
fn expiry_in_seconds_and_meta_apply_to_next_key_only() {
    let data = Rdb::new("REDIS0009")
        .byte(consts::RDB_OPCODE_EXPIRETIME)
        .raw(&1_800_000_000u32.to_le_bytes())
        .byte(consts::RDB_OPCODE_FREQ)
        .byte(7)
        .byte(consts::RDB_OPCODE_IDLE)
        .len(99)
        .byte(consts::RDB_TYPE_STRING)
        .str(b"k1")
        .raw(&[0xC0, 0xFF]) // int8 -1
        .byte(consts::RDB_TYPE_STRING)
        .str(b"k2")
        .str(b"v")
        .finish();
    let (items, end) = parse_all(&data);
    assert_eq!(end, Ok(()));
    let keys: Vec<&Entry> = items
        .iter()
        .filter_map(|i| if let Item::Key(e) = i { Some(e) } else { None })
        .collect();
    assert_eq!(keys[0].expire_at_ms, Some(1_800_000_000_000));
    assert_eq!((keys[0].idle, keys[0].freq), (Some(99), Some(7)));
    assert_eq!(keys[0].value, Value::String(Str::Int(-1)));
    assert_eq!(
        (keys[1].expire_at_ms, keys[1].idle, keys[1].freq),
        (None, None, None)
    );
}

#[test]
fn sets_sort_by_client_bytes() {
    let mut intset = 2u32.to_le_bytes().to_vec();
    intset.extend(3u32.to_le_bytes());
    for v in [-5i16, 9, 10] {
        intset.extend(v.to_le_bytes());
    }
    let data = Rdb::new("REDIS0009")
        .byte(consts::RDB_TYPE_SET_INTSET)
        .str(b"s")
        .str(&intset)
        .finish();
    let (items, _) = parse_all(&data);
    assert_eq!(
        only_key(&items).value,
        Value::Set(vec![Str::Int(-5), Str::Int(10), Str::Int(9)])
    );
}

#[test]
fn bytes_after_the_snapshot_come_back_intact() {
    let mut data = Rdb::new("REDIS0011")
        .byte(consts::RDB_TYPE_STRING)
        .str(b"k")
        .str(b"v")
        .finish();
    let snapshot_len = data.len();
    let tail = b"0123456789012345678901234567890123456789*1\r\n$4\r\nPING\r\n";
    data.extend_from_slice(tail);
    for chunk in [1, 5, data.len()] {
        let mut parser = Parser::new();
        let mut rest = Vec::new();
        for piece in data.chunks(chunk) {
            parser.feed(piece);
            while let Ok(Status::Ready(_)) = parser.next_item() {}
            if parser.is_done() {
                rest.extend_from_slice(&parser.take_rest());
            }
        }
        assert_eq!(parser.offset(), snapshot_len as u64);
        assert_eq!(&rest[..], &tail[..], "chunk {chunk}");
    }
}

/// A huge element count is read element by element as bytes arrive (memory
/// follows the bytes, not the count); a huge byte length is refused at once.
#[test]
fn huge_declared_lengths_never_allocate() {
    for (ty, waits) in [
        (consts::RDB_TYPE_LIST, true),
        (consts::RDB_TYPE_STRING, false),
        (consts::RDB_TYPE_LIST_ZIPLIST, false),
    ] {
        let data = Rdb::new("REDIS0009")
            .byte(ty)
            .str(b"k")
            .len(1 << 60)
            .raw(b"abc")
            .0;
        let mut parser = Parser::new();
        parser.feed(&data);
        assert!(matches!(
            parser.next_item(),
            Ok(Status::Ready(Item::Header { .. }))
        ));
        if waits {
            assert!(matches!(parser.next_item(), Ok(Status::Incomplete)));
        } else {
            assert!(matches!(parser.next_item(), Err(RdbError::TooLarge { .. })));
        }
    }
}

#[test]
fn checksum_mismatch_and_errors_stick() {
    let mut data = Rdb::new("REDIS0009")
        .byte(consts::RDB_TYPE_STRING)
        .str(b"k")
        .str(b"v")
        .finish();
    let last = data.len() - 1;
    data[last] ^= 1;
    let mut parser = Parser::new();
    parser.feed(&data);
    let err = loop {
        match parser.next_item() {
            Ok(Status::Ready(_)) => {}
            other => break other,
        }
    };
    assert!(matches!(err, Err(RdbError::ChecksumMismatch { .. })));
    assert_eq!(parser.next_item().map(|_| ()), err.map(|_| ()));
}

#[test]
fn unknown_type_names_the_byte_and_offset() {
    let data = Rdb::new("REDIS0009").byte(30).str(b"k").finish();
    let (_, end) = parse_all(&data);
    assert_eq!(
        end,
        Err(RdbError::UnknownType {
            type_byte: 30,
            offset: 9
        })
    );
    let data = Rdb::new("REDIS0009").byte(0xF0).finish();
    assert_eq!(
        parse_all(&data).1,
        Err(RdbError::UnknownOpcode {
            opcode: 0xF0,
            offset: 9
        })
    );
}

#[test]
fn text_doubles_with_infinities() {
    let data = Rdb::new("REDIS0006")
        .byte(consts::RDB_TYPE_ZSET)
        .str(b"z")
        .len(3)
        .str(b"hi")
        .byte(254)
        .str(b"lo")
        .byte(255)
        .str(b"mid")
        .str(b"1.5")
        .finish();
    let (items, end) = parse_all(&data);
    assert_eq!(end, Ok(()));
    let expected = vec![
        (f64::NEG_INFINITY, raw("lo")),
        (1.5, raw("mid")),
        (f64::INFINITY, raw("hi")),
    ];
    assert_eq!(only_key(&items).value, Value::ZSet(expected));
}
