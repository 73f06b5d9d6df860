//! The consistency digest (DESIGN.md §3): an order-independent hash of the logical contents of
//! the database (each live key's namespace, name, type, expiry and value or members), computed
//! on a snapshot and tagged with the sequence that snapshot reflects.
//!
//! Physical state does not enter it: expired-but-not-yet-compacted keys, orphaned sub-keys of
//! deleted versions, the metadata encoding (32- or 64-bit), list index offsets, the score column
//! family of sorted sets (derived from the members), pub/sub and propagate records. Two nodes
//! with the same logical data give the same digest, whatever their compaction state.

use rocksdb::{Direction, IteratorMode, ReadOptions};
use xxhash_rust::xxh3::Xxh3;

use crate::encoding::{now_ms, Metadata, RedisType};
use crate::{ColumnFamily, Engine, StorageError};

/// The result of a digest over some slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// 32 hex characters; all zeros for an empty range.
    pub hex: String,
    /// The engine sequence the snapshot reflects.
    pub sequence: u64,
    /// Live keys counted.
    pub keys: u64,
}

/// Inclusive slot ranges to include; empty means every key.
pub type SlotRanges = [(u16, u16)];

pub(crate) struct KeyParts<'a> {
    namespace: &'a [u8],
    user_key: &'a [u8],
    /// `ns_len | ns | [slot]`, the prefix sub-keys share with the metadata key.
    prefix: &'a [u8],
}

impl KeyParts<'_> {
    /// What every sub-key of this key's `version` starts with:
    /// `ns_len | ns | [slot] | key_len:u32 | key | version`.
    pub(crate) fn subkey_prefix(&self, version: u64) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.prefix.len() + 12 + self.user_key.len());
        p.extend_from_slice(self.prefix);
        p.extend_from_slice(&(self.user_key.len() as u32).to_be_bytes());
        p.extend_from_slice(self.user_key);
        p.extend_from_slice(&version.to_be_bytes());
        p
    }
}

pub(crate) fn split_metadata_key(mk: &[u8], slot_encoded: bool) -> Option<KeyParts<'_>> {
    let ns_len = *mk.first()? as usize;
    let namespace = mk.get(1..1 + ns_len)?;
    let head = 1 + ns_len + if slot_encoded { 2 } else { 0 };
    Some(KeyParts {
        namespace,
        user_key: mk.get(head..)?,
        prefix: mk.get(..head)?,
    })
}

