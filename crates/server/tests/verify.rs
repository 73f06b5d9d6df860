//! Continuous verification of replicas and self-repair, through real processes: a replica made
//! to differ (a failpoint alters one value it applies, keeping every sequence aligned) is found
//! within a cycle and mended without a full sync, standalone, in a chain and in cluster mode;
//! expiry is judged at the master's clock; repairs that keep failing end in a full sync.

mod common;

use std::time::{Duration, Instant};

use common::{q, wait_until, TestServer};

/// A master that checks its replicas every second, in slices of a few keys.
fn master(extra: &[&str]) -> TestServer {
    let mut args = vec!["--verify-cycle-seconds", "1", "--verify-slice-keys", "16"];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

fn replica_of(m: &TestServer, extra: &[&str]) -> TestServer {
    let slaveof = format!("127.0.0.1 {}", m.port);
    let mut args = vec![
        "--slaveof",
        slaveof.as_str(),
        "--enable-debug-command",
        "yes",
    ];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

fn info(s: &TestServer, field: &str) -> String {
    let info: String = q(&mut s.conn(), &["INFO", "everything"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .to_string()
}

fn num(s: &TestServer, field: &str) -> u64 {
    info(s, field).parse().unwrap_or(0)
}

fn digest(s: &TestServer) -> Option<(String, i64, i64)> {
    redis::cmd("DIGEST").query(&mut s.conn()).ok()
}

/// Waits until `r` holds `m`'s sequence and their digests agree.
fn assert_converged(m: &TestServer, r: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (dm, dr) = (digest(m), digest(r));
        if dm.is_some() && dm == dr {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: master {dm:?} replica {dr:?}\n{}",
            tail(&r.log())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Keys of several types, more than one slice's worth.
fn seed(m: &TestServer) {
    let mut c = m.conn();
    for i in 0..60 {
        let _: () = q(&mut c, &["SET", &format!("s{i}"), &format!("v{i}")]);
    }
    let _: () = q(&mut c, &["HSET", "h", "f1", "a", "f2", "b"]);
    let _: () = q(&mut c, &["RPUSH", "l", "x", "y", "z"]);
    let _: () = q(&mut c, &["ZADD", "z", "1", "one", "2", "two"]);
    let _: () = q(&mut c, &["SADD", "set", "m1", "m2"]);
}

/// Arms the failpoint on `r` and writes through `m` a value it will alter.
fn make_differ(m: &TestServer, r: &TestServer, count: u64) {
    let _: () = q(
        &mut r.conn(),
        &["DEBUG", "VERIFY-ALTER-NEXT", &count.to_string()],
    );
    let _: () = q(&mut m.conn(), &["HSET", "h", "f1", "changed"]);
}

fn wait_repaired(r: &TestServer, repairs: u64) {
    wait_until(
        60,
        || num(r, "verify_repairs") >= repairs,
        || format!("no repair\n{}", tail(&r.log())),
    );
}

#[test]
fn a_replica_made_to_differ_is_found_and_repaired() {
    let m = master(&[]);
    seed(&m);
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    // Without the failpoint nothing differs: slices are checked and all agree.
    wait_until(
        30,
        || num(&r, "verify_slices_checked") >= 3,
        || tail(&r.log()),
    );
    assert_eq!(num(&r, "verify_mismatches"), 0, "{}", tail(&r.log()));
    // The failpoint is refused where enable-debug-command is off.
    let e: redis::RedisResult<()> = redis::cmd("DEBUG")
        .arg("VERIFY-ALTER-NEXT")
        .query(&mut m.conn());
    assert!(e.unwrap_err().to_string().contains("enable-debug-command"));

    make_differ(&m, &r, 1);
    wait_repaired(&r, 1);
    assert!(num(&r, "verify_mismatches") >= 1);
    assert_converged(&m, &r);
    let v: String = q(&mut r.conn(), &["HGET", "h", "f1"]);
    assert_eq!(v, "changed");
    let log = r.log();
    let warning = log
        .lines()
        .find(|l| l.contains("this replica differs from its master"))
        .expect("a warning names the range");
    assert!(warning.contains("range=keys "), "{warning}");
    assert!(
        warning.contains("master_digest=") && warning.contains("replica_digest="),
        "{warning}"
    );
    assert!(log.contains("the repaired range now matches the master"));
    assert!(info(&r, "verify_last_mismatch_range").starts_with("keys "));
    // Repaired without a full sync.
    assert_eq!(num(&m, "sync_full"), 0);
    assert_eq!(num(&r, "verify_full_syncs"), 0);
    assert!(num(&m, "verify_repairs_served") >= 1);
    // VERIFY STATUS shows the same counters.
    let status: String = q(&mut r.conn(), &["VERIFY", "STATUS"]);
    assert!(status.contains("verify_repairs:"), "{status}");
    assert!(status.contains("verify_cycle_progress:"), "{status}");
    assert!(
        info(&r, "verify_last_ok_seconds_ago")
            .parse::<i64>()
            .unwrap()
            >= 0
    );
}

#[test]
fn with_verify_repair_no_the_replica_only_reports() {
    let m = master(&[]);
    seed(&m);
    let r = replica_of(&m, &["--verify-repair", "no"]);
    assert_converged(&m, &r);
    make_differ(&m, &r, 1);
    wait_until(30, || num(&r, "verify_mismatches") >= 1, || tail(&r.log()));
    // Still different, and reported again on the next cycle.
    let seen = num(&r, "verify_mismatches");
    wait_until(
        30,
        || num(&r, "verify_mismatches") > seen,
        || tail(&r.log()),
    );
    assert_eq!(num(&r, "verify_repairs"), 0);
    assert_eq!(num(&m, "verify_repairs_served"), 0);
    let (dm, dr) = (digest(&m).unwrap(), digest(&r).unwrap());
    assert_eq!(dm.1, dr.1, "same sequence");
    assert_ne!(dm.0, dr.0, "the divergence stays");
    // Turned on, the next mismatch is repaired.
    let _: () = q(&mut r.conn(), &["CONFIG", "SET", "verify-repair", "yes"]);
    wait_repaired(&r, 1);
    assert_converged(&m, &r);
}

#[test]
fn a_chain_checks_the_last_replica_against_the_top_master() {
    let a = master(&[]);
    seed(&a);
    let b = replica_of(&a, &[]);
    let c = replica_of(&b, &[]);
    assert_converged(&a, &c);
    // C differs; B does not. C is checked against A's digests, carried through B.
    make_differ(&a, &c, 1);
    wait_repaired(&c, 1);
    assert_converged(&a, &b);
    assert_converged(&a, &c);
    assert_eq!(num(&b, "verify_mismatches"), 0, "{}", tail(&b.log()));
    assert!(num(&b, "verify_slices_checked") > 0);
    assert!(num(&a, "verify_repairs_served") >= 1);
    assert_eq!(num(&a, "sync_full"), 0);
    assert_eq!(num(&b, "sync_full"), 0);
}

#[test]
fn cluster_mode_checks_and_repairs_whole_slots() {
    let a = master(&["--cluster-enabled", "yes"]);
    let b = TestServer::start_with(&["--cluster-enabled", "yes", "--enable-debug-command", "yes"]);
    let ida = "a000000000000000000000000000000000000001";
    let idb = "b000000000000000000000000000000000000002";
    let text = format!(
        "{ida} 127.0.0.1 {} master - 0-16383\n{idb} 127.0.0.1 {} slave {ida}\n",
        a.port, b.port
    );
    for (n, id) in [(&a, ida), (&b, idb)] {
        let mut c = n.conn();
        let _: () = q(&mut c, &["CLUSTERX", "SETNODEID", id]);
        let _: () = q(&mut c, &["CLUSTERX", "SETNODES", &text, "1"]);
    }
    seed(&a);
    assert_converged(&a, &b);
    make_differ(&a, &b, 1);
    wait_repaired(&b, 1);
    assert_converged(&a, &b);
    let range = info(&b, "verify_last_mismatch_range");
    assert!(range.starts_with("slots "), "{range}");
    // The slot of `h` is inside the range reported.
    let slot: i64 = q(&mut a.conn(), &["CLUSTER", "KEYSLOT", "h"]);
    let (lo, hi) = range["slots ".len()..].split_once('-').unwrap();
    let hi = hi.split(' ').next().unwrap();
    assert!(
        lo.parse::<i64>().unwrap() <= slot && slot <= hi.parse::<i64>().unwrap(),
        "{slot} in {range}"
    );
    assert_eq!(num(&a, "sync_full"), 0);
}

#[test]
fn expiry_is_judged_at_the_masters_clock() {
    // The master checks only when told (VERIFY RUN); the replica hashes 2.5 s after the
    // master, by when keys with a 1.5 s TTL have expired by its own clock.
    let m = TestServer::start_with(&["--verify-cycle-seconds", "3600"]);
    let r = replica_of(&m, &[]);
    let _: () = q(&mut r.conn(), &["DEBUG", "VERIFY-DELAY", "2500"]);
    let _: () = q(&mut m.conn(), &["SET", "stays", "1"]);
    assert_converged(&m, &r);
    wait_until(
        10,
        || info(&m, "connected_slaves") == "1",
        || tail(&m.log()),
    );
    let mut c = m.conn();
    for i in 0..20 {
        let _: () = q(&mut c, &["SET", &format!("short{i}"), "v", "PX", "1500"]);
    }
    let _: () = q(&mut c, &["VERIFY", "RUN"]);
    wait_until(
        30,
        || num(&r, "verify_slices_checked") >= 1,
        || tail(&r.log()),
    );
    assert_eq!(num(&r, "verify_mismatches"), 0, "{}", tail(&r.log()));
    let _: () = q(&mut c, &["SET", "after-expiry", "1"]);
    // By now they are gone on both sides, and a new cycle agrees too.
    let checked = num(&r, "verify_slices_checked");
    let _: () = q(&mut c, &["VERIFY", "RUN"]);
    wait_until(
        30,
        || num(&r, "verify_slices_checked") > checked,
        || tail(&r.log()),
    );
    assert_eq!(num(&r, "verify_mismatches"), 0, "{}", tail(&r.log()));
}

#[test]
fn repairs_that_keep_failing_end_in_one_full_sync() {
    let m = master(&[]);
    seed(&m);
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    // The write and each of the three rewrites are altered: the range never matches.
    make_differ(&m, &r, 4);
    wait_until(60, || num(&r, "verify_full_syncs") >= 1, || tail(&r.log()));
    assert_converged(&m, &r);
    assert_eq!(num(&m, "sync_full"), 1);
    assert!(r.log().contains("repairs did not mend the range"));
}

#[test]
fn verify_command_errors() {
    let m = TestServer::start();
    let mut c = m.conn();
    for (args, want) in [
        (vec!["VERIFY", "REPAIR", "zz", "-"], "invalid slice bounds"),
        (vec!["VERIFY", "NOPE"], "unknown subcommand"),
        (vec!["VERIFY"], "wrong number of arguments"),
    ] {
        let e = common::err(&mut c, &args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let r = replica_of(&m, &[]);
    let e = common::err(&mut r.conn(), &["VERIFY", "RUN"]);
    assert!(e.contains("replica"), "{e}");
}
