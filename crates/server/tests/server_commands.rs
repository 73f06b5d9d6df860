//! Server and connection commands: AUTH, INFO, CONFIG, CLIENT, COMMAND, SLOWLOG, MONITOR, TIME,
//! DEBUG SLEEP, QUIT, SHUTDOWN.

mod common;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{err, q, read_for, TestServer};

#[test]
fn auth_is_required_when_requirepass_is_set() {
    let s = TestServer::start_with(&["--requirepass", "pw"]);
    let mut c = s.conn();
    assert_eq!(
        err(&mut c, &["GET", "k"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        err(&mut c, &["AUTH", "bad"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(q::<String>(&mut c, &["AUTH", "pw"]), "OK");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    assert_eq!(q::<String>(&mut c, &["AUTH", "default", "pw"]), "OK");
    let s2 = TestServer::start();
    let mut c2 = s2.conn();
    assert!(err(&mut c2, &["AUTH", "x"])
        .starts_with("ERR AUTH <password> called without any password configured"));
}

#[test]
fn ping_echo_time_select() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut c, &["PING", "hi"]), "hi");
    assert_eq!(q::<String>(&mut c, &["ECHO", "x y"]), "x y");
    let t: Vec<String> = q(&mut c, &["TIME"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(t[0].parse::<u64>().unwrap().abs_diff(now) <= 2);
    assert_eq!(q::<String>(&mut c, &["SELECT", "0"]), "OK");
    assert_eq!(
        err(&mut c, &["SELECT", "1"]),
        "ERR DB index is out of range"
    );
}

#[test]
fn info_has_every_section_and_the_fields_tools_read() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "a", "1"]);
    q::<String>(&mut c, &["SET", "b", "1", "EX", "100"]);
    // As in Redis, the default INFO leaves out commandstats; ALL has it.
    let default: String = q(&mut c, &["INFO"]);
    assert!(!default.contains("# Commandstats"));
    assert!(default.contains("# Keyspace"));
    let info: String = q(&mut c, &["INFO", "ALL"]);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Commandstats",
        "# Cluster",
        "# Keyspace",
        "# RocksDB",
    ] {
        assert!(info.contains(section), "missing {section}");
    }
    assert!(info.contains("redis_version:7.0."));
    assert!(info.contains("role:master"));
    assert!(info.contains("cluster_enabled:0"));
    let run_id = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .unwrap()
        .trim();
    assert!(run_id.len() == 40 && run_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(info.contains("db0:keys=2,expires=1,"));
    assert!(info.contains("cmdstat_set:calls=2,"));
    let seq: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("sequence:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(seq >= 2);
    let repl: String = q(&mut c, &["INFO", "replication"]);
    assert!(repl.starts_with("# Replication") && !repl.contains("# Server"));
    assert!(repl.contains(&format!("master_repl_offset:{seq}")));
}

#[test]
fn config_get_set_rewrite() {
    // Start from a file so that REWRITE has somewhere to write.
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("quarry.conf");
    std::fs::write(&conf, "# my config\nport 1\ntimeout 0\n").unwrap();
    let s = TestServer::start_with(&["-c", conf.to_str().unwrap()]);
    let mut c = s.conn();
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "maxclients"]);
    assert_eq!(v, vec!["maxclients", "10240"]);
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "save"]);
    assert_eq!(v, vec!["save", ""], "redis-benchmark asks for it");
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "appendonly"]);
    assert_eq!(v, vec!["appendonly", "no"]);
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "slowlog-*"]);
    assert_eq!(v.len(), 4);
    assert_eq!(
        q::<String>(&mut c, &["CONFIG", "SET", "timeout", "30"]),
        "OK"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "timeout"]),
        vec!["timeout", "30"]
    );
    assert_eq!(
        q::<String>(&mut c, &["CONFIG", "SET", "hash-max-ziplist-entries", "16"]),
        "OK"
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "port", "1234"]),
        "ERR CONFIG SET 'port' error: Unsupported CONFIG parameter: port"
    );
    assert!(err(&mut c, &["CONFIG", "SET", "timeout", "abc"])
        .starts_with("ERR CONFIG SET 'timeout' error: failed to set new value"));
    assert_eq!(q::<String>(&mut c, &["CONFIG", "REWRITE"]), "OK");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.starts_with("# my config\n"), "{text}");
    assert!(text.contains("timeout 30\n"));
    assert!(text.contains("hash-max-ziplist-entries 16\n"));
    assert!(err(&mut c, &["CONFIG", "BOGUS"])
        .starts_with("ERR unknown subcommand 'BOGUS'. Try CONFIG HELP."));
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "timeout"]),
        "ERR wrong number of arguments for 'config|set' command"
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "timeout", "1", "maxclients"]),
        "ERR wrong number of arguments for 'config|set' command"
    );
}

