//! MULTI/EXEC/DISCARD/WATCH through the real binary.

mod common;
use common::{err, q, TestServer};
use redis::Value;

fn exec(c: &mut redis::Connection) -> Value {
    redis::cmd("EXEC").query(c).unwrap()
}

fn resp(cmds: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for cmd in cmds {
        out.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
        for a in *cmd {
            out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
    }
    out
}

#[test]
fn exec_runs_the_queue_and_each_command_sees_the_earlier_writes() {
    let s = TestServer::start();
    let queued: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["INCR", "a"],
        &["GET", "a"],
        &["LPUSH", "a", "x"],
        &["HSET", "h", "f1", "1", "f2", "2"],
        &["HDEL", "h", "f1"],
        &["HGETALL", "h"],
        &["ZADD", "z", "1", "one", "2", "two"],
        &["ZRANGE", "z", "0", "-1"],
        &["DEL", "z"],
        &["ZCARD", "z"],
    ];
    let mut cmds: Vec<&[&str]> = vec![&["MULTI"]];
    cmds.extend_from_slice(queued);
    cmds.push(&["EXEC"]);
    // Raw: a client library turns an error element into an error for the whole reply.
    let reply = String::from_utf8(s.raw(&resp(&cmds))).unwrap();
    let expected = String::from("+OK\r\n")
        + &"+QUEUED\r\n".repeat(queued.len())
        + concat!(
            "*11\r\n+OK\r\n:2\r\n$1\r\n2\r\n",
            // A failing command is an error element; the others still run.
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            ":2\r\n:1\r\n*2\r\n$2\r\nf2\r\n$1\r\n2\r\n",
            ":2\r\n*2\r\n$3\r\none\r\n$3\r\ntwo\r\n:1\r\n:0\r\n"
        );
    assert_eq!(reply, expected);
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["GET", "a"]), "2");
    assert_eq!(q::<Vec<String>>(&mut c, &["HKEYS", "h"]), ["f2"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "z"]), 0);
}

