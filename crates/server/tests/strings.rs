//! The string family through a real client.

mod common;
use common::{err, q, TestServer};
use redis::Value;

#[test]
fn set_and_get_with_every_option() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v"]), "OK");
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "missing"]), None);
    // NX / XX
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "k", "v2", "NX"]), None);
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v2", "XX"]), "OK");
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "nokey", "v", "XX"]),
        None
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "nokey"]), 0);
    // GET option returns the old value
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v3", "GET"]), "v2");
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "fresh", "x", "GET"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "zz", "NX", "GET"]),
        Some("v3".into())
    );
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v3");
    // expiry options
    q::<String>(&mut c, &["SET", "e", "v", "EX", "100"]);
    let ttl: i64 = q(&mut c, &["TTL", "e"]);
    assert!((99..=100).contains(&ttl));
    q::<String>(&mut c, &["SET", "e", "v", "PX", "100000"]);
    let pttl: i64 = q(&mut c, &["PTTL", "e"]);
    assert!((99_000..=100_000).contains(&pttl));
    q::<String>(&mut c, &["SET", "e", "v2", "KEEPTTL"]);
    assert!(q::<i64>(&mut c, &["PTTL", "e"]) > 90_000);
    q::<String>(&mut c, &["SET", "e", "v3"]);
    assert_eq!(
        q::<i64>(&mut c, &["TTL", "e"]),
        -1,
        "plain SET clears the TTL"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    q::<String>(&mut c, &["SET", "e", "v", "EXAT", &(now + 50).to_string()]);
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "e"]), (now + 50) as i64);
    q::<String>(
        &mut c,
        &["SET", "e", "v", "PXAT", &((now + 60) * 1000).to_string()],
    );
    assert_eq!(
        q::<i64>(&mut c, &["PEXPIRETIME", "e"]),
        ((now + 60) * 1000) as i64
    );
    // errors
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "-5"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "abc"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "NX", "XX"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "10", "PX", "10"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "KEEPTTL", "EX", "10"]),
        "ERR syntax error"
    );
    assert_eq!(err(&mut c, &["SET", "k", "v", "EX"]), "ERR syntax error");
    assert_eq!(
        err(&mut c, &["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
}

#[test]
fn expired_values_read_as_missing() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v", "PX", "50"]);
    q::<String>(&mut c, &["PSETEX", "k2", "50", "v"]);
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k", "k2"]), 0);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -2);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert_eq!(
        q::<i64>(&mut c, &["SETNX", "k", "again"]),
        1,
        "an expired key counts as missing"
    );
}

#[test]
fn setnx_setex_psetex_getset_getdel_getex() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["SETNX", "a", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "a", "2"]), 0);
    assert_eq!(q::<String>(&mut c, &["SETEX", "b", "100", "x"]), "OK");
    assert!(q::<i64>(&mut c, &["TTL", "b"]) > 90);
    assert_eq!(
        err(&mut c, &["SETEX", "b", "0", "x"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        err(&mut c, &["PSETEX", "b", "-1", "x"]),
        "ERR invalid expire time in 'psetex' command"
    );
    assert_eq!(q::<String>(&mut c, &["GETSET", "b", "y"]), "x");
    assert_eq!(q::<i64>(&mut c, &["TTL", "b"]), -1, "GETSET clears the TTL");
    assert_eq!(q::<Option<String>>(&mut c, &["GETSET", "new", "y"]), None);
    assert_eq!(q::<String>(&mut c, &["GETDEL", "b"]), "y");
    assert_eq!(q::<Option<String>>(&mut c, &["GETDEL", "b"]), None);
    q::<String>(&mut c, &["SET", "g", "v"]);
    assert_eq!(q::<String>(&mut c, &["GETEX", "g", "EX", "100"]), "v");
    assert!(q::<i64>(&mut c, &["TTL", "g"]) > 90);
    assert_eq!(q::<String>(&mut c, &["GETEX", "g", "PERSIST"]), "v");
    assert_eq!(q::<i64>(&mut c, &["TTL", "g"]), -1);
    assert_eq!(
        q::<String>(&mut c, &["GETEX", "g", "PXAT", "1"]),
        "v",
        "a time in the past deletes"
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "g"]), 0);
    assert_eq!(q::<Option<String>>(&mut c, &["GETEX", "g"]), None);
    assert_eq!(
        err(&mut c, &["GETEX", "g", "EX", "1", "PERSIST"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["GETEX", "g", "EX", "0"]),
        "ERR invalid expire time in 'getex' command"
    );
}

#[test]
fn mget_mset_msetnx() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["MGET", "a", "x", "b"]),
        vec![Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(
        err(&mut c, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "c", "3", "a", "9"]), 0);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "c"]),
        0,
        "MSETNX is all or nothing"
    );
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "c", "3", "d", "4"]), 1);
    assert_eq!(q::<String>(&mut c, &["GET", "d"]), "4");
}

