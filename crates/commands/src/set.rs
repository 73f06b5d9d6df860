//! Set commands.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_types::SetOp;
use rand::Rng;

use crate::args::{is, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn members_frame(members: impl IntoIterator<Item = Vec<u8>>) -> Frame {
    Frame::Set(
        members
            .into_iter()
            .map(|m| Frame::Bulk(Bytes::from(m)))
            .collect(),
    )
}

fn array_frame(members: impl IntoIterator<Item = Vec<u8>>) -> Frame {
    Frame::Array(
        members
            .into_iter()
            .map(|m| Frame::Bulk(Bytes::from(m)))
            .collect(),
    )
}

pub fn sadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.sadd(&a[1], &a[2..])? as i64))
}

pub fn srem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.srem(&a[1], &a[2..])? as i64))
}

pub fn scard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.scard(&a[1])? as i64))
}

pub fn sismember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.sismember(&a[1], &a[2..3])?[0] as i64))
}

pub fn smismember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let found = ctx.db.sismember(&a[1], &a[2..])?;
    Ok(Frame::Array(
        found
            .into_iter()
            .map(|f| Frame::Integer(f as i64))
            .collect(),
    ))
}

pub fn smembers(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(members_frame(ctx.db.smembers(&a[1])?))
}

/// SPOP key [count]
pub fn spop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    match a.len() {
        2 => Ok(match ctx.db.spop(&a[1], 1)?.pop() {
            Some(m) => Frame::Bulk(Bytes::from(m)),
            None => Frame::Null,
        }),
        3 => {
            let n = parse_i64(&a[2])
                .map_err(|_| CmdError::err("value is out of range, must be positive"))?;
            if n < 0 {
                return Err(CmdError::err("value is out of range, must be positive"));
            }
            Ok(members_frame(ctx.db.spop(&a[1], n as usize)?))
        }
        _ => Err(CmdError::Syntax),
    }
}

/// SRANDMEMBER key [count]: distinct members for a positive count, repeats for a negative one.
pub fn srandmember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = if a.len() == 3 {
        Some(parse_i64(&a[2])?)
    } else {
        None
    };
    if let Some(c) = count {
        crate::args::check_random_count(c, false)?;
    }
    let all = ctx.db.smembers(&a[1])?;
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        return Ok(if all.is_empty() {
            Frame::Null
        } else {
            Frame::Bulk(Bytes::from(all[rng.gen_range(0..all.len())].clone()))
        });
    };
    if count >= 0 {
        let mut picked = all;
        let n = (count as usize).min(picked.len());
        let (chosen, _) = rand::seq::SliceRandom::partial_shuffle(&mut picked[..], &mut rng, n);
        return Ok(array_frame(chosen.to_vec()));
    }
    if all.is_empty() {
        return Ok(Frame::Array(Vec::new()));
    }
    Ok(array_frame(
        (0..count.unsigned_abs()).map(|_| all[rng.gen_range(0..all.len())].clone()),
    ))
}

pub fn smove(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.smove(&a[1], &a[2], &a[3])? as i64))
}

fn combine(ctx: &mut Ctx<'_>, a: &[Bytes], op: SetOp) -> CmdResult {
    Ok(members_frame(ctx.db.set_combine(op, &a[1..])?))
}

pub fn sdiff(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    combine(ctx, a, SetOp::Diff)
}

pub fn sinter(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    combine(ctx, a, SetOp::Inter)
}

pub fn sunion(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    combine(ctx, a, SetOp::Union)
}

fn combine_store(ctx: &mut Ctx<'_>, a: &[Bytes], op: SetOp) -> CmdResult {
    Ok(Frame::Integer(
        ctx.db.set_combine_store(op, &a[1], &a[2..])? as i64,
    ))
}

pub fn sdiffstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    combine_store(ctx, a, SetOp::Diff)
}

pub fn sinterstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    combine_store(ctx, a, SetOp::Inter)
}

pub fn sunionstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    combine_store(ctx, a, SetOp::Union)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    // Any numkeys that is not a positive integer gets the same answer, as in Redis.
    let numkeys = parse_i64(&a[1]).unwrap_or(0);
    if numkeys <= 0 {
        return Err(CmdError::err("numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if numkeys > a.len() - 2 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let keys = &a[2..2 + numkeys];
    let mut limit = 0usize;
    let rest = &a[2 + numkeys..];
    match rest.len() {
        0 => {}
        2 if is(&rest[0], "LIMIT") => {
            // Redis gives this one text for a negative LIMIT and for one that is no integer.
            let n = parse_i64(&rest[1])
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| CmdError::err("LIMIT can't be negative"))?;
            limit = n as usize;
        }
        _ => return Err(CmdError::Syntax),
    }
    let n = ctx.db.set_combine(SetOp::Inter, keys)?.len();
    Ok(Frame::Integer(
        if limit > 0 { n.min(limit) } else { n } as i64
    ))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
pub fn sscan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    crate::hash::subkey_scan(ctx, a, quarry_types::RedisType::Set, false)
}
