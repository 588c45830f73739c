//! Parse-only benchmark: nsync_core's streaming RDB parser beside the `rdb`
//! crate (v0.4, crates.io) on the same files, in the same run.
//!
//! ```text
//! cargo run --release -p nsync_core --example parse_bench -- [OPTIONS] FILE...
//!   --runs N         timed runs per parser and file (default 5)
//!   --chunk BYTES    read size (default 65536)
//!   --parsers LIST   comma-separated subset of read,crc,nsync,rdb (default all)
//! ```
//!
//! nsync reads each chunk into a buffer of its own and hands it over
//! (`Parser::feed_bytes`), then `Parser::parse` lends every record to a
//! closure. Every run is a fresh child process (this binary re-executed with
//! `--child PARSER FILE`), so each run's peak RSS (VmHWM) is its own and a
//! run cannot inherit another's heap. The child times only the parse, reads
//! the file as a stream (`--chunk` bytes at a time, never the whole file),
//! and "touches" every key and element (sums their lengths) so neither
//! parser can skip work. Runs of the parsers are interleaved
//! (nsync, rdb, nsync, rdb, ...) so machine noise hits both alike; the file
//! is read once before timing so both parse from the page cache.
//!
//! Baselines: `read` does the same 64 KiB reads with no parsing; `crc` adds
//! only nsync_core's CRC-64 over them: the part of nsync's time that goes to
//! verifying the checksum, which the `rdb` crate does not do.

use std::cell::Cell;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::process::{exit, Command};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use nsync_core::rdb::{Crc64, Item, Outcome, Parser, Str, Value};

const DEFAULT_CHUNK: usize = 64 * 1024;
const USAGE: &str =
    "usage: parse_bench [--runs N] [--chunk BYTES] [--parsers read,crc,nsync,rdb] FILE...";

/// What one child run reports.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    keys: u64,
    touched: u64,
    hwm_kb: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let mut runs = 5usize;
    let mut chunk = DEFAULT_CHUNK;
    let mut parsers: Vec<String> = vec!["read".into(), "crc".into(), "nsync".into(), "rdb".into()];
    let mut files = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("--runs N"))
            }
            "--chunk" => {
                chunk = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("--chunk BYTES"))
            }
            "--parsers" => {
                parsers = it
                    .next()
                    .unwrap_or_else(|| fail("--parsers LIST"))
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return;
            }
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        fail(USAGE);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));

    println!(
        "parse_bench: {} runs per parser, {} byte reads, each run a fresh process; times are medians (min-max)\n",
        runs, chunk
    );
    println!("| file | MB | parser | keys | median s (min-max) | MB/s | keys/s | peak RSS MiB | nsync/rdb throughput (per-run min-max) |");
    println!("|---|---:|---|---:|---|---:|---:|---:|---|");
    for file in &files {
        let size = std::fs::metadata(file)
            .map(|m| m.len())
            .unwrap_or_else(|e| fail(&format!("{file}: {e}")));
        warm(file);
        let mut results: Vec<(String, Vec<Run>, Option<String>)> = parsers
            .iter()
            .map(|p| (p.clone(), Vec::new(), None))
            .collect();
        for _ in 0..runs {
            for (name, rs, err) in results.iter_mut() {
                if err.is_some() {
                    continue;
                }
                match run_child(&exe, name, file, chunk) {
                    Ok(r) => rs.push(r),
                    Err(e) => *err = Some(e),
                }
            }
        }
        let mb = size as f64 / 1e6;
        let short = std::path::Path::new(file)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.clone());
        let ratio = ratio_text(&results);
        for (name, rs, err) in &results {
            if let Some(e) = err {
                println!("| {short} | {mb:.1} | {name} | - | FAILED: {e} | - | - | - | - |");
                continue;
            }
            let mut t: Vec<f64> = rs.iter().map(|r| r.secs).collect();
            t.sort_by(|a, b| a.total_cmp(b));
            let med = median(&t);
            let keys = rs.first().map(|r| r.keys).unwrap_or(0);
            let hwm = rs.iter().map(|r| r.hwm_kb).max().unwrap_or(0);
            let touched = rs.first().map(|r| r.touched).unwrap_or(0);
            black_box(touched);
            let keys_s = if name == "read" || name == "crc" {
                "-".to_string()
            } else {
                format!("{:.2}M", keys as f64 / med / 1e6)
            };
            let keys_c = if name == "read" || name == "crc" {
                "-".to_string()
            } else {
                keys.to_string()
            };
            println!(
                "| {short} | {mb:.1} | {name} | {keys_c} | {med:.4} ({:.4}-{:.4}) | {:.0} | {keys_s} | {:.1} | {} |",
                t[0],
                t[t.len() - 1],
                mb / med,
                hwm as f64 / 1024.0,
                if name == "nsync" { ratio.as_str() } else { "" },
            );
        }
    }
}

