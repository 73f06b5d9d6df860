//! Pub/Sub through the real binary: RESP2 subscribe mode and RESP3 pushes, the exact replies,
//! PUBSUB introspection, clean-up when a subscriber goes away, and a master's PUBLISH reaching
//! its replicas' subscribers without moving a replica's sequence.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{q, read_for, TestServer};

fn conn(s: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", s.port)).unwrap()
}

fn send(c: &mut TcpStream, req: &str) -> String {
    c.write_all(req.as_bytes()).unwrap();
    String::from_utf8_lossy(&read_for(c, Duration::from_millis(150))).to_string()
}

#[test]
fn resp2_subscribe_mode_replies_and_messages() {
    let s = TestServer::start();
    let mut sub = conn(&s);
    assert_eq!(
        send(&mut sub, "SUBSCRIBE a b\r\n"),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
    );
    assert_eq!(
        send(&mut sub, "PSUBSCRIBE h?llo\r\n"),
        "*3\r\n$10\r\npsubscribe\r\n$5\r\nh?llo\r\n:3\r\n"
    );
    assert_eq!(
        send(&mut sub, "GET x\r\n"),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(send(&mut sub, "PING\r\n"), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");

    let mut c = s.conn();
    let n: i64 = q(&mut c, &["PUBLISH", "a", "one"]);
    assert_eq!(n, 1);
    let n: i64 = q(&mut c, &["PUBLISH", "hello", "two"]);
    assert_eq!(n, 1);
    let got = String::from_utf8_lossy(&read_for(&mut sub, Duration::from_millis(200))).to_string();
    assert_eq!(
        got,
        "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\none\r\n*4\r\n$8\r\npmessage\r\n$5\r\nh?llo\r\n$5\r\nhello\r\n$3\r\ntwo\r\n"
    );
    let chans: Vec<String> = q(&mut c, &["PUBSUB", "CHANNELS"]);
    assert_eq!(chans.len(), 2);
    let numsub: Vec<redis::Value> = q(&mut c, &["PUBSUB", "NUMSUB", "a", "zz"]);
    assert_eq!(numsub[1], redis::Value::Int(1));
    assert_eq!(numsub[3], redis::Value::Int(0));
    let numpat: i64 = q(&mut c, &["PUBSUB", "NUMPAT"]);
    assert_eq!(numpat, 1);

    assert_eq!(
        send(&mut sub, "UNSUBSCRIBE a\r\n"),
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n"
    );
    let all = send(&mut sub, "UNSUBSCRIBE\r\n");
    assert_eq!(all, "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n");
    assert_eq!(
        send(&mut sub, "PUNSUBSCRIBE\r\n"),
        "*3\r\n$12\r\npunsubscribe\r\n$5\r\nh?llo\r\n:0\r\n"
    );
    // Out of subscribe mode, commands run again.
    assert_eq!(send(&mut sub, "PING\r\n"), "+PONG\r\n");
    assert_eq!(
        send(&mut sub, "UNSUBSCRIBE\r\n"),
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );

    // A subscriber that goes away is forgotten.
    let mut gone = conn(&s);
    send(&mut gone, "SUBSCRIBE z\r\n");
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let numsub: Vec<redis::Value> = q(&mut c, &["PUBSUB", "NUMSUB", "z"]);
        if numsub[1] == redis::Value::Int(0) {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resp3_pushes_and_commands_while_subscribed() {
    let s = TestServer::start();
    let mut sub = conn(&s);
    let hello = send(&mut sub, "HELLO 3\r\n");
    assert!(hello.starts_with('%'), "{hello}");
    assert_eq!(
        send(&mut sub, "SUBSCRIBE a\r\n"),
        ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    // RESP3 allows any command while subscribed.
    assert_eq!(send(&mut sub, "GET nothing\r\n"), "_\r\n");
    let n: i64 = q(&mut s.conn(), &["PUBLISH", "a", "m"]);
    assert_eq!(n, 1);
    assert_eq!(
        String::from_utf8_lossy(&read_for(&mut sub, Duration::from_millis(200))),
        ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nm\r\n"
    );
    assert_eq!(send(&mut sub, "RESET\r\n"), "+RESET\r\n");
    let n: i64 = q(&mut s.conn(), &["PUBLISH", "a", "m"]);
    assert_eq!(n, 0, "RESET unsubscribed");
}

#[test]
fn a_masters_publish_reaches_its_replicas_subscribers() {
    let m = TestServer::start();
    let slaveof = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start_with(&["--slaveof", &slaveof]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = q(&mut r.conn(), &["INFO", "replication"]);
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut sub = conn(&r);
    send(&mut sub, "SUBSCRIBE news\r\n");
    let n: i64 = q(&mut m.conn(), &["PUBLISH", "news", "from-master"]);
    assert_eq!(n, 0, "nobody listens on the master itself");
    let got = String::from_utf8_lossy(&read_for(&mut sub, Duration::from_millis(1000))).to_string();
    assert_eq!(
        got,
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$11\r\nfrom-master\r\n"
    );
    // A PUBLISH on the replica reaches its own subscribers and writes nothing.
    let seq = |s: &TestServer| -> String {
        let info: String = q(&mut s.conn(), &["INFO", "replication"]);
        info.lines()
            .find(|l| l.starts_with("master_repl_offset:"))
            .unwrap()
            .to_string()
    };
    let before = seq(&r);
    let n: i64 = q(&mut r.conn(), &["PUBLISH", "news", "local"]);
    assert_eq!(n, 1);
    assert_eq!(seq(&r), before);
    assert_eq!(seq(&m), before, "still the master's sequence");
}

/// A pattern subscriber's connection, and what it received but not yet looked at.
struct Sub {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One RESP array of bulk strings at the start of `b`: its items and its length in bytes.
fn parse_array(b: &[u8]) -> Option<(Vec<String>, usize)> {
    let line = |at: usize| -> Option<(&[u8], usize)> {
        let end = b[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&b[at..end], end + 2))
    };
    let (head, mut at) = line(0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut items = Vec::new();
    for _ in 0..n {
        let (h, next) = line(at)?;
        if let Some(len) = h.strip_prefix(b"$") {
            let len: usize = std::str::from_utf8(len).ok()?.parse().ok()?;
            let body = b.get(next..next + len)?;
            items.push(String::from_utf8_lossy(body).into_owned());
            at = next + len + 2;
            if at > b.len() {
                return None;
            }
        } else {
            items.push(String::from_utf8_lossy(&h[1..]).into_owned());
            at = next;
        }
    }
    Some((items, at))
}

impl Sub {
    /// The pmessages received, as "channel message": waits until `n` have come (up to 10 s),
    /// or, for `n` = 0, listens for 300 ms.
    fn take(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now()
            + if n == 0 {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(10)
            };
        let mut out = Vec::new();
        loop {
            while let Some((items, used)) = parse_array(&self.buf) {
                self.buf.drain(..used);
                if items.len() == 4 && items[0] == "pmessage" {
                    out.push(format!("{} {}", items[2], items[3]));
                }
            }
            if (n > 0 && out.len() >= n) || Instant::now() >= deadline {
                return out;
            }
            let more = read_for(&mut self.stream, Duration::from_millis(50));
            self.buf.extend_from_slice(&more);
        }
    }
}

fn expect(sub: &mut Sub, expected: &[&str]) {
    assert_eq!(sub.take(expected.len()), expected);
}

fn subscribe_all(s: &TestServer) -> Sub {
    let mut stream = conn(s);
    send(&mut stream, "PSUBSCRIBE *\r\n");
    Sub {
        stream,
        buf: Vec::new(),
    }
}

/// notify-keyspace-events: keyspace and keyevent messages with Redis' event names, classes
/// that mask them, `new` for created keys, `del` when a command empties a key, and nothing
/// for commands that change nothing. CONFIG GET writes the flags back as Redis does.
#[test]
fn keyspace_notifications_follow_the_classes() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "notify-keyspace-events"]);
    assert_eq!(got, ["notify-keyspace-events", "AKE"]);
    let mut sub = subscribe_all(&s);
    q::<String>(&mut c, &["SET", "foo", "bar", "EX", "100"]);
    expect(
        &mut sub,
        &[
            "__keyspace@0__:foo set",
            "__keyevent@0__:set foo",
            "__keyspace@0__:foo expire",
            "__keyevent@0__:expire foo",
        ],
    );
    // Only keyspace messages, only lists and generic events.
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "Klg"]);
    q::<i64>(&mut c, &["RPUSH", "l", "a", "b"]);
    q::<String>(&mut c, &["SET", "other", "x"]);
    q::<Option<String>>(&mut c, &["LPOP", "l"]);
    q::<Option<String>>(&mut c, &["RPOP", "l"]);
    q::<Option<String>>(&mut c, &["RPOP", "l"]);
    q::<String>(&mut c, &["RENAME", "other", "moved"]);
    q::<i64>(&mut c, &["DEL", "moved", "nokey", "foo"]);
    expect(
        &mut sub,
        &[
            "__keyspace@0__:l rpush",
            "__keyspace@0__:l lpop",
            "__keyspace@0__:l rpop",
            "__keyspace@0__:l del",
            "__keyspace@0__:other rename_from",
            "__keyspace@0__:moved rename_to",
            "__keyspace@0__:moved del",
            "__keyspace@0__:foo del",
        ],
    );
    // Sets, sorted sets and hashes; no event where nothing changed; `new` once per key.
    q::<String>(
        &mut c,
        &["CONFIG", "SET", "notify-keyspace-events", "Eszhn"],
    );
    q::<i64>(&mut c, &["SADD", "s", "a", "b"]);
    q::<i64>(&mut c, &["SADD", "s", "a"]);
    q::<i64>(&mut c, &["SREM", "s", "x"]);
    q::<i64>(&mut c, &["SREM", "s", "a", "b"]);
    q::<i64>(&mut c, &["ZADD", "z", "1", "a"]);
    q::<i64>(&mut c, &["ZADD", "z", "NX", "1", "a"]);
    q::<f64>(&mut c, &["ZINCRBY", "z", "2", "a"]);
    q::<i64>(&mut c, &["HSET", "h", "f", "1"]);
    q::<i64>(&mut c, &["HINCRBY", "h", "f", "1"]);
    q::<i64>(&mut c, &["HDEL", "h", "nofield"]);
    expect(
        &mut sub,
        &[
            "__keyevent@0__:new s",
            "__keyevent@0__:sadd s",
            "__keyevent@0__:srem s",
            "__keyevent@0__:new z",
            "__keyevent@0__:zadd z",
            "__keyevent@0__:zincr z",
            "__keyevent@0__:new h",
            "__keyevent@0__:hset h",
            "__keyevent@0__:hincrby h",
        ],
    );
    // Streams: consumers created by XREADGROUP and XCLAIM, deleted only when they existed.
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "Kt"]);
    q::<String>(&mut c, &["XGROUP", "CREATE", "st", "g", "$", "MKSTREAM"]);
    let id: String = q(&mut c, &["XADD", "st", "1-1", "f", "v"]);
    q::<redis::Value>(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "st", ">"],
    );
    q::<redis::Value>(&mut c, &["XCLAIM", "st", "g", "mike", "0", &id]);
    q::<i64>(&mut c, &["XGROUP", "DELCONSUMER", "st", "g", "lee"]);
    q::<i64>(&mut c, &["XGROUP", "DELCONSUMER", "st", "g", "mike"]);
    expect(
        &mut sub,
        &[
            "__keyspace@0__:st xgroup-create",
            "__keyspace@0__:st xadd",
            "__keyspace@0__:st xgroup-createconsumer",
            "__keyspace@0__:st xgroup-createconsumer",
            "__keyspace@0__:st xgroup-delconsumer",
        ],
    );
    // A blocked pop served by a push, and a script's writes, notify too.
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "El"]);
    let client = s.client();
    let waiter = std::thread::spawn(move || {
        let mut w = client.get_connection().unwrap();
        redis::cmd("BLPOP")
            .arg("q")
            .arg(5)
            .query::<Vec<String>>(&mut w)
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    q::<i64>(
        &mut c,
        &["EVAL", "return redis.call('lpush', KEYS[1], 'x')", "1", "q"],
    );
    assert_eq!(waiter.join().unwrap(), ["q", "x"]);
    expect(
        &mut sub,
        &["__keyevent@0__:lpush q", "__keyevent@0__:lpop q"],
    );
    // Off again: nothing is sent; bad letters are refused.
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", ""]);
    q::<i64>(&mut c, &["LPUSH", "q", "y"]);
    assert!(sub.take(0).is_empty());
    let e: redis::RedisResult<String> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Kq")
        .query(&mut c);
    assert!(e.is_err());
}

/// With the `x` class on, a master removes keys whose time ran out within about 100 ms and
/// sends `expired` for each, as Redis' active expiry does; the removal reaches the WAL.
#[test]
fn expired_events_come_from_active_expiry() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    let mut sub = subscribe_all(&s);
    q::<String>(&mut c, &["PSETEX", "foo", "100", "1"]);
    q::<String>(&mut c, &["SET", "keep", "1"]);
    expect(&mut sub, &["__keyevent@0__:expired foo"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "foo", "keep"]), 1);
    assert!(sub.take(0).is_empty(), "one event per key");
}

