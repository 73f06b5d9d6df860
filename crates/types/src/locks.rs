//! Per-key locks for read-modify-write commands: a fixed table of mutexes indexed by a hash of
//! the key. Two keys may share a mutex; that costs parallelism, never correctness. Multi-key
//! operations take their mutexes in index order, so they cannot deadlock each other.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

/// How long a command inside a transaction waits for the lock of a key the transaction did
/// not lock up front (a script's undeclared key) before the transaction is failed.
const EXTRA_WAIT: Duration = Duration::from_secs(2);

thread_local! {
    /// Mutex indices held on this thread by live guards, and by the transaction's extras.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Mutexes a transaction locked as it went (keys it had not locked up front); released
    /// when the transaction's own guard is dropped, after its commit.
    static EXTRA: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// A transaction could not lock a key in time: it must not commit.
    static FAILED: Cell<bool> = const { Cell::new(false) };
    /// The mutex whose waiting connection, woken, is retrying its command on this thread
    /// (see [`KeyLocks::retry_woken`]): that one mutex is its to take.
    static WOKEN: Cell<Option<usize>> = const { Cell::new(None) };
    /// A release on this thread woke a waiting connection (see [`take_handed_over`]).
    static HANDED_OVER: Cell<bool> = const { Cell::new(false) };
}

/// Whether a release on this thread woke a waiting connection since the last call. The
/// woken connection is scheduled on this thread, next: a connection that yields before its
/// own I/O lets it run at once, instead of leaving the mutex idle meanwhile.
pub fn take_handed_over() -> bool {
    HANDED_OVER.with(|h| h.replace(false))
}

/// Whether a lock inside the current transaction could not be taken (and clears the mark).
/// A transaction that sees `true` must be discarded, not committed.
pub fn take_lock_failure() -> bool {
    FAILED.with(|f| f.replace(false))
}

/// See [`KeyLocks::acquire`].
const SPIN_ROUNDS: usize = 64;

pub struct KeyLocks {
    slots: Box<[Mutex<()>]>,
    /// Per mutex, the connections that wait for it without holding a thread
    /// ([`KeyLocks::until_free`]).
    waiters: Box<[Waiters]>,
}

#[derive(Default)]
struct Waiters {
    /// Connections in [`KeyLocks::until_free`]: a release with any wakes one.
    count: AtomicUsize,
    /// Those of them that wait for their turn (not just checking): while any do, newcomers
    /// do not take the mutex.
    parked: AtomicUsize,
    notify: tokio::sync::Notify,
}

/// Counts a waiter in one of [`Waiters`]' counters while it lives.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Held locks; dropping it releases them.
pub struct KeyGuard<'a> {
    locks: Option<&'a KeyLocks>,
    indices: Vec<usize>,
    guards: Vec<MutexGuard<'a, ()>>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let Some(locks) = self.locks else { return };
        // Unlocked here rather than after this body, so that the waiters can be woken.
        self.guards.clear();
        for &i in &self.indices {
            locks.unlocked(i);
        }
        let last = HELD.with(|h| {
            let mut h = h.borrow_mut();
            for i in &self.indices {
                if let Some(at) = h.iter().position(|x| x == i) {
                    h.swap_remove(at);
                }
            }
            let extra = EXTRA.with(|e| e.borrow().len());
            h.len() == extra
        });
        // The transaction this guard protected is over: release what it locked on the way.
        if last {
            locks.release_extras();
        }
    }
}

impl KeyLocks {
    pub fn new(size: usize) -> KeyLocks {
        KeyLocks {
            slots: (0..size.max(1)).map(|_| Mutex::new(())).collect(),
            waiters: (0..size.max(1)).map(|_| Waiters::default()).collect(),
        }
    }

    /// After mutex `i` was unlocked: wakes one connection waiting for it in
    /// [`KeyLocks::until_free`]. (The fence pairs with the one there: either the waiter sees
    /// the mutex free, or this sees the waiter.)
    fn unlocked(&self, i: usize) {
        fence(Ordering::SeqCst);
        let w = &self.waiters[i];
        if w.count.load(Ordering::Relaxed) > 0 {
            w.notify.notify_one();
            HANDED_OVER.with(|h| h.set(true));
        }
    }

