//! [`Stream`]: a stream's entries in id order, its metadata and its
//! consumer groups (each with its pending entries and consumers).
//!
//! Entries are packed in chunks of at most [`CHUNK_ENTRIES`] entries and
//! [`CHUNK_BYTES`] bytes, kept in a B-tree by their master id (the id of a
//! chunk's first entry, kept when that entry is deleted), as Redis packs a
//! stream in listpacks in a radix tree. A chunk starts with its master
//! fields (the field names of its first entry); an entry is
//! `[ms - master ms][seq][shape][strings]` in LEB128 varints, `seq` less
//! the master's when the ms is the master's, shape 0 for an entry with the
//! master fields (only its values follow: a field name is stored once per
//! chunk, like Redis's SAMEFIELDS flag) or `n + 1` for `n` strings of its
//! own (field, value, ...). A string is its length and its bytes.
//!
//! Appending and finding an id cost O(log n) plus a walk of one chunk;
//! deleting an entry moves at most one chunk's bytes.
//!
//! The operations named after commands ([`Stream::delete_ids`],
//! [`Stream::ack_delete`], [`Stream::trim`]) change entries, metadata and
//! groups as the mirror's stream handlers (src_erl/nsync_cmd_stream.erl)
//! do; the other commands run those handlers on a [`Stream::view`] of the
//! parts their arguments name, and [`Stream::merge`] writes back what they
//! made of it.

use std::collections::btree_map::Range;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::chunk;
use crate::rdb::{ConsumerGroup, Decimal, Str as RdbStr, Stream as RdbStream, StreamId};

/// The most bytes of a chunk (an entry bigger than this has a chunk of its
/// own), as Redis's `stream-node-max-bytes`.
pub const CHUNK_BYTES: usize = 4096;

/// The most entries of a chunk (a bound on the walk to find an id).
pub const CHUNK_ENTRIES: u32 = 128;

/// What deleting entries does to the consumer groups' references to them
/// (Redis 8.2's KEEPREF, DELREF, ACKED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refs {
    /// The groups keep their references (the default).
    KeepRef,
    /// The references go too.
    DelRef,
    /// Only entries no group references are deleted.
    Acked,
}

/// A trim: down to a length, or below an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("entry id {0:?} is not above the last entry's")]
    IdOrder(StreamId),
    /// A MAXLEN trim with ACKED would delete an entry after one it keeps:
    /// where Redis stops then depends on its node layout.
    #[error("a MAXLEN trim with ACKED depends on the node layout at {0:?}")]
    TrimDependsOnNodeLayout(StreamId),
}

/// A number of the metadata, groups and consumers: a snapshot gives a
/// `u64`, a handler any integer (an unknown entries-read is `None`).
pub type Int = i128;

/// The stream's metadata (DESIGN.md's `Meta` without its groups); `None`
/// where the term has `undefined` (older snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub last_id: StreamId,
    pub length: u64,
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<Int>,
}

/// A pending entry of a group: when it was last delivered, how often
/// (`i64`, to keep a big pending list small: a snapshot's numbers past it
/// leave the stream a term).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack {
    pub delivery_time: i64,
    pub delivery_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: Box<[u8]>,
    pub seen_time: Int,
    pub active_time: Option<Int>,
    pub pending: BTreeSet<StreamId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: Box<[u8]>,
    pub last_delivered_id: StreamId,
    pub entries_read: Option<Int>,
    pub pel: BTreeMap<StreamId, Nack>,
    /// In the order they were created.
    pub consumers: Vec<Consumer>,
}

impl Group {
    /// Drops the pending entries `ids` (acknowledged, or their entries
    /// deleted with their references), from the group and its consumers.
    fn unpend(&mut self, ids: &[StreamId]) {
        for id in ids {
            self.pel.remove(id);
        }
        for c in &mut self.consumers {
            for id in ids {
                c.pending.remove(id);
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Stream {
    chunks: BTreeMap<StreamId, Chunk>,
    count: usize,
    /// The last entry's id.
    tail: Option<StreamId>,
    pub meta: Meta,
    /// In the order they were created.
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Chunk {
    count: u32,
    /// Where the entries start, after the master fields.
    head: u32,
    data: Vec<u8>,
}

/// One entry: its id and its strings (field, value, ...).
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub id: StreamId,
    /// The chunk's master fields (encoded) and how many.
    master: &'a [u8],
    n_master: usize,
    same_fields: bool,
    /// The entry's strings after its header (values only with the
    /// master fields).
    body: &'a [u8],
    n_body: usize,
}

impl<'a> EntryRef<'a> {
    /// Its field, value, field, value, ...
    pub fn items(&self) -> Items<'a> {
        Items {
            master: self.master,
            body: self.body,
            interleave: self.same_fields,
            field_next: true,
            left: if self.same_fields {
                self.n_master.saturating_mul(2)
            } else {
                self.n_body
            },
        }
    }
}

/// The strings of an entry, in order.
pub struct Items<'a> {
    master: &'a [u8],
    body: &'a [u8],
    interleave: bool,
    field_next: bool,
    left: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let from_master = self.interleave && self.field_next;
        self.field_next = !self.field_next;
        if from_master {
            take_bytes(&mut self.master)
        } else {
            take_bytes(&mut self.body)
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The varint at the front of `data`, which then starts after it.
fn take_varint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            *data = data.get(i + 1..)?;
            return Some(value);
        }
    }
    None
}

/// The string (length, bytes) at the front of `data`.
fn take_bytes<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(data)?).ok()?;
    let bytes = data.get(..len)?;
    *data = data.get(len..)?;
    Some(bytes)
}

