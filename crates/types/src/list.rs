//! The list type: metadata (type 3, version, size, then `head:u64 | tail:u64`) and one
//! sub-key per element at its index `u64 BE` in the default column family. The live range is
//! `[head, tail)`; a new list starts with head = tail = 2^63 - 1; LPUSH writes at head - 1,
//! RPUSH at tail (kvrocks-compat.md §1.4).

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, StorageError, WriteBatch};

use crate::db::Db;
use crate::txn::Start;
use crate::{Result, TypeError};

const INITIAL_INDEX: u64 = (1 << 63) - 1;

/// Kvrocks' WAL markers: `kRedisList` and the list command code.
mod log_data {
    pub const LSET: &[u8] = b"3 0";
    pub const LINSERT: &[u8] = b"3 1";
    pub const LTRIM: &[u8] = b"3 2";
    pub const LPOP: &[u8] = b"3 3";
    pub const RPOP: &[u8] = b"3 4";
    pub const LREM: &[u8] = b"3 5";
    pub const LPUSH: &[u8] = b"3 6";
    pub const RPUSH: &[u8] = b"3 7";
    pub const LMOVE: &[u8] = b"3 12";
}

/// A list's metadata with its two ends decoded.
struct ListMeta {
    meta: Metadata,
    head: u64,
    tail: u64,
}

impl ListMeta {
    fn new() -> ListMeta {
        ListMeta {
            meta: Metadata::new_complex(RedisType::List),
            head: INITIAL_INDEX,
            tail: INITIAL_INDEX,
        }
    }

    fn from(meta: Metadata) -> Result<ListMeta> {
        let p = &meta.payload;
        if p.len() < 16 {
            return Err(StorageError::Corrupt("list metadata without head and tail".into()).into());
        }
        let head = u64::from_be_bytes(p[0..8].try_into().unwrap_or_default());
        let tail = u64::from_be_bytes(p[8..16].try_into().unwrap_or_default());
        Ok(ListMeta { meta, head, tail })
    }

    fn len(&self) -> u64 {
        self.tail - self.head
    }

    fn encode(&mut self) -> Vec<u8> {
        self.meta.size = self.len();
        let mut payload = self.head.to_be_bytes().to_vec();
        payload.extend_from_slice(&self.tail.to_be_bytes());
        self.meta.payload = payload;
        self.meta.encode()
    }

    /// The storage indexes `[from, to]` of a Redis range `start..=stop` (negative indexes
    /// count from the end, out-of-range ends are clamped), or None if it is empty.
    fn clamp(&self, start: i64, stop: i64) -> Option<(u64, u64)> {
        crate::db::clamp_range(start, stop, self.len())
            .map(|(from, to)| (self.head + from, self.head + to))
    }

