//! INFO: Redis-shaped sections, with the fields that Redis tools and kvrocks-controller read.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use quarry_commands::{CmdError, COMMANDS};
use quarry_storage::encoding::now_ms;
use quarry_storage::ColumnFamily;

use crate::admin::REDIS_VERSION;
use crate::server::Server;

const SECTIONS: [&str; 14] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "verification",
    "cpu",
    "commandstats",
    "latencystats",
    "errorstats",
    "cluster",
    "keyspace",
    "rocksdb",
];

/// INFO for a connection in namespace `ns` (its keyspace section counts that namespace).
pub fn render(
    server: &Server,
    ns: Option<&bytes::Bytes>,
    asked: &[String],
) -> Result<String, CmdError> {
    // As in Redis: no argument or `default` is every section but commandstats; `all` and
    // `everything` add it; named sections and those keywords combine.
    let everything = asked
        .iter()
        .any(|s| matches!(s.as_str(), "all" | "everything"));
    let default = asked.is_empty() || asked.iter().any(|s| s == "default");
    let wanted: Vec<&str> = SECTIONS
        .iter()
        .copied()
        .filter(|s| {
            everything
                || (default && !matches!(*s, "commandstats" | "latencystats"))
                || asked.iter().any(|a| a == s)
        })
        .collect();
    let mut out = String::new();
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        match *section {
            "server" => server_section(server, &mut out),
            "clients" => clients_section(server, &mut out),
            "memory" => memory_section(server, &mut out),
            "persistence" => persistence_section(server, &mut out),
            "stats" => stats_section(server, &mut out),
            "replication" => replication_section(server, &mut out),
            "verification" => crate::verify::section(server, &mut out),
            "cpu" => cpu_section(&mut out),
            "commandstats" => commandstats_section(server, &mut out),
            "latencystats" => crate::latency::section(server, &mut out),
            "errorstats" => {
                out.push_str("# Errorstats\r\n");
                for (code, n) in server.stats.errors_by_code.lock().iter() {
                    let _ = write!(out, "errorstat_{code}:count={n}\r\n");
                }
            }
            "cluster" => {
                out.push_str("# Cluster\r\n");
                line(&mut out, "cluster_enabled", server.cluster.enabled as u8);
            }
            "keyspace" => keyspace_section(server, ns, &mut out)?,
            "rocksdb" => rocksdb_section(server, &mut out),
            _ => {}
        }
    }
    Ok(out)
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{key}:{value}\r\n");
}

fn server_section(server: &Server, out: &mut String) {
    let uptime = server.started.elapsed().as_secs();
    out.push_str("# Server\r\n");
    line(out, "redis_version", REDIS_VERSION);
    line(out, "quarry_version", env!("CARGO_PKG_VERSION"));
    line(out, "redis_mode", "standalone");
    line(out, "run_id", &server.run_id);
    line(
        out,
        "os",
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    );
    line(out, "arch_bits", 64);
    line(out, "process_id", std::process::id());
    line(out, "tcp_port", server.port);
    line(out, "server_time_usec", now_ms() * 1000);
    line(out, "uptime_in_seconds", uptime);
    line(out, "uptime_in_days", uptime / 86400);
    let cfg = server.config.read();
    line(
        out,
        "config_file",
        cfg.file()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    line(
        out,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
}

fn clients_section(server: &Server, out: &mut String) {
    out.push_str("# Clients\r\n");
    line(out, "connected_clients", server.clients.len());
    line(
        out,
        "maxclients",
        server.hot.maxclients.load(Ordering::Relaxed),
    );
    line(out, "blocked_clients", server.waiting.blocked_clients());
    line(out, "monitor_clients", server.clients.monitors());
}

/// Resident set size from /proc (Linux), in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else {
        format!("{bytes}B")
    }
}

