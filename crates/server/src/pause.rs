//! CLIENT PAUSE and CLIENT UNPAUSE, as in Redis 7.0. While a pause lasts, client connections
//! wait before they run a command it covers: every command (`ALL`), or only those that write
//! or may replicate something (`WRITE`: write commands, EVAL/EVALSHA/FCALL, PUBLISH, PFCOUNT,
//! SCRIPT and FUNCTION, and an EXEC whose transaction writes). Replication is not paused: a
//! replica keeps receiving what its master wrote before the pause. Failover tools use a WRITE
//! pause to let replicas catch up before they promote one.

use std::time::Instant;

use parking_lot::Mutex;
use quarry_commands::table::{flag, CommandSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Write,
    All,
}

#[derive(Default)]
pub struct Pause {
    state: Mutex<Option<(Instant, Kind)>>,
    /// Set while a pause may be in force: the command path checks only this.
    active: std::sync::atomic::AtomicBool,
    ended: tokio::sync::Notify,
}

/// Commands that write through another command or replicate without the WRITE flag
/// (Redis' `may-replicate`).
pub fn may_replicate(name: &str) -> bool {
    matches!(
        name,
        "eval"
            | "evalsha"
            | "fcall"
            | "publish"
            | "mpublish"
            | "spublish"
            | "pfcount"
            | "script"
            | "function"
    )
}

impl Pause {
    /// CLIENT PAUSE: a longer or stricter pause extends the one in force, as in Redis.
    pub fn pause(&self, until: Instant, kind: Kind) {
        let mut state = self.state.lock();
        *state = Some(match *state {
            Some((t, k)) if t > Instant::now() => (t.max(until), k.max(kind)),
            _ => (until, kind),
        });
        // Under the lock, so that it always agrees with the state.
        self.active
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// CLIENT UNPAUSE.
    pub fn unpause(&self) {
        let mut state = self.state.lock();
        *state = None;
        self.active
            .store(false, std::sync::atomic::Ordering::Release);
        drop(state);
        self.ended.notify_waiters();
    }

    /// Whether a pause may be in force (a cheap check for every command).
    pub fn maybe_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The end of the pause that covers `spec` now, if any. `exec_writes` tells whether the
    /// transaction an EXEC would run writes.
    pub fn covering(&self, spec: &CommandSpec, exec_writes: bool) -> Option<Instant> {
        let mut state = self.state.lock();
        let (until, kind) = (*state)?;
        if until <= Instant::now() {
            // Ran out: the command path goes back to its one-load check.
            *state = None;
            self.active
                .store(false, std::sync::atomic::Ordering::Release);
            return None;
        }
        drop(state);
        let covered = kind == Kind::All
            || spec.has(flag::WRITE)
            || may_replicate(spec.name)
            || (spec.name == "exec" && exec_writes);
        covered.then_some(until)
    }

    /// Waits until the pause that covers `spec` ends (its time runs out, or CLIENT UNPAUSE).
    pub async fn wait(&self, spec: &CommandSpec, exec_writes: bool) {
        while let Some(until) = self.covering(spec, exec_writes) {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before the re-check, so an UNPAUSE in between is not missed.
            ended.as_mut().enable();
            if self.covering(spec, exec_writes).is_none() {
                break;
            }
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }
}
