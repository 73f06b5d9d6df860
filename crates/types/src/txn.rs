//! Transactions (MULTI/EXEC and scripts): the writes of many commands become one WriteBatch,
//! and each command reads what the earlier ones wrote.
//!
//! While a transaction runs on a thread, [`Db::write`] does not write: it records the batch in
//! the thread's [`Overlay`], and every read of the `Db` (point reads and iterators) sees the
//! overlay on top of the database. [`Db::commit`] then writes everything as one batch, which
//! replicates as one unit. Commands run inline on the connection's thread, so a thread-local
//! is exactly "this transaction". The caller holds the key locks of every key the transaction
//! touches for its whole duration; [`crate::KeyLocks`] does not lock again meanwhile.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use quarry_storage::batch::{decode, BatchRecord};
use quarry_storage::rocksdb::{DBPinnableSlice, Direction, IteratorMode, ReadOptions, DB};
use quarry_storage::{ColumnFamily, OwnedSnapshot, StorageError, WriteBatch};

use crate::db::Db;
use crate::Result;

const CFS: usize = ColumnFamily::ALL.len();

/// One recorded write, in the order the commands made them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put(ColumnFamily, Vec<u8>, Vec<u8>),
    Delete(ColumnFamily, Vec<u8>),
    DeleteRange(ColumnFamily, Vec<u8>, Vec<u8>),
    LogData(Vec<u8>),
    /// A write that a later write of the same key replaced (see [`Overlay::record`]).
    Replaced,
}

/// The writes of a running transaction, and the view of them that reads use.
#[derive(Default)]
pub struct Overlay {
    ops: Vec<Op>,
    /// Where in `ops` the latest write of each key is, per column family.
    latest: [BTreeMap<Vec<u8>, usize>; CFS],
    /// Range deletions per column family. Keys written after one are in `latest`.
    ranges: [Vec<(Vec<u8>, Vec<u8>)>; CFS],
}

thread_local! {
    static CURRENT: RefCell<Option<Overlay>> = const { RefCell::new(None) };
    /// The running command's read context (`txn-context-enabled`), when it has one.
    static CONTEXT: RefCell<Option<ReadContext>> = const { RefCell::new(None) };
}

/// `txn-context-enabled`, as Kvrocks: every read of one command sees one snapshot, taken at
/// its first read. quarry drops it when the command writes outside a transaction, so that its
/// later reads see its own write (Kvrocks indexes the command's batch for that), and when it
/// locks keys, so that what it reads under a lock is what the lock protects; snapshots that
/// iterators may still read from stay alive until the command ends.
#[derive(Default)]
struct ReadContext {
    current: Option<OwnedSnapshot>,
    retired: Vec<OwnedSnapshot>,
}

/// Gives the command about to run on this thread a read context; it ends with the guard.
pub fn command_context() -> ContextGuard {
    CONTEXT.with(|c| *c.borrow_mut() = Some(ReadContext::default()));
    ContextGuard(())
}

/// Ends the thread's command context when dropped.
pub struct ContextGuard(());

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.borrow_mut().take());
    }
}

/// Read options at the command's snapshot (taken now if it has none yet), or None outside a
/// command context.
fn context_read_options(engine: &quarry_storage::Engine) -> Option<ReadOptions> {
    CONTEXT.with(|c| {
        c.borrow_mut().as_mut().map(|ctx| {
            ctx.current
                .get_or_insert_with(|| engine.owned_snapshot())
                .read_options()
        })
    })
}

/// The command wrote, or locked keys: its next read takes a new snapshot, which sees the write
/// and everything before the lock. (No-op outside a command context.)
pub fn context_refresh() {
    CONTEXT.with(|c| {
        if let Some(ctx) = c.borrow_mut().as_mut() {
            if let Some(old) = ctx.current.take() {
                ctx.retired.push(old);
            }
        }
    });
}

/// Starts a transaction on this thread; it ends when the guard is finished or dropped.
pub fn begin() -> TxnGuard {
    crate::locks::take_lock_failure();
    CURRENT.with(|c| *c.borrow_mut() = Some(Overlay::default()));
    TxnGuard { done: false }
}