#[test]
fn config_rewrite_without_a_file_is_an_error() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(
        err(&mut c, &["CONFIG", "REWRITE"]),
        "ERR The server is running without a config file"
    );
}

#[test]
fn client_list_info_id_names_kill() {
    let s = TestServer::start();
    let mut a = s.conn();
    let mut b = s.conn();
    let id_a: i64 = q(&mut a, &["CLIENT", "ID"]);
    assert_eq!(q::<Option<String>>(&mut a, &["CLIENT", "GETNAME"]), None);
    assert_eq!(q::<String>(&mut a, &["CLIENT", "SETNAME", "alpha"]), "OK");
    assert_eq!(q::<String>(&mut a, &["CLIENT", "GETNAME"]), "alpha");
    assert_eq!(
        err(&mut a, &["CLIENT", "SETNAME", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        q::<String>(&mut a, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]),
        "OK"
    );
    let list: String = q(&mut b, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 2);
    assert!(
        list.contains(&format!("id={id_a} "))
            && list.contains("name=alpha")
            && list.contains("lib-name=mylib")
    );
    let mine: String = q(&mut a, &["CLIENT", "INFO"]);
    assert!(mine.starts_with(&format!("id={id_a} ")));
    assert!(mine.contains(" cmd=client|info "), "{mine}");
    assert_eq!(
        err(&mut a, &["CLIENT", "KILL"]),
        "ERR wrong number of arguments for 'client|kill' command"
    );
    assert_eq!(
        q::<i64>(&mut b, &["CLIENT", "KILL", "ID", &id_a.to_string()]),
        1
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        redis::cmd("PING").query::<String>(&mut a).is_err(),
        "killed connection is closed"
    );
    assert_eq!(
        err(&mut b, &["CLIENT", "KILL", "127.0.0.1:1"]),
        "ERR No such client"
    );
    let list: String = q(&mut b, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 1);
}

#[test]
fn command_reads_the_table() {
    let s = TestServer::start();
    let mut c = s.conn();
    let count: i64 = q(&mut c, &["COMMAND", "COUNT"]);
    assert!(count > 60);
    let info: redis::Value = q(&mut c, &["COMMAND", "INFO", "get", "nosuch"]);
    let redis::Value::Array(items) = info else {
        panic!()
    };
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], redis::Value::Nil);
    let redis::Value::Array(get) = &items[0] else {
        panic!()
    };
    assert_eq!(get[0], redis::Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], redis::Value::Int(2));
    assert_eq!(
        q::<Vec<String>>(&mut c, &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
        vec!["a", "b"]
    );
    assert_eq!(
        err(&mut c, &["COMMAND", "GETKEYS", "PING"]),
        "ERR The command has no key arguments"
    );
    assert_eq!(
        err(&mut c, &["COMMAND", "GETKEYS", "NOPE"]),
        "ERR Invalid command specified"
    );
    let docs: redis::Value = q(&mut c, &["COMMAND", "DOCS", "set"]);
    assert!(format!("{docs:?}").contains("summary"));
    let all: Vec<redis::Value> = q(&mut c, &["COMMAND"]);
    assert_eq!(all.len() as i64, count);
    // Commands whose keys depend on their arguments are `movablekeys`; EVAL with no keys has
    // an empty key list rather than none at all.
    let flags = |c: &mut redis::Connection, name: &str| -> String {
        let info: redis::Value = q(c, &["COMMAND", "INFO", name]);
        format!("{info:?}")
    };
    for name in [
        "zunionstore",
        "xread",
        "eval",
        "sort",
        "sort_ro",
        "migrate",
        "georadius",
    ] {
        assert!(flags(&mut c, name).contains("movablekeys"), "{name}");
    }
    for name in ["set", "mset", "lmove", "blpop", "georadius_ro"] {
        assert!(!flags(&mut c, name).contains("movablekeys"), "{name}");
    }
    assert_eq!(
        q::<Vec<String>>(&mut c, &["COMMAND", "GETKEYS", "EVAL", "return 1", "0"]),
        Vec::<String>::new()
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["COMMAND", "GETKEYS", "MEMORY", "USAGE", "k"]),
        vec!["k"]
    );
    // COMMAND LIST names subcommands as container|sub, and filters.
    let list: Vec<String> = q(&mut c, &["COMMAND", "LIST"]);
    assert!(list.contains(&"set".into()) && list.contains(&"client|list".into()));
    let scripting: Vec<String> = q(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "scripting"],
    );
    assert!(scripting.contains(&"eval".into()) && scripting.contains(&"script|kill".into()));
    assert!(!scripting.contains(&"set".into()));
    assert_eq!(
        q::<Vec<String>>(&mut c, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "set"]),
        ["set"]
    );
    let config: Vec<String> = q(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "config|*re*"],
    );
    assert!(config.contains(&"config|rewrite".into()), "{config:?}");
    assert!(!config.contains(&"config|get".into()));
    for none in [&["ACLCAT", "nosuch"][..], &["MODULE", "nosuch"]] {
        let mut args = vec!["COMMAND", "LIST", "FILTERBY"];
        args.extend_from_slice(none);
        assert_eq!(q::<Vec<String>>(&mut c, &args), Vec::<String>::new());
    }
    assert_eq!(err(&mut c, &["COMMAND", "LIST", "bad"]), "ERR syntax error");
    assert_eq!(
        err(&mut c, &["COMMAND", "LIST", "FILTERBY", "bad", "x"]),
        "ERR syntax error"
    );
    // MULTI and EXEC count in the command statistics like any command.
    let _: () = q(&mut c, &["CONFIG", "RESETSTAT"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["SET", "k", "v"]);
    let _: Vec<String> = q(&mut c, &["EXEC"]);
    let stats: String = q(&mut c, &["INFO", "commandstats"]);
    for name in ["multi", "exec", "set"] {
        assert!(
            stats.contains(&format!("cmdstat_{name}:calls=1,")),
            "{name}: {stats}"
        );
    }
}

