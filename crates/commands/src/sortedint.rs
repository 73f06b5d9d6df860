//! Sorted integers (Kvrocks only): SIADD, SIREM, SICARD, SIEXISTS, SIRANGE, SIREVRANGE,
//! SIRANGEBYVALUE, SIREVRANGEBYVALUE, with Kvrocks' arguments and replies.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_types::sortedint::IdRange;

use crate::args::is;
use crate::{CmdError, CmdResult, Ctx};

fn id(arg: &[u8]) -> Result<u64, CmdError> {
    crate::args::parse_u64(arg).ok_or(CmdError::NotInteger)
}

fn ids(args: &[Bytes]) -> Result<Vec<u64>, CmdError> {
    args.iter().map(|a| id(a)).collect()
}

fn id_list(ids: Vec<u64>) -> Frame {
    Frame::Array(
        ids.into_iter()
            .map(|i| Frame::bulk(i.to_string()))
            .collect(),
    )
}

pub fn siadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ids = ids(&a[2..])?;
    Ok(Frame::Integer(ctx.db.siadd(&a[1], &ids)? as i64))
}

pub fn sirem(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ids = ids(&a[2..])?;
    Ok(Frame::Integer(ctx.db.sirem(&a[1], &ids)? as i64))
}

pub fn sicard(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.sicard(&a[1])? as i64))
}

pub fn siexists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ids = ids(&a[2..])?;
    Ok(Frame::Array(
        ctx.db
            .siexists(&a[1], &ids)?
            .into_iter()
            .map(|e| Frame::Integer(e as i64))
            .collect(),
    ))
}

fn range(ctx: &mut Ctx<'_>, a: &[Bytes], rev: bool) -> CmdResult {
    let offset = id(&a[2])?;
    let limit = id(&a[3])?;
    let cursor = match a.len() {
        4 => 0,
        6 if is(&a[4], "cursor") => id(&a[5])?,
        6 => return Err(CmdError::Syntax),
        _ => return Err(CmdError::Syntax),
    };
    Ok(id_list(ctx.db.sirange(&a[1], cursor, offset, limit, rev)?))
}

pub fn sirange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    range(ctx, a, false)
}

pub fn sirevrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    range(ctx, a, true)
}

/// Kvrocks' bounds: `-inf`, `+inf`, an id, or `(`id.
fn bound(arg: &[u8], what: &str) -> Result<(u64, bool), CmdError> {
    let (excluded, digits) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let v = id(digits).map_err(|_| CmdError::err(format!("the {what} isn't integer")))?;
    Ok((v, excluded))
}

fn range_by_value(ctx: &mut Ctx<'_>, a: &[Bytes], rev: bool) -> CmdResult {
    let (min_arg, max_arg) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    if &min_arg[..] == b"+inf" || &max_arg[..] == b"-inf" {
        return Err(CmdError::err("min > max"));
    }
    let (min, min_excluded) = if &min_arg[..] == b"-inf" {
        (0, false)
    } else {
        bound(min_arg, "min")?
    };
    let (max, max_excluded) = if &max_arg[..] == b"+inf" {
        (u64::MAX, false)
    } else {
        bound(max_arg, "max")?
    };
    let (mut offset, mut count) = (-1i64, -1i64);
    match a.len() {
        4 => {}
        7 if is(&a[4], "limit") => {
            offset = crate::args::parse_i64(&a[5])?;
            count = crate::args::parse_i64(&a[6])?;
        }
        _ => return Err(CmdError::Syntax),
    }
    let r = IdRange {
        min,
        min_excluded,
        max,
        max_excluded,
    };
    Ok(id_list(
        ctx.db.sirange_by_value(&a[1], r, rev, offset, count)?,
    ))
}

pub fn sirangebyvalue(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    range_by_value(ctx, a, false)
}

pub fn sirevrangebyvalue(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    range_by_value(ctx, a, true)
}
