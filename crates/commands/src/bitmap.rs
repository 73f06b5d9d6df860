//! Bit commands on strings and Kvrocks bitmaps: GETBIT, SETBIT, BITCOUNT, BITPOS, BITOP.

use bytes::Bytes;
use quarry_resp::Frame;

use crate::args::{is, lower, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn bit_offset(arg: &[u8]) -> Result<u64, CmdError> {
    let bad = || CmdError::err("bit offset is not an integer or out of range");
    let v = parse_i64(arg).map_err(|_| bad())?;
    if v < 0 || v as u64 > quarry_types::MAX_BIT_OFFSET {
        return Err(bad());
    }
    Ok(v as u64)
}

/// GETBIT key offset
pub fn getbit(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&a[2])?;
    Ok(Frame::Integer(ctx.db.getbit(&a[1], offset)? as i64))
}

/// SETBIT key offset 0|1
pub fn setbit(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&a[2])?;
    let bit = match &a[3][..] {
        b"0" => false,
        b"1" => true,
        _ => return Err(CmdError::err("bit is not an integer or out of range")),
    };
    Ok(Frame::Integer(ctx.db.setbit(&a[1], offset, bit)? as i64))
}

/// Redis' range rules: negative indexes from the end, clamped; None if empty.
fn clamp(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let mut end = if end < 0 { len + end } else { end };
    if end < 0 {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    (start <= end && len > 0).then_some((start, end))
}

fn bit_at(v: &[u8], i: i64) -> u8 {
    (v[(i / 8) as usize] >> (7 - (i % 8))) & 1
}

/// Parses `[start end [BYTE|BIT]]` style arguments (from `start` on); BIT mode flag.
fn unit(a: &[Bytes], at: usize) -> Result<bool, CmdError> {
    match a.get(at) {
        None => Ok(false),
        Some(u) if is(u, "BYTE") => Ok(false),
        Some(u) if is(u, "BIT") => Ok(true),
        Some(_) => Err(CmdError::Syntax),
    }
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub fn bitcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() == 3 || a.len() > 5 {
        return Err(CmdError::Syntax);
    }
    let value = ctx.db.bit_value(&a[1])?.unwrap_or_default();
    if a.len() == 2 {
        return Ok(Frame::Integer(
            value.iter().map(|b| b.count_ones() as i64).sum(),
        ));
    }
    let (start, end) = (parse_i64(&a[2])?, parse_i64(&a[3])?);
    let bits = unit(a, 4)?;
    let len = value.len() as i64 * if bits { 8 } else { 1 };
    let Some((s, e)) = clamp(start, end, len) else {
        return Ok(Frame::Integer(0));
    };
    let n = if bits {
        (s..=e).map(|i| bit_at(&value, i) as i64).sum()
    } else {
        value[s as usize..=e as usize]
            .iter()
            .map(|b| b.count_ones() as i64)
            .sum()
    };
    Ok(Frame::Integer(n))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub fn bitpos(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 6 {
        return Err(CmdError::Syntax);
    }
    let bit = match &a[2][..] {
        b"0" => 0u8,
        b"1" => 1u8,
        _ => return Err(CmdError::err("The bit argument must be 1 or 0.")),
    };
    let Some(value) = ctx.db.bit_value(&a[1])? else {
        return Ok(Frame::Integer(if bit == 1 { -1 } else { 0 }));
    };
    let bits = unit(a, 5)?;
    let end_given = a.len() >= 5;
    let start = match a.get(3) {
        Some(s) => parse_i64(s)?,
        None => 0,
    };
    let end = match a.get(4) {
        Some(e) => parse_i64(e)?,
        None => -1,
    };
    let len = value.len() as i64 * if bits { 8 } else { 1 };
    let Some((s, e)) = clamp(start, end, len) else {
        return Ok(Frame::Integer(-1));
    };
    let (first, last) = if bits { (s, e) } else { (s * 8, e * 8 + 7) };
    for i in first..=last {
        if bit_at(&value, i) == bit {
            return Ok(Frame::Integer(i));
        }
    }
    // Looking for a 0 past a string of ones, with no end given: the first bit after it.
    if bit == 0 && !end_given {
        return Ok(Frame::Integer(last + 1));
    }
    Ok(Frame::Integer(-1))
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
pub fn bitop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let op = lower(&a[1]);
    if !matches!(op.as_str(), "and" | "or" | "xor" | "not") {
        return Err(CmdError::Syntax);
    }
    if op == "not" && a.len() != 4 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let mut inputs = Vec::new();
    for k in &a[3..] {
        inputs.push(ctx.db.bit_value(k)?.unwrap_or_default());
    }
    let max = inputs.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![0u8; max];
    for (i, byte) in out.iter_mut().enumerate() {
        let at = |v: &Vec<u8>| v.get(i).copied().unwrap_or(0);
        *byte = match op.as_str() {
            "not" => !at(&inputs[0]),
            "and" => inputs.iter().fold(0xff, |acc, v| acc & at(v)),
            "or" => inputs.iter().fold(0, |acc, v| acc | at(v)),
            _ => inputs.iter().fold(0, |acc, v| acc ^ at(v)),
        };
    }
    ctx.db.store_bits(&a[2], &out)?;
    Ok(Frame::Integer(max as i64))
}
