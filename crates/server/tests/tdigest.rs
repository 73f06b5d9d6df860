//! t-digests (TDIGEST.*) through the real binary: RedisBloom's documented replies, accuracy on
//! a known distribution, errors, and the generic key commands, replication and DUMP/RESTORE.

mod common;

use common::{err, q, wait_until, TestServer};

fn doubles(c: &mut redis::Connection, args: &[&str]) -> Vec<String> {
    q(c, args)
}

#[test]
fn redisbloom_documented_replies() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["TDIGEST.CREATE", "t", "COMPRESSION", "100"]);
    let _: () = q(
        &mut c,
        &[
            "TDIGEST.ADD",
            "t",
            "1",
            "2",
            "2",
            "3",
            "3",
            "3",
            "4",
            "4",
            "4",
            "4",
            "5",
            "5",
            "5",
            "5",
            "5",
        ],
    );
    let ranks: Vec<String> = (0..16).map(|r| r.to_string()).collect();
    let mut args = vec!["TDIGEST.BYRANK", "t"];
    args.extend(ranks.iter().map(String::as_str));
    assert_eq!(
        doubles(&mut c, &args),
        ["1", "2", "2", "3", "3", "3", "4", "4", "4", "4", "5", "5", "5", "5", "5", "inf"]
    );
    args[0] = "TDIGEST.BYREVRANK";
    assert_eq!(
        doubles(&mut c, &args),
        ["5", "5", "5", "5", "5", "4", "4", "4", "4", "3", "3", "3", "2", "2", "1", "-inf"]
    );

    let _: () = q(&mut c, &["TDIGEST.CREATE", "s"]);
    let _: () = q(
        &mut c,
        &["TDIGEST.ADD", "s", "10", "20", "30", "40", "50", "60"],
    );
    let probe = ["0", "10", "20", "30", "40", "50", "60", "70"];
    let mut args = vec!["TDIGEST.RANK", "s"];
    args.extend(probe);
    assert_eq!(q::<Vec<i64>>(&mut c, &args), [-1, 0, 1, 2, 3, 4, 5, 6]);
    args[0] = "TDIGEST.REVRANK";
    assert_eq!(q::<Vec<i64>>(&mut c, &args), [6, 5, 4, 3, 2, 1, 0, -1]);
    assert_eq!(
        doubles(&mut c, &["TDIGEST.CDF", "s", "0", "35", "70"]),
        ["0", "0.5", "1"]
    );

    let _: () = q(&mut c, &["TDIGEST.CREATE", "m"]);
    let _: () = q(
        &mut c,
        &[
            "TDIGEST.ADD",
            "m",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "7",
            "8",
            "9",
            "10",
        ],
    );
    for (lo, hi, want) in [
        ("0.1", "0.6", "4"),
        ("0.3", "0.9", "6.5"),
        ("0", "1", "5.5"),
    ] {
        let got: String = q(&mut c, &["TDIGEST.TRIMMED_MEAN", "m", lo, hi]);
        assert_eq!(got, want, "{lo} {hi}");
    }
    let got: String = q(&mut c, &["TDIGEST.MIN", "m"]);
    assert_eq!(got, "1");
    let got: String = q(&mut c, &["TDIGEST.MAX", "m"]);
    assert_eq!(got, "10");

    // An empty digest: nan, and -2 for ranks.
    let _: () = q(&mut c, &["TDIGEST.CREATE", "e"]);
    assert_eq!(doubles(&mut c, &["TDIGEST.QUANTILE", "e", "0.5"]), ["nan"]);
    let got: String = q(&mut c, &["TDIGEST.MIN", "e"]);
    assert_eq!(got, "nan");
    assert_eq!(q::<Vec<i64>>(&mut c, &["TDIGEST.RANK", "e", "1"]), [-2]);
    assert_eq!(doubles(&mut c, &["TDIGEST.BYRANK", "e", "0"]), ["nan"]);

    // INFO, then RESET keeps the compression and drops the observations.
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "t"]);
    let text = format!("{info:?}");
    for field in [
        "Compression",
        "Capacity",
        "Merged nodes",
        "Unmerged nodes",
        "Observations",
        "Memory usage",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert_eq!(info[1], redis::Value::Int(100));
    assert_eq!(info[13], redis::Value::Int(15), "observations: {text}");
    let _: () = q(&mut c, &["TDIGEST.RESET", "t"]);
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "t"]);
    assert_eq!(info[1], redis::Value::Int(100));
    assert_eq!(info[13], redis::Value::Int(0));
    let got: String = q(&mut c, &["TDIGEST.MAX", "t"]);
    assert_eq!(got, "nan");
}

