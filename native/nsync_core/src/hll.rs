//! Redis's HyperLogLog, byte for byte (`hyperloglog.c` of Redis 5.0-8.x and
//! Valkey), so that a replica applying `PFADD`, `PFMERGE`, `PFCOUNT` and
//! `PFDEBUG TODENSE` ends with the same string as the master's `GET`.
//!
//! An HLL is a plain string: a 16-byte header (`HYLL`, the encoding, three
//! unused bytes, the cached cardinality in little endian whose top bit marks
//! it stale) followed by either 16384 6-bit registers packed LSB first
//! (dense) or a run-length encoding of them (sparse: opcodes ZERO `00xxxxxx`,
//! XZERO `01xxxxxx yyyyyyyy`, VAL `1vvvvvxx`). Every step below does what
//! Redis does, in the same order, because the bytes (opcode splits and
//! merges, the moment of the sparse→dense promotion, the stale cache bytes
//! left behind) depend on it.
//!
//! Masters older than 5.0 counted with other estimators: their `PFCOUNT`
//! caches differ from [`Hll::count`]'s (registers and encodings do not).

use thiserror::Error;

/// `HLL_P`: 2^14 registers.
const HLL_P: u32 = 14;
/// `HLL_Q`: hash bits left for the run of zeroes.
const HLL_Q: usize = 64 - HLL_P as usize;
pub const HLL_REGISTERS: usize = 1 << HLL_P;
const HLL_P_MASK: u64 = (HLL_REGISTERS as u64) - 1;
const HLL_BITS: usize = 6;
const HLL_REGISTER_MAX: u8 = (1 << HLL_BITS) - 1;
pub const HLL_HDR_SIZE: usize = 16;
pub const HLL_DENSE_SIZE: usize = HLL_HDR_SIZE + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
const HLL_DENSE: u8 = 0;
const HLL_SPARSE: u8 = 1;
const HLL_MAX_ENCODING: u8 = 1;
/// The byte of the header holding the encoding.
const ENCODING_AT: usize = 4;
/// The cached cardinality's bytes; the top bit of the last one marks it stale.
const CARD_AT: usize = 8;
const CARD_STALE_BYTE: usize = CARD_AT + 7;
const CARD_STALE_BIT: u8 = 1 << 7;

const HLL_SPARSE_XZERO_BIT: u8 = 0x40;
const HLL_SPARSE_VAL_BIT: u8 = 0x80;
const HLL_SPARSE_VAL_MAX_VALUE: u8 = 32;
const HLL_SPARSE_VAL_MAX_LEN: usize = 4;
const HLL_SPARSE_ZERO_MAX_LEN: usize = 64;
const HLL_SPARSE_XZERO_MAX_LEN: usize = 16384;
/// `HLL_ALPHA_INF`: 0.5/ln(2).
const HLL_ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// `MurmurHash64A`'s seed in `hllPatLen`.
const HLL_HASH_SEED: u64 = 0xadc8_3b19;

/// `hll-sparse-max-bytes`'s default.
pub const DEFAULT_SPARSE_MAX_BYTES: usize = 3000;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// Not a string Redis takes for an HLL (`WRONGTYPE Key is not a valid
    /// HyperLogLog string value`).
    #[error("not a valid HyperLogLog string value")]
    NotHll,
    /// The header is right but the sparse registers do not add up
    /// (`INVALIDOBJ Corrupted HLL object detected`).
    #[error("corrupted HyperLogLog object")]
    Corrupt,
}

/// One HyperLogLog string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hll {
    bytes: Vec<u8>,
}

/// The registers of several HLLs merged one byte per register
/// (`PFMERGE`'s and multi-key `PFCOUNT`'s `max` array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registers(Box<[u8; HLL_REGISTERS]>);

impl Default for Registers {
    fn default() -> Self {
        Registers(Box::new([0; HLL_REGISTERS]))
    }
}

impl Default for Hll {
    fn default() -> Self {
        Self::new()
    }
}