fn string_len(s: &[u8]) -> usize {
    varint_len(s.len() as u64) + s.len()
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// How an entry is written in a chunk.
struct Encoding {
    ms: u64,
    seq: u64,
    same_fields: bool,
    size: usize,
}

impl Chunk {
    /// An empty chunk whose master fields are those of `items` (none if
    /// they are not pairs).
    fn new<T: AsRef<[u8]>>(items: &[T]) -> Chunk {
        let fields: &[T] = if items.len().is_multiple_of(2) {
            items
        } else {
            &[]
        };
        let mut head = Vec::new();
        put_varint(&mut head, (fields.len() / 2) as u64);
        for f in fields.iter().step_by(2) {
            put_string(&mut head, f.as_ref());
        }
        match u32::try_from(head.len()) {
            Ok(len) => Chunk {
                count: 0,
                head: len,
                data: head,
            },
            Err(_) => Chunk {
                count: 0,
                head: 1,
                data: vec![0],
            },
        }
    }

    /// The master fields (encoded) and how many.
    fn master(&self) -> (&[u8], usize) {
        let mut fields = self.data.get(..self.head as usize).unwrap_or_default();
        let n = take_varint(&mut fields).unwrap_or(0);
        (fields, usize::try_from(n).unwrap_or(0))
    }

    fn same_fields<T: AsRef<[u8]>>(&self, items: &[T]) -> bool {
        let (mut fields, n) = self.master();
        items.len() == n.saturating_mul(2)
            && items
                .iter()
                .step_by(2)
                .all(|f| take_bytes(&mut fields) == Some(f.as_ref()))
    }

    fn encoding<T: AsRef<[u8]>>(&self, master: StreamId, id: StreamId, items: &[T]) -> Encoding {
        let ms = id.ms.wrapping_sub(master.ms);
        let seq = if ms == 0 {
            id.seq.wrapping_sub(master.seq)
        } else {
            id.seq
        };
        let same_fields = self.same_fields(items);
        let (shape, strings): (u64, usize) = if same_fields {
            (
                0,
                items
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(|v| string_len(v.as_ref()))
                    .sum(),
            )
        } else {
            (
                items.len() as u64 + 1,
                items.iter().map(|s| string_len(s.as_ref())).sum(),
            )
        };
        Encoding {
            ms,
            seq,
            same_fields,
            size: varint_len(ms) + varint_len(seq) + varint_len(shape) + strings,
        }
    }

    /// Appends an entry, growing the buffer by doubling up to the chunk
    /// size (exactly, past it).
    fn write<T: AsRef<[u8]>>(&mut self, enc: &Encoding, items: &[T]) {
        let need = self.data.len() + enc.size;
        if need > self.data.capacity() {
            let cap = (self.data.capacity() * 2)
                .max(need)
                .min(CHUNK_BYTES.max(need));
            self.data.reserve_exact(cap - self.data.len());
        }
        put_varint(&mut self.data, enc.ms);
        put_varint(&mut self.data, enc.seq);
        if enc.same_fields {
            put_varint(&mut self.data, 0);
            for v in items.iter().skip(1).step_by(2) {
                put_string(&mut self.data, v.as_ref());
            }
        } else {
            put_varint(&mut self.data, items.len() as u64 + 1);
            for s in items {
                put_string(&mut self.data, s.as_ref());
            }
        }
        self.count += 1;
    }

    /// Its entries with their byte ranges.
    fn iter(&self, master: StreamId) -> ChunkIter<'_> {
        let (fields, n_master) = self.master();
        ChunkIter {
            data: self.data.get(self.head as usize..).unwrap_or_default(),
            offset: self.head as usize,
            master,
            fields,
            n_master,
        }
    }

    /// The byte range of entry `id`.
    fn find(&self, master: StreamId, id: StreamId) -> Option<(usize, usize)> {
        self.iter(master)
            .take_while(|(e, _, _)| e.id <= id)
            .find(|(e, _, _)| e.id == id)
            .map(|(_, start, end)| (start, end))
    }

    fn remove_range(&mut self, start: usize, end: usize, entries: u32) {
        if start <= end && end <= self.data.len() {
            self.data.drain(start..end);
            self.count = self.count.saturating_sub(entries);
            if self.data.capacity() > 64 && self.data.len() * 2 < self.data.capacity() {
                self.data.shrink_to_fit();
            }
        }
    }
}

/// A chunk's entries, decoded one by one, with their byte ranges.
struct ChunkIter<'a> {
    data: &'a [u8],
    offset: usize,
    master: StreamId,
    fields: &'a [u8],
    n_master: usize,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = (EntryRef<'a>, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let mut rest = self.data;
        let ms = take_varint(&mut rest)?;
        let seq = take_varint(&mut rest)?;
        let shape = usize::try_from(take_varint(&mut rest)?).ok()?;
        let body = rest;
        let (same_fields, n_body) = match shape.checked_sub(1) {
            None => (true, self.n_master),
            Some(n) => (false, n),
        };
        for _ in 0..n_body {
            take_bytes(&mut rest)?;
        }
        let used = self.data.len() - rest.len();
        let id = StreamId {
            ms: self.master.ms.wrapping_add(ms),
            seq: if ms == 0 {
                self.master.seq.wrapping_add(seq)
            } else {
                seq
            },
        };
        let entry = EntryRef {
            id,
            master: self.fields,
            n_master: self.n_master,
            same_fields,
            body: body.get(..body.len() - rest.len()).unwrap_or_default(),
            n_body,
        };
        let start = self.offset;
        self.offset += used;
        self.data = rest;
        Some((entry, start, self.offset))
    }
}

/// Entries in id order from a start.
pub struct Entries<'a> {
    chunks: Range<'a, StreamId, Chunk>,
    current: Option<ChunkIter<'a>>,
    from: StreamId,
}

impl<'a> Iterator for Entries<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        loop {
            if let Some(chunk) = &mut self.current {
                for (entry, _, _) in chunk.by_ref() {
                    if entry.id >= self.from {
                        return Some(entry);
                    }
                }
            }
            let (&master, chunk) = self.chunks.next()?;
            self.current = Some(chunk.iter(master));
        }
    }
}

/// Entries in reverse id order from an end.
pub struct RevEntries<'a> {
    chunks: std::iter::Rev<Range<'a, StreamId, Chunk>>,
    current: Vec<EntryRef<'a>>,
    to: StreamId,
}

impl<'a> Iterator for RevEntries<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        loop {
            while let Some(entry) = self.current.pop() {
                if entry.id <= self.to {
                    return Some(entry);
                }
            }
            let (&master, chunk) = self.chunks.next()?;
            self.current = chunk.iter(master).map(|(e, _, _)| e).collect();
        }
    }
}

/// The bytes a client reads of a snapshot string.
enum Bytes<'a> {
    Raw(&'a [u8]),
    Int(Decimal),
}

impl AsRef<[u8]> for Bytes<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Raw(b) => b,
            Bytes::Int(d) => d.as_bytes(),
        }
    }
}

