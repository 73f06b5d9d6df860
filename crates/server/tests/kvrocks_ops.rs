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

    // A client that goes away while held is gone at once, not when the pause ends.
    assert_eq!(
        q::<String>(&mut c, &["CLIENT", "PAUSE", "100000", "WRITE"]),
        "OK"
    );
    let clients = |c: &mut redis::Connection| q::<String>(c, &["CLIENT", "LIST"]).lines().count();
    let before = clients(&mut c);
    {
        use std::io::Write;
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        raw.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n3\r\n")
            .unwrap();
        wait_until(
            10,
            || clients(&mut c) == before + 1,
            || "not connected".into(),
        );
    }
    wait_until(
        10,
        || clients(&mut c) == before,
        || "a held client that went away is still listed".into(),
    );
    assert_eq!(q::<String>(&mut c, &["CLIENT", "UNPAUSE"]), "OK");
    assert_eq!(
        q::<String>(&mut c, &["GET", "k"]),
        "2",
        "its write never ran"
    );

    assert_eq!(
        err(&mut c, &["CLIENT", "PAUSE", "abc"]),
        "ERR timeout is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "PAUSE", "10", "READ"]),
        "ERR CLIENT PAUSE mode must be WRITE or ALL"
    );
}

type Poll = (String, i64, String, i64, String, Vec<String>);

