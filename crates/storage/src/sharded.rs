//! Counters and a read-mostly lock that every command touches, split by thread.
//!
//! An atomic add or a read lock writes to its cache line. When both worker threads do that to
//! the same line for every command, the line moves between the cores each time: on GET -P 16
//! the command statistics' adds and the storage slot's read lock were the costliest lines of
//! quarry's own code (each `lock` instruction waiting for the line). Here each thread writes to
//! its own shard, on its own cache line; readers of a counter add the shards up, and a writer
//! of the lock takes every shard.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::lock_api::RawRwLock as _;

/// Shards per counter or lock. Threads beyond this share shards, which is still correct.
pub const SHARDS: usize = 16;

const _: () = assert!(SHARDS <= 32, "the free shards are a 32-bit mask");

/// Keeps a value on cache lines of its own (two lines: CPUs fetch lines in pairs).
#[repr(align(128))]
#[derive(Default)]
pub struct Padded<T>(pub T);

/// Which shards live threads hold, one bit each. A thread gives its shard back when it ends:
/// tokio starts a new thread for each `block_in_place` (the old one goes on as a worker), so
/// numbering threads in order would soon put the workers on shared shards.
struct Pool {
    taken: AtomicU32,
    next_shared: AtomicUsize,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            taken: AtomicU32::new(0),
            next_shared: AtomicUsize::new(0),
        }
    }

    /// The lowest free shard, held until [`Pool::give`]; or, with all held, one to share
    /// (numbered from SHARDS up, so that `give` leaves it alone).
    fn take(&self) -> usize {
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            let free = (!taken).trailing_zeros() as usize;
            if free >= SHARDS {
                return SHARDS + self.next_shared.fetch_add(1, Ordering::Relaxed) % SHARDS;
            }
            match self.taken.compare_exchange_weak(
                taken,
                taken | 1 << free,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return free,
                Err(now) => taken = now,
            }
        }
    }

    fn give(&self, taken: usize) {
        if taken < SHARDS {
            self.taken.fetch_and(!(1 << taken), Ordering::Relaxed);
        }
    }
}

static POOL: Pool = Pool::new();

/// A thread's hold on its shard.
struct Held(usize);

impl Drop for Held {
    fn drop(&mut self) {
        POOL.give(self.0);
    }
}

/// This thread's shard: the lowest one no live thread holds, taken when it first asks.
pub fn shard() -> usize {
    thread_local! {
        static SHARD: Held = Held(POOL.take());
    }
    // A thread that is ending (its shard already given back) uses shard 0.
    SHARD.try_with(|s| s.0 % SHARDS).unwrap_or(0)
}

