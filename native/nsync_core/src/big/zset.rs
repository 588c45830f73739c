//! [`ZSet`]: member → score in a table of [`Entry`] (the score as the
//! entry's 8-byte value), and the [`Order`] index over `(score, member)`.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::entry::Entry;
use super::order::{cmp_score, Item, Order};
use super::TooLarge;

pub use super::order::cmp_score as compare_scores;

#[derive(Debug, Default)]
pub struct ZSet {
    members: HashSet<Entry>,
    /// Refers to the entries of `members`: an item is removed before its
    /// entry is dropped.
    order: Order,
}

/// A bound of a lex range (`ZRANGEBYLEX`): `-`, `+`, `[member`, `(member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexBound<'a> {
    Min,
    Max,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

impl LexBound<'_> {
    /// `member >= self` as a lower bound.
    fn below(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(b) => member >= *b,
            LexBound::Excl(b) => member > *b,
        }
    }

    /// `member <= self` as an upper bound.
    fn above(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Max => true,
            LexBound::Min => false,
            LexBound::Incl(b) => member <= *b,
            LexBound::Excl(b) => member < *b,
        }
    }
}

/// A bound of a score range: the score and whether it is exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub score: f64,
    pub exclusive: bool,
}

fn score_of(entry: &Entry) -> f64 {
    <[u8; 8]>::try_from(entry.value()).map_or(0.0, f64::from_le_bytes)
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn with_capacity(n: usize) -> ZSet {
        ZSet {
            members: HashSet::with_capacity(n),
            order: Order::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Room of the table (for memory reports).
    pub fn capacity(&self) -> usize {
        self.members.capacity()
    }

    /// Bytes of each entry (for memory reports).
    pub fn entry_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.members.iter().map(Entry::size)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.members.get(member).map(score_of)
    }

    /// Sets the score of `member` (added if new); its previous score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Result<Option<f64>, TooLarge> {
        let (entry, old) = match self.members.take(member) {
            Some(mut entry) => {
                let old = score_of(&entry);
                if old.to_bits() == score.to_bits() {
                    self.members.insert(entry);
                    return Ok(Some(old));
                }
                self.order.remove(old, member);
                entry.value_mut().copy_from_slice(&score.to_le_bytes());
                (entry, Some(old))
            }
            None => (Entry::new(member, &score.to_le_bytes())?, None),
        };
        self.order.insert(Item {
            score,
            member: entry.as_ref(),
        });
        self.members.insert(entry);
        Ok(old)
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let entry = self.members.take(member)?;
        let score = score_of(&entry);
        self.order.remove(score, member);
        drop(entry);
        Some(score)
    }

    /// The 0-based rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        self.order.rank(score, member)
    }

    /// `(score, member)` at `rank`.
    pub fn get(&self, rank: usize) -> Option<(f64, &[u8])> {
        self.order.get(rank).map(|it| (it.score, it.member()))
    }

    /// `(score, member)` from rank `start` on, in order.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = (f64, &[u8])> {
        self.order
            .iter_from(start)
            .map(|it| (it.score, it.member()))
    }

    /// `(score, member)` from rank `end - 1` down to 0.
    pub fn iter_rev_before(&self, end: usize) -> impl Iterator<Item = (f64, &[u8])> {
        self.order
            .iter_rev_before(end)
            .map(|it| (it.score, it.member()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (f64, &[u8])> {
        self.iter_from(0)
    }

    /// The ranks `start..end` of the members whose scores are in range.
    pub fn score_range(&self, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
        let start = self
            .order
            .partition_point(|it| match cmp_score(it.score, min.score) {
                Ordering::Less => true,
                Ordering::Equal => min.exclusive,
                Ordering::Greater => false,
            });
        let end = self
            .order
            .partition_point(|it| match cmp_score(it.score, max.score) {
                Ordering::Less => true,
                Ordering::Equal => !max.exclusive,
                Ordering::Greater => false,
            });
        (start, end.max(start))
    }

    /// The ranks `start..end` a lex range selects, as Redis's listpack scan
    /// does (first member >= min from the head, then on while <= max): with
    /// equal scores (the defined case) every member in range, found by
    /// binary search; with mixed scores the first contiguous run, found by
    /// a scan.
    pub fn lex_range(&self, min: LexBound, max: LexBound) -> (usize, usize) {
        let len = self.len();
        let (Some((first, _)), Some((last, _))) = (self.get(0), self.get(len.wrapping_sub(1)))
        else {
            return (0, 0);
        };
        if cmp_score(first, last) == Ordering::Equal {
            let start = self.order.partition_point(|it| !min.below(it.member()));
            let end = self.order.partition_point(|it| max.above(it.member()));
            return (start, end.max(start));
        }
        let start = self.iter().position(|(_, m)| min.below(m)).unwrap_or(len);
        let run = self
            .iter_from(start)
            .take_while(|(_, m)| max.above(m))
            .count();
        (start, start + run)
    }

    /// Removes the members of ranks `start..end`; how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let removed = self.order.remove_range(start, end);
        for item in &removed {
            // take() then drop: the key borrowed from the entry stays valid
            // for the whole lookup.
            let entry = self.members.take(item.member());
            drop(entry);
        }
        removed.len()
    }

    pub fn try_clone(&self) -> Result<ZSet, TooLarge> {
        let mut copy = ZSet::with_capacity(self.len());
        for (score, member) in self.iter() {
            copy.insert(member, score)?;
        }
        Ok(copy)
    }

    /// Bytes held by the index (for memory reports).
    pub fn index_size(&self) -> usize {
        self.order.size()
    }
}

impl Drop for ZSet {
    fn drop(&mut self) {
        // The index refers to the entries: it goes first.
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::test_rng::Rng;

    fn incl(score: f64) -> ScoreBound {
        ScoreBound {
            score,
            exclusive: false,
        }
    }

    #[test]
    fn order_and_updates() {
        let mut z = ZSet::new();
        assert_eq!(z.insert(b"b", 1.0).unwrap(), None);
        assert_eq!(z.insert(b"a", 1.0).unwrap(), None);
        assert_eq!(z.insert(b"c", -0.0).unwrap(), None);
        assert_eq!(z.insert(b"d", 0.0).unwrap(), None);
        assert_eq!(z.insert(b"e", f64::NEG_INFINITY).unwrap(), None);
        let members: Vec<_> = z.iter().map(|(_, m)| m.to_vec()).collect();
        assert_eq!(members, [&b"e"[..], b"c", b"d", b"a", b"b"]);
        assert_eq!(z.insert(b"e", 5.0).unwrap(), Some(f64::NEG_INFINITY));
        assert_eq!(z.rank(b"e"), Some(4));
        assert_eq!(z.rank(b"zz"), None);
        assert_eq!(z.remove(b"a"), Some(1.0));
        assert_eq!(z.remove(b"a"), None);
        assert_eq!(
            z.get(0).map(|(s, _)| s.to_bits()),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(z.score_range(incl(0.0), incl(1.0)), (0, 3));
        let excl = ScoreBound {
            score: 0.0,
            exclusive: true,
        };
        assert_eq!(z.score_range(excl, incl(f64::INFINITY)), (2, 4));
        assert_eq!(z.score_range(incl(9.0), incl(1.0)), (4, 4));
        let back: Vec<_> = z.iter_rev_before(2).map(|(_, m)| m.to_vec()).collect();
        assert_eq!(back, [&b"d"[..], b"c"]);
    }

    #[test]
    fn lex_ranges() {
        let mut z = ZSet::new();
        for m in [&b"a"[..], b"b", b"c", b"d"] {
            z.insert(m, 0.0).unwrap();
        }
        assert_eq!(
            z.lex_range(LexBound::Incl(b"b"), LexBound::Excl(b"d")),
            (1, 3)
        );
        assert_eq!(z.lex_range(LexBound::Min, LexBound::Max), (0, 4));
        assert_eq!(z.lex_range(LexBound::Max, LexBound::Max), (4, 4));
        assert_eq!(
            z.lex_range(LexBound::Excl(b"c"), LexBound::Incl(b"b")),
            (3, 3)
        );
        // mixed scores: the first contiguous run from the head
        z.insert(b"a", 5.0).unwrap();
        assert_eq!(z.lex_range(LexBound::Incl(b"b"), LexBound::Max), (0, 4));
        assert_eq!(z.lex_range(LexBound::Min, LexBound::Incl(b"c")), (0, 2));
    }

    /// Random operations against a sorted Vec model.
    #[test]
    fn against_a_model() {
        let mut rng = Rng::new(7);
        let mut z = ZSet::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let key = |s: f64, m: &[u8]| (if s == 0.0 { 0.0 } else { s }, m.to_vec());
        for round in 0..60_000u32 {
            let member = format!("m{}", rng.below(3000)).into_bytes();
            match rng.below(10) {
                0..=5 => {
                    let score = (rng.below(200) as f64) - 100.0;
                    z.insert(&member, score).unwrap();
                    model.retain(|(_, m)| *m != member);
                    model.push((score, member));
                }
                6..=7 => {
                    z.remove(&member);
                    model.retain(|(_, m)| *m != member);
                }
                8 => {
                    let a = rng.below(z.len() as u64 + 1) as usize;
                    let b = a + rng.below(40) as usize;
                    model.sort_by(|x, y| {
                        let (kx, ky) = (key(x.0, &x.1), key(y.0, &y.1));
                        kx.0.total_cmp(&ky.0).then(kx.1.cmp(&ky.1))
                    });
                    let n = z.remove_ranks(a, b);
                    let drained = model.drain(a.min(model.len())..b.min(model.len())).count();
                    assert_eq!(n, drained);
                }
                _ => {
                    let (s, e) = z.score_range(incl(-10.0), incl(10.0));
                    let expect = model
                        .iter()
                        .filter(|(s, _)| (-10.0..=10.0).contains(s))
                        .count();
                    assert_eq!(e - s, expect);
                }
            }
            if round % 5000 == 0 || round == 59_999 {
                model.sort_by(|x, y| {
                    let (kx, ky) = (key(x.0, &x.1), key(y.0, &y.1));
                    kx.0.total_cmp(&ky.0).then(kx.1.cmp(&ky.1))
                });
                let got: Vec<(f64, Vec<u8>)> = z.iter().map(|(s, m)| (s, m.to_vec())).collect();
                assert_eq!(got, model);
                assert_eq!(z.len(), model.len());
                for (r, (s, m)) in model.iter().enumerate().step_by(37) {
                    assert_eq!(z.rank(m), Some(r));
                    assert_eq!(
                        z.get(r).map(|(s, m)| (s, m.to_vec())),
                        Some((*s, m.clone()))
                    );
                }
            }
        }
    }

    #[test]
    fn big_and_clone() {
        let mut z = ZSet::new();
        for i in 0..100_000u32 {
            z.insert(format!("m{i:07}").as_bytes(), f64::from(i % 1000))
                .unwrap();
        }
        assert_eq!(z.len(), 100_000);
        assert_eq!(z.rank(b"m0001000"), Some(1));
        assert_eq!(z.rank(b"m0000999"), Some(99_900));
        let c = z.try_clone().unwrap();
        assert_eq!(z.remove_ranks(0, 50_000), 50_000);
        assert_eq!(z.len(), 50_000);
        assert_eq!(c.len(), 100_000);
        assert_eq!(z.get(0).map(|(s, _)| s), Some(500.0));
        assert_eq!(z.remove_ranks(0, usize::MAX), 50_000);
        assert!(z.is_empty());
        assert_eq!(c.iter().count(), 100_000);
    }
}
