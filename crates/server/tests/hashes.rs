//! The hash type through a real client.

mod common;
use std::collections::{BTreeMap, BTreeSet};

use common::{err, latest_sequence, q, TestServer};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn set_get_and_delete_fields() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]), 2);
    assert_eq!(
        q::<i64>(&mut c, &["HSET", "h", "a", "10", "c", "3"]),
        1,
        "only new fields count"
    );
    assert_eq!(
        q::<i64>(&mut c, &["HSET", "h", "d", "4", "d", "5"]),
        1,
        "a field repeated in one call counts once"
    );
    assert_eq!(
        q::<String>(&mut c, &["HGET", "h", "d"]),
        "5",
        "the last value wins"
    );
    assert_eq!(q::<String>(&mut c, &["HGET", "h", "a"]), "10");
    assert_eq!(q::<Option<String>>(&mut c, &["HGET", "h", "zz"]), None);
    assert_eq!(q::<Option<String>>(&mut c, &["HGET", "nokey", "a"]), None);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["HMGET", "h", "a", "zz", "b"]),
        vec![Some("10".into()), None, Some("2".into())]
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["HMGET", "nokey", "a"]),
        vec![None]
    );
    assert_eq!(q::<String>(&mut c, &["HMSET", "h", "e", "5"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "e", "6"]), 0);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "f", "6"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 6);
    assert_eq!(q::<i64>(&mut c, &["HSTRLEN", "h", "a"]), 2);
    assert_eq!(q::<i64>(&mut c, &["HSTRLEN", "h", "zz"]), 0);
    assert_eq!(q::<i64>(&mut c, &["HEXISTS", "h", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HEXISTS", "h", "zz"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HKEYS", "h"]),
        vec!["a", "b", "c", "d", "e", "f"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HVALS", "h"]),
        vec!["10", "2", "3", "5", "5", "6"]
    );
    let all: BTreeMap<String, String> = q(&mut c, &["HGETALL", "h"]);
    assert_eq!(all.len(), 6);
    assert_eq!(q::<i64>(&mut c, &["HDEL", "h", "a", "a", "zz"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HDEL", "h", "b", "c", "d", "e", "f"]), 5);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "h"]),
        0,
        "a hash without fields is gone"
    );
    assert_eq!(q::<String>(&mut c, &["TYPE", "h"]), "none");
    assert_eq!(
        err(&mut c, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        err(&mut c, &["HMSET", "h", "a", "1", "b"]),
        "ERR wrong number of arguments for 'hmset' command"
    );
}

#[test]
fn deleted_and_recreated_hashes_do_not_resurrect_fields() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["HSET", "h", "old1", "1", "old2", "2"]);
    assert_eq!(q::<i64>(&mut c, &["DEL", "h"]), 1);
    q::<i64>(&mut c, &["HSET", "h", "new", "3"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["HKEYS", "h"]), vec!["new"]);
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 1);
    q::<String>(&mut c, &["SET", "h", "a string now"]);
    assert_eq!(err(&mut c, &["HGET", "h", "new"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["HSET", "h", "x", "1"]), WRONGTYPE);
    q::<i64>(&mut c, &["DEL", "h"]);
    q::<i64>(&mut c, &["HSET", "h", "x", "1"]);
    let all: BTreeMap<String, String> = q(&mut c, &["HGETALL", "h"]);
    assert_eq!(all, BTreeMap::from([("x".to_string(), "1".to_string())]));
    assert_eq!(err(&mut c, &["GET", "h"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["INCR", "h"]), WRONGTYPE);
}

#[test]
fn hashes_expire_rename_and_copy() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["HSET", "h", "a", "1"]);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "h", "60"]), 1);
    assert!(q::<i64>(&mut c, &["PTTL", "h"]) > 0);
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 0);
    assert_eq!(q::<Option<String>>(&mut c, &["HGET", "h", "a"]), None);
    q::<i64>(&mut c, &["HSET", "h", "b", "2"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HKEYS", "h"]),
        vec!["b"],
        "an expired hash starts afresh"
    );
    assert_eq!(q::<String>(&mut c, &["RENAME", "h", "h2"]), "OK");
    assert_eq!(q::<String>(&mut c, &["HGET", "h2", "b"]), "2");
    assert_eq!(q::<i64>(&mut c, &["COPY", "h2", "h3"]), 1);
    q::<i64>(&mut c, &["HSET", "h3", "c", "3"]);
    assert_eq!(
        q::<i64>(&mut c, &["HLEN", "h2"]),
        1,
        "the copy is independent"
    );
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h3"]), 2);
    let (_, hashes): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "TYPE", "hash"]);
    assert_eq!(
        hashes.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["h2".to_string(), "h3".to_string()])
    );
}

