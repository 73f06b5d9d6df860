//! Pipelined writes share one WriteBatch (crates/server/src/group.rs). Nothing a client can
//! observe changes: replies in order and each as if the commands ran one by one, reads in the
//! pipeline see the writes before them, acknowledged writes survive `kill -9`, watchers and
//! blocked clients see the writes, replicas converge, and overlapping pipelines from many
//! clients neither lose an update nor wait for each other forever.

mod common;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{q, wait_until, TestServer};

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends all `commands` in one write and reads until `expected` bytes of replies came.
fn pipeline(stream: &mut TcpStream, commands: &[Vec<&str>], expected: &[u8]) {
    let mut request = Vec::new();
    for c in commands {
        request.extend_from_slice(&resp(c));
    }
    stream.write_all(&request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "replies so far: {:?}",
            String::from_utf8_lossy(&got)
        );
        if let Ok(n) = stream.read(&mut buf) {
            assert!(n > 0, "connection closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Sends `request` and reads until `lines` reply lines came; none may be an error. For replies
/// checked for shape only (their values depend on other clients).
fn send_expecting_no_error(stream: &mut TcpStream, request: &[u8], lines: usize) {
    stream.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|&&b| b == b'\n').count() < lines {
        let n = stream.read(&mut buf).expect("a reply");
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        !got.split(|&b| b == b'\n').any(|l| l.first() == Some(&b'-')),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_pipeline_answers_as_if_its_commands_ran_one_by_one() {
    let s = TestServer::start();
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    pipeline(
        &mut stream,
        &[
            vec!["SET", "a", "1"],
            vec!["INCR", "a"],
            vec!["INCRBY", "a", "10"],
            vec!["LPUSH", "a", "x"],
            vec!["GET", "a"],
            vec!["RPUSH", "l", "1", "2", "3"],
            vec!["LPOP", "l"],
            vec!["NOSUCHCOMMAND"],
            vec!["SET", "a"],
            vec!["HSET", "h", "f", "v"],
            vec!["HGET", "h", "f"],
            vec!["DEL", "a", "h"],
            vec!["EXISTS", "a", "h", "l"],
        ],
        b"+OK\r\n:2\r\n:12\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
$2\r\n12\r\n:3\r\n$1\r\n1\r\n\
-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: \r\n\
-ERR wrong number of arguments for 'set' command\r\n:1\r\n$1\r\nv\r\n:2\r\n:1\r\n",
    );
    // A long pipeline spans several groups.
    let incrs: Vec<Vec<&str>> = (0..1000).map(|_| vec!["INCR", "n"]).collect();
    let expected: String = (1..=1000).map(|i| format!(":{i}\r\n")).collect();
    pipeline(&mut stream, &incrs, expected.as_bytes());
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "n"]), 1000);
}

/// Every reply that came back is durable: the group's batch was in the WAL before it.
#[test]
fn acknowledged_pipelined_writes_survive_kill9() {
    let mut s = TestServer::start();
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let writes: Vec<Vec<&str>> = (0..500)
        .map(|i| {
            if i % 2 == 0 {
                vec!["INCR", "n"]
            } else {
                vec!["RPUSH", "l", "e"]
            }
        })
        .collect();
    let expected: String = (0..500).map(|i| format!(":{}\r\n", i / 2 + 1)).collect();
    pipeline(&mut stream, &writes, expected.as_bytes());
    drop(stream);
    s.kill9();
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "n"]), 250);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 250);
}

