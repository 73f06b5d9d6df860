//! The shared state of a running quarry: storage, config, clients, statistics, slow log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use quarry_commands::table::flag;
use quarry_commands::{CmdError, CommandSpec, CursorStore, COMMANDS};
use quarry_storage::Engine;
use quarry_types::sharded::{Counter, Counters, ReadMostly};
use quarry_types::Db;
use tokio::sync::{broadcast, watch};

use crate::clients::ClientRegistry;
use crate::config::Config;
use crate::slowlog::SlowLog;

/// Counters of one command, for INFO commandstats (split by thread: every command adds to
/// them, [`quarry_types::sharded`]).
#[derive(Default)]
pub struct CommandStat {
    /// Calls, microseconds, failures.
    counts: Counters<3>,
    /// Latency histogram (`latency-tracking`).
    pub latency: crate::latency::Histogram,
}

impl CommandStat {
    const CALLS: usize = 0;
    const USEC: usize = 1;
    const FAILED: usize = 2;

    /// A call that took `micros` (without the latency histogram).
    pub fn add_call(&self, micros: u64) {
        self.counts.add(Self::CALLS, 1);
        self.counts.add(Self::USEC, micros);
    }

    /// Time of a call counted before (a blocked command's serving).
    pub fn add_usec(&self, micros: u64) {
        self.counts.add(Self::USEC, micros);
    }

    pub fn add_failed(&self) {
        self.counts.add(Self::FAILED, 1);
    }

    pub fn calls(&self) -> u64 {
        self.counts.get(Self::CALLS)
    }

    pub fn usec(&self) -> u64 {
        self.counts.get(Self::USEC)
    }

    pub fn failed(&self) -> u64 {
        self.counts.get(Self::FAILED)
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        self.counts.reset();
        self.latency.reset();
    }
}

#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: Counter,
    pub net_input_bytes: Counter,
    pub net_output_bytes: Counter,
    /// Error replies, in total and by code (`ERR`, `WRONGTYPE`, ...): INFO errorstats.
    pub error_replies: AtomicU64,
    pub errors_by_code: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Stats {
    /// Counts an error reply by its code, the first word, as Redis's errorstats do (at most
    /// 128 distinct codes).
    pub fn count_error(&self, text: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let code = text.split(' ').next().unwrap_or("ERR");
        let mut by_code = self.errors_by_code.lock();
        if let Some(n) = by_code.get_mut(code) {
            *n += 1;
        } else if by_code.len() < 128 {
            by_code.insert(code.to_string(), 1);
        }
    }
}

/// Config values read on the hot path, kept in atomics so that no command takes a lock for them.
pub struct HotConfig {
    pub timeout_secs: AtomicU64,
    pub maxclients: AtomicUsize,
    pub slowlog_slower_than_us: AtomicI64,
    pub slowlog_max_len: AtomicUsize,
    pub max_bulk_len: AtomicUsize,
    pub resp3_enabled: AtomicBool,
    /// Set while the default user needs a password (`requirepass`, or ACL rules), so that
    /// the common case skips the lookup. Kept by [`Server::refresh_auth_required`].
    pub auth_required: AtomicBool,
    /// `slave-serve-stale-data`.
    pub serve_stale_data: AtomicBool,
    /// `lua-time-limit` (and its Redis 7 name `busy-reply-threshold`; the lower one counts).
    pub lua_time_limit_ms: AtomicU64,
    /// `notify-keyspace-events`, as flags (`notify.rs`).
    pub notify_flags: std::sync::atomic::AtomicU32,
    /// `min-replicas-to-write` and `min-replicas-max-lag` (seconds).
    pub min_replicas_to_write: AtomicU64,
    pub min_replicas_max_lag: AtomicU64,
    /// The engine's `max-db-size` flag, mirrored here for the command path
    /// ([`size_limit_refusal`]); set with it by the maintenance thread and DEBUG DBSIZE-LIMIT.
    pub db_size_limit_reached: AtomicBool,
    /// `latency-tracking` and `latency-monitor-threshold` (ms, 0 = off).
    pub latency_tracking: AtomicBool,
    pub latency_monitor_threshold_ms: AtomicU64,
    /// `profiling-sample-ratio` (0: the perf log is off).
    pub profiling_ratio: AtomicU64,
    /// `txn-context-enabled` (fixed at start): each data command reads at one snapshot.
    pub txn_context: bool,
}

