//! Counters and a read-mostly lock that every command touches, split by thread.
//!
//! An atomic add or a read lock writes to its cache line. When both worker threads do that to
//! the same line for every command, the line moves between the cores each time: on GET -P 16
//! the command statistics' adds and the storage slot's read lock were the costliest lines of
//! quarry's own code (each `lock` instruction waiting for the line). Here each thread writes to
//! its own shard, on its own cache line; readers of a counter add the shards up, and a writer
//! of the lock takes every shard.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::lock_api::RawRwLock as _;

/// Shards per counter or lock. Threads beyond this share shards, which is still correct.
pub const SHARDS: usize = 16;

/// Keeps a value on cache lines of its own (two lines: CPUs fetch lines in pairs).
#[repr(align(128))]
#[derive(Default)]
pub struct Padded<T>(pub T);

/// This thread's shard: threads take shards in the order they first ask.
pub fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
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
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadMostly").field(&*self.read()).finish()
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
        }
    }

    pub fn write(&self) -> WriteGuard<'_, T> {
        for s in self.shards.iter() {
            s.0.lock_exclusive();
        }
        WriteGuard { lock: self }
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

pub struct ReadGuard<'a, T> {
    lock: &'a ReadMostly<T>,
    shard: usize,
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