impl Hll {
    /// `createHLLObject`: sparse, every register zero, the cache 0 and valid.
    pub fn new() -> Hll {
        let mut bytes = Vec::with_capacity(HLL_HDR_SIZE + 2);
        bytes.extend_from_slice(b"HYLL");
        bytes.push(HLL_SPARSE);
        bytes.resize(HLL_HDR_SIZE, 0);
        let mut left = HLL_REGISTERS;
        while left > 0 {
            let run = left.min(HLL_SPARSE_XZERO_MAX_LEN);
            bytes.extend_from_slice(&xzero(run));
            left -= run;
        }
        Hll { bytes }
    }

    /// Takes a string value as Redis's `isHLLObjectOrReply` would: `HYLL`,
    /// a known encoding, and exactly the dense size when dense.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Hll, HllError> {
        if bytes.len() < HLL_HDR_SIZE || !bytes.starts_with(b"HYLL") {
            return Err(HllError::NotHll);
        }
        match bytes[ENCODING_AT] {
            HLL_DENSE if bytes.len() != HLL_DENSE_SIZE => Err(HllError::NotHll),
            e if e > HLL_MAX_ENCODING => Err(HllError::NotHll),
            _ => Ok(Hll { bytes }),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn is_sparse(&self) -> bool {
        self.bytes[ENCODING_AT] == HLL_SPARSE
    }

    /// `PFADD key element...` on this value: whether a register changed
    /// (then the cache is marked stale, as the command does).
    pub fn add_all<'a>(
        &mut self,
        elements: impl IntoIterator<Item = &'a [u8]>,
        sparse_max_bytes: usize,
    ) -> Result<bool, HllError> {
        let mut updated = false;
        for element in elements {
            updated |= self.add(element, sparse_max_bytes)?;
        }
        if updated {
            self.invalidate_cache();
        }
        Ok(updated)
    }

    /// `hllAdd`: one element, without touching the cache.
    fn add(&mut self, element: &[u8], sparse_max_bytes: usize) -> Result<bool, HllError> {
        let (index, count) = pattern_len(element);
        self.set(index, count, sparse_max_bytes)
    }

    /// `hllDenseSet` / `hllSparseSet`: raises register `index` to `count`.
    fn set(&mut self, index: usize, count: u8, sparse_max_bytes: usize) -> Result<bool, HllError> {
        if self.is_sparse() {
            self.sparse_set(index, count, sparse_max_bytes)
        } else {
            Ok(dense_set(self.registers_mut(), index, count))
        }
    }

    /// `PFCOUNT key`: the cached cardinality when valid, else a fresh one,
    /// written into the cache (the master does so too and propagates it).
    pub fn count(&mut self) -> Result<u64, HllError> {
        let card: [u8; 8] = self.bytes[CARD_AT..CARD_AT + 8]
            .try_into()
            .map_err(|_| HllError::NotHll)?;
        if card[7] & CARD_STALE_BIT == 0 {
            return Ok(u64::from_le_bytes(card));
        }
        let card = estimate(&self.histogram()?);
        self.bytes[CARD_AT..CARD_AT + 8].copy_from_slice(&card.to_le_bytes());
        Ok(card)
    }

    /// Whether the cached cardinality has to be computed again.
    pub fn cache_is_stale(&self) -> bool {
        self.bytes[CARD_STALE_BYTE] & CARD_STALE_BIT != 0
    }

    /// `hllMerge`: raises `max` to this HLL's registers.
    pub fn merge_into(&self, max: &mut Registers) -> Result<(), HllError> {
        if !self.is_sparse() {
            for (i, slot) in max.0.iter_mut().enumerate() {
                *slot = (*slot).max(dense_get(self.registers(), i));
            }
            return Ok(());
        }
        let mut i = 0;
        for op in SparseOps::new(self.registers()) {
            let (run, value) = op;
            if i + run > HLL_REGISTERS {
                return Err(HllError::Corrupt);
            }
            if value > 0 {
                for slot in &mut max.0[i..i + run] {
                    *slot = (*slot).max(value);
                }
            }
            i += run;
        }
        if i == HLL_REGISTERS {
            Ok(())
        } else {
            Err(HllError::Corrupt)
        }
    }

