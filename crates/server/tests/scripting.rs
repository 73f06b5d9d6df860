//! EVAL, SCRIPT, FUNCTION and FCALL through the real binary.

mod common;
use std::time::{Duration, Instant};

use common::{err, q, wait_until, TestServer};

#[test]
fn replies_convert_both_ways_and_scripts_see_keys_and_argv() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(
        q::<String>(&mut c, &["EVAL", "return 'hello'", "0"]),
        "hello"
    );
    assert_eq!(q::<i64>(&mut c, &["EVAL", "return 100.5", "0"]), 100);
    assert_eq!(q::<i64>(&mut c, &["EVAL", "return true", "0"]), 1);
    assert_eq!(
        q::<Option<String>>(&mut c, &["EVAL", "return false", "0"]),
        None
    );
    assert_eq!(
        q::<String>(&mut c, &["EVAL", "return {ok='fine'}", "0"]),
        "fine"
    );
    assert_eq!(
        err(&mut c, &["EVAL", "return {err='MY_CODE custom'}", "0"]),
        "MY_CODE custom"
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &[
                "EVAL",
                "return {KEYS[1],KEYS[2],ARGV[1]}",
                "2",
                "a",
                "b",
                "c"
            ]
        ),
        ["a", "b", "c"]
    );
    let _: () = q(&mut c, &["SET", "k", "v"]);
    // Replies of commands as Lua sees them.
    let typed: Vec<String> = q(
        &mut c,
        &[
            "EVAL",
            "local s = redis.call('set', KEYS[1], 'x'); local n = redis.call('strlen', KEYS[1]); \
             local missing = redis.call('get', 'nope'); local e = redis.pcall('incr', KEYS[1]); \
             return {type(s), s['ok'], type(n), type(missing), e['err']}",
            "1",
            "k",
        ],
    );
    assert_eq!(
        typed,
        [
            "table",
            "OK",
            "number",
            "boolean",
            "ERR value is not an integer or out of range"
        ]
    );
    // A script reads its own writes.
    assert_eq!(
        q::<String>(
            &mut c,
            &[
                "EVAL",
                "redis.call('set', KEYS[1], 'mine'); return redis.call('get', KEYS[1])",
                "1",
                "own"
            ]
        ),
        "mine"
    );
    assert_eq!(
        q::<String>(
            &mut c,
            &["EVAL", "return redis.sha1hex('Pizza & Mandolino')", "0"]
        ),
        "74822d82031af7493c20eefa13bd07ec4fada82f"
    );
}

