//! [`Set`]: a set of byte strings, one [`Entry`] per member.

use std::collections::HashSet;

use super::entry::Entry;
use super::TooLarge;

#[derive(Debug, Default)]
pub struct Set {
    members: HashSet<Entry>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    pub fn with_capacity(n: usize) -> Set {
        Set {
            members: HashSet::with_capacity(n),
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

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Adds `member`; whether it was new.
    pub fn add(&mut self, member: &[u8]) -> Result<bool, TooLarge> {
        if self.members.contains(member) {
            return Ok(false);
        }
        self.members.insert(Entry::new(member, b"")?);
        Ok(true)
    }

    /// Removes `member`; whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.members.remove(member)
    }

    /// The members in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.members.iter().map(Entry::key)
    }

    /// The members sorted bytewise.
    pub fn sorted(&self) -> Vec<&[u8]> {
        let mut members: Vec<&[u8]> = self.iter().collect();
        members.sort_unstable();
        members
    }

    pub fn try_clone(&self) -> Result<Set, TooLarge> {
        let mut copy = Set::with_capacity(self.len());
        for m in self.iter() {
            copy.members.insert(Entry::new(m, b"")?);
        }
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_sorted() {
        let mut s = Set::new();
        assert!(s.add(b"b").unwrap());
        assert!(s.add(b"a").unwrap());
        assert!(!s.add(b"a").unwrap());
        assert!(s.add(b"").unwrap());
        assert_eq!(s.sorted(), vec![&b""[..], b"a", b"b"]);
        assert!(s.contains(b"a"));
        assert!(s.remove(b"a"));
        assert!(!s.remove(b"a"));
        assert_eq!(s.len(), 2);
        let c = s.try_clone().unwrap();
        s.remove(b"b");
        assert_eq!(c.sorted(), vec![&b""[..], b"b"]);
    }
}
