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
    /// A string key.
    fn string(self, key: &[u8], value: &[u8]) -> Rdb {
        self.byte(consts::RDB_TYPE_STRING).str(key).str(value)
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

/// The items of a snapshot that parses to its end.
fn parse_ok(data: &[u8]) -> Vec<Item<'static>> {
    let (items, end) = parse_all(data);
    assert_eq!(end, Ok(()), "{items:?}");
    items
}

fn keys<'i>(items: &'i [Item<'static>]) -> Vec<&'i Entry<'static>> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Key(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn only_key<'i>(items: &'i [Item<'static>]) -> &'i Entry<'static> {
    let keys = keys(items);
    assert_eq!(keys.len(), 1, "{items:?}");
    keys[0]
}

fn raw(s: &str) -> Str<'_> {
    Str::Raw(Raw::Borrowed(s.as_bytes()))
}

/// The snapshot's one key is the hash `a` = `1`, `b` = `2`, its fields
/// expiring at these times.
fn assert_only_hash_ab(items: &[Item<'static>], a_expiry: Option<i64>, b_expiry: Option<i64>) {
    let expected = vec![field("a", "1", a_expiry), field("b", "2", b_expiry)];
    assert_eq!(only_key(items).value, Value::Hash(expected));
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
    let items = parse_ok(&data);
    assert_eq!(
        items[0],
        Item::Header {
            version: 80,
            valkey: true
        }
    );
    assert_only_hash_ab(&items, Some(1_800_000_000_000), None);
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
    let items = parse_ok(&data);
    assert_only_hash_ab(&items, None, Some(1_700_000_001_000));
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
    let items = parse_ok(&data);
    assert_only_hash_ab(&items, None, Some(1_700_000_000_123));
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
        .string(b"k2", b"v")
        .finish();
    let items = parse_ok(&data);
    let keys = keys(&items);
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
    let mut data = Rdb::new("REDIS0011").string(b"k", b"v").finish();
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
    let mut data = Rdb::new("REDIS0009").string(b"k", b"v").finish();
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
    let items = parse_ok(&data);
    let expected = vec![
        (f64::NEG_INFINITY, raw("lo")),
        (1.5, raw("mid")),
        (f64::INFINITY, raw("hi")),
    ];
    assert_eq!(only_key(&items).value, Value::ZSet(expected));
}

/// Redis 8.x key metadata as `rdbSaveKeyMetadata` writes it: the opcode, a
/// class count, then per class a 4-byte class spec and a module body.
fn key_meta(rdb: Rdb) -> Rdb {
    rdb.byte(consts::RDB_OPCODE_KEY_META)
        .len(2)
        .raw(&[0x4b, 0x4d, 0x54, 0x31])
        .len(consts::RDB_MODULE_OPCODE_UINT)
        .len(70_000)
        .len(consts::RDB_MODULE_OPCODE_EOF)
        .raw(&[0x4b, 0x4d, 0x54, 0x32])
        .len(consts::RDB_MODULE_OPCODE_STRING)
        .str(b"level")
        .len(consts::RDB_MODULE_OPCODE_DOUBLE)
        .raw(&1.5f64.to_le_bytes())
        .len(consts::RDB_MODULE_OPCODE_EOF)
}

#[test]
fn redis_13_key_metadata_is_skipped_and_the_key_keeps_its_expiry() {
    let data = key_meta(
        Rdb::new("REDIS0013")
            .byte(consts::RDB_OPCODE_EXPIRETIME_MS)
            .raw(&1_900_000_000_000u64.to_le_bytes()),
    )
    .string(b"k", b"v");
    let data = key_meta(data)
        .byte(consts::RDB_TYPE_SET)
        .str(b"s")
        .len(1)
        .str(b"m");
    // Fed a byte at a time too: the metadata is one unit.
    let data = data.finish();
    for chunk in [data.len(), 1] {
        let mut parser = Parser::new();
        let mut keys = Vec::new();
        for piece in data.chunks(chunk) {
            parser.feed(piece);
            while let Status::Ready(item) = parser.next_item().unwrap() {
                if let Item::Key(entry) = item {
                    keys.push(entry);
                }
            }
        }
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].expire_at_ms, Some(1_900_000_000_000));
        assert_eq!(keys[0].value, Value::String(raw("v")));
        assert_eq!(keys[1].expire_at_ms, None);
        assert_eq!(keys[1].value, Value::Set(vec![raw("m")]));
    }
}

#[test]
fn redis_13_stream_with_idmp_state() {
    let data = Rdb::new("REDIS0013")
        .byte(consts::RDB_TYPE_STREAM_LISTPACKS_4)
        .str(b"st")
        .len(0) // no nodes
        .len(0) // length
        .len(5)
        .len(1) // last id 5-1
        .len(0)
        .len(0) // first id
        .len(5)
        .len(1) // max deleted id
        .len(3) // entries added
        .len(0) // groups
        .len(100) // IDMP duration
        .len(1000) // IDMP max entries
        .len(1) // producers
        .str(b"producer-1")
        .len(2)
        .str(b"iid-a")
        .len(4)
        .len(0)
        .str(b"iid-b")
        .len(5)
        .len(1)
        .len(2) // IIDs added
        .len(1) // duplicates
        .string(b"after", b"x")
        .finish();
    let items = parse_ok(&data);
    let keys = keys(&items);
    let Value::Stream(stream) = &keys[0].value else {
        panic!("{keys:?}");
    };
    assert_eq!(stream.last_id, StreamId { ms: 5, seq: 1 });
    assert_eq!(stream.entries_added, Some(3));
    assert_eq!(keys[1].value, Value::String(raw("x")));
}

