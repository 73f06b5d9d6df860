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
    if with_scores && matches!(by, By::Lex) {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let items = select(ctx, key, lo, hi, by, rev, limit)?;
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

/// ZRANGEBYLEX key min max [LIMIT offset count] and ZREVRANGEBYLEX key max min [LIMIT ...]
pub fn zrangebylex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (with_scores, limit) = range_options(&a[4..], true)?;
    if with_scores {
        return Err(CmdError::Syntax);
    }
    let rev = lower(&a[0]) == "zrevrangebylex";
    range(ctx, &a[1], &a[2], &a[3], By::Lex, rev, limit, false)
}

/// The members of a lex range with their scores, in order (`lo`/`hi` as ZRANGE BYLEX takes
/// them, already swapped for REV).
fn lex_items(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    min_arg: &[u8],
    max_arg: &[u8],
) -> Result<Vec<(Vec<u8>, f64)>, CmdError> {
    let invalid = || CmdError::err("min or max not valid string range item");
    // `+` as the minimum or `-` as the maximum is valid, and empty.
    if min_arg == b"+" || max_arg == b"-" {
        let other = if min_arg == b"+" { max_arg } else { min_arg };
        if !matches!(other, b"+" | b"-") && !matches!(other.first(), Some(b'[' | b'(')) {
            return Err(invalid());
        }
        ctx.db.zcard(key)?;
        return Ok(Vec::new());
    }
    let min = crate::hash::lex_bound(min_arg, b"-", "min").map_err(|_| invalid())?;
    let max = crate::hash::lex_bound(max_arg, b"+", "max").map_err(|_| invalid())?;
    let items = ctx.db.zset_items(key)?.unwrap_or_default();
    Ok(items
        .into_iter()
        .filter(|(m, _)| {
            let m = m.as_slice();
            (match min {
                Bound::Included(x) => m >= x,
                Bound::Excluded(x) => m > x,
                Bound::Unbounded => true,
            }) && (match max {
                Bound::Included(x) => m <= x,
                Bound::Excluded(x) => m < x,
                Bound::Unbounded => true,
            })
        })
        .collect())
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        lex_items(ctx, &a[1], &a[2], &a[3])?.len() as i64
    ))
}

/// The items of a ZRANGE-style selection (ZRANGE, ZRANGESTORE, ZREMRANGEBY*), with their
/// scores.
#[allow(clippy::too_many_arguments)]
fn select(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    lo: &[u8],
    hi: &[u8],
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
) -> Result<Vec<(Vec<u8>, f64)>, CmdError> {
    let (offset, count) = limit.unwrap_or((0, -1));
    match by {
        By::Rank if limit.is_some() => Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        )),
        By::Rank => Ok(ctx
            .db
            .zrange_by_rank(key, parse_i64(lo)?, parse_i64(hi)?, rev)?),
        By::Score => {
            let (min, max) = if rev {
                (score_bound(hi)?, score_bound(lo)?)
            } else {
                (score_bound(lo)?, score_bound(hi)?)
            };
            if offset < 0 {
                return Ok(Vec::new());
            }
            Ok(ctx
                .db
                .zrange_by_score(key, min, max, rev, offset as usize, count)?)
        }
        By::Lex => {
            let (min_arg, max_arg) = if rev { (hi, lo) } else { (lo, hi) };
            let mut items = lex_items(ctx, key, min_arg, max_arg)?;
            if offset < 0 {
                return Ok(Vec::new());
            }
            if rev {
                items.reverse();
            }
            let items = items.into_iter().skip(offset as usize);
            Ok(if count < 0 {
                items.collect()
            } else {
                items.take(count as usize).collect()
            })
        }
    }
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
pub fn zrangestore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (mut by, mut rev, mut limit) = (By::Rank, false, None);
    let mut i = 5;
    while i < a.len() {
        if is(&a[i], "BYSCORE") {
            by = By::Score;
        } else if is(&a[i], "BYLEX") {
            by = By::Lex;
        } else if is(&a[i], "REV") {
            rev = true;
        } else if is(&a[i], "LIMIT") && i + 2 < a.len() {
            limit = Some((parse_i64(&a[i + 1])?, parse_i64(&a[i + 2])?));
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    // The source must be a sorted set (or missing).
    ctx.db.zcard(&a[2])?;
    let items = select(ctx, &a[2], &a[3], &a[4], by, rev, limit)?;
    Ok(Frame::Integer(ctx.db.zstore(&a[1], &items)? as i64))
}

/// ZREMRANGEBYRANK key start stop, ZREMRANGEBYSCORE key min max, ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let by = match lower(&a[0]).as_str() {
        "zremrangebyrank" => By::Rank,
        "zremrangebyscore" => By::Score,
        _ => By::Lex,
    };
    let items = select(ctx, &a[1], &a[2], &a[3], by, false, None)?;
    let members: Vec<Vec<u8>> = items.into_iter().map(|(m, _)| m).collect();
    Ok(Frame::Integer(ctx.db.zrem(&a[1], &members)? as i64))
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(a: Aggregate, x: f64, y: f64) -> f64 {
    match a {
        Aggregate::Sum => {
            let s = x + y;
            // inf + -inf is NaN in IEEE, 0 in Redis.
            if s.is_nan() {
                0.0
            } else {
                s
            }
        }
        Aggregate::Min => x.min(y),
        Aggregate::Max => x.max(y),
    }
}

