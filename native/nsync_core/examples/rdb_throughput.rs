//! Parse throughput on a file held in memory, fed in 64 KiB chunks as a
//! socket would deliver it: `cargo run --release --example rdb_throughput -- FILE`.

use std::time::Instant;

use nsync_core::rdb::{Item, Parser, Status};

fn main() {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: rdb_throughput FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(&file).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(1);
    });
    for _ in 0..3 {
        let start = Instant::now();
        let mut parser = Parser::new();
        let mut keys = 0u64;
        'feed: for chunk in data.chunks(64 << 10) {
            parser.feed(chunk);
            loop {
                match parser.next_item() {
                    Ok(Status::Ready(Item::Key(_))) => keys += 1,
                    Ok(Status::Ready(_)) => {}
                    Ok(Status::Incomplete) => break,
                    Ok(Status::Done) => break 'feed,
                    Err(e) => {
                        eprintln!("{file}: {e}");
                        std::process::exit(1);
                    }
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