#[test]
fn errors_sandbox_and_refused_commands() {
    let s = TestServer::start();
    let mut c = s.conn();
    let e = err(&mut c, &["EVAL", "return undefined_thing", "0"]);
    assert!(
        e.starts_with("ERR") && e.contains("nonexistent global variable 'undefined_thing'"),
        "{e}"
    );
    assert!(err(&mut c, &["EVAL", "x = 1", "0"]).contains("Attempt to modify a readonly table"));
    assert!(err(&mut c, &["EVAL", "redis.call = nil", "0"]).contains("readonly table"));
    assert!(err(&mut c, &["EVAL", "print('x')", "0"]).contains("'print'"));
    assert!(err(&mut c, &["EVAL", "return os.execute('true')", "0"]).contains("nil value"));
    assert!(err(&mut c, &["EVAL", "return (", "0"]).starts_with("ERR Error compiling script"));
    let _: () = q(&mut c, &["SET", "str", "x"]);
    assert!(err(
        &mut c,
        &[
            "EVAL",
            "return redis.call('lpush', KEYS[1], 'v')",
            "1",
            "str"
        ]
    )
    .starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["EVAL", "return redis.call('nosuch')", "0"])
        .contains("Unknown Redis command called from script"));
    assert!(
        err(&mut c, &["EVAL", "return redis.call('blpop', 'l', 0)", "0"])
            .contains("not allowed from script")
    );
    assert!(err(
        &mut c,
        &["EVAL_RO", "return redis.call('set', 'a', 'b')", "0"]
    )
    .contains("Write commands are not allowed from read-only scripts"));
    assert_eq!(
        err(&mut c, &["EVAL", "return 1", "2", "a"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        err(&mut c, &["EVAL", "return 1", "-1"]),
        "ERR Number of keys can't be negative"
    );
    // A self-referencing table is cut at a depth limit instead of looping.
    let raw = s.raw(b"*3\r\n$4\r\nEVAL\r\n$50\r\nlocal a = {}; local b = {a}; a[1] = b; return a   \r\n$1\r\n0\r\n");
    assert!(String::from_utf8_lossy(&raw).contains("-ERR reached lua stack limit"));
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

#[test]
fn scripts_are_cached_by_sha_and_survive_a_restart() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    let sha: String = q(&mut c, &["SCRIPT", "LOAD", "return ARGV[1] .. '!'"]);
    assert_eq!(sha.len(), 40);
    assert_eq!(q::<String>(&mut c, &["EVALSHA", &sha, "0", "hi"]), "hi!");
    assert_eq!(
        q::<String>(&mut c, &["EVALSHA", &sha.to_uppercase(), "0", "hi"]),
        "hi!"
    );
    assert_eq!(
        q::<Vec<i64>>(
            &mut c,
            &[
                "SCRIPT",
                "EXISTS",
                &sha,
                "ffffffffffffffffffffffffffffffffffffffff"
            ]
        ),
        [1, 0]
    );
    assert_eq!(
        err(
            &mut c,
            &["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]
        ),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    drop(c);
    s.stop();
    s.restart();
    let mut c = s.conn();
    assert_eq!(
        q::<String>(&mut c, &["EVALSHA", &sha, "0", "again"]),
        "again!"
    );
    let _: () = q(&mut c, &["SCRIPT", "FLUSH"]);
    assert!(err(&mut c, &["EVALSHA", &sha, "0"]).starts_with("NOSCRIPT"));
}

/// A script's writes are one WriteBatch: other clients never see part of them.
#[test]
fn other_clients_never_see_half_a_script() {
    let s = TestServer::start();
    let reader = common::PairWatcher::start(s.client(), "a script");
    let mut c = s.conn();
    for _ in 0..1000 {
        let _: i64 = q(
            &mut c,
            &[
                "EVAL",
                "redis.call('incr', KEYS[1]); return redis.call('incr', KEYS[2])",
                "2",
                "a",
                "b",
            ],
        );
    }
    reader.stop();
    assert_eq!(q::<i64>(&mut c, &["GET", "b"]), 1000);
}

#[test]
fn a_runaway_script_makes_others_busy_and_script_kill_stops_it() {
    let s = TestServer::start_with(&["--lua-time-limit", "100"]);
    let client = s.client();
    let runner = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        redis::cmd("EVAL")
            .arg("local i = 0 while true do i = i + 1 end")
            .arg(0)
            .query::<String>(&mut c)
            .unwrap_err()
            .to_string()
    });
    let mut c = s.conn();
    wait_until(
        10,
        || redis::cmd("PING").query::<String>(&mut c).is_err(),
        || "the script never made others BUSY".into(),
    );
    assert!(err(&mut c, &["GET", "x"]).starts_with("BUSY"));
    let _: () = q(&mut c, &["SCRIPT", "KILL"]);
    let e = runner.join().unwrap();
    assert!(e.contains("Script killed by user"), "{e}");
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(
        err(&mut c, &["SCRIPT", "KILL"]),
        "NOTBUSY No scripts in execution right now."
    );

    // A script that wrote cannot be killed; it ends by itself.
    let client = s.client();
    let runner = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        redis::cmd("EVAL")
            .arg("redis.call('set', KEYS[1], '1') local t = redis.call('time')[1] + 0 while redis.call('time')[1] - t < 2 do end return 'done'")
            .arg(1)
            .arg("w")
            .query::<String>(&mut c)
    });
    let started = Instant::now();
    wait_until(
        10,
        || redis::cmd("PING").query::<String>(&mut c).is_err(),
        || "the writing script never made others BUSY".into(),
    );
    assert!(err(&mut c, &["SCRIPT", "KILL"]).starts_with("UNKILLABLE"));
    assert_eq!(runner.join().unwrap().unwrap(), "done");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(q::<String>(&mut c, &["GET", "w"]), "1");
}

