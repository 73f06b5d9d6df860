//! Operations on keys of any type: existence, deletion, expiry, renaming, iteration, counting.
//!
//! They touch only the metadata record, except RENAME and COPY of collections, which copy the
//! sub-keys under a fresh version. Deleted or overwritten collections leave their sub-keys
//! behind for compaction to remove (lazy deletion, kvrocks-compat.md §1.5).

use quarry_storage::encoding::{self, now_ms, peek_type_and_expire, Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, WriteBatch};
use rand::Rng;

use crate::db::Db;
use crate::glob::glob_match;
use crate::txn::Start;
use crate::{Result, TypeError};

/// The column families that hold keys' data (not pub/sub or propagate records): what the
/// flushes and a slot range's deletion clear.
const DATA_CFS: [ColumnFamily; 4] = [
    ColumnFamily::Metadata,
    ColumnFamily::Default,
    ColumnFamily::ZSetScore,
    ColumnFamily::Stream,
];

/// What TTL and PTTL report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlState {
    Missing,
    NoExpiry,
    /// Absolute expiry in Unix milliseconds.
    ExpiresAt(u64),
}

/// NX/XX/GT/LT of the EXPIRE family (XX may combine with GT or LT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExpireCondition {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// One page of SCAN: the keys found and where to continue (None when the scan is complete).
#[derive(Debug, Default)]
pub struct ScanPage {
    pub keys: Vec<Vec<u8>>,
    pub next: Option<Vec<u8>>,
}

/// Sub-key column families whose records belong to a key version.
const SUBKEY_CFS: [ColumnFamily; 3] = [
    ColumnFamily::Default,
    ColumnFamily::ZSetScore,
    ColumnFamily::Stream,
];

pub(crate) use quarry_storage::encoding::prefix_successor;

/// The literal start of a glob pattern, up to its first special character.
fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

impl Db {
    pub fn key_type(&self, key: &[u8]) -> Result<Option<RedisType>> {
        Ok(self.peek_live(key)?.map(|(kind, _)| kind))
    }

