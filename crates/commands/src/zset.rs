//! Sorted-set commands (the first part: ZADD, ZINCRBY, ZSCORE, ZMSCORE, ZCARD, ZREM, ZRANGE
//! and its older forms, ZCOUNT, ZRANK, ZREVRANK, ZPOPMIN, ZPOPMAX).

use std::ops::Bound;

use bytes::Bytes;
use quarry_resp::{format_double, Frame, Protocol};
use quarry_types::{RedisType, ZAddFlags};

use crate::args::{is, lower, parse_f64, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn score_frame(ctx: &Ctx<'_>, s: f64) -> Frame {
    match ctx.protocol {
        Protocol::Resp3 => Frame::Double(s),
        Protocol::Resp2 => Frame::bulk(format_double(s)),
    }
}

/// Members, or members and scores (pairs in RESP3, flat in RESP2).
fn members_frame(ctx: &Ctx<'_>, items: Vec<(Vec<u8>, f64)>, with_scores: bool) -> Frame {
    if !with_scores {
        return Frame::Array(
            items
                .into_iter()
                .map(|(m, _)| Frame::Bulk(Bytes::from(m)))
                .collect(),
        );
    }
    if ctx.protocol == Protocol::Resp3 {
        return Frame::Array(
            items
                .into_iter()
                .map(|(m, s)| Frame::Array(vec![Frame::Bulk(Bytes::from(m)), Frame::Double(s)]))
                .collect(),
        );
    }
    Frame::Array(
        items
            .into_iter()
            .flat_map(|(m, s)| [Frame::Bulk(Bytes::from(m)), score_frame(ctx, s)])
            .collect(),
    )
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut flags = ZAddFlags::default();
    let mut ch = false;
    let mut i = 2;
    while i < a.len() {
        let o = &a[i];
        if is(o, "NX") {
            flags.nx = true;
        } else if is(o, "XX") {
            flags.xx = true;
        } else if is(o, "GT") {
            flags.gt = true;
        } else if is(o, "LT") {
            flags.lt = true;
        } else if is(o, "CH") {
            ch = true;
        } else if is(o, "INCR") {
            flags.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if ((flags.gt || flags.lt) && flags.nx) || (flags.gt && flags.lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if flags.incr && rest.len() > 2 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut items = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        items.push((parse_f64(&pair[0])?, &pair[1][..]));
    }
    let out = ctx.db.zadd(&a[1], &items, flags).map_err(|e| match e {
        quarry_types::TypeError::NanOrInfinity => {
            CmdError::err("resulting score is not a number (NaN)")
        }
        other => other.into(),
    })?;
    if flags.incr {
        return Ok(out.incr.map_or(Frame::Null, |s| score_frame(ctx, s)));
    }
    Ok(Frame::Integer(
        (out.added + if ch { out.changed } else { 0 }) as i64,
    ))
}

pub fn zincrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let delta = parse_f64(&a[2])?;
    let flags = ZAddFlags {
        incr: true,
        ..Default::default()
    };
    let out = ctx
        .db
        .zadd(&a[1], &[(delta, &a[3][..])], flags)
        .map_err(|e| match e {
            quarry_types::TypeError::NanOrInfinity => {
                CmdError::err("resulting score is not a number (NaN)")
            }
            other => other.into(),
        })?;
    Ok(out.incr.map_or(Frame::Null, |s| score_frame(ctx, s)))
}

pub fn zscore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(ctx
        .db
        .zscore(&a[1], &a[2])?
        .map_or(Frame::Null, |s| score_frame(ctx, s)))
}

pub fn zmscore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut out = Vec::new();
    for m in &a[2..] {
        out.push(
            ctx.db
                .zscore(&a[1], m)?
                .map_or(Frame::Null, |s| score_frame(ctx, s)),
        );
    }
    Ok(Frame::Array(out))
}

pub fn zcard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.zcard(&a[1])? as i64))
}

pub fn zrem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.zrem(&a[1], &a[2..])? as i64))
}

/// A score bound: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
fn score_bound(arg: &[u8]) -> Result<Bound<f64>, CmdError> {
    let bad = || CmdError::err("min or max is not a float");
    if let Some(rest) = arg.strip_prefix(b"(") {
        let v = quarry_types::parse::parse_f64_strict(rest).ok_or_else(bad)?;
        return Ok(Bound::Excluded(v));
    }
    let v = quarry_types::parse::parse_f64_strict(arg).ok_or_else(bad)?;
    Ok(Bound::Included(v))
}

enum By {
    Rank,
    Score,
    Lex,
}