fn put_bytes(h: &mut Xxh3, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

/// Hashes one key's logical value into `h`. `meta_raw` is its metadata record.
fn hash_key(
    engine: &Engine,
    read: impl Fn() -> ReadOptions,
    parts: &KeyParts<'_>,
    meta: &Metadata,
    h: &mut Xxh3,
) -> Result<u64, StorageError> {
    put_bytes(h, parts.namespace);
    put_bytes(h, parts.user_key);
    h.update(&[meta.kind as u8]);
    h.update(&meta.expire_ms.to_le_bytes());
    if meta.kind.is_single_kv() {
        put_bytes(h, &meta.payload);
        return Ok(meta.payload.len() as u64);
    }
    h.update(&meta.size.to_le_bytes());
    let sub_prefix = parts.subkey_prefix(meta.version);
    let cf = if meta.kind == RedisType::Stream {
        ColumnFamily::Stream
    } else {
        ColumnFamily::Default
    };
    // HyperLogLog and other types with extras after `size` keep part of their value there.
    if meta.kind != RedisType::List {
        put_bytes(h, &meta.payload);
    }
    let mut opts = read();
    // Every sub-key of this version is `sub_prefix ++ sub`: bound the scan to that prefix.
    if let Some(upper) = crate::encoding::prefix_successor(&sub_prefix) {
        opts.set_iterate_upper_bound(upper);
    }
    let iter = engine.db().iterator_cf_opt(
        engine.cf(cf),
        opts,
        IteratorMode::From(&sub_prefix, Direction::Forward),
    );
    let mut read_bytes = meta.payload.len() as u64;
    for item in iter {
        let (k, v) = item?;
        let Some(sub) = k.strip_prefix(sub_prefix.as_slice()) else {
            break;
        };
        read_bytes += (k.len() + v.len()) as u64;
        // A list's positions are relative to its head, so only the order of values counts.
        if meta.kind != RedisType::List {
            put_bytes(h, sub);
        }
        put_bytes(h, &v);
    }
    Ok(read_bytes)
}

fn in_ranges(ranges: &SlotRanges, slot: u16) -> bool {
    ranges.is_empty() || ranges.iter().any(|&(a, b)| a <= slot && slot <= b)
}

/// The digest of one key, or None if it does not exist (DEBUG DIGEST-VALUE).
pub fn key_digest(
    engine: &Engine,
    metadata_key: &[u8],
    slot_encoded: bool,
) -> Result<Option<String>, StorageError> {
    let (snap, _) = engine.snapshot_at_sequence();
    let read = || {
        let mut o = ReadOptions::default();
        o.set_snapshot(&snap);
        o
    };
    let Some(raw) =
        engine
            .db()
            .get_cf_opt(engine.cf(ColumnFamily::Metadata), metadata_key, &read())?
    else {
        return Ok(None);
    };
    let meta = Metadata::decode(&raw)?;
    if meta.is_dead(now_ms()) {
        return Ok(None);
    }
    let Some(parts) = split_metadata_key(metadata_key, slot_encoded) else {
        return Ok(None);
    };
    let mut h = Xxh3::new();
    hash_key(engine, read, &parts, &meta, &mut h)?;
    Ok(Some(format!("{:032x}", h.digest128())))
}

/// Kvrocks' record of the namespaces, in the propagate column family.
pub const NAMESPACE_RECORD: &[u8] = b"__namespace_keys__";

/// The digest of every live key whose slot is in `ranges` (all keys if empty).
pub fn digest(
    engine: &Engine,
    slot_encoded: bool,
    ranges: &SlotRanges,
) -> Result<Digest, StorageError> {
    let (snap, sequence) = engine.snapshot_at_sequence();
    let read = || {
        let mut o = ReadOptions::default();
        o.set_snapshot(&snap);
        o
    };
    let now = now_ms();
    let mut sum: u128 = 0;
    let mut keys = 0u64;
    // With slots in the keys (cluster mode, one namespace) a range is a contiguous key range:
    // only it is read. Otherwise every key is read and filtered by its slot.
    let spans: Vec<(Vec<u8>, Option<Vec<u8>>)> = if slot_encoded && !ranges.is_empty() {
        let codec = crate::encoding::KeyCodec::new(crate::encoding::DEFAULT_NAMESPACE, true);
        ranges
            .iter()
            .map(|&(a, b)| {
                let (lo, hi) = codec.slot_range_bounds(a, b);
                (lo, Some(hi))
            })
            .collect()
    } else {
        vec![(Vec::new(), None)]
    };
    for (lo, hi) in spans {
        let span = Span {
            lo: &lo,
            hi: hi.as_deref(),
        };
        let (s, k) = sum_span(engine, &read, span, slot_encoded, ranges, now, &mut |_| {
            Ok(())
        })?;
        sum = sum.wrapping_add(s);
        keys += k;
    }
    // The whole database's digest covers Kvrocks' namespace record (`repl-namespace-enabled`),
    // so that a replica proves it has its master's namespaces too. It is not a key: `keys`
    // does not count it.
    if ranges.is_empty() {
        let record = engine.db().get_cf_opt(
            engine.cf(ColumnFamily::Propagate),
            NAMESPACE_RECORD,
            &read(),
        )?;
        if let Some(v) = record {
            let mut h = Xxh3::new();
            put_bytes(&mut h, NAMESPACE_RECORD);
            put_bytes(&mut h, &v);
            sum = sum.wrapping_add(h.digest128());
        }
    }
    Ok(Digest {
        hex: format!("{sum:032x}"),
        sequence,
        keys,
    })
}

/// A span of the metadata column family: `[lo, hi)`, or from `lo` to the end.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    pub lo: &'a [u8],
    pub hi: Option<&'a [u8]>,
}

