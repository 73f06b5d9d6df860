//! Kvrocks' perf log: a sample of commands (`profiling-sample-ratio` percent of those named
//! by `profiling-sample-commands`, `*` for all) runs with RocksDB's perf context on, and those
//! that take at least `profiling-sample-record-threshold-ms` are kept with what RocksDB
//! counted (PERFLOG GET/LEN/RESET, at most `profiling-sample-record-max-len` entries).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use quarry_commands::args::{lower, parse_i64};
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_storage::rocksdb::perf::{set_perf_stats, PerfContext, PerfStatsLevel};

use crate::server::Server;

struct Entry {
    id: u64,
    time: u64,
    command: &'static str,
    micros: u64,
    perf_context: String,
}

#[derive(Default)]
pub struct PerfLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
}

/// Whether this command is sampled; if so the thread's perf context is on and reset.
pub fn start(server: &Server, command: &str) -> bool {
    let ratio = server.hot.profiling_ratio.load(Ordering::Relaxed);
    if ratio == 0 {
        return false;
    }
    // The draw first: only the commands it picks look at the configuration.
    if ratio < 100 && rand::random::<u64>() % 100 >= ratio {
        return false;
    }
    {
        let cfg = server.config.read();
        let wanted = cfg.get("profiling-sample-commands");
        let named = wanted == "*"
            || wanted
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case(command));
        if !named {
            return false;
        }
    }
    set_perf_stats(PerfStatsLevel::EnableTimeExceptForMutex);
    PerfContext::default().reset();
    true
}

/// After a sampled command: kept if it took at least the threshold.
pub fn finish(server: &Server, command: &'static str, micros: u64) {
    let (threshold_ms, max_len) = {
        let cfg = server.config.read();
        (
            cfg.get_i64("profiling-sample-record-threshold-ms").max(0) as u64,
            cfg.get_i64("profiling-sample-record-max-len").max(0) as usize,
        )
    };
    let report = PerfContext::default().report(true);
    set_perf_stats(PerfStatsLevel::Disable);
    if (threshold_ms > 0 && micros / 1000 < threshold_ms) || report.trim().is_empty() {
        return;
    }
    let log = &server.perf_log;
    let entry = Entry {
        id: log.next_id.fetch_add(1, Ordering::Relaxed),
        time: quarry_storage::encoding::now_ms() / 1000,
        command,
        micros,
        perf_context: report.trim().to_string(),
    };
    let mut entries = log.entries.lock();
    entries.push_front(entry);
    entries.truncate(max_len);
}

/// PERFLOG GET [count|*] | LEN | RESET
pub fn command(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    let log = &server.perf_log;
    match sub.as_str() {
        "len" => Ok(Frame::Integer(log.entries.lock().len() as i64)),
        "reset" => {
            log.entries.lock().clear();
            Ok(Frame::ok())
        }
        "get" => {
            let count = match a.get(2) {
                None => 10,
                Some(n) if n.as_ref() == b"*" => usize::MAX,
                Some(n) => parse_i64(n)?.max(0) as usize,
            };
            let count = if count == 0 { usize::MAX } else { count };
            Ok(Frame::Array(
                log.entries
                    .lock()
                    .iter()
                    .take(count)
                    .map(|e| {
                        Frame::Array(vec![
                            Frame::Integer(e.id as i64),
                            Frame::Integer(e.time as i64),
                            Frame::bulk(e.command),
                            Frame::Integer(e.micros as i64),
                            Frame::bulk(e.perf_context.clone()),
                            // RocksDB's I/O stats context is not reachable from Rust.
                            Frame::bulk(""),
                        ])
                    })
                    .collect(),
            ))
        }
        _ => Err(CmdError::err(
            "PERFLOG subcommand must be one of RESET, LEN, GET",
        )),
    }
}
