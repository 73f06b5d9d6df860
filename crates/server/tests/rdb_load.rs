//! RDB LOAD (Kvrocks' import of a Redis RDB file) through the real binary, on a file that a
//! real redis-server 7.0 wrote with every encoding it has: each key reads back as in Redis.

mod common;

use common::{err, q, Redis, TestServer};
use redis::Connection;

/// Fills Redis with every encoding: small and large (listpack/intset and hashtable/skiplist/
/// quicklist), integers, LZF-compressed strings, a stream with a group, expiries, and db 1.
fn fill(c: &mut Connection) {
    let _: () = q(c, &["SET", "str", "hello"]);
    let _: () = q(c, &["SET", "int", "12345"]);
    let _: () = q(c, &["SET", "neg", "-7"]);
    let big = "abcdefgh".repeat(4000);
    let _: () = q(c, &["SET", "big", &big]);
    let _: () = q(c, &["SET", "ttl", "v", "PX", "100000000"]);
    for (key, n) in [("small", 5), ("large", 300)] {
        let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let ints: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let mut cmd = vec!["RPUSH".to_string(), format!("list-{key}")];
        cmd.extend(members.iter().cloned());
        let _: i64 = q(c, &cmd.iter().map(String::as_str).collect::<Vec<_>>());
        let mut cmd = vec!["SADD".to_string(), format!("set-{key}")];
        cmd.extend(members.iter().cloned());
        let _: i64 = q(c, &cmd.iter().map(String::as_str).collect::<Vec<_>>());
        let mut cmd = vec!["SADD".to_string(), format!("intset-{key}")];
        cmd.extend(ints.iter().cloned());
        let _: i64 = q(c, &cmd.iter().map(String::as_str).collect::<Vec<_>>());
        let mut cmd = vec!["ZADD".to_string(), format!("zset-{key}")];
        for (i, m) in members.iter().enumerate() {
            cmd.push(format!("{}.5", i));
            cmd.push(m.clone());
        }
        let _: i64 = q(c, &cmd.iter().map(String::as_str).collect::<Vec<_>>());
        let mut cmd = vec!["HSET".to_string(), format!("hash-{key}")];
        for m in &members {
            cmd.push(m.clone());
            cmd.push(format!("value-of-{m}"));
        }
        let _: i64 = q(c, &cmd.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for i in 0..5 {
        let _: String = q(
            c,
            &[
                "XADD",
                "stream",
                &format!("{}-1", i + 1),
                "f",
                &i.to_string(),
            ],
        );
    }
    let _: () = q(c, &["XGROUP", "CREATE", "stream", "g", "0"]);
    let _: redis::Value = q(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "2",
            "STREAMS",
            "stream",
            ">",
        ],
    );
    let _: () = q(c, &["SELECT", "1"]);
    let _: () = q(c, &["SET", "in-db1", "x"]);
    let _: () = q(c, &["SELECT", "0"]);
}

/// Each key as Redis and quarry answer it.
fn read(c: &mut Connection, key: &str) -> String {
    let kind: String = q(c, &["TYPE", key]);
    let v: redis::Value = match kind.as_str() {
        "string" => q(c, &["GET", key]),
        "list" => q(c, &["LRANGE", key, "0", "-1"]),
        "set" => q(c, &["SORT", key, "ALPHA"]),
        "zset" => q(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "hash" => {
            let mut pairs: Vec<(String, String)> = q(c, &["HGETALL", key]);
            pairs.sort();
            return format!("hash {pairs:?}");
        }
        "stream" => {
            let entries: redis::Value = q(c, &["XRANGE", key, "-", "+"]);
            let pending: redis::Value = q(c, &["XPENDING", key, "g"]);
            return format!("stream {entries:?} {pending:?}");
        }
        other => panic!("unexpected type {other}"),
    };
    format!("{kind} {v:?}")
}

#[test]
fn a_redis_rdb_file_loads_with_every_encoding() {
    let redis = Redis::start();
    let mut rc = redis.conn();
    fill(&mut rc);
    let _: () = q(&mut rc, &["SAVE"]);
    let file = redis.dir().join("dump.rdb");
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["RDB", "LOAD", file.to_str().unwrap()]);
    let mut keys: Vec<String> = q(&mut rc, &["KEYS", "*"]);
    keys.sort();
    let mut ours: Vec<String> = q(&mut c, &["KEYS", "*"]);
    ours.sort();
    assert_eq!(ours, keys, "db 0's keys, and none of db 1's");
    for key in &keys {
        assert_eq!(read(&mut c, key), read(&mut rc, key), "{key}");
    }
    let ttl: i64 = q(&mut c, &["PTTL", "ttl"]);
    assert!(ttl > 99_000_000, "{ttl}");
    assert_eq!(q::<i64>(&mut c, &["PTTL", "str"]), -1);

    // NX keeps what exists; without it the file's value replaces it.
    let _: () = q(&mut c, &["SET", "str", "mine"]);
    let _: () = q(&mut c, &["RDB", "LOAD", file.to_str().unwrap(), "NX"]);
    assert_eq!(q::<String>(&mut c, &["GET", "str"]), "mine");
    let _: () = q(&mut c, &["RDB", "LOAD", file.to_str().unwrap()]);
    assert_eq!(q::<String>(&mut c, &["GET", "str"]), "hello");

    // Another database of the file.
    let other = TestServer::start();
    let _: () = q(
        &mut other.conn(),
        &["RDB", "LOAD", file.to_str().unwrap(), "DB", "1"],
    );
    let keys: Vec<String> = q(&mut other.conn(), &["KEYS", "*"]);
    assert_eq!(keys, ["in-db1"]);
}

#[test]
fn bad_files_are_refused() {
    let s = TestServer::start();
    let mut c = s.conn();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.rdb");
    assert!(err(&mut c, &["RDB", "LOAD", missing.to_str().unwrap()]).contains("cannot open"));
    let bad = dir.path().join("bad.rdb");
    std::fs::write(&bad, b"NOTREDIS0000").unwrap();
    assert_eq!(
        err(&mut c, &["RDB", "LOAD", bad.to_str().unwrap()]),
        "ERR Wrong signature trying to load DB from file"
    );
    std::fs::write(&bad, b"REDIS0099\xff").unwrap();
    assert_eq!(
        err(&mut c, &["RDB", "LOAD", bad.to_str().unwrap()]),
        "ERR Can't handle RDB format version 99"
    );
    // A Redis file whose checksum does not match.
    let redis = Redis::start();
    let _: () = q(&mut redis.conn(), &["SET", "k", "v"]);
    let _: () = q(&mut redis.conn(), &["SAVE"]);
    let mut data = std::fs::read(redis.dir().join("dump.rdb")).unwrap();
    let n = data.len();
    data[n - 1] ^= 0xff;
    std::fs::write(&bad, &data).unwrap();
    assert_eq!(
        err(&mut c, &["RDB", "LOAD", bad.to_str().unwrap()]),
        "ERR All objects were processed and loaded but the checksum is unexpected!"
    );
    // Truncated: a clear error, not a crash.
    std::fs::write(&bad, &data[..n / 2]).unwrap();
    assert!(err(&mut c, &["RDB", "LOAD", bad.to_str().unwrap()]).starts_with("ERR "));
    assert!(err(&mut c, &["RDB", "SAVE", "x"]).contains("unknown subcommand"));
    let _: String = q(&mut c, &["PING"]);
}
