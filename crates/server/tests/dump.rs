//! DUMP and RESTORE through the real binary, against payloads a real Redis wrote.

mod common;
use common::{err, info_number, q, TestServer};
// Pinned against Redis' check value in quarry-commands' own tests.
use quarry_commands::crc64;

fn dump(c: &mut redis::Connection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP").arg(key).query(c).unwrap()
}

fn restore(
    c: &mut redis::Connection,
    key: &str,
    ttl: i64,
    payload: &[u8],
    extra: &[&str],
) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("RESTORE");
    cmd.arg(key).arg(ttl).arg(payload);
    for e in extra {
        cmd.arg(*e);
    }
    cmd.query(c)
}

#[test]
fn every_type_round_trips_with_its_ttl() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "str", "hello"]);
    let _: i64 = q(&mut c, &["RPUSH", "list", "a", "b", "c"]);
    let _: i64 = q(&mut c, &["SADD", "set", "x", "y"]);
    let _: i64 = q(&mut c, &["ZADD", "zset", "1.5", "m1", "-2", "m2"]);
    let _: i64 = q(&mut c, &["HSET", "hash", "f1", "v1", "f2", "v2"]);
    for key in ["str", "list", "set", "zset", "hash"] {
        let payload = dump(&mut c, key);
        let copy = format!("{key}-copy");
        restore(&mut c, &copy, 0, &payload, &[]).unwrap();
        // Equal contents serialize to equal payloads (members in order).
        assert_eq!(dump(&mut c, &copy), payload, "{key}");
        // An existing key needs REPLACE.
        let e = restore(&mut c, &copy, 0, &payload, &[]).unwrap_err();
        assert!(common::error_text(&e).starts_with("BUSYKEY"));
        restore(&mut c, &copy, 5000, &payload, &["REPLACE"]).unwrap();
        let ttl: i64 = q(&mut c, &["PTTL", &copy]);
        assert!(ttl > 0 && ttl <= 5000);
    }
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "list-copy", "0", "-1"]),
        ["a", "b", "c"]
    );
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &["DUMP", "missing"]), None);
    // A payload with a damaged checksum is refused.
    let mut bad = dump(&mut c, "str");
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let e = restore(&mut c, "x", 0, &bad, &[]).unwrap_err();
    assert_eq!(
        common::error_text(&e),
        "ERR DUMP payload version or checksum are wrong"
    );
    assert_eq!(
        err(&mut c, &["RESTORE", "x", "-1", "abc"]),
        "ERR Invalid TTL value, must be >= 0"
    );
}

/// Payloads Redis 7.0.15 wrote (`DUMP` in redis-server), in its compact encodings.
#[test]
fn payloads_from_redis_load() {
    let s = TestServer::start();
    let mut c = s.conn();
    let redis_dumps: &[(&str, &str)] = &[
        // SET int 12345: an integer-encoded string
        ("int", "00c139300a009d94ea2793fc08b9"),
        // SET str hello
        ("str", "000568656c6c6f0a006372df766534200a"),
        // RPUSH list a b c 12: a quicklist of listpacks
        (
            "list",
            "120102121200000004008161028162028163020c01ff0a00aa0c3fa9adcafec8",
        ),
        // SADD intset 1 2 3: an intset
        (
            "intset",
            "0b0e02000000030000000100020003000a00a5025ce26d6e4d1b",
        ),
        // SADD strset x y
        ("strset", "0202017901780a000cdf6b3db330bcf0"),
        // HSET hash f v n 7: a listpack
        (
            "hash",
            "1012120000000400816602817602816e020701ff0a00b82adea8407ffaa8",
        ),
        // ZADD zset 1.5 m1 -2 m2: a listpack
        (
            "zset",
            "1117170000000400826d3203dffe02826d310383312e3504ff0a00e39adfa2eb138b36",
        ),
    ];
    for (name, hex_payload) in redis_dumps {
        let payload = hex::decode(hex_payload).unwrap();
        restore(&mut c, name, 0, &payload, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(q::<String>(&mut c, &["GET", "int"]), "12345");
    assert_eq!(q::<String>(&mut c, &["GET", "str"]), "hello");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "list", "0", "-1"]),
        ["a", "b", "c", "12"]
    );
    let mut ints: Vec<String> = q(&mut c, &["SMEMBERS", "intset"]);
    ints.sort();
    assert_eq!(ints, ["1", "2", "3"]);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "strset"]), 2);
    assert_eq!(q::<String>(&mut c, &["HGET", "hash", "n"]), "7");
    assert_eq!(
        q::<Vec<(String, f64)>>(&mut c, &["ZRANGE", "zset", "0", "-1", "WITHSCORES"]),
        [("m2".to_string(), -2.0), ("m1".to_string(), 1.5)]
    );
}