/// Whether a transaction runs on this thread.
pub fn active() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

fn with_overlay<R>(f: impl FnOnce(Option<&mut Overlay>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow_mut().as_mut()))
}

/// Ends the thread's transaction when dropped, so that a failing command cannot leave one
/// behind for the next client on this thread.
pub struct TxnGuard {
    done: bool,
}

impl TxnGuard {
    /// A guard that ends nothing: what is left in a holder once its transaction was finished.
    pub fn idle() -> TxnGuard {
        TxnGuard { done: true }
    }

    /// Ends the transaction and hands over its writes.
    pub fn finish(mut self) -> Overlay {
        self.done = true;
        CURRENT.with(|c| c.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for TxnGuard {
    fn drop(&mut self) {
        if !self.done {
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }
}

fn cf_of(id: u32) -> std::result::Result<ColumnFamily, StorageError> {
    ColumnFamily::ALL
        .get(id as usize)
        .copied()
        .ok_or_else(|| StorageError::Corrupt(format!("column family {id} in a batch")))
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        !self
            .ops
            .iter()
            .any(|op| !matches!(op, Op::LogData(_) | Op::Replaced))
    }

    /// Records a command's batch.
    ///
    /// A key of the data column families that the transaction writes again keeps only its
    /// last write in the committed batch: sixteen pipelined HSETs of one hash write its
    /// metadata once, not sixteen times. The database ends the same, and replicas apply the
    /// same batch; it only has fewer records (and so takes fewer sequence numbers). A range
    /// deletion between the two writes takes the earlier one out of `latest`, so it stays,
    /// which is harmless. The propagate column family's records are events, and all stay.
    fn record(&mut self, batch: &WriteBatch) -> std::result::Result<(), StorageError> {
        let decoded = decode(batch.data())?;
        for rec in decoded.records {
            let (cf, key, value) = match rec {
                BatchRecord::Put { cf, key, value } => (cf_of(cf)?, key, Some(value)),
                BatchRecord::Delete { cf, key } | BatchRecord::SingleDelete { cf, key } => {
                    (cf_of(cf)?, key, None)
                }
                BatchRecord::DeleteRange { cf, begin, end } => {
                    let cf = cf_of(cf)?;
                    let latest = &mut self.latest[cf as usize];
                    let inside: Vec<Vec<u8>> = latest
                        .range::<[u8], _>((Bound::Included(begin), Bound::Excluded(end)))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in inside {
                        latest.remove(&k);
                    }
                    self.ranges[cf as usize].push((begin.to_vec(), end.to_vec()));
                    self.ops
                        .push(Op::DeleteRange(cf, begin.to_vec(), end.to_vec()));
                    continue;
                }
                BatchRecord::Merge { .. } => {
                    return Err(StorageError::Corrupt(
                        "merge records are not used by quarry".into(),
                    ))
                }
                BatchRecord::LogData(data) => {
                    self.ops.push(Op::LogData(data.to_vec()));
                    continue;
                }
            };
            let at = self.ops.len();
            self.ops.push(match value {
                Some(v) => Op::Put(cf, key.to_vec(), v.to_vec()),
                None => Op::Delete(cf, key.to_vec()),
            });
            if let Some(earlier) = self.latest[cf as usize].insert(key.to_vec(), at) {
                if matches!(
                    cf,
                    ColumnFamily::Default | ColumnFamily::Metadata | ColumnFamily::ZSetScore
                ) {
                    self.ops[earlier] = Op::Replaced;
                }
            }
        }
        Ok(())
    }

    /// What the overlay says about `key`: `Some(Some(v))` written, `Some(None)` deleted,
    /// `None` untouched (read the database).
    fn lookup(&self, cf: ColumnFamily, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(&at) = self.latest[cf as usize].get(key) {
            return Some(self.written(at));
        }
        self.hides(cf, key).then_some(None)
    }

    /// The value the write at `at` of `ops` left: `None` for a deletion. (`latest` points only
    /// at puts and deletions.)
    fn written(&self, at: usize) -> Option<Vec<u8>> {
        match &self.ops[at] {
            Op::Put(_, _, v) => Some(v.clone()),
            _ => None,
        }
    }

    /// Whether a range deletion covers `key`.
    fn hides(&self, cf: ColumnFamily, key: &[u8]) -> bool {
        in_ranges(&self.ranges[cf as usize], key)
    }

    /// The batch that commits the transaction.
    fn into_batch(self, db: &Db) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for op in self.ops {
            match op {
                Op::Put(cf, k, v) => batch.put_cf(db.engine.cf(cf), k, v),
                Op::Delete(cf, k) => batch.delete_cf(db.engine.cf(cf), k),
                Op::DeleteRange(cf, b, e) => batch.delete_range_cf(db.engine.cf(cf), b, e),
                Op::LogData(d) => batch.put_log_data(&d),
                Op::Replaced => {}
            }
        }
        batch
    }
}

/// A value read from the database (pinned, no copy) or from a transaction's overlay.
pub enum Value<'a> {
    Pinned(DBPinnableSlice<'a>),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Value::Pinned(p) => p,
            Value::Owned(v) => v,
        }
    }
}

