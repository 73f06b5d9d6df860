//! Backups as in Kvrocks 2.10: `BGSAVE` writes a RocksDB checkpoint of the database to
//! `backup-dir` in the background (one backup, which replaces the previous one), `LASTSAVE`
//! tells when the last one started, `FLUSHBACKUP` deletes it, `max-backup-to-keep 0` and
//! `max-backup-keep-hours` purge it, `bgsave-cron` schedules it, and
//! `purge-backup-on-fullsync` drops it when a full sync replaced the database.
//!
//! Beyond Kvrocks, a backup is written so that a crash never leaves a half backup in place of a
//! whole one (the new one is complete under `<backup-dir>.tmp` before it replaces the old one,
//! and [`settle`] finishes or undoes an interrupted replacement), and it carries the anchor that
//! proves where its history ends (`REPLICATION-ANCHOR`, as full-sync checkpoints do), so a node
//! started from it as a replica of the master it was taken from continues with a partial sync.
//! docs/backup.md has the walkthrough.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use parking_lot::Mutex;
use quarry_commands::CmdError;
use quarry_storage::files::{sync_dir, write_durable};
use quarry_storage::{failpoint, Engine};
use tracing::{error, info, warn};

use crate::server::Server;

#[derive(Default)]
pub struct Backups {
    running: AtomicBool,
    /// Unix seconds when the last BGSAVE started; 0 = none since the start.
    last_started: AtomicI64,
    last_failed: AtomicBool,
    last_secs: AtomicU64,
    /// Unix seconds when the backup now in `backup-dir` was made (for `max-backup-keep-hours`).
    created: AtomicI64,
    /// Serialises making and deleting backups.
    lock: Mutex<()>,
}

impl Backups {
    pub fn in_progress(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// INFO `# Persistence`, with Kvrocks' field names and Redis' `rdb_*` ones.
    pub fn info(&self, server: &Server, out: &mut String) {
        let line = |out: &mut String, k: &str, v: &dyn std::fmt::Display| {
            out.push_str(&format!("{k}:{v}\r\n"));
        };
        let running = self.in_progress() as u8;
        let status = if self.last_failed.load(Ordering::Relaxed) {
            "err"
        } else {
            "ok"
        };
        let last = lastsave(server);
        line(out, "bgsave_in_progress", &running);
        line(out, "last_bgsave_time", &last);
        line(out, "last_bgsave_status", &status);
        line(
            out,
            "last_bgsave_time_sec",
            &self.last_secs.load(Ordering::Relaxed),
        );
        line(out, "rdb_bgsave_in_progress", &running);
        line(out, "rdb_last_save_time", &last);
        line(out, "rdb_last_bgsave_status", &status);
    }
}

fn now_secs() -> i64 {
    (quarry_storage::encoding::now_ms() / 1000) as i64
}

fn backup_dir(server: &Server) -> PathBuf {
    dir_of(&server.config.read())
}

/// Refuses a `backup-dir` that is, holds, or lies inside what the node itself keeps in its data
/// directory: a backup replaces and deletes its directory, and must never take the database
/// with it.
fn check_dir(server: &Server, backup: &Path) -> Result<(), String> {
    let canonical = |p: &Path| -> PathBuf {
        match (p.parent(), p.file_name()) {
            _ if p.exists() => p.canonicalize().unwrap_or_else(|_| p.to_path_buf()),
            (Some(parent), Some(name)) if parent.exists() => parent
                .canonicalize()
                .map(|c| c.join(name))
                .unwrap_or_else(|_| p.to_path_buf()),
            _ => p.to_path_buf(),
        }
    };
    let data = canonical(Path::new(server.config.read().get("dir")));
    let backup = canonical(backup);
    let reserved = ["db", "db.tmp", "sync_checkpoint", "checkpoint", "log"];
    if data.starts_with(&backup) || reserved.iter().any(|r| backup.starts_with(data.join(r))) {
        return Err(format!(
            "backup-dir {} would replace the node's own data in {}",
            backup.display(),
            data.display()
        ));
    }
    Ok(())
}

/// `backup-dir`, or `<dir>/backup` while it is left at its default (as in Kvrocks).
pub fn dir_of(cfg: &crate::config::Config) -> PathBuf {
    match cfg.get("backup-dir") {
        "" | "data/backup" => PathBuf::from(cfg.get("dir")).join("backup"),
        other => PathBuf::from(other),
    }
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

/// LASTSAVE: when the last BGSAVE started, or the server's start before any (Kvrocks).
pub fn lastsave(server: &Server) -> i64 {
    match server.backups.last_started.load(Ordering::Relaxed) {
        0 => now_secs() - server.started.elapsed().as_secs() as i64,
        t => t,
    }
}

/// BGSAVE: starts a backup on its own thread.
pub fn bgsave(server: &Server) -> Result<(), CmdError> {
    let b = &server.backups;
    if b.running.swap(true, Ordering::AcqRel) {
        return Err(CmdError::err("bgsave in-progress"));
    }
    let Some(me) = server.repl.me.upgrade() else {
        b.running.store(false, Ordering::Release);
        return Err(CmdError::err("shutting down"));
    };
    let spawned = std::thread::Builder::new()
        .name("bgsave".into())
        .spawn(move || run(&me));
    if let Err(e) = spawned {
        b.running.store(false, Ordering::Release);
        return Err(CmdError::err(format!("cannot start the backup: {e}")));
    }
    Ok(())
}

fn run(server: &Arc<Server>) {
    let b = &server.backups;
    let started_at = now_secs();
    let started = Instant::now();
    let dir = backup_dir(server);
    info!(dir = %dir.display(), "backup started");
    let result = match (server.engine(), check_dir(server, &dir)) {
        (_, Err(e)) => Err(e),
        (Some(engine), Ok(())) => {
            let _guard = b.lock.lock();
            create(&engine, &dir)
        }
        (None, _) => Err("the database is being replaced".to_string()),
    };
    let secs = started.elapsed().as_secs();
    b.last_started.store(started_at, Ordering::Relaxed);
    b.last_secs.store(secs, Ordering::Relaxed);
    match result {
        Ok(seq) => {
            b.created.store(started_at, Ordering::Relaxed);
            b.last_failed.store(false, Ordering::Relaxed);
            info!(dir = %dir.display(), sequence = seq, seconds = secs, "backup finished");
        }
        Err(e) => {
            b.last_failed.store(true, Ordering::Relaxed);
            error!(dir = %dir.display(), error = %e, "backup failed");
        }
    }
    b.running.store(false, Ordering::Release);
}

/// Writes a checkpoint of `engine` to `<dir>.tmp`, with the anchor of its last batch, then
/// moves it into `dir` in place of the previous backup. Returns its sequence.
///
/// Failpoints: `bgsave:checkpoint-written` (the new backup is complete in `<dir>.tmp`), and
/// `bgsave:old-moved-aside` (the previous one is in `<dir>.old`, `dir` is missing).
fn create(engine: &Engine, dir: &Path) -> Result<u64, String> {
    let tmp = with_suffix(dir, ".tmp");
    let old = with_suffix(dir, ".old");
    settle(dir).map_err(|e| format!("cannot settle {}: {e}", dir.display()))?;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let seq = engine
        .checkpoint(&tmp)
        .map_err(|e| format!("checkpoint failed: {e}"))?;
    // What proves where this history ends, for a node started from the backup as a replica:
    // the digest of the last batch, while the WAL holds it.
    if let Ok(Some(b)) = quarry_storage::wal::batch_ending_at(engine.db(), seq) {
        let anchor = format!("{seq} {}\n", quarry_storage::wal::batch_digest(&b.data));
        write_durable(
            &tmp.join(quarry_replication::master::ANCHOR_IN_CHECKPOINT),
            anchor.as_bytes(),
        )
        .map_err(|e| format!("cannot write the backup's anchor: {e}"))?;
    }
    sync_dir(&tmp);
    failpoint::crash_at("bgsave:checkpoint-written");
    let parent = dir.parent().unwrap_or(Path::new("."));
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| format!("cannot move the old backup: {e}"))?;
        sync_dir(parent);
    }
    failpoint::crash_at("bgsave:old-moved-aside");
    std::fs::rename(&tmp, dir).map_err(|e| format!("cannot move the backup into place: {e}"))?;
    sync_dir(parent);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| format!("cannot remove the old backup: {e}"))?;
    }
    Ok(seq)
}