#[test]
fn quantiles_are_accurate_on_a_known_distribution() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["TDIGEST.CREATE", "u", "COMPRESSION", "200"]);
    // 0..100,000 in a scrambled order, added 1,000 at a time (buffered, then merged).
    let n: u64 = 100_000;
    let values: Vec<u64> = (0..n).map(|i| (i * 7919) % n).collect();
    for chunk in values.chunks(1000) {
        let mut cmd = redis::cmd("TDIGEST.ADD");
        cmd.arg("u");
        for v in chunk {
            cmd.arg(*v);
        }
        let _: () = cmd.query(&mut c).unwrap();
    }
    let qs = ["0.001", "0.01", "0.1", "0.5", "0.9", "0.99", "0.999"];
    let mut args = vec!["TDIGEST.QUANTILE", "u"];
    args.extend(qs);
    let got: Vec<f64> = q(&mut c, &args);
    for (qtext, v) in qs.iter().zip(&got) {
        let q: f64 = qtext.parse().unwrap();
        let want = q * n as f64;
        // Well inside the t-digest's bound for compression 200: under 0.5% of the range in
        // the middle, far less at the tails.
        let tolerance = n as f64 * (0.0002 + 0.01 * (q * (1.0 - q)).sqrt());
        assert!((v - want).abs() <= tolerance, "q={q}: {v} vs {want}");
    }
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "u"]);
    assert_eq!(info[13], redis::Value::Int(n as i64));
    let merged = match info[5] {
        redis::Value::Int(m) => m,
        _ => panic!("{info:?}"),
    };
    assert!(
        merged > 0 && merged < 1000,
        "{merged} centroids for compression 200"
    );
    let cdf: Vec<f64> = q(&mut c, &["TDIGEST.CDF", "u", "50000"]);
    assert!((cdf[0] - 0.5).abs() < 0.005, "{cdf:?}");

    // MERGE two halves into a new key: the same answers within the same bound.
    let _: () = q(&mut c, &["TDIGEST.CREATE", "lo"]);
    let _: () = q(&mut c, &["TDIGEST.CREATE", "hi"]);
    for (key, range) in [("lo", 0..n / 2), ("hi", n / 2..n)] {
        let vals: Vec<u64> = range.collect();
        for chunk in vals.chunks(1000) {
            let mut cmd = redis::cmd("TDIGEST.ADD");
            cmd.arg(key);
            for v in chunk {
                cmd.arg(*v);
            }
            let _: () = cmd.query(&mut c).unwrap();
        }
    }
    let _: () = q(&mut c, &["TDIGEST.MERGE", "all", "2", "lo", "hi"]);
    let med: Vec<f64> = q(&mut c, &["TDIGEST.QUANTILE", "all", "0.5"]);
    assert!((med[0] - 50_000.0).abs() < 1000.0, "{med:?}");
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "all"]);
    assert_eq!(info[1], redis::Value::Int(100), "the sources' compression");
    assert_eq!(info[13], redis::Value::Int(n as i64));
    // Merged into an existing destination unless OVERRIDE.
    let _: () = q(
        &mut c,
        &["TDIGEST.MERGE", "all", "1", "lo", "COMPRESSION", "50"],
    );
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "all"]);
    assert_eq!(info[1], redis::Value::Int(50));
    assert_eq!(info[13], redis::Value::Int((n + n / 2) as i64));
    let _: () = q(&mut c, &["TDIGEST.MERGE", "all", "1", "lo", "OVERRIDE"]);
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "all"]);
    assert_eq!(info[13], redis::Value::Int((n / 2) as i64));
}

