//! CRC-64/Redis folded with carry-less multiplication (PCLMULQDQ), after
//! Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ".
//!
//! Reflected domain: bit j of a 16-byte little-endian block is the
//! coefficient of x^(127-j), so its low lane is the high-degree half. Eight
//! 128-bit accumulators hold, modulo P, the data read so far; moving one
//! accumulator d bits forward multiplies its low lane by x^(d+64) and its
//! high lane by x^d. A carry-less product of two reflected operands comes
//! out multiplied by x, hence the constants x^(d+63) and x^(d-1) mod P.
//! The last 128-bit remainder is finished with the table: CRC(X) = X·x^64
//! mod P is exactly the table CRC of X's 16 bytes.

use std::arch::x86_64::{
    __m128i, _mm_clmulepi64_si128, _mm_loadu_si128, _mm_set_epi64x, _mm_storeu_si128, _mm_xor_si128,
};

use super::{table_update, POLY};

/// Bytes folded per round: eight 16-byte lanes.
const ROUND: usize = 128;
/// Shorter inputs go to the table: the fold's setup would not pay off.
const MIN_LEN: usize = 2 * ROUND;

/// x^n mod P, reflected (bit 63 is x^0): n steps of the bitwise CRC.
const fn x_pow_mod(n: u32) -> u64 {
    let mut r = 1u64 << 63;
    let mut i = 0;
    while i < n {
        r = if r & 1 == 1 { (r >> 1) ^ POLY } else { r >> 1 };
        i += 1;
    }
    r
}

/// The pair of constants that moves an accumulator `d` bits forward:
/// (multiplier of the low lane, of the high lane).
const fn fold_by(d: u32) -> (u64, u64) {
    (x_pow_mod(d + 63), x_pow_mod(d - 1))
}

/// One round: each accumulator moves 8 × 128 bits forward.
const FOLD_ROUND: (u64, u64) = fold_by(8 * 128);
/// Folding accumulator i (of 8) into the last one: 128 × (7 - i) bits.
const FOLD_INTO_LAST: [(u64, u64); 7] = [
    fold_by(896),
    fold_by(768),
    fold_by(640),
    fold_by(512),
    fold_by(384),
    fold_by(256),
    fold_by(128),
];

/// Continues `crc` over `data` with PCLMULQDQ when the CPU has it.
pub(super) fn update(crc: u64, data: &[u8]) -> u64 {
    if data.len() < MIN_LEN || !std::arch::is_x86_feature_detected!("pclmulqdq") {
        return table_update(crc, data);
    }
    let (rounds, tail) = data.split_at(data.len() - data.len() % ROUND);
    // SAFETY: the CPU supports PCLMULQDQ (detected just above); SSE2 is
    // part of x86_64.
    let remainder = unsafe { fold(crc, rounds) };
    table_update(table_update(0, &remainder), tail)
}

/// Folds whole rounds (at least one) into a 128-bit remainder congruent to
/// `crc`·x^(8·len - 64) + data, as 16 little-endian bytes.
#[target_feature(enable = "pclmulqdq")]
fn fold(crc: u64, rounds: &[u8]) -> [u8; 16] {
    let mut chunks = rounds.chunks_exact(ROUND);
    let mut acc = [_mm_set_epi64x(0, 0); 8];
    if let Some(first) = chunks.next() {
        acc = load_round(first);
    }
    // The running CRC is the highest-degree part of the first block.
    acc[0] = _mm_xor_si128(acc[0], _mm_set_epi64x(0, crc as i64));
    let round = constants(FOLD_ROUND);
    for chunk in chunks {
        let next = load_round(chunk);
        for (a, n) in acc.iter_mut().zip(next) {
            *a = _mm_xor_si128(fold16(*a, round), n);
        }
    }
    let mut last = acc[7];
    for (a, k) in acc.iter().zip(FOLD_INTO_LAST) {
        last = _mm_xor_si128(last, fold16(*a, constants(k)));
    }
    let mut out = [0u8; 16];
    // SAFETY: `out` has 16 bytes; unaligned stores are allowed.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), last) };
    out
}

#[target_feature(enable = "pclmulqdq")]
fn constants((low, high): (u64, u64)) -> __m128i {
    _mm_set_epi64x(high as i64, low as i64)
}

/// `a` moved forward by the distance the constants `k` stand for.
#[target_feature(enable = "pclmulqdq")]
fn fold16(a: __m128i, k: __m128i) -> __m128i {
    _mm_xor_si128(
        _mm_clmulepi64_si128(a, k, 0x00),
        _mm_clmulepi64_si128(a, k, 0x11),
    )
}

#[target_feature(enable = "pclmulqdq")]
fn load_round(chunk: &[u8]) -> [__m128i; 8] {
    let mut out = [_mm_set_epi64x(0, 0); 8];
    for (slot, block) in out.iter_mut().zip(chunk.chunks_exact(16)) {
        // SAFETY: `block` has 16 bytes; unaligned loads are allowed.
        *slot = unsafe { _mm_loadu_si128(block.as_ptr().cast()) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    /// x^(8k + 71) mod P is the table CRC of a one followed by k zero
    /// bytes (the message x^(8k+7), times x^64): every constant is checked
    /// against the table code independently of `x_pow_mod`.
    #[test]
    fn constants_match_the_table() {
        let mut all = vec![FOLD_ROUND];
        all.extend(FOLD_INTO_LAST);
        for (d, (low, high)) in [1024u32, 896, 768, 640, 512, 384, 256, 128]
            .into_iter()
            .zip(all)
        {
            let power = |n: u32| {
                let zeros = (n - 71) as usize / 8;
                let mut message = vec![0u8; 1 + zeros];
                message[0] = 1;
                table_update(0, &message)
            };
            assert_eq!((low, high), (power(d + 63), power(d - 1)), "distance {d}");
        }
    }

    #[test]
    fn matches_the_table_at_every_length_and_alignment() {
        let data = random_bytes(4096 + 64, 0x2545_f491_4f6c_dd1d);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..=4096 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let start = (seed >> 58) as usize; // 0..63: every alignment
            let init = seed.rotate_left(17);
            let slice = &data[start..start + len];
            assert_eq!(
                update(init, slice),
                table_update(init, slice),
                "len {len} start {start}"
            );
        }
    }

    #[test]
    fn matches_the_table_on_big_inputs() {
        let data = random_bytes((8 << 20) + 77, 7);
        assert_eq!(update(0, &data), table_update(0, &data));
        assert_eq!(
            update(u64::MAX, &data[3..]),
            table_update(u64::MAX, &data[3..])
        );
        assert_eq!(
            update(0, &vec![0xFF; 1 << 20]),
            table_update(0, &vec![0xFF; 1 << 20])
        );
    }
}
