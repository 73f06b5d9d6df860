//! Slot migration (kvrocks-compat.md §3.6), source and destination.
//!
//! The source (`CLUSTERX MIGRATE`) streams a snapshot of the range as raw batches
//! (`APPLYBATCH`, `migrate-type raw-key-value`, quarry's default) or as commands (`migrate-type
//! redis-command`, Kvrocks' default: RESTORE ... REPLACE ABSTTL per key, DEL for a key gone,
//! `migrate-pipeline-size` commands per round trip and at most `migrate-speed` a second; the
//! types RESTORE cannot give back as they are, bitmaps, HyperLogLogs, sorted integers and
//! t-digests, go as their raw records), then WAL catch-up rounds (in command form: the state of every key the
//! round's batches touched, sent again), then forbids writes to the range (TRYAGAIN), sends
//! the final delta, and compares the range's DIGEST on both sides before it hands the range over
//! (`CLUSTER IMPORT <range> 1`). From then on it answers MOVED for the range, until a new
//! topology moves the range away and it deletes the range's data. Any failure or a cancel sends
//! `CLUSTER IMPORT <range> 2`, so the destination drops what it received, and the source goes on
//! serving the range.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use quarry_cluster::migrate::{filter_wal_batch, in_range, touched_keys};
use quarry_cluster::topology::format_ranges;
use quarry_storage::batch::BatchBuilder;
use quarry_storage::encoding::{now_ms, prefix_successor, Metadata, RedisType};
use quarry_storage::rocksdb::{Direction, IteratorMode, ReadOptions};
use quarry_storage::wal::WalReader;
use quarry_storage::{ColumnFamily, Engine};
use quarry_types::Db;
use tracing::{error, info, warn};

use crate::peer::{Peer, PeerError};
use crate::server::Server;

/// One migration job, as CLUSTER INFO shows it.
pub struct Job {
    pub range: (u16, u16),
    pub dst_id: String,
    pub dst_addr: String,
    /// `start`, `success` or `fail` (Kvrocks' words).
    pub state: Mutex<&'static str>,
    pub phase: Mutex<&'static str>,
    pub error: Mutex<Option<String>>,
    pub keys: AtomicU64,
    pub bytes: AtomicU64,
    pub wal_rounds: AtomicU64,
    pub cancel: AtomicBool,
    pub started: Instant,
    pub finished: Mutex<Option<Instant>>,
    done: Condvar,
}

/// The importing side.
#[derive(Clone, Debug)]
pub struct Import {
    pub range: (u16, u16),
    /// `start`, `success` or `error`.
    pub state: &'static str,
    /// The client id of the importing connection.
    pub client: u64,
}

#[derive(Default)]
pub struct MigrationState {
    /// Writes in cluster mode hold this shared while they are routed and run; the flip to the
    /// write-forbidden phase takes it exclusively, so no write to the range is in flight after.
    /// (An Arc, so that a pipeline's group can hold it from its first command to its commit.)
    pub fence: Arc<quarry_types::sharded::ReadMostly<()>>,
    pub forbidden: RwLock<Option<(u16, u16)>>,
    /// Ranges handed over, with the `host:port` that serves them now.
    pub migrated: RwLock<Vec<((u16, u16), String)>>,
    /// Ranges imported here that the topology does not give this node yet.
    pub imported: RwLock<Vec<(u16, u16)>>,
    /// Ranges whose handover a crash interrupted: the destination may have taken them, so
    /// this node serves neither reads nor writes there (TRYAGAIN) until a topology or a new
    /// migration settles them. Only [`load_handovers`] fills this.
    pub interrupted: RwLock<Vec<((u16, u16), String)>>,
    /// The handover under way (recorded in `slot-handovers` as one), so that any save while
    /// it lasts keeps it.
    pending: Mutex<Option<((u16, u16), String)>>,
    /// Serialises rendering and writing `slot-handovers`: two saves never share its temporary
    /// file, and the last one written is the newest state.
    save_lock: Mutex<()>,
    pub job: Mutex<Option<Arc<Job>>>,
    pub import: Mutex<Option<Import>>,
}

