//! The consistency digest reflects logical contents only, and the WAL reader never skips a
//! batch silently (rust-rocksdb-notes.md, traps 1 and 2).

use std::sync::Arc;

use quarry_storage::digest::{digest, key_digest};
use quarry_storage::encoding::{now_ms, KeyCodec, Metadata};
use quarry_storage::wal::{batch_ending_at, batch_replid, WalGap, WalReader};
use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role, WriteBatch, WriteOrigin};
use quarry_types::{Db, End};

fn open(dir: &std::path::Path) -> (Arc<Engine>, Db) {
    let mut opts = EngineOptions::new(dir);
    opts.wal_ttl_seconds = 0;
    opts.wal_size_limit_mb = 0;
    let engine = Arc::new(Engine::open(&opts).unwrap());
    engine.gate().set_role(Role::Master);
    let db = Db::new(engine.clone(), KeyCodec::standalone());
    (engine, db)
}

#[test]
fn the_digest_ignores_physical_state_and_sees_every_value() {
    let (da, db_dir, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (ea, a) = open(da.path());
    let (eb, b) = open(db_dir.path());
    let (ec, c) = open(dc.path());

    a.hset(b"h", &[(b"f1", b"v1"), (b"f2", b"v2")], false)
        .unwrap();
    a.push(b"l", End::Right, &[b"x", b"y"], false).unwrap();

    // B reaches the same contents another way: an older version of `h` whose sub-keys are now
    // orphans, a list pushed from the other end, and a key that has expired.
    b.hset(b"h", &[(b"old", b"gone")], false).unwrap();
    b.delete(&[b"h"]).unwrap();
    b.hset(b"h", &[(b"f2", b"v2"), (b"f1", b"v1")], false)
        .unwrap();
    b.push(b"l", End::Left, &[b"y", b"x"], false).unwrap();
    let mut batch = WriteBatch::default();
    batch.put_cf(
        eb.cf(ColumnFamily::Metadata),
        KeyCodec::standalone().metadata_key(b"expired"),
        Metadata::encode_string(b"v", now_ms() - 1000),
    );
    eb.write(batch, WriteOrigin::Local).unwrap();

    let (x, y) = (
        digest(&ea, false, &[]).unwrap(),
        digest(&eb, false, &[]).unwrap(),
    );
    assert_eq!((x.hex.clone(), x.keys), (y.hex.clone(), y.keys));
    assert_eq!(x.keys, 2);
    assert_ne!(x.sequence, y.sequence, "different physical histories");
    let mk = KeyCodec::standalone().metadata_key(b"h");
    assert_eq!(
        key_digest(&ea, &mk, false).unwrap(),
        key_digest(&eb, &mk, false).unwrap()
    );

    // One changed value changes the digest.
    c.hset(b"h", &[(b"f1", b"v1"), (b"f2", b"v3")], false)
        .unwrap();
    c.push(b"l", End::Right, &[b"x", b"y"], false).unwrap();
    assert_ne!(digest(&ec, false, &[]).unwrap().hex, x.hex);

    // Slot ranges select keys by their slot.
    let slot = quarry_storage::slot::key_slot(b"h");
    let only_h = digest(&ea, false, &[(slot, slot)]).unwrap();
    assert_eq!(only_h.keys, 1);
    assert_eq!(digest(&ea, false, &[(0, 16383)]).unwrap(), x);
    assert_eq!(
        digest(&ea, false, &[]).unwrap().sequence,
        ea.latest_sequence()
    );
}

#[test]
fn batches_are_found_by_their_boundaries_and_carry_the_replid() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, db) = open(dir.path());
    engine.set_replid(Some("ABCDEFGHIJ012345".into()));
    db.hset(b"h", &[(b"a", b"1"), (b"b", b"2")], false).unwrap(); // seq 1..=3
    db.hset(b"h", &[(b"c", b"3")], false).unwrap(); // seq 4..=5
    let first = batch_ending_at(engine.db(), 3).unwrap().unwrap();
    assert_eq!((first.seq, first.count), (1, 3));
    assert_eq!(
        batch_replid(&first.data).as_deref(),
        Some("ABCDEFGHIJ012345")
    );
    assert!(matches!(
        batch_ending_at(engine.db(), 2),
        Err(WalGap::NotABatchStart(3))
    ));
    assert_eq!(batch_ending_at(engine.db(), 5).unwrap().unwrap().seq, 4);

    let mut reader = WalReader::new(engine.db(), 1);
    assert_eq!(reader.read().unwrap().unwrap().seq, 1);
    assert_eq!(reader.read().unwrap().unwrap().seq, 4);
    assert!(reader.read().unwrap().is_none());
    // A start inside a batch is refused, never rounded to the next batch.
    assert!(matches!(
        WalReader::new(engine.db(), 2).read(),
        Err(WalGap::NotABatchStart(2))
    ));
}

#[test]
fn a_purged_wal_is_a_gap_not_a_later_start() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, db) = open(dir.path());
    for i in 0..10 {
        db.hset(b"h", &[(format!("f{i}").as_bytes(), b"v")], false)
            .unwrap();
    }
    // With no WAL retention, a flush lets RocksDB delete the WAL holding those batches.
    engine.flush().unwrap();
    db.hset(b"h", &[(b"late", b"v")], false).unwrap();
    let latest = engine.latest_sequence();
    let mut reader = WalReader::new(engine.db(), 1);
    let first = reader.read();
    assert!(matches!(first, Err(WalGap::NotABatchStart(1))), "{first:?}");
    // The batches still in the WAL are read from their exact start.
    let mut tail = WalReader::new(engine.db(), latest - 1);
    assert_eq!(tail.read().unwrap().unwrap().seq, latest - 1);
}

#[test]
fn the_reader_follows_the_wal_across_appends_and_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, db) = open(dir.path());
    let mut reader = WalReader::new(engine.db(), 1);
    let mut expected = 1;
    for round in 0..5 {
        for i in 0..20 {
            db.hset(b"h", &[(format!("{round}-{i}").as_bytes(), b"v")], false)
                .unwrap();
            // Tail after every write: the same iterator reads what was appended.
            let b = reader.read().unwrap().expect("the batch just written");
            assert_eq!(b.seq, expected);
            expected = b.seq + b.count;
        }
        assert!(reader.read().unwrap().is_none());
        // A flush switches to a new WAL file; the reader must move on to it.
        engine.flush().unwrap();
    }
    db.hset(b"h", &[(b"last", b"v")], false).unwrap();
    let mut last = None;
    for _ in 0..10 {
        if let Some(b) = reader.read().unwrap() {
            last = Some(b);
            break;
        }
    }
    assert_eq!(last.unwrap().seq, expected);
}