#[test]
fn slowlog_records_slow_commands() {
    let s = TestServer::start_with(&["--slowlog-log-slower-than", "0"]);
    let mut c = s.conn();
    q::<String>(&mut c, &["SLOWLOG", "RESET"]);
    q::<String>(&mut c, &["SET", "k", "v"]);
    let len: i64 = q(&mut c, &["SLOWLOG", "LEN"]);
    assert!(len >= 1);
    let entries: Vec<redis::Value> = q(&mut c, &["SLOWLOG", "GET", "1"]);
    assert_eq!(entries.len(), 1);
    assert!(
        format!("{:?}", entries[0]).contains("SLOWLOG"),
        "newest first"
    );
    q::<String>(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    q::<String>(&mut c, &["SLOWLOG", "RESET"]);
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["SLOWLOG", "LEN"]), 0);
}

#[test]
fn monitor_streams_other_clients_commands() {
    let s = TestServer::start();
    let mut mon = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    mon.write_all(b"MONITOR\r\n").unwrap();
    assert_eq!(read_for(&mut mon, Duration::from_millis(200)), b"+OK\r\n");
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "watched", "1"]);
    let seen =
        String::from_utf8_lossy(&read_for(&mut mon, Duration::from_millis(300))).into_owned();
    assert!(seen.contains("\"SET\" \"watched\" \"1\""), "{seen}");
    // A script's commands show as the `lua` client's, after the EVAL that ran them.
    let _: () = q(
        &mut c,
        &[
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1])",
            "1",
            "fromlua",
            "v",
        ],
    );
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"fromlua\" \"v\"\r\n") {
        assert!(std::time::Instant::now() < deadline, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&read_for(
            &mut mon,
            Duration::from_millis(50),
        )));
    }
    let eval = seen.find("\"EVAL\"").expect("the EVAL is shown");
    let call = seen
        .find("[0 lua] \"set\" \"fromlua\" \"v\"")
        .unwrap_or_else(|| panic!("{seen}"));
    assert!(eval < call, "{seen}");
    // A transaction shows as MULTI, its commands, EXEC, once EXEC runs.
    let _: () = q(&mut c, &["MULTI"]);
    let _: String = q(&mut c, &["SET", "intx", "1"]);
    let _: Vec<String> = q(&mut c, &["EXEC"]);
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"exec\"\r\n") {
        assert!(std::time::Instant::now() < deadline, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&read_for(
            &mut mon,
            Duration::from_millis(50),
        )));
    }
    let order: Vec<usize> = ["\"multi\"", "\"SET\" \"intx\"", "\"exec\""]
        .iter()
        .map(|w| seen.find(w).unwrap_or_else(|| panic!("{w} in {seen}")))
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{seen}");
}

