//! Keyspace commands: DEL, EXISTS, TYPE, the EXPIRE and TTL families, RENAME, COPY, KEYS, SCAN,
//! RANDOMKEY, DBSIZE, FLUSHDB/FLUSHALL and COMPACT.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_storage::encoding::now_ms;
use quarry_types::{ExpireCondition, RedisType, TtlState};

use crate::args::{is, lower, parse_i64, text};
use crate::{CmdError, CmdResult, Ctx};

pub fn del(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.delete(&a[1..])?))
}

pub fn exists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.exists(&a[1..])?))
}

/// MOVE key db, as Kvrocks answers it: there is only one database, so nothing moves, and the
/// reply says whether the key exists. `db` must be an integer.
pub fn move_key(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    parse_i64(&a[2])?;
    Ok(Frame::Integer(ctx.db.exists(&a[1..2])?))
}

/// TOUCH key [key ...]: the number of keys that exist; the dispatcher has already recorded
/// the use of each.
pub fn touch(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    exists(ctx, a)
}

pub fn type_(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let name = ctx.db.key_type(&a[1])?.map_or("none", RedisType::name);
    Ok(Frame::Simple(name.into()))
}

/// Shared by EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT.
fn expire_generic(ctx: &mut Ctx<'_>, a: &[Bytes], unit_ms: i64, absolute: bool) -> CmdResult {
    let cmd = lower(&a[0]);
    let mut cond = ExpireCondition::default();
    for opt in &a[3..] {
        if is(opt, "NX") {
            cond.nx = true;
        } else if is(opt, "XX") {
            cond.xx = true;
        } else if is(opt, "GT") {
            cond.gt = true;
        } else if is(opt, "LT") {
            cond.lt = true;
        } else {
            return Err(CmdError::err(format!("Unsupported option {}", text(opt))));
        }
    }
    if cond.nx && (cond.xx || cond.gt || cond.lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if cond.gt && cond.lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || CmdError::err(format!("invalid expire time in '{cmd}' command"));
    let n = parse_i64(&a[2])?;
    let mut at = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    if !absolute {
        at = at.checked_add(now_ms() as i64).ok_or_else(invalid)?;
    }
    Ok(Frame::Integer(ctx.db.expire_at(&a[1], at, cond)? as i64))
}

pub fn expire(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(ctx, a, 1000, false)
}

pub fn pexpire(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(ctx, a, 1, false)
}

pub fn expireat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(ctx, a, 1000, true)
}

pub fn pexpireat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    expire_generic(ctx, a, 1, true)
}

/// TTL/PTTL (remaining) and EXPIRETIME/PEXPIRETIME (absolute), in seconds or milliseconds.
fn ttl_generic(ctx: &mut Ctx<'_>, a: &[Bytes], millis: bool, absolute: bool) -> CmdResult {
    Ok(Frame::Integer(match ctx.db.ttl(&a[1])? {
        TtlState::Missing => -2,
        TtlState::NoExpiry => -1,
        TtlState::ExpiresAt(at) => {
            let at = at as i64;
            if absolute {
                if millis {
                    at
                } else {
                    at / 1000
                }
            } else {
                let left = (at - now_ms() as i64).max(0);
                if millis {
                    left
                } else {
                    (left + 500) / 1000
                }
            }
        }
    }))
}

pub fn ttl(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, false, false)
}

pub fn pttl(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, true, false)
}

pub fn expiretime(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, false, true)
}

pub fn pexpiretime(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, a, true, true)
}

pub fn persist(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.persist(&a[1])? as i64))
}

pub fn rename(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ctx.db.rename(&a[1], &a[2], false)?;
    Ok(Frame::ok())
}

pub fn renamenx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.rename(&a[1], &a[2], true)? as i64))
}