fn poll(c: &mut redis::Connection, args: &[&str]) -> (i64, i64, Vec<Vec<u8>>) {
    let mut all = vec!["POLLUPDATES"];
    all.extend_from_slice(args);
    let (k1, next, k2, latest, k3, updates): Poll = q(c, &all);
    assert_eq!(
        (k1.as_str(), k2.as_str(), k3.as_str()),
        ("next_sequence", "latest_sequence", "updates")
    );
    let batches = updates
        .iter()
        .map(|h| {
            assert!(
                h.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
                "{h}"
            );
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    (next, latest, batches)
}

/// The keys a batch puts into the metadata column family.
fn keys_put(batch: &[u8]) -> Vec<String> {
    quarry_storage::batch::decode(batch)
        .unwrap()
        .records
        .into_iter()
        .filter_map(|r| match r {
            quarry_storage::batch::BatchRecord::Put { cf: 1, key, .. } => {
                Some(String::from_utf8_lossy(key).to_string())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn pollupdates_streams_the_wal_as_kvrocks_does_and_never_skips_a_gap() {
    let s = TestServer::start_with(&[
        "--rocksdb.wal_ttl_seconds",
        "0",
        "--rocksdb.wal_size_limit_mb",
        "0",
    ]);
    let mut c = s.conn();
    let start = latest_sequence(&mut c).to_string();
    let (next0, latest0, none) = poll(&mut c, &[&start]);
    assert!(none.is_empty());
    assert_eq!(next0, latest0);
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["MSET", "b", "2", "c", "3"]);
    let _: () = q(&mut c, &["SET", "d", "4"]);
    // A consumer polls from where it stopped, two batches at a time.
    let mut from = latest0;
    let mut seen = Vec::new();
    loop {
        let (next, latest, batches) = poll(&mut c, &[&from.to_string(), "MAX", "2"]);
        for b in &batches {
            seen.extend(keys_put(b));
        }
        if batches.is_empty() {
            assert_eq!(next, from);
            assert_eq!(latest, from);
            break;
        }
        assert!(batches.len() <= 2);
        from = next;
    }
    let seen: Vec<String> = seen
        .iter()
        .map(|k| k.chars().last().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["a", "b", "c", "d"]);
    // STRICT: a position inside a batch (MSET's two records) is refused.
    let mset_first = latest0 + 2;
    let e = err(&mut c, &["POLLUPDATES", &mset_first.to_string(), "STRICT"]);
    assert_eq!(
        e,
        format!(
            "ERR mismatched sequence number, expected {} but got {}",
            mset_first + 1,
            mset_first
        )
    );
    // Kvrocks' errors.
    let latest = latest_sequence(&mut c);
    assert_eq!(
        err(&mut c, &["POLLUPDATES", &(latest + 1).to_string()]),
        "ERR next sequence is out of range"
    );
    assert_eq!(
        err(&mut c, &["POLLUPDATES", "0", "MAX", "0"]),
        "ERR out of numeric range"
    );
    assert_eq!(
        err(&mut c, &["POLLUPDATES", "0", "FORMAT", "JSON"]),
        "ERR invalid FORMAT option, only support RAW"
    );
    assert_eq!(
        err(&mut c, &["POLLUPDATES", "x"]),
        "ERR not started as an integer"
    );

    // Once the WAL is purged, polling from before it is an error, not a silent skip.
    for i in 0..200 {
        let _: () = q(&mut c, &["SET", &format!("gap{i}"), "v"]);
    }
    let _: () = q(&mut c, &["FLUSHMEMTABLE"]);
    let _: () = q(&mut c, &["SET", "after", "1"]);
    let _: () = q(&mut c, &["FLUSHMEMTABLE"]);
    wait_until(
        20,
        || {
            redis::cmd("POLLUPDATES")
                .arg(latest0)
                .query::<redis::Value>(&mut c)
                .is_err()
        },
        || "the purged WAL was polled without an error".into(),
    );
    let e = err(&mut c, &["POLLUPDATES", &latest0.to_string()]);
    assert!(e.contains("does not hold"), "{e}");
}

#[test]
fn mpublish_and_move_as_kvrocks_answers_them() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["MPUBLISH", "ch", "a", "b"]), 0);
    let mut sub = s.conn();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("ch").unwrap();
    assert_eq!(
        q::<i64>(&mut c, &["MPUBLISH", "ch", "one", "two", "three"]),
        3
    );
    for want in ["one", "two", "three"] {
        let msg = pubsub.get_message().unwrap();
        assert_eq!(msg.get_payload::<String>().unwrap(), want);
    }
    assert_eq!(
        err(&mut c, &["MPUBLISH", "ch"]),
        "ERR wrong number of arguments for 'mpublish' command"
    );
    // One database: MOVE moves nothing and says whether the key is there.
    let _: () = q(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["MOVE", "k", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["MOVE", "nope", "1"]), 0);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    assert!(err(&mut c, &["MOVE", "k", "x"]).contains("not an integer"));
    let info: String = q(&mut c, &["INFO", "persistence"]);
    assert!(info.contains("loading:0"), "{info}");
    // DISK USAGE: the key's bytes in storage, more for a bigger value, nil when missing.
    let small: i64 = q(&mut c, &["DISK", "USAGE", "k"]);
    let _: () = q(&mut c, &["SET", "big", &"x".repeat(10_000)]);
    let big: i64 = q(&mut c, &["DISK", "USAGE", "big"]);
    assert!(small > 0 && big > 10_000 && big > small, "{small} {big}");
    assert_eq!(q::<Option<i64>>(&mut c, &["DISK", "USAGE", "nope"]), None);
    assert_eq!(err(&mut c, &["DISK", "SIZE", "k"]), "ERR Unknown operation");
}

#[test]
fn kvrocks_rocksdb_directives_reach_rocksdb() {
    let s = TestServer::start_with(&[
        "--rocksdb.enable_blob_files",
        "yes",
        "--rocksdb.min_blob_size",
        "1024",
        "--rocksdb.blob_garbage_collection_age_cutoff",
        "40",
        "--rocksdb.max_background_flushes",
        "3",
        "--rocksdb.max_background_compactions",
        "5",
        "--rocksdb.row_cache_size",
        "8",
        "--max-io-mb",
        "500",
        "--rocksdb.delayed_write_rate",
        "1048576",
        "--rocksdb.avoid_unnecessary_blocking_io",
        "no",
    ]);
    let mut c = s.conn();
    let big = "b".repeat(20_000);
    let _: () = q(&mut c, &["SET", "big", &big]);
    let _: () = q(&mut c, &["SET", "small", "s"]);
    let _: () = q(&mut c, &["FLUSHMEMTABLE"]);
    let db = s.data_dir().join("db");
    let names: Vec<String> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".blob")),
        "the large value went to a blob file: {names:?}"
    );
    assert_eq!(q::<String>(&mut c, &["GET", "big"]), big);
    assert_eq!(q::<String>(&mut c, &["GET", "small"]), "s");
    // RocksDB records the options it runs with.
    let options = names
        .iter()
        .filter(|n| n.starts_with("OPTIONS-"))
        .max()
        .unwrap();
    let text = std::fs::read_to_string(db.join(options)).unwrap();
    for want in [
        "enable_blob_files=true",
        "min_blob_size=1024",
        "blob_garbage_collection_age_cutoff=0.400000",
        "max_background_flushes=3",
        "max_background_compactions=5",
        "delayed_write_rate=1048576",
        "avoid_unnecessary_blocking_io=false",
    ] {
        assert!(text.contains(want), "{want} not in {options}");
    }
    // The quarry.log start-up warning does not list them as without effect.
    let log = s.log();
    let warning = log
        .lines()
        .find(|l| l.contains("without effect"))
        .unwrap_or("");
    for name in [
        "enable_blob_files",
        "max-io-mb",
        "row_cache_size",
        "max_background_flushes",
        "delayed_write_rate",
        "avoid_unnecessary_blocking_io",
    ] {
        assert!(!warning.contains(name), "{name}: {warning}");
    }
}

