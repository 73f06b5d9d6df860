//! t-digests (RedisBloom's TDIGEST.*, as Kvrocks 2.11 and later serve them), stored in
//! Kvrocks' layout (`quarry_types::tdigest`). Error texts are RedisBloom's.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_types::parse::parse_f64_strict;
use quarry_types::tdigest::{Digest, DEFAULT_COMPRESSION, MAX_COMPRESSION};

use crate::args::{is, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn err(text: &str) -> CmdError {
    CmdError::err(format!("T-Digest: {text}"))
}

fn missing() -> CmdError {
    err("key does not exist")
}

/// `COMPRESSION <n>`: a positive integer up to 1,000.
fn compression(v: Option<&Bytes>) -> Result<u32, CmdError> {
    let v = v.ok_or_else(|| err("error parsing compression parameter"))?;
    let n = parse_i64(v).map_err(|_| err("error parsing compression parameter"))?;
    if n <= 0 {
        return Err(err("compression parameter needs to be a positive integer"));
    }
    if n > MAX_COMPRESSION as i64 {
        return Err(err(&format!(
            "compression must be between 1 and {MAX_COMPRESSION}"
        )));
    }
    Ok(n as u32)
}

/// A number argument; `what` names it in the error (NaN is refused, as RedisBloom does).
fn number(v: &[u8], what: &str) -> Result<f64, CmdError> {
    parse_f64_strict(v)
        .filter(|x| !x.is_nan())
        .ok_or_else(|| err(&format!("error parsing {what}")))
}

fn doubles(values: impl IntoIterator<Item = f64>) -> Frame {
    Frame::Array(values.into_iter().map(Frame::Double).collect())
}

fn read(ctx: &Ctx<'_>, key: &[u8]) -> Result<Digest, CmdError> {
    Ok(ctx.db.td_read(key)?.ok_or_else(missing)?.1)
}

/// TDIGEST.CREATE key [COMPRESSION compression]
pub fn create(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let c = match a.len() {
        2 => DEFAULT_COMPRESSION,
        4 if is(&a[2], "COMPRESSION") => compression(a.get(3))?,
        3 | 4 if !is(&a[2], "COMPRESSION") => return Err(err("wrong keyword")),
        _ => return Err(CmdError::WrongArity("tdigest.create".into())),
    };
    if !ctx.db.td_create(&a[1], c)? {
        return Err(err("key already exists"));
    }
    Ok(Frame::ok())
}

/// TDIGEST.ADD key value [value ...]
pub fn add(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut values = Vec::with_capacity(a.len() - 2);
    for v in &a[2..] {
        let x = number(v, "val parameter")?;
        if !x.is_finite() {
            return Err(err("val parameter needs to be a finite number"));
        }
        values.push(x);
    }
    if !ctx.db.td_add(&a[1], &values)? {
        return Err(missing());
    }
    Ok(Frame::ok())
}

/// TDIGEST.RESET key
pub fn reset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !ctx.db.td_reset(&a[1])? {
        return Err(missing());
    }
    Ok(Frame::ok())
}

/// TDIGEST.MERGE destination numkeys source [source ...] [COMPRESSION c] [OVERRIDE]
pub fn merge(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let n = parse_i64(&a[2]).map_err(|_| err("error parsing numkeys"))?;
    if n <= 0 {
        return Err(err("numkeys needs to be a positive integer"));
    }
    let n = n as usize;
    if a.len() < 3 + n {
        return Err(CmdError::WrongArity("tdigest.merge".into()));
    }
    let (mut given, mut replace) = (None, false);
    let mut i = 3 + n;
    while i < a.len() {
        if is(&a[i], "COMPRESSION") {
            given = Some(compression(a.get(i + 1))?);
            i += 2;
        } else if is(&a[i], "OVERRIDE") {
            replace = true;
            i += 1;
        } else {
            return Err(err("wrong keyword"));
        }
    }
    let mut sources = Vec::with_capacity(n);
    let mut observations = 0;
    for key in &a[3..3 + n] {
        let (info, d) = ctx.db.td_read(key)?.ok_or_else(missing)?;
        observations += info.observations;
        sources.push(d);
    }
    ctx.db
        .td_merge_into(&a[1], sources, observations, given, replace)?;
    Ok(Frame::ok())
}

