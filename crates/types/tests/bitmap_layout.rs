//! SETBIT on a missing key writes Kvrocks' bitmap layout: 1024-byte fragments named by their
//! starting byte offset, bits least significant first, the metadata's size counting the bytes
//! in use. Reads turn it into the Redis-order string.

use std::sync::Arc;

use quarry_storage::encoding::{KeyCodec, Metadata, RedisType};
use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role};
use quarry_types::Db;

#[test]
fn setbit_writes_kvrocks_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(&EngineOptions::new(dir.path())).unwrap());
    engine.gate().set_role(Role::Master);
    let db = Db::new(engine.clone(), KeyCodec::standalone());
    assert_eq!(db.setbit(b"b", 0, true).unwrap(), 0);
    assert_eq!(db.setbit(b"b", 9, true).unwrap(), 0);
    assert_eq!(db.setbit(b"b", 8 * 1024 + 3, true).unwrap(), 0);
    let codec = KeyCodec::standalone();
    let raw = engine
        .get(ColumnFamily::Metadata, &codec.metadata_key(b"b"))
        .unwrap()
        .unwrap()
        .to_vec();
    let meta = Metadata::decode(&raw).unwrap();
    assert_eq!(meta.kind, RedisType::Bitmap);
    assert_eq!(meta.size, 1025, "bytes in use: up to byte 1024");
    let frag0 = engine
        .get(
            ColumnFamily::Default,
            &codec.subkey(b"b", meta.version, b"0"),
        )
        .unwrap()
        .unwrap()
        .to_vec();
    // Bit 0 is the low bit of byte 0; bit 9 the second bit of byte 1 (Kvrocks' lsb order).
    assert_eq!(frag0, vec![0b0000_0001, 0b0000_0010]);
    let frag1 = engine
        .get(
            ColumnFamily::Default,
            &codec.subkey(b"b", meta.version, b"1024"),
        )
        .unwrap()
        .unwrap()
        .to_vec();
    assert_eq!(frag1, vec![0b0000_1000]);
    // The logical string is Redis' bit order.
    let v = db.get(b"b").unwrap().unwrap();
    assert_eq!(v.len(), 1025);
    assert_eq!(&v[..2], &[0b1000_0000, 0b0100_0000]);
    assert_eq!(v[1024], 0b0001_0000);
    assert_eq!(db.getbit(b"b", 9).unwrap(), 1);
    assert_eq!(db.getbit(b"b", 10).unwrap(), 0);
    assert_eq!(db.setbit(b"b", 9, false).unwrap(), 1);
}
