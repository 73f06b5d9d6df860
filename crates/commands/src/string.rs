//! String commands: parse arguments, then run against `quarry_types`.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_storage::encoding::now_ms;
use quarry_types::{Expiry, SetCondition};

use crate::args::{is, parse_f64, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

const MAX_STRING: i64 = 512 * 1024 * 1024;

fn bulk_or_null(v: Option<Vec<u8>>) -> Frame {
    match v {
        Some(v) => Frame::Bulk(Bytes::from(v)),
        None => Frame::Null,
    }
}

/// Turns a relative or absolute expiry argument into absolute milliseconds, with Redis's
/// checks: the value must be positive and must not overflow.
fn expiry_at(raw: &[u8], unit_ms: i64, absolute: bool, cmd: &'static str) -> Result<u64, CmdError> {
    let n = parse_i64(raw)?;
    if n <= 0 {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let ms = n.checked_mul(unit_ms).ok_or(CmdError::InvalidExpire(cmd))?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now_ms() as i64)
            .ok_or(CmdError::InvalidExpire(cmd))?
    };
    Ok(at as u64)
}

/// EX, PX, EXAT and PXAT: the unit in milliseconds and whether the time is absolute.
fn time_option(opt: &[u8]) -> Option<(i64, bool)> {
    if is(opt, "EX") {
        Some((1000, false))
    } else if is(opt, "PX") {
        Some((1, false))
    } else if is(opt, "EXAT") {
        Some((1000, true))
    } else if is(opt, "PXAT") {
        Some((1, true))
    } else {
        None
    }
}

pub fn get(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(bulk_or_null(ctx.db.get(&a[1])?))
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
pub fn set(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut cond = SetCondition::Always;
    let mut expiry = Expiry::Clear;
    let mut expiry_given = false;
    let mut get = false;
    let mut i = 3;
    while i < a.len() {
        let opt = &a[i];
        if let Some((unit, abs)) = time_option(opt) {
            if expiry_given || i + 1 >= a.len() {
                return Err(CmdError::Syntax);
            }
            expiry = Expiry::At(expiry_at(&a[i + 1], unit, abs, "set")?);
            expiry_given = true;
            i += 2;
            continue;
        }
        if is(opt, "NX") && cond != SetCondition::Xx {
            cond = SetCondition::Nx;
        } else if is(opt, "XX") && cond != SetCondition::Nx {
            cond = SetCondition::Xx;
        } else if is(opt, "GET") {
            get = true;
        } else if is(opt, "KEEPTTL") && !expiry_given {
            expiry = Expiry::Keep;
            expiry_given = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let out = ctx.db.set(&a[1], &a[2], cond, expiry, get)?;
    if get {
        return Ok(bulk_or_null(out.old));
    }
    Ok(if out.written {
        Frame::ok()
    } else {
        Frame::Null
    })
}

pub fn setnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let out = ctx
        .db
        .set(&a[1], &a[2], SetCondition::Nx, Expiry::Clear, false)?;
    Ok(Frame::Integer(out.written as i64))
}

pub fn setex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let at = expiry_at(&a[2], 1000, false, "setex")?;
    ctx.db
        .set(&a[1], &a[3], SetCondition::Always, Expiry::At(at), false)?;
    Ok(Frame::ok())
}

pub fn psetex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let at = expiry_at(&a[2], 1, false, "psetex")?;
    ctx.db
        .set(&a[1], &a[3], SetCondition::Always, Expiry::At(at), false)?;
    Ok(Frame::ok())
}

pub fn getset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let out = ctx
        .db
        .set(&a[1], &a[2], SetCondition::Always, Expiry::Clear, true)?;
    Ok(bulk_or_null(out.old))
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
pub fn getex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut expiry = None;
    let mut i = 2;
    while i < a.len() {
        let opt = &a[i];
        if let Some((unit, abs)) = time_option(opt) {
            if expiry.is_some() || i + 1 >= a.len() {
                return Err(CmdError::Syntax);
            }
            expiry = Some(Expiry::At(expiry_at(&a[i + 1], unit, abs, "getex")?));
            i += 2;
        } else if is(opt, "PERSIST") && expiry.is_none() {
            expiry = Some(Expiry::Clear);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(bulk_or_null(ctx.db.get_ex(&a[1], expiry)?))
}

pub fn getdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(bulk_or_null(ctx.db.get_del(&a[1])?))
}

pub fn mget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let values = ctx.db.mget(&a[1..])?;
    Ok(Frame::Array(values.into_iter().map(bulk_or_null).collect()))
}

fn pairs(a: &[Bytes]) -> Result<Vec<(&Bytes, &Bytes)>, CmdError> {
    if a.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity(crate::args::lower(&a[0])));
    }
    Ok(a[1..].chunks(2).map(|c| (&c[0], &c[1])).collect())
}

pub fn mset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ctx.db.mset(&pairs(a)?, false)?;
    Ok(Frame::ok())
}

pub fn msetnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.mset(&pairs(a)?, true)? as i64))
}

pub fn append(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.append(&a[1], &a[2])? as i64))
}

pub fn strlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        ctx.db.get(&a[1])?.map_or(0, |v| v.len()) as i64
    ))
}

/// GETRANGE key start end, with Redis's clamping of negative and out-of-range indexes.
pub fn getrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut start = parse_i64(&a[2])?;
    let mut end = parse_i64(&a[3])?;
    let value = ctx.db.get(&a[1])?.unwrap_or_default();
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Frame::bulk(Bytes::new()));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return Ok(Frame::bulk(Bytes::new()));
    }
    Ok(Frame::Bulk(Bytes::copy_from_slice(
        &value[start as usize..=end as usize],
    )))
}