#[test]
fn functions_load_call_list_dump_and_restore() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    let lib = "#!lua name=mylib\n\
        redis.register_function('echo', function(keys, args) return args[1] end)\n\
        redis.register_function{function_name='getter', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}\n\
        redis.register_function('setter', function(keys, args) return redis.call('set', keys[1], args[1]) end)";
    assert_eq!(q::<String>(&mut c, &["FUNCTION", "LOAD", lib]), "mylib");
    assert_eq!(
        err(&mut c, &["FUNCTION", "LOAD", lib]),
        "ERR Library 'mylib' already exists"
    );
    assert_eq!(
        q::<String>(&mut c, &["FUNCTION", "LOAD", "REPLACE", lib]),
        "mylib"
    );
    assert_eq!(q::<String>(&mut c, &["FCALL", "echo", "0", "hi"]), "hi");
    assert_eq!(
        q::<String>(&mut c, &["FCALL", "setter", "1", "k", "v"]),
        "OK"
    );
    assert_eq!(q::<String>(&mut c, &["FCALL_RO", "getter", "1", "k"]), "v");
    assert!(err(&mut c, &["FCALL_RO", "setter", "1", "k", "v"]).contains("write flag"));
    assert_eq!(
        err(&mut c, &["FCALL", "nosuch", "0"]),
        "ERR Function not found"
    );
    assert_eq!(
        err(&mut c, &["FCALL", "echo", "bad_arg"]),
        "ERR Bad number of keys provided"
    );
    assert_eq!(
        err(&mut c, &["EVAL", "return 1", "bad_arg"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["FUNCTION", "RESTORE", "arg1", "args2", "arg3"]),
        "ERR unknown subcommand or wrong number of arguments for 'RESTORE'. Try FUNCTION HELP."
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "FUNCTION",
                "LOAD",
                "#!lua name=other\nredis.register_function('echo', function() end)"
            ]
        ),
        "ERR Function echo already exists"
    );
    assert_eq!(
        err(
            &mut c,
            &["FUNCTION", "LOAD", "#!lua name=empty\nlocal x = 1"]
        ),
        "ERR No functions registered"
    );
    let list: Vec<redis::Value> = q(&mut c, &["FUNCTION", "LIST"]);
    assert_eq!(list.len(), 1);
    let dump: Vec<u8> = q(&mut c, &["FUNCTION", "DUMP"]);
    let _: () = q(&mut c, &["FUNCTION", "DELETE", "mylib"]);
    assert_eq!(
        err(&mut c, &["FCALL", "echo", "0", "x"]),
        "ERR Function not found"
    );
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&dump)
        .query(&mut c)
        .unwrap();
    assert_eq!(q::<String>(&mut c, &["FCALL", "echo", "0", "back"]), "back");
    // Stored in RocksDB: a restart keeps them.
    drop(c);
    s.stop();
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["FCALL", "echo", "0", "kept"]), "kept");
    let _: () = q(&mut c, &["FUNCTION", "FLUSH"]);
    assert_eq!(
        err(&mut c, &["FCALL", "echo", "0", "x"]),
        "ERR Function not found"
    );
}

#[test]
fn cjson_cmsgpack_and_bit_libraries() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(
        q::<String>(
            &mut c,
            &[
                "EVAL",
                "local t = cjson.decode(ARGV[1]) return t.a .. ',' .. t.b[2]",
                "0",
                r#"{"a":"x","b":[1,2]}"#
            ]
        ),
        "x,2"
    );
    assert_eq!(
        q::<String>(&mut c, &["EVAL", "return cjson.encode({1, 2, 'a/b'})", "0"]),
        r#"[1,2,"a\/b"]"#
    );
    assert_eq!(
        q::<String>(
            &mut c,
            &["EVAL", "local p = cmsgpack.pack({1, 'two', {x=3}}) local t = cmsgpack.unpack(p) return t[2] .. t[3].x", "0"]
        ),
        "two3"
    );
    assert_eq!(
        q::<Vec<i64>>(
            &mut c,
            &["EVAL", "return {bit.band(12, 10), bit.bor(12, 10), bit.lshift(1, 4), bit.tobit(4294967295)}", "0"]
        ),
        [8, 14, 16, -1]
    );
}

