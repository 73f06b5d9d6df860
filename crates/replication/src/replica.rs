//! The replica side: one link to one master, on its own thread.
//!
//! Each attempt: connect, AUTH, `_db_name`, `REPLCONF listening-port`, then (quarry masters
//! only) `REPLCONF capa batch-digest` and `REPLCONF last-batch`, then PSYNC. `+OK` starts the
//! incremental stream; any other answer starts a full sync from a checkpoint, and the next
//! attempt resumes from the checkpoint's sequence.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quarry_storage::wal::{batch_digest, batch_ending_at, batch_replid, REPLID_LEN};
use quarry_storage::{failpoint, Engine, Role, StorageError};
use tracing::{error, info, warn};

use crate::master::ANCHOR_IN_CHECKPOINT;
use crate::wire::{self, read_line, read_payload};
use crate::Host;

/// Link states, numbered as Kvrocks numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    Connecting = 1,
    SendAuth = 2,
    CheckDbName = 3,
    ReplConf = 4,
    SendPsync = 5,
    FetchMeta = 6,
    FetchSst = 7,
    Connected = 8,
    Error = 9,
    /// Storage refuses the master's batches (a full disk): the link is closed, and the batch
    /// that failed is tried again every second.
    StorageRefused = 10,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        use LinkState::*;
        match v {
            2 => SendAuth,
            3 => CheckDbName,
            4 => ReplConf,
            5 => SendPsync,
            6 => FetchMeta,
            7 => FetchSst,
            8 => Connected,
            9 => Error,
            10 => StorageRefused,
            _ => Connecting,
        }
    }
}

/// What INFO, ROLE and command gating read about the link.
#[derive(Debug, Default)]
pub struct LinkStatus {
    state: AtomicU8,
    /// Milliseconds since the link started, at the last byte from the master.
    last_io_ms: AtomicU64,
    /// The master's sequence when this connection's PSYNC was accepted (0 = unknown).
    catch_up_target: AtomicU64,
    pub full_syncs_requested: AtomicU64,
    pub partial_syncs_ok: AtomicU64,
    pub applied_batches: AtomicU64,
    pub applied_bytes: AtomicU64,
    /// The next connection fetches a full copy instead of a partial sync (the last resort of
    /// verification's self-repair).
    full_sync_wanted: AtomicBool,
}

impl LinkStatus {
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }
    fn set(&self, s: LinkState) {
        self.state.store(s as u8, Ordering::Release);
    }
    /// `master_link_status:up`.
    pub fn is_up(&self) -> bool {
        self.state() == LinkState::Connected
    }
    pub fn sync_in_progress(&self) -> bool {
        matches!(self.state(), LinkState::FetchMeta | LinkState::FetchSst)
    }
    /// Up, and holding at least what the master held when this connection started.
    pub fn caught_up(&self, local_seq: u64) -> bool {
        self.is_up() && local_seq >= self.catch_up_target.load(Ordering::Acquire)
    }
}

/// A running link. Dropping it without `stop` leaves the thread running.
pub struct Link {
    pub host: String,
    pub port: u16,
    pub status: Arc<LinkStatus>,
    started: Instant,
    stop: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    /// The connections a full sync fetches files over, besides `socket`.
    fetchers: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    pub fn start(host_impl: Arc<dyn Host>, host: String, port: u16) -> Link {
        let status = Arc::new(LinkStatus::default());
        status.set(LinkState::Connecting);
        let stop = Arc::new(AtomicBool::new(false));
        let socket = Arc::new(Mutex::new(None));
        let fetchers = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let mut worker = Worker {
            host: host_impl,
            master_host: host.clone(),
            master_port: port,
            status: status.clone(),
            stop: stop.clone(),
            socket: socket.clone(),
            fetchers: fetchers.clone(),
            started,
            quarry_peer: false,
            emptied: false,
        };
        let thread = std::thread::Builder::new()
            .name("repl-link".into())
            .spawn(move || worker.run())
            .ok();
        Link {
            host,
            port,
            status,
            started,
            stop,
            socket,
            fetchers,
            thread,
        }
    }

