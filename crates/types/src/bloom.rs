//! Scalable Bloom filters in Kvrocks' layout (its `BloomChain`): metadata of type 9 whose
//! payload after the size holds the number of sub-filters (u16), the expansion (u16, 0 for a
//! non-scaling filter), the base capacity (u32), the error rate (an order-preserving double)
//! and the bytes of all sub-filters (u32), big-endian; `size` counts the items added. Each
//! sub-filter is one sub-key, named by its index as a big-endian u16, holding a block-split
//! Bloom filter (Parquet's: 32-byte blocks of eight 32-bit words, one bit set per word by
//! eight salts) over the item's XXH64 (seed 0). The same hash and layout as Kvrocks, so a filter
//! Kvrocks wrote answers the same here.
//!
//! A sub-filter is one value: adding to it rewrites it whole, as Kvrocks does. Its size is
//! capped at 128 MiB (Kvrocks' cap), which bounds the memory one command needs.

use quarry_storage::encoding::{decode_ordered_double, encode_ordered_double, Metadata, RedisType};
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::Result;

pub const DEFAULT_CAPACITY: u32 = 100;
pub const DEFAULT_ERROR_RATE: f64 = 0.01;
pub const DEFAULT_EXPANSION: u16 = 2;

const MIN_BYTES: u32 = 32;
/// The error rate of each added sub-filter, relative to the one before (RedisBloom's ratio).
const TIGHTENING: f64 = 0.5;
const MAX_BYTES: u32 = 128 * 1024 * 1024;
const BLOCK_BYTES: usize = 32;
const WORDS_PER_BLOCK: usize = 8;
const SALT: [u32; WORDS_PER_BLOCK] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];
/// Kvrocks' WAL markers for Bloom filter writes (its `kRedisBloomFilter`).
const LOG_DATA_CREATE: &[u8] = b"9 createBloomChain";
const LOG_DATA_INSERT: &[u8] = b"9 insert";

/// What an added item did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BloomAdd {
    Added,
    Exists,
    /// A non-scaling filter at its capacity.
    Full,
}

/// The filter's shape, from the metadata's payload.
#[derive(Clone, Debug, PartialEq)]
pub struct BloomInfo {
    pub n_filters: u16,
    pub expansion: u16,
    pub base_capacity: u32,
    pub error_rate: f64,
    pub bloom_bytes: u32,
    /// Items added.
    pub size: u64,
}

impl BloomInfo {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20);
        out.extend_from_slice(&self.n_filters.to_be_bytes());
        out.extend_from_slice(&self.expansion.to_be_bytes());
        out.extend_from_slice(&self.base_capacity.to_be_bytes());
        out.extend_from_slice(&encode_ordered_double(self.error_rate));
        out.extend_from_slice(&self.bloom_bytes.to_be_bytes());
        out
    }

    fn decode(meta: &Metadata) -> Result<BloomInfo> {
        let p = &meta.payload;
        if p.len() < 20 {
            return Err(quarry_storage::StorageError::Corrupt(
                "Bloom filter metadata is too short".into(),
            )
            .into());
        }
        Ok(BloomInfo {
            n_filters: u16::from_be_bytes([p[0], p[1]]),
            expansion: u16::from_be_bytes([p[2], p[3]]),
            base_capacity: u32::from_be_bytes(p[4..8].try_into().expect("4 bytes")),
            error_rate: decode_ordered_double(p[8..16].try_into().expect("8 bytes")),
            bloom_bytes: u32::from_be_bytes(p[16..20].try_into().expect("4 bytes")),
            size: meta.size,
        })
    }

    /// How many items the filters hold before the next one is made (or, non-scaling, ever).
    pub fn capacity(&self) -> u32 {
        match self.expansion {
            0 => self.base_capacity,
            1 => self.base_capacity.wrapping_mul(self.n_filters as u32),
            e => {
                let e = e as f64;
                (self.base_capacity as f64 * (1.0 - e.powi(self.n_filters as i32)) / (1.0 - e))
                    as u32
            }
        }
    }
}

