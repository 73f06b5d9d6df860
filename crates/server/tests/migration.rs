//! Slot migration through real processes: every data type under a concurrent write load with
//! a log of acknowledged writes, replicas on both sides, cancel and failure cases that must
//! leave both sides clean and allow a retry, and a 100,000-key range with progress.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{q, wait_until, Proxy, TestServer};

const A: &str = "a000000000000000000000000000000000000001";
const C: &str = "c000000000000000000000000000000000000003";
const RA: &str = "a000000000000000000000000000000000000011";
const RC: &str = "c000000000000000000000000000000000000033";
/// `{m}` hashes to this slot.
const SLOT: u16 = 15627;

fn node(extra: &[&str]) -> TestServer {
    let mut args = vec!["--cluster-enabled", "yes"];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

fn topology(a: &TestServer, c: &TestServer, c_slots: &str, a_slots: &str) -> String {
    format!(
        "{A} 127.0.0.1 {} master - {a_slots}\n{C} 127.0.0.1 {} master - {c_slots}\n",
        a.port, c.port
    )
}

fn push(nodes: &[(&TestServer, &str)], text: &str, version: i64) {
    for (n, id) in nodes {
        let mut c = n.conn();
        let _: () = q(&mut c, &["CLUSTERX", "SETNODEID", id]);
        let _: () = q(
            &mut c,
            &["CLUSTERX", "SETNODES", text, &version.to_string()],
        );
    }
}

fn cluster_info(n: &TestServer, field: &str) -> String {
    let info: String = q(&mut n.conn(), &["CLUSTER", "INFO"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn wait_state(n: &TestServer, want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = cluster_info(n, "migrating_state");
        if want.contains(&s.as_str()) {
            return s;
        }
        assert!(Instant::now() < deadline, "state {s}\n{}", n.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count_in_slot(n: &TestServer) -> i64 {
    q(
        &mut n.conn(),
        &["CLUSTER", "COUNTKEYSINSLOT", &SLOT.to_string()],
    )
}

fn fill(n: &TestServer, keys: usize, size: usize) {
    let mut c = n.conn();
    let value = "x".repeat(size);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(500) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET")
                .arg(format!("{{m}}bulk{i}"))
                .arg(&value)
                .ignore();
        }
        p.query::<()>(&mut c).unwrap();
    }
}

/// A client that follows MOVED and retries TRYAGAIN, and logs what was acknowledged.
fn writer(
    start_port: u16,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<HashMap<String, String>>>,
) -> std::thread::JoinHandle<(u64, f64)> {
    std::thread::spawn(move || {
        let mut port = start_port;
        let mut conns: HashMap<u16, redis::Connection> = HashMap::new();
        let started = Instant::now();
        let mut n = 0u64;
        let mut i = 0u64;
        while !stop.load(Ordering::Acquire) {
            let key = format!("{{m}}w{}", i % 300);
            let value = i.to_string();
            let c = conns.entry(port).or_insert_with(|| {
                redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .unwrap()
                    .get_connection()
                    .unwrap()
            });
            match redis::cmd("SET").arg(&key).arg(&value).query::<()>(c) {
                Ok(()) => {
                    acked.lock().unwrap().insert(key, value);
                    n += 1;
                    i += 1;
                }
                Err(e) if e.code() == Some("MOVED") => {
                    port = e
                        .detail()
                        .unwrap()
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                }
                Err(e) if e.code() == Some("TRYAGAIN") => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("write failed: {e}"),
            }
        }
        (n, started.elapsed().as_secs_f64())
    })
}

#[test]
fn every_type_moves_under_a_write_load_and_no_acknowledged_write_is_lost() {
    let a = node(&[
        "--migrate-batch-size-kb",
        "4",
        "--migrate-batch-rate-limit-mb",
        "1",
    ]);
    let c = node(&[]);
    // Replicas of both sides; the topology below attaches them.
    let ra = node(&[]);
    let rc = node(&[]);
    let text = format!(
        "{}{RA} 127.0.0.1 {} slave {A}\n{RC} 127.0.0.1 {} slave {C}\n",
        topology(&a, &c, "", "0-16383"),
        ra.port,
        rc.port
    );
    push(&[(&a, A), (&c, C), (&ra, RA), (&rc, RC)], &text, 1);
    let mut ac = a.conn();
    let _: () = q(&mut ac, &["SET", "{m}str", "v", "EX", "1000"]);
    let _: i64 = q(&mut ac, &["HSET", "{m}hash", "f1", "1", "f2", "2"]);
    let _: i64 = q(&mut ac, &["RPUSH", "{m}list", "a", "b", "c"]);
    let _: i64 = q(&mut ac, &["SADD", "{m}set", "x", "y"]);
    let _: i64 = q(&mut ac, &["ZADD", "{m}zset", "1", "one", "2", "two"]);
    let _: i64 = q(&mut ac, &["PEXPIRE", "{m}hash", "5000000"]);
    let _: () = q(&mut ac, &["SET", "elsewhere", "stays"]);
    // About 2 MB at 1 MB/s: the snapshot takes seconds, with writes all along.
    fill(&a, 4000, 500);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let w = writer(a.port, stop.clone(), acked.clone());
    std::thread::sleep(Duration::from_millis(300));
    let _: () = q(&mut ac, &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C]);
    // Progress is visible while it runs.
    wait_until(
        10,
        || {
            cluster_info(&a, "migrating_keys_sent")
                .parse::<u64>()
                .unwrap_or(0)
                != 0
        },
        String::new,
    );
    assert_eq!(cluster_info(&a, "migrating_state"), "start");
    let nodes: String = q(&mut ac, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!("[{SLOT}->-{C}]")), "{nodes}");
    // Throttles apply to the running job.
    let _: () = q(
        &mut ac,
        &["CONFIG", "SET", "migrate-batch-rate-limit-mb", "4"],
    );
    assert_eq!(
        wait_state(&a, &["success", "fail"]),
        "success",
        "{}",
        a.log()
    );
    assert_eq!(cluster_info(&c, "import_state"), "success");
    std::thread::sleep(Duration::from_millis(300));
    // The controller moves the slot in the topology.
    let text2 = format!(
        "{}{RA} 127.0.0.1 {} slave {A}\n{RC} 127.0.0.1 {} slave {C}\n",
        topology(
            &a,
            &c,
            &SLOT.to_string(),
            &format!("0-{} {}-16383", SLOT - 1, SLOT + 1)
        ),
        ra.port,
        rc.port
    );
    push(&[(&a, A), (&c, C), (&ra, RA), (&rc, RC)], &text2, 2);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Release);
    let (writes, secs) = w.join().unwrap();
    let rate = writes as f64 / secs;
    eprintln!("{writes} acknowledged writes in {secs:.1} s = {rate:.0}/s");
    assert!(rate >= 2000.0, "the write load was {rate:.0}/s");
    assert!(
        a.log().contains("digests match at the cut-over"),
        "{}",
        a.log()
    );

    // Every acknowledged write is on the destination, with its last value.
    let mut cc = c.conn();
    for (k, v) in acked.lock().unwrap().iter() {
        let got: Option<String> = q(&mut cc, &["GET", k]);
        assert_eq!(got.as_deref(), Some(v.as_str()), "{k}");
    }
    let ttl: i64 = q(&mut cc, &["TTL", "{m}str"]);
    assert!(ttl > 900);
    let zs: Vec<String> = q(&mut cc, &["ZRANGE", "{m}zset", "0", "-1"]);
    assert_eq!(zs, ["one", "two"]);
    let l: Vec<String> = q(&mut cc, &["LRANGE", "{m}list", "0", "-1"]);
    assert_eq!(l, ["a", "b", "c"]);
    let pttl: i64 = q(&mut cc, &["PTTL", "{m}hash"]);
    assert!(pttl > 4_000_000);
    // The source dropped the slot once the topology moved it, and kept the rest.
    assert_eq!(count_in_slot(&a), 0);
    let v: String = q(&mut ac, &["GET", "elsewhere"]);
    assert_eq!(v, "stays");
    // Replicas of both sides converge (per-slot digests).
    let slot = SLOT.to_string();
    for (m, r) in [(&c, &rc), (&a, &ra)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let dm: (String, i64, i64) = q(&mut m.conn(), &["DIGEST", &slot]);
            let dr: (String, i64, i64) = q(&mut r.conn(), &["DIGEST", &slot]);
            if dm == dr {
                break;
            }
            assert!(Instant::now() < deadline, "{dm:?} {dr:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn cancel_and_failures_leave_both_sides_clean_and_a_retry_works() {
    let a = node(&[
        "--migrate-batch-size-kb",
        "4",
        "--migrate-batch-rate-limit-mb",
        "1",
    ]);
    let mut c = node(&[]);
    push(&[(&a, A), (&c, C)], &topology(&a, &c, "", "0-16383"), 1);
    fill(&a, 6000, 500);
    let before: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    let mut ac = a.conn();

    // Cancel.
    let _: () = q(
        &mut ac,
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "ASYNC"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let _: () = q(&mut ac, &["CLUSTERX", "MIGRATE", "CANCEL"]);
    assert_eq!(wait_state(&a, &["fail"]), "fail");
    assert_eq!(cluster_info(&c, "import_state"), "error");
    assert_eq!(
        count_in_slot(&c),
        0,
        "the destination dropped the partial data"
    );
    let _: () = q(&mut ac, &["SET", "{m}after-cancel", "1"]);

    // The destination dies mid-migration.
    let _: () = q(&mut ac, &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C]);
    std::thread::sleep(Duration::from_millis(500));
    c.kill9();
    assert_eq!(wait_state(&a, &["fail"]), "fail");
    let _: () = q(&mut ac, &["SET", "{m}after-kill", "1"]);
    c.restart_same_port();

    // The retry, at full speed, succeeds and carries everything.
    let _: () = q(
        &mut ac,
        &["CONFIG", "SET", "migrate-batch-rate-limit-mb", "0"],
    );
    let _: () = q(
        &mut ac,
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "SYNC", "60"],
    );
    assert_eq!(cluster_info(&a, "migrating_state"), "success");
    let after: (String, i64, i64) = q(&mut c.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(after.2, before.2 + 2);
    let src: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(src.0, after.0, "source and destination hold the same slot");

    // Errors of CLUSTERX MIGRATE.
    let e = common::err(&mut ac, &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C]);
    assert_eq!(e, "ERR Can't migrate slot which has been migrated");
    let e = common::err(&mut ac, &["CLUSTERX", "MIGRATE", "1", A]);
    assert_eq!(e, "ERR Can't migrate slot to myself");
    let e = common::err(
        &mut ac,
        &[
            "CLUSTERX",
            "MIGRATE",
            "1",
            "0000000000000000000000000000000000000000",
        ],
    );
    assert_eq!(e, "ERR Can't find the destination node id");
    let e = common::err(&mut ac, &["CLUSTERX", "MIGRATE", "1", C, "ASYNC", "5"]);
    assert_eq!(e, "ERR Async migration does not support timeout");
}

fn fill_tag(n: &TestServer, tag: &str, keys: usize, size: usize) {
    let mut c = n.conn();
    let value = "x".repeat(size);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET")
                .arg(format!("{{{tag}}}k{i}"))
                .arg(&value)
                .ignore();
        }
        p.query::<()>(&mut c).unwrap();
    }
}

