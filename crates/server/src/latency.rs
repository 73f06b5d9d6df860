//! Latency, as Redis 7 reports it: per-command latency histograms (`latency-tracking`, INFO
//! `latencystats`, LATENCY HISTOGRAM), and the latency monitor (`latency-monitor-threshold`,
//! LATENCY LATEST, HISTORY, RESET and DOCTOR).
//!
//! A histogram is a fixed array of counters: one per microsecond below 16, then 16 buckets
//! per power of two, so a percentile is exact to within 1/16 (6%) of its value. Recording a
//! call is one relaxed atomic increment.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use quarry_commands::args::lower;
use quarry_commands::{CmdError, COMMANDS};
use quarry_resp::Frame;

use crate::server::Server;

const SUB: usize = 16;
/// Up to 2^44 µs (about 200 days); anything longer lands in the last bucket.
const BUCKETS: usize = SUB + 40 * SUB;

/// Split by thread, as the other per-command counters ([`quarry_types::sharded`]); a thread's
/// buckets are made when it first records into this histogram, so commands never run (and
/// threads that never run them) cost no memory.
pub struct Histogram {
    shards: Box<[std::sync::OnceLock<Box<[AtomicU64]>>]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            shards: (0..quarry_types::sharded::SHARDS)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }
    }
}

fn index(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (e - 4)) & (SUB as u64 - 1)) as usize;
    (SUB + (e - 4) * SUB + sub).min(BUCKETS - 1)
}

/// The largest value a bucket holds.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i - SUB) / SUB + 4;
    let sub = ((i - SUB) % SUB) as u64;
    ((1u64 << e) | (sub << (e - 4))) + (1u64 << (e - 4)) - 1
}

impl Histogram {
    pub fn record(&self, us: u64) {
        let counts = self.shards[quarry_types::sharded::shard()]
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
        counts[index(us)].fetch_add(1, Ordering::Relaxed);
    }

    fn made(&self) -> impl Iterator<Item = &[AtomicU64]> {
        self.shards.iter().filter_map(|s| s.get().map(|c| &c[..]))
    }

    pub fn reset(&self) {
        for c in self.made().flatten() {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Vec<u64> {
        let mut sum = vec![0u64; BUCKETS];
        for counts in self.made() {
            for (s, c) in sum.iter_mut().zip(counts) {
                *s += c.load(Ordering::Relaxed);
            }
        }
        sum
    }

    pub fn total(&self) -> u64 {
        self.made()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The `p`-th percentile (0 to 100) in microseconds: the upper end of the bucket that
    /// holds it. None when nothing was recorded.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper(i));
            }
        }
        Some(upper(BUCKETS - 1))
    }

    /// Redis' LATENCY HISTOGRAM buckets: for each power of two (µs), the calls that took at
    /// most that long, up to the first bucket that holds them all.
    fn cumulative_powers_of_two(&self) -> Vec<(u64, u64)> {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        let mut out = Vec::new();
        let mut seen = 0;
        let mut i = 0;
        for bound in (0..45).map(|e| 1u64 << e) {
            while i < BUCKETS && upper(i) <= bound {
                seen += counts[i];
                i += 1;
            }
            if seen > 0 {
                out.push((bound, seen));
            }
            if seen == total {
                break;
            }
        }
        out
    }
}