/// The shared body of ZRANGE and its older forms. `lo`/`hi` are as written by the client
/// (for REV forms the first is the high end).
#[allow(clippy::too_many_arguments)]
fn range(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    lo: &[u8],
    hi: &[u8],
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
    with_scores: bool,
) -> CmdResult {
    let (offset, count) = limit.unwrap_or((0, -1));
    let items = match by {
        By::Rank => {
            if limit.is_some() {
                return Err(CmdError::err("syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
            }
            ctx.db
                .zrange_by_rank(key, parse_i64(lo)?, parse_i64(hi)?, rev)?
        }
        By::Score => {
            let (min, max) = if rev {
                (score_bound(hi)?, score_bound(lo)?)
            } else {
                (score_bound(lo)?, score_bound(hi)?)
            };
            if offset < 0 {
                return Ok(members_frame(ctx, Vec::new(), with_scores));
            }
            ctx.db
                .zrange_by_score(key, min, max, rev, offset as usize, count)?
        }
        By::Lex => {
            if with_scores {
                return Err(CmdError::err(
                    "syntax error, WITHSCORES not supported in combination with BYLEX",
                ));
            }
            let (min_arg, max_arg) = if rev { (hi, lo) } else { (lo, hi) };
            let invalid = || CmdError::err("min or max not valid string range item");
            let min = crate::hash::lex_bound(min_arg, b"-", "min").map_err(|_| invalid())?;
            let max = crate::hash::lex_bound(max_arg, b"+", "max").map_err(|_| invalid())?;
            if min_arg == b"+" || max_arg == b"-" || offset < 0 {
                return Ok(Frame::Array(Vec::new()));
            }
            let mut members = Vec::new();
            ctx.db.collection_walk(key, RedisType::ZSet, None, |m, _| {
                members.push(m.to_vec());
                true
            })?;
            let inside = |m: &[u8]| {
                (match min {
                    Bound::Included(x) => m >= x,
                    Bound::Excluded(x) => m > x,
                    Bound::Unbounded => true,
                }) && (match max {
                    Bound::Included(x) => m <= x,
                    Bound::Excluded(x) => m < x,
                    Bound::Unbounded => true,
                })
            };
            let mut picked: Vec<Vec<u8>> = members.into_iter().filter(|m| inside(m)).collect();
            if rev {
                picked.reverse();
            }
            let picked = picked.into_iter().skip(offset as usize);
            let picked: Vec<Vec<u8>> = if count < 0 {
                picked.collect()
            } else {
                picked.take(count as usize).collect()
            };
            picked.into_iter().map(|m| (m, 0.0)).collect()
        }
    };
    Ok(members_frame(ctx, items, with_scores))
}

/// Parses `[WITHSCORES] [LIMIT offset count]` in any order.
fn range_options(
    opts: &[Bytes],
    allow_limit: bool,
) -> Result<(bool, Option<(i64, i64)>), CmdError> {
    let (mut with_scores, mut limit) = (false, None);
    let mut i = 0;
    while i < opts.len() {
        if is(&opts[i], "WITHSCORES") {
            with_scores = true;
            i += 1;
        } else if allow_limit && is(&opts[i], "LIMIT") && i + 2 < opts.len() {
            limit = Some((parse_i64(&opts[i + 1])?, parse_i64(&opts[i + 2])?));
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((with_scores, limit))
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
pub fn zrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (mut by, mut rev, mut with_scores, mut limit) = (By::Rank, false, false, None);
    let mut i = 4;
    while i < a.len() {
        if is(&a[i], "BYSCORE") {
            by = By::Score;
        } else if is(&a[i], "BYLEX") {
            by = By::Lex;
        } else if is(&a[i], "REV") {
            rev = true;
        } else if is(&a[i], "WITHSCORES") {
            with_scores = true;
        } else if is(&a[i], "LIMIT") && i + 2 < a.len() {
            limit = Some((parse_i64(&a[i + 1])?, parse_i64(&a[i + 2])?));
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    // With REV the client writes the high end first for BYSCORE/BYLEX.
    range(ctx, &a[1], &a[2], &a[3], by, rev, limit, with_scores)
}

pub fn zrevrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (with_scores, _) = range_options(&a[4..], false)?;
    range(ctx, &a[1], &a[2], &a[3], By::Rank, true, None, with_scores)
}

pub fn zrangebyscore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (with_scores, limit) = range_options(&a[4..], true)?;
    let rev = lower(&a[0]) == "zrevrangebyscore";
    range(ctx, &a[1], &a[2], &a[3], By::Score, rev, limit, with_scores)
}

pub fn zcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (min, max) = (score_bound(&a[2])?, score_bound(&a[3])?);
    Ok(Frame::Integer(
        ctx.db.zrange_by_score(&a[1], min, max, false, 0, -1)?.len() as i64,
    ))
}

/// ZRANK / ZREVRANK key member [WITHSCORE]
pub fn zrank(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let with_score = match a.len() {
        3 => false,
        4 if is(&a[3], "WITHSCORE") => true,
        _ => return Err(CmdError::Syntax),
    };
    let rev = lower(&a[0]) == "zrevrank";
    Ok(match ctx.db.zrank(&a[1], &a[2], rev)? {
        None if with_score => Frame::NullArray,
        None => Frame::Null,
        Some((rank, s)) if with_score => {
            Frame::Array(vec![Frame::Integer(rank as i64), score_frame(ctx, s)])
        }
        Some((rank, _)) => Frame::Integer(rank as i64),
    })
}

/// ZPOPMIN / ZPOPMAX key [count]
pub fn zpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let max = lower(&a[0]) == "zpopmax";
    let count = match a.len() {
        2 => 1,
        3 => {
            let n = parse_i64(&a[2])?;
            if n < 0 {
                return Err(CmdError::err("value is out of range, must be positive"));
            }
            n as usize
        }
        _ => return Err(CmdError::Syntax),
    };
    let popped = ctx.db.zpop(&a[1], max, count)?;
    if a.len() == 2 {
        // Without a count the reply is one flat member/score pair, in RESP3 too.
        return Ok(Frame::Array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [Frame::Bulk(Bytes::from(m)), score_frame(ctx, s)])
                .collect(),
        ));
    }
    Ok(members_frame(ctx, popped, true))
}