/// `struct` packs and unpacks as Redis's lua_struct does (bytes captured from Redis 7.0.15),
/// and a library's error is a string with the script's position, also inside pcall.
#[test]
fn struct_library_and_library_errors() {
    let s = TestServer::start();
    let mut c = s.conn();
    let packed: Vec<u8> = q(
        &mut c,
        &[
            "EVAL",
            "return struct.pack('>HhBbi', 513, -2, 255, -1, 70000)",
            "0",
        ],
    );
    assert_eq!(packed, b"\x02\x01\xff\xfe\xff\xff\x00\x01\x11\x70");
    assert_eq!(
        q::<Vec<redis::Value>>(
            &mut c,
            &[
                "EVAL",
                "return {struct.unpack('<i2c0', ARGV[1])}",
                "0",
                "\x03\x00abc"
            ]
        ),
        vec![
            redis::Value::BulkString(b"abc".to_vec()),
            redis::Value::Int(6)
        ]
    );
    assert_eq!(
        q::<i64>(&mut c, &["EVAL", "return struct.size('!8bd')", "0"]),
        16
    );
    let e = err(&mut c, &["EVAL", "return struct.pack('z', 1)", "0"]);
    assert!(
        e.contains("user_script:1: bad argument #1 to 'pack' (invalid format option 'z')"),
        "{e}"
    );
    let e = err(
        &mut c,
        &["EVAL", "local s = 'x'\nreturn struct.unpack('i', s)", "0"],
    );
    assert!(
        e.contains("user_script:2: bad argument #2 to 'unpack' (data string too short)"),
        "{e}"
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &[
                "EVAL",
                "local ok, e = pcall(function() return cjson.decode('[') end) return {type(e), e}",
                "0"
            ]
        ),
        [
            "string",
            "user_script:1: Expected value but found invalid token at character 1"
        ]
    );
}

/// Hostile inputs to the Lua libraries end in a script error, never in a crashed server.
#[test]
fn deep_or_circular_library_inputs_are_errors() {
    let s = TestServer::start();
    let mut c = s.conn();
    let e = err(
        &mut c,
        &[
            "EVAL",
            "cjson.encode_max_depth(100000) local a = {} a[1] = a return cjson.encode(a)",
            "0",
        ],
    );
    assert!(e.contains("excessive nesting"), "{e}");
    let e = err(
        &mut c,
        &[
            "EVAL",
            "return cmsgpack.unpack(string.rep('\\145', 100000) .. '\\1')",
            "0",
        ],
    );
    assert!(e.contains("nested too deeply"), "{e}");
    let e = err(
        &mut c,
        &["EVAL", "return cjson.decode(string.rep('[', 100000))", "0"],
    );
    assert!(e.starts_with("ERR"), "{e}");
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

/// A script that reads and writes a key it did not declare still runs atomically against
/// other clients: concurrent scripts and plain INCRs on that key lose no update.
#[test]
fn undeclared_keys_in_scripts_lose_no_update() {
    let s = TestServer::start();
    let script =
        "local v = tonumber(redis.call('get', 'c') or '0') redis.call('set', 'c', v + 1) return v";
    let mut threads = Vec::new();
    for t in 0..3 {
        let client = s.client();
        threads.push(std::thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            for _ in 0..300 {
                if t == 2 {
                    let _: i64 = redis::cmd("INCR").arg("c").query(&mut c).unwrap();
                } else {
                    let _: i64 = redis::cmd("EVAL").arg(script).arg(0).query(&mut c).unwrap();
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "c"]), 900);
}

const LOOP_LIBRARY: &str =
    "#!lua name=test\nredis.register_function('test', function() local a = 1 while true do a = a + 1 end end)";

/// Sends `args` on a connection of its own from another thread, and hands back the reply (or
/// error text) when it comes. The connection stays open until then, as a deferred client's.
fn send_deferred(s: &TestServer, args: &[&str]) -> std::thread::JoinHandle<String> {
    let client = s.client();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        let mut cmd = redis::cmd(&args[0]);
        for a in &args[1..] {
            cmd.arg(a);
        }
        match cmd.query::<redis::Value>(&mut c) {
            Ok(v) => format!("{v:?}"),
            Err(e) => common::error_text(&e),
        }
    })
}