    /// EXISTS: counts each named key that is live, repeats included.
    pub fn exists<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<i64> {
        let mut n = 0;
        for k in keys {
            if self.peek_live(k.as_ref())?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Active expiry: looks at up to `max_visits` keys from the raw metadata key `start` on
    /// (None: the first) and removes those whose time ran out, each in its own batch under its
    /// lock and only if still expired then. Returns the user keys removed and, as `next`, the
    /// raw metadata key the next call starts from (None once the keyspace was walked whole).
    pub fn expire_scan(&self, start: Option<Vec<u8>>, max_visits: usize) -> Result<ScanPage> {
        let ns = self.codec.namespace_prefix();
        let upper = prefix_successor(&ns);
        let start = start.filter(|k| *k > ns).unwrap_or_else(|| ns.clone());
        let expired_at =
            |v: &[u8], now: u64| peek_type_and_expire(v).is_some_and(|(_, e, _)| e != 0 && e < now);
        let now = now_ms();
        let mut found = Vec::new();
        let mut next = None;
        for (visited, item) in self
            .iter_cf(
                ColumnFamily::Metadata,
                None,
                upper,
                Start::From(&start, Direction::Forward),
            )
            .enumerate()
        {
            let (k, v) = item?;
            if visited >= max_visits {
                next = Some(k.to_vec());
                break;
            }
            if expired_at(&v, now) {
                if let Some(user) = self.codec.user_key_of(&k) {
                    found.push(user.to_vec());
                }
            }
        }
        let mut removed = Vec::new();
        for key in found {
            let _guard = self.locks.lock(&key);
            let mkey = self.codec.metadata_key(&key);
            // A write since the walk may have given the key a new life.
            let still = self
                .get_cf(ColumnFamily::Metadata, &mkey)?
                .is_some_and(|v| expired_at(&v, now_ms()));
            if still {
                let mut batch = WriteBatch::default();
                batch.delete_cf(self.metadata_cf(), mkey);
                self.write(batch)?;
                removed.push(key);
            }
        }
        Ok(ScanPage {
            keys: removed,
            next,
        })
    }

    /// DEL/UNLINK: removes the live keys among `keys`, in one batch; returns how many.
    pub fn delete<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<i64> {
        let _guard = self.locks.lock_many(keys);
        let mut batch = WriteBatch::default();
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for k in keys {
            let k = k.as_ref();
            if !seen.insert(k) {
                continue;
            }
            if self.peek_live(k)?.is_some() {
                batch.delete_cf(self.metadata_cf(), self.codec.metadata_key(k));
                n += 1;
            }
        }
        if n > 0 {
            self.write(batch)?;
        }
        Ok(n)
    }

    pub fn ttl(&self, key: &[u8]) -> Result<TtlState> {
        Ok(match self.peek_live(key)? {
            None => TtlState::Missing,
            Some((_, 0)) => TtlState::NoExpiry,
            Some((_, at)) => TtlState::ExpiresAt(at),
        })
    }

    /// Sets the absolute expiry of `key` if `cond` allows it. An expiry in the past deletes the
    /// key, as in Redis. Returns whether anything changed.
    pub fn expire_at(&self, key: &[u8], at_ms: i64, cond: ExpireCondition) -> Result<bool> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.live_metadata(key)? else {
            return Ok(false);
        };
        let current = meta.expire_ms as i64;
        let volatile = current != 0;
        // A key without TTL counts as an infinite TTL for GT and LT.
        let refused = (cond.nx && volatile)
            || (cond.xx && !volatile)
            || (cond.gt && (!volatile || at_ms <= current))
            || (cond.lt && volatile && at_ms >= current);
        if refused {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        let mkey = self.codec.metadata_key(key);
        if at_ms <= now_ms() as i64 {
            batch.delete_cf(self.metadata_cf(), mkey);
        } else {
            meta.expire_ms = at_ms as u64;
            batch.put_cf(self.metadata_cf(), mkey, meta.encode());
        }
        self.write(batch)?;
        Ok(true)
    }

    /// PERSIST: removes the TTL; returns whether the key had one.
    pub fn persist(&self, key: &[u8]) -> Result<bool> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.live_metadata(key)? else {
            return Ok(false);
        };
        if meta.expire_ms == 0 {
            return Ok(false);
        }
        meta.expire_ms = 0;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            meta.encode(),
        );
        self.write(batch)?;
        Ok(true)
    }

    /// Adds to `batch` a copy of `meta` (the value of `src`) under the name `dst` in `target`
    /// (this namespace or another of the same engine). Collections get a new version, and
    /// their sub-keys are copied under it.
    fn copy_into(
        &self,
        batch: &mut WriteBatch,
        src: &[u8],
        meta: &Metadata,
        target: &Db,
        dst: &[u8],
    ) -> Result<()> {
        let mut copy = meta.clone();
        if !meta.kind.is_single_kv() {
            copy.version = encoding::next_version();
            let src_prefix = self.codec.subkey_prefix(src, meta.version);
            let dst_prefix = target.codec.subkey_prefix(dst, copy.version);
            for cf in SUBKEY_CFS {
                let handle = self.engine.cf(cf);
                let iter = self.iter_cf(
                    cf,
                    None,
                    prefix_successor(&src_prefix),
                    Start::From(&src_prefix, Direction::Forward),
                );
                for item in iter {
                    let (k, v) = item?;
                    let mut nk = dst_prefix.clone();
                    nk.extend_from_slice(&k[src_prefix.len()..]);
                    batch.put_cf(handle, nk, v);
                }
            }
        }
        batch.put_cf(
            self.metadata_cf(),
            target.codec.metadata_key(dst),
            copy.encode(),
        );
        Ok(())
    }

