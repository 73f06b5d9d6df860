//! The bytes quarry writes for hashes and sorted sets are Kvrocks' (kvrocks-compat.md §1.3–1.4),
//! compared with what Kvrocks 2.10.1 wrote for the same commands (tests/fixtures).

use std::sync::Arc;

use quarry_storage::batch::{self, BatchRecord};
use quarry_storage::encoding::{KeyCodec, Metadata, RedisType};
use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role};
use quarry_types::Db;

/// A fresh standalone database, writable as a master (the directory lives as long as the tuple).
fn open() -> (tempfile::TempDir, Arc<Engine>, Db) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(&EngineOptions::new(dir.path())).unwrap());
    engine.gate().set_role(Role::Master);
    let db = Db::new(engine.clone(), KeyCodec::standalone());
    (dir, engine, db)
}

/// What `f` returns, and how many records it wrote (each takes a sequence number).
fn written<T>(engine: &Engine, f: impl FnOnce() -> T) -> (T, u64) {
    let before = engine.latest_sequence();
    let out = f();
    (out, engine.latest_sequence() - before)
}

#[test]
fn hset_writes_kvrocks_metadata_and_subkeys() {
    let (_dir, engine, db) = open();
    assert_eq!(
        db.hset(b"h", &[(b"f1", b"v1"), (b"f2", b"v2")], false)
            .unwrap(),
        2
    );

    let codec = KeyCodec::standalone();
    let raw = engine
        .get(ColumnFamily::Metadata, b"\x0b__namespaceh")
        .unwrap()
        .unwrap()
        .to_vec();
    // flags 0x82 (64-bit, hash) | expire 0 | version | size 2
    assert_eq!(raw[0], 0x82);
    assert_eq!(&raw[1..9], &[0; 8]);
    assert_eq!(&raw[17..25], &2u64.to_be_bytes());
    assert_eq!(raw.len(), 25);
    let meta = Metadata::decode(&raw).unwrap();
    assert_eq!((meta.kind, meta.size), (RedisType::Hash, 2));
    let version = meta.version;
    let mut want = b"\x0b__namespace\x00\x00\x00\x01h".to_vec();
    want.extend_from_slice(&version.to_be_bytes());
    want.extend_from_slice(b"f1");
    assert_eq!(codec.subkey(b"h", version, b"f1"), want);
    assert_eq!(
        &*engine.get(ColumnFamily::Default, &want).unwrap().unwrap(),
        b"v1"
    );

    // The WAL batch has Kvrocks' shape: LogData "2", the field puts in the default CF, then the
    // metadata put in CF 1.
    let mut updates = engine.db().get_updates_since(0).unwrap();
    let (_, wb) = updates.next().unwrap().unwrap();
    let decoded = batch::decode(wb.data()).unwrap();
    assert_eq!(decoded.records[0], BatchRecord::LogData(b"2"));
    assert!(matches!(decoded.records[1], BatchRecord::Put { cf: 0, .. }));
    assert!(matches!(
        decoded.records.last(),
        Some(BatchRecord::Put { cf: 1, .. })
    ));
    assert_eq!(decoded.count, 3);
}

