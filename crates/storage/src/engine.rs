//! The RocksDB engine: opening `<dir>/db` with Kvrocks' seven column families, and the single
//! write path that every write goes through, behind the [`WriteGate`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBPinnableSlice,
    DataBlockIndexType, Options, WriteBatch, WriteOptions, DB,
};
use tracing::info;

use crate::gate::{WriteGate, WriteOrigin};
use crate::{filter, StorageError};

/// Kvrocks' column families, in the order that fixes their ids (kvrocks-compat.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnFamily {
    Default = 0,
    Metadata = 1,
    ZSetScore = 2,
    PubSub = 3,
    Propagate = 4,
    Stream = 5,
    Search = 6,
}

impl ColumnFamily {
    pub const ALL: [ColumnFamily; 7] = [
        ColumnFamily::Default,
        ColumnFamily::Metadata,
        ColumnFamily::ZSetScore,
        ColumnFamily::PubSub,
        ColumnFamily::Propagate,
        ColumnFamily::Stream,
        ColumnFamily::Search,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColumnFamily::Default => "default",
            ColumnFamily::Metadata => "metadata",
            ColumnFamily::ZSetScore => "zset_score",
            ColumnFamily::PubSub => "pubsub",
            ColumnFamily::Propagate => "propagate",
            ColumnFamily::Stream => "stream",
            ColumnFamily::Search => "search",
        }
    }
}

/// What an acknowledged write survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WriteDurability {
    /// WAL written, not fsynced: survives a process crash (`kill -9`), not a power loss.
    #[default]
    Wal,
    /// WAL fsynced before the reply: survives power loss.
    WalSync,
    /// No WAL: a crash loses what is not flushed yet, and replication cannot work.
    NoWal,
}

/// `rocksdb.write_options.write_batch_max_bytes`: the largest batch a client write may make,
/// 0 for no limit. Kept process-wide so that CONFIG SET reaches every engine at once.
pub static WRITE_BATCH_MAX_BYTES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Refuses the batch of a client's command (or EXEC, or script) over `write_batch_max_bytes`.
/// Only client writes are checked: replicated batches, slot-migration batches and the
/// server's own records are never refused.
pub fn check_client_batch(batch: &WriteBatch) -> Result<(), StorageError> {
    let max = WRITE_BATCH_MAX_BYTES.load(Ordering::Relaxed);
    if max > 0 && batch.size_in_bytes() > max {
        return Err(StorageError::BatchTooLarge);
    }
    Ok(())
}

/// A snapshot holding its database, for reads that must all see one state.
pub struct OwnedSnapshot {
    snap: rocksdb::SnapshotWithThreadMode<'static, DB>,
    _db: Arc<DB>,
}

impl OwnedSnapshot {
    /// Read options that read at this snapshot.
    pub fn read_options(&self) -> rocksdb::ReadOptions {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_snapshot(&self.snap);
        opts
    }
}

/// One of RocksDB's statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    Ticker(u64),
    Histogram(HistogramFigures),
}

/// A RocksDB histogram as Kvrocks' STATS reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistogramFigures {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub count: u64,
    pub sum: u64,
}

/// The `rocksdb.*` settings quarry applies.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub dir: PathBuf,
    pub durability: WriteDurability,
    pub block_cache_mb: usize,
    /// `rocksdb.share_metadata_and_subkey_block_cache no`: the metadata column family gets a
    /// block cache of this many MB of its own, and the others share `block_cache_mb`.
    pub metadata_cache_mb: Option<usize>,
    /// HyperClockCache (lock-free) instead of LRU: Kvrocks' `rocksdb.block_cache_type hcc`.
    pub hyper_clock_cache: bool,
    pub write_buffer_mb: usize,
    pub max_write_buffer_number: i32,
    pub max_open_files: i32,
    pub max_background_jobs: i32,
    pub wal_ttl_seconds: u64,
    pub wal_size_limit_mb: u64,
    pub max_total_wal_size_mb: u64,
    pub enable_pipelined_write: bool,
    pub compression: rocksdb::DBCompressionType,
    /// RocksDB's default when `None` (Kvrocks writes 32767 for that).
    pub compression_level: Option<i32>,
    pub bloom_bits_per_key: f64,
    /// Keys carry their cluster slot (`cluster-enabled yes`); the sub-key filter must know.
    pub slot_encoded: bool,
    pub block_size: usize,
    pub cache_index_and_filter_blocks: bool,
    pub target_file_size_base_mb: u64,
    pub max_subcompactions: u32,
    pub disable_auto_compactions: bool,
    pub level0_slowdown_writes_trigger: i32,
    pub level0_stop_writes_trigger: i32,
    pub level0_file_num_compaction_trigger: i32,
    pub max_bytes_for_level_base: u64,
    pub max_bytes_for_level_multiplier: f64,
    pub level_compaction_dynamic_level_bytes: bool,
    pub stats_dump_period_sec: u32,
    /// RocksDB's statistics (for STATS and INFO): None for none, else the level kept.
    pub statistics: Option<rocksdb::statistics::StatsLevel>,
    pub compaction_readahead_size: usize,
    pub no_slowdown: bool,
    pub low_pri: bool,
    /// `rocksdb.delayed_write_rate` in bytes/s (0: RocksDB's own choice).
    pub delayed_write_rate: u64,
    /// `rocksdb.read_options.async_io`: iterators prefetch asynchronously.
    pub async_io: bool,
    /// `rocksdb.avoid_unnecessary_blocking_io`: obsolete files are deleted in the background.
    pub avoid_unnecessary_blocking_io: bool,
    /// `rocksdb.write_options.memtable_insert_hint_per_batch`.
    pub memtable_insert_hint_per_batch: bool,
    /// RocksDB's legacy thread counts (-1 for both: `max_background_jobs` decides), as
    /// Kvrocks passes them.
    pub max_background_flushes: i32,
    pub max_background_compactions: i32,
    /// `max-io-mb`: flush and compaction writes per second, 0 = no limit.
    pub max_io_mb: u64,
    pub rate_limiter_auto_tuned: bool,
    pub row_cache_mb: usize,
    /// BlobDB (key-value separation) for large values, as Kvrocks configures it.
    pub enable_blob_files: bool,
    pub min_blob_size: u64,
    pub blob_file_size: u64,
    pub enable_blob_gc: bool,
    /// Percent of the oldest blob files that garbage collection may rewrite.
    pub blob_gc_age_cutoff_percent: u32,
}

