//! Coverage-guided fuzzing of the RESP command-stream parser and the reply
//! parser. Input layout as in rdb_parse: byte 0 = k (low 3 bits), k
//! chunk-size bytes (1..=256 each, cycled), then the stream bytes.
//!
//! Checks: no panic or hang; chunked parsing gives the same commands and
//! the same error as parsing the whole input at once; every command's
//! wire_len is positive and the lengths add up to no more than was fed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nsync_core::resp::{parse_reply, Command, CommandParser, RespError};

fn parse(data: &[u8], sizes: &[usize]) -> (Vec<Command>, Option<RespError>) {
    let mut p = CommandParser::new();
    let mut buf = BytesMut::new();
    let mut cmds = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = if sizes.is_empty() { data.len() } else { sizes[i % sizes.len()] };
        i += 1;
        let end = (pos + n).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        loop {
            match p.next(&mut buf) {
                Ok(Some(c)) => {
                    assert!(c.wire_len > 0, "command with zero wire length");
                    cmds.push(c)
                }
                Ok(None) => break,
                Err(e) => return (cmds, Some(e)),
            }
        }
    }
    let wire: usize = cmds.iter().map(|c| c.wire_len).sum();
    assert!(wire + buf.len() <= data.len(), "wire lengths exceed the input");
    (cmds, None)
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
        assert_eq!(whole, chunked, "chunked parse differs from whole parse (sizes {sizes:?})");
    }
    if let Ok(Some((_, len))) = parse_reply(data) {
        assert!(len > 0 && len <= data.len());
    }
});