#[test]
fn bad_input_gets_redisbloom_errors() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["TDIGEST.CREATE", "td"]);
    let _: () = q(&mut c, &["SET", "plain", "v"]);
    for (args, want) in [
        (
            vec!["TDIGEST.CREATE", "td"],
            "ERR T-Digest: key already exists",
        ),
        (
            vec!["TDIGEST.CREATE", "x", "COMPRESSION", "0"],
            "ERR T-Digest: compression parameter needs to be a positive integer",
        ),
        (
            vec!["TDIGEST.CREATE", "x", "COMPRESSION", "abc"],
            "ERR T-Digest: error parsing compression parameter",
        ),
        (
            vec!["TDIGEST.CREATE", "x", "COMPRESSION", "1001"],
            "ERR T-Digest: compression must be between 1 and 1000",
        ),
        (
            vec!["TDIGEST.CREATE", "x", "BOGUS", "100"],
            "ERR T-Digest: wrong keyword",
        ),
        (
            vec!["TDIGEST.ADD", "td", "nan"],
            "ERR T-Digest: error parsing val parameter",
        ),
        (
            vec!["TDIGEST.ADD", "td", "abc"],
            "ERR T-Digest: error parsing val parameter",
        ),
        (
            vec!["TDIGEST.ADD", "td", "inf"],
            "ERR T-Digest: val parameter needs to be a finite number",
        ),
        (
            vec!["TDIGEST.ADD", "missing", "1"],
            "ERR T-Digest: key does not exist",
        ),
        (
            vec!["TDIGEST.QUANTILE", "td", "-0.1"],
            "ERR T-Digest: quantile should be in [0,1]",
        ),
        (
            vec!["TDIGEST.QUANTILE", "td", "x"],
            "ERR T-Digest: error parsing quantile",
        ),
        (
            vec!["TDIGEST.CDF", "td", "nan"],
            "ERR T-Digest: error parsing cdf",
        ),
        (
            vec!["TDIGEST.RANK", "td", "nan"],
            "ERR T-Digest: error parsing value",
        ),
        (
            vec!["TDIGEST.BYRANK", "td", "-1"],
            "ERR T-Digest: rank needs to be non negative",
        ),
        (
            vec!["TDIGEST.BYRANK", "td", "1.5"],
            "ERR T-Digest: error parsing rank",
        ),
        (
            vec!["TDIGEST.TRIMMED_MEAN", "td", "0.8", "0.2"],
            "ERR T-Digest: low_cut_percentile should be lower than high_cut_percentile",
        ),
        (
            vec!["TDIGEST.TRIMMED_MEAN", "td", "0.1", "2"],
            "ERR T-Digest: low_cut_percentile and high_cut_percentile should be in [0,1]",
        ),
        (
            vec!["TDIGEST.INFO", "missing"],
            "ERR T-Digest: key does not exist",
        ),
        (
            vec!["TDIGEST.MERGE", "d", "0", "td"],
            "ERR T-Digest: numkeys needs to be a positive integer",
        ),
        (
            vec!["TDIGEST.MERGE", "d", "x", "td"],
            "ERR T-Digest: error parsing numkeys",
        ),
        (
            vec!["TDIGEST.MERGE", "d", "1", "missing"],
            "ERR T-Digest: key does not exist",
        ),
        (
            vec!["TDIGEST.MERGE", "d", "1", "td", "BOGUS"],
            "ERR T-Digest: wrong keyword",
        ),
    ] {
        assert_eq!(err(&mut c, &args), want, "{args:?}");
    }
    for args in [
        vec!["TDIGEST.ADD", "plain", "1"],
        vec!["TDIGEST.INFO", "plain"],
        vec!["TDIGEST.QUANTILE", "plain", "0.5"],
        vec!["TDIGEST.MERGE", "plain", "1", "td"],
    ] {
        assert!(err(&mut c, &args).starts_with("WRONGTYPE"), "{args:?}");
    }
    assert!(err(&mut c, &["GET", "td"]).starts_with("WRONGTYPE"));
}