impl EngineOptions {
    pub fn new(dir: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            dir: dir.into(),
            durability: WriteDurability::Wal,
            block_cache_mb: 4096,
            metadata_cache_mb: None,
            hyper_clock_cache: false,
            write_buffer_mb: 64,
            max_write_buffer_number: 4,
            max_open_files: 8096,
            max_background_jobs: 4,
            max_background_flushes: -1,
            max_background_compactions: -1,
            max_io_mb: 0,
            rate_limiter_auto_tuned: true,
            row_cache_mb: 0,
            enable_blob_files: false,
            min_blob_size: 4096,
            blob_file_size: 256 << 20,
            enable_blob_gc: true,
            blob_gc_age_cutoff_percent: 25,
            wal_ttl_seconds: 10800,
            wal_size_limit_mb: 16384,
            max_total_wal_size_mb: 512,
            enable_pipelined_write: false,
            compression: rocksdb::DBCompressionType::Snappy,
            compression_level: None,
            bloom_bits_per_key: 10.0,
            slot_encoded: false,
            block_size: 16 * 1024,
            cache_index_and_filter_blocks: true,
            target_file_size_base_mb: 128,
            max_subcompactions: 2,
            disable_auto_compactions: false,
            level0_slowdown_writes_trigger: 20,
            level0_stop_writes_trigger: 40,
            level0_file_num_compaction_trigger: 4,
            max_bytes_for_level_base: 256 * 1024 * 1024,
            max_bytes_for_level_multiplier: 10.0,
            level_compaction_dynamic_level_bytes: true,
            stats_dump_period_sec: 0,
            statistics: Some(rocksdb::statistics::StatsLevel::ExceptDetailedTimers),
            compaction_readahead_size: 2 * 1024 * 1024,
            no_slowdown: false,
            low_pri: false,
            delayed_write_rate: 0,
            async_io: true,
            avoid_unnecessary_blocking_io: true,
            memtable_insert_hint_per_batch: false,
        }
    }

    /// Where RocksDB keeps its files: `<dir>/db`, as Kvrocks.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("db")
    }
}

/// Batches with data written since the process started, by clients or from a master (INFO's
/// `rdb_changes_since_last_save`: RocksDB keeps every write, and there is no RDB save).
static CHANGES: std::sync::LazyLock<crate::sharded::Counter> =
    std::sync::LazyLock::new(Default::default);

/// See [`CHANGES`].
pub fn changes_since_start() -> u64 {
    CHANGES.get()
}

pub struct Engine {
    db: Arc<DB>,
    /// Shared with the sub-key compaction filters, which look up metadata in this DB.
    filter_context: Arc<filter::SubkeyContext>,
    gate: WriteGate,
    health: crate::WriteHealth,
    /// `max-db-size`: set while the SST files are at the limit (or DEBUG DBSIZE-LIMIT 1).
    size_limit_reached: AtomicBool,
    /// What the last size check found; a forced flag stays until a check finds otherwise.
    size_limit_computed: AtomicBool,
    /// A full compaction runs.
    compacting: AtomicBool,
    write_opts: WriteOptions,
    /// The options of every point read, made once: `get_pinned_cf` made (allocated) a default
    /// set and destroyed it again for each read.
    point_reads: rocksdb::ReadOptions,
    async_io: bool,
    /// The options the DB was opened with, holding its statistics object (when enabled).
    statistics: Option<Options>,
    /// The metadata column family has a block cache of its own.
    separate_metadata_cache: bool,
    path: PathBuf,
    /// The LogData `r <replid>` appended to every local batch, built once per id, or None.
    replid: crate::sharded::ReadMostly<Option<Vec<u8>>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Compaction filters hold weak references to the DB. Stop them, and wait for running
        // compactions, so that the DB is never dropped from inside a compaction thread.
        self.filter_context.close();
        self.db.cancel_all_background_work(true);
    }
}