/// A payload with a valid checksum but lying lengths is refused, never allocated.
#[test]
fn lying_lengths_in_a_payload_are_refused() {
    let s = TestServer::start();
    let mut c = s.conn();
    let seal = |mut body: Vec<u8>| {
        body.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    };
    // An LZF string that claims 2^60 bytes once decompressed.
    let mut lzf = vec![0u8, 0xc3, 0x01, 0x81];
    lzf.extend_from_slice(&(1u64 << 60).to_be_bytes());
    lzf.push(0x00);
    // A list that claims 2^40 elements.
    let mut list = vec![1u8, 0x81];
    list.extend_from_slice(&(1u64 << 40).to_be_bytes());
    for body in [lzf, list, vec![0u8, 0x80, 0xff, 0xff, 0xff, 0xff]] {
        let e = restore(&mut c, "k", 0, &seal(body), &[]).unwrap_err();
        assert!(
            common::error_text(&e).starts_with("ERR Bad data format"),
            "{e}"
        );
    }
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

fn migrate(
    c: &mut redis::Connection,
    port: u16,
    key: &str,
    extra: &[&str],
) -> Result<String, String> {
    let mut cmd = redis::cmd("MIGRATE");
    cmd.arg("127.0.0.1").arg(port).arg(key).arg(0).arg(2000);
    for e in extra {
        cmd.arg(*e);
    }
    cmd.query::<String>(c).map_err(|e| common::error_text(&e))
}

fn cached_sockets(c: &mut redis::Connection) -> i64 {
    info_number(c, "stats", "migrate_cached_sockets")
}

/// MIGRATE moves keys (with their TTL) to another server, keeps them with COPY, refuses to
/// overwrite without REPLACE, moves several with KEYS, and says NOKEY when none exist.
#[test]
fn migrate_moves_copies_and_replaces() {
    let src = TestServer::start();
    let dst = TestServer::start();
    let (mut a, mut b) = (src.conn(), dst.conn());
    q::<String>(&mut a, &["SET", "s", "v"]);
    q::<i64>(&mut a, &["RPUSH", "l", "x", "y", "z"]);
    q::<i64>(&mut a, &["HSET", "h", "f", "1"]);
    q::<String>(&mut a, &["SET", "t", "ttl", "PX", "100000"]);
    assert_eq!(migrate(&mut a, dst.port, "s", &[]).unwrap(), "OK");
    assert_eq!(q::<i64>(&mut a, &["EXISTS", "s"]), 0);
    assert_eq!(q::<String>(&mut b, &["GET", "s"]), "v");
    assert_eq!(cached_sockets(&mut a), 1);
    assert_eq!(
        migrate(&mut a, dst.port, "", &["KEYS", "l", "nokey", "h", "t"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<i64>(&mut a, &["DBSIZE"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut b, &["LRANGE", "l", "0", "-1"]),
        ["x", "y", "z"]
    );
    assert_eq!(q::<String>(&mut b, &["HGET", "h", "f"]), "1");
    let ttl: i64 = q(&mut b, &["PTTL", "t"]);
    assert!((90_000..=100_000).contains(&ttl), "{ttl}");
    assert_eq!(migrate(&mut a, dst.port, "s", &[]).unwrap(), "NOKEY");
    // An existing key at the target: refused (the source keeps it) unless REPLACE.
    q::<String>(&mut a, &["SET", "s", "new"]);
    let e = migrate(&mut a, dst.port, "s", &[]).unwrap_err();
    assert_eq!(
        e,
        "ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(q::<String>(&mut a, &["GET", "s"]), "new");
    assert_eq!(
        migrate(&mut a, dst.port, "s", &["COPY", "REPLACE"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<String>(&mut a, &["GET", "s"]), "new");
    assert_eq!(q::<String>(&mut b, &["GET", "s"]), "new");
    assert_eq!(
        migrate(&mut a, dst.port, "s", &["KEYS", "s"]).unwrap_err(),
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
    );
    assert_eq!(
        migrate(&mut a, dst.port, "s", &["AUTH"]).unwrap_err(),
        "ERR syntax error"
    );
}

/// MIGRATE authenticates at the target; a refused AUTH leaves the keys here. A target that
/// does not answer in time is an IOERR, and so is one that went away; the key stays. A target
/// restarted on its port is reached again on a new connection.
#[test]
fn migrate_auth_timeouts_and_lost_targets() {
    let src = TestServer::start();
    let mut dst = TestServer::start_with(&["--requirepass", "pw"]);
    let mut a = src.conn();
    q::<String>(&mut a, &["SET", "k", "v"]);
    let e = migrate(&mut a, dst.port, "k", &["AUTH", "wrong"]).unwrap_err();
    assert!(
        e.starts_with("ERR Target instance replied with error: "),
        "{e}"
    );
    assert_eq!(q::<i64>(&mut a, &["EXISTS", "k"]), 1);
    assert_eq!(
        migrate(&mut a, dst.port, "k", &["AUTH", "pw", "COPY"]).unwrap(),
        "OK"
    );
    assert_eq!(
        migrate(
            &mut a,
            dst.port,
            "k",
            &["AUTH2", "default", "pw", "REPLACE"]
        )
        .unwrap(),
        "OK"
    );
    assert_eq!(q::<i64>(&mut a, &["EXISTS", "k"]), 0);

    // A target that accepts and never answers, and a MIGRATE that waits 300 ms.
    q::<String>(&mut a, &["SET", "k", "v2"]);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let e = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(silent_port)
        .arg("k")
        .arg(0)
        .arg(300)
        .query::<String>(&mut a)
        .unwrap_err();
    assert_eq!(
        common::error_text(&e),
        "IOERR error or timeout reading to target instance"
    );
    assert_eq!(q::<String>(&mut a, &["GET", "k"]), "v2");
    drop(silent);

    // The target restarts: the cached connection is dead, a new one works.
    assert_eq!(
        migrate(&mut a, dst.port, "k", &["AUTH", "pw", "COPY", "REPLACE"]).unwrap(),
        "OK"
    );
    dst.stop();
    dst.restart_same_port();
    assert_eq!(
        migrate(&mut a, dst.port, "k", &["AUTH", "pw", "REPLACE"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<i64>(&mut a, &["EXISTS", "k"]), 0);
    dst.stop();
    q::<String>(&mut a, &["SET", "k", "v3"]);
    let e = migrate(&mut a, dst.port, "k", &["AUTH", "pw"]).unwrap_err();
    assert!(e.starts_with("IOERR"), "{e}");
    assert_eq!(q::<String>(&mut a, &["GET", "k"]), "v3");
    // Unused connections are closed after 10 seconds.
    common::wait_until(
        20,
        || cached_sockets(&mut a) == 0,
        || "the cached connection was not closed".into(),
    );
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/redis-7.0.15/{name}",
        common::manifest_dir()
    ))
    .unwrap()
}

/// HyperLogLogs that Redis 7.0.15 dumped (sparse, and dense LZF-compressed) restore as
/// quarry HyperLogLogs with Redis' counts; quarry's DUMP of one is Redis' dense string, which
/// restores to the same count.
#[test]
fn hyperloglogs_restore_from_redis_and_dump_as_redis_strings() {
    let s = TestServer::start();
    let mut c = s.conn();
    restore(&mut c, "sparse", 0, &fixture("hll-sparse-abc.dump"), &[]).unwrap();
    restore(&mut c, "dense", 0, &fixture("hll-dense-5000.dump"), &[]).unwrap();
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "sparse"]), 3);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "dense"]), 5041);
    assert_eq!(q::<i64>(&mut c, &["PFADD", "sparse", "a", "d"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "sparse"]), 4);
    let d = dump(&mut c, "dense");
    assert_eq!(d[0], 0, "a string payload");
    restore(&mut c, "copy", 0, &d, &[]).unwrap();
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "copy"]), 5041);
    // Redis 7.0.15 counts this union as 5046 too.
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "copy", "sparse"]), 5046);
    // A string that only starts like one stays a string.
    let mut not_hll = b"\x00\x05HYLLx".to_vec();
    not_hll.extend_from_slice(&[10, 0]);
    let crc = crc64(&not_hll);
    not_hll.extend_from_slice(&crc.to_le_bytes());
    restore(&mut c, "str", 0, &not_hll, &[]).unwrap();
    assert_eq!(q::<String>(&mut c, &["GET", "str"]), "HYLLx");
}

