//! Sorted integers (Kvrocks only): a set of u64 ids kept in order, each id a sub-key
//! (`id:u64 BE`, empty value) in the default column family.

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::txn::Start;
use crate::Result;

const LOG_DATA_SORTEDINT: &[u8] = b"7";

/// SIRANGEBYVALUE bounds.
#[derive(Clone, Copy, Debug)]
pub struct IdRange {
    pub min: u64,
    pub min_excluded: bool,
    pub max: u64,
    pub max_excluded: bool,
}

impl IdRange {
    fn above_min(&self, id: u64) -> bool {
        id > self.min || (id == self.min && !self.min_excluded)
    }
    fn below_max(&self, id: u64) -> bool {
        id < self.max || (id == self.max && !self.max_excluded)
    }
}

impl Db {
    fn sortedint_meta(&self, key: &[u8]) -> Result<Option<Metadata>> {
        self.typed_metadata(key, RedisType::SortedInt)
    }

    fn sortedint_change(&self, key: &[u8], ids: &[u64], add: bool) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let existing = self.sortedint_meta(key)?;
        if existing.is_none() && !add {
            return Ok(0);
        }
        let mut meta = existing.unwrap_or_else(|| Metadata::new_complex(RedisType::SortedInt));
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_SORTEDINT);
        let cf = self.engine.cf(ColumnFamily::Default);
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let k = self.codec.subkey(key, meta.version, &id.to_be_bytes());
            let present = meta.size > 0 && self.get_cf(ColumnFamily::Default, &k)?.is_some();
            if add && !present {
                batch.put_cf(cf, k, b"");
                n += 1;
            } else if !add && present {
                batch.delete_cf(cf, k);
                n += 1;
            }
        }
        if n > 0 {
            if add {
                meta.size += n;
            } else {
                meta.size -= n.min(meta.size);
            }
            self.stage_collection_meta(&mut batch, key, &meta);
            self.write(batch)?;
        }
        Ok(n)
    }

    /// SIADD: how many ids were new.
    pub fn siadd(&self, key: &[u8], ids: &[u64]) -> Result<u64> {
        self.sortedint_change(key, ids, true)
    }

    /// SIREM: how many ids were removed.
    pub fn sirem(&self, key: &[u8], ids: &[u64]) -> Result<u64> {
        self.sortedint_change(key, ids, false)
    }

    pub fn sicard(&self, key: &[u8]) -> Result<u64> {
        Ok(self.sortedint_meta(key)?.map_or(0, |m| m.size))
    }

    pub fn siexists(&self, key: &[u8], ids: &[u64]) -> Result<Vec<bool>> {
        let Some(meta) = self.sortedint_meta(key)? else {
            return Ok(vec![false; ids.len()]);
        };
        ids.iter()
            .map(|id| {
                let k = self.codec.subkey(key, meta.version, &id.to_be_bytes());
                Ok(self.get_cf(ColumnFamily::Default, &k)?.is_some())
            })
            .collect()
    }

    /// Walks ids from `start` (inclusive) up or down, until `visit` returns false.
    fn sortedint_walk(
        &self,
        key: &[u8],
        start: u64,
        rev: bool,
        mut visit: impl FnMut(u64) -> bool,
    ) -> Result<()> {
        let Some(meta) = self.sortedint_meta(key)? else {
            return Ok(());
        };
        let prefix = self.codec.subkey_prefix(key, meta.version);
        let mut from = prefix.clone();
        from.extend_from_slice(&start.to_be_bytes());
        let iter = self.iter_cf(
            ColumnFamily::Default,
            Some(prefix.clone()),
            crate::keys::prefix_successor(&prefix),
            Start::From(
                &from,
                if rev {
                    Direction::Reverse
                } else {
                    Direction::Forward
                },
            ),
        );
        for item in iter {
            let (k, _) = item?;
            let Some(id) = k
                .get(prefix.len()..)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            if !visit(id) {
                break;
            }
        }
        Ok(())
    }

    /// SIRANGE / SIREVRANGE: `limit` ids (0 = all) after skipping `offset`, starting at
    /// `cursor` (excluded; 0 = from the start), as Kvrocks does.
    pub fn sirange(
        &self,
        key: &[u8],
        cursor: u64,
        offset: u64,
        limit: u64,
        rev: bool,
    ) -> Result<Vec<u64>> {
        let start = if rev && cursor == 0 { u64::MAX } else { cursor };
        let mut out = Vec::new();
        let mut pos = 0;
        self.sortedint_walk(key, start, rev, |id| {
            if id == cursor {
                return true;
            }
            pos += 1;
            if pos <= offset {
                return true;
            }
            out.push(id);
            limit == 0 || (out.len() as u64) < limit
        })?;
        Ok(out)
    }

    /// SIRANGEBYVALUE / SIREVRANGEBYVALUE, with Kvrocks' LIMIT (negative offset or count: none).
    pub fn sirange_by_value(
        &self,
        key: &[u8],
        range: IdRange,
        rev: bool,
        offset: i64,
        count: i64,
    ) -> Result<Vec<u64>> {
        let start = if rev { range.max } else { range.min };
        let mut out = Vec::new();
        let mut pos = 0i64;
        self.sortedint_walk(key, start, rev, |id| {
            let (inside, past) = if rev {
                (range.below_max(id), !range.above_min(id))
            } else {
                (range.above_min(id), !range.below_max(id))
            };
            if past {
                return false;
            }
            if !inside {
                return true;
            }
            if offset >= 0 && pos < offset {
                pos += 1;
                return true;
            }
            out.push(id);
            !(count > 0 && out.len() as i64 >= count)
        })?;
        Ok(out)
    }
}
