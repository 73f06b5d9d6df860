//! The master side: who may partial-sync (PSYNC), the feeders that stream WAL batches, the
//! replicas' acknowledgements (REPLCONF ACK, WAIT), and the checkpoint files of a full sync.

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quarry_storage::encoding::now_ms;
use quarry_storage::wal::{batch_digest, batch_ending_at, batch_replid, WalGap, WalReader};
use quarry_storage::Engine;
use tracing::{error, info, warn};

use crate::wire;

/// Kvrocks' error texts for a refused PSYNC.
pub const ERR_OUT_OF_RANGE: &str = "sequence out of range, please use fullsync";
pub const ERR_WRONG_REPLID: &str = "wrong replication id of the last log";

/// A PSYNC request with what the handshake told about the replica.
#[derive(Clone, Debug, Default)]
pub struct PsyncRequest {
    pub replid: Option<String>,
    pub next: u64,
    /// quarry replicas (`REPLCONF capa batch-digest`) send the digest of their last batch.
    pub last_batch: Option<LastBatch>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastBatch {
    pub seq: u64,
    /// None: the replica cannot read its last batch back (so continuity cannot be proven).
    pub digest: Option<String>,
}

/// A connected replica, as INFO and ROLE show it.
#[derive(Debug)]
pub struct ReplicaInfo {
    pub id: u64,
    pub peer: String,
    pub ip: String,
    pub port: u16,
    /// Last sequence sent.
    pub sent: AtomicU64,
    /// Last sequence the replica reported applied (REPLCONF ACK); 0 if it never acks.
    pub acked: AtomicU64,
    /// When the replica last acknowledged (ms since the Unix epoch); it acks every heartbeat.
    pub last_ack_ms: AtomicU64,
    pub closed: AtomicBool,
    /// A quarry replica (it proved its history with `REPLCONF last-batch`): it takes notes.
    pub quarry: bool,
    stream: Mutex<Option<TcpStream>>,
}

impl ReplicaInfo {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(s) = self.stream.lock().as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Debug)]
struct CheckpointState {
    seq: u64,
    created: Instant,
    last_used: Instant,
}

/// Counters INFO shows in `# Stats`: the syncs this node served as a master.
#[derive(Debug, Default)]
pub struct SyncCounters {
    pub full: AtomicU64,
    pub partial_ok: AtomicU64,
    pub partial_err: AtomicU64,
}

/// The master side of one node (a replica is also a master to its own replicas).
#[derive(Debug, Default)]
pub struct Master {
    replicas: Mutex<Vec<Arc<ReplicaInfo>>>,
    next_id: AtomicU64,
    checkpoint: Mutex<Option<CheckpointState>>,
    active_senders: AtomicUsize,
    pub counters: SyncCounters,
    /// `max-replication-mb`: full-sync file rate in MB/s (0 = unlimited), shared by senders.
    pub max_replication_mb: AtomicU64,
    /// Anchors of checkpoints served whose last batch the WAL no longer held: (sequence,
    /// token). A replica that restored such a checkpoint proves its history with the token.
    anchors: Mutex<Vec<(u64, String)>>,
    /// Set while a full sync replaces this node's database: no new feeders.
    paused: AtomicBool,
    /// Notes for quarry replicas, in the order they are to be sent.
    notes: Mutex<VecDeque<Note>>,
    next_note: AtomicU64,
    /// Notes a feeder never sent: they left the full queue before it took them.
    pub notes_dropped: AtomicU64,
}

/// A message in the stream for quarry replicas only (Kvrocks replicas would take it for a
/// batch): sent once every batch up to `after` is, so that it marks an exact place in the
/// history without taking a sequence number. Verification's markers travel this way.
#[derive(Debug)]
struct Note {
    index: u64,
    after: u64,
    payload: Arc<Vec<u8>>,
}

/// What every note's payload starts with; a replica never applies it as a batch.
pub const NOTE_PREFIX: &[u8] = b"quarry-note ";

/// Notes kept for feeders that are behind.
const MAX_NOTES: usize = 4096;

/// The file a checkpoint carries for quarry replicas: `<sequence> <digest or token>`, what
/// proves that a history ends at the checkpoint.
pub const ANCHOR_IN_CHECKPOINT: &str = "REPLICATION-ANCHOR";

/// How many checkpoint anchors a master remembers.
const MAX_ANCHORS: usize = 16;