#[test]
fn digests_are_keys_like_any_other() {
    let m = TestServer::start();
    let mut c = m.conn();
    let _: () = q(&mut c, &["TDIGEST.CREATE", "t", "COMPRESSION", "50"]);
    let _: () = q(&mut c, &["TDIGEST.ADD", "t", "1", "2", "3", "4", "5"]);
    // Enough to merge the buffer: centroids and buffer both in use.
    let many: Vec<String> = (0..400).map(|i| i.to_string()).collect();
    let mut args = vec!["TDIGEST.ADD", "t"];
    args.extend(many.iter().map(String::as_str));
    let _: () = q(&mut c, &args);
    let _: () = q(&mut c, &["TDIGEST.ADD", "t", "1000"]);
    assert_eq!(q::<String>(&mut c, &["TYPE", "t"]), "TDIS-TYPE");
    let before: Vec<String> = q(&mut c, &["TDIGEST.QUANTILE", "t", "0.1", "0.5", "0.9"]);

    // DUMP / RESTORE, COPY, RENAME keep the answers.
    let payload: Vec<u8> = redis::cmd("DUMP").arg("t").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("r")
        .arg(0)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    let _: i64 = q(&mut c, &["COPY", "t", "cp"]);
    let _: () = q(&mut c, &["RENAME", "cp", "rn"]);
    for key in ["r", "rn"] {
        let got: Vec<String> = q(&mut c, &["TDIGEST.QUANTILE", key, "0.1", "0.5", "0.9"]);
        assert_eq!(got, before, "{key}");
        assert_eq!(q::<String>(&mut c, &["TYPE", key]), "TDIS-TYPE");
    }
    let info: Vec<redis::Value> = q(&mut c, &["TDIGEST.INFO", "r"]);
    assert_eq!(info[1], redis::Value::Int(50));
    let (_, keys): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "TYPE", "TDIS-TYPE", "COUNT", "100"]);
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["r", "rn", "t"]);
    let _: i64 = q(&mut c, &["PEXPIRE", "r", "100000"]);
    assert!(q::<i64>(&mut c, &["PTTL", "r"]) > 0);

    // In MULTI.
    let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    let _: redis::Value = redis::cmd("TDIGEST.ADD")
        .arg("t")
        .arg(7)
        .query(&mut c)
        .unwrap();
    let _: redis::Value = redis::cmd("TDIGEST.MAX").arg("t").query(&mut c).unwrap();
    let r: Vec<redis::Value> = redis::cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(r[1], redis::Value::BulkString(b"1000".to_vec()));

    // A replica holds the same digests (DIGEST covers them) and answers the same.
    let slaveof = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start_with(&["--slaveof", &slaveof]);
    wait_until(
        30,
        || {
            let a: Option<(String, i64, i64)> = redis::cmd("DIGEST").query(&mut m.conn()).ok();
            let b: Option<(String, i64, i64)> = redis::cmd("DIGEST").query(&mut r.conn()).ok();
            a.is_some() && a == b
        },
        || r.log(),
    );
    let got: Vec<String> = q(
        &mut r.conn(),
        &["TDIGEST.QUANTILE", "t", "0.1", "0.5", "0.9"],
    );
    let want: Vec<String> = q(&mut c, &["TDIGEST.QUANTILE", "t", "0.1", "0.5", "0.9"]);
    assert_eq!(got, want);
    // Reads write nothing: they run on the replica.
    let _: Vec<i64> = q(&mut r.conn(), &["TDIGEST.RANK", "t", "3"]);
    let _: i64 = q(&mut c, &["DEL", "t"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "t"]), 0);
}
