//! [`Hash`]: field → value, one [`Entry`] per field, with the expiry times
//! of the fields that have one (Redis 7.4+) in a side table.

use std::collections::{HashMap, HashSet};

use super::entry::Entry;
use super::TooLarge;

#[derive(Debug, Default)]
pub struct Hash {
    fields: HashSet<Entry>,
    /// Absolute expiry (ms since the epoch) of the fields that have one.
    expires: HashMap<Box<[u8]>, i64>,
}

impl Hash {
    pub fn new() -> Hash {
        Hash::default()
    }

    pub fn with_capacity(n: usize) -> Hash {
        Hash {
            fields: HashSet::with_capacity(n),
            expires: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Room of the table (for memory reports).
    pub fn capacity(&self) -> usize {
        self.fields.capacity()
    }

    /// Bytes of each entry (for memory reports).
    pub fn entry_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields.iter().map(Entry::size)
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.fields.get(field).map(Entry::value)
    }

    /// The value of `field` unless it has expired at `now_ms`.
    pub fn get_live(&self, field: &[u8], now_ms: Option<i64>) -> Option<&[u8]> {
        if self.is_expired(field, now_ms) {
            return None;
        }
        self.get(field)
    }

    fn is_expired(&self, field: &[u8], now_ms: Option<i64>) -> bool {
        match (now_ms, self.expires.get(field)) {
            (Some(now), Some(&at)) => now > at,
            _ => false,
        }
    }

    /// Sets the value of `field` (its expiry, if any, is kept).
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> Result<(), TooLarge> {
        self.fields.replace(Entry::new(field, value)?);
        Ok(())
    }

    /// Removes `field` and its expiry; whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.expires.remove(field);
        self.fields.remove(field)
    }

    /// The expiry of `field`, if it has one.
    pub fn expire(&self, field: &[u8]) -> Option<i64> {
        self.expires.get(field).copied()
    }

    /// Sets the expiry of an existing `field` (ignored if it is absent).
    pub fn set_expire(&mut self, field: &[u8], at_ms: i64) {
        if self.fields.contains(field) {
            self.expires.insert(field.into(), at_ms);
        }
    }

    pub fn clear_expire(&mut self, field: &[u8]) {
        self.expires.remove(field);
    }

    /// `(field, value)` in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|e| (e.key(), e.value()))
    }

    /// The fields live at `now_ms` (all with `None`).
    pub fn iter_live(&self, now_ms: Option<i64>) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter()
            .filter(move |(f, _)| now_ms.is_none() || !self.is_expired(f, now_ms))
    }

    /// Bytes of the expiry side table (for memory reports).
    pub fn expires_memory(&self) -> usize {
        self.expires.capacity() * (std::mem::size_of::<(Box<[u8]>, i64)>() + 1)
            + self
                .expires
                .keys()
                .map(|f| 32.max(f.len() + 8))
                .sum::<usize>()
    }

    /// `(field, expiry)` of the fields that have one.
    pub fn expires(&self) -> impl Iterator<Item = (&[u8], i64)> {
        self.expires.iter().map(|(f, at)| (&f[..], *at))
    }

    pub fn try_clone(&self) -> Result<Hash, TooLarge> {
        let mut copy = Hash::with_capacity(self.len());
        for e in &self.fields {
            copy.fields.insert(Entry::new(e.key(), e.value())?);
        }
        copy.expires = self.expires.clone();
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_expiry() {
        let mut h = Hash::new();
        h.set(b"a", b"1").unwrap();
        h.set(b"b", b"2").unwrap();
        h.set(b"a", b"3").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"a"), Some(&b"3"[..]));
        h.set_expire(b"a", 100);
        h.set_expire(b"nope", 100);
        assert_eq!(h.expire(b"a"), Some(100));
        assert_eq!(h.expire(b"nope"), None);
        assert_eq!(h.get_live(b"a", Some(100)), Some(&b"3"[..]));
        assert_eq!(h.get_live(b"a", Some(101)), None);
        assert_eq!(h.get_live(b"a", None), Some(&b"3"[..]));
        assert_eq!(h.iter_live(Some(101)).count(), 1);
        // a new value keeps the expiry; removal drops it
        h.set(b"a", b"4").unwrap();
        assert_eq!(h.expire(b"a"), Some(100));
        let c = h.try_clone().unwrap();
        assert!(h.remove(b"a"));
        assert_eq!(h.expire(b"a"), None);
        assert_eq!(c.expire(b"a"), Some(100));
        assert_eq!(c.get(b"a"), Some(&b"4"[..]));
        h.clear_expire(b"b");
        assert_eq!(h.expires().count(), 0);
    }
}
