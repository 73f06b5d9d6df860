//! List commands (the blocking forms come with the blocking machinery).

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_types::End;

use crate::args::{is, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn elements(v: Vec<Vec<u8>>) -> Frame {
    Frame::Array(v.into_iter().map(|e| Frame::Bulk(Bytes::from(e))).collect())
}

fn push(ctx: &mut Ctx<'_>, a: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    Ok(Frame::Integer(
        ctx.db.push(&a[1], end, &a[2..], only_existing)? as i64,
    ))
}

pub fn lpush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, End::Left, false)
}

pub fn rpush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, End::Right, false)
}

pub fn lpushx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, End::Left, true)
}

pub fn rpushx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    push(ctx, a, End::Right, true)
}

fn positive_count(arg: &[u8]) -> Result<u64, CmdError> {
    let n = parse_i64(arg).map_err(|_| CmdError::err("value is out of range, must be positive"))?;
    if n < 0 {
        return Err(CmdError::err("value is out of range, must be positive"));
    }
    Ok(n as u64)
}

fn pop(ctx: &mut Ctx<'_>, a: &[Bytes], end: End) -> CmdResult {
    match a.len() {
        2 => Ok(match ctx.db.pop(&a[1], end, 1)?.and_then(|mut v| v.pop()) {
            Some(e) => Frame::Bulk(Bytes::from(e)),
            None => Frame::Null,
        }),
        3 => {
            let count = positive_count(&a[2])?;
            Ok(match ctx.db.pop(&a[1], end, count)? {
                Some(v) => elements(v),
                None => Frame::NullArray,
            })
        }
        _ => Err(CmdError::WrongArity(crate::args::lower(&a[0]))),
    }
}

pub fn lpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    pop(ctx, a, End::Left)
}

pub fn rpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    pop(ctx, a, End::Right)
}

pub fn llen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.llen(&a[1])? as i64))
}

pub fn lindex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let i = parse_i64(&a[2])?;
    Ok(ctx
        .db
        .lindex(&a[1], i)?
        .map_or(Frame::Null, |e| Frame::Bulk(Bytes::from(e))))
}

pub fn lrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (start, stop) = (parse_i64(&a[2])?, parse_i64(&a[3])?);
    Ok(elements(ctx.db.lrange(&a[1], start, stop)?))
}

pub fn lset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let i = parse_i64(&a[2])?;
    ctx.db.lset(&a[1], i, &a[3])?;
    Ok(Frame::ok())
}

pub fn ltrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (start, stop) = (parse_i64(&a[2])?, parse_i64(&a[3])?);
    ctx.db.ltrim(&a[1], start, stop)?;
    Ok(Frame::ok())
}

pub fn lrem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let count = parse_i64(&a[2])?;
    Ok(Frame::Integer(ctx.db.lrem(&a[1], count, &a[3])? as i64))
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let before = if is(&a[2], "BEFORE") {
        true
    } else if is(&a[2], "AFTER") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    Ok(Frame::Integer(ctx.db.linsert(&a[1], before, &a[3], &a[4])?))
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen): (i64, Option<i64>, i64) = (1, None, 0);
    let mut i = 3;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(CmdError::Syntax);
        }
        let v = parse_i64(&a[i + 1])?;
        if is(&a[i], "RANK") {
            if v == 0 {
                return Err(CmdError::err("RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
            }
            if v == i64::MIN {
                return Err(CmdError::err("value is out of range"));
            }
            rank = v;
        } else if is(&a[i], "COUNT") {
            if v < 0 {
                return Err(CmdError::err("COUNT can't be negative"));
            }
            count = Some(v);
        } else if is(&a[i], "MAXLEN") {
            if v < 0 {
                return Err(CmdError::err("MAXLEN can't be negative"));
            }
            maxlen = v;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let all = ctx.db.list_all(&a[1])?;
    let n = all.len();
    let order: Box<dyn Iterator<Item = usize>> = if rank > 0 {
        Box::new(0..n)
    } else {
        Box::new((0..n).rev())
    };
    let mut to_skip = rank.unsigned_abs() - 1;
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c as usize,
        None => 1,
    };
    let mut found = Vec::new();
    for (compared, idx) in order.enumerate() {
        if maxlen > 0 && compared as i64 >= maxlen {
            break;
        }
        if all[idx] == a[2] {
            if to_skip > 0 {
                to_skip -= 1;
                continue;
            }
            found.push(Frame::Integer(idx as i64));
            if found.len() >= want {
                break;
            }
        }
    }
    if count.is_some() {
        return Ok(Frame::Array(found));
    }
    Ok(found.pop().unwrap_or(Frame::Null))
}

/// LEFT or RIGHT.
pub fn end_of(arg: &[u8]) -> Result<End, CmdError> {
    if is(arg, "LEFT") {
        Ok(End::Left)
    } else if is(arg, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

/// The keys, end and count of `numkeys key [key ...] LEFT|RIGHT [COUNT count]`, shared by
/// LMPOP and BLMPOP.
pub fn parse_mpop(a: &[Bytes]) -> Result<(&[Bytes], End, u64), CmdError> {
    let numkeys = parse_i64(&a[0]).unwrap_or(0);
    if numkeys <= 0 {
        return Err(CmdError::err("numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if a.len() < 2 + numkeys {
        return Err(CmdError::Syntax);
    }
    let end = end_of(&a[1 + numkeys])?;
    let count = match &a[2 + numkeys..] {
        [] => 1,
        [opt, n] if is(opt, "COUNT") => {
            let c = parse_i64(n).unwrap_or(0);
            if c <= 0 {
                return Err(CmdError::err("count should be greater than 0"));
            }
            c as u64
        }
        _ => return Err(CmdError::Syntax),
    };
    Ok((&a[1..1 + numkeys], end, count))
}

fn moved(v: Option<Vec<u8>>) -> Frame {
    v.map_or(Frame::Null, |e| Frame::Bulk(Bytes::from(e)))
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (from, to) = (end_of(&a[3])?, end_of(&a[4])?);
    Ok(moved(ctx.db.lmove(&a[1], &a[2], from, to)?))
}

pub fn rpoplpush(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(moved(ctx.db.lmove(&a[1], &a[2], End::Right, End::Left)?))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (keys, end, count) = parse_mpop(&a[1..])?;
    for key in keys {
        if let Some(v) = ctx.db.pop(key, end, count)? {
            if !v.is_empty() {
                return Ok(Frame::Array(vec![Frame::Bulk(key.clone()), elements(v)]));
            }
        }
    }
    Ok(Frame::NullArray)
}