fn memory_section(server: &Server, out: &mut String) {
    let rss = rss_bytes();
    out.push_str("# Memory\r\n");
    line(out, "used_memory", rss);
    line(out, "used_memory_human", human(rss));
    line(out, "used_memory_rss", rss);
    line(out, "used_memory_rss_human", human(rss));
    line(out, "used_memory_lua", server.scripting.lua_memory());
    line(
        out,
        "number_of_cached_scripts",
        server.scripting.cached_scripts(),
    );
    let engine = server.engine();
    let memtables = engine
        .as_ref()
        .map_or(0, |e| e.property_sum("rocksdb.cur-size-all-mem-tables"));
    line(out, "used_memory_memtables", memtables);
    line(
        out,
        "used_memory_block_cache",
        engine.as_ref().map_or(0, |e| e.block_cache_usage()),
    );
}

fn persistence_section(server: &Server, out: &mut String) {
    out.push_str("# Persistence\r\n");
    // A full sync swapping the database in: commands answer LOADING meanwhile.
    line(out, "loading", server.storage.read().is_none() as u8);
    line(out, "async_loading", 0);
    server.backups.info(server, out);
    // There is no RDB save: every write is in RocksDB. This counts the batches written since
    // the start, so that tools watching it see writes happen.
    line(
        out,
        "rdb_changes_since_last_save",
        quarry_storage::changes_since_start(),
    );
    line(out, "aof_enabled", 0);
    line(out, "aof_rewrite_in_progress", 0);
    // Writes that storage refuses (a full disk, an I/O error): since when, how many, and why.
    if let Some(engine) = server.engine() {
        let health = engine.health();
        line(
            out,
            "writes_refused_since",
            health.refused_since().unwrap_or(0),
        );
        line(out, "writes_refused_total", health.refused_total());
        line(
            out,
            "writes_refused_needs_restart",
            health.needs_restart() as u8,
        );
        line(
            out,
            "rocksdb_background_error",
            health.error().replace(['\r', '\n'], " "),
        );
        line(
            out,
            "rocksdb_background_errors",
            engine
                .property(ColumnFamily::Default, "rocksdb.background-errors")
                .unwrap_or(0),
        );
    }
}

fn stats_section(server: &Server, out: &mut String) {
    let s = &server.stats;
    out.push_str("# Stats\r\n");
    line(
        out,
        "total_connections_received",
        s.connections_received.load(Ordering::Relaxed),
    );
    line(out, "total_commands_processed", s.commands_processed.get());
    line(
        out,
        "total_error_replies",
        s.error_replies.load(Ordering::Relaxed),
    );
    line(out, "total_net_input_bytes", s.net_input_bytes.get());
    line(out, "total_net_output_bytes", s.net_output_bytes.get());
    line(
        out,
        "rejected_connections",
        s.rejected_connections.load(Ordering::Relaxed),
    );
    let c = &server.repl.master.counters;
    line(out, "sync_full", c.full.load(Ordering::Relaxed));
    line(out, "sync_partial_ok", c.partial_ok.load(Ordering::Relaxed));
    line(
        out,
        "sync_partial_err",
        c.partial_err.load(Ordering::Relaxed),
    );
    line(out, "pubsub_channels", server.pubsub.channel_count());
    line(out, "pubsub_patterns", server.pubsub.pattern_count());
    line(out, "migrate_cached_sockets", server.migrate_sockets.len());
}

fn replication_section(server: &Server, out: &mut String) {
    out.push_str("# Replication\r\n");
    out.push_str(&crate::replication::info_section(server));
}

/// User and system CPU seconds from /proc/self/stat (clock ticks of 1/100 s on Linux).
fn cpu_section(out: &mut String) {
    let (user, sys) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((
                f.get(11)?.parse::<f64>().ok()? / 100.0,
                f.get(12)?.parse::<f64>().ok()? / 100.0,
            ))
        })
        .unwrap_or((0.0, 0.0));
    out.push_str("# CPU\r\n");
    line(out, "used_cpu_sys", format!("{sys:.6}"));
    line(out, "used_cpu_user", format!("{user:.6}"));
}

fn commandstats_section(server: &Server, out: &mut String) {
    out.push_str("# Commandstats\r\n");
    for (spec, stat) in COMMANDS.iter().zip(&server.command_stats) {
        let calls = stat.calls();
        if calls == 0 {
            continue;
        }
        let usec = stat.usec();
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls=0,failed_calls={}\r\n",
            spec.name,
            calls,
            usec,
            usec as f64 / calls as f64,
            stat.failed()
        );
    }
}