impl HotConfig {
    pub fn from_config(cfg: &Config) -> HotConfig {
        let hot = HotConfig {
            timeout_secs: AtomicU64::new(0),
            maxclients: AtomicUsize::new(0),
            slowlog_slower_than_us: AtomicI64::new(0),
            slowlog_max_len: AtomicUsize::new(0),
            max_bulk_len: AtomicUsize::new(0),
            resp3_enabled: AtomicBool::new(true),
            auth_required: AtomicBool::new(false),
            serve_stale_data: AtomicBool::new(true),
            lua_time_limit_ms: AtomicU64::new(5000),
            notify_flags: std::sync::atomic::AtomicU32::new(0),
            min_replicas_to_write: AtomicU64::new(0),
            db_size_limit_reached: AtomicBool::new(false),
            min_replicas_max_lag: AtomicU64::new(10),
            latency_tracking: AtomicBool::new(true),
            latency_monitor_threshold_ms: AtomicU64::new(0),
            profiling_ratio: AtomicU64::new(0),
            txn_context: cfg.get_bool("txn-context-enabled"),
        };
        hot.reload(cfg);
        hot
    }

    pub fn reload(&self, cfg: &Config) {
        self.timeout_secs
            .store(cfg.get_i64("timeout").max(0) as u64, Ordering::Relaxed);
        self.maxclients
            .store(cfg.get_i64("maxclients").max(0) as usize, Ordering::Relaxed);
        self.slowlog_slower_than_us
            .store(cfg.get_i64("slowlog-log-slower-than"), Ordering::Relaxed);
        self.slowlog_max_len.store(
            cfg.get_i64("slowlog-max-len").max(0) as usize,
            Ordering::Relaxed,
        );
        self.max_bulk_len.store(
            cfg.get_i64("proto-max-bulk-len").max(0) as usize,
            Ordering::Relaxed,
        );
        self.resp3_enabled
            .store(cfg.get_bool("resp3-enabled"), Ordering::Relaxed);
        self.serve_stale_data
            .store(cfg.get_bool("slave-serve-stale-data"), Ordering::Relaxed);
        let limit = cfg
            .get_i64("lua-time-limit")
            .min(cfg.get_i64("busy-reply-threshold"))
            .max(0);
        self.lua_time_limit_ms
            .store(limit as u64, Ordering::Relaxed);
        quarry_storage::WRITE_BATCH_MAX_BYTES.store(
            cfg.get_i64("rocksdb.write_options.write_batch_max_bytes")
                .max(0) as usize,
            Ordering::Relaxed,
        );
        quarry_commands::REDIS_CURSOR_COMPATIBLE
            .store(cfg.get_bool("redis-cursor-compatible"), Ordering::Relaxed);
        quarry_types::json::STORE_AS_CBOR
            .store(cfg.get("json-storage-format") == "cbor", Ordering::Relaxed);
        quarry_commands::stream::NODE_MAX_ENTRIES.store(
            cfg.get_i64("stream-node-max-entries").max(0) as u64,
            Ordering::Relaxed,
        );
        self.notify_flags.store(
            crate::notify::parse_flags(cfg.get("notify-keyspace-events")).unwrap_or(0),
            Ordering::Relaxed,
        );
        self.latency_tracking
            .store(cfg.get_bool("latency-tracking"), Ordering::Relaxed);
        quarry_types::bitmap::MAX_BITMAP_TO_STRING.store(
            cfg.get_i64("max-bitmap-to-string-mb").max(0) as u64 * 1024 * 1024,
            Ordering::Relaxed,
        );
        let nesting = cfg.get_i64("json-max-nesting-depth").max(0) as usize;
        quarry_commands::json::MAX_NESTING.store(
            if nesting == 0 { 128 } else { nesting.min(128) },
            Ordering::Relaxed,
        );
        self.profiling_ratio.store(
            cfg.get_i64("profiling-sample-ratio").clamp(0, 100) as u64,
            Ordering::Relaxed,
        );
        self.latency_monitor_threshold_ms.store(
            cfg.get_i64("latency-monitor-threshold").max(0) as u64,
            Ordering::Relaxed,
        );
        self.min_replicas_to_write.store(
            cfg.get_i64("min-replicas-to-write").max(0) as u64,
            Ordering::Relaxed,
        );
        self.min_replicas_max_lag.store(
            cfg.get_i64("min-replicas-max-lag").max(0) as u64,
            Ordering::Relaxed,
        );
    }
}

/// The data a node serves: the engine and the namespace views over it. A full sync replaces it.
pub struct Storage {
    pub engine: Arc<Engine>,
    /// The default namespace (`__namespace`): the admin's, and every key in cluster mode.
    pub db: Db,
    /// Kvrocks namespaces' views, made on first use (one per namespace, so that each has one
    /// set of key locks).
    pub named: RwLock<HashMap<Bytes, Arc<Db>>>,
}