    /// The storage index of a Redis index (negative counts from the end), if in range.
    fn index(&self, i: i64) -> Option<u64> {
        let len = self.len() as i64;
        let i = if i < 0 { i + len } else { i };
        (0..len).contains(&i).then(|| self.head + i as u64)
    }
}

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl Db {
    fn list_meta(&self, key: &[u8]) -> Result<Option<ListMeta>> {
        self.typed_metadata(key, RedisType::List)?
            .map(ListMeta::from)
            .transpose()
    }

    fn element_key(&self, key: &[u8], lm: &ListMeta, index: u64) -> Vec<u8> {
        self.codec
            .subkey(key, lm.meta.version, &index.to_be_bytes())
    }

    fn batch_with(marker: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put_log_data(marker);
        batch
    }

    /// Stages the metadata of `lm`; an empty list is deleted.
    fn stage_list_meta(&self, batch: &mut WriteBatch, key: &[u8], lm: &mut ListMeta) {
        let mkey = self.codec.metadata_key(key);
        if lm.len() == 0 {
            batch.delete_cf(self.metadata_cf(), mkey);
        } else {
            batch.put_cf(self.metadata_cf(), mkey, lm.encode());
        }
    }

    fn stage_push(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        lm: &mut ListMeta,
        end: End,
        elements: &[&[u8]],
    ) {
        let handle = self.engine.cf(ColumnFamily::Default);
        for e in elements {
            let index = match end {
                End::Left => {
                    lm.head -= 1;
                    lm.head
                }
                End::Right => {
                    lm.tail += 1;
                    lm.tail - 1
                }
            };
            batch.put_cf(handle, self.element_key(key, lm, index), e);
        }
    }

    /// LPUSH/RPUSH (and the X forms with `only_existing`): the new length, 0 if nothing was done.
    pub fn push<E: AsRef<[u8]>>(
        &self,
        key: &[u8],
        end: End,
        elements: &[E],
        only_existing: bool,
    ) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let mut lm = match self.list_meta(key)? {
            Some(lm) => lm,
            None if only_existing => return Ok(0),
            None => ListMeta::new(),
        };
        let marker = if end == End::Left {
            log_data::LPUSH
        } else {
            log_data::RPUSH
        };
        let mut batch = Self::batch_with(marker);
        let elements: Vec<&[u8]> = elements.iter().map(|e| e.as_ref()).collect();
        self.stage_push(&mut batch, key, &mut lm, end, &elements);
        self.stage_list_meta(&mut batch, key, &mut lm);
        self.write(batch)?;
        Ok(lm.len())
    }

    /// Replaces `key` with a new list of `elements` in one batch (SORT ... STORE); an empty
    /// list deletes the key.
    pub fn list_store<E: AsRef<[u8]>>(&self, key: &[u8], elements: &[E]) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let mut lm = ListMeta::new();
        let mut batch = Self::batch_with(log_data::RPUSH);
        let elements: Vec<&[u8]> = elements.iter().map(|e| e.as_ref()).collect();
        self.stage_push(&mut batch, key, &mut lm, End::Right, &elements);
        self.stage_list_meta(&mut batch, key, &mut lm);
        self.write(batch)?;
        Ok(lm.len())
    }

    fn read_element(&self, key: &[u8], lm: &ListMeta, index: u64) -> Result<Vec<u8>> {
        let k = self.element_key(key, lm, index);
        self.get_cf(ColumnFamily::Default, &k)?
            .map(|v| v.to_vec())
            .ok_or_else(|| {
                StorageError::Corrupt("list element missing inside [head, tail)".into()).into()
            })
    }

    fn stage_pop(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        lm: &mut ListMeta,
        end: End,
        count: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let handle = self.engine.cf(ColumnFamily::Default);
        let mut out = Vec::new();
        for _ in 0..count.min(lm.len()) {
            let index = match end {
                End::Left => lm.head,
                End::Right => lm.tail - 1,
            };
            out.push(self.read_element(key, lm, index)?);
            batch.delete_cf(handle, self.element_key(key, lm, index));
            match end {
                End::Left => lm.head += 1,
                End::Right => lm.tail -= 1,
            }
        }
        Ok(out)
    }

    /// LPOP/RPOP: up to `count` elements; None if the key is missing.
    pub fn pop(&self, key: &[u8], end: End, count: u64) -> Result<Option<Vec<Vec<u8>>>> {
        let _guard = self.locks.lock(key);
        let Some(mut lm) = self.list_meta(key)? else {
            return Ok(None);
        };
        let marker = if end == End::Left {
            log_data::LPOP
        } else {
            log_data::RPOP
        };
        let mut batch = Self::batch_with(marker);
        let out = self.stage_pop(&mut batch, key, &mut lm, end, count)?;
        if !out.is_empty() {
            self.stage_list_meta(&mut batch, key, &mut lm);
            self.write(batch)?;
        }
        Ok(Some(out))
    }

    pub fn llen(&self, key: &[u8]) -> Result<u64> {
        Ok(self.list_meta(key)?.map_or(0, |lm| lm.len()))
    }

    pub fn lindex(&self, key: &[u8], i: i64) -> Result<Option<Vec<u8>>> {
        let Some(lm) = self.list_meta(key)? else {
            return Ok(None);
        };
        match lm.index(i) {
            Some(index) => Ok(Some(self.read_element(key, &lm, index)?)),
            None => Ok(None),
        }
    }

    /// Elements at storage indexes `[from, to]`, read with one iterator.
    fn range_raw(&self, key: &[u8], lm: &ListMeta, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        let start = self.element_key(key, lm, from);
        let iter = self.iter_cf(
            ColumnFamily::Default,
            None,
            Some(self.element_key(key, lm, to + 1)),
            Start::From(&start, Direction::Forward),
        );
        let mut out = Vec::with_capacity((to - from + 1).min(1 << 16) as usize);
        for item in iter {
            out.push(item?.1.into_vec());
        }
        Ok(out)
    }

    /// LRANGE with Redis's index rules. Only the requested range is read.
    pub fn lrange(&self, key: &[u8], start: i64, stop: i64) -> Result<Vec<Vec<u8>>> {
        let Some(lm) = self.list_meta(key)? else {
            return Ok(Vec::new());
        };
        match lm.clamp(start, stop) {
            Some((from, to)) => self.range_raw(key, &lm, from, to),
            None => Ok(Vec::new()),
        }
    }

    /// LSET.
    pub fn lset(&self, key: &[u8], i: i64, value: &[u8]) -> Result<()> {
        let _guard = self.locks.lock(key);
        let Some(lm) = self.list_meta(key)? else {
            return Err(TypeError::NoSuchKey);
        };
        let Some(index) = lm.index(i) else {
            return Err(TypeError::IndexOutOfRange);
        };
        let mut batch = Self::batch_with(log_data::LSET);
        batch.put_cf(
            self.engine.cf(ColumnFamily::Default),
            self.element_key(key, &lm, index),
            value,
        );
        self.write(batch)
    }

    /// LTRIM: keeps `[start, stop]`.
    pub fn ltrim(&self, key: &[u8], start: i64, stop: i64) -> Result<()> {
        let _guard = self.locks.lock(key);
        let Some(mut lm) = self.list_meta(key)? else {
            return Ok(());
        };
        let (keep_from, keep_to) = match lm.clamp(start, stop) {
            Some((from, to)) => (from, to + 1),
            None => (lm.tail, lm.tail),
        };
        let mut batch = Self::batch_with(log_data::LTRIM);
        let handle = self.engine.cf(ColumnFamily::Default);
        for index in (lm.head..keep_from).chain(keep_to..lm.tail) {
            batch.delete_cf(handle, self.element_key(key, &lm, index));
        }
        lm.head = keep_from;
        lm.tail = keep_to.max(keep_from);
        self.stage_list_meta(&mut batch, key, &mut lm);
        self.write(batch)
    }

    /// Replaces the whole list with `elements` under a new version (the old sub-keys are left
    /// to compaction). LREM and LINSERT use it: both move every later element anyway.
    fn rebuild_list(&self, key: &[u8], marker: &[u8], elements: &[Vec<u8>]) -> Result<()> {
        let mut lm = ListMeta::new();
        let mut batch = Self::batch_with(marker);
        let refs: Vec<&[u8]> = elements.iter().map(|e| e.as_slice()).collect();
        self.stage_push(&mut batch, key, &mut lm, End::Right, &refs);
        // Keep the key's TTL.
        if let Some(old) = self.list_meta(key)? {
            lm.meta.expire_ms = old.meta.expire_ms;
        }
        self.stage_list_meta(&mut batch, key, &mut lm);
        self.write(batch)
    }

    /// LREM: removes up to |count| occurrences (all for 0), from the head for count >= 0 and
    /// from the tail otherwise. Returns how many.
    pub fn lrem(&self, key: &[u8], count: i64, element: &[u8]) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let Some(lm) = self.list_meta(key)? else {
            return Ok(0);
        };
        let mut all = self.range_raw(key, &lm, lm.head, lm.tail - 1)?;
        let limit = if count == 0 {
            u64::MAX
        } else {
            count.unsigned_abs()
        };
        let mut removed = 0u64;
        let mut keep = vec![true; all.len()];
        let order: Box<dyn Iterator<Item = usize>> = if count >= 0 {
            Box::new(0..all.len())
        } else {
            Box::new((0..all.len()).rev())
        };
        for i in order {
            if removed == limit {
                break;
            }
            if all[i] == element {
                keep[i] = false;
                removed += 1;
            }
        }
        if removed > 0 {
            let mut it = keep.into_iter();
            all.retain(|_| it.next().unwrap_or(true));
            self.rebuild_list(key, log_data::LREM, &all)?;
        }
        Ok(removed)
    }

    /// LINSERT: the new length, -1 if the pivot is missing, 0 if the key is.
    pub fn linsert(&self, key: &[u8], before: bool, pivot: &[u8], element: &[u8]) -> Result<i64> {
        let _guard = self.locks.lock(key);
        let Some(lm) = self.list_meta(key)? else {
            return Ok(0);
        };
        let mut all = self.range_raw(key, &lm, lm.head, lm.tail - 1)?;
        let Some(at) = all.iter().position(|e| e == pivot) else {
            return Ok(-1);
        };
        all.insert(if before { at } else { at + 1 }, element.to_vec());
        self.rebuild_list(key, log_data::LINSERT, &all)?;
        Ok(all.len() as i64)
    }

    /// Every element, head first (LPOS).
    pub fn list_all(&self, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        let Some(lm) = self.list_meta(key)? else {
            return Ok(Vec::new());
        };
        if lm.len() == 0 {
            return Ok(Vec::new());
        }
        self.range_raw(key, &lm, lm.head, lm.tail - 1)
    }

    /// LMOVE / RPOPLPUSH: the moved element, None if `src` is empty. WRONGTYPE if `dst` holds
    /// another type.
    pub fn lmove(&self, src: &[u8], dst: &[u8], from: End, to: End) -> Result<Option<Vec<u8>>> {
        let _guard = self.locks.lock_many(&[src, dst]);
        let Some(mut src_lm) = self.list_meta(src)? else {
            return Ok(None);
        };
        let dst_existing = self.list_meta(dst)?;
        let mut batch = Self::batch_with(log_data::LMOVE);
        let Some(element) = self.stage_pop(&mut batch, src, &mut src_lm, from, 1)?.pop() else {
            return Ok(None);
        };
        self.stage_list_meta(&mut batch, src, &mut src_lm);
        let mut dst_lm = if src == dst {
            src_lm
        } else {
            dst_existing.unwrap_or_else(ListMeta::new)
        };
        self.stage_push(&mut batch, dst, &mut dst_lm, to, &[&element]);
        self.stage_list_meta(&mut batch, dst, &mut dst_lm);
        self.write(batch)?;
        Ok(Some(element))
    }
}
