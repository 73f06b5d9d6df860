//! The sorted-set type: metadata (type 5, version, size); in the default column family one
//! sub-key per member holding its score as an 8-byte order-preserving double; in the
//! zset_score column family one sub-key `score | member` per member, empty, for score order
//! (kvrocks-compat.md §1.4).

use std::ops::Bound;

use quarry_storage::encoding::{decode_ordered_double, encode_ordered_double, Metadata, RedisType};
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::keys::prefix_successor;
use crate::txn::Start;
use crate::{Result, TypeError};

/// Kvrocks' WAL marker for sorted-set writes (its `kRedisZSet`).
const LOG_DATA_ZSET: &[u8] = b"5";

/// Members with their scores.
pub type ScoredMembers = Vec<(Vec<u8>, f64)>;

/// ZADD's options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZAddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub incr: bool,
}

/// What ZADD did: members added, members whose score changed, and for INCR the new score
/// (None when the condition refused it).
#[derive(Debug, Default)]
pub struct ZAddOutcome {
    pub added: u64,
    pub changed: u64,
    pub incr: Option<f64>,
}

fn score_bytes(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8.min(b.len())]);
    decode_ordered_double(a)
}

impl Db {
    fn zset_meta(&self, key: &[u8]) -> Result<Option<Metadata>> {
        self.typed_metadata(key, RedisType::ZSet)
    }

    fn member_score(&self, key: &[u8], meta: &Metadata, member: &[u8]) -> Result<Option<f64>> {
        let k = self.codec.subkey(key, meta.version, member);
        Ok(self
            .get_cf(ColumnFamily::Default, &k)?
            .map(|v| score_bytes(&v)))
    }

    fn score_key(&self, key: &[u8], meta: &Metadata, score: f64, member: &[u8]) -> Vec<u8> {
        let mut sub = encode_ordered_double(score).to_vec();
        sub.extend_from_slice(member);
        self.codec.subkey(key, meta.version, &sub)
    }

    fn stage_member(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        meta: &Metadata,
        member: &[u8],
        old: Option<f64>,
        new: f64,
    ) {
        if let Some(old) = old {
            batch.delete_cf(
                self.engine.cf(ColumnFamily::ZSetScore),
                self.score_key(key, meta, old, member),
            );
        }
        batch.put_cf(
            self.engine.cf(ColumnFamily::Default),
            self.codec.subkey(key, meta.version, member),
            encode_ordered_double(new),
        );
        batch.put_cf(
            self.engine.cf(ColumnFamily::ZSetScore),
            self.score_key(key, meta, new, member),
            b"",
        );
    }

