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

#[test]
fn lex_ranges_stores_and_removals() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: i64 = q(
        &mut c,
        &[
            "ZADD", "z", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e",
        ],
    );
    let v: Vec<String> = q(&mut c, &["ZRANGEBYLEX", "z", "[b", "(e"]);
    assert_eq!(v, ["b", "c", "d"]);
    let v: Vec<String> = q(
        &mut c,
        &["ZREVRANGEBYLEX", "z", "+", "-", "LIMIT", "1", "2"],
    );
    assert_eq!(v, ["d", "c"]);
    assert_eq!(q::<i64>(&mut c, &["ZLEXCOUNT", "z", "-", "+"]), 5);
    assert_eq!(q::<i64>(&mut c, &["ZLEXCOUNT", "z", "+", "-"]), 0);
    assert_eq!(
        err(&mut c, &["ZLEXCOUNT", "z", "b", "c"]),
        "ERR min or max not valid string range item"
    );
    // ZRANGESTORE keeps the scores; an empty result deletes the destination.
    let _: i64 = q(&mut c, &["ZADD", "s", "1", "x", "2", "y", "3", "w"]);
    assert_eq!(
        q::<i64>(
            &mut c,
            &["ZRANGESTORE", "dst", "s", "(1", "+inf", "BYSCORE"]
        ),
        2
    );
    let v: Vec<String> = q(&mut c, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]);
    assert_eq!(v, ["y", "2", "w", "3"]);
    assert_eq!(q::<i64>(&mut c, &["ZRANGESTORE", "dst", "s", "5", "6"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]), 0);
    // Removals by rank, score and lex.
    assert_eq!(q::<i64>(&mut c, &["ZREMRANGEBYRANK", "z", "0", "1"]), 2);
    assert_eq!(q::<i64>(&mut c, &["ZREMRANGEBYLEX", "z", "[d", "+"]), 2);
    assert_eq!(
        q::<i64>(&mut c, &["ZREMRANGEBYSCORE", "s", "-inf", "(3"]),
        2
    );
    let v: Vec<String> = q(&mut c, &["ZRANGE", "z", "0", "-1"]);
    assert_eq!(v, ["c"]);
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["ZRANGEBYLEX", "str", "-", "+"]).starts_with("WRONGTYPE"));
}

#[test]
fn union_inter_diff_with_weights_and_aggregates() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["ZADD", "a", "1", "x", "2", "y"]);
    let _: i64 = q(&mut c, &["ZADD", "b", "10", "y", "20", "z"]);
    let _: i64 = q(&mut c, &["SADD", "plain", "y", "z"]);
    let v: Vec<String> = q(&mut c, &["ZUNION", "2", "a", "b", "WITHSCORES"]);
    assert_eq!(v, ["x", "1", "y", "12", "z", "20"]);
    let v: Vec<String> = q(
        &mut c,
        &[
            "ZINTER",
            "2",
            "a",
            "b",
            "WEIGHTS",
            "2",
            "1",
            "AGGREGATE",
            "MAX",
            "WITHSCORES",
        ],
    );
    assert_eq!(v, ["y", "10"]);
    let v: Vec<String> = q(&mut c, &["ZDIFF", "2", "a", "b"]);
    assert_eq!(v, ["x"]);
    // A plain set counts with score 1.
    let v: Vec<String> = q(&mut c, &["ZINTER", "2", "a", "plain", "WITHSCORES"]);
    assert_eq!(v, ["y", "3"]);
    assert_eq!(
        q::<i64>(
            &mut c,
            &["ZUNIONSTORE", "u", "2", "a", "b", "AGGREGATE", "MIN"]
        ),
        3
    );
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "u", "y"]), "2");
    assert_eq!(q::<i64>(&mut c, &["ZINTERSTORE", "i", "2", "a", "b"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZDIFFSTORE", "d", "2", "b", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZINTERCARD", "2", "a", "b"]), 1);
    assert_eq!(
        q::<i64>(&mut c, &["ZINTERCARD", "2", "u", "u", "LIMIT", "2"]),
        2
    );
    assert_eq!(
        err(&mut c, &["ZINTERCARD", "1", "a", "LIMIT", "-1"]),
        "ERR LIMIT can't be negative"
    );
    assert_eq!(
        err(&mut c, &["ZUNION", "0", "a"]),
        "ERR at least 1 input key is needed for 'zunion' command"
    );
    assert_eq!(err(&mut c, &["ZUNION", "3", "a", "b"]), "ERR syntax error");
    assert_eq!(
        err(&mut c, &["ZUNION", "1", "a", "WEIGHTS", "x"]),
        "ERR weight value is not a float"
    );
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["ZUNION", "2", "a", "str"]).starts_with("WRONGTYPE"));
}

#[test]
fn random_members_mpop_blocking_pops_and_scan() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    let one: String = q(&mut c, &["ZRANDMEMBER", "z"]);
    assert!(["a", "b", "c"].contains(&one.as_str()));
    let v: Vec<String> = q(&mut c, &["ZRANDMEMBER", "z", "10"]);
    assert_eq!(v.len(), 3, "a positive count gives distinct members");
    let v: Vec<String> = q(&mut c, &["ZRANDMEMBER", "z", "-7"]);
    assert_eq!(v.len(), 7, "a negative count may repeat");
    let v: Vec<String> = q(&mut c, &["ZRANDMEMBER", "z", "2", "WITHSCORES"]);
    assert_eq!(v.len(), 4);
    let none: Option<String> = q(&mut c, &["ZRANDMEMBER", "missing"]);
    assert_eq!(none, None);

    let v: redis::Value = q(&mut c, &["ZMPOP", "2", "missing", "z", "MAX", "COUNT", "2"]);
    assert_eq!(format!("{v:?}").matches("bulk-string").count(), 5, "{v:?}");
    assert_eq!(
        err(&mut c, &["ZMPOP", "0", "z", "MIN"]),
        "ERR numkeys should be greater than 0"
    );

    // BZPOPMIN waits for a ZADD from another connection.
    let port = s.port;
    let waiter = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut c = client.get_connection().unwrap();
        redis::cmd("BZPOPMIN")
            .arg("empty")
            .arg("5")
            .query::<Vec<String>>(&mut c)
            .unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _: i64 = q(&mut c, &["ZADD", "empty", "7", "m"]);
    assert_eq!(waiter.join().unwrap(), ["empty", "m", "7"]);
    let started = std::time::Instant::now();
    let v: Option<Vec<String>> = q(&mut c, &["BZMPOP", "0.2", "1", "nothing", "MIN"]);
    assert_eq!(v, None);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));

    // ZSCAN walks members with their scores.
    for i in 0..50 {
        let _: i64 = q(&mut c, &["ZADD", "big", &i.to_string(), &format!("m{i}")]);
    }
    let mut cursor = "0".to_string();
    let mut seen = 0;
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["ZSCAN", "big", &cursor, "COUNT", "7"]);
        for pair in items.chunks(2) {
            let n: usize = pair[0][1..].parse().unwrap();
            assert_eq!(pair[1], n.to_string());
            seen += 1;
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen, 50);
}