    /// Seconds since the last byte from the master.
    pub fn last_io_seconds_ago(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.status.last_io_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Stops the thread and waits for it (it never holds the engine for long).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        self.reconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Drops the current connection and fetches a full copy of the master's data on the next
    /// one, whatever PSYNC would allow.
    pub fn force_full_sync(&self) {
        self.status.full_sync_wanted.store(true, Ordering::Release);
        self.reconnect();
    }

    /// Drops the current connection; the link reconnects (CLIENT KILL TYPE master).
    pub fn reconnect(&self) {
        if let Some(s) = self.socket.lock().as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
        for s in self.fetchers.lock().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// How an attempt ended.
enum Next {
    /// Try again after this long.
    Retry(Duration),
    /// A full sync finished: reconnect at once and PSYNC from the checkpoint.
    Again,
    Stopped,
}

struct Worker {
    host: Arc<dyn Host>,
    master_host: String,
    master_port: u16,
    status: Arc<LinkStatus>,
    stop: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    fetchers: Arc<Mutex<Vec<TcpStream>>>,
    started: Instant,
    quarry_peer: bool,
    /// This full sync closed and deleted the database before fetching
    /// (slave-empty-db-before-fullsync): there is no engine until the fetched one opens.
    emptied: bool,
}

/// A read that waits in short slices, so that a stop request and a silent master are noticed.
struct Patient {
    stream: TcpStream,
    stop: Arc<AtomicBool>,
    idle_limit: Duration,
    last_data: Instant,
}

impl Read for Patient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => {
                    self.last_data = Instant::now();
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::Acquire) {
                        return Err(io::Error::new(io::ErrorKind::Interrupted, "link stopped"));
                    }
                    if self.last_data.elapsed() > self.idle_limit {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no data from the master for {}s", self.idle_limit.as_secs()),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The master pings every second (Kvrocks every ~2 s); this much silence means the link is dead.
const IDLE_LIMIT: Duration = Duration::from_secs(6);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// A master may be silent longer while it creates a checkpoint or throttles a file transfer.
const FULL_SYNC_IDLE_LIMIT: Duration = Duration::from_secs(120);

/// Connections a full sync fetches checkpoint files over (Kvrocks uses up to 4).
const FETCH_CONNECTIONS: usize = 4;

/// A full sync's fetch, shared by its fetchers: for the progress log line.
struct Progress {
    bytes: AtomicU64,
    files_done: AtomicU64,
    files_total: u64,
    started: Instant,
    last_log: Mutex<Instant>,
    /// fullsync-recv-file-delay.
    delay: Duration,
}

impl Progress {
    /// At most once a second: files and bytes so far, the rate and the time left.
    fn log(&self, master: &str) {
        let mut last = self.last_log.lock();
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let done = self.files_done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        // File sizes are not known in advance: the files left are guessed at the average
        // size of those done.
        let avg = bytes as f64 / (done as f64 + 1.0);
        let left_bytes = avg * (self.files_total - done) as f64;
        info!(
            master,
            files_done = done,
            files_total = self.files_total,
            mb = format!("{:.1}", bytes as f64 / 1e6),
            mb_per_s = format!("{:.1}", rate / 1e6),
            eta_s = format!("{:.0}", if rate > 0.0 { left_bytes / rate } else { 0.0 }),
            "full sync progress"
        );
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Worker {
    fn run(&mut self) {
        info!(master = %self.addr(), "replication link started");
        loop {
            if self.stopped() {
                break;
            }
            match self.attempt() {
                Next::Stopped => break,
                Next::Again => continue,
                Next::Retry(d) => {
                    if self.status.state() != LinkState::Error {
                        self.status.set(LinkState::Connecting);
                    }
                    let until = Instant::now() + d;
                    while Instant::now() < until && !self.stopped() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        *self.socket.lock() = None;
        info!(master = %self.addr(), "replication link stopped");
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.master_host, self.master_port)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps `d` in short steps, ending early when the link stops.
    fn sleep_unless_stopped(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopped() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
            self.touch();
        }
    }

    fn touch(&self) {
        self.status
            .last_io_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn connect(&self, idle_limit: Duration) -> io::Result<(TcpStream, BufReader<Patient>)> {
        let addr = (self.master_host.as_str(), self.master_port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io_err("the master's address does not resolve"))?;
        let stream = self.host.connect(addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let reader = BufReader::with_capacity(
            256 * 1024,
            Patient {
                stream: stream.try_clone()?,
                stop: self.stop.clone(),
                idle_limit,
                last_data: Instant::now(),
            },
        );
        Ok((stream, reader))
    }

    /// Connects and authenticates the replication connection.
    fn open(&self) -> io::Result<(TcpStream, BufReader<Patient>)> {
        self.open_with(IDLE_LIMIT)
    }

    /// Connects and authenticates one connection that may see `idle_limit` of silence.
    fn open_with(&self, idle_limit: Duration) -> io::Result<(TcpStream, BufReader<Patient>)> {
        let (mut stream, mut reader) = self.connect(idle_limit)?;
        let auth = self.host.settings().masterauth;
        if !auth.is_empty() {
            self.status.set(LinkState::SendAuth);
            wire::send(&mut stream, &[b"AUTH", auth.as_bytes()])?;
            let line = read_line(&mut reader, 1024)?;
            if line != "+OK" {
                return Err(io_err(format!("AUTH to the master failed: {line}")));
            }
        }
        Ok((stream, reader))
    }

    fn attempt(&mut self) -> Next {
        self.status.set(LinkState::Connecting);
        let (mut stream, mut reader) = match self.open() {
            Ok(x) => x,
            Err(e) => {
                if !self.stopped() {
                    warn!(master = %self.addr(), error = %e, "cannot connect to the master");
                }
                return Next::Retry(Duration::from_secs(1));
            }
        };
        *self.socket.lock() = stream.try_clone().ok();
        if self.stopped() {
            return Next::Stopped;
        }
        match self.handshake(&mut stream, &mut reader) {
            Ok(Some(next)) => next,
            Ok(None) => {
                // PSYNC accepted.
                self.status.partial_syncs_ok.fetch_add(1, Ordering::Relaxed);
                self.status.set(LinkState::Connected);
                info!(master = %self.addr(), "replication link up: incremental sync");
                let result = self.stream_batches(&mut stream, &mut reader);
                let _ = stream.shutdown(Shutdown::Both);
                match result {
                    Ok(()) => Next::Stopped,
                    Err(e) => {
                        if self.stopped() {
                            return Next::Stopped;
                        }
                        warn!(master = %self.addr(), error = %e, "replication link down");
                        Next::Retry(Duration::from_secs(1))
                    }
                }
            }
            Err(e) => {
                if self.stopped() {
                    return Next::Stopped;
                }
                warn!(master = %self.addr(), error = %e, "replication handshake failed");
                Next::Retry(Duration::from_secs(1))
            }
        }
    }

    /// Runs the handshake. Ok(None): PSYNC accepted; Ok(Some(next)): what to do instead.
    fn handshake(
        &mut self,
        stream: &mut TcpStream,
        reader: &mut BufReader<Patient>,
    ) -> io::Result<Option<Next>> {
        let settings = self.host.settings();
        self.status.set(LinkState::CheckDbName);
        wire::send(stream, &[b"_db_name"])?;
        let name = read_line(reader, 4096)?;
        if name.starts_with("-LOADING") {
            return Ok(Some(Next::Retry(Duration::from_secs(1))));
        }
        if name != settings.db_name {
            error!(master = %self.addr(), theirs = %name, ours = %settings.db_name, "db-name differs from the master's; retrying in 10 s");
            return Ok(Some(Next::Retry(Duration::from_secs(10))));
        }
        self.status.set(LinkState::ReplConf);
        let port = settings.announce_port.to_string();
        if settings.announce_ip.is_empty() {
            wire::send(stream, &[b"REPLCONF", b"listening-port", port.as_bytes()])?;
        } else {
            wire::send(
                stream,
                &[
                    b"REPLCONF",
                    b"listening-port",
                    port.as_bytes(),
                    b"ip-address",
                    settings.announce_ip.as_bytes(),
                ],
            )?;
        }
        let line = read_line(reader, 1024)?;
        if line.starts_with("-ERR unknown option") && !settings.announce_ip.is_empty() {
            wire::send(stream, &[b"REPLCONF", b"listening-port", port.as_bytes()])?;
            read_line(reader, 1024)?;
        }
        // A quarry master proves history continuity; a Kvrocks master answers `unknown option`.
        wire::send(stream, &[b"REPLCONF", b"capa", b"batch-digest"])?;
        self.quarry_peer = read_line(reader, 1024)? == "+OK";
        if self.quarry_peer {
            // Verification's markers come as notes in the stream; an older quarry master
            // answers `unknown option` and sends none.
            wire::send(stream, &[b"REPLCONF", b"capa", b"notes"])?;
            read_line(reader, 1024)?;
        }

        let Some(engine) = self.host.engine() else {
            return Ok(Some(Next::Retry(Duration::from_secs(1))));
        };
        let latest = engine.latest_sequence();
        let last = last_batch(&engine, &settings.dir, latest);
        self.status.catch_up_target.store(0, Ordering::Release);
        if self.quarry_peer {
            let digest = last.digest.clone().unwrap_or_else(|| "none".into());
            wire::send(
                stream,
                &[
                    b"REPLCONF",
                    b"last-batch",
                    latest.to_string().as_bytes(),
                    digest.as_bytes(),
                ],
            )?;
            let line = read_line(reader, 1024)?;
            // `:<master's latest sequence>`: what "caught up" means for this connection.
            if let Some(seq) = line.strip_prefix(':').and_then(|s| s.parse().ok()) {
                self.status.catch_up_target.store(seq, Ordering::Release);
            }
        }
        if self.status.full_sync_wanted.swap(false, Ordering::AcqRel) {
            drop(engine);
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(Some(
                self.full_sync("verification: repairs did not mend a diverged range"),
            ));
        }
        self.status.set(LinkState::SendPsync);
        let next = (latest + 1).to_string();
        let replid = last.replid.or_else(|| engine.stored_replid());
        drop(engine);
        let reply = match replid.filter(|r| r.len() == REPLID_LEN && settings.use_rsid_psync) {
            Some(id) => {
                wire::send(stream, &[b"PSYNC", id.as_bytes(), next.as_bytes()])?;
                let reply = read_line(reader, 1024)?;
                if reply.starts_with("-ERR wrong number of arguments") {
                    wire::send(stream, &[b"PSYNC", next.as_bytes()])?;
                    read_line(reader, 1024)?
                } else {
                    reply
                }
            }
            None => {
                wire::send(stream, &[b"PSYNC", next.as_bytes()])?;
                read_line(reader, 1024)?
            }
        };
        self.touch();
        if reply == "+OK" {
            return Ok(None);
        }
        if reply.starts_with("-LOADING") {
            return Ok(Some(Next::Retry(Duration::from_secs(1))));
        }
        let reason = reply.trim_start_matches('-').to_string();
        let _ = stream.shutdown(Shutdown::Both);
        Ok(Some(self.full_sync(&reason)))
    }

    fn stream_batches(
        &self,
        stream: &mut TcpStream,
        reader: &mut BufReader<Patient>,
    ) -> io::Result<()> {
        let Some(engine) = self.host.engine() else {
            return Err(io_err("the database is being replaced"));
        };
        loop {
            let head = read_line(reader, 64)?;
            self.touch();
            let len: usize = head
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| io_err(format!("unexpected line from the master: {head:.64}")))?;
            let mut payload = read_payload(reader, len)?;
            if payload.starts_with(crate::master::NOTE_PREFIX) {
                // A note from a quarry master: it marks this place in the stream.
                self.host.on_note(&payload);
                continue;
            }
            if let Some(altered) = self.host.alter_before_apply(&payload) {
                payload = altered;
            }
            if payload != b"ping" {
                match engine.apply_replicated(&payload) {
                    Ok(()) => {}
                    Err(e @ (StorageError::WriteFailed(_) | StorageError::SizeLimit)) => {
                        let _ = stream.shutdown(Shutdown::Both);
                        return self.wait_for_storage(&engine, &payload, e);
                    }
                    Err(e) => {
                        error!(master = %self.addr(), error = %e, "applying a master batch failed");
                        return Err(io_err(e));
                    }
                }
                self.status.applied_batches.fetch_add(1, Ordering::Relaxed);
                self.status
                    .applied_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                self.host.on_applied(&payload);
            }
            // Acknowledge once the burst is applied (each batch is in the WAL file).
            // A heartbeat is acknowledged too: the master learns that this replica is alive
            // and caught up even while nothing is written (min-replicas-max-lag).
            if reader.buffer().is_empty() && self.quarry_peer {
                let seq = engine.latest_sequence().to_string();
                wire::send(stream, &[b"REPLCONF", b"ACK", seq.as_bytes()])?;
            }
            if self.stopped() {
                return Ok(());
            }
        }
    }

    /// Storage refused the master's next batch (a full disk, or `max-db-size`). The link is closed, so that the
    /// master does not stream into a replica that cannot apply, and the same batch (the next
    /// one in sequence, which the failed write did not apply) is tried again every second. Once
    /// it is applied the link reconnects and continues with a partial sync.
    fn wait_for_storage(&self, engine: &Engine, batch: &[u8], e: StorageError) -> io::Result<()> {
        self.status.set(LinkState::StorageRefused);
        warn!(master = %self.addr(), error = %e, "storage refuses the master's batches; link closed until the batch can be applied");
        let before = engine.latest_sequence();
        // Now and then the master is asked again (PSYNC decides where to go on from), in case
        // its WAL moved past this position meanwhile.
        let ask_again = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() >= ask_again {
                return Err(io_err(
                    "storage still refuses the master's batch after 60 s; asking the master again",
                ));
            }
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                if self.stopped() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if engine.latest_sequence() != before {
                // Nothing else writes to a replica; if the sequence moved, reconnect and let
                // PSYNC settle where the stream goes on.
                break;
            }
            match engine.apply_replicated(batch) {
                Ok(()) => {
                    self.status.applied_batches.fetch_add(1, Ordering::Relaxed);
                    self.status
                        .applied_bytes
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.host.on_applied(batch);
                    break;
                }
                Err(StorageError::WriteFailed(_) | StorageError::SizeLimit) => continue,
                Err(e) => return Err(io_err(e)),
            }
        }
        info!(master = %self.addr(), sequence = engine.latest_sequence(), "storage takes the master's batches again; reconnecting for a partial sync");
        Err(io_err("reconnecting after storage recovered"))
    }

    fn full_sync(&mut self, reason: &str) -> Next {
        self.status
            .full_syncs_requested
            .fetch_add(1, Ordering::Relaxed);
        info!(master = %self.addr(), reason, "full sync started");
        let started = Instant::now();
        match self.fetch_checkpoint() {
            Ok((files, bytes)) => {
                if self.stopped() {
                    self.reopen_emptied();
                    return Next::Stopped;
                }
                match self.restore() {
                    Ok(seq) => {
                        let secs = started.elapsed().as_secs_f64();
                        info!(master = %self.addr(), files, bytes, seconds = format!("{secs:.1}"), sequence = seq, "full sync finished");
                        self.host.on_full_sync();
                        Next::Again
                    }
                    Err(e) => {
                        error!(master = %self.addr(), error = %e, "full sync: restoring the checkpoint failed; retrying in 10 s");
                        Next::Retry(Duration::from_secs(10))
                    }
                }
            }
            Err(e) => {
                self.reopen_emptied();
                if self.stopped() {
                    return Next::Stopped;
                }
                warn!(master = %self.addr(), error = %e, "full sync: fetching the checkpoint failed; retrying");
                Next::Retry(Duration::from_secs(1))
            }
        }
    }

    /// After a fetch that failed with the database emptied: opens the (now empty) database
    /// again, as Kvrocks does, so the node serves while it retries.
    fn reopen_emptied(&mut self) {
        if !std::mem::take(&mut self.emptied) {
            return;
        }
        if let Err(e) = self.open_as_replica() {
            error!(error = %e, "cannot open the emptied database again");
        }
    }

    /// Opens the database in `<dir>/db` and serves it as a replica's.
    fn open_as_replica(&self) -> Result<(), String> {
        let engine = self.host.open_engine()?;
        engine.gate().set_role(Role::Replica);
        self.host.install_engine(engine);
        Ok(())
    }

    /// slave-empty-db-before-fullsync: closes the database and deletes it before the fetch.
    /// With no database open (a restore that failed to open anything), there is nothing to
    /// close and the directory goes all the same.
    fn empty_database(&mut self, dir: &Path) -> io::Result<()> {
        if self.host.engine().is_some() {
            let Some(old) = self.host.take_engine() else {
                return Err(io_err("the database is still in use"));
            };
            drop(old);
        }
        self.emptied = true;
        info!(master = %self.addr(), "full sync: deleting the database before fetching (slave-empty-db-before-fullsync)");
        match std::fs::remove_dir_all(dir.join("db")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        quarry_storage::files::sync_dir(dir);
        Ok(())
    }

    /// Downloads the master's checkpoint into `<dir>/sync_checkpoint`, keeping SST files a
    /// previous attempt already fetched from the same master.
    /// Fetches `names` into `dir` over a connection of its own (one of a full sync's parallel
    /// fetchers).
    fn fetch_files(&self, names: &[&str], dir: &Path, progress: &Progress) -> io::Result<()> {
        let (mut stream, mut reader) = self.open_with(FULL_SYNC_IDLE_LIMIT)?;
        if let Ok(clone) = stream.try_clone() {
            self.fetchers.lock().push(clone);
        }
        if self.stopped() {
            return Err(io_err("link stopped"));
        }
        wire::send(&mut stream, &[b"_fetch_file", names.join(",").as_bytes()])?;
        let mut buf = vec![0u8; 256 * 1024];
        for name in names {
            let size: u64 = read_line(&mut reader, 64)?
                .parse()
                .map_err(|_| io_err("bad file size from the master"))?;
            let tmp = dir.join(format!("{name}.tmp"));
            let mut out = std::fs::File::create(&tmp)?;
            let mut left = size;
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io_err("the master closed the connection mid-file"));
                }
                out.write_all(&buf[..n])?;
                left -= n as u64;
                progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
                self.touch();
                progress.log(&self.addr());
                if self.stopped() {
                    return Err(io_err("link stopped"));
                }
            }
            out.sync_all()?;
            std::fs::rename(&tmp, dir.join(name))?;
            progress.files_done.fetch_add(1, Ordering::Relaxed);
            if !progress.delay.is_zero() {
                self.sleep_unless_stopped(progress.delay);
            }
        }
        Ok(())
    }

    fn fetch_checkpoint(&mut self) -> io::Result<(usize, u64)> {
        let settings = self.host.settings();
        self.status.set(LinkState::FetchMeta);
        let (mut stream, mut reader) = self.open_with(FULL_SYNC_IDLE_LIMIT)?;
        *self.socket.lock() = stream.try_clone().ok();
        wire::send(&mut stream, &[b"_fetch_meta"])?;
        let line = read_line(&mut reader, 16 * 1024 * 1024)?;
        if line.starts_with('-') || line.is_empty() {
            return Err(io_err(format!(
                "the master cannot serve a full sync: {line}"
            )));
        }
        drop(stream);
        let files: Vec<String> = line.split(',').map(str::to_string).collect();
        if files.iter().any(|f| f.contains('/') || f.starts_with('.')) {
            return Err(io_err("the master sent a bad file name"));
        }
        let dir = settings.dir.join("sync_checkpoint");
        prepare_sync_dir(&dir, &self.addr(), &files)?;
        if settings.empty_db_before_fullsync {
            self.empty_database(&settings.dir)?;
        }
        let wanted: Vec<&String> = files
            .iter()
            .filter(|f| !(f.ends_with(".sst") && dir.join(f).is_file()))
            .collect();
        info!(master = %self.addr(), files = files.len(), to_fetch = wanted.len(), "full sync: fetching checkpoint files");
        self.status.set(LinkState::FetchSst);
        let mut bytes = 0u64;
        if !wanted.is_empty() {
            // Up to FETCH_CONNECTIONS connections, each with every n-th file, as Kvrocks
            // fetches in parallel.
            let n = FETCH_CONNECTIONS.min(wanted.len());
            let groups: Vec<Vec<&str>> = (0..n)
                .map(|g| {
                    wanted
                        .iter()
                        .skip(g)
                        .step_by(n)
                        .map(|s| s.as_str())
                        .collect()
                })
                .collect();
            let progress = Progress {
                bytes: AtomicU64::new(0),
                files_done: AtomicU64::new(0),
                files_total: wanted.len() as u64,
                delay: settings.recv_file_delay,
                started: Instant::now(),
                last_log: Mutex::new(Instant::now()),
            };
            let this = &*self;
            let results: Vec<io::Result<()>> = std::thread::scope(|scope| {
                let handles: Vec<_> = groups
                    .iter()
                    .map(|g| scope.spawn(|| this.fetch_files(g, &dir, &progress)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(io_err("a file fetcher panicked")))
                    })
                    .collect()
            });
            self.fetchers.lock().clear();
            for r in results {
                r?;
            }
            bytes = progress.bytes.load(Ordering::Relaxed);
        }
        Ok((files.len(), bytes))
    }

    /// Swaps the fetched checkpoint in as the database (rolling back if it does not open),
    /// and records the anchor that proves continuity at its sequence.
    fn restore(&mut self) -> Result<u64, String> {
        let settings = self.host.settings();
        let dir = settings.dir.clone();
        if !std::mem::take(&mut self.emptied) {
            let Some(old) = self.host.take_engine() else {
                return Err("the database is still in use".into());
            };
            drop(old);
        }
        let db = dir.join("db");
        let backup = dir.join("db.tmp");
        let fetched = dir.join("sync_checkpoint");
        let _ = std::fs::remove_dir_all(&backup);
        let _ = std::fs::remove_file(fetched.join(SOURCE_FILE));
        // Until the fetched database has opened, a crash rolls the swap back at the next start
        // (`recover_interrupted_swap`).
        let moved = quarry_storage::files::write_durable(&dir.join(SWAP_MARKER), b"swapping\n")
            .and_then(|_| match std::fs::rename(&db, &backup) {
                // Emptied before the fetch: nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            })
            .and_then(|_| {
                failpoint::crash_at("fullsync:after-backup-rename");
                std::fs::rename(&fetched, &db)
            })
            .map(|_| {
                quarry_storage::files::sync_dir(&dir);
                failpoint::crash_at("fullsync:after-swap");
            });
        let checkpoint_in_place = moved.is_ok();
        let opened = match moved {
            Ok(()) => self.host.open_engine(),
            Err(e) => Err(format!("cannot move the checkpoint into place: {e}")),
        };
        match opened {
            Ok(engine) => {
                let _ = std::fs::remove_file(dir.join(SWAP_MARKER));
                quarry_storage::files::sync_dir(&dir);
                let _ = std::fs::remove_dir_all(&backup);
                engine.gate().set_role(Role::Replica);
                let seq = engine.latest_sequence();
                self.host.install_engine(engine);
                Ok(seq)
            }
            Err(e) => {
                error!(error = %e, "the fetched checkpoint does not open; rolling back");
                // The marker goes only once the previous database is back in place: with it,
                // the next start finishes the roll-back.
                // Without a previous database (emptied before the fetch, or a new node), what
                // is in place is the checkpoint that does not open: it goes, and an empty
                // database opens instead, so that the node serves and the next attempt can
                // replace it.
                let restored = if backup.exists() {
                    put_back(&backup, &db).is_ok()
                } else if checkpoint_in_place {
                    std::fs::remove_dir_all(&db).is_ok() || !db.exists()
                } else {
                    // Nothing was moved: `db` is still the previous database.
                    true
                };
                if restored {
                    let _ = std::fs::remove_file(dir.join(SWAP_MARKER));
                }
                if let Err(e2) = self.open_as_replica() {
                    error!(error = %e2, "the previous database does not open either");
                }
                Err(e)
            }
        }
    }
}

const SOURCE_FILE: &str = ".source";

/// What the replica knows about its own last batch.
struct Last {
    digest: Option<String>,
    replid: Option<String>,
}

fn last_batch(engine: &Engine, dir: &Path, latest: u64) -> Last {
    if let Ok(Some(b)) = batch_ending_at(engine.db(), latest) {
        return Last {
            digest: Some(batch_digest(&b.data)),
            replid: batch_replid(&b.data),
        };
    }
    // A database restored from a master's checkpoint has no WAL yet; the checkpoint carried
    // what proves where its history ends.
    let anchor =
        std::fs::read_to_string(dir.join("db").join(ANCHOR_IN_CHECKPOINT)).unwrap_or_default();
    let mut parts = anchor.split_whitespace();
    let digest = match (
        parts.next().and_then(|s| s.parse::<u64>().ok()),
        parts.next(),
    ) {
        (Some(seq), Some(d)) if seq == latest => Some(d.to_string()),
        _ => None,
    };
    Last {
        digest,
        replid: None,
    }
}

/// Keeps files of an interrupted fetch from the same master; anything else goes.
fn prepare_sync_dir(dir: &Path, source: &str, files: &[String]) -> io::Result<()> {
    let same_source = std::fs::read_to_string(dir.join(SOURCE_FILE))
        .map(|s| s.trim() == source)
        .unwrap_or(false);
    if !same_source {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(SOURCE_FILE), source)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name != SOURCE_FILE && !files.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Written before a full sync moves the fetched checkpoint into `db`, removed once it opened.
const SWAP_MARKER: &str = "fullsync-swap";

/// Puts the database set aside in `backup` back as `db`, in place of whatever is there.
fn put_back(backup: &Path, db: &Path) -> io::Result<()> {
    if db.exists() {
        std::fs::remove_dir_all(db)?;
    }
    std::fs::rename(backup, db)
}

/// Settles a full sync's database swap that a crash interrupted, before the database opens at
/// start-up. While the marker exists the fetched database has not been proven to open, so the
/// previous one (`db.tmp`) goes back into place, and the replica syncs again. Without the
/// marker, a `db.tmp` left behind is the replaced database: the new one opened, so it goes.
/// Returns what it did, for the log.
pub fn recover_interrupted_swap(dir: &Path) -> io::Result<Option<&'static str>> {
    let db = dir.join("db");
    let backup = dir.join("db.tmp");
    let marker = dir.join(SWAP_MARKER);
    let swapping = marker.exists();
    let done = if !backup.exists() {
        None
    } else if swapping || !db.join("CURRENT").exists() {
        // The swap never proved itself, or (an older version's swap, without a marker) no
        // database is in place: the one left aside comes back.
        put_back(&backup, &db)?;
        Some("a full sync's database swap was interrupted; the previous database is back")
    } else {
        std::fs::remove_dir_all(&backup)?;
        Some("removed the database that a finished full sync replaced")
    };
    // The marker goes once the rename is durable.
    quarry_storage::files::sync_dir(dir);
    if swapping {
        std::fs::remove_file(&marker)?;
        quarry_storage::files::sync_dir(dir);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_db(path: &Path, tag: &str) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join("CURRENT"), tag).unwrap();
    }

    fn tag(path: &Path) -> String {
        std::fs::read_to_string(path.join("CURRENT")).unwrap()
    }

    #[test]
    fn an_interrupted_swap_is_settled_at_start_up() {
        // Marker and backup: the swap never proved itself; the previous database comes back,
        // whether the new one is in place or not.
        for new_in_place in [false, true] {
            let d = tempfile::tempdir().unwrap();
            make_db(&d.path().join("db.tmp"), "old");
            if new_in_place {
                make_db(&d.path().join("db"), "new");
            }
            std::fs::write(d.path().join(SWAP_MARKER), "swapping\n").unwrap();
            assert!(recover_interrupted_swap(d.path()).unwrap().is_some());
            assert_eq!(tag(&d.path().join("db")), "old");
            assert!(!d.path().join("db.tmp").exists());
            assert!(!d.path().join(SWAP_MARKER).exists());
        }
        // No marker, the new database in place: the swap finished; the old one goes.
        let d = tempfile::tempdir().unwrap();
        make_db(&d.path().join("db.tmp"), "old");
        make_db(&d.path().join("db"), "new");
        assert!(recover_interrupted_swap(d.path()).unwrap().is_some());
        assert_eq!(tag(&d.path().join("db")), "new");
        assert!(!d.path().join("db.tmp").exists());
        // No marker and no database (an older version's crash): the one aside is all there is.
        let d = tempfile::tempdir().unwrap();
        make_db(&d.path().join("db.tmp"), "old");
        assert!(recover_interrupted_swap(d.path()).unwrap().is_some());
        assert_eq!(tag(&d.path().join("db")), "old");
        // Nothing to settle.
        let d = tempfile::tempdir().unwrap();
        make_db(&d.path().join("db"), "db");
        assert!(recover_interrupted_swap(d.path()).unwrap().is_none());
        assert_eq!(tag(&d.path().join("db")), "db");
    }
}
