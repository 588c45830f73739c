//! [`List`]: a deque of packed chunks of up to [`CHUNK_BYTES`] (like a
//! Redis quicklist of listpacks). An element is `[len][bytes][len]`, the
//! length as a LEB128 varint before and byte-reversed after, so a chunk is
//! walked from either end. Pushes and pops at the ends cost O(1) (a move of
//! at most one chunk's bytes); an index costs a walk over chunk counts from
//! the nearer end, as in Redis.

use std::collections::VecDeque;

/// The most bytes of a chunk (one element bigger than this has a chunk of
/// its own).
pub const CHUNK_BYTES: usize = 8 * 1024;

#[derive(Debug, Default, Clone)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

#[derive(Debug, Default, Clone)]
struct Chunk {
    data: Vec<u8>,
    count: usize,
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn encoded_len(element: &[u8]) -> usize {
    2 * varint_len(element.len()) + element.len()
}

fn encode(out: &mut Vec<u8>, element: &[u8]) {
    let start = out.len();
    let mut n = element.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    let head = out.len() - start;
    out.extend_from_slice(element);
    for i in (start..start + head).rev() {
        let byte = out.get(i).copied().unwrap_or(0);
        out.push(byte);
    }
}

/// A varint read from `bytes` in order; `(value, bytes used)`.
fn read_varint(bytes: impl Iterator<Item = u8>) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    for (i, byte) in bytes.enumerate().take(10) {
        value |= usize::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

impl Chunk {
    /// The element at byte offset `off` and the offset after it.
    fn read(&self, off: usize) -> Option<(&[u8], usize)> {
        let (len, head) = read_varint(self.data.get(off..)?.iter().copied())?;
        let start = off + head;
        let element = self.data.get(start..start.checked_add(len)?)?;
        Some((element, start + len + head))
    }

    /// The element ending at byte offset `end` and the offset it starts at.
    fn read_back(&self, end: usize) -> Option<(&[u8], usize)> {
        let (len, tail) = read_varint(self.data.get(..end)?.iter().rev().copied())?;
        let stop = end.checked_sub(tail)?;
        let start = stop.checked_sub(len)?;
        let element = self.data.get(start..stop)?;
        Some((element, start.checked_sub(tail)?))
    }

    /// Byte range of the element at `index`, walked from the nearer end.
    fn span(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.count {
            return None;
        }
        if index <= self.count / 2 {
            let mut off = 0;
            for _ in 0..index {
                off = self.read(off)?.1;
            }
            Some((off, self.read(off)?.1))
        } else {
            let mut end = self.data.len();
            for _ in 0..self.count - 1 - index {
                end = self.read_back(end)?.1;
            }
            Some((self.read_back(end)?.1, end))
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut off = 0;
        std::iter::from_fn(move || {
            let (element, next) = self.read(off)?;
            off = next;
            Some(element)
        })
    }

    fn has_room(&self, element: &[u8]) -> bool {
        self.data.is_empty() || self.data.len() + encoded_len(element) <= CHUNK_BYTES
    }

    fn of(elements: &[&[u8]]) -> Chunk {
        // A power of two (up to a full chunk), so that the doubling of
        // pushes ends at CHUNK_BYTES, not past it.
        let size: usize = elements.iter().map(|e| encoded_len(e)).sum();
        let capacity = if size <= CHUNK_BYTES {
            size.next_power_of_two()
        } else {
            size
        };
        let mut data = Vec::with_capacity(capacity);
        for e in elements {
            encode(&mut data, e);
        }
        Chunk {
            data,
            count: elements.len(),
        }
    }

    /// Splits an over-full chunk in two halves (by elements).
    fn split(&mut self) -> Option<Chunk> {
        if self.data.len() <= CHUNK_BYTES || self.count < 2 {
            return None;
        }
        let (at, _) = self.span(self.count / 2)?;
        let tail = Chunk {
            data: self.data.split_off(at),
            count: self.count - self.count / 2,
        };
        self.count /= 2;
        self.data.shrink_to_fit();
        Some(tail)
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, element: &[u8]) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.has_room(element) => {
                encode(&mut chunk.data, element);
                chunk.count += 1;
            }
            _ => self.chunks.push_back(Chunk::of(&[element])),
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, element: &[u8]) {
        match self.chunks.front_mut() {
            Some(chunk) if chunk.has_room(element) => {
                let mut bytes = Vec::with_capacity(encoded_len(element));
                encode(&mut bytes, element);
                chunk.data.splice(0..0, bytes);
                chunk.count += 1;
            }
            _ => self.chunks.push_front(Chunk::of(&[element])),
        }
        self.len += 1;
    }

    /// Removes and returns the first (`front`) or last element.
    pub fn pop(&mut self, front: bool) -> Option<Vec<u8>> {
        let chunk = if front {
            self.chunks.front_mut()?
        } else {
            self.chunks.back_mut()?
        };
        let (element, range) = if front {
            let (e, next) = chunk.read(0)?;
            (e.to_vec(), 0..next)
        } else {
            let end = chunk.data.len();
            let (e, start) = chunk.read_back(end)?;
            (e.to_vec(), start..end)
        };
        chunk.data.drain(range);
        chunk.count -= 1;
        if chunk.count == 0 {
            if front {
                self.chunks.pop_front();
            } else {
                self.chunks.pop_back();
            }
        }
        self.len -= 1;
        Some(element)
    }

    /// Drops `n` elements from the front or the back; how many.
    pub fn discard(&mut self, front: bool, n: usize) -> usize {
        let mut left = n.min(self.len);
        let done = left;
        while left > 0 {
            let chunk = if front {
                self.chunks.front()
            } else {
                self.chunks.back()
            };
            match chunk.map(|c| c.count) {
                Some(count) if count <= left => {
                    if front {
                        self.chunks.pop_front();
                    } else {
                        self.chunks.pop_back();
                    }
                    left -= count;
                    self.len -= count;
                }
                Some(_) => {
                    for _ in 0..left {
                        self.pop(front);
                    }
                    left = 0;
                }
                None => break,
            }
        }
        done
    }

    /// `(chunk, index in chunk)` of element `index`, from the nearer end.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index <= self.len / 2 {
            let mut rest = index;
            for (ci, c) in self.chunks.iter().enumerate() {
                if rest < c.count {
                    return Some((ci, rest));
                }
                rest -= c.count;
            }
            None
        } else {
            let mut rest = self.len - 1 - index;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if rest < c.count {
                    return Some((ci, c.count - 1 - rest));
                }
                rest -= c.count;
            }
            None
        }
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (ci, i) = self.locate(index)?;
        let chunk = self.chunks.get(ci)?;
        let (start, _) = chunk.span(i)?;
        Some(chunk.read(start)?.0)
    }

    /// Replaces element `index`; whether it exists.
    pub fn set(&mut self, index: usize, element: &[u8]) -> bool {
        let Some((ci, i)) = self.locate(index) else {
            return false;
        };
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return false;
        };
        let Some((start, end)) = chunk.span(i) else {
            return false;
        };
        let mut bytes = Vec::with_capacity(encoded_len(element));
        encode(&mut bytes, element);
        chunk.data.splice(start..end, bytes);
        self.split_if_full(ci);
        true
    }

    /// Inserts `element` before (or after) the first `pivot` from the head;
    /// whether the pivot was found.
    pub fn insert(&mut self, pivot: &[u8], after: bool, element: &[u8]) -> bool {
        let Some((index, _)) = self.iter().enumerate().find(|(_, e)| *e == pivot) else {
            return false;
        };
        let at = if after { index + 1 } else { index };
        self.insert_at(at, element);
        true
    }

    fn insert_at(&mut self, at: usize, element: &[u8]) {
        if at == 0 {
            return self.push_front(element);
        }
        if at >= self.len {
            return self.push_back(element);
        }
        let Some((ci, i)) = self.locate(at) else {
            return;
        };
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return;
        };
        let Some((start, _)) = chunk.span(i) else {
            return;
        };
        let mut bytes = Vec::with_capacity(encoded_len(element));
        encode(&mut bytes, element);
        chunk.data.splice(start..start, bytes);
        chunk.count += 1;
        self.len += 1;
        self.split_if_full(ci);
    }

    fn split_if_full(&mut self, ci: usize) {
        if let Some(tail) = self.chunks.get_mut(ci).and_then(Chunk::split) {
            self.chunks.insert(ci + 1, tail);
        }
    }

    /// Removes up to `count` elements equal to `element`, from the head
    /// (`count > 0`), the tail (`count < 0`) or all (0); how many.
    pub fn remove(&mut self, count: i64, element: &[u8]) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let order: Vec<usize> = if count < 0 {
            (0..self.chunks.len()).rev().collect()
        } else {
            (0..self.chunks.len()).collect()
        };
        let mut removed = 0;
        for ci in order {
            if removed == limit {
                break;
            }
            let Some(chunk) = self.chunks.get_mut(ci) else {
                continue;
            };
            let kept: Vec<&[u8]> = chunk.iter().collect();
            let mut drop = vec![false; kept.len()];
            let positions: Vec<usize> = if count < 0 {
                (0..kept.len()).rev().collect()
            } else {
                (0..kept.len()).collect()
            };
            let mut here = 0;
            for p in positions {
                if removed + here == limit {
                    break;
                }
                if kept.get(p) == Some(&element) {
                    if let Some(d) = drop.get_mut(p) {
                        *d = true;
                    }
                    here += 1;
                }
            }
            if here > 0 {
                let rest: Vec<&[u8]> = kept
                    .iter()
                    .zip(&drop)
                    .filter(|(_, d)| !**d)
                    .map(|(e, _)| *e)
                    .collect();
                *chunk = Chunk::of(&rest);
                removed += here;
            }
        }
        self.len -= removed;
        self.chunks.retain(|c| c.count > 0);
        removed
    }

    /// Keeps the elements `start..=stop` (already normalised, in range).
    pub fn trim(&mut self, start: usize, stop: usize) {
        if start > stop || start >= self.len {
            self.chunks.clear();
            self.len = 0;
            return;
        }
        let tail = self.len - 1 - stop.min(self.len - 1);
        self.discard(false, tail);
        self.discard(true, start);
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(Chunk::iter)
    }

    /// The elements `start..=stop` (normalised, may exceed the length).
    pub fn range(&self, start: usize, stop: usize) -> impl Iterator<Item = &[u8]> {
        let (ci, i) = self.locate(start).unwrap_or((self.chunks.len(), 0));
        let take = if start > stop { 0 } else { stop - start + 1 };
        self.chunks
            .range(ci.min(self.chunks.len())..)
            .flat_map(Chunk::iter)
            .skip(i)
            .take(take)
    }

    /// The capacity of each chunk (for memory reports).
    pub fn chunk_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.chunks.iter().map(|c| c.data.capacity())
    }

    /// Bytes of the deque of chunks.
    pub fn size_of_deque(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }
}