fn keyspace_section(
    server: &Server,
    ns: Option<&bytes::Bytes>,
    out: &mut String,
) -> Result<(), CmdError> {
    let Some(storage) = server.storage() else {
        return Ok(());
    };
    // The controller and monitoring poll INFO: past this many keys the counts are estimates.
    let (keys, expires, _exact) = storage.db(ns).key_counts_bounded(100_000)?;
    out.push_str("# Keyspace\r\n");
    if keys > 0 {
        line(
            out,
            "db0",
            format!("keys={keys},expires={expires},avg_ttl=0"),
        );
    }
    line(out, "sequence", storage.engine.latest_sequence());
    // Kvrocks' fields for `max-db-size`.
    let used = storage.engine.sst_bytes();
    let max = server.config.read().get_i64("max-db-size").max(0) as u64 * (1 << 30);
    line(out, "used_db_size", used);
    line(out, "max_db_size", max);
    let percent = if max > 0 {
        used as f64 * 100.0 / max as f64
    } else {
        0.0
    };
    line(out, "used_percent", format!("{percent:.2}%"));
    Ok(())
}

fn rocksdb_section(server: &Server, out: &mut String) {
    out.push_str("# RocksDB\r\n");
    let Some(engine) = server.engine() else {
        return;
    };
    for cf in ColumnFamily::ALL {
        let p = |name: &str| engine.property(cf, name).unwrap_or(0);
        let _ = write!(
            out,
            "estimate_keys[{n}]:{}\r\nmemtable_size[{n}]:{}\r\nlive_sst_size[{n}]:{}\r\n",
            p("rocksdb.estimate-num-keys"),
            p("rocksdb.cur-size-all-mem-tables"),
            p("rocksdb.live-sst-files-size"),
            n = cf.name()
        );
    }
    {
        use quarry_storage::RocksTicker as t;
        for (name, ticker) in [
            ("block_cache_data_hit", t::BlockCacheDataHit),
            ("block_cache_data_miss", t::BlockCacheDataMiss),
            ("block_cache_filter_hit", t::BlockCacheFilterHit),
            ("block_cache_filter_miss", t::BlockCacheFilterMiss),
            ("block_cache_hit", t::BlockCacheHit),
            ("block_cache_index_hit", t::BlockCacheIndexHit),
            ("block_cache_index_miss", t::BlockCacheIndexMiss),
            ("block_cache_miss", t::BlockCacheMiss),
        ] {
            line(out, name, engine.ticker(ticker));
        }
    }
    let sum = |name: &str| engine.property_sum(name);
    line(out, "all_mem_tables", sum("rocksdb.size-all-mem-tables"));
    line(
        out,
        "cur_mem_tables",
        sum("rocksdb.cur-size-all-mem-tables"),
    );
    line(
        out,
        "num_immutable_tables",
        sum("rocksdb.num-immutable-mem-table"),
    );
    line(
        out,
        "memtable_flush_pending",
        sum("rocksdb.mem-table-flush-pending"),
    );
    line(out, "compaction_pending", sum("rocksdb.compaction-pending"));
    line(out, "num_live_versions", sum("rocksdb.num-live-versions"));
    let p = |name: &str| engine.property(ColumnFamily::Default, name).unwrap_or(0);
    line(out, "snapshots", p("rocksdb.num-snapshots"));
    line(
        out,
        "num_super_version",
        p("rocksdb.current-super-version-number"),
    );
    line(out, "num_background_errors", p("rocksdb.background-errors"));
    line(
        out,
        "num_running_compactions",
        p("rocksdb.num-running-compactions"),
    );
    line(out, "num_running_flushes", p("rocksdb.num-running-flushes"));
    line(
        out,
        "is_bgsaving",
        if server.backups.in_progress() {
            "yes"
        } else {
            "no"
        },
    );
    line(
        out,
        "is_compacting",
        if engine.is_compacting() { "yes" } else { "no" },
    );
    line(out, "block_cache_usage", engine.block_cache_usage());
}
