//! Pins quarry's encodings and batch decoder against bytes that Kvrocks 2.10.1 wrote
//! (`tests/fixtures/kvrocks-2.10.1`, copied from the shared fixtures).

use std::collections::BTreeMap;
use std::path::PathBuf;

use quarry_storage::batch::{self, BatchRecord};
use quarry_storage::encoding::{KeyCodec, Metadata, RedisType, DEFAULT_NAMESPACE};
use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role, WriteBatch, WriteOrigin};

fn fixture(mode: &str, file: &str) -> String {
    // Read at run time: a test binary built from another checkout of the same sources (a
    // shared build cache) must not read that checkout's fixtures.
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path: PathBuf = [
        root.as_str(),
        "..",
        "..",
        "tests",
        "fixtures",
        "kvrocks-2.10.1",
        mode,
        file,
    ]
    .iter()
    .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).expect("hex")
}

type Record = (Vec<u8>, Vec<u8>);

/// `column family -> [(key, value)]` in file order.
fn contents(mode: &str) -> BTreeMap<String, Vec<Record>> {
    let mut out: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for line in fixture(mode, "rocksdb-contents.tsv").lines() {
        let mut f = line.split('\t');
        let cf = f.next().unwrap().to_string();
        let key = unhex(f.next().unwrap());
        let value = unhex(f.next().unwrap_or(""));
        out.entry(cf).or_default().push((key, value));
    }
    out
}

fn final_sequence(mode: &str) -> u64 {
    fixture(mode, "sequence.txt")
        .trim()
        .trim_start_matches("sequence:")
        .parse()
        .unwrap()
}

fn codec(mode: &str) -> KeyCodec {
    KeyCodec::new(DEFAULT_NAMESPACE, mode == "cluster")
}

#[test]
fn wal_batches_decode_and_chain_without_gaps() {
    for mode in ["standalone", "cluster"] {
        let mut next = 1;
        for line in fixture(mode, "wal-batches.hex").lines() {
            let bytes = unhex(line);
            let b = batch::decode(&bytes).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(b.sequence, next, "{mode}: batches must follow each other");
            next = b.sequence + b.count as u64;
        }
        assert_eq!(next - 1, final_sequence(mode), "{mode}");
    }
}

#[test]
fn string_batch_carries_kvrocks_log_data_marker() {
    let first = unhex(
        fixture("standalone", "wal-batches.hex")
            .lines()
            .next()
            .unwrap(),
    );
    let b = batch::decode(&first).unwrap();
    assert_eq!(b.records[0], BatchRecord::LogData(b"1"));
    assert!(matches!(b.records[1], BatchRecord::Put { cf: 1, .. }));
}