#[test]
fn ranges_of_100000_keys_report_progress_and_finish() {
    let a = node(&[]);
    let c = node(&[]);
    push(&[(&a, A), (&c, C)], &topology(&a, &c, "", "0-16383"), 1);
    let mut ac = a.conn();
    fill_tag(&a, "m", 100_000, 64);
    fill_tag(&a, "n", 100_000, 64);
    let n_slot: i64 = q(&mut ac, &["CLUSTER", "KEYSLOT", "{n}"]);

    // Throttled to 4 MB/s, the first range takes a few seconds: progress shows meanwhile, in
    // CLUSTER INFO and in the log.
    let _: () = q(
        &mut ac,
        &["CONFIG", "SET", "migrate-batch-rate-limit-mb", "4"],
    );
    let _: () = q(&mut ac, &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C]);
    let mut seen = Vec::new();
    while cluster_info(&a, "migrating_state") == "start" {
        seen.push(
            cluster_info(&a, "migrating_keys_sent")
                .parse::<u64>()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cluster_info(&a, "migrating_state"), "success");
    assert!(
        seen.iter().any(|&k| k > 0 && k < 100_000),
        "progress was visible: {seen:?}"
    );
    assert!(a.log().contains("slot migration progress"));
    assert_eq!(count_in_slot(&c), 100_000);

    // Unthrottled, the second range measures throughput.
    let _: () = q(
        &mut ac,
        &["CONFIG", "SET", "migrate-batch-rate-limit-mb", "0"],
    );
    let started = Instant::now();
    let _: () = q(
        &mut ac,
        &["CLUSTERX", "MIGRATE", &n_slot.to_string(), C, "SYNC"],
    );
    let secs = started.elapsed().as_secs_f64();
    let keys: u64 = cluster_info(&a, "migrating_keys_sent").parse().unwrap();
    let bytes: u64 = cluster_info(&a, "migrating_bytes_sent").parse().unwrap();
    assert_eq!(keys, 100_000);
    let on_c: i64 = q(
        &mut c.conn(),
        &["CLUSTER", "COUNTKEYSINSLOT", &n_slot.to_string()],
    );
    assert_eq!(on_c, 100_000);
    eprintln!(
        "migrated {keys} keys, {:.1} MB in {secs:.2} s: {:.0} keys/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        keys as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}

#[test]
fn a_killed_source_or_a_flushed_destination_fail_cleanly_and_a_retry_works() {
    let mut a = node(&[
        "--migrate-batch-size-kb",
        "4",
        "--migrate-batch-rate-limit-mb",
        "1",
    ]);
    let c = node(&[]);
    push(&[(&a, A), (&c, C)], &topology(&a, &c, "", "0-16383"), 1);
    fill(&a, 6000, 500);
    let before: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);

    // The source dies mid-migration: the destination drops the partial import.
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C],
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(count_in_slot(&c) > 0, "some keys arrived");
    a.kill9();
    wait_until(
        10,
        || cluster_info(&c, "import_state") == "error",
        || c.log(),
    );
    assert_eq!(count_in_slot(&c), 0);
    a.restart_same_port();
    let after_restart: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(after_restart.0, before.0, "the source kept the whole slot");

    // The destination is flushed mid-migration: the digests differ at the cut-over, so the
    // migration fails instead of handing over a slot with missing keys.
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C],
    );
    std::thread::sleep(Duration::from_millis(700));
    let _: () = q(&mut c.conn(), &["FLUSHALL"]);
    assert_eq!(wait_state(&a, &["success", "fail"]), "fail");
    assert!(
        cluster_info(&a, "migrating_error").contains("digest"),
        "{}",
        cluster_info(&a, "migrating_error")
    );
    assert_eq!(count_in_slot(&c), 0);
    let v: Option<String> = q(&mut a.conn(), &["GET", "{m}bulk1"]);
    assert!(v.is_some(), "the source still serves the slot");

    // The retry goes through.
    let _: () = q(
        &mut a.conn(),
        &["CONFIG", "SET", "migrate-batch-rate-limit-mb", "0"],
    );
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "SYNC"],
    );
    let on_c: (String, i64, i64) = q(&mut c.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(on_c.0, before.0);
}

