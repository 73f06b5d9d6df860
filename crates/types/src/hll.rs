//! HyperLogLog in Kvrocks' layout: metadata of type 11 with a one-byte encoding (0, dense)
//! after the size, and the 16384 six-bit registers in 16 segments of 1024 registers (768
//! bytes), each a sub-key named by the segment's decimal index. A missing segment counts as
//! all zeros. Hashing (MurmurHash64A, seed 0xadc83b19) and the estimator (Ertl's, as Redis 7)
//! are Redis', so counts match Redis' for the same elements.

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::Result;

const REGISTERS_POW: u32 = 14;
const REGISTERS: usize = 1 << REGISTERS_POW;
const REGISTER_BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
const HASH_BITS: u32 = 64 - REGISTERS_POW;
const SEGMENT_REGISTERS: usize = 1024;
const SEGMENT_BYTES: usize = SEGMENT_REGISTERS * REGISTER_BITS / 8;
const SEGMENTS: usize = REGISTERS / SEGMENT_REGISTERS;
const SEED: u64 = 0xadc8_3b19;
const ALPHA: f64 = 0.721_347_520_444_481_7;
/// Kvrocks' WAL marker for HyperLogLog writes (its `kRedisHyperLogLog`).
const LOG_DATA_HLL: &[u8] = b"11";

/// MurmurHash64A, the hash Redis' HyperLogLog uses.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and the length of its 0..01 pattern.
fn position(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> REGISTERS_POW) | (1u64 << HASH_BITS);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn get_register(regs: &[u8], i: usize) -> u8 {
    let byte = i * REGISTER_BITS / 8;
    let fb = (i * REGISTER_BITS) & 7;
    let b0 = regs[byte] as u16;
    let b1 = if fb > 8 - REGISTER_BITS {
        regs[byte + 1] as u16
    } else {
        0
    };
    (((b0 >> fb) | (b1 << (8 - fb))) as u8) & REGISTER_MAX
}

