//! The `quarry` binary: reads the configuration, opens storage, settles the node's role, then
//! serves clients until SIGTERM, SIGINT or SHUTDOWN.

mod acl;
mod admin;
mod backup;
mod blocking;
mod clients;
mod cluster;
mod config;
mod connection;
mod cron;
mod group;
mod info;
mod latency;
mod logfile;
mod metrics;
mod migrate_keys;
mod migration;
mod multi;
mod namespace;
mod notify;
mod pause;
mod peer;
mod perflog;
mod pubsub;
mod replication;
mod scripting;
mod server;
mod slowlog;
mod tls;
mod verify;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use quarry_commands::{CursorStore, COMMANDS};
use quarry_storage::encoding::KeyCodec;
use quarry_storage::{Engine, EngineOptions, StorageError, WriteDurability};
use tokio::net::TcpListener;
use tracing::{error, info, warn};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::Config;
use crate::server::{build_renames, HotConfig, Server, Stats};

const USAGE: &str = "\
quarry: a Redis-protocol key-value server on RocksDB, compatible with Apache Kvrocks.

Usage: quarry [-c quarry.conf] [--directive value ...]

Options:
  -c, --config FILE   read directives from FILE (kvrocks.conf format)
  --DIRECTIVE VALUE   set any directive, after the file (e.g. --port 7000 --dir /var/lib/quarry)
  --print-config      print a commented config file with every directive and its default
  -v, --version       print the version and exit
  -h, --help          print this help and exit

Without a config file, quarry listens on 127.0.0.1:6666 and keeps its data under ./data.";

struct Cli {
    config: Option<PathBuf>,
    overrides: Vec<(String, String)>,
}

fn parse_cli() -> Result<Option<Cli>, String> {
    let mut args = std::env::args().skip(1);
    let mut cli = Cli {
        config: None,
        overrides: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-v" | "--version" => {
                println!(
                    "quarry {} (Kvrocks 2.10 compatible; redis_version {})",
                    env!("CARGO_PKG_VERSION"),
                    admin::REDIS_VERSION
                );
                return Ok(None);
            }
            "--print-config" => {
                print!("{}", config::render_template());
                return Ok(None);
            }
            "-c" | "--config" => {
                let f = args.next().ok_or("-c needs a file name")?;
                cli.config = Some(PathBuf::from(f));
            }
            other if other.starts_with("--") => {
                let name = &other[2..];
                if let Some((k, v)) = name.split_once('=') {
                    cli.overrides.push((k.to_string(), v.to_string()));
                } else {
                    let v = args
                        .next()
                        .ok_or_else(|| format!("{other} needs a value"))?;
                    cli.overrides.push((name.to_string(), v));
                }
            }
            other => return Err(format!("unexpected argument '{other}' (see quarry --help)")),
        }
    }
    Ok(Some(cli))
}

fn level_filter(level: &str) -> LevelFilter {
    match level {
        "warning" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        "debug" => LevelFilter::DEBUG,
        _ => LevelFilter::INFO,
    }
}

type LogReload = Box<dyn Fn(&str) + Send + Sync>;

fn init_logging(cfg: &Config) -> Result<LogReload, String> {
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(level_filter(cfg.get("log-level")));
    let log_dir = cfg.get("log-dir");
    let writer = if log_dir.is_empty() || log_dir == "stdout" {
        BoxMakeWriter::new(std::io::stdout)
    } else {
        let dir = PathBuf::from(log_dir);
        let log = logfile::LogFile::open(&dir, cfg.get_i64("log-max-size-mb").max(1) as u64)
            .map_err(|e| {
                format!(
                    "cannot open {}: {e}",
                    dir.join(logfile::FILE_NAME).display()
                )
            })?;
        logfile::purge(&dir, cfg.get_i64("log-retention-days"));
        BoxMakeWriter::new(move || log.writer())
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false),
        )
        .init();
    Ok(Box::new(move |level: &str| {
        let _ = handle.modify(|f| *f = level_filter(level));
    }))
}

