//! `Db`: one namespace of the engine, with the key locks and the helpers every type shares.

use std::sync::Arc;

use quarry_storage::encoding::{now_ms, peek_type_and_expire, KeyCodec, Metadata, RedisType};
use quarry_storage::{ColumnFamily, Engine, WriteBatch, WriteOrigin};

use crate::locks::KeyLocks;
use crate::{Result, TypeError};

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
        let Some(raw) = self.engine.get(ColumnFamily::Metadata, &mkey)? else {
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
        let Some(raw) = self.engine.get(ColumnFamily::Metadata, &mkey)? else {
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

    /// Writes a batch as a local (client) write, through the write gate.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.engine.write(batch, WriteOrigin::Local)?)
    }

    pub(crate) fn metadata_cf(&self) -> &quarry_storage::rocksdb::ColumnFamily {
        self.engine.cf(ColumnFamily::Metadata)
    }
}
