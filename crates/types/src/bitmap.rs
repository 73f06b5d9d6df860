//! Bits of strings and of Kvrocks' bitmap type.
//!
//! A string key keeps its bits in its value, most significant bit first (Redis). SETBIT on a
//! missing key makes a Kvrocks bitmap (type 6): fragments of at most 1024 bytes, each a
//! sub-key named by the decimal byte offset where it starts, with bits least significant
//! first inside each byte, and the metadata's size counting the bytes in use. Reads see both
//! kinds as the same logical (Redis-order) string, so GET works on a bitmap too.

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::keys::prefix_successor;
use crate::txn::Start;
use crate::{Result, TypeError};

const SEGMENT_BYTES: u64 = 1024;
const SEGMENT_BITS: u64 = SEGMENT_BYTES * 8;
/// Kvrocks' WAL marker for bitmap writes: `kRedisBitmap`, then `kRedisCmdSetBit` and the offset.
const LOG_DATA_BITMAP: &str = "6";

/// `max-bitmap-to-string-mb` in bytes: the largest bitmap GET turns into a string.
pub static MAX_BITMAP_TO_STRING: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(16 * 1024 * 1024);
const CMD_SETBIT: &str = "9";
/// Redis' limit: 512 MB of bits.
pub const MAX_BIT_OFFSET: u64 = (512 * 1024 * 1024 * 8) - 1;

/// Kvrocks grows a fragment by doubling, up to the fragment size.
fn expand(fragment: &mut Vec<u8>, min_bytes: usize) {
    let old = fragment.len();
    if min_bytes > old {
        let new = if min_bytes > old * 2 {
            min_bytes
        } else if old * 2 > SEGMENT_BYTES as usize {
            SEGMENT_BYTES as usize
        } else {
            old * 2
        };
        fragment.resize(new, 0);
    }
}

impl Db {
    /// GET's value of a bitmap (or string): a bitmap larger than `max-bitmap-to-string-mb` is
    /// refused, as in Kvrocks.
    pub fn bitmap_as_string(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let limit = MAX_BITMAP_TO_STRING.load(std::sync::atomic::Ordering::Relaxed);
        self.bit_value_within(key, Some(limit))
    }

