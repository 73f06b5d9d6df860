//! Hash commands.

use bytes::Bytes;
use quarry_resp::{Frame, Protocol};
use quarry_types::{HashIncrError, RedisType};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::args::{is, lower, parse_f64, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn bulk_or_null(v: Option<Vec<u8>>) -> Frame {
    v.map_or(Frame::Null, |v| Frame::Bulk(Bytes::from(v)))
}

fn field_pairs(a: &[Bytes]) -> Result<Vec<(&Bytes, &Bytes)>, CmdError> {
    if a.len() < 4 || !a.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity(lower(&a[0])));
    }
    Ok(a[2..].chunks(2).map(|c| (&c[0], &c[1])).collect())
}

/// HSET key field value [field value ...]
pub fn hset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        ctx.db.hset(&a[1], &field_pairs(a)?, false)? as i64
    ))
}

/// HMSET key field value [field value ...]
pub fn hmset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ctx.db.hset(&a[1], &field_pairs(a)?, false)?;
    Ok(Frame::ok())
}

/// HSETNX key field value [field value ...]: Kvrocks takes several pairs, and answers how many
/// fields it set.
pub fn hsetnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity("hsetnx".into()));
    }
    let pairs: Vec<(&Bytes, &Bytes)> = a[2..].chunks(2).map(|p| (&p[0], &p[1])).collect();
    Ok(Frame::Integer(ctx.db.hset(&a[1], &pairs, true)? as i64))
}

pub fn hget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(bulk_or_null(ctx.db.hget(&a[1], &a[2])?))
}

pub fn hmget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let values = ctx.db.hmget(&a[1], &a[2..])?;
    Ok(Frame::Array(values.into_iter().map(bulk_or_null).collect()))
}

pub fn hdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.hdel(&a[1], &a[2..])? as i64))
}

pub fn hlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.hlen(&a[1])? as i64))
}

pub fn hstrlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        ctx.db.hget(&a[1], &a[2])?.map_or(0, |v| v.len()) as i64,
    ))
}

pub fn hexists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.hget(&a[1], &a[2])?.is_some() as i64))
}

pub fn hkeys(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let all = ctx.db.hgetall(&a[1])?;
    Ok(Frame::Array(
        all.into_iter()
            .map(|(f, _)| Frame::Bulk(Bytes::from(f)))
            .collect(),
    ))
}

pub fn hvals(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let all = ctx.db.hgetall(&a[1])?;
    Ok(Frame::Array(
        all.into_iter()
            .map(|(_, v)| Frame::Bulk(Bytes::from(v)))
            .collect(),
    ))
}

pub fn hgetall(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let all = ctx.db.hgetall(&a[1])?;
    Ok(Frame::Map(
        all.into_iter()
            .map(|(f, v)| (Frame::Bulk(Bytes::from(f)), Frame::Bulk(Bytes::from(v))))
            .collect(),
    ))
}

pub fn hincrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let delta = parse_i64(&a[3])?;
    match ctx.db.hincrby(&a[1], &a[2], delta)? {
        Ok(n) => Ok(Frame::Integer(n)),
        Err(_) => Err(CmdError::err("hash value is not an integer")),
    }
}

pub fn hincrbyfloat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let delta = parse_f64(&a[3])?;
    if !delta.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    match ctx.db.hincrbyfloat(&a[1], &a[2], &a[3])? {
        Ok(v) => Ok(Frame::Bulk(Bytes::from(v))),
        Err(HashIncrError::NotFloat | HashIncrError::NotInteger) => {
            Err(CmdError::err("hash value is not a float"))
        }
    }
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
pub fn hscan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    subkey_scan(ctx, a, RedisType::Hash, true)
}

