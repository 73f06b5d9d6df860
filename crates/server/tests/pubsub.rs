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