    /// `PFMERGE`'s write into its destination (this value, already merged
    /// into `max`): dense when `use_dense` (some input was dense), then every
    /// non-zero register raised in order, then the cache marked stale.
    pub fn store_merged(
        &mut self,
        max: &Registers,
        use_dense: bool,
        sparse_max_bytes: usize,
    ) -> Result<(), HllError> {
        if use_dense {
            self.to_dense()?;
        }
        for (index, &count) in max.0.iter().enumerate() {
            if count != 0 {
                self.set(index, count, sparse_max_bytes)?;
            }
        }
        self.invalidate_cache();
        Ok(())
    }

    /// `hllSparseToDense` (`PFDEBUG TODENSE`): whether it converted. The
    /// header, cached cardinality included, is kept.
    pub fn to_dense(&mut self) -> Result<bool, HllError> {
        if !self.is_sparse() {
            return Ok(false);
        }
        let mut dense = vec![0u8; HLL_DENSE_SIZE];
        dense[..HLL_HDR_SIZE].copy_from_slice(&self.bytes[..HLL_HDR_SIZE]);
        dense[ENCODING_AT] = HLL_DENSE;
        let registers = &mut dense[HLL_HDR_SIZE..];
        let mut index = 0;
        for (run, value) in SparseOps::new(self.registers()) {
            if index + run > HLL_REGISTERS {
                return Err(HllError::Corrupt);
            }
            if value > 0 {
                for i in index..index + run {
                    dense_put(registers, i, value);
                }
            }
            index += run;
        }
        if index != HLL_REGISTERS {
            return Err(HllError::Corrupt);
        }
        self.bytes = dense;
        Ok(true)
    }

    fn invalidate_cache(&mut self) {
        self.bytes[CARD_STALE_BYTE] |= CARD_STALE_BIT;
    }

    fn registers(&self) -> &[u8] {
        &self.bytes[HLL_HDR_SIZE..]
    }

    fn registers_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[HLL_HDR_SIZE..]
    }

    /// `hllDenseRegHisto` / `hllSparseRegHisto`.
    fn histogram(&self) -> Result<[u32; 64], HllError> {
        let mut histogram = [0u32; 64];
        if !self.is_sparse() {
            for i in 0..HLL_REGISTERS {
                histogram[usize::from(dense_get(self.registers(), i))] += 1;
            }
            return Ok(histogram);
        }
        let mut index = 0;
        for (run, value) in SparseOps::new(self.registers()) {
            index += run;
            histogram[usize::from(value)] += run as u32;
        }
        if index == HLL_REGISTERS {
            Ok(histogram)
        } else {
            Err(HllError::Corrupt)
        }
    }

    /// `hllSparseSet`: the opcode covering `index` is found, then rewritten
    /// in place (VAL updated, or the run split into up to three opcodes),
    /// then adjacent equal VALs are merged; a value above 32 or a string
    /// growing past `sparse_max_bytes` promotes the HLL to dense first.
    fn sparse_set(
        &mut self,
        index: usize,
        count: u8,
        sparse_max_bytes: usize,
    ) -> Result<bool, HllError> {
        if count > HLL_SPARSE_VAL_MAX_VALUE {
            return self.promote_and_set(index, count);
        }
        // Step 1: the opcode at `p` covers registers first..first+span.
        let end = self.bytes.len();
        let mut p = HLL_HDR_SIZE;
        let mut prev = None;
        let mut first = 0;
        let mut span = 0;
        while p < end {
            let op = Opcode::at(&self.bytes, p);
            span = op.run();
            if index < first + span {
                break;
            }
            prev = Some(p);
            p += op.len();
            first += span;
        }
        if span == 0 || p >= end {
            return Err(HllError::Corrupt);
        }
        let op = Opcode::at(&self.bytes, p);
        let run = op.run();

        // Step 2: the trivial cases, one byte rewritten.
        match op {
            Opcode::Val { value, .. } if value >= count => return Ok(false),
            Opcode::Val { run: 1, .. } | Opcode::Zero { run: 1 } => {
                self.bytes[p] = val(count, 1);
                self.merge_adjacent_vals(prev);
                return Ok(true);
            }
            _ => {}
        }

        // The general case: the run is split around `index`.
        let last = first + run - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        match op {
            Opcode::Val { value, .. } => {
                if index != first {
                    seq.push(val(value, index - first));
                }
                seq.push(val(count, 1));
                if index != last {
                    seq.push(val(value, last - index));
                }
            }
            Opcode::Zero { .. } | Opcode::XZero { .. } => {
                if index != first {
                    seq.extend_from_slice(&zeros(index - first));
                }
                seq.push(val(count, 1));
                if index != last {
                    seq.extend_from_slice(&zeros(last - index));
                }
            }
        }

        // Step 3: the new sequence replaces the opcode.
        let old_len = op.len().min(end - p);
        if seq.len() > op.len() && end + seq.len() - op.len() > sparse_max_bytes {
            return self.promote_and_set(index, count);
        }
        self.bytes.splice(p..p + old_len, seq);
        self.merge_adjacent_vals(prev);
        Ok(true)
    }

    /// Step 4 of `hllSparseSet`: up to five opcodes from `prev` are scanned
    /// and adjacent VALs of one value whose runs fit one VAL are joined.
    fn merge_adjacent_vals(&mut self, prev: Option<usize>) {
        let mut p = prev.unwrap_or(HLL_HDR_SIZE);
        let mut scan = 5;
        while p < self.bytes.len() && scan > 0 {
            scan -= 1;
            match Opcode::at(&self.bytes, p) {
                Opcode::XZero { .. } => p += 2,
                Opcode::Zero { .. } => p += 1,
                Opcode::Val { value, run } => {
                    if let Some(&next) = self.bytes.get(p + 1) {
                        if let Opcode::Val {
                            value: next_value,
                            run: next_run,
                        } = Opcode::decode(next, 0)
                        {
                            if next_value == value && run + next_run <= HLL_SPARSE_VAL_MAX_LEN {
                                self.bytes[p + 1] = val(value, run + next_run);
                                self.bytes.remove(p);
                                continue;
                            }
                        }
                    }
                    p += 1;
                }
            }
        }
    }

    /// `promote:` in `hllSparseSet`: to dense, then the register set there.
    fn promote_and_set(&mut self, index: usize, count: u8) -> Result<bool, HllError> {
        self.to_dense()?;
        Ok(dense_set(self.registers_mut(), index, count))
    }
}