#[test]
fn a_source_that_becomes_a_replica_mid_migration_fails_cleanly_and_its_successor_retries() {
    let a = node(&[
        "--migrate-batch-size-kb",
        "4",
        "--migrate-batch-rate-limit-mb",
        "1",
    ]);
    let ra = node(&[]);
    let c = node(&[]);
    let all = [(&a, A), (&ra, RA), (&c, C)];
    let v1 = format!(
        "{}{RA} 127.0.0.1 {} slave {A}\n",
        topology(&a, &c, "", "0-16383"),
        ra.port
    );
    push(&all, &v1, 1);
    fill(&a, 6000, 500);
    let before: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d: (String, i64, i64) = q(&mut ra.conn(), &["DIGEST", &SLOT.to_string()]);
        if d.0 == before.0 {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C],
    );
    std::thread::sleep(Duration::from_millis(700));
    // Failover inside the source's shard: RA takes over, A becomes its replica.
    let v2 = format!(
        "{RA} 127.0.0.1 {} master - 0-16383\n{A} 127.0.0.1 {} slave {RA}\n{C} 127.0.0.1 {} master -\n",
        ra.port, a.port, c.port
    );
    push(&all, &v2, 2);
    // A replica shows no migration state (as in Kvrocks); its log and the destination do.
    wait_until(
        10,
        || cluster_info(&c, "import_state") == "error",
        || c.log(),
    );
    assert_eq!(count_in_slot(&c), 0);
    assert!(a.log().contains("slot migration failed"), "{}", a.log());
    // The new master of the shard migrates the slot.
    let _: () = q(
        &mut ra.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "SYNC"],
    );
    let on_c: (String, i64, i64) = q(&mut c.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(on_c.0, before.0);
}