#[test]
fn valkey_slot_import_is_skipped_and_update_is_unsupported() {
    let data = Rdb::new("VALKEY080")
        .byte(consts::VALKEY_RDB_OPCODE_SLOT_IMPORT)
        .str(&[b'a'; 40])
        .len(2)
        .len(0)
        .len(100)
        .len(5000)
        .len(16383)
        .string(b"k", b"v")
        .finish();
    let items = parse_ok(&data);
    assert_eq!(only_key(&items).value, Value::String(raw("v")));

    let update = Rdb::new("VALKEY081")
        .byte(consts::VALKEY_RDB_OPCODE_UPDATE)
        .raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
        .finish();
    assert!(matches!(
        parse_all(&update).1,
        Err(RdbError::Unsupported { offset: 9, .. })
    ));
}

#[test]
fn type_and_opcode_numbers_follow_the_magic() {
    // 24 and 25 are Redis's hashes with field expiry, Valkey has no such
    // types (23 is its 9.2 path hash, unknown here); 26 is Redis's stream.
    for ty in [23, 24, 25, 26] {
        let data = Rdb::new("VALKEY081").byte(ty).str(b"k").finish();
        assert_eq!(
            parse_all(&data).1,
            Err(RdbError::UnknownType {
                type_byte: ty,
                offset: 9
            })
        );
    }
    let data = Rdb::new("REDIS0013").byte(27).str(b"k").finish();
    assert!(matches!(
        parse_all(&data).1,
        Err(RdbError::UnknownType { type_byte: 27, .. })
    ));
    // 243 is key metadata for Redis: a bad class body is corrupt, not a
    // slot import.
    let data = Rdb::new("REDIS0013")
        .byte(consts::RDB_OPCODE_KEY_META)
        .len(1)
        .raw(&[0; 4])
        .len(9)
        .finish();
    assert!(matches!(parse_all(&data).1, Err(RdbError::Corrupt { .. })));
    // Versions past what nsync knows are refused, not guessed at.
    for magic in ["REDIS0014", "VALKEY082"] {
        assert!(matches!(
            parse_all(&Rdb::new(magic).finish()).1,
            Err(RdbError::UnsupportedVersion { .. })
        ));
    }
}

/// A `DUMP` payload of `body` as the server writes it: version, CRC-64.
fn dump_payload(body: Vec<u8>, version: u16) -> Vec<u8> {
    let mut payload = body;
    payload.extend_from_slice(&version.to_le_bytes());
    let crc = ::crc::Crc::<u64>::new(&::crc::CRC_64_REDIS).checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    payload
}

#[test]
fn dump_payloads_of_redis_13_and_valkey_9() {
    let with_meta = key_meta(Rdb(Vec::new()))
        .byte(consts::RDB_TYPE_STRING)
        .str(b"hello")
        .0;
    assert_eq!(
        decode_dump(&dump_payload(with_meta, 13)),
        Ok(Value::String(raw("hello")))
    );
    let hash_2 = Rdb(Vec::new())
        .byte(consts::VALKEY_RDB_TYPE_HASH_2)
        .len(1)
        .str(b"f")
        .str(b"v")
        .raw(&1_800_000_000_000i64.to_le_bytes())
        .0;
    assert_eq!(
        decode_dump(&dump_payload(hash_2.clone(), 80)),
        Ok(Value::Hash(vec![field("f", "v", Some(1_800_000_000_000))]))
    );
    // The same bytes under a Redis version are Redis's type 22.
    assert!(decode_dump(&dump_payload(hash_2, 12)).is_err());
}

/// A quicklist whose LZF nodes decode to more than the parser's arena
/// (256 KiB), arriving in chunks (so carried over, then decoded whole):
/// the arena grows for the whole value. It was retried with the same arena
/// for ever (the need it reported was its last node's).
#[test]
fn a_carried_quicklist_bigger_than_the_arena_completes() {
    const NODES: u64 = 600;
    const PER_NODE: u64 = 100;
    let mut rdb = Rdb::new("REDIS0011")
        .byte(RDB_TYPE_LIST_QUICKLIST_2)
        .str(b"l")
        .len(NODES);
    for n in 0..NODES {
        let entries: Vec<Vec<u8>> = (0..PER_NODE)
            .map(|i| lp_str(format!("e{:06}", n * PER_NODE + i).as_bytes()))
            .collect();
        let plain = listpack(&entries);
        // LZF of literal runs only (32 bytes at most each): valid, if larger.
        let lzf: Vec<u8> = plain
            .chunks(32)
            .flat_map(|run| [&[(run.len() - 1) as u8], run].concat())
            .collect();
        rdb = rdb
            .len(2) // a packed node
            .byte(0xC3) // an LZF string
            .len(lzf.len() as u64)
            .len(plain.len() as u64)
            .raw(&lzf);
    }
    let data = rdb.finish();
    let (done, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut parser = Parser::new();
        let mut elements = None;
        for piece in data.chunks(4096) {
            parser.feed(piece);
            while let Ok(Status::Ready(item)) = parser.next_item() {
                if let Item::Key(Entry {
                    value: Value::List(items),
                    ..
                }) = item
                {
                    elements = Some(items.len() as u64);
                }
            }
        }
        let _ = done.send((elements, parser.is_done()));
    });
    let parsed = got.recv_timeout(std::time::Duration::from_secs(60));
    assert_eq!(parsed, Ok((Some(NODES * PER_NODE), true)));
}
