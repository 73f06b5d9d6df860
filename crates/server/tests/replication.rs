//! Master-replica replication through real processes on loopback. Every scenario ends with a
//! DIGEST comparison at equal sequences, not only spot reads.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{err, q, wait_until, Proxy, TestServer};

fn master() -> TestServer {
    TestServer::start()
}

fn replica_of(m: &TestServer, extra: &[&str]) -> TestServer {
    let slaveof = format!("127.0.0.1 {}", m.port);
    let mut args = vec!["--slaveof", slaveof.as_str()];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

fn info_field(s: &TestServer, field: &str) -> String {
    let info: String = q(&mut s.conn(), &["INFO"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .to_string()
}

fn info_u64(s: &TestServer, field: &str) -> u64 {
    info_field(s, field).parse().unwrap_or(0)
}

fn digest(s: &TestServer) -> (String, i64, i64) {
    q(&mut s.conn(), &["DIGEST"])
}

/// DIGEST, or None while the node answers LOADING (a full sync is swapping its database).
fn try_digest(s: &TestServer) -> Option<(String, i64, i64)> {
    redis::cmd("DIGEST").query(&mut s.conn()).ok()
}

/// Waits until the replica's link is up and both nodes are at the same sequence, then checks
/// that their digests are equal (at that sequence).
fn assert_converged(m: &TestServer, r: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mismatches = 0;
    loop {
        let up = info_field(r, "master_link_status") == "up";
        let (dm, dr) = (try_digest(m), try_digest(r));
        if up && dm.is_some() && dm.as_ref().map(|d| d.1) == dr.as_ref().map(|d| d.1) {
            if dm == dr {
                return;
            }
            // A key may expire between the two digests; a real difference persists.
            mismatches += 1;
            assert!(
                mismatches < 3,
                "same sequence, different digests: master {dm:?}, replica {dr:?}"
            );
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "replica did not converge: master {dm:?}, replica {dr:?}, link {}\nreplica log:\n{}",
            info_field(r, "master_link_status"),
            tail(&r.log())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn set(s: &TestServer, k: &str, v: &str) {
    let _: () = q(&mut s.conn(), &["SET", k, v]);
}

fn get(s: &TestServer, k: &str) -> Option<String> {
    q(&mut s.conn(), &["GET", k])
}

/// Some of every type, so that digests cover sub-keys too.
fn seed(m: &TestServer) {
    let mut c = m.conn();
    let _: () = q(&mut c, &["SET", "a", "100"]);
    let _: i64 = q(&mut c, &["HSET", "h", "f1", "v1", "f2", "v2"]);
    let _: i64 = q(&mut c, &["RPUSH", "l", "1", "2", "3"]);
    let _: i64 = q(&mut c, &["SADD", "s", "x", "y"]);
    let _: i64 = q(&mut c, &["ZADD", "z", "1", "one", "2", "two"]);
    let _: () = q(&mut c, &["SET", "doomed", "1"]);
    let _: i64 = q(&mut c, &["HSET", "doomed-hash", "f", "v"]);
    let _: () = q(&mut c, &["SET", "short-lived", "1"]);
}

/// The writes of the restart case, made while the replica is down. The first one is a
/// single-key, one-sequence batch: the shape of Kvrocks issue #2214.
fn writes_while_down(m: &TestServer, round: usize) {
    let mut c = m.conn();
    let v = format!("{}", 101 + round);
    let _: () = q(&mut c, &["SET", "a", &v]);
    let b = format!("b{round}");
    let _: () = q(&mut c, &["SET", &b, "1"]);
    let _: i64 = q(&mut c, &["HSET", "h", "f1", &v]);
    let _: i64 = q(&mut c, &["DEL", "doomed", "doomed-hash"]);
    let _: i64 = q(&mut c, &["PEXPIRE", "short-lived", "1"]);
    // A multi-record batch.
    let fields: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let mut cmd = redis::cmd("HSET");
    cmd.arg("wide");
    for f in &fields {
        cmd.arg(f).arg(&v);
    }
    let _: i64 = cmd.query(&mut c).unwrap();
    // The deleted hash comes back as another type: its old fields must not reappear.
    let _: i64 = q(&mut c, &["RPUSH", "doomed-hash", "new"]);
    std::thread::sleep(Duration::from_millis(5));
}

#[test]
fn replica_restart_is_a_partial_sync_after_sigterm_and_kill9() {
    let m = master();
    seed(&m);
    let mut r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    for (round, hard) in [(0, false), (1, true), (2, false)] {
        if hard {
            r.kill9();
        } else {
            r.stop();
        }
        writes_while_down(&m, round);
        r.restart();
        assert_converged(&m, &r);
        assert_eq!(get(&r, "a"), Some(format!("{}", 101 + round)));
        assert_eq!(get(&r, &format!("b{round}")), Some("1".into()));
        assert_eq!(get(&r, "doomed"), None);
        assert_eq!(get(&r, "short-lived"), None);
        let t: String = q(&mut r.conn(), &["TYPE", "doomed-hash"]);
        assert_eq!(t, "list");
    }
    assert_eq!(
        info_u64(&m, "sync_full"),
        0,
        "no restart needed a full sync"
    );
    assert_eq!(info_u64(&r, "sync_full_requested"), 0);
}

#[test]
fn a_restart_with_no_writes_meanwhile_changes_nothing() {
    let m = master();
    seed(&m);
    let mut r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    let before = digest(&r);
    r.kill9();
    r.restart();
    assert_converged(&m, &r);
    assert_eq!(digest(&r), before);
    assert_eq!(info_u64(&m, "sync_full"), 0);
}

#[test]
fn a_replica_stays_a_replica_and_its_sequence_moves_only_by_master_batches() {
    let m = master();
    seed(&m);
    // REPLICAOF at run time, then restarted with no slaveof at all.
    let mut r = TestServer::start();
    let before = info_u64(&r, "master_repl_offset");
    assert!(before >= 1, "a master records its replication id");
    let _: () = q(
        &mut r.conn(),
        &["REPLICAOF", "127.0.0.1", &m.port.to_string()],
    );
    assert_converged(&m, &r);
    let mut c = r.conn();
    assert_eq!(
        err(&mut c, &["SET", "x", "1"]),
        "READONLY You can't write against a read only slave."
    );
    let seq = info_u64(&r, "master_repl_offset");
    let _: () = q(&mut c, &["CONFIG", "SET", "slave-priority", "50"]);
    // Without a config file this is refused; either way it must not write to storage.
    let _ = redis::cmd("CONFIG")
        .arg("REWRITE")
        .query::<redis::Value>(&mut c);
    let _: i64 = q(&mut c, &["EXISTS", "a"]);
    assert_eq!(info_u64(&r, "master_repl_offset"), seq);
    r.stop();
    r.restart();
    let role: Vec<String> = q(&mut r.conn(), &["ROLE"]);
    assert_eq!(role[0], "slave", "{role:?}");
    assert_eq!(role[2], m.port.to_string());
    // Start-up wrote nothing: still the master's sequence, and the digests agree.
    assert_converged(&m, &r);
    assert_eq!(
        info_u64(&r, "master_repl_offset"),
        info_u64(&m, "master_repl_offset")
    );
    // One full sync: when REPLICAOF ran, the node's history was its own (its replication id
    // batch), not the master's. The restart itself cost none.
    assert_eq!(info_u64(&m, "sync_full"), 1);
}

#[test]
fn a_replica_without_wal_history_full_syncs_then_catches_up() {
    // wal_ttl 0 and no size limit: WAL files go as soon as a flush makes them obsolete.
    let m = TestServer::start_with(&[
        "--rocksdb.wal_ttl_seconds",
        "0",
        "--rocksdb.wal_size_limit_mb",
        "0",
    ]);
    seed(&m);
    let mut r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    r.stop();
    for i in 0..200 {
        set(&m, &format!("gap{i}"), "v");
    }
    let _: () = q(&mut m.conn(), &["FLUSHMEMTABLE"]);
    for i in 0..10 {
        set(&m, &format!("after{i}"), "v");
    }
    let _: () = q(&mut m.conn(), &["FLUSHMEMTABLE"]);
    r.restart();
    assert_converged(&m, &r);
    assert_eq!(
        info_u64(&m, "sync_full"),
        1,
        "the gap was gone from the WAL"
    );
    assert!(r.log().contains("full sync finished"));
    // The files came over several connections at once (up to 4, as Kvrocks fetches them).
    let log = r.log();
    let to_fetch: usize = log
        .lines()
        .find_map(|l| l.split("to_fetch=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the fetch is logged");
    let senders = m.log().matches("full sync: files sent").count();
    assert_eq!(senders, to_fetch.min(4), "{}", tail(&m.log()));
    // Catch-up after the checkpoint, then a restart: a partial sync again.
    for i in 0..50 {
        set(&m, &format!("later{i}"), "v");
    }
    assert_converged(&m, &r);
    r.stop();
    set(&m, "a", "after-restart");
    r.restart();
    assert_converged(&m, &r);
    assert_eq!(get(&r, "a"), Some("after-restart".into()));
    assert_eq!(
        info_u64(&m, "sync_full"),
        1,
        "the checkpoint's sequence is provable"
    );
}

#[test]
fn same_sequence_with_a_different_history_never_partial_syncs() {
    // Replication ids off on both sides: only quarry's batch digest can tell the histories
    // apart. (Verification runs: its markers take no sequence number.)
    let off = ["--use-rsid-psync", "no"];
    let m1 = TestServer::start_with(&off);
    let m2 = TestServer::start_with(&off);
    set(&m1, "k", "one");
    set(&m2, "k", "two");
    assert_eq!(
        info_u64(&m1, "master_repl_offset"),
        info_u64(&m2, "master_repl_offset")
    );
    let r = replica_of(&m1, &off);
    assert_converged(&m1, &r);
    let _: () = q(
        &mut r.conn(),
        &["REPLICAOF", "127.0.0.1", &m2.port.to_string()],
    );
    assert_converged(&m2, &r);
    assert_eq!(get(&r, "k"), Some("two".into()));
    assert_eq!(info_u64(&m2, "sync_full"), 1);
    assert!(r.log().contains("history diverged"), "{}", tail(&r.log()));
}

#[test]
fn chained_replicas_promotion_and_a_diverged_old_master() {
    let a = master();
    seed(&a);
    let b = replica_of(&a, &[]);
    let c = replica_of(&a, &[]);
    assert_converged(&a, &b);
    assert_converged(&a, &c);
    // C moves under B: a chain A -> B -> C, without a full sync.
    let _: () = q(
        &mut c.conn(),
        &["REPLICAOF", "127.0.0.1", &b.port.to_string()],
    );
    set(&a, "through-the-chain", "1");
    assert_converged(&a, &b);
    assert_converged(&b, &c);
    assert_eq!(get(&c, "through-the-chain"), Some("1".into()));
    // Failover: B is promoted; C, its sibling in history, keeps going with a partial sync.
    let _: () = q(
        &mut c.conn(),
        &["REPLICAOF", "127.0.0.1", &a.port.to_string()],
    );
    assert_converged(&a, &c);
    let _: () = q(&mut b.conn(), &["REPLICAOF", "NO", "ONE"]);
    // The old master takes a write the new one never sees.
    set(&a, "lost-on-the-old-master", "1");
    set(&b, "on-the-new-master", "1");
    let _: () = q(
        &mut c.conn(),
        &["REPLICAOF", "127.0.0.1", &b.port.to_string()],
    );
    assert_converged(&b, &c);
    // C was still following A when A took its extra write, so C diverged too and had to
    // full-sync from B. The old master, with the same extra write, full-syncs as well.
    assert_eq!(get(&c, "lost-on-the-old-master"), None);
    let _: () = q(
        &mut a.conn(),
        &["REPLICAOF", "127.0.0.1", &b.port.to_string()],
    );
    assert_converged(&b, &a);
    assert_eq!(get(&a, "lost-on-the-old-master"), None);
    assert_eq!(get(&a, "on-the-new-master"), Some("1".into()));
    assert!(
        a.log().contains("full sync started"),
        "the old master diverged"
    );
}

#[test]
fn siblings_partial_sync_to_a_promoted_replica() {
    let a = master();
    seed(&a);
    let b = replica_of(&a, &[]);
    let c = replica_of(&a, &[]);
    assert_converged(&a, &b);
    assert_converged(&a, &c);
    let _: () = q(&mut b.conn(), &["REPLICAOF", "NO", "ONE"]);
    set(&b, "after-promotion", "1");
    let _: () = q(
        &mut c.conn(),
        &["REPLICAOF", "127.0.0.1", &b.port.to_string()],
    );
    assert_converged(&b, &c);
    assert_eq!(
        info_u64(&b, "sync_full"),
        0,
        "the sibling resumed from B's WAL"
    );
    assert_eq!(info_u64(&c, "sync_full_requested"), 0);
    // And the old master, with no writes of its own since, rejoins without a full sync.
    let _: () = q(
        &mut a.conn(),
        &["REPLICAOF", "127.0.0.1", &b.port.to_string()],
    );
    assert_converged(&b, &a);
    assert_eq!(info_u64(&b, "sync_full"), 0);
}

#[test]
fn a_full_sync_in_the_middle_of_a_chain() {
    let a = TestServer::start_with(&[
        "--rocksdb.wal_ttl_seconds",
        "0",
        "--rocksdb.wal_size_limit_mb",
        "0",
    ]);
    seed(&a);
    for i in 0..100 {
        set(&a, &format!("k{i}"), "v");
    }
    let _: () = q(&mut a.conn(), &["FLUSHMEMTABLE"]);
    let b = replica_of(&a, &[]);
    assert_converged(&a, &b);
    assert_eq!(info_u64(&a, "sync_full"), 1);
    let c = replica_of(&b, &[]);
    assert_converged(&b, &c);
    set(&a, "end-to-end", "1");
    assert_converged(&a, &b);
    assert_converged(&b, &c);
    assert_eq!(digest(&a), digest(&c));
}

#[test]
fn wait_counts_replicas_that_applied_the_writes() {
    let m = master();
    let r1 = replica_of(&m, &[]);
    let r2 = replica_of(&m, &[]);
    assert_converged(&m, &r1);
    assert_converged(&m, &r2);
    let mut c = m.conn();
    for i in 0..200 {
        let _: () = q(&mut c, &["SET", &format!("w{i}"), "v"]);
        if i % 50 == 0 {
            let n: i64 = q(&mut c, &["WAIT", "2", "5000"]);
            assert_eq!(n, 2);
        }
    }
    let n: i64 = q(&mut c, &["WAIT", "2", "5000"]);
    assert_eq!(n, 2);
    let started = Instant::now();
    let n: i64 = q(&mut c, &["WAIT", "3", "300"]);
    assert_eq!(n, 2, "only two replicas exist");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(err(&mut r1.conn(), &["WAIT", "1", "10"]).contains("replica"));
    assert_converged(&m, &r1);
}

#[test]
fn role_info_and_handshake_errors() {
    let m = master();
    let r = replica_of(&m, &["--replica-announce-ip", "127.0.0.1"]);
    assert_converged(&m, &r);
    let mut mc = m.conn();
    let role: redis::Value = q(&mut mc, &["ROLE"]);
    let text = format!("{role:?}");
    assert!(
        text.contains("master") && text.contains(&r.port.to_string()),
        "{text}"
    );
    let role: Vec<String> = q(&mut r.conn(), &["ROLE"]);
    assert_eq!(role.len(), 5);
    assert_eq!(role[0], "slave");
    assert_eq!(role[3], "connected");
    assert_eq!(role[4], info_field(&m, "master_repl_offset"));
    let slave0 = info_field(&m, "slave0");
    assert!(
        slave0.starts_with(&format!("ip=127.0.0.1,port={},offset=", r.port)),
        "{slave0}"
    );
    assert_eq!(
        err(&mut mc, &["PSYNC", "short", "1"]),
        "ERR Wrong replication id length"
    );
    assert_eq!(
        err(&mut mc, &["PSYNC", "999999"]),
        "ERR sequence out of range, please use fullsync"
    );
    assert_eq!(
        err(&mut mc, &["REPLICAOF", "127.0.0.1", &m.port.to_string()]),
        "ERR can't replicate itself"
    );
    assert_eq!(
        err(&mut mc, &["REPLICAOF", "127.0.0.1", &r.port.to_string()]),
        "ERR can't replicate your own replicas"
    );
    assert_eq!(
        err(&mut mc, &["REPLCONF", "nope", "1"]),
        "ERR unknown option"
    );
    // `_db_name` answers a raw line, as Kvrocks does.
    assert_eq!(m.raw(b"_db_name\r\n"), b"change.me.db\r\n");
}

#[test]
fn a_plain_kvrocks_style_psync_streams_raw_batches() {
    let m = master();
    set(&m, "a", "1");
    let mut s = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    s.write_all(b"*2\r\n$5\r\nPSYNC\r\n$1\r\n1\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "+OK\r\n");
    // The first batch (the master's replication id), then SET a 1, as bulk strings of raw
    // WriteBatch bytes whose headers carry their sequences.
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        line.clear();
        r.read_line(&mut line).unwrap();
        let len: usize = line.trim_end().strip_prefix('$').unwrap().parse().unwrap();
        let mut body = vec![0; len + 2];
        r.read_exact(&mut body).unwrap();
        if &body[..len] == b"ping" {
            continue;
        }
        seqs.push(u64::from_le_bytes(body[..8].try_into().unwrap()));
    }
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(info_field(&m, "connected_slaves"), "1");
}

#[test]
fn stale_data_is_refused_until_the_replica_caught_up() {
    let mut m = master();
    set(&m, "k", "old");
    let mut r = replica_of(&m, &["--slave-serve-stale-data", "no"]);
    assert_converged(&m, &r);
    assert_eq!(get(&r, "k"), Some("old".into()));
    r.stop();
    m.stop();
    r.restart();
    let mut c = r.conn();
    assert_eq!(
        err(&mut c, &["GET", "k"]),
        "MASTERDOWN Link with MASTER is down and slave-serve-stale-data is set to 'no'."
    );
    assert_eq!(info_field(&r, "master_link_status"), "down");
    m.restart_same_port();
    set(&m, "k", "new");
    assert_converged(&m, &r);
    assert_eq!(get(&r, "k"), Some("new".into()));
}

#[test]
fn master_restart_keeps_replicas_on_partial_sync() {
    let mut m = master();
    seed(&m);
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    m.kill9();
    m.restart_same_port();
    set(&m, "after-master-restart", "1");
    assert_converged(&m, &r);
    assert_eq!(info_u64(&m, "sync_full"), 0);
}

#[test]
fn a_network_cut_marks_the_link_down_and_it_recovers() {
    let m = master();
    seed(&m);
    let proxy = Proxy::to(m.port);
    let slaveof = format!("127.0.0.1 {}", proxy.port);
    let r = TestServer::start_with(&["--slaveof", &slaveof]);
    assert_converged(&m, &r);
    proxy.cut.store(true, Ordering::Release);
    set(&m, "during-the-cut", "1");
    wait_until(
        20,
        || info_field(&r, "master_link_status") == "down",
        || "the link never went down".to_string(),
    );
    assert!(info_u64(&r, "master_last_io_seconds_ago") >= 5);
    assert_eq!(get(&r, "during-the-cut"), None);
    proxy.cut.store(false, Ordering::Release);
    assert_converged(&m, &r);
    assert_eq!(get(&r, "during-the-cut"), Some("1".into()));
    assert_eq!(info_u64(&m, "sync_full"), 0);
}

#[test]
fn a_big_value_and_a_write_load_during_a_full_sync() {
    let m = master();
    let big = "x".repeat(50 * 1024 * 1024);
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut m.conn())
        .unwrap();
    for i in 0..1000 {
        set(&m, &format!("pre{i}"), "v");
    }
    let _: () = q(&mut m.conn(), &["FLUSHMEMTABLE"]);
    // Writers keep going while the replica copies the checkpoint and catches up.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, port) = (stop.clone(), written.clone(), m.port);
        std::thread::spawn(move || {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            let mut c = client.get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let mut p = redis::pipe();
                for _ in 0..100 {
                    p.cmd("SET")
                        .arg(format!("load{}", i % 5000))
                        .arg(i)
                        .ignore();
                    i += 1;
                }
                p.query::<()>(&mut c).unwrap();
                written.store(i, Ordering::Release);
            }
        })
    };
    let r = replica_of(&m, &[]);
    wait_until(
        60,
        || info_field(&r, "master_link_status") == "up",
        || tail(&r.log()),
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(written.load(Ordering::Acquire) > 1000);
    assert_converged(&m, &r);
    let len: i64 = q(&mut r.conn(), &["STRLEN", "big"]);
    assert_eq!(len, 50 * 1024 * 1024);
}

#[test]
fn a_replica_killed_mid_transfer_resumes_and_a_killed_master_is_retried() {
    // 1 MB/s makes the copy of a few MB of SST files take seconds; the WAL does not keep the
    // history, so the replica has to full-sync.
    let mut m = TestServer::start_with(&[
        "--max-replication-mb",
        "1",
        "--rocksdb.wal_ttl_seconds",
        "0",
        "--rocksdb.wal_size_limit_mb",
        "0",
    ]);
    let mut c = m.conn();
    for i in 0..40 {
        let mut p = redis::pipe();
        for j in 0..100 {
            p.cmd("SET")
                .arg(format!("k{i}-{j}"))
                .arg(random_text(1000))
                .ignore();
        }
        p.query::<()>(&mut c).unwrap();
        // Several SST files, so that there is something to resume.
        let _: () = q(&mut c, &["FLUSHMEMTABLE"]);
    }
    let mut r = replica_of(&m, &[]);
    wait_until(
        30,
        || r.log().contains("full sync progress"),
        || tail(&r.log()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    r.kill9();
    let fetched = std::fs::read_dir(r.dir.join("sync_checkpoint"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
                .count()
        })
        .unwrap_or(0);
    assert!(fetched > 0, "some files were fetched before the kill");
    r.restart();
    // The master dies mid-transfer too; the replica retries until it is back.
    std::thread::sleep(Duration::from_millis(800));
    m.kill9();
    std::thread::sleep(Duration::from_millis(500));
    m.set_args(&[
        "--rocksdb.wal_ttl_seconds",
        "0",
        "--rocksdb.wal_size_limit_mb",
        "0",
    ]);
    m.restart_same_port();
    assert_converged(&m, &r);
    assert!(r.log().contains("to_fetch="), "{}", tail(&r.log()));
    let resumed = r
        .log()
        .lines()
        .filter(|l| l.contains("fetching checkpoint files"))
        .any(|l| {
            let num = |k: &str| -> u64 {
                l.split(&format!("{k}="))
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
            };
            num("to_fetch") < num("files")
        });
    assert!(
        resumed,
        "a retry skipped files it already had\n{}",
        tail(&r.log())
    );
}

fn random_text(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n).map(|_| rng.gen_range(b'a'..=b'z') as char).collect()
}

#[test]
fn random_writes_and_restarts_always_converge() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("QUARRY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("QUARRY_SEED={seed}");
    // QUARRY_ROUNDS=1000 is the long run of docs/replication.md.
    let rounds: u64 = std::env::var("QUARRY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Verification runs all along, in small slices: it must never report a mismatch.
    let mut m =
        TestServer::start_with(&["--verify-cycle-seconds", "1", "--verify-slice-keys", "8"]);
    let mut r = replica_of(&m, &[]);
    let mut checked = 0;
    for round in 0..rounds {
        let down = rng.gen_bool(0.5);
        let hard = rng.gen_bool(0.5);
        if rng.gen_bool(0.3) {
            // The master restarts too (a new replication id; its replica must resume).
            if hard {
                m.kill9();
            } else {
                m.stop();
            }
            m.restart_same_port();
        }
        let mut c = m.conn();
        if down {
            checked += info_u64(&r, "verify_slices_checked");
            if hard {
                r.kill9();
            } else {
                r.stop();
            }
        }
        for _ in 0..rng.gen_range(20..200) {
            let k = format!("k{}", rng.gen_range(0..40));
            let v = rng.gen_range(0..1000).to_string();
            let args: Vec<String> = match rng.gen_range(0..10) {
                0 => vec!["SET".into(), k, v],
                1 => vec!["DEL".into(), k],
                2 => vec!["HSET".into(), k, v.clone(), v],
                3 => vec!["RPUSH".into(), k, v],
                4 => vec!["SADD".into(), k, v],
                5 => vec!["ZADD".into(), k, v.clone(), v],
                6 => vec!["PEXPIRE".into(), k, rng.gen_range(1..3000).to_string()],
                7 => vec!["LPOP".into(), k],
                8 => vec!["INCR".into(), k],
                _ => vec!["MSET".into(), k, v.clone(), format!("m{v}"), v],
            };
            let mut cmd = redis::cmd(&args[0]);
            for a in &args[1..] {
                cmd.arg(a);
            }
            // WRONGTYPE and friends are part of the game.
            let _ = cmd.query::<redis::Value>(&mut c);
        }
        if down {
            r.restart();
        }
        assert_converged(&m, &r);
        eprintln!("round {round} converged (replica down: {down}, kill -9: {hard})");
    }
    assert_eq!(info_u64(&m, "sync_full"), 0, "seed {seed}");
    // Slices were checked since the last restart, and no check ever failed (the log spans
    // every restart).
    wait_until(
        30,
        || info_u64(&r, "verify_slices_checked") > 0,
        || tail(&r.log()),
    );
    checked += info_u64(&r, "verify_slices_checked");
    eprintln!("{rounds} rounds, {checked} slices verified");
    let log = r.log();
    assert!(
        !log.contains("differs from its master"),
        "seed {seed}: a false mismatch\n{}",
        tail(&log)
    );
}

#[test]
fn a_promoted_replica_stays_master_across_a_restart() {
    let m = master();
    set(&m, "k", "v");
    let mut r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    let _: () = q(&mut r.conn(), &["REPLICAOF", "NO", "ONE"]);
    set(&r, "written-as-master", "1");
    // Restarted with the same command line (`--slaveof` still names the old master).
    r.stop();
    r.restart();
    let role: Vec<redis::Value> = q(&mut r.conn(), &["ROLE"]);
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    assert_eq!(get(&r, "written-as-master"), Some("1".into()));
}

#[test]
fn masterauth_and_db_name_are_checked() {
    let m = TestServer::start_with(&["--requirepass", "s3cret"]);
    let mut mc = m.client().get_connection().unwrap();
    let _: () = redis::cmd("AUTH").arg("s3cret").query(&mut mc).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut mc).unwrap();
    // Wrong password, then the right one through CONFIG SET: the link retries and comes up.
    let slaveof = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start_with(&["--slaveof", &slaveof, "--masterauth", "wrong"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(info_field(&r, "master_link_status"), "down");
    assert!(
        r.log().contains("AUTH to the master failed"),
        "{}",
        tail(&r.log())
    );
    let _: () = q(&mut r.conn(), &["CONFIG", "SET", "masterauth", "s3cret"]);
    wait_until(20, || get(&r, "k").is_some(), || tail(&r.log()));
    // A replica of another database (db-name) never syncs.
    let other = TestServer::start_with(&["--db-name", "other.db"]);
    let _: () = q(
        &mut other.conn(),
        &["SLAVEOF", "127.0.0.1", &r.port.to_string()],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(info_field(&other, "master_link_status"), "down");
    assert!(
        other.log().contains("db-name differs"),
        "{}",
        tail(&other.log())
    );
    assert_eq!(get(&other, "k"), None);
}

#[test]
fn two_replicas_share_one_checkpoint() {
    let m = TestServer::start_with(&[
        "--rocksdb.wal_ttl_seconds",
        "0",
        "--rocksdb.wal_size_limit_mb",
        "0",
    ]);
    seed(&m);
    for i in 0..100 {
        set(&m, &format!("k{i}"), "v");
    }
    let _: () = q(&mut m.conn(), &["FLUSHMEMTABLE"]);
    let r1 = replica_of(&m, &[]);
    let r2 = replica_of(&m, &[]);
    assert_converged(&m, &r1);
    assert_converged(&m, &r2);
    assert_eq!(info_u64(&m, "sync_full"), 2);
    assert_eq!(
        m.log().matches("full sync: checkpoint created").count(),
        1,
        "{}",
        tail(&m.log())
    );
    assert!(m.log().contains("sharing the existing checkpoint"));
}

#[test]
fn wait_under_a_write_load() {
    let m = master();
    let r1 = replica_of(&m, &[]);
    let r2 = replica_of(&m, &[]);
    assert_converged(&m, &r1);
    assert_converged(&m, &r2);
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let (stop, port) = (stop.clone(), m.port);
        std::thread::spawn(move || {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            let mut c = client.get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let mut p = redis::pipe();
                for _ in 0..50 {
                    p.cmd("SET")
                        .arg(format!("load{}", i % 1000))
                        .arg(i)
                        .ignore();
                    i += 1;
                }
                p.query::<()>(&mut c).unwrap();
            }
        })
    };
    let mut c = m.conn();
    for i in 0..50 {
        let _: () = q(&mut c, &["SET", &format!("w{i}"), "v"]);
        let n: i64 = q(&mut c, &["WAIT", "2", "10000"]);
        assert_eq!(n, 2, "round {i}");
        // What WAIT acknowledged is on both replicas.
        let key = format!("w{i}");
        assert_eq!(get(&r1, &key), Some("v".into()));
        assert_eq!(get(&r2, &key), Some("v".into()));
    }
    stop.store(true, Ordering::Release);
    loader.join().unwrap();
    assert_converged(&m, &r1);
    assert_converged(&m, &r2);
}

#[test]
fn debug_digest_value_and_digest_ranges() {
    let m = master();
    seed(&m);
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    let dm: Vec<String> = q(
        &mut m.conn(),
        &["DEBUG", "DIGEST-VALUE", "h", "l", "missing"],
    );
    let dr: Vec<String> = q(
        &mut r.conn(),
        &["DEBUG", "DIGEST-VALUE", "h", "l", "missing"],
    );
    assert_eq!(dm, dr);
    assert_eq!(dm[2], "0".repeat(32));
    assert_ne!(dm[0], dm[1]);
    let _: i64 = q(&mut m.conn(), &["HSET", "h", "f1", "changed"]);
    assert_converged(&m, &r);
    let after: Vec<String> = q(&mut r.conn(), &["DEBUG", "DIGEST-VALUE", "h"]);
    assert_ne!(after[0], dm[0], "a changed field changes the key's digest");
    // A slot range counts only its keys; the whole range counts all of them.
    let (_, _, all): (String, i64, i64) = q(&mut m.conn(), &["DIGEST", "0-16383"]);
    let (_, _, none_): (String, i64, i64) = q(&mut m.conn(), &["DIGEST"]);
    assert_eq!(all, none_);
    assert_eq!(
        err(&mut m.conn(), &["DIGEST", "5-3"]),
        "ERR invalid slot range '5-3'"
    );
}

#[test]
fn client_kill_drops_replication_links_and_they_resume() {
    let m = master();
    seed(&m);
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    let ok_before = info_u64(&m, "sync_partial_ok");
    let n: i64 = q(&mut m.conn(), &["CLIENT", "KILL", "TYPE", "slave"]);
    assert_eq!(n, 1);
    set(&m, "after-kill", "1");
    assert_converged(&m, &r);
    let n: i64 = q(&mut r.conn(), &["CLIENT", "KILL", "TYPE", "master"]);
    assert_eq!(n, 1);
    set(&m, "after-master-kill", "1");
    assert_converged(&m, &r);
    assert!(
        info_u64(&m, "sync_partial_ok") >= ok_before + 2,
        "both reconnects resumed"
    );
    assert_eq!(info_u64(&m, "sync_full"), 0);
}

/// EXEC's writes are one WriteBatch on the master, so a replica applies them as one unit: a
/// reader on the replica never sees half a transaction.
#[test]
fn a_transaction_replicates_as_one_unit() {
    let m = master();
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    let reader = common::PairWatcher::start(r.client(), "a replicated transaction");
    let mut c = m.conn();
    for _ in 0..1000 {
        let _: () = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("a")
            .cmd("INCR")
            .arg("b")
            .query(&mut c)
            .unwrap();
    }
    assert_converged(&m, &r);
    assert!(reader.stop().1 > 0, "the reader saw no replicated write");
    assert_eq!(q::<i64>(&mut r.conn(), &["GET", "b"]), 1000);
}

/// A script's writes replicate as one batch, and the scripts and function libraries the
/// master stores reach the replica: EVALSHA and FCALL_RO work there.
#[test]
fn scripts_and_functions_replicate() {
    let m = master();
    let r = replica_of(&m, &[]);
    assert_converged(&m, &r);
    let mut c = m.conn();
    let sha: String = q(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('get', KEYS[1])"],
    );
    let _: i64 = q(
        &mut c,
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 'x') return redis.call('rpush', KEYS[2], 'a', 'b')",
            "2",
            "s",
            "l",
        ],
    );
    let _: String = q(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function{function_name='len', callback=function(keys) return redis.call('llen', keys[1]) end, flags={'no-writes'}}",
        ],
    );
    assert_converged(&m, &r);
    let mut rc = r.conn();
    assert_eq!(q::<String>(&mut rc, &["EVALSHA", &sha, "1", "s"]), "x");
    assert_eq!(q::<i64>(&mut rc, &["FCALL_RO", "len", "1", "l"]), 2);
    // A script that writes is refused on the replica.
    assert!(err(
        &mut rc,
        &["EVAL", "return redis.call('set', 'y', '1')", "0"]
    )
    .contains("READONLY"));
}

/// min-replicas-to-write: a master without enough replicas that acknowledged within
/// min-replicas-max-lag refuses writes (NOREPLICAS) and scripts declared as writing, but not
/// reads; a replica that is idle but connected keeps counting (it acknowledges heartbeats);
/// one that goes away stops counting.
#[test]
fn min_replicas_to_write_refuses_writes_without_good_replicas() {
    let m = TestServer::start_with(&[
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
    ]);
    let mut c = m.conn();
    let noreplicas = "NOREPLICAS Not enough good replicas to write.";
    assert_eq!(err(&mut c, &["SET", "k", "v"]), noreplicas);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    assert_eq!(
        err(
            &mut c,
            &["EVAL", "#!lua\nreturn redis.call('get', KEYS[1])", "1", "k"]
        ),
        noreplicas
    );
    assert!(err(
        &mut c,
        &["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "k"]
    )
    .starts_with(noreplicas));
    assert_eq!(
        q::<Option<String>>(
            &mut c,
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
                "1",
                "k"
            ]
        ),
        None
    );
    assert_eq!(info_field(&m, "min_slaves_good_slaves"), "0");

    let mut r = replica_of(&m, &[]);
    wait_until(
        30,
        || info_field(&m, "min_slaves_good_slaves") == "1",
        || "the replica never counted as good".into(),
    );
    q::<String>(&mut c, &["SET", "k", "v"]);
    // Idle for longer than the lag: heartbeats (every second) keep the replica good.
    std::thread::sleep(Duration::from_millis(5500));
    q::<String>(&mut c, &["SET", "k", "v2"]);
    assert_converged(&m, &r);

    r.kill9();
    wait_until(
        10,
        || {
            // Taken until the master sees the replica gone (its socket closes, or its lag
            // passes the limit): ask again until refused.
            redis::cmd("SET")
                .arg("k")
                .arg("v3")
                .query::<String>(&mut m.conn())
                .is_err_and(|e| common::error_text(&e) == noreplicas)
        },
        || "writes were still taken without a replica".into(),
    );
    q::<String>(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    q::<String>(&mut c, &["SET", "k", "v4"]);
    assert_eq!(info_field(&m, "min_slaves_good_slaves"), "");
}

/// A replica with slave-empty-db-before-fullsync (and `delay` seconds after each fetched file),
/// converged with a first master, then sent to a second one with another history: a full sync,
/// which empties its database first. Returns (first master, second master, replica).
fn emptying_replica_moved_to_another_history(delay: &str) -> (TestServer, TestServer, TestServer) {
    let old = master();
    set(&old, "only-on-the-old-master", "1");
    let m = master();
    seed(&m);
    let _: () = q(&mut m.conn(), &["FLUSHMEMTABLE"]);
    let r = replica_of(
        &old,
        &[
            "--slave-empty-db-before-fullsync",
            "yes",
            "--fullsync-recv-file-delay",
            delay,
        ],
    );
    assert_converged(&old, &r);
    let port = m.port.to_string();
    let _: () = q(&mut r.conn(), &["SLAVEOF", "127.0.0.1", &port]);
    (old, m, r)
}

#[test]
fn slave_empty_db_before_fullsync_deletes_first_and_reports_loading() {
    let (_old, m, r) = emptying_replica_moved_to_another_history("1");
    let mut saw_loading = false;
    wait_until(
        60,
        || {
            if info_field(&r, "loading") == "1" {
                saw_loading = true;
                let e = redis::cmd("GET")
                    .arg("a")
                    .query::<Option<String>>(&mut r.conn());
                assert!(
                    e.as_ref()
                        .is_err_and(|e| common::error_text(e).starts_with("LOADING")),
                    "{e:?}"
                );
            }
            saw_loading
        },
        || format!("no LOADING during the full sync\n{}", tail(&r.log())),
    );
    assert_converged(&m, &r);
    assert_eq!(info_field(&r, "loading"), "0");
    assert_eq!(get(&r, "only-on-the-old-master"), None);
    assert_eq!(get(&r, "a"), Some("100".into()));
    assert!(r.log().contains("deleting the database before fetching"));
}

#[test]
fn a_replica_stopped_mid_fetch_after_emptying_its_database_serves_again() {
    let (_old, _m, r) = emptying_replica_moved_to_another_history("2");
    wait_until(
        60,
        || info_field(&r, "loading") == "1",
        || format!("no LOADING during the full sync\n{}", tail(&r.log())),
    );
    // Promoted while the database is gone: it opens an empty one and serves.
    let _: () = q(&mut r.conn(), &["SLAVEOF", "NO", "ONE"]);
    wait_until(
        30,
        || {
            redis::cmd("SET")
                .arg("k")
                .arg("v")
                .query::<()>(&mut r.conn())
                .is_ok()
        },
        || format!("the promoted node does not serve\n{}", tail(&r.log())),
    );
    assert_eq!(info_field(&r, "loading"), "0");
    assert_eq!(info_field(&r, "role"), "master");
    assert_eq!(get(&r, "k"), Some("v".into()));
}

#[test]
fn a_replica_repointed_to_its_sibling_partial_syncs_from_their_shared_history() {
    // B is the master of A and C; then A follows C. A and C share B's history: no full sync.
    let b = master();
    seed(&b);
    let a = replica_of(&b, &[]);
    let c = replica_of(&b, &[]);
    assert_converged(&b, &a);
    assert_converged(&b, &c);
    set(&b, "more", "1");
    assert_converged(&b, &a);
    assert_converged(&b, &c);
    let _: () = q(
        &mut a.conn(),
        &["REPLICAOF", "127.0.0.1", &c.port.to_string()],
    );
    assert_converged(&c, &a);
    assert_eq!(info_u64(&c, "sync_full"), 0, "{}", tail(&c.log()));
    assert_eq!(info_u64(&a, "sync_full_requested"), 0);
    // B's later writes reach A through C.
    set(&b, "later", "2");
    assert_converged(&b, &c);
    assert_converged(&c, &a);
    assert_eq!(get(&a, "later"), Some("2".into()));
    assert_eq!(info_u64(&c, "sync_full"), 0);
}