#[test]
fn a_network_cut_fails_the_migration_and_a_retry_after_it_works() {
    let a = node(&[
        "--migrate-batch-size-kb",
        "4",
        "--migrate-batch-rate-limit-mb",
        "1",
    ]);
    let c = node(&[]);
    let proxy = Proxy::to(c.port);
    // The topology reaches C through the proxy.
    let text = format!(
        "{A} 127.0.0.1 {} master - 0-16383\n{C} 127.0.0.1 {} master -\n",
        a.port, proxy.port
    );
    push(&[(&a, A)], &text, 1);
    let mut cc = c.conn();
    let _: () = q(&mut cc, &["CLUSTERX", "SETNODEID", C]);
    let _: () = q(&mut cc, &["CLUSTERX", "SETNODES", &text, "1"]);
    fill(&a, 6000, 500);
    let before: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C],
    );
    std::thread::sleep(Duration::from_millis(700));
    proxy.cut.store(true, Ordering::Release);
    assert_eq!(wait_state(&a, &["fail", "success"]), "fail");
    // The source serves the slot, writes included, all along.
    let _: () = q(&mut a.conn(), &["SET", "{m}during-the-cut", "1"]);
    proxy.cut.store(false, Ordering::Release);
    let _: () = q(
        &mut a.conn(),
        &["CONFIG", "SET", "migrate-batch-rate-limit-mb", "0"],
    );
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "SYNC"],
    );
    let on_c: (String, i64, i64) = q(&mut c.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(on_c.2, before.2 + 1);
    let v: String = q(&mut c.conn(), &["GET", "{m}during-the-cut"]);
    assert_eq!(v, "1");
}