#[test]
fn reset_returns_a_connection_to_its_first_state() {
    let s = TestServer::start_with(&["--requirepass", "pw"]);
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.write_all(b"HELLO 3 AUTH default pw SETNAME named\r\n")
        .unwrap();
    assert!(!read_for(&mut conn, Duration::from_millis(200)).is_empty());
    conn.write_all(b"MONITOR\r\n").unwrap();
    assert_eq!(read_for(&mut conn, Duration::from_millis(200)), b"+OK\r\n");
    conn.write_all(b"RESET\r\nGET k\r\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_for(&mut conn, Duration::from_millis(300))),
        "+RESET\r\n-NOAUTH Authentication required.\r\n",
        "RESP2 again, not authenticated, no longer monitoring"
    );
    let mut c = s.conn();
    q::<String>(&mut c, &["AUTH", "pw"]);
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert!(
        !list.contains("name=named") && !list.contains("flags=O"),
        "{list}"
    );
    assert!(
        read_for(&mut conn, Duration::from_millis(200)).is_empty(),
        "no MONITOR feed after RESET"
    );
}

#[test]
fn debug_sleep_does_not_block_other_clients() {
    let s = TestServer::start_with(&["--workers", "1"]);
    let mut sleeper = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sleeper.write_all(b"DEBUG SLEEP 0.5\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(
        read_for(&mut sleeper, Duration::from_millis(700)),
        b"+OK\r\n"
    );
}

#[test]
fn quit_closes_and_shutdown_stops_the_server() {
    let mut s = TestServer::start();
    assert_eq!(s.raw(b"QUIT\r\nPING\r\n"), b"+OK\r\n");
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v"]);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    assert!(s.wait_exit().success());
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let s = TestServer::start_with(&["--timeout", "1"]);
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    conn.write_all(b"PING\r\n").ok();
    assert!(read_for(&mut conn, Duration::from_millis(200)).is_empty());
}

