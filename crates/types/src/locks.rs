//! Per-key locks for read-modify-write commands: a fixed table of mutexes indexed by a hash of
//! the key. Two keys may share a mutex; that costs parallelism, never correctness. Multi-key
//! operations take their mutexes in index order, so they cannot deadlock each other.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
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
}

/// Held locks; dropping it releases them.
pub struct KeyGuard<'a> {
    locks: Option<&'a KeyLocks>,
    indices: Vec<usize>,
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let Some(locks) = self.locks else { return };
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
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.slots.len() as u64) as usize
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
            _guards: Vec::new(),
        }
    }

    fn guard(&self, idx: Vec<usize>) -> KeyGuard<'_> {
        let guards = idx.iter().map(|&i| self.acquire(i)).collect();
        HELD.with(|h| h.borrow_mut().extend_from_slice(&idx));
        KeyGuard {
            locks: Some(self),
            indices: idx,
            _guards: guards,
        }
    }

    /// For a group of pipelined commands that share one transaction: takes the mutexes of
    /// `keys` that this thread does not hold yet, all or none, and keeps them (as a
    /// transaction's extras) until [`KeyLocks::release_extras`]. With `wait` false nothing is
    /// waited for, so a thread that already holds a group's locks never waits for another's
    /// (no deadlock); with `wait` true (the group's first command, holding nothing yet) it
    /// waits as a plain command does.
    pub fn lock_extras<K: AsRef<[u8]>>(&self, keys: &[K], wait: bool) -> bool {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.index(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.retain(|i| !HELD.with(|h| h.borrow().contains(i)));
        let mut taken = Vec::with_capacity(idx.len());
        for &i in &idx {
            let got = if wait {
                Some(self.acquire(i))
            } else {
                self.slots[i].try_lock()
            };
            match got {
                Some(g) => {
                    std::mem::forget(g);
                    taken.push(i);
                }
                None => {
                    for &t in &taken {
                        // SAFETY: locked just above by this thread, guard forgotten.
                        unsafe { self.slots[t].force_unlock() };
                    }
                    return false;
                }
            }
        }
        HELD.with(|h| h.borrow_mut().extend_from_slice(&taken));
        EXTRA.with(|e| e.borrow_mut().extend_from_slice(&taken));
        true
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
    fn extras_are_all_or_nothing_and_released_together() {
        let locks = Arc::new(KeyLocks::new(4096));
        let idx: Vec<usize> = ["a", "b", "c"]
            .iter()
            .map(|k| locks.index(k.as_bytes()))
            .collect();
        assert!(idx[0] != idx[1] && idx[1] != idx[2] && idx[0] != idx[2]);
        assert!(locks.lock_extras(&["a", "b"], false));
        // Held by this thread: taking them again costs nothing.
        assert!(locks.lock_extras(&["a"], false));
        let other = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let free = locks.lock_extras(&["c", "b"], false);
                // "b" is taken: nothing of the call stays locked, "c" included.
                let c_free = locks.slots[locks.index(b"c")].try_lock().is_some();
                (free, c_free)
            })
            .join()
            .unwrap()
        };
        assert_eq!(other, (false, true));
        locks.release_extras();
        let again = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let free = locks.lock_extras(&["a", "b"], false);
                locks.release_extras();
                free
            })
            .join()
            .unwrap()
        };
        assert!(again);
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
