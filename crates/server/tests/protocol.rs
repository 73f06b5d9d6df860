//! The wire: pipelining, inline commands, RESP3, big bulks and protocol errors, in raw bytes.

mod common;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{read_for, TestServer};

#[test]
fn pipelined_requests_get_replies_in_order() {
    let s = TestServer::start();
    let mut req = Vec::new();
    for i in 0..100 {
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$2\r\nk{}\r\n$1\r\n{}\r\n",
                i % 10,
                i % 10
            )
            .as_bytes(),
        );
        req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$2\r\nk{}\r\n", i % 10).as_bytes());
    }
    let reply = s.raw(&req);
    let mut expected = Vec::new();
    for i in 0..100 {
        expected.extend_from_slice(format!("+OK\r\n$1\r\n{}\r\n", i % 10).as_bytes());
    }
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn requests_split_across_reads_are_reassembled() {
    let s = TestServer::start();
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let req = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    for chunk in req.chunks(3) {
        conn.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        read_for(&mut conn, Duration::from_millis(300)),
        b"+OK\r\n$5\r\nvalue\r\n"
    );
}

#[test]
fn inline_commands_work_like_telnet() {
    let s = TestServer::start();
    assert_eq!(
        s.raw(b"PING\r\nset k \"a b\"\r\nget k\r\n\r\necho 'x y'\n"),
        b"+PONG\r\n+OK\r\n$3\r\na b\r\n$3\r\nx y\r\n"
    );
}

#[test]
fn protocol_errors_close_only_that_connection() {
    let s = TestServer::start();
    let cases: [(&[u8], &str); 5] = [
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$999999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"set \"a\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (req, want) in cases {
        let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        conn.write_all(req).unwrap();
        conn.write_all(b"*1\r\n$4\r\nPING\r\n").ok();
        let got = read_for(&mut conn, Duration::from_millis(300));
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "nothing after the error: the connection is closed"
        );
    }
    // The server goes on.
    assert_eq!(s.raw(b"PING\r\n"), b"+PONG\r\n");
}

#[test]
fn proto_max_bulk_len_is_enforced() {
    let s = TestServer::start_with(&["--proto-max-bulk-len", "1048576"]);
    // The header alone is refused: the server answers before any of the payload arrives (and
    // closes, so a client still sending the payload would see a reset).
    let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n";
    assert_eq!(s.raw(req), b"-ERR Protocol error: invalid bulk length\r\n");
    let mut ok = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
    ok.extend_from_slice(&vec![b'x'; 1048576]);
    ok.extend_from_slice(b"\r\n");
    assert_eq!(s.raw(&ok), b"+OK\r\n", "exactly the limit is accepted");
}

#[test]
fn unknown_commands_and_arity_errors_use_redis_texts() {
    let s = TestServer::start();
    assert_eq!(
        s.raw(b"*3\r\n$6\r\nFOOBAR\r\n$1\r\na\r\n$1\r\nb\r\n"),
        b"-ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        s.raw(b"*1\r\n$3\r\nGET\r\n"),
        b"-ERR wrong number of arguments for 'get' command\r\n"
    );
}

#[test]
fn hello_switches_between_resp2_and_resp3() {
    let s = TestServer::start();
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.write_all(b"HELLO 3\r\n").unwrap();
    let hello =
        String::from_utf8_lossy(&read_for(&mut conn, Duration::from_millis(200))).into_owned();
    assert!(
        hello.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{hello}"
    );
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"));
    conn.write_all(b"GET nokey\r\nCONFIG GET port\r\nHELLO 2\r\nGET nokey\r\n")
        .unwrap();
    let got =
        String::from_utf8_lossy(&read_for(&mut conn, Duration::from_millis(200))).into_owned();
    assert!(got.starts_with("_\r\n%1\r\n$4\r\nport\r\n$"), "{got}");
    assert!(got.ends_with("$-1\r\n"), "{got}");
    assert_eq!(
        s.raw(b"HELLO 4\r\n"),
        b"-NOPROTO unsupported protocol version\r\n"
    );
}

#[test]
fn hello_can_authenticate_and_name_the_client() {
    let s = TestServer::start_with(&["--requirepass", "secret"]);
    let out = String::from_utf8_lossy(
        &s.raw(b"HELLO 2 AUTH default secret SETNAME app\r\nCLIENT GETNAME\r\n"),
    )
    .into_owned();
    assert!(out.starts_with("*14\r\n"), "{out}");
    assert!(out.ends_with("$3\r\napp\r\n"), "{out}");
    let out = String::from_utf8_lossy(&s.raw(b"HELLO 2 AUTH default wrong\r\n")).into_owned();
    assert_eq!(
        out,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
}

#[test]
fn a_request_with_200k_arguments_is_parsed_and_executed() {
    let s = TestServer::start();
    let mut c = s.conn();
    let mut cmd = redis::cmd("MSET");
    for i in 0..100_000 {
        cmd.arg(format!("k{i}")).arg(i);
    }
    let started = std::time::Instant::now();
    cmd.query::<()>(&mut c).unwrap();
    eprintln!("MSET of 100,000 pairs took {:?}", started.elapsed());
    assert_eq!(common::q::<i64>(&mut c, &["DBSIZE"]), 100_000);
    assert_eq!(common::q::<i64>(&mut c, &["GET", "k99999"]), 99_999);
}