/// The percentiles INFO latencystats reports (`latency-tracking-info-percentiles`).
pub fn info_percentiles(server: &Server) -> Vec<f64> {
    server
        .config
        .read()
        .get("latency-tracking-info-percentiles")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Redis' percentile names: `p50`, `p99.9` (Rust prints a whole f64 without a fraction).
fn name(p: f64) -> String {
    format!("p{p}")
}

/// INFO `# Latencystats`.
pub fn section(server: &Server, out: &mut String) {
    out.push_str("# Latencystats\r\n");
    let ps = info_percentiles(server);
    for (spec, stat) in COMMANDS.iter().zip(&server.command_stats) {
        if stat.latency.total() == 0 {
            continue;
        }
        let fields: Vec<String> = ps
            .iter()
            .map(|&p| {
                let v = stat.latency.percentile(p).unwrap_or(0);
                format!("{}={}.000", name(p), v)
            })
            .collect();
        let _ = write!(
            out,
            "latency_percentiles_usec_{}:{}\r\n",
            spec.name,
            fields.join(",")
        );
    }
}

/// How many samples an event keeps (Redis' `LATENCY_TS_LEN`).
const HISTORY: usize = 160;

#[derive(Default)]
struct Series {
    /// (Unix seconds, milliseconds), oldest first; one per second (the worst of it).
    samples: VecDeque<(u64, u64)>,
    max: u64,
}

/// The latency monitor: events that took at least `latency-monitor-threshold` ms.
#[derive(Default)]
pub struct Monitor {
    series: Mutex<HashMap<&'static str, Series>>,
}

impl Monitor {
    /// Records `ms` for `event` (the caller checked the threshold).
    pub fn add(&self, event: &'static str, ms: u64) {
        let now = quarry_storage::encoding::now_ms() / 1000;
        let mut all = self.series.lock();
        let s = all.entry(event).or_default();
        s.max = s.max.max(ms);
        match s.samples.back_mut() {
            Some(last) if last.0 == now => last.1 = last.1.max(ms),
            _ => {
                s.samples.push_back((now, ms));
                if s.samples.len() > HISTORY {
                    s.samples.pop_front();
                }
            }
        }
    }
}

/// Records a command's latency in the monitor when it reached the threshold.
pub fn monitor_command(server: &Server, fast: bool, micros: u64) {
    let threshold = server
        .hot
        .latency_monitor_threshold_ms
        .load(Ordering::Relaxed);
    if threshold > 0 && micros / 1000 >= threshold {
        let event = if fast { "fast-command" } else { "command" };
        server.latency_monitor.add(event, micros / 1000);
    }
}

/// `LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | HISTOGRAM [command ...] | HELP`.
pub fn command(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    match (sub.as_str(), a.len()) {
        ("latest", 2) => {
            let all = server.latency_monitor.series.lock();
            let mut names: Vec<&&str> = all.keys().collect();
            names.sort();
            Ok(Frame::Array(
                names
                    .into_iter()
                    .filter_map(|n| {
                        let s = &all[*n];
                        let (t, ms) = *s.samples.back()?;
                        Some(Frame::Array(vec![
                            Frame::bulk(n.to_string()),
                            Frame::Integer(t as i64),
                            Frame::Integer(ms as i64),
                            Frame::Integer(s.max as i64),
                        ]))
                    })
                    .collect(),
            ))
        }
        ("history", 3) => {
            let event = String::from_utf8_lossy(&a[2]).to_string();
            let all = server.latency_monitor.series.lock();
            Ok(Frame::Array(
                all.get(event.as_str())
                    .map(|s| {
                        s.samples
                            .iter()
                            .map(|&(t, ms)| {
                                Frame::Array(vec![
                                    Frame::Integer(t as i64),
                                    Frame::Integer(ms as i64),
                                ])
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ))
        }
        ("reset", _) => {
            let mut all = server.latency_monitor.series.lock();
            let n = if a.len() == 2 {
                let n = all.len();
                all.clear();
                n
            } else {
                a[2..]
                    .iter()
                    .filter(|e| all.remove(String::from_utf8_lossy(e).as_ref()).is_some())
                    .count()
            };
            Ok(Frame::Integer(n as i64))
        }
        ("doctor", 2) => Ok(Frame::Verbatim(doctor(server))),
        ("histogram", _) => {
            let wanted: Vec<String> = a[2..].iter().map(|c| lower(c)).collect();
            let mut out = Vec::new();
            for (spec, stat) in COMMANDS.iter().zip(&server.command_stats) {
                if !wanted.is_empty() && !wanted.iter().any(|w| w == spec.name) {
                    continue;
                }
                let calls = stat.latency.total();
                if calls == 0 {
                    continue;
                }
                let buckets = stat
                    .latency
                    .cumulative_powers_of_two()
                    .into_iter()
                    .map(|(b, n)| (Frame::Integer(b as i64), Frame::Integer(n as i64)))
                    .collect();
                out.push((
                    Frame::bulk(spec.name),
                    Frame::Map(vec![
                        (Frame::bulk("calls"), Frame::Integer(calls as i64)),
                        (Frame::bulk("histogram_usec"), Frame::Map(buckets)),
                    ]),
                ));
            }
            Ok(Frame::Map(out))
        }
        ("help", 2) => Ok(quarry_commands::table::help_lines(&[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
            "HELP",
            "    Prints this help.",
        ])),
        _ => Err(CmdError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try LATENCY HELP.",
            String::from_utf8_lossy(&a[1])
        ))),
    }
}

/// LATENCY DOCTOR: what the monitor saw, in words.
fn doctor(server: &Server) -> String {
    if server
        .hot
        .latency_monitor_threshold_ms
        .load(Ordering::Relaxed)
        == 0
    {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this \
                instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" \
                in order to enable it.\n"
            .into();
    }
    let all = server.latency_monitor.series.lock();
    if all.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this instance, \
                not in the slightest bit. I honestly think you ought to sleep tonight.\n"
            .into();
    }
    let mut out = String::from(
        "Dave, I have observed latency spikes in this instance. You don't mind talking about \
         it, do you Dave?\n\n",
    );
    let mut names: Vec<&&str> = all.keys().collect();
    names.sort();
    for (i, n) in names.into_iter().enumerate() {
        let s = &all[*n];
        let count = s.samples.len() as u64;
        let avg = s.samples.iter().map(|x| x.1).sum::<u64>() / count.max(1);
        let dev = s.samples.iter().map(|x| x.1.abs_diff(avg)).sum::<u64>() / count.max(1);
        let period = match (s.samples.front(), s.samples.back()) {
            (Some(a), Some(b)) if count > 1 => (b.0 - a.0) as f64 / (count - 1) as f64,
            _ => 0.0,
        };
        let _ = writeln!(
            out,
            "{}. {n}: {count} latency spikes (average {avg}ms, mean deviation {dev}ms, period {period:.2} sec). Worst all time event {}ms.",
            i + 1,
            s.max
        );
    }
    out.push_str(
        "\nI have a few advices for you:\n\n- Check the slow log (SLOWLOG GET) for the \
         commands behind these spikes; commands over large collections or many keys are \
         the usual cause.\n- Check INFO rocksdb for write stalls and pending compactions.\n",
    );
    out
}

/// Parses `latency-tracking-info-percentiles` (a space-separated list of 0..100).
pub fn valid_percentiles(text: &str) -> bool {
    text.split_whitespace()
        .all(|p| p.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values() {
        for us in [0u64, 1, 15, 16, 17, 31, 32, 100, 1000, 12345, 1 << 30] {
            let i = index(us);
            assert!(upper(i) >= us, "{us} in bucket {i} up to {}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < us, "{us} belongs below bucket {i}");
            }
        }
        // 1/16 precision above 16 µs.
        assert_eq!(upper(index(1000)), 1023);
        assert_eq!(upper(index(1024)), 1087);
    }

    #[test]
    fn percentiles_and_cumulative_buckets() {
        let h = Histogram::default();
        for us in 1..=100 {
            h.record(us);
        }
        assert_eq!(h.percentile(50.0), Some(51));
        assert_eq!(h.percentile(100.0), Some(103));
        assert_eq!(h.percentile(1.0), Some(1));
        let c = h.cumulative_powers_of_two();
        assert_eq!(c.first(), Some(&(1, 1)));
        assert_eq!(c.last(), Some(&(128, 100)));
        assert!(Histogram::default().percentile(50.0).is_none());
        assert_eq!(name(99.9), "p99.9");
        assert_eq!(name(50.0), "p50");
    }
}