#[test]
fn field_counters() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "n", "5"]), 5);
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "n", "-7"]), -2);
    q::<i64>(
        &mut c,
        &["HSET", "h", "s", "abc", "big", "9223372036854775807"],
    );
    assert_eq!(
        err(&mut c, &["HINCRBY", "h", "s", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        err(&mut c, &["HINCRBY", "h", "big", "1"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        err(&mut c, &["HINCRBY", "h", "n", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h", "f", "10.5"]),
        "10.5"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h", "f", "0.1"]),
        "10.6"
    );
    assert_eq!(
        err(&mut c, &["HINCRBYFLOAT", "h", "s", "1"]),
        "ERR hash value is not a float"
    );
    assert_eq!(
        err(&mut c, &["HINCRBYFLOAT", "h", "f", "+inf"]),
        "ERR value is NaN or Infinity"
    );
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 4);
}

#[test]
fn hscan_visits_every_field_once_and_hrandfield_samples() {
    let s = TestServer::start();
    let mut c = s.conn();
    let mut cmd = redis::cmd("HSET");
    cmd.arg("big");
    for i in 0..1000 {
        cmd.arg(format!("f{i}")).arg(i);
    }
    assert_eq!(cmd.query::<i64>(&mut c).unwrap(), 1000);
    let mut seen = BTreeMap::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["HSCAN", "big", &cursor, "COUNT", "64"]);
        assert!(items.len() <= 128);
        for pair in items.chunks(2) {
            assert!(
                seen.insert(pair[0].clone(), pair[1].clone()).is_none(),
                "visited twice"
            );
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(seen["f123"], "123");
    let (_, matched): (String, Vec<String>) = q(
        &mut c,
        &["HSCAN", "big", "0", "MATCH", "f99*", "COUNT", "2000"],
    );
    assert_eq!(matched.len(), 2 * 11);
    let (cur, none): (String, Vec<String>) = q(&mut c, &["HSCAN", "nokey", "0"]);
    assert_eq!((cur.as_str(), none.len()), ("0", 0));

    let one: String = q(&mut c, &["HRANDFIELD", "big"]);
    assert!(one.starts_with('f'));
    assert_eq!(q::<Option<String>>(&mut c, &["HRANDFIELD", "nokey"]), None);
    let ten: Vec<String> = q(&mut c, &["HRANDFIELD", "big", "10"]);
    assert_eq!(
        ten.iter().collect::<BTreeSet<_>>().len(),
        10,
        "positive counts are distinct"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HRANDFIELD", "big", "5000"]).len(),
        1000
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HRANDFIELD", "big", "-2000"]).len(),
        2000,
        "negative counts repeat"
    );
    let pairs: Vec<String> = q(&mut c, &["HRANDFIELD", "big", "3", "WITHVALUES"]);
    assert_eq!(pairs.len(), 6);
    assert_eq!(pairs[1], pairs[0][1..], "value follows its field");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HRANDFIELD", "big", "0"]).len(),
        0
    );
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "big", "1", "BAD"]),
        "ERR syntax error"
    );
    assert!(q::<i64>(&mut c, &["MEMORY", "USAGE", "big"]) > 1000 * 8);
    assert_eq!(
        q::<Option<i64>>(&mut c, &["MEMORY", "USAGE", "nokey"]),
        None
    );
}

#[test]
fn resp3_hgetall_is_a_map() {
    let s = TestServer::start();
    q::<i64>(&mut s.conn(), &["HSET", "h", "a", "1"]);
    let out = s.raw(b"HELLO 3\r\nHGETALL h\r\n");
    assert!(String::from_utf8_lossy(&out).ends_with("%1\r\n$1\r\na\r\n$1\r\n1\r\n"));
}