fn set_register(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * REGISTER_BITS / 8;
    let fb = (i * REGISTER_BITS) & 7;
    regs[byte] &= !(REGISTER_MAX << fb);
    regs[byte] |= val << fb;
    if fb > 8 - REGISTER_BITS {
        let fb8 = 8 - fb;
        regs[byte + 1] &= !(REGISTER_MAX >> fb8);
        regs[byte + 1] |= val >> fb8;
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Ertl's estimator over all registers (missing segments are zeros).
fn estimate(segments: &[Option<Vec<u8>>]) -> u64 {
    let m = REGISTERS as f64;
    let mut histo = [0u32; 64];
    for seg in segments {
        match seg {
            None => histo[0] += SEGMENT_REGISTERS as u32,
            Some(regs) => {
                for i in 0..SEGMENT_REGISTERS {
                    histo[get_register(regs, i) as usize] += 1;
                }
            }
        }
    }
    let q = HASH_BITS as usize;
    let mut z = m * tau((m - histo[q + 1] as f64) / m);
    for j in (1..=q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA * m * m / z).round() as u64
}

/// Redis' HyperLogLog string: "HYLL", the encoding, 3 unused bytes, 8 bytes of cached count.
const REDIS_HEADER: usize = 16;
/// The dense registers: 16384 of 6 bits, packed as quarry's segments are, one after another.
const DENSE_BYTES: usize = REGISTERS * REGISTER_BITS / 8;

/// The dense registers of a HyperLogLog string that Redis wrote (dense or sparse encoding),
/// or None if `v` is not a well-formed one.
pub fn redis_hll_registers(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < REDIS_HEADER || &v[..4] != b"HYLL" {
        return None;
    }
    let body = &v[REDIS_HEADER..];
    match v[4] {
        0 if body.len() == DENSE_BYTES => Some(body.to_vec()),
        1 => {
            // Opcodes: ZERO 00xxxxxx, XZERO 01xxxxxx yyyyyyyy (runs of zeros), VAL 1vvvvvxx
            // (a run of up to 4 registers holding v+1).
            let mut regs = vec![0u8; DENSE_BYTES];
            let mut index = 0usize;
            let mut i = 0;
            while i < body.len() {
                let op = body[i];
                let run = if op & 0xc0 == 0 {
                    i += 1;
                    (op & 0x3f) as usize + 1
                } else if op & 0xc0 == 0x40 {
                    let low = *body.get(i + 1)? as usize;
                    i += 2;
                    (((op & 0x3f) as usize) << 8 | low) + 1
                } else {
                    let val = ((op >> 2) & 0x1f) + 1;
                    let run = (op & 0x03) as usize + 1;
                    if index + run > REGISTERS {
                        return None;
                    }
                    for r in index..index + run {
                        set_register(&mut regs, r, val);
                    }
                    i += 1;
                    run
                };
                index += run;
                if index > REGISTERS {
                    return None;
                }
            }
            (index == REGISTERS).then_some(regs)
        }
        _ => None,
    }
}

impl Db {
    fn hll_meta(&self, key: &[u8]) -> Result<Option<Metadata>> {
        self.typed_metadata(key, RedisType::HyperLogLog)
    }

    fn hll_segments(&self, key: &[u8], meta: &Metadata) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(SEGMENTS);
        for s in 0..SEGMENTS {
            let sub = self
                .codec
                .subkey(key, meta.version, s.to_string().as_bytes());
            out.push(
                self.get_cf(ColumnFamily::Default, &sub)?
                    .map(|v| v.to_vec())
                    .filter(|v| v.len() == SEGMENT_BYTES),
            );
        }
        Ok(out)
    }

    fn new_hll_meta() -> Metadata {
        let mut meta = Metadata::new_complex(RedisType::HyperLogLog);
        meta.payload = vec![0]; // dense encoding
        meta
    }

    /// PFADD: true if a register changed or the key was created.
    pub fn pfadd<E: AsRef<[u8]>>(&self, key: &[u8], elements: &[E]) -> Result<bool> {
        let _guard = self.locks.lock(key);
        let (meta, created) = match self.hll_meta(key)? {
            Some(m) => (m, false),
            None => (Self::new_hll_meta(), true),
        };
        let mut segments = if created {
            vec![None; SEGMENTS]
        } else {
            self.hll_segments(key, &meta)?
        };
        let mut dirty = [false; SEGMENTS];
        for e in elements {
            let (index, count) = position(e.as_ref());
            let seg = index / SEGMENT_REGISTERS;
            let regs = segments[seg].get_or_insert_with(|| vec![0; SEGMENT_BYTES]);
            if get_register(regs, index % SEGMENT_REGISTERS) < count {
                set_register(regs, index % SEGMENT_REGISTERS, count);
                dirty[seg] = true;
            }
        }
        if !created && !dirty.contains(&true) {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_HLL);
        for (i, seg) in segments.iter().enumerate() {
            if let (true, Some(regs)) = (dirty[i], seg) {
                batch.put_cf(
                    self.engine.cf(ColumnFamily::Default),
                    self.codec
                        .subkey(key, meta.version, i.to_string().as_bytes()),
                    regs,
                );
            }
        }
        if created {
            batch.put_cf(
                self.metadata_cf(),
                self.codec.metadata_key(key),
                meta.encode(),
            );
        }
        self.write(batch)?;
        Ok(true)
    }

    /// The registers of the union of `keys` (missing keys are empty).
    fn hll_union<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut merged: Vec<Option<Vec<u8>>> = vec![None; SEGMENTS];
        for k in keys {
            let Some(meta) = self.hll_meta(k.as_ref())? else {
                continue;
            };
            for (i, seg) in self
                .hll_segments(k.as_ref(), &meta)?
                .into_iter()
                .enumerate()
            {
                let Some(src) = seg else { continue };
                match &mut merged[i] {
                    None => merged[i] = Some(src),
                    Some(dst) => {
                        for r in 0..SEGMENT_REGISTERS {
                            let v = get_register(&src, r);
                            if v > get_register(dst, r) {
                                set_register(dst, r, v);
                            }
                        }
                    }
                }
            }
        }
        Ok(merged)
    }

    /// The HyperLogLog at `key` as Redis keeps one, a dense "HYLL" string (its cached count
    /// marked stale), for DUMP and MIGRATE to a Redis server. None if the key is missing.
    pub fn hll_redis_string(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(meta) = self.hll_meta(key)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(REDIS_HEADER + DENSE_BYTES);
        out.extend_from_slice(b"HYLL");
        out.push(0); // dense
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80]); // cached count: stale
        for seg in self.hll_segments(key, &meta)? {
            match seg {
                Some(regs) => out.extend_from_slice(&regs),
                None => out.resize(out.len() + SEGMENT_BYTES, 0),
            }
        }
        Ok(Some(out))
    }

    /// Writes `registers` (Redis' dense layout, from [`redis_hll_registers`]) as the
    /// HyperLogLog `key`, which the caller has removed. Empty segments are not stored.
    pub fn hll_store(&self, key: &[u8], registers: &[u8]) -> Result<()> {
        let meta = Self::new_hll_meta();
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_HLL);
        for (i, regs) in registers.chunks(SEGMENT_BYTES).enumerate() {
            if regs.iter().any(|&b| b != 0) {
                batch.put_cf(
                    self.engine.cf(ColumnFamily::Default),
                    self.codec
                        .subkey(key, meta.version, i.to_string().as_bytes()),
                    regs,
                );
            }
        }
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            meta.encode(),
        );
        self.write(batch)
    }

    /// PFCOUNT: the estimated cardinality of the union of `keys`.
    pub fn pfcount<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64> {
        Ok(estimate(&self.hll_union(keys)?))
    }

    /// PFMERGE: `dst` becomes the union of itself and `sources`.
    pub fn pfmerge<K: AsRef<[u8]>>(&self, dst: &[u8], sources: &[K]) -> Result<()> {
        let mut keys: Vec<&[u8]> = vec![dst];
        keys.extend(sources.iter().map(|k| k.as_ref()));
        let merged = self.hll_union(&keys)?;
        let _guard = self.locks.lock(dst);
        let meta = match self.hll_meta(dst)? {
            Some(m) => m,
            None => Self::new_hll_meta(),
        };
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_HLL);
        for (i, seg) in merged.iter().enumerate() {
            if let Some(regs) = seg {
                batch.put_cf(
                    self.engine.cf(ColumnFamily::Default),
                    self.codec
                        .subkey(dst, meta.version, i.to_string().as_bytes()),
                    regs,
                );
            }
        }
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(dst),
            meta.encode(),
        );
        self.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_and_registers_match_redis() {
        // Register packing round-trips at every bit offset.
        let mut regs = vec![0u8; SEGMENT_BYTES];
        for i in 0..SEGMENT_REGISTERS {
            set_register(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..SEGMENT_REGISTERS {
            assert_eq!(get_register(&regs, i), (i % 64) as u8);
        }
        // An empty sketch counts 0; one element counts 1.
        assert_eq!(estimate(&vec![None; SEGMENTS]), 0);
        let mut segs = vec![None; SEGMENTS];
        let (index, count) = position(b"a");
        let mut seg = vec![0u8; SEGMENT_BYTES];
        set_register(&mut seg, index % SEGMENT_REGISTERS, count);
        segs[index / SEGMENT_REGISTERS] = Some(seg);
        assert_eq!(estimate(&segs), 1);
    }

    /// The string Redis 7.0.15 keeps after `PFADD hs a b c` (sparse), from its DUMP.
    #[test]
    fn a_redis_sparse_string_decodes_to_its_registers() {
        let mut v = b"HYLL\x01\0\0\0\x03\0\0\0\0\0\0\0".to_vec();
        v.extend_from_slice(&[
            0x60, 0xf3, 0x80, 0x50, 0xb1, 0x84, 0x4b, 0xfb, 0x80, 0x42, 0x5a,
        ]);
        let regs = redis_hll_registers(&v).unwrap();
        let mut expected = vec![0u8; DENSE_BYTES];
        for e in [&b"a"[..], b"b", b"c"] {
            let (index, count) = position(e);
            set_register(&mut expected, index, count);
        }
        assert_eq!(regs, expected);
        let segs: Vec<Option<Vec<u8>>> = regs
            .chunks(SEGMENT_BYTES)
            .map(|c| Some(c.to_vec()))
            .collect();
        assert_eq!(estimate(&segs), 3);
        // Runs that do not cover 16384 registers exactly, or other encodings, are not HLLs.
        assert!(redis_hll_registers(&v[..v.len() - 1]).is_none());
        let mut dense = b"HYLL\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        dense.resize(REDIS_HEADER + DENSE_BYTES - 1, 0);
        assert!(redis_hll_registers(&dense).is_none());
        dense.push(0);
        assert!(redis_hll_registers(&dense).is_some());
        assert!(redis_hll_registers(b"HYLX").is_none());
    }
}