/// HSCAN and SSCAN: `cursor` continues after the last sub-key handed out; COUNT sub-keys are
/// visited per call. Hash fields come with their values.
pub(crate) fn subkey_scan(
    ctx: &mut Ctx<'_>,
    a: &[Bytes],
    kind: RedisType,
    with_values: bool,
) -> CmdResult {
    let args = crate::args::parse_scan(&a[2], &a[3..], false)?;
    let (cursor, pattern, count) = (args.cursor, args.pattern, args.count);
    let after = ctx.cursors.resume_from(cursor)?;
    let mut items = Vec::new();
    let mut visited = 0;
    let mut last: Option<Vec<u8>> = None;
    let mut more = false;
    ctx.db
        .collection_walk(&a[1], kind, after.as_deref(), |f, v| {
            if visited == count {
                more = true;
                return false;
            }
            visited += 1;
            last = Some(f.to_vec());
            if pattern.is_none_or(|p| quarry_types::glob::glob_match(p, f)) {
                items.push(Frame::Bulk(Bytes::copy_from_slice(f)));
                if with_values {
                    items.push(Frame::Bulk(Bytes::copy_from_slice(v)));
                }
            }
            true
        })?;
    let next = match (more, last) {
        (true, Some(f)) => ctx.cursors.cursor_after(f, false),
        _ => Bytes::from_static(crate::context::END_CURSOR),
    };
    Ok(Frame::Array(vec![Frame::Bulk(next), Frame::Array(items)]))
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 4 || (a.len() == 4 && !is(&a[3], "WITHVALUES")) {
        return Err(CmdError::Syntax);
    }
    let with_values = a.len() == 4;
    let count = if a.len() >= 3 {
        Some(parse_i64(&a[2])?)
    } else {
        None
    };
    if let Some(c) = count {
        crate::args::check_random_count(c, with_values)?;
    }
    let all = ctx.db.hgetall(&a[1])?;
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        return Ok(match all.choose(&mut rng) {
            Some((f, _)) => Frame::Bulk(Bytes::from(f.clone())),
            None => Frame::Null,
        });
    };
    let picked: Vec<&(Vec<u8>, Vec<u8>)> = if count >= 0 {
        all.choose_multiple(&mut rng, (count as usize).min(all.len()))
            .collect()
    } else if all.is_empty() {
        Vec::new()
    } else {
        (0..count.unsigned_abs())
            .map(|_| &all[rng.gen_range(0..all.len())])
            .collect()
    };
    let reply = if !with_values {
        picked
            .into_iter()
            .map(|(f, _)| Frame::Bulk(Bytes::from(f.clone())))
            .collect()
    } else if ctx.protocol == Protocol::Resp3 {
        picked
            .into_iter()
            .map(|(f, v)| {
                Frame::Array(vec![
                    Frame::Bulk(Bytes::from(f.clone())),
                    Frame::Bulk(Bytes::from(v.clone())),
                ])
            })
            .collect()
    } else {
        picked
            .into_iter()
            .flat_map(|(f, v)| {
                [
                    Frame::Bulk(Bytes::from(f.clone())),
                    Frame::Bulk(Bytes::from(v.clone())),
                ]
            })
            .collect()
    };
    Ok(Frame::Array(reply))
}

/// One bound of a lex range: `-`/`+`, `[x` (inclusive) or `(x` (exclusive).
pub(crate) fn lex_bound<'a>(
    arg: &'a [u8],
    infinite: &[u8],
    which: &str,
) -> Result<std::ops::Bound<&'a [u8]>, CmdError> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    if arg == infinite {
        return Ok(Unbounded);
    }
    match arg.first() {
        Some(b'[') => Ok(Included(&arg[1..])),
        Some(b'(') => Ok(Excluded(&arg[1..])),
        _ => Err(CmdError::err(format!("the {which} is illegal"))),
    }
}

/// HRANGEBYLEX key min max [REV] [LIMIT offset count] (Kvrocks; with REV the bounds come as
/// max then min). Replies field, value, field, value...
pub fn hrangebylex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut rev = false;
    let (mut offset, mut count) = (0i64, -1i64);
    let mut i = 4;
    while i < a.len() {
        if is(&a[i], "REV") {
            rev = true;
            i += 1;
        } else if is(&a[i], "LIMIT") && i + 2 < a.len() {
            offset = parse_i64(&a[i + 1])?;
            count = parse_i64(&a[i + 2])?;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let (min_arg, max_arg) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    if min_arg.as_ref() == b"+" || max_arg.as_ref() == b"-" {
        return Err(CmdError::err("min > max"));
    }
    let min = lex_bound(min_arg, b"-", "min")?;
    let max = lex_bound(max_arg, b"+", "max")?;
    if offset < 0 {
        return Ok(Frame::Array(Vec::new()));
    }
    let pairs = ctx
        .db
        .hash_range_lex(&a[1], min, max, rev, offset as usize, count)?;
    Ok(Frame::Array(
        pairs
            .into_iter()
            .flat_map(|(f, v)| [Frame::Bulk(Bytes::from(f)), Frame::Bulk(Bytes::from(v))])
            .collect(),
    ))
}