#[test]
fn queueing_errors_abort_and_state_errors_are_reported() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(err(&mut c, &["EXEC"]), "ERR EXEC without MULTI");
    assert_eq!(err(&mut c, &["DISCARD"]), "ERR DISCARD without MULTI");
    let _: () = q(&mut c, &["MULTI"]);
    assert_eq!(err(&mut c, &["MULTI"]), "ERR MULTI calls can not be nested");
    assert_eq!(
        err(&mut c, &["WATCH", "x"]),
        "ERR WATCH inside MULTI is not allowed"
    );
    let _: String = q(&mut c, &["SET", "k1", "v"]);
    assert!(err(&mut c, &["NOSUCHCOMMAND"]).starts_with("ERR unknown command"));
    assert!(err(&mut c, &["GET"]).contains("wrong number of arguments"));
    assert_eq!(
        err(&mut c, &["SHUTDOWN"]),
        "ERR Command not allowed inside a transaction"
    );
    let _: String = q(&mut c, &["SET", "k2", "v"]);
    assert_eq!(
        err(&mut c, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k1", "k2"]), 0);
    // The connection left MULTI.
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");

    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["SET", "k1", "v"]);
    let _: () = q(&mut c, &["DISCARD"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k1"]), 0);
    // An empty transaction answers an empty array.
    let _: () = q(&mut c, &["MULTI"]);
    assert_eq!(exec(&mut c), Value::Array(vec![]));
}

#[test]
fn watch_fails_exec_after_a_write_from_any_connection_or_an_expiry() {
    let s = TestServer::start();
    let mut c = s.conn();
    let mut other = s.conn();

    // Not modified: EXEC runs.
    let _: () = q(&mut c, &["SET", "x", "1"]);
    let _: () = q(&mut c, &["WATCH", "x", "y"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["INCR", "x"]);
    assert_eq!(exec(&mut c), Value::Array(vec![Value::Int(2)]));

    // Modified by another connection: EXEC answers nil and writes nothing.
    let _: () = q(&mut c, &["WATCH", "x"]);
    let _: () = q(&mut other, &["SET", "x", "10"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["INCR", "x"]);
    assert_eq!(exec(&mut c), Value::Nil);
    assert_eq!(q::<String>(&mut c, &["GET", "x"]), "10");

    // EXEC unwatched: the next transaction runs.
    let _: () = q(&mut other, &["SET", "x", "20"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["INCR", "x"]);
    assert_eq!(exec(&mut c), Value::Array(vec![Value::Int(21)]));

    // A write to a key that does not exist yet counts too; UNWATCH forgets.
    let _: () = q(&mut c, &["WATCH", "fresh"]);
    let _: i64 = q(&mut other, &["SADD", "fresh", "m"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["PING"]);
    assert_eq!(exec(&mut c), Value::Nil);
    let _: () = q(&mut c, &["WATCH", "fresh"]);
    let _: i64 = q(&mut other, &["SADD", "fresh", "n"]);
    let _: () = q(&mut c, &["UNWATCH"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["PING"]);
    assert_eq!(
        exec(&mut c),
        Value::Array(vec![Value::SimpleString("PONG".into())])
    );

    // A watched key that expires before EXEC counts as modified.
    let _: () = q(&mut c, &["SET", "ttl", "v", "PX", "100"]);
    let _: () = q(&mut c, &["WATCH", "ttl"]);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["PING"]);
    assert_eq!(exec(&mut c), Value::Nil);

    // FLUSHALL touches watched keys that exist, not the missing ones.
    let _: () = q(&mut c, &["SET", "x", "1"]);
    let _: () = q(&mut c, &["WATCH", "x"]);
    let _: () = q(&mut other, &["FLUSHALL"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["PING"]);
    assert_eq!(exec(&mut c), Value::Nil);
    let _: () = q(&mut c, &["WATCH", "x"]);
    let _: () = q(&mut other, &["FLUSHALL"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["PING"]);
    assert_eq!(
        exec(&mut c),
        Value::Array(vec![Value::SimpleString("PONG".into())])
    );
}

/// Other clients never see half a transaction: EXEC's writes are one WriteBatch.
#[test]
fn other_clients_never_see_part_of_a_transaction() {
    let s = TestServer::start();
    let client = s.client();
    let writer = {
        let client = client.clone();
        std::thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            for _ in 0..2000 {
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg("a")
                    .cmd("INCR")
                    .arg("b")
                    .cmd("RPUSH")
                    .arg("l")
                    .arg("e")
                    .query(&mut c)
                    .unwrap();
            }
        })
    };
    let reader = common::PairWatcher::start(client.clone(), "a transaction");
    writer.join().unwrap();
    assert!(reader.stop().0 > 0);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "a"]), 2000);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 2000);
}

/// The optimistic-locking pattern loses no update under contention.
#[test]
fn watch_multi_exec_increments_lose_nothing_under_contention() {
    let s = TestServer::start();
    let client = s.client();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                let mut done = 0;
                while done < 50 {
                    let _: () = redis::cmd("WATCH").arg("counter").query(&mut c).unwrap();
                    let v: Option<i64> = redis::cmd("GET").arg("counter").query(&mut c).unwrap();
                    let r: Option<((),)> = redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg("counter")
                        .arg(v.unwrap_or(0) + 1)
                        .query(&mut c)
                        .unwrap();
                    if r.is_some() {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "counter"]), 200);
}

#[test]
fn blocking_commands_do_not_block_in_exec_and_exec_wakes_blocked_clients() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["BLPOP", "empty", "0"]);
    let _: String = q(&mut c, &["BLMOVE", "empty", "dst", "LEFT", "LEFT", "0"]);
    let _: String = q(&mut c, &["BZPOPMIN", "emptyz", "0"]);
    assert_eq!(
        exec(&mut c),
        Value::Array(vec![Value::Nil, Value::Nil, Value::Nil])
    );

    let client = s.client();
    let waiter = std::thread::spawn(move || {
        let mut w = client.get_connection().unwrap();
        let v: Vec<String> = redis::cmd("BLPOP")
            .arg("q")
            .arg("10")
            .query(&mut w)
            .unwrap();
        v
    });
    common::wait_until(
        5,
        || {
            let info: String = q(&mut c, &["INFO", "clients"]);
            info.contains("blocked_clients:1")
        },
        || "BLPOP did not block".into(),
    );
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["RPUSH", "q", "job"]);
    assert_eq!(exec(&mut c), Value::Array(vec![Value::Int(1)]));
    assert_eq!(waiter.join().unwrap(), ["q", "job"]);
}

