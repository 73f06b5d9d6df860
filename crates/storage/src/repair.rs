//! The rewrite of one span of the keyspace that mends a diverged replica (docs/replication.md,
//! "Self-repair").
//!
//! The master builds it from its own state and writes it into its history like any other batch,
//! so that replicas receive it through the stream and every sequence number stays aligned (a
//! replica never writes on its own: that is what broke Kvrocks' replicas). On the master it
//! changes nothing a client can see: the span's metadata records are deleted and each live key
//! is written again, with a new version and its sub-keys copied under it. On a replica the same
//! batch replaces whatever the span held, extra keys and extra members included: records of
//! the old versions are no longer reachable, and compaction drops them.

use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::digest::Span;
use crate::encoding::{next_version, Metadata};
use crate::{ColumnFamily, Engine, StorageError};

/// The end of the keyspace, for a span that runs to the end: above every metadata key (a key's
/// first byte is its namespace's length, and no namespace is 255 bytes of 0xff).
const KEYSPACE_END: [u8; 260] = [0xff; 260];

/// The largest rewrite: a bigger range (whole slots of a large cluster-mode slice, or a huge
/// collection) is refused, and the replica falls back to a full sync after its repairs fail.
pub const MAX_REWRITE_BYTES: u64 = 64 * 1024 * 1024;

/// What a rewrite wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub keys: u64,
    pub bytes: u64,
}

/// Builds the batch that rewrites `span` from `engine`'s current state (call it where no other
/// write can land meanwhile: [`Engine::write_alone`]). Keys dead at `now_ms` are left out.
pub fn rewrite_span(
    engine: &Engine,
    span: Span<'_>,
    slot_encoded: bool,
    now_ms: u64,
) -> Result<(WriteBatch, Rewritten), StorageError> {
    let mut batch = WriteBatch::default();
    let mut done = Rewritten::default();
    let meta_cf = engine.cf(ColumnFamily::Metadata);
    batch.delete_range_cf(meta_cf, span.lo, span.hi.unwrap_or(&KEYSPACE_END));
    let mut opts = rocksdb::ReadOptions::default();
    if let Some(hi) = span.hi {
        opts.set_iterate_upper_bound(hi);
    }
    let iter = engine.db().iterator_cf_opt(
        meta_cf,
        opts,
        IteratorMode::From(span.lo, Direction::Forward),
    );
    for item in iter {
        let (mk, raw) = item?;
        let meta = match Metadata::decode(&raw) {
            Ok(meta) => meta,
            Err(_) => {
                // A type this version cannot read is copied as it is.
                batch.put_cf(meta_cf, &mk, &raw);
                done.keys += 1;
                continue;
            }
        };
        if meta.is_dead(now_ms) {
            continue;
        }
        if done.bytes > MAX_REWRITE_BYTES {
            return Err(StorageError::Corrupt(format!(
                "the range holds more than {} MB: too large to rewrite in one batch",
                MAX_REWRITE_BYTES / (1024 * 1024)
            )));
        }
        done.keys += 1;
        done.bytes += (mk.len() + raw.len()) as u64;
        if meta.kind.is_single_kv() {
            batch.put_cf(meta_cf, &mk, &raw);
            continue;
        }
        let Some(parts) = crate::digest::split_metadata_key(&mk, slot_encoded) else {
            batch.put_cf(meta_cf, &mk, &raw);
            continue;
        };
        let new_version = next_version();
        let old_prefix = parts.subkey_prefix(meta.version);
        let new_prefix = parts.subkey_prefix(new_version);
        for cf in meta.kind.subkey_families() {
            let handle = engine.cf(*cf);
            let mut opts = rocksdb::ReadOptions::default();
            if let Some(upper) = crate::encoding::prefix_successor(&old_prefix) {
                opts.set_iterate_upper_bound(upper);
            }
            let subs = engine.db().iterator_cf_opt(
                handle,
                opts,
                IteratorMode::From(&old_prefix, Direction::Forward),
            );
            for sub in subs {
                let (k, v) = sub?;
                let Some(rest) = k.strip_prefix(old_prefix.as_slice()) else {
                    break;
                };
                let mut nk = new_prefix.clone();
                nk.extend_from_slice(rest);
                batch.put_cf(handle, &nk, &v);
                done.bytes += (k.len() + v.len()) as u64;
            }
        }
        let rewritten = Metadata {
            version: new_version,
            ..meta
        };
        batch.put_cf(meta_cf, &mk, rewritten.encode());
    }
    Ok((batch, done))
}