/// COPY source destination [DB 0] [REPLACE]
pub fn copy(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "REPLACE") {
            replace = true;
        } else if is(&a[i], "DB") && i + 1 < a.len() {
            if parse_i64(&a[i + 1])? != 0 {
                return Err(CmdError::err("DB index is out of range"));
            }
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if a[1] == a[2] {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    Ok(Frame::Integer(ctx.db.copy(&a[1], &a[2], replace)? as i64))
}

fn key_list(keys: Vec<Vec<u8>>) -> Frame {
    Frame::Array(
        keys.into_iter()
            .map(|k| Frame::Bulk(Bytes::from(k)))
            .collect(),
    )
}

pub fn keys(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(key_list(ctx.db.keys(&a[1])?))
}

fn type_by_name(name: &[u8]) -> Option<RedisType> {
    use RedisType::*;
    [
        String,
        Hash,
        List,
        Set,
        ZSet,
        Bitmap,
        SortedInt,
        Stream,
        Bloom,
        Json,
        HyperLogLog,
        TDigest,
    ]
    .into_iter()
    .find(|t| t.name().as_bytes().eq_ignore_ascii_case(name))
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
pub fn scan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let args = crate::args::parse_scan(&a[1], &a[2..], true)?;
    let (cursor, pattern, count) = (args.cursor, args.pattern, args.count);
    let kind = args.type_name.map(type_by_name);
    let after = ctx.cursors.resume_from(cursor)?;
    // An unknown TYPE name matches nothing, but the walk still advances.
    let (filter, none_match) = match kind {
        Some(Some(t)) => (Some(t), false),
        Some(None) => (None, true),
        None => (None, false),
    };
    let mut page = ctx.db.scan(after.as_deref(), pattern, count, filter)?;
    if none_match {
        page.keys.clear();
    }
    let next = match page.next {
        Some(k) => ctx.cursors.cursor_after(k, true),
        None => Bytes::from_static(crate::context::END_CURSOR),
    };
    Ok(Frame::Array(vec![Frame::Bulk(next), key_list(page.keys)]))
}

pub fn randomkey(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    Ok(match ctx.db.random_key()? {
        Some(k) => Frame::Bulk(Bytes::from(k)),
        None => Frame::Null,
    })
}

/// DBSIZE, and Kvrocks' DBSIZE SCAN, which starts a recount there. quarry's DBSIZE is exact
/// at every call, so there is nothing to recount: it answers OK, as Kvrocks does.
pub fn dbsize(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    match a.len() {
        1 => Ok(Frame::Integer(ctx.db.dbsize()? as i64)),
        2 if is(&a[1], "SCAN") => Ok(Frame::ok()),
        _ => Err(CmdError::err("DBSIZE subcommand only supports scan")),
    }
}

/// FLUSHDB [ASYNC|SYNC]: the connection's namespace.
pub fn flush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    match a.len() {
        1 => {}
        2 if is(&a[1], "ASYNC") || is(&a[1], "SYNC") => {}
        _ => return Err(CmdError::Syntax),
    }
    ctx.db.flush()?;
    Ok(Frame::ok())
}

/// FLUSHALL [ASYNC|SYNC]: every namespace, as in Kvrocks (only the admin may run it).
pub fn flushall(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    match a.len() {
        1 => {}
        2 if is(&a[1], "ASYNC") || is(&a[1], "SYNC") => {}
        _ => return Err(CmdError::Syntax),
    }
    ctx.db.flush_all_namespaces()?;
    Ok(Frame::ok())
}

pub fn compact(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    if !ctx.db.engine().compact_all() {
        return Err(CmdError::err("compact in-progress"));
    }
    Ok(Frame::ok())
}

/// MEMORY USAGE key [SAMPLES count]
pub fn memory(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if is(&a[1], "HELP") {
        return Ok(crate::table::help_lines(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "USAGE <key> [SAMPLES <count>]",
            "    Return the bytes the key and its value take in storage. For collections up to",
            "    <count> elements are read and the rest estimated (default 5, 0 = all).",
            "STATS",
            "    Return the process' memory and what RocksDB holds in memory.",
            "DOCTOR",
            "    Return memory problems reports.",
            "HELP",
            "    Print this help.",
        ]));
    }
    if is(&a[1], "STATS") && a.len() == 2 {
        return Ok(memory_stats(ctx));
    }
    if is(&a[1], "DOCTOR") && a.len() == 2 {
        return Ok(Frame::Verbatim(memory_doctor(ctx)));
    }
    let samples = match a.len() {
        3 => 5,
        5 if is(&a[3], "SAMPLES") => {
            let n = parse_i64(&a[4])?;
            if n < 0 {
                return Err(CmdError::Syntax);
            }
            n as usize
        }
        _ => return Err(CmdError::Syntax),
    };
    Ok(match ctx.db.memory_usage(&a[2], samples)? {
        Some(n) => Frame::Integer(n as i64),
        None => Frame::Null,
    })
}

