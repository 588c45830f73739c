//! The walk shared by ziplists and listpacks: entries from the header to
//! the end byte, each found by the encoding's own step.

use std::marker::PhantomData;

use super::{RdbError, Str};

/// A compact encoding's layout.
pub(crate) trait Encoding {
    const NAME: &'static str;
    /// Where the first entry starts.
    const HEADER_SIZE: usize;
    const END: u8;
    /// The entry count of the header, for preallocation only.
    fn declared(blob: &[u8]) -> usize;
    /// The entry at `pos` and the position after it.
    fn step(blob: &[u8], pos: usize) -> Option<(Str<'_>, usize)>;
}

/// The entries of a blob in order, strings borrowed from it; after an
/// error, nothing more.
pub(crate) struct Entries<'a, E> {
    blob: &'a [u8],
    /// `None` once the end or an error was reached.
    pos: Option<usize>,
    offset: u64,
    encoding: PhantomData<E>,
}

impl<'a, E: Encoding> Entries<'a, E> {
    pub(crate) fn new(blob: &'a [u8], offset: u64) -> Self {
        Entries {
            blob,
            pos: Some(E::HEADER_SIZE),
            offset,
            encoding: PhantomData,
        }
    }

    pub(crate) fn declared(&self) -> usize {
        E::declared(self.blob)
    }

    pub(crate) fn into_vec(self) -> Result<Vec<Str<'a>>, RdbError> {
        let mut out = Vec::with_capacity(self.declared());
        for entry in self {
            out.push(entry?);
        }
        Ok(out)
    }
}

impl<'a, E: Encoding> Iterator for Entries<'a, E> {
    type Item = Result<Str<'a>, RdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.pos?;
        if self.blob.get(pos) == Some(&E::END) {
            self.pos = None;
            return None;
        }
        match E::step(self.blob, pos) {
            Some((entry, next)) => {
                self.pos = Some(next);
                Some(Ok(entry))
            }
            None => {
                self.pos = None;
                Some(Err(RdbError::Corrupt {
                    what: E::NAME,
                    offset: self.offset,
                }))
            }
        }
    }
}

/// A header field read as a little-endian u16 (entry counts).
pub(crate) fn u16_at(blob: &[u8], at: usize) -> usize {
    blob.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| usize::from(u16::from_le_bytes(b)))
}
