//! JSON documents in Kvrocks' layout: a single metadata record of type 10 whose value is a
//! format byte (0: JSON text, 1: CBOR) and the document. quarry writes JSON text, as Kvrocks
//! does by default, or CBOR with `json-storage-format cbor`; it reads either, whatever the
//! setting, and each write stores the whole document in the current format (as Kvrocks). The
//! JSON commands (`quarry_commands::json`) see JSON text.

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::WriteBatch;

use crate::db::Db;
use crate::{Result, TypeError};

/// Kvrocks' `JsonStorageFormat::JSON` and `::CBOR`.
const FORMAT_JSON: u8 = 0;
const FORMAT_CBOR: u8 = 1;

/// `json-storage-format cbor`: documents are written as CBOR.
pub static STORE_AS_CBOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Kvrocks' WAL marker for JSON writes (its `kRedisJson`).
const LOG_DATA_JSON: &[u8] = b"10";

/// A stored document: its text and its absolute expiry (0: none).
pub struct JsonDoc {
    pub text: Vec<u8>,
    pub expire_ms: u64,
}

impl Db {
    /// How the document at `key` is stored, `json` or `cbor` (None if missing), without
    /// decoding it; WRONGTYPE for another type.
    pub fn json_format(&self, key: &[u8]) -> Result<Option<&'static str>> {
        let Some(meta) = self.typed_metadata(key, RedisType::Json)? else {
            return Ok(None);
        };
        Ok(Some(match meta.payload.first() {
            Some(&FORMAT_CBOR) => "cbor",
            Some(&FORMAT_JSON) => "json",
            _ => "unknown",
        }))
    }

    /// The document at `key` as JSON text (None if missing); WRONGTYPE for another type.
    pub fn json_read(&self, key: &[u8]) -> Result<Option<JsonDoc>> {
        let Some(meta) = self.typed_metadata(key, RedisType::Json)? else {
            return Ok(None);
        };
        let corrupt = |why: String| {
            TypeError::Storage(quarry_storage::StorageError::Corrupt(format!(
                "JSON document: {why}"
            )))
        };
        let text = match meta.payload.split_first() {
            Some((&FORMAT_JSON, text)) => text.to_vec(),
            Some((&FORMAT_CBOR, bytes)) => {
                let value = crate::cbor::decode(bytes).map_err(corrupt)?;
                serde_json::to_vec(&value).map_err(|e| corrupt(e.to_string()))?
            }
            Some((other, _)) => return Err(corrupt(format!("unknown storage format {other}"))),
            None => return Err(corrupt("empty record".into())),
        };
        Ok(Some(JsonDoc {
            text,
            expire_ms: meta.expire_ms,
        }))
    }

    /// Writes a document (the caller holds the key's lock and keeps its expiry).
    pub fn json_write(&self, key: &[u8], text: &[u8], expire_ms: u64) -> Result<()> {
        let mut payload = Vec::with_capacity(text.len() + 1);
        if STORE_AS_CBOR.load(std::sync::atomic::Ordering::Relaxed) {
            // The commands hand over serialized documents: they parse.
            let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
                TypeError::Storage(quarry_storage::StorageError::Corrupt(format!(
                    "JSON document: {e}"
                )))
            })?;
            payload.push(FORMAT_CBOR);
            payload.extend_from_slice(&crate::cbor::encode(&value));
        } else {
            payload.push(FORMAT_JSON);
            payload.extend_from_slice(text);
        }
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