#[test]
fn every_metadata_record_decodes_and_reencodes_to_the_same_bytes() {
    for mode in ["standalone", "cluster"] {
        let codec = codec(mode);
        let all = contents(mode);
        let mut by_key = BTreeMap::new();
        for (key, value) in &all["metadata"] {
            let m = Metadata::decode(value).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(&m.encode(), value, "{mode}: re-encoding changes bytes");
            let user = codec
                .user_key_of(key)
                .expect("key in the default namespace")
                .to_vec();
            assert_eq!(codec.metadata_key(&user), *key, "{mode}: key encoding");
            by_key.insert(user, m);
        }
        let get = |k: &str| {
            by_key
                .get(k.as_bytes())
                .unwrap_or_else(|| panic!("{mode}: {k} missing"))
        };
        assert_eq!(get("str").payload, b"hello");
        assert_eq!(get("num").payload, b"12346", "INCR inside MULTI");
        assert_eq!(get("{tag}a").payload, b"1");
        // Expiry times are absolute Unix milliseconds from the day Kvrocks ran (2026-11-26):
        // `SET ttlkey v PX 100000000` and `EXPIRE h 100000` a moment later, so both ran out on
        // 2026-11-27. Pinned to the bytes, not compared with today.
        let (ttlkey_expire, h_expire) = match mode {
            "standalone" => (1_795_756_155_988, 1_795_756_155_988),
            _ => (1_795_756_156_174, 1_795_756_156_175),
        };
        assert_eq!(get("ttlkey").expire_ms, ttlkey_expire, "{mode}");
        let h = get("h");
        assert_eq!((h.kind, h.size), (RedisType::Hash, 2));
        assert_eq!(h.expire_ms, h_expire, "{mode}: EXPIRE h");
        assert_eq!(get("str").expire_ms, 0, "{mode}: no TTL");
        let l = get("l");
        assert_eq!((l.kind, l.size), (RedisType::List, 3), "4 pushed, 1 popped");
        assert_eq!((get("s").kind, get("s").size), (RedisType::Set, 2));
        assert_eq!((get("z").kind, get("z").size), (RedisType::ZSet, 3));
        assert_eq!((get("si").kind, get("si").size), (RedisType::SortedInt, 3));
        assert_eq!(get("st").kind, RedisType::Stream);
        assert_eq!(get("hll").kind, RedisType::HyperLogLog);
        assert_eq!(get("bf").kind, RedisType::Bloom);
        assert_eq!(get("j").kind, RedisType::Json);
        assert_eq!((get("bm").kind, get("bm").size), (RedisType::Bitmap, 1251));
        assert!(!by_key.contains_key(&b"gone"[..]), "DEL leaves no metadata");
        assert_eq!(by_key.len(), 16);
    }
}

#[test]
fn subkeys_are_built_from_key_and_version() {
    for mode in ["standalone", "cluster"] {
        let codec = codec(mode);
        let all = contents(mode);
        let meta = |k: &[u8]| {
            let (_, v) = all["metadata"]
                .iter()
                .find(|(key, _)| *key == codec.metadata_key(k))
                .unwrap();
            Metadata::decode(v).unwrap()
        };
        let defaults: Vec<&Vec<u8>> = all["default"].iter().map(|(k, _)| k).collect();
        let h = meta(b"h");
        for field in [&b"f1"[..], b"f2"] {
            assert!(
                defaults.contains(&&codec.subkey(b"h", h.version, field)),
                "{mode}: hash field"
            );
        }
        let s = meta(b"s");
        assert!(
            defaults.contains(&&codec.subkey(b"s", s.version, b"m1")),
            "{mode}: set member"
        );
        let l = meta(b"l");
        let mut idx = (1u64 << 63).to_be_bytes().to_vec();
        let pos = defaults
            .iter()
            .position(|k| **k == codec.subkey(b"l", l.version, &idx));
        assert!(pos.is_some(), "{mode}: list element at 2^63");
        idx = ((1u64 << 63) - 2).to_be_bytes().to_vec();
        assert!(
            !defaults.contains(&&codec.subkey(b"l", l.version, &idx)),
            "{mode}: popped element gone"
        );
    }
}

#[test]
fn replaying_kvrocks_wal_rebuilds_the_same_database_and_sequence() {
    for mode in ["standalone", "cluster"] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&EngineOptions::new(dir.path())).unwrap();
        engine.gate().set_role(Role::Replica);
        for line in fixture(mode, "wal-batches.hex").lines() {
            let batch = WriteBatch::from_data(&unhex(line));
            engine.write(batch, WriteOrigin::Replication).unwrap();
        }
        assert_eq!(
            engine.latest_sequence(),
            final_sequence(mode),
            "{mode}: replica sequence equals master's"
        );
        let want = contents(mode);
        for cf in ColumnFamily::ALL {
            let got: Vec<Record> = engine
                .db()
                .iterator_cf(engine.cf(cf), quarry_storage::rocksdb::IteratorMode::Start)
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            let expected = want.get(cf.name()).cloned().unwrap_or_default();
            assert_eq!(got, expected, "{mode}: column family {}", cf.name());
        }
    }
}