impl MigrationState {
    pub fn migrated_to(&self, slot: u16) -> Option<String> {
        self.migrated
            .read()
            .iter()
            .find(|(r, _)| in_range(*r, slot))
            .map(|(_, a)| a.clone())
    }

    pub fn is_forbidden(&self, slot: u16) -> bool {
        self.forbidden.read().is_some_and(|r| in_range(r, slot))
    }

    pub fn is_imported(&self, slot: u16) -> bool {
        self.imported.read().iter().any(|r| in_range(*r, slot))
    }

    pub fn is_interrupted(&self, slot: u16) -> bool {
        self.interrupted
            .read()
            .iter()
            .any(|(r, _)| in_range(*r, slot))
    }

    /// The bookkeeping that must outlive a crash, as `<dir>/slot-handovers` holds it:
    /// `migrated <range> <addr>`, `handover <range> <addr>` (a handover under way, or one a
    /// crash interrupted) and `imported <range>` lines.
    fn render(&self) -> String {
        let mut out = String::new();
        for (r, addr) in self.migrated.read().iter() {
            out.push_str(&format!("migrated {} {addr}\n", format_ranges(&[*r])));
        }
        let pending = self.pending.lock().clone();
        for (r, addr) in self.interrupted.read().iter().chain(pending.as_ref()) {
            out.push_str(&format!("handover {} {addr}\n", format_ranges(&[*r])));
        }
        for r in self.imported.read().iter() {
            out.push_str(&format!("imported {}\n", format_ranges(&[*r])));
        }
        out
    }

    pub fn importing(&self, slot: u16) -> bool {
        self.import
            .lock()
            .as_ref()
            .is_some_and(|i| i.state == "start" && in_range(i.range, slot))
    }

    /// CLUSTER INFO's migration and import lines.
    pub fn info_lines(&self) -> String {
        let mut out = String::new();
        if let Some(job) = self.job.lock().as_ref() {
            let secs = job
                .finished
                .lock()
                .unwrap_or_else(Instant::now)
                .duration_since(job.started)
                .as_secs_f64();
            out.push_str(&format!(
                "migrating_slot(s): {}\r\ndestination_node: {}\r\nmigrating_state: {}\r\nmigrating_phase: {}\r\nmigrating_keys_sent: {}\r\nmigrating_bytes_sent: {}\r\nmigrating_wal_rounds: {}\r\nmigrating_seconds: {secs:.1}\r\n",
                format_ranges(&[job.range]),
                job.dst_id,
                job.state.lock(),
                job.phase.lock(),
                job.keys.load(Ordering::Relaxed),
                job.bytes.load(Ordering::Relaxed),
                job.wal_rounds.load(Ordering::Relaxed),
            ));
            if let Some(e) = job.error.lock().as_ref() {
                out.push_str(&format!("migrating_error: {e}\r\n"));
            }
        }
        if let Some(i) = self.import.lock().as_ref() {
            out.push_str(&format!(
                "importing_slot(s): {}\r\nimport_state: {}\r\n",
                format_ranges(&[i.range]),
                i.state
            ));
        }
        out
    }

    /// The marker CLUSTER NODES shows after "myself" while a job runs.
    pub fn nodes_marker(&self, src_of: impl Fn(u16) -> Option<String>) -> String {
        let mut out = String::new();
        if let Some(job) = self.job.lock().as_ref() {
            if *job.state.lock() == "start" {
                out.push_str(&format!(
                    " [{}->-{}]",
                    format_ranges(&[job.range]),
                    job.dst_id
                ));
            }
        }
        if let Some(i) = self.import.lock().as_ref() {
            if i.state == "start" {
                let src = src_of(i.range.0).unwrap_or_default();
                out.push_str(&format!(" [{}-<-{}]", format_ranges(&[i.range]), src));
            }
        }
        out
    }
}

