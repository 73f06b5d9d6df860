//! The libraries Redis gives scripts besides its own API: `bit` (LuaBitOp), `cjson` and
//! `cmsgpack` (`struct` is in `structlib.rs`), written in Rust with the behaviour of the C
//! libraries Redis embeds.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{
    FromLuaMulti, Function, IntoLuaMulti, LightUserData, Lua, MultiValue, Table, Value, Variadic,
};

pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.set("bit", bit(lua)?)?;
    g.set("cjson", cjson(lua)?)?;
    g.set("cmsgpack", cmsgpack(lua)?)?;
    g.set("struct", super::structlib::library(lua)?)?;
    Ok(())
}

/// The text of an error raised in Rust, as a C library would have raised it: the message
/// alone, without mlua's wrapping and traceback. The prelude re-raises it as a string, so
/// scripts that `pcall` a library function get a string, as in Redis.
pub fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::RuntimeError(msg) => msg.clone(),
        other => other.to_string(),
    }
}

/// A library function whose errors start with the calling script's position, as errors that
/// Redis's C libraries raise with `luaL_error` do (`user_script:1: ...`).
pub(super) fn located<A, R, F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, A) -> mlua::Result<R> + 'static,
{
    lua.create_function(move |lua, args| {
        f(lua, args).map_err(|e| match e {
            mlua::Error::RuntimeError(msg) => {
                // Level 1 is the caller: a Lua function keeps its frame when it tail-calls
                // a function written in Rust, as it does for C functions.
                let at = lua
                    .inspect_stack(1)
                    .filter(|d| d.curr_line() > 0)
                    .and_then(|d| {
                        let line = d.curr_line();
                        d.source().short_src.map(|s| format!("{s}:{line}: "))
                    })
                    .unwrap_or_default();
                mlua::Error::RuntimeError(format!("{at}{msg}"))
            }
            other => other,
        })
    })
}

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

// ---------------------------------------------------------------------------------------- bit

/// LuaBitOp's normalisation of a number to a signed 32-bit integer (modulo 2^32).
fn tobit(n: f64) -> i32 {
    let r = n.round_ties_even();
    (r.rem_euclid(4294967296.0) as u64 as u32) as i32
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    t.set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    fn fold(args: Variadic<f64>, f: fn(i32, i32) -> i32) -> mlua::Result<i32> {
        let mut it = args.iter();
        let first = it
            .next()
            .ok_or_else(|| err("bad argument #1 (number expected, got no value)"))?;
        Ok(it.fold(tobit(*first), |acc, n| f(acc, tobit(*n))))
    }
    t.set(
        "band",
        lua.create_function(|_, a: Variadic<f64>| fold(a, |x, y| x & y))?,
    )?;
    t.set(
        "bor",
        lua.create_function(|_, a: Variadic<f64>| fold(a, |x, y| x | y))?,
    )?;
    t.set(
        "bxor",
        lua.create_function(|_, a: Variadic<f64>| fold(a, |x, y| x ^ y))?,
    )?;
    t.set(
        "lshift",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok(((tobit(x) as u32) << (tobit(n) as u32 & 31)) as i32)
        })?,
    )?;
    t.set(
        "rshift",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok(((tobit(x) as u32) >> (tobit(n) as u32 & 31)) as i32)
        })?,
    )?;
    t.set(
        "arshift",
        lua.create_function(|_, (x, n): (f64, f64)| Ok(tobit(x) >> (tobit(n) as u32 & 31)))?,
    )?;
    t.set(
        "rol",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok((tobit(x) as u32).rotate_left(tobit(n) as u32 & 31) as i32)
        })?,
    )?;
    t.set(
        "ror",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok((tobit(x) as u32).rotate_right(tobit(n) as u32 & 31) as i32)
        })?,
    )?;
    t.set(
        "bswap",
        lua.create_function(|_, x: f64| Ok((tobit(x) as u32).swap_bytes() as i32))?,
    )?;
    t.set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            let mut n = n.map(tobit).unwrap_or(8);
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let v = tobit(x) as u32 as u64;
            let s = if upper {
                format!("{v:08X}")
            } else {
                format!("{v:08x}")
            };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    Ok(t)
}

// -------------------------------------------------------------------------------------- cjson