/// Finishes or undoes a backup replacement that a crash interrupted: a previous backup moved
/// aside goes back if no new one took its place, and what is left over goes. At start-up and
/// before each backup.
pub fn settle(dir: &Path) -> std::io::Result<()> {
    let tmp = with_suffix(dir, ".tmp");
    let old = with_suffix(dir, ".old");
    if old.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&old, dir)?;
            warn!(dir = %dir.display(), "an interrupted backup left the previous one aside; it is back in place");
        }
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    Ok(())
}

/// Deletes the backup when none is to be kept, or when it is older than `keep_hours` (0 = no
/// age limit), as Kvrocks' `PurgeOldBackups`. FLUSHBACKUP calls it with (0, 0).
pub fn purge(server: &Server, keep: i64, keep_hours: i64) {
    let b = &server.backups;
    let _guard = b.lock.lock();
    let dir = backup_dir(server);
    if !dir.exists() {
        return;
    }
    if let Err(e) = check_dir(server, &dir) {
        warn!(error = %e, "backup retention skipped");
        return;
    }
    // Made before this process started: its directory's time tells when.
    let created = match b.created.load(Ordering::Relaxed) {
        0 => std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64),
        t => t,
    };
    let expired = keep_hours > 0 && created > 0 && created + keep_hours * 3600 < now_secs();
    if keep == 0 || expired {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                b.created.store(0, Ordering::Relaxed);
                info!(dir = %dir.display(), "backup deleted");
            }
            Err(e) => error!(dir = %dir.display(), error = %e, "cannot delete the backup"),
        }
    }
}

/// FLUSHBACKUP: deletes the backup (after a running BGSAVE, which it waits for).
pub fn flushbackup(server: &Server) {
    tokio::task::block_in_place(|| purge(server, 0, 0));
}

/// The retention rules (`max-backup-to-keep`, `max-backup-keep-hours`), every second from the
/// maintenance thread.
pub fn retain(server: &Server) {
    let (keep, keep_hours) = {
        let cfg = server.config.read();
        (
            cfg.get_i64("max-backup-to-keep"),
            cfg.get_i64("max-backup-keep-hours"),
        )
    };
    if !server.backups.in_progress() {
        purge(server, keep, keep_hours);
    }
}