    /// The logical bytes (Redis bit order) of a string or bitmap key, None if it is missing.
    pub fn bit_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.bit_value_within(key, None)
    }

    fn bit_value_within(&self, key: &[u8], limit: Option<u64>) -> Result<Option<Vec<u8>>> {
        let Some(meta) = self.live_metadata(key)? else {
            return Ok(None);
        };
        match meta.kind {
            RedisType::String => Ok(Some(meta.payload)),
            RedisType::Bitmap if limit.is_some_and(|l| meta.size > l) => {
                Err(TypeError::BitmapTooBig)
            }
            RedisType::Bitmap => Ok(Some(self.bitmap_bytes(key, &meta)?)),
            _ => Err(TypeError::WrongType),
        }
    }

    fn bitmap_bytes(&self, key: &[u8], meta: &Metadata) -> Result<Vec<u8>> {
        let mut value = vec![0u8; meta.size as usize];
        let prefix = self.codec.subkey_prefix(key, meta.version);
        let iter = self.iter_cf(
            ColumnFamily::Default,
            None,
            prefix_successor(&prefix),
            Start::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            let Some(start) = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if start >= meta.size {
                continue;
            }
            let n = (v.len() as u64).min(SEGMENT_BYTES).min(meta.size - start) as usize;
            for (i, b) in v[..n].iter().enumerate() {
                value[start as usize + i] = b.reverse_bits();
            }
        }
        Ok(value)
    }

    /// GETBIT.
    pub fn getbit(&self, key: &[u8], offset: u64) -> Result<u8> {
        let Some(meta) = self.live_metadata(key)? else {
            return Ok(0);
        };
        match meta.kind {
            RedisType::String => {
                let byte = (offset / 8) as usize;
                Ok(meta
                    .payload
                    .get(byte)
                    .map_or(0, |b| (b >> (7 - offset % 8)) & 1))
            }
            RedisType::Bitmap => {
                let start = offset / SEGMENT_BITS * SEGMENT_BYTES;
                let sub = self
                    .codec
                    .subkey(key, meta.version, start.to_string().as_bytes());
                let Some(frag) = self.get_cf(ColumnFamily::Default, &sub)? else {
                    return Ok(0);
                };
                let in_seg = offset % SEGMENT_BITS;
                Ok(frag
                    .get((in_seg / 8) as usize)
                    .map_or(0, |b| (b >> (in_seg % 8)) & 1))
            }
            _ => Err(TypeError::WrongType),
        }
    }

    /// SETBIT: the old bit. A missing key becomes a Kvrocks bitmap; a string stays a string.
    pub fn setbit(&self, key: &[u8], offset: u64, bit: bool) -> Result<u8> {
        let _guard = self.locks.lock(key);
        let meta = self.live_metadata(key)?;
        match meta {
            Some(m) if m.kind == RedisType::String => {
                let mut value = m.payload;
                let byte = (offset / 8) as usize;
                let grows = value.len() <= byte;
                if grows {
                    value.resize(byte + 1, 0);
                }
                let mask = 1u8 << (7 - offset % 8);
                let old = (value[byte] & mask != 0) as u8;
                // Nothing changes: nothing is written (nor replicated), as Redis leaves its
                // dirty counter alone.
                if !grows && old == bit as u8 {
                    return Ok(old);
                }
                if bit {
                    value[byte] |= mask;
                } else {
                    value[byte] &= !mask;
                }
                let mut batch = WriteBatch::default();
                batch.put_log_data(b"1");
                batch.put_cf(
                    self.metadata_cf(),
                    self.codec.metadata_key(key),
                    Metadata::encode_string(&value, m.expire_ms),
                );
                self.write(batch)?;
                Ok(old)
            }
            Some(m) if m.kind != RedisType::Bitmap => Err(TypeError::WrongType),
            other => {
                let existed = other.is_some();
                let mut meta = other.unwrap_or_else(|| Metadata::new_complex(RedisType::Bitmap));
                let start = offset / SEGMENT_BITS * SEGMENT_BYTES;
                let sub = self
                    .codec
                    .subkey(key, meta.version, start.to_string().as_bytes());
                let mut frag = if existed {
                    self.get_cf(ColumnFamily::Default, &sub)?
                        .map(|v| v.to_vec())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                let in_seg = offset % SEGMENT_BITS;
                let byte = (in_seg / 8) as usize;
                expand(&mut frag, byte + 1);
                let mask = 1u8 << (in_seg % 8);
                let old = (frag[byte] & mask != 0) as u8;
                let used = start + byte as u64 + 1;
                if existed && used <= meta.size && old == bit as u8 {
                    return Ok(old);
                }
                if bit {
                    frag[byte] |= mask;
                } else {
                    frag[byte] &= !mask;
                }
                let mut batch = WriteBatch::default();
                batch.put_log_data(format!("{LOG_DATA_BITMAP} {CMD_SETBIT} {offset}").as_bytes());
                batch.put_cf(self.engine.cf(ColumnFamily::Default), &sub, &frag);
                if !existed || used > meta.size {
                    meta.size = meta.size.max(used);
                    batch.put_cf(
                        self.metadata_cf(),
                        self.codec.metadata_key(key),
                        meta.encode(),
                    );
                }
                self.write(batch)?;
                Ok(old)
            }
        }
    }

    /// BITFIELD's read-modify-write: `f` gets the logical bytes (missing key: empty) and says
    /// whether it changed them. A string stays a string; a bitmap, or a missing key, is written
    /// as Kvrocks bitmap fragments.
    pub fn modify_bits<T>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Vec<u8>) -> T,
        changed: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let _guard = self.locks.lock(key);
        let meta = self.live_metadata(key)?;
        let mut value = match &meta {
            None => Vec::new(),
            Some(m) if m.kind == RedisType::String => m.payload.clone(),
            Some(m) if m.kind == RedisType::Bitmap => self.bitmap_bytes(key, m)?,
            Some(_) => return Err(TypeError::WrongType),
        };
        let out = f(&mut value);
        // A missing key is created even by a change to nothing, as in Redis.
        if meta.is_some() && !changed(&out) {
            return Ok(out);
        }
        let mut batch = WriteBatch::default();
        match meta {
            Some(m) if m.kind == RedisType::String => {
                batch.put_log_data(b"1");
                batch.put_cf(
                    self.metadata_cf(),
                    self.codec.metadata_key(key),
                    Metadata::encode_string(&value, m.expire_ms),
                );
            }
            other => {
                let mut meta = other.unwrap_or_else(|| Metadata::new_complex(RedisType::Bitmap));
                batch.put_log_data(LOG_DATA_BITMAP.as_bytes());
                for (i, chunk) in value.chunks(SEGMENT_BYTES as usize).enumerate() {
                    let start = i as u64 * SEGMENT_BYTES;
                    let frag: Vec<u8> = chunk.iter().map(|b| b.reverse_bits()).collect();
                    batch.put_cf(
                        self.engine.cf(ColumnFamily::Default),
                        self.codec
                            .subkey(key, meta.version, start.to_string().as_bytes()),
                        frag,
                    );
                }
                meta.size = meta.size.max(value.len() as u64);
                batch.put_cf(
                    self.metadata_cf(),
                    self.codec.metadata_key(key),
                    meta.encode(),
                );
            }
        }
        self.write(batch)?;
        Ok(out)
    }

    /// Stores `value` as a string (BITOP's destination); an empty value deletes the key.
    pub fn store_bits(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let _guard = self.locks.lock(key);
        let mut batch = WriteBatch::default();
        batch.put_log_data(b"1");
        let mkey = self.codec.metadata_key(key);
        if value.is_empty() {
            batch.delete_cf(self.metadata_cf(), mkey);
        } else {
            batch.put_cf(self.metadata_cf(), mkey, Metadata::encode_string(value, 0));
        }
        self.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_grow_as_kvrocks_grows_them() {
        let mut f = Vec::new();
        expand(&mut f, 1);
        assert_eq!(f.len(), 1);
        expand(&mut f, 2);
        assert_eq!(f.len(), 2);
        expand(&mut f, 3);
        assert_eq!(f.len(), 4);
        expand(&mut f, 700);
        assert_eq!(f.len(), 700);
        expand(&mut f, 701);
        assert_eq!(f.len(), 1024);
    }
}