impl FromIterator<Vec<u8>> for List {
    fn from_iter<I: IntoIterator<Item = Vec<u8>>>(iter: I) -> List {
        let mut list = List::new();
        for e in iter {
            list.push_back(&e);
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::test_rng::Rng;
    use std::collections::VecDeque;

    fn all(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn ends_and_index() {
        let mut l = List::new();
        l.push_back(b"b");
        l.push_front(b"a");
        l.push_back(b"");
        let long = vec![7u8; 20_000];
        l.push_back(&long);
        l.push_front(&long);
        assert_eq!(l.len(), 5);
        assert_eq!(l.get(1), Some(&b"a"[..]));
        assert_eq!(l.get(3), Some(&b""[..]));
        assert_eq!(l.get(4).map(<[u8]>::len), Some(20_000));
        assert_eq!(l.get(5), None);
        assert_eq!(l.pop(true).map(|e| e.len()), Some(20_000));
        assert_eq!(l.pop(false).map(|e| e.len()), Some(20_000));
        assert!(l.set(2, b"c"));
        assert!(!l.set(3, b"c"));
        assert_eq!(all(&l), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(l.insert(b"b", true, b"x"));
        assert!(!l.insert(b"zz", true, b"x"));
        assert_eq!(l.range(1, 2).collect::<Vec<_>>(), [&b"b"[..], b"x"]);
        assert_eq!(l.remove(0, b"x"), 1);
        l.trim(1, 1);
        assert_eq!(all(&l), [b"b".to_vec()]);
        l.trim(3, 1);
        assert!(l.is_empty());
    }

    /// Random operations against a VecDeque model, with elements long
    /// enough to make many chunks.
    #[test]
    fn against_a_model() {
        let mut rng = Rng::new(11);
        let mut l = List::new();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for round in 0..40_000u32 {
            let e = vec![b'a' + rng.below(4) as u8; rng.below(300) as usize];
            match rng.below(12) {
                0..=2 => {
                    l.push_back(&e);
                    model.push_back(e);
                }
                3..=4 => {
                    l.push_front(&e);
                    model.push_front(e);
                }
                5 => assert_eq!(l.pop(true), model.pop_front()),
                6 => assert_eq!(l.pop(false), model.pop_back()),
                7 if !model.is_empty() => {
                    let i = rng.below(model.len() as u64) as usize;
                    assert!(l.set(i, &e));
                    model[i] = e;
                }
                8 => {
                    let pivot = model
                        .get(rng.below(model.len() as u64 + 1) as usize)
                        .cloned();
                    let pivot = pivot.unwrap_or_default();
                    let found = model.iter().position(|x| *x == pivot);
                    assert_eq!(l.insert(&pivot, round % 2 == 0, &e), found.is_some());
                    if let Some(i) = found {
                        model.insert(if round % 2 == 0 { i + 1 } else { i }, e);
                    }
                }
                9 => {
                    let count = rng.below(5) as i64 - 2;
                    let n = l.remove(count, &e);
                    let mut left = if count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut idx: Vec<usize> = (0..model.len()).collect();
                    if count < 0 {
                        idx.reverse();
                    }
                    let mut gone = Vec::new();
                    for i in idx {
                        if left > 0 && model[i] == e {
                            gone.push(i);
                            left -= 1;
                        }
                    }
                    gone.sort_unstable();
                    for i in gone.iter().rev() {
                        model.remove(*i);
                    }
                    assert_eq!(n, gone.len());
                }
                10 => {
                    let n = rng.below(5) as usize;
                    assert_eq!(l.discard(round % 2 == 0, n), n.min(model.len()));
                    for _ in 0..n {
                        if round % 2 == 0 {
                            model.pop_front();
                        } else {
                            model.pop_back();
                        }
                    }
                }
                _ => {
                    if !model.is_empty() {
                        let i = rng.below(model.len() as u64) as usize;
                        assert_eq!(l.get(i), Some(&model[i][..]));
                        let j = i + rng.below(30) as usize;
                        let got: Vec<_> = l.range(i, j).map(<[u8]>::to_vec).collect();
                        let want: Vec<_> = model.iter().skip(i).take(j - i + 1).cloned().collect();
                        assert_eq!(got, want);
                    }
                }
            }
            assert_eq!(l.len(), model.len());
            if round % 4000 == 0 {
                assert_eq!(all(&l), model.iter().cloned().collect::<Vec<_>>());
            }
        }
        assert_eq!(all(&l), model.iter().cloned().collect::<Vec<_>>());
    }
}