/// Where an iterator starts, as `rocksdb::IteratorMode` without the borrow.
#[derive(Clone, Copy)]
pub enum Start<'k> {
    /// The first key at or above the lower bound.
    First,
    /// The last key below the upper bound, going backwards.
    Last,
    /// The first key at or after `key` going forward, or at or before it going backwards.
    From(&'k [u8], Direction),
}

type Item = std::result::Result<(Box<[u8]>, Box<[u8]>), StorageError>;
type DbIter<'a> = quarry_storage::rocksdb::DBIteratorWithThreadMode<'a, DB>;

/// An iterator over one column family: the database's, or the database's under a
/// transaction's overlay.
pub enum KvIter<'a> {
    Plain(DbIter<'a>),
    Merged(Merged<'a>),
}

impl Iterator for KvIter<'_> {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        match self {
            KvIter::Plain(it) => it.next().map(|r| r.map_err(StorageError::from)),
            KvIter::Merged(m) => m.next(),
        }
    }
}

/// The database's records with the overlay's on top: the overlay's own records in range (a
/// copy, taken when the iterator is made) merged in key order, its deletions and range
/// deletions hiding the database's records.
pub struct Merged<'a> {
    db: std::iter::Peekable<DbIter<'a>>,
    overlay: std::collections::VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    forward: bool,
}

fn in_ranges(ranges: &[(Vec<u8>, Vec<u8>)], key: &[u8]) -> bool {
    ranges
        .iter()
        .any(|(b, e)| key >= b.as_slice() && key < e.as_slice())
}

impl Iterator for Merged<'_> {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        loop {
            // Database records under a range deletion are skipped first.
            while let Some(Ok((k, _))) = self.db.peek() {
                if in_ranges(&self.ranges, k) {
                    self.db.next();
                } else {
                    break;
                }
            }
            let from_db = match self.db.peek() {
                None => None,
                Some(Err(_)) => {
                    return self.db.next().map(|r| r.map_err(StorageError::from));
                }
                Some(Ok((k, _))) => Some(k.clone()),
            };
            let take_overlay = match (&from_db, self.overlay.front()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(dk), Some((ok, _))) => {
                    if self.forward {
                        ok.as_slice() <= &dk[..]
                    } else {
                        ok.as_slice() >= &dk[..]
                    }
                }
            };
            if !take_overlay {
                return self.db.next().map(|r| r.map_err(StorageError::from));
            }
            let (k, v) = self.overlay.pop_front().expect("checked above");
            if from_db.as_deref() == Some(k.as_slice()) {
                // The overlay's record replaces the database's.
                self.db.next();
            }
            if let Some(v) = v {
                return Some(Ok((k.into_boxed_slice(), v.into_boxed_slice())));
            }
        }
    }
}

