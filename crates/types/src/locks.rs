//! Per-key locks for read-modify-write commands: a fixed table of mutexes indexed by a hash of
//! the key. Two keys may share a mutex; that costs parallelism, never correctness. Multi-key
//! operations take their mutexes in index order, so they cannot deadlock each other.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use parking_lot::{Mutex, MutexGuard};

pub struct KeyLocks {
    slots: Box<[Mutex<()>]>,
}

/// Held locks; dropping it releases them.
pub struct KeyGuard<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl KeyLocks {
    pub fn new(size: usize) -> KeyLocks {
        KeyLocks {
            slots: (0..size.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    fn index(&self, key: &[u8]) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.slots.len() as u64) as usize
    }

    /// Locks `key`'s mutex. Inside a transaction ([`crate::txn`]) the transaction already
    /// holds the locks of all its keys, and this takes none.
    pub fn lock(&self, key: &[u8]) -> KeyGuard<'_> {
        if crate::txn::active() {
            return KeyGuard {
                _guards: Vec::new(),
            };
        }
        KeyGuard {
            _guards: vec![self.slots[self.index(key)].lock()],
        }
    }

    pub fn lock_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> KeyGuard<'_> {
        if crate::txn::active() {
            return KeyGuard {
                _guards: Vec::new(),
            };
        }
        let mut idx: Vec<usize> = keys.iter().map(|k| self.index(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        KeyGuard {
            _guards: idx.into_iter().map(|i| self.slots[i].lock()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
