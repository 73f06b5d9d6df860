//! A data directory written by Kvrocks 2.10.1 opens in quarry: the fixture's WAL is replayed
//! into a fresh directory, then the real binary serves it. This is also where WRONGTYPE is
//! proven for string commands, on hashes, lists and sets that Kvrocks itself wrote.
//!
//! The fixture's expiry times are absolute (Kvrocks ran on 2026-11-26): `h` got `EXPIRE h
//! 100000` and `ttlkey` `PX 100000000`, so both ran out on 2026-11-27. No assertion here
//! assumes either is live; what they check about `h` is judged against the expiry its bytes
//! hold, so each test means the same on any day.

mod common;
use std::path::Path;

use common::{err, q, TestServer};
use quarry_storage::encoding::{KeyCodec, Metadata};
use quarry_storage::{ColumnFamily, Engine, EngineOptions, Role, WriteBatch, WriteOrigin};

fn replay_kvrocks_wal(dir: &Path) {
    let wal = Path::new(&common::manifest_dir())
        .join("../../tests/fixtures/kvrocks-2.10.1/standalone/wal-batches.hex");
    let engine = Engine::open(&EngineOptions::new(dir)).unwrap();
    engine.gate().set_role(Role::Replica);
    for line in std::fs::read_to_string(wal).unwrap().lines() {
        let bytes: Vec<u8> = (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
            .collect();
        engine
            .write(WriteBatch::from_data(&bytes), WriteOrigin::Replication)
            .unwrap();
    }
    engine.flush().unwrap();
}

/// The absolute expiry, in Unix milliseconds, that Kvrocks wrote into `h`'s metadata
/// (`EXPIRE h 100000` on 2026-11-26).
const H_EXPIRE_MS: u64 = 1_795_756_155_988;

/// A quarry server whose data directory holds what Kvrocks wrote.
fn server_on_kvrocks_data() -> TestServer {
    let mut s = TestServer::start();
    s.stop();
    std::fs::remove_dir_all(s.data_dir().join("db")).unwrap();
    replay_kvrocks_wal(s.data_dir());
    {
        let engine = Engine::open(&EngineOptions::new(s.data_dir())).unwrap();
        let raw = engine
            .get(
                ColumnFamily::Metadata,
                &KeyCodec::standalone().metadata_key(b"h"),
            )
            .unwrap()
            .expect("h's metadata is on disk, expired or not");
        let h = Metadata::decode(&raw).unwrap();
        assert_eq!(
            (h.expire_ms, h.size),
            (H_EXPIRE_MS, 2),
            "h as Kvrocks wrote it"
        );
    }
    s.restart();
    s
}

/// Whether `h` is live now, judged by the expiry in its bytes rather than by any date the
/// test was written on.
fn h_is_live() -> bool {
    quarry_storage::encoding::now_ms() < H_EXPIRE_MS
}

#[test]
fn a_kvrocks_data_directory_is_served() {
    let s = server_on_kvrocks_data();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["GET", "str"]), "hello");
    assert_eq!(q::<i64>(&mut c, &["GET", "num"]), 12346);
    assert_eq!(q::<String>(&mut c, &["GET", "{tag}b"]), "2");
    for (key, kind) in [
        ("{tag}x", "hash"),
        ("l", "list"),
        ("s", "set"),
        ("z", "zset"),
        ("si", "sortedint"),
        ("st", "stream"),
        ("bm", "bitmap"),
        ("hll", "hyperloglog"),
    ] {
        assert_eq!(q::<String>(&mut c, &["TYPE", key]), kind, "{key}");
    }
    // `h` lives until the absolute time in its metadata, and is gone (not a hash without a
    // TTL, not an error) from then on.
    let pexpiretime: i64 = q(&mut c, &["PEXPIRETIME", "h"]);
    if h_is_live() {
        assert_eq!(pexpiretime, H_EXPIRE_MS as i64);
        assert_eq!(q::<String>(&mut c, &["TYPE", "h"]), "hash");
    } else {
        assert_eq!(pexpiretime, -2, "h expired at {H_EXPIRE_MS}");
        assert_eq!(q::<String>(&mut c, &["TYPE", "h"]), "none");
        assert_eq!(q::<i64>(&mut c, &["EXISTS", "h", "ttlkey"]), 0);
        assert_eq!(q::<Option<String>>(&mut c, &["HGET", "h", "f1"]), None);
    }
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "gone"]), 0);
    // `BF.ADD bf x` in Kvrocks: the same filter answers the same here (XXH64 and the
    // block-split layout), and its shape reads as Kvrocks wrote it.
    assert_eq!(q::<String>(&mut c, &["TYPE", "bf"]), "MBbloom--");
    assert_eq!(q::<i64>(&mut c, &["BF.EXISTS", "bf", "x"]), 1);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["BF.MEXISTS", "bf", "y", "x", "z"]),
        [0, 1, 0]
    );
    assert_eq!(q::<i64>(&mut c, &["BF.CARD", "bf"]), 1);
    assert_eq!(q::<i64>(&mut c, &["BF.INFO", "bf", "SIZE"]), 128);
    assert_eq!(q::<i64>(&mut c, &["BF.INFO", "bf", "CAPACITY"]), 100);
    assert_eq!(q::<i64>(&mut c, &["BF.ADD", "bf", "x"]), 0);
    // `JSON.SET j $ '{"a":1}'` in Kvrocks.
    assert_eq!(q::<String>(&mut c, &["TYPE", "j"]), "ReJSON-RL");
    assert_eq!(q::<String>(&mut c, &["JSON.GET", "j"]), r#"{"a":1}"#);
    assert_eq!(q::<String>(&mut c, &["JSON.GET", "j", "$.a"]), "[1]");
    let keys: Vec<String> = q(&mut c, &["KEYS", "*"]);
    assert!(keys.contains(&"l".to_string()) && keys.contains(&"{tag}x".to_string()));
    assert_eq!(keys.contains(&"h".to_string()), h_is_live());
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), keys.len() as i64);
    let (_, mut hashes): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "TYPE", "hash", "COUNT", "100"]);
    hashes.sort();
    let expected: &[&str] = if h_is_live() {
        &["h", "{tag}x"]
    } else {
        &["{tag}x"]
    };
    assert_eq!(hashes, expected);
    // The sequence continues from Kvrocks' own 53, plus the batch in which this master
    // recorded its new replication id at start-up.
    let info: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(info.contains("sequence:54"), "{info}");
}

