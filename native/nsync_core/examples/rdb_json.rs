//! Prints an RDB file's contents as JSON in the corpus format
//! (`../shared/rdb-corpus/README.md`).
//!
//! `cargo run --release --example rdb_json -- FILE [--now-ms N]`: with
//! `--now-ms`, keys and hash fields that expired before N are left out, as a
//! server loading the file at N would.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::process::ExitCode;

use nsync_core::rdb::{Parser, Status};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut now_ms = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--now-ms" => now_ms = args.next().and_then(|n| n.parse::<i64>().ok()),
            _ => file = Some(arg),
        }
    }
    let Some(file) = file else {
        eprintln!("usage: rdb_json FILE [--now-ms N]");
        return ExitCode::from(2);
    };
    let mut input = match std::fs::File::open(&file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut parser = Parser::new();
    let mut items = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match parser.next_item() {
            Ok(Status::Ready(item)) => items.push(item),
            Ok(Status::Done) => break,
            Ok(Status::Incomplete) => match input.read(&mut buf) {
                Ok(0) => {
                    eprintln!("{file}: truncated snapshot (at offset {})", parser.offset());
                    return ExitCode::FAILURE;
                }
                Ok(n) => parser.feed(&buf[..n]),
                Err(e) => {
                    eprintln!("{file}: {e}");
                    return ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("{file}: {e} ({})", e.kind());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}", common::to_json(&items, now_ms));
    ExitCode::SUCCESS
}