impl Storage {
    pub fn new(engine: Arc<Engine>, codec: &quarry_storage::encoding::KeyCodec) -> Storage {
        Storage {
            db: Db::new(engine.clone(), codec.clone()),
            engine,
            named: RwLock::new(HashMap::new()),
        }
    }

    /// The view of namespace `ns` (None: the default namespace).
    pub fn db(&self, ns: Option<&Bytes>) -> DbRef<'_> {
        let Some(name) = ns else {
            return DbRef::Default(&self.db);
        };
        if let Some(db) = self.named.read().get(name) {
            return DbRef::Named(db.clone());
        }
        let codec = quarry_storage::encoding::KeyCodec::new(name, self.db.codec().slot_encoded());
        let db = self
            .named
            .write()
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Db::new(self.engine.clone(), codec)))
            .clone();
        DbRef::Named(db)
    }
}

/// A namespace's view, borrowed from [`Storage`] (the default one) or shared.
pub enum DbRef<'a> {
    Default(&'a Db),
    Named(Arc<Db>),
}

impl std::ops::Deref for DbRef<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        match self {
            DbRef::Default(db) => db,
            DbRef::Named(db) => db,
        }
    }
}

pub struct Server {
    /// None while a full sync swaps the database: data commands then answer LOADING.
    pub storage: ReadMostly<Option<Arc<Storage>>>,
    /// Replication: role, the link to a master, this node's replicas.
    pub repl: crate::replication::ReplState,
    /// Cluster mode: the topology and routing.
    pub cluster: crate::cluster::ClusterState,
    /// Slot migration, as source and as destination.
    pub migration: crate::migration::MigrationState,
    /// BGSAVE and its kin.
    pub backups: crate::backup::Backups,
    /// CLIENT PAUSE.
    pub pause: crate::pause::Pause,
    /// MIGRATE's connections to its targets.
    pub migrate_sockets: Arc<crate::migrate_keys::SocketCache>,
    /// The default namespace's pub/sub.
    pub pubsub: Arc<crate::pubsub::PubSub>,
    /// The other namespaces' pub/sub.
    pub hubs: crate::namespace::Hubs,
    /// ACL users and the ACL LOG.
    pub acl: crate::acl::Acl,
    /// TLS configurations (for `tls-port` and `tls-replication`).
    pub tls: crate::tls::Tls,
    /// Continuous verification of replicas, and self-repair.
    pub verify: crate::verify::Verify,
    /// LATENCY's monitor of spikes.
    pub latency_monitor: crate::latency::Monitor,
    /// PERFLOG's entries.
    pub perf_log: crate::perflog::PerfLog,
    /// The runtime, for the tasks that bridge replication threads to TLS links.
    pub runtime: tokio::runtime::Handle,
    pub cursors: CursorStore,
    pub config: RwLock<Config>,
    pub hot: HotConfig,
    pub clients: ClientRegistry,
    pub stats: Stats,
    pub command_stats: Vec<CommandStat>,
    pub slowlog: Mutex<SlowLog>,
    /// MONITOR feed; only formatted while `monitors` > 0.
    pub monitor: broadcast::Sender<Bytes>,
    pub monitors: AtomicUsize,
    /// Clients blocked in BLPOP and friends, by key.
    pub waiting: crate::blocking::WaitingRoom,
    /// Lua scripts and function libraries.
    pub scripting: crate::scripting::Scripting,
    /// WATCHed keys of all connections.
    pub watches: Arc<crate::multi::Watches>,
    pub shutdown: watch::Sender<bool>,
    pub started: Instant,
    /// 40 random hex characters, new at every start (INFO server `run_id`).
    pub run_id: String,
    /// Second (since start, plus one) of the last logged storage error.
    pub last_storage_error_log: AtomicU64,
    pub port: u16,
    /// `rename-command`: lower-case name -> command (None = disabled).
    pub renames: HashMap<String, Option<&'static CommandSpec>>,
    /// Reloads the log filter when CONFIG SET log-level changes it.
    pub set_log_level: Box<dyn Fn(&str) + Send + Sync>,
}

impl Server {
    /// A command that ran for `micros`: its statistics, its latency histogram (with
    /// `latency-tracking`) and the latency monitor.
    pub fn record_command(&self, index: usize, micros: u64, fast: bool) {
        self.count_command(index, micros, fast);
        self.sample_latency(index, micros);
    }

    /// A command's call and time in its statistics, and the latency monitor: all of
    /// [`Server::record_command`] but the histogram, whose sample of a command that blocked
    /// waits until it is served.
    pub fn count_command(&self, index: usize, micros: u64, fast: bool) {
        self.command_stats[index].add_call(micros);
        crate::latency::monitor_command(self, fast, micros);
    }

