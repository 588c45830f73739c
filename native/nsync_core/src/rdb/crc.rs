//! The CRC-64 trailer (CRC-64/Redis: Jones polynomial, reflected, init 0,
//! no final xor), computed incrementally over the consumed bytes.
//!
//! On x86_64 CPUs with PCLMULQDQ the bulk is folded with carry-less
//! multiplication ([`clmul`]); elsewhere, and for short inputs, tables.
//!
//! The table code: a single slice-by-8 (or slice-by-16) chain is
//! bound by the latency of its table lookups, so long runs are cut into
//! blocks of [`LANES`] lanes of [`LANE`] bytes, hashed side by side as
//! independent chains and then combined. The CRC has no init or final xor,
//! so it is linear: `crc(A ‖ B) = shift(crc(A), |B|) ^ crc(B)`, where
//! `shift` runs a state through `|B|` zero bytes, a fixed linear map for
//! the fixed lane length, applied with nibble tables.

/// The Jones polynomial 0xad93d23594c935a9, bit-reversed.
const POLY: u64 = 0x95ac_9329_ac4b_c9b5;

/// Independent chains hashed side by side.
const LANES: usize = 4;
/// Bytes per lane in one block.
const LANE: usize = 1024;
const BLOCK: usize = LANES * LANE;

/// Slice-by-8 tables: `TABLES[k][b]` is the CRC of byte `b` followed by `k`
/// zero bytes.
static TABLES: [[u64; 256]; 8] = slice_tables();

/// `SHIFT[j][v]`: the state with nibble `j` equal to `v` (others zero) run
/// through `LANE` zero bytes.
static SHIFT: [[u64; 16]; 16] = shift_tables(LANE);

const fn slice_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = t[0][(prev & 0xff) as usize] ^ (prev >> 8);
            i += 1;
        }
        k += 1;
    }
    t
}

/// The state `s` run through `n` zero bytes, byte at a time.
const fn zeros(mut s: u64, n: usize, t0: &[u64; 256]) -> u64 {
    let mut i = 0;
    while i < n {
        s = t0[(s & 0xff) as usize] ^ (s >> 8);
        i += 1;
    }
    s
}

const fn shift_tables(n: usize) -> [[u64; 16]; 16] {
    let t = slice_tables();
    // The images of the 64 unit vectors; every entry is a xor of them.
    let mut basis = [0u64; 64];
    let mut b = 0;
    while b < 64 {
        basis[b] = zeros(1u64 << b, n, &t[0]);
        b += 1;
    }
    let mut out = [[0u64; 16]; 16];
    let mut j = 0;
    while j < 16 {
        let mut v = 0;
        while v < 16 {
            let mut acc = 0u64;
            let mut bit = 0;
            while bit < 4 {
                if v >> bit & 1 == 1 {
                    acc ^= basis[4 * j + bit];
                }
                bit += 1;
            }
            out[j][v] = acc;
            v += 1;
        }
        j += 1;
    }
    out
}

#[inline(always)]
fn step8(crc: u64, chunk: &[u8]) -> u64 {
    let x = crc ^ <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
    let t = &TABLES;
    t[7][(x & 0xff) as usize]
        ^ t[6][(x >> 8 & 0xff) as usize]
        ^ t[5][(x >> 16 & 0xff) as usize]
        ^ t[4][(x >> 24 & 0xff) as usize]
        ^ t[3][(x >> 32 & 0xff) as usize]
        ^ t[2][(x >> 40 & 0xff) as usize]
        ^ t[1][(x >> 48 & 0xff) as usize]
        ^ t[0][(x >> 56) as usize]
}

/// `crc` run through `LANE` zero bytes.
#[inline(always)]
fn shift_lane(crc: u64) -> u64 {
    let mut acc = 0;
    for (j, table) in SHIFT.iter().enumerate() {
        acc ^= table[(crc >> (4 * j) & 0xf) as usize];
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod clmul;
#[cfg(target_arch = "x86_64")]
use clmul::update;
#[cfg(not(target_arch = "x86_64"))]
use table_update as update;

/// Continues the CRC `crc` over `data` with the tables.
fn table_update(mut crc: u64, data: &[u8]) -> u64 {
    let mut blocks = data.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut cs = [0u64; LANES];
        cs[0] = crc;
        let mut i = 0;
        while i + 8 <= LANE {
            for (l, c) in cs.iter_mut().enumerate() {
                let at = l * LANE + i;
                if let Some(w) = block.get(at..at + 8) {
                    *c = step8(*c, w);
                }
            }
            i += 8;
        }
        crc = cs[0];
        for &c in &cs[1..] {
            crc = shift_lane(crc) ^ c;
        }
    }
    let tail = blocks.remainder();
    let mut words = tail.chunks_exact(8);
    for w in &mut words {
        crc = step8(crc, w);
    }
    for &byte in words.remainder() {
        crc = TABLES[0][((crc ^ u64::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// A running CRC-64/Redis, the checksum of RDB files and DUMP payloads.
#[derive(Clone, Default)]
pub struct Crc64(u64);

impl Crc64 {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = update(self.0, bytes);
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REFERENCE: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

    #[test]
    fn check_value_and_chunking() {
        let mut crc = Crc64::default();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.value(), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn shift_is_lane_of_zeros() {
        for s in [1u64, 0x8000_0000_0000_0000, 0xdead_beef_0123_4567, u64::MAX] {
            assert_eq!(shift_lane(s), table_update(s, &[0u8; LANE]));
            assert_eq!(shift_lane(s), zeros(s, LANE, &TABLES[0]));
        }
    }

    /// Every length around the block and word boundaries, at every split,
    /// against the `crc` crate.
    #[test]
    fn matches_reference_at_any_length_and_split() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..3 * BLOCK + 37)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let lens = [
            0,
            1,
            7,
            8,
            9,
            63,
            LANE,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK + 5,
            data.len(),
        ];
        for &len in &lens {
            let want = REFERENCE.checksum(&data[..len]);
            assert_eq!(table_update(0, &data[..len]), want, "len {len}");
            assert_eq!(update(0, &data[..len]), want, "len {len}");
            for split in [0, 1, 5, 8, LANE + 3, BLOCK, len / 2, len] {
                let split = split.min(len);
                let mut crc = Crc64::default();
                crc.update(&data[..split]);
                crc.update(&data[split..len]);
                assert_eq!(crc.value(), want, "len {len} split {split}");
            }
        }
    }
}