/// TDIGEST.MIN / TDIGEST.MAX key: nan when empty.
pub fn min_max(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let d = read(ctx, &a[1])?;
    Ok(Frame::Double(if d.is_empty() {
        f64::NAN
    } else if is(&a[0], "tdigest.min") {
        d.min
    } else {
        d.max
    }))
}

/// TDIGEST.QUANTILE key quantile [quantile ...]
pub fn quantile(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut qs = Vec::with_capacity(a.len() - 2);
    for v in &a[2..] {
        let q = number(v, "quantile")?;
        if !(0.0..=1.0).contains(&q) {
            return Err(err("quantile should be in [0,1]"));
        }
        qs.push(q);
    }
    let d = read(ctx, &a[1])?;
    Ok(doubles(qs.into_iter().map(|q| d.quantile(q))))
}

/// TDIGEST.CDF key value [value ...]
pub fn cdf(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let xs = a[2..]
        .iter()
        .map(|v| number(v, "cdf"))
        .collect::<Result<Vec<_>, _>>()?;
    let d = read(ctx, &a[1])?;
    Ok(doubles(xs.into_iter().map(|x| d.cdf(x))))
}

/// TDIGEST.RANK / TDIGEST.REVRANK key value [value ...]
pub fn rank(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let reverse = is(&a[0], "tdigest.revrank");
    let xs = a[2..]
        .iter()
        .map(|v| number(v, "value"))
        .collect::<Result<Vec<_>, _>>()?;
    let d = read(ctx, &a[1])?;
    Ok(Frame::Array(
        xs.into_iter()
            .map(|x| Frame::Integer(d.rank(x, reverse)))
            .collect(),
    ))
}

/// TDIGEST.BYRANK / TDIGEST.BYREVRANK key rank [rank ...]
pub fn by_rank(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let reverse = is(&a[0], "tdigest.byrevrank");
    let mut ranks = Vec::with_capacity(a.len() - 2);
    for v in &a[2..] {
        let r = parse_i64(v).map_err(|_| err("error parsing rank"))?;
        if r < 0 {
            return Err(err("rank needs to be non negative"));
        }
        ranks.push(r as u64);
    }
    let d = read(ctx, &a[1])?;
    Ok(doubles(ranks.into_iter().map(|r| d.by_rank(r, reverse))))
}

/// TDIGEST.TRIMMED_MEAN key low_cut_quantile high_cut_quantile
pub fn trimmed_mean(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let low = number(&a[2], "low_cut_percentile")?;
    let high = number(&a[3], "high_cut_percentile")?;
    if !(0.0..=1.0).contains(&low) || !(0.0..=1.0).contains(&high) {
        return Err(err(
            "low_cut_percentile and high_cut_percentile should be in [0,1]",
        ));
    }
    if low >= high {
        return Err(err(
            "low_cut_percentile should be lower than high_cut_percentile",
        ));
    }
    let d = read(ctx, &a[1])?;
    Ok(Frame::Double(d.trimmed_mean(low, high)))
}

/// TDIGEST.INFO key: RedisBloom's fields (a map in RESP3).
pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let info = ctx.db.td_info(&a[1])?.ok_or_else(missing)?;
    let memory = (info.merged_nodes + info.unmerged_nodes) * 16 + 72;
    let fields: [(&str, u64); 9] = [
        ("Compression", info.compression as u64),
        ("Capacity", info.capacity as u64),
        ("Merged nodes", info.merged_nodes),
        ("Unmerged nodes", info.unmerged_nodes),
        ("Merged weight", info.merged_weight),
        (
            "Unmerged weight",
            info.total_weight - info.merged_weight.min(info.total_weight),
        ),
        ("Observations", info.observations),
        ("Total compressions", info.merges),
        ("Memory usage", memory),
    ];
    Ok(Frame::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Frame::Simple(k.into()), Frame::Integer(v as i64)))
            .collect(),
    ))
}
