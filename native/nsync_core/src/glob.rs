//! Glob-style patterns as Redis matches them (`KEYS`, `SCAN ... MATCH`):
//! the semantics of its `stringmatchlen` (`util.c`, Redis 7 / Valkey), case
//! sensitive, byte for byte.
//!
//! - `*` any run of bytes, `?` any one byte;
//! - `[abc]`, `[^abc]`, `[a-z]` (a reversed range is swapped; bytes compare
//!   as C's signed `char` on x86-64, so `[a-\xff]` is `[\xff-a]`, which
//!   holds `\xff` and `\x00`..`a`), `\` escapes the next byte inside too; an
//!   unterminated `[` ends with the pattern;
//! - `\x` is the byte `x`; a trailing `\` is itself;
//! - a `*` never matches an empty key except as the whole pattern: `KEYS`
//!   and `SCAN` take the pattern `*` as "every key" without matching;
//! - nesting of `*` deeper than 1000 does not match (Redis's guard against
//!   abusive patterns).
//!
//! Where the C code reads the byte after the pattern's end it finds the
//! string's terminating NUL: [`at`] gives 0 there.

/// Redis's limit on `*` nesting.
const MAX_NESTING: u32 = 1000;

/// Whether `key` matches `pattern` as `KEYS pattern` / `SCAN 0 MATCH pattern`
/// would return it.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer = false;
    match_here(pattern, key, &mut skip_longer, 0)
}

/// The byte at `i`, or the C string's terminator past the end.
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// `stringmatchlen_impl`: `skip_longer` is shared by the whole match (once
/// the rest of a pattern after a `*` matched nowhere in the rest of the
/// string, no earlier `*` can make it match by taking more).
fn match_here(pattern: &[u8], key: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let (mut p, mut k) = (0, 0);
    while p < pattern.len() && k < key.len() {
        match pattern[p] {
            b'*' => {
                while at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                let rest = &pattern[p + 1..];
                while k < key.len() {
                    if match_here(rest, &key[k..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    k += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => k += 1,
            b'[' => {
                let (end, matched) = class(pattern, p + 1, key[k]);
                if !matched {
                    return false;
                }
                p = end;
                k += 1;
            }
            byte => {
                let literal = if byte == b'\\' && p + 2 <= pattern.len() {
                    p += 1;
                    pattern[p]
                } else {
                    byte
                };
                if literal != key[k] {
                    return false;
                }
                k += 1;
            }
        }
        p += 1;
        if k == key.len() {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && k == key.len()
}

/// A `[...]` class whose body starts at `p`, tried on `byte`: the position
/// of its closing `]` (the last byte of the pattern if there is none) and
/// whether `byte` is in it.
fn class(pattern: &[u8], mut p: usize, byte: u8) -> (usize, bool) {
    let negated = at(pattern, p) == b'^';
    if negated {
        p += 1;
    }
    let mut matched = false;
    loop {
        let left = pattern.len().saturating_sub(p);
        let c = at(pattern, p);
        if c == b'\\' && left >= 2 {
            p += 1;
            matched |= pattern[p] == byte;
        } else if c == b']' {
            break;
        } else if left == 0 {
            p -= 1;
            break;
        } else if left >= 3 && pattern[p + 1] == b'-' {
            // C's `char` is signed on the servers' x86-64.
            let (a, b) = (pattern[p] as i8, pattern[p + 2] as i8);
            let (low, high) = if a > b { (b, a) } else { (a, b) };
            matched |= (low..=high).contains(&(byte as i8));
            p += 2;
        } else {
            matched |= c == byte;
        }
        p += 1;
    }
    (p, matched != negated)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches(b"user:*", b"user:1"));
        assert!(matches(b"user:*", b"user:"));
        assert!(!matches(b"user:*", b"users"));
        assert!(matches(b"*:1", b"a:b:1"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"a*b*c", b"aXXbYYc"));
        assert!(!matches(b"a*b*c", b"aXXbYY"));
        assert!(matches(b"**", b"x"));
        assert!(matches(b"abc*", b"abc"));
        assert!(matches(b"abc**", b"abc"));
    }

    #[test]
    fn empty_key() {
        // only the pattern `*` itself (KEYS/SCAN's "every key")
        assert!(matches(b"*", b""));
        assert!(!matches(b"**", b""));
        assert!(!matches(b"?", b""));
        assert!(matches(b"", b""));
        assert!(!matches(b"", b"a"));
    }

    #[test]
    fn classes() {
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(matches(b"h[b-a]llo", b"hallo"));
        assert!(matches(b"[\\]]", b"]"));
        // `[]` is an empty class: nothing is in it
        assert!(!matches(b"[]a]", b"a"));
        assert!(!matches(b"[]a]", b"]"));
        assert!(matches(b"[^]a", b"xa"));
        // unterminated: the class runs to the pattern's end
        assert!(matches(b"[ab", b"b"));
        assert!(!matches(b"[ab", b"c"));
        assert!(!matches(b"x[", b"x"));
        // signed bytes: 0xff sorts below 'a'
        assert!(matches(b"[a-\xff]", b"\xff"));
        assert!(matches(b"[a-\xff]", b"\x01"));
        assert!(!matches(b"[a-\xff]", b"b"));
    }

    #[test]
    fn escapes() {
        assert!(matches(b"a\\*b", b"a*b"));
        assert!(!matches(b"a\\*b", b"axb"));
        assert!(matches(b"a\\", b"a\\"));
        assert!(matches(b"\\?", b"?"));
        assert!(!matches(b"\\?", b"x"));
    }

    #[test]
    fn abusive_nesting_does_not_match() {
        let pattern = [b"a".as_slice(), &b"*a".repeat(1100)].concat();
        assert!(!matches(&pattern, &b"a".repeat(1200)));
        // and a long run of stars collapses
        let stars = [b"x".as_slice(), &b"*".repeat(5000), b"y"].concat();
        assert!(matches(&stars, b"x...y"));
    }
}