#[test]
fn string_commands_refuse_other_types() {
    let mut s = server_on_kvrocks_data();
    let mut c = s.conn();
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for args in [
        &["GET", "{tag}x"][..],
        &["INCR", "l"],
        &["INCRBYFLOAT", "l", "1"],
        &["APPEND", "s", "x"],
        &["SETRANGE", "s", "0", "x"],
        &["GETRANGE", "z", "0", "1"],
        &["STRLEN", "z"],
        &["GETDEL", "{tag}x"],
        &["GETEX", "{tag}x", "PERSIST"],
        &["GETSET", "{tag}x", "v"],
        &["SET", "{tag}x", "v", "GET"],
    ] {
        assert_eq!(err(&mut c, args), wrongtype, "{args:?}");
    }
    assert_eq!(
        err(&mut c, &["LCS", "str", "{tag}x"]),
        "ERR The specified keys must contain string values"
    );
    let v: Vec<Option<String>> = q(&mut c, &["MGET", "str", "{tag}x", "nope"]);
    assert_eq!(
        v,
        vec![Some("hello".into()), None, None],
        "MGET reads other types as nil"
    );
    // A plain SET overwrites any type; the orphaned sub-keys no longer belong to the key.
    assert_eq!(
        q::<String>(&mut c, &["SET", "{tag}x", "now a string"]),
        "OK"
    );
    assert_eq!(q::<String>(&mut c, &["TYPE", "{tag}x"]), "string");
    assert_eq!(q::<i64>(&mut c, &["TTL", "{tag}x"]), -1);
    // RENAME and COPY move collections with their sub-keys.
    assert_eq!(q::<String>(&mut c, &["RENAME", "l", "l2"]), "OK");
    assert_eq!(q::<String>(&mut c, &["TYPE", "l2"]), "list");
    assert_eq!(q::<i64>(&mut c, &["COPY", "s", "s2"]), 1);
    assert_eq!(q::<String>(&mut c, &["TYPE", "s2"]), "set");
    assert_eq!(q::<i64>(&mut c, &["DEL", "s", "z"]), 2);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "s", "z", "s2"]), 1);
    s.stop();
    // On disk: the renamed list and the copied set have their elements under a new version.
    let engine = Engine::open(&EngineOptions::new(s.data_dir())).unwrap();
    let codec = KeyCodec::standalone();
    let count = |key: &[u8]| {
        let raw = engine
            .get(ColumnFamily::Metadata, &codec.metadata_key(key))
            .unwrap()
            .unwrap();
        let meta = Metadata::decode(&raw).unwrap();
        let prefix = codec.subkey_prefix(key, meta.version);
        let n = engine
            .db()
            .prefix_iterator_cf(engine.cf(ColumnFamily::Default), &prefix)
            .map(|r| r.unwrap())
            .take_while(|(k, _)| k.starts_with(&prefix))
            .count();
        (meta.size, n as u64)
    };
    assert_eq!(count(b"l2"), (3, 3));
    assert_eq!(count(b"s2"), (2, 2));
}
