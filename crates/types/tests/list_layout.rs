//! The bytes quarry writes for a list are Kvrocks' (kvrocks-compat.md §1.4): after
//! `RPUSH l a b c`, Kvrocks 2.10.1 wrote head 0x7FFF_FFFF_FFFF_FFFF, tail 0x8000_0000_0000_0002
//! and the elements at the indexes from head on (tests/fixtures, batch 8).

use std::sync::Arc;

use quarry_storage::encoding::{KeyCodec, Metadata, RedisType};
use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role};
use quarry_types::{Db, End};

#[test]
fn rpush_then_lpush_write_kvrocks_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(&EngineOptions::new(dir.path())).unwrap());
    engine.gate().set_role(Role::Master);
    let db = Db::new(engine.clone(), KeyCodec::standalone());
    db.push(b"l", End::Right, &[b"a", b"b", b"c"], false)
        .unwrap();
    let codec = KeyCodec::standalone();
    let raw = engine
        .get(ColumnFamily::Metadata, &codec.metadata_key(b"l"))
        .unwrap()
        .unwrap()
        .to_vec();
    let meta = Metadata::decode(&raw).unwrap();
    assert_eq!((meta.kind, meta.size), (RedisType::List, 3));
    assert_eq!(
        hex::encode(&meta.payload),
        "7fffffffffffffff8000000000000002"
    );
    for (index, value) in [
        (0x7fff_ffff_ffff_ffffu64, "a"),
        (1 << 63, "b"),
        ((1 << 63) + 1, "c"),
    ] {
        let k = codec.subkey(b"l", meta.version, &index.to_be_bytes());
        assert_eq!(
            &*engine.get(ColumnFamily::Default, &k).unwrap().unwrap(),
            value.as_bytes()
        );
    }
    // LPUSH z: written at head - 1, as Kvrocks' batch 12 shows.
    db.push(b"l", End::Left, &[b"z"], false).unwrap();
    let meta = Metadata::decode(
        &engine
            .get(ColumnFamily::Metadata, &codec.metadata_key(b"l"))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        hex::encode(&meta.payload),
        "7ffffffffffffffe8000000000000002"
    );
    let k = codec.subkey(b"l", meta.version, &0x7fff_ffff_ffff_fffeu64.to_be_bytes());
    assert_eq!(
        &*engine.get(ColumnFamily::Default, &k).unwrap().unwrap(),
        b"z"
    );
}