/// `ZADD z 1.5 a -2 b 0 c` as Kvrocks wrote it (tests/fixtures, batch 14): the member records
/// hold the order-preserving score, the zset_score records are `score | member`.
#[test]
fn zadd_writes_kvrocks_member_and_score_records() {
    use quarry_types::ZAddFlags;
    let (_dir, engine, db) = open();
    let items: [(f64, &[u8]); 3] = [(1.5, b"a"), (-2.0, b"b"), (0.0, b"c")];
    assert_eq!(
        db.zadd(b"z", &items, ZAddFlags::default()).unwrap().added,
        3
    );
    let codec = KeyCodec::standalone();
    let meta = Metadata::decode(
        &engine
            .get(ColumnFamily::Metadata, &codec.metadata_key(b"z"))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!((meta.kind, meta.size), (RedisType::ZSet, 3));
    let member = |m: &[u8]| {
        engine
            .get(ColumnFamily::Default, &codec.subkey(b"z", meta.version, m))
            .unwrap()
            .unwrap()
            .to_vec()
    };
    assert_eq!(hex::encode(member(b"a")), "bff8000000000000");
    assert_eq!(hex::encode(member(b"b")), "3fffffffffffffff");
    assert_eq!(hex::encode(member(b"c")), "8000000000000000");
    let mut score_key = hex::decode("bff8000000000000").unwrap();
    score_key.push(b'a');
    let k = codec.subkey(b"z", meta.version, &score_key);
    assert_eq!(
        engine
            .get(ColumnFamily::ZSetScore, &k)
            .unwrap()
            .map(|v| v.to_vec()),
        Some(Vec::new())
    );
}

/// HSET writes only what changes, as Kvrocks' `Hash::MSet`: a field that already holds its
/// value is not written, the metadata only when fields are added, nothing at all when nothing
/// changes; a field named twice takes its last value (HSETNX too).
#[test]
fn hset_writes_only_what_changes() {
    let (_dir, engine, db) = open();
    let hset = |pairs: &[(&[u8], &[u8])], nx: bool| db.hset(b"h", pairs, nx).unwrap();

    // A new hash: both fields and the metadata.
    assert_eq!(
        written(&engine, || hset(&[(b"a", b"1"), (b"b", b"2")], false)),
        (2, 3)
    );
    // Unchanged values (one field, then several): nothing is written.
    assert_eq!(written(&engine, || hset(&[(b"a", b"1")], false)), (0, 0));
    assert_eq!(
        written(&engine, || hset(&[(b"a", b"1"), (b"b", b"2")], false)),
        (0, 0)
    );
    // A changed value: that field alone, the size is the same.
    assert_eq!(written(&engine, || hset(&[(b"a", b"9")], false)), (0, 1));
    // One new, one unchanged, one changed: two fields and the metadata.
    assert_eq!(
        written(&engine, || hset(
            &[(b"c", b"3"), (b"b", b"2"), (b"a", b"1")],
            false
        )),
        (1, 3)
    );
    assert_eq!(db.hlen(b"h").unwrap(), 3);
    assert_eq!(db.hget(b"h", b"a").unwrap().as_deref(), Some(&b"1"[..]));
    // A field named twice takes its last value, and counts once.
    assert_eq!(
        written(&engine, || hset(&[(b"d", b"x"), (b"d", b"y")], false)),
        (1, 2)
    );
    assert_eq!(db.hget(b"h", b"d").unwrap().as_deref(), Some(&b"y"[..]));
    // HSETNX: existing fields are left alone; a new field named twice takes its last value.
    assert_eq!(
        written(&engine, || hset(
            &[(b"a", b"no"), (b"e", b"p"), (b"e", b"q")],
            true
        )),
        (1, 2)
    );
    assert_eq!(db.hget(b"h", b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.hget(b"h", b"e").unwrap().as_deref(), Some(&b"q"[..]));
    assert_eq!(written(&engine, || hset(&[(b"a", b"no")], true)), (0, 0));
    assert_eq!(db.hlen(b"h").unwrap(), 5);
}

/// ZADD writes the metadata only when members are added (its size is what ZADD changes there),
/// as Kvrocks' `ZSet::Add`, and nothing for a score that stays.
#[test]
fn zadd_writes_the_metadata_only_when_members_are_added() {
    use quarry_types::ZAddFlags;
    let (_dir, engine, db) = open();
    let zadd = |items: &[(f64, &[u8])]| {
        let (out, records) = written(&engine, || db.zadd(b"z", items, ZAddFlags::default()));
        let out = out.unwrap();
        ((out.added, out.changed), records)
    };
    // Two new members: member and score records each, and the metadata.
    assert_eq!(zadd(&[(1.0, b"a"), (2.0, b"b")]), ((2, 0), 5));
    // A new score: the member's record, the old score record's delete and the new one.
    assert_eq!(zadd(&[(9.0, b"a")]), ((0, 1), 3));
    // The same score: nothing.
    assert_eq!(zadd(&[(9.0, b"a")]), ((0, 0), 0));
    // One added, one changed: five records and the metadata.
    assert_eq!(zadd(&[(3.0, b"c"), (8.0, b"a")]), ((1, 1), 6));
    assert_eq!(db.zcard(b"z").unwrap(), 3);
    assert_eq!(db.zscore(b"z", b"a").unwrap(), Some(8.0));
}
