//! The bytes fed and not yet consumed, arranged for the parser.
//!
//! Chunks are parsed where they lie: a chunk handed over as `Bytes` becomes
//! the parser's buffer without a copy. A record cut by a chunk boundary is
//! read from a stitch: the unconsumed end of one chunk and as much of the
//! next as the record needs (and a little more), copied together. Once the
//! parse has passed the old end, it goes on in the next chunk itself.
//! Consumed bytes are added to the CRC-64 in long runs, when their buffer
//! is left.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::crc::Crc64;

/// Bytes of the next chunk copied into a stitch beyond those the cut
/// record needs, so that it (and usually a few records after it) completes
/// there without a second stitch.
const STITCH_EXTRA: usize = 512;

#[derive(Debug, Default)]
pub(crate) struct Input {
    /// The buffer being parsed; `cur[pos..]` is unconsumed.
    cur: Bytes,
    pos: usize,
    /// `cur[..hashed]` has been added to the checksum.
    hashed: usize,
    /// Set when `cur` is a stitch: where its copy of the start of
    /// `queue.front()` begins.
    stitch: Option<usize>,
    /// Chunks fed after `cur`, in order.
    queue: VecDeque<Bytes>,
    /// Bytes fed by copy since the last chunk was queued.
    pending: BytesMut,
    /// Bytes in `queue` and `pending`.
    queued: usize,
    /// Absolute snapshot offset of `cur[pos]`.
    offset: u64,
    /// Unconsumed bytes needed before parsing is worth retrying.
    need: usize,
    crc: Crc64,
}