/// A pipelined write whose key another client holds (here a script that loops with the key
/// declared) waits without holding its worker thread: with one worker, the replies it had
/// already earned go out, other clients are served meanwhile, and its writes are done once the
/// key is free.
#[test]
fn a_pipeline_waiting_for_a_held_key_leaves_its_worker_free() {
    let s = TestServer::start_with(&["--workers", "1"]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["CONFIG", "SET", "lua-time-limit", "3000"]);
    let mut script = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    script
        .write_all(&resp(&[
            "EVAL",
            "redis.call('get', KEYS[1]) while true do end",
            "1",
            "k",
        ]))
        .unwrap();
    wait_until(
        20,
        || {
            let stats: redis::Value = q(&mut c, &["FUNCTION", "STATS"]);
            !matches!(&stats, redis::Value::Array(v) if v.get(1) == Some(&redis::Value::Nil))
        },
        || "the script never started".into(),
    );
    // PING is answered before the SETs wait for "k"; its reply is sent before the wait.
    let mut writer = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let mut request = resp(&["PING"]);
    request.extend_from_slice(&resp(&["SET", "k", "1"]));
    request.extend_from_slice(&resp(&["SET", "k", "2"]));
    writer.write_all(&request).unwrap();
    writer
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut pong = [0u8; 7];
    writer.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    // The one worker serves another client while the SETs wait (after the script's time limit
    // the answer is BUSY: an answer all the same).
    let mut other = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    other.write_all(&resp(&["PING"])).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut first = [0u8; 1];
    other.read_exact(&mut first).unwrap();
    assert!(first[0] == b'+' || first[0] == b'-');
    // Once the script is killed, the waiting SETs run.
    wait_until(
        20,
        || redis::cmd("SCRIPT").arg("KILL").query::<()>(&mut c).is_ok(),
        || "SCRIPT KILL never succeeded".into(),
    );
    let mut ok = [0u8; 10];
    writer.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n+OK\r\n");
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "2");
}

