//! Streams (types 15, 19, 21, 26): listpack nodes keyed by a master ID,
//! then the stream's metadata and its consumer groups; type 26 (Redis 8.x)
//! ends with the idempotent producers' state (IDMP).

use super::consts::*;
use super::number::str_to_i64;
use super::reader::{Read, Reader};
use super::{
    listpack, Consumer, ConsumerGroup, PendingEntry, RdbError, Str, Stream, StreamEntry, StreamId,
};

/// Preallocation cap for counts read from the file: they may lie.
const PREALLOC_MAX: usize = 1024;
/// A group's entries-read counter when unknown (stream.h's -1, saved as
/// an unsigned length).
const SCG_INVALID_ENTRIES_READ: u64 = u64::MAX;

/// Appends the live entries of one node (`node_key` is its 16-byte master
/// ID).
pub(crate) fn decode_node<'a>(
    node_key: &[u8],
    lp: &'a [u8],
    offset: u64,
    out: &mut Vec<StreamEntry<'a>>,
) -> Result<(), RdbError> {
    let corrupt = RdbError::Corrupt {
        what: "stream node",
        offset,
    };
    let master: [u8; 16] = node_key.try_into().map_err(|_| corrupt.clone())?;
    let (ms, seq) = master.split_at(8);
    let master_ms = u64::from_be_bytes(ms.try_into().map_err(|_| corrupt.clone())?);
    let master_seq = u64::from_be_bytes(seq.try_into().map_err(|_| corrupt.clone())?);

    let mut entries = listpack::entries(lp, offset);
    let mut next = || entries.next().unwrap_or_else(|| Err(corrupt.clone()));
    let int = |s: Str| str_to_i64(&s).ok_or_else(|| corrupt.clone());
    // Master entry: count, deleted, number of master fields, the fields, 0.
    let _live = int(next()?)?;
    let _deleted = int(next()?)?;
    let master_field_count = usize::try_from(int(next()?)?).map_err(|_| corrupt.clone())?;
    let mut master_fields = Vec::with_capacity(master_field_count.min(PREALLOC_MAX));
    for _ in 0..master_field_count {
        master_fields.push(next()?);
    }
    int(next()?)?;

    loop {
        let flags = match entries.next() {
            None => return Ok(()),
            Some(flags) => int(flags?)?,
        };
        let mut next = || entries.next().unwrap_or_else(|| Err(corrupt.clone()));
        let ms_delta = int(next()?)?;
        let seq_delta = int(next()?)?;
        let id = StreamId {
            ms: master_ms.wrapping_add(ms_delta as u64),
            seq: master_seq.wrapping_add(seq_delta as u64),
        };
        let mut fields;
        if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            fields = Vec::with_capacity(master_fields.len() * 2);
            for field in &master_fields {
                fields.push(field.clone());
                fields.push(next()?);
            }
        } else {
            let count = usize::try_from(int(next()?)?).map_err(|_| corrupt.clone())?;
            fields = Vec::with_capacity(count.min(PREALLOC_MAX) * 2);
            for _ in 0..count {
                fields.push(next()?);
                fields.push(next()?);
            }
        }
        int(next()?)?; // lp-count of the entry
        if flags & STREAM_ITEM_FLAG_DELETED == 0 {
            out.push(StreamEntry { id, fields });
        }
    }
}

/// The metadata after the nodes: lengths, IDs and consumer groups.
/// The entries are filled in by the caller from the nodes.
pub(crate) fn read_trailer<'a>(r: &mut Reader<'a>, ty: u8) -> Read<Stream<'a>> {
    let v2 = ty >= RDB_TYPE_STREAM_LISTPACKS_2;
    let v3 = ty >= RDB_TYPE_STREAM_LISTPACKS_3;
    let length = r.length()?;
    let last_id = length_id(r)?;
    let (mut first_id, mut max_deleted_id, mut entries_added) = (None, None, None);
    if v2 {
        first_id = Some(length_id(r)?);
        max_deleted_id = Some(length_id(r)?);
        entries_added = Some(r.length()?);
    }
    let group_count = r.length_usize()?;
    let mut groups = Vec::with_capacity(group_count.min(PREALLOC_MAX));
    for _ in 0..group_count {
        let name = r.raw()?;
        let last_delivered_id = length_id(r)?;
        let entries_read = if v2 {
            Some(r.length()?).filter(|&n| n != SCG_INVALID_ENTRIES_READ)
        } else {
            None
        };
        let pel_size = r.length_usize()?;
        let mut pending = Vec::with_capacity(pel_size.min(PREALLOC_MAX));
        for _ in 0..pel_size {
            let id = r.stream_id()?;
            let delivery_time_ms = r.u64_le()?;
            let delivery_count = r.length()?;
            pending.push(PendingEntry {
                id,
                delivery_time_ms,
                delivery_count,
            });
        }
        let consumer_count = r.length_usize()?;
        let mut consumers = Vec::with_capacity(consumer_count.min(PREALLOC_MAX));
        for _ in 0..consumer_count {
            let name = r.raw()?;
            let seen_time_ms = r.u64_le()?;
            let active_time_ms = if v3 { Some(r.u64_le()?) } else { None };
            let pel_size = r.length_usize()?;
            let mut ids = Vec::with_capacity(pel_size.min(PREALLOC_MAX));
            for _ in 0..pel_size {
                ids.push(r.stream_id()?);
            }
            consumers.push(Consumer {
                name,
                seen_time_ms,
                active_time_ms,
                pending: ids,
            });
        }
        groups.push(ConsumerGroup {
            name,
            last_delivered_id,
            entries_read,
            pending,
            consumers,
        });
    }
    if ty >= RDB_TYPE_STREAM_LISTPACKS_4 {
        skip_idmp(r)?;
    }
    Ok(Stream {
        entries: Vec::new(),
        length,
        last_id,
        first_id,
        max_deleted_id,
        entries_added,
        groups,
    })
}

/// Type 26's IDMP state, with which the master deduplicates `XADD ... IDMP`
/// (not part of what nsync delivers): duration, maximum entries, each
/// producer's id and (IID, stream ID) entries, then the counts of IIDs added
/// and of duplicates.
fn skip_idmp(r: &mut Reader) -> Read<()> {
    r.length()?;
    r.length()?;
    for _ in 0..r.length()? {
        r.raw()?;
        for _ in 0..r.length()? {
            r.raw()?;
            length_id(r)?;
        }
    }
    r.length()?;
    r.length()?;
    Ok(())
}

/// An ID written as two lengths (ms, seq).
fn length_id(r: &mut Reader) -> Read<StreamId> {
    let ms = r.length()?;
    let seq = r.length()?;
    Ok(StreamId { ms, seq })
}