#[test]
fn maxclients_refuses_extra_connections() {
    let s = TestServer::start_with(&["--maxclients", "1"]);
    // The start-up probe's connection may take a moment to be unregistered.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut first = loop {
        if let Ok(mut c) = s.client().get_connection() {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                break c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "could not connect the first client"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(q::<String>(&mut first, &["PING"]), "PONG");
    let mut second = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    assert_eq!(
        read_for(&mut second, Duration::from_millis(200)),
        b"-ERR max number of clients reached\r\n"
    );
}

#[test]
fn redis_cli_works_unchanged() {
    let s = TestServer::start();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .arg("-p")
            .arg(s.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli is installed by the test command (scripts/test)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(run(&["SET", "cli", "hello world"]), "OK");
    assert_eq!(run(&["GET", "cli"]), "hello world");
    assert_eq!(run(&["INCR", "n"]), "1");
    assert_eq!(run(&["DBSIZE"]), "2");
    assert!(run(&["INFO", "server"]).contains("redis_version:"));
}

/// INFO errorstats counts error replies by code, scripts' error replies included.
#[test]
fn errorstats_count_error_replies_by_code() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "str", "x"]);
    let _ = err(&mut c, &["LPUSH", "str", "a"]);
    let _ = err(&mut c, &["NOSUCHCOMMAND"]);
    let _ = err(
        &mut c,
        &["EVAL", "return redis.error_reply('MY_CODE custom')", "0"],
    );
    let info: String = q(&mut c, &["INFO", "errorstats"]);
    assert!(info.contains("errorstat_WRONGTYPE:count=1"), "{info}");
    assert!(info.contains("errorstat_ERR:count=1"), "{info}");
    assert!(info.contains("errorstat_MY_CODE:count=1"), "{info}");
    let stats: String = q(&mut c, &["INFO", "stats"]);
    assert!(stats.contains("total_error_replies:3"), "{stats}");
    let _: () = q(&mut c, &["CONFIG", "RESETSTAT"]);
    let info: String = q(&mut c, &["INFO", "errorstats"]);
    assert!(!info.contains("errorstat_"));
}

/// CLIENT REPLY OFF silences replies until ON (which answers OK), SKIP silences the next
/// command's, a blocked command's late reply is silenced too, and subscriptions and messages
/// still arrive, as in Redis.
#[test]
fn client_reply_off_skip_and_on() {
    let s = TestServer::start();
    // Sends `req` and reads until `expected` has had time to arrive (then a little more, so
    // that an unexpected extra reply shows).
    let exchange = |req: &[u8], expected: &str| {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        std::io::Write::write_all(&mut c, req).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < expected.len() && std::time::Instant::now() < deadline {
            got.extend(common::read_for(
                &mut c,
                std::time::Duration::from_millis(50),
            ));
        }
        got.extend(common::read_for(
            &mut c,
            std::time::Duration::from_millis(100),
        ));
        assert_eq!(String::from_utf8_lossy(&got), expected);
    };
    exchange(
        b"CLIENT REPLY OFF\r\nSET a 1\r\nGET a\r\nCLIENT REPLY ON\r\nGET a\r\n\
          CLIENT REPLY SKIP\r\nGET a\r\nGET a\r\n\
          CLIENT REPLY OFF\r\nBLPOP none 0.1\r\nCLIENT REPLY ON\r\nPING\r\n",
        "+OK\r\n$1\r\n1\r\n$1\r\n1\r\n+OK\r\n+PONG\r\n",
    );
    exchange(b"CLIENT REPLY MAYBE\r\n", "-ERR syntax error\r\n");
    // SKIP while OFF changes nothing; ON right after SKIP still answers.
    exchange(
        b"CLIENT REPLY OFF\r\nCLIENT REPLY SKIP\r\nPING\r\nPING\r\nCLIENT REPLY ON\r\n\
          CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING\r\n",
        "+OK\r\n+OK\r\n+PONG\r\n",
    );
    exchange(
        b"CLIENT REPLY OFF\r\nSUBSCRIBE ch\r\nPING\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
}
