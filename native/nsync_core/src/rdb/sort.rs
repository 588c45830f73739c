//! The orders of DESIGN.md: a set's members bytewise by the bytes a client
//! reads, without duplicates; a zset's members by score, then member.
//! Values usually arrive in order already (listpack zsets), which is
//! checked first.

use std::cmp::Ordering;

use super::item::Decimal;
use super::Str;

/// Sorts a set's members, dropping the duplicates a corrupt file may hold.
pub(crate) fn sort_set(items: &mut Vec<Str<'_>>) {
    if !items.windows(2).all(|w| matches!(w, [a, b] if cmp_str(a, b) == Ordering::Less)) {
        items.sort_by(cmp_str);
        items.dedup_by(|a, b| cmp_str(a, b) == Ordering::Equal);
    }
}

/// An intset's members (stored in numeric order) in the order of their
/// decimal texts, each text made once.
pub(crate) fn sort_int_set(values: Vec<i64>) -> Vec<Str<'static>> {
    let mut texts: Vec<(Decimal, i64)> = values.into_iter().map(|v| (Decimal::new(v), v)).collect();
    texts.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    texts.dedup_by_key(|t| t.1);
    texts.into_iter().map(|(_, v)| Str::Int(v)).collect()
}

/// Zsets in Redis order: score, then member bytewise.
pub(crate) fn sort_zset(members: &mut [(f64, Str<'_>)]) {
    let cmp = |a: &(f64, Str), b: &(f64, Str)| {
        // `+ 0.0` folds -0.0 into 0.0, which Redis treats as equal.
        (a.0 + 0.0).total_cmp(&(b.0 + 0.0)).then_with(|| cmp_str(&a.1, &b.1))
    };
    if !members.windows(2).all(|w| matches!(w, [a, b] if cmp(a, b) != Ordering::Greater)) {
        members.sort_by(cmp);
    }
}

/// Compares two strings by the bytes a client would read.
fn cmp_str(a: &Str, b: &Str) -> Ordering {
    match (a, b) {
        (Str::Raw(a), Str::Raw(b)) => a[..].cmp(&b[..]),
        _ => {
            let (mut a_text, mut b_text) = (None, None);
            client_bytes(a, &mut a_text).cmp(client_bytes(b, &mut b_text))
        }
    }
}

/// The raw bytes, or the integer's text made in `text`.
fn client_bytes<'s>(s: &'s Str<'_>, text: &'s mut Option<Decimal>) -> &'s [u8] {
    match s {
        Str::Raw(raw) => raw,
        Str::Int(i) => text.insert(Decimal::new(*i)).as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Raw;

    fn texts(items: &[Str]) -> Vec<String> {
        items.iter().map(|s| String::from_utf8_lossy(&s.to_bytes()).into_owned()).collect()
    }

    #[test]
    fn int_sets_sort_by_text() {
        let sorted = sort_int_set(vec![i64::MIN, -100, -20, -3, 0, 9, 10, 100, i64::MAX]);
        let mut want = texts(&sorted);
        want.sort();
        assert_eq!(texts(&sorted), want);
        assert_eq!(texts(&sorted)[..3], ["-100", "-20", "-3"]);
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
