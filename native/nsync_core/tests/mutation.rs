//! Deterministic mutation test: truncated, bit-flipped and spliced corpus
//! files must give items then a typed error, `Incomplete` or `Done`: never a
//! panic, never a large allocation.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{corpus_dir, parse_chunked, parse_with, Api};

/// Tracks the largest single allocation, so a lying length that makes the
/// parser allocate is caught even when the allocation happens to succeed.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// No single allocation may exceed this (the inputs are at most a few KB;
/// LZF may expand 90×).
const ALLOCATION_LIMIT: usize = 16 << 20;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn small_corpus_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in ["peers/librdb", "peers/rdbtools", "peers/replicator"] {
        for entry in std::fs::read_dir(corpus_dir().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rdb") {
                let data = std::fs::read(&path).unwrap();
                if data.len() <= 2048 {
                    files.push((path.display().to_string(), data));
                }
            }
        }
    }
    files.sort();
    files
}

/// Parses one case whole (owned items) and in 3-byte chunks (lent to a
/// sink); fails the test on a panic.
fn run_case(what: &str, data: &[u8]) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let whole = parse_chunked(data, data.len());
        let chunked = parse_with(Api::Sink, data, 3);
        // Compared as text: a flipped double may be NaN, which is not == itself.
        let (whole, chunked) = (format!("{whole:?}"), format!("{chunked:?}"));
        assert!(
            whole == chunked,
            "chunked parse differs:\n{whole}\n{chunked}"
        );
    }));
    assert!(result.is_ok(), "panic on {what}");
    let largest = LARGEST.swap(0, Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_LIMIT,
        "{what}: allocated {largest} bytes at once"
    );
}

#[test]
fn mutated_corpus_files_never_panic() {
    let files = small_corpus_files();
    assert!(files.len() > 50);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut cases = 0;
    for (name, data) in &files {
        for len in 0..data.len() {
            run_case(&format!("{name} truncated to {len}"), &data[..len]);
            cases += 1;
        }
        for _ in 0..200 {
            let mut mutated = data.clone();
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                let at = rng.below(mutated.len());
                mutated[at] ^= 1 << rng.below(8);
            }
            run_case(&format!("{name} with {flips} bit flips"), &mutated);
            cases += 1;
        }
        for _ in 0..20 {
            let mut mutated = data.clone();
            let at = rng.below(mutated.len());
            mutated[at] = [0x00, 0x3F, 0x40, 0x80, 0x81, 0xC3, 0xFE, 0xFF][rng.below(8)];
            run_case(&format!("{name} with a special byte at {at}"), &mutated);
            cases += 1;
        }
    }
    for _ in 0..2000 {
        let (a_name, a) = &files[rng.below(files.len())];
        let (b_name, b) = &files[rng.below(files.len())];
        let cut_a = rng.below(a.len());
        let cut_b = rng.below(b.len());
        let spliced = [&a[..cut_a], &b[cut_b..]].concat();
        run_case(
            &format!("{a_name}[..{cut_a}] + {b_name}[{cut_b}..]"),
            &spliced,
        );
        cases += 1;
    }
    println!("mutation cases: {cases}");
}
