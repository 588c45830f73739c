//! Numbers stored as text: zset scores (doubles as Redis writes them with
//! `%.17g`) and integers.
//!
//! Plain decimals (`-123.45`, at most 19 digits) are converted here,
//! exactly: the 17-digit scores of listpack zsets are beyond the reach of
//! a float division, and the standard parser spends most of its time on
//! UTF-8 validation and generality. Anything else goes to the standard
//! parser.

use std::cmp::Ordering;

use super::Str;

/// Parses a double written by Redis (`%.17g`, "inf", "-inf", "nan").
pub(crate) fn parse_f64(text: &[u8]) -> Option<f64> {
    plain_decimal(text).or_else(|| std::str::from_utf8(text).ok()?.trim().parse().ok())
}

/// The integer value of a stored string (as Redis's `string2ll`).
pub(crate) fn str_to_i64(s: &Str) -> Option<i64> {
    match s {
        Str::Int(i) => Some(*i),
        Str::Raw(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    }
}

/// An optional `-`, digits and at most one `.`, 19 digits at most, rounded
/// to the nearest double (ties to even); `None` otherwise.
fn plain_decimal(text: &[u8]) -> Option<f64> {
    let (negative, body) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    let (int, fraction) = match body.iter().position(|&c| c == b'.') {
        Some(dot) => (body.get(..dot)?, body.get(dot + 1..)?),
        None => (body, &[][..]),
    };
    let digits = int.len() + fraction.len();
    if digits == 0 || digits > MAX_DIGITS {
        return None;
    }
    let mantissa = accumulate_digits(accumulate_digits(0, int)?, fraction)?;
    let magnitude = divide_by_power_of_ten(mantissa, fraction.len())?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Any 19 decimal digits fit a u64.
const MAX_DIGITS: usize = 19;

/// 10^k for k <= 19, as integers and as doubles (10^-k rounded).
pub(crate) const POWERS_OF_TEN: [u64; MAX_DIGITS + 1] = {
    let mut powers = [1u64; MAX_DIGITS + 1];
    let mut i = 1;
    while i <= MAX_DIGITS {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};
const INVERSE_POWERS_OF_TEN: [f64; MAX_DIGITS + 1] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
    1e-15, 1e-16, 1e-17, 1e-18, 1e-19,
];

/// `acc` followed by the decimal digits of `digits` (eight at a time); at
/// most 19 digits in all, so nothing overflows. `None` for a non-digit.
fn accumulate_digits(mut acc: u64, digits: &[u8]) -> Option<u64> {
    const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let mut chunks = digits.chunks_exact(8);
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        // Every byte 0x30..=0x39: high nibble 3, and still 3 after adding 6.
        if v & HIGH_NIBBLES != ZEROS
            || v.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS
        {
            return None;
        }
        // Pairs, then quads, then all eight digits (the first in the low byte).
        let v = v.wrapping_sub(ZEROS);
        let v = (v.wrapping_mul(10).wrapping_add(v >> 8)) & 0x00FF_00FF_00FF_00FF;
        let v = (v.wrapping_mul(100).wrapping_add(v >> 16)) & 0x0000_FFFF_0000_FFFF;
        let v = (v.wrapping_mul(10_000).wrapping_add(v >> 32)) & 0xFFFF_FFFF;
        acc = acc.wrapping_mul(100_000_000).wrapping_add(v);
    }
    for &c in chunks.remainder() {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(digit));
    }
    Some(acc)
}

/// The number of decimal digits of `n`, without a division: the bit length
/// times log10(2) (1233 / 4096) is the answer or one short of it.
pub(crate) fn decimal_digits(n: u64) -> u32 {
    let guess = ((64 - (n | 1).leading_zeros()) * 1233) >> 12;
    let reached = POWERS_OF_TEN
        .get(guess as usize)
        .is_some_and(|&power| n >= power);
    (guess + u32::from(reached)).max(1)
}

/// `m / 10^k`, correctly rounded, for `k` up to 19; `None` for the few
/// results this does not handle (2^53 and beyond, very small).
fn divide_by_power_of_ten(m: u64, k: usize) -> Option<f64> {
    let divisor = *POWERS_OF_TEN.get(k)?;
    if k == 0 {
        return Some(m as f64);
    }
    if m < 1 << 53 {
        // Both exact as doubles (10^k is, for k <= 22): one correctly
        // rounded division.
        return Some(m as f64 / divisor as f64);
    }
    // m·10^-k with a multiplication (two roundings: within two ulps), then
    // the double whose rounding interval holds m / 10^k, found exactly.
    let mut candidate = m as f64 * *INVERSE_POWERS_OF_TEN.get(k)?;
    for _ in 0..4 {
        match position(m, divisor, candidate)? {
            Ordering::Less => candidate = candidate.next_down(),
            Ordering::Greater => candidate = candidate.next_up(),
            Ordering::Equal => return Some(candidate),
        }
    }
    None
}