/// `%.14g`, cjson's default number format.
pub fn fmt_g14(n: f64) -> String {
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let exp = n.abs().log10().floor() as i32;
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..14).contains(&exp) {
        let s = format!("{n:.13e}");
        let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        return format!(
            "{}e{}{:02}",
            trim(mant.to_string()),
            if e < 0 { '-' } else { '+' },
            e.abs()
        );
    }
    let decimals = (13 - exp).max(0) as usize;
    trim(format!("{n:.decimals$}"))
}

struct JsonConfig {
    encode_max_depth: Cell<usize>,
    decode_max_depth: Cell<usize>,
    encode_invalid_numbers: Cell<bool>,
}

fn null_value() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn json_escape(out: &mut String, s: &[u8]) {
    out.push('"');
    for ch in String::from_utf8_lossy(s).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_number(out: &mut String, n: f64, cfg: &JsonConfig) -> mlua::Result<()> {
    if !n.is_finite() && !cfg.encode_invalid_numbers.get() {
        return Err(err("Cannot serialise number: must not be NaN or Inf"));
    }
    if n.is_nan() {
        out.push_str("nan");
    } else if n.is_infinite() {
        out.push_str(if n > 0.0 { "inf" } else { "-inf" });
    } else {
        out.push_str(&fmt_g14(n));
    }
    Ok(())
}

fn json_encode(out: &mut String, v: &Value, depth: usize, cfg: &JsonConfig) -> mlua::Result<()> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::LightUserData(p) if p.0.is_null() => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Number(n) => json_number(out, *n, cfg)?,
        Value::String(s) => json_escape(out, &s.as_bytes()),
        Value::Table(t) => {
            if depth >= cfg.encode_max_depth.get() {
                return Err(err(format!(
                    "Cannot serialise, excessive nesting ({})",
                    depth + 1
                )));
            }
            let mut max = 0i64;
            let mut count = 0i64;
            let mut array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Integer(i) if i >= 1 => max = max.max(i),
                    _ => array = false,
                }
            }
            if array && count > 0 {
                if max > count * 2 && max > 10 {
                    return Err(err("Cannot serialise table: excessively sparse array"));
                }
                out.push('[');
                for i in 1..=max {
                    if i > 1 {
                        out.push(',');
                    }
                    json_encode(out, &t.raw_get::<Value>(i)?, depth + 1, cfg)?;
                }
                out.push(']');
            } else {
                out.push('{');
                let mut first = true;
                for pair in t.pairs::<Value, Value>() {
                    let (k, val) = pair?;
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_escape(out, &s.as_bytes()),
                        Value::Integer(i) => json_escape(out, i.to_string().as_bytes()),
                        Value::Number(n) => json_escape(out, fmt_g14(*n).as_bytes()),
                        _ => {
                            return Err(err(
                                "Cannot serialise table: table key must be a number or string",
                            ))
                        }
                    }
                    out.push(':');
                    json_encode(out, &val, depth + 1, cfg)?;
                }
                out.push('}');
            }
        }
        Value::Function(_) => return Err(err("Cannot serialise function: type not supported")),
        _ => return Err(err("Cannot serialise userdata: type not supported")),
    }
    Ok(())
}

