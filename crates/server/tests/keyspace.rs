//! Keyspace commands through a real client.

mod common;
use std::collections::BTreeSet;

use common::{err, q, TestServer};

#[test]
fn del_unlink_exists_type() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "a", "a", "x"]),
        2,
        "repeats count"
    );
    assert_eq!(q::<i64>(&mut c, &["DEL", "a", "a", "x"]), 1);
    assert_eq!(q::<i64>(&mut c, &["UNLINK", "b", "c"]), 2);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert_eq!(
        err(&mut c, &["DEL"]),
        "ERR wrong number of arguments for 'del' command"
    );
}

#[test]
fn expire_family_with_conditions() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "missing", "10"]), 0);
    assert_eq!(
        q::<i64>(&mut c, &["EXPIRE", "k", "100", "XX"]),
        0,
        "XX needs a TTL"
    );
    assert_eq!(
        q::<i64>(&mut c, &["EXPIRE", "k", "100", "GT"]),
        0,
        "no TTL is infinite for GT"
    );
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "100", "NX"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "200", "NX"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "50", "GT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "200", "GT"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "300", "LT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "150", "XX", "LT"]), 1);
    let ttl: i64 = q(&mut c, &["TTL", "k"]);
    assert!((149..=150).contains(&ttl), "{ttl}");
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "k", "100000"]), 1);
    let pttl: i64 = q(&mut c, &["PTTL", "k"]);
    assert!((99_000..=100_000).contains(&pttl));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        q::<i64>(&mut c, &["PEXPIREAT", "k", &(now + 500_000).to_string()]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &["PEXPIRETIME", "k"]), now + 500_000);
    assert_eq!(
        q::<i64>(&mut c, &["EXPIREAT", "k", &(now / 1000 + 600).to_string()]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "k"]), now / 1000 + 600);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "k"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "k"]), 0);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "k"]), -1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "nope"]), -2);
    // A time in the past deletes the key.
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "-1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k"]), 0);
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "k", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k"]), 0);
    // errors
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "10", "YY"]),
        "ERR Unsupported option YY"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["EXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
}

#[test]
fn keys_with_ttl_expire_in_scan_keys_and_dbsize() {
    let s = TestServer::start();
    let mut c = s.conn();
    for i in 0..20 {
        q::<String>(&mut c, &["SET", &format!("live{i}"), "v"]);
        q::<String>(&mut c, &["SET", &format!("dying{i}"), "v", "PX", "80"]);
    }
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 40);
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 20);
    assert_eq!(q::<Vec<String>>(&mut c, &["KEYS", "dying*"]).len(), 0);
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys): (String, Vec<String>) = q(&mut c, &["SCAN", &cursor, "COUNT", "7"]);
        seen.extend(keys);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|k| k.starts_with("live")));
}

#[test]
fn rename_renamenx_copy() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "a", "1", "EX", "100"]);
    assert_eq!(q::<String>(&mut c, &["RENAME", "a", "b"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a"]), 0);
    assert_eq!(q::<String>(&mut c, &["GET", "b"]), "1");
    assert!(q::<i64>(&mut c, &["TTL", "b"]) > 90, "RENAME moves the TTL");
    assert_eq!(err(&mut c, &["RENAME", "nope", "x"]), "ERR no such key");
    assert_eq!(err(&mut c, &["RENAMENX", "nope", "x"]), "ERR no such key");
    assert_eq!(q::<String>(&mut c, &["RENAME", "b", "b"]), "OK");
    q::<String>(&mut c, &["SET", "c", "3"]);
    assert_eq!(q::<i64>(&mut c, &["RENAMENX", "b", "c"]), 0);
    assert_eq!(q::<i64>(&mut c, &["RENAMENX", "b", "d"]), 1);
    assert_eq!(q::<i64>(&mut c, &["COPY", "d", "c"]), 0);
    assert_eq!(q::<i64>(&mut c, &["COPY", "d", "c", "REPLACE"]), 1);
    assert_eq!(q::<String>(&mut c, &["GET", "c"]), "1");
    assert_eq!(q::<i64>(&mut c, &["COPY", "d", "e", "DB", "0"]), 1);
    assert_eq!(q::<i64>(&mut c, &["COPY", "nope", "f"]), 0);
    assert_eq!(
        err(&mut c, &["COPY", "d", "d"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(
        err(&mut c, &["COPY", "d", "x", "DB", "1"]),
        "ERR DB index is out of range"
    );
}

#[test]
fn keys_scan_match_count_type_and_randomkey() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["RANDOMKEY"]), None);
    for i in 0..100 {
        q::<String>(&mut c, &["SET", &format!("user:{i}"), "v"]);
    }
    q::<String>(&mut c, &["SET", "other", "v"]);
    let mut keys: Vec<String> = q(&mut c, &["KEYS", "user:1?"]);
    keys.sort();
    assert_eq!(
        keys,
        (10..20).map(|i| format!("user:{i}")).collect::<Vec<_>>()
    );
    assert_eq!(q::<Vec<String>>(&mut c, &["KEYS", "*"]).len(), 101);
    assert_eq!(q::<Vec<String>>(&mut c, &["KEYS", "h[ae]llo"]).len(), 0);
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let (next, keys): (String, Vec<String>) =
            q(&mut c, &["SCAN", &cursor, "MATCH", "user:*", "COUNT", "10"]);
        assert!(keys.len() <= 10);
        seen.extend(keys);
        rounds += 1;
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 100);
    assert!(rounds >= 10);
    let (_, typed): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "TYPE", "string", "COUNT", "1000"]);
    assert_eq!(typed.len(), 101);
    let (_, none): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "TYPE", "hash", "COUNT", "1000"]);
    assert!(none.is_empty());
    assert_eq!(err(&mut c, &["SCAN", "abc"]), "ERR invalid cursor");
    assert_eq!(
        err(&mut c, &["SCAN", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SCAN", "0", "BOGUS", "1"]),
        "ERR syntax error"
    );
    let mut random = BTreeSet::new();
    for _ in 0..50 {
        let k: String = q(&mut c, &["RANDOMKEY"]);
        assert!(k.starts_with("user:") || k == "other");
        random.insert(k);
    }
    assert!(random.len() > 1, "RANDOMKEY is random");
}

#[test]
fn flushdb_and_flushall_empty_the_keyspace() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]);
    assert_eq!(q::<String>(&mut c, &["FLUSHDB"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    q::<String>(&mut c, &["SET", "a", "1"]);
    assert_eq!(q::<String>(&mut c, &["FLUSHALL", "ASYNC"]), "OK");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), None);
    assert_eq!(err(&mut c, &["FLUSHALL", "BAD"]), "ERR syntax error");
}

