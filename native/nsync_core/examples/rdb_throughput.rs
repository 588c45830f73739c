//! Parse throughput on a file held in memory, handed to the parser in
//! 64 KiB chunks as a socket would deliver them (`feed_bytes`, no copy),
//! every record lent to a closure that counts keys:
//! `cargo run --release --example rdb_throughput -- FILE [ROUNDS]`.

use std::ops::ControlFlow;
use std::time::Instant;

use bytes::Bytes;
use nsync_core::rdb::{Item, Outcome, Parser};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: rdb_throughput FILE [ROUNDS]");
        std::process::exit(2);
    };
    let rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let data = Bytes::from(std::fs::read(&file).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(1);
    }));
    for _ in 0..rounds {
        let start = Instant::now();
        let mut parser = Parser::new();
        let mut keys = 0u64;
        for at in (0..data.len()).step_by(64 << 10) {
            parser.feed_bytes(data.slice(at..data.len().min(at + (64 << 10))));
            let outcome = parser.parse(|item| {
                keys += matches!(item, Item::Key(_)) as u64;
                ControlFlow::Continue(())
            });
            match outcome {
                Ok(Outcome::Done) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{file}: {e}");
                    std::process::exit(1);
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:.0} MB/s, {:.0} keys/s ({} keys, {} bytes, {:.3} s)",
            data.len() as f64 / secs / 1e6,
            keys as f64 / secs,
            keys,
            data.len(),
            secs
        );
    }
}
