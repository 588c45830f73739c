//! The orders of DESIGN.md: a set's members bytewise by the bytes a client
//! reads, without duplicates; a zset's members by score, then member.
//! Zsets usually arrive in order already (listpack zsets), which is
//! checked first. Integers (intset members) are compared as their decimal
//! texts would be, without making the texts.

use std::cmp::Ordering;

use super::item::Decimal;
use super::number::{decimal_digits, POWERS_OF_TEN};
use super::Str;

/// Sorts a set's members, dropping the duplicates a corrupt file may hold.
/// (An ordered input costs one comparison per member: no check first.)
pub(crate) fn sort_set(items: &mut Vec<Str<'_>>) {
    items.sort_by(cmp_str);
    items.dedup_by(|a, b| cmp_str(a, b) == Ordering::Equal);
}

/// An intset's members in the order of their texts, as a set's.
pub(crate) fn sort_int_set(mut values: Vec<i64>) -> Vec<Str<'static>> {
    values.sort_unstable_by_key(|&v| text_key(v));
    values.dedup();
    values.into_iter().map(Str::Int).collect()
}

/// Zsets in Redis order: score, then member bytewise.
pub(crate) fn sort_zset(members: &mut [(f64, Str<'_>)]) {
    let cmp = |a: &(f64, Str), b: &(f64, Str)| {
        // `+ 0.0` folds -0.0 into 0.0, which Redis treats as equal.
        (a.0 + 0.0)
            .total_cmp(&(b.0 + 0.0))
            .then_with(|| cmp_str(&a.1, &b.1))
    };
    if !members
        .windows(2)
        .all(|w| matches!(w, [a, b] if cmp(a, b) != Ordering::Greater))
    {
        members.sort_by(cmp);
    }
}

/// Compares two strings by the bytes a client would read.
fn cmp_str(a: &Str, b: &Str) -> Ordering {
    match (a, b) {
        (Str::Raw(a), Str::Raw(b)) => cmp_bytes(a, b),
        (Str::Int(a), Str::Int(b)) => cmp_int_text(*a, *b),
        _ => {
            let (mut a_text, mut b_text) = (None, None);
            client_bytes(a, &mut a_text).cmp(client_bytes(b, &mut b_text))
        }
    }
}

/// Bytewise order; the first eight bytes, compared as one number, settle
/// most pairs without a call to `memcmp`.
fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let word = |s: &[u8]| {
        s.get(..8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_be_bytes)
    };
    match (word(a), word(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// The raw bytes, or the integer's text made in `text`.
fn client_bytes<'s>(s: &'s Str<'_>, text: &'s mut Option<Decimal>) -> &'s [u8] {
    match s {
        Str::Raw(raw) => raw,
        Str::Int(i) => text.insert(Decimal::new(*i)).as_bytes(),
    }
}

/// Orders integers as their decimal texts compare bytewise.
fn cmp_int_text(a: i64, b: i64) -> Ordering {
    text_key(a).cmp(&text_key(b))
}

/// A key in the order of an integer's decimal text: negatives first (`-`
/// sorts before the digits), then the magnitude's digits left-aligned to
/// 19 places, then the shorter text (a prefix of the other) first.
fn text_key(value: i64) -> (bool, u64, u32) {
    let magnitude = value.unsigned_abs();
    let digits = decimal_digits(magnitude);
    // |i64| has at most 19 digits, so the aligned value stays below 10^19.
    let scale = POWERS_OF_TEN
        .get(19usize.saturating_sub(digits as usize))
        .copied()
        .unwrap_or(1);
    (value >= 0, magnitude.saturating_mul(scale), digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Raw;

    fn texts(items: &[Str]) -> Vec<String> {
        items
            .iter()
            .map(|s| String::from_utf8_lossy(&s.to_bytes()).into_owned())
            .collect()
    }

    /// Against the texts themselves, on numbers around every power of ten.
    #[test]
    fn integers_compare_as_their_texts() {
        let mut numbers = vec![0i64, i64::MIN, i64::MAX, i64::MIN + 1];
        for power in 0..19 {
            let p = 10i64.pow(power);
            for n in [p - 1, p, p + 1, 2 * p, 3 * p - 7] {
                numbers.extend([n, -n]);
            }
        }
        for &a in &numbers {
            for &b in &numbers {
                assert_eq!(
                    cmp_int_text(a, b),
                    a.to_string().cmp(&b.to_string()),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn int_sets_sort_by_text() {
        let sorted = sort_int_set(vec![-3, -20, -100, 0, 9, 10, 100, 10, i64::MIN, i64::MAX]);
        assert_eq!(
            texts(&sorted),
            [
                "-100",
                "-20",
                "-3",
                "-9223372036854775808",
                "0",
                "10",
                "100",
                "9",
                "9223372036854775807"
            ]
        );
    }

    #[test]
    fn bytes_compare_as_slices() {
        let words: [&[u8]; 8] = [
            b"",
            b"a",
            b"abcdefgh",
            b"abcdefgh\x00",
            b"abcdefgi",
            b"abcdefghij",
            b"\xffbcdefgh",
            b"abcdefg",
        ];
        for a in words {
            for b in words {
                assert_eq!(cmp_bytes(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn mixed_sets_sort_and_drop_duplicates() {
        let mut items = vec![
            Str::Raw(Raw::Borrowed(b"b")),
            Str::Int(10),
            Str::Raw(Raw::Borrowed(b"10")),
            Str::Int(9),
            Str::Raw(Raw::Borrowed(b"a")),
        ];
        sort_set(&mut items);
        assert_eq!(texts(&items), ["10", "9", "a", "b"]);
    }

    #[test]
    fn zsets_sort_by_score_then_member() {
        let mut members = vec![
            (1.0, Str::Raw(Raw::Borrowed(b"b"))),
            (-0.0, Str::Raw(Raw::Borrowed(b"z"))),
            (1.0, Str::Int(5)),
            (0.0, Str::Raw(Raw::Borrowed(b"a"))),
        ];
        sort_zset(&mut members);
        let order: Vec<String> = texts(&members.iter().map(|m| m.1.clone()).collect::<Vec<_>>());
        assert_eq!(order, ["a", "z", "5", "b"]);
    }
}
