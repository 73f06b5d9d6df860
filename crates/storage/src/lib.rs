//! The storage layer: RocksDB laid out exactly as Kvrocks lays it out.
//!
//! It owns the column families, the key and metadata encodings, the write gate that decides who
//! may write, the compaction filters, and the decoder of raw WriteBatches. It knows nothing of the
//! network or of commands; data types build on it in `quarry-types`.

pub mod batch;
pub mod digest;
pub mod encoding;
mod engine;
mod error;
pub mod failpoint;
pub mod files;
mod filter;
pub use filter::HoldFilters;
mod gate;
mod health;
pub mod repair;
pub mod sharded;
pub mod slot;
pub mod wal;

pub use engine::{
    changes_since_start, check_client_batch, ColumnFamily, Engine, EngineOptions, HistogramFigures,
    OwnedSnapshot, Statistic, WriteDurability, WRITE_BATCH_MAX_BYTES,
};
pub use error::StorageError;
pub use gate::{Role, WriteGate, WriteOrigin};
pub use health::WriteHealth;
pub use rocksdb;
/// RocksDB's counters, for [`Engine::ticker`].
pub use rocksdb::statistics::Ticker as RocksTicker;
pub use rocksdb::WriteBatch;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