fn engine_options(cfg: &Config) -> Result<EngineOptions, String> {
    let mut o = EngineOptions::new(cfg.get("dir"));
    o.slot_encoded = cfg.get_bool("cluster-enabled");
    let int = |name: &str| cfg.get_i64(name);
    o.durability = if cfg.get_bool("rocksdb.write_options.disable_wal") {
        WriteDurability::NoWal
    } else if cfg.get_bool("rocksdb.write_options.sync") {
        WriteDurability::WalSync
    } else {
        WriteDurability::Wal
    };
    o.compression = match cfg.get("rocksdb.compression") {
        "no" => quarry_storage::rocksdb::DBCompressionType::None,
        "snappy" => quarry_storage::rocksdb::DBCompressionType::Snappy,
        "lz4" => quarry_storage::rocksdb::DBCompressionType::Lz4,
        "zstd" => quarry_storage::rocksdb::DBCompressionType::Zstd,
        other => {
            return Err(format!(
                "rocksdb.compression {other} is not built into quarry; use no, snappy, lz4 or zstd"
            ))
        }
    };
    let level = int("rocksdb.compression_level");
    o.compression_level = (level != 32767).then_some(level as i32);
    let block_cache = int("rocksdb.block_cache_size");
    let (metadata_cache, subkey_cache) = (
        int("rocksdb.metadata_block_cache_size") as usize,
        int("rocksdb.subkey_block_cache_size") as usize,
    );
    if cfg.get_bool("rocksdb.share_metadata_and_subkey_block_cache") {
        o.block_cache_mb = if block_cache > 0 {
            block_cache as usize
        } else {
            metadata_cache + subkey_cache
        };
    } else {
        // One cache per kind of key, of the sizes given (block_cache_size is the shared one's).
        o.block_cache_mb = subkey_cache;
        o.metadata_cache_mb = Some(metadata_cache);
    }
    o.hyper_clock_cache = cfg.get("rocksdb.block_cache_type") == "hcc";
    o.block_size = int("rocksdb.block_size") as usize;
    o.cache_index_and_filter_blocks = cfg.get_bool("rocksdb.cache_index_and_filter_blocks");
    o.write_buffer_mb = int("rocksdb.write_buffer_size") as usize;
    o.max_write_buffer_number = int("rocksdb.max_write_buffer_number") as i32;
    o.max_open_files = int("rocksdb.max_open_files") as i32;
    o.max_background_jobs = int("rocksdb.max_background_jobs") as i32;
    o.max_background_flushes = int("rocksdb.max_background_flushes") as i32;
    o.max_background_compactions = int("rocksdb.max_background_compactions") as i32;
    o.max_io_mb = int("max-io-mb").max(0) as u64;
    o.rate_limiter_auto_tuned = cfg.get_bool("rocksdb.rate_limiter_auto_tuned");
    o.row_cache_mb = int("rocksdb.row_cache_size").max(0) as usize;
    o.enable_blob_files = cfg.get_bool("rocksdb.enable_blob_files");
    o.min_blob_size = int("rocksdb.min_blob_size").max(0) as u64;
    o.blob_file_size = int("rocksdb.blob_file_size").max(0) as u64;
    o.enable_blob_gc = cfg.get_bool("rocksdb.enable_blob_garbage_collection");
    o.blob_gc_age_cutoff_percent = int("rocksdb.blob_garbage_collection_age_cutoff") as u32;
    o.max_subcompactions = int("rocksdb.max_subcompactions") as u32;
    o.target_file_size_base_mb = int("rocksdb.target_file_size_base") as u64;
    o.wal_ttl_seconds = int("rocksdb.wal_ttl_seconds") as u64;
    o.wal_size_limit_mb = int("rocksdb.wal_size_limit_mb") as u64;
    o.max_total_wal_size_mb = int("rocksdb.max_total_wal_size") as u64;
    o.enable_pipelined_write = cfg.get_bool("rocksdb.enable_pipelined_write");
    o.disable_auto_compactions = cfg.get_bool("rocksdb.disable_auto_compactions");
    o.level0_slowdown_writes_trigger = int("rocksdb.level0_slowdown_writes_trigger") as i32;
    o.level0_stop_writes_trigger = int("rocksdb.level0_stop_writes_trigger") as i32;
    o.level0_file_num_compaction_trigger = int("rocksdb.level0_file_num_compaction_trigger") as i32;
    o.max_bytes_for_level_base = int("rocksdb.max_bytes_for_level_base") as u64;
    o.max_bytes_for_level_multiplier = int("rocksdb.max_bytes_for_level_multiplier") as f64;
    o.level_compaction_dynamic_level_bytes =
        cfg.get_bool("rocksdb.level_compaction_dynamic_level_bytes");
    o.stats_dump_period_sec = int("rocksdb.stats_dump_period_sec") as u32;
    {
        use quarry_storage::rocksdb::statistics::StatsLevel;
        o.statistics = match cfg.get("rocksdb.statistics") {
            "no" => None,
            "counters" => Some(StatsLevel::ExceptHistogramOrTimers),
            "histograms" => Some(StatsLevel::ExceptTimers),
            _ => Some(StatsLevel::ExceptDetailedTimers),
        };
    }
    o.compaction_readahead_size = int("rocksdb.compaction_readahead_size") as usize;
    o.no_slowdown = cfg.get_bool("rocksdb.write_options.no_slowdown");
    o.low_pri = cfg.get_bool("rocksdb.write_options.low_pri");
    o.delayed_write_rate = int("rocksdb.delayed_write_rate").max(0) as u64;
    o.async_io = cfg.get_bool("rocksdb.read_options.async_io");
    o.avoid_unnecessary_blocking_io = cfg.get_bool("rocksdb.avoid_unnecessary_blocking_io");
    o.memtable_insert_hint_per_batch =
        cfg.get_bool("rocksdb.write_options.memtable_insert_hint_per_batch");
    Ok(o)
}

