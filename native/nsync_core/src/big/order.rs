//! The order index of a zset: its `(score, member)` items in Redis's order,
//! in chunks of at most [`MAX_CHUNK`] items, with a Fenwick tree over the
//! chunk sizes, so that finding an item, its rank, or the item at a rank
//! costs O(log n) plus a move of at most one chunk's items.
//!
//! Items refer to entries owned by the zset's table ([`EntryRef`]): the
//! zset removes an item from here before it drops the entry (its
//! invariant), so every item read here refers to a live entry.

use std::cmp::Ordering;

use super::entry::EntryRef;

const MAX_CHUNK: usize = 1024;
/// A chunk smaller than this is merged into a neighbour that has room.
const MIN_CHUNK: usize = MAX_CHUNK / 4;

/// Redis's order of scores: -0.0 equals 0.0 (NaN, which only a corrupt
/// snapshot can hold, sorts above +inf).
pub fn cmp_score(a: f64, b: f64) -> Ordering {
    fn norm(x: f64) -> f64 {
        if x == 0.0 {
            0.0
        } else {
            x
        }
    }
    norm(a).total_cmp(&norm(b))
}

#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub score: f64,
    pub member: EntryRef,
}

impl Item {
    /// The member's bytes.
    pub fn member<'a>(&self) -> &'a [u8] {
        // SAFETY: the zset keeps every indexed entry alive (module doc); the
        // caller ties 'a to its borrow of the zset.
        unsafe { self.member.key() }
    }

    /// Redis's order of items.
    pub fn cmp_to(&self, score: f64, member: &[u8]) -> Ordering {
        cmp_score(self.score, score).then_with(|| self.member().cmp(member))
    }
}

#[derive(Debug, Default)]
pub struct Order {
    chunks: Vec<Vec<Item>>,
    /// Fenwick tree over `chunks[i].len()`.
    tree: Vec<usize>,
    len: usize,
}

impl Order {
    /// The sum of the sizes of the chunks before chunk `ci`.
    fn before(&self, ci: usize) -> usize {
        let mut i = ci.min(self.tree.len());
        let mut sum = 0;
        while i > 0 {
            sum += self.tree.get(i - 1).copied().unwrap_or(0);
            i &= i - 1;
        }
        sum
    }

    fn grow(&mut self, ci: usize) {
        let mut i = ci + 1;
        while let Some(slot) = self.tree.get_mut(i - 1) {
            *slot += 1;
            i += i & i.wrapping_neg();
        }
    }

    fn shrink(&mut self, ci: usize, by: usize) {
        let mut i = ci + 1;
        while let Some(slot) = self.tree.get_mut(i - 1) {
            *slot = slot.saturating_sub(by);
            i += i & i.wrapping_neg();
        }
    }

