//! `Db`: one namespace of the engine, with the key locks and the helpers every type shares.

use std::sync::Arc;

use quarry_storage::encoding::{now_ms, peek_type_and_expire, KeyCodec, Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, Engine, WriteBatch};

use crate::locks::KeyLocks;
use crate::txn::Start;
use crate::{Result, TypeError};

/// The positions `[from, to]` of a Redis index range `start..=stop` over `len` elements
/// (negative indexes count from the end, out-of-range ends are clamped), or None if empty.
/// LRANGE, LTRIM and ZRANGE share it.
pub(crate) fn clamp_range(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        stop + len
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as u64, stop as u64))
}

pub struct Db {
    pub(crate) engine: Arc<Engine>,
    pub(crate) codec: KeyCodec,
    pub(crate) locks: KeyLocks,
}

impl Db {
    pub fn new(engine: Arc<Engine>, codec: KeyCodec) -> Db {
        Db {
            engine,
            codec,
            locks: KeyLocks::new(4096),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn codec(&self) -> &KeyCodec {
        &self.codec
    }

    pub fn locks(&self) -> &KeyLocks {
        &self.locks
    }

    /// The live metadata of `key`, or `None` if it is missing, expired or empty.
    pub fn live_metadata(&self, key: &[u8]) -> Result<Option<Metadata>> {
        let mkey = self.codec.metadata_key(key);
        let Some(raw) = self.get_cf(ColumnFamily::Metadata, &mkey)? else {
            return Ok(None);
        };
        let meta = Metadata::decode(&raw)?;
        Ok(if meta.is_dead(now_ms()) {
            None
        } else {
            Some(meta)
        })
    }

    /// The type and expiry of a live key, without copying a string's value: what existence,
    /// TYPE and TTL checks need.
    pub fn peek_live(&self, key: &[u8]) -> Result<Option<(RedisType, u64)>> {
        let mkey = self.codec.metadata_key(key);
        let Some(raw) = self.get_cf(ColumnFamily::Metadata, &mkey)? else {
            return Ok(None);
        };
        let now = now_ms();
        let (kind, expire, _) = peek_type_and_expire(&raw)
            .ok_or_else(|| quarry_storage::StorageError::Corrupt("metadata".into()))?;
        let live = if kind.is_emptyable() {
            expire == 0 || expire >= now
        } else {
            // Collections are dead when empty; their metadata is small to decode.
            !Metadata::decode(&raw)?.is_dead(now)
        };
        Ok(live.then_some((kind, expire)))
    }

    /// Live metadata that must be of type `kind`; WRONGTYPE otherwise.
    pub fn typed_metadata(&self, key: &[u8], kind: RedisType) -> Result<Option<Metadata>> {
        match self.live_metadata(key)? {
            Some(m) if m.kind != kind => Err(TypeError::WrongType),
            other => Ok(other),
        }
    }

    /// Visits the sub-keys of a live collection of type `kind` in sub-key order, from `after`
    /// (exclusive) on, until `visit` returns false. One record at a time: a collection is never
    /// loaded whole for a range read. WRONGTYPE for a key of another type.
    pub fn collection_walk(
        &self,
        key: &[u8],
        kind: RedisType,
        after: Option<&[u8]>,
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let Some(meta) = self.typed_metadata(key, kind)? else {
            return Ok(());
        };
        self.subkey_walk(key, meta.version, after, visit)
    }

    /// [`Db::collection_walk`] over the sub-keys of a version whose metadata the caller has
    /// read already.
    pub fn subkey_walk(
        &self,
        key: &[u8],
        version: u64,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let prefix = self.codec.subkey_prefix(key, version);
        let mut start = prefix.clone();
        if let Some(a) = after {
            start.extend_from_slice(a);
            start.push(0);
        }
        let iter = self.iter_cf(
            ColumnFamily::Default,
            None,
            crate::keys::prefix_successor(&prefix),
            Start::From(&start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !visit(&k[prefix.len()..], &v) {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn metadata_cf(&self) -> &quarry_storage::rocksdb::ColumnFamily {
        self.engine.cf(ColumnFamily::Metadata)
    }

    /// Stages a collection's metadata after a change of size: written, or deleted when the
    /// collection became empty.
    pub(crate) fn stage_collection_meta(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        meta: &Metadata,
    ) {
        let mkey = self.codec.metadata_key(key);
        if meta.size == 0 {
            batch.delete_cf(self.metadata_cf(), mkey);
        } else {
            batch.put_cf(self.metadata_cf(), mkey, meta.encode());
        }
    }
}
