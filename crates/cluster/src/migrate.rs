//! The data side of slot migration (kvrocks-compat.md §3.6): which records of a WAL batch
//! belong to a slot range, re-encoded as a batch for the destination.

use quarry_storage::batch::{self, BatchBuilder, BatchRecord};
use quarry_storage::encoding::KeyCodec;

/// Column families that hold key data (metadata, sub-keys, zset scores, streams).
pub const DATA_CFS: [u32; 4] = [0, 1, 2, 5];

/// The slot of an internal key (metadata key or sub-key) in the cluster layout
/// `ns_len | ns | slot:u16 BE | ...`.
pub fn slot_of_internal_key(key: &[u8]) -> Option<u16> {
    let ns_len = *key.first()? as usize;
    let b = key.get(1 + ns_len..3 + ns_len)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

pub fn in_range(range: (u16, u16), slot: u16) -> bool {
    range.0 <= slot && slot <= range.1
}

/// Calls `each` with the records of a WAL batch that touch `range`'s key data (column family,
/// key, and the value, None for a deletion). A range deletion over key data (FLUSHDB,
/// FLUSHALL) cannot be split by slot, nor a merge record be moved: they are errors, and the
/// migration fails rather than leave the destination with keys the source dropped.
fn for_each_in_range<'a>(
    data: &'a [u8],
    range: (u16, u16),
    mut each: impl FnMut(u32, &'a [u8], Option<&'a [u8]>),
) -> Result<(), String> {
    let decoded = batch::decode(data).map_err(|e| e.to_string())?;
    let ours = |cf: u32, key: &[u8]| {
        DATA_CFS.contains(&cf) && slot_of_internal_key(key).is_some_and(|s| in_range(range, s))
    };
    for rec in decoded.records {
        match rec {
            BatchRecord::Put { cf, key, value } if ours(cf, key) => each(cf, key, Some(value)),
            BatchRecord::Delete { cf, key } | BatchRecord::SingleDelete { cf, key }
                if ours(cf, key) =>
            {
                each(cf, key, None)
            }
            BatchRecord::Merge { cf, key, .. } if ours(cf, key) => {
                return Err("a merge record cannot be migrated".into())
            }
            BatchRecord::DeleteRange { cf, begin, end }
                if DATA_CFS.contains(&cf) && overlaps(begin, end, range) =>
            {
                return Err(
                    "the source deleted a key range (FLUSHDB/FLUSHALL) during the migration".into(),
                )
            }
            _ => {}
        }
    }
    Ok(())
}

/// The records of a WAL batch that touch `range`, as a new raw batch (None if there are none).
pub fn filter_wal_batch(data: &[u8], range: (u16, u16)) -> Result<Option<Vec<u8>>, String> {
    let mut out = BatchBuilder::new();
    for_each_in_range(data, range, |cf, key, value| match value {
        Some(v) => out.put(cf, key, v),
        None => out.delete(cf, key),
    })?;
    Ok((!out.is_empty()).then(|| out.finish()))
}

/// The user keys of `range` a WAL batch writes or deletes, added to `out` (for a migration that
/// sends commands: it sends each such key's state again).
pub fn touched_keys(
    data: &[u8],
    range: (u16, u16),
    out: &mut std::collections::BTreeSet<Vec<u8>>,
) -> Result<(), String> {
    for_each_in_range(data, range, |cf, key, _| {
        if let Some(user_key) = quarry_storage::encoding::user_key_in(key, cf == 1, true) {
            out.insert(user_key.to_vec());
        }
    })
}

/// Whether the deleted key range `[begin, end)` reaches into the slots of `range`.
fn overlaps(begin: &[u8], end: &[u8], range: (u16, u16)) -> bool {
    let Some(&ns_len) = begin.first() else {
        return true;
    };
    let Some(ns) = begin.get(1..1 + ns_len as usize) else {
        return true;
    };
    let (lower, upper) = KeyCodec::new(ns, true).slot_range_bounds(range.0, range.1);
    begin < upper.as_slice() && end > lower.as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(slot: u16, rest: &[u8]) -> Vec<u8> {
        let mut k = vec![2, b'n', b's'];
        k.extend_from_slice(&slot.to_be_bytes());
        k.extend_from_slice(rest);
        k
    }

    #[test]
    fn touched_keys_are_the_user_keys_of_the_range() {
        let codec = KeyCodec::new(b"", true);
        let slot = |k: &[u8]| quarry_storage::slot::key_slot(k);
        let (a, b) = (&b"apple"[..], &b"banana"[..]);
        let range = (slot(a), slot(a));
        assert_ne!(slot(a), slot(b));
        let mut batch = BatchBuilder::new();
        batch.put(1, &codec.metadata_key(a), b"m");
        batch.put(0, &codec.subkey(a, 7, b"field"), b"v");
        batch.delete(1, &codec.metadata_key(b));
        let mut out = std::collections::BTreeSet::new();
        touched_keys(&batch.finish(), range, &mut out).unwrap();
        assert_eq!(out.into_iter().collect::<Vec<_>>(), [a.to_vec()]);
    }

    #[test]
    fn keeps_only_the_range() {
        let mut b = BatchBuilder::new();
        b.put(1, &key(5, b"a"), b"meta");
        b.put(0, &key(5, b"sub"), b"v");
        b.put(1, &key(9, b"b"), b"other");
        b.delete(2, &key(6, b"z"));
        b.put(4, b"replication_id_", b"X");
        let raw = b.finish();
        let kept = filter_wal_batch(&raw, (5, 6)).unwrap().unwrap();
        let d = batch::decode(&kept).unwrap();
        assert_eq!(d.count, 3);
        assert!(filter_wal_batch(&raw, (100, 200)).unwrap().is_none());
        assert_eq!(slot_of_internal_key(&key(16383, b"")), Some(16383));
        // A range deletion fails the migration only where it reaches into the range.
        let mut b = BatchBuilder::new();
        b.put(1, &key(5, b"a"), b"meta");
        let mut raw = b.finish();
        raw.push(0x0E);
        raw.push(1);
        for k in [key(100, b""), key(200, b"")] {
            raw.push(k.len() as u8);
            raw.extend_from_slice(&k);
        }
        raw[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(filter_wal_batch(&raw, (5, 6)).unwrap().is_some());
        assert!(filter_wal_batch(&raw, (150, 150)).is_err());
    }
}
