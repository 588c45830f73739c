//! Streams (types 15, 19, 21): listpack nodes keyed by a master ID, then
//! the stream's metadata and its consumer groups.

use bytes::Bytes;

use super::consts::*;
use super::reader::{str_to_i64, Read, Reader};
use super::{listpack, Consumer, ConsumerGroup, PendingEntry, RdbError, Str, Stream, StreamEntry, StreamId};

/// Preallocation cap for counts read from the file: they may lie.
const PREALLOC_MAX: usize = 1024;

/// Appends the live entries of one node (`node_key` is its 16-byte master ID).
pub(crate) fn decode_node(
    node_key: &[u8],
    lp: &Bytes,
    offset: u64,
    out: &mut Vec<StreamEntry>,
) -> Result<(), RdbError> {
    let corrupt = RdbError::Corrupt { what: "stream node", offset };
    let master: [u8; 16] = node_key.try_into().map_err(|_| corrupt.clone())?;
    let (ms, seq) = master.split_at(8);
    let master_ms = u64::from_be_bytes(ms.try_into().map_err(|_| corrupt.clone())?);
    let master_seq = u64::from_be_bytes(seq.try_into().map_err(|_| corrupt.clone())?);

    let elements = listpack::decode(lp, offset)?;
    let mut it = elements.into_iter();
    let int = |it: &mut std::vec::IntoIter<Str>| it.next().as_ref().and_then(str_to_i64);
    // Master entry: count, deleted, number of master fields, the fields, 0.
    let _live = int(&mut it).ok_or(corrupt.clone())?;
    let _deleted = int(&mut it).ok_or(corrupt.clone())?;
    let master_field_count = usize::try_from(int(&mut it).ok_or(corrupt.clone())?).map_err(|_| corrupt.clone())?;
    let mut master_fields = Vec::with_capacity(master_field_count.min(PREALLOC_MAX));
    for _ in 0..master_field_count {
        master_fields.push(it.next().ok_or(corrupt.clone())?);
    }
    int(&mut it).ok_or(corrupt.clone())?;

    while let Some(flags) = it.next() {
        let flags = str_to_i64(&flags).ok_or(corrupt.clone())?;
        let ms_delta = int(&mut it).ok_or(corrupt.clone())?;
        let seq_delta = int(&mut it).ok_or(corrupt.clone())?;
        let id = StreamId {
            ms: master_ms.wrapping_add(ms_delta as u64),
            seq: master_seq.wrapping_add(seq_delta as u64),
        };
        let mut fields;
        if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            fields = Vec::with_capacity(master_fields.len() * 2);
            for field in &master_fields {
                fields.push(field.clone());
                fields.push(it.next().ok_or(corrupt.clone())?);
            }
        } else {
            let count = usize::try_from(int(&mut it).ok_or(corrupt.clone())?).map_err(|_| corrupt.clone())?;
            fields = Vec::with_capacity(count.min(PREALLOC_MAX) * 2);
            for _ in 0..count {
                fields.push(it.next().ok_or(corrupt.clone())?);
                fields.push(it.next().ok_or(corrupt.clone())?);
            }
        }
        int(&mut it).ok_or(corrupt.clone())?; // lp-count of the entry
        if flags & STREAM_ITEM_FLAG_DELETED == 0 {
            out.push(StreamEntry { id, fields });
        }
    }
    Ok(())
}

/// The metadata after the nodes: lengths, IDs and consumer groups.
/// The entries are filled in by the caller from the nodes.
pub(crate) fn read_trailer(r: &mut Reader, ty: u8) -> Read<Stream> {
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
        let name = r.bytes()?;
        let last_delivered_id = length_id(r)?;
        let entries_read = if v2 { Some(r.length()?) } else { None };
        let pel_size = r.length_usize()?;
        let mut pending = Vec::with_capacity(pel_size.min(PREALLOC_MAX));
        for _ in 0..pel_size {
            let id = r.stream_id()?;
            let delivery_time_ms = r.u64_le()?;
            let delivery_count = r.length()?;
            pending.push(PendingEntry { id, delivery_time_ms, delivery_count });
        }
        let consumer_count = r.length_usize()?;
        let mut consumers = Vec::with_capacity(consumer_count.min(PREALLOC_MAX));
        for _ in 0..consumer_count {
            let name = r.bytes()?;
            let seen_time_ms = r.u64_le()?;
            let active_time_ms = if v3 { Some(r.u64_le()?) } else { None };
            let pel_size = r.length_usize()?;
            let mut ids = Vec::with_capacity(pel_size.min(PREALLOC_MAX));
            for _ in 0..pel_size {
                ids.push(r.stream_id()?);
            }
            consumers.push(Consumer { name, seen_time_ms, active_time_ms, pending: ids });
        }
        groups.push(ConsumerGroup { name, last_delivered_id, entries_read, pending, consumers });
    }
    Ok(Stream { entries: Vec::new(), length, last_id, first_id, max_deleted_id, entries_added, groups })
}

/// An ID written as two lengths (ms, seq).
fn length_id(r: &mut Reader) -> Read<StreamId> {
    let ms = r.length()?;
    let seq = r.length()?;
    Ok(StreamId { ms, seq })
}