impl Job {
    pub fn new(range: (u16, u16), dst_id: String, dst_addr: String) -> Job {
        Job {
            range,
            dst_id,
            dst_addr,
            state: Mutex::new("start"),
            phase: Mutex::new("connecting"),
            error: Mutex::new(None),
            keys: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            wal_rounds: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            started: Instant::now(),
            finished: Mutex::new(None),
            done: Condvar::new(),
        }
    }

    pub fn running(&self) -> bool {
        *self.state.lock() == "start"
    }

    /// Waits for the end of the job, at most `timeout` (None: no limit). True if it ended.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut state = self.state.lock();
        let deadline = timeout.map(|t| Instant::now() + t);
        while *state == "start" {
            match deadline {
                Some(d) => {
                    if self.done.wait_until(&mut state, d).timed_out() {
                        return *state != "start";
                    }
                }
                None => self.done.wait(&mut state),
            }
        }
        true
    }

    fn finish(&self, state: &'static str) {
        *self.finished.lock() = Some(Instant::now());
        *self.state.lock() = state;
        self.done.notify_all();
    }
}

/// How long the destination may keep a reply (APPLYBATCH, DIGEST of a slot range) waiting.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings read at each step, so CONFIG SET applies to a running job.
struct Throttle {
    batch_bytes: usize,
    rate_bytes: u64,
    gap: u64,
    /// redis-command: commands per round trip, and commands a second (0: no limit).
    pipeline_size: usize,
    commands_per_second: u64,
}

fn throttle(server: &Server) -> Throttle {
    let cfg = server.config.read();
    Throttle {
        batch_bytes: (cfg.get_i64("migrate-batch-size-kb").max(1) as usize) * 1024,
        rate_bytes: cfg.get_i64("migrate-batch-rate-limit-mb").max(0) as u64 * 1024 * 1024,
        gap: cfg.get_i64("migrate-sequence-gap").max(1) as u64,
        pipeline_size: cfg.get_i64("migrate-pipeline-size").max(1) as usize,
        commands_per_second: cfg.get_i64("migrate-speed").max(0) as u64,
    }
}

/// How keys go over: `migrate-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    RawKeyValue,
    RedisCommand,
}

fn method(server: &Server) -> Method {
    match server.config.read().get("migrate-type") {
        "redis-command" => Method::RedisCommand,
        _ => Method::RawKeyValue,
    }
}

struct Sender<'a> {
    server: &'a Server,
    job: &'a Job,
    peer: Peer,
    started: Instant,
    sent: u64,
    /// The throttles as of the last batch sent (CONFIG SET applies from the next batch).
    limits: Throttle,
    /// redis-command: commands waiting for the next pipeline, and when the last one went.
    pending: Vec<Vec<Vec<u8>>>,
    last_pipeline: Option<Instant>,
}

impl Sender<'_> {
    fn check_cancel(&self) -> Result<(), String> {
        if self.job.cancel.load(Ordering::Acquire) {
            return Err("cancelled".into());
        }
        if self.server.repl.is_replica.load(Ordering::Acquire) {
            return Err("this node became a replica".into());
        }
        Ok(())
    }

    fn send(&mut self, raw: &[u8]) -> Result<(), String> {
        // Commands queued before this batch go first: a key's state arrives in order.
        self.flush_commands()?;
        self.check_cancel()?;
        self.peer.call(&[b"APPLYBATCH", raw])?;
        self.sent += raw.len() as u64;
        self.job
            .bytes
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        self.limits = throttle(self.server);
        let rate = self.limits.rate_bytes;
        if rate > 0 {
            let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    }
}

