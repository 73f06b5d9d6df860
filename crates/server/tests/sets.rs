//! The set type through a real client.

mod common;
use std::collections::BTreeSet;

use common::{err, q, TestServer};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn set_of(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn add_remove_and_query_members() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["SADD", "s", "a", "b", "c", "a"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SADD", "s", "c", "d"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]), 4);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", "z"]), 0);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SMISMEMBER", "s", "a", "z", "d"]),
        vec![1, 0, 1]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SMISMEMBER", "nokey", "a"]),
        vec![0]
    );
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SMEMBERS", "s"]),
        set_of(&["a", "b", "c", "d"])
    );
    assert_eq!(q::<i64>(&mut c, &["SREM", "s", "a", "z", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SREM", "s", "b", "c", "d"]), 3);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "s"]),
        0,
        "an empty set is gone"
    );
    q::<String>(&mut c, &["SET", "str", "x"]);
    assert_eq!(err(&mut c, &["SADD", "str", "a"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["SMEMBERS", "str"]), WRONGTYPE);
    q::<i64>(&mut c, &["SADD", "s2", "m"]);
    assert_eq!(err(&mut c, &["GET", "s2"]), WRONGTYPE);
    let v: Vec<Option<String>> = q(&mut c, &["MGET", "str", "s2"]);
    assert_eq!(v, vec![Some("x".to_string()), None]);
}

#[test]
fn spop_srandmember_smove() {
    let s = TestServer::start();
    let mut c = s.conn();
    let members: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let mut cmd = redis::cmd("SADD");
    cmd.arg("s").arg(&members);
    assert_eq!(cmd.query::<i64>(&mut c).unwrap(), 50);
    let popped: Vec<String> = q(&mut c, &["SPOP", "s", "10"]);
    assert_eq!(popped.iter().collect::<BTreeSet<_>>().len(), 10);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]), 40);
    for p in &popped {
        assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", p]), 0);
    }
    let one: String = q(&mut c, &["SPOP", "s"]);
    assert!(one.starts_with('m'));
    assert_eq!(q::<Option<String>>(&mut c, &["SPOP", "nokey"]), None);
    assert_eq!(
        err(&mut c, &["SPOP", "s", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SRANDMEMBER", "s", "100"]).len(),
        39
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SRANDMEMBER", "s", "-100"]).len(),
        100
    );
    assert_eq!(
        q::<i64>(&mut c, &["SCARD", "s"]),
        39,
        "SRANDMEMBER removes nothing"
    );
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        seen.insert(q::<String>(&mut c, &["SRANDMEMBER", "s"]));
    }
    assert!(
        seen.len() > 10,
        "SRANDMEMBER is random, not the first members"
    );
    q::<i64>(&mut c, &["SADD", "src", "x", "y"]);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "src", "dst", "x"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "src", "dst", "nope"]), 0);
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SMEMBERS", "dst"]),
        set_of(&["x"])
    );
    q::<String>(&mut c, &["SET", "str", "v"]);
    assert_eq!(err(&mut c, &["SMOVE", "src", "str", "y"]), WRONGTYPE);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "src", "dst", "y"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "src"]), 0);
}

#[test]
fn algebra_and_store_forms() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["SADD", "a", "1", "2", "3", "4"]);
    q::<i64>(&mut c, &["SADD", "b", "3", "4", "5"]);
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SDIFF", "a", "b"]),
        set_of(&["1", "2"])
    );
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SINTER", "a", "b"]),
        set_of(&["3", "4"])
    );
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SUNION", "a", "b", "nokey"]),
        set_of(&["1", "2", "3", "4", "5"])
    );
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SINTER", "a", "nokey"]),
        set_of(&[])
    );
    assert_eq!(q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b"]), 2);
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b", "LIMIT", "1"]),
        1
    );
    assert_eq!(
        err(&mut c, &["SINTERCARD", "0", "a"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut c, &["SINTERCARD", "3", "a", "b"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        err(&mut c, &["SINTERCARD", "1", "a", "LIMIT", "-1"]),
        "ERR LIMIT can't be negative"
    );
    q::<String>(&mut c, &["SET", "dst", "a string"]);
    assert_eq!(q::<i64>(&mut c, &["SUNIONSTORE", "dst", "a", "b"]), 5);
    assert_eq!(q::<String>(&mut c, &["TYPE", "dst"]), "set");
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "dst", "a", "b"]), 2);
    assert_eq!(
        q::<BTreeSet<String>>(&mut c, &["SMEMBERS", "dst"]),
        set_of(&["3", "4"]),
        "old members are gone"
    );
    assert_eq!(q::<i64>(&mut c, &["SDIFFSTORE", "dst", "a", "a"]), 0);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "dst"]),
        0,
        "an empty result deletes the destination"
    );
    q::<String>(&mut c, &["SET", "str", "x"]);
    assert_eq!(err(&mut c, &["SUNION", "a", "str"]), WRONGTYPE);
}

#[test]
fn sscan_visits_every_member_once() {
    let s = TestServer::start();
    let mut c = s.conn();
    let members: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    redis::cmd("SADD")
        .arg("s")
        .arg(&members)
        .query::<i64>(&mut c)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["SSCAN", "s", &cursor, "COUNT", "37"]);
        for m in items {
            assert!(seen.insert(m), "visited twice");
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 500);
}

/// A huge negative count is refused instead of building a reply that cannot fit in memory.
#[test]
fn random_members_with_a_huge_negative_count_are_refused() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["SADD", "s", "a"]);
    let _: i64 = q(&mut c, &["HSET", "h", "f", "v"]);
    let _: i64 = q(&mut c, &["ZADD", "z", "1", "m"]);
    for cmd in ["SRANDMEMBER", "HRANDFIELD", "ZRANDMEMBER"] {
        let key = &cmd[..1].to_lowercase();
        assert!(err(&mut c, &[cmd, key, "-100000000000"]).contains("out of range"));
        assert!(err(&mut c, &[cmd, key, "-9223372036854775808"]).contains("out of range"));
        assert_eq!(q::<Vec<String>>(&mut c, &[cmd, key, "-3"]).len(), 3);
    }
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}
