//! Continuous verification of replicas, and self-repair (docs/replication.md, "Verification").
//!
//! A master walks its keyspace in slices. For each slice it takes a snapshot at sequence S
//! with writes held back for a moment, and queues a `begin` marker as a note of the
//! replication stream: each feeder sends it to its quarry replica right after the batch that
//! ends at S. It hashes the slice on that snapshot, off the command threads and paced by
//! `verify-max-mb-per-second`, and queues a `result` note with the digest. Notes are not
//! written to the WAL: they take no sequence number, so a master's history is the same with or
//! without verification (an old master rejoins a promoted replica as before), and Kvrocks
//! replicas never see them.
//!
//! A quarry replica that receives a `begin` marker has applied exactly the batches up to S and
//! no later one: it snapshots right then, so its snapshot holds the same history. It passes
//! the marker on to its own quarry replicas at the same place, so a chain is checked end to end. It hashes the same
//! slice, judging expiry at the master's clock carried in the marker, and compares with the
//! `result`. A mismatch is logged and counted; with `verify-repair yes` the replica asks its
//! master (`VERIFY REPAIR`, relayed up a chain) to rewrite the slice into the stream, and the
//! master verifies that slice again at once. After [`MAX_REPAIRS`] rewrites that did not mend
//! it, the replica falls back to a full sync.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use quarry_commands::args::lower;
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_storage::digest::{slice_end, span_digest, Span};
use quarry_storage::encoding::now_ms;
use quarry_storage::{ColumnFamily, Engine, StorageError};
use tracing::{debug, error, info, warn};

use crate::server::Server;

/// What every marker starts with: a note of the replication stream (quarry replicas only).
pub const MARKER_PREFIX: &[u8] = b"quarry-note verify ";
/// Rewrites of one slice before a replica gives up on repairs and fetches a full copy.
pub const MAX_REPAIRS: u32 = 3;
/// Slices a replica hashes at once; a `begin` beyond them is skipped (and counted).
const MAX_COMPUTING: usize = 4;
/// How long a replica keeps a slice whose other half never came.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// How long a range counts as being repaired without its re-check arriving.
const REPAIR_TTL: Duration = Duration::from_secs(60);

/// A slice of the keyspace: `[lo, hi)` of the metadata column family (`hi` None: to the end).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slice {
    pub lo: Vec<u8>,
    pub hi: Option<Vec<u8>>,
}

impl Slice {
    fn span(&self) -> Span<'_> {
        Span {
            lo: &self.lo,
            hi: self.hi.as_deref(),
        }
    }

    fn hex_bounds(&self) -> (String, String) {
        (
            hex::encode(&self.lo),
            self.hi.as_deref().map_or_else(|| "-".into(), hex::encode),
        )
    }

    fn parse_hex(lo: &[u8], hi: &[u8]) -> Option<Slice> {
        Some(Slice {
            lo: hex::decode(lo).ok()?,
            hi: if hi == b"-" {
                None
            } else {
                Some(hex::decode(hi).ok()?)
            },
        })
    }

    /// The slice as an operator reads it: slots in cluster mode, keys otherwise.
    pub fn describe(&self, slot_encoded: bool) -> String {
        // `ns_len | ns | [slot] | key`: the bound's namespace, and what follows it.
        let split = |k: &[u8]| -> Option<(Vec<u8>, Vec<u8>)> {
            let n = *k.first()? as usize;
            Some((k.get(1..1 + n)?.to_vec(), k.get(1 + n..)?.to_vec()))
        };
        let lo = split(&self.lo);
        let hi = self.hi.as_deref().and_then(split);
        let ns_note = |ns: &[u8]| {
            if ns == quarry_storage::encoding::DEFAULT_NAMESPACE {
                String::new()
            } else {
                format!(" of namespace {}", String::from_utf8_lossy(ns))
            }
        };
        if slot_encoded {
            let slot = |rest: &[u8]| rest.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let first = lo.as_ref().and_then(|(_, r)| slot(r)).unwrap_or(0);
            let last = match &hi {
                // A bound at a slot's start ends the slice before that slot.
                Some((_, r)) if r.len() == 2 => slot(r).map(|s| s.saturating_sub(1)),
                Some((_, r)) => slot(r),
                None => Some(quarry_storage::slot::SLOT_COUNT - 1),
            }
            .unwrap_or(quarry_storage::slot::SLOT_COUNT - 1);
            let ns = lo.as_ref().map(|(ns, _)| ns_note(ns)).unwrap_or_default();
            return format!("slots {first}-{last}{ns}");
        }
        let shown = |b: Option<&(Vec<u8>, Vec<u8>)>, open: &str| match b {
            Some((ns, key)) => format!("'{}'{}", printable(key), ns_note(ns)),
            None => open.to_string(),
        };
        format!(
            "keys {} to {}",
            shown(lo.as_ref(), "(start)"),
            shown(hi.as_ref(), "(end)")
        )
    }
}

