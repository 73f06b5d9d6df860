//! The write-ahead log as replication sees it: batches read back in order, with the checks that
//! keep a gap from passing silently (rust-rocksdb-notes.md, traps 1 and 2), and the facts a
//! partial resync compares: the replication id a batch carries and a digest of its contents.

use std::ffi::c_char;

use crate::batch::{self, BatchRecord};
use crate::StorageError;

/// One WAL batch: its first sequence number, how many sequence numbers it takes, and the raw
/// WriteBatch bytes (12-byte header included), as shipped to replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalBatch {
    pub seq: u64,
    pub count: u64,
    pub data: Vec<u8>,
}

impl WalBatch {
    pub fn from_data(seq: u64, data: Vec<u8>) -> WalBatch {
        WalBatch {
            seq,
            count: batch_count(&data),
            data,
        }
    }

    /// The last sequence number the batch takes (`seq - 1` for a batch of LogData only,
    /// which takes none).
    pub fn last_seq(&self) -> u64 {
        (self.seq + self.count).saturating_sub(1)
    }
}

/// The record count of a raw batch (header bytes 8..12).
pub fn batch_count(data: &[u8]) -> u64 {
    data.get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0) as u64
}

/// A digest of a batch's contents without its sequence header: the same batch written on the
/// master and applied on a replica digests the same, whatever sequence the header holds.
pub fn batch_digest(data: &[u8]) -> String {
    let body = data.get(8..).unwrap_or(&[]);
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body))
}

/// Length of a replication id (Kvrocks: 16 characters of [0-9A-Z]).
pub const REPLID_LEN: usize = 16;

/// The replication id a batch carries: the LogData `r <replid>` that a master with replication
/// ids appends to every batch it writes.
pub fn batch_replid(data: &[u8]) -> Option<String> {
    let decoded = batch::decode(data).ok()?;
    decoded.records.iter().rev().find_map(|r| match r {
        BatchRecord::LogData(d) if d.len() == 2 + REPLID_LEN && d.starts_with(b"r ") => {
            String::from_utf8(d[2..].to_vec()).ok()
        }
        _ => None,
    })
}

/// A fresh replication id: 16 characters of [0-9A-Z], as Kvrocks makes them.
pub fn new_replid() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..REPLID_LEN)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Why the WAL cannot serve a position.
#[derive(Debug, thiserror::Error)]
pub enum WalGap {
    /// The batch at the position is gone (purged) or the position falls inside a batch.
    #[error("the WAL does not hold a batch starting at sequence {0}")]
    NotABatchStart(u64),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the WAL cannot be read: {0}")]
    Unreadable(String),
}

/// One RocksDB `TransactionLogIterator`, driven through the C API. Unlike the wrapper's
/// iterator it can be asked again after reaching the end, and then reads what was appended
/// to the same WAL file since, instead of rescanning the file from its start.
struct Tail {
    ptr: *mut librocksdb_sys::rocksdb_wal_iterator_t,
}

impl Drop for Tail {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from rocksdb_get_updates_since and is destroyed once, here.
        unsafe { librocksdb_sys::rocksdb_wal_iter_destroy(self.ptr) }
    }
}

/// Takes an error string the C API allocated.
fn take_error(err: *mut c_char) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: RocksDB returns a NUL-terminated string allocated with malloc.
    let text = unsafe { std::ffi::CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { librocksdb_sys::rocksdb_free(err as *mut std::ffi::c_void) };
    Some(text)
}

impl Tail {
    /// An iterator positioned at the batch that holds `seq` (or the first one after it if the
    /// WAL lost it).
    fn open(db: &rocksdb::DB, seq: u64) -> Result<Tail, String> {
        use rocksdb::AsRawPtr;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: the DB handle outlives the iterator (the reader borrows the DB); a null read
        // options pointer means the defaults.
        let ptr = unsafe {
            librocksdb_sys::rocksdb_get_updates_since(
                db.as_raw_ptr(),
                seq,
                std::ptr::null(),
                &mut err,
            )
        };
        if let Some(e) = take_error(err) {
            return Err(e);
        }
        if ptr.is_null() {
            return Err("no WAL iterator".into());
        }
        Ok(Tail { ptr })
    }

    fn valid(&self) -> bool {
        // SAFETY: `ptr` is a live iterator.
        unsafe { librocksdb_sys::rocksdb_wal_iter_valid(self.ptr) != 0 }
    }

    fn advance(&mut self) {
        // SAFETY: `ptr` is a live iterator; Next after the end re-reads the file's new tail.
        unsafe { librocksdb_sys::rocksdb_wal_iter_next(self.ptr) }
    }

    fn status(&self) -> Result<(), String> {
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: `ptr` is a live iterator.
        unsafe { librocksdb_sys::rocksdb_wal_iter_status(self.ptr, &mut err) };
        match take_error(err) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The current batch: its sequence and raw bytes.
    fn batch(&self) -> (u64, Vec<u8>) {
        let mut seq = 0u64;
        // SAFETY: the iterator is valid; the returned batch is ours to destroy.
        unsafe {
            let wb = librocksdb_sys::rocksdb_wal_iter_get_batch(self.ptr, &mut seq);
            let mut len = 0usize;
            let data = librocksdb_sys::rocksdb_writebatch_data(wb, &mut len);
            let bytes = std::slice::from_raw_parts(data as *const u8, len).to_vec();
            librocksdb_sys::rocksdb_writebatch_destroy(wb);
            (seq, bytes)
        }
    }
}

/// Reads batches in order from a start sequence and checks that each one starts exactly where
/// the previous one ended. It keeps one iterator while the WAL file it reads grows, so a feeder
/// that keeps up costs no rescans. It is not `Send` (RocksDB's iterator is not), so drive it
/// from one thread.
pub struct WalReader<'a> {
    db: &'a rocksdb::DB,
    next: u64,
    tail: Option<Tail>,
    /// The iterator points at a batch not returned yet (just opened).
    positioned: bool,
    /// Consecutive iterator errors. RocksDB reports records that are not yet in the WAL file
    /// (written but not flushed), and a WAL file that rotated, as errors too; only a persistent
    /// error is one.
    errors: u32,
    /// The first batch may start before `next`, if it holds `next` ([`WalReader::containing`]).
    containing: bool,
}