#[test]
fn append_strlen_getrange_setrange() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["APPEND", "s", "Hello"]), 5);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "s", " World"]), 11);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "s"]), 11);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "nope"]), 0);
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "0", "4"]), "Hello");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "-5", "-1"]), "World");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "0", "-100"]), "H");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "5", "3"]), "");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "-1", "-5"]), "");
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "s", "0", "1000"]),
        "Hello World"
    );
    assert_eq!(q::<String>(&mut c, &["SUBSTR", "s", "6", "8"]), "Wor");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "nope", "0", "-1"]), "");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "s", "6", "Redis"]), 11);
    assert_eq!(q::<String>(&mut c, &["GET", "s"]), "Hello Redis");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "pad", "3", "x"]), 4);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "pad"]), b"\0\0\0x");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "empty", "5", ""]), 0);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "empty"]),
        0,
        "an empty SETRANGE creates nothing"
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "s", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "s", "536870911", "xx"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
}

#[test]
fn counters() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "10"]), 11);
    assert_eq!(q::<i64>(&mut c, &["DECR", "n"]), 10);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "20"]), -10);
    q::<String>(&mut c, &["SET", "n", "100", "EX", "100"]);
    q::<i64>(&mut c, &["INCR", "n"]);
    assert!(q::<i64>(&mut c, &["TTL", "n"]) > 90, "INCR keeps the TTL");
    q::<String>(&mut c, &["SET", "big", "9223372036854775807"]);
    assert_eq!(
        err(&mut c, &["INCR", "big"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        err(&mut c, &["DECRBY", "n", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    q::<String>(&mut c, &["SET", "txt", "abc"]);
    assert_eq!(
        err(&mut c, &["INCR", "txt"]),
        "ERR value is not an integer or out of range"
    );
    q::<String>(&mut c, &["SET", "sp", " 1"]);
    assert_eq!(
        err(&mut c, &["INCR", "sp"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["INCRBY", "n", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "10.5"]), "10.5");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "-1.1"]), "9.5");
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "f", "5.0e3"]),
        "5009.5"
    );
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "txt", "1"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "f", "abc"]),
        "ERR value is not a valid float"
    );
    q::<String>(&mut c, &["SET", "huge", "1.7e308"]);
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "huge", "1.7e308"]),
        "ERR increment would produce NaN or Infinity"
    );
}

#[test]
fn wrongtype_on_non_strings_is_refused() {
    // Until the other types exist, the only way to hold a non-string is a Kvrocks data
    // directory; the type check itself is covered in quarry-types. Here: a string is a string.
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<String>(&mut c, &["TYPE", "k"]), "string");
    assert_eq!(q::<String>(&mut c, &["TYPE", "nope"]), "none");
}

#[test]
fn lcs_plain_len_and_idx() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["MSET", "key1", "ohmytext", "key2", "mynewtext"]);
    assert_eq!(q::<String>(&mut c, &["LCS", "key1", "key2"]), "mytext");
    assert_eq!(q::<i64>(&mut c, &["LCS", "key1", "key2", "LEN"]), 6);
    let v: Value = q(
        &mut c,
        &[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN",
        ],
    );
    let expected = Value::Array(vec![
        Value::BulkString(b"matches".to_vec()),
        Value::Array(vec![Value::Array(vec![
            Value::Array(vec![Value::Int(4), Value::Int(7)]),
            Value::Array(vec![Value::Int(5), Value::Int(8)]),
            Value::Int(4),
        ])]),
        Value::BulkString(b"len".to_vec()),
        Value::Int(6),
    ]);
    assert_eq!(v, expected);
    assert_eq!(
        err(&mut c, &["LCS", "key1", "key2", "LEN", "IDX"]),
        "ERR If you want both the length and indexes, please just use IDX."
    );
    assert_eq!(q::<String>(&mut c, &["LCS", "key1", "nokey"]), "");
    // Two 1 MB strings would need a 4 TB table: refused, and the server lives on.
    let big = vec![b'a'; 1 << 20];
    redis::cmd("MSET")
        .arg("big1")
        .arg(&big)
        .arg("big2")
        .arg(&big)
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(
        err(&mut c, &["LCS", "big1", "big2"]),
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
    );
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

#[test]
fn cas_and_cad() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["CAS", "k", "a", "b"]), -1);
    q::<String>(&mut c, &["SET", "k", "a"]);
    assert_eq!(q::<i64>(&mut c, &["CAS", "k", "x", "b"]), 0);
    assert_eq!(q::<i64>(&mut c, &["CAS", "k", "a", "b", "EX", "100"]), 1);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "b");
    assert!(q::<i64>(&mut c, &["TTL", "k"]) > 90);
    assert_eq!(q::<i64>(&mut c, &["CAD", "k", "x"]), 0);
    assert_eq!(q::<i64>(&mut c, &["CAD", "k", "b"]), 1);
    assert_eq!(q::<i64>(&mut c, &["CAD", "k", "b"]), -1);
}

#[test]
fn binary_safe_and_large_values() {
    let s = TestServer::start();
    let mut c = s.conn();
    let bin: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    redis::cmd("SET")
        .arg("bin")
        .arg(&bin)
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(
        redis::cmd("GET")
            .arg("bin")
            .query::<Vec<u8>>(&mut c)
            .unwrap(),
        bin
    );
    let big = vec![b'x'; 20 * 1024 * 1024];
    redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "big"]), big.len() as i64);
    assert_eq!(
        redis::cmd("GET")
            .arg("big")
            .query::<Vec<u8>>(&mut c)
            .unwrap()
            .len(),
        big.len()
    );
}