fn redis_error(n: &TestServer, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(&mut n.conn()) {
        Ok(v) => panic!("{args:?}: expected an error, got {v:?}"),
        Err(e) => common::error_text(&e),
    }
}

#[test]
fn a_source_restarted_between_the_handover_and_the_topology_never_serves_the_range() {
    let mut a = node(&[]);
    let mut c = node(&[]);
    push(&[(&a, A), (&c, C)], &topology(&a, &c, "", "0-16383"), 1);
    fill(&a, 200, 100);
    let before: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "SYNC", "60"],
    );
    // The destination takes writes to the range (clients follow the source's MOVED).
    let _: () = q(&mut c.conn(), &["SET", "{m}new", "at-c"]);

    // Both crash before the controller pushes the topology.
    a.kill9();
    c.kill9();
    a.restart_same_port();
    c.restart_same_port();
    let moved = format!("MOVED {SLOT} 127.0.0.1:{}", c.port);
    assert_eq!(redis_error(&a, &["GET", "{m}bulk0"]), moved);
    assert_eq!(redis_error(&a, &["GET", "{m}new"]), moved);
    assert_eq!(redis_error(&a, &["SET", "{m}bulk0", "stale"]), moved);
    assert_eq!(q::<String>(&mut c.conn(), &["GET", "{m}new"]), "at-c");
    assert_eq!(q::<i64>(&mut c.conn(), &["EXISTS", "{m}bulk0"]), 1);

    // The topology settles it: the source deletes the range and forgets the handover.
    push(
        &[(&a, A), (&c, C)],
        &topology(&a, &c, "15627", "0-15626 15628-16383"),
        2,
    );
    assert_eq!(count_in_slot(&a), 0);
    assert!(!a.data_dir().join("slot-handovers").exists());
    assert!(!c.data_dir().join("slot-handovers").exists());
    let after: (String, i64, i64) = q(&mut c.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!(after.2, before.2 + 1);
}