/// Consecutive iterator errors after which the WAL is considered unreadable.
const MAX_ERRORS: u32 = 1000;

impl<'a> WalReader<'a> {
    /// A reader whose first batch must start at `next`.
    pub fn new(db: &'a rocksdb::DB, next: u64) -> WalReader<'a> {
        WalReader {
            db,
            next,
            tail: None,
            positioned: false,
            errors: 0,
            containing: false,
        }
    }

    /// A reader whose first batch holds `next` (it may start before it, as the batch that
    /// RocksDB's own iterator returns for a sequence inside a batch). A batch that starts
    /// after `next` is still a gap, never skipped.
    pub fn containing(db: &'a rocksdb::DB, next: u64) -> WalReader<'a> {
        WalReader {
            containing: true,
            ..WalReader::new(db, next)
        }
    }

    /// The sequence the next batch must start at.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The next batch, `Ok(None)` if the WAL holds nothing more yet, or an error if the batch
    /// that should come next is not there: never a silent skip.
    pub fn read(&mut self) -> Result<Option<WalBatch>, WalGap> {
        if self.db.latest_sequence_number() < self.next {
            return Ok(None);
        }
        // Records reach the WAL file when the write buffer is flushed; the sequence counter
        // moves before that. An iterator that looks for a record still in the buffer would
        // report it missing, so the buffer is flushed before any such retry.
        let mut flushed = false;
        for _ in 0..3 {
            match self.tail.as_mut() {
                None => {
                    if !flushed {
                        let _ = self.db.flush_wal(false);
                        flushed = true;
                    }
                    match Tail::open(self.db, self.next) {
                        Ok(t) => {
                            self.tail = Some(t);
                            self.positioned = true;
                        }
                        Err(e) => return self.transient(e),
                    }
                }
                Some(t) if !self.positioned => t.advance(),
                Some(_) => {}
            }
            let tail = self.tail.as_ref().expect("set above");
            self.positioned = false;
            if !tail.valid() {
                match tail.status() {
                    // At the end of what was written: the same iterator reads the file's tail
                    // next time.
                    Ok(()) => return Ok(None),
                    // More was written than this iterator found: either still in the buffer
                    // (flush, then the same iterator reads on) or in a newer WAL file (a new
                    // iterator is needed).
                    Err(e) if e.contains("new iterator") => {
                        if flushed {
                            self.tail = None;
                        } else {
                            let _ = self.db.flush_wal(false);
                            flushed = true;
                        }
                        continue;
                    }
                    Err(e) => return self.transient(e),
                }
            }
            self.errors = 0;
            let (seq, data) = tail.batch();
            let batch = WalBatch::from_data(seq, data);
            let holds_next = seq < self.next && seq + batch.count > self.next;
            if seq != self.next && !(std::mem::take(&mut self.containing) && holds_next) {
                self.tail = None;
                return Err(WalGap::NotABatchStart(self.next));
            }
            self.containing = false;
            self.next = seq + batch.count;
            return Ok(Some(batch));
        }
        Ok(None)
    }

    fn transient(&mut self, e: String) -> Result<Option<WalBatch>, WalGap> {
        self.errors += 1;
        self.tail = None;
        if self.errors >= MAX_ERRORS {
            return Err(WalGap::Unreadable(e));
        }
        Ok(None)
    }
}

/// Where the WAL batch that holds `seq` starts, if the WAL still has it.
pub fn batch_containing(db: &rocksdb::DB, seq: u64) -> Option<u64> {
    let mut reader = WalReader::containing(db, seq);
    match reader.read() {
        Ok(Some(b)) => Some(b.seq),
        _ => None,
    }
}

/// The WAL batch whose last sequence number is `seq`: `Ok(None)` if the WAL no longer holds it,
/// `Err` if `seq` falls inside a batch (not a batch boundary).
pub fn batch_ending_at(db: &rocksdb::DB, seq: u64) -> Result<Option<WalBatch>, WalGap> {
    if seq == 0 || seq > db.latest_sequence_number() {
        return Ok(None);
    }
    // The batch that ends at `seq` starts at most `count` before it; widen the window until
    // the search starts before it.
    let mut back: u64 = 1;
    loop {
        let from = seq.saturating_sub(back);
        let iter = match db.get_updates_since(from) {
            Ok(it) => it,
            Err(_) => return Ok(None),
        };
        let mut first = true;
        for item in iter {
            let (start, wb) = item.map_err(|e| WalGap::Storage(StorageError::Rocks(e)))?;
            if first && start > seq {
                // The window began inside the batch that holds `seq` (or the WAL lost it).
                break;
            }
            first = false;
            let batch = WalBatch::from_data(start, wb.data().to_vec());
            if batch.seq > seq {
                break;
            }
            if batch.count == 0 {
                // LogData only: it holds no sequence number, so no history ends with it.
                continue;
            }
            if batch.last_seq() == seq {
                return Ok(Some(batch));
            }
            if batch.last_seq() > seq {
                return Err(WalGap::NotABatchStart(seq + 1));
            }
        }
        if from == 0 {
            return Ok(None);
        }
        back = back.saturating_mul(64);
    }
}