impl<'a> Bytes<'a> {
    fn of(s: &'a RdbStr) -> Bytes<'a> {
        match s {
            RdbStr::Raw(b) => Bytes::Raw(b),
            RdbStr::Int(i) => Bytes::Int(Decimal::new(*i)),
        }
    }
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Entries held (the metadata's `length` is kept apart, as the term's).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The big value of a snapshot stream; `None` if it cannot be one
    /// (ids out of order, a pending entry's numbers past `i64`): it is then
    /// a term.
    pub fn of_rdb(s: &RdbStream) -> Option<Stream> {
        let mut stream = Stream::new();
        let mut items: Vec<Bytes> = Vec::new();
        for entry in &s.entries {
            items.clear();
            items.extend(entry.fields.iter().map(Bytes::of));
            stream.push(entry.id, &items).ok()?;
        }
        stream.meta = Meta {
            last_id: s.last_id,
            length: s.length,
            first_id: s.first_id,
            max_deleted_id: s.max_deleted_id,
            entries_added: s.entries_added.map(Int::from),
        };
        stream.groups = s.groups.iter().map(group_of_rdb).collect::<Option<_>>()?;
        Some(stream)
    }

    /// Every entry, in id order.
    pub fn iter(&self) -> Entries<'_> {
        self.range(StreamId::default())
    }

