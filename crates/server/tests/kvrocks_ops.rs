//! Kvrocks' operational commands and the Kvrocks supersets of Redis syntax, through the real
//! binary: HSETNX with several pairs, DBSIZE SCAN, DEBUG PROTOCOL (as Redis answers it),
//! COMPACT with INFO's is_compacting, and the cron directives.

mod common;

use common::*;

#[test]
fn hsetnx_takes_several_pairs_as_kvrocks_does() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "a", "1", "b", "2"]), 2);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "a", "9", "c", "3"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "a", "9"]), 0);
    assert_eq!(q::<String>(&mut c, &["HGET", "h", "a"]), "1");
    assert_eq!(q::<String>(&mut c, &["HGET", "h", "c"]), "3");
    let wrong = "ERR wrong number of arguments for 'hsetnx' command";
    assert_eq!(err(&mut c, &["HSETNX", "h", "a"]), wrong);
    assert_eq!(err(&mut c, &["HSETNX", "h", "a", "1", "b"]), wrong);
    let _: () = q(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["HSETNX", "str", "a", "1"]).starts_with("WRONGTYPE"));
}

#[test]
fn dbsize_scan_is_accepted_and_dbsize_stays_exact() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    assert_eq!(q::<String>(&mut c, &["DBSIZE", "SCAN"]), "OK");
    assert_eq!(q::<String>(&mut c, &["DBSIZE", "scan"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1);
    assert_eq!(
        err(&mut c, &["DBSIZE", "COUNT"]),
        "ERR DBSIZE subcommand only supports scan"
    );
    let _: () = q(&mut c, &["CONFIG", "SET", "dbsize-scan-cron", "0 * * * *"]);
}

#[test]
fn debug_protocol_answers_as_redis_does() {
    let s = TestServer::start();
    let cases: [(&str, &[u8]); 6] = [
        ("string", b"$11\r\nHello World\r\n"),
        ("integer", b":12345\r\n"),
        ("double", b"$5\r\n3.141\r\n"),
        ("map", b"*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n"),
        (
            "attrib",
            b"$39\r\nSome real reply following the attribute\r\n",
        ),
        ("push", b"-ERR RESP2 is not supported by this command\r\n"),
    ];
    for (name, want) in cases {
        let request = format!(
            "*3\r\n$5\r\nDEBUG\r\n$8\r\nPROTOCOL\r\n${}\r\n{name}\r\n",
            name.len()
        );
        assert_eq!(s.raw(request.as_bytes()), want, "{name}");
    }
    // RESP3: the real types.
    let hello = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";
    let mut request = hello.to_vec();
    request.extend_from_slice(b"*3\r\n$5\r\nDEBUG\r\n$8\r\nPROTOCOL\r\n$6\r\nbignum\r\n");
    let reply = s.raw(&request);
    assert!(
        reply.ends_with(b"(1234567999999999999999999999999999999\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let mut c = s.conn();
    assert!(err(&mut c, &["DEBUG", "PROTOCOL", "nope"]).starts_with("ERR Wrong protocol type name"));
}

#[test]
fn compact_reports_is_compacting_and_compact_cron_is_validated() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    assert_eq!(q::<String>(&mut c, &["COMPACT"]), "OK");
    let info: String = q(&mut c, &["INFO", "rocksdb"]);
    assert!(info.contains("is_compacting:no"), "{info}");
    assert!(info.contains("is_bgsaving:no"), "{info}");
    let e = err(&mut c, &["CONFIG", "SET", "compact-cron", "0 25 * * *"]);
    assert!(e.contains("cron expression format error"), "{e}");
    let _: () = q(&mut c, &["CONFIG", "SET", "compact-cron", "0 3 * * *"]);
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "compact-cron"]);
    assert_eq!(v[1], "0 3 * * *");
}

#[test]
fn compact_cron_and_bgsave_cron_fire_in_a_matching_minute() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    // Every minute matches "* * * * *": each job fires within a second, once per minute.
    let _: () = q(&mut c, &["CONFIG", "SET", "compact-cron", "* * * * *"]);
    let _: () = q(&mut c, &["CONFIG", "SET", "bgsave-cron", "* * * * *"]);
    wait_until(
        10,
        || s.log().contains("scheduled compaction finished"),
        || format!("compact-cron did not fire:\n{}", s.log()),
    );
    wait_until(
        10,
        || s.data_dir().join("backup").join("CURRENT").exists(),
        || format!("bgsave-cron did not fire:\n{}", s.log()),
    );
    // Once per minute, not once per second (two if the minute turned meanwhile).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let fired = s
        .log()
        .matches("scheduled compaction (compact-cron) started")
        .count();
    assert!((1..=2).contains(&fired), "{fired}");
}

/// Runs `args` on a new connection in a thread; returns its handle.
fn in_thread(
    s: &TestServer,
    args: &'static [&'static str],
) -> std::thread::JoinHandle<(redis::RedisResult<redis::Value>, std::time::Duration)> {
    let client = s.client();
    std::thread::spawn(move || {
        // From before the connection: the client's own set-up commands are held under ALL.
        let started = std::time::Instant::now();
        let mut c = client.get_connection().unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let r = cmd.query::<redis::Value>(&mut c);
        (r, started.elapsed())
    })
}

#[test]
fn client_pause_holds_writes_or_everything_until_it_ends() {
    use std::time::Duration;
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "k", "1"]);

    // WRITE: reads go on, writes wait for CLIENT UNPAUSE.
    assert_eq!(
        q::<String>(&mut c, &["CLIENT", "PAUSE", "100000", "WRITE"]),
        "OK"
    );
    let write = in_thread(&s, &["SET", "k", "2"]);
    let script = in_thread(&s, &["EVAL", "return 1", "0"]);
    let read = in_thread(&s, &["GET", "k"]);
    let (r, took) = read.join().unwrap();
    assert_eq!(r.unwrap(), redis::Value::BulkString(b"1".to_vec()));
    assert!(took < Duration::from_secs(5));
    let ro_script: i64 = q(&mut c, &["EVAL_RO", "return 2", "0"]);
    assert_eq!(ro_script, 2);
    // A read-only transaction is not held either.
    let _: () = q(&mut c, &["MULTI"]);
    let _: () = q(&mut c, &["GET", "k"]);
    let v: Vec<String> = q(&mut c, &["EXEC"]);
    assert_eq!(v, vec!["1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !write.is_finished() && !script.is_finished(),
        "held while paused"
    );
    assert_eq!(q::<String>(&mut c, &["CLIENT", "UNPAUSE"]), "OK");
    let (r, took) = write.join().unwrap();
    assert_eq!(r.unwrap(), redis::Value::Okay);
    assert!(took >= Duration::from_millis(300));
    assert!(script.join().unwrap().0.is_ok());
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "2");

    // ALL, with a timeout: a read waits too, until the pause runs out.
    assert_eq!(q::<String>(&mut c, &["CLIENT", "PAUSE", "500"]), "OK");
    let read = in_thread(&s, &["GET", "k"]);
    let (r, took) = read.join().unwrap();
    assert_eq!(r.unwrap(), redis::Value::BulkString(b"2".to_vec()));
    assert!(took >= Duration::from_millis(300), "{took:?}");

    assert_eq!(
        err(&mut c, &["CLIENT", "PAUSE", "abc"]),
        "ERR timeout is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "PAUSE", "10", "READ"]),
        "ERR CLIENT PAUSE mode must be WRITE or ALL"
    );
}