fn wait_busy(c: &mut redis::Connection) -> String {
    let mut last = String::new();
    wait_until(
        10,
        || match redis::cmd("PING").query::<String>(c) {
            Ok(_) => false,
            Err(e) => {
                last = common::error_text(&e);
                true
            }
        },
        || "the script never made others BUSY".into(),
    );
    last
}

fn wait_pong(c: &mut redis::Connection) {
    wait_until(
        5,
        || redis::cmd("PING").query::<String>(c).is_ok(),
        || "still BUSY after the KILL".into(),
    );
}

/// Redis' own sequence (unit/functions): a looping function and a looping script, each from a
/// client that keeps its connection, killed one after another. SCRIPT KILL cannot stop a
/// function nor FUNCTION KILL a script, and each says which KILL would; FUNCTION STATS names
/// what runs. Two workers, so that a script that held its worker thread would starve the
/// clients that must send the KILL.
#[test]
fn looping_functions_and_scripts_are_killed_in_turn() {
    let s = TestServer::start_with(&["--workers", "2"]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["CONFIG", "SET", "busy-reply-threshold", "10"]);
    let function_busy =
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
    let script_busy =
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
    for round in 0..3 {
        let _: String = q(&mut c, &["FUNCTION", "LOAD", "REPLACE", LOOP_LIBRARY]);
        let runner = send_deferred(&s, &["FCALL", "test", "0"]);
        assert_eq!(wait_busy(&mut c), function_busy, "round {round}");
        let stats: redis::Value = q(&mut c, &["FUNCTION", "STATS"]);
        let stats = format!("{stats:?}");
        for part in ["\"name\"", "\"test\"", "\"fcall\"", "duration_ms"] {
            assert!(
                stats
                    .to_ascii_lowercase()
                    .contains(&part.to_ascii_lowercase()),
                "{part} in {stats}"
            );
        }
        assert_eq!(err(&mut c, &["SCRIPT", "KILL"]), function_busy);
        let _: () = q(&mut c, &["FUNCTION", "KILL"]);
        wait_pong(&mut c);
        let reply = runner.join().unwrap();
        assert!(reply.contains("Script killed by user"), "{reply}");

        let runner = send_deferred(
            &s,
            &["EVAL", "local a = 1 while true do a = a + 1 end", "0"],
        );
        assert_eq!(wait_busy(&mut c), script_busy);
        assert_eq!(err(&mut c, &["FUNCTION", "KILL"]), script_busy);
        let _: () = q(&mut c, &["SCRIPT", "KILL"]);
        wait_pong(&mut c);
        let reply = runner.join().unwrap();
        assert!(reply.contains("Script killed by user"), "{reply}");
    }
    let stats: redis::Value = q(&mut c, &["FUNCTION", "STATS"]);
    assert!(
        matches!(&stats, redis::Value::Array(v) if v[1] == redis::Value::Nil),
        "nothing runs: {stats:?}"
    );
    let _: () = q(&mut c, &["FUNCTION", "FLUSH"]);
    assert_eq!(
        err(&mut c, &["FUNCTION", "KILL"]),
        "NOTBUSY No scripts in execution right now."
    );
}

/// A client that goes away while its script loops leaves nothing a KILL cannot end.
#[test]
fn a_script_whose_client_disconnected_is_killed() {
    let s = TestServer::start_with(&["--workers", "2", "--lua-time-limit", "10"]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let body = "local a = 1 while true do a = a + 1 end";
    let request = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{body}\r\n$1\r\n0\r\n",
        body.len()
    );
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut c = s.conn();
    wait_busy(&mut c);
    drop(stream);
    let _: () = q(&mut c, &["SCRIPT", "KILL"]);
    wait_pong(&mut c);
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v"]), "OK");
}