impl Registers {
    /// Multi-key `PFCOUNT`: the cardinality of the union (`HLL_RAW`).
    pub fn count(&self) -> u64 {
        let mut histogram = [0u32; 64];
        for &value in self.0.iter() {
            histogram[usize::from(value & 63)] += 1;
        }
        estimate(&histogram)
    }
}

/// `PFADD key element...` over the key's value (`None`: no such key): the
/// new value, or `None` when nothing changed. A new key is always written,
/// even with no element.
pub fn pfadd(
    current: Option<&[u8]>,
    elements: &[&[u8]],
    sparse_max_bytes: usize,
) -> Result<Option<Hll>, HllError> {
    let (mut hll, created) = match current {
        Some(bytes) => (Hll::from_bytes(bytes.to_vec())?, false),
        None => (Hll::new(), true),
    };
    let updated = hll.add_all(elements.iter().copied(), sparse_max_bytes)?;
    if created && !updated {
        hll.invalidate_cache();
    }
    Ok((created || updated).then_some(hll))
}

/// `PFCOUNT key` (one key) over its value: the value with the cardinality
/// cached, or `None` when the cache was valid and nothing changed.
pub fn pfcount(current: &[u8]) -> Result<Option<Hll>, HllError> {
    let mut hll = Hll::from_bytes(current.to_vec())?;
    if !hll.cache_is_stale() {
        return Ok(None);
    }
    hll.count()?;
    Ok(Some(hll))
}

/// `PFDEBUG TODENSE key` (and `GETREG`, which converts too): the dense
/// value, or `None` when it already was.
pub fn pfdebug_todense(current: &[u8]) -> Result<Option<Hll>, HllError> {
    let mut hll = Hll::from_bytes(current.to_vec())?;
    Ok(hll.to_dense()?.then_some(hll))
}

