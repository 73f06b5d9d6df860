//! The hash type: metadata (type 2, version, size) and one sub-key per field in the default
//! column family, `prefix(key, version) | field -> value` (kvrocks-compat.md §1.4).

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::keys::prefix_successor;
use crate::parse::{parse_f64_strict, parse_i64_strict};
use crate::txn::Start;
use crate::{Result, TypeError};

/// Kvrocks' WAL marker for hash writes (its `kRedisHash`).
const LOG_DATA_HASH: &[u8] = b"2";

/// Why a HINCRBY/HINCRBYFLOAT failed on the field's current value.
#[derive(Debug, PartialEq, Eq)]
pub enum HashIncrError {
    NotInteger,
    NotFloat,
}

impl Db {
    fn hash_meta(&self, key: &[u8]) -> Result<Option<Metadata>> {
        self.typed_metadata(key, RedisType::Hash)
    }

    fn field_key(&self, key: &[u8], meta: &Metadata, field: &[u8]) -> Vec<u8> {
        self.codec.subkey(key, meta.version, field)
    }

    fn read_field(&self, key: &[u8], meta: &Metadata, field: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = self.field_key(key, meta, field);
        Ok(self.get_cf(ColumnFamily::Default, &k)?.map(|v| v.to_vec()))
    }

    /// HGET.
    pub fn hget(&self, key: &[u8], field: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.hash_meta(key)? {
            Some(meta) => self.read_field(key, &meta, field),
            None => Ok(None),
        }
    }

