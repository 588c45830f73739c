//! LZF-compressed strings (`RDB_ENC_LZF`), decompressed into a buffer the
//! caller provides (the `lzf` crate allocates and zeroes a new vector each
//! time and copies back-references a byte at a time).
//!
//! Format (liblzf's `lzf_d.c`): a control byte below 32 starts a literal
//! run of control + 1 bytes; otherwise its top 3 bits are a length (7: add
//! the next byte) and the low 5 bits, with the next byte, a distance: copy
//! length + 2 bytes from distance + 1 bytes back in the output.

use super::RdbError;

/// LZF expands at most 264 bytes from 3 input bytes: a declared plain length
/// beyond this ratio is a lie, and must not be allocated.
const MAX_EXPANSION: usize = 90;

/// Checks a declared plain length before room is made for it.
pub(crate) fn plain_len(
    compressed_len: usize,
    plain_len: u64,
    offset: u64,
) -> Result<usize, RdbError> {
    match usize::try_from(plain_len) {
        Ok(n) if n <= compressed_len.saturating_mul(MAX_EXPANSION) => Ok(n),
        _ => Err(RdbError::TooLarge {
            what: "LZF plain length",
            len: plain_len,
            offset,
        }),
    }
}

/// Decompresses `input` into `out`, which must be filled exactly.
pub(crate) fn decompress(input: &[u8], out: &mut [u8], offset: u64) -> Result<(), RdbError> {
    let corrupt = || RdbError::Corrupt {
        what: "LZF string",
        offset,
    };
    if input.is_empty() {
        return if out.is_empty() {
            Ok(())
        } else {
            Err(corrupt())
        };
    }
    let mut ip = 0;
    let mut op = 0;
    while let Some(&ctrl) = input.get(ip) {
        ip += 1;
        let ctrl = usize::from(ctrl);
        if ctrl < 32 {
            let len = ctrl + 1;
            if ip + len > input.len() || op + len > out.len() {
                return Err(corrupt());
            }
            copy_literal(input, ip, out, op, len);
            ip += len;
            op += len;
            continue;
        }
        let mut len = ctrl >> 5;
        if len == 7 {
            len += usize::from(*input.get(ip).ok_or_else(corrupt)?);
            ip += 1;
        }
        len += 2;
        let low = usize::from(*input.get(ip).ok_or_else(corrupt)?);
        ip += 1;
        let distance = ((ctrl & 0x1F) << 8 | low) + 1;
        let from = op.checked_sub(distance).ok_or_else(corrupt)?;
        if op + len > out.len() {
            return Err(corrupt());
        }
        copy_back(out, from, op, len);
        op += len;
    }
    if op == out.len() {
        Ok(())
    } else {
        Err(corrupt())
    }
}

/// Copies a literal run (at most 32 bytes, all in bounds) from `input` to
/// `out`. Where both have room, 32 bytes are copied whatever the run's
/// length, a fixed-size copy the compiler inlines: the extra bytes are
/// overwritten by the tokens that follow (or the output is refused).
#[inline(always)]
fn copy_literal(input: &[u8], ip: usize, out: &mut [u8], op: usize, len: usize) {
    let src = input
        .get(ip..ip + 32)
        .and_then(|s| <&[u8; 32]>::try_from(s).ok());
    let dst = out
        .get_mut(op..op + 32)
        .and_then(|d| <&mut [u8; 32]>::try_from(d).ok());
    match (src, dst) {
        (Some(src), Some(dst)) => *dst = *src,
        _ => copy_exact(input, ip, out, op, len),
    }
}

#[inline(never)]
fn copy_exact(input: &[u8], ip: usize, out: &mut [u8], op: usize, len: usize) {
    if let (Some(src), Some(dst)) = (input.get(ip..ip + len), out.get_mut(op..op + len)) {
        dst.copy_from_slice(src);
    }
}