/// The digest of the batch that ends at `seq`.
fn wal_digest_at(engine: &Engine, seq: u64) -> Option<String> {
    match batch_ending_at(engine.db(), seq) {
        Ok(Some(b)) => Some(batch_digest(&b.data)),
        _ => None,
    }
}

impl Master {
    /// Queues a note (its payload starts with [`NOTE_PREFIX`]) for quarry replicas, to be
    /// sent right after the batch that ends at `after` (0: at the next chance, in order).
    pub fn push_note(&self, after: u64, payload: Vec<u8>) {
        let mut notes = self.notes.lock();
        let index = self.next_note.fetch_add(1, Ordering::AcqRel);
        notes.push_back(Note {
            index,
            after,
            payload: Arc::new(payload),
        });
        while notes.len() > MAX_NOTES {
            notes.pop_front();
        }
    }

    /// The notes from `from` on that may go once the batch ending at `sent` has: their
    /// payloads and the index to continue from.
    /// Called per batch sent: with nothing queued since `from` it takes no lock. Notes that left
    /// the full queue before this feeder took them count as dropped.
    fn notes_due(&self, from: u64, sent: u64) -> (Vec<Arc<Vec<u8>>>, u64) {
        if from >= self.next_note.load(Ordering::Acquire) {
            return (Vec::new(), from);
        }
        let notes = self.notes.lock();
        // Indices are consecutive from the front's.
        let front = notes.front().map_or(from, |n| n.index);
        if front > from {
            self.notes_dropped
                .fetch_add(front - from, Ordering::Relaxed);
        }
        let mut next = from.max(front);
        let mut out = Vec::new();
        for n in notes.iter().skip((next - front) as usize) {
            if n.after > sent {
                break;
            }
            out.push(n.payload.clone());
            next = n.index + 1;
        }
        (out, next)
    }

    /// Whether a quarry replica streams from this node now.
    pub fn has_quarry_replicas(&self) -> bool {
        self.replicas.lock().iter().any(|r| r.quarry)
    }

    /// What proves a history that ends at `seq` (`REPLCONF batch-digest`): the digest of the
    /// batch ending there, or the anchor of a checkpoint served at that sequence.
    pub fn digest_at(&self, engine: &Engine, seq: u64) -> Option<String> {
        wal_digest_at(engine, seq).or_else(|| self.anchor_at(seq))
    }

    fn anchor_at(&self, seq: u64) -> Option<String> {
        self.anchors
            .lock()
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map(|(_, t)| t.clone())
    }