    /// A sample of `micros` in the command's latency histogram, with `latency-tracking`.
    pub fn sample_latency(&self, index: usize, micros: u64) {
        if self.hot.latency_tracking.load(Ordering::Relaxed) {
            self.command_stats[index].latency.record(micros);
        }
    }

    /// The current storage, or None while a full sync replaces it.
    pub fn storage(&self) -> Option<Arc<Storage>> {
        self.storage.read().clone()
    }

    /// Whether connections must authenticate: the default user needs a password or is off.
    pub fn refresh_auth_required(&self) {
        let default = self.acl.default_user();
        let required = !default.nopass() || !default.is_enabled();
        self.hot.auth_required.store(required, Ordering::Relaxed);
    }

    /// `requirepass` changed (start-up, CONFIG SET): it is the default user's password.
    pub fn apply_requirepass(&self) {
        let pass = self.config.read().get("requirepass").to_string();
        self.acl
            .set_default_password(Some(pass.as_str()).filter(|p| !p.is_empty()));
        self.refresh_auth_required();
    }

    /// The pub/sub of namespace `ns` (None: the default namespace).
    pub fn hub(&self, ns: Option<&Bytes>) -> Arc<crate::pubsub::PubSub> {
        match ns {
            None => self.pubsub.clone(),
            Some(name) => self.hubs.get(name),
        }
    }

    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.storage.read().as_ref().map(|s| s.engine.clone())
    }

    /// Resolves a command name, honouring `rename-command`.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        if !self.renames.is_empty() {
            let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
            if let Some(entry) = self.renames.get(&lower) {
                return *entry;
            }
        }
        quarry_commands::lookup(name)
    }

    pub fn command_index(spec: &'static CommandSpec) -> usize {
        let base = COMMANDS.as_ptr() as usize;
        (spec as *const CommandSpec as usize - base) / std::mem::size_of::<CommandSpec>()
    }

    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Closes every client connection (at shutdown).
    pub fn disconnect_all(&self) {
        for client in self.clients.all() {
            client.kill();
        }
    }
}

/// Builds the rename table from `rename-command OLD NEW` lines.
pub fn build_renames(
    lines: &[String],
) -> Result<HashMap<String, Option<&'static CommandSpec>>, String> {
    let mut map = HashMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (old, new) = match parts.as_slice() {
            [old, new] => (
                old.to_ascii_lowercase(),
                new.trim_matches('"').to_ascii_lowercase(),
            ),
            [old] => (old.to_ascii_lowercase(), String::new()),
            _ => return Err(format!("Invalid rename-command format: '{line}'")),
        };
        let spec = quarry_commands::lookup(old.as_bytes())
            .ok_or_else(|| format!("No such command in rename-command: '{old}'"))?;
        if !new.is_empty() && quarry_commands::lookup(new.as_bytes()).is_some() {
            return Err(format!("Target command name already exists: '{new}'"));
        }
        map.insert(old, None);
        if !new.is_empty() {
            map.insert(new, Some(spec));
        }
    }
    Ok(map)
}

/// Kvrocks' `no-dbsize-check` commands: they only remove data, so they run at `max-db-size`.
const NO_DBSIZE_CHECK: [&str; 17] = [
    "del",
    "unlink",
    "getdel",
    "hdel",
    "lrem",
    "ltrim",
    "srem",
    "sirem",
    "zrem",
    "zremrangebyrank",
    "zremrangebyscore",
    "zremrangebylex",
    "xack",
    "xdel",
    "xtrim",
    "flushdb",
    "flushall",
];

/// Kvrocks' refusal of a write command while the database is at `max-db-size`.
/// Scripts count as writes, as Kvrocks flags EVAL, EVALSHA and FCALL.
pub fn size_limit_refusal(server: &Server, spec: &CommandSpec) -> Option<CmdError> {
    let writes = spec.has(flag::WRITE) || matches!(spec.name, "eval" | "evalsha" | "fcall");
    (writes
        && server.hot.db_size_limit_reached.load(Ordering::Relaxed)
        && !NO_DBSIZE_CHECK.contains(&spec.name))
    .then(|| CmdError::err("write command not allowed when reached max-db-size."))
}

/// Sets the `max-db-size` flag on the engine and its mirror (DEBUG DBSIZE-LIMIT).
pub fn set_size_limit_reached(server: &Server, reached: bool) {
    if let Some(engine) = server.engine() {
        engine.set_size_limit_reached(reached);
    }
    server
        .hot
        .db_size_limit_reached
        .store(reached, Ordering::Relaxed);
}
