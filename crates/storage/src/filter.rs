//! Compaction filters: how expired and deleted data physically leaves the disk
//! (kvrocks-compat.md §1.5). There is no active expiry; reads treat dead records as missing.
//!
//! - metadata CF: drops records that read as missing (expired, or a collection with no
//!   elements).
//! - sub-key CFs (default, zset_score, stream): Kvrocks' SubKeyFilter. A sub-key is dropped
//!   when its key's metadata is gone, is now a string, has another version (the key was
//!   deleted or overwritten), or expired more than five minutes ago. The grace period keeps
//!   sub-keys that an EXPIRE racing with compaction may still need (Kvrocks issue #1298).
//! - pubsub CF: everything (messages only need to reach the WAL).
//! - propagate CF: the transient `script` record.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{Options, DB};

use crate::encoding::{now_ms, Metadata};
use crate::engine::ColumnFamily;

/// Sub-keys outlive the expiry of their key by this long before compaction drops them.
const SUBKEY_GRACE_MS: u64 = 5 * 60 * 1000;

/// Installs the filter that belongs to `cf`, if it has one.
pub(crate) fn install(cf: ColumnFamily, opts: &mut Options, context: &Arc<SubkeyContext>) {
    match cf {
        ColumnFamily::Metadata => opts.set_compaction_filter("quarry.metadata", metadata_filter),
        ColumnFamily::PubSub => {
            opts.set_compaction_filter("quarry.pubsub", |_, _, _| Decision::Remove)
        }
        ColumnFamily::Propagate => opts.set_compaction_filter("quarry.propagate", propagate_filter),
        ColumnFamily::Default | ColumnFamily::ZSetScore | ColumnFamily::Stream => opts
            .set_compaction_filter_factory(SubkeyFilterFactory {
                context: context.clone(),
            }),
        ColumnFamily::Search => {}
    }
}

/// Snapshots a verification digest is reading now. Compaction filters do not respect
/// snapshots, so while one is open they drop nothing: a record a digest still has to read on
/// one node must not vanish on that node alone (a false mismatch).
pub static SNAPSHOTS_IN_USE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

fn snapshots_in_use() -> bool {
    SNAPSHOTS_IN_USE.load(std::sync::atomic::Ordering::Acquire) > 0
}

/// Holds the filters back while it lives (a verification digest).
pub struct HoldFilters;

impl HoldFilters {
    pub fn new() -> HoldFilters {
        SNAPSHOTS_IN_USE.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        HoldFilters
    }
}

impl Default for HoldFilters {
    fn default() -> Self {
        HoldFilters::new()
    }
}

