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

#[derive(Clone, Copy)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy)]
struct Field {
    signed: bool,
    bits: u32,
    offset: u64,
}

enum FieldOp {
    Get(Field),
    Set(Field, i64, Overflow),
    Incr(Field, i64, Overflow),
}

fn parse_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let bad = || {
        CmdError::err(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let (signed, rest) = match arg.first() {
        Some(b'i' | b'I') => (true, &arg[1..]),
        Some(b'u' | b'U') => (false, &arg[1..]),
        _ => return Err(bad()),
    };
    let bits: u32 = std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(bad());
    }
    Ok((signed, bits))
}

fn parse_field_offset(arg: &[u8], bits: u32) -> Result<u64, CmdError> {
    let bad = || CmdError::err("bit offset is not an integer or out of range");
    let (mul, num) = match arg.strip_prefix(b"#") {
        Some(rest) => (bits as u64, rest),
        None => (1, arg),
    };
    let v = parse_i64(num).map_err(|_| bad())?;
    if v < 0 {
        return Err(bad());
    }
    let off = (v as u64).checked_mul(mul).ok_or_else(bad)?;
    if off + bits as u64 - 1 > quarry_types::MAX_BIT_OFFSET {
        return Err(bad());
    }
    Ok(off)
}

fn read_field(v: &[u8], f: Field) -> i64 {
    let mut value: u64 = 0;
    for j in 0..f.bits as u64 {
        let i = f.offset + j;
        let byte = (i / 8) as usize;
        let bit = v.get(byte).map_or(0, |b| (b >> (7 - (i % 8))) & 1);
        value = (value << 1) | bit as u64;
    }
    if f.signed && f.bits < 64 && value & (1 << (f.bits - 1)) != 0 {
        value |= u64::MAX << f.bits;
    }
    value as i64
}

fn write_field(v: &mut Vec<u8>, f: Field, value: i64) {
    let last_byte = ((f.offset + f.bits as u64 - 1) / 8) as usize;
    if v.len() <= last_byte {
        v.resize(last_byte + 1, 0);
    }
    let value = value as u64;
    for j in 0..f.bits as u64 {
        let bit = (value >> (f.bits as u64 - 1 - j)) & 1;
        let i = f.offset + j;
        let byte = (i / 8) as usize;
        let mask = 1u8 << (7 - (i % 8));
        if bit == 1 {
            v[byte] |= mask;
        } else {
            v[byte] &= !mask;
        }
    }
}

/// Redis' overflow rules: the stored result, or None when OVERFLOW FAIL refuses it.
fn apply_overflow(f: Field, value: i64, incr: i64, how: Overflow) -> Option<i64> {
    if f.signed {
        let max: i64 = if f.bits == 64 {
            i64::MAX
        } else {
            (1i64 << (f.bits - 1)) - 1
        };
        let min = -max - 1;
        let wrapped = || {
            let res = (value as u64).wrapping_add(incr as u64);
            if f.bits < 64 {
                let mask = (1u64 << f.bits) - 1;
                let mut c = res & mask;
                if c & (1u64 << (f.bits - 1)) != 0 {
                    c |= !mask;
                }
                c as i64
            } else {
                res as i64
            }
        };
        let sum = value as i128 + incr as i128;
        if sum > max as i128 {
            return match how {
                Overflow::Wrap => Some(wrapped()),
                Overflow::Sat => Some(max),
                Overflow::Fail => None,
            };
        }
        if sum < min as i128 {
            return match how {
                Overflow::Wrap => Some(wrapped()),
                Overflow::Sat => Some(min),
                Overflow::Fail => None,
            };
        }
        Some(sum as i64)
    } else {
        let max: u64 = (1u64 << f.bits) - 1;
        let sum = value as u64 as i128 + incr as i128;
        let wrapped = || ((value as u64).wrapping_add(incr as u64) & max) as i64;
        if sum > max as i128 {
            return match how {
                Overflow::Wrap => Some(wrapped()),
                Overflow::Sat => Some(max as i64),
                Overflow::Fail => None,
            };
        }
        if sum < 0 {
            return match how {
                Overflow::Wrap => Some(wrapped()),
                Overflow::Sat => Some(0),
                Overflow::Fail => None,
            };
        }
        Some(sum as i64)
    }
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP|SAT|FAIL] ...; BITFIELD_RO key [GET type offset] ...
pub fn bitfield(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let read_only = lower(&a[0]) == "bitfield_ro";
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < a.len() {
        let left = a.len() - i - 1;
        let sub = lower(&a[i]);
        match sub.as_str() {
            "get" if left >= 2 => {
                let (signed, bits) = parse_type(&a[i + 1])?;
                let offset = parse_field_offset(&a[i + 2], bits)?;
                ops.push(FieldOp::Get(Field {
                    signed,
                    bits,
                    offset,
                }));
                i += 3;
            }
            "set" | "incrby" if left >= 3 => {
                if read_only {
                    return Err(CmdError::err(
                        "BITFIELD_RO only supports the GET subcommand",
                    ));
                }
                let (signed, bits) = parse_type(&a[i + 1])?;
                let offset = parse_field_offset(&a[i + 2], bits)?;
                let v = parse_i64(&a[i + 3])?;
                let f = Field {
                    signed,
                    bits,
                    offset,
                };
                ops.push(if sub == "set" {
                    FieldOp::Set(f, v, overflow)
                } else {
                    FieldOp::Incr(f, v, overflow)
                });
                i += 4;
            }
            "overflow" if left >= 1 => {
                if read_only {
                    return Err(CmdError::err(
                        "BITFIELD_RO only supports the GET subcommand",
                    ));
                }
                overflow = match lower(&a[i + 1]).as_str() {
                    "wrap" => Overflow::Wrap,
                    "sat" => Overflow::Sat,
                    "fail" => Overflow::Fail,
                    _ => return Err(CmdError::err("Invalid OVERFLOW type specified")),
                };
                i += 2;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    let writes = ops.iter().any(|o| !matches!(o, FieldOp::Get(_)));
    let run = |v: &mut Vec<u8>| -> (Vec<Frame>, bool) {
        let mut out = Vec::new();
        let mut changed = false;
        for op in &ops {
            match *op {
                FieldOp::Get(f) => out.push(Frame::Integer(read_field(v, f))),
                FieldOp::Set(f, new, how) => {
                    let old = read_field(v, f);
                    // SET stores the value as the field's width takes it (wrapping), or
                    // saturates/fails as OVERFLOW says. Storing what is there already
                    // changes nothing, unless the value has to grow to hold the field.
                    match apply_overflow(f, new, 0, how) {
                        Some(stored) => {
                            let len = v.len();
                            write_field(v, f, stored);
                            changed |= read_field(v, f) != old || v.len() != len;
                            out.push(Frame::Integer(old));
                        }
                        None => out.push(Frame::Null),
                    }
                }
                FieldOp::Incr(f, by, how) => {
                    let old = read_field(v, f);
                    match apply_overflow(f, old, by, how) {
                        Some(new) => {
                            write_field(v, f, new);
                            changed = true;
                            out.push(Frame::Integer(new));
                        }
                        None => out.push(Frame::Null),
                    }
                }
            }
        }
        (out, changed)
    };
    let (out, _) = if writes {
        ctx.db.modify_bits(&a[1], run, |(_, changed)| *changed)?
    } else {
        let mut v = ctx.db.bit_value(&a[1])?.unwrap_or_default();
        run(&mut v)
    };
    Ok(Frame::Array(out))
}
