//! Starts the real `quarry` binary on a free loopback port with its own data directory, and
//! stops it when the test ends.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Environment variables for the next start (a failpoint, for instance).
    env: Vec<(String, String)>,
}

/// A loopback port free at the moment of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_quarry")
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts quarry with extra `--directive value` arguments.
    pub fn start_with(extra: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = TestServer {
            child: None,
            port: 0,
            dir,
            _tmp: Some(tmp),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        s.launch();
        s
    }

    /// Spawns the process on a fresh port and waits until it accepts connections.
    fn launch(&mut self) {
        self.launch_on(None)
    }

    /// Spawns the process (on `fixed`, or a fresh port) and waits until it accepts connections.
    fn launch_on(&mut self, fixed: Option<u16>) {
        if let Err(e) = self.try_launch_on(fixed) {
            panic!("{e}");
        }
    }

    /// Starts again on the same data directory and port; Err if the process dies before it
    /// listens (a failpoint on the start-up path, for instance).
    pub fn try_restart_same_port(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "stop or kill first");
        let port = self.port;
        self.try_launch_on(Some(port))
    }

    fn try_launch_on(&mut self, fixed: Option<u16>) -> Result<(), String> {
        for _ in 0..5 {
            let port = fixed.unwrap_or_else(free_port);
            let log_start =
                std::fs::metadata(self.dir.join("log/quarry.log")).map_or(0, |m| m.len() as usize);
            let mut cmd = Command::new(binary());
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--dir")
                .arg(&self.dir);
            cmd.arg("--log-dir").arg(self.dir.join("log"));
            cmd.args(&self.extra);
            cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn quarry");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if listening(&self.dir.join("log"), log_start, port) {
                    self.child = Some(child);
                    self.port = port;
                    return Ok(());
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken or start-up error: try again below
                }
                assert!(Instant::now() < deadline, "quarry did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !err.contains("listen") {
                return Err(format!("quarry failed to start: {err}"));
            }
            if fixed.is_some() {
                // The port is briefly taken (TIME_WAIT does not block a listener; another
                // test's client port might): try again.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Err("no free port found for quarry".into())
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    /// Sends raw bytes and returns what the server answered within a short time.
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        // A server that closes on a protocol error may reset a long write; read what it said.
        let _ = s.write_all(request);
        read_for(&mut s, Duration::from_millis(300))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        wait_exit(&mut child)
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts again on the same data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        self.launch();
    }

    /// Starts again on the same data directory and the same port (replicas reconnect to it).
    pub fn restart_same_port(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        let port = self.port;
        self.launch_on(Some(port));
    }

    /// Sets the environment of the next start (replacing what was set before).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Replaces the extra arguments used by the next (re)start.
    pub fn set_args(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("log/quarry.log")).unwrap_or_default())
            .to_string()
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_exit(&mut child)
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

/// True once this server's own log says it listens on `port` and the port accepts connections.
/// (Another test's server may hold a port we picked; its log is elsewhere.)
/// Only the log written after byte `from` counts, so that a restart is not fooled by the
/// previous run's lines.
fn listening(log_dir: &Path, from: usize, port: u16) -> bool {
    let log = std::fs::read(log_dir.join("quarry.log")).unwrap_or_default();
    let log = String::from_utf8_lossy(log.get(from..).unwrap_or_default());
    log.contains(&format!("listening address=127.0.0.1:{port}"))
        && TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("quarry did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read_for(s: &mut TcpStream, wait: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    out
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command and returns the reply, for terse assertions.
pub fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A number from one INFO section's `field:value` line; panics if the field is missing.
pub fn info_number(c: &mut redis::Connection, section: &str, field: &str) -> i64 {
    let info: String = q(c, &["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number {field} in INFO {section}: {info}"))
}

/// The database's latest sequence number, as INFO's keyspace section tells it: it moves with
/// every record written.
pub fn latest_sequence(c: &mut redis::Connection) -> i64 {
    info_number(c, "keyspace", "sequence")
}

/// Runs a command that must fail and returns the error text as the server sent it.
pub fn err(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(c) {
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => error_text(&e),
    }
}

/// "CODE detail" as the server wrote it after the `-`.
pub fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// A TCP proxy to a loopback port whose traffic can be cut (bytes dropped, sockets left open,
/// as on a broken network) and restored.
pub struct Proxy {
    pub port: u16,
    pub cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub fn to(target: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        std::thread::spawn(move || {
            for inbound in l.incoming() {
                let Ok(inbound) = inbound else { return };
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if flag.load(Ordering::Acquire) {
                                continue;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut }
    }
}

/// Polls `done` every 20 ms until it holds; fails the test with `why()` after `secs` seconds.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server crate's directory in the checkout the tests run in, read at run time: a test
/// binary built from another checkout of the same sources (a shared build cache) must not
/// read that checkout's files.
#[allow(dead_code)]
pub fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string())
}

/// Reads keys `a` and `b` with MGET in a loop, on its own connection, and asserts that they are
/// always equal: a writer that changes both in one unit (EXEC, a script) must never be seen
/// half done, on the node read or on its replica.
#[allow(dead_code)]
pub struct PairWatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

#[allow(dead_code)]
impl PairWatcher {
    pub fn start(client: redis::Client, what: &'static str) -> PairWatcher {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            let (mut reads, mut written) = (0, 0);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b): (Option<i64>, Option<i64>) =
                    redis::cmd("MGET").arg("a").arg("b").query(&mut c).unwrap();
                assert_eq!(a, b, "a reader saw half {what}");
                reads += 1;
                if a.unwrap_or(0) > 0 {
                    written += 1;
                }
            }
            (reads, written)
        });
        PairWatcher { stop, thread }
    }

    /// Stops reading; returns how many reads there were, and how many saw a write.
    pub fn stop(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A redis-server with no persistence, stopped when dropped.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    /// With extra `--directive value` arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(extra)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed by scripts/setup-deps --test");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: try another
                }
                let up = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .unwrap()
                    .get_connection()
                    .is_ok();
                if up {
                    return Redis { child, port, dir };
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Redis {
    /// Its working directory (where SAVE writes dump.rdb).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
