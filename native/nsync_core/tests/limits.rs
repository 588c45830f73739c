//! Lying lengths and values Redis itself refuses: a typed error at once,
//! the same whatever the chunking, never a wait that buffers without bound;
//! and what an input still arriving costs: about its bytes, whatever count
//! it claims (live heap bytes measured by this binary's allocator).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::BytesMut;
use common::{parse_chunked, End};
use nsync_core::rdb::{Parser, RdbError, Status};
use nsync_core::resp::{CommandParser, RespError};

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this binary run one at a time: those that measure live
/// bytes must not count the others'.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An input fed in reads of this size, as from a socket.
const READ: usize = 64 << 10;

/// An RDB 9 header followed by `body`.
fn snapshot(body: &[u8]) -> Vec<u8> {
    let mut data = b"REDIS0009".to_vec();
    data.extend_from_slice(body);
    data
}

/// Type 0 (string), key "k", then a value whose 64-bit length is `len`.
fn string_with_length(len: u64) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b'k', 0x81];
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(b"only a few bytes follow");
    snapshot(&body)
}

fn assert_too_large_at_every_chunking(data: &[u8]) {
    for chunk in [1, 2, 7, 64, data.len()] {
        let (_, end) = parse_chunked(data, chunk);
        assert!(
            matches!(end, End::Error(RdbError::TooLarge { .. })),
            "chunk {chunk}: expected TooLarge, got {end:?}"
        );
    }
}

/// The fuzzer's find: a length near 2^64 failed whole but waited forever
/// when fed in small chunks.
#[test]
fn fuzz_regression_toolarge_is_independent_of_chunking() {
    let _one = one_at_a_time();
    let input = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions/rdb_toolarge_depends_on_chunking.bin"),
    )
    .unwrap();
    // Fuzz input layout: byte 0's low 3 bits give k, then k chunk sizes.
    let k = usize::from(input[0] & 7);
    assert_too_large_at_every_chunking(&input[1 + k..]);
}

#[test]
fn length_near_2_pow_64_is_too_large() {
    let _one = one_at_a_time();
    assert_too_large_at_every_chunking(&string_with_length(u64::MAX - 253));
}

/// 2^40 bytes does not overflow anything: without a cap the parser would
/// answer Incomplete and buffer everything fed to it.
#[test]
fn length_of_2_pow_40_is_too_large_at_once() {
    let _one = one_at_a_time();
    assert_too_large_at_every_chunking(&string_with_length(1 << 40));
}

#[test]
fn the_cap_is_configurable() {
    let _one = one_at_a_time();
    let data = string_with_length(1000);
    let mut small = Parser::with_max_read(999);
    small.feed(&data);
    assert!(matches!(small.next_item(), Ok(Status::Ready(_)))); // header
    assert!(matches!(
        small.next_item(),
        Err(RdbError::TooLarge { len: 1000, .. })
    ));

    let mut default = Parser::new();
    default.feed(&data);
    assert!(matches!(default.next_item(), Ok(Status::Ready(_))));
    assert!(matches!(default.next_item(), Ok(Status::Incomplete)));
}

/// Redis refuses to load a NaN score; so does the parser, in both zset forms.
#[test]
fn nan_zset_score_is_corrupt() {
    let _one = one_at_a_time();
    // Type 3 (ZSET2, binary doubles): key "z", 1 member "m", score NaN.
    let mut binary = vec![0x05, 0x01, b'z', 0x01, 0x01, b'm'];
    binary.extend_from_slice(&f64::NAN.to_le_bytes());
    // Type 3 (ZSET, text doubles): 253 is Redis's code for "nan".
    let text = vec![0x03, 0x01, b'z', 0x01, 0x01, b'm', 253];
    for body in [binary, text] {
        let (_, end) = parse_chunked(&snapshot(&body), 1);
        assert!(
            matches!(end, End::Error(RdbError::Corrupt { .. })),
            "got {end:?}"
        );
    }
}

/// The bytes of `n` set members of 9 bytes each (`0x08` + 8 bytes), as a
/// snapshot writes them.
fn set_members(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 9);
    for i in 0..n {
        out.push(0x08);
        out.extend_from_slice(format!("{i:08}").as_bytes());
    }
    out
}

/// The start of a set key "s" that claims 10^9 members (type 2, 32-bit
/// length).
fn set_claiming_a_billion() -> Vec<u8> {
    let mut body = vec![0x02, 0x01, b's', 0x80];
    body.extend_from_slice(&1_000_000_000u32.to_be_bytes());
    snapshot(&body)
}

