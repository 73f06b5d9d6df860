//! What operators watch, through the real binary: per-command latency percentiles (INFO
//! latencystats, LATENCY HISTOGRAM), the latency monitor (LATENCY LATEST/HISTORY/RESET/
//! DOCTOR), the Prometheus endpoint scraped and parsed by Prometheus' own Python parser, and
//! the Unix socket.

mod common;

use std::io::{Read, Write};

use common::{err, free_port, q, wait_until, TestServer};

fn info(s: &TestServer, section: &str) -> String {
    q(&mut s.conn(), &["INFO", section])
}

#[test]
fn latency_percentiles_and_histograms() {
    let s = TestServer::start();
    let mut c = s.conn();
    for i in 0..200 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let text = info(&s, "latencystats");
    let line = text
        .lines()
        .find(|l| l.starts_with("latency_percentiles_usec_set:"))
        .unwrap_or_else(|| panic!("{text}"));
    let fields: Vec<&str> = line.split(':').nth(1).unwrap().split(',').collect();
    assert_eq!(fields.len(), 3, "{line}");
    assert!(
        fields[0].starts_with("p50=") && fields[2].starts_with("p99.9="),
        "{line}"
    );
    let p50: f64 = fields[0][4..].parse().unwrap();
    let p999: f64 = fields[2][6..].parse().unwrap();
    assert!(p50 <= p999, "{line}");
    // Not in the default INFO, as in Redis.
    assert!(!info(&s, "").contains("latency_percentiles_usec_"));

    // LATENCY HISTOGRAM: cumulative counts at powers of two, ending with every call.
    let h: Vec<redis::Value> = q(&mut c, &["LATENCY", "HISTOGRAM", "set"]);
    assert_eq!(h[0], redis::Value::BulkString(b"set".to_vec()));
    let redis::Value::Array(detail) = &h[1] else {
        panic!("{h:?}")
    };
    assert_eq!(detail[1], redis::Value::Int(200));
    let redis::Value::Array(buckets) = &detail[3] else {
        panic!("{detail:?}")
    };
    assert_eq!(buckets.last(), Some(&redis::Value::Int(200)));

    // Percentiles are configurable; tracking can be turned off; RESETSTAT clears.
    let _: () = q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "latency-tracking-info-percentiles",
            "50 90",
        ],
    );
    assert!(info(&s, "latencystats").contains(",p90="));
    assert!(err(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "latency-tracking-info-percentiles",
            "50 101"
        ]
    )
    .contains("between 0 and 100"));
    let _: () = q(&mut c, &["CONFIG", "RESETSTAT"]);
    let _: () = q(&mut c, &["CONFIG", "SET", "latency-tracking", "no"]);
    let _: () = q(&mut c, &["SET", "a", "1"]);
    assert!(!info(&s, "latencystats").contains("latency_percentiles_usec_set"));
}

#[test]
fn the_latency_monitor_records_slow_commands() {
    let s = TestServer::start();
    let mut c = s.conn();
    let doctor: String = q(&mut c, &["LATENCY", "DOCTOR"]);
    assert!(
        doctor.contains("Latency monitoring is disabled"),
        "{doctor}"
    );
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "latency-monitor-threshold", "100"],
    );
    let doctor: String = q(&mut c, &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains("no latency spike"), "{doctor}");
    // A script that spins for 150 ms is a "command" event.
    let spin = "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
                repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start > 150000 \
                return 1";
    let _: i64 = q(&mut c, &["EVAL", spin, "0"]);
    let latest: Vec<(String, i64, i64, i64)> = q(&mut c, &["LATENCY", "LATEST"]);
    assert_eq!(latest.len(), 1, "{latest:?}");
    let (event, _, ms, max) = &latest[0];
    assert_eq!(event, "command");
    assert!(*ms >= 150 && *max >= *ms, "{latest:?}");
    let history: Vec<(i64, i64)> = q(&mut c, &["LATENCY", "HISTORY", "command"]);
    assert_eq!(history.len(), 1);
    let doctor: String = q(&mut c, &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains("1. command: 1 latency spikes"), "{doctor}");
    assert_eq!(q::<i64>(&mut c, &["LATENCY", "RESET"]), 1);
    let latest: Vec<redis::Value> = q(&mut c, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty());
    assert!(err(&mut c, &["LATENCY", "NOPE"]).contains("unknown subcommand"));
}