/// Pipelines (which wait for a held key without a thread), plain commands and transactions
/// (which wait on their thread) all increment the same two keys: nobody waits forever and no
/// increment is lost.
#[test]
fn pipelines_plain_commands_and_transactions_share_hot_keys() {
    let s = TestServer::start_with(&["--workers", "2"]);
    const ROUNDS: usize = 150;
    let mut threads = Vec::new();
    for t in 0..9 {
        let port = s.port;
        threads.push(std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let (request, replies) = match t % 3 {
                // A pipeline: one group per round.
                0 => {
                    let mut r = Vec::new();
                    for k in ["h1", "h2", "h1", "h2"] {
                        r.extend_from_slice(&resp(&["INCR", k]));
                    }
                    (r, 4)
                }
                // One plain command at a time.
                1 => (resp(&["INCR", "h1"]), 1),
                // A transaction over both keys.
                _ => {
                    let mut r = resp(&["MULTI"]);
                    r.extend_from_slice(&resp(&["INCR", "h2"]));
                    r.extend_from_slice(&resp(&["INCR", "h1"]));
                    r.extend_from_slice(&resp(&["EXEC"]));
                    (r, 6)
                }
            };
            for _ in 0..ROUNDS {
                // Replies are lines; EXEC's is an array header and two integers.
                send_expecting_no_error(&mut stream, &request, replies);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    // Per round: a pipeline adds 2 to each key, a plain client 1 to h1, a transaction 1 to each.
    let rounds = ROUNDS as i64 * 3;
    assert_eq!(q::<i64>(&mut c, &["GET", "h1"]), rounds * (2 + 1 + 1));
    assert_eq!(q::<i64>(&mut c, &["GET", "h2"]), rounds * (2 + 1));
}

/// Clients pipelining increments of the same keys in opposite orders: no update is lost and
/// nobody waits forever (a group never waits for a lock while it holds others).
#[test]
fn overlapping_pipelines_lose_no_update_and_never_deadlock() {
    let s = TestServer::start_with(&["--workers", "2"]);
    let mut threads = Vec::new();
    for t in 0..6 {
        let port = s.port;
        threads.push(std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let order: [&str; 3] = if t % 2 == 0 {
                ["a", "b", "c"]
            } else {
                ["c", "b", "a"]
            };
            for _ in 0..100 {
                let mut cmds: Vec<Vec<&str>> = order.iter().map(|k| vec!["INCR", *k]).collect();
                cmds.push(vec!["MSET", order[0], "0", "m", "1"]);
                cmds.push(vec!["DECR", order[0]]);
                cmds.push(vec!["INCRBY", order[0], "1"]);
                // Replies are checked for shape only: the values depend on the others.
                let mut request = Vec::new();
                for c in &cmds {
                    request.extend_from_slice(&resp(c));
                }
                send_expecting_no_error(&mut stream, &request, cmds.len());
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    // Each round sets its first key to 0 and leaves it at 0 (DECR, INCRBY 1): only the
    // increments of the middle key, which no MSET touches, add up exactly.
    assert_eq!(q::<i64>(&mut c, &["GET", "b"]), 600);
}

#[test]
fn watchers_blocked_clients_and_notifications_see_pipelined_writes() {
    let s = TestServer::start();
    let mut watcher = s.conn();
    let _: () = q(&mut watcher, &["WATCH", "w"]);
    let client = s.client();
    let blocked = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        redis::cmd("BLPOP")
            .arg("queue")
            .arg(10)
            .query::<(String, String)>(&mut c)
            .unwrap()
    });
    let mut c = s.conn();
    wait_until(
        10,
        || q::<String>(&mut c, &["CLIENT", "LIST"]).contains("cmd=blpop"),
        || "BLPOP never blocked".into(),
    );
    let _: () = q(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let mut sub = s.conn();
    let mut pubsub = sub.as_pubsub();
    for event in ["set", "rpush", "sadd"] {
        pubsub.subscribe(format!("__keyevent@0__:{event}")).unwrap();
    }
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    pipeline(
        &mut stream,
        &[
            vec!["SET", "w", "1"],
            vec!["RPUSH", "queue", "job"],
            vec!["SADD", "s", "m"],
        ],
        b"+OK\r\n:1\r\n:1\r\n",
    );
    assert_eq!(blocked.join().unwrap(), ("queue".into(), "job".into()));
    let _: () = q(&mut watcher, &["MULTI"]);
    let _: String = q(&mut watcher, &["SET", "w", "2"]);
    let exec: Option<Vec<String>> = q(&mut watcher, &["EXEC"]);
    assert_eq!(exec, None, "the pipelined SET marked the watcher");
    let mut events = Vec::new();
    while events.len() < 3 {
        let m = pubsub.get_message().unwrap();
        let channel = m.get_channel_name().to_string();
        let key: String = m.get_payload().unwrap();
        events.push(format!("{channel} {key}"));
    }
    assert_eq!(
        events,
        [
            "__keyevent@0__:set w",
            "__keyevent@0__:rpush queue",
            "__keyevent@0__:sadd s"
        ]
    );
}

#[test]
fn pipelined_writes_replicate_and_the_replica_converges() {
    let m = TestServer::start();
    let slaveof = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start_with(&["--slaveof", &slaveof]);
    let mut stream = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    for round in 0..20 {
        let keys: Vec<String> = (0..50)
            .map(|i| format!("k{}", (round * 7 + i) % 60))
            .collect();
        let cmds: Vec<Vec<&str>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| match i % 3 {
                0 => vec!["INCR", k.as_str()],
                1 => vec!["SADD", "set", k.as_str()],
                _ => vec!["HINCRBY", "h", k.as_str(), "2"],
            })
            .collect();
        let mut request = Vec::new();
        for c in &cmds {
            request.extend_from_slice(&resp(c));
        }
        stream.write_all(&request).unwrap();
        let mut got = 0;
        let mut buf = [0u8; 65536];
        while got < cmds.len() {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0);
            got += buf[..n].iter().filter(|&&b| b == b'\n').count();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dm: (String, i64, i64) = q(&mut m.conn(), &["DIGEST"]);
        let dr: Option<(String, i64, i64)> = redis::cmd("DIGEST").query(&mut r.conn()).ok();
        if dr.as_ref() == Some(&dm) {
            break;
        }
        assert!(Instant::now() < deadline, "master {dm:?}, replica {dr:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