    /// Decides whether `req` may resume from this node's WAL. Errors are the reply texts
    /// (without `ERR `); each refusal means a full sync for the replica.
    pub fn check_psync(
        &self,
        engine: &Engine,
        req: &PsyncRequest,
        use_rsid: bool,
    ) -> Result<(), String> {
        let result = self.decide(engine, req, use_rsid);
        match &result {
            Ok(()) => self.counters.partial_ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.partial_err.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    fn decide(&self, engine: &Engine, req: &PsyncRequest, use_rsid: bool) -> Result<(), String> {
        let latest = engine.latest_sequence();
        let next = req.next;
        if next == 0 || next > latest + 1 {
            return Err(ERR_OUT_OF_RANGE.into());
        }
        let prev = next - 1;
        let prev_batch = if prev == 0 {
            None
        } else {
            match batch_ending_at(engine.db(), prev) {
                Ok(b) => b,
                // `prev` falls inside a batch: the replica's history ends mid-batch here.
                Err(_) => return Err(ERR_OUT_OF_RANGE.into()),
            }
        };
        if let (Some(theirs), true) = (req.replid.as_deref(), use_rsid) {
            if let Some(ours) = prev_batch.as_ref().and_then(|b| batch_replid(&b.data)) {
                if ours != theirs {
                    return Err(ERR_WRONG_REPLID.into());
                }
            }
        }
        if let Some(last) = &req.last_batch {
            if last.seq != prev {
                return Err(ERR_OUT_OF_RANGE.into());
            }
            if prev > 0 {
                let ours = prev_batch
                    .as_ref()
                    .map(|b| batch_digest(&b.data))
                    .or_else(|| self.anchor_at(prev));
                match (&last.digest, ours) {
                    (Some(theirs), Some(ours)) if *theirs == ours => {}
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "history diverged at sequence {prev} (last batches differ), please use fullsync"
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "cannot prove history continuity at sequence {prev}, please use fullsync"
                        ))
                    }
                }
            }
        }
        if next == latest + 1 {
            return Ok(());
        }
        match WalReader::new(engine.db(), next).read() {
            Ok(Some(_)) => Ok(()),
            _ => Err(ERR_OUT_OF_RANGE.into()),
        }
    }

    pub fn replicas(&self) -> Vec<Arc<ReplicaInfo>> {
        self.replicas.lock().clone()
    }

    /// Replicas that acknowledged applying everything up to `seq` (WAIT).
    pub fn count_acked(&self, seq: u64) -> usize {
        self.replicas
            .lock()
            .iter()
            .filter(|r| r.acked.load(Ordering::Acquire) >= seq)
            .count()
    }

    /// Replicas that acknowledged within `max_lag_secs` (min-replicas-to-write).
    pub fn count_good(&self, max_lag_secs: u64) -> usize {
        let now = now_ms();
        self.replicas
            .lock()
            .iter()
            .filter(|r| {
                !r.closed.load(Ordering::Acquire)
                    && now.saturating_sub(r.last_ack_ms.load(Ordering::Acquire))
                        <= max_lag_secs * 1000
            })
            .count()
    }

    /// Disconnects every replica (before a full sync replaces this node's data, or on demand).
    pub fn disconnect_all(&self) {
        for r in self.replicas.lock().iter() {
            r.close();
        }
    }

    /// Before this node's database is replaced: no feeders, no checkpoint, no anchors of the
    /// history that ends here. `resume` undoes the pause once the new database serves.
    pub fn pause_for_new_history(&self, dir: &Path) {
        {
            let _replicas = self.replicas.lock();
            self.paused.store(true, Ordering::Release);
        }
        self.disconnect_all();
        *self.checkpoint.lock() = None;
        self.anchors.lock().clear();
        let _ = std::fs::remove_dir_all(dir.join("checkpoint"));
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
    }

    /// Streams the WAL from `next` to a replica on its own thread. The reply `+OK` goes first.
    pub fn start_feeder(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        stream: TcpStream,
        next: u64,
        ip: String,
        port: u16,
        quarry: bool,
    ) {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut replicas = self.replicas.lock();
        if self.paused.load(Ordering::Acquire) {
            let _ = (&stream).write_all(b"-LOADING kvrocks is restoring the db from backup\r\n");
            return;
        }
        let replica = Arc::new(ReplicaInfo {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            ip,
            port,
            sent: AtomicU64::new(next.saturating_sub(1)),
            acked: AtomicU64::new(0),
            // Streaming from now on counts as acknowledged now, as Redis counts a replica
            // that just came online.
            last_ack_ms: AtomicU64::new(now_ms()),
            closed: AtomicBool::new(false),
            quarry,
            stream: Mutex::new(stream.try_clone().ok()),
        });
        replicas.push(replica.clone());
        drop(replicas);
        let master = self.clone();
        let spawned = std::thread::Builder::new()
            .name("repl-feeder".into())
            .spawn(move || {
                info!(replica = %replica.peer, next, "replica added, incremental sync started");
                let reason = feed(&engine, stream, next, &replica, &master);
                info!(replica = %replica.peer, sent = replica.sent.load(Ordering::Relaxed), reason, "replica feeder stopped");
                replica.close();
                master.replicas.lock().retain(|r| r.id != replica.id);
            });
        if let Err(e) = spawned {
            error!("cannot start a feeder thread: {e}");
        }
    }

    /// `_fetch_meta`: the file names of a checkpoint of the whole database, shared with other
    /// replicas while it is recent and its sequence is still in the WAL (Kvrocks #1319).
    pub fn fetch_meta(
        &self,
        engine: &Engine,
        dir: &Path,
        wal_ttl_secs: u64,
    ) -> Result<Vec<String>, String> {
        let path = dir.join("checkpoint");
        let mut state = self.checkpoint.lock();
        let max_age = Duration::from_secs((wal_ttl_secs / 2).clamp(600, 3600));
        let reusable = match state.as_ref() {
            Some(cp) if path.is_dir() && cp.created.elapsed() <= max_age => {
                cp.seq == engine.latest_sequence()
                    || matches!(WalReader::new(engine.db(), cp.seq + 1).read(), Ok(Some(_)))
            }
            _ => false,
        };
        if reusable {
            info!(path = %path.display(), "full sync: sharing the existing checkpoint");
        } else {
            if self.active_senders.load(Ordering::Acquire) > 0 {
                // Files of the old checkpoint are still being sent; replacing them now would
                // hand that replica a mix of two checkpoints.
                return Err("the previous checkpoint is still being sent".into());
            }
            let _ = std::fs::remove_dir_all(&path);
            let started = Instant::now();
            let seq = engine
                .checkpoint(&path)
                .map_err(|e| format!("checkpoint failed: {e}"))?;
            info!(path = %path.display(), seq, ms = started.elapsed().as_millis() as u64, "full sync: checkpoint created");
            if seq > 0 {
                // What proves that a history ends at this checkpoint: the digest of its last
                // batch, or, if the WAL no longer holds it, a token this master remembers.
                let anchor = wal_digest_at(engine, seq).unwrap_or_else(|| {
                    let token = format!("checkpoint-{:016x}{:016x}", rand::random::<u64>(), seq);
                    let mut anchors = self.anchors.lock();
                    anchors.push((seq, token.clone()));
                    let excess = anchors.len().saturating_sub(MAX_ANCHORS);
                    anchors.drain(..excess);
                    token
                });
                std::fs::write(path.join(ANCHOR_IN_CHECKPOINT), format!("{seq} {anchor}\n"))
                    .map_err(|e| format!("cannot write the checkpoint's anchor: {e}"))?;
            }
            *state = Some(CheckpointState {
                seq,
                created: Instant::now(),
                last_used: Instant::now(),
            });
        }
        if let Some(cp) = state.as_mut() {
            cp.last_used = Instant::now();
        }
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .map_err(|e| format!("cannot list the checkpoint: {e}"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        self.counters.full.fetch_add(1, Ordering::Relaxed);
        Ok(names)
    }

    /// `_fetch_file a,b,c`: for each file, a line `<size>\r\n` and its bytes, throttled by
    /// `max-replication-mb`. A file that cannot be opened ends the connection.
    pub fn start_file_sender(
        self: &Arc<Self>,
        dir: PathBuf,
        mut stream: TcpStream,
        names: Vec<String>,
    ) {
        let master = self.clone();
        let _ = std::thread::Builder::new()
            .name("repl-files".into())
            .spawn(move || {
                master.active_senders.fetch_add(1, Ordering::AcqRel);
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let result = master.send_files(&dir.join("checkpoint"), &mut stream, &names);
                if let Err(e) = result {
                    warn!(replica = %peer, error = %e, "full sync: sending files failed");
                } else {
                    info!(replica = %peer, files = names.len(), "full sync: files sent");
                }
                master.touch_checkpoint();
                master.active_senders.fetch_sub(1, Ordering::AcqRel);
                let _ = stream.shutdown(Shutdown::Both);
            });
    }

    fn touch_checkpoint(&self) {
        if let Some(cp) = self.checkpoint.lock().as_mut() {
            cp.last_used = Instant::now();
        }
    }

    fn send_files(
        &self,
        dir: &Path,
        stream: &mut TcpStream,
        names: &[String],
    ) -> std::io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        let started = Instant::now();
        let mut sent: u64 = 0;
        for name in names {
            if name.contains('/') || name.starts_with('.') {
                return Err(std::io::Error::other(format!("bad file name {name}")));
            }
            let mut file = std::fs::File::open(dir.join(name))?;
            let size = file.metadata()?.len();
            stream.write_all(format!("{size}\r\n").as_bytes())?;
            let mut left = size;
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = file.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::Error::other(format!(
                        "{name} shrank while sending"
                    )));
                }
                stream.write_all(&buf[..n])?;
                left -= n as u64;
                sent += n as u64;
                self.throttle(started, sent);
            }
            self.touch_checkpoint();
        }
        Ok(())
    }

    fn throttle(&self, started: Instant, sent: u64) {
        let mb = self.max_replication_mb.load(Ordering::Relaxed);
        if mb == 0 {
            return;
        }
        let senders = self.active_senders.load(Ordering::Relaxed).max(1) as u64;
        let rate = (mb * 1024 * 1024 / senders).max(1);
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }

    /// Periodic housekeeping: removes a checkpoint no sender used for 30 s, or older than a day.
    pub fn maintain(&self, dir: &Path) {
        let mut state = self.checkpoint.lock();
        let stale = match state.as_ref() {
            Some(cp) => {
                self.active_senders.load(Ordering::Acquire) == 0
                    && (cp.last_used.elapsed() > Duration::from_secs(30)
                        || cp.created.elapsed() > Duration::from_secs(86400))
            }
            None => false,
        };
        if stale {
            let path = dir.join("checkpoint");
            if let Err(e) = std::fs::remove_dir_all(&path) {
                warn!(path = %path.display(), "cannot remove the old checkpoint: {e}");
            } else {
                info!(path = %path.display(), "removed the full-sync checkpoint");
            }
            *state = None;
        }
    }
}