    /// MEMORY USAGE: the bytes `key` takes in storage, keys included: its metadata record and
    /// its sub-key records. Up to `samples` sub-keys per column family are read (0 = all); past
    /// that, collections whose size counts their elements are extrapolated, as Redis samples.
    pub fn memory_usage(&self, key: &[u8], samples: usize) -> Result<Option<u64>> {
        let mkey = self.codec.metadata_key(key);
        let Some(meta) = self.live_metadata(key)? else {
            return Ok(None);
        };
        let mut total = (mkey.len() + meta.encode().len()) as u64;
        if meta.kind.is_single_kv() {
            return Ok(Some(total));
        }
        let counts_elements = matches!(
            meta.kind,
            RedisType::Hash
                | RedisType::Set
                | RedisType::ZSet
                | RedisType::List
                | RedisType::SortedInt
        );
        let limit = if samples == 0 || !counts_elements {
            usize::MAX
        } else {
            samples
        };
        let prefix = self.codec.subkey_prefix(key, meta.version);
        for cf in SUBKEY_CFS {
            let iter = self.iter_cf(
                cf,
                None,
                prefix_successor(&prefix),
                Start::From(&prefix, Direction::Forward),
            );
            let (mut bytes, mut n) = (0u64, 0u64);
            let mut complete = true;
            for item in iter {
                if n as usize == limit {
                    complete = false;
                    break;
                }
                let (k, v) = item?;
                bytes += (k.len() + v.len()) as u64;
                n += 1;
            }
            total += if complete || n == 0 {
                bytes
            } else {
                bytes / n * meta.size.max(n)
            };
        }
        Ok(Some(total))
    }

    /// RENAME / RENAMENX. Returns false only when `nx` is set and `dst` exists.
    pub fn rename(&self, src: &[u8], dst: &[u8], nx: bool) -> Result<bool> {
        let _guard = self.locks.lock_many(&[src, dst]);
        let Some(meta) = self.live_metadata(src)? else {
            return Err(TypeError::NoSuchKey);
        };
        if src == dst {
            return Ok(!nx);
        }
        if nx && self.peek_live(dst)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        self.copy_into(&mut batch, src, &meta, self, dst)?;
        batch.delete_cf(self.metadata_cf(), self.codec.metadata_key(src));
        self.write(batch)?;
        Ok(true)
    }

    /// COPY: returns false if `dst` exists and `replace` is not set, or `src` is missing.
    pub fn copy(&self, src: &[u8], dst: &[u8], replace: bool) -> Result<bool> {
        let _guard = self.locks.lock_many(&[src, dst]);
        let Some(meta) = self.live_metadata(src)? else {
            return Ok(false);
        };
        if !replace && self.peek_live(dst)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        self.copy_into(&mut batch, src, &meta, self, dst)?;
        self.write(batch)?;
        Ok(true)
    }

    /// Kvrocks' MOVEX: moves `key` into `target`, another namespace of the same engine, unless
    /// it is missing here or exists there. One batch: the key's records are copied under the
    /// target's prefix (sub-keys under a new version) and its metadata here is deleted.
    pub fn move_to(&self, key: &[u8], target: &Db) -> Result<bool> {
        let _guard = self.locks.lock(key);
        let _target_guard = target.locks.lock(key);
        let Some(meta) = self.live_metadata(key)? else {
            return Ok(false);
        };
        if target.peek_live(key)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        self.copy_into(&mut batch, key, &meta, target, key)?;
        batch.delete_cf(self.metadata_cf(), self.codec.metadata_key(key));
        self.write(batch)?;
        Ok(true)
    }

    /// Visits live keys in key order, starting after `after`, calling `visit` with each user key
    /// and its type until it returns false or `max_visits` records have been looked at.
    /// Returns the last key looked at, if the walk stopped before the end.
    fn walk_keys(
        &self,
        after: Option<&[u8]>,
        pattern: Option<&[u8]>,
        max_visits: usize,
        visit: impl FnMut(&[u8], RedisType, u64) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let start = after.map(|a| {
            let mut k = self.codec.metadata_key(a);
            k.push(0); // strictly after `a`
            k
        });
        self.walk_raw(start, pattern, max_visits, visit)
    }