/// `PFMERGE dest source...` over the values at hand (`None`: no such key):
/// `dest`'s new value. The destination counts as a source, as in Redis.
pub fn pfmerge(
    dest: Option<&[u8]>,
    sources: &[Option<&[u8]>],
    sparse_max_bytes: usize,
) -> Result<Hll, HllError> {
    let mut max = Registers::default();
    let mut use_dense = false;
    let dest = dest
        .map(|bytes| Hll::from_bytes(bytes.to_vec()))
        .transpose()?;
    for hll in dest.iter() {
        use_dense |= !hll.is_sparse();
        hll.merge_into(&mut max)?;
    }
    for source in sources.iter().flatten() {
        let hll = Hll::from_bytes(source.to_vec())?;
        use_dense |= !hll.is_sparse();
        hll.merge_into(&mut max)?;
    }
    let mut dest = dest.unwrap_or_default();
    dest.store_merged(&max, use_dense, sparse_max_bytes)?;
    Ok(dest)
}

/// One sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opcode {
    Zero { run: usize },
    XZero { run: usize },
    Val { value: u8, run: usize },
}

impl Opcode {
    /// The opcode whose first byte is `first`; `second` is the next byte
    /// (XZERO's low bits).
    fn decode(first: u8, second: u8) -> Opcode {
        if first & HLL_SPARSE_VAL_BIT != 0 {
            Opcode::Val {
                value: ((first >> 2) & 0x1f) + 1,
                run: usize::from(first & 0x3) + 1,
            }
        } else if first & HLL_SPARSE_XZERO_BIT != 0 {
            Opcode::XZero {
                run: ((usize::from(first & 0x3f) << 8) | usize::from(second)) + 1,
            }
        } else {
            Opcode::Zero {
                run: usize::from(first & 0x3f) + 1,
            }
        }
    }

    /// The opcode at `p` (`p` in bounds); a byte past the end reads as 0,
    /// like the terminator Redis's string always has.
    fn at(bytes: &[u8], p: usize) -> Opcode {
        let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
        Opcode::decode(byte(p), byte(p + 1))
    }

    fn run(self) -> usize {
        match self {
            Opcode::Zero { run } | Opcode::XZero { run } | Opcode::Val { run, .. } => run,
        }
    }

    fn len(self) -> usize {
        match self {
            Opcode::XZero { .. } => 2,
            _ => 1,
        }
    }
}

/// The sparse opcodes as (run, value) pairs, a zero run's value being 0.
struct SparseOps<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> SparseOps<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        SparseOps { bytes, at: 0 }
    }
}

impl Iterator for SparseOps<'_> {
    type Item = (usize, u8);

    fn next(&mut self) -> Option<(usize, u8)> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let op = Opcode::at(self.bytes, self.at);
        self.at += op.len();
        Some(match op {
            Opcode::Val { value, run } => (run, value),
            Opcode::Zero { run } | Opcode::XZero { run } => (run, 0),
        })
    }
}

/// `HLL_SPARSE_VAL_SET`.
fn val(value: u8, run: usize) -> u8 {
    ((value - 1) << 2) | ((run - 1) as u8) | HLL_SPARSE_VAL_BIT
}

/// `HLL_SPARSE_XZERO_SET`.
fn xzero(run: usize) -> [u8; 2] {
    let l = run - 1;
    [((l >> 8) as u8) | HLL_SPARSE_XZERO_BIT, (l & 0xff) as u8]
}

/// A zero run as `hllSparseSet` writes it: ZERO up to 64, else XZERO.
fn zeros(run: usize) -> Vec<u8> {
    if run > HLL_SPARSE_ZERO_MAX_LEN {
        xzero(run).to_vec()
    } else {
        vec![(run - 1) as u8]
    }
}

/// `HLL_DENSE_GET_REGISTER`.
fn dense_get(registers: &[u8], index: usize) -> u8 {
    let byte = index * HLL_BITS / 8;
    let fb = (index * HLL_BITS) & 7;
    let b0 = u16::from(registers.get(byte).copied().unwrap_or(0));
    let b1 = u16::from(registers.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u16::from(HLL_REGISTER_MAX)) as u8
}

/// `HLL_DENSE_SET_REGISTER`. The last register's second byte is past the
/// registers (Redis's string terminator) and receives no bits.
fn dense_put(registers: &mut [u8], index: usize, value: u8) {
    let byte = index * HLL_BITS / 8;
    let fb = (index * HLL_BITS) & 7;
    let v = u16::from(value);
    let max = u16::from(HLL_REGISTER_MAX);
    if let Some(b0) = registers.get_mut(byte) {
        *b0 = (*b0 & !((max << fb) as u8)) | ((v << fb) as u8);
    }
    if let Some(b1) = registers.get_mut(byte + 1) {
        *b1 = (*b1 & !((max >> (8 - fb)) as u8)) | ((v >> (8 - fb)) as u8);
    }
}