/// Copies `len` bytes (in bounds) from `from` to `op` in `out`, byte after
/// byte as LZF means it: when they overlap, the last `op - from` bytes
/// repeat.
#[inline(always)]
fn copy_back(out: &mut [u8], from: usize, op: usize, len: usize) {
    let distance = op - from;
    if distance >= 16 && op + len.next_multiple_of(16) <= out.len() {
        // 16 bytes at a time, each read before it is written; the bytes
        // copied past `len` are overwritten later, as for literals.
        let mut done = 0;
        while done < len {
            let chunk = out
                .get(from + done..from + done + 16)
                .and_then(|c| <[u8; 16]>::try_from(c).ok());
            let dst = out
                .get_mut(op + done..op + done + 16)
                .and_then(|d| <&mut [u8; 16]>::try_from(d).ok());
            if let (Some(chunk), Some(dst)) = (chunk, dst) {
                *dst = chunk;
            }
            done += 16;
        }
        return;
    }
    // What is already written repeats with period `distance`: copy it,
    // doubling each time.
    let mut done = 0;
    while done < len {
        let n = (len - done).min(distance + done);
        out.copy_within(from..from + n, op + done);
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::test_rng::Rng;

    fn ours(packed: &[u8], plain_len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0u8; plain_len];
        decompress(packed, &mut out, 0).ok().map(|()| out)
    }

    /// The `lzf` crate's answer, held to Redis's rule: exactly `plain_len`.
    fn reference(packed: &[u8], plain_len: usize) -> Option<Vec<u8>> {
        if packed.is_empty() {
            return (plain_len == 0).then(Vec::new);
        }
        lzf::decompress(packed, plain_len)
            .ok()
            .filter(|v| v.len() == plain_len)
    }

    #[test]
    fn round_trips_what_the_crate_compresses() {
        let mut rng = Rng(1);
        for len in (1..2000).step_by(7) {
            // Few distinct symbols: long and overlapping back-references.
            let alphabet = 1 + (rng.next() % 6) as u8;
            let text: Vec<u8> = (0..len)
                .map(|_| b'a' + (rng.next() % u64::from(alphabet)) as u8)
                .collect();
            let Ok(packed) = lzf::compress(&text) else {
                continue;
            };
            assert_eq!(
                ours(&packed, text.len()).as_deref(),
                Some(&text[..]),
                "len {len}"
            );
        }
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(20);
        let packed = lzf::compress(&text).unwrap();
        assert_eq!(ours(&packed, text.len()).as_deref(), Some(&text[..]));
    }

    /// Garbage and damaged input: the same verdict and output as the crate.
    #[test]
    fn agrees_with_the_crate_on_damaged_input() {
        let mut rng = Rng(2);
        let text = b"hello hello hello world, hello world, hello there".repeat(5);
        let packed = lzf::compress(&text).unwrap();
        for case in 0..20_000 {
            let mut input = if case % 2 == 0 {
                packed.clone()
            } else {
                (0..rng.next() % 40).map(|_| rng.next() as u8).collect()
            };
            if let Some(at) = (!input.is_empty()).then(|| rng.next() as usize % input.len()) {
                input[at] ^= 1 << (rng.next() % 8);
            }
            let plain_len = match rng.next() % 3 {
                0 => text.len(),
                1 => (rng.next() % 300) as usize,
                _ => text.len() + 1 - 2 * (rng.next() % 2) as usize,
            };
            assert_eq!(
                ours(&input, plain_len),
                reference(&input, plain_len),
                "case {case}"
            );
        }
    }

    #[test]
    fn lying_lengths_are_errors() {
        let packed = lzf::compress(&b"x".repeat(1000)).unwrap();
        assert!(ours(&packed, 999).is_none());
        assert!(ours(&packed, 1001).is_none());
        assert!(matches!(
            plain_len(packed.len(), 1 << 60, 0),
            Err(RdbError::TooLarge { .. })
        ));
        assert!(ours(&[0xFF, 0xFF], 10).is_none());
        assert_eq!(ours(&[], 0), Some(vec![]));
    }
}