impl Engine {
    /// Opens (or creates) the database. The write gate starts closed: the caller settles the
    /// node's role and then opens it with `gate().set_role(..)`.
    pub fn open(opts: &EngineOptions) -> Result<Engine, StorageError> {
        let path = opts.db_path();
        std::fs::create_dir_all(&path)
            .map_err(|e| StorageError::Corrupt(format!("cannot create {}: {e}", path.display())))?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_open_files(opts.max_open_files);
        db_opts.set_max_background_jobs(opts.max_background_jobs);
        // Deprecated in the wrapper, still honoured by RocksDB 11 (`GetBGJobLimits`): unless
        // both are -1 they decide the thread counts, as in Kvrocks, which sets them.
        #[allow(deprecated)]
        {
            db_opts.set_max_background_flushes(opts.max_background_flushes);
            db_opts.set_max_background_compactions(opts.max_background_compactions);
        }
        if opts.max_io_mb > 0 {
            let rate = (opts.max_io_mb * 1024 * 1024) as i64;
            if opts.rate_limiter_auto_tuned {
                db_opts.set_auto_tuned_ratelimiter(rate, 100_000, 10);
            } else {
                db_opts.set_ratelimiter(rate, 100_000, 10);
            }
        }
        if opts.row_cache_mb > 0 {
            db_opts.set_row_cache(&Cache::new_lru_cache(opts.row_cache_mb * 1024 * 1024));
        }
        if opts.delayed_write_rate > 0 {
            use rocksdb::AsRawPtr;
            // SAFETY: the options object is alive and owned here; the setter only stores the
            // value (the wrapper has no method for it).
            unsafe {
                librocksdb_sys::rocksdb_options_set_delayed_write_rate(
                    db_opts.as_raw_ptr(),
                    opts.delayed_write_rate,
                );
            }
        }
        db_opts.set_avoid_unnecessary_blocking_io(opts.avoid_unnecessary_blocking_io);
        db_opts.set_wal_ttl_seconds(opts.wal_ttl_seconds);
        db_opts.set_wal_size_limit_mb(opts.wal_size_limit_mb);
        db_opts.set_max_total_wal_size(opts.max_total_wal_size_mb * 1024 * 1024);
        db_opts.set_enable_pipelined_write(opts.enable_pipelined_write);
        // A writer that waits for the group-commit leader spins and yields for up to 100 µs
        // before it blocks (RocksDB's default, as Kvrocks). Off, and with shorter waits, it was
        // slower (docs/threading.md, "RocksDB's write-thread adaptive yield").
        db_opts.set_enable_write_thread_adaptive_yield(true);
        db_opts.set_keep_log_file_num(12);
        // Each write hands its WAL record to the operating system before it reaches the
        // memtable (no `manual_wal_flush`). So a write whose WAL write fails (a full disk) is
        // never seen by readers, RocksDB treats the failure as a recoverable error, and once
        // there is space again it resumes by itself (docs/storage-faults.md). With a manually
        // flushed WAL buffer, the write is in the memtable before the failure, and RocksDB
        // treats it as fatal: no write until the database is reopened.
        db_opts.set_max_subcompactions(opts.max_subcompactions);
        db_opts.set_stats_dump_period_sec(opts.stats_dump_period_sec);
        if let Some(level) = opts.statistics {
            db_opts.enable_statistics();
            db_opts.set_statistics_level(level);
        }
        db_opts.set_compaction_readahead_size(opts.compaction_readahead_size);
        let new_cache = |mb: usize| {
            if opts.hyper_clock_cache {
                // 0 lets RocksDB size its table automatically.
                Cache::new_hyper_clock_cache(mb * 1024 * 1024, 0)
            } else {
                Cache::new_lru_cache(mb * 1024 * 1024)
            }
        };
        let cache = new_cache(opts.block_cache_mb);
        let metadata_cache = opts.metadata_cache_mb.map(new_cache);

        let filter_context = Arc::new(filter::SubkeyContext::new(opts.slot_encoded));
        let mut descriptors = Vec::new();
        for cf in ColumnFamily::ALL {
            let mut cf_opts = Options::default();
            let mut table = BlockBasedOptions::default();
            match (&metadata_cache, cf) {
                (Some(own), ColumnFamily::Metadata) => table.set_block_cache(own),
                _ => table.set_block_cache(&cache),
            }
            table.set_bloom_filter(opts.bloom_bits_per_key, false);
            table.set_cache_index_and_filter_blocks(opts.cache_index_and_filter_blocks);
            table.set_block_size(opts.block_size);
            // Kvrocks' table layout. Indexes and filters are partitioned (a two-level index with
            // 4 KiB partitions), so a point read loads one small partition instead of a file's
            // whole index: with a dataset larger than the block cache, whole indexes were
            // evicted and read and decompressed again on every GET. The top level and L0's
            // blocks stay pinned, and index and filter blocks are cached with high priority.
            table.set_format_version(5);
            table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_optimize_filters_for_memory(true);
            table.set_metadata_block_size(4096);
            table.set_pin_top_level_index_and_filter(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            table.set_cache_index_and_filter_blocks_with_high_priority(true);
            table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
            table.set_data_block_hash_ratio(0.75);
            cf_opts.set_block_based_table_factory(&table);
            cf_opts.set_compression_type(opts.compression);
            // As Kvrocks: L0 and L1, which hold the most recently written (and most read)
            // data, are not compressed; the levels below are.
            let mut per_level = vec![opts.compression; 7];
            per_level[0] = rocksdb::DBCompressionType::None;
            per_level[1] = rocksdb::DBCompressionType::None;
            cf_opts.set_compression_per_level(&per_level);
            if let Some(level) = opts.compression_level {
                cf_opts.set_compression_options(-14, level, 0, 0);
            }
            cf_opts.set_target_file_size_base(opts.target_file_size_base_mb * 1024 * 1024);
            cf_opts.set_disable_auto_compactions(opts.disable_auto_compactions);
            cf_opts.set_level_zero_slowdown_writes_trigger(opts.level0_slowdown_writes_trigger);
            cf_opts.set_level_zero_stop_writes_trigger(opts.level0_stop_writes_trigger);
            cf_opts.set_level_zero_file_num_compaction_trigger(
                opts.level0_file_num_compaction_trigger,
            );
            cf_opts.set_max_bytes_for_level_base(opts.max_bytes_for_level_base);
            cf_opts.set_max_bytes_for_level_multiplier(opts.max_bytes_for_level_multiplier);
            cf_opts.set_level_compaction_dynamic_level_bytes(
                opts.level_compaction_dynamic_level_bytes,
            );
            cf_opts.set_enable_blob_files(opts.enable_blob_files);
            cf_opts.set_min_blob_size(opts.min_blob_size);
            cf_opts.set_blob_file_size(opts.blob_file_size);
            cf_opts.set_blob_compression_type(opts.compression);
            cf_opts.set_enable_blob_gc(opts.enable_blob_gc);
            cf_opts.set_blob_gc_age_cutoff(opts.blob_gc_age_cutoff_percent as f64 / 100.0);
            cf_opts.set_write_buffer_size(opts.write_buffer_mb * 1024 * 1024);
            cf_opts.set_max_write_buffer_number(opts.max_write_buffer_number);
            if matches!(cf, ColumnFamily::Metadata | ColumnFamily::Default) {
                // Point lookups of keys (GET, EXISTS, every type check) and of sub-keys (does
                // HSET's field, SADD's member exist) probe each memtable; a whole-key bloom
                // filter lets them skip the memtables that lack the key. Kvrocks has it on
                // metadata only; on sub-keys too it took HSET -P 16 on one hash from 101k to
                // 115k requests a second (docs/threading.md, "Sub-key lookups").
                cf_opts.set_memtable_prefix_bloom_ratio(0.1);
                cf_opts.set_memtable_whole_key_filtering(true);
            }
            filter::install(cf, &mut cf_opts, &filter_context);
            descriptors.push(ColumnFamilyDescriptor::new(cf.name(), cf_opts));
        }
        // A data directory written by a newer Kvrocks may hold more column families; RocksDB
        // refuses to open it unless all of them are named.
        if let Ok(existing) = DB::list_cf(&db_opts, &path) {
            for name in existing {
                if !ColumnFamily::ALL.iter().any(|cf| cf.name() == name) {
                    descriptors.push(ColumnFamilyDescriptor::new(name, Options::default()));
                }
            }
        }
        let db = DB::open_cf_descriptors(&db_opts, &path, descriptors).map_err(|e| {
            let text = e.to_string();
            if text.contains("lock") || text.contains("LOCK") {
                StorageError::Locked {
                    dir: opts.dir.display().to_string(),
                    detail: text,
                }
            } else {
                StorageError::Rocks(e)
            }
        })?;
        let mut write_opts = WriteOptions::default();
        match opts.durability {
            WriteDurability::Wal => {}
            WriteDurability::WalSync => write_opts.set_sync(true),
            WriteDurability::NoWal => write_opts.disable_wal(true),
        }
        write_opts.set_no_slowdown(opts.no_slowdown);
        write_opts.set_memtable_insert_hint_per_batch(opts.memtable_insert_hint_per_batch);
        write_opts.set_low_pri(opts.low_pri);
        info!(path = %path.display(), sequence = db.latest_sequence_number(), "storage opened");
        let db = Arc::new(db);
        filter_context.attach(&db);
        Ok(Engine {
            db,
            filter_context,
            gate: WriteGate::default(),
            health: Default::default(),
            size_limit_reached: AtomicBool::new(false),
            size_limit_computed: AtomicBool::new(false),
            compacting: AtomicBool::new(false),
            write_opts,
            point_reads: rocksdb::ReadOptions::default(),
            async_io: opts.async_io,
            separate_metadata_cache: opts.metadata_cache_mb.is_some(),
            statistics: opts.statistics.map(|_| db_opts),
            path,
            replid: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn gate(&self) -> &WriteGate {
        &self.gate
    }

    /// Whether writes are being refused (a full disk, an I/O error), for INFO.
    pub fn health(&self) -> &crate::WriteHealth {
        &self.health
    }

    /// The RocksDB handle, for reads, iterators and snapshots. Writes go through [`Engine::write`].
    pub fn db(&self) -> &DB {
        &self.db
    }

    pub fn cf(&self, cf: ColumnFamily) -> &rocksdb::ColumnFamily {
        // Every column family in ALL is opened by `open`, so the handle always exists.
        self.db
            .cf_handle(cf.name())
            .expect("column family opened at start-up")
    }

    /// The options of a point read outside a snapshot (made once; see `point_reads`).
    pub fn point_read_options(&self) -> &rocksdb::ReadOptions {
        &self.point_reads
    }

    pub fn get(
        &self,
        cf: ColumnFamily,
        key: &[u8],
    ) -> Result<Option<DBPinnableSlice<'_>>, StorageError> {
        Ok(self
            .db
            .get_pinned_cf_opt(self.cf(cf), key, &self.point_reads)?)
    }

    /// A snapshot of the database as it is now, that may outlive a borrow of the engine.
    pub fn owned_snapshot(&self) -> OwnedSnapshot {
        let db = self.db.clone();
        let snap = db.snapshot();
        // SAFETY: the snapshot borrows the DB inside `db`'s allocation, which the Arc keeps
        // alive and in place for as long as the OwnedSnapshot lives; the snapshot is declared
        // first, so it is released before that Arc is dropped.
        let snap = unsafe {
            std::mem::transmute::<
                rocksdb::SnapshotWithThreadMode<'_, DB>,
                rocksdb::SnapshotWithThreadMode<'static, DB>,
            >(snap)
        };
        OwnedSnapshot { snap, _db: db }
    }

    /// The only write path. The gate decides whether `origin` may write in the current role. A
    /// local batch carries the node's replication id at its end, as Kvrocks' batches do.
    pub fn write(&self, batch: WriteBatch, origin: WriteOrigin) -> Result<(), StorageError> {
        // Held until the write is done: a role change cannot slip in between.
        let _admitted = self
            .gate
            .admit(origin)
            .map_err(StorageError::WriteRefused)?;
        if origin == WriteOrigin::Local {
            self.write_local_admitted(batch)
        } else {
            self.write_opt(batch)
        }
    }

    /// A local batch the gate admitted: it carries the node's replication id at its end.
    fn write_local_admitted(&self, mut batch: WriteBatch) -> Result<(), StorageError> {
        if let Some(log_data) = self.replid.read().as_deref() {
            batch.put_log_data(log_data);
        }
        self.write_opt(batch)
    }

    /// A local write that no other write overlaps: `build` reads the state the batch replaces
    /// and makes it (with a result of its own), and the batch is written before any other
    /// write lands. Other writes wait meanwhile; it is meant for rare, small batches
    /// (verification repairs).
    pub fn write_alone<T>(
        &self,
        build: impl FnOnce(&Engine) -> Result<(WriteBatch, T), StorageError>,
    ) -> Result<T, StorageError> {
        self.alone(|e| {
            let (batch, made) = build(e)?;
            e.write_local_admitted(batch)?;
            Ok(made)
        })?
    }

    /// Runs `f` while no write can land (on a master): what it reads is the state at the
    /// current sequence, and nothing follows it until `f` returns. For markers that must sit
    /// at an exact place in the history (verification).
    pub fn alone<'a, T>(&'a self, f: impl FnOnce(&'a Engine) -> T) -> Result<T, StorageError> {
        let _alone = self
            .gate
            .admit_alone(WriteOrigin::Local)
            .map_err(StorageError::WriteRefused)?;
        Ok(f(self))
    }

    fn write_opt(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let has_data = !batch.is_empty();
        if let Err(e) = self.db.write_opt(batch, &self.write_opts) {
            self.health.refused(&e);
            return Err(StorageError::WriteFailed(e));
        }
        self.health.accepted();
        if has_data {
            CHANGES.add(1);
        }
        Ok(())
    }

    /// Applies a master's raw batch unchanged. The engine gives it the next sequence numbers,
    /// which are the master's as long as the replica never writes anything else.
    pub fn apply_replicated(&self, data: &[u8]) -> Result<(), StorageError> {
        crate::batch::decode(data)?;
        if self.size_limit_reached() {
            return Err(StorageError::SizeLimit);
        }
        let _admitted = self
            .gate
            .admit(WriteOrigin::Replication)
            .map_err(StorageError::WriteRefused)?;
        self.write_opt(WriteBatch::from_data(data))
    }

    /// The bytes of SST and blob files, as `max-db-size` counts them (Kvrocks counts its
    /// SstFileManager's total: live files and those waiting for deletion).
    pub fn sst_bytes(&self) -> u64 {
        // Large values in blob files (BlobDB) count too.
        self.property_sum("rocksdb.total-sst-files-size")
            + self.property_sum("rocksdb.total-blob-file-size")
    }

    /// Checks `max-db-size` (`limit` bytes, 0 = none), as Kvrocks does after each flush and
    /// compaction; returns whether writes that grow the data are refused now. The flag changes
    /// only when the check's own result changes, so DEBUG DBSIZE-LIMIT holds until then.
    pub fn check_size_limit(&self, limit: u64) -> bool {
        let used = self.sst_bytes();
        let reached = limit > 0 && used >= limit;
        if self.size_limit_computed.swap(reached, Ordering::Relaxed) != reached {
            self.set_size_limit_reached(reached);
            if reached {
                tracing::warn!(used, limit, "the database reached max-db-size: writes that add data are refused (deletions go on)");
            } else {
                tracing::warn!(
                    used,
                    limit,
                    "the database is below max-db-size again: writes are accepted"
                );
            }
        }
        self.size_limit_reached()
    }

    /// Sets the `max-db-size` flag (DEBUG DBSIZE-LIMIT).
    pub fn set_size_limit_reached(&self, reached: bool) {
        self.size_limit_reached.store(reached, Ordering::Relaxed);
    }

    pub fn size_limit_reached(&self) -> bool {
        self.size_limit_reached.load(Ordering::Relaxed)
    }

    /// The replication id local batches carry.
    pub fn replid(&self) -> Option<String> {
        let log_data = self.replid.read();
        let id = log_data.as_deref()?.strip_prefix(b"r ")?;
        Some(String::from_utf8_lossy(id).into_owned())
    }

    /// Sets the replication id (None stops tagging batches).
    pub fn set_replid(&self, id: Option<String>) {
        *self.replid.write() = id.map(|id| format!("r {id}").into_bytes());
    }

    /// Kvrocks' `ShiftReplId`: a new replication id, recorded under `replication_id_` in the
    /// propagate column family, in a batch that itself carries the new id. Only a master does
    /// this; the write gate refuses it anywhere else.
    pub fn shift_replid(&self) -> Result<String, StorageError> {
        self.gate
            .check(WriteOrigin::Local)
            .map_err(StorageError::WriteRefused)?;
        let id = crate::wal::new_replid();
        let previous = self.replid.write().replace(format!("r {id}").into_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(ColumnFamily::Propagate),
            b"replication_id_",
            id.as_bytes(),
        );
        if let Err(e) = self.write(batch, WriteOrigin::Local) {
            *self.replid.write() = previous;
            return Err(e);
        }
        Ok(id)
    }

    /// The replication id recorded in the propagate column family (replicated from the master).
    pub fn stored_replid(&self) -> Option<String> {
        let v = self
            .get(ColumnFamily::Propagate, b"replication_id_")
            .ok()
            .flatten()?;
        (v.len() == crate::wal::REPLID_LEN)
            .then(|| String::from_utf8(v.to_vec()).ok())
            .flatten()
    }

    /// Whether iterators prefetch asynchronously (`rocksdb.read_options.async_io`).
    pub fn async_io(&self) -> bool {
        self.async_io
    }

    /// A consistent read view and the sequence it reflects.
    pub fn snapshot_at_sequence(&self) -> (rocksdb::SnapshotWithThreadMode<'_, DB>, u64) {
        loop {
            let before = self.db.latest_sequence_number();
            let snap = self.db.snapshot();
            if self.db.latest_sequence_number() == before {
                return (snap, before);
            }
        }
    }

    /// A RocksDB checkpoint of the whole database in `dir` (which must not exist), and the
    /// sequence it holds.
    pub fn checkpoint(&self, dir: &Path) -> Result<u64, StorageError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        cp.create_checkpoint(dir)?;
        // Opened read-only, the checkpoint tells its own sequence exactly.
        let mut opts = Options::default();
        opts.create_if_missing(false);
        let cfs = DB::list_cf(&opts, dir)?;
        let ro = DB::open_cf_for_read_only(&opts, dir, cfs, false)?;
        Ok(ro.latest_sequence_number())
    }

    pub fn latest_sequence(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// Flushes every memtable to SST files (used at shutdown and before checkpoints).
    pub fn flush(&self) -> Result<(), StorageError> {
        for cf in ColumnFamily::ALL {
            self.db.flush_cf(self.cf(cf))?;
        }
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Compacts every column family over its whole range; compaction filters run. False, and
    /// nothing done, while another full compaction runs.
    pub fn compact_all(&self) -> bool {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return false;
        }
        for cf in ColumnFamily::ALL {
            self.db
                .compact_range_cf(self.cf(cf), None::<&[u8]>, None::<&[u8]>);
        }
        self.compacting.store(false, Ordering::Release);
        true
    }

    /// Kvrocks' compaction checker: compacts the `pubsub` and `propagate` column families
    /// whole, then, in the metadata and sub-key column families, the SST files whose share of
    /// deletions reaches `min_ratio` and that are older than `min_age` (at most one file in
    /// 360 per family, at least one), or else the file with the largest share of deletions
    /// (over 10%) among those older than an hour. Returns the files compacted. Nothing runs
    /// while a full compaction does.
    pub fn check_compaction(&self, min_age: std::time::Duration, min_ratio: f64) -> Vec<String> {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        for cf in [ColumnFamily::PubSub, ColumnFamily::Propagate] {
            self.db
                .compact_range_cf(self.cf(cf), None::<&[u8]>, None::<&[u8]>);
        }
        let mut done = Vec::new();
        let files = self.db.live_files().unwrap_or_default();
        let now = std::time::SystemTime::now();
        for cf in [ColumnFamily::Metadata, ColumnFamily::Default] {
            let mine: Vec<_> = files
                .iter()
                .filter(|f| f.column_family_name == cf.name())
                .collect();
            if mine.len() <= 1 {
                continue;
            }
            let mut budget = (mine.len() / 360).max(1);
            let mut best: Option<(f64, &rocksdb::LiveFile)> = None;
            for f in mine {
                let (Some(start), Some(end)) = (&f.start_key, &f.end_key) else {
                    continue;
                };
                // RocksDB's entry count includes the deletions.
                if f.num_entries == 0 {
                    continue;
                }
                let ratio = f.num_deletions as f64 / f.num_entries as f64;
                let path = self.path.join(f.name.trim_start_matches('/'));
                let Some(age) = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                else {
                    continue;
                };
                if age > min_age && ratio >= min_ratio && budget > 0 {
                    self.db
                        .compact_range_cf(self.cf(cf), Some(start), Some(end));
                    done.push(f.name.clone());
                    budget -= 1;
                    continue;
                }
                if age > std::time::Duration::from_secs(3600) && best.is_none_or(|(r, _)| ratio > r)
                {
                    best = Some((ratio, f));
                }
            }
            if let Some((ratio, f)) = best.filter(|(r, _)| *r > 0.1) {
                if budget > 0 {
                    let (start, end) = (f.start_key.as_deref(), f.end_key.as_deref());
                    self.db.compact_range_cf(self.cf(cf), start, end);
                    tracing::info!(file = %f.name, delete_ratio = format!("{ratio:.2}"), "compaction checker: compacted the file with the most deletions");
                    done.push(f.name.clone());
                }
            }
        }
        self.compacting.store(false, Ordering::Release);
        done
    }

    /// Whether a full compaction (COMPACT, `compact-cron`) runs now: Kvrocks' `is_compacting`.
    pub fn is_compacting(&self) -> bool {
        self.compacting.load(Ordering::Acquire)
    }

    /// Every RocksDB ticker and histogram by its name, or None when statistics are off.
    pub fn statistics(&self) -> Option<Vec<(&'static str, Statistic)>> {
        use rocksdb::statistics::{Histogram, Ticker};
        let opts = self.statistics.as_ref()?;
        let mut out: Vec<(&'static str, Statistic)> = Ticker::iter()
            .map(|t| (t.name(), Statistic::Ticker(opts.get_ticker_count(*t))))
            .collect();
        out.extend(Histogram::iter().map(|h| {
            let d = opts.get_histogram_data(*h);
            let figures = HistogramFigures {
                p50: d.median(),
                p95: d.p95(),
                p99: d.p99(),
                max: d.max(),
                count: d.count(),
                sum: d.sum(),
            };
            (h.name(), Statistic::Histogram(figures))
        }));
        Some(out)
    }

    /// One of RocksDB's counters (0 when statistics are off).
    pub fn ticker(&self, ticker: rocksdb::statistics::Ticker) -> u64 {
        self.statistics
            .as_ref()
            .map_or(0, |o| o.get_ticker_count(ticker))
    }

    /// Bytes held in the block cache (both caches when metadata has its own).
    pub fn block_cache_usage(&self) -> u64 {
        let usage = |cf| self.property(cf, "rocksdb.block-cache-usage").unwrap_or(0);
        if self.separate_metadata_cache {
            usage(ColumnFamily::Metadata) + usage(ColumnFamily::Default)
        } else {
            usage(ColumnFamily::Default)
        }
    }

    /// A per-column-family property summed over every column family (0 where it is missing).
    pub fn property_sum(&self, name: &str) -> u64 {
        ColumnFamily::ALL
            .iter()
            .map(|&cf| self.property(cf, name).unwrap_or(0))
            .sum()
    }

    /// The largest value of a per-column-family property (for flags such as
    /// `rocksdb.is-write-stopped`).
    pub fn property_max(&self, name: &str) -> u64 {
        ColumnFamily::ALL
            .iter()
            .map(|&cf| self.property(cf, name).unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    pub fn property(&self, cf: ColumnFamily, name: &str) -> Option<u64> {
        self.db
            .property_int_value_cf(self.cf(cf), name)
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_gets_a_block_cache_of_its_own_when_not_shared() {
        let capacity = |e: &Engine, cf| e.property(cf, "rocksdb.block-cache-capacity").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = EngineOptions::new(dir.path());
        opts.block_cache_mb = 3;
        let shared = Engine::open(&opts).unwrap();
        for cf in ColumnFamily::ALL {
            assert_eq!(capacity(&shared, cf), 3 << 20, "{cf:?}");
        }
        drop(shared);
        opts.metadata_cache_mb = Some(1);
        let separate = Engine::open(&opts).unwrap();
        assert_eq!(capacity(&separate, ColumnFamily::Metadata), 1 << 20);
        for cf in ColumnFamily::ALL {
            if cf != ColumnFamily::Metadata {
                assert_eq!(capacity(&separate, cf), 3 << 20, "{cf:?}");
            }
        }
    }

    #[test]
    fn max_db_size_is_checked_against_the_sst_files_and_holds_a_forced_flag() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&EngineOptions::new(dir.path())).unwrap();
        engine.gate().set_role(crate::Role::Master);
        let mut batch = WriteBatch::default();
        batch.put_cf(engine.cf(ColumnFamily::Default), b"k", vec![7u8; 4096]);
        engine.write(batch, WriteOrigin::Local).unwrap();
        engine.flush().unwrap();
        let used = engine.sst_bytes();
        assert!(used > 0);
        assert!(!engine.check_size_limit(0), "0 means no limit");
        assert!(!engine.check_size_limit(used + 1));
        assert!(engine.check_size_limit(used));
        assert!(engine.size_limit_reached());
        assert!(!engine.check_size_limit(0));
        // A forced flag (DEBUG DBSIZE-LIMIT 1) holds while the check's result stays the same,
        // and follows the check once that changes.
        engine.set_size_limit_reached(true);
        assert!(engine.check_size_limit(0));
        assert!(engine.check_size_limit(used + 1));
        assert!(engine.check_size_limit(used));
        assert!(!engine.check_size_limit(used + 1));
        // A replica at the limit does not apply its master's batches.
        engine.gate().set_role(crate::Role::Replica);
        engine.set_size_limit_reached(true);
        let raw = {
            let mut b = WriteBatch::default();
            b.put_cf(engine.cf(ColumnFamily::Default), b"r", b"v");
            b.data().to_vec()
        };
        assert!(matches!(
            engine.apply_replicated(&raw),
            Err(StorageError::SizeLimit)
        ));
        engine.set_size_limit_reached(false);
        engine.apply_replicated(&raw).unwrap();
    }

    /// The table layout is Kvrocks': partitioned indexes and filters, and L0/L1 uncompressed.
    /// RocksDB writes the options it runs with into the data directory.
    #[test]
    fn tables_use_kvrocks_partitioned_index_layout() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&EngineOptions::new(dir.path())).unwrap();
        drop(engine);
        let options = std::fs::read_dir(dir.path().join("db"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("OPTIONS-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .last()
            .expect("an OPTIONS file");
        let metadata = options
            .split("[TableOptions/BlockBasedTable \"metadata\"]")
            .nth(1)
            .expect("the metadata column family's table options");
        for setting in [
            "index_type=kTwoLevelIndexSearch",
            "partition_filters=true",
            "pin_top_level_index_and_filter=true",
            "metadata_block_size=4096",
            "data_block_index_type=kDataBlockBinaryAndHash",
            "format_version=5",
        ] {
            assert!(metadata.contains(setting), "{setting}");
        }
        assert!(
            options
                .contains("compression_per_level=kNoCompression:kNoCompression:kSnappyCompression"),
            "L0 and L1 uncompressed"
        );
    }
}
