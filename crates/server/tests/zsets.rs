//! The sorted-set type through a real client (first part of the command set).

mod common;
use common::{err, q, TestServer};

#[test]
fn zadd_flags_scores_and_ranges() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        3
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "NX", "10", "a", "4", "d"]),
        1
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "XX", "CH", "1.5", "a", "9", "new"]),
        1
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "GT", "CH", "1", "a", "5", "b"]),
        1
    );
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "z", "a"]), "1.5");
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "z", "b"]), "5");
    assert_eq!(
        q::<String>(&mut c, &["ZADD", "z", "INCR", "0.1", "c"]),
        "3.1000000000000001"
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["ZADD", "z", "NX", "INCR", "1", "c"]),
        None
    );
    assert_eq!(q::<String>(&mut c, &["ZINCRBY", "z", "-1", "d"]), "3");
    assert_eq!(q::<i64>(&mut c, &["ZCARD", "z"]), 4);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-1"]),
        vec!["a", "d", "c", "b"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "1", "2", "WITHSCORES"]),
        vec!["d", "3", "c", "3.1000000000000001"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZREVRANGE", "z", "0", "0"]),
        vec!["b"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGEBYSCORE", "z", "(1.5", "3"]),
        vec!["d"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"]
        ),
        vec!["d", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZREVRANGEBYSCORE", "z", "+inf", "3"]),
        vec!["b", "c", "d"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "5", "(3", "BYSCORE", "REV"]),
        vec!["b", "c"]
    );
    assert_eq!(q::<i64>(&mut c, &["ZCOUNT", "z", "2", "+inf"]), 3);
    assert_eq!(q::<i64>(&mut c, &["ZRANK", "z", "d"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZREVRANK", "z", "d"]), 2);
    assert_eq!(q::<Option<i64>>(&mut c, &["ZRANK", "z", "nope"]), None);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["ZMSCORE", "z", "a", "nope"]),
        vec![Some("1.5".into()), None]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZPOPMIN", "z"]),
        vec!["a", "1.5"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZPOPMAX", "z", "2"]),
        vec!["b", "5", "c", "3.1000000000000001"]
    );
    assert_eq!(q::<i64>(&mut c, &["ZREM", "z", "d", "nope"]), 1);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "z"]),
        0,
        "an empty sorted set is gone"
    );
    assert_eq!(
        err(&mut c, &["ZADD", "z", "NX", "XX", "1", "a"]),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut c, &["ZADD", "z", "GT", "LT", "1", "a"]),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut c, &["ZADD", "z", "INCR", "1", "a", "2", "b"]),
        "ERR INCR option supports a single increment-element pair"
    );
    assert_eq!(
        err(&mut c, &["ZADD", "z", "x", "a"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut c, &["ZADD", "z", "1", "a", "2"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["ZRANGEBYSCORE", "z", "a", "1"]),
        "ERR min or max is not a float"
    );
    q::<String>(&mut c, &["SET", "str", "v"]);
    assert_eq!(
        err(&mut c, &["ZADD", "str", "1", "a"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn lex_ranges_and_the_score_index_on_disk() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(
        &mut c,
        &["ZADD", "z", "0", "a", "0", "b", "0", "c", "0", "d"],
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "[b", "(d", "BYLEX"]),
        vec!["b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["ZRANGE", "z", "+", "-", "BYLEX", "REV", "LIMIT", "0", "2"]
        ),
        vec!["d", "c"]
    );
    assert_eq!(
        err(&mut c, &["ZRANGE", "z", "b", "d", "BYLEX"]),
        "ERR min or max not valid string range item"
    );
    // Re-scoring moves the member in the score index: ranks follow the new score.
    q::<i64>(&mut c, &["ZADD", "z", "-1", "d"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "0"]),
        vec!["d"]
    );
    assert_eq!(q::<i64>(&mut c, &["ZCARD", "z"]), 4);
    assert_eq!(q::<String>(&mut c, &["TYPE", "z"]), "zset");
    assert_eq!(q::<i64>(&mut c, &["COPY", "z", "z2"]), 1);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z2", "0", "-1"]),
        vec!["d", "a", "b", "c"],
        "COPY carries the score index"
    );
}