impl Input {
    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        self.queued += data.len();
    }

    pub(crate) fn feed_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.queue_pending();
        self.queued += data.len();
        self.queue.push_back(data);
    }

    /// The buffer to parse, the index of its first unconsumed byte and the
    /// snapshot offset of its first byte.
    pub(crate) fn buffer(&self) -> (&Bytes, usize, u64) {
        (
            &self.cur,
            self.pos,
            self.offset.saturating_sub(self.pos as u64),
        )
    }

    /// The parse consumed `cur` up to `mark` and needs `need` more bytes
    /// from there (0: any) before it can go on.
    pub(crate) fn consume_to(&mut self, mark: usize, need: usize) {
        let mark = mark.clamp(self.pos, self.cur.len());
        self.offset = self.offset.saturating_add((mark - self.pos) as u64);
        self.pos = mark;
        self.need = need;
    }

    /// Bytes of the snapshot consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The CRC-64 of everything consumed so far.
    pub(crate) fn checksum(&mut self) -> u64 {
        self.flush_crc();
        self.crc.value()
    }

    /// Whether the bytes at hand are worth a parse attempt; arranges them so
    /// that `cur[pos..]` holds what the last attempt said it needs.
    pub(crate) fn ready(&mut self) -> bool {
        loop {
            let unread = self.cur.len() - self.pos;
            if unread >= self.need.max(1) {
                return true;
            }
            match self.stitch {
                Some(split) if self.pos >= split => {
                    self.leave_stitch(split);
                    continue;
                }
                _ => {}
            }
            if unread == 0 {
                self.queue_pending();
                let Some(next) = self.queue.pop_front() else {
                    return false;
                };
                self.flush_crc();
                self.queued -= next.len();
                self.cur = next;
                self.pos = 0;
                self.hashed = 0;
                continue;
            }
            // The copy of the next chunk in a stitch is counted in `queued`.
            let own = self.stitch.unwrap_or(self.cur.len()) - self.pos;
            if own.saturating_add(self.queued) < self.need {
                return false;
            }
            self.stitch_up();
        }
    }

    /// Everything fed past what was consumed, taken out (the bytes after
    /// the snapshot).
    pub(crate) fn take_rest(&mut self) -> Bytes {
        if let Some(split) = self.stitch.filter(|&split| self.pos >= split) {
            self.leave_stitch(split);
        }
        let end = self.stitch.take().unwrap_or(self.cur.len());
        let unread = self.cur.slice(self.pos.min(end)..end);
        self.cur = Bytes::new();
        self.pos = 0;
        self.hashed = 0;
        self.queue_pending();
        self.queued = 0;
        let pieces: Vec<Bytes> = std::iter::once(unread)
            .chain(self.queue.drain(..))
            .filter(|b| !b.is_empty())
            .collect();
        match pieces.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            _ => Bytes::from(pieces.concat()),
        }
    }

    fn queue_pending(&mut self) {
        if !self.pending.is_empty() {
            self.queue.push_back(self.pending.split().freeze());
        }
    }

    /// Adds the consumed bytes not yet hashed to the checksum.
    fn flush_crc(&mut self) {
        if let Some(consumed) = self.cur.get(self.hashed..self.pos) {
            self.crc.update(consumed);
        }
        self.hashed = self.pos;
    }

    /// Makes `cur` the unconsumed bytes (up to the stitch's copy, if any)
    /// followed by queued bytes, at least `need` in all if there are.
    fn stitch_up(&mut self) {
        self.flush_crc();
        let end = self.stitch.take().unwrap_or(self.cur.len());
        // A stitch that was too short is rebuilt with twice its copy.
        let copied_before = self.cur.len() - end;
        let mut out = BytesMut::with_capacity(self.need.saturating_add(STITCH_EXTRA));
        out.extend_from_slice(self.cur.get(self.pos..end).unwrap_or_default());
        self.queue_pending();
        while out.len() < self.need {
            let Some(front) = self.queue.front() else {
                break;
            };
            let wanted = (self.need - out.len())
                .saturating_add(STITCH_EXTRA)
                .max(copied_before.saturating_mul(2));
            match front.get(..wanted) {
                Some(prefix) if wanted < front.len() => {
                    self.stitch = Some(out.len());
                    out.extend_from_slice(prefix);
                    break;
                }
                _ => {
                    out.extend_from_slice(front);
                    self.queued -= front.len();
                    self.queue.pop_front();
                }
            }
        }
        self.cur = out.freeze();
        self.pos = 0;
        self.hashed = 0;
    }

    /// The parse has passed the end of the stitch's own bytes: go on in
    /// the chunk whose start the stitch copied.
    fn leave_stitch(&mut self, split: usize) {
        self.flush_crc();
        self.stitch = None;
        if let Some(next) = self.queue.pop_front() {
            self.queued -= next.len();
            let skip = (self.pos - split).min(next.len());
            self.cur = next;
            self.pos = skip;
            self.hashed = skip;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consumes `n` bytes at a time wherever possible, as a parser of
    /// fixed-size records would; returns the bytes seen in order.
    fn drain_records(input: &mut Input, n: usize, seen: &mut Vec<u8>) {
        input.consume_to(input.pos, n);
        while input.ready() {
            let (buf, pos, _) = input.buffer();
            seen.extend_from_slice(&buf[pos..pos + n]);
            input.consume_to(pos + n, n);
        }
    }

    #[test]
    fn records_across_any_chunking_come_out_whole_and_hashed() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for record in [1, 3, 100, 700, 5000] {
            for chunk in [1, 2, 5, 64, 1000, 4096, 20_000] {
                for owned in [false, true] {
                    let mut input = Input::default();
                    let mut seen = Vec::new();
                    for piece in data.chunks(chunk) {
                        if owned {
                            input.feed_bytes(Bytes::copy_from_slice(piece));
                        } else {
                            input.feed(piece);
                        }
                        drain_records(&mut input, record, &mut seen);
                    }
                    let whole = data.len() / record * record;
                    assert_eq!(seen, &data[..whole], "record {record} chunk {chunk}");
                    assert_eq!(input.offset(), whole as u64);
                    let mut crc = Crc64::default();
                    crc.update(&data[..whole]);
                    assert_eq!(
                        input.checksum(),
                        crc.value(),
                        "record {record} chunk {chunk}"
                    );
                    assert_eq!(input.take_rest(), &data[whole..]);
                }
            }
        }
    }

    #[test]
    fn an_owned_chunk_is_parsed_in_place() {
        let chunk = Bytes::from(vec![7u8; 1000]);
        let mut input = Input::default();
        input.feed_bytes(chunk.clone());
        assert!(input.ready());
        assert_eq!(input.buffer().0.as_ptr(), chunk.as_ptr());
    }
}