/// GET /metrics, the body.
fn scrape(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

#[test]
fn the_prometheus_endpoint_is_scraped_and_parsed() {
    let port = free_port();
    let m = TestServer::start_with(&["--metrics-port", &port.to_string()]);
    let slaveof = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start_with(&["--slaveof", &slaveof]);
    let mut c = m.conn();
    for i in 0..50 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let _ = err(&mut c, &["INCR", "k1"]);
    wait_until(
        30,
        || q::<String>(&mut m.conn(), &["INFO", "replication"]).contains("connected_slaves:1"),
        || r.log(),
    );
    let (head, body) = scrape(port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let (head, _) = scrape(port, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Prometheus' own parser (python3-prometheus-client, installed by scripts/setup-deps).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{family.type} {s.name} {labels} {s.value}")
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = String::from_utf8_lossy(&out.stdout).to_string();
    let value = |name: &str, labels: &str| -> f64 {
        parsed
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[1] == name && f[2] == labels).then(|| f[3].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{name} {{{labels}}} not in\n{parsed}"))
    };
    assert_eq!(value("quarry_up", ""), 1.0);
    assert_eq!(value("quarry_command_calls_total", "cmd=set"), 50.0);
    assert_eq!(value("quarry_command_failed_calls_total", "cmd=incr"), 1.0);
    assert_eq!(value("quarry_errors_total", "code=ERR"), 1.0);
    assert_eq!(value("quarry_connected_replicas", ""), 1.0);
    assert!(value("quarry_command_latency_seconds", "cmd=set,quantile=0.99") > 0.0);
    assert_eq!(
        value("quarry_command_latency_seconds_count", "cmd=set"),
        50.0
    );
    assert!(
        parsed.contains("summary quarry_command_latency_seconds "),
        "{parsed}"
    );
    assert!(parsed
        .lines()
        .any(|l| l.contains("quarry_replica_lag_sequences replica=127.0.0.1:")));
    for name in [
        "quarry_rocksdb_pending_compaction_bytes",
        "quarry_rocksdb_write_stopped",
        "quarry_verify_mismatches_total",
        "quarry_migration_running",
        "quarry_sync_full_total",
    ] {
        value(name, "");
    }
}

#[test]
fn clients_connect_over_the_unix_socket() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarry.sock");
    let s = TestServer::start_with(&[
        "--unixsocket",
        path.to_str().unwrap(),
        "--unixsocketperm",
        "700",
    ]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mut u = std::os::unix::net::UnixStream::connect(&path).unwrap();
    u.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nu\r\n$2\r\nok\r\n*2\r\n$3\r\nGET\r\n$1\r\nu\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < b"+OK\r\n$2\r\nok\r\n".len() {
        let n = u.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"+OK\r\n$2\r\nok\r\n");
    // The same data over TCP.
    assert_eq!(q::<String>(&mut s.conn(), &["GET", "u"]), "ok");
    // CLIENT LIST shows the socket's path and the U flag, as Redis does.
    let list: String = q(&mut s.conn(), &["CLIENT", "LIST"]);
    let line = list
        .lines()
        .find(|l| l.contains(" flags=U"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        line.contains(&format!("addr={}:0", path.display())),
        "{line}"
    );
}

#[test]
fn the_perf_log_keeps_sampled_commands_with_rocksdbs_counters() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "before", "v"]);
    assert_eq!(q::<i64>(&mut c, &["PERFLOG", "LEN"]), 0, "off by default");
    for (k, v) in [
        ("profiling-sample-ratio", "100"),
        ("profiling-sample-commands", "get,set"),
        ("profiling-sample-record-threshold-ms", "0"),
    ] {
        let _: () = q(&mut c, &["CONFIG", "SET", k, v]);
    }
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let _: String = q(&mut c, &["GET", "k"]);
    let _: String = q(&mut c, &["PING"]);
    assert_eq!(
        q::<i64>(&mut c, &["PERFLOG", "LEN"]),
        2,
        "PING is not named"
    );
    let entries: Vec<(i64, i64, String, i64, String, String)> = q(&mut c, &["PERFLOG", "GET"]);
    assert_eq!(entries[0].2, "get", "newest first");
    assert_eq!(entries[1].2, "set");
    assert!(
        entries[0].4.contains("get_from_memtable_count"),
        "{}",
        entries[0].4
    );
    let one: Vec<redis::Value> = q(&mut c, &["PERFLOG", "GET", "1"]);
    assert_eq!(one.len(), 1);
    let _: () = q(&mut c, &["PERFLOG", "RESET"]);
    assert_eq!(q::<i64>(&mut c, &["PERFLOG", "LEN"]), 0);
    // A threshold keeps fast commands out.
    let _: () = q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "profiling-sample-record-threshold-ms",
            "10000",
        ],
    );
    let _: String = q(&mut c, &["GET", "k"]);
    assert_eq!(q::<i64>(&mut c, &["PERFLOG", "LEN"]), 0);
    assert_eq!(
        err(&mut c, &["PERFLOG", "NOPE"]),
        "ERR PERFLOG subcommand must be one of RESET, LEN, GET"
    );
}