    /// Waits, without holding the thread, for mutex `slot` (from [`KeyLocks::lock_extras`]'
    /// failure): until a release wakes this connection, which then retries its command
    /// through [`KeyLocks::retry_woken`]. Returns false at once (without waiting) if the
    /// mutex is free and nobody waits for it: the caller then retries as a newcomer.
    ///
    /// Why nobody waits forever: a connection parks only if the mutex was held when it looked
    /// (its count was visible before: the fences pair with [`KeyLocks::unlocked`], so that
    /// release wakes a waiter), or if another connection was parked (which is woken in turn,
    /// and its retry's release or [`KeyLocks::pass_on`] wakes the next). Connections that only
    /// look never park each other: only parked ones count for `parked`.
    pub async fn until_free(&self, slot: usize) -> bool {
        let w = &self.waiters[slot];
        let notified = w.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        w.count.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(&w.count);
        fence(Ordering::SeqCst);
        if !self.slots[slot].is_locked() && w.parked.load(Ordering::Relaxed) == 0 {
            return false;
        }
        w.parked.fetch_add(1, Ordering::Relaxed);
        let _parked = Counted(&w.parked);
        notified.await;
        true
    }

    /// Runs `retry`, the command of a connection that [`KeyLocks::until_free`] woke for mutex
    /// `slot`: it may take that mutex ahead of the connections still waiting. Afterwards (or
    /// if `retry` panics), if the mutex is free, the wake-up goes on to the next waiter.
    pub fn retry_woken<R>(&self, slot: usize, retry: impl FnOnce() -> R) -> R {
        struct Done<'a>(&'a KeyLocks, usize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                WOKEN.with(|w| w.set(None));
                self.0.pass_on(self.1);
            }
        }
        WOKEN.with(|w| w.set(Some(slot)));
        let _done = Done(self, slot);
        retry()
    }

    /// A connection woken by [`KeyLocks::until_free`] tried again and left mutex `slot`
    /// free (its command took another path): the wake-up goes to the next waiter.
    fn pass_on(&self, slot: usize) {
        if !self.slots[slot].is_locked() {
            self.unlocked(slot);
        }
    }

    /// Locks a mutex. A key lock is held for one command (microseconds): waiting a little
    /// before the thread sleeps saves the wake-up of a parked worker thread, which costs more
    /// than the wait on a hot key.
    fn acquire(&self, i: usize) -> MutexGuard<'_, ()> {
        for round in 0..SPIN_ROUNDS {
            if let Some(g) = self.slots[i].try_lock() {
                return g;
            }
            if round % 8 == 7 {
                std::thread::yield_now();
            } else {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        }
        self.slots[i].lock()
    }

    fn index(&self, key: &[u8]) -> usize {
        // xxHash: every write hashes its keys here, and SipHash (whose fixed keys gave no
        // protection anyway: a shared mutex only makes two keys wait for each other) cost more.
        (xxhash_rust::xxh64::xxh64(key, 0) % self.slots.len() as u64) as usize
    }

    /// Inside a transaction: the locks it holds already cost nothing; others (a script's
    /// undeclared key, a key only a command's arguments name) are taken for the rest of the
    /// transaction, waiting at most [`EXTRA_WAIT`] so that two transactions taking keys in
    /// opposite orders cannot hang each other: the one that gives up is marked failed.
    fn lock_in_txn(&self, mut idx: Vec<usize>) -> KeyGuard<'_> {
        idx.sort_unstable();
        idx.dedup();
        for i in idx {
            if HELD.with(|h| h.borrow().contains(&i)) {
                continue;
            }
            // Once the transaction is failed, nothing more is waited for.
            let got = if FAILED.with(|f| f.get()) {
                self.slots[i].try_lock()
            } else {
                self.slots[i].try_lock_for(EXTRA_WAIT)
            };
            match got {
                Some(g) => {
                    std::mem::forget(g);
                    HELD.with(|h| h.borrow_mut().push(i));
                    EXTRA.with(|e| e.borrow_mut().push(i));
                }
                None => FAILED.with(|f| f.set(true)),
            }
        }
        KeyGuard {
            locks: None,
            indices: Vec::new(),
            guards: Vec::new(),
        }
    }

    fn guard(&self, idx: Vec<usize>) -> KeyGuard<'_> {
        let guards = idx.iter().map(|&i| self.acquire(i)).collect();
        HELD.with(|h| h.borrow_mut().extend_from_slice(&idx));
        KeyGuard {
            locks: Some(self),
            indices: idx,
            guards,
        }
    }

    /// For a group of pipelined commands that share one transaction: takes the mutexes of
    /// `keys` that this thread does not hold yet, all or none, without waiting, and keeps them
    /// (as a transaction's extras) until [`KeyLocks::release_extras`]. So a thread that holds
    /// a group's locks never waits for another's (no deadlock). On failure, the mutex that was
    /// taken, for [`KeyLocks::until_free`]. A mutex that connections wait for counts as taken
    /// except for the one woken ([`KeyLocks::retry_woken`]): they are served in turn, and a
    /// newcomer does not take the mutex between a release and the woken connection's retry.
    pub fn lock_extras<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<(), usize> {
        // Every grouped write comes here: up to 8 keys need no allocation.
        let mut inline = [0usize; 8];
        let mut spilled = Vec::new();
        let idx: &mut [usize] = if keys.len() <= inline.len() {
            &mut inline[..keys.len()]
        } else {
            spilled.resize(keys.len(), 0);
            &mut spilled
        };
        for (slot, key) in idx.iter_mut().zip(keys) {
            *slot = self.index(key.as_ref());
        }
        idx.sort_unstable();
        // The distinct mutexes this thread does not hold yet, in order, at the front.
        let mut n = 0;
        for at in 0..idx.len() {
            let i = idx[at];
            if (n == 0 || idx[n - 1] != i) && !HELD.with(|h| h.borrow().contains(&i)) {
                idx[n] = i;
                n += 1;
            }
        }
        let idx = &idx[..n];
        let woken = WOKEN.with(|w| w.get());
        for (at, &i) in idx.iter().enumerate() {
            let queued = woken != Some(i) && self.waiters[i].parked.load(Ordering::Relaxed) > 0;
            match (!queued).then(|| self.slots[i].try_lock()).flatten() {
                Some(g) => std::mem::forget(g),
                None => {
                    for &t in &idx[..at] {
                        // SAFETY: locked just above by this thread, guard forgotten.
                        unsafe { self.slots[t].force_unlock() };
                        self.unlocked(t);
                    }
                    return Err(i);
                }
            }
        }
        HELD.with(|h| h.borrow_mut().extend_from_slice(idx));
        EXTRA.with(|e| e.borrow_mut().extend_from_slice(idx));
        Ok(())
    }

    /// Releases what [`KeyLocks::lock_extras`] and a transaction's `lock_in_txn` took on this
    /// thread.
    pub fn release_extras(&self) {
        for i in EXTRA.with(|e| std::mem::take(&mut *e.borrow_mut())) {
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                if let Some(at) = h.iter().position(|x| *x == i) {
                    h.swap_remove(at);
                }
            });
            // SAFETY: this thread locked the mutex in `lock_extras` or `lock_in_txn` and forgot
            // its guard; nothing else unlocks it.
            unsafe { self.slots[i].force_unlock() };
            self.unlocked(i);
        }
    }

    /// Locks `key`'s mutex. Inside a transaction ([`crate::txn`]), see `lock_in_txn`.
    pub fn lock(&self, key: &[u8]) -> KeyGuard<'_> {
        // A command's reads after it locks see what the lock now protects.
        crate::txn::context_refresh();
        if crate::txn::active() {
            return self.lock_in_txn(vec![self.index(key)]);
        }
        self.guard(vec![self.index(key)])
    }

    pub fn lock_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> KeyGuard<'_> {
        crate::txn::context_refresh();
        let mut idx: Vec<usize> = keys.iter().map(|k| self.index(k.as_ref())).collect();
        if crate::txn::active() {
            return self.lock_in_txn(idx);
        }
        idx.sort_unstable();
        idx.dedup();
        self.guard(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn extras_take_many_keys_with_repeats_and_release_them_all() {
        let locks = Arc::new(KeyLocks::new(4096));
        // More keys than the inline buffer holds, some named twice.
        let keys: Vec<String> = (0..12).map(|i| format!("k{}", i % 10)).collect();
        assert!(locks.lock_extras(&keys).is_ok());
        assert!(
            locks.lock_extras(&["k3", "k3"]).is_ok(),
            "held: costs nothing"
        );
        let taken_elsewhere = |key: &'static str| {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let r = locks.lock_extras(&[key]);
                locks.release_extras();
                r.is_ok()
            })
            .join()
            .unwrap()
        };
        assert!(!taken_elsewhere("k9"));
        assert!(taken_elsewhere("unrelated"));
        locks.release_extras();
        for i in 0..10 {
            let key: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            assert!(taken_elsewhere(key), "k{i} stayed locked");
        }
    }

    #[test]
    fn extras_are_all_or_nothing_and_released_together() {
        let locks = Arc::new(KeyLocks::new(4096));
        let idx: Vec<usize> = ["a", "b", "c"]
            .iter()
            .map(|k| locks.index(k.as_bytes()))
            .collect();
        assert!(idx[0] != idx[1] && idx[1] != idx[2] && idx[0] != idx[2]);
        assert!(locks.lock_extras(&["a", "b"]).is_ok());
        // Held by this thread: taking them again costs nothing.
        assert!(locks.lock_extras(&["a"]).is_ok());
        let other = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let busy_at_b = locks.lock_extras(&["c", "b"]) == Err(locks.index(b"b"));
                // "b" is taken: nothing of the call stays locked, "c" included.
                let c_free = locks.slots[locks.index(b"c")].try_lock().is_some();
                (busy_at_b, c_free)
            })
            .join()
            .unwrap()
        };
        assert_eq!(other, (true, true));
        locks.release_extras();
        let again = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let free = locks.lock_extras(&["a", "b"]).is_ok();
                locks.release_extras();
                free
            })
            .join()
            .unwrap()
        };
        assert!(again);
    }

    #[test]
    fn a_waiter_for_a_held_lock_is_woken_by_its_release() {
        let locks = Arc::new(KeyLocks::new(64));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                assert!(locks.lock_extras(&["k"]).is_ok());
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                locks.release_extras();
            })
        };
        held_rx.recv().unwrap();
        let slot = locks.lock_extras(&["k"]).unwrap_err();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let wait = locks.until_free(slot);
            tokio::pin!(wait);
            tokio::select! {
                biased;
                _ = &mut wait => panic!("the lock is held: no wait may end yet"),
                _ = std::future::ready(()) => {}
            }
            assert_eq!(locks.waiters[slot].count.load(Ordering::Relaxed), 1);
            assert_eq!(locks.waiters[slot].parked.load(Ordering::Relaxed), 1);
            // Its turn comes with the release: until then, a newcomer does not take the mutex.
            release_tx.send(()).unwrap();
            let woken = tokio::time::timeout(Duration::from_secs(20), wait)
                .await
                .expect("the release wakes the waiter");
            assert!(woken);
        });
        holder.join().unwrap();
        assert_eq!(locks.waiters[slot].count.load(Ordering::Relaxed), 0);
        assert_eq!(locks.waiters[slot].parked.load(Ordering::Relaxed), 0);
        assert!(locks.lock_extras(&["k"]).is_ok());
        locks.release_extras();
        // A free lock is not waited for.
        rt.block_on(async {
            let woken = tokio::time::timeout(Duration::from_secs(20), locks.until_free(slot))
                .await
                .expect("free at once");
            assert!(!woken);
        });
    }

    #[test]
    fn connections_waiting_for_a_mutex_go_before_newcomers() {
        let locks = KeyLocks::new(64);
        let slot = locks.index(b"k");
        // A connection waits for "k" (parked, as in `until_free`); the mutex is free, as
        // between a release and the woken connection's retry.
        locks.waiters[slot].count.fetch_add(1, Ordering::Relaxed);
        locks.waiters[slot].parked.fetch_add(1, Ordering::Relaxed);
        assert_eq!(locks.lock_extras(&["k"]), Err(slot));
        // Other keys are not held up.
        assert!(locks.lock_extras(&["other"]).is_ok());
        locks.release_extras();
        // The woken connection takes it, that one mutex only.
        let other = locks.index(b"other");
        locks.waiters[other].parked.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            locks.retry_woken(slot, || locks.lock_extras(&["k", "other"])),
            Err(other)
        );
        locks.waiters[other].parked.fetch_sub(1, Ordering::Relaxed);
        // (That retry let "k" go again: its release woke the next waiter.)
        assert!(take_handed_over());
        assert!(locks
            .retry_woken(slot, || locks.lock_extras(&["k"]))
            .is_ok());
        locks.release_extras();
        // Its release hands the mutex over: the thread's next I/O yields first.
        assert!(take_handed_over());
        assert!(!take_handed_over());
        // Outside a retry, this thread is a newcomer again.
        assert_eq!(locks.lock_extras(&["k"]), Err(slot));
        locks.waiters[slot].count.fetch_sub(1, Ordering::Relaxed);
        locks.waiters[slot].parked.fetch_sub(1, Ordering::Relaxed);
        assert!(locks.lock_extras(&["k"]).is_ok());
        locks.release_extras();
        assert!(!take_handed_over());
    }

    #[test]
    fn overlapping_multi_key_locks_do_not_deadlock_and_exclude() {
        let locks = Arc::new(KeyLocks::new(8));
        let counter = Arc::new(Mutex::new(0u64));
        let mut threads = Vec::new();
        for t in 0..8 {
            let locks = locks.clone();
            let counter = counter.clone();
            threads.push(std::thread::spawn(move || {
                let keys: Vec<Vec<u8>> = (0..4)
                    .map(|i| format!("k{}", (t + i) % 6).into_bytes())
                    .collect();
                for _ in 0..2000 {
                    let _g = locks.lock_many(&keys);
                    *counter.lock() += 1;
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*counter.lock(), 16000);
    }
}
