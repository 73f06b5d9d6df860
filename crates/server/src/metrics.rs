//! A Prometheus endpoint (`metrics-port`): `GET /metrics` answers with INFO's counters, the
//! per-command latency percentiles, replication lag per replica, continuous verification,
//! RocksDB's stall and compaction figures and slot-migration progress, in Prometheus' text
//! exposition format (version 0.0.4). No exporter process is needed.
//!
//! The listener is a small HTTP/1.1 server on the runtime: one request per connection, read
//! with a size and time limit, so a scraper that misbehaves costs one task.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quarry_commands::COMMANDS;
use quarry_storage::ColumnFamily;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::info;

use crate::server::Server;

/// The longest request head read.
const MAX_REQUEST: usize = 8192;

/// Serves `/metrics` on `listener` until shutdown.
pub async fn serve(server: Arc<Server>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!(address = %addr, "Prometheus metrics at /metrics");
    }
    let mut shutdown = server.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        let Ok((mut stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), answer(&server, &mut stream)).await;
        });
    }
}

async fn answer(server: &Server, stream: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return respond(stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => {
            let body = tokio::task::block_in_place(|| render(server));
            respond(stream, "200 OK", &body).await
        }
        (b"GET", _) => respond(stream, "404 Not Found", "see /metrics\n").await,
        _ => respond(stream, "405 Method Not Allowed", "").await,
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Prometheus' text format, one family at a time.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(
            self.text,
            "# HELP quarry_{name} {help}\n# TYPE quarry_{name} {kind}\n"
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.text, "quarry_{name}");
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family with one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The whole exposition.
pub fn render(server: &Server) -> String {
    let mut o = Out {
        text: String::with_capacity(16 * 1024),
    };
    let s = &server.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    o.one("up", "gauge", "1 while the server answers.", 1.0);
    o.one(
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        server.started.elapsed().as_secs_f64(),
    );
    o.one(
        "connected_clients",
        "gauge",
        "Client connections.",
        server.clients.len() as f64,
    );
    o.one(
        "blocked_clients",
        "gauge",
        "Clients blocked in BLPOP and friends.",
        server.waiting.blocked_clients() as f64,
    );
    o.one(
        "connections_received_total",
        "counter",
        "Connections accepted.",
        load(&s.connections_received),
    );
    o.one(
        "rejected_connections_total",
        "counter",
        "Connections refused (maxclients).",
        load(&s.rejected_connections),
    );
    o.one(
        "commands_processed_total",
        "counter",
        "Commands run.",
        s.commands_processed.get() as f64,
    );
    o.one(
        "net_input_bytes_total",
        "counter",
        "Bytes read from clients.",
        s.net_input_bytes.get() as f64,
    );
    o.one(
        "net_output_bytes_total",
        "counter",
        "Bytes written to clients.",
        s.net_output_bytes.get() as f64,
    );
    o.family("errors_total", "counter", "Error replies, by code.");
    for (code, n) in s.errors_by_code.lock().iter() {
        o.sample("errors_total", &[("code", code)], *n as f64);
    }
    commands(server, &mut o);
    replication(server, &mut o);
    verification(server, &mut o);
    storage(server, &mut o);
    migration(server, &mut o);
    o.text
}

fn commands(server: &Server, o: &mut Out) {
    let ps = crate::latency::info_percentiles(server);
    let rows: Vec<_> = COMMANDS
        .iter()
        .zip(&server.command_stats)
        .filter(|(_, st)| st.calls() > 0)
        .collect();
    o.family("command_calls_total", "counter", "Calls of each command.");
    for (spec, st) in &rows {
        o.sample(
            "command_calls_total",
            &[("cmd", spec.name)],
            st.calls() as f64,
        );
    }
    o.family(
        "command_failed_calls_total",
        "counter",
        "Calls of each command that answered an error.",
    );
    for (spec, st) in &rows {
        o.sample(
            "command_failed_calls_total",
            &[("cmd", spec.name)],
            st.failed() as f64,
        );
    }
    o.family(
        "command_latency_seconds",
        "summary",
        "Latency of each command (latency-tracking), at latency-tracking-info-percentiles.",
    );
    for (spec, st) in &rows {
        for &p in &ps {
            if let Some(us) = st.latency.percentile(p) {
                let q = format!("{:.6}", p / 100.0)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string();
                o.sample(
                    "command_latency_seconds",
                    &[("cmd", spec.name), ("quantile", &q)],
                    us as f64 / 1e6,
                );
            }
        }
        o.sample(
            "command_latency_seconds_sum",
            &[("cmd", spec.name)],
            st.usec() as f64 / 1e6,
        );
        o.sample(
            "command_latency_seconds_count",
            &[("cmd", spec.name)],
            st.calls() as f64,
        );
    }
}

fn replication(server: &Server, o: &mut Out) {
    let seq = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
    let is_replica = server.repl.is_replica.load(Ordering::Acquire);
    o.one(
        "is_replica",
        "gauge",
        "1 on a replica, 0 on a master.",
        is_replica as u8 as f64,
    );
    o.one(
        "repl_sequence",
        "gauge",
        "The engine's latest sequence (master_repl_offset).",
        seq as f64,
    );
    if let Some(link) = server.repl.link.lock().as_ref() {
        o.one(
            "master_link_up",
            "gauge",
            "1 while the link to the master is up.",
            link.status.is_up() as u8 as f64,
        );
        o.one(
            "master_last_io_seconds",
            "gauge",
            "Seconds since the last byte from the master.",
            link.last_io_seconds_ago() as f64,
        );
        o.one(
            "repl_applied_batches_total",
            "counter",
            "Master batches applied.",
            link.status.applied_batches.load(Ordering::Relaxed) as f64,
        );
    }
    let replicas = server.repl.master.replicas();
    o.one(
        "connected_replicas",
        "gauge",
        "Replicas streaming from this node.",
        replicas.len() as f64,
    );
    o.family(
        "replica_lag_sequences",
        "gauge",
        "How far each replica's acknowledged sequence is behind this node's.",
    );
    for r in &replicas {
        let addr = format!("{}:{}", r.ip, r.port);
        let acked = r.acked.load(Ordering::Relaxed);
        o.sample(
            "replica_lag_sequences",
            &[("replica", &addr)],
            seq.saturating_sub(acked) as f64,
        );
    }
    o.family(
        "replica_ack_age_seconds",
        "gauge",
        "Seconds since each replica last acknowledged.",
    );
    let now = quarry_storage::encoding::now_ms();
    for r in &replicas {
        let addr = format!("{}:{}", r.ip, r.port);
        let at = r.last_ack_ms.load(Ordering::Relaxed);
        o.sample(
            "replica_ack_age_seconds",
            &[("replica", &addr)],
            now.saturating_sub(at) as f64 / 1000.0,
        );
    }
    let c = &server.repl.master.counters;
    o.one(
        "sync_full_total",
        "counter",
        "Full syncs served.",
        c.full.load(Ordering::Relaxed) as f64,
    );
    o.one(
        "sync_partial_ok_total",
        "counter",
        "Partial syncs accepted.",
        c.partial_ok.load(Ordering::Relaxed) as f64,
    );
    o.one(
        "sync_partial_err_total",
        "counter",
        "Partial syncs refused.",
        c.partial_err.load(Ordering::Relaxed) as f64,
    );
}

fn verification(server: &Server, o: &mut Out) {
    let v = server.verify.snapshot();
    for (name, kind, help, value) in [
        (
            "verify_slices_issued_total",
            "counter",
            "Slices a master put into its stream.",
            v.issued as f64,
        ),
        (
            "verify_slices_checked_total",
            "counter",
            "Slices this replica compared with its master.",
            v.checked as f64,
        ),
        (
            "verify_slices_skipped_total",
            "counter",
            "Slices this replica could not compare.",
            v.skipped as f64,
        ),
        (
            "verify_mismatches_total",
            "counter",
            "Slices that differed from the master.",
            v.mismatches as f64,
        ),
        (
            "verify_repairs_total",
            "counter",
            "Ranges mended by a rewrite.",
            v.repairs as f64,
        ),
        (
            "verify_repairs_failed_total",
            "counter",
            "Repair requests the master did not carry out.",
            v.repairs_failed as f64,
        ),
        (
            "verify_full_syncs_total",
            "counter",
            "Full syncs after repairs did not mend a range.",
            v.full_syncs as f64,
        ),
        (
            "verify_repairing",
            "gauge",
            "Ranges being repaired now.",
            v.repairing as f64,
        ),
        (
            "verify_cycle_progress_ratio",
            "gauge",
            "The master's walk through its keyspace.",
            v.progress_permille as f64 / 1000.0,
        ),
        (
            "verify_last_ok_seconds",
            "gauge",
            "Seconds since a slice last matched (NaN before the first).",
            v.last_ok_secs.map_or(f64::NAN, |s| s as f64),
        ),
    ] {
        o.one(name, kind, help, value);
    }
}

fn storage(server: &Server, o: &mut Out) {
    let Some(engine) = server.engine() else {
        return;
    };
    o.family(
        "rocksdb_estimate_keys",
        "gauge",
        "RocksDB's estimate of the records in each column family.",
    );
    for cf in ColumnFamily::ALL {
        o.sample(
            "rocksdb_estimate_keys",
            &[("cf", cf.name())],
            engine
                .property(cf, "rocksdb.estimate-num-keys")
                .unwrap_or(0) as f64,
        );
    }
    let sum = |name: &str| engine.property_sum(name) as f64;
    let any = |name: &str| engine.property_max(name) as f64;
    let db = |name: &str| engine.property(ColumnFamily::Default, name).unwrap_or(0) as f64;
    for (name, kind, help, value) in [
        (
            "rocksdb_sst_bytes",
            "gauge",
            "Bytes of SST and blob files (what max-db-size counts).",
            engine.sst_bytes() as f64,
        ),
        (
            "rocksdb_memtable_bytes",
            "gauge",
            "Bytes in memtables, all column families.",
            sum("rocksdb.cur-size-all-mem-tables"),
        ),
        (
            "rocksdb_immutable_memtables",
            "gauge",
            "Memtables waiting to be flushed.",
            sum("rocksdb.num-immutable-mem-table"),
        ),
        (
            "rocksdb_pending_compaction_bytes",
            "gauge",
            "Bytes compaction estimates it must rewrite.",
            sum("rocksdb.estimate-pending-compaction-bytes"),
        ),
        (
            "rocksdb_compaction_pending",
            "gauge",
            "1 while a compaction is pending in any column family.",
            any("rocksdb.compaction-pending"),
        ),
        (
            "rocksdb_running_compactions",
            "gauge",
            "Compactions running.",
            db("rocksdb.num-running-compactions"),
        ),
        (
            "rocksdb_running_flushes",
            "gauge",
            "Flushes running.",
            db("rocksdb.num-running-flushes"),
        ),
        (
            "rocksdb_write_stopped",
            "gauge",
            "1 while RocksDB stops writes (a stall).",
            db("rocksdb.is-write-stopped"),
        ),
        (
            "rocksdb_delayed_write_rate_bytes",
            "gauge",
            "The write rate RocksDB slows writes to, 0 when not slowed.",
            db("rocksdb.actual-delayed-write-rate"),
        ),
        (
            "rocksdb_block_cache_usage_bytes",
            "gauge",
            "Bytes in the block cache.",
            engine.block_cache_usage() as f64,
        ),
        (
            "rocksdb_compacting",
            "gauge",
            "1 while COMPACT runs.",
            engine.is_compacting() as u8 as f64,
        ),
        (
            "db_size_limit_reached",
            "gauge",
            "1 while max-db-size refuses writes.",
            server.hot.db_size_limit_reached.load(Ordering::Relaxed) as u8 as f64,
        ),
    ] {
        o.one(name, kind, help, value);
    }
}

fn migration(server: &Server, o: &mut Out) {
    let job = server.migration.job.lock().clone();
    o.one(
        "migration_running",
        "gauge",
        "1 while a slot migration from this node runs.",
        job.as_ref().is_some_and(|j| j.running()) as u8 as f64,
    );
    if let Some(j) = job {
        let range = format!("{}-{}", j.range.0, j.range.1);
        let labels = [
            ("slots", range.as_str()),
            ("destination", j.dst_id.as_str()),
        ];
        o.family(
            "migration_keys_sent",
            "gauge",
            "Keys the current or last migration sent.",
        );
        o.sample(
            "migration_keys_sent",
            &labels,
            j.keys.load(Ordering::Relaxed) as f64,
        );
        o.family(
            "migration_bytes_sent",
            "gauge",
            "Bytes the current or last migration sent.",
        );
        o.sample(
            "migration_bytes_sent",
            &labels,
            j.bytes.load(Ordering::Relaxed) as f64,
        );
    }
}

/// Starts the endpoint if `metrics-port` is set. Errors (the port is taken) are the caller's.
pub async fn start(server: &Arc<Server>, bind: &str) -> Result<(), String> {
    let port = server.config.read().get_i64("metrics-port");
    if port <= 0 {
        return Ok(());
    }
    let addr = format!("{bind}:{port}");
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("metrics-port: cannot listen on {addr}: {e}"))?;
    let server = server.clone();
    tokio::spawn(async move { serve(server, listener).await });
    Ok(())
}
