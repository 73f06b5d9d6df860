//! ACL users through the real binary. The replies are compared side by side with Debian's
//! redis-server 7.0 (which `scripts/test` installs), started by the test on its own port: the
//! same scripts of commands, the same replies and errors.

mod common;

use std::process::Command;

use common::{err, q, Redis, TestServer};
use redis::{Connection, Value};

/// A command's reply or its error text, comparable across servers.
fn run(c: &mut Connection, args: &[&str]) -> Result<Value, String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<Value>(c).map_err(|e| common::error_text(&e))
}

/// Runs each command on both servers and compares the replies.
fn same(redis: &mut Connection, quarry: &mut Connection, script: &[&[&str]]) {
    for args in script {
        let want = run(redis, args).map(normalize);
        let got = run(quarry, args).map(normalize);
        assert_eq!(got, want, "{args:?}");
    }
}

/// Redis lists the single commands of a description (`-@all +set +get`) in the order of its
/// command dict, which changes with each start (the hash seed is random): runs of them are
/// compared as sets.
fn normalize(v: Value) -> Value {
    match v {
        Value::BulkString(b) => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
            let single =
                |w: &String| (w.starts_with('+') || w.starts_with('-')) && !w.contains('@');
            let mut i = 0;
            while i < words.len() {
                if single(&words[i]) {
                    let start = i;
                    while i < words.len() && single(&words[i]) {
                        i += 1;
                    }
                    words[start..i].sort();
                } else {
                    i += 1;
                }
            }
            Value::BulkString(words.join(" ").into_bytes())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Map(items) => Value::Map(
            items
                .into_iter()
                .map(|(k, v)| (normalize(k), normalize(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn acl_replies_are_redis_replies() {
    let r = Redis::start();
    let s = TestServer::start();
    let (mut rc, mut qc) = (r.conn(), s.conn());
    same(
        &mut rc,
        &mut qc,
        &[
            &["ACL", "WHOAMI"],
            &["ACL", "USERS"],
            &["ACL", "LIST"],
            &["ACL", "GETUSER", "default"],
            &["ACL", "GETUSER", "nosuch"],
            &["ACL", "SETUSER", "alice"],
            &["ACL", "GETUSER", "alice"],
            &[
                "ACL",
                "SETUSER",
                "alice",
                "on",
                ">pw1",
                "~cached:*",
                "+get",
                "+set",
            ],
            &["ACL", "LIST"],
            &["ACL", "GETUSER", "alice"],
            &["ACL", "SETUSER", "alice", "%R~r*", "%W~w*", "%RW~b*"],
            &["ACL", "GETUSER", "alice"],
            &["ACL", "SETUSER", "alice", "&chan*", "-set"],
            &["ACL", "GETUSER", "alice"],
            &[
                "ACL",
                "SETUSER",
                "bob",
                "on",
                "nopass",
                "+@all",
                "-@dangerous",
                "~*",
            ],
            &["ACL", "GETUSER", "bob"],
            &[
                "ACL", "SETUSER", "carol", "on", "nopass", "+@all", "-debug", "~*",
            ],
            &["ACL", "GETUSER", "carol"],
            &["ACL", "SETUSER", "dave", "-@all", "+@hash", "+@string"],
            &["ACL", "GETUSER", "dave"],
            &["ACL", "SETUSER", "erin", "+select|0"],
            &["ACL", "GETUSER", "erin"],
            &["ACL", "SETUSER", "g", "+@all", "-config|set", "~*"],
            &["ACL", "GETUSER", "g"],
            &["ACL", "SETUSER", "h", "-@all", "+config"],
            &["ACL", "GETUSER", "h"],
            &["ACL", "SETUSER", "i", "reset"],
            &["ACL", "GETUSER", "i"],
            &[
                "ACL", "SETUSER", "frank", "on", "nopass", "+@all", "~*", "(~sel*", "+get)",
            ],
            &["ACL", "GETUSER", "frank"],
            &[
                "ACL",
                "SETUSER",
                "j",
                "#e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ],
            &["ACL", "GETUSER", "j"],
            &["ACL", "SETUSER", "j", "resetpass"],
            &["ACL", "GETUSER", "j"],
            // A bad rule is refused whole: the user stays as it was.
            &["ACL", "SETUSER", "alice", "+hset", "~*", "~a"],
            &["ACL", "GETUSER", "alice"],
            &["ACL", "SETUSER", "bad", "+nosuch"],
            &["ACL", "SETUSER", "bad", "+@nosuch"],
            &["ACL", "SETUSER", "bad", "#abc"],
            &["ACL", "SETUSER", "bad", "<nopw"],
            &["ACL", "SETUSER", "bad", "+config|get|x"],
            &["ACL", "SETUSER", "bad", "foo"],
            &["ACL", "SETUSER", "bad", "(~x"],
            &["ACL", "SETUSER", "bad", "&*", "&x"],
            &["ACL", "SETUSER", "bad user"],
            &["ACL", "USERS"],
            &["ACL", "LIST"],
            &["ACL", "DELUSER", "default"],
            &["ACL", "DELUSER", "bob", "nosuch"],
            &["ACL", "USERS"],
            &["ACL", "DRYRUN", "alice", "get", "cached:1"],
            &["ACL", "DRYRUN", "alice", "get", "other"],
            &["ACL", "DRYRUN", "alice", "set", "cached:1", "v"],
            &["ACL", "DRYRUN", "alice", "hset", "cached:1", "f", "v"],
            &["ACL", "DRYRUN", "nosuch", "get", "x"],
            &["ACL", "DRYRUN", "alice", "nosuchcmd"],
            &["ACL", "DRYRUN", "alice", "get"],
            &["ACL", "DRYRUN", "alice", "publish", "chan1", "m"],
            &["ACL", "DRYRUN", "alice", "publish", "other", "m"],
            &["ACL", "DRYRUN", "frank", "get", "sel1"],
            &["ACL", "CAT"],
            &["ACL", "CAT", "nosuch"],
            &["ACL", "GENPASS", "0"],
            &["ACL", "GENPASS", "5000"],
            &["ACL", "GENPASS", "abc"],
            &["ACL", "LOG", "RESET"],
            &["ACL", "LOG"],
            &["ACL", "SAVE"],
            &["ACL", "LOAD"],
            &["ACL", "FOO"],
            &["ACL", "HELP"],
            &["AUTH", "nopass-default"],
        ],
    );
    // GENPASS: hex of the asked size.
    let p: String = q(&mut qc, &["ACL", "GENPASS"]);
    assert_eq!(p.len(), 64);
    let p: String = q(&mut qc, &["ACL", "GENPASS", "5"]);
    assert!(p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
}

/// Connects as `user` with `pass`.
fn login(port: u16, user: &str, pass: &str) -> Result<Connection, String> {
    redis::Client::open(format!("redis://{user}:{pass}@127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .map_err(|e| common::error_text(&e))
}

/// The ACL LOG without the fields that depend on time and the connection.
fn log_of(c: &mut Connection) -> Vec<Vec<(String, String)>> {
    let entries: Vec<Vec<(String, Value)>> = q(c, &["ACL", "LOG"]);
    entries
        .into_iter()
        .map(|e| {
            e.into_iter()
                .filter(|(k, _)| k != "age-seconds" && k != "client-info")
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect()
        })
        .collect()
}

#[test]
fn permissions_are_enforced_as_redis_enforces_them() {
    let r = Redis::start();
    let s = TestServer::start();
    for (port, mut admin) in [(r.port, r.conn()), (s.port, s.conn())] {
        let _: () = q(
            &mut admin,
            &[
                "ACL",
                "SETUSER",
                "lim",
                "on",
                ">pw",
                "~k*",
                "+get",
                "+set",
                "+publish",
                "&ch*",
                "+multi",
                "+exec",
                "+eval",
                "+acl|whoami",
                "+client|info",
            ],
        );
        let _: () = q(&mut admin, &["ACL", "LOG", "RESET"]);
        let _ = port;
    }
    let script: &[&[&str]] = &[
        &["GET", "k1"],
        &["SET", "k1", "v"],
        &["GET", "x1"],
        &["HSET", "k1", "f", "v"],
        &["CONFIG", "GET", "port"],
        &["PUBLISH", "ch1", "m"],
        &["PUBLISH", "other", "m"],
        &["ACL", "WHOAMI"],
        &["ACL", "USERS"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "k1"],
        &["MULTI"],
        &["HSET", "k1", "f", "v"],
        &["GET", "k1"],
        &["EXEC"],
    ];
    let mut rl = login(r.port, "lim", "pw").unwrap();
    let mut ql = login(s.port, "lim", "pw").unwrap();
    same(&mut rl, &mut ql, script);
    // A script's refusal names the script in Redis; the reason is the same.
    for c in [&mut rl, &mut ql] {
        let e = err(c, &["EVAL", "return redis.call('hset','k1','f','v')", "0"]);
        assert!(
            e.starts_with("ERR The user executing the script can't run this command or subcommand"),
            "{e}"
        );
        let e = err(c, &["EVAL", "return redis.call('get','zz')", "0"]);
        assert!(
            e.contains("The user executing the script can't access at least one of the keys"),
            "{e}"
        );
    }
    // Wrong passwords and unknown users.
    same(
        &mut r.conn(),
        &mut s.conn(),
        &[
            &["AUTH", "lim", "bad"],
            &["AUTH", "nobody", "x"],
            &["AUTH", "lim", "pw"],
        ],
    );
    // The ACL LOG holds the same entries.
    let (mut ra, mut qa) = (r.conn(), s.conn());
    assert_eq!(log_of(&mut qa), log_of(&mut ra));
    // CLIENT LIST names the user; CLIENT KILL USER closes its connections.
    let info: String = q(&mut ql, &["CLIENT", "INFO"]);
    assert!(info.contains(" user=lim "), "{info}");
    same(
        &mut ra,
        &mut qa,
        &[
            &["CLIENT", "KILL", "USER", "nosuch"],
            &["CLIENT", "KILL", "USER", "lim"],
        ],
    );
    // A disabled user cannot log in; a deleted one's connections are closed.
    let mut again = login(s.port, "lim", "pw").unwrap();
    let _: () = q(&mut qa, &["ACL", "SETUSER", "lim", "off"]);
    assert!(login(s.port, "lim", "pw").is_err());
    let _: () = q(&mut qa, &["ACL", "SETUSER", "lim", "on"]);
    assert_eq!(q::<i64>(&mut qa, &["ACL", "DELUSER", "lim"]), 1);
    assert!(
        run(&mut again, &["GET", "k1"]).is_err(),
        "the connection stays open"
    );
}

#[test]
fn requirepass_is_the_default_users_password() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["CONFIG", "SET", "requirepass", "secret"]);
    let user: Vec<Value> = q(&mut c, &["ACL", "GETUSER", "default"]);
    assert!(format!("{user:?}").contains(&quarry_sha256("secret")));
    assert_eq!(
        err(&mut s.conn(), &["GET", "a"]),
        "NOAUTH Authentication required."
    );
    assert!(login(s.port, "default", "secret").is_ok());
    // HELLO 3 AUTH.
    let mut h = s.conn();
    let _: Value = q(&mut h, &["HELLO", "3", "AUTH", "default", "secret"]);
    let who: String = q(&mut h, &["ACL", "WHOAMI"]);
    assert_eq!(who, "default");
    // A user of its own, and the default user switched off: only the user gets in.
    let _: () = q(
        &mut c,
        &["ACL", "SETUSER", "ops", "on", ">opspw", "+@all", "~*", "&*"],
    );
    let _: () = q(&mut c, &["ACL", "SETUSER", "default", "off"]);
    assert!(login(s.port, "default", "secret").is_err());
    let mut ops = login(s.port, "ops", "opspw").unwrap();
    assert_eq!(q::<String>(&mut ops, &["ACL", "WHOAMI"]), "ops");
    // Switching the password off makes new connections the default user again... once it is on.
    let _: () = q(&mut ops, &["ACL", "SETUSER", "default", "on", "nopass"]);
    assert_eq!(q::<String>(&mut s.conn(), &["PING"]), "PONG");
}

fn quarry_sha256(p: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(p.as_bytes()))
}

#[test]
fn users_from_the_config_and_the_aclfile() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("quarry.conf");
    std::fs::write(
        &conf,
        format!(
            "user reader on #{} ~* &* +@read\nuser default on nopass ~* &* +@all\n",
            quarry_sha256("rpw")
        ),
    )
    .unwrap();
    let mut s = TestServer::start_with(&["-c", conf.to_str().unwrap()]);
    let mut r = login(s.port, "reader", "rpw").unwrap();
    let _: Option<String> = q(&mut r, &["GET", "a"]);
    assert_eq!(
        err(&mut r, &["SET", "a", "1"]),
        "NOPERM this user has no permissions to run the 'set' command"
    );
    // CONFIG REWRITE keeps the users.
    let _: () = q(
        &mut s.conn(),
        &["ACL", "SETUSER", "writer", "on", ">wpw", "+set", "~*"],
    );
    let _: () = q(&mut s.conn(), &["CONFIG", "REWRITE"]);
    s.stop();
    s.restart();
    let mut w = login(s.port, "writer", "wpw").unwrap();
    let _: () = q(&mut w, &["SET", "a", "1"]);
    s.stop();

    // An aclfile: ACL SAVE and ACL LOAD, and a broken file stops start-up with its line.
    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user alice on >apw ~a* +get\n").unwrap();
    let mut t = TestServer::start_with(&["--aclfile", acl.to_str().unwrap()]);
    let mut a = login(t.port, "alice", "apw").unwrap();
    let _: Option<String> = q(&mut a, &["GET", "a1"]);
    let mut admin = t.conn();
    let _: () = q(
        &mut admin,
        &["ACL", "SETUSER", "bob", "on", ">bpw", "+ping"],
    );
    let _: () = q(&mut admin, &["ACL", "SAVE"]);
    let saved = std::fs::read_to_string(&acl).unwrap();
    assert!(saved.contains("user bob on #"), "{saved}");
    std::fs::write(&acl, "user carol on >cpw +ping\nuser broken on +nosuch\n").unwrap();
    let e = err(&mut admin, &["ACL", "LOAD"]);
    assert!(
        e.contains(":2: Error in applying operation '+nosuch': Unknown command or category name in ACL.")
            && e.ends_with("WARNING: ACL errors detected, no change to the previously active ACL rules was performed"),
        "{e}"
    );
    assert!(
        login(t.port, "bob", "bpw").is_ok(),
        "a failed LOAD changed the users"
    );
    std::fs::write(&acl, "user carol on >cpw +ping\n").unwrap();
    let _: () = q(&mut admin, &["ACL", "LOAD"]);
    assert!(login(t.port, "carol", "cpw").is_ok());
    assert!(login(t.port, "bob", "bpw").is_err());
    t.stop();
    std::fs::write(&acl, "user ok on nopass +ping\nuser x on ~* ~a\n").unwrap();
    let out = Command::new(common::binary())
        .args(["--aclfile", acl.to_str().unwrap(), "--dir"])
        .arg(dir.path().join("data2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":2:"), "{stderr}");
}

#[test]
fn tenants_and_users_together() {
    // A namespace token is the default user's password in that namespace; an ACL user lives
    // in the default namespace with its own rules.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("quarry.conf");
    std::fs::write(&conf, "requirepass adminpw\nnamespace.ns1 tok1\n").unwrap();
    let s = TestServer::start_with(&["-c", conf.to_str().unwrap()]);
    let mut admin = login(s.port, "default", "adminpw").unwrap();
    let _: () = q(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">apppw",
            "~*",
            "+@all",
            "-flushall",
        ],
    );
    let mut app = login(s.port, "app", "apppw").unwrap();
    let mut tenant = login(s.port, "default", "tok1").unwrap();
    let _: () = q(&mut app, &["SET", "k", "app"]);
    let _: () = q(&mut tenant, &["SET", "k", "tenant"]);
    assert_eq!(q::<String>(&mut admin, &["GET", "k"]), "app");
    assert_eq!(q::<String>(&mut tenant, &["GET", "k"]), "tenant");
    assert_eq!(
        err(&mut app, &["FLUSHALL"]),
        "NOPERM this user has no permissions to run the 'flushall' command"
    );
    assert_eq!(q::<String>(&mut tenant, &["ACL", "WHOAMI"]), "default");
    assert_eq!(
        err(&mut tenant, &["ACL", "SETUSER", "x"]),
        "ERR admin permission required to perform the command"
    );
}

#[test]
fn scripts_ask_acl_check_cmd_as_in_redis() {
    let r = Redis::start();
    let s = TestServer::start();
    for mut admin in [r.conn(), s.conn()] {
        let _: () = q(
            &mut admin,
            &[
                "ACL",
                "SETUSER",
                "bob",
                "on",
                ">123",
                "+@scripting",
                "+set",
                "~x*",
            ],
        );
    }
    let mut rb = login(r.port, "bob", "123").unwrap();
    let mut qb = login(s.port, "bob", "123").unwrap();
    same(
        &mut rb,
        &mut qb,
        &[
            &[
                "EVAL",
                "return redis.acl_check_cmd('set','xx',1)",
                "1",
                "xx",
            ],
            &[
                "EVAL",
                "return redis.acl_check_cmd('hset','xx','f',1)",
                "1",
                "xx",
            ],
            &["EVAL", "return redis.acl_check_cmd('set','yy',1)", "0"],
        ],
    );
    for c in [&mut rb, &mut qb] {
        let e = err(
            c,
            &[
                "EVAL",
                "return redis.acl_check_cmd('invalid-cmd','arg')",
                "0",
            ],
        );
        assert!(
            e.starts_with("ERR Invalid command passed to redis.acl_check_cmd()"),
            "{e}"
        );
    }
}

#[test]
fn command_getkeysandflags_matches_redis() {
    let r = Redis::start();
    let s = TestServer::start();
    let (mut rc, mut qc) = (r.conn(), s.conn());
    let g = "GETKEYSANDFLAGS";
    same(
        &mut rc,
        &mut qc,
        &[
            &["COMMAND", g, "SET", "a", "b"],
            &["COMMAND", g, "SET", "a", "b", "GET"],
            &["COMMAND", g, "GET", "a"],
            &["COMMAND", g, "MSET", "a", "1", "b", "2"],
            &["COMMAND", g, "DEL", "a", "b", "c"],
            &["COMMAND", g, "LMOVE", "a", "b", "LEFT", "RIGHT"],
            &["COMMAND", g, "BLMOVE", "a", "b", "LEFT", "LEFT", "0"],
            &["COMMAND", g, "SMOVE", "a", "b", "m"],
            &["COMMAND", g, "RENAME", "a", "b"],
            &["COMMAND", g, "BITOP", "AND", "d", "a", "b"],
            &["COMMAND", g, "BITFIELD", "k", "GET", "u8", "0"],
            &["COMMAND", g, "BITFIELD", "k", "SET", "u8", "0", "1"],
            &["COMMAND", g, "ZUNIONSTORE", "d", "2", "a", "b"],
            &["COMMAND", g, "LMPOP", "2", "a", "b", "LEFT"],
            &["COMMAND", g, "EVAL", "return 1", "1", "k"],
            &["COMMAND", g, "EVAL", "return 1", "0"],
            &["COMMAND", g, "SORT", "k", "STORE", "d"],
            &[
                "COMMAND",
                g,
                "GEORADIUS",
                "k",
                "1",
                "2",
                "3",
                "m",
                "STORE",
                "d",
            ],
            &["COMMAND", g, "XREAD", "STREAMS", "a", "b", "0", "0"],
            &[
                "COMMAND",
                g,
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "STREAMS",
                "s",
                "0",
            ],
            &[
                "COMMAND", g, "MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b",
            ],
            &["COMMAND", g, "MEMORY", "USAGE", "k"],
            &["COMMAND", g, "PING", "x"],
            &["COMMAND", g, "GET"],
            &["COMMAND", g, "NOSUCH", "a"],
        ],
    );
}