/// Commands inside a transaction read what the transaction wrote before them, for every type
/// whose elements are read one by one (list elements, hash fields, sorted-set scores, bitmap
/// fragments, HyperLogLog registers, RANDOMKEY's bounds), in MULTI/EXEC and in scripts alike.
#[test]
fn reads_inside_a_transaction_see_its_own_writes() {
    let s = TestServer::start();
    let mut c = s.conn();
    // RANDOMKEY on an empty database finds the key the transaction just wrote.
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI")
        .cmd("SET")
        .arg("only")
        .arg(1)
        .cmd("RANDOMKEY")
        .cmd("EXEC");
    let replies: Vec<redis::Value> = pipe.query(&mut c).unwrap();
    assert_eq!(
        replies.last(),
        Some(&redis::Value::Array(vec![
            redis::Value::Okay,
            redis::Value::BulkString(b"only".to_vec())
        ]))
    );
    q::<i64>(&mut c, &["DEL", "only"]);
    let script = "redis.call('rpush', KEYS[1], 'a') \
                  redis.call('hset', KEYS[2], 'f', 1) \
                  redis.call('zadd', KEYS[3], 1, 'a') \
                  redis.call('setbit', KEYS[4], 3, 1) \
                  redis.call('pfadd', KEYS[5], 'x') \
                  return {redis.call('lpop', KEYS[1]), redis.call('hincrby', KEYS[2], 'f', 5), \
                          redis.call('zincrby', KEYS[3], 2, 'a'), redis.call('setbit', KEYS[4], 3, 0), \
                          redis.call('pfadd', KEYS[5], 'x')}";
    let got: Vec<redis::Value> = q(&mut c, &["EVAL", script, "5", "l", "h", "z", "b", "p"]);
    assert_eq!(
        got,
        [
            redis::Value::BulkString(b"a".to_vec()),
            redis::Value::Int(6),
            redis::Value::BulkString(b"3".to_vec()),
            redis::Value::Int(1),
            redis::Value::Int(0),
        ]
    );
    q::<i64>(&mut c, &["DEL", "l", "h", "z", "b", "p"]);
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI")
        .cmd("RPUSH")
        .arg("l")
        .arg("a")
        .cmd("LINDEX")
        .arg("l")
        .arg(0)
        .cmd("HSET")
        .arg("h")
        .arg("f")
        .arg(1)
        .cmd("HINCRBY")
        .arg("h")
        .arg("f")
        .arg(5)
        .cmd("ZADD")
        .arg("z")
        .arg(1)
        .arg("a")
        .cmd("ZSCORE")
        .arg("z")
        .arg("a")
        .cmd("SETBIT")
        .arg("b")
        .arg(3)
        .arg(1)
        .cmd("GETBIT")
        .arg("b")
        .arg(3)
        .cmd("PFADD")
        .arg("p")
        .arg("x")
        .cmd("PFADD")
        .arg("p")
        .arg("x")
        .cmd("EXEC");
    let replies: Vec<redis::Value> = pipe.query(&mut c).unwrap();
    let exec = format!("{:?}", replies.last().unwrap());
    for expected in ["bulk-string('\"a\"')", "int(6)", "bulk-string('\"1\"')"] {
        assert!(exec.contains(expected), "{expected} in {exec}");
    }
    let redis::Value::Array(items) = replies.last().unwrap() else {
        panic!("EXEC: {exec}");
    };
    assert_eq!(items[7], redis::Value::Int(1), "GETBIT sees the SETBIT");
    assert_eq!(
        items[9],
        redis::Value::Int(0),
        "the second PFADD changes nothing"
    );
}