/// Flush rules of Kvrocks' feeder: the first batch, 16 KiB buffered, 16 batches buffered, or
/// close to the tip (issue #346).
const FLUSH_BYTES: usize = 16 * 1024;
const FLUSH_BATCHES: usize = 16;
const HEARTBEAT: Duration = Duration::from_secs(1);

fn feed(
    engine: &Engine,
    mut stream: TcpStream,
    next: u64,
    replica: &Arc<ReplicaInfo>,
    master: &Master,
) -> &'static str {
    // Notes queued before this feed began are not for it.
    let mut note_index = master.next_note.load(Ordering::Acquire);
    // Appends to `buf` the notes due once the batch ending at `sent` has gone.
    let mut add_notes = |buf: &mut Vec<u8>, sent: u64| {
        if !replica.quarry {
            return;
        }
        let (due, next_index) = master.notes_due(note_index, sent);
        note_index = next_index;
        for p in due {
            buf.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            buf.extend_from_slice(&p);
            buf.extend_from_slice(b"\r\n");
        }
    };
    let _ = stream.set_nodelay(true);
    // Acknowledgements come back on the same socket.
    if let Ok(read_half) = stream.try_clone() {
        let r = replica.clone();
        let _ = std::thread::Builder::new()
            .name("repl-acks".into())
            .spawn(move || {
                let mut reader = BufReader::new(read_half);
                loop {
                    match wire::read_command(&mut reader) {
                        Ok(args) => {
                            if args.len() == 3
                                && args[0].eq_ignore_ascii_case(b"replconf")
                                && args[1].eq_ignore_ascii_case(b"ack")
                            {
                                if let Some(seq) = std::str::from_utf8(&args[2])
                                    .ok()
                                    .and_then(|s| s.parse::<u64>().ok())
                                {
                                    r.acked.fetch_max(seq, Ordering::AcqRel);
                                    r.last_ack_ms.store(now_ms(), Ordering::Release);
                                }
                            }
                        }
                        Err(_) => {
                            r.close();
                            return;
                        }
                    }
                }
            });
    }
    if stream.write_all(b"+OK\r\n").is_err() {
        return "the replica went away";
    }
    let mut reader = WalReader::new(engine.db(), next);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut pending = 0usize;
    let mut first = true;
    let mut last_send = Instant::now();
    loop {
        if replica.closed.load(Ordering::Acquire) {
            return "the replica disconnected or was disconnected";
        }
        match reader.read() {
            Ok(Some(batch)) => {
                // Notes placed before this batch go first.
                add_notes(&mut buf, batch.seq.saturating_sub(1));
                buf.extend_from_slice(format!("${}\r\n", batch.data.len()).as_bytes());
                buf.extend_from_slice(&batch.data);
                buf.extend_from_slice(b"\r\n");
                pending += 1;
                let near_tip = engine.latest_sequence().saturating_sub(batch.seq) <= 16;
                if first || buf.len() >= FLUSH_BYTES || pending >= FLUSH_BATCHES || near_tip {
                    if stream.write_all(&buf).is_err() {
                        return "sending to the replica failed";
                    }
                    buf.clear();
                    pending = 0;
                    first = false;
                    last_send = Instant::now();
                }
                replica.sent.store(batch.last_seq(), Ordering::Release);
            }
            Ok(None) => {
                add_notes(&mut buf, reader.next_seq().saturating_sub(1));
                if !buf.is_empty() {
                    if stream.write_all(&buf).is_err() {
                        return "sending to the replica failed";
                    }
                    buf.clear();
                    pending = 0;
                    last_send = Instant::now();
                } else if last_send.elapsed() >= HEARTBEAT {
                    if stream.write_all(b"$4\r\nping\r\n").is_err() {
                        return "sending a heartbeat to the replica failed";
                    }
                    last_send = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(WalGap::NotABatchStart(seq)) => {
                error!(replica = %replica.peer, expected = seq, "WAL iterator is discrete: the next batch is missing; dropping the replica so that it full-syncs");
                return "the WAL lost the next batch";
            }
            Err(e) => {
                error!(replica = %replica.peer, error = %e, "reading the WAL failed; dropping the replica");
                return "reading the WAL failed";
            }
        }
    }
}