/// Throughput ratio nsync/rdb: of the medians, then the per-run range
/// (run i of nsync against run i of rdb, which ran right after it).
fn ratio_text(results: &[(String, Vec<Run>, Option<String>)]) -> String {
    let get = |n: &str| {
        results
            .iter()
            .find(|(name, rs, err)| name == n && err.is_none() && !rs.is_empty())
            .map(|(_, rs, _)| rs)
    };
    let (Some(ns), Some(rd)) = (get("nsync"), get("rdb")) else {
        return "-".into();
    };
    if ns[0].keys != rd[0].keys {
        eprintln!(
            "warning: key counts differ: nsync {} rdb {}",
            ns[0].keys, rd[0].keys
        );
    }
    let mut a: Vec<f64> = ns.iter().map(|r| r.secs).collect();
    let mut b: Vec<f64> = rd.iter().map(|r| r.secs).collect();
    let per: Vec<f64> = a.iter().zip(&b).map(|(x, y)| y / x).collect();
    a.sort_by(|x, y| x.total_cmp(y));
    b.sort_by(|x, y| x.total_cmp(y));
    let lo = per.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = per.iter().cloned().fold(0.0, f64::max);
    format!("**{:.2}x** ({lo:.2}-{hi:.2})", median(&b) / median(&a))
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Reads the file once so every timed run starts from the page cache.
fn warm(path: &str) {
    let mut f = File::open(path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let mut buf = vec![0u8; 1 << 20];
    while f
        .read(&mut buf)
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")))
        > 0
    {}
}

/// Says what is wrong and exits (status 2).
fn fail(msg: &str) -> ! {
    eprintln!("parse_bench: {msg}");
    exit(2)
}

fn run_child(exe: &std::path::Path, parser: &str, file: &str, chunk: usize) -> Result<Run, String> {
    let out = Command::new(exe)
        .args(["--child", parser, file, &chunk.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr.lines().last().unwrap_or("").to_string();
        return Err(format!("{} {}", out.status, msg));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| "no RESULT line".to_string())?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let p = |i: usize| f.get(i).ok_or("short RESULT line".to_string());
    Ok(Run {
        secs: p(1)?.parse().map_err(|_| "bad secs")?,
        keys: p(2)?.parse().map_err(|_| "bad keys")?,
        touched: p(3)?.parse().map_err(|_| "bad touched")?,
        hwm_kb: p(4)?.parse().map_err(|_| "bad hwm")?,
    })
}

// ------------------------------------------------------------------ child

fn child(args: &[String]) {
    let (parser, file) = match args {
        [p, f, ..] => (p.as_str(), f.as_str()),
        _ => {
            eprintln!("--child PARSER FILE [CHUNK]");
            exit(2)
        }
    };
    let chunk = args
        .get(2)
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CHUNK);
    let t = Instant::now();
    let res = match parser {
        "read" => read_only(file, chunk),
        "crc" => crc_only(file, chunk),
        "nsync" => parse_nsync(file, chunk),
        "rdb" => parse_rdb(file, chunk),
        other => Err(format!("unknown parser {other}")),
    };
    let secs = t.elapsed().as_secs_f64();
    match res {
        Ok((keys, touched)) => {
            println!("RESULT {secs:.6} {keys} {touched} {}", vm_hwm_kb());
        }
        Err(e) => {
            eprintln!("{parser} on {file}: {e}");
            exit(1);
        }
    }
}

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn read_only(path: &str, chunk: usize) -> Result<(u64, u64), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += black_box(&buf[..n]).len() as u64;
    }
    Ok((0, total))
}