/// Adds up the hashes of the live keys in `span` whose slot is in `ranges`, judged live at
/// `now`. `pace` is told the bytes each key read; an error from it stops the walk.
fn sum_span(
    engine: &Engine,
    read: &dyn Fn() -> ReadOptions,
    span: Span<'_>,
    slot_encoded: bool,
    ranges: &SlotRanges,
    now: u64,
    pace: &mut dyn FnMut(u64) -> Result<(), StorageError>,
) -> Result<(u128, u64), StorageError> {
    let mut sum: u128 = 0;
    let mut keys = 0u64;
    let mut opts = read();
    if let Some(hi) = span.hi {
        opts.set_iterate_upper_bound(hi);
    }
    let iter = engine.db().iterator_cf_opt(
        engine.cf(ColumnFamily::Metadata),
        opts,
        IteratorMode::From(span.lo, Direction::Forward),
    );
    for item in iter {
        let (mk, raw) = item?;
        let Some(parts) = split_metadata_key(&mk, slot_encoded) else {
            continue;
        };
        if !ranges.is_empty() {
            let slot = if slot_encoded {
                u16::from_be_bytes([mk[1 + parts.namespace.len()], mk[2 + parts.namespace.len()]])
            } else {
                crate::slot::key_slot(parts.user_key)
            };
            if !in_ranges(ranges, slot) {
                continue;
            }
        }
        let mut h = Xxh3::new();
        let mut read_bytes = (mk.len() + raw.len()) as u64;
        match Metadata::decode(&raw) {
            Ok(meta) => {
                if meta.is_dead(now) {
                    pace(read_bytes)?;
                    continue;
                }
                read_bytes += hash_key(engine, read, &parts, &meta, &mut h)?;
            }
            // A type this version cannot decode still counts, by its raw record.
            Err(_) => {
                put_bytes(&mut h, &mk);
                put_bytes(&mut h, &raw);
            }
        }
        // Addition is order-independent, and unlike XOR two equal keys do not cancel out.
        sum = sum.wrapping_add(h.digest128());
        keys += 1;
        pace(read_bytes)?;
    }
    Ok((sum, keys))
}

/// The digest of the live keys in `span` on `snapshot`, judged live at `now_ms` (the master's
/// clock, so that both sides of a verification judge expiry alike). `pace` is told the bytes
/// read after each key; an error from it stops the walk.
pub fn span_digest(
    engine: &Engine,
    snapshot: &rocksdb::SnapshotWithThreadMode<'_, rocksdb::DB>,
    span: Span<'_>,
    slot_encoded: bool,
    now_ms: u64,
    pace: &mut dyn FnMut(u64) -> Result<(), StorageError>,
) -> Result<(String, u64), StorageError> {
    let read = || {
        let mut o = ReadOptions::default();
        o.set_snapshot(snapshot);
        o
    };
    let (sum, keys) = sum_span(engine, &read, span, slot_encoded, &[], now_ms, pace)?;
    Ok((format!("{sum:032x}"), keys))
}

/// Where a verification slice that starts at `lo` ends: after about `max_keys` metadata
/// records, and at a slot boundary when keys hold their slot (so that cluster mode checks
/// whole slots). None: the slice runs to the end of the keyspace.
pub fn slice_end(
    engine: &Engine,
    lo: &[u8],
    max_keys: usize,
    slot_encoded: bool,
) -> Result<Option<Vec<u8>>, StorageError> {
    let mut iter = engine
        .db()
        .raw_iterator_cf(engine.cf(ColumnFamily::Metadata));
    iter.seek(lo);
    for _ in 0..max_keys.max(1) {
        if !iter.valid() {
            iter.status()?;
            return Ok(None);
        }
        iter.next();
    }
    if !iter.valid() {
        iter.status()?;
        return Ok(None);
    }
    let next = iter.key().unwrap_or_default().to_vec();
    if !slot_encoded {
        return Ok(Some(next));
    }
    let Some(ns_end) = next.first().map(|&n| 1 + n as usize) else {
        return Ok(Some(next));
    };
    let Some(slot) = next
        .get(ns_end..ns_end + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
    else {
        return Ok(Some(next));
    };
    let slot_start = |slot: u16| {
        let mut k = next[..ns_end].to_vec();
        k.extend_from_slice(&slot.to_be_bytes());
        k
    };
    let start = slot_start(slot);
    if start.as_slice() > lo {
        return Ok(Some(start));
    }
    // The whole slice so far is one slot: it ends where the next slot starts.
    if slot + 1 < crate::slot::SLOT_COUNT {
        Ok(Some(slot_start(slot + 1)))
    } else {
        Ok(crate::encoding::prefix_successor(&next[..ns_end]))
    }
}