    /// HMGET: a value per field.
    pub fn hmget<F: AsRef<[u8]>>(&self, key: &[u8], fields: &[F]) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(meta) = self.hash_meta(key)? else {
            return Ok(vec![None; fields.len()]);
        };
        let keys: Vec<Vec<u8>> = fields
            .iter()
            .map(|f| self.field_key(key, &meta, f.as_ref()))
            .collect();
        Ok(self
            .multi_get_cf(ColumnFamily::Default, &keys)?
            .into_iter()
            .map(|v| v.map(|v| v.to_vec()))
            .collect())
    }

    /// The live hash's metadata, or a fresh one (new version) if the key is missing or dead.
    fn hash_meta_for_write(&self, key: &[u8]) -> Result<Metadata> {
        Ok(self
            .hash_meta(key)?
            .unwrap_or_else(|| Metadata::new_complex(RedisType::Hash)))
    }

    fn write_hash(&self, mut batch: WriteBatch, key: &[u8], meta: &Metadata) -> Result<()> {
        self.stage_collection_meta(&mut batch, key, meta);
        self.write(batch)
    }

    fn hash_batch() -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_HASH);
        batch
    }

    /// HSET / HMSET / HSETNX (`nx`: only fields that do not exist). Returns how many fields
    /// were added (not updated).
    ///
    /// As Kvrocks: a field named twice takes its last value; a field that already holds the
    /// value it is given is not written again; the metadata is written only when fields were
    /// added (its size is all it holds that HSET changes). The hash ends the same as if every
    /// pair were written, and the reply is the same; the batch is smaller, or not written at all.
    pub fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: &[u8],
        pairs: &[(F, V)],
        nx: bool,
    ) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let mut meta = self.hash_meta_for_write(key)?;
        // The last value of a field named twice is the one kept (a lone pair needs no check).
        let mut seen = std::collections::HashSet::new();
        let (fields, values): (Vec<Vec<u8>>, Vec<&[u8]>) = pairs
            .iter()
            .rev()
            .filter(|(f, _)| pairs.len() == 1 || seen.insert(f.as_ref()))
            .map(|(f, v)| (self.field_key(key, &meta, f.as_ref()), v.as_ref()))
            .unzip();
        // A new hash has no field yet; otherwise every field's current value, in one read.
        let olds = if meta.size == 0 {
            Vec::new()
        } else {
            self.multi_get_cf(ColumnFamily::Default, &fields)?
        };
        let mut batch = Self::hash_batch();
        let handle = self.engine.cf(ColumnFamily::Default);
        let mut added = 0;
        for (i, (fk, v)) in fields.iter().zip(values).enumerate() {
            match olds.get(i).and_then(Option::as_deref) {
                Some(old) if nx || old == v => continue,
                Some(_) => {}
                None => added += 1,
            }
            batch.put_cf(handle, fk, v);
        }
        if added > 0 {
            meta.size += added;
            self.stage_collection_meta(&mut batch, key, &meta);
        }
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(added)
    }

    /// HDEL: returns how many of the fields existed.
    pub fn hdel<F: AsRef<[u8]>>(&self, key: &[u8], fields: &[F]) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.hash_meta(key)? else {
            return Ok(0);
        };
        let mut batch = Self::hash_batch();
        let mut removed = 0;
        let mut seen = std::collections::HashSet::new();
        let handle = self.engine.cf(ColumnFamily::Default);
        for f in fields {
            let f = f.as_ref();
            if !seen.insert(f) {
                continue;
            }
            let fk = self.field_key(key, &meta, f);
            if self.get_cf(ColumnFamily::Default, &fk)?.is_some() {
                batch.delete_cf(handle, fk);
                removed += 1;
            }
        }
        if removed == 0 {
            return Ok(0);
        }
        meta.size -= removed.min(meta.size);
        self.write_hash(batch, key, &meta)?;
        Ok(removed)
    }

    /// HLEN.
    pub fn hlen(&self, key: &[u8]) -> Result<u64> {
        Ok(self.hash_meta(key)?.map_or(0, |m| m.size))
    }

    /// HRANGEBYLEX (Kvrocks): fields within `[min, max]` (bounds as `std::ops::Bound`), in
    /// field order or reversed, skipping `offset` and returning at most `count` (negative: all).
    pub fn hash_range_lex(
        &self,
        key: &[u8],
        min: std::ops::Bound<&[u8]>,
        max: std::ops::Bound<&[u8]>,
        rev: bool,
        offset: usize,
        count: i64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        let Some(meta) = self.hash_meta(key)? else {
            return Ok(out);
        };
        let prefix = self.codec.subkey_prefix(key, meta.version);
        let with = |f: &[u8]| {
            let mut k = prefix.clone();
            k.extend_from_slice(f);
            k
        };
        let (start, mode_dir) = if rev {
            match max {
                Unbounded => (None, Direction::Reverse),
                Included(m) | Excluded(m) => (Some(with(m)), Direction::Reverse),
            }
        } else {
            match min {
                Unbounded => (None, Direction::Forward),
                Included(m) | Excluded(m) => (Some(with(m)), Direction::Forward),
            }
        };
        let mode = match (&start, mode_dir) {
            (Some(k), d) => Start::From(k, d),
            (None, Direction::Forward) => Start::First,
            (None, Direction::Reverse) => Start::Last,
        };
        let above_min = |f: &[u8]| match min {
            Unbounded => true,
            Included(m) => f >= m,
            Excluded(m) => f > m,
        };
        let below_max = |f: &[u8]| match max {
            Unbounded => true,
            Included(m) => f <= m,
            Excluded(m) => f < m,
        };
        let mut skipped = 0;
        let upper = prefix_successor(&prefix);
        for item in self.iter_cf(ColumnFamily::Default, Some(prefix.clone()), upper, mode) {
            let (k, v) = item?;
            let f = &k[prefix.len()..];
            let (inside, past_end) = if rev {
                (below_max(f) && above_min(f), !above_min(f))
            } else {
                (above_min(f) && below_max(f), !below_max(f))
            };
            if past_end {
                break;
            }
            if !inside {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            out.push((f.to_vec(), v.to_vec()));
            if count > 0 && out.len() as i64 >= count {
                break;
            }
        }
        Ok(out)
    }

    /// HGETALL / HKEYS / HVALS: all fields and values, in field order.
    pub fn hgetall(&self, key: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.collection_walk(key, RedisType::Hash, None, |f, v| {
            out.push((f.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// HINCRBY: the field's new value.
    pub fn hincrby(
        &self,
        key: &[u8],
        field: &[u8],
        delta: i64,
    ) -> Result<std::result::Result<i64, HashIncrError>> {
        self.hash_update(key, field, |cur| {
            let n = match cur {
                None => 0,
                Some(v) => match parse_i64_strict(v) {
                    Some(n) => n,
                    None => return Ok(Err(HashIncrError::NotInteger)),
                },
            };
            let r = n.checked_add(delta).ok_or(TypeError::Overflow)?;
            Ok(Ok((r.to_string().into_bytes(), r)))
        })
    }

    /// HINCRBYFLOAT: the field's new value as stored.
    pub fn hincrbyfloat(
        &self,
        key: &[u8],
        field: &[u8],
        delta: &[u8],
    ) -> Result<std::result::Result<Vec<u8>, HashIncrError>> {
        self.hash_update(key, field, |cur| {
            let current = match cur {
                None => &b"0"[..],
                Some(v) if parse_f64_strict(v).is_some() => v,
                Some(_) => return Ok(Err(HashIncrError::NotFloat)),
            };
            let text = crate::float_sum::incr_float(current, delta)
                .ok_or(TypeError::NanOrInfinity)?
                .into_bytes();
            Ok(Ok((text.clone(), text)))
        })
    }

    /// Read-modify-write of one field under the key lock. `f` returns the new value and the
    /// result, or a value error that leaves the hash unchanged.
    fn hash_update<T>(
        &self,
        key: &[u8],
        field: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<std::result::Result<(Vec<u8>, T), HashIncrError>>,
    ) -> Result<std::result::Result<T, HashIncrError>> {
        let _guard = self.locks.lock(key);
        let mut meta = self.hash_meta_for_write(key)?;
        let current = if meta.size > 0 {
            self.read_field(key, &meta, field)?
        } else {
            None
        };
        let (new, out) = match f(current.as_deref())? {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let mut batch = Self::hash_batch();
        batch.put_cf(
            self.engine.cf(ColumnFamily::Default),
            self.field_key(key, &meta, field),
            new,
        );
        if current.is_none() {
            meta.size += 1;
        }
        self.write_hash(batch, key, &meta)?;
        Ok(Ok(out))
    }
}