fn main() {
    let cli = match parse_cli() {
        Ok(Some(cli)) => cli,
        Ok(None) => return,
        Err(e) => {
            eprintln!("quarry: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli) {
        eprintln!("quarry: {e}");
        error!("{e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    // A file size limit (RLIMIT_FSIZE) must surface as a write error that RocksDB reports and
    // clients see, not as a signal that kills the server with every unsaved reply.
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cfg = Config::load(cli.config.as_deref(), &cli.overrides)?;
    if cfg.get_bool("daemonize") {
        // Into the background, as Kvrocks does: the configuration was checked in the
        // foreground (its errors reach the terminal); from here on only the log file (log-dir)
        // says what happens.
        // SAFETY: daemon(3) forks; no other thread exists yet, so the child owns all state.
        if unsafe { libc::daemon(1, 0) } != 0 {
            return Err(format!(
                "cannot daemonize: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let set_log_level = init_logging(&cfg)?;
    if cli.config.is_none() {
        info!("no config file given (-c): using the defaults and command-line options");
    }
    for (name, value, why) in cfg.meaningless_settings() {
        warn!("{name} {value} is accepted but cannot mean anything in quarry: {why}");
    }
    // Keys not used since now report their idle time from now (OBJECT IDLETIME).
    quarry_commands::access::start();
    let cluster_enabled = cfg.get_bool("cluster-enabled");
    check_data_mode(&PathBuf::from(cfg.get("dir")), cluster_enabled)?;
    let backups = backup::dir_of(&cfg);
    backup::settle(&backups)
        .map_err(|e| format!("cannot settle the backup in {}: {e}", backups.display()))?;
    let renames = build_renames(cfg.get_multi("rename-command"))?;
    let workers = cfg.get_i64("workers").max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("quarry-worker")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start worker threads: {e}"))?;

    let opts = engine_options(&cfg)?;
    match quarry_replication::replica::recover_interrupted_swap(&opts.dir) {
        Ok(Some(what)) => warn!(dir = %opts.dir.display(), "{what}"),
        Ok(None) => {}
        Err(e) => {
            return Err(format!(
                "cannot settle an interrupted full sync in {}: {e}",
                opts.dir.display()
            ))
        }
    }
    let engine = match Engine::open(&opts) {
        Ok(e) => Arc::new(e),
        Err(StorageError::Locked { dir, detail }) => {
            return Err(format!(
                "the data directory {dir} is already in use by another process (is another quarry or kvrocks running on it?). RocksDB said: {detail}"
            ))
        }
        Err(e) => return Err(format!("cannot open storage in {}: {e}", opts.db_path().display())),
    };
    // The role is settled before anything may write (DESIGN.md §2). In cluster mode the
    // topology in nodes.conf decides; otherwise `slaveof` and the role file that REPLICAOF
    // leaves. The gate stays closed until then.
    let dir = PathBuf::from(cfg.get("dir"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let topology = if cluster_enabled && cfg.get_bool("persist-cluster-nodes-enabled") {
        quarry_cluster::Topology::load(&dir.join(cluster::NODES_CONF))?.unwrap_or_default()
    } else {
        quarry_cluster::Topology::default()
    };
    let (choice, why) = if cluster_enabled {
        info!(version = topology.version, myid = %topology.myid, "cluster topology loaded");
        (
            cluster::choice_of(&topology),
            "the cluster topology (nodes.conf)",
        )
    } else {
        let (choice, why) = replication::decide_role(&dir, cfg.get("slaveof"))?;
        replication::persist_role(&dir, &choice, cfg.get("slaveof"))
            .map_err(|e| format!("cannot record the role in {}: {e}", dir.display()))?;
        (choice, why)
    };
    match &choice {
        replication::Choice::Master => info!(
            role = "master",
            sequence = engine.latest_sequence(),
            reason = why,
            "role decided: master"
        ),
        replication::Choice::Replica { host, port } => {
            info!(role = "slave", master = %format!("{host}:{port}"), sequence = engine.latest_sequence(), reason = why, "role decided: replica")
        }
        replication::Choice::Detached if !topology.initialized() => info!(
            sequence = engine.latest_sequence(),
            "no cluster topology yet: nothing writes until CLUSTERX SETNODES gives this node a role"
        ),
        replication::Choice::Detached => {
            warn!(
                role = "slave",
                sequence = engine.latest_sequence(),
                reason = why,
                "role decided: replica of a master the topology does not list (not replicating)"
            )
        }
    }

    let pidfile = cfg.get("pidfile").to_string();
    if !pidfile.is_empty() {
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pidfile {pidfile}: {e}"))?;
    }
    let port = cfg.get_i64("port") as u16;
    let binds: Vec<String> = cfg
        .get("bind")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let (monitor, _) = tokio::sync::broadcast::channel(4096);
    let codec = KeyCodec::new(quarry_storage::encoding::DEFAULT_NAMESPACE, cluster_enabled);
    let max_repl_mb = cfg.get_i64("max-replication-mb").max(0) as u64;
    let migration = migration::MigrationState::default();
    if cluster_enabled {
        migration::load_handovers(&dir.join(migration::HANDOVERS_FILE), &migration)?;
    }
    let server = Arc::new_cyclic(|me| Server {
        storage: quarry_types::sharded::ReadMostly::new(Some(replication::storage_over(
            engine.clone(),
            &codec,
        ))),
        cluster: cluster::ClusterState::new(cluster_enabled, &dir, topology),
        migration,
        backups: Default::default(),
        pause: Default::default(),
        migrate_sockets: Default::default(),
        pubsub: Default::default(),
        hubs: Default::default(),
        acl: Default::default(),
        tls: Default::default(),
        verify: crate::verify::Verify::new(),
        latency_monitor: Default::default(),
        perf_log: Default::default(),
        runtime: runtime.handle().clone(),
        repl: replication::ReplState::new(
            opts.clone(),
            codec.clone(),
            dir.clone(),
            me.clone(),
            max_repl_mb,
            cfg.get("slaveof").to_string(),
        ),
        cursors: CursorStore::default(),
        hot: HotConfig::from_config(&cfg),
        config: RwLock::new(cfg),
        clients: Default::default(),
        stats: Stats::default(),
        command_stats: COMMANDS.iter().map(|_| Default::default()).collect(),
        slowlog: Mutex::new(Default::default()),
        monitor,
        monitors: Default::default(),
        waiting: Default::default(),
        watches: Default::default(),
        scripting: Default::default(),
        shutdown,
        started: Instant::now(),
        run_id: (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect(),
        last_storage_error_log: Default::default(),
        port,
        renames,
        set_log_level,
    });

    drop(engine);
    {
        let cfg = server.config.read();
        let wanted = cfg.get_i64("tls-port") > 0 || cfg.get_bool("tls-replication");
        if let Err(e) = server.tls.reload(&cfg) {
            if wanted {
                return Err(format!("TLS: {e}"));
            }
            warn!(error = %e, "TLS is not available");
        } else if wanted && server.tls.acceptor().is_none() {
            return Err(
                "TLS: tls-port or tls-replication needs tls-cert-file and tls-key-file".into(),
            );
        }
    }
    replication::enter_role(&server, &choice)?;
    namespace::load_and_rewrite(&server)?;
    acl::load_at_startup(&server)?;
    replication::start_maintenance(&server);
    verify::start(&server);
    notify::start_expiry(&server);

    let tls_port = server.config.read().get_i64("tls-port") as u16;
    let result = runtime.block_on(serve(server.clone(), binds, port, tls_port));
    let link = server.repl.link.lock().take();
    if let Some(link) = link {
        link.stop();
    }
    server.repl.master.disconnect_all();
    runtime.shutdown_timeout(Duration::from_secs(2));
    info!("flushing storage");
    let engine = server.engine();
    if let Some(engine) = &engine {
        if let Err(e) = engine.flush() {
            error!("flush at shutdown failed: {e}");
        }
    }
    drop(server);
    drop(engine);
    if result.is_ok() {
        info!("quarry stopped");
    }
    // Last: a supervisor (or a test) that waits for the pidfile to go finds the process done,
    // its storage closed and its last line logged.
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    result?;
    Ok(())
}

/// A data directory holds keys with or without their slot (kvrocks-compat.md §1.2); read in
/// the other mode, every key would be misread. `<dir>/data-mode` records the mode it was made
/// in, and a node refuses to start in the other one.
fn check_data_mode(dir: &std::path::Path, cluster: bool) -> Result<(), String> {
    let want = if cluster { "cluster" } else { "standalone" };
    let path = dir.join("data-mode");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim() == want => Ok(()),
        Ok(text) if !text.trim().is_empty() => Err(format!(
            "the data directory {} was made in {} mode (see {}); it cannot be opened with cluster-enabled {}, because keys are laid out differently in the two modes",
            dir.display(),
            text.trim(),
            path.display(),
            if cluster { "yes" } else { "no" }
        )),
        // Missing, or empty (written by a version that did not sync it, and cut by a crash).
        _ => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            if dir.join("db").join("CURRENT").exists() {
                warn!(mode = want, "this data directory does not record its mode (made by Kvrocks or an older quarry); recording {want}");
            }
            quarry_storage::files::write_durable(&path, format!("{want}\n").as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
    }
}

async fn serve(
    server: Arc<Server>,
    binds: Vec<String>,
    port: u16,
    tls_port: u16,
) -> Result<(), String> {
    let binds = if binds.is_empty() {
        vec!["127.0.0.1".to_string()]
    } else {
        binds
    };
    let mut listeners = Vec::new();
    // The plain port (0: none, as in Kvrocks with only tls-port) and the TLS port.
    for (p, tls) in [(port, false), (tls_port, true)] {
        if p == 0 {
            continue;
        }
        for addr in &binds {
            let listener = TcpListener::bind((addr.as_str(), p))
                .await
                .map_err(|e| format!("cannot listen on {addr}:{p}: {e}"))?;
            let shown = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            if tls {
                tls::log_listening(&shown);
            } else {
                info!(address = %shown, "listening");
            }
            listeners.push((listener, tls));
        }
    }
    let live = Arc::new(());
    for (listener, tls) in listeners {
        tokio::spawn(accept_loop(server.clone(), listener, tls, live.clone()));
    }
    let unix_path = server.config.read().get("unixsocket").to_string();
    if !unix_path.is_empty() {
        let perm =
            u32::from_str_radix(server.config.read().get("unixsocketperm"), 8).unwrap_or(0o777);
        let listener = bind_unix(&unix_path, perm)?;
        tokio::spawn(accept_unix(
            server.clone(),
            listener,
            unix_path.clone(),
            live.clone(),
        ));
    }
    metrics::start(&server, &binds[0]).await?;
    let supervised = server.config.read().get("supervised").to_string();
    notify_supervisor(&supervised);
    let mut shutdown = server.shutdown.subscribe();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot install SIGTERM handler: {e}"))?;
    tokio::select! {
        _ = sigterm.recv() => info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
        _ = shutdown.wait_for(|v| *v) => info!("SHUTDOWN received, shutting down"),
    }
    server.request_shutdown();
    server.disconnect_all();
    // Connection tasks end at their next await point; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&live) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !unix_path.is_empty() {
        let _ = std::fs::remove_file(&unix_path);
    }
    Ok(())
}

/// Tells the supervisor the server is ready, as Kvrocks does: `upstart` stops the process
/// with SIGSTOP (upstart's `expect stop`) when UPSTART_JOB is set; `systemd` sends READY=1 to
/// the datagram socket named in NOTIFY_SOCKET (abstract if it starts with `@`); `auto` picks
/// upstart when UPSTART_JOB is set, else systemd when NOTIFY_SOCKET is.
fn notify_supervisor(supervised: &str) {
    let upstart = std::env::var_os("UPSTART_JOB").is_some();
    let mode = match supervised {
        "auto" if upstart => "upstart",
        "auto" => "systemd",
        other => other,
    };
    match mode {
        "upstart" if upstart => {
            info!("supervised by upstart: stopping to signal readiness");
            // SAFETY: raise() has no preconditions; upstart resumes the process with SIGCONT.
            unsafe { libc::raise(libc::SIGSTOP) };
            std::env::remove_var("UPSTART_JOB");
        }
        "upstart" => warn!("supervised upstart, but UPSTART_JOB is not set: upstart is not told"),
        "systemd" => notify_systemd(supervised),
        _ => {}
    }
}

/// READY=1 to systemd's NOTIFY_SOCKET.
fn notify_systemd(supervised: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        if supervised == "systemd" {
            warn!("supervised systemd, but NOTIFY_SOCKET is not set: systemd is not told");
        }
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(b"READY=1\n", &addr)?;
        } else {
            sock.send_to(b"READY=1\n", &path)?;
        }
        Ok(())
    })();
    match sent {
        Ok(()) => info!("told systemd the server is ready"),
        Err(e) => warn!(error = %e, "cannot tell systemd the server is ready"),
    }
}

/// Counts a new connection, and refuses it with Redis' error past `maxclients`.
async fn admit<S: tokio::io::AsyncWrite + Unpin>(server: &Server, stream: &mut S) -> bool {
    server
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    if server.clients.len() < server.hot.maxclients.load(Ordering::Relaxed) {
        return true;
    }
    server
        .stats
        .rejected_connections
        .fetch_add(1, Ordering::Relaxed);
    use tokio::io::AsyncWriteExt;
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    false
}

/// Listens on the Unix socket `path` (`unixsocket`), with permission bits `perm`
/// (`unixsocketperm`). A socket file left by a previous run is replaced; any other file there
/// is an error.
fn bind_unix(path: &str, perm: u32) -> Result<tokio::net::UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("unixsocket {path} exists and is not a socket"));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot replace {path}: {e}"))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on unix socket {path}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm))
        .map_err(|e| format!("cannot set unixsocketperm on {path}: {e}"))?;
    info!(
        path,
        perm = format!("{perm:o}"),
        "listening on a unix socket"
    );
    Ok(listener)
}

async fn accept_unix(
    server: Arc<Server>,
    listener: tokio::net::UnixListener,
    path: String,
    live: Arc<()>,
) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                warn!("accept on the unix socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !admit(&server, &mut stream).await {
            continue;
        }
        let handle = server.clients.register_unix(&path);
        let token = live.clone();
        let conn = connection::serve(server.clone(), stream, handle.clone());
        let task = tokio::spawn(async move {
            let _token = token;
            conn.await
        });
        handle.set_task(task.abort_handle());
        if *server.shutdown.borrow() {
            handle.kill();
        }
    }
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, tls: bool, live: Arc<()>) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        let (mut stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !admit(&server, &mut stream).await {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let laddr = stream.local_addr().unwrap_or(addr);
        let handle = server.clients.register(addr, laddr);
        let token = live.clone();
        let task = if tls {
            // The handshake runs in the connection's task: a slow or failing client holds up
            // no one. Certificates are those of the moment it connects.
            let Some(acceptor) = server.tls.acceptor() else {
                server.clients.unregister(handle.id);
                continue;
            };
            let server = server.clone();
            let h = handle.clone();
            tokio::spawn(async move {
                let _token = token;
                let handshake =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                match handshake {
                    Ok(Ok(tls_stream)) => connection::serve(server, tls_stream, h).await,
                    Ok(Err(e)) => {
                        tls::log_handshake_failure(addr, &e);
                        server.clients.unregister(h.id);
                    }
                    Err(_) => {
                        tls::log_handshake_failure(
                            addr,
                            &std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "handshake timed out",
                            ),
                        );
                        server.clients.unregister(h.id);
                    }
                }
            })
        } else {
            let conn = connection::serve(server.clone(), stream, handle.clone());
            // The token lives inside the task: it is dropped when the task ends or is aborted.
            tokio::spawn(async move {
                let _token = token;
                conn.await
            })
        };
        handle.set_task(task.abort_handle());
        if *server.shutdown.borrow() {
            handle.kill();
        }
    }
}