/// `N` counters that threads add to without sharing a cache line.
pub struct Counters<const N: usize> {
    shards: Box<[Padded<[AtomicU64; N]>]>,
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters {
            shards: (0..SHARDS)
                .map(|_| Padded(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

impl<const N: usize> Counters<N> {
    /// Adds `n` to counter `i`.
    pub fn add(&self, i: usize, n: u64) {
        self.shards[shard()].0[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Counter `i`: the sum of its shards.
    pub fn get(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[i].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        for s in self.shards.iter() {
            for c in &s.0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// One counter (see [`Counters`]).
#[derive(Default)]
pub struct Counter(Counters<1>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.add(0, n);
    }

    pub fn get(&self) -> u64 {
        self.0.get(0)
    }

    pub fn reset(&self) {
        self.0.reset();
    }
}

/// A reader-writer lock for data that nearly every command reads and that rarely changes:
/// a reader locks its thread's shard only, a writer locks all of them (in order).
pub struct ReadMostly<T> {
    shards: Box<[Padded<parking_lot::RawRwLock>]>,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through the guards below: shared under a shard's read
// lock (no writer holds every shard then), exclusive under all the shards' write locks.
unsafe impl<T: Send + Sync> Sync for ReadMostly<T> {}
unsafe impl<T: Send> Send for ReadMostly<T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for ReadMostly<T> {
    /// As parking_lot's locks: the value if it can be read at once, else `<locked>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shard = shard();
        if !self.shards[shard].0.try_lock_shared() {
            return f.write_str("ReadMostly(<locked>)");
        }
        let guard = ReadGuard {
            lock: self,
            shard,
            not_send: PhantomData,
        };
        f.debug_tuple("ReadMostly").field(&*guard).finish()
    }
}

impl<T: Default> Default for ReadMostly<T> {
    fn default() -> Self {
        ReadMostly::new(T::default())
    }
}

impl<T> ReadMostly<T> {
    pub fn new(value: T) -> Self {
        ReadMostly {
            shards: (0..SHARDS)
                .map(|_| Padded(parking_lot::RawRwLock::INIT))
                .collect(),
            value: UnsafeCell::new(value),
        }
    }

    pub fn read(&self) -> ReadGuard<'_, T> {
        ReadGuard {
            lock: self,
            shard: self.lock_shared(),
            not_send: PhantomData,
        }
    }

    pub fn write(&self) -> WriteGuard<'_, T> {
        for s in self.shards.iter() {
            s.0.lock_exclusive();
        }
        WriteGuard {
            lock: self,
            not_send: PhantomData,
        }
    }

    /// Locks this thread's shard shared without a guard (for a hold that outlives a scope,
    /// such as a pipeline group's): the returned shard goes to [`ReadMostly::unlock_shared`].
    pub fn lock_shared(&self) -> usize {
        let shard = shard();
        self.shards[shard].0.lock_shared();
        shard
    }

    /// # Safety
    /// `shard` must come from a [`ReadMostly::lock_shared`] of this lock not unlocked yet.
    pub unsafe fn unlock_shared(&self, shard: usize) {
        // SAFETY: the caller's promise: this shard is locked shared by that call.
        unsafe { self.shards[shard].0.unlock_shared() };
    }
}

/// Not `Send`, as parking_lot's guards: a guard held across an `.await` would be a compile
/// error, not a lock released on another thread.
pub struct ReadGuard<'a, T> {
    lock: &'a ReadMostly<T>,
    shard: usize,
    not_send: PhantomData<*const ()>,
}

impl<T> std::ops::Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a shard is locked shared, so no writer holds them all.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: locked shared in `read`, unlocked only here.
        unsafe { self.lock.unlock_shared(self.shard) };
    }
}

pub struct WriteGuard<'a, T> {
    lock: &'a ReadMostly<T>,
    not_send: PhantomData<*const ()>,
}

impl<T> std::ops::Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: every shard is locked exclusively: no reader, no other writer.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        for s in self.lock.shards.iter().rev() {
            // SAFETY: `write` locked every shard exclusively, unlocked only here.
            unsafe { s.0.unlock_exclusive() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn live_threads_hold_distinct_shards_and_an_ended_one_gives_its_back() {
        let pool = Pool::new();
        let held: Vec<usize> = (0..SHARDS).map(|_| pool.take()).collect();
        assert_eq!(held, (0..SHARDS).collect::<Vec<_>>());
        // All held: the next ones share, and giving those back frees nothing.
        let shared = [pool.take(), pool.take()];
        assert_eq!(shared.map(|s| s % SHARDS), [0, 1]);
        shared.into_iter().for_each(|s| pool.give(s));
        assert!(pool.take() >= SHARDS);
        pool.give(5);
        pool.give(3);
        assert_eq!((pool.take(), pool.take()), (3, 5));
    }

    #[test]
    fn counters_add_up_across_threads_and_reset() {
        let c = Arc::new(Counters::<2>::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(0, 1);
                        c.add(1, 3);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!((c.get(0), c.get(1)), (20_000, 60_000));
        c.reset();
        assert_eq!((c.get(0), c.get(1)), (0, 0));
    }

    #[test]
    fn a_writer_waits_for_readers_on_every_shard_and_readers_see_its_write() {
        let lock = Arc::new(ReadMostly::new(0u64));
        // Readers on many threads (so on many shards) each check that the value never changes
        // while they hold the lock; a writer bumps it in two steps that a reader must not see
        // half done.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (lock, stop) = (lock.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let g = lock.read();
                        let v = *g;
                        assert_eq!(v % 2, 0, "a reader saw a half-done write");
                        std::hint::spin_loop();
                        assert_eq!(*g, v, "the value changed under a read lock");
                        seen = seen.max(v);
                    }
                    seen
                })
            })
            .collect();
        for _ in 0..2000 {
            let mut g = lock.write();
            *g += 1;
            std::hint::spin_loop();
            *g += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() <= 4000);
        }
        assert_eq!(*lock.read(), 4000);
    }

    #[test]
    fn a_raw_shared_hold_keeps_the_writer_out_until_unlocked() {
        let lock = Arc::new(ReadMostly::new(()));
        let shard = lock.lock_shared();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let _g = lock.write();
                tx.send(()).unwrap();
            })
        };
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_err());
        // SAFETY: locked just above and not unlocked since.
        unsafe { lock.unlock_shared(shard) };
        rx.recv().unwrap();
        writer.join().unwrap();
    }
}