/// A reply as words: arrays in brackets, nil as `nil`.
fn flat(v: &redis::Value) -> String {
    match v {
        redis::Value::Array(items) => {
            format!("[{}]", items.iter().map(flat).collect::<Vec<_>>().join(" "))
        }
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "nil".into(),
        other => format!("{other:?}"),
    }
}

/// A stream Redis 7.0.15 dumped (a deleted entry, entries with other fields than their node's
/// first, two groups, pending entries of two consumers, a consumer with none; LZF-compressed)
/// restores with its entries, ids, counters and groups; quarry's DUMP of it restores to the
/// same stream again, here as in Redis (checked by hand against redis-server 7.0.15, also with
/// sanitize-dump-payload yes).
#[test]
fn streams_restore_from_redis_and_round_trip() {
    let s = TestServer::start();
    let mut c = s.conn();
    restore(&mut c, "s", 0, &fixture("stream-groups.dump"), &[]).unwrap();
    let entries: Vec<(String, Vec<String>)> = q(&mut c, &["XRANGE", "s", "-", "+"]);
    let ids: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, ["1-1", "2-0", "3-0", "3-5"]);
    assert_eq!(entries[1].1, ["c", "5"]);
    assert_eq!(entries[3].1, ["a", "8"]);
    let full = |c: &mut redis::Connection, key: &str| -> redis::Value {
        q(c, &["XINFO", "STREAM", key, "FULL"])
    };
    let info = flat(&full(&mut c, "s"));
    for expected in [
        "last-generated-id 3-5 max-deleted-entry-id 1-2 entries-added 5 recorded-first-entry-id 1-1",
        "[2-0 alice 1795688604334 1] [3-0 bob 1795688604343 1]",
        "name carol seen-time 1795688604357",
        "name g2 last-delivered-id 3-5",
    ] {
        assert!(info.contains(expected), "{expected} in {info}");
    }
    // What quarry dumps restores to the same stream.
    let d = dump(&mut c, "s");
    assert_eq!(d[0], 19, "RDB_TYPE_STREAM_LISTPACKS_2");
    restore(&mut c, "copy", 0, &d, &[]).unwrap();
    assert_eq!(full(&mut c, "s"), full(&mut c, "copy"));
    // Consumers go on from where they were.
    let next: redis::Value = q(
        &mut c,
        &["XREADGROUP", "GROUP", "g1", "alice", "STREAMS", "copy", ">"],
    );
    assert!(format!("{next:?}").contains("3-5"), "{next:?}");
    assert_eq!(q::<i64>(&mut c, &["XACK", "copy", "g1", "2-0", "3-0"]), 2);

    // Larger streams span several nodes, with fields that change from entry to entry.
    for i in 0..250 {
        let f = format!("f{}", i % 3);
        let v = format!("v{i}");
        q::<String>(
            &mut c,
            &[
                "XADD",
                "big",
                &format!("{}-{}", 1000 + i / 7, i % 7),
                &f,
                &v,
                "x",
                &i.to_string(),
            ],
        );
    }
    q::<i64>(&mut c, &["XDEL", "big", "1000-3", "1010-0"]);
    let d = dump(&mut c, "big");
    restore(&mut c, "big2", 0, &d, &[]).unwrap();
    assert_eq!(full(&mut c, "big"), full(&mut c, "big2"));
    assert_eq!(q::<i64>(&mut c, &["XLEN", "big2"]), 248);
    // A damaged listpack is refused, not half restored.
    let mut bad = fixture("stream-groups.dump");
    let body_len = bad.len() - 10;
    bad[20] ^= 0x55;
    let crc = crc64(&bad[..body_len + 2]);
    bad[body_len + 2..].copy_from_slice(&crc.to_le_bytes());
    assert!(restore(&mut c, "broken", 0, &bad, &[]).is_err());
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "broken"]), 0);
}

/// A sorted-set payload with a NaN score is refused before anything is written, also inside
/// MULTI with REPLACE: the key keeps its value.
#[test]
fn a_nan_score_payload_changes_nothing() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "old"]);
    let mut p = vec![5u8, 1, 1, b'm'];
    p.extend_from_slice(&f64::NAN.to_le_bytes());
    p.extend_from_slice(&[10, 0]);
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    assert!(restore(&mut c, "k", 0, &p, &["REPLACE"]).is_err());
    q::<String>(&mut c, &["MULTI"]);
    redis::cmd("RESTORE")
        .arg("k")
        .arg(0)
        .arg(&p[..])
        .arg("REPLACE")
        .query::<String>(&mut c)
        .unwrap();
    let _: redis::Value = redis::cmd("EXEC")
        .query(&mut c)
        .unwrap_or(redis::Value::Nil);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "old");
}
