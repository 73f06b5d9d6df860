//! Cluster mode through real processes: Kvrocks' CLUSTERX topology commands and replies,
//! routing, replicas that follow the topology (the restart case that started this project),
//! failover by topology, and a 3-master, 3-replica cluster under redirected writes. Every
//! replication scenario ends with a per-slot-range DIGEST comparison.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{err, q, TestServer};

const A: &str = "a000000000000000000000000000000000000001";
const B: &str = "b000000000000000000000000000000000000002";
const C: &str = "c000000000000000000000000000000000000003";

fn node(extra: &[&str]) -> TestServer {
    let mut args = vec!["--cluster-enabled", "yes"];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

fn push(nodes: &[&TestServer], ids: &[&str], text: &str, version: i64) {
    for (n, id) in nodes.iter().zip(ids) {
        let mut c = n.conn();
        let _: () = q(&mut c, &["CLUSTERX", "SETNODEID", id]);
        let _: () = q(
            &mut c,
            &["CLUSTERX", "SETNODES", text, &version.to_string()],
        );
    }
}

fn info_field(s: &TestServer, section: &str, field: &str) -> String {
    let info: String = q(&mut s.conn(), &["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .to_string()
}

fn digest(s: &TestServer, ranges: &[&str]) -> Option<(String, i64, i64)> {
    let mut cmd = redis::cmd("DIGEST");
    for r in ranges {
        cmd.arg(*r);
    }
    cmd.query(&mut s.conn()).ok()
}

/// Waits for the replica to reach the master's sequence and compares their digests of `ranges`.
fn assert_converged(m: &TestServer, r: &TestServer, ranges: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mismatches = 0;
    loop {
        let up = info_field(r, "replication", "master_link_status") == "up";
        let (dm, dr) = (digest(m, ranges), digest(r, ranges));
        if up && dm.is_some() && dm.as_ref().map(|d| d.1) == dr.as_ref().map(|d| d.1) {
            if dm == dr {
                return;
            }
            mismatches += 1;
            assert!(
                mismatches < 3,
                "same sequence, different digests: {dm:?} {dr:?}"
            );
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: master {dm:?} replica {dr:?}\n{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn topology_commands_and_replies_match_kvrocks() {
    let n = node(&[]);
    let mut c = n.conn();
    assert_eq!(
        err(&mut c, &["CLUSTER", "NODES"]),
        "CLUSTERDOWN The cluster is not initialized"
    );
    assert_eq!(
        err(&mut c, &["GET", "k"]),
        "CLUSTERDOWN The cluster is not initialized"
    );
    let v: String = q(&mut c, &["CLUSTERX", "VERSION"]);
    assert_eq!(v, "-1");
    let port = n.port.to_string();
    let text = format!(
        "{A} 127.0.0.1 {port} master - 0-100 102 200-300\n{B} 127.0.0.1 9 slave,fail {A}\n{C} 10.9.9.9 7000 master - 101 103-199 301-16383\n"
    );
    // The id is found by address (port and a local host), as in Kvrocks.
    let _: () = q(&mut c, &["CLUSTERX", "SETNODES", &text, "2"]);
    let myid: String = q(&mut c, &["CLUSTERX", "MYID"]);
    assert_eq!(myid, A);
    let nodes: String = q(&mut c, &["CLUSTER", "NODES"]);
    let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0][..4],
        [
            A,
            &format!("127.0.0.1:{port}@{}", n.port as u32 + 10000),
            "myself,master",
            "-"
        ]
    );
    assert_eq!(lines[0][6..], ["2", "connected", "0-100", "102", "200-300"]);
    assert_eq!(lines[1][2..4], ["slave,fail", A]);
    assert_eq!(lines[1].len(), 8, "no slots on replicas");
    assert_eq!(lines[2][8..], ["101", "103-199", "301-16383"]);
    assert!(nodes.ends_with('\n'));

    let info: String = q(&mut c, &["CLUSTER", "INFO"]);
    for want in [
        "cluster_state:ok\r\n",
        "cluster_slots_assigned:16384\r\n",
        "cluster_known_nodes:3\r\n",
        "cluster_size:2\r\n",
        "cluster_current_epoch:2\r\n",
        "cluster_my_epoch:2\r\n",
    ] {
        assert!(info.contains(want), "{want} in {info}");
    }
    let slots: redis::Value = q(&mut c, &["CLUSTER", "SLOTS"]);
    let text_slots = format!("{slots:?}");
    assert!(
        text_slots.contains("int(101)") && text_slots.contains("10.9.9.9"),
        "{text_slots}"
    );
    let slot: i64 = q(&mut c, &["CLUSTER", "KEYSLOT", "{user1000}.following"]);
    assert_eq!(slot, 3443);
    let replicas: String = q(&mut c, &["CLUSTER", "REPLICAS", A]);
    assert!(replicas.starts_with(&format!("{B} 127.0.0.1:9@10009 slave,fail {A} ")));

    // Versions: lower refused, same accepted without change, FORCE applies.
    assert_eq!(
        err(&mut c, &["CLUSTERX", "SETNODES", &text, "1"]),
        "ERR Invalid cluster version"
    );
    let _: () = q(&mut c, &["CLUSTERX", "SETNODES", "garbage", "2"]);
    assert_eq!(
        err(&mut c, &["CLUSTERX", "SETNODES", &text, "-1"]),
        "ERR Invalid cluster version"
    );
    assert_eq!(
        err(&mut c, &["CLUSTERX", "SETNODES", &text, "x"]),
        "ERR Invalid version"
    );
    for (bad, want) in [
        (format!("{A} h 1 master"), "ERR Invalid cluster nodes info"),
        (
            format!("{A} h 1 master - 0-10\n{C} h 2 master - 5"),
            "ERR Slot distribution is overlapped",
        ),
        (
            format!("{A} h 1 master - 0-10 {C} h 2 master - 11"),
            "ERR Invalid nodes definition: Missing newline between node entries.",
        ),
        (
            format!("{A} h 1 master - 16384"),
            "ERR Slot is out of range",
        ),
        (format!("{A} h x master -"), "ERR Invalid cluster node port"),
        (format!("{A} h 1 leader -"), "ERR Invalid cluster node role"),
    ] {
        assert_eq!(
            err(&mut c, &["CLUSTERX", "SETNODES", &bad, "3"]),
            want,
            "{bad}"
        );
    }
    // SETSLOT moves a range as the next version.
    assert_eq!(
        err(&mut c, &["CLUSTERX", "SETSLOT", "101", "NODE", A, "9"]),
        "ERR Invalid cluster version"
    );
    assert_eq!(
        err(&mut c, &["CLUSTERX", "SETSLOT", "101", "NODE", B, "3"]),
        "ERR The node isn't a master"
    );
    let _: () = q(&mut c, &["CLUSTERX", "SETSLOT", "101", "NODE", A, "3"]);
    let nodes: String = q(&mut c, &["CLUSTER", "NODES"]);
    assert!(
        nodes
            .lines()
            .next()
            .unwrap()
            .ends_with(" 3 connected 0-102 200-300"),
        "{nodes}"
    );
    // Several slots and ranges in one argument, as Kvrocks takes them.
    let _: () = q(
        &mut c,
        &["CLUSTERX", "SETSLOT", "103-105 110 120-121", "NODE", A, "4"],
    );
    let nodes: String = q(&mut c, &["CLUSTER", "NODES"]);
    assert!(
        nodes
            .lines()
            .next()
            .unwrap()
            .ends_with(" 4 connected 0-105 110 120-121 200-300"),
        "{nodes}"
    );
    // Kvrocks 2.10.1's texts for bad slot lists (checked against it).
    for (bad, want) in [
        ("99999", "ERR Invalid slot id: out of numeric range"),
        ("abc", "ERR Invalid slot id: not started as an integer"),
        ("5-3", "ERR Invalid slot range: `5-3`. The slot range `int1-int2` needs to satisfy the condition (int1 <= int2)."),
        ("-3", "ERR Invalid slot range: `-3`. The character '-' can't appear in the first or last position."),
        ("1-2-3", "ERR Invalid slot range: `1-2-3`. The slot range should be of the form `int1-int2`."),
        ("", "ERR No slots to parse."),
        (" ", "ERR Invalid slots: ` `. No slots to parse. Please use spaces to separate slots."),
    ] {
        assert_eq!(
            err(&mut c, &["CLUSTERX", "SETSLOT", bad, "NODE", A, "5"]),
            want,
            "{bad:?}"
        );
    }
    assert_eq!(
        err(&mut c, &["CLUSTERX", "MIGRATE", "5-3", C]),
        "ERR Invalid slot range: `5-3`. The slot range `int1-int2` needs to satisfy the condition (int1 <= int2)."
    );
    assert_eq!(
        err(&mut c, &["CLUSTERX", "MIGRATE", "1-3 5", C]),
        "ERR Only one slot range can be migrated at a time"
    );
}

#[test]
fn routing_answers_moved_crossslot_and_serves_its_slots() {
    let n = node(&[]);
    let mut c = n.conn();
    let port = n.port;
    let text =
        format!("{A} 127.0.0.1 {port} master - 0-8000\n{C} 10.0.0.3 7002 master - 8001-16383");
    let _: () = q(&mut c, &["CLUSTERX", "SETNODEID", A]);
    let _: () = q(&mut c, &["CLUSTERX", "SETNODES", &text, "1"]);
    // "foo" is slot 12182, "a" is 15495, "bar" is 5061.
    assert_eq!(err(&mut c, &["GET", "foo"]), "MOVED 12182 10.0.0.3:7002");
    let _: () = q(&mut c, &["SET", "bar", "1"]);
    assert_eq!(
        err(&mut c, &["MSET", "bar", "1", "foo", "2"]),
        "CROSSSLOT Attempted to access keys that don't hash to the same slot"
    );
    let _: () = q(&mut c, &["MSET", "{bar}x", "1", "{bar}y", "2"]);
    assert_eq!(
        err(&mut c, &["LMPOP", "2", "bar", "foo", "LEFT"]),
        "CROSSSLOT Attempted to access keys that don't hash to the same slot"
    );
    let n_keys: i64 = q(&mut c, &["CLUSTER", "COUNTKEYSINSLOT", "5061"]);
    assert_eq!(n_keys, 3);
    let keys: Vec<String> = q(&mut c, &["CLUSTER", "GETKEYSINSLOT", "5061", "2"]);
    assert_eq!(keys.len(), 2);
    assert_eq!(
        err(&mut c, &["CLUSTER", "RESET"]),
        "ERR Can't reset cluster while database is not empty"
    );
    assert_eq!(
        err(&mut c, &["SLAVEOF", "127.0.0.1", "1"]),
        "ERR can't change to slave in cluster mode"
    );
    let _: i64 = q(&mut c, &["DEL", "bar", "{bar}x", "{bar}y"]);
    let _: () = q(&mut c, &["CLUSTER", "RESET", "HARD"]);
    let v: String = q(&mut c, &["CLUSTERX", "VERSION"]);
    assert_eq!(v, "-1");
    assert!(!n.dir.join("nodes.conf").exists());

    // A standalone node has no cluster commands, and refuses its directory in cluster mode.
    let mut s = TestServer::start();
    assert_eq!(
        err(&mut s.conn(), &["CLUSTER", "NODES"]),
        "ERR Cluster mode is not enabled"
    );
    s.stop();
    let out = std::process::Command::new(common::binary())
        .args(["--port", "1", "--dir"])
        .arg(&s.dir)
        .args(["--cluster-enabled", "yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("was made in standalone mode"), "{text}");
}

/// Master A and its replica B (and an idle third master C owning the upper slots).
fn pair(extra: &[&str]) -> (TestServer, TestServer, String) {
    let a = node(extra);
    let b = node(extra);
    let text = format!(
        "{A} 127.0.0.1 {} master - 0-16383\n{B} 127.0.0.1 {} slave {A}\n",
        a.port, b.port
    );
    push(&[&a, &b], &[A, B], &text, 1);
    (a, b, text)
}

#[test]
fn the_restart_case_in_cluster_mode_loses_nothing() {
    for rsid in ["yes", "no"] {
        let extra = ["--use-rsid-psync", rsid];
        let (a, mut b, _) = pair(&extra);
        let mut c = a.conn();
        let _: () = q(&mut c, &["SET", "a", "100"]);
        let _: i64 = q(&mut c, &["HSET", "h", "f", "1"]);
        let _: () = q(&mut c, &["SET", "gone", "1"]);
        assert_converged(&a, &b, &[]);
        for hard in [false, true] {
            if hard {
                b.kill9();
            } else {
                b.stop();
            }
            // The first write while the replica is down is a single-key batch (#2214).
            let _: () = q(&mut c, &["SET", "a", if hard { "102" } else { "101" }]);
            let _: () = q(&mut c, &["SET", "b", "1"]);
            let _: i64 = q(&mut c, &["HSET", "h", "f", "2"]);
            let _: i64 = q(&mut c, &["DEL", "gone"]);
            b.restart_same_port();
            assert_converged(&a, &b, &["0-16383"]);
            let mut rc = b.conn();
            assert!(err(&mut rc, &["GET", "a"]).starts_with("MOVED "));
            let _: () = q(&mut rc, &["READONLY"]);
            let v: String = q(&mut rc, &["GET", "a"]);
            assert_eq!(v, if hard { "102" } else { "101" }, "rsid {rsid}");
            let v: String = q(&mut rc, &["GET", "b"]);
            assert_eq!(v, "1");
            let v: String = q(&mut rc, &["HGET", "h", "f"]);
            assert_eq!(v, "2");
            let gone: Option<String> = q(&mut rc, &["GET", "gone"]);
            assert_eq!(gone, None);
            assert!(err(&mut rc, &["SET", "x", "1"]).starts_with("MOVED "));
            let _: () = q(&mut c, &["SET", "gone", "again"]);
        }
        assert_eq!(
            info_field(&a, "stats", "sync_full"),
            "0",
            "no full sync with use-rsid-psync {rsid}"
        );
    }
}

#[test]
fn failover_by_topology_and_the_old_master_converges() {
    let (a, b, _) = pair(&[]);
    let mut c = a.conn();
    for i in 0..100 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    assert_converged(&a, &b, &[]);
    // The controller promotes B with a new version.
    let text = format!(
        "{B} 127.0.0.1 {} master - 0-16383\n{A} 127.0.0.1 {} slave {B}\n",
        b.port, a.port
    );
    push(&[&a, &b], &[A, B], &text, 2);
    let mut bc = b.conn();
    let _: () = q(&mut bc, &["SET", "after-failover", "1"]);
    assert!(err(&mut a.conn(), &["SET", "x", "1"]).starts_with("MOVED "));
    assert_converged(&b, &a, &["0-16383"]);
    let mut ac = a.conn();
    let _: () = q(&mut ac, &["READONLY"]);
    let v: String = q(&mut ac, &["GET", "after-failover"]);
    assert_eq!(v, "1");
    assert_eq!(
        info_field(&b, "stats", "sync_full"),
        "0",
        "the old master resumed"
    );
    // The same version again changes nothing and replication stays correct.
    push(&[&a, &b], &[A, B], &text, 2);
    let _: () = q(&mut bc, &["SET", "same-version", "1"]);
    assert_converged(&b, &a, &[]);
}

/// A client that follows MOVED, as cluster clients do.
struct Redirecting {
    conns: HashMap<u16, redis::Connection>,
    port: u16,
}

impl Redirecting {
    fn query(&mut self, args: &[String]) -> redis::Value {
        for _ in 0..5 {
            let port = self.port;
            let c = self.conns.entry(port).or_insert_with(|| {
                redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .unwrap()
                    .get_connection()
                    .unwrap()
            });
            let mut cmd = redis::cmd(&args[0]);
            for a in &args[1..] {
                cmd.arg(a);
            }
            match cmd.query::<redis::Value>(c) {
                Ok(v) => return v,
                Err(e) if e.code() == Some("MOVED") => {
                    let detail = e.detail().unwrap_or("");
                    self.port = detail.rsplit(':').next().unwrap().parse().unwrap();
                }
                Err(e) => return redis::Value::SimpleString(format!("error {e}")),
            }
        }
        panic!("too many redirects for {args:?}");
    }
}

#[test]
fn three_masters_with_replicas_under_redirected_random_writes() {
    use rand::{Rng, SeedableRng};
    let nodes: Vec<TestServer> = (0..6).map(|_| node(&[])).collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    // The admin CLI builds the topology: three masters, one replica each.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-cluster"))
        .arg("create")
        .args(["--replicas", "1"])
        .args(&addrs)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        shown.lines().filter(|l| l.contains("master - ")).count(),
        3,
        "{shown}"
    );
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut client = Redirecting {
        conns: HashMap::new(),
        port: nodes[0].port,
    };
    for i in 0..600 {
        let k = format!("key{}", rng.gen_range(0..200));
        let args: Vec<String> = match rng.gen_range(0..5) {
            0 => vec!["SET".into(), k, i.to_string()],
            1 => vec!["HSET".into(), k, "f".into(), i.to_string()],
            2 => vec!["DEL".into(), k],
            3 => vec!["RPUSH".into(), k, i.to_string()],
            _ => vec!["SADD".into(), k, i.to_string()],
        };
        client.query(&args);
    }
    // Each master's slots, compared with its replica's copy.
    let mut checked = 0;
    for line in shown.lines().filter(|l| l.contains("master - ")) {
        let f: Vec<&str> = line.split(' ').collect();
        let port: u16 = f[1]
            .split('@')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let id = f[0];
        let master = nodes.iter().find(|n| n.port == port).unwrap();
        let replica_line = shown
            .lines()
            .find(|l| l.contains(&format!("slave {id}")))
            .unwrap();
        let rport: u16 = replica_line
            .split(' ')
            .nth(1)
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let replica = nodes.iter().find(|n| n.port == rport).unwrap();
        let ranges: Vec<&str> = f[8..].to_vec();
        assert_converged(master, replica, &ranges);
        let (_, _, keys) = digest(master, &ranges).unwrap();
        assert!(keys > 0);
        checked += 1;
    }
    assert_eq!(checked, 3);
    // redis-cli -c follows the redirects too, where it is installed.
    if let Ok(out) = std::process::Command::new("redis-cli")
        .args([
            "-c",
            "-p",
            &nodes[0].port.to_string(),
            "SET",
            "via-redis-cli",
            "1",
        ])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
        let v = client.query(&["GET".into(), "via-redis-cli".into()]);
        assert_eq!(v, redis::Value::BulkString(b"1".to_vec()));
    }
    // `show` gives each pair's continuous verification: a master's walk, and each replica's
    // checks with no mismatch.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-cluster"))
        .args(["show", &addrs[0]])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    let summaries: Vec<&str> = shown.lines().filter(|l| l.contains("role=")).collect();
    assert_eq!(summaries.len(), 6, "{shown}");
    assert_eq!(
        summaries
            .iter()
            .filter(|l| l.contains("verify_slices_issued="))
            .count(),
        3,
        "{shown}"
    );
    assert_eq!(
        summaries
            .iter()
            .filter(|l| l.contains("mismatches=0"))
            .count(),
        3,
        "{shown}"
    );
}

#[test]
fn a_replica_follows_its_master_when_the_topology_moves_it() {
    let a = node(&[]);
    let c = node(&[]);
    let r = node(&[]);
    let v1 = format!(
        "{A} 127.0.0.1 {} master - 0-8000\n{C} 127.0.0.1 {} master - 8001-16383\n{B} 127.0.0.1 {} slave {A}\n",
        a.port, c.port, r.port
    );
    push(&[&a, &c, &r], &[A, C, B], &v1, 1);
    let _: () = q(&mut a.conn(), &["SET", "bar", "on-a"]); // slot 5061
    let _: () = q(&mut c.conn(), &["SET", "foo", "on-c"]); // slot 12182
    assert_converged(&a, &r, &[]);
    // The controller moves the replica under the other master.
    let v2 = v1.replace(&format!("slave {A}"), &format!("slave {C}"));
    push(&[&a, &c, &r], &[A, C, B], &v2, 2);
    assert_converged(&c, &r, &[]);
    let mut rc = r.conn();
    let _: () = q(&mut rc, &["READONLY"]);
    let v: String = q(&mut rc, &["GET", "foo"]);
    assert_eq!(v, "on-c");
    assert!(err(&mut rc, &["GET", "bar"]).starts_with("MOVED 5061 "));
    let role: Vec<String> = q(&mut rc, &["ROLE"]);
    assert_eq!(role[2], c.port.to_string());
}