/// Bytes of a sub-filter for `ndv` items at false-positive rate `fpp` (Parquet's formula: a
/// power of two between 32 bytes and 128 MiB).
pub fn optimal_bytes(ndv: u32, fpp: f64) -> u32 {
    let m = -8.0 * ndv as f64 / (1.0 - fpp.powf(1.0 / 8.0)).ln();
    let max_bits = MAX_BYTES as u64 * 8;
    let mut bits: u64 = if m < 0.0 || m > max_bits as f64 {
        max_bits
    } else {
        m as u64
    };
    bits = bits.max(MIN_BYTES as u64 * 8);
    if !bits.is_power_of_two() {
        bits = bits.next_power_of_two();
    }
    (bits.min(max_bits) / 8) as u32
}

pub fn hash(item: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(item, 0)
}

fn block_and_key(hash: u64, len: usize) -> (usize, u32) {
    let blocks = (len / BLOCK_BYTES) as u64;
    ((((hash >> 32) * blocks) >> 32) as usize, hash as u32)
}

fn word(data: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
}

pub fn find(data: &[u8], hash: u64) -> bool {
    if data.len() < BLOCK_BYTES {
        return false;
    }
    let (block, key) = block_and_key(hash, data.len());
    (0..WORDS_PER_BLOCK).all(|i| {
        let mask = 1u32 << (key.wrapping_mul(SALT[i]) >> 27);
        word(data, block * WORDS_PER_BLOCK + i) & mask != 0
    })
}

pub fn insert(data: &mut [u8], hash: u64) {
    if data.len() < BLOCK_BYTES {
        return;
    }
    let (block, key) = block_and_key(hash, data.len());
    for (i, salt) in SALT.iter().enumerate() {
        let mask = 1u32 << (key.wrapping_mul(*salt) >> 27);
        let at = (block * WORDS_PER_BLOCK + i) * 4;
        let w = word(data, block * WORDS_PER_BLOCK + i) | mask;
        data[at..at + 4].copy_from_slice(&w.to_le_bytes());
    }
}

/// A filter's parts for DUMP: the metadata's payload, the item count, the sub-filters.
pub type BloomParts = (Vec<u8>, u64, Vec<Vec<u8>>);

/// How BF.INSERT (and BF.ADD/BF.MADD, with the defaults) creates a missing filter.
#[derive(Clone, Debug)]
pub struct BloomCreate {
    pub error_rate: f64,
    pub capacity: u32,
    pub expansion: u16,
    /// NOCREATE: a missing filter is an error.
    pub create: bool,
}

impl Default for BloomCreate {
    fn default() -> Self {
        BloomCreate {
            error_rate: DEFAULT_ERROR_RATE,
            capacity: DEFAULT_CAPACITY,
            expansion: DEFAULT_EXPANSION,
            create: true,
        }
    }
}

impl Db {
    fn bloom_meta(&self, key: &[u8]) -> Result<Option<Metadata>> {
        self.typed_metadata(key, RedisType::Bloom)
    }

    fn bloom_subkey(&self, key: &[u8], version: u64, index: u16) -> Vec<u8> {
        self.codec.subkey(key, version, &index.to_be_bytes())
    }

    /// The sub-filters of a filter, oldest first (a missing one reads as empty, which finds
    /// nothing).
    fn bf_filters(&self, key: &[u8], meta: &Metadata, info: &BloomInfo) -> Result<Vec<Vec<u8>>> {
        (0..info.n_filters)
            .map(|i| {
                let sub = self.bloom_subkey(key, meta.version, i);
                Ok(self
                    .get_cf(ColumnFamily::Default, &sub)?
                    .map(|v| v.to_vec())
                    .unwrap_or_default())
            })
            .collect()
    }

    /// The filter's shape, or None if the key is missing.
    pub fn bf_info(&self, key: &[u8]) -> Result<Option<BloomInfo>> {
        match self.bloom_meta(key)? {
            Some(m) => Ok(Some(BloomInfo::decode(&m)?)),
            None => Ok(None),
        }
    }