fn printable(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// A marker as the stream carries it (the note's text after [`MARKER_PREFIX`]).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Marker {
    /// `begin <id> <sequence> <master ms> <progress ‰> <lo hex> <hi hex or ->`: sent right
    /// after the batch that ends at `sequence`; the state there is what the digest is of.
    Begin {
        id: u64,
        seq: u64,
        time_ms: u64,
        progress: u64,
        slice: Slice,
    },
    /// `result <id> <sequence> <digest> <keys>`.
    Result {
        id: u64,
        seq: u64,
        digest: String,
        keys: u64,
    },
}

impl Marker {
    fn encode(&self) -> Vec<u8> {
        let mut out = MARKER_PREFIX.to_vec();
        let text = match self {
            Marker::Begin {
                id,
                seq,
                time_ms,
                progress,
                slice,
            } => {
                let (lo, hi) = slice.hex_bounds();
                format!("begin {id} {seq} {time_ms} {progress} {lo} {hi}")
            }
            Marker::Result {
                id,
                seq,
                digest,
                keys,
            } => format!("result {id} {seq} {digest} {keys}"),
        };
        out.extend_from_slice(text.as_bytes());
        out
    }

    fn parse(data: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(data.strip_prefix(MARKER_PREFIX)?).ok()?;
        let f: Vec<&str> = text.split(' ').collect();
        match f.as_slice() {
            ["begin", id, seq, time_ms, progress, lo, hi] => Some(Marker::Begin {
                id: id.parse().ok()?,
                seq: seq.parse().ok()?,
                time_ms: time_ms.parse().ok()?,
                progress: progress.parse().ok()?,
                slice: Slice::parse_hex(lo.as_bytes(), hi.as_bytes())?,
            }),
            ["result", id, seq, digest, keys] => Some(Marker::Result {
                id: id.parse().ok()?,
                seq: seq.parse().ok()?,
                digest: digest.to_string(),
                keys: keys.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// The settings, read when they are needed.
struct Settings {
    cycle: Duration,
    bytes_per_sec: u64,
    slice_keys: usize,
    repair: bool,
}

impl Settings {
    fn read(server: &Server) -> Settings {
        let cfg = server.config.read();
        Settings {
            cycle: Duration::from_secs(cfg.get_i64("verify-cycle-seconds").max(0) as u64),
            bytes_per_sec: cfg.get_i64("verify-max-mb-per-second").max(0) as u64 * 1024 * 1024,
            slice_keys: cfg.get_i64("verify-slice-keys").max(1) as usize,
            repair: cfg.get_bool("verify-repair"),
        }
    }
}

/// The master's walk through its keyspace.
#[derive(Default)]
struct Walk {
    /// Where the next slice starts; None: a new cycle starts at the beginning.
    cursor: Option<Vec<u8>>,
    cycle_started: Option<Instant>,
    /// The share of the keyspace walked in this cycle, in thousandths.
    done_permille: u64,
    keys_done: u64,
}

/// One slice a replica checks: its own digest and the master's, as each arrives.
struct Pending {
    slice: Slice,
    seq: u64,
    ours: Option<(String, u64)>,
    theirs: Option<(String, u64)>,
    since: Instant,
}

/// Verification's state and counters (INFO `# Verification`, VERIFY STATUS).
#[derive(Default)]
pub struct Verify {
    // The master's side.
    walk: Mutex<Walk>,
    next_id: AtomicU64,
    run_now: AtomicBool,
    /// Slices to verify again at once: those just rewritten by a repair.
    recheck: Mutex<VecDeque<Slice>>,
    slices_issued: AtomicU64,
    cycles_completed: AtomicU64,
    repairs_served: AtomicU64,
    /// The master's walk, in thousandths, as this node last knew it (its own, or the one its
    /// master's markers carry).
    progress_permille: AtomicU64,

    // The replica's side.
    pending: Mutex<HashMap<u64, Pending>>,
    computing: AtomicUsize,
    slices_checked: AtomicU64,
    slices_skipped: AtomicU64,
    mismatches: AtomicU64,
    repairs: AtomicU64,
    repairs_failed: AtomicU64,
    full_syncs: AtomicU64,
    last_mismatch: Mutex<String>,
    last_ok: Mutex<Option<Instant>>,
    /// Slices being repaired, with the rewrites asked for so far and when the last was.
    repairing: Mutex<HashMap<Slice, (u32, Instant)>>,
    /// How many slices are being repaired (the read path's cheap check).
    repairing_count: AtomicUsize,
    /// Bumped when the database is replaced: digests under way stop.
    epoch: AtomicU64,

    // Failpoints (`enable-debug-command`): alter a value in each of the next N master batches
    // that hold one; delay the digests.
    pub alter_next: AtomicU64,
    pub delay_ms: AtomicU64,
}

impl Verify {
    pub fn new() -> Verify {
        Verify {
            // Ids differ from a previous run's, so that a restarted master's markers never
            // meet a slice a replica kept from before.
            next_id: AtomicU64::new(now_ms() << 16),
            ..Verify::default()
        }
    }

    /// Whether a replica with `slave-serve-stale-data no` must refuse reads: a slice is
    /// being repaired.
    pub fn repairing(&self) -> bool {
        self.repairing_count.load(Ordering::Relaxed) > 0
    }

    /// Forgets the slices under way and stops their digests (the database is replaced, or
    /// the node changes role).
    pub fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.pending.lock().clear();
        self.repairing.lock().clear();
        self.repairing_count.store(0, Ordering::Relaxed);
    }

    fn set_repairing(&self, map: &HashMap<Slice, (u32, Instant)>) {
        self.repairing_count.store(map.len(), Ordering::Relaxed);
    }

    /// Forgets repairs whose re-check never came (skipped, or lost with a reconnection), so
    /// that reads are not refused for ever; the next mismatch asks again.
    fn prune_repairing(&self) {
        let mut repairing = self.repairing.lock();
        repairing.retain(|_, (_, since)| since.elapsed() < REPAIR_TTL);
        self.set_repairing(&repairing);
    }
}

/// Paces a digest to `verify-max-mb-per-second`, and stops it when the database is replaced.
struct Pacer<'a> {
    verify: &'a Verify,
    epoch: u64,
    bytes_per_sec: u64,
    started: Instant,
    bytes: u64,
}

impl<'a> Pacer<'a> {
    fn new(verify: &'a Verify, bytes_per_sec: u64) -> Pacer<'a> {
        Pacer {
            verify,
            epoch: verify.epoch.load(Ordering::Acquire),
            bytes_per_sec,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn pace(&mut self, n: u64) -> Result<(), StorageError> {
        if self.verify.epoch.load(Ordering::Acquire) != self.epoch {
            return Err(StorageError::Corrupt(
                "verification stopped: the database is being replaced".into(),
            ));
        }
        self.bytes += n;
        if self.bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
            // In steps of at most 100 ms, so that a full sync waiting for the engine is not
            // held up by a long wait after a large key.
            while due > self.started.elapsed() + Duration::from_millis(2) {
                if self.verify.epoch.load(Ordering::Acquire) != self.epoch {
                    return Err(StorageError::Corrupt(
                        "verification stopped: the database is being replaced".into(),
                    ));
                }
                let left = due - self.started.elapsed();
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
        }
        Ok(())
    }
}

/// Starts the master's walk: one thread that issues slices while this node is a master with
/// replicas.
pub fn start(server: &Arc<Server>) {
    let weak = Arc::downgrade(server);
    let spawned = std::thread::Builder::new()
        .name("verify".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            let Some(server) = weak.upgrade() else { return };
            master_tick(&server);
        });
    if let Err(e) = spawned {
        error!("cannot start the verification thread: {e}");
    }
}

fn master_tick(server: &Server) {
    let v = &server.verify;
    if server.repl.is_replica.load(Ordering::Acquire) {
        *v.walk.lock() = Walk::default();
        return;
    }
    let Some(engine) = server.engine() else {
        return;
    };
    let settings = Settings::read(server);
    // A slice just repaired is checked again first, whatever the cycle's pace.
    let recheck = v.recheck.lock().pop_front();
    if let Some(slice) = recheck {
        if let Err(e) = issue(server, &engine, &slice, &settings) {
            warn!(range = %slice.describe(server.repl.codec.slot_encoded()), error = %e, "verification: re-checking a repaired slice failed");
        }
        return;
    }
    if settings.cycle.is_zero() || !server.repl.master.has_quarry_replicas() {
        return;
    }
    let now = Instant::now();
    let slot_encoded = server.repl.codec.slot_encoded();
    let (lo, due) = {
        let mut walk = v.walk.lock();
        if v.run_now.swap(false, Ordering::AcqRel) {
            *walk = Walk::default();
        }
        let started = *walk.cycle_started.get_or_insert(now);
        // Slices are spread over the cycle by the share of the keyspace they cover.
        let due = started + settings.cycle.mul_f64(walk.done_permille as f64 / 1000.0);
        (walk.cursor.clone().unwrap_or_default(), due)
    };
    if now < due {
        return;
    }
    let hi = match slice_end(&engine, &lo, settings.slice_keys, slot_encoded) {
        Ok(hi) => hi,
        Err(e) => {
            warn!(error = %e, "verification: cannot choose the next slice");
            return;
        }
    };
    let slice = Slice { lo, hi };
    let keys = match issue(server, &engine, &slice, &settings) {
        Ok(keys) => keys,
        Err(e) => {
            warn!(range = %slice.describe(slot_encoded), error = %e, "verification: a slice failed");
            return;
        }
    };
    let mut walk = v.walk.lock();
    walk.keys_done += keys;
    match slice.hi {
        None => {
            v.cycles_completed.fetch_add(1, Ordering::Relaxed);
            v.progress_permille.store(1000, Ordering::Relaxed);
            debug!(
                keys = walk.keys_done,
                "verification: a cycle through the keyspace ended"
            );
            // The next cycle starts a cycle after this one did (at once if that is past).
            let next = walk
                .cycle_started
                .map_or(now, |s| s + settings.cycle)
                .max(now);
            *walk = Walk {
                cycle_started: Some(next),
                ..Walk::default()
            };
        }
        Some(hi) => {
            let estimate = engine
                .property(ColumnFamily::Metadata, "rocksdb.estimate-num-keys")
                .unwrap_or(0)
                .max(walk.keys_done + 1);
            walk.done_permille = (walk.keys_done * 1000 / estimate).min(999);
            v.progress_permille
                .store(walk.done_permille, Ordering::Relaxed);
            walk.cursor = Some(hi);
        }
    }
}

/// Issues one slice: the `begin` marker and a snapshot right after it, the digest on that
/// snapshot, then the `result` marker. Returns the live keys the slice held.
fn issue(
    server: &Server,
    engine: &Engine,
    slice: &Slice,
    settings: &Settings,
) -> Result<u64, String> {
    let v = &server.verify;
    let id = v.next_id.fetch_add(1, Ordering::Relaxed);
    let time_ms = now_ms();
    let progress = v.progress_permille.load(Ordering::Relaxed);
    // With writes held back for a moment, the snapshot's sequence S is where the marker goes:
    // a feeder sends it after the batch ending at S and before any later one, as no later one
    // exists until the marker is queued.
    let _filters = quarry_storage::HoldFilters::new();
    let (snapshot, seq) = engine
        .alone(|e| {
            let (snapshot, seq) = e.snapshot_at_sequence();
            let begin = Marker::Begin {
                id,
                seq,
                time_ms,
                progress,
                slice: slice.clone(),
            };
            server.repl.master.push_note(seq, begin.encode());
            (snapshot, seq)
        })
        .map_err(|e| e.to_string())?;
    let mut pacer = Pacer::new(v, settings.bytes_per_sec);
    let (digest, keys) = span_digest(
        engine,
        &snapshot,
        slice.span(),
        server.repl.codec.slot_encoded(),
        time_ms,
        &mut |n| pacer.pace(n),
    )
    .map_err(|e| e.to_string())?;
    drop(snapshot);
    let result = Marker::Result {
        id,
        seq,
        digest,
        keys,
    };
    server.repl.master.push_note(0, result.encode());
    v.slices_issued.fetch_add(1, Ordering::Relaxed);
    Ok(keys)
}

/// The replica's side: a note of the stream, at its place (every batch before it applied,
/// none after it). Markers are passed on to this node's own quarry replicas at the same place.
pub fn on_note(server: &Arc<Server>, data: &[u8]) {
    let Some(marker) = Marker::parse(data) else {
        return;
    };
    server.verify.prune_repairing();
    match marker {
        Marker::Begin {
            id,
            seq,
            time_ms,
            progress,
            slice,
        } => {
            // This node applies nothing else meanwhile: its replicas get the marker after the
            // same batch.
            server.repl.master.push_note(seq, data.to_vec());
            server
                .verify
                .progress_permille
                .store(progress, Ordering::Relaxed);
            let at = server.engine().map(|e| e.latest_sequence());
            if at != Some(seq) {
                warn!(expected = seq, found = ?at, "verification: the marker is not where the stream is; slice skipped");
                server.verify.slices_skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            begin(server, id, time_ms, seq, slice);
        }
        Marker::Result {
            id,
            seq,
            digest,
            keys,
        } => {
            server.repl.master.push_note(0, data.to_vec());
            let done = {
                let mut pending = server.verify.pending.lock();
                match pending.get_mut(&id) {
                    Some(p) if p.seq == seq => {
                        p.theirs = Some((digest, keys));
                        p.ours.is_some()
                    }
                    _ => false,
                }
            };
            if done {
                conclude(server, id);
            }
        }
    }
}

/// A `begin` marker was applied at `seq`: snapshot now, hash in the background.
fn begin(server: &Arc<Server>, id: u64, time_ms: u64, seq: u64, slice: Slice) {
    let v = &server.verify;
    {
        let mut pending = v.pending.lock();
        pending.retain(|_, p| p.since.elapsed() < PENDING_TTL);
        if v.computing.load(Ordering::Acquire) >= MAX_COMPUTING {
            v.slices_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.insert(
            id,
            Pending {
                slice: slice.clone(),
                seq,
                ours: None,
                theirs: None,
                since: Instant::now(),
            },
        );
    }
    v.computing.fetch_add(1, Ordering::AcqRel);
    let (taken_tx, taken_rx) = std::sync::mpsc::sync_channel::<bool>(1);
    let srv = server.clone();
    let spawned = std::thread::Builder::new()
        .name("verify-slice".into())
        .spawn(move || {
            replica_digest(&srv, id, time_ms, seq, &slice, taken_tx);
            srv.verify.computing.fetch_sub(1, Ordering::AcqRel);
        });
    match spawned {
        // The next batch waits until the snapshot is taken (a snapshot costs microseconds).
        Ok(_) => {
            let _ = taken_rx.recv();
        }
        Err(e) => {
            v.computing.fetch_sub(1, Ordering::AcqRel);
            v.pending.lock().remove(&id);
            error!("cannot start a verification thread: {e}");
        }
    }
}

fn replica_digest(
    server: &Arc<Server>,
    id: u64,
    time_ms: u64,
    seq: u64,
    slice: &Slice,
    taken: std::sync::mpsc::SyncSender<bool>,
) {
    let v = &server.verify;
    let Some(engine) = server.engine() else {
        let _ = taken.send(false);
        v.pending.lock().remove(&id);
        return;
    };
    let _filters = quarry_storage::HoldFilters::new();
    let (snapshot, at) = engine.snapshot_at_sequence();
    let _ = taken.send(true);
    if at != seq {
        // Only this node's own writes could move it, and a replica has none.
        warn!(
            expected = seq,
            found = at,
            "verification: the snapshot is not at the marker's sequence; slice skipped"
        );
        v.pending.lock().remove(&id);
        v.slices_skipped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let delay = v.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let settings = Settings::read(server);
    let mut pacer = Pacer::new(v, settings.bytes_per_sec);
    let result = span_digest(
        &engine,
        &snapshot,
        slice.span(),
        server.repl.codec.slot_encoded(),
        time_ms,
        &mut |n| pacer.pace(n),
    );
    drop(snapshot);
    drop(engine);
    match result {
        Ok(ours) => {
            let done = {
                let mut pending = v.pending.lock();
                match pending.get_mut(&id) {
                    Some(p) => {
                        p.ours = Some(ours);
                        p.theirs.is_some()
                    }
                    None => false,
                }
            };
            if done {
                conclude(server, id);
            }
        }
        Err(e) => {
            debug!(error = %e, "verification: a slice's digest stopped");
            v.pending.lock().remove(&id);
            v.slices_skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Both digests of a slice are known: compare, and repair on a mismatch.
fn conclude(server: &Arc<Server>, id: u64) {
    let v = &server.verify;
    let Some(p) = v.pending.lock().remove(&id) else {
        return;
    };
    let (Some(ours), Some(theirs)) = (p.ours, p.theirs) else {
        return;
    };
    v.slices_checked.fetch_add(1, Ordering::Relaxed);
    let slot_encoded = server.repl.codec.slot_encoded();
    let range = p.slice.describe(slot_encoded);
    if ours.0 == theirs.0 {
        *v.last_ok.lock() = Some(Instant::now());
        let mut repairing = v.repairing.lock();
        if let Some((rewrites, _)) = repairing.remove(&p.slice) {
            v.set_repairing(&repairing);
            v.repairs.fetch_add(1, Ordering::Relaxed);
            info!(range = %range, sequence = p.seq, rewrites, digest = %ours.0, "verification: the repaired range now matches the master");
        }
        return;
    }
    v.mismatches.fetch_add(1, Ordering::Relaxed);
    *v.last_mismatch.lock() = range.clone();
    warn!(
        range = %range,
        sequence = p.seq,
        master_digest = %theirs.0,
        master_keys = theirs.1,
        replica_digest = %ours.0,
        replica_keys = ours.1,
        "verification: this replica differs from its master"
    );
    if !Settings::read(server).repair {
        return;
    }
    let rewrites = {
        let mut repairing = v.repairing.lock();
        let entry = repairing
            .entry(p.slice.clone())
            .or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
        let rewrites = entry.0;
        if rewrites > MAX_REPAIRS {
            repairing.clear();
        }
        v.set_repairing(&repairing);
        rewrites
    };
    if rewrites > MAX_REPAIRS {
        v.full_syncs.fetch_add(1, Ordering::Relaxed);
        error!(range = %range, rewrites = MAX_REPAIRS, "verification: repairs did not mend the range; fetching a full copy from the master");
        if let Some(link) = server.repl.link.lock().as_ref() {
            link.force_full_sync();
        }
        return;
    }
    let srv = server.clone();
    let slice = p.slice;
    let _ = std::thread::Builder::new()
        .name("verify-repair".into())
        .spawn(move || {
            info!(range = %range, attempt = rewrites, "verification: asking the master to rewrite the range");
            if let Err(e) = ask_master(&srv, &slice) {
                srv.verify.repairs_failed.fetch_add(1, Ordering::Relaxed);
                warn!(range = %range, error = %e, "verification: the master did not rewrite the range");
                let mut repairing = srv.verify.repairing.lock();
                repairing.remove(&slice);
                srv.verify.set_repairing(&repairing);
            }
        });
}

/// Sends `VERIFY REPAIR` for `slice` to this node's master.
fn ask_master(server: &Server, slice: &Slice) -> Result<String, String> {
    let (host, port) = server
        .repl
        .link
        .lock()
        .as_ref()
        .map(|l| (l.host.clone(), l.port))
        .ok_or("no master")?;
    let auth = server.config.read().get("masterauth").to_string();
    let mut peer = crate::peer::Peer::connect(
        server,
        &format!("{host}:{port}"),
        Duration::from_secs(60),
        (!auth.is_empty()).then_some(auth.as_str()),
    )?;
    let (lo, hi) = slice.hex_bounds();
    Ok(peer.call(&[b"VERIFY", b"REPAIR", lo.as_bytes(), hi.as_bytes()])?)
}

/// `VERIFY REPAIR <lo> <hi>` on a master: rewrites the slice into the stream and verifies it
/// again at once. On a replica: relayed to its master (a chain's replicas repair through the
/// top master, whose stream reaches them all).
fn repair(server: &Server, slice: Slice) -> Result<Frame, CmdError> {
    if server.repl.is_replica.load(Ordering::Acquire) {
        return ask_master(server, &slice)
            .map(Frame::Simple)
            .map_err(|e| CmdError::err(format!("relaying the repair to the master: {e}")));
    }
    let engine = server.engine().ok_or(CmdError::Loading)?;
    // No command's read-modify-write may straddle the rewrite (it would write under the
    // version the rewrite replaced): the write fence, which every write command and script
    // holds while it runs, is taken exclusively first.
    let _no_writes_in_flight = server.migration.fence.write();
    // A slot migration that sees a range deletion in the WAL fails (it cannot split it by
    // slot): the repair waits for the migration instead. The replica asks again after its
    // next mismatch. (Checked under the fence: no migration starts its cut-over meanwhile.)
    let migrating = server
        .migration
        .job
        .lock()
        .as_ref()
        .is_some_and(|j| j.running());
    if migrating {
        return Err(CmdError::err(
            "a slot migration is under way; the range is rewritten after it",
        ));
    }
    let slot_encoded = server.repl.codec.slot_encoded();
    let started = Instant::now();
    let written = engine
        .write_alone(|e| {
            quarry_storage::repair::rewrite_span(e, slice.span(), slot_encoded, now_ms())
        })
        .map_err(|e| CmdError::Storage(e.to_string()))?;
    let v = &server.verify;
    v.repairs_served.fetch_add(1, Ordering::Relaxed);
    info!(
        range = %slice.describe(slot_encoded),
        keys = written.keys,
        bytes = written.bytes,
        ms = started.elapsed().as_millis() as u64,
        "verification: rewrote a range for a replica that differs"
    );
    let mut recheck = v.recheck.lock();
    if !recheck.contains(&slice) {
        recheck.push_back(slice);
    }
    Ok(Frame::ok())
}

/// Verification's counters at one moment (the Prometheus endpoint).
pub struct Snapshot {
    pub issued: u64,
    pub checked: u64,
    pub skipped: u64,
    pub mismatches: u64,
    pub repairs: u64,
    pub repairs_failed: u64,
    pub full_syncs: u64,
    pub repairing: u64,
    pub progress_permille: u64,
    pub last_ok_secs: Option<u64>,
    pub cycles_completed: u64,
    pub repairs_served: u64,
    pub last_mismatch: String,
}

impl Verify {
    pub fn snapshot(&self) -> Snapshot {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            issued: n(&self.slices_issued),
            checked: n(&self.slices_checked),
            skipped: n(&self.slices_skipped),
            mismatches: n(&self.mismatches),
            repairs: n(&self.repairs),
            repairs_failed: n(&self.repairs_failed),
            full_syncs: n(&self.full_syncs),
            repairing: self.repairing_count.load(Ordering::Relaxed) as u64,
            progress_permille: n(&self.progress_permille),
            last_ok_secs: self.last_ok.lock().map(|t| t.elapsed().as_secs()),
            cycles_completed: n(&self.cycles_completed),
            repairs_served: n(&self.repairs_served),
            last_mismatch: self.last_mismatch.lock().clone(),
        }
    }
}

/// INFO's `# Verification` section (also VERIFY STATUS).
pub fn section(server: &Server, out: &mut String) {
    let v = server.verify.snapshot();
    let settings = Settings::read(server);
    out.push_str("# Verification\r\n");
    let mut l = |k: &str, val: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{val}\r\n");
    };
    l("verify_cycle_seconds", &settings.cycle.as_secs());
    l("verify_repair", &if settings.repair { "yes" } else { "no" });
    let progress = v.progress_permille;
    l(
        "verify_cycle_progress",
        &format!("{}.{}%", progress / 10, progress % 10),
    );
    l("verify_cycles_completed", &v.cycles_completed);
    l("verify_slices_issued", &v.issued);
    l("verify_repairs_served", &v.repairs_served);
    l("verify_slices_checked", &v.checked);
    l("verify_slices_skipped", &v.skipped);
    l("verify_mismatches", &v.mismatches);
    l("verify_last_mismatch_range", &v.last_mismatch);
    let ago = v.last_ok_secs.map_or(-1, |s| s as i64);
    l("verify_last_ok_seconds_ago", &ago);
    l("verify_repairing", &v.repairing);
    l("verify_repairs", &v.repairs);
    l("verify_repairs_failed", &v.repairs_failed);
    l("verify_full_syncs", &v.full_syncs);
    l(
        "verify_notes_dropped",
        &server.repl.master.notes_dropped.load(Ordering::Relaxed),
    );
}

/// `VERIFY STATUS | RUN | REPAIR <lo> <hi>`.
pub fn command(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    match (sub.as_str(), a.len()) {
        ("status", 2) => {
            let mut out = String::new();
            section(server, &mut out);
            Ok(Frame::bulk(out))
        }
        ("run", 2) => {
            if server.repl.is_replica.load(Ordering::Acquire) {
                return Err(CmdError::err(
                    "VERIFY RUN starts a cycle on a master; this node is a replica",
                ));
            }
            server.verify.run_now.store(true, Ordering::Release);
            Ok(Frame::ok())
        }
        ("repair", 4) => {
            let slice = Slice::parse_hex(&a[2], &a[3])
                .ok_or_else(|| CmdError::err("invalid slice bounds (hex, or - for the end)"))?;
            tokio::task::block_in_place(|| repair(server, slice))
        }
        ("help", 2) => Ok(quarry_commands::table::help_lines(&[
            "VERIFY <subcommand> [<arg> ...]. Subcommands are:",
            "STATUS",
            "    This node's verification counters (as INFO verification).",
            "RUN",
            "    On a master: start a new cycle through the keyspace now.",
            "REPAIR <lo> <hi>",
            "    Rewrite a slice into the replication stream (replicas ask for it).",
            "HELP",
            "    Print this help.",
        ])),
        _ => Err(CmdError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try VERIFY HELP.",
            String::from_utf8_lossy(&a[1])
        ))),
    }
}

/// Whether the DEBUG failpoints that alter replication are allowed (`enable-debug-command`).
pub fn failpoints_allowed(server: &Server) -> bool {
    server.config.read().get("enable-debug-command") != "no"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_back() {
        let m = Marker::Begin {
            id: 7,
            seq: 42,
            time_ms: 1_700_000_000_000,
            progress: 250,
            slice: Slice {
                lo: b"\x0b__namespacea".to_vec(),
                hi: None,
            },
        };
        let text = m.encode();
        assert_eq!(
            text,
            b"quarry-note verify begin 7 42 1700000000000 250 0b5f5f6e616d65737061636561 -"
                .to_vec()
        );
        assert_eq!(Marker::parse(&text), Some(m));
        let r = Marker::Result {
            id: 7,
            seq: 42,
            digest: "00ff".into(),
            keys: 3,
        };
        assert_eq!(Marker::parse(&r.encode()), Some(r));
        // Kvrocks' own LogData (type markers, replication ids) is not a marker.
        assert_eq!(Marker::parse(b"r 0123456789ABCDEF"), None);
        assert_eq!(Marker::parse(b"quarry-note verify begin 1 2"), None);
    }

    #[test]
    fn slices_read_as_slots_or_keys() {
        let ns = b"\x0b__namespace";
        let at = |slot: u16| {
            let mut k = ns.to_vec();
            k.extend_from_slice(&slot.to_be_bytes());
            k
        };
        let s = Slice {
            lo: at(100),
            hi: Some(at(200)),
        };
        assert_eq!(s.describe(true), "slots 100-199");
        let s = Slice {
            lo: Vec::new(),
            hi: None,
        };
        assert_eq!(s.describe(true), "slots 0-16383");
        let mut lo = ns.to_vec();
        lo.extend_from_slice(b"a\x01");
        let s = Slice { lo, hi: None };
        assert_eq!(s.describe(false), "keys 'a\\x01' to (end)");
    }
}