#[test]
fn a_handover_interrupted_by_a_crash_answers_tryagain_until_a_migration_settles_it() {
    let mut a = node(&[]);
    let c = node(&[]);
    push(&[(&a, A), (&c, C)], &topology(&a, &c, "", "0-16383"), 1);
    fill(&a, 200, 100);
    let before: (String, i64, i64) = q(&mut a.conn(), &["DIGEST", &SLOT.to_string()]);
    // The destination has taken the range; the source dies before it records that.
    a.stop();
    a.set_env(&[("QUARRY_FAILPOINT", "migration:after-handover")]);
    a.restart_same_port();
    let _ = redis::cmd("CLUSTERX")
        .arg("MIGRATE")
        .arg(SLOT)
        .arg(C)
        .arg("SYNC")
        .arg(60)
        .query::<()>(&mut a.conn());
    assert!(!a.wait_exit().success());
    a.set_env(&[]);
    a.restart_same_port();
    let tryagain =
        "TRYAGAIN Slot handover was interrupted by a restart; waiting for the cluster topology";
    assert_eq!(redis_error(&a, &["GET", "{m}bulk0"]), tryagain);
    assert_eq!(redis_error(&a, &["SET", "{m}bulk0", "x"]), tryagain);
    // Other slots are served.
    let _: () = q(&mut a.conn(), &["SET", "elsewhere", "1"]);
    assert!(a
        .log()
        .contains("a slot handover was interrupted by a restart"));

    // The controller runs the migration again; it completes, and the topology follows.
    let _: () = q(
        &mut a.conn(),
        &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C, "SYNC", "60"],
    );
    assert_eq!(
        redis_error(&a, &["GET", "{m}bulk0"]),
        format!("MOVED {SLOT} 127.0.0.1:{}", c.port)
    );
    push(
        &[(&a, A), (&c, C)],
        &topology(&a, &c, "15627", "0-15626 15628-16383"),
        2,
    );
    let after: (String, i64, i64) = q(&mut c.conn(), &["DIGEST", &SLOT.to_string()]);
    assert_eq!((after.0, after.2), (before.0, before.2));
    assert!(!a.data_dir().join("slot-handovers").exists());
}