/// Feeds `data` in reads of [`READ`] bytes, parsing after each; the most
/// heap the parser held at once beyond `data`'s own copy.
fn peak_while_parsing(parser: &mut Parser, data: &[u8]) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    let mut peak = 0;
    for chunk in data.chunks(READ) {
        parser.feed(chunk);
        loop {
            match parser.next_item() {
                Ok(Status::Ready(_)) => continue,
                Ok(_) => break,
                Err(e) => panic!("{e}"),
            }
        }
        peak = peak.max(LIVE.load(Ordering::Relaxed).saturating_sub(base));
    }
    peak
}

/// A set that claims 10^9 members costs what its members took on the wire
/// (within 2x), not 40 bytes and more per member; the whole set, once
/// complete, is the same as when it comes in one piece.
#[test]
fn a_collection_still_arriving_costs_its_bytes() {
    let _one = one_at_a_time();
    let members = set_members(400_000);
    let mut data = set_claiming_a_billion();
    data.extend_from_slice(&members);
    let mut parser = Parser::new();
    let peak = peak_while_parsing(&mut parser, &data);
    println!(
        "set claiming 10^9 members, {} bytes sent: parser holds {} bytes ({:.2}x)",
        data.len(),
        peak,
        peak as f64 / data.len() as f64
    );
    assert!(
        peak <= 2 * data.len(),
        "{peak} bytes held for {}",
        data.len()
    );

    // Complete, it is the same value whatever the chunking.
    let mut whole = snapshot(&[0x02, 0x01, b's', 0x03]);
    whole.extend_from_slice(&set_members(3));
    whole.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (one, end) = parse_chunked(&whole, whole.len());
    assert_eq!(end, End::Done);
    for chunk in [1, 2, 5] {
        assert_eq!(parse_chunked(&whole, chunk), (one.clone(), End::Done));
    }
}

/// `with_max_value`: a string over the limit is refused when its length is
/// read, naming its key; a collection once its elements pass it (as soon as
/// they do, when it arrives in pieces), whatever the chunking; a value at
/// the limit is read.
#[test]
fn values_over_the_limit_are_refused() {
    let _one = one_at_a_time();
    let string = string_with_length(1000);
    let mut parser = Parser::with_max_value(999);
    parser.feed(&string);
    assert!(matches!(parser.next_item(), Ok(Status::Ready(_))));
    assert!(matches!(
        parser.next_item(),
        Err(RdbError::ValueTooLarge { ref key, len: 1000, limit: 999, .. }) if key == "k"
    ));

    let mut set = set_claiming_a_billion();
    set.extend_from_slice(&set_members(1000));
    for chunk in [1, 7, 4096, set.len()] {
        let mut parser = Parser::with_max_value(5000);
        let mut end = None;
        'feed: for piece in set.chunks(chunk) {
            parser.feed(piece);
            loop {
                match parser.next_item() {
                    Ok(Status::Ready(_)) => {}
                    Ok(_) => break,
                    Err(e) => {
                        end = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        assert!(
            matches!(end, Some(RdbError::ValueTooLarge { ref key, len, limit: 5000, .. })
                     if key == "s" && len > 5000),
            "chunk {chunk}: {end:?}"
        );
    }

    let mut exact = snapshot(&[0x02, 0x01, b's', 0x03]);
    exact.extend_from_slice(&set_members(3));
    exact.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (_, end) = parse_chunked(&exact, 1);
    assert_eq!(end, End::Done);
    let mut parser = Parser::with_max_value(27);
    parser.feed(&exact);
    while let Ok(Status::Ready(_)) = parser.next_item() {}
    assert!(parser.is_done());
}

/// A command array that claims 10^9 arguments costs what its arguments
/// took on the wire (within 2x), however small they are.
#[test]
fn a_command_still_arriving_costs_its_bytes() {
    let _one = one_at_a_time();
    let mut wire = b"*1000000000\r\n".to_vec();
    for _ in 0..1_000_000 {
        wire.extend_from_slice(b"$1\r\na\r\n");
    }
    let mut parser = CommandParser::new();
    let base = LIVE.load(Ordering::Relaxed);
    let mut buf = BytesMut::new();
    let mut peak = 0;
    for chunk in wire.chunks(READ) {
        buf.extend_from_slice(chunk);
        assert_eq!(parser.next(&mut buf), Ok(None));
        peak = peak.max(LIVE.load(Ordering::Relaxed).saturating_sub(base));
    }
    println!(
        "array claiming 10^9 elements, {} bytes sent: parser holds {} bytes ({:.2}x)",
        wire.len(),
        peak,
        peak as f64 / wire.len() as f64
    );
    assert!(
        peak <= 2 * wire.len(),
        "{peak} bytes held for {}",
        wire.len()
    );
    let mut parser = CommandParser::with_max_bytes(1000);
    assert!(matches!(
        parser.next(&mut BytesMut::from(&wire[..])),
        Err(RespError::OverLimit {
            bytes: 1001,
            limit: 1000,
            ..
        })
    ));
}