    /// The entries from `from` on, in id order.
    pub fn range(&self, from: StreamId) -> Entries<'_> {
        let chunks = match self.chunks.range(..=from).next_back() {
            Some((&master, _)) => self.chunks.range(master..),
            None => self.chunks.range(..),
        };
        Entries {
            chunks,
            current: None,
            from,
        }
    }

    /// The entries up to `to`, in reverse id order.
    pub fn rev_range(&self, to: StreamId) -> RevEntries<'_> {
        RevEntries {
            chunks: self.chunks.range(..=to).rev(),
            current: Vec::new(),
            to,
        }
    }

    pub fn get(&self, id: StreamId) -> Option<EntryRef<'_>> {
        self.range(id).next().filter(|e| e.id == id)
    }

    fn first_entry_id(&self) -> Option<StreamId> {
        self.iter().next().map(|e| e.id)
    }

    fn last_entry_id(&self) -> Option<StreamId> {
        let (&master, chunk) = self.chunks.last_key_value()?;
        chunk.iter(master).last().map(|(e, _, _)| e.id)
    }

    /// Appends entry `id` (above the last one) with strings `items`
    /// (field, value, ...); the metadata is left as it is.
    pub fn push<T: AsRef<[u8]>>(&mut self, id: StreamId, items: &[T]) -> Result<(), StreamError> {
        if self.tail.is_some_and(|tail| id <= tail) {
            return Err(StreamError::IdOrder(id));
        }
        let fits = match self.chunks.last_key_value() {
            Some((&master, last)) if last.count < CHUNK_ENTRIES => {
                let enc = last.encoding(master, id, items);
                (last.data.len() + enc.size <= CHUNK_BYTES).then_some((master, enc))
            }
            _ => None,
        };
        match fits {
            Some((master, enc)) => {
                if let Some(last) = self.chunks.get_mut(&master) {
                    last.write(&enc, items);
                }
            }
            None => {
                if let Some(mut last) = self.chunks.last_entry() {
                    // full: no more growth
                    last.get_mut().data.shrink_to_fit();
                }
                let mut chunk = Chunk::new(items);
                let enc = chunk.encoding(id, id, items);
                chunk.write(&enc, items);
                self.chunks.insert(id, chunk);
            }
        }
        self.count += 1;
        self.tail = Some(id);
        Ok(())
    }

    /// XADD of entry `id`, whole (as a master propagates it: the id it
    /// made): appends the entry above the stream's last id and moves the
    /// metadata as the XADD handler does (last id, length, entries added,
    /// the first id of an empty stream), in one step.
    pub fn add<T: AsRef<[u8]>>(&mut self, id: StreamId, items: &[T]) -> Result<(), StreamError> {
        if id <= self.meta.last_id && self.meta.last_id != StreamId::default() {
            return Err(StreamError::IdOrder(id));
        }
        self.push(id, items)?;
        if self.meta.length == 0 {
            self.meta.first_id = Some(id);
        }
        self.meta.last_id = id;
        self.meta.length = self.meta.length.saturating_add(1);
        self.meta.entries_added = self.meta.entries_added.map(|n| n.saturating_add(1));
        Ok(())
    }

    /// Deletes entry `id`, if it is there; the metadata is left as it is.
    pub fn remove(&mut self, id: StreamId) -> bool {
        let Some((&master, chunk)) = self.chunks.range_mut(..=id).next_back() else {
            return false;
        };
        let Some((start, end)) = chunk.find(master, id) else {
            return false;
        };
        chunk.remove_range(start, end, 1);
        if chunk.count == 0 {
            self.chunks.remove(&master);
        }
        self.count -= 1;
        if self.tail == Some(id) {
            self.tail = self.last_entry_id();
        }
        true
    }

    /// Deletes the `n` first entries.
    fn remove_front(&mut self, mut n: usize) {
        while n > 0 {
            let Some(mut first) = self.chunks.first_entry() else {
                break;
            };
            let chunk = first.get_mut();
            let count = chunk.count as usize;
            if count <= n {
                first.remove();
                self.count -= count;
                n -= count;
                continue;
            }
            let master = *first.key();
            let chunk = first.get_mut();
            let end = chunk
                .iter(master)
                .nth(n - 1)
                .map_or(chunk.head as usize, |(_, _, end)| end);
            chunk.remove_range(chunk.head as usize, end, n as u32);
            self.count -= n;
            n = 0;
        }
        if self.count == 0 {
            self.tail = None;
        }
    }

    /// Whether a consumer group still references entry `id` (Redis 8.2's
    /// `streamEntryIsReferenced`): some group has not read it yet, or has
    /// it pending.
    fn referenced(&self, id: StreamId) -> bool {
        self.groups
            .iter()
            .any(|g| g.last_delivered_id < id || g.pel.contains_key(&id))
    }

    fn deletable(&self, id: StreamId, refs: Refs) -> bool {
        refs != Refs::Acked || !self.referenced(id)
    }

    /// The length and first id after entries were deleted.
    fn fix(&mut self) {
        self.meta.length = self.count as u64;
        self.meta.first_id = Some(self.first_entry_id().unwrap_or_default());
    }

    fn unpend_all(&mut self, ids: &[StreamId]) {
        for g in &mut self.groups {
            g.unpend(ids);
        }
    }

    /// XDEL, XDELEX: deletes the entries `ids` that exist (with ACKED,
    /// those no group references) and raises the max deleted id; with
    /// DELREF the groups drop their references to all of `ids`, as Redis
    /// does even for an id the stream does not hold.
    pub fn delete_ids(&mut self, ids: &[StreamId], refs: Refs) {
        let deletable: Vec<StreamId> = ids
            .iter()
            .copied()
            .filter(|&id| self.deletable(id, refs))
            .collect();
        for id in deletable {
            if self.remove(id) {
                self.meta.max_deleted_id = self.meta.max_deleted_id.max(Some(id));
            }
        }
        self.fix();
        if refs == Refs::DelRef {
            self.unpend_all(ids);
        }
    }

    /// XACKDEL: the ids pending in group `group` are acknowledged, then
    /// deleted as [`Stream::delete_ids`] deletes them.
    pub fn ack_delete(&mut self, group: &[u8], ids: &[StreamId], refs: Refs) {
        let Some(g) = self.groups.iter_mut().find(|g| *g.name == *group) else {
            return;
        };
        let pending: Vec<StreamId> = ids
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|id| g.pel.contains_key(id))
            .collect();
        g.unpend(&pending);
        self.delete_ids(&pending, refs);
    }

    /// About how many entries trim `trim` deletes (for where to run it).
    pub fn trim_work(&self, trim: Trim) -> usize {
        match trim {
            Trim::MaxLen(n) => self
                .count
                .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
            Trim::MinId(id) => self.chunks.range(..id).map(|(_, c)| c.count as usize).sum(),
        }
    }

    /// XTRIM, and XADD's trim: the oldest entries go, down to a length or
    /// below an id. With ACKED an entry a group references is kept and
    /// the walk goes on, but a MAXLEN trim that would then delete an
    /// entry after a kept one depends on the master's node layout, and is
    /// refused (the handler's `trim_depends_on_node_layout`). Nothing
    /// changes if nothing is deleted.
    pub fn trim(&mut self, trim: Trim, refs: Refs) -> Result<(), StreamError> {
        if refs == Refs::Acked && !self.groups.is_empty() {
            let gone = self.acked_trim(trim)?;
            for &id in &gone {
                self.remove(id);
            }
            if !gone.is_empty() {
                self.fix();
            }
            return Ok(());
        }
        let n = match trim {
            Trim::MaxLen(_) => self.trim_work(trim),
            Trim::MinId(min) => self.iter().take_while(|e| e.id < min).count(),
        };
        if n == 0 {
            return Ok(());
        }
        let gone: Vec<StreamId> = if refs == Refs::DelRef && !self.groups.is_empty() {
            self.iter().take(n).map(|e| e.id).collect()
        } else {
            Vec::new()
        };
        self.remove_front(n);
        self.fix();
        self.unpend_all(&gone);
        Ok(())
    }

    /// The entries an ACKED trim deletes.
    fn acked_trim(&self, trim: Trim) -> Result<Vec<StreamId>, StreamError> {
        let mut gone = Vec::new();
        match trim {
            Trim::MaxLen(n) => {
                let mut len = self.count as u64;
                let mut skipped = false;
                for e in self.iter() {
                    if len <= n {
                        break;
                    }
                    if self.referenced(e.id) {
                        skipped = true;
                    } else if skipped {
                        return Err(StreamError::TrimDependsOnNodeLayout(e.id));
                    } else {
                        gone.push(e.id);
                        len -= 1;
                    }
                }
            }
            Trim::MinId(min) => {
                gone.extend(
                    self.iter()
                        .take_while(|e| e.id < min)
                        .filter(|e| !self.referenced(e.id))
                        .map(|e| e.id),
                );
            }
        }
        Ok(gone)
    }

    /// The parts of the stream a command with arguments `probes` can
    /// touch: the entries whose ids are among them, the metadata, and the
    /// groups they name with the consumers they name or that have one of
    /// those ids pending, the pending entries restricted to those ids
    /// (with `with_pending`, the whole pending lists of the consumers
    /// named: XGROUP DELCONSUMER). More than a command touches is harmless.
    pub fn view(&self, probes: &[&[u8]], with_pending: bool) -> View<'_> {
        let region = Region::new(probes, with_pending);
        View {
            entries: region.ids.iter().filter_map(|&id| self.get(id)).collect(),
            meta: self.meta.clone(),
            groups: self
                .groups
                .iter()
                .filter(|g| region.has(&g.name))
                .map(|g| region.group(g))
                .collect(),
        }
    }

    /// Writes back what a handler made of [`Stream::view`]`(probes,
    /// with_pending)`, taken of this same state: the view's parts are
    /// replaced with `entries`, `meta` and `groups` (new entries are
    /// appended, new groups and consumers go last).
    pub fn merge<T: AsRef<[u8]>>(
        &mut self,
        probes: &[&[u8]],
        with_pending: bool,
        entries: &[(StreamId, Vec<T>)],
        meta: Meta,
        groups: Vec<Group>,
    ) -> Result<(), StreamError> {
        let region = Region::new(probes, with_pending);
        let viewed: Vec<StreamId> = region
            .ids
            .iter()
            .copied()
            .filter(|&id| self.get(id).is_some())
            .collect();
        for &id in &viewed {
            if !entries.iter().any(|(new, _)| *new == id) {
                self.remove(id);
            }
        }
        for (id, items) in entries {
            if viewed.binary_search(id).is_err() {
                self.push(*id, items)?;
            }
        }
        self.meta = meta;
        let names: Vec<Box<[u8]>> = self
            .groups
            .iter()
            .filter(|g| region.has(&g.name))
            .map(|g| g.name.clone())
            .collect();
        let mut groups: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
        for name in &names {
            let new = groups
                .iter_mut()
                .find(|g| g.as_ref().is_some_and(|g| g.name == *name))
                .and_then(Option::take);
            match new {
                None => self.groups.retain(|g| g.name != *name),
                Some(new) => {
                    if let Some(g) = self.groups.iter_mut().find(|g| g.name == *name) {
                        region.merge_group(g, new);
                    }
                }
            }
        }
        for new in groups.into_iter().flatten() {
            match self.groups.iter_mut().find(|g| g.name == new.name) {
                Some(g) => *g = new,
                None => self.groups.push(new),
            }
        }
        Ok(())
    }

    /// Bytes of memory (see [`super::Big::memory`]): the chunks, the
    /// B-trees (nodes of 11 slots, about half full when filled in order)
    /// and the groups.
    pub fn memory(&self) -> usize {
        let chunks: usize = self.chunks.values().map(|c| chunk(c.data.capacity())).sum();
        let index = btree(
            self.chunks.len(),
            std::mem::size_of::<StreamId>() + std::mem::size_of::<Chunk>(),
        );
        let groups = vec_memory::<Group>(self.groups.capacity())
            + self
                .groups
                .iter()
                .map(|g| {
                    chunk(g.name.len())
                        + btree(
                            g.pel.len(),
                            std::mem::size_of::<StreamId>() + std::mem::size_of::<Nack>(),
                        )
                        + vec_memory::<Consumer>(g.consumers.capacity())
                        + g.consumers
                            .iter()
                            .map(|c| {
                                chunk(c.name.len())
                                    + btree(c.pending.len(), std::mem::size_of::<StreamId>())
                            })
                            .sum::<usize>()
                })
                .sum::<usize>();
        chunks + index + groups
    }
}

