//! Operating quarry: persistence across restarts and crashes, the data-directory lock, config
//! files (including a Kvrocks one), physical expiry by compaction, and per-key atomicity.

mod common;
use std::path::Path;
use std::process::Command;

use common::{binary, q, TestServer};
use quarry_storage::{ColumnFamily, Engine, EngineOptions};

#[test]
fn data_survives_a_clean_restart() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v"]);
    q::<String>(&mut c, &["SET", "t", "v", "EX", "1000"]);
    assert!(s.stop().success(), "SIGTERM exits cleanly");
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    assert!(q::<i64>(&mut c, &["TTL", "t"]) > 990);
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    for i in 0..500 {
        q::<String>(&mut c, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    q::<i64>(&mut c, &["INCRBY", "counter", "41"]);
    q::<i64>(&mut c, &["INCR", "counter"]);
    s.kill9();
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 501);
    assert_eq!(q::<String>(&mut c, &["GET", "k499"]), "499");
    assert_eq!(q::<i64>(&mut c, &["GET", "counter"]), 42);
}

#[test]
fn pipelined_writes_survive_kill_9_once_acknowledged() {
    // A pipeline's writes are committed as groups; no reply may go out before its group's
    // WAL record is in the WAL file.
    let mut s = TestServer::start();
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        p.cmd("INCR").arg("n").ignore();
    }
    p.query::<()>(&mut c).unwrap();
    s.kill9();
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "n"]), 2000);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 2001);
    assert_eq!(q::<String>(&mut c, &["GET", "p1999"]), "1999");
}

#[test]
fn fsync_mode_starts_and_persists() {
    let mut s = TestServer::start_with(&["--rocksdb.write_options.sync", "yes"]);
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v"]);
    s.kill9();
    s.restart();
    assert_eq!(q::<String>(&mut s.conn(), &["GET", "k"]), "v");
}

#[test]
fn a_second_process_on_the_same_dir_is_refused() {
    let s = TestServer::start();
    let out = Command::new(binary())
        .args(["--port", "65001", "--dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use by another process"), "{err}");
}

fn start_fails(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "should not start: {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_config_stops_start_up_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("q.conf");
    std::fs::write(&conf, "port 6666\n\n# comment\nworkers lots\n").unwrap();
    let err = start_fails(&["-c", conf.to_str().unwrap()]);
    assert!(
        err.contains("q.conf:4:") && err.contains("workers"),
        "{err}"
    );
    std::fs::write(&conf, "port 6666\nnot-a-directive yes\n").unwrap();
    let err = start_fails(&["-c", conf.to_str().unwrap()]);
    assert!(
        err.contains("q.conf:2:") && err.contains("not-a-directive"),
        "{err}"
    );
    let err = start_fails(&["--port", "99999"]);
    assert!(err.contains("--port"), "{err}");
}

#[test]
fn version_and_help_flags() {
    let out = Command::new(binary()).arg("-v").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("quarry "));
    let out = Command::new(binary()).arg("-h").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: quarry"));
}

#[test]
fn a_kvrocks_config_file_starts_quarry_and_a_meaningless_directive_is_named_with_its_reason() {
    let fixture = Path::new(&common::manifest_dir())
        .join("../../tests/fixtures/kvrocks-2.10-active-directives.conf");
    // One directive that cannot mean anything in quarry, given on top of the file.
    let s = TestServer::start_with(&[
        "-c",
        fixture.to_str().unwrap(),
        "--auto-resize-block-and-sst",
        "no",
    ]);
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "maxclients"]);
    assert_eq!(v[1], "10000", "the file's value took effect");
    let log = std::fs::read_to_string(s.data_dir().join("log/quarry.log")).unwrap();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    // Every directive Kvrocks 2.10's sample file sets takes effect; only the one added is named.
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains(
            "auto-resize-block-and-sst no is accepted but cannot mean anything in quarry: Kvrocks 2.10 does not act on it either"
        ),
        "{}",
        warnings[0]
    );
}

fn raw_metadata_records(dir: &Path) -> usize {
    let engine = Engine::open(&EngineOptions::new(dir)).unwrap();
    engine
        .db()
        .iterator_cf(
            engine.cf(ColumnFamily::Metadata),
            quarry_storage::rocksdb::IteratorMode::Start,
        )
        .count()
}

