//! Whether the engine takes writes: the state of an episode of refused writes (a full disk, an
//! I/O error), for INFO and the log.
//!
//! RocksDB decides. Once a write fails in its WAL, RocksDB stops taking writes until it has
//! recovered; for a full disk it recovers by itself once there is space again. This only
//! watches the outcome of each write, so the state ends with the first write that succeeds.
//! The log says an episode started once, then at most once a minute how it goes on, and when
//! it ends; a stream of refused writes costs no stream of log lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{error, info, warn};

use crate::encoding::now_ms;

const LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct WriteHealth {
    /// Unix milliseconds of the episode's first refused write; 0 while writes succeed.
    since_ms: AtomicU64,
    /// Writes refused since the start of the process.
    refused_total: AtomicU64,
    /// Writes refused in the current episode.
    refused_now: AtomicU64,
    last_log_ms: AtomicU64,
    /// The current episode's last error, as RocksDB worded it.
    error: Mutex<String>,
}

impl WriteHealth {
    /// A write that storage refused.
    pub(crate) fn refused(&self, e: &rocksdb::Error) {
        let now = now_ms();
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        let n = self.refused_now.fetch_add(1, Ordering::Relaxed) + 1;
        *self.error.lock() = e.to_string();
        if self
            .since_ms
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.last_log_ms.store(now, Ordering::Relaxed);
            if recovers_by_itself(e.as_ref()) || !e.as_ref().starts_with("IO error") {
                error!(error = %e, "storage refuses writes: each write gets this error and reads go on; writes resume once storage recovers (for a full disk: once it has one memtable's size free)");
            } else {
                error!(error = %e, "storage refuses writes: each write gets this error and reads go on; RocksDB does not recover from this error by itself, so restart quarry once the device is healthy (every acknowledged write is in the WAL)");
            }
            return;
        }
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let since = self.since_ms.load(Ordering::Relaxed);
            warn!(error = %e, refused = n, seconds = now.saturating_sub(since) / 1000, "storage still refuses writes");
        }
    }

    /// A write that storage took. Costs one atomic load while nothing is wrong.
    #[inline]
    pub(crate) fn accepted(&self) {
        if self.since_ms.load(Ordering::Relaxed) != 0 {
            self.recovered();
        }
    }

    #[cold]
    fn recovered(&self) {
        let since = self.since_ms.swap(0, Ordering::AcqRel);
        if since == 0 {
            return;
        }
        let refused = self.refused_now.swap(0, Ordering::Relaxed);
        self.error.lock().clear();
        info!(
            refused,
            seconds = format!("{:.1}", now_ms().saturating_sub(since) as f64 / 1000.0),
            "storage takes writes again"
        );
    }

    /// Unix seconds of the current episode's first refused write, or None while writes succeed.
    pub fn refused_since(&self) -> Option<u64> {
        match self.since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms / 1000),
        }
    }

    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// The current episode's last error; empty while writes succeed.
    pub fn error(&self) -> String {
        self.error.lock().clone()
    }

    /// Whether the current episode needs a restart to end: RocksDB resumes by itself from a
    /// full disk, but treats other I/O errors in the WAL (EIO, EFBIG) as fatal.
    pub fn needs_restart(&self) -> bool {
        let error = self.error.lock();
        error.starts_with("IO error") && !recovers_by_itself(&error)
    }
}

/// RocksDB's text for a full disk (`Status::NoSpace`, or ENOSPC from the file system).
fn recovers_by_itself(error: &str) -> bool {
    error.contains("No space left on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocks_error() -> rocksdb::Error {
        // An error as RocksDB reports it, made by opening a database where none can be.
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        rocksdb::DB::open(&opts, "/nonexistent/quarry-health-test").unwrap_err()
    }

    #[test]
    fn an_episode_starts_with_a_refusal_and_ends_with_a_success() {
        let h = WriteHealth::default();
        assert_eq!(h.refused_since(), None);
        h.accepted();
        assert_eq!(h.refused_total(), 0);
        let e = rocks_error();
        h.refused(&e);
        h.refused(&e);
        assert!(h.refused_since().is_some());
        assert_eq!(h.refused_total(), 2);
        assert_eq!(h.error(), e.to_string());
        assert!(!h.needs_restart(), "not an I/O error");
        h.accepted();
        assert!(!h.needs_restart());
        assert_eq!(h.refused_since(), None);
        assert_eq!(h.error(), "");
        assert_eq!(h.refused_total(), 2, "the total survives the episode");
    }
}
