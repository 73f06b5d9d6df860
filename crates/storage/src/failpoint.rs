//! Named points where a test can make the process die, to check what a crash at the worst
//! moment leaves behind (docs/storage-faults.md).
//!
//! `QUARRY_FAILPOINT=<name>` in the environment arms one point; the process kills itself with
//! SIGKILL when it gets there, as `kill -9` would: nothing is flushed or cleaned up on the way
//! out. Without the variable each point costs one load of an initialised `OnceLock`. The
//! points sit only on rare paths (file writes, full syncs, slot handovers), never on a
//! command's path.

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

fn armed() -> Option<&'static str> {
    ARMED
        .get_or_init(|| {
            std::env::var("QUARRY_FAILPOINT")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .as_deref()
}

/// Whether the environment names this point.
pub fn is_armed(name: &str) -> bool {
    armed() == Some(name)
}

/// Dies here, as `kill -9` would, if the environment names this point.
pub fn crash_at(name: &str) {
    if is_armed(name) {
        crash(name);
    }
}

/// Dies now.
pub fn crash(name: &str) -> ! {
    tracing::warn!(point = name, "failpoint reached: killing the process");
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this is not reached.
    std::process::abort()
}