fn json_to_lua(lua: &Lua, v: &serde_json::Value, depth: usize, max: usize) -> mlua::Result<Value> {
    if depth > max {
        return Err(err(format!(
            "Found too many nested data structures ({depth}) at character 1"
        )));
    }
    Ok(match v {
        serde_json::Value::Null => null_value(),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, item, depth + 1, max)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), json_to_lua(lua, item, depth + 1, max)?)?;
            }
            Value::Table(t)
        }
    })
}

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Rc::new(JsonConfig {
        encode_max_depth: Cell::new(1000),
        decode_max_depth: Cell::new(1000),
        encode_invalid_numbers: Cell::new(false),
    });
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set(
        "encode",
        located(lua, move |lua, v: Value| {
            let mut out = String::new();
            json_encode(&mut out, &v, 0, &c)?;
            lua.create_string(out)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        located(lua, move |lua, s: mlua::String| {
            let parsed: serde_json::Value = serde_json::from_slice(&s.as_bytes()).map_err(|e| {
                err(format!(
                    "Expected value but found invalid token at character {}",
                    e.column()
                ))
            })?;
            json_to_lua(lua, &parsed, 1, c.decode_max_depth.get())
        })?,
    )?;
    // Capped: encoding and decoding recurse on the worker thread's stack.
    let depth_setter = |get: fn(&JsonConfig) -> &Cell<usize>| {
        let c = cfg.clone();
        located(lua, move |_, n: Option<usize>| {
            if let Some(n) = n {
                get(&c).set(n.clamp(1, 1000));
            }
            Ok(get(&c).get())
        })
    };
    t.set("encode_max_depth", depth_setter(|c| &c.encode_max_depth)?)?;
    t.set("decode_max_depth", depth_setter(|c| &c.decode_max_depth)?)?;
    let c = cfg;
    t.set(
        "encode_invalid_numbers",
        located(lua, move |_, v: Option<Value>| {
            if let Some(v) = v {
                c.encode_invalid_numbers.set(
                    matches!(v, Value::Boolean(true))
                        || matches!(&v, Value::String(s) if s.as_bytes().as_ref() == b"on"),
                );
            }
            Ok(c.encode_invalid_numbers.get())
        })?,
    )?;
    // Accepted for compatibility; they tune buffers and parsing quirks quarry does not have.
    for name in [
        "encode_keep_buffer",
        "encode_number_precision",
        "decode_invalid_numbers",
        "encode_sparse_array",
    ] {
        t.set(name, located(lua, |_, _: MultiValue| Ok(true))?)?;
    }
    t.set("null", null_value())?;
    Ok(t)
}

// ----------------------------------------------------------------------------------- cmsgpack

const MSGPACK_MAX_NESTING: usize = 16;

fn mp_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        let u = i as u64;
        if u < 128 {
            out.push(u as u8);
        } else if u < 256 {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u < 65536 {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= u32::MAX as u64 {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= -128 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn mp_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, tags: [u8; 3]) {
    if n < fix_max {
        out.push(fix | n as u8);
    } else if tags[0] != 0 && n <= 0xff {
        out.extend_from_slice(&[tags[0], n as u8]);
    } else if n <= 0xffff {
        out.push(tags[1]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(tags[2]);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(out, *i),
        Value::Number(n) => {
            if n.is_finite() && *n == n.trunc() && n.abs() < 9.2e18 {
                mp_int(out, *n as i64);
            } else if (*n as f32) as f64 == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            mp_len(out, b.len(), 0xa0, 32, [0xd9, 0xda, 0xdb]);
            out.extend_from_slice(&b);
        }
        Value::Table(t) => {
            if level == MSGPACK_MAX_NESTING {
                out.push(0xc0);
                return Ok(());
            }
            let mut max = 0i64;
            let mut count = 0i64;
            let mut array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Integer(i) if i >= 1 => max = max.max(i),
                    Value::Number(n) if n >= 1.0 && n == n.trunc() => max = max.max(n as i64),
                    _ => array = false,
                }
            }
            if array && max == count {
                mp_len(out, count as usize, 0x90, 16, [0, 0xdc, 0xdd]);
                for i in 1..=count {
                    mp_encode(out, &t.raw_get::<Value>(i)?, level + 1)?;
                }
            } else {
                mp_len(out, count as usize, 0x80, 16, [0, 0xde, 0xdf]);
                for pair in t.pairs::<Value, Value>() {
                    let (k, val) = pair?;
                    mp_encode(out, &k, level + 1)?;
                    mp_encode(out, &val, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

struct MpReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Nesting of the value being read: a crafted payload must not exhaust the stack.
    depth: usize,
}

impl MpReader<'_> {
    fn take(&mut self, n: usize) -> mlua::Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(err("Missing bytes in input."));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    fn value(&mut self, lua: &Lua) -> mlua::Result<Value> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Integer(tag as i64),
            0xe0..=0xff => Value::Integer(tag as i8 as i64),
            0x80..=0x8f => self.map(lua, (tag & 0x0f) as usize)?,
            0x90..=0x9f => self.array(lua, (tag & 0x0f) as usize)?,
            0xa0..=0xbf => self.string(lua, (tag & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(lua, n)?
            }
            0xc5 | 0xda => {
                let n = self.uint(2)? as usize;
                self.string(lua, n)?
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)? as usize;
                self.string(lua, n)?
            }
            0xca => Value::Number(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => Value::Number(f64::from_bits(self.uint(8)?)),
            0xcc => Value::Integer(self.uint(1)? as i64),
            0xcd => Value::Integer(self.uint(2)? as i64),
            0xce => Value::Integer(self.uint(4)? as i64),
            0xcf => Value::Number(self.uint(8)? as f64),
            0xd0 => Value::Integer(self.uint(1)? as u8 as i8 as i64),
            0xd1 => Value::Integer(self.uint(2)? as u16 as i16 as i64),
            0xd2 => Value::Integer(self.uint(4)? as u32 as i32 as i64),
            0xd3 => Value::Integer(self.uint(8)? as i64),
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(lua, n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(lua, n)?
            }
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(lua, n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(lua, n)?
            }
            _ => return Err(err("Bad data format in input.")),
        })
    }
    fn string(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let s = self.take(n)?;
        Ok(Value::String(lua.create_string(s)?))
    }
    fn nest(&mut self) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth > 256 {
            return Err(err("MessagePack input nested too deeply."));
        }
        Ok(())
    }
    fn array(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        self.nest()?;
        let t = lua.create_table_with_capacity(n.min(1 << 16), 0)?;
        for i in 1..=n {
            t.raw_set(i, self.value(lua)?)?;
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }
    fn map(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        self.nest()?;
        let t = lua.create_table_with_capacity(0, n.min(1 << 16))?;
        for _ in 0..n {
            let k = self.value(lua)?;
            let v = self.value(lua)?;
            if k != Value::Nil {
                t.raw_set(k, v)?;
            }
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }
}

/// Decodes up to `limit` values (0: all) from `offset`; returns the next offset (-1 at the
/// end) and the values.
fn mp_decode(
    lua: &Lua,
    buf: &[u8],
    limit: usize,
    offset: usize,
) -> mlua::Result<(i64, Vec<Value>)> {
    let mut r = MpReader {
        buf,
        pos: offset,
        depth: 0,
    };
    let mut values = Vec::new();
    while r.pos < buf.len() && (limit == 0 || values.len() < limit) {
        values.push(r.value(lua)?);
    }
    let next = if r.pos >= buf.len() { -1 } else { r.pos as i64 };
    Ok((next, values))
}

fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        located(lua, |lua, args: MultiValue| {
            if args.is_empty() {
                return Err(err("MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                mp_encode(&mut out, v, 0)?;
            }
            lua.create_string(out)
        })?,
    )?;
    t.set(
        "unpack",
        located(lua, |lua, s: mlua::String| {
            let (_, values) = mp_decode(lua, &s.as_bytes(), 0, 0)?;
            Ok(MultiValue::from_iter(values))
        })?,
    )?;
    t.set(
        "unpack_one",
        located(lua, |lua, (s, offset): (mlua::String, Option<usize>)| {
            let (next, values) = mp_decode(lua, &s.as_bytes(), 1, offset.unwrap_or(0))?;
            let mut out = vec![Value::Integer(next)];
            out.extend(values);
            Ok(MultiValue::from_iter(out))
        })?,
    )?;
    t.set(
        "unpack_limit",
        located(
            lua,
            |lua, (s, limit, offset): (mlua::String, usize, Option<usize>)| {
                let (next, values) = mp_decode(lua, &s.as_bytes(), limit, offset.unwrap_or(0))?;
                let mut out = vec![Value::Integer(next)];
                out.extend(values);
                Ok(MultiValue::from_iter(out))
            },
        )?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g14_formats_as_printf() {
        assert_eq!(fmt_g14(100.0), "100");
        assert_eq!(fmt_g14(0.1), "0.1");
        assert_eq!(fmt_g14(1.0 / 3.0), "0.33333333333333");
        assert_eq!(fmt_g14(1e20), "1e+20");
        assert_eq!(fmt_g14(0.0003), "0.0003");
        assert_eq!(fmt_g14(-5000.0), "-5000");
    }

    #[test]
    fn bit_normalises_to_32_bits() {
        assert_eq!(tobit(4294967295.0), -1);
        assert_eq!(tobit(2147483648.0), i32::MIN);
        assert_eq!(tobit(-1.0), -1);
    }

    #[test]
    fn msgpack_numbers_as_lua_cmsgpack_packs_them() {
        let mut out = Vec::new();
        mp_encode(&mut out, &Value::Number(0.1), 0).unwrap();
        assert_eq!(hex::encode(&out), "cb3fb999999999999a");
        out.clear();
        mp_encode(&mut out, &Value::Integer(-1099511627776), 0).unwrap();
        assert_eq!(hex::encode(&out), "d3ffffff0000000000");
    }
}