/// `hllDenseSet`.
fn dense_set(registers: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(registers, index) {
        dense_put(registers, index, count);
        true
    } else {
        false
    }
}

/// `hllPatLen`: the register an element hashes to and its run of zeroes
/// plus one.
fn pattern_len(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash64a(element, HLL_HASH_SEED);
    let index = (hash & HLL_P_MASK) as usize;
    let rest = (hash >> HLL_P) | (1u64 << HLL_Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Redis's endian-neutral MurmurHash64A.
pub fn murmur_hash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    // Redis passes the length as an int; multiplied as 64-bit unsigned.
    let len = key.len() as i32 as i64 as u64;
    let mut h = seed ^ len.wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let mut k = u64::from_le_bytes(word);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// `hllCount`'s estimator (Ertl, "New cardinality estimation algorithms for
/// HyperLogLog sketches", arXiv:1702.01284), as Redis computes it.
fn estimate(histogram: &[u32; 64]) -> u64 {
    let m = HLL_REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histogram[HLL_Q + 1])) / m);
    for j in (1..=HLL_Q).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    // llroundl: halves away from zero, like f64::round.
    (HLL_ALPHA_INF * m * m / z).round() as u64
}

/// `hllSigma`.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            return z;
        }
    }
}

/// `hllTau`. Redis's `pow(1 - x, 2)` is compiled to a multiplication.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z_prime == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::test_rng::Rng;

    fn registers_of(hll: &Hll) -> Registers {
        let mut max = Registers::default();
        hll.merge_into(&mut max).unwrap();
        max
    }

    fn elements(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| format!("e{}", rng.next()).into_bytes())
            .collect()
    }

    #[test]
    fn a_new_hll_is_one_xzero_of_every_register() {
        let hll = Hll::new();
        assert_eq!(hll.as_bytes(), b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert_eq!(Hll::new().count(), Ok(0));
    }

    #[test]
    fn only_what_redis_takes_for_an_hll_is_one() {
        assert_eq!(Hll::from_bytes(b"HYLL".to_vec()), Err(HllError::NotHll));
        assert_eq!(Hll::from_bytes(vec![0; 20]), Err(HllError::NotHll));
        let mut dense = Hll::new();
        dense.to_dense().unwrap();
        let mut short = dense.clone().into_bytes();
        short.pop();
        assert_eq!(Hll::from_bytes(short), Err(HllError::NotHll));
        let mut bad_encoding = Hll::new().into_bytes();
        bad_encoding[ENCODING_AT] = 2;
        assert_eq!(Hll::from_bytes(bad_encoding), Err(HllError::NotHll));
        assert!(Hll::from_bytes(dense.into_bytes()).is_ok());
    }

    #[test]
    fn the_sparse_and_dense_forms_hold_the_same_registers_and_count() {
        let mut rng = Rng(7);
        for n in [1, 10, 100, 1000, 5000] {
            let mut sparse = Hll::new();
            let mut dense = Hll::new();
            dense.to_dense().unwrap();
            let elements = elements(&mut rng, n);
            let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
            sparse.add_all(refs.iter().copied(), usize::MAX).unwrap();
            dense.add_all(refs.iter().copied(), usize::MAX).unwrap();
            assert!(sparse.is_sparse());
            assert_eq!(registers_of(&sparse), registers_of(&dense));
            let count = dense.count().unwrap();
            assert_eq!(sparse.count().unwrap(), count);
            assert_eq!(registers_of(&sparse).count(), count);
            // HLL's standard error is 0.81% with 16384 registers.
            let error = (count as f64 - n as f64).abs() / n as f64;
            assert!(error < 0.05, "{n} elements counted {count}");
            let mut converted = sparse.clone();
            assert_eq!(converted.to_dense(), Ok(true));
            assert_eq!(
                converted.as_bytes()[HLL_HDR_SIZE..],
                dense.as_bytes()[HLL_HDR_SIZE..]
            );
        }
    }

    #[test]
    fn the_sparse_form_stays_within_its_limit_then_becomes_dense() {
        let mut rng = Rng(11);
        let mut hll = Hll::new();
        for element in elements(&mut rng, 2000) {
            hll.add_all([element.as_slice()], 300).unwrap();
            if hll.is_sparse() {
                assert!(hll.as_bytes().len() <= 300);
            }
        }
        assert!(!hll.is_sparse());
        assert_eq!(hll.as_bytes().len(), HLL_DENSE_SIZE);
    }

    #[test]
    fn the_cache_is_written_by_count_and_marked_stale_by_a_change() {
        let mut hll = pfadd(None, &[b"a", b"b"], 3000).unwrap().unwrap();
        assert!(hll.cache_is_stale());
        let counted = pfcount(hll.as_bytes()).unwrap().unwrap();
        assert_eq!(counted.as_bytes()[CARD_AT..CARD_AT + 8], 2u64.to_le_bytes());
        assert_eq!(pfcount(counted.as_bytes()), Ok(None));
        hll = pfadd(Some(counted.as_bytes()), &[b"c"], 3000)
            .unwrap()
            .unwrap();
        // The stale count's low bytes stay, as in Redis.
        assert_eq!(
            hll.as_bytes()[CARD_AT..CARD_AT + 8],
            [2, 0, 0, 0, 0, 0, 0, 0x80]
        );
        assert_eq!(pfadd(Some(hll.as_bytes()), &[b"c"], 3000), Ok(None));
        assert!(pfadd(None, &[], 3000).unwrap().unwrap().cache_is_stale());
    }

    #[test]
    fn merge_is_the_register_maximum_and_dense_when_any_input_is() {
        let mut rng = Rng(3);
        let a = elements(&mut rng, 300);
        let b = elements(&mut rng, 300);
        let one = |xs: &[Vec<u8>]| {
            let refs: Vec<&[u8]> = xs.iter().map(Vec::as_slice).collect();
            pfadd(None, &refs, 3000).unwrap().unwrap()
        };
        let (ha, hb) = (one(&a), one(&b));
        let both: Vec<Vec<u8>> = a.iter().chain(&b).cloned().collect();
        let merged = pfmerge(None, &[Some(ha.as_bytes()), Some(hb.as_bytes())], 3000).unwrap();
        assert!(merged.is_sparse());
        assert_eq!(registers_of(&merged), registers_of(&one(&both)));
        let mut dense_b = hb.clone();
        dense_b.to_dense().unwrap();
        let merged = pfmerge(Some(ha.as_bytes()), &[Some(dense_b.as_bytes()), None], 3000).unwrap();
        assert!(!merged.is_sparse());
        assert_eq!(registers_of(&merged), registers_of(&one(&both)));
        assert!(merged.cache_is_stale());
    }

    #[test]
    fn corrupt_sparse_values_are_errors() {
        let mut rng = Rng(5);
        let mut errors = 0;
        for _ in 0..2000 {
            let len = HLL_HDR_SIZE + (rng.next() % 40) as usize;
            let mut bytes = b"HYLL\x01".to_vec();
            bytes.resize(len, 0);
            for byte in &mut bytes[HLL_HDR_SIZE..] {
                *byte = rng.next() as u8;
            }
            bytes[CARD_STALE_BYTE] = 0x80;
            let element = rng.next().to_le_bytes();
            for result in [
                pfadd(Some(&bytes), &[&element], 3000).map(|_| ()),
                pfcount(&bytes).map(|_| ()),
                pfdebug_todense(&bytes).map(|_| ()),
                pfmerge(None, &[Some(&bytes)], 3000).map(|_| ()),
            ] {
                errors += usize::from(result == Err(HllError::Corrupt));
            }
        }
        assert!(errors > 4000, "{errors}");
    }

    #[test]
    fn murmur_hash64a_is_redis_s() {
        // MurmurHash64A's published check: seed 0, the empty key.
        assert_eq!(murmur_hash64a(b"", 0), 0);
        assert_ne!(
            murmur_hash64a(b"a", HLL_HASH_SEED),
            murmur_hash64a(b"b", HLL_HASH_SEED)
        );
    }
}