/// A client blocked in BRPOPLPUSH does not mark the watched destination when a write that
/// leaves its source empty (DEL, LPUSHX on a missing list) wakes it: the watcher's EXEC runs.
/// Once it really moves an element, it does mark it.
#[test]
fn a_blocked_move_touches_watchers_only_when_it_moves() {
    let s = TestServer::start();
    let client = s.client();
    let blocked = std::thread::spawn(move || {
        let mut b = client.get_connection().unwrap();
        redis::cmd("BRPOPLPUSH")
            .arg("src")
            .arg("dst")
            .arg(0)
            .query::<Option<String>>(&mut b)
            .unwrap()
    });
    let mut c = s.conn();
    common::wait_until(
        5,
        || q::<String>(&mut c, &["INFO", "clients"]).contains("blocked_clients:1"),
        || "BRPOPLPUSH did not block".into(),
    );
    let mut w = s.conn();
    q::<String>(&mut w, &["WATCH", "dst"]);
    q::<String>(&mut w, &["MULTI"]);
    q::<String>(&mut w, &["SET", "x", "1"]);
    q::<i64>(&mut c, &["DEL", "src"]);
    q::<i64>(&mut c, &["LPUSHX", "src", "v"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(exec(&mut w), Value::Array(vec![Value::Okay]));
    q::<String>(&mut w, &["WATCH", "dst"]);
    q::<String>(&mut w, &["MULTI"]);
    q::<String>(&mut w, &["SET", "x", "2"]);
    q::<i64>(&mut c, &["LPUSH", "src", "e"]);
    assert_eq!(blocked.join().unwrap(), Some("e".into()));
    assert_eq!(exec(&mut w), Value::Nil);
}

/// A script inside EXEC that pushes to a list serves a client blocked on it.
#[test]
fn a_script_inside_exec_wakes_blocked_clients() {
    let s = TestServer::start();
    let client = s.client();
    let blocked = std::thread::spawn(move || {
        let mut b = client.get_connection().unwrap();
        redis::cmd("BLPOP")
            .arg("L")
            .arg(10)
            .query::<Option<Vec<String>>>(&mut b)
            .unwrap()
    });
    let mut c = s.conn();
    common::wait_until(
        5,
        || q::<String>(&mut c, &["INFO", "clients"]).contains("blocked_clients:1"),
        || "BLPOP did not block".into(),
    );
    let started = std::time::Instant::now();
    q::<String>(&mut c, &["MULTI"]);
    q::<String>(
        &mut c,
        &["EVAL", "return redis.call('rpush', KEYS[1], 'x')", "1", "L"],
    );
    exec(&mut c);
    assert_eq!(blocked.join().unwrap(), Some(vec!["L".into(), "x".into()]));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// FLUSHALL from a script marks the watchers of the keys it removes, as from a client.
#[test]
fn a_flush_from_a_script_breaks_watch() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "1"]);
    let mut w = s.conn();
    q::<String>(&mut w, &["WATCH", "k"]);
    q::<Value>(&mut c, &["EVAL", "return redis.call('flushall')", "0"]);
    q::<String>(&mut w, &["MULTI"]);
    q::<String>(&mut w, &["SET", "x", "1"]);
    assert_eq!(exec(&mut w), Value::Nil);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
}

/// SUNION of two sets while another client moves one member between them, back and forth:
/// how many of `rounds` unions missed a member.
fn unions_missing_a_member(s: &TestServer, rounds: usize) -> usize {
    let mut c = s.conn();
    let n = 20_000;
    for (key, range) in [("a", 0..n / 2), ("b", n / 2..n)] {
        for chunk in range.collect::<Vec<_>>().chunks(1000) {
            let mut cmd = redis::cmd("SADD");
            cmd.arg(key);
            for i in chunk {
                cmd.arg(format!("m{i:05}"));
            }
            let _: i64 = cmd.query(&mut c).unwrap();
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let stop = stop.clone();
        let mut m = s.conn();
        std::thread::spawn(move || {
            // The first member of a: read early by SUNION's walk of a, moved to b, whose walk
            // comes later; and back.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _: i64 = q(&mut m, &["SMOVE", "a", "b", "m00000"]);
                let _: i64 = q(&mut m, &["SMOVE", "b", "a", "m00000"]);
            }
        })
    };
    let mut missing = 0;
    for _ in 0..rounds {
        let all: Vec<String> = q(&mut c, &["SUNION", "b", "a"]);
        if all.len() != n {
            missing += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mover.join().unwrap();
    missing
}

#[test]
fn txn_context_makes_every_read_of_a_command_see_one_snapshot() {
    // Without the context 27 of 200 unions missed the member here (measured once).
    let s = TestServer::start_with(&["--txn-context-enabled", "yes"]);
    assert_eq!(unions_missing_a_member(&s, 200), 0);
    // A command that reads after its own write sees the write (a list rotated onto itself).
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "l", "1", "2", "3"]);
    let moved: String = q(&mut c, &["LMOVE", "l", "l", "LEFT", "RIGHT"]);
    assert_eq!(moved, "1");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        ["2", "3", "1"]
    );
    let _: i64 = q(&mut c, &["SADD", "x", "1", "2"]);
    let _: i64 = q(&mut c, &["SUNIONSTORE", "x", "x", "a"]);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "x"]), 10_002);
}
