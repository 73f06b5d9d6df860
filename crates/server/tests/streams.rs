//! Stream commands through the real binary.

mod common;
use common::{err, q, wait_until, TestServer};
use redis::Value;

type Entry = (String, Vec<String>);

#[test]
fn xadd_ids_ranges_deletes_and_trims() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["XADD", "s", "1-1", "f", "v"]), "1-1");
    assert_eq!(q::<String>(&mut c, &["XADD", "s", "1-*", "f", "v2"]), "1-2");
    assert_eq!(q::<String>(&mut c, &["XADD", "s", "5", "a", "b"]), "5-0");
    assert_eq!(
        err(&mut c, &["XADD", "s", "3-0", "x", "y"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        err(&mut c, &["XADD", "t", "0-0", "x", "y"]),
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    assert_eq!(
        err(&mut c, &["XADD", "s", "bad", "x", "y"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    let auto: String = q(&mut c, &["XADD", "s", "*", "k", "v"]);
    assert!(auto.ends_with("-0") && auto.len() > 10);
    assert_eq!(q::<i64>(&mut c, &["XLEN", "s"]), 4);
    let all: Vec<Entry> = q(&mut c, &["XRANGE", "s", "-", "+"]);
    assert_eq!(all[0], ("1-1".to_string(), vec!["f".into(), "v".into()]));
    assert_eq!(all.len(), 4);
    let rev: Vec<Entry> = q(&mut c, &["XREVRANGE", "s", "+", "-", "COUNT", "1"]);
    assert_eq!(rev[0].0, auto);
    let excl: Vec<Entry> = q(&mut c, &["XRANGE", "s", "(1-1", "5"]);
    assert_eq!(
        excl.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["1-2", "5-0"]
    );
    assert_eq!(q::<i64>(&mut c, &["XDEL", "s", "1-2", "9-9"]), 1);
    assert_eq!(q::<i64>(&mut c, &["XTRIM", "s", "MAXLEN", "2"]), 1);
    let left: Vec<Entry> = q(&mut c, &["XRANGE", "s", "-", "+"]);
    assert_eq!(left[0].0, "5-0");
    assert_eq!(
        q::<i64>(&mut c, &["XTRIM", "s", "MINID", "99999999999999"]),
        2
    );
    assert_eq!(q::<i64>(&mut c, &["XLEN", "s"]), 0);
    // An empty stream still exists, and keeps its last id.
    assert_eq!(q::<String>(&mut c, &["TYPE", "s"]), "stream");
    assert!(err(&mut c, &["XADD", "s", "1-1", "a", "b"])
        .contains("smaller than the target stream top item"));
    // MAXLEN 0 creates an empty stream.
    let _: String = q(&mut c, &["XADD", "e", "MAXLEN", "0", "*", "a", "b"]);
    assert_eq!(q::<i64>(&mut c, &["XLEN", "e"]), 0);
    assert_eq!(
        q::<Option<String>>(&mut c, &["XADD", "none", "NOMKSTREAM", "*", "a", "b"]),
        None
    );
    let _: () = q(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["XADD", "str", "*", "a", "b"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["XLEN", "str"]).starts_with("WRONGTYPE"));
}

#[test]
fn approximate_trimming_removes_whole_blocks() {
    let s = TestServer::start_with(&["--stream-node-max-entries", "10"]);
    let mut c = s.conn();
    for _ in 0..100 {
        let _: String = q(&mut c, &["XADD", "s", "*", "x", "y"]);
    }
    // 101 entries; down to 55 would remove 46: whole blocks of 10 only, and LIMIT 30.
    let _: String = q(
        &mut c,
        &[
            "XADD", "s", "MAXLEN", "~", "55", "LIMIT", "30", "*", "x", "y",
        ],
    );
    assert_eq!(q::<i64>(&mut c, &["XLEN", "s"]), 71);
    assert_eq!(q::<i64>(&mut c, &["XTRIM", "s", "MAXLEN", "~", "55"]), 10);
    assert_eq!(q::<i64>(&mut c, &["XLEN", "s"]), 61);
    assert_eq!(q::<i64>(&mut c, &["XTRIM", "s", "MAXLEN", "55"]), 6);
}

/// A range read of a large stream reads only what it returns.
#[test]
fn a_large_stream_reads_ranges_and_counts() {
    let s = TestServer::start();
    let mut c = s.conn();
    let mut pipe = redis::pipe();
    for i in 1..=100_000u64 {
        pipe.cmd("XADD")
            .arg("big")
            .arg(format!("{i}-0"))
            .arg("n")
            .arg(i)
            .ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    assert_eq!(q::<i64>(&mut c, &["XLEN", "big"]), 100_000);
    let page: Vec<Entry> = q(&mut c, &["XRANGE", "big", "50000", "+", "COUNT", "3"]);
    assert_eq!(
        page.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["50000-0", "50001-0", "50002-0"]
    );
    let tail: Vec<Entry> = q(&mut c, &["XREVRANGE", "big", "+", "-", "COUNT", "1"]);
    assert_eq!(tail[0].1, ["n", "100000"]);
}

#[test]
fn xread_returns_new_entries_and_blocks_until_one_arrives() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: String = q(&mut c, &["XADD", "s", "1-0", "a", "1"]);
    let got: Vec<(String, Vec<Entry>)> = q(&mut c, &["XREAD", "STREAMS", "s", "0"]);
    assert_eq!(got[0].0, "s");
    assert_eq!(got[0].1[0].0, "1-0");
    assert_eq!(
        q::<Value>(&mut c, &["XREAD", "STREAMS", "s", "$"]),
        Value::Nil
    );
    let client = s.client();
    let reader = std::thread::spawn(move || {
        let mut r = client.get_connection().unwrap();
        let v: Vec<(String, Vec<Entry>)> = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(10_000)
            .arg("STREAMS")
            .arg("s")
            .arg("$")
            .query(&mut r)
            .unwrap();
        v
    });
    wait_until(
        5,
        || {
            let info: String = q(&mut c, &["INFO", "clients"]);
            info.contains("blocked_clients:1")
        },
        || "XREAD did not block".into(),
    );
    let _: String = q(&mut c, &["XADD", "s", "2-0", "b", "2"]);
    let got = reader.join().unwrap();
    assert_eq!(
        got[0].1[0],
        ("2-0".to_string(), vec!["b".into(), "2".into()])
    );
    // BLOCK with a timeout answers nil.
    assert_eq!(
        q::<Value>(&mut c, &["XREAD", "BLOCK", "100", "STREAMS", "s", "$"]),
        Value::Nil
    );
}

#[test]
fn consumer_groups_deliver_acknowledge_and_claim() {
    let s = TestServer::start();
    let mut c = s.conn();
    for i in 1..=3 {
        let _: String = q(
            &mut c,
            &["XADD", "s", &format!("{i}-0"), "n", &i.to_string()],
        );
    }
    let _: () = q(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    assert_eq!(
        err(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]),
        "BUSYGROUP Consumer Group name already exists"
    );
    assert!(err(&mut c, &["XGROUP", "CREATE", "nokey", "g", "$"]).contains("MKSTREAM"));
    let _: () = q(&mut c, &["XGROUP", "CREATE", "made", "g", "$", "MKSTREAM"]);
    let got: Vec<(String, Vec<Entry>)> = q(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(
        got[0].1.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["1-0", "2-0"]
    );
    let got: Vec<(String, Vec<Entry>)> = q(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"],
    );
    assert_eq!(got[0].1[0].0, "3-0");
    // Summary of the pending entries.
    let summary: (i64, String, String, Vec<(String, String)>) = q(&mut c, &["XPENDING", "s", "g"]);
    assert_eq!(summary.0, 3);
    assert_eq!(summary.1, "1-0");
    assert_eq!(summary.2, "3-0");
    assert_eq!(
        summary.3,
        [
            ("alice".to_string(), "2".to_string()),
            ("bob".to_string(), "1".to_string())
        ]
    );
    assert_eq!(
        q::<i64>(&mut c, &["XACK", "s", "g", "1-0", "1-0", "9-0"]),
        1
    );
    // History: alice's own pending entries.
    let hist: Vec<(String, Vec<Entry>)> = q(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"],
    );
    assert_eq!(hist[0].1[0].0, "2-0");
    // Bob claims alice's entry.
    let claimed: Vec<String> = q(&mut c, &["XCLAIM", "s", "g", "bob", "0", "2-0", "JUSTID"]);
    assert_eq!(claimed, ["2-0"]);
    let detail: Vec<(String, String, i64, i64)> =
        q(&mut c, &["XPENDING", "s", "g", "-", "+", "10"]);
    assert_eq!(detail.len(), 2);
    assert!(detail.iter().all(|d| d.1 == "bob"));
    let auto: (String, Vec<Entry>, Vec<String>) =
        q(&mut c, &["XAUTOCLAIM", "s", "g", "carol", "0", "0"]);
    assert_eq!(auto.0, "0-0");
    assert_eq!(auto.1.len(), 2);
    let groups: Vec<Vec<Value>> = q(&mut c, &["XINFO", "GROUPS", "s"]);
    assert_eq!(groups.len(), 1);
    // XINFO STREAM FULL lists each consumer's own pending entries.
    let full: Value = q(&mut c, &["XINFO", "STREAM", "s", "FULL"]);
    let text = format!("{full:?}");
    assert!(text.contains("carol"), "{text}");
    assert!(text.contains("2-0") && text.contains("3-0"), "{text}");
    assert_eq!(
        q::<i64>(&mut c, &["XGROUP", "DELCONSUMER", "s", "g", "carol"]),
        2
    );
    assert_eq!(q::<i64>(&mut c, &["XGROUP", "DESTROY", "s", "g"]), 1);
    assert!(err(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "a", "STREAMS", "s", ">"]
    )
    .starts_with("NOGROUP"));
}

#[test]
fn a_blocked_xreadgroup_is_served_by_xadd_and_told_when_the_group_goes() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let client = s.client();
    let reader = std::thread::spawn(move || {
        let mut r = client.get_connection().unwrap();
        let v: Vec<(String, Vec<Entry>)> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg("s")
            .arg(">")
            .query(&mut r)
            .unwrap();
        let second = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg("s")
            .arg(">")
            .query::<Value>(&mut r);
        (v, second.map_err(|e| e.to_string()))
    });
    let blocked = |c: &mut redis::Connection| {
        let info: String = q(c, &["INFO", "clients"]);
        info.contains("blocked_clients:1")
    };
    wait_until(5, || blocked(&mut c), || "XREADGROUP did not block".into());
    let _: String = q(&mut c, &["XADD", "s", "*", "f", "v"]);
    // Delivered (pending in the group) before the group goes, and the reader blocked again.
    wait_until(
        5,
        || {
            let summary: Vec<Value> = q(&mut c, &["XPENDING", "s", "g"]);
            summary.first() == Some(&Value::Int(1))
        },
        || "the entry was not delivered".into(),
    );
    wait_until(
        5,
        || {
            // The second XREADGROUP ran (it found nothing and waits).
            let stats: String = q(&mut c, &["INFO", "commandstats"]);
            stats.contains("cmdstat_xreadgroup:calls=2,") && blocked(&mut c)
        },
        || "second XREADGROUP did not block".into(),
    );
    let _: i64 = q(&mut c, &["XGROUP", "DESTROY", "s", "g"]);
    let (first, second) = reader.join().unwrap();
    assert_eq!(first[0].1[0].1, ["f", "v"]);
    let e = second.unwrap_err();
    assert!(e.contains("no longer exists"), "{e}");
}