#[test]
fn object_reports_refcount_and_encoding() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(
        &mut c,
        &[
            "MSET",
            "n",
            "12345",
            "short",
            "hello",
            "long",
            &"x".repeat(100),
        ],
    );
    q::<i64>(&mut c, &["RPUSH", "l", "a"]);
    assert_eq!(q::<i64>(&mut c, &["OBJECT", "REFCOUNT", "n"]), 1);
    assert_eq!(
        q::<Option<i64>>(&mut c, &["OBJECT", "REFCOUNT", "nokey"]),
        None
    );
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "n"]), "int");
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "short"]),
        "embstr"
    );
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "long"]), "raw");
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "l"]),
        "quicklist"
    );
    assert!(err(&mut c, &["OBJECT", "FREQ", "n"])
        .starts_with("ERR An LFU maxmemory policy is not selected"));
    assert_eq!(
        q::<Option<i64>>(&mut c, &["OBJECT", "IDLETIME", "nokey"]),
        None
    );
}

/// OBJECT IDLETIME counts seconds since a command last used the key; TOUCH, reads and writes
/// reset it, while TYPE, EXISTS, TTL and OBJECT do not (as in Redis); RESTORE can set it.
#[test]
fn idletime_follows_use_touch_and_restore() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]);
    assert_eq!(q::<i64>(&mut c, &["OBJECT", "IDLETIME", "a"]), 0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for look in [
        &["TYPE", "a"][..],
        &["EXISTS", "a"],
        &["TTL", "a"],
        &["OBJECT", "ENCODING", "a"],
    ] {
        q::<redis::Value>(&mut c, look);
    }
    let idle: i64 = q(&mut c, &["OBJECT", "IDLETIME", "a"]);
    assert!((2..=3).contains(&idle), "{idle}");
    assert_eq!(q::<i64>(&mut c, &["TOUCH", "a", "nokey"]), 1);
    assert!(q::<i64>(&mut c, &["OBJECT", "IDLETIME", "a"]) <= 1);
    q::<String>(&mut c, &["GET", "b"]);
    assert!(q::<i64>(&mut c, &["OBJECT", "IDLETIME", "b"]) <= 1);
    let dump: Vec<u8> = q(&mut c, &["DUMP", "a"]);
    let _: String = redis::cmd("RESTORE")
        .arg("r")
        .arg(0)
        .arg(dump)
        .arg("IDLETIME")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let idle: i64 = q(&mut c, &["OBJECT", "IDLETIME", "r"]);
    assert!((1000..=1002).contains(&idle), "{idle}");
    // A script's RESTORE has the last word too, over the script's own use of its keys.
    let _: String = redis::cmd("EVAL")
        .arg("return redis.call('RESTORE', KEYS[1], 0, ARGV[1], 'IDLETIME', 1000)")
        .arg(1)
        .arg("s")
        .arg(q::<Vec<u8>>(&mut c, &["DUMP", "a"]))
        .query(&mut c)
        .unwrap();
    let idle: i64 = q(&mut c, &["OBJECT", "IDLETIME", "s"]);
    assert!((1000..=1002).contains(&idle), "{idle}");
}