#[test]
fn memory_stats_and_doctor() {
    let s = TestServer::start();
    let mut c = s.conn();
    for i in 0..100 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let stats: Vec<redis::Value> = q(&mut c, &["MEMORY", "STATS"]);
    let field = |name: &str| -> i64 {
        let at = stats
            .iter()
            .position(|v| *v == redis::Value::BulkString(name.as_bytes().to_vec()))
            .unwrap_or_else(|| panic!("{name} in {stats:?}"));
        match &stats[at + 1] {
            redis::Value::Int(n) => *n,
            other => panic!("{name}: {other:?}"),
        }
    };
    assert!(field("total.allocated") > 1 << 20, "the process' RSS");
    assert!(field("peak.allocated") >= field("total.allocated"));
    assert!(
        field("rocksdb.memtables") > 0,
        "the writes are in a memtable"
    );
    field("rocksdb.block-cache");
    field("keys.count");
    let doctor: String = q(&mut c, &["MEMORY", "DOCTOR"]);
    assert!(doctor.contains("Sam"), "{doctor}");
    assert!(err(&mut c, &["MEMORY", "NOPE"]).contains("unknown subcommand"));
}

fn info_number(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn stats_is_rocksdb_statistics_as_json_and_info_shows_the_block_cache() {
    let s = TestServer::start();
    let mut c = s.conn();
    for i in 0..50 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let _: () = q(&mut c, &["FLUSHMEMTABLE"]);
    for i in 0..50 {
        let _: Option<String> = q(&mut c, &["GET", &format!("k{i}")]);
    }
    let text: String = q(&mut c, &["STATS"]);
    assert!(!text.contains('\n'), "one line, as Kvrocks");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let map = json.as_object().unwrap();
    let names: Vec<&String> = map.keys().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "names are sorted");
    assert!(map["rocksdb.number.keys.written"].as_u64().unwrap() >= 50);
    let get = map["rocksdb.db.get.micros"].as_array().unwrap();
    assert_eq!(get.len(), 6, "[p50, p95, p99, max, count, sum]");
    assert!(get[4].as_u64().unwrap() >= 50, "{get:?}");
    assert!(get[0].is_f64() && get[5].is_u64());
    // The reads after the flush went through the block cache.
    let rocksdb = info(&s, "rocksdb");
    let hits = info_number(&rocksdb, "block_cache_hit");
    let misses = info_number(&rocksdb, "block_cache_miss");
    assert!(hits + misses > 0, "{rocksdb}");
    // The same counters (INFO reads them later; background reads may only add).
    assert!(misses >= map["rocksdb.block.cache.miss"].as_u64().unwrap());
    assert!(err(&mut c, &["STATS", "x"]).contains("wrong number of arguments"));
}