    /// ZADD / ZINCRBY.
    pub fn zadd(
        &self,
        key: &[u8],
        items: &[(f64, &[u8])],
        flags: ZAddFlags,
    ) -> Result<ZAddOutcome> {
        let _guard = self.locks.lock(key);
        let mut meta = self
            .zset_meta(key)?
            .unwrap_or_else(|| Metadata::new_complex(RedisType::ZSet));
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_ZSET);
        let mut out = ZAddOutcome::default();
        // The last score given for a member wins, as in Redis.
        let mut staged: Vec<(&[u8], f64)> = Vec::new();
        for &(score, member) in items {
            let old = match staged.iter().find(|(m, _)| *m == member) {
                Some((_, s)) => Some(*s),
                None if meta.size > 0 => self.member_score(key, &meta, member)?,
                None => None,
            };
            let new = if flags.incr {
                old.unwrap_or(0.0) + score
            } else {
                score
            };
            if new.is_nan() {
                return Err(TypeError::NanOrInfinity);
            }
            let refused = (flags.nx && old.is_some())
                || (flags.xx && old.is_none())
                || (old.is_some() && flags.gt && new <= old.unwrap_or(f64::NAN))
                || (old.is_some() && flags.lt && new >= old.unwrap_or(f64::NAN));
            if refused {
                continue;
            }
            if flags.incr {
                out.incr = Some(new);
            }
            match old {
                None => out.added += 1,
                Some(o) if o != new => out.changed += 1,
                Some(_) => continue,
            }
            self.stage_member(&mut batch, key, &meta, member, old, new);
            staged.retain(|(m, _)| *m != member);
            staged.push((member, new));
        }
        // The metadata holds the size: written only when members were added (as Kvrocks).
        if out.added > 0 {
            meta.size += out.added;
            self.stage_collection_meta(&mut batch, key, &meta);
        }
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(out)
    }

    pub fn zscore(&self, key: &[u8], member: &[u8]) -> Result<Option<f64>> {
        match self.zset_meta(key)? {
            Some(meta) => self.member_score(key, &meta, member),
            None => Ok(None),
        }
    }

    pub fn zcard(&self, key: &[u8]) -> Result<u64> {
        Ok(self.zset_meta(key)?.map_or(0, |m| m.size))
    }

    /// ZREM: how many members were removed.
    pub fn zrem<M: AsRef<[u8]>>(&self, key: &[u8], members: &[M]) -> Result<u64> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.zset_meta(key)? else {
            return Ok(0);
        };
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_ZSET);
        let mut removed = 0;
        let mut seen = std::collections::BTreeSet::new();
        for m in members {
            let m = m.as_ref();
            if !seen.insert(m) {
                continue;
            }
            if let Some(score) = self.member_score(key, &meta, m)? {
                batch.delete_cf(
                    self.engine.cf(ColumnFamily::Default),
                    self.codec.subkey(key, meta.version, m),
                );
                batch.delete_cf(
                    self.engine.cf(ColumnFamily::ZSetScore),
                    self.score_key(key, &meta, score, m),
                );
                removed += 1;
            }
        }
        if removed > 0 {
            meta.size -= removed.min(meta.size);
            self.stage_collection_meta(&mut batch, key, &meta);
            self.write(batch)?;
        }
        Ok(removed)
    }

    /// Walks members in score order (then member order), ascending or descending, calling
    /// `visit(member, score)` until it returns false.
    pub fn zset_walk_by_score(
        &self,
        key: &[u8],
        rev: bool,
        mut visit: impl FnMut(&[u8], f64) -> bool,
    ) -> Result<()> {
        let Some(meta) = self.zset_meta(key)? else {
            return Ok(());
        };
        let prefix = self.codec.subkey_prefix(key, meta.version);
        let start = if rev { Start::Last } else { Start::First };
        let upper = prefix_successor(&prefix);
        for item in self.iter_cf(ColumnFamily::ZSetScore, Some(prefix.clone()), upper, start) {
            let (k, _) = item?;
            let sub = &k[prefix.len()..];
            if sub.len() < 8 {
                continue;
            }
            if !visit(&sub[8..], score_bytes(&sub[..8])) {
                break;
            }
        }
        Ok(())
    }

    /// Members within score bounds, with offset and count (negative: all).
    pub fn zrange_by_score(
        &self,
        key: &[u8],
        min: Bound<f64>,
        max: Bound<f64>,
        rev: bool,
        offset: usize,
        count: i64,
    ) -> Result<Vec<(Vec<u8>, f64)>> {
        let above = |s: f64| match min {
            Bound::Included(m) => s >= m,
            Bound::Excluded(m) => s > m,
            Bound::Unbounded => true,
        };
        let below = |s: f64| match max {
            Bound::Included(m) => s <= m,
            Bound::Excluded(m) => s < m,
            Bound::Unbounded => true,
        };
        let mut out = Vec::new();
        let mut skipped = 0;
        if count == 0 {
            return Ok(out);
        }
        self.zset_walk_by_score(key, rev, |m, s| {
            let (inside, past) = if rev {
                (below(s) && above(s), !above(s))
            } else {
                (above(s) && below(s), !below(s))
            };
            if past {
                return false;
            }
            if !inside {
                return true;
            }
            if skipped < offset {
                skipped += 1;
                return true;
            }
            out.push((m.to_vec(), s));
            count < 0 || (out.len() as i64) < count
        })?;
        Ok(out)
    }

    /// Members by rank `[start, stop]` (Redis index rules), in score order or reversed.
    pub fn zrange_by_rank(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
        rev: bool,
    ) -> Result<Vec<(Vec<u8>, f64)>> {
        let Some((start, stop)) = crate::db::clamp_range(start, stop, self.zcard(key)?) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut i = 0u64;
        self.zset_walk_by_score(key, rev, |m, s| {
            if i >= start {
                out.push((m.to_vec(), s));
            }
            i += 1;
            i <= stop
        })?;
        Ok(out)
    }

    /// ZRANK / ZREVRANK: the member's rank and score.
    pub fn zrank(&self, key: &[u8], member: &[u8], rev: bool) -> Result<Option<(u64, f64)>> {
        let Some(score) = self.zscore(key, member)? else {
            return Ok(None);
        };
        let mut rank = 0u64;
        self.zset_walk_by_score(key, rev, |m, _| {
            if m == member {
                return false;
            }
            rank += 1;
            true
        })?;
        Ok(Some((rank, score)))
    }

    /// Every member and score in member order, or None if the key does not exist.
    pub fn zset_items(&self, key: &[u8]) -> Result<Option<ScoredMembers>> {
        if self.zset_meta(key)?.is_none() {
            return Ok(None);
        }
        let mut out = Vec::new();
        self.collection_walk(key, RedisType::ZSet, None, |m, v| {
            out.push((m.to_vec(), score_bytes(v)));
            true
        })?;
        Ok(Some(out))
    }

    /// The input of ZUNION/ZINTER/ZDIFF: a sorted set's members and scores, a set's members
    /// with score 1, nothing for a missing key; WRONGTYPE for anything else.
    pub fn zset_or_set_items(&self, key: &[u8]) -> Result<ScoredMembers> {
        match self.live_metadata(key)? {
            None => Ok(Vec::new()),
            Some(m) if m.kind == RedisType::ZSet => Ok(self.zset_items(key)?.unwrap_or_default()),
            Some(m) if m.kind == RedisType::Set => {
                Ok(self.smembers(key)?.into_iter().map(|m| (m, 1.0)).collect())
            }
            Some(_) => Err(TypeError::WrongType),
        }
    }

    /// Replaces `dst` with a sorted set of `items` (deleted if empty): the *STORE commands. The
    /// old value's sub-keys are left to compaction, as for any overwrite.
    pub fn zstore(&self, dst: &[u8], items: &[(Vec<u8>, f64)]) -> Result<u64> {
        let _guard = self.locks.lock(dst);
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_ZSET);
        let mut meta = Metadata::new_complex(RedisType::ZSet);
        let mut seen = std::collections::HashSet::new();
        for (m, s) in items {
            if seen.insert(m.as_slice()) {
                self.stage_member(&mut batch, dst, &meta, m, None, *s);
            }
        }
        meta.size = seen.len() as u64;
        self.stage_collection_meta(&mut batch, dst, &meta);
        self.write(batch)?;
        Ok(meta.size)
    }

    /// ZPOPMIN / ZPOPMAX: up to `count` members with the lowest (highest) scores.
    pub fn zpop(&self, key: &[u8], max: bool, count: usize) -> Result<Vec<(Vec<u8>, f64)>> {
        let _guard = self.locks.lock(key);
        let Some(mut meta) = self.zset_meta(key)? else {
            return Ok(Vec::new());
        };
        let mut popped = Vec::new();
        if count > 0 {
            self.zset_walk_by_score(key, max, |m, s| {
                popped.push((m.to_vec(), s));
                popped.len() < count
            })?;
        }
        if popped.is_empty() {
            return Ok(popped);
        }
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_ZSET);
        for (m, s) in &popped {
            batch.delete_cf(
                self.engine.cf(ColumnFamily::Default),
                self.codec.subkey(key, meta.version, m),
            );
            batch.delete_cf(
                self.engine.cf(ColumnFamily::ZSetScore),
                self.score_key(key, &meta, *s, m),
            );
        }
        meta.size -= (popped.len() as u64).min(meta.size);
        self.stage_collection_meta(&mut batch, key, &meta);
        self.write(batch)?;
        Ok(popped)
    }
}
