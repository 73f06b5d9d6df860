//! The list type through a real client (blocking commands come later).

mod common;
use common::{err, q, TestServer};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn push_pop_and_ranges() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["RPUSH", "l", "a", "b", "c"]), 3);
    assert_eq!(q::<i64>(&mut c, &["LPUSH", "l", "z", "y"]), 5);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        vec!["y", "z", "a", "b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "-2", "100"]),
        vec!["b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "3", "1"]).len(),
        0
    );
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 5);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "-1"]), "c");
    assert_eq!(q::<Option<String>>(&mut c, &["LINDEX", "l", "5"]), None);
    assert_eq!(q::<String>(&mut c, &["LPOP", "l"]), "y");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["RPOP", "l", "2"]),
        vec!["c", "b"]
    );
    assert_eq!(q::<Vec<String>>(&mut c, &["LPOP", "l", "0"]).len(), 0);
    assert_eq!(q::<i64>(&mut c, &["LPUSHX", "nokey", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "nokey"]), 0);
    assert_eq!(q::<i64>(&mut c, &["RPUSHX", "l", "d"]), 3);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LPOP", "l", "10"]),
        vec!["z", "a", "d"]
    );
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "l"]),
        0,
        "an empty list is gone"
    );
    assert_eq!(q::<Option<String>>(&mut c, &["LPOP", "l"]), None);
    let v: redis::Value = q(&mut c, &["LPOP", "l", "1"]);
    assert_eq!(
        v,
        redis::Value::Nil,
        "a missing list with a count is a null array"
    );
    assert_eq!(
        err(&mut c, &["LPOP", "l", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        err(&mut c, &["LPOP", "l", "1", "2"]),
        "ERR wrong number of arguments for 'lpop' command"
    );
    q::<String>(&mut c, &["SET", "str", "x"]);
    assert_eq!(err(&mut c, &["LPUSH", "str", "a"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["LRANGE", "str", "0", "-1"]), WRONGTYPE);
    q::<i64>(&mut c, &["RPUSH", "l2", "a"]);
    assert_eq!(err(&mut c, &["INCR", "l2"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["SET", "l2", "v", "GET"]), WRONGTYPE);
}

#[test]
fn set_trim_remove_insert_and_find() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["RPUSH", "l", "a", "b", "a", "c", "a", "d"]);
    assert_eq!(q::<String>(&mut c, &["LSET", "l", "-1", "D"]), "OK");
    assert_eq!(
        err(&mut c, &["LSET", "l", "10", "x"]),
        "ERR index out of range"
    );
    assert_eq!(err(&mut c, &["LSET", "nokey", "0", "x"]), "ERR no such key");
    assert_eq!(q::<i64>(&mut c, &["LPOS", "l", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "l", "a", "RANK", "2"]), 2);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "l", "a", "RANK", "-1"]), 4);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["LPOS", "l", "a", "COUNT", "0"]),
        vec![0, 2, 4]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["LPOS", "l", "a", "COUNT", "0", "MAXLEN", "3"]),
        vec![0, 2]
    );
    assert_eq!(q::<Option<i64>>(&mut c, &["LPOS", "l", "zz"]), None);
    assert!(err(&mut c, &["LPOS", "l", "a", "RANK", "0"]).starts_with("ERR RANK can't be zero"));
    assert_eq!(q::<i64>(&mut c, &["LREM", "l", "-1", "a"]), 1);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        vec!["a", "b", "a", "c", "D"]
    );
    assert_eq!(q::<i64>(&mut c, &["LREM", "l", "0", "a"]), 2);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "BEFORE", "c", "x"]), 4);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "AFTER", "D", "y"]), 5);
    assert_eq!(
        q::<i64>(&mut c, &["LINSERT", "l", "AFTER", "nope", "y"]),
        -1
    );
    assert_eq!(
        q::<i64>(&mut c, &["LINSERT", "nokey", "AFTER", "a", "y"]),
        0
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        vec!["b", "x", "c", "D", "y"]
    );
    q::<i64>(&mut c, &["EXPIRE", "l", "100"]);
    assert_eq!(q::<i64>(&mut c, &["LREM", "l", "1", "x"]), 1);
    assert!(
        q::<i64>(&mut c, &["TTL", "l"]) > 90,
        "rewriting a list keeps its TTL"
    );
    assert_eq!(q::<String>(&mut c, &["LTRIM", "l", "1", "-2"]), "OK");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        vec!["c", "D"]
    );
    assert_eq!(q::<String>(&mut c, &["LTRIM", "l", "5", "10"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "l"]), 0);
}