/// A script that waits for the keys of a looping one does not hold up the server: with two
/// workers, both scripts' threads are busy, and other clients are still answered (BUSY), can
/// send the KILL, and are served once it took effect; the waiting script then runs.
#[test]
fn a_script_waiting_for_a_looping_ones_keys_blocks_no_other_client() {
    let s = TestServer::start_with(&["--workers", "2", "--lua-time-limit", "2000"]);
    let looping = send_deferred(
        &s,
        &["EVAL", "local a = 1 while true do a = a + 1 end", "1", "k"],
    );
    let mut c = s.conn();
    // The looper holds k's lock once it runs; the waiter then queues behind it, before the
    // looper passes its time limit (after which it would be refused BUSY).
    wait_until(
        10,
        || {
            let stats: redis::Value = q(&mut c, &["FUNCTION", "STATS"]);
            matches!(&stats, redis::Value::Array(v) if v[1] != redis::Value::Nil)
        },
        || "the looping script never started".into(),
    );
    let waiting = send_deferred(
        &s,
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", "k"],
    );
    wait_until(
        10,
        || {
            q::<String>(&mut c, &["CLIENT", "LIST"])
                .matches("cmd=eval")
                .count()
                == 2
        },
        || "the second script never started waiting".into(),
    );
    let mut others = Vec::new();
    for _ in 0..4 {
        let mut o = s.conn();
        others.push(std::thread::spawn(move || wait_busy(&mut o)));
    }
    for o in others {
        assert!(o.join().unwrap().starts_with("BUSY"));
    }
    let _: () = q(&mut c, &["SCRIPT", "KILL"]);
    assert!(looping.join().unwrap().contains("Script killed by user"));
    assert_eq!(waiting.join().unwrap(), "int(1)");
    wait_pong(&mut c);
    assert_eq!(q::<i64>(&mut c, &["GET", "k"]), 1);
}

/// FUNCTION LOAD runs a library's code with Redis 7's rules: a 500 ms limit (a looping library
/// is refused and the server goes on), only the library API in its globals, and
/// redis.register_function only while it loads. Function names are case-insensitive.
#[test]
fn function_load_has_a_time_limit_and_its_own_globals() {
    let s = TestServer::start_with(&["--workers", "2"]);
    let mut c = s.conn();
    let started = Instant::now();
    let e = err(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nlocal a = 1\nwhile 1 do a = a + 1 end",
        ],
    );
    assert!(e.contains("FUNCTION LOAD timeout"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    for (code, missing) in [
        ("return math.random()", "math"),
        ("return redis.call('ping')", "call"),
        ("redis.setresp(3)", "setresp"),
    ] {
        let e = err(
            &mut c,
            &["FUNCTION", "LOAD", &format!("#!lua name=lib\n{code}")],
        );
        assert!(
            e.contains(&format!(
                "Script attempted to access nonexistent global variable '{missing}'"
            )),
            "{code}: {e}"
        );
    }
    let e = err(&mut c, &["FUNCTION", "LOAD", "#!lua name=lib\nx = 1"]);
    assert!(e.contains("Attempt to modify a readonly table"), "{e}");
    let _: String = q(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('Hello', function() return redis.call('ping') end)\n\
             redis.register_function('nested', function() redis.register_function('x', function() end) end)\n\
             redis.register_function('version', function() return redis.REDIS_VERSION end)",
        ],
    );
    assert_eq!(q::<String>(&mut c, &["FCALL", "hello", "0"]), "PONG");
    assert_eq!(q::<String>(&mut c, &["FCALL", "HELLO", "0"]), "PONG");
    assert_eq!(q::<String>(&mut c, &["FCALL", "version", "0"]), "7.0.15");
    let e = err(&mut c, &["FCALL", "nested", "0"]);
    assert!(
        e.contains("attempt to call field 'register_function' (a nil value)"),
        "{e}"
    );
    let e = err(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=other\nredis.register_function('HELLO', function() end)",
        ],
    );
    assert_eq!(e, "ERR Function HELLO already exists");
}