/// The process' resident and peak resident memory (Linux /proc), in bytes.
fn process_memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What RocksDB holds in memory: memtables, table readers (indexes and filters outside the
/// cache), the block cache, and the memtables waiting to be flushed.
fn rocksdb_memory(ctx: &Ctx<'_>) -> [(&'static str, u64); 4] {
    let engine = ctx.db.engine();
    let sum = |name: &str| engine.property_sum(name);
    [
        ("rocksdb.memtables", sum("rocksdb.cur-size-all-mem-tables")),
        (
            "rocksdb.table-readers",
            sum("rocksdb.estimate-table-readers-mem"),
        ),
        ("rocksdb.block-cache", engine.block_cache_usage()),
        (
            "rocksdb.immutable-memtables",
            sum("rocksdb.num-immutable-mem-table"),
        ),
    ]
}

/// MEMORY STATS: Redis' shape (a map), with what means something for a disk store: the
/// process' memory, RocksDB's parts of it, and the keys.
fn memory_stats(ctx: &Ctx<'_>) -> Frame {
    let (rss, peak) = process_memory();
    let engine = ctx.db.engine();
    let keys = engine
        .property(
            quarry_storage::ColumnFamily::Metadata,
            "rocksdb.estimate-num-keys",
        )
        .unwrap_or(0);
    let rocks = rocksdb_memory(ctx);
    let in_rocksdb: u64 = rocks[..3].iter().map(|(_, v)| v).sum();
    let mut fields: Vec<(String, Frame)> = vec![
        ("peak.allocated".into(), Frame::Integer(peak as i64)),
        ("total.allocated".into(), Frame::Integer(rss as i64)),
    ];
    for (k, v) in rocks {
        fields.push((k.into(), Frame::Integer(v as i64)));
    }
    fields.push((
        "overhead.total".into(),
        Frame::Integer(rss.saturating_sub(in_rocksdb) as i64),
    ));
    fields.push(("keys.count".into(), Frame::Integer(keys as i64)));
    fields.push((
        "dataset.bytes".into(),
        Frame::Integer(engine.sst_bytes() as i64),
    ));
    fields.push((
        "peak.percentage".into(),
        Frame::Double(if peak > 0 {
            rss as f64 * 100.0 / peak as f64
        } else {
            0.0
        }),
    ));
    Frame::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Frame::bulk(k), v))
            .collect(),
    )
}

/// MEMORY DOCTOR: what looks wrong in memory, in words.
fn memory_doctor(ctx: &Ctx<'_>) -> String {
    let (rss, _) = process_memory();
    let rocks = rocksdb_memory(ctx);
    let mut problems = Vec::new();
    if rocks[3].1 >= 4 {
        problems.push(format!(
            "{} memtables wait to be flushed: flushes fall behind the writes (see INFO rocksdb and the disk).",
            rocks[3].1
        ));
    }
    let in_rocksdb: u64 = rocks[..3].iter().map(|(_, v)| v).sum();
    if rss > 0 && rocks[1].1 > rss / 2 {
        problems.push(format!(
            "Table readers (indexes and filters outside the block cache) take {} of {} bytes: consider rocksdb.cache_index_and_filter_blocks yes.",
            rocks[1].1, rss
        ));
    }
    if rss > in_rocksdb.saturating_mul(4) && rss > 1 << 30 {
        problems.push(format!(
            "The process holds {rss} bytes, far more than RocksDB's {in_rocksdb}: many clients, large replies or large scripts may be holding memory."
        ));
    }
    if problems.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    let mut out = String::from("Sam, I detected a few issues in this instance memory implant:\n\n");
    for p in problems {
        out.push_str(&format!(" * {p}\n"));
    }
    out
}