#[test]
fn hrangebylex_walks_field_ranges_both_ways() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(
        &mut c,
        &[
            "HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5",
        ],
    );
    let r = |c: &mut redis::Connection, args: &[&str]| -> Vec<String> {
        let mut full = vec!["HRANGEBYLEX", "h"];
        full.extend_from_slice(args);
        q(c, &full)
    };
    assert_eq!(
        r(&mut c, &["-", "+"]),
        vec!["a", "1", "b", "2", "c", "3", "d", "4", "e", "5"]
    );
    assert_eq!(r(&mut c, &["[b", "(d"]), vec!["b", "2", "c", "3"]);
    assert_eq!(r(&mut c, &["(b", "[d"]), vec!["c", "3", "d", "4"]);
    assert_eq!(
        r(&mut c, &["[d", "[b", "REV"]),
        vec!["d", "4", "c", "3", "b", "2"]
    );
    assert_eq!(
        r(&mut c, &["+", "-", "REV", "LIMIT", "1", "2"]),
        vec!["d", "4", "c", "3"]
    );
    assert_eq!(
        r(&mut c, &["-", "+", "LIMIT", "3", "10"]),
        vec!["d", "4", "e", "5"]
    );
    assert_eq!(r(&mut c, &["[x", "+"]).len(), 0);
    assert_eq!(
        err(&mut c, &["HRANGEBYLEX", "h", "b", "+"]),
        "ERR the min is illegal"
    );
    assert_eq!(
        err(&mut c, &["HRANGEBYLEX", "h", "+", "[a"]),
        "ERR min > max"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HRANGEBYLEX", "nokey", "-", "+"]).len(),
        0
    );
}

/// A field that already holds the value HSET gives it is not written again (as Kvrocks): alone,
/// in a pipeline's group and inside EXEC, where an earlier command of the same batch set it.
/// The replies are Redis', and WATCH and keyspace events still see the HSET, as in Redis.
#[test]
fn hset_of_an_unchanged_value_writes_nothing() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]), 2);
    let before = latest_sequence(&mut c);
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]), 0);
    assert_eq!(q::<String>(&mut c, &["HMSET", "h", "a", "1"]), "OK");
    assert_eq!(
        latest_sequence(&mut c),
        before,
        "nothing changed, nothing written"
    );

    // Pipelined: one group; only the changed value and the new field (and the size) are written.
    let (r1, r2, r3, r4): (i64, i64, i64, i64) = redis::pipe()
        .cmd("HSET")
        .arg("h")
        .arg("a")
        .arg("1")
        .cmd("HSET")
        .arg("h")
        .arg("a")
        .arg("7")
        .cmd("HSET")
        .arg("h")
        .arg("a")
        .arg("7")
        .cmd("HSET")
        .arg("h")
        .arg("c")
        .arg("3")
        .query(&mut c)
        .unwrap();
    assert_eq!((r1, r2, r3, r4), (0, 0, 0, 1));
    assert_eq!(
        latest_sequence(&mut c),
        before + 3,
        "a once, c, and the metadata"
    );
    let all: BTreeMap<String, String> = q(&mut c, &["HGETALL", "h"]);
    let want: BTreeMap<String, String> = [("a", "7"), ("b", "2"), ("c", "3")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(all, want);

    // Inside EXEC, a value set by an earlier command of the transaction counts as there.
    let (e1, e2, e3): (i64, i64, i64) = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg("h")
        .arg("d")
        .arg("4")
        .cmd("HSET")
        .arg("h")
        .arg("d")
        .arg("4")
        .cmd("HSET")
        .arg("h")
        .arg("b")
        .arg("2")
        .query(&mut c)
        .unwrap();
    assert_eq!((e1, e2, e3), (1, 0, 0));
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 4);

    // WATCH still sees an HSET that changed nothing (Redis signals the key regardless).
    let mut other = s.conn();
    assert_eq!(q::<String>(&mut c, &["WATCH", "h"]), "OK");
    assert_eq!(q::<i64>(&mut other, &["HSET", "h", "a", "7"]), 0);
    assert_eq!(q::<String>(&mut c, &["MULTI"]), "OK");
    assert_eq!(q::<String>(&mut c, &["HSET", "h", "x", "1"]), "QUEUED");
    assert_eq!(q::<Option<Vec<i64>>>(&mut c, &["EXEC"]), None);
}