fn crc_only(path: &str, chunk: usize) -> Result<(u64, u64), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; chunk];
    let mut crc = Crc64::default();
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
    }
    Ok((0, black_box(crc.value())))
}

fn str_len(s: &Str) -> u64 {
    match s {
        Str::Raw(b) => b.len() as u64,
        // What a consumer must do for an integer-encoded string: its text.
        Str::Int(_) => s.len() as u64,
    }
}

fn value_len(v: &Value) -> u64 {
    match v {
        Value::String(s) => str_len(s),
        Value::List(l) | Value::Set(l) => l.iter().map(str_len).sum(),
        Value::ZSet(z) => z
            .iter()
            .map(|(score, m)| str_len(m) + (*score != 0.0) as u64)
            .sum(),
        Value::Hash(h) => h
            .iter()
            .map(|f| str_len(&f.field) + str_len(&f.value))
            .sum(),
        Value::Stream(s) => s
            .entries
            .iter()
            .map(|e| e.fields.iter().map(str_len).sum::<u64>())
            .sum(),
        Value::Module { raw, .. } => raw.len() as u64,
    }
}

fn parse_nsync(path: &str, chunk: usize) -> Result<(u64, u64), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut p = Parser::new();
    let (mut keys, mut touched) = (0u64, 0u64);
    loop {
        // Each read lands in a buffer of its own, handed over to the parser.
        let mut buf = vec![0u8; chunk];
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        p.feed_bytes(Bytes::from(buf));
        let outcome = p
            .parse(|item| {
                match item {
                    Item::Key(e) => {
                        keys += 1;
                        touched += e.key.len() as u64 + value_len(&e.value);
                    }
                    item => {
                        black_box(item);
                    }
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())?;
        if outcome == Outcome::Done {
            break;
        }
    }
    if !p.is_done() {
        return Err(format!(
            "input ended before the snapshot did (parser at offset {})",
            p.offset()
        ));
    }
    Ok((keys, black_box(touched)))
}

/// An `rdb` crate formatter that only touches the data (sums lengths).
struct Touch {
    keys: Rc<Cell<u64>>,
    touched: Rc<Cell<u64>>,
}

impl rdb::Formatter for Touch {
    fn format(&mut self, value: &rdb::RdbValue) -> std::io::Result<()> {
        use rdb::RdbValue as V;
        let n: u64 = match value {
            V::String { key, value, .. } => (key.len() + value.len()) as u64,
            V::Hash { key, values, .. } => {
                key.len() as u64
                    + values
                        .iter()
                        .map(|(k, v)| (k.len() + v.len()) as u64)
                        .sum::<u64>()
            }
            V::Set {
                key, members: l, ..
            }
            | V::List { key, values: l, .. } => {
                key.len() as u64 + l.iter().map(|m| m.len() as u64).sum::<u64>()
            }
            V::SortedSet { key, values, .. } => {
                key.len() as u64
                    + values
                        .iter()
                        .map(|(score, m)| m.len() as u64 + (*score != 0.0) as u64)
                        .sum::<u64>()
            }
            _ => return Ok(()),
        };
        self.keys.set(self.keys.get() + 1);
        self.touched.set(self.touched.get() + n);
        Ok(())
    }
}

fn parse_rdb(path: &str, chunk: usize) -> Result<(u64, u64), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let keys = Rc::new(Cell::new(0));
    let touched = Rc::new(Cell::new(0));
    let fmt = Touch {
        keys: keys.clone(),
        touched: touched.clone(),
    };
    rdb::parse(
        BufReader::with_capacity(chunk, f),
        fmt,
        rdb::filter::Simple::new(),
    )
    .map_err(|e| e.to_string())?;
    Ok((keys.get(), black_box(touched.get())))
}