    /// [`Db::walk_keys`] from a raw metadata key (inclusive) instead of a user key.
    fn walk_raw(
        &self,
        start: Option<Vec<u8>>,
        pattern: Option<&[u8]>,
        max_visits: usize,
        mut visit: impl FnMut(&[u8], RedisType, u64) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let ns = self.codec.namespace_prefix();
        // Without a slot in the key, a literal pattern prefix narrows the range.
        let lit = match pattern {
            Some(p) if !self.codec.slot_encoded() => literal_prefix(p),
            _ => &[],
        };
        let mut lower = ns.clone();
        lower.extend_from_slice(lit);
        let upper = prefix_successor(&lower);
        let start = match start {
            Some(k) if k > lower => k,
            _ => lower.clone(),
        };
        let now = now_ms();
        let iter = self.iter_cf(
            ColumnFamily::Metadata,
            None,
            upper,
            Start::From(&start, Direction::Forward),
        );
        let mut visited = 0;
        for item in iter {
            let (k, v) = item?;
            let Some(user_key) = self.codec.user_key_of(&k) else {
                continue;
            };
            visited += 1;
            if let Some((kind, expire, _)) = peek_type_and_expire(&v) {
                let live = if kind.is_emptyable() {
                    expire == 0 || expire >= now
                } else {
                    Metadata::decode(&v)
                        .map(|m| !m.is_dead(now))
                        .unwrap_or(false)
                };
                let matches = pattern.is_none_or(|p| glob_match(p, user_key));
                if live && matches && !visit(user_key, kind, expire) {
                    return Ok(Some(user_key.to_vec()));
                }
            }
            if visited >= max_visits {
                return Ok(Some(user_key.to_vec()));
            }
        }
        Ok(None)
    }

    /// One SCAN page: visits about `count` keys after `after`.
    pub fn scan(
        &self,
        after: Option<&[u8]>,
        pattern: Option<&[u8]>,
        count: usize,
        kind: Option<RedisType>,
    ) -> Result<ScanPage> {
        let mut keys = Vec::new();
        let next = self.walk_keys(after, pattern, count.max(1), |k, t, _| {
            if kind.is_none_or(|want| want == t) {
                keys.push(k.to_vec());
            }
            true
        })?;
        Ok(ScanPage { keys, next })
    }