/// DISK USAGE key (Kvrocks): the bytes the key's records take in storage, every element
/// counted; nil for a missing key. Kvrocks estimates them from RocksDB's file ranges (after
/// compression), so the two differ in value, not in meaning.
pub fn disk(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !is(&a[1], "USAGE") {
        return Err(CmdError::err("Unknown operation"));
    }
    Ok(match ctx.db.memory_usage(&a[2], 0)? {
        Some(n) => Frame::Integer(n as i64),
        None => Frame::Null,
    })
}

/// STATS (Kvrocks): RocksDB's statistics as one line of JSON with its names sorted, tickers as
/// counts and histograms as `[p50, p95, p99, max, count, sum]`.
pub fn stats(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    let Some(mut all) = ctx.db.engine().statistics() else {
        return Err(CmdError::err(
            "RocksDB statistics are off (rocksdb.statistics no)",
        ));
    };
    all.sort_unstable_by_key(|(name, _)| *name);
    Ok(Frame::Bulk(Bytes::from(statistics_json(&all))))
}

/// One line of JSON (kept in the order given, which `stats` sorts by name: the map is ordered
/// that way too unless serde_json's preserve_order is on). serde_json writes doubles as jsoncons does (shortest
/// form, `.0` on whole numbers); JSON has no NaN or infinity, which become 0.0.
fn statistics_json(all: &[(&str, quarry_storage::Statistic)]) -> String {
    use serde_json::Value;
    let double = |v: f64| Value::from(if v.is_finite() { v } else { 0.0 });
    let map: serde_json::Map<String, Value> = all
        .iter()
        .map(|(name, stat)| {
            let value = match stat {
                quarry_storage::Statistic::Ticker(n) => Value::from(*n),
                quarry_storage::Statistic::Histogram(h) => Value::Array(vec![
                    double(h.p50),
                    double(h.p95),
                    double(h.p99),
                    double(h.max),
                    Value::from(h.count),
                    Value::from(h.sum),
                ]),
            };
            (name.to_string(), value)
        })
        .collect();
    Value::Object(map).to_string()
}

/// The Redis encoding name that best describes how a value is kept. quarry keeps every
/// collection as RocksDB sub-keys, which is closest to Redis's general-purpose encodings.
fn encoding_name(ctx: &mut Ctx<'_>, key: &[u8], kind: RedisType) -> Result<&'static str, CmdError> {
    Ok(match kind {
        RedisType::String => {
            let value = ctx.db.get(key)?.unwrap_or_default();
            if value.len() <= 20 && quarry_types::parse::parse_i64_strict(&value).is_some() {
                "int"
            } else if value.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        RedisType::List => "quicklist",
        RedisType::Hash | RedisType::Set => "hashtable",
        RedisType::ZSet => "skiplist",
        RedisType::Stream => "stream",
        _ => "raw",
    })
}

/// OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP. There is no object sharing, so REFCOUNT
/// is 1; IDLETIME reads the access clock (`access.rs`); access frequency is not tracked, so
/// FREQ answers as Redis does without an LFU policy.
pub fn object(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if is(&a[1], "HELP") {
        return Ok(crate::table::help_lines(&[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Print this help.",
        ]));
    }
    let Some(kind) = ctx.db.key_type(&a[2])? else {
        return Ok(Frame::Null);
    };
    if is(&a[1], "REFCOUNT") {
        Ok(Frame::Integer(1))
    } else if is(&a[1], "ENCODING") {
        Ok(Frame::bulk(encoding_name(ctx, &a[2], kind)?))
    } else if is(&a[1], "IDLETIME") {
        Ok(Frame::Integer(crate::access::idle_seconds(&a[2]) as i64))
    } else {
        Err(CmdError::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statistics_are_one_json_object_in_the_order_given() {
        use quarry_storage::{HistogramFigures, Statistic};
        let figures = HistogramFigures {
            p50: 8.33,
            p95: 21.65,
            p99: 56.0,
            max: 56.0,
            count: 21,
            sum: 218,
        };
        let json = super::statistics_json(&[
            ("rocksdb.bytes.written", Statistic::Ticker(1497)),
            ("rocksdb.db.get.micros", Statistic::Histogram(figures)),
        ]);
        assert_eq!(
            json,
            r#"{"rocksdb.bytes.written":1497,"rocksdb.db.get.micros":[8.33,21.65,56.0,56.0,21,218]}"#
        );
    }
}
