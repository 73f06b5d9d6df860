//! Compaction filters: how expired and deleted data physically leaves the disk
//! (kvrocks-compat.md §1.5). There is no active expiry; reads treat dead records as missing.

use rocksdb::compaction_filter::Decision;
use rocksdb::Options;

use crate::encoding::{now_ms, Metadata};
use crate::engine::ColumnFamily;

/// Installs the filter that belongs to `cf`, if it has one.
pub(crate) fn install(cf: ColumnFamily, opts: &mut Options) {
    match cf {
        ColumnFamily::Metadata => opts.set_compaction_filter("quarry.metadata", metadata_filter),
        ColumnFamily::PubSub => {
            opts.set_compaction_filter("quarry.pubsub", |_, _, _| Decision::Remove)
        }
        ColumnFamily::Propagate => opts.set_compaction_filter("quarry.propagate", propagate_filter),
        // Sub-key column families get Kvrocks' SubKeyFilter together with the types that write
        // sub-keys; until then they hold nothing that quarry wrote.
        _ => {}
    }
}

/// Drops metadata records that read as missing: expired, or a collection with no elements.
/// A record that does not decode is kept: compaction must never destroy what it cannot read.
fn metadata_filter(_level: u32, _key: &[u8], value: &[u8]) -> Decision {
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
