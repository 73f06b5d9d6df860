//! The write-ahead log as replication sees it: batches read back in order, with the checks that
//! keep a gap from passing silently (rust-rocksdb-notes.md, traps 1 and 2), and the facts a
//! partial resync compares: the replication id a batch carries and a digest of its contents.

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

    /// The last sequence number the batch takes.
    pub fn last_seq(&self) -> u64 {
        self.seq + self.count.max(1) - 1
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
}

/// Reads batches in order from a start sequence and checks that each one starts exactly where
/// the previous one ended. It is not `Send` (RocksDB's iterator is not), so drive it from one
/// thread.
pub struct WalReader<'a> {
    db: &'a rocksdb::DB,
    next: u64,
    iter: Option<rocksdb::DBWALIterator>,
    /// Consecutive iterator errors. RocksDB reports records that are not yet in the WAL file
    /// (written but not flushed) as errors too, so only a persistent error is one.
    errors: u32,
}

/// Consecutive iterator errors after which the WAL is considered unreadable.
const MAX_ERRORS: u32 = 1000;

impl<'a> WalReader<'a> {
    /// A reader whose first batch must start at `next`.
    pub fn new(db: &'a rocksdb::DB, next: u64) -> WalReader<'a> {
        WalReader {
            db,
            next,
            iter: None,
            errors: 0,
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
            self.iter = None;
            return Ok(None);
        }
        if self.iter.is_none() {
            // `get_updates_since(n)` yields batches starting after n (trap 1).
            match self.db.get_updates_since(self.next.saturating_sub(1)) {
                Ok(it) => self.iter = Some(it),
                Err(e) => return self.transient(e),
            }
        }
        let it = self.iter.as_mut().expect("set above");
        match it.next() {
            None => {
                // The iterator does not see later appends: open a new one next time.
                self.iter = None;
                Ok(None)
            }
            Some(Err(e)) => {
                self.iter = None;
                self.transient(e)
            }
            Some(Ok((seq, wb))) => {
                self.errors = 0;
                if seq != self.next {
                    self.iter = None;
                    return Err(WalGap::NotABatchStart(self.next));
                }
                let batch = WalBatch::from_data(seq, wb.data().to_vec());
                self.next = seq + batch.count.max(1);
                Ok(Some(batch))
            }
        }
    }

    fn transient(&mut self, e: rocksdb::Error) -> Result<Option<WalBatch>, WalGap> {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            return Err(WalGap::Storage(StorageError::Rocks(e)));
        }
        Ok(None)
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