#[test]
fn moving_between_lists() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["RPUSH", "src", "1", "2", "3"]);
    assert_eq!(q::<String>(&mut c, &["RPOPLPUSH", "src", "dst"]), "3");
    assert_eq!(
        q::<String>(&mut c, &["LMOVE", "src", "dst", "LEFT", "RIGHT"]),
        "1"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "dst", "0", "-1"]),
        vec!["3", "1"]
    );
    assert_eq!(
        q::<String>(&mut c, &["LMOVE", "dst", "dst", "LEFT", "RIGHT"]),
        "3",
        "rotation"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "dst", "0", "-1"]),
        vec!["1", "3"]
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["LMOVE", "nokey", "dst", "LEFT", "LEFT"]),
        None
    );
    q::<String>(&mut c, &["SET", "str", "x"]);
    assert_eq!(
        err(&mut c, &["LMOVE", "src", "str", "LEFT", "LEFT"]),
        WRONGTYPE
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "src", "0", "-1"]),
        vec!["2"],
        "nothing moved"
    );
    let v: (String, Vec<String>) = q(
        &mut c,
        &["LMPOP", "3", "nokey", "dst", "src", "RIGHT", "COUNT", "5"],
    );
    assert_eq!(
        v,
        ("dst".to_string(), vec!["3".to_string(), "1".to_string()])
    );
    let none: redis::Value = q(&mut c, &["LMPOP", "1", "nokey", "LEFT"]);
    assert_eq!(none, redis::Value::Nil);
    assert_eq!(
        err(&mut c, &["LMPOP", "0", "src", "LEFT"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut c, &["LMPOP", "1", "src", "LEFT", "COUNT", "0"]),
        "ERR count should be greater than 0"
    );
}

#[test]
fn large_lists_are_read_by_range() {
    let s = TestServer::start();
    let mut c = s.conn();
    let items: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    for chunk in items.chunks(10_000) {
        redis::cmd("RPUSH")
            .arg("big")
            .arg(chunk)
            .query::<i64>(&mut c)
            .unwrap();
    }
    assert_eq!(q::<i64>(&mut c, &["LLEN", "big"]), 100_000);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "big", "50000", "50002"]),
        vec!["50000", "50001", "50002"]
    );
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "-100000"]), "0");
    assert_eq!(q::<String>(&mut c, &["LPOP", "big"]), "0");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "0"]), "1");
}

/// Waits until CLIENT LIST flags client `id` with `b` (blocked), as Redis does: from then on
/// CLIENT UNBLOCK finds it.
fn wait_flagged_blocked(c: &mut redis::Connection, id: &str) {
    common::wait_until(
        5,
        || {
            let list: String = q(c, &["CLIENT", "LIST"]);
            list.lines().any(|l| {
                l.starts_with(&format!("id={id} "))
                    && l.split_whitespace()
                        .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('b')))
            })
        },
        || format!("client {id} did not block"),
    );
}

mod blocking {
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::common::{err, info_number, q, read_for, TestServer};

    fn blocked_clients(c: &mut redis::Connection) -> i64 {
        info_number(c, "clients", "blocked_clients")
    }

    /// A client that sent `command` and is then one of `n` blocked clients.
    fn blocked(s: &TestServer, c: &mut redis::Connection, command: &[u8], n: i64) -> TcpStream {
        let mut client = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        client.write_all(command).unwrap();
        wait_blocked(c, n);
        client
    }

