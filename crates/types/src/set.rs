//! The set type: metadata (type 4, version, size) and one sub-key per member with an empty
//! value, in the default column family (kvrocks-compat.md §1.4).

use std::collections::BTreeSet;

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::{ColumnFamily, WriteBatch};
use rand::seq::SliceRandom;

use crate::db::Db;
use crate::Result;

/// Kvrocks' WAL marker for set writes (its `kRedisSet`).
const LOG_DATA_SET: &[u8] = b"4";

/// How SDIFF, SINTER and SUNION combine their sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Diff,
    Inter,
    Union,
}

impl Db {
    fn set_meta(&self, key: &[u8]) -> Result<Option<Metadata>> {
        self.typed_metadata(key, RedisType::Set)
    }

    fn set_batch() -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_SET);
        batch
    }

    fn is_member(&self, key: &[u8], meta: &Metadata, member: &[u8]) -> Result<bool> {
        let k = self.codec.subkey(key, meta.version, member);
        Ok(self.get_cf(ColumnFamily::Default, &k)?.is_some())
    }

    /// Adds to `batch` the members of `members` missing from the set; returns how many.
    fn stage_add<M: AsRef<[u8]>>(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        meta: &mut Metadata,
        members: &[M],
    ) -> Result<u64> {
        let mut seen = BTreeSet::new();
        let mut added = 0;
        let handle = self.engine.cf(ColumnFamily::Default);
        for m in members {
            let m = m.as_ref();
            if !seen.insert(m) || (meta.size > 0 && self.is_member(key, meta, m)?) {
                continue;
            }
            batch.put_cf(handle, self.codec.subkey(key, meta.version, m), b"");
            added += 1;
        }
        meta.size += added;
        Ok(added)
    }

    /// Adds to `batch` the removal of those of `members` that are in the set; returns how many.
    fn stage_remove<M: AsRef<[u8]>>(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        meta: &mut Metadata,
        members: &[M],
    ) -> Result<u64> {
        let mut seen = BTreeSet::new();
        let mut removed = 0;
        let handle = self.engine.cf(ColumnFamily::Default);
        for m in members {
            let m = m.as_ref();
            if !seen.insert(m) || !self.is_member(key, meta, m)? {
                continue;
            }
            batch.delete_cf(handle, self.codec.subkey(key, meta.version, m));
            removed += 1;
        }
        meta.size -= removed.min(meta.size);
        Ok(removed)
    }

    /// SADD: how many members were new.
    pub fn sadd<M: AsRef<[u8]>>(&self, key: &[u8], members: &[M]) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let mut meta = self
            .set_meta(key)?
            .unwrap_or_else(|| Metadata::new_complex(RedisType::Set));
        let mut batch = Self::set_batch();
        let added = self.stage_add(&mut batch, key, &mut meta, members)?;
        if added > 0 {
            self.stage_collection_meta(&mut batch, key, &meta);
            self.write(batch)?;
        }
        Ok(added)
    }

    /// SREM: how many members were removed.
    pub fn srem<M: AsRef<[u8]>>(&self, key: &[u8], members: &[M]) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.set_meta(key)? else {
            return Ok(0);
        };
        let mut batch = Self::set_batch();
        let removed = self.stage_remove(&mut batch, key, &mut meta, members)?;
        if removed > 0 {
            self.stage_collection_meta(&mut batch, key, &meta);
            self.write(batch)?;
        }
        Ok(removed)
    }

    pub fn scard(&self, key: &[u8]) -> Result<u64> {
        Ok(self.set_meta(key)?.map_or(0, |m| m.size))
    }

    /// SISMEMBER / SMISMEMBER.
    pub fn sismember<M: AsRef<[u8]>>(&self, key: &[u8], members: &[M]) -> Result<Vec<bool>> {
        let Some(meta) = self.set_meta(key)? else {
            return Ok(vec![false; members.len()]);
        };
        members
            .iter()
            .map(|m| self.is_member(key, &meta, m.as_ref()))
            .collect()
    }

    /// SMEMBERS: all members in byte order.
    pub fn smembers(&self, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.collection_walk(key, RedisType::Set, None, |m, _| {
            out.push(m.to_vec());
            true
        })?;
        Ok(out)
    }

    /// SPOP: removes and returns up to `count` random members.
    pub fn spop(&self, key: &[u8], count: usize) -> Result<Vec<Vec<u8>>> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.set_meta(key)? else {
            return Ok(Vec::new());
        };
        let all = self.smembers(key)?;
        let picked: Vec<Vec<u8>> = all
            .choose_multiple(&mut rand::thread_rng(), count.min(all.len()))
            .cloned()
            .collect();
        if picked.is_empty() {
            return Ok(picked);
        }
        let mut batch = Self::set_batch();
        self.stage_remove(&mut batch, key, &mut meta, &picked)?;
        self.stage_collection_meta(&mut batch, key, &meta);
        self.write(batch)?;
        Ok(picked)
    }

    /// SMOVE: true if `member` moved from `src` to `dst`. WRONGTYPE if either key holds
    /// something other than a set, as in Redis, even when the member is missing.
    pub fn smove(&self, src: &[u8], dst: &[u8], member: &[u8]) -> Result<bool> {
        let _guard = self.locks.lock_many(&[src, dst]);
        let src_meta = self.set_meta(src)?;
        let dst_meta = self.set_meta(dst)?;
        let Some(mut src_meta) = src_meta else {
            return Ok(false);
        };
        if !self.is_member(src, &src_meta, member)? {
            return Ok(false);
        }
        if src == dst {
            return Ok(true);
        }
        let mut dst_meta = dst_meta.unwrap_or_else(|| Metadata::new_complex(RedisType::Set));
        let mut batch = Self::set_batch();
        self.stage_remove(&mut batch, src, &mut src_meta, &[member])?;
        self.stage_collection_meta(&mut batch, src, &src_meta);
        if self.stage_add(&mut batch, dst, &mut dst_meta, &[member])? > 0 {
            self.stage_collection_meta(&mut batch, dst, &dst_meta);
        }
        self.write(batch)?;
        Ok(true)
    }

    /// SDIFF / SINTER / SUNION of `keys` (missing keys are empty sets).
    pub fn set_combine<K: AsRef<[u8]>>(&self, op: SetOp, keys: &[K]) -> Result<BTreeSet<Vec<u8>>> {
        // Every key is type-checked first, as Redis does, even when the result is known early.
        let mut sets = Vec::with_capacity(keys.len());
        for k in keys {
            self.set_meta(k.as_ref())?;
        }
        for k in keys {
            sets.push(
                self.smembers(k.as_ref())?
                    .into_iter()
                    .collect::<BTreeSet<_>>(),
            );
        }
        let mut iter = sets.into_iter();
        let Some(first) = iter.next() else {
            return Ok(BTreeSet::new());
        };
        Ok(iter.fold(first, |acc, s| match op {
            SetOp::Diff => acc.difference(&s).cloned().collect(),
            SetOp::Inter => acc.intersection(&s).cloned().collect(),
            SetOp::Union => acc.union(&s).cloned().collect(),
        }))
    }

    /// SDIFFSTORE / SINTERSTORE / SUNIONSTORE: replaces `dst` (whatever it held) with the
    /// result, under the locks of every key involved; an empty result deletes `dst`. Returns the
    /// new cardinality.
    pub fn set_combine_store<K: AsRef<[u8]>>(
        &self,
        op: SetOp,
        dst: &[u8],
        keys: &[K],
    ) -> Result<u64> {
        let mut all: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
        all.push(dst);
        let _guard = self.locks.lock_many(&all);
        let members = self.set_combine(op, keys)?;
        let mut batch = Self::set_batch();
        let mut meta = Metadata::new_complex(RedisType::Set);
        let handle = self.engine.cf(ColumnFamily::Default);
        for m in &members {
            batch.put_cf(handle, self.codec.subkey(dst, meta.version, m), b"");
        }
        meta.size = members.len() as u64;
        self.stage_collection_meta(&mut batch, dst, &meta);
        self.write(batch)?;
        Ok(meta.size)
    }
}
