use crate::gate::Role;

/// Everything the storage layer can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// RocksDB reported an error (I/O, corruption, ...).
    #[error("storage error: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Another process holds `<dir>/db/LOCK`.
    #[error("the data directory {dir} is in use by another process (RocksDB LOCK file is held): {detail}")]
    Locked { dir: String, detail: String },
    /// RocksDB refused a write (a full disk, an I/O error, or storage not yet recovered from
    /// one). The write is not in the memtable, so no reader sees it. It is not in the WAL
    /// either, except when an fsync (`rocksdb.write_options.sync yes`) failed after the WAL
    /// write: then a restart may replay it (docs/storage-faults.md).
    #[error("write refused by storage: {0}")]
    WriteFailed(rocksdb::Error),
    /// The database reached `max-db-size`: a replica does not apply its master's batches
    /// (as Kvrocks' replicas refuse them) until it is below the limit again.
    #[error("write refused: the database reached max-db-size")]
    SizeLimit,
    /// A client write larger than `rocksdb.write_options.write_batch_max_bytes`: nothing of
    /// it is written (RocksDB's MemoryLimit status, in Kvrocks' words).
    #[error("Operation aborted: Memory limit reached")]
    BatchTooLarge,
    /// The write gate refused a write: only the role's own writer may write.
    #[error("write refused: this node is {0}")]
    WriteRefused(Role),
    /// Bytes on disk that do not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}