/// Where `m / d` lies with respect to the reals that round to `c` (a
/// positive normal double below 2^53), computed exactly in integers:
/// `c = M·2^e` rounds the reals between `(4M - 2)·2^(e-2)` (`4M - 1` when M
/// is a power of two: the ulp below is half) and `(4M + 2)·2^(e-2)`, the
/// ends going to whichever of the two doubles is even.
fn position(m: u64, d: u64, c: f64) -> Option<Ordering> {
    let bits = c.to_bits();
    let biased = bits >> 52;
    if biased == 0 || biased >= 2047 {
        return None;
    }
    let mantissa = u128::from(bits & ((1 << 52) - 1) | 1 << 52);
    // c = mantissa·2^(biased - 1075); compare 4m·2^(1075 - biased) with the ends times d.
    let shift = 1077u64
        .checked_sub(biased)
        .filter(|&s| s + u64::from(64 - m.leading_zeros()) <= 127)?;
    let quotient = u128::from(m) << shift;
    let below = if mantissa == 1 << 52 && biased > 1 {
        1
    } else {
        2
    };
    let low = (4 * mantissa - below) * u128::from(d);
    let high = (4 * mantissa + 2) * u128::from(d);
    let even = mantissa & 1 == 0;
    Some(if quotient < low || (quotient == low && !even) {
        Ordering::Less
    } else if quotient > high || (quotient == high && !even) {
        Ordering::Greater
    } else {
        Ordering::Equal
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::test_rng::Rng;

    fn std_parse(text: &str) -> f64 {
        text.trim().parse().unwrap()
    }

    fn check(text: &str) {
        let ours = parse_f64(text.as_bytes()).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(ours.to_bits(), std_parse(text).to_bits(), "{text}");
    }

    /// Scores as `%.17g` writes them, at many magnitudes, against the
    /// standard parser bit for bit.
    #[test]
    fn seventeen_digit_scores_round_like_std() {
        let mut rng = Rng(7);
        for _ in 0..300_000 {
            let magnitude = 10f64.powi((rng.next() % 30) as i32 - 12);
            let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * magnitude;
            let int_digits = if x >= 1.0 {
                x.log10().floor() as usize + 1
            } else {
                1
            };
            let text = format!("{:.*}", 17usize.saturating_sub(int_digits), x);
            check(&text);
            check(&format!("-{text}"));
        }
    }

    /// Random digit strings with the point anywhere, up to 19 digits and
    /// beyond (those go to the standard parser).
    #[test]
    fn any_plain_decimal_rounds_like_std() {
        let mut rng = Rng(8);
        for _ in 0..300_000 {
            let len = 1 + (rng.next() % 21) as usize;
            let mut text: String = (0..len)
                .map(|_| char::from(b'0' + (rng.next() % 10) as u8))
                .collect();
            if !rng.next().is_multiple_of(4) {
                text.insert((rng.next() % (len as u64 + 1)) as usize, '.');
            }
            check(&text);
        }
    }

    #[test]
    fn digit_counts() {
        for (power, &p) in POWERS_OF_TEN.iter().enumerate() {
            assert_eq!(decimal_digits(p), power as u32 + 1);
            assert_eq!(decimal_digits(p - 1), (power as u32).max(1));
        }
        assert_eq!(decimal_digits(u64::MAX), 20);
    }

    #[test]
    fn edge_cases() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "1.",
            ".5",
            "9007199254740993",
            "0.1",
            "123.456",
            "1e10",
            " 1.5",
            "inf",
            "-inf",
        ] {
            check(text);
        }
        // Exact halves between two doubles (ties go to the even one), around
        // a power of two whose ulp below is half the ulp above.
        for text in [
            "4503599627370496.5",
            "4503599627370497.5",
            "2251799813685248.25",
            "2251799813685248.75",
            "4503599627370495.75",
            "4503599627370495.25",
            "1125899906842624.125",
            "0.00000000000000000001",
            "1234567890123456789.0",
        ] {
            check(text);
        }
        assert!(parse_f64(b"nan").is_some_and(f64::is_nan));
        for bad in ["", "-", ".", "1.2.3", "--1", "1x"] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(
            parse_f64(b"-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
    }
}