pub fn setrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let offset = parse_i64(&a[2])?;
    if !(0..MAX_STRING).contains(&offset) {
        return Err(CmdError::err("offset is out of range"));
    }
    Ok(Frame::Integer(
        ctx.db.set_range(&a[1], offset as usize, &a[3])? as i64,
    ))
}

pub fn incr(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.incr_by(&a[1], 1)?))
}

pub fn decr(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.incr_by(&a[1], -1)?))
}

pub fn incrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.incr_by(&a[1], parse_i64(&a[2])?)?))
}

pub fn decrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let n = parse_i64(&a[2])?;
    let delta = n
        .checked_neg()
        .ok_or_else(|| CmdError::err("decrement would overflow"))?;
    Ok(Frame::Integer(ctx.db.incr_by(&a[1], delta)?))
}

pub fn incrbyfloat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let delta = parse_f64(&a[2])?;
    if !delta.is_finite() {
        return Err(CmdError::err("increment would produce NaN or Infinity"));
    }
    Ok(Frame::Bulk(Bytes::from(
        ctx.db.incr_by_float(&a[1], &a[2])?,
    )))
}

/// CAS key old new [EX s|PX ms]
pub fn cas(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut expire = 0;
    match a.len() {
        4 => {}
        6 if is(&a[4], "EX") => expire = expiry_at(&a[5], 1000, false, "cas")?,
        6 if is(&a[4], "PX") => expire = expiry_at(&a[5], 1, false, "cas")?,
        _ => return Err(CmdError::Syntax),
    }
    Ok(Frame::Integer(ctx.db.cas(&a[1], &a[2], &a[3], expire)?))
}

pub fn cad(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.cad(&a[1], &a[2])?))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]
pub fn lcs(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (mut want_len, mut want_idx, mut with_len) = (false, false, false);
    let mut min_len: i64 = 0;
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "LEN") {
            want_len = true;
        } else if is(&a[i], "IDX") {
            want_idx = true;
        } else if is(&a[i], "WITHMATCHLEN") {
            with_len = true;
        } else if is(&a[i], "MINMATCHLEN") && i + 1 < a.len() {
            min_len = parse_i64(&a[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let read = |k: &[u8]| -> Result<Vec<u8>, CmdError> {
        match ctx.db.get(k) {
            Ok(v) => Ok(v.unwrap_or_default()),
            Err(quarry_types::TypeError::WrongType) => Err(CmdError::err(
                "The specified keys must contain string values",
            )),
            Err(e) => Err(e.into()),
        }
    };
    let x = read(&a[1])?;
    let y = read(&a[2])?;
    // The walk needs a table of (len1+1)*(len2+1) counters: refuse what would not fit, as
    // Redis 7.2 does, instead of running out of memory.
    let cells = (x.len() as u128 + 1) * (y.len() as u128 + 1);
    if cells * 4 > MAX_STRING as u128 {
        return Err(CmdError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    if want_len && want_idx {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(lcs_reply(
        &x,
        &y,
        want_len,
        want_idx,
        min_len as usize,
        with_len,
    ))
}

/// The LCS table and walk of Redis's `lcsCommand`, so that match lists come out identical.
fn lcs_reply(
    x: &[u8],
    y: &[u8],
    want_len: bool,
    want_idx: bool,
    min_len: usize,
    with_len: bool,
) -> Frame {
    let (al, bl) = (x.len(), y.len());
    let w = bl + 1;
    let mut t = vec![0u32; (al + 1) * (bl + 1)];
    for i in 1..=al {
        for j in 1..=bl {
            t[i * w + j] = if x[i - 1] == y[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[al * w + bl] as usize;
    if want_len {
        return Frame::Integer(total as i64);
    }
    let mut result = vec![0u8; total];
    let mut matches = Vec::new();
    let (mut i, mut j, mut idx) = (al, bl, total);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (al, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if x[i - 1] == y[j - 1] {
            result[idx - 1] = x[i - 1];
            if a_start == al {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != al {
                emit = true;
            }
        }
        if emit {
            let len = a_end - a_start + 1;
            if want_idx && (min_len == 0 || len >= min_len) {
                let mut m = vec![
                    Frame::Array(vec![
                        Frame::Integer(a_start as i64),
                        Frame::Integer(a_end as i64),
                    ]),
                    Frame::Array(vec![
                        Frame::Integer(b_start as i64),
                        Frame::Integer(b_end as i64),
                    ]),
                ];
                if with_len {
                    m.push(Frame::Integer(len as i64));
                }
                matches.push(Frame::Array(m));
            }
            a_start = al;
        }
    }
    if want_idx {
        return Frame::Map(vec![
            (Frame::bulk("matches"), Frame::Array(matches)),
            (Frame::bulk("len"), Frame::Integer(total as i64)),
        ]);
    }
    Frame::Bulk(Bytes::from(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_matches_redis_examples() {
        let a = b"ohmytext";
        let b = b"mynewtext";
        assert_eq!(
            lcs_reply(a, b, false, false, 0, false),
            Frame::bulk("mytext")
        );
        assert_eq!(lcs_reply(a, b, true, false, 0, false), Frame::Integer(6));
        let Frame::Map(m) = lcs_reply(a, b, false, true, 0, false) else {
            panic!()
        };
        let Frame::Array(matches) = &m[0].1 else {
            panic!()
        };
        // Redis: [[4,7],[5,8]] then [[2,3],[0,1]]
        assert_eq!(
            matches[0],
            Frame::Array(vec![
                Frame::Array(vec![Frame::Integer(4), Frame::Integer(7)]),
                Frame::Array(vec![Frame::Integer(5), Frame::Integer(8)]),
            ])
        );
        assert_eq!(matches.len(), 2);
    }
}