impl Sender<'_> {
    /// Queues a command (redis-command); the pipeline goes once it holds
    /// `migrate-pipeline-size` commands.
    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<(), String> {
        self.pending.push(args);
        if self.pending.len() >= self.limits.pipeline_size {
            self.flush_commands()?;
        }
        Ok(())
    }

    /// Sends the queued commands in one round trip, after waiting as Kvrocks does so that no
    /// more than `migrate-speed` commands go each second; any error reply fails the migration.
    fn flush_commands(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.check_cancel()?;
        let speed = self.limits.commands_per_second;
        let n = self.pending.len() as u64;
        if let (true, Some(last)) = (speed > 0, self.last_pipeline) {
            let gap = Duration::from_micros((1_000_000 * n / speed).max(1));
            if let Some(wait) = gap.checked_sub(last.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let commands: Vec<Vec<&[u8]>> = pending
            .iter()
            .map(|c| c.iter().map(Vec::as_slice).collect())
            .collect();
        self.peer.send(&commands)?;
        self.last_pipeline = Some(Instant::now());
        for c in &pending {
            self.peer.read().map_err(|e| {
                format!(
                    "the destination refused {} {}: {e}",
                    String::from_utf8_lossy(&c[0]),
                    String::from_utf8_lossy(c.get(1).map_or(&[][..], |k| k))
                )
            })?;
            let bytes: usize = c.iter().map(Vec::len).sum();
            self.sent += bytes as u64;
            self.job.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        // CONFIG SET applies from the next pipeline.
        self.limits = throttle(self.server);
        Ok(())
    }
}

/// Where [`MigrationState`]'s bookkeeping persists, in `dir`.
pub const HANDOVERS_FILE: &str = "slot-handovers";

/// Persists the migration bookkeeping (with the handover under way, if any), so that a node
/// restarted between a handover and the topology that follows it answers MOVED or TRYAGAIN for
/// the range instead of serving it. Runs on rare paths only (handovers, imports, topologies).
pub fn save_handovers(server: &Server) -> Result<(), String> {
    let _one_at_a_time = server.migration.save_lock.lock();
    let path = &server.cluster.handovers_file;
    let text = server.migration.render();
    let written = if text.is_empty() {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        quarry_storage::files::write_durable(path, text.as_bytes())
    };
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads `<dir>/slot-handovers` at start-up. A handover that was under way when the process
/// stopped is now an interrupted one.
pub fn load_handovers(path: &std::path::Path, state: &MigrationState) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("{}:{}: cannot parse {line:?}", path.display(), n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let range = || {
            words
                .get(1)
                .and_then(|r| quarry_cluster::topology::parse_range(r))
                .ok_or_else(bad)
        };
        match (words.first().copied(), words.len()) {
            (Some("migrated"), 3) => state.migrated.write().push((range()?, words[2].into())),
            (Some("handover"), 3) => {
                let r = range()?;
                warn!(range = %format_ranges(&[r]), destination = words[2], "a slot handover was interrupted by a restart; the range answers TRYAGAIN until a topology or a new migration settles it");
                state.interrupted.write().push((r, words[2].into()));
            }
            (Some("imported"), 2) => state.imported.write().push(range()?),
            (None, _) => {}
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// Starts a job on its own thread.
pub fn start(server: &Arc<Server>, job: Arc<Job>) {
    let weak: Weak<Server> = Arc::downgrade(server);
    let _ = std::thread::Builder::new()
        .name("slot-migrate".into())
        .spawn(move || {
            let Some(server) = weak.upgrade() else { return };
            info!(range = %format_ranges(&[job.range]), destination = %job.dst_id, addr = %job.dst_addr, "slot migration started");
            // Whatever happens to this thread, the range does not stay write-forbidden and the
            // job does not stay "start".
            struct Guard<'a>(&'a Server, &'a Job);
            impl Drop for Guard<'_> {
                fn drop(&mut self) {
                    if self.1.running() {
                        *self.0.migration.forbidden.write() = None;
                        *self.1.error.lock() = Some("the migration thread stopped".into());
                        self.1.finish("fail");
                    }
                }
            }
            let _guard = Guard(&server, &job);
            match migrate(&server, &job) {
                Ok(()) => {
                    let secs = job.started.elapsed().as_secs_f64().max(0.001);
                    let keys = job.keys.load(Ordering::Relaxed);
                    let mb = job.bytes.load(Ordering::Relaxed) as f64 / 1e6;
                    info!(range = %format_ranges(&[job.range]), keys, mb = format!("{mb:.1}"), seconds = format!("{secs:.1}"), keys_per_s = format!("{:.0}", keys as f64 / secs), mb_per_s = format!("{:.1}", mb / secs), wal_rounds = job.wal_rounds.load(Ordering::Relaxed), "slot migration succeeded");
                    *job.phase.lock() = "done";
                    job.finish("success");
                }
                Err(e) => {
                    error!(range = %format_ranges(&[job.range]), error = %e, "slot migration failed");
                    *job.error.lock() = Some(e);
                    *job.phase.lock() = "failed";
                    // The destination drops what it received; the source serves the range again.
                    let pw = requirepass(&server);
                    if let Ok(mut p) = Peer::connect(&server, &job.dst_addr, PEER_TIMEOUT, pw.as_deref()) {
                        let range = format_ranges(&[job.range]);
                        let _ = p.call(&[b"CLUSTER", b"IMPORT", range.as_bytes(), b"2"]);
                    }
                    *server.migration.forbidden.write() = None;
                    job.finish("fail");
                }
            }
        });
}

fn requirepass(server: &Server) -> Option<String> {
    Some(server.config.read().get("requirepass").to_string()).filter(|p| !p.is_empty())
}

fn migrate(server: &Server, job: &Job) -> Result<(), String> {
    let engine = server.engine().ok_or("the database is being replaced")?;
    let range = job.range;
    let range_text = format_ranges(&[range]);
    let peer = Peer::connect(
        server,
        &job.dst_addr,
        PEER_TIMEOUT,
        requirepass(server).as_deref(),
    )?;
    let mut tx = Sender {
        server,
        job,
        peer,
        started: Instant::now(),
        sent: 0,
        limits: throttle(server),
        pending: Vec::new(),
        last_pipeline: None,
    };
    let how = method(server);
    let storage = server.storage().ok_or("the database is being replaced")?;
    let db = storage.db(None);
    tx.peer
        .call(&[b"CLUSTER", b"IMPORT", range_text.as_bytes(), b"0"])
        .map_err(|e| format!("the destination refused the import: {e}"))?;

    // 1. The snapshot.
    *job.phase.lock() = "snapshot";
    let seq = send_snapshot(&engine, &db, how, &mut tx, range)?;
    info!(range = %range_text, keys = job.keys.load(Ordering::Relaxed), sequence = seq, method = ?how, "slot migration: snapshot sent");

    // 2. WAL catch-up rounds.
    *job.phase.lock() = "wal";
    let mut reader = WalReader::new(engine.db(), seq + 1);
    for _ in 0..10 {
        let target = engine.latest_sequence();
        send_wal_until(&mut reader, &mut tx, &db, how, range, target)?;
        job.wal_rounds.fetch_add(1, Ordering::Relaxed);
        if engine
            .latest_sequence()
            .saturating_sub(reader.next_seq().saturating_sub(1))
            <= throttle(server).gap
        {
            break;
        }
    }

    // 3. Writes to the range stop; the last delta goes over.
    *job.phase.lock() = "write-forbidden";
    {
        let _no_writes_in_flight = server.migration.fence.write();
        *server.migration.forbidden.write() = Some(range);
    }
    let result = (|| {
        let cut = engine.latest_sequence();
        send_wal_until(&mut reader, &mut tx, &db, how, range, cut)?;
        tx.flush_commands()?;
        job.wal_rounds.fetch_add(1, Ordering::Relaxed);

        // 4. Verify before the handover.
        *job.phase.lock() = "verify";
        let codec_slots = server.repl.codec.slot_encoded();
        let ours = quarry_storage::digest::digest(&engine, codec_slots, &[range])
            .map_err(|e| e.to_string())?;
        match tx.peer.call(&[b"DIGEST", range_text.as_bytes()]) {
            Ok(theirs) => {
                let mut f = theirs.split(' ');
                let (hex, _seq, keys) = (f.next(), f.next(), f.next());
                if hex != Some(ours.hex.as_str()) || keys != Some(ours.keys.to_string().as_str()) {
                    return Err(format!(
                        "the destination's digest of {range_text} differs at the cut-over (ours {} over {} keys, theirs {theirs})",
                        ours.hex, ours.keys
                    ));
                }
                info!(range = %range_text, digest = %ours.hex, keys = ours.keys, sequence = cut, "slot migration: digests match at the cut-over");
            }
            Err(e) if e.to_string().contains("unknown command") => {
                warn!(range = %range_text, "the destination has no DIGEST (not quarry): the handover is not verified");
            }
            Err(e) => return Err(format!("the destination's DIGEST failed: {e}")),
        }

        // 5. The handover. Nothing may have reached the range since the cut-over.
        *job.phase.lock() = "handover";
        tx.check_cancel()?;
        {
            let _no_writes_in_flight = server.migration.fence.write();
            let latest = engine.latest_sequence();
            while reader.next_seq() <= latest {
                match reader
                    .read()
                    .map_err(|e| format!("reading the WAL failed: {e}"))?
                {
                    Some(b) => {
                        if filter_wal_batch(&b.data, range)?.is_some() {
                            return Err("the range was written after the cut-over".into());
                        }
                    }
                    None => break,
                }
            }
        }
        // Recorded before the destination takes the range: a crash from here on leaves the
        // range answering TRYAGAIN after a restart, never served from stale data.
        let handover = (range, job.dst_addr.clone());
        *server.migration.pending.lock() = Some(handover.clone());
        if let Err(e) = save_handovers(server) {
            *server.migration.pending.lock() = None;
            return Err(e);
        }
        match tx
            .peer
            .call(&[b"CLUSTER", b"IMPORT", range_text.as_bytes(), b"1"])
        {
            Ok(_) => {}
            // The destination answered no: it does not serve the range, this node keeps it.
            Err(PeerError::Reply(e)) => {
                *server.migration.pending.lock() = None;
                if let Err(e) = save_handovers(server) {
                    error!(error = %e, "the handover failed and its record stays: after a restart the range answers TRYAGAIN");
                }
                return Err(format!("the destination refused the handover: {e}"));
            }
            // No answer: the destination may have taken the range. Serving it here could
            // serve stale data, so it answers TRYAGAIN until a topology or a new migration
            // settles it, as after a crash in this window.
            Err(e) => {
                let pending = server.migration.pending.lock().take();
                server.migration.interrupted.write().extend(pending);
                if let Err(e) = save_handovers(server) {
                    error!(error = %e, "cannot record the interrupted handover");
                }
                return Err(format!(
                    "the handover's outcome is unknown ({e}); the range answers TRYAGAIN until a topology or a new migration settles it"
                ));
            }
        }
        quarry_storage::failpoint::crash_at("migration:after-handover");
        server
            .migration
            .interrupted
            .write()
            .retain(|(r, _)| *r != range);
        server.migration.migrated.write().push(handover);
        *server.migration.pending.lock() = None;
        if let Err(e) = save_handovers(server) {
            // The record on disk still says "handover": a restart answers TRYAGAIN.
            error!(error = %e, "cannot record the finished handover");
        }
        Ok(())
    })();
    *server.migration.forbidden.write() = None;
    result
}

/// Sends every live key of `range` from a snapshot; returns the snapshot's sequence. In
/// command form the snapshot only lists the keys: each key's state is read when it is sent
/// (the WAL rounds that follow send again whatever changed since the snapshot).
fn send_snapshot(
    engine: &Engine,
    db: &Db,
    how: Method,
    tx: &mut Sender<'_>,
    range: (u16, u16),
) -> Result<u64, String> {
    let (snap, seq) = engine.snapshot_at_sequence();
    let read = || {
        let mut o = ReadOptions::default();
        o.set_snapshot(&snap);
        o
    };
    let codec = &tx.server.repl.codec;
    let ns_len = codec.namespace_prefix().len();
    let (lower, upper) = codec.slot_range_bounds(range.0, range.1);
    let mut opts = read();
    opts.set_iterate_upper_bound(upper);
    let now = now_ms();
    let mut batch = BatchBuilder::new();
    let mut last_log = Instant::now();
    let iter = engine.db().iterator_cf_opt(
        engine.cf(ColumnFamily::Metadata),
        opts,
        IteratorMode::From(&lower, Direction::Forward),
    );
    for item in iter {
        let (mk, raw) = item.map_err(|e| e.to_string())?;
        // A key this version cannot decode is not silently left behind.
        // Metadata keys of this range are `ns | slot | user key`.
        let user_key = &mk[ns_len + 2..];
        let meta = Metadata::decode(&raw).map_err(|e| {
            format!(
                "key {:?} cannot be migrated by this version: {e}",
                String::from_utf8_lossy(user_key)
            )
        })?;
        if meta.is_dead(now) {
            continue;
        }
        if how == Method::RedisCommand {
            send_key_state(engine, db, tx, user_key)?;
            tx.job.keys.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        batch.put(1, &mk, &raw);
        let prefix = codec.subkey_prefix(user_key, meta.version);
        for_each_subkey(engine, &read, meta.kind, &prefix, |id, k, v| {
            batch.put(id, k, v);
            if batch.len() >= tx.limits.batch_bytes {
                tx.send(&batch.finish())?;
                batch = BatchBuilder::new();
            }
            Ok(())
        })?;
        let keys = tx.job.keys.fetch_add(1, Ordering::Relaxed) + 1;
        if last_log.elapsed() >= Duration::from_secs(1) {
            let secs = tx.started.elapsed().as_secs_f64().max(0.001);
            info!(
                range = %format_ranges(&[range]),
                keys,
                mb = format!("{:.1}", tx.sent as f64 / 1e6),
                keys_per_s = format!("{:.0}", keys as f64 / secs),
                "slot migration progress (snapshot)"
            );
            last_log = Instant::now();
        }
        if batch.len() >= tx.limits.batch_bytes {
            tx.send(&batch.finish())?;
            batch = BatchBuilder::new();
        }
    }
    if !batch.is_empty() {
        tx.send(&batch.finish())?;
    }
    Ok(seq)
}

/// Sends the range's part of every WAL batch up to sequence `target`: as raw batches, or in
/// command form the current state of each key those batches touched.
fn send_wal_until(
    reader: &mut WalReader<'_>,
    tx: &mut Sender<'_>,
    db: &Db,
    how: Method,
    range: (u16, u16),
    target: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut touched = std::collections::BTreeSet::new();
    while reader.next_seq() <= target {
        match reader
            .read()
            .map_err(|e| format!("reading the WAL failed: {e}"))?
        {
            Some(b) if how == Method::RedisCommand => {
                touched_keys(&b.data, range, &mut touched)?;
            }
            Some(b) => {
                if let Some(raw) = filter_wal_batch(&b.data, range)? {
                    tx.send(&raw)?;
                }
            }
            None => {
                if Instant::now() > deadline {
                    return Err(format!("the WAL did not reach sequence {target}"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let engine = db.engine();
    for key in touched {
        send_key_state(engine, db, tx, &key)?;
    }
    Ok(())
}

/// redis-command: sends the key's state as it is now (see [`key_state`]).
fn send_key_state(engine: &Engine, db: &Db, tx: &mut Sender<'_>, key: &[u8]) -> Result<(), String> {
    match key_state(engine, db, &tx.server.repl.codec, key)? {
        KeyState::Command(args) => tx.command(args),
        KeyState::Raw(batch) => tx.send(&batch),
    }
}

/// What brings a destination's copy of a key to the source's state.
enum KeyState {
    Command(Vec<Vec<u8>>),
    Raw(Vec<u8>),
}

/// The key's state as commands: RESTORE ... REPLACE ABSTTL, or DEL when it is gone. Bitmaps,
/// HyperLogLogs and sorted integers, which a RESTORE would turn into strings or refuse, and
/// t-digests, which it would give back merged (the same distribution, not the same records),
/// are their raw records, in a batch of their own. Read under the key's lock (released before
/// anything is sent), so that no write lands between its records.
fn key_state(
    engine: &Engine,
    db: &Db,
    codec: &quarry_storage::encoding::KeyCodec,
    key: &[u8],
) -> Result<KeyState, String> {
    let _locked = db.locks().lock_many(&[key]);
    let gone = || Ok(KeyState::Command(vec![b"DEL".to_vec(), key.to_vec()]));
    let mk = codec.metadata_key(key);
    let Some(raw) = engine
        .get(ColumnFamily::Metadata, &mk)
        .map_err(|e| e.to_string())?
        .map(|v| v.to_vec())
    else {
        return gone();
    };
    let meta = Metadata::decode(&raw).map_err(|e| e.to_string())?;
    if meta.is_dead(now_ms()) {
        return gone();
    }
    if !matches!(
        meta.kind,
        RedisType::Bitmap | RedisType::HyperLogLog | RedisType::SortedInt | RedisType::TDigest
    ) {
        let Some(payload) = quarry_commands::dump_payload(db, key).map_err(|e| e.to_string())?
        else {
            return gone();
        };
        return Ok(KeyState::Command(vec![
            b"RESTORE".to_vec(),
            key.to_vec(),
            meta.expire_ms.to_string().into_bytes(),
            payload,
            b"REPLACE".to_vec(),
            b"ABSTTL".to_vec(),
        ]));
    }
    let mut batch = BatchBuilder::new();
    let prefix = codec.subkey_prefix(key, meta.version);
    // What an earlier send of this version left on the destination goes first (a member
    // removed since, a t-digest's centroids merged since).
    if let Some(end) = prefix_successor(&prefix) {
        for &cf in meta.kind.subkey_families() {
            batch.delete_range(cf as u32, &prefix, &end);
        }
    }
    batch.put(1, &mk, &raw);
    for_each_subkey(
        engine,
        &ReadOptions::default,
        meta.kind,
        &prefix,
        |id, k, v| {
            batch.put(id, k, v);
            Ok(())
        },
    )?;
    Ok(KeyState::Raw(batch.finish()))
}

/// Calls `each` with every sub-key record (column family id, key, value) of the key version
/// whose sub-keys start with `prefix`, read with `read()`'s options.
fn for_each_subkey(
    engine: &Engine,
    read: &dyn Fn() -> ReadOptions,
    kind: RedisType,
    prefix: &[u8],
    mut each: impl FnMut(u32, &[u8], &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let end = prefix_successor(prefix);
    for &cf in kind.subkey_families() {
        let mut opts = read();
        if let Some(end) = &end {
            opts.set_iterate_upper_bound(end.clone());
        }
        let subs = engine.db().iterator_cf_opt(
            engine.cf(cf),
            opts,
            IteratorMode::From(prefix, Direction::Forward),
        );
        for sub in subs {
            let (k, v) = sub.map_err(|e| e.to_string())?;
            each(cf as u32, &k, &v)?;
        }
    }
    Ok(())
}
