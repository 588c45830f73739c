//! Coverage-guided fuzzing of the streaming RDB parser.
//!
//! Input layout: byte 0 = k (low 3 bits), then k chunk-size bytes (each
//! gives a chunk of 1..=256 bytes, cycled), then the snapshot bytes. k = 0
//! feeds the snapshot in one piece. `bench/fuzz.sh` seeds the corpus with
//! every corpus RDB behind such a prefix.
//!
//! Checks: no panic, no hang, bounded memory (libFuzzer's -rss_limit_mb),
//! and the chunked parse gives exactly the items and outcome of the parse
//! of the whole input in one feed (the parser's streaming contract). The
//! two are compared through their Debug text: `Item`'s PartialEq says a
//! NaN zset score differs from itself, Debug prints both as `NaN` (and
//! still tells 0.0 from -0.0).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsync_core::rdb::{Item, Parser, RdbError, Status};

#[derive(Debug, PartialEq)]
enum End {
    Done,
    Incomplete,
    Err(RdbError),
}

/// Pulls every item available; `None` when the parser wants more bytes.
fn drain(p: &mut Parser, items: &mut Vec<Item>) -> Option<End> {
    loop {
        match p.next_item() {
            Ok(Status::Ready(item)) => items.push(item),
            Ok(Status::Incomplete) => return None,
            Ok(Status::Done) => return Some(End::Done),
            Err(e) => {
                // A failed parser stays failed.
                assert_eq!(p.next_item().err(), Some(e.clone()), "parser did not stay failed");
                return Some(End::Err(e));
            }
        }
    }
}

fn parse(data: &[u8], sizes: &[usize]) -> (Vec<Item>, End) {
    let mut p = Parser::new();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = if sizes.is_empty() { data.len() } else { sizes[i % sizes.len()] };
        i += 1;
        let end = (pos + n).min(data.len());
        p.feed(&data[pos..end]);
        pos = end;
        if let Some(end) = drain(&mut p, &mut items) {
            if end == End::Done {
                assert!(p.is_done());
                assert!(p.offset() <= data.len() as u64);
            }
            return (items, end);
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

    let whole = parse(data, &[]);
    if !sizes.is_empty() {
        let chunked = parse(data, &sizes);
        // Debug text only when PartialEq disagrees (it is slow on big inputs).
        if whole == chunked {
            return;
        }
        let (w, c) = (format!("{whole:?}"), format!("{chunked:?}"));
        assert!(w == c, "chunked parse differs from whole parse (sizes {sizes:?})\nwhole:   {w}\nchunked: {c}");
    }
});