/// The bytes of a B-tree of `len` items of `item` bytes: leaves of 11
/// slots about half full (6 items: a B-tree filled in order splits its
/// last leaf), plus a sixth as many internal nodes with their 12 edges.
fn btree(len: usize, item: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let leaf = chunk(16 + 11 * item);
    let leaves = len.div_ceil(6);
    leaves * leaf + leaves.div_ceil(6) * (leaf + 12 * 8)
}

/// The bytes of a vector's buffer.
fn vec_memory<T>(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        chunk(capacity * std::mem::size_of::<T>())
    }
}

fn group_of_rdb(g: &ConsumerGroup) -> Option<Group> {
    let int = |n: u64| i64::try_from(n).ok();
    Some(Group {
        name: Box::from(&*g.name),
        last_delivered_id: g.last_delivered_id,
        entries_read: g.entries_read.map(Int::from),
        pel: g
            .pending
            .iter()
            .map(|p| {
                Some((
                    p.id,
                    Nack {
                        delivery_time: int(p.delivery_time_ms)?,
                        delivery_count: int(p.delivery_count)?,
                    },
                ))
            })
            .collect::<Option<_>>()?,
        consumers: g
            .consumers
            .iter()
            .map(|c| Consumer {
                name: Box::from(&*c.name),
                seen_time: Int::from(c.seen_time_ms),
                active_time: c.active_time_ms.map(Int::from),
                pending: c.pending.iter().copied().collect(),
            })
            .collect(),
    })
}

/// What [`Stream::view`] gives: its entries in id order.
#[derive(Debug)]
pub struct View<'a> {
    pub entries: Vec<EntryRef<'a>>,
    pub meta: Meta,
    pub groups: Vec<Group>,
}

/// The part of a stream a command's arguments name (see [`Stream::view`]).
struct Region<'p> {
    ids: BTreeSet<StreamId>,
    names: HashSet<&'p [u8]>,
    with_pending: bool,
}