    fn wait_blocked(c: &mut redis::Connection, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while blocked_clients(c) != n {
            assert!(Instant::now() < deadline, "expected {n} blocked clients");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the server sends next (a short reply comes in one read).
    fn next_reply(s: &mut TcpStream) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(s, &mut buf).expect("a reply within 10 s");
        buf[..n].to_vec()
    }

    /// Every slow-log entry's command, newest first.
    fn slow_commands(c: &mut redis::Connection) -> Vec<String> {
        let entries: Vec<redis::Value> = q(c, &["SLOWLOG", "GET", "-1"]);
        entries
            .iter()
            .map(|e| match e {
                redis::Value::Array(fields) => {
                    let args: Vec<String> = redis::from_redis_value(&fields[3]).unwrap();
                    args.join(" ")
                }
                other => panic!("a slow-log entry: {other:?}"),
            })
            .collect()
    }

    /// As Redis: a command that blocks is put in the slow log when it is served, or when
    /// CLIENT UNBLOCK ends its wait, after the write that served it; not when it blocks, and
    /// not when it times out. It counts as one call either way.
    #[test]
    fn a_blocked_command_is_slow_logged_when_served() {
        let s = TestServer::start_with(&["--slowlog-log-slower-than", "0"]);
        let mut c = s.conn();
        let _: () = q(&mut c, &["SLOWLOG", "RESET"]);
        let mut waiter = blocked(&s, &mut c, b"BLPOP sl 0\r\n", 1);
        let logged = slow_commands(&mut c);
        assert!(!logged.iter().any(|l| l.starts_with("BLPOP")), "{logged:?}");
        let _: i64 = q(&mut c, &["LPUSH", "sl", "v"]);
        assert_eq!(next_reply(&mut waiter), b"*2\r\n$2\r\nsl\r\n$1\r\nv\r\n");
        // After the LPUSH, as a rule; a waiter slow to make its first try may take the value
        // before the LPUSH's entry is written.
        let mut newest = slow_commands(&mut c)[..2].to_vec();
        newest.sort();
        assert_eq!(newest, ["BLPOP sl 0", "LPUSH sl v"]);

        let mut waiter = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        waiter.write_all(b"BLPOP sl2 0.05\r\n").unwrap();
        assert_eq!(next_reply(&mut waiter), b"*-1\r\n");
        let logged = slow_commands(&mut c);
        assert!(!logged.iter().any(|l| l.contains("sl2")), "{logged:?}");

        let mut waiter = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        waiter.write_all(b"CLIENT ID\r\nBLPOP sl3 0\r\n").unwrap();
        let id = String::from_utf8(next_reply(&mut waiter)).unwrap();
        let id = id.trim().trim_start_matches(':').to_string();
        super::wait_flagged_blocked(&mut c, &id);
        assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id, "ERROR"]), 1);
        let reply = next_reply(&mut waiter);
        assert!(reply.starts_with(b"-UNBLOCKED"), "{reply:?}");
        assert_eq!(slow_commands(&mut c)[0], "BLPOP sl3 0");

        // Inside EXEC a blocking command answers at once, and is logged at once.
        let _: () = q(&mut c, &["MULTI"]);
        let _: () = q(&mut c, &["BLPOP", "sl4", "0"]);
        let _: Vec<redis::Value> = q(&mut c, &["EXEC"]);
        assert_eq!(slow_commands(&mut c)[0], "BLPOP sl4 0");

        let stats: String = q(&mut c, &["INFO", "commandstats"]);
        let blpop = stats
            .lines()
            .find(|l| l.starts_with("cmdstat_blpop:"))
            .unwrap_or_else(|| panic!("{stats}"));
        assert!(
            blpop.starts_with("cmdstat_blpop:calls=4,") && blpop.ends_with(",failed_calls=1"),
            "{blpop}"
        );
    }

    #[test]
    fn blpop_wakes_when_another_client_pushes() {
        let s = TestServer::start();
        let mut c = s.conn();
        let mut waiter = blocked(&s, &mut c, b"BLPOP empty1 empty2 0\r\n", 1);
        assert!(
            read_for(&mut waiter, Duration::from_millis(100)).is_empty(),
            "still waiting"
        );
        assert_eq!(q::<i64>(&mut c, &["RPUSH", "empty2", "x", "y"]), 2);
        assert_eq!(
            String::from_utf8_lossy(&read_for(&mut waiter, Duration::from_millis(300))),
            "*2\r\n$6\r\nempty2\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", "empty2", "0", "-1"]),
            vec!["y"]
        );
        wait_blocked(&mut c, 0);
    }

    #[test]
    fn timeouts_are_honoured_and_closed_clients_leave() {
        let s = TestServer::start();
        let mut c = s.conn();
        let started = Instant::now();
        let v: redis::Value = q(&mut c, &["BRPOP", "nothing", "0.2"]);
        assert_eq!(v, redis::Value::Nil);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        let waiter = blocked(&s, &mut c, b"BLPOP gone 0\r\n", 1);
        drop(waiter);
        wait_blocked(&mut c, 0);
        q::<i64>(&mut c, &["RPUSH", "gone", "kept"]);
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", "gone", "0", "-1"]),
            vec!["kept"],
            "nobody took it"
        );
        assert_eq!(
            err(&mut c, &["BLPOP", "k", "-1"]),
            "ERR timeout is negative"
        );
        assert_eq!(
            err(&mut c, &["BLPOP", "k", "abc"]),
            "ERR timeout is not a float or out of range"
        );
        q::<String>(&mut c, &["SET", "str", "v"]);
        assert_eq!(
            err(&mut c, &["BLPOP", "str", "0"]),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
    }

    /// As Redis' "BRPOPLPUSH with multiple blocked clients": the first blocked client is
    /// served first; its move fails on the destination's type, and the element goes to the
    /// next client in line.
    #[test]
    fn blocked_clients_are_served_in_order_and_a_failed_move_passes_the_element_on() {
        let s = TestServer::start();
        let mut c = s.conn();
        q::<String>(&mut c, &["SET", "target1", "nolist"]);
        let mut first = blocked(&s, &mut c, b"BRPOPLPUSH blist target1 0\r\n", 1);
        let mut second = blocked(&s, &mut c, b"BRPOPLPUSH blist target2 0\r\n", 2);
        q::<i64>(&mut c, &["LPUSH", "blist", "foo"]);
        assert_eq!(
            String::from_utf8_lossy(&read_for(&mut first, Duration::from_millis(300))),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
        assert_eq!(
            read_for(&mut second, Duration::from_millis(300)),
            b"$3\r\nfoo\r\n"
        );
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", "target2", "0", "-1"]),
            vec!["foo"]
        );
        wait_blocked(&mut c, 0);
    }

    /// What a blocked client sends meanwhile is read while it waits, and runs after its
    /// reply, in order (the connection's turn must not count it as already run).
    #[test]
    fn commands_sent_while_blocked_run_after_the_reply() {
        let s = TestServer::start();
        let mut c = s.conn();
        let mut waiter = blocked(&s, &mut c, b"BLPOP k 0\r\n", 1);
        waiter.write_all(&b"PING\r\n".repeat(50)).unwrap();
        // Give the connection time to read the pings while it is blocked.
        assert!(read_for(&mut waiter, Duration::from_millis(100)).is_empty());
        q::<i64>(&mut c, &["LPUSH", "k", "x"]);
        let mut want = b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n".to_vec();
        want.extend(b"+PONG\r\n".repeat(50));
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want.len() && Instant::now() < deadline {
            got.extend(read_for(&mut waiter, Duration::from_millis(100)));
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn blmove_and_blmpop_wait_too() {
        let s = TestServer::start();
        let mut c = s.conn();
        let mut mover = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        mover.write_all(b"BLMOVE src dst RIGHT LEFT 0\r\n").unwrap();
        let mut popper = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        popper
            .write_all(b"BLMPOP 0 2 other dst LEFT COUNT 5\r\n")
            .unwrap();
        wait_blocked(&mut c, 2);
        q::<i64>(&mut c, &["RPUSH", "src", "a", "b"]);
        assert_eq!(
            read_for(&mut mover, Duration::from_millis(300)),
            b"$1\r\nb\r\n"
        );
        // The move pushed to dst, which wakes the BLMPOP waiting on it.
        assert_eq!(
            String::from_utf8_lossy(&read_for(&mut popper, Duration::from_millis(300))),
            "*2\r\n$3\r\ndst\r\n*1\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", "src", "0", "-1"]),
            vec!["a"]
        );
        wait_blocked(&mut c, 0);
    }
}

/// CLIENT UNBLOCK ends another client's wait, as on timeout or with an error.
#[test]
fn client_unblock_ends_a_blocked_pop() {
    let s = TestServer::start();
    let mut c = s.conn();
    for (mode, expect_error) in [("TIMEOUT", false), ("ERROR", true)] {
        let client = s.client();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut w = client.get_connection().unwrap();
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut w).unwrap();
            tx.send(id).unwrap();
            redis::cmd("BLPOP")
                .arg("nothing")
                .arg(0)
                .query::<Option<Vec<String>>>(&mut w)
        });
        let id = rx.recv().unwrap();
        wait_flagged_blocked(&mut c, &id.to_string());
        assert_eq!(
            q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id.to_string(), mode]),
            1
        );
        match waiter.join().unwrap() {
            Ok(v) => assert!(!expect_error && v.is_none()),
            Err(e) => assert!(expect_error && e.to_string().contains("UNBLOCKED"), "{e}"),
        }
    }
    // A client that is not blocked is not unblocked.
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", "999999"]), 0);
}
