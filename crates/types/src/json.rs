//! JSON documents in Kvrocks' layout: a single metadata record of type 10 whose value is a
//! format byte (0: JSON text, 1: CBOR) and the document. quarry writes JSON text, as Kvrocks
//! does by default; the JSON commands (`quarry_commands::json`) parse and serialize it.

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::WriteBatch;

use crate::db::Db;
use crate::{Result, TypeError};

/// Kvrocks' `JsonStorageFormat::JSON`.
const FORMAT_JSON: u8 = 0;
/// Kvrocks' WAL marker for JSON writes (its `kRedisJson`).
const LOG_DATA_JSON: &[u8] = b"10";

/// A stored document: its text and its absolute expiry (0: none).
pub struct JsonDoc {
    pub text: Vec<u8>,
    pub expire_ms: u64,
}

impl Db {
    /// The document at `key` (None if missing); WRONGTYPE for another type. A CBOR document
    /// (Kvrocks' `json-storage-format cbor`) is refused with an error, not misread.
    pub fn json_read(&self, key: &[u8]) -> Result<Option<JsonDoc>> {
        let Some(meta) = self.typed_metadata(key, RedisType::Json)? else {
            return Ok(None);
        };
        match meta.payload.split_first() {
            Some((&FORMAT_JSON, text)) => Ok(Some(JsonDoc {
                text: text.to_vec(),
                expire_ms: meta.expire_ms,
            })),
            _ => Err(TypeError::Storage(quarry_storage::StorageError::Corrupt(
                "the JSON document is stored as CBOR, which quarry does not read".into(),
            ))),
        }
    }

    /// Writes a document (the caller holds the key's lock and keeps its expiry).
    pub fn json_write(&self, key: &[u8], text: &[u8], expire_ms: u64) -> Result<()> {
        let mut payload = Vec::with_capacity(text.len() + 1);
        payload.push(FORMAT_JSON);
        payload.extend_from_slice(text);
        let meta = Metadata {
            kind: RedisType::Json,
            expire_ms,
            version: 0,
            size: 0,
            payload,
        };
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_JSON);
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            meta.encode(),
        );
        self.write(batch)
    }
}