#[test]
fn redis_command_migration_moves_every_type_at_migrate_speed() {
    // 16 commands per round trip, at most 800 a second.
    let a = node(&[
        "--migrate-type",
        "redis-command",
        "--migrate-pipeline-size",
        "16",
        "--migrate-speed",
        "800",
    ]);
    let c = node(&[]);
    push(&[(&a, A), (&c, C)], &topology(&a, &c, "", "0-16383"), 1);
    let mut ac = a.conn();
    let _: () = q(&mut ac, &["SET", "{m}str", "v", "EX", "1000"]);
    let _: i64 = q(&mut ac, &["HSET", "{m}hash", "f1", "1", "f2", "2"]);
    let _: i64 = q(&mut ac, &["RPUSH", "{m}list", "a", "b", "c"]);
    let _: i64 = q(&mut ac, &["SADD", "{m}set", "x", "y"]);
    let _: i64 = q(&mut ac, &["ZADD", "{m}zset", "1", "one", "2.5", "two"]);
    let _: String = q(&mut ac, &["XADD", "{m}stream", "1-1", "f", "v"]);
    let _: i64 = q(&mut ac, &["SETBIT", "{m}bits", "100", "1"]);
    let _: i64 = q(&mut ac, &["PFADD", "{m}hll", "a", "b", "c"]);
    let _: i64 = q(&mut ac, &["SIADD", "{m}sortedint", "3", "1", "2"]);
    let _: () = q(&mut ac, &["JSON.SET", "{m}json", "$", r#"{"a":[1,2]}"#]);
    let _: () = q(&mut ac, &["BF.RESERVE", "{m}bloom", "0.01", "100"]);
    let _: i64 = q(&mut ac, &["BF.ADD", "{m}bloom", "x"]);
    let _: () = q(&mut ac, &["TDIGEST.CREATE", "{m}td"]);
    let _: () = q(&mut ac, &["TDIGEST.ADD", "{m}td", "1.5", "2.5"]);
    let _: () = q(&mut ac, &["SET", "elsewhere", "stays"]);
    fill(&a, 400, 100);
    let keys = count_in_slot(&a);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let w = writer(a.port, stop.clone(), acked.clone());
    // Keys sent as raw records change all along: members and centroids come and go, so a
    // destination that kept an earlier send's records would differ at the cut-over.
    let churn = {
        let stop = stop.clone();
        let mut m = a.conn();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let n = (100 + i % 50).to_string();
                let _ = redis::cmd("SIADD")
                    .arg("{m}sortedint")
                    .arg(&n)
                    .query::<i64>(&mut m);
                let _ = redis::cmd("SIREM")
                    .arg("{m}sortedint")
                    .arg(&n)
                    .query::<i64>(&mut m);
                let _ = redis::cmd("TDIGEST.ADD")
                    .arg("{m}td")
                    .arg(i % 7)
                    .query::<()>(&mut m);
                let _ = redis::cmd("SETBIT")
                    .arg("{m}bits")
                    .arg(200)
                    .arg(i % 2)
                    .query::<i64>(&mut m);
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let _: () = q(&mut ac, &["CLUSTERX", "MIGRATE", &SLOT.to_string(), C]);
    assert_eq!(
        wait_state(&a, &["success", "fail"]),
        "success",
        "{}",
        a.log()
    );
    let took = started.elapsed();
    // Over 400 commands at 800 a second: at least (commands / 16 - 1) gaps of 20 ms.
    let floor = Duration::from_millis(20 * (keys as u64 / 16 - 1));
    assert!(took >= floor, "{took:?} < {floor:?} for {keys} keys");
    assert!(a.log().contains("method=RedisCommand"), "{}", a.log());
    assert!(a.log().contains("digests match at the cut-over"));
    push(
        &[(&a, A), (&c, C)],
        &topology(
            &a,
            &c,
            &SLOT.to_string(),
            &format!("0-{} {}-16383", SLOT - 1, SLOT + 1),
        ),
        2,
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Release);
    w.join().unwrap();
    churn.join().unwrap();
    let mut cc = c.conn();
    for (k, v) in acked.lock().unwrap().iter() {
        let got: Option<String> = q(&mut cc, &["GET", k]);
        assert_eq!(got.as_deref(), Some(v.as_str()), "{k}");
    }
    // Each type arrived as itself.
    for (key, kind) in [
        ("{m}str", "string"),
        ("{m}hash", "hash"),
        ("{m}list", "list"),
        ("{m}zset", "zset"),
        ("{m}stream", "stream"),
        ("{m}json", "ReJSON-RL"),
        ("{m}bloom", "MBbloom--"),
    ] {
        assert_eq!(q::<String>(&mut cc, &["TYPE", key]), kind, "{key}");
    }
    assert!(q::<i64>(&mut cc, &["TTL", "{m}str"]) > 900);
    assert_eq!(q::<i64>(&mut cc, &["GETBIT", "{m}bits", "100"]), 1);
    assert_eq!(q::<i64>(&mut cc, &["PFCOUNT", "{m}hll"]), 3);
    assert_eq!(
        q::<Vec<i64>>(&mut cc, &["SIRANGE", "{m}sortedint", "0", "3"]),
        [1, 2, 3]
    );
    assert_eq!(q::<i64>(&mut cc, &["BF.EXISTS", "{m}bloom", "x"]), 1);
    assert_eq!(
        q::<String>(&mut cc, &["JSON.GET", "{m}json"]),
        r#"{"a":[1,2]}"#
    );
    assert_eq!(
        q::<Vec<String>>(&mut cc, &["ZRANGE", "{m}zset", "0", "-1", "WITHSCORES"]),
        ["one", "1", "two", "2.5"]
    );
    assert_eq!(count_in_slot(&a), 0);
}