#[test]
fn xlen_counts_after_or_before_an_id_as_kvrocks_does() {
    let s = TestServer::start();
    let mut c = s.conn();
    for id in ["1-1", "2-1", "3-1", "4-1", "5-1"] {
        let _: String = q(&mut c, &["XADD", "s", id, "f", "v"]);
    }
    // Compared with Kvrocks 2.10.1 side by side.
    for (args, want) in [
        (&["s"][..], 5),
        (&["s", "3-1"], 2),
        (&["s", "3-1", "+"], 2),
        (&["s", "3-1", "-"], 2),
        (&["s", "1-1", "-"], 0),
        (&["s", "5-1", "-"], 4),
        (&["s", "0-0"], 5),
        (&["s", "9-9", "-"], 5),
        (&["s", "3"], 3),
        (&["s", "2-5", "-"], 2),
        (&["nokey", "3-1"], 0),
    ] {
        let mut all = vec!["XLEN"];
        all.extend_from_slice(args);
        assert_eq!(q::<i64>(&mut c, &all), want, "{args:?}");
    }
    assert_eq!(err(&mut c, &["XLEN", "s", "3-1", "x"]), "ERR syntax error");
    assert_eq!(
        err(&mut c, &["XLEN", "s", "abc"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
}

#[test]
fn the_compaction_checker_runs_on_its_schedule_instead_of_compact_cron() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    // compaction-checker-cron set: compact-cron gives way to it, as in Kvrocks.
    let _: () = q(&mut c, &["CONFIG", "SET", "compact-cron", "* * * * *"]);
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "compaction-checker-cron", "* * * * *"],
    );
    wait_until(
        10,
        || s.log().contains("compaction checker done"),
        || format!("compaction-checker-cron did not fire:\n{}", s.log()),
    );
    assert!(!s
        .log()
        .contains("scheduled compaction (compact-cron) started"));
    // Kvrocks' older form, an hour range, means every minute of those hours.
    let _: () = q(&mut c, &["CONFIG", "SET", "compaction-checker-cron", ""]);
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "compaction-checker-range", "0-23"],
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "compaction-checker-range"])[1],
        "0-23"
    );
}

#[test]
fn scan_cursors_are_the_keys_themselves_without_redis_cursor_compatible() {
    let s = TestServer::start_with(&["--redis-cursor-compatible", "no"]);
    let mut c = s.conn();
    let _: () = q(
        &mut c,
        &[
            "MSET", "k1", "1", "k2", "2", "k3", "3", "k4", "4", "k5", "5",
        ],
    );
    let page = |c: &mut redis::Connection, cmd: &[&str]| -> (String, Vec<String>) { q(c, cmd) };
    assert_eq!(
        page(&mut c, &["SCAN", "0", "COUNT", "2"]),
        ("_k2".into(), vec!["k1".into(), "k2".into()])
    );
    assert_eq!(
        page(&mut c, &["SCAN", "_k2", "COUNT", "2"]),
        ("_k4".into(), vec!["k3".into(), "k4".into()])
    );
    let (end, last) = page(&mut c, &["SCAN", "_k4", "COUNT", "2"]);
    assert_eq!((end.as_str(), last), ("0", vec!["k5".to_string()]));
    // The underscore is optional; any name is a place to go on after.
    assert_eq!(page(&mut c, &["SCAN", "k3", "COUNT", "10"]).1, ["k4", "k5"]);
    let _: i64 = q(&mut c, &["HSET", "h", "f1", "a", "f2", "b", "f3", "c"]);
    assert_eq!(
        page(&mut c, &["HSCAN", "h", "0", "COUNT", "2"]),
        (
            "f2".into(),
            vec!["f1".into(), "a".into(), "f2".into(), "b".into()]
        )
    );
    assert_eq!(
        page(&mut c, &["HSCAN", "h", "f2", "COUNT", "2"]),
        ("0".into(), vec!["f3".into(), "c".into()])
    );
    // Back to numbers, at once.
    let _: () = q(&mut c, &["CONFIG", "SET", "redis-cursor-compatible", "yes"]);
    let (cursor, keys) = page(&mut c, &["SCAN", "0", "COUNT", "2"]);
    assert!(cursor.parse::<u64>().unwrap() > 0, "{cursor}");
    assert_eq!(keys, ["h", "k1"]);
    assert_eq!(
        page(&mut c, &["SCAN", &cursor, "COUNT", "2"]).1,
        ["k2", "k3"]
    );
    assert_eq!(err(&mut c, &["SCAN", "_k2"]), "ERR invalid cursor");
}

#[test]
fn write_batch_max_bytes_refuses_a_whole_command_over_the_limit() {
    let s = TestServer::start_with(&["--rocksdb.write_options.write_batch_max_bytes", "100"]);
    let mut c = s.conn();
    let big = "x".repeat(200);
    let limit = "ERR Operation aborted: Memory limit reached";
    assert_eq!(err(&mut c, &["MSET", "k1", &big, "k2", "v"]), limit);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "k1", "k2"]),
        0,
        "nothing of it"
    );
    assert_eq!(err(&mut c, &["HSET", "h", "f", &big]), limit);
    let _: () = q(&mut c, &["MSET", "a", "1", "b", "2"]);
    // Pipelined small writes each stay under the limit (no group commit then).
    let mut pipe = redis::pipe();
    for i in 0..20 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i);
    }
    let _: () = pipe.query(&mut c).unwrap();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 22);
    // A transaction is one batch: over the limit, EXEC fails and none of it is written.
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["SET", "t1", &big]);
    let _: String = q(&mut c, &["SET", "t2", "v"]);
    assert_eq!(err(&mut c, &["EXEC"]), limit);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "t1", "t2"]), 0);
    let _: () = q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "rocksdb.write_options.write_batch_max_bytes",
            "0",
        ],
    );
    let _: () = q(&mut c, &["MSET", "k1", &big, "k2", "v"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k1", "k2"]), 2);
}
