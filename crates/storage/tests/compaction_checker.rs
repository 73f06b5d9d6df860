//! The compaction checker (Kvrocks' `compaction-checker-cron`): an SST file made mostly of
//! deletions is compacted away; files without them are left alone.

use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role, WriteBatch, WriteOrigin};

fn deletions(engine: &Engine) -> u64 {
    engine
        .db()
        .live_files()
        .unwrap()
        .iter()
        .filter(|f| f.column_family_name == "metadata")
        .map(|f| f.num_deletions)
        .sum()
}

#[test]
fn a_file_of_deletions_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = EngineOptions::new(dir.path());
    opts.disable_auto_compactions = true;
    let engine = Engine::open(&opts).unwrap();
    engine.gate().set_role(Role::Master);
    let meta = |k: u32| format!("\x0b__namespacekey{k:06}").into_bytes();
    let mut b = WriteBatch::default();
    for k in 0..2000 {
        b.put_cf(
            engine.cf(ColumnFamily::Metadata),
            meta(k),
            b"\x81\0\0\0\0\0\0\0\0v",
        );
    }
    engine.write(b, WriteOrigin::Local).unwrap();
    engine.flush().unwrap();
    // Nothing to do yet: no file holds deletions.
    let compacted = engine.check_compaction(std::time::Duration::ZERO, 0.1);
    assert!(compacted.is_empty(), "{compacted:?}");
    let mut b = WriteBatch::default();
    for k in 0..1500 {
        b.delete_cf(engine.cf(ColumnFamily::Metadata), meta(k));
    }
    engine.write(b, WriteOrigin::Local).unwrap();
    engine.flush().unwrap();
    assert_eq!(deletions(&engine), 1500);
    let compacted = engine.check_compaction(std::time::Duration::ZERO, 0.1);
    assert!(!compacted.is_empty());
    // The tombstones and what they deleted are gone; the rest reads on.
    assert_eq!(deletions(&engine), 0);
    let left = engine
        .db()
        .iterator_cf(
            engine.cf(ColumnFamily::Metadata),
            quarry_storage::rocksdb::IteratorMode::Start,
        )
        .count();
    assert_eq!(left, 500);
    // Files younger than the age limit (and than an hour) are left alone.
    let mut b = WriteBatch::default();
    for k in 1500..1700 {
        b.delete_cf(engine.cf(ColumnFamily::Metadata), meta(k));
    }
    engine.write(b, WriteOrigin::Local).unwrap();
    engine.flush().unwrap();
    let compacted = engine.check_compaction(std::time::Duration::from_secs(3600), 0.1);
    assert!(compacted.is_empty(), "{compacted:?}");
}