#[test]
fn the_write_gate_refuses_local_writes_on_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&EngineOptions::new(dir.path())).unwrap();
    let before = engine.latest_sequence();
    let mut batch = WriteBatch::default();
    batch.put_cf(engine.cf(ColumnFamily::Metadata), b"k", b"v");
    assert!(
        engine.write(batch, WriteOrigin::Local).is_err(),
        "role not decided yet"
    );
    engine.gate().set_role(Role::Replica);
    let mut batch = WriteBatch::default();
    batch.put_cf(engine.cf(ColumnFamily::Metadata), b"k", b"v");
    assert!(engine.write(batch, WriteOrigin::Local).is_err());
    assert_eq!(
        engine.latest_sequence(),
        before,
        "refused writes leave the sequence alone"
    );
}

/// Number of records in `cf` that belong to `key` at the version its fixture metadata had.
fn subkeys_of(
    engine: &Engine,
    cf: ColumnFamily,
    codec: &KeyCodec,
    key: &[u8],
    version: u64,
) -> usize {
    let prefix = codec.subkey_prefix(key, version);
    engine
        .db()
        .iterator_cf(engine.cf(cf), quarry_storage::rocksdb::IteratorMode::Start)
        .filter(|r| r.as_ref().unwrap().0.starts_with(&prefix))
        .count()
}

#[test]
fn compaction_drops_subkeys_of_deleted_overwritten_and_long_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&EngineOptions::new(dir.path())).unwrap();
    engine.gate().set_role(Role::Replica);
    for line in fixture("standalone", "wal-batches.hex").lines() {
        engine
            .write(
                WriteBatch::from_data(&unhex(line)),
                WriteOrigin::Replication,
            )
            .unwrap();
    }
    engine.gate().set_role(Role::Master);
    let codec = codec("standalone");
    let meta = |k: &[u8]| {
        Metadata::decode(
            &engine
                .get(ColumnFamily::Metadata, &codec.metadata_key(k))
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    };
    let (h, s, l, z, si) = (meta(b"h"), meta(b"s"), meta(b"l"), meta(b"z"), meta(b"si"));
    let now = quarry_storage::encoding::now_ms();
    let mut batch = WriteBatch::default();
    let md = engine.cf(ColumnFamily::Metadata);
    batch.put_cf(
        md,
        codec.metadata_key(b"h"),
        Metadata::encode_string(b"now a string", 0),
    ); // overwritten
    batch.delete_cf(md, codec.metadata_key(b"s")); // deleted
    let mut expired = z.clone();
    expired.expire_ms = now - 10 * 60 * 1000; // expired beyond the grace period
    batch.put_cf(md, codec.metadata_key(b"z"), expired.encode());
    let mut recent = si.clone();
    recent.expire_ms = now - 60 * 1000; // expired within the grace period
    batch.put_cf(md, codec.metadata_key(b"si"), recent.encode());
    engine.write(batch, WriteOrigin::Local).unwrap();
    let before = (
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"h", h.version),
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"s", s.version),
        subkeys_of(&engine, ColumnFamily::ZSetScore, &codec, b"z", z.version),
    );
    assert_eq!(before, (2, 2, 3), "nothing is dropped before compaction");
    engine.flush().unwrap();
    engine.compact_all();
    assert_eq!(
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"h", h.version),
        0,
        "overwritten by a string"
    );
    assert_eq!(
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"s", s.version),
        0,
        "deleted"
    );
    assert_eq!(
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"z", z.version),
        0,
        "expired long ago"
    );
    assert_eq!(
        subkeys_of(&engine, ColumnFamily::ZSetScore, &codec, b"z", z.version),
        0,
        "score index too"
    );
    assert_eq!(
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"si", si.version),
        3,
        "grace period"
    );
    assert_eq!(
        subkeys_of(&engine, ColumnFamily::Default, &codec, b"l", l.version),
        3,
        "live list untouched"
    );
}
