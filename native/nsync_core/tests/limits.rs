//! Lying lengths and values Redis itself refuses: a typed error at once,
//! the same whatever the chunking, never a wait that buffers without bound.

mod common;

use common::{parse_chunked, End};
use nsync_core::rdb::{Parser, RdbError, Status};

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
    assert_too_large_at_every_chunking(&string_with_length(u64::MAX - 253));
}

/// 2^40 bytes does not overflow anything: without a cap the parser would
/// answer Incomplete and buffer everything fed to it.
#[test]
fn length_of_2_pow_40_is_too_large_at_once() {
    assert_too_large_at_every_chunking(&string_with_length(1 << 40));
}

#[test]
fn the_cap_is_configurable() {
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
