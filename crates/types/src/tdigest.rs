//! t-digests in Kvrocks' layout (its `TDigest`, Kvrocks 2.11 and later): metadata of type 12
//! whose payload after the size holds the compression and the buffer capacity (u32), the
//! unmerged and merged node counts, the total and merged weights (u64), the minimum and
//! maximum (order-preserving doubles), the observations and the merges done (u64), all
//! big-endian. Sub-keys: `0x00` holds the buffer of values not merged yet (order-preserving
//! doubles one after another); `0x01 | mean | seq:u32` holds one centroid, its weight the value.
//!
//! Values are added to the buffer until it would pass the capacity (`6 × compression + 10`,
//! at most 1,024), then buffer and values are merged into the centroids. Merging is the
//! merging t-digest with the k1 scale function (Dunning and Ertl), as Kvrocks and Apache
//! Arrow do it. Reads merge the buffer in memory and write nothing, so they run on replicas
//! too. A digest holds at most a few thousand centroids whatever it has seen: its memory is
//! bounded by the compression.

use quarry_storage::encoding::{decode_ordered_double, encode_ordered_double, Metadata, RedisType};
use quarry_storage::{ColumnFamily, StorageError, WriteBatch};

use crate::db::Db;
use crate::Result;

pub const DEFAULT_COMPRESSION: u32 = 100;
/// Kvrocks' and RedisBloom's limit.
pub const MAX_COMPRESSION: u32 = 1000;
const MAX_BUFFER: u32 = 1024;
const SEGMENT_BUFFER: u8 = 0;
const SEGMENT_CENTROIDS: u8 = 1;
const PAYLOAD_LEN: usize = 72;
/// Kvrocks' WAL marker for t-digest writes (its `kRedisTDigest`).
const LOG_DATA: &[u8] = b"12";

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Centroid {
    pub mean: f64,
    pub weight: f64,
}

/// The digest's counters, from the metadata's payload (TDIGEST.INFO).
#[derive(Clone, Debug, PartialEq)]
pub struct TDigestInfo {
    pub compression: u32,
    pub capacity: u32,
    pub unmerged_nodes: u64,
    pub merged_nodes: u64,
    pub total_weight: u64,
    pub merged_weight: u64,
    pub min: f64,
    pub max: f64,
    pub observations: u64,
    pub merges: u64,
}

impl TDigestInfo {
    pub fn new(compression: u32) -> TDigestInfo {
        TDigestInfo {
            compression,
            capacity: (compression.saturating_mul(6).saturating_add(10)).min(MAX_BUFFER),
            unmerged_nodes: 0,
            merged_nodes: 0,
            total_weight: 0,
            merged_weight: 0,
            min: f64::MAX,
            max: f64::MIN,
            observations: 0,
            merges: 0,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAYLOAD_LEN);
        out.extend_from_slice(&self.compression.to_be_bytes());
        out.extend_from_slice(&self.capacity.to_be_bytes());
        for v in [
            self.unmerged_nodes,
            self.merged_nodes,
            self.total_weight,
            self.merged_weight,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&encode_ordered_double(self.min));
        out.extend_from_slice(&encode_ordered_double(self.max));
        out.extend_from_slice(&self.observations.to_be_bytes());
        out.extend_from_slice(&self.merges.to_be_bytes());
        out
    }