    pub fn keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.walk_keys(None, Some(pattern), usize::MAX, |k, _, _| {
            keys.push(k.to_vec());
            true
        })?;
        Ok(keys)
    }

    /// Up to `limit` live keys of one slot (cluster mode, where keys are stored by slot):
    /// CLUSTER GETKEYSINSLOT and COUNTKEYSINSLOT.
    pub fn keys_in_slot(&self, slot: u16, limit: u64) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        if !self.codec.slot_encoded() {
            // Standalone keys are not grouped by slot: the whole keyspace is walked.
            self.walk_keys(None, None, usize::MAX, |k, _, _| {
                if quarry_storage::slot::key_slot(k) == slot {
                    keys.push(k.to_vec());
                }
                (keys.len() as u64) < limit
            })?;
            return Ok(keys);
        }
        let (lower, upper) = self.codec.slot_range_bounds(slot, slot);
        let now = now_ms();
        let iter = self.iter_cf(
            ColumnFamily::Metadata,
            None,
            Some(upper),
            Start::From(&lower, Direction::Forward),
        );
        for item in iter {
            if keys.len() as u64 >= limit {
                break;
            }
            let (k, v) = item?;
            let Some(user_key) = self.codec.user_key_of(&k) else {
                continue;
            };
            let live = Metadata::decode(&v)
                .map(|m| !m.is_dead(now))
                .unwrap_or(false);
            if live {
                keys.push(user_key.to_vec());
            }
        }
        Ok(keys)
    }

    /// Deletes every key of the slots `from..=to` (cluster mode: keys are stored by slot, so
    /// this is one range deletion per column family that holds key data).
    pub fn delete_slot_range(&self, from: u16, to: u16) -> Result<()> {
        let (begin, end) = self.codec.slot_range_bounds(from, to);
        let mut batch = WriteBatch::default();
        for cf in DATA_CFS {
            batch.delete_range_cf(self.engine.cf(cf), &begin, &end);
        }
        self.write(batch)
    }

    /// DBSIZE: the exact number of live keys, counted now (not a stale estimate).
    pub fn dbsize(&self) -> Result<u64> {
        Ok(self.key_counts()?.0)
    }

    /// Live keys, and how many of them have a TTL, counted now.
    pub fn key_counts(&self) -> Result<(u64, u64)> {
        let (mut keys, mut expires) = (0, 0);
        self.walk_keys(None, None, usize::MAX, |_, _, expire| {
            keys += 1;
            expires += (expire != 0) as u64;
            true
        })?;
        Ok((keys, expires))
    }

    /// Key and expiry counts for INFO keyspace: exact while the keyspace has at most `exact_up_to`
    /// keys, and beyond that RocksDB's estimate (with expiries in the proportion of the keys
    /// walked), so that INFO stays cheap on a large database. The flag says whether the counts
    /// are exact. DBSIZE stays exact.
    pub fn key_counts_bounded(&self, exact_up_to: usize) -> Result<(u64, u64, bool)> {
        let (mut keys, mut expires) = (0u64, 0u64);
        let stopped = self.walk_keys(None, None, exact_up_to + 1, |_, _, expire| {
            keys += 1;
            expires += (expire != 0) as u64;
            true
        })?;
        if stopped.is_none() {
            return Ok((keys, expires, true));
        }
        let estimate = self
            .engine
            .property(
                quarry_storage::ColumnFamily::Metadata,
                "rocksdb.estimate-num-keys",
            )
            .unwrap_or(keys)
            .max(keys);
        let expires = (expires as f64 * estimate as f64 / keys.max(1) as f64) as u64;
        Ok((estimate, expires, false))
    }

    /// FLUSHDB/FLUSHALL: one DeleteRange per column family over the namespace.
    pub fn flush(&self) -> Result<()> {
        let ns = self.codec.namespace_prefix();
        let end = prefix_successor(&ns).unwrap_or_else(|| vec![0xff; 256]);
        let mut batch = WriteBatch::default();
        for cf in DATA_CFS {
            batch.delete_range_cf(self.engine.cf(cf), &ns, &end);
        }
        self.write(batch)
    }

    /// FLUSHALL: every namespace's keys (Kvrocks' FLUSHALL empties the whole node). One
    /// DeleteRange per column family, from its first key to just past its last.
    pub fn flush_all_namespaces(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        for cf in DATA_CFS {
            let first = self
                .iter_cf(cf, None, None, Start::First)
                .next()
                .transpose()?;
            let last = self
                .iter_cf(cf, None, None, Start::Last)
                .next()
                .transpose()?;
            if let (Some((first, _)), Some((last, _))) = (first, last) {
                let mut end = last.to_vec();
                end.push(0);
                batch.delete_range_cf(self.engine.cf(cf), &first[..], &end);
            }
        }
        self.write(batch)
    }

    /// The first and last metadata keys of the namespace, live or not (a transaction's own
    /// writes included).
    fn key_bounds(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let ns = self.codec.namespace_prefix();
        let upper = prefix_successor(&ns);
        let edge = |start: Start<'_>| -> Result<Option<Vec<u8>>> {
            match self
                .iter_cf(
                    ColumnFamily::Metadata,
                    Some(ns.clone()),
                    upper.clone(),
                    start,
                )
                .next()
            {
                Some(item) => Ok(Some(item?.0.to_vec())),
                None => Ok(None),
            }
        };
        let Some(first) = edge(Start::First)? else {
            return Ok(None);
        };
        let last = edge(Start::Last)?.unwrap_or_else(|| first.clone());
        Ok(Some((first, last)))
    }

    /// RANDOMKEY: the first live key at or after a random point between the first and the last
    /// key, wrapping around once. Not perfectly uniform (keys after wide gaps are favoured),
    /// but cheap: no count of the keyspace is needed.
    pub fn random_key(&self) -> Result<Option<Vec<u8>>> {
        let Some((first, last)) = self.key_bounds()? else {
            return Ok(None);
        };
        let mut rng = rand::thread_rng();
        let common = first.iter().zip(&last).take_while(|(a, b)| a == b).count();
        let mut probe = first[..common].to_vec();
        let lo = first.get(common).copied().unwrap_or(0);
        let hi = last.get(common).copied().unwrap_or(0xff).max(lo);
        probe.push(rng.gen_range(lo..=hi));
        for _ in 0..4 {
            probe.push(rng.gen());
        }
        let mut found = None;
        self.walk_raw(Some(probe), None, 100_000, |k, _, _| {
            found = Some(k.to_vec());
            false
        })?;
        if found.is_none() {
            self.walk_raw(None, None, usize::MAX, |k, _, _| {
                found = Some(k.to_vec());
                false
            })?;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_increments_last_byte() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff"), None);
    }
}