    /// A new filter's metadata and its first sub-filter, staged in `batch`.
    fn bf_create(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        error_rate: f64,
        capacity: u32,
        expansion: u16,
    ) -> (Metadata, BloomInfo, Vec<u8>) {
        let mut meta = Metadata::new_complex(RedisType::Bloom);
        let info = BloomInfo {
            n_filters: 1,
            expansion,
            base_capacity: capacity,
            error_rate,
            bloom_bytes: optimal_bytes(capacity, error_rate),
            size: 0,
        };
        meta.payload = info.encode();
        let filter = vec![0u8; info.bloom_bytes as usize];
        batch.put_log_data(LOG_DATA_CREATE);
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            meta.encode(),
        );
        batch.put_cf(
            self.engine.cf(ColumnFamily::Default),
            self.bloom_subkey(key, meta.version, 0),
            &filter,
        );
        (meta, info, filter)
    }

    /// BF.RESERVE: false if the key exists already.
    pub fn bf_reserve(
        &self,
        key: &[u8],
        error_rate: f64,
        capacity: u32,
        expansion: u16,
    ) -> Result<bool> {
        let _guard = self.locks.lock(key);
        if self.bloom_meta(key)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        self.bf_create(&mut batch, key, error_rate, capacity, expansion);
        self.write(batch)?;
        Ok(true)
    }

    /// BF.ADD, BF.MADD and BF.INSERT: what each item did; None if the filter is missing and
    /// `how.create` is off.
    pub fn bf_insert<I: AsRef<[u8]>>(
        &self,
        key: &[u8],
        items: &[I],
        how: &BloomCreate,
    ) -> Result<Option<Vec<BloomAdd>>> {
        let _guard = self.locks.lock(key);
        let mut batch = WriteBatch::default();
        let (mut meta, mut info, mut filters) = match self.bloom_meta(key)? {
            Some(meta) => {
                let info = BloomInfo::decode(&meta)?;
                let filters = self.bf_filters(key, &meta, &info)?;
                (meta, info, filters)
            }
            None if !how.create => return Ok(None),
            None => {
                let (meta, info, filter) =
                    self.bf_create(&mut batch, key, how.error_rate, how.capacity, how.expansion);
                (meta, info, vec![filter])
            }
        };
        let before = info.size;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let h = hash(item.as_ref());
            if filters.iter().rev().any(|f| find(f, h)) {
                out.push(BloomAdd::Exists);
                continue;
            }
            if info.size + 1 > info.capacity() as u64 {
                if info.expansion == 0 {
                    out.push(BloomAdd::Full);
                    continue;
                }
                // The full filter is written as it is, and a larger one starts.
                let last = info.n_filters - 1;
                batch.put_cf(
                    self.engine.cf(ColumnFamily::Default),
                    self.bloom_subkey(key, meta.version, last),
                    filters.last().expect("a filter"),
                );
                let next_capacity = (info.base_capacity as f64
                    * (info.expansion as f64).powi(info.n_filters as i32))
                    as u32;
                // Each new sub-filter halves the error rate (RedisBloom's tightening), so that
                // the chain's false-positive rate stays under twice the asked one however far
                // it grows. Kvrocks sizes every sub-filter at the asked rate; the layout is the
                // same, and Kvrocks reads these filters as its own.
                let rate = info.error_rate * TIGHTENING.powi(info.n_filters as i32);
                let bytes = optimal_bytes(next_capacity, rate);
                info.n_filters += 1;
                info.bloom_bytes = info.bloom_bytes.wrapping_add(bytes);
                filters.push(vec![0u8; bytes as usize]);
                meta.payload = info.encode();
                batch.put_cf(
                    self.metadata_cf(),
                    self.codec.metadata_key(key),
                    meta.encode(),
                );
            }
            insert(filters.last_mut().expect("a filter"), h);
            info.size += 1;
            out.push(BloomAdd::Added);
        }
        if info.size != before {
            batch.put_log_data(LOG_DATA_INSERT);
            meta.size = info.size;
            meta.payload = info.encode();
            batch.put_cf(
                self.metadata_cf(),
                self.codec.metadata_key(key),
                meta.encode(),
            );
            batch.put_cf(
                self.engine.cf(ColumnFamily::Default),
                self.bloom_subkey(key, meta.version, info.n_filters - 1),
                filters.last().expect("a filter"),
            );
        }
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(Some(out))
    }

    /// DUMP: the metadata's payload (20 bytes), the item count and each sub-filter.
    pub fn bf_dump(&self, key: &[u8]) -> Result<Option<BloomParts>> {
        let Some(meta) = self.bloom_meta(key)? else {
            return Ok(None);
        };
        let info = BloomInfo::decode(&meta)?;
        let filters = self.bf_filters(key, &meta, &info)?;
        Ok(Some((meta.payload, meta.size, filters)))
    }

    /// RESTORE of what [`Db::bf_dump`] gave, into `key` (which the caller removed). False if
    /// the parts do not make a filter.
    pub fn bf_load(
        &self,
        key: &[u8],
        payload: &[u8],
        size: u64,
        filters: &[Vec<u8>],
    ) -> Result<bool> {
        let mut meta = Metadata::new_complex(RedisType::Bloom);
        meta.payload = payload.to_vec();
        meta.size = size;
        let Ok(info) = BloomInfo::decode(&meta) else {
            return Ok(false);
        };
        let sane = payload.len() == 20
            && info.n_filters as usize == filters.len()
            && !filters.is_empty()
            && info.error_rate > 0.0
            && info.error_rate < 1.0
            && filters.iter().all(|f| {
                f.len().is_power_of_two()
                    && f.len() >= MIN_BYTES as usize
                    && f.len() <= MAX_BYTES as usize
            });
        if !sane {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_CREATE);
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            meta.encode(),
        );
        for (i, f) in filters.iter().enumerate() {
            batch.put_cf(
                self.engine.cf(ColumnFamily::Default),
                self.bloom_subkey(key, meta.version, i as u16),
                f,
            );
        }
        self.write(batch)?;
        Ok(true)
    }

    /// BF.EXISTS and BF.MEXISTS (a missing key holds nothing).
    pub fn bf_exists<I: AsRef<[u8]>>(&self, key: &[u8], items: &[I]) -> Result<Vec<bool>> {
        let Some(meta) = self.bloom_meta(key)? else {
            return Ok(vec![false; items.len()]);
        };
        let info = BloomInfo::decode(&meta)?;
        let filters = self.bf_filters(key, &meta, &info)?;
        Ok(items
            .iter()
            .map(|item| {
                let h = hash(item.as_ref());
                filters.iter().rev().any(|f| find(f, h))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_kvrocks_computes_them() {
        // Kvrocks' fixture: BF.ADD with the defaults made a 128-byte filter.
        assert_eq!(optimal_bytes(100, 0.01), 128);
        assert_eq!(optimal_bytes(1, 0.5), 32);
        assert_eq!(optimal_bytes(u32::MAX, 0.000_001), MAX_BYTES);
        let info = BloomInfo {
            n_filters: 3,
            expansion: 2,
            base_capacity: 100,
            error_rate: 0.01,
            bloom_bytes: 0,
            size: 0,
        };
        assert_eq!(info.capacity(), 700);
    }

    #[test]
    fn inserted_items_are_found() {
        let mut f = vec![0u8; 1024];
        for i in 0..100u32 {
            insert(&mut f, hash(&i.to_be_bytes()));
        }
        assert!((0..100u32).all(|i| find(&f, hash(&i.to_be_bytes()))));
        let false_positives = (1000..11000u32)
            .filter(|i| find(&f, hash(&i.to_be_bytes())))
            .count();
        assert!(false_positives < 200, "{false_positives}");
    }
}