/// A blocking move that finds nothing sends no event (while waiting nor on timeout); a
/// transaction's events arrive once it has committed, in order.
#[test]
fn no_events_for_a_blocked_move_and_transactions_send_theirs_at_commit() {
    let s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "Elg"]);
    let mut sub = subscribe_all(&s);
    let r: Option<String> = q(&mut c, &["BLMOVE", "empty", "dst", "LEFT", "RIGHT", "0.2"]);
    assert_eq!(r, None);
    assert!(sub.take(0).is_empty());
    let mut tx = s.conn();
    q::<String>(&mut tx, &["MULTI"]);
    q::<String>(&mut tx, &["RPUSH", "m", "a"]);
    q::<String>(&mut tx, &["LPOP", "m"]);
    assert!(sub.take(0).is_empty(), "nothing while queued");
    q::<redis::Value>(&mut tx, &["EXEC"]);
    expect(
        &mut sub,
        &[
            "__keyevent@0__:rpush m",
            "__keyevent@0__:lpop m",
            "__keyevent@0__:del m",
        ],
    );
}

/// A message published inside a script (or EXEC) reaches subscribers when the writes around
/// it are committed: a subscriber that reads on getting it sees the script's writes.
#[test]
fn a_scripts_publish_is_delivered_after_its_commit() {
    let s = TestServer::start();
    let mut sub = subscribe_all(&s);
    let client = s.client();
    let script = "redis.call('publish', 'ch', 'x') \
                  local t = redis.call('time') local start = t[1] * 1000 + t[2] / 1000 \
                  while true do local n = redis.call('time') \
                    if n[1] * 1000 + n[2] / 1000 - start > 300 then break end end \
                  redis.call('set', KEYS[1], 'v') return 1";
    let runner = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg("k")
            .query::<i64>(&mut c)
            .unwrap()
    });
    expect(&mut sub, &["ch x"]);
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), Some("v".into()));
    assert_eq!(runner.join().unwrap(), 1);
}