impl Drop for HoldFilters {
    fn drop(&mut self) {
        SNAPSHOTS_IN_USE.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Drops metadata records that read as missing: expired, or a collection with no elements.
/// A record that does not decode is kept: compaction must never destroy what it cannot read.
fn metadata_filter(_level: u32, _key: &[u8], value: &[u8]) -> Decision {
    if snapshots_in_use() {
        return Decision::Keep;
    }
    match Metadata::decode(value) {
        Ok(m) if m.is_dead(now_ms()) => Decision::Remove,
        _ => Decision::Keep,
    }
}

/// The propagated `script` command is transient; everything else in the CF is kept.
fn propagate_filter(_level: u32, key: &[u8], _value: &[u8]) -> Decision {
    if key == b"script" {
        Decision::Remove
    } else {
        Decision::Keep
    }
}

/// What the sub-key filters share: the DB (attached after it opens) and the key layout.
pub(crate) struct SubkeyContext {
    db: OnceLock<Weak<DB>>,
    closing: AtomicBool,
    slot_encoded: bool,
}

impl SubkeyContext {
    pub(crate) fn new(slot_encoded: bool) -> SubkeyContext {
        SubkeyContext {
            db: OnceLock::new(),
            closing: AtomicBool::new(false),
            slot_encoded,
        }
    }

    pub(crate) fn attach(&self, db: &Arc<DB>) {
        let _ = self.db.set(Arc::downgrade(db));
    }

    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    fn db(&self) -> Option<Arc<DB>> {
        if self.closing.load(Ordering::Acquire) {
            return None;
        }
        self.db.get()?.upgrade()
    }
}

struct SubkeyFilterFactory {
    context: Arc<SubkeyContext>,
}

impl CompactionFilterFactory for SubkeyFilterFactory {
    type Filter = SubkeyFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> SubkeyFilter {
        SubkeyFilter {
            context: self.context.clone(),
            cached: None,
            now_ms: now_ms(),
        }
    }

    fn name(&self) -> &CStr {
        c"quarry.subkey"
    }
}

/// One compaction run's filter. Sub-keys of a key are adjacent, so the last metadata lookup
/// is cached.
struct SubkeyFilter {
    context: Arc<SubkeyContext>,
    cached: Option<(Vec<u8>, Option<Metadata>)>,
    now_ms: u64,
}

/// Splits a sub-key into its key's metadata key and its version:
/// `ns_len | ns | [slot] | key_len:u32 | key | version:u64 | ...`.
pub(crate) fn split_subkey(subkey: &[u8], slot_encoded: bool) -> Option<(Vec<u8>, u64)> {
    let ns_len = *subkey.first()? as usize;
    let prefix_len = 1 + ns_len + if slot_encoded { 2 } else { 0 };
    let key_len =
        u32::from_be_bytes(subkey.get(prefix_len..prefix_len + 4)?.try_into().ok()?) as usize;
    let key_start = prefix_len + 4;
    let key = subkey.get(key_start..key_start + key_len)?;
    let version_at = key_start + key_len;
    let version = u64::from_be_bytes(subkey.get(version_at..version_at + 8)?.try_into().ok()?);
    let mut metadata_key = subkey[..prefix_len].to_vec();
    metadata_key.extend_from_slice(key);
    Some((metadata_key, version))
}

impl SubkeyFilter {
    /// The metadata of `metadata_key`; `Err` when it cannot be read (then nothing is dropped).
    fn metadata(&mut self, metadata_key: &[u8]) -> Result<Option<Metadata>, ()> {
        if let Some((k, m)) = &self.cached {
            if k == metadata_key {
                return Ok(m.clone());
            }
        }
        let db = self.context.db().ok_or(())?;
        let cf = db.cf_handle(ColumnFamily::Metadata.name()).ok_or(())?;
        let meta = match db.get_pinned_cf(cf, metadata_key).map_err(|_| ())? {
            Some(raw) => Some(Metadata::decode(&raw).map_err(|_| ())?),
            None => None,
        };
        self.cached = Some((metadata_key.to_vec(), meta.clone()));
        Ok(meta)
    }
}

impl CompactionFilter for SubkeyFilter {
    fn filter(&mut self, _level: u32, key: &[u8], _value: &[u8]) -> Decision {
        if snapshots_in_use() {
            return Decision::Keep;
        }
        let Some((metadata_key, version)) = split_subkey(key, self.context.slot_encoded) else {
            return Decision::Keep;
        };
        match self.metadata(&metadata_key) {
            Err(()) => Decision::Keep,
            Ok(None) => Decision::Remove,
            Ok(Some(m)) if m.kind.is_single_kv() || m.version != version => Decision::Remove,
            Ok(Some(m)) if m.is_dead(self.now_ms.saturating_sub(SUBKEY_GRACE_MS)) => {
                Decision::Remove
            }
            Ok(Some(_)) => Decision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        c"quarry.subkey"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::KeyCodec;

    #[test]
    fn subkeys_split_into_metadata_key_and_version() {
        for slot_encoded in [false, true] {
            let codec = KeyCodec::new(crate::encoding::DEFAULT_NAMESPACE, slot_encoded);
            let sub = codec.subkey(b"user:1", 42, b"field");
            let (mkey, version) = split_subkey(&sub, slot_encoded).unwrap();
            assert_eq!(mkey, codec.metadata_key(b"user:1"));
            assert_eq!(version, 42);
        }
        assert_eq!(
            split_subkey(b"\x0b__namespace\x00\x00\x00\x09short", false),
            None
        );
    }
}