    fn rebuild(&mut self) {
        let n = self.chunks.len();
        self.tree = self.chunks.iter().map(Vec::len).collect();
        for i in 1..=n {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                let v = self.tree[i - 1];
                self.tree[parent - 1] += v;
            }
        }
    }

    /// `(chunk, offset)` of the item at `rank` (`rank < len`).
    fn position(&self, rank: usize) -> Option<(usize, usize)> {
        if rank >= self.len {
            return None;
        }
        let n = self.tree.len();
        let mut step = n.checked_next_power_of_two().unwrap_or(0);
        let (mut ci, mut rest) = (0, rank);
        while step > 0 {
            let next = ci + step;
            if let Some(&size) = self.tree.get(next.wrapping_sub(1)) {
                if next <= n && size <= rest {
                    ci = next;
                    rest -= size;
                }
            }
            step /= 2;
        }
        Some((ci, rest))
    }

    pub fn get(&self, rank: usize) -> Option<&Item> {
        let (ci, off) = self.position(rank)?;
        self.chunks.get(ci)?.get(off)
    }

    /// `(chunk, offset)` of the first item for which `pred` is false
    /// (`pred` must hold for a prefix of the items).
    fn locate(&self, pred: impl Fn(&Item) -> bool) -> (usize, usize) {
        let ci = self.chunks.partition_point(|c| match c.last() {
            Some(last) => pred(last),
            None => true,
        });
        let off = self.chunks.get(ci).map_or(0, |c| c.partition_point(&pred));
        (ci, off)
    }

    /// The rank of the first item for which `pred` is false.
    pub fn partition_point(&self, pred: impl Fn(&Item) -> bool) -> usize {
        let (ci, off) = self.locate(pred);
        self.before(ci) + off
    }

    /// The rank of `(score, member)` if it is there.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let (ci, off) = self.locate(|it| it.cmp_to(score, member) == Ordering::Less);
        let item = self.chunks.get(ci)?.get(off)?;
        (item.cmp_to(score, member) == Ordering::Equal).then(|| self.before(ci) + off)
    }

    pub fn insert(&mut self, item: Item) {
        let member = item.member();
        let (mut ci, mut off) = self.locate(|it| it.cmp_to(item.score, member) == Ordering::Less);
        if ci == self.chunks.len() {
            match self.chunks.last() {
                Some(last) => {
                    ci -= 1;
                    off = last.len();
                }
                None => {
                    self.chunks.push(Vec::new());
                    self.tree.push(0);
                    off = 0;
                }
            }
        }
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return;
        };
        if chunk.len() == chunk.capacity() {
            // Grow by half (up to one past a full chunk, where it splits):
            // doubling would leave up to half of every chunk unused.
            let room = (chunk.len() / 2 + 8).min(MAX_CHUNK + 1 - chunk.len().min(MAX_CHUNK));
            chunk.reserve_exact(room);
        }
        chunk.insert(off.min(chunk.len()), item);
        self.len += 1;
        if chunk.len() > MAX_CHUNK {
            let tail = chunk.split_off(chunk.len() / 2);
            chunk.shrink_to_fit();
            self.chunks.insert(ci + 1, tail);
            self.rebuild();
        } else {
            self.grow(ci);
        }
    }

    /// Removes `(score, member)`; whether it was there.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let (ci, off) = self.locate(|it| it.cmp_to(score, member) == Ordering::Less);
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return false;
        };
        match chunk.get(off) {
            Some(it) if it.cmp_to(score, member) == Ordering::Equal => {}
            _ => return false,
        }
        chunk.remove(off);
        self.len -= 1;
        self.shrink(ci, 1);
        self.tidy(ci);
        true
    }

    /// Removes the items of ranks `start..end` and returns them.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<Item> {
        let end = end.min(self.len);
        if start >= end {
            return Vec::new();
        }
        let mut removed = Vec::with_capacity(end - start);
        let Some((mut ci, off)) = self.position(start) else {
            return removed;
        };
        let mut off = off;
        while removed.len() < end - start {
            let want = end - start - removed.len();
            let Some(chunk) = self.chunks.get_mut(ci) else {
                break;
            };
            let upto = chunk.len().min(off + want);
            removed.extend(chunk.drain(off..upto));
            ci += 1;
            off = 0;
        }
        self.len -= removed.len();
        self.chunks.retain(|c| !c.is_empty());
        self.rebuild();
        let ci = self
            .position(start)
            .map_or(self.chunks.len().saturating_sub(1), |p| p.0);
        self.tidy(ci);
        removed
    }

    /// Keeps chunks from becoming empty or small: an empty chunk goes, a
    /// small one is merged into a neighbour with room.
    fn tidy(&mut self, ci: usize) {
        let Some(size) = self.chunks.get(ci).map(Vec::len) else {
            return;
        };
        if size == 0 {
            self.chunks.remove(ci);
            self.rebuild();
            return;
        }
        if size >= MIN_CHUNK {
            return;
        }
        let neighbour = [ci + 1, ci.wrapping_sub(1)].into_iter().find(|&n| {
            self.chunks
                .get(n)
                .is_some_and(|c| c.len() + size <= MAX_CHUNK / 2)
        });
        if let Some(n) = neighbour {
            let (first, second) = (ci.min(n), ci.max(n));
            let moved = self.chunks.remove(second);
            if let Some(into) = self.chunks.get_mut(first) {
                into.extend(moved);
            }
            self.rebuild();
        }
    }

    /// Items from rank `start` on, in order.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &Item> {
        let (ci, off) = self.position(start).unwrap_or((self.chunks.len(), 0));
        self.chunks
            .get(ci..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(move |(i, c)| c.get(if i == 0 { off } else { 0 }..).unwrap_or_default())
    }

    /// Items from rank `end - 1` down to rank 0.
    pub fn iter_rev_before(&self, end: usize) -> impl Iterator<Item = &Item> {
        let end = end.min(self.len);
        let (ci, off) = if end == 0 {
            (0, 0)
        } else {
            self.position(end - 1)
                .map_or((0, 0), |(c, o)| (c + 1, o + 1))
        };
        let last = ci.wrapping_sub(1);
        self.chunks
            .get(..ci)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .rev()
            .flat_map(move |(i, c)| {
                let part = if i == last {
                    c.get(..off)
                } else {
                    Some(&c[..])
                };
                part.unwrap_or_default().iter().rev()
            })
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.tree.clear();
        self.len = 0;
    }

    /// Bytes held by the index (capacity).
    pub fn size(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.capacity() * std::mem::size_of::<Item>())
            .sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<Item>>()
            + self.tree.capacity() * std::mem::size_of::<usize>()
    }
}
