//! Kvrocks namespaces through the real binary: tokens from the config, AUTH into a namespace,
//! what a tenant sees and may run, NAMESPACE and its Kvrocks texts, persistence in the config
//! file, replication with `repl-namespace-enabled`, and the key layout Kvrocks reads.
//! The replies and texts were compared side by side with Kvrocks 2.10.1.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{err, q, wait_until, TestServer};
use redis::Connection;

/// A server with `requirepass adminpw` and namespaces ns1 (tok1) and ns2 (tok2), run from a
/// config file (NAMESPACE ADD/SET/DEL rewrite it). Keep the returned directory alive.
fn server(extra_conf: &str, extra_args: &[&str]) -> (TestServer, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("quarry.conf");
    std::fs::write(
        &conf,
        format!("requirepass adminpw\nnamespace.ns1 tok1\nnamespace.ns2 tok2\n{extra_conf}"),
    )
    .unwrap();
    let mut args = vec!["-c", conf.to_str().unwrap()];
    args.extend_from_slice(extra_args);
    (TestServer::start_with(&args), dir, conf)
}

fn as_(s: &TestServer, password: &str) -> Connection {
    redis::Client::open(format!("redis://:{password}@127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn keys(c: &mut Connection) -> Vec<String> {
    let mut k: Vec<String> = q(c, &["KEYS", "*"]);
    k.sort();
    k
}

#[test]
fn each_namespace_has_its_own_keys() {
    let (s, _dir, _conf) = server("", &[]);
    let mut admin = as_(&s, "adminpw");
    let mut t1 = as_(&s, "tok1");
    let mut t2 = as_(&s, "tok2");
    let _: () = q(&mut admin, &["SET", "k", "admin"]);
    let _: () = q(&mut t1, &["SET", "k", "one"]);
    let _: () = q(&mut t1, &["HSET", "h", "f", "v"]);
    let _: () = q(&mut t1, &["EXPIRE", "h", "1000"]);
    let _: () = q(&mut t2, &["RPUSH", "l", "a", "b"]);
    assert_eq!(q::<String>(&mut admin, &["GET", "k"]), "admin");
    assert_eq!(q::<String>(&mut t1, &["GET", "k"]), "one");
    assert_eq!(q::<Option<String>>(&mut t2, &["GET", "k"]), None);
    assert_eq!(keys(&mut admin), ["k"]);
    assert_eq!(keys(&mut t1), ["h", "k"]);
    assert_eq!(keys(&mut t2), ["l"]);
    assert_eq!(q::<i64>(&mut t1, &["DBSIZE"]), 2);
    assert_eq!(q::<i64>(&mut t2, &["DBSIZE"]), 1);
    assert_eq!(q::<i64>(&mut admin, &["DBSIZE"]), 1);
    let (_, scanned): (String, Vec<String>) = q(&mut t2, &["SCAN", "0", "COUNT", "100"]);
    assert_eq!(scanned, ["l"]);
    assert_eq!(q::<String>(&mut t2, &["RANDOMKEY"]), "l");
    let info: String = q(&mut t1, &["INFO", "keyspace"]);
    assert!(info.contains("db0:keys=2,expires=1,"), "{info}");
    // EXISTS, DEL and RENAME stay inside the namespace.
    assert_eq!(q::<i64>(&mut t2, &["EXISTS", "k", "h"]), 0);
    assert_eq!(q::<i64>(&mut t2, &["DEL", "k"]), 0);
    assert_eq!(q::<String>(&mut admin, &["GET", "k"]), "admin");
    // A transaction and a script run in the connection's namespace.
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("tx")
        .arg("2")
        .cmd("INCR")
        .arg("tx")
        .query(&mut t2)
        .unwrap();
    let v: i64 = q(
        &mut t2,
        &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "tx"],
    );
    assert_eq!(v, 4);
    assert_eq!(q::<Option<String>>(&mut t1, &["GET", "tx"]), None);
    // A pipeline (one batch for the group) too.
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("p1")
        .arg("x")
        .ignore()
        .cmd("SET")
        .arg("p2")
        .arg("y")
        .ignore()
        .query(&mut t1)
        .unwrap();
    assert_eq!(keys(&mut t1), ["h", "k", "p1", "p2"]);
    assert_eq!(keys(&mut admin), ["k"]);
    // FLUSHDB empties the tenant's namespace only; the admin's FLUSHALL empties every one.
    let _: () = q(&mut t1, &["FLUSHDB"]);
    assert_eq!(q::<i64>(&mut t1, &["DBSIZE"]), 0);
    assert_eq!(q::<i64>(&mut t2, &["DBSIZE"]), 2);
    assert_eq!(q::<i64>(&mut admin, &["DBSIZE"]), 1);
    let _: () = q(&mut admin, &["FLUSHALL"]);
    assert_eq!(q::<i64>(&mut t2, &["DBSIZE"]), 0);
    assert_eq!(q::<i64>(&mut admin, &["DBSIZE"]), 0);
}

#[test]
fn tenants_may_not_run_the_admins_commands() {
    let (s, _dir, _conf) = server("", &[]);
    let mut t1 = as_(&s, "tok1");
    for cmd in [
        &["CONFIG", "GET", "port"][..],
        &["FLUSHALL"],
        &["NAMESPACE", "GET", "*"],
        &["SLAVEOF", "NO", "ONE"],
        &["SHUTDOWN"],
        &["BGSAVE"],
        &["MONITOR"],
        &["DEBUG", "SLEEP", "0"],
        &["DIGEST"],
        &["POLLUPDATES", "0"],
    ] {
        assert_eq!(
            err(&mut t1, cmd),
            "ERR admin permission required to perform the command",
            "{cmd:?}"
        );
    }
    // Not from a script either.
    assert!(
        err(&mut t1, &["EVAL", "return redis.call('FLUSHALL')", "0"])
            .contains("admin permission required")
    );
    // The server goes on; the tenant's data commands work.
    let _: () = q(&mut t1, &["SET", "a", "1"]);
    assert_eq!(q::<String>(&mut as_(&s, "adminpw"), &["PING"]), "PONG");
}

#[test]
fn auth_finds_the_namespace_by_token() {
    let (s, _dir, _conf) = server("", &[]);
    let mut c = s.conn();
    assert_eq!(
        err(&mut c, &["GET", "a"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        err(&mut c, &["AUTH", "nope"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    let _: () = q(&mut c, &["AUTH", "tok1"]);
    let _: () = q(&mut c, &["SET", "a", "1"]);
    // AUTH again moves the connection: to the admin, then (as `default`) to another tenant.
    let _: () = q(&mut c, &["AUTH", "adminpw"]);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), None);
    let _: () = q(&mut c, &["AUTH", "default", "tok1"]);
    assert_eq!(q::<String>(&mut c, &["GET", "a"]), "1");
    // HELLO 3 AUTH too.
    let mut h = s.conn();
    let _: redis::Value = q(&mut h, &["HELLO", "3", "AUTH", "default", "tok2"]);
    assert_eq!(q::<Option<String>>(&mut h, &["GET", "a"]), None);
    // RESET forgets the namespace.
    let _: redis::Value = q(&mut c, &["RESET"]);
    assert_eq!(
        err(&mut c, &["GET", "a"]),
        "NOAUTH Authentication required."
    );
}

#[test]
fn namespace_command_as_kvrocks() {
    let (s, _dir, conf) = server("", &[]);
    let mut a = as_(&s, "adminpw");
    let all: Vec<String> = q(&mut a, &["NAMESPACE", "GET", "*"]);
    assert_eq!(
        all,
        ["ns1", "tok1", "ns2", "tok2", "__namespace", "adminpw"]
    );
    assert_eq!(q::<String>(&mut a, &["NAMESPACE", "GET", "ns1"]), "tok1");
    assert_eq!(
        q::<Option<String>>(&mut a, &["NAMESPACE", "GET", "x"]),
        None
    );
    let e = |a: &mut Connection, args: &[&str]| err(a, args);
    assert_eq!(
        e(&mut a, &["NAMESPACE", "ADD", "ns1", "other"]),
        "ERR the namespace already exists"
    );
    let _: () = q(&mut a, &["NAMESPACE", "ADD", "ns1", "tok1"]);
    assert_eq!(
        e(&mut a, &["NAMESPACE", "ADD", "ns3", "tok1"]),
        "ERR the token already exists"
    );
    assert_eq!(
        e(&mut a, &["NAMESPACE", "ADD", "ns3", "adminpw"]),
        "ERR the token is duplicated with requirepass or masterauth"
    );
    assert_eq!(
        e(&mut a, &["NAMESPACE", "ADD", "__namespace", "t9"]),
        "ERR forbidden to add the default namespace"
    );
    assert_eq!(
        e(&mut a, &["NAMESPACE", "DEL", "__namespace"]),
        "ERR forbidden to delete the default namespace"
    );
    assert_eq!(
        e(&mut a, &["NAMESPACE", "DEL", "nope"]),
        "ERR the namespace was not found"
    );
    assert_eq!(
        e(&mut a, &["NAMESPACE", "FOO", "x"]),
        "ERR NAMESPACE subcommand must be one of GET, SET, DEL, ADD"
    );
    assert_eq!(
        e(&mut a, &["NAMESPACE", "SET", "x"]),
        "ERR NAMESPACE subcommand must be one of GET, SET, DEL, ADD"
    );
    // Tokens may not become passwords, and the password may not go while namespaces exist.
    assert_eq!(
        e(&mut a, &["CONFIG", "SET", "requirepass", "tok1"]),
        "ERR CONFIG SET 'requirepass' error: invalid value: requirepass is duplicated with namespace tokens"
    );
    assert_eq!(
        e(&mut a, &["CONFIG", "SET", "requirepass", ""]),
        "ERR CONFIG SET 'requirepass' error: invalid value: requirepass empty not allowed while the namespace exists"
    );
    assert_eq!(
        e(&mut a, &["CONFIG", "SET", "masterauth", "tok2"]),
        "ERR CONFIG SET 'masterauth' error: invalid value: masterauth is duplicated with namespace tokens"
    );

    // ADD, SET (a new token: the old one stops working) and DEL, kept in the config file.
    let _: () = q(&mut a, &["NAMESPACE", "ADD", "ns3", "tok3"]);
    let _: () = q(&mut as_(&s, "tok3"), &["SET", "k", "3"]);
    let _: () = q(&mut a, &["NAMESPACE", "SET", "ns3", "tok33"]);
    assert!(
        redis::Client::open(format!("redis://:tok3@127.0.0.1:{}/", s.port))
            .unwrap()
            .get_connection()
            .is_err()
    );
    assert_eq!(q::<String>(&mut as_(&s, "tok33"), &["GET", "k"]), "3");
    let _: () = q(&mut a, &["NAMESPACE", "DEL", "ns1"]);
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("namespace.ns3 tok33"), "{text}");
    assert!(text.contains("namespace.ns2 tok2"), "{text}");
    assert!(!text.contains("ns1"), "{text}");
    // After a restart the file's namespaces are the ones there are.
    let mut s = s;
    s.stop();
    s.restart();
    let mut t3 = as_(&s, "tok33");
    assert_eq!(q::<String>(&mut t3, &["GET", "k"]), "3");
    let mut c = s.conn();
    assert_eq!(
        err(&mut c, &["AUTH", "tok1"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
}

#[test]
fn watch_blocking_pubsub_and_notifications_stay_in_the_namespace() {
    let (s, _dir, _conf) = server("notify-keyspace-events KEA\n", &[]);
    let mut t1 = as_(&s, "tok1");
    let mut t1b = as_(&s, "tok1");
    let mut t2 = as_(&s, "tok2");

    // WATCH: a write to the same name in another namespace does not break the transaction;
    // one in the same namespace does.
    let _: () = q(&mut t1, &["WATCH", "w"]);
    let _: () = q(&mut t2, &["SET", "w", "other"]);
    let _: () = q(&mut t1, &["MULTI"]);
    let _: () = q(&mut t1, &["SET", "w", "mine"]);
    let r: redis::Value = q(&mut t1, &["EXEC"]);
    assert_ne!(
        r,
        redis::Value::Nil,
        "another namespace's write broke the WATCH"
    );
    let _: () = q(&mut t1, &["WATCH", "w"]);
    let _: () = q(&mut t1b, &["SET", "w", "again"]);
    let _: () = q(&mut t1, &["MULTI"]);
    let _: () = q(&mut t1, &["SET", "w", "late"]);
    let r: redis::Value = q(&mut t1, &["EXEC"]);
    assert_eq!(r, redis::Value::Nil);

    // Pub/Sub: channels are the namespace's.
    let mut sub = as_(&s, "tok1");
    let mut ps = sub.as_pubsub();
    ps.subscribe("ch").unwrap();
    ps.psubscribe("__keyspace@0__:*").unwrap();
    assert_eq!(q::<i64>(&mut t2, &["PUBLISH", "ch", "from2"]), 0);
    let _: () = q(&mut t2, &["SET", "noted", "2"]);
    assert_eq!(q::<i64>(&mut t1b, &["PUBLISH", "ch", "from1"]), 1);
    ps.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let m = ps.get_message().unwrap();
    assert_eq!(
        (
            m.get_channel_name().to_string(),
            m.get_payload::<String>().unwrap()
        ),
        ("ch".to_string(), "from1".to_string())
    );
    let _: () = q(&mut t1b, &["SET", "noted", "1"]);
    let m = ps.get_message().unwrap();
    assert_eq!(m.get_channel_name(), "__keyspace@0__:noted");
    assert_eq!(m.get_payload::<String>().unwrap(), "set");
    drop(ps);

    // Blocking: a push in another namespace does not serve the client; one in its own does.
    let port = s.port;
    let waiter = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://:tok1@127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        q::<Vec<String>>(&mut c, &["BLPOP", "queue", "30"])
    });
    let mut admin = as_(&s, "adminpw");
    wait_until(
        10,
        || {
            let info: String = q(&mut admin, &["INFO", "clients"]);
            info.contains("blocked_clients:1")
        },
        || "the BLPOP did not block".into(),
    );
    let _: () = q(&mut t2, &["RPUSH", "queue", "theirs"]);
    let _: () = q(&mut admin, &["RPUSH", "queue", "admins"]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "served from another namespace");
    let _: () = q(&mut t1b, &["RPUSH", "queue", "mine"]);
    assert_eq!(waiter.join().unwrap(), ["queue", "mine"]);
    assert_eq!(q::<i64>(&mut t2, &["LLEN", "queue"]), 1);
}

#[test]
fn keys_are_laid_out_as_kvrocks_lays_them_out() {
    let (mut s, _dir, _conf) = server("", &[]);
    let _: () = q(&mut as_(&s, "tok1"), &["SET", "k", "v"]);
    let _: () = q(&mut as_(&s, "tok2"), &["HSET", "h", "f", "v"]);
    s.stop();
    let engine =
        quarry_storage::Engine::open(&quarry_storage::EngineOptions::new(s.data_dir())).unwrap();
    use quarry_storage::ColumnFamily;
    // ns_len | ns | key, as Kvrocks' InternalKey/ComposeNamespaceKey.
    assert!(engine
        .get(ColumnFamily::Metadata, b"\x03ns1k")
        .unwrap()
        .is_some());
    assert!(engine
        .get(ColumnFamily::Metadata, b"\x03ns2h")
        .unwrap()
        .is_some());
    assert!(engine
        .get(ColumnFamily::Metadata, b"\x0b__namespacek")
        .unwrap()
        .is_none());
}

#[test]
fn config_checks_as_kvrocks() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("q.conf");
    let start = |text: &str| {
        std::fs::write(&conf, text).unwrap();
        std::process::Command::new(common::binary())
            .args(["-c", conf.to_str().unwrap(), "--dir"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap()
    };
    let out = start("namespace.ns1 tok1\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("requirepass empty wasn't allowed while the namespace exists"));
    let out = start("requirepass p\ncluster-enabled yes\nnamespace.ns1 tok1\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("enabled cluster mode wasn't allowed while the namespace exists"));
    let out = start("requirepass tok1\nnamespace.ns1 tok1\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("requirepass is duplicated with namespace tokens"));
}

#[test]
fn a_connection_from_before_requirepass_stays_authenticated() {
    let s = TestServer::start();
    let mut operator = s.conn();
    let mut idle = s.conn();
    let _: () = q(&mut idle, &["PING"]);
    let _: () = q(&mut operator, &["CONFIG", "SET", "requirepass", "pw"]);
    let _: () = q(&mut operator, &["SET", "a", "1"]);
    assert_eq!(q::<String>(&mut idle, &["GET", "a"]), "1");
    let mut fresh = s.conn();
    assert_eq!(
        err(&mut fresh, &["GET", "a"]),
        "NOAUTH Authentication required."
    );
}

#[test]
fn namespaces_replicate_with_repl_namespace_enabled() {
    let (m, _mdir, mconf) = server("repl-namespace-enabled yes\n", &[]);
    let slaveof = format!("127.0.0.1 {}", m.port);
    let rdir = tempfile::tempdir().unwrap();
    let rconf = rdir.path().join("replica.conf");
    std::fs::write(
        &rconf,
        "requirepass adminpw\nmasterauth adminpw\nrepl-namespace-enabled yes\n",
    )
    .unwrap();
    let r = TestServer::start_with(&["-c", rconf.to_str().unwrap(), "--slaveof", &slaveof]);
    // The master's file namespaces moved to its database, and out of its file.
    assert!(!std::fs::read_to_string(&mconf)
        .unwrap()
        .contains("namespace."));
    let mut ma = as_(&m, "adminpw");
    let _: () = q(&mut as_(&m, "tok1"), &["SET", "k", "one"]);
    let _: () = q(&mut ma, &["NAMESPACE", "ADD", "ns3", "tok3"]);
    let _: () = q(&mut as_(&m, "tok3"), &["SET", "k", "three"]);
    let mut ra = as_(&r, "adminpw");
    wait_until(
        20,
        || {
            let d1: (String, i64, i64) = q(&mut ma, &["DIGEST"]);
            let d2: (String, i64, i64) = q(&mut ra, &["DIGEST"]);
            d1 == d2
        },
        || "the replica did not catch up".into(),
    );
    assert_eq!(q::<String>(&mut as_(&r, "tok3"), &["GET", "k"]), "three");
    assert_eq!(q::<String>(&mut as_(&r, "tok1"), &["GET", "k"]), "one");
    assert_eq!(
        err(&mut ra, &["NAMESPACE", "ADD", "x", "y"]),
        "ERR namespace is read-only for slave"
    );
    // A deletion reaches the replica too, and DIGEST tells when the replica has it.
    let _: () = q(&mut ma, &["NAMESPACE", "DEL", "ns1"]);
    wait_until(
        20,
        || {
            let all: Vec<String> = q(&mut ra, &["NAMESPACE", "GET", "*"]);
            !all.contains(&"ns1".to_string())
        },
        || "the deletion did not reach the replica".into(),
    );
    let d1: (String, i64, i64) = q(&mut ma, &["DIGEST"]);
    let d2: (String, i64, i64) = q(&mut ra, &["DIGEST"]);
    assert_eq!(d1, d2);
    let mut c = r.conn();
    assert!(err(&mut c, &["AUTH", "tok1"]).starts_with("WRONGPASS"));
}

#[test]
fn the_namespace_record_counts_in_the_digest() {
    // Same keys, different namespaces: the digests differ.
    let (a, _d1, _c1) = server("repl-namespace-enabled yes\n", &[]);
    let b = TestServer::start();
    let mut b_admin = b.conn();
    let da: (String, i64, i64) = q(&mut as_(&a, "adminpw"), &["DIGEST"]);
    let db: (String, i64, i64) = q(&mut b_admin, &["DIGEST"]);
    assert_eq!((da.2, db.2), (0, 0), "no keys on either");
    assert_ne!(da.0, db.0, "the namespace record is not in the digest");
}

#[test]
fn scripts_and_function_libraries_are_the_namespaces_own() {
    let (s, _dir, _conf) = server("", &[]);
    let mut t1 = as_(&s, "tok1");
    let mut t2 = as_(&s, "tok2");
    let mut admin = as_(&s, "adminpw");
    // A script loaded in one namespace is unknown in another, and SCRIPT FLUSH there keeps it.
    let sha: String = q(&mut t1, &["SCRIPT", "LOAD", "return 'one'"]);
    assert_eq!(q::<String>(&mut t1, &["EVALSHA", &sha, "0"]), "one");
    assert!(err(&mut t2, &["EVALSHA", &sha, "0"]).starts_with("NOSCRIPT"));
    assert_eq!(q::<Vec<i64>>(&mut t2, &["SCRIPT", "EXISTS", &sha]), [0]);
    let _: () = q(&mut t2, &["SCRIPT", "FLUSH"]);
    assert_eq!(q::<Vec<i64>>(&mut t1, &["SCRIPT", "EXISTS", &sha]), [1]);
    // Libraries of the same name in two namespaces, each with its own code.
    let lib = |v: &str| {
        format!("#!lua name=mylib\nredis.register_function('f', function() return '{v}' end)")
    };
    let _: String = q(&mut t1, &["FUNCTION", "LOAD", &lib("one")]);
    let _: String = q(&mut t2, &["FUNCTION", "LOAD", &lib("two")]);
    assert_eq!(q::<String>(&mut t1, &["FCALL", "f", "0"]), "one");
    assert_eq!(q::<String>(&mut t2, &["FCALL", "f", "0"]), "two");
    assert_eq!(
        err(&mut admin, &["FCALL", "f", "0"]),
        "ERR Function not found"
    );
    let _: () = q(&mut t2, &["FUNCTION", "FLUSH"]);
    assert_eq!(err(&mut t2, &["FCALL", "f", "0"]), "ERR Function not found");
    assert_eq!(q::<String>(&mut t1, &["FCALL", "f", "0"]), "one");
    let listed: Vec<redis::Value> = q(&mut admin, &["FUNCTION", "LIST"]);
    assert!(listed.is_empty(), "{listed:?}");
}

#[test]
fn an_acl_user_confined_to_a_namespace() {
    let (s, _dir, _conf) = server("", &[]);
    let mut admin = as_(&s, "adminpw");
    let _: () = q(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "shop",
            "on",
            ">shoppw",
            "~*",
            "+@all",
            "-flushdb",
            "namespace:ns1",
        ],
    );
    let list: Vec<String> = q(&mut admin, &["ACL", "LIST"]);
    assert!(
        list.iter().any(|l| l.contains(" namespace:ns1 ")),
        "{list:?}"
    );
    let mut shop = redis::Client::open(format!("redis://shop:shoppw@127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = q(&mut shop, &["SET", "k", "from-shop"]);
    assert_eq!(
        q::<String>(&mut as_(&s, "tok1"), &["GET", "k"]),
        "from-shop"
    );
    assert_eq!(q::<Option<String>>(&mut admin, &["GET", "k"]), None);
    // The user's own rules, and no admin's commands.
    assert!(err(&mut shop, &["FLUSHDB"]).starts_with("NOPERM"));
    assert_eq!(
        err(&mut shop, &["CONFIG", "GET", "port"]),
        "ERR admin permission required to perform the command"
    );
    // `namespace:` alone takes the confinement away.
    let _: () = q(&mut admin, &["ACL", "SETUSER", "shop", "namespace:"]);
    let mut again = redis::Client::open(format!("redis://shop:shoppw@127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(q::<Option<String>>(&mut again, &["GET", "k"]), None);
}

#[test]
fn movex_moves_a_key_to_the_tokens_namespace() {
    // Replies compared side by side with Kvrocks 2.10.1 on the same script.
    let (s, _dir, _conf) = server("", &[]);
    let mut admin = as_(&s, "adminpw");
    let mut t1 = as_(&s, "tok1");
    let _: () = q(&mut admin, &["SET", "a", "1"]);
    let _: () = q(&mut admin, &["HSET", "h", "f", "v"]);
    assert_eq!(q::<i64>(&mut admin, &["MOVEX", "a", "tok1"]), 1);
    assert_eq!(
        q::<i64>(&mut admin, &["MOVEX", "a", "tok1"]),
        0,
        "moved already"
    );
    assert_eq!(q::<i64>(&mut admin, &["MOVEX", "h", "tok1"]), 1);
    assert_eq!(q::<i64>(&mut admin, &["MOVEX", "missing", "tok1"]), 0);
    assert_eq!(
        err(&mut admin, &["MOVEX", "a", "bad"]),
        "ERR Invalid password"
    );
    assert_eq!(q::<i64>(&mut admin, &["EXISTS", "a", "h"]), 0);
    assert_eq!(q::<String>(&mut t1, &["GET", "a"]), "1");
    assert_eq!(q::<Vec<String>>(&mut t1, &["HGETALL", "h"]), ["f", "v"]);
    // Back to the default namespace with the admin password; not over an existing key.
    let _: () = q(&mut t1, &["SET", "b", "2"]);
    assert_eq!(q::<i64>(&mut t1, &["MOVEX", "b", "adminpw"]), 1);
    assert_eq!(q::<String>(&mut admin, &["GET", "b"]), "2");
    let _: () = q(&mut admin, &["SET", "c", "1"]);
    let _: () = q(&mut t1, &["SET", "c", "2"]);
    assert_eq!(q::<i64>(&mut t1, &["MOVEX", "c", "adminpw"]), 0);
    assert_eq!(q::<String>(&mut t1, &["GET", "c"]), "2");
    assert_eq!(q::<String>(&mut admin, &["GET", "c"]), "1");
    // Without requirepass there are no namespaces to move to.
    let plain = TestServer::start();
    let _: () = q(&mut plain.conn(), &["SET", "k", "v"]);
    assert_eq!(
        err(&mut plain.conn(), &["MOVEX", "k", "x"]),
        "ERR Forbidden to move key when requirepass is empty"
    );
}