impl Db {
    /// A point read that sees the running transaction's writes.
    pub fn get_cf(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Value<'_>>> {
        if let Some(seen) = with_overlay(|o| o.and_then(|o| o.lookup(cf, key))) {
            return Ok(seen.map(Value::Owned));
        }
        if let Some(opts) = context_read_options(&self.engine) {
            let found = self
                .engine
                .db()
                .get_pinned_cf_opt(self.engine.cf(cf), key, &opts)
                .map_err(StorageError::from)?;
            return Ok(found.map(Value::Pinned));
        }
        Ok(self.engine.get(cf, key)?.map(Value::Pinned))
    }

    /// Point reads of many keys of one column family, without copying what the database holds
    /// (as [`Db::get_cf`]). Inside a transaction each key is read through its overlay; a single
    /// key is one point read, which costs less than a batched read's setup.
    pub fn multi_get_cf(
        &self,
        cf: ColumnFamily,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Value<'_>>>> {
        if active() || keys.len() == 1 {
            return keys.iter().map(|k| self.get_cf(cf, k)).collect();
        }
        let handle = self.engine.cf(cf);
        let at_snapshot = context_read_options(&self.engine);
        let opts = at_snapshot
            .as_ref()
            .unwrap_or_else(|| self.engine.point_read_options());
        self.engine
            .db()
            .batched_multi_get_cf_opt(handle, keys, false, opts)
            .into_iter()
            .map(|r| Ok(r.map_err(StorageError::from)?.map(Value::Pinned)))
            .collect()
    }

    /// An iterator over `[lower, upper)` of one column family, starting at `start`, that sees
    /// the running transaction's writes.
    pub fn iter_cf(
        &self,
        cf: ColumnFamily,
        lower: Option<Vec<u8>>,
        upper: Option<Vec<u8>>,
        start: Start<'_>,
    ) -> KvIter<'_> {
        let mut opts = context_read_options(&self.engine).unwrap_or_default();
        opts.set_async_io(self.engine.async_io());
        if let Some(l) = &lower {
            opts.set_iterate_lower_bound(l.clone());
        }
        if let Some(u) = &upper {
            opts.set_iterate_upper_bound(u.clone());
        }
        let mode = match start {
            Start::First => IteratorMode::Start,
            Start::Last => IteratorMode::End,
            Start::From(k, d) => IteratorMode::From(k, d),
        };
        let plain = self
            .engine
            .db()
            .iterator_cf_opt(self.engine.cf(cf), opts, mode);
        let overlay = with_overlay(|o| {
            let o = o?;
            let forward = !matches!(start, Start::Last | Start::From(_, Direction::Reverse));
            // The overlay's part of the range, from the start point in iteration order.
            let lo = lower.as_deref().map_or(Bound::Unbounded, Bound::Included);
            let hi = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let (lo, hi) = match start {
                Start::From(k, Direction::Forward) => (max_lower(lo, Bound::Included(k)), hi),
                Start::From(k, Direction::Reverse) => (lo, min_upper(hi, Bound::Included(k))),
                _ => (lo, hi),
            };
            let mut entries: std::collections::VecDeque<(Vec<u8>, Option<Vec<u8>>)> =
                if range_is_empty(lo, hi) {
                    Default::default()
                } else {
                    o.latest[cf as usize]
                        .range::<[u8], _>((lo, hi))
                        .map(|(k, &at)| (k.clone(), o.written(at)))
                        .collect()
                };
            if !forward {
                entries.make_contiguous().reverse();
            }
            Some((entries, o.ranges[cf as usize].clone(), forward))
        });
        match overlay {
            None => KvIter::Plain(plain),
            Some((overlay, ranges, forward)) => KvIter::Merged(Merged {
                db: plain.peekable(),
                overlay,
                ranges,
                forward,
            }),
        }
    }

    /// Writes a batch as a local (client) write, through the write gate; inside a transaction
    /// the batch is recorded for [`Db::commit`] instead.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        let recorded = with_overlay(|o| o.map(|o| o.record(&batch)));
        match recorded {
            Some(r) => Ok(r?),
            None => self.write_client_batch(batch),
        }
    }

    /// A client's batch (a command's, or a transaction's): refused whole over
    /// `write_batch_max_bytes`; the command's read context sees it after.
    fn write_client_batch(&self, batch: WriteBatch) -> Result<()> {
        quarry_storage::check_client_batch(&batch)?;
        self.engine
            .write(batch, quarry_storage::WriteOrigin::Local)?;
        context_refresh();
        Ok(())
    }

    /// Writes a finished transaction as one batch.
    pub fn commit(&self, overlay: Overlay) -> Result<()> {
        // A key it could not lock may have changed under it: nothing of it is written.
        if crate::locks::take_lock_failure() {
            return Err(crate::TypeError::LockTimeout);
        }
        if overlay.is_empty() {
            return Ok(());
        }
        let batch = overlay.into_batch(self);
        self.write_client_batch(batch)
    }
}