/// The shared body of ZUNION/ZINTER/ZDIFF, their STORE forms and ZINTERCARD. `at` is the
/// index of numkeys.
fn combine(
    ctx: &mut Ctx<'_>,
    a: &[Bytes],
    at: usize,
    op: SetOp,
    store: bool,
    card_only: bool,
) -> Result<(quarry_types::ScoredMembers, bool, Option<usize>), CmdError> {
    let name = lower(&a[0]);
    let n = parse_i64(&a[at])?;
    if n < 1 {
        return Err(CmdError::err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    let n = n as usize;
    if n > a.len() - at - 1 {
        return Err(CmdError::Syntax);
    }
    let keys = &a[at + 1..at + 1 + n];
    let mut weights = vec![1.0; n];
    let (mut agg, mut with_scores, mut limit) = (Aggregate::Sum, false, None);
    let mut i = at + 1 + n;
    while i < a.len() {
        let left = a.len() - i - 1;
        if op != SetOp::Diff && !card_only && is(&a[i], "WEIGHTS") && left >= n {
            for (w, arg) in weights.iter_mut().zip(&a[i + 1..i + 1 + n]) {
                *w = quarry_types::parse::parse_f64_strict(arg)
                    .ok_or_else(|| CmdError::err("weight value is not a float"))?;
            }
            i += n + 1;
        } else if op != SetOp::Diff && !card_only && is(&a[i], "AGGREGATE") && left >= 1 {
            agg = match lower(&a[i + 1]).as_str() {
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                _ => return Err(CmdError::Syntax),
            };
            i += 2;
        } else if !store && !card_only && is(&a[i], "WITHSCORES") {
            with_scores = true;
            i += 1;
        } else if card_only && is(&a[i], "LIMIT") && left >= 1 {
            let l = parse_i64(&a[i + 1])
                .ok()
                .filter(|l| *l >= 0)
                .ok_or_else(|| CmdError::err("LIMIT can't be negative"))?;
            limit = (l > 0).then_some(l as usize);
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut inputs = Vec::with_capacity(n);
    for k in keys {
        inputs.push(ctx.db.zset_or_set_items(k)?);
    }
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let mut out: Vec<(Vec<u8>, f64)> = Vec::new();
    match op {
        SetOp::Union => {
            let mut acc: std::collections::HashMap<Vec<u8>, f64> = Default::default();
            let mut order = Vec::new();
            for (items, &w) in inputs.iter().zip(&weights) {
                for (m, s) in items {
                    let v = weighted(*s, w);
                    match acc.get_mut(m) {
                        Some(cur) => *cur = aggregate(agg, *cur, v),
                        None => {
                            acc.insert(m.clone(), v);
                            order.push(m.clone());
                        }
                    }
                }
            }
            out = order
                .into_iter()
                .map(|m| {
                    let s = acc[&m];
                    (m, s)
                })
                .collect();
        }
        SetOp::Inter => {
            let maps: Vec<std::collections::HashMap<&[u8], f64>> = inputs
                .iter()
                .map(|items| items.iter().map(|(m, s)| (m.as_slice(), *s)).collect())
                .collect();
            for (m, s) in &inputs[0] {
                let mut score = weighted(*s, weights[0]);
                let mut everywhere = true;
                for (map, &w) in maps.iter().zip(&weights).skip(1) {
                    match map.get(m.as_slice()) {
                        Some(v) => score = aggregate(agg, score, weighted(*v, w)),
                        None => {
                            everywhere = false;
                            break;
                        }
                    }
                }
                if everywhere {
                    out.push((m.clone(), score));
                    if limit.is_some_and(|l| out.len() >= l) {
                        break;
                    }
                }
            }
        }
        SetOp::Diff => {
            let others: std::collections::HashSet<&[u8]> = inputs[1..]
                .iter()
                .flatten()
                .map(|(m, _)| m.as_slice())
                .collect();
            out = inputs[0]
                .iter()
                .filter(|(m, _)| !others.contains(m.as_slice()))
                .cloned()
                .collect();
        }
    }
    // Score order, then member order, as a sorted set holds them.
    out.sort_by(|x, y| x.1.total_cmp(&y.1).then_with(|| x.0.cmp(&y.0)));
    Ok((out, with_scores, limit))
}

/// ZUNION / ZINTER / ZDIFF numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES]
pub fn zcombine(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let op = match lower(&a[0]).as_str() {
        "zunion" => SetOp::Union,
        "zinter" => SetOp::Inter,
        _ => SetOp::Diff,
    };
    let (items, with_scores, _) = combine(ctx, a, 1, op, false, false)?;
    Ok(members_frame(ctx, items, with_scores))
}

/// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE dst numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]
pub fn zcombinestore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let op = match lower(&a[0]).as_str() {
        "zunionstore" => SetOp::Union,
        "zinterstore" => SetOp::Inter,
        _ => SetOp::Diff,
    };
    let (items, _, _) = combine(ctx, a, 2, op, true, false)?;
    Ok(Frame::Integer(ctx.db.zstore(&a[1], &items)? as i64))
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (items, _, _) = combine(ctx, a, 1, SetOp::Inter, false, true)?;
    Ok(Frame::Integer(items.len() as i64))
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    use rand::seq::SliceRandom;
    use rand::Rng;
    if a.len() > 4 || (a.len() == 4 && !is(&a[3], "WITHSCORES")) {
        return Err(CmdError::Syntax);
    }
    let with_scores = a.len() == 4;
    let count = if a.len() >= 3 {
        let c = parse_i64(&a[2])?;
        if with_scores && c > i64::MAX / 2 {
            return Err(CmdError::err("value is out of range"));
        }
        crate::args::check_random_count(c, with_scores)?;
        Some(c)
    } else {
        None
    };
    let items = ctx.db.zset_items(&a[1])?;
    let mut rng = rand::thread_rng();
    let Some(items) = items else {
        return Ok(match count {
            None => Frame::Null,
            Some(_) => Frame::Array(Vec::new()),
        });
    };
    match count {
        None => {
            let (m, _) = &items[rng.gen_range(0..items.len())];
            Ok(Frame::Bulk(Bytes::copy_from_slice(m)))
        }
        Some(c) if c >= 0 => {
            let mut picked = items;
            picked.shuffle(&mut rng);
            picked.truncate(c as usize);
            Ok(members_frame(ctx, picked, with_scores))
        }
        Some(c) => {
            let n = c.unsigned_abs() as usize;
            let picked: Vec<(Vec<u8>, f64)> = (0..n)
                .map(|_| items[rng.gen_range(0..items.len())].clone())
                .collect();
            Ok(members_frame(ctx, picked, with_scores))
        }
    }
}

/// Parses ZMPOP/BZMPOP's `numkeys key [key ...] MIN|MAX [COUNT count]` (from numkeys on).
pub fn parse_zmpop(a: &[Bytes]) -> Result<(&[Bytes], bool, usize), CmdError> {
    let n = parse_i64(&a[0]).map_err(|_| CmdError::err("numkeys should be greater than 0"))?;
    if n < 1 {
        return Err(CmdError::err("numkeys should be greater than 0"));
    }
    let n = n as usize;
    let Some(where_arg) = a.get(n + 1) else {
        return Err(CmdError::Syntax);
    };
    let max = if is(where_arg, "MIN") {
        false
    } else if is(where_arg, "MAX") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count = None;
    let mut i = n + 2;
    while i < a.len() {
        if count.is_none() && is(&a[i], "COUNT") && i + 1 < a.len() {
            let c = parse_i64(&a[i + 1])
                .map_err(|_| CmdError::err("count should be greater than 0"))?;
            if c < 1 {
                return Err(CmdError::err("count should be greater than 0"));
            }
            count = Some(c as usize);
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((&a[1..n + 1], max, count.unwrap_or(1)))
}

/// The reply of ZMPOP/BZMPOP for what one key gave.
pub fn zmpop_reply(ctx: &Ctx<'_>, key: &[u8], popped: Vec<(Vec<u8>, f64)>) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(Bytes::copy_from_slice(key)),
        Frame::Array(
            popped
                .into_iter()
                .map(|(m, s)| Frame::Array(vec![Frame::Bulk(Bytes::from(m)), score_frame(ctx, s)]))
                .collect(),
        ),
    ])
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (keys, max, count) = parse_zmpop(&a[1..])?;
    for k in keys {
        let popped = ctx.db.zpop(k, max, count)?;
        if !popped.is_empty() {
            return Ok(zmpop_reply(ctx, k, popped));
        }
    }
    Ok(Frame::NullArray)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub fn zscan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let reply = crate::hash::subkey_scan(ctx, a, RedisType::ZSet, true)?;
    // The values are 8-byte encoded scores: the reply shows them as Redis prints doubles.
    let Frame::Array(mut parts) = reply else {
        return Ok(reply);
    };
    if let Some(Frame::Array(items)) = parts.get_mut(1) {
        for (i, f) in items.iter_mut().enumerate() {
            if i % 2 == 1 {
                if let Frame::Bulk(b) = f {
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(&b[..8.min(b.len())]);
                    *f = Frame::bulk(format_double(quarry_types::decode_score(raw)));
                }
            }
        }
    }
    Ok(Frame::Array(parts))
}
