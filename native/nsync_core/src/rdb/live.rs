//! What of a value is still alive at an instant: a key whose expiry has
//! passed is gone, and so are the hash fields whose own expiry has passed
//! (Redis 7.4+). A replica delivers only this part, as Redis would answer a
//! read at that instant.

use super::{Entry, HashField, Str, Value};

/// A value as delivered at some instant: a hash without its expired fields.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveValue<'v, 's> {
    /// The live fields of a hash, in snapshot order.
    Hash(Vec<&'v HashField<'s>>),
    /// Any other value, whole.
    Other(&'v Value<'s>),
}

impl<'v, 's> LiveValue<'v, 's> {
    /// `None` if every field of a (non-empty) hash has expired at `now_ms`.
    pub fn of(value: &'v Value<'s>, now_ms: i64) -> Option<LiveValue<'v, 's>> {
        let Value::Hash(fields) = value else {
            return Some(LiveValue::Other(value));
        };
        let live: Vec<_> = fields
            .iter()
            .filter(|f| !matches!(f.expire_at_ms, Some(at) if at <= now_ms))
            .collect();
        (!live.is_empty() || fields.is_empty()).then_some(LiveValue::Hash(live))
    }

    /// The key of `entry` as delivered at `now_ms`; `None` if it expired.
    pub fn of_entry(entry: &'v Entry<'s>, now_ms: i64) -> Option<LiveValue<'v, 's>> {
        if entry.expire_at_ms.is_some_and(|at| at <= now_ms) {
            return None;
        }
        LiveValue::of(&entry.value, now_ms)
    }

    /// The live fields of a hash (none for other values).
    pub fn fields(&self) -> &[&'v HashField<'s>] {
        match self {
            LiveValue::Hash(fields) => fields,
            LiveValue::Other(_) => &[],
        }
    }

    /// `(Field, ExpireAtMs)` of the live hash fields that have their own
    /// expiry, in snapshot order.
    pub fn expiring_fields(&self) -> impl Iterator<Item = (&'v Str<'s>, i64)> + '_ {
        self.fields()
            .iter()
            .filter_map(|f| Some((&f.field, f.expire_at_ms?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Raw;

    const NOW: i64 = 1_000_000;

    fn field(name: &'static str, expire_at_ms: Option<i64>) -> HashField<'static> {
        HashField {
            field: Str::Raw(Raw::Borrowed(name.as_bytes())),
            value: Str::Int(1),
            expire_at_ms,
        }
    }

    fn entry(expire_at_ms: Option<i64>, value: Value<'static>) -> Entry<'static> {
        Entry {
            db: 0,
            key: Raw::Borrowed(b"k"),
            expire_at_ms,
            idle: None,
            freq: None,
            value,
        }
    }

    fn names(live: &LiveValue) -> Vec<String> {
        live.fields()
            .iter()
            .map(|f| String::from_utf8_lossy(&f.field.to_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn other_values_are_whole() {
        let value = Value::List(vec![Str::Int(1), Str::Int(2)]);
        assert_eq!(LiveValue::of(&value, NOW), Some(LiveValue::Other(&value)));
        let live = LiveValue::of(&value, NOW).unwrap();
        assert!(live.fields().is_empty());
        assert_eq!(live.expiring_fields().count(), 0);
    }

    #[test]
    fn expired_key_is_gone() {
        let value = Value::String(Str::Int(7));
        assert!(LiveValue::of_entry(&entry(Some(NOW), value.clone()), NOW).is_none());
        assert!(LiveValue::of_entry(&entry(Some(NOW - 1), value.clone()), NOW).is_none());
        assert!(LiveValue::of_entry(&entry(Some(NOW + 1), value.clone()), NOW).is_some());
        assert!(LiveValue::of_entry(&entry(None, value), NOW).is_some());
    }

    #[test]
    fn expired_hash_fields_are_left_out_in_order() {
        let value = Value::Hash(vec![
            field("a", None),
            field("b", Some(NOW)),
            field("c", Some(NOW + 5)),
            field("d", Some(NOW - 5)),
            field("e", None),
        ]);
        let live = LiveValue::of(&value, NOW).unwrap();
        assert_eq!(names(&live), ["a", "c", "e"]);
        let expiring: Vec<_> = live
            .expiring_fields()
            .map(|(f, at)| (f.to_bytes(), at))
            .collect();
        assert_eq!(expiring, [(bytes::Bytes::from_static(b"c"), NOW + 5)]);
    }

    #[test]
    fn hash_with_every_field_expired_is_gone() {
        let value = Value::Hash(vec![field("a", Some(NOW - 1)), field("b", Some(NOW))]);
        assert!(LiveValue::of(&value, NOW).is_none());
        assert!(LiveValue::of_entry(&entry(None, value), NOW).is_none());
    }

    #[test]
    fn empty_hash_stays() {
        let value = Value::Hash(Vec::new());
        assert_eq!(
            LiveValue::of(&value, NOW),
            Some(LiveValue::Hash(Vec::new()))
        );
    }
}