fn max_lower<'a>(a: Bound<&'a [u8]>, b: Bound<&'a [u8]>) -> Bound<&'a [u8]> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.max(y)),
        (Bound::Excluded(x), Bound::Included(y)) | (Bound::Included(y), Bound::Excluded(x)) => {
            if y > x {
                Bound::Included(y)
            } else {
                Bound::Excluded(x)
            }
        }
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.max(y)),
    }
}

fn min_upper<'a>(a: Bound<&'a [u8]>, b: Bound<&'a [u8]>) -> Bound<&'a [u8]> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.min(y)),
        (Bound::Excluded(x), Bound::Included(y)) | (Bound::Included(y), Bound::Excluded(x)) => {
            if y < x {
                Bound::Included(y)
            } else {
                Bound::Excluded(x)
            }
        }
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.min(y)),
    }
}

/// BTreeMap::range panics on an empty or inverted range; this tells them apart first.
fn range_is_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_storage::encoding::KeyCodec;
    use quarry_storage::{Engine, EngineOptions, Role};
    use std::sync::Arc;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = EngineOptions::new(dir.path());
        opts.block_cache_mb = 8;
        let engine = Engine::open(&opts).unwrap();
        engine.gate().set_role(Role::Master);
        let db = Db::new(Arc::new(engine), KeyCodec::new(b"__namespace", false));
        (dir, db)
    }

    fn put(db: &Db, k: &[u8], v: &[u8]) {
        let mut b = WriteBatch::default();
        b.put_cf(db.engine.cf(ColumnFamily::Default), k, v);
        db.write(b).unwrap();
    }

    fn del(db: &Db, k: &[u8]) {
        let mut b = WriteBatch::default();
        b.delete_cf(db.engine.cf(ColumnFamily::Default), k);
        db.write(b).unwrap();
    }

    fn keys(db: &Db, lower: &[u8], upper: &[u8], start: Start<'_>) -> Vec<String> {
        db.iter_cf(
            ColumnFamily::Default,
            Some(lower.to_vec()),
            Some(upper.to_vec()),
            start,
        )
        .map(|r| {
            let (k, v) = r.unwrap();
            format!(
                "{}={}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )
        })
        .collect()
    }

    #[test]
    fn reads_see_the_transaction_and_others_do_not_until_commit() {
        let (_dir, db) = db();
        for k in [b"a", b"c", b"e", b"g"] {
            put(&db, k, b"db");
        }
        let txn = begin();
        put(&db, b"b", b"tx");
        put(&db, b"c", b"tx");
        del(&db, b"e");
        put(&db, b"h", b"tx");
        assert_eq!(
            db.get_cf(ColumnFamily::Default, b"c").unwrap().as_deref(),
            Some(&b"tx"[..])
        );
        assert!(db.get_cf(ColumnFamily::Default, b"e").unwrap().is_none());
        assert_eq!(
            keys(&db, b"a", b"z", Start::First),
            ["a=db", "b=tx", "c=tx", "g=db", "h=tx"]
        );
        assert_eq!(
            keys(&db, b"a", b"z", Start::Last),
            ["h=tx", "g=db", "c=tx", "b=tx", "a=db"]
        );
        assert_eq!(
            keys(&db, b"a", b"z", Start::From(b"c", Direction::Forward)),
            ["c=tx", "g=db", "h=tx"]
        );
        assert_eq!(
            keys(&db, b"a", b"z", Start::From(b"d", Direction::Reverse)),
            ["c=tx", "b=tx", "a=db"]
        );
        assert_eq!(keys(&db, b"b", b"d", Start::First), ["b=tx", "c=tx"]);
        // Nothing reached the database yet.
        assert_eq!(
            db.engine
                .get(ColumnFamily::Default, b"c")
                .unwrap()
                .as_deref(),
            Some(&b"db"[..])
        );
        let overlay = txn.finish();
        assert!(!active());
        db.commit(overlay).unwrap();
        assert_eq!(
            keys(&db, b"a", b"z", Start::First),
            ["a=db", "b=tx", "c=tx", "g=db", "h=tx"]
        );
    }

    #[test]
    fn range_deletion_hides_the_database_but_not_later_writes() {
        let (_dir, db) = db();
        for k in [b"a", b"b", b"c"] {
            put(&db, k, b"db");
        }
        let txn = begin();
        put(&db, b"b", b"early");
        let mut b = WriteBatch::default();
        b.delete_range_cf(db.engine.cf(ColumnFamily::Default), b"a", b"c");
        db.write(b).unwrap();
        put(&db, b"a", b"late");
        assert_eq!(keys(&db, b"a", b"z", Start::First), ["a=late", "c=db"]);
        assert!(db.get_cf(ColumnFamily::Default, b"b").unwrap().is_none());
        db.commit(txn.finish()).unwrap();
        assert_eq!(keys(&db, b"a", b"z", Start::First), ["a=late", "c=db"]);
    }

    #[test]
    fn a_key_written_again_is_committed_once() {
        let (_dir, db) = db();
        put(&db, b"b", b"db");
        let txn = begin();
        put(&db, b"a", b"1");
        put(&db, b"a", b"2");
        del(&db, b"b");
        put(&db, b"b", b"3");
        put(&db, b"c", b"1");
        // Under the range deletion: the earlier write of c stays, the range deletes it.
        let mut range = WriteBatch::default();
        range.delete_range_cf(db.engine.cf(ColumnFamily::Default), b"c", b"d");
        db.write(range).unwrap();
        put(&db, b"c", b"2");
        del(&db, b"a");
        // Events in the propagate column family all stay.
        for _ in 0..2 {
            let mut event = WriteBatch::default();
            event.put_cf(db.engine.cf(ColumnFamily::Propagate), b"script", b"flush");
            db.write(event).unwrap();
        }
        let batch = txn.finish().into_batch(&db);
        let records: Vec<String> = decode(batch.data())
            .unwrap()
            .records
            .iter()
            .map(|r| match r {
                BatchRecord::Put { cf, key, value } => format!(
                    "put {cf} {}={}",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                ),
                BatchRecord::Delete { cf, key } => {
                    format!("del {cf} {}", String::from_utf8_lossy(key))
                }
                BatchRecord::DeleteRange { cf, begin, end } => format!(
                    "range {cf} {}..{}",
                    String::from_utf8_lossy(begin),
                    String::from_utf8_lossy(end)
                ),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            records,
            [
                "put 0 b=3",
                "put 0 c=1",
                "range 0 c..d",
                "put 0 c=2",
                "del 0 a",
                "put 4 script=flush",
                "put 4 script=flush",
            ]
        );
        db.write_client_batch(batch).unwrap();
        assert_eq!(keys(&db, b"a", b"z", Start::First), ["b=3", "c=2"]);
    }

    #[test]
    fn a_dropped_transaction_writes_nothing() {
        let (_dir, db) = db();
        {
            let _txn = begin();
            put(&db, b"a", b"tx");
        }
        assert!(!active());
        assert!(db.get_cf(ColumnFamily::Default, b"a").unwrap().is_none());
    }
}