    fn decode(p: &[u8]) -> Result<TDigestInfo> {
        if p.len() < PAYLOAD_LEN {
            return Err(StorageError::Corrupt("t-digest metadata is too short".into()).into());
        }
        let u32_at = |i: usize| u32::from_be_bytes(p[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(p[i..i + 8].try_into().expect("8 bytes"));
        let f64_at = |i: usize| decode_ordered_double(p[i..i + 8].try_into().expect("8 bytes"));
        Ok(TDigestInfo {
            compression: u32_at(0),
            capacity: u32_at(4),
            unmerged_nodes: u64_at(8),
            merged_nodes: u64_at(16),
            total_weight: u64_at(24),
            merged_weight: u64_at(32),
            min: f64_at(40),
            max: f64_at(48),
            observations: u64_at(56),
            merges: u64_at(64),
        })
    }
}

/// A digest in memory: centroids sorted by mean, and what they summarise.
#[derive(Clone, Debug, PartialEq)]
pub struct Digest {
    pub compression: u32,
    pub centroids: Vec<Centroid>,
    pub min: f64,
    pub max: f64,
    pub total: f64,
}

/// The k1 scale function: `k(q) = δ/2π · asin(2q − 1)`. A centroid may grow while the scale
/// advances by at most 1 across it, so centroids are small near the tails and large in the
/// middle.
struct Scale {
    norm: f64,
}

impl Scale {
    fn new(compression: u32) -> Scale {
        Scale {
            norm: compression.max(10) as f64 / (2.0 * std::f64::consts::PI),
        }
    }
    fn k(&self, q: f64) -> f64 {
        self.norm * (2.0 * q - 1.0).clamp(-1.0, 1.0).asin()
    }
    fn q(&self, k: f64) -> f64 {
        ((k / self.norm).sin() + 1.0) / 2.0
    }
}

/// Merges a stream of centroids sorted by mean into as few as the scale allows.
fn compress(sorted: impl Iterator<Item = Centroid>, total: f64, compression: u32) -> Vec<Centroid> {
    let scale = Scale::new(compression);
    let mut out: Vec<Centroid> = Vec::new();
    let mut so_far = 0.0;
    let mut limit = -1.0;
    for c in sorted {
        let reached = so_far + c.weight;
        match out.last_mut() {
            Some(last) if reached <= limit => {
                let w = last.weight + c.weight;
                last.mean += (c.mean - last.mean) * c.weight / w;
                last.weight = w;
            }
            _ => {
                let next = total * scale.q(scale.k(so_far / total) + 1.0);
                // The limit only grows; past the last step it is the whole weight.
                limit = if next <= limit { total } else { next };
                out.push(c);
            }
        }
        so_far = reached;
    }
    out
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

impl Digest {
    pub fn empty(compression: u32) -> Digest {
        Digest {
            compression,
            centroids: Vec::new(),
            min: f64::MAX,
            max: f64::MIN,
            total: 0.0,
        }
    }

    /// The merged centroids as stored, with the counters of `info` (the buffer not yet in).
    fn stored(info: &TDigestInfo, centroids: Vec<Centroid>) -> Digest {
        let total: f64 = centroids.iter().map(|c| c.weight).sum();
        let (min, max) = if total == 0.0 {
            (f64::MAX, f64::MIN)
        } else {
            (info.min, info.max)
        };
        Digest {
            compression: info.compression,
            centroids,
            min,
            max,
            total,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0.0
    }

    /// Adds observations.
    pub fn add(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        self.min = self.min.min(sorted[0]);
        self.max = self.max.max(sorted[sorted.len() - 1]);
        self.total += sorted.len() as f64;
        let mut merged = Vec::with_capacity(self.centroids.len() + sorted.len());
        let (mut i, mut j) = (0, 0);
        while i < self.centroids.len() || j < sorted.len() {
            if j == sorted.len() || (i < self.centroids.len() && self.centroids[i].mean < sorted[j])
            {
                merged.push(self.centroids[i]);
                i += 1;
            } else {
                merged.push(Centroid {
                    mean: sorted[j],
                    weight: 1.0,
                });
                j += 1;
            }
        }
        self.centroids = compress(merged.into_iter(), self.total, self.compression);
    }

    /// Takes in other digests' observations.
    pub fn merge(&mut self, others: &[Digest]) {
        let mut all: Vec<Centroid> = self.centroids.clone();
        for o in others.iter().filter(|o| !o.is_empty()) {
            all.extend_from_slice(&o.centroids);
            self.total += o.total;
            self.min = self.min.min(o.min);
            self.max = self.max.max(o.max);
        }
        all.sort_by(|a, b| a.mean.total_cmp(&b.mean));
        self.centroids = compress(all.into_iter(), self.total, self.compression);
    }

    /// The value below which a fraction `q` of the observations lie (NaN when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        let td = &self.centroids;
        if !(0.0..=1.0).contains(&q) || td.is_empty() {
            return f64::NAN;
        }
        let index = q * self.total;
        if index <= 1.0 {
            return self.min;
        }
        if index >= self.total - 1.0 {
            return self.max;
        }
        let mut ci = 0;
        let mut weight_sum = 0.0;
        while ci < td.len() {
            weight_sum += td[ci].weight;
            if index <= weight_sum {
                break;
            }
            ci += 1;
        }
        let ci = ci.min(td.len() - 1);
        // How far the index is from the centroid's centre.
        let mut diff = index + td[ci].weight / 2.0 - weight_sum;
        if td[ci].weight == 1.0 && diff.abs() < 0.5 {
            return td[ci].mean;
        }
        let (left, right) = if diff > 0.0 {
            if ci == td.len() - 1 {
                let c = td[ci];
                return lerp(c.mean, self.max, diff / (c.weight / 2.0));
            }
            (ci, ci + 1)
        } else {
            if ci == 0 {
                let c = td[0];
                return lerp(self.min, c.mean, index / (c.weight / 2.0));
            }
            diff += td[ci - 1].weight / 2.0 + td[ci].weight / 2.0;
            (ci - 1, ci)
        };
        diff /= td[left].weight / 2.0 + td[right].weight / 2.0;
        lerp(td[left].mean, td[right].mean, diff)
    }

    /// The fraction of observations below `x`, plus half of those equal to it (NaN when
    /// empty).
    pub fn cdf(&self, x: f64) -> f64 {
        let td = &self.centroids;
        if td.is_empty() {
            return f64::NAN;
        }
        if x < self.min {
            return 0.0;
        }
        if x > self.max {
            return 1.0;
        }
        if self.min == self.max {
            return 0.5;
        }
        let n = self.total;
        let mut before = 0.0;
        for (i, c) in td.iter().enumerate() {
            if x == c.mean {
                // Every centroid at exactly this mean counts half.
                let equal: f64 = td[i..]
                    .iter()
                    .take_while(|d| d.mean == x)
                    .map(|d| d.weight)
                    .sum();
                return (before + equal / 2.0) / n;
            }
            if x < c.mean {
                if i == 0 {
                    // Between the minimum and the first centroid's centre.
                    let span = c.mean - self.min;
                    let t = if span > 0.0 {
                        (x - self.min) / span
                    } else {
                        1.0
                    };
                    return t * c.weight / 2.0 / n;
                }
                let p = td[i - 1];
                let t = (x - p.mean) / (c.mean - p.mean);
                let start = before - p.weight / 2.0;
                return (start + t * (p.weight + c.weight) / 2.0) / n;
            }
            before += c.weight;
        }
        // Between the last centroid's centre and the maximum.
        let last = td[td.len() - 1];
        let span = self.max - last.mean;
        let t = if span > 0.0 {
            (x - last.mean) / span
        } else {
            1.0
        };
        (n - last.weight / 2.0 + t * last.weight / 2.0) / n
    }

    /// RedisBloom's TDIGEST.RANK (`reverse`: REVRANK): observations below `x` plus half of
    /// those equal; -1 beyond the low end, the count beyond the high end, -2 when empty.
    pub fn rank(&self, x: f64, reverse: bool) -> i64 {
        let n = self.total;
        if n == 0.0 {
            return -2;
        }
        if x < self.min {
            return if reverse { n as i64 } else { -1 };
        }
        if x > self.max {
            return if reverse { -1 } else { n as i64 };
        }
        let at = self.cdf(x) * n;
        if reverse {
            (n - at.round()).round() as i64
        } else {
            // Half rounds down: the half of an observation equal to `x` does not count.
            let r = at.round();
            (if r - at == 0.5 { r - 1.0 } else { r }) as i64
        }
    }

    /// RedisBloom's TDIGEST.BYRANK (`reverse`: BYREVRANK): the value with that rank.
    pub fn by_rank(&self, rank: u64, reverse: bool) -> f64 {
        let n = self.total;
        if n == 0.0 {
            return f64::NAN;
        }
        if rank == 0 {
            return if reverse { self.max } else { self.min };
        }
        if rank as f64 >= n {
            return if reverse {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
        }
        // The centre of the rank-th observation (0-based), from the chosen end.
        let r = rank as f64 + 0.5;
        self.quantile(if reverse { 1.0 - r / n } else { r / n })
    }

    /// The mean of the observations between the `low` and `high` quantiles.
    pub fn trimmed_mean(&self, low: f64, high: f64) -> f64 {
        if self.centroids.is_empty() {
            return f64::NAN;
        }
        let (lo, hi) = (low * self.total, high * self.total);
        let (mut sum, mut count, mut at) = (0.0, 0.0, 0.0);
        for c in &self.centroids {
            let (start, end) = (at, at + c.weight);
            let inside = end.min(hi) - start.max(lo);
            if inside > 0.0 {
                sum += c.mean * inside;
                count += inside;
            }
            at = end;
        }
        if count == 0.0 {
            f64::NAN
        } else {
            sum / count
        }
    }
}

/// What a digest has stored: centroids, the buffer, and the sub-keys holding them.
type Stored = (Vec<Centroid>, Vec<f64>, Vec<Vec<u8>>);

/// A digest's parts for DUMP: compression, min, max, observations, centroids.
pub type TDigestParts = (u32, f64, f64, u64, Vec<Centroid>);

impl Db {
    fn td_meta(&self, key: &[u8]) -> Result<Option<(Metadata, TDigestInfo)>> {
        match self.typed_metadata(key, RedisType::TDigest)? {
            Some(m) => {
                let info = TDigestInfo::decode(&m.payload)?;
                Ok(Some((m, info)))
            }
            None => Ok(None),
        }
    }

    /// TDIGEST.INFO's counters, or None if the key is missing.
    pub fn td_info(&self, key: &[u8]) -> Result<Option<TDigestInfo>> {
        Ok(self.td_meta(key)?.map(|(_, i)| i))
    }

    /// The stored centroids and buffer of a digest (whose metadata is `meta`), with the
    /// sub-keys holding them.
    fn td_parts(&self, key: &[u8], meta: &Metadata) -> Result<Stored> {
        let (mut centroids, mut buffer, mut subs) = (Vec::new(), Vec::new(), Vec::new());
        let mut bad = false;
        self.subkey_walk(key, meta.version, None, |sub, v| {
            subs.push(sub.to_vec());
            match sub.first() {
                Some(&SEGMENT_BUFFER) => {
                    buffer.extend(
                        v.chunks_exact(8)
                            .map(|c| decode_ordered_double(c.try_into().expect("8 bytes"))),
                    );
                }
                Some(&SEGMENT_CENTROIDS) if sub.len() >= 9 && v.len() >= 8 => {
                    centroids.push(Centroid {
                        mean: decode_ordered_double(sub[1..9].try_into().expect("8 bytes")),
                        weight: decode_ordered_double(v[..8].try_into().expect("8 bytes")),
                    });
                }
                _ => bad = true,
            }
            true
        })?;
        if bad {
            return Err(StorageError::Corrupt("a t-digest sub-key does not decode".into()).into());
        }
        Ok((centroids, buffer, subs))
    }

    /// The digest with its buffer merged in (nothing is written), or None if missing.
    pub fn td_read(&self, key: &[u8]) -> Result<Option<(TDigestInfo, Digest)>> {
        let Some((meta, info)) = self.td_meta(key)? else {
            return Ok(None);
        };
        let (centroids, buffer, _) = self.td_parts(key, &meta)?;
        let mut d = Digest::stored(&info, centroids);
        d.add(&buffer);
        Ok(Some((info, d)))
    }

    /// Stages a digest's new state: `centroids` replace the stored ones (and the buffer).
    fn td_stage(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        meta: &Metadata,
        old_subs: &[Vec<u8>],
        centroids: &[Centroid],
    ) {
        let cf = self.engine.cf(ColumnFamily::Default);
        for sub in old_subs {
            batch.delete_cf(cf, self.codec.subkey(key, meta.version, sub));
        }
        for (seq, c) in centroids.iter().enumerate() {
            let mut sub = Vec::with_capacity(13);
            sub.push(SEGMENT_CENTROIDS);
            sub.extend_from_slice(&encode_ordered_double(c.mean));
            sub.extend_from_slice(&(seq as u32).to_be_bytes());
            batch.put_cf(
                cf,
                self.codec.subkey(key, meta.version, &sub),
                encode_ordered_double(c.weight),
            );
        }
    }

    fn td_put_meta(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        meta: &mut Metadata,
        info: &TDigestInfo,
    ) {
        meta.payload = info.encode();
        batch.put_log_data(LOG_DATA);
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            meta.encode(),
        );
    }

    /// TDIGEST.CREATE: false if the key exists.
    pub fn td_create(&self, key: &[u8], compression: u32) -> Result<bool> {
        let _guard = self.locks.lock(key);
        if self.td_meta(key)?.is_some() {
            return Ok(false);
        }
        let mut meta = Metadata::new_complex(RedisType::TDigest);
        let mut batch = WriteBatch::default();
        self.td_put_meta(&mut batch, key, &mut meta, &TDigestInfo::new(compression));
        self.write(batch)?;
        Ok(true)
    }

    /// TDIGEST.ADD: false if the key is missing.
    pub fn td_add(&self, key: &[u8], values: &[f64]) -> Result<bool> {
        let _guard = self.locks.lock(key);
        let Some((mut meta, mut info)) = self.td_meta(key)? else {
            return Ok(false);
        };
        if values.is_empty() {
            return Ok(true);
        }
        let n = values.len() as u64;
        info.observations += n;
        info.total_weight += n;
        for &v in values {
            info.min = info.min.min(v);
            info.max = info.max.max(v);
        }
        let mut batch = WriteBatch::default();
        if info.unmerged_nodes + n <= info.capacity as u64 {
            let sub = self.codec.subkey(key, meta.version, &[SEGMENT_BUFFER]);
            let mut buffer = self
                .get_cf(ColumnFamily::Default, &sub)?
                .map(|v| v.to_vec())
                .unwrap_or_default();
            for &v in values {
                buffer.extend_from_slice(&encode_ordered_double(v));
            }
            batch.put_cf(self.engine.cf(ColumnFamily::Default), sub, buffer);
            info.unmerged_nodes += n;
        } else {
            let (centroids, mut buffer, subs) = self.td_parts(key, &meta)?;
            buffer.extend_from_slice(values);
            let mut d = Digest::stored(&info, centroids);
            d.add(&buffer);
            self.td_stage(&mut batch, key, &meta, &subs, &d.centroids);
            info.merged_nodes = d.centroids.len() as u64;
            info.unmerged_nodes = 0;
            info.merged_weight = d.total as u64;
            info.merges += 1;
        }
        self.td_put_meta(&mut batch, key, &mut meta, &info);
        self.write(batch)?;
        Ok(true)
    }

    /// TDIGEST.RESET: false if the key is missing. The compression stays.
    pub fn td_reset(&self, key: &[u8]) -> Result<bool> {
        let _guard = self.locks.lock(key);
        let Some((mut meta, info)) = self.td_meta(key)? else {
            return Ok(false);
        };
        let (_, _, subs) = self.td_parts(key, &meta)?;
        let mut batch = WriteBatch::default();
        self.td_stage(&mut batch, key, &meta, &subs, &[]);
        self.td_put_meta(
            &mut batch,
            key,
            &mut meta,
            &TDigestInfo::new(info.compression),
        );
        self.write(batch)?;
        Ok(true)
    }

    /// Writes `d` as the whole content of `key` (RESTORE, into a key the caller removed).
    pub fn td_store(&self, key: &[u8], d: &Digest, observations: u64) -> Result<()> {
        let _guard = self.locks.lock(key);
        self.td_store_locked(key, d, observations)
    }

    /// TDIGEST.MERGE: `sources` (and the destination's own observations, unless `replace`)
    /// into `dest`, with `compression` or the largest of theirs.
    pub fn td_merge_into(
        &self,
        dest: &[u8],
        mut sources: Vec<Digest>,
        mut observations: u64,
        compression: Option<u32>,
        replace: bool,
    ) -> Result<()> {
        let _guard = self.locks.lock(dest);
        // WRONGTYPE for another type under the destination, OVERRIDE or not.
        let existing = self.td_read(dest)?;
        let compression = compression.unwrap_or_else(|| {
            sources
                .iter()
                .chain(existing.as_ref().filter(|_| !replace).map(|(_, d)| d))
                .map(|d| d.compression)
                .max()
                .unwrap_or(DEFAULT_COMPRESSION)
        });
        if let Some((info, d)) = existing.filter(|_| !replace) {
            observations += info.observations;
            sources.push(d);
        }
        let mut merged = Digest::empty(compression);
        merged.merge(&sources);
        self.td_store_locked(dest, &merged, observations)
    }

    fn td_store_locked(&self, key: &[u8], d: &Digest, observations: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        let (mut meta, subs) = match self.td_meta(key)? {
            Some((meta, _)) => {
                let (_, _, subs) = self.td_parts(key, &meta)?;
                (meta, subs)
            }
            None => {
                // Another type under the key is the caller's to refuse; a dead one goes.
                (Metadata::new_complex(RedisType::TDigest), Vec::new())
            }
        };
        self.td_stage(&mut batch, key, &meta, &subs, &d.centroids);
        let mut info = TDigestInfo::new(d.compression);
        info.merged_nodes = d.centroids.len() as u64;
        info.total_weight = d.total as u64;
        info.merged_weight = d.total as u64;
        info.observations = observations;
        if !d.is_empty() {
            info.min = d.min;
            info.max = d.max;
            info.merges = 1;
        }
        self.td_put_meta(&mut batch, key, &mut meta, &info);
        self.write(batch)?;
        Ok(())
    }

    /// DUMP: compression, min, max, observations and the merged centroids.
    pub fn td_dump(&self, key: &[u8]) -> Result<Option<TDigestParts>> {
        Ok(self
            .td_read(key)?
            .map(|(info, d)| (d.compression, d.min, d.max, info.observations, d.centroids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_payload_layout() {
        let mut info = TDigestInfo::new(100);
        assert_eq!(info.capacity, 610);
        info.min = 1.5;
        info.max = -2.0;
        info.observations = 7;
        let bytes = info.encode();
        assert_eq!(bytes.len(), PAYLOAD_LEN);
        assert_eq!(&bytes[..8], &[0, 0, 0, 100, 0, 0, 2, 0x62]);
        assert_eq!(&bytes[40..48], &encode_ordered_double(1.5));
        assert_eq!(TDigestInfo::decode(&bytes).unwrap(), info);
        assert_eq!(TDigestInfo::new(1000).capacity, MAX_BUFFER);
    }

    fn digest_of(values: &[f64], compression: u32) -> Digest {
        let mut d = Digest::empty(compression);
        // In chunks, as buffers are merged.
        for chunk in values.chunks(500) {
            d.add(chunk);
        }
        d
    }

    #[test]
    fn exact_on_few_values() {
        let d = digest_of(
            &[1., 2., 2., 3., 3., 3., 4., 4., 4., 4., 5., 5., 5., 5., 5.],
            100,
        );
        let by: Vec<f64> = (0..16).map(|r| d.by_rank(r, false)).collect();
        assert_eq!(
            by,
            [
                1.,
                2.,
                2.,
                3.,
                3.,
                3.,
                4.,
                4.,
                4.,
                4.,
                5.,
                5.,
                5.,
                5.,
                5.,
                f64::INFINITY
            ]
        );
        let d = digest_of(&[10., 20., 30., 40., 50., 60.], 100);
        let ranks: Vec<i64> = [0., 10., 20., 30., 40., 50., 60., 70.]
            .iter()
            .map(|&x| d.rank(x, false))
            .collect();
        assert_eq!(ranks, [-1, 0, 1, 2, 3, 4, 5, 6]);
        let rev: Vec<i64> = [0., 10., 20., 30., 40., 50., 60., 70.]
            .iter()
            .map(|&x| d.rank(x, true))
            .collect();
        assert_eq!(rev, [6, 5, 4, 3, 2, 1, 0, -1]);
        let d = digest_of(&(1..=10).map(f64::from).collect::<Vec<_>>(), 100);
        assert_eq!(d.trimmed_mean(0.1, 0.6), 4.0);
        assert_eq!(d.trimmed_mean(0.3, 0.9), 6.5);
        assert_eq!(d.trimmed_mean(0.0, 1.0), 5.5);
        assert_eq!(d.cdf(0.0), 0.0);
        assert_eq!(d.cdf(11.0), 1.0);
        assert!(Digest::empty(100).quantile(0.5).is_nan());
    }

    #[test]
    fn quantiles_of_a_known_distribution_stay_within_bounds() {
        // 100,000 values uniform on [0, 1), in a fixed pseudo-random order.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let values: Vec<f64> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        let d = digest_of(&values, 100);
        assert!(d.centroids.len() < 400, "{} centroids", d.centroids.len());
        assert_eq!(d.total, 100_000.0);
        for q in [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999] {
            let got = d.quantile(q);
            // The error bound of a compression-100 t-digest on the uniform distribution:
            // about 1% of the rank in the middle, much tighter at the tails.
            let bound = 0.01 * (q * (1.0 - q)).sqrt() * 4.0 + 0.0005;
            assert!((got - q).abs() < bound, "q={q}: {got}");
            let c = d.cdf(q);
            assert!((c - q).abs() < bound, "cdf({q}) = {c}");
        }
        // Merging two halves gives the same answers, within the same bounds.
        let (a, b) = values.split_at(50_000);
        let mut m = digest_of(a, 100);
        m.merge(&[digest_of(b, 100)]);
        assert_eq!(m.total, 100_000.0);
        for q in [0.01, 0.5, 0.99] {
            assert!((m.quantile(q) - q).abs() < 0.01, "merged q={q}");
        }
    }
}