#[test]
fn compaction_removes_expired_keys_from_disk() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    for i in 0..10 {
        q::<String>(&mut c, &["SET", &format!("live{i}"), "v"]);
        q::<String>(&mut c, &["SET", &format!("dying{i}"), "v", "PX", "50"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 10);
    assert!(s.stop().success());
    assert_eq!(
        raw_metadata_records(s.data_dir()),
        20,
        "expired keys stay on disk until compaction"
    );
    s.restart();
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["COMPACT"]), "OK");
    assert!(s.stop().success());
    assert_eq!(
        raw_metadata_records(s.data_dir()),
        10,
        "compaction filter dropped the expired ones"
    );
}

#[test]
fn concurrent_incr_is_atomic_per_key() {
    let s = TestServer::start();
    let clients = 50;
    let per_client = 10_000;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let client = s.client();
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                // Pipelined in groups of 100 so that the test is fast; each INCR is still its
                // own command, racing with the other 49 clients.
                for _ in 0..per_client / 100 {
                    let mut p = redis::pipe();
                    for _ in 0..100 {
                        p.cmd("INCR").arg("counter").ignore();
                    }
                    p.query::<()>(&mut c).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(
        q::<i64>(&mut c, &["GET", "counter"]),
        (clients * per_client) as i64
    );
}

#[test]
fn concurrent_append_and_setrange_lose_nothing() {
    let s = TestServer::start();
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let client = s.client();
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                for _ in 0..200 {
                    q::<i64>(&mut c, &["APPEND", "log", "x"]);
                    q::<i64>(&mut c, &["SETRANGE", "grid", &(t * 10).to_string(), "y"]);
                    q::<f64>(&mut c, &["INCRBYFLOAT", "f", "0.5"]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "log"]), 2000);
    let grid: Vec<u8> = q(&mut c, &["GET", "grid"]);
    assert_eq!(grid.iter().filter(|&&b| b == b'y').count(), 10);
    assert_eq!(q::<String>(&mut c, &["GET", "f"]), "1000");
}

#[test]
fn rename_command_and_pidfile_take_effect() {
    let pid_dir = tempfile::tempdir().unwrap();
    let pidfile = pid_dir.path().join("quarry.pid");
    let mut s = TestServer::start_with(&[
        "--rename-command",
        "KEYS secretkeys",
        "--rename-command",
        "FLUSHALL \"\"",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert!(common::err(&mut c, &["KEYS", "*"]).starts_with("ERR unknown command 'KEYS'"));
    assert!(common::err(&mut c, &["FLUSHALL"]).starts_with("ERR unknown command 'FLUSHALL'"));
    assert_eq!(q::<Vec<String>>(&mut c, &["SECRETKEYS", "*"]), vec!["k"]);
    let written: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, s.pid());
    assert!(s.stop().success());
    assert!(!pidfile.exists(), "removed at shutdown");
}

#[test]
fn daemonize_runs_in_the_background_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let pidfile = dir.path().join("quarry.pid");
    let status = std::process::Command::new(common::binary())
        .args(["--daemonize", "yes", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(dir.path().join("log"))
        .arg("--pidfile")
        .arg(&pidfile)
        .status()
        .unwrap();
    // The foreground process returns at once; the daemon serves.
    assert!(status.success());
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    common::wait_until(
        20,
        || client.get_connection().is_ok() && pidfile.exists(),
        || "the daemon did not come up".into(),
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, std::process::id());
    let mut c = client.get_connection().unwrap();
    let _: () = common::q(&mut c, &["SET", "k", "v"]);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    common::wait_until(
        20,
        || !pidfile.exists(),
        || "the daemon did not remove its pidfile".into(),
    );
    let log = std::fs::read_to_string(dir.path().join("log/quarry.log")).unwrap();
    assert!(log.contains("quarry stopped"), "{log}");
}

#[test]
fn the_log_file_is_rotated_and_old_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir_all(&logs).unwrap();
    // A log past the limit, and a rotated one from three days ago.
    std::fs::write(logs.join("quarry.log"), vec![b'x'; 2 * 1024 * 1024]).unwrap();
    let old = logs.join("quarry.log.20200101-000000");
    std::fs::write(&old, b"old\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400))
        .unwrap();
    let port = common::free_port();
    let mut child = std::process::Command::new(binary())
        .args(["--port", &port.to_string(), "--log-max-size-mb", "1"])
        .args(["--log-retention-days", "1"])
        .arg("--dir")
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(&logs)
        .spawn()
        .unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    common::wait_until(
        20,
        || client.get_connection().is_ok(),
        || "quarry did not start".into(),
    );
    assert!(!old.exists(), "a log older than log-retention-days stays");
    let rotated: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("quarry.log."))
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(
        std::fs::metadata(logs.join(&rotated[0])).unwrap().len(),
        2 * 1024 * 1024
    );
    let current = std::fs::read_to_string(logs.join("quarry.log")).unwrap();
    assert!(current.contains("listening"), "{current}");
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut client.get_connection().unwrap());
    let _ = child.wait();
}

