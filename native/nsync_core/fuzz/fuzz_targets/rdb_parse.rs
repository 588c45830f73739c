//! Coverage-guided fuzzing of the streaming RDB parser.
//!
//! Input layout: byte 0 = k (low 3 bits), then k chunk-size bytes (each
//! gives a chunk of 1..=256 bytes, cycled), then the snapshot bytes. k = 0
//! feeds the snapshot in one piece. `bench/fuzz.sh` seeds the corpus with
//! every corpus RDB behind such a prefix.
//!
//! Checks: no panic, no hang, bounded memory (libFuzzer's -rss_limit_mb),
//! and the parser's streaming contract: the input fed in chunks (handed
//! over with `feed_bytes`, items lent to a `parse` sink) gives exactly the
//! items and outcome of the input fed in one piece (copied with `feed`,
//! items pulled owned with `next_item`). The two are compared through their
//! Debug text when `Item`'s PartialEq disagrees: it says a NaN zset score
//! differs from itself, Debug prints both as `NaN` (and still tells 0.0
//! from -0.0).
#![no_main]

use std::ops::ControlFlow;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nsync_core::rdb::{Item, Outcome, Parser, RdbError, Status};

#[derive(Debug, PartialEq)]
enum End {
    Done,
    Incomplete,
    Err(RdbError),
}

/// Whole input: one `feed`, then `next_item` until it stops.
fn parse_whole(data: &[u8]) -> (Vec<Item<'static>>, End) {
    let mut p = Parser::new();
    p.feed(data);
    let mut items = Vec::new();
    loop {
        match p.next_item() {
            Ok(Status::Ready(item)) => items.push(item),
            Ok(Status::Incomplete) => return (items, End::Incomplete),
            Ok(Status::Done) => {
                assert!(p.is_done());
                assert!(p.offset() <= data.len() as u64);
                return (items, End::Done);
            }
            Err(e) => {
                // A failed parser stays failed.
                assert_eq!(p.next_item().err(), Some(e.clone()), "parser did not stay failed");
                return (items, End::Err(e));
            }
        }
    }
}

/// Chunks of the given sizes (cycled), each handed over and parsed.
fn parse_chunked(data: &[u8], sizes: &[usize]) -> (Vec<Item<'static>>, End) {
    let mut p = Parser::new();
    let mut items = Vec::new();
    let mut pos = 0;
    for &n in sizes.iter().cycle() {
        if pos >= data.len() {
            break;
        }
        let end = pos.saturating_add(n).min(data.len());
        p.feed_bytes(Bytes::copy_from_slice(&data[pos..end]));
        pos = end;
        let outcome = p.parse(|item| {
            items.push(item.into_owned());
            ControlFlow::Continue(())
        });
        match outcome {
            Ok(Outcome::Incomplete) => {}
            Ok(Outcome::Done) => return (items, End::Done),
            Ok(Outcome::Paused) => unreachable!("the sink never breaks"),
            Err(e) => return (items, End::Err(e)),
        }
    }
    (items, End::Incomplete)
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, rest)) = input.split_first() else {
        return;
    };
    let k = ((sel & 7) as usize).min(rest.len());
    let sizes: Vec<usize> = rest[..k].iter().map(|&b| b as usize + 1).collect();
    let data = &rest[k..];

    let whole = parse_whole(data);
    let chunked = parse_chunked(data, if sizes.is_empty() { &[usize::MAX] } else { &sizes });
    // Debug text only when PartialEq disagrees (it is slow on big inputs).
    if whole == chunked {
        return;
    }
    let (w, c) = (format!("{whole:?}"), format!("{chunked:?}"));
    assert!(w == c, "chunked parse differs from whole parse (sizes {sizes:?})\nwhole:   {w}\nchunked: {c}");
});