/// An argument as a complete stream id, `ms-seq` or `ms`, as the
/// handlers' `parse_id` reads one.
pub fn parse_id(arg: &[u8]) -> Option<StreamId> {
    let text = std::str::from_utf8(arg).ok()?;
    let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
    Some(StreamId {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

impl<'p> Region<'p> {
    fn new(probes: &[&'p [u8]], with_pending: bool) -> Region<'p> {
        Region {
            ids: probes.iter().filter_map(|p| parse_id(p)).collect(),
            names: probes.iter().copied().collect(),
            with_pending,
        }
    }

    fn has(&self, name: &[u8]) -> bool {
        self.names.contains(name)
    }

    fn consumer(&self, c: &Consumer) -> bool {
        self.has(&c.name) || self.ids.iter().any(|id| c.pending.contains(id))
    }

    /// The part of `c`'s pending entries in the region.
    fn pending(&self, c: &Consumer) -> BTreeSet<StreamId> {
        if self.with_pending && self.has(&c.name) {
            return c.pending.clone();
        }
        self.ids
            .iter()
            .filter(|id| c.pending.contains(id))
            .copied()
            .collect()
    }

    /// The ids of `g`'s pending entries in the region.
    fn pel_ids(&self, g: &Group) -> BTreeSet<StreamId> {
        let mut ids = self.ids.clone();
        if self.with_pending {
            for c in g.consumers.iter().filter(|c| self.has(&c.name)) {
                ids.extend(c.pending.iter().copied());
            }
        }
        ids
    }

    /// The part of group `g` in the region.
    fn group(&self, g: &Group) -> Group {
        Group {
            name: g.name.clone(),
            last_delivered_id: g.last_delivered_id,
            entries_read: g.entries_read,
            pel: self
                .pel_ids(g)
                .into_iter()
                .filter_map(|id| Some((id, *g.pel.get(&id)?)))
                .collect(),
            consumers: g
                .consumers
                .iter()
                .filter(|c| self.consumer(c))
                .map(|c| Consumer {
                    name: c.name.clone(),
                    seen_time: c.seen_time,
                    active_time: c.active_time,
                    pending: self.pending(c),
                })
                .collect(),
        }
    }

    /// Replaces the part of `g` in the region with `new`.
    fn merge_group(&self, g: &mut Group, new: Group) {
        let pel_ids = self.pel_ids(g);
        let viewed: Vec<(Box<[u8]>, BTreeSet<StreamId>)> = g
            .consumers
            .iter()
            .filter(|c| self.consumer(c))
            .map(|c| (c.name.clone(), self.pending(c)))
            .collect();
        g.last_delivered_id = new.last_delivered_id;
        g.entries_read = new.entries_read;
        for id in &pel_ids {
            g.pel.remove(id);
        }
        g.pel.extend(new.pel);
        let mut consumers: Vec<Option<Consumer>> = new.consumers.into_iter().map(Some).collect();
        for (name, pending) in &viewed {
            let nc = consumers
                .iter_mut()
                .find(|c| c.as_ref().is_some_and(|c| c.name == *name))
                .and_then(Option::take);
            match nc {
                None => g.consumers.retain(|c| c.name != *name),
                Some(nc) => {
                    if let Some(c) = g.consumers.iter_mut().find(|c| c.name == *name) {
                        c.seen_time = nc.seen_time;
                        c.active_time = nc.active_time;
                        for id in pending {
                            c.pending.remove(id);
                        }
                        c.pending.extend(nc.pending);
                    }
                }
            }
        }
        for nc in consumers.into_iter().flatten() {
            match g.consumers.iter_mut().find(|c| c.name == nc.name) {
                Some(c) => *c = nc,
                None => g.consumers.push(nc),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::test_rng::Rng;

    type Entry = (StreamId, Vec<Vec<u8>>);

    /// A stream as plain vectors: the model, and what a handler sees.
    #[derive(Debug, Clone, Default, PartialEq)]
    struct Parts {
        entries: Vec<Entry>,
        meta: Meta,
        groups: Vec<Group>,
    }

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn parts(s: &Stream) -> Parts {
        Parts {
            entries: s.iter().map(owned).collect(),
            meta: s.meta.clone(),
            groups: s.groups.clone(),
        }
    }

    fn owned(e: EntryRef) -> Entry {
        (e.id, e.items().map(<[u8]>::to_vec).collect())
    }

    fn view_parts(v: View) -> Parts {
        Parts {
            entries: v.entries.into_iter().map(owned).collect(),
            meta: v.meta,
            groups: v.groups,
        }
    }

    // The model: the handlers' semantics over vectors.

    fn referenced(p: &Parts, i: StreamId) -> bool {
        p.groups
            .iter()
            .any(|g| g.last_delivered_id < i || g.pel.contains_key(&i))
    }

    fn fix(p: &mut Parts) {
        p.meta.length = p.entries.len() as u64;
        p.meta.first_id = Some(p.entries.first().map_or_else(StreamId::default, |e| e.0));
    }

    fn unpend(p: &mut Parts, ids: &[StreamId]) {
        for g in &mut p.groups {
            g.unpend(ids);
        }
    }

    fn model_delete(p: &mut Parts, ids: &[StreamId], refs: Refs) {
        let deletable: Vec<StreamId> = ids
            .iter()
            .copied()
            .filter(|&i| refs != Refs::Acked || !referenced(p, i))
            .collect();
        let deleted: Vec<StreamId> = p
            .entries
            .iter()
            .map(|e| e.0)
            .filter(|i| deletable.contains(i))
            .collect();
        p.meta.max_deleted_id = deleted
            .iter()
            .copied()
            .map(Some)
            .fold(p.meta.max_deleted_id, Ord::max);
        p.entries.retain(|e| !deletable.contains(&e.0));
        fix(p);
        if refs == Refs::DelRef {
            unpend(p, ids);
        }
    }

    fn model_trim(p: &mut Parts, trim: Trim, refs: Refs) -> Result<(), StreamError> {
        let mut gone = Vec::new();
        match trim {
            Trim::MaxLen(n) => {
                let (mut len, mut skipped) = (p.entries.len() as u64, false);
                for e in &p.entries {
                    if len <= n {
                        break;
                    }
                    if refs == Refs::Acked && referenced(p, e.0) {
                        skipped = true;
                    } else if skipped {
                        return Err(StreamError::TrimDependsOnNodeLayout(e.0));
                    } else {
                        gone.push(e.0);
                        len -= 1;
                    }
                }
            }
            Trim::MinId(min) => gone.extend(
                p.entries
                    .iter()
                    .map(|e| e.0)
                    .take_while(|&i| i < min)
                    .filter(|&i| refs != Refs::Acked || !referenced(p, i)),
            ),
        }
        if !gone.is_empty() {
            p.entries.retain(|e| !gone.contains(&e.0));
            fix(p);
            if refs == Refs::DelRef {
                unpend(p, &gone);
            }
        }
        Ok(())
    }

    // Handlers, run on the whole model and on a view (as the Erlang
    // handlers run on projections).

    fn group_mut<'a>(p: &'a mut Parts, name: &[u8]) -> Option<&'a mut Group> {
        p.groups.iter_mut().find(|g| *g.name == *name)
    }

    fn ensure_consumer(g: &mut Group, c: &[u8], now: i64) {
        if !g.consumers.iter().any(|x| *x.name == *c) {
            g.consumers.push(Consumer {
                name: c.into(),
                seen_time: Int::from(now),
                active_time: Some(-1),
                pending: BTreeSet::new(),
            });
        }
    }

    /// XCLAIM g c 0 ids FORCE (also how XREADGROUP is propagated).
    fn claim(p: &mut Parts, g: &[u8], c: &[u8], ids: &[StreamId], now: i64) {
        let exists: Vec<StreamId> = p.entries.iter().map(|e| e.0).collect();
        let Some(grp) = group_mut(p, g) else { return };
        ensure_consumer(grp, c, now);
        for &i in ids {
            let count = grp.pel.get(&i).map_or(0, |n| n.delivery_count);
            grp.unpend(&[i]);
            if exists.contains(&i) {
                grp.pel.insert(
                    i,
                    Nack {
                        delivery_time: now,
                        delivery_count: count + 1,
                    },
                );
                if let Some(x) = grp.consumers.iter_mut().find(|x| *x.name == *c) {
                    x.pending.insert(i);
                }
            }
        }
    }

    fn del_consumer(p: &mut Parts, g: &[u8], c: &[u8]) {
        let Some(grp) = group_mut(p, g) else { return };
        let mine: Vec<StreamId> = grp
            .consumers
            .iter()
            .filter(|x| *x.name == *c)
            .flat_map(|x| x.pending.iter().copied())
            .collect();
        grp.consumers.retain(|x| *x.name != *c);
        for i in mine {
            grp.pel.remove(&i);
        }
    }

    fn create_group(p: &mut Parts, g: &[u8], last: StreamId) {
        if group_mut(p, g).is_none() {
            p.groups.push(Group {
                name: g.into(),
                last_delivered_id: last,
                entries_read: p.meta.entries_added,
                pel: BTreeMap::new(),
                consumers: Vec::new(),
            });
        }
    }

    fn xadd(p: &mut Parts, i: StreamId, items: &[Vec<u8>]) {
        if p.meta.length == 0 {
            p.meta.first_id = Some(i);
        }
        p.meta.length += 1;
        p.meta.last_id = i;
        p.meta.entries_added = p.meta.entries_added.map(|n| n + 1);
        p.entries.push((i, items.to_vec()));
    }

    fn items(rng: &mut Rng) -> Vec<Vec<u8>> {
        let value = |rng: &mut Rng| vec![b'a' + rng.below(3) as u8; rng.below(12) as usize];
        match rng.below(10) {
            0 => vec![value(rng)],
            1 => vec![b"big".to_vec(), vec![b'x'; 5000]],
            2 => Vec::new(),
            3 => vec![b"g".to_vec(), value(rng), b"f".to_vec(), value(rng)],
            _ => vec![b"f".to_vec(), value(rng), b"g".to_vec(), value(rng)],
        }
    }

    fn refs(rng: &mut Rng) -> Refs {
        [Refs::KeepRef, Refs::DelRef, Refs::Acked][rng.below(3) as usize]
    }

    fn stream_of(p: &Parts) -> Stream {
        let mut s = Stream::new();
        for (i, items) in &p.entries {
            s.push(*i, items).unwrap();
        }
        s.meta = p.meta.clone();
        s.groups = p.groups.clone();
        s
    }

    #[test]
    fn entries_round_trip_and_share_fields() {
        let mut s = Stream::new();
        s.push(id(5, 0), &[b"f".as_slice(), b"1"]).unwrap();
        s.push(id(5, 1), &[b"f".as_slice(), b"22"]).unwrap();
        s.push(id(9, 0), &[b"g".as_slice(), b"3", b"h", b"4"])
            .unwrap();
        s.push(id(9, 3), &[b"odd".as_slice()]).unwrap();
        s.push(id(u64::MAX, u64::MAX), &[] as &[&[u8]]).unwrap();
        assert_eq!(
            s.push(id(9, 3), &[b"x".as_slice()]),
            Err(StreamError::IdOrder(id(9, 3)))
        );
        let all: Vec<Entry> = s.iter().map(owned).collect();
        assert_eq!(all[1], (id(5, 1), vec![b"f".to_vec(), b"22".to_vec()]));
        assert_eq!(all[3], (id(9, 3), vec![b"odd".to_vec()]));
        assert_eq!(all[4], (id(u64::MAX, u64::MAX), vec![]));
        // an entry with the master fields stores its values only
        let (&master, chunk) = s.chunks.first_key_value().unwrap();
        let sizes: Vec<usize> = chunk.iter(master).map(|(_, a, b)| b - a).collect();
        assert_eq!(sizes[..2], [5, 6]);
        assert_eq!(s.range(id(5, 1)).next().map(|e| e.id), Some(id(5, 1)));
        assert_eq!(s.range(id(6, 0)).next().map(|e| e.id), Some(id(9, 0)));
        let rev: Vec<StreamId> = s.rev_range(id(9, 2)).map(|e| e.id).collect();
        assert_eq!(rev, [id(9, 0), id(5, 1), id(5, 0)]);
        assert!(s.get(id(9, 1)).is_none());
        assert!(s.remove(id(u64::MAX, u64::MAX)));
        s.push(id(10, 0), &[b"f".as_slice(), b"5"]).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(parse_id(b"12-3"), Some(id(12, 3)));
        assert_eq!(parse_id(b"12"), Some(id(12, 0)));
        assert_eq!(parse_id(b"1-2-3"), None);
        assert_eq!(parse_id(b"-1"), None);
    }

    /// Random appends, deletions, trims (KEEPREF, DELREF, ACKED) and
    /// acknowledgements against the model, with reads from random ids
    /// both ways; entries large and small make chunks of every size.
    #[test]
    fn against_a_model() {
        let mut rng = Rng::new(7);
        let mut s = Stream::new();
        let mut m = Parts::default();
        let mut next = id(1, 0);
        for round in 0..30_000u32 {
            let pick = |rng: &mut Rng, m: &Parts| match m.entries.len() as u64 {
                0 => next,
                n => m.entries[rng.below(n) as usize].0,
            };
            match rng.below(20) {
                0..=9 => {
                    next = if rng.below(3) == 0 {
                        id(next.ms + 1 + rng.below(300), rng.below(3))
                    } else {
                        id(next.ms, next.seq + 1)
                    };
                    let it = items(&mut rng);
                    s.push(next, &it).unwrap();
                    m.entries.push((next, it));
                }
                10 => {
                    let ids: Vec<StreamId> =
                        (0..rng.below(4)).map(|_| pick(&mut rng, &m)).collect();
                    let r = refs(&mut rng);
                    s.delete_ids(&ids, r);
                    model_delete(&mut m, &ids, r);
                }
                11 if rng.below(8) == 0 => {
                    let n = m.entries.len() as u64;
                    let t = match rng.below(3) {
                        0 => Trim::MaxLen(n.saturating_sub(rng.below(40))),
                        1 => {
                            Trim::MinId(m.entries.get(rng.below(40) as usize).map_or(next, |e| e.0))
                        }
                        _ => Trim::MinId(pick(&mut rng, &m)),
                    };
                    let r = refs(&mut rng);
                    let trimmed = s.trim(t, r);
                    assert_eq!(trimmed, model_trim(&mut m, t, r), "round {round}");
                    if trimmed.is_err() {
                        // refused: nothing changed; clear the references
                        s.groups.clear();
                        m.groups.clear();
                    }
                }
                12 => {
                    // a group, or one that has read everything (XGROUP SETID)
                    let g: &[u8] = if rng.below(2) == 0 { b"g1" } else { b"g2" };
                    let last = pick(&mut rng, &m);
                    create_group(&mut m, g, last);
                    if let Some(grp) = group_mut(&mut m, g) {
                        grp.last_delivered_id =
                            grp.last_delivered_id
                                .max(if rng.below(2) == 0 { next } else { last });
                    }
                    s.groups = m.groups.clone();
                }
                13..=14 if !m.entries.is_empty() => {
                    let ids: Vec<StreamId> =
                        (0..1 + rng.below(3)).map(|_| pick(&mut rng, &m)).collect();
                    claim(&mut m, b"g1", b"c", &ids, i64::from(round));
                    s.groups = m.groups.clone();
                }
                15 => {
                    let ids: Vec<StreamId> =
                        (0..1 + rng.below(3)).map(|_| pick(&mut rng, &m)).collect();
                    let r = refs(&mut rng);
                    s.ack_delete(b"g1", &ids, r);
                    let pending: Vec<StreamId> = m
                        .groups
                        .iter()
                        .filter(|g| &*g.name == b"g1")
                        .flat_map(|g| ids.iter().copied().filter(|i| g.pel.contains_key(i)))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    if let Some(g) = group_mut(&mut m, b"g1") {
                        g.unpend(&pending);
                        model_delete(&mut m, &pending, r);
                    }
                }
                _ => {
                    let from = pick(&mut rng, &m);
                    let n = rng.below(300) as usize;
                    let fwd: Vec<Entry> = s.range(from).take(n).map(owned).collect();
                    let want: Vec<Entry> = m
                        .entries
                        .iter()
                        .filter(|e| e.0 >= from)
                        .take(n)
                        .cloned()
                        .collect();
                    assert_eq!(fwd, want, "round {round}");
                    let rev: Vec<Entry> = s.rev_range(from).take(n).map(owned).collect();
                    let want: Vec<Entry> = m
                        .entries
                        .iter()
                        .rev()
                        .filter(|e| e.0 <= from)
                        .take(n)
                        .cloned()
                        .collect();
                    assert_eq!(rev, want, "round {round}");
                }
            }
            assert_eq!(s.len(), m.entries.len(), "round {round}");
            if round % 97 == 0 {
                assert_eq!(parts(&s), m, "round {round}");
            }
        }
        assert_eq!(parts(&s), m);
        assert!(s.memory() > 0);
    }

    /// A handler run on a view and merged back changes the stream as the
    /// handler run on the whole value does.
    #[test]
    fn view_and_merge_equal_the_whole() {
        let mut rng = Rng::new(3);
        let mut base = Parts::default();
        for i in 0..400u64 {
            xadd(&mut base, id(100 + i / 3, i % 3), &items(&mut rng));
        }
        create_group(&mut base, b"g1", id(150, 0));
        create_group(&mut base, b"g2", id(0, 0));
        for i in 0..60u64 {
            let c: &[u8] = [b"alice".as_slice(), b"bob", b"carol"][(i % 3) as usize];
            let e = base.entries[rng.below(400) as usize].0;
            claim(
                &mut base,
                if i % 2 == 0 { b"g1" } else { b"g2" },
                c,
                &[e],
                i as i64,
            );
        }
        let ids = |rng: &mut Rng, p: &Parts| -> Vec<StreamId> {
            (0..1 + rng.below(4))
                .map(|_| p.entries[rng.below(p.entries.len() as u64) as usize].0)
                .collect()
        };
        let text = |i: StreamId| format!("{}-{}", i.ms, i.seq).into_bytes();
        for round in 0..400u64 {
            let mut whole = base.clone();
            let g: Vec<u8> = if rng.below(2) == 0 {
                b"g1".to_vec()
            } else {
                b"g2".to_vec()
            };
            let c: Vec<u8> = [b"alice".as_slice(), b"bob", b"dave"][rng.below(3) as usize].to_vec();
            let picked = ids(&mut rng, &whole);
            let mut probes: Vec<Vec<u8>> =
                vec![b"key".to_vec(), g.clone(), c.clone(), b"0".to_vec()];
            probes.extend(picked.iter().map(|&i| text(i)));
            let mut with_pending = false;
            let handler: Box<dyn Fn(&mut Parts)> = match round % 7 {
                0 => Box::new(|p: &mut Parts| {
                    if let Some(grp) = group_mut(p, &g) {
                        grp.unpend(&picked)
                    }
                }),
                1 => Box::new(|p: &mut Parts| claim(p, &g, &c, &picked, 7)),
                2 => {
                    with_pending = true;
                    Box::new(|p: &mut Parts| del_consumer(p, &g, &c))
                }
                3 => Box::new(|p: &mut Parts| p.groups.retain(|x| *x.name != *g)),
                4 => Box::new(|p: &mut Parts| {
                    create_group(p, b"new", id(1, 1));
                    if let Some(grp) = group_mut(p, &g) {
                        ensure_consumer(grp, &c, 9);
                        grp.last_delivered_id = id(999, 9);
                    }
                }),
                5 => Box::new(|p: &mut Parts| {
                    xadd(p, id(1000, round), &[b"f".to_vec(), b"v".to_vec()])
                }),
                _ => Box::new(|p: &mut Parts| {
                    p.meta.last_id = id(5000, 0);
                    p.meta.max_deleted_id = Some(id(1, 0));
                }),
            };
            if round % 7 == 4 {
                probes.push(b"new".to_vec());
            }
            let probes: Vec<&[u8]> = probes.iter().map(Vec::as_slice).collect();
            let mut s = stream_of(&whole);
            let mut view = view_parts(s.view(&probes, with_pending));
            handler(&mut view);
            s.merge(&probes, with_pending, &view.entries, view.meta, view.groups)
                .unwrap();
            handler(&mut whole);
            assert_eq!(parts(&s), whole, "round {round}");
        }
    }

    #[test]
    fn add_is_the_model_xadd() {
        let mut rng = Rng::new(11);
        let mut s = Stream::new();
        let mut m = Parts::default();
        s.meta.entries_added = Some(0);
        m.meta.entries_added = Some(0);
        for i in 0..300u64 {
            let (e, items) = (id(10 + i / 2, i % 2), items(&mut rng));
            s.add(e, &items).unwrap();
            xadd(&mut m, e, &items);
        }
        assert_eq!(parts(&s), m);
        assert_eq!(s.meta.length, 300);
        // An id at or below the last is refused and changes nothing.
        assert_eq!(
            s.add(id(10, 0), &[b"f".as_slice(), b"v"]),
            Err(StreamError::IdOrder(id(10, 0)))
        );
        assert_eq!(parts(&s), m);
        // A stream from a pre-7.0 snapshot counts no entries added.
        let mut old = Stream::new();
        old.add(id(1, 1), &[b"f".as_slice(), b"v"]).unwrap();
        assert_eq!(old.meta.entries_added, None);
        assert_eq!(old.meta.first_id, Some(id(1, 1)));
    }

    #[test]
    fn acked_maxlen_past_a_kept_entry_is_refused() {
        let mut s = Stream::new();
        for i in 1..=3 {
            s.push(id(i, 0), &[b"f".as_slice(), b"v"]).unwrap();
        }
        s.groups.push(Group {
            name: b"g".as_slice().into(),
            last_delivered_id: id(3, 0),
            entries_read: None,
            pel: [(
                id(1, 0),
                Nack {
                    delivery_time: 1,
                    delivery_count: 1,
                },
            )]
            .into(),
            consumers: Vec::new(),
        });
        assert_eq!(
            s.trim(Trim::MaxLen(1), Refs::Acked),
            Err(StreamError::TrimDependsOnNodeLayout(id(2, 0)))
        );
        assert_eq!(s.len(), 3);
        s.trim(Trim::MinId(id(3, 0)), Refs::Acked).unwrap();
        assert_eq!(
            s.iter().map(|e| e.id).collect::<Vec<_>>(),
            [id(1, 0), id(3, 0)]
        );
        assert_eq!(s.meta.first_id, Some(id(1, 0)));
    }

    /// A million small entries take about 13 bytes each (Redis: ~21).
    #[test]
    fn packed_small_entries() {
        let mut s = Stream::new();
        for i in 0..100_000u64 {
            let v = format!("e{}", 1_000_000 + i);
            s.push(
                id(1_700_000_000_000 + i / 10, i % 10),
                &[b"f".as_slice(), v.as_bytes()],
            )
            .unwrap();
        }
        let per_entry = s.memory() as f64 / 100_000.0;
        assert!(per_entry < 16.0, "{per_entry} bytes per entry");
    }
}