#[test]
fn supervised_systemd_is_told_when_the_server_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let port = common::free_port();
    let mut child = Command::new(binary())
        .args(["--port", &port.to_string(), "--supervised", "systemd"])
        .arg("--dir")
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(dir.path().join("log"))
        .env("NOTIFY_SOCKET", &sock_path)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("READY from quarry");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means serving.
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = q(&mut c, &["PING"]);
    assert_eq!(pong, "PONG");
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    let _ = child.wait();
}

/// The state letter of a process, from /proc/<pid>/stat ('T' = stopped).
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

#[test]
fn supervised_upstart_stops_itself_when_ready_and_serves_once_continued() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new(binary())
        .args(["--port", &port.to_string(), "--supervised", "auto"])
        .arg("--dir")
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(dir.path().join("log"))
        .env("UPSTART_JOB", "quarry")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while process_state(child.id()) != 'T' {
        assert!(
            std::time::Instant::now() < deadline,
            "quarry never stopped itself for upstart"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Stopped after binding: upstart now continues it, and it serves.
    let resumed = Command::new("kill")
        .args(["-CONT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(resumed.success());
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = q(&mut c, &["PING"]);
    assert_eq!(pong, "PONG");
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    let _ = child.wait();
}

#[test]
fn kvrocks_sample_config_with_every_setting_changed_leaves_nothing_without_effect() {
    let fixture = Path::new(&common::manifest_dir())
        .join("../../tests/fixtures/kvrocks-2.10-every-setting-changed.conf");
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    // The file says daemonize yes: the process we start returns once the daemon runs.
    let status = Command::new(binary())
        .arg("-c")
        .arg(&fixture)
        .args(["--port", &port.to_string()])
        .arg("--dir")
        .arg(dir.path().join("data"))
        .arg("--log-dir")
        .arg(dir.path().join("log"))
        .status()
        .unwrap();
    assert!(status.success());
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = None;
    common::wait_until(
        30,
        || {
            conn = client.get_connection().ok();
            conn.is_some()
        },
        || "the daemon does not answer".into(),
    );
    let mut c = conn.unwrap();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    // A few of the changed settings, as CONFIG GET reports them.
    for (name, want) in [
        ("json-storage-format", "cbor"),
        ("txn-context-enabled", "yes"),
        ("redis-cursor-compatible", "no"),
        ("migrate-type", "raw-key-value"),
    ] {
        let v: Vec<String> = q(&mut c, &["CONFIG", "GET", name]);
        assert_eq!(v[1], want, "{name}");
    }
    // Warnings about the configuration: only the two directives that cannot mean anything.
    let log = std::fs::read_to_string(dir.path().join("log/quarry.log")).unwrap();
    let meaningless: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot mean anything in quarry"))
        .collect();
    assert_eq!(meaningless.len(), 2, "{log}");
    assert!(meaningless.iter().any(|l| l.contains("slave-read-only no")));
    assert!(meaningless
        .iter()
        .any(|l| l.contains("master-use-repl-port yes")));
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    common::wait_until(
        30,
        || client.get_connection().is_err(),
        || "the daemon did not stop".into(),
    );
}
