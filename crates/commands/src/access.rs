//! When each key was last used, for OBJECT IDLETIME, TOUCH and RESTORE ... IDLETIME.
//!
//! Redis keeps a 24-bit access clock in every object. quarry's values live on disk, and a read
//! must not become a write, so the clock lives in memory instead: a fixed table of second
//! stamps that a key hashes into at two places. A command writes the current second to both;
//! OBJECT IDLETIME reads the older of the two. Another key that shares both places can only
//! make a key look more recently used than it was, never less: the idle time reported is a
//! lower bound, exact unless both places collide. The table is 4 MiB whatever the key count.
//!
//! A key not used since the server started reports the time since start, as Redis does for
//! keys it loaded from disk.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

const SLOTS: usize = 1 << 20;

/// Stamps are seconds since `epoch` plus this, so that RESTORE can set times before the
/// start (up to 34 years back); 0 is "not used since the start".
const BIAS: u64 = 1 << 30;

struct Clock {
    stamps: Box<[AtomicU32]>,
    epoch: Instant,
}

static CLOCK: LazyLock<Clock> = LazyLock::new(|| Clock {
    stamps: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
    epoch: Instant::now(),
});

/// Starts the clock: keys not used since this moment report their idle time from it.
pub fn start() {
    LazyLock::force(&CLOCK);
}

/// The two places of `key` in the table (FNV-1a, then a mixing step so both halves are good).
fn places(key: &[u8]) -> [usize; 2] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let mask = (SLOTS - 1) as u64;
    [(h & mask) as usize, ((h >> 32) & mask) as usize]
}

/// The stamp of instant `at`.
fn stamp_at(clock: &Clock, at: Instant) -> u64 {
    at.saturating_duration_since(clock.epoch).as_secs() + BIAS
}

fn now_stamp(clock: &Clock) -> u64 {
    stamp_at(clock, Instant::now())
}

/// Records a use of `key` now.
pub fn touch(key: &[u8]) {
    touch_at(key, Instant::now());
}

/// Records a use of `key` at `now`: a command that reads the clock anyway (for its run time)
/// passes that reading, which saves a clock read per command.
pub fn touch_at(key: &[u8], now: Instant) {
    let clock = &*CLOCK;
    let now = stamp_at(clock, now) as u32;
    for p in places(key) {
        // Most commands find the stamp already current: skip the write to keep the cache line
        // shared between cores. (A plain store instead measured no faster: SET, GET, INCR and
        // HSET -P 16 within the noise.)
        if clock.stamps[p].load(Ordering::Relaxed) != now {
            clock.stamps[p].store(now, Ordering::Relaxed);
        }
    }
}

/// Asks the CPU for the cache lines of `key`'s two stamps, for a [`touch_at`] a little later.
/// The stamps are spread over 4 MiB, so a touch usually waits for memory: GET -P 16 spent
/// about 4% of quarry's time there. A command prefetches its keys' stamps, runs, and then
/// records the touches, by when the lines have arrived.
pub fn prefetch(key: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        let clock = &*CLOCK;
        for p in places(key) {
            let line = clock.stamps[p..].as_ptr().cast::<i8>();
            // SAFETY: a prefetch reads nothing and writes nothing; the address is in the table.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = key;
}

/// Whether `command` sets its key's idle time itself (RESTORE ... IDLETIME), so that its
/// touch must come before it runs, not after.
pub fn sets_idle_time(command: &str) -> bool {
    matches!(command, "restore" | "restore-asking")
}

/// Records that `key` was last used `seconds` ago (RESTORE ... IDLETIME). Its places take the
/// older stamp even if another key touched them since: this key's own report is what asked
/// for. The one case where the lower-bound rule bends: a key sharing both places then reports
/// this older time too, until it is used again (about one key in 2^40 pairs).
pub fn set_idle(key: &[u8], seconds: u64) {
    let clock = &*CLOCK;
    let stamp = now_stamp(clock).saturating_sub(seconds).max(1) as u32;
    for p in places(key) {
        clock.stamps[p].store(stamp, Ordering::Relaxed);
    }
}

/// Seconds since `key` was last used (a lower bound; see the module note).
pub fn idle_seconds(key: &[u8]) -> u64 {
    let clock = &*CLOCK;
    let [a, b] = places(key).map(|p| clock.stamps[p].load(Ordering::Relaxed));
    match a.min(b) {
        0 => clock.epoch.elapsed().as_secs(),
        stamp => now_stamp(clock).saturating_sub(u64::from(stamp)),
    }
}

/// Commands that look at a key without counting as a use of it, as in Redis (LOOKUP_NOTOUCH).
pub fn is_no_touch(command: &str) -> bool {
    matches!(
        command,
        "object" | "exists" | "type" | "ttl" | "pttl" | "expiretime" | "pexpiretime"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touched_key_is_not_idle_and_restore_sets_the_past() {
        touch(b"access-test-a");
        assert_eq!(idle_seconds(b"access-test-a"), 0);
        set_idle(b"access-test-b", 1000);
        let idle = idle_seconds(b"access-test-b");
        assert!((1000..=1001).contains(&idle), "{idle}");
        touch(b"access-test-b");
        assert_eq!(idle_seconds(b"access-test-b"), 0);
    }

    #[test]
    fn the_two_places_differ_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let [a, b] = places(format!("key:{i}").as_bytes());
            assert!(a < SLOTS && b < SLOTS);
            seen.insert(a);
        }
        // 10,000 keys over a million places: nearly all land apart.
        assert!(seen.len() > 9_900, "{}", seen.len());
    }
}
